// Test connections: KTLS connections that ukernd opens between two kernels
// of its lab (conn.open), so that sessions can be listed, switched between
// modes and captured from outside without writing a program. One end
// transmits with TCP_TXTLS_ENABLE (or Linux's TLS_TX), the other receives
// with TCP_RXTLS_ENABLE (TLS_RX) using the same keys; a receiver thread
// reads the plaintext and checks every byte against the pattern the sender
// wrote (conn.send reports mismatches, so data corruption is visible).
//
// Locking: ConnTable::mu_ guards the table; it is never held while a
// connection does I/O. Conn::send_mu serialises senders and close; Conn::mu
// guards the receiver's progress. Lock order: send_mu -> mu.
#ifndef UKTLS_USR_SBIN_UKERND_CONN_H_
#define UKTLS_USR_SBIN_UKERND_CONN_H_

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <thread>

#include "sys/sys/lock.h"
#include "usr.sbin/ukernd/protocol.h"

namespace ukernd {

struct LabKernel;

struct ConnOptions {
  std::string cipher = "aes128-gcm";  // aes128-gcm, aes256-gcm, chacha20-poly1305
  std::string version = "1.2";        // 1.2 or 1.3
  std::string personality = "freebsd";  // freebsd (TCP_*TLS_ENABLE) or linux (TCP_ULP)
};

struct Conn {
  int id = 0;
  LabKernel* tx = nullptr;  // the kernel that sends (TX session)
  LabKernel* rx = nullptr;  // the kernel that receives (RX session)
  int tx_fd = -1, rx_fd = -1;
  ConnOptions opts;
  uint64_t tx_session = 0, rx_session = 0;
  std::string local, foreign;  // the sender's address:port and the receiver's
  std::thread reader;

  uk::Mutex send_mu;
  uint64_t sent ABSL_GUARDED_BY(send_mu) = 0;
  bool closed ABSL_GUARDED_BY(send_mu) = false;

  uk::Mutex mu ABSL_ACQUIRED_AFTER(send_mu);
  uk::CondVar cv;
  uint64_t received ABSL_GUARDED_BY(mu) = 0;
  uint64_t mismatches ABSL_GUARDED_BY(mu) = 0;
  bool eof ABSL_GUARDED_BY(mu) = false;
  int rx_error ABSL_GUARDED_BY(mu) = 0;
};

class ConnTable final {
 public:
  ConnTable() = default;
  ~ConnTable() { close_all(); }
  ConnTable(const ConnTable&) = delete;
  ConnTable& operator=(const ConnTable&) = delete;

  // Opens a connection from |tx| to |rx| (the same kernel goes through
  // lo0) and enables KTLS on both ends. 0 and *result, or an errno and
  // *msg.
  int open(LabKernel& tx, LabKernel& rx, const ConnOptions& o, json* result,
           std::string* msg) ABSL_LOCKS_EXCLUDED(mu_);
  // Sends |bytes| more bytes of the pattern and waits until the receiver
  // has read and checked them.
  int send(int id, uint64_t bytes, json* result, std::string* msg)
      ABSL_LOCKS_EXCLUDED(mu_);
  int close(int id, std::string* msg) ABSL_LOCKS_EXCLUDED(mu_);
  json list() ABSL_LOCKS_EXCLUDED(mu_);
  // Closes every connection; before the kernels halt.
  void close_all() ABSL_LOCKS_EXCLUDED(mu_);

 private:
  std::shared_ptr<Conn> find(int id) ABSL_LOCKS_EXCLUDED(mu_);

  uk::Mutex mu_;
  std::map<int, std::shared_ptr<Conn>> conns_ ABSL_GUARDED_BY(mu_);
  int next_id_ ABSL_GUARDED_BY(mu_) = 1;
};

// The byte at stream offset |off| of every test connection.
inline uint8_t conn_pattern(uint64_t off) {
  return static_cast<uint8_t>((off * 2654435761u) >> 13 ^ off);
}

}  // namespace ukernd

#endif  // UKTLS_USR_SBIN_UKERND_CONN_H_
