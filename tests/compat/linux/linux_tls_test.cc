// The Linux kTLS personality (sys/compat/linux) through the system-call
// boundary, as Linux's tools/testing/selftests/net/tls.c checks it: TCP_ULP
// rules, SOL_TLS option validation, getsockopt forms, rekey, options and the
// compat.linux.tls_stat counters. Every record a Linux-personality socket
// sends is read raw from the peer and decrypted with OpenSSL EVP
// (ktls_test_util), which also checks Linux's explicit-nonce rule.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <algorithm>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "lib/libuk/uk.h"
#include "tests/sys/kern/ktls_test_util.h"

namespace {

constexpr int kSolTls = 282;
constexpr int kTcpUlp = 31;
constexpr int kTlsTx = 1, kTlsRx = 2, kZcRo = 3, kNoPad = 4, kMaxPayload = 5;
constexpr uint16_t k12 = 0x0303, k13 = 0x0304;

struct LinuxCipher {
  const char* name;
  uint16_t id;
  int iv, key, salt;
  int crypto;
};
const LinuxCipher kGcm128{"aes_gcm_128", 51, 8, 16, 4, CRYPTO_AES_NIST_GCM_16};
const LinuxCipher kGcm256{"aes_gcm_256", 52, 8, 32, 4, CRYPTO_AES_NIST_GCM_16};
const LinuxCipher kChacha{"chacha20", 54, 12, 32, 0, CRYPTO_CHACHA20_POLY1305};
const LinuxCipher kSm4Gcm{"sm4_gcm", 55, 8, 16, 4, CRYPTO_SM4_GCM_16};
const LinuxCipher kSm4Ccm{"sm4_ccm", 56, 8, 16, 4, CRYPTO_SM4_CCM_16};
const LinuxCipher kCcm128{"aes_ccm_128", 53, 8, 16, 4, CRYPTO_AES_CCM_16};
const LinuxCipher kAria128{"aria_gcm_128", 57, 8, 16, 4, CRYPTO_ARIA_GCM_16};
const LinuxCipher kAria256{"aria_gcm_256", 58, 8, 32, 4, CRYPTO_ARIA_GCM_16};

// A <linux/tls.h> tls12_crypto_info_* in bytes, as tls_crypto_info_init()
// of the selftest builds it (every byte `gen`, then the header), and the
// same keys in the form the EVP checker takes.
struct LinuxInfo {
  LinuxCipher c;
  uint16_t version;
  std::vector<uint8_t> bytes;
  ktls_test::Suite suite;
  ktls_test::TlsKeys keys;
  uint64_t rec_seq() const {
    uint64_t v = 0;
    for (int i = 0; i < 8; i++) v = (v << 8) | bytes[4 + c.iv + c.key + c.salt + i];
    return v;
  }
  uint64_t iv64() const {
    uint64_t v = 0;
    for (int i = 0; i < 8; i++) v = (v << 8) | bytes[4 + i];
    return v;
  }
};

LinuxInfo MakeInfo(const LinuxCipher& c, uint16_t version, uint8_t gen,
                   uint64_t rec_seq) {
  LinuxInfo li{c, version, {}, {}, {}};
  li.bytes.assign(4 + c.iv + c.key + c.salt + 8, gen);
  // Distinct bytes so a wrong offset shows.
  for (size_t i = 4; i < li.bytes.size(); i++)
    li.bytes[i] = static_cast<uint8_t>(gen * 31 + i);
  memcpy(&li.bytes[0], &version, 2);
  memcpy(&li.bytes[2], &c.id, 2);
  uint8_t* seq = &li.bytes[4 + c.iv + c.key + c.salt];
  for (int i = 7; i >= 0; i--, rec_seq >>= 8) seq[i] = rec_seq & 0xff;
  int minor = version == k13 ? TLS_MINOR_VER_THREE : TLS_MINOR_VER_TWO;
  li.suite = ktls_test::Suite{c.name, c.crypto, c.key, 0, minor};
  const uint8_t* iv = &li.bytes[4];
  const uint8_t* key = iv + c.iv;
  const uint8_t* salt = key + c.key;
  li.keys.cipher_key.assign(key, key + c.key);
  if (c.salt == 0) {
    li.keys.iv.assign(iv, iv + c.iv);
  } else if (version == k12) {
    li.keys.iv.assign(salt, salt + c.salt);
  } else {
    li.keys.iv.assign(salt, salt + c.salt);
    li.keys.iv.insert(li.keys.iv.end(), iv, iv + c.iv);
  }
  return li;
}

using ktls_test::Loopback;

class LinuxTls : public ktls_test::KernelTest {
 protected:
  LinuxTls() : KernelTest("linux_tls") {}

  // fd: the client, cfd: the accepted socket (the selftest's names).
  void Pair(int* fd, int* cfd, bool ulp = true) {
    int sv[2];
    ktls_test::LoopbackPair(p_, sv, false);
    *fd = sv[0];
    *cfd = sv[1];
    int one = 1;
    ASSERT_EQ(uk_setsockopt(p_, *fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one), 0);
    if (ulp) {
      ASSERT_EQ(uk_setsockopt(p_, *fd, IPPROTO_TCP, kTcpUlp, "tls", 4), 0);
      ASSERT_EQ(uk_setsockopt(p_, *cfd, IPPROTO_TCP, kTcpUlp, "tls", 4), 0);
    }
  }

  int Set(int fd, int name, const LinuxInfo& li) {
    return uk_setsockopt(p_, fd, kSolTls, name, li.bytes.data(),
                         li.bytes.size());
  }
  // A connected pair with the ULP on both ends, TLS_TX on *fd and TLS_RX on
  // *cfd with the same keys.
  LinuxInfo TlsPair(int* fd, int* cfd, const LinuxCipher& c, uint16_t version,
                    uint8_t gen, uint64_t rec_seq) {
    Pair(fd, cfd);
    LinuxInfo li = MakeInfo(c, version, gen, rec_seq);
    EXPECT_EQ(Set(*fd, kTlsTx, li), 0);
    EXPECT_EQ(Set(*cfd, kTlsRx, li), 0);
    return li;
  }

  uint64_t LStat(const char* n) {
    return Stat(std::string("compat.linux.tls_stat.") + n);
  }

  // Reads one raw record from fd and checks it as the peer: sequence
  // number seq, type, payload, Linux's 0303 header and (TLS 1.2 AEAD) the
  // explicit nonce iv + n.
  void CheckRecord(const LinuxInfo& li, int fd, uint64_t seq, uint64_t nonce,
                   uint8_t type, const std::vector<uint8_t>& expect) {
    std::vector<uint8_t> rec, pt;
    ASSERT_TRUE(ReadRecord(fd, &rec));
    EXPECT_EQ(rec[1], 3);
    EXPECT_EQ(rec[2], 3);
    uint8_t t = 0;
    std::string why;
    ASSERT_TRUE(ktls_test::DecryptRecord(li.suite, li.keys, seq, rec.data(),
                                         rec.size(), &pt, &t, &why))
        << li.c.name << " seq " << seq << ": " << why;
    EXPECT_EQ(t, type);
    EXPECT_EQ(pt, expect);
    if (li.version == k12 && li.c.salt != 0) {
      uint64_t n = 0;
      for (int i = 0; i < 8; i++) n = (n << 8) | rec[5 + i];
      EXPECT_EQ(n, nonce) << li.c.name;
    }
  }
};

TEST_F(LinuxTls, UlpOnlyOnEstablishedSockets) {
  // non_established: before connect and on a listener -> ENOTCONN.
  int s = uk_socket(p_, AF_INET, SOCK_STREAM, 0);
  EXPECT_EQ(uk_setsockopt(p_, s, IPPROTO_TCP, kTcpUlp, "tls", 4), -1);
  EXPECT_EQ(errno, ENOTCONN);
  uint16_t port;
  int l = Listen(&port);
  EXPECT_EQ(uk_setsockopt(p_, l, IPPROTO_TCP, kTcpUlp, "tls", 4), -1);
  EXPECT_EQ(errno, ENOTCONN);
  uk_close(p_, l);
  uk_close(p_, s);

  int fd, cfd;
  Pair(&fd, &cfd, false);
  // SOL_TLS before the ULP is not a TCP level.
  LinuxInfo li = MakeInfo(kGcm128, k12, 1, 0);
  EXPECT_EQ(Set(fd, kTlsTx, li), -1);
  EXPECT_EQ(errno, ENOPROTOOPT);
  EXPECT_EQ(uk_setsockopt(p_, fd, IPPROTO_TCP, kTcpUlp, "nope", 5), -1);
  EXPECT_EQ(errno, ENOENT);
  EXPECT_EQ(uk_setsockopt(p_, fd, IPPROTO_TCP, kTcpUlp, "tls", 4), 0);
  EXPECT_EQ(uk_setsockopt(p_, fd, IPPROTO_TCP, kTcpUlp, "tls", 4), -1);
  EXPECT_EQ(errno, EEXIST);
  char name[16] = {};
  socklen_t nlen = sizeof name;
  EXPECT_EQ(uk_getsockopt(p_, fd, IPPROTO_TCP, kTcpUlp, name, &nlen), 0);
  EXPECT_STREQ(name, "tls");

  // base_base: with the ULP and no keys the socket is plain TCP.
  EXPECT_EQ(uk_send(p_, fd, "0123456789", 10, 0), 10);
  char buf[10];
  EXPECT_TRUE(ReadFull(cfd, reinterpret_cast<uint8_t*>(buf), 10));
  EXPECT_EQ(memcmp(buf, "0123456789", 10), 0);
}

TEST_F(LinuxTls, BadCipherVersionAndLength) {
  int fd, cfd;
  Pair(&fd, &cfd);
  LinuxInfo li = MakeInfo(kGcm128, k12, 1, 0);
  // bad_cipher: version 200, ciphers 50, 59, 10, 70.
  LinuxInfo bad = li;
  uint16_t v = 200;
  memcpy(&bad.bytes[0], &v, 2);
  EXPECT_EQ(Set(fd, kTlsTx, bad), -1);
  EXPECT_EQ(errno, EINVAL);
  for (uint16_t c : {50, 59, 10, 70}) {
    bad = li;
    memcpy(&bad.bytes[2], &c, 2);
    EXPECT_EQ(Set(fd, kTlsTx, bad), -1) << c;
    EXPECT_EQ(errno, EINVAL);
  }
  // Exact lengths only; fewer than 4 bytes.
  EXPECT_EQ(uk_setsockopt(p_, fd, kSolTls, kTlsTx, li.bytes.data(), 39), -1);
  EXPECT_EQ(errno, EINVAL);
  std::vector<uint8_t> longer = li.bytes;
  longer.push_back(0);
  EXPECT_EQ(uk_setsockopt(p_, fd, kSolTls, kTlsTx, longer.data(), 41), -1);
  EXPECT_EQ(errno, EINVAL);
  EXPECT_EQ(uk_setsockopt(p_, fd, kSolTls, kTlsTx, li.bytes.data(), 3), -1);
  EXPECT_EQ(errno, EINVAL);
  // ARIA is TLS 1.2 only.
  LinuxCipher aria{"aria_gcm_128", 57, 8, 16, 4, 0};
  LinuxInfo a13 = MakeInfo(aria, k13, 1, 0);
  EXPECT_EQ(Set(fd, kTlsTx, a13), -1);
  EXPECT_EQ(errno, EINVAL);
  // Unknown SOL_TLS option.
  int one = 1;
  EXPECT_EQ(uk_setsockopt(p_, fd, kSolTls, 99, &one, sizeof one), -1);
  EXPECT_EQ(errno, ENOPROTOOPT);
  socklen_t len = sizeof one;
  EXPECT_EQ(uk_getsockopt(p_, fd, kSolTls, 99, &one, &len), -1);
  EXPECT_EQ(errno, ENOPROTOOPT);
  // Nothing was installed.
  EXPECT_EQ(LStat("TlsCurrTxSw"), 0u);
}

// recseq_wrap: TLS 1.2 GCM-128 with rec_seq FF x 8 -> EBADMSG.
TEST_F(LinuxTls, RecSeqWrap) {
  int fd, cfd;
  Pair(&fd, &cfd);
  ASSERT_EQ(Set(fd, kTlsTx, MakeInfo(kGcm128, k12, 1, UINT64_MAX)), 0);
  EXPECT_EQ(uk_send(p_, fd, "0123456789", 10, 0), -1);
  EXPECT_EQ(errno, EBADMSG);
}

// RX side of recseq_wrap: the record with sequence 2^64-1 is delivered,
// then the socket reports EBADMSG (sticky), as Linux's
// tls_advance_record_sn() aborts.
TEST_F(LinuxTls, RxRecSeqWrap) {
  int fd, cfd;
  Pair(&fd, &cfd);
  LinuxInfo li = MakeInfo(kGcm128, k12, 1, UINT64_MAX);
  ASSERT_EQ(Set(cfd, kTlsRx, li), 0);
  const uint8_t msg[] = "last";
  std::vector<uint8_t> rec =
      ktls_test::EncryptRecord(li.suite, li.keys, UINT64_MAX, 23, msg, 4, 0, 1);
  ASSERT_EQ(uk_send(p_, fd, rec.data(), rec.size(), 0),
            static_cast<ssize_t>(rec.size()));
  char got[8];
  ASSERT_EQ(uk_recv(p_, cfd, got, sizeof got, 0), 4);
  EXPECT_EQ(std::string(got, 4), "last");
  EXPECT_EQ(uk_recv(p_, cfd, got, sizeof got, 0), -1);
  EXPECT_EQ(errno, EBADMSG);
  EXPECT_EQ(uk_recv(p_, cfd, got, sizeof got, MSG_DONTWAIT), -1);
  EXPECT_EQ(errno, EBADMSG);
}

// Every record of every suite is decrypted with EVP: Linux's wire format,
// rec_seq from the struct, TLS 1.2 explicit nonce from its iv upwards.
TEST_F(LinuxTls, TxRecordsEverySuite) {
  struct Case {
    LinuxCipher c;
    uint16_t v;
  } cases[] = {{kGcm128, k12}, {kGcm128, k13}, {kGcm256, k12},
               {kGcm256, k13}, {kChacha, k12}, {kChacha, k13},
               {kSm4Gcm, k13}, {kSm4Ccm, k13}, {kSm4Gcm, k12},
               {kSm4Ccm, k12}, {kCcm128, k12}, {kCcm128, k13},
               {kAria128, k12}, {kAria256, k12}};
  for (const Case& cs : cases) {
    int fd, cfd;
    Pair(&fd, &cfd);
    LinuxInfo li = MakeInfo(cs.c, cs.v, 3, 1000);
    ASSERT_EQ(Set(fd, kTlsTx, li), 0) << cs.c.name << " " << cs.v;
    std::vector<uint8_t> msg(777);
    for (size_t i = 0; i < msg.size(); i++) msg[i] = static_cast<uint8_t>(i * 7);
    for (int n = 0; n < 3; n++) {
      ASSERT_EQ(uk_send(p_, fd, msg.data(), msg.size(), 0),
                static_cast<ssize_t>(msg.size()));
      CheckRecord(li, cfd, 1000 + n, li.iv64() + n, 23, msg);
    }
    // A 16384 + 10 byte send: a full record and a short one.
    std::vector<uint8_t> big(16394, 0x5a);
    ASSERT_EQ(uk_send(p_, fd, big.data(), big.size(), 0),
              static_cast<ssize_t>(big.size()));
    CheckRecord(li, cfd, 1003, li.iv64() + 3, 23,
                std::vector<uint8_t>(big.begin(), big.begin() + 16384));
    CheckRecord(li, cfd, 1004, li.iv64() + 4, 23,
                std::vector<uint8_t>(big.begin() + 16384, big.end()));
    uk_close(p_, fd);
    uk_close(p_, cfd);
  }
}

// AES-CCM, ARIA-GCM and TLS 1.2 SM4 are Linux-personality suites: the
// FreeBSD API (no "tls" ULP) refuses them as FreeBSD refuses an unknown
// cipher, with EINVAL, and counts no session.
TEST_F(LinuxTls, ExtensionSuitesAreLinuxOnly) {
  struct Case {
    LinuxCipher c;
    uint16_t v;
  } cases[] = {{kCcm128, k12}, {kCcm128, k13}, {kAria128, k12},
               {kSm4Gcm, k12}, {kSm4Ccm, k12}};
  for (const Case& cs : cases) {
    int fd, cfd;
    Pair(&fd, &cfd, /*ulp=*/false);
    LinuxInfo li = MakeInfo(cs.c, cs.v, 2, 7);
    ktls_test::TlsKeys keys;
    ktls_test::BuildTlsEnable(li.suite, 7, &keys);
    EXPECT_EQ(uk_setsockopt(p_, fd, IPPROTO_TCP, TCP_TXTLS_ENABLE, &keys.en,
                            sizeof keys.en),
              -1)
        << cs.c.name;
    EXPECT_EQ(errno, EINVAL) << cs.c.name;
    EXPECT_EQ(uk_setsockopt(p_, fd, IPPROTO_TCP, TCP_RXTLS_ENABLE, &keys.en,
                            sizeof keys.en),
              -1)
        << cs.c.name;
    EXPECT_EQ(errno, EINVAL) << cs.c.name;
    uk_close(p_, fd);
    uk_close(p_, cfd);
  }
}

// Linux's selftest sendfile family on the Linux personality: sendfile
// after a send, and a file sent in chunks (multi_chunk_sendfile's
// (chunk, extra) pairs) is read back whole through TLS_RX; with no RX the
// raw records decrypt with EVP, with Linux's explicit nonces continuing
// from the last send().
TEST_F(LinuxTls, Sendfile) {
  const std::pair<size_t, size_t> chunks[] = {
      {4096, 4096}, {4096, 0},     {4096, 1},     {4096, 2048},
      {8192, 2048}, {4096, 8192},  {8192, 4096},  {12288, 1024},
      {12288, 2000}, {15360, 100}, {15360, 300}};
  for (uint16_t v : {k12, k13}) {
    int fd, cfd;
    LinuxInfo li = TlsPair(&fd, &cfd, kGcm128, v, 4, 50);
    // send_then_sendfile.
    char ten[10] = "123456789";
    ASSERT_EQ(uk_send(p_, fd, ten, 10, 0), 10);
    char got10[10];
    ASSERT_EQ(uk_recv(p_, cfd, got10, 10, MSG_WAITALL), 10);
    EXPECT_EQ(memcmp(got10, ten, 10), 0);
    int n = 0;
    for (auto [chunk, extra] : chunks) {
      std::string path = "/mc" + std::to_string(v) + "_" + std::to_string(n++);
      int f = uk_open(p_, path.c_str(), O_RDWR | O_CREAT, 0644);
      ASSERT_GE(f, 0);
      std::vector<uint8_t> data(chunk + extra);
      for (size_t i = 0; i < data.size(); i++)
        data[i] = static_cast<uint8_t>(1 + i % 251);
      ASSERT_EQ(uk_write(p_, f, data.data(), data.size()),
                static_cast<ssize_t>(data.size()));
      off_t off = 0;
      while (off < static_cast<off_t>(data.size())) {
        off_t sbytes = 0;
        size_t left = data.size() - off;
        ASSERT_EQ(uk_sendfile(p_, f, fd, off, std::min(chunk, left), nullptr,
                              &sbytes, 0),
                  0);
        ASSERT_GT(sbytes, 0);
        off += sbytes;
      }
      std::vector<uint8_t> back(data.size());
      ASSERT_EQ(uk_recv(p_, cfd, back.data(), back.size(), MSG_WAITALL),
                static_cast<ssize_t>(back.size()))
          << chunk << "+" << extra;
      EXPECT_EQ(back, data) << chunk << "+" << extra;
      uk_close(p_, f);
    }
    uk_close(p_, fd);
    uk_close(p_, cfd);
  }
  // Raw records: one send() then a 40000-byte sendfile -> records of
  // 16384, 16384, 7232 with sequence numbers and explicit nonces following
  // the send's.
  int fd, cfd;
  Pair(&fd, &cfd);
  LinuxInfo li = MakeInfo(kGcm128, k12, 5, 9);
  ASSERT_EQ(Set(fd, kTlsTx, li), 0);
  std::vector<uint8_t> hello = {'h', 'i'};
  ASSERT_EQ(uk_send(p_, fd, hello.data(), hello.size(), 0), 2);
  CheckRecord(li, cfd, 9, li.iv64(), 23, hello);
  int f = uk_open(p_, "/raw", O_RDWR | O_CREAT, 0644);
  ASSERT_GE(f, 0);
  std::vector<uint8_t> data(40000);
  for (size_t i = 0; i < data.size(); i++) data[i] = static_cast<uint8_t>(i * 13);
  ASSERT_EQ(uk_write(p_, f, data.data(), data.size()), 40000);
  off_t sbytes = 0;
  ASSERT_EQ(uk_sendfile(p_, f, fd, 0, 0, nullptr, &sbytes, 0), 0);
  EXPECT_EQ(sbytes, 40000);
  // Record sizes follow the socket buffer's space, as on Linux; sequence
  // numbers and explicit nonces are consecutive and the payloads add up.
  std::vector<uint8_t> all;
  for (uint64_t r = 0; all.size() < data.size(); r++) {
    ASSERT_LT(r, 64u);
    std::vector<uint8_t> rec, pt;
    ASSERT_TRUE(ReadRecord(cfd, &rec));
    uint8_t t = 0;
    std::string why;
    ASSERT_TRUE(ktls_test::DecryptRecord(li.suite, li.keys, 10 + r, rec.data(),
                                         rec.size(), &pt, &t, &why))
        << "record " << r << ": " << why;
    EXPECT_EQ(t, 23);
    EXPECT_LE(pt.size(), 16384u);
    uint64_t nonce = 0;
    for (int i = 0; i < 8; i++) nonce = (nonce << 8) | rec[5 + i];
    EXPECT_EQ(nonce, li.iv64() + 1 + r);
    all.insert(all.end(), pt.begin(), pt.end());
  }
  EXPECT_EQ(all, data);
  uk_close(p_, f);
}

// Linux's zero_len fixture: raw records (seq 0, 1, 2; data "d" or control
// "c", 11 bytes of "Hello world" or empty) arrive at an RX socket; each
// recvmsg(MSG_DONTWAIT) with a cmsg buffer returns what Linux returns.
// (Linux's fixture uses AES-CCM-128; AES-GCM-128 gives the kernel's decrypt
// counter to wait on, and the receive rules do not depend on the cipher.)
TEST_F(LinuxTls, ZeroLenRecords) {
  struct Variant {
    const char* name;
    const char* recs;           // d/D: empty/11-byte data, c/C: control
    std::vector<int> returns;   // -1: EAGAIN
  } variants[] = {
      {"data_data_data", "DDD", {33, -1}},
      {"data_0ctrl_data", "DcD", {11, 0, 11, -1}},
      {"0data_0data_0data", "ddd", {-1}},
      {"0data_0data_ctrl", "ddC", {0, 11, -1}},
      {"0data_0data_0ctrl", "ddc", {0, 0, -1}},
      {"0ctrl_0ctrl_0ctrl", "ccc", {0, 0, 0, -1}},
      {"0data_0data_data", "ddD", {11, -1}},
      {"data_0data_0data", "Ddd", {11, -1}},
  };
  const std::string hello = "Hello world";
  for (const Variant& var : variants) {
    SCOPED_TRACE(var.name);
    int fd, cfd;
    Pair(&fd, &cfd);
    LinuxInfo li = MakeInfo(kGcm128, k12, 0, 0);
    ASSERT_EQ(Set(cfd, kTlsRx, li), 0);
    const uint64_t base = Stat("kern.ipc.tls.stats.ocf.tls12_gcm_decrypts");
    for (int i = 0; i < 3; i++) {
      char r = var.recs[i];
      bool data = r == 'd' || r == 'D';
      size_t len = (r == 'D' || r == 'C') ? hello.size() : 0;
      std::vector<uint8_t> rec = ktls_test::EncryptRecord(
          li.suite, li.keys, i, data ? 23 : 22,
          reinterpret_cast<const uint8_t*>(hello.data()), len, 0, i);
      ASSERT_EQ(uk_send(p_, fd, rec.data(), rec.size(), 0),
                static_cast<ssize_t>(rec.size()));
    }
    // Loopback is asynchronous here: wait until the kernel has decrypted
    // all three records and its RX queue is idle.
    for (int t = 0; t < 10000; t++) {
      if (Stat("kern.ipc.tls.stats.ocf.tls12_gcm_decrypts") >= base + 3 &&
          Stat("kern.ipc.tls.stats.sw_rx_inqueue") == 0)
        break;
      usleep(1000);
    }
    usleep(20000);
    for (int want : var.returns) {
      char buf[64] = {};
      char cbuf[CMSG_SPACE(1)] = {};
      iovec iov{buf, sizeof buf};
      msghdr msg{};
      msg.msg_iov = &iov;
      msg.msg_iovlen = 1;
      msg.msg_control = cbuf;
      msg.msg_controllen = sizeof cbuf;
      ssize_t n = uk_recvmsg(p_, cfd, &msg, MSG_DONTWAIT);
      if (want < 0) {
        EXPECT_EQ(n, -1);
        EXPECT_EQ(errno, EAGAIN);
        continue;
      }
      EXPECT_EQ(n, want);
      if (n != want) break;
      for (int off = 0; off < want; off += 11) {
        EXPECT_EQ(std::string(buf + off, 11), hello);
      }
    }
    uk_close(p_, fd);
    uk_close(p_, cfd);
  }
}

// recvmsg_nopad_retry_iov: TLS 1.3 with NO_PAD on the receiver, a 32-byte
// handshake record (a "non-data record", which Linux decrypts again) read
// with iov [32, 64]: 32 bytes into iov0, iov1 untouched, type in the cmsg.
TEST_F(LinuxTls, NoPadRetryKeepsIov) {
  int fd, cfd;
  LinuxInfo li = TlsPair(&fd, &cfd, kGcm128, k13, 2, 0);
  int one = 1;
  ASSERT_EQ(uk_setsockopt(p_, cfd, kSolTls, kNoPad, &one, 4), 0);
  std::vector<char> payload(32);
  for (int i = 0; i < 32; i++) payload[i] = static_cast<char>('A' + i % 26);
  {
    char cbuf[CMSG_SPACE(1)] = {};
    iovec iov{payload.data(), payload.size()};
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = cbuf;
    msg.msg_controllen = sizeof cbuf;
    cmsghdr* cm = CMSG_FIRSTHDR(&msg);
    cm->cmsg_level = kSolTls;
    cm->cmsg_type = 1;  // TLS_SET_RECORD_TYPE
    cm->cmsg_len = CMSG_LEN(1);
    *CMSG_DATA(cm) = 0x16;
    ASSERT_EQ(uk_sendmsg(p_, fd, &msg, 0), 32);
  }
  std::vector<char> a(32, 0), b(64, 0x7f);
  iovec iov[2] = {{a.data(), a.size()}, {b.data(), b.size()}};
  char cbuf[CMSG_SPACE(1)] = {};
  msghdr msg{};
  msg.msg_iov = iov;
  msg.msg_iovlen = 2;
  msg.msg_control = cbuf;
  msg.msg_controllen = sizeof cbuf;
  ASSERT_EQ(uk_recvmsg(p_, cfd, &msg, 0), 32);
  EXPECT_EQ(a, payload);
  EXPECT_EQ(b, std::vector<char>(64, 0x7f));
  ASSERT_NE(CMSG_FIRSTHDR(&msg), nullptr);
  EXPECT_EQ(*CMSG_DATA(CMSG_FIRSTHDR(&msg)), 0x16);
  // The non-data record is a retry, not a violation.
  EXPECT_EQ(LStat("TlsDecryptRetry"), 1u);
  EXPECT_EQ(LStat("TlsRxNoPadViolation"), 0u);

  // Raw records from a plain sender: an unpadded data record counts
  // nothing; a padded one is a retry and a violation; without NO_PAD a
  // padded record counts nothing.
  int fd2, cfd2;
  Pair(&fd2, &cfd2);
  ASSERT_EQ(Set(cfd2, kTlsRx, li), 0);
  ASSERT_EQ(uk_setsockopt(p_, cfd2, kSolTls, kNoPad, &one, 4), 0);
  const std::string hello = "hello";
  const auto* h = reinterpret_cast<const uint8_t*>(hello.data());
  std::vector<uint8_t> plain = ktls_test::EncryptRecord(li.suite, li.keys, 0, 23, h, 5);
  std::vector<uint8_t> padded = ktls_test::EncryptRecord(li.suite, li.keys, 1, 23, h, 5, 7);
  char got[16];
  ASSERT_EQ(uk_send(p_, fd2, plain.data(), plain.size(), 0),
            static_cast<ssize_t>(plain.size()));
  ASSERT_EQ(uk_recv(p_, cfd2, got, sizeof got, 0), 5);
  EXPECT_EQ(LStat("TlsDecryptRetry"), 1u);
  ASSERT_EQ(uk_send(p_, fd2, padded.data(), padded.size(), 0),
            static_cast<ssize_t>(padded.size()));
  ASSERT_EQ(uk_recv(p_, cfd2, got, sizeof got, 0), 5);
  EXPECT_EQ(std::string(got, 5), hello);
  EXPECT_EQ(LStat("TlsDecryptRetry"), 2u);
  EXPECT_EQ(LStat("TlsRxNoPadViolation"), 1u);
  int zero = 0;
  ASSERT_EQ(uk_setsockopt(p_, cfd2, kSolTls, kNoPad, &zero, 4), 0);
  std::vector<uint8_t> padded2 = ktls_test::EncryptRecord(li.suite, li.keys, 2, 23, h, 5, 3);
  ASSERT_EQ(uk_send(p_, fd2, padded2.data(), padded2.size(), 0),
            static_cast<ssize_t>(padded2.size()));
  ASSERT_EQ(uk_recv(p_, cfd2, got, sizeof got, 0), 5);
  EXPECT_EQ(LStat("TlsDecryptRetry"), 2u);
  EXPECT_EQ(LStat("TlsRxNoPadViolation"), 1u);
}

// TX on fd, RX on cfd: records decrypt through the kernel both ways.
TEST_F(LinuxTls, RxDecryptsWhatTxSent) {
  for (auto [c, v] : {std::pair{kGcm128, k12}, {kGcm256, k13}, {kChacha, k12},
                      {kChacha, k13}, {kSm4Gcm, k13}, {kSm4Ccm, k12},
                      {kCcm128, k12}, {kCcm128, k13}, {kAria128, k12},
                      {kAria256, k12}}) {
    int fd, cfd;
    LinuxInfo li = TlsPair(&fd, &cfd, c, v, 1, 0x0101010101010101ull);
    const char msg[] = "test_read_partial";
    ASSERT_EQ(uk_send(p_, fd, msg, sizeof msg, 0), static_cast<ssize_t>(sizeof msg));
    char buf[64] = {};
    ASSERT_EQ(uk_recv(p_, cfd, buf, sizeof buf, 0), static_cast<ssize_t>(sizeof msg))
        << c.name;
    EXPECT_STREQ(buf, msg);
    // bidir: the other direction with the same version and cipher.
    ASSERT_EQ(Set(cfd, kTlsTx, li), 0);
    ASSERT_EQ(Set(fd, kTlsRx, li), 0);
    ASSERT_EQ(uk_send(p_, cfd, msg, sizeof msg, 0), static_cast<ssize_t>(sizeof msg));
    ASSERT_EQ(uk_recv(p_, fd, buf, sizeof buf, 0), static_cast<ssize_t>(sizeof msg));
    uk_close(p_, fd);
    uk_close(p_, cfd);
  }
}

TEST_F(LinuxTls, TxAndRxMustAgree) {
  int fd, cfd;
  Pair(&fd, &cfd);
  ASSERT_EQ(Set(fd, kTlsTx, MakeInfo(kGcm128, k13, 1, 0)), 0);
  EXPECT_EQ(Set(fd, kTlsRx, MakeInfo(kGcm128, k12, 1, 0)), -1);
  EXPECT_EQ(errno, EINVAL);
  EXPECT_EQ(Set(fd, kTlsRx, MakeInfo(kGcm256, k13, 1, 0)), -1);
  EXPECT_EQ(errno, EINVAL);
  EXPECT_EQ(Set(fd, kTlsRx, MakeInfo(kGcm128, k13, 2, 0)), 0);
}

TEST_F(LinuxTls, GetsockoptForms) {
  int fd, cfd;
  Pair(&fd, &cfd);
  uint8_t buf[64];
  socklen_t len = sizeof buf;
  // Not configured.
  len = 4;
  EXPECT_EQ(uk_getsockopt(p_, fd, kSolTls, kTlsTx, buf, &len), -1);
  EXPECT_EQ(errno, EBUSY);
  LinuxInfo li = MakeInfo(kGcm128, k12, 1, 42);
  ASSERT_EQ(Set(fd, kTlsTx, li), 0);
  len = 4;
  ASSERT_EQ(uk_getsockopt(p_, fd, kSolTls, kTlsTx, buf, &len), 0);
  EXPECT_EQ(len, 4u);
  EXPECT_EQ(memcmp(buf, li.bytes.data(), 4), 0);
  len = li.bytes.size();
  ASSERT_EQ(uk_getsockopt(p_, fd, kSolTls, kTlsTx, buf, &len), 0);
  EXPECT_EQ(len, li.bytes.size());
  EXPECT_EQ(std::vector<uint8_t>(buf, buf + len), li.bytes);
  len = 3;
  EXPECT_EQ(uk_getsockopt(p_, fd, kSolTls, kTlsTx, buf, &len), -1);
  EXPECT_EQ(errno, EINVAL);
  len = li.bytes.size() - 1;
  EXPECT_EQ(uk_getsockopt(p_, fd, kSolTls, kTlsTx, buf, &len), -1);
  EXPECT_EQ(errno, EINVAL);
  len = 4;
  EXPECT_EQ(uk_getsockopt(p_, fd, kSolTls, kTlsRx, buf, &len), -1);
  EXPECT_EQ(errno, EBUSY);

  // Three records later rec_seq and the explicit nonce have advanced.
  for (int n = 0; n < 3; n++) {
    ASSERT_EQ(uk_send(p_, fd, "abc", 3, 0), 3);
    CheckRecord(li, cfd, 42 + n, li.iv64() + n, 23, {'a', 'b', 'c'});
  }
  len = li.bytes.size();
  ASSERT_EQ(uk_getsockopt(p_, fd, kSolTls, kTlsTx, buf, &len), 0);
  LinuxInfo live = MakeInfo(kGcm128, k12, 1, 45);
  uint64_t iv = li.iv64() + 3;
  for (int i = 7; i >= 0; i--, iv >>= 8) live.bytes[4 + i] = iv & 0xff;
  EXPECT_EQ(std::vector<uint8_t>(buf, buf + len), live.bytes);
}

TEST_F(LinuxTls, RekeyRules) {
  // TLS 1.2: a second set is EBUSY and counts as a rekey error.
  int fd, cfd;
  Pair(&fd, &cfd);
  ASSERT_EQ(Set(fd, kTlsTx, MakeInfo(kGcm128, k12, 1, 0)), 0);
  EXPECT_EQ(Set(fd, kTlsTx, MakeInfo(kGcm128, k12, 2, 0)), -1);
  EXPECT_EQ(errno, EBUSY);
  EXPECT_EQ(LStat("TlsTxRekeyError"), 1u);

  // TLS 1.3: same version and cipher rekeys; anything else is EINVAL.
  int fd2, cfd2;
  Pair(&fd2, &cfd2);
  LinuxInfo g0 = MakeInfo(kGcm128, k13, 0, 0);
  LinuxInfo g1 = MakeInfo(kGcm128, k13, 1, 0);
  ASSERT_EQ(Set(fd2, kTlsTx, g0), 0);
  ASSERT_EQ(uk_send(p_, fd2, "one", 3, 0), 3);
  CheckRecord(g0, cfd2, 0, 0, 23, {'o', 'n', 'e'});
  EXPECT_EQ(Set(fd2, kTlsTx, MakeInfo(kGcm128, k12, 1, 0)), -1);
  EXPECT_EQ(errno, EINVAL);
  EXPECT_EQ(Set(fd2, kTlsTx, MakeInfo(kGcm256, k13, 1, 0)), -1);
  EXPECT_EQ(errno, EINVAL);
  EXPECT_EQ(LStat("TlsTxRekeyError"), 3u);
  ASSERT_EQ(Set(fd2, kTlsTx, g1), 0);
  EXPECT_EQ(LStat("TlsTxRekeyOk"), 1u);
  ASSERT_EQ(uk_send(p_, fd2, "two", 3, 0), 3);
  CheckRecord(g1, cfd2, 0, 0, 23, {'t', 'w', 'o'});
  uint8_t buf[64];
  socklen_t len = g1.bytes.size();
  ASSERT_EQ(uk_getsockopt(p_, fd2, kSolTls, kTlsTx, buf, &len), 0);
  LinuxInfo g1live = MakeInfo(kGcm128, k13, 1, 1);
  EXPECT_EQ(std::vector<uint8_t>(buf, buf + len), g1live.bytes);

  // rekey_rx: RX gen 0 then gen 1 before any traffic; TX gen 1.
  int fd3, cfd3;
  Pair(&fd3, &cfd3);
  ASSERT_EQ(Set(cfd3, kTlsRx, g0), 0);
  ASSERT_EQ(Set(cfd3, kTlsRx, g1), 0);
  EXPECT_EQ(LStat("TlsRxRekeyOk"), 1u);
  ASSERT_EQ(Set(fd3, kTlsTx, g1), 0);
  ASSERT_EQ(uk_send(p_, fd3, "hello", 5, 0), 5);
  char rb[16] = {};
  EXPECT_EQ(uk_recv(p_, cfd3, rb, sizeof rb, 0), 5);
  EXPECT_STREQ(rb, "hello");
}

TEST_F(LinuxTls, Options) {
  int fd, cfd;
  Pair(&fd, &cfd);
  // TLS_TX_ZEROCOPY_RO: exactly 4 bytes, 0 or 1.
  unsigned v = 1;
  EXPECT_EQ(uk_setsockopt(p_, fd, kSolTls, kZcRo, &v, 4), 0);
  EXPECT_EQ(uk_setsockopt(p_, fd, kSolTls, kZcRo, &v, 2), -1);
  EXPECT_EQ(errno, EINVAL);
  v = 2;
  EXPECT_EQ(uk_setsockopt(p_, fd, kSolTls, kZcRo, &v, 4), -1);
  EXPECT_EQ(errno, EINVAL);
  int got = -1;
  socklen_t len = 4;
  EXPECT_EQ(uk_getsockopt(p_, fd, kSolTls, kZcRo, &got, &len), 0);
  EXPECT_EQ(got, 1);

  // TLS_RX_EXPECT_NO_PAD: TLS 1.3 RX only.
  v = 1;
  EXPECT_EQ(uk_setsockopt(p_, cfd, kSolTls, kNoPad, &v, 4), -1);
  EXPECT_EQ(errno, EINVAL);
  ASSERT_EQ(Set(cfd, kTlsRx, MakeInfo(kGcm256, k13, 1, 0)), 0);
  EXPECT_EQ(uk_setsockopt(p_, cfd, kSolTls, kNoPad, &v, 4), 0);
  len = 8;
  int ng[2] = {-1, -1};
  EXPECT_EQ(uk_getsockopt(p_, cfd, kSolTls, kNoPad, ng, &len), 0);
  EXPECT_EQ(len, 4u);
  EXPECT_EQ(ng[0], 1);
  v = 0;
  EXPECT_EQ(uk_setsockopt(p_, cfd, kSolTls, kNoPad, &v, 4), 0);
  len = 4;
  EXPECT_EQ(uk_getsockopt(p_, cfd, kSolTls, kNoPad, ng, &len), 0);
  EXPECT_EQ(ng[0], 0);

  // TLS_TX_MAX_PAYLOAD_LEN: u16, 64..16384 (63 on TLS 1.3), 2 bytes back.
  uint16_t m = 0;
  len = 4;
  EXPECT_EQ(uk_getsockopt(p_, fd, kSolTls, kMaxPayload, &m, &len), 0);
  EXPECT_EQ(len, 2u);
  EXPECT_EQ(m, 16384);
  for (uint16_t bad : {0, 63, 16385}) {
    EXPECT_EQ(uk_setsockopt(p_, fd, kSolTls, kMaxPayload, &bad, 2), -1) << bad;
    EXPECT_EQ(errno, EINVAL);
  }
  m = 128;
  EXPECT_EQ(uk_setsockopt(p_, fd, kSolTls, kMaxPayload, &m, 4), -1);
  EXPECT_EQ(errno, EINVAL);
  EXPECT_EQ(uk_setsockopt(p_, fd, kSolTls, kMaxPayload, &m, 2), 0);
  m = 0;
  len = 2;
  EXPECT_EQ(uk_getsockopt(p_, fd, kSolTls, kMaxPayload, &m, &len), 0);
  EXPECT_EQ(m, 128);
  ASSERT_EQ(Set(fd, kTlsTx, MakeInfo(kGcm256, k13, 1, 0)), 0);
  m = 63;
  EXPECT_EQ(uk_setsockopt(p_, fd, kSolTls, kMaxPayload, &m, 2), 0);
}

// /proc/net/tls_stat as compat.linux.tls_stat.*, and the same sessions in
// the FreeBSD view (kern.ipc.tls.*).
TEST_F(LinuxTls, StatsAndSharedGauges) {
  for (const char* n :
       {"TlsCurrTxSw", "TlsCurrRxSw", "TlsCurrTxDevice", "TlsCurrRxDevice",
        "TlsTxSw", "TlsRxSw", "TlsTxDevice", "TlsRxDevice", "TlsDecryptError",
        "TlsRxDeviceResync", "TlsDecryptRetry", "TlsRxNoPadViolation",
        "TlsRxRekeyOk", "TlsRxRekeyError", "TlsTxRekeyOk", "TlsTxRekeyError",
        "TlsRxRekeyReceived"})
    EXPECT_EQ(LStat(n), 0u) << n;
  uint64_t gcm0 = Stat("kern.ipc.tls.sw.gcm");
  int fd, cfd;
  Pair(&fd, &cfd);
  ASSERT_EQ(Set(fd, kTlsTx, MakeInfo(kGcm128, k12, 1, 0)), 0);
  ASSERT_EQ(Set(cfd, kTlsRx, MakeInfo(kGcm128, k12, 1, 0)), 0);
  EXPECT_EQ(LStat("TlsCurrTxSw"), 1u);
  EXPECT_EQ(LStat("TlsCurrRxSw"), 1u);
  EXPECT_EQ(LStat("TlsTxSw"), 1u);
  EXPECT_EQ(LStat("TlsRxSw"), 1u);
  EXPECT_EQ(Stat("kern.ipc.tls.sw.gcm"), gcm0 + 2);
  uk_close(p_, fd);
  uk_close(p_, cfd);
  // The counters of sessions ever opened stay.
  EXPECT_EQ(LStat("TlsTxSw"), 1u);
  EXPECT_EQ(LStat("TlsRxSw"), 1u);
}

// Linux send rules, every record read raw and decrypted with EVP.
class LinuxTlsSend : public LinuxTls {
 protected:
  void SetUp() override {
    LinuxTls::SetUp();
    Pair(&fd_, &cfd_);
    li_ = MakeInfo(kGcm128, k12, 1, 0);
    ASSERT_EQ(Set(fd_, kTlsTx, li_), 0);
  }
  // The next record on cfd: seq seq_++, its type and plaintext.
  void Expect(uint8_t type, const std::string& body) {
    CheckRecord(li_, cfd_, seq_, li_.iv64() + seq_, type,
                std::vector<uint8_t>(body.begin(), body.end()));
    seq_++;
  }
  bool NothingQueued() {
    char c;
    return uk_recv(p_, cfd_, &c, 1, MSG_DONTWAIT) == -1 && errno == EAGAIN;
  }
  ssize_t SendCmsg(uint8_t type, const std::string& body, int flags,
                   int level = kSolTls, int ctype = 1) {
    char cbuf[CMSG_SPACE(1)] = {};
    iovec iov{const_cast<char*>(body.data()), body.size()};
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = cbuf;
    msg.msg_controllen = sizeof cbuf;
    cmsghdr* cm = CMSG_FIRSTHDR(&msg);
    cm->cmsg_level = level;
    cm->cmsg_type = ctype;
    cm->cmsg_len = CMSG_LEN(1);
    *CMSG_DATA(cm) = type;
    return uk_sendmsg(p_, fd_, &msg, flags);
  }
  int fd_ = -1, cfd_ = -1;
  uint64_t seq_ = 0;
  LinuxInfo li_;
};

TEST_F(LinuxTlsSend, OneRecordPerSend) {
  ASSERT_EQ(uk_send(p_, fd_, "0123456789", 10, 0), 10);
  ASSERT_EQ(uk_send(p_, fd_, "abc", 3, 0), 3);
  Expect(23, "0123456789");
  Expect(23, "abc");
  // sendmsg_fragmented: many iovecs, still one record.
  std::string whole;
  std::vector<std::string> parts;
  for (int i = 0; i < 64; i++) parts.push_back(std::string(13, 'a' + i % 26));
  std::vector<iovec> iov;
  for (auto& p : parts) {
    iov.push_back({p.data(), p.size()});
    whole += p;
  }
  msghdr msg{};
  msg.msg_iov = iov.data();
  msg.msg_iovlen = iov.size();
  ASSERT_EQ(uk_sendmsg(p_, fd_, &msg, 0), static_cast<ssize_t>(whole.size()));
  Expect(23, whole);
}

TEST_F(LinuxTlsSend, MsgMoreHoldsTheRecord) {
  // msg_more: nothing arrives until a send without MSG_MORE.
  ASSERT_EQ(uk_send(p_, fd_, "0123456789", 10, MSG_MORE), 10);
  EXPECT_TRUE(NothingQueued());
  ASSERT_EQ(uk_send(p_, fd_, "abcdefghij", 10, 0), 10);
  Expect(23, "0123456789abcdefghij");
  // A full record goes out even under MSG_MORE.
  std::string big(16384 + 5, 'x');
  ASSERT_EQ(uk_send(p_, fd_, big.data(), big.size(), MSG_MORE),
            static_cast<ssize_t>(big.size()));
  Expect(23, big.substr(0, 16384));
  EXPECT_TRUE(NothingQueued());
  // msg_eor: accepted and closes the record; with MSG_MORE it is EINVAL.
  ASSERT_EQ(uk_send(p_, fd_, "EOR", 3, MSG_EOR), 3);
  Expect(23, "xxxxxEOR");
  EXPECT_EQ(uk_send(p_, fd_, "x", 1, MSG_EOR | MSG_MORE), -1);
  EXPECT_EQ(errno, EINVAL);
  // Unsupported flags.
  EXPECT_EQ(uk_send(p_, fd_, "x", 1, MSG_OOB), -1);
  EXPECT_EQ(errno, EOPNOTSUPP);
  EXPECT_EQ(uk_send(p_, fd_, "x", 1, MSG_WAITALL), -1);
  EXPECT_EQ(errno, EOPNOTSUPP);
  EXPECT_TRUE(NothingQueued());
}

TEST_F(LinuxTlsSend, ControlRecords) {
  // cmsg_msg_more.
  EXPECT_EQ(SendCmsg(100, "test_read", MSG_MORE), -1);
  EXPECT_EQ(errno, EINVAL);
  // Foreign level only, or an unknown SOL_TLS type: EINVAL.
  EXPECT_EQ(SendCmsg(100, "test_read", 0, SOL_SOCKET, 1), -1);
  EXPECT_EQ(errno, EINVAL);
  EXPECT_EQ(SendCmsg(100, "test_read", 0, kSolTls, 2), -1);
  EXPECT_EQ(errno, EINVAL);
  EXPECT_TRUE(NothingQueued());
  // msg_more_then_cmsg: the open data record is pushed first, not merged.
  ASSERT_EQ(uk_send(p_, fd_, "0123456789", 10, MSG_MORE), 10);
  ASSERT_EQ(SendCmsg(100, "test_read_", 0), 10);
  Expect(23, "0123456789");
  Expect(100, "test_read_");
  // A handshake record (what OpenSSL sends for Finished) and an alert.
  ASSERT_EQ(SendCmsg(22, "fin", 0), 3);
  ASSERT_EQ(SendCmsg(21, std::string("\x01\x00", 2), 0), 2);
  Expect(22, "fin");
  Expect(21, std::string("\x01\x00", 2));
}

TEST_F(LinuxTlsSend, ControlRecordTls13InnerType) {
  int fd, cfd;
  Pair(&fd, &cfd);
  LinuxInfo li = MakeInfo(kChacha, k13, 2, 7);
  ASSERT_EQ(Set(fd, kTlsTx, li), 0);
  fd_ = fd;
  ASSERT_EQ(SendCmsg(22, "ku", 0), 2);
  std::vector<uint8_t> rec;
  ASSERT_TRUE(ReadRecord(cfd, &rec));
  EXPECT_EQ(rec[0], 23);  // outer type
  std::vector<uint8_t> pt;
  uint8_t t = 0;
  std::string why;
  ASSERT_TRUE(ktls_test::DecryptRecord(li.suite, li.keys, 7, rec.data(),
                                       rec.size(), &pt, &t, &why)) << why;
  EXPECT_EQ(t, 22);
  EXPECT_EQ(std::string(pt.begin(), pt.end()), "ku");
}

// tls_12_tx_max_payload_len and ..._open_rec.
TEST_F(LinuxTlsSend, MaxPayloadLen) {
  uint16_t m = 128;
  ASSERT_EQ(uk_setsockopt(p_, fd_, kSolTls, kMaxPayload, &m, 2), 0);
  std::string data(1024, 0);
  for (size_t i = 0; i < data.size(); i++) data[i] = static_cast<char>(i);
  ASSERT_EQ(uk_send(p_, fd_, data.data(), data.size(), 0), 1024);
  for (int i = 0; i < 8; i++) Expect(23, data.substr(i * 128, 128));
  m = 512;
  ASSERT_EQ(uk_setsockopt(p_, fd_, kSolTls, kMaxPayload, &m, 2), 0);
  ASSERT_EQ(uk_send(p_, fd_, data.data(), 256, MSG_MORE), 256);
  m = 128;
  EXPECT_EQ(uk_setsockopt(p_, fd_, kSolTls, kMaxPayload, &m, 2), -1);
  EXPECT_EQ(errno, EBUSY);
  ASSERT_EQ(uk_send(p_, fd_, data.data() + 256, 768, MSG_EOR), 768);
  Expect(23, data.substr(0, 512));
  Expect(23, data.substr(512, 512));
  ASSERT_EQ(uk_setsockopt(p_, fd_, kSolTls, kMaxPayload, &m, 2), 0);
}

// Linux receive rules: TX on fd, RX on cfd (the selftest's `tls` fixture).
class LinuxTlsRecv : public LinuxTlsSend {
 protected:
  void SetUp() override {
    LinuxTlsSend::SetUp();
    ASSERT_EQ(Set(cfd_, kTlsRx, li_), 0);
  }
  // recvmsg with a cmsg buffer: returns the count, *type the record type
  // from (SOL_TLS, TLS_GET_RECORD_TYPE), -1 without one.
  ssize_t RecvCmsg(int fd, char* buf, size_t len, int flags, int* type) {
    char cbuf[CMSG_SPACE(1)] = {};
    iovec iov{buf, len};
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = cbuf;
    msg.msg_controllen = sizeof cbuf;
    ssize_t n = uk_recvmsg(p_, fd, &msg, flags);
    *type = -1;
    cmsghdr* cm = CMSG_FIRSTHDR(&msg);
    if (n >= 0 && cm != nullptr && cm->cmsg_level == kSolTls &&
        cm->cmsg_type == 2 && cm->cmsg_len == CMSG_LEN(1))
      *type = *CMSG_DATA(cm);
    EXPECT_EQ(msg.msg_flags & MSG_EOR, 0);
    return n;
  }
};

TEST_F(LinuxTlsRecv, MergedPartialAndTyped) {
  // multiple_send_single_recv: two records merged.
  ASSERT_EQ(uk_send(p_, fd_, "0123456789", 10, 0), 10);
  ASSERT_EQ(uk_send(p_, fd_, "abcdefghij", 10, 0), 10);
  char buf[64] = {};
  ASSERT_EQ(uk_recv(p_, cfd_, buf, 20, MSG_WAITALL), 20);
  EXPECT_EQ(std::string(buf, 20), "0123456789abcdefghij");
  // recv_partial and single_send_multiple_recv_non_align.
  ASSERT_EQ(uk_send(p_, fd_, "test_read_partial", 17, 0), 17);
  ASSERT_EQ(uk_recv(p_, cfd_, buf, 9, MSG_WAITALL), 9);
  EXPECT_EQ(std::string(buf, 9), "test_read");
  int type;
  ASSERT_EQ(RecvCmsg(cfd_, buf, sizeof buf, 0, &type), 8);
  EXPECT_EQ(std::string(buf, 8), "_partial");
  EXPECT_EQ(type, 23);  // 23 included
  // recv_nonblock.
  EXPECT_EQ(uk_recv(p_, cfd_, buf, sizeof buf, MSG_DONTWAIT), -1);
  EXPECT_EQ(errno, EAGAIN);
  // recv_peek_multiple_records.
  ASSERT_EQ(uk_send(p_, fd_, "test_read_peek", 14, 0), 14);
  ASSERT_EQ(uk_send(p_, fd_, "_mult_recs", 10, 0), 10);
  ASSERT_EQ(uk_recv(p_, cfd_, buf, 14, MSG_PEEK | MSG_WAITALL), 14);
  EXPECT_EQ(std::string(buf, 14), "test_read_peek");
  ASSERT_EQ(uk_recv(p_, cfd_, buf, 24, MSG_PEEK | MSG_WAITALL), 24);
  EXPECT_EQ(std::string(buf, 24), "test_read_peek_mult_recs");
  ASSERT_EQ(uk_recv(p_, cfd_, buf, 24, MSG_WAITALL), 24);
  EXPECT_EQ(std::string(buf, 24), "test_read_peek_mult_recs");
}

TEST_F(LinuxTlsRecv, ControlRecords) {
  // control_msg: plain recv -> EIO, the record stays; PEEK with cmsg.
  ASSERT_EQ(SendCmsg(100, "test_read_", 0), 10);
  char buf[64];
  EXPECT_EQ(uk_recv(p_, cfd_, buf, sizeof buf, 0), -1);
  EXPECT_EQ(errno, EIO);
  int type;
  ASSERT_EQ(RecvCmsg(cfd_, buf, sizeof buf, MSG_PEEK | MSG_WAITALL, &type), 10);
  EXPECT_EQ(type, 100);
  ASSERT_EQ(RecvCmsg(cfd_, buf, sizeof buf, 0, &type), 10);
  EXPECT_EQ(type, 100);
  EXPECT_EQ(std::string(buf, 10), "test_read_");
  // control_msg_nomerge.
  ASSERT_EQ(SendCmsg(100, "rec_1", 0), 5);
  ASSERT_EQ(SendCmsg(100, "rec_2", 0), 5);
  for (const char* want : {"rec_1", "rec_1"}) {
    ASSERT_EQ(RecvCmsg(cfd_, buf, 15, MSG_PEEK, &type), 5);
    EXPECT_EQ(std::string(buf, 5), want);
  }
  ASSERT_EQ(RecvCmsg(cfd_, buf, 15, 0, &type), 5);
  EXPECT_EQ(std::string(buf, 5), "rec_1");
  ASSERT_EQ(RecvCmsg(cfd_, buf, 15, 0, &type), 5);
  EXPECT_EQ(std::string(buf, 5), "rec_2");
  // data_control_data: types never mix.
  ASSERT_EQ(uk_send(p_, fd_, "data1", 5, 0), 5);
  ASSERT_EQ(SendCmsg(100, "ctrl2", 0), 5);
  ASSERT_EQ(uk_send(p_, fd_, "data3", 5, 0), 5);
  // Wait for all three to be decrypted.
  ASSERT_EQ(RecvCmsg(cfd_, buf, 15, MSG_PEEK | MSG_WAITALL, &type), 5);
  EXPECT_EQ(type, 23);
  ASSERT_EQ(RecvCmsg(cfd_, buf, 15, 0, &type), 5);
  EXPECT_EQ(std::string(buf, 5), "data1");
  ASSERT_EQ(RecvCmsg(cfd_, buf, 15, 0, &type), 5);
  EXPECT_EQ(type, 100);
  ASSERT_EQ(RecvCmsg(cfd_, buf, 15, 0, &type), 5);
  EXPECT_EQ(type, 23);
  EXPECT_EQ(std::string(buf, 5), "data3");
}

TEST_F(LinuxTlsRecv, RecvLowat) {
  ASSERT_EQ(uk_send(p_, fd_, "0123456789", 10, 0), 10);
  ASSERT_EQ(uk_send(p_, fd_, "abcde", 5, 0), 5);
  int lowat = 8;
  ASSERT_EQ(uk_setsockopt(p_, cfd_, SOL_SOCKET, SO_RCVLOWAT, &lowat, sizeof lowat), 0);
  char buf[16];
  ASSERT_EQ(uk_recv(p_, cfd_, buf, 1, MSG_WAITALL), 1);
  ASSERT_EQ(uk_recv(p_, cfd_, buf + 1, 6, MSG_WAITALL), 6);
  ASSERT_EQ(uk_recv(p_, cfd_, buf + 7, 10, 0), 8);
  EXPECT_EQ(std::string(buf, 15), "0123456789abcde");
}

// tls_err bad_auth: a record with a flipped tag byte -> EBADMSG, sticky.
TEST_F(LinuxTls, BadAuthIsSticky) {
  int fd, cfd;
  Pair(&fd, &cfd);
  LinuxInfo li = MakeInfo(kGcm128, k12, 1, 0);
  ASSERT_EQ(Set(cfd, kTlsRx, li), 0);
  std::string good = "good_record";
  auto r0 = ktls_test::EncryptRecord(li.suite, li.keys, 0, 23,
                                     reinterpret_cast<const uint8_t*>(good.data()),
                                     good.size(), 0, 7);
  auto r1 = ktls_test::EncryptRecord(li.suite, li.keys, 1, 23,
                                     reinterpret_cast<const uint8_t*>(good.data()),
                                     good.size(), 0, 8);
  r1.back() ^= 1;
  ASSERT_EQ(uk_send(p_, fd, r0.data(), r0.size(), 0), static_cast<ssize_t>(r0.size()));
  ASSERT_EQ(uk_send(p_, fd, r1.data(), r1.size(), 0), static_cast<ssize_t>(r1.size()));
  char buf[64];
  // bad_in_large_read: the good record first, then the error.
  ASSERT_EQ(uk_recv(p_, cfd, buf, sizeof buf, MSG_WAITALL), 11);
  EXPECT_EQ(std::string(buf, 11), good);
  EXPECT_EQ(uk_recv(p_, cfd, buf, sizeof buf, 0), -1);
  EXPECT_EQ(errno, EBADMSG);
  EXPECT_EQ(uk_recv(p_, cfd, buf, sizeof buf, 0), -1);
  EXPECT_EQ(errno, EBADMSG);
  EXPECT_EQ(LStat("TlsDecryptError"), 1u);
}

// rekey: KeyUpdate, EKEYEXPIRED until the new RX key, then data.
TEST_F(LinuxTls, Tls13KeyUpdate) {
  int fd, cfd;
  Pair(&fd, &cfd);
  LinuxInfo g0 = MakeInfo(kGcm128, k13, 0, 0);
  LinuxInfo g1 = MakeInfo(kGcm128, k13, 1, 0);
  ASSERT_EQ(Set(fd, kTlsTx, g0), 0);
  ASSERT_EQ(Set(cfd, kTlsRx, g0), 0);
  const std::string m1 = "Hello, world, message one.";
  ASSERT_EQ(uk_send(p_, fd, m1.data(), m1.size(), 0), static_cast<ssize_t>(m1.size()));
  // KeyUpdate as type 0x16, then TX gen 1 and message 2.
  const char ku[] = {0x18, 0x00, 0x00, 0x01, 0x00};
  {
    char cbuf[CMSG_SPACE(1)] = {};
    iovec iov{const_cast<char*>(ku), sizeof ku};
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = cbuf;
    msg.msg_controllen = sizeof cbuf;
    cmsghdr* cm = CMSG_FIRSTHDR(&msg);
    cm->cmsg_level = kSolTls;
    cm->cmsg_type = 1;
    cm->cmsg_len = CMSG_LEN(1);
    *CMSG_DATA(cm) = 22;
    ASSERT_EQ(uk_sendmsg(p_, fd, &msg, 0), 5);
  }
  ASSERT_EQ(Set(fd, kTlsTx, g1), 0);
  const std::string m2 = "Hello, world, message two";
  ASSERT_EQ(uk_send(p_, fd, m2.data(), m2.size(), 0), static_cast<ssize_t>(m2.size()));

  char buf[64];
  ASSERT_EQ(uk_recv(p_, cfd, buf, sizeof buf, 0), static_cast<ssize_t>(m1.size()));
  EXPECT_EQ(std::string(buf, m1.size()), m1);
  // The KeyUpdate needs cmsg room.
  EXPECT_EQ(uk_recv(p_, cfd, buf, sizeof buf, 0), -1);
  EXPECT_EQ(errno, EIO);
  char cbuf[CMSG_SPACE(1)] = {};
  iovec iov{buf, sizeof buf};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = cbuf;
  msg.msg_controllen = sizeof cbuf;
  ASSERT_EQ(uk_recvmsg(p_, cfd, &msg, 0), 5);
  EXPECT_EQ(*CMSG_DATA(CMSG_FIRSTHDR(&msg)), 22);
  EXPECT_EQ(LStat("TlsRxRekeyReceived"), 1u);
  EXPECT_EQ(uk_recv(p_, cfd, buf, sizeof buf, 0), -1);
  EXPECT_EQ(errno, EKEYEXPIRED);
  EXPECT_EQ(uk_recv(p_, cfd, buf, sizeof buf, MSG_DONTWAIT), -1);
  EXPECT_EQ(errno, EKEYEXPIRED);
  // rekey_poll_pending: message two is queued but still under the new
  // key, so no POLLIN until TLS_RX gen 1 is installed; then a poll wakes.
  pollfd pfd{cfd, POLLIN, 0};
  EXPECT_EQ(uk_poll(p_, &pfd, 1, 50), 0);
  std::thread rekey([&] {
    usleep(100000);
    EXPECT_EQ(Set(cfd, kTlsRx, g1), 0);
  });
  pfd.revents = 0;
  EXPECT_EQ(uk_poll(p_, &pfd, 1, 10000), 1);
  EXPECT_TRUE(pfd.revents & POLLIN);
  rekey.join();
  ASSERT_EQ(uk_recv(p_, cfd, buf, sizeof buf, 0), static_cast<ssize_t>(m2.size()));
  EXPECT_EQ(std::string(buf, m2.size()), m2);
  EXPECT_EQ(LStat("TlsRxRekeyOk"), 1u);
  EXPECT_EQ(LStat("TlsTxRekeyOk"), 1u);
}

// The selftest's 13 variants (the NO_PAD one is NoPadRetryKeepsIov).
struct Variant {
  LinuxCipher c;
  uint16_t v;
};
const Variant kVariants[] = {
    {kGcm128, k12}, {kGcm128, k13}, {kChacha, k12},  {kChacha, k13},
    {kSm4Gcm, k13}, {kSm4Ccm, k13}, {kCcm128, k12},  {kCcm128, k13},
    {kGcm256, k12}, {kGcm256, k13}, {kAria128, k12}, {kAria256, k12}};

std::string VName(const Variant& v) {
  return std::string(v.v == k12 ? "12_" : "13_") + v.c.name;
}

// A deterministic stream byte.
uint8_t StreamByte(size_t i) { return static_cast<uint8_t>((i * 2654435761u) >> 13); }

// Sends `total` bytes of the StreamByte stream in sends of at most `chunk`.
// On a non-blocking socket EAGAIN is retried after 1 ms and noted in
// *eagain. False on any other failure.
bool SendStream(uk_proc* p, int fd, size_t total, size_t chunk, bool* eagain) {
  std::vector<uint8_t> buf(chunk);
  for (size_t off = 0; off < total;) {
    size_t n = std::min(chunk, total - off);
    for (size_t i = 0; i < n; i++) buf[i] = StreamByte(off + i);
    ssize_t r = uk_send(p, fd, buf.data(), n, 0);
    if (r < 0 && errno == EAGAIN) {
      *eagain = true;
      usleep(1000);
      continue;
    }
    if (r <= 0) return false;
    off += r;
  }
  return true;
}

// Receives `total` bytes in recvs of at most `chunk` and checks them
// against the stream; EAGAIN as in SendStream. False on EOF, an error or a
// wrong byte.
bool RecvStream(uk_proc* p, int fd, size_t total, size_t chunk, bool* eagain) {
  std::vector<uint8_t> buf(chunk);
  bool same = true;
  for (size_t got = 0; got < total;) {
    ssize_t r = uk_recv(p, fd, buf.data(), buf.size(), 0);
    if (r < 0 && errno == EAGAIN) {
      *eagain = true;
      usleep(1000);
      continue;
    }
    if (r <= 0) return false;
    for (ssize_t i = 0; i < r; i++) same &= buf[i] == StreamByte(got + i);
    got += r;
  }
  return same;
}

// blocking: one thread writes 100000 bytes in 16384-byte sends, the other
// reads them in 16384-byte recvs (the selftest forks; uktls processes
// share one kernel, so a thread plays the child).
TEST_F(LinuxTls, BlockingEveryVariant) {
  for (const Variant& var : kVariants) {
    SCOPED_TRACE(VName(var));
    int fd, cfd;
    LinuxInfo li = TlsPair(&fd, &cfd, var.c, var.v, 0, 0);
    const size_t total = 100000;
    bool w_eagain = false, r_eagain = false, sent = false;
    std::thread w([&] { sent = SendStream(p_, fd, total, 16384, &w_eagain); });
    EXPECT_TRUE(RecvStream(p_, cfd, total, 16384, &r_eagain));
    w.join();
    EXPECT_TRUE(sent);
    uk_close(p_, fd);
    uk_close(p_, cfd);
  }
}

// nonblocking: O_NONBLOCK on both ends, a small send buffer, 100000 bytes
// with retries; both sides must have seen EAGAIN. The selftest asks for
// SO_SNDBUF 100, which Linux raises to SOCK_MIN_SNDBUF (4608); uktls's
// socket layer is FreeBSD's and keeps 100, so the test asks for 4608.
TEST_F(LinuxTls, NonblockingEveryVariant) {
  for (const Variant& var : kVariants) {
    SCOPED_TRACE(VName(var));
    int fd, cfd;
    LinuxInfo li = TlsPair(&fd, &cfd, var.c, var.v, 0, 0);
    int small = 4608;
    ASSERT_EQ(uk_setsockopt(p_, fd, SOL_SOCKET, SO_SNDBUF, &small, sizeof small), 0);
    for (int s : {fd, cfd}) {
      ASSERT_EQ(uk_fcntl(p_, s, F_SETFL, uk_fcntl(p_, s, F_GETFL, 0) | O_NONBLOCK), 0);
    }
    // 30000 bytes (the selftest sends 100000): with one small segment in
    // flight at a time each round trip waits for a delayed ACK.
    const size_t total = 30000;
    bool w_eagain = false, r_eagain = false, sent = false;
    std::thread w([&] { sent = SendStream(p_, fd, total, 16384, &w_eagain); });
    EXPECT_TRUE(RecvStream(p_, cfd, total, 16384, &r_eagain));
    w.join();
    EXPECT_TRUE(sent);
    EXPECT_TRUE(w_eagain);
    EXPECT_TRUE(r_eagain);
    uk_close(p_, fd);
    uk_close(p_, cfd);
  }
}

// mutliproc_{even,readers,writers} and _sendpage_: W writers (send, or
// sendfile of a 60,000-byte file of 0xAC) and R readers (8001-byte recvs)
// share one TLS socket pair; the byte totals match. Every byte is 0xAC, so
// interleaving between writers does not matter, only that nothing is lost
// and every record authenticates.
TEST_F(LinuxTls, MultiprocReadersWriters) {
  const int f = uk_open(p_, "/ac", O_RDWR | O_CREAT, 0644);
  ASSERT_GE(f, 0);
  std::vector<uint8_t> file(60000, 0xAC);
  ASSERT_EQ(uk_write(p_, f, file.data(), file.size()), 60000);
  struct Shape {
    int readers, writers;
  } shapes[] = {{6, 6}, {4, 12}, {10, 2}};
  for (bool sendpage : {false, true}) {
    for (const Shape& sh : shapes) {
      SCOPED_TRACE(std::to_string(sh.readers) + "r/" + std::to_string(sh.writers) +
                   "w" + (sendpage ? " sendpage" : ""));
      int fd, cfd;
      LinuxInfo li = TlsPair(&fd, &cfd, kGcm128, k12, 0, 0);
      // 600,000 bytes per writer (the selftest's 6,000,000 x bias, scaled
      // down so the case runs in well under a second).
      const size_t per_writer = 600000;
      const size_t total = per_writer * sh.writers;
      std::atomic<size_t> got{0};
      std::atomic<bool> bad{false};
      std::vector<std::thread> ts;
      for (int i = 0; i < sh.writers; i++) {
        ts.emplace_back([&] {
          size_t left = per_writer;
          while (left > 0) {
            size_t n = std::min<size_t>(left, file.size());
            ssize_t r;
            if (sendpage) {
              off_t sb = 0;
              r = uk_sendfile(p_, f, fd, 0, n, nullptr, &sb, 0) == 0 ? sb : -1;
            } else {
              r = uk_send(p_, fd, file.data(), n, 0);
            }
            if (r <= 0) {
              bad = true;
              return;
            }
            left -= r;
          }
        });
      }
      for (int i = 0; i < sh.readers; i++) {
        ts.emplace_back([&] {
          std::vector<uint8_t> buf(8001);
          while (got.load() < total && !bad.load()) {
            ssize_t r = uk_recv(p_, cfd, buf.data(), buf.size(), MSG_DONTWAIT);
            if (r < 0 && errno == EAGAIN) {
              usleep(200);
              continue;
            }
            if (r <= 0) {
              bad = true;
              return;
            }
            for (ssize_t j = 0; j < r; j++)
              if (buf[j] != 0xAC) bad = true;
            got += r;
          }
        });
      }
      for (auto& t : ts) t.join();
      EXPECT_FALSE(bad.load());
      EXPECT_EQ(got.load(), total);
      uk_close(p_, fd);
      uk_close(p_, cfd);
    }
  }
  uk_close(p_, f);
}

// pollin / poll_wait / poll_wait_split / poll_partial_rec.
TEST_F(LinuxTls, PollFamily) {
  int fd, cfd;
  LinuxInfo li = TlsPair(&fd, &cfd, kGcm128, k12, 0, 0);
  pollfd pfd{cfd, POLLIN, 0};
  const char twenty[] = "0123456789abcdefghij";
  ASSERT_EQ(uk_send(p_, fd, twenty, 20, 0), 20);
  EXPECT_EQ(uk_poll(p_, &pfd, 1, 10000), 1);
  EXPECT_TRUE(pfd.revents & POLLIN);
  char buf[32];
  ASSERT_EQ(uk_recv(p_, cfd, buf, 15, MSG_WAITALL), 15);
  // poll_wait_split: the rest of the record is still readable.
  pfd.revents = 0;
  EXPECT_EQ(uk_poll(p_, &pfd, 1, 0), 1);
  ASSERT_EQ(uk_recv(p_, cfd, buf, 15, 0), 5);
  EXPECT_EQ(std::string(buf, 5), "fghij");
  pfd.revents = 0;
  EXPECT_EQ(uk_poll(p_, &pfd, 1, 20), 0);
  // poll_partial_rec: raw bytes of one record from a plain sender; no
  // POLLIN until the whole record is there.
  int fd2, cfd2;
  Pair(&fd2, &cfd2);
  ASSERT_EQ(Set(cfd2, kTlsRx, li), 0);
  std::vector<uint8_t> pt(128, 0x42);
  std::vector<uint8_t> rec =
      ktls_test::EncryptRecord(li.suite, li.keys, 0, 23, pt.data(), pt.size(), 0, 0);
  pollfd p2{cfd2, POLLIN, 0};
  EXPECT_EQ(uk_poll(p_, &p2, 1, 1), 0);
  ASSERT_EQ(uk_send(p_, fd2, rec.data(), 100, 0), 100);
  EXPECT_EQ(uk_poll(p_, &p2, 1, 50), 0);
  ASSERT_EQ(uk_send(p_, fd2, rec.data() + 100, rec.size() - 100, 0),
            static_cast<ssize_t>(rec.size() - 100));
  EXPECT_EQ(uk_poll(p_, &p2, 1, 10000), 1);
  std::vector<uint8_t> back(128);
  ASSERT_EQ(uk_recv(p_, cfd2, back.data(), back.size(), 0), 128);
  EXPECT_EQ(back, pt);
}

// Bulk: UKTLS_LINUX_MIB (default 8) MiB each way per cipher family, hash-
// checked byte by byte, kTLS on both ends.
TEST_F(LinuxTls, BulkBothWays) {
  const char* e = getenv("UKTLS_LINUX_MIB");
  const size_t total = (e != nullptr ? strtoul(e, nullptr, 10) : 8) << 20;
  for (const Variant& var : {Variant{kGcm128, k13}, Variant{kChacha, k12},
                             Variant{kCcm128, k12}}) {
    SCOPED_TRACE(VName(var));
    int fd, cfd;
    LinuxInfo li = TlsPair(&fd, &cfd, var.c, var.v, 0, 0);
    ASSERT_EQ(Set(cfd, kTlsTx, li), 0);
    ASSERT_EQ(Set(fd, kTlsRx, li), 0);
    auto pump = [&](int from, int to, bool* ok) {
      bool w_eagain = false, r_eagain = false, sent = false;
      std::thread w([&] { sent = SendStream(p_, from, total, 65536, &w_eagain); });
      *ok = RecvStream(p_, to, total, 65536, &r_eagain);
      w.join();
      *ok &= sent;
    };
    bool ok1 = false, ok2 = false;
    std::thread a([&] { pump(fd, cfd, &ok1); });
    pump(cfd, fd, &ok2);
    a.join();
    EXPECT_TRUE(ok1);
    EXPECT_TRUE(ok2);
    uk_close(p_, fd);
    uk_close(p_, cfd);
  }
}

// prequeue: 20000 bytes of records arrive before the receiver attaches
// the ULP and sets TLS_RX (TLS 1.2 AES-256-GCM); they are decrypted.
TEST_F(LinuxTls, Prequeue) {
  int fd, cfd;
  Pair(&fd, &cfd, /*ulp=*/false);
  ASSERT_EQ(uk_setsockopt(p_, fd, IPPROTO_TCP, kTcpUlp, "tls", 4), 0);
  LinuxInfo li = MakeInfo(kGcm256, k12, 3, 0);
  ASSERT_EQ(Set(fd, kTlsTx, li), 0);
  std::vector<uint8_t> data(20000);
  for (size_t i = 0; i < data.size(); i++) data[i] = StreamByte(i);
  ASSERT_EQ(uk_send(p_, fd, data.data(), data.size(), MSG_DONTWAIT), 20000);
  // Let the records reach cfd's socket buffer as ciphertext.
  for (int t = 0; t < 1000; t++) {
    char c;
    if (uk_recv(p_, cfd, &c, 1, MSG_PEEK | MSG_DONTWAIT) == 1) break;
    usleep(1000);
  }
  ASSERT_EQ(uk_setsockopt(p_, cfd, IPPROTO_TCP, kTcpUlp, "tls", 4), 0);
  ASSERT_EQ(Set(cfd, kTlsRx, li), 0);
  std::vector<uint8_t> back(20000);
  ASSERT_EQ(uk_recv(p_, cfd, back.data(), back.size(), MSG_WAITALL), 20000);
  EXPECT_EQ(back, data);
}

// tls_err: bad_rec (64 bytes of 0x55: EMSGSIZE once, then EAGAIN) and
// bad_cmsg (a good data record, then a corrupted type-100 record: 64, then
// EBADMSG twice).
TEST_F(LinuxTls, BadRecordAndBadCmsg) {
  {
    int fd, cfd;
    Pair(&fd, &cfd);
    LinuxInfo li = MakeInfo(kGcm128, k12, 0, 0);
    ASSERT_EQ(Set(cfd, kTlsRx, li), 0);
    std::vector<uint8_t> junk(64, 0x55);
    ASSERT_EQ(uk_send(p_, fd, junk.data(), junk.size(), 0), 64);
    char buf[128];
    EXPECT_EQ(uk_recv(p_, cfd, buf, sizeof buf, 0), -1);
    EXPECT_EQ(errno, EMSGSIZE);
    EXPECT_EQ(uk_recv(p_, cfd, buf, sizeof buf, MSG_DONTWAIT), -1);
    EXPECT_EQ(errno, EAGAIN);
  }
  {
    int fd, cfd;
    Pair(&fd, &cfd);
    LinuxInfo li = MakeInfo(kGcm128, k12, 0, 0);
    ASSERT_EQ(Set(cfd, kTlsRx, li), 0);
    std::vector<uint8_t> pt(64, 'x');
    auto r0 = ktls_test::EncryptRecord(li.suite, li.keys, 0, 23, pt.data(), 64, 0, 0);
    auto r1 = ktls_test::EncryptRecord(li.suite, li.keys, 1, 100, pt.data(), 64, 0, 1);
    r1[r1.size() - 1] ^= 0x80;
    ASSERT_EQ(uk_send(p_, fd, r0.data(), r0.size(), 0), static_cast<ssize_t>(r0.size()));
    ASSERT_EQ(uk_send(p_, fd, r1.data(), r1.size(), 0), static_cast<ssize_t>(r1.size()));
    char buf[256];
    ASSERT_EQ(uk_recv(p_, cfd, buf, sizeof buf, 0), 64);
    EXPECT_EQ(uk_recv(p_, cfd, buf, sizeof buf, 0), -1);
    EXPECT_EQ(errno, EBADMSG);
    EXPECT_EQ(uk_recv(p_, cfd, buf, sizeof buf, 0), -1);
    EXPECT_EQ(errno, EBADMSG);
  }
}

// timeo: SO_RCVTIMEO 10 ms on an RX socket with nothing queued; concurrent
// receivers all time out with EAGAIN.
TEST_F(LinuxTls, RecvTimeout) {
  int fd, cfd;
  Pair(&fd, &cfd);
  LinuxInfo li = MakeInfo(kGcm128, k13, 0, 0);
  ASSERT_EQ(Set(cfd, kTlsRx, li), 0);
  timeval tv{0, 10000};
  ASSERT_EQ(uk_setsockopt(p_, cfd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv), 0);
  std::atomic<int> eagain{0};
  std::vector<std::thread> ts;
  for (int i = 0; i < 4; i++)
    ts.emplace_back([&] {
      char buf[16];
      if (uk_recv(p_, cfd, buf, sizeof buf, 0) == -1 && errno == EAGAIN) eagain++;
    });
  for (auto& t : ts) t.join();
  EXPECT_EQ(eagain.load(), 4);
}

// sendmsg_fragmented (1..64 iovecs of 13 bytes) and recvmsg_multiple
// (16384 bytes into 1024 iovecs of 16).
TEST_F(LinuxTls, ScatterGather) {
  int fd, cfd;
  LinuxInfo li = TlsPair(&fd, &cfd, kGcm128, k12, 0, 0);
  const char kMsg[] = "test_sendmsg";  // 13 bytes with the NUL
  for (int frags = 1; frags <= 64; frags++) {
    std::vector<iovec> iov(frags, iovec{const_cast<char*>(kMsg), 13});
    msghdr msg{};
    msg.msg_iov = iov.data();
    msg.msg_iovlen = frags;
    ASSERT_EQ(uk_sendmsg(p_, fd, &msg, 0), 13 * frags);
    std::vector<char> back(13 * frags);
    ASSERT_EQ(uk_recv(p_, cfd, back.data(), back.size(), MSG_WAITALL),
              static_cast<ssize_t>(back.size()));
    for (int i = 0; i < frags; i++) {
      EXPECT_EQ(memcmp(back.data() + 13 * i, kMsg, 13), 0) << frags;
    }
  }
  std::vector<uint8_t> data(16384);
  for (size_t i = 0; i < data.size(); i++) data[i] = StreamByte(i);
  ASSERT_EQ(uk_send(p_, fd, data.data(), data.size(), 0), 16384);
  std::vector<uint8_t> back(16384);
  std::vector<iovec> iov(1024);
  for (int i = 0; i < 1024; i++) iov[i] = iovec{back.data() + 16 * i, 16};
  msghdr msg{};
  msg.msg_iov = iov.data();
  msg.msg_iovlen = 1024;
  ASSERT_EQ(uk_recvmsg(p_, cfd, &msg, MSG_WAITALL), 16384);
  EXPECT_EQ(back, data);
}

// shutdown_reuse: after shutdown and closing the peer, bind works, listen
// is EINVAL and connect EISCONN (as on Linux and FreeBSD).
TEST_F(LinuxTls, ShutdownReuse) {
  int fd, cfd;
  LinuxInfo li = TlsPair(&fd, &cfd, kGcm128, k12, 0, 0);
  ASSERT_EQ(uk_send(p_, fd, "0123456789", 10, 0), 10);
  char buf[16];
  ASSERT_EQ(uk_recv(p_, cfd, buf, 10, MSG_WAITALL), 10);
  EXPECT_EQ(uk_shutdown(p_, fd, SHUT_RDWR), 0);
  EXPECT_EQ(uk_shutdown(p_, cfd, SHUT_RDWR), 0);
  uk_close(p_, cfd);
  sockaddr_in sin = Loopback(0);
  EXPECT_EQ(uk_listen(p_, fd, 10), -1);
  EXPECT_EQ(errno, EINVAL);
  sin = Loopback(1);
  EXPECT_EQ(uk_connect(p_, fd, reinterpret_cast<sockaddr*>(&sin), sizeof sin), -1);
  EXPECT_EQ(errno, EISCONN);
}

}  // namespace
