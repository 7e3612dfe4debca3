// The socket layer. Mirrors FreeBSD's sys/kern/uipc_socket.c (socreate,
// sobind, solisten, soconnect, soaccept, soclose, sosend_generic,
// soreceive_stream, soreceive_generic, sosetopt, sogetopt, sopoll_generic)
// and the state-change helpers of uipc_socket.c / uipc_sockbuf.c.
#include "sys/kern/uipc_socket.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/time.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "sys/kern/kern_event.h"
#include "sys/kern/kern_proc.h"
#include "sys/kern/kernel.h"
#include "sys/compat/linux/linux_tls.h"
#include "sys/kern/uipc_ktls.h"
#include "sys/net/if_var.h"
#include "sys/netinet/in_pcb.h"
#include "sys/netinet/tcp_var.h"

namespace uk {

// ---------------------------------------------------------------------------
// Creation and lifetime.

socket::socket(kernel& k) : file(DTYPE_SOCKET), so_k(k) {
  so_rcv.sb_so = this;
  so_snd.sb_so = this;
}

socket::~socket() {
  sbdestroy(&so_rcv);
  sbdestroy(&so_snd);
  if (so_pcb != nullptr) release_ref(so_pcb);
}

bool so_nonblocking(const socket* so) {
  return (so->f_flag.load(std::memory_order_relaxed) & O_NONBLOCK) != 0;
}

int pffindproto(int dom, int type, int proto, const protosw** out) {
  if (dom != AF_INET) return EAFNOSUPPORT;  // AF_INET6: not built yet
  if (type == SOCK_STREAM) {
    if (proto == 0 || proto == IPPROTO_TCP) {
      *out = &tcp_protosw;
      return 0;
    }
    return EPROTONOSUPPORT;
  }
  // As socreate: an unsupported type asked for with the default protocol
  // is EPROTOTYPE, anything else EPROTONOSUPPORT.
  if (proto == 0 && type != 0) return EPROTOTYPE;
  return EPROTONOSUPPORT;
}

int socreate(kernel& k, int dom, int type, int proto, RefPtr<socket>* out) {
  const protosw* pr = nullptr;
  if (int e = pffindproto(dom, type, proto, &pr)) return e;
  if (k.net == nullptr) return EAFNOSUPPORT;
  auto so = make_ref<socket>(k);
  so->so_type = static_cast<short>(type);
  so->so_proto = pr;
  if (int e = pr->pr_attach(so.get(), proto)) return e;
  *out = std::move(so);
  return 0;
}

int sobind(socket* so, const sockaddr* nam, socklen_t len) {
  if (nam == nullptr) return EFAULT;
  if (len < static_cast<socklen_t>(sizeof(sockaddr_in))) return EINVAL;
  if (nam->sa_family != AF_INET) return EAFNOSUPPORT;
  return so->so_proto->pr_bind(so, nam);
}

int solisten(socket* so, int backlog) {
  int error = so->so_proto->pr_listen(so, backlog);
  if (error == 0) knote_solisten(so);
  return error;
}

int soconnect(socket* so, const sockaddr* nam, socklen_t len) {
  if (nam == nullptr) return EFAULT;
  if (len < static_cast<socklen_t>(sizeof(sockaddr_in))) return EINVAL;
  if (nam->sa_family != AF_INET) return EAFNOSUPPORT;
  if (so->has_listen_queue()) return EOPNOTSUPP;  // listening
  int st = so->so_state.load();
  if (st & SS_ISCONNECTING) return EALREADY;
  if (st & (SS_ISCONNECTED | SS_ISDISCONNECTING)) return EISCONN;
  int error = so->so_proto->pr_connect(so, nam);
  if (error) return error;
  if (so_nonblocking(so)) {
    // The handshake may already have finished (loopback is quick), but
    // FreeBSD still reports EINPROGRESS unless connected synchronously.
    if (so->so_state.load() & SS_ISCONNECTED) return 0;
    return EINPROGRESS;
  }
  MutexLock l(&so->so_lock);
  while ((so->so_state.load() & SS_ISCONNECTING) && so->so_error.load() == 0)
    so->so_cv.Wait(&so->so_lock);
  error = so->so_error.exchange(0);
  return error;
}

int soaccept(socket* head, bool nonblock, RefPtr<socket>* out,
             sockaddr_in* nam) {
  std::shared_ptr<ListenQueue> q = head->listen_queue();
  if (!q) return EINVAL;
  RefPtr<socket> so;
  {
    MutexLock l(&q->mu);
    while (q->comp.empty()) {
      if (q->closed) return ECONNABORTED;
      if (int e = head->so_error.exchange(0)) return e;
      if (nonblock) return EWOULDBLOCK;
      q->cv.Wait(&q->mu);
    }
    so = std::move(q->comp.front());
    q->comp.pop_front();
    so->so_qstate_ = SQ_NONE;
  }
  so->so_state.fetch_and(~SS_NOFDREF);
  // Mirrors kern_accept4 with ACCEPT4_INHERIT: O_NONBLOCK is inherited.
  so->f_flag.store(head->f_flag.load());
  sockaddr_in sin{};
  so->so_proto->pr_accept(so.get(), &sin);
  if (nam) *nam = sin;
  *out = std::move(so);
  return 0;
}

void soabort(socket* so) { so->so_proto->pr_abort(so); }

int soshutdown(socket* so, int how) {
  if (how != SHUT_RD && how != SHUT_WR && how != SHUT_RDWR) return EINVAL;
  if ((so->so_state.load() &
       (SS_ISCONNECTED | SS_ISCONNECTING | SS_ISDISCONNECTING)) == 0)
    return ENOTCONN;
  if (how != SHUT_WR) {
    // sorflush: no more data, and what is queued is discarded.
    MutexLock io(&so->so_rcv.sb_iolock);
    mbuf* m;
    {
      MutexLock l(&so->so_rcv.sb_mtx);
      so->so_rcv.sb_state |= SBS_CANTRCVMORE;
      m = sbflush_locked(&so->so_rcv);
    }
    m_freem(m);
    sorwakeup(so);
  }
  if (how != SHUT_RD) return so->so_proto->pr_shutdown(so);
  return 0;
}

int soclose(socket* so) {
  linux_tls_soclose(so);  // Linux ends its TLS context at close
  if (std::shared_ptr<ListenQueue> q = so->listen_queue()) {
    // Abort the connections nobody accepted (soclose's sol_comp walk).
    std::deque<RefPtr<socket>> comp;
    std::list<RefPtr<socket>> incomp;
    {
      MutexLock l(&q->mu);
      q->closed = true;
      comp.swap(q->comp);
      incomp.swap(q->incomp);
      for (auto& c : comp) c->so_qstate_ = SQ_NONE;
      for (auto& c : incomp) c->so_qstate_ = SQ_NONE;
      q->cv.SignalAll();
    }
    for (auto& c : comp) soabort(c.get());
    for (auto& c : incomp) soabort(c.get());
  }
  int st = so->so_state.load();
  if ((st & SS_ISCONNECTED) && (so->so_options.load() & SOF_LINGER) &&
      so->so_linger.load() > 0 && !so_nonblocking(so)) {
    // SO_LINGER: start the disconnect and wait for it up to so_linger s.
    so->so_proto->pr_disconnect(so);
    absl::Time deadline = absl::Now() + absl::Seconds(so->so_linger.load());
    MutexLock l(&so->so_lock);
    while (so->so_state.load() & SS_ISCONNECTED) {
      if (so->so_cv.WaitWithTimeout(&so->so_lock, deadline - absl::Now()) &&
          absl::Now() >= deadline)
        break;
    }
  }
  so->so_state.fetch_or(SS_NOFDREF);
  so->so_proto->pr_close(so);
  return 0;
}

int socket::fo_close() { return soclose(this); }

// ---------------------------------------------------------------------------
// Wakeups.

static void so_selwakeup(socket* so) {
  if (so->so_k.procs) so->so_k.procs->sel.wakeup();
}

static void sowakeup_locked(socket* so, sockbuf* sb, bool sleepers = true)
    ABSL_UNLOCK_FUNCTION(sb->sb_mtx) {
  if (sleepers) sb->sb_cv.SignalAll();
  if (sb->sb_flags & SB_KNOTE) knote_sockbuf(so, sb);
  bool sel = (sb->sb_flags & SB_SEL) != 0;
  sb->sb_flags &= ~SB_SEL;
  sb->sb_mtx.Unlock();
  if (sel) so_selwakeup(so);
}

void sorwakeup_locked(socket* so) { sowakeup_locked(so, &so->so_rcv); }
void sowwakeup_locked(socket* so) { sowakeup_locked(so, &so->so_snd); }
void sowwakeup_acked_locked(socket* so) {
  const long need = so->so_snd.sb_waitspace;
  sowakeup_locked(so, &so->so_snd, need == 0 || sbspace(&so->so_snd) >= need);
}

void sorwakeup(socket* so) {
  so->so_rcv.sb_mtx.Lock();
  sorwakeup_locked(so);
}

void sowwakeup(socket* so) {
  so->so_snd.sb_mtx.Lock();
  sowwakeup_locked(so);
}

void sowakeup_all(socket* so) {
  {
    MutexLock l(&so->so_lock);
    so->so_cv.SignalAll();
  }
  {
    MutexLock l(&so->so_rcv.sb_mtx);
    so->so_rcv.sb_cv.SignalAll();
    if (so->so_rcv.sb_flags & SB_KNOTE) knote_sockbuf(so, &so->so_rcv);
  }
  {
    MutexLock l(&so->so_snd.sb_mtx);
    so->so_snd.sb_cv.SignalAll();
    if (so->so_snd.sb_flags & SB_KNOTE) knote_sockbuf(so, &so->so_snd);
  }
  so_selwakeup(so);
}

int sbwait(sockbuf* sb) {
  sb->sb_flags |= SB_WAIT;
  if (sb->sb_timeo == absl::ZeroDuration()) {
    sb->sb_cv.Wait(&sb->sb_mtx);
    return 0;
  }
  absl::Time deadline = absl::Now() + sb->sb_timeo;
  if (sb->sb_cv.WaitWithTimeout(&sb->sb_mtx, sb->sb_timeo) &&
      absl::Now() >= deadline)
    return EWOULDBLOCK;
  return 0;
}

int sbwait_space(sockbuf* sb, long need) {
  sb->sb_waitspace = need;
  int error = sbwait(sb);
  sb->sb_waitspace = 0;
  return error;
}

// ---------------------------------------------------------------------------
// State changes, called by the protocol with its pcb lock held.

void soisconnecting(socket* so) {
  MutexLock l(&so->so_lock);
  int st = so->so_state.load();
  st &= ~(SS_ISCONNECTED | SS_ISDISCONNECTING);
  st |= SS_ISCONNECTING;
  so->so_state.store(st);
}

void soisconnected(socket* so) {
  {
    MutexLock l(&so->so_lock);
    int st = so->so_state.load();
    st &= ~(SS_ISCONNECTING | SS_ISDISCONNECTING | SS_ISCONFIRMING);
    st |= SS_ISCONNECTED;
    so->so_state.store(st);
    so->so_cv.SignalAll();
  }
  if (std::shared_ptr<ListenQueue> q = so->so_lq) {
    bool moved = false;
    {
      MutexLock l(&q->mu);
      if (so->so_qstate_ == SQ_INCOMP && !q->closed) {
        for (auto it = q->incomp.begin(); it != q->incomp.end(); ++it) {
          if (it->get() == so) {
            q->comp.push_back(std::move(*it));
            q->incomp.erase(it);
            so->so_qstate_ = SQ_COMP;
            moved = true;
            break;
          }
        }
        q->cv.SignalAll();
        // The listener's EVFILT_READ knotes (filt_soread's sol_qlen).
        if (moved && !q->sol_sel.empty()) knote_listenq(q.get());
      }
    }
    if (moved) so_selwakeup(so);
    return;
  }
  sorwakeup(so);
  sowwakeup(so);
}

void soisdisconnecting(socket* so) {
  {
    MutexLock l(&so->so_lock);
    int st = so->so_state.load();
    st &= ~SS_ISCONNECTING;
    st |= SS_ISDISCONNECTING;
    so->so_state.store(st);
    so->so_cv.SignalAll();
  }
  {
    so->so_snd.sb_mtx.Lock();
    so->so_snd.sb_state |= SBS_CANTSENDMORE;
    sowwakeup_locked(so);
  }
  {
    so->so_rcv.sb_mtx.Lock();
    so->so_rcv.sb_state |= SBS_CANTRCVMORE;
    sorwakeup_locked(so);
  }
}

void soisdisconnected(socket* so) {
  {
    MutexLock l(&so->so_lock);
    int st = so->so_state.load();
    st &= ~(SS_ISCONNECTING | SS_ISCONNECTED | SS_ISDISCONNECTING);
    st |= SS_ISDISCONNECTED;
    so->so_state.store(st);
    so->so_cv.SignalAll();
  }
  // The send side first: a reader woken by the receive side may write
  // next and must then see EPIPE, not a half-updated socket.
  mbuf* m;
  {
    so->so_snd.sb_mtx.Lock();
    so->so_snd.sb_state |= SBS_CANTSENDMORE;
    // Unsent data can never go now (sbdrop of sb_ccc in FreeBSD).
    m = sbcut_locked(&so->so_snd, static_cast<int>(so->so_snd.sb_ccc));
    sowwakeup_locked(so);
  }
  m_freem(m);
  {
    so->so_rcv.sb_mtx.Lock();
    so->so_rcv.sb_state |= SBS_CANTRCVMORE;
    sorwakeup_locked(so);
  }
  // A connection that died before accept() leaves the listen queue.
  if (std::shared_ptr<ListenQueue> q = so->so_lq) {
    RefPtr<socket> drop;
    MutexLock l(&q->mu);
    if (so->so_qstate_ == SQ_INCOMP) {
      for (auto it = q->incomp.begin(); it != q->incomp.end(); ++it) {
        if (it->get() == so) {
          drop = std::move(*it);
          q->incomp.erase(it);
          break;
        }
      }
      so->so_qstate_ = SQ_NONE;
      // drop goes out of scope with q->mu held; the pcb still holds a
      // reference (inp_socket), so this is never the last one.
    }
  }
}

void socantsendmore(socket* so) {
  so->so_snd.sb_mtx.Lock();
  so->so_snd.sb_state |= SBS_CANTSENDMORE;
  sowwakeup_locked(so);
}

void socantrcvmore_locked(socket* so) {
  so->so_rcv.sb_state |= SBS_CANTRCVMORE;
  sorwakeup_locked(so);
}

void socantrcvmore(socket* so) {
  so->so_rcv.sb_mtx.Lock();
  socantrcvmore_locked(so);
}

RefPtr<socket> sonewconn(socket* head) {
  std::shared_ptr<ListenQueue> q = head->listen_queue();
  if (!q) return nullptr;
  {
    MutexLock l(&q->mu);
    int qlen = static_cast<int>(q->comp.size() + q->incomp.size());
    // FreeBSD's sonewconn: over when more than 3/2 of the backlog waits.
    if (q->closed || qlen > 3 * q->qlimit / 2) return nullptr;
  }
  auto so = make_ref<socket>(head->so_k);
  so->so_type = head->so_type;
  so->so_proto = head->so_proto;
  so->so_options.store(head->so_options.load() & ~SOF_ACCEPTCONN);
  so->so_linger.store(head->so_linger.load());
  so->so_state.store(SS_NOFDREF);
  {
    MutexLock a(&head->so_rcv.sb_mtx);
    MutexLock b(&so->so_rcv.sb_mtx);
    so->so_rcv.sb_lowat = head->so_rcv.sb_lowat;
    so->so_rcv.sb_timeo = head->so_rcv.sb_timeo;
  }
  {
    MutexLock a(&head->so_snd.sb_mtx);
    MutexLock b(&so->so_snd.sb_mtx);
    so->so_snd.sb_lowat = head->so_snd.sb_lowat;
    so->so_snd.sb_timeo = head->so_snd.sb_timeo;
  }
  // soreserve() with the listener's sizes before the protocol attaches
  // (which then keeps them); a size kern.ipc.maxsockbuf no longer allows
  // refuses the connection, as FreeBSD's sonewconn.
  unsigned rh, sh;
  short rf, sf;
  {
    MutexLock a(&head->so_rcv.sb_mtx);
    rh = head->so_rcv.sb_hiwat;
    rf = head->so_rcv.sb_flags & SB_AUTOSIZE;
  }
  {
    MutexLock a(&head->so_snd.sb_mtx);
    sh = head->so_snd.sb_hiwat;
    sf = head->so_snd.sb_flags & (SB_AUTOSIZE | SB_AUTOLOWAT);
  }
  unsigned maxsb = so->so_k.net->maxsockbuf.load();
  {
    MutexLock b(&so->so_rcv.sb_mtx);
    if (sbreserve_locked(&so->so_rcv, rh, maxsb) != 0) return nullptr;
  }
  {
    MutexLock b(&so->so_snd.sb_mtx);
    if (sbreserve_locked(&so->so_snd, sh, maxsb) != 0) return nullptr;
  }
  if (so->so_proto->pr_attach(so.get(), 0) != 0) return nullptr;
  {
    MutexLock b(&so->so_rcv.sb_mtx);
    so->so_rcv.sb_flags = (so->so_rcv.sb_flags & ~SB_AUTOSIZE) | rf;
  }
  {
    MutexLock b(&so->so_snd.sb_mtx);
    so->so_snd.sb_flags = (so->so_snd.sb_flags & ~(SB_AUTOSIZE | SB_AUTOLOWAT)) | sf;
  }
  so->so_lq = q;
  {
    MutexLock l(&q->mu);
    so->so_qstate_ = SQ_INCOMP;
    q->incomp.push_back(so);
  }
  return so;
}

// ---------------------------------------------------------------------------
// Send.

int sosend(socket* so, const sockaddr* addr, uio* uio, mbuf* top,
           mbuf* control, int flags) {
  // The Linux personality's record rules (sys/compat/linux).
  if (so->so_type == SOCK_STREAM && addr == nullptr) {
    bool handled;
    int error = linux_tls_sosend_hook(so, uio, top, control, flags, &handled);
    if (handled) return error;
  }
  return sosend_generic(so, addr, uio, top, control, flags);
}

int sosend_generic(socket* so, const sockaddr* addr, uio* uio, mbuf* top,
                   mbuf* control, int flags) {
  kernel& k = so->so_k;
  MbufPtr topp(top), ctlp(control);
  ssize_t resid = uio != nullptr ? uio->uio_resid
                                 : static_cast<ssize_t>(m_length(top, nullptr));
  // FreeBSD: MSG_EOR means nothing on a byte stream and is refused.
  if (resid < 0 || (so->so_type == SOCK_STREAM && (flags & MSG_EOR)))
    return EINVAL;
  long clen = control ? static_cast<long>(m_length(control, nullptr)) : 0;
  const bool nonblock = (flags & MSG_DONTWAIT) || so_nonblocking(so);
  bool atomic = (so->so_proto->pr_flags & PR_ATOMIC) || top != nullptr;
  int error = 0;

  // KTLS TX (1): the session, held for the call (FreeBSD sosend_generic).
  // A TLS_SET_RECORD_TYPE control message (only the first cmsg is looked
  // at, its level is not checked) sets the type of every record of this
  // call and makes the call atomic. Any other control data reaches TCP,
  // which refuses it (EINVAL). Zero-length sends frame an empty record
  // only where TLS allows one (TLS 1.0 CBC); elsewhere they are EINVAL.
  RefPtr<ktls_session> tls;
  int tls_send_flag = 0;
  int tls_enq_cnt = 0;
  uint8_t tls_rtype = TLS_RLTYPE_APP;
  {
    MutexLock l(&so->so_snd.sb_mtx);
    tls = RefPtr<ktls_session>(so->so_snd.sb_tls_info);
  }
  if (tls) {
    if (tls->mode == TCP_TLS_MODE_SW) tls_send_flag = PRUS_NOTREADY;
    if (ctlp) {
      // The control mbuf's data need not be aligned for a cmsghdr.
      cmsghdr cm{};
      if (clen >= static_cast<long>(sizeof(cmsghdr)))
        memcpy(&cm, mtod<const char*>(ctlp.get()), sizeof cm);
      if (clen >= static_cast<long>(sizeof(cmsghdr)) &&
          cm.cmsg_type == TLS_SET_RECORD_TYPE) {
        // The type byte follows the (aligned) header, if it was sent.
        if (clen > static_cast<long>(CMSG_LEN(0)))
          tls_rtype = static_cast<uint8_t>(
              mtod<const char*>(ctlp.get())[CMSG_LEN(0)]);
        clen = 0;
        ctlp.reset();
        atomic = true;
      }
    }
    if (resid == 0 && !ktls_permit_empty_frames(tls.get())) return EINVAL;
  }

  sockbuf* sb = &so->so_snd;
  if (nonblock) {
    if (!sb->sb_iolock.TryLock()) return EWOULDBLOCK;
  } else {
    sb->sb_iolock.Lock();
  }
  if (tls) {
    // A TCP_TXTLS_MODE change may have replaced the session while this
    // call waited for the I/O lock: frame with the current one, never with
    // one whose GCM nonce counter the new session continues.
    MutexLock l(&sb->sb_mtx);
    if (sb->sb_tls_info != tls.get()) {
      tls = RefPtr<ktls_session>(sb->sb_tls_info);
      tls_send_flag = tls->mode == TCP_TLS_MODE_SW ? PRUS_NOTREADY : 0;
    }
  }
  do {
    sb->sb_mtx.Lock();
    if (sb->sb_state & SBS_CANTSENDMORE) {
      sb->sb_mtx.Unlock();
      error = EPIPE;  // never SIGPIPE: uktls has no signals
      break;
    }
    if (int e = so->so_error.exchange(0)) {
      sb->sb_mtx.Unlock();
      error = e;
      break;
    }
    int st = so->so_state.load();
    if ((st & SS_ISCONNECTED) == 0) {
      if ((so->so_proto->pr_flags & PR_CONNREQUIRED) &&
          (so->so_proto->pr_flags & PR_IMPLOPCL) == 0) {
        if ((st & SS_ISCONFIRMING) == 0 && !(resid == 0 && clen != 0)) {
          sb->sb_mtx.Unlock();
          error = ENOTCONN;
          break;
        }
      } else if (addr == nullptr) {
        sb->sb_mtx.Unlock();
        error = (so->so_proto->pr_flags & PR_CONNREQUIRED) ? ENOTCONN
                                                           : EDESTADDRREQ;
        break;
      }
    }
    long space = sbspace(sb);
    if (flags & MSG_OOB) space += 1024;
    if ((atomic && resid > static_cast<long>(sb->sb_hiwat)) ||
        clen > static_cast<long>(sb->sb_hiwat)) {
      sb->sb_mtx.Unlock();
      error = EMSGSIZE;
      break;
    }
    long lowat = std::max<long>(sb->sb_lowat, 1);
    if (space < resid + clen &&
        (atomic || space < lowat || space < clen)) {
      if (nonblock) {
        sb->sb_mtx.Unlock();
        error = EWOULDBLOCK;
        break;
      }
      // The room the test above goes on with; MSG_OOB counts 1024 bytes
      // more than there is, so any ACK wakes such a sender.
      long need = atomic ? resid + clen : std::min(resid + clen, std::max(lowat, clen));
      error = sbwait_space(sb, (flags & MSG_OOB) ? 0 : need);
      sb->sb_mtx.Unlock();
      if (error) break;
      continue;
    }
    sb->sb_mtx.Unlock();
    space -= clen;
    do {
      if (uio == nullptr) {
        resid = 0;
        if (flags & MSG_EOR) topp->m_flags |= M_EOR;
      } else {
        // KTLS TX (2): one unmapped mbuf per record of at most
        // max_frame_len bytes, never spanning two calls, then framed.
        int e = 0;
        mbuf* m;
        if (tls) {
          m = m_uiotombuf(k, uio, M_WAITOK, static_cast<int>(space),
                          tls->params.max_frame_len,
                          M_EXTPG | ((flags & MSG_EOR) ? M_EOR : 0), &e);
          if (m != nullptr) ktls_frame(m, tls.get(), &tls_enq_cnt, tls_rtype);
          tls_rtype = TLS_RLTYPE_APP;
        } else {
          m = m_uiotombuf(k, uio, M_WAITOK, static_cast<int>(space), 0,
                          (flags & MSG_EOR) ? M_EOR : 0, &e);
        }
        if (m == nullptr) {
          error = e ? e : ENOBUFS;
          goto release;
        }
        topp.reset(m);
        space -= resid - uio->uio_resid;
        resid = uio->uio_resid;
      }
      int pflags = (flags & MSG_OOB) ? PRUS_OOB
                   : (false && resid == 0)  // FreeBSD MSG_EOF (T/TCP) has no host flag
                       ? PRUS_EOF
                       : (resid > 0 && space > 0) ? PRUS_MORETOCOME : 0;
      // KTLS TX (3): a SW session sends not-ready records, then hands them
      // to its worker with a socket reference; the worker calls pr_ready()
      // once they are encrypted. pr_send leaves not-ready data it could
      // not queue to the caller, which frees it (FreeBSD sosend_generic).
      mbuf* sent = topp.release();
      error = so->so_proto->pr_send(so, pflags | tls_send_flag, sent, addr,
                                    ctlp.release());
      if (tls_send_flag != 0 && sent != nullptr) {
        if (error != 0) {
          m_freem(sent);
        } else {
          so->ref();  // soref, released by the worker
          ktls_enqueue(sent, so, tls_enq_cnt);
        }
      }
      clen = 0;
      if (error) goto release;
    } while (resid && space > 0);
  } while (resid);
release:
  sb->sb_iolock.Unlock();
  return error;
}

int socket::fo_write(uio& u, int /*flags*/) {
  return sosend(this, nullptr, &u, nullptr, nullptr, 0);
}

// ---------------------------------------------------------------------------
// Receive.

int soreceive(socket* so, uio* uio, mbuf** controlp, int* flagsp) {
  // The Linux personality's record rules (sys/compat/linux).
  if (so->so_type == SOCK_STREAM) {
    bool handled;
    int error = linux_tls_soreceive_hook(so, uio, controlp, flagsp, &handled);
    if (handled) return error;
  }
  bool generic;
  {
    MutexLock l(&so->so_rcv.sb_mtx);
    generic = so->so_rcv.sb_ctl != 0 || so->so_rcv.sb_tls_info != nullptr ||
              (so->so_rcv.sb_flags & SB_TLS_RX) != 0;
  }
  if (generic) return soreceive_generic(so, uio, controlp, flagsp);
  return soreceive_stream(so, uio, controlp, flagsp);
}

int socket::fo_read(uio& u, int /*flags*/) {
  int flags = 0;
  return soreceive(this, &u, nullptr, &flags);
}

// Why a receiver should stop waiting, or 0 to keep waiting. Sets *eof.
static int so_rcv_wait_state(socket* so, bool* stop)
    ABSL_EXCLUSIVE_LOCKS_REQUIRED(so->so_rcv.sb_mtx) {
  *stop = false;
  if (so->so_error.load() != 0) {
    *stop = true;
    return so->so_error.load();
  }
  if (so->so_rcv.sb_state & SBS_CANTRCVMORE) {
    *stop = true;
    return 0;
  }
  int st = so->so_state.load();
  if ((st & (SS_ISCONNECTING | SS_ISCONNECTED | SS_ISDISCONNECTING |
             SS_ISDISCONNECTED)) == 0 &&
      (so->so_proto->pr_flags & PR_CONNREQUIRED)) {
    *stop = true;
    return ENOTCONN;
  }
  return 0;
}

int soreceive_stream(socket* so, uio* uio, mbuf** controlp, int* flagsp) {
  int flags = flagsp ? *flagsp : 0;
  if (controlp) *controlp = nullptr;
  if (flagsp) *flagsp = 0;
  if (flags & MSG_OOB) return EINVAL;  // no out-of-band data is kept
  sockbuf* sb = &so->so_rcv;
  const bool nonblock = (flags & MSG_DONTWAIT) || so_nonblocking(so);
  const bool peek = (flags & MSG_PEEK) != 0;
  if (nonblock) {
    if (!sb->sb_iolock.TryLock()) return EWOULDBLOCK;
  } else {
    sb->sb_iolock.Lock();
  }
  const ssize_t orig = uio->uio_resid;
  int error = 0;
  bool copied_any = false;
  while (uio->uio_resid > 0) {
    sb->sb_mtx.Lock();
    // Wait for data: at least min(resid, SO_RCVLOWAT) bytes, or all of
    // resid with MSG_WAITALL (delivered in pieces as it arrives).
    for (;;) {
      unsigned avail = sb->sb_acc;
      unsigned want = std::min<ssize_t>(uio->uio_resid,
                                        std::max<unsigned>(sb->sb_lowat, 1));
      if (avail >= want && avail > 0) break;
      if (avail > 0 && (flags & MSG_WAITALL)) break;
      bool stop;
      so->so_rcv.sb_mtx.AssertHeld();  // sb is &so->so_rcv
      int e = so_rcv_wait_state(so, &stop);
      if (stop) {
        if (avail > 0) break;
        if (e && !copied_any) {
          if (!peek) so->so_error.store(0);
          error = e;
        }
        sb->sb_mtx.Unlock();
        goto out;
      }
      if (copied_any && !(flags & MSG_WAITALL)) {
        sb->sb_mtx.Unlock();
        goto out;
      }
      if (nonblock) {
        if (!copied_any) error = EWOULDBLOCK;
        sb->sb_mtx.Unlock();
        goto out;
      }
      if (sbwait(sb) != 0) {
        if (!copied_any) error = EWOULDBLOCK;
        sb->sb_mtx.Unlock();
        goto out;
      }
    }
    unsigned n = std::min<ssize_t>(sb->sb_acc, uio->uio_resid);
    if (peek) {
      error = m_mbuftouio(uio, sb->sb_mb, 0, n);
      sb->sb_mtx.Unlock();
      goto out;  // a peek never consumes, so never loops for more
    }
    // Detach the bytes under the lock and copy them out without it: whole
    // mbufs move, a partly consumed last mbuf is shared by reference.
    mbuf* tailcopy = nullptr;
    {
      unsigned left = n;
      mbuf* m = sb->sb_mb;
      while (m != nullptr && left >= static_cast<unsigned>(m->m_len)) {
        left -= m->m_len;
        m = m->m_next;
      }
      if (left > 0 && m != nullptr) {
        tailcopy = m_copym(m, 0, left, M_NOWAIT);
        if (tailcopy == nullptr) {
          // Out of mbufs: copy under the lock instead.
          error = m_mbuftouio(uio, sb->sb_mb, 0, n);
          sbdrop_locked(sb, n);
          sb->sb_mtx.Unlock();
          copied_any = true;
          so->so_proto->pr_rcvd(so, flags);
          if (error) break;
          continue;
        }
      }
    }
    mbuf* chain = sbcut_locked(sb, n);
    sb->sb_mtx.Unlock();
    if (tailcopy != nullptr) {
      if (chain == nullptr) {
        chain = tailcopy;
      } else {
        mbuf* last = chain;
        while (last->m_next) last = last->m_next;
        last->m_next = tailcopy;
      }
    }
    error = m_mbuftouio(uio, chain, 0, n);
    m_freem(chain);
    copied_any = true;
    // The window opened: let the protocol tell the peer.
    if (so->so_proto->pr_flags & PR_WANTRCVD) so->so_proto->pr_rcvd(so, flags);
    if (error) break;
    if (!(flags & MSG_WAITALL)) break;
  }
out:
  sb->sb_iolock.Unlock();
  if (copied_any && error == EWOULDBLOCK) error = 0;
  (void)orig;
  return error;
}

// Removes the first mbuf of the first record.
mbuf* sb_pop_head(sockbuf* sb) {
  mbuf* m = sb->sb_mb;
  mbuf* nextrec = m->m_nextpkt;
  m->m_nextpkt = nullptr;
  sbfree(sb, m);
  mbuf* n = m->m_next;
  m->m_next = nullptr;
  if (n != nullptr) {
    n->m_nextpkt = nextrec;
    sb->sb_mb = n;
  } else {
    sb->sb_mb = nextrec;
  }
  if (sb->sb_mb == nullptr) {
    sb->sb_mbtail = nullptr;
    sb->sb_lastrecord = nullptr;
  } else if (sb->sb_lastrecord == m) {
    sb->sb_lastrecord = sb->sb_mb;
  }
  return m;
}

int soreceive_generic(socket* so, uio* uio, mbuf** controlp, int* flagsp) {
  int flags = flagsp ? *flagsp : 0;
  int outflags = 0;
  if (controlp) *controlp = nullptr;
  if (flags & MSG_OOB) return EINVAL;
  sockbuf* sb = &so->so_rcv;
  const bool nonblock = (flags & MSG_DONTWAIT) || so_nonblocking(so);
  const bool peek = (flags & MSG_PEEK) != 0;
  if (nonblock) {
    if (!sb->sb_iolock.TryLock()) return EWOULDBLOCK;
  } else {
    sb->sb_iolock.Lock();
  }
  int error = 0;
  bool consumed = false;
  sb->sb_mtx.Lock();
  for (;;) {
    if (sb->sb_mb != nullptr && sb->sb_acc > 0) break;
    bool stop;
    so->so_rcv.sb_mtx.AssertHeld();  // sb is &so->so_rcv
    int e = so_rcv_wait_state(so, &stop);
    // KTLS RX at EOF with ciphertext still queued: while a worker or the
    // TOE engine has whole records to decrypt (SB_TLS_RX_RUNNING) they come
    // first, as in FreeBSD's soreceive_generic, which waits rather than
    // report EOF; a partial record with nothing running is EMSGSIZE. (After
    // a header error FreeBSD's worker leaves SB_TLS_RX_RUNNING set and the
    // reader sleeps forever; uktls's worker clears it, so EMSGSIZE.)
    bool tls_pending = stop && e == 0 &&
                       (sb->sb_tlscc != 0 || sb->sb_tlsdcc != 0);
    if (tls_pending &&
        (sb->sb_tlsdcc != 0 || (sb->sb_flags & SB_TLS_RX_RUNNING)))
      stop = false;
    else if (tls_pending)
      e = EMSGSIZE;
    if (stop) {
      if (e && !peek) so->so_error.store(0);
      error = e;
      goto out;
    }
    if (nonblock) {
      error = EWOULDBLOCK;
      goto out;
    }
    if (sbwait(sb) != 0) {
      error = EWOULDBLOCK;
      goto out;
    }
  }
  {
    mbuf** ctail = controlp;
    mbuf* m = sb->sb_mb;
    // Control messages at the head of the record.
    while (m != nullptr && m->m_type == MT_CONTROL) {
      if (peek) {
        if (ctail) {
          *ctail = m_copym(m, 0, m->m_len, M_NOWAIT);
          if (*ctail) ctail = &(*ctail)->m_next;
        }
        m = m->m_next;
      } else {
        // A record of control messages only (an empty KTLS record) ends
        // here: the next record's cmsgs and data are the next call's.
        const bool record_ends = m->m_next == nullptr;
        mbuf* c = sb_pop_head(sb);
        consumed = true;
        if (ctail) {
          *ctail = c;
          ctail = &c->m_next;
        } else {
          m_free(c);
        }
        m = record_ends ? nullptr : sb->sb_mb;
        if (record_ends) break;
      }
    }
    // Data, up to the end of the record (M_EOR) or the next control.
    int moff = 0;
    while (m != nullptr && uio->uio_resid > 0 && m->m_type != MT_CONTROL) {
      int len = std::min<ssize_t>(uio->uio_resid, m->m_len - moff);
      error = m_mbuftouio(uio, m, moff, len);
      if (error) break;
      bool whole = moff + len == m->m_len;
      int eor = m->m_flags & M_EOR;
      if (peek) {
        if (!whole) {
          moff += len;
          break;
        }
        moff = 0;
        m = m->m_next;
      } else if (whole) {
        m_free(sb_pop_head(sb));
        consumed = true;
        m = sb->sb_mb;
      } else {
        // Partial: the rest stays at the head.
        sb->sb_ccc -= len;
        sb->sb_acc -= len;
        if (m->m_flags & M_EXTPG)
          m->m_epg_off += len;
        else
          m->m_data += len;
        m->m_len -= len;
        consumed = true;
        break;
      }
      if (whole && eor) {
        outflags |= MSG_EOR;
        break;
      }
      if (peek && m == nullptr) break;
    }
  }
out:
  sb->sb_mtx.Unlock();
  sb->sb_iolock.Unlock();
  if (consumed && (so->so_proto->pr_flags & PR_WANTRCVD))
    so->so_proto->pr_rcvd(so, flags);
  if (flagsp) *flagsp = outflags;
  return error;
}

// ---------------------------------------------------------------------------
// Options.

int sooptcopyin(const sockopt* sopt, void* buf, size_t len, size_t minlen) {
  if (sopt->sopt_valsize < minlen) return EINVAL;
  if (sopt->sopt_val == nullptr) return EFAULT;
  size_t n = std::min(len, sopt->sopt_valsize);
  memcpy(buf, sopt->sopt_val, n);
  return 0;
}

int sooptcopyout(sockopt* sopt, const void* buf, size_t len) {
  size_t n = std::min(len, sopt->sopt_valsize);
  if (n > 0 && sopt->sopt_val == nullptr) return EFAULT;
  if (n > 0) memcpy(sopt->sopt_val, buf, n);
  sopt->sopt_valsize = n;
  return 0;
}

// Host SO_* names that are plain on/off bits of so_options.
static int so_option_bit(int name) {
  switch (name) {
    case SO_DEBUG: return SOF_DEBUG;
    case SO_REUSEADDR: return SOF_REUSEADDR;
    case SO_KEEPALIVE: return SOF_KEEPALIVE;
    case SO_DONTROUTE: return SOF_DONTROUTE;
    case SO_BROADCAST: return SOF_BROADCAST;
    case SO_OOBINLINE: return SOF_OOBINLINE;
    case SO_REUSEPORT: return SOF_REUSEPORT;
    default: return 0;
  }
}

int sosetopt(socket* so, sockopt* sopt) {
  if (sopt->sopt_level != SOL_SOCKET) {
    if (so->so_proto->pr_ctloutput) return so->so_proto->pr_ctloutput(so, sopt);
    return ENOPROTOOPT;
  }
  int error = 0;
  int optval = 0;
  switch (sopt->sopt_name) {
    case SO_LINGER: {
      struct linger l;
      if ((error = sooptcopyin(sopt, &l, sizeof l, sizeof l))) return error;
      if (l.l_linger < 0) return EINVAL;
      so->so_linger.store(l.l_linger);
      if (l.l_onoff)
        so->so_options.fetch_or(SOF_LINGER);
      else
        so->so_options.fetch_and(~SOF_LINGER);
      return 0;
    }
    case SO_DEBUG:
    case SO_REUSEADDR:
    case SO_KEEPALIVE:
    case SO_DONTROUTE:
    case SO_BROADCAST:
    case SO_OOBINLINE:
    case SO_REUSEPORT:
      if ((error = sooptcopyin(sopt, &optval, sizeof optval, sizeof optval)))
        return error;
      if (optval)
        so->so_options.fetch_or(so_option_bit(sopt->sopt_name));
      else
        so->so_options.fetch_and(~so_option_bit(sopt->sopt_name));
      if (sopt->sopt_name == SO_KEEPALIVE && so->so_proto->pr_ctloutput)
        so->so_proto->pr_ctloutput(so, sopt);  // let TCP arm its timer
      return 0;
    case SO_SNDBUF:
    case SO_RCVBUF:
    case SO_SNDLOWAT:
    case SO_RCVLOWAT: {
      if ((error = sooptcopyin(sopt, &optval, sizeof optval, sizeof optval)))
        return error;
      if (optval < 1) return EINVAL;
      bool snd = sopt->sopt_name == SO_SNDBUF || sopt->sopt_name == SO_SNDLOWAT;
      sockbuf* sb = snd ? &so->so_snd : &so->so_rcv;
      MutexLock l(&sb->sb_mtx);
      if (sopt->sopt_name == SO_SNDBUF || sopt->sopt_name == SO_RCVBUF) {
        error = sbreserve_locked(sb, optval, so->so_k.net->maxsockbuf.load());
        if (error == 0) sb->sb_flags &= ~SB_AUTOSIZE;
      } else {
        sb->sb_lowat = std::min<unsigned>(optval, sb->sb_hiwat);
        if (snd) sb->sb_flags &= ~SB_AUTOLOWAT;  // the user's mark stays
      }
      if (error == 0) sb->sb_cv.SignalAll();
      return error;
    }
    case SO_MAX_PACING_RATE: {
      // A 32-bit rate in bytes/s, as FreeBSD (Linux's u64 form is accepted
      // too, clamped); paced by a send tag that carries it (NIC TLS).
      uint64_t v64 = 0;
      if (sopt->sopt_valsize >= sizeof(uint64_t)) {
        if ((error = sooptcopyin(sopt, &v64, sizeof v64, sizeof v64))) return error;
      } else {
        uint32_t v32 = 0;
        if ((error = sooptcopyin(sopt, &v32, sizeof v32, sizeof v32))) return error;
        v64 = v32;
      }
      so->so_max_pacing_rate.store(
          static_cast<uint32_t>(std::min<uint64_t>(v64, UINT32_MAX)));
      return 0;
    }
    case SO_SNDTIMEO:
    case SO_RCVTIMEO: {
      struct timeval tv;
      if ((error = sooptcopyin(sopt, &tv, sizeof tv, sizeof tv))) return error;
      if (tv.tv_sec < 0 || tv.tv_usec < 0 || tv.tv_usec >= 1000000)
        return EDOM;
      absl::Duration d = absl::Seconds(tv.tv_sec) + absl::Microseconds(tv.tv_usec);
      sockbuf* sb = sopt->sopt_name == SO_SNDTIMEO ? &so->so_snd : &so->so_rcv;
      MutexLock l(&sb->sb_mtx);
      sb->sb_timeo = d;
      return 0;
    }
    case SO_ERROR:
    case SO_TYPE:
    case SO_ACCEPTCONN:
    case SO_PROTOCOL:
    case SO_DOMAIN:
      return ENOPROTOOPT;  // read-only
    default:
      return ENOPROTOOPT;
  }
}

int sogetopt(socket* so, sockopt* sopt) {
  if (sopt->sopt_level != SOL_SOCKET) {
    if (so->so_proto->pr_ctloutput) return so->so_proto->pr_ctloutput(so, sopt);
    return ENOPROTOOPT;
  }
  int optval = 0;
  switch (sopt->sopt_name) {
    case SO_LINGER: {
      struct linger l;
      l.l_onoff = (so->so_options.load() & SOF_LINGER) ? 1 : 0;
      l.l_linger = so->so_linger.load();
      return sooptcopyout(sopt, &l, sizeof l);
    }
    case SO_DEBUG:
    case SO_REUSEADDR:
    case SO_KEEPALIVE:
    case SO_DONTROUTE:
    case SO_BROADCAST:
    case SO_OOBINLINE:
    case SO_REUSEPORT:
      optval = (so->so_options.load() & so_option_bit(sopt->sopt_name)) ? 1 : 0;
      break;
    case SO_MAX_PACING_RATE: {
      uint32_t v = so->so_max_pacing_rate.load();
      return sooptcopyout(sopt, &v, sizeof v);
    }
    case SO_ACCEPTCONN:
      optval = so->has_listen_queue() ? 1 : 0;
      break;
    case SO_TYPE:
      optval = so->so_type;
      break;
    case SO_PROTOCOL:
      optval = so->so_proto->pr_protocol;
      break;
    case SO_DOMAIN:
      optval = AF_INET;
      break;
    case SO_ERROR:
      optval = so->so_error.exchange(0);
      break;
    case SO_SNDBUF:
    case SO_RCVBUF:
    case SO_SNDLOWAT:
    case SO_RCVLOWAT: {
      bool snd = sopt->sopt_name == SO_SNDBUF || sopt->sopt_name == SO_SNDLOWAT;
      sockbuf* sb = snd ? &so->so_snd : &so->so_rcv;
      MutexLock l(&sb->sb_mtx);
      optval = (sopt->sopt_name == SO_SNDBUF || sopt->sopt_name == SO_RCVBUF)
                   ? sb->sb_hiwat
                   : sb->sb_lowat;
      break;
    }
    case SO_SNDTIMEO:
    case SO_RCVTIMEO: {
      sockbuf* sb = sopt->sopt_name == SO_SNDTIMEO ? &so->so_snd : &so->so_rcv;
      absl::Duration d;
      {
        MutexLock l(&sb->sb_mtx);
        d = sb->sb_timeo;
      }
      struct timeval tv;
      int64_t us = absl::ToInt64Microseconds(d);
      tv.tv_sec = us / 1000000;
      tv.tv_usec = us % 1000000;
      return sooptcopyout(sopt, &tv, sizeof tv);
    }
    default:
      return ENOPROTOOPT;
  }
  return sooptcopyout(sopt, &optval, sizeof optval);
}

// ---------------------------------------------------------------------------
// poll.

int sopoll(socket* so, int events) {
  int revents = 0;
  if (std::shared_ptr<ListenQueue> q = so->listen_queue()) {
    MutexLock l(&q->mu);
    if ((events & (POLLIN | POLLRDNORM)) && (!q->comp.empty() || q->closed))
      revents |= events & (POLLIN | POLLRDNORM);
    return revents;
  }
  const bool err = so->so_error.load() != 0;
  if (events & (POLLIN | POLLRDNORM | POLLRDHUP)) {
    sockbuf* sb = &so->so_rcv;
    MutexLock l(&sb->sb_mtx);
    bool cant = (sb->sb_state & SBS_CANTRCVMORE) != 0;
    if (err || cant || sb->sb_acc >= std::max<unsigned>(sb->sb_lowat, 1))
      revents |= events & (POLLIN | POLLRDNORM);
    if (cant) revents |= events & POLLRDHUP;
    if (revents == 0) sb->sb_flags |= SB_SEL;
  }
  // The send buffer matters only for POLLOUT, or for POLLHUP once the
  // socket is disconnected (a reader's poll does not lock it otherwise).
  const bool disconnected = (so->so_state.load() & SS_ISDISCONNECTED) != 0;
  if ((events & (POLLOUT | POLLWRNORM)) || disconnected) {
    sockbuf* sb = &so->so_snd;
    MutexLock l(&sb->sb_mtx);
    bool cant = (sb->sb_state & SBS_CANTSENDMORE) != 0;
    if (events & (POLLOUT | POLLWRNORM)) {
      bool connected = (so->so_state.load() & SS_ISCONNECTED) != 0;
      if (err || cant ||
          (connected && sbspace(sb) >= std::max<long>(sb->sb_lowat, 1)))
        revents |= events & (POLLOUT | POLLWRNORM);
      else
        sb->sb_flags |= SB_SEL;
    }
    // so_state is read without a lock: a stale read only delays POLLHUP to
    // the next wakeup.
    if (cant && disconnected) revents |= POLLHUP;
  }
  if (revents == 0 && !(events & (POLLIN | POLLRDNORM | POLLRDHUP))) {
    MutexLock l(&so->so_rcv.sb_mtx);
    so->so_rcv.sb_flags |= SB_SEL;
  }
  return revents;
}

int socket::fo_poll(int events) { return sopoll(this, events); }

}  // namespace uk
