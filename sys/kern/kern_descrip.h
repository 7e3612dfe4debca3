// Files and file descriptors: struct file (an open object with fileops, as
// FreeBSD's sys/sys/file.h) and the per-process descriptor table (filedesc,
// FreeBSD's sys/kern/kern_descrip.c). Sockets and tmpfs vnodes are files.
//
// Locking: filedesc::mu_ guards the table only; a file's operations run
// without it, holding a reference taken by fget().
#ifndef UKTLS_SYS_KERN_KERN_DESCRIP_H_
#define UKTLS_SYS_KERN_KERN_DESCRIP_H_

#include <atomic>
#include <cstdint>
#include <vector>

#include "absl/time/time.h"
#include "sys/sys/lock.h"
#include "sys/sys/refcount.h"
#include "sys/sys/uio.h"

namespace uk {

struct kernel;

enum file_type { DTYPE_NONE = 0, DTYPE_VNODE = 1, DTYPE_SOCKET = 2 };

// f_flag bits (FreeBSD's FREAD/FWRITE; FNONBLOCK == O_NONBLOCK).
enum : int { FREAD = 0x0001, FWRITE = 0x0002 };

struct file : RefCounted<file> {
  explicit file(file_type t) : f_type(t) {}
  virtual ~file() = default;

  // fileops. Each returns 0 or an errno; reads and writes advance |u| and
  // report partial progress through u.uio_resid.
  virtual int fo_read(uio& u, int flags);
  virtual int fo_write(uio& u, int flags);
  // Returns the subset of |events| (POLLIN, POLLOUT, ...) that is ready now.
  virtual int fo_poll(int events);
  virtual int fo_truncate(off_t length);
  // Runs once, when the last descriptor referring to the file is closed.
  virtual int fo_close();

  const file_type f_type;
  std::atomic<int> f_flag{FREAD | FWRITE};
  std::atomic<off_t> f_offset{0};
};

// A kernel-wide wait point for poll(2): anything that may make a descriptor
// ready calls selwakeup(); pollers sleep until the generation moves.
// (FreeBSD's selinfo lists, collapsed to one per kernel.)
class SelWait final {
 public:
  uint64_t generation() ABSL_LOCKS_EXCLUDED(mu_);
  void wakeup() ABSL_LOCKS_EXCLUDED(mu_);
  // Sleeps until the generation differs from |seen| or |deadline| passes.
  // Returns false on timeout.
  bool wait(uint64_t seen, absl::Time deadline) ABSL_LOCKS_EXCLUDED(mu_);

 private:
  Mutex mu_;
  CondVar cv_;
  uint64_t gen_ ABSL_GUARDED_BY(mu_) = 0;
};

class filedesc final {
 public:
  static constexpr int kMaxFiles = 65536;  // kern.maxfilesperproc

  filedesc() = default;
  ~filedesc();

  // Installs f at the lowest free descriptor. EMFILE when full.
  int falloc(RefPtr<file> f, int* fd) ABSL_LOCKS_EXCLUDED(mu_);
  // Takes a reference on the file behind fd. EBADF if none.
  int fget(int fd, RefPtr<file>* out) ABSL_LOCKS_EXCLUDED(mu_);
  // Removes fd; the file's fo_close runs when its last reference goes.
  int fdclose(int fd) ABSL_LOCKS_EXCLUDED(mu_);
  // Closes every descriptor.
  void fdfree() ABSL_LOCKS_EXCLUDED(mu_);

 private:
  Mutex mu_;
  std::vector<RefPtr<file>> files_ ABSL_GUARDED_BY(mu_);
};

}  // namespace uk

#endif  // UKTLS_SYS_KERN_KERN_DESCRIP_H_
