// Linux kTLS socket options on the KTLS core (see linux_tls.h).
#include "sys/compat/linux/linux_tls.h"

#include <netinet/in.h>

#include <cerrno>
#include <cstring>
#include <memory>
#include <vector>

#include <sys/socket.h>

#include "sys/kern/kernel.h"
#include "sys/kern/uipc_ktls.h"
#include "sys/kern/uipc_socket.h"
#include "sys/netinet/in_pcb.h"
#include "sys/netinet/tcp_var.h"
#include "sys/opencrypto/cryptodev.h"
#include "sys/sys/ktls.h"
#include "sys/sys/lock.h"
#include "sys/sys/mbuf.h"
#include "sys/sys/uio.h"
#include "sys/sys/sockbuf.h"
#include "sys/sys/socketvar.h"

namespace uk {

UK_KERNEL_SLOT(LinuxTlsState)

namespace {

// One <linux/tls.h> cipher: ids 51..58; every struct is
// {u16 version, u16 cipher; iv[iv]; key[key]; salt[salt]; rec_seq[8]}.
struct linux_cipher {
  uint16_t id;
  uint8_t iv, key, salt;
  int crypto;      // the OCF algorithm behind it
  bool tls12_only;  // ARIA
};
constexpr linux_cipher kCiphers[] = {
    {51, 8, 16, 4, CRYPTO_AES_NIST_GCM_16, false},   // AES_GCM_128
    {52, 8, 32, 4, CRYPTO_AES_NIST_GCM_16, false},   // AES_GCM_256
    {53, 8, 16, 4, CRYPTO_AES_CCM_16, false},        // AES_CCM_128
    {54, 12, 32, 0, CRYPTO_CHACHA20_POLY1305, false},  // CHACHA20_POLY1305
    {55, 8, 16, 4, CRYPTO_SM4_GCM_16, false},        // SM4_GCM
    {56, 8, 16, 4, CRYPTO_SM4_CCM_16, false},        // SM4_CCM
    {57, 8, 16, 4, CRYPTO_ARIA_GCM_16, true},        // ARIA_GCM_128
    {58, 8, 32, 4, CRYPTO_ARIA_GCM_16, true},        // ARIA_GCM_256
};
constexpr size_t kRecSeq = 8;
constexpr size_t kMaxInfo = 4 + 12 + 32 + 4 + 8;

const linux_cipher* find_cipher(uint16_t id) {
  for (const linux_cipher& c : kCiphers)
    if (c.id == id) return &c;
  return nullptr;
}
size_t info_size(const linux_cipher& c) {
  return 4 + c.iv + c.key + c.salt + kRecSeq;
}

uint64_t be64(const uint8_t* p) {
  uint64_t v = 0;
  for (int i = 0; i < 8; i++) v = (v << 8) | p[i];
  return v;
}
void put_be64(uint8_t* p, uint64_t v) {
  for (int i = 7; i >= 0; i--, v >>= 8) p[i] = static_cast<uint8_t>(v);
}

// One direction as userland installed it (net/tls's tls_crypto_info_all).
struct linux_tls_dir {
  bool set = false;
  uint16_t version = 0, cipher = 0;
  size_t len = 0;
  uint8_t info[kMaxInfo] = {};
  uint64_t seq0 = 0;  // rec_seq at installation
};

// The per-socket ULP context (net/tls's struct tls_context).
struct linux_tls_ctx {
  explicit linux_tls_ctx(kernel& kern) : k(kern) {}
  ~linux_tls_ctx() {
    close();
    explicit_bzero(tx.info, sizeof tx.info);
    explicit_bzero(rx.info, sizeof rx.info);
  }
  // Leaves the TlsCurr* gauges once (at close or destruction).
  void close() ABSL_NO_THREAD_SAFETY_ANALYSIS {
    if (closed.exchange(true)) return;
    LinuxTlsState* st = k.linux_tls.get();
    if (st == nullptr) return;
    if (tx.set) counter_u64_add(st->TlsCurrTxSw, -1);
    if (rx.set) counter_u64_add(st->TlsCurrRxSw, -1);
  }
  std::atomic<bool> closed{false};
  kernel& k;
  // Serialises option changes (Linux: lock_sock).
  Mutex mu;
  linux_tls_dir tx ABSL_GUARDED_BY(mu);
  linux_tls_dir rx ABSL_GUARDED_BY(mu);
  int zerocopy_ro ABSL_GUARDED_BY(mu) = 0;
  int rx_no_pad ABSL_GUARDED_BY(mu) = 0;
  uint16_t tx_max_payload_len ABSL_GUARDED_BY(mu) = LINUX_TLS_MAX_PAYLOAD_SIZE;

  // Send side (Linux's open record, tls_rec): serialises senders; taken
  // before mu. pending holds the plaintext of a record MSG_MORE left open.
  Mutex send_mu ABSL_ACQUIRED_BEFORE(mu);
  std::vector<uint8_t> pending ABSL_GUARDED_BY(send_mu);
  std::atomic<bool> record_open{false};

  // Receive side (guarded by so_rcv.sb_mtx; plain fields since the
  // analysis cannot name that lock from here).
  int head_type = TLS_RLTYPE_APP;  // type of a partly read record at the head
  bool rx_bad = false;             // an authentication failure: sticky EBADMSG
};

linux_tls_ctx* ctx_of(socket* so) {
  MutexLock l(&so->so_lock);
  return static_cast<linux_tls_ctx*>(so->so_ulp.get());
}

int tcp_state(socket* so) ABSL_NO_THREAD_SAFETY_ANALYSIS {
  inpcb* inp = so->so_pcb;
  if (inp == nullptr) return TCPS_CLOSED;
  inp->inp_lock.Lock();
  tcpcb* tp = intotcpcb(inp);
  int st = tp != nullptr ? tp->t_state : TCPS_CLOSED;
  inp->inp_lock.Unlock();
  return st;
}

// tcp_set_ulp + tls_init: EEXIST, ENOENT (unknown name), ENOTCONN.
int set_ulp(socket* so, sockopt* sopt) {
  char name[16] = {};
  if (sopt->sopt_val == nullptr) return EFAULT;
  size_t n = std::min(sopt->sopt_valsize, sizeof name - 1);
  memcpy(name, sopt->sopt_val, n);
  int state = tcp_state(so);  // the pcb lock comes before so_lock
  MutexLock l(&so->so_lock);
  if (so->so_ulp != nullptr) return EEXIST;
  if (strcmp(name, "tls") != 0) return ENOENT;
  if (state != TCPS_ESTABLISHED) return ENOTCONN;
  so->so_ulp = std::make_shared<linux_tls_ctx>(so->so_k);
  return 0;
}

// Linux crypto_info -> the FreeBSD struct tls_enable the core validates.
// iv: the buffer the session's implicit IV is taken from.
void to_tls_enable(const linux_cipher& c, const uint8_t* info, uint16_t ver,
                   tls_enable* en, uint8_t* iv) {
  const uint8_t* civ = info + 4;
  const uint8_t* key = civ + c.iv;
  const uint8_t* salt = key + c.key;
  const uint8_t* rec_seq = salt + c.salt;
  *en = tls_enable{};
  en->cipher_key = key;
  en->cipher_key_len = c.key;
  en->cipher_algorithm = c.crypto;
  en->tls_vmajor = TLS_MAJOR_VER_ONE;
  en->tls_vminor =
      ver == LINUX_TLS_1_3_VERSION ? TLS_MINOR_VER_THREE : TLS_MINOR_VER_TWO;
  memcpy(en->rec_seq, rec_seq, kRecSeq);
  if (c.salt == 0) {
    // ChaCha20-Poly1305: the whole 12-byte IV.
    memcpy(iv, civ, c.iv);
    en->iv_len = c.iv;
  } else if (ver == LINUX_TLS_1_2_VERSION) {
    // TLS 1.2 AEAD: the salt is the implicit part; iv is the first explicit
    // nonce (handed to the core separately).
    memcpy(iv, salt, c.salt);
    en->iv_len = c.salt;
  } else {
    // TLS 1.3: nonce = (salt || iv) xor seq.
    memcpy(iv, salt, c.salt);
    memcpy(iv + c.salt, civ, c.iv);
    en->iv_len = c.salt + c.iv;
  }
  en->iv = iv;
}

// do_tls_setsockopt_conf().
int set_conf(socket* so, linux_tls_ctx* ctx, sockopt* sopt, bool tx) {
  LinuxTlsState& st = *so->so_k.linux_tls;
  if (sopt->sopt_val == nullptr || sopt->sopt_valsize < 4) return EINVAL;
  MutexLock l(&ctx->mu);
  linux_tls_dir& d = tx ? ctx->tx : ctx->rx;
  linux_tls_dir& other = tx ? ctx->rx : ctx->tx;
  counter_u64& rekey_err = tx ? st.TlsTxRekeyError : st.TlsRxRekeyError;
  bool rekey = false;
  if (d.set) {
    if (d.version != LINUX_TLS_1_3_VERSION) {
      counter_u64_add(rekey_err, 1);
      return EBUSY;
    }
    rekey = true;
  }
  uint8_t hdr[4];
  memcpy(hdr, sopt->sopt_val, 4);
  uint16_t version, cipher;
  memcpy(&version, hdr, 2);
  memcpy(&cipher, hdr + 2, 2);
  auto fail = [&](int e) {
    if (rekey) counter_u64_add(rekey_err, 1);
    return e;
  };
  if (version != LINUX_TLS_1_2_VERSION && version != LINUX_TLS_1_3_VERSION)
    return fail(EINVAL);
  if (other.set && (other.version != version || other.cipher != cipher))
    return fail(EINVAL);
  if (rekey && (d.version != version || d.cipher != cipher))
    return fail(EINVAL);
  const linux_cipher* c = find_cipher(cipher);
  if (c == nullptr) return fail(EINVAL);
  if (sopt->sopt_valsize != info_size(*c)) return fail(EINVAL);
  if (c->tls12_only && version != LINUX_TLS_1_2_VERSION) return fail(EINVAL);

  uint8_t info[kMaxInfo];
  memcpy(info, sopt->sopt_val, info_size(*c));
  tls_enable en;
  uint8_t iv[16];
  to_tls_enable(*c, info, version, &en, iv);
  int error = tx ? ktls_enable_tx_linux(so, &en, info + 4, rekey)
                 : ktls_enable_rx_linux(so, &en, rekey);
  explicit_bzero(iv, sizeof iv);
  if (error != 0) {
    explicit_bzero(info, sizeof info);
    return fail(error);
  }
  d.set = true;
  d.version = version;
  d.cipher = cipher;
  d.len = info_size(*c);
  memcpy(d.info, info, d.len);
  d.seq0 = be64(info + 4 + c->iv + c->key + c->salt);
  explicit_bzero(info, sizeof info);
  if (rekey) {
    counter_u64_add(tx ? st.TlsTxRekeyOk : st.TlsRxRekeyOk, 1);
  } else {
    counter_u64_add(tx ? st.TlsCurrTxSw : st.TlsCurrRxSw, 1);
    counter_u64_add(tx ? st.TlsTxSw : st.TlsRxSw, 1);
  }
  return 0;
}

// do_tls_getsockopt_conf(): the 4-byte header, or the whole struct with the
// live iv and rec_seq.
int get_conf(socket* so, linux_tls_ctx* ctx, sockopt* sopt, bool tx)
    ABSL_NO_THREAD_SAFETY_ANALYSIS {
  if (sopt->sopt_val == nullptr || sopt->sopt_valsize < 4) return EINVAL;
  MutexLock l(&ctx->mu);
  linux_tls_dir& d = tx ? ctx->tx : ctx->rx;
  if (!d.set) return EBUSY;
  if (sopt->sopt_valsize == 4) {
    memcpy(sopt->sopt_val, d.info, 4);
    sopt->sopt_valsize = 4;
    return 0;
  }
  if (sopt->sopt_valsize != d.len) return EINVAL;
  const linux_cipher& c = *find_cipher(d.cipher);
  uint8_t out[kMaxInfo];
  memcpy(out, d.info, d.len);
  sockbuf* sb = tx ? &so->so_snd : &so->so_rcv;
  uint64_t seq;
  sb->sb_mtx.Lock();
  seq = sb->sb_tls_seqno;
  sb->sb_mtx.Unlock();
  put_be64(out + 4 + c.iv + c.key + c.salt, seq);
  // Linux advances a TLS 1.2 AEAD's explicit nonce with rec_seq
  // (tls_advance_record_sn); the 1.3 and ChaCha IVs are fixed.
  if (d.version == LINUX_TLS_1_2_VERSION && c.salt != 0)
    put_be64(out + 4, be64(d.info + 4) + (seq - d.seq0));
  memcpy(sopt->sopt_val, out, d.len);
  sopt->sopt_valsize = d.len;
  explicit_bzero(out, sizeof out);
  return 0;
}

int tls_setsockopt(socket* so, linux_tls_ctx* ctx, sockopt* sopt) {
  switch (sopt->sopt_name) {
    case LINUX_TLS_TX:
    case LINUX_TLS_RX:
      return set_conf(so, ctx, sopt, sopt->sopt_name == LINUX_TLS_TX);
    case LINUX_TLS_TX_ZEROCOPY_RO: {
      unsigned v;
      if (sopt->sopt_val == nullptr || sopt->sopt_valsize != sizeof v)
        return EINVAL;
      memcpy(&v, sopt->sopt_val, sizeof v);
      if (v > 1) return EINVAL;
      MutexLock l(&ctx->mu);
      ctx->zerocopy_ro = static_cast<int>(v);
      return 0;
    }
    case LINUX_TLS_RX_EXPECT_NO_PAD: {
      MutexLock l(&ctx->mu);
      if (!ctx->rx.set || ctx->rx.version != LINUX_TLS_1_3_VERSION)
        return EINVAL;
      unsigned v;
      if (sopt->sopt_val == nullptr || sopt->sopt_valsize < sizeof v)
        return EINVAL;
      // Bytes beyond the int must be zero (check_zeroed_sockptr).
      const uint8_t* p = static_cast<const uint8_t*>(sopt->sopt_val);
      for (size_t i = sizeof v; i < sopt->sopt_valsize; i++)
        if (p[i] != 0) return EINVAL;
      memcpy(&v, p, sizeof v);
      if (v > 1) return EINVAL;
      ctx->rx_no_pad = static_cast<int>(v);
      return 0;
    }
    case LINUX_TLS_TX_MAX_PAYLOAD_LEN: {
      uint16_t v;
      if (sopt->sopt_val == nullptr || sopt->sopt_valsize != sizeof v)
        return EINVAL;
      memcpy(&v, sopt->sopt_val, sizeof v);
      MutexLock l(&ctx->mu);
      // Not while MSG_MORE holds a record open (the limit applies per record).
      if (ctx->record_open.load()) return EBUSY;
      int min = LINUX_TLS_MIN_RECORD_SIZE_LIM;
      if (ctx->tx.set && ctx->tx.version == LINUX_TLS_1_3_VERSION) min--;
      if (v < min || v > LINUX_TLS_MAX_PAYLOAD_SIZE) return EINVAL;
      ctx->tx_max_payload_len = v;
      return 0;
    }
    default:
      return ENOPROTOOPT;
  }
}

int tls_getsockopt(socket* so, linux_tls_ctx* ctx, sockopt* sopt) {
  switch (sopt->sopt_name) {
    case LINUX_TLS_TX:
    case LINUX_TLS_RX:
      return get_conf(so, ctx, sopt, sopt->sopt_name == LINUX_TLS_TX);
    case LINUX_TLS_TX_ZEROCOPY_RO: {
      if (sopt->sopt_val == nullptr || sopt->sopt_valsize != sizeof(int))
        return EINVAL;
      MutexLock l(&ctx->mu);
      memcpy(sopt->sopt_val, &ctx->zerocopy_ro, sizeof(int));
      return 0;
    }
    case LINUX_TLS_RX_EXPECT_NO_PAD: {
      MutexLock l(&ctx->mu);
      if (!ctx->rx.set || ctx->rx.version != LINUX_TLS_1_3_VERSION)
        return EINVAL;
      if (sopt->sopt_val == nullptr || sopt->sopt_valsize < sizeof(int))
        return EINVAL;
      memcpy(sopt->sopt_val, &ctx->rx_no_pad, sizeof(int));
      sopt->sopt_valsize = sizeof(int);
      return 0;
    }
    case LINUX_TLS_TX_MAX_PAYLOAD_LEN: {
      if (sopt->sopt_val == nullptr || sopt->sopt_valsize < sizeof(uint16_t))
        return EINVAL;
      MutexLock l(&ctx->mu);
      memcpy(sopt->sopt_val, &ctx->tx_max_payload_len, sizeof(uint16_t));
      sopt->sopt_valsize = sizeof(uint16_t);
      return 0;
    }
    default:
      return ENOPROTOOPT;
  }
}


// One record of `type` through the core's framing (sosend_generic): a
// (IPPROTO_TCP, TLS_SET_RECORD_TYPE) control message makes the call atomic,
// so len <= the record limit gives exactly one record.
// A data record goes without a record-type cmsg, so sosend_generic is not
// atomic: when the send buffer is smaller than the record (SO_SNDBUF), the
// record leaves in pieces as space frees, or partly with MSG_DONTWAIT, as
// Linux's tls_sw_sendmsg waits for memory. *sent: the bytes that went.
int emit_record(socket* so, const uint8_t* p, size_t len, uint8_t type,
                int flags, size_t* sent) ABSL_NO_THREAD_SAFETY_ANALYSIS {
  *sent = 0;
  // tls_advance_record_sn(): the record after sequence 2^64-1 cannot be
  // sent; Linux aborts with EBADMSG rather than reuse a nonce.
  so->so_snd.sb_mtx.Lock();
  bool wrap = so->so_snd.sb_tls_seqno == UINT64_MAX;
  so->so_snd.sb_mtx.Unlock();
  if (wrap) return EBADMSG;
  struct iovec iov;
  if (type == TLS_RLTYPE_APP) {
    uio u = uio_single(&iov, const_cast<uint8_t*>(p), len, UIO_WRITE);
    int error = sosend_generic(so, nullptr, &u, nullptr, nullptr,
                               flags & MSG_DONTWAIT);
    *sent = len - static_cast<size_t>(u.uio_resid);
    return error;
  }
  mbuf* ctl = m_get(so->so_k, M_WAITOK, MT_CONTROL);
  if (ctl == nullptr) return ENOBUFS;
  cmsghdr cm{};
  cm.cmsg_len = CMSG_LEN(1);
  cm.cmsg_level = IPPROTO_TCP;
  cm.cmsg_type = TLS_SET_RECORD_TYPE;
  memcpy(mtod(ctl), &cm, sizeof cm);
  mtod(ctl)[CMSG_LEN(0)] = static_cast<char>(type);
  ctl->m_len = CMSG_LEN(1);
  uio u = uio_single(&iov, const_cast<uint8_t*>(p), len, UIO_WRITE);
  int error = sosend_generic(so, nullptr, &u, nullptr, ctl, flags & MSG_DONTWAIT);
  *sent = len - static_cast<size_t>(u.uio_resid);
  return error;
}

// tls_process_cmsg(): exactly one (SOL_TLS, TLS_SET_RECORD_TYPE) of one
// byte; anything else, or none, is EINVAL.
int parse_cmsg(mbuf* control, int flags, int* type) {
  bool found = false;
  const char* base = mtod<const char*>(control);
  size_t off = 0, total = control->m_len;
  while (off + sizeof(cmsghdr) <= total) {
    cmsghdr cm;
    memcpy(&cm, base + off, sizeof cm);
    if (cm.cmsg_len < sizeof(cmsghdr) || cm.cmsg_len > total - off)
      return EINVAL;
    if (cm.cmsg_level == LINUX_SOL_TLS) {
      if (cm.cmsg_type != LINUX_TLS_SET_RECORD_TYPE) return EINVAL;
      if (cm.cmsg_len < CMSG_LEN(1)) return EINVAL;
      if (flags & MSG_MORE) return EINVAL;
      *type = static_cast<uint8_t>(base[off + CMSG_LEN(0)]);
      found = true;
    }
    off += CMSG_ALIGN(cm.cmsg_len);
  }
  return found ? 0 : EINVAL;
}

// tls_sw_sendmsg(): Linux's record rules on a socket with TLS_TX.
int linux_tls_sosend(socket* so, linux_tls_ctx* ctx, uio* uio, mbuf* control,
                     int flags) ABSL_NO_THREAD_SAFETY_ANALYSIS {
  MbufPtr ctlp(control);
  constexpr int kAllowed = MSG_MORE | MSG_DONTWAIT | MSG_NOSIGNAL | MSG_EOR |
                           MSG_CMSG_CLOEXEC;
  if (flags & ~kAllowed) return EOPNOTSUPP;
  if ((flags & MSG_EOR) && (flags & MSG_MORE)) return EINVAL;
  int type = -1;
  if (ctlp) {
    if (int e = parse_cmsg(ctlp.get(), flags, &type)) return e;
  }
  size_t maxrec;
  {
    MutexLock l(&ctx->mu);
    maxrec = ctx->tx_max_payload_len;
  }
  MutexLock sl(&ctx->send_mu);
  std::vector<uint8_t>& pend = ctx->pending;
  const size_t n = uio != nullptr ? static_cast<size_t>(uio->uio_resid) : 0;
  const size_t before = pend.size();
  int error = 0;
  if (type >= 0) {
    // A control record: push the open data record first, never merge.
    std::vector<uint8_t> body(n);
    if (n != 0 && (error = uiomove(body.data(), n, uio)) != 0) return error;
    while (!pend.empty()) {
      size_t sent = 0;
      error = emit_record(so, pend.data(), pend.size(), TLS_RLTYPE_APP, flags,
                          &sent);
      pend.erase(pend.begin(), pend.begin() + sent);
      if (error != 0) {
        ctx->record_open.store(!pend.empty());
        uio->uio_resid += n;
        return error;
      }
    }
    ctx->record_open.store(false);
    size_t done = 0;
    while (done < n) {
      size_t chunk = std::min(n - done, maxrec);
      size_t sent = 0;
      if ((error = emit_record(so, body.data() + done, chunk,
                               static_cast<uint8_t>(type), flags, &sent)) != 0)
        break;
      done += chunk;
    }
    if (uio != nullptr) uio->uio_resid += n - done;
    return done > 0 ? 0 : error;
  }
  // Data: append to the open record; send every full record, and the rest
  // unless MSG_MORE keeps it open.
  pend.resize(before + n);
  if (n != 0 && (error = uiomove(pend.data() + before, n, uio)) != 0) {
    pend.resize(before);
    return error;
  }
  size_t emitted = 0;
  const bool more = (flags & MSG_MORE) != 0;
  while (pend.size() - emitted >= maxrec ||
         (!more && pend.size() > emitted)) {
    size_t chunk = std::min(pend.size() - emitted, maxrec);
    size_t sent = 0;
    error = emit_record(so, pend.data() + emitted, chunk, TLS_RLTYPE_APP,
                        flags, &sent);
    emitted += sent;
    if (error != 0) break;
  }
  pend.erase(pend.begin(), pend.begin() + emitted);
  if (error != 0) {
    // The bytes of this call not yet sent are handed back (the caller sees
    // a short count, or the error when none went).
    size_t mine = std::min(n, pend.size());
    pend.resize(pend.size() - mine);
    uio->uio_resid += mine;
    ctx->record_open.store(!pend.empty());
    return mine < n ? 0 : error;
  }
  ctx->record_open.store(!pend.empty());
  return 0;
}


// A record in so_rcv as the KTLS worker appends it: a TLS_GET_RECORD
// control mbuf, then the plaintext (none for an empty record), the first
// mbuf linked to the next record by m_nextpkt. After a partial read the
// control mbuf is gone and the rest of the plaintext heads the buffer; its
// type is ctx->head_type.
struct rx_rec {
  mbuf* first;  // first mbuf of the record
  mbuf* data;   // first plaintext mbuf, or null
  int type;
  size_t len;
  bool padded = false;  // TLS 1.3 record that had zero padding
};

rx_rec rx_rec_at(linux_tls_ctx* ctx, mbuf* m) {
  rx_rec r{m, m, ctx->head_type, 0};
  if (m->m_type == MT_CONTROL) {
    tls_get_record tgr;
    memcpy(&tgr, mtod<const char*>(m) + CMSG_LEN(0), sizeof tgr);
    r.type = tgr.tls_type;
    r.padded = (m->m_flags & M_TLS_PADDED) != 0;
    r.data = m->m_next;
    while (r.data != nullptr && r.data->m_type == MT_CONTROL)
      r.data = r.data->m_next;
  }
  for (mbuf* d = r.data; d != nullptr; d = d->m_next) r.len += d->m_len;
  return r;
}

// Consumes n bytes of the record at the head (control mbuf included).
// no_pad: TLS_RX_EXPECT_NO_PAD is on (TLS 1.3). Linux decrypts such a
// record speculatively into the reader's buffer and again into a kernel
// buffer when it turns out to be padded or not data: TlsDecryptRetry, and
// TlsRxNoPadViolation for padded data. uktls decrypts once, in the KTLS
// worker, and counts the same events when the record is first consumed.
void rx_consume(sockbuf* sb, linux_tls_ctx* ctx, const rx_rec& r, size_t n,
                bool no_pad = false) ABSL_NO_THREAD_SAFETY_ANALYSIS {
  if (no_pad && sb->sb_mb == r.first && r.first != r.data &&
      (r.type != TLS_RLTYPE_APP || r.padded)) {
    LinuxTlsState& st = *ctx->k.linux_tls;
    counter_u64_add(st.TlsDecryptRetry, 1);
    if (r.type == TLS_RLTYPE_APP) counter_u64_add(st.TlsRxNoPadViolation, 1);
  }
  // This record's control mbufs only: an empty record is nothing but
  // control, and the next record (m_nextpkt) starts with its own.
  if (sb->sb_mb == r.first && r.first != r.data) {
    mbuf* next_rec = r.first->m_nextpkt;
    while (sb->sb_mb != nullptr && sb->sb_mb != r.data &&
           sb->sb_mb != next_rec && sb->sb_mb->m_type == MT_CONTROL)
      m_free(sb_pop_head(sb));
  }
  ctx->head_type = r.type;
  while (n > 0) {
    mbuf* m = sb->sb_mb;
    if (static_cast<size_t>(m->m_len) <= n) {
      n -= m->m_len;
      m_free(sb_pop_head(sb));
      continue;
    }
    sb->sb_ccc -= n;
    sb->sb_acc -= n;
    if (m->m_flags & M_EXTPG)
      m->m_epg_off += n;
    else
      m->m_data += n;
    m->m_len -= n;
    n = 0;
  }
}

int linux_tls_soreceive(socket* so, linux_tls_ctx* ctx, uio* uio,
                        mbuf** controlp, int* flagsp)
    ABSL_NO_THREAD_SAFETY_ANALYSIS {
  int flags = flagsp ? *flagsp : 0;
  if (controlp) *controlp = nullptr;
  if (flagsp) *flagsp = 0;
  if (flags & MSG_OOB) return EINVAL;
  LinuxTlsState& st = *so->so_k.linux_tls;
  sockbuf* sb = &so->so_rcv;
  const bool nonblock = (flags & MSG_DONTWAIT) || so_nonblocking(so);
  bool no_pad;
  {
    MutexLock l(&ctx->mu);
    no_pad = ctx->rx_no_pad != 0 && ctx->rx.version == LINUX_TLS_1_3_VERSION;
  }
  const bool peek = (flags & MSG_PEEK) != 0;
  if (nonblock) {
    if (!sb->sb_iolock.TryLock()) return EWOULDBLOCK;
  } else {
    sb->sb_iolock.Lock();
  }
  const size_t want = static_cast<size_t>(uio->uio_resid);
  size_t target = want;
  int error = 0;
  size_t copied = 0;
  int call_type = -1;
  bool consumed = false;
  mbuf* prev = nullptr;  // MSG_PEEK: the last record looked at
  sb->sb_mtx.Lock();
  if (!(flags & MSG_WAITALL))
    target = std::min<size_t>(want, std::max<unsigned>(sb->sb_lowat, 1));
  for (;;) {
    if (ctx->rx_bad) {
      if (copied == 0) error = EBADMSG;
      break;
    }
    mbuf* m = peek && prev != nullptr ? prev->m_nextpkt : sb->sb_mb;
    if (m == nullptr) {
      if (copied > 0 && (copied >= target || call_type != TLS_RLTYPE_APP))
        break;
      ktls_session* tls = sb->sb_tls_info;
      if (tls != nullptr && tls->rx_paused) {
        if (copied == 0) error = EKEYEXPIRED;
        break;
      }
      if (int e = so->so_error.load()) {
        if (copied > 0) break;
        so->so_error.store(0);
        if (e == EBADMSG) {
          ctx->rx_bad = true;
          counter_u64_add(st.TlsDecryptError, 1);
        }
        error = e;
        break;
      }
      if (sb->sb_state & SBS_CANTRCVMORE) {
        if (copied == 0 && (sb->sb_tlscc != 0 || sb->sb_tlsdcc != 0))
          error = EMSGSIZE;
        break;
      }
      if (nonblock) {
        if (copied == 0) error = EWOULDBLOCK;
        break;
      }
      if (sbwait(sb) != 0) {
        if (copied == 0) error = EWOULDBLOCK;
        break;
      }
      continue;
    }
    rx_rec r = rx_rec_at(ctx, m);
    if (call_type >= 0 && r.type != call_type) break;
    if (r.type != TLS_RLTYPE_APP) {
      if (copied > 0) break;
      if (controlp == nullptr) {
        error = EIO;  // the record stays queued
        break;
      }
    } else if (r.len == 0) {
      // Empty data records carry nothing: skip them. They still make this
      // a data call (tls_sw_recvmsg), so a control record after them ends
      // it with 0.
      call_type = TLS_RLTYPE_APP;
      if (peek) {
        prev = m;
      } else {
        rx_consume(sb, ctx, r, 0, no_pad);  // drops its control mbuf
        consumed = true;
      }
      continue;
    }
    call_type = r.type;
    size_t n = std::min<size_t>(r.len, uio->uio_resid);
    uint8_t first = 0;
    size_t left = n, off = 0;
    for (mbuf* d = r.data; d != nullptr && left > 0; d = d->m_next) {
      int len = static_cast<int>(std::min<size_t>(left, d->m_len));
      if (off == 0 && len > 0) first = mtod<const uint8_t*>(d)[0];
      if ((error = m_mbuftouio(uio, d, 0, len)) != 0) break;
      left -= len;
      off += len;
    }
    if (error != 0) break;
    copied += n;
    const bool whole = n == r.len;
    if (!peek) {
      rx_consume(sb, ctx, r, n, no_pad);
      consumed = true;
    }
    if (r.type != TLS_RLTYPE_APP) {
      // One control record per call; a TLS 1.3 KeyUpdate is counted.
      if (!peek && whole && r.type == TLS_RLTYPE_HANDSHAKE && n > 0 &&
          first == 24 && sb->sb_tls_info != nullptr &&
          sb->sb_tls_info->params.tls_vminor == TLS_MINOR_VER_THREE)
        counter_u64_add(st.TlsRxRekeyReceived, 1);
      break;
    }
    if (!whole || uio->uio_resid == 0) break;
    if (peek) prev = m;
  }
  sb->sb_mtx.Unlock();
  sb->sb_iolock.Unlock();
  if (consumed && (so->so_proto->pr_flags & PR_WANTRCVD))
    so->so_proto->pr_rcvd(so, flags);
  if (error == 0 && call_type >= 0 && controlp != nullptr) {
    uint8_t t = static_cast<uint8_t>(call_type);
    *controlp = sbcreatecontrol(so->so_k, &t, 1, LINUX_TLS_GET_RECORD_TYPE,
                                LINUX_SOL_TLS);
  }
  if (copied > 0) error = 0;
  return error;
}

}  // namespace

bool linux_tls_attached(socket* so) { return ctx_of(so) != nullptr; }

void linux_tls_soclose(socket* so) {
  linux_tls_ctx* ctx = ctx_of(so);
  if (ctx == nullptr) return;
  {
    MutexLock sl(&ctx->send_mu);
    ctx->pending.clear();
    ctx->record_open.store(false);
  }
  MutexLock l(&ctx->mu);
  ctx->close();
}

int linux_tls_sosend_hook(socket* so, uio* uio, mbuf* top, mbuf* control,
                          int flags, bool* handled) {
  *handled = false;
  linux_tls_ctx* ctx = ctx_of(so);
  if (ctx == nullptr || uio == nullptr || top != nullptr) return 0;
  {
    MutexLock l(&ctx->mu);
    if (!ctx->tx.set) return 0;
  }
  *handled = true;
  return linux_tls_sosend(so, ctx, uio, control, flags);
}

int linux_tls_soreceive_hook(socket* so, uio* uio, mbuf** controlp,
                             int* flagsp, bool* handled) {
  *handled = false;
  linux_tls_ctx* ctx = ctx_of(so);
  if (ctx == nullptr) return 0;
  {
    MutexLock l(&ctx->mu);
    if (!ctx->rx.set) return 0;
  }
  *handled = true;
  return linux_tls_soreceive(so, ctx, uio, controlp, flagsp);
}

int linux_tls_ctloutput(socket* so, sockopt* sopt) {
  if (sopt->sopt_level == IPPROTO_TCP) {
    // TCP_ULP: set attaches; get names the ULP ("" without one).
    if (sopt->sopt_dir == sockopt::SOPT_SET) return set_ulp(so, sopt);
    const char* name = linux_tls_attached(so) ? "tls" : "";
    size_t n = std::min(sopt->sopt_valsize, strlen(name) + 1);
    if (n > 0 && sopt->sopt_val == nullptr) return EFAULT;
    memcpy(sopt->sopt_val, name, n);
    sopt->sopt_valsize = n;
    return 0;
  }
  linux_tls_ctx* ctx = ctx_of(so);
  if (ctx == nullptr) return ENOPROTOOPT;
  return sopt->sopt_dir == sockopt::SOPT_SET ? tls_setsockopt(so, ctx, sopt)
                                             : tls_getsockopt(so, ctx, sopt);
}

namespace {

int linux_tls_sysinit(kernel& k) {
  auto st = std::make_unique<LinuxTlsState>(k);
  sysctl_ctx_list& c = st->sysctl_ctx;
  int e = 0;
  auto chk = [&e](int r) {
    if (e == 0) e = r;
  };
  chk(c.add_node("compat", "Compatibility code"));
  chk(c.add_node("compat.linux", "Linux personality"));
  chk(c.add_node("compat.linux.tls_stat",
                 "Linux /proc/net/tls_stat counters (uktls)"));
  struct {
    const char* name;
    counter_u64* c;
  } stats[] = {
      {"TlsCurrTxSw", &st->TlsCurrTxSw},
      {"TlsCurrRxSw", &st->TlsCurrRxSw},
      {"TlsCurrTxDevice", &st->TlsCurrTxDevice},
      {"TlsCurrRxDevice", &st->TlsCurrRxDevice},
      {"TlsTxSw", &st->TlsTxSw},
      {"TlsRxSw", &st->TlsRxSw},
      {"TlsTxDevice", &st->TlsTxDevice},
      {"TlsRxDevice", &st->TlsRxDevice},
      {"TlsDecryptError", &st->TlsDecryptError},
      {"TlsRxDeviceResync", &st->TlsRxDeviceResync},
      {"TlsDecryptRetry", &st->TlsDecryptRetry},
      {"TlsRxNoPadViolation", &st->TlsRxNoPadViolation},
      {"TlsRxRekeyOk", &st->TlsRxRekeyOk},
      {"TlsRxRekeyError", &st->TlsRxRekeyError},
      {"TlsTxRekeyOk", &st->TlsTxRekeyOk},
      {"TlsTxRekeyError", &st->TlsTxRekeyError},
      {"TlsRxRekeyReceived", &st->TlsRxRekeyReceived},
  };
  for (auto& s : stats)
    chk(c.add_counter(std::string("compat.linux.tls_stat.") + s.name,
                      CTLFLAG_RD, s.c, s.name));
  if (e != 0) return e;
  k.linux_tls.reset(st.release());
  return 0;
}

void linux_tls_sysuninit(kernel& k) { k.linux_tls.reset(); }

}  // namespace

// After KTLS (sessions need it) and before the network in boot order, so
// at halt the sockets (and their ULP contexts) are gone before this state.
UK_SYSINIT(linux_tls, SI_SUB_CRYPTO, SI_ORDER_ANY, linux_tls_sysinit,
           linux_tls_sysuninit);

}  // namespace uk
