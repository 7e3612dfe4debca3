// Internet protocol control blocks (struct inpcb) and their lookup tables
// (struct inpcbinfo). Mirrors FreeBSD's sys/netinet/in_pcb.c: bind with
// ephemeral ports and SO_REUSEADDR rules, connect with source address
// selection, exact (4-tuple) and wildcard (listener) lookup.
//
// Lifetime: an inpcb is reference counted. The table holds one reference
// from in_pcballoc() to in_pcbfree(); lookups return a new reference; an
// armed TCP timer holds one; a socket holds one in so_pcb.
//
// Locking, in order: inp_lock -> (socket locks) -> inpcbinfo::ipi_lock.
// ipi_lock is taken with a pcb lock held when the pcb's addresses change
// (bind, connect, free) and alone for lookups, which then lock the pcb they
// found and re-check INP_DROPPED/INP_FREED.
#ifndef UKTLS_SYS_NETINET_IN_PCB_H_
#define UKTLS_SYS_NETINET_IN_PCB_H_

#include <netinet/in.h>

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "sys/sys/lock.h"
#include "sys/sys/refcount.h"

namespace uk {

struct kernel;
struct socket;
struct tcpcb;
struct InetState;

// inp_flags.
enum : int {
  INP_DROPPED = 0x04000000,  // protocol dropped the connection
  INP_FREED = 0x00000010,    // in_pcbfree ran: out of every table
  INP_HASHED = 0x00000200,   // in the connection hash
  INP_BOUND = 0x00000400,    // in the port table
  INP_LISTEN = 0x00000800,   // a listening pcb (uktls: kept on the pcb)
};

struct inpcb final : RefCounted<inpcb> {
  explicit inpcb(InetState* info);
  ~inpcb();

  Mutex inp_lock;
  InetState* const inp_pcbinfo;

  // The socket, with a reference, until the protocol detaches it.
  socket* inp_socket ABSL_GUARDED_BY(inp_lock) = nullptr;
  // A socket reference to drop once inp_lock is released (inp_unlock()):
  // the last socket reference must never be dropped with the pcb locked.
  socket* inp_sofree ABSL_GUARDED_BY(inp_lock) = nullptr;

  // Addresses (network byte order). Written with inp_lock and ipi_lock
  // held, so either lock is enough to read them.
  in_addr inp_laddr{};
  in_addr inp_faddr{};
  uint16_t inp_lport = 0;
  uint16_t inp_fport = 0;
  std::atomic<int> inp_flags{0};
  uint8_t inp_ip_ttl = 64;
  uint8_t inp_ip_tos = 0;
  uint32_t inp_flowid = 0;

  std::unique_ptr<tcpcb> inp_ppcb;  // the TCP control block

  // Table bookkeeping (guarded by ipi_lock).
  std::multimap<uint16_t, inpcb*>::iterator inp_portit;
};

inline tcpcb* intotcpcb(inpcb* inp) { return inp->inp_ppcb.get(); }

// Unlocks a pcb and then drops the socket reference it detached, if any.
void inp_unlock(inpcb* inp) ABSL_UNLOCK_FUNCTION(inp->inp_lock);

struct inpcb_key {
  uint32_t laddr, faddr;
  uint16_t lport, fport;
  bool operator==(const inpcb_key& o) const {
    return laddr == o.laddr && faddr == o.faddr && lport == o.lport &&
           fport == o.fport;
  }
  template <typename H>
  friend H AbslHashValue(H h, const inpcb_key& k) {
    return H::combine(std::move(h), k.laddr, k.faddr, k.lport, k.fport);
  }
};
struct inpcb_key_hash {
  size_t operator()(const inpcb_key& k) const {
    uint64_t a = (static_cast<uint64_t>(k.laddr) << 32) | k.faddr;
    uint64_t b = (static_cast<uint64_t>(k.lport) << 16) | k.fport;
    return std::hash<uint64_t>()(a * 0x9e3779b97f4a7c15ULL ^ b);
  }
};

// FreeBSD's struct inpcbinfo for one protocol.
struct inpcbinfo {
  Mutex ipi_lock;
  // The connected pcbs by 4-tuple (FreeBSD's ipi_hash_exact); open
  // addressing, so a lookup among many connections misses the cache once
  // for the slot rather than once per bucket and chain node.
  absl::flat_hash_map<inpcb_key, inpcb*> ipi_conn ABSL_GUARDED_BY(ipi_lock);
  std::multimap<uint16_t, inpcb*> ipi_ports ABSL_GUARDED_BY(ipi_lock);
  std::set<inpcb*> ipi_all ABSL_GUARDED_BY(ipi_lock);  // each holds a ref
  uint64_t ipi_gencnt ABSL_GUARDED_BY(ipi_lock) = 0;
  uint32_t ipi_lastport ABSL_GUARDED_BY(ipi_lock) = 0;
};

// Allocates a pcb for so (inp_socket holds a socket reference) and enters
// it in the table; returned unlocked, with the caller's reference.
RefPtr<inpcb> in_pcballoc(socket* so, InetState* info);
// Binds to nam (null: an ephemeral port on INADDR_ANY). EADDRINUSE,
// EADDRNOTAVAIL, EINVAL (already bound), EAFNOSUPPORT.
int in_pcbbind(inpcb* inp, const sockaddr_in* nam, bool reuseaddr)
    ABSL_EXCLUSIVE_LOCKS_REQUIRED(inp->inp_lock);
// Chooses the source address and an ephemeral port if needed, and enters
// the 4-tuple in the connection hash. EADDRINUSE if the 4-tuple exists,
// ENETUNREACH/EHOSTUNREACH without a route, EADDRNOTAVAIL for port 0.
int in_pcbconnect(inpcb* inp, const sockaddr_in* nam)
    ABSL_EXCLUSIVE_LOCKS_REQUIRED(inp->inp_lock);
// Enters a pcb made for an incoming connection under its 4-tuple.
int in_pcbinshash_conn(inpcb* inp, in_addr laddr, uint16_t lport,
                       in_addr faddr, uint16_t fport);
// Removes the pcb from the connection hash and the port table but keeps it
// alive (in_pcbdrop) ...
void in_pcbdrop(inpcb* inp) ABSL_EXCLUSIVE_LOCKS_REQUIRED(inp->inp_lock);
// ... and from the list of all pcbs, dropping the table's reference.
void in_pcbfree(inpcb* inp) ABSL_EXCLUSIVE_LOCKS_REQUIRED(inp->inp_lock);
// Marks the pcb listening (enters it for wildcard lookup).
void in_pcblisten(inpcb* inp) ABSL_EXCLUSIVE_LOCKS_REQUIRED(inp->inp_lock);

// Exact 4-tuple match, else (with wildcard) a listener on (laddr|ANY,
// lport). Addresses and ports in network order. Returns a referenced,
// unlocked pcb or null.
RefPtr<inpcb> in_pcblookup(InetState* info, in_addr faddr, uint16_t fport,
                           in_addr laddr, uint16_t lport, bool wildcard);

// One line of the pcb listing (netstat -p tcp, ktlsctl sessions).
struct xinpcb {
  uint64_t gencnt;
  sockaddr_in local;
  sockaddr_in foreign;
  int t_state;           // TCPS_*
  const char* state_name;
  uint32_t snd_una, snd_nxt, rcv_nxt;
  uint32_t snd_wnd, snd_cwnd, rcv_wnd;
  int t_maxseg;
  int t_srtt_us;
  int t_rxtshift;
  uint32_t t_flags;      // TF_* (TF_SACK_PERMIT: SACK negotiated)
  unsigned so_snd_cc, so_rcv_cc;
  bool has_socket;
  bool tls_tx, tls_rx;   // a KTLS session on so_snd / so_rcv
};
// Snapshot of every TCP pcb of the kernel (in_pcblist / tcp_pcblist).
std::vector<xinpcb> tcp_pcblist(kernel& k);

}  // namespace uk

#endif  // UKTLS_SYS_NETINET_IN_PCB_H_
