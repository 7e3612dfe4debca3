// TCP timers. Mirrors FreeBSD's sys/netinet/tcp_timer.c (tcp_timer_delack,
// _rexmt with its backoff table and RTT invalidation, _persist, _keep,
// _2msl). One callout per connection carries all five deadlines.
#include <algorithm>
#include <cerrno>

#include "sys/kern/kernel.h"
#include "sys/netinet/tcp_offload.h"
#include "sys/netinet/tcp_var.h"

namespace uk {

const int tcp_backoff[TCP_MAXRXTSHIFT + 1] = {1,  2,  4,  8,  16, 32, 64,
                                              64, 64, 64, 64, 64, 64};

static void inp_callout_ref(void* arg, int delta) {
  auto* inp = static_cast<inpcb*>(arg);
  if (delta > 0)
    inp->ref();
  else
    release_ref(inp);
}

static void tcp_timer_run(void* arg);

void tcp_timers_init(kernel& k, tcpcb* tp) {
  callout_init_mtx(k, &tp->t_callout, &tp->t_inpcb->inp_lock,
                   CALLOUT_RETURNUNLOCKED);
  tp->t_callout.c_ref = inp_callout_ref;
}

static void tcp_callout_arm(tcpcb* tp) {
  int64_t next = 0;
  for (int64_t d : tp->t_timers)
    if (d != 0 && (next == 0 || d < next)) next = d;
  if (next == 0) return;
  if (tp->t_callout_at != 0 && tp->t_callout_at <= next) return;
  tp->t_callout_at = next;
  // Whole ticks from the current one (FreeBSD's callout_reset): the
  // deadline falls on the tick the timers count in.
  callout_reset_ms(&tp->t_callout, next - ticks_now(), tcp_timer_run, tp->t_inpcb);
}

void tcp_timer_activate(tcpcb* tp, tcp_timer_num which, int64_t delta_ms) {
  if (delta_ms <= 0) {
    tp->t_timers[which] = 0;
    return;
  }
  tp->t_timers[which] = ticks_now() + delta_ms;
  tcp_callout_arm(tp);
}

bool tcp_timer_active(tcpcb* tp, tcp_timer_num which) {
  return tp->t_timers[which] != 0;
}

void tcp_timer_stop_all(tcpcb* tp) {
  for (auto& d : tp->t_timers) d = 0;
  tp->t_callout_at = 0;
  callout_stop(&tp->t_callout);
}

int tcp_rexmit_cur(tcpcb* tp) {
  InetState& in = *tp->t_inpcb->inp_pcbinfo;
  int base;
  if (tp->t_srtt == 0)
    base = in.tcp_rexmit_initial.load();
  else
    base = tp->t_srtt / TCP_RTT_SCALE + 4 * tp->t_rttvar / TCP_RTTVAR_SCALE +
           in.tcp_rexmit_slop.load();
  return std::clamp(base, in.tcp_rexmit_min.load(), TCPTV_REXMTMAX);
}

void tcp_xmit_timer(tcpcb* tp, int rtt) {
  InetState& in = *tp->t_inpcb->inp_pcbinfo;
  in.tcps.tcps_rttupdated.add(1);
  if (tp->t_srtt != 0) {
    int delta = rtt * TCP_RTT_SCALE - tp->t_srtt;
    tp->t_srtt += delta / 8;
    if (tp->t_srtt <= 0) tp->t_srtt = 1;
    if (delta < 0) delta = -delta;
    delta = delta / 2 - tp->t_rttvar;  // to rttvar's scale
    tp->t_rttvar += delta / 4;
    if (tp->t_rttvar <= 0) tp->t_rttvar = 1;
  } else {
    tp->t_srtt = std::max(rtt, 1) * TCP_RTT_SCALE;
    tp->t_rttvar = std::max(rtt, 1) * TCP_RTTVAR_SCALE / 2;
  }
  tp->t_rtttime = 0;
  tp->t_rxtshift = 0;
  tp->t_rxtcur = tcp_rexmit_cur(tp);
}

void tcp_setpersist(tcpcb* tp) {
  int t = tp->t_srtt == 0 ? 1000
                          : tp->t_srtt / TCP_RTT_SCALE +
                                2 * tp->t_rttvar / TCP_RTTVAR_SCALE;
  int tt = std::clamp(t * tcp_backoff[tp->t_rxtshift], TCPTV_PERSMIN,
                      TCPTV_PERSMAX);
  tcp_timer_activate(tp, TT_PERSIST, tt);
  if (tp->t_rxtshift < TCP_MAXRXTSHIFT) tp->t_rxtshift++;
}

static void tcp_timer_delack(tcpcb* tp) {
  tp->t_inpcb->inp_lock.AssertHeld();
  tp->t_flags |= TF_ACKNOW;
  tp->t_inpcb->inp_pcbinfo->tcps.tcps_delack.add(1);
  tcp_output(tp);
}

static void tcp_timer_rexmt(tcpcb* tp) {
  tp->t_inpcb->inp_lock.AssertHeld();
  InetState& in = *tp->t_inpcb->inp_pcbinfo;
  if (++tp->t_rxtshift > TCP_MAXRXTSHIFT) {
    tp->t_rxtshift = TCP_MAXRXTSHIFT;
    in.tcps.tcps_timeoutdrop.add(1);
    tcp_drop(tp, tp->t_softerror ? tp->t_softerror : ETIMEDOUT);
    return;
  }
  in.tcps.tcps_rexmttimeo.add(1);
  int rexmt;
  if (tp->t_state == TCPS_SYN_SENT || tp->t_state == TCPS_SYN_RECEIVED)
    rexmt = in.tcp_rexmit_initial.load() * tcp_backoff[tp->t_rxtshift];
  else
    rexmt = tcp_rexmit_cur(tp) * tcp_backoff[tp->t_rxtshift];
  tp->t_rxtcur = std::clamp(rexmt, in.tcp_rexmit_min.load(), TCPTV_REXMTMAX);
  // After several timeouts the RTT estimate is probably wrong: fold the
  // smoothed RTT into the variance and start over (TCP_RTT_INVALIDATE).
  if (tp->t_rxtshift > TCP_MAXRXTSHIFT / 4) {
    tp->t_rttvar += tp->t_srtt / 2;
    tp->t_srtt = 0;
  }
  tp->snd_nxt = tp->snd_una;
  tp->snd_recover = tp->snd_max;
  tp->t_rtttime = 0;
  // Congestion: one segment, ssthresh half the flight (RFC 5681).
  uint32_t win = std::min(tp->snd_wnd, tp->snd_cwnd) / 2 / tp->t_maxseg;
  if (win < 2) win = 2;
  tp->snd_ssthresh = win * tp->t_maxseg;
  tp->snd_cwnd = tp->t_maxseg;
  tp->t_bytes_acked = 0;
  tp->t_dupacks = 0;
  tp->t_flags &= ~TF_FASTRECOVERY;
  // Go back to snd_una: the scoreboard starts over (tcp_timer_rexmt frees
  // the SACK holes).
  tcp_free_sackholes(tp);
  tcp_output(tp);
}

static void tcp_timer_persist(tcpcb* tp) {
  tp->t_inpcb->inp_lock.AssertHeld();
  InetState& in = *tp->t_inpcb->inp_pcbinfo;
  in.tcps.tcps_persisttimeo.add(1);
  tcp_setpersist(tp);
  tp->t_flags |= TF_FORCEDATA;
  tcp_output(tp);
  tp->t_flags &= ~TF_FORCEDATA;
}

static void tcp_timer_keep(tcpcb* tp) {
  tp->t_inpcb->inp_lock.AssertHeld();
  InetState& in = *tp->t_inpcb->inp_pcbinfo;
  in.tcps.tcps_keeptimeo.add(1);
  if (tp->t_state < TCPS_ESTABLISHED) {
    // Connection-establishment timer (net.inet.tcp.keepinit).
    in.tcps.tcps_keepdrops.add(1);
    tcp_drop(tp, ETIMEDOUT);
    return;
  }
  socket* so = tp->t_inpcb->inp_socket;
  bool keepalive = so && (so->so_options.load() & SOF_KEEPALIVE);
  if (keepalive && tp->t_state <= TCPS_CLOSE_WAIT) {
    int64_t idle = ticks_now() - tp->t_rcvtime;
    if (idle >= in.tcp_keepidle.load() +
                    static_cast<int64_t>(in.tcp_keepcnt.load()) *
                        in.tcp_keepintvl.load()) {
      in.tcps.tcps_keepdrops.add(1);
      tcp_drop(tp, ETIMEDOUT);
      return;
    }
    in.tcps.tcps_keepprobe.add(1);
    inpcb* inp = tp->t_inpcb;
    tcp_respond(in.k, tp, inp->inp_laddr, inp->inp_faddr, inp->inp_lport,
                inp->inp_fport, tp->rcv_nxt, tp->snd_una - 1, TH_ACK, 0);
    tcp_timer_activate(tp, TT_KEEP, in.tcp_keepintvl.load());
  } else if (keepalive) {
    tcp_timer_activate(tp, TT_KEEP, in.tcp_keepidle.load());
  }
}

static void tcp_timer_2msl(tcpcb* tp) {
  tp->t_inpcb->inp_lock.AssertHeld();
  InetState& in = *tp->t_inpcb->inp_pcbinfo;
  if (tp->t_state == TCPS_TIME_WAIT) {
    tcp_close(tp);
    return;
  }
  if (tp->t_state == TCPS_FIN_WAIT_2) {
    int64_t idle = ticks_now() - tp->t_rcvtime;
    int to = in.tcp_finwait2_timeout.load();
    if (idle >= to)
      tcp_close(tp);
    else
      tcp_timer_activate(tp, TT_2MSL, to - idle);
  }
}

static void tcp_timer_run(void* arg) {
  auto* inp = static_cast<inpcb*>(arg);
  // Runs with inp_lock held (callout_init_mtx) and releases it itself.
  inp->inp_lock.AssertHeld();
  tcpcb* tp = intotcpcb(inp);
  if (tp == nullptr || (inp->inp_flags.load() & INP_FREED)) {
    inp_unlock(inp);
    return;
  }
  tp->t_callout_at = 0;
  // An offloaded connection's timers run on its device's engine thread.
  tp->t_inpcb->inp_lock.AssertHeld();
  if (!(tp->t_flags & TF_TOE) || tcp_offload_timer(tp) != 0) tcp_timer_expire(tp);
  inp_unlock(inp);
}

void tcp_timer_expire(tcpcb* tp) {
  inpcb* inp = tp->t_inpcb;
  inp->inp_lock.AssertHeld();
  tp->t_callout_at = 0;
  int64_t now = ticks_now();
  static void (*const handlers[TT_N])(tcpcb*) = {
      tcp_timer_delack, tcp_timer_rexmt, tcp_timer_persist, tcp_timer_keep,
      tcp_timer_2msl};
  for (int i = 0; i < TT_N; i++) {
    if (tp->t_timers[i] == 0 || tp->t_timers[i] > now) continue;
    tp->t_timers[i] = 0;
    handlers[i](tp);
    if (tp->t_state == TCPS_CLOSED || (inp->inp_flags.load() & INP_DROPPED))
      break;
  }
  if (tp->t_state != TCPS_CLOSED && !(inp->inp_flags.load() & INP_DROPPED))
    tcp_callout_arm(tp);
}

}  // namespace uk
