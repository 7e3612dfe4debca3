// Kernel locks: Mutex, MutexLock and CondVar with Abseil's thread-safety
// annotations (ABSL_GUARDED_BY and friends work on them).
//
// In normal builds these are absl::Mutex and absl::CondVar. Debian's Abseil is
// not compiled with ThreadSanitizer, so TSan cannot see absl::Mutex's
// happens-before edges; under --config=tsan (UKTLS_TSAN) the same API is backed
// by std::mutex / std::condition_variable_any, whose pthread calls TSan
// intercepts. Code uses only the subset below so both back-ends behave alike.
#ifndef UKTLS_SYS_SYS_LOCK_H_
#define UKTLS_SYS_SYS_LOCK_H_

#include <chrono>
#include <condition_variable>
#include <mutex>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace uk {

#ifndef UKTLS_TSAN

using Mutex = absl::Mutex;
using MutexLock = absl::MutexLock;

class CondVar {
 public:
  void Wait(Mutex* mu) { cv_.Wait(mu); }
  // Returns true on timeout.
  bool WaitWithTimeout(Mutex* mu, absl::Duration d) {
    return cv_.WaitWithTimeout(mu, d);
  }
  void Signal() { cv_.Signal(); }
  void SignalAll() { cv_.SignalAll(); }

 private:
  absl::CondVar cv_;
};

#else  // UKTLS_TSAN

class ABSL_LOCKABLE Mutex {
 public:
  Mutex() = default;
  Mutex(const Mutex&) = delete;
  Mutex& operator=(const Mutex&) = delete;
  void Lock() ABSL_EXCLUSIVE_LOCK_FUNCTION() { mu_.lock(); }
  void Unlock() ABSL_UNLOCK_FUNCTION() { mu_.unlock(); }
  bool TryLock() ABSL_EXCLUSIVE_TRYLOCK_FUNCTION(true) { return mu_.try_lock(); }
  void AssertHeld() const ABSL_ASSERT_EXCLUSIVE_LOCK() {}
  std::mutex& native() { return mu_; }

 private:
  std::mutex mu_;
};

class ABSL_SCOPED_LOCKABLE MutexLock {
 public:
  explicit MutexLock(Mutex* mu) ABSL_EXCLUSIVE_LOCK_FUNCTION(mu) : mu_(mu) {
    mu_->Lock();
  }
  MutexLock(const MutexLock&) = delete;
  MutexLock& operator=(const MutexLock&) = delete;
  ~MutexLock() ABSL_UNLOCK_FUNCTION() { mu_->Unlock(); }

 private:
  Mutex* const mu_;
};

class CondVar {
 public:
  void Wait(Mutex* mu) {
    std::unique_lock<std::mutex> l(mu->native(), std::adopt_lock);
    cv_.wait(l);
    l.release();
  }
  bool WaitWithTimeout(Mutex* mu, absl::Duration d) {
    std::unique_lock<std::mutex> l(mu->native(), std::adopt_lock);
    bool timedout = cv_.wait_for(l, absl::ToChronoNanoseconds(d)) ==
                    std::cv_status::timeout;
    l.release();
    return timedout;
  }
  void Signal() { cv_.notify_one(); }
  void SignalAll() { cv_.notify_all(); }

 private:
  std::condition_variable cv_;
};

#endif  // UKTLS_TSAN

}  // namespace uk

#endif  // UKTLS_SYS_SYS_LOCK_H_
