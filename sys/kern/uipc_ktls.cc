// Kernel TLS: sessions, framing, the worker threads and the kern.ipc.tls
// sysctl tree. Names, types, flags, defaults, descriptions and errno values
// follow FreeBSD's sys/kern/uipc_ktls.c and sys/opencrypto/ktls_ocf.c.
#include "sys/kern/uipc_ktls.h"

#include <arpa/inet.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <pthread.h>
#include <sched.h>

#include <algorithm>
#include <cassert>
#include <cerrno>
#include <cstring>
#include <string>
#include <system_error>
#include <utility>

#include "sys/kern/kern_kthread.h"
#include "sys/kern/kern_timeout.h"
#include "sys/kern/kernel.h"
#include "sys/kern/subr_prf.h"
#include "sys/kern/vm_page.h"
#include "sys/net/if_snd_tag.h"
#include "sys/net/if_var.h"
#include "sys/net/route.h"
#include "sys/netinet/in_pcb.h"
#include "sys/netinet/tcp_offload.h"
#include "sys/netinet/tcp_var.h"
#include "sys/sys/sockbuf.h"
#include "sys/sys/socketvar.h"

namespace uk {

UK_KERNEL_SLOT(KtlsState)

namespace {

inline void be64enc(void* p, uint64_t v) {
  uint8_t* b = static_cast<uint8_t*>(p);
  for (int i = 7; i >= 0; i--) {
    b[i] = static_cast<uint8_t>(v);
    v >>= 8;
  }
}

inline uint64_t be64dec(const void* p) {
  const uint8_t* b = static_cast<const uint8_t*>(p);
  uint64_t v = 0;
  for (int i = 0; i < 8; i++) v = (v << 8) | b[i];
  return v;
}

// copyin(9): user memory is host memory here; a null pointer with a
// non-zero length is the one fault we can detect.
int copyin(const void* uaddr, void* kaddr, size_t len) {
  if (len == 0) return 0;
  if (uaddr == nullptr) return EFAULT;
  memcpy(kaddr, uaddr, len);
  return 0;
}

// arc4rand(9): the kernel's RNG, here OpenSSL's DRBG (thread-safe, seeded
// from the host).
void arc4rand(void* p, size_t n) {
  if (RAND_bytes(static_cast<unsigned char*>(p), static_cast<int>(n)) != 1)
    abort();  // FreeBSD's arc4rand cannot fail either
}

void ktls_work_thread(KtlsState* st, ktls_wq* wq);

// FreeBSD's ktls_init(): one work queue and thread per CPU.
int ktls_init(KtlsState& st) ABSL_EXCLUSIVE_LOCKS_REQUIRED(st.init_mu) {
  int n = st.k.ncpus > 0 ? st.k.ncpus : 1;
  st.wq.reserve(n);
  for (int i = 0; i < n; i++) {
    auto wq = std::make_unique<ktls_wq>();
    wq->cpu = i;
    st.wq.push_back(std::move(wq));
  }
  for (int i = 0; i < n; i++) {
    ktls_wq* wq = st.wq[i].get();
    try {
      wq->thread = std::thread(ktls_work_thread, &st, wq);
      // FreeBSD's "KTLS" process has a thread "thr_<cpu>" per CPU; the host
      // thread's name says what it is in top(1) and perf.
      kthread_set_name(wq->thread, "ktls_thr_" + std::to_string(i));
    } catch (const std::system_error& e) {
      kprintf(st.k, "Can't add KTLS thread %d error %d\n", i, e.code().value());
      return e.code().value() ? e.code().value() : EAGAIN;
    }
    st.number_threads.fetch_add(1);
  }
  return 0;
}

// FreeBSD's ktls_start_kthreads(): lazy, once; a failure is permanent.
int ktls_start_kthreads(KtlsState& st) {
  int state = st.init_state.load(std::memory_order_acquire);
  if (state > 0) return 0;
  if (state < 0) return ENXIO;
  MutexLock l(&st.init_mu);
  if (st.init_state.load() != 0) return st.init_state.load() > 0 ? 0 : ENXIO;
  int error = ktls_init(st);
  st.init_state.store(error == 0 ? 1 : -1, std::memory_order_release);
  return error == 0 ? 0 : ENXIO;
}

void ktls_stop_kthreads(KtlsState& st) {
  MutexLock l(&st.init_mu);
  for (auto& wq : st.wq) {
    {
      MutexLock wl(&wq->mu);
      wq->stop = true;
      wq->cv.Signal();
    }
  }
  for (auto& wq : st.wq) {
    if (wq->thread.joinable()) wq->thread.join();
  }
}

counter_u64* sw_gauge(KtlsState::ModeGauges& g, int cipher) {
  switch (cipher) {
    case CRYPTO_AES_CBC:
      return &g.cbc;
    case CRYPTO_AES_NIST_GCM_16:
      return &g.gcm;
    case CRYPTO_CHACHA20_POLY1305:
      return &g.chacha20;
    case CRYPTO_SM4_GCM_16:
    case CRYPTO_SM4_CCM_16:
      return &g.sm4;
    case CRYPTO_AES_CCM_16:
      return &g.ccm;
    case CRYPTO_ARIA_GCM_16:
      return &g.aria;
  }
  return nullptr;
}

}  // namespace

std::vector<pid_t> ktls_worker_tids(kernel& k) {
  std::vector<pid_t> out;
  KtlsState* st = k.ktls.get();
  if (st == nullptr || st->init_state.load(std::memory_order_acquire) <= 0) return out;
  for (const auto& wq : st->wq)
    if (pid_t t = wq->tid.load(std::memory_order_acquire)) out.push_back(t);
  return out;
}

KtlsState::~KtlsState() { ktls_stop_kthreads(*this); }

void ktls_free(ktls_session* tls) {
  if (tls != nullptr) release_ref(tls);
}

// FreeBSD's ktls_destroy(). Nothing here needs the inpcb lock (uktls keeps
// no inpcb reference in the session), so it never defers to a task.
void ktls_session::last_release() {
  KtlsState& st = *k.ktls;
  // An RX session still holding its TLS_RX tag is an IFNET RX one.
  if (direction == KTLS_RX && snd_tag != nullptr)
    counter_u64_add(st.rx.ifnet_sessions, -1);
  pending_records.clear();
  counter_u64_add(st.active, -1);
  KtlsState::ModeGauges* g = nullptr;
  switch (mode) {
    case TCP_TLS_MODE_SW:
      g = &st.sw;
      break;
    case TCP_TLS_MODE_IFNET:
      g = &st.ifnet;
      break;
    case TCP_TLS_MODE_TOE:
      g = &st.toe;
      break;
  }
  if (g != nullptr) {
    if (counter_u64* c = sw_gauge(*g, params.cipher_algorithm))
      counter_u64_add(*c, -1);
  }
  if (snd_tag != nullptr) {
    m_snd_tag_rele(snd_tag);
    snd_tag = nullptr;
  }
  if (backend != nullptr) {
    backend->free_session(this);
    backend = nullptr;
    st.sw_backend_sessions.fetch_sub(1);
  }
  if (params.auth_key != nullptr) {
    OPENSSL_cleanse(params.auth_key, params.auth_key_len);
    delete[] params.auth_key;
    params.auth_key = nullptr;
    params.auth_key_len = 0;
  }
  if (params.cipher_key != nullptr) {
    OPENSSL_cleanse(params.cipher_key, params.cipher_key_len);
    delete[] params.cipher_key;
    params.cipher_key = nullptr;
    params.cipher_key_len = 0;
  }
  OPENSSL_cleanse(params.iv, sizeof(params.iv));
  delete this;
}

int ktls_create_session(kernel& k, socket* so, tls_enable* en,
                        RefPtr<ktls_session>* tlsp, int direction,
                        const uint8_t* explicit_nonce) {
  (void)so;
  KtlsState& st = *k.ktls;

  // Only TLS 1.0 - 1.3 are supported.
  if (en->tls_vmajor != TLS_MAJOR_VER_ONE) return EINVAL;
  if (en->tls_vminor < TLS_MINOR_VER_ZERO ||
      en->tls_vminor > TLS_MINOR_VER_THREE)
    return EINVAL;
  if (en->auth_key_len < 0 || en->auth_key_len > TLS_MAX_PARAM_SIZE)
    return EINVAL;
  if (en->cipher_key_len < 0 || en->cipher_key_len > TLS_MAX_PARAM_SIZE)
    return EINVAL;
  if (en->iv_len < 0 ||
      en->iv_len > static_cast<int>(sizeof(tls_session_params::iv)))
    return EINVAL;
  // All supported algorithms require a cipher key.
  if (en->cipher_key_len == 0) return EINVAL;
  // No flags are currently supported.
  if (en->flags != 0) return EINVAL;

  // Per-suite checks, in FreeBSD's order.
  switch (en->cipher_algorithm) {
    case CRYPTO_AES_NIST_GCM_16:
      // auth_algorithm is unused; FreeBSD tolerates the GMAC ids only
      // under COMPAT_FREEBSD12, which uktls does not model.
      if (en->auth_algorithm != 0) return EINVAL;
      if (en->auth_key_len != 0) return EINVAL;
      switch (en->tls_vminor) {
        case TLS_MINOR_VER_TWO:
          if (en->iv_len != TLS_AEAD_GCM_LEN) return EINVAL;
          break;
        case TLS_MINOR_VER_THREE:
          if (en->iv_len != TLS_1_3_GCM_IV_LEN) return EINVAL;
          break;
        default:
          return EINVAL;
      }
      break;
    case CRYPTO_AES_CBC:
      switch (en->auth_algorithm) {
        case CRYPTO_SHA1_HMAC:
          break;
        case CRYPTO_SHA2_256_HMAC:
        case CRYPTO_SHA2_384_HMAC:
          if (en->tls_vminor != TLS_MINOR_VER_TWO) return EINVAL;
          break;
        default:
          return EINVAL;
      }
      if (en->auth_key_len == 0) return EINVAL;
      // TLS 1.0 requires an implicit IV; 1.1 and 1.2 use explicit IVs.
      switch (en->tls_vminor) {
        case TLS_MINOR_VER_ZERO:
          if (en->iv_len != TLS_CBC_IMPLICIT_IV_LEN) return EINVAL;
          break;
        case TLS_MINOR_VER_ONE:
        case TLS_MINOR_VER_TWO:
          en->iv_len = 0;  // any supplied IV is ignored
          break;
        default:
          return EINVAL;
      }
      break;
    case CRYPTO_CHACHA20_POLY1305:
      if (en->auth_algorithm != 0 || en->auth_key_len != 0) return EINVAL;
      if (en->tls_vminor != TLS_MINOR_VER_TWO &&
          en->tls_vminor != TLS_MINOR_VER_THREE)
        return EINVAL;
      if (en->iv_len != TLS_CHACHA20_IV_LEN) return EINVAL;
      break;
    case CRYPTO_SM4_GCM_16:
    case CRYPTO_SM4_CCM_16:
    case CRYPTO_AES_CCM_16:
    case CRYPTO_ARIA_GCM_16: {
      // uktls extensions (FreeBSD's ktls has none of these). RFC 8998
      // defines the SM4 suites for TLS 1.3; the Linux personality (a
      // socket with the "tls" ULP) also takes them, AES-CCM and ARIA-GCM
      // in the <linux/tls.h> forms: TLS 1.2 with a 4-byte salt (the
      // explicit nonce comes separately), TLS 1.3 with a 12-byte IV; ARIA
      // is TLS 1.2 only.
      const bool linux_personality = so != nullptr && so->so_ulp != nullptr;
      const bool sm4 = en->cipher_algorithm == CRYPTO_SM4_GCM_16 ||
                       en->cipher_algorithm == CRYPTO_SM4_CCM_16;
      if (!sm4 && !linux_personality) return EINVAL;
      if (en->auth_algorithm != 0 || en->auth_key_len != 0) return EINVAL;
      if (en->cipher_algorithm == CRYPTO_ARIA_GCM_16) {
        if (en->cipher_key_len != 16 && en->cipher_key_len != 32)
          return EINVAL;
      } else if (en->cipher_key_len != 16) {
        return EINVAL;
      }
      switch (en->tls_vminor) {
        case TLS_MINOR_VER_TWO:
          if (!linux_personality) return EINVAL;
          if (en->iv_len != TLS_AEAD_GCM_LEN) return EINVAL;
          break;
        case TLS_MINOR_VER_THREE:
          if (en->cipher_algorithm == CRYPTO_ARIA_GCM_16) return EINVAL;
          if (en->iv_len != TLS_SM4_IV_LEN) return EINVAL;
          break;
        default:
          return EINVAL;
      }
      break;
    }
    default:
      return EINVAL;
  }

  int error = ktls_start_kthreads(st);
  if (error != 0) return error;

  auto tls = RefPtr<ktls_session>::adopt(new ktls_session(k));
  tls->id = st.next_session_id.fetch_add(1, std::memory_order_relaxed);
  counter_u64_add(st.active, 1);
  tls->direction = direction;
  tls->tx = direction == KTLS_TX;
  // FreeBSD picks the queue from the flow's RSS CPU; uktls spreads
  // sessions round-robin. Either way a connection keeps one queue.
  tls->wq_index = static_cast<int>(st.next_wq.fetch_add(1) % st.wq.size());

  tls_session_params& p = tls->params;
  p.cipher_algorithm = en->cipher_algorithm;
  p.auth_algorithm = en->auth_algorithm;
  p.tls_vmajor = en->tls_vmajor;
  p.tls_vminor = en->tls_vminor;
  p.flags = static_cast<uint8_t>(en->flags);
  p.max_frame_len = static_cast<uint16_t>(
      std::min<unsigned>(TLS_MAX_MSG_SIZE_V10_2, st.maxlen.load()));

  // Header and trailer lengths.
  p.tls_hlen = sizeof(tls_record_layer);
  switch (en->cipher_algorithm) {
    case CRYPTO_AES_NIST_GCM_16:
      // TLS 1.2: 4-byte salt + 8-byte explicit nonce; 1.3: 12-byte IV.
      if (en->tls_vminor < TLS_MINOR_VER_THREE) p.tls_hlen += sizeof(uint64_t);
      p.tls_tlen = AES_GMAC_HASH_LEN;
      p.tls_bs = 1;
      break;
    case CRYPTO_AES_CBC:
      switch (en->auth_algorithm) {
        case CRYPTO_SHA1_HMAC:
          if (en->tls_vminor == TLS_MINOR_VER_ZERO) {
            // Implicit IV, no explicit part: records must be encrypted in
            // sequence order.
            tls->sequential_records = true;
            tls->next_seqno = be64dec(en->rec_seq);
          } else {
            p.tls_hlen += AES_BLOCK_LEN;
          }
          p.tls_tlen = AES_BLOCK_LEN + SHA1_HASH_LEN;
          break;
        case CRYPTO_SHA2_256_HMAC:
          p.tls_hlen += AES_BLOCK_LEN;
          p.tls_tlen = AES_BLOCK_LEN + SHA2_256_HASH_LEN;
          break;
        case CRYPTO_SHA2_384_HMAC:
          p.tls_hlen += AES_BLOCK_LEN;
          p.tls_tlen = AES_BLOCK_LEN + SHA2_384_HASH_LEN;
          break;
      }
      p.tls_bs = AES_BLOCK_LEN;
      break;
    case CRYPTO_CHACHA20_POLY1305:
      p.tls_tlen = POLY1305_HASH_LEN;
      p.tls_bs = 1;
      break;
    case CRYPTO_SM4_GCM_16:
    case CRYPTO_SM4_CCM_16:
    case CRYPTO_AES_CCM_16:
    case CRYPTO_ARIA_GCM_16:
      // As AES-GCM: TLS 1.2 carries an 8-byte explicit nonce; 16-byte tag.
      if (en->tls_vminor < TLS_MINOR_VER_THREE) p.tls_hlen += sizeof(uint64_t);
      p.tls_tlen = 16;
      p.tls_bs = 1;
      break;
  }
  // TLS 1.3 carries the real record type after the payload; uktls, like
  // FreeBSD, never adds padding.
  if (en->tls_vminor == TLS_MINOR_VER_THREE) p.tls_tlen += sizeof(uint8_t);

  if (en->auth_key_len != 0) {
    p.auth_key_len = static_cast<uint16_t>(en->auth_key_len);
    p.auth_key = new uint8_t[en->auth_key_len];
    if ((error = copyin(en->auth_key, p.auth_key, en->auth_key_len)) != 0)
      return error;  // tls's last reference destroys it
  }
  p.cipher_key_len = static_cast<uint16_t>(en->cipher_key_len);
  p.cipher_key = new uint8_t[en->cipher_key_len];
  if ((error = copyin(en->cipher_key, p.cipher_key, en->cipher_key_len)) != 0)
    return error;

  // The implicit part of the AEAD nonce, or TLS 1.0's initial IV.
  if (en->iv_len != 0) {
    p.iv_len = static_cast<uint16_t>(en->iv_len);
    if ((error = copyin(en->iv, p.iv, en->iv_len)) != 0) return error;
    // TLS 1.2 GCM: the explicit nonce is a counter seeded randomly, kept in
    // iv[8..15] (FreeBSD: arc4rand into the same place).
    if (ktls_tls12_explicit_nonce(en->cipher_algorithm, en->tls_vminor)) {
      if (explicit_nonce != nullptr) {
        // Linux starts from the nonce userland supplies.
        uint64_t n = be64dec(explicit_nonce);
        memcpy(p.iv + 8, &n, sizeof n);
      } else {
        arc4rand(p.iv + 8, sizeof(uint64_t));
      }
    }
  }

  *tlsp = std::move(tls);
  return 0;
}

int ktls_try_sw(ktls_session* tls, int direction) {
  KtlsState& st = *tls->k.ktls;
  const ktls_backend* be;
  {
    MutexLock l(&st.backend_mu);
    be = st.sw_backend;
    if (be == nullptr) return EOPNOTSUPP;  // no ktls_ocf
    st.sw_backend_sessions.fetch_add(1);
  }
  int error = be->try_session(tls->k, tls, direction);
  if (error != 0) {
    st.sw_backend_sessions.fetch_sub(1);
    return error;
  }
  tls->backend = be;
  tls->mode = TCP_TLS_MODE_SW;
  if (counter_u64* c = sw_gauge(st.sw, tls->params.cipher_algorithm))
    counter_u64_add(*c, 1);
  return 0;
}

bool ktls_permit_empty_frames(const ktls_session* tls) {
  return tls->params.cipher_algorithm == CRYPTO_AES_CBC &&
         tls->params.tls_vminor == TLS_MINOR_VER_ZERO;
}

int ktls_register_sw_backend(kernel& k, const ktls_backend* be) {
  KtlsState& st = *k.ktls;
  MutexLock l(&st.backend_mu);
  if (st.sw_backend != nullptr) return EEXIST;
  st.sw_backend = be;
  return 0;
}

int ktls_unregister_sw_backend(kernel& k, const ktls_backend* be) {
  KtlsState& st = *k.ktls;
  MutexLock l(&st.backend_mu);
  if (st.sw_backend != be) return ENOENT;
  if (st.sw_backend_sessions.load() != 0) return EBUSY;
  st.sw_backend = nullptr;
  return 0;
}

int ktls_sw_backend_sessions(kernel& k) {
  return k.ktls->sw_backend_sessions.load();
}

void ktls_set_socket_hooks(kernel& k, const ktls_socket_hooks& hooks) {
  k.ktls->hooks = hooks;
}

void ktls_seq(sockbuf* sb, mbuf* m) ABSL_NO_THREAD_SAFETY_ANALYSIS {
  // Called from sbappendstream_locked() with sb_mtx held.
  ktls_seq(&sb->sb_tls_seqno, m);
}

void ktls_seq(uint64_t* seqno, mbuf* m) {
  for (; m != nullptr; m = m->m_next) {
    m->m_epg_seqno = *seqno;
    (*seqno)++;
  }
}

void ktls_frame(mbuf* top, ktls_session* tls, int* enq_cnt,
                uint8_t record_type) {
  const tls_session_params& p = tls->params;
  *enq_cnt = 0;
  uint64_t nrec = 0, nbytes = 0;
  for (mbuf* m = top; m != nullptr; m = m->m_next) {
    // Each mbuf is one unmapped record of at most max_frame_len bytes;
    // empty records only for TLS 1.0 CBC (empty fragments).
    assert((m->m_flags & M_EXTPG) != 0);
    assert(m->m_len <= p.max_frame_len &&
           (m->m_len > 0 || ktls_permit_empty_frames(tls)));
    int tls_len = m->m_len;
    nrec++;
    nbytes += tls_len;

    m->m_epg_tls = ktls_hold(tls);
    m->m_epg_hdrlen = p.tls_hlen;
    m->m_epg_trllen = p.tls_tlen;
    if (p.cipher_algorithm == CRYPTO_AES_CBC) {
      // tls_tlen is MAC + a full block of padding; trim to the minimal
      // padding that makes payload + MAC + padding a block multiple.
      int delta = (tls_len + p.tls_tlen) & (p.tls_bs - 1);
      m->m_epg_trllen -= delta;
    }
    m->m_len += m->m_epg_hdrlen + m->m_epg_trllen;

    auto* hdr = reinterpret_cast<tls_record_layer*>(m->m_epg_hdr);
    hdr->tls_vmajor = p.tls_vmajor;
    if (p.tls_vminor == TLS_MINOR_VER_THREE &&
        p.tls_vmajor == TLS_MAJOR_VER_ONE) {
      // TLS 1.3 masquerades as a TLS 1.2 application-data record; the real
      // type travels encrypted as the first trailer byte.
      hdr->tls_vminor = TLS_MINOR_VER_TWO;
      hdr->tls_type = TLS_RLTYPE_APP;
      m->m_epg_record_type = record_type;
      m->m_epg_trail[0] = static_cast<char>(record_type);
    } else {
      hdr->tls_vminor = p.tls_vminor;
      hdr->tls_type = record_type;
    }
    hdr->tls_length =
        htons(static_cast<uint16_t>(m->m_len - sizeof(tls_record_layer)));

    // Explicit nonce / IV after the header: TLS 1.2 GCM takes the next
    // value of the per-session counter; CBC 1.1+ a random block.
    if (ktls_tls12_explicit_nonce(p.cipher_algorithm, p.tls_vminor)) {
      uint64_t* noncep = reinterpret_cast<uint64_t*>(tls->params.iv + 8);
      uint64_t nonce = __atomic_fetch_add(noncep, 1, __ATOMIC_RELAXED);
      be64enc(hdr + 1, nonce);
    } else if (p.cipher_algorithm == CRYPTO_AES_CBC &&
               p.tls_vminor >= TLS_MINOR_VER_ONE) {
      arc4rand(hdr + 1, AES_BLOCK_LEN);
    }

    // In SW mode the record may not be sent until it is encrypted.
    if (tls->mode == TCP_TLS_MODE_SW) {
      m->m_flags |= M_NOTREADY;
      m->m_epg_nrdy = tls_len == 0 ? 1 : m->m_epg_npgs;
      *enq_cnt += m->m_epg_nrdy;
    }
  }
  tls->nrecords.fetch_add(nrec, std::memory_order_relaxed);
  tls->nbytes.fetch_add(nbytes, std::memory_order_relaxed);
}

namespace {

// Records in a batch queued by one ktls_enqueue() call.
int ktls_batched_records(mbuf* m) {
  int records = 0;
  int page_count = m->m_epg_enc_cnt;
  while (page_count > 0) {
    records++;
    page_count -= m->m_epg_nrdy;
    m = m->m_next;
  }
  return records;
}

}  // namespace

void ktls_enqueue(mbuf* m, socket* so, int page_count) {
  assert((m->m_flags & (M_EXTPG | M_NOTREADY)) == (M_EXTPG | M_NOTREADY));
  assert(page_count != 0);
  ktls_session* tls = m->m_epg_tls;
  assert(tls->mode == TCP_TLS_MODE_SW);
  KtlsState& st = *tls->k.ktls;

  m->m_epg_enc_cnt = static_cast<uint16_t>(page_count);
  m->m_epg_so = so;

  int queued = 1;
  ktls_wq* wq = st.wq[tls->wq_index].get();
  {
    MutexLock l(&wq->mu);
    if (tls->sequential_records) {
      // TLS 1.0: the chained IV makes every record depend on the one
      // before, so batches must reach the worker in sequence order even if
      // (sendfile) they are enqueued out of order. Later batches wait,
      // sorted, in pending_records.
      if (m->m_epg_seqno != tls->next_seqno) {
        auto it = std::upper_bound(
            tls->pending_records.begin(), tls->pending_records.end(), m,
            [](const mbuf* a, const mbuf* b) {
              return a->m_epg_seqno < b->m_epg_seqno;
            });
        tls->pending_records.insert(it, m);
        counter_u64_add(st.sw_tx_pending, 1);
        return;
      }
      tls->next_seqno += ktls_batched_records(m);
      wq->m_head.push_back(m);
      size_t i = 0;
      for (; i < tls->pending_records.size(); i++) {
        mbuf* n = tls->pending_records[i];
        if (n->m_epg_seqno != tls->next_seqno) break;
        queued++;
        tls->next_seqno += ktls_batched_records(n);
        wq->m_head.push_back(n);
      }
      tls->pending_records.erase(tls->pending_records.begin(),
                                 tls->pending_records.begin() + i);
      counter_u64_add(st.sw_tx_pending, -(queued - 1));
    } else {
      wq->m_head.push_back(m);
    }
    if (!wq->running) wq->cv.Signal();
  }
  counter_u64_add(st.sw_tx_inqueue, queued);
}

namespace {

// FreeBSD's ktls_buffer_alloc(): for a file-backed record of more than two
// pages, a contiguous buffer of maxlen (in pages, at most what an mbuf
// holds) from the page pool's cache of runs, its pages into out; how many,
// or 0 for none (cache off, a small record, or a refusal within the last
// second: after one, single pages serve for a while).
int ktls_buffer_pages(kernel& k, const mbuf* m, vm_page** out) {
  KtlsState& st = *k.ktls;
  const int npgs = m->m_epg_npgs;
  if (!st.sw_buffer_cache.load(std::memory_order_relaxed) || npgs <= 2 || k.vm == nullptr)
    return 0;
  const int n = std::min<int>(
      static_cast<int>(atop(round_page(st.maxlen.load(std::memory_order_relaxed)))),
      MBUF_PEXT_MAX_PGS_UK);
  if (n < npgs) return 0;
  // The clock is read only after a refusal.
  if (int64_t failed = st.buffer_allocfail.load(std::memory_order_relaxed)) {
    if (ticks_now() - failed < 1000) return 0;
    st.buffer_allocfail.store(0, std::memory_order_relaxed);
  }
  if (!k.vm->alloc_contig(static_cast<size_t>(n), out)) {
    st.buffer_allocfail.store(std::max<int64_t>(ticks_now(), 1), std::memory_order_relaxed);
    return 0;
  }
  return n;
}

}  // namespace

int ktls_encrypt_record(kernel& k, mbuf* m, ktls_ocf_encrypt_state* state) {
  ktls_session* tls = m->m_epg_tls;
  assert((m->m_flags & M_EXTPG) != 0);
  int error;
  if ((m->m_epg_flags & EPG_FLAG_ANON) != 0) {
    // Private pages: encrypt in place.
    error = tls->sw.encrypt(state, tls, m, nullptr, 0);
  } else {
    // Pages shared with a file (sendfile): never write them. Encrypt into
    // new pages, which then replace the file's pages in this mbuf
    // (FreeBSD's ktls_encrypt_record + ktls_finish_nonanon).
    const int npgs = m->m_epg_npgs;
    const int bufpgs = ktls_buffer_pages(k, m, state->parray);
    int niov;
    if (bufpgs > 0) {
      // One contiguous buffer: one output segment. Its pages past the
      // record's go back now; the buffer returns whole with the last.
      state->dst_iov[0].iov_base = PHYS_TO_DMAP(state->parray[0]) + m->m_epg_1st_off;
      state->dst_iov[0].iov_len =
          PAGE_SIZE * (npgs - 1) + m->m_epg_last_len - m->m_epg_1st_off;
      PagePool::release_n(state->parray + npgs, bufpgs - npgs);
      niov = 1;
    } else {
      if (npgs > 0 && (k.vm == nullptr || !k.vm->alloc_n(npgs, state->parray)))
        return ENOMEM;
      int off = m->m_epg_1st_off;
      for (int i = 0; i < npgs; i++, off = 0) {
        state->dst_iov[i].iov_base = PHYS_TO_DMAP(state->parray[i]) + off;
        state->dst_iov[i].iov_len = m_epg_pagelen(m, i, off);
      }
      niov = npgs;
    }
    state->dst_iov[niov].iov_base = m->m_epg_trail;
    state->dst_iov[niov].iov_len = m->m_epg_trllen;
    error = tls->sw.encrypt(state, tls, m, state->dst_iov, niov + 1);
    if (error != 0) {
      PagePool::release_n(state->parray, npgs);
      return error;
    }
    PagePool::release_n(m->m_epg_pa, npgs);
    std::copy(state->parray, state->parray + npgs, m->m_epg_pa);
    m->m_epg_flags |= EPG_FLAG_ANON;  // the pages are now private
  }
  if (error == 0) {
    k.ktls->sw_tx_bytes.add(m->m_len - m->m_epg_hdrlen - m->m_epg_trllen);
    // Encrypted records carry no session (FreeBSD relies on this too).
    m->m_epg_tls = nullptr;
    ktls_free(tls);
  }
  return error;
}

// --- Socket entry points -------------------------------------------------

namespace {

// FreeBSD's ktls_drop(): a crypto failure is fatal to the connection.
void ktls_drop(socket* so, int error) ABSL_NO_THREAD_SAFETY_ANALYSIS {
  inpcb* inp = so->so_pcb;
  if (inp != nullptr) {
    inp->inp_lock.Lock();
    if (!(inp->inp_flags.load() & INP_DROPPED)) {
      tcp_drop(intotcpcb(inp), error);
      inp_unlock(inp);
      return;
    }
    inp_unlock(inp);
  }
  so->so_error.store(error);
  sowakeup_all(so);
}

// FreeBSD's mb_free_notready(): frees count not-ready units from m.
void ktls_free_notready(mbuf* m, int count) {
  while (m != nullptr && count > 0) {
    if ((m->m_flags & M_EXTPG) && m->m_epg_npgs != 0)
      count -= m->m_epg_nrdy;
    else
      count--;
    mbuf* n = count > 0 ? m->m_next : nullptr;
    m->m_next = nullptr;
    m_free(m);
    m = n;
  }
}

int so_pr_ready(socket* so, mbuf* m, int count) {
  return so->so_proto->pr_ready(so, m, count);
}

void so_tx_failed(socket* so, mbuf* m, int count, int error) {
  ktls_drop(so, error);
  ktls_free_notready(m, count);
}

void so_rele(socket* so) { release_ref(static_cast<file*>(so)); }

bool so_listening(socket* so) {
  return (so->so_options.load() & SOF_ACCEPTCONN) != 0;
}

}  // namespace

// FreeBSD's ktls_try_toe(): an offloaded (TF_TOE) connection's device may
// take the session over; the mode becomes TOE and the toe gauges count it.
// An RX session keeps its software backend (FreeBSD requires one), but
// counts as TOE only.
static int ktls_try_toe(socket* so, ktls_session* tls, int direction)
    ABSL_NO_THREAD_SAFETY_ANALYSIS {
  inpcb* inp = so->so_pcb;
  if (inp == nullptr) return ECONNRESET;
  inp->inp_lock.Lock();
  if ((inp->inp_flags.load() & INP_DROPPED) || inp->inp_socket == nullptr) {
    inp_unlock(inp);
    return ECONNRESET;
  }
  tcpcb* tp = intotcpcb(inp);
  if (tp == nullptr || !(tp->t_flags & TF_TOE)) {
    inp_unlock(inp);
    return EOPNOTSUPP;
  }
  int error = tcp_offload_alloc_tls_session(tp, tls, direction);
  inp_unlock(inp);
  if (error != 0) return error;
  KtlsState& st = *tls->k.ktls;
  if (tls->mode == TCP_TLS_MODE_SW) {
    if (counter_u64* c = sw_gauge(st.sw, tls->params.cipher_algorithm))
      counter_u64_add(*c, -1);
  }
  tls->mode = TCP_TLS_MODE_TOE;
  if (counter_u64* c = sw_gauge(st.toe, tls->params.cipher_algorithm))
    counter_u64_add(*c, 1);
  return 0;
}

// What FreeBSD's ktls_enable_tx() and ktls_enable_rx() check before they
// pick a backend, in FreeBSD's order (the order is what a caller sees when
// several checks fail), then ktls_create_session(): ENOTSUP with
// kern.ipc.tls.enable=0 (before enable_calls is counted); EINVAL for a
// non-TCP socket; EALREADY when the direction has a session (unless the
// Linux personality replaces it); ENOTSUP for CBC with cbc_enable=0; for
// TX, ENXIO with kern.ipc.mb_use_ext_pgs=0 (records are unmapped mbufs);
// then the session's own validation and set-up.
static int ktls_enable_session(socket* so, tls_enable* en, int direction,
                               bool replace, const uint8_t* explicit_nonce,
                               RefPtr<ktls_session>* tlsp) {
  kernel& k = so->so_k;
  KtlsState& st = *k.ktls;
  if (!st.enable.load()) return ENOTSUP;
  counter_u64_add(st.enable_calls, 1);
  // Every TLS mode needs TCP.
  if (so->so_proto->pr_protocol != IPPROTO_TCP) return EINVAL;
  // Keys are set once per direction.
  if (!replace) {
    sockbuf* sb = direction == KTLS_TX ? &so->so_snd : &so->so_rcv;
    MutexLock l(&sb->sb_mtx);
    if (sb->sb_tls_info != nullptr) return EALREADY;
  }
  if (en->cipher_algorithm == CRYPTO_AES_CBC && !st.cbc_enable.load())
    return ENOTSUP;
  if (direction == KTLS_TX &&
      (k.mb == nullptr || k.mb->mb_use_ext_pgs.load() == 0))
    return ENXIO;
  return ktls_create_session(k, so, en, tlsp, direction, explicit_nonce);
}

static int ktls_enable_tx_linux_impl(socket* so, tls_enable* en,
                                     const uint8_t* explicit_nonce,
                                     bool replace);
static void ktls_try_ifnet_rx(socket* so, ktls_session* tls);
static int ktls_enable_rx_impl(socket* so, tls_enable* en, bool replace,
                               bool linux_rx = false);

int ktls_enable_tx(socket* so, tls_enable* en) {
  return ktls_enable_tx_linux_impl(so, en, nullptr, false);
}

int ktls_enable_tx_linux(socket* so, tls_enable* en,
                         const uint8_t* explicit_nonce, bool replace) {
  return ktls_enable_tx_linux_impl(so, en, explicit_nonce, replace);
}

int ktls_enable_rx(socket* so, tls_enable* en) {
  return ktls_enable_rx_impl(so, en, false);
}

int ktls_enable_rx_linux(socket* so, tls_enable* en, bool replace) {
  return ktls_enable_rx_impl(so, en, replace, true);
}

static int ktls_enable_tx_linux_impl(socket* so, tls_enable* en,
                                     const uint8_t* explicit_nonce,
                                     bool replace)
    ABSL_NO_THREAD_SAFETY_ANALYSIS {
  KtlsState& st = *so->so_k.ktls;
  RefPtr<ktls_session> tls;
  int error = ktls_enable_session(so, en, KTLS_TX, replace, explicit_nonce,
                                  &tls);
  if (error != 0) return error;
  // FreeBSD's order: TOE, then ifnet (only when permitted, on an interface
  // with MEXTPG + TXTLS4), then software. (The Linux personality's rekey
  // replaces a session in place: no TOE.)
  error = replace ? EOPNOTSUPP : ktls_try_toe(so, tls.get(), KTLS_TX);
  if (error != 0) error = ktls_try_ifnet(so, tls.get(), KTLS_TX, false);
  if (error != 0) error = ktls_try_sw(tls.get(), KTLS_TX);
  if (error != 0) return error;
  tls->linux_personality = explicit_nonce != nullptr;

  // Serialise with sosend_generic(); a listening socket has no send side.
  so->so_snd.sb_iolock.Lock();
  if (so_listening(so)) {
    so->so_snd.sb_iolock.Unlock();
    return ENOTCONN;
  }
  ktls_session* old = nullptr;
  {
    MutexLock l(&so->so_snd.sb_mtx);
    if (so->so_snd.sb_tls_info != nullptr && !replace) {
      error = EALREADY;
    } else {
      // A rekey: records already framed keep their reference to the old
      // session; new ones use the new key from rec_seq on.
      old = so->so_snd.sb_tls_info;
      so->so_snd.sb_tls_seqno = be64dec(en->rec_seq);
      so->so_snd.sb_tls_info = tls.leak();  // the sockbuf's reference
    }
  }
  so->so_snd.sb_iolock.Unlock();
  if (old != nullptr) ktls_free(old);
  if (error != 0) return error;
  if (inpcb* inp = so->so_pcb) {
    // tcp_output stamps the send tag on packets of IFNET records.
    inp->inp_lock.Lock();
    if (tcpcb* tp = intotcpcb(inp)) {
      MutexLock l(&so->so_snd.sb_mtx);
      tp->t_nic_ktls_xmit = so->so_snd.sb_tls_info != nullptr &&
                            so->so_snd.sb_tls_info->mode == TCP_TLS_MODE_IFNET;
    }
    inp_unlock(inp);
  }
  counter_u64_add(st.offload_total, 1);
  return 0;
}

static int ktls_enable_rx_impl(socket* so, tls_enable* en, bool replace,
                               bool linux_rx) ABSL_NO_THREAD_SAFETY_ANALYSIS {
  KtlsState& st = *so->so_k.ktls;
  RefPtr<ktls_session> tls;
  int error = ktls_enable_session(so, en, KTLS_RX, replace, nullptr, &tls);
  if (error != 0) return error;
  // A software session is needed even when a NIC would decrypt.
  error = ktls_try_sw(tls.get(), KTLS_RX);
  if (error != 0) return error;
  tls->linux_rx = linux_rx;
  tls->linux_personality = linux_rx;
  // Then TOE (FreeBSD: TOE -> ifnet -> SW, which cannot fail). uktls asks
  // the device before installing the session, so no record reaches a host
  // worker first. Not for the Linux personality (its KeyUpdate pause is
  // the host worker's).
  if (!linux_rx && !replace) (void)ktls_try_toe(so, tls.get(), KTLS_RX);
  {
    MutexLock l(&so->so_rcv.sb_mtx);
    if (so_listening(so)) return EINVAL;
    sockbuf* sb = &so->so_rcv;
    if (sb->sb_tls_info != nullptr) {
      if (!replace) return EALREADY;
      // TLS 1.3 rekey (Linux): records not yet decrypted use the new key.
      ktls_free(sb->sb_tls_info);
      sb->sb_tls_seqno = be64dec(en->rec_seq);
      sb->sb_tls_info = tls.leak();
      counter_u64_add(st.offload_total, 1);
      ktls_check_rx(sb);  // records held back by a KeyUpdate
      return 0;
    }
    sb->sb_tls_seqno = be64dec(en->rec_seq);
    sb->sb_tls_info = ktls_hold(tls.get());
    sb->sb_flags |= SB_TLS_RX;
    // Bytes already queued are ciphertext too (sb_mark_notready).
    mbuf* m = sb->sb_mb;
    if (m != nullptr) {
      for (mbuf* n = m; n != nullptr; n = n->m_next) sbfree(sb, n);
      sb->sb_mb = sb->sb_mbtail = sb->sb_lastrecord = nullptr;
      sbappend_ktls_rx(sb, m);
    }
  }
  counter_u64_add(st.offload_total, 1);
  // FreeBSD prefers TOE, then ifnet, then software; the software session
  // stays set up either way, for records the NIC did not decrypt.
  if (!linux_rx) ktls_try_ifnet_rx(so, tls.get());
  return 0;
}

int ktls_get_tx_mode(socket* so, int* modep) {
  if (so_listening(so)) return EINVAL;
  MutexLock l(&so->so_snd.sb_mtx);
  ktls_session* tls = so->so_snd.sb_tls_info;
  *modep = tls == nullptr ? TCP_TLS_MODE_NONE : tls->mode;
  return 0;
}

int ktls_get_rx_mode(socket* so, int* modep) {
  if (so_listening(so)) return EINVAL;
  MutexLock l(&so->so_rcv.sb_mtx);
  ktls_session* tls = so->so_rcv.sb_tls_info;
  *modep = tls == nullptr ? TCP_TLS_MODE_NONE : tls->mode;
  return 0;
}

namespace {

// FreeBSD's ktls_clone_session(): a new session with the same parameters
// (keys deep-copied, the TLS 1.2 GCM nonce counter where it stands) and
// work queue, mode NONE until a backend takes it.
RefPtr<ktls_session> ktls_clone_session(ktls_session* tls) {
  KtlsState& st = *tls->k.ktls;
  auto n = RefPtr<ktls_session>::adopt(new ktls_session(tls->k));
  counter_u64_add(st.active, 1);
  n->direction = tls->direction;
  n->tx = tls->tx;
  // The same session to ktlsctl: its id, personality and counts carry on.
  n->id = tls->id;
  n->linux_personality = tls->linux_personality;
  n->nrecords.store(tls->nrecords.load());
  n->nbytes.store(tls->nbytes.load());
  n->wq_index = tls->wq_index;
  n->sequential_records = tls->sequential_records;
  n->next_seqno = tls->next_seqno;
  tls_session_params& p = n->params;
  p = tls->params;
  // The counter is advanced atomically by ktls_frame(); the caller holds
  // the send I/O lock, so nothing frames with tls now.
  uint64_t nonce =
      __atomic_load_n(reinterpret_cast<uint64_t*>(tls->params.iv + 8),
                      __ATOMIC_RELAXED);
  memcpy(p.iv + 8, &nonce, sizeof nonce);
  p.cipher_key = nullptr;
  p.auth_key = nullptr;
  if (tls->params.cipher_key_len != 0) {
    p.cipher_key = new uint8_t[p.cipher_key_len];
    memcpy(p.cipher_key, tls->params.cipher_key, p.cipher_key_len);
  }
  if (tls->params.auth_key_len != 0) {
    p.auth_key = new uint8_t[p.auth_key_len];
    memcpy(p.auth_key, tls->params.auth_key, p.auth_key_len);
  }
  return n;
}

}  // namespace

int ktls_set_tx_mode(socket* so, int mode) ABSL_NO_THREAD_SAFETY_ANALYSIS {
  if (so_listening(so)) return EINVAL;
  if (mode != TCP_TLS_MODE_SW && mode != TCP_TLS_MODE_IFNET) return EINVAL;
  KtlsState& st = *so->so_k.ktls;
  inpcb* inp = so->so_pcb;
  if (inp == nullptr) return EINVAL;
  if (mode == TCP_TLS_MODE_IFNET) {
    // The retransmit fallback is one-shot: ifnet stays off afterwards.
    inp->inp_lock.Lock();
    tcpcb* tp = intotcpcb(inp);
    bool dis = tp != nullptr && tp->t_nic_ktls_xmit_dis;
    inp_unlock(inp);
    if (dis) return ENXIO;
  }
  RefPtr<ktls_session> tls;
  {
    MutexLock l(&so->so_snd.sb_mtx);
    tls = RefPtr<ktls_session>(so->so_snd.sb_tls_info);
  }
  if (!tls || tls->mode == mode) return 0;
  // A TOE connection frames its records in the NIC: nothing to switch.
  if (tls->mode == TCP_TLS_MODE_TOE) return EOPNOTSUPP;

  // Unlike FreeBSD, the clone is made under the send I/O lock, so no
  // sosend can frame a record with the old session after its nonce
  // counter was copied (which would reuse a GCM nonce).
  sockbuf* sb = &so->so_snd;
  sb->sb_iolock.Lock();
  bool raced;
  {
    MutexLock l(&sb->sb_mtx);
    raced = sb->sb_tls_info != tls.get();
  }
  if (raced) {
    // Another mode change won: keep its session.
    sb->sb_iolock.Unlock();
    counter_u64_add(st.switch_failed, 1);
    return EBUSY;
  }
  RefPtr<ktls_session> tls_new = ktls_clone_session(tls.get());
  int error = mode == TCP_TLS_MODE_IFNET
                  ? ktls_try_ifnet(so, tls_new.get(), KTLS_TX, true)
                  : ktls_try_sw(tls_new.get(), KTLS_TX);
  if (error != 0) {
    sb->sb_iolock.Unlock();
    counter_u64_add(st.switch_failed, 1);
    return error;
  }
  ktls_session* old;
  inp->inp_lock.Lock();
  {
    MutexLock l(&sb->sb_mtx);
    old = sb->sb_tls_info;
    sb->sb_tls_info = tls_new.leak();  // the sockbuf's reference
  }
  if (tcpcb* tp = intotcpcb(inp)) tp->t_nic_ktls_xmit = mode == TCP_TLS_MODE_IFNET;
  inp_unlock(inp);
  sb->sb_iolock.Unlock();
  // The socket buffer's reference; records framed with the old session
  // hold their own and finish in its mode.
  ktls_free(old);
  counter_u64_add(mode == TCP_TLS_MODE_IFNET ? st.switch_to_ifnet : st.switch_to_sw, 1);
  return 0;
}

// --- IFNET mode ------------------------------------------------------------

namespace {

int ktls_alloc_snd_tag_rate(inpcb* inp, ktls_session* tls, bool force,
                            m_snd_tag** mstp, uint64_t* ratep)
    ABSL_NO_THREAD_SAFETY_ANALYSIS {
  kernel& k = tls->k;
  KtlsState& st = *k.ktls;
  RefPtr<ifnet> ifp;
  uint32_t rate;
  uint32_t flowid;
  inp->inp_lock.Lock();
  if ((inp->inp_flags.load() & INP_DROPPED) || inp->inp_socket == nullptr) {
    inp_unlock(inp);
    return ECONNRESET;
  }
  // Only forced sessions (TCP_TXTLS_MODE, tag resets) ignore the knob.
  if (!force && st.ifnet_permitted.load() == 0) {
    inp_unlock(inp);
    return ENXIO;
  }
  nhop4 nh;
  if (!k.net || k.net->rt->lookup(inp->inp_faddr, &nh) != 0) {
    inp_unlock(inp);
    return ENXIO;  // FreeBSD: no cached route
  }
  ifp = nh.ifp;
  rate = inp->inp_socket->so_max_pacing_rate.load();
  flowid = inp->inp_flowid;
  inp_unlock(inp);

  const uint32_t cap = ifp->if_capenable.load();
  // uktls's stack is IPv4 only: TXTLS4.
  if (!(cap & IFCAP_MEXTPG) || !(cap & IFCAP_TXTLS4)) return EOPNOTSUPP;
  if_snd_tag_alloc_params p;
  p.hdr.flowid = flowid;
  uint64_t r = 0;
  if (rate != UINT32_MAX && (cap & IFCAP_TXTLS_RTLMT)) {
    p.hdr.type = IF_SND_TAG_TYPE_TLS_RATE_LIMIT;
    p.tls_rate_limit.inp = inp;
    p.tls_rate_limit.tls = tls;
    p.tls_rate_limit.max_rate = r = rate;
  } else {
    p.hdr.type = IF_SND_TAG_TYPE_TLS;
    p.tls.inp = inp;
    p.tls.tls = tls;
  }
  int error = ifp->if_snd_tag_alloc(p, mstp);
  if (error == 0 && ratep != nullptr) *ratep = r;
  return error;
}

void so_rele_task(socket* so) { release_ref(static_cast<file*>(so)); }

// FreeBSD's ktls_reset_send_tag(): runs on the KTLS task queue.
void ktls_reset_send_tag(ktls_session* tls) ABSL_NO_THREAD_SAFETY_ANALYSIS {
  KtlsState& st = *tls->k.ktls;
  socket* so = tls->task_so;
  tls->task_so = nullptr;
  inpcb* inp = so->so_pcb;
  m_snd_tag* mst = nullptr;
  uint64_t rate = 0;
  int error = inp != nullptr
                  ? ktls_alloc_snd_tag_rate(inp, tls, true, &mst, &rate)
                  : ECONNRESET;
  if (error == 0) {
    inp->inp_lock.Lock();
    m_snd_tag* old = tls->snd_tag;
    tls->snd_tag = mst;
    tls->snd_tag_rate = rate;
    tls->reset_pending.store(false);
    counter_u64_add(st.ifnet_reset, 1);
    // Resume at once rather than at the next retransmit timeout.
    tcpcb* tp = intotcpcb(inp);
    if (tp != nullptr && !(inp->inp_flags.load() & INP_DROPPED) &&
        inp->inp_socket != nullptr)
      tcp_output(tp);
    inp_unlock(inp);
    if (old != nullptr) m_snd_tag_rele(old);
  } else {
    if (inp != nullptr) {
      inp->inp_lock.Lock();
      if (!(inp->inp_flags.load() & INP_DROPPED) && intotcpcb(inp) != nullptr) {
        tcp_drop(intotcpcb(inp), ECONNABORTED);
        counter_u64_add(st.ifnet_reset_dropped, 1);
      }
      inp_unlock(inp);
    }
    counter_u64_add(st.ifnet_reset_failed, 1);
    // reset_pending stays set: the connection is going away.
  }
  so_rele_task(so);
  ktls_free(tls);
}

void ktls_disable_ifnet_help(ktls_session* tls) {
  KtlsState& st = *tls->k.ktls;
  socket* so = tls->disable_so;
  tls->disable_so = nullptr;
  int error = ktls_set_tx_mode(so, TCP_TLS_MODE_SW);
  counter_u64_add(error == 0 ? st.ifnet_disable_ok : st.ifnet_disable_failed, 1);
  so_rele_task(so);
  ktls_free(tls);
}

}  // namespace

int ktls_alloc_snd_tag(inpcb* inp, ktls_session* tls, bool force,
                       m_snd_tag** mstp) {
  return ktls_alloc_snd_tag_rate(inp, tls, force, mstp, nullptr);
}

int ktls_try_ifnet(socket* so, ktls_session* tls, int direction, bool force) {
  // Receive offload (TLS_RX tags) is set up elsewhere.
  if (direction != KTLS_TX) return EOPNOTSUPP;
  if (so->so_pcb == nullptr) return ECONNRESET;
  m_snd_tag* mst = nullptr;
  uint64_t rate = 0;
  int error = ktls_alloc_snd_tag_rate(so->so_pcb, tls, force, &mst, &rate);
  if (error != 0) return error;
  tls->snd_tag = mst;
  tls->snd_tag_rate = rate;
  tls->mode = TCP_TLS_MODE_IFNET;
  if (counter_u64* c = sw_gauge(tls->k.ktls->ifnet, tls->params.cipher_algorithm))
    counter_u64_add(*c, 1);
  return 0;
}

int ktls_output_eagain(inpcb* inp, ktls_session* tls) {
  if (inp == nullptr) return ENOBUFS;
  inp->inp_lock.AssertHeld();
  if (tls->reset_pending.exchange(true)) return ENOBUFS;
  KtlsState& st = *tls->k.ktls;
  socket* so = inp->inp_socket;
  MutexLock l(&st.tq_mu);
  if (so == nullptr || st.tq == nullptr) return ENOBUFS;  // going away
  ktls_hold(tls);
  so->ref();
  tls->task_so = so;
  TASK_INIT(&tls->reset_tag_task, 0,
            [tls](int) { ktls_reset_send_tag(tls); });
  taskqueue_enqueue(st.tq, &tls->reset_tag_task);
  return ENOBUFS;
}

void ktls_disable_ifnet(tcpcb* tp) ABSL_NO_THREAD_SAFETY_ANALYSIS {
  inpcb* inp = tp->t_inpcb;
  socket* so = inp->inp_socket;
  if (so == nullptr || tp->t_nic_ktls_xmit_dis) return;
  ktls_session* tls;
  {
    MutexLock l(&so->so_snd.sb_mtx);
    tls = so->so_snd.sb_tls_info;
  }
  if (tls == nullptr) return;
  KtlsState& st = *tls->k.ktls;
  MutexLock l(&st.tq_mu);
  if (st.tq == nullptr) return;
  // Never again for this connection, whatever the task's outcome.
  tp->t_nic_ktls_xmit_dis = true;
  ktls_hold(tls);
  so->ref();
  tls->disable_so = so;
  TASK_INIT(&tls->disable_ifnet_task, 0,
            [tls](int) { ktls_disable_ifnet_help(tls); });
  taskqueue_enqueue(st.tq, &tls->disable_ifnet_task);
}

int ktls_modify_txrtlmt(ktls_session* tls, uint64_t max_pacing_rate) {
  m_snd_tag* mst = tls->snd_tag;
  if (mst == nullptr || tls->reset_pending.load()) return 0;
  if (mst->type() != IF_SND_TAG_TYPE_TLS_RATE_LIMIT) return EINVAL;
  if_snd_tag_modify_params p;
  p.tls_rate_limit.max_rate = max_pacing_rate;
  int error = mst->sw->snd_tag_modify(mst, &p);
  if (error == 0) tls->snd_tag_rate = max_pacing_rate;
  return error;
}

void ktls_ifnet_tx_account(kernel& k, uint64_t bytes, uint64_t rebuild_bytes,
                           uint64_t rebuilds) {
  if (!k.ktls) return;
  KtlsState& st = *k.ktls;
  if (bytes) st.ifnet_tx_bytes.add(static_cast<int64_t>(bytes));
  if (rebuilds) {
    st.ifnet_tx_rebuilds.add(static_cast<int64_t>(rebuilds));
    st.ifnet_tx_rebuild_bytes.add(static_cast<int64_t>(rebuild_bytes));
  }
}

// --- IFNET receive ---------------------------------------------------------

namespace {

// FreeBSD's ktls_alloc_rcv_tag(): a TLS_RX tag on the interface the route
// to the peer leaves through. ENXIO when not permitted, without recrypt
// support (the stack must be able to finish records a NIC decrypted only
// in part) or without a route; ECONNRESET for a dropped connection;
// EOPNOTSUPP when the interface does not have rxtls on.
int ktls_alloc_rcv_tag(socket* so, ktls_session* tls, m_snd_tag** mstp)
    ABSL_NO_THREAD_SAFETY_ANALYSIS {
  kernel& k = so->so_k;
  KtlsState& st = *k.ktls;
  if (st.ifnet_permitted.load() == 0) return ENXIO;
  if (tls->backend == nullptr || tls->backend->recrypt_supported == nullptr ||
      !tls->backend->recrypt_supported(tls) || tls->sw.recrypt == nullptr)
    return ENXIO;
  inpcb* inp = so->so_pcb;
  if (inp == nullptr || k.net == nullptr || !k.net->rt) return ECONNRESET;
  in_addr faddr;
  {
    inp->inp_lock.Lock();
    bool dropped = (inp->inp_flags.load() & INP_DROPPED) != 0;
    faddr = inp->inp_faddr;
    inp_unlock(inp);
    if (dropped) return ECONNRESET;
  }
  nhop4 nh;
  if (k.net->rt->lookup(faddr, &nh) != 0 || !nh.ifp) return ENXIO;
  ifnet* ifp = nh.ifp.get();
  if (!(ifp->if_capenable2.load() & IFCAP2_BIT(IFCAP2_RXTLS4))) return EOPNOTSUPP;
  if_snd_tag_alloc_params params;
  params.tls_rx.hdr.type = IF_SND_TAG_TYPE_TLS_RX;
  params.tls_rx.hdr.flowid = inp->inp_flowid;
  params.tls_rx.inp = inp;
  params.tls_rx.tls = tls;
  params.tls_rx.vlan_id = 0xfff;  // no VLAN
  return ifp->if_snd_tag_alloc(params, mstp);
}

// Leaves IFNET for good: the tag goes, the software session does the rest.
void ktls_rx_ifnet_disable(socket* so, ktls_session* tls)
    ABSL_NO_THREAD_SAFETY_ANALYSIS {
  KtlsState& st = *so->so_k.ktls;
  m_snd_tag* tag = nullptr;
  {
    MutexLock l(&so->so_rcv.sb_mtx);
    if (tls->snd_tag == nullptr) return;
    tag = std::exchange(tls->snd_tag, nullptr);
    so->so_rcv.sb_flags &= ~SB_TLS_RX_RESYNC;
    if (counter_u64* c = sw_gauge(st.ifnet, tls->params.cipher_algorithm))
      counter_u64_add(*c, -1);
    if (counter_u64* c = sw_gauge(st.sw, tls->params.cipher_algorithm))
      counter_u64_add(*c, 1);
    tls->mode = TCP_TLS_MODE_SW;
  }
  counter_u64_add(st.rx.ifnet_sessions, -1);
  counter_u64_add(st.rx.fallback_sw, 1);
  m_snd_tag_rele(tag);
}

// FreeBSD's ktls_resync_ifnet(): tells the NIC where record `seqno` (of
// tls_len bytes, 0 = length not given) has its header. The position comes
// from rcv_nxt minus the bytes still waiting on sb_mtls, read under the
// inpcb and sockbuf locks so no segment lands in between; with
// seqno < 0 the record is the next one on sb_mtls (sb_tls_seqno). A NIC
// that refuses (it lost rxtls, or is gone) ends IFNET mode.
void ktls_resync_ifnet(socket* so, ktls_session* tls, uint32_t tls_len,
                       int64_t seqno) ABSL_NO_THREAD_SAFETY_ANALYSIS {
  KtlsState& st = *so->so_k.ktls;
  inpcb* inp = so->so_pcb;
  if (inp == nullptr) return;
  if_snd_tag_modify_params mp;
  m_snd_tag* tag = nullptr;
  inp->inp_lock.Lock();
  if (!(inp->inp_flags.load() & INP_DROPPED) && intotcpcb(inp) != nullptr) {
    tcpcb* tp = intotcpcb(inp);
    MutexLock l(&so->so_rcv.sb_mtx);
    if (tls->snd_tag != nullptr) {
      tag = m_snd_tag_ref(tls->snd_tag);
      mp.tls_rx.tls_hdr_tcp_sn = tp->rcv_nxt - so->so_rcv.sb_tlscc - tls_len;
      mp.tls_rx.tls_rec_length = tls_len;
      mp.tls_rx.tls_seq_number =
          seqno < 0 ? so->so_rcv.sb_tls_seqno : static_cast<uint64_t>(seqno);
    }
  }
  inp_unlock(inp);
  if (tag == nullptr) return;
  int error = tag->sw->snd_tag_modify(tag, &mp);
  m_snd_tag_rele(tag);
  if (tls_len != 0) counter_u64_add(st.rx.resync, 1);
  if (error != 0) ktls_rx_ifnet_disable(so, tls);
}

}  // namespace

// FreeBSD's ktls_try_ifnet() for KTLS_RX: with a tag the session is IFNET
// (TCP_RXTLS_MODE reports it), and the NIC is told where the next record
// starts. Without one it stays SW.
static void ktls_try_ifnet_rx(socket* so, ktls_session* tls)
    ABSL_NO_THREAD_SAFETY_ANALYSIS {
  KtlsState& st = *so->so_k.ktls;
  m_snd_tag* mst = nullptr;
  int error = ktls_alloc_rcv_tag(so, tls, &mst);
  if (error != 0) {
    // Not permitted / no capability is the ordinary SW case.
    if (error != ENXIO && error != EOPNOTSUPP) counter_u64_add(st.rx.tag_failed, 1);
    return;
  }
  bool installed = false;
  {
    MutexLock l(&so->so_rcv.sb_mtx);
    if (so->so_rcv.sb_tls_info == tls && tls->snd_tag == nullptr) {
      tls->snd_tag = mst;
      if (counter_u64* c = sw_gauge(st.sw, tls->params.cipher_algorithm))
        counter_u64_add(*c, -1);
      if (counter_u64* c = sw_gauge(st.ifnet, tls->params.cipher_algorithm))
        counter_u64_add(*c, 1);
      tls->mode = TCP_TLS_MODE_IFNET;
      installed = true;
    }
  }
  if (!installed) {
    m_snd_tag_rele(mst);
    return;
  }
  counter_u64_add(st.rx.ifnet_sessions, 1);
  ktls_resync_ifnet(so, tls, 0, -1);
}

void sbappend_ktls_rx(sockbuf* sb, mbuf* m) ABSL_NO_THREAD_SAFETY_ANALYSIS {
  // A pure byte stream on sb_mtls; counted in sb_ccc (window, space) but
  // not in sb_acc (nothing readable until decrypted).
  for (mbuf* n = m; n != nullptr; n = n->m_next) {
    n->m_flags &= ~(M_PKTHDR | M_EOR);
    sb->sb_tlscc += n->m_len;
    sb->sb_ccc += n->m_len;
  }
  if (sb->sb_mtlstail != nullptr)
    sb->sb_mtlstail->m_next = m;
  else
    sb->sb_mtls = m;
  mbuf* last = m;
  while (last->m_next != nullptr) last = last->m_next;
  sb->sb_mtlstail = last;
  ktls_check_rx(sb);
}

void ktls_check_rx(sockbuf* sb) ABSL_NO_THREAD_SAFETY_ANALYSIS {
  socket* so = sb->sb_so;
  if (sb->sb_flags & SB_TLS_RX_RUNNING) return;
  ktls_session* tls = sb->sb_tls_info;
  if (tls->rx_paused || tls->rx_aborted) return;
  tls_record_layer hdr;
  // A header, then the whole record; at EOF a partial one is EMSGSIZE.
  if (sb->sb_tlscc < sizeof(hdr)) {
    if ((sb->sb_state & SBS_CANTRCVMORE) && sb->sb_tlscc != 0)
      so->so_error.store(EMSGSIZE);
    return;
  }
  m_copydata(sb->sb_mtls, 0, sizeof(hdr), &hdr);
  if (tls->linux_rx) {
    // Linux judges a header as soon as it is there (tls_rx_msg_size),
    // FreeBSD only once the whole record is queued: length too big
    // EMSGSIZE, too small for the cipher EBADMSG, version EINVAL. The error
    // is reported once and receive stops.
    const tls_session_params& p = tls->params;
    const int len = ntohs(hdr.tls_length);
    const int explicit_len = p.tls_hlen - static_cast<int>(sizeof(hdr));
    const int tag = p.tls_tlen - (p.tls_vminor == TLS_MINOR_VER_THREE ? 1 : 0);
    int error = 0;
    if (len > TLS_MAX_MSG_SIZE_V10_2 + explicit_len + p.tls_tlen)
      error = EMSGSIZE;
    else if (len < explicit_len + tag)
      error = EBADMSG;
    else if (hdr.tls_vmajor != TLS_MAJOR_VER_ONE ||
             hdr.tls_vminor != TLS_MINOR_VER_TWO)
      error = EINVAL;
    if (error != 0) {
      tls->rx_aborted = true;
      so->so_error.store(error);
      return;  // the caller (sbappend path) wakes the reader
    }
  }
  if (sb->sb_tlscc < sizeof(hdr) + ntohs(hdr.tls_length)) {
    if (sb->sb_state & SBS_CANTRCVMORE) so->so_error.store(EMSGSIZE);
    return;
  }
  if (sb->sb_tls_info->mode == TCP_TLS_MODE_TOE) {
    // The TCP offload engine decrypts; the host's workers never see it.
    if (sb->sb_tls_info->toe && sb->sb_tls_info->toe->rx_ready(so))
      sb->sb_flags |= SB_TLS_RX_RUNNING;
    return;
  }
  sb->sb_flags |= SB_TLS_RX_RUNNING;
  so->ref();  // soref, released by the worker
  KtlsState& st = *so->so_k.ktls;
  ktls_wq* wq = st.wq[sb->sb_tls_info->wq_index].get();
  {
    MutexLock l(&wq->mu);
    wq->so_head.push_back(so);
    if (!wq->running) wq->cv.Signal();
  }
  counter_u64_add(st.sw_rx_inqueue, 1);
}

int ktls_rx_next_record(sockbuf* sb, const ktls_session* tls, int* tls_len)
    ABSL_NO_THREAD_SAFETY_ANALYSIS {
  // FreeBSD waits for the header and any explicit nonce before judging it.
  if (sb->sb_tlscc < static_cast<unsigned>(tls->params.tls_hlen))
    return EWOULDBLOCK;
  tls_record_layer hdr;
  m_copydata(sb->sb_mtls, 0, sizeof(hdr), &hdr);
  int error = ktls_rx_check_header(tls, &hdr, tls_len);
  if (error != 0) return error;
  return sb->sb_tlscc < static_cast<unsigned>(*tls_len) ? EWOULDBLOCK : 0;
}

// FreeBSD's ktls_detach_record, but copying: the record is decrypted in
// private memory, never in pages a sender may share.
void ktls_detach_record(sockbuf* sb, uint8_t* buf, int len)
    ABSL_NO_THREAD_SAFETY_ANALYSIS {
  m_copydata(sb->sb_mtls, 0, len, buf);
  int left = len;
  mbuf* freelist = nullptr;
  mbuf** ftail = &freelist;
  while (left > 0) {
    mbuf* m = sb->sb_mtls;
    if (m->m_len > left) {
      m_adj(m, left);
      break;
    }
    left -= m->m_len;
    sb->sb_mtls = m->m_next;
    m->m_next = nullptr;
    *ftail = m;
    ftail = &m->m_next;
  }
  if (sb->sb_mtls == nullptr) sb->sb_mtlstail = nullptr;
  sb->sb_tlscc -= len;
  sb->sb_tlsdcc = len;
  m_freem(freelist);
}

namespace {

// FreeBSD's ktls_detach_record() proper: the first len bytes of sb_mtls
// become a chain of their own (the last mbuf split, sharing its cluster), so
// the record is copied after sb_mtx is dropped and the netisr can go on
// appending meanwhile. Null (nothing detached) if the split needs an mbuf
// that cannot be had.
mbuf* ktls_detach_record_chain(sockbuf* sb, int len) ABSL_NO_THREAD_SAFETY_ANALYSIS {
  mbuf* m = sb->sb_mtls;
  int left = len;
  while (m->m_len < left) {
    left -= m->m_len;
    m = m->m_next;
  }
  mbuf* rest;
  if (m->m_len == left) {
    rest = m->m_next;
    m->m_next = nullptr;
  } else {
    rest = m_split(m, left, M_NOWAIT);
    if (rest == nullptr) return nullptr;
  }
  mbuf* top = sb->sb_mtls;
  sb->sb_mtls = rest;
  if (rest == nullptr) {
    sb->sb_mtlstail = nullptr;
  } else if (sb->sb_mtlstail == m) {
    sb->sb_mtlstail = rest;
  }
  sb->sb_tlscc -= len;
  sb->sb_tlsdcc = len;
  return top;
}

}  // namespace

mbuf* ktls_plaintext_mbufs(kernel& k, const uint8_t* p, int len) {
  mbuf* top = nullptr;
  mbuf** tail = &top;
  while (len > 0) {
    mbuf* m = m_getjcl(k, M_NOWAIT, MT_DATA, 0, MJUM16BYTES);
    if (m == nullptr) {
      m_freem(top);
      return nullptr;
    }
    int n = std::min(len, MJUM16BYTES);
    memcpy(mtod(m), p, n);
    m->m_len = n;
    p += n;
    len -= n;
    *tail = m;
    tail = &m->m_next;
  }
  return top;
}

// The tail of FreeBSD's ktls_decrypt() loop for one record.
int ktls_rx_deliver_record(socket* so, int tls_len, int error,
                           const tls_get_record* tgr, bool padded, mbuf* data)
    ABSL_NO_THREAD_SAFETY_ANALYSIS {
  sockbuf* sb = &so->so_rcv;
  mbuf* control = nullptr;
  if (error == 0) {
    control = sbcreatecontrol(so->so_k, tgr, sizeof(*tgr), TLS_GET_RECORD,
                              IPPROTO_TCP);
    if (control != nullptr && padded) control->m_flags |= M_TLS_PADDED;
    if (control == nullptr || (tgr->tls_length != 0 && data == nullptr)) {
      m_freem(control);
      m_freem(data);
      control = data = nullptr;
      error = ENOBUFS;
    }
  } else {
    m_freem(data);
    data = nullptr;
  }

  sb->sb_mtx.Lock();
  if (sb->sb_tlsdcc == 0) {
    // A flush (close, shutdown) discarded this record meanwhile.
    m_freem(control);
    m_freem(data);
    return KTLS_RX_FLUSHED;
  }
  sb->sb_ccc -= tls_len;
  sb->sb_tlsdcc = 0;
  if (error != 0) {
    // Drop this record, keep decrypting the ones after it; the reader
    // sees the error after the records before it.
    so->so_error.store(error == EMSGSIZE ? EMSGSIZE : EBADMSG);
    sorwakeup_locked(so);
    sb->sb_mtx.Lock();
    return KTLS_RX_FAILED;
  }
  if (data != nullptr) {
    mbuf* last = data;
    while (last->m_next != nullptr) last = last->m_next;
    last->m_flags |= M_EOR;
  }
  sbappendcontrol_locked(sb, data, control, data != nullptr ? M_EOR : 0);
  return KTLS_RX_DELIVERED;
}

namespace {

// How much of a record the NIC decrypted (FreeBSD's
// KTLS_MBUF_CRYPTO_ST_*).
enum { KTLS_MBUF_CRYPTO_ST_MIXED = 0, KTLS_MBUF_CRYPTO_ST_ENCRYPTED = 1,
       KTLS_MBUF_CRYPTO_ST_DECRYPTED = -1 };

// FreeBSD's ktls_mbuf_crypto_state(): the state of the first len bytes of
// m, and in *ranges the (offset, length) runs of M_DECRYPTED bytes.
int ktls_mbuf_crypto_state(const mbuf* m, int len, std::vector<int>* ranges) {
  ranges->clear();
  int off = 0, dec = 0;
  for (; m != nullptr && off < len; m = m->m_next) {
    int n = std::min(m->m_len, len - off);
    if (n > 0 && (m->m_flags & M_DECRYPTED)) {
      size_t k = ranges->size();
      if (k >= 2 && (*ranges)[k - 2] + (*ranges)[k - 1] == off) {
        (*ranges)[k - 1] += n;
      } else {
        ranges->push_back(off);
        ranges->push_back(n);
      }
      dec += n;
    }
    off += n;
  }
  if (dec == 0) return KTLS_MBUF_CRYPTO_ST_ENCRYPTED;
  return dec == len ? KTLS_MBUF_CRYPTO_ST_DECRYPTED : KTLS_MBUF_CRYPTO_ST_MIXED;
}

int ktls_rx_record(KtlsState& st, ktls_session* tls, mbuf* src, uint8_t* rec,
                   int len, uint64_t seqno, int state,
                   const std::vector<int>& ranges, tls_get_record* tgr,
                   bool* padded);
int ktls_rx_decrypted_chain(KtlsState& st, ktls_session* tls, mbuf** chain, int len,
                            tls_get_record* tgr, bool* padded);

// FreeBSD's ktls_decrypt(): every whole record queued on the socket.
void ktls_decrypt(KtlsState& st, ktls_wq* wq, socket* so)
    ABSL_NO_THREAD_SAFETY_ANALYSIS {
  kernel& k = so->so_k;
  sockbuf* sb = &so->so_rcv;
  sb->sb_mtx.Lock();
  // A reference: a Linux TLS 1.3 rekey may replace sb_tls_info while a
  // record is being decrypted outside the lock.
  RefPtr<ktls_session> tls;
  for (;;) {
    tls = RefPtr<ktls_session>(sb->sb_tls_info);
    if (tls->rx_paused) break;
    const int hlen = tls->params.tls_hlen;
    int tls_len = 0;
    int error = ktls_rx_next_record(sb, tls.get(), &tls_len);
    if (error == EWOULDBLOCK) break;
    if (error != 0) {
      // Out of sync: the connection cannot recover. FreeBSD leaves
      // SB_TLS_RX_RUNNING set here and its reader sleeps on the bad record
      // for good; uktls clears it once the drop has posted its error, so
      // the reader gets that error (then EMSGSIZE for the record).
      sb->sb_mtx.Unlock();
      counter_u64_add(st.corrupted_records, 1);
      ktls_drop(so, error);
      sb->sb_mtx.Lock();
      sb->sb_flags &= ~SB_TLS_RX_RUNNING;
      sorwakeup_locked(so);
      release_ref(static_cast<file*>(so));
      return;
    }
    // The record is copied off the stream into a record cluster, decrypted
    // there in place, and that cluster becomes the record's data. (FreeBSD
    // decrypts the detached chain in place; here its clusters may still be
    // shared, e.g. with the sender's retransmit queue over lo0.) Without a
    // cluster the worker's buffer is used and the plaintext copied out.
    // The record's mbufs are detached and, after sb_mtx is dropped,
    // decrypted out of place into the cluster (copied there first where
    // the detach could not split an mbuf).
    // A record the NIC decrypted whole is delivered in its own mbufs, header
    // and trailer trimmed, as FreeBSD does: no cluster, no copy.
    int state = ktls_mbuf_crypto_state(sb->sb_mtls, tls_len, &wq->rx_ranges);
    mbuf* chain = ktls_detach_record_chain(sb, tls_len);
    const bool as_is = chain != nullptr && state == KTLS_MBUF_CRYPTO_ST_DECRYPTED;
    mbuf* recm = nullptr;
    uint8_t* rec = nullptr;
    if (!as_is) {
      recm = tls_len <= KTLS_REC_BYTES ? m_getktlsrec(k, M_NOWAIT, MT_DATA) : nullptr;
      if (recm != nullptr) {
        rec = mtod<uint8_t*>(recm);
      } else {
        if (wq->rx_buf.size() < static_cast<size_t>(tls_len))
          wq->rx_buf.resize(hlen + TLS_MAX_MSG_SIZE_V10_2 + 256);
        rec = wq->rx_buf.data();
      }
      if (chain == nullptr) ktls_detach_record(sb, rec, tls_len);
    }
    uint64_t seqno = sb->sb_tls_seqno++;
    // IFNET: a record the NIC did not decrypt whole means it is (or was)
    // out of sync; tell it where this record was, and once it decrypts
    // whole records again, that it has resumed (ktls_decrypt's
    // SB_TLS_RX_RESYNC handling).
    bool resync = false, resumed = false;
    if (tls->snd_tag != nullptr) {
      if (state != KTLS_MBUF_CRYPTO_ST_DECRYPTED) {
        sb->sb_flags |= SB_TLS_RX_RESYNC;
        resync = true;
      } else if (sb->sb_flags & SB_TLS_RX_RESYNC) {
        sb->sb_flags &= ~SB_TLS_RX_RESYNC;
        resumed = true;
      }
    }
    sb->sb_mtx.Unlock();
    if (resync) {
      ktls_resync_ifnet(so, tls.get(), static_cast<uint32_t>(tls_len),
                        static_cast<int64_t>(seqno));
    } else if (resumed) {
      ktls_resync_ifnet(so, tls.get(), 0, -1);
      counter_u64_add(st.rx.resumed, 1);
    }

    tls_get_record tgr;
    bool padded = false;
    mbuf* data = nullptr;
    if (as_is) {
      error = ktls_rx_decrypted_chain(st, tls.get(), &chain, tls_len, &tgr, &padded);
      data = std::exchange(chain, nullptr);  // the plaintext, or null
    } else {
      error = ktls_rx_record(st, tls.get(), chain, rec, tls_len, seqno, state,
                             wq->rx_ranges, &tgr, &padded);
    }
    m_freem(chain);
    // A Linux TLS 1.3 KeyUpdate (handshake type 24) pauses decryption.
    bool key_update = false;
    if (error == 0) {
      const int plen = ntohs(tgr.tls_length);
      uint8_t first = 0;
      if (plen > 0) {
        if (as_is)
          m_copydata(data, 0, 1, &first);
        else
          first = rec[hlen];
      }
      key_update = tls->linux_rx && tls->params.tls_vminor == TLS_MINOR_VER_THREE &&
                   tgr.tls_type == TLS_RLTYPE_HANDSHAKE && plen > 0 && first == 24;
      // (as_is: data is already the record's own mbufs, trimmed.)
      if (!as_is && recm != nullptr && plen > 0) {
        // Trim the header and trailer: the plaintext stays where it is.
        recm->m_data += hlen;
        recm->m_len = plen;
        data = recm;
        recm = nullptr;
      } else if (!as_is && (data = ktls_plaintext_mbufs(k, rec + hlen, plen)) != nullptr) {
        k.mb->copies.add(plen);
      }
    }
    m_freem(recm);  // not handed on: an error or an empty record

    // Returns with sb_mtx held.
    int delivered =
        ktls_rx_deliver_record(so, tls_len, error, &tgr, padded, data);
    if (delivered == KTLS_RX_FLUSHED) break;
    if (delivered == KTLS_RX_FAILED) continue;
    tls->nrecords.fetch_add(1, std::memory_order_relaxed);
    tls->nbytes.fetch_add(ntohs(tgr.tls_length), std::memory_order_relaxed);
    // Linux's tls_advance_record_sn(): nothing may follow sequence 2^64-1;
    // the record is delivered, then the socket reports EBADMSG.
    if (tls->linux_rx && seqno == UINT64_MAX) so->so_error.store(EBADMSG);
    if (key_update) tls->rx_paused = true;  // wait for the next TLS_RX
  }
  sb->sb_flags &= ~SB_TLS_RX_RUNNING;
  if ((sb->sb_state & SBS_CANTRCVMORE) && sb->sb_tlscc > 0)
    so->so_error.store(EMSGSIZE);
  sorwakeup_locked(so);
  release_ref(static_cast<file*>(so));
}

}  // namespace

int ktls_rx_check_header(const ktls_session* tls, const tls_record_layer* hdr,
                         int* tls_len) {
  const tls_session_params& p = tls->params;
  bool tls13 = p.tls_vminor == TLS_MINOR_VER_THREE;
  uint8_t vminor = tls13 ? TLS_MINOR_VER_TWO : p.tls_vminor;
  int len = static_cast<int>(sizeof(*hdr)) + ntohs(hdr->tls_length);
  *tls_len = len;
  if (hdr->tls_vmajor != p.tls_vmajor || hdr->tls_vminor != vminor)
    return EINVAL;
  if (tls13 && hdr->tls_type != TLS_RLTYPE_APP) return EINVAL;
  if (len < p.tls_hlen || len > p.tls_hlen + TLS_MAX_MSG_SIZE_V10_2 + p.tls_tlen)
    return EMSGSIZE;
  return 0;
}

namespace {

// FreeBSD's tls13_find_record_type(): the last non-zero byte before the tag
// is the real type; zeros after it are padding. *trailer_len: in, the tag
// length; out, everything after the plaintext.
int tls13_find_record_type(const ktls_session* tls, const uint8_t* rec,
                           int tls_len, int* trailer_len, uint8_t* type) {
  int i = tls_len - *trailer_len;
  while (i > tls->params.tls_hlen && rec[i - 1] == 0) i--;
  if (i <= tls->params.tls_hlen) return EBADMSG;
  *type = rec[i - 1];
  *trailer_len = tls_len - i + 1;
  return 0;
}

// The TLS_GET_RECORD control message of a record of plen plaintext bytes.
void ktls_fill_tgr(tls_get_record* tgr, const tls_record_layer& hdr, uint8_t type, int plen) {
  memset(tgr, 0, sizeof(*tgr));
  tgr->tls_type = type;
  tgr->tls_vmajor = hdr.tls_vmajor;
  tgr->tls_vminor = hdr.tls_vminor;
  tgr->tls_length = htons(static_cast<uint16_t>(plen));
}

// A record the NIC decrypted and verified whole: its control message, its
// padding flag and the IFNET counters. Returns its plaintext length.
int ktls_rx_nic_record(KtlsState& st, const ktls_session* tls, const tls_record_layer& hdr,
                       uint8_t type, int len, int trailer_len, tls_get_record* tgr,
                       bool* padded) {
  const int plen = len - tls->params.tls_hlen - trailer_len;
  ktls_fill_tgr(tgr, hdr, type, plen);
  *padded = trailer_len > tls->params.tls_tlen;
  counter_u64_add(st.rx.ifnet_records, 1);
  counter_u64_add(st.rx.ifnet_bytes, plen);
  return plen;
}

}  // namespace

int ktls_rx_decrypt_record(ktls_session* tls, uint8_t* rec, int len,
                           uint64_t seqno, tls_get_record* tgr, bool* padded) {
  return ktls_rx_decrypt_record_from(tls, nullptr, rec, len, seqno, tgr, padded);
}

int ktls_rx_decrypt_record_from(ktls_session* tls, mbuf* src, uint8_t* rec,
                                int len, uint64_t seqno, tls_get_record* tgr,
                                bool* padded) {
  KtlsState& st = *tls->k.ktls;
  // The header and explicit IV/nonce are read from rec.
  if (src != nullptr) m_copydata(src, 0, tls->params.tls_hlen, rec);
  tls_record_layer hdr;
  memcpy(&hdr, rec, sizeof(hdr));
  int trailer_len = 0;
  uint8_t type = hdr.tls_type;
  int error = tls->sw.decrypt(tls, &hdr, src, rec, len, seqno, &trailer_len);
  if (error == 0 && tls->params.tls_vminor == TLS_MINOR_VER_THREE)
    error = tls13_find_record_type(tls, rec, len, &trailer_len, &type);
  if (error != 0) {
    counter_u64_add(st.failed_crypto, 1);
    // What the reader sees: EMSGSIZE stays, any other failure is EBADMSG.
    return error == EMSGSIZE ? EMSGSIZE : EBADMSG;
  }
  if (padded != nullptr) *padded = trailer_len > tls->params.tls_tlen;
  ktls_fill_tgr(tgr, hdr, type, len - tls->params.tls_hlen - trailer_len);
  return 0;
}

namespace {

// A record the NIC decrypted and verified whole, still in its mbufs
// (*chain): find its type and lengths from its header and its last bytes,
// and trim the header and the trailer off the chain, which becomes the
// plaintext (null for an empty record). FreeBSD's ktls_decrypt for
// KTLS_MBUF_CRYPTO_ST_DECRYPTED.
int ktls_rx_decrypted_chain(KtlsState& st, ktls_session* tls, mbuf** chain, int len,
                            tls_get_record* tgr, bool* padded) {
  const tls_session_params& p = tls->params;
  const bool tls13 = p.tls_vminor == TLS_MINOR_VER_THREE;
  const int hlen = p.tls_hlen;
  if (len < hlen + AES_GMAC_HASH_LEN + (tls13 ? 1 : 0)) return EMSGSIZE;
  tls_record_layer hdr{};
  m_copydata(*chain, 0, sizeof(hdr), &hdr);
  int trailer_len = AES_GMAC_HASH_LEN;
  uint8_t type = hdr.tls_type;
  if (tls13) {
    // The inner type is the last non-zero byte before the tag; padding
    // zeros run back from there, in whatever mbufs hold them.
    uint8_t tail[256];
    int end = len - AES_GMAC_HASH_LEN;
    for (;;) {
      const int n = std::min<int>(sizeof tail, end - hlen);
      if (n <= 0) {
        counter_u64_add(st.failed_crypto, 1);
        return EBADMSG;
      }
      m_copydata(*chain, end - n, n, tail);
      int i = n;
      while (i > 0 && tail[i - 1] == 0) i--;
      if (i > 0) {
        type = tail[i - 1];
        trailer_len = len - (end - n + i - 1);
        break;
      }
      end -= n;
    }
  }
  if (ktls_rx_nic_record(st, tls, hdr, type, len, trailer_len, tgr, padded) == 0) {  // empty
    m_freem(std::exchange(*chain, nullptr));
    return 0;
  }
  m_adj(*chain, hlen);
  m_adj(*chain, -trailer_len);
  for (mbuf* m = *chain; m != nullptr; m = m->m_next) m->m_flags &= ~M_DECRYPTED;
  return 0;
}

int ktls_rx_record(KtlsState& st, ktls_session* tls, mbuf* src, uint8_t* rec,
                   int len, uint64_t seqno, int state,
                   const std::vector<int>& ranges, tls_get_record* tgr,
                   bool* padded) {
  // Software decryption reads a record still in its mbufs (src) directly;
  // what a NIC decrypted, whole or in part, is worked on in rec.
  if (src != nullptr && state != KTLS_MBUF_CRYPTO_ST_ENCRYPTED) {
    m_copydata(src, 0, len, rec);
    src = nullptr;
  }
  // The header is read here only for the NIC paths; software decryption
  // reads it itself (from src when there is one).
  tls_record_layer hdr{};
  if (src == nullptr) memcpy(&hdr, rec, sizeof(hdr));
  const bool tls13 = tls->params.tls_vminor == TLS_MINOR_VER_THREE;
  if (state == KTLS_MBUF_CRYPTO_ST_DECRYPTED) {
    // The NIC decrypted and verified it: only the fixed-size trailer (and
    // for TLS 1.3 the inner type) remain to be found.
    int trailer_len = AES_GMAC_HASH_LEN;
    uint8_t type = hdr.tls_type;
    if (len < tls->params.tls_hlen + trailer_len + (tls13 ? 1 : 0))
      return EMSGSIZE;
    if (tls13 && tls13_find_record_type(tls, rec, len, &trailer_len, &type) != 0) {
      counter_u64_add(st.failed_crypto, 1);
      return EBADMSG;
    }
    ktls_rx_nic_record(st, tls, hdr, type, len, trailer_len, tgr, padded);
    return 0;
  }
  if (state == KTLS_MBUF_CRYPTO_ST_MIXED) {
    // Partly decrypted by the NIC: restore the ciphertext of those parts
    // (FreeBSD's ktls_ocf_recrypt, GCM only), then decrypt and verify the
    // whole record in software.
    counter_u64_add(st.rx.mixed_records, 1);
    int error = tls->sw.recrypt == nullptr
                    ? EOPNOTSUPP
                    : tls->sw.recrypt(tls, &hdr, rec, len, seqno,
                                      reinterpret_cast<const int(*)[2]>(ranges.data()),
                                      static_cast<int>(ranges.size() / 2));
    if (error != 0) {
      counter_u64_add(st.failed_crypto, 1);
      return error == EMSGSIZE ? EMSGSIZE : EBADMSG;
    }
  }
  int error = ktls_rx_decrypt_record_from(tls, src, rec, len, seqno, tgr, padded);
  if (error == 0) {
    counter_u64_add(st.rx.sw_records, 1);
    counter_u64_add(st.rx.sw_bytes, ntohs(tgr->tls_length));
  }
  return error;
}

// Prefetching. With many connections the worker's queue holds records
// framed long before it gets to them (a socket buffer's worth for each
// connection), and a record's mbuf, the page structures of its file pages
// and its reference count are no longer in any cache; loaded one after the
// other as the record is encrypted and sent, those misses cost the worker a
// tenth of its time at 1,024 connections. So it asks for the next record's
// while it encrypts the current one.
void prefetch_record_mbuf(const mbuf* m) {
  const char* p = reinterpret_cast<const char*>(m);
  const char* end = reinterpret_cast<const char*>(&m->m_epg_trail[MBUF_PEXT_TRAIL_LEN]);
  for (; p < end; p += 64) __builtin_prefetch(p, 1);
}

// The page structures of a record whose mbuf is (being) loaded, and the
// reference count TCP takes when it sends the record.
void prefetch_record_refs(const mbuf* m) {
  for (int i = 0; i < m->m_epg_npgs; i++) __builtin_prefetch(m->m_epg_pa[i]);
  __builtin_prefetch(m->m_ext.ext_cnt, 1);
}

// Nothing queued for the worker.
bool ktls_wq_idle(ktls_wq* wq) {
  MutexLock l(&wq->mu);
  return wq->m_head.empty() && wq->so_head.empty();
}

// FreeBSD's ktls_encrypt(): one batch, records linked through m_next,
// handed to TCP once, after its last record. sendfile's batches are half a
// send buffer (its low-water mark), so TCP and the peer wait while the
// worker encrypts one, and the worker while the sender, woken by the ACKs
// that follow, builds the next. With kern.ipc.tls.tx_ready_bytes set, the
// records encrypted so far go to TCP every that many bytes instead (as
// FreeBSD's asynchronous path readies each record as it completes); TCP
// sends nothing past the first record that is not ready, so what the
// worker still reads stays out of its hands. It does so only while the
// batch is the last one the worker has and nothing more is queued: with
// other batches waiting (other connections), TCP has their data to work
// on, and handing this one over in parts would only add bursts for netisr
// and the peer to wake for (measured in bench/README.md).
void ktls_encrypt(KtlsState& st, ktls_wq* wq, mbuf* top, bool last) {
  socket* so = top->m_epg_so;
  top->m_epg_so = nullptr;
  const ktls_socket_hooks& h = st.hooks;
  const int ready_bytes = st.tx_ready_bytes.load(std::memory_order_relaxed);
  // Parts while this is the last batch and nothing else is queued; once
  // something is, it stays queued until this batch is done (this worker is
  // the only one to take it), so the queue is not looked at again.
  bool in_parts = ready_bytes > 0 && last;
  int total_pages = top->m_epg_enc_cnt;
  int npages = 0;
  int ready_pages = 0;  // pages of the records already handed to TCP
  int pending_bytes = 0;
  int error = 0;
  // The mbufs sit in the socket buffer, not ready, so their m_next links
  // are stable; the last one's m_next may be written by a later append, so
  // it is never read.
  for (mbuf* m = top; m != nullptr;) {
    int nrdy = m->m_epg_nrdy;
    mbuf* n = npages + nrdy < total_pages ? m->m_next : nullptr;
    // One record ahead: the next one's page structures (its mbuf was asked
    // for a record ago) and the mbuf after it.
    if (n != nullptr) {
      prefetch_record_refs(n);
      if (npages + nrdy + n->m_epg_nrdy < total_pages) prefetch_record_mbuf(n->m_next);
    }
    pending_bytes += m->m_len;
    error = ktls_encrypt_record(st.k, m, &wq->state);
    if (error != 0) {
      counter_u64_add(st.failed_crypto, 1);
      break;
    }
    npages += nrdy;
    if (in_parts && pending_bytes >= ready_bytes && n != nullptr &&
        (in_parts = ktls_wq_idle(wq))) {
      if (h.pr_ready) h.pr_ready(so, top, npages - ready_pages);
      top = n;
      ready_pages = npages;
      pending_bytes = 0;
    }
    m = n;
  }
  if (error == 0) {
    if (h.pr_ready) h.pr_ready(so, top, npages - ready_pages);
  } else {
    // Never send plaintext: drop the connection (EIO) and free what is
    // left of the batch (what went to TCP before is ciphertext).
    if (h.tx_failed) h.tx_failed(so, top, total_pages - ready_pages, EIO);
  }
  if (h.sorele) h.sorele(so);
}

void ktls_decrypt(KtlsState& st, ktls_wq* wq, socket* so);

void ktls_work_thread(KtlsState* st, ktls_wq* wq) {
  wq->tid.store(gettid(), std::memory_order_release);
  if (st->bind_threads.load() != 0) {
    // bind_threads=1 (and 2, which falls back to 1 here: one NUMA domain)
    // pins the worker to its emulated CPU's host core.
    int error = kthread_bind_cpu(wq->cpu);
    if (error != 0)
      kprintf(st->k, "Unable to bind KTLS worker thread for CPU %d: error %d\n",
              wq->cpu, error);
  }
  std::vector<mbuf*> local;
  std::vector<socket*> local_so;
  for (;;) {
    {
      MutexLock l(&wq->mu);
      while (wq->m_head.empty() && wq->so_head.empty() && !wq->stop) {
        wq->running = false;
        wq->cv.Wait(&wq->mu);
        wq->running = true;
      }
      // Drain everything queued before stopping (halt).
      if (wq->m_head.empty() && wq->so_head.empty() && wq->stop) return;
      local.swap(wq->m_head);  // both vectors keep their capacity
      local_so.swap(wq->so_head);
    }
    // Batches leave the queue count when taken, so the count never lags
    // behind a completion the socket layer already saw.
    counter_u64_add(st->sw_tx_inqueue, -static_cast<int64_t>(local.size()));
    for (size_t i = 0; i < local.size(); i++) {
      if (i + 1 < local.size()) prefetch_record_mbuf(local[i + 1]);
      ktls_encrypt(*st, wq, local[i], i + 1 == local.size() && local_so.empty());
    }
    local.clear();
    counter_u64_add(st->sw_rx_inqueue, -static_cast<int64_t>(local_so.size()));
    for (socket* so : local_so) ktls_decrypt(*st, wq, so);
    local_so.clear();
  }
}

}  // namespace

int ktls_sysctl_init(kernel& k, KtlsState& st) {
  (void)k;
  sysctl_ctx_list& c = st.sysctl_ctx;
  int e = 0;
  auto chk = [&e](int r) {
    if (e == 0) e = r;
  };
  chk(c.add_node("kern.ipc.tls", "Kernel TLS offload"));
  chk(c.add_node("kern.ipc.tls.stats", "Kernel TLS offload stats"));
  chk(c.add_int("kern.ipc.tls.bind_threads", CTLFLAG_RDTUN, &st.bind_threads,
                "Bind crypto threads to cores (1) or cores and domains (2) at boot"));
  chk(c.add_uint("kern.ipc.tls.maxlen", CTLFLAG_RDTUN, &st.maxlen,
                 "Maximum TLS record size"));
  chk(c.add_proc(
      "kern.ipc.tls.stats.threads", CTLTYPE_INT | CTLFLAG_RD, "I",
      [&st](sysctl_req& req) {
        int v = st.number_threads.load();
        return req.newptr ? EPERM : req.out(&v, sizeof(v));
      },
      "Number of TLS threads in thread-pool"));
  chk(c.add_uint("kern.ipc.tls.ifnet_max_rexmit_pct", CTLFLAG_RWTUN,
                 &st.ifnet_max_rexmit_pct,
                 "Max percent bytes retransmitted before ifnet TLS is disabled"));
  chk(c.add_bool("kern.ipc.tls.enable", CTLFLAG_RWTUN, &st.enable,
                 "Enable support for kernel TLS offload"));
  chk(c.add_bool("kern.ipc.tls.cbc_enable", CTLFLAG_RWTUN, &st.cbc_enable,
                 "Enable support of AES-CBC crypto for kernel TLS"));
  chk(c.add_bool("kern.ipc.tls.sw_buffer_cache", CTLFLAG_RDTUN,
                 &st.sw_buffer_cache,
                 "Enable caching of output buffers for SW encryption"));
  chk(c.add_int("kern.ipc.tls.max_reclaim", CTLFLAG_RWTUN, &st.max_reclaim,
                "Max number of 16k buffers to reclaim in thread context"));
  chk(c.add_int("kern.ipc.tls.tx_ready_bytes", CTLFLAG_RWTUN, &st.tx_ready_bytes,
                "Bytes of a SW TX batch handed to TCP at a time as they are encrypted, "
                "while nothing else is queued (0: the whole batch at its end, as FreeBSD)"));
  chk(c.add_counter("kern.ipc.tls.tasks_active", CTLFLAG_RD, &st.tasks_active,
                    "Number of active tasks"));

  struct {
    const char* name;
    counter_u64* c;
    const char* descr;
  } stats[] = {
      {"sw_tx_pending", &st.sw_tx_pending,
       "Number of TLS 1.0 records waiting for earlier TLS records"},
      {"sw_tx_inqueue", &st.sw_tx_inqueue,
       "Number of TLS records in queue to tasks for SW encryption"},
      {"sw_rx_inqueue", &st.sw_rx_inqueue,
       "Number of TLS sockets in queue to tasks for SW decryption"},
      {"offload_total", &st.offload_total,
       "Total successful TLS setups (parameters set)"},
      {"enable_calls", &st.enable_calls, "Total number of TLS enable calls made"},
      {"active", &st.active, "Total Active TLS sessions"},
      {"corrupted_records", &st.corrupted_records,
       "Total corrupted TLS records received"},
      {"failed_crypto", &st.failed_crypto, "Total TLS crypto failures"},
      {"switch_to_ifnet", &st.switch_to_ifnet,
       "TLS sessions switched from SW to ifnet"},
      {"switch_to_sw", &st.switch_to_sw, "TLS sessions switched from ifnet to SW"},
      {"switch_failed", &st.switch_failed,
       "TLS sessions unable to switch between SW and ifnet"},
      {"ifnet_disable_failed", &st.ifnet_disable_failed,
       "TLS sessions unable to switch to SW from ifnet"},
      {"ifnet_disable_ok", &st.ifnet_disable_ok,
       "TLS sessions able to switch to SW from ifnet"},
      {"destroy_task", &st.destroy_task,
       "Number of times ktls session was destroyed via taskqueue"},
      // uktls extensions: who encrypted what was transmitted.
      {"sw_tx_bytes", &st.sw_tx_bytes,
       "Plaintext bytes encrypted by KTLS worker threads"},
      {"ifnet_tx_bytes", &st.ifnet_tx_bytes,
       "Plaintext bytes encrypted inline by NICs, retransmissions included"},
      {"ifnet_tx_rebuilds", &st.ifnet_tx_rebuilds,
       "Segments for which a NIC rebuilt its cipher state from the record start"},
      {"ifnet_tx_rebuild_bytes", &st.ifnet_tx_rebuild_bytes,
       "Record bytes NICs re-read to rebuild their cipher state"},
  };
  for (const auto& s : stats)
    chk(c.add_counter(std::string("kern.ipc.tls.stats.") + s.name, CTLFLAG_RD,
                      s.c, s.descr));

  // ktls_ocf.c
  chk(c.add_node("kern.ipc.tls.stats.ocf", "Kernel TLS offload via OCF stats"));
  struct {
    const char* name;
    counter_u64* c;
    const char* descr;
  } ocf[] = {
      {"tls10_cbc_encrypts", &st.ocf.tls10_cbc_encrypts,
       "Total number of OCF TLS 1.0 CBC encryption operations"},
      {"tls11_cbc_decrypts", &st.ocf.tls11_cbc_decrypts,
       "Total number of OCF TLS 1.1/1.2 CBC decryption operations"},
      {"tls11_cbc_encrypts", &st.ocf.tls11_cbc_encrypts,
       "Total number of OCF TLS 1.1/1.2 CBC encryption operations"},
      {"tls12_gcm_decrypts", &st.ocf.tls12_gcm_decrypts,
       "Total number of OCF TLS 1.2 GCM decryption operations"},
      {"tls12_gcm_encrypts", &st.ocf.tls12_gcm_encrypts,
       "Total number of OCF TLS 1.2 GCM encryption operations"},
      {"tls12_gcm_recrypts", &st.ocf.tls12_gcm_recrypts,
       "Total number of OCF TLS 1.2 GCM re-encryption operations"},
      {"tls12_chacha20_decrypts", &st.ocf.tls12_chacha20_decrypts,
       "Total number of OCF TLS 1.2 Chacha20-Poly1305 decryption operations"},
      {"tls12_chacha20_encrypts", &st.ocf.tls12_chacha20_encrypts,
       "Total number of OCF TLS 1.2 Chacha20-Poly1305 encryption operations"},
      {"tls13_gcm_decrypts", &st.ocf.tls13_gcm_decrypts,
       "Total number of OCF TLS 1.3 GCM decryption operations"},
      {"tls13_gcm_encrypts", &st.ocf.tls13_gcm_encrypts,
       "Total number of OCF TLS 1.3 GCM encryption operations"},
      {"tls13_gcm_recrypts", &st.ocf.tls13_gcm_recrypts,
       "Total number of OCF TLS 1.3 GCM re-encryption operations"},
      {"tls13_chacha20_decrypts", &st.ocf.tls13_chacha20_decrypts,
       "Total number of OCF TLS 1.3 Chacha20-Poly1305 decryption operations"},
      {"tls13_chacha20_encrypts", &st.ocf.tls13_chacha20_encrypts,
       "Total number of OCF TLS 1.3 Chacha20-Poly1305 encryption operations"},
      // uktls extension: the RFC 8998 SM4 suites.
      {"tls13_sm4_decrypts", &st.ocf.tls13_sm4_decrypts,
       "Total number of OCF TLS 1.3 SM4-GCM/SM4-CCM decryption operations"},
      {"tls13_sm4_encrypts", &st.ocf.tls13_sm4_encrypts,
       "Total number of OCF TLS 1.3 SM4-GCM/SM4-CCM encryption operations"},
      {"inplace", &st.ocf.inplace,
       "Total number of OCF in-place operations"},
      {"separate_output", &st.ocf.separate_output,
       "Total number of OCF operations with a separate output buffer"},
      {"retries", &st.ocf.retries,
       "Number of OCF encryption operation retries"},
  };
  for (const auto& s : ocf)
    chk(c.add_counter(std::string("kern.ipc.tls.stats.ocf.") + s.name,
                      CTLFLAG_RD, s.c, s.descr));

  chk(c.add_node("kern.ipc.tls.sw", "Software TLS session stats"));
  chk(c.add_node("kern.ipc.tls.ifnet", "Hardware (ifnet) TLS session stats"));
  chk(c.add_node("kern.ipc.tls.toe", "TOE TLS session stats"));
  struct {
    const char* mode;
    const char* label;
    KtlsState::ModeGauges* g;
  } modes[] = {{"sw", "software", &st.sw},
               {"ifnet", "ifnet", &st.ifnet},
               {"toe", "TOE", &st.toe}};
  for (const auto& m : modes) {
    std::string base = std::string("kern.ipc.tls.") + m.mode + ".";
    std::string label = m.label;
    chk(c.add_counter(base + "cbc", CTLFLAG_RD, &m.g->cbc,
                      "Active number of " + label + " TLS sessions using AES-CBC"));
    chk(c.add_counter(base + "gcm", CTLFLAG_RD, &m.g->gcm,
                      "Active number of " + label + " TLS sessions using AES-GCM"));
    chk(c.add_counter(
        base + "chacha20", CTLFLAG_RD, &m.g->chacha20,
        "Active number of " + label + " TLS sessions using Chacha20-Poly1305"));
    // uktls extension: RFC 8998 SM4-GCM / SM4-CCM sessions.
    chk(c.add_counter(base + "sm4", CTLFLAG_RD, &m.g->sm4,
                      "Active number of " + label +
                          " TLS sessions using SM4-GCM or SM4-CCM"));
    // uktls extensions, Linux personality only.
    chk(c.add_counter(base + "ccm", CTLFLAG_RD, &m.g->ccm,
                      "Active number of " + label +
                          " TLS sessions using AES-CCM"));
    chk(c.add_counter(base + "aria", CTLFLAG_RD, &m.g->aria,
                      "Active number of " + label +
                          " TLS sessions using ARIA-GCM"));
  }
  chk(c.add_counter("kern.ipc.tls.ifnet.reset", CTLFLAG_RD, &st.ifnet_reset,
                    "TLS sessions updated to a new ifnet send tag"));
  chk(c.add_counter("kern.ipc.tls.ifnet.reset_dropped", CTLFLAG_RD,
                    &st.ifnet_reset_dropped,
                    "TLS sessions dropped after failing to update ifnet send tag"));
  chk(c.add_counter("kern.ipc.tls.ifnet.reset_failed", CTLFLAG_RD,
                    &st.ifnet_reset_failed,
                    "TLS sessions that failed to allocate a new ifnet send tag"));
  // uktls extensions: receive accounting (see KtlsState::rx).
  struct {
    const char* name;
    counter_u64* c;
    const char* descr;
  } rx[] = {
      {"stats.rx_ifnet_records", &st.rx.ifnet_records,
       "TLS records received already decrypted by the NIC"},
      {"stats.rx_ifnet_bytes", &st.rx.ifnet_bytes,
       "Plaintext bytes of TLS records decrypted by the NIC"},
      {"stats.rx_sw_records", &st.rx.sw_records,
       "TLS records decrypted by KTLS worker threads"},
      {"stats.rx_sw_bytes", &st.rx.sw_bytes,
       "Plaintext bytes of TLS records decrypted by KTLS worker threads"},
      {"stats.rx_mixed_records", &st.rx.mixed_records,
       "TLS records received partly decrypted by the NIC (re-encrypted)"},
      {"ifnet.rx_sessions", &st.rx.ifnet_sessions,
       "Active receive TLS sessions decrypted by an ifnet"},
      {"ifnet.rx_resync", &st.rx.resync,
       "Resynchronisations of ifnet TLS receive (record positions sent)"},
      {"ifnet.rx_resumed", &st.rx.resumed,
       "Times ifnet TLS receive resumed decrypting whole records"},
      {"ifnet.rx_tag_failed", &st.rx.tag_failed,
       "Receive TLS sessions that failed to allocate an ifnet tag"},
      {"ifnet.rx_fallback_sw", &st.rx.fallback_sw,
       "Receive TLS sessions moved from ifnet to software"},
  };
  for (const auto& s : rx)
    chk(c.add_counter(std::string("kern.ipc.tls.") + s.name, CTLFLAG_RD, s.c,
                      s.descr));
  chk(c.add_uint("kern.ipc.tls.ifnet.permitted", CTLFLAG_RWTUN,
                 &st.ifnet_permitted,
                 "Whether to permit hardware (ifnet) TLS sessions"));
  return e;
}

static int ktls_sysinit(kernel& k) {
  k.ktls.reset(new KtlsState(k));
  k.ktls->hooks.pr_ready = so_pr_ready;
  k.ktls->hooks.tx_failed = so_tx_failed;
  k.ktls->hooks.sorele = so_rele;
  int error = ktls_sysctl_init(k, *k.ktls);
  if (error != 0) k.ktls.reset();  // a failed SYSINIT leaves nothing behind
  return error;
}

// Halt: workers finish what is queued (which may free the last socket and
// session references) and are joined while k.ktls is still there.
static void ktls_sysuninit(kernel& k) {
  ktls_stop_kthreads(*k.ktls);
  k.ktls.reset();
}

// Sessions live in socket buffers, and sockets outlast their descriptors
// (FIN, TIME_WAIT) until the network stack is torn down at halt; so KTLS
// comes up right after OCF and before the network, and goes down after it.
// (FreeBSD never tears KTLS down.)
UK_SYSINIT(ktls, SI_SUB_CRYPTO, SI_ORDER_MIDDLE, ktls_sysinit, ktls_sysuninit);

// The queue of tag resets and ifnet disables: its tasks lock pcbs and may
// drop connections, so it is drained after the NICs go (SI_SUB_DRIVERS)
// and before the network stack does.
static int ktls_tq_sysinit(kernel& k) {
  taskqueue* tq = nullptr;
  int error = taskqueue_create(k, "ktls_tasks", 1, &tq);
  if (error != 0) return error;
  MutexLock l(&k.ktls->tq_mu);
  k.ktls->tq = tq;
  return 0;
}

static void ktls_tq_sysuninit(kernel& k) {
  taskqueue* tq;
  {
    MutexLock l(&k.ktls->tq_mu);
    tq = std::exchange(k.ktls->tq, nullptr);
  }
  if (tq != nullptr) taskqueue_free(tq);
}

UK_SYSINIT(ktls_tasks, SI_SUB_KTLS, SI_ORDER_FIRST, ktls_tq_sysinit,
           ktls_tq_sysuninit);

}  // namespace uk
