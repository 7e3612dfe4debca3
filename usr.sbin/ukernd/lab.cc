// Lab files: TOML through Debian's toml++ (libtomlplusplus-dev).
#include "usr.sbin/ukernd/lab.h"

#include <arpa/inet.h>

#include <cctype>
#include <fstream>
#include <set>
#include <sstream>

// Debian ships toml++ as a shared library; its pkg-config flags say so, but
// Bazel does not forward a dependency's -D flags, so they are repeated here.
#define TOML_HEADER_ONLY 0
#define TOML_SHARED_LIB 1
#include "toml++/toml.h"

namespace ukernd {

namespace {

constexpr std::string_view kDefaultLab = R"(# The default lab of ukernd: two kernels joined by one wire.
# Copy this file (ukernd --print-lab > lab.toml), edit it, and run
# ukernd -f lab.toml. The first kernel is the default for ktlsctl -k.
name = "default"

[[kernel]]
name = "server"
# ncpus = 0 means one emulated CPU per host core.
ncpus = 0
[kernel.tunables]
"kern.ipc.tls.ifnet.permitted" = 1
# nic_sim comes up with no offload on; these are what a KTLS-capable NIC
# (mlx5en, cxgbe) turns on at attach: checksums, TSO, LRO and unmapped
# (M_EXTPG) mbufs. Without them the host CPU checksums every 1,448-byte
# segment and TCP hands the NIC one segment at a time.
[[kernel.nic]]
name = "nic_sim0"
inet = "10.0.0.1/24"
options = ["txcsum", "rxcsum", "tso", "lro", "mextpg"]

[[kernel]]
name = "client"
ncpus = 0
[kernel.tunables]
"kern.ipc.tls.ifnet.permitted" = 1
[[kernel.nic]]
name = "nic_sim0"
inet = "10.0.0.2/24"
options = ["txcsum", "rxcsum", "tso", "lro", "mextpg"]

[[wire]]
a = "server:nic_sim0"
b = "client:nic_sim0"
bandwidth = "10g"
delay = "20us"

# ukhttpd, the HTTPS file server, in the server kernel (its docroot: the
# generated default, or ukernd --docroot DIR).
[[service]]
name = "https"
type = "ukhttpd"
kernel = "server"
listen = "0.0.0.0:443"

# The host bridge: host connections to 127.0.0.1:8443 (ukernd --bridge)
# are carried into the lab through the client kernel to the https service.
[[service]]
name = "bridge"
type = "bridge"
kernel = "client"
listen = "127.0.0.1:8443"
target = "https"
)";

std::string where(std::string_view source, const toml::node& n) {
  const toml::source_region& r = n.source();
  std::ostringstream o;
  o << source << ":" << r.begin.line << ":" << r.begin.column << ": ";
  return o.str();
}

bool valid_name(std::string_view s) {
  if (s.empty() || s.size() > 64) return false;
  for (char c : s) {
    if (!(isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-'))
      return false;
  }
  return true;
}

bool valid_inet(std::string_view s) {
  size_t slash = s.find('/');
  std::string addr(s.substr(0, slash));
  in_addr a;
  if (inet_pton(AF_INET, addr.c_str(), &a) != 1) return false;
  if (slash == std::string_view::npos) return true;
  std::string_view len = s.substr(slash + 1);
  if (len.empty() || len.size() > 2) return false;
  int n = 0;
  for (char c : len) {
    if (!isdigit(static_cast<unsigned char>(c))) return false;
    n = n * 10 + (c - '0');
  }
  return n <= 32;
}

// "10g", "2.5g", "100m", "1000000": a number with an optional k/m/g.
bool valid_bandwidth(std::string_view s) {
  if (s.empty()) return false;
  size_t i = 0;
  bool digits = false, dot = false;
  for (; i < s.size(); i++) {
    char c = s[i];
    if (isdigit(static_cast<unsigned char>(c))) {
      digits = true;
    } else if (c == '.' && !dot) {
      dot = true;
    } else {
      break;
    }
  }
  if (!digits) return false;
  std::string_view rest = s.substr(i);
  return rest.empty() || rest == "k" || rest == "m" || rest == "g" ||
         rest == "K" || rest == "M" || rest == "G";
}

// "20us", "1ms", "0": a number with a time unit (none only for zero).
bool valid_delay(std::string_view s) {
  size_t i = 0;
  bool digits = false, dot = false, nonzero = false;
  for (; i < s.size(); i++) {
    char c = s[i];
    if (isdigit(static_cast<unsigned char>(c))) {
      digits = true;
      if (c != '0') nonzero = true;
    } else if (c == '.' && !dot) {
      dot = true;
    } else {
      break;
    }
  }
  if (!digits) return false;
  std::string_view unit = s.substr(i);
  if (unit.empty()) return !nonzero;
  return unit == "ns" || unit == "us" || unit == "ms" || unit == "s";
}

std::string scalar_string(const toml::node& n, bool* ok) {
  *ok = true;
  if (auto s = n.value<std::string>(); s && n.is_string()) return *s;
  if (n.is_integer()) return std::to_string(*n.value<int64_t>());
  if (n.is_boolean()) return *n.value<bool>() ? "1" : "0";
  if (n.is_floating_point()) {
    std::ostringstream o;
    o << *n.value<double>();
    return o.str();
  }
  *ok = false;
  return "";
}

class Parser {
 public:
  Parser(std::string_view source, std::string* err) : src_(source), err_(err) {}

  bool fail(const toml::node& n, const std::string& msg) {
    *err_ = where(src_, n) + msg;
    return false;
  }

  bool check_keys(const toml::table& t, std::initializer_list<std::string_view> keys,
                  std::string_view what) {
    for (const auto& [k, v] : t) {
      bool known = false;
      for (std::string_view want : keys) known = known || k.str() == want;
      if (!known)
        return fail(v, "unknown key '" + std::string(k.str()) + "' in " +
                           std::string(what));
    }
    return true;
  }

  bool get_string(const toml::table& t, std::string_view key, std::string* out,
                  bool required, std::string_view what) {
    const toml::node* n = t.get(key);
    if (n == nullptr) {
      if (required) {
        *err_ = std::string(src_) + ":" + std::to_string(t.source().begin.line) +
                ":" + std::to_string(t.source().begin.column) + ": " +
                std::string(what) + " needs '" + std::string(key) + "'";
        return false;
      }
      return true;
    }
    if (!n->is_string())
      return fail(*n, "'" + std::string(key) + "' must be a string");
    *out = *n->value<std::string>();
    return true;
  }

  // A tunables table, flattened: nested tables from unquoted dotted keys
  // (kern.ipc.tls.enable = 1) give the same names as quoted ones.
  bool tunables(const toml::table& t, const std::string& prefix,
                std::vector<std::pair<std::string, std::string>>* out) {
    for (const auto& [k, v] : t) {
      std::string name = prefix.empty() ? std::string(k.str())
                                        : prefix + "." + std::string(k.str());
      if (const toml::table* sub = v.as_table()) {
        if (!tunables(*sub, name, out)) return false;
        continue;
      }
      bool ok;
      std::string value = scalar_string(v, &ok);
      if (!ok) return fail(v, "tunable '" + name + "' must be a number, boolean or string");
      if (value.find(',') != std::string::npos)
        return fail(v, "tunable '" + name + "' may not contain ','");
      out->emplace_back(name, value);
    }
    return true;
  }

  bool nic(const toml::table& t, NicSpec* n) {
    if (!check_keys(t, {"name", "inet", "options"}, "[[kernel.nic]]")) return false;
    if (!get_string(t, "name", &n->name, true, "[[kernel.nic]]")) return false;
    if (!valid_name(n->name)) return fail(*t.get("name"), "bad interface name '" + n->name + "'");
    if (!get_string(t, "inet", &n->inet, false, "[[kernel.nic]]")) return false;
    if (!n->inet.empty() && !valid_inet(n->inet))
      return fail(*t.get("inet"), "bad IPv4 address '" + n->inet + "' (want A.B.C.D/LEN)");
    if (const toml::node* o = t.get("options")) {
      const toml::array* a = o->as_array();
      if (a == nullptr) return fail(*o, "'options' must be an array of strings");
      for (const toml::node& e : *a) {
        if (!e.is_string()) return fail(e, "'options' must be an array of strings");
        n->options.push_back(*e.value<std::string>());
      }
    }
    return true;
  }

  bool kernel(const toml::table& t, KernelSpec* k) {
    if (!check_keys(t, {"name", "hostname", "ncpus", "modules", "tunables", "nic"},
                    "[[kernel]]"))
      return false;
    if (!get_string(t, "name", &k->name, true, "[[kernel]]")) return false;
    if (!valid_name(k->name) || k->name == "all")
      return fail(*t.get("name"), "bad kernel name '" + k->name +
                                      "' (letters, digits, '-', '_'; not 'all')");
    if (!get_string(t, "hostname", &k->hostname, false, "[[kernel]]")) return false;
    if (k->hostname.empty()) k->hostname = k->name;
    if (const toml::node* n = t.get("ncpus")) {
      if (!n->is_integer() || *n->value<int64_t>() < 0 || *n->value<int64_t>() > 1024)
        return fail(*n, "'ncpus' must be an integer from 0 to 1024");
      k->ncpus = static_cast<int>(*n->value<int64_t>());
    }
    if (const toml::node* n = t.get("modules")) {
      if (n->is_string()) {
        k->modules = *n->value<std::string>();
        if (*k->modules == "default") k->modules.reset();
      } else if (const toml::array* a = n->as_array()) {
        std::string list;
        for (const toml::node& e : *a) {
          if (!e.is_string()) return fail(e, "'modules' must be strings");
          if (!list.empty()) list += ",";
          list += *e.value<std::string>();
        }
        k->modules = list;
      } else {
        return fail(*n, "'modules' must be \"default\", a string or an array");
      }
    }
    if (const toml::node* n = t.get("tunables")) {
      const toml::table* tt = n->as_table();
      if (tt == nullptr) return fail(*n, "'tunables' must be a table");
      if (!tunables(*tt, "", &k->tunables)) return false;
    }
    if (const toml::node* n = t.get("nic")) {
      const toml::array* a = n->as_array();
      if (a == nullptr) return fail(*n, "'nic' must be an array of tables ([[kernel.nic]])");
      std::set<std::string> seen;
      for (const toml::node& e : *a) {
        const toml::table* nt = e.as_table();
        if (nt == nullptr) return fail(e, "'nic' must be an array of tables");
        NicSpec ns;
        if (!nic(*nt, &ns)) return false;
        if (!seen.insert(ns.name).second)
          return fail(e, "kernel '" + k->name + "' has two NICs named '" + ns.name + "'");
        k->nics.push_back(std::move(ns));
      }
    }
    return true;
  }

  bool endpoint(const LabSpec& lab, const toml::table& t, std::string_view key,
                std::string* kern, std::string* nic) {
    std::string s;
    if (!get_string(t, key, &s, true, "[[wire]]")) return false;
    size_t colon = s.find(':');
    if (colon == std::string::npos)
      return fail(*t.get(key), "'" + std::string(key) + "' must be KERNEL:NIC");
    *kern = s.substr(0, colon);
    *nic = s.substr(colon + 1);
    const KernelSpec* k = lab.find(*kern);
    if (k == nullptr) return fail(*t.get(key), "no kernel named '" + *kern + "'");
    for (const NicSpec& n : k->nics)
      if (n.name == *nic) return true;
    return fail(*t.get(key), "kernel '" + *kern + "' has no NIC '" + *nic + "'");
  }

  bool wire(const LabSpec& lab, const toml::table& t, WireSpec* w) {
    if (!check_keys(t, {"a", "b", "bandwidth", "delay", "loss", "reorder", "seed"},
                    "[[wire]]"))
      return false;
    if (!endpoint(lab, t, "a", &w->a_kernel, &w->a_nic)) return false;
    if (!endpoint(lab, t, "b", &w->b_kernel, &w->b_nic)) return false;
    if (!get_string(t, "bandwidth", &w->bw, false, "[[wire]]")) return false;
    if (!valid_bandwidth(w->bw))
      return fail(*t.get("bandwidth"), "bad bandwidth '" + w->bw + "' (e.g. \"10g\", \"100m\")");
    if (!get_string(t, "delay", &w->delay, false, "[[wire]]")) return false;
    if (!valid_delay(w->delay))
      return fail(*t.get("delay"), "bad delay '" + w->delay + "' (e.g. \"20us\", \"1ms\")");
    for (auto [key, out] : {std::pair<const char*, double*>{"loss", &w->loss},
                            std::pair<const char*, double*>{"reorder", &w->reorder}}) {
      if (const toml::node* n = t.get(key)) {
        if (!n->is_number()) return fail(*n, std::string("'") + key + "' must be a number");
        double v = n->is_integer() ? static_cast<double>(*n->value<int64_t>())
                                   : *n->value<double>();
        if (!(v >= 0 && v <= 1))
          return fail(*n, std::string("'") + key + "' must be between 0 and 1");
        *out = v;
      }
    }
    if (const toml::node* n = t.get("seed")) {
      if (!n->is_integer() || *n->value<int64_t>() < 0)
        return fail(*n, "'seed' must be a non-negative integer");
      w->seed = static_cast<uint64_t>(*n->value<int64_t>());
    }
    return true;
  }

  bool service(const LabSpec& lab, const toml::table& t, ServiceSpec* s) {
    if (!get_string(t, "name", &s->name, true, "[[service]]")) return false;
    if (!valid_name(s->name)) return fail(*t.get("name"), "bad service name '" + s->name + "'");
    if (!get_string(t, "type", &s->type, true, "[[service]]")) return false;
    if (!get_string(t, "kernel", &s->kernel, true, "[[service]]")) return false;
    if (lab.find(s->kernel) == nullptr)
      return fail(*t.get("kernel"), "no kernel named '" + s->kernel + "'");
    for (const auto& [k, v] : t) {
      std::string key(k.str());
      if (key == "name" || key == "type" || key == "kernel") continue;
      bool ok;
      std::string value = scalar_string(v, &ok);
      if (!ok) return fail(v, "service option '" + key + "' must be a scalar");
      s->options[key] = value;
    }
    return true;
  }

  bool lab(const toml::table& root, LabSpec* lab) {
    if (!check_keys(root, {"name", "kernel", "wire", "service"}, "the lab file"))
      return false;
    if (!get_string(root, "name", &lab->name, false, "the lab")) return false;
    const toml::node* kn = root.get("kernel");
    const toml::array* ka = kn ? kn->as_array() : nullptr;
    if (ka == nullptr || ka->empty()) {
      *err_ = std::string(src_) + ": a lab needs at least one [[kernel]]";
      return false;
    }
    std::set<std::string> names;
    for (const toml::node& e : *ka) {
      const toml::table* t = e.as_table();
      if (t == nullptr) return fail(e, "'kernel' must be an array of tables ([[kernel]])");
      KernelSpec k;
      if (!kernel(*t, &k)) return false;
      if (!names.insert(k.name).second)
        return fail(e, "two kernels named '" + k.name + "'");
      lab->kernels.push_back(std::move(k));
    }
    if (const toml::node* wn = root.get("wire")) {
      const toml::array* wa = wn->as_array();
      if (wa == nullptr) return fail(*wn, "'wire' must be an array of tables ([[wire]])");
      std::set<std::string> ports;
      for (const toml::node& e : *wa) {
        const toml::table* t = e.as_table();
        if (t == nullptr) return fail(e, "'wire' must be an array of tables");
        WireSpec w;
        if (!wire(*lab, *t, &w)) return false;
        for (std::string port : {w.a_kernel + ":" + w.a_nic, w.b_kernel + ":" + w.b_nic}) {
          if (!ports.insert(port).second)
            return fail(e, "NIC port " + port + " is on two wires");
        }
        lab->wires.push_back(std::move(w));
      }
    }
    if (const toml::node* sn = root.get("service")) {
      const toml::array* sa = sn->as_array();
      if (sa == nullptr) return fail(*sn, "'service' must be an array of tables ([[service]])");
      std::set<std::string> snames;
      for (const toml::node& e : *sa) {
        const toml::table* t = e.as_table();
        if (t == nullptr) return fail(e, "'service' must be an array of tables");
        ServiceSpec s;
        if (!service(*lab, *t, &s)) return false;
        if (!snames.insert(s.name).second)
          return fail(e, "two services named '" + s.name + "'");
        lab->services.push_back(std::move(s));
      }
    }
    return true;
  }

 private:
  std::string_view src_;
  std::string* err_;
};

}  // namespace

std::string KernelSpec::tunables_string() const {
  std::string s;
  for (const auto& [k, v] : tunables) {
    if (!s.empty()) s += ",";
    s += k + "=" + v;
  }
  return s;
}

std::string WireSpec::params() const {
  std::ostringstream o;
  o << "bw=" << bw << " delay=" << delay << " loss=" << loss
    << " reorder=" << reorder << " seed=" << seed;
  return o.str();
}

const KernelSpec* LabSpec::find(std::string_view kernel) const {
  for (const KernelSpec& k : kernels)
    if (k.name == kernel) return &k;
  return nullptr;
}

nlohmann::json LabSpec::to_json() const {
  nlohmann::json j;
  j["name"] = name;
  j["kernel"] = nlohmann::json::array();
  for (const KernelSpec& k : kernels) {
    nlohmann::json jk = {{"name", k.name}, {"hostname", k.hostname}, {"ncpus", k.ncpus}};
    jk["modules"] = k.modules ? nlohmann::json(*k.modules) : nlohmann::json("default");
    jk["tunables"] = nlohmann::json::object();
    for (const auto& [n, v] : k.tunables) jk["tunables"][n] = v;
    jk["nic"] = nlohmann::json::array();
    for (const NicSpec& n : k.nics)
      jk["nic"].push_back({{"name", n.name}, {"inet", n.inet}, {"options", n.options}});
    j["kernel"].push_back(std::move(jk));
  }
  j["wire"] = nlohmann::json::array();
  for (const WireSpec& w : wires) {
    j["wire"].push_back({{"a", w.a_kernel + ":" + w.a_nic},
                         {"b", w.b_kernel + ":" + w.b_nic},
                         {"bandwidth", w.bw},
                         {"delay", w.delay},
                         {"loss", w.loss},
                         {"reorder", w.reorder},
                         {"seed", w.seed}});
  }
  j["service"] = nlohmann::json::array();
  for (const ServiceSpec& s : services) {
    nlohmann::json js = {{"name", s.name}, {"type", s.type}, {"kernel", s.kernel}};
    for (const auto& [k, v] : s.options) js[k] = v;
    j["service"].push_back(std::move(js));
  }
  return j;
}

bool parse_lab(std::string_view text, std::string_view source, LabSpec* lab,
               std::string* err) {
  *lab = LabSpec();
  toml::table root;
  try {
    root = toml::parse(text, source);
  } catch (const toml::parse_error& e) {
    std::ostringstream o;
    o << source << ":" << e.source().begin.line << ":" << e.source().begin.column
      << ": " << e.description();
    *err = o.str();
    return false;
  }
  Parser p(source, err);
  return p.lab(root, lab);
}

bool load_lab_file(const std::string& path, LabSpec* lab, std::string* err) {
  std::ifstream f(path, std::ios::binary);
  if (!f) {
    *err = path + ": " + strerror(errno);
    return false;
  }
  std::ostringstream buf;
  buf << f.rdbuf();
  return parse_lab(buf.str(), path, lab, err);
}

std::string_view default_lab_toml() { return kDefaultLab; }

}  // namespace ukernd
