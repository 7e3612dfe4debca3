// The Internet checksum (RFC 1071) over buffers and mbuf chains. Mirrors
// FreeBSD's sys/netinet/in_cksum.c and in_pseudo(): 16-bit words are summed
// as they lie in memory (the sum is byte-order independent), a piece that
// starts at an odd offset of the packet has its partial sum byte-swapped.
#include <cstring>

#include "sys/netinet/ip.h"
#include "sys/sys/mbuf.h"

namespace uk {

static uint32_t swap16(uint32_t s) {
  s = (s & 0xffff) + (s >> 16);
  s = (s & 0xffff) + (s >> 16);
  return ((s & 0xff) << 8) | ((s >> 8) & 0xff);
}

uint32_t in_cksum_partial(uint32_t sum, const void* p, int len, bool odd_start) {
  const uint8_t* b = static_cast<const uint8_t*>(p);
  uint64_t s = 0;
  // 8 bytes at a time: the ones' complement sum of 64-bit chunks folds to
  // the same 16-bit result.
  while (len >= 8) {
    uint64_t w;
    memcpy(&w, b, 8);
    s += (w & 0xffffffff) + (w >> 32);
    b += 8;
    len -= 8;
  }
  while (len >= 2) {
    uint16_t w;
    memcpy(&w, b, 2);
    s += w;
    b += 2;
    len -= 2;
  }
  if (len == 1) {
    uint16_t w = 0;
    memcpy(&w, b, 1);  // the byte sits where a full word's first byte would
    s += w;
  }
  while (s >> 16) s = (s & 0xffff) + (s >> 16);
  uint32_t piece = static_cast<uint32_t>(s);
  if (odd_start) piece = swap16(piece);
  uint64_t t = static_cast<uint64_t>(sum) + piece;
  while (t >> 32) t = (t & 0xffffffff) + (t >> 32);
  return static_cast<uint32_t>(t);
}

uint16_t in_cksum_fold(uint32_t sum) {
  sum = (sum & 0xffff) + (sum >> 16);
  sum = (sum & 0xffff) + (sum >> 16);
  return static_cast<uint16_t>(sum);
}

uint16_t in_cksum_buf(const void* p, int len) {
  return static_cast<uint16_t>(~in_cksum_fold(in_cksum_partial(0, p, len, false)));
}

uint16_t in_pseudo(uint32_t src, uint32_t dst, uint32_t a) {
  uint64_t s = static_cast<uint64_t>(src) + dst + a;
  while (s >> 16) s = (s & 0xffff) + (s >> 16);
  return static_cast<uint16_t>(s);
}

namespace {
struct CksumState {
  uint32_t sum = 0;
  long pos = 0;
};
int cksum_piece(void* arg, void* data, unsigned len) {
  auto* st = static_cast<CksumState*>(arg);
  st->sum = in_cksum_partial(st->sum, data, static_cast<int>(len),
                             (st->pos & 1) != 0);
  st->pos += len;
  return 0;
}
}  // namespace

uint32_t in_cksum_mbuf(const mbuf* m, int off, int len) {
  CksumState st;
  if (len > 0) m_apply(m, off, len, cksum_piece, &st);
  return st.sum;
}

}  // namespace uk
