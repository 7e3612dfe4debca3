// The two-kernel lab of the network tests: kernels booted through
// lib/libuk, a nic_sim0 in each with an address on 10.0.0.0/24, the two
// joined by a wire, and TCP connections between them. Shared by the NIC,
// KTLS-offload, TOE, SACK and interface-statistics tests.
#ifndef UKTLS_TESTS_SYS_DEV_NIC_SIM_LAB_H_
#define UKTLS_TESTS_SYS_DEV_NIC_SIM_LAB_H_

#include <netinet/in.h>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "lib/libuk/uk.h"

namespace uk {
struct kernel;
class Wire;
class NicSim;
}  // namespace uk

namespace uk::lab {

sockaddr_in addr(const char* ip, uint16_t port);

// SHA-256 as lowercase hex (OpenSSL EVP).
std::string sha256(const uint8_t* p, size_t n);
std::string sha256(const std::vector<uint8_t>& v);
// n bytes from a std::mt19937_64 seeded with seed.
std::vector<uint8_t> pattern(size_t n, uint64_t seed);
// $var MiB (whole MiB, > 0), else default_mb MiB: the tests' size knobs.
size_t env_mib(const char* var, size_t default_mb);

// One kernel and a process in it.
struct Node {
  uk_kernel* k = nullptr;
  uk_proc* p = nullptr;
  uk::kernel& kern();
  // A 64-bit sysctl (counters); a failed read is a test failure.
  uint64_t stat(const std::string& name);
  // A 32-bit one (int oids); -1 and a failure if unreadable.
  int istat(const std::string& name);
  void set_int(const std::string& name, int v);
  void set_uint(const std::string& name, unsigned v);
  std::shared_ptr<uk::NicSim> nic(const char* ifname = "nic_sim0");
};

// uk_boot with hostname `name` and `ncpus`; `modules` null keeps the
// default module list. Creates a process named like the kernel.
Node boot(const char* name, int ncpus = 2, const char* modules = nullptr);

// Two kernels, a (10.0.0.1/24) and b (10.0.0.2/24), each with nic_sim0
// (created, addressed, up, then the extra ifconfig words of a_opts /
// b_opts), joined by one wire with parameters `wire`. The destructor
// halts both kernels.
struct Pair {
  struct Options {
    const char* a_name = "a";
    const char* b_name = "b";
    std::string a_opts;  // ifconfig words after "inet 10.0.0.1/24 up"
    std::string b_opts;
    int ncpus = 2;
    const char* modules = nullptr;
  };
  Pair(const std::string& wire, const Options& o);
  explicit Pair(const std::string& wire) : Pair(wire, Options{}) {}
  ~Pair();
  Pair(const Pair&) = delete;
  Pair& operator=(const Pair&) = delete;

  // The wire as seen from a's nic_sim0 (a's side is 0).
  std::shared_ptr<uk::Wire> wire();

  Node a, b;
};

// A listening socket of n bound to ip:port (backlog).
int listen_on(Node& n, const char* ip, uint16_t port, int backlog = 8);
// A socket of n connected to ip:port, -1 (and a failure) if connect fails.
int connect_to(Node& n, const char* ip, uint16_t port);

// One connection from `client` to `server`: c on the client, s accepted
// on the server, l the server's listener.
struct Conn {
  int l = -1, c = -1, s = -1;
};
struct ConnOptions {
  // Called with the client's socket before connect (TCP_MAXSEG, SO_SNDBUF).
  std::function<void(int c)> before_connect;
  // SO_RCVTIMEO on s and SO_SNDTIMEO on c (a stall fails instead of
  // hanging); 0 = none.
  int timeout_s = 60;
  int backlog = 4;
};
Conn connect_pair(Node& client, Node& server, const char* server_ip, uint16_t port,
                  const ConnOptions& o = ConnOptions{});
// Closes c, s and l (those that are open).
void close_conn(Node& client, Node& server, Conn& x);

}  // namespace uk::lab

#endif  // UKTLS_TESTS_SYS_DEV_NIC_SIM_LAB_H_
