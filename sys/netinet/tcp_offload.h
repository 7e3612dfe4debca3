// TCP offload (TOE) glue between the stack and a TOE device. Mirrors
// FreeBSD's sys/netinet/tcp_offload.{h,c} and toecore.h: a connection
// whose route leaves through an interface with IFCAP_TOE4 enabled and a
// TOE device (TOEDEV(ifp), here ifnet::if_toedev()) is handed to that
// device, which marks it TF_TOE and keeps its toepcb in tp->t_toe. From then
// on tcp_output() goes to the device (tcp_offload_output), as in FreeBSD.
//
// uktls runs the offloaded connection's TCP with the stack's own code, but
// on the device's engine thread: the device feeds received segments to
// tcp_input, runs tcp_default_output when asked (tod_output), transmits
// the segments it builds (tod_send, no host IP layer) and runs expired
// timers (tod_timer). FreeBSD's chip does all of this in firmware.
//
// Locking: every tod_* method is called with the connection's inp_lock
// held, except where noted; a device never takes an inp_lock from inside
// one. Lock order: inp_lock -> sockbuf -> the device's own locks.
#ifndef UKTLS_SYS_NETINET_TCP_OFFLOAD_H_
#define UKTLS_SYS_NETINET_TCP_OFFLOAD_H_

#include <netinet/in.h>

#include <cstdint>

namespace uk {

struct tcpcb;
struct mbuf;
struct ifnet;
struct ktls_session;

// A TOE device (FreeBSD's struct toedev, as C++ virtual methods).
struct toedev {
  virtual ~toedev() = default;
  // Active open (tcp_offload_connect): take over tp, in SYN_SENT, whose
  // route's next hop is nexthop (network order). 0 or an errno.
  virtual int tod_connect(tcpcb* tp, uint32_t nexthop) = 0;
  // Passive open (FreeBSD: the syncache hands the new connection to
  // tod_offload_socket): take over tp, in SYN_RECEIVED. 0 or an errno.
  virtual int tod_offload_socket(tcpcb* tp, uint32_t nexthop) = 0;
  // tcp_output() of an offloaded connection (tcp_offload_output).
  virtual int tod_output(tcpcb* tp) = 0;
  // uktls: one segment built by tcp_default_output on the engine (an IPv4
  // packet, checksums not filled). Consumes m.
  virtual int tod_send(tcpcb* tp, mbuf* m) = 0;
  // uktls: the connection's timer callout fired; 0 when the device runs
  // the expired timers itself (tcp_timer_expire on its thread).
  virtual int tod_timer(tcpcb* tp) = 0;
  // The connection is closing or entering TIME_WAIT (tcp_offload_detach):
  // the device forgets it and clears TF_TOE, tp->tod and tp->t_toe.
  virtual void tod_pcb_detach(tcpcb* tp) = 0;
  // ktls_try_toe: take over TLS framing and crypto of a session for one
  // direction (KTLS_TX or KTLS_RX). EOPNOTSUPP / EPROTONOSUPPORT when the
  // device cannot.
  virtual int tod_alloc_tls_session(tcpcb* tp, ktls_session* tls,
                                    int direction) = 0;
};

// Active open: if the route to tp's foreign address leaves through an
// interface with TOE4 enabled and a TOE device, offload tp. 0 when
// offloaded, EOPNOTSUPP (or another errno) when not.
int tcp_offload_connect(tcpcb* tp);
// Passive open: the SYN that created tp arrived on rcvif; offload tp if
// rcvif has TOE4 enabled and a TOE device (FreeBSD: toe_syncache_add).
int tcp_offload_passive(tcpcb* tp, ifnet* rcvif);
int tcp_offload_output(tcpcb* tp);
int tcp_offload_send(tcpcb* tp, mbuf* m);
int tcp_offload_timer(tcpcb* tp);
void tcp_offload_detach(tcpcb* tp);
int tcp_offload_alloc_tls_session(tcpcb* tp, ktls_session* tls, int direction);

}  // namespace uk

#endif  // UKTLS_SYS_NETINET_TCP_OFFLOAD_H_
