// The capture tap writes pcap files that tshark reads back frame by frame.
#include "sys/net/bpf.h"

#include <cerrno>
#include <thread>

#include "gtest/gtest.h"
#include "sys/net/if_ethersubr.h"
#include "tests/sys/net/frames.h"

namespace uk {
namespace {

using test::lines;
using test::tcp_frame;
using test::tshark;

std::string tmpfile(const char* name) {
  const char* d = getenv("TEST_TMPDIR");
  return std::string(d ? d : "/tmp") + "/" + name;
}

TEST(Bpf, PcapReadsBackWithTshark) {
  ASSERT_TRUE(test::have_tshark()) << "tshark is installed by tools/setup";
  bpf_if b;
  std::string path = tmpfile("cap.pcap");
  EXPECT_FALSE(bpf_peers_present(&b));
  ASSERT_EQ(b.start(path, {}), 0);
  EXPECT_TRUE(bpf_peers_present(&b));
  EXPECT_EQ(b.start(path, {}), EBUSY);
  test::TcpSpec s;
  s.src_mac = ether_gen_addr(1, "nic_sim0");
  s.dst_mac = ether_gen_addr(2, "nic_sim0");
  std::vector<uint8_t> payload(1000, 'x');
  for (int i = 0; i < 10; i++) {
    s.seq = 1000 + i * 100;
    auto f = tcp_frame(s, payload.data(), 100 * (i + 1) % 1001);
    bpf_tap(&b, f.data(), f.size());
  }
  EXPECT_EQ(b.packets(), 10u);
  ASSERT_EQ(b.stop(), 0);
  EXPECT_EQ(b.stop(), ENOENT);
  bpf_tap(&b, payload.data(), 60);  // not capturing: ignored

  std::string out = tshark(
      "-r " + path +
      " -o tcp.check_checksum:TRUE -o ip.check_checksum:TRUE -T fields"
      " -E separator=, -e frame.len -e eth.src -e ip.src -e tcp.srcport"
      " -e tcp.seq_raw -e ip.checksum.status -e tcp.checksum.status");
  // Wireshark checksum status: 1 = good, 0 = bad.
  auto l = lines(out);
  ASSERT_EQ(l.size(), 10u) << out;
  for (int i = 0; i < 10; i++) {
    int plen = 100 * (i + 1) % 1001;
    char want[256];
    snprintf(want, sizeof want, "%d,%s,10.0.0.1,40000,%d,1,1", 54 + plen,
             ether_sprintf(s.src_mac).c_str(), 1000 + i * 100);
    EXPECT_EQ(l[i], want) << i;
  }
}

TEST(Bpf, SnaplenCutsButKeepsOriginalLength) {
  bpf_if b;
  std::string path = tmpfile("snap.pcap");
  bpf_capture_opts o;
  o.snaplen = 64;
  ASSERT_EQ(b.start(path, o), 0);
  test::TcpSpec s;
  std::vector<uint8_t> payload(500, 'y');
  auto f = tcp_frame(s, payload.data(), payload.size());
  bpf_tap(&b, f.data(), f.size());
  ASSERT_EQ(b.stop(), 0);
  std::string out = tshark("-r " + path + " -T fields -E separator=, -e frame.len -e frame.cap_len");
  EXPECT_EQ(out, "554,64\n");
  o.snaplen = 10;
  EXPECT_EQ(b.start(path, o), EINVAL);
  EXPECT_EQ(b.start("/nonexistent-dir/x.pcap", {}), ENOENT);
}

// A sink capture hands each frame to a function (ukernd streams them),
// cut at snaplen with the original length; after stop() it is never
// called again, and a file capture cannot start meanwhile.
TEST(Bpf, SinkReceivesFramesUntilStopped) {
  bpf_if b;
  struct Seen {
    uint64_t ts;
    std::vector<uint8_t> bytes;
    size_t orig;
  };
  std::vector<Seen> seen;
  ASSERT_EQ(b.start_sink(
                [&](uint64_t ts, const uint8_t* f, size_t caplen, size_t orig) {
                  seen.push_back({ts, std::vector<uint8_t>(f, f + caplen), orig});
                },
                80),
            0);
  EXPECT_TRUE(bpf_peers_present(&b));
  EXPECT_EQ(b.start(tmpfile("busy.pcap"), {}), EBUSY);
  EXPECT_EQ(b.start_sink([](uint64_t, const uint8_t*, size_t, size_t) {}), EBUSY);
  test::TcpSpec s;
  std::vector<uint8_t> payload(300, 'z');
  auto small = tcp_frame(s, payload.data(), 10);
  auto big = tcp_frame(s, payload.data(), payload.size());
  bpf_tap(&b, small.data(), small.size(), 12345);
  // Two pieces, as a header built apart from its payload.
  const uint8_t* parts[2] = {big.data(), big.data() + 20};
  size_t lens[2] = {20, big.size() - 20};
  b.tap(parts, lens, 2, 777);
  ASSERT_EQ(seen.size(), 2u);
  EXPECT_EQ(seen[0].ts, 12345u);
  EXPECT_EQ(seen[0].bytes, small);
  EXPECT_EQ(seen[0].orig, small.size());
  EXPECT_EQ(seen[1].ts, 777u);
  EXPECT_EQ(seen[1].bytes, std::vector<uint8_t>(big.begin(), big.begin() + 80));
  EXPECT_EQ(seen[1].orig, big.size());
  EXPECT_EQ(b.packets(), 2u);
  ASSERT_EQ(b.stop(), 0);
  bpf_tap(&b, small.data(), small.size());
  EXPECT_EQ(seen.size(), 2u);
  EXPECT_EQ(b.stop(), ENOENT);
  EXPECT_EQ(b.start_sink(nullptr), EINVAL);
}

TEST(Bpf, NanosecondTimestamps) {
  bpf_if b;
  std::string path = tmpfile("ns.pcap");
  bpf_capture_opts o;
  o.nanosecond = true;
  ASSERT_EQ(b.start(path, o), 0);
  test::TcpSpec s;
  auto f = tcp_frame(s, nullptr, 0);
  const uint8_t* parts[1] = {f.data()};
  size_t lens[1] = {f.size()};
  b.tap(parts, lens, 1, 1'700'000'000'123'456'789ull);
  ASSERT_EQ(b.stop(), 0);
  std::string out = tshark("-r " + path + " -T fields -e frame.time_epoch");
  EXPECT_EQ(out, "1700000000.123456789\n");
  // Microsecond files keep microseconds.
  ASSERT_EQ(b.start(path, {}), 0);
  b.tap(parts, lens, 1, 1'700'000'000'123'456'789ull);
  ASSERT_EQ(b.stop(), 0);
  EXPECT_EQ(tshark("-r " + path + " -T fields -e frame.time_epoch"),
            "1700000000.123456000\n");
}

TEST(Bpf, ConcurrentTappersAndStopWhileTapping) {
  bpf_if b;
  std::string path = tmpfile("mt.pcap");
  ASSERT_EQ(b.start(path, {}), 0);
  test::TcpSpec s;
  auto f = tcp_frame(s, nullptr, 0);
  std::vector<std::thread> t;
  for (int i = 0; i < 4; i++)
    t.emplace_back([&] {
      for (int j = 0; j < 500; j++) bpf_tap(&b, f.data(), f.size());
    });
  for (auto& th : t) th.join();
  EXPECT_EQ(b.packets(), 2000u);
  ASSERT_EQ(b.stop(), 0);
  EXPECT_EQ(lines(tshark("-r " + path + " -T fields -e frame.len")).size(), 2000u);
  // Stopping while others tap leaves a valid file.
  ASSERT_EQ(b.start(path, {}), 0);
  std::atomic<bool> go{true};
  std::thread tapper([&] {
    while (go.load()) bpf_tap(&b, f.data(), f.size());
  });
  while (b.packets() < 50) std::this_thread::yield();
  ASSERT_EQ(b.stop(), 0);
  go.store(false);
  tapper.join();
  auto l = lines(tshark("-r " + path + " -T fields -e frame.len"));
  EXPECT_GE(l.size(), 50u);
  for (const auto& x : l) EXPECT_EQ(x, "54");
}

}  // namespace
}  // namespace uk
