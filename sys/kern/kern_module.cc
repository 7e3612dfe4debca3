// Modules: the registry of compiled-in modules (DECLARE_MODULE) and the
// per-kernel module calls. Mirrors FreeBSD's sys/kern/kern_module.c
// (module_register, module_lookupbyname, MOD_EVENT); the per-kernel table
// itself lives in kern_linker.cc.
#include <algorithm>
#include <cerrno>
#include <cstring>

#include "sys/kern/kern_linker.h"
#include "sys/kern/kernel.h"
#include "sys/sys/module.h"

namespace uk {

namespace {

// Filled by static constructors before main() and never changed after, like
// FreeBSD's modmetadata linker set.
std::vector<const moduledata*>& mutable_builtins() {
  static auto* list = new std::vector<const moduledata*>();
  return *list;
}

}  // namespace

ModuleRegistrar::ModuleRegistrar(const moduledata* md) {
  mutable_builtins().push_back(md);
}

const moduledata* module_lookup_builtin(std::string_view name) {
  for (const moduledata* md : mutable_builtins())
    if (md->name != nullptr && name == md->name) return md;
  return nullptr;
}

std::vector<const moduledata*> module_builtin_list() {
  std::vector<const moduledata*> v = mutable_builtins();
  std::sort(v.begin(), v.end(), [](const moduledata* a, const moduledata* b) {
    return strcmp(a->name, b->name) < 0;
  });
  return v;
}

int module_ref(kernel& k, const char* name) {
  if (!k.modules || name == nullptr) return ENOENT;
  return k.modules->ref(name, 1);
}

int module_rele(kernel& k, const char* name) {
  if (!k.modules || name == nullptr) return ENOENT;
  return k.modules->ref(name, -1);
}

bool module_loaded(kernel& k, const char* name) {
  return k.modules && name != nullptr && k.modules->loaded(name);
}

int module_setspecific(kernel& k, const char* name, void* data) {
  if (!k.modules || name == nullptr) return ENOENT;
  return k.modules->setspecific(name, data);
}

void* module_getspecific(kernel& k, const char* name) {
  if (!k.modules || name == nullptr) return nullptr;
  return k.modules->getspecific(name);
}

int kern_kldload(kernel& k, std::string_view file, int* fileid) {
  if (!k.modules) return ENXIO;
  return k.modules->load(file, fileid);
}

int kern_kldunload(kernel& k, int fileid) {
  if (!k.modules) return ENXIO;
  return k.modules->unload(fileid);
}

int kern_kldfind(kernel& k, std::string_view file, int* fileid) {
  if (!k.modules) return ENOENT;
  return k.modules->find(file, fileid);
}

std::vector<kld_file_stat> kldstat(kernel& k) {
  if (!k.modules) return {};
  return k.modules->stat();
}

}  // namespace uk
