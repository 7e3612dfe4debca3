// Longest-prefix-match IPv4 routes. Mirrors what FreeBSD's fib4_lookup()
// answers for a host: the most specific prefix wins.
#include "sys/net/route.h"

#include <arpa/inet.h>

#include <cerrno>

namespace uk {

static uint32_t mask_of(int plen) { return plen == 0 ? 0 : ~0u << (32 - plen); }

int RouteTable::add(in_addr dst, int plen, in_addr gw, RefPtr<ifnet> ifp) {
  if (plen < 0 || plen > 32) return EINVAL;
  uint32_t net = ntohl(dst.s_addr) & mask_of(plen);
  MutexLock l(&mu_);
  auto& m = by_plen_[plen];
  if (m.count(net)) return EEXIST;
  rtentry rt;
  rt.rt_dst.s_addr = htonl(net);
  rt.rt_plen = plen;
  rt.rt_gateway = gw;
  rt.rt_ifp = std::move(ifp);
  rt.rt_flags = RTF_UP | (gw.s_addr != INADDR_ANY ? RTF_GATEWAY : 0) |
                (plen == 32 ? RTF_HOST : 0);
  m.emplace(net, std::move(rt));
  return 0;
}

int RouteTable::del(in_addr dst, int plen) {
  if (plen < 0 || plen > 32) return EINVAL;
  uint32_t net = ntohl(dst.s_addr) & mask_of(plen);
  MutexLock l(&mu_);
  return by_plen_[plen].erase(net) ? 0 : ESRCH;
}

int RouteTable::lookup(in_addr dst, nhop4* out) {
  uint32_t a = ntohl(dst.s_addr);
  MutexLock l(&mu_);
  for (int plen = 32; plen >= 0; plen--) {
    auto& m = by_plen_[plen];
    if (m.empty()) continue;
    auto it = m.find(a & mask_of(plen));
    if (it == m.end()) continue;
    const rtentry& rt = it->second;
    if ((rt.rt_ifp->if_flags.load() & IFF_UP) == 0) return ENETDOWN;
    out->ifp = rt.rt_ifp;
    out->gw = sockaddr_in{};
    out->gw.sin_family = AF_INET;
    out->gw.sin_addr = (rt.rt_flags & RTF_GATEWAY) ? rt.rt_gateway : dst;
    out->mtu = rt.rt_ifp->if_mtu.load();
    return 0;
  }
  return EHOSTUNREACH;
}

void RouteTable::clear() {
  MutexLock l(&mu_);
  for (auto& m : by_plen_) m.clear();
}

std::vector<rtentry> RouteTable::list() {
  MutexLock l(&mu_);
  std::vector<rtentry> v;
  for (int plen = 32; plen >= 0; plen--)
    for (auto& [net, rt] : by_plen_[plen]) v.push_back(rt);
  return v;
}

}  // namespace uk
