// Socket system calls. Mirrors FreeBSD's sys/kern/uipc_syscalls.c: argument
// checking (EFAULT, EINVAL, ENOTSOCK, EBADF) happens here, semantics in the
// socket layer.
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstring>
#include <vector>

#include "sys/kern/kern_proc.h"
#include "sys/kern/kernel.h"
#include "sys/kern/syscalls.h"
#include "sys/kern/uipc_socket.h"

namespace uk {

namespace {

constexpr int kUioMaxIov = 1024;  // UIO_MAXIOV

// getsock(): the socket behind fd. EBADF / ENOTSOCK.
int getsock(uk_proc* p, int fd, RefPtr<socket>* out) {
  RefPtr<file> fp;
  if (int e = p->fd.fget(fd, &fp)) return e;
  if (fp->f_type != DTYPE_SOCKET) return ENOTSOCK;
  *out = RefPtr<socket>(static_cast<socket*>(fp.get()));
  return 0;
}

// Copies a socket address out as FreeBSD's kern_getsockname: the caller's
// *alen bounds the copy, *alen is set to the real length.
int copyout_sockaddr(const sockaddr_in& sin, sockaddr* a, socklen_t* alen) {
  if (alen == nullptr) return EFAULT;
  if (static_cast<int>(*alen) < 0) return EINVAL;
  socklen_t n = std::min<socklen_t>(*alen, sizeof(sin));
  if (n > 0 && a == nullptr) return EFAULT;
  if (n > 0) memcpy(a, &sin, n);
  *alen = sizeof(sin);
  return 0;
}

// Builds a uio over a user iovec array (copyinuio's checks).
int iov_to_uio(const iovec* iov, size_t iovlen, std::vector<iovec>* copy,
               uio* u, uio_rw rw) {
  if (iovlen > static_cast<size_t>(kUioMaxIov)) return EMSGSIZE;
  if (iovlen > 0 && iov == nullptr) return EFAULT;
  copy->assign(iov, iov + iovlen);
  ssize_t total = 0;
  for (const iovec& v : *copy) {
    if (v.iov_len > static_cast<size_t>(SSIZE_MAX - total)) return EINVAL;
    if (v.iov_len > 0 && v.iov_base == nullptr) return EFAULT;
    total += v.iov_len;
  }
  u->uio_iov = copy->data();
  u->uio_iovcnt = static_cast<int>(copy->size());
  u->uio_offset = 0;
  u->uio_resid = total;
  u->uio_rw = rw;
  return 0;
}

}  // namespace

int sys_socket(uk_proc* p, int domain, int type, int protocol, int* fd) {
  int flags = type & (SOCK_NONBLOCK | SOCK_CLOEXEC);
  type &= ~(SOCK_NONBLOCK | SOCK_CLOEXEC);
  RefPtr<socket> so;
  if (int e = socreate(*p->k, domain, type, protocol, &so)) return e;
  if (flags & SOCK_NONBLOCK) so->f_flag.fetch_or(O_NONBLOCK);
  int error = p->fd.falloc(RefPtr<file>(so.get()), fd);
  if (error) soclose(so.get());
  return error;
}

int sys_bind(uk_proc* p, int s, const sockaddr* a, socklen_t alen) {
  RefPtr<socket> so;
  if (int e = getsock(p, s, &so)) return e;
  return sobind(so.get(), a, alen);
}

int sys_listen(uk_proc* p, int s, int backlog) {
  RefPtr<socket> so;
  if (int e = getsock(p, s, &so)) return e;
  return solisten(so.get(), backlog);
}

int sys_accept(uk_proc* p, int s, sockaddr* a, socklen_t* alen, int* fd) {
  RefPtr<socket> head;
  if (int e = getsock(p, s, &head)) return e;
  if (a != nullptr) {
    if (alen == nullptr) return EFAULT;
    if (static_cast<int>(*alen) < 0) return EINVAL;
  }
  if (!head->has_listen_queue()) return EINVAL;
  RefPtr<socket> so;
  sockaddr_in sin{};
  if (int e = soaccept(head.get(), so_nonblocking(head.get()), &so, &sin))
    return e;
  if (a != nullptr) {
    if (int e = copyout_sockaddr(sin, a, alen)) {
      soclose(so.get());
      return e;
    }
  }
  int error = p->fd.falloc(RefPtr<file>(so.get()), fd);
  if (error) soclose(so.get());
  return error;
}

int sys_connect(uk_proc* p, int s, const sockaddr* a, socklen_t alen) {
  RefPtr<socket> so;
  if (int e = getsock(p, s, &so)) return e;
  return soconnect(so.get(), a, alen);
}

int sys_getsockname(uk_proc* p, int s, sockaddr* a, socklen_t* alen) {
  RefPtr<socket> so;
  if (int e = getsock(p, s, &so)) return e;
  if (alen == nullptr) return EFAULT;
  if (static_cast<int>(*alen) < 0) return EINVAL;
  sockaddr_in sin{};
  if (int e = so->so_proto->pr_sockaddr(so.get(), &sin)) return e;
  return copyout_sockaddr(sin, a, alen);
}

int sys_getpeername(uk_proc* p, int s, sockaddr* a, socklen_t* alen) {
  RefPtr<socket> so;
  if (int e = getsock(p, s, &so)) return e;
  if (alen == nullptr) return EFAULT;
  if (static_cast<int>(*alen) < 0) return EINVAL;
  if ((so->so_state.load() & (SS_ISCONNECTED | SS_ISCONFIRMING)) == 0)
    return ENOTCONN;
  sockaddr_in sin{};
  if (int e = so->so_proto->pr_peeraddr(so.get(), &sin)) return e;
  return copyout_sockaddr(sin, a, alen);
}

int sys_setsockopt(uk_proc* p, int s, int level, int name, const void* v,
                   socklen_t len) {
  RefPtr<socket> so;
  if (int e = getsock(p, s, &so)) return e;
  if (v == nullptr && len != 0) return EFAULT;
  if (static_cast<int>(len) < 0) return EINVAL;
  sockopt sopt{sockopt::SOPT_SET, level, name, const_cast<void*>(v), len};
  return sosetopt(so.get(), &sopt);
}

int sys_getsockopt(uk_proc* p, int s, int level, int name, void* v,
                   socklen_t* len) {
  RefPtr<socket> so;
  if (int e = getsock(p, s, &so)) return e;
  if (len == nullptr) return EFAULT;
  if (static_cast<int>(*len) < 0) return EINVAL;
  if (v == nullptr && *len != 0) return EFAULT;
  sockopt sopt{sockopt::SOPT_GET, level, name, v, *len};
  int error = sogetopt(so.get(), &sopt);
  if (error == 0) *len = static_cast<socklen_t>(sopt.sopt_valsize);
  return error;
}

int sys_sendmsg(uk_proc* p, int s, const msghdr* msg, int flags, ssize_t* n) {
  RefPtr<socket> so;
  if (int e = getsock(p, s, &so)) return e;
  if (msg == nullptr) return EFAULT;
  std::vector<iovec> iov;
  uio u;
  if (int e = iov_to_uio(msg->msg_iov, msg->msg_iovlen, &iov, &u, UIO_WRITE))
    return e;
  const sockaddr* to = nullptr;
  if (msg->msg_name != nullptr) {
    if (msg->msg_namelen < sizeof(sockaddr_in)) return EINVAL;
    to = static_cast<const sockaddr*>(msg->msg_name);
    if (to->sa_family != AF_INET) return EAFNOSUPPORT;
  } else if (msg->msg_namelen != 0) {
    return EFAULT;
  }
  mbuf* control = nullptr;
  if (msg->msg_controllen != 0) {
    // sockargs(MT_CONTROL): a cmsghdr at least, at most a cluster.
    if (msg->msg_control == nullptr) return EFAULT;
    if (msg->msg_controllen < sizeof(cmsghdr) ||
        msg->msg_controllen > static_cast<size_t>(MCLBYTES))
      return EINVAL;
    control = msg->msg_controllen > static_cast<size_t>(MLEN)
                  ? m_getcl(*p->k, M_WAITOK, MT_CONTROL, 0)
                  : m_get(*p->k, M_WAITOK, MT_CONTROL);
    if (control == nullptr) return ENOBUFS;
    memcpy(mtod(control), msg->msg_control, msg->msg_controllen);
    control->m_len = static_cast<int>(msg->msg_controllen);
    // Every cmsg must lie inside the buffer (FreeBSD checks in the
    // protocol; malformed lengths are EINVAL).
    // mbuf data need not be 8-byte aligned: headers are read by copy.
    size_t pos = 0, total = control->m_len;
    while (pos < total) {
      cmsghdr cm;
      size_t left = total - pos;
      if (left < sizeof(cmsghdr)) {
        m_freem(control);
        return EINVAL;
      }
      memcpy(&cm, mtod(control) + pos, sizeof cm);
      if (cm.cmsg_len < sizeof(cmsghdr) || cm.cmsg_len > left) {
        m_freem(control);
        return EINVAL;
      }
      pos += CMSG_ALIGN(cm.cmsg_len);
    }
  }
  ssize_t len = u.uio_resid;
  int error = sosend(so.get(), to, &u, nullptr, control, flags);
  // Partial progress wins over an interruption-style error, as
  // kern_sendit does for ERESTART/EINTR/EWOULDBLOCK.
  if (error != 0 && u.uio_resid != len &&
      (error == EWOULDBLOCK || error == EINTR))
    error = 0;
  if (error == 0) *n = len - u.uio_resid;
  return error;
}

int sys_recvmsg(uk_proc* p, int s, msghdr* msg, int flags, ssize_t* n) {
  RefPtr<socket> so;
  if (int e = getsock(p, s, &so)) return e;
  if (msg == nullptr) return EFAULT;
  std::vector<iovec> iov;
  uio u;
  if (int e = iov_to_uio(msg->msg_iov, msg->msg_iovlen, &iov, &u, UIO_READ))
    return e;
  if (msg->msg_controllen != 0 && msg->msg_control == nullptr) return EFAULT;
  ssize_t len = u.uio_resid;
  mbuf* control = nullptr;
  int rflags = flags;
  int error = soreceive(so.get(), &u, msg->msg_control ? &control : nullptr,
                        &rflags);
  if (error != 0 && u.uio_resid != len &&
      (error == EWOULDBLOCK || error == EINTR))
    error = 0;
  // TCP has no source address to report.
  msg->msg_namelen = 0;
  int outflags = rflags & (MSG_EOR | MSG_TRUNC | MSG_CTRUNC);
  if (msg->msg_control != nullptr) {
    // Copy whole cmsgs while they fit; MSG_CTRUNC when one does not.
    size_t room = msg->msg_controllen, used = 0;
    for (mbuf* m = control; m != nullptr; m = m->m_next) {
      if (static_cast<size_t>(m->m_len) > room - used) {
        outflags |= MSG_CTRUNC;
        break;
      }
      memcpy(static_cast<char*>(msg->msg_control) + used, mtod(m), m->m_len);
      used += m->m_len;
    }
    msg->msg_controllen = used;
  } else if (control != nullptr) {
    outflags |= MSG_CTRUNC;
  }
  m_freem(control);
  msg->msg_flags = outflags;
  if (error == 0) *n = len - u.uio_resid;
  return error;
}

int sys_shutdown(uk_proc* p, int s, int how) {
  RefPtr<socket> so;
  if (int e = getsock(p, s, &so)) return e;
  return soshutdown(so.get(), how);
}

}  // namespace uk
