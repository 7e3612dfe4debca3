// callout(9) on one thread per kernel. Mirrors FreeBSD's
// sys/kern/kern_timeout.c: callout_reset_sbt_on, _callout_stop_safe and
// softclock_call_cc's "was it stopped while we waited for its lock" check.
#include "sys/kern/kern_timeout.h"

#include <chrono>

#include "sys/kern/kern_kthread.h"
#include "sys/kern/kernel.h"

namespace uk {

UK_KERNEL_SLOT(CalloutThread)

sbintime_t getsbinuptime() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// The callout thread is a kthread ("callout"), so it shows in the kernel's
// thread table and is joined at halt.
CalloutThread::CalloutThread(kernel& k) : k_(k) {
  kthread_add(
      k, "callout", [this](kthread*) { run(); },
      [this] {
        MutexLock l(&mu_);
        stop_ = true;
        cv_.SignalAll();
      },
      &td_);
}

CalloutThread::~CalloutThread() {
  if (td_ != nullptr) kthread_stop(k_, td_);
}

bool CalloutThread::enqueue(callout* c) {
  c->c_iter = heap_.emplace(c->c_time, c);
  c->c_latest = latest_.insert(c->c_time + c->c_prec);
  return c->c_latest == latest_.begin();
}

void CalloutThread::dequeue(callout* c) {
  heap_.erase(c->c_iter);
  latest_.erase(c->c_latest);
}

uint64_t CalloutThread::wakeups() {
  MutexLock l(&mu_);
  return wakeups_;
}

int CalloutThread::reset(callout* c, sbintime_t when, sbintime_t prec,
                         void (*fn)(void*), void* arg) {
  int was;
  {
    MutexLock l(&mu_);
    was = c->c_pending ? 1 : 0;
    c->c_gen++;
    c->c_func = fn;
    c->c_arg = arg;
    c->c_time = when;
    c->c_prec = prec;
    // Pushed later while armed (TCP's retransmit timer on every ACK): the
    // entry stays where it is and run() moves it when it comes due, so the
    // common reset touches no tree and allocates nothing.
    if (c->c_pending && when >= c->c_iter->first) return was;
    if (c->c_pending) dequeue(c);
    c->c_pending = true;
    if (enqueue(c)) cv_.Signal();
  }
  // The armed state holds one owner reference; a rescheduled callout keeps
  // the one it had.
  if (!was && c->c_ref) c->c_ref(arg, +1);
  return was;
}

int CalloutThread::stop(callout* c) {
  void* arg;
  {
    MutexLock l(&mu_);
    c->c_gen++;
    if (!c->c_pending) return 0;
    dequeue(c);
    c->c_pending = false;
    arg = c->c_arg;
  }
  if (c->c_ref) c->c_ref(arg, -1);
  return 1;
}

int CalloutThread::drain(callout* c) {
  int was = stop(c);
  MutexLock l(&mu_);
  if (std::this_thread::get_id() == tid_.load()) return was;
  while (curr_ == c) drain_cv_.Wait(&mu_);
  return was;
}

bool CalloutThread::pending(const callout* c) {
  MutexLock l(&mu_);
  return c->c_pending;
}

void CalloutThread::run() {
  tid_.store(std::this_thread::get_id());
  mu_.Lock();
  bool woke_counted = false;
  while (!stop_) {
    if (heap_.empty()) {
      cv_.Wait(&mu_);
      woke_counted = false;
      continue;
    }
    auto it = heap_.begin();
    sbintime_t now = getsbinuptime();
    if (it->first > now) {
      // Asleep until the first time some callout must run by (no earlier
      // than the first entry's time); then every callout whose time has
      // come runs on this one wakeup.
      cv_.WaitWithTimeout(&mu_, absl::Nanoseconds(*latest_.begin() - now));
      woke_counted = false;
      continue;
    }
    if (!woke_counted) {
      wakeups_++;
      woke_counted = true;
    }
    callout* c = it->second;
    dequeue(c);
    if (c->c_time > now) {
      // Reset to a later time since it was queued: queue it there.
      enqueue(c);
      continue;
    }
    c->c_pending = false;
    uint64_t gen = c->c_gen;
    void (*fn)(void*) = c->c_func;
    void* arg = c->c_arg;
    void (*ref)(void*, int) = c->c_ref;
    Mutex* lk = c->c_lock;
    bool unlocks = (c->c_flags & CALLOUT_RETURNUNLOCKED) != 0;
    curr_ = c;
    mu_.Unlock();
    if (lk != nullptr) {
      lk->Lock();
      mu_.Lock();
      // Stopped or rescheduled while we waited for its lock: as FreeBSD's
      // softclock, do not run it.
      bool cancelled = c->c_gen != gen;
      mu_.Unlock();
      if (!cancelled) {
        fn(arg);
        if (!unlocks) lk->Unlock();
      } else {
        lk->Unlock();
      }
    } else {
      fn(arg);
    }
    // The reference the armed state held, dropped with no lock held.
    if (ref) ref(arg, -1);
    mu_.Lock();
    curr_ = nullptr;
    drain_cv_.SignalAll();
  }
  mu_.Unlock();
}

void callout_init_mtx(kernel& k, callout* c, Mutex* mtx, int flags) {
  c->c_cc = k.callout.get();
  c->c_lock = mtx;
  c->c_flags = flags;
}

// FreeBSD's tc_precexp with the default 5 % kern.timecounter.alloweddeviation.
constexpr int kPrecExp = 4;

int callout_reset_sbt(callout* c, sbintime_t delay, void (*fn)(void*),
                      void* arg) {
  if (delay < 0) delay = 0;
  return c->c_cc->reset(c, getsbinuptime() + delay, delay >> kPrecExp, fn, arg);
}

int callout_reset_ms(callout* c, int64_t ms, void (*fn)(void*), void* arg) {
  if (ms < 1) ms = 1;
  sbintime_t tick = getsbinuptime() / SBT_1MS * SBT_1MS;  // hardclocktime
  sbintime_t delay = ms * SBT_1MS;
  return c->c_cc->reset(c, tick + delay, delay >> kPrecExp, fn, arg);
}

int callout_stop(callout* c) { return c->c_cc->stop(c); }
int callout_drain(callout* c) { return c->c_cc->drain(c); }
bool callout_pending(const callout* c) { return c->c_cc->pending(c); }

static int callout_sysinit(kernel& k) {
  k.callout.reset(new CalloutThread(k));
  if (k.callout->running() == false) {
    k.callout.reset();
    return EAGAIN;
  }
  return 0;
}

static void callout_sysuninit(kernel& k) { k.callout.reset(); }

UK_SYSINIT(callout, SI_SUB_CALLOUT, SI_ORDER_FIRST, callout_sysinit,
           callout_sysuninit);

}  // namespace uk
