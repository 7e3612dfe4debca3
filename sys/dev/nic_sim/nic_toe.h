// The simulated NIC's TCP offload engine (TOE), the uktls stand-in for
// cxgbe(4)'s t4_tom: with `toe` enabled on a nic_sim interface, a TCP
// connection routed through it is offloaded (TF_TOE) and its TCP runs on
// the engine's own thread, with the engine's own counters; in TLS mode the
// engine also frames, encrypts and decrypts the records (TCP_TLS_MODE_TOE).
//
// Model (see README.md for the FreeBSD counterparts):
//  - Offload: tcp_offload_connect (active open) or tcp_offload_passive
//    (the SYN came in on this NIC) call tod_connect / tod_offload_socket;
//    the engine enters the 4-tuple in its table and marks the tcpcb TF_TOE.
//  - Receive: the NIC's RX thread offers every TCP frame to toe_input();
//    frames of offloaded connections are queued to the engine thread, which
//    runs tcp_input on them. The host's netisr never sees them.
//  - Transmit: tcp_output of a TF_TOE connection calls tod_output; the
//    engine runs tcp_default_output on its thread (inline when already
//    there) and transmits the segments itself (tod_send: IP and TCP
//    checksums, then the NIC's L2 output), bypassing ip_output.
//  - Timers: the connection's callout defers to the engine (tod_timer),
//    which runs tcp_timer_expire on its thread.
//  - TLS TX: records stay plaintext in so_snd (ready at once, no host
//    worker); before each output run the engine encrypts every record not
//    yet encrypted, in place (anonymous pages) or into new pages (sendfile
//    pages are never written), as the chip encrypts what it DMAs.
//  - TLS RX: ciphertext collects on sb_mtls as in SW mode, but
//    ktls_check_rx hands the socket to the engine (ktls_toe::rx_ready),
//    which decrypts whole records in order and appends TLS_GET_RECORD
//    control messages plus plaintext to so_rcv.
//  - The engine's crypto is its own, not OCF (AES-GCM with IPsec-MB,
//    nic_gcm.h: encryption straight from the record's pages, the receive
//    key expanded once; AES-CBC and HMAC with OpenSSL EVP): AES-GCM
//    (TLS 1.2, 1.3) and AES-CBC with HMAC-SHA1/256/384 (TLS 1.0-1.2), as
//    the T6's. Other suites (ChaCha20-Poly1305, SM4) get EPROTONOSUPPORT
//    and the session falls back to SW, riding the offloaded TCP.
//
// Locking: inp_lock -> sockbuf sb_mtx -> NicToe::mu_ (a leaf). The engine
// thread takes inp_lock / sb_mtx with mu_ released.
#ifndef UKTLS_SYS_DEV_NIC_SIM_NIC_TOE_H_
#define UKTLS_SYS_DEV_NIC_SIM_NIC_TOE_H_

#include <atomic>
#include <cstdint>
#include <deque>
#include <memory>
#include <thread>
#include <unordered_map>
#include <vector>

#include "sys/kern/uipc_ktls.h"
#include "sys/netinet/in_pcb.h"
#include "sys/netinet/tcp_offload.h"
#include "sys/sys/counter.h"
#include "sys/sys/lock.h"
#include "sys/sys/mbuf.h"
#include "sys/sys/sysctl.h"

namespace uk {

class NicSim;
struct NicGcmKey;
struct socket;
struct toepcb;

// dev.nic_sim.N.toe.* counters.
struct nic_toe_stats {
  counter_u64 conns;           // connections offloaded
  counter_u64 rx_frames, rx_bytes;  // frames taken from the NIC
  counter_u64 rx_drops;        // engine input queue full
  counter_u64 tx_frames, tx_bytes;  // segments the engine transmitted
  counter_u64 tcp_input;       // segments through TCP input on the engine
  counter_u64 tcp_output;      // TCP output runs on the engine
  counter_u64 timers;          // timer runs on the engine
  counter_u64 tls_tx_records, tls_tx_bytes;  // records encrypted, bytes
  counter_u64 tls_rx_records, tls_rx_bytes;  // records decrypted, bytes
  counter_u64 tls_rx_errors;   // records failing authentication / format
};

class NicToe final : public toedev,
                     public ktls_toe,
                     public std::enable_shared_from_this<NicToe> {
 public:
  // The engine of nic (which outlives its use: shutdown() stops it).
  explicit NicToe(NicSim* nic);
  ~NicToe() override;
  NicToe(const NicToe&) = delete;
  NicToe& operator=(const NicToe&) = delete;

  // Stops the engine thread, drops the offloaded connections
  // (ECONNABORTED, as when a TOE goes away) and removes the sysctls.
  // Idempotent; called by NicSim::shutdown().
  void shutdown() ABSL_LOCKS_EXCLUDED(mu_);

  // Whether any connection is offloaded (the NIC only offers frames then).
  bool active() const { return nconns_.load(std::memory_order_relaxed) > 0; }
  // NIC RX thread: a received Ethernet frame with good checksums. True if
  // it belongs to an offloaded connection (the engine took it).
  bool toe_input(const uint8_t* frame, size_t len) ABSL_LOCKS_EXCLUDED(mu_);

  nic_toe_stats& stats() { return st_; }

  // toedev (tcp_offload.h); called with the connection's inp_lock held.
  int tod_connect(tcpcb* tp, uint32_t nexthop) override;
  int tod_offload_socket(tcpcb* tp, uint32_t nexthop) override;
  int tod_output(tcpcb* tp) override;
  int tod_send(tcpcb* tp, mbuf* m) override;
  int tod_timer(tcpcb* tp) override;
  void tod_pcb_detach(tcpcb* tp) override;
  int tod_alloc_tls_session(tcpcb* tp, ktls_session* tls,
                            int direction) override;
  // ktls_toe (uipc_ktls.h); called with so_rcv's sb_mtx held.
  bool rx_ready(socket* so) override ABSL_LOCKS_EXCLUDED(mu_);

 private:
  int attach(tcpcb* tp, uint32_t nexthop) ABSL_LOCKS_EXCLUDED(mu_);
  void run() ABSL_LOCKS_EXCLUDED(mu_);
  bool on_engine() const {
    return td_id_.load(std::memory_order_relaxed) == std::this_thread::get_id();
  }
  // Encrypts the TOE records of so_snd, then tcp_default_output.
  int output_now(tcpcb* tp, toepcb* toep);
  // False when a record could not be encrypted (the connection is dropped).
  bool tls_tx_prep(tcpcb* tp, toepcb* toep);
  int encrypt_record(toepcb* toep, mbuf* m);
  bool encrypt_gcm(toepcb* toep, mbuf* m, vm_page* const* out);
  bool encrypt_cbc(toepcb* toep, mbuf* m, vm_page* const* out, int plen);
  void rx_decrypt(socket* so);
  int decrypt_record(ktls_session* tls, uint8_t* rec, int len, uint64_t seqno,
                     tls_get_record* tgr);
  const NicGcmKey* rx_gcm_key(const tls_session_params& p);
  void register_sysctls();

  NicSim* const nic_;
  kernel& k_;

  mutable Mutex mu_;
  CondVar cv_;
  std::unordered_map<inpcb_key, std::shared_ptr<toepcb>, inpcb_key_hash> conns_
      ABSL_GUARDED_BY(mu_);
  std::deque<mbuf*> inq_ ABSL_GUARDED_BY(mu_);            // IPv4 packets
  std::vector<std::shared_ptr<toepcb>> work_ ABSL_GUARDED_BY(mu_);
  std::vector<socket*> rxq_ ABSL_GUARDED_BY(mu_);         // each referenced
  std::vector<RefPtr<inpcb>> graveyard_ ABSL_GUARDED_BY(mu_);
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  bool shut_ ABSL_GUARDED_BY(mu_) = false;
  bool started_ ABSL_GUARDED_BY(mu_) = false;
  std::thread td_;
  std::atomic<std::thread::id> td_id_{};
  std::atomic<int> nconns_{0};
  std::atomic<uint16_t> ip_id_{1};

  // Engine-thread scratch: a record's bytes while it is encrypted or
  // decrypted (the engine's on-chip memory).
  std::vector<uint8_t> buf_;
  // Engine thread only: the last AES-GCM RX key seen, expanded
  // (rx_gcm_key).
  std::unique_ptr<NicGcmKey> rx_key_;
  uint8_t rx_key_bytes_[32] = {};
  size_t rx_key_len_ = 0;

  nic_toe_stats st_;
  std::unique_ptr<sysctl_ctx_list> sysctl_;
};

// Creates nic's engine; its thread starts with the first connection.
std::shared_ptr<NicToe> nic_toe_create(NicSim* nic);

}  // namespace uk

#endif  // UKTLS_SYS_DEV_NIC_SIM_NIC_TOE_H_
