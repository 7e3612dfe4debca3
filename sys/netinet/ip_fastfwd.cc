// IPv4 forwarding for gateway kernels, as FreeBSD's ip_tryforward()
// (netinet/ip_fastfwd.c): with net.inet.ip.forwarding=1, a packet for
// another host is routed out of the next hop's interface with its TTL
// decremented. No ICMP errors are generated (FreeBSD would send time
// exceeded, unreachable or needs-fragmentation); such packets are counted
// in ips_cantforward and dropped.
#include <netinet/in.h>

#include "sys/kern/kernel.h"
#include "sys/net/if_var.h"
#include "sys/net/route.h"
#include "sys/netinet/ip.h"
#include "sys/netinet/ip_var.h"

namespace uk {

void ip_tryforward(kernel& k, mbuf* m) {
  InetState& in = *k.net->inet;
  ip* iph = mtod<ip*>(m);
  const int hlen = iph->ip_hl << 2;
  const uint32_t dst = ntohl(iph->ip_dst.s_addr);
  // Never forward broadcasts, multicast, 0/8 or loopback (ip_tryforward's
  // address checks).
  if (iph->ip_ttl <= 1 || dst == INADDR_BROADCAST || IN_MULTICAST(dst) ||
      (dst >> 24) == 0 || (dst >> 24) == 127) {
    in.ips.ips_cantforward.add(1);
    m_freem(m);
    return;
  }
  nhop4 nh;
  if (k.net->rt->lookup(iph->ip_dst, &nh) != 0) {
    in.ips.ips_noroute.add(1);
    in.ips.ips_cantforward.add(1);
    m_freem(m);
    return;
  }
  if (ntohs(iph->ip_len) > nh.ifp->if_mtu.load(std::memory_order_relaxed)) {
    in.ips.ips_cantforward.add(1);  // DF is always set by uktls senders
    m_freem(m);
    return;
  }
  iph->ip_ttl--;
  iph->ip_sum = 0;
  iph->ip_sum = in_cksum_buf(iph, hlen);
  // Receive-side checksum results must not read as transmit requests.
  m->m_pkthdr.csum_flags = 0;
  m->m_pkthdr.rcvif = nullptr;
  in.ips.ips_forward.add(1);
  nh.ifp->if_output(m, &nh.gw);
}

}  // namespace uk
