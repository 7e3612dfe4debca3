// The system-call boundary: the one place where a kernel errno becomes
// -1 + errno for the calling program.
#include "lib/libuk/uk.h"

#include <cerrno>
#include <memory>

#include "sys/kern/kern_proc.h"
#include "sys/kern/kernel.h"
#include "sys/kern/syscalls.h"

using uk::kernel;

// The C API's opaque kernel handle.
struct uk_kernel final {
  std::unique_ptr<kernel> k;
};

namespace {

int ret(int error) {
  if (error != 0) {
    errno = error;
    return -1;
  }
  return 0;
}

// |value| is taken by reference: callers pass the out-variable of the very
// system call in the same argument list, and argument evaluation order is
// unspecified, so it must be read here, after the call has run.
template <class T>
T ret(int error, const T& value) {
  if (error != 0) {
    errno = error;
    return -1;
  }
  return value;
}

bool bad_proc(uk_proc* p) {
  if (p == nullptr) {
    errno = EINVAL;
    return true;
  }
  return false;
}

}  // namespace

#define CHECK_PROC(p) \
  if (bad_proc(p)) return -1

extern "C" {

uk_kernel* uk_boot(const uk_boot_config* cfg) {
  uk::boot_params bp;
  if (cfg != nullptr) {
    if (cfg->hostname != nullptr) bp.hostname = cfg->hostname;
    bp.ncpus = cfg->ncpus;
    if (cfg->modules != nullptr) {
      bp.default_modules = false;
      bp.modules = cfg->modules;
    }
    if (cfg->tunables != nullptr) bp.tunables = cfg->tunables;
  }
  int error = 0;
  std::unique_ptr<kernel> k = kernel::boot(bp, &error);
  if (!k) {
    errno = error ? error : EIO;
    return nullptr;
  }
  return new uk_kernel{std::move(k)};
}

int uk_halt(uk_kernel* k) {
  if (k == nullptr) return ret(EINVAL);
  // Processes die first, closing their sockets and files, as at shutdown.
  std::set<uk_proc*> procs;
  {
    uk::MutexLock l(&k->k->procs->mu);
    procs.swap(k->k->procs->live);
  }
  for (uk_proc* p : procs) {
    p->fd.fdfree();
    delete p;
  }
  delete k;
  return 0;
}

uk_proc* uk_proc_create(uk_kernel* k, const char* comm) {
  if (k == nullptr) {
    errno = EINVAL;
    return nullptr;
  }
  auto* p = new uk_proc{k->k.get(), comm ? comm : "", 0, {}};
  p->pid = k->k->procs->next_pid.fetch_add(1);
  uk::MutexLock l(&k->k->procs->mu);
  k->k->procs->live.insert(p);
  return p;
}

void uk_proc_destroy(uk_proc* p) {
  if (p == nullptr) return;
  {
    uk::MutexLock l(&p->k->procs->mu);
    p->k->procs->live.erase(p);
  }
  p->fd.fdfree();
  delete p;
}

int uk_socket(uk_proc* p, int domain, int type, int protocol) {
  CHECK_PROC(p);
  int fd = -1;
  int e_ = uk::sys_socket(p, domain, type, protocol, &fd);
  return ret(e_, fd);
}

int uk_bind(uk_proc* p, int s, const sockaddr* a, socklen_t alen) {
  CHECK_PROC(p);
  return ret(uk::sys_bind(p, s, a, alen));
}

int uk_listen(uk_proc* p, int s, int backlog) {
  CHECK_PROC(p);
  return ret(uk::sys_listen(p, s, backlog));
}

int uk_accept(uk_proc* p, int s, sockaddr* a, socklen_t* alen) {
  CHECK_PROC(p);
  int fd = -1;
  int e_ = uk::sys_accept(p, s, a, alen, &fd);
  return ret(e_, fd);
}

int uk_connect(uk_proc* p, int s, const sockaddr* a, socklen_t alen) {
  CHECK_PROC(p);
  return ret(uk::sys_connect(p, s, a, alen));
}

int uk_getsockname(uk_proc* p, int s, sockaddr* a, socklen_t* alen) {
  CHECK_PROC(p);
  return ret(uk::sys_getsockname(p, s, a, alen));
}

int uk_getpeername(uk_proc* p, int s, sockaddr* a, socklen_t* alen) {
  CHECK_PROC(p);
  return ret(uk::sys_getpeername(p, s, a, alen));
}

int uk_setsockopt(uk_proc* p, int s, int level, int name, const void* v,
                  socklen_t len) {
  CHECK_PROC(p);
  return ret(uk::sys_setsockopt(p, s, level, name, v, len));
}

int uk_getsockopt(uk_proc* p, int s, int level, int name, void* v,
                  socklen_t* len) {
  CHECK_PROC(p);
  return ret(uk::sys_getsockopt(p, s, level, name, v, len));
}

ssize_t uk_sendmsg(uk_proc* p, int s, const msghdr* msg, int flags) {
  CHECK_PROC(p);
  ssize_t n = 0;
  int e_ = uk::sys_sendmsg(p, s, msg, flags, &n);
  return ret(e_, n);
}

ssize_t uk_sendto(uk_proc* p, int s, const void* buf, size_t len, int flags,
                  const sockaddr* to, socklen_t tolen) {
  CHECK_PROC(p);
  iovec iov{const_cast<void*>(buf), len};
  msghdr msg{};
  msg.msg_name = const_cast<sockaddr*>(to);
  msg.msg_namelen = to ? tolen : 0;
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  ssize_t n = 0;
  int e_ = uk::sys_sendmsg(p, s, &msg, flags, &n);
  return ret(e_, n);
}

ssize_t uk_send(uk_proc* p, int s, const void* buf, size_t len, int flags) {
  return uk_sendto(p, s, buf, len, flags, nullptr, 0);
}

ssize_t uk_recvmsg(uk_proc* p, int s, msghdr* msg, int flags) {
  CHECK_PROC(p);
  ssize_t n = 0;
  int e_ = uk::sys_recvmsg(p, s, msg, flags, &n);
  return ret(e_, n);
}

ssize_t uk_recv(uk_proc* p, int s, void* buf, size_t len, int flags) {
  CHECK_PROC(p);
  iovec iov{buf, len};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  ssize_t n = 0;
  int e_ = uk::sys_recvmsg(p, s, &msg, flags, &n);
  return ret(e_, n);
}

ssize_t uk_read(uk_proc* p, int fd, void* buf, size_t len) {
  CHECK_PROC(p);
  ssize_t n = 0;
  int e_ = uk::sys_read(p, fd, buf, len, &n);
  return ret(e_, n);
}

ssize_t uk_write(uk_proc* p, int fd, const void* buf, size_t len) {
  CHECK_PROC(p);
  ssize_t n = 0;
  int e_ = uk::sys_write(p, fd, buf, len, &n);
  return ret(e_, n);
}

int uk_shutdown(uk_proc* p, int s, int how) {
  CHECK_PROC(p);
  return ret(uk::sys_shutdown(p, s, how));
}

int uk_close(uk_proc* p, int fd) {
  CHECK_PROC(p);
  return ret(uk::sys_close(p, fd));
}

int uk_fcntl(uk_proc* p, int fd, int cmd, long arg) {
  CHECK_PROC(p);
  int r = 0;
  int e_ = uk::sys_fcntl(p, fd, cmd, arg, &r);
  return ret(e_, r);
}

int uk_poll(uk_proc* p, pollfd* fds, nfds_t n, int timeout_ms) {
  CHECK_PROC(p);
  int r = 0;
  int e_ = uk::sys_poll(p, fds, n, timeout_ms, &r);
  return ret(e_, r);
}

int uk_kqueue(uk_proc* p) {
  CHECK_PROC(p);
  int fd = -1;
  int e_ = uk::sys_kqueue(p, &fd);
  return ret(e_, fd);
}

int uk_kevent(uk_proc* p, int kq, const struct kevent* changelist,
              int nchanges, struct kevent* eventlist, int nevents,
              const struct timespec* timeout) {
  CHECK_PROC(p);
  int n = 0;
  int e_ = uk::sys_kevent(p, kq, changelist, nchanges, eventlist, nevents,
                          timeout, &n);
  return ret(e_, n);
}

int uk_open(uk_proc* p, const char* path, int flags, int mode) {
  CHECK_PROC(p);
  int fd = -1;
  int e_ = uk::sys_open(p, path, flags, mode, &fd);
  return ret(e_, fd);
}

ssize_t uk_pwrite(uk_proc* p, int fd, const void* buf, size_t len, off_t off) {
  CHECK_PROC(p);
  ssize_t n = 0;
  int e_ = uk::sys_pwrite(p, fd, buf, len, off, &n);
  return ret(e_, n);
}

ssize_t uk_pread(uk_proc* p, int fd, void* buf, size_t len, off_t off) {
  CHECK_PROC(p);
  ssize_t n = 0;
  int e_ = uk::sys_pread(p, fd, buf, len, off, &n);
  return ret(e_, n);
}

int uk_ftruncate(uk_proc* p, int fd, off_t len) {
  CHECK_PROC(p);
  return ret(uk::sys_ftruncate(p, fd, len));
}

int uk_sendfile(uk_proc* p, int fd, int s, off_t offset, size_t nbytes,
                uk_sf_hdtr* hdtr, off_t* sbytes, int flags) {
  CHECK_PROC(p);
  return ret(uk::sys_sendfile(p, fd, s, offset, nbytes, hdtr, sbytes, flags));
}

int uk_sysctlbyname(uk_proc* p, const char* name, void* oldp, size_t* oldlenp,
                    const void* newp, size_t newlen) {
  CHECK_PROC(p);
  return ret(uk::sys_sysctlbyname(p, name, oldp, oldlenp, newp, newlen));
}

int uk_kldload(uk_proc* p, const char* module) {
  CHECK_PROC(p);
  int id = -1;
  int e_ = uk::sys_kldload(p, module, &id);
  return ret(e_, id);
}

int uk_kldunload(uk_proc* p, int fileid) {
  CHECK_PROC(p);
  return ret(uk::sys_kldunload(p, fileid));
}

int uk_kldfind(uk_proc* p, const char* module) {
  CHECK_PROC(p);
  int id = -1;
  int e_ = uk::sys_kldfind(p, module, &id);
  return ret(e_, id);
}

int uk_ifconfig(uk_kernel* k, const char* ifname, const char* args) {
  if (k == nullptr || ifname == nullptr) return ret(EINVAL);
  return ret(uk::if_ifconfig(*k->k, ifname, args ? args : ""));
}

int uk_wire(uk_kernel* a, const char* ifa, uk_kernel* b, const char* ifb,
            const char* params) {
  if (a == nullptr || b == nullptr || ifa == nullptr || ifb == nullptr)
    return ret(EINVAL);
  return ret(uk::if_wire(*a->k, ifa, *b->k, ifb, params ? params : ""));
}

}  // extern "C"
