// Kernel TLS (ktls(4)): per-kernel KTLS state, its sysctl tree and counters.
// Mirrors FreeBSD's sys/kern/uipc_ktls.c; sessions, framing and the worker
// threads are declared further down as they are built.
//
// Locking: the tunables and counters here are atomics and need no lock.
#ifndef UKTLS_SYS_KERN_UIPC_KTLS_H_
#define UKTLS_SYS_KERN_UIPC_KTLS_H_

#include <atomic>
#include <memory>

#include "sys/sys/counter.h"
#include "sys/sys/ktls.h"
#include "sys/sys/refcount.h"
#include "sys/sys/sysctl.h"

namespace uk {

struct kernel;

// FreeBSD's struct tls_session_params: what a session was enabled with,
// plus the framing lengths derived from it.
struct tls_session_params {
  uint8_t* cipher_key = nullptr;
  uint8_t* auth_key = nullptr;
  uint8_t iv[16] = {};  // iv[8..15]: the TLS 1.2 GCM explicit-nonce counter
  int cipher_algorithm = 0;
  int auth_algorithm = 0;
  uint16_t cipher_key_len = 0;
  uint16_t iv_len = 0;
  uint16_t auth_key_len = 0;
  uint16_t max_frame_len = 0;
  uint8_t tls_vmajor = 0;
  uint8_t tls_vminor = 0;
  uint8_t tls_hlen = 0;
  uint8_t tls_tlen = 0;
  uint8_t tls_bs = 0;
  uint8_t flags = 0;
};

// One KTLS session (one direction of one socket). Refcounted: the socket
// buffer holds one reference and every framed record another.
struct ktls_session : RefCounted<ktls_session> {
  virtual ~ktls_session() = default;
  tls_session_params params;
};

inline ktls_session* ktls_hold(ktls_session* tls) {
  if (tls != nullptr) tls->ref();
  return tls;
}
// Drops a reference; the session is destroyed (keys zeroed) at the last.
void ktls_free(ktls_session* tls);

// kern.ipc.tls.* values with FreeBSD's defaults (API.md section 2 sets
// enable=1 and ifnet.permitted=0 at boot through the default tunables).
struct KtlsState final {
  explicit KtlsState(kernel& k) : sysctl_ctx(k) {}

  // Tunables and knobs.
  std::atomic<bool> enable{false};
  std::atomic<bool> cbc_enable{true};
  std::atomic<int> bind_threads{0};
  std::atomic<unsigned> maxlen{16384};
  std::atomic<unsigned> ifnet_max_rexmit_pct{2};
  std::atomic<bool> sw_buffer_cache{true};
  std::atomic<int> max_reclaim{1024};
  std::atomic<unsigned> ifnet_permitted{0};
  std::atomic<int> number_threads{0};

  counter_u64 tasks_active;  // defined by FreeBSD, never updated

  // kern.ipc.tls.stats.*
  counter_u64 sw_tx_pending;
  counter_u64 sw_tx_inqueue;
  counter_u64 sw_rx_inqueue;
  counter_u64 offload_total;
  counter_u64 enable_calls;
  counter_u64 active;
  counter_u64 corrupted_records;
  counter_u64 failed_crypto;
  counter_u64 switch_to_ifnet;
  counter_u64 switch_to_sw;
  counter_u64 switch_failed;
  counter_u64 ifnet_disable_failed;
  counter_u64 ifnet_disable_ok;
  counter_u64 destroy_task;

  // kern.ipc.tls.stats.ocf.* (counted by ktls_ocf).
  struct {
    counter_u64 tls10_cbc_encrypts;
    counter_u64 tls11_cbc_decrypts;
    counter_u64 tls11_cbc_encrypts;
    counter_u64 tls12_gcm_decrypts;
    counter_u64 tls12_gcm_encrypts;
    counter_u64 tls12_gcm_recrypts;
    counter_u64 tls12_chacha20_decrypts;
    counter_u64 tls12_chacha20_encrypts;
    counter_u64 tls13_gcm_decrypts;
    counter_u64 tls13_gcm_encrypts;
    counter_u64 tls13_gcm_recrypts;
    counter_u64 tls13_chacha20_decrypts;
    counter_u64 tls13_chacha20_encrypts;
    counter_u64 inplace;
    counter_u64 separate_output;
    counter_u64 retries;
  } ocf;

  // Gauges of active sessions per mode and cipher family.
  struct ModeGauges {
    counter_u64 cbc;
    counter_u64 gcm;
    counter_u64 chacha20;
  };
  ModeGauges sw, ifnet, toe;
  counter_u64 ifnet_reset;
  counter_u64 ifnet_reset_dropped;
  counter_u64 ifnet_reset_failed;

  sysctl_ctx_list sysctl_ctx;
};

// Registers the kern.ipc.tls tree. Returns 0 or an errno.
int ktls_sysctl_init(kernel& k, KtlsState& st);

}  // namespace uk

#endif  // UKTLS_SYS_KERN_UIPC_KTLS_H_
