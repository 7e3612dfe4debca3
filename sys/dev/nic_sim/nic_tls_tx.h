// The simulated NIC's inline TLS transmit engine: what mlx5en's TLS TX
// offload does for ktls(4)'s IFNET mode. A connection allocates a TLS (or
// TLS_RATE_LIMIT) send tag holding its session's keys; every packet it sends
// carries the tag; TCP segments hold framed but plaintext records (header
// and explicit nonce written, trailer space reserved) and the engine
// encrypts the TLS bytes of each frame in place, filling in the GCM tag.
//
// Cipher state. The engine keeps, per tag, the AES-GCM state of the record
// it was last working on and the TCP sequence number it expects next, so a
// stream of in-order segments costs exactly its own bytes. A segment that
// does not continue that state (a retransmission, reordering by TSO, or any
// segment when dev.nic_sim.N.tls_tx_keep_state=0) and starts inside a record
// forces a rebuild: the engine re-reads the record's preceding bytes from
// the packet's M_EXTPG pages (the stack still holds them: every slice of a
// record shares the record's pages) and runs them through the cipher again.
// Those bytes are the "rebuild" bytes, the real cost of NIC TLS under loss.
//
// Ciphertext is what ktls_ocf produces for the same record: AES-GCM with
// the nonce and AAD of RFC 5288 (TLS 1.2: salt || explicit nonce from the
// record header; AAD = seqno, type, version, length) or RFC 8446 (TLS 1.3:
// IV xor seqno; AAD = the outer header), from IPsec-MB's incremental GCM
// (nic_gcm.h; the tests check every record with OpenSSL EVP).
//
// Supported: AES-128/256-GCM, TLS 1.2 and 1.3 (as mlx5). Other suites get
// EOPNOTSUPP at tag allocation, so KTLS falls back to software.
//
// Other offload kinds (TLS_RX tags, rx_frame, toe_input) are not this
// engine's: they go to the engine installed with set_next(), if any.
//
// Threads: tx_frame runs on the NIC's TX thread, the only user of a tag's
// cipher state (a tag belongs to one NIC; the NIC refuses foreign tags).
// snd_tag_alloc runs on the allocating thread; tag modify/query/free on any.
#ifndef UKTLS_SYS_DEV_NIC_SIM_NIC_TLS_TX_H_
#define UKTLS_SYS_DEV_NIC_SIM_NIC_TLS_TX_H_

#include <atomic>
#include <memory>

#include "sys/dev/nic_sim/nic_sim.h"
#include "sys/sys/counter.h"
#include "sys/sys/lock.h"
#include "sys/sys/sysctl.h"

namespace uk {

// dev.nic_sim.N.tls_tx.* (shared with the engine's tags, which may outlive
// the engine).
struct NicTlsTxStats {
  counter_u64 tags;           // gauge: TLS / TLS_RATE_LIMIT tags alive
  counter_u64 tag_allocs;     // tags allocated
  counter_u64 tag_failures;   // allocations refused (suite, memory)
  counter_u64 frames;         // frames with TLS bytes encrypted
  counter_u64 bytes;          // plaintext bytes encrypted (retransmits too)
  counter_u64 records;        // records whose tag was computed
  counter_u64 rebuilds;       // segments that needed the cipher state rebuilt
  counter_u64 rebuild_bytes;  // record bytes re-read to rebuild it
  counter_u64 errors;         // frames refused (unreadable record, crypto)
};

class NicTlsTx final : public NicSimOffload {
 public:
  // The engine of nic; registers dev.nic_sim.<unit>.tls_tx.*.
  explicit NicTlsTx(NicSim& nic);
  ~NicTlsTx() override;
  NicTlsTx(const NicTlsTx&) = delete;
  NicTlsTx& operator=(const NicTlsTx&) = delete;

  // The engine that handles what this one does not (TLS_RX tags, received
  // frames, TOE). May be null. Set before traffic, or at any time: calls
  // already in progress keep the engine they started with.
  void set_next(std::shared_ptr<NicSimOffload> next) ABSL_LOCKS_EXCLUDED(mu_);
  std::shared_ptr<NicSimOffload> next() const ABSL_LOCKS_EXCLUDED(mu_);

  int snd_tag_alloc(NicSim& nic, const if_snd_tag_alloc_params& p,
                    m_snd_tag** out) override;
  int tx_frame(NicSim& nic, m_snd_tag* tag, const mbuf* m, uint8_t* frame,
               size_t len) override;
  void rx_frame(NicSim& nic, uint8_t* frame, size_t len,
                uint32_t* csum_flags) override;
  bool toe_input(NicSim& nic, const uint8_t* frame, size_t len) override;

  NicTlsTxStats& stats() { return *st_; }

 private:
  kernel& k_;
  std::shared_ptr<NicTlsTxStats> st_;
  // dev.nic_sim.N.tls_tx_keep_state: 1 (default) keeps the cipher state of
  // in-order segments; 0 rebuilds it for every segment that starts inside
  // a record (a NIC without per-flow TX state).
  std::atomic<int> keep_state_{1};
  mutable Mutex mu_;
  std::shared_ptr<NicSimOffload> next_ ABSL_GUARDED_BY(mu_);
  std::unique_ptr<sysctl_ctx_list> sysctl_;
};

// Installs a NicTlsTx on nic (called when the NIC is created), keeping any
// engine already installed as its next.
void nic_tls_tx_attach(NicSim& nic);

}  // namespace uk

#endif  // UKTLS_SYS_DEV_NIC_SIM_NIC_TLS_TX_H_
