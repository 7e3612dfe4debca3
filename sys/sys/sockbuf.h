// Socket buffers (struct sockbuf), FreeBSD-shaped: an mbuf chain of records
// (m_nextpkt) of mbufs (m_next), with FreeBSD's accounting split between
// ready bytes (sb_acc) and all bytes (sb_ccc), not-ready mbufs (M_NOTREADY,
// sb_fnrdy, M_BLOCKED) for data that may not be sent yet (KTLS records
// awaiting encryption, sendfile pages being read), and the KTLS receive
// fields. Mirrors FreeBSD's sys/sys/sockbuf.h and sys/kern/uipc_sockbuf.c.
//
// Invariants (checked by sbcheck()):
//  - sb_ccc = sum of m_len over every mbuf in sb_mb (+ sb_tlscc + sb_tlsdcc);
//  - sb_acc = sum of m_len over mbufs before sb_fnrdy (all of them when
//    sb_fnrdy is null); every mbuf at or after sb_fnrdy is M_NOTREADY or
//    M_BLOCKED, so a protocol that sends at most sbavail() bytes never sends
//    bytes that are not ready;
//  - sb_mbtail is the last mbuf of the last record, sb_lastrecord the first
//    mbuf of the last record;
//  - sb_sndptr/sb_sndptroff cache where the protocol last read (the mbuf
//    starting at byte offset sb_sndptroff) so tcp_output does not walk the
//    whole chain for every segment.
//
// Locking: every field is guarded by sb_mtx. sb_iolock (FreeBSD's sblock,
// SOCK_IO_SEND_LOCK / SOCK_IO_RECV_LOCK) serialises whole send or receive
// operations and is taken before sb_mtx; it may be held while sleeping on
// sb_cv. Lock order: inpcb lock -> socket so_lock -> sb_mtx -> a kqueue's
// kq_mtx -> the kernel's SelWait lock. so_snd's and so_rcv's sb_mtx are
// never held together.
#ifndef UKTLS_SYS_SYS_SOCKBUF_H_
#define UKTLS_SYS_SYS_SOCKBUF_H_

#include <cstdint>

#include "absl/time/time.h"
#include "sys/kern/kern_event.h"
#include "sys/sys/lock.h"
#include "sys/sys/mbuf.h"

namespace uk {

struct socket;
struct ktls_session;

// sb_state (FreeBSD SBS_*).
enum : short {
  SBS_CANTSENDMORE = 0x0010,  // can't send more data to peer
  SBS_CANTRCVMORE = 0x0020,   // can't receive more data from peer
  SBS_RCVATMARK = 0x0040,
};

// sb_flags (FreeBSD SB_*).
enum : short {
  SB_TLS_RX = 0x01,          // KTLS receive active on this buffer
  SB_TLS_RX_RUNNING = 0x02,  // a KTLS RX decrypt task is scheduled
  SB_WAIT = 0x04,            // someone waits on sb_cv
  SB_SEL = 0x08,             // a poller wants a SelWait wakeup
  SB_AUTOLOWAT = 0x40,       // sendfile(2) may raise sb_lowat (not after SO_SNDLOWAT)
  SB_KNOTE = 0x100,          // sb_sel has knotes (kqueue)
  SB_AUTOSIZE = 0x800,       // buffer size grows automatically
  SB_TLS_IFNET = 0x1000,     // KTLS TX through an ifnet send tag
  SB_TLS_RX_RESYNC = 0x4000,
};

struct sockbuf {
  // Guards everything below.
  Mutex sb_mtx;
  // Senders and receivers sleep here (sbwait); wakeups are sorwakeup /
  // sowwakeup.
  CondVar sb_cv;
  // FreeBSD's sblock(): one send (or one receive) operation at a time.
  Mutex sb_iolock ABSL_ACQUIRED_BEFORE(sb_mtx);

  socket* sb_so = nullptr;  // back pointer, set once

  mbuf* sb_mb ABSL_GUARDED_BY(sb_mtx) = nullptr;          // first record
  mbuf* sb_mbtail ABSL_GUARDED_BY(sb_mtx) = nullptr;      // last mbuf
  mbuf* sb_lastrecord ABSL_GUARDED_BY(sb_mtx) = nullptr;  // first mbuf of last record
  mbuf* sb_sndptr ABSL_GUARDED_BY(sb_mtx) = nullptr;      // tcp_output's cursor
  mbuf* sb_fnrdy ABSL_GUARDED_BY(sb_mtx) = nullptr;       // first not-ready mbuf
  unsigned sb_sndptroff ABSL_GUARDED_BY(sb_mtx) = 0;      // byte offset of sb_sndptr
  unsigned sb_acc ABSL_GUARDED_BY(sb_mtx) = 0;     // available (ready) bytes
  unsigned sb_ccc ABSL_GUARDED_BY(sb_mtx) = 0;     // claimed bytes (all)
  unsigned sb_mbcnt ABSL_GUARDED_BY(sb_mtx) = 0;   // storage in use
  unsigned sb_ctl ABSL_GUARDED_BY(sb_mtx) = 0;     // control bytes
  unsigned sb_hiwat ABSL_GUARDED_BY(sb_mtx) = 0;   // high water mark
  unsigned sb_lowat ABSL_GUARDED_BY(sb_mtx) = 0;   // low water mark
  unsigned sb_mbmax ABSL_GUARDED_BY(sb_mtx) = 0;   // max storage
  short sb_state ABSL_GUARDED_BY(sb_mtx) = 0;
  short sb_flags ABSL_GUARDED_BY(sb_mtx) = 0;
  absl::Duration sb_timeo ABSL_GUARDED_BY(sb_mtx) = absl::ZeroDuration();
  // The room an sbwait() sleeper on a send buffer waits for (0: any
  // change wakes it); sowwakeup_acked_locked() leaves it asleep below it.
  long sb_waitspace ABSL_GUARDED_BY(sb_mtx) = 0;
  // kqueue knotes on this buffer (FreeBSD's sb_sel->si_note); SB_KNOTE
  // is set while it is not empty (sys/kern/kern_event.h).
  knlist sb_sel ABSL_GUARDED_BY(sb_mtx);

  // KTLS receive (FreeBSD's sb_mtls...): ciphertext waiting for a whole
  // record, bytes in it, bytes being decrypted, the next record's sequence
  // number and the session. Owned by uipc_ktls; zero until TCP_RXTLS_ENABLE.
  mbuf* sb_mtls ABSL_GUARDED_BY(sb_mtx) = nullptr;
  mbuf* sb_mtlstail ABSL_GUARDED_BY(sb_mtx) = nullptr;
  unsigned sb_tlscc ABSL_GUARDED_BY(sb_mtx) = 0;
  unsigned sb_tlsdcc ABSL_GUARDED_BY(sb_mtx) = 0;
  uint64_t sb_tls_seqno ABSL_GUARDED_BY(sb_mtx) = 0;
  // The KTLS session of this direction, holding one reference (ktls_free()
  // at sbdestroy). Set once by TCP_TXTLS_ENABLE / TCP_RXTLS_ENABLE.
  ktls_session* sb_tls_info ABSL_GUARDED_BY(sb_mtx) = nullptr;
};

// Bytes that may be read or sent now (FreeBSD sbavail()).
inline unsigned sbavail(const sockbuf* sb) ABSL_NO_THREAD_SAFETY_ANALYSIS {
  return sb->sb_acc;
}
// All bytes, ready or not (sbused()).
inline unsigned sbused(const sockbuf* sb) ABSL_NO_THREAD_SAFETY_ANALYSIS {
  return sb->sb_ccc;
}
// Room left (sbspace()): may be negative when the buffer shrank.
long sbspace(const sockbuf* sb) ABSL_NO_THREAD_SAFETY_ANALYSIS;

// Appends a byte stream chain (consumed). mbufs flagged M_NOTREADY by the
// caller stay unavailable until sbready(); anything appended behind a
// not-ready mbuf is M_BLOCKED. flags: PRUS_* of the send (unused so far).
void sbappendstream_locked(sockbuf* sb, mbuf* m, int flags)
    ABSL_EXCLUSIVE_LOCKS_REQUIRED(sb->sb_mtx);
// Appends a record (a new m_nextpkt entry).
void sbappendrecord_locked(sockbuf* sb, mbuf* m0)
    ABSL_EXCLUSIVE_LOCKS_REQUIRED(sb->sb_mtx);
// Appends a record made of control mbufs (MT_CONTROL, cmsghdr-formatted)
// followed by data m0 (may be null). With M_EOR in flags the record's last
// mbuf is marked M_EOR, so soreceive_generic stops there and reports
// MSG_EOR. Consumes both.
void sbappendcontrol_locked(sockbuf* sb, mbuf* m0, mbuf* control, int flags)
    ABSL_EXCLUSIVE_LOCKS_REQUIRED(sb->sb_mtx);
// Marks |count| units (mbufs, or pages of M_EXTPG mbufs) starting at m0
// ready. Returns 0 when sb_fnrdy advanced (newly available data: the
// protocol may send), EINPROGRESS otherwise. Mirrors FreeBSD's sbready().
int sbready(sockbuf* sb, mbuf* m0, int count)
    ABSL_EXCLUSIVE_LOCKS_REQUIRED(sb->sb_mtx);
// Removes len bytes from the front. Not-ready mbufs are unlinked but not
// freed (their owner, e.g. a KTLS worker, still holds them and frees them
// in pr_ready). Returns the chain of removed mbufs to free (the caller frees
// it after dropping the lock: sbcut_locked), or frees them (sbdrop_locked).
mbuf* sbcut_locked(sockbuf* sb, int len)
    ABSL_EXCLUSIVE_LOCKS_REQUIRED(sb->sb_mtx);
void sbdrop_locked(sockbuf* sb, int len)
    ABSL_EXCLUSIVE_LOCKS_REQUIRED(sb->sb_mtx);
// Drops the first record (sbdroprecord).
void sbdroprecord_locked(sockbuf* sb) ABSL_EXCLUSIVE_LOCKS_REQUIRED(sb->sb_mtx);
// Drops everything (sbflush); returns what to free outside the lock.
mbuf* sbflush_locked(sockbuf* sb) ABSL_EXCLUSIVE_LOCKS_REQUIRED(sb->sb_mtx);
// Sets the buffer size (sbreserve): ENOBUFS above kern.ipc.maxsockbuf.
int sbreserve_locked(sockbuf* sb, unsigned cc, unsigned sb_max)
    ABSL_EXCLUSIVE_LOCKS_REQUIRED(sb->sb_mtx);
// Frees everything including the KTLS session reference (sbdestroy).
void sbdestroy(sockbuf* sb) ABSL_LOCKS_EXCLUDED(sb->sb_mtx);

// The mbuf holding byte |off| of the (first record of the) buffer, and the
// offset within it. Uses and updates the sb_sndptr cache; |off| must be
// below sb_acc. Mirrors sbsndptr_noadv().
mbuf* sbsndptr_noadv(sockbuf* sb, unsigned off, unsigned* moff)
    ABSL_EXCLUSIVE_LOCKS_REQUIRED(sb->sb_mtx);

// Builds a control mbuf holding one cmsghdr (level, type) and |size| bytes
// of data (sbcreatecontrol). Null on ENOMEM.
mbuf* sbcreatecontrol(kernel& k, const void* p, int size, int type, int level);

// Bookkeeping for one mbuf entering / leaving the buffer (sballoc/sbfree).
void sballoc(sockbuf* sb, mbuf* m) ABSL_EXCLUSIVE_LOCKS_REQUIRED(sb->sb_mtx);
void sbfree(sockbuf* sb, mbuf* m) ABSL_EXCLUSIVE_LOCKS_REQUIRED(sb->sb_mtx);

// Verifies the invariants above; returns false (and says why in *why) if
// one is broken. O(n): for tests and debugging.
bool sbcheck(sockbuf* sb, const char** why)
    ABSL_EXCLUSIVE_LOCKS_REQUIRED(sb->sb_mtx);

}  // namespace uk

#endif  // UKTLS_SYS_SYS_SOCKBUF_H_
