// Kernel threads, the per-CPU worker pool and taskqueue(9).
#include <pthread.h>
#include <sched.h>

#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "lib/libuk/uk.h"
#include "sys/kern/kern_kthread.h"
#include "sys/kern/kern_proc.h"
#include "sys/kern/kernel.h"
#include "sys/kern/subr_taskqueue.h"

namespace {

struct Kern {
  explicit Kern(int ncpus = 3) {
    uk_boot_config cfg{};
    cfg.ncpus = ncpus;
    cfg.modules = "";
    k = uk_boot(&cfg);
    p = uk_proc_create(k, "kthread_test");
  }
  ~Kern() {
    if (k != nullptr) uk_halt(k);
  }
  uk::kernel& kern() { return *p->k; }
  uk_kernel* k = nullptr;
  uk_proc* p = nullptr;
};

std::string thread_name() {
  char buf[32] = {};
  pthread_getname_np(pthread_self(), buf, sizeof(buf));
  return buf;
}

// A one-shot gate for tests (host primitives: this is test code).
class Gate {
 public:
  void open() {
    std::lock_guard<std::mutex> l(mu_);
    open_ = true;
    cv_.notify_all();
  }
  void wait() {
    std::unique_lock<std::mutex> l(mu_);
    cv_.wait(l, [this] { return open_; });
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool open_ = false;
};

TEST(Kthread, NamedHostThreadRunsUntilStopped) {
  Kern a;
  size_t before = a.kern().kthreads->count();
  std::mutex mu;
  std::condition_variable cv;
  std::string seen;
  Gate started;
  uk::kthread* td = nullptr;
  ASSERT_EQ(uk::kthread_add(
                a.kern(), "a_rather_long_thread_name",
                [&](uk::kthread* self) {
                  {
                    std::lock_guard<std::mutex> l(mu);
                    seen = thread_name();
                  }
                  started.open();
                  std::unique_lock<std::mutex> l(mu);
                  cv.wait(l, [self] { return uk::kthread_should_stop(self); });
                },
                [&] {
                  std::lock_guard<std::mutex> l(mu);
                  cv.notify_all();
                },
                &td),
            0);
  started.wait();
  EXPECT_EQ(a.kern().kthreads->count(), before + 1);
  {
    std::lock_guard<std::mutex> l(mu);
    EXPECT_EQ(seen, "a_rather_long_t");  // Linux keeps 15 bytes
  }
  uk::kthread_stop(a.kern(), td);
  EXPECT_EQ(a.kern().kthreads->count(), before);
}

// A subsystem's own host thread (KTLS workers, nic_sim's queues, the wire)
// is named as kthread_add names its threads: the first 15 bytes.
TEST(Kthread, SetNameNamesAnotherThread) {
  Gate named, done;
  std::string seen;
  std::thread t([&] {
    named.wait();
    seen = thread_name();
    done.open();
  });
  uk::kthread_set_name(t, "nic_sim12_toe_and_more");
  named.open();
  done.wait();
  t.join();
  EXPECT_EQ(seen, "nic_sim12_toe_a");
}

TEST(Kthread, HaltStopsAndJoinsThreadsLeftRunning) {
  std::atomic<int> exited{0};
  {
    Kern a;
    for (int i = 0; i < 4; i++) {
      auto* mu = new std::mutex;
      auto* cv = new std::condition_variable;
      ASSERT_EQ(uk::kthread_add(
                    a.kern(), "straggler" + std::to_string(i),
                    [mu, cv, &exited](uk::kthread* self) {
                      {
                        std::unique_lock<std::mutex> l(*mu);
                        cv->wait(l, [self] { return uk::kthread_should_stop(self); });
                      }
                      delete cv;
                      delete mu;
                      exited++;
                    },
                    [mu, cv] {
                      std::lock_guard<std::mutex> l(*mu);
                      cv->notify_all();
                    },
                    nullptr),
                0);
    }
  }
  EXPECT_EQ(exited.load(), 4);
}

TEST(Kthread, AddAfterTableIsGoneFails) {
  Kern a;
  // kthread_add on a kernel whose table is gone (as during halt).
  auto saved = std::move(a.kern().kthreads);
  EXPECT_EQ(uk::kthread_add(a.kern(), "x", [](uk::kthread*) {}, nullptr, nullptr),
            ENXIO);
  a.kern().kthreads = std::move(saved);
}

TEST(WorkerPool, OneWorkerPerCpuKeepsFifoOrderPerQueue) {
  Kern a(4);
  std::unique_ptr<uk::WorkerPool> wp;
  ASSERT_EQ(uk::WorkerPool::create(a.kern(), "wq", 0, false, &wp), 0);  // k.ncpus
  ASSERT_EQ(wp->size(), 4);
  std::mutex mu;
  std::vector<std::vector<int>> order(4);
  std::vector<std::set<std::string>> names(4);
  for (int i = 0; i < 400; i++) {
    int q = i % 4;
    wp->enqueue(q, [&, q, i] {
      std::lock_guard<std::mutex> l(mu);
      order[q].push_back(i);
      names[q].insert(thread_name());
    });
  }
  wp->drain();
  std::lock_guard<std::mutex> l(mu);
  for (int q = 0; q < 4; q++) {
    ASSERT_EQ(order[q].size(), 100u);
    for (size_t j = 1; j < order[q].size(); j++) EXPECT_LT(order[q][j - 1], order[q][j]);
    EXPECT_EQ(names[q], std::set<std::string>{"wq" + std::to_string(q)});
    EXPECT_EQ(wp->completed(q), 100u);
    EXPECT_EQ(wp->depth(q), 0u);
  }
}

TEST(WorkerPool, BoundWorkersRunOnTheirCore) {
  Kern a(2);
  std::unique_ptr<uk::WorkerPool> wp;
  ASSERT_EQ(uk::WorkerPool::create(a.kern(), "bound", 2, true, &wp), 0);
  unsigned cores = std::max(1u, std::thread::hardware_concurrency());
  std::atomic<int> cpu0{-1}, cpu1{-1};
  wp->enqueue(0, [&] { cpu0 = sched_getcpu(); });
  wp->enqueue(1, [&] { cpu1 = sched_getcpu(); });
  wp->drain();
  EXPECT_EQ(static_cast<unsigned>(cpu0.load()), 0 % cores);
  EXPECT_EQ(static_cast<unsigned>(cpu1.load()), 1 % cores);
}

TEST(WorkerPool, DestructionRunsWhatIsQueued) {
  Kern a(2);
  std::atomic<int> ran{0};
  {
    std::unique_ptr<uk::WorkerPool> wp;
    ASSERT_EQ(uk::WorkerPool::create(a.kern(), "w", 2, false, &wp), 0);
    for (int i = 0; i < 50; i++) wp->enqueue(i, [&] { ran++; });
  }
  EXPECT_EQ(ran.load(), 50);
}

TEST(Taskqueue, PendingEnqueuesCoalesceIntoOneRun) {
  Kern a;
  uk::taskqueue* tq = nullptr;
  ASSERT_EQ(uk::taskqueue_create(a.kern(), "tq", 1, &tq), 0);
  Gate blocker_running, release;
  uk::task blocker, t;
  std::atomic<int> runs{0}, last_pending{0};
  uk::TASK_INIT(&blocker, 0, [&](int) {
    blocker_running.open();
    release.wait();
  });
  uk::TASK_INIT(&t, 0, [&](int pending) {
    runs++;
    last_pending = pending;
  });
  uk::taskqueue_enqueue(tq, &blocker);
  blocker_running.wait();
  for (int i = 0; i < 3; i++) uk::taskqueue_enqueue(tq, &t);
  release.open();
  uk::taskqueue_drain(tq, &t);
  EXPECT_EQ(runs.load(), 1);
  EXPECT_EQ(last_pending.load(), 3);
  // Once run, the next enqueue runs it again.
  uk::taskqueue_enqueue(tq, &t);
  uk::taskqueue_drain(tq, &t);
  EXPECT_EQ(runs.load(), 2);
  EXPECT_EQ(last_pending.load(), 1);
  uk::taskqueue_free(tq);
}

TEST(Taskqueue, HigherPriorityRunsFirst) {
  Kern a;
  uk::taskqueue* tq = nullptr;
  ASSERT_EQ(uk::taskqueue_create(a.kern(), "prio", 1, &tq), 0);
  Gate blocker_running, release;
  uk::task blocker, lo1, lo2, hi;
  std::mutex mu;
  std::vector<std::string> order;
  auto rec = [&](const char* n) {
    return [&, n](int) {
      std::lock_guard<std::mutex> l(mu);
      order.push_back(n);
    };
  };
  uk::TASK_INIT(&blocker, 0, [&](int) {
    blocker_running.open();
    release.wait();
  });
  uk::TASK_INIT(&lo1, 0, rec("lo1"));
  uk::TASK_INIT(&lo2, 0, rec("lo2"));
  uk::TASK_INIT(&hi, 5, rec("hi"));
  uk::taskqueue_enqueue(tq, &blocker);
  blocker_running.wait();
  uk::taskqueue_enqueue(tq, &lo1);
  uk::taskqueue_enqueue(tq, &lo2);
  uk::taskqueue_enqueue(tq, &hi);
  release.open();
  uk::taskqueue_drain_all(tq);
  std::lock_guard<std::mutex> l(mu);
  EXPECT_EQ(order, (std::vector<std::string>{"hi", "lo1", "lo2"}));
}

TEST(Taskqueue, CancelRemovesPendingAndIsEbusyWhileRunning) {
  Kern a;
  uk::taskqueue* tq = nullptr;
  ASSERT_EQ(uk::taskqueue_create(a.kern(), "cancel", 1, &tq), 0);
  Gate running, release;
  uk::task blocker, t;
  std::atomic<int> runs{0};
  uk::TASK_INIT(&blocker, 0, [&](int) {
    running.open();
    release.wait();
  });
  uk::TASK_INIT(&t, 0, [&](int) { runs++; });
  uk::taskqueue_enqueue(tq, &blocker);
  running.wait();
  uk::taskqueue_enqueue(tq, &t);
  uk::taskqueue_enqueue(tq, &t);
  int pending = -1;
  EXPECT_EQ(uk::taskqueue_cancel(tq, &t, &pending), 0);
  EXPECT_EQ(pending, 2);
  EXPECT_EQ(uk::taskqueue_cancel(tq, &blocker, &pending), EBUSY);
  EXPECT_EQ(pending, 0);
  release.open();
  uk::taskqueue_drain_all(tq);
  EXPECT_EQ(runs.load(), 0);
}

TEST(Taskqueue, ManyThreadsRunTasksConcurrently) {
  Kern a;
  uk::taskqueue* tq = nullptr;
  ASSERT_EQ(uk::taskqueue_create(a.kern(), "multi", 4, &tq), 0);
  // Four tasks that each wait for all four to be running: only possible
  // with four threads.
  std::mutex mu;
  std::condition_variable cv;
  int inside = 0;
  std::set<std::string> names;
  uk::task t[4];
  for (auto& ti : t) {
    uk::TASK_INIT(&ti, 0, [&](int) {
      std::unique_lock<std::mutex> l(mu);
      inside++;
      names.insert(thread_name());
      cv.notify_all();
      cv.wait(l, [&] { return inside == 4; });
    });
    uk::taskqueue_enqueue(tq, &ti);
  }
  uk::taskqueue_drain_all(tq);
  EXPECT_EQ(inside, 4);
  EXPECT_EQ(names, (std::set<std::string>{"multi_0", "multi_1", "multi_2", "multi_3"}));
}

TEST(Taskqueue, TaskMayRequeueItselfAndHaltDrainsQueues) {
  std::atomic<int> runs{0};
  uk::task t;
  {
    Kern a;
    uk::taskqueue* tq = nullptr;
    ASSERT_EQ(uk::taskqueue_create(a.kern(), "self", 1, &tq), 0);
    uk::TASK_INIT(&t, 0, [&, tq](int) {
      if (++runs < 10) uk::taskqueue_enqueue(tq, &t);
    });
    uk::taskqueue_enqueue(tq, &t);
    // Not freed here: halt frees (and drains) it.
  }
  EXPECT_EQ(runs.load(), 10);
}

TEST(Taskqueue, KernelHasATaskqueueThread) {
  Kern a;
  uk::taskqueue* tq = uk::taskqueue_thread(a.kern());
  ASSERT_NE(tq, nullptr);
  std::atomic<bool> ran{false};
  std::string name;
  uk::task t;
  uk::TASK_INIT(&t, 0, [&](int) {
    name = thread_name();
    ran = true;
  });
  uk::taskqueue_enqueue(tq, &t);
  uk::taskqueue_drain(tq, &t);
  EXPECT_TRUE(ran.load());
  EXPECT_EQ(name, "taskqueue");
  EXPECT_EQ(uk::taskqueue_create(a.kern(), "bad", 0, &tq), EINVAL);
}

}  // namespace
