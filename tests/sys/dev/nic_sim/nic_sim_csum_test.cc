// The simulated NIC's checksum engine against RFC 1071's definition (the
// ones' complement sum of big-endian 16-bit words), over lengths, odd
// offsets and running sums; and a frame it fills verifies.
#include "sys/dev/nic_sim/nic_sim_csum.h"

#include <cstdint>
#include <random>
#include <vector>

#include "gtest/gtest.h"

namespace uk {
namespace {

// RFC 1071, word by word.
uint32_t Reference(uint32_t sum, const uint8_t* p, size_t len) {
  uint64_t s = sum;
  size_t i = 0;
  for (; i + 1 < len; i += 2) s += static_cast<uint32_t>(p[i] << 8 | p[i + 1]);
  if (i < len) s += static_cast<uint32_t>(p[i] << 8);
  while (s >> 32) s = (s & 0xffffffff) + (s >> 32);
  return static_cast<uint32_t>(s);
}

TEST(NicSimCsum, SumMatchesRfc1071ForEveryLengthAndOffset) {
  std::mt19937_64 rng(7);
  std::vector<uint8_t> buf(2048 + 16);
  for (auto& b : buf) b = static_cast<uint8_t>(rng());
  for (size_t off = 0; off < 9; off++) {
    for (size_t len = 0; len <= 1600; len++) {
      uint32_t start = static_cast<uint32_t>(rng());
      ASSERT_EQ(nic_cksum_fold(nic_cksum_add(start, buf.data() + off, len)),
                nic_cksum_fold(Reference(start, buf.data() + off, len)))
          << "off " << off << " len " << len;
    }
  }
}

TEST(NicSimCsum, AllOnesAndZerosKeepTheirDistinction) {
  // 0xffff words: a ones' complement sum of non-zero data never folds to 0.
  std::vector<uint8_t> ff(1500, 0xff), zero(1500, 0);
  EXPECT_EQ(nic_cksum_fold(nic_cksum_add(0, ff.data(), ff.size())),
            nic_cksum_fold(Reference(0, ff.data(), ff.size())));
  EXPECT_EQ(nic_cksum_fold(nic_cksum_add(0, zero.data(), zero.size())), 0xffff);
}

TEST(NicSimCsum, FilledFramesVerify) {
  // Ethernet II + IPv4 + TCP with a payload of odd length.
  std::mt19937_64 rng(11);
  for (int payload : {0, 1, 7, 1459, 1460}) {
    std::vector<uint8_t> f(14 + 20 + 20 + payload);
    for (auto& b : f) b = static_cast<uint8_t>(rng());
    f[12] = 0x08;
    f[13] = 0x00;
    uint8_t* ip = f.data() + 14;
    ip[0] = 0x45;
    int ip_len = 40 + payload;
    ip[2] = static_cast<uint8_t>(ip_len >> 8);
    ip[3] = static_cast<uint8_t>(ip_len);
    ip[6] = ip[7] = 0;  // not a fragment
    ip[9] = 6;          // TCP
    ip[20 + 12] = 0x50;  // TCP data offset 5
    nic_pkt_info pi;
    ASSERT_TRUE(nic_pkt_parse(f.data(), f.size(), &pi)) << payload;
    nic_ip_cksum_fill(f.data(), pi);
    nic_l4_cksum_fill(f.data(), pi);
    EXPECT_TRUE(nic_ip_cksum_ok(f.data(), pi)) << payload;
    EXPECT_TRUE(nic_l4_cksum_ok(f.data(), pi)) << payload;
    f[f.size() - 1] ^= 0x01;
    EXPECT_FALSE(nic_l4_cksum_ok(f.data(), pi)) << payload;
  }
}

// A TCP frame of the given payload with valid checksums.
std::vector<uint8_t> TcpFrame(const std::vector<uint8_t>& payload, std::mt19937_64& rng) {
  std::vector<uint8_t> f(14 + 20 + 20);
  for (auto& b : f) b = static_cast<uint8_t>(rng());
  f.insert(f.end(), payload.begin(), payload.end());
  f[12] = 0x08;
  f[13] = 0x00;
  uint8_t* ip = f.data() + 14;
  ip[0] = 0x45;
  int ip_len = 40 + static_cast<int>(payload.size());
  ip[2] = static_cast<uint8_t>(ip_len >> 8);
  ip[3] = static_cast<uint8_t>(ip_len);
  ip[6] = ip[7] = 0;
  ip[9] = 6;
  ip[20 + 12] = 0x50;
  nic_pkt_info pi;
  EXPECT_TRUE(nic_pkt_parse(f.data(), f.size(), &pi));
  nic_ip_cksum_fill(f.data(), pi);
  nic_l4_cksum_fill(f.data(), pi);
  return f;
}

// LRO's arithmetic: the payload sums nic_tcp_cksum_ok returns, combined in
// order (byte-swapped after an odd count of bytes), give the merged
// packet's checksum without reading its payload: it equals the one
// computed over the whole, for even and odd segment sizes.
TEST(NicSimCsum, MergedPayloadSumsGiveTheWholePacketsChecksum) {
  std::mt19937_64 rng(13);
  for (int seg : {1, 2, 7, 1447, 1448}) {
    std::vector<uint8_t> merged;
    uint64_t sum = 0;
    size_t plen = 0;
    std::vector<uint8_t> first;
    for (int i = 0; i < 5; i++) {
      std::vector<uint8_t> payload(seg + i);  // lengths of both parities
      for (auto& b : payload) b = static_cast<uint8_t>(rng());
      std::vector<uint8_t> f = TcpFrame(payload, rng);
      nic_pkt_info pi;
      ASSERT_TRUE(nic_pkt_parse(f.data(), f.size(), &pi));
      uint32_t ps = 0;
      ASSERT_TRUE(nic_tcp_cksum_ok(f.data(), pi, &ps)) << seg;
      EXPECT_EQ(nic_cksum_fold(ps), nic_cksum_fold(nic_cksum_add(0, payload.data(), payload.size())));
      sum += (plen & 1) ? nic_cksum_at_odd(ps) : ps;
      plen += payload.size();
      merged.insert(merged.end(), payload.begin(), payload.end());
      if (i == 0) first = f;
      f[f.size() - 1] ^= 0x40;
      EXPECT_FALSE(nic_tcp_cksum_ok(f.data(), pi, &ps)) << seg;
    }
    while (sum >> 32) sum = (sum & 0xffffffff) + (sum >> 32);
    // The first frame's headers with the merged length: the reference
    // checksum over the real bytes, and the one from the sums.
    std::vector<uint8_t> whole(first.begin(), first.begin() + 54);
    whole.insert(whole.end(), merged.begin(), merged.end());
    int ip_len = 40 + static_cast<int>(merged.size());
    whole[16] = static_cast<uint8_t>(ip_len >> 8);
    whole[17] = static_cast<uint8_t>(ip_len);
    nic_pkt_info wpi;
    ASSERT_TRUE(nic_pkt_parse(whole.data(), whole.size(), &wpi));
    nic_l4_cksum_fill(whole.data(), wpi);
    std::vector<uint8_t> hdr(whole.begin(), whole.begin() + 54);
    nic_tcp_cksum_fill_sum(hdr.data(), wpi, static_cast<uint32_t>(sum));
    EXPECT_EQ(hdr[14 + 20 + 16], whole[14 + 20 + 16]) << seg;
    EXPECT_EQ(hdr[14 + 20 + 17], whole[14 + 20 + 17]) << seg;
  }
}

}  // namespace
}  // namespace uk
