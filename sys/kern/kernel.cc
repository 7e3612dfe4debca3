// Boot and halt: the SYSINIT list run in order, undone in reverse.
// Mirrors FreeBSD's mi_startup() (sys/kern/init_main.c).
#include "sys/kern/kernel.h"

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <thread>
#include <utility>

#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "absl/strings/strip.h"
#include "sys/kern/subr_prf.h"
#include "sys/sys/counter.h"
#include "sys/sys/sysctl.h"

namespace uk {

namespace {

std::vector<sysinit>& mutable_sysinits() {
  static auto* list = new std::vector<sysinit>();
  return *list;
}

std::atomic<uint64_t> next_kernel_id{1};

}  // namespace

SysinitRegistrar::SysinitRegistrar(const sysinit& si) {
  mutable_sysinits().push_back(si);
}

const std::vector<sysinit>& sysinit_list() { return mutable_sysinits(); }

unsigned curcpu_slot() {
  static std::atomic<unsigned> next{0};
  thread_local unsigned slot = next.fetch_add(1, std::memory_order_relaxed);
  return slot;
}

kernel::kernel() = default;

const std::string* kernel::tunable(std::string_view name) const {
  auto it = tunables.find(name);
  if (it == tunables.end()) return nullptr;
  auto asked = tunables_asked_.find(name);
  if (asked != tunables_asked_.end()) asked->second.store(true, std::memory_order_relaxed);
  return &it->second;
}

std::vector<std::string> kernel::unused_tunables() const {
  std::vector<std::string> out;
  for (const auto& [name, asked] : tunables_asked_)
    if (!asked.load(std::memory_order_relaxed)) out.push_back(name);
  return out;
}

// loader.conf-style "name=value,name=value".
static int parse_tunables(std::string_view s,
                          std::map<std::string, std::string, std::less<>>* out) {
  // Debian's Abseil is built as C++14: absl::string_view is its own type.
  absl::string_view as(s.data(), s.size());
  for (absl::string_view item : absl::StrSplit(as, ',', absl::SkipWhitespace())) {
    item = absl::StripAsciiWhitespace(item);
    size_t eq = item.find('=');
    if (eq == absl::string_view::npos || eq == 0) return EINVAL;
    (*out)[std::string(absl::StripAsciiWhitespace(item.substr(0, eq)))] =
        std::string(absl::StripAsciiWhitespace(item.substr(eq + 1)));
  }
  return 0;
}

std::unique_ptr<kernel> kernel::boot(const boot_params& bp, int* error) {
#ifdef NDEBUG
  // Debian's Abseil is built with its debug checks on: every Mutex
  // Lock/Unlock then updates a process-wide lock graph under one global
  // spin lock (deadlock detection), which cost a fifth of the CPU time of a
  // KTLS sendfile and serialised the worker, netisr and syscall threads.
  // Optimised builds leave lock-order checking to the debug and clang
  // (-Wthread-safety) builds.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
#endif
  std::unique_ptr<kernel> k(new kernel());
  k->id = next_kernel_id.fetch_add(1);
  k->hostname = bp.hostname.empty() ? "uk" : bp.hostname;
  k->ncpus = bp.ncpus > 0 ? bp.ncpus
                          : std::max(1u, std::thread::hardware_concurrency());
  if (bp.ncpus < 0 || bp.ncpus > 1024) {
    *error = EINVAL;
    return nullptr;
  }
  k->boot_modules = bp.default_modules ? std::nullopt
                                       : std::optional<std::string>(bp.modules);
  // API.md section 2: the defaults a booted uktls kernel starts with, then
  // the caller's tunables on top.
  k->tunables = {{"kern.ipc.tls.enable", "1"},
                 {"kern.ipc.mb_use_ext_pgs", "1"},
                 {"kern.ipc.tls.ifnet.permitted", "0"},
                 {"kern.ipc.tls.cbc_enable", "1"}};
  std::map<std::string, std::string, std::less<>> given;
  if (int e = parse_tunables(bp.tunables, &given)) {
    *error = e;
    return nullptr;
  }
  for (auto& [name, value] : given) {
    k->tunables_asked_.try_emplace(name, false);
    k->tunables[name] = std::move(value);
  }
  k->dmesg.reset(new Dmesg());
  k->sysctl.reset(new SysctlTree(k.get()));

  std::vector<const sysinit*> order;
  for (const sysinit& si : sysinit_list()) order.push_back(&si);
  std::stable_sort(order.begin(), order.end(),
                   [](const sysinit* a, const sysinit* b) {
                     if (a->subsystem != b->subsystem)
                       return a->subsystem < b->subsystem;
                     return a->order < b->order;
                   });
  bool warned = false;
  for (const sysinit* si : order) {
    // Every subsystem and boot module has asked for its tunables before
    // the last one ("Setting hostname").
    if (si->subsystem == SI_SUB_LAST && !std::exchange(warned, true)) {
      for (const std::string& name : k->unused_tunables())
        kprintf(*k,
                "WARNING: tunable %s=%s unused at boot (no such tunable in the kernel or "
                "its boot modules)\n",
                name.c_str(), k->tunables.find(name)->second.c_str());
    }
    int e = si->init ? si->init(*k) : 0;
    if (e != 0) {
      kprintf(*k, "boot: %s failed: error %d\n", si->name, e);
      *error = e;
      return nullptr;  // ~kernel undoes what ran
    }
    k->done_.push_back(si);
  }
  k->running.store(true);
  *error = 0;
  return k;
}

kernel::~kernel() {
  running.store(false);
  for (auto it = done_.rbegin(); it != done_.rend(); ++it) {
    if ((*it)->uninit) (*it)->uninit(*this);
  }
  done_.clear();
  // Whatever a failed SYSINIT left, freed before the tree it registered in.
  linux_tls.reset();
  nic_sim.reset();
  ktls.reset();
  crypto.reset();
  net.reset();
  procs.reset();
  tmpfs.reset();
  modules.reset();
  callout.reset();
  kthreads.reset();
  mb.reset();
  vm.reset();
  sysctl.reset();
  dmesg.reset();
}

}  // namespace uk
