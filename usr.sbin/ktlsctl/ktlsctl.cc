// ktlsctl: the operator's tool for the kernels of a running ukernd. Each
// subcommand mirrors the FreeBSD tool it is named after (sysctl(8),
// kldstat(8), ifconfig(8), netstat(1) -w and -i, dmesg(8)); see ktlsctl.8.
#include <getopt.h>
#include <signal.h>
#include <sysexits.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdarg>
#include <functional>
#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <map>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "usr.sbin/ktlsctl/client.h"
#include "usr.sbin/ktlsctl/xo.h"
#include "usr.sbin/ukernd/ctlsock.h"
#include "usr.sbin/ukernd/protocol.h"

namespace ktlsctl {
namespace {

struct Command {
  const char* name;
  const char* usage;  // after "ktlsctl "
  int (*run)(struct Ctx& c, int argc, char** argv);
  const char* summary;
};

struct Ctx {
  std::string url;
  std::string kernel;  // -k; "" = the lab's default
  Xo xo;
  Client client;
  const Command* cmd = nullptr;
  bool quiet = false;
  bool noted = false;
};

const char kMainUsage[] = "[-s URL] [-k KERNEL] [--libxo FMT] command [args ...]";

void vwarnx(const Ctx& c, const char* fmt, va_list ap) {
  fprintf(stderr, "ktlsctl: ");
  if (c.cmd != nullptr) fprintf(stderr, "%s: ", c.cmd->name);
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
}

__attribute__((format(printf, 2, 3))) void warnx(const Ctx& c, const char* fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vwarnx(c, fmt, ap);
  va_end(ap);
}

int usage(const Ctx& c) {
  fprintf(stderr, "usage: ktlsctl %s\n", c.cmd ? c.cmd->usage : kMainUsage);
  return EX_USAGE;
}

// sysexits(3) code for an errno a daemon reported.
int exit_code(int error) {
  switch (error) {
    case ESRCH: return EX_NOHOST;  // no such kernel in the lab
    case ENOSYS: return EX_UNAVAILABLE;
    case EPERM: case EACCES: return EX_NOPERM;
    case ENOENT: return EX_NOINPUT;
    case EINVAL: case ERANGE: case EISDIR: return EX_DATAERR;
    case EBUSY: case EAGAIN: case EMFILE: return EX_TEMPFAIL;
    case EPROTO: case EPROTONOSUPPORT: case EOPNOTSUPP: case E2BIG: return EX_PROTOCOL;
    default: return EX_SOFTWARE;
  }
}

int connect(Ctx& c) {
  std::string why;
  if (c.client.connect(c.url, &why)) return 0;
  fprintf(stderr, "ktlsctl: no ukernd reachable at %s: %s\n", c.url.c_str(), why.c_str());
  fprintf(stderr,
          "ktlsctl: start one with 'ukernd -s %s' (or point -s / $UKERN_SERVER "
          "at a running one)\n",
          c.url.c_str());
  return EX_UNAVAILABLE;
}

// Tells the user once when the answer came from a kernel other than the
// lab's default (stderr, so scripts reading stdout are unaffected).
void note_kernel(Ctx& c, const json& reply) {
  if (c.noted || c.quiet || !reply.contains("kernel")) return;
  std::string k = reply["kernel"].get<std::string>();
  if (k == c.client.default_kernel()) return;
  c.noted = true;
  fprintf(stderr, "ktlsctl: kernel %s answered (the lab's default is %s)\n", k.c_str(),
          c.client.default_kernel().c_str());
}

// One request. 0 and *result on success; otherwise prints the error (unless
// |err| is given, which then receives the error object) and returns a
// sysexits code.
int call(Ctx& c, json req, json* result, json* err = nullptr,
         const std::function<bool(const json&)>& on_event = nullptr) {
  if (!c.kernel.empty() && !req.contains("kernel")) req["kernel"] = c.kernel;
  json reply;
  std::string why;
  if (!c.client.call(std::move(req), &reply, &why, on_event)) {
    if (!why.empty()) warnx(c, "%s", why.c_str());  // else the event handler stopped
    return EX_IOERR;
  }
  note_kernel(c, reply);
  if (reply.value("ok", false)) {
    *result = reply.contains("result") ? reply["result"] : json::object();
    return 0;
  }
  json e = reply.value("error", json::object());
  int error = e.value("errno", 0);
  if (int n = ukernd::errno_from_name(e.value("code", "")); n != 0) error = n;
  if (err != nullptr) {
    *err = e;
    return exit_code(error);
  }
  warnx(c, "%s", e.value("message", "unknown error").c_str());
  return exit_code(error);
}

std::string value_text(const json& v) {
  if (v.is_string()) return v.get<std::string>();
  if (v.is_null()) return "";
  return v.dump();
}

void emit(const Ctx& c, const json& doc) {
  std::string s = c.xo.render(doc);
  fwrite(s.data(), 1, s.size(), stdout);
}

// getopt(3) over a subcommand's arguments; prints FreeBSD's "illegal
// option" wording and the subcommand's usage on an unknown option.
int next_opt(const Ctx& c, int argc, char** argv, const char* opts) {
  int ch = getopt(argc, argv, opts);
  if (ch == '?') {
    if (optopt != 0 && strchr(opts, optopt) != nullptr)
      warnx(c, "option requires an argument -- %c", optopt);
    else
      warnx(c, "illegal option -- %c", optopt);
  }
  return ch;
}

void reset_getopt() {
  optind = 0;  // glibc: full reinitialisation
  opterr = 0;
}

bool parse_number(const char* s, double* out, double lo, double hi) {
  char* end = nullptr;
  errno = 0;
  double v = strtod(s, &end);
  if (errno != 0 || end == s || *end != '\0' || !(v >= lo && v <= hi)) return false;
  *out = v;
  return true;
}

// --- sysctl ---------------------------------------------------------------

struct SysctlFlags {
  bool all = false, n = false, N = false, d = false, e = false, q = false;
};

void sysctl_print(const SysctlFlags& f, const json& o, std::string* text, json* list) {
  if (o["value"].is_null() && !f.N && !f.d) return;  // opaque: sysctl -a skips
  std::string name = o.value("name", "");
  json entry = {{"name", name}};
  if (!f.N) entry["value"] = o["value"];
  entry["type"] = o.value("type", "");
  if (f.d) entry["description"] = o.value("description", "");
  list->push_back(std::move(entry));
  if (f.N) {
    *text += name + "\n";
  } else if (f.d) {
    *text += f.n ? o.value("description", "") + "\n"
                 : name + ": " + o.value("description", "") + "\n";
  } else if (f.n) {
    *text += value_text(o["value"]) + "\n";
  } else {
    *text += name + (f.e ? "=" : ": ") + value_text(o["value"]) + "\n";
  }
}

int cmd_sysctl(Ctx& c, int argc, char** argv) {
  SysctlFlags f;
  reset_getopt();
  for (int ch; (ch = next_opt(c, argc, argv, "+adeNnq")) != -1;) {
    switch (ch) {
      case 'a': f.all = true; break;
      case 'd': f.d = true; break;
      case 'e': f.e = true; break;
      case 'N': f.N = true; break;
      case 'n': f.n = true; break;
      case 'q': f.q = true; break;
      default: return usage(c);
    }
  }
  std::vector<std::string> names(argv + optind, argv + argc);
  if (names.empty() && !f.all) return usage(c);
  c.quiet = f.q;
  if (int r = connect(c)) return r;
  if (names.empty()) names.push_back("");

  std::string text;
  json list = json::array();
  std::string answered;
  int failures = 0;
  for (const std::string& arg : names) {
    size_t eq = arg.find('=');
    json result, err;
    if (eq == std::string::npos) {
      int r = call(c, {{"op", "sysctl.list"}, {"oid", arg}}, &result, &err);
      if (r == 0) {
        for (const json& o : result["oid"]) sysctl_print(f, o, &text, &list);
        continue;
      }
      if (err.value("code", "") != "ENOENT") {
        warnx(c, "%s", err.value("message", "").c_str());
        return r;
      }
      // sysctl(8): an unknown oid is a warning; the others still run.
      if (!f.q) warnx(c, "%s", err.value("message", "").c_str());
      failures++;
      continue;
    }
    std::string name = arg.substr(0, eq), value = arg.substr(eq + 1);
    int r = call(c, {{"op", "sysctl.set"}, {"oid", name}, {"value", value}}, &result, &err);
    if (r != 0) {
      std::string code = err.value("code", "");
      if (code == "ESRCH" || code == "ENOSYS" || r == EX_IOERR || r == EX_PROTOCOL) {
        warnx(c, "%s", err.value("message", "").c_str());
        return r;
      }
      std::string msg = err.value("message", "");
      if (!f.q || code != "ENOENT") warnx(c, "%s", msg.c_str());
      if (std::string_view(msg).ends_with("read only tunable"))
        warnx(c, "Tunable values are set in the lab file ([kernel.tunables])");
      failures++;
      continue;
    }
    std::string line = f.n ? "" : name + (f.e ? "=" : ": ");
    line += value_text(result["old"]) + " -> " + value_text(result["new"]);
    text += line + "\n";
    list.push_back({{"name", name},
                    {"value", result["new"]},
                    {"old-value", result["old"]},
                    {"type", result.value("type", "")}});
  }
  if (c.xo.text()) {
    fputs(text.c_str(), stdout);
  } else {
    std::string k = c.kernel.empty() ? c.client.default_kernel() : c.kernel;
    emit(c, {{"sysctl", {{"kernel", k}, {"oid", list}}}});
  }
  return failures > 0 ? 1 : 0;
}

// --- kernels, dmesg -------------------------------------------------------

std::string duration(double s) {
  long t = static_cast<long>(s);
  char buf[64];
  if (t < 60) snprintf(buf, sizeof buf, "%lds", t);
  else if (t < 3600) snprintf(buf, sizeof buf, "%ldm%02lds", t / 60, t % 60);
  else snprintf(buf, sizeof buf, "%ldh%02ldm", t / 3600, (t / 60) % 60);
  return buf;
}

int cmd_kernels(Ctx& c, int argc, char** argv) {
  (void)argv;
  if (argc > 1) return usage(c);
  if (int r = connect(c)) return r;
  json result;
  if (int r = call(c, {{"op", "kernels"}}, &result)) return r;
  json list = json::array();
  std::string text;
  char line[512];
  snprintf(line, sizeof line, "%-16s %-16s %5s %8s  %s\n", "NAME", "HOSTNAME", "CPUS",
           "UPTIME", "NICS");
  text += line;
  for (const json& k : result["kernel"]) {
    std::string nics;
    for (const json& n : k["nic"]) nics += (nics.empty() ? "" : ",") + n.get<std::string>();
    std::string name = k.value("name", "") + (k.value("default", false) ? "*" : "");
    snprintf(line, sizeof line, "%-16s %-16s %5d %8s  %s\n", name.c_str(),
             k.value("hostname", "").c_str(), k.value("ncpus", 0),
             duration(k.value("uptime", 0.0)).c_str(), nics.empty() ? "-" : nics.c_str());
    text += line;
    list.push_back({{"name", k.value("name", "")},
                    {"hostname", k.value("hostname", "")},
                    {"ncpus", k.value("ncpus", 0)},
                    {"default", k.value("default", false)},
                    {"uptime", k.value("uptime", 0.0)},
                    {"nic", k["nic"]}});
  }
  if (c.xo.text()) fputs(text.c_str(), stdout);
  else emit(c, {{"kernels", {{"kernel", list}}}});
  return 0;
}

int cmd_dmesg(Ctx& c, int argc, char** argv) {
  (void)argv;
  if (argc > 1) return usage(c);
  if (int r = connect(c)) return r;
  json result;
  if (int r = call(c, {{"op", "dmesg"}}, &result)) return r;
  std::string t = result.value("text", "");
  if (c.xo.text()) {
    fputs(t.c_str(), stdout);
    return 0;
  }
  json lines = json::array();
  size_t start = 0;
  while (start < t.size()) {
    size_t nl = t.find('\n', start);
    if (nl == std::string::npos) nl = t.size();
    lines.push_back(t.substr(start, nl - start));
    start = nl + 1;
  }
  std::string k = c.kernel.empty() ? c.client.default_kernel() : c.kernel;
  emit(c, {{"dmesg", {{"kernel", k}, {"line", lines}}}});
  return 0;
}

// --- kld ------------------------------------------------------------------

int cmd_kldstat(Ctx& c, int argc, char** argv) {
  (void)argv;
  if (argc > 1) return usage(c);
  if (int r = connect(c)) return r;
  json result;
  if (int r = call(c, {{"op", "kldstat"}}, &result)) return r;
  json list = json::array();
  std::string text = "Id Refs Name\n";
  for (const json& m : result["module"]) {
    char line[256];
    snprintf(line, sizeof line, "%2d %4d %s\n", m.value("id", 0), m.value("refs", 0),
             m.value("name", "").c_str());
    text += line;
    list.push_back(hyphenate(m));
  }
  if (c.xo.text()) fputs(text.c_str(), stdout);
  else emit(c, {{"kldstat", {{"module", list}}}});
  return 0;
}

int cmd_kldload(Ctx& c, int argc, char** argv) {
  if (argc != 2) return usage(c);
  if (int r = connect(c)) return r;
  json result;
  return call(c, {{"op", c.cmd->name}, {"module", argv[1]}}, &result);
}

// --- stats ----------------------------------------------------------------

// kern.ipc.tls groups in print order, with their JSON names.
const std::pair<const char*, const char*> kGroups[] = {
    {"config", "config"}, {"stats", "stats"}, {"stats.ocf", "ocf"},
    {"sw", "sw"},         {"ifnet", "ifnet"}, {"toe", "toe"},
};

uint64_t sum(const json& g, std::initializer_list<const char*> keys) {
  uint64_t s = 0;
  for (const char* k : keys)
    if (g.contains(k) && g[k].is_number()) s += g[k].get<uint64_t>();
  return s;
}

uint64_t sum_suffix(const json& g, const char* suffix) {
  uint64_t s = 0;
  size_t n = strlen(suffix);
  for (const auto& [k, v] : g.items())
    if (k.size() >= n && k.compare(k.size() - n, n, suffix) == 0 && v.is_number())
      s += v.get<uint64_t>();
  return s;
}

// The figures the live view shows, from one stats reply.
struct Sample {
  double t;
  uint64_t active, setups, enc, dec, sw, ifnet, toe, to_ifnet, to_sw, corrupt, failed;
};

Sample sample_of(const json& r) {
  const json& g = r["groups"];
  json empty = json::object();
  auto grp = [&](const char* n) -> const json& { return g.contains(n) ? g[n] : empty; };
  Sample s{};
  s.t = r.value("uptime", 0.0);
  s.active = sum(grp("stats"), {"active"});
  s.setups = sum(grp("stats"), {"offload_total"});
  s.enc = sum_suffix(grp("stats.ocf"), "_encrypts") + sum_suffix(grp("stats.ocf"), "_recrypts");
  s.dec = sum_suffix(grp("stats.ocf"), "_decrypts");
  s.sw = sum(grp("sw"), {"cbc", "gcm", "chacha20"});
  s.ifnet = sum(grp("ifnet"), {"cbc", "gcm", "chacha20"});
  s.toe = sum(grp("toe"), {"cbc", "gcm", "chacha20"});
  s.to_ifnet = sum(grp("stats"), {"switch_to_ifnet"});
  s.to_sw = sum(grp("stats"), {"switch_to_sw"});
  s.corrupt = sum(grp("stats"), {"corrupted_records"});
  s.failed = sum(grp("stats"), {"failed_crypto"});
  return s;
}

volatile sig_atomic_t g_interrupted = 0;
void on_sigint(int) { g_interrupted = 1; }

int stats_watch(Ctx& c, double interval, long count) {
  struct sigaction sa {};
  sa.sa_handler = on_sigint;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, nullptr);  // no SA_RESTART: the sleep ends at once

  json result;
  if (int r = call(c, {{"op", "stats"}}, &result)) return r;
  Sample prev = sample_of(result);
  std::string k = c.kernel.empty() ? c.client.default_kernel() : c.kernel;
  const char* hdr1 = "       sessions (active)          ocf ops/s        switches/s      errors/s";
  const char* hdr2 = "   total     sw  ifnet    toe   setups/s  encrypt decrypt  to-ifnet  to-sw  corrupt crypto";
  long lines = 0;
  for (long n = 0; count <= 0 || n < count; n++) {
    auto deadline = std::chrono::steady_clock::now() +
                    std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                        std::chrono::duration<double>(interval));
    while (!g_interrupted && std::chrono::steady_clock::now() < deadline) {
      auto left = deadline - std::chrono::steady_clock::now();
      auto step = std::min<std::chrono::steady_clock::duration>(left, std::chrono::milliseconds(100));
      std::this_thread::sleep_for(step);
    }
    if (g_interrupted) break;
    if (int r = call(c, {{"op", "stats"}}, &result)) return r;
    Sample s = sample_of(result);
    double dt = s.t - prev.t > 0 ? s.t - prev.t : interval;
    auto rate = [&](uint64_t a, uint64_t b) { return a >= b ? (a - b) / dt : 0.0; };
    if (c.xo.text()) {
      if (lines % 20 == 0) printf("%s\n%s\n", hdr1, hdr2);
      printf("%8" PRIu64 " %6" PRIu64 " %6" PRIu64 " %6" PRIu64 " %10.0f %8.0f %7.0f %9.0f %6.0f %8.0f %6.0f\n",
             s.active, s.sw, s.ifnet, s.toe, rate(s.setups, prev.setups),
             rate(s.enc, prev.enc), rate(s.dec, prev.dec), rate(s.to_ifnet, prev.to_ifnet),
             rate(s.to_sw, prev.to_sw), rate(s.corrupt, prev.corrupt),
             rate(s.failed, prev.failed));
    } else {
      // One document per interval (JSON lines with --libxo json).
      Xo one = c.xo;
      one.pretty = c.xo.pretty;
      std::string out = one.render(
          {{"ktls-stats-interval",
            {{"kernel", k}, {"interval", dt}, {"active", s.active},
             {"sw-sessions", s.sw}, {"ifnet-sessions", s.ifnet}, {"toe-sessions", s.toe},
             {"setups-per-second", rate(s.setups, prev.setups)},
             {"encrypts-per-second", rate(s.enc, prev.enc)},
             {"decrypts-per-second", rate(s.dec, prev.dec)},
             {"switches-to-ifnet-per-second", rate(s.to_ifnet, prev.to_ifnet)},
             {"switches-to-sw-per-second", rate(s.to_sw, prev.to_sw)},
             {"corrupted-records-per-second", rate(s.corrupt, prev.corrupt)},
             {"crypto-failures-per-second", rate(s.failed, prev.failed)}}}});
      fputs(out.c_str(), stdout);
    }
    fflush(stdout);
    lines++;
    prev = s;
  }
  return 0;
}

int cmd_stats(Ctx& c, int argc, char** argv) {
  double interval = 0;
  long count = 0;
  reset_getopt();
  for (int ch; (ch = next_opt(c, argc, argv, "+w:c:")) != -1;) {
    switch (ch) {
      case 'w':
        if (!parse_number(optarg, &interval, 0.01, 86400)) {
          warnx(c, "invalid interval '%s'", optarg);
          return EX_USAGE;
        }
        break;
      case 'c': {
        double v;
        if (!parse_number(optarg, &v, 1, 1e9)) {
          warnx(c, "invalid count '%s'", optarg);
          return EX_USAGE;
        }
        count = static_cast<long>(v);
        break;
      }
      default: return usage(c);
    }
  }
  if (optind != argc || (count > 0 && interval == 0)) return usage(c);
  if (int r = connect(c)) return r;
  if (interval > 0) return stats_watch(c, interval, count);

  json result;
  if (int r = call(c, {{"op", "stats"}}, &result)) return r;
  const json& g = result["groups"];
  std::string k = c.kernel.empty() ? c.client.default_kernel() : c.kernel;
  // Known groups in their order, then any the daemon adds later (NIC
  // counters), under their own names.
  std::vector<std::pair<std::string, std::string>> order;
  for (const auto& [src, dst] : kGroups)
    if (g.contains(src)) order.emplace_back(src, dst);
  for (const auto& [src, v] : g.items()) {
    bool known = false;
    for (const auto& [ks, kd] : kGroups) known = known || src == ks;
    std::string dst = src;
    for (char& ch : dst)
      if (ch == '.' || ch == '_') ch = '-';
    if (!known) order.emplace_back(src, dst);
  }
  if (!c.xo.text()) {
    json doc = {{"kernel", k}};
    for (const auto& [src, dst] : order) doc[dst] = hyphenate(g[src]);
    emit(c, {{"ktls-stats", doc}});
    return 0;
  }
  printf("ktls statistics of kernel %s:\n", k.c_str());
  for (const auto& [src, dst] : order) {
    std::string title = "kern.ipc.tls" + (src == "config" ? "" : "." + src);
    printf("%s:\n", title.c_str());
    for (const auto& [leaf, v] : g[src].items())
      printf("\t%12s %s\n", value_text(v).c_str(), leaf.c_str());
  }
  return 0;
}

// --- sessions, mode, ifconfig, pcap ----------------------------------------

int cmd_sessions(Ctx& c, int argc, char** argv) {
  (void)argv;
  if (argc > 1) return usage(c);
  if (int r = connect(c)) return r;
  json result;
  if (int r = call(c, {{"op", "sessions"}}, &result)) return r;
  json list = json::array();
  std::string text;
  char line[512];
  const char* fmt = "%-8s %5s %-21s %-21s %-3s %-5s %-17s %-7s %-7s %10s %14s\n";
  snprintf(line, sizeof line, fmt, "KERNEL", "ID", "LOCAL", "FOREIGN", "DIR", "MODE",
           "CIPHER", "VERSION", "PERS", "RECORDS", "BYTES");
  text += line;
  for (const json& s : result["session"]) {
    snprintf(line, sizeof line, fmt, s.value("kernel", "").c_str(),
             value_text(s.value("id", json(0))).c_str(), s.value("local", "").c_str(),
             s.value("foreign", "").c_str(), s.value("direction", "").c_str(),
             s.value("mode", "").c_str(), s.value("cipher", "").c_str(),
             s.value("version", "").c_str(), s.value("personality", "").c_str(),
             value_text(s.value("records", json(0))).c_str(),
             value_text(s.value("bytes", json(0))).c_str());
    text += line;
    list.push_back(hyphenate(s));
  }
  if (c.xo.text()) fputs(text.c_str(), stdout);
  else emit(c, {{"sessions", {{"session", list}}}});
  return 0;
}

int cmd_mode(Ctx& c, int argc, char** argv) {
  if (argc != 3) return usage(c);
  std::string mode = argv[2];
  // toe goes to the kernel, which refuses it as FreeBSD's does (EINVAL).
  if (mode != "sw" && mode != "ifnet" && mode != "toe") {
    warnx(c, "invalid mode '%s': want sw or ifnet", argv[2]);
    return usage(c);
  }
  if (int r = connect(c)) return r;
  json result, err;
  int r = call(c, {{"op", "mode"}, {"session", argv[1]}, {"mode", mode}}, &result, &err);
  if (r == 0) return 0;
  if (r == EX_IOERR) return r;
  warnx(c, "%s", err.value("message", "unknown error").c_str());
  std::string code = err.value("code", "");
  // The kernel's refusals are about the session, not the protocol.
  if (code == "EOPNOTSUPP" || code == "ENXIO") return EX_UNAVAILABLE;
  return r;
}

std::string bits(const json& i, const char* key) {
  if (!i.contains(key)) return "";
  char buf[32];
  snprintf(buf, sizeof buf, "%x", i.value(key, 0u));
  std::string s = std::string(key) + "=" + buf + "<";
  std::string names_key = std::string(key) + "-names";
  bool first = true;
  for (const json& n : i.value(names_key, json::array())) {
    s += (first ? "" : ",") + n.get<std::string>();
    first = false;
  }
  return s + ">";
}

// ifconfig(8)'s layout (with -m's capabilities line).
std::string ifconfig_text(const json& i) {
  std::string t = i.value("name", "") + ": " + bits(i, "flags") + " metric " +
                  value_text(i.value("metric", json(0))) + " mtu " +
                  value_text(i.value("mtu", json(0))) + "\n";
  if (i.value("options", 0u) != 0 || i.value("options2", 0u) != 0)
    t += "\t" + bits(i, "options") + "\n";
  if (i.contains("capabilities")) t += "\t" + bits(i, "capabilities") + "\n";
  if (i.contains("ether")) t += "\tether " + i.value("ether", "") + "\n";
  for (const json& a : i.value("inet", json::array())) {
    t += "\tinet " + a.value("address", "") + " netmask " + a.value("netmask", "");
    if (a.contains("broadcast")) t += " broadcast " + a.value("broadcast", "");
    t += "\n";
  }
  if (i.contains("media")) t += "\tmedia: " + i.value("media", "") + "\n";
  if (i.contains("status")) t += "\tstatus: " + i.value("status", "") + "\n";
  return t;
}

int cmd_ifconfig(Ctx& c, int argc, char** argv) {
  if (int r = connect(c)) return r;
  json req = {{"op", "ifconfig"}};
  if (argc > 1) req["interface"] = argv[1];
  std::vector<std::string> args(argv + std::min(argc, 2), argv + argc);
  if (!args.empty()) req["args"] = args;
  json result;
  if (int r = call(c, req, &result)) return r;
  if (!args.empty()) return 0;
  json list = json::array();
  std::string text;
  for (const json& i : result["interface"]) {
    text += ifconfig_text(i);
    list.push_back(hyphenate(i));
  }
  if (c.xo.text()) fputs(text.c_str(), stdout);
  else emit(c, {{"interfaces", {{"interface", list}}}});
  return 0;
}

// --- netstat -i -------------------------------------------------------------

// netstat(1) -i's table: one <Link#N> row per interface with its counters,
// then a row per IPv4 address ("-" where netstat prints per-address
// counts: uktls keeps none). -b adds Ibytes/Obytes, -d the output drops.
int cmd_netstat(Ctx& c, int argc, char** argv) {
  bool iflag = false, bytes = false, drops = false;
  std::string ifname;
  reset_getopt();
  for (int ch; (ch = next_opt(c, argc, argv, "+ibdI:")) != -1;) {
    switch (ch) {
      case 'i': iflag = true; break;
      case 'b': bytes = true; break;
      case 'd': drops = true; break;
      case 'I': ifname = optarg; iflag = true; break;
      default: return usage(c);
    }
  }
  if (!iflag || optind != argc) return usage(c);
  if (int r = connect(c)) return r;
  json req = {{"op", "netstat"}};
  if (!ifname.empty()) req["interface"] = ifname;
  json result;
  if (int r = call(c, req, &result)) return r;
  if (!c.xo.text()) {
    emit(c, {{"statistics", {{"interface", result["interface"]}}}});
    return 0;
  }
  auto num = [](const json& i, const char* key) { return value_text(i.value(key, json(0))); };
  std::string out;
  char line[512];
  snprintf(line, sizeof line, "%-9s %5s %-13s %-17s %8s %5s %5s", "Name", "Mtu", "Network",
           "Address", "Ipkts", "Ierrs", "Idrop");
  out += line;
  if (bytes) out += "     Ibytes";
  snprintf(line, sizeof line, " %8s %5s", "Opkts", "Oerrs");
  out += line;
  if (bytes) out += "     Obytes";
  out += "  Coll";
  if (drops) out += "  Drop";
  out += "\n";
  for (const json& i : result["interface"]) {
    const std::string name = i.value("name", "");
    snprintf(line, sizeof line, "%-9s %5s %-13s %-17s %8s %5s %5s", name.c_str(),
             num(i, "mtu").c_str(), i.value("network", "").c_str(),
             i.value("address", "").c_str(), num(i, "received-packets").c_str(),
             num(i, "received-errors").c_str(), num(i, "dropped-packets").c_str());
    out += line;
    if (bytes) {
      snprintf(line, sizeof line, " %10s", num(i, "received-bytes").c_str());
      out += line;
    }
    snprintf(line, sizeof line, " %8s %5s", num(i, "sent-packets").c_str(),
             num(i, "send-errors").c_str());
    out += line;
    if (bytes) {
      snprintf(line, sizeof line, " %10s", num(i, "sent-bytes").c_str());
      out += line;
    }
    snprintf(line, sizeof line, " %5s", num(i, "collisions").c_str());
    out += line;
    if (drops) {
      snprintf(line, sizeof line, " %5s", num(i, "send-drops").c_str());
      out += line;
    }
    out += "\n";
    for (const json& a : i.value("inet", json::array())) {
      snprintf(line, sizeof line, "%-9s %5s %-13s %-17s %8s %5s %5s", name.c_str(), "-",
               a.value("network", "").c_str(), a.value("address", "").c_str(), "-", "-", "-");
      out += line;
      if (bytes) out += "          -";
      out += "        -     -";
      if (bytes) out += "          -";
      out += "     -";
      if (drops) out += "     -";
      out += "\n";
    }
  }
  fputs(out.c_str(), stdout);
  return 0;
}

// --- conn: test connections -------------------------------------------------

void conn_print(const Ctx& c, const json& r, const char* what) {
  if (!c.xo.text()) {
    emit(c, {{"conn", hyphenate(r)}});
    return;
  }
  printf("conn %s: %s %s -> %s %s %s TLS%s %s, tx-session %s, rx-session %s",
         value_text(r.value("conn", json(0))).c_str(), r.value("kernel", "").c_str(),
         r.value("local", "").c_str(), r.value("peer", "").c_str(),
         r.value("foreign", "").c_str(), r.value("cipher", "").c_str(),
         r.value("version", "").c_str(), r.value("personality", "").c_str(),
         value_text(r.value("tx-session", json(0))).c_str(),
         value_text(r.value("rx-session", json(0))).c_str());
  if (strcmp(what, "open") != 0)
    printf(", sent %s, received %s, mismatches %s",
           value_text(r.value("sent", json(0))).c_str(),
           value_text(r.value("received", json(0))).c_str(),
           value_text(r.value("mismatches", json(0))).c_str());
  printf("\n");
}

int cmd_conn(Ctx& c, int argc, char** argv) {
  if (argc < 2) {
    if (int r = connect(c)) return r;
    json result;
    if (int r = call(c, {{"op", "conn.list"}}, &result)) return r;
    if (!c.xo.text()) {
      json list = json::array();
      for (const json& r : result["conn"]) list.push_back(hyphenate(r));
      emit(c, {{"conns", {{"conn", list}}}});
      return 0;
    }
    for (const json& r : result["conn"]) conn_print(c, r, "list");
    return 0;
  }
  std::string verb = argv[1];
  if (verb == "open") {
    json req = {{"op", "conn.open"}};
    reset_getopt();
    for (int ch; (ch = next_opt(c, argc - 1, argv + 1, "+p:c:V:L")) != -1;) {
      switch (ch) {
        case 'p': req["peer"] = optarg; break;
        case 'c': req["cipher"] = optarg; break;
        case 'V': req["version"] = optarg; break;
        case 'L': req["personality"] = "linux"; break;
        default: return usage(c);
      }
    }
    if (optind != argc - 1) return usage(c);
    if (int r = connect(c)) return r;
    json result;
    if (int r = call(c, req, &result)) return r;
    conn_print(c, result, "open");
    return 0;
  }
  if ((verb == "send" && argc == 4) || (verb == "close" && argc == 3)) {
    double id = 0, bytes = 0;
    if (!parse_number(argv[2], &id, 1, 2147483647) ||
        (verb == "send" && !parse_number(argv[3], &bytes, 0, 1e12))) {
      warnx(c, "invalid number");
      return usage(c);
    }
    if (int r = connect(c)) return r;
    json req = {{"op", "conn." + verb}, {"conn", static_cast<int64_t>(id)}};
    if (verb == "send") req["bytes"] = static_cast<int64_t>(bytes);
    json result;
    if (int r = call(c, req, &result)) return r;
    if (verb == "close") return 0;
    conn_print(c, result, "send");
    return result.value("mismatches", 0) == 0 ? 0 : 1;
  }
  return usage(c);
}

int cmd_pcap(Ctx& c, int argc, char** argv) {
  if (argc < 2 || argv[1][0] == '-') return usage(c);
  std::string ifname = argv[1];
  std::string file;
  double seconds = 0, count = 0;
  reset_getopt();
  // Options follow the interface name, as in the usage line.
  for (int ch; (ch = next_opt(c, argc - 1, argv + 1, "+w:c:t:")) != -1;) {
    switch (ch) {
      case 'w': file = optarg; break;
      case 'c':
        if (!parse_number(optarg, &count, 1, 1e12)) return usage(c);
        break;
      case 't':
        if (!parse_number(optarg, &seconds, 0.001, 86400 * 365.0)) return usage(c);
        break;
      default: return usage(c);
    }
  }
  if (file.empty() || optind != argc - 1) return usage(c);
  if (int r = connect(c)) return r;
  FILE* out = nullptr;
  long packets = 0;
  std::string werr;
  // "pcap-header" then "packet" events (docs/ukernd-protocol.md); the file
  // is created only once the daemon starts sending.
  // Without -c or -t the capture runs until SIGINT, as tcpdump's does; the
  // file is closed properly at the next event (at most a second later).
  struct sigaction sa {};
  sa.sa_handler = on_sigint;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
  auto on_event = [&](const json& ev) {
    if (g_interrupted) return false;
    const json& d = ev.value("data", json::object());
    std::string kind = ev.value("event", "");
    if (kind == "pcap-header" && out == nullptr) {
      out = fopen(file.c_str(), "wb");
      if (out == nullptr) {
        werr = file + ": " + strerror(errno);
        return false;
      }
      uint32_t hdr[6] = {0xa1b2c3d4, 0x00040002, 0, 0, d.value("snaplen", 262144u),
                         d.value("linktype", 1u)};
      fwrite(hdr, sizeof hdr, 1, out);
    } else if (kind == "packet" && out != nullptr) {
      std::string hex = d.value("hex", "");
      std::string bytes;
      for (size_t i = 0; i + 1 < hex.size(); i += 2)
        bytes.push_back(static_cast<char>(std::stoi(hex.substr(i, 2), nullptr, 16)));
      uint32_t rec[4] = {d.value("ts-sec", 0u), d.value("ts-usec", 0u),
                         static_cast<uint32_t>(bytes.size()),
                         d.value("orig-len", static_cast<uint32_t>(bytes.size()))};
      fwrite(rec, sizeof rec, 1, out);
      fwrite(bytes.data(), 1, bytes.size(), out);
      packets++;
    }
    return true;
  };
  json req = {{"op", "pcap"}, {"interface", ifname}};
  if (count > 0) req["count"] = static_cast<int64_t>(count);
  if (seconds > 0) req["seconds"] = seconds;
  json result, err;
  int r = call(c, req, &result, &err, on_event);
  if (g_interrupted) {
    r = 0;
  } else if (r != 0 && r != EX_IOERR) {
    warnx(c, "%s", err.value("message", "unknown error").c_str());
    if (err.value("code", "") == "EOPNOTSUPP") r = EX_UNAVAILABLE;  // no tap there
  }
  if (out != nullptr && fclose(out) != 0 && werr.empty()) werr = file + ": " + strerror(errno);
  if (!werr.empty()) {
    warnx(c, "%s", werr.c_str());
    return EX_CANTCREAT;
  }
  if (r == 0) fprintf(stderr, "%ld packets captured\n", packets);
  return r;
}

int cmd_help(Ctx& c, int argc, char** argv);

const Command kCommands[] = {
    {"sysctl", "sysctl [-adeNnq] [name[=value] ...]", cmd_sysctl,
     "read or set a kernel's sysctl values (sysctl(8))"},
    {"kernels", "kernels", cmd_kernels, "list the lab's kernels (* marks the default)"},
    {"dmesg", "dmesg", cmd_dmesg, "print a kernel's message buffer"},
    {"kldstat", "kldstat", cmd_kldstat, "list loaded modules"},
    {"kldload", "kldload name", cmd_kldload, "load a module"},
    {"kldunload", "kldunload name", cmd_kldload, "unload a module"},
    {"stats", "stats [-w seconds [-c count]]", cmd_stats,
     "KTLS statistics; -w: live per-second rates (netstat -w)"},
    {"sessions", "sessions", cmd_sessions, "list KTLS sessions (-k all: every kernel)"},
    {"mode", "mode session sw|ifnet", cmd_mode, "switch a transmit session's mode (TCP_TXTLS_MODE)"},
    {"ifconfig", "ifconfig [interface [args ...]]", cmd_ifconfig,
     "show or configure interfaces (ifconfig(8))"},
    {"netstat", "netstat -i [-bd] [-I interface]", cmd_netstat,
     "interface statistics (netstat(1) -i, from net.link.generic.ifdata)"},
    {"pcap", "pcap interface -w file [-c count] [-t seconds]", cmd_pcap,
     "capture packets on an interface to a pcap file"},
    {"conn", "conn [open [-p peer] [-c cipher] [-V 1.2|1.3] [-L] | send id bytes | close id]",
     cmd_conn, "open, feed and close KTLS test connections between the lab's kernels"},
    {"help", "help", cmd_help, "this text"},
};

void print_help(FILE* f) {
  fprintf(f, "usage: ktlsctl %s\n\n", kMainUsage);
  fprintf(f,
          "  -s URL      control socket of ukernd (unix://PATH); default $UKERN_SERVER,\n"
          "              else $XDG_RUNTIME_DIR/ukernd.sock, else /tmp/ukernd-$UID.sock\n"
          "  -k KERNEL   kernel of the lab to ask (default: the lab's first kernel)\n"
          "  --libxo FMT json, xml or text, optionally \",pretty\" (read commands)\n\n"
          "commands:\n");
  for (const Command& cmd : kCommands)
    fprintf(f, "  ktlsctl %-48s %s\n", cmd.usage, cmd.summary);
  fprintf(f, "\nSee ktlsctl(8).\n");
}

int cmd_help(Ctx& c, int argc, char** argv) {
  (void)c;
  (void)argc;
  (void)argv;
  print_help(stdout);
  return 0;
}

int run(int argc, char** argv) {
  Ctx c;
  // libxo's --libxo may appear anywhere; take it out before getopt.
  std::vector<char*> args;
  std::string xo_spec;
  bool have_xo = false;
  for (int i = 0; i < argc; i++) {
    std::string a = argv[i];
    if (a == "--libxo" && i + 1 < argc) {
      xo_spec = argv[++i];
      have_xo = true;
    } else if (a.rfind("--libxo=", 0) == 0) {
      xo_spec = a.substr(8);
      have_xo = true;
    } else if (a.rfind("--libxo:", 0) == 0) {
      xo_spec = a.substr(8);  // libxo's shorthand
      have_xo = true;
    } else if (a == "--help") {
      print_help(stdout);
      return 0;
    } else {
      args.push_back(argv[i]);
    }
  }
  if (have_xo && !c.xo.parse(xo_spec)) {
    fprintf(stderr, "ktlsctl: --libxo %s: want json, xml or text[,pretty]\n", xo_spec.c_str());
    return EX_USAGE;
  }
  args.push_back(nullptr);
  int n = static_cast<int>(args.size()) - 1;
  char** av = args.data();

  std::string surl;
  reset_getopt();
  for (int ch; (ch = next_opt(c, n, av, "+s:k:h")) != -1;) {
    switch (ch) {
      case 's': surl = optarg; break;
      case 'k': c.kernel = optarg; break;
      case 'h': print_help(stdout); return 0;
      default: return usage(c);
    }
  }
  if (optind >= n) return usage(c);
  c.url = ukernd::control_url(surl);
  std::string path, why;
  if (!ukernd::url_to_path(c.url, &path, &why)) {
    fprintf(stderr, "ktlsctl: -s %s: %s\n", c.url.c_str(), why.c_str());
    return EX_USAGE;
  }
  const char* name = av[optind];
  for (const Command& cmd : kCommands) {
    if (strcmp(cmd.name, name) == 0) {
      c.cmd = &cmd;
      if (c.kernel == ukernd::kAllKernels && cmd.run != cmd_sessions) {
        warnx(c, "-k all is accepted by sessions only");
        return EX_USAGE;
      }
      return cmd.run(c, n - optind, av + optind);
    }
  }
  fprintf(stderr, "ktlsctl: unknown command '%s'\n", name);
  return usage(c);
}

}  // namespace
}  // namespace ktlsctl

int main(int argc, char** argv) {
  signal(SIGPIPE, SIG_IGN);
  return ktlsctl::run(argc, argv);
}
