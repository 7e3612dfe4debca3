// A small HTTP/1.1 response reader for the tests: status, lower-cased header
// names, and a Content-Length body. Independent of the server's code.
#ifndef UKTLS_TESTS_USR_SBIN_UKHTTPD_HTTP_RESPONSE_H_
#define UKTLS_TESTS_USR_SBIN_UKHTTPD_HTTP_RESPONSE_H_

#include <cctype>
#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace ukhttpd_test {

struct Response {
  int status = 0;
  std::multimap<std::string, std::string> headers;
  std::string body;
  std::string header(const std::string& name) const {
    auto it = headers.find(name);
    return it == headers.end() ? "" : it->second;
  }
  bool has(const std::string& name) const { return headers.count(name) > 0; }
};

// Parses one response from the front of |in| and removes it. |head| says the
// request was HEAD (no body follows). false if |in| does not hold a whole one.
inline bool TakeResponse(std::string* in, bool head, Response* r) {
  size_t end = in->find("\r\n\r\n");
  if (end == std::string::npos) return false;
  std::string_view h(in->data(), end);
  size_t eol = h.find("\r\n");
  std::string_view status_line = h.substr(0, eol);
  if (status_line.substr(0, 9) != "HTTP/1.1 " || status_line.size() < 12) return false;
  *r = Response();
  r->status = std::stoi(std::string(status_line.substr(9, 3)));
  while (eol != std::string_view::npos) {
    h.remove_prefix(eol + 2);
    eol = h.find("\r\n");
    std::string_view line = h.substr(0, eol);
    size_t colon = line.find(':');
    if (colon == std::string_view::npos) return false;
    std::string name(line.substr(0, colon));
    for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    std::string_view v = line.substr(colon + 1);
    while (!v.empty() && v.front() == ' ') v.remove_prefix(1);
    r->headers.emplace(name, std::string(v));
  }
  size_t body_len = 0;
  if (!head && r->has("content-length")) body_len = std::stoull(r->header("content-length"));
  if (in->size() < end + 4 + body_len) return false;
  r->body = in->substr(end + 4, body_len);
  in->erase(0, end + 4 + body_len);
  return true;
}

}  // namespace ukhttpd_test

#endif  // UKTLS_TESTS_USR_SBIN_UKHTTPD_HTTP_RESPONSE_H_
