// The boot banner and the kernel's identity sysctls. Mirrors what FreeBSD
// prints from init_main.c (print_caddr_t(copyright), print_version) and the
// kern.ostype / kern.osrelease / kern.version / kern.hostname / hw.ncpu nodes
// of kern_mib.c. ("real memory" is printed by the page pool, vm_page.cc.)
#include <cerrno>
#include <string>
#include <thread>

#include "sys/kern/kernel.h"
#include "sys/kern/subr_prf.h"
#include "sys/sys/sysctl.h"

namespace uk {

namespace {

constexpr char kOstype[] = "uktls";
constexpr char kOsrelease[] = "0.1";

std::string version_string() {
  // No build date: Bazel builds are reproducible and redact __DATE__/__TIME__.
  std::string v = std::string(kOstype) + " " + kOsrelease + " #0";
#if defined(__clang__)
  v += "\n    clang " __clang_version__;
#elif defined(__GNUC__)
  v += "\n    gcc " __VERSION__;
#endif
  return v;
}

int add_const_string(kernel& k, std::string_view name, std::string value,
                     std::string_view descr) {
  return k.sysctl->add(name, CTLTYPE_STRING | CTLFLAG_RD, "A", descr,
                       [value](sysctl_req& req) {
                         if (req.newptr != nullptr) return EPERM;
                         return sysctl_handle_string(req, value);
                       });
}

}  // namespace

// SI_SUB_COPYRIGHT: the first lines of dmesg. The identity nodes live as long
// as the tree (they are never removed, so they need no ctx).
static int banner_sysinit(kernel& k) {
  std::string v = version_string();
  kprintf(k, "Copyright (c) 2026 The uktls Project.\n");
  kprintf(k, "Kernel TLS after FreeBSD's ktls(4); "
             "FreeBSD is a registered trademark of The FreeBSD Foundation.\n");
  kprintf(k, "%s\n", v.c_str());
  kprintf(k, "CPU: %d emulated (host: %u cores)\n", k.ncpus,
          std::thread::hardware_concurrency());
  int e = 0;
  auto chk = [&e](int r) {
    if (e == 0) e = r;
  };
  chk(add_const_string(k, "kern.ostype", kOstype, "Operating system type"));
  chk(add_const_string(k, "kern.osrelease", kOsrelease,
                       "Operating system release"));
  chk(add_const_string(k, "kern.version", v + "\n", "Kernel version"));
  chk(add_const_string(k, "kern.hostname", k.hostname, "Hostname"));
  chk(k.sysctl->add("hw.ncpu", CTLTYPE_INT | CTLFLAG_RD, "I",
                    "Number of active CPUs", [n = k.ncpus](sysctl_req& req) {
                      if (req.newptr != nullptr) return EPERM;
                      return req.out(&n, sizeof(n));
                    }));
  return e;
}

UK_SYSINIT(banner, SI_SUB_COPYRIGHT, SI_ORDER_FIRST, banner_sysinit, nullptr);

// The last line of boot, as rc(8)'s hostname step.
static int hostname_sysinit(kernel& k) {
  kprintf(k, "Setting hostname: %s.\n", k.hostname.c_str());
  return 0;
}

UK_SYSINIT(hostname, SI_SUB_LAST, SI_ORDER_ANY, hostname_sysinit, nullptr);

}  // namespace uk
