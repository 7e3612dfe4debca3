#include "tests/sys/dev/nic_sim/lab.h"

#include <arpa/inet.h>
#include <openssl/evp.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <random>

#include "gtest/gtest.h"
#include "sys/dev/nic_sim/nic_sim.h"
#include "sys/kern/kern_proc.h"
#include "sys/kern/kernel.h"

namespace uk::lab {

sockaddr_in addr(const char* ip, uint16_t port) {
  sockaddr_in sin{};
  sin.sin_family = AF_INET;
  sin.sin_port = htons(port);
  sin.sin_addr.s_addr = inet_addr(ip);
  return sin;
}

std::string sha256(const uint8_t* p, size_t n) {
  unsigned char md[32];
  unsigned int len = 0;
  EVP_Digest(p, n, md, &len, EVP_sha256(), nullptr);
  static const char* hex = "0123456789abcdef";
  std::string s;
  for (unsigned i = 0; i < len; i++) {
    s += hex[md[i] >> 4];
    s += hex[md[i] & 15];
  }
  return s;
}

std::string sha256(const std::vector<uint8_t>& v) { return sha256(v.data(), v.size()); }

std::vector<uint8_t> pattern(size_t n, uint64_t seed) {
  std::vector<uint8_t> v(n);
  std::mt19937_64 rng(seed);
  for (auto& b : v) b = static_cast<uint8_t>(rng());
  return v;
}

size_t env_mib(const char* var, size_t default_mb) {
  const char* e = getenv(var);
  size_t mb = e ? strtoul(e, nullptr, 10) : default_mb;
  return (mb ? mb : default_mb) << 20;
}

uk::kernel& Node::kern() { return *p->k; }

uint64_t Node::stat(const std::string& name) {
  uint64_t v = 0;
  size_t len = sizeof v;
  EXPECT_EQ(uk_sysctlbyname(p, name.c_str(), &v, &len, nullptr, 0), 0) << name;
  return v;
}

int Node::istat(const std::string& name) {
  int v = -1;
  size_t len = sizeof v;
  EXPECT_EQ(uk_sysctlbyname(p, name.c_str(), &v, &len, nullptr, 0), 0) << name;
  return v;
}

void Node::set_int(const std::string& name, int v) {
  EXPECT_EQ(uk_sysctlbyname(p, name.c_str(), nullptr, nullptr, &v, sizeof v), 0) << name;
}

void Node::set_uint(const std::string& name, unsigned v) {
  EXPECT_EQ(uk_sysctlbyname(p, name.c_str(), nullptr, nullptr, &v, sizeof v), 0) << name;
}

std::shared_ptr<uk::NicSim> Node::nic(const char* ifname) {
  return uk::nic_sim_find(kern(), ifname);
}

Node boot(const char* name, int ncpus, const char* modules) {
  uk_boot_config cfg{};
  cfg.hostname = name;
  cfg.ncpus = ncpus;
  if (modules != nullptr) cfg.modules = modules;
  Node n;
  n.k = uk_boot(&cfg);
  EXPECT_NE(n.k, nullptr);
  n.p = uk_proc_create(n.k, name);
  return n;
}

Pair::Pair(const std::string& wire, const Options& o)
    : a(boot(o.a_name, o.ncpus, o.modules)), b(boot(o.b_name, o.ncpus, o.modules)) {
  EXPECT_EQ(uk_ifconfig(a.k, "nic_sim0", "create"), 0);
  EXPECT_EQ(uk_ifconfig(b.k, "nic_sim0", "create"), 0);
  EXPECT_EQ(uk_ifconfig(a.k, "nic_sim0", ("inet 10.0.0.1/24 up " + o.a_opts).c_str()), 0)
      << o.a_opts;
  EXPECT_EQ(uk_ifconfig(b.k, "nic_sim0", ("inet 10.0.0.2/24 up " + o.b_opts).c_str()), 0)
      << o.b_opts;
  EXPECT_EQ(uk_wire(a.k, "nic_sim0", b.k, "nic_sim0", wire.c_str()), 0) << wire;
}

Pair::~Pair() {
  EXPECT_EQ(uk_halt(a.k), 0);
  EXPECT_EQ(uk_halt(b.k), 0);
}

std::shared_ptr<uk::Wire> Pair::wire() { return a.nic()->wire(); }

int listen_on(Node& n, const char* ip, uint16_t port, int backlog) {
  int s = uk_socket(n.p, AF_INET, SOCK_STREAM, 0);
  EXPECT_GE(s, 0);
  sockaddr_in sin = addr(ip, port);
  EXPECT_EQ(uk_bind(n.p, s, reinterpret_cast<sockaddr*>(&sin), sizeof sin), 0)
      << strerror(errno);
  EXPECT_EQ(uk_listen(n.p, s, backlog), 0);
  return s;
}

int connect_to(Node& n, const char* ip, uint16_t port) {
  int s = uk_socket(n.p, AF_INET, SOCK_STREAM, 0);
  EXPECT_GE(s, 0);
  sockaddr_in sin = addr(ip, port);
  int r = uk_connect(n.p, s, reinterpret_cast<sockaddr*>(&sin), sizeof sin);
  EXPECT_EQ(r, 0) << strerror(errno);
  return r == 0 ? s : -1;
}

Conn connect_pair(Node& client, Node& server, const char* server_ip, uint16_t port,
                  const ConnOptions& o) {
  Conn x;
  x.l = listen_on(server, server_ip, port, o.backlog);
  x.c = uk_socket(client.p, AF_INET, SOCK_STREAM, 0);
  EXPECT_GE(x.c, 0);
  if (o.before_connect) o.before_connect(x.c);
  sockaddr_in sin = addr(server_ip, port);
  EXPECT_EQ(uk_connect(client.p, x.c, reinterpret_cast<sockaddr*>(&sin), sizeof sin), 0)
      << strerror(errno);
  x.s = uk_accept(server.p, x.l, nullptr, nullptr);
  EXPECT_GE(x.s, 0);
  if (o.timeout_s > 0) {
    timeval tv{o.timeout_s, 0};
    uk_setsockopt(server.p, x.s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    uk_setsockopt(client.p, x.c, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  }
  return x;
}

void close_conn(Node& client, Node& server, Conn& x) {
  if (x.c >= 0) uk_close(client.p, x.c);
  if (x.s >= 0) uk_close(server.p, x.s);
  if (x.l >= 0) uk_close(server.p, x.l);
  x = Conn{};
}

}  // namespace uk::lab
