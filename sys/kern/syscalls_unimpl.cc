// System calls not implemented yet: each returns ENOSYS, as a kernel without
// the syscall would. Entries leave this file as their subsystem lands.
#include <cerrno>

#include "sys/kern/syscalls.h"

namespace uk {

// (none left)

}  // namespace uk
