// The interface MIB: net.link.generic.system.ifcount and
// net.link.generic.ifdata.<ifindex>.general, FreeBSD's sys/net/if_mib.c.
// struct if_data and struct ifmibdata have FreeBSD's layout (net/if.h,
// net/if_mib.h), so a program written against FreeBSD's headers reads the
// same bytes; uktls names its oids, where FreeBSD's netstat(1) walks the
// numeric MIB {CTL_NET, PF_LINK, NETLINK_GENERIC, IFMIB_IFDATA, index,
// IFDATA_GENERAL}.
//
// The oid of an interface exists from if_attach to if_detach (or halt);
// reading one of a destroyed interface gives ENOENT.
#ifndef UKTLS_SYS_NET_IF_MIB_H_
#define UKTLS_SYS_NET_IF_MIB_H_

#include <sys/time.h>

#include <cstdint>

namespace uk {

struct kernel;
struct ifnet;

// struct if_data (FreeBSD 11 and later): generic facts and statistics.
struct if_data {
  uint8_t ifi_type;        // IFT_*
  uint8_t ifi_physical;    // media port (unused: 0)
  uint8_t ifi_addrlen;     // link-level address length
  uint8_t ifi_hdrlen;      // link-level header length
  uint8_t ifi_link_state;  // LINK_STATE_*
  uint8_t ifi_vhid;        // carp vhid (0)
  uint16_t ifi_datalen;    // sizeof(struct if_data)
  uint32_t ifi_mtu;
  uint32_t ifi_metric;
  uint64_t ifi_baudrate;   // bits/s
  uint64_t ifi_ipackets;
  uint64_t ifi_ierrors;
  uint64_t ifi_opackets;
  uint64_t ifi_oerrors;
  uint64_t ifi_collisions;
  uint64_t ifi_ibytes;
  uint64_t ifi_obytes;
  uint64_t ifi_imcasts;
  uint64_t ifi_omcasts;
  uint64_t ifi_iqdrops;
  uint64_t ifi_oqdrops;
  uint64_t ifi_noproto;
  uint64_t ifi_hwassist;   // if_hwassist (CSUM_*)
  union {
    time_t tt;             // uptime (s) at attach: ifi_epoch
    uint64_t ph;
  } __ifi_epoch;
  union {
    timeval tv;            // last administrative change: ifi_lastchange
    struct {
      uint64_t ph1;
      uint64_t ph2;
    } ph;
  } __ifi_lastchange;
};
static_assert(sizeof(if_data) == 152, "FreeBSD's struct if_data is 152 bytes");

// struct ifmibdata: what net.link.generic.ifdata.<i>.general returns.
struct ifmibdata {
  char ifmd_name[16];      // IFNAMSIZ, NUL-terminated
  int ifmd_pcount;         // promiscuous listeners
  int ifmd_flags;          // if_flags | if_drv_flags
  int ifmd_snd_len;        // send queue length now
  int ifmd_snd_maxlen;     // send queue limit
  int ifmd_snd_drops;      // send queue drops (IFCOUNTER_OQDROPS)
  int ifmd_filler[4];
  if_data ifmd_data;
};
static_assert(sizeof(ifmibdata) == 208, "FreeBSD's struct ifmibdata is 208 bytes");

// Fills *d the way FreeBSD's if_data_copy() does (counters through
// ifp->if_get_counter()).
void if_data_copy(ifnet* ifp, if_data* d);
// Fills *md as FreeBSD's sysctl_ifdata(IFDATA_GENERAL).
void if_mibdata(ifnet* ifp, ifmibdata* md);

// Called by if_attach / if_detach (and the stack's halt): add and remove
// the interface's ifdata oid. Must not be called with NetState::if_mu held
// (registration takes the sysctl tree's lock, which handlers hold while
// they take if_mu).
void if_mib_attach(kernel& k, ifnet* ifp);
void if_mib_detach(ifnet* ifp);
// net.link.generic.system.ifcount, registered with the stack.
void if_mib_sysinit(kernel& k);

}  // namespace uk

#endif  // UKTLS_SYS_NET_IF_MIB_H_
