// Descriptor system calls that work on any file: read, write, pread, pwrite,
// close, fcntl and poll. Mirrors FreeBSD's sys/kern/sys_generic.c (dofileread,
// dofilewrite, kern_poll, pollscan) and kern_descrip.c (kern_fcntl,
// kern_close). Files supply fileops (kern_descrip.h); sockets make poll
// sleepers re-scan by calling ProcTable::sel.wakeup().
#include <fcntl.h>
#include <poll.h>

#include <cerrno>
#include <climits>
#include <vector>

#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "sys/kern/kern_descrip.h"
#include "sys/kern/kern_proc.h"
#include "sys/kern/syscalls.h"

namespace uk {

namespace {

// FreeBSD's IOSIZE_MAX (with devfs_iosize_max_clamp off).
constexpr size_t kIosizeMax = SSIZE_MAX;

// Errors that a call which moved some bytes reports as success (the byte
// count), as dofileread()/dofilewrite() do.
bool partial_ok(int error) {
  return error == EINTR || error == EWOULDBLOCK || error == ERESTART;
}

int dofileread(uk_proc* p, int fd, void* buf, size_t len, off_t off,
               int flags, ssize_t* n) {
  if (len > kIosizeMax) return EINVAL;
  RefPtr<file> fp;
  if (int e = p->fd.fget(fd, &fp)) return e;
  if (!(fp->f_flag.load() & FREAD)) return EBADF;
  if (flags & FOF_OFFSET) {
    if (fp->f_type != DTYPE_VNODE) return ESPIPE;
    if (off < 0) return EINVAL;
  }
  iovec iov;
  uio u = uio_single(&iov, buf, len, UIO_READ, off);
  int error = fp->fo_read(u, flags);
  ssize_t done = static_cast<ssize_t>(len) - u.uio_resid;
  if (error != 0 && done > 0 && partial_ok(error)) error = 0;
  *n = done;
  return error;
}

int dofilewrite(uk_proc* p, int fd, const void* buf, size_t len, off_t off,
                int flags, ssize_t* n) {
  if (len > kIosizeMax) return EINVAL;
  RefPtr<file> fp;
  if (int e = p->fd.fget(fd, &fp)) return e;
  if (!(fp->f_flag.load() & FWRITE)) return EBADF;
  if (flags & FOF_OFFSET) {
    if (fp->f_type != DTYPE_VNODE) return ESPIPE;
    if (off < 0) return EINVAL;
  }
  iovec iov;
  uio u = uio_single(&iov, const_cast<void*>(buf), len, UIO_WRITE, off);
  int error = fp->fo_write(u, flags);
  ssize_t done = static_cast<ssize_t>(len) - u.uio_resid;
  if (error != 0 && done > 0 && partial_ok(error)) error = 0;
  *n = done;
  return error;
}

}  // namespace

int sys_read(uk_proc* p, int fd, void* buf, size_t len, ssize_t* n) {
  return dofileread(p, fd, buf, len, 0, 0, n);
}

int sys_write(uk_proc* p, int fd, const void* buf, size_t len, ssize_t* n) {
  return dofilewrite(p, fd, buf, len, 0, 0, n);
}

int sys_pread(uk_proc* p, int fd, void* buf, size_t len, off_t off,
              ssize_t* n) {
  return dofileread(p, fd, buf, len, off, FOF_OFFSET, n);
}

int sys_pwrite(uk_proc* p, int fd, const void* buf, size_t len, off_t off,
               ssize_t* n) {
  return dofilewrite(p, fd, buf, len, off, FOF_OFFSET, n);
}

int sys_close(uk_proc* p, int fd) { return p->fd.fdclose(fd); }

int sys_fcntl(uk_proc* p, int fd, int cmd, long arg, int* ret) {
  RefPtr<file> fp;
  if (int e = p->fd.fget(fd, &fp)) return e;
  *ret = 0;
  switch (cmd) {
    case F_GETFD: {
      int flags = 0;
      if (int e = p->fd.getfdflags(fd, &flags)) return e;
      *ret = flags;
      return 0;
    }
    case F_SETFD:
      return p->fd.setfdflags(fd, static_cast<int>(arg) & FD_CLOEXEC);
    case F_GETFL:
      *ret = OFLAGS(fp->f_flag.load());
      return 0;
    case F_SETFL: {
      // FreeBSD's FCNTLFLAGS that uktls honours; the access mode and the
      // other open-time flags cannot change.
      constexpr int kSettable = O_APPEND | O_NONBLOCK;
      int old = fp->f_flag.load();
      while (!fp->f_flag.compare_exchange_weak(
          old, (old & ~kSettable) | (static_cast<int>(arg) & kSettable))) {
      }
      return 0;
    }
    default:
      return EINVAL;
  }
}

int sys_poll(uk_proc* p, pollfd* fds, nfds_t n, int timeout_ms, int* nready) {
  // kern_poll(): too many descriptors is EINVAL, a bad array EFAULT.
  if (n > static_cast<nfds_t>(filedesc::kMaxFiles)) return EINVAL;
  if (fds == nullptr && n > 0) return EFAULT;
  if (timeout_ms < -1) return EINVAL;  // only INFTIM (-1) may be negative
  absl::Time deadline = timeout_ms < 0
                            ? absl::InfiniteFuture()
                            : absl::Now() + absl::Milliseconds(timeout_ms);
  SelWait& sel = p->k->procs->sel;
  // The descriptors are looked up once per scan under one lock of the
  // table (a scan of 1,024 sockets took 1,024 lock round trips).
  std::vector<RefPtr<file>> fps(n);
  for (;;) {
    // Read the generation before scanning so a wakeup that lands between
    // the scan and the sleep is not lost.
    uint64_t gen = sel.generation();
    p->fd.fget_each(n, [fds](size_t i) { return fds[i].fd; }, fps.data());
    int ready = 0;
    for (nfds_t i = 0; i < n; i++) {
      pollfd& pfd = fds[i];
      pfd.revents = 0;
      if (pfd.fd < 0) continue;  // ignored, as POSIX says
      RefPtr<file>& fp = fps[i];
      if (!fp) {
        pfd.revents = POLLNVAL;
        ready++;
        continue;
      }
      // POLLERR/POLLHUP are reported whether asked for or not.
      int r = fp->fo_poll(pfd.events) &
              (pfd.events | POLLERR | POLLHUP | POLLNVAL);
      pfd.revents = static_cast<short>(r);
      if (r != 0) ready++;
    }
    // No reference is kept while asleep (and none is dropped under the
    // table's lock by the next lookup).
    for (RefPtr<file>& fp : fps) fp = nullptr;
    if (ready > 0 || timeout_ms == 0) {
      *nready = ready;
      return 0;
    }
    if (!sel.wait(gen, deadline)) {
      *nready = 0;
      return 0;
    }
  }
}

}  // namespace uk
