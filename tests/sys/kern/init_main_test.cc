// The boot messages (dmesg) and the kernel's identity sysctls.
#include <cstring>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "lib/libuk/uk.h"
#include "sys/kern/kern_proc.h"
#include "sys/kern/kernel.h"
#include "sys/kern/subr_prf.h"

namespace {

std::string sysctl_string(uk_proc* p, const char* name) {
  size_t len = 0;
  if (uk_sysctlbyname(p, name, nullptr, &len, nullptr, 0) != 0) return "<error>";
  std::string s(len, '\0');
  if (uk_sysctlbyname(p, name, s.data(), &len, nullptr, 0) != 0) return "<error>";
  s.resize(strnlen(s.c_str(), len));
  return s;
}

int sysctl_int(uk_proc* p, const char* name) {
  int v = 0;
  size_t len = sizeof v;
  EXPECT_EQ(uk_sysctlbyname(p, name, &v, &len, nullptr, 0), 0) << name;
  return v;
}

// A kernel with no modules and these tunables, and a process in it.
uk_proc* boot_with_tunables(const char* tunables, uk_kernel** k) {
  uk_boot_config cfg{};
  cfg.modules = "";
  cfg.tunables = tunables;
  *k = uk_boot(&cfg);
  return *k == nullptr ? nullptr : uk_proc_create(*k, "t");
}

TEST(Boot, DmesgHasBannerCpusMemoryAndHostnameInOrder) {
  uk_boot_config cfg{};
  cfg.hostname = "lab1";
  cfg.ncpus = 3;
  cfg.modules = "";
  cfg.tunables = "vm.pages_max=256";
  uk_kernel* k = uk_boot(&cfg);
  ASSERT_NE(k, nullptr);
  uk_proc* p = uk_proc_create(k, "t");
  std::string d = p->k->dmesg->read();
  size_t copyright = d.find("Copyright (c)");
  size_t version = d.find("uktls 0.1 #0");
  size_t cpu = d.find("CPU: 3 emulated");
  size_t mem = d.find("real memory  = 1048576 (1 MB)");
  size_t vfs = d.find("tmpfs: mounted on /");
  size_t host = d.find("Setting hostname: lab1.");
  EXPECT_EQ(copyright, 0u) << d;
  EXPECT_NE(version, std::string::npos) << d;
  EXPECT_NE(cpu, std::string::npos) << d;
  EXPECT_NE(mem, std::string::npos) << d;
  EXPECT_NE(vfs, std::string::npos) << d;
  EXPECT_NE(host, std::string::npos) << d;
  EXPECT_LT(version, cpu);
  EXPECT_LT(cpu, mem);
  EXPECT_LT(mem, vfs);
  EXPECT_LT(vfs, host);
  EXPECT_EQ(uk_halt(k), 0);
}

// A boot tunable nothing asks for (a misspelt name, or a sysctl that is not
// a tunable) is ignored, as by FreeBSD's loader, and reported in dmesg.
TEST(Boot, UnusedTunablesAreReportedInDmesg) {
  uk_kernel* k;
  uk_proc* p = boot_with_tunables(
      "vm.pages_max=256,kern.ipc.tls.maxlen=8192,kern.ipc.tls.maxlne=4096,"
      "net.inet.tcp.sendspace=65536",
      &k);
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(p->k->unused_tunables(),
            (std::vector<std::string>{"kern.ipc.tls.maxlne", "net.inet.tcp.sendspace"}));
  std::string d = p->k->dmesg->read();
  size_t typo = d.find(
      "WARNING: tunable kern.ipc.tls.maxlne=4096 unused at boot (no such tunable in the kernel "
      "or its boot modules)\n");
  size_t rw = d.find("WARNING: tunable net.inet.tcp.sendspace=65536 unused at boot");
  EXPECT_NE(typo, std::string::npos) << d;
  EXPECT_NE(rw, std::string::npos) << d;
  EXPECT_EQ(d.find("tunable vm.pages_max"), std::string::npos) << d;
  EXPECT_EQ(d.find("tunable kern.ipc.tls.maxlen="), std::string::npos) << d;
  EXPECT_LT(rw, d.find("Setting hostname")) << d;
  // The tunables that exist took effect; the sysctl keeps its default.
  EXPECT_EQ(sysctl_int(p, "kern.ipc.tls.maxlen"), 8192);
  EXPECT_EQ(sysctl_int(p, "net.inet.tcp.sendspace"), 32768);
  EXPECT_EQ(uk_halt(k), 0);
}

// As FreeBSD's kenv: a module loaded after boot still reads its tunables.
TEST(Boot, AModuleLoadedLaterReadsItsTunables) {
  uk_kernel* k;
  uk_proc* p = boot_with_tunables("dev.ccr_sim.0.threads=2", &k);
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(p->k->unused_tunables(), (std::vector<std::string>{"dev.ccr_sim.0.threads"}));
  EXPECT_NE(p->k->dmesg->read().find("WARNING: tunable dev.ccr_sim.0.threads=2 unused at boot"),
            std::string::npos);
  ASSERT_GT(uk_kldload(p, "ccr_sim"), 0);
  EXPECT_TRUE(p->k->unused_tunables().empty());
  EXPECT_EQ(sysctl_int(p, "dev.ccr_sim.0.threads"), 2);
  EXPECT_EQ(uk_halt(k), 0);
}

TEST(Boot, NoWarningWhenEveryTunableIsUsed) {
  uk_kernel* k;
  uk_proc* p = boot_with_tunables("vm.pages_max=256,kern.ipc.tls.maxlen=8192", &k);
  ASSERT_NE(p, nullptr);
  EXPECT_TRUE(p->k->unused_tunables().empty());
  EXPECT_EQ(p->k->dmesg->read().find("WARNING: tunable"), std::string::npos);
  EXPECT_EQ(uk_halt(k), 0);
}

TEST(Boot, IdentitySysctls) {
  uk_boot_config cfg{};
  cfg.hostname = "h2";
  cfg.ncpus = 5;
  uk_kernel* k = uk_boot(&cfg);
  ASSERT_NE(k, nullptr);
  uk_proc* p = uk_proc_create(k, "t");
  EXPECT_EQ(sysctl_string(p, "kern.ostype"), "uktls");
  EXPECT_EQ(sysctl_string(p, "kern.osrelease"), "0.1");
  EXPECT_EQ(sysctl_string(p, "kern.hostname"), "h2");
  EXPECT_EQ(sysctl_string(p, "kern.version").rfind("uktls 0.1 #0", 0), 0u);
  int ncpu = 0;
  size_t len = sizeof(ncpu);
  ASSERT_EQ(uk_sysctlbyname(p, "hw.ncpu", &ncpu, &len, nullptr, 0), 0);
  EXPECT_EQ(ncpu, 5);
  EXPECT_EQ(uk_sysctlbyname(p, "hw.ncpu", nullptr, nullptr, &ncpu, sizeof(ncpu)), -1);
  EXPECT_EQ(errno, EPERM);
  EXPECT_EQ(uk_halt(k), 0);
}

}  // namespace
