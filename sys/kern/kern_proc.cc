// Process table. Mirrors the small part of FreeBSD's kern_proc.c /
// kern_fork.c a user-mode kernel needs: pids and descriptor tables.
#include "sys/kern/kern_proc.h"

namespace uk {

UK_KERNEL_SLOT(ProcTable)

static int proc_sysinit(kernel& k) {
  k.procs.reset(new ProcTable());
  return 0;
}

static void proc_sysuninit(kernel& k) { k.procs.reset(); }

UK_SYSINIT(proc, SI_SUB_INTRINSIC, SI_ORDER_FIRST, proc_sysinit, proc_sysuninit);

}  // namespace uk
