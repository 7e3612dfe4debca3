// System calls not implemented yet: each returns ENOSYS, as a kernel without
// the syscall would. Entries leave this file as their subsystem lands.
#include <cerrno>

#include "sys/kern/syscalls.h"

namespace uk {

int sys_read(uk_proc*, int, void*, size_t, ssize_t*) { return ENOSYS; }
int sys_write(uk_proc*, int, const void*, size_t, ssize_t*) { return ENOSYS; }
int sys_close(uk_proc*, int) { return ENOSYS; }
int sys_fcntl(uk_proc*, int, int, long, int*) { return ENOSYS; }
int sys_poll(uk_proc*, pollfd*, nfds_t, int, int*) { return ENOSYS; }
int sys_open(uk_proc*, const char*, int, int, int*) { return ENOSYS; }
int sys_pwrite(uk_proc*, int, const void*, size_t, off_t, ssize_t*) { return ENOSYS; }
int sys_pread(uk_proc*, int, void*, size_t, off_t, ssize_t*) { return ENOSYS; }
int sys_ftruncate(uk_proc*, int, off_t) { return ENOSYS; }
int sys_sendfile(uk_proc*, int, int, off_t, size_t, uk_sf_hdtr*, off_t*, int) {
  return ENOSYS;
}
int sys_kldload(uk_proc*, const char*, int*) { return ENOSYS; }
int sys_kldunload(uk_proc*, int) { return ENOSYS; }
int sys_kldfind(uk_proc*, const char*, int*) { return ENOSYS; }

}  // namespace uk
