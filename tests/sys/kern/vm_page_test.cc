// The page pool (sys/kern/vm_page.cc): pages carved from 2 MiB host chunks,
// a released page reused first, the vm.pages_max limit (also when it is
// not a whole number of chunks), reference counts, and (under ASan) that a
// released page cannot be touched.
#include "sys/kern/vm_page.h"

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
