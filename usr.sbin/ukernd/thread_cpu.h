// Per-thread CPU time of this process, for the experiment's CPU split:
// every kernel thread, NIC thread and service thread is a host thread of
// ukernd, so the host's per-thread CPU clocks measure them exactly.
#ifndef UKTLS_USR_SBIN_UKERND_THREAD_CPU_H_
#define UKTLS_USR_SBIN_UKERND_THREAD_CPU_H_

#include <sys/types.h>

#include <cstdint>
#include <set>
#include <string>

namespace ukernd {

// The thread ids of this process now (/proc/self/task).
std::set<pid_t> list_tids();
// CPU time of thread |tid| of this process in nanoseconds (its
// CPUCLOCK_SCHED clock, as pthread_getcpuclockid gives), or 0 once gone.
uint64_t thread_cpu_ns(pid_t tid);
// The thread's name (/proc/self/task/TID/comm), "" once gone.
std::string thread_comm(pid_t tid);

}  // namespace ukernd

#endif  // UKTLS_USR_SBIN_UKERND_THREAD_CPU_H_
