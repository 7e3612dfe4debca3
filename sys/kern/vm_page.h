// The page pool: this kernel's "physical memory". 4 KiB pages with reference
// counts, handed out to M_EXTPG mbufs, tmpfs files and KTLS encryption
// buffers. A page's host address is its direct-map address (PHYS_TO_DMAP).
// Runs of physically consecutive pages (alloc_contig) serve as KTLS's
// contiguous encryption buffers (FreeBSD's ktls_buffer_zone) and are cached
// whole once all their pages are back.
//
// The pool's size is the boot tunable vm.pages_max (pages; 0 = unlimited).
// When it is exhausted vm_page_alloc() returns null and callers fail with
// ENOMEM; nothing aborts.
//
// Locking: PagePool::mu_ guards the free list; page reference counts are
// atomics.
#ifndef UKTLS_SYS_KERN_VM_PAGE_H_
#define UKTLS_SYS_KERN_VM_PAGE_H_

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "sys/sys/counter.h"
#include "sys/sys/lock.h"

namespace uk {

constexpr size_t PAGE_SIZE = 4096;
constexpr size_t PAGE_MASK = PAGE_SIZE - 1;
constexpr size_t PAGE_SHIFT = 12;

inline size_t round_page(size_t x) { return (x + PAGE_MASK) & ~PAGE_MASK; }
inline size_t trunc_page(size_t x) { return x & ~PAGE_MASK; }
inline size_t atop(size_t x) { return x >> PAGE_SHIFT; }

class PagePool;

// How many pages must come back after a released page or run before it is
// handed out again (when that many are cached): 3 MiB, more than a core's
// own (L2) cache on current x86 servers.
constexpr size_t kCoolingPages = 768;

struct vm_page final {
  uint8_t* data;  // PAGE_SIZE bytes, page aligned
  PagePool* pool;
  std::atomic<uint32_t> ref_count{0};
  // A page of a run (alloc_contig): the run's length in pages and this
  // page's place in it; 0 and 0 for a single page. Guarded by pool->mu_,
  // as is run_freed, which the run's first page keeps: how many of the
  // run's pages are back.
  uint8_t run_npgs = 0;
  uint8_t run_idx = 0;
  uint8_t run_freed = 0;
};

// FreeBSD's m_epg_pa[] holds physical addresses; uktls holds the page itself.
using vm_paddr_t = vm_page*;
inline uint8_t* PHYS_TO_DMAP(vm_paddr_t pa) { return pa->data; }

// Free pages, or cached runs by their first pages, as they cool. One
// released goes into a ring, oldest first, and moves on to a stack once
// kCoolingPages pages have come back after it. take() hands out the top of
// the stack (the last to cool), or while none has cooled the oldest in the
// ring. Room is reserved beforehand, so a release never allocates.
class CoolingCache final {
 public:
  // Room for n entries in all; false (nothing changed) if it cannot be had.
  bool reserve(size_t n);
  void push(vm_page* pg);
  // What take() would hand out, or null.
  vm_page* next() const;
  vm_page* take();
  // Back on the stack's top (an allocation undone).
  void untake(vm_page* pg);
  size_t pages() const { return cooling_pages_ + cooled_pages_; }

 private:
  vm_page* pop_oldest();
  std::vector<vm_page*> ring_;
  size_t head_ = 0;
  size_t len_ = 0;
  size_t cooling_pages_ = 0;
  std::vector<vm_page*> cooled_;
  size_t cooled_pages_ = 0;
};

class PagePool final {
 public:
  // max_pages = 0: no limit.
  explicit PagePool(size_t max_pages);
  ~PagePool();
  PagePool(const PagePool&) = delete;
  PagePool& operator=(const PagePool&) = delete;

  // A page with one reference, contents undefined (zeroed if |zero|).
  // Null when the pool is exhausted. Released pages cool as runs do (see
  // alloc_contig): the oldest first while fewer than kCoolingPages are free,
  // beyond that the last to have cooled.
  vm_page* alloc(bool zero = false) ABSL_LOCKS_EXCLUDED(mu_);
  // n pages into out, each as alloc() gives it, under one lock; false (and
  // none taken) when the pool cannot give them all.
  bool alloc_n(size_t n, vm_page** out) ABSL_LOCKS_EXCLUDED(mu_);

  // A run of n physically consecutive pages (one host range of n *
  // PAGE_SIZE bytes, n at most 255 and a chunk's pages) into out, each page
  // with one reference. A run goes back to a cache of runs once all its
  // pages are released, in any order, and is handed out again whole: the
  // oldest first while fewer than kCoolingPages pages of runs are cached;
  // beyond that, only once kCoolingPages pages of other runs have come
  // back after it, and of those that have, the last to get there first
  // (vm_page.cc says why). The cached runs are broken into single pages when
  // single pages are wanted and the pool has no other. False (and nothing
  // taken) when no run can be had within vm.pages_max.
  bool alloc_contig(size_t n, vm_page** out) ABSL_LOCKS_EXCLUDED(mu_);

  static void hold(vm_page* pg) {
    pg->ref_count.fetch_add(1, std::memory_order_relaxed);
  }
  // Drops one reference; the page returns to the pool at zero.
  static void release(vm_page* pg);
  // release() of each of n pages, the freed ones returned to their pool
  // under one lock (an unmapped mbuf's pages).
  static void release_n(vm_page* const* pgs, size_t n);

  size_t max_pages() const { return max_pages_; }
  size_t pages_in_use() const { return in_use_.load(std::memory_order_relaxed); }
  size_t pages_free() ABSL_LOCKS_EXCLUDED(mu_);

  counter_u64 allocs;
  counter_u64 frees;
  counter_u64 failures;
  counter_u64 runs_handed_out;  // alloc_contig successes
  counter_u64 runs_broken;      // cached runs given up as single pages

 private:
  void free_pages(vm_page* const* pgs, size_t n) ABSL_LOCKS_EXCLUDED(mu_);

  // A run of kChunkPages pages backed by one 2 MiB host allocation (and its
  // vm_page structures): the pool's "physical memory".
  struct Chunk {
    uint8_t* data;
    vm_page* pages;
  };
  // Pages of the newest chunk not handed out yet.
  vm_page* carve() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The first of n consecutive new pages (the newest chunk's rest goes to
  // the free list when shorter), or null.
  vm_page* carve_run(size_t n) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // A cached run's pages onto the free list as single pages.
  bool break_run() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const size_t max_pages_;
  std::atomic<size_t> in_use_{0};
  Mutex mu_;
  // Free single pages and cached runs, cooling. Arrays, so taking a
  // record's pages reads no page (a list would chase each page's link, a
  // cache miss apiece, one after the other). Room for every page there can
  // be, and for every run ever made.
  CoolingCache free_ ABSL_GUARDED_BY(mu_);
  CoolingCache runs_ ABSL_GUARDED_BY(mu_);
  size_t runs_made_ ABSL_GUARDED_BY(mu_) = 0;
  size_t created_ ABSL_GUARDED_BY(mu_) = 0;  // pages handed out at least once
  std::vector<Chunk> chunks_ ABSL_GUARDED_BY(mu_);
  size_t carved_ ABSL_GUARDED_BY(mu_) = 0;  // pages of chunks_.back() handed out
};

}  // namespace uk

#endif  // UKTLS_SYS_KERN_VM_PAGE_H_
