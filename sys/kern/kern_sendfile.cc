// sendfile(2): file pages go to the socket by reference, as FreeBSD's
// sys/kern/kern_sendfile.c. The file's tmpfs pages are put, read-only and
// not anonymous, into M_EXTPG mbufs; on a KTLS socket each such mbuf is one
// record (at most max_frame_len bytes, split at page boundaries), framed and
// encrypted by the KTLS worker into new pages, so the file is never written.
// Headers and trailers are sent as ordinary writes (kern_writev).
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>

#include "sys/kern/kern_proc.h"
#include "sys/kern/syscalls.h"
#include "sys/kern/tmpfs.h"
#include "sys/kern/uipc_ktls.h"
#include "sys/kern/uipc_socket.h"
#include "sys/sys/mbuf.h"
#include "sys/sys/socketvar.h"

// lib/libuk/uk.h's struct, repeated token for token (the kernel does not
// include the userland header).
struct uk_sf_hdtr {
  struct iovec* headers;
  int hdr_cnt;
  struct iovec* trailers;
  int trl_cnt;
};

namespace uk {

namespace {

// Writes an iovec list with sosend (headers and trailers).
int sendfile_iov(socket* so, const iovec* iov, int cnt, off_t* sent) {
  if (iov == nullptr || cnt <= 0) return 0;
  if (cnt > 1024) return EINVAL;
  uio u;
  u.uio_iov = const_cast<iovec*>(iov);
  u.uio_iovcnt = cnt;
  u.uio_rw = UIO_WRITE;
  ssize_t total = 0;
  for (int i = 0; i < cnt; i++) total += iov[i].iov_len;
  u.uio_resid = total;
  if (total == 0) return 0;
  int error = sosend(so, nullptr, &u, nullptr, nullptr, 0);
  *sent += total - u.uio_resid;
  return error;
}

// One M_EXTPG mbuf holding len bytes of the file at off, by reference.
mbuf* sendfile_pages(kernel& k, vnode* vp, off_t off, int len, int* error) {
  mbuf* m = mb_alloc_ext_pgs(k, M_NOWAIT, /*anon=*/false);
  if (m == nullptr) {
    *error = ENOBUFS;
    return nullptr;
  }
  int pgoff = static_cast<int>(off & PAGE_MASK);
  int npgs = static_cast<int>((pgoff + len + PAGE_MASK) >> PAGE_SHIFT);
  if ((*error = vp->getpages(off >> PAGE_SHIFT, npgs, m->m_epg_pa)) != 0) {
    m_free(m);
    return nullptr;
  }
  m->m_epg_npgs = static_cast<uint8_t>(npgs);
  m->m_epg_1st_off = static_cast<uint16_t>(pgoff);
  m->m_epg_last_len = static_cast<uint16_t>(
      npgs == 1 ? len : pgoff + len - (npgs - 1) * static_cast<int>(PAGE_SIZE));
  m->m_len = len;
  return m;
}

// The file part: as much as the send buffer takes per round.
int sendfile_file(kernel& k, socket* so, vnode* vp, off_t off, off_t end,
                  off_t* sent) ABSL_NO_THREAD_SAFETY_ANALYSIS {
  sockbuf* sb = &so->so_snd;
  const bool nonblock = so_nonblocking(so);
  while (off < end) {
    if (nonblock) {
      if (!sb->sb_iolock.TryLock()) return EAGAIN;
    } else {
      sb->sb_iolock.Lock();
    }
    long space = 0;
    RefPtr<ktls_session> tls;
    int error = 0;
    const off_t rem = end - off;
    // sendfile_wait_generic. With SB_AUTOLOWAT (cleared by SO_SNDLOWAT) the
    // low-water mark is raised to half the buffer, at least a page, for this
    // and later calls: a non-blocking sender is then told the socket is
    // writable (poll, kevent) only once a sizeable send fits, instead of
    // sending a few bytes per call.
    sb->sb_mtx.Lock();
    if (sb->sb_flags & SB_AUTOLOWAT) {
      sb->sb_lowat = std::max(sb->sb_lowat, sb->sb_hiwat / 2);
      if (sb->sb_lowat < PAGE_SIZE && sb->sb_hiwat >= PAGE_SIZE) sb->sb_lowat = PAGE_SIZE;
    }
    for (;;) {
      tls = RefPtr<ktls_session>(sb->sb_tls_info);
      if (sb->sb_state & SBS_CANTSENDMORE) {
        error = EPIPE;
      } else if (int e = so->so_error.exchange(0)) {
        error = e;
      } else if ((so->so_state.load() & SS_ISCONNECTED) == 0) {
        error = ENOTCONN;
      } else {
        // Waits while the rest does not fit and the room is below sb_lowat
        // (sbwait returns with sb_mtx held again).
        space = sbspace(sb);
        if (space >= rem || (space > 0 && space >= static_cast<long>(sb->sb_lowat))) break;
        if (nonblock)
          error = EAGAIN;
        else if ((error = sbwait_space(sb, std::min<long>(
                                               rem, std::max<long>(sb->sb_lowat, 1)))) == 0)
          continue;
      }
      break;
    }
    sb->sb_mtx.Unlock();
    if (error != 0) {
      sb->sb_iolock.Unlock();
      return error;
    }
    // One mbuf per record on a KTLS socket: at most num_pages(max_frame_len)
    // pages, ending at a page boundary, and never more than max_frame_len
    // bytes (kern.ipc.tls.maxlen below a page gives several records per
    // page); otherwise up to FreeBSD's 5 pages per mbuf.
    const int max_pgs =
        tls ? std::max<int>(1, (tls->params.max_frame_len + PAGE_SIZE - 1) / PAGE_SIZE)
            : MBUF_PEXT_MAX_PGS;
    const off_t max_len = tls ? tls->params.max_frame_len
                              : static_cast<off_t>(max_pgs) * PAGE_SIZE;
    // All of the rest when it fits; otherwise the room rounded down to a
    // page boundary of the file (past a partial first page), so that records
    // are not cut short at whatever the buffer had left.
    off_t todo = space;
    if (todo > rem) {
      todo = rem;
    } else if (todo > static_cast<off_t>(PAGE_SIZE)) {
      const off_t head = (off & PAGE_MASK) ? PAGE_SIZE - (off & PAGE_MASK) : 0;
      todo = ((todo - head) & ~static_cast<off_t>(PAGE_MASK)) + head;
    }
    mbuf* top = nullptr;
    mbuf** tail = &top;
    off_t chunk = 0;
    while (todo > 0) {
      int pgoff = static_cast<int>(off & PAGE_MASK);
      int len = static_cast<int>(std::min<off_t>(
          {todo, static_cast<off_t>(max_pgs * PAGE_SIZE) - pgoff, max_len}));
      mbuf* m = sendfile_pages(k, vp, off, len, &error);
      if (m == nullptr) break;
      *tail = m;
      tail = &m->m_next;
      off += len;
      todo -= len;
      chunk += len;
    }
    if (top != nullptr && error == 0) {
      if (tls && tls->mode != TCP_TLS_MODE_SW) {
        // IFNET: framed records, plaintext and ready; the NIC encrypts.
        int cnt = 0;
        ktls_frame(top, tls.get(), &cnt, TLS_RLTYPE_APP);
        error = so->so_proto->pr_send(so, 0, top, nullptr, nullptr);
      } else if (tls) {
        int cnt = 0;
        ktls_frame(top, tls.get(), &cnt, TLS_RLTYPE_APP);
        error = so->so_proto->pr_send(so, PRUS_NOTREADY, top, nullptr, nullptr);
        if (error != 0) {
          m_freem(top);
        } else {
          so->ref();  // soref, released by the worker
          ktls_enqueue(top, so, cnt);
        }
      } else {
        error = so->so_proto->pr_send(so, 0, top, nullptr, nullptr);
      }
      if (error == 0) *sent += chunk;
    } else {
      m_freem(top);
    }
    sb->sb_iolock.Unlock();
    if (error != 0) return error;
  }
  return 0;
}

}  // namespace

int sys_sendfile(uk_proc* p, int fd, int s, off_t offset, size_t nbytes,
                 uk_sf_hdtr* hdtr, off_t* sbytes, int flags) {
  (void)flags;  // SF_NODISKIO & co.: tmpfs never waits for I/O
  kernel& k = *p->k;
  if (sbytes != nullptr) *sbytes = 0;
  // FreeBSD's order (sendfile(), vn_sendfile()): the offset; the header and
  // trailer vectors (copyinuio: more than UIO_MAXIOV is EINVAL); then fd,
  // which must be open for reading (EBADF) and a regular file (EINVAL);
  // only then the socket (EBADF, ENOTSOCK, EINVAL if not a stream).
  if (offset < 0) return EINVAL;
  if (hdtr != nullptr &&
      ((hdtr->headers != nullptr && (hdtr->hdr_cnt < 0 || hdtr->hdr_cnt > 1024)) ||
       (hdtr->trailers != nullptr && (hdtr->trl_cnt < 0 || hdtr->trl_cnt > 1024))))
    return EINVAL;
  RefPtr<file> fp;
  if (int e = p->fd.fget(fd, &fp)) return e;
  if (!(fp->f_flag.load() & FREAD)) return EBADF;
  vnode* vp = fp->fo_vnode();
  if (vp == nullptr) return EINVAL;  // not a regular file
  RefPtr<file> sfp;
  if (int e = p->fd.fget(s, &sfp)) return e;
  if (sfp->f_type != DTYPE_SOCKET) return ENOTSOCK;
  auto* so = static_cast<socket*>(sfp.get());
  if (so->so_type != SOCK_STREAM) return EINVAL;
  RefPtr<vnode> vhold(vp);

  off_t sent = 0;
  int error = 0;
  if (hdtr != nullptr)
    error = sendfile_iov(so, hdtr->headers, hdtr->hdr_cnt, &sent);
  if (error == 0) {
    off_t size = vp->size();
    off_t end = nbytes == 0 ? size
                            : std::min<off_t>(size, offset + static_cast<off_t>(nbytes));
    if (offset < end) error = sendfile_file(k, so, vp, offset, end, &sent);
  }
  if (error == 0 && hdtr != nullptr)
    error = sendfile_iov(so, hdtr->trailers, hdtr->trl_cnt, &sent);
  if (sbytes != nullptr) *sbytes = sent;
  return error;
}

}  // namespace uk
