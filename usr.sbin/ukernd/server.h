// The control socket server: accepts connections on a unix socket and
// serves each on its own thread, so a slow or silent client never delays
// another. Requests that change state are refused to peers whose uid is
// neither ukernd's nor root's (SO_PEERCRED).
//
// Locking: mu_ guards the client list. Client threads never take it while
// running a request; stop() shuts their sockets down (waking any blocked
// read or write) and joins them.
#ifndef UKTLS_USR_SBIN_UKERND_SERVER_H_
#define UKTLS_USR_SBIN_UKERND_SERVER_H_

#include <sys/types.h>

#include <atomic>
#include <list>
#include <memory>
#include <string>
#include <thread>

#include "sys/sys/lock.h"
#include "usr.sbin/ukernd/lab_host.h"
#include "usr.sbin/ukernd/ops.h"

namespace ukernd {

inline constexpr int kMaxClients = 64;

class ControlServer final {
 public:
  // Binds |path| (mode 0600). If a live daemon answers there, fails with
  // EADDRINUSE; a stale socket file is removed first (reported on |log|).
  // A path that exists and is not a socket is never touched (EEXIST).
  static std::unique_ptr<ControlServer> listen(Lab& lab, const std::string& path,
                                               FILE* log, int* error);
  ~ControlServer();  // stop(), close, and unlink the socket if still ours

  // Accepts and serves clients until |stop_fd| becomes readable (a
  // signalfd); returns then without reading it.
  void serve(int stop_fd) ABSL_LOCKS_EXCLUDED(mu_);
  // Disconnects every client and joins their threads. Idempotent.
  void stop() ABSL_LOCKS_EXCLUDED(mu_);

  const std::string& path() const { return path_; }

 private:
  struct Client {
    int fd;
    uid_t uid;
    pid_t pid;
    std::thread thread;
    std::atomic<bool> done{false};
  };

  ControlServer(Lab& lab, int fd, std::string path, FILE* log)
      : lab_(lab), fd_(fd), path_(std::move(path)), log_(log) {}
  void client_loop(Client* c);
  void reap_locked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  Lab& lab_;
  int fd_;
  std::string path_;
  FILE* log_;
  dev_t dev_ = 0;  // the socket file we created, to unlink only ours
  ino_t ino_ = 0;

  uk::Mutex mu_;
  std::list<std::unique_ptr<Client>> clients_ ABSL_GUARDED_BY(mu_);
};

// Handles one request line from a peer with uid |peer_uid|: parse, check
// permission, run. Returns the reply JSON. Exposed for tests and fuzzing.
json handle_line(Lab& lab, std::string_view line, uid_t peer_uid,
                 const EmitFn& emit);

}  // namespace ukernd

#endif  // UKTLS_USR_SBIN_UKERND_SERVER_H_
