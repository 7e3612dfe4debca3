// Unmodified OpenSSL 3 (the system libssl) over uktls sockets through
// uk_BIO_new_socket: handshakes with SSL_OP_ENABLE_KTLS hand the traffic
// keys to the kernel's Linux personality, which then frames, encrypts and
// decrypts. Bulk data both ways is checked by SHA-256. A second test puts
// a plain OpenSSL client on a host socketpair, bridged byte for byte to a
// uktls socket, so the peer runs no uktls code at all.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/bio.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/sha.h>  // SHA256_DIGEST_LENGTH
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "lib/libuk/uk.h"
#include "lib/libuk_ssl/uk_ssl.h"

namespace {

// Bytes each way: 64 MiB for the first suite, 8 MiB for the others and
// the relay; UKTLS_SSL_MIB sets them all.
size_t Bytes(bool first) {
  const char* e = getenv("UKTLS_SSL_MIB");
  size_t mib = e ? strtoul(e, nullptr, 10) : (first ? 64 : 8);
  return mib << 20;
}

struct Cert {
  EVP_PKEY* key = nullptr;
  X509* x509 = nullptr;
  Cert() {
    key = EVP_EC_gen("P-256");
    x509 = X509_new();
    ASN1_INTEGER_set(X509_get_serialNumber(x509), 1);
    X509_gmtime_adj(X509_getm_notBefore(x509), -60);
    X509_gmtime_adj(X509_getm_notAfter(x509), 3600);
    X509_set_pubkey(x509, key);
    X509_NAME* n = X509_get_subject_name(x509);
    X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_ASC,
                               reinterpret_cast<const unsigned char*>("uktls"),
                               -1, -1, 0);
    X509_set_issuer_name(x509, n);
    X509_sign(x509, key, EVP_sha256());
  }
  ~Cert() {
    X509_free(x509);
    EVP_PKEY_free(key);
  }
};

struct Suite {
  const char* name;
  int version;         // TLS1_2_VERSION / TLS1_3_VERSION
  const char* cipher;  // 1.2 cipher list or 1.3 ciphersuite
};
const Suite kSuites[] = {
    {"tls12_aes128gcm", TLS1_2_VERSION, "ECDHE-ECDSA-AES128-GCM-SHA256"},
    {"tls12_aes256gcm", TLS1_2_VERSION, "ECDHE-ECDSA-AES256-GCM-SHA384"},
    {"tls12_chacha20", TLS1_2_VERSION, "ECDHE-ECDSA-CHACHA20-POLY1305"},
    // OpenSSL 3.0 offloads AES-128-CCM (16-byte tag) with TLS 1.2 only.
    {"tls12_aes128ccm", TLS1_2_VERSION, "ECDHE-ECDSA-AES128-CCM"},
    {"tls13_aes128gcm", TLS1_3_VERSION, "TLS_AES_128_GCM_SHA256"},
    {"tls13_aes256gcm", TLS1_3_VERSION, "TLS_AES_256_GCM_SHA384"},
    {"tls13_chacha20", TLS1_3_VERSION, "TLS_CHACHA20_POLY1305_SHA256"},
};

SSL_CTX* MakeCtx(const Suite& s, bool server, const Cert* cert) {
  SSL_CTX* ctx = SSL_CTX_new(server ? TLS_server_method() : TLS_client_method());
  SSL_CTX_set_min_proto_version(ctx, s.version);
  SSL_CTX_set_max_proto_version(ctx, s.version);
  if (s.version == TLS1_3_VERSION)
    SSL_CTX_set_ciphersuites(ctx, s.cipher);
  else
    SSL_CTX_set_cipher_list(ctx, s.cipher);
  SSL_CTX_set_options(ctx, SSL_OP_ENABLE_KTLS);
  if (server) {
    SSL_CTX_use_certificate(ctx, cert->x509);
    SSL_CTX_use_PrivateKey(ctx, cert->key);
  }
  return ctx;
}

// A deterministic stream: byte i of direction d.
void Fill(std::vector<uint8_t>* buf, size_t off, uint8_t d) {
  for (size_t i = 0; i < buf->size(); i++)
    (*buf)[i] = static_cast<uint8_t>(((off + i) * 131 + d * 7) >> 3);
}

std::string Hex(const unsigned char* h) {
  static const char* x = "0123456789abcdef";
  std::string s;
  for (int i = 0; i < SHA256_DIGEST_LENGTH; i++) {
    s += x[h[i] >> 4];
    s += x[h[i] & 15];
  }
  return s;
}

// Writes n bytes of stream d; returns their SHA-256.
std::string Send(SSL* ssl, size_t n, uint8_t d) {
  EVP_MD_CTX* sha = EVP_MD_CTX_new();
  EVP_DigestInit_ex(sha, EVP_sha256(), nullptr);
  std::vector<uint8_t> buf(100000);
  size_t off = 0;
  while (off < n) {
    buf.resize(std::min<size_t>(100000, n - off));
    Fill(&buf, off, d);
    size_t done = 0;
    while (done < buf.size()) {
      int w = SSL_write(ssl, buf.data() + done, static_cast<int>(buf.size() - done));
      if (w <= 0) {
        ADD_FAILURE() << "SSL_write " << SSL_get_error(ssl, w);
        EVP_MD_CTX_free(sha);
        return "";
      }
      done += w;
    }
    EVP_DigestUpdate(sha, buf.data(), buf.size());
    off += buf.size();
  }
  unsigned char h[SHA256_DIGEST_LENGTH];
  EVP_DigestFinal_ex(sha, h, nullptr);
  EVP_MD_CTX_free(sha);
  return Hex(h);
}

// Reads n bytes; returns their SHA-256.
std::string Recv(SSL* ssl, size_t n) {
  EVP_MD_CTX* sha = EVP_MD_CTX_new();
  EVP_DigestInit_ex(sha, EVP_sha256(), nullptr);
  std::vector<uint8_t> buf(65536);
  size_t got = 0;
  while (got < n) {
    int r = SSL_read(ssl, buf.data(), static_cast<int>(std::min(buf.size(), n - got)));
    if (r <= 0) {
      ADD_FAILURE() << "SSL_read " << SSL_get_error(ssl, r) << " errno " << errno;
      EVP_MD_CTX_free(sha);
      return "";
    }
    EVP_DigestUpdate(sha, buf.data(), r);
    got += r;
  }
  unsigned char h[SHA256_DIGEST_LENGTH];
  EVP_DigestFinal_ex(sha, h, nullptr);
  EVP_MD_CTX_free(sha);
  return Hex(h);
}

sockaddr_in lo(uint16_t port) {
  sockaddr_in sin{};
  sin.sin_family = AF_INET;
  sin.sin_port = htons(port);
  sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  return sin;
}

class UkSsl : public ::testing::Test {
 protected:
  void SetUp() override {
    uk_boot_config cfg{};
    cfg.ncpus = 2;
    k_ = uk_boot(&cfg);
    ASSERT_NE(k_, nullptr);
    p_ = uk_proc_create(k_, "ssl");
  }
  void TearDown() override {
    if (k_ != nullptr) {
      EXPECT_EQ(uk_halt(k_), 0);
    }
  }
  // A connected uktls TCP pair: *c the client, *s the accepted socket.
  void Pair(int* c, int* s) {
    int l = uk_socket(p_, AF_INET, SOCK_STREAM, 0);
    sockaddr_in sin = lo(0);
    ASSERT_EQ(uk_bind(p_, l, reinterpret_cast<sockaddr*>(&sin), sizeof sin), 0);
    ASSERT_EQ(uk_listen(p_, l, 4), 0);
    socklen_t len = sizeof sin;
    ASSERT_EQ(uk_getsockname(p_, l, reinterpret_cast<sockaddr*>(&sin), &len), 0);
    *c = uk_socket(p_, AF_INET, SOCK_STREAM, 0);
    ASSERT_EQ(uk_connect(p_, *c, reinterpret_cast<sockaddr*>(&sin), sizeof sin), 0);
    *s = uk_accept(p_, l, nullptr, nullptr);
    ASSERT_GE(*s, 0);
    uk_close(p_, l);
  }
  uint64_t Stat(const char* name) {
    uint64_t v = 0;
    size_t len = sizeof v;
    EXPECT_EQ(uk_sysctlbyname(p_, name, &v, &len, nullptr, 0), 0) << name;
    return v;
  }
  uk_kernel* k_ = nullptr;
  uk_proc* p_ = nullptr;
};

TEST_F(UkSsl, BothEndsOnUktlsEverySuite) {
  Cert cert;
  for (const Suite& s : kSuites) {
    SCOPED_TRACE(s.name);
    const size_t n = Bytes(&s == &kSuites[0]);
    int c, sv;
    Pair(&c, &sv);
    SSL_CTX* sctx = MakeCtx(s, true, &cert);
    SSL_CTX* cctx = MakeCtx(s, false, nullptr);
    SSL* server = SSL_new(sctx);
    SSL* client = SSL_new(cctx);
    BIO* sb = uk_BIO_new_socket(p_, sv, BIO_CLOSE);
    BIO* cb = uk_BIO_new_socket(p_, c, BIO_CLOSE);
    ASSERT_NE(sb, nullptr);
    ASSERT_NE(cb, nullptr);
    SSL_set_bio(server, sb, sb);
    SSL_set_bio(client, cb, cb);

    std::string srv_got, srv_sent;
    std::thread st([&] {
      if (SSL_accept(server) != 1) {
        ADD_FAILURE() << "SSL_accept " << ERR_reason_error_string(ERR_get_error());
        return;
      }
      srv_got = Recv(server, n);
      srv_sent = Send(server, n, 2);
    });
    ASSERT_EQ(SSL_connect(client), 1) << ERR_reason_error_string(ERR_get_error());
    std::string cli_sent = Send(client, n, 1);
    std::string cli_got = Recv(client, n);
    st.join();
    EXPECT_FALSE(cli_sent.empty());
    EXPECT_EQ(srv_got, cli_sent);
    EXPECT_EQ(cli_got, srv_sent);
    // kTLS took over on both uktls ends: TX always, RX for TLS 1.2
    // (OpenSSL 3.0 has no TLS 1.3 RX offload).
    EXPECT_EQ(BIO_get_ktls_send(SSL_get_wbio(client)), 1);
    EXPECT_EQ(BIO_get_ktls_send(SSL_get_wbio(server)), 1);
    if (s.version == TLS1_2_VERSION) {
      EXPECT_EQ(BIO_get_ktls_recv(SSL_get_rbio(client)), 1);
      EXPECT_EQ(BIO_get_ktls_recv(SSL_get_rbio(server)), 1);
    }
    EXPECT_GE(Stat("compat.linux.tls_stat.TlsCurrTxSw"), 2u);
    SSL_shutdown(client);
    SSL_free(client);
    SSL_free(server);
    SSL_CTX_free(cctx);
    SSL_CTX_free(sctx);
  }
  EXPECT_EQ(Stat("compat.linux.tls_stat.TlsCurrTxSw"), 0u);
  EXPECT_EQ(Stat("compat.linux.tls_stat.TlsTxSw"), 14u);
  EXPECT_EQ(Stat("compat.linux.tls_stat.TlsRxSw"), 8u);
}

// The peer is OpenSSL on a host socketpair; a relay copies bytes between it
// and a uktls socket whose accepted end runs the uktls server.
TEST_F(UkSsl, HostPeerThroughRelay) {
  Cert cert;
  const size_t n = Bytes(false);
  for (const Suite& s : {kSuites[0], kSuites[2], kSuites[3], kSuites[5]}) {
    SCOPED_TRACE(s.name);
    int c, sv;
    Pair(&c, &sv);
    int hp[2];
    ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, hp), 0);
    // Relay: host hp[1] <-> uktls c, byte for byte, both directions.
    std::thread up([&] {
      std::vector<char> b(65536);
      for (;;) {
        ssize_t r = read(hp[1], b.data(), b.size());
        if (r <= 0) break;
        for (ssize_t o = 0; o < r;) {
          ssize_t w = uk_send(p_, c, b.data() + o, r - o, 0);
          if (w <= 0) return;
          o += w;
        }
      }
      uk_shutdown(p_, c, SHUT_WR);
    });
    std::thread down([&] {
      std::vector<char> b(65536);
      for (;;) {
        ssize_t r = uk_recv(p_, c, b.data(), b.size(), 0);
        if (r <= 0) break;
        for (ssize_t o = 0; o < r;) {
          ssize_t w = write(hp[1], b.data() + o, r - o);
          if (w <= 0) return;
          o += w;
        }
      }
      shutdown(hp[1], SHUT_WR);
    });

    SSL_CTX* sctx = MakeCtx(s, true, &cert);
    SSL_CTX* cctx = MakeCtx(s, false, nullptr);
    SSL* server = SSL_new(sctx);
    BIO* sb = uk_BIO_new_socket(p_, sv, BIO_CLOSE);
    SSL_set_bio(server, sb, sb);
    SSL* client = SSL_new(cctx);  // the host peer: plain fd BIO
    SSL_set_fd(client, hp[0]);

    std::string srv_got, srv_sent;
    std::thread st([&] {
      if (SSL_accept(server) != 1) {
        ADD_FAILURE() << "SSL_accept " << ERR_reason_error_string(ERR_get_error());
        return;
      }
      srv_got = Recv(server, n);
      srv_sent = Send(server, n, 2);
    });
    ASSERT_EQ(SSL_connect(client), 1) << ERR_reason_error_string(ERR_get_error());
    std::string cli_sent = Send(client, n, 1);
    std::string cli_got = Recv(client, n);
    st.join();
    EXPECT_EQ(srv_got, cli_sent);
    EXPECT_EQ(cli_got, srv_sent);
    EXPECT_EQ(BIO_get_ktls_send(SSL_get_wbio(server)), 1);
    if (s.version == TLS1_2_VERSION) {
      EXPECT_EQ(BIO_get_ktls_recv(SSL_get_rbio(server)), 1);
    }

    SSL_shutdown(server);  // close_notify as a kernel control record
    SSL_free(server);      // closes sv: the relay sees EOF
    char tmp[256];
    // The peer reads the close_notify (decrypted by host OpenSSL).
    EXPECT_EQ(SSL_read(client, tmp, sizeof tmp), 0);
    EXPECT_EQ(SSL_get_error(client, 0), SSL_ERROR_ZERO_RETURN);
    SSL_free(client);
    close(hp[0]);
    up.join();
    down.join();
    close(hp[1]);
    uk_close(p_, c);
    SSL_CTX_free(cctx);
    SSL_CTX_free(sctx);
  }
}

}  // namespace
