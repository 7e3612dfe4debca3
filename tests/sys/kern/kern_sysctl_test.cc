// sysctl semantics through uk_sysctlbyname, and the kern.ipc.tls tree.
#include <dirent.h>
#include <netinet/in.h>

#include <cerrno>
#include <cstdint>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "lib/libuk/uk.h"
#include "sys/kern/kern_proc.h"
#include "sys/kern/kernel.h"
#include "sys/sys/sysctl.h"

namespace {

class SysctlTest : public ::testing::Test {
 protected:
  void SetUp() override {
    k_ = uk_boot(nullptr);
    ASSERT_NE(k_, nullptr);
    p_ = uk_proc_create(k_, "test");
    ASSERT_NE(p_, nullptr);
  }
  void TearDown() override { EXPECT_EQ(uk_halt(k_), 0); }
  uk_kernel* k_ = nullptr;
  uk_proc* p_ = nullptr;
};

TEST_F(SysctlTest, EnableIsABoolDefaultingToOneAtBoot) {
  bool enable = false;
  size_t len = sizeof(enable);
  ASSERT_EQ(uk_sysctlbyname(p_, "kern.ipc.tls.enable", &enable, &len, nullptr, 0), 0);
  EXPECT_EQ(len, 1u);
  EXPECT_TRUE(enable);
}

TEST_F(SysctlTest, UnknownNameGivesEnoent) {
  int v;
  size_t len = sizeof(v);
  EXPECT_EQ(uk_sysctlbyname(p_, "kern.ipc.tls.enabl", &v, &len, nullptr, 0), -1);
  EXPECT_EQ(errno, ENOENT);
}

TEST_F(SysctlTest, WritingReadOnlyGivesEperm) {
  int v = 8192;
  EXPECT_EQ(uk_sysctlbyname(p_, "kern.ipc.tls.maxlen", nullptr, nullptr, &v, sizeof(v)), -1);
  EXPECT_EQ(errno, EPERM);
  uint64_t z = 0;
  EXPECT_EQ(uk_sysctlbyname(p_, "kern.ipc.tls.stats.active", nullptr, nullptr, &z, sizeof(z)), -1);
  EXPECT_EQ(errno, EPERM);
}

TEST_F(SysctlTest, SizeProbeAndShortBuffer) {
  size_t len = 0;
  ASSERT_EQ(uk_sysctlbyname(p_, "kern.ipc.tls.stats.offload_total", nullptr, &len, nullptr, 0), 0);
  EXPECT_EQ(len, sizeof(uint64_t));
  uint32_t small = 0;
  len = sizeof(small);
  EXPECT_EQ(uk_sysctlbyname(p_, "kern.ipc.tls.stats.offload_total", &small, &len, nullptr, 0), -1);
  EXPECT_EQ(errno, ENOMEM);
}

TEST_F(SysctlTest, NodeWithoutHandlerGivesEisdir) {
  int v;
  size_t len = sizeof(v);
  EXPECT_EQ(uk_sysctlbyname(p_, "kern.ipc.tls.stats", &v, &len, nullptr, 0), -1);
  EXPECT_EQ(errno, EISDIR);
}

TEST_F(SysctlTest, ShortNewValueGivesEinval) {
  char c = 1;
  EXPECT_EQ(uk_sysctlbyname(p_, "kern.ipc.tls.ifnet_max_rexmit_pct", nullptr, nullptr, &c, 1), -1);
  EXPECT_EQ(errno, EINVAL);
}

TEST_F(SysctlTest, ReadWriteUint) {
  unsigned v = 7;
  ASSERT_EQ(uk_sysctlbyname(p_, "kern.ipc.tls.ifnet_max_rexmit_pct", nullptr, nullptr, &v, sizeof(v)), 0);
  unsigned out = 0;
  size_t len = sizeof(out);
  ASSERT_EQ(uk_sysctlbyname(p_, "kern.ipc.tls.ifnet_max_rexmit_pct", &out, &len, nullptr, 0), 0);
  EXPECT_EQ(out, 7u);
}

TEST_F(SysctlTest, FreeBsdDefaults) {
  struct {
    const char* name;
    int expect;
    size_t size;
  } cases[] = {
      {"kern.ipc.tls.cbc_enable", 1, 1},
      {"kern.ipc.tls.sw_buffer_cache", 1, 1},
      {"kern.ipc.tls.bind_threads", 0, 4},
      {"kern.ipc.tls.maxlen", 16384, 4},
      {"kern.ipc.tls.ifnet_max_rexmit_pct", 2, 4},
      {"kern.ipc.tls.max_reclaim", 1024, 4},
      {"kern.ipc.tls.tx_ready_bytes", 0, 4},
      {"kern.ipc.tls.ifnet.permitted", 0, 4},
  };
  for (const auto& c : cases) {
    int v = 0;
    size_t len = sizeof(v);
    ASSERT_EQ(uk_sysctlbyname(p_, c.name, &v, &len, nullptr, 0), 0) << c.name;
    EXPECT_EQ(len, c.size) << c.name;
    if (c.size == 1) v &= 0xff;
    EXPECT_EQ(v, c.expect) << c.name;
  }
}

TEST_F(SysctlTest, WholeKtlsTreeExists) {
  const char* counters[] = {
      "kern.ipc.tls.tasks_active",
      "kern.ipc.tls.stats.sw_tx_pending", "kern.ipc.tls.stats.sw_tx_inqueue",
      "kern.ipc.tls.stats.sw_rx_inqueue", "kern.ipc.tls.stats.offload_total",
      "kern.ipc.tls.stats.enable_calls", "kern.ipc.tls.stats.active",
      "kern.ipc.tls.stats.corrupted_records", "kern.ipc.tls.stats.failed_crypto",
      "kern.ipc.tls.stats.switch_to_ifnet", "kern.ipc.tls.stats.switch_to_sw",
      "kern.ipc.tls.stats.switch_failed", "kern.ipc.tls.stats.ifnet_disable_failed",
      "kern.ipc.tls.stats.ifnet_disable_ok", "kern.ipc.tls.stats.destroy_task",
      "kern.ipc.tls.stats.ocf.tls10_cbc_encrypts",
      "kern.ipc.tls.stats.ocf.tls12_gcm_encrypts",
      "kern.ipc.tls.stats.ocf.tls13_chacha20_decrypts",
      "kern.ipc.tls.stats.ocf.inplace", "kern.ipc.tls.stats.ocf.separate_output",
      "kern.ipc.tls.stats.ocf.retries",
      "kern.ipc.tls.sw.cbc", "kern.ipc.tls.sw.gcm", "kern.ipc.tls.sw.chacha20",
      "kern.ipc.tls.ifnet.cbc", "kern.ipc.tls.ifnet.gcm", "kern.ipc.tls.ifnet.chacha20",
      "kern.ipc.tls.ifnet.reset", "kern.ipc.tls.ifnet.reset_dropped",
      "kern.ipc.tls.ifnet.reset_failed",
      "kern.ipc.tls.toe.cbc", "kern.ipc.tls.toe.gcm", "kern.ipc.tls.toe.chacha20",
  };
  for (const char* name : counters) {
    uint64_t v = 1;
    size_t len = sizeof(v);
    ASSERT_EQ(uk_sysctlbyname(p_, name, &v, &len, nullptr, 0), 0) << name;
    EXPECT_EQ(len, sizeof(uint64_t)) << name;
    EXPECT_EQ(v, 0u) << name;
  }
  int threads = -1;
  size_t len = sizeof(threads);
  EXPECT_EQ(uk_sysctlbyname(p_, "kern.ipc.tls.stats.threads", &threads, &len, nullptr, 0), 0);
}

TEST(SysctlTunables, BootTunablesOverrideDefaults) {
  uk_boot_config cfg{};
  cfg.tunables = "kern.ipc.tls.enable=0, kern.ipc.tls.maxlen=8192,kern.ipc.tls.ifnet.permitted=1";
  uk_kernel* k = uk_boot(&cfg);
  ASSERT_NE(k, nullptr);
  uk_proc* p = uk_proc_create(k, "t");
  bool enable = true;
  size_t len = sizeof(enable);
  ASSERT_EQ(uk_sysctlbyname(p, "kern.ipc.tls.enable", &enable, &len, nullptr, 0), 0);
  EXPECT_FALSE(enable);
  unsigned maxlen = 0;
  len = sizeof(maxlen);
  ASSERT_EQ(uk_sysctlbyname(p, "kern.ipc.tls.maxlen", &maxlen, &len, nullptr, 0), 0);
  EXPECT_EQ(maxlen, 8192u);
  unsigned permitted = 0;
  len = sizeof(permitted);
  ASSERT_EQ(uk_sysctlbyname(p, "kern.ipc.tls.ifnet.permitted", &permitted, &len, nullptr, 0), 0);
  EXPECT_EQ(permitted, 1u);
  EXPECT_EQ(uk_halt(k), 0);
}

// A line of /proc/self/task/TID/status (or /proc/self/status with tid 0).
std::string StatusField(long tid, const std::string& field) {
  std::string path = tid == 0 ? "/proc/self/status"
                              : "/proc/self/task/" + std::to_string(tid) + "/status";
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line))
    if (line.rfind(field + ":", 0) == 0) {
      size_t v = line.find_first_not_of(" \t", field.size() + 1);
      return v == std::string::npos ? "" : line.substr(v);
    }
  return "";
}

// The host thread ids named |comm| in this process.
std::vector<long> ThreadsNamed(const std::string& comm) {
  std::vector<long> out;
  DIR* d = opendir("/proc/self/task");
  if (d == nullptr) return out;
  while (dirent* e = readdir(d)) {
    if (e->d_name[0] == '.') continue;
    std::ifstream in(std::string("/proc/self/task/") + e->d_name + "/comm");
    std::string name;
    std::getline(in, name);
    if (name == comm) out.push_back(std::stol(e->d_name));
  }
  closedir(d);
  return out;
}

// net.isr.bindthreads: off by default (FreeBSD's), read-only after boot;
// as a boot tunable it pins the netisr thread to CPU 0's host core.
TEST(SysctlTunables, NetisrBindthreadsPinsTheNetisrThread) {
  for (int bind : {0, 1}) {
    SCOPED_TRACE(bind);
    uk_boot_config cfg{};
    std::string t = "net.isr.bindthreads=" + std::to_string(bind);
    if (bind) cfg.tunables = t.c_str();
    uk_kernel* k = uk_boot(&cfg);
    ASSERT_NE(k, nullptr);
    uk_proc* p = uk_proc_create(k, "t");
    int v = -1;
    size_t len = sizeof(v);
    ASSERT_EQ(uk_sysctlbyname(p, "net.isr.bindthreads", &v, &len, nullptr, 0), 0);
    EXPECT_EQ(v, bind);
    int one = 1;
    EXPECT_EQ(uk_sysctlbyname(p, "net.isr.bindthreads", nullptr, nullptr, &one, sizeof one), -1);
    EXPECT_EQ(errno, EPERM);
    // The thread names and pins itself as it starts, before it handles
    // anything: look at it once a packet has been through it.
    int s = uk_socket(p, AF_INET, SOCK_STREAM, 0);
    ASSERT_GE(s, 0);
    sockaddr_in sin{};
    sin.sin_family = AF_INET;
    sin.sin_port = htons(9);
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(uk_connect(p, s, reinterpret_cast<sockaddr*>(&sin), sizeof sin), -1);
    EXPECT_EQ(errno, ECONNREFUSED);  // the SYN and the RST went through the netisr
    uk_close(p, s);
    std::vector<long> isr = ThreadsNamed("netisr");
    ASSERT_EQ(isr.size(), 1u);
    std::string allowed = StatusField(isr[0], "Cpus_allowed_list");
    if (bind)
      EXPECT_EQ(allowed, "0");
    else
      EXPECT_EQ(allowed, StatusField(0, "Cpus_allowed_list"));
    EXPECT_EQ(uk_halt(k), 0);
  }
}

TEST(SysctlTunables, MalformedTunablesFailBoot) {
  uk_boot_config cfg{};
  cfg.tunables = "kern.ipc.tls.enable";
  errno = 0;
  EXPECT_EQ(uk_boot(&cfg), nullptr);
  EXPECT_EQ(errno, EINVAL);
  cfg.tunables = "kern.ipc.tls.maxlen=big";
  EXPECT_EQ(uk_boot(&cfg), nullptr);
  EXPECT_EQ(errno, EINVAL);
}

// The tree API itself: listing, descriptions, removal with the ctx.
TEST(SysctlTree, ListDescribeAndCtxRemoval) {
  uk_kernel* k = uk_boot(nullptr);
  ASSERT_NE(k, nullptr);
  uk_proc* p = uk_proc_create(k, "t");
  uk::kernel& kern = *p->k;
  std::vector<uk::sysctl_oid_info> all;
  ASSERT_EQ(kern.sysctl->list("kern.ipc.tls", &all), 0);
  EXPECT_GT(all.size(), 40u);
  bool found = false;
  for (const auto& o : all)
    if (o.name == "kern.ipc.tls.enable") {
      found = true;
      EXPECT_EQ(o.descr, "Enable support for kernel TLS offload");
    }
  EXPECT_TRUE(found);
  EXPECT_EQ(kern.sysctl->list("kern.nope", &all), ENOENT);

  std::atomic<int> v{5};
  {
    uk::sysctl_ctx_list ctx(kern);
    ASSERT_EQ(ctx.add_int("test.a.b", uk::CTLFLAG_RW, &v, "a test"), 0);
    EXPECT_EQ(ctx.add_int("test.a.b", uk::CTLFLAG_RW, &v, "dup"), EEXIST);
    int x = 0;
    size_t len = sizeof(x);
    ASSERT_EQ(uk_sysctlbyname(p, "test.a.b", &x, &len, nullptr, 0), 0);
    EXPECT_EQ(x, 5);
    x = 9;
    ASSERT_EQ(uk_sysctlbyname(p, "test.a.b", nullptr, nullptr, &x, sizeof(x)), 0);
    EXPECT_EQ(v.load(), 9);
  }
  int x;
  size_t len = sizeof(x);
  EXPECT_EQ(uk_sysctlbyname(p, "test.a.b", &x, &len, nullptr, 0), -1);
  EXPECT_EQ(errno, ENOENT);
  EXPECT_EQ(uk_sysctlbyname(p, "test.a", &x, &len, nullptr, 0), -1);
  EXPECT_EQ(errno, ENOENT);  // pruned with its last child
  EXPECT_EQ(uk_halt(k), 0);
}

TEST(SysctlCounter, PerCpuCounterSumsAcrossThreads) {
  uk::counter_u64 c;
  std::vector<std::thread> ts;
  for (int t = 0; t < 8; t++)
    ts.emplace_back([&c] {
      for (int i = 0; i < 10000; i++) c.add(1);
    });
  for (auto& t : ts) t.join();
  EXPECT_EQ(c.fetch(), 80000u);
  c.zero();
  EXPECT_EQ(c.fetch(), 0u);
}

}  // namespace
