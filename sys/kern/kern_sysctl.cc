// sysctl(9) tree and the standard handlers. Mirrors FreeBSD's
// sys/kern/kern_sysctl.c (sysctl_root, sysctl_handle_int, sysctl_old_user,
// sysctl_new_user), without MIB numbers: names are the only address.
#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "absl/strings/numbers.h"
#include "sys/kern/kernel.h"
#include "sys/sys/sysctl.h"

namespace uk {

UK_KERNEL_SLOT(SysctlTree)

int sysctl_req::out(const void* p, size_t l) {
  size_t i = oldidx;
  oldidx += l;
  if (oldptr == nullptr) return 0;  // size probe
  if (i >= oldlen) return ENOMEM;
  size_t n = std::min(l, oldlen - i);
  memcpy(static_cast<char*>(oldptr) + i, p, n);
  return n < l ? ENOMEM : 0;
}

int sysctl_req::in(void* p, size_t l) {
  if (newptr == nullptr) return 0;
  if (newlen - newidx < l) return EINVAL;
  memcpy(p, static_cast<const char*>(newptr) + newidx, l);
  newidx += l;
  return 0;
}

int sysctl_handle_int(sysctl_req& req, std::atomic<int>* v, bool writable) {
  int tmp = v->load(std::memory_order_relaxed);
  int error = req.out(&tmp, sizeof(tmp));
  if (error || req.newptr == nullptr) return error;
  if (!writable) return EPERM;
  error = req.in(&tmp, sizeof(tmp));
  if (error == 0) v->store(tmp, std::memory_order_relaxed);
  return error;
}

int sysctl_handle_64(sysctl_req& req, uint64_t value) {
  return req.out(&value, sizeof(value));
}

int sysctl_handle_string(sysctl_req& req, const std::string& s) {
  return req.out(s.c_str(), s.size() + 1);
}

static std::vector<std::string_view> split_name(std::string_view name) {
  std::vector<std::string_view> parts;
  size_t start = 0;
  while (true) {
    size_t dot = name.find('.', start);
    parts.push_back(name.substr(start, dot == std::string_view::npos
                                           ? std::string_view::npos
                                           : dot - start));
    if (dot == std::string_view::npos) break;
    start = dot + 1;
  }
  return parts;
}

sysctl_oid* SysctlTree::find_locked(std::string_view name) {
  if (name.empty()) return &root_;
  sysctl_oid* cur = &root_;
  for (std::string_view part : split_name(name)) {
    auto it = cur->children.find(part);
    if (it == cur->children.end()) return nullptr;
    cur = it->second.get();
  }
  return cur;
}

int SysctlTree::sysctlbyname(std::string_view name, void* oldp,
                             size_t* oldlenp, const void* newp, size_t newlen) {
  MutexLock l(&mu_);
  sysctl_oid* oid = find_locked(name);
  if (oid == nullptr || oid == &root_) return ENOENT;
  if (oid->type() == CTLTYPE_NODE && !oid->handler) return EISDIR;
  if (newp != nullptr && !(oid->kind & CTLFLAG_WR)) return EPERM;
  sysctl_req req;
  req.oldptr = oldp;
  req.oldlen = (oldp != nullptr && oldlenp != nullptr) ? *oldlenp : 0;
  req.newptr = newp;
  req.newlen = newp ? newlen : 0;
  if (oldp != nullptr && oldlenp == nullptr) req.oldptr = nullptr;
  int error = oid->handler(req);
  if (oldlenp != nullptr) {
    if (oldp == nullptr) {
      *oldlenp = req.oldidx;
    } else {
      *oldlenp = std::min(req.oldidx, req.oldlen);
    }
  }
  return error;
}

static void collect(const sysctl_oid& o, std::vector<sysctl_oid_info>* out) {
  if (o.type() != CTLTYPE_NODE || o.handler) {
    out->push_back({o.fullname, o.descr, o.kind, o.fmt});
  }
  for (const auto& [n, c] : o.children) collect(*c, out);
}

int SysctlTree::list(std::string_view prefix, std::vector<sysctl_oid_info>* out) {
  MutexLock l(&mu_);
  sysctl_oid* oid = find_locked(prefix);
  if (oid == nullptr) return ENOENT;
  collect(*oid, out);
  return 0;
}

int SysctlTree::describe(std::string_view name, sysctl_oid_info* out) {
  MutexLock l(&mu_);
  sysctl_oid* oid = find_locked(name);
  if (oid == nullptr || oid == &root_) return ENOENT;
  *out = {oid->fullname, oid->descr, oid->kind, oid->fmt};
  return 0;
}

int SysctlTree::add(std::string_view fullname, uint32_t kind,
                    std::string_view fmt, std::string_view descr,
                    sysctl_handler h) {
  MutexLock l(&mu_);
  std::vector<std::string_view> parts = split_name(fullname);
  if (fullname.empty()) return EINVAL;
  for (std::string_view p : parts)
    if (p.empty()) return EINVAL;
  sysctl_oid* cur = &root_;
  std::string path;
  for (size_t i = 0; i < parts.size(); i++) {
    if (!path.empty()) path += '.';
    path += parts[i];
    bool last = i + 1 == parts.size();
    auto it = cur->children.find(parts[i]);
    if (it == cur->children.end()) {
      auto o = std::make_unique<sysctl_oid>();
      o->name = std::string(parts[i]);
      o->fullname = path;
      o->kind = CTLTYPE_NODE | CTLFLAG_RD;
      o->fmt.assign(1, 'N');  // (operator=("N") trips GCC 12's -Wrestrict)
      it = cur->children.emplace(o->name, std::move(o)).first;
    } else if (cur->children.find(parts[i])->second->type() != CTLTYPE_NODE) {
      return EEXIST;  // a leaf in the way
    }
    cur = it->second.get();
    if (last) {
      if ((kind & CTLTYPE) == CTLTYPE_NODE) {
        if (cur->descr.empty()) cur->descr = std::string(descr);
        if (h) cur->handler = std::move(h), cur->kind = kind;
        cur->refs++;
        return 0;
      }
      if (!cur->children.empty() || cur->refs > 0) return EEXIST;
      cur->kind = kind;
      cur->fmt = std::string(fmt);
      cur->descr = std::string(descr);
      cur->handler = std::move(h);
      cur->refs = 1;
    }
  }
  return 0;
}

void SysctlTree::remove_locked(std::string_view fullname) {
  std::vector<std::string_view> parts = split_name(fullname);
  std::vector<sysctl_oid*> chain{&root_};
  for (std::string_view p : parts) {
    auto it = chain.back()->children.find(p);
    if (it == chain.back()->children.end()) return;
    chain.push_back(it->second.get());
  }
  sysctl_oid* o = chain.back();
  if (o->refs > 0) o->refs--;
  // Prune this oid and any parents nobody registered and nobody needs.
  for (size_t i = chain.size() - 1; i > 0; i--) {
    sysctl_oid* c = chain[i];
    if (c->refs > 0 || !c->children.empty()) break;
    chain[i - 1]->children.erase(c->name);
  }
}

void SysctlTree::remove(std::string_view fullname) {
  MutexLock l(&mu_);
  remove_locked(fullname);
}

sysctl_ctx_list::sysctl_ctx_list(kernel& k) : k_(k) {}

sysctl_ctx_list::~sysctl_ctx_list() {
  for (auto it = names_.rbegin(); it != names_.rend(); ++it)
    k_.sysctl->remove(*it);
}

int sysctl_ctx_list::add(std::string_view name, uint32_t kind,
                         std::string_view fmt, std::string_view descr,
                         sysctl_handler h) {
  int error = k_.sysctl->add(name, kind, fmt, descr, std::move(h));
  if (error == 0) names_.emplace_back(name);
  return error;
}

const std::string* sysctl_ctx_list::tunable(std::string_view name,
                                            uint32_t flags) const {
  if (!(flags & CTLFLAG_TUN)) return nullptr;
  return k_.tunable(name);
}

int sysctl_ctx_list::add_node(std::string_view name, std::string_view descr) {
  return add(name, CTLTYPE_NODE | CTLFLAG_RD, "N", descr, nullptr);
}

template <class T>
static bool parse_tunable(const std::string& s, T* out) {
  if constexpr (std::is_same_v<T, bool>) {
    int v;
    if (!absl::SimpleAtoi(s, &v)) return false;
    *out = v != 0;
    return true;
  } else {
    return absl::SimpleAtoi(s, out);
  }
}

// A CTLFLAG_TUN oid's boot tunable, if given, sets *v as it is registered;
// EINVAL if it does not parse.
template <class T>
static int set_from_tunable(const std::string* t, std::atomic<T>* v) {
  if (t == nullptr) return 0;
  T x;
  if (!parse_tunable(*t, &x)) return EINVAL;
  v->store(x);
  return 0;
}

// The handler of a scalar oid over *v: read as Wire (a bool travels as one
// byte, as FreeBSD's sysctl_handle_bool), written only if wr.
template <class T, class Wire>
static sysctl_handler scalar_handler(std::atomic<T>* v, bool wr) {
  return [v, wr](sysctl_req& req) {
    Wire tmp = static_cast<Wire>(v->load(std::memory_order_relaxed));
    int error = req.out(&tmp, sizeof(tmp));
    if (error || req.newptr == nullptr) return error;
    if (!wr) return EPERM;
    error = req.in(&tmp, sizeof(tmp));
    if (error == 0) v->store(static_cast<T>(tmp), std::memory_order_relaxed);
    return error;
  };
}

int sysctl_ctx_list::add_int(std::string_view name, uint32_t flags,
                             std::atomic<int>* v, std::string_view descr) {
  if (int e = set_from_tunable(tunable(name, flags), v)) return e;
  bool wr = flags & CTLFLAG_WR;
  return add(name, CTLTYPE_INT | flags, "I", descr,
             [v, wr](sysctl_req& req) { return sysctl_handle_int(req, v, wr); });
}

int sysctl_ctx_list::add_uint(std::string_view name, uint32_t flags,
                              std::atomic<unsigned>* v, std::string_view descr) {
  if (int e = set_from_tunable(tunable(name, flags), v)) return e;
  return add(name, CTLTYPE_UINT | flags, "IU", descr,
             scalar_handler<unsigned, unsigned>(v, flags & CTLFLAG_WR));
}

int sysctl_ctx_list::add_bool(std::string_view name, uint32_t flags,
                              std::atomic<bool>* v, std::string_view descr) {
  if (int e = set_from_tunable(tunable(name, flags), v)) return e;
  return add(name, CTLTYPE_U8 | flags, "CU", descr,
             scalar_handler<bool, uint8_t>(v, flags & CTLFLAG_WR));
}

int sysctl_ctx_list::add_u64(std::string_view name, uint32_t flags,
                             std::atomic<uint64_t>* v, std::string_view descr) {
  if (int e = set_from_tunable(tunable(name, flags), v)) return e;
  return add(name, CTLTYPE_U64 | flags, "QU", descr,
             scalar_handler<uint64_t, uint64_t>(v, flags & CTLFLAG_WR));
}

int sysctl_ctx_list::add_const_int(std::string_view name, int value,
                                   std::string_view descr) {
  return add(name, CTLTYPE_INT | CTLFLAG_RD, "I", descr,
             [value](sysctl_req& req) { return req.out(&value, sizeof(value)); });
}

// FreeBSD's sysctl_handle_counter_u64: writing 0 to a writable counter
// zeroes it.
int sysctl_ctx_list::add_counter(std::string_view name, uint32_t flags,
                                 counter_u64* c, std::string_view descr) {
  bool wr = flags & CTLFLAG_WR;
  return add(name, CTLTYPE_U64 | CTLFLAG_STATS | flags, "QU", descr,
             [c, wr](sysctl_req& req) {
               uint64_t tmp = c->fetch();
               int error = req.out(&tmp, sizeof(tmp));
               if (error || req.newptr == nullptr) return error;
               if (!wr) return EPERM;
               error = req.in(&tmp, sizeof(tmp));
               if (error == 0 && tmp == 0) c->zero();
               return error;
             });
}

int sysctl_ctx_list::add_string(std::string_view name, uint32_t flags,
                                std::string value, std::string_view descr) {
  return add(name, CTLTYPE_STRING | (flags & ~CTLFLAG_WR), "A", descr,
             [value = std::move(value)](sysctl_req& req) {
               if (req.newptr) return EPERM;
               return sysctl_handle_string(req, value);
             });
}

int sysctl_ctx_list::add_proc(std::string_view name, uint32_t kind,
                              std::string_view fmt, sysctl_handler h,
                              std::string_view descr) {
  return add(name, kind, fmt, descr, std::move(h));
}

}  // namespace uk

#include "sys/kern/kern_proc.h"
#include "sys/kern/syscalls.h"

namespace uk {

int sys_sysctlbyname(uk_proc* p, const char* name, void* oldp, size_t* oldlenp,
                     const void* newp, size_t newlen) {
  if (name == nullptr) return EFAULT;
  return p->k->sysctl->sysctlbyname(name, oldp, oldlenp, newp, newlen);
}

}  // namespace uk
