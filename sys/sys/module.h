// Kernel modules (module(9), kld(4)): code that is loaded into a running
// kernel and unloaded again. A module is a name and an event handler that
// gets MOD_LOAD / MOD_UNLOAD for one kernel at a time.
//
// Modules compiled into the kernel image are registered with DECLARE_MODULE
// (an immutable list, like FreeBSD's linker set) and become active in a
// kernel only when loaded: at boot (the default set, or the boot config's
// list) or with kldload. A module may also live in a shared object: the
// object exports `uk_module_list`, a null-terminated array of moduledata
// pointers, and kldload("/path/to/foo.so") dlopen()s it; its undefined
// symbols bind to the hosting program's kernel (-rdynamic).
//
// A module stays loaded while it has users: module_ref()/module_rele()
// count them (e.g. crypto sessions on a driver), and kldunload fails with
// EBUSY until the count is zero or the handler's MOD_UNLOAD refuses.
#ifndef UKTLS_SYS_SYS_MODULE_H_
#define UKTLS_SYS_SYS_MODULE_H_

#include <string>

namespace uk {

struct kernel;

enum modeventtype : int {
  MOD_LOAD = 0,
  MOD_UNLOAD = 1,
  MOD_SHUTDOWN = 2,
  MOD_QUIESCE = 3,
};

// Returns 0 or an errno (MOD_UNLOAD: EBUSY keeps the module loaded).
using modeventhand_t = int (*)(kernel& k, int what, void* arg);

struct moduledata {
  const char* name;
  modeventhand_t evhand;
  void* priv;
  // Loaded at boot when the boot config asks for the default module set.
  bool default_load;
  // Modules this one needs loaded first (comma list, or null).
  const char* depends;
};

// Registration of a module compiled into the kernel image.
struct ModuleRegistrar {
  explicit ModuleRegistrar(const moduledata* md);
};

#define DECLARE_MODULE(uniq, md) \
  static const ::uk::ModuleRegistrar uniq##_module_registrar { &(md) }

// Users of a loaded module (EBUSY on unload while > 0). Return 0 or ENOENT.
int module_ref(kernel& k, const char* name);
int module_rele(kernel& k, const char* name);
// True if the module is loaded in k.
bool module_loaded(kernel& k, const char* name);

}  // namespace uk

// Symbol a module shared object exports (C linkage, null-terminated).
extern "C" {
typedef const uk::moduledata* const uk_module_list_t[];
}

#endif  // UKTLS_SYS_SYS_MODULE_H_
