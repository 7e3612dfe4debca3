// The HTTP core over an in-memory Transport: every status ukhttpd answers,
// keep-alive and close rules, pipelining, Range, and which path a body takes
// (sendfile when the transport says KTLS TX is active, SSL_write otherwise)
// with the counters that say so.
#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include "tests/usr.sbin/ukhttpd/http_response.h"
#include "tests/usr.sbin/ukhttpd/test_dir.h"
#include "usr.sbin/ukhttpd/docroot_gen.h"
#include "usr.sbin/ukhttpd/docroot_host.h"
#include "usr.sbin/ukhttpd/httpd.h"

namespace ukhttpd {
namespace {

using ukhttpd_test::Response;
using ukhttpd_test::TakeResponse;

// Feeds |in| in |chunk|-byte reads, collects everything written. With
// ktls = true, send_file copies the file range into the output as a kernel
// would put it on the wire (before encryption).
class MemTransport : public Transport {
 public:
  MemTransport(std::string in, size_t chunk, bool ktls) : in_(std::move(in)), chunk_(chunk), ktls_(ktls) {}
  ssize_t read(void* buf, size_t len) override {
    size_t n = std::min({len, chunk_, in_.size() - pos_});
    std::memcpy(buf, in_.data() + pos_, n);
    pos_ += n;
    return static_cast<ssize_t>(n);
  }
  bool write(const void* buf, size_t len) override {
    out.append(static_cast<const char*>(buf), len);
    ++writes;
    return true;
  }
  bool ktls_send() override { return ktls_; }
  int send_file(DocFile& f, uint64_t off, uint64_t len) override {
    EXPECT_TRUE(ktls_);
    std::string b(len, '\0');
    if (f.pread(b.data(), len, off) != static_cast<ssize_t>(len)) return EIO;
    out += b;
    ++sendfiles;
    return 0;
  }
  void close() override {}

  std::string out;
  int writes = 0, sendfiles = 0;

 private:
  std::string in_;
  size_t pos_ = 0;
  size_t chunk_;
  bool ktls_;
};

std::string Pattern(const std::string& name, uint64_t off, uint64_t len) {
  std::string s(len, '\0');
  PatternFill(name, off, reinterpret_cast<uint8_t*>(s.data()), len);
  return s;
}

class HttpdTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new std::string(ukhttpd_test::MakeTestDir("httpd") + "/www");
    HostDocSink sink(*dir_);
    ASSERT_EQ(WriteDocroot(sink, {{"1k.bin", 1024}, {"200k.bin", 200 * 1024}}, nullptr), 0);
    ASSERT_EQ(sink.make_dir("sub"), 0);
    ASSERT_EQ(sink.make_dir("noindex"), 0);
    ASSERT_EQ(sink.begin_file("sub/index.html", 0), 0);
    ASSERT_EQ(sink.append("sub index", 9), 0);
    ASSERT_EQ(sink.end_file(), 0);
    ASSERT_EQ(sink.begin_file("empty.txt", 0), 0);
    ASSERT_EQ(sink.end_file(), 0);
    ASSERT_EQ(sink.begin_file("a b.json", 0), 0);
    ASSERT_EQ(sink.append("{}", 2), 0);
    ASSERT_EQ(sink.end_file(), 0);
    ukhttpd_test::WriteFile(*dir_ + "/../outside.txt", "OUTSIDE");
  }
  static void TearDownTestSuite() { delete dir_; }

  void SetUp() override { ASSERT_EQ(HostDocroot::Open(*dir_, &root_), 0); }

  // Serves |in| and parses the responses; |heads| marks HEAD requests.
  std::vector<Response> Serve(const std::string& in, std::vector<bool> heads = {},
                              bool ktls = false, size_t chunk = 5) {
    MemTransport t(in, chunk, ktls);
    ServeConnection(t, *root_, cfg_, counters_, "test");
    last_ = t;
    std::vector<Response> out;
    std::string buf = t.out;
    for (size_t i = 0; !buf.empty(); ++i) {
      Response r;
      bool head = i < heads.size() && heads[i];
      if (!TakeResponse(&buf, head, &r)) {
        ADD_FAILURE() << "unparseable response data: " << buf.substr(0, 200);
        break;
      }
      out.push_back(r);
    }
    return out;
  }

  static std::string* dir_;
  std::unique_ptr<HostDocroot> root_;
  HttpConfig cfg_;
  Counters counters_;
  MemTransport last_{"", 1, false};
};
std::string* HttpdTest::dir_ = nullptr;

TEST_F(HttpdTest, GetServesFileWithHeaders) {
  auto rs = Serve("GET /1k.bin HTTP/1.1\r\nHost: x\r\n\r\n");
  ASSERT_EQ(rs.size(), 1u);
  EXPECT_EQ(rs[0].status, 200);
  EXPECT_EQ(rs[0].header("content-length"), "1024");
  EXPECT_EQ(rs[0].header("content-type"), "application/octet-stream");
  EXPECT_EQ(rs[0].header("accept-ranges"), "bytes");
  EXPECT_EQ(rs[0].header("server"), "ukhttpd");
  EXPECT_TRUE(rs[0].has("date"));
  EXPECT_TRUE(rs[0].has("last-modified"));
  EXPECT_FALSE(rs[0].has("connection"));
  EXPECT_EQ(rs[0].body, Pattern("1k.bin", 0, 1024));
  EXPECT_EQ(counters_.requests.load(), 1u);
  EXPECT_EQ(counters_.status(200), 1u);
}

TEST_F(HttpdTest, IndexPageForRootAndDirectories) {
  auto rs = Serve(
      "GET / HTTP/1.1\r\nHost: x\r\n\r\n"
      "GET /sub/ HTTP/1.1\r\nHost: x\r\n\r\n"
      "GET /sub HTTP/1.1\r\nHost: x\r\n\r\n"
      "GET /noindex/ HTTP/1.1\r\nHost: x\r\n\r\n"
      "GET /a%20b.json HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
  ASSERT_EQ(rs.size(), 5u);
  EXPECT_EQ(rs[0].status, 200);
  EXPECT_EQ(rs[0].header("content-type"), "text/html; charset=utf-8");
  EXPECT_NE(rs[0].body.find("200k.bin"), std::string::npos);
  EXPECT_EQ(rs[1].status, 200);
  EXPECT_EQ(rs[1].body, "sub index");
  EXPECT_EQ(rs[2].status, 301);
  EXPECT_EQ(rs[2].header("location"), "/sub/");
  EXPECT_EQ(rs[3].status, 403);
  EXPECT_EQ(rs[4].status, 200);
  EXPECT_EQ(rs[4].header("content-type"), "application/json");
  EXPECT_EQ(rs[4].body, "{}");
}

TEST_F(HttpdTest, HeadHasHeadersButNoBody) {
  auto rs = Serve("HEAD /200k.bin HTTP/1.1\r\nHost: x\r\n\r\nGET /1k.bin HTTP/1.1\r\nHost: x\r\n\r\n",
                  {true, false});
  ASSERT_EQ(rs.size(), 2u);
  EXPECT_EQ(rs[0].status, 200);
  EXPECT_EQ(rs[0].header("content-length"), "204800");
  EXPECT_EQ(rs[0].body, "");
  EXPECT_EQ(rs[1].body.size(), 1024u);  // the stream stayed in step
  EXPECT_EQ(counters_.bodies_ssl_write.load(), 1u);
}

TEST_F(HttpdTest, KeepAliveAndCloseRules) {
  // HTTP/1.1 keeps the connection; "Connection: close" ends it, and the
  // request after it is never answered.
  auto rs = Serve(
      "GET /1k.bin HTTP/1.1\r\nHost: x\r\n\r\n"
      "GET /1k.bin HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
      "GET /1k.bin HTTP/1.1\r\nHost: x\r\n\r\n");
  ASSERT_EQ(rs.size(), 2u);
  EXPECT_EQ(rs[1].header("connection"), "close");
  // HTTP/1.0 closes by default...
  rs = Serve("GET /1k.bin HTTP/1.0\r\n\r\nGET /1k.bin HTTP/1.0\r\n\r\n");
  ASSERT_EQ(rs.size(), 1u);
  EXPECT_EQ(rs[0].header("connection"), "close");
  // ...unless asked to keep alive.
  rs = Serve("GET /1k.bin HTTP/1.0\r\nConnection: keep-alive\r\n\r\nGET /1k.bin HTTP/1.0\r\n\r\n");
  ASSERT_EQ(rs.size(), 2u);
  EXPECT_EQ(rs[0].header("connection"), "keep-alive");
  EXPECT_EQ(rs[1].header("connection"), "close");
}

TEST_F(HttpdTest, PipelinedRequestsInOneRead) {
  std::string in;
  for (int i = 0; i < 10; ++i) in += "GET /1k.bin HTTP/1.1\r\nHost: x\r\n\r\n";
  auto rs = Serve(in, {}, false, /*chunk=*/1 << 20);
  ASSERT_EQ(rs.size(), 10u);
  for (auto& r : rs) EXPECT_EQ(r.body, Pattern("1k.bin", 0, 1024));
  EXPECT_EQ(counters_.requests.load(), 10u);
}

TEST_F(HttpdTest, Ranges) {
  auto rs = Serve(
      "GET /200k.bin HTTP/1.1\r\nHost: x\r\nRange: bytes=100-199\r\n\r\n"
      "GET /200k.bin HTTP/1.1\r\nHost: x\r\nRange: bytes=204000-\r\n\r\n"
      "GET /200k.bin HTTP/1.1\r\nHost: x\r\nRange: bytes=-10\r\n\r\n"
      "GET /200k.bin HTTP/1.1\r\nHost: x\r\nRange: bytes=204800-\r\n\r\n"
      "GET /1k.bin HTTP/1.1\r\nHost: x\r\nRange: bytes=0-1,5-6\r\n\r\n"
      "GET /1k.bin HTTP/1.1\r\nHost: x\r\nRange: bytes=9-1\r\n\r\n"
      "HEAD /1k.bin HTTP/1.1\r\nHost: x\r\nRange: bytes=0-0\r\n\r\n"
      "GET /empty.txt HTTP/1.1\r\nHost: x\r\nRange: bytes=0-\r\n\r\n"
      "GET /1k.bin HTTP/1.1\r\nHost: x\r\nRange: bytes=0-9\r\nIf-Range: \"etag\"\r\n\r\n",
      {false, false, false, false, false, false, true, false, false});
  ASSERT_EQ(rs.size(), 9u);
  EXPECT_EQ(rs[0].status, 206);
  EXPECT_EQ(rs[0].header("content-range"), "bytes 100-199/204800");
  EXPECT_EQ(rs[0].body, Pattern("200k.bin", 100, 100));
  EXPECT_EQ(rs[1].status, 206);
  EXPECT_EQ(rs[1].body, Pattern("200k.bin", 204000, 800));
  EXPECT_EQ(rs[2].status, 206);
  EXPECT_EQ(rs[2].header("content-range"), "bytes 204790-204799/204800");
  EXPECT_EQ(rs[2].body, Pattern("200k.bin", 204790, 10));
  EXPECT_EQ(rs[3].status, 416);
  EXPECT_EQ(rs[3].header("content-range"), "bytes */204800");
  EXPECT_EQ(rs[4].status, 200);  // several ranges: the whole file
  EXPECT_EQ(rs[4].body.size(), 1024u);
  EXPECT_EQ(rs[5].status, 200);  // invalid range: ignored
  EXPECT_EQ(rs[6].status, 206);
  EXPECT_EQ(rs[6].header("content-length"), "1");
  EXPECT_EQ(rs[6].body, "");
  EXPECT_EQ(rs[7].status, 416);
  EXPECT_EQ(rs[7].header("content-range"), "bytes */0");
  EXPECT_EQ(rs[8].status, 200);  // If-Range does not match
  EXPECT_EQ(counters_.status(206), 4u);
  EXPECT_EQ(counters_.status(416), 2u);
}

TEST_F(HttpdTest, MethodsOtherThanGetAndHeadGet405WithAllow) {
  auto rs = Serve(
      "POST /1k.bin HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello"
      "BREW /pot HTTP/1.1\r\nHost: x\r\n\r\n"
      "OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n"
      "get /1k.bin HTTP/1.1\r\nHost: x\r\n\r\n"
      "GET /1k.bin HTTP/1.1\r\nHost: x\r\n\r\n");
  ASSERT_EQ(rs.size(), 5u);
  for (int i = 0; i < 4; ++i) {
    EXPECT_EQ(rs[i].status, 405) << i;
    EXPECT_EQ(rs[i].header("allow"), "GET, HEAD") << i;
  }
  EXPECT_EQ(rs[4].status, 200);  // the POST body was skipped, the stream is in step
}

TEST_F(HttpdTest, NotFound) {
  auto rs = Serve("GET /nope HTTP/1.1\r\nHost: x\r\n\r\nGET /1k.bin/x HTTP/1.1\r\nHost: x\r\n\r\n"
                  "GET /1k.bin HTTP/1.1\r\nHost: x\r\n\r\n");
  ASSERT_EQ(rs.size(), 3u);
  EXPECT_EQ(rs[0].status, 404);
  EXPECT_EQ(rs[1].status, 404);
  EXPECT_EQ(rs[2].status, 200);  // 404 keeps the connection
}

TEST_F(HttpdTest, TraversalNeverReachesOutsideTheRoot) {
  const char* targets[] = {"/../outside.txt",        "/%2e%2e/outside.txt",
                           "/sub/../../outside.txt", "/%2E%2E%2Foutside.txt",
                           "/..%2foutside.txt",      "/..%5coutside.txt",
                           "/outside.txt%00.html",   "//../outside.txt",
                           "/sub/%2e%2e/%2e%2e/outside.txt",
                           "http://x/../outside.txt"};
  for (const char* t : targets) {
    auto rs = Serve(std::string("GET ") + t + " HTTP/1.1\r\nHost: x\r\n\r\n");
    ASSERT_EQ(rs.size(), 1u) << t;
    EXPECT_TRUE(rs[0].status == 400 || rs[0].status == 403 || rs[0].status == 404)
        << t << " -> " << rs[0].status;
    EXPECT_EQ(rs[0].body.find("OUTSIDE"), std::string::npos) << t;
  }
  // Dot segments that stay inside are fine.
  auto rs = Serve("GET /sub/../1k.bin HTTP/1.1\r\nHost: x\r\n\r\n");
  ASSERT_EQ(rs.size(), 1u);
  EXPECT_EQ(rs[0].status, 200);
}

TEST_F(HttpdTest, BadRequestsGet400AndClose) {
  const char* bad[] = {
      "GARBAGE\r\n\r\n",
      "GET / HTTP/1.1\r\n\r\n",                           // no Host
      "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",     // two Hosts
      "GET / HTTP/1.1\r\nHost: a\r\nContent-Length: x\r\n\r\n",
      "GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 1, 2\r\n\r\n",
      "GET /a%zz HTTP/1.1\r\nHost: a\r\n\r\n",
      "GET / HTTP/1.1\r\nHost: a\r\n folded\r\n\r\n",
  };
  for (const char* b : bad) {
    auto rs = Serve(std::string(b) + "GET /1k.bin HTTP/1.1\r\nHost: x\r\n\r\n");
    ASSERT_EQ(rs.size(), 1u) << b;
    EXPECT_EQ(rs[0].status, 400) << b;
    EXPECT_EQ(rs[0].header("connection"), "close") << b;
  }
}

TEST_F(HttpdTest, LimitsAndUnsupported) {
  auto rs = Serve("GET /" + std::string(9000, 'a') + " HTTP/1.1\r\nHost: x\r\n\r\n");
  ASSERT_EQ(rs.size(), 1u);
  EXPECT_EQ(rs[0].status, 414);
  std::string many = "GET / HTTP/1.1\r\nHost: x\r\n";
  for (int i = 0; i < 200; ++i) many += "X-" + std::to_string(i) + ": y\r\n";
  rs = Serve(many + "\r\n");
  ASSERT_EQ(rs.size(), 1u);
  EXPECT_EQ(rs[0].status, 431);
  rs = Serve("GET / HTTP/1.1\r\nHost: x\r\nX: " + std::string(20000, 'z') + "\r\n\r\n");
  ASSERT_EQ(rs.size(), 1u);
  EXPECT_EQ(rs[0].status, 431);
  rs = Serve("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999\r\n\r\n");
  ASSERT_EQ(rs.size(), 1u);
  EXPECT_EQ(rs[0].status, 413);
  rs = Serve("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n");
  ASSERT_EQ(rs.size(), 1u);
  EXPECT_EQ(rs[0].status, 501);
  rs = Serve("GET / HTTP/2.0\r\n\r\n");
  ASSERT_EQ(rs.size(), 1u);
  EXPECT_EQ(rs[0].status, 505);
  for (auto& r : rs) EXPECT_EQ(r.header("connection"), "close");
}

TEST_F(HttpdTest, PartialHeadThenEofGetsNoResponse) {
  auto rs = Serve("GET /1k.bin HTTP/1.1\r\nHo");
  EXPECT_TRUE(rs.empty());
  EXPECT_EQ(counters_.requests.load(), 0u);
}

TEST_F(HttpdTest, BodiesGoBySendfileWhenKtlsTxIsActive) {
  auto rs = Serve(
      "GET /200k.bin HTTP/1.1\r\nHost: x\r\n\r\n"
      "GET /200k.bin HTTP/1.1\r\nHost: x\r\nRange: bytes=1000-1999\r\n\r\n"
      "HEAD /200k.bin HTTP/1.1\r\nHost: x\r\n\r\n"
      "GET /nope HTTP/1.1\r\nHost: x\r\n\r\n",
      {false, false, true, false}, /*ktls=*/true);
  ASSERT_EQ(rs.size(), 4u);
  EXPECT_EQ(rs[0].body, Pattern("200k.bin", 0, 200 * 1024));
  EXPECT_EQ(rs[1].body, Pattern("200k.bin", 1000, 1000));
  EXPECT_EQ(last_.sendfiles, 2);
  EXPECT_EQ(counters_.bodies_sendfile.load(), 2u);
  EXPECT_EQ(counters_.body_bytes_sendfile.load(), 200u * 1024 + 1000);
  EXPECT_EQ(counters_.bodies_ssl_write.load(), 0u);
  EXPECT_EQ(counters_.body_bytes_ssl_write.load(), 0u);
}

TEST_F(HttpdTest, BodiesFallBackToSslWriteAndSaySo) {
  auto rs = Serve("GET /200k.bin HTTP/1.1\r\nHost: x\r\n\r\n", {}, /*ktls=*/false);
  ASSERT_EQ(rs.size(), 1u);
  EXPECT_EQ(rs[0].body, Pattern("200k.bin", 0, 200 * 1024));
  EXPECT_EQ(last_.sendfiles, 0);
  EXPECT_EQ(counters_.bodies_sendfile.load(), 0u);
  EXPECT_EQ(counters_.bodies_ssl_write.load(), 1u);
  EXPECT_EQ(counters_.body_bytes_ssl_write.load(), 200u * 1024);
  // Full 64 KiB writes: the head shares the first one.
  EXPECT_EQ(last_.writes, 4);
  std::string text = counters_.to_text();
  EXPECT_NE(text.find("1 by SSL_write"), std::string::npos) << text;
  EXPECT_NE(text.find("KTLS TX not active"), std::string::npos) << text;
  nlohmann::json j = counters_.to_json();
  EXPECT_EQ(j["bodies"]["ssl-write"], 1);
  EXPECT_EQ(j["bodies"]["sendfile"], 0);
  EXPECT_EQ(j["responses"]["200"], 1);
}

TEST(HttpDate, Format) {
  EXPECT_EQ(HttpDate(784111777), "Sun, 06 Nov 1994 08:49:37 GMT");
  EXPECT_EQ(HttpDate(0), "Thu, 01 Jan 1970 00:00:00 GMT");
}

}  // namespace
}  // namespace ukhttpd
