#include "usr.sbin/ktlsctl/client.h"

#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "usr.sbin/ukernd/ctlsock.h"

namespace ktlsctl {

namespace {

// A daemon that accepted the connection but does not answer within this
// long is reported instead of waited for forever.
constexpr int kReplyTimeoutSeconds = 30;

}  // namespace

Client::~Client() {
  if (fd_ >= 0) close(fd_);
}

bool Client::connect(const std::string& url, std::string* why) {
  url_ = url;
  std::string path;
  if (!ukernd::url_to_path(url, &path, why)) return false;
  fd_ = ukernd::unix_connect(path);
  if (fd_ < 0) {
    *why = strerror(errno);
    return false;
  }
  timeval tv{kReplyTimeoutSeconds, 0};
  setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  json reply;
  if (!call({{"op", "hello"}}, &reply, why)) return false;
  if (!reply.value("ok", false) || !reply["result"].is_object()) {
    *why = "not a ukernd control socket (hello refused)";
    return false;
  }
  default_kernel_ = reply["result"].value("default-kernel", "");
  return true;
}

bool Client::read_line(std::string* line, std::string* why) {
  while (true) {
    size_t nl = buf_.find('\n');
    if (nl != std::string::npos) {
      *line = buf_.substr(0, nl);
      buf_.erase(0, nl + 1);
      return true;
    }
    char chunk[8192];
    ssize_t n = recv(fd_, chunk, sizeof(chunk), 0);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      *why = "ukernd did not answer within " + std::to_string(kReplyTimeoutSeconds) + "s";
      return false;
    }
    if (n <= 0) {
      *why = n == 0 ? "ukernd closed the connection" : strerror(errno);
      return false;
    }
    buf_.append(chunk, n);
  }
}

bool Client::call(json req, json* reply, std::string* why,
                  const std::function<bool(const json&)>& on_event) {
  int64_t id = next_id_++;
  req["v"] = ukernd::kProtocolVersion;
  req["id"] = id;
  std::string out = ukernd::to_line(req) + "\n";
  size_t off = 0;
  while (off < out.size()) {
    ssize_t n = send(fd_, out.data() + off, out.size() - off, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      *why = std::string("send: ") + strerror(errno);
      return false;
    }
    off += n;
  }
  while (true) {
    std::string line;
    if (!read_line(&line, why)) return false;
    json j = json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (j.is_discarded() || !j.is_object()) {
      *why = "malformed reply from ukernd";
      return false;
    }
    if (j.contains("event")) {
      if (on_event && !on_event(j)) return false;
      continue;
    }
    // Replies to requests that could not be parsed carry a null id.
    if (j.contains("id") && !j["id"].is_null() && j["id"] != id) continue;
    *reply = std::move(j);
    return true;
  }
}

}  // namespace ktlsctl
