// Kernel TLS (ktls(4)): sessions, record framing, the per-CPU worker
// threads that encrypt records, the backend registry, and the per-kernel
// KTLS state with its kern.ipc.tls sysctl tree and counters.
// Mirrors FreeBSD's sys/kern/uipc_ktls.c and sys/sys/ktls.h (kernel part).
//
// Sessions: ktls_create_session() validates a struct tls_enable exactly as
// FreeBSD does and deep-copies its keys; ktls_try_sw() then asks the
// registered software backend (the ktls_ocf module) to set up crypto
// sessions and install its encrypt/decrypt operations. A session is
// refcounted: the socket buffer holds one reference, every framed record
// another (m_epg_tls). The last release destroys it (ktls_destroy): gauges
// decremented, backend state freed, keys zeroed.
//
// Locking: a session is immutable after ktls_try_sw() except for
//   - params.iv[8..15] (the TLS 1.2 GCM explicit-nonce counter), advanced
//     atomically by ktls_frame();
//   - next_seqno / pending_records (TLS 1.0), guarded by its work queue's mu.
// Lock order: inpcb -> sockbuf -> ktls_wq::mu -> CryptoState::mu_.
// ktls_wq::mu is never held while calling into OCF or the socket layer.
#ifndef UKTLS_SYS_KERN_UIPC_KTLS_H_
#define UKTLS_SYS_KERN_UIPC_KTLS_H_

#include <netinet/in.h>
#include <sys/types.h>
#include <sys/uio.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <thread>
#include <vector>

#include "sys/kern/subr_taskqueue.h"
#include "sys/opencrypto/crypto.h"
#include "sys/sys/counter.h"
#include "sys/sys/ktls.h"
#include "sys/sys/lock.h"
#include "sys/sys/mbuf.h"
#include "sys/sys/refcount.h"
#include "sys/sys/sysctl.h"

namespace uk {

struct kernel;
struct socket;
struct inpcb;
struct tcpcb;
struct m_snd_tag;
struct ktls_session;
struct KtlsState;

// Directions (FreeBSD's KTLS_TX / KTLS_RX).
enum : int { KTLS_TX = 1, KTLS_RX = 2 };

// Lengths FreeBSD's ktls code takes from elsewhere.
constexpr int AES_GMAC_HASH_LEN = 16;
constexpr int CHACHA20_POLY1305_IV_LEN = 12;
// uktls extension: RFC 8998 TLS 1.3 SM4 suites (TLS_SM4_GCM_SM3,
// TLS_SM4_CCM_SM3): 16-byte key, 12-byte IV, 16-byte tag.
constexpr int SM4_KEY_LEN = 16;
constexpr int TLS_SM4_IV_LEN = 12;

// TLS 1.2 AEAD suites whose nonce is a 4-byte salt and an 8-byte explicit
// nonce sent after the header (AES-GCM; and the Linux personality's AES-CCM,
// ARIA-GCM and SM4); ChaCha20 builds its nonce as TLS 1.3 does.
inline bool ktls_tls12_explicit_nonce(int cipher_algorithm, int tls_vminor) {
  if (tls_vminor != TLS_MINOR_VER_TWO) return false;
  switch (cipher_algorithm) {
    case CRYPTO_AES_NIST_GCM_16:
    case CRYPTO_AES_CCM_16:
    case CRYPTO_ARIA_GCM_16:
    case CRYPTO_SM4_GCM_16:
    case CRYPTO_SM4_CCM_16:
      return true;
  }
  return false;
}

// FreeBSD's struct tls_session_params: what a session was enabled with,
// plus the framing lengths derived from it.
struct tls_session_params {
  uint8_t* cipher_key = nullptr;  // heap copy, zeroed on destroy
  uint8_t* auth_key = nullptr;    // heap copy, zeroed on destroy
  // The implicit IV / salt; iv[8..15] holds the TLS 1.2 GCM explicit-nonce
  // counter (host order), aligned for atomic increments.
  alignas(8) uint8_t iv[16] = {};
  int cipher_algorithm = 0;
  int auth_algorithm = 0;
  uint16_t cipher_key_len = 0;
  uint16_t iv_len = 0;
  uint16_t auth_key_len = 0;
  uint16_t max_frame_len = 0;
  uint8_t tls_vmajor = 0;
  uint8_t tls_vminor = 0;
  uint8_t tls_hlen = 0;  // header + explicit nonce/IV
  uint8_t tls_tlen = 0;  // maximum trailer (tag, or MAC + padding; +1 on 1.3)
  uint8_t tls_bs = 0;    // block size: AEAD 1, CBC 16
  uint8_t flags = 0;
};

// Scratch a worker hands to the backend for one record's encryption
// (FreeBSD's struct ktls_ocf_encrypt_state). One per work queue, reused, so
// the hot path allocates nothing.
struct ktls_ocf_encrypt_state {
  socket* so = nullptr;
  mbuf* m = nullptr;
  cryptop crp;
  union {
    tls_mac_data mac;
    tls_aead_data aead;
    tls_aead_data_13 aead13;
  };
  // Input and output scatter lists: AAD/MAC header, the record's pages,
  // the trailer.
  struct iovec iov[MBUF_PEXT_MAX_PGS_UK + 2];
  struct iovec dst_iov[MBUF_PEXT_MAX_PGS_UK + 2];
  vm_page* parray[MBUF_PEXT_MAX_PGS_UK];
  ktls_ocf_encrypt_state() : mac() {}
};

// Backend operations installed into a session by its backend.
//  encrypt: encrypts one framed M_EXTPG record. With outiov null the
//    record's pages are encrypted in place; otherwise the ciphertext goes to
//    outiov (payload pages, then the trailer) and the record's pages are
//    only read. The tag/MAC/padding land in m->m_epg_trail.
//  decrypt: verifies and decrypts one whole record in rec[0..len) (header
//    included) in place; rec is private, writable memory. With src not
//    null the record is read from that mbuf chain instead (the caller has
//    put its first tls_hlen bytes, header and explicit IV/nonce, in rec)
//    and rec receives the plaintext: one pass over the record rather than
//    a copy and an in-place pass. Sets
//    *trailer_len to the bytes after the plaintext (tag, or MAC + padding;
//    for TLS 1.3 the tag only: the type/padding scan is the caller's).
//    EBADMSG on authentication or padding failure, EMSGSIZE when the
//    record is too short for the cipher.
//  recrypt: restores ciphertext in the ranges of rec a NIC already
//    decrypted (GCM only), so decrypt can verify the record.
struct ktls_sw_ops {
  int (*encrypt)(ktls_ocf_encrypt_state* state, ktls_session* tls, mbuf* m,
                 struct iovec* outiov, int outiovcnt);
  int (*decrypt)(ktls_session* tls, const tls_record_layer* hdr, mbuf* src,
                 uint8_t* rec, int len, uint64_t seqno, int* trailer_len);
  int (*recrypt)(ktls_session* tls, const tls_record_layer* hdr, uint8_t* rec,
                 int len, uint64_t seqno, const int (*ranges)[2], int nranges);
};

// A software KTLS backend (FreeBSD has exactly one, ktls_ocf). Registered by
// its module at MOD_LOAD; without one, ktls_try_sw() fails with EOPNOTSUPP.
struct ktls_backend {
  const char* name;
  // Sets up tls->ocf_session and tls->sw for the direction; 0 or an errno
  // (EINVAL bad key length, EPROTONOSUPPORT version, EOPNOTSUPP no driver).
  int (*try_session)(kernel& k, ktls_session* tls, int direction);
  // Frees what try_session set up.
  void (*free_session)(ktls_session* tls);
  // Whether recrypt (NIC RX of mixed records) is supported.
  bool (*recrypt_supported)(const ktls_session* tls);
};

// A TCP offload engine's hold on a session in TOE mode (FreeBSD keeps the
// session in the toepcb). The engine frames/encrypts TX records itself; on
// RX, ktls_check_rx() hands it the socket instead of queueing a worker.
struct ktls_toe {
  virtual ~ktls_toe() = default;
  // Whole records wait on so_rcv's sb_mtls (sb_mtx held): decrypt them on
  // the engine's thread. Returns false if the engine is gone. On true the
  // engine holds a socket reference and clears SB_TLS_RX_RUNNING when done.
  virtual bool rx_ready(socket* so) = 0;
};

// One KTLS session (one direction of one socket). Refcounted: the socket
// buffer holds one reference and every framed record another.
struct ktls_session final : RefCounted<ktls_session> {
  explicit ktls_session(kernel& kern) : k(kern) {}
  ktls_session(const ktls_session&) = delete;
  ktls_session& operator=(const ktls_session&) = delete;

  // Runs at the last reference: ktls_destroy().
  void last_release();

  kernel& k;
  tls_session_params params;
  int mode = TCP_TLS_MODE_NONE;
  int direction = 0;   // KTLS_TX or KTLS_RX
  bool tx = false;
  bool sync_dispatch = true;
  bool sequential_records = false;  // TLS 1.0 CBC: strict record order
  int wq_index = 0;    // the worker queue all of this session's work uses

  // Backend state (ktls_ocf's struct ktls_ocf_session) and operations.
  const ktls_backend* backend = nullptr;
  void* ocf_session = nullptr;
  ktls_sw_ops sw = {};

  // TLS 1.0 only (guarded by ktls_wq::mu of wq_index): the next sequence
  // number to hand to the worker and the later batches that wait for it,
  // sorted by sequence number.
  uint64_t next_seqno = 0;
  std::vector<mbuf*> pending_records;

  // RX sessions of the Linux personality (guarded by the receive sockbuf's
  // sb_mtx): after a TLS 1.3 KeyUpdate (a handshake record whose first
  // byte is 24) decryption pauses until a new key replaces this session,
  // since the records behind it use that key.
  bool linux_rx = false;
  bool rx_paused = false;
  // Linux: a bad record header aborted receive (tls_rx_msg_size); nothing
  // more is decrypted.
  bool rx_aborted = false;

  // TOE mode: the engine holding this session (set by its
  // tod_alloc_tls_session before the session is installed).
  std::shared_ptr<ktls_toe> toe;
  // For ktls_session_list() (ktlsctl sessions): a serial number unique
  // within the kernel, set at creation; whether the Linux personality
  // (TCP_ULP "tls") enabled it; records and payload bytes framed (TX) or
  // decrypted (RX) with it.
  uint64_t id = 0;
  bool linux_personality = false;
  std::atomic<uint64_t> nrecords{0};
  std::atomic<uint64_t> nbytes{0};
  // The NIC's tag (FreeBSD's snd_tag), one reference released at destroy.
  // TX (IFNET mode): allocated on the route's interface; every packet
  // carrying this session's plaintext records holds it too; replaced only
  // by the reset task; read and written with the connection's inpcb lock
  // held. RX: a TLS_RX tag while the session is in IFNET mode (the NIC
  // decrypts, the worker resynchronises it); guarded by the receive
  // sockbuf's sb_mtx.
  m_snd_tag* snd_tag = nullptr;
  // The pacing rate (bytes/s) a TLS_RATE_LIMIT tag was last given; 0 for
  // a TLS tag. Guarded like snd_tag.
  uint64_t snd_tag_rate = 0;
  // One tag reset queued at a time (FreeBSD's reset_pending); a failed
  // reset leaves it set, since the connection is being dropped.
  std::atomic<bool> reset_pending{false};
  task reset_tag_task;
  task disable_ifnet_task;
  socket* task_so = nullptr;     // referenced while reset_tag_task is queued
  socket* disable_so = nullptr;  // referenced while disable_ifnet_task is queued
};

inline ktls_session* ktls_hold(ktls_session* tls) {
  if (tls != nullptr) tls->ref();
  return tls;
}
// Drops a reference; the session is destroyed (keys zeroed) at the last.
void ktls_free(ktls_session* tls);

// Validates en and creates a session with deep copies of its keys, as
// FreeBSD's ktls_create_session(): EINVAL for anything FreeBSD rejects
// (version, key/iv lengths, flags, suite), ENXIO if the worker threads
// could not be started, EFAULT for an unreadable key/IV pointer. May adjust
// en->iv_len (CBC TLS 1.1/1.2 ignores a supplied IV). The new session's
// mode is NONE until a backend accepts it. so may be null.
// explicit_nonce (the Linux personality): the TLS 1.2 GCM explicit-nonce
// counter starts at these 8 big-endian bytes instead of a random value.
int ktls_create_session(kernel& k, socket* so, tls_enable* en,
                        RefPtr<ktls_session>* tlsp, int direction,
                        const uint8_t* explicit_nonce = nullptr);
// Sets the session up for software crypto through the registered backend
// (FreeBSD's ktls_try_sw()). EOPNOTSUPP without a backend.
int ktls_try_sw(ktls_session* tls, int direction);
// Whether empty (zero-length) records may be framed: TLS 1.0 CBC only.
bool ktls_permit_empty_frames(const ktls_session* tls);

// Frames a chain of M_EXTPG records (one record per mbuf, payload already
// in the pages): header, explicit nonce/IV, trailer length; takes a session
// reference per record; in SW mode marks them M_NOTREADY with m_epg_nrdy
// set. *enq_cnt: the page count to pass to ktls_enqueue (an empty fragment
// counts as one).
void ktls_frame(mbuf* top, ktls_session* tls, int* enq_cnt,
                uint8_t record_type);
// Assigns sequence numbers from *seqno (the socket buffer's sb_tls_seqno),
// one per record, advancing it.
void ktls_seq(uint64_t* seqno, mbuf* m);

// Socket entry points (FreeBSD's ktls_enable_tx() and friends), called
// from tcp_ctloutput with no lock held. Errors as ktls(4): ENOTSUP when
// kern.ipc.tls.enable=0 (or a CBC suite with cbc_enable=0), EINVAL for a
// non-TCP socket or an invalid suite, EALREADY for a second enable, ENXIO
// when kern.ipc.mb_use_ext_pgs=0 (TX), EOPNOTSUPP without a backend,
// ENOTCONN (TX) / EINVAL (RX) on a listening socket.
int ktls_enable_tx(socket* so, tls_enable* en);
int ktls_enable_rx(socket* so, tls_enable* en);
// The Linux personality's entry points (sys/compat/linux): the same session
// set-up with Linux's explicit nonce (see ktls_create_session); with
// replace, an existing session of the direction is swapped for the new one
// (TLS 1.3 rekey) instead of EALREADY, and the sequence number restarts
// from en->rec_seq.
int ktls_enable_tx_linux(socket* so, tls_enable* en,
                         const uint8_t* explicit_nonce, bool replace);
int ktls_enable_rx_linux(socket* so, tls_enable* en, bool replace);
// TCP_TXTLS_MODE / TCP_RXTLS_MODE: the session's mode, NONE without one;
// EINVAL on a listening socket.
int ktls_get_tx_mode(socket* so, int* modep);
int ktls_get_rx_mode(socket* so, int* modep);
// TCP_TXTLS_MODE set: SW <-> IFNET, FreeBSD's ktls_set_tx_mode(). The
// session is cloned (keys, GCM nonce counter; the sequence number lives in
// the socket buffer and continues) and the clone, set up in the new mode
// (IFNET forced, whatever kern.ipc.tls.ifnet.permitted says), replaces it;
// records already framed finish in their old mode. EINVAL for other modes
// or a listening socket; 0 without a session or when already in that mode;
// ENXIO for IFNET once the retransmit fallback disabled it; EBUSY when the
// session changed meanwhile; the new mode's set-up error (switch_failed).
int ktls_set_tx_mode(socket* so, int mode);

// --- IFNET mode (NIC TLS offload) ---------------------------------------
//
// Allocates the session's send tag on the interface of the connection's
// route (FreeBSD's ktls_alloc_snd_tag): TLS_RATE_LIMIT when the socket has
// a pacing rate (SO_MAX_PACING_RATE) and the interface TXTLS_RTLMT, else
// TLS. ECONNRESET for a dropped connection; ENXIO when not forced and
// kern.ipc.tls.ifnet.permitted=0, or without a route; EOPNOTSUPP when the
// interface lacks MEXTPG/TXTLS4 or its driver refuses the suite. Takes the
// inpcb lock.
int ktls_alloc_snd_tag(inpcb* inp, ktls_session* tls, bool force,
                       m_snd_tag** mstp);
// Sets a new session up for IFNET mode (FreeBSD's ktls_try_ifnet()).
int ktls_try_ifnet(socket* so, ktls_session* tls, int direction, bool force);
// A packet of tls could not be sent with its tag (no tag, or the route's
// interface is not the tag's): queues one reset task, returns ENOBUFS so
// TCP retries later. Called by tcp_output with the inpcb lock held. The
// task reallocates the tag (kern.ipc.tls.ifnet.reset) or, failing that,
// drops the connection with ECONNABORTED (reset_failed, reset_dropped).
int ktls_output_eagain(inpcb* inp, ktls_session* tls);
// Retransmitted bytes exceeded kern.ipc.tls.ifnet_max_rexmit_pct: switch
// the connection to SW once (t_nic_ktls_xmit_dis is never cleared), from a
// task (ifnet_disable_ok / ifnet_disable_failed). inpcb lock held.
void ktls_disable_ifnet(tcpcb* tp);
// Passes a new pacing rate to a TLS_RATE_LIMIT tag (snd_tag_modify);
// skipped while a reset is pending. inpcb lock held.
int ktls_modify_txrtlmt(ktls_session* tls, uint64_t max_pacing_rate);
// NIC TLS engines report the plaintext bytes they encrypted and the record
// bytes they re-read to rebuild cipher state (uktls accounting).
void ktls_ifnet_tx_account(kernel& k, uint64_t bytes, uint64_t rebuild_bytes,
                           uint64_t rebuilds);
// The socket buffer form of ktls_seq (sb_tls_seqno, sockbuf lock held).
struct sockbuf;
void ktls_seq(sockbuf* sb, mbuf* m);
// Receive (sockbuf lock held): ciphertext arriving on an SB_TLS_RX buffer
// goes to the sb_mtls chain (FreeBSD's sbappend_ktls_rx), and a whole
// record there schedules the socket on its worker (ktls_check_rx), which
// decrypts it into private memory and appends a TLS_GET_RECORD control
// message plus the plaintext ending in M_EOR. Errors reach the reader
// through so_error after the records before them.
void sbappend_ktls_rx(sockbuf* sb, mbuf* m);
void ktls_check_rx(sockbuf* sb);

// How completed records reach the socket layer; KTLS never calls up
// otherwise. The defaults (installed at boot) call the socket's pr_ready,
// drop the connection (tcp_drop) and release the socket reference; tests
// below the socket layer replace them.
struct ktls_socket_hooks {
  // pr_ready: count pages starting at m are encrypted; make them sendable.
  int (*pr_ready)(socket* so, mbuf* m, int count) = nullptr;
  // Encryption failed: drop the connection with error (EIO) and free the
  // not-ready mbufs (ktls_drop + mb_free_notready).
  void (*tx_failed)(socket* so, mbuf* m, int count, int error) = nullptr;
  // Releases the reference ktls_enqueue's caller took (sorele).
  void (*sorele)(socket* so) = nullptr;
};
void ktls_set_socket_hooks(kernel& k, const ktls_socket_hooks& hooks);

// Queues framed, not-ready records for encryption on the session's worker.
// The caller has taken a socket reference for the worker (soref); the worker
// calls hooks.pr_ready (or hooks.tx_failed) and then hooks.sorele.
// page_count: *enq_cnt from ktls_frame.
void ktls_enqueue(mbuf* m, socket* so, int page_count);

// Encrypts one framed record as a worker does: in place for anonymous
// pages, else into newly allocated pages that then replace the mbuf's
// (the original pages are only read): with kern.ipc.tls.sw_buffer_cache,
// a record of more than two pages goes into one contiguous buffer of
// maxlen (a run of the page pool), else into single pages. Clears m_epg_tls and drops that
// reference on success. Exposed for tests and benchmarks.
int ktls_encrypt_record(kernel& k, mbuf* m, ktls_ocf_encrypt_state* state);

// Receive side, record level (the parts of FreeBSD's ktls_decrypt() that
// do not touch the socket buffer).
//
// Checks a record header against the session: EINVAL for a version that is
// not the session's (3,3 for TLS 1.3) or a TLS 1.3 outer type other than
// application data; EMSGSIZE for a length below the header or above
// 16384 + the trailer. On success *tls_len is the whole record's length,
// header included. Only the 5 header bytes are read.
int ktls_rx_check_header(const ktls_session* tls, const tls_record_layer* hdr,
                         int* tls_len);
// Decrypts one whole record rec[0..len) (private, writable memory) with
// sequence number seqno and fills *tgr (inner type for TLS 1.3, version
// from the wire, plaintext length in network order). The plaintext is
// rec[tls_hlen .. tls_hlen + ntohs(tgr->tls_length)). Errors: EMSGSIZE for
// a record too short for its cipher (or not a block multiple), EBADMSG for
// anything that fails authentication, padding, or (TLS 1.3) has no
// non-zero type byte. Counts failed_crypto on error.
// *padded (optional): a TLS 1.3 record carried zero padding after its type.
int ktls_rx_decrypt_record(ktls_session* tls, uint8_t* rec, int len,
                           uint64_t seqno, tls_get_record* tgr,
                           bool* padded = nullptr);
// The same for a record still in the mbuf chain src (exactly len bytes),
// decrypted out of place into rec (the ktls_sw_ops decrypt contract).
int ktls_rx_decrypt_record_from(ktls_session* tls, mbuf* src, uint8_t* rec,
                                int len, uint64_t seqno, tls_get_record* tgr,
                                bool* padded);
// On the TLS_GET_RECORD control mbuf of a TLS 1.3 record that was padded
// (what Linux's TLS_RX_EXPECT_NO_PAD accounting needs).
constexpr int M_TLS_PADDED = M_PROTO4;

// Receive side, socket-buffer level: the per-record steps of FreeBSD's
// ktls_decrypt() that the KTLS workers share with TCP offload engines that
// decrypt records themselves (sys/dev/nic_sim/nic_toe.cc).
//
// The next record on sb_mtls (sb_mtx held): 0 with *tls_len its whole
// length once it is all queued; EWOULDBLOCK while its header (with any
// explicit nonce) or body is not; else ktls_rx_check_header's error, which
// means the stream is out of sync and the connection must be dropped.
int ktls_rx_next_record(sockbuf* sb, const ktls_session* tls, int* tls_len);
// Takes the first len bytes of sb_mtls into buf (sb_mtx held) and counts
// them in sb_tlsdcc until ktls_rx_deliver_record: a flush meanwhile zeroes
// it.
void ktls_detach_record(sockbuf* sb, uint8_t* buf, int len);
// A chain of mapped mbufs holding a copy of len bytes at p; null for len 0
// or when out of mbufs. Counts nothing (the caller says whose copy it is).
mbuf* ktls_plaintext_mbufs(kernel& k, const uint8_t* p, int len);
// Hands one detached record of tls_len bytes to the reader, sb_mtx not held
// on entry and held on return. error is the record's decrypt result; on
// success tgr describes it and data (taken; null for an empty record) holds
// its plaintext. Builds the TLS_GET_RECORD control mbuf (M_TLS_PADDED with
// padded), then under sb_mtx:
//   KTLS_RX_FLUSHED   a flush discarded the record meanwhile; nothing done.
//   KTLS_RX_FAILED    error, or ENOBUFS for the control/data mbufs: so_error
//                     becomes EMSGSIZE or EBADMSG after the records before
//                     it, the reader is woken; later records continue.
//   KTLS_RX_DELIVERED control + data (M_EOR on its last byte) appended.
// Either of the last two releases the record's sb_ccc.
enum : int { KTLS_RX_DELIVERED = 0, KTLS_RX_FAILED = 1, KTLS_RX_FLUSHED = 2 };
int ktls_rx_deliver_record(socket* so, int tls_len, int error,
                           const tls_get_record* tgr, bool padded, mbuf* data);

// Backend registry.
int ktls_register_sw_backend(kernel& k, const ktls_backend* be);
// EBUSY while sessions use the backend.
int ktls_unregister_sw_backend(kernel& k, const ktls_backend* be);
// Sessions currently using a software backend.
int ktls_sw_backend_sessions(kernel& k);

// One KTLS work queue and its thread (FreeBSD's struct ktls_wq).
struct ktls_wq {
  Mutex mu;
  CondVar cv;
  // Batches from ktls_enqueue(), each the first record of a run of
  // m_epg_enc_cnt pages linked through m_next.
  std::vector<mbuf*> m_head ABSL_GUARDED_BY(mu);
  // Sockets with a whole received record to decrypt (each holds a socket
  // reference).
  std::vector<socket*> so_head ABSL_GUARDED_BY(mu);
  bool running ABSL_GUARDED_BY(mu) = false;
  bool stop ABSL_GUARDED_BY(mu) = false;
  std::thread thread;
  std::atomic<pid_t> tid{0};  // the host thread's id, once it runs (0 before)
  int cpu = 0;
  // Owned by the worker thread: encryption scratch and the private copy a
  // received record is decrypted in.
  ktls_ocf_encrypt_state state;
  std::vector<uint8_t> rx_buf;
  // The NIC-decrypted byte ranges of the record being received, as
  // (offset, length) pairs (ktls_sw_ops::recrypt's ranges).
  std::vector<int> rx_ranges;
};

// kern.ipc.tls.* values with FreeBSD's defaults (API.md section 2 sets
// enable=1 and ifnet.permitted=0 at boot through the default tunables).
struct KtlsState final {
  explicit KtlsState(kernel& k) : k(k), sysctl_ctx(k) {}
  ~KtlsState();

  kernel& k;

  // Tunables and knobs.
  std::atomic<bool> enable{false};
  std::atomic<bool> cbc_enable{true};
  std::atomic<int> bind_threads{0};
  std::atomic<unsigned> maxlen{16384};
  std::atomic<unsigned> ifnet_max_rexmit_pct{2};
  std::atomic<bool> sw_buffer_cache{true};
  // When a contiguous encryption buffer was last refused (ms of ticks_now,
  // 0: not lately): none is asked for within a second of it (FreeBSD's
  // lastallocfail).
  std::atomic<int64_t> buffer_allocfail{0};
  std::atomic<int> max_reclaim{1024};
  // kern.ipc.tls.tx_ready_bytes (not in FreeBSD): when positive, a SW TX
  // batch's records go to TCP (pr_ready) each time this many bytes of them
  // are encrypted while the worker has nothing else queued, the rest at the
  // batch's end; 0, the default, hands the whole batch over at its end, as
  // FreeBSD's ktls_encrypt() does.
  std::atomic<int> tx_ready_bytes{0};
  std::atomic<unsigned> ifnet_permitted{0};
  std::atomic<int> number_threads{0};

  counter_u64 tasks_active;  // defined by FreeBSD, never updated

  // kern.ipc.tls.stats.*
  counter_u64 sw_tx_pending;
  counter_u64 sw_tx_inqueue;
  counter_u64 sw_rx_inqueue;
  counter_u64 offload_total;
  counter_u64 enable_calls;
  counter_u64 active;
  counter_u64 corrupted_records;
  counter_u64 failed_crypto;
  counter_u64 switch_to_ifnet;
  counter_u64 switch_to_sw;
  counter_u64 switch_failed;
  counter_u64 ifnet_disable_failed;
  counter_u64 ifnet_disable_ok;
  counter_u64 destroy_task;

  // kern.ipc.tls.stats.ocf.* (counted by ktls_ocf).
  struct {
    counter_u64 tls10_cbc_encrypts;
    counter_u64 tls11_cbc_decrypts;
    counter_u64 tls11_cbc_encrypts;
    counter_u64 tls12_gcm_decrypts;
    counter_u64 tls12_gcm_encrypts;
    counter_u64 tls12_gcm_recrypts;
    counter_u64 tls12_chacha20_decrypts;
    counter_u64 tls12_chacha20_encrypts;
    counter_u64 tls13_gcm_decrypts;
    counter_u64 tls13_gcm_encrypts;
    counter_u64 tls13_gcm_recrypts;
    counter_u64 tls13_chacha20_decrypts;
    counter_u64 tls13_chacha20_encrypts;
    // uktls extension: RFC 8998 SM4-GCM / SM4-CCM (TLS 1.3).
    counter_u64 tls13_sm4_decrypts;
    counter_u64 tls13_sm4_encrypts;
    counter_u64 inplace;
    counter_u64 separate_output;
    counter_u64 retries;
  } ocf;

  // Gauges of active sessions per mode and cipher family (sm4: a uktls
  // extension for the RFC 8998 suites).
  struct ModeGauges {
    counter_u64 cbc;
    counter_u64 gcm;
    counter_u64 chacha20;
    counter_u64 sm4;
    counter_u64 ccm;   // AES-CCM (Linux personality)
    counter_u64 aria;  // ARIA-GCM (Linux personality)
  };
  ModeGauges sw, ifnet, toe;
  counter_u64 ifnet_reset;
  counter_u64 ifnet_reset_dropped;
  counter_u64 ifnet_reset_failed;

  // Receive accounting (uktls extensions; FreeBSD counts only the OCF
  // operations): records and plaintext bytes the NIC decrypted whole vs
  // those a host worker decrypted (ENCRYPTED and MIXED records), records
  // that arrived partly decrypted (recrypted), and the IFNET RX life
  // cycle: live sessions, resync modifies sent to the NIC, "decryption
  // resumed" notices, tag allocations that failed, and sessions that fell
  // back to software when their NIC refused a resync.
  struct {
    counter_u64 ifnet_records;
    counter_u64 ifnet_bytes;
    counter_u64 sw_records;
    counter_u64 sw_bytes;
    counter_u64 mixed_records;
    counter_u64 ifnet_sessions;
    counter_u64 resync;
    counter_u64 resumed;
    counter_u64 tag_failed;
    counter_u64 fallback_sw;
  } rx;
  // uktls accounting of who encrypted transmitted records
  // (kern.ipc.tls.stats.*): plaintext bytes encrypted by the KTLS workers,
  // by NICs inline (retransmissions included), and the record bytes NICs
  // re-read to rebuild their cipher state for segments starting inside a
  // record.
  counter_u64 sw_tx_bytes;
  counter_u64 ifnet_tx_bytes;
  counter_u64 ifnet_tx_rebuilds;
  counter_u64 ifnet_tx_rebuild_bytes;

  // Queue of the tag reset and IFNET disable tasks, created at boot and
  // drained before the network stack goes away at halt; null after.
  Mutex tq_mu;
  taskqueue* tq ABSL_GUARDED_BY(tq_mu) = nullptr;

  // The software backend (ktls_ocf) and the sessions using it.
  Mutex backend_mu;
  const ktls_backend* sw_backend ABSL_GUARDED_BY(backend_mu) = nullptr;
  std::atomic<int> sw_backend_sessions{0};

  // Socket-layer hooks (set at boot, before any record is queued).
  ktls_socket_hooks hooks;

  // Worker threads, started lazily on the first session (ktls_init):
  // init_state 0 = not yet, 1 = running, -1 = failed (ENXIO forever).
  Mutex init_mu;
  std::atomic<int> init_state{0};
  std::vector<std::unique_ptr<ktls_wq>> wq;  // written once under init_mu
  std::atomic<unsigned> next_wq{0};

  sysctl_ctx_list sysctl_ctx;

  // ktls_session::id of the next session.
  std::atomic<uint64_t> next_session_id{1};
};

// Registers the kern.ipc.tls tree. Returns 0 or an errno.
int ktls_sysctl_init(kernel& k, KtlsState& st);

// The host thread ids of k's KTLS workers that have started (none before
// the first session): what a host-side tool charges the records' encryption
// to (ukernd's demo).
std::vector<pid_t> ktls_worker_tids(kernel& k);

// Session enumeration (sys/kern/uipc_ktls_list.cc), for ktlsctl sessions:
// one entry per KTLS session attached to a TCP socket's buffer, walked
// through the TCP pcb list as FreeBSD's tcp_pcblist sysctl walks it.
struct ktls_session_info {
  uint64_t id;
  int direction;  // KTLS_TX or KTLS_RX
  int mode;       // TCP_TLS_MODE_*
  int cipher_algorithm, auth_algorithm, cipher_key_len;
  uint8_t tls_vmajor, tls_vminor;
  bool linux_personality;
  uint64_t records, bytes;
  sockaddr_in local, foreign;
  const char* tcp_state;  // tcpstates[] name ("ESTABLISHED")
};
// Snapshot of every session of the kernel, in pcb-list order, TX before RX.
std::vector<ktls_session_info> ktls_session_list(kernel& k);
// TCP_TXTLS_MODE on the socket whose transmit session has this id
// (ktls_set_tx_mode()). ENOENT if no session has the id, EOPNOTSUPP for a
// receive session (only transmit sessions switch), else what
// ktls_set_tx_mode returns.
int ktls_session_set_tx_mode(kernel& k, uint64_t id, int mode);

}  // namespace uk

#endif  // UKTLS_SYS_KERN_UIPC_KTLS_H_
