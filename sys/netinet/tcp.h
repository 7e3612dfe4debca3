// The TCP header and option numbers (FreeBSD's netinet/tcp.h), fields in
// network byte order. Socket option numbers are the host's (TCP_NODELAY,
// TCP_MAXSEG ...) plus FreeBSD's KTLS ones from sys/sys/ktls.h.
#ifndef UKTLS_SYS_NETINET_TCP_H_
#define UKTLS_SYS_NETINET_TCP_H_

#include <cstdint>

// Socket options at IPPROTO_TCP (same numbers on FreeBSD and the host).
// The host's <netinet/tcp.h> is not included: its TH_* and TCPOPT_* macros
// would collide with the definitions below.
#ifndef TCP_NODELAY
#define TCP_NODELAY 1
#endif
#ifndef TCP_MAXSEG
#define TCP_MAXSEG 2
#endif

namespace uk {

using tcp_seq = uint32_t;

struct tcphdr {
  uint16_t th_sport;
  uint16_t th_dport;
  tcp_seq th_seq;
  tcp_seq th_ack;
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
  uint8_t th_x2 : 4, th_off : 4;
#else
  uint8_t th_off : 4, th_x2 : 4;
#endif
  uint8_t th_flags;
  uint16_t th_win;
  uint16_t th_sum;
  uint16_t th_urp;
} __attribute__((packed));
static_assert(sizeof(tcphdr) == 20, "struct tcphdr");

enum : uint8_t {
  TH_FIN = 0x01,
  TH_SYN = 0x02,
  TH_RST = 0x04,
  TH_PUSH = 0x08,
  TH_ACK = 0x10,
  TH_URG = 0x20,
  TH_ECE = 0x40,
  TH_CWR = 0x80,
};

enum : uint8_t {
  TCPOPT_EOL = 0,
  TCPOPT_NOP = 1,
  TCPOPT_MAXSEG = 2,
  TCPOLEN_MAXSEG = 4,
  TCPOPT_WINDOW = 3,
  TCPOLEN_WINDOW = 3,
  TCPOPT_SACK_PERMITTED = 4,
  TCPOPT_SACK = 5,
  TCPOPT_TIMESTAMP = 8,
  TCPOLEN_TIMESTAMP = 10,
};

constexpr int TCP_MSS = 536;       // default MSS (RFC 879)
constexpr int TCP_MINMSS = 216;    // net.inet.tcp.minmss
constexpr int TCP_MAXWIN = 65535;  // largest unscaled window
constexpr int TCP_MAX_WINSHIFT = 14;
constexpr int TCP_MAXOLEN = 40;

}  // namespace uk

#endif  // UKTLS_SYS_NETINET_TCP_H_
