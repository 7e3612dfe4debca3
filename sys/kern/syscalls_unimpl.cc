// System calls not implemented yet: each returns ENOSYS, as a kernel without
// the syscall would. Entries leave this file as their subsystem lands.
#include <cerrno>

#include "sys/kern/syscalls.h"

namespace uk {

int sys_sendfile(uk_proc*, int, int, off_t, size_t, uk_sf_hdtr*, off_t*, int) {
  return ENOSYS;
}

}  // namespace uk
