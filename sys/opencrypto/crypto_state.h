// Per-kernel OCF state: the driver table (FreeBSD's crypto_drivers[] of
// struct cryptocap), session objects and the crypto worker / return threads.
// Internal to sys/opencrypto; users go through crypto.h.
//
// Locking: CryptoState::mu guards the driver table, every cap's session
// count and cap destruction. A session's mu serialises its migration. A
// worker's mu guards its queues. Lock order: CryptoState::mu -> cap::mu ->
// a driver's own locks; worker::mu is a leaf. The sysctl tree lock may be
// held when the handlers here run; they only read atomics.
#ifndef UKTLS_SYS_OPENCRYPTO_CRYPTO_STATE_H_
#define UKTLS_SYS_OPENCRYPTO_CRYPTO_STATE_H_

#include <atomic>
#include <deque>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "sys/kern/kern_kthread.h"
#include "sys/kern/kernel.h"
#include "sys/opencrypto/crypto.h"
#include "sys/sys/counter.h"
#include "sys/sys/lock.h"
#include "sys/sys/sysctl.h"

namespace uk {

// One registered driver (FreeBSD's struct cryptocap).
struct crypto_cap {
  int hid = -1;
  int flags = 0;
  std::string name;
  std::unique_ptr<crypto_driver> drv;
  // Session objects bound to this driver, including ones whose handle has
  // migrated elsewhere (freed with the handle). Written under
  // CryptoState::mu.
  std::atomic<int> sessions{0};
  // Set by crypto_unregister_all(): no new sessions; requests on existing
  // ones complete with EAGAIN after migrating the session.
  std::atomic<bool> cleanup{false};
  // kern.crypto.<name>.enable: 0 keeps the driver out of new sessions.
  std::atomic<int> enable{1};

  counter_u64 requests;        // requests handed to process()
  counter_u64 bytes;           // payload bytes of those requests
  counter_u64 errors;          // completions with crp_etype != 0
  counter_u64 sessions_total;  // sessions ever created on this driver
  counter_u64 blocked;         // ERESTART returns (driver queue full)

  Mutex mu;
  bool qblocked ABSL_GUARDED_BY(mu) = false;
  // Counts crypto_unblock() calls (written under mu). A request the driver
  // refused (ERESTART) is queued on blockq only if no unblock came after it
  // was handed to the driver; otherwise the room it waits for may already
  // have been announced (several threads submit, FreeBSD's one crypto_proc
  // does not) and it is resubmitted at once.
  std::atomic<uint64_t> unblock_gen{0};
  // Mirrors qblocked so the dispatch fast path need not take mu.
  std::atomic<bool> qblocked_hint{false};
  std::deque<cryptop*> blockq ABSL_GUARDED_BY(mu);

  std::unique_ptr<sysctl_ctx_list> ctx;
};

// A session object. The handle a caller holds is the first one created;
// when its driver goes away the handle forwards (fwd) to a new object bound
// to another driver. Driver methods always see the object bound to them.
struct cryptoses {
  CryptoState* st = nullptr;
  crypto_cap* cap = nullptr;
  void* priv = nullptr;
  uint32_t id = 0;
  crypto_session_params csp;  // keys point into the handle's copies
  cryptoses* owner = nullptr;  // the handle (self for the handle)
  // Holds a module_ref() on the driver's module (drivers that are modules).
  bool modref = false;
  std::atomic<cryptoses*> fwd{nullptr};

  // Handle only.
  std::vector<uint8_t> ckey, akey;
  Mutex mu;
  std::vector<cryptoses*> migrated ABSL_GUARDED_BY(mu);
};

inline cryptoses* crypto_resolve(cryptoses* h) {
  cryptoses* f = h->fwd.load(std::memory_order_acquire);
  return f != nullptr ? f : h;
}

// A crypto worker: runs requests dispatched asynchronously to synchronous
// drivers (FreeBSD's crypto_tq) and callbacks of completed requests (the
// crypto_ret_worker threads), keeping ASYNC_ORDERED ones in sequence.
struct crypto_worker {
  Mutex mu;
  CondVar cv;
  std::deque<cryptop*> tasks ABSL_GUARDED_BY(mu);
  std::deque<cryptop*> done ABSL_GUARDED_BY(mu);
  std::map<uint64_t, cryptop*> ordered ABSL_GUARDED_BY(mu);
  uint64_t reorder_ops ABSL_GUARDED_BY(mu) = 0;  // next seq handed out
  uint64_t reorder_cur ABSL_GUARDED_BY(mu) = 0;  // next seq delivered
  bool stop ABSL_GUARDED_BY(mu) = false;
  kthread* td = nullptr;  // a kernel thread (kthread_add), "crypto_ret<N>"
};

struct CryptoState final {
  explicit CryptoState(kernel& k);
  ~CryptoState();
  CryptoState(const CryptoState&) = delete;
  CryptoState& operator=(const CryptoState&) = delete;

  kernel& k;
  Mutex mu;
  std::vector<crypto_cap*> caps ABSL_GUARDED_BY(mu);  // registered
  // Every cap not yet destroyed (registered or draining).
  std::vector<std::unique_ptr<crypto_cap>> all ABSL_GUARDED_BY(mu);
  int next_hid ABSL_GUARDED_BY(mu) = 0;
  std::atomic<uint32_t> next_sesid{1};
  std::atomic<unsigned> next_worker{0};

  std::atomic<int> workers_num{0};
  std::vector<std::unique_ptr<crypto_worker>> workers;

  // kern.crypto.stats.*
  counter_u64 dispatch_async;  // crypto_dispatch_async calls (incl. batch)
  counter_u64 cb_queued;       // callbacks run on a worker
  counter_u64 eagain;          // requests completed with EAGAIN
  counter_u64 migrations;      // sessions moved off a departed driver
  counter_u64 errors;          // completions with an error
  counter_u64 restarts;        // ERESTART returns from drivers

  sysctl_ctx_list ctx;
};

}  // namespace uk

#endif  // UKTLS_SYS_OPENCRYPTO_CRYPTO_STATE_H_
