#include "usr.sbin/ukernd/ops.h"

#include <unistd.h>

#include <cerrno>
#include <cinttypes>
#include <climits>
#include <cstring>
#include <map>

#include <arpa/inet.h>

#include <deque>

#include "absl/time/time.h"
#include "sys/dev/nic_sim/nic_sim.h"
#include "sys/dev/nic_sim/wire.h"
#include "sys/kern/kern_proc.h"
#include "sys/kern/kernel.h"
#include "sys/kern/subr_prf.h"
#include "sys/kern/uipc_ktls.h"
#include "sys/net/if_cap.h"
#include "sys/net/if_ethersubr.h"
#include "sys/net/if_mib.h"
#include "sys/net/if_var.h"
#include "sys/sys/module.h"
#include "sys/sys/sysctl.h"

namespace ukernd {

std::string errno_words(int error) {
  if (error == ENOSYS) return "not supported by this kernel (ENOSYS)";
  return strerror(error);
}

namespace {

// An error reply's content, carried up to run_request.
struct Fail {
  int error;
  std::string message;
};

const char* type_name(uint32_t type) {
  switch (type) {
    case uk::CTLTYPE_NODE: return "node";
    case uk::CTLTYPE_INT: return "int";
    case uk::CTLTYPE_STRING: return "string";
    case uk::CTLTYPE_S64: return "int64";
    case uk::CTLTYPE_OPAQUE: return "opaque";
    case uk::CTLTYPE_UINT: return "uint";
    case uk::CTLTYPE_LONG: return "long";
    case uk::CTLTYPE_ULONG: return "ulong";
    case uk::CTLTYPE_U64: return "uint64";
    case uk::CTLTYPE_U8: return "uint8";
  }
  return "unknown";
}

// sysctl(8)'s ctl_typename, for "invalid integer 'x'" messages.
const char* ctl_typename(uint32_t type) {
  switch (type) {
    case uk::CTLTYPE_INT: return "integer";
    case uk::CTLTYPE_UINT: return "unsigned integer";
    case uk::CTLTYPE_LONG: return "long integer";
    case uk::CTLTYPE_ULONG: return "unsigned long";
    case uk::CTLTYPE_S64: return "int64_t";
    case uk::CTLTYPE_U64: return "uint64_t";
    case uk::CTLTYPE_U8: return "uint8_t";
  }
  return "value";
}

// Reads one leaf through sysctlbyname(3) on ukernd's process, typed as the
// oid's kind says. Returns 0 or an errno; opaque values read as null.
int read_oid(uk_proc* p, const uk::sysctl_oid_info& oi, json* out) {
  uint32_t type = oi.kind & uk::CTLTYPE;
  const char* name = oi.name.c_str();
  auto fixed = [&](auto zero) -> int {
    decltype(zero) v = zero;
    size_t len = sizeof(v);
    if (uk_sysctlbyname(p, name, &v, &len, nullptr, 0) != 0) return errno;
    if (len != sizeof(v)) return EIO;
    *out = v;
    return 0;
  };
  switch (type) {
    case uk::CTLTYPE_INT: return fixed(int32_t{0});
    case uk::CTLTYPE_UINT: return fixed(uint32_t{0});
    case uk::CTLTYPE_LONG:
    case uk::CTLTYPE_S64: return fixed(int64_t{0});
    case uk::CTLTYPE_ULONG:
    case uk::CTLTYPE_U64: return fixed(uint64_t{0});
    case uk::CTLTYPE_U8: return fixed(uint8_t{0});
    case uk::CTLTYPE_STRING: {
      // The value may grow between the size probe and the read; retry.
      for (int tries = 0; tries < 4; tries++) {
        size_t len = 0;
        if (uk_sysctlbyname(p, name, nullptr, &len, nullptr, 0) != 0) return errno;
        std::string s(len + 64, '\0');
        size_t got = s.size();
        if (uk_sysctlbyname(p, name, s.data(), &got, nullptr, 0) != 0) {
          if (errno == ENOMEM) continue;
          return errno;
        }
        s.resize(strnlen(s.data(), got));
        *out = s;
        return 0;
      }
      return ENOMEM;
    }
    default:
      *out = nullptr;
      return 0;
  }
}

json oid_json(const uk::sysctl_oid_info& oi) {
  uint32_t type = oi.kind & uk::CTLTYPE;
  return {{"name", oi.name},
          {"type", type_name(type)},
          {"format", oi.fmt},
          {"writable", (oi.kind & uk::CTLFLAG_WR) != 0},
          {"tunable", (oi.kind & uk::CTLFLAG_TUN) != 0},
          {"description", oi.descr}};
}

LabKernel* select_kernel(Lab& lab, const Request& req, Fail* f) {
  if (req.kernel.empty()) return &lab.default_kernel();
  if (req.kernel == kAllKernels) {
    *f = {EINVAL, "kernel 'all' is accepted by sessions only"};
    return nullptr;
  }
  LabKernel* k = lab.find(req.kernel);
  if (k == nullptr) {
    *f = {ESRCH, "no kernel named '" + req.kernel + "' in this lab (kernels: " +
                     lab.kernel_names() + ")"};
  }
  return k;
}

bool sysctl_list(LabKernel& k, const std::string& prefix, json* result, Fail* f) {
  std::vector<uk::sysctl_oid_info> infos;
  int error = k.p->k->sysctl->list(prefix, &infos);
  if (error == ENOENT) {
    *f = {ENOENT, "unknown oid '" + prefix + "'"};
    return false;
  }
  if (error != 0) {
    *f = {error, prefix + ": " + errno_words(error)};
    return false;
  }
  json oids = json::array();
  for (const uk::sysctl_oid_info& oi : infos) {
    json o = oid_json(oi);
    json v;
    int e = read_oid(k.p, oi, &v);
    if (e != 0) {
      o["value"] = nullptr;
      o["error"] = errno_name(e);
    } else {
      o["value"] = v;
    }
    oids.push_back(std::move(o));
  }
  *result = {{"oid", std::move(oids)}};
  return true;
}

// Parses |s| as sysctl(8) does for the oid's type (strtol & co, base 0,
// the whole string, in range) into the bytes the handler takes.
bool parse_value(uint32_t type, const std::string& s, std::string* bytes,
                 std::string* msg) {
  if (type == uk::CTLTYPE_STRING) {
    *bytes = s;
    bytes->push_back('\0');
    return true;
  }
  if (s.empty()) {
    *msg = "empty numeric value";
    return false;
  }
  auto bad = [&]() {
    *msg = std::string("invalid ") + ctl_typename(type) + " '" + s + "'";
    return false;
  };
  bool is_unsigned = type == uk::CTLTYPE_UINT || type == uk::CTLTYPE_ULONG ||
                     type == uk::CTLTYPE_U64 || type == uk::CTLTYPE_U8;
  if (s.find_first_of(" \t\n") != std::string::npos) return bad();
  errno = 0;
  char* end = nullptr;
  if (is_unsigned) {
    if (s[0] == '-') return bad();
    unsigned long long v = strtoull(s.c_str(), &end, 0);
    if (errno != 0 || end == s.c_str() || *end != '\0') return bad();
    auto put = [&](auto x) {
      bytes->assign(reinterpret_cast<const char*>(&x), sizeof(x));
      return true;
    };
    switch (type) {
      case uk::CTLTYPE_U8:
        if (v > UINT8_MAX) return bad();
        return put(static_cast<uint8_t>(v));
      case uk::CTLTYPE_UINT:
        if (v > UINT32_MAX) return bad();
        return put(static_cast<uint32_t>(v));
      default:
        return put(static_cast<uint64_t>(v));
    }
  }
  long long v = strtoll(s.c_str(), &end, 0);
  if (errno != 0 || end == s.c_str() || *end != '\0') return bad();
  if (type == uk::CTLTYPE_INT) {
    if (v < INT32_MIN || v > INT32_MAX) return bad();
    int32_t x = static_cast<int32_t>(v);
    bytes->assign(reinterpret_cast<const char*>(&x), sizeof(x));
    return true;
  }
  if (type == uk::CTLTYPE_LONG || type == uk::CTLTYPE_S64) {
    int64_t x = v;
    bytes->assign(reinterpret_cast<const char*>(&x), sizeof(x));
    return true;
  }
  return bad();
}

bool sysctl_set(LabKernel& k, const Request& req, json* result, Fail* f) {
  uk::sysctl_oid_info oi;
  const std::string& name = req.name;
  if (k.p->k->sysctl->describe(name, &oi) != 0) {
    *f = {ENOENT, "unknown oid '" + name + "'"};
    return false;
  }
  uint32_t type = oi.kind & uk::CTLTYPE;
  if (type == uk::CTLTYPE_NODE) {
    *f = {EISDIR, "oid '" + name + "' isn't a leaf node"};
    return false;
  }
  if (!(oi.kind & uk::CTLFLAG_WR)) {
    if (oi.kind & uk::CTLFLAG_TUN) {
      *f = {EPERM, "oid '" + name + "' is a read only tunable"};
    } else {
      *f = {EPERM, "oid '" + name + "' is read only"};
    }
    return false;
  }
  switch (type) {
    case uk::CTLTYPE_INT: case uk::CTLTYPE_UINT: case uk::CTLTYPE_LONG:
    case uk::CTLTYPE_ULONG: case uk::CTLTYPE_S64: case uk::CTLTYPE_U64:
    case uk::CTLTYPE_U8: case uk::CTLTYPE_STRING:
      break;
    default:
      *f = {EINVAL, "oid '" + name + "' is type " + std::to_string(type) +
                        ", cannot set that"};
      return false;
  }
  std::string bytes, msg;
  if (!parse_value(type, req.value, &bytes, &msg)) {
    *f = {EINVAL, msg};
    return false;
  }
  json before, after;
  int e = read_oid(k.p, oi, &before);
  if (e == 0 &&
      uk_sysctlbyname(k.p, name.c_str(), nullptr, nullptr, bytes.data(), bytes.size()) != 0)
    e = errno;
  if (e == 0) e = read_oid(k.p, oi, &after);
  if (e != 0) {
    *f = {e, name + "=" + req.value + ": " + errno_words(e)};
    return false;
  }
  json o = oid_json(oi);
  o["old"] = before;
  o["new"] = after;
  *result = std::move(o);
  return true;
}

// kern.ipc.tls leaves grouped by their parent node below kern.ipc.tls
// ("stats", "stats.ocf", "sw", "ifnet", "toe"; "config" for the knobs
// directly under kern.ipc.tls).
bool stats(LabKernel& k, json* result, Fail* f) {
  std::vector<uk::sysctl_oid_info> infos;
  const std::string root = "kern.ipc.tls";
  if (int e = k.p->k->sysctl->list(root, &infos); e != 0) {
    *f = {e, root + ": " + errno_words(e)};
    return false;
  }
  json groups = json::object();
  for (const uk::sysctl_oid_info& oi : infos) {
    json v;
    if (read_oid(k.p, oi, &v) != 0 || v.is_null()) continue;
    std::string rel = oi.name.substr(root.size() + 1);
    size_t dot = rel.rfind('.');
    std::string group = dot == std::string::npos ? "config" : rel.substr(0, dot);
    std::string leaf = dot == std::string::npos ? rel : rel.substr(dot + 1);
    groups[group][leaf] = v;
  }
  auto now = std::chrono::steady_clock::now();
  double uptime = std::chrono::duration<double>(now - k.booted).count();
  *result = {{"groups", std::move(groups)}, {"uptime", uptime}};
  return true;
}

bool kernels(Lab& lab, json* result) {
  json list = json::array();
  auto now = std::chrono::steady_clock::now();
  for (LabKernel& k : lab.kernels()) {
    json tun = json::object();
    for (const auto& [n, v] : k.spec->tunables) tun[n] = v;
    list.push_back({{"name", k.spec->name},
                    {"hostname", k.p->k->hostname},
                    {"ncpus", k.p->k->ncpus},
                    {"default", &k == &lab.default_kernel()},
                    {"uptime", std::chrono::duration<double>(now - k.booted).count()},
                    {"nic", k.nics},
                    {"tunables", std::move(tun)}});
  }
  *result = {{"kernel", std::move(list)}};
  return true;
}

// --- sessions, mode --------------------------------------------------------

std::string addr_port(const sockaddr_in& sin) {
  char a[INET_ADDRSTRLEN];
  inet_ntop(AF_INET, &sin.sin_addr, a, sizeof a);
  return std::string(a) + ":" + std::to_string(ntohs(sin.sin_port));
}

// OpenSSL-style suite names for a session's algorithms.
std::string cipher_name(const uk::ktls_session_info& si) {
  std::string bits = std::to_string(si.cipher_key_len * 8);
  switch (si.cipher_algorithm) {
    case CRYPTO_AES_NIST_GCM_16: return "AES-" + bits + "-GCM";
    case CRYPTO_CHACHA20_POLY1305: return "CHACHA20-POLY1305";
    case CRYPTO_SM4_GCM_16: return "SM4-GCM";
    case CRYPTO_SM4_CCM_16: return "SM4-CCM";
    case CRYPTO_AES_CBC: {
      const char* mac = si.auth_algorithm == CRYPTO_SHA1_HMAC       ? "-SHA1"
                        : si.auth_algorithm == CRYPTO_SHA2_256_HMAC ? "-SHA256"
                        : si.auth_algorithm == CRYPTO_SHA2_384_HMAC ? "-SHA384"
                                                                    : "";
      return "AES-" + bits + "-CBC" + mac;
    }
  }
  return "cipher-" + std::to_string(si.cipher_algorithm);
}

std::string version_name(uint8_t vmajor, uint8_t vminor) {
  if (vmajor == TLS_MAJOR_VER_ONE && vminor >= TLS_MINOR_VER_ZERO &&
      vminor <= TLS_MINOR_VER_THREE)
    return "TLS1." + std::to_string(vminor - 1);
  return std::to_string(vmajor) + "." + std::to_string(vminor);
}

const char* mode_name(int mode) {
  switch (mode) {
    case TCP_TLS_MODE_SW: return "SW";
    case TCP_TLS_MODE_IFNET: return "IFNET";
    case TCP_TLS_MODE_TOE: return "TOE";
  }
  return "NONE";
}

void add_sessions(LabKernel& k, json* list) {
  for (const uk::ktls_session_info& si : uk::ktls_session_list(*k.p->k)) {
    list->push_back({{"kernel", k.spec->name},
                     {"id", si.id},
                     {"local", addr_port(si.local)},
                     {"foreign", addr_port(si.foreign)},
                     {"direction", si.direction == uk::KTLS_TX ? "tx" : "rx"},
                     {"mode", mode_name(si.mode)},
                     {"cipher", cipher_name(si)},
                     {"version", version_name(si.tls_vmajor, si.tls_vminor)},
                     {"personality", si.linux_personality ? "linux" : "freebsd"},
                     {"records", si.records},
                     {"bytes", si.bytes},
                     {"tcp-state", si.tcp_state ? si.tcp_state : ""}});
  }
}

// What ktls_set_tx_mode()'s errors mean for a switch to |mode|.
std::string mode_error_words(int error, const std::string& mode) {
  switch (error) {
    case EINVAL:
      return "invalid mode '" + mode + "' for TCP_TXTLS_MODE (EINVAL)";
    case ENXIO:
      return "no interface to offload to: no route, or kern.ipc.tls.ifnet.permitted=0 (ENXIO)";
    case EOPNOTSUPP:
      return mode == "ifnet"
                 ? "the outgoing interface cannot offload this session: no TXTLS "
                   "capability enabled, or the suite is not supported (EOPNOTSUPP)"
                 : "operation not supported (EOPNOTSUPP)";
    case EBUSY:
      return "the session changed while switching (rekeyed); try again (EBUSY)";
    case ECONNRESET:
      return "the connection was dropped (ECONNRESET)";
    case ENOBUFS:
    case ENOMEM:
      return "out of memory for the new session (" + errno_name(error) + ")";
  }
  return strerror(error) + std::string(" (") + errno_name(error) + ")";
}

bool set_mode(LabKernel& k, const Request& req, json* result, Fail* f) {
  const std::string& id = req.name;
  char* end = nullptr;
  errno = 0;
  unsigned long long n = strtoull(id.c_str(), &end, 10);
  if (id.empty() || id[0] == '-' || *end != '\0' || errno != 0 || n == 0) {
    *f = {EINVAL, "session '" + id + "': not a session id (a number from ktlsctl sessions)"};
    return false;
  }
  int mode = req.value == "sw"      ? TCP_TLS_MODE_SW
             : req.value == "ifnet" ? TCP_TLS_MODE_IFNET
                                    : TCP_TLS_MODE_TOE;
  int error = uk::ktls_session_set_tx_mode(*k.p->k, n, mode);
  if (error == ENOENT) {
    *f = {ENOENT, "session " + id + ": no such session in kernel " + k.spec->name};
    return false;
  }
  if (error == EOPNOTSUPP && mode != TCP_TLS_MODE_IFNET) {
    bool rx = false;
    for (const uk::ktls_session_info& si : uk::ktls_session_list(*k.p->k))
      rx = rx || (si.id == n && si.direction == uk::KTLS_RX);
    if (rx) {
      *f = {EOPNOTSUPP, "session " + id +
                            " is a receive session: only transmit sessions "
                            "switch mode (TCP_TXTLS_MODE) (EOPNOTSUPP)"};
      return false;
    }
  }
  if (error != 0) {
    *f = {error, "session " + id + ": switch to " + req.value + ": " +
                     mode_error_words(error, req.value)};
    return false;
  }
  std::string now = "NONE";
  for (const uk::ktls_session_info& si : uk::ktls_session_list(*k.p->k))
    if (si.id == n) now = mode_name(si.mode);
  *result = {{"session", n}, {"mode", now}};
  return true;
}

// --- ifconfig listing -------------------------------------------------------

// ifconfig(8)'s IFFBITS names, by bit.
const char* const kIffNames[16] = {
    "UP",      "BROADCAST", "DEBUG",   "LOOPBACK", "POINTOPOINT", "NEEDSEPOCH",
    "RUNNING", "NOARP",     "PROMISC", "ALLMULTI", "OACTIVE",     "SIMPLEX",
    "LINK0",   "LINK1",     "LINK2",   "MULTICAST"};

json bit_names(uint32_t word, uint32_t word2, bool caps) {
  json names = json::array();
  for (int b = 0; b < 32; b++) {
    if (!(word & (1u << b))) continue;
    const char* n = caps ? uk::ifcap_name(b) : (b < 16 ? kIffNames[b] : nullptr);
    names.push_back(n ? std::string(n) : "bit" + std::to_string(b));
  }
  for (int b = 0; caps && b < 32; b++) {
    if (!(word2 & (1u << b))) continue;
    const char* n = uk::ifcap2_name(b);
    names.push_back(n ? std::string(n) : "bit2." + std::to_string(b));
  }
  return names;
}

std::string ipstr(in_addr a) {
  char buf[INET_ADDRSTRLEN];
  inet_ntop(AF_INET, &a, buf, sizeof buf);
  return buf;
}

json interface_json(uk::kernel& kern, uk::ifnet* ifp,
                    const std::vector<uk::in_ifaddr>& addrs) {
  uint32_t flags = static_cast<uint32_t>(ifp->if_flags.load());
  uint32_t capen = ifp->if_capenable.load(), capen2 = ifp->if_capenable2.load();
  uint32_t caps = ifp->if_capabilities.load(), caps2 = ifp->if_capabilities2.load();
  std::shared_ptr<uk::NicSim> nic = uk::nic_sim_find(kern, ifp->if_xname);
  if (nic) {
    caps = nic->capabilities();
    caps2 = nic->capabilities2();
  }
  json inet = json::array();
  for (const uk::in_ifaddr& a : addrs) {
    char mask[16];
    snprintf(mask, sizeof mask, "0x%08x", ntohl(a.ia_netmask.s_addr));
    json j = {{"address", ipstr(a.ia_addr)}, {"netmask", mask}, {"prefixlen", a.ia_plen}};
    if (flags & uk::IFF_BROADCAST) {
      in_addr b;
      b.s_addr = a.ia_addr.s_addr | ~a.ia_netmask.s_addr;
      j["broadcast"] = ipstr(b);
    }
    inet.push_back(std::move(j));
  }
  json i = {{"name", ifp->if_xname},
            {"flags", flags},
            {"flags-names", bit_names(flags, 0, false)},
            {"metric", 0},
            {"mtu", ifp->if_mtu.load()},
            {"options", capen},
            {"options2", capen2},
            {"options-names", bit_names(capen, capen2, true)},
            {"capabilities", caps},
            {"capabilities2", caps2},
            {"capabilities-names", bit_names(caps, caps2, true)},
            {"inet", std::move(inet)}};
  if (nic) {
    i["ether"] = uk::ether_sprintf(nic->mac());
    std::string media = "Ethernet autoselect";
    if (auto w = nic->wire()) {
      uk::WireParams p = w->params();
      if (p.bw_bps) {
        std::string bw = uk::format_bandwidth(p.bw_bps);  // "10g"
        for (char& ch : bw) ch = static_cast<char>(toupper(static_cast<unsigned char>(ch)));
        media += " (" + bw + "bit/s <full-duplex>)";
      }
    }
    i["media"] = media;
    i["status"] = nic->link_active() ? "active" : "no carrier";
  }
  return i;
}

bool ifconfig_list(LabKernel& k, const std::string& name, json* result, Fail* f) {
  uk::kernel& kern = *k.p->k;
  if (!kern.net) {
    *f = {ENXIO, "this kernel has no network stack"};
    return false;
  }
  std::vector<std::pair<uk::RefPtr<uk::ifnet>, std::vector<uk::in_ifaddr>>> ifs;
  {
    uk::MutexLock l(&kern.net->if_mu);
    for (const uk::RefPtr<uk::ifnet>& ifp : kern.net->ifnets)
      if (name.empty() || ifp->if_xname == name) ifs.emplace_back(ifp, ifp->if_addrs);
  }
  if (!name.empty() && ifs.empty()) {
    *f = {ENOENT, "interface " + name + " does not exist"};
    return false;
  }
  json list = json::array();
  for (auto& [ifp, addrs] : ifs) list.push_back(interface_json(kern, ifp.get(), addrs));
  *result = {{"interface", std::move(list)}};
  return true;
}

// --- netstat -i -------------------------------------------------------------

// The interface table as netstat(1) -i builds it: net.link.generic's
// ifcount, then each index's struct ifmibdata (ENOENT: a hole left by a
// destroyed interface), read through the kernel's sysctl like any client;
// addresses from the interface list.
bool netstat_interfaces(LabKernel& k, const std::string& name, json* result, Fail* f) {
  uk::kernel& kern = *k.p->k;
  if (!kern.net) {
    *f = {ENXIO, "this kernel has no network stack"};
    return false;
  }
  int count = 0;
  size_t len = sizeof count;
  if (uk_sysctlbyname(k.p, "net.link.generic.system.ifcount", &count, &len, nullptr, 0) != 0) {
    int e = errno;
    *f = {e, "net.link.generic.system.ifcount: " + errno_words(e)};
    return false;
  }
  json list = json::array();
  for (int i = 1; i <= count; i++) {
    uk::ifmibdata md;
    len = sizeof md;
    std::string oid = "net.link.generic.ifdata." + std::to_string(i) + ".general";
    if (uk_sysctlbyname(k.p, oid.c_str(), &md, &len, nullptr, 0) != 0) continue;
    std::string ifname(md.ifmd_name, strnlen(md.ifmd_name, sizeof md.ifmd_name));
    if (!name.empty() && ifname != name) continue;
    const uk::if_data& d = md.ifmd_data;
    json inet = json::array();
    if (uk::RefPtr<uk::ifnet> ifp = uk::ifunit(kern, ifname)) {
      std::vector<uk::in_ifaddr> addrs;
      {
        uk::MutexLock l(&kern.net->if_mu);
        addrs = ifp->if_addrs;
      }
      for (const uk::in_ifaddr& a : addrs) {
        in_addr net;
        net.s_addr = a.ia_addr.s_addr & a.ia_netmask.s_addr;
        inet.push_back({{"network", ipstr(net) + "/" + std::to_string(a.ia_plen)},
                        {"address", ipstr(a.ia_addr)}});
      }
    }
    std::string link;  // netstat shows the MAC, or the name for lo0
    if (std::shared_ptr<uk::NicSim> nic = uk::nic_sim_find(kern, ifname))
      link = uk::ether_sprintf(nic->mac());
    else
      link = ifname;
    list.push_back({{"name", ifname},
                    {"index", i},
                    {"flags", md.ifmd_flags},
                    {"mtu", d.ifi_mtu},
                    {"network", "<Link#" + std::to_string(i) + ">"},
                    {"address", link},
                    {"received-packets", d.ifi_ipackets},
                    {"received-errors", d.ifi_ierrors},
                    {"dropped-packets", d.ifi_iqdrops},
                    {"received-bytes", d.ifi_ibytes},
                    {"sent-packets", d.ifi_opackets},
                    {"send-errors", d.ifi_oerrors},
                    {"send-drops", d.ifi_oqdrops},
                    {"sent-bytes", d.ifi_obytes},
                    {"collisions", d.ifi_collisions},
                    {"link-state", d.ifi_link_state},
                    {"baudrate", d.ifi_baudrate},
                    {"inet", std::move(inet)}});
  }
  if (!name.empty() && list.empty()) {
    *f = {ENOENT, "interface " + name + " does not exist"};
    return false;
  }
  *result = {{"interface", std::move(list)}};
  return true;
}

// --- pcap -------------------------------------------------------------------

// Frames between the NIC's threads (the bpf sink) and the request thread
// that streams them. Bounded: a reader slower than the link loses frames,
// counted, as a full bpf(4) buffer does (bs_drop).
struct CaptureQueue {
  struct Frame {
    uint64_t ts_ns;
    uint32_t origlen;
    std::string bytes;
  };
  static constexpr size_t kMaxFrames = 8192;
  uk::Mutex mu;
  uk::CondVar cv;
  std::deque<Frame> q ABSL_GUARDED_BY(mu);
  uint64_t dropped ABSL_GUARDED_BY(mu) = 0;
};

bool pcap(LabKernel& k, const Request& req, const EmitFn& emit, json* result, Fail* f) {
  uk::kernel& kern = *k.p->k;
  std::shared_ptr<uk::NicSim> nic = uk::nic_sim_find(kern, req.name);
  if (!nic) {
    if (kern.net && uk::ifunit(kern, req.name)) {
      *f = {EOPNOTSUPP, req.name + ": no capture tap (bpf) on this interface; capture on a nic_sim"};
    } else {
      *f = {ENOENT, "interface " + req.name + " does not exist"};
    }
    return false;
  }
  auto cq = std::make_shared<CaptureQueue>();
  int error = nic->bpf().start_sink(
      [cq](uint64_t ts, const uint8_t* frame, size_t caplen, size_t origlen) {
        uk::MutexLock l(&cq->mu);
        if (cq->q.size() >= CaptureQueue::kMaxFrames) {
          cq->dropped++;
          return;
        }
        cq->q.push_back({ts, static_cast<uint32_t>(origlen),
                         std::string(reinterpret_cast<const char*>(frame), caplen)});
        cq->cv.Signal();
      });
  if (error != 0) {
    *f = {error, req.name + ": " +
                     (error == EBUSY ? std::string("a capture is already running (EBUSY)")
                                     : errno_words(error))};
    return false;
  }
  const auto start = std::chrono::steady_clock::now();
  auto elapsed = [&] {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  };
  bool alive = emit(make_event(req.id, "pcap-header",
                               {{"linktype", 1}, {"snaplen", uk::BPF_DEFAULT_SNAPLEN}}));
  int64_t packets = 0;
  uint64_t dropped = 0;
  auto last_beat = std::chrono::steady_clock::now();
  static const char kHex[] = "0123456789abcdef";
  while (alive && (req.count == 0 || packets < req.count) &&
         (req.seconds == 0 || elapsed() < req.seconds)) {
    std::deque<CaptureQueue::Frame> batch;
    {
      uk::MutexLock l(&cq->mu);
      if (cq->q.empty()) cq->cv.WaitWithTimeout(&cq->mu, absl::Milliseconds(100));
      batch.swap(cq->q);
      dropped = cq->dropped;
    }
    for (CaptureQueue::Frame& fr : batch) {
      if (!alive || (req.count != 0 && packets >= req.count)) break;
      if (req.seconds != 0 && elapsed() >= req.seconds) break;
      std::string hex;
      hex.resize(fr.bytes.size() * 2);
      for (size_t i = 0; i < fr.bytes.size(); i++) {
        hex[2 * i] = kHex[static_cast<uint8_t>(fr.bytes[i]) >> 4];
        hex[2 * i + 1] = kHex[static_cast<uint8_t>(fr.bytes[i]) & 15];
      }
      alive = emit(make_event(req.id, "packet",
                              {{"ts-sec", fr.ts_ns / 1000000000u},
                               {"ts-usec", fr.ts_ns % 1000000000u / 1000u},
                               {"orig-len", fr.origlen},
                               {"hex", std::move(hex)}}));
      packets++;
    }
    // A quiet link still tells a reader that went away (the send fails).
    if (alive && std::chrono::steady_clock::now() - last_beat > std::chrono::seconds(1)) {
      alive = emit(make_event(req.id, "pcap-progress",
                              {{"packets", packets}, {"dropped", dropped}}));
      last_beat = std::chrono::steady_clock::now();
    }
  }
  nic->bpf().stop();  // the sink is never called after this
  {
    uk::MutexLock l(&cq->mu);
    dropped = cq->dropped;
  }
  *result = {{"interface", req.name}, {"packets", packets}, {"dropped", dropped}};
  return true;
}

// --- test connections -------------------------------------------------------

bool conn_open(Lab& lab, LabKernel& k, const Request& req, json* result, Fail* f) {
  LabKernel* peer = nullptr;
  if (req.peer.empty()) {
    // The other kernel of a two-kernel lab; else the same kernel (lo0).
    for (LabKernel& o : lab.kernels())
      if (&o != &k) {
        peer = &o;
        break;
      }
    if (peer == nullptr) peer = &k;
  } else {
    peer = lab.find(req.peer);
    if (peer == nullptr) {
      *f = {ESRCH, "no kernel named '" + req.peer + "' in this lab (kernels: " +
                       lab.kernel_names() + ")"};
      return false;
    }
  }
  ConnOptions o;
  if (!req.cipher.empty()) o.cipher = req.cipher;
  if (!req.tls_version.empty()) o.version = req.tls_version;
  if (!req.personality.empty()) o.personality = req.personality;
  std::string msg;
  int e = lab.conns().open(k, *peer, o, result, &msg);
  if (e != 0) {
    *f = {e, "conn.open " + k.spec->name + " -> " + peer->spec->name + ": " + msg};
    return false;
  }
  return true;
}

bool dispatch(Lab& lab, const Request& req, const EmitFn& emit, json* result,
              std::string* kernel, Fail* f) {
  switch (req.op) {
    case Op::kHello:
      *result = {{"daemon", "ukernd"},
                 {"protocol", kProtocolVersion},
                 {"pid", static_cast<int64_t>(getpid())},
                 {"uid", static_cast<int64_t>(geteuid())},
                 {"lab", lab.spec().name},
                 {"default-kernel", lab.default_kernel().spec->name}};
      return true;
    case Op::kLab:
      *result = lab.spec().to_json();
      return true;
    case Op::kKernels:
      return kernels(lab, result);
    case Op::kServices: {
      json list = json::array();
      for (const ServiceSpec& s : lab.spec().services) {
        auto [state, info] = lab.service_state(s.name);
        json j = {{"name", s.name}, {"type", s.type}, {"kernel", s.kernel},
                  {"state", state}};
        for (const auto& [k, v] : s.options) j[k] = v;
        for (const auto& [k, v] : info.items()) j[k] = v;
        list.push_back(std::move(j));
      }
      *result = {{"service", std::move(list)}};
      return true;
    }
    case Op::kSessions: {
      json list = json::array();
      if (req.kernel == kAllKernels) {
        for (LabKernel& k : lab.kernels()) add_sessions(k, &list);
      } else {
        LabKernel* k = select_kernel(lab, req, f);
        if (k == nullptr) return false;
        *kernel = k->spec->name;
        add_sessions(*k, &list);
      }
      *result = {{"session", std::move(list)}};
      return true;
    }
    case Op::kConnList:
      *result = {{"conn", lab.conns().list()}};
      return true;
    case Op::kConnSend: {
      std::string msg;
      int e = lab.conns().send(static_cast<int>(req.conn),
                               static_cast<uint64_t>(req.bytes), result, &msg);
      if (e != 0) *f = {e, msg};
      return e == 0;
    }
    case Op::kConnClose: {
      std::string msg;
      int e = lab.conns().close(static_cast<int>(req.conn), &msg);
      if (e != 0) *f = {e, msg};
      *result = {{"conn", req.conn}};
      return e == 0;
    }
    default:
      break;
  }

  LabKernel* k = select_kernel(lab, req, f);
  if (k == nullptr) return false;
  *kernel = k->spec->name;
  switch (req.op) {
    case Op::kSysctlList:
      return sysctl_list(*k, req.name, result, f);
    case Op::kSysctlSet:
      return sysctl_set(*k, req, result, f);
    case Op::kDmesg:
      *result = {{"text", k->p->k->dmesg->read()}};
      return true;
    case Op::kStats:
      return stats(*k, result, f);
    case Op::kKldstat: {
      json files = json::array();
      for (const uk::kld_file_stat& st : uk::kldstat(*k->p->k)) {
        files.push_back({{"id", st.id},
                         {"refs", st.refs},
                         {"name", st.name},
                         {"pathname", st.pathname},
                         {"modules", st.modules},
                         {"users", st.users}});
      }
      *result = {{"module", files}};
      return true;
    }
    case Op::kKldload: {
      int id = uk_kldload(k->p, req.name.c_str());
      if (id < 0) {
        int e = errno;
        *f = {e, "can't load " + req.name + ": " + errno_words(e)};
        return false;
      }
      *result = {{"module", req.name}, {"id", id}};
      return true;
    }
    case Op::kKldunload: {
      int id = uk_kldfind(k->p, req.name.c_str());
      if (id < 0) {
        int e = errno;
        *f = {e, e == ENOENT ? "can't find file " + req.name
                             : "can't find file " + req.name + ": " + errno_words(e)};
        return false;
      }
      if (uk_kldunload(k->p, id) != 0) {
        int e = errno;
        *f = {e, "can't unload file " + req.name + ": " + errno_words(e)};
        return false;
      }
      *result = {{"module", req.name}, {"id", id}};
      return true;
    }
    case Op::kMode:
      return set_mode(*k, req, result, f);
    case Op::kConnOpen:
      return conn_open(lab, *k, req, result, f);
    case Op::kIfconfig: {
      if (req.args.empty()) return ifconfig_list(*k, req.name, result, f);
      std::string args;
      for (const std::string& a : req.args) {
        if (!args.empty()) args += " ";
        args += a;
      }
      if (uk_ifconfig(k->k, req.name.c_str(), args.c_str()) != 0) {
        int e = errno;
        *f = {e, req.name + ": " + errno_words(e)};
        return false;
      }
      *result = {{"interface", req.name}, {"args", req.args}};
      return true;
    }
    case Op::kPcap:
      return pcap(*k, req, emit, result, f);
    case Op::kNetstat:
      return netstat_interfaces(*k, req.name, result, f);
    default:
      *f = {EOPNOTSUPP, std::string("op '") + op_name(req.op) + "' not handled"};
      return false;
  }
}

}  // namespace

json run_request(Lab& lab, const Request& req, const EmitFn& emit) {
  json result;
  std::string kernel;
  Fail f{0, ""};
  try {
    if (dispatch(lab, req, emit, &result, &kernel, &f))
      return make_reply(req.id, kernel, std::move(result));
  } catch (const std::exception& e) {
    // A bug, not a client error: report it and keep serving.
    f = {EIO, std::string("internal error: ") + e.what()};
  }
  json err = make_error(req.id, f.error, f.message);
  if (!kernel.empty()) err["kernel"] = kernel;
  return err;
}

std::string sysctl_text(LabKernel& k, const std::string& prefix) {
  json result;
  Fail f{0, ""};
  if (!sysctl_list(k, prefix, &result, &f)) return f.message + "\n";
  std::string out;
  for (const json& o : result["oid"]) {
    if (o["value"].is_null()) continue;
    out += o["name"].get<std::string>() + ": ";
    out += o["value"].is_string() ? o["value"].get<std::string>() : o["value"].dump();
    out += "\n";
  }
  return out;
}

std::map<std::string, double> sysctl_numbers(LabKernel& k, const std::string& prefix) {
  std::map<std::string, double> out;
  json result;
  Fail f{0, ""};
  if (!sysctl_list(k, prefix, &result, &f)) return out;
  for (const json& o : result["oid"]) {
    if (o["value"].is_number()) out[o["name"].get<std::string>()] = o["value"].get<double>();
  }
  return out;
}

}  // namespace ukernd
