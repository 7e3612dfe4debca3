#include "usr.sbin/ukernd/demo.h"

#include <arpa/inet.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <pthread.h>
#include <sys/stat.h>
#include <sysexits.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstring>
#include <fstream>
#include <map>
#include <memory>
#include <set>
#include <sstream>
#include <thread>
#include <vector>

#include "lib/libuk/uk.h"
#include "lib/libuk_ssl/uk_ssl.h"
#include "sys/kern/kern_proc.h"
#include "sys/kern/uipc_ktls.h"
#include "sys/sys/lock.h"
#include "usr.sbin/ukernd/ops.h"
#include "usr.sbin/ukernd/thread_cpu.h"
#include "usr.sbin/ukhttpd/docroot_gen.h"

namespace ukernd {

using nlohmann::json;

namespace {

using Clock = std::chrono::steady_clock;

const char* mode_name(int m) {
  switch (m) {
    case TCP_TLS_MODE_NONE: return "none";
    case TCP_TLS_MODE_SW: return "sw";
    case TCP_TLS_MODE_IFNET: return "ifnet";
    case TCP_TLS_MODE_TOE: return "toe";
    default: return "?";
  }
}

// ---- the client: an OpenSSL client over lib/libuk_ssl in the client kernel ----

struct ClientResult {
  uint64_t bytes = 0;  // body bytes received
  int bodies_ok = 0;
  int bodies_bad = 0;  // wrong status, length or SHA-256
  bool ktls_tx = false, ktls_rx = false;
  std::string error;
};

std::string hex(const unsigned char* h, unsigned n) {
  static const char* x = "0123456789abcdef";
  std::string s;
  for (unsigned i = 0; i < n; ++i) {
    s += x[h[i] >> 4];
    s += x[h[i] & 15];
  }
  return s;
}

std::string ssl_error(SSL* ssl, int rc, const char* what) {
  int e = SSL_get_error(ssl, rc);
  int saved = errno;
  std::string s = std::string(what) + ": SSL error " + std::to_string(e);
  unsigned long q = ERR_get_error();
  if (q != 0) {
    char buf[256];
    ERR_error_string_n(q, buf, sizeof(buf));
    s += " (" + std::string(buf) + ")";
  } else if (e == SSL_ERROR_SYSCALL && saved != 0) {
    s += " (" + std::string(strerror(saved)) + ")";
  }
  ERR_clear_error();
  return s;
}

// One connection: |requests| keep-alive GETs of |path|, each body hashed and
// compared with |sha|. The last request asks for Connection: close.
void client_conn(uk_proc* p, const sockaddr_in& dst, SSL_CTX* ctx, const std::string& path,
                 uint64_t size, const std::string& sha, int requests,
                 std::atomic<uint64_t>* progress, ClientResult* r) {
  int s = uk_socket(p, AF_INET, SOCK_STREAM, 0);
  if (s < 0 || uk_connect(p, s, reinterpret_cast<const sockaddr*>(&dst), sizeof(dst)) != 0) {
    r->error = std::string("connect: ") + strerror(errno);
    if (s >= 0) uk_close(p, s);
    return;
  }
  BIO* bio = uk_BIO_new_socket(p, s, BIO_CLOSE);
  SSL* ssl = SSL_new(ctx);
  SSL_set_bio(ssl, bio, bio);
  int rc = SSL_connect(ssl);
  if (rc != 1) {
    r->error = ssl_error(ssl, rc, "handshake");
    SSL_free(ssl);
    return;
  }
  r->ktls_tx = BIO_get_ktls_send(SSL_get_wbio(ssl)) > 0;
  r->ktls_rx = BIO_get_ktls_recv(SSL_get_rbio(ssl)) > 0;
  std::string in;
  std::vector<char> buf(64 * 1024);
  EVP_MD_CTX* md = EVP_MD_CTX_new();
  for (int i = 0; i < requests && r->error.empty(); ++i) {
    std::string req = "GET /" + path + " HTTP/1.1\r\nHost: server\r\nUser-Agent: ukernd-demo\r\n";
    if (i + 1 == requests) req += "Connection: close\r\n";
    req += "\r\n";
    size_t wrote = 0;
    if (SSL_write_ex(ssl, req.data(), req.size(), &wrote) != 1) {
      r->error = ssl_error(ssl, 0, "request");
      break;
    }
    size_t end;
    while ((end = in.find("\r\n\r\n")) == std::string::npos) {
      size_t n = 0;
      if (SSL_read_ex(ssl, buf.data(), buf.size(), &n) != 1) {
        r->error = ssl_error(ssl, 0, "response head");
        break;
      }
      in.append(buf.data(), n);
    }
    if (!r->error.empty()) break;
    std::string head = in.substr(0, end);
    in.erase(0, end + 4);
    uint64_t len = UINT64_MAX;
    bool ok200 = head.compare(0, 12, "HTTP/1.1 200") == 0;
    std::istringstream hs(head);
    for (std::string line; std::getline(hs, line);) {
      if (strncasecmp(line.c_str(), "Content-Length:", 15) == 0)
        len = std::strtoull(line.c_str() + 15, nullptr, 10);
    }
    if (len == UINT64_MAX) {
      r->error = "response without Content-Length: " + head.substr(0, head.find('\r'));
      break;
    }
    EVP_DigestInit_ex(md, EVP_sha256(), nullptr);
    uint64_t got = 0;
    while (got < len) {
      if (in.empty()) {
        size_t n = 0;
        if (SSL_read_ex(ssl, buf.data(), buf.size(), &n) != 1) {
          r->error = ssl_error(ssl, 0, "body");
          break;
        }
        in.append(buf.data(), n);
      }
      size_t take = static_cast<size_t>(std::min<uint64_t>(in.size(), len - got));
      EVP_DigestUpdate(md, in.data(), take);
      in.erase(0, take);
      got += take;
      progress->fetch_add(take, std::memory_order_relaxed);
    }
    if (!r->error.empty()) break;
    unsigned char h[EVP_MAX_MD_SIZE];
    unsigned hl = 0;
    EVP_DigestFinal_ex(md, h, &hl);
    if (ok200 && len == size && hex(h, hl) == sha) {
      r->bodies_ok++;
      r->bytes += len;
    } else {
      r->bodies_bad++;
    }
  }
  EVP_MD_CTX_free(md);
  if (r->error.empty()) SSL_shutdown(ssl);
  ERR_clear_error();
  SSL_free(ssl);
}

// ---- server-side measurements ----

struct Snapshot {
  std::map<std::string, double> sysctl;
  uint64_t ktls_ns = 0, nic_ns = 0, tcp_ns = 0;
  Clock::time_point t;
};

// Threads the server kernel starts after boot:
// - the KTLS workers, started by the first session (FreeBSD's
//   ktls_start_kthreads): the kernel lists them (ktls_worker_tids; both
//   kernels' are named ktls_thr_N);
// - NIC engine threads: the TOE engine ("nic_simN_toe") starts with its
//   first offloaded connection; those born in an ifconfig of the
//   experiment are in |nic_extra|, the others are new since |base| and
//   named nic_sim* (the client kernel never offloads, so it starts none).
Snapshot snapshot(LabKernel& server, const std::set<pid_t>& exclude,
                  const std::set<pid_t>& base, const std::set<pid_t>& nic_extra) {
  Snapshot s;
  std::set<pid_t> known(server.boot_tids.begin(), server.boot_tids.end());
  known.insert(server.nic_tids.begin(), server.nic_tids.end());
  for (pid_t t : uk::ktls_worker_tids(*server.p->k)) {
    if (known.insert(t).second) s.ktls_ns += thread_cpu_ns(t);
  }
  for (pid_t t : list_tids()) {
    if (known.count(t) || exclude.count(t)) continue;
    if (nic_extra.count(t) || (!base.count(t) && thread_comm(t).rfind("nic_sim", 0) == 0))
      s.nic_ns += thread_cpu_ns(t);
  }
  for (const char* prefix : {"kern.ipc.tls", "net.inet.tcp.stats", "dev.nic_sim"}) {
    auto m = sysctl_numbers(server, prefix);
    s.sysctl.insert(m.begin(), m.end());
  }
  for (pid_t t : server.boot_tids) {
    std::string comm = thread_comm(t);
    uint64_t ns = thread_cpu_ns(t);
    // KTLS workers and the crypto framework's threads do the record
    // encryption; the rest (netisr, callout, taskqueues) run TCP input,
    // timers and deferred work.
    if (comm.rfind("ktls", 0) == 0 || comm.rfind("crypto", 0) == 0 || comm.rfind("ccr", 0) == 0)
      s.ktls_ns += ns;
    else
      s.tcp_ns += ns;
  }
  for (pid_t t : server.nic_tids) s.nic_ns += thread_cpu_ns(t);
  s.t = Clock::now();
  return s;
}

double delta_matching(const Snapshot& a, const Snapshot& b,
                      const std::function<bool(const std::string&)>& pred) {
  double d = 0;
  for (const auto& [name, v] : b.sysctl) {
    if (!pred(name)) continue;
    auto it = a.sysctl.find(name);
    d += v - (it == a.sysctl.end() ? 0 : it->second);
  }
  return d;
}

bool contains(const std::string& s, const char* w) { return s.find(w) != std::string::npos; }
bool ends_with(const std::string& s, const char* w) {
  size_t n = strlen(w);
  return s.size() >= n && s.compare(s.size() - n, n, w) == 0;
}

// ---- report files ----

double num(const json& j, const char* k) {
  return j.contains(k) && j[k].is_number() ? j[k].get<double>() : 0.0;
}

std::string fmt(double v, int prec) {
  char b[64];
  snprintf(b, sizeof(b), "%.*f", prec, v);
  return b;
}

std::string xml_escape(const std::string& s) {
  std::string o;
  for (char c : s) {
    if (c == '<') o += "&lt;";
    else if (c == '>') o += "&gt;";
    else if (c == '&') o += "&amp;";
    else o += c;
  }
  return o;
}

// One bar group per mode: throughput on the left axis, server CPU seconds
// per GiB (stacked by where it was spent) on the right.
std::string svg_chart(const json& report) {
  const json& rows = report["rows"];
  const int W = 760, H = 380, top = 50, bottom = 300, left = 60;
  const int group = rows.empty() ? 1 : (W - 2 * left) / static_cast<int>(rows.size());
  double max_tp = 0.001, max_cpu = 0.001;
  for (const json& r : rows) {
    max_tp = std::max(max_tp, num(r, "throughput_gbps"));
    max_cpu = std::max(max_cpu, num(r["server_cpu_s_per_gib"], "total"));
  }
  const char* parts[] = {"ktls_crypto", "nic", "tcp", "syscalls_copies"};
  const char* colors[] = {"#d95f02", "#7570b3", "#66a61e", "#e6ab02"};
  std::ostringstream o;
  o << "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" << W << "\" height=\"" << H
    << "\" font-family=\"sans-serif\" font-size=\"12\">\n";
  o << "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n";
  o << "<text x=\"" << W / 2 << "\" y=\"22\" text-anchor=\"middle\" font-size=\"15\">"
    << "ukernd --demo: HTTPS from ukhttpd, server TX mode comparison</text>\n";
  o << "<line x1=\"" << left << "\" y1=\"" << bottom << "\" x2=\"" << W - left << "\" y2=\""
    << bottom << "\" stroke=\"black\"/>\n";
  o << "<text x=\"" << left - 8 << "\" y=\"" << top - 8 << "\" text-anchor=\"start\">Gb/s (max "
    << fmt(max_tp, 2) << ")</text>\n";
  o << "<text x=\"" << W - left + 8 << "\" y=\"" << top - 8
    << "\" text-anchor=\"end\">server CPU s/GiB (max " << fmt(max_cpu, 2) << ")</text>\n";
  const double span = bottom - top;
  for (size_t i = 0; i < rows.size(); ++i) {
    const json& r = rows[i];
    int x0 = left + static_cast<int>(i) * group + group / 6;
    int bw = group / 3;
    double tp = num(r, "throughput_gbps");
    int h = static_cast<int>(span * tp / max_tp);
    o << "<rect x=\"" << x0 << "\" y=\"" << bottom - h << "\" width=\"" << bw << "\" height=\"" << h
      << "\" fill=\"#1b9e77\"><title>" << fmt(tp, 3) << " Gb/s</title></rect>\n";
    o << "<text x=\"" << x0 + bw / 2 << "\" y=\"" << bottom - h - 4
      << "\" text-anchor=\"middle\">" << fmt(tp, 2) << "</text>\n";
    double y = bottom;
    const json& cpu = r["server_cpu_s_per_gib"];
    for (int k = 0; k < 4; ++k) {
      double v = num(cpu, parts[k]);
      double hh = span * v / max_cpu;
      y -= hh;
      o << "<rect x=\"" << x0 + bw + 4 << "\" y=\"" << fmt(y, 1) << "\" width=\"" << bw
        << "\" height=\"" << fmt(hh, 1) << "\" fill=\"" << colors[k] << "\"><title>" << parts[k]
        << " " << fmt(v, 3) << " s/GiB</title></rect>\n";
    }
    std::string label = r["mode"].get<std::string>();
    std::string achieved = r.value("achieved_mode", label);
    o << "<text x=\"" << x0 + bw << "\" y=\"" << bottom + 18 << "\" text-anchor=\"middle\">"
      << xml_escape(label) << "</text>\n";
    if (achieved != label)
      o << "<text x=\"" << x0 + bw << "\" y=\"" << bottom + 33
        << "\" text-anchor=\"middle\" fill=\"#b00\">(ran as " << xml_escape(achieved)
        << ")</text>\n";
  }
  int lx = left;
  o << "<rect x=\"" << lx << "\" y=\"" << H - 30 << "\" width=\"12\" height=\"12\" fill=\"#1b9e77\"/>"
    << "<text x=\"" << lx + 16 << "\" y=\"" << H - 20 << "\">throughput</text>\n";
  lx += 100;
  for (int k = 0; k < 4; ++k) {
    o << "<rect x=\"" << lx << "\" y=\"" << H - 30 << "\" width=\"12\" height=\"12\" fill=\""
      << colors[k] << "\"/><text x=\"" << lx + 16 << "\" y=\"" << H - 20 << "\">" << parts[k]
      << "</text>\n";
    lx += 130;
  }
  o << "</svg>\n";
  return o.str();
}

std::string csv(const json& report) {
  std::ostringstream o;
  o << "mode,achieved_mode,connections,requests,bytes,seconds,throughput_gbps,"
       "cpu_ktls_crypto_s_per_gib,cpu_nic_s_per_gib,cpu_tcp_s_per_gib,"
       "cpu_syscalls_copies_s_per_gib,cpu_total_s_per_gib,records,retransmissions,"
       "nic_rebuild_bytes,mode_switches,bodies_sendfile,bodies_ssl_write,error\n";
  for (const json& r : report["rows"]) {
    const json& c = r["server_cpu_s_per_gib"];
    std::string err = r.value("error", "");
    for (char& ch : err)
      if (ch == ',' || ch == '"' || ch == '\n') ch = ' ';
    o << r["mode"].get<std::string>() << "," << r.value("achieved_mode", "") << ","
      << num(r, "connections") << "," << num(r, "requests") << "," << fmt(num(r, "bytes"), 0)
      << "," << fmt(num(r, "seconds"), 4) << "," << fmt(num(r, "throughput_gbps"), 4) << ","
      << fmt(num(c, "ktls_crypto"), 4) << "," << fmt(num(c, "nic"), 4) << ","
      << fmt(num(c, "tcp"), 4) << "," << fmt(num(c, "syscalls_copies"), 4) << ","
      << fmt(num(c, "total"), 4) << "," << fmt(num(r, "records"), 0) << ","
      << fmt(num(r, "retransmissions"), 0) << "," << fmt(num(r, "nic_rebuild_bytes"), 0) << ","
      << fmt(num(r, "mode_switches"), 0) << "," << fmt(num(r, "bodies_sendfile"), 0) << ","
      << fmt(num(r, "bodies_ssl_write"), 0) << "," << err << "\n";
  }
  return o.str();
}

std::string table(const json& report) {
  std::ostringstream o;
  char line[512];
  snprintf(line, sizeof(line), "%-9s %-9s %7s | %9s %7s %7s %9s %7s | %8s %7s %9s %8s\n", "mode",
           "ran as", "Gb/s", "ktls-cpu", "nic", "tcp", "syscalls", "total", "records", "rexmit",
           "rebuild-B", "switches");
  o << "\nserver CPU seconds per GiB served (ktls-cpu: KTLS workers and crypto; nic: NIC "
       "engine threads;\ntcp: netisr/callout/taskqueues; syscalls: ukhttpd threads - socket "
       "copies, tcp_output,\nand OpenSSL's own encryption in userland mode)\n\n";
  o << line;
  for (const json& r : report["rows"]) {
    const json& c = r["server_cpu_s_per_gib"];
    snprintf(line, sizeof(line),
             "%-9s %-9s %7.3f | %9.3f %7.3f %7.3f %9.3f %7.3f | %8.0f %7.0f %9.0f %8.0f\n",
             r["mode"].get<std::string>().c_str(), r.value("achieved_mode", "").c_str(),
             num(r, "throughput_gbps"), num(c, "ktls_crypto"), num(c, "nic"), num(c, "tcp"),
             num(c, "syscalls_copies"), num(c, "total"), num(r, "records"),
             num(r, "retransmissions"), num(r, "nic_rebuild_bytes"), num(r, "mode_switches"));
    o << line;
  }
  for (const json& r : report["rows"]) {
    if (r.contains("error"))
      o << "  " << r["mode"].get<std::string>() << ": " << r["error"].get<std::string>() << "\n";
    if (r.contains("note"))
      o << "  " << r["mode"].get<std::string>() << ": " << r["note"].get<std::string>() << "\n";
  }
  return o.str();
}

bool write_text(const std::string& path, const std::string& text, std::string* err) {
  std::ofstream f(path);
  f << text;
  f.close();
  if (!f) {
    *err = path + ": " + strerror(errno);
    return false;
  }
  return true;
}

bool mkdirs(const std::string& dir) {
  std::string cur;
  std::stringstream ss(dir);
  if (!dir.empty() && dir[0] == '/') cur = "/";
  for (std::string part; std::getline(ss, part, '/');) {
    if (part.empty()) continue;
    cur += part + "/";
    if (mkdir(cur.c_str(), 0755) != 0 && errno != EEXIST) return false;
  }
  return true;
}

}  // namespace

int run_demo(Lab& lab, HttpsService& https, const DemoOptions& o, FILE* log, FILE* out,
             json* report_out) {
  LabKernel& server = https.kernel();
  LabKernel* client = nullptr;
  for (LabKernel& k : lab.kernels()) {
    if (&k != &server && !kernel_inet(k).empty()) {
      client = &k;
      break;
    }
  }
  std::string server_ip = kernel_inet(server);
  if (client == nullptr || server_ip.empty() || server.nics.empty()) {
    fprintf(log, "ukernd: demo: needs a server kernel with a NIC and a client kernel wired "
                 "to it (the default lab has both)\n");
    return EX_CONFIG;
  }
  const std::string nic = server.nics.front();

  // The file fetched: from the service's generated docroot, or generated
  // for the experiment under /demo when the service serves a host directory.
  uint64_t size = 0;
  for (const auto& f : ukhttpd::DefaultFiles())
    if (f.name == o.file) size = f.size;
  if (size == 0) {
    fprintf(log, "ukernd: demo: --demo-file %s: not a generated file (1k.bin, 1m.bin, 64m.bin)\n",
            o.file.c_str());
    return EX_USAGE;
  }
  ukhttpd::Docroot* docroot = &https.docroot();
  std::unique_ptr<ukhttpd::UkTmpfsDocroot> own_root;
  if (!https.generated()) {
    auto manifest = std::make_shared<ukhttpd::UkTmpfsManifest>();
    ukhttpd::UkTmpfsDocSink sink(https.proc(), "/demo", manifest);
    if (int e = ukhttpd::WriteDocroot(sink, {{o.file, size}}, nullptr)) {
      fprintf(log, "ukernd: demo: writing /demo/%s: %s\n", o.file.c_str(), strerror(e));
      return EX_SOFTWARE;
    }
    own_root = std::make_unique<ukhttpd::UkTmpfsDocroot>(https.proc(), "/demo", manifest);
    docroot = own_root.get();
  }
  const std::string sha = ukhttpd::PatternSha256(o.file, size);

  // Server contexts: KTLS on (SW/IFNET/TOE) and off (userland).
  ukhttpd::TlsConfig tc;
  tc.hostname = "server";
  tc.keylog_file = https.options().keylog;
  auto ktls_ctx = ukhttpd::TlsContext::Create(tc);
  tc.ktls = false;
  auto user_ctx = ukhttpd::TlsContext::Create(tc);
  if (!ktls_ctx.ok() || !user_ctx.ok()) {
    fprintf(log, "ukernd: demo: TLS: %s\n",
            std::string((!ktls_ctx.ok() ? ktls_ctx.status() : user_ctx.status()).message()).c_str());
    return EX_SOFTWARE;
  }
  // The client: TLS 1.2 AES-128-GCM by default, which OpenSSL 3.0 offloads
  // both ways (it has no TLS 1.3 receive offload), so the client's KTLS RX
  // is on.
  SSL_CTX* cctx = SSL_CTX_new(TLS_client_method());
  SSL_CTX_set_min_proto_version(cctx, TLS1_2_VERSION);
  SSL_CTX_set_max_proto_version(cctx, o.tls13 ? TLS1_3_VERSION : TLS1_2_VERSION);
  if (o.tls13) SSL_CTX_set_min_proto_version(cctx, TLS1_3_VERSION);
  SSL_CTX_set_cipher_list(cctx, "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256");
  SSL_CTX_set_options(cctx, SSL_OP_ENABLE_KTLS);
  SSL_CTX_set_verify(cctx, SSL_VERIFY_NONE, nullptr);
  uk_proc* cp = uk_proc_create(client->k, "demo-client");

  json report;
  report["lab"] = lab.spec().name;
  report["server"] = {{"kernel", server.spec->name}, {"address", server_ip}, {"nic", nic}};
  report["client"] = {{"kernel", client->spec->name},
                      {"tls", o.tls13 ? "TLSv1.3" : "TLSv1.2 ECDHE-ECDSA-AES128-GCM-SHA256"}};
  report["file"] = {{"name", o.file}, {"size", size}, {"sha256", sha}};
  report["connections"] = o.connections;
  report["requests_per_connection"] = o.requests;
  report["rows"] = json::array();

  const uint64_t total = size * static_cast<uint64_t>(o.connections) *
                         static_cast<uint64_t>(o.requests);
  std::vector<std::string> modes;
  {
    std::stringstream ss(o.modes);
    for (std::string m; std::getline(ss, m, ',');)
      if (!m.empty()) modes.push_back(m);
  }
  fprintf(log, "ukernd: demo: %s -> %s:%s, %d connections x %d GETs of /%s (%.1f MiB) per mode\n",
          client->spec->name.c_str(), server.spec->name.c_str(), nic.c_str(), o.connections,
          o.requests, o.file.c_str(), total / 1048576.0);

  // Threads born while the experiment reconfigured the server's NIC.
  std::set<pid_t> nic_extra;
  for (const std::string& mode : modes) {
    json row;
    row["mode"] = mode;
    std::vector<std::string> setup_errors;
    auto ifc = [&](const char* args) {
      std::set<pid_t> pre = list_tids();
      if (uk_ifconfig(server.k, nic.c_str(), args) != 0)
        setup_errors.push_back("ifconfig " + nic + " " + args + ": " + strerror(errno));
      for (pid_t t : list_tids())
        if (!pre.count(t)) nic_extra.insert(t);
    };
    int want = 0;
    ukhttpd::TlsContext* ctx = ktls_ctx->get();
    if (mode == "sw") {
      ifc("-toe");
      ifc("-txtls");
    } else if (mode == "ifnet") {
      ifc("-toe");
      ifc("txtls");
      want = TCP_TLS_MODE_IFNET;
    } else if (mode == "toe") {
      ifc("txtls");
      ifc("toe");
    } else if (mode == "userland") {
      ifc("-toe");
      ifc("-txtls");
      ctx = user_ctx->get();
    } else {
      fprintf(log, "ukernd: demo: unknown mode '%s' (sw, ifnet, toe, userland)\n", mode.c_str());
      continue;
    }
    if (mode == "ifnet" || mode == "toe") {
      int one = 1;
      if (uk_sysctlbyname(server.p, "kern.ipc.tls.ifnet.permitted", nullptr, nullptr, &one,
                          sizeof(one)) != 0)
        setup_errors.push_back(std::string("sysctl kern.ipc.tls.ifnet.permitted=1: ") +
                               strerror(errno));
    }

    std::unique_ptr<ukhttpd::UkListener> listener;
    std::string what;
    if (int e = ukhttpd::UkListener::Open(https.proc(), "0.0.0.0:0", 30, want, &listener, &what)) {
      row["error"] = "listener: " + what + ": " + strerror(e);
      row["achieved_mode"] = "none";
      row["throughput_gbps"] = 0;
      row["server_cpu_s_per_gib"] = json::object();
      report["rows"].push_back(row);
      continue;
    }
    ukhttpd::Counters counters;
    ukhttpd::Server srv(https.http_config(), docroot, ctx, &counters, 64);
    std::atomic<pid_t> srv_tid{0};
    std::thread srv_thread([&] {
      pthread_setname_np(pthread_self(), "demo-httpd");
      srv_tid.store(gettid());
      srv.run(*listener);
    });
    while (srv_tid.load() == 0) std::this_thread::yield();
    const std::set<pid_t> exclude = {srv_tid.load(), https.accept_tid(), gettid()};

    sockaddr_in dst{};
    dst.sin_family = AF_INET;
    dst.sin_port = htons(static_cast<uint16_t>(listener->port()));
    inet_pton(AF_INET, server_ip.c_str(), &dst.sin_addr);

    const std::set<pid_t> base = list_tids();
    Snapshot before = snapshot(server, exclude, base, nic_extra);
    std::atomic<uint64_t> progress{0};
    std::vector<ClientResult> results(static_cast<size_t>(o.connections));
    std::vector<std::thread> clients;
    for (int i = 0; i < o.connections; ++i) {
      clients.emplace_back([&, i] {
        pthread_setname_np(pthread_self(), "demo-client");
        client_conn(cp, dst, cctx, o.file, size, sha, o.requests, &progress,
                    &results[static_cast<size_t>(i)]);
      });
    }
    // Progress, twice a second, until every client is done.
    std::atomic<bool> done{false};
    uk::Mutex pmu;
    uk::CondVar pcv;
    std::thread prog([&] {
      auto start = Clock::now();
      while (true) {
        {
          uk::MutexLock l(&pmu);
          if (!done.load()) pcv.WaitWithTimeout(&pmu, absl::Milliseconds(500));
        }
        if (done.load()) break;
        double secs = std::chrono::duration<double>(Clock::now() - start).count();
        uint64_t got = progress.load();
        fprintf(log, "ukernd: demo: %-8s %7.1f / %.1f MiB  %6.2f Gb/s\n", mode.c_str(),
                got / 1048576.0, total / 1048576.0, secs > 0 ? got * 8 / secs / 1e9 : 0.0);
      }
    });
    for (auto& t : clients) t.join();
    Clock::time_point end = Clock::now();
    {
      uk::MutexLock l(&pmu);
      done.store(true);
      pcv.SignalAll();
    }
    prog.join();
    srv.stop();
    srv_thread.join();
    Snapshot after = snapshot(server, exclude, base, nic_extra);

    // Results.
    uint64_t bytes = 0;
    int ok = 0, bad = 0, rx_on = 0;
    std::vector<std::string> errors = setup_errors;
    for (const ClientResult& r : results) {
      bytes += r.bytes;
      ok += r.bodies_ok;
      bad += r.bodies_bad;
      rx_on += r.ktls_rx ? 1 : 0;
      if (!r.error.empty()) errors.push_back("client: " + r.error);
    }
    if (bad > 0) errors.push_back(std::to_string(bad) + " bodies with a wrong status, length or SHA-256");
    double secs = std::chrono::duration<double>(end - before.t).count();
    double gib = bytes / 1073741824.0;
    auto per_gib = [&](double ns) { return gib > 0 ? ns / 1e9 / gib : 0.0; };
    double ktls_ns = static_cast<double>(after.ktls_ns - before.ktls_ns);
    double nic_ns = static_cast<double>(after.nic_ns - before.nic_ns);
    double tcp_ns = static_cast<double>(after.tcp_ns - before.tcp_ns);
    double app_ns = static_cast<double>(counters.connection_cpu_ns.load());
    json cpu = {{"ktls_crypto", per_gib(ktls_ns)},
                {"nic", per_gib(nic_ns)},
                {"tcp", per_gib(tcp_ns)},
                {"syscalls_copies", per_gib(app_ns)},
                {"total", per_gib(ktls_ns + nic_ns + tcp_ns + app_ns)}};

    const auto& ms = *listener->mode_stats();
    json tx_modes = json::object();
    int achieved = -1;
    bool mixed = false;
    for (int m = 0; m < 4; ++m) {
      uint64_t n = ms.tx_mode[m].load();
      if (n == 0) continue;
      tx_modes[mode_name(m)] = n;
      if (achieved >= 0 && achieved != m) mixed = true;
      achieved = m;
    }
    std::string achieved_name;
    if (counters.ktls_tx_connections.load() == 0 && counters.handshakes.load() > 0)
      achieved_name = "userland";
    else if (mixed)
      achieved_name = "mixed";
    else if (achieved >= 0)
      achieved_name = mode_name(achieved);
    else
      achieved_name = "none";

    row["achieved_mode"] = achieved_name;
    row["reached"] = achieved_name == mode;
    row["connections"] = o.connections;
    row["requests"] = o.connections * o.requests;
    row["bodies_ok"] = ok;
    row["bytes"] = bytes;
    row["seconds"] = secs;
    row["throughput_gbps"] = secs > 0 ? bytes * 8.0 / secs / 1e9 : 0.0;
    row["server_cpu_s_per_gib"] = cpu;
    row["server_cpu_seconds"] = {{"ktls_crypto", ktls_ns / 1e9},
                                 {"nic", nic_ns / 1e9},
                                 {"tcp", tcp_ns / 1e9},
                                 {"syscalls_copies", app_ns / 1e9}};
    row["tx_modes"] = tx_modes;
    row["client_ktls_rx_connections"] = rx_on;
    row["bodies_sendfile"] = counters.bodies_sendfile.load();
    row["bodies_ssl_write"] = counters.bodies_ssl_write.load();
    double sw_records = delta_matching(before, after, [](const std::string& n) {
      return n.rfind("kern.ipc.tls.stats.ocf.", 0) == 0 && ends_with(n, "_encrypts");
    });
    double nic_records = delta_matching(before, after, [](const std::string& n) {
      return n.rfind("dev.nic_sim.", 0) == 0 && contains(n, "record") &&
             (contains(n, "tx") || contains(n, "toe") || contains(n, "encrypt"));
    });
    auto count = [](double v) { return static_cast<uint64_t>(v < 0 ? 0 : v + 0.5); };
    row["records"] = count(sw_records + nic_records);
    row["records_sw"] = count(sw_records);
    row["records_nic"] = count(nic_records);
    row["retransmissions"] = count(delta_matching(before, after, [](const std::string& n) {
      return n == "net.inet.tcp.stats.sndrexmitpack" ||
             (n.rfind("dev.nic_sim.", 0) == 0 && contains(n, "toe") && contains(n, "rexmit") &&
              !contains(n, "bytes"));
    }));
    row["nic_rebuild_bytes"] = count(delta_matching(before, after, [](const std::string& n) {
      return n.rfind("dev.nic_sim.", 0) == 0 && ends_with(n, "bytes") &&
             (contains(n, "rebuild") || contains(n, "resync") || contains(n, "recrypt"));
    }));
    row["mode_switches"] = count(delta_matching(before, after, [](const std::string& n) {
      return n == "kern.ipc.tls.stats.switch_to_ifnet" || n == "kern.ipc.tls.stats.switch_to_sw";
    }));
    row["switch_failures"] = ms.switch_failures.load();
    if (!errors.empty()) {
      std::string e;
      for (const std::string& s : errors) e += (e.empty() ? "" : "; ") + s;
      row["error"] = e;
    }
    if (achieved_name != mode) {
      std::string note = "requested " + mode + ", connections ran as " + achieved_name;
      if (int le = ms.last_error.load())
        note += std::string(" (TCP_TXTLS_MODE: ") + strerror(le) + ")";
      note += "; figures are for " + achieved_name;
      row["note"] = note;
    }
    fprintf(log, "ukernd: demo: %-8s done: %.1f MiB in %.3f s, %.2f Gb/s, ran as %s\n",
            mode.c_str(), bytes / 1048576.0, secs, num(row, "throughput_gbps"),
            achieved_name.c_str());
    report["rows"].push_back(row);
  }

  // Back to the lab's own configuration of the NIC.
  uk_ifconfig(server.k, nic.c_str(), "-toe");
  uk_ifconfig(server.k, nic.c_str(), "-txtls");
  for (const NicSpec& n : server.spec->nics)
    if (n.name == nic)
      for (const std::string& opt : n.options) uk_ifconfig(server.k, nic.c_str(), opt.c_str());
  uk_proc_destroy(cp);
  SSL_CTX_free(cctx);

  std::string tbl = table(report);
  fputs(tbl.c_str(), out);
  fflush(out);
  std::string err;
  if (!mkdirs(o.out_dir) ||
      !write_text(o.out_dir + "/report.json", report.dump(2) + "\n", &err) ||
      !write_text(o.out_dir + "/report.csv", csv(report), &err) ||
      !write_text(o.out_dir + "/report.svg", svg_chart(report), &err)) {
    fprintf(log, "ukernd: demo: writing the report into %s: %s\n", o.out_dir.c_str(),
            err.empty() ? strerror(errno) : err.c_str());
    return EX_CANTCREAT;
  }
  fprintf(log, "ukernd: demo: report written to %s/report.{json,csv,svg}\n", o.out_dir.c_str());
  if (report_out) *report_out = report;
  return 0;
}

}  // namespace ukernd
