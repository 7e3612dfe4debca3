// ARP. See if_ether.h. Mirrors FreeBSD's arpresolve()/in_arpinput().
#include "sys/netinet/if_ether.h"

#include <arpa/inet.h>

#include <cerrno>
#include <cstring>

namespace uk {

void arp_build(const arp_packet& a, ether_arp* out) {
  out->ar_hrd = htons(ARPHRD_ETHER);
  out->ar_pro = htons(ETHERTYPE_IP);
  out->ar_hln = ETHER_ADDR_LEN;
  out->ar_pln = 4;
  out->ar_op = htons(a.op);
  memcpy(out->arp_sha, a.sha.octet, ETHER_ADDR_LEN);
  memcpy(out->arp_spa, &a.spa, 4);
  memcpy(out->arp_tha, a.tha.octet, ETHER_ADDR_LEN);
  memcpy(out->arp_tpa, &a.tpa, 4);
}

int arp_parse(const uint8_t* p, size_t len, arp_packet* out) {
  ether_arp ea;
  if (len < sizeof ea) return EINVAL;
  memcpy(&ea, p, sizeof ea);
  if (ntohs(ea.ar_hrd) != ARPHRD_ETHER || ntohs(ea.ar_pro) != ETHERTYPE_IP ||
      ea.ar_hln != ETHER_ADDR_LEN || ea.ar_pln != 4)
    return EINVAL;
  out->op = ntohs(ea.ar_op);
  if (out->op != ARPOP_REQUEST && out->op != ARPOP_REPLY) return EINVAL;
  memcpy(out->sha.octet, ea.arp_sha, ETHER_ADDR_LEN);
  memcpy(&out->spa, ea.arp_spa, 4);
  memcpy(out->tha.octet, ea.arp_tha, ETHER_ADDR_LEN);
  memcpy(&out->tpa, ea.arp_tpa, 4);
  return 0;
}

ArpTable::Result ArpTable::resolve(uint32_t dst, MbufPtr* m, uint64_t now_ns,
                                   ether_addr* mac, bool* send_request) {
  *send_request = false;
  MbufPtr dropped;  // freed after the lock is released
  MutexLock l(&mu_);
  llentry& e = tab_[dst];
  if (e.resolved && (e.is_static || now_ns < e.expire_ns)) {
    *mac = e.mac;
    return kResolved;
  }
  if (e.resolved) {
    // Expired: resolve again, as FreeBSD does when la_expire passes.
    e.resolved = false;
    e.asked = 0;
  }
  if (now_ns < e.down_until_ns) {
    stats.dropped.add(1);
    dropped = std::move(*m);
    return kDown;
  }
  if (e.asked >= cfg_.maxtries) {
    // The previous round went unanswered: hold down, drop what waited.
    e.down_until_ns = now_ns + cfg_.down_ns;
    e.asked = 0;
    stats.timeouts.add(1);
    stats.dropped.add(static_cast<int64_t>(e.hold.size()) + 1);
    e.hold.clear();
    dropped = std::move(*m);
    return kDown;
  }
  if (static_cast<int>(e.hold.size()) >= cfg_.maxhold) {
    dropped = std::move(e.hold.front());
    e.hold.pop_front();
    stats.dropped.add(1);
  }
  e.hold.push_back(std::move(*m));
  if (e.asked == 0 || now_ns >= e.last_req_ns + cfg_.rexmit_ns) {
    e.last_req_ns = now_ns;
    e.asked++;
    stats.txrequests.add(1);
    *send_request = true;
  }
  return kHeld;
}

std::vector<MbufPtr> ArpTable::input(const arp_packet& a, uint32_t my_ip,
                                     uint64_t now_ns, bool* reply,
                                     ether_addr* release_mac) {
  *reply = false;
  std::vector<MbufPtr> out;
  stats.received.add(1);
  if (a.op == ARPOP_REQUEST) stats.rxrequests.add(1);
  else stats.rxreplies.add(1);
  if (a.spa == my_ip && my_ip != 0) {
    // Someone else uses our address (FreeBSD logs "duplicate IP address").
    stats.dupips.add(1);
    return out;
  }
  const bool for_us = a.tpa == my_ip && my_ip != 0;
  MutexLock l(&mu_);
  auto it = tab_.find(a.spa);
  // As in_arpinput: learn the sender if it asks us, or if we already track it.
  if (it == tab_.end() && for_us) it = tab_.emplace(a.spa, llentry{}).first;
  if (it != tab_.end() && a.spa != 0) {
    llentry& e = it->second;
    if (!e.is_static) {
      e.mac = a.sha;
      e.resolved = true;
      e.expire_ns = now_ns + cfg_.max_age_ns;
      e.asked = 0;
      e.down_until_ns = 0;
    }
    *release_mac = e.mac;
    while (!e.hold.empty()) {
      out.push_back(std::move(e.hold.front()));
      e.hold.pop_front();
    }
  }
  if (a.op == ARPOP_REQUEST && for_us) {
    *reply = true;
    stats.txreplies.add(1);
  }
  return out;
}

void ArpTable::add_static(uint32_t ip, const ether_addr& mac) {
  MutexLock l(&mu_);
  llentry& e = tab_[ip];
  e.mac = mac;
  e.resolved = true;
  e.is_static = true;
  e.asked = 0;
  e.down_until_ns = 0;
}

int ArpTable::remove(uint32_t ip) {
  std::deque<MbufPtr> drop;
  MutexLock l(&mu_);
  auto it = tab_.find(ip);
  if (it == tab_.end()) return ENOENT;
  stats.dropped.add(static_cast<int64_t>(it->second.hold.size()));
  drop.swap(it->second.hold);
  tab_.erase(it);
  return 0;
}

void ArpTable::flush() {
  std::map<uint32_t, llentry> old;
  MutexLock l(&mu_);
  old.swap(tab_);
}

std::vector<ArpTable::EntryInfo> ArpTable::entries() const {
  std::vector<EntryInfo> v;
  MutexLock l(&mu_);
  for (const auto& [ip, e] : tab_)
    v.push_back({ip, e.mac, e.resolved, e.is_static, static_cast<int>(e.hold.size())});
  return v;
}

}  // namespace uk
