// Helpers shared by the OCF drivers (ipsecmb, ossl, ccr_sim): walking a
// request's AAD and payload as contiguous pieces without copying, the
// driver modules' entry points, and the SM4/CCM compositions the ossl driver
// builds from block ciphers. Internal to sys/opencrypto.
#ifndef UKTLS_SYS_OPENCRYPTO_CRYPTO_DRV_H_
#define UKTLS_SYS_OPENCRYPTO_CRYPTO_DRV_H_

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <memory>

#include "sys/opencrypto/crypto.h"

namespace uk {

struct kernel;

// The tag length a session produces: csp_auth_mlen, or the full length.
inline int crypto_session_mlen(const crypto_session_params& csp, int full) {
  return csp.csp_auth_mlen != 0 ? csp.csp_auth_mlen : full;
}

// Calls f(ptr, len) for each contiguous piece of the request's AAD
// (crp_aad when set, else [crp_aad_start, +crp_aad_length) of crp_buf).
template <class F>
inline void crypto_walk_aad(const cryptop* crp, F&& f) {
  if (crp->crp_aad_length == 0) return;
  if (crp->crp_aad != nullptr) {
    f(static_cast<const uint8_t*>(crp->crp_aad),
      static_cast<size_t>(crp->crp_aad_length));
    return;
  }
  crypto_buffer_cursor cc;
  crypto_cursor_init(&cc, &crp->crp_buf);
  crypto_cursor_advance(&cc, crp->crp_aad_start);
  size_t left = crp->crp_aad_length;
  while (left > 0) {
    size_t l;
    uint8_t* p = crypto_cursor_segment(&cc, &l);
    if (p == nullptr) return;
    size_t n = std::min(l, left);
    f(static_cast<const uint8_t*>(p), n);
    left -= n;
    crypto_cursor_advance(&cc, n);
  }
}

// Walks the payload of crp in lockstep with its output position (the
// separate output buffer at crp_payload_output_start, or in place), calling
// f(in, out, n) for pieces contiguous on both sides. Returns false if a
// buffer is shorter than the payload.
template <class F>
inline bool crypto_walk_payload(const cryptop* crp, F&& f) {
  // Fast path: flat buffers on both sides (the common record layout).
  const crypto_buffer& ob = CRYPTO_HAS_OUTPUT_BUFFER(crp) ? crp->crp_obuf : crp->crp_buf;
  if (crp->crp_buf.cb_type == CRYPTO_BUF_CONTIG && ob.cb_type == CRYPTO_BUF_CONTIG) {
    const int ooff = CRYPTO_HAS_OUTPUT_BUFFER(crp) ? crp->crp_payload_output_start
                                                   : crp->crp_payload_start;
    if (crp->crp_payload_start + crp->crp_payload_length > crp->crp_buf.cb_buf_len ||
        ooff + crp->crp_payload_length > ob.cb_buf_len)
      return false;
    if (crp->crp_payload_length > 0)
      f(reinterpret_cast<const uint8_t*>(crp->crp_buf.cb_buf) + crp->crp_payload_start,
        reinterpret_cast<uint8_t*>(ob.cb_buf) + ooff,
        static_cast<size_t>(crp->crp_payload_length));
    return true;
  }
  crypto_buffer_cursor ic, oc;
  crypto_cursor_init(&ic, &crp->crp_buf);
  crypto_cursor_advance(&ic, crp->crp_payload_start);
  if (CRYPTO_HAS_OUTPUT_BUFFER(crp)) {
    crypto_cursor_init(&oc, &crp->crp_obuf);
    crypto_cursor_advance(&oc, crp->crp_payload_output_start);
  } else {
    oc = ic;
  }
  size_t left = crp->crp_payload_length;
  while (left > 0) {
    size_t il, ol;
    uint8_t* ip = crypto_cursor_segment(&ic, &il);
    uint8_t* op = crypto_cursor_segment(&oc, &ol);
    if (ip == nullptr || op == nullptr) return false;
    size_t n = std::min({il, ol, left});
    f(static_cast<const uint8_t*>(ip), op, n);
    left -= n;
    crypto_cursor_advance(&ic, n);
    crypto_cursor_advance(&oc, n);
  }
  return true;
}

// As crypto_walk_payload, but every call covers whole blocks of |B| bytes
// (a block split across segments is gathered into a bounce block and
// scattered back), for CBC. The payload length must be a multiple of B.
template <size_t B, class F>
inline bool crypto_walk_payload_blocks(const cryptop* crp, F&& f) {
  crypto_buffer_cursor ic, oc;
  crypto_cursor_init(&ic, &crp->crp_buf);
  crypto_cursor_advance(&ic, crp->crp_payload_start);
  if (CRYPTO_HAS_OUTPUT_BUFFER(crp)) {
    crypto_cursor_init(&oc, &crp->crp_obuf);
    crypto_cursor_advance(&oc, crp->crp_payload_output_start);
  } else {
    oc = ic;
  }
  size_t left = crp->crp_payload_length;
  while (left > 0) {
    size_t il, ol;
    uint8_t* ip = crypto_cursor_segment(&ic, &il);
    uint8_t* op = crypto_cursor_segment(&oc, &ol);
    if (ip == nullptr || op == nullptr) return false;
    size_t n = std::min({il, ol, left});
    n -= n % B;
    if (n > 0) {
      f(static_cast<const uint8_t*>(ip), op, n);
    } else {
      uint8_t in[B], out[B];
      crypto_buffer_cursor c2 = ic;
      crypto_cursor_copydata(&c2, B, in);
      f(static_cast<const uint8_t*>(in), out, B);
      c2 = oc;
      crypto_cursor_copyback(&c2, B, out);
      n = B;
    }
    left -= n;
    crypto_cursor_advance(&ic, n);
    crypto_cursor_advance(&oc, n);
  }
  return true;
}

// Constant-time tag comparison.
inline bool crypto_tag_equal(const uint8_t* a, const uint8_t* b, int n) {
  uint8_t d = 0;
  for (int i = 0; i < n; i++) d |= a[i] ^ b[i];
  return d == 0;
}

// Finishes a tag: writes it at crp_digest_start of the output side, or for
// VERIFY_DIGEST compares it with the one in crp_buf (EBADMSG on mismatch).
inline int crypto_finish_tag(cryptop* crp, const uint8_t* tag, int mlen) {
  if (crp->crp_op & CRYPTO_OP_VERIFY_DIGEST) {
    uint8_t want[64];
    crypto_copydata(crp->crp_buf, crp->crp_digest_start, mlen, want);
    return crypto_tag_equal(tag, want, mlen) ? 0 : EBADMSG;
  }
  const crypto_buffer& ob = CRYPTO_HAS_OUTPUT_BUFFER(crp) ? crp->crp_obuf : crp->crp_buf;
  if (ob.cb_type == CRYPTO_BUF_CONTIG && crp->crp_digest_start + mlen <= ob.cb_buf_len) {
    memcpy(ob.cb_buf + crp->crp_digest_start, tag, mlen);
    return 0;
  }
  crypto_copyback_req(crp, crp->crp_digest_start, mlen, tag);
  return 0;
}

// GHASH (NIST SP 800-38D) with a 4-bit table, for GCM over block ciphers
// OpenSSL has no GCM mode for (SM4).
class Ghash {
 public:
  void init(const uint8_t h[16]);
  void reset();
  // Absorbs bytes; a partial block is kept until pad() or more data.
  void update(const uint8_t* p, size_t n);
  // Zero-pads a pending partial block (AAD/ciphertext boundary).
  void pad();
  void final(uint64_t aad_bytes, uint64_t ct_bytes, uint8_t out[16]);

 private:
  void mul(uint64_t* hi, uint64_t* lo) const;
  void block(const uint8_t b[16]);
  uint64_t th_[16], tl_[16];
  uint64_t yh_ = 0, yl_ = 0;
  uint8_t buf_[16];
  size_t nbuf_ = 0;
};

// The body of a driver module's event handler: MOD_LOAD registers the
// driver |make()| builds under |flags|, MOD_UNLOAD unregisters it (EBUSY
// while it has sessions), MOD_SHUTDOWN unregisters it regardless (halt).
int crypto_driver_modevent(kernel& k, int what, const char* name,
                           std::unique_ptr<crypto_driver> (*make)(), int flags);

// Driver modules (their modevent handlers: MOD_LOAD registers the driver,
// MOD_UNLOAD unregisters it, EBUSY while it has sessions).
int ipsecmb_modevent(kernel& k, int what, void* arg);
int ossl_modevent(kernel& k, int what, void* arg);
int ccr_sim_modevent(kernel& k, int what, void* arg);

// A synchronous software driver: compute() does the arithmetic of one
// request on the driver's session object |ses| and returns its crp_etype;
// process() is compute() then crypto_done(). ccr_sim runs compute() of an
// unregistered engine from its own threads.
class crypto_engine : public crypto_driver {
 public:
  virtual int compute(cryptop* crp, cryptoses* ses) = 0;
  int process(cryptop* crp, int hint) override {
    (void)hint;
    crp->crp_etype = compute(crp, crypto_request_session(crp));
    crypto_done(crp);
    return 0;
  }
};

std::unique_ptr<crypto_engine> ipsecmb_driver_create();
std::unique_ptr<crypto_engine> ossl_driver_create();

}  // namespace uk

#endif  // UKTLS_SYS_OPENCRYPTO_CRYPTO_DRV_H_
