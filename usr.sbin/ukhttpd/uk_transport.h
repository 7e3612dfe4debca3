// ukhttpd inside a uktls kernel: the Socket and Listener of transport.h over
// uk sockets of one uk_proc (lib/libuk), with OpenSSL reaching the kernel
// through lib/libuk_ssl. This file pair is the only difference from the host
// build (host_transport.h); the HTTP core, TLS and docroots are shared.
//
// Bodies: OpenSSL hands its keys to the kernel (SSL_OP_ENABLE_KTLS, the
// Linux personality of the BIO); Socket::sendfile is then uk_sendfile, whose
// M_EXTPG mbufs reference the tmpfs pages and are framed and encrypted by
// the kernel (DESIGN.md section 1).
//
// TX mode: after each handshake with KTLS TX active, UkSocket reads the
// session's mode with getsockopt(TCP_TXTLS_MODE) and, when the listener asks
// for IFNET and the session came up in SW, tries setsockopt(TCP_TXTLS_MODE,
// IFNET) as a user would; the outcome is counted in UkModeStats.
#ifndef UKTLS_USR_SBIN_UKHTTPD_UK_TRANSPORT_H_
#define UKTLS_USR_SBIN_UKHTTPD_UK_TRANSPORT_H_

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>

#include "usr.sbin/ukhttpd/transport.h"

struct uk_proc;

namespace ukhttpd {

// What the sessions of one listener ended up as. Relaxed atomics.
struct UkModeStats {
  // Connections whose TX session was in mode m (TCP_TLS_MODE_NONE..TOE)
  // after the handshake (and after a requested switch).
  std::atomic<uint64_t> tx_mode[4] = {};
  std::atomic<uint64_t> switch_attempts{0};
  std::atomic<uint64_t> switch_failures{0};
  // errno of the last failed getsockopt/setsockopt(TCP_TXTLS_MODE), 0 if none.
  std::atomic<int> last_error{0};
};

class UkSocket final : public Socket {
 public:
  // Takes ownership of uk descriptor |s| of |p|. |want_mode| is a
  // TCP_TLS_MODE_* to switch to after the handshake (0: leave as is).
  UkSocket(struct uk_proc* p, int s, std::string peer, int want_mode,
           std::shared_ptr<UkModeStats> stats);
  ~UkSocket() override;

  BIO* new_bio() override;
  int sendfile(int fd, uint64_t off, uint64_t len) override;
  void shutdown() override;
  std::string peer() override { return peer_; }
  int ktls_tx_established() override;

 private:
  struct uk_proc* const p_;
  const int s_;
  const std::string peer_;
  const int want_mode_;
  const std::shared_ptr<UkModeStats> stats_;
};

class UkListener final : public Listener {
 public:
  // Listens on |addr| ("0.0.0.0:443", "10.0.0.1:443"; port 0 picks one) in
  // |p|'s kernel. |idle_timeout_s| > 0 sets SO_RCVTIMEO/SO_SNDTIMEO on
  // accepted sockets. 0 or an errno; |*what| names the failed step.
  static int Open(struct uk_proc* p, const std::string& addr, int idle_timeout_s,
                  int want_mode, std::unique_ptr<UkListener>* out, std::string* what);
  ~UkListener() override;

  std::unique_ptr<Socket> accept() override;
  void close() override;
  int port() const;
  const std::shared_ptr<UkModeStats>& mode_stats() const { return stats_; }

 private:
  UkListener(struct uk_proc* p, int s, int idle_timeout_s, int want_mode)
      : p_(p), s_(s), idle_timeout_s_(idle_timeout_s), want_mode_(want_mode) {}
  struct uk_proc* const p_;
  const int s_;
  const int idle_timeout_s_;
  const int want_mode_;
  std::shared_ptr<UkModeStats> stats_ = std::make_shared<UkModeStats>();
  std::atomic<bool> closed_{false};
};

// "10.0.0.1:443" for an AF_INET sockaddr.
std::string FormatInet(const void* sockaddr_in);

}  // namespace ukhttpd

#endif  // UKTLS_USR_SBIN_UKHTTPD_UK_TRANSPORT_H_
