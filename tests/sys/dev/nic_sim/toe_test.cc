// TOE mode: two kernels over a wire, `toe` enabled on the server's NIC.
// The server's connection is offloaded: its TCP runs on the NIC's engine
// thread, and in TLS mode the engine frames, encrypts and decrypts the
// records (TCP_TLS_MODE_TOE). Peers use software KTLS or read the raw
// stream and decrypt it with OpenSSL EVP (tests/sys/kern/ktls_test_util).
//
// UKTLS_TOE_TRANSFER_MB sets the size of the bulk transfers (default 4).
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <openssl/evp.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "gtest/gtest.h"
#include "lib/libuk/uk.h"
#include "tests/sys/dev/nic_sim/lab.h"
#include "tests/sys/kern/ktls_test_util.h"

namespace {

using ktls_test::Suite;
using ktls_test::TlsKeys;

using uk::lab::addr;
using uk::lab::Node;
using uk::lab::pattern;
using uk::lab::sha256;

// Sum of a kernel's software crypto counters (ktls_ocf).
uint64_t ocf_ops(Node& n) {
  uint64_t total = 0;
  for (const char* c :
       {"tls10_cbc_encrypts", "tls11_cbc_decrypts", "tls11_cbc_encrypts",
        "tls12_gcm_decrypts", "tls12_gcm_encrypts", "tls12_chacha20_decrypts",
        "tls12_chacha20_encrypts", "tls13_gcm_decrypts", "tls13_gcm_encrypts",
        "tls13_chacha20_decrypts", "tls13_chacha20_encrypts"})
    total += n.stat(std::string("kern.ipc.tls.stats.ocf.") + c);
  return total;
}

size_t transfer_size() { return uk::lab::env_mib("UKTLS_TOE_TRANSFER_MB", 4); }

// A client kernel (10.0.0.1, no TOE) and a server kernel (10.0.0.2, toe on
// its NIC) over one wire.
struct Lab : uk::lab::Pair {
  Node& client = a;
  Node& server = b;
  uint16_t next_port = 9000;
  explicit Lab(const char* wire = "bw=10g delay=20us", bool client_toe = false,
               bool server_toe = true)
      : Pair(wire, {.a_name = "client",
                    .b_name = "server",
                    .a_opts = client_toe ? "toe" : "",
                    .b_opts = server_toe ? "toe" : ""}) {}
  // A connection client -> server: *c on the client, *s accepted on the
  // server.
  void connect(int* c, int* s) {
    uint16_t port = next_port++;
    int l = uk_socket(server.p, AF_INET, SOCK_STREAM, 0);
    ASSERT_GE(l, 0);
    sockaddr_in sin = addr("10.0.0.2", port);
    ASSERT_EQ(uk_bind(server.p, l, reinterpret_cast<sockaddr*>(&sin), sizeof sin), 0);
    ASSERT_EQ(uk_listen(server.p, l, 4), 0);
    *c = uk_socket(client.p, AF_INET, SOCK_STREAM, 0);
    ASSERT_GE(*c, 0);
    ASSERT_EQ(uk_connect(client.p, *c, reinterpret_cast<sockaddr*>(&sin), sizeof sin), 0)
        << strerror(errno);
    *s = uk_accept(server.p, l, nullptr, nullptr);
    ASSERT_GE(*s, 0);
    uk_close(server.p, l);
    timeval tv{60, 0};  // a stall fails the test instead of hanging it
    for (auto [p, fd] : {std::pair{client.p, *c}, std::pair{server.p, *s}}) {
      uk_setsockopt(p, fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
      uk_setsockopt(p, fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    }
  }
  std::string toe(const char* name) { return std::string("dev.nic_sim.0.toe.") + name; }
};

// Sends all of data (64 KiB writes), then shuts the write side (if shut).
std::thread sender(uk_proc* p, int fd, const std::vector<uint8_t>* data,
                   bool shut = true) {
  return std::thread([p, fd, data, shut] {
    size_t off = 0;
    while (off < data->size()) {
      ssize_t n = uk_send(p, fd, data->data() + off,
                          std::min<size_t>(64 * 1024, data->size() - off), 0);
      if (n <= 0) {
        ADD_FAILURE() << "send: " << strerror(errno) << " after " << off;
        break;
      }
      off += n;
    }
    if (shut) uk_shutdown(p, fd, SHUT_WR);
  });
}

// Both directions at once: a sends da on fa while b sends db on fb, and
// each side reads what the other sent with read(p, fd). Returns what a and
// b received.
template <class Read>
std::pair<std::vector<uint8_t>, std::vector<uint8_t>> exchange(
    uk_proc* a, int fa, const std::vector<uint8_t>& da, uk_proc* b, int fb,
    const std::vector<uint8_t>& db, Read read, bool shut = true) {
  std::thread t1 = sender(a, fa, &da, shut);
  std::thread t2 = sender(b, fb, &db, shut);
  std::vector<uint8_t> at_a, at_b;
  std::thread r([&] { at_b = read(b, fb); });
  at_a = read(a, fa);
  r.join();
  t1.join();
  t2.join();
  return {std::move(at_a), std::move(at_b)};
}

// Reads exactly n bytes of the plain stream (fewer on EOF or error).
std::vector<uint8_t> recv_n(uk_proc* p, int fd, size_t n) {
  std::vector<uint8_t> got(n);
  size_t off = 0;
  while (off < n) {
    ssize_t r = uk_recv(p, fd, got.data() + off, n - off, 0);
    if (r <= 0) {
      ADD_FAILURE() << "recv: " << (r < 0 ? strerror(errno) : "EOF") << " after " << off;
      break;
    }
    off += r;
  }
  got.resize(off);
  return got;
}

// Reads the plain stream to EOF.
std::vector<uint8_t> recv_all(uk_proc* p, int fd) {
  std::vector<uint8_t> got, buf(256 * 1024);
  for (;;) {
    ssize_t n = uk_recv(p, fd, buf.data(), buf.size(), 0);
    if (n < 0) ADD_FAILURE() << "recv: " << strerror(errno) << " after " << got.size();
    if (n <= 0) break;
    got.insert(got.end(), buf.begin(), buf.begin() + n);
  }
  return got;
}

// Reads decrypted records (one per recvmsg, TLS_GET_RECORD cmsg) to EOF.
std::vector<uint8_t> recv_records(uk_proc* p, int fd, uint8_t minor) {
  std::vector<uint8_t> got, buf(20000);
  for (;;) {
    ktls_test::TlsRecv rv = ktls_test::RecvTlsRecord(p, fd, buf.data(), buf.size());
    const ssize_t n = rv.n;
    if (n < 0) ADD_FAILURE() << "recvmsg: " << strerror(errno) << " after " << got.size();
    if (n <= 0) break;
    EXPECT_EQ(rv.msg_flags & (MSG_EOR | MSG_CTRUNC), MSG_EOR);
    if (!rv.has_tgr) {
      ADD_FAILURE() << "record without TLS_GET_RECORD";
      break;
    }
    const tls_get_record& tgr = rv.tgr;
    EXPECT_EQ(tgr.tls_type, TLS_RLTYPE_APP);
    EXPECT_EQ(tgr.tls_vminor, minor == TLS_MINOR_VER_THREE ? TLS_MINOR_VER_TWO : minor);
    EXPECT_EQ(ntohs(tgr.tls_length), n);
    got.insert(got.end(), buf.begin(), buf.begin() + n);
  }
  return got;
}

// Reads the raw TLS stream to EOF and decrypts every record with OpenSSL
// EVP; *records counts them.
std::vector<uint8_t> recv_evp(uk_proc* p, int fd, const Suite& s, const TlsKeys& k,
                              uint64_t seq, size_t* records) {
  std::vector<uint8_t> raw = recv_all(p, fd);
  std::vector<uint8_t> pt_all;
  std::vector<uint8_t> chain_iv = k.iv;
  size_t off = 0;
  *records = 0;
  while (off + 5 <= raw.size()) {
    size_t len = 5 + (raw[off + 3] << 8 | raw[off + 4]);
    if (off + len > raw.size()) break;
    std::vector<uint8_t> pt;
    uint8_t type = 0;
    std::string why;
    if (!ktls_test::DecryptRecord(s, k, seq++, raw.data() + off, len, &pt, &type, &why,
                                  s.minor == TLS_MINOR_VER_ZERO ? &chain_iv : nullptr)) {
      ADD_FAILURE() << s.name << ": record " << *records << ": " << why;
      break;
    }
    EXPECT_EQ(type, TLS_RLTYPE_APP);
    pt_all.insert(pt_all.end(), pt.begin(), pt.end());
    off += len;
    ++*records;
  }
  EXPECT_EQ(off, raw.size()) << s.name << ": trailing bytes";
  return pt_all;
}

int mode(uk_proc* p, int fd, int opt) {
  int m = -1;
  socklen_t len = sizeof m;
  EXPECT_EQ(uk_getsockopt(p, fd, IPPROTO_TCP, opt, &m, &len), 0);
  return m;
}

const char* family(const Suite& s) {
  switch (s.cipher) {
    case CRYPTO_AES_CBC:
      return "cbc";
    case CRYPTO_AES_NIST_GCM_16:
      return "gcm";
    default:
      return "chacha20";
  }
}

TEST(NicToe, PlainTcpExactBothWaysOnTheEngine) {
  Lab lab;
  const uint64_t isr0 = lab.server.stat("net.isr.stats.handled");
  int c, s;
  lab.connect(&c, &s);
  ASSERT_EQ(lab.server.istat(lab.toe("active")), 1);
  EXPECT_EQ(lab.server.stat(lab.toe("conns")), 1u);
  EXPECT_EQ(lab.client.stat(lab.toe("conns")), 0u);  // no toe there
  const size_t n = transfer_size();
  std::vector<uint8_t> up = pattern(n, 1), down = pattern(n, 2);
  // No FIN yet: the connection stays offloaded while the counters are read
  // (TIME_WAIT is the host's, so late duplicates would reach it).
  auto t0 = std::chrono::steady_clock::now();
  auto [got_down, got_up] = exchange(
      lab.client.p, c, up, lab.server.p, s, down,
      [n](uk_proc* p, int fd) { return recv_n(p, fd, n); }, false);
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  printf("toe plain: %zu bytes each way in %.3f s (%.0f Mb/s each way)\n", n, secs,
         n * 8 / secs / 1e6);
  EXPECT_EQ(lab.server.istat(lab.toe("active")), 1);
  EXPECT_EQ(got_up.size(), n);
  EXPECT_EQ(sha256(got_up), sha256(up));
  EXPECT_EQ(got_down.size(), n);
  EXPECT_EQ(sha256(got_down), sha256(down));
  // The engine carried the connection: its input, its output, its frames.
  EXPECT_GT(lab.server.stat(lab.toe("tcp_input")), n / 1460 / 2);
  EXPECT_GT(lab.server.stat(lab.toe("tx_frames")), n / 1460);
  EXPECT_GT(lab.server.stat(lab.toe("tx_bytes")), n);
  EXPECT_GT(lab.server.stat(lab.toe("rx_bytes")), n);
  EXPECT_EQ(lab.server.stat(lab.toe("rx_frames")),
            lab.server.stat("dev.nic_sim.0.toe_rx_frames"));
  // Only the SYN went through the host's netisr.
  EXPECT_LE(lab.server.stat("net.isr.stats.handled") - isr0, 3u)
      << "toe rx " << lab.server.stat(lab.toe("rx_frames")) << " nic in "
      << lab.server.stat("dev.nic_sim.0.ipackets") << " tcp rcvtotal "
      << lab.server.stat("net.inet.tcp.stats.rcvtotal") << " noport "
      << lab.server.stat("net.inet.tcp.stats.noport") << " ip total "
      << lab.server.stat("net.inet.ip.stats.total");
  // The close handshake, through the engine too.
  uk_shutdown(lab.client.p, c, SHUT_WR);
  uk_shutdown(lab.server.p, s, SHUT_WR);
  char b;
  EXPECT_EQ(uk_recv(lab.server.p, s, &b, 1, 0), 0);
  EXPECT_EQ(uk_recv(lab.client.p, c, &b, 1, 0), 0);
  uk_close(lab.client.p, c);
  uk_close(lab.server.p, s);
  // Closed or in TIME_WAIT (the host's): the engine lets go.
  for (int i = 0; i < 1000 && lab.server.istat(lab.toe("active")) != 0; i++)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  EXPECT_EQ(lab.server.istat(lab.toe("active")), 0);
}

TEST(NicToe, ActiveOpenIsOffloaded) {
  Lab lab("bw=1g delay=20us", /*client_toe=*/true, /*server_toe=*/false);
  int c, s;
  lab.connect(&c, &s);  // the client's NIC has the TOE this time
  EXPECT_EQ(lab.client.istat(lab.toe("active")), 1);
  EXPECT_EQ(lab.server.istat(lab.toe("active")), 0);
  ASSERT_EQ(uk_send(lab.client.p, c, "ping", 4, 0), 4);
  char buf[8] = {};
  ASSERT_EQ(uk_recv(lab.server.p, s, buf, sizeof buf, 0), 4);
  EXPECT_EQ(memcmp(buf, "ping", 4), 0);
  ASSERT_EQ(uk_send(lab.server.p, s, "pong", 4, 0), 4);
  ASSERT_EQ(uk_recv(lab.client.p, c, buf, sizeof buf, 0), 4);
  EXPECT_EQ(memcmp(buf, "pong", 4), 0);
  // The SYN left from the engine.
  EXPECT_GE(lab.client.stat(lab.toe("tx_frames")), 2u);
  uk_close(lab.client.p, c);
  uk_close(lab.server.p, s);
}

class NicToeTls : public ::testing::TestWithParam<Suite> {};

// TOE TX (server) -> a raw reader decrypting with EVP, and -> a SW RX
// reader; SW TX (client) -> TOE RX (server). Host KTLS on the server does
// no crypto at all.
TEST_P(NicToeTls, RecordsBothWaysAgainstSwAndEvp) {
  const Suite& su = GetParam();
  const bool tls10 = su.minor == TLS_MINOR_VER_ZERO;  // no RX for TLS 1.0
  const size_t n = 256 * 1024 + 777;
  Lab lab;
  const std::string fam = family(su);

  // 1. Server TOE TX; the client reads ciphertext and decrypts with EVP.
  {
    TlsKeys keys;
    ktls_test::BuildTlsEnable(su, 0x1000, &keys);
    int c, s;
    lab.connect(&c, &s);
    ASSERT_EQ(uk_setsockopt(lab.server.p, s, IPPROTO_TCP, TCP_TXTLS_ENABLE, &keys.en,
                            sizeof keys.en), 0) << strerror(errno);
    EXPECT_EQ(mode(lab.server.p, s, TCP_TXTLS_MODE), TCP_TLS_MODE_TOE);
    EXPECT_EQ(lab.server.stat("kern.ipc.tls.toe." + fam), 1u);
    EXPECT_EQ(lab.server.stat("kern.ipc.tls.sw." + fam), 0u);
    std::vector<uint8_t> data = pattern(n, 3);
    std::thread t = sender(lab.server.p, s, &data);
    size_t records = 0;
    std::vector<uint8_t> got = recv_evp(lab.client.p, c, su, keys, 0x1000, &records);
    t.join();
    EXPECT_EQ(got.size(), n);
    EXPECT_EQ(sha256(got), sha256(data));
    EXPECT_GE(records, n / 16384);
    EXPECT_EQ(lab.server.stat(lab.toe("tls_tx_records")), records);
    EXPECT_EQ(lab.server.stat(lab.toe("tls_tx_bytes")), n);
    uk_close(lab.client.p, c);
    uk_close(lab.server.p, s);
  }
  if (!tls10) {
    // 2. Server TOE TX -> client SW RX, while client SW TX -> server TOE RX.
    TlsKeys down, up;
    ktls_test::BuildTlsEnable(su, 7, &down);
    ktls_test::BuildTlsEnable(su, 0xfffffffffffffff0ULL, &up);
    int c, s;
    lab.connect(&c, &s);
    ASSERT_EQ(uk_setsockopt(lab.server.p, s, IPPROTO_TCP, TCP_TXTLS_ENABLE, &down.en,
                            sizeof down.en), 0) << strerror(errno);
    ASSERT_EQ(uk_setsockopt(lab.server.p, s, IPPROTO_TCP, TCP_RXTLS_ENABLE, &up.en,
                            sizeof up.en), 0) << strerror(errno);
    ASSERT_EQ(uk_setsockopt(lab.client.p, c, IPPROTO_TCP, TCP_RXTLS_ENABLE, &down.en,
                            sizeof down.en), 0) << strerror(errno);
    ASSERT_EQ(uk_setsockopt(lab.client.p, c, IPPROTO_TCP, TCP_TXTLS_ENABLE, &up.en,
                            sizeof up.en), 0) << strerror(errno);
    EXPECT_EQ(mode(lab.server.p, s, TCP_TXTLS_MODE), TCP_TLS_MODE_TOE);
    EXPECT_EQ(mode(lab.server.p, s, TCP_RXTLS_MODE), TCP_TLS_MODE_TOE);
    EXPECT_EQ(mode(lab.client.p, c, TCP_TXTLS_MODE), TCP_TLS_MODE_SW);
    EXPECT_EQ(mode(lab.client.p, c, TCP_RXTLS_MODE), TCP_TLS_MODE_SW);
    EXPECT_EQ(lab.server.stat("kern.ipc.tls.toe." + fam), 2u);
    EXPECT_EQ(lab.server.stat("kern.ipc.tls.sw." + fam), 0u);
    EXPECT_EQ(lab.client.stat("kern.ipc.tls.sw." + fam), 2u);
    const uint64_t tx0 = lab.server.stat(lab.toe("tls_tx_bytes"));
    std::vector<uint8_t> d = pattern(n, 4), u = pattern(n + 1, 5);
    auto [got_u, got_d] = exchange(
        lab.server.p, s, d, lab.client.p, c, u,
        [&su](uk_proc* p, int fd) { return recv_records(p, fd, su.minor); });
    EXPECT_EQ(got_d.size(), n);
    EXPECT_EQ(sha256(got_d), sha256(d));
    EXPECT_EQ(got_u.size(), n + 1);
    EXPECT_EQ(sha256(got_u), sha256(u));
    EXPECT_EQ(lab.server.stat(lab.toe("tls_tx_bytes")) - tx0, n);
    EXPECT_EQ(lab.server.stat(lab.toe("tls_rx_bytes")), n + 1);
    EXPECT_EQ(lab.server.stat(lab.toe("tls_rx_errors")), 0u);
    // The client's host workers did the peer's crypto.
    EXPECT_GT(ocf_ops(lab.client), 2 * n / 16384);
    uk_close(lab.client.p, c);
    uk_close(lab.server.p, s);
  }
  // The server's host KTLS did no crypto: the engine did all of it.
  EXPECT_EQ(ocf_ops(lab.server), 0u);
  EXPECT_EQ(lab.server.stat("kern.ipc.tls.stats.failed_crypto"), 0u);
}

std::vector<Suite> ToeSuites() {
  std::vector<Suite> v = ktls_test::GcmSuites();
  for (const Suite& s : ktls_test::CbcSuites()) v.push_back(s);
  return v;
}

INSTANTIATE_TEST_SUITE_P(Suites, NicToeTls, ::testing::ValuesIn(ToeSuites()),
                         [](const ::testing::TestParamInfo<Suite>& i) {
                           return std::string(i.param.name);
                         });

// The T6 has no ChaCha20-Poly1305: the session stays in software (host
// workers encrypt), riding the offloaded TCP.
TEST(NicToe, ChachaFallsBackToSwOverOffloadedTcp) {
  Lab lab;
  Suite su = ktls_test::ChachaSuites()[1];
  TlsKeys keys;
  ktls_test::BuildTlsEnable(su, 1, &keys);
  int c, s;
  lab.connect(&c, &s);
  ASSERT_EQ(uk_setsockopt(lab.server.p, s, IPPROTO_TCP, TCP_TXTLS_ENABLE, &keys.en,
                          sizeof keys.en), 0);
  EXPECT_EQ(mode(lab.server.p, s, TCP_TXTLS_MODE), TCP_TLS_MODE_SW);
  EXPECT_EQ(lab.server.stat("kern.ipc.tls.sw.chacha20"), 1u);
  EXPECT_EQ(lab.server.stat("kern.ipc.tls.toe.chacha20"), 0u);
  std::vector<uint8_t> data = pattern(100000, 6);
  std::thread t = sender(lab.server.p, s, &data);
  size_t records = 0;
  std::vector<uint8_t> got = recv_evp(lab.client.p, c, su, keys, 1, &records);
  t.join();
  EXPECT_EQ(sha256(got), sha256(data));
  EXPECT_GT(ocf_ops(lab.server), 0u);
  EXPECT_EQ(lab.server.stat(lab.toe("tls_tx_records")), 0u);
  EXPECT_GT(lab.server.stat(lab.toe("tcp_output")), 0u);
  uk_close(lab.client.p, c);
  uk_close(lab.server.p, s);
}

// sendfile on a TOE TX session: records framed over the file's pages; the
// engine encrypts them into new pages, never into the file.
TEST(NicToe, SendfileRecordsEncryptedByTheEngineLeaveTheFileIntact) {
  Lab lab;
  for (const Suite& su : {ktls_test::GcmSuites()[0], ktls_test::CbcSuites()[4]}) {
    int fd = uk_open(lab.server.p, "/f", O_RDWR | O_CREAT | O_TRUNC, 0644);
    ASSERT_GE(fd, 0) << strerror(errno);
    const size_t fsize = 200000;
    std::vector<uint8_t> content = pattern(fsize, 12);
    ASSERT_EQ(uk_pwrite(lab.server.p, fd, content.data(), fsize, 0),
              static_cast<ssize_t>(fsize));
    TlsKeys keys;
    ktls_test::BuildTlsEnable(su, 99, &keys);
    int c, s;
    lab.connect(&c, &s);
    ASSERT_EQ(uk_setsockopt(lab.server.p, s, IPPROTO_TCP, TCP_TXTLS_ENABLE, &keys.en,
                            sizeof keys.en), 0);
    ASSERT_EQ(mode(lab.server.p, s, TCP_TXTLS_MODE), TCP_TLS_MODE_TOE);
    const off_t off = 1;
    const size_t n = fsize - 1;
    off_t sbytes = -1;
    int rc = -2;
    std::thread t([&] {
      rc = uk_sendfile(lab.server.p, fd, s, off, n, nullptr, &sbytes, 0);
      uk_shutdown(lab.server.p, s, SHUT_WR);
    });
    size_t records = 0;
    std::vector<uint8_t> got = recv_evp(lab.client.p, c, su, keys, 99, &records);
    t.join();
    EXPECT_EQ(rc, 0) << strerror(errno);
    EXPECT_EQ(sbytes, static_cast<off_t>(n));
    EXPECT_TRUE(got == std::vector<uint8_t>(content.begin() + off, content.end()))
        << su.name << ": " << got.size() << " bytes";
    std::vector<uint8_t> after(fsize);
    ASSERT_EQ(uk_pread(lab.server.p, fd, after.data(), fsize, 0), static_cast<ssize_t>(fsize));
    EXPECT_TRUE(after == content) << su.name << ": the file changed";
    uk_close(lab.client.p, c);
    uk_close(lab.server.p, s);
    uk_close(lab.server.p, fd);
  }
  EXPECT_GT(lab.server.stat(lab.toe("tls_tx_records")), 2 * 199999u / 16384);
  EXPECT_EQ(ocf_ops(lab.server), 0u);
}

// TOE RX errors as ktls(4): a record failing authentication is EBADMSG
// after the records before it, and the records after it still arrive.
TEST(NicToe, RxBadRecordIsEbadmsgAndTheStreamContinues) {
  Lab lab;
  Suite su = ktls_test::GcmSuites()[3];  // AES-256-GCM TLS 1.3
  TlsKeys keys;
  ktls_test::BuildTlsEnable(su, 5, &keys);
  int c, s;
  lab.connect(&c, &s);
  ASSERT_EQ(uk_setsockopt(lab.server.p, s, IPPROTO_TCP, TCP_RXTLS_ENABLE, &keys.en,
                          sizeof keys.en), 0);
  ASSERT_EQ(mode(lab.server.p, s, TCP_RXTLS_MODE), TCP_TLS_MODE_TOE);
  std::vector<uint8_t> wire;
  std::vector<std::vector<uint8_t>> pts;
  for (int i = 0; i < 3; i++) {
    pts.push_back(pattern(1000 + i, 20 + i));
    std::vector<uint8_t> rec = ktls_test::EncryptRecord(
        su, keys, 5 + i, TLS_RLTYPE_APP, pts.back().data(), pts.back().size());
    if (i == 1) rec[rec.size() - 3] ^= 1;  // inside the tag
    wire.insert(wire.end(), rec.begin(), rec.end());
  }
  ASSERT_EQ(uk_send(lab.client.p, c, wire.data(), wire.size(), 0),
            static_cast<ssize_t>(wire.size()));
  std::vector<uint8_t> buf(20000);
  auto recv1 = [&] {
    alignas(cmsghdr) char cbuf[CMSG_SPACE(sizeof(tls_get_record))];
    iovec iov{buf.data(), buf.size()};
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = cbuf;
    msg.msg_controllen = sizeof cbuf;
    return uk_recvmsg(lab.server.p, s, &msg, 0);
  };
  ASSERT_EQ(recv1(), 1000);
  EXPECT_TRUE(std::equal(pts[0].begin(), pts[0].end(), buf.begin()));
  // As on FreeBSD, queued data is returned before a pending error, so the
  // third record may come before or after the EBADMSG.
  int errors = 0, records = 0;
  for (int i = 0; i < 2; i++) {
    ssize_t r = recv1();
    if (r < 0) {
      EXPECT_EQ(errno, EBADMSG);
      errors++;
    } else {
      ASSERT_EQ(r, 1002);
      EXPECT_TRUE(std::equal(pts[2].begin(), pts[2].end(), buf.begin()));
      records++;
    }
  }
  EXPECT_EQ(errors, 1);
  EXPECT_EQ(records, 1);
  EXPECT_EQ(lab.server.stat(lab.toe("tls_rx_records")), 2u);
  EXPECT_EQ(lab.server.stat(lab.toe("tls_rx_errors")), 1u);
  EXPECT_EQ(lab.server.stat("kern.ipc.tls.stats.failed_crypto"), 1u);
  EXPECT_EQ(ocf_ops(lab.server), 0u);
  uk_close(lab.client.p, c);
  uk_close(lab.server.p, s);
}

// 1% loss and 1% reordering: the engine's TCP retransmits and reassembles,
// its TLS stays in order; plain and TLS data exact both ways.
TEST(NicToe, LossAndReorderingDataExact) {
  Lab lab("bw=1g delay=200us loss=0.01 reorder=0.01 seed=11");
  const size_t n = transfer_size();
  {
    int c, s;
    lab.connect(&c, &s);
    std::vector<uint8_t> up = pattern(n, 7), down = pattern(n, 8);
    auto [got_down, got_up] = exchange(lab.client.p, c, up, lab.server.p, s, down, recv_all);
    EXPECT_EQ(sha256(got_up), sha256(up)) << got_up.size() << "/" << n;
    EXPECT_EQ(sha256(got_down), sha256(down)) << got_down.size() << "/" << n;
    uk_close(lab.client.p, c);
    uk_close(lab.server.p, s);
  }
  {
    Suite su = ktls_test::GcmSuites()[2];  // AES-128-GCM TLS 1.3
    TlsKeys down, up;
    ktls_test::BuildTlsEnable(su, 0, &down);
    ktls_test::BuildTlsEnable(su, 0, &up);
    int c, s;
    lab.connect(&c, &s);
    ASSERT_EQ(uk_setsockopt(lab.server.p, s, IPPROTO_TCP, TCP_TXTLS_ENABLE, &down.en,
                            sizeof down.en), 0);
    ASSERT_EQ(uk_setsockopt(lab.server.p, s, IPPROTO_TCP, TCP_RXTLS_ENABLE, &up.en,
                            sizeof up.en), 0);
    ASSERT_EQ(uk_setsockopt(lab.client.p, c, IPPROTO_TCP, TCP_RXTLS_ENABLE, &down.en,
                            sizeof down.en), 0);
    ASSERT_EQ(uk_setsockopt(lab.client.p, c, IPPROTO_TCP, TCP_TXTLS_ENABLE, &up.en,
                            sizeof up.en), 0);
    std::vector<uint8_t> d = pattern(n, 9), u = pattern(n, 10);
    auto [got_u, got_d] = exchange(
        lab.server.p, s, d, lab.client.p, c, u,
        [&su](uk_proc* p, int fd) { return recv_records(p, fd, su.minor); });
    EXPECT_EQ(sha256(got_d), sha256(d)) << got_d.size() << "/" << n;
    EXPECT_EQ(sha256(got_u), sha256(u)) << got_u.size() << "/" << n;
    EXPECT_EQ(lab.server.stat(lab.toe("tls_rx_bytes")), n);
    uk_close(lab.client.p, c);
    uk_close(lab.server.p, s);
  }
  // The wire did lose frames and the engine's TCP made up for them.
  EXPECT_GT(lab.server.stat("net.inet.tcp.stats.sndrexmitpack"), 0u);
  EXPECT_GT(lab.server.stat("net.inet.tcp.stats.rcvoopack"), 0u);
  EXPECT_EQ(ocf_ops(lab.server), 0u);
  EXPECT_GT(lab.server.stat(lab.toe("timers")) + lab.server.stat(lab.toe("tcp_input")), 0u);
  printf("toe lossy: %zu bytes x4; server engine: tcp_input %llu tcp_output %llu timers %llu "
         "tls_tx_records %llu tls_rx_records %llu; tcp rexmit %llu\n",
         n, (unsigned long long)lab.server.stat(lab.toe("tcp_input")),
         (unsigned long long)lab.server.stat(lab.toe("tcp_output")),
         (unsigned long long)lab.server.stat(lab.toe("timers")),
         (unsigned long long)lab.server.stat(lab.toe("tls_tx_records")),
         (unsigned long long)lab.server.stat(lab.toe("tls_rx_records")),
         (unsigned long long)lab.server.stat("net.inet.tcp.stats.sndrexmitpack"));
}

}  // namespace
