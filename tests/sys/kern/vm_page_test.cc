// The page pool (sys/kern/vm_page.cc): pages carved from 2 MiB host chunks,
// released pages and runs reused once they have cooled, the vm.pages_max
// limit (also when it is not a whole number of chunks), reference counts,
// runs of consecutive pages (KTLS's encryption buffers), and (under ASan)
// that a released page cannot be touched.
#include "sys/kern/vm_page.h"

#include <array>
#include <cstdint>
#include <cstring>
#include <set>
#include <vector>

#include "gtest/gtest.h"

namespace uk {
namespace {

constexpr uintptr_t kChunk = 2 << 20;

uintptr_t Addr(const vm_page* pg) { return reinterpret_cast<uintptr_t>(pg->data); }

TEST(PagePool, PagesOfOneChunkAreOneAlignedTwoMegabyteRun) {
  PagePool pool(0);
  std::vector<vm_page*> pages(512);
  ASSERT_TRUE(pool.alloc_n(pages.size(), pages.data()));
  const uintptr_t base = Addr(pages[0]);
  EXPECT_EQ(base % kChunk, 0u);
  for (size_t i = 0; i < pages.size(); i++) {
    EXPECT_EQ(Addr(pages[i]), base + i * PAGE_SIZE) << i;
    EXPECT_EQ(pages[i]->pool, &pool);
    EXPECT_EQ(pages[i]->ref_count.load(), 1u);
  }
  // The 513th page starts the next chunk.
  vm_page* next = pool.alloc();
  ASSERT_NE(next, nullptr);
  EXPECT_EQ(Addr(next) % kChunk, 0u);
  EXPECT_NE(Addr(next), base);
  PagePool::release(next);
  for (vm_page* pg : pages) PagePool::release(pg);
  EXPECT_EQ(pool.pages_in_use(), 0u);
}

TEST(PagePool, AReleasedPageIsTheNextOneHandedOut) {
  PagePool pool(0);
  vm_page* a = pool.alloc();
  vm_page* b = pool.alloc();
  ASSERT_NE(a, nullptr);
  ASSERT_NE(b, nullptr);
  memset(a->data, 0xAB, PAGE_SIZE);
  PagePool::release(a);
  EXPECT_EQ(pool.pages_free(), 1u);
  vm_page* c = pool.alloc(/*zero=*/true);
  EXPECT_EQ(c, a);
  for (size_t i = 0; i < PAGE_SIZE; i++) ASSERT_EQ(c->data[i], 0) << i;
  PagePool::release(b);
  PagePool::release(c);
  EXPECT_EQ(pool.allocs.fetch(), 3u);
  EXPECT_EQ(pool.frees.fetch(), 3u);
}

// Released pages cool as runs do (below): while fewer than kCoolingPages
// are free they go out oldest first; with more, a page goes out only once
// kCoolingPages others have come back after it, the last to cool first.
TEST(PagePool, FreePagesGoOutOldestFirstWhileFew) {
  PagePool pool(0);
  std::vector<vm_page*> pages(10);
  ASSERT_TRUE(pool.alloc_n(pages.size(), pages.data()));
  const size_t order[] = {3, 1, 4, 0, 5, 9, 2, 6, 8, 7};
  for (size_t i : order) PagePool::release(pages[i]);
  std::vector<vm_page*> back(pages.size());
  ASSERT_TRUE(pool.alloc_n(back.size(), back.data()));
  for (size_t j = 0; j < back.size(); j++) EXPECT_EQ(back[j], pages[order[j]]) << j;
  PagePool::release_n(back.data(), back.size());
  EXPECT_EQ(pool.pages_in_use(), 0u);
}

TEST(PagePool, ManyFreePagesGoOutOnceOthersCameBackAfterThem) {
  PagePool pool(0);
  constexpr size_t kPages = kCoolingPages + 232;
  std::vector<vm_page*> pages(kPages);
  ASSERT_TRUE(pool.alloc_n(pages.size(), pages.data()));
  PagePool::release_n(pages.data(), pages.size());
  EXPECT_EQ(pool.pages_free(), kPages);
  // Pages 0 .. kPages - 1 - kCoolingPages have kCoolingPages after them.
  const size_t last_cooled = kPages - 1 - kCoolingPages;
  vm_page* a = pool.alloc();
  vm_page* b = pool.alloc();
  EXPECT_EQ(a, pages[last_cooled]);
  EXPECT_EQ(b, pages[last_cooled - 1]);
  // One coming back lets the next in line cool, and that one goes first.
  PagePool::release(a);
  vm_page* c = pool.alloc();
  vm_page* d = pool.alloc();
  EXPECT_EQ(c, pages[last_cooled + 1]);
  EXPECT_EQ(d, pages[last_cooled - 2]);
  // A record's worth at once: the cooled ones, last cooled first.
  vm_page* rec[3];
  ASSERT_TRUE(pool.alloc_n(3, rec));
  for (size_t i = 0; i < 3; i++) EXPECT_EQ(rec[i], pages[last_cooled - 3 - i]) << i;
  PagePool::release_n(rec, 3);
  PagePool::release(b);
  PagePool::release(c);
  PagePool::release(d);
  EXPECT_EQ(pool.pages_in_use(), 0u);
  EXPECT_EQ(pool.pages_free(), kPages);
  EXPECT_EQ(pool.allocs.fetch(), kPages + 7);
}

TEST(PagePool, LimitThatIsNotAWholeNumberOfChunks) {
  PagePool pool(600);
  std::vector<vm_page*> pages(600);
  ASSERT_TRUE(pool.alloc_n(pages.size(), pages.data()));
  std::set<uintptr_t> distinct;
  for (vm_page* pg : pages) distinct.insert(Addr(pg));
  EXPECT_EQ(distinct.size(), 600u);
  EXPECT_EQ(pool.alloc(), nullptr);
  EXPECT_EQ(pool.failures.fetch(), 1u);
  // All or nothing.
  PagePool::release(pages.back());
  pages.pop_back();
  vm_page* two[2] = {};
  EXPECT_FALSE(pool.alloc_n(2, two));
  EXPECT_EQ(pool.pages_in_use(), 599u);
  EXPECT_EQ(pool.pages_free(), 1u);
  vm_page* one = pool.alloc();
  ASSERT_NE(one, nullptr);
  pages.push_back(one);
  for (vm_page* pg : pages) PagePool::release(pg);
  EXPECT_EQ(pool.pages_in_use(), 0u);
  EXPECT_EQ(pool.pages_free(), 600u);
}

TEST(PagePool, APageReturnsOnlyWithItsLastReference) {
  PagePool pool(1);
  vm_page* pg = pool.alloc();
  ASSERT_NE(pg, nullptr);
  PagePool::hold(pg);
  PagePool::release(pg);
  EXPECT_EQ(pool.pages_in_use(), 1u);
  EXPECT_EQ(pool.alloc(), nullptr);
  PagePool::release(pg);
  EXPECT_EQ(pool.pages_in_use(), 0u);
  vm_page* again = pool.alloc();
  EXPECT_EQ(again, pg);
  PagePool::release(again);
}

// release_n (an unmapped mbuf's pages): each page loses one reference;
// those left with none go back to their own pool, the rest stay out, in
// runs longer than its batch and with pages of two pools mixed.
TEST(PagePool, ReleaseNReturnsEachPageWithItsLastReferenceToItsPool) {
  PagePool a(0), b(0);
  std::vector<vm_page*> pa(40), pb(5);
  ASSERT_TRUE(a.alloc_n(pa.size(), pa.data()));
  ASSERT_TRUE(b.alloc_n(pb.size(), pb.data()));
  std::vector<vm_page*> held;
  for (size_t i = 0; i < pa.size(); i += 3) {
    PagePool::hold(pa[i]);
    held.push_back(pa[i]);
  }
  std::vector<vm_page*> all(pa.begin(), pa.begin() + 20);
  all.insert(all.end(), pb.begin(), pb.end());
  all.insert(all.end(), pa.begin() + 20, pa.end());
  PagePool::release_n(all.data(), all.size());
  EXPECT_EQ(a.pages_in_use(), held.size());
  EXPECT_EQ(a.pages_free(), pa.size() - held.size());
  EXPECT_EQ(b.pages_in_use(), 0u);
  EXPECT_EQ(b.pages_free(), pb.size());
  EXPECT_EQ(a.frees.fetch(), pa.size() - held.size());
  for (vm_page* pg : held) EXPECT_EQ(pg->ref_count.load(), 1u);
  PagePool::release_n(held.data(), held.size());
  EXPECT_EQ(a.pages_in_use(), 0u);
  EXPECT_EQ(a.pages_free(), pa.size());
  // Every page is handed out again, each once.
  std::vector<vm_page*> again(pa.size());
  ASSERT_TRUE(a.alloc_n(again.size(), again.data()));
  EXPECT_EQ(std::set<vm_page*>(again.begin(), again.end()),
            std::set<vm_page*>(pa.begin(), pa.end()));
  PagePool::release_n(again.data(), again.size());
}

// Runs (alloc_contig): n consecutive pages of one chunk, each with its own
// reference, handed out whole again once every page is back.
TEST(PagePool, ARunIsConsecutivePagesOfOneChunk) {
  PagePool pool(0);
  vm_page* run[4];
  ASSERT_TRUE(pool.alloc_contig(4, run));
  for (size_t i = 0; i < 4; i++) {
    EXPECT_EQ(Addr(run[i]), Addr(run[0]) + i * PAGE_SIZE) << i;
    EXPECT_EQ(run[i]->ref_count.load(), 1u);
    EXPECT_EQ(run[i]->pool, &pool);
  }
  EXPECT_EQ(Addr(run[0]) / kChunk, Addr(run[3]) / kChunk);
  memset(run[0]->data, 0x5A, 4 * PAGE_SIZE);  // one writable range
  EXPECT_EQ(pool.pages_in_use(), 4u);
  EXPECT_EQ(pool.runs_handed_out.fetch(), 1u);
  EXPECT_EQ(pool.allocs.fetch(), 4u);
  PagePool::release_n(run, 4);
  EXPECT_EQ(pool.pages_in_use(), 0u);
  EXPECT_EQ(pool.pages_free(), 4u);
}

TEST(PagePool, ARunComesBackWholeWithItsLastPageInAnyOrder) {
  PagePool pool(0);
  vm_page* run[4];
  ASSERT_TRUE(pool.alloc_contig(4, run));
  PagePool::hold(run[1]);  // someone else still has page 1
  PagePool::release(run[2]);
  PagePool::release_n(run, 4);  // pages 0..3: 2 is already back
  // Pages 0, 2 and 3 are back, but not the run: no single page and no run
  // comes from them.
  EXPECT_EQ(pool.pages_in_use(), 1u);
  EXPECT_EQ(pool.pages_free(), 0u);
  vm_page* single = pool.alloc();
  ASSERT_NE(single, nullptr);
  for (vm_page* pg : run) EXPECT_NE(single, pg);
  vm_page* other[4];
  ASSERT_TRUE(pool.alloc_contig(4, other));
  EXPECT_NE(other[0], run[0]);
  PagePool::release_n(other, 4);
  // With page 1 the run is back, after the other one: the other run is
  // handed out next, then this one (the first back first).
  PagePool::release(run[1]);
  EXPECT_EQ(pool.pages_free(), 8u);  // two runs
  PagePool::release(single);
  EXPECT_EQ(pool.pages_free(), 9u);
  vm_page* again[4];
  vm_page* last[4];
  ASSERT_TRUE(pool.alloc_contig(4, again));
  ASSERT_TRUE(pool.alloc_contig(4, last));
  for (size_t i = 0; i < 4; i++) {
    EXPECT_EQ(again[i], other[i]) << i;
    EXPECT_EQ(last[i], run[i]) << i;
  }
  PagePool::release_n(again, 4);
  PagePool::release_n(last, 4);
}

// While fewer than kCoolingPages pages of runs are cached, runs go out
// in the order they came back, the oldest first (the one released last may
// still be in the cache of the CPU that read it), however often the cache
// turns over.
TEST(PagePool, AFewCachedRunsGoOutOldestFirst) {
  PagePool pool(0);
  constexpr size_t kRuns = 40;  // more than the cache's first ring holds
  std::vector<std::array<vm_page*, 5>> runs(kRuns);
  for (auto& r : runs) ASSERT_TRUE(pool.alloc_contig(5, r.data()));
  // Released in an order of their own; taken back, they come in that order.
  std::vector<size_t> order;
  for (size_t i = 0; i < kRuns; i++) order.push_back((i * 7) % kRuns);
  for (int round = 0; round < 3; round++) {
    for (size_t i : order) PagePool::release_n(runs[i].data(), 5);
    EXPECT_EQ(pool.pages_free(), kRuns * 5);
    std::vector<std::array<vm_page*, 5>> back(kRuns);
    for (size_t j = 0; j < kRuns; j++) {
      ASSERT_TRUE(pool.alloc_contig(5, back[j].data()));
      EXPECT_EQ(back[j][0], runs[order[j]][0]) << "round " << round << ", run " << j;
    }
    EXPECT_EQ(pool.runs_handed_out.fetch(), kRuns * (round + 2));
    runs.swap(back);
    for (size_t i = 0; i < kRuns; i++) order[i] = kRuns - 1 - i;
  }
  EXPECT_EQ(pool.pages_in_use(), kRuns * 5);
  for (auto& r : runs) PagePool::release_n(r.data(), 5);
  EXPECT_EQ(pool.pages_in_use(), 0u);
  EXPECT_EQ(pool.runs_broken.fetch(), 0u);
}

// With more cached, a run goes out again only once kCoolingPages pages
// of other runs have come back after it, and of those that have, the last
// to get there goes first (the one still in the shared cache).
TEST(PagePool, ManyCachedRunsGoOutOnceOthersCameBackAfterThem) {
  static_assert(kCoolingPages % 5 != 0, "the arithmetic below rounds up");
  PagePool pool(0);
  constexpr size_t kRuns = 300;
  constexpr size_t kAfter = kCoolingPages / 5 + 1;  // runs that must come back after one
  static_assert(kRuns > kAfter + 10, "enough runs to cool some");
  std::vector<std::array<vm_page*, 5>> runs(kRuns);
  for (auto& r : runs) ASSERT_TRUE(pool.alloc_contig(5, r.data()));
  const size_t singles = pool.pages_free();  // chunks' rests too short for a run
  for (auto& r : runs) PagePool::release_n(r.data(), 5);
  EXPECT_EQ(pool.pages_free(), singles + kRuns * 5);
  // Runs 0 .. kRuns - 1 - kAfter have cooled; the last of them goes first.
  const size_t last_cooled = kRuns - 1 - kAfter;
  vm_page* a[5];
  vm_page* b[5];
  ASSERT_TRUE(pool.alloc_contig(5, a));
  EXPECT_EQ(a[0], runs[last_cooled][0]);
  ASSERT_TRUE(pool.alloc_contig(5, b));
  EXPECT_EQ(b[0], runs[last_cooled - 1][0]);
  // One coming back lets the next one in line cool, which then goes first;
  // the one that came back waits its turn.
  PagePool::release_n(a, 5);
  vm_page* c[5];
  vm_page* d[5];
  ASSERT_TRUE(pool.alloc_contig(5, c));
  EXPECT_EQ(c[0], runs[last_cooled + 1][0]);
  ASSERT_TRUE(pool.alloc_contig(5, d));
  EXPECT_EQ(d[0], runs[last_cooled - 2][0]);
  PagePool::release_n(b, 5);
  PagePool::release_n(c, 5);
  PagePool::release_n(d, 5);
  EXPECT_EQ(pool.pages_in_use(), 0u);
  EXPECT_EQ(pool.pages_free(), singles + kRuns * 5);
  EXPECT_EQ(pool.runs_handed_out.fetch(), kRuns + 4);
  EXPECT_EQ(pool.runs_broken.fetch(), 0u);
}

TEST(PagePool, AChunksRestTooShortForARunBecomesSinglePages) {
  PagePool pool(0);
  std::vector<vm_page*> pages(510);
  ASSERT_TRUE(pool.alloc_n(pages.size(), pages.data()));
  vm_page* run[4];
  ASSERT_TRUE(pool.alloc_contig(4, run));
  // The run starts the second chunk; the first one's last two pages are
  // free single pages.
  EXPECT_EQ(Addr(run[0]) % kChunk, 0u);
  EXPECT_EQ(pool.pages_free(), 2u);
  vm_page* a = pool.alloc();
  vm_page* b = pool.alloc();
  ASSERT_NE(a, nullptr);
  ASSERT_NE(b, nullptr);
  EXPECT_EQ(Addr(a) / kChunk, Addr(pages[0]) / kChunk);
  EXPECT_EQ(Addr(b) / kChunk, Addr(pages[0]) / kChunk);
  PagePool::release(a);
  PagePool::release(b);
  PagePool::release_n(run, 4);
  PagePool::release_n(pages.data(), pages.size());
  EXPECT_EQ(pool.pages_in_use(), 0u);
}

// Within vm.pages_max: a run that does not fit is refused with nothing
// taken; cached runs are broken into single pages when those run out (and
// stay single).
TEST(PagePool, RunsKeepToTheLimitAndAreBrokenForSinglePages) {
  PagePool pool(8);
  vm_page* r1[4];
  vm_page* r2[4];
  ASSERT_TRUE(pool.alloc_contig(4, r1));
  ASSERT_TRUE(pool.alloc_contig(4, r2));
  vm_page* r3[4];
  EXPECT_FALSE(pool.alloc_contig(4, r3));
  EXPECT_EQ(pool.pages_in_use(), 8u);
  PagePool::release_n(r1, 4);
  PagePool::release_n(r2, 4);
  EXPECT_EQ(pool.pages_free(), 8u);
  std::vector<vm_page*> singles(6);
  ASSERT_TRUE(pool.alloc_n(singles.size(), singles.data()));
  EXPECT_EQ(pool.runs_broken.fetch(), 2u);
  EXPECT_FALSE(pool.alloc_contig(4, r3));
  EXPECT_EQ(pool.pages_free(), 2u);
  EXPECT_EQ(pool.failures.fetch(), 0u);
  PagePool::release_n(singles.data(), singles.size());
  EXPECT_EQ(pool.pages_free(), 8u);
  // Broken runs are single pages for good.
  EXPECT_FALSE(pool.alloc_contig(4, r3));
  std::vector<vm_page*> all(8);
  ASSERT_TRUE(pool.alloc_n(all.size(), all.data()));
  EXPECT_EQ(std::set<vm_page*>(all.begin(), all.end()).size(), 8u);
  PagePool::release_n(all.data(), all.size());
}

#if defined(__SANITIZE_ADDRESS__)
TEST(PagePoolDeathTest, TouchingAReleasedPageIsReportedUnderAsan) {
  PagePool pool(0);
  vm_page* pg = pool.alloc();
  ASSERT_NE(pg, nullptr);
  auto* p = reinterpret_cast<volatile uint8_t*>(pg->data);
  p[100] = 1;
  PagePool::release(pg);
  EXPECT_DEATH(p[100] = 2, "use-after-poison");
}
#endif

}  // namespace
}  // namespace uk
