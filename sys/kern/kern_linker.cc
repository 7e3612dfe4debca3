// The kernel linker: loading and unloading files and the modules they carry,
// for one kernel. Mirrors FreeBSD's sys/kern/kern_linker.c
// (linker_load_module, linker_load_dependencies, linker_file_unload,
// kern_kldload, kern_kldunload, sys_kldfind, sys_kldstat); see kern_linker.h.
#include "sys/kern/kern_linker.h"

#include <dlfcn.h>
#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>

#include "sys/kern/kern_proc.h"
#include "sys/kern/kernel.h"
#include "sys/kern/subr_prf.h"
#include "sys/kern/syscalls.h"

namespace uk {

UK_KERNEL_SLOT(ModuleTable)

namespace {

bool ends_with(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() &&
         s.substr(s.size() - suffix.size()) == suffix;
}

// A name that is a path is a shared object; anything else names a module.
bool is_path(std::string_view f) {
  return f.find('/') != std::string_view::npos || ends_with(f, ".so");
}

std::string_view basename_of(std::string_view p) {
  size_t slash = p.rfind('/');
  return slash == std::string_view::npos ? p : p.substr(slash + 1);
}

std::vector<std::string> split_list(std::string_view s) {
  std::vector<std::string> out;
  size_t i = 0;
  while (i <= s.size()) {
    size_t comma = s.find(',', i);
    if (comma == std::string_view::npos) comma = s.size();
    std::string_view item = s.substr(i, comma - i);
    while (!item.empty() && (item.front() == ' ' || item.front() == '\t'))
      item.remove_prefix(1);
    while (!item.empty() && (item.back() == ' ' || item.back() == '\t'))
      item.remove_suffix(1);
    if (!item.empty()) out.emplace_back(item);
    i = comma + 1;
  }
  return out;
}

int mod_event(kernel& k, const moduledata* md, int what) {
  return md->evhand != nullptr ? md->evhand(k, what, md->priv) : 0;
}

}  // namespace

ModuleTable::ModuleTable(kernel& k) : k_(k), sysctl_ctx_(k) {}

ModuleTable::~ModuleTable() = default;

ModuleTable::linker_file* ModuleTable::file_by_id(int id) {
  for (auto& f : files_)
    if (f->id == id) return f.get();
  return nullptr;
}

ModuleTable::linker_file* ModuleTable::file_of_module(std::string_view name) {
  auto it = modules_.find(name);
  return it == modules_.end() ? nullptr : it->second.file;
}

ModuleTable::linker_file* ModuleTable::new_file(std::string name,
                                                std::string pathname) {
  auto lf = std::make_unique<linker_file>();
  lf->id = next_id_++;
  lf->name = std::move(name);
  lf->pathname = std::move(pathname);
  linker_file* raw = lf.get();
  MutexLock l(&mu_);
  files_.push_back(std::move(lf));
  return raw;
}

void ModuleTable::destroy_file(linker_file* lf) {
  void* handle = lf->handle;
  {
    MutexLock l(&mu_);
    files_.erase(std::find_if(files_.begin(), files_.end(),
                              [lf](const auto& f) { return f.get() == lf; }));
  }
  // libdl counts the handles of all kernels: the object is unmapped only
  // when the last kernel that loaded it lets go.
  if (handle != nullptr) dlclose(handle);
}

int ModuleTable::load_module(const moduledata* md, linker_file* lf,
                             const std::vector<const moduledata*>& siblings,
                             std::vector<std::string>* chain) {
  if (md->name == nullptr || md->name[0] == '\0') return EINVAL;
  if (std::find(chain->begin(), chain->end(), md->name) != chain->end()) {
    kprintf(k_, "KLD %s: module %s depends on itself through %s\n",
            lf->name.c_str(), md->name, chain->back().c_str());
    return EDEADLK;
  }
  {
    MutexLock l(&mu_);
    if (linker_file* owner = file_of_module(md->name))
      return owner == lf ? 0 : EEXIST;  // a sibling loaded it as a dependency
  }
  chain->emplace_back(md->name);
  int error = 0;
  for (const std::string& dep : split_list(md->depends ? md->depends : "")) {
    auto sib = std::find_if(siblings.begin(), siblings.end(),
                            [&dep](const moduledata* s) { return dep == s->name; });
    if (sib != siblings.end()) {
      if ((error = load_module(*sib, lf, siblings, chain)) != 0) break;
      continue;
    }
    linker_file* df;
    {
      MutexLock l(&mu_);
      df = file_of_module(dep);
    }
    if (df == nullptr) {
      const moduledata* dmd = module_lookup_builtin(dep);
      if (dmd == nullptr) {
        kprintf(k_, "KLD %s: module %s needs %s, which is not available\n",
                lf->name.c_str(), md->name, dep.c_str());
        error = ENOENT;
        break;
      }
      if ((error = load_builtin(dmd, false, chain, &df)) != 0) break;
    }
    if (df != lf) {
      MutexLock l(&mu_);
      if (std::find(lf->deps.begin(), lf->deps.end(), df) == lf->deps.end()) {
        df->deprefs++;
        lf->deps.push_back(df);
      }
    }
  }
  if (error == 0) {
    // Registered before MOD_LOAD runs (as module_register() precedes
    // module_register_init()), so the handler can module_setspecific().
    {
      MutexLock l(&mu_);
      module_entry& me = modules_[md->name];
      me.md = md;
      me.file = lf;
    }
    error = mod_event(k_, md, MOD_LOAD);
    MutexLock l(&mu_);
    if (error != 0) {
      modules_.erase(md->name);
    } else {
      lf->modules.push_back(md);
    }
  }
  if (error != 0)
    kprintf(k_, "KLD %s: module %s: not loaded: error %d\n", lf->name.c_str(),
            md->name, error);
  chain->pop_back();
  return error;
}

int ModuleTable::load_builtin(const moduledata* md, bool user,
                              std::vector<std::string>* chain,
                              linker_file** out) {
  linker_file* lf = new_file(md->name, "");
  int error = load_module(md, lf, {md}, chain);
  if (error != 0) {
    unload_modules(lf, true);
    release_deps(lf);
    destroy_file(lf);
    return error;
  }
  {
    MutexLock l(&mu_);
    lf->userrefs = user ? 1 : 0;
    lf->ready = true;
  }
  kprintf(k_, "KLD %s: loaded, file id %d%s\n", lf->name.c_str(), lf->id,
          user ? "" : " (dependency)");
  *out = lf;
  return 0;
}

int ModuleTable::load_object(std::string_view path, int* fileid) {
  std::string p(path);
  {
    MutexLock l(&mu_);
    for (const auto& f : files_)
      if (f->pathname == p) return EEXIST;
  }
  struct stat st;
  if (::stat(p.c_str(), &st) != 0) return ENOENT;
  void* h = dlopen(p.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (h == nullptr) {
    const char* why = dlerror();
    kprintf(k_, "KLD %s: cannot link: %s\n", p.c_str(), why ? why : "?");
    return ENOEXEC;
  }
  auto* list =
      reinterpret_cast<const moduledata* const*>(dlsym(h, "uk_module_list"));
  if (list == nullptr) {
    kprintf(k_, "KLD %s: no uk_module_list: not a module\n", p.c_str());
    dlclose(h);
    return ENOEXEC;
  }
  std::vector<const moduledata*> mods;
  for (size_t i = 0; list[i] != nullptr; i++) mods.push_back(list[i]);
  {
    MutexLock l(&mu_);
    for (const moduledata* md : mods) {
      if (md->name != nullptr && modules_.count(md->name) != 0) {
        kprintf(k_, "KLD %s: module %s is already loaded\n", p.c_str(),
                md->name);
        dlclose(h);
        return EEXIST;
      }
    }
  }
  linker_file* lf = new_file(std::string(basename_of(p)), p);
  lf->handle = h;  // not yet visible: ready is false
  std::vector<std::string> chain;
  int error = 0;
  for (const moduledata* md : mods)
    if ((error = load_module(md, lf, mods, &chain)) != 0) break;
  if (error != 0) {
    unload_modules(lf, true);
    release_deps(lf);
    destroy_file(lf);
    return error;
  }
  {
    MutexLock l(&mu_);
    lf->userrefs = 1;
    lf->ready = true;
  }
  std::string names;
  for (const moduledata* md : lf->modules)
    names += (names.empty() ? "" : ",") + std::string(md->name);
  kprintf(k_, "KLD %s: loaded from %s, file id %d, modules %s\n",
          lf->name.c_str(), p.c_str(), lf->id, names.c_str());
  *fileid = lf->id;
  return 0;
}

// "foo.ko" names compiled-in module foo, as kldload(8) accepts either.
static std::string_view strip_ko(std::string_view f) {
  return ends_with(f, ".ko") ? f.substr(0, f.size() - 3) : f;
}

int ModuleTable::load(std::string_view file, int* fileid) {
  if (file.empty()) return ENOENT;
  MutexLock kl(&kld_mu_);
  if (is_path(file)) return load_object(file, fileid);
  file = strip_ko(file);
  {
    MutexLock l(&mu_);
    if (modules_.count(file) != 0) return EEXIST;
  }
  const moduledata* md = module_lookup_builtin(file);
  if (md == nullptr) return ENOENT;
  std::vector<std::string> chain;
  linker_file* lf = nullptr;
  int error = load_builtin(md, true, &chain, &lf);
  if (error == 0) *fileid = lf->id;
  return error;
}

int ModuleTable::unload_modules(linker_file* lf, bool force) {
  int first_error = 0;
  std::vector<const moduledata*> gone;
  while (!lf->modules.empty()) {
    const moduledata* md = lf->modules.back();
    int error = mod_event(k_, md, MOD_UNLOAD);
    if (error != 0) {
      if (!force) {
        // One module of the file refused: bring back those of it already
        // unloaded, so a file is never left half there.
        for (auto it = gone.rbegin(); it != gone.rend(); ++it) {
          const moduledata* g = *it;
          {
            MutexLock l(&mu_);
            module_entry& me = modules_[g->name];
            me.md = g;
            me.file = lf;
          }
          int e = mod_event(k_, g, MOD_LOAD);
          MutexLock l(&mu_);
          if (e == 0) {
            lf->modules.push_back(g);
          } else {
            modules_.erase(g->name);
            kprintf(k_, "KLD %s: module %s could not be reloaded: error %d\n",
                    lf->name.c_str(), g->name, e);
          }
        }
        return error;
      }
      kprintf(k_, "KLD %s: module %s refused to unload at halt: error %d\n",
              lf->name.c_str(), md->name, error);
      if (first_error == 0) first_error = error;
    }
    gone.push_back(md);
    MutexLock l(&mu_);
    modules_.erase(md->name);
    lf->modules.pop_back();
  }
  return first_error;
}

void ModuleTable::release_deps(linker_file* lf) {
  std::vector<linker_file*> deps;
  {
    MutexLock l(&mu_);
    deps.swap(lf->deps);
    for (linker_file* d : deps) d->deprefs--;
  }
  for (auto it = deps.rbegin(); it != deps.rend(); ++it) {
    linker_file* d = *it;
    bool idle;
    {
      MutexLock l(&mu_);
      idle = d->deprefs == 0 && d->userrefs == 0;
      for (const moduledata* md : d->modules)
        if (modules_[md->name].users > 0) idle = false;
    }
    // A dependency nobody asked for goes with its last dependent, unless it
    // is in use (it then stays until halt, as an unreferenced file).
    if (!idle) continue;
    if (unload_modules(d, false) != 0) continue;
    kprintf(k_, "KLD %s: unloaded (no longer needed)\n", d->name.c_str());
    release_deps(d);
    destroy_file(d);
  }
}

int ModuleTable::unload(int fileid) {
  MutexLock kl(&kld_mu_);
  if (fileid == 1) return EBUSY;  // the kernel
  linker_file* lf;
  {
    MutexLock l(&mu_);
    lf = file_by_id(fileid);
    if (lf == nullptr || !lf->ready) return ENOENT;
    if (lf->userrefs == 0) return EBUSY;  // loaded by the kernel
    if (lf->deprefs > 0) return EBUSY;    // other files need it
    for (const moduledata* md : lf->modules)
      if (modules_[md->name].users > 0) return EBUSY;
    for (const moduledata* md : lf->modules) modules_[md->name].unloading = true;
  }
  // As module_quiesce(): a handler that does not know MOD_QUIESCE agrees.
  int error = 0;
  for (auto it = lf->modules.rbegin(); it != lf->modules.rend(); ++it) {
    int e = mod_event(k_, *it, MOD_QUIESCE);
    if (e != 0 && e != EOPNOTSUPP && e != EINVAL) {
      error = e;
      break;
    }
  }
  if (error == 0) error = unload_modules(lf, false);
  if (error != 0) {
    MutexLock l(&mu_);
    for (const moduledata* md : lf->modules) modules_[md->name].unloading = false;
    return error;
  }
  kprintf(k_, "KLD %s: unloaded, file id %d\n", lf->name.c_str(), lf->id);
  release_deps(lf);
  destroy_file(lf);
  return 0;
}

void ModuleTable::unload_all() {
  MutexLock kl(&kld_mu_);
  for (;;) {
    linker_file* lf = nullptr;
    {
      MutexLock l(&mu_);
      if (files_.empty()) break;
      // The newest file nothing depends on: dependencies loaded on a
      // dependent's behalf are newer than it, so plain reverse order is not
      // enough.
      for (auto it = files_.rbegin(); it != files_.rend(); ++it) {
        if ((*it)->deprefs == 0) {
          lf = it->get();
          break;
        }
      }
      if (lf == nullptr) lf = files_.back().get();  // unreachable for a DAG
      for (const moduledata* md : lf->modules) {
        if (modules_[md->name].users > 0)
          kprintf(k_, "KLD %s: module %s still has %d users at halt\n",
                  lf->name.c_str(), md->name, modules_[md->name].users);
      }
    }
    for (auto it = lf->modules.rbegin(); it != lf->modules.rend(); ++it)
      mod_event(k_, *it, MOD_SHUTDOWN);
    if (unload_modules(lf, true) != 0) {
      // Its code may still be referenced by what it failed to tear down:
      // keep the object mapped rather than unmap live code.
      lf->handle = nullptr;
    }
    {
      MutexLock l(&mu_);
      for (linker_file* d : lf->deps) d->deprefs--;
      lf->deps.clear();
    }
    destroy_file(lf);
  }
}

int ModuleTable::load_boot_modules() {
  std::vector<std::string> names;
  if (!k_.boot_modules) {
    for (const moduledata* md : module_builtin_list())
      if (md->default_load) names.emplace_back(md->name);
  } else {
    names = split_list(*k_.boot_modules);
  }
  for (const std::string& n : names) {
    int id = 0;
    int error = load(n, &id);
    if (error == EEXIST && !is_path(n)) {
      // Already loaded as an earlier module's dependency: now it is also
      // one the loader was asked for.
      MutexLock kl(&kld_mu_);
      MutexLock l(&mu_);
      if (linker_file* lf = file_of_module(n)) lf->userrefs = 1;
      continue;
    }
    if (error != 0) {
      kprintf(k_, "KLD %s: cannot load at boot: error %d\n", n.c_str(), error);
      return error;
    }
  }
  return 0;
}

int ModuleTable::find(std::string_view file, int* fileid) {
  if (file == "kernel") {
    *fileid = 1;
    return 0;
  }
  if (!is_path(file)) file = strip_ko(file);
  MutexLock l(&mu_);
  for (const auto& f : files_) {
    if (!f->ready) continue;
    if (f->name == file || f->pathname == file) {
      *fileid = f->id;
      return 0;
    }
  }
  linker_file* lf = file_of_module(file);
  if (lf == nullptr || !lf->ready) return ENOENT;
  *fileid = lf->id;
  return 0;
}

std::vector<kld_file_stat> ModuleTable::stat() {
  std::vector<kld_file_stat> out;
  MutexLock l(&mu_);
  kld_file_stat kern;
  kern.id = 1;
  kern.name = "kernel";
  kern.refs = 1;
  out.push_back(kern);
  for (const auto& f : files_) {
    if (!f->ready) continue;
    out[0].refs++;
    kld_file_stat s;
    s.id = f->id;
    s.refs = 1 + f->deprefs;
    s.name = f->name;
    s.pathname = f->pathname;
    for (const moduledata* md : f->modules) {
      s.modules.emplace_back(md->name);
      s.users += modules_[md->name].users;
    }
    out.push_back(std::move(s));
  }
  return out;
}

int ModuleTable::ref(std::string_view name, int delta) {
  MutexLock l(&mu_);
  auto it = modules_.find(name);
  if (it == modules_.end()) return ENOENT;
  module_entry& me = it->second;
  if (delta > 0 && me.unloading) return ENOENT;
  if (delta < 0 && me.users + delta < 0) return EINVAL;
  me.users += delta;
  return 0;
}

bool ModuleTable::loaded(std::string_view name) {
  MutexLock l(&mu_);
  auto it = modules_.find(name);
  return it != modules_.end() && !it->second.unloading;
}

int ModuleTable::setspecific(std::string_view name, void* data) {
  MutexLock l(&mu_);
  auto it = modules_.find(name);
  if (it == modules_.end()) return ENOENT;
  it->second.specific = data;
  return 0;
}

void* ModuleTable::getspecific(std::string_view name) {
  MutexLock l(&mu_);
  auto it = modules_.find(name);
  return it == modules_.end() ? nullptr : it->second.specific;
}

std::string kldstat_text(const std::vector<kld_file_stat>& files) {
  std::string s = "Id Refs Users Name                 Path\n";
  char line[512];
  for (const kld_file_stat& f : files) {
    std::string where = f.pathname;
    if (where.empty() && f.id != 1) where = "(compiled in)";
    // A file carrying modules not named after it lists them, as kldstat -v.
    std::string mods;
    for (const std::string& m : f.modules) mods += (mods.empty() ? "" : ",") + m;
    if (!mods.empty() && mods != f.name) where += " [" + mods + "]";
    snprintf(line, sizeof(line), "%2d %4d %5d %-20s %s\n", f.id, f.refs,
             f.users, f.name.c_str(), where.c_str());
    s += line;
  }
  return s;
}

int ModuleTable::init() {
  return sysctl_ctx_.add_proc(
      "kern.modules", CTLTYPE_STRING | CTLFLAG_RD, "A",
      [this](sysctl_req& req) {
        if (req.newptr != nullptr) return EPERM;
        return sysctl_handle_string(req, kldstat_text(stat()));
      },
      "Loaded kernel files and their modules (kldstat)");
}

static int kld_sysinit(kernel& k) {
  k.modules.reset(new ModuleTable(k));
  int error = k.modules->init();
  if (error != 0) k.modules.reset();
  return error;
}

static void kld_sysuninit(kernel& k) {
  if (k.modules) k.modules->unload_all();
  k.modules.reset();
}

UK_SYSINIT(kld, SI_SUB_KLD, SI_ORDER_FIRST, kld_sysinit, kld_sysuninit);

// The loader's module list, loaded once every subsystem is up.
static int kld_boot_sysinit(kernel& k) {
  int error = k.modules->load_boot_modules();
  if (error != 0) k.modules->unload_all();
  return error;
}

static void kld_boot_sysuninit(kernel& k) { k.modules->unload_all(); }

UK_SYSINIT(kld_boot, SI_SUB_CONFIGURE, SI_ORDER_MIDDLE, kld_boot_sysinit,
           kld_boot_sysuninit);

int sys_kldload(uk_proc* p, const char* module, int* fileid) {
  if (module == nullptr) return EFAULT;
  return kern_kldload(*p->k, module, fileid);
}

int sys_kldunload(uk_proc* p, int fileid) {
  return kern_kldunload(*p->k, fileid);
}

int sys_kldfind(uk_proc* p, const char* module, int* fileid) {
  if (module == nullptr) return EFAULT;
  return kern_kldfind(*p->k, module, fileid);
}

}  // namespace uk
