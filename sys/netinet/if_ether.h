// ARP for IPv4 over Ethernet (RFC 826), as FreeBSD's netinet/if_ether.c:
// the packet format, and a per-interface neighbour table (FreeBSD's lltable
// of llentry) with static entries, resolution with packets held while a
// request is outstanding, and the arpstat counters.
//
// The table does no I/O of its own: resolve() and input() say what the
// caller (the interface's output and input paths) must send, so it can be
// tested without a network and used by any Ethernet driver.
//
// Locking: ArpTable::mu_ guards the entries; it is a leaf lock. Held mbufs
// are handed back to the caller, which transmits them after the call.
#ifndef UKTLS_SYS_NETINET_IF_ETHER_H_
#define UKTLS_SYS_NETINET_IF_ETHER_H_

#include <atomic>
#include <cstdint>
#include <deque>
#include <map>
#include <string>
#include <vector>

#include "sys/net/ethernet.h"
#include "sys/sys/counter.h"
#include "sys/sys/lock.h"
#include "sys/sys/mbuf.h"

namespace uk {

constexpr uint16_t ARPHRD_ETHER = 1;
constexpr uint16_t ARPOP_REQUEST = 1;
constexpr uint16_t ARPOP_REPLY = 2;

// On the wire (network byte order), after the Ethernet header.
struct __attribute__((packed)) ether_arp {
  uint16_t ar_hrd;  // ARPHRD_ETHER
  uint16_t ar_pro;  // ETHERTYPE_IP
  uint8_t ar_hln;   // 6
  uint8_t ar_pln;   // 4
  uint16_t ar_op;
  uint8_t arp_sha[ETHER_ADDR_LEN];
  uint8_t arp_spa[4];
  uint8_t arp_tha[ETHER_ADDR_LEN];
  uint8_t arp_tpa[4];
};
static_assert(sizeof(ether_arp) == 28);

// IPv4 addresses in these interfaces are in network byte order (in_addr_t).
struct arp_packet {
  uint16_t op = 0;
  ether_addr sha, tha;
  uint32_t spa = 0, tpa = 0;
};
// Serialises / parses the 28-byte ARP body. arp_parse: EINVAL unless it is an
// Ethernet/IPv4 ARP of known length.
void arp_build(const arp_packet& a, ether_arp* out);
int arp_parse(const uint8_t* p, size_t len, arp_packet* out);

// FreeBSD's struct arpstat (net.link.ether.arp.stats).
struct arpstat {
  counter_u64 txrequests, txreplies, txerrors;
  counter_u64 rxrequests, rxreplies, received;
  counter_u64 dropped;   // held packets dropped (overflow or timeout)
  counter_u64 timeouts;  // entries that gave up after maxtries
  counter_u64 dupips;    // someone else claims our address
};

class ArpTable final {
 public:
  // FreeBSD's defaults: net.link.ether.inet.max_age 1200 s, maxtries 5,
  // maxhold 16, and a 20 s down time after an unanswered resolution
  // (arpt_down); requests for one entry at most once a second.
  struct Config {
    uint64_t max_age_ns = 1200ull * 1000000000;
    int maxtries = 5;
    int maxhold = 16;
    uint64_t down_ns = 20ull * 1000000000;
    uint64_t rexmit_ns = 1000000000;
  };
  ArpTable() = default;
  explicit ArpTable(const Config& c) : cfg_(c) {}
  ArpTable(const ArpTable&) = delete;
  ArpTable& operator=(const ArpTable&) = delete;

  // What resolve() asks of the caller.
  enum Result { kResolved, kHeld, kDown };
  // Resolves dst for packet *m (taken from *m unless kResolved). kResolved:
  // *mac set, the caller sends *m itself. kHeld: m is queued on the entry (the
  // oldest is dropped beyond maxhold) and, when *send_request, the caller
  // broadcasts a request for dst. kDown: the host did not answer (EHOSTDOWN
  // in FreeBSD's arpresolve); m is freed.
  Result resolve(uint32_t dst, MbufPtr* m, uint64_t now_ns, ether_addr* mac,
                 bool* send_request) ABSL_LOCKS_EXCLUDED(mu_);

  // Processes a received ARP packet on an interface whose address is my_ip.
  // Returns the packets that were waiting for the sender's address (to be
  // sent to *release_mac), and sets *reply when a reply must go back.
  std::vector<MbufPtr> input(const arp_packet& a, uint32_t my_ip,
                             uint64_t now_ns, bool* reply,
                             ether_addr* release_mac) ABSL_LOCKS_EXCLUDED(mu_);

  // Static entries (arp -s): never expire, never replaced by input.
  void add_static(uint32_t ip, const ether_addr& mac) ABSL_LOCKS_EXCLUDED(mu_);
  // Removes any entry (arp -d); held packets are dropped. ENOENT if none.
  int remove(uint32_t ip) ABSL_LOCKS_EXCLUDED(mu_);
  // Drops everything (interface down / address change).
  void flush() ABSL_LOCKS_EXCLUDED(mu_);

  struct EntryInfo {
    uint32_t ip;
    ether_addr mac;
    bool resolved, is_static;
    int held;
  };
  std::vector<EntryInfo> entries() const ABSL_LOCKS_EXCLUDED(mu_);

  arpstat stats;

 private:
  struct llentry {
    ether_addr mac;
    bool resolved = false;
    bool is_static = false;
    uint64_t expire_ns = 0;    // resolved: when to forget; else unused
    uint64_t last_req_ns = 0;  // last request sent
    int asked = 0;             // requests sent without answer
    uint64_t down_until_ns = 0;
    std::deque<MbufPtr> hold;
  };
  Config cfg_;
  mutable Mutex mu_;
  std::map<uint32_t, llentry> tab_ ABSL_GUARDED_BY(mu_);
};

}  // namespace uk

#endif  // UKTLS_SYS_NETINET_IF_ETHER_H_
