// The loopback interface lo0. Mirrors FreeBSD's sys/net/if_loop.c:
// MTU 16384, checksum offload on (the stack skips checksums it would only
// verify itself: looutput marks packets CSUM_DATA_VALID | CSUM_PSEUDO_HDR |
// CSUM_IP_CHECKED | CSUM_IP_VALID when RXCSUM is enabled), and every packet
// is queued to netisr (if_simloop).
//
// Unmapped (M_EXTPG) mbufs: lo0 can carry them (IFCAP_MEXTPG) but does not
// by default, so ip_output maps them first (mb_unmapped_to_ext: read-only
// mbufs pointing into the pages, TLS headers and trailers copied). When mextpg is enabled the receiver gets references to the sender's
// pages; lo0 then marks every mbuf M_RDONLY so the receive side (KTLS RX
// decrypting in place, say) never writes into the sender's pages. Clusters
// shared with the sender's retransmit queue are marked read-only the same
// way.
#include <cerrno>

#include "sys/kern/kernel.h"
#include "sys/net/if_var.h"
#include "sys/net/netisr.h"

namespace uk {

namespace {

constexpr int LOMTU = 16384;
constexpr uint32_t LO_CSUM_FEATURES =
    static_cast<uint32_t>(CSUM_IP) | static_cast<uint32_t>(CSUM_TCP);
constexpr uint32_t LO_CSUM_SET =
    CSUM_DATA_VALID | CSUM_PSEUDO_HDR | CSUM_IP_CHECKED | CSUM_IP_VALID;

struct lo_ifnet final : ifnet {
  explicit lo_ifnet(kernel& k) : ifnet(k, "lo0") {
    if_mtu.store(LOMTU);
    if_flags.store(IFF_LOOPBACK | IFF_MULTICAST);
    if_capabilities.store(IFCAP_HWCSUM | IFCAP_LINKSTATE | IFCAP_MEXTPG);
    if_capenable.store(IFCAP_HWCSUM | IFCAP_LINKSTATE);
    if_hwassist.store(LO_CSUM_FEATURES);
  }

  int if_setcap(uint32_t capenable, uint32_t capenable2) override {
    if (int e = ifnet::if_setcap(capenable, capenable2)) return e;
    if_hwassist.store((capenable & IFCAP_TXCSUM) ? LO_CSUM_FEATURES : 0);
    return 0;
  }

  int if_output(mbuf* m, const sockaddr_in*) override {
    if ((if_flags.load(std::memory_order_relaxed) & IFF_UP) == 0) {
      m_freem(m);
      if_oerrors.add(1);
      return ENETDOWN;
    }
    int len = m->m_pkthdr.len;
    if_opackets.add(1);
    if_obytes.add(len);
    // looutput: with RXCSUM on, the checksums that were offloaded (or
    // computed) need no verification on the way back in.
    if (if_capenable.load(std::memory_order_relaxed) & IFCAP_RXCSUM) {
      m->m_pkthdr.csum_data = 0xffff;
      m->m_pkthdr.csum_flags = LO_CSUM_SET;
    } else {
      m->m_pkthdr.csum_flags = 0;
    }
    for (mbuf* n = m; n != nullptr; n = n->m_next)
      if (n->m_flags & (M_EXT | M_EXTPG)) n->m_flags |= M_RDONLY;
    m->m_pkthdr.rcvif = this;
    if_ipackets.add(1);
    if_ibytes.add(len);
    return if_k.net->isr->queue(m);
  }
};

}  // namespace

RefPtr<ifnet> lo_create(kernel& k) {
  return RefPtr<ifnet>::adopt(new lo_ifnet(k));
}

void if_input(ifnet* ifp, mbuf* m) {
  m->m_pkthdr.rcvif = ifp;
  ifp->if_ipackets.add(1);
  ifp->if_ibytes.add(m->m_pkthdr.len);
  ifp->if_k.net->isr->queue(m);
}

}  // namespace uk
