// Network interfaces (struct ifnet) and the kernel's network state. Mirrors
// FreeBSD's sys/net/if.h / if_var.h: an interface has flags, an MTU,
// capabilities (if_capabilities = what it can do, if_capenable = what is on;
// IFCAP_* values as FreeBSD's if.h), checksum assists (if_hwassist), IPv4
// addresses, counters, and an output method. Drivers (lo0 here, the
// simulated NIC later) derive from ifnet and hand received packets to
// if_input(), which queues them for the netisr thread.
//
// Locking: NetState::if_mu guards the interface list and every ifnet's
// address list; flags/MTU/capabilities are atomics read on the data path.
// if_output() is called with protocol locks held (inpcb) and must not sleep
// or call back into the protocols: lo0 only queues.
#ifndef UKTLS_SYS_NET_IF_VAR_H_
#define UKTLS_SYS_NET_IF_VAR_H_

#include <netinet/in.h>

#include <atomic>
#include <cerrno>
#include <memory>
#include <string>
#include <vector>

#include "sys/net/if_cap.h"
#include "sys/net/if_snd_tag.h"
#include "sys/sys/counter.h"
#include "sys/sys/lock.h"
#include "sys/sys/mbuf.h"
#include "sys/sys/refcount.h"
#include "sys/sys/sysctl.h"

namespace uk {

struct kernel;
struct InetState;
class Netisr;
class RouteTable;
struct toedev;  // sys/netinet/tcp_offload.h

// if_flags (FreeBSD IFF_*).
enum : int {
  IFF_UP = 0x1,
  IFF_BROADCAST = 0x2,
  IFF_DEBUG = 0x4,
  IFF_LOOPBACK = 0x8,
  IFF_POINTOPOINT = 0x10,
  IFF_DRV_RUNNING = 0x40,
  IFF_NOARP = 0x80,
  IFF_PROMISC = 0x100,
  IFF_SIMPLEX = 0x800,
  IFF_MULTICAST = 0x8000,
};

// if_capabilities / if_capenable and the IFCAP2_* bit numbers of the second
// word: sys/net/if_cap.h (FreeBSD sys/net/if.h).

// Checksum work an interface does for the stack (if_hwassist, CSUM_*
// delay flags as FreeBSD's CSUM_IP / CSUM_TCP).
enum : uint32_t {
  CSUM_TCP = CSUM_IP_TCP,
  CSUM_DELAY_DATA = CSUM_IP_TCP | CSUM_IP_UDP,
  CSUM_DELAY_IP = CSUM_IP,
  // Receive-side results (FreeBSD's names for the L3/L4 bits).
  CSUM_IP_CHECKED = CSUM_L3_CALC,
  CSUM_IP_VALID = CSUM_L3_VALID,
  CSUM_DATA_VALID = CSUM_L4_VALID,
  CSUM_PSEUDO_HDR = CSUM_L4_CALC,
};

// if_get_counter() selectors (FreeBSD's ift_counter, net/if.h), in the
// order of struct if_data's statistics.
enum ift_counter : int {
  IFCOUNTER_IPACKETS = 0,
  IFCOUNTER_IERRORS,
  IFCOUNTER_OPACKETS,
  IFCOUNTER_OERRORS,
  IFCOUNTER_COLLISIONS,
  IFCOUNTER_IBYTES,
  IFCOUNTER_OBYTES,
  IFCOUNTER_IMCASTS,
  IFCOUNTER_OMCASTS,
  IFCOUNTER_IQDROPS,
  IFCOUNTER_OQDROPS,
  IFCOUNTER_NOPROTO,
  IFCOUNTERS
};

// Interface types (IFT_*, net/if_types.h) and link states (LINK_STATE_*,
// net/if.h) as struct if_data reports them.
enum : uint8_t { IFT_ETHER = 0x6, IFT_LOOP = 0x18 };
enum : uint8_t { LINK_STATE_UNKNOWN = 0, LINK_STATE_DOWN = 1, LINK_STATE_UP = 2 };

// One IPv4 address of an interface (struct in_ifaddr).
struct in_ifaddr {
  in_addr ia_addr;
  in_addr ia_netmask;
  int ia_plen;
};

struct ifnet : RefCounted<ifnet> {
  ifnet(kernel& k, std::string name);
  virtual ~ifnet();

  // Transmits one IPv4 packet (a packet-header chain, consumed) to the
  // next hop |dst|. Returns 0 or an errno (ENOBUFS when a queue is full,
  // ENETDOWN when down). Called with pcb locks held: must not block.
  virtual int if_output(mbuf* m, const sockaddr_in* dst) = 0;
  // Applies capability changes (SIOCSIFCAP); returns 0 or an errno.
  virtual int if_setcap(uint32_t capenable, uint32_t capenable2);
  // if_snd_tag_alloc: a send tag of the driver (one reference to the
  // caller). EOPNOTSUPP for an interface without send tags.
  virtual int if_snd_tag_alloc(const if_snd_tag_alloc_params& p,
                               m_snd_tag** mstp) {
    (void)p;
    (void)mstp;
    return EOPNOTSUPP;
  }
  // The interface's TCP offload engine (FreeBSD's TOEDEV(ifp)); null if
  // it has none.
  virtual std::shared_ptr<toedev> if_toedev() { return nullptr; }
  // One statistic (FreeBSD's if_get_counter method). The default reads the
  // counters below (if_get_counter_default); a driver that keeps its own
  // hardware statistics (nic_sim) answers from those instead, as mlx5en's
  // and cxgbe's if_get_counter do.
  virtual uint64_t if_get_counter(ift_counter c);
  // Link-level facts for struct if_data: type, address/header lengths,
  // link state and line rate (bits/s). The defaults describe a software
  // interface (lo0).
  virtual uint8_t if_type() const { return IFT_LOOP; }
  virtual uint8_t if_addrlen() const { return 0; }
  virtual uint8_t if_hdrlen() const { return 0; }
  virtual uint8_t if_link_state() const { return LINK_STATE_UP; }
  virtual uint64_t if_baudrate() const { return 0; }
  // The send queue (FreeBSD's if_snd: ifq_len / ifq_maxlen) for
  // struct ifmibdata; 0/0 for an interface without one.
  virtual int if_snd_len() const { return 0; }
  virtual int if_snd_maxlen() const { return 0; }

  kernel& if_k;
  const std::string if_xname;
  int if_index = 0;
  std::atomic<int> if_flags{0};
  std::atomic<int> if_mtu{1500};
  std::atomic<uint32_t> if_capabilities{0};
  std::atomic<uint32_t> if_capenable{0};
  std::atomic<uint32_t> if_capabilities2{0};
  std::atomic<uint32_t> if_capenable2{0};
  std::atomic<uint32_t> if_hwassist{0};

  // Guarded by NetState::if_mu.
  std::vector<in_ifaddr> if_addrs;

  counter_u64 if_ipackets;
  counter_u64 if_ierrors;
  counter_u64 if_opackets;
  counter_u64 if_oerrors;
  counter_u64 if_ibytes;
  counter_u64 if_obytes;
  counter_u64 if_iqdrops;
  counter_u64 if_oqdrops;

  // ifi_epoch (uptime seconds at attach) and ifi_lastchange (wall-clock
  // microseconds of the last up/down), for struct if_data.
  int64_t if_epoch = 0;
  std::atomic<int64_t> if_lastchange_us{0};
  // net.link.generic.ifdata.<if_index>.general while attached (if_mib.cc).
  std::unique_ptr<sysctl_ctx_list> if_sysctl;
};

// Records an administrative change (if_up / if_down) for ifi_lastchange.
void if_touch_lastchange(ifnet* ifp);

// Hands a received packet to the stack (queued for the netisr thread).
// Consumes m; m->m_pkthdr.rcvif must be ifp.
void if_input(ifnet* ifp, mbuf* m);

// Per-kernel network state (the NetState slot).
struct NetState final {
  explicit NetState(kernel& k);
  ~NetState();

  kernel& k;
  // kern.ipc.maxsockbuf and kern.ipc.soacceptqueue (somaxconn).
  std::atomic<int> maxsockbuf{2 * 1024 * 1024};
  std::atomic<int> somaxconn{128};
  // net.isr.bindthreads (a boot tunable): pin the netisr thread to its
  // CPU's host core, as kern.ipc.tls.bind_threads pins the KTLS workers.
  std::atomic<int> isr_bindthreads{0};

  Mutex if_mu;
  std::vector<RefPtr<ifnet>> ifnets ABSL_GUARDED_BY(if_mu);
  // Interface indexes in use (FreeBSD's ifindex_table): if_attach takes
  // the lowest free one, if_detach frees it; if_index_max is V_if_index,
  // the largest in use (net.link.generic.system.ifcount).
  std::vector<bool> index_used ABSL_GUARDED_BY(if_mu);
  int if_index_max ABSL_GUARDED_BY(if_mu) = 0;
  ifnet* lo0 = nullptr;

  std::unique_ptr<RouteTable> rt;
  std::unique_ptr<Netisr> isr;
  InetState* inet = nullptr;  // sys/netinet/ip_var.h, owned

  sysctl_ctx_list sysctl_ctx;
};

// Registers an interface (if_attach). The list holds a reference.
void if_attach(kernel& k, RefPtr<ifnet> ifp);
// ifconfig(8) words on an existing non-cloned interface (lo0): "inet A/P",
// "up", "down", "mtu N", "[-]txcsum", "[-]rxcsum", "[-]mextpg".
int if_ifconfig_generic(kernel& k, const char* ifname, const char* args);
// Removes an interface from the list, with its addresses and routes
// (if_detach). The caller's references stay valid.
void if_detach(kernel& k, ifnet* ifp);
// Looks an interface up by name; null if none.
RefPtr<ifnet> ifunit(kernel& k, std::string_view name);
// Adds an IPv4 address (and its prefix route) to an interface.
int in_control_addaddr(kernel& k, ifnet* ifp, in_addr addr, int plen);
// True if addr is one of this kernel's addresses (in_localip).
bool in_localip(kernel& k, in_addr addr);
// The first address of ifp, or INADDR_ANY.
in_addr if_primary_addr(kernel& k, ifnet* ifp);

}  // namespace uk

#endif  // UKTLS_SYS_NET_IF_VAR_H_
