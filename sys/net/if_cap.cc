// Capability names and printb-style formatting. See if_cap.h.
#include "sys/net/if_cap.h"

#include <cstdio>

namespace uk {

namespace {

// ifconfig(8)'s IFCAPBITS names, by bit.
const char* const kCapNames[32] = {
    "RXCSUM",      "TXCSUM",     "NETCONS",      "VLAN_MTU",
    "VLAN_HWTAGGING", "JUMBO_MTU", "POLLING",    "VLAN_HWCSUM",
    "TSO4",        "TSO6",       "LRO",          "WOL_UCAST",
    "WOL_MCAST",   "WOL_MAGIC",  "TOE4",         "TOE6",
    "VLAN_HWFILTER", "NV",       "VLAN_HWTSO",   "LINKSTATE",
    "NETMAP",      "RXCSUM_IPV6", "TXCSUM_IPV6", "HWSTATS",
    "TXRTLMT",     "HWRXTSTMP",  "MEXTPG",       "TXTLS4",
    "TXTLS6",      "VXLAN_HWCSUM", "VXLAN_HWTSO", "TXTLS_RTLMT",
};
const char* const kCap2Names[] = {"RXTLS4", "RXTLS6"};

}  // namespace

const char* ifcap_name(int bit) {
  return bit >= 0 && bit < 32 ? kCapNames[bit] : nullptr;
}

const char* ifcap2_name(int bit) {
  return bit >= 0 && bit < 2 ? kCap2Names[bit] : nullptr;
}

std::string ifcap_format(const char* label, uint32_t cap, uint32_t cap2) {
  char hex[16];
  snprintf(hex, sizeof hex, "%x", cap);
  std::string s = std::string(label) + "=" + hex + "<";
  bool first = true;
  for (int b = 0; b < 32; b++) {
    if (!(cap & (1u << b))) continue;
    if (!first) s += ",";
    s += kCapNames[b];
    first = false;
  }
  for (int b = 0; b < 2; b++) {
    if (!(cap2 & (1u << b))) continue;
    if (!first) s += ",";
    s += kCap2Names[b];
    first = false;
  }
  return s + ">";
}

}  // namespace uk
