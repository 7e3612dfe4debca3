// taskqueue(9). Mirrors FreeBSD's sys/kern/subr_taskqueue.c
// (taskqueue_enqueue_locked's coalescing and priority insertion,
// taskqueue_run_locked, taskqueue_drain, taskqueue_cancel); see
// subr_taskqueue.h.
#include "sys/kern/subr_taskqueue.h"

#include <algorithm>
#include <cerrno>
#include <climits>

#include "sys/kern/kern_kthread.h"
#include "sys/kern/kernel.h"

namespace uk {

namespace {

void taskqueue_thread_loop(taskqueue* tq, size_t slot) {
  tq->mu.Lock();
  for (;;) {
    while (tq->head == nullptr && !tq->stopping) tq->cv.Wait(&tq->mu);
    if (tq->head == nullptr) break;  // stopping, and the queue has drained
    task* t = tq->head;
    tq->head = t->ta_next;
    t->ta_next = nullptr;
    int pending = t->ta_pending;
    t->ta_pending = 0;
    tq->running[slot] = t;
    tq->mu.Unlock();
    t->ta_func(pending);
    tq->mu.Lock();
    // t may be gone now (a handler may free its own task); only compare it.
    tq->running[slot] = nullptr;
    tq->done_cv.SignalAll();
  }
  tq->mu.Unlock();
}

bool is_running(taskqueue* tq, task* t) ABSL_EXCLUSIVE_LOCKS_REQUIRED(tq->mu) {
  return std::find(tq->running.begin(), tq->running.end(), t) !=
         tq->running.end();
}

void stop_threads(taskqueue* tq) {
  for (kthread* td : tq->threads) kthread_stop(*tq->k, td);
  tq->threads.clear();
}

}  // namespace

int taskqueue_create(kernel& k, std::string_view name, int nthreads,
                     taskqueue** out) {
  if (nthreads < 1) return EINVAL;
  if (!k.kthreads) return ENXIO;
  auto* tq = new taskqueue();
  tq->tq_name = std::string(name);
  tq->k = &k;
  {
    MutexLock l(&tq->mu);
    tq->running.assign(nthreads, nullptr);
  }
  for (int i = 0; i < nthreads; i++) {
    std::string tname = nthreads == 1 ? tq->tq_name
                                      : tq->tq_name + "_" + std::to_string(i);
    kthread* td = nullptr;
    int error = kthread_add(
        k, tname,
        [tq, i](kthread*) { taskqueue_thread_loop(tq, static_cast<size_t>(i)); },
        [tq]() {
          MutexLock l(&tq->mu);
          tq->stopping = true;
          tq->cv.SignalAll();
        },
        &td);
    if (error != 0) {
      stop_threads(tq);
      delete tq;
      return error;
    }
    tq->threads.push_back(td);
  }
  {
    MutexLock l(&k.kthreads->tq_mu);
    if (!k.kthreads->tq_closed) {
      k.kthreads->taskqueues.push_back(tq);
      *out = tq;
      return 0;
    }
  }
  stop_threads(tq);  // created while halt was freeing the queues
  delete tq;
  return ENXIO;
}

void taskqueue_free(taskqueue* tq) {
  if (tq == nullptr) return;
  kernel& k = *tq->k;
  if (k.kthreads) {
    MutexLock l(&k.kthreads->tq_mu);
    auto& v = k.kthreads->taskqueues;
    v.erase(std::remove(v.begin(), v.end(), tq), v.end());
  }
  // The threads run what is queued before they see `stopping` with an empty
  // queue, so freeing drains, as FreeBSD's taskqueue_terminate does.
  stop_threads(tq);
  delete tq;
}

int taskqueue_enqueue(taskqueue* tq, task* t) {
  MutexLock l(&tq->mu);
  if (t->ta_pending > 0) {
    if (t->ta_pending < USHRT_MAX) t->ta_pending++;
    return 0;
  }
  // After every task of equal or higher priority.
  task** pp = &tq->head;
  while (*pp != nullptr && (*pp)->ta_priority >= t->ta_priority)
    pp = &(*pp)->ta_next;
  t->ta_next = *pp;
  *pp = t;
  t->ta_pending = 1;
  tq->cv.Signal();
  return 0;
}

void taskqueue_drain(taskqueue* tq, task* t) {
  MutexLock l(&tq->mu);
  while (t->ta_pending != 0 || is_running(tq, t)) tq->done_cv.Wait(&tq->mu);
}

void taskqueue_drain_all(taskqueue* tq) {
  MutexLock l(&tq->mu);
  for (;;) {
    bool busy = tq->head != nullptr;
    for (task* r : tq->running) busy = busy || r != nullptr;
    if (!busy) break;
    tq->done_cv.Wait(&tq->mu);
  }
}

int taskqueue_cancel(taskqueue* tq, task* t, int* pendp) {
  MutexLock l(&tq->mu);
  int pending = t->ta_pending;
  if (pending > 0) {
    for (task** pp = &tq->head; *pp != nullptr; pp = &(*pp)->ta_next) {
      if (*pp == t) {
        *pp = t->ta_next;
        break;
      }
    }
    t->ta_next = nullptr;
    t->ta_pending = 0;
  }
  if (pendp != nullptr) *pendp = pending;
  return is_running(tq, t) ? EBUSY : 0;
}

taskqueue* taskqueue_thread(kernel& k) {
  if (!k.kthreads) return nullptr;
  KthreadTable& kt = *k.kthreads;
  // Started on first use rather than at boot: most kernels never need it,
  // and a thread that is started and stopped costs a good part of a
  // boot/halt cycle.
  {
    MutexLock l(&kt.tq_mu);
    if (kt.taskqueue_thread != nullptr) return kt.taskqueue_thread;
  }
  taskqueue* tq = nullptr;
  if (taskqueue_create(k, "taskqueue", 1, &tq) != 0) return nullptr;
  taskqueue* loser = nullptr;
  {
    MutexLock l(&kt.tq_mu);
    if (kt.taskqueue_thread == nullptr) {
      kt.taskqueue_thread = tq;
    } else {
      loser = tq;  // another thread created it first
    }
  }
  if (loser != nullptr) taskqueue_free(loser);
  MutexLock l(&kt.tq_mu);
  return kt.taskqueue_thread;
}

static void taskqueue_sysuninit(kernel& k) {
  if (!k.kthreads) return;
  {
    MutexLock l(&k.kthreads->tq_mu);
    k.kthreads->taskqueue_thread = nullptr;
    k.kthreads->tq_closed = true;
  }
  for (;;) {
    taskqueue* tq;
    {
      MutexLock l(&k.kthreads->tq_mu);
      if (k.kthreads->taskqueues.empty()) break;
      tq = k.kthreads->taskqueues.back();
    }
    taskqueue_free(tq);
  }
}

UK_SYSINIT(taskqueue, SI_SUB_TASKQ, SI_ORDER_FIRST, nullptr,
           taskqueue_sysuninit);

}  // namespace uk
