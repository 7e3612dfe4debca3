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
// Locking: CalloutThread::mu_ guards the heap and every callout's c_time,
// c_gen, c_pending and c_iter. Lock order: a callout's c_lock -> mu_;
// the thread never holds mu_ while taking a c_lock.
#ifndef UKTLS_SYS_KERN_KERN_TIMEOUT_H_
#define UKTLS_SYS_KERN_KERN_TIMEOUT_H_

#include <cstdint>
#include <atomic>
#include <map>
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
  uint64_t c_gen = 0;
  bool c_pending = false;
  std::multimap<sbintime_t, callout*>::iterator c_iter;
};

class CalloutThread final {
 public:
  explicit CalloutThread(kernel& k);
  ~CalloutThread();  // stops and joins the thread; no callout may be armed
  CalloutThread(const CalloutThread&) = delete;
  CalloutThread& operator=(const CalloutThread&) = delete;

  // Arms c to run at absolute time |when|. Returns 1 if it was pending
  // (and is rescheduled), 0 otherwise.
  int reset(callout* c, sbintime_t when, void (*fn)(void*), void* arg)
      ABSL_LOCKS_EXCLUDED(mu_);
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
  std::multimap<sbintime_t, callout*> heap_ ABSL_GUARDED_BY(mu_);
  callout* curr_ ABSL_GUARDED_BY(mu_) = nullptr;
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  kernel& k_;
  std::atomic<std::thread::id> tid_{};
  struct kthread* td_ = nullptr;
};

// callout(9) entry points.
void callout_init_mtx(kernel& k, callout* c, Mutex* mtx, int flags);
// Runs fn(arg) after |delay| ns.
int callout_reset_sbt(callout* c, sbintime_t delay, void (*fn)(void*),
                      void* arg);
inline int callout_reset_ms(callout* c, int64_t ms, void (*fn)(void*),
                            void* arg) {
  return callout_reset_sbt(c, ms * SBT_1MS, fn, arg);
}
int callout_stop(callout* c);
int callout_drain(callout* c);
bool callout_pending(const callout* c);

}  // namespace uk

#endif  // UKTLS_SYS_KERN_KERN_TIMEOUT_H_
