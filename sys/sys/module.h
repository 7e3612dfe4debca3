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
#include <string_view>
#include <vector>

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

// Registration of a module compiled into the kernel image. A shared-object
// module must not use DECLARE_MODULE (it would register into the hosting
// program's image at dlopen); it exports uk_module_list instead.
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

// Per-kernel private data of a loaded module (FreeBSD's module_setspecific):
// a module that needs state in each kernel hangs it here in MOD_LOAD and
// frees it in MOD_UNLOAD. ENOENT if the module is not loaded.
int module_setspecific(kernel& k, const char* name, void* data);
void* module_getspecific(kernel& k, const char* name);

// The compiled-in module of that name, or null.
const moduledata* module_lookup_builtin(std::string_view name);
// Every compiled-in module, sorted by name.
std::vector<const moduledata*> module_builtin_list();

// kldstat(2): one loaded file. File id 1 is the kernel itself; a
// compiled-in module loaded by name is a file named after the module (as
// foo.ko would be on FreeBSD); a shared object is named by the path it was
// loaded from.
struct kld_file_stat {
  int id = 0;
  int refs = 0;  // 1 + files that depend on it (kernel: 1 + files loaded)
  std::string name;
  std::string pathname;  // "" for the kernel and compiled-in modules
  std::vector<std::string> modules;  // in load order
  int users = 0;  // module_ref() holders summed over its modules
};

// The kernel side of kldload(2)/kldunload(2)/kldfind(2) and kldstat(2), for
// tools that hold a kernel& (ktlsctl, ukernd). The same listing is the text
// sysctl kern.modules. All return 0 or an errno; see kern_linker.h.
int kern_kldload(kernel& k, std::string_view file, int* fileid);
int kern_kldunload(kernel& k, int fileid);
int kern_kldfind(kernel& k, std::string_view file, int* fileid);
std::vector<kld_file_stat> kldstat(kernel& k);

}  // namespace uk

// Symbol a module shared object exports (C linkage, null-terminated).
extern "C" {
typedef const uk::moduledata* const uk_module_list_t[];
}

#endif  // UKTLS_SYS_SYS_MODULE_H_
