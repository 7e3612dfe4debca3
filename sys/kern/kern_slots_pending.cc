// Kernel slots whose subsystem has not landed yet: nothing ever fills them,
// so their deleter has nothing to free. Each line moves to its subsystem's
// .cc (as UK_KERNEL_SLOT(T)) when the subsystem lands.
#include <cassert>

#include "sys/kern/kernel.h"

namespace uk {

// (none left)

}  // namespace uk
