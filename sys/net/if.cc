// Interfaces, the NetState slot and its boot/halt, and ifconfig(8) for
// existing interfaces. Mirrors FreeBSD's sys/net/if.c (if_attach, ifunit,
// ifioctl's SIOCSIFCAP/SIOCSIFMTU/SIOCSIFFLAGS) and in.c (in_control).
#include <arpa/inet.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "sys/kern/kernel.h"
#include "sys/kern/syscalls.h"
#include "sys/net/if_mib.h"
#include "sys/net/if_var.h"
#include "sys/net/netisr.h"
#include "sys/net/route.h"
#include "sys/netinet/ip_var.h"

namespace uk {

UK_KERNEL_SLOT(NetState)

// Defined in if_loop.cc and sys/netinet.
RefPtr<ifnet> lo_create(kernel& k);
int inet_attach(kernel& k);
void inet_detach(kernel& k);

ifnet::ifnet(kernel& k, std::string name) : if_k(k), if_xname(std::move(name)) {}
ifnet::~ifnet() = default;

int ifnet::if_setcap(uint32_t capenable, uint32_t capenable2) {
  if (capenable & ~if_capabilities.load()) return EINVAL;
  if (capenable2 & ~if_capabilities2.load()) return EINVAL;
  if_capenable.store(capenable);
  if_capenable2.store(capenable2);
  return 0;
}

NetState::NetState(kernel& kk) : k(kk), sysctl_ctx(kk) {}
NetState::~NetState() = default;

void if_attach(kernel& k, RefPtr<ifnet> ifp) {
  ifnet* p = ifp.get();
  {
    NetState& n = *k.net;
    MutexLock l(&n.if_mu);
    // ifindex_alloc: the lowest free index, so indexes stay dense as
    // interfaces come and go.
    int idx = 1;
    while (idx < static_cast<int>(n.index_used.size()) && n.index_used[idx]) idx++;
    if (idx >= static_cast<int>(n.index_used.size())) n.index_used.resize(idx + 1);
    n.index_used[idx] = true;
    n.if_index_max = std::max(n.if_index_max, idx);
    p->if_index = idx;
    n.ifnets.push_back(std::move(ifp));
  }
  if_mib_attach(k, p);
}

RefPtr<ifnet> ifunit(kernel& k, std::string_view name) {
  MutexLock l(&k.net->if_mu);
  for (auto& ifp : k.net->ifnets)
    if (ifp->if_xname == name) return ifp;
  return nullptr;
}

static uint32_t plen_mask(int plen) {
  return plen == 0 ? 0 : htonl(~0u << (32 - plen));
}

int in_control_addaddr(kernel& k, ifnet* ifp, in_addr addr, int plen) {
  if (plen < 0 || plen > 32) return EINVAL;
  {
    MutexLock l(&k.net->if_mu);
    for (const auto& ia : ifp->if_addrs)
      if (ia.ia_addr.s_addr == addr.s_addr) return EEXIST;
    in_ifaddr ia{addr, in_addr{plen_mask(plen)}, plen};
    ifp->if_addrs.push_back(ia);
  }
  in_addr net{addr.s_addr & plen_mask(plen)};
  int e = k.net->rt->add(net, plen, in_addr{INADDR_ANY}, RefPtr<ifnet>(ifp));
  return e == EEXIST ? 0 : e;
}

bool in_localip(kernel& k, in_addr addr) {
  MutexLock l(&k.net->if_mu);
  for (auto& ifp : k.net->ifnets)
    for (const auto& ia : ifp->if_addrs)
      if (ia.ia_addr.s_addr == addr.s_addr) return true;
  return false;
}

in_addr if_primary_addr(kernel& k, ifnet* ifp) {
  MutexLock l(&k.net->if_mu);
  if (ifp->if_addrs.empty()) return in_addr{INADDR_ANY};
  return ifp->if_addrs.front().ia_addr;
}

// ifconfig(8) on an existing interface that is not a simulated NIC (the
// if_ifconfig system call, sys/dev/nic_sim/nic_sim_if.cc, dispatches): "inet A/P [up]", "up", "down",
// "mtu N", "[-]txcsum", "[-]rxcsum", "[-]mextpg". Interface cloning
// ("create"/"destroy") and NIC-specific words belong to the drivers.
int if_ifconfig_generic(kernel& k, const char* ifname, const char* args) {
  if (k.net == nullptr) return ENXIO;
  RefPtr<ifnet> ifp = ifunit(k, ifname);
  if (!ifp) return ENXIO;
  std::vector<std::string> w =
      absl::StrSplit(absl::string_view(args), ' ', absl::SkipWhitespace());
  for (size_t i = 0; i < w.size(); i++) {
    const std::string& a = w[i];
    uint32_t cap = ifp->if_capenable.load();
    uint32_t bit = 0;
    bool on = a[0] != '-';
    std::string word = on ? a : a.substr(1);
    if (word == "txcsum") bit = IFCAP_TXCSUM;
    else if (word == "rxcsum") bit = IFCAP_RXCSUM;
    else if (word == "mextpg") bit = IFCAP_MEXTPG;
    if (bit != 0) {
      if (int e = ifp->if_setcap(on ? (cap | bit) : (cap & ~bit),
                                 ifp->if_capenable2.load()))
        return e;
      continue;
    }
    if (a == "up") {
      if (!(ifp->if_flags.fetch_or(IFF_UP | IFF_DRV_RUNNING) & IFF_UP))
        if_touch_lastchange(ifp.get());
    } else if (a == "down") {
      if (ifp->if_flags.fetch_and(~(IFF_UP | IFF_DRV_RUNNING)) & IFF_UP)
        if_touch_lastchange(ifp.get());
    } else if (a == "mtu" && i + 1 < w.size()) {
      int mtu;
      if (!absl::SimpleAtoi(w[++i], &mtu) || mtu < 72 || mtu > 65535)
        return EINVAL;
      ifp->if_mtu.store(mtu);
    } else if (a == "inet" && i + 1 < w.size()) {
      std::string spec = w[++i];
      int plen = 32;
      size_t slash = spec.find('/');
      if (slash != std::string::npos) {
        if (!absl::SimpleAtoi(spec.substr(slash + 1), &plen)) return EINVAL;
        spec = spec.substr(0, slash);
      }
      in_addr addr;
      if (inet_pton(AF_INET, spec.c_str(), &addr) != 1) return EINVAL;
      if (int e = in_control_addaddr(k, ifp.get(), addr, plen)) return e;
    } else {
      return EINVAL;
    }
  }
  return 0;
}

static int net_sysinit(kernel& k) {
  k.net.reset(new NetState(k));
  NetState& n = *k.net;
  n.rt = std::make_unique<RouteTable>();
  auto& ctx = n.sysctl_ctx;
  // Read before the thread starts, as FreeBSD's netisr_init reads it.
  ctx.add_int("net.isr.bindthreads", CTLFLAG_RDTUN, &n.isr_bindthreads,
              "Bind netisr threads to CPUs.");
  n.isr = std::make_unique<Netisr>(k, n.isr_bindthreads.load() != 0);
  if (!n.isr->running()) {
    k.net.reset();
    return EAGAIN;
  }
  ctx.add_int("kern.ipc.maxsockbuf", CTLFLAG_RW, &n.maxsockbuf,
              "Maximum socket buffer size");
  ctx.add_int("kern.ipc.soacceptqueue", CTLFLAG_RW, &n.somaxconn,
              "Maximum listen socket pending connection accept queue size");
  ctx.add_int("net.isr.defaultqlimit", CTLFLAG_RW, &n.isr->qlimit,
              "Default netisr per-protocol, per-CPU queue limit if not set by protocol");
  ctx.add_counter("net.isr.stats.queued", CTLFLAG_RD, &n.isr->queued,
                  "Packets queued to the netisr thread");
  ctx.add_counter("net.isr.stats.handled", CTLFLAG_RD, &n.isr->handled,
                  "Packets handled by the netisr thread");
  ctx.add_counter("net.isr.stats.qdrops", CTLFLAG_RD, &n.isr->qdrops,
                  "Packets dropped because the netisr queue was full");
  if_mib_sysinit(k);
  RefPtr<ifnet> lo = lo_create(k);
  n.lo0 = lo.get();
  if_attach(k, lo);
  if (int e = inet_attach(k)) {
    n.isr->stop();
    k.net.reset();
    return e;
  }
  // lo0: 127.0.0.1/8, up (as rc.conf's ifconfig_lo0 at boot).
  in_addr lo_addr;
  inet_pton(AF_INET, "127.0.0.1", &lo_addr);
  in_control_addaddr(k, n.lo0, lo_addr, 8);
  n.lo0->if_flags.fetch_or(IFF_UP | IFF_DRV_RUNNING);
  return 0;
}

static void net_sysuninit(kernel& k) {
  if (!k.net) return;
  // No more input, then every connection goes, then the tables.
  k.net->isr->stop();
  inet_detach(k);
  k.net->rt->clear();
  std::vector<RefPtr<ifnet>> ifs;
  {
    MutexLock l(&k.net->if_mu);
    ifs.swap(k.net->ifnets);
  }
  // Their oids go before the tree does; packets may still hold them.
  for (RefPtr<ifnet>& ifp : ifs) if_mib_detach(ifp.get());
  ifs.clear();
  k.net->lo0 = nullptr;
  k.net.reset();
}

UK_SYSINIT(net, SI_SUB_PROTO_IF, SI_ORDER_FIRST, net_sysinit, net_sysuninit);

}  // namespace uk
