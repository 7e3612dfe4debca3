// TLS for ukhttpd with an unmodified OpenSSL 3: the server SSL_CTX (TLS 1.2
// and 1.3, SSL_OP_ENABLE_KTLS), a self-signed certificate made at start when
// none is given, the NSS key log (--keylog), and TlsTransport, the Transport
// over any Socket.
//
// Nothing here touches a host socket: the BIO comes from Socket::new_bio(),
// and bodies go to Socket::sendfile() only when OpenSSL reports that it
// handed its TX keys to the kernel (BIO_get_ktls_send). SSL_sendfile is not
// used because it calls the host's sendfile(2) on SSL_get_wfd(), which a uk
// descriptor is not.
#ifndef UKTLS_USR_SBIN_UKHTTPD_TLS_H_
#define UKTLS_USR_SBIN_UKHTTPD_TLS_H_

#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "sys/sys/lock.h"
#include "usr.sbin/ukhttpd/transport.h"

namespace ukhttpd {

struct TlsConfig {
  // PEM files; both empty means "generate a self-signed certificate".
  std::string cert_file;
  std::string key_file;
  // Key type of a generated certificate: "ec" (P-256) or "rsa" (2048 bits).
  std::string key_type = "ec";
  // Common name of a generated certificate (the server's hostname).
  std::string hostname = "localhost";
  // Extra subjectAltName entries beyond DNS:localhost, DNS:<hostname>,
  // IP:127.0.0.1 and IP:10.0.0.1, in OpenSSL syntax ("DNS:x", "IP:a.b.c.d").
  std::vector<std::string> extra_san;
  // OpenSSL cipher list for TLS 1.2 (SSL_CTX_set_cipher_list); the default
  // keeps the AEAD suites that kernel TLS can carry.
  std::string ciphers = "ECDHE+AESGCM:ECDHE+CHACHA20:!aNULL";
  // TLS 1.3 suites (SSL_CTX_set_ciphersuites); empty keeps OpenSSL's default.
  std::string ciphersuites;
  int min_version = TLS1_2_VERSION;
  int max_version = TLS1_3_VERSION;
  // SSL_OP_ENABLE_KTLS: let OpenSSL hand its keys to the kernel through the BIO.
  bool ktls = true;
  // Append NSS key log lines (SSLKEYLOGFILE format) to this file.
  std::string keylog_file;
};

// A self-signed X.509 v3 server certificate: CN = |hostname|, subjectAltName
// DNS:localhost, DNS:|hostname| (when it is a DNS name), IP:127.0.0.1,
// IP:10.0.0.1 and |extra_san|; valid from an hour ago for a year; SHA-256.
struct SelfSigned {
  EVP_PKEY* key = nullptr;
  X509* cert = nullptr;
  ~SelfSigned();
};
absl::Status GenerateSelfSigned(const std::string& key_type, const std::string& hostname,
                                const std::vector<std::string>& extra_san, SelfSigned* out);

class TlsContext {
 public:
  static absl::StatusOr<std::unique_ptr<TlsContext>> Create(const TlsConfig& cfg);
  ~TlsContext();
  TlsContext(const TlsContext&) = delete;
  TlsContext& operator=(const TlsContext&) = delete;

  SSL_CTX* ctx() const { return ctx_; }
  // The certificate in use, PEM-encoded (so a client can trust it).
  std::string cert_pem() const;

 private:
  TlsContext() = default;
  static void KeylogCallback(const SSL* ssl, const char* line);

  SSL_CTX* ctx_ = nullptr;
  uk::Mutex keylog_mu_;
  FILE* keylog_ ABSL_GUARDED_BY(keylog_mu_) = nullptr;
};

// One TLS server connection over |sock|. Not thread-safe; one thread drives it.
class TlsTransport final : public Transport {
 public:
  TlsTransport(TlsContext& ctx, Socket& sock);
  ~TlsTransport() override;

  // SSL_accept. true on success; otherwise |*error| says why.
  bool handshake(std::string* error);
  // "TLSv1.3", "TLS_AES_256_GCM_SHA384" after the handshake.
  std::string version() const;
  std::string cipher() const;
  bool ktls_recv();

  ssize_t read(void* buf, size_t len) override;
  bool write(const void* buf, size_t len) override;
  bool ktls_send() override;
  int send_file(DocFile& f, uint64_t off, uint64_t len) override;
  void close() override;

 private:
  Socket& sock_;
  SSL* ssl_ = nullptr;
  bool failed_ = false;  // a fatal SSL error: no close_notify
};

// The OpenSSL error queue as one line (and cleared).
std::string OpenSslErrors();

}  // namespace ukhttpd

#endif  // UKTLS_USR_SBIN_UKHTTPD_TLS_H_
