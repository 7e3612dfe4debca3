// counter(9): 64-bit statistics counters that are cheap to bump from any
// thread. Each counter is split into per-CPU slots (a host thread picks its
// slot once), updated with relaxed atomics and summed on read, so the hot path
// never takes a lock or bounces one cache line between workers.
#ifndef UKTLS_SYS_SYS_COUNTER_H_
#define UKTLS_SYS_SYS_COUNTER_H_

#include <atomic>
#include <cstdint>

namespace uk {

// The slot this host thread uses; stable for the thread's life.
unsigned curcpu_slot();

class counter_u64 final {
 public:
  static constexpr unsigned kSlots = 16;

  counter_u64() = default;
  counter_u64(const counter_u64&) = delete;
  counter_u64& operator=(const counter_u64&) = delete;

  void add(int64_t n) {
    slots_[curcpu_slot() % kSlots].v.fetch_add(static_cast<uint64_t>(n),
                                               std::memory_order_relaxed);
  }
  uint64_t fetch() const {
    uint64_t sum = 0;
    for (const auto& s : slots_) sum += s.v.load(std::memory_order_relaxed);
    return sum;
  }
  void zero() {
    for (auto& s : slots_) s.v.store(0, std::memory_order_relaxed);
  }

 private:
  struct alignas(64) Slot {
    std::atomic<uint64_t> v{0};
  };
  Slot slots_[kSlots];
};

// A level (items in use) kept the same way: raised and lowered from any
// thread without a shared cache line, summed when read.
class counter_gauge final {
 public:
  counter_gauge() = default;
  counter_gauge(const counter_gauge&) = delete;
  counter_gauge& operator=(const counter_gauge&) = delete;

  void add(int64_t n) { c_.add(n); }
  int64_t load() const { return static_cast<int64_t>(c_.fetch()); }

 private:
  counter_u64 c_;  // two's complement: the sum of the signed steps
};

inline void counter_u64_add(counter_u64& c, int64_t n) { c.add(n); }
inline uint64_t counter_u64_fetch(const counter_u64& c) { return c.fetch(); }
inline void counter_u64_zero(counter_u64& c) { c.zero(); }

}  // namespace uk

#endif  // UKTLS_SYS_SYS_COUNTER_H_
