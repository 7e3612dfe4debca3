// if_detach(): an interface leaves the kernel's list with its addresses and
// the routes through it (FreeBSD's if_detach_internal, minus the parts uktls
// has no use for). Packets already holding the interface keep a reference.
#include <netinet/in.h>

#include <algorithm>

#include "sys/kern/kernel.h"
#include "sys/net/if_mib.h"
#include "sys/net/if_var.h"
#include "sys/net/route.h"

namespace uk {

void if_detach(kernel& k, ifnet* ifp) {
  if (!k.net) return;
  ifp->if_flags.fetch_and(~(IFF_UP | IFF_DRV_RUNNING));
  for (const rtentry& rt : k.net->rt->list())
    if (rt.rt_ifp.get() == ifp) k.net->rt->del(rt.rt_dst, rt.rt_plen);
  RefPtr<ifnet> keep;  // released after the lock
  {
    NetState& n = *k.net;
    MutexLock l(&n.if_mu);
    ifp->if_addrs.clear();
    auto& v = n.ifnets;
    auto it = std::find_if(v.begin(), v.end(),
                           [ifp](const RefPtr<ifnet>& p) { return p.get() == ifp; });
    if (it == v.end()) return;
    keep = std::move(*it);
    v.erase(it);
    // ifindex_free: V_if_index shrinks to the largest index still in use.
    if (ifp->if_index > 0 && ifp->if_index < static_cast<int>(n.index_used.size()))
      n.index_used[ifp->if_index] = false;
    while (n.if_index_max > 0 && !n.index_used[n.if_index_max]) n.if_index_max--;
  }
  // Outside if_mu: an ifdata read holds the sysctl lock, then if_mu.
  if_mib_detach(ifp);
}

}  // namespace uk
