// The system calls, kernel side. Each returns 0 or an errno and passes its
// result through *retval, as FreeBSD's sys_*() do with td->td_retval;
// lib/libuk/uk.cc turns that into -1 + errno, in one place.
//
// Where each lives: sockets in uipc_syscalls.cc, files and poll in
// sys_generic.cc / kern_descrip.cc, kqueue in kern_event.cc, sendfile in kern_sendfile.cc, sysctl in
// kern_sysctl.cc, kld in kern_linker.cc, interfaces in net/if.cc.
#ifndef UKTLS_SYS_KERN_SYSCALLS_H_
#define UKTLS_SYS_KERN_SYSCALLS_H_

#include <poll.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <time.h>

#include <cstddef>

#include "sys/sys/event.h"

struct uk_proc;
struct uk_sf_hdtr;

namespace uk {

struct kernel;

int sys_socket(uk_proc* p, int domain, int type, int protocol, int* fd);
int sys_bind(uk_proc* p, int s, const sockaddr* a, socklen_t alen);
int sys_listen(uk_proc* p, int s, int backlog);
int sys_accept(uk_proc* p, int s, sockaddr* a, socklen_t* alen, int* fd);
int sys_connect(uk_proc* p, int s, const sockaddr* a, socklen_t alen);
int sys_getsockname(uk_proc* p, int s, sockaddr* a, socklen_t* alen);
int sys_getpeername(uk_proc* p, int s, sockaddr* a, socklen_t* alen);
int sys_setsockopt(uk_proc* p, int s, int level, int name, const void* v,
                   socklen_t len);
int sys_getsockopt(uk_proc* p, int s, int level, int name, void* v,
                   socklen_t* len);
int sys_sendmsg(uk_proc* p, int s, const msghdr* msg, int flags, ssize_t* n);
int sys_recvmsg(uk_proc* p, int s, msghdr* msg, int flags, ssize_t* n);
int sys_shutdown(uk_proc* p, int s, int how);

int sys_read(uk_proc* p, int fd, void* buf, size_t len, ssize_t* n);
int sys_write(uk_proc* p, int fd, const void* buf, size_t len, ssize_t* n);
int sys_close(uk_proc* p, int fd);
int sys_fcntl(uk_proc* p, int fd, int cmd, long arg, int* ret);
int sys_poll(uk_proc* p, pollfd* fds, nfds_t n, int timeout_ms, int* nready);
// kqueue(2), kevent(2): sys/kern/kern_event.cc.
int sys_kqueue(uk_proc* p, int* fd);
int sys_kevent(uk_proc* p, int kq, const struct kevent* changelist,
               int nchanges, struct kevent* eventlist, int nevents,
               const struct timespec* timeout, int* nready);

int sys_open(uk_proc* p, const char* path, int flags, int mode, int* fd);
int sys_pwrite(uk_proc* p, int fd, const void* buf, size_t len, off_t off,
               ssize_t* n);
int sys_pread(uk_proc* p, int fd, void* buf, size_t len, off_t off, ssize_t* n);
int sys_ftruncate(uk_proc* p, int fd, off_t len);

int sys_sendfile(uk_proc* p, int fd, int s, off_t offset, size_t nbytes,
                 uk_sf_hdtr* hdtr, off_t* sbytes, int flags);

int sys_sysctlbyname(uk_proc* p, const char* name, void* oldp, size_t* oldlenp,
                     const void* newp, size_t newlen);
int sys_kldload(uk_proc* p, const char* module, int* fileid);
int sys_kldunload(uk_proc* p, int fileid);
int sys_kldfind(uk_proc* p, const char* module, int* fileid);

int if_ifconfig(kernel& k, const char* ifname, const char* args);
int if_wire(kernel& a, const char* ifa, kernel& b, const char* ifb,
            const char* params);

}  // namespace uk

#endif  // UKTLS_SYS_KERN_SYSCALLS_H_
