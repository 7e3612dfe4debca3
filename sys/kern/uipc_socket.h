// The socket layer: creation, binding, connection, the generic send and
// receive paths, options and poll. Mirrors FreeBSD's sys/kern/uipc_socket.c.
// Types and the per-call contract are in sys/sys/socketvar.h.
//
// Send path (sosend_generic): user data is copied once into mbufs by
// m_uiotombuf() with no lock held and handed to the protocol with pr_send.
// The KTLS TX framing point is marked "KTLS TX" in uipc_socket.cc: a socket
// whose so_snd.sb_tls_info is set gets unmapped records built there, framed,
// appended not ready (PRUS_NOTREADY) and queued to a KTLS worker, which
// calls pr_ready() when they are encrypted.
//
// Receive path: soreceive_stream detaches whole mbufs from so_rcv under the
// buffer lock and copies them out after dropping it (one copy, short hold
// times); soreceive_generic is the record-oriented path (control messages,
// M_EOR records) used when the buffer holds control data or KTLS RX is on.
#ifndef UKTLS_SYS_KERN_UIPC_SOCKET_H_
#define UKTLS_SYS_KERN_UIPC_SOCKET_H_

#include "sys/sys/socketvar.h"

namespace uk {

// Finds the protocol for (domain, type, protocol) as pffindproto(), with
// socreate's errors: EAFNOSUPPORT, EPROTOTYPE, EPROTONOSUPPORT.
int pffindproto(int dom, int type, int proto, const protosw** out);

// Waits on sb_cv (sbwait) honouring sb_timeo. Returns 0, or EWOULDBLOCK on
// timeout.
int sbwait(sockbuf* sb) ABSL_EXCLUSIVE_LOCKS_REQUIRED(sb->sb_mtx);
// sbwait() on a send buffer for a sender that goes on only once there is
// `need` bytes of room (or the socket's state changes): an ACK that leaves
// less room does not wake it (sowwakeup_acked_locked). need 0: any wakeup.
int sbwait_space(sockbuf* sb, long need) ABSL_EXCLUSIVE_LOCKS_REQUIRED(sb->sb_mtx);
// Removes and returns the first mbuf of the first record.
mbuf* sb_pop_head(sockbuf* sb) ABSL_EXCLUSIVE_LOCKS_REQUIRED(sb->sb_mtx);

}  // namespace uk

#endif  // UKTLS_SYS_KERN_UIPC_SOCKET_H_
