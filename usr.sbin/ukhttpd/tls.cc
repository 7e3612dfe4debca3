#include "usr.sbin/ukhttpd/tls.h"

#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

#include <cctype>
#include <cstring>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>

namespace ukhttpd {
namespace {

bool IsDnsName(const std::string& s) {
  if (s.empty() || s.size() > 253) return false;
  for (char c : s) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '.') return false;
  }
  return s.front() != '.' && s.front() != '-';
}

absl::Status AddExt(X509* cert, int nid, const std::string& value) {
  X509V3_CTX v3;
  X509V3_set_ctx_nodb(&v3);
  X509V3_set_ctx(&v3, cert, cert, nullptr, nullptr, 0);
  X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &v3, nid, value.c_str());
  if (ext == nullptr) {
    return absl::InvalidArgumentError("certificate extension " + std::string(OBJ_nid2sn(nid)) +
                                      " = " + value + ": " + OpenSslErrors());
  }
  int ok = X509_add_ext(cert, ext, -1);
  X509_EXTENSION_free(ext);
  if (!ok) return absl::InternalError("X509_add_ext: " + OpenSslErrors());
  return absl::OkStatus();
}

}  // namespace

std::string OpenSslErrors() {
  std::string out;
  while (unsigned long e = ERR_get_error()) {
    char buf[256];
    ERR_error_string_n(e, buf, sizeof(buf));
    if (!out.empty()) out += "; ";
    out += buf;
  }
  return out.empty() ? "no OpenSSL error reported" : out;
}

SelfSigned::~SelfSigned() {
  EVP_PKEY_free(key);
  X509_free(cert);
}

absl::Status GenerateSelfSigned(const std::string& key_type, const std::string& hostname,
                                const std::vector<std::string>& extra_san, SelfSigned* out) {
  if (key_type == "ec") {
    out->key = EVP_EC_gen("P-256");
  } else if (key_type == "rsa") {
    out->key = EVP_RSA_gen(2048);
  } else {
    return absl::InvalidArgumentError("key type " + key_type + ": expected ec or rsa");
  }
  if (out->key == nullptr) return absl::InternalError("key generation: " + OpenSslErrors());

  X509* cert = X509_new();
  out->cert = cert;
  X509_set_version(cert, 2);  // v3
  // A random positive 63-bit serial, so clients that cache by issuer+serial
  // never confuse two generated certificates.
  unsigned char rnd[8];
  if (RAND_bytes(rnd, sizeof(rnd)) != 1) return absl::InternalError("RAND_bytes failed");
  rnd[0] &= 0x7f;
  BIGNUM* bn = BN_bin2bn(rnd, sizeof(rnd), nullptr);
  BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(cert));
  BN_free(bn);
  X509_gmtime_adj(X509_getm_notBefore(cert), -3600);
  X509_gmtime_adj(X509_getm_notAfter(cert), 365L * 24 * 3600);
  X509_NAME* name = X509_get_subject_name(cert);
  std::string cn = hostname.empty() ? "localhost" : hostname.substr(0, 64);
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8,
                             reinterpret_cast<const unsigned char*>(cn.c_str()), -1, -1, 0);
  X509_set_issuer_name(cert, name);
  X509_set_pubkey(cert, out->key);

  std::string san = "DNS:localhost";
  if (IsDnsName(hostname) && hostname != "localhost") san += ",DNS:" + hostname;
  san += ",IP:127.0.0.1,IP:10.0.0.1";
  for (const std::string& e : extra_san) san += "," + e;
  if (auto s = AddExt(cert, NID_subject_alt_name, san); !s.ok()) return s;
  if (auto s = AddExt(cert, NID_basic_constraints, "critical,CA:FALSE"); !s.ok()) return s;
  if (auto s = AddExt(cert, NID_key_usage,
                      key_type == "rsa" ? "critical,digitalSignature,keyEncipherment"
                                        : "critical,digitalSignature");
      !s.ok())
    return s;
  if (auto s = AddExt(cert, NID_ext_key_usage, "serverAuth"); !s.ok()) return s;
  if (auto s = AddExt(cert, NID_subject_key_identifier, "hash"); !s.ok()) return s;
  if (X509_sign(cert, out->key, EVP_sha256()) == 0) {
    return absl::InternalError("X509_sign: " + OpenSslErrors());
  }
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<TlsContext>> TlsContext::Create(const TlsConfig& cfg) {
  std::unique_ptr<TlsContext> t(new TlsContext());
  SSL_CTX* ctx = SSL_CTX_new(TLS_server_method());
  if (ctx == nullptr) return absl::InternalError("SSL_CTX_new: " + OpenSslErrors());
  t->ctx_ = ctx;
  SSL_CTX_set_app_data(ctx, t.get());
  if (!SSL_CTX_set_min_proto_version(ctx, cfg.min_version) ||
      !SSL_CTX_set_max_proto_version(ctx, cfg.max_version)) {
    return absl::InvalidArgumentError("TLS version range: " + OpenSslErrors());
  }
  uint64_t opts = SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE;
  if (cfg.ktls) opts |= SSL_OP_ENABLE_KTLS;
  SSL_CTX_set_options(ctx, opts);
  if (!cfg.ciphers.empty() && !SSL_CTX_set_cipher_list(ctx, cfg.ciphers.c_str())) {
    return absl::InvalidArgumentError("TLS 1.2 cipher list \"" + cfg.ciphers +
                                      "\": " + OpenSslErrors());
  }
  if (!cfg.ciphersuites.empty() && !SSL_CTX_set_ciphersuites(ctx, cfg.ciphersuites.c_str())) {
    return absl::InvalidArgumentError("TLS 1.3 cipher suites \"" + cfg.ciphersuites +
                                      "\": " + OpenSslErrors());
  }

  if (cfg.cert_file.empty() != cfg.key_file.empty()) {
    return absl::InvalidArgumentError("a certificate file needs a key file and vice versa");
  }
  if (!cfg.cert_file.empty()) {
    if (SSL_CTX_use_certificate_chain_file(ctx, cfg.cert_file.c_str()) != 1) {
      return absl::InvalidArgumentError("certificate " + cfg.cert_file + ": " + OpenSslErrors());
    }
    if (SSL_CTX_use_PrivateKey_file(ctx, cfg.key_file.c_str(), SSL_FILETYPE_PEM) != 1) {
      return absl::InvalidArgumentError("key " + cfg.key_file + ": " + OpenSslErrors());
    }
  } else {
    SelfSigned ss;
    if (auto s = GenerateSelfSigned(cfg.key_type, cfg.hostname, cfg.extra_san, &ss); !s.ok()) {
      return s;
    }
    if (SSL_CTX_use_certificate(ctx, ss.cert) != 1 || SSL_CTX_use_PrivateKey(ctx, ss.key) != 1) {
      return absl::InternalError("installing the generated certificate: " + OpenSslErrors());
    }
  }
  if (SSL_CTX_check_private_key(ctx) != 1) {
    return absl::InvalidArgumentError("the key does not match the certificate: " +
                                      OpenSslErrors());
  }

  if (!cfg.keylog_file.empty()) {
    // Secrets: readable by the owner only.
    int fd = ::open(cfg.keylog_file.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (fd < 0) {
      return absl::InvalidArgumentError("key log " + cfg.keylog_file + ": " +
                                        std::strerror(errno));
    }
    FILE* f = ::fdopen(fd, "a");
    if (f == nullptr) {
      ::close(fd);
      return absl::InternalError("fdopen: " + std::string(std::strerror(errno)));
    }
    {
      uk::MutexLock l(&t->keylog_mu_);
      t->keylog_ = f;
    }
    SSL_CTX_set_keylog_callback(ctx, &TlsContext::KeylogCallback);
  }
  return t;
}

TlsContext::~TlsContext() {
  SSL_CTX_free(ctx_);
  uk::MutexLock l(&keylog_mu_);
  if (keylog_) std::fclose(keylog_);
}

void TlsContext::KeylogCallback(const SSL* ssl, const char* line) {
  auto* self = static_cast<TlsContext*>(SSL_CTX_get_app_data(SSL_get_SSL_CTX(ssl)));
  uk::MutexLock l(&self->keylog_mu_);
  if (self->keylog_ == nullptr) return;
  // One line per secret, flushed at once: a capture may be decrypted while
  // the server still runs.
  std::fputs(line, self->keylog_);
  std::fputc('\n', self->keylog_);
  std::fflush(self->keylog_);
}

std::string TlsContext::cert_pem() const {
  X509* cert = SSL_CTX_get0_certificate(ctx_);
  if (cert == nullptr) return "";
  BIO* b = BIO_new(BIO_s_mem());
  PEM_write_bio_X509(b, cert);
  char* data = nullptr;
  long n = BIO_get_mem_data(b, &data);
  std::string out(data, static_cast<size_t>(n));
  BIO_free(b);
  return out;
}

TlsTransport::TlsTransport(TlsContext& ctx, Socket& sock) : sock_(sock) {
  ssl_ = SSL_new(ctx.ctx());
  if (ssl_ != nullptr) {
    BIO* bio = sock_.new_bio();
    if (bio == nullptr) {
      failed_ = true;
      return;
    }
    SSL_set_bio(ssl_, bio, bio);  // one reference, owned by the SSL
  } else {
    failed_ = true;
  }
}

TlsTransport::~TlsTransport() { SSL_free(ssl_); }

bool TlsTransport::handshake(std::string* error) {
  if (failed_ || ssl_ == nullptr) {
    *error = "setting up the TLS connection: " + OpenSslErrors();
    return false;
  }
  int rc = SSL_accept(ssl_);
  if (rc == 1) return true;
  int e = SSL_get_error(ssl_, rc);
  int saved_errno = errno;
  failed_ = true;
  if (e == SSL_ERROR_SYSCALL) {
    *error = saved_errno ? std::string("handshake: ") + std::strerror(saved_errno)
                         : "handshake: peer closed the connection";
    ERR_clear_error();
  } else {
    *error = "handshake: " + OpenSslErrors();
  }
  return false;
}

std::string TlsTransport::version() const { return SSL_get_version(ssl_); }

std::string TlsTransport::cipher() const {
  const char* c = SSL_get_cipher_name(ssl_);
  return c ? c : "";
}

bool TlsTransport::ktls_recv() { return BIO_get_ktls_recv(SSL_get_rbio(ssl_)) > 0; }

bool TlsTransport::ktls_send() {
  return !failed_ && BIO_get_ktls_send(SSL_get_wbio(ssl_)) > 0;
}

ssize_t TlsTransport::read(void* buf, size_t len) {
  if (failed_) return -1;
  size_t got = 0;
  int rc = SSL_read_ex(ssl_, buf, len, &got);
  if (rc == 1) return static_cast<ssize_t>(got);
  int e = SSL_get_error(ssl_, rc);
  if (e == SSL_ERROR_ZERO_RETURN) return 0;  // close_notify
  ERR_clear_error();
  if (e == SSL_ERROR_SYSCALL && errno == 0) {
    // TCP FIN without close_notify: curl and s_client often do this after the
    // last response; treat it as end of stream, not as an attack.
    failed_ = true;
    return 0;
  }
  failed_ = true;
  return -1;
}

bool TlsTransport::write(const void* buf, size_t len) {
  if (failed_) return false;
  const char* p = static_cast<const char*>(buf);
  while (len > 0) {
    size_t n = 0;
    int rc = SSL_write_ex(ssl_, p, len, &n);
    if (rc != 1) {
      ERR_clear_error();
      failed_ = true;
      return false;
    }
    p += n;
    len -= n;
  }
  return true;
}

int TlsTransport::send_file(DocFile& f, uint64_t off, uint64_t len) {
  if (failed_) return EPIPE;
  int fd = f.sendfile_fd();
  if (fd < 0) return EBADF;
  // Whatever OpenSSL still buffers (nothing, with KTLS TX, unless an alert is
  // pending) must precede the body on the wire.
  (void)BIO_flush(SSL_get_wbio(ssl_));
  int err = sock_.sendfile(fd, off, len);
  if (err) failed_ = true;
  return err;
}

void TlsTransport::close() {
  if (failed_ || ssl_ == nullptr) return;
  if (SSL_is_init_finished(ssl_)) {
    // One call: send our close_notify and do not wait for the peer's.
    (void)SSL_shutdown(ssl_);
    ERR_clear_error();
  }
  failed_ = true;
}

}  // namespace ukhttpd
