// taskqueue(9): deferred work run by a queue's own kernel threads. Mirrors
// FreeBSD's sys/kern/subr_taskqueue.c and sys/sys/taskqueue.h.
//
// A task is owned by its caller and may sit on at most one queue at a time.
// Enqueueing a task that is already pending only bumps ta_pending (the
// handler then runs once, with the number of enqueues it absorbed), exactly
// as FreeBSD coalesces. Tasks run in priority order (higher ta_priority
// first), FIFO among equals.
//
// Every queue belongs to one kernel and is freed by taskqueue_free() or, at
// the latest, at halt (SI_SUB_TASKQ's SYSUNINIT), which drains it first.
//
// Locking: taskqueue::mu guards the queue, ta_pending and the running set;
// handlers run without it and may enqueue (even themselves).
#ifndef UKTLS_SYS_KERN_SUBR_TASKQUEUE_H_
#define UKTLS_SYS_KERN_SUBR_TASKQUEUE_H_

#include <functional>
#include <list>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "sys/sys/lock.h"

namespace uk {

struct kernel;
struct kthread;

// FreeBSD's task_fn_t takes (context, pending); a closure holds the context.
using task_fn_t = std::function<void(int pending)>;

struct task final {
  task* ta_next = nullptr;  // queue link, guarded by the queue's mu
  int ta_pending = 0;       // guarded by the queue's mu
  int ta_priority = 0;
  task_fn_t ta_func;
};

// TASK_INIT(9).
inline void TASK_INIT(task* t, int priority, task_fn_t fn) {
  t->ta_next = nullptr;
  t->ta_pending = 0;
  t->ta_priority = priority;
  t->ta_func = std::move(fn);
}

struct taskqueue final {
  std::string tq_name;
  kernel* k = nullptr;
  Mutex mu;
  CondVar cv;       // tasks queued, or stopping
  CondVar done_cv;  // a task finished running
  task* head ABSL_GUARDED_BY(mu) = nullptr;
  std::vector<task*> running ABSL_GUARDED_BY(mu);  // one slot per thread
  bool stopping ABSL_GUARDED_BY(mu) = false;
  std::vector<kthread*> threads;
};

// taskqueue_create + taskqueue_start_threads: a queue named |name| served by
// |nthreads| kernel threads ("<name>" or "<name>_<i>"). Returns 0 or an
// errno (EINVAL for nthreads < 1, ENXIO once halt has begun freeing queues).
int taskqueue_create(kernel& k, std::string_view name, int nthreads,
                     taskqueue** out);
// Drains the queue, stops its threads and frees it.
void taskqueue_free(taskqueue* tq);
// Queues t, or counts one more pending run if it is queued already.
// Returns 0 (the queue never refuses, as FreeBSD's without TQ_FLAGS_BLOCKED).
int taskqueue_enqueue(taskqueue* tq, task* t);
// Waits until t is neither pending nor running. Must not be called from t.
void taskqueue_drain(taskqueue* tq, task* t);
// Waits until the queue is empty and nothing runs.
void taskqueue_drain_all(taskqueue* tq);
// Removes t if it is pending (*pendp gets how many runs were cancelled).
// EBUSY if it is running now (it then still runs to completion).
int taskqueue_cancel(taskqueue* tq, task* t, int* pendp);

// The kernel's general-purpose queue (FreeBSD's taskqueue_thread), one
// thread named "taskqueue", started on first use. Null during halt.
taskqueue* taskqueue_thread(kernel& k);

}  // namespace uk

#endif  // UKTLS_SYS_KERN_SUBR_TASKQUEUE_H_
