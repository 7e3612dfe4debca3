// A shared object module without dependencies on the test program, so a
// kernel without kt_base can load it.
#include <cerrno>

#include "sys/kern/kernel.h"
#include "sys/sys/module.h"

namespace {

int solomod_handler(uk::kernel&, int what, void*) {
  return what == uk::MOD_LOAD || what == uk::MOD_UNLOAD ? 0 : EOPNOTSUPP;
}

const uk::moduledata solomod_mod = {"solomod", solomod_handler, nullptr, false,
                                    nullptr};

}  // namespace

extern "C" const uk::moduledata* const uk_module_list[] = {&solomod_mod,
                                                            nullptr};
