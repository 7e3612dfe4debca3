// File-system system calls: open and ftruncate. Mirrors FreeBSD's
// sys/kern/vfs_syscalls.c (kern_openat) and kern_descrip.c/vfs_vnops.c
// (kern_ftruncate, vn_truncate); tmpfs (tmpfs.h) is the only file system.
#include <cerrno>

#include "sys/kern/kern_descrip.h"
#include "sys/kern/kern_proc.h"
#include "sys/kern/syscalls.h"
#include "sys/kern/tmpfs.h"

namespace uk {

int sys_open(uk_proc* p, const char* path, int flags, int mode, int* fd) {
  if (path == nullptr) return EFAULT;
  if (!p->k->tmpfs) return ENXIO;
  RefPtr<file> fp;
  if (int e = p->k->tmpfs->open(path, flags, mode, &fp)) return e;
  return p->fd.falloc(std::move(fp), fd);
}

int sys_ftruncate(uk_proc* p, int fd, off_t len) {
  RefPtr<file> fp;
  if (int e = p->fd.fget(fd, &fp)) return e;
  if (len < 0) return EINVAL;
  // kern_ftruncate(): a descriptor not open for writing is EINVAL.
  if (!(fp->f_flag.load() & FWRITE)) return EINVAL;
  return fp->fo_truncate(len);
}

}  // namespace uk
