// Mutation fuzzing of the NIC-side parsers that read untrusted input:
// ifconfig and wire parameter strings, ARP bodies, Ethernet addresses and
// received frames (the checksum engine's header parser). Seeded, so a
// failure reproduces; under --config=asan every out-of-bounds read shows.
#include <cerrno>
#include <random>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "sys/dev/nic_sim/nic_sim_csum.h"
#include "sys/dev/nic_sim/wire.h"
#include "sys/net/if_ethersubr.h"
#include "sys/net/if_ifconfig.h"
#include "sys/netinet/if_ether.h"
#include "tests/sys/net/frames.h"

namespace uk {
namespace {

std::string mutate(std::mt19937_64& rng, std::string s) {
  static const char alphabet[] = " =-/.,0123456789abcdefgkmtusBKMxinetmtuplrwqz%\t";
  int n = 1 + rng() % 4;
  for (int i = 0; i < n; i++) {
    size_t pos = s.empty() ? 0 : rng() % (s.size() + 1);
    switch (rng() % 4) {
      case 0:
        s.insert(pos, 1, alphabet[rng() % (sizeof alphabet - 1)]);
        break;
      case 1:
        if (!s.empty() && pos < s.size()) s.erase(pos, 1 + rng() % 3);
        break;
      case 2:
        if (!s.empty() && pos < s.size()) s[pos] = static_cast<char>(rng());
        break;
      default:
        s.insert(pos, s.substr(0, rng() % (s.size() + 1)));
        break;
    }
  }
  return s;
}

TEST(ParserFuzz, IfconfigAndWireStrings) {
  std::mt19937_64 rng(20261122);
  const char* seeds[] = {
      "create", "inet 10.0.0.1/24 up", "inet 192.168.1.7 netmask 0xfffffff0 alias",
      "mtu 9000 txcsum -rxcsum tso lro txtls txtlsrtlmt rxtls toe -toe",
      "bw=10g delay=20us loss=0.001 reorder=0.001 dup=0 qlen=64KB seed=1 overhead=24",
  };
  int ok = 0, einval = 0;
  for (int i = 0; i < 40000; i++) {
    std::string s = mutate(rng, seeds[rng() % 5]);
    ifconfig_req r;
    std::string err;
    int e = ifconfig_parse(s, &r, &err);
    ASSERT_TRUE(e == 0 || e == EINVAL) << s;
    if (e) {
      EXPECT_EQ(err.rfind("ifconfig: ", 0), 0u) << s;
    }
    WireParams p;
    int w = wire_params_parse(s, &p, &err);
    ASSERT_TRUE(w == 0 || w == EINVAL) << s;
    if (w == 0) {
      // Whatever parses formats to a string that parses to the same thing.
      WireParams q;
      ASSERT_EQ(wire_params_parse(wire_params_format(p), &q, &err), 0) << s;
      EXPECT_EQ(q.bw_bps, p.bw_bps) << s;
      EXPECT_EQ(q.qlen_frames, p.qlen_frames) << s;
      EXPECT_EQ(q.seed, p.seed) << s;
    }
    (e == 0 ? ok : einval)++;
    ether_addr a;
    int x = ether_aton(s, &a);
    ASSERT_TRUE(x == 0 || x == EINVAL);
    std::string d;
    int u;
    ifname_parse(s, &d, &u);
  }
  EXPECT_GT(ok, 100);
  EXPECT_GT(einval, 100);
}

TEST(ParserFuzz, FramesAndArpBodies) {
  std::mt19937_64 rng(7);
  test::TcpSpec spec;
  std::vector<uint8_t> payload(300, 'f');
  std::vector<uint8_t> good = test::tcp_frame(spec, payload.data(), payload.size());
  for (int i = 0; i < 40000; i++) {
    std::vector<uint8_t> f;
    if (rng() % 4 == 0) {
      f.resize(rng() % 200);
      for (auto& b : f) b = static_cast<uint8_t>(rng());
    } else {
      f = good;
      int flips = 1 + rng() % 6;
      for (int j = 0; j < flips; j++) f[rng() % 60] = static_cast<uint8_t>(rng());
      f.resize(rng() % (f.size() + 1));
    }
    nic_pkt_info pi;
    if (nic_pkt_parse(f.data(), f.size(), &pi)) {
      // Everything the parser accepted lies inside the frame.
      ASSERT_LE(static_cast<size_t>(pi.l3off + pi.ip_len), f.size());
      ASSERT_LE(pi.l4off + pi.tcp_hlen, pi.l3off + pi.ip_len);
      nic_ip_cksum_ok(f.data(), pi);
      nic_l4_cksum_ok(f.data(), pi);
      nic_ip_cksum_fill(f.data(), pi);
      nic_l4_cksum_fill(f.data(), pi);
      ASSERT_TRUE(nic_ip_cksum_ok(f.data(), pi));
      ASSERT_TRUE(nic_l4_cksum_ok(f.data(), pi));
    }
    arp_packet a;
    int e = arp_parse(f.data(), f.size(), &a);
    ASSERT_TRUE(e == 0 || e == EINVAL);
  }
}

}  // namespace
}  // namespace uk
