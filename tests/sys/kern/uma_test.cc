// The zone allocator under the mbufs (sys/kern/uma_core.cc): per-thread
// buckets, the depot between threads, its bound, reclaim, alignment, and
// (under ASan) that a freed item cannot be touched.
#include "sys/sys/uma.h"

#include <cstdint>
#include <cstring>
#include <deque>
#include <set>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "sys/sys/lock.h"

namespace uk {
namespace {

TEST(Uma, AFreedItemIsTheNextAllocationOnTheSameThread) {
  static uma_zone_t z = uma_zcreate("test_lifo", 200, 8);
  void* a = uma_zalloc(z);
  ASSERT_NE(a, nullptr);
  uma_zfree(z, a);
  uma_zone_stats before = uma_zone_get_stats(z);
  void* b = uma_zalloc(z);
  EXPECT_EQ(a, b);
  uma_zone_stats after = uma_zone_get_stats(z);
  EXPECT_EQ(after.allocs, before.allocs + 1);
  EXPECT_EQ(after.cache_hits, before.cache_hits + 1);
  uma_zfree(z, b);
  EXPECT_EQ(uma_zone_get_stats(z).frees, after.frees + 1);
}

TEST(Uma, ItemsFreedOnAnotherThreadComeBackThroughTheDepot) {
  static uma_zone_t z = uma_zcreate("test_depot", 512, 16);
  const int n = 2000;
  std::vector<void*> items(n);
  for (auto& p : items) {
    p = uma_zalloc(z);
    ASSERT_NE(p, nullptr);
    memset(p, 0x5a, 512);
  }
  // Another thread frees them all and exits: its buckets go to the depot.
  std::thread([&] {
    for (void* p : items) uma_zfree(z, p);
  }).join();
  uma_zone_stats st = uma_zone_get_stats(z);
  EXPECT_GT(st.depot_items, 0u);
  EXPECT_GT(st.bucket_trades, 0u);
  std::set<void*> freed(items.begin(), items.end());
  int reused = 0;
  std::vector<void*> again(n);
  for (auto& p : again) {
    p = uma_zalloc(z);
    ASSERT_NE(p, nullptr);
    reused += freed.count(p) ? 1 : 0;
  }
  // Everything the depot held came back instead of new memory.
  EXPECT_GE(static_cast<uint64_t>(reused), st.depot_items);
  EXPECT_GE(uma_zone_get_stats(z).cache_hits, st.cache_hits + st.depot_items);
  for (void* p : again) uma_zfree(z, p);
}

TEST(Uma, TheDepotKeepsABoundedAmountAndReclaimEmptiesIt) {
  // 1 MiB items: the depot keeps at most 32 MiB of them.
  const size_t size = 1 << 20;
  static uma_zone_t z = uma_zcreate("test_bound", size, 64);
  const int n = 100;
  std::vector<void*> items(n);
  for (auto& p : items) {
    p = uma_zalloc(z);
    ASSERT_NE(p, nullptr);
    EXPECT_EQ(reinterpret_cast<uintptr_t>(p) % 64, 0u);
  }
  std::thread([&] {
    for (void* p : items) uma_zfree(z, p);
  }).join();
  uma_zone_stats st = uma_zone_get_stats(z);
  EXPECT_GT(st.depot_items, 0u);
  EXPECT_LE(st.depot_items * size, 32u << 20);
  uma_reclaim();
  EXPECT_EQ(uma_zone_get_stats(z).depot_items, 0u);
}

// A producer and a consumer trade items as the network stack does (the
// sender allocates, the receiver frees); every item's contents survive.
TEST(Uma, ProducerConsumerKeepsEveryItemIntact) {
  static uma_zone_t z = uma_zcreate("test_pc", 2048, 64);
  Mutex mu;
  CondVar cv;
  std::deque<uint64_t*> q;
  bool done = false;
  const uint64_t n = 200000;
  std::thread consumer([&] {
    uint64_t want = 0;
    for (;;) {
      uint64_t* p;
      {
        MutexLock l(&mu);
        while (q.empty() && !done) cv.Wait(&mu);
        if (q.empty()) break;
        p = q.front();
        q.pop_front();
      }
      EXPECT_EQ(p[0], want);
      EXPECT_EQ(p[255], ~want);
      want++;
      uma_zfree(z, p);
    }
    EXPECT_EQ(want, n);
  });
  for (uint64_t i = 0; i < n; i++) {
    auto* p = static_cast<uint64_t*>(uma_zalloc(z));
    ASSERT_NE(p, nullptr);
    p[0] = i;
    p[255] = ~i;
    MutexLock l(&mu);
    q.push_back(p);
    cv.Signal();
  }
  {
    MutexLock l(&mu);
    done = true;
    cv.Signal();
  }
  consumer.join();
  uma_zone_stats st = uma_zone_get_stats(z);
  EXPECT_EQ(st.allocs, n);
  EXPECT_EQ(st.frees, n);
  // The producer kept getting the consumer's frees back through the depot.
  EXPECT_GT(st.cache_hits, n / 2);
}

#if defined(__SANITIZE_ADDRESS__)
TEST(UmaDeathTest, UseAfterFreeIsReportedUnderAsan) {
  static uma_zone_t z = uma_zcreate("test_poison", 64, 8);
  auto* p = static_cast<volatile char*>(uma_zalloc(z));
  p[0] = 1;
  uma_zfree(z, const_cast<char*>(p));
  EXPECT_DEATH(p[0] = 2, "use-after-poison");
}
#endif

}  // namespace
}  // namespace uk
