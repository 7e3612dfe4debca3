// kqueue(2) and kevent(2) for sockets. Mirrors FreeBSD's sys/kern/kern_event.c
// (kqueue_register, kqueue_scan, knote, knote_fdclose, kqueue_close) and the
// socket filters of sys/kern/uipc_socket.c (soo_kqfilter, filt_soread,
// filt_sowrite, filt_solisten's part of filt_soread).
//
// Objects:
//  - kqueue: a file (DTYPE_KQUEUE) in its process's descriptor table. It owns
//    a table of its knotes, indexed by descriptor and filter, and the queue of
//    active ones (FreeBSD's kq_knlist and kq_head).
//  - knote: one (ident, filter) registration. Reference counted: the
//    kqueue's table holds one reference while it is registered, a kevent()
//    scan holds one while it evaluates it. A knote holds references on its
//    kqueue and on the file it watches, so both outlive every knote.
//  - knlist: the knotes hanging off one event source (a socket buffer, or a
//    listening socket's ListenQueue), guarded by the source's own lock.
//    A socket buffer with knotes has SB_KNOTE set, so wakeups without
//    knotes cost one flag test.
//
// Locking, in order: the source's lock (sockbuf sb_mtx, ListenQueue::mu)
// -> kqueue::kq_mtx -> SelWait. Activation (knote()) runs under the source's
// lock, evaluates the filter there and takes kq_mtx to queue the knote.
// kevent() never holds kq_mtx while it calls a filter: it takes the active
// knotes off the queue, evaluates each under its source's lock, then takes
// kq_mtx again to report them and re-queue the level-triggered ones.
// filedesc's kqueue list lock is taken before kq_mtx and never under a
// source lock.
//
// A knote leaves its kqueue exactly once (EV_DELETE, EV_ONESHOT after it is
// reported, the descriptor's close, the kqueue's close): whoever takes it out
// of the table under kq_mtx marks it KN_DETACHED (activation then ignores it)
// and afterwards unlinks it from its knlist under the source's lock.
#ifndef UKTLS_SYS_KERN_KERN_EVENT_H_
#define UKTLS_SYS_KERN_KERN_EVENT_H_

#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <vector>

#include "sys/kern/kern_descrip.h"
#include "sys/sys/event.h"
#include "sys/sys/lock.h"
#include "sys/sys/refcount.h"

struct uk_proc;

namespace uk {

struct kernel;
struct kqueue;
struct knote;
struct socket;
struct sockbuf;
struct ListenQueue;

// EV_SYSFLAGS: flag bits the kernel owns; cleared from every change.
inline constexpr unsigned short EV_SYSFLAGS = 0xF000;

// The knotes of one event source (FreeBSD struct knlist). Guarded by the
// source's lock; a doubly linked list through knote::kn_selnext/kn_selprev.
struct knlist {
  knote* kl_first = nullptr;
  bool empty() const { return kl_first == nullptr; }
};

// kn_status (FreeBSD KN_*), guarded by the kqueue's kq_mtx.
enum : int {
  KN_ACTIVE = 0x01,    // the filter said ready since the last report
  KN_QUEUED = 0x02,    // on kq_head
  KN_DISABLED = 0x04,  // EV_DISABLE / EV_DISPATCH: not reported
  KN_DETACHED = 0x08,  // out of the kqueue's table; being unlinked
  KN_FORCED = 0x10,    // EV_FORCEONESHOT: reported whatever the filter says
};

struct knote final : RefCounted<knote> {
  knote(kqueue* kq, RefPtr<file> fp, const struct kevent& kev);
  ~knote();
  knote(const knote&) = delete;
  knote& operator=(const knote&) = delete;

  // Immutable after creation.
  kqueue* const kn_kq;  // holds a reference
  const RefPtr<file> kn_fp;
  socket* const kn_so;  // kn_fp as a socket
  const uintptr_t kn_id;
  const short kn_filter;
  const uint64_t kn_ext[4];
  // Set for EVFILT_READ on a listening socket: the knote then hangs off
  // the listen queue instead of so_rcv. Written (at registration, or when
  // the socket starts listening: knote_solisten) with so_rcv.sb_mtx and
  // the queue's mu held; read under so_rcv.sb_mtx. An EVFILT_READ knote's
  // source lock is so_rcv.sb_mtx, plus ListenQueue::mu when kn_lq is set.
  std::shared_ptr<ListenQueue> kn_lq;

  // Written by EV_ADD/EV_ENABLE/EV_DISABLE changes (kn_sfflags, kn_sdata:
  // NOTE_LOWAT and its mark) and read by filters under the source's lock.
  std::atomic<unsigned> kn_sfflags{0};
  std::atomic<int64_t> kn_sdata{0};
  std::atomic<void*> kn_udata{nullptr};
  // Counts activations; read and bumped under the source's lock, so a scan
  // can tell whether the knote was activated after it evaluated it.
  std::atomic<uint64_t> kn_activations{0};

  // The source's knlist links, guarded by the source's lock. kn_dropped
  // is set by the unlink: a registration racing with a delete never links
  // a dropped knote.
  knote* kn_selnext = nullptr;
  knote* kn_selprev = nullptr;
  bool kn_linked = false;
  bool kn_dropped = false;

  // Guarded by kn_kq->kq_mtx (the annotation needs a complete kqueue type,
  // so the rule is stated here and kept by kern_event.cc).
  int kn_status = 0;
  unsigned short kn_flags;  // EV_ONESHOT, EV_CLEAR, EV_DISPATCH, ...
  knote* kn_tqe_next = nullptr;  // kq_head links
  knote* kn_tqe_prev = nullptr;
};

struct kqueue final : file {
  kqueue(kernel& k, filedesc* fdp);
  ~kqueue() override;

  // kqueue_close: detaches every knote and wakes kevent() sleepers, which
  // then fail with EBADF.
  int fo_close() override;
  // POLLIN while events are pending (kqueue_poll).
  int fo_poll(int events) override;
  int fo_stat(struct stat* sb) override;

  kernel& kq_k;
  filedesc* const kq_fdp;  // the table it lives in, until fo_close

  Mutex kq_mtx;
  CondVar kq_cv;  // kevent() sleepers
  // Registered knotes: kq_knlist[fd][0] is EVFILT_READ, [1] EVFILT_WRITE.
  std::vector<std::array<RefPtr<knote>, 2>> kq_knlist ABSL_GUARDED_BY(kq_mtx);
  // The active queue (kq_head): knotes with KN_QUEUED, oldest first.
  knote* kq_head ABSL_GUARDED_BY(kq_mtx) = nullptr;
  knote* kq_tail ABSL_GUARDED_BY(kq_mtx) = nullptr;
  int kq_count ABSL_GUARDED_BY(kq_mtx) = 0;
  int kq_sleepers ABSL_GUARDED_BY(kq_mtx) = 0;
  bool kq_closed ABSL_GUARDED_BY(kq_mtx) = false;
  bool kq_sel ABSL_GUARDED_BY(kq_mtx) = false;  // a poller waits
};

// Activation (FreeBSD's KNOTE_LOCKED on so_rdsel/so_wrsel): evaluates each
// knote of the buffer's list and queues the ready ones. Called by the
// socket's wakeup paths with sb->sb_mtx held and SB_KNOTE set.
void knote_sockbuf(socket* so, sockbuf* sb);
// The same for a listen queue (a connection completed), q->mu held.
void knote_listenq(ListenQueue* q);
// The socket now listens: its EVFILT_READ knotes move from so_rcv to the
// listen queue, as FreeBSD's so_rdsel serves both. No lock held.
void knote_solisten(socket* so);

// FreeBSD's knote_fdclose: drops every knote that names |fd| in the
// table's kqueues. Called by filedesc::fdclose after the descriptor left
// the table and before the file's fo_close.
void knote_fdclose(filedesc* fdp, int fd);

}  // namespace uk

#endif  // UKTLS_SYS_KERN_KERN_EVENT_H_
