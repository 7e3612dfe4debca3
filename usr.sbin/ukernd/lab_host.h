// A running lab: the kernels of a LabSpec booted through lib/libuk, their
// NICs configured and wires connected, each kernel's message buffer echoed
// to the log with a "[name] " prefix.
//
// Thread safety: the set of kernels is fixed between boot() and halt();
// LabKernel fields are immutable in that interval, so request threads may
// use them concurrently (each kernel subsystem locks its own state). halt()
// must only run once no request thread is using the lab.
#ifndef UKTLS_USR_SBIN_UKERND_LAB_HOST_H_
#define UKTLS_USR_SBIN_UKERND_LAB_HOST_H_

#include <sys/types.h>

#include <chrono>
#include <cstdio>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "lib/libuk/uk.h"
#include "usr.sbin/ukernd/conn.h"
#include "sys/sys/lock.h"
#include "usr.sbin/ukernd/lab.h"

namespace ukernd {

struct LabKernel {
  const KernelSpec* spec = nullptr;
  uk_kernel* k = nullptr;
  uk_proc* p = nullptr;  // ukernd's own process in this kernel
  std::chrono::steady_clock::time_point booted;
  FILE* echo = nullptr;  // line-prefixing stream the dmesg echo writes to
  std::vector<std::string> nics;  // NICs that ifconfig created
  // Host threads born while this kernel booted (its kernel threads) and
  // while its NICs were created (their TX/RX threads): the experiment
  // attributes CPU time with them. Threads a kernel starts later are not
  // listed.
  std::vector<pid_t> boot_tids;
  std::vector<pid_t> nic_tids;
};

class Lab final {
 public:
  // Boots every kernel, then configures NICs and wires. Operations the
  // kernel does not support yet (ENOSYS) are reported once on |log| and
  // skipped. Returns null with a message if a kernel fails to boot.
  static std::unique_ptr<Lab> boot(LabSpec spec, FILE* log, bool echo_dmesg,
                                   std::string* err);
  ~Lab();
  Lab(const Lab&) = delete;
  Lab& operator=(const Lab&) = delete;

  // Halts every kernel (last booted first). Idempotent.
  void halt();

  const LabSpec& spec() const { return spec_; }
  LabKernel* find(std::string_view name);
  LabKernel& default_kernel() { return kernels_.front(); }
  std::vector<LabKernel>& kernels() { return kernels_; }
  // "server, client"
  std::string kernel_names() const;
  // The test connections (conn.*); closed first by halt().
  ConnTable& conns() { return conns_; }

  // The state of a service of the lab as the control socket reports it
  // ("running", "failed", ...) with details ({"url": ...}); "not-started"
  // and {} for one never set. Any thread.
  void set_service_state(const std::string& name, const std::string& state,
                         const nlohmann::json& info) ABSL_LOCKS_EXCLUDED(service_mu_);
  std::pair<std::string, nlohmann::json> service_state(const std::string& name)
      ABSL_LOCKS_EXCLUDED(service_mu_);

 private:
  Lab(LabSpec spec, FILE* log) : spec_(std::move(spec)), log_(log) {}
  void configure_network();

  LabSpec spec_;
  FILE* log_;
  std::vector<LabKernel> kernels_;
  ConnTable conns_;
  bool halted_ = false;
  uk::Mutex service_mu_;
  std::map<std::string, std::pair<std::string, nlohmann::json>> services_
      ABSL_GUARDED_BY(service_mu_);
};

}  // namespace ukernd

#endif  // UKTLS_USR_SBIN_UKERND_LAB_HOST_H_
