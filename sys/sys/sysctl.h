// sysctl(9): the per-kernel tree of named values. Subsystems register the
// nodes they own (with FreeBSD's names, types, flags and descriptions) into a
// sysctl_ctx_list that removes them again when the subsystem goes away;
// userland reads and writes them through uk_sysctlbyname().
//
// Locking: SysctlTree::mu_ is outermost. Handlers run with it held and may take
// any other kernel lock, but must not register or remove oids.
#ifndef UKTLS_SYS_SYS_SYSCTL_H_
#define UKTLS_SYS_SYS_SYSCTL_H_

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "sys/sys/counter.h"
#include "sys/sys/lock.h"

namespace uk {

struct kernel;

// Types (FreeBSD's CTLTYPE_* numbers) and flags.
enum : uint32_t {
  CTLTYPE = 0xf,
  CTLTYPE_NODE = 1,
  CTLTYPE_INT = 2,
  CTLTYPE_STRING = 3,
  CTLTYPE_S64 = 4,
  CTLTYPE_OPAQUE = 5,
  CTLTYPE_UINT = 6,
  CTLTYPE_LONG = 7,
  CTLTYPE_ULONG = 8,
  CTLTYPE_U64 = 9,
  CTLTYPE_U8 = 0xa,

  CTLFLAG_RD = 0x80000000,
  CTLFLAG_WR = 0x40000000,
  CTLFLAG_RW = CTLFLAG_RD | CTLFLAG_WR,
  CTLFLAG_ANYBODY = 0x10000000,
  CTLFLAG_SECURE = 0x08000000,
  CTLFLAG_TUN = 0x00080000,
  CTLFLAG_RDTUN = CTLFLAG_RD | CTLFLAG_TUN,
  CTLFLAG_RWTUN = CTLFLAG_RW | CTLFLAG_TUN,
  CTLFLAG_STATS = 0x00002000,
  CTLFLAG_MPSAFE = 0x00040000,
};

// One request, as FreeBSD's sysctl_req: old value out, new value in.
struct sysctl_req {
  void* oldptr = nullptr;
  size_t oldlen = 0;   // capacity of oldptr
  size_t oldidx = 0;   // bytes produced so far (may exceed oldlen)
  const void* newptr = nullptr;
  size_t newlen = 0;
  size_t newidx = 0;

  // SYSCTL_OUT: copies what fits; ENOMEM once the caller's buffer is full.
  int out(const void* p, size_t l);
  // SYSCTL_IN: EINVAL when fewer than l new bytes remain.
  int in(void* p, size_t l);
};

// Handler: produce the old value with req.out(), and if req.newptr, consume
// the new value with req.in(). Returns 0 or an errno.
using sysctl_handler = std::function<int(sysctl_req& req)>;

struct sysctl_oid {
  std::string name;      // last component
  std::string fullname;  // "kern.ipc.tls.enable"
  std::string descr;
  uint32_t kind = 0;     // CTLTYPE_* | CTLFLAG_*
  std::string fmt;       // "I", "IU", "QU", "A", "N", "S,struct", ...
  sysctl_handler handler;  // null for plain nodes
  std::map<std::string, std::unique_ptr<sysctl_oid>, std::less<>> children;
  int refs = 0;  // registrations (nodes are shared by their children's ctxs)

  uint32_t type() const { return kind & CTLTYPE; }
};

// What a listing reports for one oid.
struct sysctl_oid_info {
  std::string name;
  std::string descr;
  uint32_t kind;
  std::string fmt;
};

class SysctlTree final {
 public:
  explicit SysctlTree(const kernel* k) : k_(k) {}

  // sysctlbyname(3) semantics: ENOENT for an unknown name, EISDIR for a node
  // without a handler, EPERM writing a read-only oid, ENOMEM when *oldlenp is
  // too small (the part that fits is copied), EINVAL for a bad new value.
  // With oldp null, *oldlenp is set to the size needed.
  int sysctlbyname(std::string_view name, void* oldp, size_t* oldlenp,
                   const void* newp, size_t newlen);

  // Every leaf at or below |prefix| ("" for all), in name order (sysctl -a).
  // Returns ENOENT if the prefix names nothing.
  int list(std::string_view prefix, std::vector<sysctl_oid_info>* out);
  // Describes one oid (node or leaf). ENOENT if unknown.
  int describe(std::string_view name, sysctl_oid_info* out);

  // Registration; used through sysctl_ctx_list. Creates intermediate nodes
  // as needed. EEXIST if a leaf of that name exists.
  int add(std::string_view fullname, uint32_t kind, std::string_view fmt,
          std::string_view descr, sysctl_handler h);
  void remove(std::string_view fullname);

  const kernel* owner() const { return k_; }

 private:
  sysctl_oid* find_locked(std::string_view name) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void remove_locked(std::string_view fullname) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const kernel* k_;
  Mutex mu_;
  sysctl_oid root_ ABSL_GUARDED_BY(mu_);
};

// A set of oids registered by one owner and removed together when it is
// destroyed (FreeBSD's sysctl_ctx_list + sysctl_ctx_free). Values live in the
// owner; they must outlive the ctx. Tunable nodes (CTLFLAG_TUN) take their
// initial value from the kernel's boot tunables when registered.
class sysctl_ctx_list final {
 public:
  explicit sysctl_ctx_list(kernel& k);
  ~sysctl_ctx_list();
  sysctl_ctx_list(const sysctl_ctx_list&) = delete;
  sysctl_ctx_list& operator=(const sysctl_ctx_list&) = delete;

  // Each returns 0 or an errno (EEXIST for a duplicate leaf, EINVAL for an
  // unparsable tunable).
  int add_node(std::string_view name, std::string_view descr);
  int add_int(std::string_view name, uint32_t flags, std::atomic<int>* v,
              std::string_view descr);
  int add_uint(std::string_view name, uint32_t flags, std::atomic<unsigned>* v,
               std::string_view descr);
  int add_bool(std::string_view name, uint32_t flags, std::atomic<bool>* v,
               std::string_view descr);
  int add_u64(std::string_view name, uint32_t flags, std::atomic<uint64_t>* v,
              std::string_view descr);
  // A read-only constant int (e.g. kern.ipc.tls.stats.threads).
  int add_const_int(std::string_view name, int value, std::string_view descr);
  int add_counter(std::string_view name, uint32_t flags, counter_u64* c,
                  std::string_view descr);
  int add_string(std::string_view name, uint32_t flags, std::string value,
                 std::string_view descr);
  int add_proc(std::string_view name, uint32_t kind, std::string_view fmt,
               sysctl_handler h, std::string_view descr);

 private:
  int add(std::string_view name, uint32_t kind, std::string_view fmt,
          std::string_view descr, sysctl_handler h);
  const std::string* tunable(std::string_view name, uint32_t flags) const;

  kernel& k_;
  std::vector<std::string> names_;
};

// Standard handlers, as sysctl_handle_int() and friends.
int sysctl_handle_int(sysctl_req& req, std::atomic<int>* v, bool writable);
int sysctl_handle_64(sysctl_req& req, uint64_t value);
int sysctl_handle_string(sysctl_req& req, const std::string& s);

}  // namespace uk

#endif  // UKTLS_SYS_SYS_SYSCTL_H_
