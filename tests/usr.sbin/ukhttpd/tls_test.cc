// The TLS layer: the generated certificate's fields, context configuration
// errors, and a handshake of TlsTransport against an independent OpenSSL
// client over a socketpair, with the key log compared line by line with the
// client's own.
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include <set>
#include <sstream>
#include <thread>

#include <gtest/gtest.h>

#include "tests/usr.sbin/ukhttpd/test_dir.h"
#include "usr.sbin/ukhttpd/host_transport.h"
#include "usr.sbin/ukhttpd/tls.h"

namespace ukhttpd {
namespace {

std::set<std::string> SanEntries(X509* cert) {
  std::set<std::string> out;
  auto* names = static_cast<GENERAL_NAMES*>(
      X509_get_ext_d2i(cert, NID_subject_alt_name, nullptr, nullptr));
  for (int i = 0; names && i < sk_GENERAL_NAME_num(names); ++i) {
    GENERAL_NAME* n = sk_GENERAL_NAME_value(names, i);
    if (n->type == GEN_DNS) {
      out.insert("DNS:" + std::string(reinterpret_cast<const char*>(
                                          ASN1_STRING_get0_data(n->d.dNSName)),
                                      ASN1_STRING_length(n->d.dNSName)));
    } else if (n->type == GEN_IPADD) {
      const unsigned char* p = ASN1_STRING_get0_data(n->d.iPAddress);
      if (ASN1_STRING_length(n->d.iPAddress) == 4) {
        out.insert("IP:" + std::to_string(p[0]) + "." + std::to_string(p[1]) + "." +
                   std::to_string(p[2]) + "." + std::to_string(p[3]));
      }
    }
  }
  GENERAL_NAMES_free(names);
  return out;
}

std::string CommonName(X509* cert) {
  char cn[256] = {};
  X509_NAME_get_text_by_NID(X509_get_subject_name(cert), NID_commonName, cn, sizeof(cn));
  return cn;
}

TEST(SelfSigned, EcP256WithHostnameAndSans) {
  SelfSigned ss;
  ASSERT_TRUE(GenerateSelfSigned("ec", "server", {}, &ss).ok());
  EXPECT_EQ(CommonName(ss.cert), "server");
  EXPECT_EQ(SanEntries(ss.cert),
            (std::set<std::string>{"DNS:localhost", "DNS:server", "IP:127.0.0.1", "IP:10.0.0.1"}));
  EXPECT_EQ(EVP_PKEY_get_base_id(ss.key), EVP_PKEY_EC);
  char group[64] = {};
  size_t glen = 0;
  ASSERT_EQ(EVP_PKEY_get_group_name(ss.key, group, sizeof(group), &glen), 1);
  EXPECT_STREQ(group, "prime256v1");
  EXPECT_EQ(X509_get_version(ss.cert), 2);
  EXPECT_EQ(X509_verify(ss.cert, ss.key), 1);  // self-signed with this key
  EXPECT_LT(X509_cmp_current_time(X509_get0_notBefore(ss.cert)), 0);
  EXPECT_GT(X509_cmp_current_time(X509_get0_notAfter(ss.cert)), 0);
  EXPECT_EQ(X509_check_host(ss.cert, "localhost", 0, 0, nullptr), 1);
  EXPECT_EQ(X509_check_ip_asc(ss.cert, "127.0.0.1", 0), 1);
  EXPECT_EQ(X509_check_ip_asc(ss.cert, "10.0.0.1", 0), 1);
  EXPECT_EQ(X509_check_ip_asc(ss.cert, "10.0.0.2", 0), 0);
  EXPECT_EQ(X509_check_purpose(ss.cert, X509_PURPOSE_SSL_SERVER, 0), 1);
}

TEST(SelfSigned, Rsa2048AndExtraSans) {
  SelfSigned ss;
  ASSERT_TRUE(GenerateSelfSigned("rsa", "localhost", {"DNS:extra.test"}, &ss).ok());
  EXPECT_EQ(EVP_PKEY_get_base_id(ss.key), EVP_PKEY_RSA);
  EXPECT_EQ(EVP_PKEY_get_bits(ss.key), 2048);
  EXPECT_EQ(SanEntries(ss.cert), (std::set<std::string>{"DNS:localhost", "DNS:extra.test",
                                                        "IP:127.0.0.1", "IP:10.0.0.1"}));
  EXPECT_FALSE(GenerateSelfSigned("dsa", "x", {}, &ss).ok());
}

TEST(TlsContext, ConfigurationErrorsAreReported) {
  TlsConfig c;
  c.ciphers = "NO-SUCH-CIPHER";
  auto r = TlsContext::Create(c);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(std::string(r.status().message()).find("NO-SUCH-CIPHER"), std::string::npos);
  c = TlsConfig();
  c.cert_file = "/nonexistent.pem";
  EXPECT_FALSE(TlsContext::Create(c).ok());  // cert without key
  c.key_file = "/nonexistent.key";
  EXPECT_FALSE(TlsContext::Create(c).ok());
  c = TlsConfig();
  c.keylog_file = "/nonexistent-dir/keylog";
  EXPECT_FALSE(TlsContext::Create(c).ok());
}

std::vector<std::string>* g_client_keylog = nullptr;

struct Handshake {
  std::string server_version, server_cipher, client_body;
  bool ok = false;
};

// Runs a TlsTransport on one end of a socketpair and a plain OpenSSL client
// on the other; the client sends "ping", the server answers "pong".
Handshake RunHandshake(TlsContext& ctx, int client_max, const char* client_suites) {
  int sv[2];
  EXPECT_EQ(::socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
  Handshake h;
  std::thread server([&] {
    HostSocket sock(sv[0], "pair");
    TlsTransport t(ctx, sock);
    std::string err;
    if (!t.handshake(&err)) {
      ADD_FAILURE() << err;
      return;
    }
    h.server_version = t.version();
    h.server_cipher = t.cipher();
    char buf[4];
    size_t got = 0;
    while (got < 4) {
      ssize_t n = t.read(buf + got, 4 - got);
      if (n <= 0) break;
      got += static_cast<size_t>(n);
    }
    EXPECT_EQ(std::string(buf, got), "ping");
    EXPECT_TRUE(t.write("pong", 4));
    EXPECT_FALSE(t.ktls_send());  // a unix socket never takes TLS keys
    t.close();
  });
  SSL_CTX* cctx = SSL_CTX_new(TLS_client_method());
  SSL_CTX_set_max_proto_version(cctx, client_max);
  if (client_max == TLS1_2_VERSION) {
    SSL_CTX_set_cipher_list(cctx, client_suites);
  } else {
    SSL_CTX_set_ciphersuites(cctx, client_suites);
  }
  SSL_CTX_set_keylog_callback(cctx, [](const SSL*, const char* line) {
    g_client_keylog->push_back(line);
  });
  SSL* ssl = SSL_new(cctx);
  SSL_set_fd(ssl, sv[1]);
  if (SSL_connect(ssl) == 1) {
    SSL_write(ssl, "ping", 4);
    char buf[16];
    int n;
    while ((n = SSL_read(ssl, buf, sizeof(buf))) > 0) h.client_body.append(buf, n);
    h.ok = true;
  } else {
    ADD_FAILURE() << "client: " << OpenSslErrors();
  }
  server.join();
  SSL_free(ssl);
  SSL_CTX_free(cctx);
  ::close(sv[1]);
  return h;
}

TEST(TlsTransport, HandshakesAndKeyLogMatchesTheClients) {
  std::string dir = ukhttpd_test::MakeTestDir("tls");
  TlsConfig c;
  c.keylog_file = dir + "/keylog";
  auto ctx = TlsContext::Create(c);
  ASSERT_TRUE(ctx.ok()) << ctx.status();
  std::vector<std::string> client_lines;
  g_client_keylog = &client_lines;

  struct Case {
    int max;
    const char* suites;
    const char* version;
    const char* cipher;
  } cases[] = {
      {TLS1_3_VERSION, "TLS_AES_128_GCM_SHA256", "TLSv1.3", "TLS_AES_128_GCM_SHA256"},
      {TLS1_3_VERSION, "TLS_AES_256_GCM_SHA384", "TLSv1.3", "TLS_AES_256_GCM_SHA384"},
      {TLS1_3_VERSION, "TLS_CHACHA20_POLY1305_SHA256", "TLSv1.3", "TLS_CHACHA20_POLY1305_SHA256"},
      {TLS1_2_VERSION, "ECDHE-ECDSA-AES128-GCM-SHA256", "TLSv1.2", "ECDHE-ECDSA-AES128-GCM-SHA256"},
      {TLS1_2_VERSION, "ECDHE-ECDSA-AES256-GCM-SHA384", "TLSv1.2", "ECDHE-ECDSA-AES256-GCM-SHA384"},
      {TLS1_2_VERSION, "ECDHE-ECDSA-CHACHA20-POLY1305", "TLSv1.2", "ECDHE-ECDSA-CHACHA20-POLY1305"},
  };
  for (const Case& k : cases) {
    Handshake h = RunHandshake(**ctx, k.max, k.suites);
    EXPECT_TRUE(h.ok) << k.suites;
    EXPECT_EQ(h.server_version, k.version);
    EXPECT_EQ(h.server_cipher, k.cipher);
    EXPECT_EQ(h.client_body, "pong");
  }
  ctx->reset();  // flushes and closes the key log

  std::vector<std::string> server_lines;
  std::istringstream in(ukhttpd_test::ReadFile(c.keylog_file));
  for (std::string l; std::getline(in, l);) server_lines.push_back(l);
  // Every secret either side derived is logged by both, with the same text.
  EXPECT_EQ(std::multiset<std::string>(server_lines.begin(), server_lines.end()),
            std::multiset<std::string>(client_lines.begin(), client_lines.end()));
  // 3 TLS 1.3 handshakes x 5 secrets + 3 TLS 1.2 x CLIENT_RANDOM.
  EXPECT_EQ(server_lines.size(), 3u * 5 + 3u);
}

}  // namespace
}  // namespace ukhttpd
