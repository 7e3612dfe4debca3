// What ukernd does for each control request: the bridge between the
// protocol (protocol.h) and the kernels of a lab (lab_host.h).
//
// Each operation reaches a kernel through one narrow interface: system
// calls of lib/libuk (sysctl, kld*, ifconfig changes) or a kernel's own
// object (SysctlTree listing, the message buffer, ktls_session_list and
// ktls_session_set_tx_mode, the ifnet list, a NIC's bpf tap). An operation
// a kernel cannot do answers with its errno in words.
#ifndef UKTLS_USR_SBIN_UKERND_OPS_H_
#define UKTLS_USR_SBIN_UKERND_OPS_H_

#include <functional>
#include <map>
#include <string>

#include "usr.sbin/ukernd/lab_host.h"
#include "usr.sbin/ukernd/protocol.h"

namespace ukernd {

// Sends one event line of a streaming request; false once the peer is gone.
using EmitFn = std::function<bool(const json& event)>;

// Runs |req| against |lab| and returns the reply line's JSON (make_reply or
// make_error). Thread-safe; never throws.
json run_request(Lab& lab, const Request& req, const EmitFn& emit);

// The kern.ipc.tls tree of one kernel as sysctl(8) prints it
// ("name: value" lines); ukernd --demo prints it for each kernel.
std::string sysctl_text(LabKernel& k, const std::string& prefix);

// Every numeric oid under |prefix| of one kernel, name -> value (empty when
// the prefix is unknown). The experiment takes its counter deltas with it.
std::map<std::string, double> sysctl_numbers(LabKernel& k, const std::string& prefix);

// Words for an errno in replies ("not supported by this kernel (ENOSYS)"
// for ENOSYS, strerror otherwise).
std::string errno_words(int error);

}  // namespace ukernd

#endif  // UKTLS_USR_SBIN_UKERND_OPS_H_
