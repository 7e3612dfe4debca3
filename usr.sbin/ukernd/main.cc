// ukernd: hosts a lab of uktls kernels in the foreground and answers
// ktlsctl on a control socket. See docs/ukernd.md and ukernd --help.
#include <signal.h>
#include <sys/signalfd.h>
#include <sysexits.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string>

#include "CLI/CLI.hpp"
#include "usr.sbin/ukernd/ctlsock.h"
#include "usr.sbin/ukernd/demo.h"
#include "usr.sbin/ukernd/lab.h"
#include "usr.sbin/ukernd/lab_host.h"
#include "usr.sbin/ukernd/ops.h"
#include "usr.sbin/ukernd/server.h"
#include "usr.sbin/ukernd/services.h"

namespace {

struct Flags {
  std::string socket_url;
  std::string lab_file;
  bool demo = false;
  bool once = false;
  bool print_lab = false;
  std::string out_dir = "ukernd-report";
  std::string docroot;
  std::string bridge = "127.0.0.1:8443";
  std::string keylog;
  bool no_services = false;
  bool access_log = false;
  ukernd::DemoOptions demo_opts;
};

bool valid_bridge(const std::string& s) {
  size_t colon = s.rfind(':');
  if (colon == std::string::npos || colon == 0) return false;
  std::string port = s.substr(colon + 1);
  if (port.empty() || port.size() > 5) return false;
  for (char c : port)
    if (c < '0' || c > '9') return false;
  int p = std::stoi(port);
  return p >= 0 && p < 65536;  // 0: the host picks a free port
}

// True if a SIGINT/SIGTERM is pending on |sfd| (non-blocking check).
bool signalled(int sfd) {
  pollfd p{sfd, POLLIN, 0};
  return poll(&p, 1, 0) > 0;
}

int read_signal(int sfd) {
  signalfd_siginfo si{};
  if (read(sfd, &si, sizeof(si)) != sizeof(si)) return 0;
  return static_cast<int>(si.ssi_signo);
}

}  // namespace

int main(int argc, char** argv) {
  Flags f;
  CLI::App app{
      "ukernd: hosts a lab of uktls kernels (FreeBSD kernel TLS as a user-mode\n"
      "kernel) and answers ktlsctl(8) on a control socket. Runs in the\n"
      "foreground; SIGINT or SIGTERM halts every kernel and exits 0.",
      "ukernd"};
  app.add_option("-s,--socket", f.socket_url,
                 "control socket URL (unix://PATH); default $UKERN_SERVER, else "
                 "$XDG_RUNTIME_DIR/ukernd.sock, else /tmp/ukernd-$UID.sock");
  app.add_option("-f,--lab", f.lab_file, "lab file (TOML); default: the embedded default lab");
  app.add_flag("--print-lab", f.print_lab, "print the default lab file and exit");
  app.add_flag("--demo", f.demo, "run the built-in experiment in the default lab");
  app.add_flag("--once", f.once, "exit after booting (and the experiment) instead of serving");
  app.add_option("--out", f.out_dir, "directory for the experiment's report")->capture_default_str();
  app.add_option("--docroot", f.docroot, "host directory served by ukhttpd");
  app.add_option("--bridge", f.bridge, "host address of the HTTPS bridge (ADDR:PORT)")->capture_default_str();
  app.add_option("--keylog", f.keylog, "write TLS secrets in NSS key log format to FILE");
  app.add_flag("--no-services", f.no_services, "boot the lab without ukhttpd and the bridge");
  app.add_flag("--access-log", f.access_log, "log every ukhttpd response to stderr");
  app.add_option("--demo-file", f.demo_opts.file, "generated file the experiment fetches")
      ->capture_default_str();
  app.add_option("--demo-connections", f.demo_opts.connections, "parallel connections per mode")
      ->capture_default_str()
      ->check(CLI::Range(1, 256));
  app.add_option("--demo-requests", f.demo_opts.requests, "GETs per connection per mode")
      ->capture_default_str()
      ->check(CLI::Range(1, 100000));
  app.add_option("--demo-modes", f.demo_opts.modes, "modes to measure, in order")
      ->capture_default_str();
  app.add_flag("--demo-tls13", f.demo_opts.tls13,
               "the experiment's client speaks TLS 1.3 (no KTLS RX in OpenSSL 3.0)");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int r = app.exit(e);
    return r == 0 ? 0 : EX_USAGE;
  }
  if (f.print_lab) {
    std::string_view t = ukernd::default_lab_toml();
    fwrite(t.data(), 1, t.size(), stdout);
    return 0;
  }
  if (!valid_bridge(f.bridge)) {
    fprintf(stderr, "ukernd: --bridge %s: want ADDR:PORT\n", f.bridge.c_str());
    return EX_USAGE;
  }

  // Signals are taken synchronously through a signalfd; blocked before any
  // kernel thread exists so every thread inherits the mask.
  sigset_t mask;
  sigemptyset(&mask);
  sigaddset(&mask, SIGINT);
  sigaddset(&mask, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &mask, nullptr);
  signal(SIGPIPE, SIG_IGN);
  int sfd = signalfd(-1, &mask, SFD_CLOEXEC);
  if (sfd < 0) {
    fprintf(stderr, "ukernd: signalfd: %s\n", strerror(errno));
    return EX_OSERR;
  }

  ukernd::LabSpec spec;
  std::string err;
  if (f.lab_file.empty()) {
    if (!ukernd::parse_lab(ukernd::default_lab_toml(), "<default lab>", &spec, &err)) {
      fprintf(stderr, "ukernd: %s\n", err.c_str());
      return EX_SOFTWARE;
    }
  } else if (!ukernd::load_lab_file(f.lab_file, &spec, &err)) {
    fprintf(stderr, "ukernd: %s\n", err.c_str());
    return EX_CONFIG;
  }

  std::string url = ukernd::control_url(f.socket_url);
  std::string path;
  if (!ukernd::url_to_path(url, &path, &err)) {
    fprintf(stderr, "ukernd: -s %s: %s\n", url.c_str(), err.c_str());
    return EX_USAGE;
  }

  // Refuse early, before booting anything, when a live daemon answers on
  // the socket (listen() checks again, for a daemon that starts meanwhile).
  if (!f.once) {
    int probe = ukernd::unix_connect(path);
    if (probe >= 0) {
      close(probe);
      fprintf(stderr,
              "ukernd: %s: in use by a running ukernd (stop it, or pick another "
              "socket with -s)\n",
              url.c_str());
      return EX_UNAVAILABLE;
    }
  }

  fprintf(stderr, "ukernd: booting lab '%s': %zu kernel%s\n", spec.name.c_str(),
          spec.kernels.size(), spec.kernels.size() == 1 ? "" : "s");
  auto lab = ukernd::Lab::boot(spec, stderr, /*echo_dmesg=*/true, &err);
  if (!lab) {
    fprintf(stderr, "ukernd: %s\n", err.c_str());
    return EX_OSERR;
  }

  // The socket comes up once the lab is there to answer.
  int error = 0;
  auto srv = ukernd::ControlServer::listen(*lab, path, stderr, &error);
  if (!srv) {
    std::string why = error == EADDRINUSE
                          ? "in use by a running ukernd (stop it, or pick another "
                            "socket with -s)"
                      : error == EEXIST ? "exists and is not a socket"
                                        : strerror(error);
    if (!f.once) {
      fprintf(stderr, "ukernd: %s: %s\n", url.c_str(), why.c_str());
      lab->halt();
      return error == EADDRINUSE ? EX_UNAVAILABLE : EX_CANTCREAT;
    }
    fprintf(stderr, "ukernd: warning: %s: %s; running without a control socket\n",
            url.c_str(), why.c_str());
  } else {
    fprintf(stderr, "ukernd: listening on %s (%s)\n", url.c_str(),
            lab->kernel_names().c_str());
  }

  // The lab's services ([[service]] in the lab file; the default lab has
  // ukhttpd in "server" and the bridge through "client"). --demo needs a
  // ukhttpd and starts one in the first kernel when the lab has none.
  std::unique_ptr<ukernd::HttpsService> https;
  std::unique_ptr<ukernd::Bridge> bridge;
  int status = 0;
  const ukernd::ServiceSpec* https_spec = nullptr;
  const ukernd::ServiceSpec* bridge_spec = nullptr;
  for (const ukernd::ServiceSpec& s : spec.services) {
    if (s.type == "ukhttpd" && https_spec == nullptr) {
      https_spec = &s;
    } else if (s.type == "bridge" && bridge_spec == nullptr) {
      bridge_spec = &s;
    } else {
      fprintf(stderr, "ukernd: warning: service '%s': type '%s' %s; not started\n",
              s.name.c_str(), s.type.c_str(),
              s.type == "ukhttpd" || s.type == "bridge" ? "already running"
                                                        : "unknown (ukhttpd, bridge)");
    }
  }
  if (f.no_services) https_spec = bridge_spec = nullptr;
  if (https_spec != nullptr || (f.demo && !f.no_services)) {
    ukernd::HttpsOptions ho;
    ho.docroot_dir = f.docroot;
    ho.keylog = f.keylog;
    ho.access_log = f.access_log;
    ukernd::LabKernel* server = &lab->default_kernel();
    std::string name = "https";
    if (https_spec != nullptr) {
      server = lab->find(https_spec->kernel);
      name = https_spec->name;
      auto it = https_spec->options.find("listen");
      if (it != https_spec->options.end()) ho.listen = it->second;
    }
    https = ukernd::HttpsService::start(*server, ho, stderr, &err);
    if (!https) {
      fprintf(stderr, "ukernd: %s\n", err.c_str());
      lab->set_service_state(name, "failed", {{"error", err}});
      status = EX_SOFTWARE;
    } else {
      lab->set_service_state(name, "running",
                             {{"url", "https://" + https->address() + "/"},
                              {"docroot", f.docroot.empty() ? "generated" : f.docroot}});
    }
  } else if (!f.docroot.empty() || !f.keylog.empty()) {
    fprintf(stderr, "ukernd: warning: the lab has no ukhttpd service; --docroot/--keylog unused\n");
  }
  if (bridge_spec != nullptr && status == 0) {
    // --bridge overrides the lab's address. The default address being taken
    // (another ukernd, a test) is not fatal; one asked for explicitly is.
    const bool explicit_addr = app.count("--bridge") > 0;
    std::string listen = f.bridge;
    auto it = bridge_spec->options.find("listen");
    if (!explicit_addr && it != bridge_spec->options.end()) listen = it->second;
    std::string target;
    it = bridge_spec->options.find("target");
    if (it == bridge_spec->options.end() || (https_spec && it->second == https_spec->name)) {
      if (https) target = https->address();
    } else {
      target = it->second;
    }
    ukernd::LabKernel* via = lab->find(bridge_spec->kernel);
    if (target.empty()) {
      fprintf(stderr, "ukernd: warning: bridge '%s': no target; not started\n",
              bridge_spec->name.c_str());
    } else {
      // From the ukhttpd's own kernel the service is reached on loopback.
      if (https && via == &https->kernel() && target == https->address())
        target = "127.0.0.1:" + target.substr(target.rfind(':') + 1);
      bridge = ukernd::Bridge::start(*via, listen, target, stderr, &err);
      if (!bridge) {
        lab->set_service_state(bridge_spec->name, "failed", {{"error", err}});
        if (explicit_addr) {
          fprintf(stderr, "ukernd: %s\n", err.c_str());
          status = EX_UNAVAILABLE;
        } else {
          fprintf(stderr, "ukernd: warning: %s; running without the bridge (pick another "
                          "address with --bridge)\n", err.c_str());
        }
      } else {
        lab->set_service_state(bridge_spec->name, "running",
                               {{"url", "https://" + bridge->local_address() + "/"},
                                {"target", target}});
      }
    }
  }

  if (f.demo && status == 0) {
    if (!https) {
      fprintf(stderr, "ukernd: demo: needs ukhttpd (drop --no-services)\n");
      status = EX_USAGE;
    } else {
      f.demo_opts.out_dir = f.out_dir;
      status = ukernd::run_demo(*lab, *https, f.demo_opts, stderr, stdout, nullptr);
    }
  }
  if (status != 0) f.once = true;  // a failed start or demo does not go on serving

  int sig = 0;
  if (!f.once && srv) {
    srv->serve(sfd);
    sig = read_signal(sfd);
  } else if (signalled(sfd)) {
    sig = read_signal(sfd);
  }
  if (sig != 0) {
    fprintf(stderr, "ukernd: %s: halting %zu kernel%s\n", strsignal(sig),
            lab->kernels().size(), lab->kernels().size() == 1 ? "" : "s");
  }
  srv.reset();  // clients gone before their kernels
  bridge.reset();
  https.reset();
  lab->halt();
  fprintf(stderr, "ukernd: halted\n");
  close(sfd);
  return status;
}
