// The OpenCrypto framework (OCF), kernel side: sessions, requests, dispatch
// and the driver registry. Mirrors FreeBSD's sys/opencrypto/cryptodev.h
// (kernel part), crypto.c and cryptodev_if.m. KTLS never calls a crypto
// library directly; it builds a cryptop and calls crypto_dispatch().
//
// Locking: CryptoState::mu_ guards the driver table and session counts;
// requests belong to their submitter until the driver calls crypto_done().
// Lock order: ktls work queue -> CryptoState::mu_ -> a driver's own locks.
#ifndef UKTLS_SYS_OPENCRYPTO_CRYPTO_H_
#define UKTLS_SYS_OPENCRYPTO_CRYPTO_H_

#include <sys/uio.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "sys/opencrypto/cryptodev.h"
#include "sys/sys/counter.h"
#include "sys/sys/lock.h"
#include "sys/sys/refcount.h"

namespace uk {

struct kernel;
struct mbuf;
struct vm_page;
struct cryptop;
class crypto_driver;

// csp_mode.
enum : int {
  CSP_MODE_NONE = 0,
  CSP_MODE_COMPRESS = 1,
  CSP_MODE_CIPHER = 2,
  CSP_MODE_DIGEST = 3,
  CSP_MODE_AEAD = 4,
  CSP_MODE_ETA = 5,
};

// csp_flags.
enum : int {
  CSP_F_SEPARATE_OUTPUT = 0x0001,
  CSP_F_SEPARATE_AAD = 0x0002,
  CSP_F_ESN = 0x0004,
};

struct crypto_session_params {
  int csp_mode = CSP_MODE_NONE;
  int csp_flags = 0;
  int csp_ivlen = 0;
  int csp_cipher_alg = 0;
  int csp_cipher_klen = 0;  // bytes
  const void* csp_cipher_key = nullptr;
  int csp_auth_alg = 0;
  int csp_auth_klen = 0;
  const void* csp_auth_key = nullptr;
  int csp_auth_mlen = 0;  // 0 = full digest
};

// Driver capability flags (crypto_get_driverid) and crid selectors.
enum : int {
  CRYPTOCAP_F_HARDWARE = 0x01000000,
  CRYPTOCAP_F_SOFTWARE = 0x02000000,
  CRYPTOCAP_F_SYNC = 0x04000000,
  CRYPTOCAP_F_ACCEL_SOFTWARE = 0x08000000,
  CRYPTO_FLAG_HARDWARE = 0x01000000,
  CRYPTO_FLAG_SOFTWARE = 0x02000000,
};

// probesession() results: higher wins.
enum : int {
  CRYPTODEV_PROBE_HARDWARE = -100,
  CRYPTODEV_PROBE_ACCEL_SOFTWARE = -200,
  CRYPTODEV_PROBE_SOFTWARE = -500,
};

// A session: the parameters and the driver serving them. Opaque to users;
// crypto_ses2caps() and friends report on it.
struct cryptoses;
using crypto_session_t = cryptoses*;

// Buffer kinds a request can point at.
enum crypto_buffer_type {
  CRYPTO_BUF_NONE = 0,
  CRYPTO_BUF_CONTIG,
  CRYPTO_BUF_UIO,
  CRYPTO_BUF_MBUF,
  CRYPTO_BUF_VMPAGE,
  CRYPTO_BUF_SINGLE_MBUF,
};

struct crypto_buffer {
  crypto_buffer_type cb_type = CRYPTO_BUF_NONE;
  // CONTIG
  char* cb_buf = nullptr;
  int cb_buf_len = 0;
  // UIO: a host iovec array
  struct iovec* cb_iov = nullptr;
  int cb_iovcnt = 0;
  // MBUF / SINGLE_MBUF (M_EXTPG allowed)
  mbuf* cb_mbuf = nullptr;
  // VMPAGE
  vm_page** cb_vm_page = nullptr;
  int cb_vm_page_len = 0;
  int cb_vm_page_offset = 0;
};

// crp_op.
enum : int {
  CRYPTO_OP_DECRYPT = 0x0,
  CRYPTO_OP_ENCRYPT = 0x1,
  CRYPTO_OP_IS_ENCRYPT = 0x1,
  CRYPTO_OP_COMPUTE_DIGEST = 0x0,
  CRYPTO_OP_VERIFY_DIGEST = 0x2,
};

// crp_flags.
enum : int {
  CRYPTO_F_CBIMM = 0x0010,
  CRYPTO_F_DONE = 0x0020,
  CRYPTO_F_CBIFSYNC = 0x0040,
  CRYPTO_F_ASYNC_ORDERED = 0x0100,
  CRYPTO_F_IV_SEPARATE = 0x0200,
};

struct cryptop {
  crypto_session_t crp_session = nullptr;
  int crp_op = 0;
  int crp_flags = 0;
  int crp_etype = 0;  // 0, an errno (EBADMSG: digest mismatch), EAGAIN: resubmit

  crypto_buffer crp_buf;
  crypto_buffer crp_obuf;  // CSP_F_SEPARATE_OUTPUT

  const void* crp_aad = nullptr;  // CSP_F_SEPARATE_AAD
  int crp_aad_start = 0;
  int crp_aad_length = 0;
  int crp_iv_start = 0;
  int crp_payload_start = 0;
  int crp_payload_output_start = 0;
  int crp_payload_length = 0;
  int crp_digest_start = 0;
  uint8_t crp_iv[64] = {};

  void* crp_opaque = nullptr;
  // Runs when the request completes (inline for CBIMM or sync sessions,
  // else on a crypto return thread).
  std::function<int(cryptop*)> crp_callback;
  uint64_t crp_seq = 0;  // ASYNC_ORDERED bookkeeping

  // Framework-private (uktls): the session object of the driver actually
  // serving this request (differs from crp_session after a migration), the
  // return-queue link and the queue an ordered request completes on.
  cryptoses* crp_dses_ = nullptr;
  cryptop* crp_next_ = nullptr;
  void* crp_retw_ = nullptr;
};

// crypto_dispatch_async() flags.
enum : int { CRYPTO_ASYNC_ORDERED = 0x1 };

// True when the request writes into a separate output buffer.
inline bool CRYPTO_HAS_OUTPUT_BUFFER(const cryptop* crp) {
  return crp->crp_obuf.cb_type != CRYPTO_BUF_NONE;
}

inline void crypto_initreq(cryptop* crp, crypto_session_t cses) {
  *crp = cryptop();
  crp->crp_session = cses;
}
inline void crypto_destroyreq(cryptop*) {}
inline void crypto_use_buf(cryptop* crp, void* buf, int len) {
  crp->crp_buf = crypto_buffer();
  crp->crp_buf.cb_type = CRYPTO_BUF_CONTIG;
  crp->crp_buf.cb_buf = static_cast<char*>(buf);
  crp->crp_buf.cb_buf_len = len;
}
inline void crypto_use_output_buf(cryptop* crp, void* buf, int len) {
  crp->crp_obuf = crypto_buffer();
  crp->crp_obuf.cb_type = CRYPTO_BUF_CONTIG;
  crp->crp_obuf.cb_buf = static_cast<char*>(buf);
  crp->crp_obuf.cb_buf_len = len;
}
inline void crypto_use_mbuf(cryptop* crp, mbuf* m) {
  crp->crp_buf = crypto_buffer();
  crp->crp_buf.cb_type = CRYPTO_BUF_MBUF;
  crp->crp_buf.cb_mbuf = m;
}
inline void crypto_use_output_mbuf(cryptop* crp, mbuf* m) {
  crp->crp_obuf = crypto_buffer();
  crp->crp_obuf.cb_type = CRYPTO_BUF_MBUF;
  crp->crp_obuf.cb_mbuf = m;
}
inline void crypto_use_vmpage(cryptop* crp, vm_page** pages, int len, int off) {
  crp->crp_buf = crypto_buffer();
  crp->crp_buf.cb_type = CRYPTO_BUF_VMPAGE;
  crp->crp_buf.cb_vm_page = pages;
  crp->crp_buf.cb_vm_page_len = len;
  crp->crp_buf.cb_vm_page_offset = off;
}
inline void crypto_use_output_vmpage(cryptop* crp, vm_page** pages, int len,
                                     int off) {
  crp->crp_obuf = crypto_buffer();
  crp->crp_obuf.cb_type = CRYPTO_BUF_VMPAGE;
  crp->crp_obuf.cb_vm_page = pages;
  crp->crp_obuf.cb_vm_page_len = len;
  crp->crp_obuf.cb_vm_page_offset = off;
}
inline void crypto_use_single_mbuf(cryptop* crp, mbuf* m) {
  crp->crp_buf = crypto_buffer();
  crp->crp_buf.cb_type = CRYPTO_BUF_SINGLE_MBUF;
  crp->crp_buf.cb_mbuf = m;
}
inline void crypto_use_uio(cryptop* crp, struct iovec* iov, int iovcnt) {
  crp->crp_buf = crypto_buffer();
  crp->crp_buf.cb_type = CRYPTO_BUF_UIO;
  crp->crp_buf.cb_iov = iov;
  crp->crp_buf.cb_iovcnt = iovcnt;
}
inline void crypto_use_output_uio(cryptop* crp, struct iovec* iov, int iovcnt) {
  crp->crp_obuf = crypto_buffer();
  crp->crp_obuf.cb_type = CRYPTO_BUF_UIO;
  crp->crp_obuf.cb_iov = iov;
  crp->crp_obuf.cb_iovcnt = iovcnt;
}

// A driver: one object per attached device, registered with
// crypto_get_driverid(). Methods as FreeBSD's cryptodev_if.m.
class crypto_driver {
 public:
  virtual ~crypto_driver() = default;
  virtual const char* name() const = 0;
  // A CRYPTODEV_PROBE_* value (higher is better) or an errno as a positive
  // number (EINVAL) when the driver cannot serve csp.
  virtual int probesession(const crypto_session_params& csp) = 0;
  // Per-session driver state; returns 0 or an errno.
  virtual int newsession(cryptoses* ses, const crypto_session_params& csp) = 0;
  virtual void freesession(cryptoses* ses) = 0;
  // Runs or queues crp; completes it with crypto_done(). Returns 0, or
  // ERESTART if the driver is busy (the framework queues the request).
  virtual int process(cryptop* crp, int hint) = 0;
};

// Per-kernel OCF state (defined in crypto.cc).
struct CryptoState;

// Framework API (FreeBSD names). All return 0 or an errno.
int crypto_get_driverid(kernel& k, std::unique_ptr<crypto_driver> drv, int flags,
                        int* driverid);
int crypto_unregister_all(kernel& k, int driverid);
// Validates csp (check_csp: EINVAL) and picks a driver among those matching
// crid (CRYPTO_FLAG_HARDWARE | CRYPTO_FLAG_SOFTWARE or a driver id) by
// probesession priority, ties to the one with fewer sessions; EOPNOTSUPP if
// none accepts.
int crypto_newsession(kernel& k, crypto_session_t* cses,
                      const crypto_session_params& csp, int crid);
void crypto_freesession(crypto_session_t cses);
const crypto_session_params* crypto_get_params(crypto_session_t cses);
void* crypto_get_driver_session(crypto_session_t cses);
int crypto_ses2caps(crypto_session_t cses);       // the driver's CRYPTOCAP_F_*
int crypto_ses2hid(crypto_session_t cses);        // the driver id
const char* crypto_ses2name(crypto_session_t cses);
// Submits crp. Sync drivers complete inline. The callback reports the
// result (crp_etype); the return value is only for submission errors.
int crypto_dispatch(cryptop* crp);
int crypto_dispatch_async(cryptop* crp, int flags);
void crypto_dispatch_batch(std::vector<cryptop*>& crps, int flags);
// Called by drivers when a request is finished.
void crypto_done(cryptop* crp);

// Driver side (uktls additions; FreeBSD passes the softc through
// crypto_get_driver_session()). In newsession() a driver attaches its
// per-session state to |ses| with crypto_set_driver_session(); in process()
// it finds the session serving the request with crypto_request_session(crp)
// (after a migration that is not crp->crp_session). crypto_get_driver_session
// returns exactly what was set on that session object.
void crypto_set_driver_session(cryptoses* ses, void* priv);
cryptoses* crypto_request_session(const cryptop* crp);
// A driver that returned ERESTART from process() calls this when it can take
// requests again; the framework resubmits the queued ones in order.
void crypto_unblock(kernel& k, int driverid);
// The id of the driver registered under |name| ("ipsecmb"), or -1.
int crypto_find_driver(kernel& k, const char* name);
// Number of sessions currently bound to a driver (-1 if unknown).
int crypto_driver_sessions(kernel& k, int driverid);
// True if the request's session is served by a CRYPTOCAP_F_SYNC driver
// (FreeBSD's CRYPTO_SESS_SYNC()).
bool CRYPTO_SESS_SYNC(crypto_session_t cses);

// A cursor over a crypto buffer (FreeBSD's struct crypto_buffer_cursor):
// segment() gives the contiguous piece at the current position.
struct crypto_buffer_cursor {
  crypto_buffer_type cc_type = CRYPTO_BUF_NONE;
  const crypto_buffer* cc_cb = nullptr;
  // CONTIG / VMPAGE: absolute offset; UIO: iovec index + offset in it;
  // MBUF: current mbuf + offset in it.
  size_t cc_off = 0;
  int cc_idx = 0;
  mbuf* cc_mbuf = nullptr;
};
void crypto_cursor_init(crypto_buffer_cursor* cc, const crypto_buffer* cb);
void crypto_cursor_advance(crypto_buffer_cursor* cc, size_t amount);
// Pointer to the current segment and its remaining length (0 at the end).
uint8_t* crypto_cursor_segment(crypto_buffer_cursor* cc, size_t* len);
void crypto_cursor_copyback(crypto_buffer_cursor* cc, int size, const void* src);
void crypto_cursor_copydata(crypto_buffer_cursor* cc, int size, void* dst);

// Request-level helpers (FreeBSD's crypto_copyback(crp, ...) and friends):
// the output side is crp_obuf when the request has one, else crp_buf.
void crypto_copydata_req(const cryptop* crp, int off, int len, void* dst);
void crypto_copyback_req(const cryptop* crp, int off, int len, const void* src);
// Reads the request's IV (crp_iv with CRYPTO_F_IV_SEPARATE, else the buffer
// at crp_iv_start) into iv[0..ivlen).
void crypto_read_iv(const cryptop* crp, void* iv, int ivlen);

// Helpers for drivers: walk a request's buffer as contiguous segments.
// Calls f(ptr, len) for each piece of [off, off+len) of cb.
int crypto_buffer_apply(const crypto_buffer& cb, int off, int len,
                        const std::function<int(uint8_t*, size_t)>& f);
// Copies between a crypto buffer and a flat buffer.
void crypto_copydata(const crypto_buffer& cb, int off, int len, void* dst);
void crypto_copyback(const crypto_buffer& cb, int off, int len, const void* src);
// Total length of the buffer.
int crypto_buffer_len(const crypto_buffer& cb);

}  // namespace uk

#endif  // UKTLS_SYS_OPENCRYPTO_CRYPTO_H_
