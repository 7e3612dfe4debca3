// sendfile(2) over lo0, with and without KTLS: the peer reads the records
// and decrypts them with OpenSSL EVP (records of more than two pages are
// encrypted into contiguous buffers); the file is unchanged afterwards.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>

#include <algorithm>
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

// What a peer read off a KTLS connection.
struct Plaintext {
  std::vector<uint8_t> bytes;
  size_t largest = 0;  // the most plaintext one record held
  size_t records = 0;
};

// Reads records from fd until n bytes of plaintext have come, each
// decrypted and checked (EVP) in order from seq, the IV chained for TLS 1.0.
void ReadPlaintext(uk_proc* p, int fd, const Suite& s, const TlsKeys& keys, uint64_t seq,
                   size_t n, Plaintext* out) {
  std::vector<uint8_t> rec, pt, chain(keys.iv);
  while (out->bytes.size() < n) {
    ASSERT_TRUE(ktls_test::ReadRecord(p, fd, &rec));
    uint8_t type;
    std::string why;
    ASSERT_TRUE(ktls_test::DecryptRecord(s, keys, seq + out->records, rec.data(), rec.size(),
                                         &pt, &type, &why, &chain))
        << s.name << " record " << out->records << ": " << why;
    out->largest = std::max(out->largest, pt.size());
    out->bytes.insert(out->bytes.end(), pt.begin(), pt.end());
    out->records++;
  }
}

class Sendfile : public ::testing::Test {
 protected:
  void SetUp() override {
    uk_boot_config cfg{};
    cfg.ncpus = 2;
    k_ = uk_boot(&cfg);
    ASSERT_NE(k_, nullptr);
    p_ = uk_proc_create(k_, "sf");
  }
  void TearDown() override { EXPECT_EQ(uk_halt(k_), 0); }

  void Pair(int sv[2]) { ktls_test::LoopbackPair(p_, sv, false); }

  bool ReadFull(int fd, uint8_t* buf, size_t n) {
    return ktls_test::ReadFull(p_, fd, buf, n);
  }

  uint64_t Counter(const char* name) {
    uint64_t v = 0;
    size_t len = sizeof v;
    EXPECT_EQ(uk_sysctlbyname(p_, name, &v, &len, nullptr, 0), 0) << name;
    return v;
  }

  uk_kernel* k_ = nullptr;
  uk_proc* p_ = nullptr;
};

TEST_F(Sendfile, KtlsRecordsFromFilePagesLeaveTheFileIntact) {
  const Suite suites[] = {ktls_test::GcmSuites()[0], ktls_test::CbcSuites()[0],
                          ktls_test::ChachaSuites()[1]};
  int fd = uk_open(p_, "/f", O_RDWR | O_CREAT, 0644);
  ASSERT_GE(fd, 0) << strerror(errno);
  const size_t fsize = 300000;
  auto content = ktls_test::RandomBytes(fsize);
  ASSERT_EQ(uk_pwrite(p_, fd, content.data(), fsize, 0), static_cast<ssize_t>(fsize));
  const uint64_t runs0 = Counter("vm.pages.runs");
  for (const Suite& s : suites) {
    for (off_t off : {off_t{0}, off_t{1}, off_t{4095}}) {
      for (size_t n : {size_t{1}, size_t{4096}, size_t{100000}}) {
        int sv[2];
        Pair(sv);
        TlsKeys keys;
        ktls_test::BuildTlsEnable(s, 40, &keys);
        ASSERT_EQ(uk_setsockopt(p_, sv[1], IPPROTO_TCP, TCP_TXTLS_ENABLE,
                                &keys.en, sizeof keys.en),
                  0);
        std::vector<uint8_t> hdr = ktls_test::RandomBytes(20);
        std::vector<uint8_t> trl = ktls_test::RandomBytes(7);
        iovec hv{hdr.data(), hdr.size()}, tv{trl.data(), trl.size()};
        uk_sf_hdtr hdtr{&hv, 1, &tv, 1};
        std::vector<uint8_t> expect(hdr);
        expect.insert(expect.end(), content.begin() + off, content.begin() + off + n);
        expect.insert(expect.end(), trl.begin(), trl.end());
        off_t sbytes = -1;
        int rc = -2;
        std::thread sender([&] {
          rc = uk_sendfile(p_, fd, sv[1], off, n, &hdtr, &sbytes, 0);
        });
        Plaintext got;
        ASSERT_NO_FATAL_FAILURE(ReadPlaintext(p_, sv[0], s, keys, 40, expect.size(), &got))
            << " off " << off << " n " << n;
        EXPECT_LE(got.largest, 16384u);
        sender.join();
        EXPECT_EQ(rc, 0) << strerror(errno);
        EXPECT_EQ(sbytes, static_cast<off_t>(expect.size()));
        EXPECT_EQ(got.bytes, expect) << s.name << " off " << off << " n " << n;
        uk_close(p_, sv[0]);
        uk_close(p_, sv[1]);
      }
    }
  }
  // The records of more than two pages went to contiguous buffers
  // (kern.ipc.tls.sw_buffer_cache, on by default).
  EXPECT_GT(Counter("vm.pages.runs"), runs0);
  // The file still holds its plaintext.
  std::vector<uint8_t> back(fsize);
  ASSERT_EQ(uk_pread(p_, fd, back.data(), fsize, 0), static_cast<ssize_t>(fsize));
  EXPECT_EQ(back, content);
  uk_close(p_, fd);
}

// kern.ipc.tls.maxlen below a page, or not a page multiple: sendfile's
// records never carry more than max_frame_len bytes (several records per
// page), and the stream is the file.
TEST(SendfileMaxlen, RecordsNeverExceedMaxlen) {
  for (int maxlen : {1024, 6000}) {
    std::string tun = "kern.ipc.tls.maxlen=" + std::to_string(maxlen);
    uk_boot_config cfg{};
    cfg.ncpus = 1;
    cfg.tunables = tun.c_str();
    uk_kernel* k = uk_boot(&cfg);
    ASSERT_NE(k, nullptr);
    uk_proc* p = uk_proc_create(k, "sf");
    int fd = uk_open(p, "/f", O_RDWR | O_CREAT, 0644);
    ASSERT_GE(fd, 0) << strerror(errno);
    auto content = ktls_test::RandomBytes(50000);
    ASSERT_EQ(uk_pwrite(p, fd, content.data(), content.size(), 0), 50000);
    const Suite s = ktls_test::GcmSuites()[0];
    for (off_t off : {off_t{0}, off_t{1000}}) {
      int sv[2];
      ktls_test::LoopbackPair(p, sv, false);
      TlsKeys keys;
      ktls_test::BuildTlsEnable(s, 0, &keys);
      ASSERT_EQ(uk_setsockopt(p, sv[1], IPPROTO_TCP, TCP_TXTLS_ENABLE, &keys.en,
                              sizeof keys.en),
                0);
      const size_t n = content.size() - off;
      int rc = -2;
      std::thread sender([&] { rc = uk_sendfile(p, fd, sv[1], off, n, nullptr, nullptr, 0); });
      Plaintext got;
      ASSERT_NO_FATAL_FAILURE(ReadPlaintext(p, sv[0], s, keys, 0, n, &got));
      EXPECT_LE(got.largest, static_cast<size_t>(maxlen)) << "maxlen " << maxlen;
      sender.join();
      EXPECT_EQ(rc, 0) << strerror(errno);
      EXPECT_TRUE(std::equal(got.bytes.begin(), got.bytes.end(), content.begin() + off))
          << "maxlen " << maxlen << " off " << off;
      EXPECT_GE(got.records, (n + maxlen - 1) / maxlen);
      uk_close(p, sv[0]);
      uk_close(p, sv[1]);
    }
    uk_close(p, fd);
    EXPECT_EQ(uk_halt(k), 0);
  }
}

// kern.ipc.tls.tx_ready_bytes: with a 1 MiB send buffer sendfile's batches
// are half of it, and the worker hands each to TCP in parts (here every
// record or two) while it encrypts the rest; the peer still gets every
// record, in order, intact. 0 (one hand-over per batch, as FreeBSD) too.
TEST(SendfileTxReady, BatchesHandedOverInPartsArriveInOrder) {
  for (const char* ready : {"kern.ipc.tls.tx_ready_bytes=20000", "kern.ipc.tls.tx_ready_bytes=0"}) {
    SCOPED_TRACE(ready);
    uk_boot_config cfg{};
    cfg.ncpus = 1;
    cfg.tunables = ready;
    uk_kernel* k = uk_boot(&cfg);
    ASSERT_NE(k, nullptr);
    uk_proc* p = uk_proc_create(k, "sf");
    int fd = uk_open(p, "/f", O_RDWR | O_CREAT, 0644);
    ASSERT_GE(fd, 0) << strerror(errno);
    const size_t fsize = 3 * 1024 * 1024 + 777;
    auto content = ktls_test::RandomBytes(fsize);
    ASSERT_EQ(uk_pwrite(p, fd, content.data(), fsize, 0), static_cast<ssize_t>(fsize));
    for (const Suite& s : {ktls_test::GcmSuites()[2], ktls_test::CbcSuites()[0]}) {
      SCOPED_TRACE(s.name);
      int sv[2];
      ktls_test::LoopbackPair(p, sv, false);
      int sndbuf = 1024 * 1024;
      ASSERT_EQ(uk_setsockopt(p, sv[1], SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof sndbuf), 0);
      TlsKeys keys;
      ktls_test::BuildTlsEnable(s, 0, &keys);
      ASSERT_EQ(uk_setsockopt(p, sv[1], IPPROTO_TCP, TCP_TXTLS_ENABLE, &keys.en,
                              sizeof keys.en),
                0);
      int rc = -2;
      off_t sbytes = 0;
      std::thread sender([&] { rc = uk_sendfile(p, fd, sv[1], 0, 0, nullptr, &sbytes, 0); });
      Plaintext got;
      ASSERT_NO_FATAL_FAILURE(ReadPlaintext(p, sv[0], s, keys, 0, fsize, &got));
      sender.join();
      EXPECT_EQ(rc, 0) << strerror(errno);
      EXPECT_EQ(sbytes, static_cast<off_t>(fsize));
      EXPECT_TRUE(got.bytes == content);
      uk_close(p, sv[0]);
      uk_close(p, sv[1]);
    }
    uk_close(p, fd);
    EXPECT_EQ(uk_halt(k), 0);
  }
}

TEST_F(Sendfile, PlainSocketSendsThePages) {
  int fd = uk_open(p_, "/g", O_RDWR | O_CREAT, 0644);
  ASSERT_GE(fd, 0);
  auto content = ktls_test::RandomBytes(50000);
  ASSERT_EQ(uk_pwrite(p_, fd, content.data(), content.size(), 0), 50000);
  int sv[2];
  Pair(sv);
  off_t sbytes = 0;
  int rc = -2;
  // nbytes 0: to the end of the file.
  std::thread sender([&] { rc = uk_sendfile(p_, fd, sv[1], 123, 0, nullptr, &sbytes, 0); });
  std::vector<uint8_t> got(50000 - 123);
  ASSERT_TRUE(ReadFull(sv[0], got.data(), got.size()));
  sender.join();
  EXPECT_EQ(rc, 0);
  EXPECT_EQ(sbytes, 50000 - 123);
  EXPECT_EQ(0, memcmp(got.data(), content.data() + 123, got.size()));
  // Errors: not a socket, not a file.
  EXPECT_EQ(uk_sendfile(p_, fd, fd, 0, 1, nullptr, nullptr, 0), -1);
  EXPECT_EQ(errno, ENOTSOCK);
  EXPECT_EQ(uk_sendfile(p_, sv[0], sv[1], 0, 1, nullptr, nullptr, 0), -1);
  EXPECT_EQ(errno, EINVAL);
  uk_close(p_, sv[0]);
  uk_close(p_, sv[1]);
  uk_close(p_, fd);
}

}  // namespace
