// The page pool. Pages come from the host in chunks of 2 MiB (512 pages),
// each asked to be backed by a transparent huge page, as FreeBSD's direct
// map uses superpages: the records' pages, the files' and the cipher's
// output then cost one TLB entry per 2 MiB instead of one per page, which
// counts when a thousand connections each touch their own part of a large
// file. Released pages go back on a free list; the chunks go back to the
// host at halt. Runs of consecutive pages (KTLS's contiguous encryption
// buffers) are carved from one chunk and cached whole, as FreeBSD's
// ktls_buffer_zone caches its buffers. A page or run often comes back once
// another CPU has read it (the ciphertext a KTLS worker wrote), so the one
// back last is the one that CPU's cache still holds, and writing into it
// again would wait for each line: pages and runs are reused only once
// kCoolingPages of others have come back after them, the last to cool first
// (docs/memory.md has the measurements).
#include "sys/kern/vm_page.h"

#include <sys/mman.h>

#include <algorithm>
#include <cassert>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iterator>
#include <new>

#include "absl/strings/numbers.h"
#include "sys/kern/kernel.h"
#include "sys/kern/subr_prf.h"
#include "sys/sys/asan.h"
#include "sys/sys/sysctl.h"


namespace uk {

UK_KERNEL_SLOT(PagePool)

namespace {
constexpr size_t kChunkBytes = 2 << 20;
constexpr size_t kChunkPages = kChunkBytes / PAGE_SIZE;
}  // namespace

PagePool::PagePool(size_t max_pages) : max_pages_(max_pages) {}

PagePool::~PagePool() {
  // Every page must be back by halt; one that is not is a leak (and would
  // point at a freed pool).
  if (size_t n = in_use_.load())
    fprintf(stderr, "uktls: page pool destroyed with %zu pages in use\n", n);
  assert(in_use_.load() == 0);
  MutexLock l(&mu_);
  for (Chunk& c : chunks_) {
    UK_UNPOISON(c.data, kChunkBytes);
    std::free(c.data);
    delete[] c.pages;
  }
}

vm_page* PagePool::carve() {
  if (chunks_.empty() || carved_ == kChunkPages) {
    void* data = std::aligned_alloc(kChunkBytes, kChunkBytes);
    if (data == nullptr) return nullptr;
    // Advice only: without transparent huge pages the chunk is 512 pages.
    (void)madvise(data, kChunkBytes, MADV_HUGEPAGE);
    auto* pages = new (std::nothrow) vm_page[kChunkPages];
    // Room on the free list for every page there can be, so a release
    // never allocates.
    bool room = pages != nullptr;
    if (room) room = free_.reserve((chunks_.size() + 1) * kChunkPages);
    if (!room) {
      delete[] pages;
      std::free(data);
      return nullptr;
    }
    for (size_t i = 0; i < kChunkPages; i++) {
      pages[i].data = static_cast<uint8_t*>(data) + i * PAGE_SIZE;
      pages[i].pool = this;
    }
    chunks_.push_back({static_cast<uint8_t*>(data), pages});
    carved_ = 0;
  }
  return &chunks_.back().pages[carved_++];
}

vm_page* PagePool::alloc(bool zero) {
  vm_page* pg = nullptr;
  if (!alloc_n(1, &pg)) return nullptr;
  if (zero) memset(pg->data, 0, PAGE_SIZE);
  return pg;
}

vm_page* PagePool::carve_run(size_t n) {
  // The newest chunk's rest, when too short for the run, becomes single
  // pages; the run starts the next chunk.
  size_t rest = chunks_.empty() ? 0 : kChunkPages - carved_;
  if (rest >= n) rest = 0;
  if (max_pages_ != 0 && created_ + rest + n > max_pages_) return nullptr;
  if (!runs_.reserve(runs_made_ + 1)) return nullptr;
  for (; rest > 0; rest--) {
    free_.push(carve());  // room reserved with the chunk
    created_++;
  }
  vm_page* first = carve();
  if (first == nullptr) return nullptr;
  for (size_t i = 1; i < n; i++) carve();  // the same chunk: it has room
  created_ += n;
  runs_made_++;
  for (size_t i = 0; i < n; i++) {
    first[i].run_npgs = static_cast<uint8_t>(n);
    first[i].run_idx = static_cast<uint8_t>(i);
  }
  first->run_freed = 0;
  return first;
}

namespace {

// How many pages a cache entry stands for: a run's, or one.
size_t entry_pages(const vm_page* pg) { return pg->run_npgs != 0 ? pg->run_npgs : 1; }

}  // namespace

bool CoolingCache::reserve(size_t n) {
  if (ring_.size() >= n) return true;
  // Bigger room: the ring's entries at its start, in their order.
  std::vector<vm_page*> ring;
  try {
    ring.resize(std::max<size_t>({16, n, 2 * ring_.size()}));
    cooled_.reserve(ring.size());
  } catch (const std::bad_alloc&) {
    return false;
  }
  for (size_t i = 0; i < len_; i++) ring[i] = ring_[(head_ + i) % ring_.size()];
  ring_.swap(ring);
  head_ = 0;
  return true;
}

void CoolingCache::push(vm_page* pg) {
  ring_[(head_ + len_++) % ring_.size()] = pg;  // room reserved
  cooling_pages_ += entry_pages(pg);
  while (cooling_pages_ - entry_pages(ring_[head_]) >= kCoolingPages) untake(pop_oldest());
}

vm_page* CoolingCache::pop_oldest() {
  vm_page* pg = ring_[head_];
  head_ = (head_ + 1) % ring_.size();
  len_--;
  cooling_pages_ -= entry_pages(pg);
  return pg;
}

vm_page* CoolingCache::next() const {
  if (!cooled_.empty()) return cooled_.back();
  return len_ > 0 ? ring_[head_] : nullptr;
}

vm_page* CoolingCache::take() {
  if (cooled_.empty()) return len_ > 0 ? pop_oldest() : nullptr;
  vm_page* pg = cooled_.back();
  cooled_.pop_back();
  cooled_pages_ -= entry_pages(pg);
  return pg;
}

void CoolingCache::untake(vm_page* pg) {
  cooled_.push_back(pg);  // room reserved
  cooled_pages_ += entry_pages(pg);
}

bool PagePool::break_run() {
  vm_page* first = runs_.take();
  if (first == nullptr) return false;
  const size_t n = first->run_npgs;
  first->run_freed = 0;
  for (size_t i = 0; i < n; i++) {
    first[i].run_npgs = first[i].run_idx = 0;
    free_.push(&first[i]);
  }
  runs_broken.add(1);
  return true;
}

bool PagePool::alloc_contig(size_t n, vm_page** out) {
  assert(n >= 1 && n <= 255 && n <= kChunkPages);
  vm_page* first;
  {
    MutexLock l(&mu_);
    // The run take() would give, if it is of this size.
    vm_page* cached = runs_.next();
    first = cached != nullptr && cached->run_npgs == n ? runs_.take() : carve_run(n);
    if (first == nullptr) return false;
  }
  UK_UNPOISON(first->data, n * PAGE_SIZE);
  for (size_t i = 0; i < n; i++) {
    out[i] = first + i;
    out[i]->ref_count.store(1, std::memory_order_relaxed);
  }
  in_use_.fetch_add(n, std::memory_order_relaxed);
  allocs.add(n);
  runs_handed_out.add(1);
  return true;
}

bool PagePool::alloc_n(size_t n, vm_page** out) {
  // One trip through the lock for the whole record.
  size_t got = 0;
  {
    MutexLock l(&mu_);
    for (; got < n; got++) {
      vm_page* pg = free_.take();
      if (pg == nullptr && (max_pages_ == 0 || created_ < max_pages_) &&
          (pg = carve()) != nullptr)
        created_++;
      // Single pages before cached runs (FreeBSD reclaims its caches when
      // memory runs short).
      if (pg == nullptr && break_run()) pg = free_.take();
      if (pg == nullptr) break;
      out[got] = pg;
    }
    if (got < n) {
      // All or none: the pages taken go back (as cooled ones, in their
      // order).
      while (got > 0) free_.untake(out[--got]);
      failures.add(1);
      return false;
    }
  }
  for (size_t i = 0; i < n; i++) {
    UK_UNPOISON(out[i]->data, PAGE_SIZE);
    out[i]->ref_count.store(1, std::memory_order_relaxed);
  }
  in_use_.fetch_add(n, std::memory_order_relaxed);
  allocs.add(n);
  return true;
}

void PagePool::release(vm_page* pg) {
  if (pg->ref_count.fetch_sub(1, std::memory_order_acq_rel) == 1)
    pg->pool->free_pages(&pg, 1);
}

void PagePool::release_n(vm_page* const* pgs, size_t n) {
  // The pages whose last reference this was go back to their pool together
  // (one lock per run of pages of one pool: a record's pages are one
  // kernel's).
  vm_page* dead[16];
  size_t nd = 0;
  for (size_t i = 0; i < n; i++) {
    vm_page* pg = pgs[i];
    if (pg->ref_count.fetch_sub(1, std::memory_order_acq_rel) != 1) continue;
    if (nd == std::size(dead) || (nd > 0 && dead[0]->pool != pg->pool)) {
      dead[0]->pool->free_pages(dead, nd);
      nd = 0;
    }
    dead[nd++] = pg;
  }
  if (nd > 0) dead[0]->pool->free_pages(dead, nd);
}

void PagePool::free_pages(vm_page* const* pgs, size_t n) {
  in_use_.fetch_sub(n, std::memory_order_relaxed);
  frees.add(n);
  // A use after the last release is reported.
  for (size_t i = 0; i < n; i++) UK_POISON(pgs[i]->data, PAGE_SIZE);
  MutexLock l(&mu_);
  for (size_t i = 0; i < n; i++) {
    vm_page* pg = pgs[i];
    if (pg->run_npgs == 0) {
      free_.push(pg);
      continue;
    }
    // A run's page: the run goes back whole with its last page.
    vm_page* first = pg - pg->run_idx;
    if (++first->run_freed < first->run_npgs) continue;
    first->run_freed = 0;
    runs_.push(first);  // room: one place per run made
  }
}

size_t PagePool::pages_free() {
  MutexLock l(&mu_);
  size_t n = free_.pages() + runs_.pages();
  return max_pages_ == 0 ? n : n + (max_pages_ - created_);
}

// vm.pages_max (boot tunable, pages; 0 = unlimited) sizes the pool. Its
// statistics sysctls are registered by the mbuf subsystem (uipc_mbuf.cc),
// which is created right after the pool and destroyed right before it.
static int vm_sysinit(kernel& k) {
  size_t max_pages = 0;
  if (const std::string* t = k.tunable("vm.pages_max")) {
    if (!absl::SimpleAtoi(*t, &max_pages)) return EINVAL;
  }
  k.vm.reset(new PagePool(max_pages));
  if (max_pages != 0)
    kprintf(k, "real memory  = %zu (%zu MB)\n", max_pages * PAGE_SIZE,
            max_pages * PAGE_SIZE >> 20);
  else
    kprintf(k, "real memory  = unlimited (page pool grows on demand)\n");
  return 0;
}

static void vm_sysuninit(kernel& k) { k.vm.reset(); }

UK_SYSINIT(vm_page, SI_SUB_VM, SI_ORDER_FIRST, vm_sysinit, vm_sysuninit);

}  // namespace uk
