#include "tests/sys/kern/ktls_test_util.h"

#include <arpa/inet.h>
#include <netinet/tcp.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include <cerrno>
#include <cstring>
#include <random>

#include "gtest/gtest.h"

namespace ktls_test {

namespace {

const EVP_MD* MacMd(int auth) {
  switch (auth) {
    case CRYPTO_SHA1_HMAC:
      return EVP_sha1();
    case CRYPTO_SHA2_256_HMAC:
      return EVP_sha256();
    case CRYPTO_SHA2_384_HMAC:
      return EVP_sha384();
  }
  return nullptr;
}

void Hmac(int auth, const std::vector<uint8_t>& key,
          const std::vector<uint8_t>& data, uint8_t* out) {
  unsigned len = 0;
  HMAC(MacMd(auth), key.data(), static_cast<int>(key.size()), data.data(),
       data.size(), out, &len);
}

void Be64(uint8_t* p, uint64_t v) {
  for (int i = 7; i >= 0; i--) {
    p[i] = static_cast<uint8_t>(v);
    v >>= 8;
  }
}

// seq ‖ type ‖ major ‖ minor ‖ length: TLS 1.0-1.2 AAD and MAC header.
void Aad12(uint8_t* ad, uint64_t seq, uint8_t type, uint8_t minor,
           size_t len) {
  Be64(ad, seq);
  ad[8] = type;
  ad[9] = TLS_MAJOR_VER_ONE;
  ad[10] = minor;
  ad[11] = static_cast<uint8_t>(len >> 8);
  ad[12] = static_cast<uint8_t>(len);
}

// The nonce of TLS 1.3 (and ChaCha20 in TLS 1.2): iv XOR BE64(seq).
void XorNonce(const std::vector<uint8_t>& iv, uint64_t seq, uint8_t* nonce) {
  memcpy(nonce, iv.data(), 12);
  for (int i = 0; i < 8; i++)
    nonce[4 + i] ^= static_cast<uint8_t>(seq >> (56 - 8 * i));
}

const EVP_CIPHER* AeadCipher(const Suite& s, bool* ccm, bool* generic,
                             const EVP_CIPHER** ecb) {
  *ccm = false;
  *generic = false;
  *ecb = nullptr;
  switch (s.cipher) {
    case CRYPTO_AES_NIST_GCM_16:
      return s.keylen == 16 ? EVP_aes_128_gcm() : EVP_aes_256_gcm();
    case CRYPTO_CHACHA20_POLY1305:
      return EVP_chacha20_poly1305();
    case CRYPTO_AES_CCM_16:
      *ccm = true;
      return EVP_aes_128_ccm();
    case CRYPTO_ARIA_GCM_16:
      return s.keylen == 16 ? EVP_aria_128_gcm() : EVP_aria_256_gcm();
    case CRYPTO_SM4_GCM_16:
      *generic = true;
      *ecb = EVP_sm4_ecb();
      return nullptr;
    case CRYPTO_SM4_CCM_16:
      *generic = true;
      *ccm = true;
      *ecb = EVP_sm4_ecb();
      return nullptr;
  }
  return nullptr;
}

bool Aead(const Suite& s, bool enc, const uint8_t* key, const uint8_t* nonce,
          const uint8_t* aad, size_t aadlen, const uint8_t* in, size_t len,
          uint8_t* out, uint8_t* tag) {
  bool ccm, generic;
  const EVP_CIPHER* ecb;
  const EVP_CIPHER* c = AeadCipher(s, &ccm, &generic, &ecb);
  if (generic) {
    return ccm ? GenericCcm(ecb, enc, key, nonce, aad, aadlen, in, len, out, tag)
               : GenericGcm(ecb, enc, key, nonce, aad, aadlen, in, len, out, tag);
  }
  return EvpAead(c, ccm, enc, key, nonce, aad, aadlen, in, len, out, tag);
}

bool EcbBlock(const EVP_CIPHER* ecb, const uint8_t* key, const uint8_t* in,
              uint8_t* out, size_t n) {
  EVP_CIPHER_CTX* ctx = EVP_CIPHER_CTX_new();
  int ol = 0;
  bool ok = EVP_EncryptInit_ex(ctx, ecb, nullptr, key, nullptr) == 1 &&
            EVP_CIPHER_CTX_set_padding(ctx, 0) == 1 &&
            EVP_EncryptUpdate(ctx, out, &ol, in, static_cast<int>(n)) == 1;
  EVP_CIPHER_CTX_free(ctx);
  return ok;
}

// GF(2^128) multiply, GCM bit order (NIST SP 800-38D algorithm 1).
void GfMul(uint8_t* x, const uint8_t* y) {
  uint8_t z[16] = {}, v[16];
  memcpy(v, y, 16);
  for (int i = 0; i < 128; i++) {
    if (x[i / 8] & (0x80 >> (i % 8))) {
      for (int j = 0; j < 16; j++) z[j] ^= v[j];
    }
    bool lsb = v[15] & 1;
    for (int j = 15; j > 0; j--) v[j] = static_cast<uint8_t>((v[j] >> 1) | (v[j - 1] << 7));
    v[0] >>= 1;
    if (lsb) v[0] ^= 0xe1;
  }
  memcpy(x, z, 16);
}

void Ghash(const uint8_t* h, uint8_t* acc, const uint8_t* data, size_t len) {
  for (size_t off = 0; off < len; off += 16) {
    size_t n = std::min<size_t>(16, len - off);
    for (size_t j = 0; j < n; j++) acc[j] ^= data[off + j];
    GfMul(acc, h);
  }
}

void Inc32(uint8_t* ctr) {
  for (int i = 15; i >= 12; i--) {
    if (++ctr[i] != 0) break;
  }
}

}  // namespace

TlsRecv RecvTlsRecord(uk_proc* p, int fd, void* buf, size_t len, int flags) {
  TlsRecv r;
  alignas(cmsghdr) char cbuf[CMSG_SPACE(sizeof(tls_get_record))];
  iovec iov{buf, len};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = cbuf;
  msg.msg_controllen = sizeof cbuf;
  r.n = uk_recvmsg(p, fd, &msg, flags);
  if (r.n < 0) return r;
  r.msg_flags = msg.msg_flags;
  const cmsghdr* cm = CMSG_FIRSTHDR(&msg);
  if (cm != nullptr && cm->cmsg_level == IPPROTO_TCP && cm->cmsg_type == TLS_GET_RECORD) {
    memcpy(&r.tgr, CMSG_DATA(cm), sizeof r.tgr);
    r.has_tgr = true;
  }
  return r;
}

std::vector<uint8_t> RandomBytes(size_t n) {
  std::vector<uint8_t> v(n);
  if (n) RAND_bytes(v.data(), static_cast<int>(n));
  return v;
}

bool EvpAead(const void* evp_cipher, bool ccm, bool enc, const uint8_t* key,
             const uint8_t* nonce, const uint8_t* aad, size_t aadlen,
             const uint8_t* in, size_t len, uint8_t* out, uint8_t* tag) {
  const auto* c = static_cast<const EVP_CIPHER*>(evp_cipher);
  EVP_CIPHER_CTX* ctx = EVP_CIPHER_CTX_new();
  int ol = 0;
  bool ok = EVP_CipherInit_ex(ctx, c, nullptr, nullptr, nullptr, enc) == 1 &&
            EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_SET_IVLEN, 12, nullptr) == 1;
  if (ok && ccm)
    ok = EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_SET_TAG, 16,
                             enc ? nullptr : tag) == 1;
  ok = ok && EVP_CipherInit_ex(ctx, nullptr, nullptr, key, nonce, enc) == 1;
  if (ok && !enc && !ccm)
    ok = EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_SET_TAG, 16, tag) == 1;
  if (ok && ccm)
    ok = EVP_CipherUpdate(ctx, nullptr, &ol, nullptr, static_cast<int>(len)) == 1;
  if (ok && aadlen)
    ok = EVP_CipherUpdate(ctx, nullptr, &ol, aad, static_cast<int>(aadlen)) == 1;
  uint8_t dummy;
  if (ok)
    ok = EVP_CipherUpdate(ctx, len ? out : &dummy, &ol, in ? in : &dummy,
                          static_cast<int>(len)) == 1;
  if (ok && !ccm) ok = EVP_CipherFinal_ex(ctx, out + ol, &ol) == 1;
  if (ok && enc)
    ok = EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_GET_TAG, 16, tag) == 1;
  EVP_CIPHER_CTX_free(ctx);
  return ok;
}

bool GenericGcm(const void* ecb_cipher, bool enc, const uint8_t* key,
                const uint8_t* nonce, const uint8_t* aad, size_t aadlen,
                const uint8_t* in, size_t len, uint8_t* out, uint8_t* tag) {
  const auto* ecb = static_cast<const EVP_CIPHER*>(ecb_cipher);
  uint8_t zero[16] = {}, h[16], j0[16], ctr[16], ks[16], s[16] = {};
  if (!EcbBlock(ecb, key, zero, h, 16)) return false;
  memcpy(j0, nonce, 12);
  j0[12] = j0[13] = j0[14] = 0;
  j0[15] = 1;
  const uint8_t* ct = enc ? out : in;
  std::vector<uint8_t> tmp;
  if (!enc) {
    // Authenticate the ciphertext first.
    tmp.assign(in, in + len);
    ct = tmp.data();
  }
  memcpy(ctr, j0, 16);
  for (size_t off = 0; off < len; off += 16) {
    Inc32(ctr);
    if (!EcbBlock(ecb, key, ctr, ks, 16)) return false;
    size_t n = std::min<size_t>(16, len - off);
    for (size_t j = 0; j < n; j++) out[off + j] = in[off + j] ^ ks[j];
  }
  Ghash(h, s, aad, aadlen);
  Ghash(h, s, ct, len);
  uint8_t lens[16];
  Be64(lens, static_cast<uint64_t>(aadlen) * 8);
  Be64(lens + 8, static_cast<uint64_t>(len) * 8);
  Ghash(h, s, lens, 16);
  uint8_t ej0[16];
  if (!EcbBlock(ecb, key, j0, ej0, 16)) return false;
  for (int j = 0; j < 16; j++) s[j] ^= ej0[j];
  if (enc) {
    memcpy(tag, s, 16);
    return true;
  }
  return CRYPTO_memcmp(s, tag, 16) == 0;
}

bool GenericCcm(const void* ecb_cipher, bool enc, const uint8_t* key,
                const uint8_t* nonce, const uint8_t* aad, size_t aadlen,
                const uint8_t* in, size_t len, uint8_t* out, uint8_t* tag) {
  // SP 800-38C / RFC 3610 with a 12-byte nonce (q = 3) and a 16-byte tag.
  const auto* ecb = static_cast<const EVP_CIPHER*>(ecb_cipher);
  const int q = 3;
  uint8_t a[16], ks[16];
  auto ctr_block = [&](uint32_t i) {
    a[0] = q - 1;
    memcpy(a + 1, nonce, 12);
    a[13] = static_cast<uint8_t>(i >> 16);
    a[14] = static_cast<uint8_t>(i >> 8);
    a[15] = static_cast<uint8_t>(i);
  };
  // CTR over the payload (counters 1, 2, ...).
  for (size_t off = 0; off < len; off += 16) {
    ctr_block(static_cast<uint32_t>(off / 16 + 1));
    if (!EcbBlock(ecb, key, a, ks, 16)) return false;
    size_t n = std::min<size_t>(16, len - off);
    for (size_t j = 0; j < n; j++) out[off + j] = in[off + j] ^ ks[j];
  }
  const uint8_t* pt = enc ? in : out;
  // CBC-MAC over B0 ‖ encoded AAD ‖ payload, each zero padded.
  std::vector<uint8_t> b(16, 0);
  b[0] = static_cast<uint8_t>((aadlen ? 0x40 : 0) | (((16 - 2) / 2) << 3) |
                              (q - 1));
  memcpy(&b[1], nonce, 12);
  b[13] = static_cast<uint8_t>(len >> 16);
  b[14] = static_cast<uint8_t>(len >> 8);
  b[15] = static_cast<uint8_t>(len);
  if (aadlen) {
    b.push_back(static_cast<uint8_t>(aadlen >> 8));
    b.push_back(static_cast<uint8_t>(aadlen));
    b.insert(b.end(), aad, aad + aadlen);
    b.resize((b.size() + 15) & ~size_t{15}, 0);
  }
  b.insert(b.end(), pt, pt + len);
  b.resize((b.size() + 15) & ~size_t{15}, 0);
  uint8_t x[16] = {};
  for (size_t off = 0; off < b.size(); off += 16) {
    for (int j = 0; j < 16; j++) x[j] ^= b[off + j];
    if (!EcbBlock(ecb, key, x, x, 16)) return false;
  }
  ctr_block(0);
  if (!EcbBlock(ecb, key, a, ks, 16)) return false;
  for (int j = 0; j < 16; j++) x[j] ^= ks[j];
  if (enc) {
    memcpy(tag, x, 16);
    return true;
  }
  return CRYPTO_memcmp(x, tag, 16) == 0;
}

std::vector<Suite> CbcSuites() {
  return {
      {"aes128_cbc_1_0_sha1", CRYPTO_AES_CBC, 16, CRYPTO_SHA1_HMAC, TLS_MINOR_VER_ZERO},
      {"aes256_cbc_1_0_sha1", CRYPTO_AES_CBC, 32, CRYPTO_SHA1_HMAC, TLS_MINOR_VER_ZERO},
      {"aes128_cbc_1_1_sha1", CRYPTO_AES_CBC, 16, CRYPTO_SHA1_HMAC, TLS_MINOR_VER_ONE},
      {"aes256_cbc_1_1_sha1", CRYPTO_AES_CBC, 32, CRYPTO_SHA1_HMAC, TLS_MINOR_VER_ONE},
      {"aes128_cbc_1_2_sha1", CRYPTO_AES_CBC, 16, CRYPTO_SHA1_HMAC, TLS_MINOR_VER_TWO},
      {"aes256_cbc_1_2_sha1", CRYPTO_AES_CBC, 32, CRYPTO_SHA1_HMAC, TLS_MINOR_VER_TWO},
      {"aes128_cbc_1_2_sha256", CRYPTO_AES_CBC, 16, CRYPTO_SHA2_256_HMAC, TLS_MINOR_VER_TWO},
      {"aes256_cbc_1_2_sha256", CRYPTO_AES_CBC, 32, CRYPTO_SHA2_256_HMAC, TLS_MINOR_VER_TWO},
      {"aes128_cbc_1_2_sha384", CRYPTO_AES_CBC, 16, CRYPTO_SHA2_384_HMAC, TLS_MINOR_VER_TWO},
      {"aes256_cbc_1_2_sha384", CRYPTO_AES_CBC, 32, CRYPTO_SHA2_384_HMAC, TLS_MINOR_VER_TWO},
  };
}

std::vector<Suite> GcmSuites() {
  return {
      {"aes128_gcm_1_2", CRYPTO_AES_NIST_GCM_16, 16, 0, TLS_MINOR_VER_TWO},
      {"aes256_gcm_1_2", CRYPTO_AES_NIST_GCM_16, 32, 0, TLS_MINOR_VER_TWO},
      {"aes128_gcm_1_3", CRYPTO_AES_NIST_GCM_16, 16, 0, TLS_MINOR_VER_THREE},
      {"aes256_gcm_1_3", CRYPTO_AES_NIST_GCM_16, 32, 0, TLS_MINOR_VER_THREE},
  };
}

std::vector<Suite> ChachaSuites() {
  return {
      {"chacha20_poly1305_1_2", CRYPTO_CHACHA20_POLY1305, 32, 0, TLS_MINOR_VER_TWO},
      {"chacha20_poly1305_1_3", CRYPTO_CHACHA20_POLY1305, 32, 0, TLS_MINOR_VER_THREE},
  };
}

std::vector<Suite> Sm4Suites() {
  return {
      {"sm4_gcm_1_3", CRYPTO_SM4_GCM_16, 16, 0, TLS_MINOR_VER_THREE},
      {"sm4_ccm_1_3", CRYPTO_SM4_CCM_16, 16, 0, TLS_MINOR_VER_THREE},
  };
}

std::vector<Suite> AllSuites() {
  std::vector<Suite> v = CbcSuites();
  for (auto f : {GcmSuites, ChachaSuites, Sm4Suites}) {
    auto w = f();
    v.insert(v.end(), w.begin(), w.end());
  }
  return v;
}

std::vector<Suite> InvalidSuites() {
  return {
      {"aes128_cbc_1_0_sha256", CRYPTO_AES_CBC, 16, CRYPTO_SHA2_256_HMAC, TLS_MINOR_VER_ZERO},
      {"aes128_cbc_1_0_sha384", CRYPTO_AES_CBC, 16, CRYPTO_SHA2_384_HMAC, TLS_MINOR_VER_ZERO},
      {"aes128_gcm_1_0", CRYPTO_AES_NIST_GCM_16, 16, 0, TLS_MINOR_VER_ZERO},
      {"chacha20_poly1305_1_0", CRYPTO_CHACHA20_POLY1305, 32, 0, TLS_MINOR_VER_ZERO},
      {"aes128_cbc_1_1_sha256", CRYPTO_AES_CBC, 16, CRYPTO_SHA2_256_HMAC, TLS_MINOR_VER_ONE},
      {"aes128_cbc_1_1_sha384", CRYPTO_AES_CBC, 16, CRYPTO_SHA2_384_HMAC, TLS_MINOR_VER_ONE},
      {"aes128_gcm_1_1", CRYPTO_AES_NIST_GCM_16, 16, 0, TLS_MINOR_VER_ONE},
      {"chacha20_poly1305_1_1", CRYPTO_CHACHA20_POLY1305, 32, 0, TLS_MINOR_VER_ONE},
      {"aes128_cbc_1_3_sha1", CRYPTO_AES_CBC, 16, CRYPTO_SHA1_HMAC, TLS_MINOR_VER_THREE},
      {"aes128_cbc_1_3_sha256", CRYPTO_AES_CBC, 16, CRYPTO_SHA2_256_HMAC, TLS_MINOR_VER_THREE},
      {"aes128_cbc_1_3_sha384", CRYPTO_AES_CBC, 16, CRYPTO_SHA2_384_HMAC, TLS_MINOR_VER_THREE},
  };
}

std::vector<Suite> RxSuites() {
  std::vector<Suite> v;
  for (const Suite& s : AllSuites())
    if (!(s.cipher == CRYPTO_AES_CBC && s.minor == TLS_MINOR_VER_ZERO))
      v.push_back(s);
  return v;
}

int MacLen(int auth) {
  switch (auth) {
    case CRYPTO_SHA1_HMAC:
      return 20;
    case CRYPTO_SHA2_256_HMAC:
      return 32;
    case CRYPTO_SHA2_384_HMAC:
      return 48;
  }
  return 0;
}

void BuildTlsEnable(const Suite& s, uint64_t seqno, TlsKeys* k) {
  BuildTlsEnableSeeded(s, seqno, std::random_device{}(), k);
}

void BuildTlsEnableSeeded(const Suite& s, uint64_t seqno, uint32_t seed,
                          TlsKeys* k) {
  // Random printable bytes, as FreeBSD's test does.
  std::mt19937 rng(seed);
  auto printable = [&](size_t n) {
    std::vector<uint8_t> v(n);
    for (auto& b : v) b = static_cast<uint8_t>(0x20 + rng() % 0x5f);
    return v;
  };
  int ivlen;
  switch (s.cipher) {
    case CRYPTO_AES_CBC:
      ivlen = s.minor == TLS_MINOR_VER_ZERO ? 16 : 0;
      break;
    case CRYPTO_AES_NIST_GCM_16:
    case CRYPTO_AES_CCM_16:
    case CRYPTO_ARIA_GCM_16:
    case CRYPTO_SM4_GCM_16:
    case CRYPTO_SM4_CCM_16:
      ivlen = s.minor == TLS_MINOR_VER_TWO ? 4 : 12;
      break;
    default:
      ivlen = 12;
      break;
  }
  k->cipher_key = printable(s.keylen);
  k->iv = printable(ivlen);
  k->auth_key = printable(MacLen(s.auth));
  k->en = tls_enable{};
  k->en.cipher_key = k->cipher_key.data();
  k->en.iv = ivlen ? k->iv.data() : nullptr;
  k->en.auth_key = k->auth_key.empty() ? nullptr : k->auth_key.data();
  k->en.cipher_algorithm = s.cipher;
  k->en.cipher_key_len = s.keylen;
  k->en.iv_len = ivlen;
  k->en.auth_algorithm = s.auth;
  k->en.auth_key_len = MacLen(s.auth);
  k->en.flags = 0;
  k->en.tls_vmajor = TLS_MAJOR_VER_ONE;
  k->en.tls_vminor = static_cast<uint8_t>(s.minor);
  Be64(k->en.rec_seq, seqno);
}

bool ExplicitNonce(const Suite& s) {
  if (s.minor != TLS_MINOR_VER_TWO) return false;
  switch (s.cipher) {
    case CRYPTO_AES_NIST_GCM_16:
    case CRYPTO_AES_CCM_16:
    case CRYPTO_ARIA_GCM_16:
    case CRYPTO_SM4_GCM_16:
    case CRYPTO_SM4_CCM_16:
      return true;
  }
  return false;
}

int HeaderLen(const Suite& s) {
  if (s.cipher == CRYPTO_AES_CBC) return s.minor == TLS_MINOR_VER_ZERO ? 5 : 21;
  if (ExplicitNonce(s)) return 13;
  return 5;
}

int TrailerLen(const Suite& s, size_t len) {
  if (s.cipher == CRYPTO_AES_CBC) {
    int mac = MacLen(s.auth);
    return mac + 16 - static_cast<int>((len + mac) % 16);
  }
  return s.minor == TLS_MINOR_VER_THREE ? 17 : 16;
}

int MaxTrailerLen(const Suite& s) {
  if (s.cipher == CRYPTO_AES_CBC) return MacLen(s.auth) + 16;
  return s.minor == TLS_MINOR_VER_THREE ? 17 : 16;
}

uint8_t WireMinor(const Suite& s) {
  return s.minor == TLS_MINOR_VER_THREE ? TLS_MINOR_VER_TWO
                                        : static_cast<uint8_t>(s.minor);
}

int MinRecordPayload(const Suite& s) {
  if (s.cipher == CRYPTO_AES_CBC)
    return 16 + ((MacLen(s.auth) + 1 + 15) & ~15);  // explicit IV + MAC + pad
  if (s.minor == TLS_MINOR_VER_THREE) return 17;     // type byte + tag
  return HeaderLen(s) - 5 + 16;                      // explicit nonce + tag
}

bool RecordLengthFitsCipher(const Suite& s, size_t payload_len) {
  if (payload_len < static_cast<size_t>(MinRecordPayload(s))) return false;
  return s.cipher != CRYPTO_AES_CBC || payload_len % 16 == 0;
}

bool DecryptRecord(const Suite& s, const TlsKeys& k, uint64_t seqno,
                   const uint8_t* rec, size_t len, std::vector<uint8_t>* pt,
                   uint8_t* type, std::string* why,
                   std::vector<uint8_t>* chain_iv, bool require_minimal) {
  pt->clear();
  if (len < 5) {
    *why = "short record";
    return false;
  }
  size_t rlen = (static_cast<size_t>(rec[3]) << 8) | rec[4];
  if (rlen + 5 != len) {
    *why = "header length " + std::to_string(rlen) + " != " + std::to_string(len - 5);
    return false;
  }
  bool tls13 = s.minor == TLS_MINOR_VER_THREE;
  uint8_t want_minor = tls13 ? TLS_MINOR_VER_TWO : static_cast<uint8_t>(s.minor);
  if (rec[1] != TLS_MAJOR_VER_ONE || rec[2] != want_minor) {
    *why = "bad version";
    return false;
  }
  if (tls13 && rec[0] != TLS_RLTYPE_APP) {
    *why = "TLS 1.3 outer type not 23";
    return false;
  }
  const int hlen = HeaderLen(s);

  if (s.cipher == CRYPTO_AES_CBC) {
    const int mac = MacLen(s.auth);
    const uint8_t* iv;
    if (s.minor == TLS_MINOR_VER_ZERO) {
      iv = chain_iv->data();
    } else {
      iv = rec + 5;
    }
    size_t clen = len - hlen;
    if (clen % 16 != 0 || clen < static_cast<size_t>(mac + 1)) {
      *why = "CBC length";
      return false;
    }
    std::vector<uint8_t> buf(clen);
    EVP_CIPHER_CTX* ctx = EVP_CIPHER_CTX_new();
    int ol = 0;
    bool ok = EVP_DecryptInit_ex(ctx, s.keylen == 16 ? EVP_aes_128_cbc() : EVP_aes_256_cbc(),
                                 nullptr, k.cipher_key.data(), iv) == 1 &&
              EVP_CIPHER_CTX_set_padding(ctx, 0) == 1 &&
              EVP_DecryptUpdate(ctx, buf.data(), &ol, rec + hlen,
                                static_cast<int>(clen)) == 1;
    EVP_CIPHER_CTX_free(ctx);
    if (!ok) {
      *why = "EVP CBC failed";
      return false;
    }
    if (s.minor == TLS_MINOR_VER_ZERO)
      chain_iv->assign(rec + len - 16, rec + len);
    int pad = buf[clen - 1];
    if (static_cast<size_t>(pad + 1 + mac) > clen) {
      *why = "padding too long";
      return false;
    }
    for (int i = 0; i <= pad; i++) {
      if (buf[clen - 1 - i] != pad) {
        *why = "bad padding byte";
        return false;
      }
    }
    if (require_minimal && pad + 1 > 16) {
      *why = "padding not minimal";
      return false;
    }
    size_t plen = clen - (pad + 1) - mac;
    uint8_t ad[13];
    Aad12(ad, seqno, rec[0], rec[2], plen);
    uint8_t md[64];
    std::vector<uint8_t> in(ad, ad + 13);
    in.insert(in.end(), buf.begin(), buf.begin() + plen);
    Hmac(s.auth, k.auth_key, in, md);
    if (CRYPTO_memcmp(md, buf.data() + plen, mac) != 0) {
      *why = "MAC mismatch";
      return false;
    }
    pt->assign(buf.begin(), buf.begin() + plen);
    *type = rec[0];
    return true;
  }

  // AEAD.
  if (len < static_cast<size_t>(hlen + 16)) {
    *why = "AEAD record too short";
    return false;
  }
  size_t clen = len - hlen - 16;
  uint8_t nonce[12];
  uint8_t ad[13];
  size_t adlen;
  if (tls13) {
    XorNonce(k.iv, seqno, nonce);
    memcpy(ad, rec, 5);
    adlen = 5;
  } else {
    if (ExplicitNonce(s)) {
      memcpy(nonce, k.iv.data(), 4);
      memcpy(nonce + 4, rec + 5, 8);
    } else {
      XorNonce(k.iv, seqno, nonce);
    }
    Aad12(ad, seqno, rec[0], rec[2], clen);
    adlen = 13;
  }
  std::vector<uint8_t> out(clen);
  std::vector<uint8_t> tag(rec + len - 16, rec + len);
  if (!Aead(s, false, k.cipher_key.data(), nonce, ad, adlen, rec + hlen, clen,
            out.data(), tag.data())) {
    *why = "AEAD tag mismatch";
    return false;
  }
  if (tls13) {
    size_t n = out.size();
    while (n > 0 && out[n - 1] == 0) n--;
    if (n == 0) {
      *why = "TLS 1.3 record without type";
      return false;
    }
    if (require_minimal && n != out.size()) {
      *why = "TLS 1.3 record padded";
      return false;
    }
    *type = out[n - 1];
    out.resize(n - 1);
  } else {
    *type = rec[0];
  }
  *pt = std::move(out);
  return true;
}

std::vector<uint8_t> EncryptRecord(const Suite& s, const TlsKeys& k,
                                   uint64_t seqno, uint8_t type,
                                   const uint8_t* pt, size_t len,
                                   size_t extra_pad, uint64_t nonce64,
                                   std::vector<uint8_t>* chain_iv) {
  const int hlen = HeaderLen(s);
  bool tls13 = s.minor == TLS_MINOR_VER_THREE;
  std::vector<uint8_t> rec(hlen);
  rec[0] = tls13 ? TLS_RLTYPE_APP : type;
  rec[1] = TLS_MAJOR_VER_ONE;
  rec[2] = tls13 ? TLS_MINOR_VER_TWO : static_cast<uint8_t>(s.minor);

  if (s.cipher == CRYPTO_AES_CBC) {
    const int mac = MacLen(s.auth);
    std::vector<uint8_t> buf(pt, pt + len);
    uint8_t ad[13];
    Aad12(ad, seqno, type, static_cast<uint8_t>(s.minor), len);
    buf.resize(len + mac);
    std::vector<uint8_t> in(ad, ad + 13);
    in.insert(in.end(), pt, pt + len);
    Hmac(s.auth, k.auth_key, in, buf.data() + len);
    size_t padn = 16 - (buf.size() % 16) + extra_pad;
    buf.insert(buf.end(), padn, static_cast<uint8_t>(padn - 1));
    std::vector<uint8_t> iv;
    if (s.minor == TLS_MINOR_VER_ZERO) {
      iv = *chain_iv;
    } else {
      iv = RandomBytes(16);
      memcpy(rec.data() + 5, iv.data(), 16);
    }
    std::vector<uint8_t> ct(buf.size());
    EVP_CIPHER_CTX* ctx = EVP_CIPHER_CTX_new();
    int ol = 0;
    EVP_EncryptInit_ex(ctx, s.keylen == 16 ? EVP_aes_128_cbc() : EVP_aes_256_cbc(),
                       nullptr, k.cipher_key.data(), iv.data());
    EVP_CIPHER_CTX_set_padding(ctx, 0);
    EVP_EncryptUpdate(ctx, ct.data(), &ol, buf.data(), static_cast<int>(buf.size()));
    EVP_CIPHER_CTX_free(ctx);
    if (s.minor == TLS_MINOR_VER_ZERO) chain_iv->assign(ct.end() - 16, ct.end());
    rec.insert(rec.end(), ct.begin(), ct.end());
  } else {
    std::vector<uint8_t> in(pt, pt + len);
    if (tls13) {
      in.push_back(type);
      in.insert(in.end(), extra_pad, 0);
    }
    uint8_t nonce[12];
    uint8_t ad[13];
    size_t adlen;
    size_t total = in.size() + 16 + (hlen - 5);
    rec[3] = static_cast<uint8_t>(total >> 8);
    rec[4] = static_cast<uint8_t>(total);
    if (tls13) {
      XorNonce(k.iv, seqno, nonce);
      memcpy(ad, rec.data(), 5);
      adlen = 5;
    } else {
      if (ExplicitNonce(s)) {
        memcpy(nonce, k.iv.data(), 4);
        Be64(nonce + 4, nonce64);
        memcpy(rec.data() + 5, nonce + 4, 8);
      } else {
        XorNonce(k.iv, seqno, nonce);
      }
      Aad12(ad, seqno, type, static_cast<uint8_t>(s.minor), len);
      adlen = 13;
    }
    std::vector<uint8_t> ct(in.size() + 16);
    Aead(s, true, k.cipher_key.data(), nonce, ad, adlen, in.data(), in.size(),
         ct.data(), ct.data() + in.size());
    rec.insert(rec.end(), ct.begin(), ct.end());
  }
  size_t rlen = rec.size() - 5;
  rec[3] = static_cast<uint8_t>(rlen >> 8);
  rec[4] = static_cast<uint8_t>(rlen);
  return rec;
}

void LoopbackPair(uk_proc* p, int sv[2], bool nodelay, int rcvbuf) {
  int l = uk_socket(p, AF_INET, SOCK_STREAM, 0);
  sockaddr_in sin{};
  sin.sin_family = AF_INET;
  sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(uk_bind(p, l, reinterpret_cast<sockaddr*>(&sin), sizeof sin), 0);
  ASSERT_EQ(uk_listen(p, l, 4), 0);
  socklen_t len = sizeof sin;
  ASSERT_EQ(uk_getsockname(p, l, reinterpret_cast<sockaddr*>(&sin), &len), 0);
  sv[0] = uk_socket(p, AF_INET, SOCK_STREAM, 0);
  if (rcvbuf > 0) {
    ASSERT_EQ(uk_setsockopt(p, sv[0], SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf), 0);
  }
  ASSERT_EQ(uk_connect(p, sv[0], reinterpret_cast<sockaddr*>(&sin), sizeof sin), 0);
  sv[1] = uk_accept(p, l, nullptr, nullptr);
  ASSERT_GE(sv[1], 0);
  if (nodelay) {
    int one = 1;
    uk_setsockopt(p, sv[1], IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  }
  uk_close(p, l);
}

sockaddr_in Loopback(uint16_t port) {
  sockaddr_in sin{};
  sin.sin_family = AF_INET;
  sin.sin_port = htons(port);
  sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  return sin;
}

void KernelTest::TearDown() {
  if (k_ != nullptr) {
    EXPECT_EQ(uk_halt(k_), 0);
  }
  k_ = nullptr;
}

void KernelTest::Boot(const char* tunables) {
  if (k_ != nullptr) {
    EXPECT_EQ(uk_halt(k_), 0);
  }
  uk_boot_config cfg{};
  cfg.ncpus = 2;
  cfg.tunables = tunables;
  k_ = uk_boot(&cfg);
  ASSERT_NE(k_, nullptr);
  p_ = uk_proc_create(k_, proc_name_);
}

int KernelTest::Listen(uint16_t* port, int backlog) {
  int s = uk_socket(p_, AF_INET, SOCK_STREAM, 0);
  EXPECT_GE(s, 0);
  sockaddr_in sin = Loopback(0);
  EXPECT_EQ(uk_bind(p_, s, reinterpret_cast<sockaddr*>(&sin), sizeof sin), 0);
  EXPECT_EQ(uk_listen(p_, s, backlog), 0);
  socklen_t len = sizeof sin;
  EXPECT_EQ(uk_getsockname(p_, s, reinterpret_cast<sockaddr*>(&sin), &len), 0);
  *port = ntohs(sin.sin_port);
  return s;
}

uint64_t KernelTest::Stat(const std::string& name) {
  uint64_t v = 0;
  size_t len = sizeof v;
  EXPECT_EQ(uk_sysctlbyname(p_, name.c_str(), &v, &len, nullptr, 0), 0) << name;
  return v;
}

void KernelTest::WriteAll(int fd, const std::vector<uint8_t>& b) {
  size_t off = 0;
  while (off < b.size()) {
    ssize_t w = uk_send(p_, fd, b.data() + off, b.size() - off, 0);
    ASSERT_GT(w, 0) << strerror(errno);
    off += w;
  }
}

bool ReadFull(uk_proc* p, int fd, uint8_t* buf, size_t n) {
  size_t got = 0;
  while (got < n) {
    ssize_t r = uk_recv(p, fd, buf + got, n - got, 0);
    if (r <= 0) return false;
    got += r;
  }
  return true;
}

void KernelTest::EnableBothWays(const int sv[2], const TlsKeys& a2b, const TlsKeys& b2a) {
  for (int i = 0; i < 2; i++) {
    const TlsKeys& tx = i == 0 ? a2b : b2a;
    const TlsKeys& rx = i == 0 ? b2a : a2b;
    ASSERT_EQ(uk_setsockopt(p_, sv[i], IPPROTO_TCP, TCP_TXTLS_ENABLE, &tx.en, sizeof tx.en),
              0);
    ASSERT_EQ(uk_setsockopt(p_, sv[i], IPPROTO_TCP, TCP_RXTLS_ENABLE, &rx.en, sizeof rx.en),
              0);
  }
}

bool KernelTest::ReadFull(int fd, uint8_t* buf, size_t n) {
  return ktls_test::ReadFull(p_, fd, buf, n);
}

bool ReadRecord(uk_proc* p, int fd, std::vector<uint8_t>* rec) {
  rec->assign(5, 0);
  if (!ReadFull(p, fd, rec->data(), 5)) return false;
  size_t len = ((*rec)[3] << 8) | (*rec)[4];
  rec->resize(5 + len);
  return ReadFull(p, fd, rec->data() + 5, len);
}

bool KernelTest::ReadRecord(int fd, std::vector<uint8_t>* rec) {
  return ktls_test::ReadRecord(p_, fd, rec);
}

}  // namespace ktls_test
