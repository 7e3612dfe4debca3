// TCP user requests: the protocol switch the socket layer calls. Mirrors
// FreeBSD's sys/netinet/tcp_usrreq.c (tcp_usr_attach ... tcp_usr_ready,
// tcp_connect, tcp_disconnect, tcp_usrclosed, tcp_ctloutput).
#include <arpa/inet.h>


#include <algorithm>
#include <cerrno>

#include "sys/kern/kernel.h"
#include "sys/compat/linux/linux_tls.h"
#include "sys/kern/uipc_ktls.h"
#include "sys/net/if_var.h"
#include "sys/netinet/tcp_offload.h"
#include "sys/netinet/tcp_var.h"
#include "sys/sys/ktls.h"

namespace uk {

namespace {

// Every entry point below locks the socket's pcb (so_pcb, set at attach and
// kept until the socket is freed) and works on its tcpcb. The analysis
// cannot see that tp->t_inpcb is that pcb, so each says so with
// AssertHeld() once it has the tcpcb.
int tcp_usr_attach(socket* so, int) {
  InetState* in = so->so_k.net->inet;
  unsigned maxsb = so->so_k.net->maxsockbuf.load();
  // soreserve() unless sonewconn() already gave the listener's sizes:
  // net.inet.tcp.sendspace/recvspace beyond what kern.ipc.maxsockbuf allows
  // fail the socket with ENOBUFS (a buffer left at zero would stall every
  // transfer).
  bool reserve = false;
  for (sockbuf* sb : {&so->so_snd, &so->so_rcv}) {
    MutexLock l(&sb->sb_mtx);
    reserve |= sb->sb_hiwat == 0;
  }
  int space[2] = {in->tcp_sendspace.load(), in->tcp_recvspace.load()};
  if (reserve && (space[0] <= 0 || space[1] <= 0)) return ENOBUFS;
  {
    MutexLock l(&so->so_snd.sb_mtx);
    if (reserve) {
      if (int e = sbreserve_locked(&so->so_snd, static_cast<unsigned>(space[0]), maxsb))
        return e;
    }
    so->so_snd.sb_flags |= SB_AUTOSIZE | SB_AUTOLOWAT;
    if (so->so_snd.sb_lowat == 0) so->so_snd.sb_lowat = MCLBYTES;
  }
  {
    MutexLock l(&so->so_rcv.sb_mtx);
    if (reserve) {
      if (int e = sbreserve_locked(&so->so_rcv, static_cast<unsigned>(space[1]), maxsb))
        return e;
    }
    so->so_rcv.sb_flags |= SB_AUTOSIZE;
    if (so->so_rcv.sb_lowat == 0) so->so_rcv.sb_lowat = 1;
  }
  RefPtr<inpcb> inp = in_pcballoc(so, in);
  inp->inp_lock.Lock();
  tcp_newtcpcb(inp.get());
  inp->inp_lock.Unlock();
  so->so_pcb = inp.leak();
  return 0;
}

void tcp_usr_detach(socket*) {}

int tcp_usr_bind(socket* so, const sockaddr* nam) {
  const auto* sin = reinterpret_cast<const sockaddr_in*>(nam);
  if (IN_MULTICAST(ntohl(sin->sin_addr.s_addr))) return EAFNOSUPPORT;
  inpcb* inp = so->so_pcb;
  inp->inp_lock.Lock();
  tcpcb* tp = intotcpcb(inp);
  tp->t_inpcb->inp_lock.AssertHeld();
  int error;
  if ((inp->inp_flags.load() & INP_DROPPED) || tp->t_state != TCPS_CLOSED)
    error = EINVAL;
  else
    error = in_pcbbind(inp, sin, so->so_options.load() & SOF_REUSEADDR);
  inp_unlock(inp);
  return error;
}

int tcp_usr_listen(socket* so, int backlog) {
  inpcb* inp = so->so_pcb;
  inp->inp_lock.Lock();
  tcpcb* tp = intotcpcb(inp);
  tp->t_inpcb->inp_lock.AssertHeld();
  int error = 0;
  // KTLS: a socket with a TX or RX session cannot listen
  // (solisten_proto_check).
  bool ktls;
  {
    MutexLock l(&so->so_snd.sb_mtx);
    ktls = so->so_snd.sb_tls_info != nullptr;
  }
  {
    MutexLock l(&so->so_rcv.sb_mtx);
    ktls = ktls || so->so_rcv.sb_tls_info != nullptr;
  }
  if (ktls ||
      (inp->inp_flags.load() & INP_DROPPED) ||
      (tp->t_state != TCPS_CLOSED && tp->t_state != TCPS_LISTEN)) {
    error = EINVAL;
  } else if (inp->inp_lport == 0) {
    error = in_pcbbind(inp, nullptr, false);
  }
  if (error == 0) {
    int somax = so->so_k.net->somaxconn.load();
    if (backlog < 0 || backlog > somax) backlog = somax;
    ListenQueue* q = so->make_listen_queue();
    {
      MutexLock l(&q->mu);
      q->qlimit = backlog;
    }
    tcp_state_change(tp, TCPS_LISTEN);
    in_pcblisten(inp);
    so->so_options.fetch_or(SOF_ACCEPTCONN);
  }
  inp_unlock(inp);
  return error;
}

int tcp_connect(tcpcb* tp, const sockaddr_in* sin)
    ABSL_EXCLUSIVE_LOCKS_REQUIRED(tp->t_inpcb->inp_lock) {
  inpcb* inp = tp->t_inpcb;
  inp->inp_lock.AssertHeld();
  InetState& in = *inp->inp_pcbinfo;
  socket* so = inp->inp_socket;
  if (sin->sin_addr.s_addr == INADDR_BROADCAST &&
      !(so->so_options.load() & SOF_BROADCAST))
    return EACCES;
  if (IN_MULTICAST(ntohl(sin->sin_addr.s_addr))) return EAFNOSUPPORT;
  if (int e = in_pcbconnect(inp, sin)) return e;
  while (tp->request_r_scale < TCP_MAX_WINSHIFT &&
         (static_cast<unsigned>(TCP_MAXWIN) << tp->request_r_scale) <
             static_cast<unsigned>(in.k.net->maxsockbuf.load()))
    tp->request_r_scale++;
  soisconnecting(so);
  in.tcps.tcps_connattempt.add(1);
  tcp_state_change(tp, TCPS_SYN_SENT);
  tp->iss = tcp_new_isn(in.k);
  tp->snd_una = tp->snd_nxt = tp->snd_max = tp->snd_recover = tp->snd_up = tp->iss;
  tp->snd_fack = tp->iss;
  tcp_mss(tp, 0);
  tp->t_rxtcur = in.tcp_rexmit_initial.load();
  tcp_timer_activate(tp, TT_KEEP, in.tcp_keepinit.load());
  return 0;
}

int tcp_usr_connect(socket* so, const sockaddr* nam) {
  const auto* sin = reinterpret_cast<const sockaddr_in*>(nam);
  inpcb* inp = so->so_pcb;
  inp->inp_lock.Lock();
  tcpcb* tp = intotcpcb(inp);
  tp->t_inpcb->inp_lock.AssertHeld();
  int error;
  if (inp->inp_flags.load() & INP_DROPPED)
    error = ECONNREFUSED;
  else if (tp->t_state == TCPS_LISTEN)
    error = EOPNOTSUPP;
  else if (tp->t_state != TCPS_CLOSED)
    error = EISCONN;
  else
    error = tcp_connect(tp, sin);
  // Through a TOE-enabled interface the device opens the connection
  // (FreeBSD's tcp_offload_connect); the SYN then leaves from it.
  if (error == 0) tcp_offload_connect(tp);
  if (error == 0) error = tcp_output(tp) == EACCES ? EACCES : 0;
  inp_unlock(inp);
  return error;
}

int tcp_usr_accept(socket* so, sockaddr_in* nam) {
  inpcb* inp = so->so_pcb;
  inp->inp_lock.Lock();
  nam->sin_family = AF_INET;
  nam->sin_addr = inp->inp_faddr;
  nam->sin_port = inp->inp_fport;
  inp_unlock(inp);
  return 0;
}

void tcp_usrclosed(tcpcb* tp)
    ABSL_EXCLUSIVE_LOCKS_REQUIRED(tp->t_inpcb->inp_lock) {
  InetState& in = *tp->t_inpcb->inp_pcbinfo;
  switch (tp->t_state) {
    case TCPS_LISTEN:
    case TCPS_CLOSED:
    case TCPS_SYN_SENT:
      tcp_close(tp);
      return;
    case TCPS_SYN_RECEIVED:
      tp->t_flags |= TF_NEEDFIN;
      break;
    case TCPS_ESTABLISHED:
      tcp_state_change(tp, TCPS_FIN_WAIT_1);
      break;
    case TCPS_CLOSE_WAIT:
      tcp_state_change(tp, TCPS_LAST_ACK);
      break;
  }
  if (tp->t_state >= TCPS_FIN_WAIT_2) {
    if (socket* so = tp->t_inpcb->inp_socket) soisdisconnected(so);
    if (tp->t_state == TCPS_FIN_WAIT_2)
      tcp_timer_activate(tp, TT_2MSL, in.tcp_finwait2_timeout.load());
  }
}

// tcp_disconnect: unsynchronized connections just go; SO_LINGER with a zero
// timeout resets; otherwise the receive buffer is flushed and a FIN sent.
void tcp_disconnect(tcpcb* tp)
    ABSL_EXCLUSIVE_LOCKS_REQUIRED(tp->t_inpcb->inp_lock) {
  inpcb* inp = tp->t_inpcb;
  inp->inp_lock.AssertHeld();
  socket* so = inp->inp_socket;
  if (tp->t_state < TCPS_ESTABLISHED) {
    tcp_close(tp);
  } else if ((so->so_options.load() & SOF_LINGER) && so->so_linger.load() == 0) {
    tcp_drop(tp, 0);
  } else {
    soisdisconnecting(so);
    mbuf* m;
    {
      MutexLock l(&so->so_rcv.sb_mtx);
      m = sbflush_locked(&so->so_rcv);
    }
    m_freem(m);
    tcp_usrclosed(tp);
    if (!(inp->inp_flags.load() & INP_DROPPED)) tcp_output(tp);
  }
}

int tcp_usr_disconnect(socket* so) {
  inpcb* inp = so->so_pcb;
  inp->inp_lock.Lock();
  tcpcb* tp = intotcpcb(inp);
  tp->t_inpcb->inp_lock.AssertHeld();
  if (!(inp->inp_flags.load() & INP_DROPPED) && tp->t_state != TCPS_CLOSED &&
      tp->t_state != TCPS_TIME_WAIT)
    tcp_disconnect(tp);
  inp_unlock(inp);
  return 0;
}

int tcp_usr_shutdown(socket* so) {
  inpcb* inp = so->so_pcb;
  inp->inp_lock.Lock();
  tcpcb* tp = intotcpcb(inp);
  tp->t_inpcb->inp_lock.AssertHeld();
  int error = 0;
  if (inp->inp_flags.load() & INP_DROPPED) {
    error = ECONNRESET;
  } else {
    socantsendmore(so);
    tcp_usrclosed(tp);
    if (!(inp->inp_flags.load() & INP_DROPPED)) tcp_output(tp);
  }
  inp_unlock(inp);
  return error;
}

int tcp_usr_send(socket* so, int flags, mbuf* m, const sockaddr* nam,
                 mbuf* control) {
  inpcb* inp = so->so_pcb;
  inp->inp_lock.Lock();
  tcpcb* tp = intotcpcb(inp);
  tp->t_inpcb->inp_lock.AssertHeld();
  int error = 0;
  // Not-ready data (KTLS records, sendfile pages) that cannot be queued is
  // left to the caller, which owns its completion (FreeBSD tcp_usr_send);
  // an error return with PRUS_NOTREADY always means "not queued".
  auto free_data = [flags](mbuf* d) {
    if (!(flags & PRUS_NOTREADY)) m_freem(d);
  };
  if (control != nullptr) {
    // TCP carries no control data. (KTLS's TLS_SET_RECORD_TYPE never gets
    // here: sosend_generic consumes it at its "KTLS TX (1)" point.)
    if (control->m_len > 0) {
      m_freem(control);
      free_data(m);
      inp_unlock(inp);
      return EINVAL;
    }
    m_freem(control);
  }
  if (inp->inp_flags.load() & INP_DROPPED) {
    free_data(m);
    inp_unlock(inp);
    return ECONNRESET;
  }
  if (nam != nullptr && tp->t_state < TCPS_SYN_SENT) {
    // Implied connect (PR_IMPLOPCL): sendto() on an unconnected socket.
    const auto* sin = reinterpret_cast<const sockaddr_in*>(nam);
    if (sin->sin_family != AF_INET) {
      error = EAFNOSUPPORT;
    } else if (tp->t_state == TCPS_LISTEN) {
      error = EINVAL;
    } else {
      error = tcp_connect(tp, sin);
    }
    if (error) {
      free_data(m);
      inp_unlock(inp);
      return error;
    }
  }
  if (m != nullptr) {
    so->so_snd.sb_mtx.Lock();
    sbappendstream_locked(&so->so_snd, m, flags);
    so->so_snd.sb_mtx.Unlock();
  }
  if (flags & PRUS_OOB) tp->snd_up = tp->snd_una + sbavail(&so->so_snd);
  if (flags & PRUS_EOF) {
    socantsendmore(so);
    tcp_usrclosed(tp);
  }
  // Not-ready data (KTLS records awaiting encryption, sendfile pages being
  // read) is sent by pr_ready later.
  if (!(flags & PRUS_NOTREADY) && !(inp->inp_flags.load() & INP_DROPPED)) {
    if (flags & PRUS_MORETOCOME) tp->t_flags |= TF_MORETOCOME;
    if (flags & PRUS_OOB) tp->t_flags |= TF_FORCEDATA;
    error = tcp_output(tp);
    tp->t_flags &= ~(TF_MORETOCOME | TF_FORCEDATA);
    if (error == ENOBUFS) error = 0;
  }
  inp_unlock(inp);
  return error == EACCES ? EACCES : 0;
}

// Frees |count| not-ready units starting at m (mb_free_notready).
void mb_free_notready(mbuf* m, int count) {
  while (m != nullptr && count > 0) {
    if ((m->m_flags & M_EXTPG) && m->m_epg_npgs != 0)
      count -= m->m_epg_nrdy;
    else
      count--;
    mbuf* n = m->m_next;
    m->m_next = nullptr;
    m_free(m);
    m = n;
  }
}

int tcp_usr_ready(socket* so, mbuf* m, int count) {
  inpcb* inp = so->so_pcb;
  if (inp == nullptr) {
    mb_free_notready(m, count);
    return ECONNRESET;
  }
  inp->inp_lock.Lock();
  if (inp->inp_flags.load() & INP_DROPPED) {
    inp_unlock(inp);
    mb_free_notready(m, count);
    return ECONNRESET;
  }
  int error;
  {
    MutexLock l(&so->so_snd.sb_mtx);
    error = sbready(&so->so_snd, m, count);
  }
  if (error == 0) {
    tcpcb* tp = intotcpcb(inp);
    tp->t_inpcb->inp_lock.AssertHeld();
    error = tcp_output(tp);
  } else if (error == EINPROGRESS) {
    error = 0;
  }
  inp_unlock(inp);
  return error;
}

void tcp_usr_rcvd(socket* so, int) {
  inpcb* inp = so->so_pcb;
  inp->inp_lock.Lock();
  tcpcb* tp = intotcpcb(inp);
  tp->t_inpcb->inp_lock.AssertHeld();
  if (!(inp->inp_flags.load() & INP_DROPPED) &&
      tp->t_state >= TCPS_ESTABLISHED && tp->t_state < TCPS_TIME_WAIT)
    tcp_output(tp);
  inp_unlock(inp);
}

void tcp_usr_abort(socket* so) {
  inpcb* inp = so->so_pcb;
  inp->inp_lock.Lock();
  tcpcb* tp = intotcpcb(inp);
  tp->t_inpcb->inp_lock.AssertHeld();
  so->so_state.fetch_or(SS_NOFDREF);
  if (!(inp->inp_flags.load() & INP_DROPPED) && tp->t_state != TCPS_CLOSED)
    tcp_drop(tp, ECONNABORTED);
  if (!(inp->inp_flags.load() & INP_FREED) && tp->t_state == TCPS_CLOSED) {
    tcp_detach_socket(inp);
    in_pcbfree(inp);
  }
  inp_unlock(inp);
}

void tcp_usr_close(socket* so) {
  inpcb* inp = so->so_pcb;
  inp->inp_lock.Lock();
  tcpcb* tp = intotcpcb(inp);
  tp->t_inpcb->inp_lock.AssertHeld();
  if (!(inp->inp_flags.load() & INP_DROPPED) && tp->t_state != TCPS_CLOSED &&
      tp->t_state != TCPS_TIME_WAIT) {
    if (tp->t_state == TCPS_LISTEN)
      tcp_close(tp);
    else
      tcp_disconnect(tp);
  }
  // A pcb that is gone or only waiting out TIME_WAIT no longer needs the
  // socket.
  if (tp->t_state == TCPS_CLOSED || tp->t_state == TCPS_TIME_WAIT ||
      (inp->inp_flags.load() & INP_DROPPED)) {
    tcp_detach_socket(inp);
    if (tp->t_state == TCPS_CLOSED && !(inp->inp_flags.load() & INP_FREED))
      in_pcbfree(inp);
  }
  inp_unlock(inp);
}

int tcp_usr_sockaddr(socket* so, sockaddr_in* nam) {
  inpcb* inp = so->so_pcb;
  inp->inp_lock.Lock();
  nam->sin_family = AF_INET;
  nam->sin_addr = inp->inp_laddr;
  nam->sin_port = inp->inp_lport;
  inp_unlock(inp);
  return 0;
}

int tcp_usr_peeraddr(socket* so, sockaddr_in* nam) {
  inpcb* inp = so->so_pcb;
  inp->inp_lock.Lock();
  nam->sin_family = AF_INET;
  nam->sin_addr = inp->inp_faddr;
  nam->sin_port = inp->inp_fport;
  inp_unlock(inp);
  return 0;
}

int tcp_ctloutput(socket* so, sockopt* sopt) {
  if (sopt->sopt_level == SOL_SOCKET) {
    // SO_KEEPALIVE changed: (re)arm the keepalive timer.
    inpcb* inp = so->so_pcb;
    inp->inp_lock.Lock();
    tcpcb* tp = intotcpcb(inp);
    tp->t_inpcb->inp_lock.AssertHeld();
    InetState& in = *inp->inp_pcbinfo;
    if (sopt->sopt_name == SO_KEEPALIVE && tp->t_state == TCPS_ESTABLISHED)
      tcp_timer_activate(tp, TT_KEEP, (so->so_options.load() & SOF_KEEPALIVE)
                                          ? in.tcp_keepidle.load()
                                          : 0);
    inp_unlock(inp);
    return 0;
  }
  // The Linux personality: TCP_ULP and, once attached, SOL_TLS.
  if (sopt->sopt_level == LINUX_SOL_TLS ||
      (sopt->sopt_level == IPPROTO_TCP && sopt->sopt_name == LINUX_TCP_ULP))
    return linux_tls_ctloutput(so, sopt);
  if (sopt->sopt_level != IPPROTO_TCP) return ENOPROTOOPT;
  int optval = 0;
  int error = 0;
  if (sopt->sopt_dir == sockopt::SOPT_SET) {
    switch (sopt->sopt_name) {
      case TCP_NODELAY:
      case TCP_MAXSEG:
        if ((error = sooptcopyin(sopt, &optval, sizeof optval, sizeof optval)))
          return error;
        break;
      // KTLS (FreeBSD tcp_default_ctloutput): handled without the pcb lock.
      case TCP_TXTLS_ENABLE: {
        // The 56-byte v0 layout (no rec_seq) is still accepted.
        tls_enable tls{};
        if (sopt->sopt_valsize == sizeof(tls_enable_v0)) {
          tls_enable_v0 v0;
          if ((error = sooptcopyin(sopt, &v0, sizeof v0, sizeof v0)))
            return error;
          memcpy(&tls, &v0, sizeof v0);
        } else if ((error = sooptcopyin(sopt, &tls, sizeof tls, sizeof tls))) {
          return error;
        }
        return ktls_enable_tx(so, &tls);
      }
      case TCP_TXTLS_MODE:
        if ((error = sooptcopyin(sopt, &optval, sizeof optval, sizeof optval)))
          return error;
        return ktls_set_tx_mode(so, optval);
      case TCP_RXTLS_ENABLE: {
        tls_enable tls{};
        if ((error = sooptcopyin(sopt, &tls, sizeof tls, sizeof tls)))
          return error;
        return ktls_enable_rx(so, &tls);
      }
      default:
        return ENOPROTOOPT;
    }
  }
  if (sopt->sopt_dir == sockopt::SOPT_GET &&
      (sopt->sopt_name == TCP_TXTLS_MODE || sopt->sopt_name == TCP_RXTLS_MODE)) {
    error = sopt->sopt_name == TCP_TXTLS_MODE ? ktls_get_tx_mode(so, &optval)
                                              : ktls_get_rx_mode(so, &optval);
    if (error == 0) error = sooptcopyout(sopt, &optval, sizeof optval);
    return error;
  }
  inpcb* inp = so->so_pcb;
  inp->inp_lock.Lock();
  tcpcb* tp = intotcpcb(inp);
  tp->t_inpcb->inp_lock.AssertHeld();
  InetState& in = *inp->inp_pcbinfo;
  if (sopt->sopt_dir == sockopt::SOPT_SET) {
    switch (sopt->sopt_name) {
      case TCP_NODELAY:
        if (optval)
          tp->t_flags |= TF_NODELAY;
        else
          tp->t_flags &= ~TF_NODELAY;
        if (optval && tp->t_state >= TCPS_ESTABLISHED &&
            !(inp->inp_flags.load() & INP_DROPPED))
          tcp_output(tp);
        break;
      case TCP_MAXSEG:
        if (optval > 0 && optval <= tp->t_maxseg &&
            optval + 40 >= in.tcp_minmss.load()) {
          tp->t_user_maxseg = optval;
          tp->t_maxseg = optval;
        } else {
          error = EINVAL;
        }
        break;
    }
  } else {
    switch (sopt->sopt_name) {
      case TCP_NODELAY:
        optval = (tp->t_flags & TF_NODELAY) ? 1 : 0;
        break;
      case TCP_MAXSEG:
        optval = tp->t_maxseg;
        break;
      default:
        error = ENOPROTOOPT;
    }
  }
  inp_unlock(inp);
  if (error == 0 && sopt->sopt_dir == sockopt::SOPT_GET)
    error = sooptcopyout(sopt, &optval, sizeof optval);
  return error;
}

}  // namespace

const protosw tcp_protosw = {
    .pr_type = SOCK_STREAM,
    .pr_protocol = IPPROTO_TCP,
    .pr_flags = PR_CONNREQUIRED | PR_IMPLOPCL | PR_WANTRCVD,
    .pr_attach = tcp_usr_attach,
    .pr_detach = tcp_usr_detach,
    .pr_bind = tcp_usr_bind,
    .pr_listen = tcp_usr_listen,
    .pr_connect = tcp_usr_connect,
    .pr_accept = tcp_usr_accept,
    .pr_disconnect = tcp_usr_disconnect,
    .pr_shutdown = tcp_usr_shutdown,
    .pr_send = tcp_usr_send,
    .pr_ready = tcp_usr_ready,
    .pr_rcvd = tcp_usr_rcvd,
    .pr_abort = tcp_usr_abort,
    .pr_close = tcp_usr_close,
    .pr_sockaddr = tcp_usr_sockaddr,
    .pr_peeraddr = tcp_usr_peeraddr,
    .pr_ctloutput = tcp_ctloutput,
};

}  // namespace uk
