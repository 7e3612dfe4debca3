// Interface capabilities with FreeBSD's bit numbers (net/if.h): the word
// if_capabilities/if_capenable and the second word if_capabilities2/
// if_capenable2 (IFCAP2_*). A driver reports what it can do in
// `capabilities` and what is switched on in `capenable`; ifconfig(8) toggles
// bits of capenable within capabilities.
#ifndef UKTLS_SYS_NET_IF_CAP_H_
#define UKTLS_SYS_NET_IF_CAP_H_

#include <cstdint>
#include <string>

namespace uk {

enum : uint32_t {
  IFCAP_RXCSUM = 0x00000001,
  IFCAP_TXCSUM = 0x00000002,
  IFCAP_NETCONS = 0x00000004,
  IFCAP_VLAN_MTU = 0x00000008,
  IFCAP_VLAN_HWTAGGING = 0x00000010,
  IFCAP_JUMBO_MTU = 0x00000020,
  IFCAP_POLLING = 0x00000040,
  IFCAP_VLAN_HWCSUM = 0x00000080,
  IFCAP_TSO4 = 0x00000100,
  IFCAP_TSO6 = 0x00000200,
  IFCAP_LRO = 0x00000400,
  IFCAP_WOL_UCAST = 0x00000800,
  IFCAP_WOL_MCAST = 0x00001000,
  IFCAP_WOL_MAGIC = 0x00002000,
  IFCAP_TOE4 = 0x00004000,
  IFCAP_TOE6 = 0x00008000,
  IFCAP_VLAN_HWFILTER = 0x00010000,
  IFCAP_NV = 0x00020000,
  IFCAP_VLAN_HWTSO = 0x00040000,
  IFCAP_LINKSTATE = 0x00080000,
  IFCAP_NETMAP = 0x00100000,
  IFCAP_RXCSUM_IPV6 = 0x00200000,
  IFCAP_TXCSUM_IPV6 = 0x00400000,
  IFCAP_HWSTATS = 0x00800000,
  IFCAP_TXRTLMT = 0x01000000,
  IFCAP_HWRXTSTMP = 0x02000000,
  IFCAP_MEXTPG = 0x04000000,
  IFCAP_TXTLS4 = 0x08000000,
  IFCAP_TXTLS6 = 0x10000000,
  IFCAP_VXLAN_HWCSUM = 0x20000000,
  IFCAP_VXLAN_HWTSO = 0x40000000,
  IFCAP_TXTLS_RTLMT = 0x80000000,

  IFCAP_HWCSUM = IFCAP_RXCSUM | IFCAP_TXCSUM,
  IFCAP_HWCSUM_IPV6 = IFCAP_RXCSUM_IPV6 | IFCAP_TXCSUM_IPV6,
  IFCAP_TSO = IFCAP_TSO4 | IFCAP_TSO6,
  IFCAP_TOE = IFCAP_TOE4 | IFCAP_TOE6,
  IFCAP_TXTLS = IFCAP_TXTLS4 | IFCAP_TXTLS6,
};

// The second word (bit numbers; the mask of bit b is IFCAP2_BIT(b)).
enum : uint32_t {
  IFCAP2_RXTLS4 = 0,
  IFCAP2_RXTLS6 = 1,
};
constexpr uint32_t IFCAP2_BIT(uint32_t b) { return 1u << b; }
constexpr uint32_t IFCAP2_RXTLS =
    IFCAP2_BIT(IFCAP2_RXTLS4) | IFCAP2_BIT(IFCAP2_RXTLS6);

// FreeBSD's printb() form as ifconfig(8) prints it:
//   "options=8000500<TSO4,LRO,MEXTPG,RXTLS4>" — the first word in hex, then
// the names of every set bit of both words in bit order. `label` is
// "options" (capenable) or "capabilities".
std::string ifcap_format(const char* label, uint32_t cap, uint32_t cap2);
// Name of one bit of the first/second word, or null.
const char* ifcap_name(int bit);
const char* ifcap2_name(int bit);

}  // namespace uk

#endif  // UKTLS_SYS_NET_IF_CAP_H_
