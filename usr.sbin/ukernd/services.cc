#include "usr.sbin/ukernd/services.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <vector>

#include "lib/libuk/uk.h"
#include "usr.sbin/ukhttpd/docroot_gen.h"
#include "usr.sbin/ukhttpd/docroot_host.h"
#include "usr.sbin/ukhttpd/host_transport.h"

namespace ukernd {

std::string kernel_inet(const LabKernel& k) {
  for (const NicSpec& n : k.spec->nics) {
    if (n.inet.empty()) continue;
    return n.inet.substr(0, n.inet.find('/'));
  }
  return "";
}

// ---- HttpsService ----

std::unique_ptr<HttpsService> HttpsService::start(LabKernel& k, const HttpsOptions& o, FILE* log,
                                                  std::string* err) {
  std::unique_ptr<HttpsService> s(new HttpsService(k, o));
  s->p_ = uk_proc_create(k.k, "ukhttpd");
  if (s->p_ == nullptr) {
    *err = "ukhttpd: cannot create a process in '" + k.spec->name + "': " + strerror(errno);
    return nullptr;
  }
  s->manifest_ = std::make_shared<ukhttpd::UkTmpfsManifest>();
  {
    ukhttpd::UkTmpfsDocSink sink(s->p_, "/www", s->manifest_);
    if (o.docroot_dir.empty()) {
      if (int e = ukhttpd::WriteDocroot(sink, ukhttpd::DefaultFiles(), nullptr)) {
        *err = "ukhttpd: generating the docroot in " + k.spec->name + ":/www: " + strerror(e);
        return nullptr;
      }
      s->generated_ = true;
    } else {
      std::string what;
      if (int e = ukhttpd::ImportTree(o.docroot_dir, sink, &what)) {
        *err = "ukhttpd: --docroot " + o.docroot_dir + ": " + what + ": " + strerror(e);
        return nullptr;
      }
    }
  }
  s->docroot_ = std::make_unique<ukhttpd::UkTmpfsDocroot>(s->p_, "/www", s->manifest_);

  ukhttpd::TlsConfig tc;
  tc.hostname = k.spec->hostname.empty() ? k.spec->name : k.spec->hostname;
  tc.keylog_file = o.keylog;
  auto tls = ukhttpd::TlsContext::Create(tc);
  if (!tls.ok()) {
    *err = "ukhttpd: TLS: " + std::string(tls.status().message());
    return nullptr;
  }
  s->tls_ = std::move(*tls);

  std::string what;
  if (int e = ukhttpd::UkListener::Open(s->p_, o.listen, o.idle_timeout_s, 0, &s->listener_,
                                        &what)) {
    *err = "ukhttpd: " + what + ": " + strerror(e);
    return nullptr;
  }
  std::string inet = kernel_inet(k);
  s->address_ = (inet.empty() ? "127.0.0.1" : inet) + ":" + std::to_string(s->listener_->port());
  if (o.access_log) {
    HttpsService* raw = s.get();
    s->http_.log = [raw, log](const std::string& line) {
      uk::MutexLock l(&raw->log_mu_);
      fprintf(log, "ukhttpd: %s\n", line.c_str());
    };
  }
  s->server_ = std::make_unique<ukhttpd::Server>(s->http_, s->docroot_.get(), s->tls_.get(),
                                                 &s->counters_, 256);
  HttpsService* raw = s.get();
  s->thread_ = std::thread([raw] {
    // Connection threads inherit the name, so their CPU time is visible
    // per thread as "ukhttpd".
    pthread_setname_np(pthread_self(), "ukhttpd");
    raw->accept_tid_.store(gettid());
    raw->server_->run(*raw->listener_);
  });
  fprintf(log, "ukernd: ukhttpd: serving https://%s/ in '%s' (docroot %s)\n",
          s->address_.c_str(), k.spec->name.c_str(),
          o.docroot_dir.empty() ? "generated: index.html 1k.bin 1m.bin 64m.bin"
                                : o.docroot_dir.c_str());
  return s;
}

void HttpsService::stop() {
  if (server_) server_->stop();
  if (listener_) listener_->close();
  if (thread_.joinable()) thread_.join();
}

HttpsService::~HttpsService() {
  stop();
  server_.reset();
  listener_.reset();
  docroot_.reset();
  if (p_ != nullptr && k_.k != nullptr) uk_proc_destroy(p_);
}

// ---- Bridge ----

std::unique_ptr<Bridge> Bridge::start(LabKernel& via, const std::string& listen,
                                      const std::string& target, FILE* log, std::string* err) {
  std::unique_ptr<Bridge> b(new Bridge(via, log));
  b->target_ = target;
  struct sockaddr_storage ss;
  socklen_t len;
  if (!ukhttpd::ParseHostPort(listen, &ss, &len)) {
    *err = "bridge: " + listen + ": want ADDR:PORT";
    return nullptr;
  }
  b->listen_fd_ = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (b->listen_fd_ < 0) {
    *err = std::string("bridge: socket: ") + strerror(errno);
    return nullptr;
  }
  int one = 1;
  setsockopt(b->listen_fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  if (bind(b->listen_fd_, reinterpret_cast<sockaddr*>(&ss), len) != 0 ||
      ::listen(b->listen_fd_, 128) != 0) {
    *err = "bridge: " + listen + ": " + strerror(errno);
    return nullptr;
  }
  if (pipe2(b->stop_pipe_, O_CLOEXEC) != 0) {
    *err = std::string("bridge: pipe: ") + strerror(errno);
    return nullptr;
  }
  len = sizeof(ss);
  getsockname(b->listen_fd_, reinterpret_cast<sockaddr*>(&ss), &len);
  char host[INET6_ADDRSTRLEN] = "?";
  int port = 0;
  if (ss.ss_family == AF_INET) {
    auto* in = reinterpret_cast<sockaddr_in*>(&ss);
    inet_ntop(AF_INET, &in->sin_addr, host, sizeof(host));
    port = ntohs(in->sin_port);
    b->local_ = std::string(host) + ":" + std::to_string(port);
  } else {
    auto* in6 = reinterpret_cast<sockaddr_in6*>(&ss);
    inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof(host));
    port = ntohs(in6->sin6_port);
    b->local_ = "[" + std::string(host) + "]:" + std::to_string(port);
  }
  b->p_ = uk_proc_create(via.k, "bridge");
  if (b->p_ == nullptr) {
    *err = "bridge: cannot create a process in '" + via.spec->name + "': " + strerror(errno);
    return nullptr;
  }
  Bridge* raw = b.get();
  b->accept_thread_ = std::thread([raw] {
    pthread_setname_np(pthread_self(), "bridge");
    raw->accept_loop();
  });
  fprintf(log, "ukernd: bridge: https://%s/ -> %s through '%s'\n", b->local_.c_str(),
          target.c_str(), via.spec->name.c_str());
  return b;
}

void Bridge::reap_locked(std::list<std::unique_ptr<Conn>>* out) {
  for (auto it = conns_.begin(); it != conns_.end();) {
    if ((*it)->done.load()) {
      out->splice(out->end(), conns_, it++);
    } else {
      ++it;
    }
  }
}

void Bridge::accept_loop() {
  while (true) {
    pollfd pfd[2] = {{listen_fd_, POLLIN, 0}, {stop_pipe_[0], POLLIN, 0}};
    int n = poll(pfd, 2, -1);
    if (n < 0) {
      if (errno == EINTR) continue;
      break;
    }
    if (pfd[1].revents) break;
    if (!(pfd[0].revents & POLLIN)) continue;
    int fd = accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EMFILE || errno == ENFILE) usleep(10000);
      continue;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    accepted_.fetch_add(1);
    std::list<std::unique_ptr<Conn>> finished;
    {
      uk::MutexLock l(&mu_);
      reap_locked(&finished);
      if (stopping_) {
        close(fd);
        break;
      }
      auto c = std::make_unique<Conn>();
      c->host_fd = fd;
      Conn* raw = c.get();
      conns_.push_back(std::move(c));
      raw->thread = std::thread([this, raw] { relay(raw); });
    }
    for (auto& c : finished) c->thread.join();
  }
}

namespace {

bool write_all_host(int fd, const char* p, size_t n) {
  while (n > 0) {
    ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return false;
    p += w;
    n -= static_cast<size_t>(w);
  }
  return true;
}

bool write_all_uk(uk_proc* p, int s, const char* b, size_t n) {
  while (n > 0) {
    ssize_t w = uk_send(p, s, b, n, MSG_NOSIGNAL);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return false;
    b += w;
    n -= static_cast<size_t>(w);
  }
  return true;
}

}  // namespace

void Bridge::relay(Conn* c) {
  int s = uk_socket(p_, AF_INET, SOCK_STREAM, 0);
  struct sockaddr_storage ss;
  socklen_t len;
  bool ok = s >= 0 && ukhttpd::ParseHostPort(target_, &ss, &len);
  if (ok) {
    {
      uk::MutexLock l(&mu_);
      c->uk_fd = s;
      if (stopping_) ok = false;
    }
    if (ok && uk_connect(p_, s, reinterpret_cast<sockaddr*>(&ss), len) != 0) {
      fprintf(log_, "ukernd: bridge: connect %s: %s\n", target_.c_str(), strerror(errno));
      ok = false;
    }
  }
  if (ok) {
    int one = 1;
    uk_setsockopt(p_, s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    // Lab -> host on a second thread; host -> lab here. A FIN is relayed as
    // a FIN; a failure on either side shuts both sockets down, which wakes
    // the other direction.
    std::thread down([this, c, s] {
      std::vector<char> buf(64 * 1024);
      bool clean = false;
      while (true) {
        ssize_t n = uk_recv(p_, s, buf.data(), buf.size(), 0);
        if (n < 0 && errno == EINTR) continue;
        if (n == 0) clean = true;
        if (n <= 0) break;
        if (!write_all_host(c->host_fd, buf.data(), static_cast<size_t>(n))) break;
        down_bytes_.fetch_add(static_cast<uint64_t>(n), std::memory_order_relaxed);
      }
      if (clean) {
        shutdown(c->host_fd, SHUT_WR);
      } else {
        shutdown(c->host_fd, SHUT_RDWR);
        uk_shutdown(p_, s, SHUT_RDWR);
      }
    });
    std::vector<char> buf(64 * 1024);
    bool clean = false;
    while (true) {
      ssize_t n = recv(c->host_fd, buf.data(), buf.size(), 0);
      if (n < 0 && errno == EINTR) continue;
      if (n == 0) clean = true;
      if (n <= 0) break;
      if (!write_all_uk(p_, s, buf.data(), static_cast<size_t>(n))) break;
      up_bytes_.fetch_add(static_cast<uint64_t>(n), std::memory_order_relaxed);
    }
    if (clean) {
      uk_shutdown(p_, s, SHUT_WR);
    } else {
      uk_shutdown(p_, s, SHUT_RDWR);
      shutdown(c->host_fd, SHUT_RDWR);
    }
    down.join();
  }
  uk::MutexLock l(&mu_);
  if (s >= 0) uk_close(p_, s);
  close(c->host_fd);
  c->uk_fd = -1;
  c->host_fd = -1;
  c->done.store(true);
}

void Bridge::stop() {
  {
    uk::MutexLock l(&mu_);
    if (stopping_) return;
    stopping_ = true;
  }
  if (stop_pipe_[1] >= 0) (void)!write(stop_pipe_[1], "x", 1);
  if (accept_thread_.joinable()) accept_thread_.join();
  std::list<std::unique_ptr<Conn>> all;
  {
    uk::MutexLock l(&mu_);
    for (auto& c : conns_) {
      if (c->host_fd >= 0) shutdown(c->host_fd, SHUT_RDWR);
      if (c->uk_fd >= 0) uk_shutdown(p_, c->uk_fd, SHUT_RDWR);
    }
    all.swap(conns_);
  }
  for (auto& c : all) c->thread.join();
}

Bridge::~Bridge() {
  stop();
  if (listen_fd_ >= 0) close(listen_fd_);
  for (int fd : stop_pipe_)
    if (fd >= 0) close(fd);
  if (p_ != nullptr && via_.k != nullptr) uk_proc_destroy(p_);
}

}  // namespace ukernd
