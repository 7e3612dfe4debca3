// Zones of fixed-size items with per-thread caches: FreeBSD's UMA (sys/vm/
// uma_core.c) as far as the mbuf allocator needs it. An allocation is taken
// from the calling thread's bucket; empty and full buckets are traded with
// the zone's depot under one lock; the depot keeps a bounded number of free
// items and hands the rest back to malloc. Items move between threads freely
// (a record's mbufs are allocated by the sender and freed by whoever sees the
// ACK), which is the case glibc's per-arena malloc handles worst.
//
// Zones are process-wide, like FreeBSD's (one kernel image, one set of
// zones); accounting per kernel stays in the callers (kern.ipc.mbstat).
// Items are malloc'ed one by one, so a leaked item is still a leak to LSan;
// under ASan an item is poisoned while it sits in a cache, so a use after
// uma_zfree() is reported as it would be after free().
//
// Locking: a zone's depot is guarded by its mutex; the per-thread buckets
// need no lock. A thread's buckets go back to the depot when it exits.
#ifndef UKTLS_SYS_SYS_UMA_H_
#define UKTLS_SYS_SYS_UMA_H_

#include <cstddef>
#include <cstdint>

namespace uk {

struct uma_zone;
using uma_zone_t = uma_zone*;

struct uma_zone_stats {
  uint64_t allocs = 0;      // uma_zalloc calls that returned an item
  uint64_t frees = 0;       // uma_zfree calls
  uint64_t fails = 0;       // allocations malloc refused
  uint64_t cache_hits = 0;  // allocations served without malloc
  uint64_t depot_items = 0; // free items held by the depot now
  uint64_t bucket_trades = 0;  // buckets moved through the depot
};

// A zone of |size|-byte items aligned to |align| (a power of two, at most
// 64). Zones live until the process ends. |name| must outlive the zone.
uma_zone_t uma_zcreate(const char* name, size_t size, size_t align);

// An item (contents undefined) or nullptr when memory runs out.
void* uma_zalloc(uma_zone_t z);
void uma_zfree(uma_zone_t z, void* item);

const char* uma_zone_name(uma_zone_t z);
size_t uma_zone_size(uma_zone_t z);
uma_zone_stats uma_zone_get_stats(uma_zone_t z);

// Returns the calling thread's cached items to the depots and trims the
// depots to nothing (FreeBSD's uma_reclaim); for tests and memory figures.
void uma_reclaim();

}  // namespace uk

#endif  // UKTLS_SYS_SYS_UMA_H_
