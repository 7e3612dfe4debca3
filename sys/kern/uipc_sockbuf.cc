// Socket buffer primitives. Mirrors FreeBSD's sys/kern/uipc_sockbuf.c:
// sballoc/sbfree accounting of ready vs. claimed bytes, sbappendstream,
// sbcompress, sbready with sb_fnrdy and M_BLOCKED, sbcut, sbappendcontrol,
// sbreserve, sbsndptr.
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "sys/kern/uipc_ktls.h"
#include "sys/sys/sockbuf.h"
#include "sys/sys/socketvar.h"

namespace uk {

// FreeBSD's sb_efficiency: storage allowed per byte of buffer.
static constexpr unsigned kSbEfficiency = 8;

static unsigned m_storage(const mbuf* m) {
  unsigned n = MSIZE;
  if (m->m_flags & M_EXTPG)
    n += m->m_epg_npgs * PAGE_SIZE;
  else if (m->m_flags & M_EXT)
    n += m->m_ext.ext_size;
  return n;
}

long sbspace(const sockbuf* sb) {
  long bleft = static_cast<long>(sb->sb_hiwat) - static_cast<long>(sb->sb_ccc);
  long mleft = static_cast<long>(sb->sb_mbmax) - static_cast<long>(sb->sb_mbcnt);
  return std::min(bleft, mleft);
}

void sballoc(sockbuf* sb, mbuf* m) {
  sb->sb_ccc += m->m_len;
  if (sb->sb_fnrdy == nullptr) {
    if (m->m_flags & M_NOTREADY)
      sb->sb_fnrdy = m;
    else
      sb->sb_acc += m->m_len;
  } else {
    // Behind a not-ready mbuf nothing is available, ready or not.
    m->m_flags |= M_BLOCKED;
  }
  if (m->m_type != MT_DATA && m->m_type != MT_OOBDATA) sb->sb_ctl += m->m_len;
  sb->sb_mbcnt += m_storage(m);
}

void sbfree(sockbuf* sb, mbuf* m) {
  sb->sb_ccc -= m->m_len;
  if ((m->m_flags & M_NOTAVAIL) == 0) sb->sb_acc -= m->m_len;
  if (sb->sb_fnrdy == m) {
    // The first not-ready mbuf leaves: the next not-ready one (if any)
    // takes its place, and what lies between becomes available.
    mbuf* n = m->m_next;
    while (n != nullptr && (n->m_flags & M_NOTREADY) == 0) {
      n->m_flags &= ~M_BLOCKED;
      sb->sb_acc += n->m_len;
      n = n->m_next;
    }
    sb->sb_fnrdy = n;
  }
  if (m->m_type != MT_DATA && m->m_type != MT_OOBDATA) sb->sb_ctl -= m->m_len;
  sb->sb_mbcnt -= m_storage(m);
  if (sb->sb_sndptr == m) {
    sb->sb_sndptr = nullptr;
    sb->sb_sndptroff = 0;
  }
}

// Appends chain m after mbuf n (the current tail, or null for an empty
// record), copying small mbufs into the tail's free space as FreeBSD's
// sbcompress does. Never coalesces not-ready, unmapped, control or
// read-only storage, and never merges across M_EOR.
static void sbcompress(sockbuf* sb, mbuf* m, mbuf* n)
    ABSL_EXCLUSIVE_LOCKS_REQUIRED(sb->sb_mtx) {
  while (m != nullptr) {
    int eor = m->m_flags & M_EOR;
    if (m->m_len == 0 && (eor == 0 || (n != nullptr && (n->m_flags & M_EOR)))) {
      if (sb->sb_lastrecord == m) sb->sb_lastrecord = m->m_next;
      m = m_free(m);
      continue;
    }
    if (n != nullptr && (n->m_flags & M_EOR) == 0 && M_WRITABLE(n) &&
        !(m->m_flags & (M_NOTREADY | M_EXTPG)) &&
        !(n->m_flags & (M_NOTREADY | M_EXTPG | M_BLOCKED)) &&
        m->m_len <= MCLBYTES / 4 && m->m_len <= M_TRAILINGSPACE(n) &&
        n->m_type == m->m_type) {
      memcpy(mtod(n) + n->m_len, mtod(m), m->m_len);
      n->m_len += m->m_len;
      sb->sb_ccc += m->m_len;
      if (sb->sb_fnrdy == nullptr) sb->sb_acc += m->m_len;
      if (m->m_type != MT_DATA && m->m_type != MT_OOBDATA)
        sb->sb_ctl += m->m_len;
      m = m_free(m);
      continue;
    }
    if (n != nullptr)
      n->m_next = m;
    else
      sb->sb_mb = m;
    sb->sb_mbtail = m;
    sballoc(sb, m);
    n = m;
    m->m_flags &= ~M_EOR;
    m = m->m_next;
    n->m_next = nullptr;
    n->m_flags |= eor;
  }
}

void sbappendstream_locked(sockbuf* sb, mbuf* m, int /*flags*/) {
  if (m == nullptr) return;
  // A stream buffer holds one record.
  if (sb->sb_mb == nullptr) sb->sb_lastrecord = nullptr;
  sbcompress(sb, m, sb->sb_mbtail);
  if (sb->sb_lastrecord == nullptr) sb->sb_lastrecord = sb->sb_mb;
}

void sbappendrecord_locked(sockbuf* sb, mbuf* m0) {
  if (m0 == nullptr) return;
  // Link a new record, then compress the rest of the chain behind its
  // first mbuf.
  if (sb->sb_lastrecord != nullptr)
    sb->sb_lastrecord->m_nextpkt = m0;
  else
    sb->sb_mb = m0;
  sb->sb_lastrecord = m0;
  sb->sb_mbtail = m0;
  mbuf* rest = m0->m_next;
  m0->m_next = nullptr;
  if (rest != nullptr && (m0->m_flags & M_EOR)) {
    m0->m_flags &= ~M_EOR;
    rest->m_flags |= M_EOR;
  }
  sballoc(sb, m0);
  sbcompress(sb, rest, m0);
}

void sbappendcontrol_locked(sockbuf* sb, mbuf* m0, mbuf* control, int flags) {
  if (control == nullptr) {
    if (m0 != nullptr) {
      if (flags & M_EOR) {
        mbuf* last = m0;
        while (last->m_next) last = last->m_next;
        last->m_flags |= M_EOR;
      }
      sbappendrecord_locked(sb, m0);
    }
    return;
  }
  mbuf* clast = control;
  while (clast->m_next) clast = clast->m_next;
  clast->m_next = m0;
  mbuf* last = clast;
  while (last->m_next) last = last->m_next;
  if (flags & M_EOR) last->m_flags |= M_EOR;
  // Link the record without coalescing: control and data stay distinct
  // mbufs so soreceive_generic can tell them apart.
  if (sb->sb_lastrecord != nullptr)
    sb->sb_lastrecord->m_nextpkt = control;
  else
    sb->sb_mb = control;
  sb->sb_lastrecord = control;
  for (mbuf* m = control; m != nullptr; m = m->m_next) {
    sballoc(sb, m);
    sb->sb_mbtail = m;
  }
}

// Coalesces the now-ready run [m0, end) into its predecessors where the
// storage allows (sbready_compress). Only plain mapped data is merged.
static void sbready_compress(sockbuf* sb, mbuf* m0, mbuf* end)
    ABSL_EXCLUSIVE_LOCKS_REQUIRED(sb->sb_mtx) {
  (void)sb;
  (void)m0;
  (void)end;
  // Unmapped records (the only mbufs marked not ready today) are never
  // copied together: each is one TLS record and NIC-side framing relies on
  // that. Nothing to merge.
}

int sbready(sockbuf* sb, mbuf* m0, int count) {
  if (sb->sb_fnrdy == nullptr || count <= 0) return EINPROGRESS;
  mbuf* m = m0;
  const bool blocker = sb->sb_fnrdy == m0;
  while (count > 0 && m != nullptr) {
    if ((m->m_flags & M_EXTPG) && m->m_epg_npgs != 0) {
      if (count < m->m_epg_nrdy) {
        m->m_epg_nrdy -= count;
        count = 0;
        break;
      }
      count -= m->m_epg_nrdy;
      m->m_epg_nrdy = 0;
    } else {
      count--;
    }
    m->m_flags &= ~M_NOTREADY;
    if (blocker) {
      m->m_flags &= ~M_BLOCKED;
      sb->sb_acc += m->m_len;
    }
    m = m->m_next;
  }
  if (m == m0) return EINPROGRESS;  // first mbuf only partly ready
  if (!blocker) {
    sbready_compress(sb, m0, m);
    return EINPROGRESS;
  }
  // The first not-ready mbuf became ready: release what it blocked, up to
  // the next not-ready one.
  for (; m != nullptr && (m->m_flags & M_NOTREADY) == 0; m = m->m_next) {
    m->m_flags &= ~M_BLOCKED;
    sb->sb_acc += m->m_len;
  }
  sb->sb_fnrdy = m;
  sbready_compress(sb, m0, m);
  return 0;
}

static void m_advance_data(mbuf* m, int len) {
  if (m->m_flags & M_EXTPG)
    m->m_epg_off += len;
  else
    m->m_data += len;
  m->m_len -= len;
}

mbuf* sbcut_locked(sockbuf* sb, int len) {
  mbuf* mfree = nullptr;
  mbuf** ftail = &mfree;
  mbuf* next = sb->sb_mb ? sb->sb_mb->m_nextpkt : nullptr;
  mbuf* m = sb->sb_mb;
  while (len > 0) {
    if (m == nullptr) {
      if (next == nullptr) break;  // more than the buffer holds
      m = next;
      next = m->m_nextpkt;
      continue;
    }
    if (m->m_len > len) {
      // Partial: only ready data is ever cut partially (the protocol cuts
      // acknowledged bytes, and those were sent, hence ready).
      sb->sb_ccc -= len;
      if ((m->m_flags & M_NOTAVAIL) == 0) sb->sb_acc -= len;
      if (m->m_type != MT_DATA && m->m_type != MT_OOBDATA) sb->sb_ctl -= len;
      if (sb->sb_sndptroff != 0) sb->sb_sndptroff -= len;
      m_advance_data(m, len);
      break;
    }
    len -= m->m_len;
    sbfree(sb, m);
    mbuf* n = m->m_next;
    m->m_next = nullptr;
    if (m->m_flags & M_NOTREADY) {
      // Still referenced by whoever will make it ready (a KTLS worker or
      // sendfile): unlinked, not freed. Its pr_ready frees it.
    } else {
      *ftail = m;
      ftail = &m->m_next;
    }
    if (sb->sb_sndptroff >= static_cast<unsigned>(m->m_len))
      sb->sb_sndptroff -= m->m_len;
    else
      sb->sb_sndptroff = 0;
    m = n;
  }
  // Drop zero-length leftovers at the head (records emptied by the cut).
  while (m != nullptr && m->m_len == 0 && (m->m_flags & M_NOTREADY) == 0) {
    sbfree(sb, m);
    mbuf* n = m->m_next;
    m->m_next = nullptr;
    *ftail = m;
    ftail = &m->m_next;
    m = n;
  }
  if (m != nullptr) {
    sb->sb_mb = m;
    m->m_nextpkt = next;
  } else {
    sb->sb_mb = next;
  }
  if (sb->sb_mb == nullptr) {
    sb->sb_mbtail = nullptr;
    sb->sb_lastrecord = nullptr;
    sb->sb_sndptr = nullptr;
    sb->sb_sndptroff = 0;
  } else if (sb->sb_mb->m_nextpkt == nullptr) {
    sb->sb_lastrecord = sb->sb_mb;
  }
  return mfree;
}

void sbdrop_locked(sockbuf* sb, int len) { m_freem(sbcut_locked(sb, len)); }

void sbdroprecord_locked(sockbuf* sb) {
  mbuf* m = sb->sb_mb;
  if (m == nullptr) return;
  sb->sb_mb = m->m_nextpkt;
  m->m_nextpkt = nullptr;
  for (mbuf* n = m; n != nullptr; n = n->m_next) sbfree(sb, n);
  m_freem(m);
  if (sb->sb_mb == nullptr) {
    sb->sb_mbtail = nullptr;
    sb->sb_lastrecord = nullptr;
  }
}

mbuf* sbflush_locked(sockbuf* sb) {
  mbuf* all = nullptr;
  mbuf** tail = &all;
  while (sb->sb_mb != nullptr) {
    mbuf* rec = sb->sb_mb;
    sb->sb_mb = rec->m_nextpkt;
    rec->m_nextpkt = nullptr;
    for (mbuf* m = rec; m != nullptr;) {
      mbuf* n = m->m_next;
      sbfree(sb, m);
      m->m_next = nullptr;
      if ((m->m_flags & M_NOTREADY) == 0) {
        *tail = m;
        tail = &m->m_next;
      }
      m = n;
    }
  }
  sb->sb_mbtail = nullptr;
  sb->sb_lastrecord = nullptr;
  sb->sb_sndptr = nullptr;
  sb->sb_sndptroff = 0;
  sb->sb_fnrdy = nullptr;
  // The KTLS RX chain (ciphertext not yet decrypted) goes too; zeroing
  // sb_tlsdcc makes an in-flight decrypt discard its result, as FreeBSD.
  if (sb->sb_mtls != nullptr) {
    *tail = sb->sb_mtls;
    sb->sb_mtls = sb->sb_mtlstail = nullptr;
  }
  sb->sb_ccc -= sb->sb_tlscc + sb->sb_tlsdcc;
  sb->sb_tlscc = sb->sb_tlsdcc = 0;
  return all;
}

int sbreserve_locked(sockbuf* sb, unsigned cc, unsigned sb_max) {
  // FreeBSD's sb_max_adj: the part of kern.ipc.maxsockbuf usable for data.
  uint64_t max_adj = static_cast<uint64_t>(sb_max) * MCLBYTES / (MSIZE + MCLBYTES);
  if (cc > max_adj) return ENOBUFS;
  sb->sb_hiwat = cc;
  sb->sb_mbmax = std::min<uint64_t>(static_cast<uint64_t>(cc) * kSbEfficiency,
                                    sb_max);
  if (sb->sb_lowat > sb->sb_hiwat) sb->sb_lowat = sb->sb_hiwat;
  return 0;
}

void sbdestroy(sockbuf* sb) {
  mbuf* m;
  ktls_session* tls;
  {
    MutexLock l(&sb->sb_mtx);
    m = sbflush_locked(sb);
    tls = sb->sb_tls_info;
    sb->sb_tls_info = nullptr;
  }
  m_freem(m);
  if (tls != nullptr) ktls_free(tls);
}

mbuf* sbsndptr_noadv(sockbuf* sb, unsigned off, unsigned* moff) {
  mbuf* m;
  unsigned base;
  if (sb->sb_sndptr != nullptr && off >= sb->sb_sndptroff) {
    m = sb->sb_sndptr;
    base = sb->sb_sndptroff;
  } else {
    m = sb->sb_mb;
    base = 0;
  }
  while (m != nullptr && off - base >= static_cast<unsigned>(m->m_len)) {
    base += m->m_len;
    m = m->m_next;
  }
  if (m != nullptr) {
    sb->sb_sndptr = m;
    sb->sb_sndptroff = base;
  }
  *moff = off - base;
  return m;
}

mbuf* sbcreatecontrol(kernel& k, const void* p, int size, int type, int level) {
  size_t space = CMSG_SPACE(size);
  if (space > MCLBYTES) return nullptr;
  mbuf* m = space > static_cast<size_t>(MLEN)
                ? m_getcl(k, M_NOWAIT, MT_CONTROL, 0)
                : m_get(k, M_NOWAIT, MT_CONTROL);
  if (m == nullptr) return nullptr;
  // Built in an aligned buffer: mbuf data need not be 8-byte aligned.
  alignas(cmsghdr) char buf[MCLBYTES];
  auto* cp = reinterpret_cast<cmsghdr*>(buf);
  memset(buf, 0, space);
  cp->cmsg_len = CMSG_LEN(size);
  cp->cmsg_level = level;
  cp->cmsg_type = type;
  if (size > 0) memcpy(CMSG_DATA(cp), p, size);
  memcpy(mtod(m), buf, space);
  m->m_len = static_cast<int>(space);
  return m;
}

bool sbcheck(sockbuf* sb, const char** why) {
  unsigned acc = 0, ccc = 0, mbcnt = 0;
  bool seen_notready = false;
  mbuf* last = nullptr;
  mbuf* lastrec = nullptr;
  for (mbuf* rec = sb->sb_mb; rec != nullptr; rec = rec->m_nextpkt) {
    lastrec = rec;
    for (mbuf* m = rec; m != nullptr; m = m->m_next) {
      if (m == sb->sb_fnrdy) seen_notready = true;
      if (!seen_notready) {
        if (m->m_flags & M_NOTAVAIL) {
          *why = "not-ready mbuf before sb_fnrdy";
          return false;
        }
        acc += m->m_len;
      } else if ((m->m_flags & M_NOTAVAIL) == 0) {
        *why = "available mbuf behind sb_fnrdy";
        return false;
      }
      ccc += m->m_len;
      mbcnt += m_storage(m);
      last = m;
    }
  }
  if (sb->sb_fnrdy != nullptr && !seen_notready) {
    *why = "sb_fnrdy not in the buffer";
    return false;
  }
  if (acc != sb->sb_acc) {
    *why = "sb_acc mismatch";
    return false;
  }
  if (ccc + sb->sb_tlscc + sb->sb_tlsdcc != sb->sb_ccc) {
    *why = "sb_ccc mismatch";
    return false;
  }
  if (mbcnt != sb->sb_mbcnt) {
    *why = "sb_mbcnt mismatch";
    return false;
  }
  if (last != sb->sb_mbtail) {
    *why = "sb_mbtail is not the last mbuf";
    return false;
  }
  if (lastrec != sb->sb_lastrecord) {
    *why = "sb_lastrecord is not the last record";
    return false;
  }
  return true;
}

}  // namespace uk
