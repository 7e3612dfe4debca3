// The IPv4 header (FreeBSD's netinet/ip.h), fields in network byte order.
// uktls's own definition so no host header decides the layout.
#ifndef UKTLS_SYS_NETINET_IP_H_
#define UKTLS_SYS_NETINET_IP_H_

#include <netinet/in.h>

#include <cstdint>

namespace uk {

struct ip {
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
  uint8_t ip_hl : 4, ip_v : 4;
#else
  uint8_t ip_v : 4, ip_hl : 4;
#endif
  uint8_t ip_tos;
  uint16_t ip_len;
  uint16_t ip_id;
  uint16_t ip_off;
  uint8_t ip_ttl;
  uint8_t ip_p;
  uint16_t ip_sum;
  in_addr ip_src;
  in_addr ip_dst;
} __attribute__((packed));
static_assert(sizeof(ip) == 20, "struct ip");

constexpr int IPVERSION = 4;
constexpr uint16_t IP_RF = 0x8000;
constexpr uint16_t IP_DF = 0x4000;
constexpr uint16_t IP_MF = 0x2000;
constexpr uint16_t IP_OFFMASK = 0x1fff;
constexpr int IP_MAXPACKET = 65535;
constexpr int IPDEFTTL = 64;

// Internet checksum over a buffer, folded (in_cksum of FreeBSD's
// netinet/in_cksum.c). Returns the ones' complement of the sum, i.e. the
// value to store; over data that includes a correct checksum it is 0.
uint16_t in_cksum_buf(const void* p, int len);
// Partial (unfolded, not complemented) sum of len bytes, for combining.
uint32_t in_cksum_partial(uint32_t sum, const void* p, int len, bool odd_start);
uint16_t in_cksum_fold(uint32_t sum);
// The TCP/UDP pseudo-header sum of src, dst and a 16-bit value (protocol +
// length, network order), folded but not complemented: FreeBSD's
// in_pseudo().
uint16_t in_pseudo(uint32_t src, uint32_t dst, uint32_t a);
struct mbuf;
// Checksum of len bytes of an mbuf chain starting at off, unmapped (M_EXTPG)
// data included; not complemented (FreeBSD's in_cksum_skip before ~).
uint32_t in_cksum_mbuf(const mbuf* m, int off, int len);

}  // namespace uk

#endif  // UKTLS_SYS_NETINET_IP_H_
