// KTLS transmit in software mode through the system-call boundary, as
// FreeBSD's tests/sys/kern/ktls_test.c checks it: every record read from the
// peer socket is decrypted here with OpenSSL EVP and its sequence number,
// version, type and size checked.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "lib/libuk/uk.h"
#include "tests/sys/kern/ktls_test_util.h"

namespace {

using ktls_test::Suite;
using ktls_test::TlsKeys;

using ktls_test::Loopback;

class KtlsTx : public ktls_test::KernelTest {
 protected:
  // sv[0]: the client, sv[1]: the accepted socket (FreeBSD's
  // socketpair_tcp), TCP_NODELAY: small records go out at once (no Nagle
  // wait for the peer's ACK).
  void Pair(int sv[2]) { ktls_test::LoopbackPair(p_, sv, true); }

  int EnableTx(int fd, const TlsKeys& keys) {
    return uk_setsockopt(p_, fd, IPPROTO_TCP, TCP_TXTLS_ENABLE, &keys.en,
                         sizeof keys.en);
  }

  // Reads records until `total` plaintext bytes arrived; checks each one.
  void ReadAndCheck(const Suite& s, const TlsKeys& keys, int fd, uint64_t seq,
                    const std::vector<uint8_t>& expect, uint8_t type,
                    int* nrecords = nullptr) {
    std::vector<uint8_t> got, rec, pt, chain(keys.iv);
    int n = 0;
    const size_t maxrec = ktls_test::HeaderLen(s) + 16384 +
                          ktls_test::TrailerLen(s, 16384) + 16;
    while (got.size() < expect.size() || (expect.empty() && n == 0)) {
      ASSERT_TRUE(ReadRecord(fd, &rec)) << s.name;
      EXPECT_LE(rec.size(), maxrec);
      uint8_t t = 0;
      std::string why;
      ASSERT_TRUE(ktls_test::DecryptRecord(s, keys, seq + n, rec.data(),
                                           rec.size(), &pt, &t, &why, &chain))
          << s.name << " record " << n << ": " << why;
      EXPECT_EQ(t, type) << s.name;
      got.insert(got.end(), pt.begin(), pt.end());
      n++;
    }
    EXPECT_EQ(got, expect) << s.name;
    if (nrecords) *nrecords = n;
  }
};

TEST_F(KtlsTx, ShortAndLongTransfersEverySuite) {
  for (const Suite& s : ktls_test::AllSuites()) {
    for (size_t len : {size_t{64}, size_t{65536}}) {
      int sv[2];
      Pair(sv);
      TlsKeys keys;
      uint64_t seq = 1000 + len;
      ktls_test::BuildTlsEnable(s, seq, &keys);
      ASSERT_EQ(EnableTx(sv[1], keys), 0) << s.name << ": " << strerror(errno);
      auto data = ktls_test::RandomBytes(len);
      std::thread writer([&] {
        size_t off = 0;
        while (off < len) {
          ssize_t w = uk_send(p_, sv[1], data.data() + off, len - off, 0);
          ASSERT_GT(w, 0) << strerror(errno);
          off += w;
        }
      });
      int nrec = 0;
      ReadAndCheck(s, keys, sv[0], seq, data, TLS_RLTYPE_APP, &nrec);
      writer.join();
      if (len == 65536) {
        EXPECT_GE(nrec, 4) << s.name;
      }
      uk_close(p_, sv[0]);
      uk_close(p_, sv[1]);
    }
  }
  EXPECT_EQ(Stat("kern.ipc.tls.stats.failed_crypto"), 0u);
}

TEST_F(KtlsTx, ControlRecordTypeAppliesToTheCall) {
  for (const Suite& s : ktls_test::AllSuites()) {
    int sv[2];
    Pair(sv);
    TlsKeys keys;
    ktls_test::BuildTlsEnable(s, 77, &keys);
    ASSERT_EQ(EnableTx(sv[1], keys), 0) << s.name;
    auto data = ktls_test::RandomBytes(32);
    alignas(cmsghdr) char cbuf[CMSG_SPACE(1)] = {};
    iovec iov{data.data(), data.size()};
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = cbuf;
    msg.msg_controllen = sizeof cbuf;
    cmsghdr* cm = CMSG_FIRSTHDR(&msg);
    cm->cmsg_level = IPPROTO_TCP;
    cm->cmsg_type = TLS_SET_RECORD_TYPE;
    cm->cmsg_len = CMSG_LEN(1);
    *CMSG_DATA(cm) = 0x21;
    ASSERT_EQ(uk_sendmsg(p_, sv[1], &msg, 0), 32) << s.name << strerror(errno);
    int nrec = 0;
    ReadAndCheck(s, keys, sv[0], 77, data, 0x21, &nrec);
    EXPECT_EQ(nrec, 1);
    // The next plain write is application data again.
    ASSERT_EQ(uk_send(p_, sv[1], data.data(), 10, 0), 10);
    std::vector<uint8_t> ten(data.begin(), data.begin() + 10);
    std::vector<uint8_t> rec, pt, chain;
    ASSERT_TRUE(ReadRecord(sv[0], &rec));
    uk_close(p_, sv[0]);
    uk_close(p_, sv[1]);
  }
}

TEST_F(KtlsTx, CbcEveryPaddingLength) {
  for (const Suite& s : ktls_test::CbcSuites()) {
    int sv[2];
    Pair(sv);
    TlsKeys keys;
    ktls_test::BuildTlsEnable(s, 5, &keys);
    ASSERT_EQ(EnableTx(sv[1], keys), 0) << s.name;
    std::vector<uint8_t> chain(keys.iv), rec, pt;
    for (int len = 1; len <= 16; len++) {
      auto data = ktls_test::RandomBytes(len);
      ASSERT_EQ(uk_send(p_, sv[1], data.data(), len, 0), len);
      ASSERT_TRUE(ReadRecord(sv[0], &rec));
      uint8_t t;
      std::string why;
      ASSERT_TRUE(ktls_test::DecryptRecord(s, keys, 5 + len - 1, rec.data(),
                                           rec.size(), &pt, &t, &why, &chain))
          << s.name << " len " << len << ": " << why;
      EXPECT_EQ(pt, data);
    }
    uk_close(p_, sv[0]);
    uk_close(p_, sv[1]);
  }
}

TEST_F(KtlsTx, EmptyFragmentOnlyForTls10) {
  for (const Suite& s : ktls_test::AllSuites()) {
    int sv[2];
    Pair(sv);
    TlsKeys keys;
    ktls_test::BuildTlsEnable(s, 3, &keys);
    ASSERT_EQ(EnableTx(sv[1], keys), 0) << s.name;
    bool tls10 = s.cipher == CRYPTO_AES_CBC && s.minor == TLS_MINOR_VER_ZERO;
    ssize_t r = uk_send(p_, sv[1], nullptr, 0, 0);
    if (tls10) {
      EXPECT_EQ(r, 0) << s.name;
      std::vector<uint8_t> rec, pt, chain(keys.iv);
      ASSERT_TRUE(ReadRecord(sv[0], &rec));
      if (s.auth == CRYPTO_SHA1_HMAC) {
        EXPECT_EQ(rec.size(), 5u + 32u);
      }
      uint8_t t;
      std::string why;
      ASSERT_TRUE(ktls_test::DecryptRecord(s, keys, 3, rec.data(), rec.size(),
                                           &pt, &t, &why, &chain))
          << why;
      EXPECT_TRUE(pt.empty());
      EXPECT_EQ(t, TLS_RLTYPE_APP);
    } else {
      EXPECT_EQ(r, -1) << s.name;
      EXPECT_EQ(errno, EINVAL) << s.name;
    }
    uk_close(p_, sv[0]);
    uk_close(p_, sv[1]);
  }
}

TEST_F(KtlsTx, InvalidSuitesGiveEinval) {
  for (const Suite& s : ktls_test::InvalidSuites()) {
    int sv[2];
    Pair(sv);
    TlsKeys keys;
    ktls_test::BuildTlsEnable(s, 0, &keys);
    EXPECT_EQ(EnableTx(sv[1], keys), -1) << s.name;
    EXPECT_EQ(errno, EINVAL) << s.name;
    uk_close(p_, sv[0]);
    uk_close(p_, sv[1]);
  }
}

TEST_F(KtlsTx, SocketOptionRules) {
  int sv[2];
  Pair(sv);
  const Suite s = ktls_test::GcmSuites()[0];
  TlsKeys keys;
  ktls_test::BuildTlsEnable(s, 0, &keys);
  int mode = -1;
  socklen_t ml = sizeof mode;
  ASSERT_EQ(uk_getsockopt(p_, sv[1], IPPROTO_TCP, TCP_TXTLS_MODE, &mode, &ml), 0);
  EXPECT_EQ(mode, TCP_TLS_MODE_NONE);
  // A short option is EINVAL; the v0 layout (56 bytes) is accepted.
  EXPECT_EQ(uk_setsockopt(p_, sv[1], IPPROTO_TCP, TCP_TXTLS_ENABLE, &keys.en, 40), -1);
  EXPECT_EQ(errno, EINVAL);
  ASSERT_EQ(uk_setsockopt(p_, sv[1], IPPROTO_TCP, TCP_TXTLS_ENABLE, &keys.en,
                          sizeof(tls_enable_v0)),
            0);
  EXPECT_EQ(EnableTx(sv[1], keys), -1);
  EXPECT_EQ(errno, EALREADY);
  ASSERT_EQ(uk_getsockopt(p_, sv[1], IPPROTO_TCP, TCP_TXTLS_MODE, &mode, &ml), 0);
  EXPECT_EQ(mode, TCP_TLS_MODE_SW);
  // Setting the current mode is a no-op; TCP_TXTLS_ENABLE cannot be read;
  // TCP_RXTLS_MODE cannot be set.
  mode = TCP_TLS_MODE_SW;
  EXPECT_EQ(uk_setsockopt(p_, sv[1], IPPROTO_TCP, TCP_TXTLS_MODE, &mode, sizeof mode), 0);
  mode = 7;
  EXPECT_EQ(uk_setsockopt(p_, sv[1], IPPROTO_TCP, TCP_TXTLS_MODE, &mode, sizeof mode), -1);
  EXPECT_EQ(errno, EINVAL);
  tls_enable out;
  socklen_t ol = sizeof out;
  EXPECT_EQ(uk_getsockopt(p_, sv[1], IPPROTO_TCP, TCP_TXTLS_ENABLE, &out, &ol), -1);
  EXPECT_EQ(errno, ENOPROTOOPT);
  EXPECT_EQ(uk_setsockopt(p_, sv[1], IPPROTO_TCP, TCP_RXTLS_MODE, &mode, sizeof mode), -1);
  EXPECT_EQ(errno, ENOPROTOOPT);
  // The v0 session starts at sequence number 0.
  auto data = ktls_test::RandomBytes(100);
  ASSERT_EQ(uk_send(p_, sv[1], data.data(), 100, 0), 100);
  ReadAndCheck(s, keys, sv[0], 0, data, TLS_RLTYPE_APP);
  EXPECT_EQ(Stat("kern.ipc.tls.stats.offload_total"), 1u);
  EXPECT_EQ(Stat("kern.ipc.tls.stats.enable_calls"), 2u);
  EXPECT_EQ(Stat("kern.ipc.tls.sw.gcm"), 1u);
  EXPECT_EQ(Stat("kern.ipc.tls.stats.active"), 1u);
  uk_close(p_, sv[0]);
  uk_close(p_, sv[1]);
}

TEST_F(KtlsTx, ListeningSocketRules) {
  const Suite s = ktls_test::GcmSuites()[0];
  TlsKeys keys;
  ktls_test::BuildTlsEnable(s, 0, &keys);
  // Enabled, then listen: EINVAL (TX and RX).
  for (int opt : {TCP_TXTLS_ENABLE, TCP_RXTLS_ENABLE}) {
    int fd = uk_socket(p_, AF_INET, SOCK_STREAM, 0);
    ASSERT_EQ(uk_setsockopt(p_, fd, IPPROTO_TCP, opt, &keys.en, sizeof keys.en), 0);
    sockaddr_in sin = Loopback(0);
    ASSERT_EQ(uk_bind(p_, fd, reinterpret_cast<sockaddr*>(&sin), sizeof sin), 0);
    EXPECT_EQ(uk_listen(p_, fd, 1), -1);
    EXPECT_EQ(errno, EINVAL);
    uk_close(p_, fd);
  }
  // Listening, then enable: TX ENOTCONN, RX EINVAL; modes EINVAL.
  uint16_t port;
  int l = Listen(&port);
  EXPECT_EQ(EnableTx(l, keys), -1);
  EXPECT_EQ(errno, ENOTCONN);
  EXPECT_EQ(uk_setsockopt(p_, l, IPPROTO_TCP, TCP_RXTLS_ENABLE, &keys.en, sizeof keys.en), -1);
  EXPECT_EQ(errno, EINVAL);
  int mode;
  socklen_t ml = sizeof mode;
  EXPECT_EQ(uk_getsockopt(p_, l, IPPROTO_TCP, TCP_TXTLS_MODE, &mode, &ml), -1);
  EXPECT_EQ(errno, EINVAL);
  uk_close(p_, l);
}

TEST_F(KtlsTx, SendtoBroadcastAfterEnableIsEacces) {
  const Suite s = ktls_test::GcmSuites()[2];
  TlsKeys keys;
  ktls_test::BuildTlsEnable(s, 0, &keys);
  int fd = uk_socket(p_, AF_INET, SOCK_STREAM, 0);
  ASSERT_EQ(EnableTx(fd, keys), 0);
  sockaddr_in sin{};
  sin.sin_family = AF_INET;
  sin.sin_port = htons(12345);
  sin.sin_addr.s_addr = INADDR_BROADCAST;
  char buf[32] = {};
  EXPECT_EQ(uk_sendto(p_, fd, buf, sizeof buf, 0, reinterpret_cast<sockaddr*>(&sin),
                      sizeof sin),
            -1);
  EXPECT_EQ(errno, EACCES);
  EXPECT_EQ(uk_close(p_, fd), 0);
}

TEST_F(KtlsTx, SysctlGates) {
  const Suite gcm = ktls_test::GcmSuites()[0];
  const Suite cbc = ktls_test::CbcSuites()[4];
  TlsKeys kg, kc;
  ktls_test::BuildTlsEnable(gcm, 0, &kg);
  ktls_test::BuildTlsEnable(cbc, 0, &kc);
  int sv[2];

  Boot("kern.ipc.tls.enable=0");
  Pair(sv);
  EXPECT_EQ(EnableTx(sv[1], kg), -1);
  EXPECT_EQ(errno, ENOTSUP);
  EXPECT_EQ(Stat("kern.ipc.tls.stats.enable_calls"), 0u);

  Boot("kern.ipc.tls.cbc_enable=0");
  Pair(sv);
  EXPECT_EQ(EnableTx(sv[1], kc), -1);
  EXPECT_EQ(errno, ENOTSUP);
  EXPECT_EQ(EnableTx(sv[1], kg), 0);

  Boot("kern.ipc.mb_use_ext_pgs=0");
  Pair(sv);
  EXPECT_EQ(EnableTx(sv[1], kg), -1);
  EXPECT_EQ(errno, ENXIO);
  // RX does not need unmapped mbufs.
  EXPECT_EQ(uk_setsockopt(p_, sv[0], IPPROTO_TCP, TCP_RXTLS_ENABLE, &kg.en,
                          sizeof kg.en),
            0);
}

TEST_F(KtlsTx, SessionsAreFreedOnClose) {
  for (int i = 0; i < 3; i++) {
    int sv[2];
    Pair(sv);
    TlsKeys keys;
    ktls_test::BuildTlsEnable(ktls_test::ChachaSuites()[1], 0, &keys);
    ASSERT_EQ(EnableTx(sv[1], keys), 0);
    auto data = ktls_test::RandomBytes(1000);
    ASSERT_EQ(uk_send(p_, sv[1], data.data(), data.size(), 0), 1000);
    ReadAndCheck(ktls_test::ChachaSuites()[1], keys, sv[0], 0, data,
                 TLS_RLTYPE_APP);
    uk_close(p_, sv[0]);
    uk_close(p_, sv[1]);
  }
  // Closing frees the session once the last record is gone.
  for (int i = 0; i < 1000 && Stat("kern.ipc.tls.stats.active") != 0; i++)
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  EXPECT_EQ(Stat("kern.ipc.tls.stats.active"), 0u);
  EXPECT_EQ(Stat("kern.ipc.tls.sw.chacha20"), 0u);
  EXPECT_EQ(Stat("kern.ipc.tls.stats.offload_total"), 3u);
}

// The workers start with the first session and are named after their CPU,
// as FreeBSD's "KTLS" process's threads thr_0, thr_1, ...: what top(1) and
// perf show for them.
TEST_F(KtlsTx, WorkerThreadsAreNamedAfterTheirCpu) {
  int sv[2];
  Pair(sv);
  TlsKeys keys;
  ktls_test::BuildTlsEnable(ktls_test::ChachaSuites()[1], 0, &keys);
  ASSERT_EQ(EnableTx(sv[1], keys), 0);
  const uint64_t n = Stat("kern.ipc.tls.stats.threads");
  ASSERT_GT(n, 0u);
  std::multiset<std::string> names;
  for (const auto& t : std::filesystem::directory_iterator("/proc/self/task")) {
    std::ifstream f(t.path() / "comm");
    std::string comm;
    if (std::getline(f, comm)) names.insert(comm);
  }
  for (uint64_t i = 0; i < n; i++)
    EXPECT_EQ(names.count("ktls_thr_" + std::to_string(i)), 1u) << i;
  EXPECT_EQ(names.count("ktls_thr_" + std::to_string(n)), 0u);
  uk_close(p_, sv[0]);
  uk_close(p_, sv[1]);
}

}  // namespace
