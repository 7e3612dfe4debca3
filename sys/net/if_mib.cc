// net.link.generic: the interface MIB. Mirrors FreeBSD's sys/net/if_mib.c
// (sysctl_ifdata's IFDATA_GENERAL, the system.ifcount leaf) and if.c's
// if_data_copy / if_get_counter_default.
#include "sys/net/if_mib.h"

#include <time.h>

#include <algorithm>
#include <cstring>
#include <memory>
#include <string>

#include "sys/kern/kernel.h"
#include "sys/net/if_var.h"
#include "sys/sys/sysctl.h"

namespace uk {

uint64_t ifnet::if_get_counter(ift_counter c) {
  switch (c) {
    case IFCOUNTER_IPACKETS: return if_ipackets.fetch();
    case IFCOUNTER_IERRORS: return if_ierrors.fetch();
    case IFCOUNTER_OPACKETS: return if_opackets.fetch();
    case IFCOUNTER_OERRORS: return if_oerrors.fetch();
    case IFCOUNTER_IBYTES: return if_ibytes.fetch();
    case IFCOUNTER_OBYTES: return if_obytes.fetch();
    case IFCOUNTER_IQDROPS: return if_iqdrops.fetch();
    case IFCOUNTER_OQDROPS: return if_oqdrops.fetch();
    default: return 0;  // no collisions, multicast or noproto accounting
  }
}

void if_touch_lastchange(ifnet* ifp) {
  timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  ifp->if_lastchange_us.store(int64_t{ts.tv_sec} * 1000000 + ts.tv_nsec / 1000);
}

void if_data_copy(ifnet* ifp, if_data* d) {
  memset(d, 0, sizeof *d);
  d->ifi_type = ifp->if_type();
  d->ifi_addrlen = ifp->if_addrlen();
  d->ifi_hdrlen = ifp->if_hdrlen();
  d->ifi_link_state = ifp->if_link_state();
  d->ifi_datalen = sizeof(if_data);
  d->ifi_mtu = static_cast<uint32_t>(ifp->if_mtu.load());
  d->ifi_baudrate = ifp->if_baudrate();
  d->ifi_ipackets = ifp->if_get_counter(IFCOUNTER_IPACKETS);
  d->ifi_ierrors = ifp->if_get_counter(IFCOUNTER_IERRORS);
  d->ifi_opackets = ifp->if_get_counter(IFCOUNTER_OPACKETS);
  d->ifi_oerrors = ifp->if_get_counter(IFCOUNTER_OERRORS);
  d->ifi_collisions = ifp->if_get_counter(IFCOUNTER_COLLISIONS);
  d->ifi_ibytes = ifp->if_get_counter(IFCOUNTER_IBYTES);
  d->ifi_obytes = ifp->if_get_counter(IFCOUNTER_OBYTES);
  d->ifi_imcasts = ifp->if_get_counter(IFCOUNTER_IMCASTS);
  d->ifi_omcasts = ifp->if_get_counter(IFCOUNTER_OMCASTS);
  d->ifi_iqdrops = ifp->if_get_counter(IFCOUNTER_IQDROPS);
  d->ifi_oqdrops = ifp->if_get_counter(IFCOUNTER_OQDROPS);
  d->ifi_noproto = ifp->if_get_counter(IFCOUNTER_NOPROTO);
  d->ifi_hwassist = ifp->if_hwassist.load();
  d->__ifi_epoch.tt = static_cast<time_t>(ifp->if_epoch);
  int64_t us = ifp->if_lastchange_us.load();
  d->__ifi_lastchange.tv.tv_sec = static_cast<time_t>(us / 1000000);
  d->__ifi_lastchange.tv.tv_usec = static_cast<suseconds_t>(us % 1000000);
}

void if_mibdata(ifnet* ifp, ifmibdata* md) {
  memset(md, 0, sizeof *md);
  // strlcpy: the name is truncated to IFNAMSIZ - 1 and always terminated.
  size_t n = std::min(ifp->if_xname.size(), sizeof md->ifmd_name - 1);
  memcpy(md->ifmd_name, ifp->if_xname.data(), n);
  md->ifmd_flags = ifp->if_flags.load();
  md->ifmd_snd_len = ifp->if_snd_len();
  md->ifmd_snd_maxlen = ifp->if_snd_maxlen();
  if_data_copy(ifp, &md->ifmd_data);
  md->ifmd_snd_drops = static_cast<int>(md->ifmd_data.ifi_oqdrops);
}

void if_mib_attach(kernel& k, ifnet* ifp) {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  ifp->if_epoch = ts.tv_sec;
  if_touch_lastchange(ifp);
  auto ctx = std::make_unique<sysctl_ctx_list>(k);
  std::string node = "net.link.generic.ifdata." + std::to_string(ifp->if_index);
  ctx->add_node(node, "Interface " + ifp->if_xname);
  ctx->add_proc(node + ".general", CTLTYPE_OPAQUE | CTLFLAG_RD, "S,ifmibdata",
                [ifp](sysctl_req& req) {
                  ifmibdata md;
                  if_mibdata(ifp, &md);
                  return req.out(&md, sizeof md);
                },
                "Generic information and statistics (struct ifmibdata)");
  ifp->if_sysctl = std::move(ctx);
}

void if_mib_detach(ifnet* ifp) {
  // Removes the oid under the tree's lock: no handler runs after this.
  ifp->if_sysctl.reset();
}

void if_mib_sysinit(kernel& k) {
  sysctl_ctx_list& ctx = k.net->sysctl_ctx;
  ctx.add_node("net.link", "Link layers");
  ctx.add_node("net.link.generic", "Generic link-management");
  ctx.add_node("net.link.generic.system", "Variables global to all interfaces");
  ctx.add_node("net.link.generic.ifdata", "Interface table");
  NetState* n = k.net.get();
  ctx.add_proc("net.link.generic.system.ifcount", CTLTYPE_INT | CTLFLAG_RD, "I",
               [n](sysctl_req& req) {
                 int v;
                 {
                   MutexLock l(&n->if_mu);
                   v = n->if_index_max;
                 }
                 return req.out(&v, sizeof v);
               },
               "Number of configured interfaces");
}

}  // namespace uk
