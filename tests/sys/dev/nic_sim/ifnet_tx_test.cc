// ktls(4) IFNET transmit between two kernels over a simulated wire: the
// sender's records stay plaintext in its socket buffer and nic_sim's TLS
// engine encrypts every segment inline. The receiver reads the raw TLS
// stream from a plain socket and the test decrypts every record with
// OpenSSL EVP (tag verified, so the ciphertext is exactly what software
// KTLS would have produced for that record and nonce), then hash-checks
// the plaintext.
//
// Covered: AES-128/256-GCM x TLS 1.2/1.3; segments starting inside records
// (rebuilds); 1% loss and reordering; TCP_TXTLS_MODE switching under load
// and its errors; tag reset on a route change; interface down/up; -txtls
// (reset fails, connection dropped, never plaintext or corruption); the
// retransmit fallback to SW; rate-limited tags; sendfile; accounting.
//
// UKTLS_IFNET_TX_MB sets the size of the bulk transfers (default 4; the
// issue's 64 MiB runs are UKTLS_IFNET_TX_MB=64).
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "lib/libuk/uk.h"
#include "sys/dev/nic_sim/nic_sim.h"
#include "sys/kern/kern_proc.h"
#include "sys/kern/kernel.h"
#include "sys/net/if_var.h"
#include "sys/net/route.h"
#include "sys/netinet/tcp.h"
#include "tests/sys/dev/nic_sim/lab.h"

namespace {

size_t bulk_bytes() { return uk::lab::env_mib("UKTLS_IFNET_TX_MB", 4); }

using uk::lab::Conn;
using uk::lab::Node;

// Sender "a" (10.0.0.1, nic_sim0 with txtls unless told otherwise) and
// receiver "b" (10.0.0.2) on one wire; kern.ipc.tls.ifnet.permitted=1 on a.
struct Lab : uk::lab::Pair {
  explicit Lab(const char* wire = "", const char* acaps = "txtls",
               bool permitted = true)
      : Pair(wire, {.a_opts = acaps}) {
    if (permitted) a.set_uint("kern.ipc.tls.ifnet.permitted", 1);
  }
  ~Lab() {
    uk_proc_destroy(a.p);
    uk_proc_destroy(b.p);
  }
};

// One connection a -> b: c on a, s (accepted) on b.
Conn connect_pair(Lab& lab, uint16_t port, int maxseg = 0, int sndbuf = 0) {
  uk::lab::ConnOptions o;
  o.before_connect = [&](int c) {
    if (maxseg > 0) {
      EXPECT_EQ(uk_setsockopt(lab.a.p, c, IPPROTO_TCP, TCP_MAXSEG, &maxseg, sizeof maxseg), 0);
    }
    if (sndbuf > 0) {
      EXPECT_EQ(uk_setsockopt(lab.a.p, c, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof sndbuf), 0);
    }
  };
  return uk::lab::connect_pair(lab.a, lab.b, "10.0.0.2", port, o);
}

struct Suite {
  int key_len;   // 16 or 32
  int vminor;    // TLS_MINOR_VER_TWO / _THREE
  const char* name;
};

struct Keys {
  Suite suite;
  uint8_t key[32];
  uint8_t iv[12];
  uint64_t seq0;
};

Keys make_keys(Suite s, uint64_t seq0 = 0) {
  Keys k{};
  k.suite = s;
  RAND_bytes(k.key, sizeof k.key);
  RAND_bytes(k.iv, sizeof k.iv);
  k.seq0 = seq0;
  return k;
}

tls_enable make_enable(const Keys& k) {
  tls_enable en{};
  en.cipher_key = k.key;
  en.iv = k.iv;
  en.cipher_algorithm = CRYPTO_AES_NIST_GCM_16;
  en.cipher_key_len = k.suite.key_len;
  en.iv_len = k.suite.vminor == TLS_MINOR_VER_THREE ? 12 : 4;
  en.tls_vmajor = TLS_MAJOR_VER_ONE;
  en.tls_vminor = static_cast<uint8_t>(k.suite.vminor);
  for (int i = 0; i < 8; i++) en.rec_seq[i] = static_cast<uint8_t>(k.seq0 >> (56 - 8 * i));
  return en;
}

int enable_tx(Node& n, int s, const Keys& k) {
  tls_enable en = make_enable(k);
  return uk_setsockopt(n.p, s, IPPROTO_TCP, TCP_TXTLS_ENABLE, &en, sizeof en);
}

int tx_mode(Node& n, int s) {
  int mode = -1;
  socklen_t len = sizeof mode;
  EXPECT_EQ(uk_getsockopt(n.p, s, IPPROTO_TCP, TCP_TXTLS_MODE, &mode, &len), 0);
  return mode;
}

int set_tx_mode(Node& n, int s, int mode) {
  return uk_setsockopt(n.p, s, IPPROTO_TCP, TCP_TXTLS_MODE, &mode, sizeof mode) == 0
             ? 0
             : errno;
}

// Decrypts a TLS stream record by record with EVP. Records must be
// application data; a partial record at the end is left alone (*tail).
struct Decrypted {
  std::vector<uint8_t> plain;
  size_t records = 0;
  size_t tail = 0;
  std::string error;
};

Decrypted decrypt_stream(const Keys& k, const std::vector<uint8_t>& w) {
  Decrypted d;
  const bool tls13 = k.suite.vminor == TLS_MINOR_VER_THREE;
  const EVP_CIPHER* c = k.suite.key_len == 16 ? EVP_aes_128_gcm() : EVP_aes_256_gcm();
  EVP_CIPHER_CTX* ctx = EVP_CIPHER_CTX_new();
  size_t off = 0;
  uint64_t seq = k.seq0;
  std::vector<uint8_t> out;
  while (off + 5 <= w.size()) {
    const uint8_t* h = w.data() + off;
    size_t len = static_cast<size_t>(h[3]) << 8 | h[4];
    if (off + 5 + len > w.size()) break;
    char buf[128];
    if (h[0] != TLS_RLTYPE_APP || h[1] != 3 || h[2] != (tls13 ? 3 : k.suite.vminor)) {
      snprintf(buf, sizeof buf, "record %zu: bad header %02x %02x %02x", d.records,
               h[0], h[1], h[2]);
      d.error = buf;
      break;
    }
    const int xn = tls13 ? 0 : 8;
    if (len < static_cast<size_t>(xn + 16 + (tls13 ? 1 : 0))) {
      d.error = "record too short";
      break;
    }
    const uint8_t* ct = h + 5 + xn;
    int clen = static_cast<int>(len) - xn - 16;
    uint8_t nonce[12];
    uint8_t seqbe[8];
    for (int i = 0; i < 8; i++) seqbe[i] = static_cast<uint8_t>(seq >> (56 - 8 * i));
    uint8_t aad[13];
    int aadlen;
    if (tls13) {
      memcpy(nonce, k.iv, 12);
      for (int i = 0; i < 8; i++) nonce[4 + i] ^= seqbe[i];
      memcpy(aad, h, 5);
      aadlen = 5;
    } else {
      memcpy(nonce, k.iv, 4);
      memcpy(nonce + 4, h + 5, 8);
      memcpy(aad, seqbe, 8);
      aad[8] = h[0];
      aad[9] = h[1];
      aad[10] = h[2];
      aad[11] = static_cast<uint8_t>(clen >> 8);
      aad[12] = static_cast<uint8_t>(clen);
      aadlen = 13;
    }
    out.resize(clen + 16);
    int outl = 0, fl = 0;
    bool ok = EVP_DecryptInit_ex(ctx, c, nullptr, nullptr, nullptr) == 1 &&
              EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN, 12, nullptr) == 1 &&
              EVP_DecryptInit_ex(ctx, nullptr, nullptr, k.key, nonce) == 1 &&
              EVP_DecryptUpdate(ctx, nullptr, &outl, aad, aadlen) == 1 &&
              EVP_DecryptUpdate(ctx, out.data(), &outl, ct, clen) == 1 &&
              EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, 16,
                                  const_cast<uint8_t*>(ct + clen)) == 1 &&
              EVP_DecryptFinal_ex(ctx, out.data() + outl, &fl) == 1;
    if (!ok) {
      snprintf(buf, sizeof buf, "record %zu (seq %llu, len %zu): authentication failed",
               d.records, static_cast<unsigned long long>(seq), len);
      d.error = buf;
      break;
    }
    int plen = clen;
    if (tls13) {
      while (plen > 0 && out[plen - 1] == 0) plen--;
      if (plen == 0 || out[plen - 1] != TLS_RLTYPE_APP) {
        d.error = "TLS 1.3 inner type is not application data";
        break;
      }
      plen--;
    }
    d.plain.insert(d.plain.end(), out.begin(), out.begin() + plen);
    d.records++;
    seq++;
    off += 5 + len;
  }
  d.tail = w.size() - off;
  EVP_CIPHER_CTX_free(ctx);
  return d;
}

std::vector<uint8_t> pattern(size_t n, uint64_t seed) {
  std::vector<uint8_t> v(n);
  std::mt19937_64 rng(seed);
  for (size_t i = 0; i < n; i += 8) {
    uint64_t r = rng();
    memcpy(v.data() + i, &r, std::min<size_t>(8, n - i));
  }
  return v;
}

// Reads everything b gets on s until EOF or an error (*err).
std::thread reader(Lab& lab, int s, std::vector<uint8_t>* got, int* err) {
  return std::thread([&lab, s, got, err] {
    std::vector<uint8_t> buf(256 * 1024);
    for (;;) {
      ssize_t n = uk_recv(lab.b.p, s, buf.data(), buf.size(), 0);
      if (n < 0) {
        *err = errno;
        return;
      }
      if (n == 0) return;
      got->insert(got->end(), buf.begin(), buf.begin() + n);
    }
  });
}

// Sends data on c in 64 KiB writes; the errno of a failed send, else 0.
int send_all(Lab& lab, int c, const std::vector<uint8_t>& data,
             const std::function<void(size_t)>& progress = nullptr) {
  size_t off = 0;
  while (off < data.size()) {
    ssize_t n = uk_send(lab.a.p, c, data.data() + off,
                        std::min<size_t>(64 * 1024, data.size() - off), 0);
    if (n <= 0) return n < 0 ? errno : EIO;
    off += n;
    if (progress) progress(off);
  }
  return 0;
}

// A whole IFNET transfer: enable, send, shut down, read, decrypt, compare.
struct Result {
  Decrypted d;
  bool exact = false;
  int mode = -1;
  int send_err = 0, recv_err = 0;
};

Result run_transfer(Lab& lab, const Keys& k, size_t bytes, uint16_t port,
                    int maxseg = 0,
                    const std::function<void(Lab&, Conn&, size_t)>& during = nullptr,
                    int sndbuf = 0) {
  Result r;
  Conn x = connect_pair(lab, port, maxseg, sndbuf);
  EXPECT_EQ(enable_tx(lab.a, x.c, k), 0) << strerror(errno);
  r.mode = tx_mode(lab.a, x.c);
  std::vector<uint8_t> data = pattern(bytes, bytes + port);
  std::vector<uint8_t> got;
  std::thread rd = reader(lab, x.s, &got, &r.recv_err);
  r.send_err = send_all(lab, x.c, data, [&](size_t off) {
    if (during) during(lab, x, off);
  });
  uk_shutdown(lab.a.p, x.c, SHUT_WR);
  rd.join();
  r.d = decrypt_stream(k, got);
  r.exact = r.d.error.empty() && r.d.tail == 0 && r.d.plain == data;
  uk_close(lab.a.p, x.c);
  uk_close(lab.b.p, x.s);
  uk_close(lab.b.p, x.l);
  return r;
}

class IfnetTxSuite : public ::testing::TestWithParam<Suite> {};

TEST_P(IfnetTxSuite, NicEncryptsRecordsAsSoftwareWould) {
  Lab lab;
  Keys k = make_keys(GetParam(), 0x0102030405060708ULL);
  uint64_t sw0 = lab.a.stat("kern.ipc.tls.stats.sw_tx_bytes");
  const size_t n = bulk_bytes();
  Result r = run_transfer(lab, k, n, 5001);
  EXPECT_EQ(r.mode, TCP_TLS_MODE_IFNET);
  EXPECT_EQ(r.d.error, "");
  EXPECT_EQ(r.d.tail, 0u);
  EXPECT_TRUE(r.exact) << "plaintext differs after " << r.d.plain.size() << " bytes";
  EXPECT_GE(r.d.records, n / 16384);
  // The NIC, not the workers, encrypted every byte (at least once).
  EXPECT_GE(lab.a.stat("kern.ipc.tls.stats.ifnet_tx_bytes"), n);
  EXPECT_EQ(lab.a.stat("kern.ipc.tls.stats.sw_tx_bytes"), sw0);
  EXPECT_GE(lab.a.stat("dev.nic_sim.0.tls_tx.records"), r.d.records);
  EXPECT_GE(lab.a.stat("dev.nic_sim.0.tls_tx.bytes"), n);
  EXPECT_EQ(lab.a.stat("dev.nic_sim.0.tls_tx.errors"), 0u);
  EXPECT_GE(lab.a.stat("kern.ipc.tls.stats.offload_total"), 1u);
}

INSTANTIATE_TEST_SUITE_P(
    Gcm, IfnetTxSuite,
    ::testing::Values(Suite{16, TLS_MINOR_VER_TWO, "aes128_tls12"},
                      Suite{32, TLS_MINOR_VER_TWO, "aes256_tls12"},
                      Suite{16, TLS_MINOR_VER_THREE, "aes128_tls13"},
                      Suite{32, TLS_MINOR_VER_THREE, "aes256_tls13"}),
    [](const ::testing::TestParamInfo<Suite>& i) { return std::string(i.param.name); });

TEST(IfnetTx, GaugesAndTagsFollowTheSession) {
  Lab lab;
  Keys k = make_keys({16, TLS_MINOR_VER_THREE, ""});
  Conn x = connect_pair(lab, 5002);
  uint64_t tags0 = lab.a.stat("kern.ipc.num_snd_tags");
  ASSERT_EQ(enable_tx(lab.a, x.c, k), 0);
  EXPECT_EQ(tx_mode(lab.a, x.c), TCP_TLS_MODE_IFNET);
  EXPECT_EQ(lab.a.stat("kern.ipc.tls.ifnet.gcm"), 1u);
  EXPECT_EQ(lab.a.stat("kern.ipc.tls.sw.gcm"), 0u);
  EXPECT_EQ(lab.a.stat("kern.ipc.num_snd_tags"), tags0 + 1);
  EXPECT_EQ(lab.a.stat("dev.nic_sim.0.tls_tx.tags"), 1u);
  uk_close(lab.a.p, x.c);
  uk_close(lab.b.p, x.s);
  uk_close(lab.b.p, x.l);
}

TEST(IfnetTx, BackendChoice) {
  // Not permitted: software, unless forced.
  {
    Lab lab("", "txtls", false);
    Keys k = make_keys({16, TLS_MINOR_VER_TWO, ""});
    Conn x = connect_pair(lab, 5003);
    ASSERT_EQ(enable_tx(lab.a, x.c, k), 0);
    EXPECT_EQ(tx_mode(lab.a, x.c), TCP_TLS_MODE_SW);
    EXPECT_EQ(set_tx_mode(lab.a, x.c, TCP_TLS_MODE_IFNET), 0);
    EXPECT_EQ(tx_mode(lab.a, x.c), TCP_TLS_MODE_IFNET);
  }
  // Permitted, but the interface has no txtls: software.
  {
    Lab lab("", "", true);
    Keys k = make_keys({16, TLS_MINOR_VER_TWO, ""});
    Conn x = connect_pair(lab, 5004);
    ASSERT_EQ(enable_tx(lab.a, x.c, k), 0);
    EXPECT_EQ(tx_mode(lab.a, x.c), TCP_TLS_MODE_SW);
    uint64_t f0 = lab.a.stat("kern.ipc.tls.stats.switch_failed");
    EXPECT_EQ(set_tx_mode(lab.a, x.c, TCP_TLS_MODE_IFNET), EOPNOTSUPP);
    EXPECT_EQ(lab.a.stat("kern.ipc.tls.stats.switch_failed"), f0 + 1);
    EXPECT_EQ(tx_mode(lab.a, x.c), TCP_TLS_MODE_SW);
  }
  // Permitted with txtls, but a suite the NIC does not do (ChaCha20).
  {
    Lab lab;
    Conn x = connect_pair(lab, 5005);
    uint8_t key[32] = {1}, iv[12] = {2};
    tls_enable en{};
    en.cipher_key = key;
    en.iv = iv;
    en.cipher_algorithm = CRYPTO_CHACHA20_POLY1305;
    en.cipher_key_len = 32;
    en.iv_len = 12;
    en.tls_vmajor = TLS_MAJOR_VER_ONE;
    en.tls_vminor = TLS_MINOR_VER_TWO;
    ASSERT_EQ(uk_setsockopt(lab.a.p, x.c, IPPROTO_TCP, TCP_TXTLS_ENABLE, &en, sizeof en), 0);
    EXPECT_EQ(tx_mode(lab.a, x.c), TCP_TLS_MODE_SW);
    EXPECT_EQ(lab.a.stat("dev.nic_sim.0.tls_tx.tag_failures"), 1u);
  }
}

// Every segment starting inside a record makes the engine rebuild its
// cipher state from the record's start (tls_tx_keep_state=0, a NIC without
// per-flow state), with small segments so most of them do.
TEST(IfnetTx, SegmentsStartingInsideRecordsAreRebuilt) {
  Lab lab;
  lab.a.set_int("dev.nic_sim.0.tls_tx_keep_state", 0);
  Keys k = make_keys({32, TLS_MINOR_VER_TWO, ""});
  // A send buffer larger than the data keeps every record whole (16 KiB).
  const size_t n = 512 * 1024;
  Result r = run_transfer(lab, k, n, 5006, 536, nullptr, 1 << 20);
  EXPECT_EQ(r.mode, TCP_TLS_MODE_IFNET);
  EXPECT_EQ(r.d.error, "");
  EXPECT_TRUE(r.exact);
  uint64_t rb = lab.a.stat("dev.nic_sim.0.tls_tx.rebuild_bytes");
  uint64_t rs = lab.a.stat("dev.nic_sim.0.tls_tx.rebuilds");
  // ~30 segments per 16 KiB record, each re-reading what precedes it.
  EXPECT_GT(rs, r.d.records * 20);
  EXPECT_GT(rb, n * 5);
  EXPECT_EQ(lab.a.stat("kern.ipc.tls.stats.ifnet_tx_rebuild_bytes"), rb);
  EXPECT_EQ(lab.a.stat("kern.ipc.tls.stats.ifnet_tx_rebuilds"), rs);
}

// With per-flow state (the default), in-order segments need no rebuild;
// loss and reordering bring retransmissions that start inside records.
TEST(IfnetTx, LossAndReorderingCostRebuildsNotCorruption) {
  for (Suite s : {Suite{16, TLS_MINOR_VER_TWO, ""}, Suite{32, TLS_MINOR_VER_THREE, ""}}) {
    Lab lab("loss=0.01 reorder=0.01 delay=50us seed=7");
    lab.a.set_uint("kern.ipc.tls.ifnet_max_rexmit_pct", 100);  // stay IFNET
    Keys k = make_keys(s);
    const size_t n = bulk_bytes();
    Result r = run_transfer(lab, k, n, 5007);
    EXPECT_EQ(r.send_err, 0);
    EXPECT_EQ(r.recv_err, 0);
    EXPECT_EQ(r.d.error, "");
    EXPECT_TRUE(r.exact);
    EXPECT_GT(lab.a.stat("dev.nic_sim.0.tls_tx.rebuild_bytes"), 0u);
    EXPECT_GT(lab.a.stat("net.inet.tcp.stats.sndrexmitbyte"), 0u);
    EXPECT_EQ(lab.a.stat("kern.ipc.tls.stats.ifnet_disable_ok"), 0u);
  }
}

// TSO with NIC TLS, as mlx5en does it: TCP hands the NIC packets of up to
// 64 KiB of one session's plaintext records; the NIC cuts them into
// segments and its TLS engine encrypts each one, carrying the cipher state
// from segment to segment (a TSO packet is one run of sequence space), so
// a clean wire needs no rebuild; under loss only retransmissions do.
TEST(IfnetTx, TsoPacketsOfRecordsAreEncryptedSegmentBySegment) {
  for (const char* wire : {"", "loss=0.01 reorder=0.01 delay=50us seed=5"}) {
    Lab lab(wire, "txtls txcsum tso");
    lab.a.set_uint("kern.ipc.tls.ifnet_max_rexmit_pct", 100);  // stay IFNET
    Keys k = make_keys({16, TLS_MINOR_VER_THREE, ""});
    Result r = run_transfer(lab, k, bulk_bytes(), 5020);
    EXPECT_EQ(r.mode, TCP_TLS_MODE_IFNET) << wire;
    EXPECT_EQ(r.send_err, 0) << wire;
    EXPECT_EQ(r.d.error, "") << wire;
    EXPECT_TRUE(r.exact) << wire;
    const uint64_t pkts = lab.a.stat("dev.nic_sim.0.tso_packets");
    const uint64_t segs = lab.a.stat("dev.nic_sim.0.tso_segments");
    EXPECT_GT(pkts, 0u) << wire;
    EXPECT_GT(segs, 2 * pkts) << wire;
    EXPECT_GE(lab.a.stat("dev.nic_sim.0.tls_tx.frames"), segs) << wire;
    EXPECT_EQ(lab.b.stat("dev.nic_sim.0.ierrors"), 0u) << wire;
    EXPECT_EQ(lab.a.stat("kern.ipc.tls.stats.ifnet_disable_ok"), 0u) << wire;
    if (*wire == '\0') {
      EXPECT_EQ(lab.a.stat("dev.nic_sim.0.tls_tx.rebuilds"), 0u);
    } else {
      EXPECT_GT(lab.a.stat("net.inet.tcp.stats.sndrexmitbyte"), 0u) << wire;
    }
  }
}

TEST(IfnetTx, RetransmitFallbackSwitchesToSoftwareOnce) {
  Lab lab("loss=0.03 delay=50us seed=3");
  Keys k = make_keys({16, TLS_MINOR_VER_THREE, ""});
  int c = -1;
  Result r = run_transfer(lab, k, 2 << 20, 5008, 0,
                          [&](Lab&, Conn& x, size_t) { c = x.c; });
  EXPECT_EQ(r.mode, TCP_TLS_MODE_IFNET);
  EXPECT_EQ(r.d.error, "");
  EXPECT_TRUE(r.exact);
  EXPECT_EQ(lab.a.stat("kern.ipc.tls.stats.ifnet_disable_ok"), 1u);
  EXPECT_EQ(lab.a.stat("kern.ipc.tls.stats.ifnet_disable_failed"), 0u);
  EXPECT_EQ(lab.a.stat("kern.ipc.tls.stats.switch_to_sw"), 1u);
  EXPECT_GT(lab.a.stat("kern.ipc.tls.stats.sw_tx_bytes"), 0u);
  EXPECT_GT(lab.a.stat("kern.ipc.tls.stats.ifnet_tx_bytes"), 0u);
}

TEST(IfnetTx, IfnetRefusedAfterFallback) {
  Lab lab("loss=0.05 delay=50us seed=11");
  Keys k = make_keys({16, TLS_MINOR_VER_TWO, ""});
  Conn x = connect_pair(lab, 5009);
  ASSERT_EQ(enable_tx(lab.a, x.c, k), 0);
  ASSERT_EQ(tx_mode(lab.a, x.c), TCP_TLS_MODE_IFNET);
  std::vector<uint8_t> got;
  int rerr = 0;
  std::thread rd = reader(lab, x.s, &got, &rerr);
  std::vector<uint8_t> data = pattern(1 << 20, 9);
  EXPECT_EQ(send_all(lab, x.c, data), 0);
  // The disable task runs soon after the retransmissions that trigger it.
  for (int i = 0; i < 500 && tx_mode(lab.a, x.c) != TCP_TLS_MODE_SW; i++)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  EXPECT_EQ(tx_mode(lab.a, x.c), TCP_TLS_MODE_SW);
  EXPECT_EQ(set_tx_mode(lab.a, x.c, TCP_TLS_MODE_IFNET), ENXIO);
  EXPECT_EQ(set_tx_mode(lab.a, x.c, TCP_TLS_MODE_SW), 0);  // already SW
  uk_shutdown(lab.a.p, x.c, SHUT_WR);
  rd.join();
  Decrypted d = decrypt_stream(k, got);
  EXPECT_EQ(d.error, "");
  EXPECT_EQ(d.plain, data);
}

TEST(IfnetTx, ModeErrors) {
  Lab lab;
  Keys k = make_keys({16, TLS_MINOR_VER_TWO, ""});
  Conn x = connect_pair(lab, 5010);
  // No session: success, nothing changes.
  EXPECT_EQ(set_tx_mode(lab.a, x.c, TCP_TLS_MODE_IFNET), 0);
  EXPECT_EQ(set_tx_mode(lab.a, x.c, TCP_TLS_MODE_SW), 0);
  EXPECT_EQ(tx_mode(lab.a, x.c), TCP_TLS_MODE_NONE);
  // Modes other than SW and IFNET.
  for (int m : {TCP_TLS_MODE_NONE, TCP_TLS_MODE_TOE, 7, -1})
    EXPECT_EQ(set_tx_mode(lab.a, x.c, m), EINVAL) << m;
  // A listening socket, with or without a valid mode.
  EXPECT_EQ(set_tx_mode(lab.b, x.l, TCP_TLS_MODE_SW), EINVAL);
  EXPECT_EQ(set_tx_mode(lab.b, x.l, TCP_TLS_MODE_IFNET), EINVAL);
  int mode;
  socklen_t len = sizeof mode;
  EXPECT_EQ(uk_getsockopt(lab.b.p, x.l, IPPROTO_TCP, TCP_TXTLS_MODE, &mode, &len), -1);
  EXPECT_EQ(errno, EINVAL);

  ASSERT_EQ(enable_tx(lab.a, x.c, k), 0);
  ASSERT_EQ(tx_mode(lab.a, x.c), TCP_TLS_MODE_IFNET);
  uint64_t to_if = lab.a.stat("kern.ipc.tls.stats.switch_to_ifnet");
  uint64_t to_sw = lab.a.stat("kern.ipc.tls.stats.switch_to_sw");
  uint64_t failed = lab.a.stat("kern.ipc.tls.stats.switch_failed");
  // Already in that mode: success, no switch.
  EXPECT_EQ(set_tx_mode(lab.a, x.c, TCP_TLS_MODE_IFNET), 0);
  EXPECT_EQ(lab.a.stat("kern.ipc.tls.stats.switch_to_ifnet"), to_if);
  EXPECT_EQ(set_tx_mode(lab.a, x.c, TCP_TLS_MODE_SW), 0);
  EXPECT_EQ(tx_mode(lab.a, x.c), TCP_TLS_MODE_SW);
  EXPECT_EQ(lab.a.stat("kern.ipc.tls.stats.switch_to_sw"), to_sw + 1);
  EXPECT_EQ(lab.a.stat("kern.ipc.tls.ifnet.gcm"), 0u);
  EXPECT_EQ(lab.a.stat("kern.ipc.tls.sw.gcm"), 1u);
  EXPECT_EQ(set_tx_mode(lab.a, x.c, TCP_TLS_MODE_IFNET), 0);
  EXPECT_EQ(lab.a.stat("kern.ipc.tls.stats.switch_to_ifnet"), to_if + 1);
  EXPECT_EQ(lab.a.stat("kern.ipc.tls.ifnet.gcm"), 1u);
  EXPECT_EQ(lab.a.stat("kern.ipc.tls.sw.gcm"), 0u);
  // The interface stops offering TLS: the forced switch fails.
  ASSERT_EQ(set_tx_mode(lab.a, x.c, TCP_TLS_MODE_SW), 0);
  ASSERT_EQ(uk_ifconfig(lab.a.k, "nic_sim0", "-txtls"), 0);
  EXPECT_EQ(set_tx_mode(lab.a, x.c, TCP_TLS_MODE_IFNET), EOPNOTSUPP);
  EXPECT_EQ(lab.a.stat("kern.ipc.tls.stats.switch_failed"), failed + 1);
  EXPECT_EQ(tx_mode(lab.a, x.c), TCP_TLS_MODE_SW);
  uk_close(lab.a.p, x.c);
  uk_close(lab.b.p, x.s);
  uk_close(lab.b.p, x.l);
}

// Two mode changes that both read the SW session before either swaps: the
// second to get the send lock finds the session changed (EBUSY). The send
// lock is held by a sender blocked on a full send buffer meanwhile.
TEST(IfnetTx, ConcurrentModeChangeIsEbusy) {
  Lab lab;
  Keys k = make_keys({16, TLS_MINOR_VER_TWO, ""});
  Conn x = connect_pair(lab, 5011);
  ASSERT_EQ(enable_tx(lab.a, x.c, k), 0);
  ASSERT_EQ(set_tx_mode(lab.a, x.c, TCP_TLS_MODE_SW), 0);
  int small = 64 * 1024;
  uk_setsockopt(lab.a.p, x.c, SOL_SOCKET, SO_SNDBUF, &small, sizeof small);
  uk_setsockopt(lab.b.p, x.s, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
  std::vector<uint8_t> data = pattern(4 << 20, 5);
  std::thread snd([&] { EXPECT_EQ(send_all(lab, x.c, data), 0); });
  // Wait for the sender to block: both buffers full.
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  uint64_t failed = lab.a.stat("kern.ipc.tls.stats.switch_failed");
  int r1 = -1, r2 = -1;
  std::thread t1([&] { r1 = set_tx_mode(lab.a, x.c, TCP_TLS_MODE_IFNET); });
  std::thread t2([&] { r2 = set_tx_mode(lab.a, x.c, TCP_TLS_MODE_IFNET); });
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  std::vector<uint8_t> got;
  int rerr = 0;
  std::thread rd = reader(lab, x.s, &got, &rerr);
  t1.join();
  t2.join();
  snd.join();
  uk_shutdown(lab.a.p, x.c, SHUT_WR);
  rd.join();
  EXPECT_TRUE((r1 == 0 && r2 == EBUSY) || (r1 == EBUSY && r2 == 0)) << r1 << " " << r2;
  EXPECT_EQ(lab.a.stat("kern.ipc.tls.stats.switch_failed"), failed + 1);
  EXPECT_EQ(tx_mode(lab.a, x.c), TCP_TLS_MODE_IFNET);
  Decrypted d = decrypt_stream(k, got);
  EXPECT_EQ(d.error, "");
  EXPECT_EQ(d.plain, data);
}

// The sender switches modes between its writes (every 128 KiB, while
// earlier records are still queued or in flight) and a second thread
// switches concurrently; a change that loses a race is EBUSY, nothing else.
TEST(IfnetTx, RepeatedSwitchingKeepsTheStreamExact) {
  for (Suite s : {Suite{16, TLS_MINOR_VER_TWO, ""}, Suite{32, TLS_MINOR_VER_THREE, ""}}) {
    Lab lab("delay=20us");
    Keys k = make_keys(s, 1000);
    const size_t n = bulk_bytes();
    std::atomic<bool> stop{false};
    std::atomic<int> switches{0}, busy{0}, other{0};
    auto toggle = [&](Lab& l, int c, int mode) {
      int e = set_tx_mode(l.a, c, mode);
      if (e == 0) {
        switches++;
      } else if (e == EBUSY) {
        busy++;
      } else {
        other++;
      }
    };
    int c = -1;
    size_t next = 128 * 1024;
    int mode = TCP_TLS_MODE_SW;
    std::thread toggler;
    Result r = run_transfer(lab, k, n, 5012, 0, [&](Lab& l, Conn& x, size_t off) {
      if (off >= n) {
        // Everything is queued: stop switching before the socket closes.
        stop.store(true);
        if (toggler.joinable()) toggler.join();
        return;
      }
      if (c < 0) {
        c = x.c;
        toggler = std::thread([&l, &stop, &toggle, c] {
          int m = TCP_TLS_MODE_IFNET;
          while (!stop.load()) {
            toggle(l, c, m);
            m = m == TCP_TLS_MODE_SW ? TCP_TLS_MODE_IFNET : TCP_TLS_MODE_SW;
            std::this_thread::sleep_for(std::chrono::milliseconds(3));
          }
        });
      }
      if (off >= next) {
        next += 128 * 1024;
        toggle(l, x.c, mode);
        mode = mode == TCP_TLS_MODE_SW ? TCP_TLS_MODE_IFNET : TCP_TLS_MODE_SW;
      }
    });
    stop.store(true);
    if (toggler.joinable()) toggler.join();
    EXPECT_EQ(r.d.error, "");
    EXPECT_TRUE(r.exact);
    EXPECT_EQ(other.load(), 0);
    // A switch to the mode already in force succeeds without switching,
    // so the counters may stay below the successful calls.
    uint64_t counted = lab.a.stat("kern.ipc.tls.stats.switch_to_sw") +
                       lab.a.stat("kern.ipc.tls.stats.switch_to_ifnet");
    EXPECT_GE(counted, 4u);
    EXPECT_LE(counted, static_cast<uint64_t>(switches.load()));
    EXPECT_EQ(lab.a.stat("kern.ipc.tls.stats.switch_failed"),
              static_cast<uint64_t>(busy.load()));
    // Both kinds of encryption carried part of the stream.
    EXPECT_GT(lab.a.stat("kern.ipc.tls.stats.sw_tx_bytes"), 0u);
    EXPECT_GT(lab.a.stat("kern.ipc.tls.stats.ifnet_tx_bytes"), 0u);
  }
}

TEST(IfnetTx, InterfaceDownUpDuringTransfer) {
  Lab lab("delay=20us");
  Keys k = make_keys({16, TLS_MINOR_VER_THREE, ""});
  const size_t n = bulk_bytes();
  bool done = false;
  Result r = run_transfer(lab, k, n, 5013, 0, [&](Lab& l, Conn&, size_t off) {
    if (!done && off >= n / 2) {
      done = true;
      EXPECT_EQ(uk_ifconfig(l.a.k, "nic_sim0", "down"), 0);
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
      EXPECT_EQ(uk_ifconfig(l.a.k, "nic_sim0", "up"), 0);
    }
  });
  EXPECT_EQ(r.send_err, 0);
  EXPECT_EQ(r.d.error, "");
  EXPECT_TRUE(r.exact);
}

// The route to the peer moves to another interface: packets are refused
// for the old tag (EAGAIN), the tag is reallocated on the new interface.
TEST(IfnetTx, RouteChangeResetsTheTag) {
  Lab lab("delay=20us");
  ASSERT_EQ(uk_ifconfig(lab.a.k, "nic_sim1", "create inet 10.0.1.1/24 up txtls"), 0);
  ASSERT_EQ(uk_ifconfig(lab.b.k, "nic_sim1", "create inet 10.0.1.2/24 up"), 0);
  ASSERT_EQ(uk_wire(lab.a.k, "nic_sim1", lab.b.k, "nic_sim1", "delay=20us"), 0);
  Keys k = make_keys({32, TLS_MINOR_VER_TWO, ""});
  const size_t n = bulk_bytes();
  bool moved = false;
  Result r = run_transfer(lab, k, n, 5014, 0, [&](Lab& l, Conn&, size_t off) {
    if (!moved && off >= n / 3) {
      moved = true;
      uk::kernel& ka = l.a.kern();
      uk::nhop4 nh;
      ASSERT_EQ(ka.net->rt->lookup(in_addr{inet_addr("10.0.1.2")}, &nh), 0);
      ASSERT_EQ(ka.net->rt->add(in_addr{inet_addr("10.0.0.2")}, 32,
                                in_addr{inet_addr("10.0.1.2")}, nh.ifp),
                0);
    }
  });
  EXPECT_EQ(r.send_err, 0);
  EXPECT_EQ(r.d.error, "");
  EXPECT_TRUE(r.exact);
  EXPECT_GE(lab.a.stat("kern.ipc.tls.ifnet.reset"), 1u);
  EXPECT_EQ(lab.a.stat("kern.ipc.tls.ifnet.reset_failed"), 0u);
  EXPECT_GT(lab.a.stat("dev.nic_sim.1.tls_tx.bytes"), 0u);
  EXPECT_EQ(lab.a.stat("dev.nic_sim.0.tls_tx.tags"), 0u);  // old tag released
}

// The interface stops offering TLS under a connection: the tag cannot be
// replaced, so the connection is dropped (ECONNABORTED) as FreeBSD does;
// what the receiver got is an exact, authentic prefix.
TEST(IfnetTx, TxtlsRemovedDropsTheConnectionCleanly) {
  Lab lab("delay=20us");
  Keys k = make_keys({16, TLS_MINOR_VER_TWO, ""});
  Conn x = connect_pair(lab, 5015);
  ASSERT_EQ(enable_tx(lab.a, x.c, k), 0);
  ASSERT_EQ(tx_mode(lab.a, x.c), TCP_TLS_MODE_IFNET);
  std::vector<uint8_t> data = pattern(bulk_bytes(), 15);
  std::vector<uint8_t> got;
  int rerr = 0;
  std::thread rd = reader(lab, x.s, &got, &rerr);
  bool cut = false;
  int serr = send_all(lab, x.c, data, [&](size_t off) {
    if (!cut && off >= data.size() / 4) {
      cut = true;
      EXPECT_EQ(uk_ifconfig(lab.a.k, "nic_sim0", "-txtls"), 0);
    }
  });
  if (serr == 0) {
    // Everything was queued before the drop: the error comes with close.
    uk_shutdown(lab.a.p, x.c, SHUT_WR);
  }
  rd.join();
  for (int i = 0; i < 200 && lab.a.stat("kern.ipc.tls.ifnet.reset_dropped") == 0; i++)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  EXPECT_EQ(lab.a.stat("kern.ipc.tls.ifnet.reset_failed"), 1u);
  EXPECT_EQ(lab.a.stat("kern.ipc.tls.ifnet.reset_dropped"), 1u);
  int soerr = 0;
  socklen_t len = sizeof soerr;
  uk_getsockopt(lab.a.p, x.c, SOL_SOCKET, SO_ERROR, &soerr, &len);
  EXPECT_TRUE(serr == ECONNABORTED || soerr == ECONNABORTED) << serr << " " << soerr;
  EXPECT_LT(got.size(), data.size());
  Decrypted d = decrypt_stream(k, got);
  EXPECT_EQ(d.error, "");
  ASSERT_LE(d.plain.size(), data.size());
  EXPECT_TRUE(std::equal(d.plain.begin(), d.plain.end(), data.begin()));
}

TEST(IfnetTx, SendfileRecordsGoThroughTheNic) {
  Lab lab;
  Keys k = make_keys({16, TLS_MINOR_VER_THREE, ""});
  std::vector<uint8_t> data = pattern(1 << 20, 21);
  int fd = uk_open(lab.a.p, "/f", O_CREAT | O_RDWR, 0644);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(uk_pwrite(lab.a.p, fd, data.data(), data.size(), 0),
            static_cast<ssize_t>(data.size()));
  Conn x = connect_pair(lab, 5016);
  ASSERT_EQ(enable_tx(lab.a, x.c, k), 0);
  ASSERT_EQ(tx_mode(lab.a, x.c), TCP_TLS_MODE_IFNET);
  std::vector<uint8_t> got;
  int rerr = 0;
  std::thread rd = reader(lab, x.s, &got, &rerr);
  off_t sbytes = 0;
  EXPECT_EQ(uk_sendfile(lab.a.p, fd, x.c, 0, data.size(), nullptr, &sbytes, 0), 0);
  EXPECT_EQ(sbytes, static_cast<off_t>(data.size()));
  uk_shutdown(lab.a.p, x.c, SHUT_WR);
  rd.join();
  Decrypted d = decrypt_stream(k, got);
  EXPECT_EQ(d.error, "");
  EXPECT_EQ(d.plain, data);
  // The file's pages were only read.
  std::vector<uint8_t> back(data.size());
  EXPECT_EQ(uk_pread(lab.a.p, fd, back.data(), back.size(), 0),
            static_cast<ssize_t>(back.size()));
  EXPECT_EQ(back, data);
}

// pcap (nanosecond) records of frames from 10.0.0.1 with TCP payload:
// arrival time (ns) and frame length.
std::vector<std::pair<uint64_t, uint32_t>> data_frames(const std::string& path) {
  std::vector<std::pair<uint64_t, uint32_t>> v;
  std::ifstream f(path, std::ios::binary);
  std::vector<uint8_t> b((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  if (b.size() < 24) return v;
  size_t off = 24;
  const uint32_t src = inet_addr("10.0.0.1");
  while (off + 16 <= b.size()) {
    uint32_t sec, frac, incl, orig;
    memcpy(&sec, &b[off], 4);
    memcpy(&frac, &b[off + 4], 4);
    memcpy(&incl, &b[off + 8], 4);
    memcpy(&orig, &b[off + 12], 4);
    off += 16;
    if (off + incl > b.size()) break;
    const uint8_t* fr = &b[off];
    if (incl >= 54 && fr[12] == 0x08 && fr[13] == 0x00 && fr[23] == IPPROTO_TCP) {
      uint32_t s;
      memcpy(&s, fr + 26, 4);
      int ihl = (fr[14] & 15) * 4;
      int iplen = fr[16] << 8 | fr[17];
      int thl = (fr[14 + ihl + 12] >> 4) * 4;
      if (s == src && iplen - ihl - thl > 0)
        v.push_back({static_cast<uint64_t>(sec) * 1000000000ULL + frac, orig});
    }
    off += incl;
  }
  return v;
}

// A paced connection gets a TLS_RATE_LIMIT tag; the NIC's pacing holds it
// to the rate. Measured on the wire's own arrival times at the receiver.
TEST(IfnetTx, RateLimitedTagHoldsTheRate) {
  Lab lab("", "txtls txtlsrtlmt");
  EXPECT_EQ(uk_ifconfig(lab.a.k, "nic_sim0", "mtu 9000"), 0);
  EXPECT_EQ(uk_ifconfig(lab.b.k, "nic_sim0", "mtu 9000"), 0);
  // Slow enough that TCP keeps the paced tag backlogged even in sanitizer
  // builds: 9 KB frames leave every 9 ms.
  const uint32_t rate = 1000000;  // bytes/s
  std::string path = std::string(getenv("TEST_TMPDIR") ? getenv("TEST_TMPDIR") : "/tmp") +
                     "/ifnet_rate.pcap";
  uk::bpf_capture_opts o;
  o.nanosecond = true;
  o.snaplen = 64;
  auto nb = uk::nic_sim_find(lab.b.kern(), "nic_sim0");
  ASSERT_TRUE(nb);
  ASSERT_EQ(nb->bpf().start(path, o), 0);
  Keys k = make_keys({16, TLS_MINOR_VER_TWO, ""});
  Conn x = connect_pair(lab, 5017);
  ASSERT_EQ(uk_setsockopt(lab.a.p, x.c, SOL_SOCKET, SO_MAX_PACING_RATE, &rate, sizeof rate), 0);
  uint32_t back = 0;
  socklen_t blen = sizeof back;
  ASSERT_EQ(uk_getsockopt(lab.a.p, x.c, SOL_SOCKET, SO_MAX_PACING_RATE, &back, &blen), 0);
  EXPECT_EQ(back, rate);
  ASSERT_EQ(enable_tx(lab.a, x.c, k), 0);
  ASSERT_EQ(tx_mode(lab.a, x.c), TCP_TLS_MODE_IFNET);
  std::vector<uint8_t> data = pattern(3 << 19, 17);
  std::vector<uint8_t> got;
  int rerr = 0;
  std::thread rd = reader(lab, x.s, &got, &rerr);
  EXPECT_EQ(send_all(lab, x.c, data), 0);
  uk_shutdown(lab.a.p, x.c, SHUT_WR);
  rd.join();
  nb->bpf().stop();
  Decrypted d = decrypt_stream(k, got);
  EXPECT_EQ(d.error, "");
  EXPECT_EQ(d.plain, data);
  EXPECT_GT(lab.a.stat("dev.nic_sim.0.paced_waits"), 0u);
  auto frames = data_frames(path);
  ASSERT_GT(frames.size(), 100u);
  uint64_t bytes = 0;
  for (size_t i = 1; i < frames.size(); i++) bytes += frames[i].second;
  double secs = (frames.back().first - frames.front().first) / 1e9;
  double measured = bytes / secs;
  printf("rate limit %u B/s, measured %.0f B/s over %.3f s (%zu frames)\n", rate,
         measured, secs, frames.size());
  EXPECT_NEAR(measured / rate, 1.0, 0.05);
}

}  // namespace
