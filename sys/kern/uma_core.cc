// Zones with per-thread buckets (FreeBSD's sys/vm/uma_core.c, reduced to
// what uktls's allocators need). See sys/sys/uma.h.
#include "sys/sys/uma.h"

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <new>
#include <vector>

#include "sys/sys/asan.h"
#include "sys/sys/counter.h"
#include "sys/sys/lock.h"


namespace uk {
namespace {

constexpr int kMaxZones = 32;
constexpr int kBucketMax = 128;
// A bucket holds at most this many bytes of items, so a bucket of 16 KiB
// clusters is 16 items and one of mbufs the full 128.
constexpr size_t kBucketBytes = 256 * 1024;
// The depot keeps at most this many bytes of free items per zone; beyond it
// a full bucket's items go back to malloc.
constexpr size_t kDepotBytes = 32 * 1024 * 1024;

struct Bucket {
  int n = 0;
  void* items[kBucketMax];
};

}  // namespace

struct uma_zone {
  const char* name;
  size_t size;
  size_t align;
  int id;
  int bucket_cap;
  size_t depot_max;  // items
  counter_u64 allocs, frees, fails, mallocs, trades;
  Mutex mu;
  std::vector<Bucket*> full ABSL_GUARDED_BY(mu);
  std::vector<Bucket*> empty ABSL_GUARDED_BY(mu);
  size_t depot_items ABSL_GUARDED_BY(mu) = 0;
};

namespace {

// The zones, indexed by id; a zone is never destroyed.
std::atomic<uma_zone*> g_zones[kMaxZones];
std::atomic<int> g_nzones{0};

void* item_new(uma_zone* z) {
  void* p = z->align > alignof(std::max_align_t)
                ? std::aligned_alloc(z->align, (z->size + z->align - 1) & ~(z->align - 1))
                : std::malloc(z->size);
  return p;
}

void item_delete(uma_zone* z, void* p) {
  UK_UNPOISON(p, z->size);
  std::free(p);
}

Bucket* bucket_get(uma_zone* z) ABSL_EXCLUSIVE_LOCKS_REQUIRED(z->mu) {
  if (!z->empty.empty()) {
    Bucket* b = z->empty.back();
    z->empty.pop_back();
    return b;
  }
  return new (std::nothrow) Bucket;
}

// One thread's buckets for every zone (FreeBSD's per-CPU uma_cache).
struct ThreadCache {
  struct Slot {
    Bucket* alloc = nullptr;
    Bucket* free = nullptr;
  };
  Slot slots[kMaxZones];

  ~ThreadCache();

  // Hands every bucket back to its zone's depot.
  void drain() {
    int nz = g_nzones.load(std::memory_order_acquire);
    for (int i = 0; i < nz; i++) {
      uma_zone* z = g_zones[i].load(std::memory_order_acquire);
      for (Bucket** bp : {&slots[i].alloc, &slots[i].free}) {
        Bucket* b = *bp;
        if (b == nullptr) continue;
        *bp = nullptr;
        depot_put(z, b);
      }
    }
  }

  // Takes a bucket with items or its empty one back into the depot; items
  // beyond the depot's limit go back to malloc.
  static void depot_put(uma_zone* z, Bucket* b) {
    MutexLock l(&z->mu);
    if (b->n == 0) {
      z->empty.push_back(b);
      return;
    }
    if (z->depot_items + b->n > z->depot_max) {
      for (int i = 0; i < b->n; i++) item_delete(z, b->items[i]);
      b->n = 0;
      z->empty.push_back(b);
      return;
    }
    z->depot_items += b->n;
    z->full.push_back(b);
  }
};

thread_local ThreadCache t_cache;
// Set once the thread's cache is gone: frees from later thread-exit
// destructors go straight to malloc.
thread_local bool t_cache_dead = false;

ThreadCache::~ThreadCache() {
  drain();
  t_cache_dead = true;
}

}  // namespace

uma_zone_t uma_zcreate(const char* name, size_t size, size_t align) {
  if (align == 0) align = alignof(std::max_align_t);
  int id = g_nzones.fetch_add(1, std::memory_order_acq_rel);
  if (id >= kMaxZones) std::abort();  // a fixed set of zones is created at start
  auto* z = new uma_zone;
  z->name = name;
  z->size = std::max(size, sizeof(void*));
  z->align = std::min<size_t>(align, 64);
  z->id = id;
  z->bucket_cap = static_cast<int>(
      std::clamp<size_t>(kBucketBytes / z->size, 4, kBucketMax));
  z->depot_max = std::max<size_t>(kDepotBytes / z->size, z->bucket_cap);
  g_zones[id].store(z, std::memory_order_release);
  return z;
}

void* uma_zalloc(uma_zone_t z) {
  if (t_cache_dead) {
    void* p = item_new(z);
    if (p == nullptr) {
      z->fails.add(1);
    } else {
      z->allocs.add(1);
      z->mallocs.add(1);
    }
    return p;
  }
  ThreadCache::Slot& s = t_cache.slots[z->id];
  for (;;) {
    if (s.alloc != nullptr && s.alloc->n > 0) {
      void* p = s.alloc->items[--s.alloc->n];
      UK_UNPOISON(p, z->size);
      z->allocs.add(1);
      return p;
    }
    // The free bucket has items: use it for allocations (UMA swaps the two).
    if (s.free != nullptr && s.free->n > 0) {
      std::swap(s.alloc, s.free);
      continue;
    }
    // Trade the empty bucket for a full one from the depot.
    {
      MutexLock l(&z->mu);
      if (!z->full.empty()) {
        if (s.alloc != nullptr) z->empty.push_back(s.alloc);
        s.alloc = z->full.back();
        z->full.pop_back();
        z->depot_items -= s.alloc->n;
        z->trades.add(1);
        continue;
      }
    }
    break;
  }
  void* p = item_new(z);
  if (p == nullptr) {
    z->fails.add(1);
    return nullptr;
  }
  z->mallocs.add(1);
  z->allocs.add(1);
  return p;
}

void uma_zfree(uma_zone_t z, void* item) {
  if (item == nullptr) return;
  z->frees.add(1);
  if (t_cache_dead) {
    item_delete(z, item);
    return;
  }
  ThreadCache::Slot& s = t_cache.slots[z->id];
  if (s.free == nullptr || s.free->n == z->bucket_cap) {
    // The alloc bucket may have room (it was drained by allocations).
    if (s.alloc != nullptr && s.alloc->n < z->bucket_cap &&
        (s.free == nullptr || s.alloc->n == 0)) {
      std::swap(s.alloc, s.free);
    } else {
      Bucket* full = s.free;
      Bucket* fresh;
      {
        MutexLock l(&z->mu);
        fresh = bucket_get(z);
      }
      if (fresh == nullptr) {
        item_delete(z, item);
        return;
      }
      s.free = fresh;
      if (full != nullptr) {
        z->trades.add(1);
        ThreadCache::depot_put(z, full);
      }
    }
  }
  UK_POISON(item, z->size);
  s.free->items[s.free->n++] = item;
}

const char* uma_zone_name(uma_zone_t z) { return z->name; }
size_t uma_zone_size(uma_zone_t z) { return z->size; }

uma_zone_stats uma_zone_get_stats(uma_zone_t z) {
  uma_zone_stats st;
  st.allocs = z->allocs.fetch();
  st.frees = z->frees.fetch();
  st.fails = z->fails.fetch();
  st.cache_hits = st.allocs - std::min(st.allocs, z->mallocs.fetch());
  st.bucket_trades = z->trades.fetch();
  MutexLock l(&z->mu);
  st.depot_items = z->depot_items;
  return st;
}

void uma_reclaim() {
  if (!t_cache_dead) t_cache.drain();
  int nz = g_nzones.load(std::memory_order_acquire);
  for (int i = 0; i < nz; i++) {
    uma_zone* z = g_zones[i].load(std::memory_order_acquire);
    std::vector<Bucket*> full, empty;
    {
      MutexLock l(&z->mu);
      full.swap(z->full);
      empty.swap(z->empty);
      z->depot_items = 0;
    }
    for (Bucket* b : full) {
      for (int j = 0; j < b->n; j++) item_delete(z, b->items[j]);
      delete b;
    }
    for (Bucket* b : empty) delete b;
  }
}

}  // namespace uk
