// Known-answer tests for every algorithm on every driver that serves it:
// NIST SP 800-38D (AES-GCM), RFC 8439 (ChaCha20-Poly1305), SP 800-38A
// (AES-CBC, AES-CTR), RFC 2202 / RFC 4231 (HMAC), RFC 3610 (AES-CCM),
// GB/T 32907 (SM4 block), RFC 8998 (SM4-GCM, SM4-CCM).
#include <cerrno>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "sys/opencrypto/crypto.h"
#include "sys/opencrypto/crypto_drv.h"
#include "sys/sys/module.h"
#include "tests/sys/opencrypto/ocf_test_util.h"

namespace uk_test {
namespace {

using uk::crypto_session_params;

struct Kat {
  const char* name;
  int mode;
  int alg;  // cipher alg (CIPHER/AEAD) or auth alg (DIGEST)
  Bytes key, iv, aad, pt, ct, tag;
  std::vector<std::string> drivers;  // those that must serve it
  int mlen = 0;
};

const std::vector<std::string> kAll = {"ossl", "ipsecmb", "ccr_sim"};
const std::vector<std::string> kOsslOnly = {"ossl", "ccr_sim"};

std::vector<Kat> Vectors() {
  const Bytes gcm_pt = H(
      "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a72"
      "1c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b39");
  const Bytes gcm_aad = H("feedfacedeadbeeffeedfacedeadbeefabaddad2");
  const Bytes cbc_pt = H(
      "6bc1bee22e409f96e93d7e117393172aae2d8a571e03ac9c9eb76fac45af8e51"
      "30c81c46a35ce411e5fbc1191a0a52eff69f2445df4f9b17ad2b417be66c3710");
  const Bytes sm4_key = H("0123456789abcdeffedcba9876543210");
  const Bytes sm4_iv = H("00001234567800000000abcd");
  const Bytes sm4_aad = H("feedfacedeadbeeffeedfacedeadbeefabaddad2");
  const Bytes sm4_pt = H(
      "aaaaaaaaaaaaaaaabbbbbbbbbbbbbbbbccccccccccccccccdddddddddddddddd"
      "eeeeeeeeeeeeeeeeffffffffffffffffeeeeeeeeeeeeeeeeaaaaaaaaaaaaaaaa");
  const Bytes jefe = S("what do ya want for nothing?");
  const Bytes big = S("Test Using Larger Than Block-Size Key - Hash Key First");
  return {
      {"AES128_GCM_TC4", uk::CSP_MODE_AEAD, CRYPTO_AES_NIST_GCM_16,
       H("feffe9928665731c6d6a8f9467308308"), H("cafebabefacedbaddecaf888"), gcm_aad,
       gcm_pt,
       H("42831ec2217774244b7221b784d0d49ce3aa212f2c02a4e035c17e2329aca12e"
         "21d514b25466931c7d8f6a5aac84aa051ba30b396a0aac973d58e091"),
       H("5bc94fbc3221a5db94fae95ae7121a47"), kAll},
      {"AES256_GCM_TC16", uk::CSP_MODE_AEAD, CRYPTO_AES_NIST_GCM_16,
       H("feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308"),
       H("cafebabefacedbaddecaf888"), gcm_aad, gcm_pt,
       H("522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa"
         "8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662"),
       H("76fc6ece0f4e1768cddf8853bb2d551b"), kAll},
      {"CHACHA20_POLY1305_RFC8439", uk::CSP_MODE_AEAD, CRYPTO_CHACHA20_POLY1305,
       H("808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f"),
       H("070000004041424344454647"), H("50515253c0c1c2c3c4c5c6c7"),
       S("Ladies and Gentlemen of the class of '99: If I could offer you only "
         "one tip for the future, sunscreen would be it."),
       H("d31a8d34648e60db7b86afbc53ef7ec2a4aded51296e08fea9e2b5a736ee62d6"
         "3dbea45e8ca9671282fafb69da92728b1a71de0a9e060b2905d6a5b67ecd3b36"
         "92ddbd7f2d778b8c9803aee328091b58fab324e4fad675945585808b4831d7bc"
         "3ff4def08e4b7a9de576d26586cec64b6116"),
       H("1ae10b594f09e26a7e902ecbd0600691"), kAll},
      {"AES128_CBC_SP800_38A", uk::CSP_MODE_CIPHER, CRYPTO_AES_CBC,
       H("2b7e151628aed2a6abf7158809cf4f3c"), H("000102030405060708090a0b0c0d0e0f"), {},
       cbc_pt,
       H("7649abac8119b246cee98e9b12e9197d5086cb9b507219ee95db113a917678b2"
         "73bed6b8e3c1743b7116e69e222295163ff1caa1681fac09120eca307586e1a7"),
       {}, kAll},
      {"AES256_CBC_SP800_38A", uk::CSP_MODE_CIPHER, CRYPTO_AES_CBC,
       H("603deb1015ca71be2b73aef0857d77811f352c073b6108d72d9810a30914dff4"),
       H("000102030405060708090a0b0c0d0e0f"), {}, cbc_pt,
       H("f58c4c04d6e5f1ba779eabfb5f7bfbd69cfc4e967edb808d679f777bc6702c7d"
         "39f23369a9d9bacfa530e26304231461b2eb05e2c39be9fcda6c19078c6a9d1b"),
       {}, kAll},
      {"AES128_CTR_SP800_38A", uk::CSP_MODE_CIPHER, CRYPTO_AES_ICM,
       H("2b7e151628aed2a6abf7158809cf4f3c"), H("f0f1f2f3f4f5f6f7f8f9fafbfcfdfeff"), {},
       cbc_pt,
       H("874d6191b620e3261bef6864990db6ce9806f66b7970fdff8617187bb9fffdff"
         "5ae4df3edbd5d35e5b4f09020db03eab1e031dda2fbe03d1792170a0f3009cee"),
       {}, kAll},
      {"HMAC_SHA1_RFC2202_2", uk::CSP_MODE_DIGEST, CRYPTO_SHA1_HMAC, S("Jefe"), {}, {},
       jefe, {}, H("effcdf6ae5eb2fa2d27416d5f184df9c259a7c79"), kAll},
      {"HMAC_SHA1_RFC2202_6", uk::CSP_MODE_DIGEST, CRYPTO_SHA1_HMAC, Bytes(80, 0xaa),
       {}, {}, big, {}, H("aa4ae5e15272d00e95705637ce8a3b55ed402112"), kAll},
      {"HMAC_SHA256_RFC4231_2", uk::CSP_MODE_DIGEST, CRYPTO_SHA2_256_HMAC, S("Jefe"),
       {}, {}, jefe, {},
       H("5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"), kAll},
      {"HMAC_SHA256_RFC4231_6", uk::CSP_MODE_DIGEST, CRYPTO_SHA2_256_HMAC,
       Bytes(131, 0xaa), {}, {}, big, {},
       H("60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"), kAll},
      {"HMAC_SHA384_RFC4231_2", uk::CSP_MODE_DIGEST, CRYPTO_SHA2_384_HMAC, S("Jefe"),
       {}, {}, jefe, {},
       H("af45d2e376484031617f78d2b58a6b1b9c7ef464f5a01b47e42ec3736322445e"
         "8e2240ca5e69e2c78b3239ecfab21649"),
       kAll},
      {"HMAC_SHA384_RFC4231_6", uk::CSP_MODE_DIGEST, CRYPTO_SHA2_384_HMAC,
       Bytes(131, 0xaa), {}, {}, big, {},
       H("4ece084485813e9088d2c63a041bc5b44f9ef1012a2b588f3cd11f05033ac4c6"
         "0c2ef6ab4030fe8296248df163f44952"),
       kAll},
      {"HMAC_SHA512_RFC4231_2", uk::CSP_MODE_DIGEST, CRYPTO_SHA2_512_HMAC, S("Jefe"),
       {}, {}, jefe, {},
       H("164b7a7bfcf819e2e395fbe73b56e0a387bd64222e831fd610270cd7ea250554"
         "9758bf75c05a994a6d034f65f8f0e6fdcaeab1a34d4a6b4b636e070a38bce737"),
       kAll},
      {"AES128_CCM_RFC3610_1", uk::CSP_MODE_AEAD, CRYPTO_AES_CCM_16,
       H("c0c1c2c3c4c5c6c7c8c9cacbcccdcecf"), H("00000003020100a0a1a2a3a4a5"),
       H("0001020304050607"), H("08090a0b0c0d0e0f101112131415161718191a1b1c1d1e"),
       H("588c979a61c663d2f066d0c2c0f989806d5f6b61dac384"), H("17e8d12cfdf926e0"),
       kAll, 8},
      // GB/T 32907 example 1 through SM4-CTR: E_K(counter) XOR 0 = E_K(IV).
      {"SM4_BLOCK_GBT32907", uk::CSP_MODE_CIPHER, CRYPTO_SM4_CTR, sm4_key,
       H("0123456789abcdeffedcba9876543210"), {}, Bytes(16, 0),
       H("681edf34d206965e86b3e94f536e4246"), {}, kOsslOnly},
      {"SM4_GCM_RFC8998", uk::CSP_MODE_AEAD, CRYPTO_SM4_GCM_16, sm4_key, sm4_iv, sm4_aad,
       sm4_pt,
       H("17f399f08c67d5ee19d0dc9969c4bb7d5fd46fd3756489069157b282bb200735"
         "d82710ca5c22f0ccfa7cbf93d496ac15a56834cbcf98c397b4024a2691233b8d"),
       H("83de3541e4c2b58177e065a9bf7b62ec"), kOsslOnly},
      {"SM4_GCM_GBT36624_EMPTY", uk::CSP_MODE_AEAD, CRYPTO_SM4_GCM_16, Bytes(16, 0),
       Bytes(12, 0), {}, {}, {}, H("232f0cfe308b49ea6fc88229b5dc858d"), kOsslOnly},
      {"SM4_GCM_GBT36624_ONEBLOCK", uk::CSP_MODE_AEAD, CRYPTO_SM4_GCM_16, Bytes(16, 0),
       Bytes(12, 0), {}, Bytes(16, 0), H("7de2aa7f1110188218063be1bfeb6d89"),
       H("b851b5f39493752be508f1bb4482c557"), kOsslOnly},
      {"SM4_CCM_RFC8998", uk::CSP_MODE_AEAD, CRYPTO_SM4_CCM_16, sm4_key, sm4_iv, sm4_aad,
       sm4_pt,
       H("48af93501fa62adbcd414cce6034d895dda1bf8f132f042098661572e7483094"
         "fd12e518ce062c98acee28d95df4416bed31a2f04476c18bb40c84a74b97dc5b"),
       H("16842d4fa186f56ab33256971fa110f4"), kOsslOnly},
  };
}

crypto_session_params Params(const Kat& v, bool separate_aad) {
  crypto_session_params csp;
  csp.csp_mode = v.mode;
  if (v.mode == uk::CSP_MODE_DIGEST) {
    csp.csp_auth_alg = v.alg;
    csp.csp_auth_key = v.key.data();
    csp.csp_auth_klen = static_cast<int>(v.key.size());
  } else {
    csp.csp_cipher_alg = v.alg;
    csp.csp_cipher_key = v.key.data();
    csp.csp_cipher_klen = static_cast<int>(v.key.size());
    csp.csp_ivlen = static_cast<int>(v.iv.size());
  }
  csp.csp_auth_mlen = v.mlen;
  if (separate_aad && v.mode == uk::CSP_MODE_AEAD) csp.csp_flags |= uk::CSP_F_SEPARATE_AAD;
  return csp;
}

class KatTest : public ::testing::TestWithParam<Kat> {
 protected:
  void SetUp() override {
    k_ = Boot();
    ASSERT_NE(k_, nullptr);
    ASSERT_EQ(uk::ccr_sim_modevent(*k_, uk::MOD_LOAD, nullptr), 0);
  }
  void TearDown() override { k_.reset(); }
  std::unique_ptr<uk::kernel> k_;
};

// Encrypts (or digests) the vector with buffer layout aad ‖ payload ‖ tag
// (or separate AAD), checks the answer, then decrypts/verifies it, and
// checks that a flipped tag bit gives EBADMSG.
void CheckOne(uk::crypto_session_t ses, const Kat& v, bool separate_aad) {
  const bool aead = v.mode == uk::CSP_MODE_AEAD;
  const bool digest = v.mode == uk::CSP_MODE_DIGEST;
  const int aadlen = aead ? static_cast<int>(v.aad.size()) : 0;
  const int inbuf_aad = separate_aad ? 0 : aadlen;

  Bytes buf;
  if (!separate_aad) buf = v.aad;
  buf = Cat(buf, v.pt);
  buf.resize(buf.size() + v.tag.size(), 0);
  uk::cryptop crp;
  uk::crypto_initreq(&crp, ses);
  crp.crp_op = digest ? uk::CRYPTO_OP_COMPUTE_DIGEST
                      : (uk::CRYPTO_OP_ENCRYPT | uk::CRYPTO_OP_COMPUTE_DIGEST);
  crp.crp_flags = uk::CRYPTO_F_IV_SEPARATE;
  if (!v.iv.empty()) memcpy(crp.crp_iv, v.iv.data(), v.iv.size());
  uk::crypto_use_buf(&crp, buf.data(), static_cast<int>(buf.size()));
  if (separate_aad) {
    crp.crp_aad = v.aad.data();
  } else {
    crp.crp_aad_start = 0;
  }
  crp.crp_aad_length = aadlen;
  crp.crp_payload_start = inbuf_aad;
  crp.crp_payload_length = static_cast<int>(v.pt.size());
  crp.crp_digest_start = inbuf_aad + static_cast<int>(v.pt.size());
  ASSERT_EQ(RunReq(&crp), 0);
  Bytes out(buf.begin() + inbuf_aad, buf.end());
  Bytes want = Cat(digest ? v.pt : v.ct, v.tag);
  EXPECT_EQ(Hex(out), Hex(want));

  if (v.mode == uk::CSP_MODE_CIPHER) {
    uk::crypto_initreq(&crp, ses);
    crp.crp_op = uk::CRYPTO_OP_DECRYPT;
    crp.crp_flags = uk::CRYPTO_F_IV_SEPARATE;
    if (!v.iv.empty()) memcpy(crp.crp_iv, v.iv.data(), v.iv.size());
    Bytes c = v.ct;
    uk::crypto_use_buf(&crp, c.data(), static_cast<int>(c.size()));
    crp.crp_payload_length = static_cast<int>(c.size());
    ASSERT_EQ(RunReq(&crp), 0);
    EXPECT_EQ(Hex(c), Hex(v.pt));
    return;
  }

  for (bool corrupt : {false, true}) {
    Bytes b2;
    if (!separate_aad) b2 = v.aad;
    b2 = Cat(b2, digest ? v.pt : v.ct);
    b2 = Cat(b2, v.tag);
    if (corrupt) b2.back() ^= 1;
    uk::crypto_initreq(&crp, ses);
    crp.crp_op = digest ? uk::CRYPTO_OP_VERIFY_DIGEST
                        : (uk::CRYPTO_OP_DECRYPT | uk::CRYPTO_OP_VERIFY_DIGEST);
    crp.crp_flags = uk::CRYPTO_F_IV_SEPARATE;
    if (!v.iv.empty()) memcpy(crp.crp_iv, v.iv.data(), v.iv.size());
    uk::crypto_use_buf(&crp, b2.data(), static_cast<int>(b2.size()));
    if (separate_aad) crp.crp_aad = v.aad.data();
    crp.crp_aad_length = aadlen;
    crp.crp_payload_start = inbuf_aad;
    crp.crp_payload_length = static_cast<int>(v.pt.size());
    crp.crp_digest_start = inbuf_aad + static_cast<int>(v.pt.size());
    int e = RunReq(&crp);
    if (corrupt) {
      EXPECT_EQ(e, EBADMSG);
    } else {
      ASSERT_EQ(e, 0);
      if (!digest) {
        EXPECT_EQ(Hex(Bytes(b2.begin() + inbuf_aad, b2.begin() + inbuf_aad + v.pt.size())),
                  Hex(v.pt));
      }
    }
  }
}

TEST_P(KatTest, EveryDriverGivesTheKnownAnswer) {
  const Kat& v = GetParam();
  for (const std::string& drv : kAll) {
    SCOPED_TRACE(drv);
    int hid = uk::crypto_find_driver(*k_, drv.c_str());
    ASSERT_GE(hid, 0);
    bool expected = std::find(v.drivers.begin(), v.drivers.end(), drv) != v.drivers.end();
    for (bool sep : {false, true}) {
      if (sep && v.mode != uk::CSP_MODE_AEAD) continue;
      SCOPED_TRACE(sep ? "separate aad" : "aad in buffer");
      uk::crypto_session_t ses = nullptr;
      int e = uk::crypto_newsession(*k_, &ses, Params(v, sep), hid);
      if (!expected) {
        EXPECT_EQ(e, EOPNOTSUPP);
        continue;
      }
      ASSERT_EQ(e, 0);
      EXPECT_STREQ(uk::crypto_ses2name(ses), drv.c_str());
      CheckOne(ses, v, sep);
      uk::crypto_freesession(ses);
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Vectors, KatTest, ::testing::ValuesIn(Vectors()),
                         [](const ::testing::TestParamInfo<Kat>& i) {
                           return std::string(i.param.name);
                         });

}  // namespace
}  // namespace uk_test
