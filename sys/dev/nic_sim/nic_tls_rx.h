// The simulated NIC's inline TLS receive engine: the part of mlx5en's
// kTLS RX (mlx5_en_tls_rx.c) that uktls models. A connection with a TLS_RX
// send tag (if_snd_tag_alloc_tls_rx: keys, the flow's 4-tuple) has its
// incoming TCP stream followed by the NIC: it tracks record boundaries,
// decrypts the payload of each AES-GCM record (TLS 1.2 and 1.3) in place as
// its frames arrive, checks the tag, and marks a frame CSUM_TLS_DECRYPTED
// only when every record byte it carries was decrypted (header, explicit
// nonce and tag bytes are left as they were; the stack ignores them).
//
// Synchronisation. Per flow the engine is in one of three states:
//   synced   - it knows where the next record header is and its TLS
//              sequence number: records are decrypted;
//   tracking - it follows record headers (from a candidate header it found
//              by scanning) but does not know their sequence numbers;
//   lost     - it scans in-order frames for something that looks like a
//              record header (a "resync request" is counted when it finds
//              one and starts tracking from it).
// In-order frames advance the parser. A gap (loss, or a frame that arrives
// before the one in front of it) only spoils the record it falls in, as
// long as the next header lies beyond the gap; a gap over a header loses
// sync. Frames entirely behind the engine's position (retransmissions,
// late reordered frames) pass through untouched. The stack resynchronises
// the engine with snd_tag_modify (if_snd_tag_modify_tls_rx, FreeBSD's
// ktls_resync_ifnet): "record tls_seq_number has its header at TCP sequence
// tls_hdr_tcp_sn" (tls_rec_length: its length, 0 when only the position is
// known). A hint at the engine's current position syncs it at once; one for
// a header it has been tracking gives every tracked record its number and
// decryption resumes at the next record boundary.
//
// Counters: dev.nic_sim.N.tls_rx.* (see nic_sim README).
//
// Locking: one engine lock (RxCore::mu, a leaf) guards the flow table and
// every flow's parser; the RX thread holds it while it processes a frame,
// snd_tag_modify/free take it briefly. It is never held while calling out.
#ifndef UKTLS_SYS_DEV_NIC_SIM_NIC_TLS_RX_H_
#define UKTLS_SYS_DEV_NIC_SIM_NIC_TLS_RX_H_

#include <memory>

#include "sys/dev/nic_sim/nic_sim.h"

namespace uk {

// Creates the receive engine of nic (install it with
// NicSim::set_rx_offload) and registers its dev.nic_sim.N.tls_rx sysctls in
// the NIC's sysctl context.
std::shared_ptr<NicSimOffload> nic_tls_rx_create(NicSim& nic);

}  // namespace uk

#endif  // UKTLS_SYS_DEV_NIC_SIM_NIC_TLS_RX_H_
