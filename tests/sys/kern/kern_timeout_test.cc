// callout(9): arming, pushing later while armed (the entry stays queued and
// moves when it comes due), pulling earlier, stopping and draining,
// precision (callouts due close together share a wakeup) and tick-based
// arming. Every check is on order and counts (a callout never runs before its time, runs
// once per arming, runs the function and argument of its last reset), not
// on how late it runs.
#include "sys/kern/kern_timeout.h"

#include <atomic>
#include <memory>
#include <vector>

#include "gtest/gtest.h"
#include "sys/kern/kernel.h"
#include "sys/sys/lock.h"

namespace {

using uk::callout;
using uk::getsbinuptime;
using uk::kernel;
using uk::sbintime_t;
using uk::SBT_1MS;
using uk::SBT_1S;

std::unique_ptr<kernel> Boot() {
  uk::boot_params bp;
  bp.ncpus = 1;
  bp.modules = "";
  int error = 0;
  std::unique_ptr<kernel> k = kernel::boot(bp, &error);
  EXPECT_EQ(error, 0);
  return k;
}

struct Probe {
  uk::Mutex mu;
  uk::CondVar cv;
  int runs = 0;
  int which = 0;            // the tag of the function that ran last
  sbintime_t ran_at = 0;
  sbintime_t not_before = 0;  // what the test armed it for
  bool early = false;
};

template <int Tag>
void Fire(void* arg) {
  auto* p = static_cast<Probe*>(arg);
  uk::MutexLock l(&p->mu);
  p->ran_at = getsbinuptime();
  if (p->ran_at < p->not_before) p->early = true;
  p->runs++;
  p->which = Tag;
  p->cv.SignalAll();
}

// Waits (up to 10 s, a bound for a loaded host, not a measurement) until
// the probe ran n times.
bool WaitRuns(Probe* p, int n) {
  uk::MutexLock l(&p->mu);
  sbintime_t give_up = getsbinuptime() + 10 * SBT_1S;
  while (p->runs < n && getsbinuptime() < give_up)
    p->cv.WaitWithTimeout(&p->mu, absl::Milliseconds(50));
  return p->runs >= n;
}

TEST(Callout, RunsOnceNotBeforeItsTime) {
  auto k = Boot();
  callout c;
  uk::callout_init_mtx(*k, &c, nullptr, 0);
  Probe p;
  p.not_before = getsbinuptime() + 20 * SBT_1MS;
  EXPECT_EQ(uk::callout_reset_sbt(&c, 20 * SBT_1MS, Fire<1>, &p), 0);
  EXPECT_TRUE(uk::callout_pending(&c));
  ASSERT_TRUE(WaitRuns(&p, 1));
  EXPECT_FALSE(p.early);
  EXPECT_FALSE(uk::callout_pending(&c));
  EXPECT_EQ(uk::callout_drain(&c), 0);
  EXPECT_EQ(p.runs, 1);
}

// TCP pushes its retransmit timer later on every ACK: the last reset's
// time, function and argument win, and it runs once.
TEST(Callout, PushedLaterManyTimesRunsOnceAtTheLastTime) {
  auto k = Boot();
  callout c;
  uk::callout_init_mtx(*k, &c, nullptr, 0);
  Probe first, last;
  EXPECT_EQ(uk::callout_reset_sbt(&c, 5 * SBT_1MS, Fire<1>, &first), 0);
  sbintime_t deadline = 0;
  for (int i = 1; i <= 50; i++) {
    deadline = getsbinuptime() + (5 + i) * SBT_1MS;
    EXPECT_EQ(uk::callout_reset_sbt(&c, (5 + i) * SBT_1MS, i < 50 ? Fire<1> : Fire<2>,
                                    i < 50 ? &first : &last),
              1);
  }
  {
    uk::MutexLock l(&last.mu);
    last.not_before = deadline;
  }
  ASSERT_TRUE(WaitRuns(&last, 1));
  EXPECT_FALSE(last.early) << "ran before the time of its last reset";
  EXPECT_EQ(last.which, 2);
  EXPECT_EQ(uk::callout_drain(&c), 0);
  EXPECT_EQ(first.runs, 0);
  EXPECT_EQ(last.runs, 1);
}

TEST(Callout, PulledEarlierRunsAtTheEarlierTime) {
  auto k = Boot();
  callout c;
  uk::callout_init_mtx(*k, &c, nullptr, 0);
  Probe p;
  EXPECT_EQ(uk::callout_reset_sbt(&c, 3600 * SBT_1S, Fire<1>, &p), 0);
  p.not_before = getsbinuptime() + 10 * SBT_1MS;
  EXPECT_EQ(uk::callout_reset_sbt(&c, 10 * SBT_1MS, Fire<1>, &p), 1);
  ASSERT_TRUE(WaitRuns(&p, 1)) << "still waiting for the hour-long time";
  EXPECT_FALSE(p.early);
  EXPECT_EQ(uk::callout_drain(&c), 0);
}

// Stopped after being pushed later (its entry still queued at the earlier
// time): it never runs, and it can be armed again.
TEST(Callout, StoppedAfterBeingPushedLaterNeverRuns) {
  auto k = Boot();
  callout c;
  uk::callout_init_mtx(*k, &c, nullptr, 0);
  Probe p, again;
  EXPECT_EQ(uk::callout_reset_sbt(&c, 30 * SBT_1MS, Fire<1>, &p), 0);
  EXPECT_EQ(uk::callout_reset_sbt(&c, 60 * SBT_1MS, Fire<1>, &p), 1);
  EXPECT_EQ(uk::callout_stop(&c), 1);
  EXPECT_EQ(uk::callout_stop(&c), 0);
  EXPECT_FALSE(uk::callout_pending(&c));
  // A second callout armed past both times shows the first had its chance.
  callout d;
  uk::callout_init_mtx(*k, &d, nullptr, 0);
  again.not_before = getsbinuptime() + 100 * SBT_1MS;
  EXPECT_EQ(uk::callout_reset_sbt(&d, 100 * SBT_1MS, Fire<2>, &again), 0);
  ASSERT_TRUE(WaitRuns(&again, 1));
  EXPECT_EQ(p.runs, 0);
  // Re-armed, it runs.
  EXPECT_EQ(uk::callout_reset_sbt(&c, 1 * SBT_1MS, Fire<1>, &p), 0);
  ASSERT_TRUE(WaitRuns(&p, 1));
  EXPECT_EQ(uk::callout_drain(&c), 0);
  EXPECT_EQ(uk::callout_drain(&d), 0);
}

// Many callouts pushed later from several threads at once: each runs (a
// thread held up past a callout's time re-arms it, so possibly more than
// once); what TSan and ASan check here is the queue's bookkeeping.
TEST(Callout, ConcurrentResetsFromSeveralThreads) {
  auto k = Boot();
  constexpr int kN = 64;
  std::vector<callout> cs(kN);
  std::vector<Probe> ps(kN);
  for (auto& c : cs) uk::callout_init_mtx(*k, &c, nullptr, 0);
  std::vector<std::thread> ts;
  std::atomic<int> ready{0};
  for (int t = 0; t < 4; t++) {
    ts.emplace_back([&, t] {
      ready++;
      while (ready.load() < 4) {
      }
      for (int round = 0; round < 200; round++)
        for (int i = t; i < kN; i += 4)
          uk::callout_reset_sbt(&cs[i], (20 + round % 7) * SBT_1MS, Fire<1>, &ps[i]);
    });
  }
  for (auto& t : ts) t.join();
  for (int i = 0; i < kN; i++) ASSERT_TRUE(WaitRuns(&ps[i], 1)) << i;
  for (auto& c : cs) uk::callout_drain(&c);
  for (int i = 0; i < kN; i++) EXPECT_GE(ps[i].runs, 1) << i;
}

// Precision: 64 callouts due within 2.56 ms of each other, each allowed to
// run 3.125 ms late (1/16 of 50 ms), run on one or two wakeups of the
// callout thread instead of 64, and none before its time.
TEST(Callout, CalloutsDueCloseTogetherRunOnFewWakeups) {
  auto k = Boot();
  constexpr int kN = 64;
  std::vector<callout> cs(kN);
  std::vector<Probe> probes(kN);
  const uint64_t before = k->callout->wakeups();
  const sbintime_t t0 = getsbinuptime() + 50 * SBT_1MS;
  for (int i = 0; i < kN; i++) {
    uk::callout_init_mtx(*k, &cs[i], nullptr, 0);
    probes[i].not_before = t0 + i * 40000;
    EXPECT_EQ(k->callout->reset(&cs[i], probes[i].not_before, 50 * SBT_1MS / 16, Fire<1>,
                                &probes[i]),
              0);
  }
  for (int i = 0; i < kN; i++) {
    ASSERT_TRUE(WaitRuns(&probes[i], 1)) << i;
    EXPECT_EQ(uk::callout_drain(&cs[i]), 0);
    uk::MutexLock l(&probes[i].mu);
    EXPECT_EQ(probes[i].runs, 1) << i;
    EXPECT_FALSE(probes[i].early) << i;
  }
  EXPECT_LE(k->callout->wakeups() - before, 2u);
}

// callout_reset_sbt allows 1/16 of the delay; callout_reset_ms counts whole
// ticks (at least one) from the start of the current one, as FreeBSD's
// callout_reset(ticks) with C_HARDCLOCK.
TEST(Callout, ResetMsCountsWholeTicksFromTheCurrentTick) {
  auto k = Boot();
  callout a, b, z;
  uk::callout_init_mtx(*k, &a, nullptr, 0);
  uk::callout_init_mtx(*k, &b, nullptr, 0);
  uk::callout_init_mtx(*k, &z, nullptr, 0);
  Probe pa, pb, pz;
  sbintime_t before = getsbinuptime();
  pa.not_before = before / SBT_1MS * SBT_1MS + 3 * SBT_1MS;
  pz.not_before = before / SBT_1MS * SBT_1MS + SBT_1MS;
  pb.not_before = before + 32 * SBT_1MS;
  uk::callout_reset_ms(&a, 3, Fire<1>, &pa);
  uk::callout_reset_ms(&z, 0, Fire<1>, &pz);
  sbintime_t after = getsbinuptime();
  uk::callout_reset_sbt(&b, 32 * SBT_1MS, Fire<1>, &pb);
  EXPECT_EQ(a.c_time % SBT_1MS, 0);
  EXPECT_GE(a.c_time, before / SBT_1MS * SBT_1MS + 3 * SBT_1MS);
  EXPECT_LE(a.c_time, after / SBT_1MS * SBT_1MS + 3 * SBT_1MS);
  EXPECT_EQ(a.c_prec, 3 * SBT_1MS / 16);
  EXPECT_EQ(z.c_time % SBT_1MS, 0);
  EXPECT_GE(z.c_time, before / SBT_1MS * SBT_1MS + SBT_1MS) << "0 ticks is 1";
  EXPECT_EQ(b.c_prec, 2 * SBT_1MS);
  for (Probe* p : {&pa, &pb, &pz}) {
    ASSERT_TRUE(WaitRuns(p, 1));
    uk::MutexLock l(&p->mu);
    EXPECT_EQ(p->runs, 1);
    EXPECT_FALSE(p->early);
  }
  EXPECT_EQ(uk::callout_drain(&a), 0);
  EXPECT_EQ(uk::callout_drain(&b), 0);
  EXPECT_EQ(uk::callout_drain(&z), 0);
}

}  // namespace
