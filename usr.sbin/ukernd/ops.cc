#include "usr.sbin/ukernd/ops.h"

#include <unistd.h>

#include <cerrno>
#include <cinttypes>
#include <climits>
#include <cstring>
#include <map>

#include "sys/kern/kern_proc.h"
#include "sys/kern/kernel.h"
#include "sys/kern/subr_prf.h"
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

// Not built yet on the kernel side: the reply every such request gets.
bool unsupported(Fail* f, std::string what = "") {
  *f = {ENOSYS, (what.empty() ? "" : what + ": ") + errno_words(ENOSYS)};
  return false;
}

bool dispatch(Lab& lab, const Request& req, const EmitFn& emit, json* result,
              std::string* kernel, Fail* f) {
  (void)emit;  // pcap will stream through it
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
    case Op::kSessions:
      if (req.kernel != kAllKernels) {
        LabKernel* k = select_kernel(lab, req, f);
        if (k == nullptr) return false;
        *kernel = k->spec->name;
      }
      // Waits for a session listing of the KTLS layer (issue [C]).
      return unsupported(f);
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
      // Waits for a session lookup by id and TCP_TXTLS_MODE (issues [C], [G]).
      return unsupported(f, "session " + req.name);
    case Op::kIfconfig: {
      if (req.args.empty()) {
        // Waits for an interface listing with options/capabilities (ifnet).
        return unsupported(f, req.name);
      }
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
      // Waits for the packet tap of sys/net (bpf/pcap); packets will be
      // streamed as "packet" events through |emit|.
      return unsupported(f, req.name);
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
