// Request heads, request targets and byte ranges: the pure parsing layers.
#include <random>

#include <gtest/gtest.h>

#include "usr.sbin/ukhttpd/http_path.h"
#include "usr.sbin/ukhttpd/http_range.h"
#include "usr.sbin/ukhttpd/http_request.h"
#include "usr.sbin/ukhttpd/mime.h"

namespace ukhttpd {
namespace {

ParseResult Parse(std::string_view s, HttpRequest* r, RequestLimits lim = {}) {
  return ParseRequestHead(s, lim, r);
}

TEST(RequestHead, ParsesRequestLineAndFields) {
  HttpRequest r;
  std::string s = "GET /a/b?x=1 HTTP/1.1\r\nHost: example\r\nX-Thing:  v a l \t\r\n\r\nrest";
  ParseResult p = Parse(s, &r);
  ASSERT_EQ(p.status, ParseStatus::kOk) << p.reason;
  EXPECT_EQ(p.consumed, s.size() - 4);
  EXPECT_EQ(r.method, "GET");
  EXPECT_EQ(r.target, "/a/b?x=1");
  EXPECT_EQ(r.version_major, 1);
  EXPECT_EQ(r.version_minor, 1);
  EXPECT_EQ(r.header("host"), "example");
  EXPECT_EQ(r.header("x-thing"), "v a l");
  EXPECT_FALSE(r.header("missing").has_value());
}

TEST(RequestHead, AcceptsBareLfAndSkipsLeadingEmptyLines) {
  HttpRequest r;
  std::string s = "\r\n\nHEAD / HTTP/1.0\nA: b\n\n";
  ParseResult p = Parse(s, &r);
  ASSERT_EQ(p.status, ParseStatus::kOk) << p.reason;
  EXPECT_EQ(p.consumed, s.size());
  EXPECT_EQ(r.method, "HEAD");
  EXPECT_EQ(r.version_minor, 0);
  EXPECT_EQ(r.header("a"), "b");
}

TEST(RequestHead, IncompleteUntilBlankLine) {
  HttpRequest r;
  EXPECT_EQ(Parse("GET / HTTP/1.1\r\nHost: x\r\n", &r).status, ParseStatus::kIncomplete);
  EXPECT_EQ(Parse("GET / HT", &r).status, ParseStatus::kIncomplete);
  EXPECT_EQ(Parse("", &r).status, ParseStatus::kIncomplete);
}

TEST(RequestHead, PipelinedRequestsConsumeOneAtATime) {
  HttpRequest r;
  std::string s = "GET /1 HTTP/1.1\r\nHost: x\r\n\r\nGET /2 HTTP/1.1\r\nHost: x\r\n\r\n";
  ParseResult p = Parse(s, &r);
  ASSERT_EQ(p.status, ParseStatus::kOk);
  EXPECT_EQ(r.target, "/1");
  p = Parse(std::string_view(s).substr(p.consumed), &r);
  ASSERT_EQ(p.status, ParseStatus::kOk);
  EXPECT_EQ(r.target, "/2");
}

TEST(RequestHead, MalformedHeadsGive400) {
  const char* bad[] = {
      "GET\r\n\r\n",
      "GET /\r\n\r\n",
      "GET  / HTTP/1.1\r\n\r\n",
      "GET / HTTP/1.1 extra\r\n\r\n",
      "G(T / HTTP/1.1\r\n\r\n",
      "GET / HTTP/1\r\n\r\n",
      "GET / http/1.1\r\n\r\n",
      "GET / HTTP/1.1\r\nNoColon\r\n\r\n",
      "GET / HTTP/1.1\r\nName : v\r\n\r\n",
      "GET / HTTP/1.1\r\nA: b\r\n folded\r\n\r\n",
      "GET / HTTP/1.1\r\nA: b\rc\r\n\r\n",
      "GET / HTTP/1.1\r\nA: b\x01\r\n\r\n",
      "GET /\x7f HTTP/1.1\r\n\r\n",
      "GET /a\tb HTTP/1.1\r\n\r\n",
  };
  for (const char* s : bad) {
    HttpRequest r;
    ParseResult p = Parse(s, &r);
    EXPECT_EQ(p.status, ParseStatus::kError) << s;
    EXPECT_EQ(p.error_status, 400) << s;
  }
}

TEST(RequestHead, OtherMajorVersionGives505) {
  HttpRequest r;
  ParseResult p = Parse("GET / HTTP/2.0\r\n\r\n", &r);
  ASSERT_EQ(p.status, ParseStatus::kError);
  EXPECT_EQ(p.error_status, 505);
}

TEST(RequestHead, LimitsGive414And431) {
  RequestLimits lim;
  lim.max_request_line = 64;
  lim.max_head = 256;
  lim.max_headers = 3;
  HttpRequest r;
  // A long request line is refused before its end arrives.
  EXPECT_EQ(Parse("GET /" + std::string(100, 'a'), &r, lim).error_status, 414);
  EXPECT_EQ(Parse("GET /" + std::string(100, 'a') + " HTTP/1.1\r\n\r\n", &r, lim).error_status,
            414);
  std::string big = "GET / HTTP/1.1\r\nA: " + std::string(300, 'b');
  EXPECT_EQ(Parse(big, &r, lim).error_status, 431);
  EXPECT_EQ(Parse("GET / HTTP/1.1\r\nA: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\n\r\n", &r, lim).error_status,
            431);
  EXPECT_EQ(Parse("GET / HTTP/1.1\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n", &r, lim).status,
            ParseStatus::kOk);
}

TEST(RequestHead, ConnectionTokens) {
  HttpRequest r;
  ASSERT_EQ(Parse("GET / HTTP/1.1\r\nConnection: Upgrade, CLOSE\r\n\r\n", &r).status,
            ParseStatus::kOk);
  EXPECT_TRUE(r.connection_has("close"));
  EXPECT_FALSE(r.connection_has("keep-alive"));
}

TEST(TargetPath, NormalisesDotSegmentsAndSlashes) {
  TargetPath t = NormalizeTarget("/a/./b//c/../d?q=/../..");
  ASSERT_EQ(t.error_status, 0) << t.reason;
  EXPECT_EQ(t.relpath(), "a/b/d");
  EXPECT_FALSE(t.trailing_slash);
  t = NormalizeTarget("/");
  EXPECT_EQ(t.relpath(), "");
  EXPECT_TRUE(t.trailing_slash);
  t = NormalizeTarget("/dir/");
  EXPECT_EQ(t.relpath(), "dir");
  EXPECT_TRUE(t.trailing_slash);
  EXPECT_EQ(t.encoded_path, "/dir/");
  t = NormalizeTarget("/a/b/..");
  EXPECT_EQ(t.relpath(), "a");
  EXPECT_TRUE(t.trailing_slash);
}

TEST(TargetPath, DecodesOnce) {
  TargetPath t = NormalizeTarget("/sp%20ace/%41%62");
  ASSERT_EQ(t.error_status, 0);
  ASSERT_EQ(t.segments.size(), 2u);
  EXPECT_EQ(t.segments[0], "sp ace");
  EXPECT_EQ(t.segments[1], "Ab");
  EXPECT_EQ(t.encoded_path, "/sp%20ace/Ab");
  // "%252e%252e" is the literal name "%2e%2e", not "..".
  t = NormalizeTarget("/%252e%252e/x");
  ASSERT_EQ(t.error_status, 0);
  EXPECT_EQ(t.segments[0], "%2e%2e");
}

TEST(TargetPath, TraversalIsRefused) {
  const char* forbidden[] = {"/..", "/../etc/passwd", "/a/../../etc/passwd", "/%2e%2e/etc/passwd",
                             "/%2E%2e/x", "/a/%2e%2e/%2e%2e/x", "/./../x",
                             "https://h/../../etc/passwd"};
  for (const char* s : forbidden) {
    EXPECT_EQ(NormalizeTarget(s).error_status, 403) << s;
  }
  const char* bad[] = {"/a%2fb",  "/a%2F..%2F..%2Fetc", "/%2e%2e%2fetc", "/a%5c..%5cb",
                       "/x%00.html", "/%",   "/%4",    "/%zz", "a/b", "*", "/a#frag", ""};
  for (const char* s : bad) {
    EXPECT_EQ(NormalizeTarget(s).error_status, 400) << s;
  }
}

TEST(TargetPath, AbsoluteForm) {
  TargetPath t = NormalizeTarget("https://localhost:8443/1m.bin?x");
  ASSERT_EQ(t.error_status, 0);
  EXPECT_EQ(t.relpath(), "1m.bin");
  t = NormalizeTarget("http://h");
  ASSERT_EQ(t.error_status, 0);
  EXPECT_EQ(t.relpath(), "");
}

TEST(ByteRanges, Forms) {
  ByteRange r = ParseRange("bytes=0-9", 100);
  ASSERT_EQ(r.kind, RangeKind::kSatisfiable);
  EXPECT_EQ(r.first, 0u);
  EXPECT_EQ(r.last, 9u);
  EXPECT_EQ(r.length(), 10u);
  EXPECT_EQ(ContentRange(r, 100), "bytes 0-9/100");

  r = ParseRange("bytes=90-", 100);
  EXPECT_EQ(r.kind, RangeKind::kSatisfiable);
  EXPECT_EQ(r.first, 90u);
  EXPECT_EQ(r.last, 99u);

  r = ParseRange("bytes=-10", 100);
  EXPECT_EQ(r.first, 90u);
  EXPECT_EQ(r.last, 99u);

  r = ParseRange("bytes=-1000", 100);  // more than the file: all of it
  EXPECT_EQ(r.first, 0u);
  EXPECT_EQ(r.last, 99u);

  r = ParseRange("bytes=50-5000", 100);  // last clamped
  EXPECT_EQ(r.last, 99u);

  r = ParseRange(" Bytes = 1 - 2 ", 100);
  EXPECT_EQ(r.kind, RangeKind::kSatisfiable);
  EXPECT_EQ(r.first, 1u);
  EXPECT_EQ(r.last, 2u);
}

TEST(ByteRanges, Unsatisfiable) {
  EXPECT_EQ(ParseRange("bytes=100-", 100).kind, RangeKind::kUnsatisfiable);
  EXPECT_EQ(ParseRange("bytes=100-200", 100).kind, RangeKind::kUnsatisfiable);
  EXPECT_EQ(ParseRange("bytes=-0", 100).kind, RangeKind::kUnsatisfiable);
  EXPECT_EQ(ParseRange("bytes=0-", 0).kind, RangeKind::kUnsatisfiable);
  EXPECT_EQ(ParseRange("bytes=99999999999999999999999-", 100).kind, RangeKind::kUnsatisfiable);
  ByteRange r = ParseRange("bytes=500-", 100);
  EXPECT_EQ(ContentRange(r, 100), "bytes */100");
}

TEST(ByteRanges, InvalidOrMultipleAreIgnored) {
  for (const char* v : {"bytes=5-1", "bytes=a-b", "bytes=1", "items=0-1", "bytes=0-1,5-6",
                        "bytes=-", "bytes=--1", "0-1"}) {
    EXPECT_EQ(ParseRange(v, 100).kind, RangeKind::kNone) << v;
  }
}

TEST(ContentType, ByExtension) {
  EXPECT_EQ(ContentTypeFor("index.html"), "text/html; charset=utf-8");
  EXPECT_EQ(ContentTypeFor("a/B.HTM"), "text/html; charset=utf-8");
  EXPECT_EQ(ContentTypeFor("x.json"), "application/json");
  EXPECT_EQ(ContentTypeFor("1m.bin"), "application/octet-stream");
  EXPECT_EQ(ContentTypeFor("README"), "application/octet-stream");
  EXPECT_EQ(ContentTypeFor(".hidden"), "application/octet-stream");
  EXPECT_EQ(ContentTypeFor("dir.d/noext"), "application/octet-stream");
}

}  // namespace
}  // namespace ukhttpd

namespace ukhttpd {
namespace {

// Deterministic mutation of valid requests and random bytes through every
// parser that reads untrusted input: no crash (ASan/UBSan builds watch), and
// the invariants the server relies on hold for whatever is accepted.
TEST(ParsersUnderMutation, InvariantsHold) {
  std::mt19937_64 rng(20261122);
  const std::string seeds[] = {
      "GET /a/b/../c?x HTTP/1.1\r\nHost: h\r\nRange: bytes=1-2\r\n\r\n",
      "HEAD /%2e%2e/%41 HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
      "GET http://h/x/./y HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nabc",
  };
  const char alphabet[] = "/.%2eEfF0aA\r\n :\t\\?#-=,\0\x7f\x80";
  RequestLimits lim;
  lim.max_request_line = 256;
  lim.max_head = 512;
  lim.max_headers = 8;
  for (int iter = 0; iter < 20000; ++iter) {
    std::string s = seeds[iter % 3];
    int edits = 1 + static_cast<int>(rng() % 6);
    for (int e = 0; e < edits; ++e) {
      size_t pos = s.empty() ? 0 : rng() % s.size();
      char c = alphabet[rng() % (sizeof(alphabet) - 1)];
      switch (rng() % 3) {
        case 0: if (!s.empty()) s[pos] = c; break;
        case 1: s.insert(pos, 1, c); break;
        default: if (!s.empty()) s.erase(pos, 1 + rng() % 3); break;
      }
    }
    if (iter % 10 == 0) {  // pure noise, too
      s.resize(rng() % 300);
      for (char& c : s) c = static_cast<char>(rng());
    }
    HttpRequest req;
    ParseResult p = ParseRequestHead(s, lim, &req);
    if (p.status == ParseStatus::kOk) {
      ASSERT_LE(p.consumed, s.size());
      ASSERT_TRUE(IsToken(req.method));
      ASSERT_FALSE(req.target.empty());
      for (const auto& [n, v] : req.headers) ASSERT_TRUE(IsToken(n));
    } else if (p.status == ParseStatus::kError) {
      ASSERT_TRUE(p.error_status == 400 || p.error_status == 414 || p.error_status == 431 ||
                  p.error_status == 505)
          << p.error_status;
    }
    TargetPath t = NormalizeTarget(p.status == ParseStatus::kOk ? req.target : s);
    if (t.error_status == 0) {
      for (const std::string& seg : t.segments) {
        ASSERT_FALSE(seg.empty());
        ASSERT_NE(seg, ".");
        ASSERT_NE(seg, "..");
        ASSERT_EQ(seg.find_first_of(std::string("/\\\0", 3)), std::string::npos);
      }
    } else {
      ASSERT_TRUE(t.error_status == 400 || t.error_status == 403);
    }
    uint64_t size = rng() % 5000;
    ByteRange r = ParseRange(s, size);
    if (r.kind == RangeKind::kSatisfiable) {
      ASSERT_LE(r.first, r.last);
      ASSERT_LT(r.last, size);
    }
  }
}

}  // namespace
}  // namespace ukhttpd
