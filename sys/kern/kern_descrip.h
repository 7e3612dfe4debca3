// Files and file descriptors: struct file (an open object with fileops, as
// FreeBSD's sys/sys/file.h) and the per-process descriptor table (filedesc,
// FreeBSD's sys/kern/kern_descrip.c). Sockets and tmpfs vnodes are files.
//
// Locking: filedesc::mu_ guards the table only; a file's operations run
// without it, holding a reference taken by fget().
#ifndef UKTLS_SYS_KERN_KERN_DESCRIP_H_
#define UKTLS_SYS_KERN_KERN_DESCRIP_H_

#include <sys/stat.h>

#include <atomic>
#include <cstdint>
#include <vector>

#include "absl/functional/function_ref.h"
#include "absl/time/time.h"
#include "sys/sys/lock.h"
#include "sys/sys/refcount.h"
#include "sys/sys/uio.h"

namespace uk {

struct kernel;
struct vnode;  // sys/kern/tmpfs.h
struct kqueue;  // sys/kern/kern_event.h

enum file_type {
  DTYPE_NONE = 0,
  DTYPE_VNODE = 1,
  DTYPE_SOCKET = 2,
  DTYPE_KQUEUE = 5,
};

// f_flag bits (FreeBSD's FREAD/FWRITE; FNONBLOCK == O_NONBLOCK).
enum : int { FREAD = 0x0001, FWRITE = 0x0002 };

// open(2) flags to f_flag and back, as FreeBSD's FFLAGS()/OFLAGS(): the access
// mode O_RDONLY/O_WRONLY/O_RDWR (0/1/2) becomes FREAD/FWRITE/both (1/2/3);
// the other bits (O_NONBLOCK, O_APPEND, ...) are the host's O_* bits.
constexpr int FFLAGS(int oflags) { return oflags + 1; }
constexpr int OFLAGS(int fflags) { return fflags - 1; }

// fo_read/fo_write flags: FOF_OFFSET means use uio_offset (pread/pwrite)
// instead of the file's own offset, as FreeBSD's.
enum : int { FOF_OFFSET = 0x0001 };

struct file : RefCounted<file> {
  explicit file(file_type t) : f_type(t) {}
  virtual ~file() = default;

  // fileops. Each returns 0 or an errno; reads and writes advance |u| and
  // report partial progress through u.uio_resid. Without FOF_OFFSET in
  // |flags| a seekable file reads and writes at f_offset and advances it.
  virtual int fo_read(uio& u, int flags);
  virtual int fo_write(uio& u, int flags);
  // Returns the subset of |events| (POLLIN, POLLOUT, ...) that is ready now.
  virtual int fo_poll(int events);
  virtual int fo_truncate(off_t length);
  // fstat(2): fills *sb (st_mode's file type, st_size, ...). The default
  // reports an empty object of the file's type.
  virtual int fo_stat(struct stat* sb);
  // The regular file behind a DTYPE_VNODE file (for sendfile), else null.
  virtual vnode* fo_vnode() { return nullptr; }
  // Runs once, when the last descriptor referring to the file is closed.
  virtual int fo_close();

  const file_type f_type;
  std::atomic<int> f_flag{FREAD | FWRITE};
  std::atomic<off_t> f_offset{0};
};

// A kernel-wide wait point for poll(2): anything that may make a descriptor
// ready calls selwakeup(); pollers sleep until the generation moves.
// (FreeBSD's selinfo lists, collapsed to one per kernel.)
// A wakeup with nobody asleep is one atomic increment.
class SelWait final {
 public:
  uint64_t generation() const { return gen_.load(std::memory_order_acquire); }
  void wakeup() ABSL_LOCKS_EXCLUDED(mu_);
  // Sleeps until the generation differs from |seen| or |deadline| passes.
  // Returns false on timeout.
  bool wait(uint64_t seen, absl::Time deadline) ABSL_LOCKS_EXCLUDED(mu_);

 private:
  Mutex mu_;
  CondVar cv_;
  std::atomic<uint64_t> gen_{0};
  std::atomic<int> sleepers_{0};
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
  // fget() for the descriptors fd_at(0..n) under one lock (poll's scan):
  // out[i] is null where fd_at(i) is negative or not open.
  void fget_each(size_t n, absl::FunctionRef<int(size_t)> fd_at, RefPtr<file>* out)
      ABSL_LOCKS_EXCLUDED(mu_);
  // Removes fd; the file's fo_close runs when its last reference goes.
  int fdclose(int fd) ABSL_LOCKS_EXCLUDED(mu_);
  // Closes every descriptor.
  void fdfree() ABSL_LOCKS_EXCLUDED(mu_);
  // Descriptor flags (FD_CLOEXEC), for F_GETFD/F_SETFD. EBADF if fd is not
  // open.
  int getfdflags(int fd, int* flags) ABSL_LOCKS_EXCLUDED(mu_);
  int setfdflags(int fd, int flags) ABSL_LOCKS_EXCLUDED(mu_);

  // The kqueues of this table (FreeBSD's fd_kqlist): while there is one,
  // fdclose() drops the knotes naming the closed descriptor
  // (knote_fdclose). A kqueue adds itself at creation and leaves in its
  // fo_close. kq_mu_ is taken before any kqueue's kq_mtx.
  void kqlist_add(kqueue* kq) ABSL_LOCKS_EXCLUDED(kq_mu_);
  void kqlist_remove(kqueue* kq) ABSL_LOCKS_EXCLUDED(kq_mu_);
  void kqlist_foreach(absl::FunctionRef<void(kqueue*)> fn)
      ABSL_LOCKS_EXCLUDED(kq_mu_);

 private:
  Mutex kq_mu_;
  std::vector<kqueue*> kqlist_ ABSL_GUARDED_BY(kq_mu_);
  std::atomic<int> nkq_{0};
  Mutex mu_;
  std::vector<RefPtr<file>> files_ ABSL_GUARDED_BY(mu_);
  std::vector<uint8_t> fdflags_ ABSL_GUARDED_BY(mu_);  // parallel to files_
};

}  // namespace uk

#endif  // UKTLS_SYS_KERN_KERN_DESCRIP_H_
