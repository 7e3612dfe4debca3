// IPv4 and TCP per-kernel state: statistics (FreeBSD's struct ipstat and
// struct tcpstat, exported as net.inet.ip.stats.* and net.inet.tcp.stats.*
// counters), the TCP pcb table, and the net.inet.* knobs with FreeBSD's
// names and defaults (times in ms where FreeBSD's sysctls are in ms).
//
// Locking: counters and knobs are atomics; tcbinfo has its own lock.
#ifndef UKTLS_SYS_NETINET_IP_VAR_H_
#define UKTLS_SYS_NETINET_IP_VAR_H_

#include <atomic>

#include "sys/netinet/in_pcb.h"
#include "sys/sys/counter.h"
#include "sys/sys/mbuf.h"
#include "sys/sys/sysctl.h"

namespace uk {

struct kernel;
struct ifnet;

struct ipstat {
  counter_u64 ips_total;        // total packets received
  counter_u64 ips_badsum;       // checksum bad
  counter_u64 ips_tooshort;     // packet too short
  counter_u64 ips_toosmall;     // not enough data
  counter_u64 ips_badhlen;      // ip header length < data size
  counter_u64 ips_badlen;       // ip length < ip header length
  counter_u64 ips_fragments;    // fragments received (dropped: no reassembly)
  counter_u64 ips_cantforward;  // not for us, not forwarded
  counter_u64 ips_noproto;      // unknown or unsupported protocol
  counter_u64 ips_delivered;    // datagrams delivered to upper level
  counter_u64 ips_localout;     // total ip packets generated here
  counter_u64 ips_odropped;     // lost packets due to nobufs, etc.
  counter_u64 ips_noroute;      // packets discarded for no route
  counter_u64 ips_badvers;      // ip version != 4
  counter_u64 ips_toolong;      // ip length > max ip packet size
  counter_u64 ips_badaddr;      // invalid address on header
  counter_u64 ips_forward;      // packets forwarded (ip_tryforward)
};

struct tcpstat {
  counter_u64 tcps_connattempt;  // connections initiated
  counter_u64 tcps_accepts;      // connections accepted
  counter_u64 tcps_connects;     // connections established
  counter_u64 tcps_drops;        // connections dropped
  counter_u64 tcps_conndrops;    // embryonic connections dropped
  counter_u64 tcps_closed;       // conn. closed (includes drops)
  counter_u64 tcps_segstimed;    // segs where we tried to get rtt
  counter_u64 tcps_rttupdated;   // times we succeeded
  counter_u64 tcps_delack;       // delayed acks sent
  counter_u64 tcps_timeoutdrop;  // conn. dropped in rxmt timeout
  counter_u64 tcps_rexmttimeo;   // retransmit timeouts
  counter_u64 tcps_persisttimeo; // persist timeouts
  counter_u64 tcps_keeptimeo;    // keepalive timeouts
  counter_u64 tcps_keepprobe;    // keepalive probes sent
  counter_u64 tcps_keepdrops;    // connections dropped in keepalive
  counter_u64 tcps_sndtotal;     // total packets sent
  counter_u64 tcps_sndpack;      // data packets sent
  counter_u64 tcps_sndbyte;      // data bytes sent
  counter_u64 tcps_sndrexmitpack;  // data packets retransmitted
  counter_u64 tcps_sndrexmitbyte;  // data bytes retransmitted
  counter_u64 tcps_sndacks;      // ack-only packets sent
  counter_u64 tcps_sndprobe;     // window probes sent
  counter_u64 tcps_sndurg;       // packets sent with URG only
  counter_u64 tcps_sndwinup;     // window update-only packets sent
  counter_u64 tcps_sndctrl;      // control (SYN|FIN|RST) packets sent
  counter_u64 tcps_rcvtotal;     // total packets received
  counter_u64 tcps_rcvpack;      // packets received in sequence
  counter_u64 tcps_rcvbyte;      // bytes received in sequence
  counter_u64 tcps_rcvbadsum;    // packets received with ccksum errs
  counter_u64 tcps_rcvbadoff;    // packets received with bad offset
  counter_u64 tcps_rcvshort;     // packets received too short
  counter_u64 tcps_rcvduppack;   // duplicate-only packets received
  counter_u64 tcps_rcvdupbyte;   // duplicate-only bytes received
  counter_u64 tcps_rcvpartduppack;  // packets with some duplicate data
  counter_u64 tcps_rcvpartdupbyte;  // dup. bytes in part-dup. packets
  counter_u64 tcps_rcvoopack;    // out-of-order packets received
  counter_u64 tcps_rcvoobyte;    // out-of-order bytes received
  counter_u64 tcps_rcvpackafterwin;  // packets with data after window
  counter_u64 tcps_rcvbyteafterwin;  // bytes rcvd after window
  counter_u64 tcps_rcvafterclose;    // packets rcvd after "close"
  counter_u64 tcps_rcvwinprobe;  // rcvd window probe packets
  counter_u64 tcps_rcvdupack;    // rcvd duplicate acks
  counter_u64 tcps_rcvacktoomuch;  // rcvd acks for unsent data
  counter_u64 tcps_rcvackpack;   // rcvd ack packets
  counter_u64 tcps_rcvackbyte;   // bytes acked by rcvd acks
  counter_u64 tcps_rcvwinupd;    // rcvd window update packets
  counter_u64 tcps_predack;      // times hdr predict ok for acks
  counter_u64 tcps_preddat;      // times hdr predict ok for data pkts
  counter_u64 tcps_listendrop;   // listen queue overflows
  counter_u64 tcps_badrst;       // ignored RSTs in the window
  counter_u64 tcps_fastrexmt;    // fast retransmits (NewReno)
  counter_u64 tcps_fastrecovery; // fast recovery episodes
  counter_u64 tcps_rcvreassfull; // packets dropped: reassembly queue full
  counter_u64 tcps_noport;       // segments for no pcb (RST sent)
  counter_u64 tcps_sack_recovery_episode;  // SACK recovery episodes
  counter_u64 tcps_sack_rexmits;      // SACK rexmit segments
  counter_u64 tcps_sack_rexmit_bytes; // SACK rexmit bytes
  counter_u64 tcps_sack_rcv_blocks;   // SACK blocks (options) received
  counter_u64 tcps_sack_send_blocks;  // SACK blocks (options) sent
  counter_u64 tcps_limitedxmit;       // segments sent by limited transmit
};

// FreeBSD TCP states.
enum tcp_state : int {
  TCPS_CLOSED = 0,
  TCPS_LISTEN = 1,
  TCPS_SYN_SENT = 2,
  TCPS_SYN_RECEIVED = 3,
  TCPS_ESTABLISHED = 4,
  TCPS_CLOSE_WAIT = 5,
  TCPS_FIN_WAIT_1 = 6,
  TCPS_CLOSING = 7,
  TCPS_LAST_ACK = 8,
  TCPS_FIN_WAIT_2 = 9,
  TCPS_TIME_WAIT = 10,
};
const char* tcp_state_name(int s);

struct InetState final {
  explicit InetState(kernel& k);
  ~InetState();

  kernel& k;
  ipstat ips;
  tcpstat tcps;
  inpcbinfo tcbinfo;
  std::atomic<uint32_t> ip_id{1};

  // net.inet.ip.*
  std::atomic<int> ip_defttl{IPDEFTTL_};
  std::atomic<int> ipforwarding{0};  // net.inet.ip.forwarding
  std::atomic<int> portrange_first{10000};
  std::atomic<int> portrange_last{65535};
  // net.inet.tcp.* (times in ms)
  std::atomic<int> tcp_mssdflt{536};
  std::atomic<int> tcp_minmss{216};
  std::atomic<int> tcp_sendspace{32768};
  std::atomic<int> tcp_recvspace{65536};
  std::atomic<int> tcp_do_tso{1};  // net.inet.tcp.tso
  std::atomic<int> tcp_do_autosndbuf{1};
  std::atomic<int> tcp_autosndbuf_inc{8192};
  std::atomic<int> tcp_autosndbuf_max{2097152};
  std::atomic<int> tcp_sendbuf_auto_lowat{0};
  std::atomic<int> tcp_do_autorcvbuf{1};
  std::atomic<int> tcp_autorcvbuf_max{2097152};
  std::atomic<int> tcp_delack_enabled{1};
  std::atomic<int> tcp_delacktime{40};
  std::atomic<int> tcp_rexmit_initial{1000};
  std::atomic<int> tcp_rexmit_min{30};
  std::atomic<int> tcp_rexmit_slop{200};
  std::atomic<int> tcp_msl{30000};
  // uktls default: a short TIME_WAIT for loopback peers (FreeBSD 14's
  // net.inet.tcp.msl_local is 10 ms).
  std::atomic<int> tcp_msl_local{10};
  std::atomic<int> tcp_keepinit{75000};
  std::atomic<int> tcp_keepidle{7200000};
  std::atomic<int> tcp_keepintvl{75000};
  std::atomic<int> tcp_keepcnt{8};
  std::atomic<int> tcp_finwait2_timeout{60000};
  std::atomic<int> tcp_initcwnd_segments{10};
  std::atomic<int> tcp_do_rfc1323{1};
  std::atomic<int> tcp_do_sack{1};     // net.inet.tcp.sack.enable
  std::atomic<int> tcp_do_rfc3042{1};  // limited transmit
  std::atomic<int> tcp_reass_maxqueuelen{100};
  std::atomic<int> tcp_blackhole{0};

  static constexpr int IPDEFTTL_ = 64;

  sysctl_ctx_list sysctl_ctx;
};

// IP entry points.
// Receives one packet (consumed); runs on the netisr thread.
void ip_input(kernel& k, mbuf* m);
// Forwards a packet not addressed to this host (ip_fastfwd.cc, as FreeBSD's
// ip_tryforward): TTL, route, the next hop's interface. Consumes m.
void ip_tryforward(kernel& k, mbuf* m);
// Sends one packet whose IP header the caller left room for at the front
// (m->m_data points at struct ip, ip_len/ip_p/ip_src/ip_dst/ip_tos/ip_ttl
// filled in; ip_output fills version, header length, id, offset, and the
// checksum or asks the interface to). Consumes m. Returns 0 or an errno.
int ip_output(kernel& k, mbuf* m, int flags);
enum : int { IP_FORWARDING = 0x1, IP_ROUTETOIF = 0x2, IP_ALLOWBROADCAST = 0x4 };

// Computes a delayed TCP checksum in software (in_delayed_cksum).
void in_delayed_cksum(mbuf* m);

InetState& V_inet(kernel& k);

}  // namespace uk

#endif  // UKTLS_SYS_NETINET_IP_VAR_H_
