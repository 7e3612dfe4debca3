#include "usr.sbin/ukhttpd/http_request.h"

#include <algorithm>
#include <cctype>

namespace ukhttpd {
namespace {

bool IsTchar(unsigned char c) {
  if (std::isalnum(c)) return true;
  switch (c) {
    case '!': case '#': case '$': case '%': case '&': case '\'': case '*':
    case '+': case '-': case '.': case '^': case '_': case '`': case '|':
    case '~':
      return true;
    default:
      return false;
  }
}

std::string Lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

std::string_view TrimOws(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

ParseResult Error(int status, std::string reason) {
  ParseResult r;
  r.status = ParseStatus::kError;
  r.error_status = status;
  r.reason = std::move(reason);
  return r;
}

// Splits |head| (without the final blank line) into lines, accepting CRLF or
// LF. Returns false on a CR that is not followed by LF.
bool SplitLines(std::string_view head, std::vector<std::string_view>* lines) {
  size_t start = 0;
  for (size_t i = 0; i < head.size(); ++i) {
    if (head[i] == '\r') {
      if (i + 1 >= head.size() || head[i + 1] != '\n') return false;
      lines->push_back(head.substr(start, i - start));
      start = i + 2;
      ++i;
    } else if (head[i] == '\n') {
      lines->push_back(head.substr(start, i - start));
      start = i + 1;
    }
  }
  if (start < head.size()) lines->push_back(head.substr(start));
  return true;
}

bool ParseVersion(std::string_view v, int* major, int* minor) {
  // HTTP-version = "HTTP/" DIGIT "." DIGIT (RFC 9112 section 2.3).
  if (v.size() != 8 || v.substr(0, 5) != "HTTP/" || !std::isdigit(static_cast<unsigned char>(v[5])) ||
      v[6] != '.' || !std::isdigit(static_cast<unsigned char>(v[7])))
    return false;
  *major = v[5] - '0';
  *minor = v[7] - '0';
  return true;
}

}  // namespace

bool IsToken(std::string_view s) {
  if (s.empty()) return false;
  return std::all_of(s.begin(), s.end(),
                     [](char c) { return IsTchar(static_cast<unsigned char>(c)); });
}

std::optional<std::string> HttpRequest::header(std::string_view name) const {
  std::optional<std::string> out;
  for (const auto& [n, v] : headers) {
    if (n != name) continue;
    if (out) {
      out->append(", ");
      out->append(v);
    } else {
      out = v;
    }
  }
  return out;
}

size_t HttpRequest::header_count(std::string_view name) const {
  return std::count_if(headers.begin(), headers.end(),
                       [&](const auto& h) { return h.first == name; });
}

bool HttpRequest::connection_has(std::string_view token) const {
  std::optional<std::string> v = header("connection");
  if (!v) return false;
  std::string_view rest = *v;
  while (!rest.empty()) {
    size_t comma = rest.find(',');
    std::string_view item = TrimOws(rest.substr(0, comma));
    if (Lower(item) == Lower(token)) return true;
    if (comma == std::string_view::npos) break;
    rest.remove_prefix(comma + 1);
  }
  return false;
}

ParseResult ParseRequestHead(std::string_view buf, const RequestLimits& limits,
                             HttpRequest* req) {
  // Leading empty lines are ignored (robustness, RFC 9112 section 2.2).
  size_t skip = 0;
  while (skip < buf.size()) {
    if (buf[skip] == '\n') {
      ++skip;
    } else if (buf[skip] == '\r' && skip + 1 < buf.size() && buf[skip + 1] == '\n') {
      skip += 2;
    } else {
      break;
    }
  }
  std::string_view rest = buf.substr(skip);

  // The head ends at the first empty line: "\n\n" or "\n\r\n".
  size_t end = std::string_view::npos;
  size_t end_len = 0;
  for (size_t i = 0; i < rest.size(); ++i) {
    if (rest[i] != '\n') continue;
    if (i + 1 < rest.size() && rest[i + 1] == '\n') {
      end = i + 1;
      end_len = 1;
      break;
    }
    if (i + 2 < rest.size() && rest[i + 1] == '\r' && rest[i + 2] == '\n') {
      end = i + 1;
      end_len = 2;
      break;
    }
  }

  size_t first_nl = rest.find('\n');
  if (first_nl == std::string_view::npos) {
    if (rest.size() > limits.max_request_line) {
      return Error(414, "request line longer than " + std::to_string(limits.max_request_line));
    }
    return ParseResult{};
  }
  if (first_nl > limits.max_request_line) {
    return Error(414, "request line longer than " + std::to_string(limits.max_request_line));
  }
  if (end == std::string_view::npos) {
    if (rest.size() > limits.max_head) {
      return Error(431, "request head larger than " + std::to_string(limits.max_head));
    }
    return ParseResult{};
  }
  if (end > limits.max_head) {
    return Error(431, "request head larger than " + std::to_string(limits.max_head));
  }

  std::vector<std::string_view> lines;
  if (!SplitLines(rest.substr(0, end), &lines)) return Error(400, "bare CR in request head");
  if (lines.empty()) return Error(400, "empty request line");

  // request-line = method SP request-target SP HTTP-version, single spaces.
  std::string_view line = lines[0];
  size_t sp1 = line.find(' ');
  size_t sp2 = sp1 == std::string_view::npos ? sp1 : line.find(' ', sp1 + 1);
  if (sp1 == std::string_view::npos || sp2 == std::string_view::npos ||
      line.find(' ', sp2 + 1) != std::string_view::npos) {
    return Error(400, "malformed request line");
  }
  std::string_view method = line.substr(0, sp1);
  std::string_view target = line.substr(sp1 + 1, sp2 - sp1 - 1);
  std::string_view version = line.substr(sp2 + 1);
  if (!IsToken(method)) return Error(400, "malformed method");
  if (target.empty()) return Error(400, "empty request target");
  for (char c : target) {
    unsigned char u = static_cast<unsigned char>(c);
    if (u <= 0x20 || u >= 0x7f) return Error(400, "invalid character in request target");
  }
  int major = 0, minor = 0;
  if (!ParseVersion(version, &major, &minor)) return Error(400, "malformed HTTP version");
  if (major != 1) return Error(505, "HTTP major version " + std::to_string(major));

  HttpRequest out;
  out.method = std::string(method);
  out.target = std::string(target);
  out.version_major = major;
  out.version_minor = minor;

  if (lines.size() - 1 > limits.max_headers) {
    return Error(431, "more than " + std::to_string(limits.max_headers) + " header fields");
  }
  for (size_t i = 1; i < lines.size(); ++i) {
    std::string_view f = lines[i];
    if (f.empty()) return Error(400, "empty header line");
    if (f[0] == ' ' || f[0] == '\t') return Error(400, "obsolete line folding");
    size_t colon = f.find(':');
    if (colon == std::string_view::npos) return Error(400, "header field without colon");
    std::string_view name = f.substr(0, colon);
    if (!IsToken(name)) return Error(400, "malformed header field name");
    std::string_view value = TrimOws(f.substr(colon + 1));
    for (char c : value) {
      unsigned char u = static_cast<unsigned char>(c);
      if ((u < 0x20 && u != '\t') || u == 0x7f) {
        return Error(400, "control character in header field value");
      }
    }
    out.headers.emplace_back(Lower(name), std::string(value));
  }

  *req = std::move(out);
  ParseResult r;
  r.status = ParseStatus::kOk;
  r.consumed = skip + end + end_len;
  return r;
}

}  // namespace ukhttpd
