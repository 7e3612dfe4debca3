// Inline TLS receive engine of the simulated NIC. See nic_tls_rx.h.
#include "sys/dev/nic_sim/nic_tls_rx.h"

#include <openssl/crypto.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <deque>
#include <map>
#include <string>
#include <tuple>
#include <vector>

#include "sys/dev/nic_sim/nic_gcm.h"
#include "sys/dev/nic_sim/nic_sim_csum.h"
#include "sys/kern/uipc_ktls.h"
#include "sys/netinet/in_pcb.h"
#include "sys/opencrypto/cryptodev.h"
#include "sys/sys/ktls.h"

namespace uk {

namespace {

constexpr int kTagLen = 16;       // AES-GCM tag
constexpr int kHdrLen = 5;        // struct tls_record_layer
constexpr size_t kChainMax = 4096;  // tracked headers kept for resync

uint16_t rd16(const uint8_t* p) { return static_cast<uint16_t>(p[0] << 8 | p[1]); }
uint32_t rd32(const uint8_t* p) {
  return static_cast<uint32_t>(p[0]) << 24 | static_cast<uint32_t>(p[1]) << 16 |
         static_cast<uint32_t>(p[2]) << 8 | p[3];
}
bool seq_lt(uint32_t a, uint32_t b) { return static_cast<int32_t>(a - b) < 0; }

struct nic_tls_rx_stats {
  counter_u64 tags;             // gauge: live TLS_RX tags
  counter_u64 records;          // records decrypted and verified
  counter_u64 bytes;            // their plaintext bytes
  counter_u64 auth_failures;    // records whose tag did not verify
  counter_u64 frames_bypassed;  // frames of a tagged flow left encrypted
  counter_u64 sync_lost;        // times a flow lost record sync
  counter_u64 resync_requests;  // candidate headers found while lost
  counter_u64 resync_hints;     // resync modifies from the stack
  counter_u64 resync_ok;        // hints that (re)synchronised a flow
  counter_u64 resync_ignored;   // hints that did not apply
};

enum class Sync { kLost, kTracking, kSynced };

struct RxCore;

// A TLS_RX tag: the keys and the flow, plus the flow's parser state
// (guarded by RxCore::mu).
struct nic_tls_rx_tag final : nic_sim_tag {
  std::shared_ptr<RxCore> core;
  // Immutable after allocation.
  bool tls13 = false;
  int hlen = 0;  // header + explicit nonce
  uint8_t vminor = 0;
  uint8_t iv[12] = {};  // TLS 1.2: salt in [0,4); TLS 1.3: the whole IV
  std::tuple<uint32_t, uint32_t, uint16_t, uint16_t> key;  // faddr laddr fport lport
  NicGcmKey gcm_key;  // expanded once
  NicGcm gcm;         // the record being decrypted

  // Parser state.
  Sync sync = Sync::kLost;
  bool have_pos = false;
  uint32_t rcv_high = 0;   // next TCP sequence number expected
  uint32_t rec_start = 0;  // header of the current record
  uint32_t rec_len = 0;    // 0 until its header's length is known
  bool rec_dec = false;    // the current record is being decrypted
  uint64_t seqno = 0;      // its TLS sequence number (synced only)
  uint8_t hdr[13] = {};
  uint8_t tag[kTagLen] = {};
  // Tracking: headers seen since the candidate; chain_base numbers the
  // first one.
  std::deque<uint32_t> chain;
  uint64_t chain_base = 0;
  std::vector<uint8_t> scratch;
};

struct RxCore {
  Mutex mu;
  NicSim* nic ABSL_GUARDED_BY(mu) = nullptr;  // cleared when the NIC goes
  // kern.ipc.num_snd_tags, counted here rather than by m_snd_tag_init:
  // sockets (and their tags) may outlive the driver state that holds the
  // counter at halt, so it is dropped when the NIC goes.
  counter_u64* num_snd_tags ABSL_GUARDED_BY(mu) = nullptr;
  std::map<std::tuple<uint32_t, uint32_t, uint16_t, uint16_t>, nic_tls_rx_tag*>
      flows ABSL_GUARDED_BY(mu);
  nic_tls_rx_stats st;
};

int tls_rx_tag_modify(m_snd_tag* mst, if_snd_tag_modify_params* p);
int tls_rx_tag_query(m_snd_tag* mst, if_snd_tag_query_params* p) {
  (void)mst;
  (void)p;
  return EOPNOTSUPP;
}
void tls_rx_tag_free(m_snd_tag* mst);

const if_snd_tag_sw kTlsRxSw = {tls_rx_tag_modify, tls_rx_tag_query,
                                tls_rx_tag_free, IF_SND_TAG_TYPE_TLS_RX};

// The parser. Every function below runs with RxCore::mu held.
class Parser {
 public:
  Parser(nic_tls_rx_tag* t, nic_tls_rx_stats& st) : t_(t), st_(st) {}

  // Whether h (5 bytes) is a record header this session could carry.
  bool header_ok(const uint8_t* h) const {
    if (h[1] != TLS_MAJOR_VER_ONE) return false;
    if (h[2] != (t_->tls13 ? TLS_MINOR_VER_TWO : t_->vminor)) return false;
    if (t_->tls13 ? h[0] != TLS_RLTYPE_APP
                  : (h[0] < 20 || h[0] > TLS_RLTYPE_APP))
      return false;
    int len = kHdrLen + rd16(h + 3);
    int min = t_->hlen + kTagLen + (t_->tls13 ? 1 : 0);
    int max = t_->hlen + TLS_MAX_MSG_SIZE_V10_2 + kTagLen + (t_->tls13 ? 1 : 0);
    return len >= min && len <= max;
  }

  void lose() {
    if (t_->sync != Sync::kLost) st_.sync_lost.add(1);
    t_->sync = Sync::kLost;
    t_->rec_len = 0;
    t_->rec_dec = false;
    t_->chain.clear();
  }

  // Synchronised at a record header at TCP sequence s with number n.
  void sync_at(uint32_t s, uint64_t n) {
    t_->sync = Sync::kSynced;
    t_->rec_start = s;
    t_->rec_len = 0;
    t_->seqno = n;
    t_->rec_dec = true;
    t_->chain.clear();
  }

  void next_record() {
    t_->rec_start += t_->rec_len;
    t_->rec_len = 0;
    if (t_->sync == Sync::kSynced) {
      t_->seqno++;
      t_->rec_dec = true;
    } else if (t_->sync == Sync::kTracking) {
      t_->chain.push_back(t_->rec_start);
      if (t_->chain.size() > kChainMax) {
        t_->chain.pop_front();
        t_->chain_base++;
      }
    }
  }

  // Bytes [from, to) of the stream will never be seen in order.
  void skip(uint32_t from, uint32_t to) {
    (void)from;
    if (t_->sync == Sync::kLost) return;
    if (t_->rec_len == 0 || seq_lt(t_->rec_start + t_->rec_len, to)) {
      lose();  // the next header (or this one's length) is in the gap
      return;
    }
    t_->rec_dec = false;
    if (to == t_->rec_start + t_->rec_len) next_record();
  }

  // Starts decrypting the current record: its header and explicit nonce
  // are in hdr.
  void start_record() {
    int plen = static_cast<int>(t_->rec_len) - t_->hlen - kTagLen;
    t_->gcm.init_tls(t_->gcm_key, t_->tls13, t_->iv, t_->seqno, t_->hdr, plen);
  }

  // Processes in-order payload bytes p[0, n) at TCP sequence seq; the
  // plaintext goes to out (a copy of p). Returns whether every record byte
  // in them was decrypted and verified.
  bool process(uint32_t seq, const uint8_t* p, uint8_t* out, int n) {
    bool all = true;
    int pos = 0;
    while (pos < n) {
      if (t_->sync == Sync::kLost) {
        all = false;
        int i = pos;
        for (; i + kHdrLen <= n; i++)
          if (header_ok(p + i)) break;
        if (i + kHdrLen > n) return false;
        // A candidate: follow the headers from here and ask the stack
        // which record this is.
        t_->sync = Sync::kTracking;
        t_->rec_start = seq + i;
        t_->rec_len = 0;
        t_->chain.assign(1, t_->rec_start);
        t_->chain_base = 0;
        st_.resync_requests.add(1);
        pos = i;
        continue;
      }
      const bool active = t_->sync == Sync::kSynced && t_->rec_dec;
      if (!active) all = false;
      uint32_t off = seq + pos - t_->rec_start;
      if (t_->rec_len == 0) {
        int take = std::min<int>(kHdrLen - off, n - pos);
        memcpy(t_->hdr + off, p + pos, take);
        pos += take;
        if (off + take == kHdrLen) {
          if (!header_ok(t_->hdr)) {
            lose();
            continue;
          }
          t_->rec_len = kHdrLen + rd16(t_->hdr + 3);
          if (active && t_->hlen == kHdrLen) start_record();
        }
        continue;
      }
      if (off < static_cast<uint32_t>(t_->hlen)) {
        int take = std::min<int>(t_->hlen - off, n - pos);
        memcpy(t_->hdr + off, p + pos, take);
        pos += take;
        if (active && off + take == static_cast<uint32_t>(t_->hlen)) start_record();
        continue;
      }
      uint32_t payload_end = t_->rec_len - kTagLen;
      if (off < payload_end) {
        int take = std::min<int>(payload_end - off, n - pos);
        if (active) t_->gcm.decrypt(t_->gcm_key, out + pos, p + pos, static_cast<size_t>(take));
        pos += take;
        continue;
      }
      int take = std::min<int>(t_->rec_len - off, n - pos);
      memcpy(t_->tag + (off - payload_end), p + pos, take);
      pos += take;
      if (off + take < t_->rec_len) continue;
      if (active) {
        if (t_->gcm.verify(t_->gcm_key, t_->tag)) {
          st_.records.add(1);
          st_.bytes.add(static_cast<int64_t>(t_->rec_len) - t_->hlen - kTagLen);
        } else {
          // Leave this frame encrypted: the record reaches the stack
          // mixed, and its software decrypt reports the failure.
          st_.auth_failures.add(1);
          all = false;
        }
      }
      next_record();
    }
    return all;
  }

  // A resync hint from the stack (ktls_resync_ifnet).
  void hint(uint32_t s, uint32_t len, uint64_t n) {
    st_.resync_hints.add(1);
    if (t_->sync == Sync::kSynced) {
      st_.resync_ignored.add(1);
      return;
    }
    if (!t_->have_pos) {
      t_->have_pos = true;
      t_->rcv_high = s;
    }
    if (s == t_->rcv_high) {
      sync_at(s, n);
      st_.resync_ok.add(1);
      return;
    }
    if (t_->sync == Sync::kTracking) {
      auto it = std::find(t_->chain.begin(), t_->chain.end(), s);
      if (it != t_->chain.end()) {
        auto next = std::next(it);
        if (len != 0 && next != t_->chain.end() && *next != s + len) {
          st_.resync_ignored.add(1);  // the tracked chain is not the stream
          return;
        }
        uint64_t idx = static_cast<uint64_t>(it - t_->chain.begin());
        uint64_t cur = t_->chain.size() - 1;
        t_->sync = Sync::kSynced;
        t_->seqno = n + (cur - idx);
        // The current record can be decrypted only if none of it has
        // gone by yet.
        t_->rec_dec = t_->rcv_high == t_->rec_start;
        t_->chain.clear();
        st_.resync_ok.add(1);
        return;
      }
    }
    st_.resync_ignored.add(1);
  }

 private:
  nic_tls_rx_tag* t_;
  nic_tls_rx_stats& st_;
};

int tls_rx_tag_modify(m_snd_tag* mst, if_snd_tag_modify_params* p) {
  auto* t = static_cast<nic_tls_rx_tag*>(mst);
  RxCore& core = *t->core;
  MutexLock l(&core.mu);
  // A NIC that is gone or no longer does RX TLS cannot take hints; the
  // stack then falls back to software for good.
  if (core.nic == nullptr || !(core.nic->capenable2() & IFCAP2_BIT(IFCAP2_RXTLS4)))
    return EOPNOTSUPP;
  Parser(t, core.st).hint(p->tls_rx.tls_hdr_tcp_sn, p->tls_rx.tls_rec_length,
                          p->tls_rx.tls_seq_number);
  return 0;
}

void tls_rx_tag_free(m_snd_tag* mst) {
  auto* t = static_cast<nic_tls_rx_tag*>(mst);
  std::shared_ptr<RxCore> core = std::move(t->core);
  {
    MutexLock l(&core->mu);
    auto it = core->flows.find(t->key);
    if (it != core->flows.end() && it->second == t) core->flows.erase(it);
    if (core->num_snd_tags != nullptr) core->num_snd_tags->add(-1);
  }
  core->st.tags.add(-1);
  OPENSSL_cleanse(t->iv, sizeof t->iv);
  delete t;
}

class NicTlsRx final : public NicSimOffload {
 public:
  explicit NicTlsRx(NicSim& nic) : core_(std::make_shared<RxCore>()) {
    MutexLock l(&core_->mu);
    core_->nic = &nic;
    core_->num_snd_tags = nic.num_snd_tags();
  }
  ~NicTlsRx() override {
    MutexLock l(&core_->mu);
    core_->nic = nullptr;  // tags may outlive the NIC
    core_->num_snd_tags = nullptr;
  }

  void register_sysctls(NicSim& nic) {
    sysctl_ctx_list* c = nic.sysctl_ctx();
    if (c == nullptr) return;
    std::string p = "dev.nic_sim." + std::to_string(nic.unit()) + ".tls_rx";
    c->add_node(p, "inline TLS receive engine");
    nic_tls_rx_stats& s = core_->st;
    struct {
      const char* name;
      counter_u64* c;
      const char* d;
    } ctrs[] = {
        {"tags", &s.tags, "live TLS_RX send tags"},
        {"records", &s.records, "records decrypted and verified by the NIC"},
        {"bytes", &s.bytes, "plaintext bytes of the records the NIC decrypted"},
        {"auth_failures", &s.auth_failures, "records whose tag the NIC could not verify"},
        {"frames_bypassed", &s.frames_bypassed,
         "frames of offloaded flows passed up still encrypted"},
        {"sync_lost", &s.sync_lost, "times a flow lost record synchronisation"},
        {"resync_requests", &s.resync_requests,
         "candidate record headers found while out of sync (resync requests)"},
        {"resync_hints", &s.resync_hints, "resync modifies received from the stack"},
        {"resync_ok", &s.resync_ok, "resync modifies that resynchronised a flow"},
        {"resync_ignored", &s.resync_ignored, "resync modifies that did not apply"},
    };
    for (const auto& x : ctrs) c->add_counter(p + "." + x.name, CTLFLAG_RD, x.c, x.d);
  }

  int snd_tag_alloc(NicSim& nic, const if_snd_tag_alloc_params& p,
                    m_snd_tag** out) override {
    if (p.hdr.type != IF_SND_TAG_TYPE_TLS_RX) return EOPNOTSUPP;
    const ktls_session* tls = p.tls_rx.tls;
    const inpcb* inp = p.tls_rx.inp;
    if (tls == nullptr || inp == nullptr) return EINVAL;
    const tls_session_params& sp = tls->params;
    // As mlx5: AES-GCM, TLS 1.2 and 1.3 only.
    if (sp.cipher_algorithm != CRYPTO_AES_NIST_GCM_16) return EOPNOTSUPP;
    if (sp.tls_vmajor != TLS_MAJOR_VER_ONE ||
        (sp.tls_vminor != TLS_MINOR_VER_TWO && sp.tls_vminor != TLS_MINOR_VER_THREE))
      return EOPNOTSUPP;
    if (sp.cipher_key_len != 16 && sp.cipher_key_len != 32) return EINVAL;
    auto* t = new nic_tls_rx_tag();
    if (!t->gcm_key.set(sp.cipher_key, sp.cipher_key_len)) {
      delete t;
      return ENOMEM;
    }
    t->tls13 = sp.tls_vminor == TLS_MINOR_VER_THREE;
    t->vminor = sp.tls_vminor;
    t->hlen = sp.tls_hlen;
    memcpy(t->iv, sp.iv, std::min<size_t>(sp.iv_len, sizeof t->iv));
    // Received frames go from the peer (faddr) to us (laddr).
    t->key = {inp->inp_faddr.s_addr, inp->inp_laddr.s_addr, inp->inp_fport,
              inp->inp_lport};
    t->core = core_;
    m_snd_tag_init(t, nic.ifp(), &kTlsRxSw, nullptr);
    t->softc = &nic;
    {
      MutexLock l(&core_->mu);
      core_->flows[t->key] = t;  // a newer tag for the flow replaces the old
      if (core_->num_snd_tags != nullptr) core_->num_snd_tags->add(1);
    }
    core_->st.tags.add(1);
    *out = t;
    return 0;
  }

  int tx_frame(NicSim& nic, m_snd_tag* tag, const mbuf* m, uint8_t* frame,
               size_t len) override {
    (void)nic;
    (void)tag;
    (void)m;
    (void)frame;
    (void)len;
    return EOPNOTSUPP;  // never given TX frames: its tags are RX only
  }

  void rx_frame(NicSim& nic, uint8_t* frame, size_t len,
                uint32_t* csum_flags) override {
    nic_pkt_info pi;
    if (!nic_pkt_parse(frame, len, &pi) || pi.proto != IPPROTO_TCP || pi.fragment)
      return;
    const uint8_t* ip = frame + pi.l3off;
    const uint8_t* th = frame + pi.l4off;
    int n = pi.l4len - pi.tcp_hlen;
    if (n <= 0) return;
    uint32_t saddr, daddr;
    uint16_t sport, dport;
    memcpy(&saddr, ip + 12, 4);
    memcpy(&daddr, ip + 16, 4);
    memcpy(&sport, th, 2);
    memcpy(&dport, th + 2, 2);
    uint32_t seq = rd32(th + 4);
    uint8_t* payload = frame + pi.l4off + pi.tcp_hlen;

    RxCore& core = *core_;
    MutexLock l(&core.mu);
    auto it = core.flows.find({saddr, daddr, sport, dport});
    if (it == core.flows.end()) return;
    nic_tls_rx_tag* t = it->second;
    Parser ps(t, core.st);
    if (!t->have_pos) {
      t->have_pos = true;
      t->rcv_high = seq;
    }
    const uint32_t end = seq + static_cast<uint32_t>(n);
    if (!(nic.capenable2() & IFCAP2_BIT(IFCAP2_RXTLS4))) {
      // Offload turned off: follow nothing, decrypt nothing.
      ps.lose();
      if (seq_lt(t->rcv_high, end)) t->rcv_high = end;
      core.st.frames_bypassed.add(1);
      return;
    }
    if (seq_lt(seq, t->rcv_high)) {
      // Behind us: a retransmission or a frame overtaken on the wire. Any
      // new bytes it carries were never parsed in order.
      if (seq_lt(t->rcv_high, end)) {
        ps.skip(t->rcv_high, end);
        t->rcv_high = end;
      }
      core.st.frames_bypassed.add(1);
      return;
    }
    if (seq_lt(t->rcv_high, seq)) ps.skip(t->rcv_high, seq);
    t->scratch.assign(payload, payload + n);
    bool dec = ps.process(seq, payload, t->scratch.data(), n);
    t->rcv_high = end;
    if (!dec) {
      core.st.frames_bypassed.add(1);
      return;
    }
    memcpy(payload, t->scratch.data(), n);
    *csum_flags |= CSUM_TLS_DECRYPTED;
  }

 private:
  std::shared_ptr<RxCore> core_;
};

}  // namespace

std::shared_ptr<NicSimOffload> nic_tls_rx_create(NicSim& nic) {
  auto e = std::make_shared<NicTlsRx>(nic);
  e->register_sysctls(nic);
  return e;
}

}  // namespace uk
