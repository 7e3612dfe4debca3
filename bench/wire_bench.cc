// TCP between two kernels over a simulated wire: goodput and what TCP did
// to get it (fast retransmits, SACK episodes, timeouts), for a set of wire
// conditions, each run with SACK on and with SACK and limited transmit off
// (NewReno alone) in the same process, so the ratio between the two does
// not depend on how busy the host is.
//
//   bazel run -c opt //bench:wire_bench                  # lossy table
//   bazel run -c opt //bench:wire_bench -- --mb=64 --runs=3
//   bazel run -c opt //bench:wire_bench -- --clean       # clean 10g wire
//   bazel run -c opt //bench:wire_bench -- --wire="bw=1g delay=1ms loss=0.01"
//   bazel run -c opt //bench:wire_bench -- --clean --no-deadlock-detection
//   bazel run -c opt //bench:wire_bench -- --clean --ifconfig="mtu 9000 txcsum rxcsum tso lro"
#include <arpa/inet.h>
#include <netinet/in.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "lib/libuk/uk.h"
#include "sys/dev/nic_sim/nic_sim.h"
#include "sys/kern/kern_proc.h"
#include "sys/kern/kernel.h"

namespace {

struct Node {
  uk_kernel* k = nullptr;
  uk_proc* p = nullptr;
  uint64_t stat(const char* name) {
    uint64_t v = 0;
    size_t len = sizeof v;
    uk_sysctlbyname(p, name, &v, &len, nullptr, 0);
    return v;
  }
  void set(const char* name, int v) {
    uk_sysctlbyname(p, name, nullptr, nullptr, &v, sizeof v);
  }
};

Node boot(const char* name) {
  uk_boot_config cfg{};
  cfg.hostname = name;
  cfg.ncpus = 1;
  cfg.modules = "";
  Node n;
  n.k = uk_boot(&cfg);
  n.p = uk_proc_create(n.k, name);
  return n;
}

sockaddr_in addr(const char* ip, uint16_t port) {
  sockaddr_in sin{};
  sin.sin_family = AF_INET;
  sin.sin_port = htons(port);
  sin.sin_addr.s_addr = inet_addr(ip);
  return sin;
}

struct Result {
  double seconds = 0;
  bool ok = false;
  uint64_t lost = 0, frames = 0, rexmit = 0, timeouts = 0, fastrexmt = 0,
           sack_episodes = 0, sack_rexmits = 0, limited = 0;
};

// ifconfig words applied to both NICs before they come up (--ifconfig).
std::string g_ifconfig;

Result run(const std::string& wire, size_t bytes, bool sack) {
  Result r;
  Node a = boot("a"), b = boot("b");
  uk_ifconfig(a.k, "nic_sim0", "create");
  uk_ifconfig(b.k, "nic_sim0", "create");
  for (Node* n : {&a, &b}) {
    if (!g_ifconfig.empty() && uk_ifconfig(n->k, "nic_sim0", g_ifconfig.c_str()) != 0) {
      fprintf(stderr, "wire_bench: ifconfig nic_sim0 %s: %s\n", g_ifconfig.c_str(),
              strerror(errno));
      exit(2);
    }
  }
  uk_ifconfig(a.k, "nic_sim0", "inet 10.0.0.1/24 up");
  uk_ifconfig(b.k, "nic_sim0", "inet 10.0.0.2/24 up");
  if (uk_wire(a.k, "nic_sim0", b.k, "nic_sim0", wire.c_str()) != 0) {
    fprintf(stderr, "wire_bench: uk_wire \"%s\": %s\n", wire.c_str(), strerror(errno));
    exit(2);
  }
  for (Node* n : {&a, &b}) {
    n->set("net.inet.tcp.sack.enable", sack);
    n->set("net.inet.tcp.rfc3042", sack);
  }
  int l = uk_socket(b.p, AF_INET, SOCK_STREAM, 0);
  sockaddr_in sin = addr("10.0.0.2", 5001);
  uk_bind(b.p, l, reinterpret_cast<sockaddr*>(&sin), sizeof sin);
  uk_listen(b.p, l, 1);
  int c = uk_socket(a.p, AF_INET, SOCK_STREAM, 0);
  if (uk_connect(a.p, c, reinterpret_cast<sockaddr*>(&sin), sizeof sin) != 0) {
    fprintf(stderr, "wire_bench: connect: %s\n", strerror(errno));
    exit(2);
  }
  int s = uk_accept(b.p, l, nullptr, nullptr);
  std::vector<char> wbuf(64 * 1024), rbuf(256 * 1024);
  for (size_t i = 0; i < wbuf.size(); i++) wbuf[i] = static_cast<char>(i * 7);
  auto t0 = std::chrono::steady_clock::now();
  std::thread w([&] {
    for (size_t sent = 0; sent < bytes;) {
      ssize_t n = uk_send(a.p, c, wbuf.data(), std::min(wbuf.size(), bytes - sent), 0);
      if (n <= 0) break;
      sent += n;
    }
    uk_shutdown(a.p, c, SHUT_WR);
  });
  size_t got = 0;
  for (;;) {
    ssize_t n = uk_recv(b.p, s, rbuf.data(), rbuf.size(), 0);
    if (n <= 0) break;
    got += n;
  }
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  w.join();
  r.ok = got == bytes;
  auto nic = uk::nic_sim_find(*a.p->k, "nic_sim0");
  uk::WireDirStats st = nic->wire()->stats(0);
  r.lost = st.drops_loss;
  r.frames = st.tx_frames;
  r.rexmit = a.stat("net.inet.tcp.stats.sndrexmitpack");
  r.timeouts = a.stat("net.inet.tcp.stats.rexmttimeo");
  r.fastrexmt = a.stat("net.inet.tcp.stats.fastrexmt");
  r.sack_episodes = a.stat("net.inet.tcp.stats.sack_recovery_episode");
  r.sack_rexmits = a.stat("net.inet.tcp.stats.sack_rexmits");
  r.limited = a.stat("net.inet.tcp.stats.limitedxmit");
  uk_close(a.p, c);
  uk_close(b.p, s);
  uk_close(b.p, l);
  uk_halt(a.k);
  uk_halt(b.k);
  return r;
}

void report(const char* label, const std::string& wire, size_t bytes, const Result& r) {
  printf("%-9s %-52s %8.1f Mb/s %s lost %5llu rexmit %5llu fastrexmt %4llu "
         "sack_episodes %4llu sack_rexmits %5llu limited %4llu rto %3llu\n",
         label, wire.c_str(), bytes * 8 / r.seconds / 1e6, r.ok ? "ok " : "BAD",
         (unsigned long long)r.lost, (unsigned long long)r.rexmit,
         (unsigned long long)r.fastrexmt, (unsigned long long)r.sack_episodes,
         (unsigned long long)r.sack_rexmits, (unsigned long long)r.limited,
         (unsigned long long)r.timeouts);
  fflush(stdout);
}

}  // namespace

int main(int argc, char** argv) {
  size_t mb = 16;
  int runs = 1;
  bool clean = false;
  std::vector<std::string> wires;
  for (int i = 1; i < argc; i++) {
    std::string a = argv[i];
    if (a.rfind("--mb=", 0) == 0) mb = strtoul(a.c_str() + 5, nullptr, 10);
    else if (a.rfind("--runs=", 0) == 0) runs = atoi(a.c_str() + 7);
    else if (a == "--clean") clean = true;
    // Abseil's lock-order (deadlock) detector records every acquisition in
    // one process-wide graph under one spinlock when the library is built
    // without NDEBUG; this measures the data path without it.
    else if (a == "--no-deadlock-detection")
      absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
    else if (a.rfind("--wire=", 0) == 0) wires.push_back(a.substr(7));
    else if (a.rfind("--ifconfig=", 0) == 0) g_ifconfig = a.substr(11);
    else {
      fprintf(stderr, "usage: wire_bench [--mb=N] [--runs=N] [--clean] "
              "[--no-deadlock-detection] [--wire=PARAMS]... [--ifconfig=WORDS]\n");
      return 2;
    }
  }
  if (wires.empty()) {
    if (clean) {
      wires = {"bw=10g delay=20us"};
    } else {
      for (const char* d : {"100us", "1ms"}) {
        for (const char* x : {"loss=0.001", "loss=0.01", "reorder=0.01",
                              "loss=0.01 reorder=0.01"})
          wires.push_back(std::string("bw=1g delay=") + d + " " + x + " seed=3");
      }
    }
  }
  const size_t bytes = mb << 20;
  for (const std::string& w : wires) {
    for (int i = 0; i < runs; i++) {
      if (clean) {
        report("clean", w, bytes, run(w, bytes, true));
        continue;
      }
      Result s = run(w, bytes, true);
      Result n = run(w, bytes, false);
      report("sack", w, bytes, s);
      report("newreno", w, bytes, n);
      printf("%-9s %-52s sack/newreno goodput ratio %.2f\n", "", w.c_str(),
             n.seconds / s.seconds);
    }
  }
  return 0;
}
