// The OCF framework: check_csp, driver registration and selection, crid
// masks and the per-driver enable knob, statistics, callbacks and their
// threads, asynchronous dispatch and ordering, a busy device (ERESTART), and
// a driver going away under a session (EAGAIN, migration, resubmission).
#include <cerrno>
#include <atomic>
#include <condition_variable>
#include <mutex>
#include <random>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "sys/kern/kern_kthread.h"
#include "sys/opencrypto/crypto.h"
#include "sys/opencrypto/crypto_drv.h"
#include "sys/sys/module.h"
#include "tests/sys/opencrypto/ocf_test_util.h"

namespace uk_test {
namespace {

using uk::crypto_session_params;
using uk::crypto_session_t;

const Bytes kKey16(16, 0x11);
const Bytes kKey32(32, 0x22);

crypto_session_params GcmParams(const Bytes& key = kKey16) {
  crypto_session_params csp;
  csp.csp_mode = uk::CSP_MODE_AEAD;
  csp.csp_flags = uk::CSP_F_SEPARATE_OUTPUT | uk::CSP_F_SEPARATE_AAD;
  csp.csp_cipher_alg = CRYPTO_AES_NIST_GCM_16;
  csp.csp_cipher_key = key.data();
  csp.csp_cipher_klen = static_cast<int>(key.size());
  csp.csp_ivlen = 12;
  return csp;
}

// A driver that serves AES-CBC sessions at a chosen priority and does no
// arithmetic; for selection tests.
class FakeDriver final : public uk::crypto_engine {
 public:
  FakeDriver(const char* name, int prio) : name_(name), prio_(prio) {}
  const char* name() const override { return name_; }
  int probesession(const crypto_session_params& csp) override {
    return csp.csp_cipher_alg == CRYPTO_AES_CBC ? prio_ : EINVAL;
  }
  int newsession(uk::cryptoses*, const crypto_session_params&) override { return 0; }
  void freesession(uk::cryptoses*) override {}
  int compute(uk::cryptop*, uk::cryptoses*) override { return 0; }

 private:
  const char* name_;
  int prio_;
};

crypto_session_params CbcParams() {
  crypto_session_params csp;
  csp.csp_mode = uk::CSP_MODE_CIPHER;
  csp.csp_cipher_alg = CRYPTO_AES_CBC;
  csp.csp_cipher_key = kKey16.data();
  csp.csp_cipher_klen = 16;
  csp.csp_ivlen = 16;
  return csp;
}

// One GCM encryption of |pt| with separate AAD into |out| (ct ‖ tag).
void GcmRequest(uk::cryptop* crp, crypto_session_t ses, Bytes* buf, const Bytes& iv) {
  static const uint8_t aad[13] = {1, 2, 3};
  uk::crypto_initreq(crp, ses);
  crp->crp_op = uk::CRYPTO_OP_ENCRYPT | uk::CRYPTO_OP_COMPUTE_DIGEST;
  crp->crp_flags = uk::CRYPTO_F_IV_SEPARATE;
  memcpy(crp->crp_iv, iv.data(), 12);
  uk::crypto_use_buf(crp, buf->data(), static_cast<int>(buf->size()));
  crp->crp_aad = aad;
  crp->crp_aad_length = sizeof(aad);
  crp->crp_payload_length = static_cast<int>(buf->size()) - 16;
  crp->crp_digest_start = crp->crp_payload_length;
}

class CryptoTest : public ::testing::Test {
 protected:
  void SetUp() override {
    k_ = Boot();
    ASSERT_NE(k_, nullptr);
  }
  int Hid(const char* name) { return uk::crypto_find_driver(*k_, name); }
  std::unique_ptr<uk::kernel> k_;
};

TEST_F(CryptoTest, CheckCspRejectsMalformedParamsWithEinval) {
  std::vector<std::pair<const char*, crypto_session_params>> bad;
  auto add = [&](const char* what, auto mutate) {
    crypto_session_params c = GcmParams();
    mutate(c);
    bad.push_back({what, c});
  };
  add("unknown flag", [](auto& c) { c.csp_flags |= 0x100; });
  add("mode none", [](auto& c) { c.csp_mode = uk::CSP_MODE_NONE; });
  add("gcm iv 8", [](auto& c) { c.csp_ivlen = 8; });
  add("aead iv 0", [](auto& c) { c.csp_ivlen = 0; });
  add("aead with auth alg", [](auto& c) { c.csp_auth_alg = CRYPTO_SHA1_HMAC; });
  add("gcm mlen 17", [](auto& c) { c.csp_auth_mlen = 17; });
  add("aead no key length", [](auto& c) { c.csp_cipher_klen = 0; });
  add("negative ivlen", [](auto& c) { c.csp_ivlen = -1; });
  add("cipher alg in aead", [](auto& c) { c.csp_cipher_alg = CRYPTO_AES_CBC; });
  add("chacha iv 16", [](auto& c) {
    c.csp_cipher_alg = CRYPTO_CHACHA20_POLY1305;
    c.csp_ivlen = 16;
  });
  add("ccm iv 6", [](auto& c) {
    c.csp_cipher_alg = CRYPTO_AES_CCM_16;
    c.csp_ivlen = 6;
  });
  add("ccm odd mlen", [](auto& c) {
    c.csp_cipher_alg = CRYPTO_AES_CCM_16;
    c.csp_auth_mlen = 5;
  });
  add("cipher with separate aad", [](auto& c) {
    c = CbcParams();
    c.csp_flags = uk::CSP_F_SEPARATE_AAD;
  });
  add("cbc iv 17", [](auto& c) {
    c = CbcParams();
    c.csp_ivlen = 17;
  });
  add("cbc with mlen", [](auto& c) {
    c = CbcParams();
    c.csp_auth_mlen = 4;
  });
  add("hmac without key", [](auto& c) {
    c = crypto_session_params();
    c.csp_mode = uk::CSP_MODE_DIGEST;
    c.csp_auth_alg = CRYPTO_SHA2_256_HMAC;
  });
  add("hmac mlen too long", [](auto& c) {
    c = crypto_session_params();
    c.csp_mode = uk::CSP_MODE_DIGEST;
    c.csp_auth_alg = CRYPTO_SHA1_HMAC;
    c.csp_auth_key = kKey16.data();
    c.csp_auth_klen = 16;
    c.csp_auth_mlen = 21;
  });
  add("plain hash with key", [](auto& c) {
    c = crypto_session_params();
    c.csp_mode = uk::CSP_MODE_DIGEST;
    c.csp_auth_alg = CRYPTO_SHA2_256;
    c.csp_auth_key = kKey16.data();
    c.csp_auth_klen = 16;
  });
  add("key pointer without length", [](auto& c) {
    c = CbcParams();
    c.csp_cipher_klen = 0;
  });
  for (auto& [what, csp] : bad) {
    crypto_session_t ses = nullptr;
    EXPECT_EQ(uk::crypto_newsession(*k_, &ses, csp,
                                    uk::CRYPTO_FLAG_HARDWARE | uk::CRYPTO_FLAG_SOFTWARE),
              EINVAL)
        << what;
    EXPECT_EQ(ses, nullptr);
  }
}

TEST_F(CryptoTest, NoDriverForAValidSessionGivesEopnotsupp) {
  crypto_session_params csp;
  csp.csp_mode = uk::CSP_MODE_DIGEST;
  csp.csp_auth_alg = CRYPTO_SHA2_256;  // plain hash: valid, nobody serves it
  crypto_session_t ses;
  EXPECT_EQ(uk::crypto_newsession(*k_, &ses, csp,
                                  uk::CRYPTO_FLAG_HARDWARE | uk::CRYPTO_FLAG_SOFTWARE),
            EOPNOTSUPP);
  // ipsecmb has no SM4; asking for it by id is EOPNOTSUPP too.
  crypto_session_params sm4 = GcmParams();
  sm4.csp_cipher_alg = CRYPTO_SM4_GCM_16;
  EXPECT_EQ(uk::crypto_newsession(*k_, &ses, sm4, Hid("ipsecmb")), EOPNOTSUPP);
  // An id nobody has.
  EXPECT_EQ(uk::crypto_newsession(*k_, &ses, GcmParams(), 4242), EOPNOTSUPP);
  // Only hardware asked for, and no hardware driver loaded.
  EXPECT_EQ(uk::crypto_newsession(*k_, &ses, GcmParams(), uk::CRYPTO_FLAG_HARDWARE),
            EOPNOTSUPP);
}

TEST_F(CryptoTest, SelectionPrefersHardwareThenAcceleratedThenSoftware) {
  const int any = uk::CRYPTO_FLAG_HARDWARE | uk::CRYPTO_FLAG_SOFTWARE;
  crypto_session_t ses;
  ASSERT_EQ(uk::crypto_newsession(*k_, &ses, GcmParams(), any), 0);
  EXPECT_STREQ(uk::crypto_ses2name(ses), "ipsecmb");
  EXPECT_TRUE(uk::CRYPTO_SESS_SYNC(ses));
  EXPECT_NE(uk::crypto_ses2caps(ses) & uk::CRYPTOCAP_F_ACCEL_SOFTWARE, 0);
  uk::crypto_freesession(ses);

  // SM4 only ossl serves.
  crypto_session_params sm4 = GcmParams();
  sm4.csp_cipher_alg = CRYPTO_SM4_GCM_16;
  ASSERT_EQ(uk::crypto_newsession(*k_, &ses, sm4, any), 0);
  EXPECT_STREQ(uk::crypto_ses2name(ses), "ossl");
  uk::crypto_freesession(ses);

  // A hardware driver wins over both.
  ASSERT_EQ(Kldload(*k_, "ccr_sim"), 0);
  ASSERT_EQ(uk::crypto_newsession(*k_, &ses, GcmParams(), any), 0);
  EXPECT_STREQ(uk::crypto_ses2name(ses), "ccr_sim");
  EXPECT_FALSE(uk::CRYPTO_SESS_SYNC(ses));
  uk::crypto_freesession(ses);
  // ...unless the crid asks for software only.
  ASSERT_EQ(uk::crypto_newsession(*k_, &ses, GcmParams(), uk::CRYPTO_FLAG_SOFTWARE), 0);
  EXPECT_STREQ(uk::crypto_ses2name(ses), "ipsecmb");
  uk::crypto_freesession(ses);
  // ...or names a driver.
  ASSERT_EQ(uk::crypto_newsession(*k_, &ses, GcmParams(), Hid("ossl")), 0);
  EXPECT_STREQ(uk::crypto_ses2name(ses), "ossl");
  EXPECT_EQ(uk::crypto_ses2hid(ses), Hid("ossl"));
  uk::crypto_freesession(ses);
}

TEST_F(CryptoTest, EnableSysctlTakesADriverOutOfSelection) {
  const int any = uk::CRYPTO_FLAG_HARDWARE | uk::CRYPTO_FLAG_SOFTWARE;
  ASSERT_EQ(SetSysctlInt(*k_, "kern.crypto.ipsecmb.enable", 0), 0);
  crypto_session_t ses;
  ASSERT_EQ(uk::crypto_newsession(*k_, &ses, GcmParams(), any), 0);
  EXPECT_STREQ(uk::crypto_ses2name(ses), "ossl");
  uk::crypto_freesession(ses);
  ASSERT_EQ(SetSysctlInt(*k_, "kern.crypto.ipsecmb.enable", 1), 0);
  ASSERT_EQ(uk::crypto_newsession(*k_, &ses, GcmParams(), any), 0);
  EXPECT_STREQ(uk::crypto_ses2name(ses), "ipsecmb");
  uk::crypto_freesession(ses);
}

TEST(CryptoBoot, EnableTunableDisablesADriverFromBoot) {
  auto k = Boot("kern.crypto.ipsecmb.enable=0");
  ASSERT_NE(k, nullptr);
  EXPECT_EQ(SysctlInt(*k, "kern.crypto.ipsecmb.enable"), 0);
  crypto_session_t ses;
  ASSERT_EQ(uk::crypto_newsession(*k, &ses, GcmParams(),
                                  uk::CRYPTO_FLAG_HARDWARE | uk::CRYPTO_FLAG_SOFTWARE),
            0);
  EXPECT_STREQ(uk::crypto_ses2name(ses), "ossl");
  uk::crypto_freesession(ses);
}

// FreeBSD also accepts a 64-bit ChaCha20-Poly1305 nonce: the same stream
// as the 96-bit nonce with four leading zero bytes.
TEST_F(CryptoTest, ChachaEightByteNonceIsTheTwelveByteOneZeroPrefixed) {
  Bytes key(32, 0x42), n8 = H("0102030405060708");
  Bytes n12 = Cat(Bytes(4, 0), n8);
  for (const char* drv : {"ipsecmb", "ossl"}) {
    SCOPED_TRACE(drv);
    Bytes out[2];
    for (int i = 0; i < 2; i++) {
      crypto_session_params csp = GcmParams(key);
      csp.csp_cipher_alg = CRYPTO_CHACHA20_POLY1305;
      csp.csp_ivlen = i == 0 ? 8 : 12;
      crypto_session_t ses;
      ASSERT_EQ(uk::crypto_newsession(*k_, &ses, csp, Hid(drv)), 0);
      out[i] = Bytes(300 + 16, 0x33);
      uk::cryptop crp;
      GcmRequest(&crp, ses, &out[i], Bytes(12, 0));
      const Bytes& n = i == 0 ? n8 : n12;
      memcpy(crp.crp_iv, n.data(), n.size());
      ASSERT_EQ(RunReq(&crp), 0);
      uk::crypto_freesession(ses);
    }
    EXPECT_EQ(Hex(out[0]), Hex(out[1]));
  }
}

TEST(CryptoBoot, NumWorkersIsABootTunable) {
  auto k = Boot("kern.crypto.num_workers=3");
  ASSERT_NE(k, nullptr);
  EXPECT_EQ(SysctlInt(*k, "kern.crypto.num_workers"), 3);
  // The workers are kernel threads, joined at halt.
  int ret = 0, dev = 0;
  ASSERT_EQ(Kldload(*k, "ccr_sim"), 0);
  for (const std::string& n : k->kthreads->names()) {
    ret += n.rfind("crypto_ret", 0) == 0;
    dev += n.rfind("ccr_sim0_", 0) == 0;
  }
  EXPECT_EQ(ret, 3);
  EXPECT_EQ(dev, 1);
  ASSERT_EQ(Kldunload(*k, "ccr_sim"), 0);
  dev = 0;
  for (const std::string& n : k->kthreads->names()) dev += n.rfind("ccr_sim0_", 0) == 0;
  EXPECT_EQ(dev, 0);
  EXPECT_EQ(SetSysctlInt(*k, "kern.crypto.num_workers", 5), EPERM);
  uk::boot_params bp;
  bp.tunables = "kern.crypto.num_workers=0";
  int err = 0;
  EXPECT_EQ(uk::kernel::boot(bp, &err), nullptr);
  EXPECT_EQ(err, EINVAL);
}

TEST_F(CryptoTest, TiesGoToTheDriverWithFewerSessions) {
  int a, b;
  ASSERT_EQ(uk::crypto_get_driverid(*k_, std::make_unique<FakeDriver>("fake_a", -150),
                                    uk::CRYPTOCAP_F_SOFTWARE | uk::CRYPTOCAP_F_SYNC, &a),
            0);
  ASSERT_EQ(uk::crypto_get_driverid(*k_, std::make_unique<FakeDriver>("fake_b", -150),
                                    uk::CRYPTOCAP_F_SOFTWARE | uk::CRYPTOCAP_F_SYNC, &b),
            0);
  const int any = uk::CRYPTO_FLAG_HARDWARE | uk::CRYPTO_FLAG_SOFTWARE;
  std::vector<crypto_session_t> sessions(6);
  for (auto& s : sessions) ASSERT_EQ(uk::crypto_newsession(*k_, &s, CbcParams(), any), 0);
  int on_a = 0;
  for (auto* s : sessions) {
    EXPECT_TRUE(uk::crypto_ses2hid(s) == a || uk::crypto_ses2hid(s) == b);
    on_a += uk::crypto_ses2hid(s) == a;
  }
  EXPECT_EQ(on_a, 3);
  EXPECT_EQ(SysctlInt(*k_, "kern.crypto.fake_a.sessions"), 3);
  EXPECT_EQ(SysctlInt(*k_, "kern.crypto.fake_b.sessions"), 3);
  // Free two of a's: the next two go to a.
  int freed = 0;
  for (auto& s : sessions)
    if (freed < 2 && uk::crypto_ses2hid(s) == a) {
      uk::crypto_freesession(s);
      s = nullptr;
      freed++;
    }
  for (auto& s : sessions)
    if (s == nullptr) {
      ASSERT_EQ(uk::crypto_newsession(*k_, &s, CbcParams(), any), 0);
      EXPECT_EQ(uk::crypto_ses2hid(s), a);
    }
  for (auto* s : sessions) uk::crypto_freesession(s);
  EXPECT_EQ(SysctlInt(*k_, "kern.crypto.fake_a.sessions"), 0);
  EXPECT_EQ(uk::crypto_unregister_all(*k_, a), 0);
  EXPECT_EQ(uk::crypto_unregister_all(*k_, b), 0);
  EXPECT_EQ(uk::crypto_unregister_all(*k_, b), ENOENT);
}

TEST_F(CryptoTest, RegistrationNeedsAKindAndAUniqueName) {
  int id;
  EXPECT_EQ(uk::crypto_get_driverid(*k_, std::make_unique<FakeDriver>("fake", -500),
                                    uk::CRYPTOCAP_F_SYNC, &id),
            EINVAL);
  EXPECT_EQ(uk::crypto_get_driverid(*k_, std::make_unique<FakeDriver>("ossl", -500),
                                    uk::CRYPTOCAP_F_SOFTWARE, &id),
            EEXIST);
  // Registering a loaded driver again.
  EXPECT_EQ(uk::ossl_modevent(*k_, uk::MOD_LOAD, nullptr), EEXIST);
  EXPECT_EQ(Kldload(*k_, "ossl"), EEXIST);
}

TEST_F(CryptoTest, PerDriverCountersShowWhoServedWhat) {
  const int any = uk::CRYPTO_FLAG_HARDWARE | uk::CRYPTO_FLAG_SOFTWARE;
  uint64_t req0 = SysctlU64(*k_, "kern.crypto.ipsecmb.requests");
  uint64_t ossl0 = SysctlU64(*k_, "kern.crypto.ossl.requests");
  crypto_session_t ses;
  ASSERT_EQ(uk::crypto_newsession(*k_, &ses, GcmParams(), any), 0);
  EXPECT_EQ(SysctlInt(*k_, "kern.crypto.ipsecmb.sessions"), 1);
  EXPECT_EQ(SysctlU64(*k_, "kern.crypto.ipsecmb.sessions_total"), 1u);
  for (int i = 0; i < 5; i++) {
    Bytes buf(1000 + 16, 7);
    uk::cryptop crp;
    GcmRequest(&crp, ses, &buf, Bytes(12, i));
    ASSERT_EQ(RunReq(&crp), 0);
  }
  // A failed verification counts as an error of the serving driver.
  Bytes buf(100 + 16, 0);
  uk::cryptop crp;
  GcmRequest(&crp, ses, &buf, Bytes(12, 0));
  crp.crp_op = uk::CRYPTO_OP_DECRYPT | uk::CRYPTO_OP_VERIFY_DIGEST;
  EXPECT_EQ(RunReq(&crp), EBADMSG);
  EXPECT_EQ(SysctlU64(*k_, "kern.crypto.ipsecmb.requests") - req0, 6u);
  EXPECT_EQ(SysctlU64(*k_, "kern.crypto.ipsecmb.bytes"), 5 * 1000u + 100u);
  EXPECT_EQ(SysctlU64(*k_, "kern.crypto.ipsecmb.errors"), 1u);
  EXPECT_EQ(SysctlU64(*k_, "kern.crypto.ossl.requests"), ossl0);
  EXPECT_EQ(SysctlU64(*k_, "kern.crypto.stats.errors"), 1u);
  EXPECT_EQ(SysctlU64(*k_, "kern.crypto.stats.cb_queued"), 0u);
  uk::crypto_freesession(ses);
  EXPECT_EQ(SysctlInt(*k_, "kern.crypto.ipsecmb.sessions"), 0);
}

TEST_F(CryptoTest, CallbacksRunInlineOnlyWhenAskedTo) {
  crypto_session_t ses;
  ASSERT_EQ(uk::crypto_newsession(*k_, &ses, GcmParams(), Hid("ipsecmb")), 0);
  struct Seen {
    std::mutex mu;
    std::condition_variable cv;
    std::thread::id tid;
    bool done = false;
  };
  for (int flags : {0, int(uk::CRYPTO_F_CBIMM), int(uk::CRYPTO_F_CBIFSYNC)}) {
    Seen seen;
    Bytes buf(64 + 16, 1);
    uk::cryptop crp;
    GcmRequest(&crp, ses, &buf, Bytes(12, 3));
    crp.crp_flags |= flags;
    crp.crp_opaque = &seen;
    crp.crp_callback = [](uk::cryptop* c) {
      auto* s = static_cast<Seen*>(c->crp_opaque);
      std::lock_guard<std::mutex> l(s->mu);
      s->tid = std::this_thread::get_id();
      s->done = true;
      s->cv.notify_all();
      return 0;
    };
    ASSERT_EQ(uk::crypto_dispatch(&crp), 0);
    std::unique_lock<std::mutex> l(seen.mu);
    ASSERT_TRUE(seen.cv.wait_for(l, std::chrono::seconds(60), [&] { return seen.done; }));
    // FreeBSD: without CBIMM (or CBIFSYNC on a synchronous session) the
    // callback runs on a crypto return thread, not in the dispatcher.
    if (flags == 0)
      EXPECT_NE(seen.tid, std::this_thread::get_id());
    else
      EXPECT_EQ(seen.tid, std::this_thread::get_id());
    EXPECT_NE(crp.crp_flags & uk::CRYPTO_F_DONE, 0);
  }
  uk::crypto_freesession(ses);
}

// Ordered asynchronous requests complete in submission order even on a
// device with several engines and on synchronous drivers run by workers.
void OrderedRun(uk::kernel& k, crypto_session_t ses, int n, bool batch) {
  struct Log {
    std::mutex mu;
    std::condition_variable cv;
    std::vector<int> order;
  } log;
  std::vector<uk::cryptop> crps(n);
  std::vector<Bytes> bufs(n, Bytes(512 + 16, 9));
  std::vector<int> ids(n);
  std::vector<uk::cryptop*> v;
  for (int i = 0; i < n; i++) {
    GcmRequest(&crps[i], ses, &bufs[i], Bytes(12, static_cast<uint8_t>(i)));
    ids[i] = i;
    crps[i].crp_opaque = &log;
    crps[i].crp_seq = 0;
    crps[i].crp_callback = [](uk::cryptop* c) {
      auto* l = static_cast<Log*>(c->crp_opaque);
      std::lock_guard<std::mutex> g(l->mu);
      EXPECT_EQ(c->crp_etype, 0);
      l->order.push_back(static_cast<int>(c->crp_iv[0]));
      l->cv.notify_all();
      return 0;
    };
    v.push_back(&crps[i]);
  }
  if (batch) {
    uk::crypto_dispatch_batch(v, uk::CRYPTO_ASYNC_ORDERED);
  } else {
    for (auto* c : v) ASSERT_EQ(uk::crypto_dispatch_async(c, uk::CRYPTO_ASYNC_ORDERED), 0);
  }
  {
    // Sleeps, not spins: a thread spinning on the lock can starve the
    // completion threads that need it (seen under TSan).
    std::unique_lock<std::mutex> g(log.mu);
    ASSERT_TRUE(log.cv.wait_for(g, std::chrono::seconds(60), [&] {
      return static_cast<int>(log.order.size()) == n;
    })) << log.order.size() << " of " << n << " completed";
  }
  std::vector<int> want(n);
  for (int i = 0; i < n; i++) want[i] = i;
  EXPECT_EQ(log.order, want);
  (void)k;
}

// A device that refuses its first |refuse| requests (ERESTART) and
// announces room again (crypto_unblock) once all of them are inside
// process(), before any refusal is back in crypto_invoke: the windows in
// which requests used to be lost (an unblock spent before the refusal was
// queued; one unblock for several refusals), made deterministic.
class RefusingDevice final : public uk::crypto_engine {
 public:
  RefusingDevice(uk::kernel& k, int refuse) : k_(k), refuse_(refuse) {}
  const char* name() const override { return "refusing"; }
  int probesession(const crypto_session_params& csp) override {
    return csp.csp_cipher_alg == CRYPTO_AES_CBC ? uk::CRYPTODEV_PROBE_HARDWARE : EINVAL;
  }
  int newsession(uk::cryptoses*, const crypto_session_params&) override { return 0; }
  void freesession(uk::cryptoses*) override {}
  int compute(uk::cryptop*, uk::cryptoses*) override { return 0; }
  int process(uk::cryptop* crp, int hint) override {
    std::unique_lock<std::mutex> l(mu_);
    if (calls_++ >= refuse_) {
      l.unlock();
      return crypto_engine::process(crp, hint);
    }
    if (++inside_ == refuse_) {
      uk::crypto_unblock(k_, hid);
      unblocked_ = true;
      cv_.notify_all();
    }
    cv_.wait(l, [&] { return unblocked_; });
    return ERESTART;
  }
  int hid = -1;

 private:
  uk::kernel& k_;
  const int refuse_;
  std::mutex mu_;
  std::condition_variable cv_;
  int calls_ = 0, inside_ = 0;
  bool unblocked_ = false;
};

// |n| requests submitted at once from |n| threads; the first |n| calls
// into the device are refused.
void RunRefusals(int n) {
  auto k = Boot();
  auto dev = std::make_unique<RefusingDevice>(*k, n);
  RefusingDevice* d = dev.get();
  ASSERT_EQ(uk::crypto_get_driverid(*k, std::move(dev), uk::CRYPTOCAP_F_HARDWARE, &d->hid), 0);
  crypto_session_t ses;
  ASSERT_EQ(uk::crypto_newsession(*k, &ses, CbcParams(), uk::CRYPTO_FLAG_HARDWARE), 0);
  ASSERT_EQ(uk::crypto_ses2hid(ses), d->hid);
  struct Done {
    std::mutex mu;
    std::condition_variable cv;
    int n = 0;
  } done;
  std::vector<uk::cryptop> crps(n);
  std::vector<Bytes> bufs(n, Bytes(64, 1));
  for (int i = 0; i < n; i++) {
    uk::crypto_initreq(&crps[i], ses);
    crps[i].crp_op = uk::CRYPTO_OP_ENCRYPT;
    uk::crypto_use_buf(&crps[i], bufs[i].data(), 64);
    crps[i].crp_payload_length = 64;
    crps[i].crp_flags = uk::CRYPTO_F_IV_SEPARATE;
    crps[i].crp_opaque = &done;
    crps[i].crp_callback = [](uk::cryptop* c) {
      auto* d = static_cast<Done*>(c->crp_opaque);
      std::lock_guard<std::mutex> g(d->mu);
      d->n++;
      d->cv.notify_all();
      return 0;
    };
  }
  std::vector<std::thread> submitters;
  for (int i = 0; i < n; i++)
    submitters.emplace_back([&, i] { EXPECT_EQ(uk::crypto_dispatch_async(&crps[i], 0), 0); });
  for (auto& t : submitters) t.join();
  {
    std::unique_lock<std::mutex> g(done.mu);
    EXPECT_TRUE(done.cv.wait_for(g, std::chrono::seconds(30), [&] { return done.n == n; }))
        << done.n << " of " << n << " requests completed";
  }
  EXPECT_EQ(SysctlU64(*k, "kern.crypto.refusing.blocked"), static_cast<uint64_t>(n));
  uk::crypto_freesession(ses);
}

TEST(CryptoAsync, AnUnblockBeforeTheRefusalIsQueuedIsNotLost) { RunRefusals(1); }
TEST(CryptoAsync, OneUnblockServesEveryRefusalBeforeIt) { RunRefusals(3); }

TEST(CryptoAsync, OrderedRequestsCompleteInOrderOnAMultiEngineDevice) {
  auto k = Boot("dev.ccr_sim.0.threads=4,dev.ccr_sim.0.latency_us=50");
  ASSERT_NE(k, nullptr);
  ASSERT_EQ(Kldload(*k, "ccr_sim"), 0);
  EXPECT_EQ(SysctlInt(*k, "dev.ccr_sim.0.threads"), 4);
  crypto_session_t ses;
  ASSERT_EQ(uk::crypto_newsession(*k, &ses, GcmParams(), uk::CRYPTO_FLAG_HARDWARE), 0);
  EXPECT_STREQ(uk::crypto_ses2name(ses), "ccr_sim");
  OrderedRun(*k, ses, 100, false);
  OrderedRun(*k, ses, 50, true);
  EXPECT_EQ(SysctlU64(*k, "dev.ccr_sim.0.stats.completed"), 150u);
  uk::crypto_freesession(ses);
}

TEST(CryptoAsync, OrderedRequestsOnASyncDriverRunOnWorkers) {
  auto k = Boot();
  crypto_session_t ses;
  ASSERT_EQ(uk::crypto_newsession(*k, &ses, GcmParams(),
                                  uk::crypto_find_driver(*k, "ipsecmb")),
            0);
  OrderedRun(*k, ses, 100, false);
  EXPECT_EQ(SysctlU64(*k, "kern.crypto.stats.dispatch_async"), 100u);
  uk::crypto_freesession(ses);
}

TEST(CryptoAsync, AsyncDeviceResultsEqualSyncDriverResults) {
  auto k = Boot("dev.ccr_sim.0.threads=2");
  ASSERT_EQ(Kldload(*k, "ccr_sim"), 0);
  crypto_session_t hw, sw;
  ASSERT_EQ(uk::crypto_newsession(*k, &hw, GcmParams(kKey32), uk::CRYPTO_FLAG_HARDWARE), 0);
  ASSERT_EQ(uk::crypto_newsession(*k, &sw, GcmParams(kKey32), uk::CRYPTO_FLAG_SOFTWARE), 0);
  std::mt19937 rng(5);
  for (int i = 0; i < 20; i++) {
    Bytes pt(1 + rng() % 16384);
    for (auto& c : pt) c = static_cast<uint8_t>(rng());
    Bytes a = Cat(pt, Bytes(16, 0)), b = a;
    uk::cryptop c1, c2;
    GcmRequest(&c1, hw, &a, Bytes(12, static_cast<uint8_t>(i)));
    GcmRequest(&c2, sw, &b, Bytes(12, static_cast<uint8_t>(i)));
    ASSERT_EQ(RunReq(&c1), 0);
    ASSERT_EQ(RunReq(&c2), 0);
    EXPECT_EQ(Hex(a), Hex(b));
  }
  uk::crypto_freesession(hw);
  uk::crypto_freesession(sw);
}

TEST(CryptoAsync, AFullDeviceQueueRestartsRequestsInsteadOfLosingThem) {
  auto k = Boot("dev.ccr_sim.0.queue_depth=1,dev.ccr_sim.0.latency_us=2000");
  ASSERT_EQ(Kldload(*k, "ccr_sim"), 0);
  crypto_session_t ses;
  ASSERT_EQ(uk::crypto_newsession(*k, &ses, GcmParams(), uk::CRYPTO_FLAG_HARDWARE), 0);
  const int n = 12;
  std::vector<uk::cryptop> crps(n);
  std::vector<Bytes> bufs(n, Bytes(256 + 16, 4));
  std::atomic<int> done{0};
  for (int i = 0; i < n; i++) {
    GcmRequest(&crps[i], ses, &bufs[i], Bytes(12, 1));
    crps[i].crp_flags |= uk::CRYPTO_F_CBIMM;
    crps[i].crp_opaque = &done;
    crps[i].crp_callback = [](uk::cryptop* c) {
      EXPECT_EQ(c->crp_etype, 0);
      static_cast<std::atomic<int>*>(c->crp_opaque)->fetch_add(1);
      return 0;
    };
    ASSERT_EQ(uk::crypto_dispatch(&crps[i]), 0);
  }
  while (done.load() < n) std::this_thread::yield();
  for (int i = 1; i < n; i++) EXPECT_EQ(Hex(bufs[i]), Hex(bufs[0]));
  // One slot and 2 ms per request: the device refused some and the
  // framework resubmitted them after crypto_unblock().
  EXPECT_GT(SysctlU64(*k, "dev.ccr_sim.0.stats.queue_full"), 0u);
  EXPECT_GT(SysctlU64(*k, "kern.crypto.ccr_sim.blocked"), 0u);
  EXPECT_EQ(SysctlU64(*k, "dev.ccr_sim.0.stats.completed"), static_cast<uint64_t>(n));
  uk::crypto_freesession(ses);
}

TEST(CryptoAsync, DriverGoingAwayGivesEagainAndTheSessionMigrates) {
  auto k = Boot();
  ASSERT_EQ(Kldload(*k, "ccr_sim"), 0);
  crypto_session_t ses;
  ASSERT_EQ(uk::crypto_newsession(*k, &ses, GcmParams(),
                                  uk::CRYPTO_FLAG_HARDWARE | uk::CRYPTO_FLAG_SOFTWARE),
            0);
  ASSERT_STREQ(uk::crypto_ses2name(ses), "ccr_sim");
  // The module refuses to unload while it has sessions.
  EXPECT_EQ(Kldunload(*k, "ccr_sim"), EBUSY);

  Bytes ref(300 + 16, 5);
  {
    uk::cryptop crp;
    GcmRequest(&crp, ses, &ref, Bytes(12, 8));
    ASSERT_EQ(RunReq(&crp, 0), 0);
  }
  // The device is detached under the session (crypto_unregister_all).
  ASSERT_EQ(uk::crypto_unregister_all(*k, uk::crypto_find_driver(*k, "ccr_sim")), 0);
  EXPECT_LT(uk::crypto_find_driver(*k, "ccr_sim"), 0);

  Bytes buf(300 + 16, 5);
  uk::cryptop crp;
  GcmRequest(&crp, ses, &buf, Bytes(12, 8));
  EXPECT_EQ(RunReq(&crp, 0), EAGAIN);  // no resubmission yet
  EXPECT_STREQ(uk::crypto_ses2name(ses), "ipsecmb");
  EXPECT_EQ(SysctlU64(*k, "kern.crypto.stats.migrations"), 1u);
  EXPECT_EQ(SysctlU64(*k, "kern.crypto.stats.eagain"), 1u);
  // The caller resubmits the same request, as ktls_ocf does.
  crp.crp_flags &= ~uk::CRYPTO_F_DONE;
  EXPECT_EQ(RunReq(&crp, 0), 0);
  EXPECT_EQ(Hex(buf), Hex(ref));
  uk::crypto_freesession(ses);
  EXPECT_EQ(SysctlInt(*k, "kern.crypto.ipsecmb.sessions"), 0);
}

TEST(CryptoModule, UnloadWithoutSessionsAndReload) {
  auto k = Boot();
  EXPECT_TRUE(uk::module_loaded(*k, "ossl"));
  EXPECT_EQ(Kldunload(*k, "ossl"), 0);
  EXPECT_LT(uk::crypto_find_driver(*k, "ossl"), 0);
  size_t len = 0;
  EXPECT_EQ(k->sysctl->sysctlbyname("kern.crypto.ossl.requests", nullptr, &len, nullptr, 0),
            ENOENT);
  crypto_session_params sm4 = GcmParams();
  sm4.csp_cipher_alg = CRYPTO_SM4_GCM_16;
  crypto_session_t ses;
  EXPECT_EQ(uk::crypto_newsession(*k, &ses, sm4,
                                  uk::CRYPTO_FLAG_HARDWARE | uk::CRYPTO_FLAG_SOFTWARE),
            EOPNOTSUPP);
  EXPECT_EQ(Kldload(*k, "ossl"), 0);
  ASSERT_EQ(uk::crypto_newsession(*k, &ses, sm4,
                                  uk::CRYPTO_FLAG_HARDWARE | uk::CRYPTO_FLAG_SOFTWARE),
            0);
  // A session is a user of the driver's module.
  EXPECT_EQ(Kldunload(*k, "ossl"), EBUSY);
  EXPECT_TRUE(uk::module_loaded(*k, "ossl"));
  uk::crypto_freesession(ses);
  EXPECT_EQ(Kldunload(*k, "ossl"), 0);
  EXPECT_FALSE(uk::module_loaded(*k, "ossl"));
}

TEST(CryptoModule, DefaultModulesAreTheSoftwareDrivers) {
  auto k = Boot();
  EXPECT_TRUE(uk::module_loaded(*k, "ipsecmb"));
  EXPECT_TRUE(uk::module_loaded(*k, "ossl"));
  EXPECT_FALSE(uk::module_loaded(*k, "ccr_sim"));
  EXPECT_EQ(Kldload(*k, "ccr_sim"), 0);
  EXPECT_GE(uk::crypto_find_driver(*k, "ccr_sim"), 0);
  EXPECT_EQ(Kldload(*k, "ccr_sim"), EEXIST);
  EXPECT_EQ(Kldunload(*k, "ccr_sim"), 0);
  EXPECT_LT(uk::crypto_find_driver(*k, "ccr_sim"), 0);
  // A kernel booted with no modules has no crypto drivers.
  uk::boot_params bp;
  bp.default_modules = false;
  bp.modules = "";
  int err = 0;
  auto bare = uk::kernel::boot(bp, &err);
  ASSERT_NE(bare, nullptr);
  EXPECT_LT(uk::crypto_find_driver(*bare, "ipsecmb"), 0);
  crypto_session_t ses;
  EXPECT_EQ(uk::crypto_newsession(*bare, &ses, GcmParams(),
                                  uk::CRYPTO_FLAG_HARDWARE | uk::CRYPTO_FLAG_SOFTWARE),
            EOPNOTSUPP);
}

TEST(CryptoAsync, ManyThreadsShareOneSessionOnEveryDriver) {
  auto k = Boot();
  ASSERT_EQ(Kldload(*k, "ccr_sim"), 0);
  for (const char* drv : {"ipsecmb", "ossl", "ccr_sim"}) {
    SCOPED_TRACE(drv);
    for (auto csp : {GcmParams(), CbcParams()}) {
      crypto_session_t ses;
      csp.csp_flags &= ~uk::CSP_F_SEPARATE_AAD;
      ASSERT_EQ(uk::crypto_newsession(*k, &ses, csp, uk::crypto_find_driver(*k, drv)), 0);
      const bool gcm = csp.csp_mode == uk::CSP_MODE_AEAD;
      auto one = [&](Bytes* b) {
        uk::cryptop crp;
        uk::crypto_initreq(&crp, ses);
        crp.crp_op = uk::CRYPTO_OP_ENCRYPT;
        crp.crp_flags = uk::CRYPTO_F_IV_SEPARATE;
        uk::crypto_use_buf(&crp, b->data(), static_cast<int>(b->size()));
        crp.crp_payload_length = static_cast<int>(b->size()) - (gcm ? 16 : 0);
        crp.crp_digest_start = crp.crp_payload_length;
        return RunReq(&crp);
      };
      Bytes ref(4096 + 16, 3);
      ASSERT_EQ(one(&ref), 0);
      std::vector<std::thread> ts;
      std::atomic<int> bad{0};
      for (int t = 0; t < 4; t++)
        ts.emplace_back([&] {
          for (int i = 0; i < 25; i++) {
            Bytes b(4096 + 16, 3);
            if (one(&b) != 0 || b != ref) bad.fetch_add(1);
          }
        });
      for (auto& t : ts) t.join();
      EXPECT_EQ(bad.load(), 0);
      uk::crypto_freesession(ses);
    }
  }
}

}  // namespace
}  // namespace uk_test
