// The simulated NIC's TCP offload engine. See nic_toe.h for the model and
// README.md for the FreeBSD counterparts (t4_tom, tcp_offload.c,
// ktls_try_toe).
#include "sys/dev/nic_sim/nic_toe.h"

#include <arpa/inet.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/core_names.h>
#include <openssl/params.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "sys/dev/nic_sim/nic_gcm.h"
#include "sys/dev/nic_sim/nic_sim.h"
#include "sys/dev/nic_sim/nic_sim_csum.h"
#include "sys/kern/kern_kthread.h"
#include "sys/kern/kernel.h"
#include "sys/kern/vm_page.h"
#include "sys/net/if_var.h"
#include "sys/netinet/ip.h"
#include "sys/netinet/ip_var.h"
#include "sys/netinet/tcp_var.h"
#include "sys/opencrypto/cryptodev.h"
#include "sys/sys/sockbuf.h"
#include "sys/sys/socketvar.h"

namespace uk {

// Per-connection state (FreeBSD's struct toepcb).
struct toepcb final : std::enable_shared_from_this<toepcb> {
  RefPtr<inpcb> inp;  // released on the engine thread after detach
  inpcb_key key{};
  uint32_t nexthop = 0;  // network order (FreeBSD: the l2t entry)
  // Guarded by NicToe::mu_.
  bool out_pending = false;
  bool timer_pending = false;
  bool queued = false;
  // Guarded by inp_lock.
  ktls_session* tx_tls = nullptr;  // holds a reference
  uint8_t cbc_iv[16] = {};         // TLS 1.0 CBC: the chained IV
  // AES-GCM TX: the key of session gcm_key_of, expanded once (engine
  // thread only).
  std::unique_ptr<NicGcmKey> gcm_key;
  const ktls_session* gcm_key_of = nullptr;
  bool rx_tls = false;
};

namespace {

constexpr size_t kInqMax = 8192;

void be64enc(uint8_t* p, uint64_t v) {
  for (int i = 7; i >= 0; i--) {
    p[i] = static_cast<uint8_t>(v);
    v >>= 8;
  }
}

const EVP_CIPHER* cbc_cipher(int keylen) {
  return keylen == 32 ? EVP_aes_256_cbc() : EVP_aes_128_cbc();
}
const EVP_MD* mac_md(int auth) {
  switch (auth) {
    case CRYPTO_SHA1_HMAC:
      return EVP_sha1();
    case CRYPTO_SHA2_256_HMAC:
      return EVP_sha256();
    case CRYPTO_SHA2_384_HMAC:
      return EVP_sha384();
  }
  return nullptr;
}

// AES-CBC without padding over len bytes (a block multiple) in place.
bool cbc(bool enc, const tls_session_params& p, const uint8_t* iv, uint8_t* data,
         int len) {
  EVP_CIPHER_CTX* c = EVP_CIPHER_CTX_new();
  if (c == nullptr) return false;
  int outl = 0;
  bool ok = EVP_CipherInit_ex(c, cbc_cipher(p.cipher_key_len), nullptr,
                              p.cipher_key, iv, enc ? 1 : 0) == 1 &&
            EVP_CIPHER_CTX_set_padding(c, 0) == 1 &&
            (len == 0 || EVP_CipherUpdate(c, data, &outl, data, len) == 1) &&
            EVP_CipherFinal_ex(c, data + len, &outl) == 1;
  EVP_CIPHER_CTX_free(c);
  return ok;
}

// The TLS 1.1/1.2 MAC-then-encrypt MAC: HMAC(seq || type || version ||
// length || payload).
bool tls_mac(const tls_session_params& p, uint64_t seqno, uint8_t type,
             uint8_t vmajor, uint8_t vminor, const uint8_t* data, int len,
             uint8_t* out) {
  const EVP_MD* md = mac_md(p.auth_algorithm);
  if (md == nullptr) return false;
  uint8_t ad[13];
  be64enc(ad, seqno);
  ad[8] = type;
  ad[9] = vmajor;
  ad[10] = vminor;
  ad[11] = static_cast<uint8_t>(len >> 8);
  ad[12] = static_cast<uint8_t>(len);
  // OpenSSL 3's EVP_MAC (the HMAC_CTX calls are deprecated there).
  EVP_MAC* mac = EVP_MAC_fetch(nullptr, "HMAC", nullptr);
  EVP_MAC_CTX* h = mac != nullptr ? EVP_MAC_CTX_new(mac) : nullptr;
  EVP_MAC_free(mac);
  if (h == nullptr) return false;
  OSSL_PARAM params[] = {
      OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST,
                                       const_cast<char*>(EVP_MD_get0_name(md)), 0),
      OSSL_PARAM_construct_end()};
  size_t outl = 0;
  bool ok = EVP_MAC_init(h, p.auth_key, p.auth_key_len, params) == 1 &&
            EVP_MAC_update(h, ad, sizeof ad) == 1 &&
            (len == 0 || EVP_MAC_update(h, data, len) == 1) &&
            EVP_MAC_final(h, out, &outl, EVP_MD_get_size(md)) == 1;
  EVP_MAC_CTX_free(h);
  return ok;
}

int mac_len(int auth) {
  const EVP_MD* md = mac_md(auth);
  return md ? EVP_MD_get_size(md) : 0;
}

// Plaintext into a chain of mapped mbufs (null for len 0).
void so_release(socket* so) { release_ref(static_cast<file*>(so)); }

}  // namespace

std::shared_ptr<NicToe> nic_toe_create(NicSim* nic) {
  auto t = std::make_shared<NicToe>(nic);
  return t;
}

NicToe::NicToe(NicSim* nic) : nic_(nic), k_(nic->k()) { register_sysctls(); }

NicToe::~NicToe() {
  // shutdown() ran (NicSim::shutdown) or the engine never started.
  std::thread td;
  {
    MutexLock l(&mu_);
    stop_ = true;
    cv_.SignalAll();
    td = std::move(td_);
  }
  if (td.joinable()) td.join();
  OPENSSL_cleanse(rx_key_bytes_, sizeof rx_key_bytes_);
}

void NicToe::register_sysctls() {
  sysctl_ = std::make_unique<sysctl_ctx_list>(k_);
  std::string p = "dev.nic_sim." + std::to_string(nic_->unit()) + ".toe";
  sysctl_ctx_list& c = *sysctl_;
  c.add_node(p, "TCP offload engine");
  struct {
    const char* name;
    counter_u64* c;
    const char* d;
  } ctrs[] = {
      {"conns", &st_.conns, "connections offloaded"},
      {"rx_frames", &st_.rx_frames, "frames taken from the NIC for offloaded connections"},
      {"rx_bytes", &st_.rx_bytes, "bytes of those frames"},
      {"rx_drops", &st_.rx_drops, "frames dropped: engine input queue full"},
      {"tx_frames", &st_.tx_frames, "segments transmitted by the engine"},
      {"tx_bytes", &st_.tx_bytes, "bytes of those segments (IP packets)"},
      {"tcp_input", &st_.tcp_input, "segments through TCP input on the engine"},
      {"tcp_output", &st_.tcp_output, "TCP output runs on the engine"},
      {"timers", &st_.timers, "TCP timer runs on the engine"},
      {"tls_tx_records", &st_.tls_tx_records, "TLS records encrypted by the engine"},
      {"tls_tx_bytes", &st_.tls_tx_bytes, "TLS payload bytes encrypted by the engine"},
      {"tls_rx_records", &st_.tls_rx_records, "TLS records decrypted by the engine"},
      {"tls_rx_bytes", &st_.tls_rx_bytes, "TLS payload bytes decrypted by the engine"},
      {"tls_rx_errors", &st_.tls_rx_errors, "TLS records the engine rejected"},
  };
  for (const auto& x : ctrs) c.add_counter(p + "." + x.name, CTLFLAG_RD, x.c, x.d);
  c.add_proc(p + ".active", CTLTYPE_INT | CTLFLAG_RD, "I",
             [this](sysctl_req& req) {
               int v = nconns_.load();
               return req.out(&v, sizeof v);
             },
             "connections offloaded now");
}

void NicToe::shutdown() ABSL_NO_THREAD_SAFETY_ANALYSIS {
  std::thread td;
  {
    MutexLock l(&mu_);
    if (shut_) return;
    shut_ = true;
    stop_ = true;
    cv_.SignalAll();
    td = std::move(td_);
  }
  if (td.joinable()) td.join();
  // Work the thread did not get to.
  std::deque<mbuf*> in;
  std::vector<socket*> rx;
  std::vector<std::shared_ptr<toepcb>> conns;
  {
    MutexLock l(&mu_);
    in.swap(inq_);
    rx.swap(rxq_);
    work_.clear();
    for (auto& [key, t] : conns_) conns.push_back(t);
  }
  for (mbuf* m : in) m_freem(m);
  for (socket* so : rx) {
    {
      MutexLock l(&so->so_rcv.sb_mtx);
      so->so_rcv.sb_flags &= ~SB_TLS_RX_RUNNING;
    }
    so_release(so);
  }
  // The device is gone: its connections die with it.
  for (auto& t : conns) {
    RefPtr<inpcb> inp;
    {
      MutexLock l(&mu_);
      inp = t->inp;
    }
    if (!inp) continue;
    inp->inp_lock.Lock();
    tcpcb* tp = intotcpcb(inp.get());
    if (tp != nullptr && tp->t_toe == t.get()) {
      if (tp->t_state != TCPS_CLOSED && !(inp->inp_flags.load() & INP_DROPPED))
        tcp_drop(tp, ECONNABORTED);
      if ((tp->t_flags & TF_TOE) && tp->t_toe == t.get()) tod_pcb_detach(tp);
    }
    inp_unlock(inp.get());
  }
  conns.clear();
  std::vector<RefPtr<inpcb>> dead;
  {
    MutexLock l(&mu_);
    dead.swap(graveyard_);
  }
  dead.clear();
  sysctl_.reset();
}

// ---- offload ----

int NicToe::attach(tcpcb* tp, uint32_t nexthop) ABSL_NO_THREAD_SAFETY_ANALYSIS {
  inpcb* inp = tp->t_inpcb;
  inp->inp_lock.AssertHeld();
  if (tp->t_flags & TF_TOE) return EALREADY;
  auto t = std::make_shared<toepcb>();
  t->inp = RefPtr<inpcb>(inp);
  t->key = inpcb_key{inp->inp_laddr.s_addr, inp->inp_faddr.s_addr,
                     inp->inp_lport, inp->inp_fport};
  t->nexthop = nexthop;
  {
    MutexLock l(&mu_);
    if (stop_) return ENETDOWN;
    if (!conns_.emplace(t->key, t).second) return EEXIST;
    if (!started_) {
      started_ = true;
      td_ = std::thread([this] { run(); });
      kthread_set_name(td_, nic_->name() + "_toe");
    }
  }
  nconns_.fetch_add(1);
  st_.conns.add(1);
  tp->t_flags |= TF_TOE;
  tp->tod = this;
  tp->t_toe = t.get();
  return 0;
}

int NicToe::tod_connect(tcpcb* tp, uint32_t nexthop) { return attach(tp, nexthop); }

int NicToe::tod_offload_socket(tcpcb* tp, uint32_t nexthop) {
  return attach(tp, nexthop);
}

void NicToe::tod_pcb_detach(tcpcb* tp) ABSL_NO_THREAD_SAFETY_ANALYSIS {
  tp->t_inpcb->inp_lock.AssertHeld();
  auto* t = static_cast<toepcb*>(tp->t_toe);
  tp->t_flags &= ~TF_TOE;
  tp->tod = nullptr;
  tp->t_toe = nullptr;
  if (t == nullptr) return;
  ktls_session* tx = std::exchange(t->tx_tls, nullptr);
  std::shared_ptr<toepcb> keep = t->shared_from_this();
  {
    MutexLock l(&mu_);
    auto it = conns_.find(t->key);
    if (it != conns_.end() && it->second.get() == t) {
      conns_.erase(it);
      nconns_.fetch_sub(1);
    }
    // The pcb reference goes on the engine thread: never drop what may be
    // the last one with its lock held.
    if (t->inp) graveyard_.push_back(std::move(t->inp));
    cv_.Signal();
  }
  ktls_free(tx);
}

// ---- receive: NIC RX thread -> engine thread ----

bool NicToe::toe_input(const uint8_t* frame, size_t len) {
  nic_pkt_info pi;
  if (!nic_pkt_parse(frame, len, &pi) || pi.proto != IPPROTO_TCP || pi.fragment)
    return false;
  const uint8_t* iph = frame + pi.l3off;
  const uint8_t* th = frame + pi.l4off;
  inpcb_key key;
  memcpy(&key.laddr, iph + 16, 4);  // our address is the destination
  memcpy(&key.faddr, iph + 12, 4);
  memcpy(&key.lport, th + 2, 2);
  memcpy(&key.fport, th + 0, 2);
  {
    MutexLock l(&mu_);
    if (stop_ || conns_.find(key) == conns_.end()) return false;
    st_.rx_frames.add(1);
    st_.rx_bytes.add(static_cast<int64_t>(len));
    if (inq_.size() >= kInqMax) {
      st_.rx_drops.add(1);  // consumed all the same: the host must not see it
      return true;
    }
  }
  mbuf* m = m_devget(k_, frame + pi.l3off, pi.ip_len);
  if (m == nullptr) {
    st_.rx_drops.add(1);
    return true;
  }
  // The NIC verified both checksums before offering the frame.
  m->m_pkthdr.csum_flags =
      CSUM_IP_CHECKED | CSUM_IP_VALID | CSUM_DATA_VALID | CSUM_PSEUDO_HDR;
  m->m_pkthdr.csum_data = 0xffff;
  m->m_pkthdr.rcvif = nic_->ifp();
  MutexLock l(&mu_);
  inq_.push_back(m);
  cv_.Signal();
  return true;
}

bool NicToe::rx_ready(socket* so) {
  MutexLock l(&mu_);
  if (stop_) return false;
  so->ref();  // released by the engine thread
  rxq_.push_back(so);
  cv_.Signal();
  return true;
}

// ---- the engine thread ----

void NicToe::run() ABSL_NO_THREAD_SAFETY_ANALYSIS {
  td_id_.store(std::this_thread::get_id());
  std::deque<mbuf*> in;
  std::vector<std::shared_ptr<toepcb>> work;
  std::vector<socket*> rx;
  std::vector<RefPtr<inpcb>> dead;
  struct Job {
    std::shared_ptr<toepcb> t;
    bool out, timer;
  };
  std::vector<Job> jobs;
  for (;;) {
    {
      MutexLock l(&mu_);
      while (inq_.empty() && work_.empty() && rxq_.empty() &&
             graveyard_.empty() && !stop_)
        cv_.Wait(&mu_);
      if (stop_) break;
      in.swap(inq_);
      work.swap(work_);
      rx.swap(rxq_);
      dead.swap(graveyard_);
      for (auto& t : work) {
        jobs.push_back(Job{t, t->out_pending, t->timer_pending});
        t->out_pending = t->timer_pending = t->queued = false;
      }
      work.clear();
    }
    dead.clear();
    // Segments first: TCP input on the engine, as the chip's firmware.
    for (mbuf* m : in) {
      int hlen = (mtod<const uint8_t*>(m)[0] & 0x0f) << 2;
      st_.tcp_input.add(1);
      tcp_input(k_, m, hlen);
    }
    in.clear();
    for (Job& j : jobs) {
      RefPtr<inpcb> inp;
      {
        MutexLock l(&mu_);
        inp = j.t->inp;
      }
      if (!inp) continue;
      inp->inp_lock.Lock();
      tcpcb* tp = intotcpcb(inp.get());
      auto mine = [&] {
        return tp != nullptr && (tp->t_flags & TF_TOE) && tp->t_toe == j.t.get() &&
               !(inp->inp_flags.load() & (INP_DROPPED | INP_FREED));
      };
      if (j.timer && mine()) {
        st_.timers.add(1);
        tcp_timer_expire(tp);
      }
      if (j.out && mine()) output_now(tp, j.t.get());
      inp_unlock(inp.get());
    }
    jobs.clear();
    for (socket* so : rx) {
      rx_decrypt(so);
      so_release(so);
    }
    rx.clear();
  }
  td_id_.store(std::thread::id());
}

int NicToe::tod_output(tcpcb* tp) ABSL_NO_THREAD_SAFETY_ANALYSIS {
  auto* t = static_cast<toepcb*>(tp->t_toe);
  if (on_engine()) return output_now(tp, t);
  MutexLock l(&mu_);
  if (stop_) return 0;  // the data waits; the connection is being dropped
  t->out_pending = true;
  if (!t->queued) {
    t->queued = true;
    work_.push_back(t->shared_from_this());
    cv_.Signal();
  }
  return 0;
}

int NicToe::tod_timer(tcpcb* tp) {
  auto* t = static_cast<toepcb*>(tp->t_toe);
  if (on_engine()) return EINPROGRESS;  // run them right here
  MutexLock l(&mu_);
  if (stop_) return ENETDOWN;
  t->timer_pending = true;
  if (!t->queued) {
    t->queued = true;
    work_.push_back(t->shared_from_this());
    cv_.Signal();
  }
  return 0;
}

int NicToe::output_now(tcpcb* tp, toepcb* t) ABSL_NO_THREAD_SAFETY_ANALYSIS {
  st_.tcp_output.add(1);
  if (t->tx_tls != nullptr && !tls_tx_prep(tp, t)) return EIO;
  return tcp_default_output(tp);
}

int NicToe::tod_send(tcpcb* tp, mbuf* m) {
  auto* t = static_cast<toepcb*>(tp->t_toe);
  // The chip writes the headers' last fields and both checksums itself.
  ip* iph = mtod<ip*>(m);
  iph->ip_v = IPVERSION;
  iph->ip_hl = sizeof(ip) >> 2;
  iph->ip_off = htons(IP_DF);
  iph->ip_id = htons(ip_id_.fetch_add(1, std::memory_order_relaxed));
  iph->ip_sum = 0;
  if (m->m_pkthdr.csum_flags & CSUM_DELAY_DATA) in_delayed_cksum(m);
  iph = mtod<ip*>(m);
  iph->ip_sum = in_cksum_buf(iph, sizeof(ip));
  m->m_pkthdr.csum_flags = 0;
  const int len = m->m_pkthdr.len;
  int error = nic_->output(MbufPtr(m), t->nexthop);
  if (error == 0) {
    st_.tx_frames.add(1);
    st_.tx_bytes.add(len);
  }
  return error;
}

// ---- TLS ----

int NicToe::tod_alloc_tls_session(tcpcb* tp, ktls_session* tls, int direction)
    ABSL_NO_THREAD_SAFETY_ANALYSIS {
  auto* t = static_cast<toepcb*>(tp->t_toe);
  const tls_session_params& p = tls->params;
  // The T6's suites: AES-GCM (TLS 1.2/1.3) and AES-CBC with HMAC.
  switch (p.cipher_algorithm) {
    case CRYPTO_AES_NIST_GCM_16:
      break;
    case CRYPTO_AES_CBC:
      if (mac_md(p.auth_algorithm) == nullptr) return EPROTONOSUPPORT;
      break;
    default:
      return EPROTONOSUPPORT;
  }
  if (p.cipher_key_len != 16 && p.cipher_key_len != 32) return EPROTONOSUPPORT;
  if (direction == KTLS_TX) {
    if (t->tx_tls != nullptr) return EALREADY;
    t->tx_tls = ktls_hold(tls);
    memcpy(t->cbc_iv, p.iv, sizeof t->cbc_iv);
  } else {
    if (p.cipher_algorithm == CRYPTO_AES_CBC && p.tls_vminor == TLS_MINOR_VER_ZERO)
      return EPROTONOSUPPORT;
    t->rx_tls = true;
  }
  tls->toe = shared_from_this();
  return 0;
}

bool NicToe::tls_tx_prep(tcpcb* tp, toepcb* t) ABSL_NO_THREAD_SAFETY_ANALYSIS {
  socket* so = tp->t_inpcb->inp_socket;
  if (so == nullptr) return true;
  sockbuf* sb = &so->so_snd;
  sb->sb_mtx.Lock();
  for (mbuf* m = sb->sb_mb; m != nullptr; m = m->m_next) {
    // TCP never sends at or after a not-ready mbuf; nor need we encrypt.
    if (m->m_flags & M_NOTAVAIL) break;
    if (!(m->m_flags & M_EXTPG) || m->m_epg_tls == nullptr ||
        m->m_epg_tls->mode != TCP_TLS_MODE_TOE)
      continue;
    if (encrypt_record(t, m) != 0) {
      // Never send plaintext: cut the connection as a crypto failure does.
      counter_u64_add(k_.ktls->failed_crypto, 1);
      sb->sb_mtx.Unlock();
      tcp_drop(tp, EIO);
      return false;
    }
  }
  sb->sb_mtx.Unlock();
  return true;
}

// Encrypts one framed record (FreeBSD's chip does this from the work
// request carrying the record's header, sequence number and type). The
// ciphertext goes back in place for private pages; file pages (sendfile)
// are only read, and the ciphertext goes to new pages.
int NicToe::encrypt_record(toepcb* t, mbuf* m) {
  ktls_session* tls = m->m_epg_tls;
  if (m->m_epg_off != 0) return EINVAL;  // sent before encryption: cannot be
  const int npgs = m->m_epg_npgs;
  const bool anon = m->m_epg_flags & EPG_FLAG_ANON;
  vm_page* out[MBUF_PEXT_MAX_PGS_UK];
  if (anon) {
    std::copy(m->m_epg_pa, m->m_epg_pa + npgs, out);
  } else if (npgs > 0 && (k_.vm == nullptr || !k_.vm->alloc_n(npgs, out))) {
    return ENOMEM;
  }
  const int plen = m->m_len - m->m_epg_hdrlen - m->m_epg_trllen;
  const bool ok = tls->params.cipher_algorithm == CRYPTO_AES_NIST_GCM_16
                      ? encrypt_gcm(t, m, out)
                      : encrypt_cbc(t, m, out, plen);
  if (!ok) {
    if (!anon)
      for (int i = 0; i < npgs; i++) PagePool::release(out[i]);
    return EIO;
  }
  if (!anon) {
    for (int i = 0; i < npgs; i++) {
      PagePool::release(m->m_epg_pa[i]);
      m->m_epg_pa[i] = out[i];
    }
    m->m_epg_flags |= EPG_FLAG_ANON;
  }
  st_.tls_tx_records.add(1);
  st_.tls_tx_bytes.add(plen);
  m->m_epg_tls = nullptr;  // an encrypted record carries no session
  ktls_free(tls);
  return 0;
}

// AES-GCM straight from the record's pages into out (the chip streams the
// DMA through its cipher): no staging copy.
bool NicToe::encrypt_gcm(toepcb* t, mbuf* m, vm_page* const* out) {
  const ktls_session* tls = m->m_epg_tls;
  const tls_session_params& p = tls->params;
  if (t->gcm_key_of != tls) {
    if (t->gcm_key == nullptr) t->gcm_key = std::make_unique<NicGcmKey>();
    if (!t->gcm_key->set(p.cipher_key, p.cipher_key_len)) return false;
    t->gcm_key_of = tls;
  }
  const NicGcmKey& key = *t->gcm_key;
  auto* hdr = reinterpret_cast<uint8_t*>(m->m_epg_hdr);
  auto* trail = reinterpret_cast<uint8_t*>(m->m_epg_trail);
  const uint64_t seq = m->m_epg_seqno;
  const int plen = m->m_len - m->m_epg_hdrlen - m->m_epg_trllen;
  const bool tls13 = p.tls_vminor == TLS_MINOR_VER_THREE;
  NicGcm g;
  g.init_tls(key, tls13, p.iv, seq, hdr, plen);
  int off = m->m_epg_1st_off;
  for (int i = 0; i < m->m_epg_npgs; i++, off = 0) {
    const int n = m_epg_pagelen(m, i, off);
    g.encrypt(key, PHYS_TO_DMAP(out[i]) + off, PHYS_TO_DMAP(m->m_epg_pa[i]) + off,
              static_cast<size_t>(n));
  }
  if (tls13) g.encrypt(key, trail, trail, 1);
  g.finalize(key, trail + (tls13 ? 1 : 0));
  return true;
}

// MAC-then-encrypt with the minimal padding ktls_frame sized, through a
// staging buffer (the MAC and the CBC chain want the record contiguous).
bool NicToe::encrypt_cbc(toepcb* t, mbuf* m, vm_page* const* out, int plen) {
  const tls_session_params& p = m->m_epg_tls->params;
  const int trllen = m->m_epg_trllen;
  buf_.resize(static_cast<size_t>(plen) + MBUF_PEXT_TRAIL_LEN + 32);
  uint8_t* b = buf_.data();
  int off = m->m_epg_1st_off, pos = 0;
  for (int i = 0; i < m->m_epg_npgs; i++, off = 0) {
    const int n = m_epg_pagelen(m, i, off);
    memcpy(b + pos, PHYS_TO_DMAP(m->m_epg_pa[i]) + off, n);
    pos += n;
  }
  auto* hdr = reinterpret_cast<uint8_t*>(m->m_epg_hdr);
  auto* trail = reinterpret_cast<uint8_t*>(m->m_epg_trail);
  const int ml = mac_len(p.auth_algorithm);
  const int pad = trllen - ml - 1;
  bool ok = pad >= 0 &&
            tls_mac(p, m->m_epg_seqno, hdr[0], hdr[1], hdr[2], b, plen, b + plen);
  if (ok) {
    memset(b + plen + ml, pad, pad + 1);
    const bool tls10 = p.tls_vminor == TLS_MINOR_VER_ZERO;
    ok = cbc(true, p, tls10 ? t->cbc_iv : hdr + 5, b, plen + trllen);
    if (ok && tls10) memcpy(t->cbc_iv, b + plen + trllen - 16, 16);
    memcpy(trail, b + plen, trllen);
  }
  if (ok) {
    off = m->m_epg_1st_off;
    pos = 0;
    for (int i = 0; i < m->m_epg_npgs; i++, off = 0) {
      const int n = m_epg_pagelen(m, i, off);
      memcpy(PHYS_TO_DMAP(out[i]) + off, b + pos, n);
      pos += n;
    }
  }
  OPENSSL_cleanse(b, plen);
  return ok;
}

// The expanded AES-GCM key for p's key (engine thread only): kept for the
// last key seen, so a connection's records expand it once.
const NicGcmKey* NicToe::rx_gcm_key(const tls_session_params& p) {
  const size_t n = static_cast<size_t>(p.cipher_key_len);
  if (n > sizeof rx_key_bytes_) return nullptr;
  if (rx_key_ == nullptr || rx_key_len_ != n || CRYPTO_memcmp(rx_key_bytes_, p.cipher_key, n) != 0) {
    if (rx_key_ == nullptr) rx_key_ = std::make_unique<NicGcmKey>();
    rx_key_len_ = 0;
    if (!rx_key_->set(p.cipher_key, p.cipher_key_len)) return nullptr;
    memcpy(rx_key_bytes_, p.cipher_key, n);
    rx_key_len_ = n;
  }
  return rx_key_.get();
}

// Decrypts one whole record rec[0..len) in place; fills *tgr as
// ktls_rx_decrypt_record does. EMSGSIZE / EBADMSG as ktls(4).
int NicToe::decrypt_record(ktls_session* tls, uint8_t* rec, int len,
                           uint64_t seqno, tls_get_record* tgr) {
  const tls_session_params& p = tls->params;
  uint8_t type = rec[0];
  int plen = 0;
  if (p.cipher_algorithm == CRYPTO_AES_NIST_GCM_16) {
    const NicGcmKey* key = rx_gcm_key(p);
    if (key == nullptr) return EBADMSG;
    NicGcm g;
    if (p.tls_vminor == TLS_MINOR_VER_THREE) {
      if (len - 5 < 17) return EMSGSIZE;
      int clen = len - 5 - 16;
      g.init_tls(*key, true, p.iv, seqno, rec, clen);
      g.decrypt(*key, rec + 5, rec + 5, static_cast<size_t>(clen));
      if (!g.verify(*key, rec + 5 + clen)) return EBADMSG;
      // The last non-zero byte is the real type; zeros after it padding.
      int i = 5 + clen;
      while (i > 5 && rec[i - 1] == 0) i--;
      if (i <= 5) return EBADMSG;
      type = rec[i - 1];
      plen = i - 1 - 5;
    } else {
      if (len < p.tls_hlen + 16) return EMSGSIZE;
      plen = len - p.tls_hlen - 16;
      g.init_tls(*key, false, p.iv, seqno, rec, plen);
      g.decrypt(*key, rec + p.tls_hlen, rec + p.tls_hlen, static_cast<size_t>(plen));
      if (!g.verify(*key, rec + p.tls_hlen + plen)) return EBADMSG;
    }
  } else {
    const int ml = mac_len(p.auth_algorithm);
    const int body = len - 5;
    if (body % 16 != 0 || body < 16 + (ml + 1 + 15) / 16 * 16) return EMSGSIZE;
    if (!cbc(false, p, rec + 5, rec + 21, body - 16)) return EBADMSG;
    const int pad = rec[len - 1];
    if (16 + ml + pad + 1 > body) return EBADMSG;
    for (int i = 0; i < pad; i++)
      if (rec[len - 2 - i] != pad) return EBADMSG;
    plen = body - 16 - ml - pad - 1;
    uint8_t mac[64];
    if (!tls_mac(p, seqno, rec[0], rec[1], rec[2], rec + 21, plen, mac) ||
        CRYPTO_memcmp(mac, rec + 21 + plen, ml) != 0)
      return EBADMSG;
  }
  memset(tgr, 0, sizeof(*tgr));
  tgr->tls_type = type;
  tgr->tls_vmajor = rec[1];
  tgr->tls_vminor = rec[2];
  tgr->tls_length = htons(static_cast<uint16_t>(plen));
  return 0;
}

// The engine's share of FreeBSD's ktls_decrypt(): whole records off
// sb_mtls, decrypted in the engine's memory, appended as TLS_GET_RECORD
// control plus plaintext ending in M_EOR. Errors reach the reader after the
// records before them; a bad header drops the connection.
void NicToe::rx_decrypt(socket* so) ABSL_NO_THREAD_SAFETY_ANALYSIS {
  KtlsState& kst = *k_.ktls;
  sockbuf* sb = &so->so_rcv;
  sb->sb_mtx.Lock();
  for (;;) {
    RefPtr<ktls_session> tls(sb->sb_tls_info);
    if (!tls || tls->mode != TCP_TLS_MODE_TOE) break;
    const int hlen = tls->params.tls_hlen;
    int tls_len = 0;
    int error = ktls_rx_next_record(sb, tls.get(), &tls_len);
    if (error == EWOULDBLOCK) break;
    if (error != 0) {
      sb->sb_flags &= ~SB_TLS_RX_RUNNING;
      sb->sb_mtx.Unlock();
      counter_u64_add(kst.corrupted_records, 1);
      st_.tls_rx_errors.add(1);
      if (inpcb* inp = so->so_pcb) {
        inp->inp_lock.Lock();
        if (!(inp->inp_flags.load() & INP_DROPPED)) tcp_drop(intotcpcb(inp), error);
        inp_unlock(inp);
      }
      return;
    }
    // Detach the record into the engine's memory.
    buf_.resize(std::max<size_t>(buf_.size(), static_cast<size_t>(tls_len)));
    uint8_t* rec = buf_.data();
    ktls_detach_record(sb, rec, tls_len);
    const uint64_t seqno = sb->sb_tls_seqno++;
    sb->sb_mtx.Unlock();

    tls_get_record tgr;
    error = decrypt_record(tls.get(), rec, tls_len, seqno, &tgr);
    mbuf* data = nullptr;
    if (error == 0) {
      const int plen = ntohs(tgr.tls_length);
      st_.tls_rx_records.add(1);
      st_.tls_rx_bytes.add(plen);
      // The engine writes the plaintext into host mbufs (its DMA, not a
      // kernel copy).
      data = ktls_plaintext_mbufs(k_, rec + hlen, plen);
    } else {
      st_.tls_rx_errors.add(1);
      counter_u64_add(kst.failed_crypto, 1);
    }
    OPENSSL_cleanse(rec, tls_len);

    // Returns with sb_mtx held.
    if (ktls_rx_deliver_record(so, tls_len, error, &tgr, false, data) ==
        KTLS_RX_FLUSHED)
      break;
  }
  sb->sb_flags &= ~SB_TLS_RX_RUNNING;
  if ((sb->sb_state & SBS_CANTRCVMORE) && sb->sb_tlscc > 0)
    so->so_error.store(EMSGSIZE);
  sorwakeup_locked(so);
}

}  // namespace uk
