// ukhttpd on host sockets: the HTTP/TLS core of ukhttpd serving a host
// directory on a host TCP port, for testing with the host's curl and
// openssl before (and besides) the uktls kernel. See README.md.
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <string>
#include <thread>

#include <CLI/CLI.hpp>

#include "sys/sys/lock.h"
#include "usr.sbin/ukhttpd/docroot_gen.h"
#include "usr.sbin/ukhttpd/docroot_host.h"
#include "usr.sbin/ukhttpd/host_transport.h"
#include "usr.sbin/ukhttpd/httpd.h"
#include "usr.sbin/ukhttpd/tls.h"

namespace {

int ParseTlsVersion(const std::string& v) {
  if (v == "1.2") return TLS1_2_VERSION;
  if (v == "1.3") return TLS1_3_VERSION;
  return -1;
}

// Removes the generated default docroot (flat: files only).
void RemoveGenerated(const std::string& dir) {
  for (const auto& f : ukhttpd::DefaultFiles()) ::unlink((dir + "/" + f.name).c_str());
  ::unlink((dir + "/index.html").c_str());
  ::rmdir(dir.c_str());
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"ukhttpd_host: ukhttpd's HTTPS static file server on host sockets"};
  std::string listen = "127.0.0.1:8443";
  std::string docroot, gen_docroot, keylog, cert, key, cert_out, stats_json;
  std::string key_type = "ec", hostname, ciphers, ciphersuites, tls_min = "1.2", tls_max = "1.3";
  bool no_ktls = false, access_log = false;
  int idle_timeout = 30;
  size_t max_conns = 256;
  app.add_option("--listen", listen, "ADDR:PORT to listen on (port 0 picks a free one)")
      ->capture_default_str();
  app.add_option("--docroot", docroot,
                 "directory to serve; without it a default docroot is generated in a "
                 "temporary directory and removed at exit");
  app.add_option("--gen-docroot", gen_docroot,
                 "write the default docroot (index.html, 1k.bin, 1m.bin, 64m.bin) into DIR "
                 "and exit");
  app.add_option("--keylog", keylog, "append TLS secrets to FILE in the NSS key log format");
  app.add_option("--cert", cert, "PEM certificate chain (default: self-signed, made at start)");
  app.add_option("--key", key, "PEM private key for --cert");
  app.add_option("--cert-out", cert_out, "write the certificate in use (PEM) to FILE");
  app.add_option("--key-type", key_type, "key of a generated certificate: ec (P-256) or rsa")
      ->capture_default_str();
  app.add_option("--hostname", hostname, "CN of a generated certificate (default: hostname)");
  app.add_option("--ciphers", ciphers, "OpenSSL cipher list for TLS 1.2");
  app.add_option("--ciphersuites", ciphersuites, "TLS 1.3 cipher suites");
  app.add_option("--tls-min", tls_min, "lowest TLS version: 1.2 or 1.3")->capture_default_str();
  app.add_option("--tls-max", tls_max, "highest TLS version: 1.2 or 1.3")->capture_default_str();
  app.add_flag("--no-ktls", no_ktls, "do not set SSL_OP_ENABLE_KTLS");
  app.add_option("--idle-timeout", idle_timeout, "seconds a connection may stay idle")
      ->capture_default_str();
  app.add_option("--max-connections", max_conns, "concurrent connections")->capture_default_str();
  app.add_flag("--access-log", access_log, "log every response to stderr");
  app.add_option("--stats-json", stats_json, "write the counters as JSON to FILE at exit");
  CLI11_PARSE(app, argc, argv);

  if (!gen_docroot.empty()) {
    ukhttpd::HostDocSink sink(gen_docroot);
    std::vector<std::string> sums;
    if (int err = ukhttpd::WriteDocroot(sink, ukhttpd::DefaultFiles(), &sums)) {
      std::fprintf(stderr, "ukhttpd: writing the docroot into %s: %s\n", gen_docroot.c_str(),
                   std::strerror(err));
      return 1;
    }
    auto files = ukhttpd::DefaultFiles();
    for (size_t i = 0; i < files.size(); ++i) {
      std::printf("%s  %s\n", sums[i].c_str(), files[i].name.c_str());
    }
    return 0;
  }

  ukhttpd::TlsConfig tc;
  tc.cert_file = cert;
  tc.key_file = key;
  tc.key_type = key_type;
  if (hostname.empty()) {
    char h[256] = {};
    if (::gethostname(h, sizeof(h) - 1) == 0 && h[0]) hostname = h; else hostname = "localhost";
  }
  tc.hostname = hostname;
  if (!ciphers.empty()) tc.ciphers = ciphers;
  tc.ciphersuites = ciphersuites;
  tc.min_version = ParseTlsVersion(tls_min);
  tc.max_version = ParseTlsVersion(tls_max);
  if (tc.min_version < 0 || tc.max_version < 0) {
    std::fprintf(stderr, "ukhttpd: --tls-min/--tls-max: expected 1.2 or 1.3\n");
    return 2;
  }
  tc.ktls = !no_ktls;
  tc.keylog_file = keylog;

  // Signals are taken by one thread with sigwait; every other thread
  // inherits this mask. SIGPIPE: a client that goes away must not kill us.
  ::signal(SIGPIPE, SIG_IGN);
  sigset_t sigs;
  sigemptyset(&sigs);
  sigaddset(&sigs, SIGINT);
  sigaddset(&sigs, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &sigs, nullptr);

  auto tls = ukhttpd::TlsContext::Create(tc);
  if (!tls.ok()) {
    std::fprintf(stderr, "ukhttpd: TLS: %s\n", std::string(tls.status().message()).c_str());
    return 1;
  }
  if (!cert_out.empty()) {
    std::ofstream(cert_out) << (*tls)->cert_pem();
  }

  std::string generated;
  if (docroot.empty()) {
    const char* tmp = std::getenv("TMPDIR");
    std::string tmpl = std::string(tmp && *tmp ? tmp : "/tmp") + "/ukhttpd-docroot.XXXXXX";
    if (::mkdtemp(tmpl.data()) == nullptr) {
      std::fprintf(stderr, "ukhttpd: mkdtemp %s: %s\n", tmpl.c_str(), std::strerror(errno));
      return 1;
    }
    generated = docroot = tmpl;
    ukhttpd::HostDocSink sink(docroot);
    if (int err = ukhttpd::WriteDocroot(sink, ukhttpd::DefaultFiles(), nullptr)) {
      std::fprintf(stderr, "ukhttpd: generating the docroot in %s: %s\n", docroot.c_str(),
                   std::strerror(err));
      RemoveGenerated(generated);
      return 1;
    }
  }
  std::unique_ptr<ukhttpd::HostDocroot> root;
  if (int err = ukhttpd::HostDocroot::Open(docroot, &root)) {
    std::fprintf(stderr, "ukhttpd: docroot %s: %s\n", docroot.c_str(), std::strerror(err));
    if (!generated.empty()) RemoveGenerated(generated);
    return 1;
  }

  std::unique_ptr<ukhttpd::HostListener> listener;
  std::string what;
  if (int err = ukhttpd::HostListener::Open(listen, idle_timeout, &listener, &what)) {
    std::fprintf(stderr, "ukhttpd: %s: %s\n", what.c_str(), std::strerror(err));
    if (!generated.empty()) RemoveGenerated(generated);
    return 1;
  }

  uk::Mutex log_mu;
  ukhttpd::HttpConfig hc;
  if (access_log) {
    hc.log = [&log_mu](const std::string& line) {
      uk::MutexLock l(&log_mu);
      std::fprintf(stderr, "ukhttpd: %s\n", line.c_str());
    };
  }
  ukhttpd::Counters counters;
  ukhttpd::Server server(hc, root.get(), tls->get(), &counters, max_conns);

  std::atomic<bool> stopping{false};
  std::thread sig_thread([&] {
    int sig = 0;
    sigwait(&sigs, &sig);
    if (!stopping.exchange(true)) {
      std::fprintf(stderr, "ukhttpd: %s, stopping\n", strsignal(sig));
    }
    server.stop();
  });

  std::printf("ukhttpd: listening on https://%s/ docroot %s%s\n",
              listener->local_address().c_str(), docroot.c_str(),
              generated.empty() ? "" : " (generated)");
  std::fflush(stdout);

  server.run(*listener);

  if (!stopping.exchange(true)) pthread_kill(sig_thread.native_handle(), SIGTERM);
  sig_thread.join();

  std::fputs(counters.to_text().c_str(), stderr);
  if (!stats_json.empty()) {
    std::ofstream(stats_json) << counters.to_json().dump(2) << "\n";
  }
  if (!generated.empty()) RemoveGenerated(generated);
  return 0;
}
