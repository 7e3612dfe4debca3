// The ifconfig(8) argument language, parsed into one request that the
// interface code then applies (uk_ifconfig). Pure: no interface is touched
// here, so every word and error can be unit-tested.
//
// Accepted words (FreeBSD ifconfig's, subset):
//   create | destroy | up | down | mtu N
//   inet A[/len] [netmask M] [alias] | -alias / delete (remove the address)
//   capabilities, each with a "-" form: txcsum rxcsum txcsum6 rxcsum6
//   tso tso4 tso6 lro txtls txtlsrtlmt txrtlmt rxtls toe mextpg
// Unknown words, missing or bad values -> EINVAL with a message naming the
// word ("ifconfig: unknown word \"tlx\"").
#ifndef UKTLS_SYS_NET_IF_IFCONFIG_H_
#define UKTLS_SYS_NET_IF_IFCONFIG_H_

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace uk {

struct ifconfig_req {
  bool create = false;
  bool destroy = false;
  std::optional<bool> up;  // up / down
  std::optional<int> mtu;
  // inet: address and netmask, network byte order.
  std::optional<uint32_t> inet_addr;
  uint32_t inet_mask = 0;
  int inet_prefixlen = -1;
  bool inet_alias = false;
  bool inet_delete = false;
  // Capability bits to switch on / off (first and second word).
  uint32_t cap_on = 0, cap_off = 0;
  uint32_t cap2_on = 0, cap2_off = 0;

  // True when nothing but display was asked (an empty argument string).
  bool empty() const;
};

// Parses args into *req. 0, or EINVAL with a readable message in *err.
int ifconfig_parse(std::string_view args, ifconfig_req* req, std::string* err);

// Validates an interface name of the form <driver><unit> ("nic_sim0").
// Returns 0 and fills driver/unit, or EINVAL.
int ifname_parse(std::string_view name, std::string* driver, int* unit);

// IPv4 helpers: dotted quad (network order) and prefix <-> netmask.
int inet_parse(std::string_view s, uint32_t* addr_be);
std::string inet_format(uint32_t addr_be);
uint32_t inet_prefix_mask(int prefixlen);  // network order
int inet_mask_prefix(uint32_t mask_be);    // -1 if not contiguous

}  // namespace uk

#endif  // UKTLS_SYS_NET_IF_IFCONFIG_H_
