#include "usr.sbin/ukernd/thread_cpu.h"

#include <dirent.h>
#include <time.h>

#include <cstdlib>
#include <fstream>

namespace ukernd {

std::set<pid_t> list_tids() {
  std::set<pid_t> out;
  DIR* d = opendir("/proc/self/task");
  if (d == nullptr) return out;
  while (dirent* e = readdir(d)) {
    if (e->d_name[0] < '0' || e->d_name[0] > '9') continue;
    out.insert(static_cast<pid_t>(std::atoi(e->d_name)));
  }
  closedir(d);
  return out;
}

uint64_t thread_cpu_ns(pid_t tid) {
  // Linux's per-thread CPU clock id (MAKE_THREAD_CPUCLOCK(tid,
  // CPUCLOCK_SCHED)): what glibc's pthread_getcpuclockid returns, reachable
  // by thread id for threads ukernd did not create itself.
  clockid_t id = static_cast<clockid_t>((~static_cast<unsigned>(tid)) << 3) | 6;
  timespec ts{};
  if (clock_gettime(id, &ts) != 0) return 0;
  return static_cast<uint64_t>(ts.tv_sec) * 1000000000u + static_cast<uint64_t>(ts.tv_nsec);
}

std::string thread_comm(pid_t tid) {
  std::ifstream f("/proc/self/task/" + std::to_string(tid) + "/comm");
  std::string s;
  std::getline(f, s);
  return s;
}

}  // namespace ukernd
