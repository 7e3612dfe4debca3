// KTLS receive in software mode through the system-call boundary, as
// FreeBSD's tests/sys/kern/ktls_test.c checks it: the test writes records
// encrypted with OpenSSL EVP raw from a plain socket and reads them back,
// one record per recvmsg, from the KTLS socket.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>

#include <cerrno>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "lib/libuk/uk.h"
#include "tests/sys/kern/ktls_test_util.h"

namespace {

using ktls_test::Suite;
using ktls_test::TlsKeys;

using ktls_test::RxSuites;
using ktls_test::WireMinor;

class KtlsRx : public ktls_test::KernelTest {
 protected:
  void Pair(int sv[2]) { ktls_test::LoopbackPair(p_, sv, true); }

  int EnableRx(int fd, const TlsKeys& keys) {
    return uk_setsockopt(p_, fd, IPPROTO_TCP, TCP_RXTLS_ENABLE, &keys.en,
                         sizeof keys.en);
  }

  // One recvmsg; checks the cmsg and flags as FreeBSD's test does.
  ssize_t RecvRecord(int fd, std::vector<uint8_t>* out, uint8_t want_type,
                     uint8_t want_minor) {
    out->assign(20000, 0);
    alignas(cmsghdr) char cbuf[CMSG_SPACE(sizeof(tls_get_record))];
    iovec iov{out->data(), out->size()};
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = cbuf;
    msg.msg_controllen = sizeof cbuf;
    ssize_t rv = uk_recvmsg(p_, fd, &msg, 0);
    if (rv < 0) return rv;
    EXPECT_EQ(msg.msg_flags & (MSG_EOR | MSG_CTRUNC), rv > 0 ? MSG_EOR : 0);
    cmsghdr* cm = CMSG_FIRSTHDR(&msg);
    EXPECT_NE(cm, nullptr);
    if (cm != nullptr) {
      EXPECT_EQ(cm->cmsg_level, IPPROTO_TCP);
      EXPECT_EQ(cm->cmsg_type, TLS_GET_RECORD);
      EXPECT_EQ(cm->cmsg_len, CMSG_LEN(sizeof(tls_get_record)));
      tls_get_record tgr;
      memcpy(&tgr, CMSG_DATA(cm), sizeof tgr);
      EXPECT_EQ(tgr.tls_type, want_type);
      EXPECT_EQ(tgr.tls_vmajor, TLS_MAJOR_VER_ONE);
      EXPECT_EQ(tgr.tls_vminor, want_minor);
      EXPECT_EQ(tgr.tls_length, htons(static_cast<uint16_t>(rv)));
    }
    out->resize(rv);
    return rv;
  }
};

TEST_F(KtlsRx, ShortAndLongEverySuite) {
  for (const Suite& s : RxSuites()) {
    for (size_t len : {size_t{64}, size_t{65536}}) {
      int sv[2];
      Pair(sv);
      TlsKeys keys;
      uint64_t seq = 500;
      ktls_test::BuildTlsEnable(s, seq, &keys);
      ASSERT_EQ(EnableRx(sv[0], keys), 0) << s.name << ": " << strerror(errno);
      auto data = ktls_test::RandomBytes(len);
      std::vector<uint8_t> wire;
      for (size_t off = 0, r = 0; off < len; r++) {
        size_t n = std::min<size_t>(16384, len - off);
        auto rec = ktls_test::EncryptRecord(s, keys, seq + r, TLS_RLTYPE_APP,
                                            data.data() + off, n, 0, r);
        wire.insert(wire.end(), rec.begin(), rec.end());
        off += n;
      }
      std::thread writer([&] { WriteAll(sv[1], wire); });
      std::vector<uint8_t> got, rec;
      while (got.size() < len) {
        ssize_t rv = RecvRecord(sv[0], &rec, TLS_RLTYPE_APP, WireMinor(s));
        ASSERT_GT(rv, 0) << s.name << ": " << strerror(errno);
        got.insert(got.end(), rec.begin(), rec.end());
      }
      writer.join();
      EXPECT_EQ(got, data) << s.name;
      uk_close(p_, sv[0]);
      uk_close(p_, sv[1]);
    }
  }
}

// A received AEAD record is decrypted straight from the stream's mbufs into
// the cluster handed to the reader: besides the writer's copyin and the
// reader's copyout the kernel copies only each record's header and nonce.
// A CBC record (padding and MAC are checked after decryption) is copied
// once, into the cluster it is decrypted in.
TEST_F(KtlsRx, AeadRecordsAreDecryptedFromTheStreamWithoutACopy) {
  for (const Suite& s : RxSuites()) {
    const bool cbc = s.cipher == CRYPTO_AES_CBC;
    if (!(s.cipher == CRYPTO_AES_NIST_GCM_16 || cbc)) continue;
    int sv[2];
    Pair(sv);
    TlsKeys keys;
    ktls_test::BuildTlsEnable(s, 0, &keys);
    ASSERT_EQ(EnableRx(sv[0], keys), 0) << strerror(errno);
    const size_t nrec = 64, len = 16384;
    auto data = ktls_test::RandomBytes(nrec * len);
    std::vector<uint8_t> wire;
    for (size_t r = 0; r < nrec; r++) {
      auto rec = ktls_test::EncryptRecord(s, keys, r, TLS_RLTYPE_APP,
                                          data.data() + r * len, len, 0, r);
      wire.insert(wire.end(), rec.begin(), rec.end());
    }
    uint64_t c0 = Stat("kern.ipc.mbstat.copy_bytes");
    uint64_t i0 = Stat("kern.ipc.mbstat.copyin_bytes");
    uint64_t o0 = Stat("kern.ipc.mbstat.copyout_bytes");
    std::thread writer([&] { WriteAll(sv[1], wire); });
    std::vector<uint8_t> got, rec;
    while (got.size() < data.size()) {
      ssize_t rv = RecvRecord(sv[0], &rec, TLS_RLTYPE_APP, WireMinor(s));
      ASSERT_GT(rv, 0) << strerror(errno);
      got.insert(got.end(), rec.begin(), rec.end());
    }
    writer.join();
    ASSERT_EQ(got, data) << s.name;
    uint64_t kernel_copies = (Stat("kern.ipc.mbstat.copy_bytes") - c0) -
                             (Stat("kern.ipc.mbstat.copyin_bytes") - i0) -
                             (Stat("kern.ipc.mbstat.copyout_bytes") - o0);
    if (cbc) {
      EXPECT_GE(kernel_copies, wire.size()) << s.name;
      EXPECT_LT(kernel_copies, wire.size() * 3 / 2) << s.name;
    } else {
      EXPECT_LT(kernel_copies, nrec * 64) << s.name;
    }
    uk_close(p_, sv[0]);
    uk_close(p_, sv[1]);
  }
}

TEST_F(KtlsRx, BadRecordsGiveEbadmsgAndTheStreamContinues) {
  for (const Suite& s : RxSuites()) {
    int sv[2];
    Pair(sv);
    TlsKeys keys;
    ktls_test::BuildTlsEnable(s, 0, &keys);
    ASSERT_EQ(EnableRx(sv[0], keys), 0) << s.name;
    auto data = ktls_test::RandomBytes(64);
    auto bad = ktls_test::EncryptRecord(s, keys, 0, TLS_RLTYPE_APP, data.data(), 64);
    bad[ktls_test::HeaderLen(s)] ^= 1;  // _bad_data
    auto good = ktls_test::EncryptRecord(s, keys, 1, TLS_RLTYPE_APP, data.data(), 64);
    WriteAll(sv[1], bad);
    std::vector<uint8_t> rec;
    EXPECT_EQ(RecvRecord(sv[0], &rec, TLS_RLTYPE_APP, WireMinor(s)), -1) << s.name;
    EXPECT_EQ(errno, EBADMSG) << s.name;
    // The sequence number was consumed; the next record decrypts.
    WriteAll(sv[1], good);
    ASSERT_EQ(RecvRecord(sv[0], &rec, TLS_RLTYPE_APP, WireMinor(s)), 64) << s.name;
    EXPECT_EQ(rec, data);
    uk_close(p_, sv[0]);
    uk_close(p_, sv[1]);
  }
  EXPECT_EQ(Stat("kern.ipc.tls.stats.failed_crypto"), RxSuites().size());
}

TEST_F(KtlsRx, HeaderErrorsAndTruncation) {
  const Suite s = ktls_test::GcmSuites()[0];
  auto data = ktls_test::RandomBytes(64);
  struct Case {
    const char* what;
    int err;
  } cases[] = {{"bad_major", EINVAL}, {"bad_minor", EINVAL},
               {"oversized", EMSGSIZE}, {"truncated", EMSGSIZE}};
  for (const Case& c : cases) {
    int sv[2];
    Pair(sv);
    TlsKeys keys;
    ktls_test::BuildTlsEnable(s, 0, &keys);
    ASSERT_EQ(EnableRx(sv[0], keys), 0);
    auto rec = ktls_test::EncryptRecord(s, keys, 0, TLS_RLTYPE_APP, data.data(), 64);
    std::string w = c.what;
    if (w == "bad_major") rec[1]++;
    if (w == "bad_minor") rec[2]++;
    if (w == "oversized") {
      rec.assign(5 + 32768, 0);
      rec[0] = 23;
      rec[1] = 3;
      rec[2] = 3;
      rec[3] = 0x80;
      rec[4] = 0;
    }
    if (w == "truncated") rec.resize(rec.size() / 2);
    WriteAll(sv[1], rec);
    if (w == "truncated" || w == "oversized") uk_shutdown(p_, sv[1], SHUT_WR);
    std::vector<uint8_t> out;
    EXPECT_EQ(RecvRecord(sv[0], &out, TLS_RLTYPE_APP, 3), -1) << c.what;
    EXPECT_EQ(errno, c.err) << c.what;
    uk_close(p_, sv[0]);
    uk_close(p_, sv[1]);
  }
}

// Whole records still queued for (or in) decryption when the peer's FIN
// arrives are delivered before EOF, as FreeBSD's soreceive_generic sleeps
// for them; only a partial record at EOF is EMSGSIZE.
TEST_F(KtlsRx, RecordsPendingDecryptionAtFinAreDeliveredThenEof) {
  const Suite s = ktls_test::GcmSuites()[0];
  for (int round = 0; round < 8; round++) {
    int sv[2];
    Pair(sv);
    TlsKeys keys;
    ktls_test::BuildTlsEnable(s, 0, &keys);
    ASSERT_EQ(EnableRx(sv[0], keys), 0);
    constexpr int kRecords = 32;
    auto data = ktls_test::RandomBytes(4096);
    std::thread writer([&] {
      std::vector<uint8_t> all;
      for (int i = 0; i < kRecords; i++) {
        auto rec = ktls_test::EncryptRecord(s, keys, i, TLS_RLTYPE_APP, data.data(),
                                            data.size());
        all.insert(all.end(), rec.begin(), rec.end());
      }
      WriteAll(sv[1], all);
      uk_shutdown(p_, sv[1], SHUT_WR);
    });
    int got = 0;
    std::vector<uint8_t> out;
    for (;;) {
      out.assign(20000, 0);
      alignas(cmsghdr) char cbuf[CMSG_SPACE(sizeof(tls_get_record))];
      iovec iov{out.data(), out.size()};
      msghdr msg{};
      msg.msg_iov = &iov;
      msg.msg_iovlen = 1;
      msg.msg_control = cbuf;
      msg.msg_controllen = sizeof cbuf;
      ssize_t n = uk_recvmsg(p_, sv[0], &msg, 0);
      if (n > 0) out.resize(n);
      if (n <= 0) {
        EXPECT_EQ(n, 0) << "round " << round << " after " << got << " records: "
                        << strerror(errno);
        break;
      }
      EXPECT_EQ(out, data);
      got++;
    }
    writer.join();
    EXPECT_EQ(got, kRecords) << "round " << round;
    uk_close(p_, sv[0]);
    uk_close(p_, sv[1]);
  }
}

TEST_F(KtlsRx, Tls13PaddingAndCbcExtraPaddingAreAccepted) {
  for (const Suite& s : RxSuites()) {
    bool tls13 = s.minor == TLS_MINOR_VER_THREE;
    if (!tls13 && s.cipher != CRYPTO_AES_CBC) continue;
    int sv[2];
    Pair(sv);
    TlsKeys keys;
    ktls_test::BuildTlsEnable(s, 9, &keys);
    ASSERT_EQ(EnableRx(sv[0], keys), 0);
    auto data = ktls_test::RandomBytes(64);
    auto rec = ktls_test::EncryptRecord(s, keys, 9, 0x21, data.data(), 64,
                                        tls13 ? 16 : 32);
    WriteAll(sv[1], rec);
    std::vector<uint8_t> out;
    ASSERT_EQ(RecvRecord(sv[0], &out, 0x21, WireMinor(s)), 64) << s.name;
    EXPECT_EQ(out, data);
    uk_close(p_, sv[0]);
    uk_close(p_, sv[1]);
  }
}

TEST_F(KtlsRx, EnableRules) {
  int sv[2];
  Pair(sv);
  // TLS 1.0 CBC cannot receive; invalid suites are EINVAL.
  TlsKeys k10;
  ktls_test::BuildTlsEnable(ktls_test::CbcSuites()[0], 0, &k10);
  EXPECT_EQ(EnableRx(sv[0], k10), -1);
  EXPECT_EQ(errno, EPROTONOSUPPORT);
  for (const Suite& s : ktls_test::InvalidSuites()) {
    TlsKeys k;
    ktls_test::BuildTlsEnable(s, 0, &k);
    EXPECT_EQ(EnableRx(sv[0], k), -1) << s.name;
    EXPECT_EQ(errno, EINVAL) << s.name;
  }
  // Data queued before the enable is ciphertext too.
  const Suite s = ktls_test::ChachaSuites()[1];
  TlsKeys keys;
  ktls_test::BuildTlsEnable(s, 3, &keys);
  auto data = ktls_test::RandomBytes(100);
  auto rec = ktls_test::EncryptRecord(s, keys, 3, TLS_RLTYPE_APP, data.data(), 100);
  WriteAll(sv[1], rec);
  // Wait until the bytes are queued on sv[0].
  pollfd pfd{sv[0], POLLIN, 0};
  ASSERT_EQ(uk_poll(p_, &pfd, 1, 5000), 1);
  ASSERT_EQ(EnableRx(sv[0], keys), 0);
  EXPECT_EQ(EnableRx(sv[0], keys), -1);
  EXPECT_EQ(errno, EALREADY);
  int mode = -1;
  socklen_t ml = sizeof mode;
  ASSERT_EQ(uk_getsockopt(p_, sv[0], IPPROTO_TCP, TCP_RXTLS_MODE, &mode, &ml), 0);
  EXPECT_EQ(mode, TCP_TLS_MODE_SW);
  std::vector<uint8_t> out;
  ASSERT_EQ(RecvRecord(sv[0], &out, TLS_RLTYPE_APP, TLS_MINOR_VER_TWO), 100);
  EXPECT_EQ(out, data);
  uk_close(p_, sv[0]);
  uk_close(p_, sv[1]);
}

TEST_F(KtlsRx, KtlsToKtlsBothDirections) {
  const Suite s = ktls_test::GcmSuites()[1];
  int sv[2];
  Pair(sv);
  TlsKeys a2b, b2a;
  ktls_test::BuildTlsEnable(s, 11, &a2b);
  ktls_test::BuildTlsEnable(s, 22, &b2a);
  EnableBothWays(sv, a2b, b2a);
  if (HasFatalFailure()) return;
  const size_t len = 1 << 20;
  auto d0 = ktls_test::RandomBytes(len), d1 = ktls_test::RandomBytes(len);
  std::thread w0([&] { WriteAll(sv[0], d0); });
  std::thread w1([&] { WriteAll(sv[1], d1); });
  for (int i = 0; i < 2; i++) {
    std::vector<uint8_t> got, rec;
    while (got.size() < len) {
      ssize_t rv = RecvRecord(sv[1 - i], &rec, TLS_RLTYPE_APP, TLS_MINOR_VER_TWO);
      ASSERT_GT(rv, 0) << strerror(errno);
      got.insert(got.end(), rec.begin(), rec.end());
    }
    EXPECT_EQ(got, i == 0 ? d0 : d1);
  }
  w0.join();
  w1.join();
  uk_close(p_, sv[0]);
  uk_close(p_, sv[1]);
}

}  // namespace
