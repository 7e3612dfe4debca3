// TCP over lo0 through the system-call boundary (lib/libuk), plus IPv4/TCP
// checksum checks against hand-computed packets.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <openssl/evp.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <string>
#include <random>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "lib/libuk/uk.h"
#include "sys/kern/kernel.h"
#include "sys/net/if_var.h"
#include "sys/netinet/ip.h"
#include "sys/netinet/ip_var.h"
#include "sys/kern/kern_proc.h"
#include "sys/netinet/in_pcb.h"
#include "sys/netinet/tcp_var.h"
#include "sys/netinet/tcp.h"

namespace {

sockaddr_in lo(uint16_t port) {
  sockaddr_in sin{};
  sin.sin_family = AF_INET;
  sin.sin_port = htons(port);
  sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  return sin;
}

class Tcp : public ::testing::Test {
 protected:
  void SetUp() override {
    uk_boot_config cfg{};
    cfg.ncpus = 2;
    cfg.modules = "";
    k_ = uk_boot(&cfg);
    ASSERT_NE(k_, nullptr);
    p_ = uk_proc_create(k_, "tcp");
  }
  void TearDown() override { EXPECT_EQ(uk_halt(k_), 0); }

  // A listener on an ephemeral port of 127.0.0.1; returns its port.
  int Listen(int backlog, uint16_t* port) {
    int s = uk_socket(p_, AF_INET, SOCK_STREAM, 0);
    EXPECT_GE(s, 0) << strerror(errno);
    sockaddr_in sin = lo(0);
    EXPECT_EQ(uk_bind(p_, s, reinterpret_cast<sockaddr*>(&sin), sizeof sin), 0);
    EXPECT_EQ(uk_listen(p_, s, backlog), 0);
    socklen_t len = sizeof sin;
    EXPECT_EQ(uk_getsockname(p_, s, reinterpret_cast<sockaddr*>(&sin), &len), 0);
    *port = ntohs(sin.sin_port);
    return s;
  }

  void Pair(int* c, int* a) {
    uint16_t port;
    int l = Listen(8, &port);
    *c = uk_socket(p_, AF_INET, SOCK_STREAM, 0);
    sockaddr_in sin = lo(port);
    ASSERT_EQ(uk_connect(p_, *c, reinterpret_cast<sockaddr*>(&sin), sizeof sin), 0);
    *a = uk_accept(p_, l, nullptr, nullptr);
    ASSERT_GE(*a, 0);
  }

  uint64_t Stat(const char* name) {
    uint64_t v = 0;
    size_t len = sizeof v;
    EXPECT_EQ(uk_sysctlbyname(p_, name, &v, &len, nullptr, 0), 0) << name;
    return v;
  }

  uk_kernel* k_ = nullptr;
  uk_proc* p_ = nullptr;
};

TEST_F(Tcp, ConnectAcceptAndEchoOverLoopback) {
  int c, a;
  Pair(&c, &a);
  sockaddr_in peer{};
  socklen_t len = sizeof peer;
  ASSERT_EQ(uk_getpeername(p_, a, reinterpret_cast<sockaddr*>(&peer), &len), 0);
  EXPECT_EQ(peer.sin_addr.s_addr, htonl(INADDR_LOOPBACK));
  const char msg[] = "hello, kernel";
  EXPECT_EQ(uk_send(p_, c, msg, sizeof msg, 0), static_cast<ssize_t>(sizeof msg));
  char buf[64] = {};
  EXPECT_EQ(uk_recv(p_, a, buf, sizeof buf, MSG_WAITALL & 0), static_cast<ssize_t>(sizeof msg));
  EXPECT_STREQ(buf, msg);
  EXPECT_EQ(uk_send(p_, a, "pong", 4, 0), 4);
  EXPECT_EQ(uk_recv(p_, c, buf, 4, MSG_WAITALL), 4);
  EXPECT_EQ(memcmp(buf, "pong", 4), 0);
  EXPECT_GT(Stat("net.inet.tcp.stats.sndpack"), 0u);
  EXPECT_GT(Stat("net.inet.tcp.stats.rcvbyte"), 0u);
}

TEST_F(Tcp, ConnectToClosedPortIsEconnrefused) {
  int c = uk_socket(p_, AF_INET, SOCK_STREAM, 0);
  sockaddr_in sin = lo(9);
  EXPECT_EQ(uk_connect(p_, c, reinterpret_cast<sockaddr*>(&sin), sizeof sin), -1);
  EXPECT_EQ(errno, ECONNREFUSED);
}

TEST_F(Tcp, NonBlockingConnectReportsEinprogressThenConnects) {
  uint16_t port;
  int l = Listen(4, &port);
  int c = uk_socket(p_, AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
  sockaddr_in sin = lo(port);
  int r = uk_connect(p_, c, reinterpret_cast<sockaddr*>(&sin), sizeof sin);
  if (r == -1) {
    EXPECT_EQ(errno, EINPROGRESS);
  }
  // accept() blocks until the handshake completes.
  int a = uk_accept(p_, l, nullptr, nullptr);
  ASSERT_GE(a, 0);
  int err = -1;
  socklen_t len = sizeof err;
  ASSERT_EQ(uk_getsockopt(p_, c, SOL_SOCKET, SO_ERROR, &err, &len), 0);
  EXPECT_EQ(err, 0);
  EXPECT_EQ(uk_connect(p_, c, reinterpret_cast<sockaddr*>(&sin), sizeof sin), -1);
  EXPECT_EQ(errno, EISCONN);
  char b;
  EXPECT_EQ(uk_recv(p_, c, &b, 1, 0), -1);
  EXPECT_EQ(errno, EAGAIN);
}

TEST_F(Tcp, SocketErrnos) {
  EXPECT_EQ(uk_socket(p_, AF_INET6, SOCK_STREAM, 0), -1);
  EXPECT_EQ(errno, EAFNOSUPPORT);
  EXPECT_EQ(uk_socket(p_, AF_INET, SOCK_DGRAM, 0), -1);
  EXPECT_EQ(errno, EPROTOTYPE);
  EXPECT_EQ(uk_socket(p_, AF_INET, SOCK_STREAM, IPPROTO_UDP), -1);
  EXPECT_EQ(errno, EPROTONOSUPPORT);
  sockaddr_in sin = lo(0);
  EXPECT_EQ(uk_bind(p_, 999, reinterpret_cast<sockaddr*>(&sin), sizeof sin), -1);
  EXPECT_EQ(errno, EBADF);
  int s = uk_socket(p_, AF_INET, SOCK_STREAM, 0);
  EXPECT_EQ(uk_bind(p_, s, nullptr, sizeof sin), -1);
  EXPECT_EQ(errno, EFAULT);
  EXPECT_EQ(uk_bind(p_, s, reinterpret_cast<sockaddr*>(&sin), 4), -1);
  EXPECT_EQ(errno, EINVAL);
  sockaddr_in far = sin;
  far.sin_addr.s_addr = inet_addr("10.1.2.3");
  EXPECT_EQ(uk_bind(p_, s, reinterpret_cast<sockaddr*>(&far), sizeof far), -1);
  EXPECT_EQ(errno, EADDRNOTAVAIL);
  EXPECT_EQ(uk_send(p_, s, "x", 1, 0), -1);
  EXPECT_EQ(errno, ENOTCONN);
  socklen_t len = sizeof sin;
  EXPECT_EQ(uk_getpeername(p_, s, reinterpret_cast<sockaddr*>(&sin), &len), -1);
  EXPECT_EQ(errno, ENOTCONN);
  int v = 1;
  EXPECT_EQ(uk_setsockopt(p_, s, SOL_SOCKET, 12345, &v, sizeof v), -1);
  EXPECT_EQ(errno, ENOPROTOOPT);
  EXPECT_EQ(uk_setsockopt(p_, s, SOL_SOCKET, SO_REUSEADDR, nullptr, 4), -1);
  EXPECT_EQ(errno, EFAULT);
  EXPECT_EQ(uk_setsockopt(p_, s, SOL_SOCKET, SO_REUSEADDR, &v, 2), -1);
  EXPECT_EQ(errno, EINVAL);
  EXPECT_EQ(uk_shutdown(p_, s, SHUT_WR), -1);
  EXPECT_EQ(errno, ENOTCONN);

  uint16_t port;
  int l = Listen(4, &port);
  (void)l;
  int t = uk_socket(p_, AF_INET, SOCK_STREAM, 0);
  sockaddr_in same = lo(port);
  EXPECT_EQ(uk_bind(p_, t, reinterpret_cast<sockaddr*>(&same), sizeof same), -1);
  EXPECT_EQ(errno, EADDRINUSE);

  int c, a;
  Pair(&c, &a);
  EXPECT_EQ(uk_listen(p_, c, 1), -1);
  EXPECT_EQ(errno, EINVAL);
  EXPECT_EQ(uk_send(p_, c, "x", 1, MSG_EOR), -1);
  EXPECT_EQ(errno, EINVAL);
  // TCP carries no control data.
  alignas(cmsghdr) char cbuf[CMSG_SPACE(sizeof(int))] = {};
  cmsghdr* cm = reinterpret_cast<cmsghdr*>(cbuf);
  cm->cmsg_len = CMSG_LEN(sizeof(int));
  cm->cmsg_level = SOL_SOCKET;
  cm->cmsg_type = SCM_RIGHTS;
  iovec iov{const_cast<char*>("x"), 1};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = cbuf;
  msg.msg_controllen = sizeof cbuf;
  EXPECT_EQ(uk_sendmsg(p_, c, &msg, 0), -1);
  EXPECT_EQ(errno, EINVAL);
  sockaddr_in bc = lo(80);
  bc.sin_addr.s_addr = INADDR_BROADCAST;
  int u = uk_socket(p_, AF_INET, SOCK_STREAM, 0);
  EXPECT_EQ(uk_sendto(p_, u, "x", 1, 0, reinterpret_cast<sockaddr*>(&bc), sizeof bc), -1);
  EXPECT_EQ(errno, EACCES);
}

TEST_F(Tcp, ImpliedConnectBySendto) {
  uint16_t port;
  int l = Listen(4, &port);
  int c = uk_socket(p_, AF_INET, SOCK_STREAM, 0);
  sockaddr_in sin = lo(port);
  EXPECT_EQ(uk_sendto(p_, c, "abc", 3, 0, reinterpret_cast<sockaddr*>(&sin), sizeof sin), 3);
  int a = uk_accept(p_, l, nullptr, nullptr);
  ASSERT_GE(a, 0);
  char buf[3];
  EXPECT_EQ(uk_recv(p_, a, buf, 3, MSG_WAITALL), 3);
  EXPECT_EQ(memcmp(buf, "abc", 3), 0);
}

TEST_F(Tcp, PeekWaitallAndShutdown) {
  int c, a;
  Pair(&c, &a);
  EXPECT_EQ(uk_send(p_, c, "abcdef", 6, 0), 6);
  char buf[8] = {};
  EXPECT_EQ(uk_recv(p_, a, buf, 3, MSG_PEEK | MSG_WAITALL), 3);
  EXPECT_EQ(memcmp(buf, "abc", 3), 0);
  EXPECT_EQ(uk_recv(p_, a, buf, 6, MSG_WAITALL), 6);
  EXPECT_EQ(memcmp(buf, "abcdef", 6), 0);
  // WAITALL across two sends from another thread.
  std::thread t([&] {
    uk_send(p_, c, "12", 2, 0);
    uk_send(p_, c, "34", 2, 0);
  });
  EXPECT_EQ(uk_recv(p_, a, buf, 4, MSG_WAITALL), 4);
  t.join();
  EXPECT_EQ(memcmp(buf, "1234", 4), 0);
  ASSERT_EQ(uk_shutdown(p_, c, SHUT_WR), 0);
  EXPECT_EQ(uk_recv(p_, a, buf, 1, 0), 0);  // EOF
  EXPECT_EQ(uk_send(p_, c, "x", 1, MSG_NOSIGNAL), -1);
  EXPECT_EQ(errno, EPIPE);
  // The other direction still works.
  EXPECT_EQ(uk_send(p_, a, "z", 1, 0), 1);
  EXPECT_EQ(uk_recv(p_, c, buf, 1, 0), 1);
  EXPECT_EQ(uk_shutdown(p_, c, 7), -1);
  EXPECT_EQ(errno, EINVAL);
}

TEST_F(Tcp, SocketOptions) {
  int s = uk_socket(p_, AF_INET, SOCK_STREAM, 0);
  int v = 0;
  socklen_t len = sizeof v;
  ASSERT_EQ(uk_getsockopt(p_, s, SOL_SOCKET, SO_TYPE, &v, &len), 0);
  EXPECT_EQ(v, SOCK_STREAM);
  v = 1;
  ASSERT_EQ(uk_setsockopt(p_, s, IPPROTO_TCP, TCP_NODELAY, &v, sizeof v), 0);
  v = 0;
  ASSERT_EQ(uk_getsockopt(p_, s, IPPROTO_TCP, TCP_NODELAY, &v, &len), 0);
  EXPECT_EQ(v, 1);
  // Unconnected, t_maxseg is net.inet.tcp.mssdflt (536): larger is EINVAL.
  v = 1000;
  EXPECT_EQ(uk_setsockopt(p_, s, IPPROTO_TCP, TCP_MAXSEG, &v, sizeof v), -1);
  EXPECT_EQ(errno, EINVAL);
  v = 500;
  ASSERT_EQ(uk_setsockopt(p_, s, IPPROTO_TCP, TCP_MAXSEG, &v, sizeof v), 0);
  ASSERT_EQ(uk_getsockopt(p_, s, IPPROTO_TCP, TCP_MAXSEG, &v, &len), 0);
  EXPECT_EQ(v, 500);
  v = 128 * 1024;
  ASSERT_EQ(uk_setsockopt(p_, s, SOL_SOCKET, SO_RCVBUF, &v, sizeof v), 0);
  ASSERT_EQ(uk_getsockopt(p_, s, SOL_SOCKET, SO_RCVBUF, &v, &len), 0);
  EXPECT_EQ(v, 128 * 1024);
  v = 1 << 30;
  EXPECT_EQ(uk_setsockopt(p_, s, SOL_SOCKET, SO_SNDBUF, &v, sizeof v), -1);
  EXPECT_EQ(errno, ENOBUFS);
  timeval tv{0, 2000000};
  EXPECT_EQ(uk_setsockopt(p_, s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv), -1);
  EXPECT_EQ(errno, EDOM);
  linger lg{1, 5};
  ASSERT_EQ(uk_setsockopt(p_, s, SOL_SOCKET, SO_LINGER, &lg, sizeof lg), 0);
  linger out{};
  len = sizeof out;
  ASSERT_EQ(uk_getsockopt(p_, s, SOL_SOCKET, SO_LINGER, &out, &len), 0);
  EXPECT_EQ(out.l_onoff, 1);
  EXPECT_EQ(out.l_linger, 5);
}

// soreserve(): a default buffer size kern.ipc.maxsockbuf cannot hold fails
// socket(2) with ENOBUFS instead of making a socket with no buffer (whose
// transfers would stall); sockets accepted from a listener made before keep
// the listener's sizes and still work.
TEST_F(Tcp, SendspaceBeyondMaxsockbufFailsTheSocket) {
  uint16_t port;
  int l = Listen(8, &port);
  int big = 4 << 20;  // over the 2 MiB kern.ipc.maxsockbuf
  ASSERT_EQ(uk_sysctlbyname(p_, "net.inet.tcp.sendspace", nullptr, nullptr, &big, sizeof big), 0);
  EXPECT_EQ(uk_socket(p_, AF_INET, SOCK_STREAM, 0), -1);
  EXPECT_EQ(errno, ENOBUFS);
  int ok = 32768;
  ASSERT_EQ(uk_sysctlbyname(p_, "net.inet.tcp.sendspace", nullptr, nullptr, &ok, sizeof ok), 0);
  ASSERT_EQ(uk_sysctlbyname(p_, "net.inet.tcp.recvspace", nullptr, nullptr, &big, sizeof big), 0);
  EXPECT_EQ(uk_socket(p_, AF_INET, SOCK_STREAM, 0), -1);
  EXPECT_EQ(errno, ENOBUFS);
  int zero = 0;
  ASSERT_EQ(uk_sysctlbyname(p_, "net.inet.tcp.recvspace", nullptr, nullptr, &zero, sizeof zero), 0);
  EXPECT_EQ(uk_socket(p_, AF_INET, SOCK_STREAM, 0), -1);
  EXPECT_EQ(errno, ENOBUFS);
  // A connecting socket needs the defaults back; the accepted one inherits
  // the listener's.
  ok = 65536;
  ASSERT_EQ(uk_sysctlbyname(p_, "net.inet.tcp.recvspace", nullptr, nullptr, &ok, sizeof ok), 0);
  int c = uk_socket(p_, AF_INET, SOCK_STREAM, 0);
  ASSERT_GE(c, 0);
  ASSERT_EQ(uk_sysctlbyname(p_, "net.inet.tcp.recvspace", nullptr, nullptr, &big, sizeof big), 0);
  sockaddr_in sin = lo(port);
  ASSERT_EQ(uk_connect(p_, c, reinterpret_cast<sockaddr*>(&sin), sizeof sin), 0);
  int a = uk_accept(p_, l, nullptr, nullptr);
  ASSERT_GE(a, 0);
  int v = 0;
  socklen_t len = sizeof v;
  ASSERT_EQ(uk_getsockopt(p_, a, SOL_SOCKET, SO_RCVBUF, &v, &len), 0);
  EXPECT_GT(v, 0);
  EXPECT_LE(v, 2 << 20);
  ASSERT_EQ(uk_send(p_, c, "ping", 4, 0), 4);
  char buf[4];
  ASSERT_EQ(uk_recv(p_, a, buf, 4, MSG_WAITALL), 4);
  EXPECT_EQ(memcmp(buf, "ping", 4), 0);
  uk_close(p_, a);
  uk_close(p_, c);
  uk_close(p_, l);
}

TEST_F(Tcp, ReceiveTimeoutGivesEagain) {
  int c, a;
  Pair(&c, &a);
  timeval tv{0, 50000};
  ASSERT_EQ(uk_setsockopt(p_, a, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv), 0);
  char b;
  EXPECT_EQ(uk_recv(p_, a, &b, 1, 0), -1);
  EXPECT_EQ(errno, EAGAIN);
}

TEST_F(Tcp, ConnectTimesOutWhenListenQueueIsFull) {
  int ms = 300;
  ASSERT_EQ(uk_sysctlbyname(p_, "net.inet.tcp.keepinit", nullptr, nullptr, &ms, sizeof ms), 0);
  ms = 100;
  ASSERT_EQ(uk_sysctlbyname(p_, "net.inet.tcp.rexmit_initial", nullptr, nullptr, &ms, sizeof ms), 0);
  uint16_t port;
  Listen(0, &port);  // qlimit 0: one connection fits (3/2 rule), then drops
  sockaddr_in sin = lo(port);
  int c1 = uk_socket(p_, AF_INET, SOCK_STREAM, 0);
  ASSERT_EQ(uk_connect(p_, c1, reinterpret_cast<sockaddr*>(&sin), sizeof sin), 0);
  uint64_t drops = Stat("net.inet.tcp.stats.listendrop");
  int c2 = uk_socket(p_, AF_INET, SOCK_STREAM, 0);
  EXPECT_EQ(uk_connect(p_, c2, reinterpret_cast<sockaddr*>(&sin), sizeof sin), -1);
  EXPECT_EQ(errno, ETIMEDOUT);
  EXPECT_GT(Stat("net.inet.tcp.stats.listendrop"), drops);
}

TEST_F(Tcp, BulkTransferWithRandomSizesKeepsEveryByte) {
  // 1 GiB; ThreadSanitizer runs it ~25x slower, so it moves 256 MiB there
  // unless UKTLS_TCP_BULK_BYTES says otherwise.
#ifdef UKTLS_TSAN
  uint64_t total = 256ull << 20;
#else
  uint64_t total = 1ull << 30;
#endif
  if (const char* e = getenv("UKTLS_TCP_BULK_BYTES")) total = strtoull(e, nullptr, 0);
  int c, a;
  Pair(&c, &a);
  EVP_MD_CTX* tx = EVP_MD_CTX_new();
  EVP_MD_CTX* rx = EVP_MD_CTX_new();
  EVP_DigestInit_ex(tx, EVP_sha256(), nullptr);
  EVP_DigestInit_ex(rx, EVP_sha256(), nullptr);
  std::thread sender([&] {
    std::mt19937_64 rng(1);
    std::vector<uint8_t> buf(256 * 1024);
    for (auto& b : buf) b = static_cast<uint8_t>(rng());
    uint64_t sent = 0, off = 0;
    while (sent < total) {
      size_t n = 1 + rng() % buf.size();
      n = std::min<uint64_t>(n, total - sent);
      if (off + n > buf.size()) off = 0;
      ssize_t w = uk_send(p_, c, buf.data() + off, n, 0);
      ASSERT_GT(w, 0) << errno;
      EVP_DigestUpdate(tx, buf.data() + off, w);
      sent += w;
      off = (off + w * 7) % buf.size();
    }
    uk_shutdown(p_, c, SHUT_WR);
  });
  std::mt19937_64 rng(2);
  std::vector<uint8_t> buf(300 * 1024);
  uint64_t got = 0;
  for (;;) {
    size_t n = 1 + rng() % buf.size();
    ssize_t r = uk_recv(p_, a, buf.data(), n, 0);
    ASSERT_GE(r, 0) << errno;
    if (r == 0) break;
    EVP_DigestUpdate(rx, buf.data(), r);
    got += r;
  }
  sender.join();
  EXPECT_EQ(got, total);
  unsigned char h1[32], h2[32];
  EVP_DigestFinal_ex(tx, h1, nullptr);
  EVP_DigestFinal_ex(rx, h2, nullptr);
  EVP_MD_CTX_free(tx);
  EVP_MD_CTX_free(rx);
  EXPECT_EQ(memcmp(h1, h2, 32), 0);
}

// RFC 1071 example header (checksum 0xb861), computed by hand.
TEST(Checksum, IpHeaderMatchesHandComputedValue) {
  uint8_t h[20] = {0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11,
                   0x00, 0x00, 0xc0, 0xa8, 0x00, 0x01, 0xc0, 0xa8, 0x00, 0xc7};
  uint16_t sum = uk::in_cksum_buf(h, sizeof h);
  EXPECT_EQ(ntohs(sum), 0xb861);
  memcpy(h + 10, &sum, 2);
  EXPECT_EQ(uk::in_cksum_buf(h, sizeof h), 0);
}

// A TCP SYN 127.0.0.1:1234 -> 127.0.0.1:80, seq 1, window 65535, no options:
// pseudo header 7f00 0001 7f00 0001 0006 0014, header 04d2 0050 0000 0001
// 0000 0000 5002 ffff 0000 0000. Sum = 0x7f00+0x0001+0x7f00+0x0001+0x0006+
// 0x0014+0x04d2+0x0050+0x0001+0x5002+0xffff = 0x25340 -> 0x5342 -> ~ = 0xacbd.
TEST(Checksum, TcpSegmentMatchesHandComputedValue) {
  uint8_t th[20] = {0x04, 0xd2, 0x00, 0x50, 0, 0, 0, 1, 0, 0,
                    0,    0,    0x50, 0x02, 0xff, 0xff, 0, 0, 0, 0};
  uint32_t a = htonl(INADDR_LOOPBACK);
  uint32_t s = uk::in_pseudo(a, a, htons(20 + IPPROTO_TCP));
  s = uk::in_cksum_partial(s, th, 20, false);
  uint16_t sum = static_cast<uint16_t>(~uk::in_cksum_fold(s));
  EXPECT_EQ(ntohs(sum), 0xacbd);
}

// A segment with a wrong TCP checksum arriving on lo0 (not offloaded) is
// dropped and counted in net.inet.tcp.stats.rcvbadsum; a wrong IP header
// checksum in net.inet.ip.stats.badsum.
TEST(Checksum, BadChecksumsAreDroppedAndCounted) {
  int err = 0;
  uk::boot_params bp;
  bp.default_modules = false;
  auto k = uk::kernel::boot(bp, &err);
  ASSERT_NE(k, nullptr);
  uk::InetState& in = uk::V_inet(*k);
  auto make = [&](bool bad_ip) {
    uk::mbuf* m = uk::m_gethdr(*k, uk::M_NOWAIT, uk::MT_DATA);
    uint8_t pkt[40] = {0x45, 0, 0, 40, 0, 1, 0x40, 0, 64, 6, 0, 0,
                       127, 0, 0, 1, 127, 0, 0, 1,
                       0x04, 0xd2, 0x00, 0x50, 0, 0, 0, 1, 0, 0, 0, 0,
                       0x50, 0x02, 0xff, 0xff, 0x12, 0x34, 0, 0};
    uint16_t ipsum = uk::in_cksum_buf(pkt, 20);
    if (bad_ip) ipsum ^= 1;
    memcpy(pkt + 10, &ipsum, 2);
    memcpy(uk::mtod(m), pkt, 40);
    m->m_len = m->m_pkthdr.len = 40;
    return m;
  };
  uint64_t tcp0 = in.tcps.tcps_rcvbadsum.fetch();
  uint64_t ip0 = in.ips.ips_badsum.fetch();
  uk::if_input(k->net->lo0, make(false));
  uk::if_input(k->net->lo0, make(true));
  for (int i = 0; i < 2000 && (in.tcps.tcps_rcvbadsum.fetch() == tcp0 ||
                               in.ips.ips_badsum.fetch() == ip0);
       i++)
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  EXPECT_EQ(in.tcps.tcps_rcvbadsum.fetch(), tcp0 + 1);
  EXPECT_EQ(in.ips.ips_badsum.fetch(), ip0 + 1);
  EXPECT_EQ(in.tcps.tcps_noport.fetch(), 0u);  // never reached a pcb lookup
}

}  // namespace

namespace {

// A hand-built peer at 127.0.0.2 (not a local address: whatever the stack
// answers is dropped by ip_input), driving a connection segment by segment.
class TcpInject : public Tcp {
 protected:
  uk::kernel& K() { return *p_->k; }

  // |opts|: TCP options, a multiple of 4 bytes.
  void Inject(uint16_t sport, uint16_t dport, uint32_t seq, uint32_t ack,
              uint8_t flags, const std::string& data = "",
              uint16_t win = 65535, const std::vector<uint8_t>& opts = {}) {
    const int hlen = 20 + static_cast<int>(opts.size());
    int tlen = hlen + static_cast<int>(data.size());
    std::vector<uint8_t> pkt(20 + tlen);
    auto* iph = reinterpret_cast<uk::ip*>(pkt.data());
    iph->ip_v = 4;
    iph->ip_hl = 5;
    iph->ip_len = htons(static_cast<uint16_t>(pkt.size()));
    iph->ip_ttl = 64;
    iph->ip_p = IPPROTO_TCP;
    iph->ip_src.s_addr = inet_addr("127.0.0.2");
    iph->ip_dst.s_addr = htonl(INADDR_LOOPBACK);
    iph->ip_sum = uk::in_cksum_buf(iph, 20);
    auto* th = reinterpret_cast<uk::tcphdr*>(pkt.data() + 20);
    th->th_sport = htons(sport);
    th->th_dport = htons(dport);
    th->th_seq = htonl(seq);
    th->th_ack = htonl(ack);
    th->th_off = static_cast<uint8_t>(hlen / 4);
    th->th_flags = flags;
    th->th_win = htons(win);
    if (!opts.empty()) memcpy(pkt.data() + 40, opts.data(), opts.size());
    memcpy(pkt.data() + 20 + hlen, data.data(), data.size());
    uint32_t s = uk::in_pseudo(iph->ip_src.s_addr, iph->ip_dst.s_addr,
                               htons(static_cast<uint16_t>(tlen + IPPROTO_TCP)));
    s = uk::in_cksum_partial(s, th, tlen, false);
    th->th_sum = static_cast<uint16_t>(~uk::in_cksum_fold(s));
    uk::mbuf* m = uk::m_getcl(K(), uk::M_NOWAIT, uk::MT_DATA, uk::M_PKTHDR);
    ASSERT_NE(m, nullptr);
    memcpy(uk::mtod(m), pkt.data(), pkt.size());
    m->m_len = m->m_pkthdr.len = static_cast<int>(pkt.size());
    uint64_t before = uk::V_inet(K()).tcps.tcps_rcvtotal.fetch();
    uk::if_input(K().net->lo0, m);
    while (uk::V_inet(K()).tcps.tcps_rcvtotal.fetch() == before)
      std::this_thread::sleep_for(std::chrono::microseconds(100));
    // The segment has been through tcp_input; let its output settle.
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }

  // The server-side pcb of the injected connection.
  uk::xinpcb Pcb(uint16_t lport) {
    for (const uk::xinpcb& x : uk::tcp_pcblist(K()))
      if (ntohs(x.local.sin_port) == lport && x.foreign.sin_port == htons(kPeerPort))
        return x;
    return uk::xinpcb{};
  }

  // Opens a connection from the fake peer (offering SACK with |sack|);
  // returns the accepted fd and the server's next sequence number.
  int Open(uint16_t* port, uint32_t* srv_seq, bool sack = false, uint16_t win = 65535) {
    int l = Listen(4, port);
    // NOP, NOP, SACK permitted (RFC 2018).
    Inject(kPeerPort, *port, kIrs, 0, uk::TH_SYN, "", win,
           sack ? std::vector<uint8_t>{1, 1, 4, 2} : std::vector<uint8_t>{});
    uk::xinpcb x = Pcb(*port);
    EXPECT_EQ(x.t_state, uk::TCPS_SYN_RECEIVED);
    *srv_seq = x.snd_nxt;
    Inject(kPeerPort, *port, kIrs + 1, *srv_seq, uk::TH_ACK, "", win);
    EXPECT_EQ(Pcb(*port).t_state, uk::TCPS_ESTABLISHED);
    return uk_accept(p_, l, nullptr, nullptr);
  }

  static constexpr uint16_t kPeerPort = 5555;
  static constexpr uint32_t kIrs = 1000;
};

TEST_F(TcpInject, OutOfOrderSegmentsAreReassembled) {
  uint16_t port;
  uint32_t ss;
  int a = Open(&port, &ss);
  ASSERT_GE(a, 0);
  uint64_t oo = Stat("net.inet.tcp.stats.rcvoopack");
  Inject(kPeerPort, port, kIrs + 1 + 5, ss, uk::TH_ACK, "world");
  Inject(kPeerPort, port, kIrs + 1 + 10, ss, uk::TH_ACK, "!");
  char buf[16] = {};
  EXPECT_EQ(uk_recv(p_, a, buf, sizeof buf, MSG_DONTWAIT), -1);
  EXPECT_EQ(errno, EAGAIN);
  Inject(kPeerPort, port, kIrs + 1, ss, uk::TH_ACK, "hello");
  EXPECT_EQ(uk_recv(p_, a, buf, 11, MSG_WAITALL), 11);
  EXPECT_STREQ(buf, "helloworld!");
  EXPECT_EQ(Stat("net.inet.tcp.stats.rcvoopack"), oo + 2);
  EXPECT_EQ(Pcb(port).rcv_nxt, kIrs + 1 + 11);
  // A duplicate is acknowledged and dropped.
  uint64_t dup = Stat("net.inet.tcp.stats.rcvduppack");
  Inject(kPeerPort, port, kIrs + 1, ss, uk::TH_ACK, "hello");
  EXPECT_EQ(Stat("net.inet.tcp.stats.rcvduppack"), dup + 1);
  EXPECT_EQ(uk_recv(p_, a, buf, sizeof buf, MSG_DONTWAIT), -1);
}

TEST_F(TcpInject, OnlyAnExactRstResetsTheConnection) {
  uint16_t port;
  uint32_t ss;
  int a = Open(&port, &ss);
  ASSERT_GE(a, 0);
  uint64_t bad = Stat("net.inet.tcp.stats.badrst");
  Inject(kPeerPort, port, kIrs + 1 + 100, 0, uk::TH_RST);  // in window
  EXPECT_EQ(Stat("net.inet.tcp.stats.badrst"), bad + 1);
  EXPECT_EQ(Pcb(port).t_state, uk::TCPS_ESTABLISHED);
  Inject(kPeerPort, port, kIrs + 1, 0, uk::TH_RST);
  char b;
  EXPECT_EQ(uk_recv(p_, a, &b, 1, 0), -1);
  EXPECT_EQ(errno, ECONNRESET);
}

TEST_F(TcpInject, FinMovesToCloseWaitAndReadsEof) {
  uint16_t port;
  uint32_t ss;
  int a = Open(&port, &ss);
  ASSERT_GE(a, 0);
  Inject(kPeerPort, port, kIrs + 1, ss, uk::TH_ACK | uk::TH_FIN, "last");
  char buf[8];
  EXPECT_EQ(uk_recv(p_, a, buf, 4, MSG_WAITALL), 4);
  EXPECT_EQ(uk_recv(p_, a, buf, 4, 0), 0);
  EXPECT_EQ(Pcb(port).t_state, uk::TCPS_CLOSE_WAIT);
}

// Segments that never arrive are retransmitted: lo0 goes down for a send,
// the retransmit timer fires (with backoff) and the data gets through once
// lo0 is up again.
TEST_F(Tcp, RetransmitTimerResendsLostData) {
  int c, a;
  Pair(&c, &a);
  int ms = 50;
  ASSERT_EQ(uk_sysctlbyname(p_, "net.inet.tcp.rexmit_slop", nullptr, nullptr, &ms, sizeof ms), 0);
  uint64_t rto = Stat("net.inet.tcp.stats.rexmttimeo");
  uint64_t rpk = Stat("net.inet.tcp.stats.sndrexmitpack");
  ASSERT_EQ(uk_ifconfig(k_, "lo0", "down"), 0);
  EXPECT_EQ(uk_send(p_, c, "lost", 4, 0), 4);
  while (Stat("net.inet.tcp.stats.rexmttimeo") < rto + 2)
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  ASSERT_EQ(uk_ifconfig(k_, "lo0", "up"), 0);
  char buf[4];
  EXPECT_EQ(uk_recv(p_, a, buf, 4, MSG_WAITALL), 4);
  EXPECT_EQ(memcmp(buf, "lost", 4), 0);
  EXPECT_GT(Stat("net.inet.tcp.stats.sndrexmitpack"), rpk);
}

// lo0 without checksum offload: every segment carries real IPv4 and TCP
// checksums and is verified on input.
TEST_F(Tcp, SoftwareChecksumsWithoutOffload) {
  ASSERT_EQ(uk_ifconfig(k_, "lo0", "-txcsum -rxcsum"), 0);
  int c, a;
  Pair(&c, &a);
  std::vector<char> data(100000, 'k');
  std::thread t([&] { EXPECT_EQ(uk_send(p_, c, data.data(), data.size(), 0), 100000); });
  std::vector<char> got(100000);
  EXPECT_EQ(uk_recv(p_, a, got.data(), got.size(), MSG_WAITALL), 100000);
  t.join();
  EXPECT_EQ(got, data);
  EXPECT_EQ(Stat("net.inet.tcp.stats.rcvbadsum"), 0u);
  EXPECT_EQ(Stat("net.inet.ip.stats.badsum"), 0u);
}

}  // namespace

namespace {

// Three duplicate ACKs retransmit the missing segment at once (NewReno),
// a partial ACK retransmits the next hole, a full ACK ends recovery.
TEST_F(TcpInject, ThreeDuplicateAcksTriggerFastRetransmit) {
  uint16_t port;
  uint32_t ss;
  int a = Open(&port, &ss);
  ASSERT_GE(a, 0);
  int mss = Pcb(port).t_maxseg;  // 536: the fake peer offered no MSS
  std::string data(4 * mss, 'f');
  ASSERT_EQ(uk_send(p_, a, data.data(), data.size(), 0),
            static_cast<ssize_t>(data.size()));
  std::this_thread::sleep_for(std::chrono::milliseconds(5));
  EXPECT_EQ(Pcb(port).snd_nxt, ss + 4 * mss);
  uint64_t fr = Stat("net.inet.tcp.stats.fastrexmt");
  uint64_t rx = Stat("net.inet.tcp.stats.sndrexmitpack");
  Inject(kPeerPort, port, kIrs + 1, ss + mss, uk::TH_ACK);
  for (int i = 0; i < 3; i++) Inject(kPeerPort, port, kIrs + 1, ss + mss, uk::TH_ACK);
  EXPECT_EQ(Stat("net.inet.tcp.stats.fastrexmt"), fr + 1);
  EXPECT_EQ(Stat("net.inet.tcp.stats.sndrexmitpack"), rx + 1);
  Inject(kPeerPort, port, kIrs + 1, ss + 2 * mss, uk::TH_ACK);  // partial
  EXPECT_EQ(Stat("net.inet.tcp.stats.sndrexmitpack"), rx + 2);
  Inject(kPeerPort, port, kIrs + 1, ss + 4 * mss, uk::TH_ACK);  // full
  EXPECT_EQ(Pcb(port).snd_una, ss + 4 * mss);
  EXPECT_EQ(Stat("net.inet.tcp.stats.fastrexmt"), fr + 1);
}

// A zero window stops the sender; the persist timer probes it and the
// data flows once the window opens.
TEST_F(TcpInject, ZeroWindowIsProbedAndReopens) {
  uint16_t port;
  uint32_t ss;
  int a = Open(&port, &ss);
  ASSERT_GE(a, 0);
  // The peer acknowledges 3 bytes and closes its window.
  ASSERT_EQ(uk_send(p_, a, "abc", 3, 0), 3);
  std::this_thread::sleep_for(std::chrono::milliseconds(5));
  Inject(kPeerPort, port, kIrs + 1, ss + 3, uk::TH_ACK, "", 0);
  ASSERT_EQ(uk_send(p_, a, "zzz", 3, 0), 3);
  std::this_thread::sleep_for(std::chrono::milliseconds(5));
  EXPECT_EQ(Pcb(port).snd_nxt, ss + 3);  // nothing sent into a closed window
  EXPECT_EQ(Pcb(port).snd_wnd, 0u);
  // A window update (same seq and ack, larger window) lets it go.
  Inject(kPeerPort, port, kIrs + 1, ss + 3, uk::TH_ACK, "", 1000);
  EXPECT_EQ(Pcb(port).snd_nxt, ss + 6);
}

// On a SACK connection, a pure window update that arrives while data is in
// flight (the peer's application read before the segment reached it)
// carries no new SACK information: it is not a duplicate ACK (FreeBSD), so
// the window opens and the sender goes on. Counted as a duplicate, it took
// the limited-transmit path, which drops the segment: the sender kept the
// old window until some later ACK (on loopback, the peer's delayed ACK
// 40 ms later).
TEST_F(TcpInject, SackWindowUpdateWithDataInFlightOpensTheWindow) {
  uint16_t port;
  uint32_t ss;
  // The peer's window holds one segment (536 bytes: it offered no MSS).
  int a = Open(&port, &ss, /*sack=*/true, /*win=*/536);
  ASSERT_GE(a, 0);
  ASSERT_NE(Pcb(port).t_flags & uk::TF_SACK_PERMIT, 0u) << "SACK not negotiated";
  const int mss = Pcb(port).t_maxseg;
  ASSERT_EQ(mss, 536);
  std::string data(40 * mss, 'w');
  ASSERT_EQ(uk_send(p_, a, data.data(), data.size(), 0), static_cast<ssize_t>(data.size()));
  std::this_thread::sleep_for(std::chrono::milliseconds(5));
  ASSERT_EQ(Pcb(port).snd_nxt, ss + mss) << "one segment fits the window";
  uint64_t dup = Stat("net.inet.tcp.stats.rcvdupack");
  uint64_t lim = Stat("net.inet.tcp.stats.limitedxmit");
  uint64_t upd = Stat("net.inet.tcp.stats.rcvwinupd");
  // Same ack (the segment is still in flight), window of 60 segments: the
  // congestion window is what limits now.
  const uint16_t big = static_cast<uint16_t>(60 * mss);
  Inject(kPeerPort, port, kIrs + 1, ss, uk::TH_ACK, "", big);
  uk::xinpcb x = Pcb(port);
  EXPECT_EQ(x.snd_wnd, big);
  EXPECT_GT(x.snd_nxt - ss, static_cast<uint32_t>(mss)) << "nothing went into the opened window";
  EXPECT_LT(x.snd_nxt - ss, static_cast<uint32_t>(40 * mss)) << "the congestion window limits";
  EXPECT_EQ(Stat("net.inet.tcp.stats.rcvwinupd"), upd + 1);
  EXPECT_EQ(Stat("net.inet.tcp.stats.limitedxmit"), lim);
  // FreeBSD counts it in rcvdupack (before deciding it is not one).
  EXPECT_EQ(Stat("net.inet.tcp.stats.rcvdupack"), dup + 1);
  // A real duplicate - new SACK information: the peer got the second
  // segment but not the first - still counts: limited transmit sends one
  // new segment beyond the congestion window.
  uint32_t left = htonl(ss + mss), right = htonl(ss + 2 * mss);
  std::vector<uint8_t> sackopt = {1, 1, 5, 10};
  sackopt.insert(sackopt.end(), reinterpret_cast<uint8_t*>(&left),
                 reinterpret_cast<uint8_t*>(&left) + 4);
  sackopt.insert(sackopt.end(), reinterpret_cast<uint8_t*>(&right),
                 reinterpret_cast<uint8_t*>(&right) + 4);
  Inject(kPeerPort, port, kIrs + 1, ss, uk::TH_ACK, "", big, sackopt);
  EXPECT_EQ(Stat("net.inet.tcp.stats.limitedxmit"), lim + 1);
  EXPECT_EQ(Pcb(port).snd_nxt, x.snd_nxt + mss);
}

}  // namespace

namespace {

// A full send buffer: EAGAIN without blocking, EAGAIN after SO_SNDTIMEO
// when nothing fits, and the data all arrives once the reader drains it.
TEST_F(Tcp, FullSendBufferGivesEagainAndSendTimeout) {
  int c, a;
  Pair(&c, &a);
  int sz = 8192;
  ASSERT_EQ(uk_setsockopt(p_, c, SOL_SOCKET, SO_SNDBUF, &sz, sizeof sz), 0);
  ASSERT_EQ(uk_setsockopt(p_, a, SOL_SOCKET, SO_RCVBUF, &sz, sizeof sz), 0);
  std::vector<char> buf(4096, 's');
  size_t queued = 0;
  for (;;) {
    ssize_t n = uk_send(p_, c, buf.data(), buf.size(), MSG_DONTWAIT);
    if (n < 0) {
      ASSERT_EQ(errno, EAGAIN);
      break;
    }
    queued += n;
  }
  EXPECT_GT(queued, 0u);
  timeval tv{0, 30000};
  ASSERT_EQ(uk_setsockopt(p_, c, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv), 0);
  EXPECT_EQ(uk_send(p_, c, buf.data(), buf.size(), 0), -1);
  EXPECT_EQ(errno, EAGAIN);
  std::vector<char> in(queued);
  EXPECT_EQ(uk_recv(p_, a, in.data(), queued, MSG_WAITALL), static_cast<ssize_t>(queued));
  EXPECT_EQ(std::count(in.begin(), in.end(), 's'), static_cast<long>(queued));
}

// Send-buffer autosizing (tcp_sndbuf_autoscale). `bytes` go from c to a,
// read as they come; returns c's send buffer size afterwards.
class TcpAutosize : public Tcp {
 protected:
  int SendAndReadBack(int c, int a, size_t bytes) {
    std::thread reader([&] {
      std::vector<char> in(64 * 1024);
      size_t got = 0;
      while (got < bytes) {
        ssize_t r = uk_recv(p_, a, in.data(), in.size(), 0);
        ASSERT_GT(r, 0) << strerror(errno);
        got += r;
      }
    });
    std::vector<char> out(64 * 1024, 'b');
    for (size_t sent = 0; sent < bytes;) {
      ssize_t w = uk_send(p_, c, out.data(), std::min(out.size(), bytes - sent), 0);
      EXPECT_GT(w, 0) << strerror(errno);
      if (w <= 0) break;
      sent += w;
    }
    reader.join();
    int v = 0;
    socklen_t len = sizeof v;
    EXPECT_EQ(uk_getsockopt(p_, c, SOL_SOCKET, SO_SNDBUF, &v, &len), 0);
    return v;
  }
  void SetInt(const char* name, int v) {
    ASSERT_EQ(uk_sysctlbyname(p_, name, nullptr, nullptr, &v, sizeof v), 0) << name;
  }
};

// A peer that keeps up: the buffer grows from net.inet.tcp.sendspace in
// steps of sendbuf_inc, never past sendbuf_max.
TEST_F(TcpAutosize, SendBufferGrowsInStepsUpToSendbufMax) {
  SetInt("net.inet.tcp.sendbuf_max", 256 * 1024);
  int c, a;
  Pair(&c, &a);
  int v = SendAndReadBack(c, a, 32u << 20);
  EXPECT_GT(v, 32768);
  EXPECT_LE(v, 256 * 1024);
  EXPECT_EQ((v - 32768) % 8192, 0) << v;
  uk_close(p_, a);
  uk_close(p_, c);
}

// The peer's window caps the growth: one more step only while the window
// is at least 4/5 of the buffer. A receive buffer fixed at 48 KiB
// (SO_RCVBUF on the listener, inherited, not autosized) lets the sender's
// grow to 64 KiB at most (60 KiB window x 5/4 >= 56 KiB, then one step).
TEST_F(TcpAutosize, SendBufferStopsAtFiveQuartersOfThePeersWindow) {
  uint16_t port;
  int l = Listen(8, &port);
  int rcv = 48 * 1024;
  ASSERT_EQ(uk_setsockopt(p_, l, SOL_SOCKET, SO_RCVBUF, &rcv, sizeof rcv), 0);
  int c = uk_socket(p_, AF_INET, SOCK_STREAM, 0);
  sockaddr_in sin = lo(port);
  ASSERT_EQ(uk_connect(p_, c, reinterpret_cast<sockaddr*>(&sin), sizeof sin), 0);
  int a = uk_accept(p_, l, nullptr, nullptr);
  ASSERT_GE(a, 0);
  int v = SendAndReadBack(c, a, 32u << 20);
  EXPECT_GE(v, 32768);
  EXPECT_LE(v, 64 * 1024);
  // With net.inet.tcp.sendbuf_auto_lowat, SO_SNDLOWAT (16 KiB) comes off
  // the thresholds: up to 80 KiB (60 KiB x 5/4 >= 72 KiB - 16 KiB).
  SetInt("net.inet.tcp.sendbuf_auto_lowat", 1);
  int c2 = uk_socket(p_, AF_INET, SOCK_STREAM, 0);
  int lowat = 16 * 1024;
  ASSERT_EQ(uk_setsockopt(p_, c2, SOL_SOCKET, SO_SNDLOWAT, &lowat, sizeof lowat), 0);
  ASSERT_EQ(uk_connect(p_, c2, reinterpret_cast<sockaddr*>(&sin), sizeof sin), 0);
  int a2 = uk_accept(p_, l, nullptr, nullptr);
  ASSERT_GE(a2, 0);
  int v2 = SendAndReadBack(c2, a2, 32u << 20);
  EXPECT_GT(v2, 64 * 1024);
  EXPECT_LE(v2, 80 * 1024);
  for (int s : {a, c, a2, c2, l}) uk_close(p_, s);
}

// Off with net.inet.tcp.sendbuf_auto=0, and for a socket whose SO_SNDBUF
// was set: the buffer keeps its size.
TEST_F(TcpAutosize, NoGrowthWhenDisabledOrSetBySoSndbuf) {
  SetInt("net.inet.tcp.sendbuf_auto", 0);
  int c, a;
  Pair(&c, &a);
  EXPECT_EQ(SendAndReadBack(c, a, 8u << 20), 32768);
  SetInt("net.inet.tcp.sendbuf_auto", 1);
  int c2, a2;
  Pair(&c2, &a2);
  int sz = 40000;
  ASSERT_EQ(uk_setsockopt(p_, c2, SOL_SOCKET, SO_SNDBUF, &sz, sizeof sz), 0);
  EXPECT_EQ(SendAndReadBack(c2, a2, 8u << 20), 40000);
  for (int s : {a, c, a2, c2}) uk_close(p_, s);
}

}  // namespace
