// TCP offload glue. Mirrors FreeBSD's sys/netinet/tcp_offload.c.
#include "sys/netinet/tcp_offload.h"

#include <cerrno>

#include "sys/kern/kernel.h"
#include "sys/net/if_var.h"
#include "sys/net/route.h"
#include "sys/netinet/tcp_var.h"

namespace uk {

namespace {

// TOEDEV(ifp) with FreeBSD's checks: the interface must have TOE4 enabled.
std::shared_ptr<toedev> toedev_of(ifnet* ifp) {
  if (ifp == nullptr) return nullptr;
  if (!(ifp->if_capenable.load(std::memory_order_relaxed) & IFCAP_TOE4))
    return nullptr;
  return ifp->if_toedev();
}

}  // namespace

int tcp_offload_connect(tcpcb* tp) {
  inpcb* inp = tp->t_inpcb;
  inp->inp_lock.AssertHeld();
  kernel& k = inp->inp_pcbinfo->k;
  nhop4 nh;
  if (k.net->rt->lookup(inp->inp_faddr, &nh) != 0) return EHOSTUNREACH;
  std::shared_ptr<toedev> tod = toedev_of(nh.ifp.get());
  if (!tod) return EOPNOTSUPP;
  return tod->tod_connect(tp, nh.gw.sin_addr.s_addr);
}

int tcp_offload_passive(tcpcb* tp, ifnet* rcvif) {
  inpcb* inp = tp->t_inpcb;
  inp->inp_lock.AssertHeld();
  std::shared_ptr<toedev> tod = toedev_of(rcvif);
  if (!tod) return EOPNOTSUPP;
  kernel& k = inp->inp_pcbinfo->k;
  nhop4 nh;
  // The reply must leave through the interface the SYN came in on.
  if (k.net->rt->lookup(inp->inp_faddr, &nh) != 0 || nh.ifp.get() != rcvif)
    return EHOSTUNREACH;
  return tod->tod_offload_socket(tp, nh.gw.sin_addr.s_addr);
}

int tcp_offload_output(tcpcb* tp) { return tp->tod->tod_output(tp); }

int tcp_offload_send(tcpcb* tp, mbuf* m) { return tp->tod->tod_send(tp, m); }

int tcp_offload_timer(tcpcb* tp) { return tp->tod->tod_timer(tp); }

void tcp_offload_detach(tcpcb* tp) {
  if (tp->t_flags & TF_TOE) tp->tod->tod_pcb_detach(tp);
}

int tcp_offload_alloc_tls_session(tcpcb* tp, ktls_session* tls, int direction) {
  return tp->tod->tod_alloc_tls_session(tp, tls, direction);
}

}  // namespace uk
