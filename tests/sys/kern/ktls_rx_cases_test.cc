// KTLS receive, the cases of FreeBSD's tests/sys/kern/ktls_test.c for every
// receive suite (bad MAC/tag, bad IV, small, oversized and short-header
// records, CBC padding 1..16, extra and bad padding, non-block-size, bad
// major/minor, truncated records, TLS 1.3 padded records and outer type),
// plus what its suite does not check: records arriving a byte per segment
// read a byte at a time, read() stopping at record boundaries, the peer or
// the reader closing in the middle of a record, and a KTLS-to-KTLS transfer
// both ways at once (UKTLS_KTLS_TRANSFER_MB per direction, default 2; the
// full-size run is 256).
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/evp.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "lib/libuk/uk.h"
#include "tests/sys/kern/ktls_test_util.h"

namespace {

using ktls_test::Suite;
using ktls_test::TlsKeys;
using ktls_test::WireMinor;

class KtlsRxCases : public ktls_test::KernelTest {
 protected:
  KtlsRxCases() : KernelTest("ktls_rx") {}

  // sv[0] receives with KTLS, sv[1] is the raw peer (TCP_NODELAY).
  void Open(const Suite& s, uint64_t seq, TlsKeys* keys, int sv[2]) {
    ktls_test::LoopbackPair(p_, sv, true);
    ktls_test::BuildTlsEnable(s, seq, keys);
    ASSERT_EQ(uk_setsockopt(p_, sv[0], IPPROTO_TCP, TCP_RXTLS_ENABLE, &keys->en,
                            sizeof keys->en),
              0)
        << s.name << ": " << strerror(errno);
  }
  void Close(int sv[2]) {
    // After the error cases the connection may be gone; errors are ignored
    // as FreeBSD's test does.
    uk_close(p_, sv[0]);
    uk_close(p_, sv[1]);
  }

  // One recvmsg into a buffer of bufsize. Returns its result; *tgr and
  // *have_cmsg describe the cmsg, *flags the message flags.
  ssize_t Recv(int fd, std::vector<uint8_t>* out, size_t bufsize,
               tls_get_record* tgr, bool* have_cmsg, int* flags,
               int msgflags = 0) {
    out->assign(bufsize, 0);
    alignas(cmsghdr) char cbuf[CMSG_SPACE(sizeof(tls_get_record))];
    iovec iov{out->data(), out->size()};
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = cbuf;
    msg.msg_controllen = sizeof cbuf;
    ssize_t rv = uk_recvmsg(p_, fd, &msg, msgflags);
    *have_cmsg = false;
    *flags = msg.msg_flags;
    if (rv < 0) return rv;
    if (cmsghdr* cm = CMSG_FIRSTHDR(&msg)) {
      EXPECT_EQ(cm->cmsg_level, IPPROTO_TCP);
      EXPECT_EQ(cm->cmsg_type, TLS_GET_RECORD);
      EXPECT_EQ(cm->cmsg_len, CMSG_LEN(sizeof(tls_get_record)));
      memcpy(tgr, CMSG_DATA(cm), sizeof *tgr);
      *have_cmsg = true;
    }
    out->resize(rv);
    return rv;
  }

  // One whole record as FreeBSD's test checks it.
  void ExpectRecord(int fd, const Suite& s, uint8_t type,
                    const std::vector<uint8_t>& want) {
    std::vector<uint8_t> got;
    tls_get_record tgr{};
    bool cm;
    int flags;
    ssize_t rv = Recv(fd, &got, 20000, &tgr, &cm, &flags);
    ASSERT_EQ(rv, static_cast<ssize_t>(want.size())) << s.name << ": " << strerror(errno);
    ASSERT_TRUE(cm) << s.name;
    EXPECT_EQ(flags & (MSG_EOR | MSG_CTRUNC), want.empty() ? 0 : MSG_EOR) << s.name;
    EXPECT_EQ(tgr.tls_type, type) << s.name;
    EXPECT_EQ(tgr.tls_vmajor, TLS_MAJOR_VER_ONE);
    EXPECT_EQ(tgr.tls_vminor, WireMinor(s));
    EXPECT_EQ(tgr.tls_length, htons(static_cast<uint16_t>(want.size())));
    EXPECT_EQ(got, want) << s.name;
  }

  void ExpectError(int fd, int err, const std::string& what) {
    std::vector<uint8_t> got;
    tls_get_record tgr;
    bool cm;
    int flags;
    EXPECT_EQ(Recv(fd, &got, 20000, &tgr, &cm, &flags), -1) << what;
    EXPECT_EQ(errno, err) << what << ": " << strerror(errno);
  }

  // FreeBSD's test_ktls_receive_bad_size(): a header (right version, type
  // 23) and len zero bytes, then shutdown(SHUT_WR).
  std::vector<uint8_t> RawRecord(const Suite& s, size_t len) {
    std::vector<uint8_t> r(5 + len, 0);
    r[0] = TLS_RLTYPE_APP;
    r[1] = TLS_MAJOR_VER_ONE;
    r[2] = WireMinor(s);
    r[3] = static_cast<uint8_t>(len >> 8);
    r[4] = static_cast<uint8_t>(len);
    return r;
  }
};

bool ExplicitIv(const Suite& s) {
  return s.cipher == CRYPTO_AES_CBC ||
         (s.cipher == CRYPTO_AES_NIST_GCM_16 && s.minor == TLS_MINOR_VER_TWO);
}

// A corrupted record (bad_data, bad_mac, bad_iv, bad_padding): EBADMSG, and
// the record after it, with the next sequence number, still decrypts.
TEST_F(KtlsRxCases, CorruptRecordsEverySuite) {
  uint64_t failed0 = Stat("kern.ipc.tls.stats.failed_crypto");
  int expected_failures = 0;
  for (const Suite& s : ktls_test::RxSuites()) {
    const bool cbc = s.cipher == CRYPTO_AES_CBC;
    const int hlen = ktls_test::HeaderLen(s);
    struct Case {
      const char* name;
      bool applies;
    } cases[] = {{"bad_mac", true},
                 {"bad_iv", ExplicitIv(s)},
                 {"bad_padding", cbc},
                 {"bad_data_last_block", true}};
    for (const Case& c : cases) {
      if (!c.applies) continue;
      std::string what = std::string(s.name) + " " + c.name;
      int sv[2];
      TlsKeys keys;
      Open(s, 77, &keys, sv);
      auto data = ktls_test::RandomBytes(64);
      auto rec = ktls_test::EncryptRecord(s, keys, 77, TLS_RLTYPE_APP,
                                          data.data(), data.size(), 0, 5);
      std::string n = c.name;
      if (n == "bad_mac")  // the first MAC byte (CBC) or tag byte (AEAD)
        rec[cbc ? hlen + 64 : rec.size() - 16] ^= 1;
      if (n == "bad_iv") rec[5] ^= 1;
      if (n == "bad_padding") rec.back() ^= 1;
      if (n == "bad_data_last_block") rec[rec.size() - 17] ^= 0x80;
      auto next = ktls_test::RandomBytes(33);
      auto good = ktls_test::EncryptRecord(s, keys, 78, TLS_RLTYPE_APP,
                                           next.data(), next.size(), 0, 6);
      WriteAll(sv[1], rec);
      ExpectError(sv[0], EBADMSG, what);
      expected_failures++;
      WriteAll(sv[1], good);
      ExpectRecord(sv[0], s, TLS_RLTYPE_APP, next);
      Close(sv);
    }
  }
  EXPECT_EQ(Stat("kern.ipc.tls.stats.failed_crypto") - failed0,
            static_cast<uint64_t>(expected_failures));
}

// Size and header errors: small_record, non_block_size (EMSGSIZE, record
// skipped), short_header (shorter than the header: EMSGSIZE at EOF),
// oversized_record (EMSGSIZE, dropped),
// bad_major, bad_minor, TLS 1.3 bad_type (EINVAL, dropped), and a
// truncated record (EMSGSIZE at EOF).
TEST_F(KtlsRxCases, SizeAndHeaderErrorsEverySuite) {
  uint64_t corrupted0 = Stat("kern.ipc.tls.stats.corrupted_records");
  int dropped = 0;
  for (const Suite& s : ktls_test::RxSuites()) {
    const bool cbc = s.cipher == CRYPTO_AES_CBC;
    const bool tls13 = s.minor == TLS_MINOR_VER_THREE;
    const int min = ktls_test::MinRecordPayload(s);
    struct Case {
      const char* name;
      bool applies;
      int err;
      bool drops;
    } cases[] = {{"small_record", true, EMSGSIZE, false},
                 {"non_block_size", cbc, EMSGSIZE, false},
                 {"short_header", ExplicitIv(s), EMSGSIZE, false},
                 {"oversized_record", true, EMSGSIZE, true},
                 {"bad_major", true, EINVAL, true},
                 {"bad_minor", true, EINVAL, true},
                 {"bad_type", tls13, EINVAL, true},
                 {"truncated_record", true, EMSGSIZE, false}};
    for (const Case& c : cases) {
      if (!c.applies) continue;
      std::string what = std::string(s.name) + " " + c.name;
      int sv[2];
      TlsKeys keys;
      Open(s, 5, &keys, sv);
      auto data = ktls_test::RandomBytes(64);
      std::vector<uint8_t> rec;
      std::string n = c.name;
      bool shut = true;
      if (n == "small_record") rec = RawRecord(s, min - 1);
      if (n == "non_block_size") rec = RawRecord(s, min + 1);
      if (n == "short_header") rec = RawRecord(s, 6);
      if (n == "oversized_record") rec = RawRecord(s, 32768);
      if (n == "bad_major" || n == "bad_minor" || n == "bad_type" ||
          n == "truncated_record") {
        rec = ktls_test::EncryptRecord(s, keys, 5, 0x21, data.data(), 64);
        if (n == "bad_major") rec[1]++;
        if (n == "bad_minor") rec[2]++;
        if (n == "bad_type") rec[0] = 24;
        if (n == "truncated_record") rec.resize(rec.size() / 2);
        shut = n == "truncated_record";
      }
      WriteAll(sv[1], rec);
      if (shut) uk_shutdown(p_, sv[1], SHUT_WR);  // may be ENOTCONN: ignored
      ExpectError(sv[0], c.err, what);
      // The skipped kind leaves the connection up: a later record arrives
      // (not after a shutdown, where there is nothing more).
      if (!c.drops && !shut) {
        auto next = ktls_test::RandomBytes(10);
        WriteAll(sv[1], ktls_test::EncryptRecord(s, keys, 6, TLS_RLTYPE_APP,
                                                 next.data(), next.size()));
        ExpectRecord(sv[0], s, TLS_RLTYPE_APP, next);
      }
      dropped += c.drops;
      Close(sv);
    }
  }
  EXPECT_EQ(Stat("kern.ipc.tls.stats.corrupted_records") - corrupted0,
            static_cast<uint64_t>(dropped));
}

// A too-short record without EOF is skipped, not fatal: the stream goes on.
TEST_F(KtlsRxCases, SmallRecordIsSkippedAndTheStreamContinues) {
  for (const Suite& s : ktls_test::RxSuites()) {
    int sv[2];
    TlsKeys keys;
    Open(s, 100, &keys, sv);
    auto next = ktls_test::RandomBytes(20);
    auto raw = RawRecord(s, ktls_test::MinRecordPayload(s) - 1);
    WriteAll(sv[1], raw);
    ExpectError(sv[0], EMSGSIZE, s.name);
    // The skipped record used sequence number 100.
    WriteAll(sv[1], ktls_test::EncryptRecord(s, keys, 101, TLS_RLTYPE_APP,
                                             next.data(), next.size(), 0, 1));
    ExpectRecord(sv[0], s, TLS_RLTYPE_APP, next);
    Close(sv);
  }
}

// FreeBSD's _padding_{1..16}, _padding_16_extra and _padding_32_extra for
// CBC; _short_padded and _long_padded for TLS 1.3.
TEST_F(KtlsRxCases, CbcPaddingAndTls13Padding) {
  for (const Suite& s : ktls_test::RxSuites()) {
    const bool tls13 = s.minor == TLS_MINOR_VER_THREE;
    if (s.cipher != CRYPTO_AES_CBC && !tls13) continue;
    int sv[2];
    TlsKeys keys;
    uint64_t seq = 1000;
    Open(s, seq, &keys, sv);
    std::vector<std::pair<size_t, size_t>> shapes;  // payload, extra padding
    if (tls13) {
      shapes = {{64, 16}};
      for (size_t off = 0; off < 65536; off += 16369)
        shapes.push_back({std::min<size_t>(16369, 65536 - off), 15});
    } else {
      for (size_t n = 1; n <= 16; n++) shapes.push_back({n, 0});
      shapes.push_back({16, 16});
      shapes.push_back({16, 32});
    }
    for (auto [len, pad] : shapes) {
      auto data = ktls_test::RandomBytes(len);
      WriteAll(sv[1], ktls_test::EncryptRecord(s, keys, seq++, TLS_RLTYPE_APP,
                                               data.data(), len, pad));
      ExpectRecord(sv[0], s, TLS_RLTYPE_APP, data);
    }
    Close(sv);
  }
}

// Records a byte per segment, read a byte per recvmsg: the cmsg comes with
// the first byte of each record only, MSG_EOR with its last; an empty
// record is 0 bytes with its cmsg.
TEST_F(KtlsRxCases, ByteAtATimeArrivalAndOneByteReads) {
  for (const Suite& s : {ktls_test::GcmSuites()[0], ktls_test::CbcSuites()[6],
                         ktls_test::ChachaSuites()[1], ktls_test::Sm4Suites()[1]}) {
    int sv[2];
    TlsKeys keys;
    Open(s, 9, &keys, sv);
    std::vector<std::vector<uint8_t>> recs = {ktls_test::RandomBytes(1),
                                              ktls_test::RandomBytes(37),
                                              {},
                                              ktls_test::RandomBytes(300)};
    std::vector<uint8_t> wire;
    for (size_t i = 0; i < recs.size(); i++) {
      auto r = ktls_test::EncryptRecord(s, keys, 9 + i, TLS_RLTYPE_APP,
                                        recs[i].data(), recs[i].size(), 0, i);
      wire.insert(wire.end(), r.begin(), r.end());
    }
    std::thread writer([&] {
      for (uint8_t b : wire) ASSERT_EQ(uk_send(p_, sv[1], &b, 1, 0), 1);
      uk_shutdown(p_, sv[1], SHUT_WR);
    });
    for (const auto& want : recs) {
      std::vector<uint8_t> got, one;
      tls_get_record tgr{};
      bool cm;
      int flags;
      if (want.empty()) {
        ASSERT_EQ(Recv(sv[0], &one, 1, &tgr, &cm, &flags), 0) << s.name;
        EXPECT_TRUE(cm) << s.name;
        EXPECT_EQ(flags & MSG_EOR, 0);
        EXPECT_EQ(tgr.tls_length, 0);
        continue;
      }
      for (size_t i = 0; i < want.size(); i++) {
        ASSERT_EQ(Recv(sv[0], &one, 1, &tgr, &cm, &flags), 1)
            << s.name << ": " << strerror(errno);
        EXPECT_EQ(cm, i == 0) << s.name << " byte " << i;
        if (i == 0) {
          EXPECT_EQ(ntohs(tgr.tls_length), want.size());
        }
        EXPECT_EQ((flags & MSG_EOR) != 0, i + 1 == want.size()) << s.name << " byte " << i;
        got.push_back(one[0]);
      }
      EXPECT_EQ(got, want) << s.name;
    }
    writer.join();
    // Then EOF: 0 without a cmsg.
    std::vector<uint8_t> one;
    tls_get_record tgr;
    bool cm;
    int flags;
    EXPECT_EQ(Recv(sv[0], &one, 1, &tgr, &cm, &flags), 0);
    EXPECT_FALSE(cm);
    Close(sv);
  }
}

// EOF right behind many records: the reader gets every record the worker
// still has to decrypt, then EOF (not EMSGSIZE: nothing is partial).
TEST_F(KtlsRxCases, EofBehindRecordsStillBeingDecrypted) {
  for (const Suite& s : {ktls_test::GcmSuites()[3], ktls_test::CbcSuites()[9]}) {
    int sv[2];
    TlsKeys keys;
    Open(s, 0, &keys, sv);
    std::vector<std::vector<uint8_t>> recs;
    std::vector<uint8_t> wire;
    for (int i = 0; i < 150; i++) {
      recs.push_back(ktls_test::RandomBytes(1 + (i * 997) % 2000));
      auto r = ktls_test::EncryptRecord(s, keys, i, TLS_RLTYPE_APP, recs[i].data(),
                                        recs[i].size(), 0, i);
      wire.insert(wire.end(), r.begin(), r.end());
    }
    std::thread writer([&] {
      WriteAll(sv[1], wire);
      uk_shutdown(p_, sv[1], SHUT_WR);
    });
    for (const auto& want : recs) ExpectRecord(sv[0], s, TLS_RLTYPE_APP, want);
    writer.join();
    std::vector<uint8_t> got;
    tls_get_record tgr;
    bool cm;
    int flags;
    EXPECT_EQ(Recv(sv[0], &got, 100, &tgr, &cm, &flags), 0) << s.name << ": " << strerror(errno);
    EXPECT_FALSE(cm);
    Close(sv);
  }
}

// read() discards the cmsg but still returns one record at most.
TEST_F(KtlsRxCases, ReadStopsAtRecordBoundaries) {
  const Suite s = ktls_test::GcmSuites()[2];
  int sv[2];
  TlsKeys keys;
  Open(s, 1, &keys, sv);
  auto a = ktls_test::RandomBytes(100), b = ktls_test::RandomBytes(200);
  auto wire = ktls_test::EncryptRecord(s, keys, 1, TLS_RLTYPE_APP, a.data(), 100);
  auto rb = ktls_test::EncryptRecord(s, keys, 2, TLS_RLTYPE_APP, b.data(), 200);
  wire.insert(wire.end(), rb.begin(), rb.end());
  WriteAll(sv[1], wire);
  uk_shutdown(p_, sv[1], SHUT_WR);
  std::vector<uint8_t> buf(1000);
  ASSERT_EQ(uk_read(p_, sv[0], buf.data(), buf.size()), 100);
  EXPECT_EQ(0, memcmp(buf.data(), a.data(), 100));
  ASSERT_EQ(uk_read(p_, sv[0], buf.data(), 50), 50);
  EXPECT_EQ(0, memcmp(buf.data(), b.data(), 50));
  ASSERT_EQ(uk_read(p_, sv[0], buf.data(), buf.size()), 150);
  EXPECT_EQ(0, memcmp(buf.data(), b.data() + 50, 150));
  EXPECT_EQ(uk_read(p_, sv[0], buf.data(), buf.size()), 0);
  Close(sv);
}

// The peer closing, shutting down or resetting in the middle of a record:
// the whole records before it are delivered, then FreeBSD's error.
TEST_F(KtlsRxCases, PeerEndsInsideARecord) {
  for (const Suite& s : {ktls_test::GcmSuites()[1], ktls_test::CbcSuites()[4],
                         ktls_test::ChachaSuites()[1]}) {
    for (const char* how : {"close", "shutdown", "mid_header", "boundary", "reset"}) {
      std::string what = std::string(s.name) + " " + how;
      int sv[2];
      TlsKeys keys;
      Open(s, 0, &keys, sv);
      auto a = ktls_test::RandomBytes(500), b = ktls_test::RandomBytes(500);
      auto ra = ktls_test::EncryptRecord(s, keys, 0, TLS_RLTYPE_APP, a.data(), 500);
      auto rb = ktls_test::EncryptRecord(s, keys, 1, TLS_RLTYPE_APP, b.data(), 500);
      std::string h = how;
      std::vector<uint8_t> wire = ra;
      if (h == "mid_header")
        wire.insert(wire.end(), rb.begin(), rb.begin() + 3);
      else if (h != "boundary")
        wire.insert(wire.end(), rb.begin(), rb.begin() + rb.size() / 2);
      WriteAll(sv[1], wire);
      // The first record is decrypted and readable before the peer ends
      // (poll is readable only once a record is).
      pollfd pfd{sv[0], POLLIN, 0};
      ASSERT_EQ(uk_poll(p_, &pfd, 1, 5000), 1) << what;
      int err = EMSGSIZE;
      if (h == "close") {
        uk_close(p_, sv[1]);
        sv[1] = -1;
      } else if (h == "reset") {
        linger lg{1, 0};
        uk_setsockopt(p_, sv[1], SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
        uk_close(p_, sv[1]);
        sv[1] = -1;
        err = ECONNRESET;
      } else {
        uk_shutdown(p_, sv[1], SHUT_WR);
        if (h == "boundary") err = 0;
      }
      ExpectRecord(sv[0], s, TLS_RLTYPE_APP, a);
      if (err != 0) {
        ExpectError(sv[0], err, what);
      } else {
        std::vector<uint8_t> got;
        tls_get_record tgr;
        bool cm;
        int flags;
        EXPECT_EQ(Recv(sv[0], &got, 100, &tgr, &cm, &flags), 0) << what;
        EXPECT_FALSE(cm) << what;
      }
      uk_close(p_, sv[0]);
      if (sv[1] >= 0) uk_close(p_, sv[1]);
    }
  }
}

// The reader shutting down (SHUT_RD) or closing with records queued,
// decrypted or not: what is queued is discarded, reads see EOF, and nothing
// leaks (the kernel halts clean).
TEST_F(KtlsRxCases, ReaderShutdownAndCloseWithRecordsQueued) {
  const Suite s = ktls_test::ChachaSuites()[0];
  for (bool close_it : {false, true}) {
    int sv[2];
    TlsKeys keys;
    Open(s, 0, &keys, sv);
    std::vector<uint8_t> wire;
    for (int i = 0; i < 40; i++) {
      auto d = ktls_test::RandomBytes(1000);
      auto r = ktls_test::EncryptRecord(s, keys, i, TLS_RLTYPE_APP, d.data(), d.size());
      wire.insert(wire.end(), r.begin(), r.end());
    }
    WriteAll(sv[1], wire);
    pollfd pfd{sv[0], POLLIN, 0};
    ASSERT_EQ(uk_poll(p_, &pfd, 1, 5000), 1);
    if (close_it) {
      EXPECT_EQ(uk_close(p_, sv[0]), 0);
    } else {
      ASSERT_EQ(uk_shutdown(p_, sv[0], SHUT_RD), 0);
      std::vector<uint8_t> buf(20000);
      EXPECT_EQ(uk_recv(p_, sv[0], buf.data(), buf.size(), 0), 0);
      EXPECT_EQ(uk_recv(p_, sv[0], buf.data(), buf.size(), 0), 0);
      uk_close(p_, sv[0]);
    }
    uk_close(p_, sv[1]);
  }
}

size_t TransferBytes() {
  const char* e = getenv("UKTLS_KTLS_TRANSFER_MB");
  return static_cast<size_t>(e != nullptr ? std::max(1, atoi(e)) : 2) << 20;
}

// KTLS on both ends, both directions at once, random write and read sizes;
// each side hashes what it sent and what it received (SHA-256).
TEST_F(KtlsRxCases, KtlsToKtlsBothDirectionsHashChecked) {
  const size_t total = TransferBytes();
  for (const Suite& s : {ktls_test::GcmSuites()[3], ktls_test::ChachaSuites()[0],
                         ktls_test::CbcSuites()[7]}) {
    int sv[2];
    ktls_test::LoopbackPair(p_, sv, false);
    TlsKeys k01, k10;
    ktls_test::BuildTlsEnable(s, 3, &k01);
    ktls_test::BuildTlsEnable(s, 1u << 30, &k10);
    EnableBothWays(sv, k01, k10);
    if (HasFatalFailure()) return;
    std::string sent_hash[2], recv_hash[2];
    size_t received[2] = {0, 0};
    auto hex = [](const unsigned char* md, unsigned n) {
      std::string h;
      char b[3];
      for (unsigned i = 0; i < n; i++) {
        snprintf(b, sizeof b, "%02x", md[i]);
        h += b;
      }
      return h;
    };
    auto sender = [&](int i) {
      EVP_MD_CTX* ctx = EVP_MD_CTX_new();
      EVP_DigestInit_ex(ctx, EVP_sha256(), nullptr);
      std::mt19937_64 rng(i + 1);
      std::vector<uint8_t> buf(100000);
      for (auto& b : buf) b = static_cast<uint8_t>(rng());
      size_t off = 0;
      while (off < total) {
        size_t n = std::min<size_t>(1 + rng() % 70000, total - off);
        size_t start = rng() % (buf.size() - n + 1);
        ssize_t w = uk_send(p_, sv[i], buf.data() + start, n, 0);
        if (w <= 0) break;
        EVP_DigestUpdate(ctx, buf.data() + start, w);
        off += w;
      }
      unsigned char md[32];
      unsigned mdlen = 0;
      EVP_DigestFinal_ex(ctx, md, &mdlen);
      EVP_MD_CTX_free(ctx);
      sent_hash[i] = hex(md, mdlen);
    };
    auto receiver = [&](int i) {
      EVP_MD_CTX* ctx = EVP_MD_CTX_new();
      EVP_DigestInit_ex(ctx, EVP_sha256(), nullptr);
      std::mt19937_64 rng(i + 100);
      std::vector<uint8_t> buf(20000);
      while (received[i] < total) {
        size_t n = 1 + rng() % buf.size();
        ssize_t r = uk_recv(p_, sv[i], buf.data(), n, 0);
        if (r <= 0) break;
        EVP_DigestUpdate(ctx, buf.data(), r);
        received[i] += r;
      }
      unsigned char md[32];
      unsigned mdlen = 0;
      EVP_DigestFinal_ex(ctx, md, &mdlen);
      EVP_MD_CTX_free(ctx);
      recv_hash[i] = hex(md, mdlen);
    };
    std::thread t[4] = {std::thread(sender, 0), std::thread(sender, 1),
                        std::thread(receiver, 0), std::thread(receiver, 1)};
    for (auto& th : t) th.join();
    EXPECT_EQ(received[1], total) << s.name;
    EXPECT_EQ(received[0], total) << s.name;
    EXPECT_EQ(recv_hash[1], sent_hash[0]) << s.name << " 0->1";
    EXPECT_EQ(recv_hash[0], sent_hash[1]) << s.name << " 1->0";
    uk_close(p_, sv[0]);
    uk_close(p_, sv[1]);
  }
}

}  // namespace
