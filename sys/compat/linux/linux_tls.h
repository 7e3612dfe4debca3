// Linux's kTLS API (tls(7), Documentation/networking/tls.rst) on the KTLS
// core: the "tls" TCP upper-layer protocol (TCP_ULP), the SOL_TLS socket
// options TLS_TX / TLS_RX with <linux/tls.h>'s tls12_crypto_info_* structs,
// and Linux's /proc/net/tls_stat counters as compat.linux.tls_stat.*.
// Mirrors net/tls/tls_main.c (do_tls_setsockopt_conf and friends).
//
// A Linux session is an ordinary ktls_session (it shows in kern.ipc.tls.*
// and is encrypted by ktls_ocf); what differs is its set-up: the TLS 1.2
// explicit nonce starts from the struct's iv and rec_seq from its rec_seq,
// and a TLS 1.3 session may be replaced (rekey).
#ifndef UKTLS_SYS_COMPAT_LINUX_LINUX_TLS_H_
#define UKTLS_SYS_COMPAT_LINUX_LINUX_TLS_H_

#include <cstdint>

#include "sys/sys/counter.h"
#include "sys/sys/sysctl.h"

namespace uk {

struct kernel;
struct socket;
struct sockopt;

// Linux's numbers (include/uapi/linux/tls.h, socket.h, tcp.h).
constexpr int LINUX_SOL_TLS = 282;
constexpr int LINUX_TCP_ULP = 31;
constexpr int LINUX_TLS_TX = 1;
constexpr int LINUX_TLS_RX = 2;
constexpr int LINUX_TLS_TX_ZEROCOPY_RO = 3;
constexpr int LINUX_TLS_RX_EXPECT_NO_PAD = 4;
constexpr int LINUX_TLS_TX_MAX_PAYLOAD_LEN = 5;
constexpr int LINUX_TLS_SET_RECORD_TYPE = 1;  // cmsg, send
constexpr int LINUX_TLS_GET_RECORD_TYPE = 2;  // cmsg, receive
constexpr uint16_t LINUX_TLS_1_2_VERSION = 0x0303;
constexpr uint16_t LINUX_TLS_1_3_VERSION = 0x0304;
constexpr int LINUX_TLS_MAX_PAYLOAD_SIZE = 16384;
constexpr int LINUX_TLS_MIN_RECORD_SIZE_LIM = 64;

// net/tls/tls_proc.c's counters, in the kernel's order.
struct LinuxTlsState final {
  explicit LinuxTlsState(kernel& k) : sysctl_ctx(k) {}
  counter_u64 TlsCurrTxSw, TlsCurrRxSw, TlsCurrTxDevice, TlsCurrRxDevice;
  counter_u64 TlsTxSw, TlsRxSw, TlsTxDevice, TlsRxDevice;
  counter_u64 TlsDecryptError, TlsRxDeviceResync, TlsDecryptRetry;
  counter_u64 TlsRxNoPadViolation, TlsRxRekeyOk, TlsRxRekeyError;
  counter_u64 TlsTxRekeyOk, TlsTxRekeyError, TlsRxRekeyReceived;
  sysctl_ctx_list sysctl_ctx;
};

// tcp_ctloutput's hook: (IPPROTO_TCP, TCP_ULP) and level SOL_TLS. Returns
// ENOPROTOOPT for SOL_TLS on a socket without the ULP, as Linux does.
int linux_tls_ctloutput(socket* so, sockopt* sopt);

// Whether the socket carries the "tls" ULP (Linux send/receive rules).
bool linux_tls_attached(socket* so);

// soclose()'s hook (tls_sk_proto_close): an open MSG_MORE record is
// dropped and the session leaves the TlsCurr* gauges; the KTLS sessions
// themselves live on with the socket buffers.
void linux_tls_soclose(socket* so);

// sosend()'s hook: on a socket with the ULP and TLS_TX, Linux's send rules
// (tls_sw_sendmsg): one record per send, MSG_MORE keeps the record open
// until a send without it or until it is full (TLS_TX_MAX_PAYLOAD_LEN),
// MSG_EOR accepted (with MSG_MORE: EINVAL), other flags EOPNOTSUPP, a
// (SOL_TLS, TLS_SET_RECORD_TYPE) cmsg pushes the open record and sends its
// own (MSG_MORE with it, a malformed or foreign cmsg: EINVAL). *handled is
// false when the socket is not such a socket (the caller sends as usual).
struct mbuf;
struct uio;
int linux_tls_sosend_hook(socket* so, uio* uio, mbuf* top, mbuf* control,
                          int flags, bool* handled);

// soreceive()'s hook: on a socket with the ULP and TLS_RX, Linux's receive
// rules (tls_sw_recvmsg): plaintext only, a (SOL_TLS, TLS_GET_RECORD_TYPE)
// cmsg on every call that asked for control data, consecutive data records
// merged up to the buffer (waiting for MSG_WAITALL / SO_RCVLOWAT), types
// never mixed, one control record per call, EIO for a control record when
// no control data was asked for (it stays queued), MSG_PEEK
// non-destructive, partial reads keep the rest, errors after copied bytes
// deferred, EBADMSG sticky, EKEYEXPIRED after a TLS 1.3 KeyUpdate until
// the next TLS_RX. No MSG_EOR.
int linux_tls_soreceive_hook(socket* so, uio* uio, mbuf** controlp,
                             int* flagsp, bool* handled);

}  // namespace uk

#endif  // UKTLS_SYS_COMPAT_LINUX_LINUX_TLS_H_
