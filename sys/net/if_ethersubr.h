// Ethernet II encapsulation and addresses, as FreeBSD's net/if_ethersubr.c:
// building and stripping the 14-byte header on mbuf chains and byte frames,
// printing and parsing addresses, and generating each interface's address.
#ifndef UKTLS_SYS_NET_IF_ETHERSUBR_H_
#define UKTLS_SYS_NET_IF_ETHERSUBR_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "sys/net/ethernet.h"

namespace uk {

struct mbuf;

// The address of interface `ifname` of kernel `kernel_id`. Deterministic, so
// an experiment's captures look the same on every run, and unique among the
// kernels of one process: locally administered unicast 02:75:6b:KK:KK:HH
// ("uk"), KK = the kernel id, HH = a hash of the interface name. (FreeBSD's
// ether_gen_addr() hashes the host UUID under its own OUI instead.)
ether_addr ether_gen_addr(uint64_t kernel_id, std::string_view ifname);

// "58:9c:fc:00:00:01", as ether_ntoa(3).
std::string ether_sprintf(const ether_addr& a);
// Parses "xx:xx:xx:xx:xx:xx" (hex, 1-2 digits per octet). EINVAL if bad.
int ether_aton(std::string_view s, ether_addr* out);

// Prepends an Ethernet header to a packet (as ether_output's M_PREPEND).
// Consumes m; returns the new head, or null (m freed) on ENOMEM.
mbuf* ether_encap(mbuf* m, const ether_addr& dst, const ether_addr& src,
                  uint16_t type);
// Reads the header of a frame and strips it from the chain (ether_input's
// m_adj). Returns 0, or EINVAL for a runt (the chain is left alone).
int ether_decap(mbuf* m, ether_header* eh);
// The same on a flat frame: fills *eh; 0 or EINVAL when shorter than a header.
int ether_parse(const uint8_t* frame, size_t len, ether_header* eh);

}  // namespace uk

#endif  // UKTLS_SYS_NET_IF_ETHERSUBR_H_
