// uiomove(9). Mirrors FreeBSD's sys/kern/subr_uio.c.
#include <algorithm>
#include <cerrno>
#include <cstring>

#include "sys/sys/uio.h"

namespace uk {

int uiomove(void* cp, size_t n, uio* uio) {
  char* p = static_cast<char*>(cp);
  while (n > 0 && uio->uio_resid > 0) {
    if (uio->uio_iovcnt <= 0) break;
    struct iovec* iov = uio->uio_iov;
    size_t cnt = std::min(iov->iov_len, n);
    if (cnt == 0) {
      uio->uio_iov++;
      uio->uio_iovcnt--;
      continue;
    }
    if (iov->iov_base == nullptr) return EFAULT;
    if (uio->uio_rw == UIO_READ)
      memcpy(iov->iov_base, p, cnt);
    else
      memcpy(p, iov->iov_base, cnt);
    iov->iov_base = static_cast<char*>(iov->iov_base) + cnt;
    iov->iov_len -= cnt;
    uio->uio_resid -= cnt;
    uio->uio_offset += cnt;
    p += cnt;
    n -= cnt;
  }
  return 0;
}

}  // namespace uk
