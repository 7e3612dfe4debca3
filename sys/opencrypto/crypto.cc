// The OCF framework: driver registry, session selection, dispatch,
// completion and the buffer walkers. Mirrors FreeBSD's
// sys/opencrypto/crypto.c and criov.c.
#include <cerrno>
#include <cstring>
#include <algorithm>

#include "sys/opencrypto/crypto.h"
#include "sys/opencrypto/crypto_drv.h"
#include "sys/opencrypto/crypto_state.h"
#include "sys/sys/module.h"
#include "sys/sys/mbuf.h"
#include "sys/kern/vm_page.h"

namespace uk {

UK_KERNEL_SLOT(CryptoState)

// ---------------------------------------------------------------------------
// Algorithm classes and check_csp() (FreeBSD crypto.c).

static bool alg_is_cipher(int alg) {
  switch (alg) {
    case CRYPTO_AES_CBC:
    case CRYPTO_AES_ICM:
    case CRYPTO_SM4_CTR:
      return true;
  }
  return false;
}

static bool alg_is_keyed_digest(int alg) {
  switch (alg) {
    case CRYPTO_SHA1_HMAC:
    case CRYPTO_SHA2_256_HMAC:
    case CRYPTO_SHA2_384_HMAC:
    case CRYPTO_SHA2_512_HMAC:
    case CRYPTO_AES_128_NIST_GMAC:
    case CRYPTO_AES_192_NIST_GMAC:
    case CRYPTO_AES_256_NIST_GMAC:
    case CRYPTO_AES_CCM_CBC_MAC:
      return true;
  }
  return false;
}

static bool alg_is_digest(int alg) {
  switch (alg) {
    case CRYPTO_SHA1:
    case CRYPTO_SHA2_256:
    case CRYPTO_SHA2_384:
    case CRYPTO_SHA2_512:
      return true;
  }
  return alg_is_keyed_digest(alg);
}

static bool alg_is_aead(int alg) {
  switch (alg) {
    case CRYPTO_AES_NIST_GCM_16:
    case CRYPTO_AES_CCM_16:
    case CRYPTO_CHACHA20_POLY1305:
    case CRYPTO_SM4_GCM_16:
    case CRYPTO_SM4_CCM_16:
    case CRYPTO_ARIA_GCM_16:
      return true;
  }
  return false;
}

static int digest_size(int alg) {
  switch (alg) {
    case CRYPTO_SHA1:
    case CRYPTO_SHA1_HMAC:
      return SHA1_HASH_LEN;
    case CRYPTO_SHA2_256:
    case CRYPTO_SHA2_256_HMAC:
      return SHA2_256_HASH_LEN;
    case CRYPTO_SHA2_384:
    case CRYPTO_SHA2_384_HMAC:
      return SHA2_384_HASH_LEN;
    case CRYPTO_SHA2_512:
    case CRYPTO_SHA2_512_HMAC:
      return SHA2_512_HASH_LEN;
    case CRYPTO_AES_128_NIST_GMAC:
    case CRYPTO_AES_192_NIST_GMAC:
    case CRYPTO_AES_256_NIST_GMAC:
    case CRYPTO_AES_CCM_CBC_MAC:
      return AES_BLOCK_LEN;
  }
  return 0;
}

static bool check_digest_params(const crypto_session_params& csp) {
  if (!alg_is_digest(csp.csp_auth_alg)) return false;
  // A key is required for keyed digests and forbidden for plain hashes.
  if (alg_is_keyed_digest(csp.csp_auth_alg)) {
    if (csp.csp_auth_klen == 0) return false;
  } else if (csp.csp_auth_klen != 0) {
    return false;
  }
  if (csp.csp_auth_mlen != 0 && csp.csp_auth_mlen > digest_size(csp.csp_auth_alg))
    return false;
  return true;
}

// FreeBSD's check_csp(): structural validation of session parameters
// before any driver sees them. false means EINVAL.
static bool check_csp(const crypto_session_params& csp) {
  if ((csp.csp_flags &
       ~(CSP_F_SEPARATE_OUTPUT | CSP_F_SEPARATE_AAD | CSP_F_ESN)) != 0)
    return false;
  if (csp.csp_ivlen < 0 || csp.csp_cipher_klen < 0 || csp.csp_auth_klen < 0 ||
      csp.csp_auth_mlen < 0)
    return false;
  if (csp.csp_auth_key != nullptr && csp.csp_auth_klen == 0) return false;
  if (csp.csp_cipher_key != nullptr && csp.csp_cipher_klen == 0) return false;

  switch (csp.csp_mode) {
    case CSP_MODE_CIPHER:
      if (!alg_is_cipher(csp.csp_cipher_alg)) return false;
      if (csp.csp_flags & CSP_F_SEPARATE_AAD) return false;
      if (csp.csp_cipher_klen == 0 || csp.csp_ivlen == 0) return false;
      if (csp.csp_ivlen > EALG_MAX_BLOCK_LEN) return false;
      if (csp.csp_auth_alg != 0 || csp.csp_auth_klen != 0 ||
          csp.csp_auth_mlen != 0)
        return false;
      return true;
    case CSP_MODE_DIGEST:
      if (csp.csp_cipher_alg != 0 || csp.csp_cipher_klen != 0) return false;
      if (csp.csp_flags & CSP_F_SEPARATE_AAD) return false;
      switch (csp.csp_auth_alg) {
        case CRYPTO_AES_CCM_CBC_MAC:
          if (csp.csp_ivlen < 7 || csp.csp_ivlen > 13) return false;
          break;
        case CRYPTO_AES_128_NIST_GMAC:
        case CRYPTO_AES_192_NIST_GMAC:
        case CRYPTO_AES_256_NIST_GMAC:
          if (csp.csp_ivlen != AES_GCM_IV_LEN) return false;
          break;
        default:
          if (csp.csp_ivlen != 0) return false;
          break;
      }
      return check_digest_params(csp);
    case CSP_MODE_AEAD:
      if (!alg_is_aead(csp.csp_cipher_alg)) return false;
      if (csp.csp_cipher_klen == 0) return false;
      if (csp.csp_ivlen == 0 || csp.csp_ivlen >= EALG_MAX_BLOCK_LEN) return false;
      if (csp.csp_auth_alg != 0 || csp.csp_auth_klen != 0) return false;
      switch (csp.csp_cipher_alg) {
        case CRYPTO_AES_CCM_16:
        case CRYPTO_SM4_CCM_16:
          if (csp.csp_auth_mlen != 0 &&
              (csp.csp_auth_mlen < 4 || csp.csp_auth_mlen > 16 ||
               csp.csp_auth_mlen % 2 != 0))
            return false;
          if (csp.csp_ivlen < 7 || csp.csp_ivlen > 13) return false;
          break;
        case CRYPTO_AES_NIST_GCM_16:
        case CRYPTO_SM4_GCM_16:
        case CRYPTO_ARIA_GCM_16:
          if (csp.csp_ivlen != AES_GCM_IV_LEN) return false;
          if (csp.csp_auth_mlen > GMAC_DIGEST_LEN) return false;
          break;
        case CRYPTO_CHACHA20_POLY1305:
          if (csp.csp_ivlen != 8 && csp.csp_ivlen != 12) return false;
          if (csp.csp_auth_mlen > POLY1305_HASH_LEN) return false;
          break;
      }
      return true;
    case CSP_MODE_ETA:
      if (!alg_is_cipher(csp.csp_cipher_alg)) return false;
      if (csp.csp_cipher_klen == 0 || csp.csp_ivlen == 0) return false;
      if (csp.csp_ivlen > EALG_MAX_BLOCK_LEN) return false;
      return check_digest_params(csp);
    default:
      return false;
  }
}

// ---------------------------------------------------------------------------
// Workers.

static void crypto_invoke(CryptoState& st, cryptop* crp, int hint);

static void crypto_run_callback(cryptop* crp) {
  if (crp->crp_callback) crp->crp_callback(crp);
}

static void crypto_worker_loop(CryptoState* st, crypto_worker* w) {
  w->mu.Lock();
  for (;;) {
    while (!w->stop && w->tasks.empty() && w->done.empty() &&
           (w->ordered.empty() || w->ordered.begin()->first != w->reorder_cur))
      w->cv.Wait(&w->mu);
    if (!w->tasks.empty()) {
      cryptop* crp = w->tasks.front();
      w->tasks.pop_front();
      w->mu.Unlock();
      crypto_invoke(*st, crp, 0);
      w->mu.Lock();
      continue;
    }
    if (!w->done.empty()) {
      cryptop* crp = w->done.front();
      w->done.pop_front();
      w->mu.Unlock();
      crypto_run_callback(crp);
      w->mu.Lock();
      continue;
    }
    if (!w->ordered.empty() && w->ordered.begin()->first == w->reorder_cur) {
      cryptop* crp = w->ordered.begin()->second;
      w->ordered.erase(w->ordered.begin());
      w->reorder_cur++;
      w->mu.Unlock();
      crypto_run_callback(crp);
      w->mu.Lock();
      continue;
    }
    if (w->stop) break;
  }
  w->mu.Unlock();
}

static crypto_worker* crypto_worker_for(CryptoState& st, const cryptoses* h) {
  return st.workers[h->id % st.workers.size()].get();
}

// ---------------------------------------------------------------------------
// State, sysctls, boot.

CryptoState::CryptoState(kernel& kk) : k(kk), ctx(kk) {}

CryptoState::~CryptoState() {
  // kthread_stop() runs the wake hook (stop = true) and joins; the worker
  // drains what is queued first.
  for (auto& w : workers)
    if (w->td != nullptr) kthread_stop(k, w->td);
  workers.clear();
  std::vector<std::unique_ptr<crypto_cap>> dead;
  {
    MutexLock l(&mu);
    caps.clear();
    dead.swap(all);
  }
  dead.clear();
}

static int crypto_sysctl_init(CryptoState& st) {
  sysctl_ctx_list& c = st.ctx;
  int e = 0;
  auto chk = [&e](int r) {
    if (e == 0) e = r;
  };
  chk(c.add_node("kern.crypto", "Cryptographic framework"));
  chk(c.add_int("kern.crypto.num_workers", CTLFLAG_RDTUN, &st.workers_num,
                "Number of crypto workers used to dispatch crypto jobs"));
  chk(c.add_node("kern.crypto.stats", "Cryptographic framework statistics"));
  struct {
    const char* name;
    counter_u64* c;
    const char* descr;
  } stats[] = {
      {"dispatch_async", &st.dispatch_async,
       "Requests submitted with crypto_dispatch_async or _batch"},
      {"cb_queued", &st.cb_queued, "Callbacks run by a crypto worker"},
      {"eagain", &st.eagain, "Requests completed with EAGAIN (resubmit)"},
      {"migrations", &st.migrations,
       "Sessions moved to another driver after theirs went away"},
      {"errors", &st.errors, "Requests completed with an error"},
      {"restarts", &st.restarts, "Requests a busy driver sent back (ERESTART)"},
  };
  for (const auto& s : stats)
    chk(c.add_counter(std::string("kern.crypto.stats.") + s.name, CTLFLAG_RD,
                      s.c, s.descr));
  return e;
}

static int crypto_sysinit(kernel& k) {
  auto st = std::make_unique<CryptoState>(k);
  st->workers_num.store(std::min(std::max(k.ncpus, 1), 64));
  int e = crypto_sysctl_init(*st);
  if (e != 0) return e;
  int n = st->workers_num.load();
  if (n < 1 || n > 256) return EINVAL;
  for (int i = 0; i < n; i++) st->workers.push_back(std::make_unique<crypto_worker>());
  for (size_t i = 0; i < st->workers.size(); i++) {
    crypto_worker* w = st->workers[i].get();
    CryptoState* sp = st.get();
    int e = kthread_add(
        k, "crypto_ret" + std::to_string(i),
        [sp, w](kthread*) { crypto_worker_loop(sp, w); },
        [w] {
          {
            MutexLock l(&w->mu);
            w->stop = true;
          }
          w->cv.SignalAll();
        },
        &w->td);
    if (e != 0) return e;  // ~CryptoState stops the ones started
  }
  k.crypto.reset(st.release());
  return 0;
}

static void crypto_sysuninit(kernel& k) { k.crypto.reset(); }

UK_SYSINIT(crypto, SI_SUB_CRYPTO, SI_ORDER_FIRST, crypto_sysinit,
           crypto_sysuninit);

// ---------------------------------------------------------------------------
// Driver registry.

static int cap_sysctl_init(CryptoState& st, crypto_cap* cap) {
  cap->ctx = std::make_unique<sysctl_ctx_list>(st.k);
  sysctl_ctx_list& c = *cap->ctx;
  std::string base = "kern.crypto." + cap->name;
  int e = 0;
  auto chk = [&e](int r) {
    if (e == 0) e = r;
  };
  chk(c.add_node(base, "Crypto driver"));
  chk(c.add_const_int(base + ".hid", cap->hid, "Driver id (crid)"));
  chk(c.add_const_int(base + ".flags", cap->flags, "CRYPTOCAP_F_* flags"));
  chk(c.add_int(base + ".enable", CTLFLAG_RWTUN, &cap->enable,
                "Offer this driver to new sessions (0 = skip it)"));
  crypto_cap* cp = cap;
  chk(c.add_proc(base + ".sessions", CTLTYPE_INT | CTLFLAG_RD, "I",
                 [cp](sysctl_req& req) {
                   int v = cp->sessions.load(std::memory_order_relaxed);
                   return req.out(&v, sizeof(v));
                 },
                 "Sessions bound to this driver"));
  chk(c.add_counter(base + ".sessions_total", CTLFLAG_RD, &cap->sessions_total,
                    "Sessions ever created on this driver"));
  chk(c.add_counter(base + ".requests", CTLFLAG_RD, &cap->requests,
                    "Requests processed"));
  chk(c.add_counter(base + ".bytes", CTLFLAG_RD, &cap->bytes,
                    "Payload bytes processed"));
  chk(c.add_counter(base + ".errors", CTLFLAG_RD, &cap->errors,
                    "Requests completed with an error"));
  chk(c.add_counter(base + ".blocked", CTLFLAG_RD, &cap->blocked,
                    "Requests refused with ERESTART (queue full)"));
  return e;
}

int crypto_get_driverid(kernel& k, std::unique_ptr<crypto_driver> drv, int flags,
                        int* driverid) {
  *driverid = -1;
  CryptoState* st = k.crypto.get();
  if (st == nullptr || drv == nullptr) return ENXIO;
  // As FreeBSD: a driver must say whether it is hardware or software.
  if ((flags & (CRYPTOCAP_F_HARDWARE | CRYPTOCAP_F_SOFTWARE)) == 0) return EINVAL;
  auto cap = std::make_unique<crypto_cap>();
  cap->flags = flags;
  cap->name = drv->name();
  cap->drv = std::move(drv);
  crypto_cap* cp = cap.get();
  {
    MutexLock l(&st->mu);
    for (crypto_cap* c : st->caps)
      if (c->name == cp->name) return EEXIST;
    cp->hid = st->next_hid++;
    st->caps.push_back(cp);
    st->all.push_back(std::move(cap));
  }
  int e = cap_sysctl_init(*st, cp);
  if (e != 0) {
    crypto_unregister_all(k, cp->hid);
    return e;
  }
  *driverid = cp->hid;
  return 0;
}

// Takes a departed cap out of the table once no session object refers to
// it. The caller destroys it after dropping st.mu: a device's destructor
// joins threads that may be waiting for st.mu (crypto_unblock).
static std::unique_ptr<crypto_cap> cap_reap(CryptoState& st, crypto_cap* cap)
    ABSL_EXCLUSIVE_LOCKS_REQUIRED(st.mu) {
  if (!cap->cleanup.load() || cap->sessions.load() != 0) return nullptr;
  auto it = std::find_if(st.all.begin(), st.all.end(),
                         [cap](const auto& p) { return p.get() == cap; });
  if (it == st.all.end()) return nullptr;
  std::unique_ptr<crypto_cap> dead = std::move(*it);
  st.all.erase(it);
  return dead;
}

int crypto_unregister_all(kernel& k, int driverid) {
  CryptoState* st = k.crypto.get();
  if (st == nullptr) return ENXIO;
  std::unique_ptr<sysctl_ctx_list> ctx;
  std::unique_ptr<crypto_cap> dead;
  std::deque<cryptop*> blocked;
  {
    MutexLock l(&st->mu);
    auto it = std::find_if(st->caps.begin(), st->caps.end(),
                           [driverid](crypto_cap* c) { return c->hid == driverid; });
    if (it == st->caps.end()) return ENOENT;
    crypto_cap* cap = *it;
    st->caps.erase(it);
    cap->cleanup.store(true);
    ctx = std::move(cap->ctx);
    {
      MutexLock cl(&cap->mu);
      blocked.swap(cap->blockq);
      cap->qblocked = false;
      cap->qblocked_hint.store(false, std::memory_order_release);
    }
    if (cap->sessions.load() == 0) {
      auto a = std::find_if(st->all.begin(), st->all.end(),
                            [cap](const auto& p) { return p.get() == cap; });
      dead = std::move(*a);
      st->all.erase(a);
    }
  }
  ctx.reset();  // outside mu: the sysctl tree lock is outermost
  // Requests a busy driver never took: they go back through dispatch and
  // complete with EAGAIN after their session migrates.
  for (cryptop* crp : blocked) crypto_invoke(*st, crp, 0);
  dead.reset();
  return 0;
}

int crypto_find_driver(kernel& k, const char* name) {
  CryptoState* st = k.crypto.get();
  if (st == nullptr) return -1;
  MutexLock l(&st->mu);
  for (crypto_cap* c : st->caps)
    if (c->name == name) return c->hid;
  return -1;
}

int crypto_driver_sessions(kernel& k, int driverid) {
  CryptoState* st = k.crypto.get();
  if (st == nullptr) return -1;
  MutexLock l(&st->mu);
  for (crypto_cap* c : st->caps)
    if (c->hid == driverid) return c->sessions.load();
  return -1;
}

// ---------------------------------------------------------------------------
// Sessions.

// FreeBSD's crypto_select_driver(): highest probesession() result among the
// drivers crid admits; ties go to the driver with fewer sessions.
static crypto_cap* crypto_select_driver(CryptoState& st,
                                        const crypto_session_params& csp,
                                        int crid)
    ABSL_EXCLUSIVE_LOCKS_REQUIRED(st.mu) {
  crypto_cap* best = nullptr;
  int best_pri = 0;
  const int kinds = CRYPTOCAP_F_HARDWARE | CRYPTOCAP_F_SOFTWARE;
  for (crypto_cap* cap : st.caps) {
    if (cap->cleanup.load() || cap->enable.load() == 0) continue;
    if ((crid & kinds) != 0) {
      if ((cap->flags & crid & kinds) == 0) continue;
    } else if (cap->hid != crid) {
      continue;
    }
    int pri = cap->drv->probesession(csp);
    if (pri > 0) continue;  // an errno: cannot serve csp
    if (best == nullptr || pri > best_pri ||
        (pri == best_pri && cap->sessions.load() < best->sessions.load())) {
      best = cap;
      best_pri = pri;
    }
  }
  return best;
}

// Creates a session object bound to a driver chosen for csp.
static int crypto_bind(CryptoState& st, const crypto_session_params& csp,
                       int crid, cryptoses* obj) {
  crypto_cap* cap;
  {
    MutexLock l(&st.mu);
    cap = crypto_select_driver(st, csp, crid);
    if (cap == nullptr) return EOPNOTSUPP;
    cap->sessions.fetch_add(1);  // pins the cap while newsession runs
  }
  obj->cap = cap;
  int e = cap->drv->newsession(obj, csp);
  if (e != 0) {
    obj->cap = nullptr;
    std::unique_ptr<crypto_cap> dead;
    {
      MutexLock l(&st.mu);
      cap->sessions.fetch_sub(1);
      dead = cap_reap(st, cap);
    }
    return e;
  }
  cap->sessions_total.add(1);
  // A driver module stays loaded while it serves sessions (kldunload gives
  // EBUSY). Drivers registered outside the loader have no module to pin.
  obj->modref = module_ref(st.k, cap->name.c_str()) == 0;
  return 0;
}

int crypto_newsession(kernel& k, crypto_session_t* cses,
                      const crypto_session_params& csp, int crid) {
  *cses = nullptr;
  CryptoState* st = k.crypto.get();
  if (st == nullptr) return ENXIO;
  if (!check_csp(csp)) return EINVAL;
  auto h = std::make_unique<cryptoses>();
  h->st = st;
  h->owner = h.get();
  h->id = st->next_sesid.fetch_add(1);
  h->csp = csp;
  // Kept for the life of the session so it can be re-created on another
  // driver if this one departs; zeroed at crypto_freesession().
  if (csp.csp_cipher_key != nullptr) {
    const auto* p = static_cast<const uint8_t*>(csp.csp_cipher_key);
    h->ckey.assign(p, p + csp.csp_cipher_klen);
    h->csp.csp_cipher_key = h->ckey.data();
  }
  if (csp.csp_auth_key != nullptr) {
    const auto* p = static_cast<const uint8_t*>(csp.csp_auth_key);
    h->akey.assign(p, p + csp.csp_auth_klen);
    h->csp.csp_auth_key = h->akey.data();
  }
  int e = crypto_bind(*st, h->csp, crid, h.get());
  if (e != 0) return e;
  *cses = h.release();
  return 0;
}

static void crypto_unbind(CryptoState& st, cryptoses* obj) {
  crypto_cap* cap = obj->cap;
  if (cap == nullptr) return;
  if (obj->modref) {
    module_rele(st.k, cap->name.c_str());
    obj->modref = false;
  }
  cap->drv->freesession(obj);
  obj->cap = nullptr;
  std::unique_ptr<crypto_cap> dead;
  {
    MutexLock l(&st.mu);
    cap->sessions.fetch_sub(1);
    dead = cap_reap(st, cap);
  }
}

void crypto_freesession(crypto_session_t cses) {
  if (cses == nullptr) return;
  CryptoState& st = *cses->st;
  std::vector<cryptoses*> moved;
  {
    MutexLock l(&cses->mu);
    moved.swap(cses->migrated);
  }
  for (cryptoses* m : moved) {
    crypto_unbind(st, m);
    delete m;
  }
  crypto_unbind(st, cses);
  std::fill(cses->ckey.begin(), cses->ckey.end(), 0);
  std::fill(cses->akey.begin(), cses->akey.end(), 0);
  delete cses;
}

// Moves handle h off the departed driver of |old| (FreeBSD does this in
// crypto_invoke()). Returns 0 or the errno of the new session.
static int crypto_migrate(CryptoState& st, cryptoses* h, cryptoses* old) {
  MutexLock l(&h->mu);
  if (crypto_resolve(h) != old) return 0;  // another request migrated it
  auto n = std::make_unique<cryptoses>();
  n->st = &st;
  n->owner = h;
  n->id = h->id;
  n->csp = h->csp;
  int e = crypto_bind(st, h->csp, CRYPTOCAP_F_HARDWARE | CRYPTOCAP_F_SOFTWARE,
                      n.get());
  if (e != 0) return e;
  h->migrated.push_back(n.get());
  h->fwd.store(n.release(), std::memory_order_release);
  st.migrations.add(1);
  return 0;
}

const crypto_session_params* crypto_get_params(crypto_session_t cses) {
  return &cses->csp;
}
void* crypto_get_driver_session(crypto_session_t cses) { return cses->priv; }
void crypto_set_driver_session(cryptoses* ses, void* priv) { ses->priv = priv; }
cryptoses* crypto_request_session(const cryptop* crp) {
  return crp->crp_dses_ != nullptr ? crp->crp_dses_
                                   : crypto_resolve(crp->crp_session);
}
int crypto_ses2caps(crypto_session_t cses) {
  return crypto_resolve(cses)->cap->flags;
}
int crypto_ses2hid(crypto_session_t cses) { return crypto_resolve(cses)->cap->hid; }
const char* crypto_ses2name(crypto_session_t cses) {
  return crypto_resolve(cses)->cap->name.c_str();
}
bool CRYPTO_SESS_SYNC(crypto_session_t cses) {
  return (crypto_ses2caps(cses) & CRYPTOCAP_F_SYNC) != 0;
}

// ---------------------------------------------------------------------------
// Dispatch and completion.

static void crypto_invoke(CryptoState& st, cryptop* crp, int hint) {
  cryptoses* h = crp->crp_session;
  cryptoses* s = crypto_resolve(h);
  crypto_cap* cap = s->cap;
  crp->crp_dses_ = s;
  if (cap->cleanup.load(std::memory_order_acquire)) {
    // The driver went away: move the session and have the caller resubmit
    // (FreeBSD's crypto_invoke()). If no other driver can take it the
    // request fails with that error instead of looping on EAGAIN.
    int e = crypto_migrate(st, h, s);
    crp->crp_etype = e == 0 ? EAGAIN : e;
    if (e == 0) st.eagain.add(1);
    crypto_done(crp);
    return;
  }
  if (cap->qblocked_hint.load(std::memory_order_acquire)) {
    // A driver that said ERESTART keeps later requests queued behind the
    // refused one, in order, until crypto_unblock().
    MutexLock l(&cap->mu);
    if (cap->qblocked) {
      cap->blockq.push_back(crp);
      return;
    }
  }
  cap->requests.add(1);
  cap->bytes.add(crp->crp_payload_length);
  const uint64_t gen = cap->unblock_gen.load(std::memory_order_acquire);
  int e = cap->drv->process(crp, hint);
  if (e == ERESTART) {
    cap->blocked.add(1);
    st.restarts.add(1);
    {
      MutexLock l(&cap->mu);
      if (cap->unblock_gen.load(std::memory_order_relaxed) == gen) {
        cap->qblocked = true;
        cap->qblocked_hint.store(true, std::memory_order_release);
        cap->blockq.push_front(crp);
        return;
      }
    }
    // The driver freed room between refusing and here: try again from a
    // worker (never from this thread, which may be the driver's own).
    crypto_worker* w = st.workers[cap->hid % st.workers.size()].get();
    {
      MutexLock wl(&w->mu);
      w->tasks.push_back(crp);
    }
    w->cv.Signal();
  } else if (e != 0) {
    crp->crp_etype = e;
    crypto_done(crp);
  }
}

int crypto_dispatch(cryptop* crp) {
  if (crp == nullptr || crp->crp_session == nullptr) return EINVAL;
  CryptoState& st = *crp->crp_session->st;
  crp->crp_flags &= ~CRYPTO_F_DONE;
  crp->crp_etype = 0;
  crypto_invoke(st, crp, 0);
  return 0;
}

static void crypto_dispatch_async_one(CryptoState& st, cryptop* crp, int flags) {
  st.dispatch_async.add(1);
  crp->crp_flags &= ~CRYPTO_F_DONE;
  crp->crp_etype = 0;
  crypto_worker* w = crypto_worker_for(st, crp->crp_session);
  if (flags & CRYPTO_ASYNC_ORDERED) {
    crp->crp_flags |= CRYPTO_F_ASYNC_ORDERED;
    crp->crp_retw_ = w;
    MutexLock l(&w->mu);
    crp->crp_seq = w->reorder_ops++;
  }
  if (CRYPTO_SESS_SYNC(crp->crp_session)) {
    // A synchronous driver would run in the caller: hand the request to a
    // worker instead, as FreeBSD queues it on crypto_tq. Ordered requests
    // share their session's worker so they also run in order.
    crypto_worker* tw =
        (flags & CRYPTO_ASYNC_ORDERED)
            ? w
            : st.workers[st.next_worker.fetch_add(1, std::memory_order_relaxed) %
                         st.workers.size()]
                  .get();
    {
      MutexLock l(&tw->mu);
      tw->tasks.push_back(crp);
    }
    tw->cv.Signal();
  } else {
    crypto_invoke(st, crp, 0);
  }
}

int crypto_dispatch_async(cryptop* crp, int flags) {
  if (crp == nullptr || crp->crp_session == nullptr) return EINVAL;
  crypto_dispatch_async_one(*crp->crp_session->st, crp, flags);
  return 0;
}

void crypto_dispatch_batch(std::vector<cryptop*>& crps, int flags) {
  for (cryptop* crp : crps) {
    if (crp == nullptr || crp->crp_session == nullptr) continue;
    crypto_dispatch_async_one(*crp->crp_session->st, crp, flags);
  }
}

void crypto_done(cryptop* crp) {
  cryptoses* h = crp->crp_session;
  CryptoState& st = *h->st;
  crp->crp_flags |= CRYPTO_F_DONE;
  if (crp->crp_etype != 0 && crp->crp_etype != EAGAIN) {
    st.errors.add(1);
    if (crp->crp_dses_ != nullptr && crp->crp_dses_->cap != nullptr)
      crp->crp_dses_->cap->errors.add(1);
  }
  if (crp->crp_flags & CRYPTO_F_ASYNC_ORDERED) {
    auto* w = static_cast<crypto_worker*>(crp->crp_retw_);
    st.cb_queued.add(1);
    {
      MutexLock l(&w->mu);
      w->ordered.emplace(crp->crp_seq, crp);
    }
    w->cv.Signal();
    return;
  }
  bool sync = crp->crp_dses_ != nullptr && crp->crp_dses_->cap != nullptr
                  ? (crp->crp_dses_->cap->flags & CRYPTOCAP_F_SYNC) != 0
                  : false;
  if ((crp->crp_flags & CRYPTO_F_CBIMM) ||
      ((crp->crp_flags & CRYPTO_F_CBIFSYNC) && sync)) {
    crypto_run_callback(crp);
    return;
  }
  st.cb_queued.add(1);
  crypto_worker* w = crypto_worker_for(st, h);
  {
    MutexLock l(&w->mu);
    w->done.push_back(crp);
  }
  w->cv.Signal();
}

void crypto_unblock(kernel& k, int driverid) {
  CryptoState* st = k.crypto.get();
  if (st == nullptr) return;
  crypto_cap* cap = nullptr;
  {
    MutexLock l(&st->mu);
    for (crypto_cap* c : st->caps)
      if (c->hid == driverid) cap = c;
    if (cap == nullptr) return;
    // Held under st->mu so the cap cannot be reaped meanwhile.
    std::deque<cryptop*> q;
    {
      MutexLock cl(&cap->mu);
      cap->unblock_gen.fetch_add(1, std::memory_order_acq_rel);
      if (!cap->qblocked) return;
      cap->qblocked = false;
      cap->qblocked_hint.store(false, std::memory_order_release);
      q.swap(cap->blockq);
    }
    // Resubmitted from one worker, in their original order; never from the
    // driver's thread, which may hold its own locks.
    crypto_worker* w = st->workers[driverid % st->workers.size()].get();
    {
      MutexLock wl(&w->mu);
      for (cryptop* crp : q) w->tasks.push_back(crp);
    }
    w->cv.Signal();
  }
}

// ---------------------------------------------------------------------------
// Buffers (FreeBSD's criov.c).

// M_EXTPG mbufs: the data is hdr ‖ pages ‖ trailer; this finds the
// contiguous piece holding byte |pos| of that concatenation.
static uint8_t* epg_segment(const mbuf* m, int pos, size_t* len) {
  if (pos < m->m_epg_hdrlen) {
    *len = m->m_epg_hdrlen - pos;
    return reinterpret_cast<uint8_t*>(const_cast<char*>(m->m_epg_hdr)) + pos;
  }
  pos -= m->m_epg_hdrlen;
  int pgoff = m->m_epg_1st_off;
  for (int i = 0; i < m->m_epg_npgs; i++) {
    int plen = (i == m->m_epg_npgs - 1) ? m->m_epg_last_len
                                        : static_cast<int>(PAGE_SIZE) - pgoff;
    if (pos < plen) {
      *len = plen - pos;
      return PHYS_TO_DMAP(m->m_epg_pa[i]) + pgoff + pos;
    }
    pos -= plen;
    pgoff = 0;
  }
  *len = m->m_epg_trllen - pos;
  return reinterpret_cast<uint8_t*>(const_cast<char*>(m->m_epg_trail)) + pos;
}

void crypto_cursor_init(crypto_buffer_cursor* cc, const crypto_buffer* cb) {
  *cc = crypto_buffer_cursor();
  cc->cc_type = cb->cb_type;
  cc->cc_cb = cb;
  if (cb->cb_type == CRYPTO_BUF_MBUF || cb->cb_type == CRYPTO_BUF_SINGLE_MBUF)
    cc->cc_mbuf = cb->cb_mbuf;
}

void crypto_cursor_advance(crypto_buffer_cursor* cc, size_t amount) {
  const crypto_buffer* cb = cc->cc_cb;
  switch (cc->cc_type) {
    case CRYPTO_BUF_CONTIG:
    case CRYPTO_BUF_VMPAGE:
      cc->cc_off += amount;
      return;
    case CRYPTO_BUF_UIO:
      while (amount > 0 && cc->cc_idx < cb->cb_iovcnt) {
        size_t rem = cb->cb_iov[cc->cc_idx].iov_len - cc->cc_off;
        if (amount < rem) {
          cc->cc_off += amount;
          return;
        }
        amount -= rem;
        cc->cc_idx++;
        cc->cc_off = 0;
      }
      return;
    case CRYPTO_BUF_MBUF:
    case CRYPTO_BUF_SINGLE_MBUF:
      while (amount > 0 && cc->cc_mbuf != nullptr) {
        size_t rem = cc->cc_mbuf->m_len - cc->cc_off;
        if (amount < rem) {
          cc->cc_off += amount;
          return;
        }
        amount -= rem;
        cc->cc_off = 0;
        cc->cc_mbuf = cc->cc_type == CRYPTO_BUF_MBUF ? cc->cc_mbuf->m_next : nullptr;
      }
      return;
    default:
      return;
  }
}

uint8_t* crypto_cursor_segment(crypto_buffer_cursor* cc, size_t* len) {
  const crypto_buffer* cb = cc->cc_cb;
  switch (cc->cc_type) {
    case CRYPTO_BUF_CONTIG:
      if (cc->cc_off >= static_cast<size_t>(cb->cb_buf_len)) break;
      *len = cb->cb_buf_len - cc->cc_off;
      return reinterpret_cast<uint8_t*>(cb->cb_buf) + cc->cc_off;
    case CRYPTO_BUF_VMPAGE: {
      if (cc->cc_off >= static_cast<size_t>(cb->cb_vm_page_len)) break;
      size_t abs = cb->cb_vm_page_offset + cc->cc_off;
      size_t in = abs & PAGE_MASK;
      *len = std::min(PAGE_SIZE - in, cb->cb_vm_page_len - cc->cc_off);
      return PHYS_TO_DMAP(cb->cb_vm_page[abs >> PAGE_SHIFT]) + in;
    }
    case CRYPTO_BUF_UIO:
      // Zero-length iovecs are skipped.
      while (cc->cc_idx < cb->cb_iovcnt &&
             cc->cc_off >= cb->cb_iov[cc->cc_idx].iov_len) {
        cc->cc_idx++;
        cc->cc_off = 0;
      }
      if (cc->cc_idx >= cb->cb_iovcnt) break;
      *len = cb->cb_iov[cc->cc_idx].iov_len - cc->cc_off;
      return static_cast<uint8_t*>(cb->cb_iov[cc->cc_idx].iov_base) + cc->cc_off;
    case CRYPTO_BUF_MBUF:
    case CRYPTO_BUF_SINGLE_MBUF:
      while (cc->cc_mbuf != nullptr &&
             cc->cc_off >= static_cast<size_t>(cc->cc_mbuf->m_len)) {
        cc->cc_off = 0;
        cc->cc_mbuf = cc->cc_type == CRYPTO_BUF_MBUF ? cc->cc_mbuf->m_next : nullptr;
      }
      if (cc->cc_mbuf == nullptr) break;
      if (cc->cc_mbuf->m_flags & M_EXTPG) {
        size_t l;
        uint8_t* p = epg_segment(cc->cc_mbuf,
                                 cc->cc_mbuf->m_epg_off + static_cast<int>(cc->cc_off), &l);
        *len = std::min(l, cc->cc_mbuf->m_len - cc->cc_off);
        return p;
      }
      *len = cc->cc_mbuf->m_len - cc->cc_off;
      return reinterpret_cast<uint8_t*>(cc->cc_mbuf->m_data) + cc->cc_off;
    default:
      break;
  }
  *len = 0;
  return nullptr;
}

void crypto_cursor_copyback(crypto_buffer_cursor* cc, int size, const void* src) {
  const auto* s = static_cast<const uint8_t*>(src);
  while (size > 0) {
    size_t l;
    uint8_t* p = crypto_cursor_segment(cc, &l);
    if (p == nullptr) return;
    size_t n = std::min(l, static_cast<size_t>(size));
    memcpy(p, s, n);
    s += n;
    size -= static_cast<int>(n);
    crypto_cursor_advance(cc, n);
  }
}

void crypto_cursor_copydata(crypto_buffer_cursor* cc, int size, void* dst) {
  auto* d = static_cast<uint8_t*>(dst);
  while (size > 0) {
    size_t l;
    uint8_t* p = crypto_cursor_segment(cc, &l);
    if (p == nullptr) return;
    size_t n = std::min(l, static_cast<size_t>(size));
    memcpy(d, p, n);
    d += n;
    size -= static_cast<int>(n);
    crypto_cursor_advance(cc, n);
  }
}

int crypto_buffer_len(const crypto_buffer& cb) {
  switch (cb.cb_type) {
    case CRYPTO_BUF_CONTIG:
      return cb.cb_buf_len;
    case CRYPTO_BUF_VMPAGE:
      return cb.cb_vm_page_len;
    case CRYPTO_BUF_UIO: {
      size_t n = 0;
      for (int i = 0; i < cb.cb_iovcnt; i++) n += cb.cb_iov[i].iov_len;
      return static_cast<int>(n);
    }
    case CRYPTO_BUF_MBUF: {
      int n = 0;
      for (const mbuf* m = cb.cb_mbuf; m != nullptr; m = m->m_next) n += m->m_len;
      return n;
    }
    case CRYPTO_BUF_SINGLE_MBUF:
      return cb.cb_mbuf != nullptr ? cb.cb_mbuf->m_len : 0;
    default:
      return 0;
  }
}

int crypto_buffer_apply(const crypto_buffer& cb, int off, int len,
                        const std::function<int(uint8_t*, size_t)>& f) {
  crypto_buffer_cursor cc;
  crypto_cursor_init(&cc, &cb);
  crypto_cursor_advance(&cc, off);
  while (len > 0) {
    size_t l;
    uint8_t* p = crypto_cursor_segment(&cc, &l);
    if (p == nullptr) return EINVAL;
    size_t n = std::min(l, static_cast<size_t>(len));
    if (int e = f(p, n)) return e;
    len -= static_cast<int>(n);
    crypto_cursor_advance(&cc, n);
  }
  return 0;
}

void crypto_copydata(const crypto_buffer& cb, int off, int len, void* dst) {
  crypto_buffer_cursor cc;
  crypto_cursor_init(&cc, &cb);
  crypto_cursor_advance(&cc, off);
  crypto_cursor_copydata(&cc, len, dst);
}

void crypto_copyback(const crypto_buffer& cb, int off, int len, const void* src) {
  crypto_buffer_cursor cc;
  crypto_cursor_init(&cc, &cb);
  crypto_cursor_advance(&cc, off);
  crypto_cursor_copyback(&cc, len, src);
}

void crypto_copydata_req(const cryptop* crp, int off, int len, void* dst) {
  crypto_copydata(crp->crp_buf, off, len, dst);
}

void crypto_copyback_req(const cryptop* crp, int off, int len, const void* src) {
  crypto_copyback(CRYPTO_HAS_OUTPUT_BUFFER(crp) ? crp->crp_obuf : crp->crp_buf,
                  off, len, src);
}

void crypto_read_iv(const cryptop* crp, void* iv, int ivlen) {
  if (crp->crp_flags & CRYPTO_F_IV_SEPARATE)
    memcpy(iv, crp->crp_iv, ivlen);
  else
    crypto_copydata(crp->crp_buf, crp->crp_iv_start, ivlen, iv);
}

}  // namespace uk

namespace uk {

int crypto_driver_modevent(kernel& k, int what, const char* name,
                           std::unique_ptr<crypto_driver> (*make)(), int flags) {
  switch (what) {
    case MOD_LOAD: {
      if (crypto_find_driver(k, name) >= 0) return EEXIST;
      int hid;
      return crypto_get_driverid(k, make(), flags, &hid);
    }
    case MOD_UNLOAD: {
      int hid = crypto_find_driver(k, name);
      if (hid < 0) return 0;  // already detached (crypto_unregister_all)
      if (crypto_driver_sessions(k, hid) > 0) return EBUSY;
      return crypto_unregister_all(k, hid);
    }
    case MOD_SHUTDOWN:
      return 0;
    default:
      return EOPNOTSUPP;
  }
}

}  // namespace uk
