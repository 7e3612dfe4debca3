// The kernel message buffer (FreeBSD's msgbuf + printf(9)): kprintf() appends
// to a per-kernel ring that dmesg reads later. Each line is prefixed with the
// kernel's hostname only when echoed to stderr (boot -v style).
#ifndef UKTLS_SYS_KERN_SUBR_PRF_H_
#define UKTLS_SYS_KERN_SUBR_PRF_H_

#include <cstdarg>
#include <cstddef>
#include <string>

#include "sys/sys/lock.h"

namespace uk {

struct kernel;

class Dmesg final {
 public:
  static constexpr size_t kDefaultSize = 64 * 1024;  // kern.msgbufsize
  explicit Dmesg(size_t size = kDefaultSize) : size_(size) {}

  void append(const std::string& s) ABSL_LOCKS_EXCLUDED(mu_);
  // The whole buffer, oldest first (what dmesg(8) prints).
  std::string read() const ABSL_LOCKS_EXCLUDED(mu_);
  // Also write each message to this FILE (stderr for ukernd); null = off.
  void set_echo(FILE* f, std::string prefix) ABSL_LOCKS_EXCLUDED(mu_);

 private:
  const size_t size_;
  mutable Mutex mu_;
  std::string buf_ ABSL_GUARDED_BY(mu_);
  FILE* echo_ ABSL_GUARDED_BY(mu_) = nullptr;
  std::string echo_prefix_ ABSL_GUARDED_BY(mu_);
};

// printf(9) into kernel k's message buffer.
void kprintf(kernel& k, const char* fmt, ...) __attribute__((format(printf, 2, 3)));
void vkprintf(kernel& k, const char* fmt, va_list ap);

}  // namespace uk

#endif  // UKTLS_SYS_KERN_SUBR_PRF_H_
