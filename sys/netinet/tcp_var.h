// TCP control block and TCP entry points. Mirrors FreeBSD's
// sys/netinet/tcp_var.h, tcp_seq.h and tcp_timer.h.
//
// Locking: a tcpcb is protected by its inpcb's inp_lock. tcp_output,
// tcp_input's per-connection part and the timers all run with it held.
// Socket buffers are touched under their sb_mtx taken inside inp_lock.
//
// Timers: one callout per connection (t_callout, bound to inp_lock) and a
// deadline per timer (t_timers[]); resetting a timer only moves its
// deadline, and the callout is re-armed only when the earliest deadline
// moves earlier, so the per-ACK retransmit-timer reset costs no heap work.
#ifndef UKTLS_SYS_NETINET_TCP_VAR_H_
#define UKTLS_SYS_NETINET_TCP_VAR_H_

#include <cstdint>
#include <list>
#include <vector>

#include "sys/kern/kern_timeout.h"
#include "sys/netinet/in_pcb.h"
#include "sys/netinet/ip_var.h"
#include "sys/netinet/tcp.h"
#include "sys/sys/mbuf.h"
#include "sys/sys/socketvar.h"

namespace uk {

// Sequence arithmetic (tcp_seq.h).
inline bool SEQ_LT(tcp_seq a, tcp_seq b) { return static_cast<int32_t>(a - b) < 0; }
inline bool SEQ_LEQ(tcp_seq a, tcp_seq b) { return static_cast<int32_t>(a - b) <= 0; }
inline bool SEQ_GT(tcp_seq a, tcp_seq b) { return static_cast<int32_t>(a - b) > 0; }
inline bool SEQ_GEQ(tcp_seq a, tcp_seq b) { return static_cast<int32_t>(a - b) >= 0; }
inline tcp_seq SEQ_MIN(tcp_seq a, tcp_seq b) { return SEQ_LT(a, b) ? a : b; }
inline tcp_seq SEQ_MAX(tcp_seq a, tcp_seq b) { return SEQ_GT(a, b) ? a : b; }

// Timers (tcp_timer.h).
enum tcp_timer_num : int {
  TT_DELACK = 0,
  TT_REXMT,
  TT_PERSIST,
  TT_KEEP,
  TT_2MSL,
  TT_N,
};

constexpr int TCP_MAXRXTSHIFT = 12;
constexpr int TCP_RTT_SCALE = 32;  // t_srtt is scaled by 32
constexpr int TCP_RTT_SHIFT = 5;
constexpr int TCP_RTTVAR_SCALE = 16;
constexpr int TCP_RTTVAR_SHIFT = 4;
constexpr int TCPTV_PERSMIN = 5000;   // ms
constexpr int TCPTV_PERSMAX = 60000;  // ms
constexpr int TCPTV_REXMTMAX = 64000; // ms

// t_flags (FreeBSD TF_*).
enum : uint32_t {
  TF_ACKNOW = 0x00000001,
  TF_DELACK = 0x00000002,
  TF_NODELAY = 0x00000004,
  TF_NOOPT = 0x00000008,
  TF_SENTFIN = 0x00000010,
  TF_REQ_SCALE = 0x00000020,
  TF_RCVD_SCALE = 0x00000040,
  TF_SACK_PERMIT = 0x00000200,  // both ends agreed on SACK (RFC 2018)
  TF_NOPUSH = 0x00001000,
  TF_MORETOCOME = 0x00010000,
  TF_LQ_OVERFLOW = 0x00020000,
  TF_LASTIDLE = 0x00040000,
  TF_RXWIN0SENT = 0x00080000,
  TF_FASTRECOVERY = 0x00100000,
  TF_WASFRECOVERY = 0x00200000,
  TF_FORCEDATA = 0x00800000,
  TF_NEEDSYN = 0x00000400,
  TF_NEEDFIN = 0x00000800,
  TF_PREVVALID = 0x00002000,
  TF_TSO = 0x01000000,  // the route's interface does TSO (tcp_mss)
  TF_TOE = 0x02000000,  // offloaded to a TOE (tcp_offload.h)
};

// SACK (tcp_sack.c). At most 4 blocks fit in a segment's options; the
// receiver remembers a few more (MAX_SACK_BLKS), as FreeBSD does.
constexpr int TCP_MAX_SACK = 4;
constexpr int MAX_SACK_BLKS = 6;
constexpr int TCPOLEN_SACK = 8;  // one block (start, end)
constexpr int TCPOLEN_SACK_PERMITTED = 2;

struct sackblk {
  tcp_seq start;
  tcp_seq end;
};

// A hole in the sender's scoreboard: [start, end) not yet SACKed, of which
// [start, rxmit) has been retransmitted in this recovery episode.
struct sackhole {
  tcp_seq start;
  tcp_seq end;
  tcp_seq rxmit;
};

// One out-of-order segment waiting in the reassembly queue.
struct tseg_qent {
  tcp_seq seq;
  int len;
  uint8_t flags;  // TH_FIN
  mbuf* m;        // data only (headers stripped)
};

struct toedev;

struct tcpcb final {
  explicit tcpcb(inpcb* inp);
  ~tcpcb();

  inpcb* t_inpcb;
  int t_state = TCPS_CLOSED;
  uint32_t t_flags = 0;

  // Send sequence space.
  tcp_seq snd_una = 0;   // oldest unacknowledged
  tcp_seq snd_max = 0;   // highest sequence number sent
  tcp_seq snd_nxt = 0;   // next to send
  tcp_seq snd_up = 0;    // urgent pointer
  tcp_seq snd_wl1 = 0;   // seq of last window update
  tcp_seq snd_wl2 = 0;   // ack of last window update
  tcp_seq iss = 0;
  uint32_t snd_wnd = 0;  // peer's window
  uint32_t max_sndwnd = 0;
  uint32_t snd_cwnd = 0;
  uint32_t snd_ssthresh = 0x3fffffff;
  tcp_seq snd_recover = 0;  // NewReno: highest seq sent at recovery start
  int snd_limited = 0;      // segments sent by limited transmit (RFC 3042)
  uint32_t t_bytes_acked = 0;  // congestion avoidance byte count (RFC 3465)
  // Receive sequence space.
  tcp_seq rcv_nxt = 0;
  tcp_seq rcv_adv = 0;   // advertised window edge
  tcp_seq rcv_up = 0;
  tcp_seq irs = 0;
  uint32_t rcv_wnd = 0;
  // Window scaling.
  uint8_t snd_scale = 0;
  uint8_t rcv_scale = 0;
  uint8_t request_r_scale = 0;
  uint8_t requested_s_scale = 0;

  int t_maxseg = TCP_MSS;  // MSS for sending (peer's offer, our limits)
  int t_user_maxseg = 0;   // TCP_MAXSEG set by the user (0: none)
  int t_peer_mss = 0;

  // RTT estimation (ticks = ms), as tcp_xmit_timer.
  int t_srtt = 0;    // scaled by TCP_RTT_SCALE
  int t_rttvar = 0;  // scaled by TCP_RTTVAR_SCALE
  int t_rxtcur = 0;  // current retransmit value (ms)
  int t_rxtshift = 0;
  int64_t t_rtttime = 0;  // when the timed segment was sent (0 = none)
  tcp_seq t_rtseq = 0;
  int t_dupacks = 0;
  int64_t t_rcvtime = 0;  // last time a segment arrived
  int64_t t_starttime = 0;
  int t_softerror = 0;
  int t_keepcnt = 0;
  uint32_t t_rcvbuf_cnt = 0;     // receive autosizing: bytes this period
  int64_t t_rcvbuf_ts = 0;       // ... and when the period began (0: none)

  // Bytes sent for the first time / again (tcp_account_for_send), and NIC
  // TLS state: the send session is IFNET (t_nic_ktls_xmit), and the
  // one-shot retransmit fallback to SW has happened (never cleared).
  uint64_t t_sndbytes = 0;
  uint64_t t_snd_rxt_bytes = 0;
  bool t_nic_ktls_xmit = false;
  bool t_nic_ktls_xmit_dis = false;

  // Previous state for bad-retransmit undo (not used by NewReno here).
  uint32_t snd_cwnd_prev = 0;
  uint32_t snd_ssthresh_prev = 0;

  // SACK, receiver side: blocks to report, the most recent first.
  sackblk sackblks[MAX_SACK_BLKS] = {};
  int rcv_numsacks = 0;
  // SACK, sender side: the scoreboard (holes in [snd_una, snd_fack),
  // ordered), the highest SACKed sequence, and the bytes retransmitted
  // from holes (RFC 6675's scoreboard and HighRxt).
  std::vector<sackhole> snd_holes;
  tcp_seq snd_fack = 0;
  uint32_t sack_bytes_rexmit = 0;

  // Reassembly queue, ordered by seq.
  std::list<tseg_qent> t_segq;
  int t_segqlen = 0;  // bytes queued

  // Timers: deadlines in ticks (0 = off) and the one callout behind them.
  int64_t t_timers[TT_N] = {};
  callout t_callout;
  int64_t t_callout_at = 0;  // deadline the callout is armed for (0 = none)

  // TCP offload (TF_TOE): the device and its per-connection state
  // (FreeBSD's tp->tod and tp->t_toe).
  toedev* tod = nullptr;
  void* t_toe = nullptr;
};

// The protocol switch entry for SOCK_STREAM / IPPROTO_TCP.
extern const protosw tcp_protosw;

// tcp_subr.cc
tcpcb* tcp_newtcpcb(inpcb* inp);
// Drops the connection with errno |error| (RST sent if synchronized).
void tcp_drop(tcpcb* tp, int error) ABSL_EXCLUSIVE_LOCKS_REQUIRED(tp->t_inpcb->inp_lock);
// Closes: state CLOSED, pcb out of the tables, socket told. The inpcb is
// freed (in_pcbfree) when no socket refers to it any more.
void tcp_close(tcpcb* tp) ABSL_EXCLUSIVE_LOCKS_REQUIRED(tp->t_inpcb->inp_lock);
// Sends a bare segment (RST or ACK) outside any connection (tcp_respond).
void tcp_respond(kernel& k, tcpcb* tp, in_addr src, in_addr dst,
                 uint16_t sport, uint16_t dport, tcp_seq ack, tcp_seq seq,
                 uint8_t flags, uint32_t win);
tcp_seq tcp_new_isn(kernel& k);
void tcp_state_change(tcpcb* tp, int newstate);
// The MSS to offer and use on this route (tcp_mssopt / tcp_mss).
int tcp_mssopt(tcpcb* tp);
void tcp_mss(tcpcb* tp, int offer);
// Receive window we can advertise.
long tcp_rcv_space(tcpcb* tp);
void tcp_twstart(tcpcb* tp) ABSL_EXCLUSIVE_LOCKS_REQUIRED(tp->t_inpcb->inp_lock);
// Detaches the socket from a pcb that no longer needs it (tcp_close in
// TIME_WAIT, user close).
void tcp_detach_socket(inpcb* inp) ABSL_EXCLUSIVE_LOCKS_REQUIRED(inp->inp_lock);

// tcp_output.cc. tcp_output() hands an offloaded (TF_TOE) connection to
// its device (tcp_offload_output); tcp_default_output() is the stack's own
// output, which the device runs on its engine thread.
int tcp_output(tcpcb* tp) ABSL_EXCLUSIVE_LOCKS_REQUIRED(tp->t_inpcb->inp_lock);
int tcp_default_output(tcpcb* tp) ABSL_EXCLUSIVE_LOCKS_REQUIRED(tp->t_inpcb->inp_lock);
void tcp_setpersist(tcpcb* tp);

// tcp_input.cc (runs on the netisr thread).
void tcp_input(kernel& k, mbuf* m, int off);

// tcp_reass.cc: queues or merges an out-of-order segment; returns the
// TH_FIN flag if the data now in order ended with a FIN. *tlenp updated to
// the bytes appended to the socket buffer.
int tcp_reass(tcpcb* tp, int th_flags, tcp_seq seq, int* tlenp, mbuf* m)
    ABSL_EXCLUSIVE_LOCKS_REQUIRED(tp->t_inpcb->inp_lock);
void tcp_reass_flush(tcpcb* tp);

// tcp_sack.cc (FreeBSD's tcp_sack.c).
// Receiver: records [start, end) as just received out of order and drops
// what rcv_nxt now covers (tcp_update_sack_list); tcp_clean_sackreport
// forgets every block.
void tcp_update_sack_list(tcpcb* tp, tcp_seq start, tcp_seq end);
void tcp_clean_sackreport(tcpcb* tp);
// Sender: folds the SACK blocks of an ACK for th_ack into the scoreboard.
// Returns true if it learnt something new (more bytes SACKed).
bool tcp_sack_doack(tcpcb* tp, const sackblk* blks, int nblks, tcp_seq th_ack);
// The first hole with bytes not yet retransmitted, or null
// (tcp_sack_output); *sack_bytes_rexmt is the bytes retransmitted so far.
sackhole* tcp_sack_output(tcpcb* tp, uint32_t* sack_bytes_rexmt);
// Records that [p->rxmit, p->rxmit + len) was retransmitted.
void tcp_sack_rexmit_done(tcpcb* tp, sackhole* p, int len);
// RFC 6675 "pipe": bytes presumed in the network. Holes below the highest
// SACKed byte count as lost unless retransmitted.
uint32_t tcp_sack_pipe(tcpcb* tp);
// Bytes SACKed above snd_una.
uint32_t tcp_sack_sacked_bytes(tcpcb* tp);
void tcp_free_sackholes(tcpcb* tp);

// tcp_timer.cc
void tcp_timer_activate(tcpcb* tp, tcp_timer_num which, int64_t delta_ms);
bool tcp_timer_active(tcpcb* tp, tcp_timer_num which);
void tcp_timer_stop_all(tcpcb* tp);
void tcp_timers_init(kernel& k, tcpcb* tp);
// Runs the expired timers and re-arms the callout (the body of the timer
// callout; a TOE device calls it on its engine thread).
void tcp_timer_expire(tcpcb* tp) ABSL_EXCLUSIVE_LOCKS_REQUIRED(tp->t_inpcb->inp_lock);
int tcp_rexmit_cur(tcpcb* tp);  // current RTO with backoff (ms)
extern const int tcp_backoff[TCP_MAXRXTSHIFT + 1];
// RTT sample (tcp_xmit_timer).
void tcp_xmit_timer(tcpcb* tp, int rtt_ms);

}  // namespace uk

#endif  // UKTLS_SYS_NETINET_TCP_VAR_H_
