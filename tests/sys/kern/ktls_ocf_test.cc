// KTLS sessions and the ktls_ocf software backend, below the socket layer:
// session validation, framing, record encryption/decryption for every suite
// checked against OpenSSL EVP (tests/sys/kern/ktls_test_util), the worker
// threads, and the backend registry.
#include <arpa/inet.h>
#include <openssl/evp.h>

#include <cerrno>
#include <cstring>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "sys/kern/kernel.h"
#include "sys/kern/uipc_ktls.h"
#include "sys/kern/vm_page.h"
#include "sys/sys/mbuf.h"
#include "sys/sys/module.h"
#include "tests/sys/kern/ktls_test_util.h"

namespace {

using ktls_test::Suite;
using ktls_test::TlsKeys;
using uk::kernel;
using uk::ktls_session;
using uk::mbuf;
using uk::RefPtr;

std::unique_ptr<kernel> Boot(int ncpus = 2, const std::string& tunables = "") {
  uk::boot_params bp;
  bp.ncpus = ncpus;
  bp.tunables = tunables;
  int error = 0;
  std::unique_ptr<kernel> k = kernel::boot(bp, &error);
  EXPECT_EQ(error, 0);
  return k;
}

uint64_t Counter(kernel& k, const char* name) {
  uint64_t v = 0;
  size_t len = sizeof(v);
  EXPECT_EQ(k.sysctl->sysctlbyname(name, &v, &len, nullptr, 0), 0) << name;
  return v;
}

uint64_t RandomSeq() {
  auto b = ktls_test::RandomBytes(8);
  uint64_t v;
  memcpy(&v, b.data(), 8);
  return v >> 1;  // leave room to count up
}

// A session ready for software crypto, or null with *error set.
RefPtr<ktls_session> NewSession(kernel& k, const Suite& s, TlsKeys* keys,
                                uint64_t seqno, int direction, int* error) {
  ktls_test::BuildTlsEnable(s, seqno, keys);
  RefPtr<ktls_session> tls;
  *error = uk::ktls_create_session(k, nullptr, &keys->en, &tls, direction);
  if (*error != 0) return nullptr;
  *error = uk::ktls_try_sw(tls.get(), direction);
  if (*error != 0) return nullptr;
  return tls;
}

// A software session of suite s whose sequence numbers start at a random
// value (RandomSeq); tls is null with error set if it could not be made.
struct RandomSession {
  RandomSession(kernel& k, const Suite& s, int direction) : seq(RandomSeq()) {
    tls = NewSession(k, s, &keys, seq, direction, &error);
  }
  RefPtr<ktls_session> tls;
  TlsKeys keys;
  uint64_t seq;
  int error = 0;
};

// An M_EXTPG record holding payload at first_off in fresh pool pages.
mbuf* MakeRecord(kernel& k, const std::vector<uint8_t>& payload, int first_off,
                 bool anon) {
  mbuf* m = uk::mb_alloc_ext_pgs(k, uk::M_NOWAIT, anon);
  if (m == nullptr) return nullptr;
  int len = static_cast<int>(payload.size());
  int npgs = len == 0 ? 0
                      : static_cast<int>((first_off + len + uk::PAGE_SIZE - 1) /
                                         uk::PAGE_SIZE);
  if (npgs > 0 && !k.vm->alloc_n(npgs, m->m_epg_pa)) {
    uk::m_free(m);
    return nullptr;
  }
  m->m_epg_npgs = static_cast<uint8_t>(npgs);
  m->m_epg_1st_off = static_cast<uint16_t>(npgs ? first_off : 0);
  int done = 0;
  for (int i = 0; i < npgs; i++) {
    int off = i == 0 ? first_off : 0;
    int n = std::min<int>(len - done, uk::PAGE_SIZE - off);
    memcpy(uk::PHYS_TO_DMAP(m->m_epg_pa[i]) + off, payload.data() + done, n);
    done += n;
    m->m_epg_last_len = static_cast<uint16_t>(n);
  }
  m->m_len = len;
  return m;
}

std::vector<uint8_t> Wire(const mbuf* m) {
  std::vector<uint8_t> out(m->m_len);
  uk::m_copydata(m, 0, m->m_len, out.data());
  return out;
}

// Frames, sequences and encrypts one record in the calling thread.
int EncryptOne(kernel& k, ktls_session* tls, mbuf* m, uint64_t seqno,
               uint8_t type, uk::ktls_ocf_encrypt_state* state) {
  int cnt = 0;
  uk::ktls_frame(m, tls, &cnt, type);
  m->m_epg_seqno = seqno;
  return uk::ktls_encrypt_record(k, m, state);
}

TEST(KtlsTestUtil, GenericGcmAndCcmMatchOpenSsl) {
  auto key = ktls_test::RandomBytes(16);
  auto nonce = ktls_test::RandomBytes(12);
  auto aad = ktls_test::RandomBytes(13);
  for (size_t len : {0, 1, 15, 16, 17, 100, 4099}) {
    auto pt = ktls_test::RandomBytes(len);
    std::vector<uint8_t> a(len + 1), b(len + 1);
    uint8_t ta[16], tb[16];
    ASSERT_TRUE(ktls_test::GenericGcm(EVP_aes_128_ecb(), true, key.data(),
                                      nonce.data(), aad.data(), aad.size(),
                                      pt.data(), len, a.data(), ta));
    ASSERT_TRUE(ktls_test::EvpAead(EVP_aes_128_gcm(), false, true, key.data(),
                                   nonce.data(), aad.data(), aad.size(),
                                   pt.data(), len, b.data(), tb));
    EXPECT_EQ(0, memcmp(a.data(), b.data(), len)) << "gcm " << len;
    EXPECT_EQ(0, memcmp(ta, tb, 16)) << "gcm tag " << len;
    ASSERT_TRUE(ktls_test::GenericCcm(EVP_aes_128_ecb(), true, key.data(),
                                      nonce.data(), aad.data(), aad.size(),
                                      pt.data(), len, a.data(), ta));
    ASSERT_TRUE(ktls_test::EvpAead(EVP_aes_128_ccm(), true, true, key.data(),
                                   nonce.data(), aad.data(), aad.size(),
                                   pt.data(), len, b.data(), tb));
    EXPECT_EQ(0, memcmp(a.data(), b.data(), len)) << "ccm " << len;
    EXPECT_EQ(0, memcmp(ta, tb, 16)) << "ccm tag " << len;
  }
}

// --- Session validation ------------------------------------------------------

TEST(KtlsSession, InvalidSuitesGiveEinval) {
  auto k = Boot();
  for (const Suite& s : ktls_test::InvalidSuites()) {
    for (int dir : {uk::KTLS_TX, uk::KTLS_RX}) {
      TlsKeys keys;
      ktls_test::BuildTlsEnable(s, 0, &keys);
      RefPtr<ktls_session> tls;
      EXPECT_EQ(uk::ktls_create_session(*k, nullptr, &keys.en, &tls, dir),
                EINVAL)
          << s.name;
      EXPECT_FALSE(tls);
    }
  }
  EXPECT_EQ(Counter(*k, "kern.ipc.tls.stats.active"), 0u);
}

TEST(KtlsSession, ParameterValidationMatchesFreeBsd) {
  auto k = Boot();
  const Suite gcm12 = ktls_test::GcmSuites()[0];
  const Suite gcm13 = ktls_test::GcmSuites()[2];
  const Suite cbc10 = ktls_test::CbcSuites()[0];
  const Suite cbc11 = ktls_test::CbcSuites()[2];
  const Suite chacha = ktls_test::ChachaSuites()[0];
  const Suite sm4 = ktls_test::Sm4Suites()[0];
  struct Case {
    const char* what;
    Suite s;
    void (*mutate)(tls_enable*);
  };
  const Case cases[] = {
      {"vmajor 2", gcm12, [](tls_enable* e) { e->tls_vmajor = 2; }},
      {"vminor 0", gcm12, [](tls_enable* e) { e->tls_vminor = 0; }},
      {"vminor 5", gcm12, [](tls_enable* e) { e->tls_vminor = 5; }},
      {"auth_key_len -1", cbc11, [](tls_enable* e) { e->auth_key_len = -1; }},
      {"auth_key_len 1025", cbc11, [](tls_enable* e) { e->auth_key_len = 1025; }},
      {"cipher_key_len -1", gcm12, [](tls_enable* e) { e->cipher_key_len = -1; }},
      {"cipher_key_len 0", gcm12, [](tls_enable* e) { e->cipher_key_len = 0; }},
      {"cipher_key_len 1025", gcm12, [](tls_enable* e) { e->cipher_key_len = 1025; }},
      {"iv_len -1", gcm12, [](tls_enable* e) { e->iv_len = -1; }},
      {"iv_len 17", gcm12, [](tls_enable* e) { e->iv_len = 17; }},
      {"flags 1", gcm12, [](tls_enable* e) { e->flags = 1; }},
      {"gcm with auth", gcm12,
       [](tls_enable* e) { e->auth_algorithm = CRYPTO_SHA1_HMAC; }},
      {"gcm with GMAC", gcm12,
       [](tls_enable* e) { e->auth_algorithm = CRYPTO_AES_128_NIST_GMAC; }},
      {"gcm with auth key", gcm12, [](tls_enable* e) { e->auth_key_len = 20; }},
      {"gcm 1.2 iv 12", gcm12, [](tls_enable* e) { e->iv_len = 12; }},
      {"gcm 1.3 iv 4", gcm13, [](tls_enable* e) { e->iv_len = 4; }},
      {"cbc no auth", cbc11, [](tls_enable* e) { e->auth_algorithm = 0; }},
      {"cbc no auth key", cbc11, [](tls_enable* e) { e->auth_key_len = 0; }},
      {"cbc 1.0 iv 0", cbc10, [](tls_enable* e) { e->iv_len = 0; }},
      {"cbc 1.0 iv 12", cbc10, [](tls_enable* e) { e->iv_len = 12; }},
      {"chacha iv 8", chacha, [](tls_enable* e) { e->iv_len = 8; }},
      {"chacha with auth", chacha,
       [](tls_enable* e) { e->auth_algorithm = CRYPTO_SHA1_HMAC; }},
      {"sm4 tls 1.2", sm4, [](tls_enable* e) { e->tls_vminor = TLS_MINOR_VER_TWO; }},
      {"sm4 iv 4", sm4, [](tls_enable* e) { e->iv_len = 4; }},
      {"unknown cipher", gcm12, [](tls_enable* e) { e->cipher_algorithm = 999; }},
      {"ICM cipher", gcm12, [](tls_enable* e) { e->cipher_algorithm = CRYPTO_AES_ICM; }},
  };
  for (const Case& c : cases) {
    TlsKeys keys;
    ktls_test::BuildTlsEnable(c.s, 0, &keys);
    c.mutate(&keys.en);
    RefPtr<ktls_session> tls;
    EXPECT_EQ(uk::ktls_create_session(*k, nullptr, &keys.en, &tls, uk::KTLS_TX),
              EINVAL)
        << c.what;
  }

  // Key lengths the cipher does not have pass validation and fail in the
  // backend (ktls_ocf_try): EINVAL.
  struct KeyCase {
    Suite s;
    int keylen;
  } keycases[] = {{gcm12, 24}, {cbc11, 24}, {chacha, 16}, {sm4, 32}};
  for (const KeyCase& kc : keycases) {
    Suite s = kc.s;
    s.keylen = kc.keylen;
    int error = 0;
    TlsKeys keys;
    RefPtr<ktls_session> tls = NewSession(*k, s, &keys, 0, uk::KTLS_TX, &error);
    EXPECT_EQ(error, EINVAL) << s.name << " key " << kc.keylen;
  }

  // TLS 1.0 CBC cannot receive.
  {
    int error = 0;
    TlsKeys keys;
    EXPECT_FALSE(NewSession(*k, cbc10, &keys, 0, uk::KTLS_RX, &error));
    EXPECT_EQ(error, EPROTONOSUPPORT);
  }
  // CBC 1.1/1.2 ignore a supplied IV.
  {
    TlsKeys keys;
    ktls_test::BuildTlsEnable(cbc11, 0, &keys);
    keys.iv = ktls_test::RandomBytes(16);
    keys.en.iv = keys.iv.data();
    keys.en.iv_len = 16;
    RefPtr<ktls_session> tls;
    ASSERT_EQ(uk::ktls_create_session(*k, nullptr, &keys.en, &tls, uk::KTLS_TX), 0);
    EXPECT_EQ(tls->params.iv_len, 0);
    EXPECT_EQ(keys.en.iv_len, 0);
  }
  // An unreadable key.
  {
    TlsKeys keys;
    ktls_test::BuildTlsEnable(gcm12, 0, &keys);
    keys.en.cipher_key = nullptr;
    RefPtr<ktls_session> tls;
    EXPECT_EQ(uk::ktls_create_session(*k, nullptr, &keys.en, &tls, uk::KTLS_TX),
              EFAULT);
  }
  EXPECT_EQ(Counter(*k, "kern.ipc.tls.stats.active"), 0u);
}

TEST(KtlsSession, FramingLengthsPerSuite) {
  auto k = Boot();
  for (const Suite& s : ktls_test::AllSuites()) {
    int error = 0;
    TlsKeys keys;
    RefPtr<ktls_session> tls = NewSession(*k, s, &keys, 0, uk::KTLS_TX, &error);
    ASSERT_EQ(error, 0) << s.name;
    const uk::tls_session_params& p = tls->params;
    EXPECT_EQ(p.tls_hlen, ktls_test::HeaderLen(s)) << s.name;
    int want_tlen;
    if (s.cipher == CRYPTO_AES_CBC)
      want_tlen = 16 + ktls_test::MacLen(s.auth);
    else
      want_tlen = s.minor == TLS_MINOR_VER_THREE ? 17 : 16;
    EXPECT_EQ(p.tls_tlen, want_tlen) << s.name;
    EXPECT_EQ(p.tls_bs, s.cipher == CRYPTO_AES_CBC ? 16 : 1) << s.name;
    EXPECT_EQ(p.max_frame_len, 16384) << s.name;
    EXPECT_EQ(tls->mode, TCP_TLS_MODE_SW);
    EXPECT_EQ(tls->sequential_records, s.cipher == CRYPTO_AES_CBC &&
                                           s.minor == TLS_MINOR_VER_ZERO);
  }
}

TEST(KtlsSession, MaxFrameLenFollowsMaxlenTunable) {
  auto k = Boot(1, "kern.ipc.tls.maxlen=8192");
  int error = 0;
  TlsKeys keys;
  auto tls = NewSession(*k, ktls_test::GcmSuites()[0], &keys, 0, uk::KTLS_TX,
                        &error);
  ASSERT_EQ(error, 0);
  EXPECT_EQ(tls->params.max_frame_len, 8192);
}

TEST(KtlsSession, GaugesThreadsAndActiveCountSessions) {
  auto k = Boot(3);
  EXPECT_EQ(k->ktls->number_threads.load(), 0);  // started lazily
  std::vector<RefPtr<ktls_session>> live;
  std::vector<TlsKeys> keys(ktls_test::AllSuites().size());
  size_t i = 0;
  for (const Suite& s : ktls_test::AllSuites()) {
    int error = 0;
    live.push_back(NewSession(*k, s, &keys[i++], 0, uk::KTLS_TX, &error));
    ASSERT_EQ(error, 0) << s.name;
  }
  int threads = 0;
  size_t len = sizeof(threads);
  ASSERT_EQ(k->sysctl->sysctlbyname("kern.ipc.tls.stats.threads", &threads,
                                    &len, nullptr, 0),
            0);
  EXPECT_EQ(threads, 3);
  EXPECT_EQ(Counter(*k, "kern.ipc.tls.stats.active"), 18u);
  EXPECT_EQ(Counter(*k, "kern.ipc.tls.sw.cbc"), 10u);
  EXPECT_EQ(Counter(*k, "kern.ipc.tls.sw.gcm"), 4u);
  EXPECT_EQ(Counter(*k, "kern.ipc.tls.sw.chacha20"), 2u);
  EXPECT_EQ(Counter(*k, "kern.ipc.tls.sw.sm4"), 2u);
  EXPECT_EQ(uk::ktls_sw_backend_sessions(*k), 18);
  // Sessions spread over the queues, each pinned to one.
  std::set<int> queues;
  for (auto& t : live) queues.insert(t->wq_index);
  EXPECT_EQ(queues.size(), 3u);
  live.clear();
  EXPECT_EQ(Counter(*k, "kern.ipc.tls.stats.active"), 0u);
  EXPECT_EQ(Counter(*k, "kern.ipc.tls.sw.cbc"), 0u);
  EXPECT_EQ(Counter(*k, "kern.ipc.tls.sw.gcm"), 0u);
  EXPECT_EQ(Counter(*k, "kern.ipc.tls.sw.chacha20"), 0u);
  EXPECT_EQ(Counter(*k, "kern.ipc.tls.sw.sm4"), 0u);
  EXPECT_EQ(uk::ktls_sw_backend_sessions(*k), 0);
}

TEST(KtlsBackend, WithoutBackendSessionsFailEopnotsuppAndUnloadIsBusy) {
  auto k = Boot();
  const uk::ktls_backend* be;
  {
    uk::MutexLock l(&k->ktls->backend_mu);
    be = k->ktls->sw_backend;
  }
  ASSERT_NE(be, nullptr);
  EXPECT_STREQ(be->name, "ktls_ocf");
  const Suite s = ktls_test::GcmSuites()[0];
  int error = 0;
  TlsKeys keys;
  auto tls = NewSession(*k, s, &keys, 0, uk::KTLS_TX, &error);
  ASSERT_EQ(error, 0);
  EXPECT_EQ(uk::ktls_unregister_sw_backend(*k, be), EBUSY);
  tls.reset();
  EXPECT_EQ(uk::ktls_unregister_sw_backend(*k, be), 0);
  TlsKeys keys2;
  EXPECT_FALSE(NewSession(*k, s, &keys2, 0, uk::KTLS_TX, &error));
  EXPECT_EQ(error, EOPNOTSUPP);
  EXPECT_EQ(Counter(*k, "kern.ipc.tls.stats.active"), 0u);
  EXPECT_EQ(uk::ktls_register_sw_backend(*k, be), 0);
  EXPECT_EQ(uk::ktls_register_sw_backend(*k, be), EEXIST);
  TlsKeys keys3;
  EXPECT_TRUE(NewSession(*k, s, &keys3, 0, uk::KTLS_TX, &error));
}

TEST(KtlsBackend, KtlsOcfIsAModuleLoadedByDefault) {
  {
    auto k = Boot();
    EXPECT_TRUE(uk::module_loaded(*k, "ktls_ocf"));
  }
  // Without the default module set there is no software backend until
  // kldload("ktls_ocf"); kldunload refuses while a session uses it.
  uk::boot_params bp;
  bp.ncpus = 1;
  bp.default_modules = false;
  bp.modules = "";
  int error = 0;
  auto k = kernel::boot(bp, &error);
  ASSERT_EQ(error, 0);
  EXPECT_FALSE(uk::module_loaded(*k, "ktls_ocf"));
  const Suite s = ktls_test::GcmSuites()[0];
  TlsKeys keys;
  EXPECT_FALSE(NewSession(*k, s, &keys, 0, uk::KTLS_TX, &error));
  EXPECT_EQ(error, EOPNOTSUPP);
  // The crypto drivers are modules too: without one, no session either.
  int fileid = 0;
  ASSERT_EQ(uk::kern_kldload(*k, "ktls_ocf", &fileid), 0);
  EXPECT_FALSE(NewSession(*k, s, &keys, 0, uk::KTLS_TX, &error));
  EXPECT_EQ(error, EOPNOTSUPP);
  int drv = 0;
  ASSERT_EQ(uk::kern_kldload(*k, "ossl", &drv), 0);
  auto tls = NewSession(*k, s, &keys, 0, uk::KTLS_TX, &error);
  ASSERT_EQ(error, 0);
  EXPECT_EQ(uk::kern_kldunload(*k, fileid), EBUSY);
  tls.reset();
  EXPECT_EQ(uk::kern_kldunload(*k, fileid), 0);
  EXPECT_FALSE(NewSession(*k, s, &keys, 0, uk::KTLS_TX, &error));
  EXPECT_EQ(error, EOPNOTSUPP);
}

// --- Framing ----------------------------------------------------------------

TEST(KtlsFrame, Tls12GcmExplicitNonceIsARandomlySeededCounter) {
  auto k = Boot();
  const Suite s = ktls_test::GcmSuites()[0];
  uint64_t first[2];
  for (int sess = 0; sess < 2; sess++) {
    int error = 0;
    TlsKeys keys;
    auto tls = NewSession(*k, s, &keys, 7, uk::KTLS_TX, &error);
    ASSERT_EQ(error, 0);
    uint64_t prev = 0;
    for (int r = 0; r < 3; r++) {
      mbuf* m = MakeRecord(*k, ktls_test::RandomBytes(10), 0, true);
      int cnt = 0;
      uk::ktls_frame(m, tls.get(), &cnt, TLS_RLTYPE_APP);
      EXPECT_EQ(cnt, 1);
      EXPECT_TRUE(m->m_flags & uk::M_NOTREADY);
      EXPECT_EQ(m->m_len, 13 + 10 + 16);
      uint64_t n = 0;
      for (int i = 0; i < 8; i++)
        n = (n << 8) | static_cast<uint8_t>(m->m_epg_hdr[5 + i]);
      if (r == 0) {
        first[sess] = n;
      } else {
        EXPECT_EQ(n, prev + 1);
      }
      prev = n;
      EXPECT_EQ(tls->refcount(), 2u);
      uk::m_freem(m);  // drops the record's session reference
      EXPECT_EQ(tls->refcount(), 1u);
    }
  }
  EXPECT_NE(first[0], first[1]);  // 2^-64 chance of a false failure
}

TEST(KtlsFrame, HeadersAndTrailersPerSuite) {
  auto k = Boot();
  for (const Suite& s : ktls_test::AllSuites()) {
    int error = 0;
    TlsKeys keys;
    auto tls = NewSession(*k, s, &keys, 0, uk::KTLS_TX, &error);
    ASSERT_EQ(error, 0) << s.name;
    for (int len : {1, 15, 16, 100, 16384}) {
      mbuf* m = MakeRecord(*k, ktls_test::RandomBytes(len), 0, true);
      int cnt = 0;
      uk::ktls_frame(m, tls.get(), &cnt, 0x21);
      const auto* h = reinterpret_cast<const uint8_t*>(m->m_epg_hdr);
      bool tls13 = s.minor == TLS_MINOR_VER_THREE;
      EXPECT_EQ(h[0], tls13 ? TLS_RLTYPE_APP : 0x21) << s.name;
      EXPECT_EQ(h[1], 3);
      EXPECT_EQ(h[2], tls13 ? TLS_MINOR_VER_TWO : s.minor);
      EXPECT_EQ(m->m_epg_hdrlen, ktls_test::HeaderLen(s));
      EXPECT_EQ(m->m_epg_trllen, ktls_test::TrailerLen(s, len)) << s.name << len;
      EXPECT_EQ((h[3] << 8 | h[4]), m->m_len - 5);
      EXPECT_EQ(cnt, m->m_epg_npgs);
      if (tls13) {
        EXPECT_EQ(static_cast<uint8_t>(m->m_epg_trail[0]), 0x21);
      }
      uk::m_freem(m);
    }
  }
}

TEST(KtlsFrame, SeqAssignsConsecutiveNumbers) {
  auto k = Boot();
  mbuf* a = MakeRecord(*k, ktls_test::RandomBytes(5), 0, true);
  a->m_next = MakeRecord(*k, ktls_test::RandomBytes(5), 0, true);
  a->m_next->m_next = MakeRecord(*k, ktls_test::RandomBytes(5), 0, true);
  uint64_t seq = 41;
  uk::ktls_seq(&seq, a);
  EXPECT_EQ(a->m_epg_seqno, 41u);
  EXPECT_EQ(a->m_next->m_epg_seqno, 42u);
  EXPECT_EQ(a->m_next->m_next->m_epg_seqno, 43u);
  EXPECT_EQ(seq, 44u);
  uk::m_freem(a);
}

// --- Record encryption (TX) -------------------------------------------------

// Runs under the default driver choice (ipsecmb for what it has) and again
// with ipsecmb disabled, so the ossl driver serves every session.
class KtlsOcfDrivers : public ::testing::TestWithParam<const char*> {
 protected:
  std::unique_ptr<kernel> BootWithDriver() { return Boot(2, GetParam()); }
};

INSTANTIATE_TEST_SUITE_P(Drivers, KtlsOcfDrivers,
                         ::testing::Values("", "kern.crypto.ipsecmb.enable=0"));

TEST_P(KtlsOcfDrivers, EncryptEverySuiteDecryptsWithEvp) {
  auto k = BootWithDriver();
  auto state = std::make_unique<uk::ktls_ocf_encrypt_state>();
  for (const Suite& s : ktls_test::AllSuites()) {
    auto [tls, keys, seq, error] = RandomSession(*k, s, uk::KTLS_TX);
    ASSERT_EQ(error, 0) << s.name;
    std::vector<uint8_t> chain(keys.iv);
    uint64_t inplace0 = Counter(*k, "kern.ipc.tls.stats.ocf.inplace");
    int n = 0;
    for (int len : {1, 64, 4095, 4096, 9000, 16384}) {
      for (int off : {0, 1, 3000}) {
        if (off + len > 5 * 4096) continue;
        auto payload = ktls_test::RandomBytes(len);
        uint8_t type = (n % 2) ? 0x21 : TLS_RLTYPE_APP;
        mbuf* m = MakeRecord(*k, payload, off, true);
        ASSERT_EQ(EncryptOne(*k, tls.get(), m, seq, type, state.get()), 0)
            << s.name << " len " << len;
        EXPECT_EQ(m->m_epg_tls, nullptr);
        auto wire = Wire(m);
        std::vector<uint8_t> pt;
        uint8_t got_type = 0;
        std::string why;
        ASSERT_TRUE(ktls_test::DecryptRecord(s, keys, seq, wire.data(),
                                             wire.size(), &pt, &got_type, &why,
                                             &chain))
            << s.name << " len " << len << " off " << off << ": " << why;
        EXPECT_EQ(pt, payload) << s.name;
        EXPECT_EQ(got_type, type) << s.name;
        uk::m_freem(m);
        seq++;
        n++;
      }
    }
    EXPECT_EQ(Counter(*k, "kern.ipc.tls.stats.ocf.inplace") - inplace0,
              static_cast<uint64_t>(n));
    EXPECT_EQ(tls->refcount(), 1u);
  }
  EXPECT_GT(Counter(*k, "kern.ipc.tls.stats.ocf.tls10_cbc_encrypts"), 0u);
  EXPECT_GT(Counter(*k, "kern.ipc.tls.stats.ocf.tls11_cbc_encrypts"), 0u);
  EXPECT_GT(Counter(*k, "kern.ipc.tls.stats.ocf.tls12_gcm_encrypts"), 0u);
  EXPECT_GT(Counter(*k, "kern.ipc.tls.stats.ocf.tls13_gcm_encrypts"), 0u);
  EXPECT_GT(Counter(*k, "kern.ipc.tls.stats.ocf.tls12_chacha20_encrypts"), 0u);
  EXPECT_GT(Counter(*k, "kern.ipc.tls.stats.ocf.tls13_chacha20_encrypts"), 0u);
  EXPECT_GT(Counter(*k, "kern.ipc.tls.stats.ocf.tls13_sm4_encrypts"), 0u);
  if (std::string(GetParam()).find("ipsecmb.enable=0") != std::string::npos) {
    int n = -1;
    size_t len = sizeof(n);
    ASSERT_EQ(k->sysctl->sysctlbyname("kern.crypto.ipsecmb.sessions", &n, &len,
                                      nullptr, 0),
              0);
    EXPECT_EQ(n, 0);
  }
}

TEST_P(KtlsOcfDrivers, FilePagesAreNeverWritten) {
  auto k = BootWithDriver();
  auto state = std::make_unique<uk::ktls_ocf_encrypt_state>();
  for (const Suite& s : ktls_test::AllSuites()) {
    auto [tls, keys, seq, error] = RandomSession(*k, s, uk::KTLS_TX);
    ASSERT_EQ(error, 0) << s.name;
    auto payload = ktls_test::RandomBytes(10000);
    mbuf* m = MakeRecord(*k, payload, 123, /*anon=*/false);
    // The "file" keeps its own reference to its pages.
    std::vector<uk::vm_page*> file(m->m_epg_pa, m->m_epg_pa + m->m_epg_npgs);
    for (auto* pg : file) uk::PagePool::hold(pg);
    uint64_t sep0 = Counter(*k, "kern.ipc.tls.stats.ocf.separate_output");
    ASSERT_EQ(EncryptOne(*k, tls.get(), m, seq, TLS_RLTYPE_APP, state.get()), 0);
    EXPECT_EQ(Counter(*k, "kern.ipc.tls.stats.ocf.separate_output") - sep0, 1u);
    EXPECT_TRUE(m->m_epg_flags & uk::EPG_FLAG_ANON);
    // The file's pages still hold the plaintext; the mbuf has new pages.
    int done = 0;
    for (size_t i = 0; i < file.size(); i++) {
      EXPECT_NE(m->m_epg_pa[i], file[i]);
      int off = i == 0 ? 123 : 0;
      int n = std::min<int>(10000 - done, uk::PAGE_SIZE - off);
      EXPECT_EQ(0, memcmp(uk::PHYS_TO_DMAP(file[i]) + off, payload.data() + done, n))
          << s.name << " page " << i;
      done += n;
    }
    auto wire = Wire(m);
    std::vector<uint8_t> pt, chain(keys.iv);
    uint8_t type;
    std::string why;
    ASSERT_TRUE(ktls_test::DecryptRecord(s, keys, seq, wire.data(), wire.size(),
                                         &pt, &type, &why, &chain))
        << s.name << ": " << why;
    EXPECT_EQ(pt, payload);
    uk::m_freem(m);
    for (auto* pg : file) uk::PagePool::release(pg);
  }
}

// kern.ipc.tls.sw_buffer_cache (FreeBSD's ktls_buffer_zone): a file-backed
// record of more than two pages is encrypted into one contiguous buffer of
// maxlen, which goes back to the cache whole when the mbuf is freed and is
// the next one handed out; a record of one or two pages, and every record
// with the tunable off, gets single pages. Each decrypts with EVP.
TEST(KtlsOcf, FileRecordsOfMoreThanTwoPagesGoToOneContiguousBuffer) {
  const Suite s = ktls_test::GcmSuites()[0];
  for (bool cache : {true, false}) {
    SCOPED_TRACE(cache ? "sw_buffer_cache=1" : "sw_buffer_cache=0");
    auto k = Boot(2, cache ? "" : "kern.ipc.tls.sw_buffer_cache=0");
    auto state = std::make_unique<uk::ktls_ocf_encrypt_state>();
    auto [tls, keys, seq, error] = RandomSession(*k, s, uk::KTLS_TX);
    ASSERT_EQ(error, 0);
    const uint64_t in_use0 = Counter(*k, "vm.pages.in_use");
    struct {
      int len, off;
      bool contiguous;  // with the cache on
    } cases[] = {{16384, 0, true}, {12000, 3000, true}, {10000, 123, true},
                 {8192, 0, false}, {5000, 100, false}, {16384, 0, true}};
    uk::vm_page* last_buffer = nullptr;
    for (const auto& c : cases) {
      SCOPED_TRACE(c.len);
      auto payload = ktls_test::RandomBytes(c.len);
      mbuf* m = MakeRecord(*k, payload, c.off, /*anon=*/false);
      ASSERT_NE(m, nullptr);
      std::vector<uk::vm_page*> file(m->m_epg_pa, m->m_epg_pa + m->m_epg_npgs);
      for (auto* pg : file) uk::PagePool::hold(pg);
      const uint64_t runs0 = Counter(*k, "vm.pages.runs");
      ASSERT_EQ(EncryptOne(*k, tls.get(), m, seq, TLS_RLTYPE_APP, state.get()), 0);
      const bool contiguous = cache && c.contiguous;
      EXPECT_EQ(Counter(*k, "vm.pages.runs") - runs0, contiguous ? 1u : 0u);
      if (contiguous) {
        for (int i = 1; i < m->m_epg_npgs; i++)
          EXPECT_EQ(uk::PHYS_TO_DMAP(m->m_epg_pa[i]),
                    uk::PHYS_TO_DMAP(m->m_epg_pa[0]) + i * uk::PAGE_SIZE)
              << i;
        // The 16 KiB record after the others gets the buffer freed last.
        if (last_buffer != nullptr && c.len == 16384) {
          EXPECT_EQ(m->m_epg_pa[0], last_buffer);
        }
        last_buffer = m->m_epg_pa[0];
      }
      auto wire = Wire(m);
      std::vector<uint8_t> pt, chain(keys.iv);
      uint8_t type;
      std::string why;
      ASSERT_TRUE(ktls_test::DecryptRecord(s, keys, seq, wire.data(), wire.size(), &pt,
                                           &type, &why, &chain))
          << why;
      EXPECT_EQ(pt, payload);
      uk::m_freem(m);
      for (auto* pg : file) uk::PagePool::release(pg);
      seq++;
      // Every page is back: the buffer's with the mbuf.
      EXPECT_EQ(Counter(*k, "vm.pages.in_use"), in_use0);
    }
  }
}

// When no contiguous buffer can be had (the pool at vm.pages_max), the
// record goes to single pages, and for the next second no buffer is asked
// for (FreeBSD's lastallocfail).
TEST(KtlsOcf, WithoutAContiguousBufferSinglePagesServe) {
  const Suite s = ktls_test::GcmSuites()[0];
  auto k = Boot(2, "vm.pages_max=64");
  auto state = std::make_unique<uk::ktls_ocf_encrypt_state>();
  auto [tls, keys, seq, error] = RandomSession(*k, s, uk::KTLS_TX);
  ASSERT_EQ(error, 0);
  for (int round = 0; round < 2; round++) {
    SCOPED_TRACE(round);
    auto payload = ktls_test::RandomBytes(10000);
    mbuf* m = MakeRecord(*k, payload, 123, /*anon=*/false);  // 3 pages
    ASSERT_NE(m, nullptr);
    std::vector<uk::vm_page*> file(m->m_epg_pa, m->m_epg_pa + m->m_epg_npgs);
    for (auto* pg : file) uk::PagePool::hold(pg);
    // Round 0: three pages left, no room for a buffer of four. Round 1:
    // room again, but within a second of the refusal.
    std::vector<uk::vm_page*> hog;
    while (round == 0 && k->vm->pages_free() > 3) {
      uk::vm_page* pg = k->vm->alloc();
      ASSERT_NE(pg, nullptr);
      hog.push_back(pg);
    }
    const uint64_t runs0 = Counter(*k, "vm.pages.runs");
    ASSERT_EQ(EncryptOne(*k, tls.get(), m, seq, TLS_RLTYPE_APP, state.get()), 0);
    EXPECT_EQ(Counter(*k, "vm.pages.runs"), runs0);
    auto wire = Wire(m);
    std::vector<uint8_t> pt, chain(keys.iv);
    uint8_t type;
    std::string why;
    ASSERT_TRUE(ktls_test::DecryptRecord(s, keys, seq, wire.data(), wire.size(), &pt, &type,
                                         &why, &chain))
        << why;
    EXPECT_EQ(pt, payload);
    uk::m_freem(m);
    for (auto* pg : file) uk::PagePool::release(pg);
    uk::PagePool::release_n(hog.data(), hog.size());
    seq++;
  }
}

TEST(KtlsOcf, CbcCoversEveryPaddingLength) {
  auto k = Boot();
  auto state = std::make_unique<uk::ktls_ocf_encrypt_state>();
  for (const Suite& s : ktls_test::CbcSuites()) {
    auto [tls, keys, seq, error] = RandomSession(*k, s, uk::KTLS_TX);
    ASSERT_EQ(error, 0) << s.name;
    std::vector<uint8_t> chain(keys.iv);
    std::set<int> pads;
    for (int len = 1; len <= 16; len++) {
      auto payload = ktls_test::RandomBytes(len);
      mbuf* m = MakeRecord(*k, payload, 0, true);
      ASSERT_EQ(EncryptOne(*k, tls.get(), m, seq, 0x21, state.get()), 0);
      int pad = m->m_epg_trllen - ktls_test::MacLen(s.auth);
      EXPECT_GE(pad, 1);
      EXPECT_LE(pad, 16);
      pads.insert(pad);
      auto wire = Wire(m);
      std::vector<uint8_t> pt;
      uint8_t type;
      std::string why;
      ASSERT_TRUE(ktls_test::DecryptRecord(s, keys, seq, wire.data(),
                                           wire.size(), &pt, &type, &why,
                                           &chain))
          << s.name << " len " << len << ": " << why;
      EXPECT_EQ(pt, payload);
      EXPECT_EQ(type, 0x21);
      uk::m_freem(m);
      seq++;
    }
    EXPECT_EQ(pads.size(), 16u) << s.name;
  }
}

TEST(KtlsOcf, Tls10ChainsIvAndRefusesOutOfOrderRecords) {
  auto k = Boot();
  auto state = std::make_unique<uk::ktls_ocf_encrypt_state>();
  for (const Suite& s : {ktls_test::CbcSuites()[0], ktls_test::CbcSuites()[1]}) {
    auto [tls, keys, seq, error] = RandomSession(*k, s, uk::KTLS_TX);
    ASSERT_EQ(error, 0);
    std::vector<uint8_t> chain(keys.iv);
    // An empty fragment first, then data records.
    for (int len : {0, 100, 4096, 16384}) {
      auto payload = ktls_test::RandomBytes(len);
      mbuf* m = MakeRecord(*k, payload, 0, true);
      int cnt = 0;
      uk::ktls_frame(m, tls.get(), &cnt, TLS_RLTYPE_APP);
      EXPECT_EQ(cnt, len == 0 ? 1 : m->m_epg_npgs);
      m->m_epg_seqno = seq;
      ASSERT_EQ(uk::ktls_encrypt_record(*k, m, state.get()), 0);
      if (len == 0) {
        EXPECT_EQ(m->m_len, 5 + 32);  // SHA1 MAC + 12 bytes of padding
      }
      auto wire = Wire(m);
      std::vector<uint8_t> pt;
      uint8_t type;
      std::string why;
      ASSERT_TRUE(ktls_test::DecryptRecord(s, keys, seq, wire.data(),
                                           wire.size(), &pt, &type, &why,
                                           &chain))
          << s.name << " len " << len << ": " << why;
      EXPECT_EQ(pt, payload);
      uk::m_freem(m);
      seq++;
    }
    // A record that skips one is refused (the chained IV would be wrong).
    mbuf* m = MakeRecord(*k, ktls_test::RandomBytes(10), 0, true);
    EXPECT_EQ(EncryptOne(*k, tls.get(), m, seq + 1, TLS_RLTYPE_APP, state.get()),
              EINVAL);
    uk::m_freem(m);
  }
}

// --- Record decryption (RX) -------------------------------------------------

TEST_P(KtlsOcfDrivers, DecryptsEvpRecordsForEveryReceiveSuite) {
  auto k = BootWithDriver();
  for (const Suite& s : ktls_test::AllSuites()) {
    if (s.cipher == CRYPTO_AES_CBC && s.minor == TLS_MINOR_VER_ZERO) continue;
    auto [tls, keys, seq, error] = RandomSession(*k, s, uk::KTLS_RX);
    ASSERT_EQ(error, 0) << s.name;
    bool tls13 = s.minor == TLS_MINOR_VER_THREE;
    for (int len : {0, 1, 64, 16384}) {
      for (size_t extra : {size_t{0}, size_t{16}, size_t{32}}) {
        if (extra != 0 && !(s.cipher == CRYPTO_AES_CBC || tls13)) continue;
        auto payload = ktls_test::RandomBytes(len);
        auto rec = ktls_test::EncryptRecord(s, keys, seq, TLS_RLTYPE_APP,
                                            payload.data(), len, extra, seq * 3);
        auto* hdr = reinterpret_cast<const tls_record_layer*>(rec.data());
        tls_record_layer h = *hdr;
        int trailer = 0;
        ASSERT_EQ(tls->sw.decrypt(tls.get(), &h, nullptr, rec.data(),
                                  static_cast<int>(rec.size()), seq, &trailer),
                  0)
            << s.name << " len " << len << " extra " << extra;
        int hlen = ktls_test::HeaderLen(s);
        if (tls13) {
          EXPECT_EQ(trailer, 16);
          // Plaintext, the type byte, then the zero padding.
          int inner = static_cast<int>(rec.size()) - hlen - trailer;
          EXPECT_EQ(inner, len + 1 + static_cast<int>(extra));
          EXPECT_EQ(rec[hlen + len], TLS_RLTYPE_APP);
        } else {
          EXPECT_EQ(static_cast<int>(rec.size()) - hlen - trailer, len) << s.name;
        }
        if (len > 0) {
          EXPECT_EQ(0, memcmp(rec.data() + hlen, payload.data(), len)) << s.name;
        }
        seq++;
      }
    }
    // Tampering anywhere gives EBADMSG; the tag, the data, the nonce/IV.
    auto payload = ktls_test::RandomBytes(64);
    for (int where : {0, 1, 2}) {
      auto rec = ktls_test::EncryptRecord(s, keys, seq, TLS_RLTYPE_APP,
                                          payload.data(), 64, 0, 99);
      int hlen = ktls_test::HeaderLen(s);
      if (where == 0) rec[hlen] ^= 1;             // data
      else if (where == 1) rec[rec.size() - 1] ^= 1;  // tag / padding
      else if (hlen > 5) rec[5] ^= 1;             // explicit IV / nonce
      else continue;
      tls_record_layer h = *reinterpret_cast<const tls_record_layer*>(rec.data());
      int trailer = 0;
      EXPECT_EQ(tls->sw.decrypt(tls.get(), &h, nullptr, rec.data(),
                                static_cast<int>(rec.size()), seq, &trailer),
                EBADMSG)
          << s.name << " where " << where;
    }
    // The wrong sequence number fails authentication.
    {
      auto rec = ktls_test::EncryptRecord(s, keys, seq, TLS_RLTYPE_APP,
                                          payload.data(), 64, 0, 1);
      tls_record_layer h = *reinterpret_cast<const tls_record_layer*>(rec.data());
      int trailer = 0;
      EXPECT_EQ(tls->sw.decrypt(tls.get(), &h, nullptr, rec.data(),
                                static_cast<int>(rec.size()), seq + 1, &trailer),
                EBADMSG)
          << s.name;
    }
    // Too short for the cipher: EMSGSIZE (FreeBSD's _small_record minimum
    // less one, and CBC's non-block-size).
    {
      int min;
      if (s.cipher == CRYPTO_AES_CBC)
        min = 16 + ((ktls_test::MacLen(s.auth) + 1 + 15) & ~15);
      else if (tls13)
        min = 17;
      else
        min = ktls_test::HeaderLen(s) - 5 + 16;
      for (int l : {min - 1, s.cipher == CRYPTO_AES_CBC ? min + 1 : min - 1}) {
        std::vector<uint8_t> rec(5 + l, 0);
        rec[0] = tls13 ? TLS_RLTYPE_APP : TLS_RLTYPE_APP;
        rec[1] = 3;
        rec[2] = tls13 ? 3 : s.minor;
        rec[3] = static_cast<uint8_t>(l >> 8);
        rec[4] = static_cast<uint8_t>(l);
        tls_record_layer h = *reinterpret_cast<const tls_record_layer*>(rec.data());
        int trailer = 0;
        EXPECT_EQ(tls->sw.decrypt(tls.get(), &h, nullptr, rec.data(),
                                  static_cast<int>(rec.size()), seq, &trailer),
                  EMSGSIZE)
            << s.name << " len " << l;
      }
    }
  }
  EXPECT_GT(Counter(*k, "kern.ipc.tls.stats.ocf.tls11_cbc_decrypts"), 0u);
  EXPECT_GT(Counter(*k, "kern.ipc.tls.stats.ocf.tls12_gcm_decrypts"), 0u);
  EXPECT_GT(Counter(*k, "kern.ipc.tls.stats.ocf.tls13_gcm_decrypts"), 0u);
  EXPECT_GT(Counter(*k, "kern.ipc.tls.stats.ocf.tls12_chacha20_decrypts"), 0u);
  EXPECT_GT(Counter(*k, "kern.ipc.tls.stats.ocf.tls13_chacha20_decrypts"), 0u);
  EXPECT_GT(Counter(*k, "kern.ipc.tls.stats.ocf.tls13_sm4_decrypts"), 0u);
}

TEST(KtlsOcf, CbcBadPaddingIsEbadmsg) {
  auto k = Boot();
  for (const Suite& s : ktls_test::CbcSuites()) {
    if (s.minor == TLS_MINOR_VER_ZERO) continue;
    int error = 0;
    TlsKeys keys;
    auto tls = NewSession(*k, s, &keys, 5, uk::KTLS_RX, &error);
    ASSERT_EQ(error, 0);
    auto payload = ktls_test::RandomBytes(16);
    auto rec = ktls_test::EncryptRecord(s, keys, 5, TLS_RLTYPE_APP,
                                        payload.data(), 16);
    // Flip the last ciphertext byte: the padding decrypts to garbage.
    rec[rec.size() - 1] ^= 1;
    tls_record_layer h = *reinterpret_cast<const tls_record_layer*>(rec.data());
    int trailer = 0;
    EXPECT_EQ(tls->sw.decrypt(tls.get(), &h, nullptr, rec.data(),
                              static_cast<int>(rec.size()), 5, &trailer),
              EBADMSG)
        << s.name;
  }
}

TEST(KtlsOcf, GcmRecryptRestoresNicDecryptedRanges) {
  auto k = Boot();
  for (const Suite& s : ktls_test::GcmSuites()) {
    int error = 0;
    TlsKeys keys;
    auto tls = NewSession(*k, s, &keys, 9, uk::KTLS_RX, &error);
    ASSERT_EQ(error, 0);
    ASSERT_NE(tls->sw.recrypt, nullptr);
    ASSERT_TRUE(tls->backend->recrypt_supported(tls.get()));
    auto payload = ktls_test::RandomBytes(3000);
    auto rec = ktls_test::EncryptRecord(s, keys, 9, TLS_RLTYPE_APP,
                                        payload.data(), payload.size(), 0, 77);
    int hlen = ktls_test::HeaderLen(s);
    // A NIC decrypted two pieces of the record in place.
    int ranges[2][2] = {{hlen + 10, 500}, {hlen + 2000, 900}};
    for (auto& r : ranges)
      memcpy(rec.data() + r[0], payload.data() + (r[0] - hlen), r[1]);
    tls_record_layer h = *reinterpret_cast<const tls_record_layer*>(rec.data());
    ASSERT_EQ(tls->sw.recrypt(tls.get(), &h, rec.data(),
                              static_cast<int>(rec.size()), 9, ranges, 2),
              0);
    int trailer = 0;
    ASSERT_EQ(tls->sw.decrypt(tls.get(), &h, nullptr, rec.data(),
                              static_cast<int>(rec.size()), 9, &trailer),
              0)
        << s.name;
    EXPECT_EQ(0, memcmp(rec.data() + hlen, payload.data(), payload.size()));
  }
  EXPECT_GT(Counter(*k, "kern.ipc.tls.stats.ocf.tls12_gcm_recrypts"), 0u);
  EXPECT_GT(Counter(*k, "kern.ipc.tls.stats.ocf.tls13_gcm_recrypts"), 0u);
}

// A record still in the mbufs it arrived in (split at awkward places) is
// decrypted out of place: rec gets the plaintext, the chain is only read,
// and a flipped bit anywhere in the chain still fails authentication.
TEST_P(KtlsOcfDrivers, DecryptsFromAnMbufChainForEveryReceiveSuite) {
  auto k = BootWithDriver();
  auto chain_of = [&k](const std::vector<uint8_t>& rec) {
    mbuf* top = nullptr;
    mbuf** tail = &top;
    size_t off = 0;
    // 1, 7, 150 bytes, then 2 KiB clusters: segments that cut the header,
    // the nonce and AES blocks.
    for (size_t piece : {size_t{1}, size_t{7}, size_t{150}}) {
      if (off >= rec.size()) break;
      mbuf* m = uk::m_get(*k, uk::M_WAITOK, uk::MT_DATA);
      size_t n = std::min(piece, rec.size() - off);
      memcpy(uk::mtod<uint8_t*>(m), rec.data() + off, n);
      m->m_len = static_cast<int>(n);
      off += n;
      *tail = m;
      tail = &m->m_next;
    }
    while (off < rec.size()) {
      mbuf* m = uk::m_getcl(*k, uk::M_WAITOK, uk::MT_DATA, 0);
      size_t n = std::min<size_t>(uk::MCLBYTES, rec.size() - off);
      memcpy(uk::mtod<uint8_t*>(m), rec.data() + off, n);
      m->m_len = static_cast<int>(n);
      off += n;
      *tail = m;
      tail = &m->m_next;
    }
    return top;
  };
  for (const Suite& s : ktls_test::AllSuites()) {
    if (s.cipher == CRYPTO_AES_CBC && s.minor == TLS_MINOR_VER_ZERO) continue;
    auto [tls, keys, seq, error] = RandomSession(*k, s, uk::KTLS_RX);
    ASSERT_EQ(error, 0) << s.name;
    const int hlen = ktls_test::HeaderLen(s);
    for (int len : {0, 5, 4000, 16384}) {
      auto payload = ktls_test::RandomBytes(len);
      auto wire = ktls_test::EncryptRecord(s, keys, seq, TLS_RLTYPE_APP,
                                           payload.data(), len, 0, seq);
      mbuf* chain = chain_of(wire);
      std::vector<uint8_t> rec(wire.size(), 0xee);
      tls_get_record tgr{};
      ASSERT_EQ(uk::ktls_rx_decrypt_record_from(tls.get(), chain, rec.data(),
                                                static_cast<int>(wire.size()), seq,
                                                &tgr, nullptr),
                0)
          << s.name << " len " << len;
      EXPECT_EQ(ntohs(tgr.tls_length), len) << s.name;
      EXPECT_EQ(tgr.tls_type, TLS_RLTYPE_APP);
      if (len > 0) {
        EXPECT_EQ(0, memcmp(rec.data() + hlen, payload.data(), len)) << s.name;
      }
      // The chain still holds the ciphertext.
      std::vector<uint8_t> after(wire.size());
      uk::m_copydata(chain, 0, static_cast<int>(after.size()), after.data());
      EXPECT_EQ(after, wire) << s.name;
      uk::m_freem(chain);
      seq++;
    }
    for (size_t flip : {size_t{3}, static_cast<size_t>(hlen + 2), size_t{0}}) {
      auto payload = ktls_test::RandomBytes(3000);
      auto wire = ktls_test::EncryptRecord(s, keys, seq, TLS_RLTYPE_APP,
                                           payload.data(), payload.size(), 0, 7);
      if (flip == 0) flip = wire.size() - 1;  // tag / padding
      if (flip < 5) continue;                 // the header is checked elsewhere
      wire[flip] ^= 0x40;
      mbuf* chain = chain_of(wire);
      std::vector<uint8_t> rec(wire.size());
      tls_get_record tgr{};
      EXPECT_EQ(uk::ktls_rx_decrypt_record_from(tls.get(), chain, rec.data(),
                                                static_cast<int>(wire.size()), seq,
                                                &tgr, nullptr),
                EBADMSG)
          << s.name << " byte " << flip;
      uk::m_freem(chain);
    }
  }
}

// --- Receive, record level ----------------------------------------------------

TEST(KtlsRx, HeaderChecksMatchFreeBsd) {
  auto k = Boot();
  for (const Suite& s : ktls_test::AllSuites()) {
    if (s.cipher == CRYPTO_AES_CBC && s.minor == TLS_MINOR_VER_ZERO) continue;
    int error = 0;
    TlsKeys keys;
    auto tls = NewSession(*k, s, &keys, 0, uk::KTLS_RX, &error);
    ASSERT_EQ(error, 0) << s.name;
    bool tls13 = s.minor == TLS_MINOR_VER_THREE;
    auto hdr = [&](uint8_t type, uint8_t maj, uint8_t min, int len) {
      tls_record_layer h;
      h.tls_type = type;
      h.tls_vmajor = maj;
      h.tls_vminor = min;
      h.tls_length = htons(static_cast<uint16_t>(len));
      return h;
    };
    const uint8_t minor = tls13 ? TLS_MINOR_VER_TWO : s.minor;
    int len = 0;
    tls_record_layer h = hdr(23, 3, minor, 64);
    EXPECT_EQ(uk::ktls_rx_check_header(tls.get(), &h, &len), 0) << s.name;
    EXPECT_EQ(len, 69);
    h = hdr(23, 4, minor, 64);  // _bad_major
    EXPECT_EQ(uk::ktls_rx_check_header(tls.get(), &h, &len), EINVAL) << s.name;
    h = hdr(23, 3, minor + 1, 64);  // _bad_minor
    EXPECT_EQ(uk::ktls_rx_check_header(tls.get(), &h, &len), EINVAL) << s.name;
    h = hdr(24, 3, minor, 64);  // _bad_type (only TLS 1.3 checks it)
    EXPECT_EQ(uk::ktls_rx_check_header(tls.get(), &h, &len), tls13 ? EINVAL : 0)
        << s.name;
    h = hdr(23, 3, minor, 32768);  // _oversized_record
    EXPECT_EQ(uk::ktls_rx_check_header(tls.get(), &h, &len), EMSGSIZE) << s.name;
    int hlen = ktls_test::HeaderLen(s);
    int tlen = tls->params.tls_tlen;
    h = hdr(23, 3, minor, 16384 + tlen + hlen - 5);
    EXPECT_EQ(uk::ktls_rx_check_header(tls.get(), &h, &len), 0) << s.name;
    h = hdr(23, 3, minor, 16384 + tlen + hlen - 5 + 1);
    EXPECT_EQ(uk::ktls_rx_check_header(tls.get(), &h, &len), EMSGSIZE) << s.name;
    if (hlen > 5) {
      h = hdr(23, 3, minor, 6);  // _short_header
      EXPECT_EQ(uk::ktls_rx_check_header(tls.get(), &h, &len), EMSGSIZE) << s.name;
    }
  }
}

TEST(KtlsRx, DecryptRecordFillsTlsGetRecord) {
  auto k = Boot();
  for (const Suite& s : ktls_test::AllSuites()) {
    if (s.cipher == CRYPTO_AES_CBC && s.minor == TLS_MINOR_VER_ZERO) continue;
    auto [tls, keys, seq, error] = RandomSession(*k, s, uk::KTLS_RX);
    ASSERT_EQ(error, 0) << s.name;
    bool tls13 = s.minor == TLS_MINOR_VER_THREE;
    int hlen = ktls_test::HeaderLen(s);
    for (int len : {0, 64, 16369, 16384}) {
      // TLS 1.3 with zero padding (_short_padded / _long_padded), CBC with
      // non-minimal padding (_padding_32_extra).
      size_t extra = tls13 ? (len == 16384 ? 0 : 16 - (len == 16369)) :
                     s.cipher == CRYPTO_AES_CBC ? 32 : 0;
      if (s.cipher == CRYPTO_AES_CBC && len == 16384) extra = 0;
      auto payload = ktls_test::RandomBytes(len);
      auto rec = ktls_test::EncryptRecord(s, keys, seq, 0x21, payload.data(),
                                          len, extra, seq);
      tls_get_record tgr;
      ASSERT_EQ(uk::ktls_rx_decrypt_record(tls.get(), rec.data(),
                                           static_cast<int>(rec.size()), seq,
                                           &tgr),
                0)
          << s.name << " len " << len;
      EXPECT_EQ(tgr.tls_type, 0x21);
      EXPECT_EQ(tgr.tls_vmajor, 3);
      EXPECT_EQ(tgr.tls_vminor, tls13 ? TLS_MINOR_VER_TWO : s.minor);
      EXPECT_EQ(ntohs(tgr.tls_length), len) << s.name << " len " << len;
      if (len > 0) {
        EXPECT_EQ(0, memcmp(rec.data() + hlen, payload.data(), len));
      }
      seq++;
    }
    uint64_t failed0 = Counter(*k, "kern.ipc.tls.stats.failed_crypto");
    if (tls13) {
      // All-zero inner plaintext: no type byte.
      std::vector<uint8_t> zeros(32, 0);
      auto rec = ktls_test::EncryptRecord(s, keys, seq, 0, zeros.data(), 32);
      tls_get_record tgr;
      EXPECT_EQ(uk::ktls_rx_decrypt_record(tls.get(), rec.data(),
                                           static_cast<int>(rec.size()), seq,
                                           &tgr),
                EBADMSG)
          << s.name;
      EXPECT_EQ(Counter(*k, "kern.ipc.tls.stats.failed_crypto") - failed0, 1u);
    }
    // Corrupt data: EBADMSG, counted.
    auto payload = ktls_test::RandomBytes(64);
    auto rec = ktls_test::EncryptRecord(s, keys, seq, 23, payload.data(), 64);
    rec[hlen] ^= 1;
    tls_get_record tgr;
    EXPECT_EQ(uk::ktls_rx_decrypt_record(tls.get(), rec.data(),
                                         static_cast<int>(rec.size()), seq, &tgr),
              EBADMSG)
        << s.name;
  }
}

// --- Worker threads ------------------------------------------------------------

// Stands in for the socket layer: collects what the workers hand back.
struct FakeSocket {
  uk::Mutex mu;
  uk::CondVar cv;
  std::vector<std::pair<mbuf*, int>> ready ABSL_GUARDED_BY(mu);
  std::vector<int> failed ABSL_GUARDED_BY(mu);
  std::vector<std::pair<mbuf*, int>> failed_left ABSL_GUARDED_BY(mu);
  int reles ABSL_GUARDED_BY(mu) = 0;
};

void InstallFakeHooks(kernel& k) {
  uk::ktls_socket_hooks h;
  h.pr_ready = [](uk::socket* so, mbuf* m, int count) {
    auto* fs = reinterpret_cast<FakeSocket*>(so);
    uk::MutexLock l(&fs->mu);
    fs->ready.emplace_back(m, count);
    return 0;
  };
  h.tx_failed = [](uk::socket* so, mbuf* m, int count, int error) {
    auto* fs = reinterpret_cast<FakeSocket*>(so);
    uk::MutexLock l(&fs->mu);
    fs->failed.push_back(error);
    fs->failed_left.emplace_back(m, count);
  };
  h.sorele = [](uk::socket* so) {
    auto* fs = reinterpret_cast<FakeSocket*>(so);
    uk::MutexLock l(&fs->mu);
    fs->reles++;
    fs->cv.SignalAll();
  };
  uk::ktls_set_socket_hooks(k, h);
}

void WaitReles(FakeSocket* fs, int n) {
  uk::MutexLock l(&fs->mu);
  while (fs->reles < n) fs->cv.Wait(&fs->mu);
}

TEST(KtlsWorker, EnqueuedRecordsAreEncryptedThenReady) {
  auto k = Boot(2);
  InstallFakeHooks(*k);
  for (const Suite& s : ktls_test::AllSuites()) {
    auto [tls, keys, seq, error] = RandomSession(*k, s, uk::KTLS_TX);
    ASSERT_EQ(error, 0) << s.name;
    FakeSocket fs;
    // Two batches of three records, as two sosend calls would queue them.
    std::vector<std::vector<uint8_t>> payloads;
    mbuf* chains[2];
    uint64_t sb_seq = seq;
    for (int b = 0; b < 2; b++) {
      mbuf* top = nullptr;
      mbuf** tail = &top;
      for (int r = 0; r < 3; r++) {
        payloads.push_back(ktls_test::RandomBytes(1000 * (r + 1) + b));
        *tail = MakeRecord(*k, payloads.back(), 0, true);
        tail = &(*tail)->m_next;
      }
      int cnt = 0;
      uk::ktls_frame(top, tls.get(), &cnt, TLS_RLTYPE_APP);
      uk::ktls_seq(&sb_seq, top);
      chains[b] = top;
      uk::ktls_enqueue(top, reinterpret_cast<uk::socket*>(&fs), cnt);
    }
    WaitReles(&fs, 2);
    {
      uk::MutexLock l(&fs.mu);
      ASSERT_EQ(fs.ready.size(), 2u);
      EXPECT_TRUE(fs.failed.empty());
      for (int b = 0; b < 2; b++) {
        EXPECT_EQ(fs.ready[b].first, chains[b]);
        EXPECT_EQ(fs.ready[b].second, 3);  // one page per record here
      }
    }
    std::vector<uint8_t> chain(keys.iv);
    size_t i = 0;
    for (int b = 0; b < 2; b++) {
      for (mbuf* m = chains[b]; m; m = m->m_next, i++) {
        EXPECT_EQ(m->m_epg_tls, nullptr);
        auto wire = Wire(m);
        std::vector<uint8_t> pt;
        uint8_t type;
        std::string why;
        ASSERT_TRUE(ktls_test::DecryptRecord(s, keys, seq + i, wire.data(),
                                             wire.size(), &pt, &type, &why,
                                             &chain))
            << s.name << " record " << i << ": " << why;
        EXPECT_EQ(pt, payloads[i]);
      }
      uk::m_freem(chains[b]);
    }
    EXPECT_EQ(tls->refcount(), 1u);
  }
  EXPECT_EQ(Counter(*k, "kern.ipc.tls.stats.sw_tx_inqueue"), 0u);
  EXPECT_EQ(Counter(*k, "kern.ipc.tls.stats.failed_crypto"), 0u);
}

// Each of recs, in order from seq, decrypts (EVP) to its payload.
void ExpectRecordsDecrypt(const Suite& s, const TlsKeys& keys, uint64_t seq,
                          const std::vector<mbuf*>& recs,
                          const std::vector<std::vector<uint8_t>>& payloads) {
  std::vector<uint8_t> chain(keys.iv);
  for (size_t i = 0; i < recs.size(); i++) {
    auto wire = Wire(recs[i]);
    std::vector<uint8_t> pt;
    uint8_t type;
    std::string why;
    ASSERT_TRUE(ktls_test::DecryptRecord(s, keys, seq + i, wire.data(), wire.size(), &pt,
                                         &type, &why, &chain))
        << "record " << i << ": " << why;
    EXPECT_EQ(pt, payloads[i]);
  }
}

// kern.ipc.tls.tx_ready_bytes: a batch goes to TCP in parts as its records
// are encrypted, each part once it holds that many bytes, the rest at the
// end; 0 hands the batch over whole, as FreeBSD does.
TEST(KtlsWorker, BatchGoesToTcpEveryTxReadyBytes) {
  auto k = Boot(2, "kern.ipc.tls.tx_ready_bytes=2400");
  InstallFakeHooks(*k);
  for (int whole = 0; whole < 2; whole++) {
    if (whole) {
      int zero = 0;
      ASSERT_EQ(k->sysctl->sysctlbyname("kern.ipc.tls.tx_ready_bytes", nullptr, nullptr,
                                        &zero, sizeof(zero)),
                0);
    }
    for (const Suite& s : ktls_test::AllSuites()) {
      SCOPED_TRACE(std::string(s.name) + (whole ? " tx_ready_bytes=0" : " tx_ready_bytes=2400"));
      auto [tls, keys, seq, error] = RandomSession(*k, s, uk::KTLS_TX);
      ASSERT_EQ(error, 0);
      FakeSocket fs;
      // Five one-page records of 1,200 bytes: framed, any two are at least
      // 2,400 bytes and one is less.
      std::vector<std::vector<uint8_t>> payloads;
      std::vector<mbuf*> recs;
      mbuf* top = nullptr;
      mbuf** tail = &top;
      for (int r = 0; r < 5; r++) {
        payloads.push_back(ktls_test::RandomBytes(1200));
        *tail = MakeRecord(*k, payloads.back(), 0, r % 2 == 0);
        ASSERT_NE(*tail, nullptr);
        recs.push_back(*tail);
        tail = &(*tail)->m_next;
      }
      int cnt = 0;
      uk::ktls_frame(top, tls.get(), &cnt, TLS_RLTYPE_APP);
      uint64_t sb_seq = seq;
      uk::ktls_seq(&sb_seq, top);
      uk::ktls_enqueue(top, reinterpret_cast<uk::socket*>(&fs), cnt);
      WaitReles(&fs, 1);
      {
        uk::MutexLock l(&fs.mu);
        EXPECT_TRUE(fs.failed.empty());
        if (whole) {
          ASSERT_EQ(fs.ready.size(), 1u);
          EXPECT_EQ(fs.ready[0], std::make_pair(recs[0], 5));
        } else {
          ASSERT_EQ(fs.ready.size(), 3u);
          EXPECT_EQ(fs.ready[0], std::make_pair(recs[0], 2));
          EXPECT_EQ(fs.ready[1], std::make_pair(recs[2], 2));
          EXPECT_EQ(fs.ready[2], std::make_pair(recs[4], 1));
        }
      }
      ExpectRecordsDecrypt(s, keys, seq, recs, payloads);
      uk::m_freem(top);
      EXPECT_EQ(tls->refcount(), 1u);
    }
  }
  EXPECT_EQ(Counter(*k, "kern.ipc.tls.stats.failed_crypto"), 0u);
}

// The parts only while the worker has nothing else: a TLS 1.0 batch that
// waited for an earlier one is queued together with it, so the earlier one
// goes to TCP whole and the later, the last, in parts.
TEST(KtlsWorker, TxReadyBytesOnlyWhileNothingElseIsQueued) {
  auto k = Boot(1, "kern.ipc.tls.tx_ready_bytes=1");
  InstallFakeHooks(*k);
  const Suite s = ktls_test::CbcSuites()[0];
  auto [tls, keys, seq, error] = RandomSession(*k, s, uk::KTLS_TX);
  ASSERT_EQ(error, 0);
  FakeSocket fs;
  std::vector<std::vector<uint8_t>> payloads;
  std::vector<mbuf*> recs;
  mbuf* batch[2];
  int cnt[2] = {0, 0};
  uint64_t sb_seq = seq;
  for (int b = 0; b < 2; b++) {
    mbuf** tail = &batch[b];
    for (int r = 0; r < 3; r++) {
      payloads.push_back(ktls_test::RandomBytes(700 + 100 * r));
      *tail = MakeRecord(*k, payloads.back(), 0, true);
      ASSERT_NE(*tail, nullptr);
      recs.push_back(*tail);
      tail = &(*tail)->m_next;
    }
    uk::ktls_frame(batch[b], tls.get(), &cnt[b], TLS_RLTYPE_APP);
    uk::ktls_seq(&sb_seq, batch[b]);
  }
  // The later batch first: it waits in pending_records for the earlier.
  uk::ktls_enqueue(batch[1], reinterpret_cast<uk::socket*>(&fs), cnt[1]);
  uk::ktls_enqueue(batch[0], reinterpret_cast<uk::socket*>(&fs), cnt[0]);
  WaitReles(&fs, 2);
  {
    uk::MutexLock l(&fs.mu);
    EXPECT_TRUE(fs.failed.empty());
    ASSERT_EQ(fs.ready.size(), 4u);
    EXPECT_EQ(fs.ready[0], std::make_pair(recs[0], 3));
    for (int r = 0; r < 3; r++) EXPECT_EQ(fs.ready[1 + r], std::make_pair(recs[3 + r], 1));
  }
  ExpectRecordsDecrypt(s, keys, seq, recs, payloads);
  uk::m_freem(batch[0]);
  uk::m_freem(batch[1]);
}

TEST(KtlsWorker, Tls10BatchesWaitForEarlierRecords) {
  auto k = Boot(2);
  InstallFakeHooks(*k);
  const Suite s = ktls_test::CbcSuites()[0];
  auto [tls, keys, seq, error] = RandomSession(*k, s, uk::KTLS_TX);
  ASSERT_EQ(error, 0);
  FakeSocket fs;
  std::vector<uint8_t> p0 = ktls_test::RandomBytes(500), p1 = ktls_test::RandomBytes(700);
  mbuf* r0 = MakeRecord(*k, p0, 0, true);
  mbuf* r1 = MakeRecord(*k, p1, 0, true);
  int cnt0 = 0, cnt1 = 0;
  uk::ktls_frame(r0, tls.get(), &cnt0, TLS_RLTYPE_APP);
  uk::ktls_frame(r1, tls.get(), &cnt1, TLS_RLTYPE_APP);
  r0->m_epg_seqno = seq;
  r1->m_epg_seqno = seq + 1;
  // The later record arrives first (as sendfile I/O may complete) and waits.
  uk::ktls_enqueue(r1, reinterpret_cast<uk::socket*>(&fs), cnt1);
  EXPECT_EQ(Counter(*k, "kern.ipc.tls.stats.sw_tx_pending"), 1u);
  {
    uk::MutexLock l(&fs.mu);
    EXPECT_EQ(fs.reles, 0);
  }
  uk::ktls_enqueue(r0, reinterpret_cast<uk::socket*>(&fs), cnt0);
  WaitReles(&fs, 2);
  EXPECT_EQ(Counter(*k, "kern.ipc.tls.stats.sw_tx_pending"), 0u);
  {
    uk::MutexLock l(&fs.mu);
    ASSERT_EQ(fs.ready.size(), 2u);
    EXPECT_EQ(fs.ready[0].first, r0);
    EXPECT_EQ(fs.ready[1].first, r1);
  }
  std::vector<uint8_t> chain(keys.iv);
  int i = 0;
  for (mbuf* m : {r0, r1}) {
    auto wire = Wire(m);
    std::vector<uint8_t> pt;
    uint8_t type;
    std::string why;
    ASSERT_TRUE(ktls_test::DecryptRecord(s, keys, seq + i, wire.data(),
                                         wire.size(), &pt, &type, &why, &chain))
        << why;
    EXPECT_EQ(pt, i == 0 ? p0 : p1);
    i++;
    uk::m_freem(m);
  }
}

TEST(KtlsWorker, EncryptionFailureDropsConnectionWithEio) {
  // A small page pool: file-backed records need fresh pages to encrypt into.
  auto k = Boot(1, "vm.pages_max=8");
  InstallFakeHooks(*k);
  int error = 0;
  TlsKeys keys;
  auto tls = NewSession(*k, ktls_test::GcmSuites()[2], &keys, 0, uk::KTLS_TX,
                        &error);
  ASSERT_EQ(error, 0);
  FakeSocket fs;
  mbuf* m = MakeRecord(*k, ktls_test::RandomBytes(4 * 4096), 0, false);
  ASSERT_NE(m, nullptr);
  // Exhaust what is left of the pool.
  std::vector<uk::vm_page*> hog;
  while (uk::vm_page* pg = k->vm->alloc()) hog.push_back(pg);
  int cnt = 0;
  uk::ktls_frame(m, tls.get(), &cnt, TLS_RLTYPE_APP);
  m->m_epg_seqno = 0;
  uk::ktls_enqueue(m, reinterpret_cast<uk::socket*>(&fs), cnt);
  WaitReles(&fs, 1);
  {
    uk::MutexLock l(&fs.mu);
    EXPECT_TRUE(fs.ready.empty());
    ASSERT_EQ(fs.failed.size(), 1u);
    EXPECT_EQ(fs.failed[0], EIO);
  }
  EXPECT_EQ(Counter(*k, "kern.ipc.tls.stats.failed_crypto"), 1u);
  // Nothing was encrypted: the record still holds its plaintext pages.
  EXPECT_NE(m->m_epg_tls, nullptr);
  uk::m_freem(m);
  for (auto* pg : hog) uk::PagePool::release(pg);
}

// A batch whose first record went to TCP before the second failed: the
// connection is dropped with EIO and only the rest of the batch, from the
// record that failed, is freed as not ready.
TEST(KtlsWorker, FailureAfterPartOfABatchWentToTcp) {
  auto k = Boot(1, "vm.pages_max=8,kern.ipc.tls.tx_ready_bytes=1");
  InstallFakeHooks(*k);
  int error = 0;
  TlsKeys keys;
  auto tls = NewSession(*k, ktls_test::GcmSuites()[2], &keys, 0, uk::KTLS_TX, &error);
  ASSERT_EQ(error, 0);
  FakeSocket fs;
  // Two one-page file-backed records: each is encrypted into a fresh page.
  mbuf* r0 = MakeRecord(*k, ktls_test::RandomBytes(1000), 0, false);
  mbuf* r1 = MakeRecord(*k, ktls_test::RandomBytes(1000), 0, false);
  ASSERT_NE(r0, nullptr);
  ASSERT_NE(r1, nullptr);
  r0->m_next = r1;
  // The file keeps its page (as tmpfs does), so encrypting r0 frees none.
  uk::vm_page* r0_page = r0->m_epg_pa[0];
  uk::PagePool::hold(r0_page);
  std::vector<uk::vm_page*> hog;
  while (uk::vm_page* pg = k->vm->alloc()) hog.push_back(pg);
  ASSERT_FALSE(hog.empty());
  uk::PagePool::release(hog.back());  // room for the first record only
  hog.pop_back();
  int cnt = 0;
  uk::ktls_frame(r0, tls.get(), &cnt, TLS_RLTYPE_APP);
  uint64_t sb_seq = 0;
  uk::ktls_seq(&sb_seq, r0);
  uk::ktls_enqueue(r0, reinterpret_cast<uk::socket*>(&fs), cnt);
  WaitReles(&fs, 1);
  {
    uk::MutexLock l(&fs.mu);
    ASSERT_EQ(fs.ready.size(), 1u);
    EXPECT_EQ(fs.ready[0], std::make_pair(r0, 1));
    ASSERT_EQ(fs.failed.size(), 1u);
    EXPECT_EQ(fs.failed[0], EIO);
    EXPECT_EQ(fs.failed_left[0], std::make_pair(r1, 1));
  }
  EXPECT_EQ(Counter(*k, "kern.ipc.tls.stats.failed_crypto"), 1u);
  EXPECT_EQ(r0->m_epg_tls, nullptr);  // encrypted
  EXPECT_NE(r1->m_epg_tls, nullptr);  // still plaintext
  uk::m_freem(r0);
  uk::PagePool::release(r0_page);
  for (auto* pg : hog) uk::PagePool::release(pg);
}

}  // namespace
