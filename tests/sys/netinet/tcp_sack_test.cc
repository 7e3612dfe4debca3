// TCP loss recovery between two kernels over a simulated wire: SACK
// negotiation (and its refusal when either end sets
// net.inet.tcp.sack.enable=0), recovery from chosen losses in one window
// (SACK scoreboard; NewReno partial ACKs), and byte-exact transfers over a
// wire with 1% loss and 1% reordering that recover by fast retransmit, not
// by the retransmit timer. Assertions are on counters, never on timings.
//
// UKTLS_TCP_SACK_MB sets the size of the lossy transfers (default 4).
#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/evp.h>

#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "lib/libuk/uk.h"
#include "sys/dev/nic_sim/nic_sim.h"
#include "sys/kern/kern_proc.h"
#include "sys/kern/kernel.h"
#include "sys/netinet/tcp_var.h"
#include "sys/sys/lock.h"
#include "tests/sys/dev/nic_sim/lab.h"

namespace {

using uk::lab::Conn;
using uk::lab::Node;
using uk::lab::sha256;

void set(Node& n, const char* name, int v) {
  ASSERT_EQ(uk_sysctlbyname(n.p, name, nullptr, nullptr, &v, sizeof v), 0) << name;
}

// t_flags of n's connection to/from `port`.
uint32_t tflags(Node& n, uint16_t port) {
  for (const uk::xinpcb& x : uk::tcp_pcblist(n.kern()))
    if (x.t_state == uk::TCPS_ESTABLISHED &&
        (x.local.sin_port == htons(port) || x.foreign.sin_port == htons(port)))
      return x.t_flags;
  ADD_FAILURE() << "no established connection on port " << port;
  return 0;
}

// Two kernels, 10.0.0.1 (a) and 10.0.0.2 (b), one wire.
struct Two : uk::lab::Pair {
  explicit Two(const char* wire) : Pair(wire, {.ncpus = 1, .modules = ""}) {}
  ~Two() { wire()->set_drop_filter(0, nullptr); }
};

// A connection a -> b (a stall becomes a failure, not a hang).
Conn connect(Two& t, uint16_t port) {
  return uk::lab::connect_pair(t.a, t.b, "10.0.0.2", port);
}

void close_all(Two& t, Conn& k) { uk::lab::close_conn(t.a, t.b, k); }

// Sends `bytes` of seeded data a -> b and checks that b read exactly them.
void transfer(Two& t, Conn& k, size_t bytes) {
  std::vector<uint8_t> data(bytes);
  std::mt19937_64 rng(bytes);
  for (auto& x : data) x = static_cast<uint8_t>(rng());
  std::thread sender([&] {
    size_t off = 0;
    while (off < data.size()) {
      ssize_t n = uk_send(t.a.p, k.c, data.data() + off,
                          std::min<size_t>(64 * 1024, data.size() - off), 0);
      if (n <= 0) break;
      off += n;
    }
    uk_shutdown(t.a.p, k.c, SHUT_WR);
  });
  std::vector<uint8_t> got;
  got.reserve(bytes);
  std::vector<uint8_t> buf(128 * 1024);
  for (;;) {
    ssize_t n = uk_recv(t.b.p, k.s, buf.data(), buf.size(), 0);
    if (n <= 0) {
      if (n < 0) ADD_FAILURE() << "recv: " << strerror(errno) << " after " << got.size();
      break;
    }
    got.insert(got.end(), buf.begin(), buf.begin() + n);
  }
  sender.join();
  ASSERT_EQ(got.size(), bytes);
  EXPECT_EQ(sha256(got.data(), got.size()), sha256(data.data(), data.size()));
}

// Drops the first transmission of the data segments a -> b that carry the
// given stream offsets (bytes after the SYN); retransmissions pass.
class SegmentDropper {
 public:
  explicit SegmentDropper(std::vector<uint32_t> offsets)
      : want_(offsets.begin(), offsets.end()) {}
  // The wire's filter: parses Ethernet/IPv4/TCP.
  bool operator()(const uint8_t* f, size_t len) {
    if (len < 14 + 20 + 20 || f[12] != 0x08 || f[13] != 0x00) return false;
    const uint8_t* ip = f + 14;
    if (ip[9] != IPPROTO_TCP) return false;
    int ihl = (ip[0] & 15) * 4;
    int ip_len = ip[2] << 8 | ip[3];
    const uint8_t* th = ip + ihl;
    int thl = (th[12] >> 4) * 4;
    uint32_t seq = static_cast<uint32_t>(th[4]) << 24 | th[5] << 16 | th[6] << 8 | th[7];
    uk::MutexLock l(&mu_);
    if (th[13] & 0x02) {  // SYN: the stream starts after it
      isn_ = seq;
      have_isn_ = true;
      return false;
    }
    int payload = ip_len - ihl - thl;
    if (!have_isn_ || payload <= 0) return false;
    uint32_t start = seq - isn_ - 1;
    for (auto it = want_.begin(); it != want_.end(); ++it) {
      if (*it - start < static_cast<uint32_t>(payload)) {
        want_.erase(it);
        dropped_++;
        return true;
      }
    }
    return false;
  }
  int dropped() {
    uk::MutexLock l(&mu_);
    return dropped_;
  }

 private:
  uk::Mutex mu_;
  std::set<uint32_t> want_ ABSL_GUARDED_BY(mu_);
  uint32_t isn_ ABSL_GUARDED_BY(mu_) = 0;
  bool have_isn_ ABSL_GUARDED_BY(mu_) = false;
  int dropped_ ABSL_GUARDED_BY(mu_) = 0;
};

size_t lossy_size() {
  const char* e = getenv("UKTLS_TCP_SACK_MB");
  size_t mb = e ? strtoul(e, nullptr, 10) : 4;
  return (mb ? mb : 4) << 20;
}

TEST(TcpSack, NegotiatedWhenBothEndsEnableIt) {
  Two t("bw=1g delay=50us");
  Conn k = connect(t, 6001);
  EXPECT_NE(tflags(t.a, 6001) & uk::TF_SACK_PERMIT, 0u);
  EXPECT_NE(tflags(t.b, 6001) & uk::TF_SACK_PERMIT, 0u);
  close_all(t, k);
}

// sack.enable=0 on either end: neither uses SACK, and recovery is NewReno.
class TcpSackDisabled : public ::testing::TestWithParam<bool> {};

TEST_P(TcpSackDisabled, NotNegotiatedAndRecoveryIsNewReno) {
  const bool on_client = GetParam();
  Two t("bw=1g delay=200us");
  set(on_client ? t.a : t.b, "net.inet.tcp.sack.enable", 0);
  auto drop = std::make_shared<SegmentDropper>(std::vector<uint32_t>{60 * 1460});
  t.wire()->set_drop_filter(0, [drop](const uint8_t* f, size_t n) { return (*drop)(f, n); });
  Conn k = connect(t, 6002);
  EXPECT_EQ(tflags(t.a, 6002) & uk::TF_SACK_PERMIT, 0u);
  EXPECT_EQ(tflags(t.b, 6002) & uk::TF_SACK_PERMIT, 0u);
  transfer(t, k, 1 << 20);
  EXPECT_EQ(drop->dropped(), 1);
  EXPECT_EQ(t.b.stat("net.inet.tcp.stats.sack_send_blocks"), 0u);
  EXPECT_EQ(t.a.stat("net.inet.tcp.stats.sack_rcv_blocks"), 0u);
  EXPECT_EQ(t.a.stat("net.inet.tcp.stats.sack_recovery_episode"), 0u);
  EXPECT_EQ(t.a.stat("net.inet.tcp.stats.fastrexmt"), 1u);
  EXPECT_EQ(t.a.stat("net.inet.tcp.stats.rexmttimeo"), 0u);
  close_all(t, k);
}

INSTANTIATE_TEST_SUITE_P(EitherEnd, TcpSackDisabled, ::testing::Bool(),
                         [](const auto& info) {
                           return info.param ? "OnClient" : "OnServer";
                         });

// Two segments of one window lost: one recovery episode retransmits both
// holes from the scoreboard; the retransmit timer never fires. The second
// loss is two segments after the first, so it was sent before the three
// duplicate ACKs (from the segments around it) start recovery, whatever the
// timing: it lies below snd_recover.
TEST(TcpSack, TwoLossesInOneWindowAreRepairedInOneEpisode) {
  Two t("bw=1g delay=200us");
  auto drop = std::make_shared<SegmentDropper>(
      std::vector<uint32_t>{60 * 1460, 62 * 1460});
  t.wire()->set_drop_filter(0, [drop](const uint8_t* f, size_t n) { return (*drop)(f, n); });
  Conn k = connect(t, 6003);
  transfer(t, k, 2 << 20);
  EXPECT_EQ(drop->dropped(), 2);
  EXPECT_GT(t.b.stat("net.inet.tcp.stats.sack_send_blocks"), 0u);
  EXPECT_GT(t.a.stat("net.inet.tcp.stats.sack_rcv_blocks"), 0u);
  EXPECT_EQ(t.a.stat("net.inet.tcp.stats.sack_recovery_episode"), 1u);
  EXPECT_EQ(t.a.stat("net.inet.tcp.stats.sack_rexmits"), 2u);
  EXPECT_EQ(t.a.stat("net.inet.tcp.stats.sndrexmitpack"), 2u);
  EXPECT_EQ(t.a.stat("net.inet.tcp.stats.rexmttimeo"), 0u);
  close_all(t, k);
}

// Without SACK the same two losses take NewReno's partial-ACK path (RFC
// 6582): the ACK for the first retransmission points at the second hole,
// which is resent at once, still in the same episode.
TEST(TcpNewReno, PartialAckRetransmitsTheNextHole) {
  Two t("bw=1g delay=200us");
  set(t.a, "net.inet.tcp.sack.enable", 0);
  auto drop = std::make_shared<SegmentDropper>(
      std::vector<uint32_t>{60 * 1460, 62 * 1460});
  t.wire()->set_drop_filter(0, [drop](const uint8_t* f, size_t n) { return (*drop)(f, n); });
  Conn k = connect(t, 6004);
  transfer(t, k, 2 << 20);
  EXPECT_EQ(drop->dropped(), 2);
  EXPECT_EQ(t.a.stat("net.inet.tcp.stats.fastrecovery"), 1u);
  EXPECT_EQ(t.a.stat("net.inet.tcp.stats.sndrexmitpack"), 2u);
  EXPECT_EQ(t.a.stat("net.inet.tcp.stats.rexmttimeo"), 0u);
  EXPECT_EQ(t.a.stat("net.inet.tcp.stats.sack_recovery_episode"), 0u);
  close_all(t, k);
}

// Reordering alone never looks like loss: one segment late gives one
// duplicate ACK, below the threshold of three.
TEST(TcpSack, ReorderingAloneCausesNoRetransmission) {
  Two t("bw=1g delay=100us reorder=0.01 seed=5");
  Conn k = connect(t, 6005);
  transfer(t, k, 2 << 20);
  EXPECT_GT(t.wire()->stats(0).reorders, 0u);
  EXPECT_GT(t.b.stat("net.inet.tcp.stats.rcvoopack"), 0u);
  EXPECT_EQ(t.a.stat("net.inet.tcp.stats.fastrexmt"), 0u);
  EXPECT_EQ(t.a.stat("net.inet.tcp.stats.sack_rexmits"), 0u);
  close_all(t, k);
}

// The hard wire: 1% loss and 1% reordering. Every byte arrives; losses are
// repaired by fast retransmit from the SACK scoreboard; the retransmit
// timer accounts for few of them.
void lossy(bool sack) {
  Two t("bw=1g delay=200us loss=0.01 reorder=0.01 seed=11");
  if (!sack) {
    set(t.a, "net.inet.tcp.sack.enable", 0);
    set(t.b, "net.inet.tcp.sack.enable", 0);
  }
  Conn k = connect(t, 6006);
  transfer(t, k, lossy_size());
  const uint64_t lost = t.wire()->stats(0).drops_loss;
  const uint64_t fast = t.a.stat("net.inet.tcp.stats.fastrexmt");
  const uint64_t rto = t.a.stat("net.inet.tcp.stats.rexmttimeo");
  const uint64_t rexmit = t.a.stat("net.inet.tcp.stats.sndrexmitpack");
  const uint64_t episodes = t.a.stat("net.inet.tcp.stats.sack_recovery_episode");
  const uint64_t sack_rexmits = t.a.stat("net.inet.tcp.stats.sack_rexmits");
  EXPECT_GT(lost, 10u);
  EXPECT_GT(fast, 0u);
  EXPECT_GE(rexmit, lost) << "every lost data segment is sent again";
  EXPECT_LE(rto, lost / 4 + 2) << "lost " << lost << ", fast retransmits " << fast;
  if (sack) {
    EXPECT_GT(episodes, 0u);
    EXPECT_GT(sack_rexmits, lost / 2);
  } else {
    EXPECT_EQ(episodes, 0u);
    EXPECT_EQ(sack_rexmits, 0u);
  }
  printf("%s: lost %llu rexmit %llu fast %llu sack episodes %llu sack rexmits "
         "%llu limited transmit %llu rto %llu\n",
         sack ? "sack" : "newreno", (unsigned long long)lost,
         (unsigned long long)rexmit, (unsigned long long)fast,
         (unsigned long long)episodes, (unsigned long long)sack_rexmits,
         (unsigned long long)t.a.stat("net.inet.tcp.stats.limitedxmit"),
         (unsigned long long)rto);
  close_all(t, k);
}

TEST(TcpSack, LossyReorderingWireIsRepairedByFastRetransmit) { lossy(true); }
TEST(TcpNewReno, LossyReorderingWireIsRepairedByFastRetransmit) { lossy(false); }

}  // namespace
