// Ethernet II framing constants and headers, as FreeBSD's net/ethernet.h.
#ifndef UKTLS_SYS_NET_ETHERNET_H_
#define UKTLS_SYS_NET_ETHERNET_H_

#include <cstdint>
#include <cstring>

namespace uk {

constexpr int ETHER_ADDR_LEN = 6;
constexpr int ETHER_TYPE_LEN = 2;
constexpr int ETHER_CRC_LEN = 4;
constexpr int ETHER_HDR_LEN = ETHER_ADDR_LEN * 2 + ETHER_TYPE_LEN;  // 14
constexpr int ETHER_MIN_LEN = 64;    // with CRC
constexpr int ETHER_MAX_LEN = 1518;  // with CRC
constexpr int ETHERMTU = ETHER_MAX_LEN - ETHER_HDR_LEN - ETHER_CRC_LEN;  // 1500
constexpr int ETHERMIN = ETHER_MIN_LEN - ETHER_HDR_LEN - ETHER_CRC_LEN;  // 46
// Jumbo frames: the largest MTU nic_sim accepts.
constexpr int ETHERMTU_JUMBO = 9000;

constexpr uint16_t ETHERTYPE_IP = 0x0800;
constexpr uint16_t ETHERTYPE_ARP = 0x0806;
constexpr uint16_t ETHERTYPE_VLAN = 0x8100;
constexpr uint16_t ETHERTYPE_IPV6 = 0x86dd;

struct ether_addr {
  uint8_t octet[ETHER_ADDR_LEN] = {};
  bool operator==(const ether_addr& o) const {
    return memcmp(octet, o.octet, ETHER_ADDR_LEN) == 0;
  }
};

// On the wire: destination, source, type (network byte order).
struct __attribute__((packed)) ether_header {
  uint8_t ether_dhost[ETHER_ADDR_LEN];
  uint8_t ether_shost[ETHER_ADDR_LEN];
  uint16_t ether_type;
};
static_assert(sizeof(ether_header) == ETHER_HDR_LEN);

inline bool ETHER_IS_MULTICAST(const uint8_t* a) { return (a[0] & 1) != 0; }
inline bool ETHER_IS_BROADCAST(const uint8_t* a) {
  return (a[0] & a[1] & a[2] & a[3] & a[4] & a[5]) == 0xff;
}

constexpr ether_addr kEtherBroadcast = {{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}};

}  // namespace uk

#endif  // UKTLS_SYS_NET_ETHERNET_H_
