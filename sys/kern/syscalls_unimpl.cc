// System calls not implemented yet: each returns ENOSYS, as a kernel without
// the syscall would. Entries leave this file as their subsystem lands.
#include <cerrno>

#include "sys/kern/syscalls.h"

namespace uk {

int sys_socket(uk_proc*, int, int, int, int*) { return ENOSYS; }
int sys_bind(uk_proc*, int, const sockaddr*, socklen_t) { return ENOSYS; }
int sys_listen(uk_proc*, int, int) { return ENOSYS; }
int sys_accept(uk_proc*, int, sockaddr*, socklen_t*, int*) { return ENOSYS; }
int sys_connect(uk_proc*, int, const sockaddr*, socklen_t) { return ENOSYS; }
int sys_getsockname(uk_proc*, int, sockaddr*, socklen_t*) { return ENOSYS; }
int sys_getpeername(uk_proc*, int, sockaddr*, socklen_t*) { return ENOSYS; }
int sys_setsockopt(uk_proc*, int, int, int, const void*, socklen_t) { return ENOSYS; }
int sys_getsockopt(uk_proc*, int, int, int, void*, socklen_t*) { return ENOSYS; }
int sys_sendmsg(uk_proc*, int, const msghdr*, int, ssize_t*) { return ENOSYS; }
int sys_recvmsg(uk_proc*, int, msghdr*, int, ssize_t*) { return ENOSYS; }
int sys_shutdown(uk_proc*, int, int) { return ENOSYS; }
int sys_sendfile(uk_proc*, int, int, off_t, size_t, uk_sf_hdtr*, off_t*, int) {
  return ENOSYS;
}

}  // namespace uk
