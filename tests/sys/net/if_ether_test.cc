// Ethernet II encapsulation and ARP resolution.
#include <arpa/inet.h>

#include <cerrno>
#include <cstring>

#include "gtest/gtest.h"
#include "lib/libuk/uk.h"
#include "sys/kern/kernel.h"
#include "sys/net/if_ethersubr.h"
#include "sys/netinet/if_ether.h"
#include "sys/sys/mbuf.h"

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

TEST(Ether, AddressesAreDeterministicAndDistinct) {
  ether_addr a = ether_gen_addr(1, "nic_sim0");
  EXPECT_EQ(a, ether_gen_addr(1, "nic_sim0"));
  EXPECT_FALSE(a == ether_gen_addr(2, "nic_sim0"));
  EXPECT_FALSE(a == ether_gen_addr(1, "nic_sim1"));
  EXPECT_EQ(a.octet[0] & 1, 0) << "unicast";
  EXPECT_EQ(a.octet[0] & 2, 2) << "locally administered";
  std::string s = ether_sprintf(a);
  EXPECT_EQ(s.substr(0, 9), "02:75:6b:");
  ether_addr b;
  ASSERT_EQ(ether_aton(s, &b), 0);
  EXPECT_EQ(a, b);
  EXPECT_EQ(ether_aton("1:2:3:4:5:6", &b), 0);
  EXPECT_EQ(b.octet[5], 6);
  EXPECT_EQ(ether_aton("01:02:03:04:05", &b), EINVAL);
  EXPECT_EQ(ether_aton("01:02:03:04:05:06:07", &b), EINVAL);
  EXPECT_EQ(ether_aton("0g:02:03:04:05:06", &b), EINVAL);
  EXPECT_TRUE(ETHER_IS_BROADCAST(kEtherBroadcast.octet));
  EXPECT_FALSE(ETHER_IS_BROADCAST(a.octet));
}

TEST(Ether, EncapDecapRoundTrip) {
  auto k = Boot();
  mbuf* m = m_gethdr(*k, M_NOWAIT, MT_DATA);
  ASSERT_NE(m, nullptr);
  const char payload[] = "0123456789abcdefghij";
  ASSERT_EQ(m_copyback(m, 0, sizeof payload, payload), 0);
  m->m_pkthdr.len = sizeof payload;
  ether_addr src = ether_gen_addr(k->id, "nic_sim0");
  m = ether_encap(m, kEtherBroadcast, src, ETHERTYPE_IP);
  ASSERT_NE(m, nullptr);
  EXPECT_EQ(m->m_pkthdr.len, static_cast<int>(sizeof payload) + ETHER_HDR_LEN);
  uint8_t flat[64];
  m_copydata(m, 0, m->m_pkthdr.len, flat);
  EXPECT_EQ(memcmp(flat, kEtherBroadcast.octet, 6), 0);
  EXPECT_EQ(memcmp(flat + 6, src.octet, 6), 0);
  EXPECT_EQ(flat[12], 0x08);
  EXPECT_EQ(flat[13], 0x00);
  ether_header eh;
  ASSERT_EQ(ether_parse(flat, m->m_pkthdr.len, &eh), 0);
  EXPECT_EQ(ntohs(eh.ether_type), ETHERTYPE_IP);
  ASSERT_EQ(ether_decap(m, &eh), 0);
  EXPECT_EQ(m->m_pkthdr.len, static_cast<int>(sizeof payload));
  char back[sizeof payload];
  m_copydata(m, 0, sizeof payload, back);
  EXPECT_EQ(memcmp(back, payload, sizeof payload), 0);
  m_freem(m);
  EXPECT_EQ(ether_parse(flat, 13, &eh), EINVAL);
}

TEST(Arp, PacketRoundTripAndValidation) {
  arp_packet a;
  a.op = ARPOP_REQUEST;
  a.sha = ether_gen_addr(3, "nic_sim0");
  a.spa = ip("10.0.0.1");
  a.tpa = ip("10.0.0.2");
  ether_arp ea;
  arp_build(a, &ea);
  const uint8_t* p = reinterpret_cast<const uint8_t*>(&ea);
  EXPECT_EQ(p[0], 0);
  EXPECT_EQ(p[1], 1);  // Ethernet
  EXPECT_EQ(p[2], 0x08);
  EXPECT_EQ(p[7], 1);  // request
  arp_packet b;
  ASSERT_EQ(arp_parse(p, sizeof ea, &b), 0);
  EXPECT_EQ(b.op, ARPOP_REQUEST);
  EXPECT_EQ(b.sha, a.sha);
  EXPECT_EQ(b.spa, a.spa);
  EXPECT_EQ(b.tpa, a.tpa);
  EXPECT_EQ(arp_parse(p, sizeof ea - 1, &b), EINVAL);
  ea.ar_op = htons(9);
  EXPECT_EQ(arp_parse(p, sizeof ea, &b), EINVAL);
}

MbufPtr Pkt(kernel& k, uint8_t tag) {
  mbuf* m = m_gethdr(k, M_NOWAIT, MT_DATA);
  m_copyback(m, 0, 1, &tag);
  m->m_pkthdr.len = 1;
  return MbufPtr(m);
}

// resolve() takes the packet through a pointer; tests hand it a temporary.
struct P {
  explicit P(MbufPtr m) : m(std::move(m)) {}
  operator MbufPtr*() { return &m; }
  MbufPtr m;
};

TEST(Arp, ResolveHoldsThenReleasesOnReply) {
  auto k = Boot();
  ArpTable t;
  ether_addr mac;
  bool req = false;
  const uint64_t t0 = 1'000'000'000;
  EXPECT_EQ(t.resolve(ip("10.0.0.2"), P(Pkt(*k, 1)), t0, &mac, &req), ArpTable::kHeld);
  EXPECT_TRUE(req);
  // A second packet within a second waits without a second request.
  EXPECT_EQ(t.resolve(ip("10.0.0.2"), P(Pkt(*k, 2)), t0 + 1000, &mac, &req), ArpTable::kHeld);
  EXPECT_FALSE(req);
  EXPECT_EQ(t.stats.txrequests.fetch(), 1u);

  arp_packet reply;
  reply.op = ARPOP_REPLY;
  reply.sha = ether_gen_addr(2, "nic_sim0");
  reply.spa = ip("10.0.0.2");
  reply.tha = ether_gen_addr(1, "nic_sim0");
  reply.tpa = ip("10.0.0.1");
  bool send_reply = true;
  ether_addr rel;
  auto held = t.input(reply, ip("10.0.0.1"), t0 + 2000, &send_reply, &rel);
  EXPECT_FALSE(send_reply);
  ASSERT_EQ(held.size(), 2u);
  EXPECT_EQ(mtod<uint8_t*>(held[0].get())[0], 1);
  EXPECT_EQ(mtod<uint8_t*>(held[1].get())[0], 2);
  EXPECT_EQ(rel, reply.sha);
  EXPECT_EQ(t.resolve(ip("10.0.0.2"), P(Pkt(*k, 3)), t0 + 3000, &mac, &req),
            ArpTable::kResolved);
  EXPECT_EQ(mac, reply.sha);
  // Entries expire after max_age and are asked for again.
  EXPECT_EQ(t.resolve(ip("10.0.0.2"), P(Pkt(*k, 4)), t0 + 1201ull * 1000000000, &mac, &req),
            ArpTable::kHeld);
  EXPECT_TRUE(req);
}

TEST(Arp, RequestForUsIsAnsweredAndLearned) {
  ArpTable t;
  arp_packet rq;
  rq.op = ARPOP_REQUEST;
  rq.sha = ether_gen_addr(2, "nic_sim0");
  rq.spa = ip("10.0.0.2");
  rq.tpa = ip("10.0.0.1");
  bool reply = false;
  ether_addr rel;
  t.input(rq, ip("10.0.0.1"), 5, &reply, &rel);
  EXPECT_TRUE(reply);
  auto e = t.entries();
  ASSERT_EQ(e.size(), 1u);
  EXPECT_TRUE(e[0].resolved);
  EXPECT_EQ(e[0].mac, rq.sha);
  // Not for us: no reply and nothing learned about strangers.
  rq.spa = ip("10.0.0.3");
  rq.tpa = ip("10.0.0.4");
  t.input(rq, ip("10.0.0.1"), 6, &reply, &rel);
  EXPECT_FALSE(reply);
  EXPECT_EQ(t.entries().size(), 1u);
  // Someone claiming our address.
  rq.spa = ip("10.0.0.1");
  t.input(rq, ip("10.0.0.1"), 7, &reply, &rel);
  EXPECT_EQ(t.stats.dupips.fetch(), 1u);
  EXPECT_EQ(t.stats.txreplies.fetch(), 1u);
}

TEST(Arp, UnansweredGoesDownAndDropsHeld) {
  auto k = Boot();
  ArpTable::Config c;
  c.maxhold = 3;
  ArpTable t(c);
  ether_addr mac;
  bool req;
  uint64_t now = 1;
  int requests = 0;
  for (int i = 0; i < 5; i++) {
    EXPECT_EQ(t.resolve(ip("10.0.0.9"), P(Pkt(*k, i)), now, &mac, &req), ArpTable::kHeld);
    requests += req;
    now += 1'100'000'000;  // > 1 s: each try sends a request
  }
  EXPECT_EQ(requests, 5);
  EXPECT_EQ(t.stats.dropped.fetch(), 2u);  // maxhold 3 of 5
  EXPECT_EQ(t.resolve(ip("10.0.0.9"), P(Pkt(*k, 9)), now, &mac, &req), ArpTable::kDown);
  EXPECT_EQ(t.stats.timeouts.fetch(), 1u);
  EXPECT_EQ(t.resolve(ip("10.0.0.9"), P(Pkt(*k, 9)), now + 1000, &mac, &req), ArpTable::kDown);
  // After the down time, it tries again.
  EXPECT_EQ(t.resolve(ip("10.0.0.9"), P(Pkt(*k, 9)), now + 21'000'000'000ull, &mac, &req),
            ArpTable::kHeld);
  EXPECT_TRUE(req);
}

TEST(Arp, StaticEntriesWinAndNeverExpire) {
  auto k = Boot();
  ArpTable t;
  ether_addr fixed = ether_gen_addr(7, "nic_sim3");
  t.add_static(ip("10.0.0.5"), fixed);
  ether_addr mac;
  bool req;
  EXPECT_EQ(t.resolve(ip("10.0.0.5"), P(Pkt(*k, 0)), 1ull << 62, &mac, &req),
            ArpTable::kResolved);
  EXPECT_EQ(mac, fixed);
  arp_packet rq;
  rq.op = ARPOP_REPLY;
  rq.sha = ether_gen_addr(8, "nic_sim0");
  rq.spa = ip("10.0.0.5");
  rq.tpa = ip("10.0.0.1");
  bool reply;
  ether_addr rel;
  t.input(rq, ip("10.0.0.1"), 10, &reply, &rel);
  ASSERT_EQ(t.entries().size(), 1u);
  EXPECT_EQ(t.entries()[0].mac, fixed);
  EXPECT_EQ(t.remove(ip("10.0.0.5")), 0);
  EXPECT_EQ(t.remove(ip("10.0.0.5")), ENOENT);
}

}  // namespace
}  // namespace uk
