// Descriptor tables and default fileops. Mirrors FreeBSD's
// sys/kern/kern_descrip.c (falloc, fget, closef) and sys_generic.c.
#include "sys/kern/kern_descrip.h"

#include <poll.h>

#include <cerrno>
#include <algorithm>
#include <cstring>

#include "sys/kern/kern_event.h"

namespace uk {

int file::fo_read(uio&, int) { return EOPNOTSUPP; }
int file::fo_write(uio&, int) { return EOPNOTSUPP; }
int file::fo_poll(int events) { return events & (POLLIN | POLLOUT); }
int file::fo_truncate(off_t) { return EINVAL; }
int file::fo_close() { return 0; }
int file::fo_stat(struct stat* sb) {
  memset(sb, 0, sizeof(*sb));
  sb->st_mode = f_type == DTYPE_SOCKET ? S_IFSOCK : 0;
  return 0;
}

void SelWait::wakeup() {
  // seq_cst pairs with wait(): a sleeper counted before it rechecks the
  // generation, so either it sees the increment or this sees it.
  gen_.fetch_add(1, std::memory_order_seq_cst);
  if (sleepers_.load(std::memory_order_seq_cst) == 0) return;
  MutexLock l(&mu_);
  cv_.SignalAll();
}

bool SelWait::wait(uint64_t seen, absl::Time deadline) {
  MutexLock l(&mu_);
  sleepers_.fetch_add(1, std::memory_order_seq_cst);
  bool woke = true;
  while (gen_.load(std::memory_order_seq_cst) == seen) {
    absl::Duration left = deadline - absl::Now();
    if (deadline != absl::InfiniteFuture() && left <= absl::ZeroDuration()) {
      woke = false;
      break;
    }
    if (deadline == absl::InfiniteFuture())
      cv_.Wait(&mu_);
    else
      cv_.WaitWithTimeout(&mu_, left);
  }
  sleepers_.fetch_sub(1, std::memory_order_relaxed);
  return woke;
}

filedesc::~filedesc() { fdfree(); }

int filedesc::falloc(RefPtr<file> f, int* fd) {
  MutexLock l(&mu_);
  for (size_t i = 0; i < files_.size(); i++) {
    if (!files_[i]) {
      files_[i] = std::move(f);
      fdflags_[i] = 0;
      *fd = static_cast<int>(i);
      return 0;
    }
  }
  if (files_.size() >= kMaxFiles) return EMFILE;
  files_.push_back(std::move(f));
  fdflags_.push_back(0);
  *fd = static_cast<int>(files_.size() - 1);
  return 0;
}

int filedesc::fget(int fd, RefPtr<file>* out) {
  MutexLock l(&mu_);
  if (fd < 0 || static_cast<size_t>(fd) >= files_.size() || !files_[fd])
    return EBADF;
  *out = files_[fd];
  return 0;
}

void filedesc::fget_each(size_t n, absl::FunctionRef<int(size_t)> fd_at,
                         RefPtr<file>* out) {
  MutexLock l(&mu_);
  for (size_t i = 0; i < n; i++) {
    int fd = fd_at(i);
    if (fd >= 0 && static_cast<size_t>(fd) < files_.size())
      out[i] = files_[fd];
    else
      out[i] = nullptr;
  }
}

// A file is closed (fo_close) when the descriptor goes, as closef() does for
// the last descriptor; references held by in-flight calls keep the object.
int filedesc::fdclose(int fd) {
  RefPtr<file> f;
  {
    MutexLock l(&mu_);
    if (fd < 0 || static_cast<size_t>(fd) >= files_.size() || !files_[fd])
      return EBADF;
    f = std::move(files_[fd]);
    files_[fd].reset();
  }
  // As closefp(): the descriptor's knotes go before the file closes.
  if (nkq_.load(std::memory_order_seq_cst) > 0) knote_fdclose(this, fd);
  return f->fo_close();
}

void filedesc::fdfree() {
  std::vector<RefPtr<file>> all;
  {
    MutexLock l(&mu_);
    all.swap(files_);
    fdflags_.clear();
  }
  for (auto& f : all)
    if (f) f->fo_close();
}

void filedesc::kqlist_add(kqueue* kq) {
  MutexLock l(&kq_mu_);
  kqlist_.push_back(kq);
  nkq_.fetch_add(1, std::memory_order_seq_cst);
}

void filedesc::kqlist_remove(kqueue* kq) {
  MutexLock l(&kq_mu_);
  auto it = std::find(kqlist_.begin(), kqlist_.end(), kq);
  if (it == kqlist_.end()) return;
  kqlist_.erase(it);
  nkq_.fetch_sub(1, std::memory_order_seq_cst);
}

void filedesc::kqlist_foreach(absl::FunctionRef<void(kqueue*)> fn) {
  MutexLock l(&kq_mu_);
  for (kqueue* kq : kqlist_) fn(kq);
}

int filedesc::getfdflags(int fd, int* flags) {
  MutexLock l(&mu_);
  if (fd < 0 || static_cast<size_t>(fd) >= files_.size() || !files_[fd])
    return EBADF;
  *flags = fdflags_[fd];
  return 0;
}

int filedesc::setfdflags(int fd, int flags) {
  MutexLock l(&mu_);
  if (fd < 0 || static_cast<size_t>(fd) >= files_.size() || !files_[fd])
    return EBADF;
  fdflags_[fd] = static_cast<uint8_t>(flags);
  return 0;
}

}  // namespace uk
