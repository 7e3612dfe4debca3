// sendfile(2) as FreeBSD documents it, on a plain and on a KTLS socket:
// file sizes from 1 byte up (default up to 8 MiB; UKTLS_SENDFILE_MAX_MB=64
// adds the 64 MiB run), offsets 0, 1, 4095 and one that starts just before a
// page boundary, nbytes 0 meaning "to the end of the file", headers and
// trailers (sf_hdtr) and *sbytes counting all of them, a non-blocking socket
// getting EAGAIN with partial progress and then finishing, the automatic
// send low-water mark (sendfile_wait_generic) and SO_SNDLOWAT turning it
// off, a blocked sender left asleep by ACKs that free less room than it
// waits for, and the errors in FreeBSD's order. KTLS records are decrypted with OpenSSL EVP; the file
// is unchanged afterwards.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>

#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <fstream>
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

// How many times host thread tid has gone to sleep (voluntary context
// switches, from /proc), -1 if unreadable.
long SleepsOf(pid_t tid) {
  std::ifstream f("/proc/self/task/" + std::to_string(tid) + "/status");
  std::string key;
  long v;
  while (f >> key) {
    if (key == "voluntary_ctxt_switches:" && f >> v) return v;
  }
  return -1;
}

size_t MaxSize() {
  const char* e = getenv("UKTLS_SENDFILE_MAX_MB");
  return static_cast<size_t>(e != nullptr ? std::max(1, atoi(e)) : 8) << 20;
}

class SendfileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    uk_boot_config cfg{};
    cfg.ncpus = 2;
    k_ = uk_boot(&cfg);
    ASSERT_NE(k_, nullptr);
    p_ = uk_proc_create(k_, "sendfile");
  }
  void TearDown() override { EXPECT_EQ(uk_halt(k_), 0); }

  // A file of n random bytes at path; returns its descriptor (O_RDWR).
  int MakeFile(const char* path, size_t n, std::vector<uint8_t>* content) {
    int fd = uk_open(p_, path, O_RDWR | O_CREAT, 0644);
    EXPECT_GE(fd, 0) << strerror(errno);
    *content = ktls_test::RandomBytes(n);
    for (size_t off = 0; off < n;) {
      ssize_t w = uk_pwrite(p_, fd, content->data() + off,
                            std::min<size_t>(1 << 20, n - off), off);
      EXPECT_GT(w, 0);
      if (w <= 0) break;
      off += w;
    }
    return fd;
  }

  bool ReadFull(int fd, uint8_t* buf, size_t n) {
    return ktls_test::ReadFull(p_, fd, buf, n);
  }

  // Reads want.size() plaintext bytes from fd: raw, or as KTLS records
  // (each decrypted and checked: sequence number, version, type, size).
  void ExpectStream(int fd, const Suite* s, const TlsKeys* keys, uint64_t seq,
                    const std::vector<uint8_t>& want, const std::string& what) {
    std::vector<uint8_t> got;
    got.reserve(want.size());
    if (s == nullptr) {
      got.resize(want.size());
      ASSERT_TRUE(ReadFull(fd, got.data(), got.size())) << what;
    } else {
      std::vector<uint8_t> rec, pt, chain(keys->iv);
      while (got.size() < want.size()) {
        rec.assign(5, 0);
        ASSERT_TRUE(ReadFull(fd, rec.data(), 5)) << what;
        size_t len = (rec[3] << 8) | rec[4];
        rec.resize(5 + len);
        ASSERT_TRUE(ReadFull(fd, rec.data() + 5, len)) << what;
        uint8_t type;
        std::string why;
        ASSERT_TRUE(ktls_test::DecryptRecord(*s, *keys, seq++, rec.data(),
                                             rec.size(), &pt, &type, &why, &chain))
            << what << ": " << why;
        EXPECT_EQ(type, TLS_RLTYPE_APP);
        ASSERT_LE(pt.size(), 16384u) << what;
        got.insert(got.end(), pt.begin(), pt.end());
      }
    }
    ASSERT_EQ(got.size(), want.size()) << what;
    EXPECT_TRUE(got == want) << what << ": data differs";
  }

  void EnableTx(int fd, const Suite& s, uint64_t seq, TlsKeys* keys) {
    ktls_test::BuildTlsEnable(s, seq, keys);
    ASSERT_EQ(uk_setsockopt(p_, fd, IPPROTO_TCP, TCP_TXTLS_ENABLE, &keys->en,
                            sizeof keys->en),
              0)
        << strerror(errno);
  }

  // A connected pair whose receiver (sv[0]) has a 4 KiB buffer from before
  // the handshake, so its window never goes above 4 KiB, and whose sender
  // (sv[1]) has a fixed send buffer of sndbuf bytes.
  void SmallWindowPair(int sv[2], int sndbuf) {
    ktls_test::LoopbackPair(p_, sv, false, /*rcvbuf=*/4096);
    ASSERT_EQ(uk_setsockopt(p_, sv[1], SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof sndbuf), 0);
  }

  uk_kernel* k_ = nullptr;
  uk_proc* p_ = nullptr;
};

// Sizes 1 B .. MaxSize() at offsets 0, 1, 4095 and 8190 (the first page
// holds two bytes), plain and with KTLS, headers and trailers included.
TEST_F(SendfileTest, SizesAndOffsetsPlainAndKtls) {
  const size_t max = MaxSize();
  std::vector<size_t> sizes = {1,     2,      4095,      4096,       4097,
                               16383, 16384,  16385,     65537,      (1 << 20) + 3};
  for (size_t big = 8u << 20; big <= max; big *= 8) sizes.push_back(big - 5);
  std::vector<uint8_t> content;
  int fd = MakeFile("/sizes", max + 16384, &content);
  const Suite gcm = ktls_test::GcmSuites()[0];
  const Suite cbc10 = ktls_test::CbcSuites()[0];
  for (const Suite* s : {static_cast<const Suite*>(nullptr), &gcm, &cbc10}) {
    for (size_t n : sizes) {
      for (off_t off : {off_t{0}, off_t{1}, off_t{4095}, off_t{8190}}) {
        // The largest sizes once each, at an odd offset.
        if (n > (1u << 20) + 3 && off != 1) continue;
        std::string what = std::string(s ? s->name : "plain") + " size " +
                           std::to_string(n) + " off " + std::to_string(off);
        int sv[2];
        ktls_test::LoopbackPair(p_, sv, false);
        TlsKeys keys;
        if (s != nullptr) EnableTx(sv[1], *s, 7, &keys);
        auto h1 = ktls_test::RandomBytes(3), h2 = ktls_test::RandomBytes(17);
        auto t1 = ktls_test::RandomBytes(9);
        iovec hv[2] = {{h1.data(), h1.size()}, {h2.data(), h2.size()}};
        iovec tv[1] = {{t1.data(), t1.size()}};
        uk_sf_hdtr hdtr{hv, 2, tv, 1};
        std::vector<uint8_t> want(h1);
        want.insert(want.end(), h2.begin(), h2.end());
        want.insert(want.end(), content.begin() + off, content.begin() + off + n);
        want.insert(want.end(), t1.begin(), t1.end());
        off_t sbytes = -1;
        int rc = -2;
        std::thread sender(
            [&] { rc = uk_sendfile(p_, fd, sv[1], off, n, &hdtr, &sbytes, 0); });
        ExpectStream(sv[0], s, &keys, 7, want, what);
        sender.join();
        EXPECT_EQ(rc, 0) << what << ": " << strerror(errno);
        EXPECT_EQ(sbytes, static_cast<off_t>(want.size())) << what;
        uk_close(p_, sv[0]);
        uk_close(p_, sv[1]);
      }
    }
  }
  std::vector<uint8_t> back(content.size());
  ASSERT_EQ(uk_pread(p_, fd, back.data(), back.size(), 0),
            static_cast<ssize_t>(back.size()));
  EXPECT_TRUE(back == content) << "the file changed";
  uk_close(p_, fd);
}

// nbytes 0 sends to the end of the file; an offset at or past the end
// sends only the headers and trailers; sbytes counts what was sent.
TEST_F(SendfileTest, ZeroNbytesMeansToEndOfFileAndOffsetPastEnd) {
  std::vector<uint8_t> content;
  int fd = MakeFile("/eof", 100000, &content);
  const Suite s = ktls_test::ChachaSuites()[1];
  for (bool ktls : {false, true}) {
    for (off_t off : {off_t{0}, off_t{4097}, off_t{99999}, off_t{100000}, off_t{200000}}) {
      std::string what = std::string(ktls ? "ktls" : "plain") + " off " + std::to_string(off);
      int sv[2];
      ktls_test::LoopbackPair(p_, sv, false);
      TlsKeys keys;
      if (ktls) EnableTx(sv[1], s, 1, &keys);
      auto h = ktls_test::RandomBytes(11), t = ktls_test::RandomBytes(5);
      iovec hv{h.data(), h.size()}, tv{t.data(), t.size()};
      uk_sf_hdtr hdtr{&hv, 1, &tv, 1};
      std::vector<uint8_t> want(h);
      if (off < 100000) want.insert(want.end(), content.begin() + off, content.end());
      want.insert(want.end(), t.begin(), t.end());
      off_t sbytes = -1;
      int rc = -2;
      std::thread sender([&] { rc = uk_sendfile(p_, fd, sv[1], off, 0, &hdtr, &sbytes, 0); });
      ExpectStream(sv[0], ktls ? &s : nullptr, &keys, 1, want, what);
      sender.join();
      EXPECT_EQ(rc, 0) << what;
      EXPECT_EQ(sbytes, static_cast<off_t>(want.size())) << what;
      // Nothing more follows.
      uk_shutdown(p_, sv[1], SHUT_WR);
      uint8_t b;
      EXPECT_EQ(uk_recv(p_, sv[0], &b, 1, 0), 0) << what;
      uk_close(p_, sv[0]);
      uk_close(p_, sv[1]);
    }
  }
  uk_close(p_, fd);
}

// A non-blocking socket: sendfile sends what fits and fails with EAGAIN,
// *sbytes saying how far it got (headers included); called again from
// there (as the man page tells) it finishes.
TEST_F(SendfileTest, NonBlockingPartialProgressThenCompletion) {
  const size_t fsize = 3 << 20;
  std::vector<uint8_t> content;
  int fd = MakeFile("/nb", fsize, &content);
  const Suite gcm13 = ktls_test::GcmSuites()[2];
  for (const Suite* s : {static_cast<const Suite*>(nullptr), &gcm13}) {
    std::string what = s ? s->name : "plain";
    int sv[2];
    ktls_test::LoopbackPair(p_, sv, false);
    TlsKeys keys;
    if (s != nullptr) EnableTx(sv[1], *s, 0, &keys);
    ASSERT_EQ(uk_fcntl(p_, sv[1], F_SETFL, O_NONBLOCK), 0);
    auto h = ktls_test::RandomBytes(100);
    iovec hv{h.data(), h.size()};
    uk_sf_hdtr hdtr{&hv, 1, nullptr, 0};
    // Nobody reads yet: the first call must stop short.
    off_t sbytes = -1;
    ASSERT_EQ(uk_sendfile(p_, fd, sv[1], 0, fsize, &hdtr, &sbytes, 0), -1) << what;
    ASSERT_EQ(errno, EAGAIN) << what;
    ASSERT_GT(sbytes, static_cast<off_t>(h.size())) << what;
    ASSERT_LT(sbytes, static_cast<off_t>(fsize + h.size())) << what;
    std::vector<uint8_t> want(h);
    want.insert(want.end(), content.begin(), content.end());
    std::thread reader([&] { ExpectStream(sv[0], s, &keys, 0, want, what); });
    off_t done = sbytes - static_cast<off_t>(h.size());  // file bytes sent
    while (done < static_cast<off_t>(fsize)) {
      off_t sb = -1;
      int rc = uk_sendfile(p_, fd, sv[1], done, fsize - done, nullptr, &sb, 0);
      ASSERT_GE(sb, 0);
      done += sb;
      if (rc == 0) {
        EXPECT_EQ(done, static_cast<off_t>(fsize)) << what;
        break;
      }
      ASSERT_EQ(errno, EAGAIN) << what;
      pollfd pfd{sv[1], POLLOUT, 0};
      uk_poll(p_, &pfd, 1, 5000);
    }
    reader.join();
    EXPECT_EQ(done, static_cast<off_t>(fsize)) << what;
    uk_close(p_, sv[0]);
    uk_close(p_, sv[1]);
  }
  uk_close(p_, fd);
}

// Errors in FreeBSD's order: the offset, the header/trailer vectors, then
// the file descriptor (open for reading, a regular file), then the socket
// (a socket, a stream, connected, able to send).
TEST_F(SendfileTest, ErrorsInFreeBsdOrder) {
  std::vector<uint8_t> content;
  int fd = MakeFile("/err", 5000, &content);
  int sv[2];
  ktls_test::LoopbackPair(p_, sv, false);
  off_t sbytes = -1;
  // A negative offset comes first, even before a bad descriptor.
  EXPECT_EQ(uk_sendfile(p_, 999, 998, -1, 1, nullptr, &sbytes, 0), -1);
  EXPECT_EQ(errno, EINVAL);
  EXPECT_EQ(uk_sendfile(p_, fd, sv[1], -1, 1, nullptr, &sbytes, 0), -1);
  EXPECT_EQ(errno, EINVAL);
  EXPECT_EQ(sbytes, 0);
  // More iovecs than UIO_MAXIOV (1024).
  std::vector<iovec> many(1025, iovec{content.data(), 1});
  uk_sf_hdtr hd{many.data(), 1025, nullptr, 0};
  EXPECT_EQ(uk_sendfile(p_, fd, sv[1], 0, 1, &hd, nullptr, 0), -1);
  EXPECT_EQ(errno, EINVAL);
  uk_sf_hdtr tl{nullptr, 0, many.data(), 1025};
  EXPECT_EQ(uk_sendfile(p_, fd, sv[1], 0, 1, &tl, nullptr, 0), -1);
  EXPECT_EQ(errno, EINVAL);
  // The file descriptor: not open, not readable, not a file.
  EXPECT_EQ(uk_sendfile(p_, 999, sv[1], 0, 1, nullptr, nullptr, 0), -1);
  EXPECT_EQ(errno, EBADF);
  int wo = uk_open(p_, "/err", O_WRONLY, 0);
  ASSERT_GE(wo, 0);
  EXPECT_EQ(uk_sendfile(p_, wo, sv[1], 0, 1, nullptr, nullptr, 0), -1);
  EXPECT_EQ(errno, EBADF);
  uk_close(p_, wo);
  // A socket as the file is EINVAL whatever s is (fd is looked at first).
  EXPECT_EQ(uk_sendfile(p_, sv[0], fd, 0, 1, nullptr, nullptr, 0), -1);
  EXPECT_EQ(errno, EINVAL);
  EXPECT_EQ(uk_sendfile(p_, sv[0], 999, 0, 1, nullptr, nullptr, 0), -1);
  EXPECT_EQ(errno, EINVAL);
  // The socket: not open, not a socket.
  EXPECT_EQ(uk_sendfile(p_, fd, 999, 0, 1, nullptr, nullptr, 0), -1);
  EXPECT_EQ(errno, EBADF);
  EXPECT_EQ(uk_sendfile(p_, fd, fd, 0, 1, nullptr, nullptr, 0), -1);
  EXPECT_EQ(errno, ENOTSOCK);
  // Not connected, and listening: ENOTCONN, nothing sent.
  int u = uk_socket(p_, AF_INET, SOCK_STREAM, 0);
  sbytes = -1;
  EXPECT_EQ(uk_sendfile(p_, fd, u, 0, 100, nullptr, &sbytes, 0), -1);
  EXPECT_EQ(errno, ENOTCONN);
  EXPECT_EQ(sbytes, 0);
  sockaddr_in sin{};
  sin.sin_family = AF_INET;
  sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(uk_bind(p_, u, reinterpret_cast<sockaddr*>(&sin), sizeof sin), 0);
  ASSERT_EQ(uk_listen(p_, u, 1), 0);
  EXPECT_EQ(uk_sendfile(p_, fd, u, 0, 100, nullptr, nullptr, 0), -1);
  EXPECT_EQ(errno, ENOTCONN);
  uk_close(p_, u);
  // The sending side shut down: EPIPE.
  ASSERT_EQ(uk_shutdown(p_, sv[1], SHUT_WR), 0);
  EXPECT_EQ(uk_sendfile(p_, fd, sv[1], 0, 100, nullptr, nullptr, 0), -1);
  EXPECT_EQ(errno, EPIPE);
  uk_close(p_, sv[0]);
  uk_close(p_, sv[1]);
  uk_close(p_, fd);
}

}  // namespace

// sendfile_wait_generic's low-water mark. A socket's send buffer starts
// with SB_AUTOLOWAT: each sendfile raises sb_lowat to half the buffer (at
// least a page), and waits (or, non-blocking, returns EAGAIN) while the
// rest does not fit and the room is below it; the room it takes is cut at a
// page boundary of the file. Nobody reads here, so the peer's 4 KiB
// window fills and the rest stays in the sender's buffer, whose size the
// test sets to open exact amounts of room.
TEST_F(SendfileTest, NonBlockingWaitsForLowWaterRoomAndEndsAtPageBoundaries) {
  const size_t fsize = 1 << 20;
  std::vector<uint8_t> content;
  int fd = MakeFile("/lowat", fsize, &content);
  int sv[2];
  SmallWindowPair(sv, 65536);
  auto setint = [&](int s, int opt, int v) {
    ASSERT_EQ(uk_setsockopt(p_, s, SOL_SOCKET, opt, &v, sizeof v), 0) << strerror(errno);
  };
  auto getint = [&](int s, int opt) {
    int v = -1;
    socklen_t len = sizeof v;
    EXPECT_EQ(uk_getsockopt(p_, s, SOL_SOCKET, opt, &v, &len), 0) << strerror(errno);
    return v;
  };
  EXPECT_EQ(getint(sv[1], SO_SNDLOWAT), 2048);  // MCLBYTES, TCP's default
  ASSERT_EQ(uk_fcntl(p_, sv[1], F_SETFL, O_NONBLOCK), 0);

  // From offset 100 the 64 KiB of room is cut to end on a page boundary:
  // 3,996 bytes to the first one, then 15 whole pages. What is left after
  // the peer took its 4 KiB is below the new mark (32 KiB): EAGAIN.
  off_t off = 100, sbytes = -1;
  ASSERT_EQ(uk_sendfile(p_, fd, sv[1], off, fsize - off, nullptr, &sbytes, 0), -1);
  ASSERT_EQ(errno, EAGAIN);
  EXPECT_EQ(sbytes, 65436);
  EXPECT_EQ(getint(sv[1], SO_SNDLOWAT), 32768);
  off += sbytes;
  pollfd pfd{sv[1], POLLOUT, 0};
  EXPECT_EQ(uk_poll(p_, &pfd, 1, 0), 0) << "writable below the low-water mark";

  // 10,000 more bytes of room: still below the mark (now 37,768).
  setint(sv[1], SO_SNDBUF, 75536);
  sbytes = -1;
  ASSERT_EQ(uk_sendfile(p_, fd, sv[1], off, fsize - off, nullptr, &sbytes, 0), -1);
  ASSERT_EQ(errno, EAGAIN);
  EXPECT_EQ(sbytes, 0);
  EXPECT_EQ(getint(sv[1], SO_SNDLOWAT), 37768);

  // A 192 KiB buffer: at least 128 KiB of room against a 96 KiB mark.
  setint(sv[1], SO_SNDBUF, 196608);
  sbytes = -1;
  ASSERT_EQ(uk_sendfile(p_, fd, sv[1], off, fsize - off, nullptr, &sbytes, 0), -1);
  ASSERT_EQ(errno, EAGAIN);
  EXPECT_GE(sbytes, 131072);
  EXPECT_EQ((off + sbytes) % 4096, 0) << "sbytes " << sbytes;
  EXPECT_EQ(getint(sv[1], SO_SNDLOWAT), 98304);
  off += sbytes;

  // Everything sent arrives, in order.
  std::vector<uint8_t> got(off - 100);
  ASSERT_TRUE(ReadFull(sv[0], got.data(), got.size()));
  EXPECT_TRUE(std::equal(got.begin(), got.end(), content.begin() + 100));
  uk_close(p_, sv[0]);
  uk_close(p_, sv[1]);
  uk_close(p_, fd);
}

// SO_SNDLOWAT is the user's choice: sendfile no longer raises the mark,
// and small room is used as it comes.
TEST_F(SendfileTest, SoSndlowatTurnsTheAutomaticMarkOff) {
  std::vector<uint8_t> content;
  int fd = MakeFile("/lowat_off", 1 << 20, &content);
  int sv[2];
  int snd = 65536, lowat = 1;
  SmallWindowPair(sv, snd);
  ASSERT_EQ(uk_setsockopt(p_, sv[1], SOL_SOCKET, SO_SNDLOWAT, &lowat, sizeof lowat), 0);
  ASSERT_EQ(uk_fcntl(p_, sv[1], F_SETFL, O_NONBLOCK), 0);
  off_t sbytes = -1;
  ASSERT_EQ(uk_sendfile(p_, fd, sv[1], 0, 0, nullptr, &sbytes, 0), -1);
  ASSERT_EQ(errno, EAGAIN);
  EXPECT_GE(sbytes, 65536);
  int v = -1;
  socklen_t len = sizeof v;
  ASSERT_EQ(uk_getsockopt(p_, sv[1], SOL_SOCKET, SO_SNDLOWAT, &v, &len), 0);
  EXPECT_EQ(v, 1);
  // 1,000 bytes of room are taken at once (the automatic mark would wait).
  snd += 1000;
  ASSERT_EQ(uk_setsockopt(p_, sv[1], SOL_SOCKET, SO_SNDBUF, &snd, sizeof snd), 0);
  off_t more = -1;
  ASSERT_EQ(uk_sendfile(p_, fd, sv[1], sbytes, 0, nullptr, &more, 0), -1);
  ASSERT_EQ(errno, EAGAIN);
  EXPECT_GE(more, 1000);
  std::vector<uint8_t> got(sbytes + more);
  ASSERT_TRUE(ReadFull(sv[0], got.data(), got.size()));
  EXPECT_TRUE(std::equal(got.begin(), got.end(), content.begin()));
  uk_close(p_, sv[0]);
  uk_close(p_, sv[1]);
  uk_close(p_, fd);
}

// A sender blocked for room (sendfile's low-water mark; write(2)'s
// SO_SNDLOWAT) sleeps until the room it goes on with is there: ACKs that
// free less leave its thread asleep (waking it would only have it find too
// little room and sleep again), the one that frees enough wakes it, and
// everything arrives. The peer's window is 4 KiB, so each 4 KiB read lets
// one more 4 KiB out of a full 64 KiB send buffer and its ACK frees 4 KiB
// there; the sender needs 32 KiB.
TEST_F(SendfileTest, BlockedSenderSleepsThroughAcksThatFreeTooLittleRoom) {
  const size_t fsize = 1 << 20;
  std::vector<uint8_t> content;
  int fd = MakeFile("/room", fsize, &content);
  for (bool use_sendfile : {true, false}) {
    SCOPED_TRACE(use_sendfile ? "sendfile" : "write");
    int sv[2];
    SmallWindowPair(sv, 65536);
    if (!use_sendfile) {
      int lowat = 32768;
      ASSERT_EQ(uk_setsockopt(p_, sv[1], SOL_SOCKET, SO_SNDLOWAT, &lowat, sizeof lowat), 0);
    }
    // The send buffer's room, as EVFILT_WRITE's data, once it is at least
    // `want` (NOTE_LOWAT), or -1 after 10 s.
    int kq = uk_kqueue(p_);
    ASSERT_GE(kq, 0);
    auto room_at_least = [&](long want) -> long {
      struct kevent ch, ev;
      EV_SET(&ch, sv[1], EVFILT_WRITE, EV_ADD | EV_ONESHOT, NOTE_LOWAT, want, nullptr);
      timespec to{10, 0};
      int n = uk_kevent(p_, kq, &ch, 1, &ev, 1, &to);
      return n == 1 ? static_cast<long>(ev.data) : -1;
    };

    std::atomic<pid_t> tid{0};
    std::atomic<bool> done{false};
    off_t sent = -1;
    std::thread t([&] {
      tid = static_cast<pid_t>(syscall(SYS_gettid));
      if (use_sendfile) {
        off_t sb = 0;
        if (uk_sendfile(p_, fd, sv[1], 0, fsize, nullptr, &sb, 0) == 0) sent = sb;
      } else {
        ssize_t n = uk_write(p_, sv[1], content.data(), fsize);
        sent = n;
      }
      done = true;
    });
    // Blocked: the buffer full (the peer has its 4 KiB) and the thread
    // asleep with no change for a while.
    while (tid.load() == 0) std::this_thread::yield();
    long before = -1;
    for (int stable = 0; stable < 5;) {
      long s = SleepsOf(tid);
      ASSERT_GE(s, 0) << "no /proc/self/task";
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
      stable = (s == SleepsOf(tid) && !done) ? stable + 1 : 0;
      before = s;
    }
    ASSERT_FALSE(done);
    std::vector<uint8_t> got(fsize);
    size_t have = 0;
    // Six 4 KiB reads: 24 KiB of room, each ACK's 4 KiB below the 32 KiB
    // the sender waits for.
    for (int i = 1; i <= 6; i++) {
      ASSERT_TRUE(ReadFull(sv[0], got.data() + have, 4096));
      have += 4096;
      ASSERT_GE(room_at_least(4096L * i), 4096L * i) << "read " << i;
    }
    EXPECT_EQ(SleepsOf(tid), before) << "the sender was woken for too little room";
    EXPECT_FALSE(done);
    // The rest: the sender goes on and finishes; the bytes are the file's.
    ASSERT_TRUE(ReadFull(sv[0], got.data() + have, fsize - have));
    t.join();
    EXPECT_EQ(sent, static_cast<off_t>(fsize));
    EXPECT_TRUE(got == content);
    uk_close(p_, kq);
    uk_close(p_, sv[0]);
    uk_close(p_, sv[1]);
  }
  uk_close(p_, fd);
}
