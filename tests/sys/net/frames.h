// Builds real Ethernet II + IPv4 + TCP frames with valid checksums, for
// tests of the wire, the capture tap and the NIC.
#ifndef UKTLS_TESTS_SYS_NET_FRAMES_H_
#define UKTLS_TESTS_SYS_NET_FRAMES_H_

#include <arpa/inet.h>
#include <netinet/in.h>

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "sys/dev/nic_sim/nic_sim_csum.h"
#include "sys/net/ethernet.h"

namespace uk::test {

struct TcpSpec {
  ether_addr src_mac, dst_mac;
  const char* src_ip = "10.0.0.1";
  const char* dst_ip = "10.0.0.2";
  uint16_t sport = 40000, dport = 5001;
  uint32_t seq = 1000, ack = 0;
  uint8_t flags = 0x18;  // PSH|ACK
  uint16_t ip_id = 1;
  bool checksums = true;
};

inline std::vector<uint8_t> tcp_frame(const TcpSpec& s, const uint8_t* payload,
                                      size_t plen) {
  std::vector<uint8_t> f(ETHER_HDR_LEN + 20 + 20 + plen);
  memcpy(&f[0], s.dst_mac.octet, 6);
  memcpy(&f[6], s.src_mac.octet, 6);
  f[12] = 0x08;
  f[13] = 0x00;
  uint8_t* ip = &f[ETHER_HDR_LEN];
  ip[0] = 0x45;
  uint16_t tot = htons(static_cast<uint16_t>(40 + plen));
  memcpy(ip + 2, &tot, 2);
  uint16_t id = htons(s.ip_id);
  memcpy(ip + 4, &id, 2);
  ip[6] = 0x40;  // DF
  ip[8] = 64;
  ip[9] = IPPROTO_TCP;
  in_addr_t a = inet_addr(s.src_ip), b = inet_addr(s.dst_ip);
  memcpy(ip + 12, &a, 4);
  memcpy(ip + 16, &b, 4);
  uint8_t* th = ip + 20;
  uint16_t sp = htons(s.sport), dp = htons(s.dport);
  memcpy(th, &sp, 2);
  memcpy(th + 2, &dp, 2);
  uint32_t seq = htonl(s.seq), ack = htonl(s.ack);
  memcpy(th + 4, &seq, 4);
  memcpy(th + 8, &ack, 4);
  th[12] = 5 << 4;
  th[13] = s.flags;
  uint16_t win = htons(65535);
  memcpy(th + 14, &win, 2);
  if (plen) memcpy(th + 20, payload, plen);
  if (s.checksums) {
    nic_pkt_info pi;
    nic_pkt_parse(f.data(), f.size(), &pi);
    nic_ip_cksum_fill(f.data(), pi);
    nic_l4_cksum_fill(f.data(), pi);
  }
  return f;
}

// Runs a shell command and returns its standard output.
inline std::string run_cmd(const std::string& cmd) {
  std::string out;
  FILE* p = popen(cmd.c_str(), "r");
  if (!p) return out;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  pclose(p);
  return out;
}

// tshark with a private, writable home (the test sandbox has none).
inline std::string tshark(const std::string& args) {
  const char* tmp = getenv("TEST_TMPDIR");
  std::string home = tmp ? tmp : "/tmp";
  return run_cmd("HOME=" + home + " XDG_CONFIG_HOME=" + home +
                 " tshark " + args + " 2>/dev/null");
}

inline bool have_tshark() {
  return run_cmd("command -v tshark >/dev/null 2>&1 && echo yes") == "yes\n";
}

inline std::vector<std::string> lines(const std::string& s) {
  std::vector<std::string> v;
  size_t i = 0;
  while (i < s.size()) {
    size_t j = s.find('\n', i);
    if (j == std::string::npos) j = s.size();
    v.push_back(s.substr(i, j - i));
    i = j + 1;
  }
  return v;
}

}  // namespace uk::test

#endif  // UKTLS_TESTS_SYS_NET_FRAMES_H_
