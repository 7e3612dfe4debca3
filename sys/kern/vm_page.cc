// The page pool. Pages are allocated from the host on first use, kept on a
// free list when released (up to kFreeCache pages for an unlimited pool),
// and returned to the host at halt. Mirrors the role of FreeBSD's vm_phys
// + vm_page_alloc_noobj() for this emulation.
#include "sys/kern/vm_page.h"

#include <cassert>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "absl/strings/numbers.h"
#include "sys/kern/kernel.h"
#include "sys/kern/subr_prf.h"
#include "sys/sys/sysctl.h"

namespace uk {

UK_KERNEL_SLOT(PagePool)

namespace {
// Free pages kept for reuse when the pool has no limit.
constexpr size_t kFreeCache = 8192;
}  // namespace

PagePool::PagePool(size_t max_pages) : max_pages_(max_pages) {}

PagePool::~PagePool() {
  // Every page must be back by halt; one that is not is a leak (and would
  // point at a freed pool).
  if (size_t n = in_use_.load())
    fprintf(stderr, "uktls: page pool destroyed with %zu pages in use\n", n);
  assert(in_use_.load() == 0);
  MutexLock l(&mu_);
  while (free_ != nullptr) {
    vm_page* pg = free_;
    free_ = pg->next_free;
    std::free(pg->data);
    delete pg;
  }
}

vm_page* PagePool::alloc(bool zero) {
  vm_page* pg = nullptr;
  {
    MutexLock l(&mu_);
    if (free_ != nullptr) {
      pg = free_;
      free_ = pg->next_free;
      nfree_--;
    } else if (max_pages_ == 0 || created_ < max_pages_) {
      created_++;
    } else {
      failures.add(1);
      return nullptr;
    }
  }
  if (pg == nullptr) {
    void* data = std::aligned_alloc(PAGE_SIZE, PAGE_SIZE);
    if (data == nullptr) {
      MutexLock l(&mu_);
      created_--;
      failures.add(1);
      return nullptr;
    }
    pg = new vm_page{static_cast<uint8_t*>(data), this};
  }
  pg->next_free = nullptr;
  pg->ref_count.store(1, std::memory_order_relaxed);
  if (zero) memset(pg->data, 0, PAGE_SIZE);
  in_use_.fetch_add(1, std::memory_order_relaxed);
  allocs.add(1);
  return pg;
}

bool PagePool::alloc_n(size_t n, vm_page** out) {
  for (size_t i = 0; i < n; i++) {
    out[i] = alloc();
    if (out[i] == nullptr) {
      while (i > 0) release(out[--i]);
      return false;
    }
  }
  return true;
}

void PagePool::release(vm_page* pg) {
  if (pg->ref_count.fetch_sub(1, std::memory_order_acq_rel) == 1)
    pg->pool->free_page(pg);
}

void PagePool::free_page(vm_page* pg) {
  in_use_.fetch_sub(1, std::memory_order_relaxed);
  frees.add(1);
  {
    MutexLock l(&mu_);
    if (max_pages_ != 0 || nfree_ < kFreeCache) {
      pg->next_free = free_;
      free_ = pg;
      nfree_++;
      return;
    }
    created_--;
  }
  std::free(pg->data);
  delete pg;
}

size_t PagePool::pages_free() {
  MutexLock l(&mu_);
  return max_pages_ == 0 ? nfree_ : nfree_ + (max_pages_ - created_);
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
