// The ipsecmb driver: OCF over Intel IPsec-MB 1.3, an accelerated software
// driver (FreeBSD's aesni(4) plays this role there).
//
// AES-GCM and ChaCha20-Poly1305 use the library's direct init/update/finalize
// API, one update per contiguous piece of the request, so an M_EXTPG record
// or a page vector is encrypted where it lies: no bounce buffer, no per-request
// allocation. That API only reads the manager's function table, so one
// manager serves every thread.
//
// AES-CBC, AES-ICM, AES-CCM and HMAC go through the job API, whose manager
// keeps queue state: managers come from a small pool (one per concurrent
// caller). The library's managers for wide vector units hash with
// multi-buffer code that only pays with many jobs in flight; one job at a
// time (the framework's synchronous requests) hashes SHA-1 and SHA-256
// 4-7 times faster on the SHA extensions, which only its SSE manager uses
// for HMAC: where the CPU has them, those HMACs take managers from a second
// pool of SSE managers (FreeBSD's aesni(4) also hashes with SHA-NI). CBC is fed piecewise with the IV chained by hand; CCM, ICM and
// HMAC need their data contiguous and bounce through the manager's scratch
// buffer when it is not.
#include <intel-ipsec-mb.h>

#include <cerrno>
#include <cstring>
#include <vector>

#include "sys/kern/kernel.h"
#include "sys/opencrypto/crypto.h"
#include "sys/opencrypto/crypto_drv.h"
#include "sys/sys/lock.h"
#include "sys/sys/module.h"

namespace uk {

namespace {

enum class Kind { kGcm, kChacha, kCbc, kCtr, kCcm, kHmac };

struct alignas(64) imb_session {
  Kind kind = Kind::kGcm;
  int klen = 0;
  int ivlen = 0;
  int mlen = 0;
  IMB_HASH_ALG hash = IMB_AUTH_NULL;
  int full = 0;  // full digest length
  // A session is of one kind, so the key material of the kinds overlaps
  // (an idle KTLS connection holds two or three of these).
  union {
    gcm_key_data gkey;                            // kGcm
    uint8_t chacha_key[32];                       // kChacha
    struct {                                      // kCbc, kCtr, kCcm, kHmac
      alignas(16) uint8_t enc_keys[16 * 15];
      alignas(16) uint8_t dec_keys[16 * 15];
      alignas(16) uint8_t ipad[64];  // hashed (key ^ ipad) state
      alignas(16) uint8_t opad[64];
    };
  };
  imb_session() : gkey() {}

  ~imb_session() {
    imb_clear_mem(this, sizeof(*this));
  }
};

// A job-API manager with its bounce buffer.
struct MgrSlot {
  IMB_MGR* mgr = nullptr;
  bool sha_ni = false;  // an SSE manager of the SHA-NI pool
  std::vector<uint8_t> scratch;
};

// Runs one job to completion on a manager nobody else is using.
int run_job(IMB_MGR* m, IMB_JOB* job) {
  (void)job;
  IMB_JOB* done = IMB_SUBMIT_JOB(m);
  int e = 0;
  if (done != nullptr && done->status != IMB_STATUS_COMPLETED) e = EIO;
  while ((done = IMB_FLUSH_JOB(m)) != nullptr)
    if (done->status != IMB_STATUS_COMPLETED) e = EIO;
  return e;
}

bool payload_contig(const cryptop* crp, const uint8_t** in, uint8_t** out) {
  crypto_buffer_cursor c;
  size_t l;
  crypto_cursor_init(&c, &crp->crp_buf);
  crypto_cursor_advance(&c, crp->crp_payload_start);
  uint8_t* p = crypto_cursor_segment(&c, &l);
  if (p == nullptr || l < static_cast<size_t>(crp->crp_payload_length)) return false;
  *in = p;
  if (CRYPTO_HAS_OUTPUT_BUFFER(crp)) {
    crypto_cursor_init(&c, &crp->crp_obuf);
    crypto_cursor_advance(&c, crp->crp_payload_output_start);
    p = crypto_cursor_segment(&c, &l);
    if (p == nullptr || l < static_cast<size_t>(crp->crp_payload_length)) return false;
  }
  *out = p;
  return true;
}

class ipsecmb_driver final : public crypto_engine {
 public:
  ipsecmb_driver() {
    direct_ = alloc_mb_mgr(0);
    if (direct_ != nullptr) init_mb_mgr_auto(direct_, &arch_);
    sha_ni_ = direct_ != nullptr && (direct_->features & IMB_FEATURE_SHANI) != 0;
  }
  ~ipsecmb_driver() override {
    MutexLock l(&mu_);
    for (auto* pool : {&free_, &free_sha_ni_}) {
      for (MgrSlot* s : *pool) {
        free_mb_mgr(s->mgr);
        delete s;
      }
    }
    if (direct_ != nullptr) free_mb_mgr(direct_);
  }

  const char* name() const override { return "ipsecmb"; }

  int probesession(const crypto_session_params& csp) override {
    if (direct_ == nullptr) return ENXIO;
    Kind k;
    if (!supported(csp, &k)) return EINVAL;
    return CRYPTODEV_PROBE_ACCEL_SOFTWARE;
  }

  int newsession(cryptoses* ses, const crypto_session_params& csp) override {
    Kind kind;
    if (!supported(csp, &kind)) return EINVAL;
    auto s = std::make_unique<imb_session>();
    s->kind = kind;
    s->klen = csp.csp_cipher_klen;
    s->ivlen = csp.csp_ivlen;
    const auto* key = static_cast<const uint8_t*>(csp.csp_cipher_key);
    switch (kind) {
      case Kind::kGcm:
        s->mlen = crypto_session_mlen(csp, GMAC_DIGEST_LEN);
        if (s->klen == 16)
          IMB_AES128_GCM_PRE(direct_, key, &s->gkey);
        else
          IMB_AES256_GCM_PRE(direct_, key, &s->gkey);
        break;
      case Kind::kChacha:
        s->mlen = crypto_session_mlen(csp, POLY1305_HASH_LEN);
        memcpy(s->chacha_key, key, 32);
        break;
      case Kind::kCbc:
      case Kind::kCtr:
      case Kind::kCcm:
        s->mlen = crypto_session_mlen(csp, 16);
        if (s->klen == 16)
          IMB_AES_KEYEXP_128(direct_, key, s->enc_keys, s->dec_keys);
        else
          IMB_AES_KEYEXP_256(direct_, key, s->enc_keys, s->dec_keys);
        break;
      case Kind::kHmac:
        hmac_setup(s.get(), csp);
        break;
    }
    crypto_set_driver_session(ses, s.release());
    return 0;
  }

  void freesession(cryptoses* ses) override {
    delete static_cast<imb_session*>(crypto_get_driver_session(ses));
    crypto_set_driver_session(ses, nullptr);
  }

  int compute(cryptop* crp, cryptoses* ses) override {
    auto* s = static_cast<imb_session*>(crypto_get_driver_session(ses));
    switch (s->kind) {
      case Kind::kGcm:
        return gcm(crp, s);
      case Kind::kChacha:
        return chacha(crp, s);
      case Kind::kCbc:
        return cbc(crp, s);
      case Kind::kCtr:
        return ctr(crp, s);
      case Kind::kCcm:
        return ccm(crp, s);
      case Kind::kHmac:
        return hmac(crp, s);
    }
    return EINVAL;
  }

 private:
  static bool supported(const crypto_session_params& csp, Kind* k) {
    int klen = csp.csp_cipher_klen;
    switch (csp.csp_mode) {
      case CSP_MODE_AEAD:
        switch (csp.csp_cipher_alg) {
          case CRYPTO_AES_NIST_GCM_16:
            *k = Kind::kGcm;
            return (klen == 16 || klen == 32) && csp.csp_ivlen == 12;
          case CRYPTO_CHACHA20_POLY1305:
            *k = Kind::kChacha;
            return klen == 32 && (csp.csp_ivlen == 12 || csp.csp_ivlen == 8);
          case CRYPTO_AES_CCM_16:
            *k = Kind::kCcm;
            return klen == 16 || klen == 32;
        }
        return false;
      case CSP_MODE_CIPHER:
        switch (csp.csp_cipher_alg) {
          case CRYPTO_AES_CBC:
            *k = Kind::kCbc;
            return (klen == 16 || klen == 32) && csp.csp_ivlen == 16;
          case CRYPTO_AES_ICM:
            *k = Kind::kCtr;
            return (klen == 16 || klen == 32) && csp.csp_ivlen == 16;
        }
        return false;
      case CSP_MODE_DIGEST:
        *k = Kind::kHmac;
        switch (csp.csp_auth_alg) {
          case CRYPTO_SHA1_HMAC:
          case CRYPTO_SHA2_256_HMAC:
          case CRYPTO_SHA2_384_HMAC:
          case CRYPTO_SHA2_512_HMAC:
            return true;
        }
        return false;
    }
    return false;
  }

  void hmac_setup(imb_session* s, const crypto_session_params& csp) {
    size_t bs = 64;
    switch (csp.csp_auth_alg) {
      case CRYPTO_SHA1_HMAC:
        s->hash = IMB_AUTH_HMAC_SHA_1;
        s->full = SHA1_HASH_LEN;
        break;
      case CRYPTO_SHA2_256_HMAC:
        s->hash = IMB_AUTH_HMAC_SHA_256;
        s->full = SHA2_256_HASH_LEN;
        break;
      case CRYPTO_SHA2_384_HMAC:
        s->hash = IMB_AUTH_HMAC_SHA_384;
        s->full = SHA2_384_HASH_LEN;
        bs = 128;
        break;
      default:
        s->hash = IMB_AUTH_HMAC_SHA_512;
        s->full = SHA2_512_HASH_LEN;
        bs = 128;
        break;
    }
    s->mlen = crypto_session_mlen(csp, s->full);
    uint8_t k[128] = {};
    const auto* key = static_cast<const uint8_t*>(csp.csp_auth_key);
    size_t klen = csp.csp_auth_klen;
    // RFC 2104: keys longer than a block are hashed first.
    if (klen > bs) {
      switch (s->hash) {
        case IMB_AUTH_HMAC_SHA_1:
          IMB_SHA1(direct_, key, klen, k);
          break;
        case IMB_AUTH_HMAC_SHA_256:
          IMB_SHA256(direct_, key, klen, k);
          break;
        case IMB_AUTH_HMAC_SHA_384:
          IMB_SHA384(direct_, key, klen, k);
          break;
        default:
          IMB_SHA512(direct_, key, klen, k);
          break;
      }
    } else {
      memcpy(k, key, klen);
    }
    uint8_t ib[128], ob[128];
    for (size_t i = 0; i < bs; i++) {
      ib[i] = k[i] ^ 0x36;
      ob[i] = k[i] ^ 0x5c;
    }
    switch (s->hash) {
      case IMB_AUTH_HMAC_SHA_1:
        IMB_SHA1_ONE_BLOCK(direct_, ib, s->ipad);
        IMB_SHA1_ONE_BLOCK(direct_, ob, s->opad);
        break;
      case IMB_AUTH_HMAC_SHA_256:
        IMB_SHA256_ONE_BLOCK(direct_, ib, s->ipad);
        IMB_SHA256_ONE_BLOCK(direct_, ob, s->opad);
        break;
      case IMB_AUTH_HMAC_SHA_384:
        IMB_SHA384_ONE_BLOCK(direct_, ib, s->ipad);
        IMB_SHA384_ONE_BLOCK(direct_, ob, s->opad);
        break;
      default:
        IMB_SHA512_ONE_BLOCK(direct_, ib, s->ipad);
        IMB_SHA512_ONE_BLOCK(direct_, ob, s->opad);
        break;
    }
    imb_clear_mem(k, sizeof(k));
    imb_clear_mem(ib, sizeof(ib));
    imb_clear_mem(ob, sizeof(ob));
  }

  // Contiguous AAD: crp_aad, the buffer itself, or a copy in |tmp|.
  static const uint8_t* aad_ptr(const cryptop* crp, std::vector<uint8_t>* tmp,
                                uint8_t* small, size_t small_len) {
    if (crp->crp_aad_length == 0) return nullptr;
    if (crp->crp_aad != nullptr) return static_cast<const uint8_t*>(crp->crp_aad);
    crypto_buffer_cursor c;
    size_t l;
    crypto_cursor_init(&c, &crp->crp_buf);
    crypto_cursor_advance(&c, crp->crp_aad_start);
    uint8_t* p = crypto_cursor_segment(&c, &l);
    if (p != nullptr && l >= static_cast<size_t>(crp->crp_aad_length)) return p;
    uint8_t* dst = small;
    if (static_cast<size_t>(crp->crp_aad_length) > small_len) {
      tmp->resize(crp->crp_aad_length);
      dst = tmp->data();
    }
    crypto_copydata(crp->crp_buf, crp->crp_aad_start, crp->crp_aad_length, dst);
    return dst;
  }

  int gcm(cryptop* crp, imb_session* s) {
    bool enc = crp->crp_op & CRYPTO_OP_ENCRYPT;
    uint8_t iv[12];
    crypto_read_iv(crp, iv, 12);
    uint8_t small[64];
    std::vector<uint8_t> big;
    const uint8_t* aad = aad_ptr(crp, &big, small, sizeof(small));
    gcm_context_data ctx;
    IMB_MGR* m = direct_;
    const bool k128 = s->klen == 16;
    if (k128)
      IMB_AES128_GCM_INIT(m, &s->gkey, &ctx, iv, aad, crp->crp_aad_length);
    else
      IMB_AES256_GCM_INIT(m, &s->gkey, &ctx, iv, aad, crp->crp_aad_length);
    bool ok = crypto_walk_payload(crp, [&](const uint8_t* in, uint8_t* out, size_t n) {
      if (enc) {
        if (k128)
          IMB_AES128_GCM_ENC_UPDATE(m, &s->gkey, &ctx, out, in, n);
        else
          IMB_AES256_GCM_ENC_UPDATE(m, &s->gkey, &ctx, out, in, n);
      } else {
        if (k128)
          IMB_AES128_GCM_DEC_UPDATE(m, &s->gkey, &ctx, out, in, n);
        else
          IMB_AES256_GCM_DEC_UPDATE(m, &s->gkey, &ctx, out, in, n);
      }
    });
    if (!ok) return EINVAL;
    uint8_t tag[16];
    if (enc) {
      if (k128)
        IMB_AES128_GCM_ENC_FINALIZE(m, &s->gkey, &ctx, tag, 16);
      else
        IMB_AES256_GCM_ENC_FINALIZE(m, &s->gkey, &ctx, tag, 16);
    } else {
      if (k128)
        IMB_AES128_GCM_DEC_FINALIZE(m, &s->gkey, &ctx, tag, 16);
      else
        IMB_AES256_GCM_DEC_FINALIZE(m, &s->gkey, &ctx, tag, 16);
    }
    return crypto_finish_tag(crp, tag, s->mlen);
  }

  int chacha(cryptop* crp, imb_session* s) {
    bool enc = crp->crp_op & CRYPTO_OP_ENCRYPT;
    // A 64-bit nonce is the 96-bit one with four zero bytes in front.
    uint8_t iv[12] = {};
    if (s->ivlen == 8)
      crypto_read_iv(crp, iv + 4, 8);
    else
      crypto_read_iv(crp, iv, 12);
    uint8_t small[64];
    std::vector<uint8_t> big;
    const uint8_t* aad = aad_ptr(crp, &big, small, sizeof(small));
    chacha20_poly1305_context_data ctx;
    IMB_MGR* m = direct_;
    IMB_CHACHA20_POLY1305_INIT(m, s->chacha_key, &ctx, iv, aad, crp->crp_aad_length);
    bool ok = crypto_walk_payload(crp, [&](const uint8_t* in, uint8_t* out, size_t n) {
      if (enc)
        IMB_CHACHA20_POLY1305_ENC_UPDATE(m, s->chacha_key, &ctx, out, in, n);
      else
        IMB_CHACHA20_POLY1305_DEC_UPDATE(m, s->chacha_key, &ctx, out, in, n);
    });
    if (!ok) return EINVAL;
    uint8_t tag[16];
    if (enc)
      IMB_CHACHA20_POLY1305_ENC_FINALIZE(m, &ctx, tag, 16);
    else
      IMB_CHACHA20_POLY1305_DEC_FINALIZE(m, &ctx, tag, 16);
    return crypto_finish_tag(crp, tag, s->mlen);
  }

  // A manager of the pool for the CPU's widest code, or (sha_ni) of the
  // SSE pool that hashes with the SHA extensions.
  MgrSlot* get_mgr(bool sha_ni = false) {
    {
      MutexLock l(&mu_);
      std::vector<MgrSlot*>& pool = sha_ni ? free_sha_ni_ : free_;
      if (!pool.empty()) {
        MgrSlot* s = pool.back();
        pool.pop_back();
        return s;
      }
    }
    auto* s = new MgrSlot();
    s->mgr = alloc_mb_mgr(0);
    if (s->mgr == nullptr) {
      delete s;
      return nullptr;
    }
    s->sha_ni = sha_ni;
    if (sha_ni) {
      init_mb_mgr_sse(s->mgr);
    } else {
      IMB_ARCH arch;
      init_mb_mgr_auto(s->mgr, &arch);
    }
    return s;
  }
  void put_mgr(MgrSlot* s) {
    MutexLock l(&mu_);
    (s->sha_ni ? free_sha_ni_ : free_).push_back(s);
  }
  // HMACs that the SHA extensions speed up, on a CPU that has them.
  bool hash_on_sha_ni(const imb_session* s) const {
    return sha_ni_ && (s->hash == IMB_AUTH_HMAC_SHA_1 || s->hash == IMB_AUTH_HMAC_SHA_224 ||
                       s->hash == IMB_AUTH_HMAC_SHA_256);
  }

  static IMB_JOB* cipher_job(IMB_MGR* m, imb_session* s, IMB_CIPHER_MODE mode,
                             bool enc) {
    IMB_JOB* job = IMB_GET_NEXT_JOB(m);
    job->cipher_mode = mode;
    job->cipher_direction = enc ? IMB_DIR_ENCRYPT : IMB_DIR_DECRYPT;
    job->chain_order = enc ? IMB_ORDER_CIPHER_HASH : IMB_ORDER_HASH_CIPHER;
    job->hash_alg = IMB_AUTH_NULL;
    job->enc_keys = s->enc_keys;
    job->dec_keys = s->dec_keys;
    job->key_len_in_bytes = s->klen;
    job->cipher_start_src_offset_in_bytes = 0;
    job->hash_start_src_offset_in_bytes = 0;
    job->msg_len_to_hash_in_bytes = 0;
    job->auth_tag_output = nullptr;
    job->auth_tag_output_len_in_bytes = 0;
    return job;
  }

  int cbc(cryptop* crp, imb_session* s) {
    if (crp->crp_payload_length % AES_BLOCK_LEN != 0) return EINVAL;
    bool enc = crp->crp_op & CRYPTO_OP_ENCRYPT;
    MgrSlot* ms = get_mgr();
    if (ms == nullptr) return ENOMEM;
    alignas(16) uint8_t iv[16];
    crypto_read_iv(crp, iv, 16);
    int e = 0;
    bool ok = crypto_walk_payload_blocks<AES_BLOCK_LEN>(
        crp, [&](const uint8_t* in, uint8_t* out, size_t n) {
          if (e != 0) return;
          uint8_t next[16];
          // The next piece chains from the last ciphertext block, which a
          // decryption in place is about to overwrite.
          if (!enc) memcpy(next, in + n - 16, 16);
          IMB_JOB* job = cipher_job(ms->mgr, s, IMB_CIPHER_CBC, enc);
          job->src = in;
          job->dst = out;
          job->msg_len_to_cipher_in_bytes = n;
          job->iv = iv;
          job->iv_len_in_bytes = 16;
          e = run_job(ms->mgr, job);
          memcpy(iv, enc ? out + n - 16 : next, 16);
        });
    put_mgr(ms);
    if (!ok) return EINVAL;
    return e;
  }

  // Runs f(in, out) over the payload made contiguous, bouncing through the
  // manager's scratch buffer when the request's buffers are scattered.
  template <class F>
  static int with_contig_payload(cryptop* crp, MgrSlot* ms, F&& f) {
    const uint8_t* in;
    uint8_t* out;
    if (payload_contig(crp, &in, &out)) return f(in, out);
    size_t n = crp->crp_payload_length;
    if (ms->scratch.size() < n) ms->scratch.resize(n);
    uint8_t* b = ms->scratch.data();
    crypto_copydata(crp->crp_buf, crp->crp_payload_start, n, b);
    int e = f(b, b);
    if (e == 0)
      crypto_copyback(CRYPTO_HAS_OUTPUT_BUFFER(crp) ? crp->crp_obuf : crp->crp_buf,
                      CRYPTO_HAS_OUTPUT_BUFFER(crp) ? crp->crp_payload_output_start
                                                    : crp->crp_payload_start,
                      n, b);
    return e;
  }

  int ctr(cryptop* crp, imb_session* s) {
    MgrSlot* ms = get_mgr();
    if (ms == nullptr) return ENOMEM;
    alignas(16) uint8_t iv[16];
    crypto_read_iv(crp, iv, 16);
    int e = with_contig_payload(crp, ms, [&](const uint8_t* in, uint8_t* out) {
      IMB_JOB* job = cipher_job(ms->mgr, s, IMB_CIPHER_CNTR, true);
      job->src = in;
      job->dst = out;
      job->msg_len_to_cipher_in_bytes = crp->crp_payload_length;
      job->iv = iv;
      job->iv_len_in_bytes = 16;
      return run_job(ms->mgr, job);
    });
    put_mgr(ms);
    return e;
  }

  int ccm(cryptop* crp, imb_session* s) {
    // IPsec-MB's CCM takes at most 46 bytes of AAD (one B0 block and two
    // more); TLS uses 13.
    if (crp->crp_aad_length > 46) return EINVAL;
    bool enc = crp->crp_op & CRYPTO_OP_ENCRYPT;
    MgrSlot* ms = get_mgr();
    if (ms == nullptr) return ENOMEM;
    uint8_t nonce[16];
    crypto_read_iv(crp, nonce, s->ivlen);
    uint8_t aadbuf[64];
    if (crp->crp_aad_length > 0) {
      if (crp->crp_aad != nullptr)
        memcpy(aadbuf, crp->crp_aad, crp->crp_aad_length);
      else
        crypto_copydata(crp->crp_buf, crp->crp_aad_start, crp->crp_aad_length, aadbuf);
    }
    uint8_t tag[16];
    int e = with_contig_payload(crp, ms, [&](const uint8_t* in, uint8_t* out) {
      IMB_JOB* job = cipher_job(ms->mgr, s, IMB_CIPHER_CCM, enc);
      job->chain_order = enc ? IMB_ORDER_HASH_CIPHER : IMB_ORDER_CIPHER_HASH;
      job->hash_alg = IMB_AUTH_AES_CCM;
      job->dec_keys = s->enc_keys;
      job->src = in;
      job->dst = out;
      job->msg_len_to_cipher_in_bytes = crp->crp_payload_length;
      job->msg_len_to_hash_in_bytes = crp->crp_payload_length;
      job->iv = nonce;
      job->iv_len_in_bytes = s->ivlen;
      job->u.CCM.aad = aadbuf;
      job->u.CCM.aad_len_in_bytes = crp->crp_aad_length;
      job->auth_tag_output = tag;
      job->auth_tag_output_len_in_bytes = s->mlen;
      return run_job(ms->mgr, job);
    });
    put_mgr(ms);
    if (e != 0) return e;
    return crypto_finish_tag(crp, tag, s->mlen);
  }

  int hmac(cryptop* crp, imb_session* s) {
    MgrSlot* ms = get_mgr(hash_on_sha_ni(s));
    if (ms == nullptr) return ENOMEM;
    // The job API hashes one contiguous buffer: AAD ‖ payload.
    const uint8_t* data = nullptr;
    size_t n = crp->crp_aad_length + crp->crp_payload_length;
    crypto_buffer_cursor c;
    size_t l;
    crypto_cursor_init(&c, &crp->crp_buf);
    if (crp->crp_aad == nullptr &&
        (crp->crp_aad_length == 0 ||
         crp->crp_aad_start + crp->crp_aad_length == crp->crp_payload_start)) {
      crypto_cursor_advance(&c, crp->crp_aad_length ? crp->crp_aad_start
                                                    : crp->crp_payload_start);
      uint8_t* p = crypto_cursor_segment(&c, &l);
      if (p != nullptr && l >= n) data = p;
    }
    if (data == nullptr) {
      if (ms->scratch.size() < n) ms->scratch.resize(n);
      uint8_t* b = ms->scratch.data();
      size_t off = 0;
      crypto_walk_aad(crp, [&](const uint8_t* p, size_t k) {
        memcpy(b + off, p, k);
        off += k;
      });
      crypto_copydata(crp->crp_buf, crp->crp_payload_start, crp->crp_payload_length,
                      b + off);
      data = b;
    }
    uint8_t md[64];
    IMB_JOB* job = IMB_GET_NEXT_JOB(ms->mgr);
    job->cipher_mode = IMB_CIPHER_NULL;
    job->cipher_direction = IMB_DIR_ENCRYPT;
    job->chain_order = IMB_ORDER_HASH_CIPHER;
    job->hash_alg = s->hash;
    job->src = data;
    job->dst = const_cast<uint8_t*>(data);
    job->cipher_start_src_offset_in_bytes = 0;
    job->msg_len_to_cipher_in_bytes = 0;
    job->hash_start_src_offset_in_bytes = 0;
    job->msg_len_to_hash_in_bytes = n;
    job->u.HMAC._hashed_auth_key_xor_ipad = s->ipad;
    job->u.HMAC._hashed_auth_key_xor_opad = s->opad;
    job->auth_tag_output = md;
    job->auth_tag_output_len_in_bytes = s->full;
    int e = run_job(ms->mgr, job);
    put_mgr(ms);
    if (e != 0) return e;
    return crypto_finish_tag(crp, md, s->mlen);
  }

  IMB_MGR* direct_ = nullptr;
  IMB_ARCH arch_ = IMB_ARCH_NONE;
  bool sha_ni_ = false;  // the CPU has the SHA extensions
  Mutex mu_;
  std::vector<MgrSlot*> free_ ABSL_GUARDED_BY(mu_);
  std::vector<MgrSlot*> free_sha_ni_ ABSL_GUARDED_BY(mu_);
};

std::unique_ptr<crypto_driver> ipsecmb_make() { return ipsecmb_driver_create(); }

}  // namespace

std::unique_ptr<crypto_engine> ipsecmb_driver_create() {
  return std::make_unique<ipsecmb_driver>();
}

int ipsecmb_modevent(kernel& k, int what, void*) {
  return crypto_driver_modevent(
      k, what, "ipsecmb", ipsecmb_make,
      CRYPTOCAP_F_SOFTWARE | CRYPTOCAP_F_ACCEL_SOFTWARE | CRYPTOCAP_F_SYNC);
}

// Loaded at boot with the default module set; kldload("ipsecmb") later.
static const moduledata ipsecmb_mod = {"ipsecmb", ipsecmb_modevent, nullptr,
                                      /*default_load=*/true, nullptr};
DECLARE_MODULE(ipsecmb, ipsecmb_mod);

}  // namespace uk
