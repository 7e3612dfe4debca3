// Every driver against OpenSSL EVP as the independent reference, on random
// keys, nonces and payloads, through every buffer kind OCF walks: flat
// buffers, iovec arrays with odd splits (and empty iovecs), page vectors at
// odd offsets, mbuf chains, and chains of M_EXTPG mbufs whose pages start at
// odd offsets. In place and into a separate output buffer, encrypt and
// decrypt, and a corrupted tag gives EBADMSG.
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <cerrno>
#include <random>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "sys/opencrypto/crypto.h"
#include "sys/opencrypto/crypto_drv.h"
#include "sys/sys/module.h"
#include "tests/sys/opencrypto/ocf_test_util.h"

namespace uk_test {
namespace {

struct Alg {
  const char* name;
  int mode;
  int alg;
  int klen;
  int ivlen;
  int mlen;  // tag/digest length produced
  std::vector<std::string> drivers;
  std::vector<int> lengths;
  const EVP_CIPHER* (*cipher)();  // reference, null for SM4 AEADs and HMAC
  const EVP_MD* (*md)();          // HMAC reference
};

const std::vector<std::string> kAll = {"ossl", "ipsecmb", "ccr_sim"};
const std::vector<std::string> kOssl = {"ossl", "ccr_sim"};
const std::vector<int> kStream = {1, 17, 255, 4096, 16384};
const std::vector<int> kBlocks = {16, 48, 4096, 16384};

std::vector<Alg> Algs() {
  return {
      {"AES128_GCM", uk::CSP_MODE_AEAD, CRYPTO_AES_NIST_GCM_16, 16, 12, 16, kAll,
       kStream, EVP_aes_128_gcm, nullptr},
      {"AES256_GCM", uk::CSP_MODE_AEAD, CRYPTO_AES_NIST_GCM_16, 32, 12, 16, kAll,
       kStream, EVP_aes_256_gcm, nullptr},
      {"CHACHA20_POLY1305", uk::CSP_MODE_AEAD, CRYPTO_CHACHA20_POLY1305, 32, 12, 16,
       kAll, kStream, EVP_chacha20_poly1305, nullptr},
      {"AES128_CCM", uk::CSP_MODE_AEAD, CRYPTO_AES_CCM_16, 16, 12, 16, kAll,
       {1, 17, 4100}, EVP_aes_128_ccm, nullptr},
      {"ARIA128_GCM", uk::CSP_MODE_AEAD, CRYPTO_ARIA_GCM_16, 16, 12, 16, kOssl,
       {1, 4096, 16384}, EVP_aria_128_gcm, nullptr},
      {"ARIA256_GCM", uk::CSP_MODE_AEAD, CRYPTO_ARIA_GCM_16, 32, 12, 16, kOssl,
       {17, 16384}, EVP_aria_256_gcm, nullptr},
      {"SM4_GCM", uk::CSP_MODE_AEAD, CRYPTO_SM4_GCM_16, 16, 12, 16, kOssl,
       {1, 17, 16384}, nullptr, nullptr},
      {"SM4_CCM", uk::CSP_MODE_AEAD, CRYPTO_SM4_CCM_16, 16, 12, 16, kOssl,
       {1, 17, 4100}, nullptr, nullptr},
      {"AES128_CBC", uk::CSP_MODE_CIPHER, CRYPTO_AES_CBC, 16, 16, 0, kAll, kBlocks,
       EVP_aes_128_cbc, nullptr},
      {"AES256_CBC", uk::CSP_MODE_CIPHER, CRYPTO_AES_CBC, 32, 16, 0, kAll, kBlocks,
       EVP_aes_256_cbc, nullptr},
      {"AES128_ICM", uk::CSP_MODE_CIPHER, CRYPTO_AES_ICM, 16, 16, 0, kAll, kStream,
       EVP_aes_128_ctr, nullptr},
      {"SM4_CTR", uk::CSP_MODE_CIPHER, CRYPTO_SM4_CTR, 16, 16, 0, kOssl, {17, 4096},
       EVP_sm4_ctr, nullptr},
      {"HMAC_SHA1", uk::CSP_MODE_DIGEST, CRYPTO_SHA1_HMAC, 20, 0, 20, kAll, kStream,
       nullptr, EVP_sha1},
      {"HMAC_SHA256", uk::CSP_MODE_DIGEST, CRYPTO_SHA2_256_HMAC, 32, 0, 32, kAll,
       kStream, nullptr, EVP_sha256},
      {"HMAC_SHA384", uk::CSP_MODE_DIGEST, CRYPTO_SHA2_384_HMAC, 48, 0, 48, kAll,
       kStream, nullptr, EVP_sha384},
  };
}

Bytes Rand(std::mt19937& rng, size_t n) {
  Bytes b(n);
  for (auto& c : b) c = static_cast<uint8_t>(rng());
  return b;
}

// The reference: ciphertext ‖ tag for AEADs, ciphertext for ciphers, the
// digest for HMAC. Empty if EVP has no such mode (SM4-GCM/CCM).
Bytes Reference(const Alg& a, const Bytes& key, const Bytes& iv, const Bytes& aad,
                const Bytes& pt) {
  if (a.mode == uk::CSP_MODE_DIGEST) {
    unsigned int l = 0;
    Bytes md(EVP_MAX_MD_SIZE);
    HMAC(a.md(), key.data(), static_cast<int>(key.size()), pt.data(), pt.size(),
         md.data(), &l);
    md.resize(l);
    return md;
  }
  if (a.cipher == nullptr) return {};
  EVP_CIPHER_CTX* c = EVP_CIPHER_CTX_new();
  const bool ccm = EVP_CIPHER_get_mode(a.cipher()) == EVP_CIPH_CCM_MODE;
  EXPECT_EQ(EVP_EncryptInit_ex(c, a.cipher(), nullptr, nullptr, nullptr), 1);
  EVP_CIPHER_CTX_set_padding(c, 0);
  if (a.mode == uk::CSP_MODE_AEAD) {
    EXPECT_EQ(EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_AEAD_SET_IVLEN, a.ivlen, nullptr), 1);
    if (ccm) {
      EXPECT_EQ(EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_AEAD_SET_TAG, a.mlen, nullptr), 1);
    }
  }
  EXPECT_EQ(EVP_EncryptInit_ex(c, nullptr, nullptr, key.data(), iv.data()), 1);
  int l = 0;
  if (ccm) {
    EXPECT_EQ(EVP_EncryptUpdate(c, nullptr, &l, nullptr, static_cast<int>(pt.size())), 1);
  }
  if (!aad.empty()) {
    EXPECT_EQ(EVP_EncryptUpdate(c, nullptr, &l, aad.data(), static_cast<int>(aad.size())), 1);
  }
  Bytes out(pt.size() + 32);
  int n = 0;
  EXPECT_EQ(EVP_EncryptUpdate(c, out.data(), &l, pt.data(), static_cast<int>(pt.size())), 1);
  n += l;
  EXPECT_EQ(EVP_EncryptFinal_ex(c, out.data() + n, &l), 1);
  n += l;
  out.resize(n);
  if (a.mode == uk::CSP_MODE_AEAD) {
    Bytes tag(a.mlen);
    EXPECT_EQ(EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_AEAD_GET_TAG, a.mlen, tag.data()), 1);
    out = Cat(out, tag);
  }
  EVP_CIPHER_CTX_free(c);
  return out;
}

class CrossTest : public ::testing::TestWithParam<Alg> {
 protected:
  void SetUp() override {
    k_ = Boot();
    ASSERT_NE(k_, nullptr);
    ASSERT_EQ(uk::ccr_sim_modevent(*k_, uk::MOD_LOAD, nullptr), 0);
  }
  std::unique_ptr<uk::kernel> k_;
};

TEST_P(CrossTest, EveryDriverAndBufferKindMatchesEvp) {
  const Alg& a = GetParam();
  std::mt19937 rng(a.alg * 7919 + a.klen);
  const bool aead = a.mode == uk::CSP_MODE_AEAD;
  const bool digest = a.mode == uk::CSP_MODE_DIGEST;
  for (int len : a.lengths) {
    Bytes key = Rand(rng, a.klen), iv = Rand(rng, a.ivlen);
    Bytes aad = aead ? Rand(rng, 13) : Bytes();
    Bytes pt = Rand(rng, len);
    Bytes want = Reference(a, key, iv, aad, pt);
    Bytes first;  // SM4 AEADs: every driver must agree with the first
    for (const std::string& drv : a.drivers) {
      uk::crypto_session_params csp;
      csp.csp_mode = a.mode;
      csp.csp_flags = uk::CSP_F_SEPARATE_OUTPUT | (aead ? uk::CSP_F_SEPARATE_AAD : 0);
      if (digest) {
        csp.csp_auth_alg = a.alg;
        csp.csp_auth_key = key.data();
        csp.csp_auth_klen = a.klen;
      } else {
        csp.csp_cipher_alg = a.alg;
        csp.csp_cipher_key = key.data();
        csp.csp_cipher_klen = a.klen;
        csp.csp_ivlen = a.ivlen;
      }
      uk::crypto_session_t ses;
      ASSERT_EQ(uk::crypto_newsession(*k_, &ses, csp,
                                      uk::crypto_find_driver(*k_, drv.c_str())),
                0)
          << drv;
      for (BufKind kind : kAllBufKinds) {
        SCOPED_TRACE(std::string(a.name) + " " + drv + " " + BufKindName(kind) +
                     " len " + std::to_string(len));
        uint32_t seed = rng();
        const int pre = static_cast<int>(rng() % 40);
        const int tlen = a.mlen;
        Bytes prefix = Rand(rng, pre);

        // Encrypt (or digest) in place: prefix ‖ payload ‖ tag space.
        Bytes data = Cat(Cat(prefix, pt), Bytes(tlen, 0));
        TestBuf in(kind, data, seed);
        uk::cryptop crp;
        uk::crypto_initreq(&crp, ses);
        crp.crp_op = digest ? uk::CRYPTO_OP_COMPUTE_DIGEST
                            : (uk::CRYPTO_OP_ENCRYPT | uk::CRYPTO_OP_COMPUTE_DIGEST);
        crp.crp_flags = uk::CRYPTO_F_IV_SEPARATE;
        if (!iv.empty()) memcpy(crp.crp_iv, iv.data(), iv.size());
        crp.crp_buf = in.cb();
        crp.crp_aad = aad.empty() ? nullptr : aad.data();
        crp.crp_aad_length = static_cast<int>(aad.size());
        crp.crp_payload_start = pre;
        crp.crp_payload_length = len;
        crp.crp_digest_start = pre + len;
        ASSERT_EQ(RunReq(&crp), 0);
        Bytes got = in.Read();
        ASSERT_EQ(got.size(), data.size());
        EXPECT_EQ(Hex(Bytes(got.begin(), got.begin() + pre)), Hex(prefix));
        Bytes result(got.begin() + pre, got.end());
        if (digest) result.erase(result.begin(), result.begin() + len);
        if (!want.empty()) {
          EXPECT_EQ(Hex(result), Hex(want));
        } else {
          if (first.empty()) first = result;
          EXPECT_EQ(Hex(result), Hex(first));
        }
        if (digest) {
          // Verify in place; a flipped bit is EBADMSG.
          for (bool bad : {false, true}) {
            Bytes d2 = Cat(Cat(prefix, pt), result);
            if (bad) d2[pre + len] ^= 0x80;
            TestBuf v(kind, d2, seed + 1);
            uk::crypto_initreq(&crp, ses);
            crp.crp_op = uk::CRYPTO_OP_VERIFY_DIGEST;
            crp.crp_buf = v.cb();
            crp.crp_payload_start = pre;
            crp.crp_payload_length = len;
            crp.crp_digest_start = pre + len;
            EXPECT_EQ(RunReq(&crp), bad ? EBADMSG : 0);
          }
          continue;
        }

        // Encrypt into a separate output buffer of another kind; the input
        // stays as it was.
        BufKind okind = kAllBufKinds[rng() % 5];
        const int opre = static_cast<int>(rng() % 40);
        Bytes odata = Rand(rng, opre + len + tlen);
        TestBuf src(kind, data, seed + 2), dst(okind, odata, seed + 3);
        uk::crypto_initreq(&crp, ses);
        crp.crp_op = uk::CRYPTO_OP_ENCRYPT | uk::CRYPTO_OP_COMPUTE_DIGEST;
        crp.crp_flags = uk::CRYPTO_F_IV_SEPARATE;
        if (!iv.empty()) memcpy(crp.crp_iv, iv.data(), iv.size());
        crp.crp_buf = src.cb();
        crp.crp_obuf = dst.cb();
        crp.crp_aad = aad.empty() ? nullptr : aad.data();
        crp.crp_aad_length = static_cast<int>(aad.size());
        crp.crp_payload_start = pre;
        crp.crp_payload_output_start = opre;
        crp.crp_payload_length = len;
        crp.crp_digest_start = opre + len;
        ASSERT_EQ(RunReq(&crp), 0);
        EXPECT_EQ(Hex(src.Read()), Hex(data));
        Bytes og = dst.Read();
        EXPECT_EQ(Hex(Bytes(og.begin(), og.begin() + opre)),
                  Hex(Bytes(odata.begin(), odata.begin() + opre)));
        EXPECT_EQ(Hex(Bytes(og.begin() + opre, og.end())), Hex(result));

        // Decrypt in place and, for AEADs, verify; then a corrupted tag.
        for (bool bad : {false, true}) {
          if (bad && !aead) break;
          Bytes cd = Cat(prefix, result);
          if (bad) cd[pre + len] ^= 0x01;
          TestBuf c(kind, cd, seed + 4);
          uk::crypto_initreq(&crp, ses);
          crp.crp_op = uk::CRYPTO_OP_DECRYPT | (aead ? uk::CRYPTO_OP_VERIFY_DIGEST : 0);
          crp.crp_flags = uk::CRYPTO_F_IV_SEPARATE;
          if (!iv.empty()) memcpy(crp.crp_iv, iv.data(), iv.size());
          crp.crp_buf = c.cb();
          crp.crp_aad = aad.empty() ? nullptr : aad.data();
          crp.crp_aad_length = static_cast<int>(aad.size());
          crp.crp_payload_start = pre;
          crp.crp_payload_length = len;
          crp.crp_digest_start = pre + len;
          int e = RunReq(&crp);
          if (bad) {
            EXPECT_EQ(e, EBADMSG);
          } else {
            ASSERT_EQ(e, 0);
            Bytes dg = c.Read();
            EXPECT_EQ(Hex(Bytes(dg.begin() + pre, dg.begin() + pre + len)), Hex(pt));
          }
        }
      }
      uk::crypto_freesession(ses);
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Algs, CrossTest, ::testing::ValuesIn(Algs()),
                         [](const ::testing::TestParamInfo<Alg>& i) {
                           return std::string(i.param.name);
                         });

// The buffer walkers read and write exactly the bytes the storage holds, for
// every kind, at every offset.
TEST(CryptoBuffer, CopydataCopybackApplyMatchStorage) {
  std::mt19937 rng(42);
  for (BufKind kind : kAllBufKinds) {
    for (int iter = 0; iter < 8; iter++) {
      SCOPED_TRACE(std::string(BufKindName(kind)) + " " + std::to_string(iter));
      Bytes data = Rand(rng, 1 + rng() % 30000);
      TestBuf b(kind, data, rng());
      ASSERT_EQ(uk::crypto_buffer_len(b.cb()), static_cast<int>(data.size()));
      int off = static_cast<int>(rng() % data.size());
      int len = static_cast<int>(rng() % (data.size() - off + 1));
      Bytes out(len);
      uk::crypto_copydata(b.cb(), off, len, out.data());
      EXPECT_EQ(Hex(out), Hex(Bytes(data.begin() + off, data.begin() + off + len)));
      Bytes applied;
      EXPECT_EQ(uk::crypto_buffer_apply(b.cb(), off, len,
                                        [&](uint8_t* p, size_t n) {
                                          applied.insert(applied.end(), p, p + n);
                                          return 0;
                                        }),
                0);
      EXPECT_EQ(Hex(applied), Hex(out));
      Bytes fresh = Rand(rng, len);
      uk::crypto_copyback(b.cb(), off, len, fresh.data());
      std::copy(fresh.begin(), fresh.end(), data.begin() + off);
      EXPECT_EQ(Hex(b.Read()), Hex(data));
    }
  }
}

}  // namespace
}  // namespace uk_test
