// HTTP/1.1 request heads (RFC 9112 section 2-5): the request line and the
// header section, parsed from bytes that a transport has already decrypted.
// Pure functions, no I/O: the connection loop in httpd.cc feeds them.
#ifndef UKTLS_USR_SBIN_UKHTTPD_HTTP_REQUEST_H_
#define UKTLS_USR_SBIN_UKHTTPD_HTTP_REQUEST_H_

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace ukhttpd {

// Size limits on what a client may send before the server answers with an
// error. A request line longer than max_request_line gets 414; a head larger
// than max_head or with more than max_headers fields gets 431.
struct RequestLimits {
  size_t max_request_line = 8192;
  size_t max_head = 16384;
  size_t max_headers = 100;
};

struct HttpRequest {
  std::string method;  // case-sensitive token, as sent
  std::string target;  // request-target, as sent (still %-encoded)
  int version_major = 1;
  int version_minor = 1;
  // Field names lower-cased; values with surrounding whitespace removed.
  std::vector<std::pair<std::string, std::string>> headers;

  // The value of the only field called |name| (lower case), or nullopt when
  // there is none. Several fields of that name are joined with ", " as RFC
  // 9110 section 5.3 allows for list-valued fields.
  std::optional<std::string> header(std::string_view name) const;
  size_t header_count(std::string_view name) const;
  // True when the comma-separated Connection field lists |token|.
  bool connection_has(std::string_view token) const;
};

enum class ParseStatus {
  kIncomplete,  // no end of head yet; read more (unless a limit said otherwise)
  kOk,
  kError,  // answer with |error_status| and close the connection
};

struct ParseResult {
  ParseStatus status = ParseStatus::kIncomplete;
  int error_status = 0;  // 400, 414, 431, 505 when status == kError
  size_t consumed = 0;   // bytes of the head, including the blank line
  std::string reason;    // for the log: what was wrong
};

// Parses one request head from the front of |buf|. Accepts CRLF and, as RFC
// 9112 section 2.2 permits, a bare LF as line end; rejects a bare CR, obsolete
// line folding, whitespace between a field name and its colon, and control
// characters in field values. Empty lines before the request line are skipped
// (RFC 9112 section 2.2).
ParseResult ParseRequestHead(std::string_view buf, const RequestLimits& limits,
                             HttpRequest* req);

// True for an RFC 9110 token (method names and field names).
bool IsToken(std::string_view s);

}  // namespace ukhttpd

#endif  // UKTLS_USR_SBIN_UKHTTPD_HTTP_REQUEST_H_
