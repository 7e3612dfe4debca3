// Kernels joined by simulated NICs and wires, driven through lib/libuk:
// TCP between two kernels, through a gateway kernel, hash-checked transfers
// over lossy/reordering/duplicating wires at several bandwidths, capture of
// a TCP transfer decoded by tshark, and clean-wire throughput (printed, not
// asserted).
//
// UKTLS_NIC_TRANSFER_MB sets the size of the lossy transfers (default 4).
#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/evp.h>

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "lib/libuk/uk.h"
#include "sys/dev/nic_sim/nic_sim.h"
#include "sys/kern/kern_proc.h"
#include "sys/kern/kernel.h"
#include "sys/net/if_var.h"
#include "sys/net/route.h"
#include "tests/sys/dev/nic_sim/lab.h"
#include "tests/sys/net/frames.h"

namespace {

using Clock = std::chrono::steady_clock;
using uk::lab::boot;
using uk::lab::connect_to;
using uk::lab::listen_on;
using uk::lab::Node;
using uk::lab::sha256;

void route(Node& n, const char* net, int plen, const char* gw) {
  uk::kernel& k = n.kern();
  uk::nhop4 nh;
  ASSERT_EQ(k.net->rt->lookup(in_addr{inet_addr(gw)}, &nh), 0) << gw;
  ASSERT_EQ(k.net->rt->add(in_addr{inet_addr(net)}, plen, in_addr{inet_addr(gw)}, nh.ifp), 0);
}

struct Transfer {
  bool ok = false;
  std::string sent_hash, got_hash;
  size_t got = 0;
  double seconds = 0;
};

// Sends `bytes` of seeded data from `from` to `to` over a new connection and
// hashes both sides. Fails (no hang) if nothing moves for `stall_s`.
Transfer transfer(Node& from, Node& to, const char* to_ip, uint16_t port,
                  size_t bytes, int stall_s = 60) {
  Transfer t;
  std::vector<uint8_t> data(bytes);
  std::mt19937_64 rng(bytes);
  for (auto& b : data) b = static_cast<uint8_t>(rng());
  t.sent_hash = sha256(data);
  int l = listen_on(to, to_ip, port);
  int c = connect_to(from, to_ip, port);
  if (c < 0) return t;
  int a = uk_accept(to.p, l, nullptr, nullptr);
  EXPECT_GE(a, 0);
  // A receive timeout turns a stall into a failure instead of a hang.
  timeval tv{stall_s, 0};
  uk_setsockopt(to.p, a, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  uk_setsockopt(from.p, c, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  auto t0 = Clock::now();
  std::thread sender([&] {
    size_t off = 0;
    while (off < data.size()) {
      ssize_t n = uk_send(from.p, c, data.data() + off,
                          std::min<size_t>(64 * 1024, data.size() - off), 0);
      if (n <= 0) break;
      off += n;
    }
    uk_shutdown(from.p, c, SHUT_WR);
  });
  std::vector<uint8_t> got;
  got.reserve(bytes);
  std::vector<uint8_t> buf(256 * 1024);
  for (;;) {
    ssize_t n = uk_recv(to.p, a, buf.data(), buf.size(), 0);
    if (n <= 0) {
      if (n < 0) ADD_FAILURE() << "read: " << strerror(errno) << " after " << got.size();
      break;
    }
    got.insert(got.end(), buf.begin(), buf.begin() + n);
  }
  t.seconds = std::chrono::duration<double>(Clock::now() - t0).count();
  sender.join();
  t.got = got.size();
  t.got_hash = sha256(got);
  t.ok = t.got == bytes && t.got_hash == t.sent_hash;
  uk_close(from.p, c);
  uk_close(to.p, a);
  uk_close(to.p, l);
  return t;
}

size_t transfer_size() { return uk::lab::env_mib("UKTLS_NIC_TRANSFER_MB", 4); }

// Two kernels, one wire, the same capability words on both NICs.
struct Two : uk::lab::Pair {
  explicit Two(const char* wire, const char* caps = "")
      : Pair(wire, {.a_opts = caps, .b_opts = caps, .modules = ""}) {}
};

TEST(NicSimTcp, TwoKernelsConnectAndEcho) {
  Two t("bw=1g delay=50us");
  int l = listen_on(t.b, "10.0.0.2", 5001);
  int c = connect_to(t.a, "10.0.0.2", 5001);
  ASSERT_GE(c, 0);
  sockaddr_in peer{};
  socklen_t plen = sizeof peer;
  int s = uk_accept(t.b.p, l, reinterpret_cast<sockaddr*>(&peer), &plen);
  ASSERT_GE(s, 0);
  EXPECT_EQ(peer.sin_addr.s_addr, inet_addr("10.0.0.1"));
  ASSERT_EQ(uk_send(t.a.p, c, "ping", 4, 0), 4);
  char buf[8] = {};
  ASSERT_EQ(uk_recv(t.b.p, s, buf, sizeof buf, 0), 4);
  EXPECT_STREQ(buf, "ping");
  ASSERT_EQ(uk_send(t.b.p, s, "pong", 4, 0), 4);
  ASSERT_EQ(uk_recv(t.a.p, c, buf, sizeof buf, 0), 4);
  EXPECT_EQ(memcmp(buf, "pong", 4), 0);
  EXPECT_GE(t.a.stat("dev.nic_sim.0.arp_requests"), 1u);
  EXPECT_GT(t.b.stat("dev.nic_sim.0.ipackets"), 3u);
  uk_close(t.a.p, c);
  uk_close(t.b.p, s);
  uk_close(t.b.p, l);
}

TEST(NicSimTcp, AddressesReachTheStack) {
  Node a = boot("a", 2, "");
  ASSERT_EQ(uk_ifconfig(a.k, "nic_sim0", "create inet 10.0.0.1/24"), 0);
  uk::kernel& k = a.kern();
  auto addrs = [&] {
    std::vector<std::string> v;
    uk::RefPtr<uk::ifnet> ifp = uk::ifunit(k, "nic_sim0");
    uk::MutexLock l(&k.net->if_mu);
    for (const auto& ia : ifp->if_addrs) v.push_back(inet_ntoa(ia.ia_addr));
    return v;
  };
  ASSERT_NE(uk::ifunit(k, "nic_sim0"), nullptr);
  EXPECT_EQ(addrs(), std::vector<std::string>{"10.0.0.1"});
  uk::nhop4 nh;
  EXPECT_EQ(k.net->rt->lookup(in_addr{inet_addr("10.0.0.9")}, &nh), 0);
  EXPECT_EQ(nh.ifp->if_xname, "nic_sim0");
  EXPECT_EQ(nh.ifp->if_mtu.load(), 1500);
  // A new address replaces the primary one, its route goes too.
  ASSERT_EQ(uk_ifconfig(a.k, "nic_sim0", "inet 10.0.5.1/24"), 0);
  EXPECT_EQ(addrs(), std::vector<std::string>{"10.0.5.1"});
  EXPECT_EQ(k.net->rt->lookup(in_addr{inet_addr("10.0.0.9")}, &nh), EHOSTUNREACH);
  ASSERT_EQ(uk_ifconfig(a.k, "nic_sim0", "inet 10.0.6.1/24 alias"), 0);
  EXPECT_EQ(addrs(), (std::vector<std::string>{"10.0.5.1", "10.0.6.1"}));
  ASSERT_EQ(uk_ifconfig(a.k, "nic_sim0", "inet 10.0.6.1 -alias"), 0);
  EXPECT_EQ(addrs(), std::vector<std::string>{"10.0.5.1"});
  // The stack sees flags, MTU and checksum assists follow ifconfig.
  ASSERT_EQ(uk_ifconfig(a.k, "nic_sim0", "mtu 9000 txcsum tso down"), 0);
  uk::RefPtr<uk::ifnet> ifp = uk::ifunit(k, "nic_sim0");
  EXPECT_EQ(ifp->if_mtu.load(), 9000);
  EXPECT_EQ(ifp->if_flags.load() & uk::IFF_UP, 0);
  EXPECT_EQ(ifp->if_hwassist.load(), uk::CSUM_IP | uk::CSUM_IP_TCP | uk::CSUM_IP_UDP | uk::CSUM_IP_TSO);
  EXPECT_EQ(ifp->if_capenable.load(), uk::IFCAP_TXCSUM | uk::IFCAP_TSO4);
  // lo0 still answers to the stack's own ifconfig words.
  EXPECT_EQ(uk_ifconfig(a.k, "lo0", "mtu 16000"), 0);
  // Destroy takes the interface out of the stack.
  ASSERT_EQ(uk_ifconfig(a.k, "nic_sim0", "destroy"), 0);
  EXPECT_EQ(uk::ifunit(k, "nic_sim0"), nullptr);
  EXPECT_EQ(k.net->rt->lookup(in_addr{inet_addr("10.0.5.9")}, &nh), EHOSTUNREACH);
  EXPECT_EQ(uk_halt(a.k), 0);
}

TEST(NicSimTcp, ThreeKernelsThroughAGateway) {
  Node a = boot("a", 2, ""), g = boot("gw", 2, ""), b = boot("b", 2, "");
  ASSERT_EQ(uk_ifconfig(a.k, "nic_sim0", "create inet 10.0.1.1/24"), 0);
  ASSERT_EQ(uk_ifconfig(g.k, "nic_sim0", "create inet 10.0.1.254/24"), 0);
  ASSERT_EQ(uk_ifconfig(g.k, "nic_sim1", "create inet 10.0.2.254/24"), 0);
  ASSERT_EQ(uk_ifconfig(b.k, "nic_sim0", "create inet 10.0.2.1/24"), 0);
  ASSERT_EQ(uk_wire(a.k, "nic_sim0", g.k, "nic_sim0", "bw=1g delay=100us"), 0);
  ASSERT_EQ(uk_wire(g.k, "nic_sim1", b.k, "nic_sim0", "bw=1g delay=100us"), 0);
  route(a, "10.0.2.0", 24, "10.0.1.254");
  route(b, "10.0.1.0", 24, "10.0.2.254");
  int one = 1;
  ASSERT_EQ(uk_sysctlbyname(g.p, "net.inet.ip.forwarding", nullptr, nullptr, &one, sizeof one), 0);
  Transfer t = transfer(a, b, "10.0.2.1", 6001, 1 << 20);
  EXPECT_TRUE(t.ok) << t.got << " bytes, " << t.got_hash << " vs " << t.sent_hash;
  EXPECT_GT(g.stat("net.inet.ip.stats.forward"), 700u);
  EXPECT_EQ(a.stat("net.inet.ip.stats.forward"), 0u);
  EXPECT_EQ(uk_halt(a.k), 0);
  EXPECT_EQ(uk_halt(g.k), 0);
  EXPECT_EQ(uk_halt(b.k), 0);
}

// The hard wire: loss 1%, reordering 1%, duplication 0.1%, 1 ms delay.
void lossy(const char* bw) {
  std::string params = std::string("bw=") + bw +
                       " delay=1ms loss=0.01 reorder=0.01 dup=0.001 seed=7";
  Two t(params.c_str());
  size_t n = transfer_size();
  Transfer r = transfer(t.a, t.b, "10.0.0.2", 7001, n);
  EXPECT_TRUE(r.ok) << bw << ": " << r.got << "/" << n << " bytes";
  uk::WireDirStats ab = t.wire()->stats(0), ba = t.wire()->stats(1);
  uint64_t rexmit = t.a.stat("net.inet.tcp.stats.sndrexmitpack");
  uint64_t timeouts = t.a.stat("net.inet.tcp.stats.rexmttimeo");
  uint64_t dupb = t.b.stat("net.inet.tcp.stats.rcvduppack");
  uint64_t oo = t.b.stat("net.inet.tcp.stats.rcvoopack");
  // What the wire did, TCP had to answer for.
  EXPECT_GT(ab.drops_loss, 0u);
  EXPECT_GE(rexmit, 1u) << "lost data segments must be retransmitted";
  // Nearly everything a->b is data: each lost data segment is sent again
  // (the few pure ACKs of the handshake need not be).
  EXPECT_GE(rexmit + 3, ab.drops_loss);
  EXPECT_GT(t.a.stat("net.inet.tcp.stats.sndrexmitbyte"), 0u);
  EXPECT_GT(oo + dupb, 0u);
  printf("%s: %zu bytes in %.2f s (%.1f Mb/s); wire a->b frames %llu lost %llu "
         "reordered %llu dup %llu; b->a lost %llu; tcp rexmit %llu (timeouts %llu), "
         "rcv out-of-order %llu, dup %llu\n",
         bw, n, r.seconds, n * 8 / r.seconds / 1e6,
         (unsigned long long)ab.tx_frames, (unsigned long long)ab.drops_loss,
         (unsigned long long)ab.reorders, (unsigned long long)ab.dups,
         (unsigned long long)ba.drops_loss, (unsigned long long)rexmit,
         (unsigned long long)timeouts, (unsigned long long)oo,
         (unsigned long long)dupb);
}

TEST(NicSimTcp, LossyWire100m) { lossy("100m"); }
TEST(NicSimTcp, LossyWire1g) { lossy("1g"); }
TEST(NicSimTcp, LossyWire10g) { lossy("10g"); }

TEST(NicSimTcp, ChecksumOffloadCarriesATransfer) {
  Two t("bw=10g delay=20us", "txcsum rxcsum");
  Transfer r = transfer(t.a, t.b, "10.0.0.2", 7101, 2 << 20);
  EXPECT_TRUE(r.ok);
  EXPECT_GT(t.a.stat("dev.nic_sim.0.tx_csum"), 100u);
  EXPECT_GT(t.b.stat("dev.nic_sim.0.rx_csum_ok"), 100u);
  EXPECT_EQ(t.b.stat("dev.nic_sim.0.rx_csum_bad"), 0u);
  EXPECT_EQ(t.b.stat("net.inet.tcp.stats.rcvbadsum"), 0u);
}

TEST(NicSimTcp, CaptureOfTransferDecodesAsTcp) {
  Two t("bw=1g delay=50us");
  std::string path = std::string(getenv("TEST_TMPDIR") ? getenv("TEST_TMPDIR") : "/tmp") +
                     "/tcp.pcap";
  auto nic = uk::nic_sim_find(t.a.kern(), "nic_sim0");
  ASSERT_EQ(nic->bpf().start(path, {}), 0);
  Transfer r = transfer(t.a, t.b, "10.0.0.2", 7201, 200000);
  EXPECT_TRUE(r.ok);
  nic->quiesce(5'000'000'000);
  ASSERT_EQ(nic->bpf().stop(), 0);
  std::string out = uk::test::tshark(
      "-r " + path + " -o tcp.check_checksum:TRUE -Y tcp -T fields -E separator=,"
      " -e ip.src -e tcp.dstport -e tcp.checksum.status -e tcp.len");
  auto lines = uk::test::lines(out);
  ASSERT_GT(lines.size(), 100u) << out.substr(0, 500);
  size_t payload = 0, bad = 0;
  for (const auto& l : lines) {
    std::vector<std::string> f;
    size_t i = 0;
    while (i <= l.size()) {
      size_t j = l.find(',', i);
      if (j == std::string::npos) j = l.size();
      f.push_back(l.substr(i, j - i));
      i = j + 1;
    }
    ASSERT_EQ(f.size(), 4u) << l;
    if (f[2] != "1") bad++;  // Wireshark: 1 = good
    if (f[0] == "10.0.0.1" && f[1] == "7201") payload += strtoul(f[3].c_str(), nullptr, 10);
  }
  EXPECT_EQ(bad, 0u) << "every captured TCP checksum verifies";
  EXPECT_EQ(payload, 200000u) << "the capture holds every byte sent";
  std::string syns = uk::test::tshark("-r " + path + " -Y 'tcp.flags.syn==1' -T fields -e tcp.srcport");
  EXPECT_EQ(uk::test::lines(syns).size(), 2u) << syns;
}

void clean_throughput(const char* caps) {
  Two t("bw=10g delay=20us", caps);
  size_t n = 64u << 20;
  Transfer r = transfer(t.a, t.b, "10.0.0.2", 7301, n);
  EXPECT_TRUE(r.ok);
  double bps = n * 8 / r.seconds;
  printf("clean 10g wire [%s]: %zu bytes in %.3f s = %.2f Gb/s, %.1f%% of the "
         "configured bandwidth; LRO merged %llu segments\n",
         caps, n, r.seconds, bps / 1e9, bps / 1e10 * 100,
         (unsigned long long)t.b.stat("dev.nic_sim.0.lro_queued"));
}

TEST(NicSimTcp, CleanTenGigThroughput) { clean_throughput(""); }
TEST(NicSimTcp, CleanTenGigThroughputWithOffloads) {
  clean_throughput("txcsum rxcsum tso lro");
}

// TCP hands an interface with TSO on packets of several segments, which the
// NIC cuts to the MSS; the bytes arrive intact, also over a lossy wire
// (retransmissions of TSO packets), and net.inet.tcp.tso=0 or -tso stops it.
TEST(NicSimTcp, TcpSendsTsoPacketsWhenTheNicDoesTso) {
  for (const char* wire : {"bw=10g delay=20us", "bw=1g delay=100us loss=0.01 seed=3"}) {
    Two t(wire, "txcsum rxcsum tso");
    Transfer r = transfer(t.a, t.b, "10.0.0.2", 7401, 4u << 20);
    EXPECT_TRUE(r.ok) << wire;
    uint64_t pkts = t.a.stat("dev.nic_sim.0.tso_packets");
    uint64_t segs = t.a.stat("dev.nic_sim.0.tso_segments");
    EXPECT_GT(pkts, 0u) << wire;
    EXPECT_GT(segs, 2 * pkts) << wire;
    // Every frame on the wire fits the MTU: b saw no giant.
    EXPECT_EQ(t.b.stat("dev.nic_sim.0.ierrors"), 0u) << wire;

    t.a.set_int("net.inet.tcp.tso", 0);
    r = transfer(t.a, t.b, "10.0.0.2", 7402, 1u << 20);
    EXPECT_TRUE(r.ok) << wire;
    EXPECT_EQ(t.a.stat("dev.nic_sim.0.tso_packets"), pkts) << wire;

    t.a.set_int("net.inet.tcp.tso", 1);
    ASSERT_EQ(uk_ifconfig(t.a.k, "nic_sim0", "-tso"), 0);
    r = transfer(t.a, t.b, "10.0.0.2", 7403, 1u << 20);
    EXPECT_TRUE(r.ok) << wire;
    EXPECT_EQ(t.a.stat("dev.nic_sim.0.tso_packets"), pkts) << wire;
  }
}

// ifconfig -tso while a connection sends TSO packets: the next one is
// refused by ip_output, the connection drops TSO and the data still arrives.
TEST(NicSimTcp, TsoTurnedOffMidTransferLosesNoData) {
  Two t("bw=1g delay=50us", "txcsum rxcsum tso");
  std::thread off([&] {
    for (int i = 0; i < 5000 && t.a.stat("dev.nic_sim.0.tso_packets") == 0; i++)
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    EXPECT_EQ(uk_ifconfig(t.a.k, "nic_sim0", "-tso"), 0);
  });
  Transfer r = transfer(t.a, t.b, "10.0.0.2", 7404, 16u << 20);
  off.join();
  EXPECT_TRUE(r.ok);
  EXPECT_GT(t.a.stat("dev.nic_sim.0.tso_packets"), 0u);
}

}  // namespace
