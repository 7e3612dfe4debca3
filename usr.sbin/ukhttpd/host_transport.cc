#include "usr.sbin/ukhttpd/host_transport.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/tcp.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>

namespace ukhttpd {
namespace {

std::string FormatAddr(const struct sockaddr* sa) {
  char buf[INET6_ADDRSTRLEN] = "?";
  if (sa->sa_family == AF_INET) {
    auto* in = reinterpret_cast<const struct sockaddr_in*>(sa);
    ::inet_ntop(AF_INET, &in->sin_addr, buf, sizeof(buf));
    return std::string(buf) + ":" + std::to_string(ntohs(in->sin_port));
  }
  if (sa->sa_family == AF_INET6) {
    auto* in6 = reinterpret_cast<const struct sockaddr_in6*>(sa);
    ::inet_ntop(AF_INET6, &in6->sin6_addr, buf, sizeof(buf));
    return "[" + std::string(buf) + "]:" + std::to_string(ntohs(in6->sin6_port));
  }
  return "?";
}

}  // namespace

bool ParseHostPort(const std::string& s, struct sockaddr_storage* ss, socklen_t* len) {
  std::string host, port;
  if (!s.empty() && s[0] == '[') {
    size_t close = s.find(']');
    if (close == std::string::npos || close + 1 >= s.size() || s[close + 1] != ':') return false;
    host = s.substr(1, close - 1);
    port = s.substr(close + 2);
  } else {
    size_t colon = s.rfind(':');
    if (colon == std::string::npos) return false;
    host = s.substr(0, colon);
    port = s.substr(colon + 1);
  }
  if (port.empty() || port.size() > 5 || port.find_first_not_of("0123456789") != std::string::npos)
    return false;
  unsigned long p = std::stoul(port);
  if (p > 65535) return false;
  std::memset(ss, 0, sizeof(*ss));
  auto* in = reinterpret_cast<struct sockaddr_in*>(ss);
  if (::inet_pton(AF_INET, host.c_str(), &in->sin_addr) == 1) {
    in->sin_family = AF_INET;
    in->sin_port = htons(static_cast<uint16_t>(p));
    *len = sizeof(*in);
    return true;
  }
  auto* in6 = reinterpret_cast<struct sockaddr_in6*>(ss);
  if (::inet_pton(AF_INET6, host.c_str(), &in6->sin6_addr) == 1) {
    in6->sin6_family = AF_INET6;
    in6->sin6_port = htons(static_cast<uint16_t>(p));
    *len = sizeof(*in6);
    return true;
  }
  return false;
}

HostSocket::~HostSocket() { ::close(fd_); }

BIO* HostSocket::new_bio() { return BIO_new_socket(fd_, BIO_NOCLOSE); }

int HostSocket::sendfile(int fd, uint64_t off, uint64_t len) {
  off_t o = static_cast<off_t>(off);
  while (len > 0) {
    ssize_t n = ::sendfile(fd_, fd, &o, static_cast<size_t>(std::min<uint64_t>(len, 1 << 30)));
    if (n < 0) {
      if (errno == EINTR) continue;
      return errno;
    }
    if (n == 0) return EIO;  // the file is shorter than promised
    len -= static_cast<uint64_t>(n);
  }
  return 0;
}

void HostSocket::shutdown() { ::shutdown(fd_, SHUT_RDWR); }

int HostListener::Open(const std::string& addr, int idle_timeout_s,
                       std::unique_ptr<HostListener>* out, std::string* what) {
  struct sockaddr_storage ss;
  socklen_t len;
  if (!ParseHostPort(addr, &ss, &len)) {
    *what = "address " + addr + " (expected ADDR:PORT)";
    return EINVAL;
  }
  int fd = ::socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    *what = "socket";
    return errno;
  }
  int one = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  if (::bind(fd, reinterpret_cast<struct sockaddr*>(&ss), len) != 0) {
    int err = errno;
    ::close(fd);
    *what = "bind " + addr;
    return err;
  }
  if (::listen(fd, 128) != 0) {
    int err = errno;
    ::close(fd);
    *what = "listen " + addr;
    return err;
  }
  out->reset(new HostListener(fd, idle_timeout_s));
  return 0;
}

HostListener::~HostListener() { ::close(fd_); }

std::unique_ptr<Socket> HostListener::accept() {
  while (!closed_.load()) {
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    int fd = ::accept4(fd_, reinterpret_cast<struct sockaddr*>(&ss), &len, SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EINTR || errno == ECONNABORTED || errno == EMFILE || errno == ENFILE) {
        if (errno == EMFILE || errno == ENFILE) ::usleep(10000);
        continue;
      }
      return nullptr;  // EINVAL after close()'s shutdown, or fatal
    }
    if (closed_.load()) {
      ::close(fd);
      return nullptr;
    }
    int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (idle_timeout_s_ > 0) {
      struct timeval tv = {idle_timeout_s_, 0};
      ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
      ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    }
    return std::make_unique<HostSocket>(fd, FormatAddr(reinterpret_cast<struct sockaddr*>(&ss)));
  }
  return nullptr;
}

void HostListener::close() {
  closed_.store(true);
  // Wakes a thread blocked in accept(2) (it returns EINVAL).
  ::shutdown(fd_, SHUT_RDWR);
}

std::string HostListener::local_address() const {
  struct sockaddr_storage ss;
  socklen_t len = sizeof(ss);
  if (::getsockname(fd_, reinterpret_cast<struct sockaddr*>(&ss), &len) != 0) return "?";
  return FormatAddr(reinterpret_cast<struct sockaddr*>(&ss));
}

int HostListener::port() const {
  struct sockaddr_storage ss;
  socklen_t len = sizeof(ss);
  if (::getsockname(fd_, reinterpret_cast<struct sockaddr*>(&ss), &len) != 0) return -1;
  if (ss.ss_family == AF_INET) return ntohs(reinterpret_cast<struct sockaddr_in*>(&ss)->sin_port);
  return ntohs(reinterpret_cast<struct sockaddr_in6*>(&ss)->sin6_port);
}

}  // namespace ukhttpd
