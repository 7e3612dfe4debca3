// Ethernet II encapsulation. See if_ethersubr.h.
#include "sys/net/if_ethersubr.h"

#include <arpa/inet.h>

#include <cerrno>
#include <cstdio>

#include "sys/sys/mbuf.h"

namespace uk {

ether_addr ether_gen_addr(uint64_t kernel_id, std::string_view ifname) {
  // FNV-1a over the name: stable across runs and compilers (std::hash is not).
  uint32_t h = 2166136261u;
  for (char c : ifname) {
    h ^= static_cast<uint8_t>(c);
    h *= 16777619u;
  }
  ether_addr a;
  a.octet[0] = 0x02;  // locally administered, unicast
  a.octet[1] = 0x75;  // 'u'
  a.octet[2] = 0x6b;  // 'k'
  a.octet[3] = static_cast<uint8_t>(kernel_id >> 8);
  a.octet[4] = static_cast<uint8_t>(kernel_id);
  a.octet[5] = static_cast<uint8_t>(h ^ (h >> 8) ^ (h >> 16) ^ (h >> 24));
  return a;
}

std::string ether_sprintf(const ether_addr& a) {
  char buf[18];
  snprintf(buf, sizeof buf, "%02x:%02x:%02x:%02x:%02x:%02x", a.octet[0],
           a.octet[1], a.octet[2], a.octet[3], a.octet[4], a.octet[5]);
  return buf;
}

int ether_aton(std::string_view s, ether_addr* out) {
  ether_addr a;
  size_t i = 0;
  for (int o = 0; o < ETHER_ADDR_LEN; o++) {
    int v = 0, digits = 0;
    while (i < s.size() && digits < 2) {
      char c = s[i];
      int d;
      if (c >= '0' && c <= '9') d = c - '0';
      else if (c >= 'a' && c <= 'f') d = c - 'a' + 10;
      else if (c >= 'A' && c <= 'F') d = c - 'A' + 10;
      else break;
      v = v * 16 + d;
      digits++;
      i++;
    }
    if (digits == 0) return EINVAL;
    a.octet[o] = static_cast<uint8_t>(v);
    if (o < ETHER_ADDR_LEN - 1) {
      if (i >= s.size() || s[i] != ':') return EINVAL;
      i++;
    }
  }
  if (i != s.size()) return EINVAL;
  *out = a;
  return 0;
}

mbuf* ether_encap(mbuf* m, const ether_addr& dst, const ether_addr& src,
                  uint16_t type) {
  m = m_prepend(m, ETHER_HDR_LEN, M_NOWAIT);
  if (m == nullptr) return nullptr;
  ether_header eh;
  memcpy(eh.ether_dhost, dst.octet, ETHER_ADDR_LEN);
  memcpy(eh.ether_shost, src.octet, ETHER_ADDR_LEN);
  eh.ether_type = htons(type);
  memcpy(mtod(m), &eh, sizeof eh);
  return m;
}

int ether_decap(mbuf* m, ether_header* eh) {
  if (m == nullptr || m_length(m, nullptr) < ETHER_HDR_LEN) return EINVAL;
  m_copydata(m, 0, ETHER_HDR_LEN, eh);
  m_adj(m, ETHER_HDR_LEN);
  return 0;
}

int ether_parse(const uint8_t* frame, size_t len, ether_header* eh) {
  if (len < static_cast<size_t>(ETHER_HDR_LEN)) return EINVAL;
  memcpy(eh, frame, ETHER_HDR_LEN);
  return 0;
}

}  // namespace uk
