// Boot and halt: many kernels, independent, cheap.
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <vector>

#include "gtest/gtest.h"
#include "lib/libuk/uk.h"

namespace {

TEST(KernelBoot, BootWithDefaultsAndHalt) {
  uk_kernel* k = uk_boot(nullptr);
  ASSERT_NE(k, nullptr);
  EXPECT_EQ(uk_halt(k), 0);
}

TEST(KernelBoot, HaltNullIsEinval) {
  EXPECT_EQ(uk_halt(nullptr), -1);
  EXPECT_EQ(errno, EINVAL);
}

TEST(KernelBoot, KernelsAreIndependent) {
  uk_kernel* a = uk_boot(nullptr);
  uk_kernel* b = uk_boot(nullptr);
  ASSERT_NE(a, nullptr);
  ASSERT_NE(b, nullptr);
  uk_proc* pa = uk_proc_create(a, "a");
  uk_proc* pb = uk_proc_create(b, "b");
  bool off = false;
  ASSERT_EQ(uk_sysctlbyname(pa, "kern.ipc.tls.enable", nullptr, nullptr, &off, 1), 0);
  bool v = false;
  size_t len = 1;
  ASSERT_EQ(uk_sysctlbyname(pb, "kern.ipc.tls.enable", &v, &len, nullptr, 0), 0);
  EXPECT_TRUE(v);
  ASSERT_EQ(uk_sysctlbyname(pa, "kern.ipc.tls.enable", &v, &len, nullptr, 0), 0);
  EXPECT_FALSE(v);
  uk_proc_destroy(pa);
  EXPECT_EQ(uk_halt(a), 0);
  EXPECT_EQ(uk_halt(b), 0);  // pb is destroyed by halt
}

TEST(KernelBoot, ThousandBootHaltCycles) {
  auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < 1000; i++) {
    uk_boot_config cfg{};
    cfg.ncpus = 2;
    uk_kernel* k = uk_boot(&cfg);
    ASSERT_NE(k, nullptr);
    uk_proc* p = uk_proc_create(k, "cycle");
    ASSERT_NE(p, nullptr);
    ASSERT_EQ(uk_halt(k), 0);
  }
  auto us = std::chrono::duration_cast<std::chrono::microseconds>(
                std::chrono::steady_clock::now() - t0)
                .count();
  // Reported, not asserted: timing belongs in bench/.
  printf("boot+halt: %.1f us per cycle\n", us / 1000.0);
}

}  // namespace
