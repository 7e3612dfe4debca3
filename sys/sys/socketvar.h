// Sockets (struct socket) and protocol switch entries (struct protosw), as
// FreeBSD's sys/sys/socketvar.h and sys/sys/protosw.h. A socket is a file
// (DTYPE_SOCKET): its fileops are the socket layer's read/write/poll/close.
//
// Lifetime: a socket is reference counted (through struct file). References
// are held by descriptors, by an in-flight system call, by the listen queue
// it sits on and by its protocol control block (inp_socket) until the
// protocol detaches. so_pcb holds a reference on the pcb.
//
// Locking, in order: the protocol's pcb lock (inpcb) -> so_lock ->
// so_rcv.sb_mtx or so_snd.sb_mtx -> ListenQueue::mu -> kqueue kq_mtx ->
// SelWait.
//  - so_lock guards state transitions (so_state is written under it, and
//    read lock-free as an atomic for sleep conditions; every writer then
//    wakes the sleepers under the sockbuf locks so no wakeup is lost).
//  - so_error is an atomic written by the protocol (pcb lock held).
//  - A connect() sleeper waits on so_cv under so_lock.
#ifndef UKTLS_SYS_SYS_SOCKETVAR_H_
#define UKTLS_SYS_SYS_SOCKETVAR_H_

#include <netinet/in.h>
#include <sys/socket.h>

#include <atomic>
#include <deque>
#include <list>
#include <memory>

#include "sys/kern/kern_descrip.h"
#include "sys/sys/lock.h"
#include "sys/sys/mbuf.h"
#include "sys/sys/refcount.h"
#include "sys/sys/sockbuf.h"

namespace uk {

struct kernel;
struct socket;
struct inpcb;

// so_state (FreeBSD SS_*).
enum : int {
  SS_ISCONNECTED = 0x0002,
  SS_ISCONNECTING = 0x0004,
  SS_ISDISCONNECTING = 0x0008,
  SS_NBIO = 0x0100,
  SS_ISCONFIRMING = 0x0400,
  SS_ISDISCONNECTED = 0x2000,
  SS_NOFDREF = 0x0001,  // no file descriptor refers to the socket any more
};

// so_options bits: FreeBSD's SO_* values, which are bits (the host's SO_*
// option names are mapped onto them by sosetopt).
enum : int {
  SOF_DEBUG = 0x0001,
  SOF_ACCEPTCONN = 0x0002,
  SOF_REUSEADDR = 0x0004,
  SOF_KEEPALIVE = 0x0008,
  SOF_DONTROUTE = 0x0010,
  SOF_BROADCAST = 0x0020,
  SOF_LINGER = 0x0080,
  SOF_OOBINLINE = 0x0100,
  SOF_REUSEPORT = 0x0200,
  SOF_NOSIGPIPE = 0x0800,
};

// pr_send flags (FreeBSD PRUS_*).
enum : int {
  PRUS_OOB = 0x1,
  PRUS_EOF = 0x2,
  PRUS_MORETOCOME = 0x4,
  PRUS_NOTREADY = 0x8,
  PRUS_IPV6 = 0x10,
};

// pr_flags.
enum : int {
  PR_ATOMIC = 0x01,
  PR_ADDR = 0x02,
  PR_CONNREQUIRED = 0x04,
  PR_WANTRCVD = 0x08,
  PR_RIGHTS = 0x10,
  PR_IMPLOPCL = 0x20,  // implied open/close: sendto() connects
};

// A socket option request (FreeBSD struct sockopt).
struct sockopt {
  enum { SOPT_SET, SOPT_GET } sopt_dir;
  int sopt_level;
  int sopt_name;
  void* sopt_val;      // user buffer (may be null)
  size_t sopt_valsize; // in: size of sopt_val; out (get): bytes produced
};
// Copies in exactly |minlen| bytes of the option value (sooptcopyin):
// EINVAL if shorter, EFAULT for a null buffer.
int sooptcopyin(const sockopt* sopt, void* buf, size_t len, size_t minlen);
// Copies out up to sopt_valsize bytes (sooptcopyout).
int sooptcopyout(sockopt* sopt, const void* buf, size_t len);

// The protocol switch: what the socket layer calls (pr_usrreqs merged in,
// as FreeBSD 14's protosw).
struct protosw {
  short pr_type;
  short pr_protocol;
  int pr_flags;
  int (*pr_attach)(socket* so, int proto);
  void (*pr_detach)(socket* so);
  int (*pr_bind)(socket* so, const sockaddr* nam);
  int (*pr_listen)(socket* so, int backlog);
  int (*pr_connect)(socket* so, const sockaddr* nam);
  int (*pr_accept)(socket* so, sockaddr_in* nam);
  int (*pr_disconnect)(socket* so);
  int (*pr_shutdown)(socket* so);
  // Takes ownership of m and control (either may be null).
  int (*pr_send)(socket* so, int flags, mbuf* m, const sockaddr* nam,
                 mbuf* control);
  // Marks |count| not-ready units starting at m ready (sbready) and lets
  // the protocol send them. Used by KTLS workers and sendfile.
  int (*pr_ready)(socket* so, mbuf* m, int count);
  void (*pr_rcvd)(socket* so, int flags);
  void (*pr_abort)(socket* so);
  void (*pr_close)(socket* so);
  int (*pr_sockaddr)(socket* so, sockaddr_in* nam);
  int (*pr_peeraddr)(socket* so, sockaddr_in* nam);
  int (*pr_ctloutput)(socket* so, sockopt* sopt);
};

// The listen queue of a listening socket (FreeBSD's sol_comp/sol_incomp).
// Shared by the listener and the sockets queued on it, so a child can reach
// it whatever the listener is doing. mu is a leaf below every pcb lock.
struct ListenQueue {
  Mutex mu;
  CondVar cv;  // accept() sleepers
  std::deque<RefPtr<socket>> comp ABSL_GUARDED_BY(mu);    // established
  std::list<RefPtr<socket>> incomp ABSL_GUARDED_BY(mu);   // handshaking
  int qlimit ABSL_GUARDED_BY(mu) = 0;
  bool closed ABSL_GUARDED_BY(mu) = false;
  // kqueue EVFILT_READ knotes of the listener (sys/kern/kern_event.h).
  knlist sol_sel ABSL_GUARDED_BY(mu);
};

// Where a socket sits on its listener's queue.
enum so_qstate { SQ_NONE = 0, SQ_INCOMP = 1, SQ_COMP = 2 };

struct socket final : file {
  explicit socket(kernel& k);
  ~socket() override;

  // fileops.
  int fo_read(uio& u, int flags) override;
  int fo_write(uio& u, int flags) override;
  int fo_poll(int events) override;
  int fo_close() override;

  kernel& so_k;
  short so_type = 0;
  const protosw* so_proto = nullptr;

  Mutex so_lock;
  CondVar so_cv;  // connect() sleepers
  std::atomic<int> so_state{0};
  std::atomic<int> so_options{0};  // SO_* option bits
  std::atomic<int> so_error{0};
  std::atomic<int> so_linger{0};   // seconds, with SO_LINGER in so_options
  // SO_MAX_PACING_RATE in bytes/s; UINT32_MAX (FreeBSD's -1) = unpaced.
  std::atomic<uint32_t> so_max_pacing_rate{UINT32_MAX};

  // The protocol's pcb, with a reference (tcp: inpcb).
  inpcb* so_pcb = nullptr;

  // Listening: the queue of new connections. Made by the first listen(2)
  // (under the pcb lock) and never replaced or cleared, so readers need no
  // lock: they see it once it is published (release/acquire on sol_qp_).
  bool has_listen_queue() const {
    return sol_qp_.load(std::memory_order_acquire) != nullptr;
  }
  std::shared_ptr<ListenQueue> listen_queue() const {
    return has_listen_queue() ? sol_q_ : nullptr;
  }
  // solisten: the queue, made and published on the first call.
  ListenQueue* make_listen_queue() {
    if (!sol_q_) {
      sol_q_ = std::make_shared<ListenQueue>();
      sol_qp_.store(sol_q_.get(), std::memory_order_release);
    }
    return sol_q_.get();
  }
  // Queued on a listener: its queue and where on it (guarded by
  // so_lq->mu).
  std::shared_ptr<ListenQueue> so_lq;
  so_qstate so_qstate_ = SQ_NONE;
  std::shared_ptr<ListenQueue> sol_q_;  // see listen_queue()
  std::atomic<ListenQueue*> sol_qp_{nullptr};

  sockbuf so_rcv;
  sockbuf so_snd;

  // An upper-layer protocol attached with Linux's TCP_ULP (the "tls" ULP of
  // sys/compat/linux); set once under so_lock, freed with the socket.
  std::shared_ptr<void> so_ulp;
};

// Socket layer (sys/kern/uipc_socket.cc).
int socreate(kernel& k, int dom, int type, int proto, RefPtr<socket>* out);
int sobind(socket* so, const sockaddr* nam, socklen_t len);
int solisten(socket* so, int backlog);
int soconnect(socket* so, const sockaddr* nam, socklen_t len);
// Waits (unless non-blocking) for a completed connection and dequeues it.
int soaccept(socket* head, bool nonblock, RefPtr<socket>* out,
             sockaddr_in* nam);
int soshutdown(socket* so, int how);
int soclose(socket* so);
void soabort(socket* so);
// Sends; top (sendfile's chain) or uio supplies the data; control is
// consumed. Returns 0 or an errno; uio->uio_resid reports progress.
int sosend(socket* so, const sockaddr* addr, uio* uio, mbuf* top,
           mbuf* control, int flags);
int sosend_generic(socket* so, const sockaddr* addr, uio* uio, mbuf* top,
                   mbuf* control, int flags);
// Receives into uio; *controlp gets the control mbufs (caller frees) if
// controlp is non-null; *flagsp in/out MSG_* flags.
int soreceive(socket* so, uio* uio, mbuf** controlp, int* flagsp);
int soreceive_stream(socket* so, uio* uio, mbuf** controlp, int* flagsp);
int soreceive_generic(socket* so, uio* uio, mbuf** controlp, int* flagsp);
int sosetopt(socket* so, sockopt* sopt);
int sogetopt(socket* so, sockopt* sopt);
int sopoll(socket* so, int events);
bool so_nonblocking(const socket* so);

// Protocol-side state changes (pcb lock held).
void soisconnecting(socket* so);
void soisconnected(socket* so);
void soisdisconnecting(socket* so);
void soisdisconnected(socket* so);
void socantsendmore(socket* so);
void socantrcvmore(socket* so);
void socantrcvmore_locked(socket* so) ABSL_UNLOCK_FUNCTION(so->so_rcv.sb_mtx);
// A new socket for a connection arriving on listener head, put on its
// incomplete queue (FreeBSD sonewconn). Null when the queue is full
// (listen queue overflow) or memory is short.
RefPtr<socket> sonewconn(socket* head);
// Wakes readers / writers; the _locked forms drop the sockbuf lock.
void sorwakeup(socket* so);
void sowwakeup(socket* so);
void sorwakeup_locked(socket* so) ABSL_UNLOCK_FUNCTION(so->so_rcv.sb_mtx);
void sowwakeup_locked(socket* so) ABSL_UNLOCK_FUNCTION(so->so_snd.sb_mtx);
// sowwakeup_locked() for an ACK that freed room: a thread asleep in
// sbwait() for more room than there now is stays asleep.
void sowwakeup_acked_locked(socket* so) ABSL_UNLOCK_FUNCTION(so->so_snd.sb_mtx);
// Wakes anyone waiting on the socket for any reason (errors, state).
void sowakeup_all(socket* so);

}  // namespace uk

#endif  // UKTLS_SYS_SYS_SOCKETVAR_H_
