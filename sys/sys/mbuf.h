// Memory buffers (mbuf(9)) with FreeBSD's semantics: plain mbufs with
// internal storage, packet headers, external storage (clusters), and M_EXTPG
// "unmapped" mbufs whose data is a page array framed by a TLS header and
// trailer. Mirrors FreeBSD's sys/sys/mbuf.h and sys/kern/uipc_mbuf.c.
//
// Ownership: a chain is owned by an MbufPtr (move-only, m_freem on
// destruction). A raw mbuf* is borrowed. Functions that FreeBSD documents as
// consuming a chain take an MbufPtr or say so.
//
// M_EXTPG layout: the data of such an mbuf is the concatenation
//   m_epg_hdr[0..m_epg_hdrlen) ‖ pages ‖ m_epg_trail[0..m_epg_trllen)
// where the pages run from m_epg_1st_off in the first page to m_epg_last_len
// bytes in the last. m_len counts all three; m_data of such an mbuf is not a
// pointer: m_epg_off is the offset of its first byte in that concatenation
// (FreeBSD keeps this offset in m_data).
//
// Locking: none; an mbuf belongs to one owner at a time. Storage shared by
// m_copym() is reference counted (m_ext.ext_cnt, page refcounts).
#ifndef UKTLS_SYS_SYS_MBUF_H_
#define UKTLS_SYS_SYS_MBUF_H_

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>

#include "sys/kern/vm_page.h"
#include "sys/sys/counter.h"
#include "sys/sys/sysctl.h"
#include "sys/sys/uio.h"

namespace uk {

struct kernel;
struct ktls_session;
struct m_snd_tag;
struct ifnet;
struct socket;
struct MbufState;

// Sizes. uktls's mbuf is bigger than FreeBSD's 256 bytes (no unions), but
// MLEN/MHLEN keep FreeBSD's values so code sizing data by them behaves alike.
constexpr int MSIZE = 256;
constexpr int MLEN = 224;
constexpr int MHLEN = 168;
constexpr int MCLBYTES = 2048;
constexpr int MJUMPAGESIZE = 4096;
constexpr int MJUM9BYTES = 9 * 1024;
constexpr int MJUM16BYTES = 16 * 1024;

constexpr int MBUF_PEXT_MAX_PGS = 5;   // 40 / sizeof(vm_paddr_t) on LP64
constexpr int MBUF_PEXT_HDR_LEN = 23;
constexpr int MBUF_PEXT_TRAIL_LEN = 64;
// Pages one M_EXTPG mbuf may carry here. FreeBSD packs 5 into the mbuf;
// uktls allows a 16 KiB record at any page offset plus headroom.
constexpr int MBUF_PEXT_MAX_PGS_UK = 6;

// m_flags.
enum : int {
  M_EXT = 0x00000001,
  M_PKTHDR = 0x00000002,
  M_EOR = 0x00000004,
  M_RDONLY = 0x00000008,
  M_BCAST = 0x00000010,
  M_MCAST = 0x00000020,
  M_PROMISC = 0x00000040,
  M_VLANTAG = 0x00000080,
  M_EXTPG = 0x00000100,
  M_NOFREE = 0x00000200,
  M_TSTMP = 0x00000400,
  M_TSTMP_HPREC = 0x00000800,
  M_TSTMP_LRO = 0x00001000,
  M_PROTO1 = 0x00002000,
  M_PROTO2 = 0x00004000,
  M_PROTO3 = 0x00008000,
  M_PROTO4 = 0x00010000,
  M_PROTO5 = 0x00020000,
  M_PROTO6 = 0x00040000,
  M_PROTO7 = 0x00080000,
  M_PROTO8 = 0x00100000,
  M_PROTO9 = 0x00200000,
  M_PROTO10 = 0x00400000,
  M_PROTO11 = 0x00800000,
  M_PROTOFLAGS = M_PROTO1 | M_PROTO2 | M_PROTO3 | M_PROTO4 | M_PROTO5 |
                 M_PROTO6 | M_PROTO7 | M_PROTO8 | M_PROTO9 | M_PROTO10 |
                 M_PROTO11,
  // Flags copied with a packet header.
  M_COPYFLAGS = M_PKTHDR | M_EOR | M_RDONLY | M_BCAST | M_MCAST | M_PROMISC |
                M_VLANTAG | M_TSTMP | M_TSTMP_HPREC | M_TSTMP_LRO | M_PROTOFLAGS,
};

// Socket-buffer uses of the protocol flags (FreeBSD sys/sys/sockbuf.h).
constexpr int M_NOTREADY = M_PROTO1;
constexpr int M_BLOCKED = M_PROTO2;
constexpr int M_NOTAVAIL = M_NOTREADY | M_BLOCKED;
// A received mbuf the NIC already decrypted (CSUM_TLS_DECRYPTED's effect
// on the KTLS RX chain).
constexpr int M_DECRYPTED = M_PROTO3;

// m_type.
enum : short {
  MT_NOTMBUF = 0,
  MT_DATA = 1,
  MT_HEADER = MT_DATA,
  MT_VENDOR1 = 4,
  MT_SONAME = 8,
  MT_EXP1 = 9,
  MT_CONTROL = 14,
  MT_EXTCONTROL = 15,
  MT_OOBDATA = 16,
};

// Allocation "how": uktls never sleeps for memory, so both behave as
// M_NOWAIT (null on exhaustion); M_WAITOK is kept for reading like FreeBSD.
enum : int { M_NOWAIT = 0x0001, M_WAITOK = 0x0002, M_ZERO = 0x0100 };

// External storage types.
enum : int {
  EXT_CLUSTER = 1,
  EXT_SFBUF = 2,
  EXT_JUMBOP = 3,
  EXT_JUMBO9 = 4,
  EXT_JUMBO16 = 5,
  EXT_PACKET = 6,
  EXT_MBUF = 7,
  EXT_RXRING = 8,
  EXT_PGS = 9,
  EXT_CTL = 10,
  // uktls: storage for one whole received TLS record (header, payload,
  // trailer), decrypted in place and handed on as the record's data.
  EXT_KTLS_REC = 11,
  EXT_NET_DRV = 252,
  EXT_MOD_TYPE = 253,
  EXT_DISPOSABLE = 254,
  EXT_EXTREF = 255,
};

// m_epg_flags.
enum : uint8_t {
  EPG_FLAG_ANON = 0x1,   // pages private to this mbuf: encrypt in place
  EPG_FLAG_2FREE = 0x2,  // freed while its record was being encrypted
};

// Checksum flags in the packet header (subset of FreeBSD's CSUM_*).
enum : uint32_t {
  CSUM_IP = 0x00000001,
  CSUM_IP_UDP = 0x00000002,
  CSUM_IP_TCP = 0x00000004,
  CSUM_IP_TSO = 0x00000010,
  CSUM_L3_CALC = 0x01000000,
  CSUM_L3_VALID = 0x02000000,
  CSUM_L4_CALC = 0x04000000,
  CSUM_L4_VALID = 0x08000000,
  CSUM_L5_CALC = 0x10000000,
  CSUM_L5_VALID = 0x20000000,
  CSUM_SND_TAG = 0x80000000,
  CSUM_TLS_DECRYPTED = CSUM_L5_CALC,
  CSUM_TLS_MASK = CSUM_L5_CALC | CSUM_L5_VALID,
};

struct pkthdr {
  ifnet* rcvif = nullptr;
  m_snd_tag* snd_tag = nullptr;  // a reference when CSUM_SND_TAG is set
  int len = 0;
  uint32_t flowid = 0;
  uint32_t csum_flags = 0;
  uint16_t csum_data = 0;
  uint16_t tso_segsz = 0;
  uint16_t ether_vtag = 0;
  uint8_t rsstype = 0;
  uint64_t rcv_tstmp = 0;
};

struct m_ext {
  char* ext_buf = nullptr;  // storage (not used for EXT_PGS)
  uint32_t ext_size = 0;
  int ext_type = 0;
  std::atomic<int>* ext_cnt = nullptr;  // shared by every mbuf using it
  // EXT_SFBUF: the unmapped mbuf whose page this is (mb_unmapped_to_ext);
  // freed when the last mbuf referencing any of its pages is.
  struct mbuf* ext_arg1 = nullptr;
};

struct mbuf {
  mbuf* m_next = nullptr;
  mbuf* m_nextpkt = nullptr;
  char* m_data = nullptr;  // not used by M_EXTPG mbufs; see m_epg_off
  int m_len = 0;
  int m_flags = 0;
  short m_type = MT_NOTMBUF;
  MbufState* m_owner = nullptr;  // the kernel's mbuf accounting
  pkthdr m_pkthdr;
  struct m_ext m_ext;

  // M_EXTPG fields.
  int m_epg_off = 0;
  uint8_t m_epg_npgs = 0;
  uint8_t m_epg_nrdy = 0;
  uint8_t m_epg_hdrlen = 0;
  uint8_t m_epg_trllen = 0;
  uint16_t m_epg_1st_off = 0;
  uint16_t m_epg_last_len = 0;
  uint8_t m_epg_flags = 0;
  uint8_t m_epg_record_type = 0;
  uint16_t m_epg_enc_cnt = 0;
  ktls_session* m_epg_tls = nullptr;  // holds a reference while set
  socket* m_epg_so = nullptr;
  uint64_t m_epg_seqno = 0;
  vm_paddr_t m_epg_pa[MBUF_PEXT_MAX_PGS_UK] = {};
  char m_epg_hdr[MBUF_PEXT_HDR_LEN] = {};
  char m_epg_trail[MBUF_PEXT_TRAIL_LEN] = {};

  alignas(8) char m_dat[MLEN];  // aligned for headers and cmsghdrs
};

struct MbufDeleter {
  void operator()(mbuf* m) const;  // m_freem
};
using MbufPtr = std::unique_ptr<mbuf, MbufDeleter>;

// Per-kernel mbuf state: the page pool it draws on, netstat -m statistics
// (kern.ipc.mbstat.*) and kern.ipc.mb_use_ext_pgs.
struct MbufState final {
  explicit MbufState(kernel& k);
  kernel& k;
  PagePool* pages;
  std::atomic<int> mb_use_ext_pgs{1};
  counter_gauge mbufs_in_use;
  counter_gauge clusters_in_use;
  counter_gauge extpgs_in_use;
  counter_u64 mbuf_allocs;
  counter_u64 mbuf_failures;
  counter_u64 cluster_allocs;
  counter_u64 extpg_allocs;
  counter_u64 copies;         // bytes copied into, out of or between mbufs
  // The part of `copies` that is user data crossing the user/kernel
  // boundary: m_uiotombuf (copyin) and m_mbuftouio (copyout). What is left
  // is the kernel copying data it already holds.
  counter_u64 copyin;
  counter_u64 copyout;
  // Live send tags (kern.ipc.num_snd_tags, as FreeBSD's kern_mbuf.c). Here
  // so that tags held by sessions that outlive their NIC (until the network
  // stack goes) can still count themselves out; the oid is the driver
  // framework's (sys/dev/nic_sim).
  counter_u64 num_snd_tags;
  sysctl_ctx_list sysctl_ctx;
};

// Pointer to the data of a mapped mbuf.
template <class T = char*>
inline T mtod(const mbuf* m) {
  return reinterpret_cast<T>(m->m_data);
}

// Pages of an M_EXTPG mbuf: length of page i.
int m_epg_pagelen(const mbuf* m, int pidx, int pgoff);

// Allocation. Each returns null when memory is exhausted.
mbuf* m_get(kernel& k, int how, short type);
mbuf* m_gethdr(kernel& k, int how, short type);
mbuf* m_getcl(kernel& k, int how, short type, int flags);  // 2 KiB cluster
mbuf* m_getjcl(kernel& k, int how, short type, int flags, int size);
// An mbuf with an EXT_KTLS_REC cluster of KTLS_REC_BYTES: room for the
// largest TLS record a KTLS receive session accepts.
constexpr int KTLS_REC_BYTES = 17 * 1024;
mbuf* m_getktlsrec(kernel& k, int how, short type);
// A chain with room for at least len bytes (m_len left 0), optionally
// appended to m. flags may include M_PKTHDR and M_EOR.
mbuf* m_getm2(kernel& k, mbuf* m, int len, int how, short type, int flags);
// An empty M_EXTPG mbuf (no pages), as mb_alloc_ext_pgs().
mbuf* mb_alloc_ext_pgs(kernel& k, int how, bool anon);

// Frees one mbuf, returns its successor.
mbuf* m_free(mbuf* m);
void m_freem(mbuf* m);
inline MbufPtr mbuf_own(mbuf* m) { return MbufPtr(m); }

// Length of the chain (sum of m_len).
unsigned m_length(const mbuf* m, mbuf** last);
int m_fixhdr(mbuf* m);  // recompute m_pkthdr.len

// Copies len bytes at off out of the chain. M_EXTPG data is read through
// the pages. off+len must lie within the chain.
void m_copydata(const mbuf* m, int off, int len, void* cp);
// Copies len bytes into the chain at off, extending it as needed. Returns
// 0 or ENOMEM. Never writes into shared (read-only) storage: the caller
// must not m_copyback into M_EXTPG or shared clusters.
int m_copyback(mbuf* m, int off, int len, const void* cp);
// A new chain referring to len bytes (M_COPYALL = rest) at off. Storage is
// shared by reference (clusters and pages), never copied; plain mbufs'
// internal data is copied.
constexpr int M_COPYALL = 1000000000;
mbuf* m_copym(mbuf* m, int off, int len, int how);
// Deep copy of a whole packet into fresh storage.
mbuf* m_dup(kernel& k, const mbuf* m, int how);
// Splits after len0 bytes; returns the tail (null on ENOMEM, chain intact).
mbuf* m_split(mbuf* m0, int len0, int how);
// Appends n to m (consumes n).
void m_cat(mbuf* m, mbuf* n);
// Trims req_len bytes from the head (> 0) or tail (< 0).
void m_adj(mbuf* mp, int req_len);
// Makes the first len bytes contiguous in the first mbuf; frees the chain
// and returns null on failure (as FreeBSD).
mbuf* m_pullup(mbuf* m, int len);
// Prepends len bytes of space (as M_PREPEND); may return a new head; frees
// the chain and returns null on failure.
mbuf* m_prepend(mbuf* m, int len, int how);
// Bytes of free space before/after the data of a writable mapped mbuf.
int M_LEADINGSPACE(const mbuf* m);
int M_TRAILINGSPACE(const mbuf* m);
bool M_WRITABLE(const mbuf* m);
// Moves the packet header from `from` to `to`.
void m_move_pkthdr(mbuf* to, mbuf* from);
// Copies user data into a new chain. With M_EXTPG in flags, builds unmapped
// mbufs of anonymous pages holding at most maxseg bytes each (one TLS record
// per mbuf); otherwise clusters. len = 0 with M_EXTPG gives one empty mbuf
// (TLS 1.0 empty fragments). Returns null + *error (ENOMEM/EFAULT).
mbuf* m_uiotombuf(kernel& k, uio* uio, int how, int len, int maxseg, int flags,
                  int* error);
// Converts a chain's M_EXTPG mbufs to mapped ones, as FreeBSD's
// mb_unmapped_to_ext(): a TLS header or trailer is copied into an mbuf of
// its own, each page's piece is referenced in place (EXT_SFBUF, M_RDONLY).
// Returns the new chain or null (chain freed).
mbuf* mb_unmapped_to_ext(mbuf* m);
// Reads len bytes at off into the user's uio (receive side).
int m_mbuftouio(uio* uio, const mbuf* m, int off, int len);
// Applies f to each contiguous piece of [off, off+len).
int m_apply(const mbuf* m, int off, int len,
            int (*f)(void* arg, void* data, unsigned len), void* arg);

}  // namespace uk

#endif  // UKTLS_SYS_SYS_MBUF_H_
