// The simulated NIC's inline TLS transmit engine. See nic_tls_tx.h.
#include "sys/dev/nic_sim/nic_tls_tx.h"

#include <netinet/in.h>
#include <openssl/crypto.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <string>
#include <vector>

#include "sys/dev/nic_sim/nic_gcm.h"
#include "sys/dev/nic_sim/nic_sim_csum.h"
#include "sys/kern/kernel.h"
#include "sys/kern/uipc_ktls.h"
#include "sys/net/ethernet.h"

namespace uk {

namespace {

constexpr int kGcmTagLen = 16;

uint32_t rd32(const uint8_t* p) {
  return static_cast<uint32_t>(p[0]) << 24 | p[1] << 16 | p[2] << 8 | p[3];
}

// The NIC's key context for one connection, and its per-flow TX state.
struct nic_tls_tag final : nic_sim_tag {
  std::shared_ptr<NicTlsTxStats> st;
  kernel* k = nullptr;
  bool tls13 = false;
  uint8_t iv[12] = {};  // TLS 1.2: the 4-byte salt; TLS 1.3: the whole IV
  NicGcmKey key;  // expanded once
  NicGcm gcm;     // the record in progress

  // Cipher state (TX thread only): the record being worked on, identified
  // by its TLS sequence number and the TCP sequence number of its first
  // byte, the next record offset expected, and its tag once computed.
  bool valid = false;
  uint64_t rec_seqno = 0;
  uint32_t rec_tcp_seq = 0;
  int rec_pos = 0;
  bool tag_done = false;
  uint8_t tag[kGcmTagLen] = {};
  std::vector<uint8_t> scratch;  // ciphertext of rebuilt bytes (discarded)

  ~nic_tls_tag() { OPENSSL_cleanse(iv, sizeof iv); }
};

int tls_tag_modify(m_snd_tag* mst, if_snd_tag_modify_params* p) {
  if (mst->type() != IF_SND_TAG_TYPE_TLS_RATE_LIMIT) return EOPNOTSUPP;
  static_cast<nic_sim_tag*>(mst)->max_rate.store(p->tls_rate_limit.max_rate);
  return 0;
}

int tls_tag_query(m_snd_tag* mst, if_snd_tag_query_params* p) {
  if (mst->type() != IF_SND_TAG_TYPE_TLS_RATE_LIMIT) return EOPNOTSUPP;
  p->tls_rate_limit.max_rate = static_cast<nic_sim_tag*>(mst)->max_rate.load();
  p->tls_rate_limit.queue_level = 0;
  p->tls_rate_limit.flags = 0;
  return 0;
}

void tls_tag_free(m_snd_tag* mst) {
  auto* t = static_cast<nic_tls_tag*>(mst);
  t->st->tags.add(-1);
  delete t;
}

const if_snd_tag_sw kTlsSw = {tls_tag_modify, tls_tag_query, tls_tag_free,
                              IF_SND_TAG_TYPE_TLS};
const if_snd_tag_sw kTlsRateLimitSw = {tls_tag_modify, tls_tag_query,
                                       tls_tag_free,
                                       IF_SND_TAG_TYPE_TLS_RATE_LIMIT};

// A record as the NIC's DMA sees it through one M_EXTPG slice: the slice
// shares the record's header copy, pages and trailer, whatever part of the
// record it covers (m_epg_off, m_len).
struct RecordView {
  const mbuf* m;
  int hlen, plen, tlen;
  int total() const { return hlen + plen + tlen; }

  explicit RecordView(const mbuf* mb) : m(mb) {
    hlen = m->m_epg_hdrlen;
    tlen = m->m_epg_trllen;
    int n = m->m_epg_npgs;
    if (n == 0)
      plen = 0;
    else if (n == 1)
      plen = m->m_epg_last_len;
    else
      plen = (static_cast<int>(PAGE_SIZE) - m->m_epg_1st_off) +
             (n - 2) * static_cast<int>(PAGE_SIZE) + m->m_epg_last_len;
  }
  // Copies record bytes [off, off+len) of the payload pages into dst.
  void read_payload(int off, int len, uint8_t* dst) const {
    int po = off + m->m_epg_1st_off;
    while (len > 0) {
      int pg = po / static_cast<int>(PAGE_SIZE);
      int in = po % static_cast<int>(PAGE_SIZE);
      int n = std::min(len, static_cast<int>(PAGE_SIZE) - in);
      memcpy(dst, PHYS_TO_DMAP(m->m_epg_pa[pg]) + in, n);
      dst += n;
      po += n;
      len -= n;
    }
  }
};

// Starts the cipher for the record of view v (nonce and AAD as ktls_ocf).
bool record_init(nic_tls_tag* t, const RecordView& v) {
  // The header as the stack framed it (TLS 1.2's explicit nonce included).
  const auto* hdr = reinterpret_cast<const uint8_t*>(v.m->m_epg_hdr);
  t->gcm.init_tls(t->key, t->tls13, t->iv, v.m->m_epg_seqno, hdr, v.plen);
  t->valid = true;
  t->rec_seqno = v.m->m_epg_seqno;
  t->rec_pos = 0;
  t->tag_done = false;
  return true;
}

// Bytes of the record that are encrypted: the payload, plus the inner
// content type on TLS 1.3.
int enc_end(const nic_tls_tag* t, const RecordView& v) {
  return v.hlen + v.plen + (t->tls13 ? 1 : 0);
}

bool record_finish(nic_tls_tag* t) {
  t->gcm.finalize(t->key, t->tag);
  t->tag_done = true;
  t->st->records.add(1);
  return true;
}

// Encrypts [from, to) of the record in place at dst. dst holds the
// plaintext of those bytes (for the 1.3 type byte too, from the trailer).
bool record_encrypt(nic_tls_tag* t, const RecordView& v, int from, int to,
                    uint8_t* dst) {
  const int ee = enc_end(t, v);
  int a = std::max(from, static_cast<int>(v.hlen));
  int b = std::min(to, ee);
  if (a < b) t->gcm.encrypt(t->key, dst + (a - from), dst + (a - from), static_cast<size_t>(b - a));
  if (to >= ee && !t->tag_done && !record_finish(t)) return false;
  int ta = std::max(from, ee), tb = std::min(to, ee + kGcmTagLen);
  if (ta < tb) memcpy(dst + (ta - from), t->tag + (ta - ee), tb - ta);
  return true;
}

// Brings the cipher state to record offset pos by re-reading the record's
// preceding bytes (the rebuild). Returns the bytes re-read, or -1.
int record_rebuild(nic_tls_tag* t, const RecordView& v, int pos) {
  if (!record_init(t, v)) return -1;
  const int ee = enc_end(t, v);
  int upto = std::min(pos, ee);
  int n = upto - v.hlen;
  if (n <= 0) {
    t->rec_pos = pos;
    return 0;
  }
  t->scratch.resize(n);
  // Payload from the pages; on TLS 1.3 the type byte from the trailer.
  int from_pages = std::min(n, v.plen);
  v.read_payload(0, from_pages, t->scratch.data());
  if (n > v.plen) t->scratch[v.plen] = static_cast<uint8_t>(v.m->m_epg_trail[0]);
  t->gcm.encrypt(t->key, t->scratch.data(), t->scratch.data(), static_cast<size_t>(n));
  if (pos >= ee && !record_finish(t)) return -1;
  t->rec_pos = pos;
  return n;
}

}  // namespace

NicTlsTx::NicTlsTx(NicSim& nic)
    : k_(nic.k()), st_(std::make_shared<NicTlsTxStats>()) {
  sysctl_ = std::make_unique<sysctl_ctx_list>(k_);
  std::string p = "dev.nic_sim." + std::to_string(nic.unit());
  sysctl_ctx_list& c = *sysctl_;
  c.add_node(p + ".tls_tx", "inline TLS transmit engine");
  struct {
    const char* name;
    counter_u64* c;
    const char* d;
  } ctrs[] = {
      {"tags", &st_->tags, "TLS send tags alive"},
      {"tag_allocs", &st_->tag_allocs, "TLS send tags allocated"},
      {"tag_failures", &st_->tag_failures,
       "TLS send tag allocations refused (unsupported suite)"},
      {"frames", &st_->frames, "frames whose TLS bytes were encrypted"},
      {"bytes", &st_->bytes, "plaintext bytes encrypted, retransmissions included"},
      {"records", &st_->records, "record tags computed"},
      {"rebuilds", &st_->rebuilds,
       "segments that needed the cipher state rebuilt from the record start"},
      {"rebuild_bytes", &st_->rebuild_bytes,
       "record bytes re-read to rebuild the cipher state"},
      {"errors", &st_->errors, "frames refused by the engine"},
  };
  for (const auto& x : ctrs)
    c.add_counter(p + ".tls_tx." + x.name, CTLFLAG_RD, x.c, x.d);
  c.add_int(p + ".tls_tx_keep_state", CTLFLAG_RW, &keep_state_,
            "Keep TLS cipher state across in-order segments (0: rebuild for "
            "every segment starting inside a record)");
}

NicTlsTx::~NicTlsTx() = default;

void NicTlsTx::set_next(std::shared_ptr<NicSimOffload> next) {
  MutexLock l(&mu_);
  next_ = std::move(next);
}

std::shared_ptr<NicSimOffload> NicTlsTx::next() const {
  MutexLock l(&mu_);
  return next_;
}

int NicTlsTx::snd_tag_alloc(NicSim& nic, const if_snd_tag_alloc_params& p,
                            m_snd_tag** out) {
  const ktls_session* tls;
  uint64_t rate = 0;
  const if_snd_tag_sw* sw;
  switch (p.hdr.type) {
    case IF_SND_TAG_TYPE_TLS:
      tls = p.tls.tls;
      sw = &kTlsSw;
      break;
    case IF_SND_TAG_TYPE_TLS_RATE_LIMIT:
      tls = p.tls_rate_limit.tls;
      rate = p.tls_rate_limit.max_rate;
      sw = &kTlsRateLimitSw;
      break;
    default: {
      std::shared_ptr<NicSimOffload> n = next();
      return n ? n->snd_tag_alloc(nic, p, out) : EOPNOTSUPP;
    }
  }
  if (tls == nullptr) return EINVAL;
  const tls_session_params& sp = tls->params;
  // As mlx5: AES-GCM with 128- or 256-bit keys, TLS 1.2 and 1.3.
  const bool suite_ok = sp.cipher_algorithm == CRYPTO_AES_NIST_GCM_16 &&
                        sp.tls_vmajor == TLS_MAJOR_VER_ONE &&
                        (sp.tls_vminor == TLS_MINOR_VER_TWO ||
                         sp.tls_vminor == TLS_MINOR_VER_THREE) &&
                        (sp.cipher_key_len == 16 || sp.cipher_key_len == 32);
  if (!suite_ok) {
    st_->tag_failures.add(1);
    return EOPNOTSUPP;
  }
  auto* t = new nic_tls_tag();
  if (!t->key.set(sp.cipher_key, sp.cipher_key_len)) {
    delete t;
    st_->tag_failures.add(1);
    return ENOMEM;
  }
  t->st = st_;
  t->k = &k_;
  t->tls13 = sp.tls_vminor == TLS_MINOR_VER_THREE;
  memcpy(t->iv, sp.iv, t->tls13 ? 12 : 4);
  t->scratch.reserve(TLS_MAX_MSG_SIZE_V10_2 + 64);
  m_snd_tag_init(t, nic.ifp(), sw, nic.num_snd_tags());
  t->softc = &nic;
  t->max_rate.store(rate);
  st_->tags.add(1);
  st_->tag_allocs.add(1);
  *out = t;
  return 0;
}

int NicTlsTx::tx_frame(NicSim& nic, m_snd_tag* tag, const mbuf* m,
                       uint8_t* frame, size_t len) {
  (void)nic;
  if (tag->sw != &kTlsSw && tag->sw != &kTlsRateLimitSw) {
    std::shared_ptr<NicSimOffload> n = next();
    return n ? n->tx_frame(nic, tag, m, frame, len) : EINVAL;
  }
  auto* t = static_cast<nic_tls_tag*>(tag);
  nic_pkt_info fi;
  if (!nic_pkt_parse(frame, len, &fi) || fi.proto != IPPROTO_TCP) return 0;
  const int fpay = fi.l4len - fi.tcp_hlen;
  if (fpay <= 0) return 0;
  uint8_t* fdata = frame + fi.l4off + fi.tcp_hlen;
  const uint32_t fseq = rd32(frame + fi.l4off + 4);

  // Where the payload starts in the packet (TSO may have cut this frame
  // from a larger one) and its first sequence number.
  uint8_t ph[ETHER_HDR_LEN + 60 + 60];
  const int plen_pkt = static_cast<int>(m_length(m, nullptr));
  const int hn = std::min<int>(sizeof ph, plen_pkt);
  m_copydata(m, 0, hn, ph);
  nic_pkt_info pi;
  // The packet's IP length may exceed the header copy: parse what we have.
  if (hn < ETHER_HDR_LEN + 20) return EINVAL;
  {
    const uint8_t* ip = ph + ETHER_HDR_LEN;
    pi.l3off = ETHER_HDR_LEN;
    pi.ip_hlen = (ip[0] & 0x0f) * 4;
    pi.l4off = pi.l3off + pi.ip_hlen;
    if (pi.l4off + 20 > hn) return EINVAL;
    pi.tcp_hlen = (ph[pi.l4off + 12] >> 4) * 4;
  }
  const int ppay_off = pi.l4off + pi.tcp_hlen;
  const uint32_t pseq = rd32(ph + pi.l4off + 4);
  int fo = static_cast<int>(fseq - pseq);  // frame payload offset in packet
  if (fo < 0 || ppay_off + fo + fpay > plen_pkt) {
    st_->errors.add(1);
    return EINVAL;
  }

  // Walk the packet's mbufs to the frame's first payload byte.
  int skip = ppay_off + fo;
  const mbuf* mb = m;
  while (mb != nullptr && skip >= mb->m_len) {
    skip -= mb->m_len;
    mb = mb->m_next;
  }
  const bool keep = keep_state_.load(std::memory_order_relaxed) != 0;
  int done = 0;
  uint64_t enc_bytes = 0, rebuild_bytes = 0, rebuilds = 0;
  bool ok = true;
  for (; mb != nullptr && done < fpay; mb = mb->m_next, skip = 0) {
    int n = std::min(mb->m_len - skip, fpay - done);
    if (n <= 0) continue;
    if ((mb->m_flags & M_EXTPG) && mb->m_epg_tls != nullptr) {
      RecordView v(mb);
      const int from = mb->m_epg_off + skip;  // record offset
      const int to = from + n;
      const uint32_t s = fseq + static_cast<uint32_t>(done);
      const uint32_t rec_start = s - static_cast<uint32_t>(from);
      bool cont = keep && t->valid && t->rec_seqno == mb->m_epg_seqno &&
                  t->rec_tcp_seq == rec_start && t->rec_pos == from;
      if (!cont) {
        if (from == 0) {
          ok = record_init(t, v);
        } else {
          int r = record_rebuild(t, v, from);
          ok = r >= 0;
          if (r > 0) {
            rebuilds++;
            rebuild_bytes += r;
          }
        }
        t->rec_tcp_seq = rec_start;
      }
      if (ok) ok = record_encrypt(t, v, from, to, fdata + done);
      if (!ok) break;
      const int ee = enc_end(t, v);
      enc_bytes += std::max(0, std::min(to, ee) - std::max(from, v.hlen));
      t->rec_pos = to;
      if (to >= v.total()) t->valid = false;  // record complete
    }
    done += n;
  }
  if (!ok || done < fpay) {
    t->valid = false;
    st_->errors.add(1);
    return EIO;
  }
  st_->frames.add(1);
  st_->bytes.add(static_cast<int64_t>(enc_bytes));
  if (rebuilds) {
    st_->rebuilds.add(static_cast<int64_t>(rebuilds));
    st_->rebuild_bytes.add(static_cast<int64_t>(rebuild_bytes));
  }
  ktls_ifnet_tx_account(k_, enc_bytes, rebuild_bytes, rebuilds);
  return 0;
}

void NicTlsTx::rx_frame(NicSim& nic, uint8_t* frame, size_t len,
                        uint32_t* csum_flags) {
  if (std::shared_ptr<NicSimOffload> n = next())
    n->rx_frame(nic, frame, len, csum_flags);
}

bool NicTlsTx::toe_input(NicSim& nic, const uint8_t* frame, size_t len) {
  std::shared_ptr<NicSimOffload> n = next();
  return n ? n->toe_input(nic, frame, len) : false;
}

void nic_tls_tx_attach(NicSim& nic) {
  auto eng = std::make_shared<NicTlsTx>(nic);
  eng->set_next(nic.offload());
  nic.set_offload(std::move(eng));
}

}  // namespace uk
