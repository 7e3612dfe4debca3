// TCP support: control block creation, close/drop, bare segments, ISN and
// MSS. Mirrors FreeBSD's sys/netinet/tcp_subr.c (tcp_newtcpcb, tcp_drop,
// tcp_close, tcp_respond, tcp_new_isn, tcp_mss / tcp_mssopt) and
// tcp_timewait.c (tcp_twstart).
#include <arpa/inet.h>

#include <algorithm>
#include <cerrno>
#include <cstddef>
#include <cstring>

#include "sys/kern/kernel.h"
#include "sys/net/if_var.h"
#include "sys/net/route.h"
#include "sys/netinet/ip.h"
#include "sys/netinet/tcp_offload.h"
#include "sys/netinet/tcp_var.h"

namespace uk {

tcpcb::tcpcb(inpcb* inp) : t_inpcb(inp) {}
tcpcb::~tcpcb() { tcp_reass_flush(this); }

tcpcb* tcp_newtcpcb(inpcb* inp) {
  InetState& in = *inp->inp_pcbinfo;
  inp->inp_ppcb = std::make_unique<tcpcb>(inp);
  tcpcb* tp = inp->inp_ppcb.get();
  tcp_timers_init(in.k, tp);
  tp->t_maxseg = in.tcp_mssdflt.load();
  tp->t_rxtcur = in.tcp_rexmit_initial.load();
  tp->snd_cwnd = TCP_MAXWIN << TCP_MAX_WINSHIFT;
  tp->snd_ssthresh = TCP_MAXWIN << TCP_MAX_WINSHIFT;
  if (in.tcp_do_rfc1323.load()) tp->t_flags |= TF_REQ_SCALE;
  // Offered on the SYN; withdrawn when the peer's SYN does not offer it.
  if (in.tcp_do_sack.load()) tp->t_flags |= TF_SACK_PERMIT;
  tp->t_rcvtime = ticks_now();
  return tp;
}

void tcp_state_change(tcpcb* tp, int newstate) { tp->t_state = newstate; }

tcp_seq tcp_new_isn(kernel& k) {
  // RFC 6528 in spirit: a clock (4 us ticks) plus a per-call random offset.
  static thread_local uint64_t x = 0x9e3779b97f4a7c15ULL ^ reinterpret_cast<uintptr_t>(&k);
  x ^= x << 13;
  x ^= x >> 7;
  x ^= x << 17;
  return static_cast<tcp_seq>(getsbinuptime() / 4000) + static_cast<tcp_seq>(x);
}

static int route_mtu(kernel& k, in_addr dst) {
  nhop4 nh;
  if (k.net->rt->lookup(dst, &nh) != 0) return 0;
  return nh.mtu;
}

int tcp_mssopt(tcpcb* tp) {
  InetState& in = *tp->t_inpcb->inp_pcbinfo;
  int mtu = route_mtu(in.k, tp->t_inpcb->inp_faddr);
  int mss = mtu > 0 ? mtu - static_cast<int>(sizeof(ip) + sizeof(tcphdr))
                    : in.tcp_mssdflt.load();
  return std::max(mss, in.tcp_minmss.load());
}

void tcp_mss(tcpcb* tp, int offer) {
  InetState& in = *tp->t_inpcb->inp_pcbinfo;
  if (offer == 0) offer = in.tcp_mssdflt.load();
  tp->t_peer_mss = offer;
  int mss = std::min(offer, tcp_mssopt(tp));
  if (tp->t_user_maxseg > 0) mss = std::min(mss, tp->t_user_maxseg);
  tp->t_maxseg = std::max(mss, in.tcp_minmss.load());
  // FreeBSD's tcp_mss_update: TSO if the route's interface does it now.
  nhop4 nh;
  if (in.k.net->rt->lookup(tp->t_inpcb->inp_faddr, &nh) == 0 &&
      (nh.ifp->if_hwassist.load(std::memory_order_relaxed) & CSUM_IP_TSO))
    tp->t_flags |= TF_TSO;
  else
    tp->t_flags &= ~TF_TSO;
}

long tcp_rcv_space(tcpcb* tp) {
  tp->t_inpcb->inp_lock.AssertHeld();
  socket* so = tp->t_inpcb->inp_socket;
  if (so == nullptr) return 0;
  MutexLock l(&so->so_rcv.sb_mtx);
  return std::max<long>(sbspace(&so->so_rcv), 0);
}

void tcp_respond(kernel& k, tcpcb* tp, in_addr src, in_addr dst,
                 uint16_t sport, uint16_t dport, tcp_seq ack, tcp_seq seq,
                 uint8_t flags, uint32_t win) {
  mbuf* m = m_gethdr(k, M_NOWAIT, MT_DATA);
  if (m == nullptr) return;
  int hlen = sizeof(ip) + sizeof(tcphdr);
  m->m_data += 16;  // max_linkhdr
  m->m_len = hlen;
  m->m_pkthdr.len = hlen;
  memset(mtod(m), 0, hlen);
  ip* iph = mtod<ip*>(m);
  tcphdr* th = reinterpret_cast<tcphdr*>(iph + 1);
  iph->ip_len = htons(hlen);
  iph->ip_p = IPPROTO_TCP;
  iph->ip_ttl = IPDEFTTL;
  iph->ip_src = src;
  iph->ip_dst = dst;
  th->th_sport = sport;
  th->th_dport = dport;
  th->th_seq = htonl(seq);
  th->th_ack = htonl(ack);
  th->th_off = sizeof(tcphdr) >> 2;
  th->th_flags = flags;
  if (tp != nullptr) {
    long w = tcp_rcv_space(tp) >> tp->rcv_scale;
    win = static_cast<uint32_t>(std::min<long>(w, TCP_MAXWIN));
  }
  th->th_win = htons(static_cast<uint16_t>(std::min<uint32_t>(win, TCP_MAXWIN)));
  th->th_sum = in_pseudo(src.s_addr, dst.s_addr,
                         htons(static_cast<uint16_t>(sizeof(tcphdr) + IPPROTO_TCP)));
  m->m_pkthdr.csum_flags = CSUM_TCP;
  m->m_pkthdr.csum_data = offsetof(tcphdr, th_sum);
  InetState& in = V_inet(k);
  in.tcps.tcps_sndtotal.add(1);
  if (flags & (TH_RST | TH_SYN | TH_FIN))
    in.tcps.tcps_sndctrl.add(1);
  else
    in.tcps.tcps_sndacks.add(1);
  ip_output(k, m, 0);
}

void tcp_detach_socket(inpcb* inp) {
  socket* so = inp->inp_socket;
  if (so == nullptr) return;
  inp->inp_socket = nullptr;
  // Released by inp_unlock() once the pcb lock is dropped.
  if (inp->inp_sofree != nullptr) release_ref(inp->inp_sofree);
  inp->inp_sofree = so;
}

void tcp_close(tcpcb* tp) {
  inpcb* inp = tp->t_inpcb;
  inp->inp_lock.AssertHeld();
  InetState& in = *inp->inp_pcbinfo;
  tcp_offload_detach(tp);  // the device lets go first (FreeBSD tcp_discardcb)
  if (tp->t_state == TCPS_LISTEN) {
    // The listen queue is torn down by soclose.
  }
  tcp_state_change(tp, TCPS_CLOSED);
  tcp_timer_stop_all(tp);
  tcp_reass_flush(tp);
  in_pcbdrop(inp);
  in.tcps.tcps_closed.add(1);
  socket* so = inp->inp_socket;
  if (so != nullptr) {
    soisdisconnected(so);
    if (so->so_state.load() & SS_NOFDREF) {
      tcp_detach_socket(inp);
      in_pcbfree(inp);
    }
  } else {
    in_pcbfree(inp);
  }
}

void tcp_drop(tcpcb* tp, int error) {
  inpcb* inp = tp->t_inpcb;
  inp->inp_lock.AssertHeld();
  InetState& in = *inp->inp_pcbinfo;
  if (tp->t_state >= TCPS_SYN_RECEIVED && tp->t_state != TCPS_TIME_WAIT) {
    tcp_respond(in.k, nullptr, inp->inp_laddr, inp->inp_faddr, inp->inp_lport,
                inp->inp_fport, tp->rcv_nxt, tp->snd_nxt, TH_RST | TH_ACK, 0);
    in.tcps.tcps_drops.add(1);
  } else {
    in.tcps.tcps_conndrops.add(1);
  }
  if (error == ETIMEDOUT && tp->t_softerror) error = tp->t_softerror;
  if (socket* so = inp->inp_socket) so->so_error.store(error);
  tcp_close(tp);
}

void tcp_twstart(tcpcb* tp) {
  inpcb* inp = tp->t_inpcb;
  inp->inp_lock.AssertHeld();
  InetState& in = *inp->inp_pcbinfo;
  // TIME_WAIT is the host's (as t4_tom hands it back with tcp_twstart).
  tcp_offload_detach(tp);
  tcp_state_change(tp, TCPS_TIME_WAIT);
  tcp_timer_stop_all(tp);
  tcp_reass_flush(tp);
  // 2 MSL, with the local MSL for a peer on this host (FreeBSD 14's
  // net.inet.tcp.msl_local).
  bool local = in_localip(in.k, inp->inp_faddr);
  int msl = local ? in.tcp_msl_local.load() : in.tcp_msl.load();
  socket* so = inp->inp_socket;
  if (so != nullptr) {
    soisdisconnected(so);
    if (so->so_state.load() & SS_NOFDREF) tcp_detach_socket(inp);
  }
  if (msl <= 0) {
    tcp_close(tp);
    return;
  }
  tcp_timer_activate(tp, TT_2MSL, 2 * static_cast<int64_t>(msl));
}

}  // namespace uk
