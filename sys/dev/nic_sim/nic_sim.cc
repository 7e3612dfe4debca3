// The simulated NIC driver. See nic_sim.h for the model.
#include "sys/dev/nic_sim/nic_sim.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>

#include "sys/dev/nic_sim/nic_sim_csum.h"
#include "sys/dev/nic_sim/nic_toe.h"
#include "sys/dev/nic_sim/nic_tls_tx.h"
#include "sys/kern/kern_kthread.h"
#include "sys/kern/kernel.h"
#include "sys/kern/subr_prf.h"
#include "sys/dev/nic_sim/nic_tls_rx.h"
#include "sys/net/if_ethersubr.h"
#include "sys/net/if_ifconfig.h"
#include "sys/net/if_var.h"
#include "sys/net/route.h"

namespace uk {

UK_KERNEL_SLOT(NicSimState)

namespace {

constexpr int kMinFrame = ETHER_MIN_LEN - ETHER_CRC_LEN;  // 60: NICs pad to it
constexpr size_t kTxBatch = 64;
constexpr size_t kRxBatch = 256;
constexpr uint64_t kPaceSlackNs = 2000000;  // 2 ms of catch-up after a late wake-up

uint16_t rd16(const uint8_t* p) { return static_cast<uint16_t>(p[0] << 8 | p[1]); }
uint32_t rd32(const uint8_t* p) {
  return static_cast<uint32_t>(p[0]) << 24 | p[1] << 16 | p[2] << 8 | p[3];
}
void wr16(uint8_t* p, uint16_t v) {
  p[0] = static_cast<uint8_t>(v >> 8);
  p[1] = static_cast<uint8_t>(v);
}
void wr32(uint8_t* p, uint32_t v) {
  p[0] = static_cast<uint8_t>(v >> 24);
  p[1] = static_cast<uint8_t>(v >> 16);
  p[2] = static_cast<uint8_t>(v >> 8);
  p[3] = static_cast<uint8_t>(v);
}

// TCP flag bits.
constexpr uint8_t TH_FIN = 0x01, TH_SYN = 0x02, TH_RST = 0x04, TH_PUSH = 0x08,
                  TH_ACK = 0x10, TH_URG = 0x20, TH_CWR = 0x80;

bool is_tls_tag(uint32_t type) {
  return type == IF_SND_TAG_TYPE_TLS || type == IF_SND_TAG_TYPE_TLS_RATE_LIMIT;
}

// The NIC's own tags: pacing only.
int rate_tag_modify(m_snd_tag* mst, if_snd_tag_modify_params* p) {
  static_cast<nic_sim_tag*>(mst)->max_rate.store(p->rate_limit.max_rate);
  return 0;
}
int rate_tag_query(m_snd_tag* mst, if_snd_tag_query_params* p) {
  p->rate_limit.max_rate = static_cast<nic_sim_tag*>(mst)->max_rate.load();
  p->rate_limit.queue_level = 0;
  p->rate_limit.flags = 0;
  return 0;
}
void rate_tag_free(m_snd_tag* mst) { delete static_cast<nic_sim_tag*>(mst); }

const if_snd_tag_sw kRateLimitSw = {rate_tag_modify, rate_tag_query,
                                    rate_tag_free, IF_SND_TAG_TYPE_RATE_LIMIT};
const if_snd_tag_sw kUnlimitedSw = {rate_tag_modify, rate_tag_query,
                                    rate_tag_free, IF_SND_TAG_TYPE_UNLIMITED};

// LRO: may frame f (parsed as pi) join a super-packet?
bool lro_eligible(const uint8_t* f, const nic_pkt_info& pi) {
  if (pi.proto != IPPROTO_TCP || pi.fragment || pi.ip_hlen != 20) return false;
  const uint8_t* th = f + pi.l4off;
  uint8_t fl = th[13];
  if (fl & (TH_SYN | TH_FIN | TH_RST | TH_URG | TH_CWR | 0x40)) return false;
  if (!(fl & TH_ACK)) return false;
  return pi.l4len - pi.tcp_hlen > 0;
}

// Does frame f continue the super-packet acc of the same flow?
bool lro_continues(const uint8_t* acc, const nic_pkt_info& ai,
                   const uint8_t* f, const nic_pkt_info& pi) {
  const uint8_t* aip = acc + ai.l3off;
  const uint8_t* ip = f + pi.l3off;
  if (memcmp(aip + 12, ip + 12, 8) != 0) return false;  // addresses
  const uint8_t* ath = acc + ai.l4off;
  const uint8_t* th = f + pi.l4off;
  if (memcmp(ath, th, 4) != 0) return false;  // ports
  if (ai.tcp_hlen != pi.tcp_hlen) return false;
  uint32_t next = rd32(ath + 4) + static_cast<uint32_t>(ai.l4len - ai.tcp_hlen);
  if (rd32(th + 4) != next) return false;
  // Acknowledgments only move forward within one super-packet.
  if (static_cast<int32_t>(rd32(th + 8) - rd32(ath + 8)) < 0) return false;
  int payload = pi.l4len - pi.tcp_hlen;
  return ETHER_HDR_LEN + ai.ip_len + payload <= ETHER_HDR_LEN + NIC_SIM_TSO_MAX;
}

// The NIC as the network stack sees it: ip_output's if_output goes to the
// driver's output(), SIOCSIFCAP to its capability rules. Holds the driver
// weakly: a destroyed NIC answers ENETDOWN to packets still routed to it.
struct nic_sim_ifnet final : ifnet {
  nic_sim_ifnet(kernel& k, const std::string& name, std::weak_ptr<NicSim> n)
      : ifnet(k, name), nic(std::move(n)) {}
  int if_output(mbuf* m, const sockaddr_in* dst) override {
    std::shared_ptr<NicSim> n = nic.lock();
    if (!n) {
      m_freem(m);
      return ENETDOWN;
    }
    return n->output(MbufPtr(m), dst->sin_addr.s_addr);
  }
  int if_setcap(uint32_t ce, uint32_t ce2) override {
    std::shared_ptr<NicSim> n = nic.lock();
    if (!n) return ENXIO;
    if ((ce & ~NIC_SIM_CAPS) || (ce2 & ~NIC_SIM_CAPS2)) return EINVAL;
    uint32_t cur = n->capenable(), cur2 = n->capenable2();
    return n->set_caps(ce & ~cur, cur & ~ce, ce2 & ~cur2, cur2 & ~ce2, nullptr);
  }
  int if_snd_tag_alloc(const if_snd_tag_alloc_params& p,
                       m_snd_tag** mstp) override {
    std::shared_ptr<NicSim> n = nic.lock();
    if (!n) return ENXIO;
    return n->snd_tag_alloc(p, mstp);
  }
  std::shared_ptr<toedev> if_toedev() override {
    std::shared_ptr<NicSim> n = nic.lock();
    if (!n) return nullptr;
    return n->toe();
  }
  // The NIC keeps hardware statistics (dev.nic_sim.N.*): frames as they
  // crossed the wire, bytes with the Ethernet header, TSO segments and
  // LRO'd segments one by one. The stack's own counters on this ifnet
  // (if_input's) are not what netstat -i shows, as with mlx5en.
  uint64_t if_get_counter(ift_counter c) override {
    std::shared_ptr<NicSim> n = nic.lock();
    if (!n) return ifnet::if_get_counter(c);
    const nic_sim_stats& st = n->stats();
    switch (c) {
      case IFCOUNTER_IPACKETS: return st.ipackets.fetch();
      case IFCOUNTER_IERRORS: return st.ierrors.fetch();
      case IFCOUNTER_OPACKETS: return st.opackets.fetch();
      case IFCOUNTER_OERRORS: return st.oerrors.fetch();
      case IFCOUNTER_IBYTES: return st.ibytes.fetch();
      case IFCOUNTER_OBYTES: return st.obytes.fetch();
      case IFCOUNTER_IMCASTS: return st.imcasts.fetch();
      case IFCOUNTER_OMCASTS: return st.omcasts.fetch();
      case IFCOUNTER_IQDROPS: return st.iqdrops.fetch();
      case IFCOUNTER_OQDROPS: return st.oqdrops.fetch();
      default: return 0;  // full duplex: no collisions
    }
  }
  uint8_t if_type() const override { return IFT_ETHER; }
  uint8_t if_addrlen() const override { return ETHER_ADDR_LEN; }
  uint8_t if_hdrlen() const override { return ETHER_HDR_LEN; }
  uint8_t if_link_state() const override {
    std::shared_ptr<NicSim> n = nic.lock();
    return n && n->link_active() ? LINK_STATE_UP : LINK_STATE_DOWN;
  }
  uint64_t if_baudrate() const override {
    std::shared_ptr<NicSim> n = nic.lock();
    std::shared_ptr<Wire> w = n ? n->wire() : nullptr;
    return w ? w->params().bw_bps : 0;
  }
  int if_snd_len() const override {
    std::shared_ptr<NicSim> n = nic.lock();
    return n ? n->tx_queue_len() : 0;
  }
  int if_snd_maxlen() const override { return NIC_SIM_TX_RING; }
  std::weak_ptr<NicSim> nic;
};

}  // namespace

namespace {

// A chain holding a copy of len bytes; flags M_PKTHDR for a packet's head.
mbuf* devget(kernel& k, const uint8_t* buf, int len, int flags) {
  mbuf* m = m_getm2(k, nullptr, std::max(len, 1), M_NOWAIT, MT_DATA, flags);
  if (m == nullptr) return nullptr;
  int off = 0;
  for (mbuf* n = m; n != nullptr && off < len; n = n->m_next) {
    int c = std::min(M_TRAILINGSPACE(n), len - off);
    memcpy(mtod(n) + n->m_len, buf + off, c);
    n->m_len += c;
    off += c;
  }
  if (flags & M_PKTHDR) m->m_pkthdr.len = len;
  return m;
}

}  // namespace

mbuf* m_devget(kernel& k, const uint8_t* buf, int len) {
  return devget(k, buf, len, M_PKTHDR);
}

// ---- the interface ----

NicSim::NicSim(kernel& k, int unit, counter_u64* num_snd_tags)
    : k_(k),
      unit_(unit),
      name_("nic_sim" + std::to_string(unit)),
      mac_(ether_gen_addr(k.id, name_)),
      num_snd_tags_(num_snd_tags) {
  register_sysctls();
  tx_thread_ = std::thread([this] { tx_loop(); });
  rx_thread_ = std::thread([this] { rx_loop(); });
  kthread_set_name(tx_thread_, name_ + "_tx");
  kthread_set_name(rx_thread_, name_ + "_rx");
}

NicSim::~NicSim() { shutdown(); }

void NicSim::shutdown() {
  if (dead_.exchange(true)) return;
  up_.store(false);
  if (ifp_) if_detach(k_, ifp_.get());  // no new output() from routes
  wire_detach();  // no rx_dma() after this
  bpf_.stop();
  {
    MutexLock l(&txmu_);
    stop_tx_ = true;
    txcv_.SignalAll();
  }
  {
    MutexLock l(&rxmu_);
    stop_rx_ = true;
    rxcv_.SignalAll();
  }
  tx_thread_.join();
  rx_thread_.join();
  std::deque<MbufPtr> tx;
  {
    MutexLock l(&txmu_);
    tx.swap(txq_);
  }
  for (MbufPtr& m : tx) {
    mbuf* p = m.get();
    if ((p->m_flags & M_PKTHDR) && (p->m_pkthdr.csum_flags & CSUM_SND_TAG)) {
      p->m_pkthdr.csum_flags &= ~CSUM_SND_TAG;
      m_snd_tag_rele(std::exchange(p->m_pkthdr.snd_tag, nullptr));
    }
  }
  tx.clear();
  {
    MutexLock l(&rxmu_);
    rxq_.clear();
  }
  arp_.flush();
  // The engines' oids go with the kernel's tree too; tags they handed out
  // stay valid without them.
  set_offload(nullptr);
  // The TOE last: no frame reaches it any more; its connections are
  // dropped and its thread joined.
  if (std::shared_ptr<NicToe> t = toe()) t->shutdown();
  // The oids go with the kernel's tree, which may not outlive this NIC.
  sysctl_.reset();
}

void NicSim::register_sysctls() {
  sysctl_ = std::make_unique<sysctl_ctx_list>(k_);
  std::string p = "dev.nic_sim." + std::to_string(unit_);
  sysctl_ctx_list& c = *sysctl_;
  c.add_node(p, "uktls simulated NIC");
  c.add_string(p + ".%desc", CTLFLAG_RD, "uktls simulated Ethernet NIC",
               "device description");
  c.add_string(p + ".mac", CTLFLAG_RD, ether_sprintf(mac_), "Ethernet address");
  struct {
    const char* name;
    counter_u64* c;
    const char* d;
  } ctrs[] = {
      {"ipackets", &st_.ipackets, "frames received"},
      {"ibytes", &st_.ibytes, "bytes received"},
      {"ierrors", &st_.ierrors, "receive errors (runts, giants, bad headers)"},
      {"iqdrops", &st_.iqdrops, "frames dropped: RX ring full or interface down"},
      {"opackets", &st_.opackets, "frames sent"},
      {"obytes", &st_.obytes, "bytes sent"},
      {"oerrors", &st_.oerrors, "transmit errors (down, no carrier, oversize, engine)"},
      {"oqdrops", &st_.oqdrops, "packets dropped: TX ring or the wire's queue full"},
      {"rx_filtered", &st_.rx_filtered, "frames for another address"},
      {"rx_csum_ok", &st_.rx_csum_ok, "RX checksums verified good"},
      {"rx_csum_bad", &st_.rx_csum_bad, "RX checksums found bad"},
      {"tx_csum", &st_.tx_csum, "packets checksummed by the NIC"},
      {"tso_packets", &st_.tso_packets, "TSO packets segmented"},
      {"tso_segments", &st_.tso_segments, "segments produced by TSO"},
      {"lro_queued", &st_.lro_queued, "segments merged by LRO"},
      {"lro_flushed", &st_.lro_flushed, "LRO super-packets delivered"},
      {"arp_requests", &st_.arp_requests_tx, "ARP requests sent"},
      {"arp_replies", &st_.arp_replies_tx, "ARP replies sent"},
      {"paced_waits", &st_.paced_waits, "TX waits imposed by rate-limited tags"},
      {"tls_tx_frames", &st_.tls_tx_frames, "frames through the TLS engine (TX)"},
      {"tls_rx_frames", &st_.tls_rx_frames, "frames decrypted by the TLS engine (RX)"},
      {"toe_rx_frames", &st_.toe_rx_frames, "frames consumed by the TOE engine"},
      {"imcasts", &st_.imcasts, "broadcast/multicast frames received"},
      {"omcasts", &st_.omcasts, "broadcast/multicast frames sent"},
  };
  for (const auto& x : ctrs) c.add_counter(p + "." + x.name, CTLFLAG_RD, x.c, x.d);
  auto uint_proc = [](std::function<uint32_t()> f) {
    return [f](sysctl_req& req) {
      unsigned v = f();
      return req.out(&v, sizeof v);
    };
  };
  c.add_proc(p + ".capabilities", CTLTYPE_UINT | CTLFLAG_RD, "IU",
             uint_proc([] { return NIC_SIM_CAPS; }), "if_capabilities");
  c.add_proc(p + ".capenable", CTLTYPE_UINT | CTLFLAG_RD, "IU",
             uint_proc([this] { return capenable(); }), "if_capenable");
  c.add_proc(p + ".capenable2", CTLTYPE_UINT | CTLFLAG_RD, "IU",
             uint_proc([this] { return capenable2(); }), "if_capenable2");
  c.add_proc(p + ".mtu", CTLTYPE_UINT | CTLFLAG_RD, "IU",
             uint_proc([this] { return static_cast<uint32_t>(mtu()); }), "MTU");
  c.add_int(p + ".rx_coalesce_usecs", CTLFLAG_RW, &rx_coalesce_us_,
            "RX interrupt moderation delay (us); 0 = none");
  c.add_proc(p + ".wire", CTLTYPE_STRING | CTLFLAG_RD, "A",
             [this](sysctl_req& req) {
               int side = 0;
               auto w = wire(&side);
               std::string s = w ? wire_params_format(w->params()) : "";
               return sysctl_handle_string(req, s);
             },
             "wire parameters (empty when unplugged)");
}

void NicSim::set_up(bool up) {
  if (dead_.load()) return;
  bool was = up_.exchange(up);
  if (was && !up) arp_.flush();  // as FreeBSD's arp on if_down
  sync_ifnet();
}

void NicSim::attach_ifnet(const std::shared_ptr<NicSim>& self) {
  if (!k_.net || ifp_) return;
  ifp_ = make_ref<nic_sim_ifnet>(k_, name_, self);
  ifp_->if_capabilities.store(NIC_SIM_CAPS);
  ifp_->if_capabilities2.store(NIC_SIM_CAPS2);
  sync_ifnet();
  ifnet* ifp = ifp_.get();
  set_input([ifp](MbufPtr m) {
    m->m_pkthdr.rcvif = ifp;
    if_input(ifp, m.release());
  });
  if_attach(k_, ifp_);
}

void NicSim::sync_ifnet() {
  if (!ifp_) return;
  int was = ifp_->if_flags.exchange(IFF_BROADCAST | IFF_SIMPLEX | IFF_MULTICAST |
                                    (up_.load() ? IFF_UP | IFF_DRV_RUNNING : 0));
  if ((was ^ ifp_->if_flags.load()) & IFF_UP) if_touch_lastchange(ifp_.get());
  ifp_->if_mtu.store(mtu_.load());
  const uint32_t c = capenable_.load();
  ifp_->if_capenable.store(c);
  ifp_->if_capenable2.store(capenable2_.load());
  uint32_t assist = 0;
  if (c & IFCAP_TXCSUM) assist |= CSUM_IP | CSUM_IP_TCP | CSUM_IP_UDP;
  if (c & IFCAP_TSO4) assist |= CSUM_IP_TSO;
  ifp_->if_hwassist.store(assist);
}

int NicSim::set_mtu(int mtu, std::string* err) {
  if (mtu < NIC_SIM_MTU_MIN || mtu > ETHERMTU_JUMBO) {
    if (err)
      *err = "ifconfig: " + name_ + ": mtu " + std::to_string(mtu) +
             " out of range " + std::to_string(NIC_SIM_MTU_MIN) + ".." +
             std::to_string(ETHERMTU_JUMBO);
    return EINVAL;
  }
  mtu_.store(mtu);
  sync_ifnet();
  return 0;
}

int NicSim::set_caps(uint32_t on, uint32_t off, uint32_t on2, uint32_t off2,
                     std::string* err) {
  // ifconfig masks requests with the capabilities (setifcap's
  // "flags &= ifr_reqcap"): unsupported bits are silently ignored.
  on &= NIC_SIM_CAPS;
  off &= NIC_SIM_CAPS;
  on2 &= NIC_SIM_CAPS2;
  off2 &= NIC_SIM_CAPS2;
  uint32_t c = (capenable_.load() | on) & ~off;
  uint32_t c2 = (capenable2_.load() | on2) & ~off2;
  auto fail = [&](const char* why) {
    if (err) *err = "ifconfig: " + name_ + ": " + why;
    return EINVAL;
  };
  if (on & IFCAP_TXTLS) c |= IFCAP_MEXTPG;  // TLS offload sends unmapped mbufs
  if (off & IFCAP_MEXTPG) c &= ~(IFCAP_TXTLS | IFCAP_TXTLS_RTLMT);
  if ((on & IFCAP_TXTLS_RTLMT) && !(c & IFCAP_TXTLS))
    return fail("txtlsrtlmt requires txtls");
  if (!(c & IFCAP_TXTLS)) c &= ~IFCAP_TXTLS_RTLMT;
  if ((on & IFCAP_TSO4) && !(c & IFCAP_TXCSUM))
    return fail("tso requires txcsum");
  if ((off & IFCAP_TXCSUM) && (c & IFCAP_TSO4)) {
    c &= ~IFCAP_TSO4;
    kprintf(k_, "%s: tso4 disabled due to -txcsum\n", name_.c_str());
  }
  capenable_.store(c);
  capenable2_.store(c2);
  sync_ifnet();
  return 0;
}

void NicSim::set_inet(uint32_t addr, uint32_t mask) {
  MutexLock l(&cfg_mu_);
  addr_ = addr;
  mask_ = mask;
}

uint32_t NicSim::inet_addr() const {
  MutexLock l(&cfg_mu_);
  return addr_;
}

uint32_t NicSim::inet_mask() const {
  MutexLock l(&cfg_mu_);
  return mask_;
}

int NicSim::wire_attach(std::shared_ptr<Wire> w, int side) {
  MutexLock l(&cfg_mu_);
  if (wire_) return EBUSY;
  int e = w->attach_owned(side, [this](std::vector<uint8_t>&& f, uint64_t at) {
    rx_dma(std::move(f), at);
  });
  if (e) return e;
  wire_ = std::move(w);
  side_ = side;
  return 0;
}

void NicSim::wire_detach() {
  std::shared_ptr<Wire> w;
  int side;
  {
    MutexLock l(&cfg_mu_);
    w = std::move(wire_);
    wire_.reset();
    side = side_;
  }
  // Outside cfg_mu_: detach waits for a callback into rx_dma to finish.
  if (w) w->detach(side);
}

std::shared_ptr<Wire> NicSim::wire(int* side) const {
  MutexLock l(&cfg_mu_);
  if (side) *side = side_;
  return wire_;
}

bool NicSim::link_active() const {
  int side;
  auto w = wire(&side);
  return w && w->attached(1 - side);
}

void NicSim::set_rx_offload(std::shared_ptr<NicSimOffload> e) {
  {
    // The old engine is destroyed after the lock is dropped: its
    // destructor removes its sysctl oids, and a sysctl walk may be reading
    // them while waiting for cfg_mu_.
    MutexLock l(&cfg_mu_);
    std::swap(rx_offload_, e);
  }
}

void NicSim::set_input(InputFn fn) {
  MutexLock l(&cfg_mu_);
  input_ = std::move(fn);
}

void NicSim::set_offload(std::shared_ptr<NicSimOffload> e) {
  {
    // The old engine is destroyed after the lock is dropped: its
    // destructor removes its sysctl oids, and a sysctl walk may be reading
    // them while waiting for cfg_mu_.
    MutexLock l(&cfg_mu_);
    std::swap(offload_, e);
  }
}

void NicSim::set_toe(std::shared_ptr<NicToe> t) {
  {
    // The old engine is destroyed after the lock is dropped: its
    // destructor removes its sysctl oids, and a sysctl walk may be reading
    // them while waiting for cfg_mu_.
    MutexLock l(&cfg_mu_);
    std::swap(toe_, t);
  }
}

std::shared_ptr<NicToe> NicSim::toe() const {
  MutexLock l(&cfg_mu_);
  return toe_;
}

std::shared_ptr<NicSimOffload> NicSim::offload() const {
  MutexLock l(&cfg_mu_);
  return offload_;
}

// ---- transmit ----

int NicSim::enqueue_tx(MbufPtr m) {
  MutexLock l(&txmu_);
  if (stop_tx_ || static_cast<int>(txq_.size()) >= NIC_SIM_TX_RING) {
    st_.oqdrops.add(1);
    mbuf* p = m.get();
    if ((p->m_flags & M_PKTHDR) && (p->m_pkthdr.csum_flags & CSUM_SND_TAG)) {
      p->m_pkthdr.csum_flags &= ~CSUM_SND_TAG;
      m_snd_tag_rele(std::exchange(p->m_pkthdr.snd_tag, nullptr));
    }
    return ENOBUFS;
  }
  txq_.push_back(std::move(m));
  txcv_.Signal();
  return 0;
}

int NicSim::transmit(MbufPtr m) {
  if (!m) return EINVAL;
  return enqueue_tx(std::move(m));
}

void NicSim::send_arp(uint16_t op, const ether_addr& dst, const ether_addr& tha,
                      uint32_t tpa) {
  arp_packet a;
  a.op = op;
  a.sha = mac_;
  a.spa = inet_addr();
  a.tha = tha;
  a.tpa = tpa;
  uint8_t f[kMinFrame] = {};
  ether_header eh;
  memcpy(eh.ether_dhost, dst.octet, ETHER_ADDR_LEN);
  memcpy(eh.ether_shost, mac_.octet, ETHER_ADDR_LEN);
  eh.ether_type = htons(ETHERTYPE_ARP);
  memcpy(f, &eh, sizeof eh);
  ether_arp ea;
  arp_build(a, &ea);
  memcpy(f + ETHER_HDR_LEN, &ea, sizeof ea);
  mbuf* m = m_devget(k_, f, sizeof f);
  if (m == nullptr) return;
  (op == ARPOP_REQUEST ? st_.arp_requests_tx : st_.arp_replies_tx).add(1);
  enqueue_tx(MbufPtr(m));
}

int NicSim::output(MbufPtr m, uint32_t nexthop) {
  if (!m) return EINVAL;
  if (!up_.load()) {
    st_.oerrors.add(1);  // as lo0: a packet routed to a down interface
    return ENETDOWN;
  }
  const int len = m->m_pkthdr.len;
  if (len > mtu_.load() && !(m->m_pkthdr.csum_flags & CSUM_IP_TSO)) {
    st_.oerrors.add(1);
    return EMSGSIZE;
  }
  uint32_t addr, mask;
  {
    MutexLock l(&cfg_mu_);
    addr = addr_;
    mask = mask_;
  }
  ether_addr dst;
  const bool bcast = nexthop == INADDR_BROADCAST ||
                     (mask != 0xffffffffu && mask != 0 &&
                      (nexthop & mask) == (addr & mask) &&
                      (nexthop & ~mask) == ~mask);
  if (bcast) {
    dst = kEtherBroadcast;
  } else {
    bool req = false;
    switch (arp_.resolve(nexthop, &m, Wire::now_ns(), &dst, &req)) {
      case ArpTable::kResolved:
        break;
      case ArpTable::kHeld:
        if (req) send_arp(ARPOP_REQUEST, kEtherBroadcast, ether_addr{}, nexthop);
        return 0;  // EWOULDBLOCK in arpresolve; ether_output reports success
      case ArpTable::kDown:
        return EHOSTDOWN;
    }
  }
  mbuf* h = ether_encap(m.release(), dst, mac_, ETHERTYPE_IP);
  if (h == nullptr) {
    st_.oqdrops.add(1);
    return ENOBUFS;
  }
  return enqueue_tx(MbufPtr(h));
}

void NicSim::tx_loop() {
  std::vector<MbufPtr> batch;
  batch.reserve(kTxBatch);
  for (;;) {
    {
      MutexLock l(&txmu_);
      tx_busy_ = false;
      while (txq_.empty() && !stop_tx_) txcv_.Wait(&txmu_);
      if (stop_tx_) return;
      while (!txq_.empty() && batch.size() < kTxBatch) {
        batch.push_back(std::move(txq_.front()));
        txq_.pop_front();
      }
      tx_busy_ = true;
    }
    std::shared_ptr<Wire> w;
    int side;
    {
      MutexLock l(&cfg_mu_);
      w = wire_;
      side = side_;
    }
    for (MbufPtr& m : batch) tx_one(std::move(m), w.get(), side);
    batch.clear();
  }
}

void NicSim::tx_one(MbufPtr mp, Wire* w, int side) {
  mbuf* m = mp.get();
  const int len = static_cast<int>(m_length(m, nullptr));
  const uint32_t csum = (m->m_flags & M_PKTHDR) ? m->m_pkthdr.csum_flags : 0;
  m_snd_tag* tag = (csum & CSUM_SND_TAG) ? m->m_pkthdr.snd_tag : nullptr;
  std::shared_ptr<NicSimOffload> eng;
  {
    MutexLock l(&cfg_mu_);
    eng = offload_;
  }
  nic_sim_tag* own = nullptr;
  if (tag != nullptr) {
    if (tag->softc != this) {
      // Another interface's tag: the route changed under the connection.
      // FreeBSD's drivers refuse it; the stack then resets the tag.
      st_.oerrors.add(1);
      tag = nullptr;
      goto done;
    }
    own = static_cast<nic_sim_tag*>(tag);
  }
  {
    // Pacing: a tag with a rate holds the ring until its next slot.
    if (own != nullptr && own->max_rate.load() != 0) {
      uint64_t now = Wire::now_ns();
      // A tag that stays backlogged keeps its schedule when this thread
      // runs late (by up to kPaceSlackNs), so wake-up latency does not
      // lower the rate it gets; an idle tag restarts from now.
      uint64_t start = own->next_tx_ns != 0 && now <= own->next_tx_ns + kPaceSlackNs
                           ? own->next_tx_ns
                           : now;
      if (start > now) {
        st_.paced_waits.add(1);
        MutexLock l(&txmu_);
        while (!stop_tx_) {
          uint64_t t = Wire::now_ns();
          if (t >= start) break;
          txcv_.WaitWithTimeout(&txmu_, absl::Nanoseconds(start - t));
        }
      }
      own->next_tx_ns = start + static_cast<uint64_t>(len) * 1000000000u /
                                    own->max_rate.load();
    }

    const int mtu = mtu_.load();
    if ((csum & CSUM_IP_TSO) && len > ETHER_HDR_LEN + mtu) {
      tx_tso(m, len, mtu, tag, csum, eng.get(), w, side);
    } else if (len > ETHER_HDR_LEN + mtu) {
      st_.oerrors.add(1);  // a giant the stack should never have sent
    } else {
      std::vector<uint8_t> f(len);
      m_copydata(m, 0, len, f.data());
      tx_frame(f, m, tag, csum, eng.get(), w, side);
    }
  }
done:
  if (csum & CSUM_SND_TAG) {
    // The packet's tag reference ends with the packet (m_free's job in
    // FreeBSD); cleared first so no later free releases it again.
    m->m_pkthdr.csum_flags &= ~CSUM_SND_TAG;
    m_snd_tag_rele(std::exchange(m->m_pkthdr.snd_tag, nullptr));
  }
}

// Segments a TSO packet as a NIC does: the headers are read once, each
// segment's payload is copied from the packet's mbufs straight into its
// frame (one copy, as the DMA engine gathers it), the sequence number and
// IP id advance, FIN/PSH stay with the last segment and CWR with the first.
void NicSim::tx_tso(const mbuf* m, int len, int mtu, m_snd_tag* tag, uint32_t csum,
                    NicSimOffload* eng, Wire* w, int side) {
  uint8_t h[ETHER_HDR_LEN + 60 + 60];
  const int hn = std::min<int>(sizeof h, len);
  m_copydata(m, 0, hn, h);
  nic_pkt_info pi;
  const int mss = m->m_pkthdr.tso_segsz;
  // The parse reads headers only (they lie within h); len is the packet's
  // length, which its IP length must match.
  if (!nic_pkt_parse(h, len, &pi) || pi.proto != IPPROTO_TCP || mss <= 0 ||
      pi.l4off + pi.tcp_hlen > hn || pi.ip_hlen + pi.tcp_hlen + mss > mtu) {
    st_.oerrors.add(1);
    return;
  }
  const int hdr = pi.l4off + pi.tcp_hlen;
  const int payload = pi.l4len - pi.tcp_hlen;
  const uint32_t seq0 = rd32(h + pi.l4off + 4);
  const uint16_t id0 = rd16(h + pi.l3off + 4);
  const uint8_t flags0 = h[pi.l4off + 13];
  // A cursor into the chain, so each segment's copy starts where the last
  // one ended instead of walking the chain from its head.
  const mbuf* cm = m;
  int coff = 0;
  auto advance = [&](int n) {
    for (coff += n; cm != nullptr && coff >= cm->m_len;) {
      coff -= cm->m_len;
      cm = cm->m_next;
    }
  };
  advance(hdr);
  int nseg = 0;
  for (int off = 0; off < payload && cm != nullptr; off += mss, nseg++) {
    const int n = std::min(mss, payload - off);
    std::vector<uint8_t> s(hdr + n);
    memcpy(s.data(), h, hdr);
    m_copydata(cm, coff, n, s.data() + hdr);
    advance(n);
    wr16(s.data() + pi.l3off + 2, static_cast<uint16_t>(pi.ip_hlen + pi.tcp_hlen + n));
    wr16(s.data() + pi.l3off + 4, static_cast<uint16_t>(id0 + nseg));
    wr32(s.data() + pi.l4off + 4, seq0 + static_cast<uint32_t>(off));
    uint8_t fl = flags0;
    if (off + n < payload) fl &= ~(TH_FIN | TH_PUSH);
    if (off > 0) fl &= ~TH_CWR;
    s[pi.l4off + 13] = fl;
    tx_frame(s, m, tag, csum | CSUM_IP | CSUM_IP_TCP, eng, w, side);
  }
  st_.tso_packets.add(1);
  st_.tso_segments.add(nseg);
}

void NicSim::tx_frame(std::vector<uint8_t>& f, const mbuf* m, m_snd_tag* tag,
                      uint32_t csum_flags, NicSimOffload* eng, Wire* w,
                      int side) {
  nic_pkt_info pi;
  const bool ip = nic_pkt_parse(f.data(), f.size(), &pi);
  if (tag != nullptr && is_tls_tag(tag->type()) && ip && pi.proto == IPPROTO_TCP) {
    if (eng == nullptr || eng->tx_frame(*this, tag, m, f.data(), f.size()) != 0) {
      st_.oerrors.add(1);
      return;
    }
    st_.tls_tx_frames.add(1);
  }
  if (ip && (csum_flags & (CSUM_IP | CSUM_IP_TCP | CSUM_IP_UDP | CSUM_IP_TSO))) {
    if (csum_flags & (CSUM_IP | CSUM_IP_TSO)) nic_ip_cksum_fill(f.data(), pi);
    if (csum_flags & (CSUM_IP_TCP | CSUM_IP_UDP | CSUM_IP_TSO))
      nic_l4_cksum_fill(f.data(), pi);
    st_.tx_csum.add(1);
  }
  if (f.size() < static_cast<size_t>(kMinFrame)) f.resize(kMinFrame, 0);
  bpf_tap(&bpf_, f.data(), f.size());
  if (w == nullptr) {
    st_.oerrors.add(1);  // no carrier
    return;
  }
  const size_t n = f.size();
  const bool mcast = ETHER_IS_MULTICAST(f.data());
  // The frame's buffer goes to the wire (and on to the far NIC's RX ring).
  // The wire's tail-drop queue stands for the NIC's own queue in front of
  // the PHY: a frame it refuses never left, so it is an output drop.
  if (w->transmit(side, std::move(f)) != 0) {
    st_.oqdrops.add(1);
    return;
  }
  st_.opackets.add(1);
  st_.obytes.add(static_cast<int64_t>(n));
  if (mcast) st_.omcasts.add(1);
}

int NicSim::tx_queue_len() {
  MutexLock l(&txmu_);
  return static_cast<int>(txq_.size());
}

// ---- receive ----

void NicSim::rx_dma(const uint8_t* f, size_t len, uint64_t arrival_ns) {
  rx_dma(std::vector<uint8_t>(f, f + len), arrival_ns);
}

void NicSim::rx_dma(std::vector<uint8_t>&& frame, uint64_t arrival_ns) {
  const uint8_t* f = frame.data();
  const size_t len = frame.size();
  if (!up_.load()) {
    st_.iqdrops.add(1);
    return;
  }
  if (len < static_cast<size_t>(ETHER_HDR_LEN) ||
      len > static_cast<size_t>(ETHER_HDR_LEN + mtu_.load())) {
    st_.ierrors.add(1);
    return;
  }
  if (!ETHER_IS_MULTICAST(f) && memcmp(f, mac_.octet, ETHER_ADDR_LEN) != 0) {
    st_.rx_filtered.add(1);
    return;
  }
  MutexLock l(&rxmu_);
  if (static_cast<int>(rxq_.size()) >= NIC_SIM_RX_RING) {
    st_.iqdrops.add(1);
    return;
  }
  rxq_.push_back(RxFrame{std::move(frame), arrival_ns});
  if (rxq_.size() == 1 || rxq_.size() == kRxBatch) rxcv_.Signal();
}

void NicSim::rx_loop() {
  std::vector<RxFrame> batch;
  batch.reserve(kRxBatch);
  for (;;) {
    {
      MutexLock l(&rxmu_);
      rx_busy_ = false;
      while (rxq_.empty() && !stop_rx_) rxcv_.Wait(&rxmu_);
      if (stop_rx_) return;
      if (int us = rx_coalesce_us_.load(); us > 0) {
        uint64_t deadline = Wire::now_ns() + static_cast<uint64_t>(us) * 1000;
        while (!stop_rx_ && rxq_.size() < kRxBatch) {
          uint64_t now = Wire::now_ns();
          if (now >= deadline) break;
          rxcv_.WaitWithTimeout(&rxmu_, absl::Nanoseconds(deadline - now));
        }
        if (stop_rx_) return;
      }
      while (!rxq_.empty() && batch.size() < kRxBatch) {
        batch.push_back(std::move(rxq_.front()));
        rxq_.pop_front();
      }
      rx_busy_ = true;
    }
    rx_batch(batch);
    batch.clear();
  }
}

void NicSim::rx_arp(const uint8_t* f, size_t len) {
  arp_packet a;
  if (arp_parse(f + ETHER_HDR_LEN, len - ETHER_HDR_LEN, &a) != 0) {
    st_.ierrors.add(1);
    return;
  }
  bool reply = false;
  ether_addr rel;
  std::vector<MbufPtr> held =
      arp_.input(a, inet_addr(), Wire::now_ns(), &reply, &rel);
  if (reply) send_arp(ARPOP_REPLY, a.sha, a.sha, a.spa);
  for (MbufPtr& m : held) {
    mbuf* h = ether_encap(m.release(), rel, mac_, ETHERTYPE_IP);
    if (h == nullptr) {
      st_.oqdrops.add(1);
      continue;
    }
    enqueue_tx(MbufPtr(h));
  }
}

void NicSim::deliver(std::vector<uint8_t>& f, uint32_t csum_flags,
                     const InputFn& in) {
  nic_pkt_info pi;
  int len = static_cast<int>(f.size()) - ETHER_HDR_LEN;
  // Ethernet padding is not part of the packet: hand up ip_len bytes.
  if (nic_pkt_parse(f.data(), f.size(), &pi)) len = pi.ip_len;
  if (!in) {
    st_.iqdrops.add(1);  // no protocol attached
    return;
  }
  mbuf* m = m_devget(k_, f.data() + ETHER_HDR_LEN, len);
  if (m == nullptr) {
    st_.iqdrops.add(1);
    return;
  }
  deliver(m, csum_flags, in);
}

void NicSim::deliver(mbuf* m, uint32_t csum_flags, const InputFn& in) {
  m->m_pkthdr.csum_flags = csum_flags;
  if (csum_flags & CSUM_L4_VALID) m->m_pkthdr.csum_data = 0xffff;
  in(MbufPtr(m));
}

namespace {

// One LRO super-packet in progress: the packet so far as an mbuf chain (the
// first segment whole, then each later segment's payload appended, copied
// once from its frame as the DMA would), the first frame's headers updated
// with the newest ACK, window and options, and the sum of the payload so
// far for the merged checksum.
struct LroAcc {
  mbuf* m = nullptr;
  mbuf* tail = nullptr;
  uint8_t hdr[ETHER_HDR_LEN + 60 + 60];
  nic_pkt_info pi;
  uint32_t flags = 0;
  int segs = 0;
  uint32_t psum = 0;  // nic_cksum_add sum of the payload bytes in order
  int plen = 0;
};

mbuf* m_last(mbuf* m) {
  while (m->m_next != nullptr) m = m->m_next;
  return m;
}

// Ones' complement addition of two 32-bit partial sums.
uint32_t cksum_add32(uint32_t a, uint32_t b) {
  uint64_t t = static_cast<uint64_t>(a) + b;
  return static_cast<uint32_t>((t & 0xffffffff) + (t >> 32));
}

}  // namespace

void NicSim::rx_batch(std::vector<RxFrame>& batch) {
  InputFn in;
  std::shared_ptr<NicSimOffload> eng, rx_eng;
  std::shared_ptr<NicToe> toe;
  {
    MutexLock l(&cfg_mu_);
    in = input_;
    eng = offload_;
    rx_eng = rx_offload_;
    toe = toe_;
  }
  // Only an engine holding connections needs to see frames (and have
  // their checksums verified): connections stay offloaded even if `-toe`
  // is set later, as on a real TOE.
  const bool toe_on = toe && toe->active();
  const int64_t to_utc = bpf_peers_present(&bpf_) ? bpf_steady_to_realtime_ns() : 0;
  const uint32_t cap = capenable_.load();
  const bool rxcsum = cap & IFCAP_RXCSUM;
  const bool lro = cap & IFCAP_LRO;

  // One LRO super-packet in progress (FreeBSD's tcp_lro keeps many flows;
  // one is enough for a NIC feeding a single bulk connection, and it keeps
  // the order of packets across flows exactly as received).
  LroAcc acc;
  auto flush = [&] {
    if (acc.segs == 0) return;
    if (acc.segs > 1) {
      // Lengths and both checksums of the whole, from the headers and the
      // payload's running sum: the merged payload is not read again. A
      // decrypted payload no longer matches any sum: its checksum was
      // verified before decryption, which the packet's flags say.
      wr16(acc.hdr + acc.pi.l3off + 2, static_cast<uint16_t>(acc.pi.ip_len));
      nic_ip_cksum_fill(acc.hdr, acc.pi);
      if (!(acc.flags & CSUM_TLS_DECRYPTED)) nic_tcp_cksum_fill_sum(acc.hdr, acc.pi, acc.psum);
      memcpy(mtod(acc.m), acc.hdr + ETHER_HDR_LEN, acc.pi.ip_hlen + acc.pi.tcp_hlen);
      st_.lro_flushed.add(1);
    }
    deliver(std::exchange(acc.m, nullptr), acc.flags, in);
    acc.tail = nullptr;
    acc.segs = 0;
  };

  for (RxFrame& rf : batch) {
    std::vector<uint8_t>& f = rf.bytes;
    if (to_utc != 0)
      bpf_tap(&bpf_, f.data(), f.size(), static_cast<uint64_t>(rf.arrival_ns + to_utc));
    st_.ipackets.add(1);
    st_.ibytes.add(static_cast<int64_t>(f.size()));
    if (ETHER_IS_MULTICAST(f.data())) st_.imcasts.add(1);
    const uint16_t type = rd16(f.data() + 12);
    if (type == ETHERTYPE_ARP) {
      flush();
      rx_arp(f.data(), f.size());
      continue;
    }
    nic_pkt_info pi;
    if (type != ETHERTYPE_IP || !nic_pkt_parse(f.data(), f.size(), &pi)) {
      st_.ierrors.add(1);
      continue;
    }
    uint32_t flags = 0;
    const bool l4 = (pi.proto == IPPROTO_TCP || pi.proto == IPPROTO_UDP) && !pi.fragment;
    // The checksum engine runs when the stack asked for it, and always
    // before LRO or the TLS engine touch the payload.
    const bool verify =
        rxcsum || lro || ((eng || rx_eng || toe_on) && pi.proto == IPPROTO_TCP);
    bool ip_ok = true, l4_ok = true;
    uint32_t psum = 0;  // the TCP payload's sum, for LRO
    if (verify) {
      ip_ok = nic_ip_cksum_ok(f.data(), pi);
      if (l4)
        l4_ok = pi.proto == IPPROTO_TCP ? nic_tcp_cksum_ok(f.data(), pi, &psum)
                                        : nic_l4_cksum_ok(f.data(), pi);
      (ip_ok && l4_ok ? st_.rx_csum_ok : st_.rx_csum_bad).add(1);
      // A frame the checksum engine finds corrupt is an input error; it
      // still goes up unmarked, and the stack drops it (rcvbadsum).
      if (!(ip_ok && l4_ok)) st_.ierrors.add(1);
    }
    if (rxcsum) {
      flags |= CSUM_L3_CALC | (ip_ok ? CSUM_L3_VALID : 0);
      if (l4 && l4_ok) flags |= CSUM_L4_CALC | CSUM_L4_VALID;
    }
    if (toe_on && pi.proto == IPPROTO_TCP && ip_ok && l4_ok &&
        toe->toe_input(f.data(), f.size())) {
      st_.toe_rx_frames.add(1);
      continue;
    }
    // A TLS engine may also claim TOE frames (NicSimOffload::toe_input).
    if (eng && pi.proto == IPPROTO_TCP && ip_ok && l4_ok && (cap & IFCAP_TOE4) &&
        eng->toe_input(*this, f.data(), f.size())) {
      st_.toe_rx_frames.add(1);
      continue;
    }
    if ((eng || rx_eng) && pi.proto == IPPROTO_TCP && ip_ok && l4_ok) {
      uint32_t before = flags;
      if (eng) eng->rx_frame(*this, f.data(), f.size(), &flags);
      if (rx_eng) rx_eng->rx_frame(*this, f.data(), f.size(), &flags);
      if ((flags & CSUM_TLS_DECRYPTED) && !(before & CSUM_TLS_DECRYPTED)) {
        st_.tls_rx_frames.add(1);
        // The payload changed after the checksum was verified: say so,
        // or the stack would recheck the old sum against new bytes.
        flags |= CSUM_L3_CALC | CSUM_L3_VALID | CSUM_L4_CALC | CSUM_L4_VALID;
      }
    }
    // Frames the TLS engine decrypted merge with each other only (as
    // Linux's GRO keeps decrypted and encrypted skbs apart): the whole
    // super-packet is then plaintext.
    const uint32_t tls = flags & CSUM_TLS_MASK;
    const bool mergeable = lro && in && ip_ok && l4_ok &&
                           (tls == 0 || tls == CSUM_TLS_DECRYPTED) &&
                           lro_eligible(f.data(), pi);
    if (!mergeable) {
      flush();
      deliver(f, flags, in);
      continue;
    }
    const int payload = pi.l4len - pi.tcp_hlen;
    const uint8_t* data = f.data() + pi.l4off + pi.tcp_hlen;
    if (acc.segs > 0 && acc.flags == flags && lro_continues(acc.hdr, acc.pi, f.data(), pi)) {
      mbuf* p = devget(k_, data, payload, 0);
      if (p != nullptr) {
        const uint8_t* th = f.data() + pi.l4off;
        uint8_t* ath = acc.hdr + acc.pi.l4off;
        // The newest ack, window and options (timestamps) describe the whole.
        memcpy(ath + 8, th + 8, 4);
        memcpy(ath + 14, th + 14, 2);
        memcpy(ath + 20, th + 20, pi.tcp_hlen - 20);
        ath[13] |= th[13] & TH_PUSH;
        acc.tail->m_next = p;
        acc.tail = m_last(p);
        acc.m->m_pkthdr.len += payload;
        // This payload follows plen bytes: after an odd count its bytes sit
        // at odd offsets, and its sum is the byte swap of its own.
        acc.psum = cksum_add32(acc.psum, (acc.plen & 1) ? nic_cksum_at_odd(psum) : psum);
        acc.plen += payload;
        acc.pi.ip_len += payload;
        acc.pi.l4len += payload;
        acc.segs++;
        st_.lro_queued.add(1);
        continue;
      }
    }
    flush();
    mbuf* m = m_devget(k_, f.data() + ETHER_HDR_LEN, pi.ip_len);
    if (m == nullptr) {
      st_.iqdrops.add(1);
      continue;
    }
    // The headers are rewritten in place at the flush: they must lie in
    // the first mbuf (they do: its buffer is a cluster).
    if (m->m_len < pi.ip_hlen + pi.tcp_hlen) {
      deliver(m, flags, in);
      continue;
    }
    acc.m = m;
    acc.tail = m_last(m);
    memcpy(acc.hdr, f.data(), pi.l4off + pi.tcp_hlen);
    acc.pi = pi;
    acc.flags = flags;
    acc.segs = 1;
    acc.psum = psum;
    acc.plen = payload;
    st_.lro_queued.add(1);
  }
  flush();
}

bool NicSim::quiesce(uint64_t timeout_ns) {
  uint64_t deadline = Wire::now_ns() + timeout_ns;
  for (;;) {
    bool idle;
    {
      MutexLock l(&txmu_);
      idle = txq_.empty() && !tx_busy_;
    }
    if (idle) {
      MutexLock l(&rxmu_);
      idle = rxq_.empty() && !rx_busy_;
    }
    if (idle) return true;
    if (Wire::now_ns() >= deadline) return false;
    std::this_thread::sleep_for(std::chrono::microseconds(200));
  }
}

// ---- send tags ----

int NicSim::snd_tag_alloc(const if_snd_tag_alloc_params& p, m_snd_tag** out) {
  const uint32_t c = capenable_.load(), c2 = capenable2_.load();
  switch (p.hdr.type) {
    case IF_SND_TAG_TYPE_RATE_LIMIT:
    case IF_SND_TAG_TYPE_UNLIMITED: {
      if (p.hdr.type == IF_SND_TAG_TYPE_RATE_LIMIT && !(c & IFCAP_TXRTLMT))
        return EOPNOTSUPP;
      auto* t = new nic_sim_tag();
      m_snd_tag_init(t, nullptr,
                     p.hdr.type == IF_SND_TAG_TYPE_RATE_LIMIT ? &kRateLimitSw
                                                              : &kUnlimitedSw,
                     num_snd_tags_);
      t->softc = this;
      if (p.hdr.type == IF_SND_TAG_TYPE_RATE_LIMIT)
        t->max_rate.store(p.rate_limit.max_rate);
      *out = t;
      return 0;
    }
    case IF_SND_TAG_TYPE_TLS:
    case IF_SND_TAG_TYPE_TLS_RATE_LIMIT:
    case IF_SND_TAG_TYPE_TLS_RX: {
      if (p.hdr.type == IF_SND_TAG_TYPE_TLS_RX) {
        if (!(c2 & IFCAP2_BIT(IFCAP2_RXTLS4))) return EOPNOTSUPP;
      } else {
        if (!(c & IFCAP_TXTLS4) || !(c & IFCAP_MEXTPG)) return EOPNOTSUPP;
        if (p.hdr.type == IF_SND_TAG_TYPE_TLS_RATE_LIMIT && !(c & IFCAP_TXTLS_RTLMT))
          return EOPNOTSUPP;
      }
      std::shared_ptr<NicSimOffload> eng;
      {
        MutexLock l(&cfg_mu_);
        // TLS_RX tags belong to the receive engine when one is installed.
        eng = p.hdr.type == IF_SND_TAG_TYPE_TLS_RX && rx_offload_ ? rx_offload_
                                                                  : offload_;
      }
      if (!eng) return EOPNOTSUPP;
      return eng->snd_tag_alloc(*this, p, out);
    }
    default:
      return EINVAL;
  }
}

// ---- ifconfig output ----

std::string NicSim::ifconfig_status() const {
  const bool up = is_up();
  // IFF_UP|IFF_BROADCAST|IFF_DRV_RUNNING|IFF_SIMPLEX|IFF_MULTICAST
  int flags = 0x2 | 0x800 | 0x8000 | (up ? 0x1 | 0x40 : 0);
  char buf[256];
  snprintf(buf, sizeof buf, "%s: flags=%x<%s> metric 0 mtu %d\n", name_.c_str(),
           flags,
           up ? "UP,BROADCAST,RUNNING,SIMPLEX,MULTICAST"
              : "BROADCAST,SIMPLEX,MULTICAST",
           mtu());
  std::string s = buf;
  if (capenable() || capenable2())
    s += "\t" + ifcap_format("options", capenable(), capenable2()) + "\n";
  s += "\t" + ifcap_format("capabilities", NIC_SIM_CAPS, NIC_SIM_CAPS2) + "\n";
  s += "\tether " + ether_sprintf(mac_) + "\n";
  uint32_t a = inet_addr(), m = inet_mask();
  if (a != 0) {
    snprintf(buf, sizeof buf, "\tinet %s netmask 0x%08x broadcast %s\n",
             inet_format(a).c_str(), ntohl(m), inet_format(a | ~m).c_str());
    s += buf;
  }
  int side = 0;
  auto w = wire(&side);
  std::string media = "Ethernet autoselect";
  if (w) {
    WireParams p = w->params();
    if (p.bw_bps) media += " (" + format_bandwidth(p.bw_bps) + "bit/s <full-duplex>)";
  }
  s += "\tmedia: " + media + "\n";
  s += std::string("\tstatus: ") + (link_active() ? "active" : "no carrier") + "\n";
  if (w) {
    WireDirStats o = w->stats(side), i = w->stats(1 - side);
    snprintf(buf, sizeof buf,
             "\twire: %s\n\twire tx: frames %llu drops queue %llu loss %llu "
             "reorders %llu dups %llu\n\twire rx: frames %llu\n",
             wire_params_format(w->params()).c_str(),
             static_cast<unsigned long long>(o.tx_frames),
             static_cast<unsigned long long>(o.drops_queue),
             static_cast<unsigned long long>(o.drops_loss),
             static_cast<unsigned long long>(o.reorders),
             static_cast<unsigned long long>(o.dups),
             static_cast<unsigned long long>(i.rx_frames));
    s += buf;
  }
  if (bpf_.active()) s += "\tcapture: " + bpf_.path() + "\n";
  return s;
}

// ---- per-kernel state, create/destroy, ifconfig, wire ----

NicSimState::NicSimState(kernel& kern)
    : k(kern), num_snd_tags(kern.mb->num_snd_tags), sysctl_ctx(kern) {
  sysctl_ctx.add_node("dev", "devices");
  sysctl_ctx.add_node("dev.nic_sim", "uktls simulated NICs");
  // FreeBSD keeps this gauge in kern_mbuf.c; uktls's send tags are only
  // allocated by drivers, so the driver framework owns it.
  sysctl_ctx.add_counter("kern.ipc.num_snd_tags", CTLFLAG_RD, &num_snd_tags,
                         "# of active mbuf send tags");
}

NicSimState::~NicSimState() {
  std::map<int, std::shared_ptr<NicSim>> units_;
  {
    MutexLock l(&mu);
    units_.swap(units);
  }
  for (auto& [unit, nic] : units_) nic->shutdown();
  units_.clear();
}

static int nic_sim_sysinit(kernel& k) {
  k.nic_sim.reset(new NicSimState(k));
  return 0;
}

static void nic_sim_sysuninit(kernel& k) { k.nic_sim.reset(); }

UK_SYSINIT(nic_sim, SI_SUB_DRIVERS, SI_ORDER_MIDDLE, nic_sim_sysinit,
           nic_sim_sysuninit);

int nic_sim_create(kernel& k, int unit) {
  if (!k.nic_sim) return ENXIO;
  NicSimState& st = *k.nic_sim;
  {
    MutexLock l(&st.mu);
    if (st.units.count(unit)) return EEXIST;
  }
  auto nic = std::make_shared<NicSim>(k, unit, &st.num_snd_tags);
  nic->set_rx_offload(nic_tls_rx_create(*nic));
  {
    MutexLock l(&st.mu);
    if (!st.units.emplace(unit, nic).second) return EEXIST;
  }
  nic->attach_ifnet(nic);
  // The attach messages a FreeBSD NIC driver prints (device_printf at
  // probe/attach, then ether_ifattach's address line), plus what the
  // hardware can offload.
  kprintf(k, "nic_sim%d: <Simulated TLS NIC> on nexus0\n", unit);
  kprintf(k, "nic_sim%d: Ethernet address: %s\n", unit,
          ether_sprintf(nic->mac()).c_str());
  kprintf(k, "nic_sim%d: %s\n", unit,
          ifcap_format("capabilities", NIC_SIM_CAPS, NIC_SIM_CAPS2).c_str());
  nic->set_toe(nic_toe_create(nic.get()));
  nic_tls_tx_attach(*nic);  // inline TLS transmit (IFNET mode)
  return 0;
}

int nic_sim_destroy(kernel& k, int unit) {
  if (!k.nic_sim) return ENXIO;
  std::shared_ptr<NicSim> nic;
  {
    MutexLock l(&k.nic_sim->mu);
    auto it = k.nic_sim->units.find(unit);
    if (it == k.nic_sim->units.end()) return ENXIO;
    nic = std::move(it->second);
    k.nic_sim->units.erase(it);
  }
  nic->shutdown();
  return 0;
}

std::shared_ptr<NicSim> nic_sim_find(kernel& k, std::string_view ifname) {
  std::string driver;
  int unit;
  if (!k.nic_sim || ifname_parse(ifname, &driver, &unit) != 0 ||
      driver != "nic_sim")
    return nullptr;
  MutexLock l(&k.nic_sim->mu);
  auto it = k.nic_sim->units.find(unit);
  return it == k.nic_sim->units.end() ? nullptr : it->second;
}

int nic_sim_ifconfig(kernel& k, std::string_view ifname, std::string_view args,
                     std::string* err) {
  std::string name(ifname);
  auto fail = [&](int e, std::string msg) {
    if (err) *err = "ifconfig: " + name + ": " + msg;
    return e;
  };
  std::string driver;
  int unit;
  if (ifname_parse(ifname, &driver, &unit) != 0)
    return fail(EINVAL, "bad interface name");
  if (driver != "nic_sim") return fail(ENXIO, "interface does not exist");
  ifconfig_req r;
  if (int e = ifconfig_parse(args, &r, err)) return e;
  if (r.create) {
    if (int e = nic_sim_create(k, unit))
      return fail(e, e == EEXIST ? "interface already exists" : "cannot create");
  }
  if (r.destroy) {
    if (nic_sim_destroy(k, unit) != 0) return fail(ENXIO, "interface does not exist");
    return 0;
  }
  std::shared_ptr<NicSim> nic = nic_sim_find(k, ifname);
  if (!nic) return fail(ENXIO, "interface does not exist");
  if (r.mtu) {
    if (int e = nic->set_mtu(*r.mtu, err)) return e;
  }
  if (r.cap_on || r.cap_off || r.cap2_on || r.cap2_off) {
    if (int e = nic->set_caps(r.cap_on, r.cap_off, r.cap2_on, r.cap2_off, err))
      return e;
  }
  // Removes one address and its prefix route from the stack.
  auto remove_addr = [&](uint32_t a, uint32_t mask) {
    ifnet* ifp = nic->ifp();
    if (!ifp || a == 0) return;
    k.net->rt->del(in_addr{a & mask}, inet_mask_prefix(mask));
    MutexLock l(&k.net->if_mu);
    std::erase_if(ifp->if_addrs,
                  [a](const in_ifaddr& ia) { return ia.ia_addr.s_addr == a; });
  };
  const uint32_t old = nic->inet_addr(), old_mask = nic->inet_mask();
  if (r.inet_delete) {
    // "inet A -alias" removes A; a bare "-alias" the primary address.
    uint32_t a = r.inet_addr ? *r.inet_addr : old;
    if (a != old && a != 0) {
      remove_addr(a, r.inet_mask);
    } else {
      remove_addr(old, old_mask);
      nic->set_inet(0, 0);
      nic->arp().flush();
    }
  } else if (r.inet_addr) {
    // Without "alias" the new address replaces the primary one (SIOCSIFADDR).
    if (!r.inet_alias && old != 0 && old != *r.inet_addr) remove_addr(old, old_mask);
    if (ifnet* ifp = nic->ifp()) {
      // The address and its prefix route, in the stack (in_control).
      int e = in_control_addaddr(k, ifp, in_addr{*r.inet_addr}, r.inet_prefixlen);
      if (e != 0 && e != EEXIST) return fail(e, "cannot add address");
    }
    if (!r.inet_alias || old == 0) nic->set_inet(*r.inet_addr, r.inet_mask);
    // As ether_ioctl(SIOCSIFADDR): giving an address brings the link up.
    nic->set_up(true);
  }
  if (r.up) nic->set_up(*r.up);
  return 0;
}

int nic_sim_wire(kernel& a, std::string_view ifa, kernel& b,
                 std::string_view ifb, std::string_view params, std::string* err) {
  auto fail = [&](int e, std::string msg) {
    if (err) *err = "wire: " + msg;
    return e;
  };
  std::shared_ptr<NicSim> na = nic_sim_find(a, ifa), nb = nic_sim_find(b, ifb);
  if (!na) return fail(ENXIO, std::string(ifa) + ": no such interface");
  if (!nb) return fail(ENXIO, std::string(ifb) + ": no such interface");
  if (na == nb) return fail(EINVAL, std::string(ifa) + ": cannot wire a port to itself");
  int sa = 0, sb = 0;
  std::shared_ptr<Wire> wa = na->wire(&sa), wb = nb->wire(&sb);
  if (wa && wa == wb) return wa->set_params(params, err);  // retune in place
  WireParams p;
  if (int e = wire_params_parse(params, &p, err)) return e;
  if (wa && wa->attached(1 - sa))
    return fail(EBUSY, na->name() + " is already wired");
  if (wb && wb->attached(1 - sb))
    return fail(EBUSY, nb->name() + " is already wired");
  // A cable whose far end was unplugged (its kernel halted) is replaced.
  na->wire_detach();
  nb->wire_detach();
  std::shared_ptr<Wire> w = Wire::Create(p);
  if (int e = na->wire_attach(w, 0)) return fail(e, na->name() + " is busy");
  if (int e = nb->wire_attach(w, 1)) {
    na->wire_detach();
    return fail(e, nb->name() + " is busy");
  }
  return 0;
}

}  // namespace uk
