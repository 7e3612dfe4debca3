// The seam between the HTTP core and the world. The core (httpd.h) sees a
// connection only as a Transport: decrypted bytes in, plaintext out through
// the TLS library (SSL_write), and — when the kernel encrypts records itself
// (KTLS TX) — file bodies out through sendfile.
//
// TlsTransport (tls.h) implements Transport for any Socket: it owns the SSL
// object and asks the Socket for a BIO and for sendfile. A Socket is the only
// thing an environment has to provide:
//   host:  HostSocket (host_transport.h): BIO_new_socket(fd), sendfile(2)
//   uktls: a uk socket: uk_BIO_new_socket(p, s, 0), uk_sendfile(p, fd, s, ...)
// A Listener hands out Sockets; Server (httpd.h) runs one thread per Socket.
#ifndef UKTLS_USR_SBIN_UKHTTPD_TRANSPORT_H_
#define UKTLS_USR_SBIN_UKHTTPD_TRANSPORT_H_

#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <string>

#include <openssl/bio.h>

#include "usr.sbin/ukhttpd/docroot.h"

namespace ukhttpd {

class Transport {
 public:
  virtual ~Transport() = default;
  // Reads up to |len| plaintext bytes: the count, 0 when the peer closed
  // (TLS close_notify or TCP FIN), -1 on error or idle timeout.
  virtual ssize_t read(void* buf, size_t len) = 0;
  // Writes all of |buf| through the TLS library. false on error.
  virtual bool write(const void* buf, size_t len) = 0;
  // True when records for this connection are framed and encrypted by the
  // kernel (OpenSSL reports BIO_get_ktls_send on its write BIO), so that a
  // body may be handed to send_file.
  virtual bool ktls_send() = 0;
  // Sends [off, off+len) of |f| by sendfile on the connection's socket. Only
  // called when ktls_send(). Returns 0, or an errno after which the
  // connection is unusable (part of the body may have been sent).
  virtual int send_file(DocFile& f, uint64_t off, uint64_t len) = 0;
  // Sends close_notify when the TLS session is still healthy.
  virtual void close() = 0;
};

// A connected stream socket in some descriptor space.
class Socket {
 public:
  virtual ~Socket() = default;
  // A new BIO over the socket that does not close it (the Socket does); the
  // caller owns the BIO. For uktls sockets this is uk_BIO_new_socket(p, s, 0),
  // which takes OpenSSL's KTLS keys and installs them in the kernel.
  virtual BIO* new_bio() = 0;
  // sendfile(2) of |len| bytes of descriptor |fd| (same descriptor space as
  // the socket) from |off|, looping over partial sends. 0 or an errno.
  virtual int sendfile(int fd, uint64_t off, uint64_t len) = 0;
  // Wakes any thread blocked on the socket and makes further I/O fail;
  // callable from any thread (Server::stop uses it).
  virtual void shutdown() = 0;
  // "ADDR:PORT" of the peer, for the log.
  virtual std::string peer() = 0;
  // Called once after a handshake that left KTLS TX active: the kernel's TX
  // mode of the connection (TCP_TLS_MODE_SW/IFNET/TOE, read back with
  // getsockopt(TCP_TXTLS_MODE)), after any switch the environment asks for;
  // -1 where the environment cannot tell (host sockets).
  virtual int ktls_tx_established() { return -1; }
};

class Listener {
 public:
  virtual ~Listener() = default;
  // Blocks until a connection arrives; nullptr once close() was called or on
  // a fatal error.
  virtual std::unique_ptr<Socket> accept() = 0;
  // Makes a blocked and every later accept() return nullptr. Any thread.
  virtual void close() = 0;
};

}  // namespace ukhttpd

#endif  // UKTLS_USR_SBIN_UKHTTPD_TRANSPORT_H_
