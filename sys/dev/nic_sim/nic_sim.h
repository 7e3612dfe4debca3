// nic_sim: a simulated Ethernet NIC, the uktls stand-in for mlx5en/cxgbe.
// Interfaces nic_sim0, nic_sim1, ... are created with
// uk_ifconfig(k, "nic_simN", "create") and joined by uk_wire() (wire.h).
//
// Hardware model. A NIC has one TX ring and one RX ring, each serviced by
// its own thread, as a real NIC's DMA engines and interrupt handler:
//   stack -> output() [ARP, Ethernet encapsulation] -> TX ring -> TX thread
//     [TSO, TLS engine hook, checksum offload, pacing, capture] -> wire
//   wire -> rx_dma() -> RX ring -> RX thread ("interrupt") [capture, ARP,
//     checksum offload, LRO, TLS engine hook] -> input callback (netisr)
// Frames cross the wire as bytes; each kernel builds its own mbufs.
//
// Capabilities are FreeBSD's (if_cap.h): the NIC can do RXCSUM, TXCSUM,
// TSO4, LRO, TOE4, TXRTLMT (paced send tags), MEXTPG, TXTLS4/6, TXTLS_RTLMT
// and RXTLS4/6; all are off
// until ifconfig enables them. Driver rules (as FreeBSD drivers do): TSO
// needs TXCSUM, so -txcsum also clears TSO; TXTLS needs unmapped mbufs, so
// txtls also sets MEXTPG and -mextpg clears TXTLS; TXTLS_RTLMT needs TXTLS.
//
// Hooks for NIC TLS offload and TOE: snd_tag_alloc() hands TLS, TLS_RX and
// TLS_RATE_LIMIT tags to an installed NicSimOffload engine; the TX thread
// gives it every frame whose packet carries such a tag (inline encryption),
// and the RX thread gives it every received TCP frame (inline decryption:
// the engine marks the packet CSUM_TLS_DECRYPTED / M_DECRYPTED).
//
// Locking, outermost first: NicSim::cfg_mu_ (addresses, wire, hooks) ->
// NicSim::txmu_ / rxmu_ (rings) -> Wire's locks. The wire's receive callback
// (rx_dma) takes only rxmu_. No NIC lock is held while calling the input
// callback, the offload engine or the wire.
#ifndef UKTLS_SYS_DEV_NIC_SIM_NIC_SIM_H_
#define UKTLS_SYS_DEV_NIC_SIM_NIC_SIM_H_

#include <atomic>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "sys/dev/nic_sim/wire.h"
#include "sys/net/bpf.h"
#include "sys/net/ethernet.h"
#include "sys/net/if_cap.h"
#include "sys/net/if_snd_tag.h"
#include "sys/netinet/if_ether.h"
#include "sys/sys/counter.h"
#include "sys/sys/lock.h"
#include "sys/sys/mbuf.h"
#include "sys/sys/sysctl.h"

namespace uk {

struct kernel;
struct ifnet;
class NicSim;
class NicToe;  // the TCP offload engine, nic_toe.h

// What the NIC can do, and the subset on at creation (none).
constexpr uint32_t NIC_SIM_CAPS = IFCAP_RXCSUM | IFCAP_TXCSUM | IFCAP_TSO4 |
                                  IFCAP_LRO | IFCAP_TOE4 | IFCAP_TXRTLMT |
                                  IFCAP_MEXTPG |
                                  IFCAP_TXTLS4 | IFCAP_TXTLS6 |
                                  IFCAP_TXTLS_RTLMT;
constexpr uint32_t NIC_SIM_CAPS2 = IFCAP2_RXTLS;
constexpr int NIC_SIM_MTU_MIN = 68;  // IPv4's minimum (RFC 791)
constexpr int NIC_SIM_TX_RING = 4096;
constexpr int NIC_SIM_RX_RING = 4096;
// Largest packet TSO accepts and LRO builds (IP_MAXPACKET).
constexpr int NIC_SIM_TSO_MAX = 65535;

// The NIC's TLS/TOE engine, installed by the offload code ([G]). Calls come
// from the NIC's own threads with no NIC lock held.
class NicSimOffload {
 public:
  virtual ~NicSimOffload() = default;
  // Allocates a TLS, TLS_RATE_LIMIT or TLS_RX tag (capability checks done).
  virtual int snd_tag_alloc(NicSim& nic, const if_snd_tag_alloc_params& p,
                            m_snd_tag** out) = 0;
  // One frame (Ethernet..payload, checksums not yet filled) of a packet that
  // carries a TLS tag: encrypt the TLS bytes of its TCP payload in place.
  // m is the packet the frame was cut from (TSO may cut several). Non-zero
  // drops the frame (counted in oerrors).
  virtual int tx_frame(NicSim& nic, m_snd_tag* tag, const mbuf* m,
                       uint8_t* frame, size_t len) = 0;
  // A received TCP frame (checksums verified if rxcsum is on): may decrypt
  // records in place and add CSUM_TLS_DECRYPTED to *csum_flags.
  virtual void rx_frame(NicSim& nic, uint8_t* frame, size_t len,
                        uint32_t* csum_flags) = 0;
  // TOE: with toe enabled, every received TCP frame with good checksums is
  // offered here first; returning true means the engine consumed it (its
  // connection lives in the NIC) and the host stack never sees it. The
  // engine sends its own frames with NicSim::transmit().
  virtual bool toe_input(NicSim& nic, const uint8_t* frame, size_t len) {
    (void)nic;
    (void)frame;
    (void)len;
    return false;
  }
};

// The NIC's own rate-limit tags (RATE_LIMIT / UNLIMITED), and the pacing
// state every tag with a rate uses. The offload engine's tags derive from
// this too (with softc = the NicSim), so the TX thread can pace them.
struct nic_sim_tag : m_snd_tag {
  std::atomic<uint64_t> max_rate{0};  // bytes/s; 0 = unpaced
  uint64_t next_tx_ns = 0;            // TX thread only
};

// Per-interface counters (dev.nic_sim.N.*).
struct nic_sim_stats {
  counter_u64 ipackets, ibytes, ierrors, iqdrops;
  counter_u64 opackets, obytes, oerrors, oqdrops;
  counter_u64 rx_filtered;   // not addressed to us (no promiscuous mode)
  counter_u64 rx_csum_ok, rx_csum_bad;
  counter_u64 tx_csum;       // packets whose checksums the NIC computed
  counter_u64 tso_packets, tso_segments;
  counter_u64 lro_queued, lro_flushed;
  counter_u64 arp_requests_tx, arp_replies_tx;
  counter_u64 paced_waits;   // times a rate-limited tag held the TX ring
  counter_u64 tls_tx_frames, tls_rx_frames;
  counter_u64 toe_rx_frames;  // frames consumed by the TOE engine
  counter_u64 imcasts, omcasts;  // broadcast/multicast frames
};

class NicSim final {
 public:
  // Creates nic_sim<unit> of kernel k and starts its threads.
  NicSim(kernel& k, int unit, counter_u64* num_snd_tags);
  // shutdown(), then frees the rest.
  ~NicSim();
  // Unplugs the wire, stops and joins both threads and frees queued
  // packets; afterwards output() fails with ENETDOWN. Idempotent. Called by
  // destroy and by kernel halt, even while other references remain.
  void shutdown();
  NicSim(const NicSim&) = delete;
  NicSim& operator=(const NicSim&) = delete;

  kernel& k() const { return k_; }
  int unit() const { return unit_; }
  const std::string& name() const { return name_; }
  const ether_addr& mac() const { return mac_; }

  // ifconfig. Each returns 0 or an errno (with a message in *err).
  void set_up(bool up);
  bool is_up() const { return up_.load(); }
  int set_mtu(int mtu, std::string* err);
  int mtu() const { return mtu_.load(); }
  // Applies ifconfig's capability words: bits outside the capabilities are
  // ignored (ifconfig masks them), then the driver rules above.
  int set_caps(uint32_t on, uint32_t off, uint32_t on2, uint32_t off2,
               std::string* err);
  uint32_t capabilities() const { return NIC_SIM_CAPS; }
  uint32_t capabilities2() const { return NIC_SIM_CAPS2; }
  uint32_t capenable() const { return capenable_.load(); }
  uint32_t capenable2() const { return capenable2_.load(); }
  // The IPv4 address ARP answers for (network order; 0 = none).
  void set_inet(uint32_t addr, uint32_t mask) ABSL_LOCKS_EXCLUDED(cfg_mu_);
  uint32_t inet_addr() const ABSL_LOCKS_EXCLUDED(cfg_mu_);
  uint32_t inet_mask() const ABSL_LOCKS_EXCLUDED(cfg_mu_);

  // Plugs the NIC into side `side` of a wire / unplugs it.
  int wire_attach(std::shared_ptr<Wire> w, int side) ABSL_LOCKS_EXCLUDED(cfg_mu_);
  void wire_detach() ABSL_LOCKS_EXCLUDED(cfg_mu_);
  std::shared_ptr<Wire> wire(int* side = nullptr) const ABSL_LOCKS_EXCLUDED(cfg_mu_);
  // Carrier: a wire whose far end is plugged in.
  bool link_active() const;

  // The stack's input path: receives IPv4 packets, Ethernet header
  // stripped, m_pkthdr.csum_flags set as FreeBSD drivers set them.
  using InputFn = std::function<void(MbufPtr m)>;
  void set_input(InputFn fn) ABSL_LOCKS_EXCLUDED(cfg_mu_);
  void set_offload(std::shared_ptr<NicSimOffload> e) ABSL_LOCKS_EXCLUDED(cfg_mu_);
  // The TCP offload engine (nic_toe.h), installed at creation; it is
  // offered received TCP frames before the TLS engine and the stack, and
  // stopped by shutdown().
  void set_toe(std::shared_ptr<NicToe> t) ABSL_LOCKS_EXCLUDED(cfg_mu_);
  std::shared_ptr<NicToe> toe() const ABSL_LOCKS_EXCLUDED(cfg_mu_);
  std::shared_ptr<NicSimOffload> offload() const ABSL_LOCKS_EXCLUDED(cfg_mu_);

  // Sends an IPv4 packet to next hop `nexthop` (network order) on this
  // link: resolves it with ARP (the packet waits while a request is out),
  // adds the Ethernet header, queues it on the TX ring. Consumes m.
  // ENETDOWN when down, EMSGSIZE when larger than the MTU and not a TSO
  // packet, ENOBUFS when the ring is full, EHOSTDOWN when ARP gave up.
  int output(MbufPtr m, uint32_t nexthop);
  // Queues a complete Ethernet frame (if_transmit). Consumes m.
  int transmit(MbufPtr m);

  // Static neighbour entries, and the ARP table itself.
  ArpTable& arp() { return arp_; }

  // Send tags (if_snd_tag_alloc). RATE_LIMIT / UNLIMITED are the NIC's
  // own; TLS kinds need the capability enabled (else EOPNOTSUPP) and an
  // offload engine (else EOPNOTSUPP).
  int snd_tag_alloc(const if_snd_tag_alloc_params& p, m_snd_tag** out);
  counter_u64* num_snd_tags() const { return num_snd_tags_; }
  // The receive-side TLS engine (nic_tls_rx.h), separate from the TX/TOE
  // engine of set_offload(): it allocates TLS_RX tags and sees every
  // received TCP frame after the main engine.
  void set_rx_offload(std::shared_ptr<NicSimOffload> e) ABSL_LOCKS_EXCLUDED(cfg_mu_);

  // Interrupt moderation: after the first frame of a burst the RX thread
  // waits this long (or for a full batch) before processing, so LRO sees
  // more of the burst (as em(4)'s rx_int_delay). 0 = interrupt per wakeup.
  void set_rx_coalesce_us(int us) { rx_coalesce_us_.store(us); }

  bpf_if& bpf() { return bpf_; }
  // dev.nic_sim.N's sysctl context (engines add their oids); null after
  // shutdown().
  sysctl_ctx_list* sysctl_ctx() { return sysctl_.get(); }
  nic_sim_stats& stats() { return st_; }
  // Packets waiting on the TX ring (the send queue's ifq_len).
  int tx_queue_len() ABSL_LOCKS_EXCLUDED(txmu_);
  // ifconfig(8)-style description of the interface.
  std::string ifconfig_status() const;
  // Waits until both rings are empty and no frame is being processed.
  bool quiesce(uint64_t timeout_ns);

  // The interface as the network stack sees it (an ifnet in k's interface
  // list, attached by nic_sim_create); null in a kernel without a stack.
  ifnet* ifp() const { return ifp_.get(); }
  void attach_ifnet(const std::shared_ptr<NicSim>& self);

  // Receive callback for the wire (the NIC's RX DMA). Public for tests.
  void rx_dma(const uint8_t* frame, size_t len, uint64_t arrival_ns);
  // The same, taking the wire's buffer into the RX ring without a copy.
  void rx_dma(std::vector<uint8_t>&& frame, uint64_t arrival_ns);

 private:
  struct RxFrame {
    std::vector<uint8_t> bytes;
    uint64_t arrival_ns;
  };
  void tx_loop();
  void rx_loop();
  void tx_one(MbufPtr m, Wire* w, int side);
  void tx_tso(const mbuf* m, int len, int mtu, m_snd_tag* tag, uint32_t csum,
              NicSimOffload* eng, Wire* w, int side);
  void tx_frame(std::vector<uint8_t>& f, const mbuf* m, m_snd_tag* tag,
                uint32_t csum_flags, NicSimOffload* eng, Wire* w, int side);
  void rx_batch(std::vector<RxFrame>& batch);
  void rx_arp(const uint8_t* frame, size_t len);
  void deliver(std::vector<uint8_t>& f, uint32_t csum_flags, const InputFn& in);
  void deliver(mbuf* m, uint32_t csum_flags, const InputFn& in);
  int enqueue_tx(MbufPtr m);
  void send_arp(uint16_t op, const ether_addr& dst, const ether_addr& tha,
                uint32_t tpa);
  void register_sysctls();
  // Mirrors flags, MTU, capabilities and if_hwassist into the ifnet.
  void sync_ifnet();

  kernel& k_;
  const int unit_;
  const std::string name_;
  const ether_addr mac_;
  counter_u64* const num_snd_tags_;

  std::atomic<bool> up_{false};
  std::atomic<int> mtu_{ETHERMTU};
  std::atomic<uint32_t> capenable_{0};
  std::atomic<uint32_t> capenable2_{0};
  std::atomic<int> rx_coalesce_us_{0};

  mutable Mutex cfg_mu_;
  uint32_t addr_ ABSL_GUARDED_BY(cfg_mu_) = 0;
  uint32_t mask_ ABSL_GUARDED_BY(cfg_mu_) = 0;
  std::shared_ptr<Wire> wire_ ABSL_GUARDED_BY(cfg_mu_);
  int side_ ABSL_GUARDED_BY(cfg_mu_) = 0;
  InputFn input_ ABSL_GUARDED_BY(cfg_mu_);
  std::shared_ptr<NicSimOffload> offload_ ABSL_GUARDED_BY(cfg_mu_);
  std::shared_ptr<NicSimOffload> rx_offload_ ABSL_GUARDED_BY(cfg_mu_);
  std::shared_ptr<NicToe> toe_ ABSL_GUARDED_BY(cfg_mu_);

  ArpTable arp_;
  bpf_if bpf_;
  nic_sim_stats st_;

  Mutex txmu_;
  CondVar txcv_;
  std::deque<MbufPtr> txq_ ABSL_GUARDED_BY(txmu_);
  bool tx_busy_ ABSL_GUARDED_BY(txmu_) = false;
  bool stop_tx_ ABSL_GUARDED_BY(txmu_) = false;
  std::atomic<bool> dead_{false};

  Mutex rxmu_;
  CondVar rxcv_;
  std::deque<RxFrame> rxq_ ABSL_GUARDED_BY(rxmu_);
  bool rx_busy_ ABSL_GUARDED_BY(rxmu_) = false;
  bool stop_rx_ ABSL_GUARDED_BY(rxmu_) = false;

  std::unique_ptr<sysctl_ctx_list> sysctl_;
  RefPtr<ifnet> ifp_;  // set once by attach_ifnet, before any traffic
  std::thread tx_thread_, rx_thread_;
};

// Per-kernel driver state: the nic_sim units and kern.ipc.num_snd_tags.
struct NicSimState final {
  explicit NicSimState(kernel& k);
  ~NicSimState();
  kernel& k;
  counter_u64& num_snd_tags;  // k.mb's: tags may outlive the NICs
  Mutex mu;
  std::map<int, std::shared_ptr<NicSim>> units ABSL_GUARDED_BY(mu);
  sysctl_ctx_list sysctl_ctx;
};

// Creates / destroys nic_sim<unit>: EEXIST, ENXIO.
int nic_sim_create(kernel& k, int unit);
int nic_sim_destroy(kernel& k, int unit);
// Finds an interface by name ("nic_sim3"); null if none.
std::shared_ptr<NicSim> nic_sim_find(kernel& k, std::string_view ifname);
// Applies an ifconfig argument string to nic_sim<unit> (creating it for
// "create"). Errors carry a message in *err.
int nic_sim_ifconfig(kernel& k, std::string_view ifname, std::string_view args,
                     std::string* err);
// Joins two interfaces with a wire (uk_wire). Joining the same two again
// changes the wire's parameters in place.
int nic_sim_wire(kernel& a, std::string_view ifa, kernel& b,
                 std::string_view ifb, std::string_view params, std::string* err);

// Builds a packet-header mbuf chain holding a copy of len bytes (m_devget).
mbuf* m_devget(kernel& k, const uint8_t* buf, int len);

}  // namespace uk

#endif  // UKTLS_SYS_DEV_NIC_SIM_NIC_SIM_H_
