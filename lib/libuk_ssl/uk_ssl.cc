// The uktls socket BIO. It honours the contract libssl 3.0 expects of a
// kTLS-capable socket BIO (OpenSSL's crypto/bio/bss_sock.c with
// include/internal/ktls.h), over uk_* system calls:
//   ctrl 72 (SET_KTLS): larg != 0 → TX; parg → tls_crypto_info_all
//   ctrl 73/76 (GET_KTLS_SEND/RECV): 1 once installed, 0 before
//   ctrl 74/75: record type for the next write (a control record) / clear
//   unknown ctrls return 0, so libssl never believes kTLS is on when it is not
//   read with RX on: one record per call as [type][3][3][len16] + plaintext
#include "lib/libuk_ssl/uk_ssl.h"

#include <linux/tls.h>
#include <netinet/tcp.h>

#include <cerrno>
#include <cstring>
#include <mutex>

namespace {

// libssl's internal ctrl numbers (include/internal/bio.h / openssl/bio.h).
constexpr int kCtrlSetKtls = 72;
constexpr int kCtrlGetKtlsSend = 73;
constexpr int kCtrlSetKtlsTxSendCtrlMsg = 74;
constexpr int kCtrlClearKtlsTxCtrlMsg = 75;
constexpr int kCtrlGetKtlsRecv = 76;

// Offset of tls_crypto_info_len in libssl's struct tls_crypto_info_all on
// Linux LP64: a 56-byte union of the tls12_crypto_info_* structs, then size_t.
constexpr size_t kCryptoInfoLenOffset = 56;

struct UkSock {
  uk_proc* p;
  int s;
  bool ulp = false;
  bool ktls_tx = false;
  bool ktls_rx = false;
  int ctrl_type = -1;  // record type for the next write, or -1
  bool eof = false;
};

UkSock* sock_of(BIO* b) { return static_cast<UkSock*>(BIO_get_data(b)); }

bool retryable(int e) { return e == EAGAIN || e == EWOULDBLOCK || e == EINTR; }

int sock_write(BIO* b, const char* buf, int len) {
  UkSock* u = sock_of(b);
  BIO_clear_retry_flags(b);
  ssize_t n;
  if (u->ctrl_type >= 0) {
    // A control record: the body goes out as one record of that type,
    // all or nothing (libssl does not expect a short write here).
    char cbuf[CMSG_SPACE(1)] = {};
    iovec iov{const_cast<char*>(buf), static_cast<size_t>(len)};
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = cbuf;
    msg.msg_controllen = sizeof(cbuf);
    cmsghdr* c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_TLS;
    c->cmsg_type = TLS_SET_RECORD_TYPE;
    c->cmsg_len = CMSG_LEN(1);
    *CMSG_DATA(c) = static_cast<unsigned char>(u->ctrl_type);
    n = uk_sendmsg(u->p, u->s, &msg, 0);
    if (n >= 0) {
      u->ctrl_type = -1;
      return len;
    }
  } else {
    n = uk_send(u->p, u->s, buf, static_cast<size_t>(len), MSG_NOSIGNAL);
  }
  if (n < 0) {
    if (retryable(errno)) BIO_set_retry_write(b);
    return -1;
  }
  return static_cast<int>(n);
}

// One kernel record per call, with the header libssl's record layer parses.
int ktls_read_record(BIO* b, UkSock* u, char* out, int outl) {
  if (outl < 5 + 16) {
    errno = EINVAL;
    return -1;
  }
  char cbuf[CMSG_SPACE(1)] = {};
  iovec iov{out + 5, static_cast<size_t>(outl - 5)};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = cbuf;
  msg.msg_controllen = sizeof(cbuf);
  ssize_t n = uk_recvmsg(u->p, u->s, &msg, 0);
  if (n < 0) {
    if (retryable(errno)) BIO_set_retry_read(b);
    return -1;
  }
  if (n == 0 && msg.msg_controllen == 0) {
    u->eof = true;
    return 0;
  }
  unsigned char type = 23;
  for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level == SOL_TLS && c->cmsg_type == TLS_GET_RECORD_TYPE)
      type = *CMSG_DATA(c);
  }
  out[0] = static_cast<char>(type);
  out[1] = 3;
  out[2] = 3;
  out[3] = static_cast<char>((n >> 8) & 0xff);
  out[4] = static_cast<char>(n & 0xff);
  return static_cast<int>(n) + 5;
}

int sock_read(BIO* b, char* out, int outl) {
  UkSock* u = sock_of(b);
  BIO_clear_retry_flags(b);
  if (out == nullptr) return 0;
  if (u->ktls_rx) return ktls_read_record(b, u, out, outl);
  ssize_t n = uk_recv(u->p, u->s, out, static_cast<size_t>(outl), 0);
  if (n < 0) {
    if (retryable(errno)) BIO_set_retry_read(b);
    return -1;
  }
  if (n == 0) u->eof = true;
  return static_cast<int>(n);
}

int sock_puts(BIO* b, const char* str) {
  return sock_write(b, str, static_cast<int>(strlen(str)));
}

bool attach_ulp(UkSock* u) {
  if (u->ulp) return true;
  if (uk_setsockopt(u->p, u->s, IPPROTO_TCP, TCP_ULP, "tls", 4) == 0 ||
      errno == EEXIST) {
    u->ulp = true;
  }
  return u->ulp;
}

long sock_ctrl(BIO* b, int cmd, long larg, void* parg) {
  UkSock* u = sock_of(b);
  switch (cmd) {
    case BIO_CTRL_FLUSH:
      return 1;
    case BIO_CTRL_EOF:
      return u->eof ? 1 : 0;
    case BIO_CTRL_GET_CLOSE:
      return BIO_get_shutdown(b);
    case BIO_CTRL_SET_CLOSE:
      BIO_set_shutdown(b, static_cast<int>(larg));
      return 1;
    case BIO_CTRL_PENDING:
    case BIO_CTRL_WPENDING:
      return 0;
    case kCtrlSetKtls: {
      if (parg == nullptr || !attach_ulp(u)) return 0;
      size_t len;
      memcpy(&len, static_cast<char*>(parg) + kCryptoInfoLenOffset, sizeof(len));
      bool tx = larg != 0;
      if (uk_setsockopt(u->p, u->s, SOL_TLS, tx ? TLS_TX : TLS_RX, parg,
                        static_cast<socklen_t>(len)) != 0)
        return 0;
      (tx ? u->ktls_tx : u->ktls_rx) = true;
      return 1;
    }
    case kCtrlGetKtlsSend:
      return u->ktls_tx ? 1 : 0;
    case kCtrlGetKtlsRecv:
      return u->ktls_rx ? 1 : 0;
    case kCtrlSetKtlsTxSendCtrlMsg:
      u->ctrl_type = static_cast<int>(larg);
      return 1;
    case kCtrlClearKtlsTxCtrlMsg:
      u->ctrl_type = -1;
      return 1;
    default:
      return 0;
  }
}

int sock_create(BIO* b) {
  BIO_set_init(b, 0);
  BIO_set_data(b, nullptr);
  return 1;
}

int sock_destroy(BIO* b) {
  UkSock* u = sock_of(b);
  if (u == nullptr) return 1;
  if (BIO_get_shutdown(b) && BIO_get_init(b)) uk_close(u->p, u->s);
  delete u;
  BIO_set_data(b, nullptr);
  BIO_set_init(b, 0);
  return 1;
}

}  // namespace

extern "C" const BIO_METHOD* uk_BIO_s_socket(void) {
  static BIO_METHOD* method = nullptr;
  static std::once_flag once;
  std::call_once(once, [] {
    BIO_METHOD* m =
        BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "uktls socket");
    BIO_meth_set_write(m, sock_write);
    BIO_meth_set_read(m, sock_read);
    BIO_meth_set_puts(m, sock_puts);
    BIO_meth_set_ctrl(m, sock_ctrl);
    BIO_meth_set_create(m, sock_create);
    BIO_meth_set_destroy(m, sock_destroy);
    method = m;
  });
  return method;
}

extern "C" BIO* uk_BIO_new_socket(uk_proc* p, int s, int close_flag) {
  if (p == nullptr || s < 0) {
    errno = EINVAL;
    return nullptr;
  }
  BIO* b = BIO_new(uk_BIO_s_socket());
  if (b == nullptr) return nullptr;
  auto* u = new UkSock{p, s};
  BIO_set_data(b, u);
  BIO_set_shutdown(b, close_flag);
  BIO_set_init(b, 1);
  // As OpenSSL's socket BIO does at creation: attach the TLS ULP now, while
  // the socket is connected; failure (not yet connected) is not an error.
  attach_ulp(u);
  return b;
}
