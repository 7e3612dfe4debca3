// ktls_session_list and ktls_session_set_tx_mode: the sessions of a kernel
// as ktlsctl sees them, with their ids, addresses, suites and counters.
#include <arpa/inet.h>

#include <cerrno>
#include <cstring>
#include <vector>

#include "gtest/gtest.h"
#include "lib/libuk/uk.h"
#include "sys/kern/kern_proc.h"
#include "sys/kern/uipc_ktls.h"
#include "tests/sys/kern/ktls_test_util.h"

namespace {

using ktls_test::Suite;
using ktls_test::TlsKeys;

class KtlsList : public ::testing::Test {
 protected:
  void SetUp() override {
    uk_boot_config cfg{};
    cfg.ncpus = 1;
    k_ = uk_boot(&cfg);
    ASSERT_NE(k_, nullptr);
    p_ = uk_proc_create(k_, "list");
  }
  void TearDown() override { EXPECT_EQ(uk_halt(k_), 0); }

  uk::kernel& K() { return *p_->k; }

  void Send(int fd, size_t n) {
    std::vector<uint8_t> b(n, 'a');
    size_t off = 0;
    while (off < n) {
      ssize_t w = uk_send(p_, fd, b.data() + off, n - off, 0);
      ASSERT_GT(w, 0) << strerror(errno);
      off += w;
    }
  }
  size_t Recv(int fd, size_t n) {
    std::vector<uint8_t> b(65536);
    size_t got = 0;
    while (got < n) {
      ssize_t r = uk_recv(p_, fd, b.data(), b.size(), 0);
      if (r <= 0) break;
      got += r;
    }
    return got;
  }

  uk_kernel* k_ = nullptr;
  uk_proc* p_ = nullptr;
};

const uk::ktls_session_info* Find(const std::vector<uk::ktls_session_info>& v, int dir) {
  for (const auto& si : v)
    if (si.direction == dir) return &si;
  return nullptr;
}

TEST_F(KtlsList, ListsBothDirectionsWithAddressesSuiteAndCounters) {
  EXPECT_TRUE(uk::ktls_session_list(K()).empty());
  int sv[2];
  ktls_test::LoopbackPair(p_, sv, true);
  Suite s = ktls_test::GcmSuites()[1];  // AES-256-GCM TLS 1.2
  TlsKeys keys;
  ktls_test::BuildTlsEnable(s, 0, &keys);
  ASSERT_EQ(uk_setsockopt(p_, sv[0], IPPROTO_TCP, TCP_TXTLS_ENABLE, &keys.en, sizeof keys.en), 0);
  ASSERT_EQ(uk_setsockopt(p_, sv[1], IPPROTO_TCP, TCP_RXTLS_ENABLE, &keys.en, sizeof keys.en), 0);
  Send(sv[0], 40000);
  ASSERT_EQ(Recv(sv[1], 40000), 40000u);

  auto list = uk::ktls_session_list(K());
  ASSERT_EQ(list.size(), 2u);
  const uk::ktls_session_info* tx = Find(list, uk::KTLS_TX);
  const uk::ktls_session_info* rx = Find(list, uk::KTLS_RX);
  ASSERT_NE(tx, nullptr);
  ASSERT_NE(rx, nullptr);
  EXPECT_NE(tx->id, rx->id);
  EXPECT_GT(tx->id, 0u);
  for (const auto* si : {tx, rx}) {
    EXPECT_EQ(si->mode, TCP_TLS_MODE_SW);
    EXPECT_EQ(si->cipher_algorithm, s.cipher);
    EXPECT_EQ(si->cipher_key_len, s.keylen);
    EXPECT_EQ(si->tls_vminor, s.minor);
    EXPECT_FALSE(si->linux_personality);
    EXPECT_EQ(si->bytes, 40000u);
    EXPECT_EQ(si->records, 3u);  // 16384 + 16384 + 7232
    EXPECT_STREQ(si->tcp_state, "ESTABLISHED");
    EXPECT_EQ(si->local.sin_addr.s_addr, htonl(INADDR_LOOPBACK));
  }
  // One connection seen from both ends.
  EXPECT_EQ(tx->local.sin_port, rx->foreign.sin_port);
  EXPECT_EQ(tx->foreign.sin_port, rx->local.sin_port);

  // Ids are stable: a second listing gives the same ones.
  auto again = uk::ktls_session_list(K());
  EXPECT_EQ(Find(again, uk::KTLS_TX)->id, tx->id);

  // TCP_TXTLS_MODE through the id: SW is a no-op, TOE is EINVAL, an RX
  // session cannot switch, an unknown id is ENOENT.
  EXPECT_EQ(uk::ktls_session_set_tx_mode(K(), tx->id, TCP_TLS_MODE_SW), 0);
  EXPECT_EQ(uk::ktls_session_set_tx_mode(K(), tx->id, TCP_TLS_MODE_TOE), EINVAL);
  EXPECT_EQ(uk::ktls_session_set_tx_mode(K(), rx->id, TCP_TLS_MODE_SW), EOPNOTSUPP);
  EXPECT_EQ(uk::ktls_session_set_tx_mode(K(), 999999, TCP_TLS_MODE_SW), ENOENT);
  int ifnet = uk::ktls_session_set_tx_mode(K(), tx->id, TCP_TLS_MODE_IFNET);
  // lo0 has no TLS offload: the switch fails as ktls_set_tx_mode does.
  EXPECT_NE(ifnet, 0);

  uk_close(p_, sv[0]);
  uk_close(p_, sv[1]);
}

TEST_F(KtlsList, LinuxPersonalityIsReported) {
  int sv[2];
  ktls_test::LoopbackPair(p_, sv, true);
  ASSERT_EQ(uk_setsockopt(p_, sv[0], IPPROTO_TCP, TCP_ULP, "tls", 4), 0);
  tls12_crypto_info_aes_gcm_128 ci{};
  ci.info.version = TLS_1_3_VERSION;
  ci.info.cipher_type = TLS_CIPHER_AES_GCM_128;
  memset(ci.key, 7, sizeof ci.key);
  ASSERT_EQ(uk_setsockopt(p_, sv[0], SOL_TLS, TLS_TX, &ci, sizeof ci), 0);
  Send(sv[0], 100);
  auto list = uk::ktls_session_list(K());
  ASSERT_EQ(list.size(), 1u);
  EXPECT_TRUE(list[0].linux_personality);
  EXPECT_EQ(list[0].direction, uk::KTLS_TX);
  EXPECT_EQ(list[0].tls_vminor, TLS_MINOR_VER_THREE);
  EXPECT_EQ(list[0].records, 1u);
  EXPECT_EQ(list[0].bytes, 100u);
  uk_close(p_, sv[0]);
  uk_close(p_, sv[1]);
}

}  // namespace
