// The built-in experiment (ukernd --demo): HTTPS downloads from ukhttpd in
// the lab's server kernel by an OpenSSL client in the client kernel, with
// the server's TLS transmit path in each mode — SW (KTLS workers encrypt),
// IFNET (the NIC encrypts inline), TOE (the NIC's TCP offload engine runs
// TCP and TLS) — and a userland baseline (KTLS off: OpenSSL encrypts in the
// server process). Modes are selected as an operator would: ifconfig
// txtls/toe on the server's NIC, kern.ipc.tls.ifnet.permitted, and
// setsockopt(TCP_TXTLS_MODE) on each accepted socket; the mode each
// connection actually ran in is read back with getsockopt(TCP_TXTLS_MODE)
// and reported, so a mode the kernel could not reach shows as such.
//
// Output: progress on |log|, a table on |out|, and report.json, report.csv
// and report.svg in the output directory (docs/ukernd.md describes them).
#ifndef UKTLS_USR_SBIN_UKERND_DEMO_H_
#define UKTLS_USR_SBIN_UKERND_DEMO_H_

#include <cstdio>
#include <string>

#include "nlohmann/json.hpp"
#include "usr.sbin/ukernd/lab_host.h"
#include "usr.sbin/ukernd/services.h"

namespace ukernd {

struct DemoOptions {
  std::string out_dir = "ukernd-report";
  std::string file = "1m.bin";  // a file of the generated docroot
  int connections = 4;          // parallel client connections per mode
  int requests = 16;            // GETs of |file| per connection (keep-alive)
  std::string modes = "sw,ifnet,toe,userland";
  // The client speaks TLS 1.3 (AES-256-GCM) instead of TLS 1.2
  // (AES-128-GCM). OpenSSL 3.0 offloads TLS 1.3 transmit only, so the
  // client's KTLS RX is on with TLS 1.2 alone.
  bool tls13 = false;
};

// Runs the experiment against |https| (which must run in a kernel of |lab|)
// from another kernel of the lab. Returns 0, or an exit status (sysexits)
// when the experiment could not run or the report could not be written;
// the report is the JSON written to report.json.
int run_demo(Lab& lab, HttpsService& https, const DemoOptions& o, FILE* log, FILE* out,
             nlohmann::json* report);

}  // namespace ukernd

#endif  // UKTLS_USR_SBIN_UKERND_DEMO_H_
