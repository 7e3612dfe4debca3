// A loadable module built as a shared object that does not link the kernel:
// the test program (which links //lib/libuk with -rdynamic) provides every
// kernel symbol at dlopen. Each kernel that loads it gets its own sysctl
// nodes and its own state (module_setspecific), as a .ko in several
// FreeBSD jails-with-their-own-kernel would.
//
//   debug.testmod.kernel_id      the id of the kernel it was loaded into
//   debug.testmod.refuse_unload  RW int: non-zero makes MOD_UNLOAD say EBUSY
//   debug.testmod.loads          loads of this object in the process
//
// A second module, testmod_dep, depends on testmod (same object) and on
// kt_base (compiled into the test program).
#include <atomic>
#include <cerrno>

#include "sys/kern/kernel.h"
#include "sys/kern/subr_prf.h"
#include "sys/sys/module.h"
#include "sys/sys/sysctl.h"

namespace {

void remove_nodes(uk::kernel& k) {
  k.sysctl->remove("debug.testmod.kernel_id");
  k.sysctl->remove("debug.testmod.refuse_unload");
  k.sysctl->remove("debug.testmod.loads");
}

struct testmod_softc {
  std::atomic<int> refuse_unload{0};
};

// Process-wide on purpose: it shows the object's data is shared by every
// kernel that maps it, and that a reload gets a fresh mapping.
std::atomic<int> object_loads{0};

int testmod_handler(uk::kernel& k, int what, void*) {
  switch (what) {
    case uk::MOD_LOAD: {
      auto* sc = new testmod_softc();
      uk::module_setspecific(k, "testmod", sc);
      object_loads.fetch_add(1);
      uint64_t id = k.id;
      int e = k.sysctl->add("debug.testmod.kernel_id",
                            uk::CTLTYPE_U64 | uk::CTLFLAG_RD, "QU",
                            "Kernel the module was loaded into",
                            [id](uk::sysctl_req& req) {
                              return uk::sysctl_handle_64(req, id);
                            });
      if (e == 0)
        e = k.sysctl->add("debug.testmod.refuse_unload",
                          uk::CTLTYPE_INT | uk::CTLFLAG_RW, "I",
                          "Make MOD_UNLOAD refuse",
                          [sc](uk::sysctl_req& req) {
                            return uk::sysctl_handle_int(req, &sc->refuse_unload,
                                                         true);
                          });
      if (e == 0)
        e = k.sysctl->add("debug.testmod.loads", uk::CTLTYPE_INT | uk::CTLFLAG_RD,
                          "I", "Loads of the object in this process",
                          [](uk::sysctl_req& req) {
                            int v = object_loads.load();
                            return req.out(&v, sizeof(v));
                          });
      if (e != 0) {
        remove_nodes(k);
        delete sc;
        return e;
      }
      uk::kprintf(k, "testmod: hello from a shared object\n");
      return 0;
    }
    case uk::MOD_UNLOAD: {
      auto* sc = static_cast<testmod_softc*>(uk::module_getspecific(k, "testmod"));
      if (sc->refuse_unload.load() != 0) return EBUSY;
      remove_nodes(k);
      delete sc;
      return 0;
    }
    default:
      return EOPNOTSUPP;
  }
}

int testmod_dep_handler(uk::kernel& k, int what, void*) {
  switch (what) {
    case uk::MOD_LOAD:
      uk::kprintf(k, "testmod_dep: testmod and kt_base are loaded: %d %d\n",
                  uk::module_loaded(k, "testmod"), uk::module_loaded(k, "kt_base"));
      return 0;
    case uk::MOD_UNLOAD:
      return 0;
    default:
      return EOPNOTSUPP;
  }
}

const uk::moduledata testmod_dep_mod = {"testmod_dep", testmod_dep_handler,
                                        nullptr, false, "testmod,kt_base"};
const uk::moduledata testmod_mod = {"testmod", testmod_handler, nullptr, false,
                                    nullptr};

}  // namespace

// Listed dependent-first on purpose: the linker must order them.
extern "C" const uk::moduledata* const uk_module_list[] = {
    &testmod_dep_mod, &testmod_mod, nullptr};
