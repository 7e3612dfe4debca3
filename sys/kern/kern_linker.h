// The kernel linker (kld(4)): the per-kernel table of loaded files and the
// modules they carry. Mirrors FreeBSD's sys/kern/kern_linker.c (files,
// dependencies, kldload/kldunload/kldfind/kldstat) and kern_module.c
// (modules, their event handlers and users).
//
// A linker file is one of:
//  - the kernel itself (id 1, never unloadable);
//  - a compiled-in module loaded by name, which becomes a file of that name
//    carrying that one module (as foo.ko would);
//  - a shared object loaded by path: dlopen()ed once per kernel (libdl counts
//    the handles, so the object is unmapped when the last kernel lets go),
//    carrying the modules of its uk_module_list.
// A module's `depends` are loaded first; a compiled-in dependency that is not
// loaded yet is loaded automatically as a file of its own that the user did
// not ask for (userrefs 0): kldunload refuses it with EBUSY, and it goes away
// when the last file depending on it is unloaded.
//
// Errors, as FreeBSD: kldload EEXIST (a module of that name, or that object,
// is loaded), ENOENT (no such compiled-in module or object file, or a
// dependency that cannot be found), ENOEXEC (an object without
// uk_module_list or that does not link), or the MOD_LOAD handler's errno.
// kldunload ENOENT (no such file id), EBUSY (the kernel, a file loaded only as
// a dependency, a file others depend on, a module with users, or a handler
// refusing MOD_QUIESCE/MOD_UNLOAD). kldfind ENOENT.
//
// Locking: kld_mu_ serialises load and unload and is held across module event
// handlers (FreeBSD's kld_sx); mu_ guards the tables and is held only briefly,
// so handlers may call module_ref()/module_rele()/module_loaded() and
// register sysctls, but must not kldload/kldunload (same kernel) or kldstat.
// Lock order: kld_mu_ -> SysctlTree::mu_ -> mu_.
#ifndef UKTLS_SYS_KERN_KERN_LINKER_H_
#define UKTLS_SYS_KERN_KERN_LINKER_H_

#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "sys/sys/lock.h"
#include "sys/sys/module.h"
#include "sys/sys/sysctl.h"

namespace uk {

struct kernel;

class ModuleTable final {
 public:
  explicit ModuleTable(kernel& k);
  // Requires unload_all() to have run.
  ~ModuleTable();
  ModuleTable(const ModuleTable&) = delete;
  ModuleTable& operator=(const ModuleTable&) = delete;

  // Registers sysctl kern.modules. Returns 0 or an errno.
  int init();

  // kldload: |file| is a compiled-in module name, or (if it contains a '/'
  // or ends in ".so") a path to a shared object. *fileid gets the new id.
  int load(std::string_view file, int* fileid) ABSL_LOCKS_EXCLUDED(kld_mu_, mu_);
  int unload(int fileid) ABSL_LOCKS_EXCLUDED(kld_mu_, mu_);
  // kldfind: by file name, path, path's basename, or a module it carries.
  int find(std::string_view file, int* fileid) ABSL_LOCKS_EXCLUDED(mu_);
  std::vector<kld_file_stat> stat() ABSL_LOCKS_EXCLUDED(mu_);

  // Boot: loads the boot config's module list (or the default set).
  int load_boot_modules() ABSL_LOCKS_EXCLUDED(kld_mu_, mu_);
  // Halt: every file in reverse load order, whatever its users.
  void unload_all() ABSL_LOCKS_EXCLUDED(kld_mu_, mu_);

  int ref(std::string_view name, int delta) ABSL_LOCKS_EXCLUDED(mu_);
  bool loaded(std::string_view name) ABSL_LOCKS_EXCLUDED(mu_);
  int setspecific(std::string_view name, void* data) ABSL_LOCKS_EXCLUDED(mu_);
  void* getspecific(std::string_view name) ABSL_LOCKS_EXCLUDED(mu_);

 private:
  struct linker_file;
  struct module_entry {
    const moduledata* md = nullptr;
    linker_file* file = nullptr;
    int users = 0;
    bool unloading = false;  // kldunload under way: no new users
    void* specific = nullptr;
  };
  // Fields are written with both kld_mu_ and mu_ held; read with either.
  struct linker_file {
    int id = 0;
    std::string name;
    std::string pathname;
    void* handle = nullptr;          // dlopen handle, or null
    int userrefs = 0;                // loaded by kldload or the boot list
    int deprefs = 0;                 // files depending on this one
    bool ready = false;              // all modules loaded
    std::vector<const moduledata*> modules;  // load order
    std::vector<linker_file*> deps;  // each holds one of its deprefs
  };

  int load_object(std::string_view path, int* fileid)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(kld_mu_);
  int load_builtin(const moduledata* md, bool user,
                   std::vector<std::string>* chain, linker_file** out)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(kld_mu_);
  int load_module(const moduledata* md, linker_file* lf,
                  const std::vector<const moduledata*>& siblings,
                  std::vector<std::string>* chain)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(kld_mu_);
  linker_file* new_file(std::string name, std::string pathname)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(kld_mu_);
  // Unloads the modules of lf in reverse; stops at the first refusal unless
  // |force|. Returns the refusal's errno.
  int unload_modules(linker_file* lf, bool force)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(kld_mu_);
  // Drops lf's references on its dependencies, unloading those that were
  // loaded only as dependencies and are no longer needed.
  void release_deps(linker_file* lf) ABSL_EXCLUSIVE_LOCKS_REQUIRED(kld_mu_);
  // Removes an empty file from the table and closes its object.
  void destroy_file(linker_file* lf) ABSL_EXCLUSIVE_LOCKS_REQUIRED(kld_mu_);
  linker_file* file_by_id(int id) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  linker_file* file_of_module(std::string_view name)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  kernel& k_;
  Mutex kld_mu_ ABSL_ACQUIRED_BEFORE(mu_);
  Mutex mu_;
  // Load order; id 1 (the kernel) is not stored.
  std::vector<std::unique_ptr<linker_file>> files_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, module_entry, std::less<>> modules_
      ABSL_GUARDED_BY(mu_);
  int next_id_ ABSL_GUARDED_BY(kld_mu_) = 2;
  sysctl_ctx_list sysctl_ctx_;
};

// kldstat(8)-style text: a header and one line per file.
std::string kldstat_text(const std::vector<kld_file_stat>& files);

}  // namespace uk

#endif  // UKTLS_SYS_KERN_KERN_LINKER_H_
