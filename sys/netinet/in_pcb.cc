// Internet pcbs. Mirrors FreeBSD's sys/netinet/in_pcb.c: in_pcballoc,
// in_pcbbind (in_pcbbind_setup's SO_REUSEADDR/wildcard rules and
// in_pcb_lport's ephemeral port search), in_pcbconnect (source address from
// the route), in_pcbdrop, in_pcbfree, in_pcblookup (exact, then listener).
#include "sys/netinet/in_pcb.h"

#include <arpa/inet.h>

#include <cerrno>
#include <random>

#include "sys/kern/kernel.h"
#include "sys/net/if_var.h"
#include "sys/net/route.h"
#include "sys/netinet/ip_var.h"
#include "sys/netinet/tcp_var.h"
#include "sys/sys/socketvar.h"

namespace uk {

inpcb::inpcb(InetState* info) : inp_pcbinfo(info) {}
inpcb::~inpcb() = default;

void inp_unlock(inpcb* inp) {
  socket* so = inp->inp_sofree;
  inp->inp_sofree = nullptr;
  inp->inp_lock.Unlock();
  if (so != nullptr) release_ref(so);
}

RefPtr<inpcb> in_pcballoc(socket* so, InetState* info) {
  auto inp = make_ref<inpcb>(info);
  {
    MutexLock l(&inp->inp_lock);
    so->ref();
    inp->inp_socket = so;
  }
  inp->inp_ip_ttl = static_cast<uint8_t>(info->ip_defttl.load());
  MutexLock l(&info->tcbinfo.ipi_lock);
  inp->ref();  // the table's reference
  info->tcbinfo.ipi_all.insert(inp.get());
  info->tcbinfo.ipi_gencnt++;
  return inp;
}

static void port_insert(inpcbinfo& pi, inpcb* inp)
    ABSL_EXCLUSIVE_LOCKS_REQUIRED(pi.ipi_lock) {
  inp->inp_portit = pi.ipi_ports.emplace(ntohs(inp->inp_lport), inp);
  inp->inp_flags.fetch_or(INP_BOUND);
}

// Is (laddr, lport) in use? With wild, any pcb on the port whose local
// address overlaps conflicts (a plain bind); without it (SO_REUSEADDR)
// only an unconnected pcb bound to exactly that address does.
static bool port_in_use(inpcbinfo& pi, in_addr laddr, uint16_t lport_h,
                        bool wild, const inpcb* self)
    ABSL_EXCLUSIVE_LOCKS_REQUIRED(pi.ipi_lock) {
  auto range = pi.ipi_ports.equal_range(lport_h);
  for (auto it = range.first; it != range.second; ++it) {
    const inpcb* t = it->second;
    if (t == self) continue;
    if (wild) {
      if (t->inp_laddr.s_addr == INADDR_ANY || laddr.s_addr == INADDR_ANY ||
          t->inp_laddr.s_addr == laddr.s_addr)
        return true;
    } else {
      if (t->inp_faddr.s_addr == INADDR_ANY &&
          t->inp_laddr.s_addr == laddr.s_addr)
        return true;
    }
  }
  return false;
}

// in_pcb_lport: a random start, then a linear search of the range.
static int pick_lport(InetState* info, in_addr laddr, const inpcb* self,
                      uint16_t* out) ABSL_EXCLUSIVE_LOCKS_REQUIRED(info->tcbinfo.ipi_lock) {
  inpcbinfo& pi = info->tcbinfo;
  pi.ipi_lock.AssertHeld();
  int first = info->portrange_first.load(), last = info->portrange_last.load();
  if (first > last) std::swap(first, last);
  if (first < 1) first = 1;
  if (last > 65535) last = 65535;
  uint32_t n = last - first + 1;
  if (pi.ipi_lastport == 0) {
    std::random_device rd;
    pi.ipi_lastport = rd();
  }
  uint32_t start = pi.ipi_lastport++ * 2654435761u;
  for (uint32_t i = 0; i < n; i++) {
    uint16_t p = static_cast<uint16_t>(first + (start + i) % n);
    if (!port_in_use(pi, laddr, p, true, self)) {
      *out = htons(p);
      return 0;
    }
  }
  return EADDRNOTAVAIL;
}

int in_pcbbind(inpcb* inp, const sockaddr_in* nam, bool reuseaddr) {
  InetState* info = inp->inp_pcbinfo;
  if (inp->inp_lport != 0 || inp->inp_laddr.s_addr != INADDR_ANY)
    return EINVAL;
  in_addr laddr{INADDR_ANY};
  uint16_t lport = 0;
  if (nam != nullptr) {
    if (nam->sin_family != AF_INET) return EAFNOSUPPORT;
    laddr = nam->sin_addr;
    lport = nam->sin_port;
    if (laddr.s_addr != INADDR_ANY) {
      // Multicast and broadcast binds need UDP; an address we do not have
      // is EADDRNOTAVAIL.
      if (IN_MULTICAST(ntohl(laddr.s_addr)) || laddr.s_addr == INADDR_BROADCAST)
        return EADDRNOTAVAIL;
      if (!in_localip(info->k, laddr)) return EADDRNOTAVAIL;
    }
  }
  MutexLock l(&info->tcbinfo.ipi_lock);
  if (lport != 0) {
    if (port_in_use(info->tcbinfo, laddr, ntohs(lport), !reuseaddr, inp))
      return EADDRINUSE;
  } else {
    if (int e = pick_lport(info, laddr, inp, &lport)) return e;
  }
  inp->inp_laddr = laddr;
  inp->inp_lport = lport;
  port_insert(info->tcbinfo, inp);
  return 0;
}

int in_pcbconnect(inpcb* inp, const sockaddr_in* nam) {
  InetState* info = inp->inp_pcbinfo;
  kernel& k = info->k;
  if (nam->sin_port == 0) return EADDRNOTAVAIL;
  in_addr faddr = nam->sin_addr;
  // in_pcbconnect_setup: INADDR_ANY means "this host".
  if (faddr.s_addr == INADDR_ANY) faddr = if_primary_addr(k, k.net->lo0);
  in_addr laddr = inp->inp_laddr;
  if (laddr.s_addr == INADDR_ANY) {
    nhop4 nh;
    if (int e = k.net->rt->lookup(faddr, &nh))
      return e == EHOSTUNREACH ? ENETUNREACH : e;
    laddr = if_primary_addr(k, nh.ifp.get());
    if (laddr.s_addr == INADDR_ANY) return EADDRNOTAVAIL;
  }
  inpcbinfo& pi = info->tcbinfo;
  MutexLock l(&pi.ipi_lock);
  info->tcbinfo.ipi_lock.AssertHeld();  // the same lock, for the analysis
  uint16_t lport = inp->inp_lport;
  if (lport == 0) {
    if (int e = pick_lport(info, laddr, inp, &lport)) return e;
  }
  inpcb_key key{laddr.s_addr, faddr.s_addr, lport, nam->sin_port};
  if (pi.ipi_conn.count(key)) return EADDRINUSE;
  bool was_bound = inp->inp_flags.load() & INP_BOUND;
  inp->inp_laddr = laddr;
  inp->inp_lport = lport;
  inp->inp_faddr = faddr;
  inp->inp_fport = nam->sin_port;
  if (!was_bound) port_insert(pi, inp);
  pi.ipi_conn.emplace(key, inp);
  inp->inp_flags.fetch_or(INP_HASHED);
  inp->inp_flowid = static_cast<uint32_t>(inpcb_key_hash()(key));
  return 0;
}

void in_pcblisten(inpcb* inp) {
  MutexLock l(&inp->inp_pcbinfo->tcbinfo.ipi_lock);
  inp->inp_flags.fetch_or(INP_LISTEN);
}

// Enters a pcb created for an incoming connection (syncache_socket's
// in_pcbinshash) under its final 4-tuple.
int in_pcbinshash_conn(inpcb* inp, in_addr laddr, uint16_t lport,
                       in_addr faddr, uint16_t fport) {
  inpcbinfo& pi = inp->inp_pcbinfo->tcbinfo;
  MutexLock l(&pi.ipi_lock);
  inpcb_key key{laddr.s_addr, faddr.s_addr, lport, fport};
  if (pi.ipi_conn.count(key)) return EADDRINUSE;
  inp->inp_laddr = laddr;
  inp->inp_lport = lport;
  inp->inp_faddr = faddr;
  inp->inp_fport = fport;
  port_insert(pi, inp);
  pi.ipi_conn.emplace(key, inp);
  inp->inp_flags.fetch_or(INP_HASHED);
  inp->inp_flowid = static_cast<uint32_t>(inpcb_key_hash()(key));
  return 0;
}

void in_pcbdrop(inpcb* inp) {
  inpcbinfo& pi = inp->inp_pcbinfo->tcbinfo;
  MutexLock l(&pi.ipi_lock);
  int fl = inp->inp_flags.load();
  if (fl & INP_HASHED) {
    pi.ipi_conn.erase(inpcb_key{inp->inp_laddr.s_addr, inp->inp_faddr.s_addr,
                                inp->inp_lport, inp->inp_fport});
  }
  if (fl & INP_BOUND) pi.ipi_ports.erase(inp->inp_portit);
  inp->inp_flags.fetch_and(~(INP_HASHED | INP_BOUND | INP_LISTEN));
  inp->inp_flags.fetch_or(INP_DROPPED);
}

void in_pcbfree(inpcb* inp) {
  in_pcbdrop(inp);
  inpcbinfo& pi = inp->inp_pcbinfo->tcbinfo;
  bool had;
  {
    MutexLock l(&pi.ipi_lock);
    had = pi.ipi_all.erase(inp) != 0;
    pi.ipi_gencnt++;
    inp->inp_flags.fetch_or(INP_FREED);
  }
  // The table's reference; the caller holds another, so this never frees.
  if (had) inp->unref();
}

RefPtr<inpcb> in_pcblookup(InetState* info, in_addr faddr, uint16_t fport,
                           in_addr laddr, uint16_t lport, bool wildcard) {
  inpcbinfo& pi = info->tcbinfo;
  MutexLock l(&pi.ipi_lock);
  auto it = pi.ipi_conn.find(inpcb_key{laddr.s_addr, faddr.s_addr, lport, fport});
  if (it != pi.ipi_conn.end()) return RefPtr<inpcb>(it->second);
  if (!wildcard) return nullptr;
  inpcb* wild = nullptr;
  auto range = pi.ipi_ports.equal_range(ntohs(lport));
  for (auto p = range.first; p != range.second; ++p) {
    inpcb* t = p->second;
    if (!(t->inp_flags.load() & INP_LISTEN)) continue;
    if (t->inp_laddr.s_addr == laddr.s_addr) return RefPtr<inpcb>(t);
    if (t->inp_laddr.s_addr == INADDR_ANY) wild = t;
  }
  return RefPtr<inpcb>(wild);
}

std::vector<xinpcb> tcp_pcblist(kernel& k) {
  std::vector<xinpcb> out;
  if (!k.net || !k.net->inet) return out;
  InetState* info = k.net->inet;
  std::vector<RefPtr<inpcb>> all;
  uint64_t gen;
  {
    MutexLock l(&info->tcbinfo.ipi_lock);
    for (inpcb* inp : info->tcbinfo.ipi_all) all.emplace_back(inp);
    gen = info->tcbinfo.ipi_gencnt;
  }
  for (auto& inp : all) {
    xinpcb x{};
    x.gencnt = gen;
    MutexLock l(&inp->inp_lock);
    x.local.sin_family = AF_INET;
    x.local.sin_addr = inp->inp_laddr;
    x.local.sin_port = inp->inp_lport;
    x.foreign.sin_family = AF_INET;
    x.foreign.sin_addr = inp->inp_faddr;
    x.foreign.sin_port = inp->inp_fport;
    if (tcpcb* tp = intotcpcb(inp.get())) {
      x.t_state = tp->t_state;
      x.state_name = tcp_state_name(tp->t_state);
      x.snd_una = tp->snd_una;
      x.snd_nxt = tp->snd_nxt;
      x.rcv_nxt = tp->rcv_nxt;
      x.snd_wnd = tp->snd_wnd;
      x.snd_cwnd = tp->snd_cwnd;
      x.rcv_wnd = tp->rcv_wnd;
      x.t_maxseg = tp->t_maxseg;
      x.t_srtt_us = tp->t_srtt * 1000 / TCP_RTT_SCALE;
      x.t_rxtshift = tp->t_rxtshift;
      x.t_flags = tp->t_flags;
    }
    if (socket* so = inp->inp_socket) {
      x.has_socket = true;
      {
        MutexLock s(&so->so_snd.sb_mtx);
        x.so_snd_cc = so->so_snd.sb_ccc;
        x.tls_tx = so->so_snd.sb_tls_info != nullptr;
      }
      {
        MutexLock s(&so->so_rcv.sb_mtx);
        x.so_rcv_cc = so->so_rcv.sb_ccc;
        x.tls_rx = so->so_rcv.sb_tls_info != nullptr;
      }
    }
    out.push_back(x);
  }
  return out;
}

}  // namespace uk
