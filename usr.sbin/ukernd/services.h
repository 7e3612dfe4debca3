// The services of a lab (issue [I]): ukhttpd, the HTTPS file server, as a
// process of one kernel, and the host bridge, a host TCP listener whose
// connections are carried into the lab through another kernel.
//
// HttpsService: a uk_proc "ukhttpd" in the serving kernel, its docroot in
// that kernel's tmpfs under /www (the generated default docroot, or a host
// directory imported in 1 MiB chunks), an OpenSSL 3 server context with
// SSL_OP_ENABLE_KTLS, and ukhttpd::Server on a UkListener (0.0.0.0:443).
//
// Bridge: for each host connection, a uk socket in the relaying kernel
// connects to the service (10.0.0.1:443 over the lab's wire) and two threads
// copy bytes each way. A FIN is passed on as a FIN (shutdown(SHUT_WR)); an
// error on either side shuts both down, so closing either side closes the
// other.
#ifndef UKTLS_USR_SBIN_UKERND_SERVICES_H_
#define UKTLS_USR_SBIN_UKERND_SERVICES_H_

#include <atomic>
#include <cstdio>
#include <list>
#include <memory>
#include <string>
#include <thread>

#include "sys/sys/lock.h"
#include "usr.sbin/ukernd/lab_host.h"
#include "usr.sbin/ukhttpd/counters.h"
#include "usr.sbin/ukhttpd/docroot_uk.h"
#include "usr.sbin/ukhttpd/httpd.h"
#include "usr.sbin/ukhttpd/tls.h"
#include "usr.sbin/ukhttpd/uk_transport.h"

namespace ukernd {

struct HttpsOptions {
  std::string docroot_dir;  // host directory to import; "" = generated
  std::string keylog;       // NSS key log file; "" = none
  std::string listen = "0.0.0.0:443";
  int idle_timeout_s = 30;
  bool access_log = false;
};

class HttpsService final {
 public:
  // Builds the docroot and starts serving in kernel |k|. Null with a
  // message on failure.
  static std::unique_ptr<HttpsService> start(LabKernel& k, const HttpsOptions& o, FILE* log,
                                             std::string* err);
  ~HttpsService();  // stop()
  // Stops accepting, shuts every connection down and joins. Idempotent.
  void stop();

  uk_proc* proc() const { return p_; }
  LabKernel& kernel() const { return k_; }
  ukhttpd::Docroot& docroot() { return *docroot_; }
  // True when /www holds the generated default docroot (1k.bin, 1m.bin,
  // 64m.bin, index.html).
  bool generated() const { return generated_; }
  const HttpsOptions& options() const { return opts_; }
  ukhttpd::Counters& counters() { return counters_; }
  const ukhttpd::HttpConfig& http_config() const { return http_; }
  // "10.0.0.1:443": where the bridge connects.
  const std::string& address() const { return address_; }
  // The host thread id of the accept loop (named "ukhttpd"; its connection
  // threads, and the KTLS workers the kernel starts from one of them,
  // inherit the name).
  pid_t accept_tid() const { return accept_tid_.load(); }

 private:
  HttpsService(LabKernel& k, const HttpsOptions& o) : k_(k), opts_(o) {}

  LabKernel& k_;
  const HttpsOptions opts_;
  uk_proc* p_ = nullptr;
  bool generated_ = false;
  std::string address_;
  std::shared_ptr<ukhttpd::UkTmpfsManifest> manifest_;
  std::unique_ptr<ukhttpd::UkTmpfsDocroot> docroot_;
  std::unique_ptr<ukhttpd::TlsContext> tls_;
  ukhttpd::HttpConfig http_;
  ukhttpd::Counters counters_;
  std::unique_ptr<ukhttpd::UkListener> listener_;
  std::unique_ptr<ukhttpd::Server> server_;
  std::thread thread_;
  std::atomic<pid_t> accept_tid_{0};
  uk::Mutex log_mu_;
};

class Bridge final {
 public:
  // Listens on host address |listen| ("127.0.0.1:8443"; port 0 picks one)
  // and relays each connection through kernel |via| to |target|
  // ("10.0.0.1:443"). Null with a message on failure.
  static std::unique_ptr<Bridge> start(LabKernel& via, const std::string& listen,
                                       const std::string& target, FILE* log, std::string* err);
  ~Bridge();  // stop()
  // Closes the listener and every relayed connection; joins. Idempotent.
  void stop() ABSL_LOCKS_EXCLUDED(mu_);

  // "127.0.0.1:8443" as bound.
  const std::string& local_address() const { return local_; }
  uint64_t connections() const { return accepted_.load(); }
  uint64_t bytes_up() const { return up_bytes_.load(); }
  uint64_t bytes_down() const { return down_bytes_.load(); }

 private:
  struct Conn {
    int host_fd = -1;
    int uk_fd = -1;
    std::thread thread;
    std::atomic<bool> done{false};
  };
  Bridge(LabKernel& via, FILE* log) : via_(via), log_(log) {}
  void accept_loop() ABSL_LOCKS_EXCLUDED(mu_);
  void relay(Conn* c);
  void reap_locked(std::list<std::unique_ptr<Conn>>* out) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  LabKernel& via_;
  FILE* log_;
  uk_proc* p_ = nullptr;
  int listen_fd_ = -1;
  int stop_pipe_[2] = {-1, -1};
  std::string local_;
  std::string target_;
  std::thread accept_thread_;
  std::atomic<uint64_t> accepted_{0}, up_bytes_{0}, down_bytes_{0};

  uk::Mutex mu_;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::list<std::unique_ptr<Conn>> conns_ ABSL_GUARDED_BY(mu_);
};

// The first IPv4 address of a kernel's NICs ("10.0.0.1"), or "".
std::string kernel_inet(const LabKernel& k);

}  // namespace ukernd

#endif  // UKTLS_USR_SBIN_UKERND_SERVICES_H_
