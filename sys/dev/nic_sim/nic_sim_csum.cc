// Internet checksums for the simulated NIC. See nic_sim_csum.h.
#include "sys/dev/nic_sim/nic_sim_csum.h"

#include <netinet/in.h>

#include <cstring>

#include "sys/net/ethernet.h"

namespace uk {

namespace {

uint16_t rd16(const uint8_t* p) { return static_cast<uint16_t>(p[0] << 8 | p[1]); }
void wr16(uint8_t* p, uint16_t v) {
  p[0] = static_cast<uint8_t>(v >> 8);
  p[1] = static_cast<uint8_t>(v);
}

uint32_t pseudo_sum(const uint8_t* frame, const nic_pkt_info& pi) {
  const uint8_t* ip = frame + pi.l3off;
  uint32_t s = nic_cksum_add(0, ip + 12, 8);  // source and destination
  s += static_cast<uint32_t>(pi.proto);
  s += static_cast<uint32_t>(pi.l4len);
  return s;
}

int csum_off(const nic_pkt_info& pi) {
  return pi.proto == IPPROTO_TCP ? 16 : pi.proto == IPPROTO_UDP ? 6 : -1;
}

}  // namespace

uint32_t nic_cksum_add(uint32_t sum, const uint8_t* p, size_t len) {
  // Eight bytes at a time in host order: 2^16 = 1 in ones' complement
  // arithmetic, so 32-bit halves add up to the same folded sum, and on a
  // little-endian host the folded sum of host-order words is the byte swap
  // of the big-endian (network) one (RFC 1071, "byte order independence").
  uint64_t s = 0;
  size_t i = 0;
  for (; i + 8 <= len; i += 8) {
    uint64_t w;
    memcpy(&w, p + i, 8);
    s += (w & 0xffffffff) + (w >> 32);
  }
  for (; i + 2 <= len; i += 2) {
    uint16_t w;
    memcpy(&w, p + i, 2);
    s += w;
  }
  if (i < len) {
    uint16_t w = 0;
    memcpy(&w, p + i, 1);  // a lone last byte is the high byte of its word
    s += w;
  }
  while (s >> 16) s = (s & 0xffff) + (s >> 16);
  if constexpr (__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__)
    s = ((s & 0xff) << 8) | (s >> 8);
  uint64_t t = static_cast<uint64_t>(sum) + s;
  while (t >> 32) t = (t & 0xffffffff) + (t >> 32);
  return static_cast<uint32_t>(t);
}

uint16_t nic_cksum_fold(uint32_t sum) {
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return static_cast<uint16_t>(~sum);
}

bool nic_pkt_parse(const uint8_t* f, size_t len, nic_pkt_info* pi) {
  if (len < static_cast<size_t>(ETHER_HDR_LEN) + 20) return false;
  if (rd16(f + 12) != ETHERTYPE_IP) return false;
  const uint8_t* ip = f + ETHER_HDR_LEN;
  if ((ip[0] >> 4) != 4) return false;
  int hl = (ip[0] & 0xf) * 4;
  int ip_len = rd16(ip + 2);
  if (hl < 20 || ip_len < hl || ETHER_HDR_LEN + static_cast<size_t>(ip_len) > len)
    return false;
  pi->l3off = ETHER_HDR_LEN;
  pi->ip_hlen = hl;
  pi->ip_len = ip_len;
  pi->proto = ip[9];
  pi->l4off = ETHER_HDR_LEN + hl;
  pi->l4len = ip_len - hl;
  pi->fragment = (rd16(ip + 6) & 0x3fff) != 0;  // MF or offset
  pi->tcp_hlen = 0;
  if (pi->proto == IPPROTO_TCP && !pi->fragment) {
    if (pi->l4len < 20) return false;
    int th = (f[pi->l4off + 12] >> 4) * 4;
    if (th < 20 || th > pi->l4len) return false;
    pi->tcp_hlen = th;
  } else if (pi->proto == IPPROTO_UDP && !pi->fragment) {
    if (pi->l4len < 8) return false;
  }
  return true;
}

void nic_ip_cksum_fill(uint8_t* f, const nic_pkt_info& pi) {
  uint8_t* ip = f + pi.l3off;
  wr16(ip + 10, 0);
  wr16(ip + 10, nic_cksum_fold(nic_cksum_add(0, ip, pi.ip_hlen)));
}

bool nic_ip_cksum_ok(const uint8_t* f, const nic_pkt_info& pi) {
  return nic_cksum_fold(nic_cksum_add(0, f + pi.l3off, pi.ip_hlen)) == 0;
}

void nic_l4_cksum_fill(uint8_t* f, const nic_pkt_info& pi) {
  int off = csum_off(pi);
  if (off < 0 || pi.fragment) return;
  uint8_t* l4 = f + pi.l4off;
  wr16(l4 + off, 0);
  uint16_t c = nic_cksum_fold(nic_cksum_add(pseudo_sum(f, pi), l4, pi.l4len));
  if (pi.proto == IPPROTO_UDP && c == 0) c = 0xffff;  // RFC 768
  wr16(l4 + off, c);
}

bool nic_l4_cksum_ok(const uint8_t* f, const nic_pkt_info& pi) {
  int off = csum_off(pi);
  if (off < 0 || pi.fragment) return true;
  const uint8_t* l4 = f + pi.l4off;
  if (pi.proto == IPPROTO_UDP && rd16(l4 + off) == 0) return true;  // none
  return nic_cksum_fold(nic_cksum_add(pseudo_sum(f, pi), l4, pi.l4len)) == 0;
}

bool nic_tcp_cksum_ok(const uint8_t* f, const nic_pkt_info& pi, uint32_t* payload_sum) {
  const uint8_t* l4 = f + pi.l4off;
  *payload_sum = nic_cksum_add(0, l4 + pi.tcp_hlen, pi.l4len - pi.tcp_hlen);
  uint32_t s = nic_cksum_add(pseudo_sum(f, pi), l4, pi.tcp_hlen);
  uint64_t t = static_cast<uint64_t>(s) + *payload_sum;
  while (t >> 32) t = (t & 0xffffffff) + (t >> 32);
  return nic_cksum_fold(static_cast<uint32_t>(t)) == 0;
}

uint32_t nic_cksum_at_odd(uint32_t sum) {
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return ((sum & 0xff) << 8) | (sum >> 8);
}

void nic_tcp_cksum_fill_sum(uint8_t* f, const nic_pkt_info& pi, uint32_t payload_sum) {
  uint8_t* l4 = f + pi.l4off;
  wr16(l4 + 16, 0);
  uint64_t t = static_cast<uint64_t>(nic_cksum_add(pseudo_sum(f, pi), l4, pi.tcp_hlen)) +
               payload_sum;
  while (t >> 32) t = (t & 0xffffffff) + (t >> 32);
  wr16(l4 + 16, nic_cksum_fold(static_cast<uint32_t>(t)));
}

}  // namespace uk
