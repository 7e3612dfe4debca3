// struct uio: a scatter/gather description of user memory being read or
// written, as FreeBSD's sys/uio.h. uiomove() copies between it and a kernel
// buffer and advances it.
#ifndef UKTLS_SYS_SYS_UIO_H_
#define UKTLS_SYS_SYS_UIO_H_

#include <sys/types.h>
#include <sys/uio.h>  // host struct iovec

#include <cstddef>

namespace uk {

enum uio_rw { UIO_READ, UIO_WRITE };

struct uio {
  struct iovec* uio_iov = nullptr;
  int uio_iovcnt = 0;
  off_t uio_offset = 0;
  ssize_t uio_resid = 0;
  enum uio_rw uio_rw = UIO_READ;
};

// Moves up to n bytes between kernel buffer cp and uio: UIO_READ copies cp
// into the user's iovecs, UIO_WRITE copies the user's iovecs into cp. Returns
// 0, or EFAULT for a null base with a non-zero length.
int uiomove(void* cp, size_t n, uio* uio);

// Builds a uio over a single buffer.
inline uio uio_single(struct iovec* iov, void* base, size_t len, enum uio_rw rw,
                      off_t off = 0) {
  iov->iov_base = base;
  iov->iov_len = len;
  uio u;
  u.uio_iov = iov;
  u.uio_iovcnt = 1;
  u.uio_offset = off;
  u.uio_resid = static_cast<ssize_t>(len);
  u.uio_rw = rw;
  return u;
}

}  // namespace uk

#endif  // UKTLS_SYS_SYS_UIO_H_
