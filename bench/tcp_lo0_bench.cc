// TCP throughput over lo0 of a uktls kernel, next to the host's own TCP over
// its loopback, with the same program shape: one writer thread, one reader,
// fixed write and read sizes. Reports bytes/second (wall clock: two threads
// work at once).
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <thread>
#include <vector>

#include "benchmark/benchmark.h"
#include "lib/libuk/uk.h"

namespace {

constexpr size_t kBytes = 256u << 20;

void BM_UktlsLo0(benchmark::State& state) {
  size_t wsize = state.range(0);
  uk_boot_config cfg{};
  cfg.modules = "";
  uk_kernel* k = uk_boot(&cfg);
  uk_proc* p = uk_proc_create(k, "bench");
  int l = uk_socket(p, AF_INET, SOCK_STREAM, 0);
  sockaddr_in sin{};
  sin.sin_family = AF_INET;
  sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  uk_bind(p, l, reinterpret_cast<sockaddr*>(&sin), sizeof sin);
  uk_listen(p, l, 1);
  socklen_t len = sizeof sin;
  uk_getsockname(p, l, reinterpret_cast<sockaddr*>(&sin), &len);
  int c = uk_socket(p, AF_INET, SOCK_STREAM, 0);
  uk_connect(p, c, reinterpret_cast<sockaddr*>(&sin), sizeof sin);
  int a = uk_accept(p, l, nullptr, nullptr);
  std::vector<char> wbuf(wsize, 'x'), rbuf(wsize);
  for (auto _ : state) {
    auto t0 = std::chrono::steady_clock::now();
    std::thread w([&] {
      for (size_t sent = 0; sent < kBytes;) {
        ssize_t n = uk_send(p, c, wbuf.data(), std::min(wsize, kBytes - sent), 0);
        if (n <= 0) break;
        sent += n;
      }
    });
    for (size_t got = 0; got < kBytes;) {
      ssize_t n = uk_recv(p, a, rbuf.data(), wsize, 0);
      if (n <= 0) break;
      got += n;
    }
    w.join();
    state.SetIterationTime(std::chrono::duration<double>(
                               std::chrono::steady_clock::now() - t0)
                               .count());
  }
  state.SetBytesProcessed(state.iterations() * kBytes);
  uk_halt(k);
}
BENCHMARK(BM_UktlsLo0)->Arg(16384)->Arg(65536)->Arg(262144)->UseManualTime()->Unit(benchmark::kMillisecond);

void BM_HostLoopback(benchmark::State& state) {
  size_t wsize = state.range(0);
  int l = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in sin{};
  sin.sin_family = AF_INET;
  sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(l, reinterpret_cast<sockaddr*>(&sin), sizeof sin);
  ::listen(l, 1);
  socklen_t len = sizeof sin;
  ::getsockname(l, reinterpret_cast<sockaddr*>(&sin), &len);
  int c = ::socket(AF_INET, SOCK_STREAM, 0);
  ::connect(c, reinterpret_cast<sockaddr*>(&sin), sizeof sin);
  int a = ::accept(l, nullptr, nullptr);
  std::vector<char> wbuf(wsize, 'x'), rbuf(wsize);
  for (auto _ : state) {
    auto t0 = std::chrono::steady_clock::now();
    std::thread w([&] {
      for (size_t sent = 0; sent < kBytes;) {
        ssize_t n = ::send(c, wbuf.data(), std::min(wsize, kBytes - sent), 0);
        if (n <= 0) break;
        sent += n;
      }
    });
    for (size_t got = 0; got < kBytes;) {
      ssize_t n = ::recv(a, rbuf.data(), wsize, 0);
      if (n <= 0) break;
      got += n;
    }
    w.join();
    state.SetIterationTime(std::chrono::duration<double>(
                               std::chrono::steady_clock::now() - t0)
                               .count());
  }
  state.SetBytesProcessed(state.iterations() * kBytes);
  ::close(a);
  ::close(c);
  ::close(l);
}
BENCHMARK(BM_HostLoopback)->Arg(16384)->Arg(65536)->Arg(262144)->UseManualTime()->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();
