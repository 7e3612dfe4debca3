// ktlsctl's side of the ukernd control protocol: one connection, requests
// sent one at a time, replies (and the event lines of streaming requests)
// read back in order.
#ifndef UKTLS_USR_SBIN_KTLSCTL_CLIENT_H_
#define UKTLS_USR_SBIN_KTLSCTL_CLIENT_H_

#include <functional>
#include <string>

#include "usr.sbin/ukernd/protocol.h"

namespace ktlsctl {

using ukernd::json;

class Client final {
 public:
  Client() = default;
  ~Client();
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  // Connects to |url| and exchanges hello. On failure returns false with
  // *why in words (the caller adds how to start a daemon).
  bool connect(const std::string& url, std::string* why);

  // Sends |req| (v and id are filled in) and returns the reply. Event
  // lines before the reply go to |on_event| (if set). On a transport
  // failure returns false with *why set.
  bool call(json req, json* reply, std::string* why,
            const std::function<bool(const json&)>& on_event = nullptr);

  const std::string& url() const { return url_; }
  const std::string& default_kernel() const { return default_kernel_; }

 private:
  bool read_line(std::string* line, std::string* why);

  int fd_ = -1;
  std::string url_;
  std::string default_kernel_;
  std::string buf_;
  int64_t next_id_ = 1;
};

}  // namespace ktlsctl

#endif  // UKTLS_USR_SBIN_KTLSCTL_CLIENT_H_
