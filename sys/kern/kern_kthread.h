// Kernel threads (kthread(9)) and the per-CPU worker pool built on them.
// Mirrors FreeBSD's sys/kern/kern_kthread.c: every kernel thread is one named
// host thread owned by one kernel; halt stops and joins them all.
//
// Stop protocol: a thread's body runs until it sees kthread_should_stop(td).
// kthread_stop(td) sets that flag, calls the wake hook given at creation (so
// a body sleeping on its own condition variable notices), and joins. An owner
// stops its threads in its own SYSUNINIT; whatever is left when the
// KthreadTable goes (at SI_SUB_KTHREAD, after every later subsystem has
// uninitialised) is stopped and joined there, so no thread outlives a kernel.
//
// Locking: KthreadTable::mu_ guards the list of threads only; bodies and wake
// hooks run without it. Lock order: a subsystem's own locks -> mu_ never
// happens in reverse (the table calls wake hooks unlocked).
#ifndef UKTLS_SYS_KERN_KERN_KTHREAD_H_
#define UKTLS_SYS_KERN_KERN_KTHREAD_H_

#include <atomic>
#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "sys/sys/lock.h"

namespace uk {

struct kernel;
class KthreadTable;
struct taskqueue;

// One kernel thread. Owned by its kernel's KthreadTable.
struct kthread final {
  std::string name;  // full name; the host thread gets the first 15 bytes
  kernel* k = nullptr;
  std::atomic<bool> stop{false};
  std::function<void()> wake;  // may be empty
  std::thread thr;
};

inline bool kthread_should_stop(const kthread* td) {
  return td->stop.load(std::memory_order_acquire);
}

// kthread_add(9): starts fn(td) on a new host thread named |name|. The body
// must return once kthread_should_stop(td) is true (after |wake| has been
// called). *out, if non-null, gets the thread for kthread_stop(). Returns 0,
// ENXIO if the kernel's thread table is gone (halt), or EAGAIN if the host
// cannot create a thread.
int kthread_add(kernel& k, std::string_view name,
                std::function<void(kthread*)> fn, std::function<void()> wake,
                kthread** out);
// Stops and joins td (see the stop protocol above) and frees it. Must not be
// called from td itself.
void kthread_stop(kernel& k, kthread* td);
// Pins the calling thread to host CPU (cpu % host cores), as sched_bind().
// Returns 0 or an errno.
int kthread_bind_cpu(int cpu);

// Names a host thread the kernel started without kthread_add (a driver's
// or subsystem's own std::thread), as kthread_add names its threads: the
// first 15 bytes, what top -H and perf show.
void kthread_set_name(std::thread& t, std::string_view name);

class KthreadTable final {
 public:
  KthreadTable() = default;
  // Stops and joins every remaining thread.
  ~KthreadTable();
  KthreadTable(const KthreadTable&) = delete;
  KthreadTable& operator=(const KthreadTable&) = delete;

  int add(kernel& k, std::string_view name, std::function<void(kthread*)> fn,
          std::function<void()> wake, kthread** out) ABSL_LOCKS_EXCLUDED(mu_);
  void stop(kthread* td) ABSL_LOCKS_EXCLUDED(mu_);
  // Stops and joins every thread; after it, add() fails with ENXIO (a
  // thread started by a stopping thread would otherwise escape the join).
  void stop_all() ABSL_LOCKS_EXCLUDED(mu_);
  // Threads alive now (for tests and kern.threads-style statistics).
  size_t count() ABSL_LOCKS_EXCLUDED(mu_);
  std::vector<std::string> names() ABSL_LOCKS_EXCLUDED(mu_);

  // This kernel's taskqueues (subr_taskqueue.cc), freed at SI_SUB_TASKQ's
  // SYSUNINIT at the latest. taskqueue_thread is FreeBSD's general-purpose
  // queue, started on first use.
  Mutex tq_mu;
  std::vector<taskqueue*> taskqueues ABSL_GUARDED_BY(tq_mu);
  taskqueue* taskqueue_thread ABSL_GUARDED_BY(tq_mu) = nullptr;
  bool tq_closed ABSL_GUARDED_BY(tq_mu) = false;  // halt: no new queues

 private:
  Mutex mu_;
  std::vector<std::unique_ptr<kthread>> threads_ ABSL_GUARDED_BY(mu_);
  bool closed_ ABSL_GUARDED_BY(mu_) = false;  // halt: no new threads
};

// Per-CPU workers: N queues, each drained in FIFO order by its own kernel
// thread, as FreeBSD's ktls_wq[] and crypto's return queues. Work submitted to
// one queue runs in submission order on that queue's thread, so a connection
// pinned to one queue keeps its records in order.
//
// Locking: each queue has its own mutex; enqueue takes only that one.
class WorkerPool final {
 public:
  using Work = std::function<void()>;

  // Starts n workers named "<name><i>" ("ktls0", ...); n = 0 means one per
  // emulated CPU (k.ncpus). With |bind|, worker i is pinned to host core
  // i % host cores (kern.ipc.tls.bind_threads). Returns 0 or an errno
  // (EINVAL for n < 0); on failure nothing is left running.
  static int create(kernel& k, std::string_view name, int n, bool bind,
                    std::unique_ptr<WorkerPool>* out);
  // Runs what is still queued, then stops and joins the workers.
  ~WorkerPool();
  WorkerPool(const WorkerPool&) = delete;
  WorkerPool& operator=(const WorkerPool&) = delete;

  int size() const { return static_cast<int>(queues_.size()); }
  // Queues work on worker (cpu % size()).
  void enqueue(int cpu, Work w);
  // Returns once every item queued before the call has run.
  void drain();
  // Items waiting or running on one worker (a queue-depth statistic).
  size_t depth(int cpu);
  // Items run by one worker so far.
  uint64_t completed(int cpu);

 private:
  struct Queue {
    Mutex mu;
    CondVar cv;       // work arrived, or stop
    CondVar idle_cv;  // a batch finished
    std::deque<Work> items ABSL_GUARDED_BY(mu);
    bool stop ABSL_GUARDED_BY(mu) = false;
    size_t running ABSL_GUARDED_BY(mu) = 0;
    uint64_t done ABSL_GUARDED_BY(mu) = 0;
    uint64_t queued ABSL_GUARDED_BY(mu) = 0;
    kthread* td = nullptr;
  };
  explicit WorkerPool(kernel& k) : k_(k) {}
  void run(Queue* q, int cpu, bool bind);

  kernel& k_;
  std::vector<std::unique_ptr<Queue>> queues_;
};

}  // namespace uk

#endif  // UKTLS_SYS_KERN_KERN_KTHREAD_H_
