// Processes: a uk_proc is a process inside one kernel, owning a descriptor
// table. ProcTable is the kernel's list of them plus the poll wait point.
#ifndef UKTLS_SYS_KERN_KERN_PROC_H_
#define UKTLS_SYS_KERN_KERN_PROC_H_

#include <atomic>
#include <set>
#include <string>

#include "sys/kern/kern_descrip.h"
#include "sys/kern/kernel.h"
#include "sys/sys/lock.h"

struct uk_proc;

namespace uk {

struct ProcTable final {
  SelWait sel;  // poll(2) wakeups for this kernel
  std::atomic<int> next_pid{100};

  Mutex mu;
  std::set<uk_proc*> live ABSL_GUARDED_BY(mu);
};

}  // namespace uk

// The C API's opaque process type.
struct uk_proc final {
  uk::kernel* k;
  std::string comm;
  int pid;
  uk::filedesc fd;
};

#endif  // UKTLS_SYS_KERN_KERN_PROC_H_
