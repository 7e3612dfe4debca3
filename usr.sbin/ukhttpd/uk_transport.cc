#include "usr.sbin/ukhttpd/uk_transport.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>

#include "lib/libuk/uk.h"
#include "lib/libuk_ssl/uk_ssl.h"
#include "usr.sbin/ukhttpd/host_transport.h"

namespace ukhttpd {

std::string FormatInet(const void* sa) {
  auto* in = static_cast<const struct sockaddr_in*>(sa);
  char buf[INET_ADDRSTRLEN] = "?";
  ::inet_ntop(AF_INET, &in->sin_addr, buf, sizeof(buf));
  return std::string(buf) + ":" + std::to_string(ntohs(in->sin_port));
}

UkSocket::UkSocket(struct uk_proc* p, int s, std::string peer, int want_mode,
                   std::shared_ptr<UkModeStats> stats)
    : p_(p), s_(s), peer_(std::move(peer)), want_mode_(want_mode), stats_(std::move(stats)) {}

UkSocket::~UkSocket() { uk_close(p_, s_); }

BIO* UkSocket::new_bio() { return uk_BIO_new_socket(p_, s_, BIO_NOCLOSE); }

int UkSocket::sendfile(int fd, uint64_t off, uint64_t len) {
  while (len > 0) {
    off_t sbytes = 0;
    int rc = uk_sendfile(p_, fd, s_, static_cast<off_t>(off), static_cast<size_t>(len), nullptr,
                         &sbytes, 0);
    int err = rc == 0 ? 0 : errno;
    off += static_cast<uint64_t>(sbytes);
    len -= static_cast<uint64_t>(sbytes);
    if (rc == 0 && sbytes == 0 && len > 0) return EIO;  // the file is shorter than promised
    if (rc != 0) {
      // A send timeout (SO_SNDTIMEO) or a signal after partial progress:
      // FreeBSD's sendfile reports what it sent in sbytes; go on from there.
      if ((err == EAGAIN || err == EINTR) && sbytes > 0) continue;
      return err == EAGAIN ? ETIMEDOUT : err;
    }
  }
  return 0;
}

void UkSocket::shutdown() { uk_shutdown(p_, s_, SHUT_RDWR); }

int UkSocket::ktls_tx_established() {
  int mode = 0;
  socklen_t len = sizeof(mode);
  if (uk_getsockopt(p_, s_, IPPROTO_TCP, TCP_TXTLS_MODE, &mode, &len) != 0) {
    if (stats_) stats_->last_error.store(errno, std::memory_order_relaxed);
    return -1;
  }
  if (want_mode_ != 0 && mode != want_mode_ && mode != TCP_TLS_MODE_NONE) {
    if (stats_) stats_->switch_attempts.fetch_add(1, std::memory_order_relaxed);
    if (uk_setsockopt(p_, s_, IPPROTO_TCP, TCP_TXTLS_MODE, &want_mode_, sizeof(want_mode_)) !=
        0) {
      if (stats_) {
        stats_->switch_failures.fetch_add(1, std::memory_order_relaxed);
        stats_->last_error.store(errno, std::memory_order_relaxed);
      }
    }
    len = sizeof(mode);
    if (uk_getsockopt(p_, s_, IPPROTO_TCP, TCP_TXTLS_MODE, &mode, &len) != 0) return -1;
  }
  if (stats_ && mode >= 0 && mode < 4) stats_->tx_mode[mode].fetch_add(1, std::memory_order_relaxed);
  return mode;
}

int UkListener::Open(struct uk_proc* p, const std::string& addr, int idle_timeout_s,
                     int want_mode, std::unique_ptr<UkListener>* out, std::string* what) {
  struct sockaddr_storage ss;
  socklen_t len;
  if (!ParseHostPort(addr, &ss, &len) || ss.ss_family != AF_INET) {
    *what = "address " + addr + " (expected IPv4ADDR:PORT)";
    return EINVAL;
  }
  int s = uk_socket(p, AF_INET, SOCK_STREAM, 0);
  if (s < 0) {
    *what = "socket";
    return errno;
  }
  int one = 1;
  uk_setsockopt(p, s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  if (uk_bind(p, s, reinterpret_cast<struct sockaddr*>(&ss), len) != 0) {
    int err = errno;
    uk_close(p, s);
    *what = "bind " + addr;
    return err;
  }
  if (uk_listen(p, s, 128) != 0) {
    int err = errno;
    uk_close(p, s);
    *what = "listen " + addr;
    return err;
  }
  out->reset(new UkListener(p, s, idle_timeout_s, want_mode));
  return 0;
}

UkListener::~UkListener() { uk_close(p_, s_); }

std::unique_ptr<Socket> UkListener::accept() {
  while (!closed_.load()) {
    // Wait in short polls so close() needs no help from the kernel to wake
    // a blocked accept.
    struct pollfd pfd = {s_, POLLIN, 0};
    int n = uk_poll(p_, &pfd, 1, 200);
    if (n < 0 && errno != EINTR) return nullptr;
    if (n <= 0 || closed_.load()) continue;
    struct sockaddr_in sin = {};
    socklen_t len = sizeof(sin);
    int s = uk_accept(p_, s_, reinterpret_cast<struct sockaddr*>(&sin), &len);
    if (s < 0) {
      if (errno == EINTR || errno == ECONNABORTED || errno == EAGAIN) continue;
      return nullptr;
    }
    if (closed_.load()) {
      uk_close(p_, s);
      return nullptr;
    }
    int one = 1;
    uk_setsockopt(p_, s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (idle_timeout_s_ > 0) {
      struct timeval tv = {idle_timeout_s_, 0};
      uk_setsockopt(p_, s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
      uk_setsockopt(p_, s, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    }
    return std::make_unique<UkSocket>(p_, s, FormatInet(&sin), want_mode_, stats_);
  }
  return nullptr;
}

void UkListener::close() { closed_.store(true); }

int UkListener::port() const {
  struct sockaddr_in sin = {};
  socklen_t len = sizeof(sin);
  if (uk_getsockname(p_, s_, reinterpret_cast<struct sockaddr*>(&sin), &len) != 0) return -1;
  return ntohs(sin.sin_port);
}

}  // namespace ukhttpd
