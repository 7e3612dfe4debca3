// OCF over the kernel's real mbufs: M_EXTPG records built from the page pool
// as KTLS frames them (13-byte header, pages at odd offsets, tag in the
// trailer), chains from m_uiotombuf() trimmed with m_adj(), and cluster
// chains split at odd offsets; in place and into separate pages. Every
// driver's output is checked against OpenSSL EVP, reading the mbufs back
// with m_copydata().
#include <openssl/evp.h>

#include <cerrno>
#include <random>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "sys/kern/vm_page.h"
#include "sys/opencrypto/crypto.h"
#include "sys/opencrypto/crypto_drv.h"
#include "sys/sys/mbuf.h"
#include "sys/sys/module.h"
#include "tests/sys/opencrypto/ocf_test_util.h"

namespace uk_test {
namespace {

using uk::mbuf;

Bytes Rand(std::mt19937& rng, size_t n) {
  Bytes b(n);
  for (auto& c : b) c = static_cast<uint8_t>(rng());
  return b;
}

Bytes Flatten(const mbuf* m) {
  Bytes out(uk::m_length(m, nullptr));
  if (!out.empty()) uk::m_copydata(m, 0, static_cast<int>(out.size()), out.data());
  return out;
}

// EVP AES-GCM / ChaCha20-Poly1305: ciphertext ‖ tag.
Bytes Seal(const EVP_CIPHER* c, const Bytes& key, const Bytes& iv, const Bytes& aad,
           const Bytes& pt) {
  EVP_CIPHER_CTX* x = EVP_CIPHER_CTX_new();
  EVP_EncryptInit_ex(x, c, nullptr, key.data(), iv.data());
  int l;
  EVP_EncryptUpdate(x, nullptr, &l, aad.data(), static_cast<int>(aad.size()));
  Bytes out(pt.size() + 16);
  if (!pt.empty())
    EVP_EncryptUpdate(x, out.data(), &l, pt.data(), static_cast<int>(pt.size()));
  EVP_EncryptFinal_ex(x, out.data() + pt.size(), &l);
  EVP_CIPHER_CTX_ctrl(x, EVP_CTRL_AEAD_GET_TAG, 16, out.data() + pt.size());
  EVP_CIPHER_CTX_free(x);
  return out;
}

class CryptoMbufTest : public ::testing::Test {
 protected:
  void SetUp() override {
    k_ = Boot();
    ASSERT_NE(k_, nullptr);
    ASSERT_EQ(uk::ccr_sim_modevent(*k_, uk::MOD_LOAD, nullptr), 0);
  }
  void TearDown() override {
    EXPECT_EQ(k_->mb->mbufs_in_use.load(), 0);
    EXPECT_EQ(k_->vm->pages_in_use(), 0u);
    k_.reset();
  }

  // One record as ktls_frame leaves it: header ‖ payload pages starting at
  // |first_off| ‖ trailer space for the tag.
  mbuf* Record(const Bytes& hdr, const Bytes& payload, int first_off) {
    mbuf* m = uk::mb_alloc_ext_pgs(*k_, uk::M_WAITOK, true);
    EXPECT_NE(m, nullptr);
    memcpy(m->m_epg_hdr, hdr.data(), hdr.size());
    m->m_epg_hdrlen = static_cast<uint8_t>(hdr.size());
    size_t pos = 0;
    int i = 0;
    while (pos < payload.size()) {
      uk::vm_page* pg = k_->vm->alloc();
      size_t o = i == 0 ? first_off : 0;
      size_t l = std::min(uk::PAGE_SIZE - o, payload.size() - pos);
      memcpy(uk::PHYS_TO_DMAP(pg) + o, payload.data() + pos, l);
      m->m_epg_pa[i++] = pg;
      m->m_epg_last_len = static_cast<uint16_t>(l);
      pos += l;
    }
    m->m_epg_npgs = static_cast<uint8_t>(i);
    m->m_epg_1st_off = static_cast<uint16_t>(first_off);
    m->m_epg_trllen = 16;
    m->m_len = static_cast<int>(hdr.size() + payload.size() + 16);
    return m;
  }

  uk::crypto_session_t Session(const char* drv, int alg, const Bytes& key) {
    uk::crypto_session_params csp;
    csp.csp_mode = uk::CSP_MODE_AEAD;
    csp.csp_flags = uk::CSP_F_SEPARATE_OUTPUT | uk::CSP_F_SEPARATE_AAD;
    csp.csp_cipher_alg = alg;
    csp.csp_cipher_key = key.data();
    csp.csp_cipher_klen = static_cast<int>(key.size());
    csp.csp_ivlen = 12;
    uk::crypto_session_t ses = nullptr;
    EXPECT_EQ(uk::crypto_newsession(*k_, &ses, csp, uk::crypto_find_driver(*k_, drv)), 0);
    return ses;
  }

  std::unique_ptr<uk::kernel> k_;
};

struct AeadCase {
  int alg;
  int klen;
  const EVP_CIPHER* (*evp)();
};
const AeadCase kCases[] = {{CRYPTO_AES_NIST_GCM_16, 16, EVP_aes_128_gcm},
                           {CRYPTO_AES_NIST_GCM_16, 32, EVP_aes_256_gcm},
                           {CRYPTO_CHACHA20_POLY1305, 32, EVP_chacha20_poly1305}};

// TLS 1.2 AEAD records encrypted in place in their M_EXTPG mbuf, and
// decrypted back with the tag verified; a flipped ciphertext bit fails.
TEST_F(CryptoMbufTest, ExtpgRecordsInPlaceMatchEvpOnEveryDriver) {
  std::mt19937 rng(11);
  for (const AeadCase& c : kCases) {
    for (const char* drv : {"ipsecmb", "ossl", "ccr_sim"}) {
      Bytes key = Rand(rng, c.klen);
      uk::crypto_session_t ses = Session(drv, c.alg, key);
      ASSERT_NE(ses, nullptr);
      for (int len : {1, 100, 4096, 16384}) {
        for (int first_off : {0, 1, 4095, 2049}) {
          SCOPED_TRACE(std::string(drv) + " len " + std::to_string(len) + " off " +
                       std::to_string(first_off));
          Bytes hdr = Rand(rng, 13), payload = Rand(rng, len), iv = Rand(rng, 12);
          Bytes aad = Rand(rng, 13);
          mbuf* m = Record(hdr, payload, first_off);
          uk::cryptop crp;
          uk::crypto_initreq(&crp, ses);
          crp.crp_op = uk::CRYPTO_OP_ENCRYPT | uk::CRYPTO_OP_COMPUTE_DIGEST;
          crp.crp_flags = uk::CRYPTO_F_IV_SEPARATE;
          memcpy(crp.crp_iv, iv.data(), 12);
          uk::crypto_use_mbuf(&crp, m);
          crp.crp_aad = aad.data();
          crp.crp_aad_length = 13;
          crp.crp_payload_start = 13;
          crp.crp_payload_length = len;
          crp.crp_digest_start = 13 + len;
          ASSERT_EQ(RunReq(&crp), 0);
          Bytes got = Flatten(m);
          EXPECT_EQ(Hex(got), Hex(Cat(hdr, Seal(c.evp(), key, iv, aad, payload))));

          for (bool bad : {true, false}) {
            if (bad) uk::PHYS_TO_DMAP(m->m_epg_pa[0])[first_off] ^= 0x10;
            uk::crypto_initreq(&crp, ses);
            crp.crp_op = uk::CRYPTO_OP_DECRYPT | uk::CRYPTO_OP_VERIFY_DIGEST;
            crp.crp_flags = uk::CRYPTO_F_IV_SEPARATE;
            memcpy(crp.crp_iv, iv.data(), 12);
            uk::crypto_use_mbuf(&crp, m);
            crp.crp_aad = aad.data();
            crp.crp_aad_length = 13;
            crp.crp_payload_start = 13;
            crp.crp_payload_length = len;
            crp.crp_digest_start = 13 + len;
            if (bad) {
              EXPECT_EQ(RunReq(&crp), EBADMSG);
              // Restore the ciphertext (the failed pass wrote plaintext).
              uk::m_freem(m);
              m = Record(hdr, Bytes(got.begin() + 13, got.end() - 16), first_off);
              memcpy(m->m_epg_trail, got.data() + got.size() - 16, 16);
            } else {
              ASSERT_EQ(RunReq(&crp), 0);
              Bytes pt = Flatten(m);
              EXPECT_EQ(Hex(Bytes(pt.begin() + 13, pt.begin() + 13 + len)), Hex(payload));
            }
          }
          uk::m_freem(m);
        }
      }
      uk::crypto_freesession(ses);
    }
  }
}

// File-backed records are never written: ciphertext goes to new pages
// (ktls_ocf's separate output), the tag to the output's end.
TEST_F(CryptoMbufTest, ExtpgRecordIntoSeparatePages) {
  std::mt19937 rng(12);
  for (const char* drv : {"ipsecmb", "ossl", "ccr_sim"}) {
    SCOPED_TRACE(drv);
    Bytes key = Rand(rng, 16);
    uk::crypto_session_t ses = Session(drv, CRYPTO_AES_NIST_GCM_16, key);
    Bytes hdr = Rand(rng, 13), payload = Rand(rng, 16384), iv = Rand(rng, 12);
    Bytes aad = Rand(rng, 13);
    mbuf* m = Record(hdr, payload, 777);
    Bytes before = Flatten(m);
    std::vector<uk::vm_page*> out(5);
    for (auto& pg : out) pg = k_->vm->alloc();
    uk::cryptop crp;
    uk::crypto_initreq(&crp, ses);
    crp.crp_op = uk::CRYPTO_OP_ENCRYPT | uk::CRYPTO_OP_COMPUTE_DIGEST;
    crp.crp_flags = uk::CRYPTO_F_IV_SEPARATE;
    memcpy(crp.crp_iv, iv.data(), 12);
    uk::crypto_use_mbuf(&crp, m);
    uk::crypto_use_output_vmpage(&crp, out.data(), 16384 + 16, 0);
    crp.crp_aad = aad.data();
    crp.crp_aad_length = 13;
    crp.crp_payload_start = 13;
    crp.crp_payload_output_start = 0;
    crp.crp_payload_length = 16384;
    crp.crp_digest_start = 16384;
    ASSERT_EQ(RunReq(&crp), 0);
    EXPECT_EQ(Flatten(m), before);
    Bytes got(16384 + 16);
    for (size_t i = 0; i < got.size(); i++)
      got[i] = uk::PHYS_TO_DMAP(out[i / uk::PAGE_SIZE])[i % uk::PAGE_SIZE];
    EXPECT_EQ(Hex(got), Hex(Seal(EVP_aes_128_gcm(), key, iv, aad, payload)));
    for (auto* pg : out) uk::PagePool::release(pg);
    uk::m_freem(m);
    uk::crypto_freesession(ses);
  }
}

// A payload spread over several M_EXTPG mbufs from m_uiotombuf(), the first
// trimmed at the front (m_epg_off), and over a cluster chain split at odd
// offsets: every driver agrees with EVP.
TEST_F(CryptoMbufTest, ChainsFromUiotombufAndSplitClusters) {
  std::mt19937 rng(13);
  for (bool ext : {true, false}) {
    for (const char* drv : {"ipsecmb", "ossl", "ccr_sim"}) {
      SCOPED_TRACE(std::string(drv) + (ext ? " extpg" : " clusters"));
      Bytes key = Rand(rng, 32), iv = Rand(rng, 12), aad = Rand(rng, 13);
      uk::crypto_session_t ses = Session(drv, CRYPTO_AES_NIST_GCM_16, key);
      const int len = 3 * 4096 + 333;
      Bytes data = Rand(rng, 7 + len + 16);
      struct iovec iov = {data.data(), data.size()};
      uk::uio u;
      u.uio_iov = &iov;
      u.uio_iovcnt = 1;
      u.uio_resid = static_cast<ssize_t>(data.size());
      u.uio_rw = uk::UIO_WRITE;
      int error = -1;
      mbuf* m = uk::m_uiotombuf(*k_, &u, uk::M_WAITOK, 0, ext ? 5000 : 0,
                                ext ? uk::M_EXTPG : 0, &error);
      ASSERT_EQ(error, 0);
      ASSERT_NE(m, nullptr);
      if (ext) {
        // 3 bytes trimmed off the front move m_epg_off.
        uk::m_adj(m, 3);
        data.erase(data.begin(), data.begin() + 3);
      } else {
        mbuf* t = uk::m_split(m, 1001, uk::M_WAITOK);
        ASSERT_NE(t, nullptr);
        mbuf* t2 = uk::m_split(t, 2999, uk::M_WAITOK);
        ASSERT_NE(t2, nullptr);
        uk::m_cat(t, t2);
        uk::m_cat(m, t);
      }
      ASSERT_EQ(Flatten(m), data);
      uk::cryptop crp;
      uk::crypto_initreq(&crp, ses);
      crp.crp_op = uk::CRYPTO_OP_ENCRYPT | uk::CRYPTO_OP_COMPUTE_DIGEST;
      crp.crp_flags = uk::CRYPTO_F_IV_SEPARATE;
      memcpy(crp.crp_iv, iv.data(), 12);
      uk::crypto_use_mbuf(&crp, m);
      crp.crp_aad = aad.data();
      crp.crp_aad_length = 13;
      crp.crp_payload_start = 4;
      crp.crp_payload_length = len;
      crp.crp_digest_start = 4 + len;
      ASSERT_EQ(RunReq(&crp), 0);
      Bytes got = Flatten(m);
      Bytes want = Seal(EVP_aes_256_gcm(), key, iv, aad,
                        Bytes(data.begin() + 4, data.begin() + 4 + len));
      EXPECT_EQ(Hex(Bytes(got.begin() + 4, got.begin() + 4 + len + 16)), Hex(want));
      EXPECT_EQ(Hex(Bytes(got.begin(), got.begin() + 4)),
                Hex(Bytes(data.begin(), data.begin() + 4)));
      uk::m_freem(m);
      uk::crypto_freesession(ses);
    }
  }
}

}  // namespace
}  // namespace uk_test
