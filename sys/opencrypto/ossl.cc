// The ossl driver: OCF over OpenSSL libcrypto (EVP), a synchronous software
// driver. Mirrors FreeBSD's sys/crypto/openssl/ossl.c in role; it also
// serves what FreeBSD lacks: SM4-GCM and SM4-CCM (RFC 8998), composed here
// from OpenSSL's SM4 block cipher because OpenSSL 3.0 has neither mode
// (SM4-CTR + GHASH, SM4-CTR + CBC-MAC), and ARIA-GCM through EVP. AES-CCM
// uses the same CCM composition (OpenSSL's CCM needs the whole message in
// one call, which scatter/gather buffers cannot give it).
//
// Per session, EVP contexts keyed once are kept in small pools so a request
// only sets its IV: no key schedule and no allocation per request once the
// pool is warm. The pools make a session usable from several threads.
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/params.h>

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

enum class Kind { kEvpAead, kCbc, kCtr, kHmac, kSm4Gcm, kCcm };

// EVP_CIPHER_CTXs keyed for one direction, reused across requests.
class CtxPool {
 public:
  CtxPool() = default;
  CtxPool(const CtxPool&) = delete;
  CtxPool& operator=(const CtxPool&) = delete;
  ~CtxPool() {
    for (EVP_CIPHER_CTX* c : free_) EVP_CIPHER_CTX_free(c);
    OPENSSL_cleanse(key_, sizeof(key_));
  }
  void setup(const EVP_CIPHER* cipher, const uint8_t* key, int enc) {
    cipher_ = cipher;
    memcpy(key_, key, EVP_CIPHER_get_key_length(cipher));
    enc_ = enc;
  }
  bool valid() const { return cipher_ != nullptr; }
  EVP_CIPHER_CTX* get() {
    {
      MutexLock l(&mu_);
      if (!free_.empty()) {
        EVP_CIPHER_CTX* c = free_.back();
        free_.pop_back();
        return c;
      }
    }
    EVP_CIPHER_CTX* c = EVP_CIPHER_CTX_new();
    if (c == nullptr) return nullptr;
    if (EVP_CipherInit_ex(c, cipher_, nullptr, key_, nullptr, enc_) != 1) {
      EVP_CIPHER_CTX_free(c);
      return nullptr;
    }
    EVP_CIPHER_CTX_set_padding(c, 0);
    return c;
  }
  void put(EVP_CIPHER_CTX* c) {
    MutexLock l(&mu_);
    free_.push_back(c);
  }

 private:
  const EVP_CIPHER* cipher_ = nullptr;
  uint8_t key_[32] = {};
  int enc_ = 1;
  Mutex mu_;
  std::vector<EVP_CIPHER_CTX*> free_ ABSL_GUARDED_BY(mu_);
};

// Borrows a context from a pool for the duration of a request.
class PooledCtx {
 public:
  explicit PooledCtx(CtxPool& p) : p_(p), c_(p.get()) {}
  ~PooledCtx() {
    if (c_ != nullptr) p_.put(c_);
  }
  EVP_CIPHER_CTX* get() const { return c_; }

 private:
  CtxPool& p_;
  EVP_CIPHER_CTX* c_;
};

// HMAC contexts keyed once (EVP_MAC_init with a null key re-initialises
// with the same key).
class MacPool {
 public:
  MacPool() = default;
  MacPool(const MacPool&) = delete;
  MacPool& operator=(const MacPool&) = delete;
  ~MacPool() {
    for (EVP_MAC_CTX* c : free_) EVP_MAC_CTX_free(c);
    if (mac_ != nullptr) EVP_MAC_free(mac_);
    OPENSSL_cleanse(key_.data(), key_.size());
  }
  bool setup(const char* digest, const uint8_t* key, int klen) {
    mac_ = EVP_MAC_fetch(nullptr, "HMAC", nullptr);
    digest_ = digest;
    key_.assign(key, key + klen);
    return mac_ != nullptr;
  }
  EVP_MAC_CTX* get() {
    {
      MutexLock l(&mu_);
      if (!free_.empty()) {
        EVP_MAC_CTX* c = free_.back();
        free_.pop_back();
        return c;
      }
    }
    EVP_MAC_CTX* c = EVP_MAC_CTX_new(mac_);
    if (c == nullptr) return nullptr;
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST,
                                         const_cast<char*>(digest_), 0),
        OSSL_PARAM_construct_end()};
    if (EVP_MAC_init(c, key_.data(), key_.size(), params) != 1) {
      EVP_MAC_CTX_free(c);
      return nullptr;
    }
    return c;
  }
  void put(EVP_MAC_CTX* c) {
    MutexLock l(&mu_);
    free_.push_back(c);
  }

 private:
  EVP_MAC* mac_ = nullptr;
  const char* digest_ = nullptr;
  std::vector<uint8_t> key_;
  Mutex mu_;
  std::vector<EVP_MAC_CTX*> free_ ABSL_GUARDED_BY(mu_);
};

struct ossl_session {
  Kind kind = Kind::kEvpAead;
  int ivlen = 0;
  int mlen = 0;
  CtxPool enc, dec;   // the mode itself (GCM, ChaCha, CBC, CTR)
  CtxPool ecb;        // SM4-GCM: E_K(J0)
  CtxPool cbc;        // CCM: CBC-MAC (CBC encrypt, zero IV)
  CtxPool ctr;        // SM4-GCM / CCM keystream
  MacPool hmac;
  Ghash ghash;        // SM4-GCM: keyed with H, copied per request
};

const EVP_CIPHER* aes_by_klen(int klen, const EVP_CIPHER* c128,
                              const EVP_CIPHER* c192, const EVP_CIPHER* c256) {
  switch (klen) {
    case 16:
      return c128;
    case 24:
      return c192;
    case 32:
      return c256;
  }
  return nullptr;
}

const char* hmac_digest(int alg, int* full) {
  switch (alg) {
    case CRYPTO_SHA1_HMAC:
      *full = SHA1_HASH_LEN;
      return "SHA1";
    case CRYPTO_SHA2_256_HMAC:
      *full = SHA2_256_HASH_LEN;
      return "SHA2-256";
    case CRYPTO_SHA2_384_HMAC:
      *full = SHA2_384_HASH_LEN;
      return "SHA2-384";
    case CRYPTO_SHA2_512_HMAC:
      *full = SHA2_512_HASH_LEN;
      return "SHA2-512";
  }
  return nullptr;
}

// What the session needs: its kind and the EVP ciphers, or false.
struct Plan {
  Kind kind;
  const EVP_CIPHER* main = nullptr;  // enc/dec pools
  const EVP_CIPHER* ecb = nullptr;
  const EVP_CIPHER* cbc = nullptr;
  const EVP_CIPHER* ctr = nullptr;
  const char* digest = nullptr;
  int full = 0;
};

bool plan_for(const crypto_session_params& csp, Plan* p) {
  int klen = csp.csp_cipher_klen;
  switch (csp.csp_mode) {
    case CSP_MODE_CIPHER:
      switch (csp.csp_cipher_alg) {
        case CRYPTO_AES_CBC:
          p->kind = Kind::kCbc;
          p->main = aes_by_klen(klen, EVP_aes_128_cbc(), EVP_aes_192_cbc(),
                                EVP_aes_256_cbc());
          return p->main != nullptr && csp.csp_ivlen == AES_BLOCK_LEN;
        case CRYPTO_AES_ICM:
          p->kind = Kind::kCtr;
          p->main = aes_by_klen(klen, EVP_aes_128_ctr(), EVP_aes_192_ctr(),
                                EVP_aes_256_ctr());
          return p->main != nullptr && csp.csp_ivlen == AES_BLOCK_LEN;
        case CRYPTO_SM4_CTR:
          p->kind = Kind::kCtr;
          p->main = klen == 16 ? EVP_sm4_ctr() : nullptr;
          return p->main != nullptr && csp.csp_ivlen == 16;
      }
      return false;
    case CSP_MODE_DIGEST:
      p->kind = Kind::kHmac;
      p->digest = hmac_digest(csp.csp_auth_alg, &p->full);
      return p->digest != nullptr;
    case CSP_MODE_AEAD:
      switch (csp.csp_cipher_alg) {
        case CRYPTO_AES_NIST_GCM_16:
          p->kind = Kind::kEvpAead;
          p->main = aes_by_klen(klen, EVP_aes_128_gcm(), EVP_aes_192_gcm(),
                                EVP_aes_256_gcm());
          p->full = GMAC_DIGEST_LEN;
          return p->main != nullptr;
        case CRYPTO_ARIA_GCM_16:
          p->kind = Kind::kEvpAead;
          p->main = aes_by_klen(klen, EVP_aria_128_gcm(), EVP_aria_192_gcm(),
                                EVP_aria_256_gcm());
          p->full = GMAC_DIGEST_LEN;
          return p->main != nullptr;
        case CRYPTO_CHACHA20_POLY1305:
          // A 64-bit nonce is the 96-bit one with four zero bytes in front
          // (the counter never reaches the top word for a request).
          p->kind = Kind::kEvpAead;
          p->main = klen == 32 ? EVP_chacha20_poly1305() : nullptr;
          p->full = POLY1305_HASH_LEN;
          return p->main != nullptr && (csp.csp_ivlen == 12 || csp.csp_ivlen == 8);
        case CRYPTO_SM4_GCM_16:
          p->kind = Kind::kSm4Gcm;
          p->ecb = klen == 16 ? EVP_sm4_ecb() : nullptr;
          p->ctr = EVP_sm4_ctr();
          p->full = GMAC_DIGEST_LEN;
          return p->ecb != nullptr;
        case CRYPTO_SM4_CCM_16:
          p->kind = Kind::kCcm;
          p->cbc = klen == 16 ? EVP_sm4_cbc() : nullptr;
          p->ctr = EVP_sm4_ctr();
          p->full = 16;
          return p->cbc != nullptr;
        case CRYPTO_AES_CCM_16:
          p->kind = Kind::kCcm;
          p->cbc = aes_by_klen(klen, EVP_aes_128_cbc(), EVP_aes_192_cbc(),
                               EVP_aes_256_cbc());
          p->ctr = aes_by_klen(klen, EVP_aes_128_ctr(), EVP_aes_192_ctr(),
                               EVP_aes_256_ctr());
          p->full = 16;
          return p->cbc != nullptr;
      }
      return false;
  }
  return false;
}

// CBC-MAC over a stream of bytes through a CBC-encrypt context with a zero
// IV: only the last output block is kept.
class CbcMac {
 public:
  explicit CbcMac(EVP_CIPHER_CTX* c) : c_(c) {}
  bool start() {
    static const uint8_t zero[16] = {};
    return EVP_CipherInit_ex(c_, nullptr, nullptr, nullptr, zero, 1) == 1;
  }
  void update(const uint8_t* p, size_t n) {
    fed_ += n;
    while (n > 0) {
      size_t t = std::min(n, sizeof(scratch_) - 16);
      int outl = 0;
      EVP_EncryptUpdate(c_, scratch_, &outl, p, static_cast<int>(t));
      if (outl >= 16) memcpy(last_, scratch_ + outl - 16, 16);
      p += t;
      n -= t;
    }
  }
  void pad() {
    static const uint8_t zero[16] = {};
    if (fed_ % 16) update(zero, 16 - fed_ % 16);
  }
  const uint8_t* mac() const { return last_; }

 private:
  EVP_CIPHER_CTX* c_;
  uint8_t scratch_[512 + 16];
  uint8_t last_[16] = {};
  size_t fed_ = 0;
};

int ctr_update(EVP_CIPHER_CTX* c, const uint8_t* in, uint8_t* out, size_t n) {
  int outl = 0;
  return EVP_EncryptUpdate(c, out, &outl, in, static_cast<int>(n)) == 1 ? 0 : EIO;
}

class ossl_driver final : public crypto_engine {
 public:
  const char* name() const override { return "ossl"; }

  int probesession(const crypto_session_params& csp) override {
    Plan p;
    if (!plan_for(csp, &p)) return EINVAL;
    return CRYPTODEV_PROBE_SOFTWARE;
  }

  int newsession(cryptoses* ses, const crypto_session_params& csp) override {
    Plan p;
    if (!plan_for(csp, &p)) return EINVAL;
    auto s = std::make_unique<ossl_session>();
    s->kind = p.kind;
    s->ivlen = csp.csp_ivlen;
    s->mlen = crypto_session_mlen(csp, p.full);
    const auto* key = static_cast<const uint8_t*>(csp.csp_cipher_key);
    switch (p.kind) {
      case Kind::kEvpAead:
      case Kind::kCbc:
      case Kind::kCtr:
        s->enc.setup(p.main, key, 1);
        s->dec.setup(p.main, key, 0);
        break;
      case Kind::kHmac:
        if (!s->hmac.setup(p.digest, static_cast<const uint8_t*>(csp.csp_auth_key),
                           csp.csp_auth_klen))
          return ENOMEM;
        break;
      case Kind::kSm4Gcm: {
        s->ecb.setup(p.ecb, key, 1);
        s->ctr.setup(p.ctr, key, 1);
        PooledCtx e(s->ecb);
        if (e.get() == nullptr) return ENOMEM;
        uint8_t h[16] = {};
        int outl;
        EVP_EncryptUpdate(e.get(), h, &outl, h, 16);
        s->ghash.init(h);
        break;
      }
      case Kind::kCcm:
        s->cbc.setup(p.cbc, key, 1);
        s->ctr.setup(p.ctr, key, 1);
        break;
    }
    crypto_set_driver_session(ses, s.release());
    return 0;
  }

  void freesession(cryptoses* ses) override {
    delete static_cast<ossl_session*>(crypto_get_driver_session(ses));
    crypto_set_driver_session(ses, nullptr);
  }

  int compute(cryptop* crp, cryptoses* ses) override {
    auto* s = static_cast<ossl_session*>(crypto_get_driver_session(ses));
    switch (s->kind) {
      case Kind::kEvpAead:
        return evp_aead(crp, s);
      case Kind::kCbc:
        return cbc(crp, s);
      case Kind::kCtr:
        return ctr(crp, s);
      case Kind::kHmac:
        return hmac(crp, s);
      case Kind::kSm4Gcm:
        return sm4_gcm(crp, s);
      case Kind::kCcm:
        return ccm(crp, s);
    }
    return EINVAL;
  }

 private:
  static int evp_aead(cryptop* crp, ossl_session* s) {
    bool enc = crp->crp_op & CRYPTO_OP_ENCRYPT;
    PooledCtx pc(enc ? s->enc : s->dec);
    EVP_CIPHER_CTX* c = pc.get();
    if (c == nullptr) return ENOMEM;
    uint8_t iv[16] = {};
    if (s->ivlen == 8)
      crypto_read_iv(crp, iv + 4, 8);
    else
      crypto_read_iv(crp, iv, s->ivlen);
    if (EVP_CipherInit_ex(c, nullptr, nullptr, nullptr, iv, -1) != 1) return EIO;
    int outl;
    bool ok = true;
    crypto_walk_aad(crp, [&](const uint8_t* p, size_t n) {
      ok &= EVP_CipherUpdate(c, nullptr, &outl, p, static_cast<int>(n)) == 1;
    });
    if (!crypto_walk_payload(crp, [&](const uint8_t* in, uint8_t* out, size_t n) {
          ok &= EVP_CipherUpdate(c, out, &outl, in, static_cast<int>(n)) == 1;
        }))
      return EINVAL;
    if (!ok) return EIO;
    uint8_t tag[16];
    if (enc) {
      if (EVP_CipherFinal_ex(c, tag, &outl) != 1) return EIO;
      if (EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_AEAD_GET_TAG, 16, tag) != 1) return EIO;
      return crypto_finish_tag(crp, tag, s->mlen);
    }
    crypto_copydata(crp->crp_buf, crp->crp_digest_start, s->mlen, tag);
    if (EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_AEAD_SET_TAG, s->mlen, tag) != 1) return EIO;
    return EVP_CipherFinal_ex(c, tag, &outl) == 1 ? 0 : EBADMSG;
  }

  static int cbc(cryptop* crp, ossl_session* s) {
    if (crp->crp_payload_length % AES_BLOCK_LEN != 0) return EINVAL;
    bool enc = crp->crp_op & CRYPTO_OP_ENCRYPT;
    PooledCtx pc(enc ? s->enc : s->dec);
    EVP_CIPHER_CTX* c = pc.get();
    if (c == nullptr) return ENOMEM;
    uint8_t iv[16];
    crypto_read_iv(crp, iv, s->ivlen);
    if (EVP_CipherInit_ex(c, nullptr, nullptr, nullptr, iv, -1) != 1) return EIO;
    bool ok = true;
    if (!crypto_walk_payload_blocks<AES_BLOCK_LEN>(
            crp, [&](const uint8_t* in, uint8_t* out, size_t n) {
              int outl;
              ok &= EVP_CipherUpdate(c, out, &outl, in, static_cast<int>(n)) == 1;
            }))
      return EINVAL;
    return ok ? 0 : EIO;
  }

  static int ctr(cryptop* crp, ossl_session* s) {
    PooledCtx pc(s->enc);
    EVP_CIPHER_CTX* c = pc.get();
    if (c == nullptr) return ENOMEM;
    uint8_t iv[16];
    crypto_read_iv(crp, iv, s->ivlen);
    if (EVP_CipherInit_ex(c, nullptr, nullptr, nullptr, iv, -1) != 1) return EIO;
    int e = 0;
    if (!crypto_walk_payload(crp, [&](const uint8_t* in, uint8_t* out, size_t n) {
          if (e == 0) e = ctr_update(c, in, out, n);
        }))
      return EINVAL;
    return e;
  }

  static int hmac(cryptop* crp, ossl_session* s) {
    EVP_MAC_CTX* c = s->hmac.get();
    if (c == nullptr) return ENOMEM;
    bool ok = EVP_MAC_init(c, nullptr, 0, nullptr) == 1;
    crypto_walk_aad(crp, [&](const uint8_t* p, size_t n) {
      ok &= EVP_MAC_update(c, p, n) == 1;
    });
    crypto_buffer_apply(crp->crp_buf, crp->crp_payload_start,
                        crp->crp_payload_length, [&](uint8_t* p, size_t n) {
                          ok &= EVP_MAC_update(c, p, n) == 1;
                          return 0;
                        });
    uint8_t md[64];
    size_t outl = 0;
    ok &= EVP_MAC_final(c, md, &outl, sizeof(md)) == 1;
    s->hmac.put(c);
    if (!ok) return EIO;
    return crypto_finish_tag(crp, md, s->mlen);
  }

  // SM4-GCM (RFC 8998 / NIST SP 800-38D with SM4 as the block cipher).
  static int sm4_gcm(cryptop* crp, ossl_session* s) {
    bool enc = crp->crp_op & CRYPTO_OP_ENCRYPT;
    PooledCtx pe(s->ecb), pc(s->ctr);
    if (pe.get() == nullptr || pc.get() == nullptr) return ENOMEM;
    uint8_t j0[16];
    crypto_read_iv(crp, j0, 12);
    j0[12] = j0[13] = j0[14] = 0;
    j0[15] = 1;
    uint8_t ekj0[16];
    int outl;
    if (EVP_EncryptUpdate(pe.get(), ekj0, &outl, j0, 16) != 1) return EIO;
    // Data blocks use inc32(J0) onwards; a 12-byte IV leaves 2^32 - 2
    // blocks before the low word wraps, more than any request.
    uint8_t ctr1[16];
    memcpy(ctr1, j0, 16);
    ctr1[15] = 2;
    if (EVP_CipherInit_ex(pc.get(), nullptr, nullptr, nullptr, ctr1, 1) != 1)
      return EIO;
    Ghash g = s->ghash;
    g.reset();
    crypto_walk_aad(crp, [&](const uint8_t* p, size_t n) { g.update(p, n); });
    g.pad();
    int e = 0;
    if (!crypto_walk_payload(crp, [&](const uint8_t* in, uint8_t* out, size_t n) {
          if (!enc) g.update(in, n);
          if (e == 0) e = ctr_update(pc.get(), in, out, n);
          if (enc) g.update(out, n);
        }))
      return EINVAL;
    if (e != 0) return e;
    uint8_t tag[16];
    g.final(crp->crp_aad_length, crp->crp_payload_length, tag);
    for (int i = 0; i < 16; i++) tag[i] ^= ekj0[i];
    return crypto_finish_tag(crp, tag, s->mlen);
  }

  // CCM (NIST SP 800-38C, RFC 3610) over AES or SM4.
  static int ccm(cryptop* crp, ossl_session* s) {
    bool enc = crp->crp_op & CRYPTO_OP_ENCRYPT;
    int n = s->ivlen, q = 15 - n, t = s->mlen;
    uint64_t plen = crp->crp_payload_length, alen = crp->crp_aad_length;
    if (q < 8 && plen >= (uint64_t{1} << (8 * q))) return EINVAL;
    PooledCtx pm(s->cbc), pc(s->ctr);
    if (pm.get() == nullptr || pc.get() == nullptr) return ENOMEM;
    uint8_t nonce[16];
    crypto_read_iv(crp, nonce, n);

    uint8_t b0[16] = {};
    b0[0] = static_cast<uint8_t>((alen > 0 ? 0x40 : 0) | (((t - 2) / 2) << 3) | (q - 1));
    memcpy(b0 + 1, nonce, n);
    for (int i = 0; i < q; i++) b0[15 - i] = static_cast<uint8_t>(plen >> (8 * i));
    CbcMac mac(pm.get());
    if (!mac.start()) return EIO;
    mac.update(b0, 16);
    if (alen > 0) {
      uint8_t hdr[6];
      size_t hl;
      if (alen < 0xff00) {
        hdr[0] = static_cast<uint8_t>(alen >> 8);
        hdr[1] = static_cast<uint8_t>(alen);
        hl = 2;
      } else {
        hdr[0] = 0xff;
        hdr[1] = 0xfe;
        for (int i = 0; i < 4; i++) hdr[2 + i] = static_cast<uint8_t>(alen >> (24 - 8 * i));
        hl = 6;
      }
      mac.update(hdr, hl);
      crypto_walk_aad(crp, [&](const uint8_t* p, size_t l) { mac.update(p, l); });
      mac.pad();
    }
    uint8_t ctr0[16] = {};
    ctr0[0] = static_cast<uint8_t>(q - 1);
    memcpy(ctr0 + 1, nonce, n);
    if (EVP_CipherInit_ex(pc.get(), nullptr, nullptr, nullptr, ctr0, 1) != 1)
      return EIO;
    uint8_t s0[16] = {};
    if (ctr_update(pc.get(), s0, s0, 16) != 0) return EIO;  // S0 = E(Ctr0)
    int e = 0;
    if (!crypto_walk_payload(crp, [&](const uint8_t* in, uint8_t* out, size_t l) {
          if (enc) mac.update(in, l);
          if (e == 0) e = ctr_update(pc.get(), in, out, l);
          if (!enc) mac.update(out, l);
        }))
      return EINVAL;
    if (e != 0) return e;
    mac.pad();
    uint8_t tag[16];
    for (int i = 0; i < t; i++) tag[i] = mac.mac()[i] ^ s0[i];
    return crypto_finish_tag(crp, tag, t);
  }
};

std::unique_ptr<crypto_driver> ossl_make() { return ossl_driver_create(); }

}  // namespace

std::unique_ptr<crypto_engine> ossl_driver_create() {
  return std::make_unique<ossl_driver>();
}

int ossl_modevent(kernel& k, int what, void*) {
  return crypto_driver_modevent(k, what, "ossl", ossl_make,
                                CRYPTOCAP_F_SOFTWARE | CRYPTOCAP_F_SYNC);
}

// The module, ready for the loader: when it lands the UK_SYSINIT below
// becomes DECLARE_MODULE(ossl, ossl_mod).
static const moduledata ossl_mod = {"ossl", ossl_modevent, nullptr,
                                      /*default_load=*/true, nullptr};
[[maybe_unused]] static const moduledata* const ossl_modp = &ossl_mod;

// Loaded at boot with the default module set. Registered as a SYSINIT
// until the module loader lands (then: DECLARE_MODULE, default_load).
static int ossl_sysinit(kernel& k) { return ossl_modevent(k, MOD_LOAD, nullptr); }
static void ossl_sysuninit(kernel& k) { ossl_modevent(k, MOD_SHUTDOWN, nullptr); }
UK_SYSINIT(ossl, SI_SUB_DRIVERS, SI_ORDER_MIDDLE, ossl_sysinit, ossl_sysuninit);

}  // namespace uk
