// ukhttpd's counters: what it served and by which path its bodies left.
// Every field is a relaxed atomic so connection threads count without a lock;
// readers get a snapshot that may be mid-update across fields.
#ifndef UKTLS_USR_SBIN_UKHTTPD_COUNTERS_H_
#define UKTLS_USR_SBIN_UKHTTPD_COUNTERS_H_

#include <array>
#include <atomic>
#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

namespace ukhttpd {

class Counters {
 public:
  // The statuses ukhttpd can answer with, in the order they are reported.
  static constexpr std::array<int, 14> kStatuses = {200, 206, 301, 400, 403, 404, 405,
                                                    413, 414, 416, 431, 500, 501, 505};

  std::atomic<uint64_t> connections{0};         // accepted and handed to a thread
  std::atomic<uint64_t> connections_refused{0}; // over the connection limit
  std::atomic<uint64_t> handshakes{0};          // completed TLS handshakes
  std::atomic<uint64_t> handshake_failures{0};
  std::atomic<uint64_t> tls12{0}, tls13{0};     // handshakes by version
  // Handshakes after which OpenSSL had handed its keys to the kernel.
  std::atomic<uint64_t> ktls_tx_connections{0};
  std::atomic<uint64_t> ktls_rx_connections{0};
  std::atomic<uint64_t> requests{0};
  std::atomic<uint64_t> request_bytes{0};  // request heads and bodies read
  std::atomic<uint64_t> response_bytes{0}; // everything written: heads and bodies
  // File bodies (200/206 to GET) by the path they took, and their bytes.
  // sendfile is used exactly when KTLS TX is active on the connection and the
  // docroot offers a descriptor; otherwise the body is read and SSL_write'd,
  // which these counters call the fallback.
  std::atomic<uint64_t> bodies_sendfile{0};
  std::atomic<uint64_t> bodies_ssl_write{0};
  std::atomic<uint64_t> body_bytes_sendfile{0};
  std::atomic<uint64_t> body_bytes_ssl_write{0};
  std::atomic<uint64_t> sendfile_errors{0};
  // CPU time of the connection threads (handshake, HTTP, system calls, and
  // userland encryption when KTLS is off), added as each connection ends.
  std::atomic<uint64_t> connection_cpu_ns{0};

  void count_status(int status);
  uint64_t status(int status) const;  // 0 for a status not in kStatuses

  // {"connections":..,"responses":{"200":..},"bodies":{"sendfile":..}, ...}
  nlohmann::json to_json() const;
  // Human-readable, several lines, each starting with "ukhttpd: ".
  std::string to_text() const;

 private:
  std::array<std::atomic<uint64_t>, kStatuses.size()> by_status_{};
  std::atomic<uint64_t> other_status_{0};
};

}  // namespace ukhttpd

#endif  // UKTLS_USR_SBIN_UKHTTPD_COUNTERS_H_
