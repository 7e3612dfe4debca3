// The lab model: what ukernd hosts. Named kernels (hostname, emulated CPUs,
// boot tunables, boot modules) with simulated NICs and their addresses,
// wires joining NIC ports of two kernels, and services running in kernels.
// A lab is read from a TOML file (docs/ukernd.md describes the format) or is
// the embedded default lab.
#ifndef UKTLS_USR_SBIN_UKERND_LAB_H_
#define UKTLS_USR_SBIN_UKERND_LAB_H_

#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "nlohmann/json.hpp"

namespace ukernd {

struct NicSpec {
  std::string name;                  // nic_sim0
  std::string inet;                  // "10.0.0.1/24" or ""
  std::vector<std::string> options;  // ifconfig words: "txtls", "toe", "mtu 9000"
};

struct KernelSpec {
  std::string name;      // lab-unique; what -k selects
  std::string hostname;  // defaults to name
  int ncpus = 0;         // 0 = host cores
  // Boot modules: nullopt = the default set, "" = none, else a comma list.
  std::optional<std::string> modules;
  std::vector<std::pair<std::string, std::string>> tunables;  // in key order
  std::vector<NicSpec> nics;

  // loader.conf-style "name=value,..." for uk_boot_config.tunables.
  std::string tunables_string() const;
};

struct WireSpec {
  std::string a_kernel, a_nic, b_kernel, b_nic;
  std::string bw = "10g";      // bits per second, k/m/g suffixes
  std::string delay = "20us";  // one-way latency, ns/us/ms/s suffixes
  double loss = 0;             // drop probability
  double reorder = 0;          // reorder probability
  uint64_t seed = 1;           // loss/reorder PRNG seed

  // The uk_wire() parameter string ("bw=10g delay=20us loss=0 ...").
  std::string params() const;
};

// A service of the lab, started by ukernd after boot (services.h):
// type "ukhttpd" (options: listen) or "bridge" (options: listen, the host
// address; target, the name of a ukhttpd service or ADDR:PORT).
struct ServiceSpec {
  std::string name;    // "https"
  std::string type;    // "ukhttpd", "bridge"
  std::string kernel;  // where it runs
  std::map<std::string, std::string> options;  // listen, docroot, ...
};

struct LabSpec {
  std::string name = "default";
  std::vector<KernelSpec> kernels;  // the first is the default kernel
  std::vector<WireSpec> wires;
  std::vector<ServiceSpec> services;

  const KernelSpec* find(std::string_view kernel) const;
  nlohmann::json to_json() const;
};

// Parses and validates a lab file. |source| names it in messages
// ("lab.toml:12:3: ..."). Returns false with a message on error.
bool parse_lab(std::string_view text, std::string_view source, LabSpec* lab,
               std::string* err);
// Reads and parses a file.
bool load_lab_file(const std::string& path, LabSpec* lab, std::string* err);

// The embedded default lab, as TOML (ukernd --print-lab shows it).
std::string_view default_lab_toml();

}  // namespace ukernd

#endif  // UKTLS_USR_SBIN_UKERND_LAB_H_
