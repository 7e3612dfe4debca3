// GHASH over GF(2^128) (NIST SP 800-38D section 6.4), 4-bit table method.
// Elements are held big-endian as (hi, lo); the most significant bit of hi
// is the coefficient of x^0, so multiplying by x is a right shift.
#include <cstring>

#include "sys/opencrypto/crypto_drv.h"

namespace uk {

namespace {

constexpr uint64_t kR = 0xe1ULL << 56;  // x^128 = x^7 + x^2 + x + 1

inline uint64_t load_be64(const uint8_t* p) {
  uint64_t v = 0;
  for (int i = 0; i < 8; i++) v = (v << 8) | p[i];
  return v;
}
inline void store_be64(uint8_t* p, uint64_t v) {
  for (int i = 7; i >= 0; i--) {
    p[i] = static_cast<uint8_t>(v);
    v >>= 8;
  }
}

// Reduction of the nibble shifted out by a multiply by x^4: the bit for
// x^(124+k') becomes x^(128+k'), i.e. R times x^k'.
constexpr uint64_t rem4(unsigned r) {
  uint64_t v = 0;
  for (unsigned k = 0; k < 4; k++)
    if (r & (1u << k)) v ^= kR >> (3 - k);
  return v;
}
constexpr uint64_t kRem4[16] = {rem4(0),  rem4(1),  rem4(2),  rem4(3),
                                rem4(4),  rem4(5),  rem4(6),  rem4(7),
                                rem4(8),  rem4(9),  rem4(10), rem4(11),
                                rem4(12), rem4(13), rem4(14), rem4(15)};

}  // namespace

void Ghash::init(const uint8_t h[16]) {
  uint64_t hh = load_be64(h), hl = load_be64(h + 8);
  // Table entry for nibble b3b2b1b0 (b3 = x^0 term) is sum of H*x^(3-k).
  th_[0] = tl_[0] = 0;
  th_[8] = hh;
  tl_[8] = hl;
  for (int i = 4; i > 0; i >>= 1) {
    uint64_t carry = tl_[i * 2] & 1;
    tl_[i] = (tl_[i * 2] >> 1) | (th_[i * 2] << 63);
    th_[i] = (th_[i * 2] >> 1) ^ (carry ? kR : 0);
  }
  for (int i = 2; i < 16; i <<= 1)
    for (int j = 1; j < i; j++) {
      th_[i + j] = th_[i] ^ th_[j];
      tl_[i + j] = tl_[i] ^ tl_[j];
    }
  reset();
}

void Ghash::reset() {
  yh_ = yl_ = 0;
  nbuf_ = 0;
}

void Ghash::mul(uint64_t* hi, uint64_t* lo) const {
  uint8_t x[16];
  store_be64(x, *hi);
  store_be64(x + 8, *lo);
  uint64_t zh = 0, zl = 0;
  for (int i = 15; i >= 0; i--) {
    for (int half = 0; half < 2; half++) {
      unsigned nib = half == 0 ? (x[i] & 0xf) : (x[i] >> 4);
      unsigned r = zl & 0xf;
      zl = (zl >> 4) | (zh << 60);
      zh = (zh >> 4) ^ kRem4[r];
      zh ^= th_[nib];
      zl ^= tl_[nib];
    }
  }
  *hi = zh;
  *lo = zl;
}

void Ghash::block(const uint8_t b[16]) {
  yh_ ^= load_be64(b);
  yl_ ^= load_be64(b + 8);
  mul(&yh_, &yl_);
}

void Ghash::update(const uint8_t* p, size_t n) {
  if (nbuf_ > 0) {
    size_t t = std::min(n, 16 - nbuf_);
    memcpy(buf_ + nbuf_, p, t);
    nbuf_ += t;
    p += t;
    n -= t;
    if (nbuf_ < 16) return;
    block(buf_);
    nbuf_ = 0;
  }
  while (n >= 16) {
    block(p);
    p += 16;
    n -= 16;
  }
  if (n > 0) {
    memcpy(buf_, p, n);
    nbuf_ = n;
  }
}

void Ghash::pad() {
  if (nbuf_ == 0) return;
  memset(buf_ + nbuf_, 0, 16 - nbuf_);
  block(buf_);
  nbuf_ = 0;
}

void Ghash::final(uint64_t aad_bytes, uint64_t ct_bytes, uint8_t out[16]) {
  pad();
  uint8_t lens[16];
  store_be64(lens, aad_bytes * 8);
  store_be64(lens + 8, ct_bytes * 8);
  block(lens);
  store_be64(out, yh_);
  store_be64(out + 8, yl_);
}

}  // namespace uk
