// callout(9): one-shot timers run by a per-kernel callout thread. Mirrors
// FreeBSD's sys/kern/kern_timeout.c (callout_init_mtx, callout_reset,
// callout_stop, callout_drain), with one thread instead of per-CPU wheels.
//
// A callout bound to a mutex (callout_init_mtx) runs with that mutex held,
// and callout_stop() called with the mutex held guarantees the function will
// not run afterwards, exactly the guarantee TCP's timers rely on in FreeBSD.
// With CALLOUT_RETURNUNLOCKED the function releases the mutex itself.
//
// An armed callout may hold a reference on its owner (c_ref): taken when it
// is armed, dropped by callout_stop() (the caller must hold another
// reference) or by the callout thread after the function ran, with no lock
// held, so an owner freed by that last reference is never touched again.
//
// Precision (FreeBSD's callout_reset_sbt precision and C_HARDCLOCK): a
// callout may run up to c_prec after its time, never before it, and the
// thread sleeps until the earliest time some callout must run by, so
// callouts due close together run on one wakeup. callout_reset_sbt allows
// 1/16 of the delay (FreeBSD's default kern.timecounter.alloweddeviation of
// 5 % gives tc_precexp 4); callout_reset_ms counts whole ticks (hz = 1000)
// from the current tick, as FreeBSD's callout_reset(ticks), so tick-based
// timers (TCP's) share tick boundaries.
//
// Locking: CalloutThread::mu_ guards the heap and every callout's c_time,
// c_prec, c_gen, c_pending, c_iter and c_latest. Lock order: a callout's c_lock -> mu_;
// the thread never holds mu_ while taking a c_lock.
#ifndef UKTLS_SYS_KERN_KERN_TIMEOUT_H_
#define UKTLS_SYS_KERN_KERN_TIMEOUT_H_

#include <cstdint>
#include <atomic>
#include <map>
#include <set>
#include <thread>

#include "sys/sys/lock.h"

namespace uk {

struct kernel;
class CalloutThread;

// Nanoseconds of a monotonic clock (FreeBSD's sbinuptime, in ns).
using sbintime_t = int64_t;
sbintime_t getsbinuptime();
constexpr sbintime_t SBT_1MS = 1000000;
constexpr sbintime_t SBT_1S = 1000000000;
// Milliseconds since an arbitrary origin: TCP's "ticks" (hz = 1000).
inline int64_t ticks_now() { return getsbinuptime() / SBT_1MS; }

enum : int { CALLOUT_RETURNUNLOCKED = 0x1 };

struct callout {
  CalloutThread* c_cc = nullptr;
  Mutex* c_lock = nullptr;
  int c_flags = 0;
  void (*c_func)(void*) = nullptr;
  void* c_arg = nullptr;
  // Optional owner reference: c_ref(c_arg, +1) when armed, (-1) when the
  // armed state ends.
  void (*c_ref)(void* arg, int delta) = nullptr;

  // Guarded by c_cc->mu_.
  sbintime_t c_time = 0;
  sbintime_t c_prec = 0;  // how late it may run
  uint64_t c_gen = 0;
  bool c_pending = false;
  std::multimap<sbintime_t, callout*>::iterator c_iter;
  std::multiset<sbintime_t>::iterator c_latest;  // its entry's time + c_prec
};

class CalloutThread final {
 public:
  explicit CalloutThread(kernel& k);
  ~CalloutThread();  // stops and joins the thread; no callout may be armed
  CalloutThread(const CalloutThread&) = delete;
  CalloutThread& operator=(const CalloutThread&) = delete;

  // Arms c to run at absolute time |when|, at most |prec| later. Returns 1
  // if it was pending (and is rescheduled), 0 otherwise.
  int reset(callout* c, sbintime_t when, sbintime_t prec, void (*fn)(void*),
            void* arg) ABSL_LOCKS_EXCLUDED(mu_);
  // Times the thread woke up and ran callouts.
  uint64_t wakeups() ABSL_LOCKS_EXCLUDED(mu_);
  // Disarms; returns 1 if it was pending.
  int stop(callout* c) ABSL_LOCKS_EXCLUDED(mu_);
  // Disarms and waits until the thread no longer runs or is about to run c.
  // Must not be called with c->c_lock held. From inside c's own function it
  // does not wait.
  int drain(callout* c) ABSL_LOCKS_EXCLUDED(mu_);
  bool pending(const callout* c) ABSL_LOCKS_EXCLUDED(mu_);
  // False if the thread could not be started.
  bool running() const { return td_ != nullptr; }

 private:
  // Takes each callout's own lock dynamically, which the analysis cannot follow.
  void run() ABSL_NO_THREAD_SAFETY_ANALYSIS;

  Mutex mu_;
  CondVar cv_;        // the thread sleeps here
  CondVar drain_cv_;  // drainers wait here for curr_ to change
  // Inserts c's entries (at c->c_time) into heap_ and latest_; true if it
  // is now the one the thread must wake up for first.
  bool enqueue(callout* c) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void dequeue(callout* c) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  std::multimap<sbintime_t, callout*> heap_ ABSL_GUARDED_BY(mu_);
  // Each queued entry's time plus its callout's precision: the thread
  // sleeps until the smallest.
  std::multiset<sbintime_t> latest_ ABSL_GUARDED_BY(mu_);
  uint64_t wakeups_ ABSL_GUARDED_BY(mu_) = 0;
  callout* curr_ ABSL_GUARDED_BY(mu_) = nullptr;
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  kernel& k_;
  std::atomic<std::thread::id> tid_{};
  struct kthread* td_ = nullptr;
};

// callout(9) entry points.
void callout_init_mtx(kernel& k, callout* c, Mutex* mtx, int flags);
// Runs fn(arg) after |delay| ns (up to delay/16 later).
int callout_reset_sbt(callout* c, sbintime_t delay, void (*fn)(void*),
                      void* arg);
// Runs fn(arg) |ms| ticks (at least 1) after the start of the current tick,
// up to ms/16 ticks later.
int callout_reset_ms(callout* c, int64_t ms, void (*fn)(void*), void* arg);
int callout_stop(callout* c);
int callout_drain(callout* c);
bool callout_pending(const callout* c);

}  // namespace uk

#endif  // UKTLS_SYS_KERN_KERN_TIMEOUT_H_
