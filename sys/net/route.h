// IPv4 routing table with longest-prefix match. Mirrors the parts of
// FreeBSD's sys/net/route.c and fib lookups (fib4_lookup) that a host needs:
// prefix routes added with interface addresses, gateways, and one lookup
// per connection (in_pcbconnect) or packet (ip_output without a cached
// route).
//
// Locking: RouteTable::mu_ is a leaf lock.
#ifndef UKTLS_SYS_NET_ROUTE_H_
#define UKTLS_SYS_NET_ROUTE_H_

#include <netinet/in.h>

#include <cstdint>
#include <map>
#include <vector>

#include "sys/net/if_var.h"
#include "sys/sys/lock.h"

namespace uk {

struct rtentry {
  in_addr rt_dst;      // network (host byte order applied by the table)
  int rt_plen;
  in_addr rt_gateway;  // INADDR_ANY: directly connected
  RefPtr<ifnet> rt_ifp;
  int rt_flags = 0;
};

// rt_flags.
enum : int { RTF_UP = 0x1, RTF_GATEWAY = 0x2, RTF_HOST = 0x4 };

// The result of a lookup: interface and next hop.
struct nhop4 {
  RefPtr<ifnet> ifp;
  sockaddr_in gw;  // where to send: the gateway or the destination
  int mtu = 0;
};

class RouteTable final {
 public:
  // EEXIST if the same prefix is present.
  int add(in_addr dst, int plen, in_addr gw, RefPtr<ifnet> ifp)
      ABSL_LOCKS_EXCLUDED(mu_);
  int del(in_addr dst, int plen) ABSL_LOCKS_EXCLUDED(mu_);
  // Longest-prefix match; EHOSTUNREACH (FreeBSD's fib lookup failure in
  // ip_output) if nothing matches, ENETDOWN if the interface is down.
  int lookup(in_addr dst, nhop4* out) ABSL_LOCKS_EXCLUDED(mu_);
  void clear() ABSL_LOCKS_EXCLUDED(mu_);
  std::vector<rtentry> list() ABSL_LOCKS_EXCLUDED(mu_);

 private:
  Mutex mu_;
  // Per prefix length (32..0), network (host order) -> route.
  std::map<uint32_t, rtentry> by_plen_[33] ABSL_GUARDED_BY(mu_);
};

}  // namespace uk

#endif  // UKTLS_SYS_NET_ROUTE_H_
