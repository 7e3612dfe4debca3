// ktls_ocf: the KTLS software backend. Sets up OCF sessions per suite and
// encrypts/decrypts one TLS record at a time through crypto_dispatch().
// Mirrors FreeBSD's sys/opencrypto/ktls_ocf.c; the SM4 suites (RFC 8998,
// TLS 1.3 only) are a uktls extension.
//
// Buffers: TX records are described to OCF as scatter lists (CRYPTO_BUF_UIO)
// over the record's pages and its trailer, so nothing is copied; RX records
// arrive as one private, writable buffer (CRYPTO_BUF_CONTIG).
//
// Locking: ktls_ocf_session::lock guards the TLS 1.0 chained IV. The worker
// that owns a session's queue is the only encryptor of that session, so the
// lock is uncontended; it exists to make the ordering checkable.
#include <arpa/inet.h>
#include <openssl/crypto.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <memory>
#include <vector>

#include "sys/kern/kernel.h"
#include "sys/kern/uipc_ktls.h"
#include "sys/opencrypto/crypto.h"
#include "sys/sys/module.h"

namespace uk {

namespace {

struct ktls_ocf_session {
  crypto_session_t sid = nullptr;
  crypto_session_t mac_sid = nullptr;
  // Made on the first record a NIC left partly decrypted (recrypt is an
  // IFNET RX event; an idle session should not carry a second key
  // schedule for it).
  crypto_session_t recrypt_sid ABSL_GUARDED_BY(lock) = nullptr;
  bool recrypt = false;  // GCM RX: recrypt_sid may be made
  int mac_len = 0;
  bool implicit_iv = false;  // TLS 1.0 CBC

  Mutex lock;
  // TLS 1.0: the IV of the next record (the previous record's last
  // ciphertext block) and the record it belongs to.
  uint8_t iv[AES_BLOCK_LEN] ABSL_GUARDED_BY(lock) = {};
  uint64_t next_seqno ABSL_GUARDED_BY(lock) = 0;
  bool in_progress ABSL_GUARDED_BY(lock) = false;
};

inline ktls_ocf_session* ocf(const ktls_session* tls) {
  return static_cast<ktls_ocf_session*>(tls->ocf_session);
}

inline KtlsState& kst(const ktls_session* tls) { return *tls->k.ktls; }

inline void be32enc(void* p, uint32_t v) {
  uint8_t* b = static_cast<uint8_t*>(p);
  b[0] = static_cast<uint8_t>(v >> 24);
  b[1] = static_cast<uint8_t>(v >> 16);
  b[2] = static_cast<uint8_t>(v >> 8);
  b[3] = static_cast<uint8_t>(v);
}

inline uint64_t htobe64_(uint64_t v) { return __builtin_bswap64(v); }

// nonce[4..12) ^= BE64(seqno): the TLS 1.3 (and ChaCha20 TLS 1.2) nonce.
inline void xor_seqno(uint8_t* nonce, uint64_t seqno) {
  for (int i = 0; i < 8; i++)
    nonce[4 + i] ^= static_cast<uint8_t>(seqno >> (56 - 8 * i));
}

// The TLS 1.3 nonce: the session IV with the sequence number XORed in.
inline void tls13_nonce(const ktls_session* tls, uint64_t seqno,
                        uint8_t* nonce) {
  memcpy(nonce, tls->params.iv, tls->params.iv_len);
  xor_seqno(nonce, seqno);
}

// The TLS 1.0-1.2 MAC input prefix / AEAD AAD: seq ‖ type ‖ version ‖
// length of the plaintext (tls_mac_data and tls_aead_data share the
// layout).
template <typename AD>
void tls12_ad(AD* ad, uint64_t seqno, const tls_record_layer* hdr,
              int plaintext_len) {
  ad->seq = htobe64_(seqno);
  ad->type = hdr->tls_type;
  ad->tls_vmajor = hdr->tls_vmajor;
  ad->tls_vminor = hdr->tls_vminor;
  ad->tls_length = htons(static_cast<uint16_t>(plaintext_len));
}

// The TLS 1.3 AAD: the outer header as sent.
inline void tls13_ad(tls_aead_data_13* ad, const tls_record_layer* hdr) {
  ad->type = hdr->tls_type;
  ad->tls_vmajor = hdr->tls_vmajor;
  ad->tls_vminor = hdr->tls_vminor;
  ad->tls_length = hdr->tls_length;
}

// Waits for one request (FreeBSD's ktls_ocf_dispatch()). Synchronous
// drivers complete inline; asynchronous ones call back from a crypto
// return thread. EAGAIN means the session moved to another driver: submit
// again.
struct dispatch_waiter {
  Mutex mu;
  CondVar cv;
  bool done ABSL_GUARDED_BY(mu) = false;
};

int ktls_ocf_callback(cryptop* crp) {
  auto* w = static_cast<dispatch_waiter*>(crp->crp_opaque);
  MutexLock l(&w->mu);
  w->done = true;
  w->cv.Signal();
  return 0;
}

int ktls_ocf_dispatch(const ktls_session* tls, cryptop* crp) {
  dispatch_waiter w;
  crp->crp_opaque = &w;
  crp->crp_callback = ktls_ocf_callback;
  for (;;) {
    int error = crypto_dispatch(crp);
    if (error != 0) return error;
    {
      MutexLock l(&w.mu);
      while (!w.done) w.cv.Wait(&w.mu);
      w.done = false;
    }
    if (crp->crp_etype != EAGAIN) return crp->crp_etype;
    crp->crp_etype = 0;
    crp->crp_flags &= ~CRYPTO_F_DONE;
    counter_u64_add(kst(tls).ocf.retries, 1);
  }
}

// The payload pages of an M_EXTPG record as a scatter list; returns the
// number of entries.
int ktls_pages_iov(const mbuf* m, struct iovec* iov) {
  int off = m->m_epg_1st_off;
  for (int i = 0; i < m->m_epg_npgs; i++, off = 0) {
    iov[i].iov_base = PHYS_TO_DMAP(m->m_epg_pa[i]) + off;
    iov[i].iov_len = m_epg_pagelen(m, i, off);
  }
  return m->m_epg_npgs;
}

// --- CBC (MAC-then-encrypt), TLS 1.0-1.2 ---------------------------------

int ktls_ocf_tls_cbc_encrypt(ktls_ocf_encrypt_state* state, ktls_session* tls,
                             mbuf* m, struct iovec* outiov, int outiovcnt) {
  ktls_ocf_session* os = ocf(tls);
  KtlsState& st = kst(tls);
  const auto* hdr = reinterpret_cast<const tls_record_layer*>(m->m_epg_hdr);
  cryptop* crp = &state->crp;

  if (os->implicit_iv) {
    // The chained IV needs every record encrypted in sequence order; the
    // work queue guarantees it (ktls_enqueue), this checks it.
    MutexLock l(&os->lock);
    if (os->in_progress || os->next_seqno != m->m_epg_seqno) return EINVAL;
    os->in_progress = true;
  }
  auto done_implicit = [&](const uint8_t* next_iv) {
    if (!os->implicit_iv) return;
    MutexLock l(&os->lock);
    if (next_iv != nullptr) {
      memcpy(os->iv, next_iv, AES_BLOCK_LEN);
      os->next_seqno = m->m_epg_seqno + 1;
    }
    os->in_progress = false;
  };

  int tls_comp_len = m->m_len - (m->m_epg_hdrlen + m->m_epg_trllen);

  // 1. HMAC over seq ‖ type ‖ version ‖ length ‖ payload, into the trailer.
  tls_mac_data* ad = &state->mac;
  tls12_ad(ad, m->m_epg_seqno, hdr, tls_comp_len);
  state->iov[0].iov_base = ad;
  state->iov[0].iov_len = sizeof(*ad);
  int n = 1 + ktls_pages_iov(m, state->iov + 1);
  state->iov[n].iov_base = m->m_epg_trail;
  state->iov[n].iov_len = os->mac_len;
  crypto_initreq(crp, os->mac_sid);
  crypto_use_uio(crp, state->iov, n + 1);
  crp->crp_payload_start = 0;
  crp->crp_payload_length = sizeof(*ad) + tls_comp_len;
  crp->crp_digest_start = crp->crp_payload_length;
  crp->crp_op = CRYPTO_OP_COMPUTE_DIGEST;
  crp->crp_flags = CRYPTO_F_CBIMM;
  int error = ktls_ocf_dispatch(tls, crp);
  crypto_destroyreq(crp);
  if (error != 0) {
    done_implicit(nullptr);
    return error;
  }

  // 2. Padding: pad + 1 bytes of value pad (ktls_frame chose the minimal
  // length).
  int pad = m->m_epg_trllen - os->mac_len - 1;
  for (int i = 0; i < pad + 1; i++)
    m->m_epg_trail[os->mac_len + i] = static_cast<char>(pad);

  // 3. AES-CBC over payload ‖ MAC ‖ padding.
  n = ktls_pages_iov(m, state->iov);
  state->iov[n].iov_base = m->m_epg_trail;
  state->iov[n].iov_len = m->m_epg_trllen;
  crypto_initreq(crp, os->sid);
  crypto_use_uio(crp, state->iov, n + 1);
  crp->crp_payload_start = 0;
  crp->crp_payload_length = tls_comp_len + m->m_epg_trllen;
  crp->crp_op = CRYPTO_OP_ENCRYPT;
  crp->crp_flags = CRYPTO_F_CBIMM | CRYPTO_F_IV_SEPARATE;
  if (os->implicit_iv) {
    MutexLock l(&os->lock);
    memcpy(crp->crp_iv, os->iv, AES_BLOCK_LEN);
  } else {
    memcpy(crp->crp_iv, hdr + 1, AES_BLOCK_LEN);
  }
  if (outiov != nullptr) {
    crypto_use_output_uio(crp, outiov, outiovcnt);
    crp->crp_payload_output_start = 0;
  }
  counter_u64_add(os->implicit_iv ? st.ocf.tls10_cbc_encrypts
                                  : st.ocf.tls11_cbc_encrypts,
                  1);
  counter_u64_add(outiov != nullptr ? st.ocf.separate_output : st.ocf.inplace,
                  1);
  error = ktls_ocf_dispatch(tls, crp);
  crypto_destroyreq(crp);

  // 4. TLS 1.0: the last ciphertext block is the next record's IV.
  done_implicit(error == 0 ? reinterpret_cast<const uint8_t*>(m->m_epg_trail) +
                                 m->m_epg_trllen - AES_BLOCK_LEN
                           : nullptr);
  return error;
}

int ktls_ocf_tls_cbc_decrypt(ktls_session* tls, const tls_record_layer* hdr,
                             mbuf* src, uint8_t* rec, int len, uint64_t seqno,
                             int* trailer_len) {
  ktls_ocf_session* os = ocf(tls);
  int tls_len = ntohs(hdr->tls_length);
  // CBC's padding and MAC are checked in rec after decryption: a record in
  // an mbuf chain is copied and decrypted in place.
  if (src != nullptr) m_copydata(src, 0, len, rec);

  // A block multiple holding at least an explicit IV, the MAC and one
  // padding byte.
  int min = AES_BLOCK_LEN + ((os->mac_len + 1 + AES_BLOCK_LEN - 1) &
                             ~(AES_BLOCK_LEN - 1));
  if (tls_len % AES_BLOCK_LEN != 0 || tls_len < min) return EMSGSIZE;

  // 1. Decrypt in place; the IV follows the header.
  cryptop crp;
  crypto_initreq(&crp, os->sid);
  memcpy(crp.crp_iv, rec + sizeof(*hdr), AES_BLOCK_LEN);
  crypto_use_buf(&crp, rec, sizeof(*hdr) + tls_len);
  crp.crp_payload_start = tls->params.tls_hlen;
  crp.crp_payload_length = tls_len - AES_BLOCK_LEN;
  crp.crp_op = CRYPTO_OP_DECRYPT;
  crp.crp_flags = CRYPTO_F_CBIMM | CRYPTO_F_IV_SEPARATE;
  counter_u64_add(kst(tls).ocf.tls11_cbc_decrypts, 1);
  int error = ktls_ocf_dispatch(tls, &crp);
  crypto_destroyreq(&crp);
  if (error != 0) return error;

  // 2. Padding: any length that fits, every byte equal to the count - 1.
  uint8_t pad = rec[sizeof(*hdr) + tls_len - 1];
  *trailer_len = os->mac_len + pad + 1;
  if (AES_BLOCK_LEN + *trailer_len > tls_len) return EBADMSG;
  const uint8_t* pp = rec + sizeof(*hdr) + tls_len - (pad + 1);
  for (int i = 0; i < pad + 1; i++) {
    if (pp[i] != pad) return EBADMSG;
  }

  // 3. MAC over seq ‖ type ‖ version ‖ length ‖ plaintext.
  int tls_comp_len = tls_len - (AES_BLOCK_LEN + *trailer_len);
  tls_mac_data ad;
  tls12_ad(&ad, seqno, hdr, tls_comp_len);
  struct iovec iov[2];
  iov[0].iov_base = &ad;
  iov[0].iov_len = sizeof(ad);
  iov[1].iov_base = rec + tls->params.tls_hlen;
  iov[1].iov_len = tls_comp_len + os->mac_len;
  crypto_initreq(&crp, os->mac_sid);
  crypto_use_uio(&crp, iov, 2);
  crp.crp_payload_start = 0;
  crp.crp_payload_length = sizeof(ad) + tls_comp_len;
  crp.crp_digest_start = crp.crp_payload_length;
  crp.crp_op = CRYPTO_OP_VERIFY_DIGEST;
  crp.crp_flags = CRYPTO_F_CBIMM;
  error = ktls_ocf_dispatch(tls, &crp);
  crypto_destroyreq(&crp);
  return error;
}

// --- AEAD, TLS 1.2 (AES-GCM, ChaCha20-Poly1305) ---------------------------

// explicit: the 8 bytes after the record header.
void tls12_nonce(const ktls_session* tls, const uint8_t* explicit_nonce,
                 uint64_t seqno, uint8_t* nonce) {
  if (ktls_tls12_explicit_nonce(tls->params.cipher_algorithm,
                                tls->params.tls_vminor)) {
    // salt ‖ explicit nonce from the record.
    memcpy(nonce, tls->params.iv, TLS_AEAD_GCM_LEN);
    memcpy(nonce + TLS_AEAD_GCM_LEN, explicit_nonce, sizeof(uint64_t));
  } else {
    // ChaCha20 builds its TLS 1.2 nonce as TLS 1.3 does.
    tls13_nonce(tls, seqno, nonce);
  }
}

// FreeBSD counts AEAD operations per TLS version and suite (ocf.tls12_*,
// ocf.tls13_*). SM4 counts for TLS 1.3 only (a uktls extension); the
// Linux-only suites (AES-CCM, ARIA-GCM, SM4 in TLS 1.2) have no counter
// and count only in inplace/separate_output.
void aead_counters(const ktls_session* tls, bool encrypt) {
  auto& ocf = kst(tls).ocf;
  const bool tls13 = tls->params.tls_vminor == TLS_MINOR_VER_THREE;
  counter_u64 *enc, *dec;
  switch (tls->params.cipher_algorithm) {
    case CRYPTO_AES_NIST_GCM_16:
      enc = tls13 ? &ocf.tls13_gcm_encrypts : &ocf.tls12_gcm_encrypts;
      dec = tls13 ? &ocf.tls13_gcm_decrypts : &ocf.tls12_gcm_decrypts;
      break;
    case CRYPTO_CHACHA20_POLY1305:
      enc = tls13 ? &ocf.tls13_chacha20_encrypts : &ocf.tls12_chacha20_encrypts;
      dec = tls13 ? &ocf.tls13_chacha20_decrypts : &ocf.tls12_chacha20_decrypts;
      break;
    case CRYPTO_SM4_GCM_16:
    case CRYPTO_SM4_CCM_16:
      if (!tls13) return;
      enc = &ocf.tls13_sm4_encrypts;
      dec = &ocf.tls13_sm4_decrypts;
      break;
    default:
      return;
  }
  counter_u64_add(encrypt ? *enc : *dec, 1);
}

// What the TLS 1.2 and 1.3 AEAD encrypts share once the nonce and AAD are
// in crp: the record's pages and trailer as input, `payload` bytes
// encrypted in place or into outiov, the tag right after them in the
// trailer (same offset in input and output), the counters, then the
// dispatch.
int aead_encrypt_dispatch(ktls_ocf_encrypt_state* state, ktls_session* tls,
                          mbuf* m, int payload, struct iovec* outiov,
                          int outiovcnt) {
  KtlsState& st = kst(tls);
  cryptop* crp = &state->crp;
  int n = ktls_pages_iov(m, state->iov);
  state->iov[n].iov_base = m->m_epg_trail;
  state->iov[n].iov_len = m->m_epg_trllen;
  crypto_use_uio(crp, state->iov, n + 1);
  crp->crp_payload_start = 0;
  crp->crp_payload_length = payload;
  crp->crp_digest_start = payload;
  if (outiov != nullptr) {
    crypto_use_output_uio(crp, outiov, outiovcnt);
    crp->crp_payload_output_start = 0;
  }
  crp->crp_op = CRYPTO_OP_ENCRYPT | CRYPTO_OP_COMPUTE_DIGEST;
  crp->crp_flags = CRYPTO_F_CBIMM | CRYPTO_F_IV_SEPARATE;
  aead_counters(tls, true);
  counter_u64_add(outiov != nullptr ? st.ocf.separate_output : st.ocf.inplace,
                  1);
  int error = ktls_ocf_dispatch(tls, crp);
  crypto_destroyreq(crp);
  return error;
}

// The decrypt side of the same: the whole received record rec (header
// included, tls_len bytes after the header) as one buffer, `payload` bytes
// after the header and any explicit nonce decrypted in place, the tag right
// after them verified, the counters, then the dispatch.
int aead_decrypt_dispatch(ktls_session* tls, cryptop* crp, mbuf* src,
                          uint8_t* rec, int tls_len, int payload) {
  const int len = static_cast<int>(sizeof(tls_record_layer)) + tls_len;
  if (src != nullptr) {
    // Out of place: ciphertext and tag from the chain, plaintext to rec.
    crypto_use_mbuf(crp, src);
    crypto_use_output_buf(crp, rec, len);
    crp->crp_payload_output_start = tls->params.tls_hlen;
  } else {
    crypto_use_buf(crp, rec, len);
  }
  crp->crp_payload_start = tls->params.tls_hlen;
  crp->crp_payload_length = payload;
  crp->crp_digest_start = crp->crp_payload_start + payload;
  crp->crp_op = CRYPTO_OP_DECRYPT | CRYPTO_OP_VERIFY_DIGEST;
  crp->crp_flags = CRYPTO_F_CBIMM | CRYPTO_F_IV_SEPARATE;
  aead_counters(tls, false);
  int error = ktls_ocf_dispatch(tls, crp);
  crypto_destroyreq(crp);
  return error;
}

int ktls_ocf_tls12_aead_encrypt(ktls_ocf_encrypt_state* state,
                                ktls_session* tls, mbuf* m,
                                struct iovec* outiov, int outiovcnt) {
  ktls_ocf_session* os = ocf(tls);
  const auto* hdr = reinterpret_cast<const tls_record_layer*>(m->m_epg_hdr);
  cryptop* crp = &state->crp;

  crypto_initreq(crp, os->sid);
  tls12_nonce(tls, reinterpret_cast<const uint8_t*>(m->m_epg_hdr) +
                       sizeof(*hdr),
              m->m_epg_seqno, crp->crp_iv);

  int tls_comp_len = m->m_len - (m->m_epg_hdrlen + m->m_epg_trllen);
  tls_aead_data* ad = &state->aead;
  tls12_ad(ad, m->m_epg_seqno, hdr, tls_comp_len);
  crp->crp_aad = ad;
  crp->crp_aad_length = sizeof(*ad);

  return aead_encrypt_dispatch(state, tls, m, tls_comp_len, outiov, outiovcnt);
}

int ktls_ocf_tls12_aead_decrypt(ktls_session* tls, const tls_record_layer* hdr,
                                mbuf* src, uint8_t* rec, int len, uint64_t seqno,
                                int* trailer_len) {
  ktls_ocf_session* os = ocf(tls);
  (void)len;
  int tls_len = ntohs(hdr->tls_length);
  // At least the explicit nonce and the tag.
  if (tls_len + static_cast<int>(sizeof(*hdr)) <
      tls->params.tls_hlen + tls->params.tls_tlen)
    return EMSGSIZE;

  cryptop crp;
  crypto_initreq(&crp, os->sid);
  tls12_nonce(tls, rec + sizeof(*hdr), seqno, crp.crp_iv);
  // The payload lies between the explicit nonce (if any) and the tag.
  int tls_comp_len = static_cast<int>(sizeof(*hdr)) + tls_len -
                     tls->params.tls_hlen - tls->params.tls_tlen;
  tls_aead_data ad;
  tls12_ad(&ad, seqno, hdr, tls_comp_len);
  crp.crp_aad = &ad;
  crp.crp_aad_length = sizeof(ad);
  *trailer_len = tls->params.tls_tlen;
  return aead_decrypt_dispatch(tls, &crp, src, rec, tls_len, tls_comp_len);
}

// --- AEAD, TLS 1.3 (AES-GCM, ChaCha20-Poly1305, SM4-GCM/CCM) -------------

int ktls_ocf_tls13_aead_encrypt(ktls_ocf_encrypt_state* state,
                                ktls_session* tls, mbuf* m,
                                struct iovec* outiov, int outiovcnt) {
  ktls_ocf_session* os = ocf(tls);
  const auto* hdr = reinterpret_cast<const tls_record_layer*>(m->m_epg_hdr);
  cryptop* crp = &state->crp;

  crypto_initreq(crp, os->sid);
  tls13_nonce(tls, m->m_epg_seqno, crp->crp_iv);
  tls_aead_data_13* ad = &state->aead13;
  tls13_ad(ad, hdr);
  crp->crp_aad = ad;
  crp->crp_aad_length = sizeof(*ad);

  // The real record type is the first trailer byte and is encrypted with
  // the payload; no padding follows it.
  m->m_epg_trail[0] = static_cast<char>(m->m_epg_record_type);
  int payload = m->m_len - (m->m_epg_hdrlen + m->m_epg_trllen) + 1;
  return aead_encrypt_dispatch(state, tls, m, payload, outiov, outiovcnt);
}

int ktls_ocf_tls13_aead_decrypt(ktls_session* tls, const tls_record_layer* hdr,
                                mbuf* src, uint8_t* rec, int len, uint64_t seqno,
                                int* trailer_len) {
  ktls_ocf_session* os = ocf(tls);
  (void)len;
  int tls_len = ntohs(hdr->tls_length);
  // At least the inner type byte and the tag.
  if (tls_len < tls->params.tls_tlen) return EMSGSIZE;
  const int taglen = tls->params.tls_tlen - 1;

  cryptop crp;
  crypto_initreq(&crp, os->sid);
  tls13_nonce(tls, seqno, crp.crp_iv);
  tls_aead_data_13 ad;
  tls13_ad(&ad, hdr);
  crp.crp_aad = &ad;
  crp.crp_aad_length = sizeof(ad);
  // The type byte and any zero padding are found by the caller
  // (tls13_find_record_type).
  *trailer_len = taglen;
  return aead_decrypt_dispatch(tls, &crp, src, rec, tls_len, tls_len - taglen);
}

// --- Recrypt (AES-GCM): undo a NIC's partial decryption -------------------

// Re-encrypts the payload with the GCM data keystream (AES-CTR from
// counter 2) and copies the result back only where the NIC had decrypted,
// restoring the ciphertext so the record can be verified.
int ktls_ocf_aead_recrypt(ktls_session* tls, const tls_record_layer* hdr,
                          uint8_t* rec, int len, uint64_t seqno,
                          const int (*ranges)[2], int nranges) {
  ktls_ocf_session* os = ocf(tls);
  KtlsState& st = kst(tls);
  (void)len;
  if (!os->recrypt) return EINVAL;
  crypto_session_t recrypt_sid;
  {
    MutexLock l(&os->lock);
    if (os->recrypt_sid == nullptr) {
      // AES-CTR with the record's key: GCM's keystream without the tag.
      crypto_session_params csp;
      csp.csp_flags |= CSP_F_SEPARATE_OUTPUT;
      csp.csp_mode = CSP_MODE_CIPHER;
      csp.csp_cipher_alg = CRYPTO_AES_ICM;
      csp.csp_cipher_key = tls->params.cipher_key;
      csp.csp_cipher_klen = tls->params.cipher_key_len;
      csp.csp_ivlen = AES_BLOCK_LEN;
      if (int error = crypto_newsession(tls->k, &os->recrypt_sid, csp,
                                        CRYPTO_FLAG_HARDWARE | CRYPTO_FLAG_SOFTWARE))
        return error;
    }
    recrypt_sid = os->recrypt_sid;
  }
  int tls_len = ntohs(hdr->tls_length);
  bool tls13 = tls->params.tls_vminor == TLS_MINOR_VER_THREE;
  int payload_len;
  cryptop crp;
  crypto_initreq(&crp, recrypt_sid);
  if (tls13) {
    if (tls_len < tls->params.tls_tlen) return EMSGSIZE;
    tls13_nonce(tls, seqno, crp.crp_iv);
    payload_len = tls_len - AES_GMAC_HASH_LEN;
  } else {
    if (tls_len < static_cast<int>(sizeof(uint64_t)) + AES_GMAC_HASH_LEN)
      return EMSGSIZE;
    tls12_nonce(tls, rec + sizeof(*hdr), seqno, crp.crp_iv);
    payload_len = tls_len - (AES_GMAC_HASH_LEN + sizeof(uint64_t));
  }
  be32enc(crp.crp_iv + AES_GCM_IV_LEN, 2);
  std::unique_ptr<uint8_t[]> buf(new uint8_t[payload_len > 0 ? payload_len : 1]);
  crypto_use_buf(&crp, rec, sizeof(*hdr) + tls_len);
  crp.crp_payload_start = tls->params.tls_hlen;
  crp.crp_payload_length = payload_len;
  crypto_use_output_buf(&crp, buf.get(), payload_len);
  crp.crp_payload_output_start = 0;
  crp.crp_op = CRYPTO_OP_ENCRYPT;
  crp.crp_flags = CRYPTO_F_CBIMM | CRYPTO_F_IV_SEPARATE;
  counter_u64_add(tls13 ? st.ocf.tls13_gcm_recrypts
                        : st.ocf.tls12_gcm_recrypts,
                  1);
  int error = ktls_ocf_dispatch(tls, &crp);
  crypto_destroyreq(&crp);
  if (error != 0) return error;
  const int start = tls->params.tls_hlen;
  for (int r = 0; r < nranges; r++) {
    int lo = std::max(ranges[r][0], start);
    int hi = std::min(ranges[r][0] + ranges[r][1], start + payload_len);
    if (lo < hi) memcpy(rec + lo, buf.get() + (lo - start), hi - lo);
  }
  return 0;
}

// --- Session setup ---------------------------------------------------------

void ktls_ocf_free(ktls_session* tls) {
  ktls_ocf_session* os = ocf(tls);
  if (os == nullptr) return;
  if (os->sid != nullptr) crypto_freesession(os->sid);
  if (os->mac_sid != nullptr) crypto_freesession(os->mac_sid);
  {
    MutexLock l(&os->lock);
    if (os->recrypt_sid != nullptr) crypto_freesession(os->recrypt_sid);
    OPENSSL_cleanse(os->iv, sizeof(os->iv));
  }
  delete os;
  tls->ocf_session = nullptr;
}

bool ktls_ocf_recrypt_supported(const ktls_session* tls) {
  return tls->params.cipher_algorithm == CRYPTO_AES_NIST_GCM_16;
}

// FreeBSD's ktls_ocf_try(): EINVAL for a key length the cipher does not
// have, EPROTONOSUPPORT for a TLS version the suite is not supported with,
// EOPNOTSUPP (from OCF) when no driver takes the session.
int ktls_ocf_try(kernel& k, ktls_session* tls, int direction) {
  const tls_session_params& p = tls->params;
  crypto_session_params csp, mac_csp;
  int mac_len = 0;
  const int flags = CRYPTO_FLAG_HARDWARE | CRYPTO_FLAG_SOFTWARE;
  // Every AEAD suite: TLS 1.2 or 1.3 only, one AEAD session with separate
  // output and AAD.
  auto aead = [&p, &csp](int ivlen) {
    if (p.tls_vmajor != TLS_MAJOR_VER_ONE ||
        p.tls_vminor < TLS_MINOR_VER_TWO || p.tls_vminor > TLS_MINOR_VER_THREE)
      return EPROTONOSUPPORT;
    csp.csp_flags |= CSP_F_SEPARATE_OUTPUT | CSP_F_SEPARATE_AAD;
    csp.csp_mode = CSP_MODE_AEAD;
    csp.csp_cipher_alg = p.cipher_algorithm;
    csp.csp_cipher_key = p.cipher_key;
    csp.csp_cipher_klen = p.cipher_key_len;
    csp.csp_ivlen = ivlen;
    return 0;
  };
  int error;

  switch (p.cipher_algorithm) {
    case CRYPTO_AES_NIST_GCM_16:
      if (p.cipher_key_len != 16 && p.cipher_key_len != 32) return EINVAL;
      if ((error = aead(AES_GCM_IV_LEN)) != 0) return error;
      break;
    case CRYPTO_AES_CBC:
      if (p.cipher_key_len != 16 && p.cipher_key_len != 32) return EINVAL;
      switch (p.auth_algorithm) {
        case CRYPTO_SHA1_HMAC:
          mac_len = SHA1_HASH_LEN;
          break;
        case CRYPTO_SHA2_256_HMAC:
          mac_len = SHA2_256_HASH_LEN;
          break;
        case CRYPTO_SHA2_384_HMAC:
          mac_len = SHA2_384_HASH_LEN;
          break;
        default:
          return EINVAL;
      }
      if (p.tls_vmajor != TLS_MAJOR_VER_ONE ||
          p.tls_vminor < TLS_MINOR_VER_ZERO || p.tls_vminor > TLS_MINOR_VER_TWO)
        return EPROTONOSUPPORT;
      // No receive for TLS 1.0 CBC (its chained IV), as FreeBSD.
      if (direction == KTLS_RX && p.tls_vminor == TLS_MINOR_VER_ZERO)
        return EPROTONOSUPPORT;
      csp.csp_flags |= CSP_F_SEPARATE_OUTPUT;
      csp.csp_mode = CSP_MODE_CIPHER;
      csp.csp_cipher_alg = CRYPTO_AES_CBC;
      csp.csp_cipher_key = p.cipher_key;
      csp.csp_cipher_klen = p.cipher_key_len;
      csp.csp_ivlen = AES_BLOCK_LEN;

      mac_csp.csp_flags |= CSP_F_SEPARATE_OUTPUT;
      mac_csp.csp_mode = CSP_MODE_DIGEST;
      mac_csp.csp_auth_alg = p.auth_algorithm;
      mac_csp.csp_auth_key = p.auth_key;
      mac_csp.csp_auth_klen = p.auth_key_len;
      break;
    case CRYPTO_CHACHA20_POLY1305:
      if (p.cipher_key_len != 32) return EINVAL;
      if ((error = aead(CHACHA20_POLY1305_IV_LEN)) != 0) return error;
      break;
    case CRYPTO_SM4_GCM_16:
    case CRYPTO_SM4_CCM_16:
    case CRYPTO_AES_CCM_16:
    case CRYPTO_ARIA_GCM_16:
      // uktls extensions: SM4 (RFC 8998), and for the Linux personality
      // AES-CCM-128 and ARIA-GCM (ktls_create_session checked which
      // version each suite may use).
      if (p.cipher_algorithm == CRYPTO_ARIA_GCM_16
              ? p.cipher_key_len != 16 && p.cipher_key_len != 32
              : p.cipher_key_len != 16)
        return EINVAL;
      // 12-byte IVs for every AEAD here.
      if ((error = aead(TLS_SM4_IV_LEN)) != 0) return error;
      break;
    default:
      return EPROTONOSUPPORT;
  }

  auto os = std::make_unique<ktls_ocf_session>();
  error = crypto_newsession(k, &os->sid, csp, flags);
  if (error != 0) return error;
  if (mac_csp.csp_mode != CSP_MODE_NONE) {
    error = crypto_newsession(k, &os->mac_sid, mac_csp, flags);
    if (error != 0) {
      crypto_freesession(os->sid);
      return error;
    }
    os->mac_len = mac_len;
  }
  // Recrypting (restoring ciphertext a NIC decrypted) is a receive
  // operation of GCM sessions; its session is made when first needed.
  os->recrypt = direction == KTLS_RX && p.cipher_algorithm == CRYPTO_AES_NIST_GCM_16;

  if (p.cipher_algorithm == CRYPTO_AES_CBC) {
    tls->sw.encrypt = ktls_ocf_tls_cbc_encrypt;
    tls->sw.decrypt = ktls_ocf_tls_cbc_decrypt;
    tls->sw.recrypt = nullptr;
    if (p.tls_vminor == TLS_MINOR_VER_ZERO) {
      os->implicit_iv = true;
      MutexLock l(&os->lock);
      memcpy(os->iv, p.iv, AES_BLOCK_LEN);
      os->next_seqno = tls->next_seqno;
    }
  } else if (p.tls_vminor == TLS_MINOR_VER_THREE) {
    tls->sw.encrypt = ktls_ocf_tls13_aead_encrypt;
    tls->sw.decrypt = ktls_ocf_tls13_aead_decrypt;
    tls->sw.recrypt = os->recrypt ? ktls_ocf_aead_recrypt : nullptr;
  } else {
    tls->sw.encrypt = ktls_ocf_tls12_aead_encrypt;
    tls->sw.decrypt = ktls_ocf_tls12_aead_decrypt;
    tls->sw.recrypt = os->recrypt ? ktls_ocf_aead_recrypt : nullptr;
  }
  // CBC is always dispatched synchronously (FreeBSD: the MAC and the cipher
  // are two dependent requests).
  tls->sync_dispatch = p.cipher_algorithm == CRYPTO_AES_CBC ||
                       (crypto_ses2caps(os->sid) & CRYPTOCAP_F_SYNC) != 0;
  tls->ocf_session = os.release();
  return 0;
}

const ktls_backend ktls_ocf_backend = {
    "ktls_ocf",
    ktls_ocf_try,
    ktls_ocf_free,
    ktls_ocf_recrypt_supported,
};

// MOD_LOAD registers the backend; MOD_UNLOAD refuses (EBUSY) while any
// session still uses it, as ktls_ocf.ko cannot be unloaded under sessions.
int ktls_ocf_modevent(kernel& k, int what, void*) {
  switch (what) {
    case MOD_LOAD:
      return ktls_register_sw_backend(k, &ktls_ocf_backend);
    case MOD_UNLOAD:
      return ktls_unregister_sw_backend(k, &ktls_ocf_backend);
    default:
      return 0;
  }
}

const moduledata ktls_ocf_mod = {
    "ktls_ocf", ktls_ocf_modevent, nullptr,
    /*default_load=*/true,
    // The crypto drivers are part of the kernel image here; a session
    // finds whichever OCF driver is there when it is created.
    /*depends=*/nullptr,
};

}  // namespace

// Loaded with the default module set; a kernel booted with modules=""
// has no software KTLS until kldload("ktls_ocf"), as FreeBSD without
// ktls_ocf.ko.
DECLARE_MODULE(ktls_ocf, ktls_ocf_mod);

}  // namespace uk
