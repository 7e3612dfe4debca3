// kqueue(2)/kevent(2) for sockets. Mirrors FreeBSD's sys/kern/kern_event.c
// (kqueue_register, kqueue_scan, knote, knote_fdclose, kqueue_close,
// kqueue_poll, kqueue_stat) and the socket filters of uipc_socket.c
// (soo_kqfilter, filt_soread, filt_sowrite). Locking and lifetime rules are
// in kern_event.h.
#include "sys/kern/kern_event.h"

#include <poll.h>
#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstring>

#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "sys/kern/kern_proc.h"
#include "sys/kern/kernel.h"
#include "sys/kern/syscalls.h"
#include "sys/sys/sockbuf.h"
#include "sys/sys/socketvar.h"

namespace uk {

namespace {

// What a filter reports (FreeBSD's filters write kn_data/kn_flags/
// kn_fflags; here they return them so a filter never writes to a knote).
struct kn_result {
  bool ready = false;
  int64_t data = 0;
  unsigned short flags = 0;  // EV_EOF
  unsigned fflags = 0;
};

int filt_index(short filter) { return filter == EVFILT_READ ? 0 : 1; }

// filt_soread for a connected (or connecting) socket.
kn_result filt_soread(knote* kn, sockbuf* sb)
    ABSL_EXCLUSIVE_LOCKS_REQUIRED(sb->sb_mtx) {
  socket* so = kn->kn_so;
  kn_result r;
  r.data = static_cast<int64_t>(sbavail(sb)) - sb->sb_ctl;
  r.fflags = kn->kn_sfflags.load(std::memory_order_relaxed);
  if (sb->sb_state & SBS_CANTRCVMORE) {
    r.flags = EV_EOF;
    r.fflags = static_cast<unsigned>(so->so_error.load());
    r.ready = true;
  } else if (so->so_error.load() != 0) {
    r.ready = true;
  } else if (r.fflags & NOTE_LOWAT) {
    r.ready = r.data >= kn->kn_sdata.load(std::memory_order_relaxed);
  } else {
    r.ready = sbavail(sb) >= std::max<unsigned>(sb->sb_lowat, 1);
  }
  return r;
}

// filt_soread's listening branch: data is the number of completed
// connections (sol_qlen).
kn_result filt_solisten(knote* kn, ListenQueue* q)
    ABSL_EXCLUSIVE_LOCKS_REQUIRED(q->mu) {
  kn_result r;
  r.data = static_cast<int64_t>(q->comp.size());
  r.fflags = kn->kn_sfflags.load(std::memory_order_relaxed);
  if (int e = kn->kn_so->so_error.load()) {
    r.flags = EV_EOF;
    r.fflags = static_cast<unsigned>(e);
    r.ready = true;
  } else {
    r.ready = !q->comp.empty();
  }
  return r;
}

kn_result filt_sowrite(knote* kn, sockbuf* sb)
    ABSL_EXCLUSIVE_LOCKS_REQUIRED(sb->sb_mtx) {
  socket* so = kn->kn_so;
  kn_result r;
  r.fflags = kn->kn_sfflags.load(std::memory_order_relaxed);
  if (so->has_listen_queue()) return r;  // a listening socket is never writable
  r.data = sbspace(sb);
  if (sb->sb_state & SBS_CANTSENDMORE) {
    r.flags = EV_EOF;
    r.fflags = static_cast<unsigned>(so->so_error.load());
    r.ready = true;
  } else if (so->so_error.load() != 0) {
    r.ready = true;
  } else if ((so->so_state.load() & SS_ISCONNECTED) == 0 &&
             (so->so_proto->pr_flags & PR_CONNREQUIRED)) {
    r.ready = false;
  } else if (r.fflags & NOTE_LOWAT) {
    r.ready = r.data >= kn->kn_sdata.load(std::memory_order_relaxed);
  } else {
    r.ready = r.data >= std::max<long>(sb->sb_lowat, 1);
  }
  return r;
}

sockbuf* kn_sockbuf(knote* kn) {
  return kn->kn_filter == EVFILT_READ ? &kn->kn_so->so_rcv
                                      : &kn->kn_so->so_snd;
}

// Runs the knote's filter under its source's lock (no other lock held).
// *gen is the activation count seen under that lock.
kn_result knote_eval(knote* kn, uint64_t* gen) {
  sockbuf* sb = kn_sockbuf(kn);
  MutexLock l(&sb->sb_mtx);
  if (kn->kn_filter == EVFILT_READ && kn->kn_lq) {
    ListenQueue* q = kn->kn_lq.get();
    MutexLock lq(&q->mu);
    *gen = kn->kn_activations.load(std::memory_order_relaxed);
    return filt_solisten(kn, q);
  }
  *gen = kn->kn_activations.load(std::memory_order_relaxed);
  return kn->kn_filter == EVFILT_READ ? filt_soread(kn, sb)
                                      : filt_sowrite(kn, sb);
}

void knlist_insert(knlist* kl, knote* kn) {
  kn->kn_selprev = nullptr;
  kn->kn_selnext = kl->kl_first;
  if (kl->kl_first) kl->kl_first->kn_selprev = kn;
  kl->kl_first = kn;
  kn->kn_linked = true;
}

void knlist_unhook(knlist* kl, knote* kn) {
  if (!kn->kn_linked) return;
  if (kn->kn_selprev)
    kn->kn_selprev->kn_selnext = kn->kn_selnext;
  else
    kl->kl_first = kn->kn_selnext;
  if (kn->kn_selnext) kn->kn_selnext->kn_selprev = kn->kn_selprev;
  kn->kn_selnext = kn->kn_selprev = nullptr;
  kn->kn_linked = false;
}

void knlist_remove(knlist* kl, knote* kn) {
  kn->kn_dropped = true;
  knlist_unhook(kl, kn);
}

// soo_kqfilter's attach: links the knote to its source unless it was
// already dropped (a delete or close that raced with its registration).
void knote_link(knote* kn) {
  sockbuf* sb = kn_sockbuf(kn);
  MutexLock l(&sb->sb_mtx);
  if (kn->kn_dropped) return;
  if (kn->kn_filter == EVFILT_READ) {
    // The socket may have started listening since the knote was made
    // (knote_solisten, which takes this lock, ran before or runs after).
    if (!kn->kn_lq) kn->kn_lq = kn->kn_so->listen_queue();
    if (kn->kn_lq) {
      ListenQueue* q = kn->kn_lq.get();
      MutexLock lq(&q->mu);
      knlist_insert(&q->sol_sel, kn);
      return;
    }
  }
  knlist_insert(&sb->sb_sel, kn);
  sb->sb_flags |= SB_KNOTE;
}

// The detach half that runs outside kq_mtx: after it no activation can
// reach the knote.
void knote_unlink(knote* kn) {
  sockbuf* sb = kn_sockbuf(kn);
  MutexLock l(&sb->sb_mtx);
  if (kn->kn_filter == EVFILT_READ && kn->kn_lq) {
    ListenQueue* q = kn->kn_lq.get();
    MutexLock lq(&q->mu);
    knlist_remove(&q->sol_sel, kn);
    return;
  }
  knlist_remove(&sb->sb_sel, kn);
  if (sb->sb_sel.empty()) sb->sb_flags &= ~SB_KNOTE;
}

void knote_enqueue(kqueue* kq, knote* kn)
    ABSL_EXCLUSIVE_LOCKS_REQUIRED(kq->kq_mtx) {
  kn->kn_tqe_next = nullptr;
  kn->kn_tqe_prev = kq->kq_tail;
  if (kq->kq_tail)
    kq->kq_tail->kn_tqe_next = kn;
  else
    kq->kq_head = kn;
  kq->kq_tail = kn;
  kn->kn_status |= KN_QUEUED;
  kq->kq_count++;
}

void knote_dequeue(kqueue* kq, knote* kn)
    ABSL_EXCLUSIVE_LOCKS_REQUIRED(kq->kq_mtx) {
  if (kn->kn_tqe_prev)
    kn->kn_tqe_prev->kn_tqe_next = kn->kn_tqe_next;
  else
    kq->kq_head = kn->kn_tqe_next;
  if (kn->kn_tqe_next)
    kn->kn_tqe_next->kn_tqe_prev = kn->kn_tqe_prev;
  else
    kq->kq_tail = kn->kn_tqe_prev;
  kn->kn_tqe_next = kn->kn_tqe_prev = nullptr;
  kn->kn_status &= ~KN_QUEUED;
  kq->kq_count--;
}

// Queues an active, enabled knote and wakes kevent() and poll() sleepers.
// Returns true when poll sleepers must be woken (after kq_mtx is dropped).
bool knote_queue_active(kqueue* kq, knote* kn)
    ABSL_EXCLUSIVE_LOCKS_REQUIRED(kq->kq_mtx) {
  if ((kn->kn_status & (KN_ACTIVE | KN_DISABLED | KN_QUEUED)) != KN_ACTIVE)
    return false;
  knote_enqueue(kq, kn);
  if (kq->kq_sleepers > 0) kq->kq_cv.SignalAll();
  bool sel = kq->kq_sel;
  kq->kq_sel = false;
  return sel;
}

void kq_selwakeup(kqueue* kq) {
  if (kq->kq_k.procs) kq->kq_k.procs->sel.wakeup();
}

// The activation half of knote(): the filter said ready.
void knote_activate(knote* kn) {
  kn->kn_activations.fetch_add(1, std::memory_order_relaxed);
  kqueue* kq = kn->kn_kq;
  bool sel;
  {
    MutexLock l(&kq->kq_mtx);
    if (kn->kn_status & KN_DETACHED) return;
    kn->kn_status |= KN_ACTIVE;
    sel = knote_queue_active(kq, kn);
  }
  if (sel) kq_selwakeup(kq);
}

// Takes the knote out of its kqueue's table (the one reference the table
// held is returned) and off the active queue. Null if it was already gone.
RefPtr<knote> knote_unregister_locked(kqueue* kq, knote* kn)
    ABSL_EXCLUSIVE_LOCKS_REQUIRED(kq->kq_mtx) {
  if (kn->kn_id >= kq->kq_knlist.size()) return nullptr;
  RefPtr<knote>& slot = kq->kq_knlist[kn->kn_id][filt_index(kn->kn_filter)];
  if (slot.get() != kn) return nullptr;
  RefPtr<knote> r = std::move(slot);
  kn->kn_status |= KN_DETACHED;
  if (kn->kn_status & KN_QUEUED) knote_dequeue(kq, kn);
  return r;
}

knote* knote_lookup(kqueue* kq, uintptr_t id, short filter)
    ABSL_EXCLUSIVE_LOCKS_REQUIRED(kq->kq_mtx) {
  if (id >= kq->kq_knlist.size()) return nullptr;
  return kq->kq_knlist[id][filt_index(filter)].get();
}

// kqueue_register: one change.
int kqueue_register(uk_proc* p, kqueue* kq, const struct kevent& kev) {
  // kqueue_fo_find: only the socket filters exist here.
  if (kev.filter != EVFILT_READ && kev.filter != EVFILT_WRITE) return EINVAL;
  if (kev.ident > static_cast<uintptr_t>(INT_MAX)) return EBADF;
  const int fd = static_cast<int>(kev.ident);
  RefPtr<file> fp;
  if (int e = p->fd.fget(fd, &fp)) return e;

  RefPtr<knote> kn;  // declared before the locks: released after them
  bool created = false;
  {
    MutexLock l(&kq->kq_mtx);
    if (kq->kq_closed) return EBADF;
    knote* cur = knote_lookup(kq, kev.ident, kev.filter);
    if (cur == nullptr) {
      if ((kev.flags & EV_ADD) == 0) return ENOENT;
      // badfo_kqfilter: only sockets have filters.
      if (fp->f_type != DTYPE_SOCKET) return EINVAL;
      if (kev.ident >= kq->kq_knlist.size())
        kq->kq_knlist.resize(std::max<size_t>(kev.ident + 1,
                                              2 * kq->kq_knlist.size()));
      kn = make_ref<knote>(kq, fp, kev);
      if (kev.flags & EV_DISABLE) kn->kn_status |= KN_DISABLED;
      kq->kq_knlist[kev.ident][filt_index(kev.filter)] = kn;
      created = true;
    } else if (kev.flags & EV_DELETE) {
      kn = knote_unregister_locked(kq, cur);
    } else {
      kn = RefPtr<knote>(cur);
      // EV_FORCEONESHOT (existing knotes only, as FreeBSD): the knote
      // becomes oneshot and is reported by the next scan even if its filter
      // is not true, unless it is or gets disabled.
      if (kev.flags & EV_FORCEONESHOT) {
        kn->kn_flags |= EV_ONESHOT;
        kn->kn_status |= KN_ACTIVE | KN_FORCED;
      }
      if (kev.flags & EV_ENABLE) {
        kn->kn_status &= ~KN_DISABLED;
      } else if (kev.flags & EV_DISABLE) {
        kn->kn_status |= KN_DISABLED;
        if (kn->kn_status & KN_QUEUED) knote_dequeue(kq, kn.get());
      }
      // As FreeBSD, a later change replaces udata and the filter's
      // parameters but keeps the EV_ONESHOT/EV_CLEAR/EV_DISPATCH mode.
      if ((kev.flags & EV_KEEPUDATA) == 0)
        kn->kn_udata.store(kev.udata, std::memory_order_relaxed);
      kn->kn_sfflags.store(kev.fflags, std::memory_order_relaxed);
      kn->kn_sdata.store(kev.data, std::memory_order_relaxed);
    }
  }
  if (!created && (kev.flags & EV_DELETE)) {
    knote_unlink(kn.get());
    return 0;
  }
  if (created) {
    knote_link(kn.get());
    // The descriptor may have been closed (or closed and reused) since
    // fget(): knote_fdclose ran before the knote was in the table, so the
    // registration is undone here.
    RefPtr<file> now;
    if (p->fd.fget(fd, &now) != 0 || now.get() != fp.get()) {
      RefPtr<knote> table_ref;
      {
        MutexLock l(&kq->kq_mtx);
        table_ref = knote_unregister_locked(kq, kn.get());
      }
      knote_unlink(kn.get());
      return EBADF;
    }
  }
  // The filter runs once at registration (kqueue_register's f_event), so a
  // socket that is ready already is reported.
  bool disabled;
  {
    MutexLock l(&kq->kq_mtx);
    disabled = (kn->kn_status & KN_DISABLED) != 0;
  }
  bool ready = false;
  if (!disabled) {
    uint64_t gen;
    ready = knote_eval(kn.get(), &gen).ready;
  }
  bool sel;
  {
    MutexLock l(&kq->kq_mtx);
    if (kn->kn_status & KN_DETACHED) return 0;
    if (ready) kn->kn_status |= KN_ACTIVE;
    sel = knote_queue_active(kq, kn.get());
  }
  if (sel) kq_selwakeup(kq);
  return 0;
}

// kqueue_scan: waits for active knotes and reports up to maxevents.
int kqueue_scan(kqueue* kq, int maxevents, struct kevent* out,
                const struct timespec* tsp, int* nready) {
  *nready = 0;
  if (maxevents == 0) return 0;
  bool nowait = false;
  absl::Time deadline = absl::InfiniteFuture();
  if (tsp != nullptr) {
    if (tsp->tv_sec < 0 || tsp->tv_nsec < 0 || tsp->tv_nsec >= 1000000000)
      return EINVAL;
    if (tsp->tv_sec == 0 && tsp->tv_nsec == 0)
      nowait = true;
    else
      deadline = absl::Now() + absl::Seconds(tsp->tv_sec) +
                 absl::Nanoseconds(tsp->tv_nsec);
  }
  std::vector<RefPtr<knote>> batch;
  std::vector<RefPtr<knote>> dropped;
  std::vector<kn_result> res;
  std::vector<uint64_t> gens;
  for (;;) {
    {
      MutexLock l(&kq->kq_mtx);
      for (;;) {
        if (kq->kq_closed) return EBADF;
        if (kq->kq_count > 0) break;
        if (nowait) return 0;
        if (deadline == absl::InfiniteFuture()) {
          kq->kq_sleepers++;
          kq->kq_cv.Wait(&kq->kq_mtx);
          kq->kq_sleepers--;
          continue;
        }
        absl::Duration left = deadline - absl::Now();
        if (left <= absl::ZeroDuration()) return 0;
        kq->kq_sleepers++;
        kq->kq_cv.WaitWithTimeout(&kq->kq_mtx, left);
        kq->kq_sleepers--;
      }
      // Only the active knotes are looked at: the cost of a call follows
      // them, not the number registered.
      while (kq->kq_head != nullptr &&
             static_cast<int>(batch.size()) < maxevents) {
        knote* kn = kq->kq_head;
        knote_dequeue(kq, kn);
        batch.emplace_back(kn);
      }
    }
    // Filters run with no kqueue lock held (they take the source's lock,
    // which comes before kq_mtx).
    res.resize(batch.size());
    gens.resize(batch.size());
    for (size_t i = 0; i < batch.size(); i++)
      res[i] = knote_eval(batch[i].get(), &gens[i]);
    int n = 0;
    {
      MutexLock l(&kq->kq_mtx);
      for (size_t i = 0; i < batch.size(); i++) {
        knote* kn = batch[i].get();
        if (kn->kn_status & (KN_DETACHED | KN_DISABLED)) continue;
        if (!res[i].ready && (kn->kn_status & KN_FORCED) == 0) {
          if ((kn->kn_status & KN_QUEUED) == 0) kn->kn_status &= ~KN_ACTIVE;
          continue;
        }
        struct kevent& ev = out[n++];
        memset(&ev, 0, sizeof ev);
        ev.ident = kn->kn_id;
        ev.filter = kn->kn_filter;
        ev.flags = kn->kn_flags | res[i].flags;
        ev.fflags = res[i].fflags;
        ev.data = res[i].data;
        ev.udata = kn->kn_udata.load(std::memory_order_relaxed);
        memcpy(ev.ext, kn->kn_ext, sizeof ev.ext);
        if (kn->kn_flags & EV_ONESHOT) {
          dropped.push_back(knote_unregister_locked(kq, kn));
          continue;
        }
        if (kn->kn_flags & (EV_CLEAR | EV_DISPATCH)) {
          if (kn->kn_flags & EV_DISPATCH) kn->kn_status |= KN_DISABLED;
          // An activation that came before this evaluation is covered by
          // this report; one after it is a new edge and stays queued.
          bool again = kn->kn_activations.load(std::memory_order_relaxed) !=
                       gens[i];
          if ((kn->kn_status & KN_QUEUED) &&
              (!again || (kn->kn_status & KN_DISABLED)))
            knote_dequeue(kq, kn);
          if ((kn->kn_status & KN_QUEUED) == 0) kn->kn_status &= ~KN_ACTIVE;
          continue;
        }
        // Level-triggered: back on the queue (at the tail, so a caller
        // with a small eventlist sees every ready knote in turn); the next
        // call evaluates it again.
        if ((kn->kn_status & KN_QUEUED) == 0) knote_enqueue(kq, kn);
      }
    }
    for (RefPtr<knote>& kn : dropped)
      if (kn) knote_unlink(kn.get());
    dropped.clear();
    batch.clear();
    if (n > 0) {
      *nready = n;
      return 0;
    }
  }
}

}  // namespace

knote::knote(kqueue* kq, RefPtr<file> fp, const struct kevent& kev)
    : kn_kq(kq),
      kn_fp(std::move(fp)),
      kn_so(static_cast<socket*>(kn_fp.get())),
      kn_id(kev.ident),
      kn_filter(kev.filter),
      kn_ext{kev.ext[0], kev.ext[1], kev.ext[2], kev.ext[3]},
      kn_sfflags(kev.fflags),
      kn_sdata(kev.data),
      kn_udata(kev.udata),
      kn_flags(kev.flags & ~(EV_ADD | EV_DELETE | EV_ENABLE | EV_DISABLE |
                             EV_FORCEONESHOT | EV_KEEPUDATA)) {
  kn_kq->ref();
}

knote::~knote() { release_ref(kn_kq); }

kqueue::kqueue(kernel& k, filedesc* fdp)
    : file(DTYPE_KQUEUE), kq_k(k), kq_fdp(fdp) {}

kqueue::~kqueue() = default;

// kqueue_close.
int kqueue::fo_close() {
  std::vector<RefPtr<knote>> all;
  {
    MutexLock l(&kq_mtx);
    if (kq_closed) return 0;
    kq_closed = true;
    while (kq_head != nullptr) knote_dequeue(this, kq_head);
    for (auto& slots : kq_knlist) {
      for (RefPtr<knote>& s : slots) {
        if (!s) continue;
        s->kn_status |= KN_DETACHED;
        all.push_back(std::move(s));
      }
    }
    kq_knlist.clear();
    kq_cv.SignalAll();
  }
  kq_fdp->kqlist_remove(this);
  for (RefPtr<knote>& kn : all) knote_unlink(kn.get());
  // The caller still holds a reference on this kqueue, so dropping the
  // knotes' references here never frees it.
  return 0;
}

int kqueue::fo_poll(int events) {
  MutexLock l(&kq_mtx);
  if (kq_count > 0) return events & (POLLIN | POLLRDNORM);
  kq_sel = true;
  return 0;
}

int kqueue::fo_stat(struct stat* sb) {
  memset(sb, 0, sizeof(*sb));
  sb->st_mode = S_IFIFO;  // as FreeBSD's kqueue_stat
  return 0;
}

void knote_sockbuf(socket* so, sockbuf* sb) {
  sb->sb_mtx.AssertHeld();
  const bool rcv = sb == &so->so_rcv;
  for (knote* kn = sb->sb_sel.kl_first; kn != nullptr; kn = kn->kn_selnext) {
    kn_result r = rcv ? filt_soread(kn, sb) : filt_sowrite(kn, sb);
    if (r.ready) knote_activate(kn);
  }
}

void knote_listenq(ListenQueue* q) {
  q->mu.AssertHeld();
  for (knote* kn = q->sol_sel.kl_first; kn != nullptr; kn = kn->kn_selnext) {
    if (filt_solisten(kn, q).ready) knote_activate(kn);
  }
}

void knote_solisten(socket* so) {
  std::shared_ptr<ListenQueue> q = so->listen_queue();
  if (!q) return;
  sockbuf* sb = &so->so_rcv;
  MutexLock l(&sb->sb_mtx);
  if ((sb->sb_flags & SB_KNOTE) == 0) return;
  MutexLock lq(&q->mu);
  while (knote* kn = sb->sb_sel.kl_first) {
    knlist_unhook(&sb->sb_sel, kn);
    kn->kn_lq = q;
    knlist_insert(&q->sol_sel, kn);
  }
  sb->sb_flags &= ~SB_KNOTE;
  // A connection may have completed between pr_listen and the move.
  knote_listenq(q.get());
}

void knote_fdclose(filedesc* fdp, int fd) {
  std::vector<RefPtr<knote>> drop;
  fdp->kqlist_foreach([&](kqueue* kq) {
    MutexLock l(&kq->kq_mtx);
    if (fd < 0 || static_cast<size_t>(fd) >= kq->kq_knlist.size()) return;
    for (RefPtr<knote>& s : kq->kq_knlist[fd]) {
      if (s) drop.push_back(knote_unregister_locked(kq, s.get()));
    }
  });
  for (RefPtr<knote>& kn : drop) knote_unlink(kn.get());
}

int sys_kqueue(uk_proc* p, int* fd) {
  auto kq = make_ref<kqueue>(*p->k, &p->fd);
  p->fd.kqlist_add(kq.get());
  if (int e = p->fd.falloc(RefPtr<file>(kq.get()), fd)) {
    kq->fo_close();
    return e;
  }
  return 0;
}

// kern_kevent + kqueue_kevent.
int sys_kevent(uk_proc* p, int kqfd, const struct kevent* changelist,
               int nchanges, struct kevent* eventlist, int nevents,
               const struct timespec* timeout, int* nready) {
  *nready = 0;
  RefPtr<file> fp;
  if (int e = p->fd.fget(kqfd, &fp)) return e;
  if (fp->f_type != DTYPE_KQUEUE) return EBADF;  // kqueue_acquire
  kqueue* kq = static_cast<kqueue*>(fp.get());
  if (nchanges < 0 || nevents < 0) return EINVAL;
  if ((nchanges > 0 && changelist == nullptr) ||
      (nevents > 0 && eventlist == nullptr))
    return EFAULT;
  {
    MutexLock l(&kq->kq_mtx);
    if (kq->kq_closed) return EBADF;
  }
  int nerrors = 0;
  struct kevent* out = eventlist;
  for (int i = 0; i < nchanges; i++) {
    // A copy: the eventlist may be the changelist.
    struct kevent kev = changelist[i];
    if (kev.filter == 0) continue;
    kev.flags &= ~EV_SYSFLAGS;
    int error = kqueue_register(p, kq, kev);
    if (error != 0 || (kev.flags & EV_RECEIPT)) {
      // No room: the call fails with the change's errno, or - a receipt
      // with no room - ends there returning 0, receipts already written
      // not counted, as FreeBSD.
      if (nevents == 0) return error;
      kev.flags = EV_ERROR;
      kev.data = error;
      *out++ = kev;
      nevents--;
      nerrors++;
    }
  }
  if (nerrors > 0) {
    *nready = nerrors;
    return 0;
  }
  return kqueue_scan(kq, nevents, eventlist, timeout, nready);
}

}  // namespace uk
