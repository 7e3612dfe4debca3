// The checksum engine of the simulated NIC: locating the IPv4 and TCP/UDP
// headers of an Ethernet frame and computing or verifying their Internet
// checksums (RFC 1071), as a NIC's TX and RX checksum offload does.
// Pure functions on bytes; also used by tests to build valid frames.
#ifndef UKTLS_SYS_DEV_NIC_SIM_NIC_SIM_CSUM_H_
#define UKTLS_SYS_DEV_NIC_SIM_NIC_SIM_CSUM_H_

#include <cstddef>
#include <cstdint>

namespace uk {

// One's-complement sum of len bytes added to sum (not folded).
uint32_t nic_cksum_add(uint32_t sum, const uint8_t* p, size_t len);
uint16_t nic_cksum_fold(uint32_t sum);  // folded and complemented

// Where the headers of an IPv4 frame are (offsets from the frame start).
struct nic_pkt_info {
  int l3off = 0;     // IPv4 header
  int ip_hlen = 0;
  int ip_len = 0;    // ip_len field (header + payload)
  int proto = 0;     // IPPROTO_TCP, IPPROTO_UDP, ...
  int l4off = 0;
  int l4len = 0;     // L4 header + payload
  int tcp_hlen = 0;  // TCP only
  bool fragment = false;
};
// Parses Ethernet II + IPv4 (+ TCP/UDP). Returns false for anything else or
// for lengths that do not fit the frame.
bool nic_pkt_parse(const uint8_t* frame, size_t len, nic_pkt_info* pi);

// Computes and stores the IPv4 header checksum / the TCP or UDP checksum
// (pseudo-header included) in place.
void nic_ip_cksum_fill(uint8_t* frame, const nic_pkt_info& pi);
void nic_l4_cksum_fill(uint8_t* frame, const nic_pkt_info& pi);
bool nic_ip_cksum_ok(const uint8_t* frame, const nic_pkt_info& pi);
bool nic_l4_cksum_ok(const uint8_t* frame, const nic_pkt_info& pi);

// For LRO, which must give a merged packet a correct TCP checksum without
// reading the merged payload again (FreeBSD's tcp_lro does the same from
// the segments' checksums):
// - nic_tcp_cksum_ok verifies a TCP frame as nic_l4_cksum_ok does and
//   returns the sum of its payload (the bytes after the TCP header);
// - nic_cksum_at_odd turns the sum of some bytes into the sum of the same
//   bytes placed at an odd offset (its byte swap);
// - nic_tcp_cksum_fill_sum fills the TCP checksum of a packet whose
//   headers are at frame (pi describing the whole packet) and whose
//   payload, wherever it lies, sums to payload_sum.
bool nic_tcp_cksum_ok(const uint8_t* frame, const nic_pkt_info& pi, uint32_t* payload_sum);
uint32_t nic_cksum_at_odd(uint32_t sum);
void nic_tcp_cksum_fill_sum(uint8_t* frame, const nic_pkt_info& pi, uint32_t payload_sum);

}  // namespace uk

#endif  // UKTLS_SYS_DEV_NIC_SIM_NIC_SIM_CSUM_H_
