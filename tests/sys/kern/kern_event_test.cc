// kqueue(2)/kevent(2) on sockets, through lib/libuk only: the socket
// filters, EV_CLEAR/EV_ONESHOT/EV_DISPATCH, errors as FreeBSD reports them,
// knote removal on close, wakeups across threads, and a 1,024-connection
// transfer driven by kevent with every byte checked.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "lib/libuk/uk.h"
#include "tests/sys/kern/ktls_test_util.h"

namespace {

struct kevent Ev(uintptr_t ident, short filter, unsigned short flags,
                 unsigned fflags = 0, int64_t data = 0,
                 void* udata = nullptr) {
  struct kevent kev;
  EV_SET(&kev, ident, filter, flags, fflags, data, udata);
  return kev;
}

constexpr timespec kNoWait{0, 0};
constexpr timespec kLong{10, 0};  // a bound for waits that must succeed

// kq_ lives in the server process (the fixture's p_, named srv_ here);
// clients connect from a second process.
class KeventTest : public ktls_test::KernelTest {
 protected:
  KeventTest() : KernelTest("server") {}
  void SetUp() override {
    KernelTest::SetUp();
    srv_ = p_;
    cli_ = uk_proc_create(k_, "client");
    kq_ = uk_kqueue(srv_);
    ASSERT_GE(kq_, 0);
  }
  // KernelTest::TearDown halts with the kqueues still open: halt must free
  // them (LSan).

  int Connect(uint16_t port) {
    int c = uk_socket(cli_, AF_INET, SOCK_STREAM, 0);
    sockaddr_in sin = ktls_test::Loopback(port);
    EXPECT_EQ(uk_connect(cli_, c, reinterpret_cast<sockaddr*>(&sin), sizeof sin), 0);
    return c;
  }

  // c (client process) connected to a (server process, where kq_ lives).
  void Pair(int* c, int* a) {
    uint16_t port;
    int l = Listen(&port);
    *c = Connect(port);
    *a = uk_accept(srv_, l, nullptr, nullptr);
    ASSERT_GE(*a, 0);
    ASSERT_EQ(uk_close(srv_, l), 0);
  }

  int Change(const struct kevent& kev) {
    return uk_kevent(srv_, kq_, &kev, 1, nullptr, 0, nullptr);
  }

  // Waits (bounded) for one event.
  int Wait1(struct kevent* out, const timespec* ts = &kLong) {
    return uk_kevent(srv_, kq_, nullptr, 0, out, 1, ts);
  }

  uk_proc* srv_ = nullptr;
  uk_proc* cli_ = nullptr;
  int kq_ = -1;
};

TEST_F(KeventTest, ReadReportsBytesReadable) {
  int c, a;
  Pair(&c, &a);
  ASSERT_EQ(Change(Ev(a, EVFILT_READ, EV_ADD)), 0);
  struct kevent ev;
  EXPECT_EQ(Wait1(&ev, &kNoWait), 0);  // nothing to read yet
  ASSERT_EQ(uk_send(cli_, c, "hello, kqueue", 13, 0), 13);
  ASSERT_EQ(Wait1(&ev), 1);
  EXPECT_EQ(ev.ident, static_cast<uintptr_t>(a));
  EXPECT_EQ(ev.filter, EVFILT_READ);
  EXPECT_EQ(ev.flags & (EV_EOF | EV_ERROR), 0);
  // The segment may still be on its way: wait until all 13 bytes count.
  while (ev.data < 13) ASSERT_EQ(Wait1(&ev), 1);
  EXPECT_EQ(ev.data, 13);
  char buf[16];
  ASSERT_EQ(uk_recv(srv_, a, buf, 5, 0), 5);
  ASSERT_EQ(Wait1(&ev), 1);
  EXPECT_EQ(ev.data, 8);
  ASSERT_EQ(uk_recv(srv_, a, buf, 8, 0), 8);
  EXPECT_EQ(Wait1(&ev, &kNoWait), 0);  // drained: no longer ready
}

TEST_F(KeventTest, ReadLowWaterMarkFromSoRcvlowatAndNoteLowat) {
  int c, a;
  Pair(&c, &a);
  int lowat = 10;
  ASSERT_EQ(uk_setsockopt(srv_, a, SOL_SOCKET, SO_RCVLOWAT, &lowat, sizeof lowat), 0);
  ASSERT_EQ(Change(Ev(a, EVFILT_READ, EV_ADD)), 0);
  ASSERT_EQ(uk_send(cli_, c, "12345", 5, 0), 5);
  struct kevent ev;
  const timespec short_wait{0, 100 * 1000 * 1000};
  EXPECT_EQ(Wait1(&ev, &short_wait), 0);  // 5 < SO_RCVLOWAT
  ASSERT_EQ(uk_send(cli_, c, "67890", 5, 0), 5);
  ASSERT_EQ(Wait1(&ev), 1);
  EXPECT_EQ(ev.data, 10);
  // NOTE_LOWAT overrides the socket's mark.
  ASSERT_EQ(Change(Ev(a, EVFILT_READ, EV_ADD, NOTE_LOWAT, 12)), 0);
  EXPECT_EQ(Wait1(&ev, &kNoWait), 0);
  ASSERT_EQ(uk_send(cli_, c, "ab", 2, 0), 2);
  ASSERT_EQ(Wait1(&ev), 1);
  EXPECT_EQ(ev.data, 12);
}

TEST_F(KeventTest, WriteReportsSpaceAndWaitsForRoom) {
  int c, a;
  Pair(&c, &a);
  int sndbuf = 0;
  socklen_t len = sizeof sndbuf;
  ASSERT_EQ(uk_getsockopt(srv_, a, SOL_SOCKET, SO_SNDBUF, &sndbuf, &len), 0);
  ASSERT_EQ(Change(Ev(a, EVFILT_WRITE, EV_ADD)), 0);
  struct kevent ev;
  ASSERT_EQ(Wait1(&ev), 1);
  EXPECT_EQ(ev.filter, EVFILT_WRITE);
  EXPECT_EQ(ev.data, sndbuf);  // empty buffer: all of it
  // Fill a's send buffer (the client does not read) until EAGAIN.
  std::vector<char> chunk(4096, 'w');
  size_t sent = 0;
  for (;;) {
    ssize_t n = uk_send(srv_, a, chunk.data(), chunk.size(), MSG_DONTWAIT);
    if (n < 0) {
      ASSERT_EQ(errno, EAGAIN);
      break;
    }
    sent += n;
  }
  EXPECT_EQ(Wait1(&ev, &kNoWait), 0);  // below the send low water mark
  // The client drains everything; a blocked kevent sees the room.
  std::thread reader([&] {
    std::vector<char> buf(sent);
    EXPECT_EQ(uk_recv(cli_, c, buf.data(), sent, MSG_WAITALL),
              static_cast<ssize_t>(sent));
  });
  ASSERT_EQ(Wait1(&ev), 1);
  EXPECT_EQ(ev.filter, EVFILT_WRITE);
  EXPECT_GT(ev.data, 0);
  reader.join();
}

TEST_F(KeventTest, EofWhenThePeerShutsDownOrCloses) {
  int c, a;
  Pair(&c, &a);
  ASSERT_EQ(Change(Ev(a, EVFILT_READ, EV_ADD)), 0);
  ASSERT_EQ(uk_send(cli_, c, "last", 4, 0), 4);
  ASSERT_EQ(uk_shutdown(cli_, c, SHUT_WR), 0);
  struct kevent ev;
  do {
    ASSERT_EQ(Wait1(&ev), 1);
  } while ((ev.flags & EV_EOF) == 0);
  EXPECT_EQ(ev.data, 4);  // the bytes before the FIN are still there
  EXPECT_EQ(ev.fflags, 0u);  // so_error
  // The client's own send side is shut: its EVFILT_WRITE says EV_EOF.
  int ckq = uk_kqueue(cli_);
  struct kevent ch = Ev(c, EVFILT_WRITE, EV_ADD);
  ASSERT_EQ(uk_kevent(cli_, ckq, &ch, 1, &ev, 1, &kLong), 1);
  EXPECT_NE(ev.flags & EV_EOF, 0);
  // A close of the other connection's peer reports EOF the same way.
  int c2, a2;
  Pair(&c2, &a2);
  ASSERT_EQ(Change(Ev(a2, EVFILT_READ, EV_ADD)), 0);
  ASSERT_EQ(uk_close(cli_, c2), 0);
  for (;;) {
    ASSERT_EQ(Wait1(&ev), 1);
    if (ev.ident == static_cast<uintptr_t>(a2) && (ev.flags & EV_EOF)) break;
  }
  EXPECT_EQ(ev.data, 0);
}

TEST_F(KeventTest, ListeningSocketReportsCompletedConnections) {
  uint16_t port;
  int l = Listen(&port);
  ASSERT_EQ(Change(Ev(l, EVFILT_READ, EV_ADD)), 0);
  struct kevent ev;
  EXPECT_EQ(Wait1(&ev, &kNoWait), 0);
  int c1 = Connect(port);
  int c2 = Connect(port);
  ASSERT_GE(c1, 0);
  ASSERT_GE(c2, 0);
  do {
    ASSERT_EQ(Wait1(&ev), 1);
    EXPECT_EQ(ev.ident, static_cast<uintptr_t>(l));
  } while (ev.data < 2);
  EXPECT_EQ(ev.data, 2);
  ASSERT_GE(uk_accept(srv_, l, nullptr, nullptr), 0);
  ASSERT_EQ(Wait1(&ev), 1);  // level-triggered: one still waits
  EXPECT_EQ(ev.data, 1);
  ASSERT_GE(uk_accept(srv_, l, nullptr, nullptr), 0);
  EXPECT_EQ(Wait1(&ev, &kNoWait), 0);
  // A listener is never writable.
  ASSERT_EQ(Change(Ev(l, EVFILT_WRITE, EV_ADD)), 0);
  EXPECT_EQ(Wait1(&ev, &kNoWait), 0);
}

TEST_F(KeventTest, ReadAddedBeforeListenFollowsTheListenQueue) {
  int l = uk_socket(srv_, AF_INET, SOCK_STREAM, 0);
  sockaddr_in sin = ktls_test::Loopback(0);
  ASSERT_EQ(uk_bind(srv_, l, reinterpret_cast<sockaddr*>(&sin), sizeof sin), 0);
  ASSERT_EQ(Change(Ev(l, EVFILT_READ, EV_ADD)), 0);
  ASSERT_EQ(uk_listen(srv_, l, 4), 0);
  socklen_t len = sizeof sin;
  uk_getsockname(srv_, l, reinterpret_cast<sockaddr*>(&sin), &len);
  ASSERT_GE(Connect(ntohs(sin.sin_port)), 0);
  struct kevent ev;
  ASSERT_EQ(Wait1(&ev), 1);
  EXPECT_EQ(ev.ident, static_cast<uintptr_t>(l));
  EXPECT_EQ(ev.data, 1);
  ASSERT_EQ(Change(Ev(l, EVFILT_READ, EV_DELETE)), 0);
}

TEST_F(KeventTest, LevelClearOneshotAndDispatch) {
  int c[4], a[4];
  for (int i = 0; i < 4; i++) Pair(&c[i], &a[i]);
  struct kevent ev;
  auto send_and_wait = [&](int i, const char* what, int64_t total) {
    ASSERT_EQ(uk_send(cli_, c[i], what, strlen(what), 0),
              static_cast<ssize_t>(strlen(what)));
    do {
      ASSERT_EQ(Wait1(&ev), 1);
      ASSERT_EQ(ev.ident, static_cast<uintptr_t>(a[i]));
    } while (ev.data < total);
  };

  // Level-triggered: reported on every call while data waits.
  ASSERT_EQ(Change(Ev(a[0], EVFILT_READ, EV_ADD)), 0);
  send_and_wait(0, "level", 5);
  ASSERT_EQ(Wait1(&ev, &kNoWait), 1);
  EXPECT_EQ(ev.data, 5);
  ASSERT_EQ(Wait1(&ev, &kNoWait), 1);
  ASSERT_EQ(Change(Ev(a[0], EVFILT_READ, EV_DELETE)), 0);

  // EV_CLEAR: once per activation, not again until new data arrives.
  ASSERT_EQ(Change(Ev(a[1], EVFILT_READ, EV_ADD | EV_CLEAR)), 0);
  send_and_wait(1, "edge", 4);
  EXPECT_NE(ev.flags & EV_CLEAR, 0);
  EXPECT_EQ(Wait1(&ev, &kNoWait), 0);
  send_and_wait(1, "more", 8);
  EXPECT_EQ(ev.data, 8);
  EXPECT_EQ(Wait1(&ev, &kNoWait), 0);

  // EV_ONESHOT: reported once, then gone.
  ASSERT_EQ(Change(Ev(a[2], EVFILT_READ, EV_ADD | EV_ONESHOT)), 0);
  send_and_wait(2, "once", 4);
  EXPECT_EQ(Wait1(&ev, &kNoWait), 0);
  ASSERT_EQ(uk_send(cli_, c[2], "again", 5, 0), 5);
  const timespec short_wait{0, 100 * 1000 * 1000};
  EXPECT_EQ(Wait1(&ev, &short_wait), 0);
  EXPECT_EQ(Change(Ev(a[2], EVFILT_READ, EV_DELETE)), -1);
  EXPECT_EQ(errno, ENOENT);

  // EV_DISPATCH: disabled after the report until EV_ENABLE.
  ASSERT_EQ(Change(Ev(a[3], EVFILT_READ, EV_ADD | EV_DISPATCH)), 0);
  send_and_wait(3, "one", 3);
  EXPECT_EQ(Wait1(&ev, &kNoWait), 0);
  ASSERT_EQ(uk_send(cli_, c[3], "two", 3, 0), 3);
  EXPECT_EQ(Wait1(&ev, &short_wait), 0);
  ASSERT_EQ(Change(Ev(a[3], EVFILT_READ, EV_ENABLE)), 0);
  ASSERT_EQ(Wait1(&ev), 1);
  EXPECT_EQ(ev.ident, static_cast<uintptr_t>(a[3]));
  EXPECT_EQ(ev.data, 6);
  EXPECT_EQ(Wait1(&ev, &kNoWait), 0);

  // EV_DISABLE keeps the knote but stops reports.
  ASSERT_EQ(Change(Ev(a[3], EVFILT_READ, EV_DISABLE)), 0);
  ASSERT_EQ(uk_send(cli_, c[3], "3", 1, 0), 1);
  EXPECT_EQ(Wait1(&ev, &short_wait), 0);
  ASSERT_EQ(Change(Ev(a[3], EVFILT_READ, EV_ENABLE)), 0);
  ASSERT_EQ(Wait1(&ev), 1);
  EXPECT_EQ(ev.data, 7);
}

TEST_F(KeventTest, DeleteThenEnoent) {
  int c, a;
  Pair(&c, &a);
  ASSERT_EQ(Change(Ev(a, EVFILT_READ, EV_ADD)), 0);
  ASSERT_EQ(Change(Ev(a, EVFILT_READ, EV_DELETE)), 0);
  EXPECT_EQ(Change(Ev(a, EVFILT_READ, EV_DELETE)), -1);
  EXPECT_EQ(errno, ENOENT);
  EXPECT_EQ(Change(Ev(a, EVFILT_WRITE, EV_ENABLE)), -1);
  EXPECT_EQ(errno, ENOENT);
  EXPECT_EQ(Change(Ev(a, EVFILT_WRITE, EV_DISABLE)), -1);
  EXPECT_EQ(errno, ENOENT);
  // Deleted: data arriving is not reported.
  ASSERT_EQ(uk_send(cli_, c, "x", 1, 0), 1);
  struct kevent ev;
  const timespec short_wait{0, 100 * 1000 * 1000};
  EXPECT_EQ(Wait1(&ev, &short_wait), 0);
}

TEST_F(KeventTest, FailedChangeIsEvErrorWhenThereIsRoomElseMinusOne) {
  int c, a;
  Pair(&c, &a);
  ASSERT_EQ(uk_send(cli_, c, "data", 4, 0), 4);
  struct kevent ch[3] = {Ev(a, EVFILT_READ, EV_ADD),
                         Ev(999, EVFILT_READ, EV_ADD),  // not open
                         Ev(a, EVFILT_WRITE, EV_DELETE)};  // no knote
  struct kevent out[4];
  // Room: the failures come back as EV_ERROR events (and processing goes
  // on), and the call returns them instead of scanning.
  ASSERT_EQ(uk_kevent(srv_, kq_, ch, 3, out, 4, &kLong), 2);
  EXPECT_EQ(out[0].ident, 999u);
  EXPECT_EQ(out[0].flags, EV_ERROR);
  EXPECT_EQ(out[0].data, EBADF);
  EXPECT_EQ(out[1].ident, static_cast<uintptr_t>(a));
  EXPECT_EQ(out[1].filter, EVFILT_WRITE);
  EXPECT_EQ(out[1].flags, EV_ERROR);
  EXPECT_EQ(out[1].data, ENOENT);
  // The good change was applied.
  ASSERT_EQ(Wait1(&out[0]), 1);
  EXPECT_EQ(out[0].ident, static_cast<uintptr_t>(a));
  // No room: -1 with the errno of the change.
  EXPECT_EQ(uk_kevent(srv_, kq_, &ch[1], 1, nullptr, 0, nullptr), -1);
  EXPECT_EQ(errno, EBADF);
  EXPECT_EQ(uk_kevent(srv_, kq_, &ch[2], 1, nullptr, 0, nullptr), -1);
  EXPECT_EQ(errno, ENOENT);
  // EV_RECEIPT: every change is answered, successes with data 0.
  struct kevent r[2] = {Ev(a, EVFILT_WRITE, EV_ADD | EV_RECEIPT),
                        Ev(a, EVFILT_READ, EV_DELETE | EV_RECEIPT)};
  ASSERT_EQ(uk_kevent(srv_, kq_, r, 2, out, 2, &kNoWait), 2);
  EXPECT_EQ(out[0].flags, EV_ERROR);
  EXPECT_EQ(out[0].data, 0);
  EXPECT_EQ(out[0].filter, EVFILT_WRITE);
  EXPECT_EQ(out[1].flags, EV_ERROR);
  EXPECT_EQ(out[1].data, 0);
  EXPECT_EQ(out[1].filter, EVFILT_READ);
  // A receipt with no room left ends the call: 0, the receipts already
  // written not counted, the changes after it not made (FreeBSD's
  // kern_kevent_generic).
  struct kevent r3[3] = {Ev(a, EVFILT_READ, EV_ADD | EV_RECEIPT),
                         Ev(a, EVFILT_WRITE, EV_DELETE | EV_RECEIPT),
                         Ev(a, EVFILT_WRITE, EV_ADD)};
  ASSERT_EQ(uk_kevent(srv_, kq_, r3, 3, out, 1, &kNoWait), 0);
  EXPECT_EQ(out[0].flags, EV_ERROR);
  EXPECT_EQ(out[0].filter, EVFILT_READ);
  EXPECT_EQ(out[0].data, 0);
  EXPECT_EQ(Change(Ev(a, EVFILT_WRITE, EV_DELETE)), -1) << "the third change ran";
  EXPECT_EQ(errno, ENOENT);
}

// EV_FORCEONESHOT on an existing knote: made oneshot and reported by the
// next scan even though its filter is false, then gone; on a disabled
// knote only once enabled; as part of EV_ADD of a new knote it does
// nothing more than EV_ADD (FreeBSD's kqueue_register).
TEST_F(KeventTest, ForceOneshotReportsOnceEvenWhenNotReady) {
  int c, a;
  Pair(&c, &a);
  struct kevent ev;
  ASSERT_EQ(Change(Ev(a, EVFILT_READ, EV_ADD | EV_FORCEONESHOT)), 0);
  EXPECT_EQ(Wait1(&ev, &kNoWait), 0) << "nothing to read, a new knote";
  ASSERT_EQ(Change(Ev(a, EVFILT_READ, EV_FORCEONESHOT)), 0);
  ASSERT_EQ(Wait1(&ev, &kNoWait), 1);
  EXPECT_EQ(ev.ident, static_cast<uintptr_t>(a));
  EXPECT_EQ(ev.filter, EVFILT_READ);
  EXPECT_NE(ev.flags & EV_ONESHOT, 0);
  EXPECT_EQ(ev.data, 0);
  EXPECT_EQ(Wait1(&ev, &kNoWait), 0);
  EXPECT_EQ(Change(Ev(a, EVFILT_READ, EV_DELETE)), -1) << "oneshot: gone";
  EXPECT_EQ(errno, ENOENT);
  // With data waiting, the report carries it.
  ASSERT_EQ(Change(Ev(a, EVFILT_READ, EV_ADD | EV_CLEAR)), 0);
  ASSERT_EQ(uk_send(cli_, c, "abc", 3, 0), 3);
  ASSERT_EQ(Wait1(&ev), 1);
  EXPECT_EQ(Wait1(&ev, &kNoWait), 0) << "EV_CLEAR: reported";
  ASSERT_EQ(Change(Ev(a, EVFILT_READ, EV_FORCEONESHOT)), 0);
  ASSERT_EQ(Wait1(&ev, &kNoWait), 1);
  EXPECT_EQ(ev.data, 3);
  EXPECT_EQ(ev.flags & (EV_ONESHOT | EV_CLEAR), EV_ONESHOT | EV_CLEAR);
  // Disabled: held until EV_ENABLE.
  ASSERT_EQ(Change(Ev(a, EVFILT_WRITE, EV_ADD | EV_DISABLE)), 0);
  ASSERT_EQ(Change(Ev(a, EVFILT_WRITE, EV_FORCEONESHOT)), 0);
  EXPECT_EQ(Wait1(&ev, &kNoWait), 0);
  ASSERT_EQ(Change(Ev(a, EVFILT_WRITE, EV_ENABLE)), 0);
  ASSERT_EQ(Wait1(&ev, &kNoWait), 1);
  EXPECT_EQ(ev.filter, EVFILT_WRITE);
  EXPECT_EQ(Wait1(&ev, &kNoWait), 0);
}

TEST_F(KeventTest, ErrnosAsFreeBsd) {
  int c, a;
  Pair(&c, &a);
  struct kevent ev;
  struct kevent ch = Ev(a, EVFILT_READ, EV_ADD);
  // The kqueue descriptor: not open, or not a kqueue.
  EXPECT_EQ(uk_kevent(srv_, 777, &ch, 1, nullptr, 0, nullptr), -1);
  EXPECT_EQ(errno, EBADF);
  EXPECT_EQ(uk_kevent(srv_, a, &ch, 1, nullptr, 0, nullptr), -1);
  EXPECT_EQ(errno, EBADF);
  // Negative counts.
  EXPECT_EQ(uk_kevent(srv_, kq_, &ch, -1, nullptr, 0, nullptr), -1);
  EXPECT_EQ(errno, EINVAL);
  EXPECT_EQ(uk_kevent(srv_, kq_, nullptr, 0, &ev, -1, nullptr), -1);
  EXPECT_EQ(errno, EINVAL);
  // A bad timespec.
  for (timespec bad : {timespec{0, 1000000000}, timespec{-1, 0}, timespec{0, -1}}) {
    EXPECT_EQ(uk_kevent(srv_, kq_, nullptr, 0, &ev, 1, &bad), -1);
    EXPECT_EQ(errno, EINVAL);
  }
  // An ident that is not an open descriptor.
  EXPECT_EQ(Change(Ev(12345, EVFILT_READ, EV_ADD)), -1);
  EXPECT_EQ(errno, EBADF);
  EXPECT_EQ(Change(Ev(static_cast<uintptr_t>(-1), EVFILT_READ, EV_ADD)), -1);
  EXPECT_EQ(errno, EBADF);
  // Unknown (or unsupported) filters.
  EXPECT_EQ(Change(Ev(a, -7 /* EVFILT_TIMER */, EV_ADD)), -1);
  EXPECT_EQ(errno, EINVAL);
  EXPECT_EQ(Change(Ev(a, 42, EV_ADD)), -1);
  EXPECT_EQ(errno, EINVAL);
  // Files that are not sockets have no filters (badfo_kqfilter).
  int f = uk_open(srv_, "/kq.txt", O_RDWR | O_CREAT, 0644);
  ASSERT_GE(f, 0);
  EXPECT_EQ(Change(Ev(f, EVFILT_READ, EV_ADD)), -1);
  EXPECT_EQ(errno, EINVAL);
  int kq2 = uk_kqueue(srv_);
  EXPECT_EQ(Change(Ev(kq2, EVFILT_READ, EV_ADD)), -1);
  EXPECT_EQ(errno, EINVAL);
  // A change with filter 0 is skipped, as FreeBSD.
  struct kevent zero = Ev(a, 0, EV_ADD);
  EXPECT_EQ(uk_kevent(srv_, kq_, &zero, 1, nullptr, 0, nullptr), 0);
  // A closed kqueue is a closed descriptor.
  ASSERT_EQ(uk_close(srv_, kq2), 0);
  EXPECT_EQ(uk_kevent(srv_, kq2, nullptr, 0, &ev, 1, &kNoWait), -1);
  EXPECT_EQ(errno, EBADF);
}

TEST_F(KeventTest, ClosingTheSocketRemovesItsKnotes) {
  uint16_t port;
  int l = Listen(&port, 16);
  int c1 = Connect(port);
  int a1 = uk_accept(srv_, l, nullptr, nullptr);
  ASSERT_GE(a1, 0);
  ASSERT_EQ(Change(Ev(a1, EVFILT_READ, EV_ADD, 0, 0, &port)), 0);
  ASSERT_EQ(Change(Ev(a1, EVFILT_WRITE, EV_ADD)), 0);
  ASSERT_EQ(uk_close(srv_, a1), 0);
  // The next socket gets the same descriptor number; it has data to read,
  // but no knote names it.
  int c2 = Connect(port);
  int a2 = uk_accept(srv_, l, nullptr, nullptr);
  ASSERT_EQ(a2, a1);
  ASSERT_EQ(uk_send(cli_, c2, "new", 3, 0), 3);
  char buf[4];
  ASSERT_EQ(uk_recv(srv_, a2, buf, 1, MSG_PEEK | MSG_WAITALL), 1);
  struct kevent ev;
  EXPECT_EQ(Wait1(&ev, &kNoWait), 0);
  EXPECT_EQ(Change(Ev(a2, EVFILT_READ, EV_DELETE)), -1);
  EXPECT_EQ(errno, ENOENT);
  EXPECT_EQ(Change(Ev(a2, EVFILT_WRITE, EV_DELETE)), -1);
  EXPECT_EQ(errno, ENOENT);
  (void)c1;
}

TEST_F(KeventTest, TimeoutReturnsZero) {
  int c, a;
  Pair(&c, &a);
  ASSERT_EQ(Change(Ev(a, EVFILT_READ, EV_ADD)), 0);
  struct kevent ev;
  const timespec ts{0, 50 * 1000 * 1000};
  auto t0 = std::chrono::steady_clock::now();
  EXPECT_EQ(Wait1(&ev, &ts), 0);
  EXPECT_GE(std::chrono::steady_clock::now() - t0, std::chrono::milliseconds(50));
  EXPECT_EQ(Wait1(&ev, &kNoWait), 0);
  // No events asked for: returns at once, whatever the timeout.
  EXPECT_EQ(uk_kevent(srv_, kq_, nullptr, 0, nullptr, 0, nullptr), 0);
}

TEST_F(KeventTest, BlockedKeventIsWokenBySendFromAnotherThread) {
  int c, a;
  Pair(&c, &a);
  ASSERT_EQ(Change(Ev(a, EVFILT_READ, EV_ADD)), 0);
  std::atomic<bool> returned{false};
  struct kevent ev{};
  std::thread waiter([&] {
    EXPECT_EQ(uk_kevent(srv_, kq_, nullptr, 0, &ev, 1, nullptr), 1);  // forever
    returned = true;
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  EXPECT_FALSE(returned.load());
  ASSERT_EQ(uk_send(cli_, c, "wake", 4, 0), 4);
  waiter.join();
  EXPECT_EQ(ev.ident, static_cast<uintptr_t>(a));
  EXPECT_GT(ev.data, 0);
}

TEST_F(KeventTest, ClosingTheKqueueWakesItsSleepersWithEbadf) {
  int c, a;
  Pair(&c, &a);
  ASSERT_EQ(Change(Ev(a, EVFILT_READ, EV_ADD)), 0);
  std::thread waiter([&] {
    struct kevent ev;
    EXPECT_EQ(uk_kevent(srv_, kq_, nullptr, 0, &ev, 1, nullptr), -1);
    EXPECT_EQ(errno, EBADF);
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  ASSERT_EQ(uk_close(srv_, kq_), 0);
  waiter.join();
  // The socket lost its knote with the kqueue and still works.
  ASSERT_EQ(uk_send(cli_, c, "ok", 2, 0), 2);
  char buf[2];
  EXPECT_EQ(uk_recv(srv_, a, buf, 2, MSG_WAITALL), 2);
}

TEST_F(KeventTest, UdataAndExtRoundTrip) {
  int c, a;
  Pair(&c, &a);
  int cookie = 0;
  struct kevent ch = Ev(a, EVFILT_READ, EV_ADD, 0, 0, &cookie);
  ch.ext[0] = 0x1122334455667788ull;
  ch.ext[1] = 42;
  ASSERT_EQ(uk_kevent(srv_, kq_, &ch, 1, nullptr, 0, nullptr), 0);
  ASSERT_EQ(uk_send(cli_, c, "u", 1, 0), 1);
  struct kevent ev;
  ASSERT_EQ(Wait1(&ev), 1);
  EXPECT_EQ(ev.udata, &cookie);
  EXPECT_EQ(ev.ext[0], 0x1122334455667788ull);
  EXPECT_EQ(ev.ext[1], 42u);
  // A later change replaces udata, as FreeBSD, unless it says
  // EV_KEEPUDATA.
  int other = 0, ignored = 0;
  ASSERT_EQ(Change(Ev(a, EVFILT_READ, EV_ADD, 0, 0, &other)), 0);
  ASSERT_EQ(Wait1(&ev), 1);
  EXPECT_EQ(ev.udata, &other);
  ASSERT_EQ(Change(Ev(a, EVFILT_READ, EV_DISABLE | EV_KEEPUDATA, 0, 0, &ignored)), 0);
  ASSERT_EQ(Change(Ev(a, EVFILT_READ, EV_ENABLE | EV_KEEPUDATA, 0, 0, nullptr)), 0);
  ASSERT_EQ(Wait1(&ev), 1);
  EXPECT_EQ(ev.udata, &other);
  EXPECT_EQ(ev.flags & EV_KEEPUDATA, 0) << "an action, not reported";
}

TEST_F(KeventTest, PollOnTheKqueueSeesPendingEvents) {
  int c, a;
  Pair(&c, &a);
  ASSERT_EQ(Change(Ev(a, EVFILT_READ, EV_ADD)), 0);
  pollfd pfd{kq_, POLLIN, 0};
  EXPECT_EQ(uk_poll(srv_, &pfd, 1, 0), 0);
  std::thread sender([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    EXPECT_EQ(uk_send(cli_, c, "p", 1, 0), 1);
  });
  EXPECT_EQ(uk_poll(srv_, &pfd, 1, 10000), 1);
  EXPECT_NE(pfd.revents & POLLIN, 0);
  sender.join();
}

// Knote lifetime: activations from a sender, EV_ADD/EV_DELETE churn (with
// EV_ONESHOT and EV_DISPATCH knotes leaving on their own), a scanner, and
// descriptor and kqueue closes, all at once. Run under ASan and TSan.
TEST_F(KeventTest, ConcurrentActivationDeleteAndCloseAreSafe) {
  constexpr int kPairs = 16;
  int c[kPairs], a[kPairs];
  for (int i = 0; i < kPairs; i++) {
    Pair(&c[i], &a[i]);
    ASSERT_EQ(uk_fcntl(srv_, a[i], F_SETFL, O_NONBLOCK), 0);
  }
  std::atomic<bool> stop{false};
  std::atomic<bool> kq_gone{false};
  std::thread sender([&] {
    while (!stop) {
      for (int i = 0; i < kPairs; i++) uk_send(cli_, c[i], "s", 1, MSG_DONTWAIT);
      std::this_thread::yield();
    }
  });
  std::thread churn([&] {
    const unsigned short modes[] = {0, EV_CLEAR, EV_ONESHOT, EV_DISPATCH};
    for (unsigned n = 0; !kq_gone; n++) {
      int i = n % kPairs;
      short filter = (n / kPairs) % 2 ? EVFILT_WRITE : EVFILT_READ;
      struct kevent ch = Ev(a[i], filter, EV_ADD | modes[n % 4]);
      if (uk_kevent(srv_, kq_, &ch, 1, nullptr, 0, nullptr) != 0) {
        // The kqueue or the socket went away under us.
        ASSERT_EQ(errno, EBADF);
        continue;
      }
      if (n % 3 == 0) {
        ch = Ev(a[i], filter, EV_DELETE);
        if (uk_kevent(srv_, kq_, &ch, 1, nullptr, 0, nullptr) != 0) {
          ASSERT_TRUE(errno == ENOENT || errno == EBADF) << errno;
        }
      } else if (n % 3 == 1) {
        ch = Ev(a[i], filter, EV_ENABLE);
        if (uk_kevent(srv_, kq_, &ch, 1, nullptr, 0, nullptr) != 0) {
          ASSERT_TRUE(errno == ENOENT || errno == EBADF) << errno;
        }
      }
    }
  });
  std::thread scanner([&] {
    struct kevent evs[8];
    const timespec ts{0, 1000 * 1000};
    char buf[256];
    for (;;) {
      int n = uk_kevent(srv_, kq_, nullptr, 0, evs, 8, &ts);
      if (n < 0) {
        EXPECT_EQ(errno, EBADF);
        return;
      }
      for (int e = 0; e < n; e++) {
        bool known = false;
        for (int i = 0; i < kPairs; i++)
          known |= evs[e].ident == static_cast<uintptr_t>(a[i]);
        EXPECT_TRUE(known);
        if (evs[e].filter == EVFILT_READ)
          uk_recv(srv_, static_cast<int>(evs[e].ident), buf, sizeof buf, MSG_DONTWAIT);
      }
    }
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(150));
  // Half the sockets close while their knotes are being used.
  for (int i = 0; i < kPairs; i += 2) ASSERT_EQ(uk_close(srv_, a[i]), 0);
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  ASSERT_EQ(uk_close(srv_, kq_), 0);
  kq_gone = true;
  scanner.join();
  churn.join();
  stop = true;
  sender.join();
}

// 1,024 connections: a sender thread writes to every client socket as its
// EVFILT_WRITE allows, a reader thread reads every server socket as its
// EVFILT_READ reports, and every byte is checked against its position.
TEST_F(KeventTest, StressThousandConnectionsThroughKevent) {
  constexpr int kConns = 1024;
  constexpr size_t kBytes = 32768;  // per connection
  auto pattern = [](int i, size_t off) {
    return static_cast<uint8_t>(i * 131 + off * 7 + (off >> 8));
  };
  uint16_t port;
  int l = Listen(&port, kConns);
  std::vector<int> cs(kConns), as(kConns);
  for (int i = 0; i < kConns; i++) {
    cs[i] = Connect(port);
    ASSERT_GE(cs[i], 0);
    as[i] = uk_accept(srv_, l, nullptr, nullptr);
    ASSERT_GE(as[i], 0);
    // Buffers smaller than a connection's bytes, so the sender really
    // waits for EVFILT_WRITE and the reader for EVFILT_READ.
    int sz = 8192;
    ASSERT_EQ(uk_setsockopt(cli_, cs[i], SOL_SOCKET, SO_SNDBUF, &sz, sizeof sz), 0);
    ASSERT_EQ(uk_setsockopt(srv_, as[i], SOL_SOCKET, SO_RCVBUF, &sz, sizeof sz), 0);
    ASSERT_EQ(uk_fcntl(cli_, cs[i], F_SETFL, O_NONBLOCK), 0);
    ASSERT_EQ(uk_fcntl(srv_, as[i], F_SETFL, O_NONBLOCK), 0);
  }
  int ckq = uk_kqueue(cli_);
  ASSERT_GE(ckq, 0);
  {
    std::vector<struct kevent> ch;
    for (int i = 0; i < kConns; i++)
      ch.push_back(Ev(as[i], EVFILT_READ, EV_ADD, 0, 0,
                      reinterpret_cast<void*>(static_cast<intptr_t>(i))));
    ASSERT_EQ(uk_kevent(srv_, kq_, ch.data(), kConns, nullptr, 0, nullptr), 0);
    ch.clear();
    for (int i = 0; i < kConns; i++)
      ch.push_back(Ev(cs[i], EVFILT_WRITE, EV_ADD, 0, 0,
                      reinterpret_cast<void*>(static_cast<intptr_t>(i))));
    ASSERT_EQ(uk_kevent(cli_, ckq, ch.data(), kConns, nullptr, 0, nullptr), 0);
  }
  std::atomic<bool> failed{false};
  std::thread sender([&] {
    std::vector<size_t> off(kConns, 0);
    int done = 0;
    std::vector<struct kevent> evs(64);
    std::vector<uint8_t> buf(kBytes);
    while (done < kConns && !failed) {
      int n = uk_kevent(cli_, ckq, nullptr, 0, evs.data(), evs.size(), &kLong);
      if (n <= 0) {
        ADD_FAILURE() << "sender kevent " << n << " errno " << errno;
        failed = true;
        return;
      }
      for (int e = 0; e < n; e++) {
        int i = static_cast<int>(reinterpret_cast<intptr_t>(evs[e].udata));
        if (off[i] == kBytes) continue;
        // Up to 3 KB per turn, so each connection takes several.
        size_t want = std::min<size_t>({kBytes - off[i], 3000,
                                        static_cast<size_t>(evs[e].data)});
        for (size_t k = 0; k < want; k++) buf[k] = pattern(i, off[i] + k);
        ssize_t s = uk_send(cli_, cs[i], buf.data(), want, 0);
        if (s < 0) {
          if (errno == EAGAIN) continue;
          ADD_FAILURE() << "send " << errno;
          failed = true;
          return;
        }
        off[i] += s;
        if (off[i] == kBytes) {
          done++;
          struct kevent del = Ev(cs[i], EVFILT_WRITE, EV_DELETE);
          EXPECT_EQ(uk_kevent(cli_, ckq, &del, 1, nullptr, 0, nullptr), 0);
        }
      }
    }
  });
  std::thread reader([&] {
    std::vector<size_t> got(kConns, 0);
    int done = 0;
    std::vector<struct kevent> evs(64);
    std::vector<uint8_t> buf(kBytes);
    while (done < kConns && !failed) {
      int n = uk_kevent(srv_, kq_, nullptr, 0, evs.data(), evs.size(), &kLong);
      if (n <= 0) {
        ADD_FAILURE() << "reader kevent " << n << " errno " << errno;
        failed = true;
        return;
      }
      for (int e = 0; e < n; e++) {
        int i = static_cast<int>(reinterpret_cast<intptr_t>(evs[e].udata));
        if (evs[e].ident != static_cast<uintptr_t>(as[i])) {
          ADD_FAILURE() << "udata/ident mismatch";
          failed = true;
          return;
        }
        ssize_t r = uk_recv(srv_, as[i], buf.data(), buf.size(), 0);
        if (r < 0) {
          if (errno == EAGAIN) continue;
          ADD_FAILURE() << "recv " << errno;
          failed = true;
          return;
        }
        for (ssize_t k = 0; k < r; k++) {
          if (buf[k] != pattern(i, got[i] + k)) {
            ADD_FAILURE() << "conn " << i << " byte " << got[i] + k;
            failed = true;
            return;
          }
        }
        got[i] += r;
        if (got[i] > kBytes) {
          ADD_FAILURE() << "conn " << i << " got too much";
          failed = true;
          return;
        }
        if (got[i] == kBytes) {
          done++;
          struct kevent del = Ev(as[i], EVFILT_READ, EV_DELETE);
          EXPECT_EQ(uk_kevent(srv_, kq_, &del, 1, nullptr, 0, nullptr), 0);
        }
      }
    }
    EXPECT_EQ(done, kConns);
  });
  sender.join();
  reader.join();
  EXPECT_FALSE(failed.load());
  // Everything delivered: nothing is left to report.
  struct kevent ev;
  EXPECT_EQ(Wait1(&ev, &kNoWait), 0);
}

// listen(2) on a socket while other threads poll it, register a kevent on
// it and ask SO_ACCEPTCONN: the listen queue is published once, so every
// reader sees either no queue or the whole one (TSan checks the publication),
// and a client connecting afterwards is reported by both poll and kevent.
TEST_F(KeventTest, ListenRacingWithPollAndKevent) {
  for (int round = 0; round < 20; round++) {
    int s = uk_socket(srv_, AF_INET, SOCK_STREAM, 0);
    ASSERT_GE(s, 0);
    sockaddr_in sin = ktls_test::Loopback(0);
    ASSERT_EQ(uk_bind(srv_, s, reinterpret_cast<sockaddr*>(&sin), sizeof sin), 0);
    std::atomic<bool> go{false}, listened{false};
    std::thread lis([&] {
      while (!go.load()) {
      }
      EXPECT_EQ(uk_listen(srv_, s, 8), 0);
      listened.store(true);
    });
    std::thread readers([&] {
      go.store(true);
      for (int i = 0; i < 200 && !listened.load(); i++) {
        pollfd pf{s, POLLIN, 0};
        uk_poll(srv_, &pf, 1, 0);
        int v = -1;
        socklen_t len = sizeof v;
        uk_getsockopt(srv_, s, SOL_SOCKET, SO_ACCEPTCONN, &v, &len);
        EXPECT_TRUE(v == 0 || v == 1);
      }
    });
    lis.join();
    readers.join();
    struct kevent ch = Ev(s, EVFILT_READ, EV_ADD);
    ASSERT_EQ(uk_kevent(srv_, kq_, &ch, 1, nullptr, 0, nullptr), 0);
    socklen_t len = sizeof sin;
    ASSERT_EQ(uk_getsockname(srv_, s, reinterpret_cast<sockaddr*>(&sin), &len), 0);
    int c = Connect(ntohs(sin.sin_port));
    struct kevent ev;
    ASSERT_EQ(Wait1(&ev, &kLong), 1);
    EXPECT_EQ(ev.ident, static_cast<uintptr_t>(s));
    pollfd pf{s, POLLIN, 0};
    EXPECT_EQ(uk_poll(srv_, &pf, 1, 0), 1);
    int a = uk_accept(srv_, s, nullptr, nullptr);
    EXPECT_GE(a, 0);
    uk_close(srv_, a);
    uk_close(cli_, c);
    uk_close(srv_, s);
  }
}

}  // namespace
