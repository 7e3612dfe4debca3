// The kernel object: one booted uktls kernel. All mutable kernel state hangs
// off a `kernel`, so one process can run many kernels side by side.
//
// Boot runs the SYSINIT list (ordered by subsystem, then order) and then loads
// the boot modules; halt unloads modules and runs the SYSUNINITs in reverse.
// Each subsystem owns one slot below and creates it in its SYSINIT.
//
// Locking: the slots themselves are written only during boot and halt, when
// no other thread runs in the kernel; each subsystem locks its own state.
#ifndef UKTLS_SYS_KERN_KERNEL_H_
#define UKTLS_SYS_KERN_KERNEL_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace uk {

// Per-kernel state of each subsystem (defined by its owner).
class Dmesg;             // sys/kern/subr_prf.h
class SysctlTree;        // sys/sys/sysctl.h
class PagePool;          // sys/kern/vm_page.h
struct MbufState;        // sys/sys/mbuf.h
class KthreadTable;      // sys/kern/kern_kthread.h
class CalloutThread;     // sys/kern/kern_timeout.h
class ModuleTable;       // sys/kern/kern_linker.h
class Tmpfs;             // sys/kern/tmpfs.h
struct ProcTable;        // sys/kern/kern_proc.h
struct NetState;         // sys/net/if_var.h and sys/netinet
struct CryptoState;      // sys/opencrypto/crypto.h
struct KtlsState;        // sys/sys/ktls.h
struct NicSimState;      // sys/dev/nic_sim/nic_sim.h
struct LinuxTlsState;    // sys/compat/linux/linux_tls.h

// Subsystem identifiers in boot order, as FreeBSD's sysinit_sub_id.
enum sysinit_sub_id : int {
  SI_SUB_COPYRIGHT = 0x0080000,  // dmesg is ready
  SI_SUB_TUNABLES = 0x0700000,
  SI_SUB_VM = 0x1000000,         // page pool
  SI_SUB_KMEM = 0x1800000,
  SI_SUB_SYSCTL = 0x1900000,     // (the tree itself exists from the start)
  SI_SUB_KLD = 0x2000000,        // module table (kern_linker)
  SI_SUB_MBUF = 0x2700000,
  SI_SUB_INTRINSIC = 0x2800000,  // processes, fd tables
  SI_SUB_KTHREAD = 0x2900000,
  SI_SUB_CALLOUT = 0x2a00000,
  SI_SUB_TASKQ = 0x2b00000,
  SI_SUB_VFS = 0x4000000,        // tmpfs
  SI_SUB_CRYPTO = 0x4800000,     // OCF framework
  SI_SUB_PROTO_DOMAIN = 0x8800000,
  SI_SUB_PROTO_IF = 0x8400000,
  SI_SUB_PROTO_IFATTACHDOMAIN = 0x8800001,
  SI_SUB_KTLS = 0x9000000,
  SI_SUB_DRIVERS = 0xa000000,
  SI_SUB_CONFIGURE = 0xe000000,  // lo0 up, boot modules
  SI_SUB_LAST = 0xfffffff,
};

enum sysinit_elem_order : int {
  SI_ORDER_FIRST = 0x0000000,
  SI_ORDER_SECOND = 0x0000001,
  SI_ORDER_THIRD = 0x0000002,
  SI_ORDER_MIDDLE = 0x1000000,
  SI_ORDER_ANY = 0xfffffff,
};

struct kernel;

// Slots hold subsystem state through Slot<T>. Each subsystem defines
// slot_delete() for its type next to the type (UK_KERNEL_SLOT(T) in its .cc,
// inside namespace uk), so kernel.cc need not see every definition.
void slot_delete(Dmesg* p);
void slot_delete(SysctlTree* p);
void slot_delete(PagePool* p);
void slot_delete(MbufState* p);
void slot_delete(KthreadTable* p);
void slot_delete(CalloutThread* p);
void slot_delete(ModuleTable* p);
void slot_delete(Tmpfs* p);
void slot_delete(ProcTable* p);
void slot_delete(NetState* p);
void slot_delete(CryptoState* p);
void slot_delete(KtlsState* p);
void slot_delete(NicSimState* p);
void slot_delete(LinuxTlsState* p);
template <class T>
struct SlotDeleter {
  void operator()(T* p) const { slot_delete(p); }
};
template <class T>
using Slot = std::unique_ptr<T, SlotDeleter<T>>;
#define UK_KERNEL_SLOT(T) \
  void slot_delete(T* p) { delete p; }

// One boot-time initialiser. init returns 0 or an errno (boot then fails and
// undoes what ran); a failing init must leave its slot empty. uninit may be
// null.
struct sysinit {
  sysinit_sub_id subsystem;
  int order;
  const char* name;
  int (*init)(kernel& k);
  void (*uninit)(kernel& k);
};

// Registers a sysinit at program start, like FreeBSD's linker set. The list is
// immutable once main() runs.
struct SysinitRegistrar {
  explicit SysinitRegistrar(const sysinit& si);
};
const std::vector<sysinit>& sysinit_list();

#define UK_SYSINIT(uniq, sub, order, init, uninit)                   \
  static const ::uk::SysinitRegistrar uniq##_sysinit_registrar {     \
    ::uk::sysinit { (sub), (order), #uniq, (init), (uninit) }        \
  }

struct boot_params {
  std::string hostname = "uk";
  int ncpus = 0;  // 0 = host cores
  bool default_modules = true;
  std::string modules;  // used when !default_modules
  std::string tunables;
};

struct kernel final {
  // Boots a kernel. Returns null and sets *error to an errno on failure.
  static std::unique_ptr<kernel> boot(const boot_params& bp, int* error);
  // Halts: unloads modules, stops every thread, frees every page.
  ~kernel();

  kernel(const kernel&) = delete;
  kernel& operator=(const kernel&) = delete;

  // A tunable from the boot configuration ("loader.conf"), or null. A
  // tunable asked for is used (CTLFLAG_TUN sysctls ask when they are added).
  const std::string* tunable(std::string_view name) const;
  // The boot configuration's tunables that nothing has asked for yet, in
  // name order. At the end of boot each one is reported in dmesg: a
  // misspelt name, or a sysctl that is not a tunable, is ignored as FreeBSD's
  // loader ignores it, but not without a word. (As in FreeBSD's kenv, a
  // module loaded later may still read one: it then leaves this list.)
  std::vector<std::string> unused_tunables() const;

  // Immutable after boot.
  std::string hostname;
  int ncpus = 1;
  uint64_t id = 0;  // unique per process, for names and logs
  std::map<std::string, std::string, std::less<>> tunables;
  // Modules to load at boot: nullopt = the default set, "" = none.
  std::optional<std::string> boot_modules;

  // Subsystem state; see each subsystem's header.
  Slot<Dmesg> dmesg;
  Slot<SysctlTree> sysctl;
  Slot<PagePool> vm;
  Slot<MbufState> mb;
  Slot<KthreadTable> kthreads;
  Slot<CalloutThread> callout;
  Slot<ModuleTable> modules;
  Slot<Tmpfs> tmpfs;
  Slot<ProcTable> procs;
  Slot<NetState> net;
  Slot<CryptoState> crypto;
  Slot<KtlsState> ktls;
  Slot<NicSimState> nic_sim;
  Slot<LinuxTlsState> linux_tls;

  // True once boot finished and until halt starts.
  std::atomic<bool> running{false};

 private:
  kernel();
  std::vector<const sysinit*> done_;  // ran successfully, in order
  // The caller's tunable names (keys fixed at boot) and whether tunable()
  // was asked for each.
  mutable std::map<std::string, std::atomic<bool>, std::less<>> tunables_asked_;
};

}  // namespace uk

#endif  // UKTLS_SYS_KERN_KERNEL_H_
