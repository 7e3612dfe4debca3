// mbuf allocation, chain surgery and M_EXTPG (unmapped) mbufs. Mirrors
// FreeBSD's sys/kern/kern_mbuf.c and sys/kern/uipc_mbuf.c.
#include <algorithm>
#include <cassert>
#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "absl/strings/numbers.h"

#include "sys/kern/kernel.h"
#include "sys/kern/uipc_ktls.h"
#include "sys/kern/vm_page.h"
#include "sys/net/if_snd_tag.h"
#include "sys/sys/mbuf.h"
#include "sys/sys/uma.h"

namespace uk {

UK_KERNEL_SLOT(MbufState)

namespace {

int ext_size_for(int type) {
  switch (type) {
    case EXT_CLUSTER:
      return MCLBYTES;
    case EXT_JUMBOP:
      return MJUMPAGESIZE;
    case EXT_JUMBO9:
      return MJUM9BYTES;
    case EXT_JUMBO16:
      return MJUM16BYTES;
    case EXT_KTLS_REC:
      return KTLS_REC_BYTES;
    default:
      return 0;
  }
}

// Total bytes held in the pages of an M_EXTPG mbuf.
int epg_pages_len(const mbuf* m) {
  if (m->m_epg_npgs == 0) return 0;
  if (m->m_epg_npgs == 1) return m->m_epg_last_len;
  return (PAGE_SIZE - m->m_epg_1st_off) + (m->m_epg_npgs - 2) * PAGE_SIZE +
         m->m_epg_last_len;
}

// Calls f(ptr, n) for each contiguous piece of [off, off+len) of one mbuf's
// data; stops early if f returns non-zero and returns that value.
template <class F>
int mbuf_segments(const mbuf* m, int off, int len, F&& f) {
  if (len <= 0) return 0;
  if (!(m->m_flags & M_EXTPG)) return f(m->m_data + off, len);
  int o = m->m_epg_off + off;  // offset in hdr ‖ pages ‖ trail
  const int hdrlen = m->m_epg_hdrlen;
  if (o < hdrlen) {
    int n = std::min(len, hdrlen - o);
    if (int r = f(const_cast<char*>(m->m_epg_hdr) + o, n)) return r;
    len -= n;
    o += n;
  }
  o -= hdrlen;
  const int pglen = epg_pages_len(m);
  if (len > 0 && o < pglen) {
    int pgoff = m->m_epg_1st_off;
    for (int i = 0; i < m->m_epg_npgs && len > 0; i++) {
      int plen = m_epg_pagelen(m, i, pgoff);
      if (o >= plen) {
        o -= plen;
      } else {
        int n = std::min(len, plen - o);
        char* p = reinterpret_cast<char*>(PHYS_TO_DMAP(m->m_epg_pa[i])) + pgoff + o;
        if (int r = f(p, n)) return r;
        len -= n;
        o = 0;
      }
      pgoff = 0;
    }
    o = 0;
  } else {
    o -= pglen;
  }
  if (len > 0) {
    assert(o + len <= m->m_epg_trllen);
    if (int r = f(const_cast<char*>(m->m_epg_trail) + o, len)) return r;
  }
  return 0;
}

char* buf_start(const mbuf* m) {
  if (m->m_flags & M_EXT) return m->m_ext.ext_buf;
  return const_cast<char*>(m->m_dat);
}

int buf_size(const mbuf* m) {
  if (m->m_flags & M_EXT) return m->m_ext.ext_size;
  return (m->m_flags & M_PKTHDR) ? MHLEN : MLEN;
}

// The zones mbufs and their storage come from (FreeBSD's kern_mbuf.c:
// zone_mbuf, zone_clust, zone_jumbop, zone_jumbo9, zone_jumbo16). A
// cluster's reference count lives in the same item, after the storage.
struct MbufZones {
  uma_zone_t mbuf = uma_zcreate("mbuf", sizeof(struct mbuf), alignof(struct mbuf));
  uma_zone_t clust = cluster_zone("mbuf_cluster", MCLBYTES);
  uma_zone_t jumbop = cluster_zone("mbuf_jumbo_page", MJUMPAGESIZE);
  uma_zone_t jumbo9 = cluster_zone("mbuf_jumbo_9k", MJUM9BYTES);
  uma_zone_t jumbo16 = cluster_zone("mbuf_jumbo_16k", MJUM16BYTES);
  uma_zone_t ktlsrec = cluster_zone("mbuf_ktls_record", KTLS_REC_BYTES);
  uma_zone_t refcnt = uma_zcreate("mbuf_ext_refcnt", sizeof(std::atomic<int>),
                                  alignof(std::atomic<int>));

  static uma_zone_t cluster_zone(const char* name, int size) {
    return uma_zcreate(name, size + sizeof(std::atomic<int>), 64);
  }
  uma_zone_t for_type(int ext_type) const {
    switch (ext_type) {
      case EXT_CLUSTER:
        return clust;
      case EXT_JUMBOP:
        return jumbop;
      case EXT_JUMBO9:
        return jumbo9;
      case EXT_KTLS_REC:
        return ktlsrec;
      default:
        return jumbo16;
    }
  }
};

const MbufZones& zones() {
  static const MbufZones* z = new MbufZones;
  return *z;
}

mbuf* mbuf_alloc(MbufState& ms, short type, int flags) {
  void* mem = uma_zalloc(zones().mbuf);
  if (mem == nullptr) {
    ms.mbuf_failures.add(1);
    return nullptr;
  }
  // Counted before the mbuf is written: a locked add waits for the stores
  // before it, and those to an mbuf last freed on another CPU miss.
  ms.mbufs_in_use.add(1);
  ms.mbuf_allocs.add(1);
  mbuf* m = new (mem) mbuf;
  m->m_type = type;
  m->m_flags = flags;
  m->m_owner = &ms;
  m->m_data = m->m_dat;
  return m;
}

bool attach_cluster(mbuf* m, int type) {
  int size = ext_size_for(type);
  char* buf = static_cast<char*>(uma_zalloc(zones().for_type(type)));
  if (buf == nullptr) return false;
  auto* cnt = new (buf + size) std::atomic<int>(1);
  m->m_ext.ext_buf = buf;
  m->m_ext.ext_size = size;
  m->m_ext.ext_type = type;
  m->m_ext.ext_cnt = cnt;
  m->m_flags |= M_EXT;
  m->m_data = buf;
  m->m_owner->clusters_in_use.add(1);
  m->m_owner->cluster_allocs.add(1);
  return true;
}

// Shares m's external storage with n (m_copym / m_split).
void share_ext(mbuf* n, const mbuf* m) {
  n->m_ext = m->m_ext;
  n->m_ext.ext_cnt->fetch_add(1, std::memory_order_relaxed);
  n->m_flags |= m->m_flags & (M_EXT | M_EXTPG | M_RDONLY);
  if (m->m_flags & M_EXTPG) {
    n->m_epg_npgs = m->m_epg_npgs;
    n->m_epg_nrdy = m->m_epg_nrdy;
    n->m_epg_hdrlen = m->m_epg_hdrlen;
    n->m_epg_trllen = m->m_epg_trllen;
    n->m_epg_1st_off = m->m_epg_1st_off;
    n->m_epg_last_len = m->m_epg_last_len;
    n->m_epg_flags = m->m_epg_flags;
    n->m_epg_record_type = m->m_epg_record_type;
    n->m_epg_enc_cnt = m->m_epg_enc_cnt;
    n->m_epg_tls = m->m_epg_tls;
    n->m_epg_so = m->m_epg_so;
    n->m_epg_seqno = m->m_epg_seqno;
    memcpy(n->m_epg_pa, m->m_epg_pa, sizeof(m->m_epg_pa));
    memcpy(n->m_epg_hdr, m->m_epg_hdr, sizeof(m->m_epg_hdr));
    memcpy(n->m_epg_trail, m->m_epg_trail, sizeof(m->m_epg_trail));
    n->m_epg_off = m->m_epg_off;
  } else {
    n->m_data = m->m_data;
  }
}

// Data pointer/offset arithmetic that works for both kinds.
void m_data_advance(mbuf* m, int n) {
  if (m->m_flags & M_EXTPG)
    m->m_epg_off += n;
  else
    m->m_data += n;
}

void m_dup_pkthdr(mbuf* to, const mbuf* from) {
  to->m_flags = (from->m_flags & M_COPYFLAGS) | (to->m_flags & (M_EXT | M_EXTPG | M_RDONLY));
  to->m_pkthdr = from->m_pkthdr;
  to->m_pkthdr.snd_tag = nullptr;
  to->m_pkthdr.csum_flags &= ~CSUM_SND_TAG;
}

}  // namespace

MbufState::MbufState(kernel& kern) : k(kern), pages(kern.vm.get()), sysctl_ctx(kern) {}

void MbufDeleter::operator()(mbuf* m) const { m_freem(m); }

int m_epg_pagelen(const mbuf* m, int pidx, int pgoff) {
  if (pidx == m->m_epg_npgs - 1) return m->m_epg_last_len;
  return PAGE_SIZE - pgoff;
}

mbuf* m_get(kernel& k, int, short type) { return mbuf_alloc(*k.mb, type, 0); }

mbuf* m_gethdr(kernel& k, int, short type) {
  return mbuf_alloc(*k.mb, type, M_PKTHDR);
}

mbuf* m_getjcl(kernel& k, int how, short type, int flags, int size) {
  int ext = size <= MCLBYTES       ? EXT_CLUSTER
            : size <= MJUMPAGESIZE ? EXT_JUMBOP
            : size <= MJUM9BYTES   ? EXT_JUMBO9
                                   : EXT_JUMBO16;
  if (size > MJUM16BYTES) return nullptr;
  mbuf* m = mbuf_alloc(*k.mb, type, flags & (M_PKTHDR | M_EOR));
  if (m == nullptr) return nullptr;
  if (!attach_cluster(m, ext)) {
    k.mb->mbuf_failures.add(1);
    m_free(m);
    return nullptr;
  }
  (void)how;
  return m;
}

mbuf* m_getktlsrec(kernel& k, int, short type) {
  mbuf* m = mbuf_alloc(*k.mb, type, 0);
  if (m == nullptr) return nullptr;
  if (!attach_cluster(m, EXT_KTLS_REC)) {
    k.mb->mbuf_failures.add(1);
    m_free(m);
    return nullptr;
  }
  return m;
}

mbuf* m_getcl(kernel& k, int how, short type, int flags) {
  return m_getjcl(k, how, type, flags, MCLBYTES);
}

mbuf* m_getm2(kernel& k, mbuf* m, int len, int how, short type, int flags) {
  mbuf* head = nullptr;
  mbuf* tail = nullptr;
  bool first = true;
  do {
    mbuf* mb;
    int f = first ? (flags & M_PKTHDR) : 0;
    if (len >= MJUMPAGESIZE)
      mb = m_getjcl(k, how, type, f, MJUMPAGESIZE);
    else if (len > (first && (flags & M_PKTHDR) ? MHLEN : MLEN))
      mb = m_getcl(k, how, type, f);
    else
      mb = (f & M_PKTHDR) ? m_gethdr(k, how, type) : m_get(k, how, type);
    if (mb == nullptr) {
      m_freem(head);
      return nullptr;
    }
    len -= buf_size(mb);
    if (tail)
      tail->m_next = mb;
    else
      head = mb;
    tail = mb;
    first = false;
  } while (len > 0);
  if (flags & M_EOR) tail->m_flags |= M_EOR;
  if (m != nullptr) {
    mbuf* last = m;
    while (last->m_next) last = last->m_next;
    last->m_next = head;
    return m;
  }
  return head;
}

mbuf* mb_alloc_ext_pgs(kernel& k, int, bool anon) {
  mbuf* m = mbuf_alloc(*k.mb, MT_DATA, M_EXT | M_EXTPG | M_RDONLY);
  if (m == nullptr) return nullptr;
  void* mem = uma_zalloc(zones().refcnt);
  if (mem == nullptr) {
    m_free(m);
    return nullptr;
  }
  auto* cnt = new (mem) std::atomic<int>(1);
  m->m_ext.ext_type = EXT_PGS;
  m->m_ext.ext_cnt = cnt;
  m->m_data = nullptr;
  m->m_epg_flags = anon ? EPG_FLAG_ANON : 0;
  k.mb->extpgs_in_use.add(1);
  k.mb->extpg_allocs.add(1);
  return m;
}

mbuf* m_free(mbuf* m) {
  mbuf* next = m->m_next;
  MbufState* ms = m->m_owner;
  // A packet carrying a send tag holds a reference on it (FreeBSD's m_free
  // releases it the same way), wherever in the stack the packet dies.
  if ((m->m_flags & M_PKTHDR) && (m->m_pkthdr.csum_flags & CSUM_SND_TAG) &&
      m->m_pkthdr.snd_tag != nullptr) {
    m_snd_tag_rele(m->m_pkthdr.snd_tag);
  }
  if (m->m_flags & M_EXT) {
    if (m->m_ext.ext_cnt->fetch_sub(1, std::memory_order_acq_rel) == 1) {
      if (m->m_flags & M_EXTPG) {
        uma_zfree(zones().refcnt, m->m_ext.ext_cnt);
        PagePool::release_n(m->m_epg_pa, m->m_epg_npgs);
        if (m->m_epg_tls != nullptr) ktls_free(m->m_epg_tls);
        ms->extpgs_in_use.add(-1);
      } else if (m->m_ext.ext_type == EXT_SFBUF) {
        // The last piece of an unmapped mbuf's pages: the mbuf goes, and
        // with it the pages (mb_unmapped_to_ext).
        uma_zfree(zones().refcnt, m->m_ext.ext_cnt);
        m_free(m->m_ext.ext_arg1);
      } else {
        // The count lives inside the cluster's item.
        uma_zfree(zones().for_type(m->m_ext.ext_type), m->m_ext.ext_buf);
        ms->clusters_in_use.add(-1);
      }
    }
  }
  ms->mbufs_in_use.add(-1);
  m->~mbuf();
  uma_zfree(zones().mbuf, m);
  return next;
}

void m_freem(mbuf* m) {
  while (m != nullptr) m = m_free(m);
}

unsigned m_length(const mbuf* m, mbuf** last) {
  unsigned len = 0;
  const mbuf* l = nullptr;
  for (; m; m = m->m_next) {
    len += m->m_len;
    l = m;
  }
  if (last) *last = const_cast<mbuf*>(l);
  return len;
}

int m_fixhdr(mbuf* m) {
  int len = static_cast<int>(m_length(m, nullptr));
  m->m_pkthdr.len = len;
  return len;
}

void m_copydata(const mbuf* m, int off, int len, void* cp) {
  assert(off >= 0 && len >= 0);
  char* dst = static_cast<char*>(cp);
  if (m != nullptr && len > 0) m->m_owner->copies.add(len);
  while (off > 0) {
    assert(m != nullptr);
    if (off < m->m_len) break;
    off -= m->m_len;
    m = m->m_next;
  }
  while (len > 0) {
    assert(m != nullptr);
    int n = std::min(m->m_len - off, len);
    mbuf_segments(m, off, n, [&dst](char* p, int l) {
      memcpy(dst, p, l);
      dst += l;
      return 0;
    });
    len -= n;
    off = 0;
    m = m->m_next;
  }
}

int m_copyback(mbuf* m0, int off, int len, const void* cp) {
  const char* src = static_cast<const char*>(cp);
  mbuf* m = m0;
  int totlen = 0;
  if (m0 == nullptr) return EINVAL;
  kernel& k = m0->m_owner->k;
  while (off > m->m_len) {
    off -= m->m_len;
    totlen += m->m_len;
    if (m->m_next == nullptr) {
      mbuf* n = m_get(k, M_NOWAIT, m->m_type);
      if (n == nullptr) return ENOMEM;
      n->m_len = std::min(MLEN, len + off);
      memset(n->m_data, 0, n->m_len);
      m->m_next = n;
    }
    m = m->m_next;
  }
  while (len > 0) {
    if (m->m_next == nullptr && m->m_len < off + len && M_WRITABLE(m)) {
      int room = M_TRAILINGSPACE(m);
      int grow = std::min(room, off + len - m->m_len);
      m->m_len += grow;
    }
    int mlen = std::min(m->m_len - off, len);
    if (mlen > 0) {
      if (!M_WRITABLE(m)) return EINVAL;
      memcpy(mtod(m) + off, src, mlen);
      m0->m_owner->copies.add(mlen);
    }
    src += mlen;
    len -= mlen;
    mlen += off;
    off = 0;
    totlen += mlen;
    if (len == 0) break;
    if (m->m_next == nullptr) {
      mbuf* n = m_get(k, M_NOWAIT, m->m_type);
      if (n == nullptr) return ENOMEM;
      n->m_len = std::min(MLEN, len);
      m->m_next = n;
    }
    m = m->m_next;
  }
  if ((m0->m_flags & M_PKTHDR) && m0->m_pkthdr.len < totlen)
    m0->m_pkthdr.len = totlen;
  return 0;
}

mbuf* m_copym(mbuf* m, int off0, int len, int how) {
  assert(off0 >= 0 && len >= 0);
  int off = off0;
  bool copyhdr = off == 0 && (m->m_flags & M_PKTHDR);
  kernel& k = m->m_owner->k;
  while (off > 0) {
    assert(m != nullptr);
    if (off < m->m_len) break;
    off -= m->m_len;
    m = m->m_next;
  }
  mbuf* top = nullptr;
  mbuf** np = &top;
  while (len > 0) {
    if (m == nullptr) {
      assert(len == M_COPYALL);
      break;
    }
    mbuf* n = copyhdr ? m_gethdr(k, how, m->m_type) : m_get(k, how, m->m_type);
    if (n == nullptr) {
      m_freem(top);
      return nullptr;
    }
    if (copyhdr) {
      m_dup_pkthdr(n, m);
      n->m_pkthdr.len = len == M_COPYALL ? n->m_pkthdr.len - off0 : len;
      copyhdr = false;
    }
    n->m_len = std::min(len, m->m_len - off);
    if (m->m_flags & M_EXT) {
      share_ext(n, m);
      m_data_advance(n, off);
    } else {
      memcpy(n->m_data, m->m_data + off, n->m_len);
    }
    n->m_flags |= m->m_flags & (M_EOR | M_NOTREADY | M_DECRYPTED);
    if (len != M_COPYALL) len -= n->m_len;
    off = 0;
    m = m->m_next;
    *np = n;
    np = &n->m_next;
  }
  return top;
}

mbuf* m_dup(kernel& k, const mbuf* m, int how) {
  int total = static_cast<int>(m_length(m, nullptr));
  mbuf* n = m_getm2(k, nullptr, std::max(total, 1), how, m->m_type,
                    m->m_flags & M_PKTHDR);
  if (n == nullptr) return nullptr;
  if (m->m_flags & M_PKTHDR) m_dup_pkthdr(n, m);
  int off = 0;
  for (mbuf* d = n; d && off < total; d = d->m_next) {
    int l = std::min(buf_size(d), total - off);
    m_copydata(m, off, l, d->m_data);
    d->m_len = l;
    off += l;
  }
  if (n->m_flags & M_PKTHDR) n->m_pkthdr.len = total;
  return n;
}

mbuf* m_split(mbuf* m0, int len0, int how) {
  mbuf* m = m0;
  int len = len0;
  kernel& k = m0->m_owner->k;
  while (m != nullptr && len > m->m_len) {
    len -= m->m_len;
    m = m->m_next;
  }
  if (m == nullptr) return nullptr;
  int remain = m->m_len - len;
  mbuf* n;
  if ((m0->m_flags & M_PKTHDR) && remain == 0) {
    n = m_gethdr(k, how, m0->m_type);
    if (n == nullptr) return nullptr;
    n->m_next = m->m_next;
    m->m_next = nullptr;
    n->m_pkthdr.rcvif = m0->m_pkthdr.rcvif;
    n->m_pkthdr.len = m0->m_pkthdr.len - len0;
    m0->m_pkthdr.len = len0;
    return n;
  }
  if (m0->m_flags & M_PKTHDR) {
    n = m_gethdr(k, how, m0->m_type);
    if (n == nullptr) return nullptr;
    n->m_pkthdr.rcvif = m0->m_pkthdr.rcvif;
    n->m_pkthdr.len = m0->m_pkthdr.len - len0;
    m0->m_pkthdr.len = len0;
  } else if (remain == 0) {
    n = m->m_next;
    m->m_next = nullptr;
    return n;
  } else {
    n = m_get(k, how, m->m_type);
    if (n == nullptr) return nullptr;
  }
  if (m->m_flags & M_EXT) {
    share_ext(n, m);
    m_data_advance(n, len);
  } else if (remain > buf_size(n)) {
    // Internal data never exceeds MLEN, but a header mbuf holds less.
    mbuf* c = m_getcl(k, how, m->m_type, 0);
    if (c == nullptr) {
      m_free(n);
      return nullptr;
    }
    memcpy(c->m_data, m->m_data + len, remain);
    c->m_len = remain;
    n->m_next = c;
    n->m_len = 0;
    c->m_next = m->m_next;
    c->m_flags |= m->m_flags & (M_EOR | M_NOTREADY);
    m->m_next = nullptr;
    m->m_len = len;
    m->m_flags &= ~M_EOR;
    return n;
  } else {
    memcpy(n->m_data, m->m_data + len, remain);
  }
  n->m_len = remain;
  n->m_flags |= m->m_flags & (M_EOR | M_NOTREADY | M_DECRYPTED);
  m->m_flags &= ~M_EOR;
  m->m_len = len;
  n->m_next = m->m_next;
  m->m_next = nullptr;
  return n;
}

void m_cat(mbuf* m, mbuf* n) {
  while (m->m_next) m = m->m_next;
  while (n != nullptr) {
    if (!M_WRITABLE(m) || (m->m_flags & M_EXTPG) || (n->m_flags & M_EXT) ||
        M_TRAILINGSPACE(m) < n->m_len) {
      m->m_next = n;
      return;
    }
    memcpy(mtod(m) + m->m_len, mtod(n), n->m_len);
    m->m_len += n->m_len;
    m->m_flags |= n->m_flags & M_EOR;
    n = m_free(n);
  }
}

void m_adj(mbuf* mp, int req_len) {
  if (mp == nullptr) return;
  int len = req_len;
  mbuf* m = mp;
  if (len >= 0) {
    while (m != nullptr && len > 0) {
      if (m->m_len <= len) {
        len -= m->m_len;
        m_data_advance(m, m->m_len);
        m->m_len = 0;
        m = m->m_next;
      } else {
        m->m_len -= len;
        m_data_advance(m, len);
        len = 0;
      }
    }
    if (mp->m_flags & M_PKTHDR) mp->m_pkthdr.len -= (req_len - len);
    return;
  }
  // Trim from the tail: find the new total length and cut there.
  len = -len;
  int count = 0;
  for (mbuf* x = mp; x; x = x->m_next) count += x->m_len;
  if (len >= count) len = count;
  count -= len;
  if (mp->m_flags & M_PKTHDR) mp->m_pkthdr.len = count;
  for (m = mp; m; m = m->m_next) {
    if (m->m_len >= count) {
      m->m_len = count;
      if (m->m_next != nullptr) {
        // Later mbufs become empty (FreeBSD keeps them, zero length).
        for (mbuf* x = m->m_next; x; x = x->m_next) x->m_len = 0;
      }
      break;
    }
    count -= m->m_len;
  }
}

mbuf* m_pullup(mbuf* m, int len) {
  if (m->m_len >= len && !(m->m_flags & M_EXTPG)) return m;
  if (len > MHLEN || static_cast<int>(m_length(m, nullptr)) < len) {
    m_freem(m);
    return nullptr;
  }
  kernel& k = m->m_owner->k;
  mbuf* n = (m->m_flags & M_PKTHDR) ? m_gethdr(k, M_NOWAIT, m->m_type)
                                    : m_get(k, M_NOWAIT, m->m_type);
  if (n == nullptr) {
    m_freem(m);
    return nullptr;
  }
  if (m->m_flags & M_PKTHDR) m_move_pkthdr(n, m);
  m_copydata(m, 0, len, n->m_data);
  n->m_len = len;
  m_adj(m, len);
  // Drop mbufs the adjustment emptied (keeps EOR on what remains).
  while (m != nullptr && m->m_len == 0) {
    n->m_flags |= m->m_flags & M_EOR;
    m = m_free(m);
  }
  n->m_next = m;
  return n;
}

mbuf* m_prepend(mbuf* m, int len, int how) {
  if (M_LEADINGSPACE(m) >= len) {
    m->m_data -= len;
    m->m_len += len;
    if (m->m_flags & M_PKTHDR) m->m_pkthdr.len += len;
    return m;
  }
  kernel& k = m->m_owner->k;
  if (len > MHLEN) {
    m_freem(m);
    return nullptr;
  }
  mbuf* n = (m->m_flags & M_PKTHDR) ? m_gethdr(k, how, m->m_type)
                                    : m_get(k, how, m->m_type);
  if (n == nullptr) {
    m_freem(m);
    return nullptr;
  }
  if (m->m_flags & M_PKTHDR) m_move_pkthdr(n, m);
  n->m_next = m;
  // Place the data at the end of the buffer (M_ALIGN) so later prepends fit.
  n->m_data = buf_start(n) + buf_size(n) - len;
  n->m_len = len;
  if (n->m_flags & M_PKTHDR) n->m_pkthdr.len += len;
  return n;
}

bool M_WRITABLE(const mbuf* m) {
  if (m->m_flags & (M_RDONLY | M_EXTPG)) return false;
  if (m->m_flags & M_EXT)
    return m->m_ext.ext_cnt->load(std::memory_order_acquire) == 1;
  return true;
}

int M_LEADINGSPACE(const mbuf* m) {
  if (!M_WRITABLE(m)) return 0;
  return static_cast<int>(m->m_data - buf_start(m));
}

int M_TRAILINGSPACE(const mbuf* m) {
  if (!M_WRITABLE(m)) return 0;
  return static_cast<int>(buf_start(m) + buf_size(m) - (m->m_data + m->m_len));
}

void m_move_pkthdr(mbuf* to, mbuf* from) {
  to->m_flags = (from->m_flags & M_COPYFLAGS) |
                (to->m_flags & (M_EXT | M_EXTPG | M_RDONLY));
  if (!(to->m_flags & M_EXT)) to->m_data = to->m_dat;
  to->m_pkthdr = from->m_pkthdr;
  from->m_flags &= ~M_PKTHDR;
  from->m_pkthdr = pkthdr();
}

static mbuf* uiotombuf_nomap(kernel& k, uio* uio, int how, int len, int maxseg,
                             int flags, int* error) {
  ssize_t total = len > 0 ? std::min<ssize_t>(uio->uio_resid, len) : uio->uio_resid;
  if (maxseg == 0) maxseg = MBUF_PEXT_MAX_PGS * PAGE_SIZE;
  if (maxseg > MBUF_PEXT_MAX_PGS_UK * static_cast<int>(PAGE_SIZE)) {
    *error = EINVAL;
    return nullptr;
  }
  // An empty record (TLS 1.0 empty fragment).
  if (total == 0) {
    mbuf* mb = mb_alloc_ext_pgs(k, how, true);
    if (mb == nullptr) *error = ENOMEM;
    if (mb && (flags & M_EOR)) mb->m_flags |= M_EOR;
    return mb;
  }
  mbuf* top = nullptr;
  mbuf** np = &top;
  while (total > 0) {
    mbuf* mb = mb_alloc_ext_pgs(k, how, true);
    if (mb == nullptr) {
      m_freem(top);
      *error = ENOMEM;
      return nullptr;
    }
    *np = mb;
    np = &mb->m_next;
    int seg = static_cast<int>(std::min<ssize_t>(total, maxseg));
    int npgs = static_cast<int>((seg + PAGE_MASK) >> PAGE_SHIFT);
    if (!k.vm->alloc_n(npgs, mb->m_epg_pa)) {
      m_freem(top);
      *error = ENOMEM;
      return nullptr;
    }
    mb->m_epg_npgs = npgs;
    mb->m_epg_1st_off = 0;
    int left = seg;
    for (int i = 0; i < npgs; i++) {
      int n = std::min<int>(left, PAGE_SIZE);
      if (int e = uiomove(PHYS_TO_DMAP(mb->m_epg_pa[i]), n, uio)) {
        m_freem(top);
        *error = e;
        return nullptr;
      }
      left -= n;
      mb->m_epg_last_len = n;
    }
    k.mb->copies.add(seg);
    k.mb->copyin.add(seg);
    mb->m_len = seg;
    total -= seg;
  }
  if (flags & M_EOR) {
    mbuf* last;
    m_length(top, &last);
    last->m_flags |= M_EOR;
  }
  return top;
}

mbuf* m_uiotombuf(kernel& k, uio* uio, int how, int len, int maxseg, int flags,
                  int* error) {
  *error = 0;
  if (flags & M_EXTPG) return uiotombuf_nomap(k, uio, how, len, maxseg, flags, error);
  ssize_t total = len > 0 ? std::min<ssize_t>(uio->uio_resid, len) : uio->uio_resid;
  mbuf* m = m_getm2(k, nullptr, static_cast<int>(std::max<ssize_t>(total, 0)),
                    how, MT_DATA, flags & (M_PKTHDR | M_EOR));
  if (m == nullptr) {
    *error = ENOMEM;
    return nullptr;
  }
  ssize_t progress = 0;
  for (mbuf* mb = m; mb != nullptr && progress < total; mb = mb->m_next) {
    int l = static_cast<int>(std::min<ssize_t>(M_TRAILINGSPACE(mb), total - progress));
    if (int e = uiomove(mtod(mb), l, uio)) {
      m_freem(m);
      *error = e;
      return nullptr;
    }
    mb->m_len = l;
    progress += l;
  }
  k.mb->copies.add(progress);
  k.mb->copyin.add(progress);
  if (flags & M_PKTHDR) m->m_pkthdr.len = static_cast<int>(progress);
  return m;
}

namespace {

// One M_EXTPG mbuf as mapped ones (FreeBSD's _mb_unmapped_to_ext): its TLS
// header and trailer copied into mbufs of their own, each page's piece an
// EXT_SFBUF mbuf pointing into the page, read-only. The pieces share one
// count; m, unlinked, stays holding the pages and its session reference
// until the count drops to zero. The new chain takes m's place (its last
// mbuf, *last, points where m did); null if memory ran out (nothing
// changed, m still whole).
mbuf* unmapped_to_ext_one(mbuf* m, mbuf** last) {
  MbufState& ms = *m->m_owner;
  void* mem = uma_zalloc(zones().refcnt);
  if (mem == nullptr) return nullptr;
  // One count for the making of the chain, so that freeing a partial one
  // never frees m.
  auto* cnt = new (mem) std::atomic<int>(1);
  mbuf* head = nullptr;
  mbuf** np = &head;
  const int flags = m->m_flags & (M_NOTREADY | M_DECRYPTED);
  auto append = [&](mbuf* n) {
    n->m_flags |= flags;
    *np = n;
    np = &n->m_next;
    *last = n;
  };
  auto copied = [&](const char* src, int n) {
    mbuf* c = mbuf_alloc(ms, m->m_type, 0);
    if (c == nullptr) return false;
    if (n > 0) memcpy(c->m_data, src, n);
    c->m_len = n;
    ms.copies.add(n);
    append(c);
    return true;
  };
  auto within = [](const char* p, const char* arr, size_t size) {
    auto x = reinterpret_cast<uintptr_t>(p), a = reinterpret_cast<uintptr_t>(arr);
    return x >= a && x < a + size;
  };
  const bool ok = mbuf_segments(m, 0, m->m_len, [&](char* p, int n) {
    if (within(p, m->m_epg_hdr, sizeof m->m_epg_hdr) ||
        within(p, m->m_epg_trail, sizeof m->m_epg_trail))
      return copied(p, n) ? 0 : ENOMEM;
    mbuf* piece = mbuf_alloc(ms, m->m_type, M_EXT | M_RDONLY);
    if (piece == nullptr) return ENOMEM;
    // Pages are page aligned (vm_page::data).
    piece->m_ext.ext_buf =
        reinterpret_cast<char*>(reinterpret_cast<uintptr_t>(p) & ~static_cast<uintptr_t>(PAGE_MASK));
    piece->m_ext.ext_size = PAGE_SIZE;
    piece->m_ext.ext_type = EXT_SFBUF;
    piece->m_ext.ext_cnt = cnt;
    piece->m_ext.ext_arg1 = m;
    cnt->fetch_add(1, std::memory_order_relaxed);
    piece->m_data = p;
    piece->m_len = n;
    append(piece);
    return 0;
  }) == 0;
  if (!ok) {
    m_freem(head);  // its pieces were only ours: the count is back to 1
    uma_zfree(zones().refcnt, cnt);
    return nullptr;
  }
  if (head == nullptr && !copied(nullptr, 0)) {  // an empty mbuf stays one
    uma_zfree(zones().refcnt, cnt);
    return nullptr;
  }
  (*last)->m_flags |= m->m_flags & M_EOR;
  if (m->m_flags & M_PKTHDR) m_move_pkthdr(head, m);
  (*last)->m_next = m->m_next;
  m->m_next = nullptr;
  if (cnt->fetch_sub(1, std::memory_order_acq_rel) == 1) {  // no page pieces
    uma_zfree(zones().refcnt, cnt);
    m_free(m);
  }
  return head;
}

}  // namespace

mbuf* mb_unmapped_to_ext(mbuf* top) {
  mbuf* prev = nullptr;
  mbuf* m = top;
  while (m != nullptr) {
    if (!(m->m_flags & M_EXTPG)) {
      prev = m;
      m = m->m_next;
      continue;
    }
    mbuf* tail = nullptr;
    mbuf* head = unmapped_to_ext_one(m, &tail);
    if (head == nullptr) {
      m_freem(top);
      return nullptr;
    }
    if (prev)
      prev->m_next = head;
    else
      top = head;
    prev = tail;
    m = tail->m_next;
  }
  return top;
}

int m_mbuftouio(uio* uio, const mbuf* m, int off, int len) {
  while (m != nullptr && off >= m->m_len) {
    off -= m->m_len;
    m = m->m_next;
  }
  int error = 0;
  for (; m != nullptr && len > 0 && uio->uio_resid > 0; m = m->m_next) {
    int n = static_cast<int>(std::min<ssize_t>(std::min(m->m_len - off, len), uio->uio_resid));
    error = mbuf_segments(m, off, n, [uio](char* p, int l) { return uiomove(p, l, uio); });
    if (error) return error;
    m->m_owner->copies.add(n);
    m->m_owner->copyout.add(n);
    len -= n;
    off = 0;
  }
  return error;
}

int m_apply(const mbuf* m, int off, int len,
            int (*f)(void* arg, void* data, unsigned len), void* arg) {
  while (m != nullptr && off >= m->m_len) {
    off -= m->m_len;
    m = m->m_next;
  }
  for (; m != nullptr && len > 0; m = m->m_next) {
    int n = std::min(m->m_len - off, len);
    int r = mbuf_segments(m, off, n, [f, arg](char* p, int l) {
      return f(arg, p, static_cast<unsigned>(l));
    });
    if (r) return r;
    len -= n;
    off = 0;
  }
  return len > 0 ? EINVAL : 0;
}

static int mbuf_sysinit(kernel& k) {
  k.mb.reset(new MbufState(k));
  MbufState& ms = *k.mb;
  sysctl_ctx_list& c = ms.sysctl_ctx;
  int e = 0;
  auto chk = [&e](int r) {
    if (e == 0) e = r;
  };
  if (const std::string* t = k.tunable("kern.ipc.mb_use_ext_pgs")) {
    int v;
    if (!absl::SimpleAtoi(*t, &v)) e = EINVAL;
    ms.mb_use_ext_pgs.store(v != 0);
  }
  std::atomic<int>* use = &ms.mb_use_ext_pgs;
  chk(c.add_proc(
      "kern.ipc.mb_use_ext_pgs", CTLTYPE_INT | CTLFLAG_RWTUN, "I",
      [use](sysctl_req& req) {
        int v = use->load();
        int error = req.out(&v, sizeof(v));
        if (error || req.newptr == nullptr) return error;
        error = req.in(&v, sizeof(v));
        if (error == 0) use->store(v != 0);
        return error;
      },
      "Use unmapped mbufs for sendfile(2) and TLS offload"));
  auto gauge = [&](const char* name, counter_gauge* g, const char* d) {
    chk(c.add_proc(
        name, CTLTYPE_S64 | CTLFLAG_RD, "Q",
        [g](sysctl_req& req) {
          int64_t v = g->load();
          return req.newptr ? EPERM : req.out(&v, sizeof(v));
        },
        d));
  };
  chk(c.add_node("kern.ipc.mbstat", "mbuf usage statistics (netstat -m)"));
  gauge("kern.ipc.mbstat.mbufs_in_use", &ms.mbufs_in_use, "mbufs in use");
  gauge("kern.ipc.mbstat.clusters_in_use", &ms.clusters_in_use,
        "mbuf clusters (all sizes) in use");
  gauge("kern.ipc.mbstat.extpgs_in_use", &ms.extpgs_in_use,
        "unmapped (M_EXTPG) mbufs in use");
  chk(c.add_counter("kern.ipc.mbstat.mbuf_allocs", CTLFLAG_RD, &ms.mbuf_allocs,
                    "mbufs allocated"));
  chk(c.add_counter("kern.ipc.mbstat.mbuf_failures", CTLFLAG_RD,
                    &ms.mbuf_failures, "requests for mbufs denied"));
  chk(c.add_counter("kern.ipc.mbstat.cluster_allocs", CTLFLAG_RD,
                    &ms.cluster_allocs, "mbuf clusters allocated"));
  chk(c.add_counter("kern.ipc.mbstat.extpg_allocs", CTLFLAG_RD, &ms.extpg_allocs,
                    "unmapped mbufs allocated"));
  chk(c.add_counter("kern.ipc.mbstat.copy_bytes", CTLFLAG_RD, &ms.copies,
                    "bytes copied into, out of or between mbufs"));
  chk(c.add_counter("kern.ipc.mbstat.copyin_bytes", CTLFLAG_RD, &ms.copyin,
                    "of copy_bytes: user data copied into mbufs (m_uiotombuf)"));
  chk(c.add_counter("kern.ipc.mbstat.copyout_bytes", CTLFLAG_RD, &ms.copyout,
                    "of copy_bytes: mbuf data copied out to users (m_mbuftouio)"));
  // The page pool's statistics (vm_page.cc).
  PagePool* pool = k.vm.get();
  chk(c.add_node("vm.pages", "uktls page pool (the kernel's physical memory)"));
  chk(c.add_proc(
      "vm.pages.max", CTLTYPE_U64 | CTLFLAG_RD, "QU",
      [pool](sysctl_req& req) {
        uint64_t v = pool->max_pages();
        return req.newptr ? EPERM : req.out(&v, sizeof(v));
      },
      "Pool size in pages (boot tunable vm.pages_max; 0 = unlimited)"));
  chk(c.add_proc(
      "vm.pages.in_use", CTLTYPE_U64 | CTLFLAG_RD, "QU",
      [pool](sysctl_req& req) {
        uint64_t v = pool->pages_in_use();
        return req.newptr ? EPERM : req.out(&v, sizeof(v));
      },
      "Pages in use"));
  chk(c.add_counter("vm.pages.allocs", CTLFLAG_RD, &pool->allocs,
                    "Page allocations"));
  chk(c.add_counter("vm.pages.frees", CTLFLAG_RD, &pool->frees, "Page frees"));
  chk(c.add_counter("vm.pages.failures", CTLFLAG_RD, &pool->failures,
                    "Page allocations refused: pool exhausted"));
  chk(c.add_counter("vm.pages.runs", CTLFLAG_RD, &pool->runs_handed_out,
                    "Runs of consecutive pages handed out (KTLS buffers)"));
  chk(c.add_counter("vm.pages.runs_broken", CTLFLAG_RD, &pool->runs_broken,
                    "Cached runs given up as single pages"));
  if (e != 0) k.mb.reset();
  return e;
}

static void mbuf_sysuninit(kernel& k) { k.mb.reset(); }

UK_SYSINIT(mbuf, SI_SUB_MBUF, SI_ORDER_FIRST, mbuf_sysinit, mbuf_sysuninit);

}  // namespace uk
