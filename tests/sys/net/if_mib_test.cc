// The interface MIB (net.link.generic, sys/net/if_mib.cc): ifcount and the
// per-interface struct ifmibdata read with uk_sysctlbyname, created at
// attach and gone (ENOENT) after destroy; and the counters behind them,
// checked against known traffic: lo0 in and out, two kernels over a wire
// (what one end sends the other receives, frame for frame and byte for
// byte, LRO or not), tail drops of a short wire queue, a down interface,
// and a frame with a bad checksum.
#include <arpa/inet.h>
#include <netinet/in.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "lib/libuk/uk.h"
#include "sys/dev/nic_sim/nic_sim.h"
#include "sys/kern/kern_proc.h"
#include "sys/kern/kernel.h"
#include "sys/net/if_mib.h"
#include "sys/net/if_var.h"
#include "tests/sys/dev/nic_sim/lab.h"
#include "tests/sys/net/frames.h"

namespace {

using uk::lab::Node;

int ifcount(Node& n) {
  int v = -1;
  size_t len = sizeof v;
  EXPECT_EQ(uk_sysctlbyname(n.p, "net.link.generic.system.ifcount", &v, &len, nullptr, 0), 0);
  EXPECT_EQ(len, sizeof v);
  return v;
}

std::string ifdata_oid(int index) {
  return "net.link.generic.ifdata." + std::to_string(index) + ".general";
}

// Reads one interface's ifmibdata; the errno on failure.
int ifdata(Node& n, int index, uk::ifmibdata* md) {
  size_t len = sizeof *md;
  if (uk_sysctlbyname(n.p, ifdata_oid(index).c_str(), md, &len, nullptr, 0) != 0) return errno;
  EXPECT_EQ(len, sizeof *md);
  return 0;
}

uk::if_data stats(Node& n, const char* ifname) {
  uk::RefPtr<uk::ifnet> ifp = uk::ifunit(n.kern(), ifname);
  uk::ifmibdata md{};
  EXPECT_NE(ifp, nullptr) << ifname;
  if (ifp) {
    EXPECT_EQ(ifdata(n, ifp->if_index, &md), 0) << ifname;
  }
  EXPECT_STREQ(md.ifmd_name, ifname);
  return md.ifmd_data;
}

// Sends `bytes` from client to server over TCP and reads them all.
void tcp_transfer(Node& client, Node& server, const char* ip, uint16_t port, size_t bytes) {
  uk::lab::Conn x = uk::lab::connect_pair(client, server, ip, port);
  std::vector<uint8_t> data = uk::lab::pattern(bytes, port);
  std::thread tx([&] {
    size_t off = 0;
    while (off < data.size()) {
      ssize_t n = uk_send(client.p, x.c, data.data() + off, data.size() - off, 0);
      if (n <= 0) break;
      off += static_cast<size_t>(n);
    }
    uk_shutdown(client.p, x.c, SHUT_WR);
  });
  std::vector<uint8_t> got, buf(64 * 1024);
  for (;;) {
    ssize_t n = uk_recv(server.p, x.s, buf.data(), buf.size(), 0);
    if (n <= 0) break;
    got.insert(got.end(), buf.begin(), buf.begin() + n);
  }
  tx.join();
  EXPECT_EQ(uk::lab::sha256(got), uk::lab::sha256(data));
  uk::lab::close_conn(client, server, x);
}

// Waits until no frame has moved for longer than TCP's delayed-ACK timer
// (both NICs idle, nothing on the wire), so the counters are final.
void settle(uk::lab::Pair& p) {
  auto snapshot = [&] {
    p.a.nic()->quiesce(5'000'000'000);
    p.wire()->drain(5'000'000'000);
    p.b.nic()->quiesce(5'000'000'000);
    return std::vector<uint64_t>{p.a.stat("dev.nic_sim.0.opackets"),
                                 p.a.stat("dev.nic_sim.0.ipackets"),
                                 p.b.stat("dev.nic_sim.0.opackets"),
                                 p.b.stat("dev.nic_sim.0.ipackets")};
  };
  std::vector<uint64_t> last = snapshot();
  for (int i = 0; i < 40; i++) {
    std::this_thread::sleep_for(std::chrono::milliseconds(250));
    std::vector<uint64_t> now = snapshot();
    if (now == last) return;
    last = now;
  }
  ADD_FAILURE() << "the NICs never went quiet";
}

TEST(IfMib, LoopbackIsIndexOneAndCountsWhatItCarries) {
  Node n = uk::lab::boot("lo", 2, "");
  EXPECT_EQ(ifcount(n), 1);
  uk::ifmibdata md{};
  ASSERT_EQ(ifdata(n, 1, &md), 0);
  EXPECT_STREQ(md.ifmd_name, "lo0");
  EXPECT_EQ(md.ifmd_flags & (uk::IFF_UP | uk::IFF_LOOPBACK), uk::IFF_UP | uk::IFF_LOOPBACK);
  EXPECT_EQ(md.ifmd_data.ifi_type, uk::IFT_LOOP);
  EXPECT_EQ(md.ifmd_data.ifi_datalen, sizeof(uk::if_data));
  EXPECT_EQ(md.ifmd_data.ifi_mtu, 16384u);
  EXPECT_EQ(md.ifmd_data.ifi_link_state, uk::LINK_STATE_UP);
  EXPECT_NE(md.ifmd_data.__ifi_lastchange.tv.tv_sec, 0);
  EXPECT_EQ(ifdata(n, 2, &md), ENOENT);
  EXPECT_EQ(ifdata(n, 0, &md), ENOENT);

  // A buffer too small gets ENOMEM, and a null one learns the size.
  size_t len = 0;
  EXPECT_EQ(uk_sysctlbyname(n.p, ifdata_oid(1).c_str(), nullptr, &len, nullptr, 0), 0);
  EXPECT_EQ(len, sizeof(uk::ifmibdata));
  char small[8];
  len = sizeof small;
  EXPECT_EQ(uk_sysctlbyname(n.p, ifdata_oid(1).c_str(), small, &len, nullptr, 0), -1);
  EXPECT_EQ(errno, ENOMEM);
  int v = 1;
  EXPECT_EQ(uk_sysctlbyname(n.p, ifdata_oid(1).c_str(), nullptr, nullptr, &v, sizeof v), -1);
  EXPECT_EQ(errno, EPERM);

  uk::if_data before = stats(n, "lo0");
  const uint64_t ip_before = n.stat("net.inet.ip.stats.localout");
  tcp_transfer(n, n, "127.0.0.1", 7000, 1 << 20);
  // A late ACK may still go out: read lo0 between two equal readings of
  // the IP output counter.
  uk::if_data after;
  uint64_t ip_after;
  do {
    ip_after = n.stat("net.inet.ip.stats.localout");
    after = stats(n, "lo0");
  } while (n.stat("net.inet.ip.stats.localout") != ip_after);
  const uint64_t sent = after.ifi_opackets - before.ifi_opackets;
  // Every IP packet this kernel sent went out and came back in on lo0.
  EXPECT_EQ(sent, ip_after - ip_before);
  EXPECT_GT(sent, (1u << 20) / 16384);
  EXPECT_EQ(after.ifi_ipackets - before.ifi_ipackets, sent);
  EXPECT_EQ(after.ifi_ibytes - before.ifi_ibytes, after.ifi_obytes - before.ifi_obytes);
  EXPECT_GT(after.ifi_obytes - before.ifi_obytes, 1u << 20);
  EXPECT_EQ(after.ifi_ierrors + after.ifi_oerrors + after.ifi_iqdrops + after.ifi_oqdrops, 0u);

  // Down: a packet routed to lo0 is an output error.
  ASSERT_EQ(uk_ifconfig(n.k, "lo0", "down"), 0);
  uk::kernel& k = n.kern();
  uk::mbuf* m = uk::m_gethdr(k, uk::M_NOWAIT, uk::MT_DATA);
  ASSERT_NE(m, nullptr);
  m->m_len = m->m_pkthdr.len = 20;
  sockaddr_in dst = uk::lab::addr("127.0.0.1", 0);
  EXPECT_EQ(k.net->lo0->if_output(m, &dst), ENETDOWN);
  EXPECT_EQ(stats(n, "lo0").ifi_oerrors, 1u);
  EXPECT_EQ(uk_halt(n.k), 0);
}

TEST(IfMib, OidsFollowInterfacesAndIndexesAreReused) {
  Node n = uk::lab::boot("k", 2, "");
  ASSERT_EQ(uk_ifconfig(n.k, "nic_sim0", "create inet 10.0.0.1/24"), 0);
  ASSERT_EQ(uk_ifconfig(n.k, "nic_sim1", "create"), 0);
  EXPECT_EQ(ifcount(n), 3);
  uk::ifmibdata md{};
  ASSERT_EQ(ifdata(n, 2, &md), 0);
  EXPECT_STREQ(md.ifmd_name, "nic_sim0");
  EXPECT_EQ(md.ifmd_data.ifi_type, uk::IFT_ETHER);
  EXPECT_EQ(md.ifmd_data.ifi_addrlen, 6);
  EXPECT_EQ(md.ifmd_data.ifi_hdrlen, 14);
  EXPECT_EQ(md.ifmd_data.ifi_mtu, 1500u);
  EXPECT_EQ(md.ifmd_data.ifi_link_state, uk::LINK_STATE_DOWN) << "no wire, no carrier";
  EXPECT_EQ(md.ifmd_data.ifi_baudrate, 0u);
  EXPECT_EQ(md.ifmd_snd_maxlen, uk::NIC_SIM_TX_RING);
  EXPECT_EQ(md.ifmd_flags & uk::IFF_UP, uk::IFF_UP);
  ASSERT_EQ(ifdata(n, 3, &md), 0);
  EXPECT_STREQ(md.ifmd_name, "nic_sim1");
  EXPECT_EQ(md.ifmd_flags & uk::IFF_UP, 0);

  // ifconfig changes show at once.
  ASSERT_EQ(uk_ifconfig(n.k, "nic_sim0", "mtu 9000 txcsum"), 0);
  ASSERT_EQ(ifdata(n, 2, &md), 0);
  EXPECT_EQ(md.ifmd_data.ifi_mtu, 9000u);
  EXPECT_NE(md.ifmd_data.ifi_hwassist & uk::CSUM_IP, 0u);

  // Destroy: the oid goes (ENOENT); ifcount is the largest index in use.
  ASSERT_EQ(uk_ifconfig(n.k, "nic_sim0", "destroy"), 0);
  EXPECT_EQ(ifdata(n, 2, &md), ENOENT);
  EXPECT_EQ(ifcount(n), 3);
  ASSERT_EQ(uk_ifconfig(n.k, "nic_sim1", "destroy"), 0);
  EXPECT_EQ(ifdata(n, 3, &md), ENOENT);
  EXPECT_EQ(ifcount(n), 1);
  // A new interface takes the lowest free index, with fresh counters.
  ASSERT_EQ(uk_ifconfig(n.k, "nic_sim7", "create"), 0);
  EXPECT_EQ(ifcount(n), 2);
  ASSERT_EQ(ifdata(n, 2, &md), 0);
  EXPECT_STREQ(md.ifmd_name, "nic_sim7");
  EXPECT_EQ(md.ifmd_data.ifi_opackets, 0u);
  EXPECT_EQ(uk_halt(n.k), 0);
}

// What one end sends the other receives, frame for frame: the wire is
// clean, so a's output counters are b's input counters and the other way
// round (ARP included), and they agree with dev.nic_sim.0.*.
void clean_wire(const char* caps) {
  uk::lab::Pair p("bw=1g delay=20us", {.a_opts = caps, .b_opts = caps, .modules = ""});
  EXPECT_EQ(ifcount(p.a), 2);
  tcp_transfer(p.a, p.b, "10.0.0.2", 7100, 2 << 20);
  settle(p);
  uk::if_data a = stats(p.a, "nic_sim0"), b = stats(p.b, "nic_sim0");
  EXPECT_GT(a.ifi_opackets, (2u << 20) / 1460);
  EXPECT_EQ(a.ifi_opackets, b.ifi_ipackets);
  EXPECT_EQ(a.ifi_obytes, b.ifi_ibytes);
  EXPECT_EQ(b.ifi_opackets, a.ifi_ipackets);
  EXPECT_EQ(b.ifi_obytes, a.ifi_ibytes);
  // Bytes are frames on the wire: at least the payload plus every header.
  EXPECT_GE(a.ifi_obytes, (2u << 20) + a.ifi_opackets * (14 + 20 + 20));
  // The ARP request is the one broadcast.
  EXPECT_EQ(a.ifi_omcasts, 1u);
  EXPECT_EQ(b.ifi_imcasts, 1u);
  for (const uk::if_data* d : {&a, &b}) {
    EXPECT_EQ(d->ifi_ierrors + d->ifi_oerrors + d->ifi_iqdrops + d->ifi_oqdrops, 0u);
  }
  EXPECT_EQ(a.ifi_opackets, p.a.stat("dev.nic_sim.0.opackets"));
  EXPECT_EQ(b.ifi_ipackets, p.b.stat("dev.nic_sim.0.ipackets"));
  EXPECT_EQ(a.ifi_link_state, uk::LINK_STATE_UP);
  EXPECT_EQ(a.ifi_baudrate, 1000000000u);
  if (std::string(caps).find("lro") != std::string::npos) {
    // LRO merges after counting: the stack saw fewer, larger packets.
    EXPECT_GT(p.b.stat("dev.nic_sim.0.lro_queued"), 0u);
  }
}

TEST(IfMib, TwoKernelsAgreeOnAWire) { clean_wire(""); }
TEST(IfMib, TwoKernelsAgreeWithLro) { clean_wire("txcsum rxcsum lro"); }

TEST(IfMib, WireTailDropsAreOutputDrops) {
  // A slow wire with a four-frame queue: TCP's bursts overflow it.
  uk::lab::Pair p("bw=20m delay=100us qlen=4", {.modules = ""});
  tcp_transfer(p.a, p.b, "10.0.0.2", 7200, 512 << 10);
  settle(p);
  uk::WireDirStats ab = p.wire()->stats(0), ba = p.wire()->stats(1);
  uk::if_data a = stats(p.a, "nic_sim0"), b = stats(p.b, "nic_sim0");
  EXPECT_GT(ab.drops_queue, 0u);
  EXPECT_EQ(a.ifi_oqdrops, ab.drops_queue);
  EXPECT_EQ(b.ifi_oqdrops, ba.drops_queue);
  // A dropped frame never left: sent is what the far end received.
  EXPECT_EQ(a.ifi_opackets, b.ifi_ipackets);
  EXPECT_EQ(a.ifi_obytes, b.ifi_ibytes);
  EXPECT_EQ(b.ifi_opackets, a.ifi_ipackets);
  uk::ifmibdata md{};
  ASSERT_EQ(ifdata(p.a, 2, &md), 0);
  EXPECT_EQ(static_cast<uint64_t>(md.ifmd_snd_drops), ab.drops_queue);
}

TEST(IfMib, DownInterfaceAndBadChecksumsAreCounted) {
  uk::lab::Pair p("bw=1g", {.modules = ""});
  tcp_transfer(p.a, p.b, "10.0.0.2", 7300, 64 << 10);
  settle(p);
  std::shared_ptr<uk::NicSim> nb = p.b.nic();
  uk::test::TcpSpec spec;
  spec.src_mac = p.a.nic()->mac();
  spec.dst_mac = nb->mac();
  spec.dport = 7399;
  const uint8_t payload[100] = {1, 2, 3};
  std::vector<uint8_t> good = uk::test::tcp_frame(spec, payload, sizeof payload);
  std::vector<uint8_t> bad = good;
  bad.back() ^= 0xff;  // the TCP checksum no longer matches

  uk::if_data b0 = stats(p.b, "nic_sim0");
  const uint64_t badsum0 = p.b.stat("net.inet.tcp.stats.rcvbadsum");
  nb->rx_dma(bad.data(), bad.size(), 0);
  EXPECT_TRUE(nb->quiesce(5'000'000'000));
  uk::if_data b1 = stats(p.b, "nic_sim0");
  EXPECT_EQ(b1.ifi_ierrors - b0.ifi_ierrors, 1u);
  EXPECT_EQ(b1.ifi_ipackets - b0.ifi_ipackets, 1u);

  // Received while down: an input drop, not a packet.
  ASSERT_EQ(uk_ifconfig(p.b.k, "nic_sim0", "down"), 0);
  nb->rx_dma(good.data(), good.size(), 0);
  uk::if_data b2 = stats(p.b, "nic_sim0");
  EXPECT_EQ(b2.ifi_iqdrops - b1.ifi_iqdrops, 1u);
  EXPECT_EQ(b2.ifi_ipackets, b1.ifi_ipackets);
  EXPECT_EQ(b2.ifi_link_state, uk::LINK_STATE_UP) << "the cable is still in";
  EXPECT_EQ(b2.ifi_oerrors, 0u);
  // Sent while down: an output error.
  uk::kernel& k = p.b.kern();
  uk::RefPtr<uk::ifnet> ifp = uk::ifunit(k, "nic_sim0");
  uk::mbuf* m = uk::m_gethdr(k, uk::M_NOWAIT, uk::MT_DATA);
  ASSERT_NE(m, nullptr);
  m->m_len = m->m_pkthdr.len = 40;
  sockaddr_in dst = uk::lab::addr("10.0.0.1", 0);
  EXPECT_EQ(ifp->if_output(m, &dst), ENETDOWN);
  EXPECT_EQ(stats(p.b, "nic_sim0").ifi_oerrors, 1u);
  // The stack refused the corrupt segment (netisr runs it soon after).
  for (int i = 0; i < 500 && p.b.stat("net.inet.tcp.stats.rcvbadsum") == badsum0; i++)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  EXPECT_EQ(p.b.stat("net.inet.tcp.stats.rcvbadsum") - badsum0, 1u);
}

}  // namespace
