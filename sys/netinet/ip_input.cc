// IPv4 input and the inet domain's boot/halt and sysctls. Mirrors FreeBSD's
// sys/netinet/ip_input.c (header checks in FreeBSD's order, each counted in
// net.inet.ip.stats) and in_proto.c.
#include <arpa/inet.h>

#include <cerrno>

#include "sys/kern/kernel.h"
#include "sys/net/if_var.h"
#include "sys/netinet/ip.h"
#include "sys/netinet/ip_var.h"
#include "sys/netinet/tcp_var.h"

namespace uk {

InetState& V_inet(kernel& k) { return *k.net->inet; }

InetState::InetState(kernel& kk) : k(kk), sysctl_ctx(kk) {}
InetState::~InetState() = default;

void ip_input(kernel& k, mbuf* m) {
  InetState& in = *k.net->inet;
  in.ips.ips_total.add(1);
  if (m->m_pkthdr.len < static_cast<int>(sizeof(ip))) {
    in.ips.ips_tooshort.add(1);
    m_freem(m);
    return;
  }
  if (m->m_len < static_cast<int>(sizeof(ip)) &&
      (m = m_pullup(m, sizeof(ip))) == nullptr) {
    in.ips.ips_toosmall.add(1);
    return;
  }
  ip* iph = mtod<ip*>(m);
  if (iph->ip_v != IPVERSION) {
    in.ips.ips_badvers.add(1);
    m_freem(m);
    return;
  }
  int hlen = iph->ip_hl << 2;
  if (hlen < static_cast<int>(sizeof(ip))) {
    in.ips.ips_badhlen.add(1);
    m_freem(m);
    return;
  }
  if (hlen > m->m_len) {
    if ((m = m_pullup(m, hlen)) == nullptr) {
      in.ips.ips_badhlen.add(1);
      return;
    }
    iph = mtod<ip*>(m);
  }
  bool ok;
  if (m->m_pkthdr.csum_flags & CSUM_IP_CHECKED)
    ok = (m->m_pkthdr.csum_flags & CSUM_IP_VALID) != 0;
  else
    ok = in_cksum_buf(iph, hlen) == 0;
  if (!ok) {
    in.ips.ips_badsum.add(1);
    m_freem(m);
    return;
  }
  int ip_len = ntohs(iph->ip_len);
  if (ip_len < hlen) {
    in.ips.ips_badlen.add(1);
    m_freem(m);
    return;
  }
  if (m->m_pkthdr.len < ip_len) {
    in.ips.ips_tooshort.add(1);
    m_freem(m);
    return;
  }
  if (m->m_pkthdr.len > ip_len) m_adj(m, ip_len - m->m_pkthdr.len);
  ifnet* rcvif = m->m_pkthdr.rcvif;
  // 127/8 only arrives on a loopback interface (ip_input's "loopback
  // address on a non-loopback interface" check).
  if ((ntohl(iph->ip_dst.s_addr) >> 24) == 127 &&
      (rcvif == nullptr ||
       (rcvif->if_flags.load(std::memory_order_relaxed) & IFF_LOOPBACK) == 0)) {
    in.ips.ips_badaddr.add(1);
    m_freem(m);
    return;
  }
  if (!in_localip(k, iph->ip_dst)) {
    if (in.ipforwarding.load(std::memory_order_relaxed)) {
      ip_tryforward(k, m);
      return;
    }
    in.ips.ips_cantforward.add(1);
    m_freem(m);
    return;
  }
  if (ntohs(iph->ip_off) & (IP_MF | IP_OFFMASK)) {
    // No reassembly: every uktls sender sets DF and sizes to the MTU.
    in.ips.ips_fragments.add(1);
    m_freem(m);
    return;
  }
  in.ips.ips_delivered.add(1);
  switch (iph->ip_p) {
    case IPPROTO_TCP:
      tcp_input(k, m, hlen);
      return;
    default:
      in.ips.ips_noproto.add(1);
      m_freem(m);
      return;
  }
}

const char* tcp_state_name(int s) {
  static const char* const names[] = {
      "CLOSED",     "LISTEN",     "SYN_SENT",  "SYN_RCVD",
      "ESTABLISHED", "CLOSE_WAIT", "FIN_WAIT_1", "CLOSING",
      "LAST_ACK",   "FIN_WAIT_2", "TIME_WAIT"};
  return (s >= 0 && s <= TCPS_TIME_WAIT) ? names[s] : "?";
}

static void add_stats(sysctl_ctx_list& ctx, InetState& in) {
#define IPS(f, d) ctx.add_counter("net.inet.ip.stats." #f, CTLFLAG_RD, &in.ips.ips_##f, d)
  IPS(total, "total packets received");
  IPS(badsum, "checksum bad");
  IPS(tooshort, "packet too short");
  IPS(toosmall, "not enough data");
  IPS(badhlen, "ip header length < data size");
  IPS(badlen, "ip length < ip header length");
  IPS(fragments, "fragments received");
  IPS(cantforward, "packets rcvd for unreachable dest");
  IPS(noproto, "unknown or unsupported protocol");
  IPS(delivered, "datagrams delivered to upper level");
  IPS(localout, "total ip packets generated here");
  IPS(odropped, "lost packets due to nobufs, etc.");
  IPS(noroute, "packets discarded due to no route");
  IPS(badvers, "ip version != 4");
  IPS(toolong, "ip length > max ip packet size");
  IPS(badaddr, "invalid address on header");
  IPS(forward, "packets forwarded");
#undef IPS
#define TCPS(f, d) ctx.add_counter("net.inet.tcp.stats." #f, CTLFLAG_RD, &in.tcps.tcps_##f, d)
  TCPS(connattempt, "connections initiated");
  TCPS(accepts, "connections accepted");
  TCPS(connects, "connections established");
  TCPS(drops, "connections dropped");
  TCPS(conndrops, "embryonic connections dropped");
  TCPS(closed, "conn. closed (includes drops)");
  TCPS(segstimed, "segs where we tried to get rtt");
  TCPS(rttupdated, "times we succeeded");
  TCPS(delack, "delayed acks sent");
  TCPS(timeoutdrop, "conn. dropped in rxmt timeout");
  TCPS(rexmttimeo, "retransmit timeouts");
  TCPS(persisttimeo, "persist timeouts");
  TCPS(keeptimeo, "keepalive timeouts");
  TCPS(keepprobe, "keepalive probes sent");
  TCPS(keepdrops, "connections dropped in keepalive");
  TCPS(sndtotal, "total packets sent");
  TCPS(sndpack, "data packets sent");
  TCPS(sndbyte, "data bytes sent");
  TCPS(sndrexmitpack, "data packets retransmitted");
  TCPS(sndrexmitbyte, "data bytes retransmitted");
  TCPS(sndacks, "ack-only packets sent");
  TCPS(sndprobe, "window probes sent");
  TCPS(sndurg, "packets sent with URG only");
  TCPS(sndwinup, "window update-only packets sent");
  TCPS(sndctrl, "control (SYN|FIN|RST) packets sent");
  TCPS(rcvtotal, "total packets received");
  TCPS(rcvpack, "packets received in sequence");
  TCPS(rcvbyte, "bytes received in sequence");
  TCPS(rcvbadsum, "packets received with ccksum errs");
  TCPS(rcvbadoff, "packets received with bad offset");
  TCPS(rcvshort, "packets received too short");
  TCPS(rcvduppack, "duplicate-only packets received");
  TCPS(rcvdupbyte, "duplicate-only bytes received");
  TCPS(rcvpartduppack, "packets with some duplicate data");
  TCPS(rcvpartdupbyte, "dup. bytes in part-dup. packets");
  TCPS(rcvoopack, "out-of-order packets received");
  TCPS(rcvoobyte, "out-of-order bytes received");
  TCPS(rcvpackafterwin, "packets with data after window");
  TCPS(rcvbyteafterwin, "bytes rcvd after window");
  TCPS(rcvafterclose, "packets rcvd after \"close\"");
  TCPS(rcvwinprobe, "rcvd window probe packets");
  TCPS(rcvdupack, "rcvd duplicate acks");
  TCPS(rcvacktoomuch, "rcvd acks for unsent data");
  TCPS(rcvackpack, "rcvd ack packets");
  TCPS(rcvackbyte, "bytes acked by rcvd acks");
  TCPS(rcvwinupd, "rcvd window update packets");
  TCPS(predack, "times hdr predict ok for acks");
  TCPS(preddat, "times hdr predict ok for data pkts");
  TCPS(listendrop, "listen queue overflows");
  TCPS(badrst, "ignored RSTs in the window");
  TCPS(fastrexmt, "fast retransmits");
  TCPS(fastrecovery, "fast recovery episodes");
  TCPS(rcvreassfull, "packets dropped for lack of reassembly space");
  TCPS(noport, "segments for closed ports (RST sent)");
  TCPS(sack_recovery_episode, "SACK recovery episodes");
  TCPS(sack_rexmits, "SACK rexmit segments");
  TCPS(sack_rexmit_bytes, "SACK rexmit bytes");
  TCPS(sack_rcv_blocks, "SACK blocks (options) received");
  TCPS(sack_send_blocks, "SACK blocks (options) sent");
  TCPS(limitedxmit, "segments sent by limited transmit (RFC 3042)");
#undef TCPS
}

int inet_attach(kernel& k) {
  auto* in = new InetState(k);
  k.net->inet = in;
  auto& c = in->sysctl_ctx;
  c.add_int("net.inet.ip.ttl", CTLFLAG_RW, &in->ip_defttl, "Maximum TTL on IP packets");
  c.add_int("net.inet.ip.forwarding", CTLFLAG_RW, &in->ipforwarding,
            "Enable IP forwarding between interfaces");
  c.add_int("net.inet.ip.portrange.first", CTLFLAG_RW, &in->portrange_first, "");
  c.add_int("net.inet.ip.portrange.last", CTLFLAG_RW, &in->portrange_last, "");
  c.add_int("net.inet.tcp.mssdflt", CTLFLAG_RW, &in->tcp_mssdflt,
            "Default TCP Maximum Segment Size");
  c.add_int("net.inet.tcp.minmss", CTLFLAG_RW, &in->tcp_minmss,
            "Minimum TCP Maximum Segment Size");
  c.add_int("net.inet.tcp.sendspace", CTLFLAG_RW, &in->tcp_sendspace,
            "Initial send socket buffer size");
  c.add_int("net.inet.tcp.recvspace", CTLFLAG_RW, &in->tcp_recvspace,
            "Initial receive socket buffer size");
  c.add_int("net.inet.tcp.tso", CTLFLAG_RW, &in->tcp_do_tso,
            "Enable TCP Segmentation Offload");
  c.add_int("net.inet.tcp.sendbuf_auto", CTLFLAG_RW, &in->tcp_do_autosndbuf,
            "Enable automatic send buffer sizing");
  c.add_int("net.inet.tcp.sendbuf_inc", CTLFLAG_RW, &in->tcp_autosndbuf_inc,
            "Incrementor step size of automatic send buffer");
  c.add_int("net.inet.tcp.sendbuf_max", CTLFLAG_RW, &in->tcp_autosndbuf_max,
            "Max size of automatic send buffer");
  c.add_int("net.inet.tcp.sendbuf_auto_lowat", CTLFLAG_RW, &in->tcp_sendbuf_auto_lowat,
            "Modify threshold for auto send buffer growth to account for SO_SNDLOWAT");
  c.add_int("net.inet.tcp.recvbuf_auto", CTLFLAG_RW, &in->tcp_do_autorcvbuf,
            "Enable automatic receive buffer sizing");
  c.add_int("net.inet.tcp.recvbuf_max", CTLFLAG_RW, &in->tcp_autorcvbuf_max,
            "Max size of automatic receive buffer");
  c.add_int("net.inet.tcp.delayed_ack", CTLFLAG_RW, &in->tcp_delack_enabled,
            "Delay ACK to try and piggyback it onto a data packet");
  c.add_int("net.inet.tcp.delacktime", CTLFLAG_RW, &in->tcp_delacktime,
            "Time before a delayed ACK is sent (ms)");
  c.add_int("net.inet.tcp.rexmit_initial", CTLFLAG_RW, &in->tcp_rexmit_initial,
            "Initial Retransmission Timeout (ms)");
  c.add_int("net.inet.tcp.rexmit_min", CTLFLAG_RW, &in->tcp_rexmit_min,
            "Minimum Retransmission Timeout (ms)");
  c.add_int("net.inet.tcp.rexmit_slop", CTLFLAG_RW, &in->tcp_rexmit_slop,
            "Retransmission Timer Slop (ms)");
  c.add_int("net.inet.tcp.msl", CTLFLAG_RW, &in->tcp_msl,
            "Maximum Segment Lifetime (ms)");
  c.add_int("net.inet.tcp.msl_local", CTLFLAG_RW, &in->tcp_msl_local,
            "Maximum Segment Lifetime for local communication (ms)");
  c.add_int("net.inet.tcp.keepinit", CTLFLAG_RW, &in->tcp_keepinit,
            "time to establish connection (ms)");
  c.add_int("net.inet.tcp.keepidle", CTLFLAG_RW, &in->tcp_keepidle,
            "time before keepalive probes begin (ms)");
  c.add_int("net.inet.tcp.keepintvl", CTLFLAG_RW, &in->tcp_keepintvl,
            "time between keepalive probes (ms)");
  c.add_int("net.inet.tcp.keepcnt", CTLFLAG_RW, &in->tcp_keepcnt,
            "Number of keepalive probes to send");
  c.add_int("net.inet.tcp.finwait2_timeout", CTLFLAG_RW, &in->tcp_finwait2_timeout,
            "FIN-WAIT2 timeout (ms)");
  c.add_int("net.inet.tcp.initcwnd_segments", CTLFLAG_RW, &in->tcp_initcwnd_segments,
            "Slow-start flight size (initial congestion window) in number of segments");
  c.add_int("net.inet.tcp.rfc1323", CTLFLAG_RW, &in->tcp_do_rfc1323,
            "Enable rfc1323 (high performance TCP) extensions");
  c.add_int("net.inet.tcp.sack.enable", CTLFLAG_RW, &in->tcp_do_sack,
            "Enable/Disable TCP SACK support");
  c.add_int("net.inet.tcp.rfc3042", CTLFLAG_RW, &in->tcp_do_rfc3042,
            "Enable RFC 3042 (Limited Transmit)");
  c.add_int("net.inet.tcp.reass.maxqueuelen", CTLFLAG_RW, &in->tcp_reass_maxqueuelen,
            "Maximum number of TCP Segments per Reassembly Queue");
  c.add_int("net.inet.tcp.blackhole", CTLFLAG_RW, &in->tcp_blackhole,
            "Do not send RST on segments to closed ports");
  add_stats(c, *in);
  return 0;
}

// Halt: every TCP connection is torn down (no RST reaches anyone: netisr
// has stopped), timers drained, and the state freed.
void inet_detach(kernel& k) {
  InetState* in = k.net->inet;
  if (in == nullptr) return;
  std::vector<RefPtr<inpcb>> all;
  {
    MutexLock l(&in->tcbinfo.ipi_lock);
    for (inpcb* inp : in->tcbinfo.ipi_all) all.emplace_back(inp);
  }
  for (auto& ref : all) {
    inpcb* inp = ref.get();
    inp->inp_lock.Lock();
    tcpcb* tp = intotcpcb(inp);
    if (tp != nullptr) {
      tp->t_inpcb->inp_lock.AssertHeld();
      tcp_timer_stop_all(tp);
      if (tp->t_state != TCPS_CLOSED) tcp_drop(tp, ECONNABORTED);
    }
    if (!(inp->inp_flags.load() & INP_FREED)) {
      tcp_detach_socket(inp);
      in_pcbfree(inp);
    }
    inp_unlock(inp);
    if (tp != nullptr) callout_drain(&tp->t_callout);
  }
  all.clear();
  k.net->inet = nullptr;
  delete in;
}

}  // namespace uk
