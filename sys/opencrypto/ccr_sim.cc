// ccr_sim: a simulated asynchronous crypto co-processor, for studying
// asynchronous dispatch (FreeBSD's ccr(4), qat(4) and safexcel(4) are the
// real ones). A HARDWARE driver without CRYPTOCAP_F_SYNC: process() only
// queues the request; the device's own threads wait the configured latency,
// do the arithmetic with the ipsecmb engine (or ossl for what ipsecmb lacks)
// and complete it with crypto_done(). A full queue refuses with ERESTART and
// the device calls crypto_unblock() once it drains, as FreeBSD drivers do.
//
// Sysctls (dev.ccr_sim.0.*): queue_depth (RWTUN), latency_us (RWTUN),
// threads (RDTUN) and stats.{submitted,completed,queue_full}.
//
// Not loaded by default (default_load = false): ccr_sim_modevent(MOD_LOAD),
// later kldload("ccr_sim").
#include <cerrno>
#include <chrono>
#include <deque>
#include <thread>
#include <vector>

#include "sys/kern/kernel.h"
#include "sys/opencrypto/crypto.h"
#include "sys/opencrypto/crypto_drv.h"
#include "sys/opencrypto/crypto_state.h"
#include "sys/sys/lock.h"
#include "sys/sys/module.h"
#include "sys/sys/sysctl.h"

namespace uk {

namespace {

struct ccr_session {
  cryptoses inner;  // the engine's session object
  crypto_engine* eng = nullptr;
};

class ccr_sim_driver final : public crypto_driver {
 public:
  explicit ccr_sim_driver(kernel& k)
      : k_(k),
        imb_(ipsecmb_driver_create()),
        ossl_(ossl_driver_create()),
        ctx_(k) {}

  int attach() {
    int e = 0;
    auto chk = [&e](int r) {
      if (e == 0) e = r;
    };
    chk(ctx_.add_node("dev.ccr_sim", "Simulated crypto co-processor"));
    chk(ctx_.add_node("dev.ccr_sim.0", "Simulated crypto co-processor 0"));
    chk(ctx_.add_int("dev.ccr_sim.0.queue_depth", CTLFLAG_RWTUN, &queue_depth_,
                     "Requests the device queues before refusing (ERESTART)"));
    chk(ctx_.add_int("dev.ccr_sim.0.latency_us", CTLFLAG_RWTUN, &latency_us_,
                     "Simulated per-request latency in microseconds"));
    chk(ctx_.add_int("dev.ccr_sim.0.threads", CTLFLAG_RDTUN, &nthreads_,
                     "Device engines (completion order varies with > 1)"));
    chk(ctx_.add_node("dev.ccr_sim.0.stats", "Device statistics"));
    chk(ctx_.add_counter("dev.ccr_sim.0.stats.submitted", CTLFLAG_RD, &submitted_,
                         "Requests accepted"));
    chk(ctx_.add_counter("dev.ccr_sim.0.stats.completed", CTLFLAG_RD, &completed_,
                         "Requests completed"));
    chk(ctx_.add_counter("dev.ccr_sim.0.stats.queue_full", CTLFLAG_RD, &queue_full_,
                         "Requests refused because the queue was full"));
    if (e != 0) return e;
    int n = nthreads_.load();
    if (n < 1 || n > 64 || queue_depth_.load() < 1) return EINVAL;
    for (int i = 0; i < n; i++) thr_.emplace_back([this] { run(); });
    return 0;
  }

  ~ccr_sim_driver() override {
    {
      MutexLock l(&mu_);
      stop_ = true;
    }
    cv_.SignalAll();
    for (auto& t : thr_) t.join();
  }

  void set_hid(int hid) { hid_.store(hid); }

  const char* name() const override { return "ccr_sim"; }

  int probesession(const crypto_session_params& csp) override {
    if (imb_->probesession(csp) <= 0 || ossl_->probesession(csp) <= 0)
      return CRYPTODEV_PROBE_HARDWARE;
    return EINVAL;
  }

  int newsession(cryptoses* ses, const crypto_session_params& csp) override {
    auto cs = std::make_unique<ccr_session>();
    cs->eng = imb_->probesession(csp) <= 0 ? imb_.get() : ossl_.get();
    cs->inner.csp = csp;
    if (int e = cs->eng->newsession(&cs->inner, csp)) return e;
    crypto_set_driver_session(ses, cs.release());
    return 0;
  }

  void freesession(cryptoses* ses) override {
    auto* cs = static_cast<ccr_session*>(crypto_get_driver_session(ses));
    cs->eng->freesession(&cs->inner);
    delete cs;
    crypto_set_driver_session(ses, nullptr);
  }

  int process(cryptop* crp, int) override {
    {
      MutexLock l(&mu_);
      if (static_cast<int>(q_.size()) >= queue_depth_.load()) {
        blocked_ = true;
        queue_full_.add(1);
        return ERESTART;
      }
      q_.push_back(crp);
      // Under mu_: once the request is queued it may complete, its session
      // be freed and the device detached before an unlocked caller resumes.
      submitted_.add(1);
      cv_.Signal();
    }
    return 0;
  }

 private:
  void run() {
    for (;;) {
      cryptop* crp;
      bool unblock = false;
      {
        MutexLock l(&mu_);
        while (!stop_ && q_.empty()) cv_.Wait(&mu_);
        if (q_.empty()) return;  // stopping and drained
        crp = q_.front();
        q_.pop_front();
        if (blocked_) {
          blocked_ = false;
          unblock = true;
        }
      }
      if (unblock) crypto_unblock(k_, hid_.load());
      int us = latency_us_.load(std::memory_order_relaxed);
      if (us > 0) std::this_thread::sleep_for(std::chrono::microseconds(us));
      auto* cs = static_cast<ccr_session*>(
          crypto_get_driver_session(crypto_request_session(crp)));
      crp->crp_etype = cs->eng->compute(crp, &cs->inner);
      completed_.add(1);
      crypto_done(crp);
    }
  }

  kernel& k_;
  std::atomic<int> hid_{-1};
  std::unique_ptr<crypto_engine> imb_, ossl_;
  std::atomic<int> queue_depth_{64};
  std::atomic<int> latency_us_{0};
  std::atomic<int> nthreads_{1};
  counter_u64 submitted_, completed_, queue_full_;
  Mutex mu_;
  CondVar cv_;
  std::deque<cryptop*> q_ ABSL_GUARDED_BY(mu_);
  bool blocked_ ABSL_GUARDED_BY(mu_) = false;
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<std::thread> thr_;
  sysctl_ctx_list ctx_;  // last: its oids go before the values they read
};

}  // namespace

int ccr_sim_modevent(kernel& k, int what, void*) {
  switch (what) {
    case MOD_LOAD: {
      if (crypto_find_driver(k, "ccr_sim") >= 0) return EEXIST;
      auto d = std::make_unique<ccr_sim_driver>(k);
      if (int e = d->attach()) return e;
      ccr_sim_driver* raw = d.get();
      int hid;
      if (int e = crypto_get_driverid(k, std::move(d), CRYPTOCAP_F_HARDWARE, &hid))
        return e;
      raw->set_hid(hid);
      return 0;
    }
    case MOD_UNLOAD:
    case MOD_SHUTDOWN: {
      int hid = crypto_find_driver(k, "ccr_sim");
      if (hid < 0) return ENOENT;
      if (what == MOD_UNLOAD && crypto_driver_sessions(k, hid) > 0) return EBUSY;
      return crypto_unregister_all(k, hid);
    }
  }
  return EOPNOTSUPP;
}

// The module, ready for the loader: when it lands the UK_SYSINIT below
// becomes DECLARE_MODULE(ccr_sim, ccr_sim_mod).
static const moduledata ccr_sim_mod = {"ccr_sim", ccr_sim_modevent, nullptr,
                                      /*default_load=*/false, nullptr};
[[maybe_unused]] static const moduledata* const ccr_sim_modp = &ccr_sim_mod;

// Not loaded at boot (default_load = false); unloaded at halt if loaded.
static void ccr_sim_sysuninit(kernel& k) {
  if (crypto_find_driver(k, "ccr_sim") >= 0) ccr_sim_modevent(k, MOD_SHUTDOWN, nullptr);
}
UK_SYSINIT(ccr_sim, SI_SUB_DRIVERS, SI_ORDER_ANY, nullptr, ccr_sim_sysuninit);

}  // namespace uk
