#include "usr.sbin/ukernd/server.h"

#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "usr.sbin/ukernd/ctlsock.h"
#include "usr.sbin/ukernd/protocol.h"

namespace ukernd {

namespace {

// A client that stops reading its replies is dropped after this long rather
// than holding its thread forever.
constexpr int kSendTimeoutSeconds = 10;

bool send_all(int fd, const std::string& s) {
  size_t off = 0;
  while (off < s.size()) {
    ssize_t n = send(fd, s.data() + off, s.size() - off, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    off += n;
  }
  return true;
}

bool send_json(int fd, const json& j) { return send_all(fd, to_line(j) + "\n"); }

}  // namespace

json handle_line(Lab& lab, std::string_view line, uid_t peer_uid,
                 const EmitFn& emit) {
  Request req;
  RequestError err;
  if (!parse_request(line, &req, &err)) return make_error(err.id, err.error, err.message);
  bool read_only_ifconfig = req.op == Op::kIfconfig && req.args.empty();
  if (op_changes_state(req.op) && !read_only_ifconfig && peer_uid != 0 &&
      peer_uid != geteuid()) {
    return make_error(req.id, EPERM,
                      std::string(op_name(req.op)) +
                          ": permission denied: changes kernel state; only uid " +
                          std::to_string(geteuid()) + " or root may");
  }
  return run_request(lab, req, emit);
}

std::unique_ptr<ControlServer> ControlServer::listen(Lab& lab, const std::string& path,
                                                     FILE* log, int* error) {
  struct stat st;
  if (lstat(path.c_str(), &st) == 0) {
    if (!S_ISSOCK(st.st_mode)) {
      *error = EEXIST;
      return nullptr;
    }
    int s = unix_connect(path);
    if (s >= 0) {
      close(s);
      *error = EADDRINUSE;
      return nullptr;
    }
    if (errno != ECONNREFUSED && errno != ENOENT) {
      *error = errno;
      return nullptr;
    }
    if (errno == ECONNREFUSED) {
      // Nobody listens: a daemon died without cleaning up.
      if (unlink(path.c_str()) != 0 && errno != ENOENT) {
        *error = errno;
        return nullptr;
      }
      fprintf(log, "ukernd: removed stale socket %s\n", path.c_str());
    }
  }
  int fd = unix_bind_listen(path, 64);
  if (fd < 0) {
    *error = errno;
    return nullptr;
  }
  std::unique_ptr<ControlServer> srv(new ControlServer(lab, fd, path, log));
  if (stat(path.c_str(), &st) == 0) {
    srv->dev_ = st.st_dev;
    srv->ino_ = st.st_ino;
  }
  *error = 0;
  return srv;
}

ControlServer::~ControlServer() {
  stop();
  struct stat st;
  // Unlink only the file we bound: a newer daemon may own the path now.
  if (stat(path_.c_str(), &st) == 0 && st.st_dev == dev_ && st.st_ino == ino_)
    unlink(path_.c_str());
  close(fd_);
}

void ControlServer::reap_locked() {
  for (auto it = clients_.begin(); it != clients_.end();) {
    if ((*it)->done.load()) {
      (*it)->thread.join();
      close((*it)->fd);
      it = clients_.erase(it);
    } else {
      ++it;
    }
  }
}

void ControlServer::serve(int stop_fd) {
  pollfd pfd[2] = {{fd_, POLLIN, 0}, {stop_fd, POLLIN, 0}};
  while (true) {
    // Wake now and then to join finished client threads.
    int n = poll(pfd, 2, 1000);
    if (n < 0) {
      if (errno == EINTR) continue;
      fprintf(log_, "ukernd: poll: %s\n", strerror(errno));
      return;
    }
    if (pfd[1].revents != 0) return;
    uk::MutexLock l(&mu_);
    reap_locked();
    if (!(pfd[0].revents & POLLIN)) continue;
    int c = accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (c < 0) continue;
    ucred cred{};
    socklen_t len = sizeof(cred);
    if (getsockopt(c, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) {
      close(c);
      continue;
    }
    if (clients_.size() >= kMaxClients) {
      send_json(c, make_error(nullptr, EMFILE,
                              "too many clients (" + std::to_string(kMaxClients) +
                                  "); try again later"));
      close(c);
      continue;
    }
    timeval tv{kSendTimeoutSeconds, 0};
    setsockopt(c, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    auto cl = std::make_unique<Client>();
    cl->fd = c;
    cl->uid = cred.uid;
    cl->pid = cred.pid;
    Client* raw = cl.get();
    clients_.push_back(std::move(cl));
    raw->thread = std::thread([this, raw] { client_loop(raw); });
  }
}

void ControlServer::stop() {
  uk::MutexLock l(&mu_);
  for (auto& c : clients_) shutdown(c->fd, SHUT_RDWR);
  for (auto& c : clients_) {
    if (c->thread.joinable()) c->thread.join();
    close(c->fd);
  }
  clients_.clear();
}

void ControlServer::client_loop(Client* c) {
  std::string buf;
  char chunk[4096];
  EmitFn emit = [c](const json& ev) { return send_json(c->fd, ev); };
  bool open = true;
  while (open) {
    ssize_t n = recv(c->fd, chunk, sizeof(chunk), 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    buf.append(chunk, n);
    size_t start = 0;
    for (size_t nl; open && (nl = buf.find('\n', start)) != std::string::npos;
         start = nl + 1) {
      std::string_view line(buf.data() + start, nl - start);
      if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
      if (line.find_first_not_of(" \t") == std::string_view::npos) continue;
      open = send_json(c->fd, handle_line(lab_, line, c->uid, emit));
    }
    buf.erase(0, start);
    if (buf.size() > kMaxRequestBytes) {
      // No newline within the limit: answer once and hang up, since the
      // rest of this line cannot be told apart from the next request.
      send_json(c->fd, make_error(nullptr, E2BIG,
                                  "request longer than " +
                                      std::to_string(kMaxRequestBytes) + " bytes"));
      break;
    }
  }
  shutdown(c->fd, SHUT_RDWR);
  c->done.store(true);
}

}  // namespace ukernd
