// uk_ifconfig and uk_wire for simulated NICs (API.md section 6). Errors are
// returned as errnos; the readable message goes to the kernel's message
// buffer, as ifconfig(8) prints to stderr.
#include <cerrno>
#include <string>

#include "sys/dev/nic_sim/nic_sim.h"
#include "sys/kern/kernel.h"
#include "sys/kern/subr_prf.h"
#include "sys/kern/syscalls.h"
#include "sys/net/if_ifconfig.h"
#include "sys/net/if_var.h"

namespace uk {

int if_ifconfig(kernel& k, const char* ifname, const char* args) {
  if (ifname == nullptr || args == nullptr) return EINVAL;
  std::string driver;
  int unit;
  // nic_sim clones its interfaces and has its own words; anything else
  // (lo0) is an interface of the stack itself.
  if (ifname_parse(ifname, &driver, &unit) == 0 && driver != "nic_sim")
    return if_ifconfig_generic(k, ifname, args);
  std::string err;
  int e = nic_sim_ifconfig(k, ifname, args, &err);
  if (e != 0 && !err.empty()) kprintf(k, "%s\n", err.c_str());
  return e;
}

int if_wire(kernel& a, const char* ifa, kernel& b, const char* ifb,
            const char* params) {
  if (ifa == nullptr || ifb == nullptr || params == nullptr) return EINVAL;
  std::string err;
  int e = nic_sim_wire(a, ifa, b, ifb, params, &err);
  if (e != 0 && !err.empty()) kprintf(a, "%s\n", err.c_str());
  return e;
}

}  // namespace uk
