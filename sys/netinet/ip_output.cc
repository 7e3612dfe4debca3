// IPv4 output. Mirrors FreeBSD's sys/netinet/ip_output.c: header fields,
// route lookup, broadcast refusal, checksum offload against the interface's
// if_hwassist (in_delayed_cksum otherwise), and unmapped mbufs made mapped
// ones, page by page, for an interface without IFCAP_MEXTPG
// (mb_unmapped_to_ext),
// and the send-tag check of ip_output_send (NIC TLS).
#include <arpa/inet.h>

#include <cerrno>
#include <cstddef>

#include "sys/kern/kernel.h"
#include "sys/net/if_snd_tag.h"
#include "sys/net/if_var.h"
#include "sys/net/route.h"
#include "sys/netinet/ip.h"
#include "sys/netinet/ip_var.h"
#include "sys/netinet/tcp.h"

namespace uk {

void in_delayed_cksum(mbuf* m) {
  ip* iph = mtod<ip*>(m);
  int off = iph->ip_hl << 2;
  int len = ntohs(iph->ip_len) - off;
  uint16_t csum = static_cast<uint16_t>(~in_cksum_fold(in_cksum_mbuf(m, off, len)));
  int where = off + m->m_pkthdr.csum_data;
  if (where + 2 <= m->m_len)
    memcpy(mtod(m) + where, &csum, 2);
  else
    m_copyback(m, where, 2, &csum);
}

static bool chain_has_extpg(const mbuf* m) {
  for (; m != nullptr; m = m->m_next)
    if (m->m_flags & M_EXTPG) return true;
  return false;
}

// Unencrypted TLS records (IFNET mode): M_EXTPG with a session attached.
static bool chain_has_tls_plaintext(const mbuf* m) {
  for (; m != nullptr; m = m->m_next)
    if ((m->m_flags & M_EXTPG) && m->m_epg_tls != nullptr) return true;
  return false;
}

int ip_output(kernel& k, mbuf* m, int flags) {
  InetState& in = *k.net->inet;
  ip* iph = mtod<ip*>(m);
  iph->ip_v = IPVERSION;
  iph->ip_hl = sizeof(ip) >> 2;
  iph->ip_off = htons(IP_DF);  // path MTU discovery, as FreeBSD's TCP
  iph->ip_id = htons(static_cast<uint16_t>(
      in.ip_id.fetch_add(1, std::memory_order_relaxed)));
  iph->ip_sum = 0;
  if (iph->ip_dst.s_addr == INADDR_BROADCAST && !(flags & IP_ALLOWBROADCAST)) {
    m_freem(m);
    return EACCES;
  }
  nhop4 nh;
  if (int e = k.net->rt->lookup(iph->ip_dst, &nh)) {
    in.ips.ips_noroute.add(1);
    m_freem(m);
    return e;
  }
  ifnet* ifp = nh.ifp.get();
  // A TSO packet is cut to the MTU by the interface, if it still does TSO.
  const bool tso = (m->m_pkthdr.csum_flags & CSUM_IP_TSO) != 0 &&
                   (ifp->if_hwassist.load(std::memory_order_relaxed) & CSUM_IP_TSO) != 0;
  if (!tso && ntohs(iph->ip_len) > ifp->if_mtu.load(std::memory_order_relaxed)) {
    in.ips.ips_odropped.add(1);
    m_freem(m);
    return EMSGSIZE;
  }
  // NIC TLS: plaintext records leave only through the interface holding
  // their keys (FreeBSD's ip_output_send: a tag for another interface is
  // EAGAIN, which makes TCP reset the tag). An interface that no longer
  // offers TXTLS cannot use the tag either.
  if ((m->m_pkthdr.csum_flags & CSUM_SND_TAG) != 0) {
    m_snd_tag* mst = m->m_pkthdr.snd_tag;
    bool tls_tag = mst->type() == IF_SND_TAG_TYPE_TLS ||
                   mst->type() == IF_SND_TAG_TYPE_TLS_RATE_LIMIT;
    if (mst->ifp != ifp ||
        (tls_tag && !(ifp->if_capenable.load(std::memory_order_relaxed) & IFCAP_TXTLS4))) {
      in.ips.ips_odropped.add(1);
      m_freem(m);
      return EAGAIN;
    }
  } else if (chain_has_tls_plaintext(m)) {
    in.ips.ips_odropped.add(1);
    m_freem(m);
    return EAGAIN;
  }
  if ((ifp->if_capenable.load(std::memory_order_relaxed) & IFCAP_MEXTPG) == 0 &&
      chain_has_extpg(m)) {
    m = mb_unmapped_to_ext(m);
    if (m == nullptr) {
      in.ips.ips_odropped.add(1);
      return ENOBUFS;
    }
    iph = mtod<ip*>(m);
  }
  uint32_t hwassist = ifp->if_hwassist.load(std::memory_order_relaxed);
  uint32_t sw = m->m_pkthdr.csum_flags & ~hwassist;
  // A NIC that encrypts a segment must checksum what it sends, so the TCP
  // checksum of a packet carrying a TLS send tag is always the NIC's.
  if ((m->m_pkthdr.csum_flags & CSUM_SND_TAG) != 0) sw &= ~CSUM_DELAY_DATA;
  if (sw & CSUM_DELAY_DATA) {
    in_delayed_cksum(m);
    m->m_pkthdr.csum_flags &= ~CSUM_DELAY_DATA;
  }
  if ((hwassist & CSUM_IP) == 0) {
    iph->ip_sum = in_cksum_buf(iph, iph->ip_hl << 2);
    m->m_pkthdr.csum_flags &= ~CSUM_IP;
  } else {
    m->m_pkthdr.csum_flags |= CSUM_IP;
  }
  in.ips.ips_localout.add(1);
  return ifp->if_output(m, &nh.gw);
}

}  // namespace uk
