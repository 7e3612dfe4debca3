// Host sockets for ukhttpd_host: the Socket and Listener of transport.h over
// the host kernel's TCP. The uktls adapter replaces exactly this file pair
// (README.md, "The uktls adapter").
#ifndef UKTLS_USR_SBIN_UKHTTPD_HOST_TRANSPORT_H_
#define UKTLS_USR_SBIN_UKHTTPD_HOST_TRANSPORT_H_

#include <netinet/in.h>

#include <atomic>
#include <memory>
#include <string>

#include "usr.sbin/ukhttpd/transport.h"

namespace ukhttpd {

class HostSocket final : public Socket {
 public:
  // Takes ownership of the connected descriptor |fd|.
  HostSocket(int fd, std::string peer) : fd_(fd), peer_(std::move(peer)) {}
  ~HostSocket() override;

  BIO* new_bio() override;
  int sendfile(int fd, uint64_t off, uint64_t len) override;
  void shutdown() override;
  std::string peer() override { return peer_; }

 private:
  const int fd_;
  const std::string peer_;
};

class HostListener final : public Listener {
 public:
  // Listens on |addr| ("127.0.0.1:8443", "[::1]:0"); port 0 picks one.
  // |idle_timeout_s| > 0 sets SO_RCVTIMEO/SO_SNDTIMEO on accepted sockets so
  // an idle or stalled client cannot hold a thread forever. 0 or an errno;
  // |*what| says which step failed.
  static int Open(const std::string& addr, int idle_timeout_s,
                  std::unique_ptr<HostListener>* out, std::string* what);
  ~HostListener() override;

  std::unique_ptr<Socket> accept() override;
  void close() override;
  // The bound address, "127.0.0.1:43125".
  std::string local_address() const;
  int port() const;

 private:
  HostListener(int fd, int idle_timeout_s) : fd_(fd), idle_timeout_s_(idle_timeout_s) {}
  const int fd_;
  const int idle_timeout_s_;
  std::atomic<bool> closed_{false};
};

// Parses "ADDR:PORT" / "[ADDR6]:PORT" into a sockaddr; false if malformed.
bool ParseHostPort(const std::string& s, struct sockaddr_storage* ss, socklen_t* len);

}  // namespace ukhttpd

#endif  // UKTLS_USR_SBIN_UKHTTPD_HOST_TRANSPORT_H_
