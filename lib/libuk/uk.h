/*
 * uktls: the userland API of a user-mode FreeBSD kernel with kernel TLS.
 *
 * A program boots one or more kernels with uk_boot(), creates processes in
 * them with uk_proc_create(), and makes system calls with the uk_* functions
 * below, which take the process first and otherwise have the FreeBSD system
 * call's arguments and semantics. On failure they return -1 and set errno
 * (host errno values with FreeBSD's meaning). See ../../docs/ and API.md.
 */
#ifndef UKTLS_LIB_LIBUK_UK_H_
#define UKTLS_LIB_LIBUK_UK_H_

#include <linux/tls.h>
#include <netinet/in.h>
#include <poll.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <time.h>

#include "sys/opencrypto/cryptodev.h"
#include "sys/sys/event.h" /* struct kevent, EV_*, EVFILT_*, NOTE_LOWAT */
#include "sys/sys/ktls.h"

#ifndef TCP_ULP
#define TCP_ULP 31
#endif
#ifndef SOL_TLS
#define SOL_TLS 282
#endif

#ifdef __cplusplus
extern "C" {
#endif

struct uk_kernel; /* one booted kernel; many may live in one process */
struct uk_proc;   /* a process inside a kernel: owns an fd table */

struct uk_boot_config { /* all-zero means defaults */
  const char* hostname;   /* default "uk" */
  int ncpus;              /* emulated CPUs = KTLS/crypto workers; 0 = host cores */
  const char* modules;    /* comma list loaded at boot; NULL = default set, "" = none */
  const char* tunables;   /* "name=value,..." applied before modules start */
};

/* Boots a kernel; NULL + errno on failure. cfg may be NULL. */
struct uk_kernel* uk_boot(const struct uk_boot_config* cfg);
/* Stops every thread and frees everything, including processes not yet
   destroyed. 0 or -1 + errno. */
int uk_halt(struct uk_kernel* k);
struct uk_proc* uk_proc_create(struct uk_kernel* k, const char* comm);
void uk_proc_destroy(struct uk_proc* p); /* closes its descriptors */

/* System calls. */
int uk_socket(struct uk_proc* p, int domain, int type, int protocol);
int uk_bind(struct uk_proc* p, int s, const struct sockaddr* a, socklen_t alen);
int uk_listen(struct uk_proc* p, int s, int backlog);
int uk_accept(struct uk_proc* p, int s, struct sockaddr* a, socklen_t* alen);
int uk_connect(struct uk_proc* p, int s, const struct sockaddr* a, socklen_t alen);
int uk_getsockname(struct uk_proc* p, int s, struct sockaddr* a, socklen_t* alen);
int uk_getpeername(struct uk_proc* p, int s, struct sockaddr* a, socklen_t* alen);
int uk_setsockopt(struct uk_proc* p, int s, int level, int name, const void* v,
                  socklen_t len);
int uk_getsockopt(struct uk_proc* p, int s, int level, int name, void* v,
                  socklen_t* len);
ssize_t uk_send(struct uk_proc* p, int s, const void* buf, size_t len, int flags);
ssize_t uk_sendto(struct uk_proc* p, int s, const void* buf, size_t len, int flags,
                  const struct sockaddr* to, socklen_t tolen);
ssize_t uk_sendmsg(struct uk_proc* p, int s, const struct msghdr* msg, int flags);
ssize_t uk_recv(struct uk_proc* p, int s, void* buf, size_t len, int flags);
ssize_t uk_recvmsg(struct uk_proc* p, int s, struct msghdr* msg, int flags);
ssize_t uk_read(struct uk_proc* p, int fd, void* buf, size_t len);
ssize_t uk_write(struct uk_proc* p, int fd, const void* buf, size_t len);
int uk_shutdown(struct uk_proc* p, int s, int how);
int uk_close(struct uk_proc* p, int fd);
int uk_fcntl(struct uk_proc* p, int fd, int cmd, long arg); /* F_GETFL, F_SETFL */
int uk_poll(struct uk_proc* p, struct pollfd* fds, nfds_t n, int timeout_ms);
/* FreeBSD kqueue(2)/kevent(2) with FreeBSD 12's struct kevent (from
   sys/sys/event.h): EVFILT_READ and EVFILT_WRITE on sockets. The kqueue is
   a descriptor, closed with uk_close(). */
int uk_kqueue(struct uk_proc* p);
int uk_kevent(struct uk_proc* p, int kq, const struct kevent* changelist,
              int nchanges, struct kevent* eventlist, int nevents,
              const struct timespec* timeout);

/* Files, for sendfile: a memory file system (tmpfs) is mounted at "/". */
int uk_open(struct uk_proc* p, const char* path, int flags, int mode);
ssize_t uk_pwrite(struct uk_proc* p, int fd, const void* buf, size_t len, off_t off);
ssize_t uk_pread(struct uk_proc* p, int fd, void* buf, size_t len, off_t off);
int uk_ftruncate(struct uk_proc* p, int fd, off_t len);

/* FreeBSD sendfile(2); hdtr may be NULL; flags as FreeBSD (0 is fine). */
struct uk_sf_hdtr {
  struct iovec* headers;
  int hdr_cnt;
  struct iovec* trailers;
  int trl_cnt;
};
int uk_sendfile(struct uk_proc* p, int fd, int s, off_t offset, size_t nbytes,
                struct uk_sf_hdtr* hdtr, off_t* sbytes, int flags);

int uk_sysctlbyname(struct uk_proc* p, const char* name, void* oldp,
                    size_t* oldlenp, const void* newp, size_t newlen);
int uk_kldload(struct uk_proc* p, const char* module); /* returns a file id */
int uk_kldunload(struct uk_proc* p, int fileid);       /* EBUSY while in use */
int uk_kldfind(struct uk_proc* p, const char* module);

/* Networks between kernels. ifconfig(8) syntax: "create",
   "inet 10.0.0.1/24 up", "txtls", "-txtls", "txtlsrtlmt", "rxtls", "-rxtls",
   "toe", "-toe", "mtu 1500", "destroy". */
int uk_ifconfig(struct uk_kernel* k, const char* ifname, const char* args);
/* Connects two simulated NIC ports with a cable. params: space-separated
   key=value: bw=10g delay=20us loss=0.001 reorder=0 seed=1 */
int uk_wire(struct uk_kernel* a, const char* ifa, struct uk_kernel* b,
            const char* ifb, const char* params);

#ifdef __cplusplus
}
#endif

#endif /* UKTLS_LIB_LIBUK_UK_H_ */
