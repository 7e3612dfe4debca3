// The simulated NIC: ifconfig and capabilities, ARP between wired kernels,
// checksum offload, TSO and LRO, capture, send tags and the TLS engine hook,
// pacing, and halting a kernel while its peer keeps sending.
#include "sys/dev/nic_sim/nic_sim.h"

#include <arpa/inet.h>

#include <cerrno>
#include <cstring>

#include "gtest/gtest.h"
#include "lib/libuk/uk.h"
#include "sys/dev/nic_sim/nic_sim_csum.h"
#include "sys/kern/kernel.h"
#include "sys/kern/subr_prf.h"
#include "sys/kern/syscalls.h"
#include "sys/net/if_ethersubr.h"
#include "tests/sys/net/frames.h"

namespace uk {
namespace {

std::unique_ptr<kernel> Boot() {
  boot_params bp;
  bp.ncpus = 1;
  int e = 0;
  auto k = kernel::boot(bp, &e);
  EXPECT_EQ(e, 0);
  return k;
}

uint32_t ip(const char* s) { return inet_addr(s); }

// Collects what the stack would receive from a NIC.
class Inbox {
 public:
  NicSim::InputFn fn() {
    return [this](MbufPtr m) {
      MutexLock l(&mu_);
      std::vector<uint8_t> b(m->m_pkthdr.len);
      m_copydata(m.get(), 0, m->m_pkthdr.len, b.data());
      pkts_.push_back(std::move(b));
      flags_.push_back(m->m_pkthdr.csum_flags);
      cv_.SignalAll();
    };
  }
  // Waits for n packets (or 10 s).
  bool wait(size_t n) {
    MutexLock l(&mu_);
    uint64_t deadline = Wire::now_ns() + 10'000'000'000ull;
    while (pkts_.size() < n) {
      uint64_t now = Wire::now_ns();
      if (now >= deadline) return false;
      cv_.WaitWithTimeout(&mu_, absl::Nanoseconds(deadline - now));
    }
    return true;
  }
  std::vector<std::vector<uint8_t>> pkts() {
    MutexLock l(&mu_);
    return pkts_;
  }
  std::vector<uint32_t> flags() {
    MutexLock l(&mu_);
    return flags_;
  }

 private:
  Mutex mu_;
  CondVar cv_;
  std::vector<std::vector<uint8_t>> pkts_ ABSL_GUARDED_BY(mu_);
  std::vector<uint32_t> flags_ ABSL_GUARDED_BY(mu_);
};

// An IPv4/TCP packet (no Ethernet header) as an mbuf of kernel k.
MbufPtr TcpPacket(kernel& k, const test::TcpSpec& s, const std::vector<uint8_t>& payload) {
  auto f = test::tcp_frame(s, payload.data(), payload.size());
  return MbufPtr(m_devget(k, f.data() + ETHER_HDR_LEN,
                          static_cast<int>(f.size()) - ETHER_HDR_LEN));
}

// Re-frames a delivered IP packet so the checksum helpers can parse it.
bool ChecksumsOk(const std::vector<uint8_t>& ippkt) {
  std::vector<uint8_t> f(ETHER_HDR_LEN, 0);
  f[12] = 0x08;
  f.insert(f.end(), ippkt.begin(), ippkt.end());
  nic_pkt_info pi;
  return nic_pkt_parse(f.data(), f.size(), &pi) && nic_ip_cksum_ok(f.data(), pi) &&
         nic_l4_cksum_ok(f.data(), pi);
}

uint32_t TcpSeq(const std::vector<uint8_t>& p) {
  uint32_t v;
  memcpy(&v, p.data() + 20 + 4, 4);
  return ntohl(v);
}

// Two kernels, nic_sim0 each, 10.0.0.1/24 and 10.0.0.2/24, wired.
struct Pair {
  Inbox ia, ib;  // outlive the kernels whose NICs deliver into them
  std::unique_ptr<kernel> a = Boot(), b = Boot();
  std::shared_ptr<NicSim> na, nb;
  explicit Pair(const char* wire = "bw=0 delay=0", const char* caps_a = "",
                const char* caps_b = "") {
    EXPECT_EQ(if_ifconfig(*a, "nic_sim0", "create"), 0);
    EXPECT_EQ(if_ifconfig(*b, "nic_sim0", "create"), 0);
    EXPECT_EQ(if_ifconfig(*a, "nic_sim0", (std::string("inet 10.0.0.1/24 up ") + caps_a).c_str()), 0);
    EXPECT_EQ(if_ifconfig(*b, "nic_sim0", (std::string("inet 10.0.0.2/24 up ") + caps_b).c_str()), 0);
    EXPECT_EQ(if_wire(*a, "nic_sim0", *b, "nic_sim0", wire), 0);
    na = nic_sim_find(*a, "nic_sim0");
    nb = nic_sim_find(*b, "nic_sim0");
    na->set_input(ia.fn());
    nb->set_input(ib.fn());
  }
  test::TcpSpec spec() const {
    test::TcpSpec s;
    s.src_mac = na->mac();
    s.dst_mac = nb->mac();
    return s;
  }
};

TEST(NicSimIfconfig, CreateDestroyAndErrors) {
  auto k = Boot();
  EXPECT_EQ(if_ifconfig(*k, "nic_sim0", "up"), ENXIO);
  EXPECT_EQ(if_ifconfig(*k, "nic_sim0", "create"), 0);
  EXPECT_EQ(if_ifconfig(*k, "nic_sim0", "create"), EEXIST);
  EXPECT_NE(k->dmesg->read().find("nic_sim0: interface already exists"), std::string::npos);
  EXPECT_EQ(if_ifconfig(*k, "nic_sim1", "create mtu 9000 up"), 0);
  EXPECT_EQ(if_ifconfig(*k, "nic_sim0", "frobnicate"), EINVAL);
  EXPECT_NE(k->dmesg->read().find("ifconfig: unknown word \"frobnicate\""), std::string::npos);
  EXPECT_EQ(if_ifconfig(*k, "nic_sim0", "mtu 67"), EINVAL);
  EXPECT_NE(k->dmesg->read().find("mtu 67 out of range 68..9000"), std::string::npos);
  EXPECT_EQ(if_ifconfig(*k, "nic_sim0", "mtu 9001"), EINVAL);
  EXPECT_EQ(if_ifconfig(*k, "nic_sim0", "mtu 1400"), 0);
  EXPECT_EQ(nic_sim_find(*k, "nic_sim0")->mtu(), 1400);
  EXPECT_EQ(nic_sim_find(*k, "nic_sim1")->mtu(), 9000);
  EXPECT_TRUE(nic_sim_find(*k, "nic_sim1")->is_up());
  EXPECT_EQ(if_ifconfig(*k, "bogus", "create"), EINVAL);
  EXPECT_EQ(if_ifconfig(*k, "em0", "create"), ENXIO);
  EXPECT_EQ(if_ifconfig(*k, "nic_sim0", "destroy"), 0);
  EXPECT_EQ(if_ifconfig(*k, "nic_sim0", "destroy"), ENXIO);
  EXPECT_EQ(nic_sim_find(*k, "nic_sim0"), nullptr);
  // The other interface survives, and halt destroys it.
  EXPECT_NE(nic_sim_find(*k, "nic_sim1"), nullptr);
}

TEST(NicSimIfconfig, CapabilitiesToggleWithDriverRules) {
  auto k = Boot();
  ASSERT_EQ(if_ifconfig(*k, "nic_sim0", "create"), 0);
  auto n = nic_sim_find(*k, "nic_sim0");
  EXPECT_EQ(n->capabilities(), IFCAP_RXCSUM | IFCAP_TXCSUM | IFCAP_TSO4 | IFCAP_LRO |
                                   IFCAP_TOE4 | IFCAP_TXRTLMT | IFCAP_MEXTPG |
                                   IFCAP_TXTLS4 | IFCAP_TXTLS6 | IFCAP_TXTLS_RTLMT);
  EXPECT_EQ(n->capabilities2(), IFCAP2_RXTLS);
  EXPECT_EQ(n->capenable(), 0u) << "all off until enabled";
  EXPECT_EQ(n->capenable2(), 0u);

  EXPECT_EQ(if_ifconfig(*k, "nic_sim0", "tso"), EINVAL);
  EXPECT_NE(k->dmesg->read().find("tso requires txcsum"), std::string::npos);
  ASSERT_EQ(if_ifconfig(*k, "nic_sim0", "txcsum rxcsum tso lro"), 0);
  EXPECT_EQ(n->capenable(), IFCAP_TXCSUM | IFCAP_RXCSUM | IFCAP_TSO4 | IFCAP_LRO);
  ASSERT_EQ(if_ifconfig(*k, "nic_sim0", "-txcsum"), 0);
  EXPECT_EQ(n->capenable(), IFCAP_RXCSUM | IFCAP_LRO) << "-txcsum takes TSO with it";
  EXPECT_NE(k->dmesg->read().find("tso4 disabled due to -txcsum"), std::string::npos);

  EXPECT_EQ(if_ifconfig(*k, "nic_sim0", "txtlsrtlmt"), EINVAL);
  ASSERT_EQ(if_ifconfig(*k, "nic_sim0", "txtls"), 0);
  EXPECT_TRUE(n->capenable() & IFCAP_MEXTPG) << "txtls brings unmapped mbufs";
  EXPECT_EQ(n->capenable() & IFCAP_TXTLS, IFCAP_TXTLS);
  ASSERT_EQ(if_ifconfig(*k, "nic_sim0", "txtlsrtlmt"), 0);
  EXPECT_TRUE(n->capenable() & IFCAP_TXTLS_RTLMT);
  ASSERT_EQ(if_ifconfig(*k, "nic_sim0", "-mextpg"), 0);
  EXPECT_EQ(n->capenable() & (IFCAP_TXTLS | IFCAP_TXTLS_RTLMT | IFCAP_MEXTPG), 0u);

  ASSERT_EQ(if_ifconfig(*k, "nic_sim0", "rxtls toe"), 0);
  EXPECT_EQ(n->capenable2(), IFCAP2_RXTLS);
  EXPECT_EQ(n->capenable() & IFCAP_TOE, IFCAP_TOE4) << "TOE6 is not a capability";
  ASSERT_EQ(if_ifconfig(*k, "nic_sim0", "-rxtls -toe -lro -rxcsum"), 0);
  EXPECT_EQ(n->capenable(), 0u);
  EXPECT_EQ(n->capenable2(), 0u);
  // txcsum6 is masked off like ifconfig does for unsupported bits.
  ASSERT_EQ(if_ifconfig(*k, "nic_sim0", "txcsum6"), 0);
  EXPECT_EQ(n->capenable(), 0u);
}

TEST(NicSimIfconfig, StatusAndSysctlsShowCapabilities) {
  uk_kernel* k = uk_boot(nullptr);
  ASSERT_NE(k, nullptr);
  uk_proc* p = uk_proc_create(k, "ifconfig");
  ASSERT_EQ(uk_ifconfig(k, "nic_sim0", "create"), 0);
  ASSERT_EQ(uk_ifconfig(k, "nic_sim0", "inet 10.1.0.1/16 txcsum txtls rxtls"), 0);
  EXPECT_EQ(uk_ifconfig(k, "nic_sim0", "txtsl"), -1);
  EXPECT_EQ(errno, EINVAL);
  unsigned v = 0;
  size_t len = sizeof v;
  ASSERT_EQ(uk_sysctlbyname(p, "dev.nic_sim.0.capenable", &v, &len, nullptr, 0), 0);
  EXPECT_EQ(v, IFCAP_TXCSUM | IFCAP_MEXTPG | IFCAP_TXTLS4 | IFCAP_TXTLS6);
  ASSERT_EQ(uk_sysctlbyname(p, "dev.nic_sim.0.capenable2", &v, &len, nullptr, 0), 0);
  EXPECT_EQ(v, 3u);
  uint64_t c = 99;
  len = sizeof c;
  ASSERT_EQ(uk_sysctlbyname(p, "dev.nic_sim.0.opackets", &c, &len, nullptr, 0), 0);
  EXPECT_EQ(c, 0u);
  ASSERT_EQ(uk_sysctlbyname(p, "kern.ipc.num_snd_tags", &c, &len, nullptr, 0), 0);
  EXPECT_EQ(c, 0u);
  uk_halt(k);

  auto kk = Boot();
  ASSERT_EQ(if_ifconfig(*kk, "nic_sim0", "create inet 10.1.0.1/16 txcsum txtls rxtls"), 0);
  std::string s = nic_sim_find(*kk, "nic_sim0")->ifconfig_status();
  EXPECT_NE(s.find("nic_sim0: flags=8843<UP,BROADCAST,RUNNING,SIMPLEX,MULTICAST> metric 0 mtu 1500\n"),
            std::string::npos) << s;
  EXPECT_NE(s.find("\toptions=1c000002<TXCSUM,MEXTPG,TXTLS4,TXTLS6,RXTLS4,RXTLS6>\n"),
            std::string::npos) << s;
  EXPECT_NE(s.find("\tcapabilities=9d004503<RXCSUM,TXCSUM,TSO4,LRO,TOE4,TXRTLMT,MEXTPG,"
                   "TXTLS4,TXTLS6,TXTLS_RTLMT,RXTLS4,RXTLS6>\n"),
            std::string::npos) << s;
  EXPECT_NE(s.find("\tinet 10.1.0.1 netmask 0xffff0000 broadcast 10.1.255.255\n"),
            std::string::npos) << s;
  EXPECT_NE(s.find("\tstatus: no carrier\n"), std::string::npos) << s;
}

TEST(NicSimWire, ArpThenDeliveryBothWays) {
  Pair p;
  EXPECT_TRUE(p.na->link_active());
  std::vector<uint8_t> payload(100, 'a');
  ASSERT_EQ(p.na->output(TcpPacket(*p.a, p.spec(), payload), ip("10.0.0.2")), 0);
  ASSERT_TRUE(p.ib.wait(1));
  auto got = p.ib.pkts();
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].size(), 140u);
  EXPECT_TRUE(ChecksumsOk(got[0]));
  EXPECT_EQ(memcmp(got[0].data() + 40, payload.data(), 100), 0);
  EXPECT_EQ(p.na->stats().arp_requests_tx.fetch(), 1u);
  EXPECT_EQ(p.nb->stats().arp_replies_tx.fetch(), 1u);
  // B learned A from the request; its reply path needs no ARP.
  test::TcpSpec r = p.spec();
  r.src_ip = "10.0.0.2";
  r.dst_ip = "10.0.0.1";
  ASSERT_EQ(p.nb->output(TcpPacket(*p.b, r, payload), ip("10.0.0.1")), 0);
  ASSERT_TRUE(p.ia.wait(1));
  EXPECT_EQ(p.nb->stats().arp_requests_tx.fetch(), 0u);
  // Counters: A sent the request and the packet; B received both.
  ASSERT_TRUE(p.na->quiesce(5'000'000'000));
  EXPECT_EQ(p.na->stats().opackets.fetch(), 2u);
  EXPECT_EQ(p.nb->stats().ipackets.fetch(), 2u);
  // Down interfaces refuse to send and drop what arrives.
  if_ifconfig(*p.b, "nic_sim0", "down");
  EXPECT_EQ(p.nb->output(TcpPacket(*p.b, r, payload), ip("10.0.0.1")), ENETDOWN);
  EXPECT_EQ(p.nb->stats().oerrors.fetch(), 1u);
  ASSERT_EQ(p.na->output(TcpPacket(*p.a, p.spec(), payload), ip("10.0.0.2")), 0);
  ASSERT_TRUE(p.na->quiesce(5'000'000'000));
  ASSERT_TRUE(p.na->wire()->drain(5'000'000'000));
  EXPECT_EQ(p.nb->stats().iqdrops.fetch(), 1u);
  // Oversized packets are refused unless they are TSO packets.
  std::vector<uint8_t> big(1500, 'b');
  EXPECT_EQ(p.na->output(TcpPacket(*p.a, p.spec(), big), ip("10.0.0.2")), EMSGSIZE);
}

TEST(NicSimWire, StaticNeighbourNeedsNoArp) {
  Pair p;
  p.na->arp().add_static(ip("10.0.0.2"), p.nb->mac());
  std::vector<uint8_t> payload(10, 'z');
  ASSERT_EQ(p.na->output(TcpPacket(*p.a, p.spec(), payload), ip("10.0.0.2")), 0);
  ASSERT_TRUE(p.ib.wait(1));
  EXPECT_EQ(p.na->stats().arp_requests_tx.fetch(), 0u);
}

TEST(NicSimOffload, TxChecksumOffloadAndRxVerification) {
  Pair p("bw=0 delay=0", "txcsum", "rxcsum");
  p.na->arp().add_static(ip("10.0.0.2"), p.nb->mac());
  std::vector<uint8_t> payload(300, 'c');
  test::TcpSpec s = p.spec();
  s.checksums = false;  // the stack leaves them to the NIC
  MbufPtr m = TcpPacket(*p.a, s, payload);
  m->m_pkthdr.csum_flags = CSUM_IP | CSUM_IP_TCP;
  ASSERT_EQ(p.na->output(std::move(m), ip("10.0.0.2")), 0);
  ASSERT_TRUE(p.ib.wait(1));
  EXPECT_TRUE(ChecksumsOk(p.ib.pkts()[0]));
  EXPECT_EQ(p.ib.flags()[0], CSUM_L3_CALC | CSUM_L3_VALID | CSUM_L4_CALC | CSUM_L4_VALID);
  EXPECT_EQ(p.na->stats().tx_csum.fetch(), 1u);
  // Without the offload request, wrong checksums go out wrong and the
  // receiver's NIC says so.
  ASSERT_EQ(p.na->output(TcpPacket(*p.a, s, payload), ip("10.0.0.2")), 0);
  ASSERT_TRUE(p.ib.wait(2));
  EXPECT_FALSE(ChecksumsOk(p.ib.pkts()[1]));
  EXPECT_EQ(p.ib.flags()[1] & CSUM_L4_VALID, 0u);
  EXPECT_EQ(p.nb->stats().rx_csum_bad.fetch(), 1u);
}

// A 20000-byte TSO packet arrives as MSS-sized segments (no LRO) or as
// merged super-packets (LRO); either way the bytes and checksums are right.
// LRO computes a merged packet's TCP checksum from its segments' sums
// without reading the payload again; an odd MSS puts every other segment's
// bytes at odd offsets of the merged payload.
void TsoTransfer(const char* rx_caps, bool expect_merge, int mss = 1448) {
  Pair p("bw=0 delay=0", "txcsum tso", rx_caps);
  // Interrupt moderation long enough that the burst is one RX batch.
  p.nb->set_rx_coalesce_us(50'000);
  p.na->arp().add_static(ip("10.0.0.2"), p.nb->mac());
  std::vector<uint8_t> payload(20000);
  for (size_t i = 0; i < payload.size(); i++) payload[i] = static_cast<uint8_t>(i * 7);
  test::TcpSpec s = p.spec();
  s.seq = 5000;
  s.flags = 0x18 | 0x01;  // PSH|ACK|FIN: only the last segment keeps PSH/FIN
  MbufPtr m = TcpPacket(*p.a, s, payload);
  m->m_pkthdr.csum_flags = CSUM_IP | CSUM_IP_TCP | CSUM_IP_TSO;
  m->m_pkthdr.tso_segsz = static_cast<uint16_t>(mss);
  ASSERT_EQ(p.na->output(std::move(m), ip("10.0.0.2")), 0);
  ASSERT_TRUE(p.na->quiesce(5'000'000'000));
  ASSERT_TRUE(p.na->wire()->drain(5'000'000'000));
  ASSERT_TRUE(p.nb->quiesce(5'000'000'000));
  EXPECT_EQ(p.na->stats().tso_packets.fetch(), 1u);
  EXPECT_EQ(p.na->stats().tso_segments.fetch(), 14u);
  // Interface statistics count what crossed the wire (ifi_opackets /
  // ifi_ipackets through if_get_counter): every TSO segment is a packet
  // sent, and LRO merges only after each segment was counted received.
  EXPECT_EQ(p.na->stats().opackets.fetch(), 14u);
  EXPECT_EQ(p.nb->stats().ipackets.fetch(), 14u);
  EXPECT_EQ(p.na->stats().obytes.fetch(), p.nb->stats().ibytes.fetch());
  auto pk = p.ib.pkts();
  std::vector<uint8_t> all;
  uint32_t next = 5000;
  for (const auto& x : pk) {
    EXPECT_TRUE(ChecksumsOk(x));
    EXPECT_EQ(TcpSeq(x), next);
    all.insert(all.end(), x.begin() + 40, x.end());
    next += static_cast<uint32_t>(x.size() - 40);
  }
  EXPECT_EQ(all, payload);
  // FIN only on the last packet delivered.
  for (size_t i = 0; i + 1 < pk.size(); i++) EXPECT_EQ(pk[i][33] & 0x01, 0) << i;
  EXPECT_EQ(pk.back()[33] & 0x09, 0x09);
  if (expect_merge) {
    EXPECT_LT(pk.size(), 14u);
    EXPECT_EQ(p.nb->stats().lro_queued.fetch(), 13u) << "the FIN segment is not merged";
  } else {
    EXPECT_EQ(pk.size(), 14u);
    for (size_t i = 0; i + 1 < pk.size(); i++) EXPECT_EQ(pk[i].size(), 40u + mss);
  }
}

TEST(NicSimOffload, TsoSegments) { TsoTransfer("", false); }
TEST(NicSimOffload, TsoThenLroMerges) { TsoTransfer("rxcsum lro", true); }
TEST(NicSimOffload, LroMergesOddSizedSegments) { TsoTransfer("lro", true, 1447); }

TEST(NicSimCapture, PcapOfNicTrafficDecodes) {
  Pair p;
  std::string path = std::string(getenv("TEST_TMPDIR") ? getenv("TEST_TMPDIR") : "/tmp") +
                     "/nic.pcap";
  ASSERT_EQ(p.na->bpf().start(path, {}), 0);
  std::vector<uint8_t> payload(64, 'p');
  for (int i = 0; i < 3; i++) {
    test::TcpSpec s = p.spec();
    s.seq = 100 + i * 64;
    ASSERT_EQ(p.na->output(TcpPacket(*p.a, s, payload), ip("10.0.0.2")), 0);
  }
  ASSERT_TRUE(p.ib.wait(3));
  ASSERT_TRUE(p.na->quiesce(5'000'000'000));
  EXPECT_NE(p.na->ifconfig_status().find("capture: " + path), std::string::npos);
  ASSERT_EQ(p.na->bpf().stop(), 0);
  // ARP request (sent), ARP reply (received), then three TCP segments.
  std::string out = test::tshark("-r " + path + " -T fields -E separator=, -e frame.protocols");
  auto l = test::lines(out);
  ASSERT_EQ(l.size(), 5u) << out;
  EXPECT_EQ(l[0], "eth:ethertype:arp");
  EXPECT_EQ(l[1], "eth:ethertype:arp");
  for (int i = 2; i < 5; i++) EXPECT_EQ(l[i], "eth:ethertype:ip:tcp:data") << i;
}

// A fake inline engine: "encrypts" by XOR-ing the TCP payload with 0x5a
// and "decrypts" received frames the same way, marking them decrypted.
class XorEngine : public NicSimOffload {
 public:
  struct Tag : nic_sim_tag {};
  static void tag_free(m_snd_tag* t) { delete static_cast<Tag*>(t); }
  static constexpr if_snd_tag_sw kTlsSw = {nullptr, nullptr, tag_free, IF_SND_TAG_TYPE_TLS};
  int snd_tag_alloc(NicSim& nic, const if_snd_tag_alloc_params& p, m_snd_tag** out) override {
    if (p.hdr.type != IF_SND_TAG_TYPE_TLS) return EOPNOTSUPP;
    Tag* t = new Tag();
    m_snd_tag_init(t, nullptr, &kTlsSw, nic.num_snd_tags());
    t->softc = &nic;
    *out = t;
    return 0;
  }
  int tx_frame(NicSim&, m_snd_tag*, const mbuf*, uint8_t* f, size_t len) override {
    nic_pkt_info pi;
    if (!nic_pkt_parse(f, len, &pi)) return EINVAL;
    for (int i = pi.l4off + pi.tcp_hlen; i < pi.l3off + pi.ip_len; i++) f[i] ^= 0x5a;
    tx++;
    return 0;
  }
  void rx_frame(NicSim&, uint8_t* f, size_t len, uint32_t* flags) override {
    nic_pkt_info pi;
    if (!nic_pkt_parse(f, len, &pi) || pi.l4len == pi.tcp_hlen) return;
    for (int i = pi.l4off + pi.tcp_hlen; i < pi.l3off + pi.ip_len; i++) f[i] ^= 0x5a;
    *flags |= CSUM_TLS_DECRYPTED;
  }
  bool toe_input(NicSim&, const uint8_t* f, size_t len) override {
    nic_pkt_info pi;
    // Claims the connection to port 9999 only.
    if (!nic_pkt_parse(f, len, &pi)) return false;
    bool mine = f[pi.l4off + 2] == 0x27 && f[pi.l4off + 3] == 0x0f;
    if (mine) toe++;
    return mine;
  }
  std::atomic<int> tx{0}, toe{0};
};

TEST(NicSimSendTag, TagsCountedAndReleasedWithPackets) {
  Pair p("bw=0 delay=0", "txrtlmt");
  p.na->arp().add_static(ip("10.0.0.2"), p.nb->mac());
  if_snd_tag_alloc_params ap;
  ap.hdr.type = IF_SND_TAG_TYPE_UNLIMITED;
  m_snd_tag* t = nullptr;
  ASSERT_EQ(p.na->snd_tag_alloc(ap, &t), 0);
  EXPECT_EQ(t->type(), IF_SND_TAG_TYPE_UNLIMITED);
  EXPECT_EQ(p.a->nic_sim->num_snd_tags.fetch(), 1u);
  std::vector<uint8_t> payload(50, 't');
  for (int i = 0; i < 5; i++) {
    MbufPtr m = TcpPacket(*p.a, p.spec(), payload);
    m->m_pkthdr.snd_tag = m_snd_tag_ref(t);
    m->m_pkthdr.csum_flags |= CSUM_SND_TAG;
    ASSERT_EQ(p.na->output(std::move(m), ip("10.0.0.2")), 0);
  }
  ASSERT_TRUE(p.ib.wait(5));
  ASSERT_TRUE(p.na->quiesce(5'000'000'000));
  EXPECT_EQ(t->refcount(), 1u) << "each packet's reference ended with it";
  m_snd_tag_rele(t);
  EXPECT_EQ(p.a->nic_sim->num_snd_tags.fetch(), 0u);

  // TLS kinds need the capability and an engine.
  ap.hdr.type = IF_SND_TAG_TYPE_TLS;
  EXPECT_EQ(p.na->snd_tag_alloc(ap, &t), EOPNOTSUPP);
  ASSERT_EQ(if_ifconfig(*p.a, "nic_sim0", "txtls"), 0);
  p.na->set_offload(nullptr);  // the TLS engine installed at creation
  EXPECT_EQ(p.na->snd_tag_alloc(ap, &t), EOPNOTSUPP) << "no engine installed";
  ap.hdr.type = IF_SND_TAG_TYPE_TLS_RX;
  EXPECT_EQ(p.na->snd_tag_alloc(ap, &t), EOPNOTSUPP);
  ap.hdr.type = IF_SND_TAG_TYPE_RATE_LIMIT;
  ap.rate_limit.max_rate = 1000;
  ASSERT_EQ(p.na->snd_tag_alloc(ap, &t), 0);
  if_snd_tag_modify_params mp;
  mp.rate_limit.max_rate = 2000;
  ASSERT_EQ(t->sw->snd_tag_modify(t, &mp), 0);
  if_snd_tag_query_params qp;
  ASSERT_EQ(t->sw->snd_tag_query(t, &qp), 0);
  EXPECT_EQ(qp.rate_limit.max_rate, 2000u);
  m_snd_tag_rele(t);
  ap.hdr.type = 99;
  EXPECT_EQ(p.na->snd_tag_alloc(ap, &t), EINVAL);
}

TEST(NicSimSendTag, TlsEngineSeesTaggedFramesBeforeChecksums) {
  Pair p("bw=0 delay=0", "txcsum txtls", "rxcsum rxtls");
  auto eng = std::make_shared<XorEngine>();
  p.na->set_offload(eng);
  p.nb->set_offload(eng);
  p.na->arp().add_static(ip("10.0.0.2"), p.nb->mac());
  if_snd_tag_alloc_params ap;
  ap.hdr.type = IF_SND_TAG_TYPE_TLS;
  m_snd_tag* t = nullptr;
  ASSERT_EQ(p.na->snd_tag_alloc(ap, &t), 0);
  std::vector<uint8_t> payload(200, 'q');
  MbufPtr m = TcpPacket(*p.a, p.spec(), payload);
  m->m_pkthdr.snd_tag = m_snd_tag_ref(t);
  m->m_pkthdr.csum_flags |= CSUM_SND_TAG | CSUM_IP | CSUM_IP_TCP;
  ASSERT_EQ(p.na->output(std::move(m), ip("10.0.0.2")), 0);
  // An untagged packet is not touched by the TX engine.
  ASSERT_EQ(p.na->output(TcpPacket(*p.a, p.spec(), payload), ip("10.0.0.2")), 0);
  ASSERT_TRUE(p.ib.wait(2));
  EXPECT_EQ(eng->tx.load(), 1);
  auto pk = p.ib.pkts();
  auto fl = p.ib.flags();
  // Tagged: XORed on TX, XORed back on RX and marked decrypted.
  EXPECT_EQ(std::vector<uint8_t>(pk[0].begin() + 40, pk[0].end()), payload);
  EXPECT_TRUE(fl[0] & CSUM_TLS_DECRYPTED);
  EXPECT_TRUE(fl[0] & CSUM_L4_VALID);
  // Untagged: plaintext on the wire, so the RX engine's XOR garbles it —
  // which shows the RX hook ran on every TCP frame.
  EXPECT_EQ(pk[1][40], 'q' ^ 0x5a);
  EXPECT_EQ(p.na->stats().tls_tx_frames.fetch(), 1u);
  EXPECT_EQ(p.nb->stats().tls_rx_frames.fetch(), 2u);
  m_snd_tag_rele(t);
}

TEST(NicSimSendTag, ToeEngineClaimsItsConnectionsOnly) {
  Pair p("bw=0 delay=0", "", "toe");
  auto eng = std::make_shared<XorEngine>();
  p.nb->set_offload(eng);
  p.na->arp().add_static(ip("10.0.0.2"), p.nb->mac());
  std::vector<uint8_t> payload(20, 'o');
  test::TcpSpec s = p.spec();
  s.dport = 9999;
  ASSERT_EQ(p.na->output(TcpPacket(*p.a, s, payload), ip("10.0.0.2")), 0);
  s.dport = 80;
  ASSERT_EQ(p.na->output(TcpPacket(*p.a, s, payload), ip("10.0.0.2")), 0);
  ASSERT_TRUE(p.ib.wait(1));
  ASSERT_TRUE(p.na->quiesce(5'000'000'000));
  ASSERT_TRUE(p.na->wire()->drain(5'000'000'000));
  ASSERT_TRUE(p.nb->quiesce(5'000'000'000));
  EXPECT_EQ(eng->toe.load(), 1);
  EXPECT_EQ(p.nb->stats().toe_rx_frames.fetch(), 1u);
  auto pk = p.ib.pkts();
  ASSERT_EQ(pk.size(), 1u) << "only the port-80 segment reaches the host";
  // Without the toe capability the engine is not asked.
  ASSERT_EQ(if_ifconfig(*p.b, "nic_sim0", "-toe"), 0);
  s.dport = 9999;
  ASSERT_EQ(p.na->output(TcpPacket(*p.a, s, payload), ip("10.0.0.2")), 0);
  ASSERT_TRUE(p.ib.wait(2));
  EXPECT_EQ(eng->toe.load(), 1);
}

TEST(NicSimSendTag, RateLimitedTagPacesTransmission) {
  Pair p("bw=0 delay=0", "txrtlmt");
  p.na->arp().add_static(ip("10.0.0.2"), p.nb->mac());
  if_snd_tag_alloc_params ap;
  ap.hdr.type = IF_SND_TAG_TYPE_RATE_LIMIT;
  ap.rate_limit.max_rate = 1'000'000;  // bytes/s
  m_snd_tag* t = nullptr;
  ASSERT_EQ(p.na->snd_tag_alloc(ap, &t), 0);
  std::vector<uint8_t> payload(946, 'r');  // 1000-byte frames
  uint64_t t0 = Wire::now_ns();
  for (int i = 0; i < 20; i++) {
    MbufPtr m = TcpPacket(*p.a, p.spec(), payload);
    m->m_pkthdr.snd_tag = m_snd_tag_ref(t);
    m->m_pkthdr.csum_flags |= CSUM_SND_TAG;
    ASSERT_EQ(p.na->output(std::move(m), ip("10.0.0.2")), 0);
  }
  ASSERT_TRUE(p.ib.wait(20));
  uint64_t dt = Wire::now_ns() - t0;
  // 19 gaps of 1 ms at least: the NIC never sends ahead of the rate.
  EXPECT_GE(dt, 19'000'000u);
  EXPECT_GT(p.na->stats().paced_waits.fetch(), 0u);
  printf("20 x 1000 B at 1 MB/s took %.2f ms (ideal 19 ms)\n", dt / 1e6);
  m_snd_tag_rele(t);
}

TEST(NicSimWire, UkWireErrorsAndRetune) {
  auto a = Boot(), b = Boot();
  ASSERT_EQ(if_ifconfig(*a, "nic_sim0", "create"), 0);
  ASSERT_EQ(if_ifconfig(*a, "nic_sim1", "create"), 0);
  ASSERT_EQ(if_ifconfig(*b, "nic_sim0", "create"), 0);
  EXPECT_EQ(if_wire(*a, "nic_sim0", *b, "nic_sim9", ""), ENXIO);
  EXPECT_EQ(if_wire(*a, "nic_sim0", *a, "nic_sim0", ""), EINVAL);
  EXPECT_EQ(if_wire(*a, "nic_sim0", *b, "nic_sim0", "bw=fast"), EINVAL);
  EXPECT_NE(a->dmesg->read().find("wire: bw=fast: bad bandwidth"), std::string::npos);
  ASSERT_EQ(if_wire(*a, "nic_sim0", *b, "nic_sim0", "bw=1g delay=20us seed=3"), 0);
  EXPECT_EQ(if_wire(*a, "nic_sim1", *b, "nic_sim0", ""), EBUSY);
  // The same pair again retunes the cable in place.
  ASSERT_EQ(if_wire(*b, "nic_sim0", *a, "nic_sim0", "loss=0.5"), 0);
  WireParams wp = nic_sim_find(*a, "nic_sim0")->wire()->params();
  EXPECT_EQ(wp.bw_bps, 1'000'000'000u);
  EXPECT_DOUBLE_EQ(wp.loss, 0.5);
  EXPECT_EQ(nic_sim_find(*a, "nic_sim0")->wire(), nic_sim_find(*b, "nic_sim0")->wire());
  std::string s = nic_sim_find(*a, "nic_sim0")->ifconfig_status();
  EXPECT_NE(s.find("\tmedia: Ethernet autoselect (1gbit/s <full-duplex>)\n"), std::string::npos) << s;
  EXPECT_NE(s.find("\tstatus: active\n"), std::string::npos) << s;
  EXPECT_NE(s.find("\twire: bw=1g delay=20us loss=0.5 reorder=0 dup=0 qlen=0 seed=3\n"),
            std::string::npos) << s;
  // Destroying one end leaves the other without carrier; a new cable can
  // then be plugged in.
  ASSERT_EQ(if_ifconfig(*b, "nic_sim0", "destroy"), 0);
  EXPECT_FALSE(nic_sim_find(*a, "nic_sim0")->link_active());
  ASSERT_EQ(if_wire(*a, "nic_sim0", *a, "nic_sim1", "bw=10g"), 0);
  EXPECT_TRUE(nic_sim_find(*a, "nic_sim0")->link_active());
}

TEST(NicSimWire, PeerHaltsWhileTrafficFlows) {
  Inbox ib;
  auto a = Boot();
  std::shared_ptr<Wire> w;
  std::shared_ptr<NicSim> na;
  {
    auto b = Boot();
    ASSERT_EQ(if_ifconfig(*a, "nic_sim0", "create inet 10.0.0.1/24"), 0);
    ASSERT_EQ(if_ifconfig(*b, "nic_sim0", "create inet 10.0.0.2/24"), 0);
    ASSERT_EQ(if_wire(*a, "nic_sim0", *b, "nic_sim0", "bw=1g delay=100us"), 0);
    na = nic_sim_find(*a, "nic_sim0");
    auto nb = nic_sim_find(*b, "nic_sim0");
    na->arp().add_static(ip("10.0.0.2"), nb->mac());
    nb->set_input(ib.fn());
    test::TcpSpec s;
    s.src_mac = na->mac();
    s.dst_mac = nb->mac();
    std::vector<uint8_t> payload(1000, 'h');
    for (int i = 0; i < 200; i++) na->output(TcpPacket(*a, s, payload), ip("10.0.0.2"));
    w = na->wire();
    nb.reset();
    // b halts here with frames in flight towards it.
  }
  EXPECT_FALSE(na->link_active());
  test::TcpSpec s;
  std::vector<uint8_t> payload(100, 'h');
  for (int i = 0; i < 50; i++) na->output(TcpPacket(*a, s, payload), ip("10.0.0.2"));
  ASSERT_TRUE(na->quiesce(5'000'000'000));
  ASSERT_TRUE(w->drain(5'000'000'000));
  WireDirStats st = w->stats(0);
  EXPECT_EQ(st.tx_frames, 250u);
  EXPECT_EQ(st.rx_frames + st.drops_detached, 250u);
  EXPECT_GE(st.drops_detached, 50u);
}

}  // namespace
}  // namespace uk
