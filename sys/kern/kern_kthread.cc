// Kernel threads and per-CPU workers. Mirrors FreeBSD's
// sys/kern/kern_kthread.c (kthread_add, kthread_exit) and the worker loops of
// uipc_ktls.c (ktls_work_thread) and crypto.c (crypto_ret_proc); see
// kern_kthread.h.
#include "sys/kern/kern_kthread.h"

#include <pthread.h>
#include <sched.h>

#include <cerrno>
#include <system_error>

#include "sys/kern/kernel.h"
#include "sys/kern/subr_prf.h"

namespace uk {

UK_KERNEL_SLOT(KthreadTable)

namespace {

void set_host_thread_name(pthread_t t, std::string_view name) {
  // Linux allows 15 bytes plus the terminator.
  std::string n(name.substr(0, 15));
  pthread_setname_np(t, n.c_str());
}

}  // namespace

void kthread_set_name(std::thread& t, std::string_view name) {
  set_host_thread_name(t.native_handle(), name);
}

int kthread_bind_cpu(int cpu) {
  unsigned ncores = std::thread::hardware_concurrency();
  if (ncores == 0) ncores = 1;
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(static_cast<unsigned>(cpu) % ncores, &set);
  return pthread_setaffinity_np(pthread_self(), sizeof(set), &set);
}

KthreadTable::~KthreadTable() { stop_all(); }

int KthreadTable::add(kernel& k, std::string_view name,
                      std::function<void(kthread*)> fn,
                      std::function<void()> wake, kthread** out) {
  auto td = std::make_unique<kthread>();
  td->name = std::string(name);
  td->k = &k;
  td->wake = std::move(wake);
  kthread* raw = td.get();
  {
    MutexLock l(&mu_);
    if (closed_) return ENXIO;
    // Started under mu_ so that stop_all() cannot miss a thread being born.
    try {
      td->thr = std::thread([raw, fn = std::move(fn)]() {
        set_host_thread_name(pthread_self(), raw->name);
        fn(raw);
      });
    } catch (const std::system_error&) {
      return EAGAIN;
    }
    threads_.push_back(std::move(td));
  }
  if (out != nullptr) *out = raw;
  return 0;
}

void KthreadTable::stop(kthread* td) {
  std::unique_ptr<kthread> owned;
  {
    MutexLock l(&mu_);
    for (auto it = threads_.begin(); it != threads_.end(); ++it) {
      if (it->get() == td) {
        owned = std::move(*it);
        threads_.erase(it);
        break;
      }
    }
  }
  if (!owned) return;
  owned->stop.store(true, std::memory_order_release);
  if (owned->wake) owned->wake();
  if (owned->thr.joinable()) owned->thr.join();
}

void KthreadTable::stop_all() {
  std::vector<std::unique_ptr<kthread>> all;
  {
    MutexLock l(&mu_);
    closed_ = true;
    all.swap(threads_);
  }
  // Ask all first, then join: they wind down in parallel.
  for (auto& td : all) {
    td->stop.store(true, std::memory_order_release);
    if (td->wake) td->wake();
  }
  for (auto& td : all)
    if (td->thr.joinable()) td->thr.join();
}

size_t KthreadTable::count() {
  MutexLock l(&mu_);
  return threads_.size();
}

std::vector<std::string> KthreadTable::names() {
  MutexLock l(&mu_);
  std::vector<std::string> v;
  for (const auto& td : threads_) v.push_back(td->name);
  return v;
}

int kthread_add(kernel& k, std::string_view name,
                std::function<void(kthread*)> fn, std::function<void()> wake,
                kthread** out) {
  if (!k.kthreads) return ENXIO;
  return k.kthreads->add(k, name, std::move(fn), std::move(wake), out);
}

void kthread_stop(kernel& k, kthread* td) {
  // Without a table, halt has already joined every thread.
  if (k.kthreads && td != nullptr) k.kthreads->stop(td);
}

static int kthread_sysinit(kernel& k) {
  k.kthreads.reset(new KthreadTable());
  return 0;
}

static void kthread_sysuninit(kernel& k) {
  if (!k.kthreads) return;
  size_t left = k.kthreads->count();
  if (left != 0) {
    for (const std::string& n : k.kthreads->names())
      kprintf(k, "kthread %s still running at halt; stopping it\n", n.c_str());
  }
  k.kthreads.reset();
}

UK_SYSINIT(kthread, SI_SUB_KTHREAD, SI_ORDER_FIRST, kthread_sysinit,
           kthread_sysuninit);

// WorkerPool

int WorkerPool::create(kernel& k, std::string_view name, int n, bool bind,
                       std::unique_ptr<WorkerPool>* out) {
  if (n < 0) return EINVAL;
  if (n == 0) n = k.ncpus;
  std::unique_ptr<WorkerPool> wp(new WorkerPool(k));
  for (int i = 0; i < n; i++) wp->queues_.push_back(std::make_unique<Queue>());
  for (int i = 0; i < n; i++) {
    Queue* q = wp->queues_[i].get();
    WorkerPool* self = wp.get();
    int error = kthread_add(
        k, std::string(name) + std::to_string(i),
        [self, q, i, bind](kthread*) { self->run(q, i, bind); },
        [q]() {
          q->mu.Lock();
          q->stop = true;
          q->cv.SignalAll();
          q->mu.Unlock();
        },
        &q->td);
    if (error != 0) return error;  // ~WorkerPool stops those started
  }
  *out = std::move(wp);
  return 0;
}

WorkerPool::~WorkerPool() {
  for (auto& q : queues_)
    if (q->td != nullptr) kthread_stop(k_, q->td);
}

void WorkerPool::run(Queue* q, int cpu, bool bind) {
  if (bind) kthread_bind_cpu(cpu);
  q->mu.Lock();
  for (;;) {
    while (q->items.empty() && !q->stop) q->cv.Wait(&q->mu);
    if (q->items.empty()) break;  // stopping, and everything queued has run
    Work w = std::move(q->items.front());
    q->items.pop_front();
    q->running++;
    q->mu.Unlock();
    w();
    w = nullptr;  // whatever the work captured is released off the lock
    q->mu.Lock();
    q->running--;
    q->done++;
    q->idle_cv.SignalAll();
  }
  q->mu.Unlock();
}

void WorkerPool::enqueue(int cpu, Work w) {
  Queue* q = queues_[static_cast<unsigned>(cpu) % queues_.size()].get();
  q->mu.Lock();
  q->items.push_back(std::move(w));
  q->queued++;
  q->cv.Signal();
  q->mu.Unlock();
}

void WorkerPool::drain() {
  for (auto& qp : queues_) {
    Queue* q = qp.get();
    q->mu.Lock();
    uint64_t target = q->queued;
    while (q->done < target) q->idle_cv.Wait(&q->mu);
    q->mu.Unlock();
  }
}

size_t WorkerPool::depth(int cpu) {
  Queue* q = queues_[static_cast<unsigned>(cpu) % queues_.size()].get();
  q->mu.Lock();
  size_t d = q->items.size() + q->running;
  q->mu.Unlock();
  return d;
}

uint64_t WorkerPool::completed(int cpu) {
  Queue* q = queues_[static_cast<unsigned>(cpu) % queues_.size()].get();
  q->mu.Lock();
  uint64_t d = q->done;
  q->mu.Unlock();
  return d;
}

}  // namespace uk
