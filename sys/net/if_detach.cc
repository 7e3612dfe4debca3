// if_detach(): an interface leaves the kernel's list with its addresses and
// the routes through it (FreeBSD's if_detach_internal, minus the parts uktls
// has no use for). Packets already holding the interface keep a reference.
#include <netinet/in.h>

#include <algorithm>

#include "sys/kern/kernel.h"
#include "sys/net/if_var.h"
#include "sys/net/route.h"

namespace uk {

void if_detach(kernel& k, ifnet* ifp) {
  if (!k.net) return;
  ifp->if_flags.fetch_and(~(IFF_UP | IFF_DRV_RUNNING));
  for (const rtentry& rt : k.net->rt->list())
    if (rt.rt_ifp.get() == ifp) k.net->rt->del(rt.rt_dst, rt.rt_plen);
  RefPtr<ifnet> keep;  // released after the lock
  MutexLock l(&k.net->if_mu);
  ifp->if_addrs.clear();
  auto& v = k.net->ifnets;
  auto it = std::find_if(v.begin(), v.end(),
                         [ifp](const RefPtr<ifnet>& p) { return p.get() == ifp; });
  if (it != v.end()) {
    keep = std::move(*it);
    v.erase(it);
  }
}

}  // namespace uk
