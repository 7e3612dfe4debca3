// kprintf() and the message buffer. Mirrors FreeBSD's sys/kern/subr_prf.c and
// subr_msgbuf.c: a bounded buffer that drops the oldest text when full.
#include "sys/kern/subr_prf.h"

#include <cstdio>

#include "sys/kern/kernel.h"

namespace uk {

UK_KERNEL_SLOT(Dmesg)

void Dmesg::append(const std::string& s) {
  MutexLock l(&mu_);
  buf_ += s;
  if (buf_.size() > size_) buf_.erase(0, buf_.size() - size_);
  if (echo_ != nullptr) {
    fprintf(echo_, "%s%s", echo_prefix_.c_str(), s.c_str());
    fflush(echo_);
  }
}

std::string Dmesg::read() const {
  MutexLock l(&mu_);
  return buf_;
}

void Dmesg::set_echo(FILE* f, std::string prefix) {
  MutexLock l(&mu_);
  echo_ = f;
  echo_prefix_ = std::move(prefix);
}

void vkprintf(kernel& k, const char* fmt, va_list ap) {
  char small[512];
  va_list ap2;
  va_copy(ap2, ap);
  int n = vsnprintf(small, sizeof(small), fmt, ap);
  std::string s;
  if (n < 0) {
    va_end(ap2);
    return;
  }
  if (static_cast<size_t>(n) < sizeof(small)) {
    s.assign(small, n);
  } else {
    s.resize(n + 1);
    vsnprintf(s.data(), s.size(), fmt, ap2);
    s.resize(n);
  }
  va_end(ap2);
  if (k.dmesg) k.dmesg->append(s);
}

void kprintf(kernel& k, const char* fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vkprintf(k, fmt, ap);
  va_end(ap);
}

}  // namespace uk
