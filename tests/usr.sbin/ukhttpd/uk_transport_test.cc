// ukhttpd inside a uktls kernel: the tmpfs docroot (generated and imported
// from a host directory), and the HTTP core on UkListener/UkSocket served to
// an unmodified OpenSSL client over lib/libuk_ssl in the same kernel. Bodies
// must leave by uk_sendfile when OpenSSL handed its keys to the kernel and by
// SSL_write when it did not, with the TX mode read back per connection.
#include <arpa/inet.h>
#include <fcntl.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <sys/stat.h>

#include <gtest/gtest.h>

#include <cstring>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "lib/libuk/uk.h"
#include "lib/libuk_ssl/uk_ssl.h"
#include "tests/usr.sbin/ukhttpd/http_response.h"
#include "tests/usr.sbin/ukhttpd/test_dir.h"
#include "usr.sbin/ukhttpd/docroot_gen.h"
#include "usr.sbin/ukhttpd/docroot_host.h"
#include "usr.sbin/ukhttpd/docroot_uk.h"
#include "usr.sbin/ukhttpd/httpd.h"
#include "usr.sbin/ukhttpd/tls.h"
#include "usr.sbin/ukhttpd/uk_transport.h"

namespace ukhttpd {
namespace {

using ukhttpd_test::Response;
using ukhttpd_test::TakeResponse;

constexpr uint64_t kBig = 300 * 1024 + 17;  // several records, not page-aligned

class UkHttpd : public ::testing::Test {
 protected:
  void SetUp() override {
    uk_boot_config cfg{};
    cfg.ncpus = 2;
    k_ = uk_boot(&cfg);
    ASSERT_NE(k_, nullptr);
    p_ = uk_proc_create(k_, "ukhttpd");
    manifest_ = std::make_shared<UkTmpfsManifest>();
    UkTmpfsDocSink sink(p_, "/www", manifest_);
    ASSERT_EQ(WriteDocroot(sink, {{"1k.bin", 1024}, {"big.bin", kBig}}, nullptr), 0);
    root_ = std::make_unique<UkTmpfsDocroot>(p_, "/www", manifest_);
  }
  void TearDown() override {
    root_.reset();
    EXPECT_EQ(uk_halt(k_), 0);
  }

  // Serves on 127.0.0.1 of the kernel with |ktls| on or off and fetches
  // |requests| (raw HTTP) with a TLS client of |version| over the uk BIO.
  // Returns the responses; *stats and *counters describe the server side.
  std::vector<Response> Fetch(bool ktls, int version, const std::string& requests,
                              int want_mode, std::vector<bool> head_flags,
                              std::shared_ptr<UkModeStats>* stats, Counters* counters) {
    TlsConfig tc;
    tc.ktls = ktls;
    auto tls = TlsContext::Create(tc);
    EXPECT_TRUE(tls.ok());
    std::unique_ptr<UkListener> l;
    std::string what;
    EXPECT_EQ(UkListener::Open(p_, "127.0.0.1:0", 5, want_mode, &l, &what), 0) << what;
    *stats = l->mode_stats();
    HttpConfig hc;
    Server srv(hc, root_.get(), tls->get(), counters, 8);
    std::thread st([&] { srv.run(*l); });

    SSL_CTX* cctx = SSL_CTX_new(TLS_client_method());
    SSL_CTX_set_min_proto_version(cctx, version);
    SSL_CTX_set_max_proto_version(cctx, version);
    SSL_CTX_set_options(cctx, SSL_OP_ENABLE_KTLS);
    int s = uk_socket(p_, AF_INET, SOCK_STREAM, 0);
    sockaddr_in sin{};
    sin.sin_family = AF_INET;
    sin.sin_port = htons(static_cast<uint16_t>(l->port()));
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(uk_connect(p_, s, reinterpret_cast<sockaddr*>(&sin), sizeof sin), 0);
    SSL* ssl = SSL_new(cctx);
    BIO* b = uk_BIO_new_socket(p_, s, BIO_CLOSE);
    SSL_set_bio(ssl, b, b);
    EXPECT_EQ(SSL_connect(ssl), 1) << ERR_reason_error_string(ERR_get_error());
    size_t n = 0;
    EXPECT_EQ(SSL_write_ex(ssl, requests.data(), requests.size(), &n), 1);
    std::string in;
    char buf[65536];
    while (SSL_read_ex(ssl, buf, sizeof buf, &n) == 1) in.append(buf, n);
    std::vector<Response> out;
    for (bool head : head_flags) {
      Response r;
      if (!TakeResponse(&in, head, &r)) break;
      out.push_back(r);
    }
    EXPECT_TRUE(in.empty()) << in.size() << " bytes after the responses";
    SSL_free(ssl);
    SSL_CTX_free(cctx);
    srv.stop();
    st.join();
    return out;
  }

  std::string Pattern(const std::string& name, uint64_t off, uint64_t len) {
    std::string s(len, '\0');
    PatternFill(name, off, reinterpret_cast<uint8_t*>(s.data()), len);
    return s;
  }

  uk_kernel* k_ = nullptr;
  uk_proc* p_ = nullptr;
  std::shared_ptr<UkTmpfsManifest> manifest_;
  std::unique_ptr<UkTmpfsDocroot> root_;
};

const char kRequests[] =
    "GET /big.bin HTTP/1.1\r\nHost: x\r\n\r\n"
    "GET /big.bin HTTP/1.1\r\nHost: x\r\nRange: bytes=16380-40000\r\n\r\n"
    "HEAD /1k.bin HTTP/1.1\r\nHost: x\r\n\r\n"
    "GET /nope HTTP/1.1\r\nHost: x\r\n\r\n"
    "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";

TEST_F(UkHttpd, TmpfsDocrootAnswersFromTheManifestAndReadsTheKernelFiles) {
  DocKind kind;
  EXPECT_EQ(root_->stat("", &kind), 0);
  EXPECT_EQ(kind, DocKind::kDirectory);
  EXPECT_EQ(root_->stat("big.bin", &kind), 0);
  EXPECT_EQ(kind, DocKind::kFile);
  EXPECT_EQ(root_->stat("missing", &kind), ENOENT);
  std::unique_ptr<DocFile> f;
  EXPECT_EQ(root_->open("", &f), EISDIR);
  ASSERT_EQ(root_->open("big.bin", &f), 0);
  EXPECT_EQ(f->size(), kBig);
  EXPECT_GE(f->sendfile_fd(), 0);
  std::string got(5000, '\0');
  EXPECT_EQ(f->pread(got.data(), got.size(), kBig - 5000), 5000);
  EXPECT_EQ(got, Pattern("big.bin", kBig - 5000, 5000));
  EXPECT_EQ(root_->open("index.html", &f), 0);
}

TEST_F(UkHttpd, ImportTreeStreamsAHostDirectoryIntoTmpfs) {
  std::string dir = ukhttpd_test::MakeTestDir("import");
  ASSERT_EQ(::mkdir((dir + "/sub").c_str(), 0755), 0);
  std::string big = Pattern("x", 0, 3 * 1024 * 1024 + 5);  // more than one chunk
  ukhttpd_test::WriteFile(dir + "/sub/big.dat", big);
  ukhttpd_test::WriteFile(dir + "/a.txt", "alpha");
  ASSERT_EQ(::mkdir((dir + "/empty").c_str(), 0755), 0);
  auto m = std::make_shared<UkTmpfsManifest>();
  {
    UkTmpfsDocSink sink(p_, "/imp", m);
    std::string what;
    ASSERT_EQ(ImportTree(dir, sink, &what), 0) << what;
  }
  UkTmpfsDocroot r(p_, "/imp", m);
  DocKind kind;
  ASSERT_EQ(r.stat("sub", &kind), 0);
  EXPECT_EQ(kind, DocKind::kDirectory);
  ASSERT_EQ(r.stat("empty", &kind), 0);  // exists only in the manifest
  EXPECT_EQ(kind, DocKind::kDirectory);
  std::unique_ptr<DocFile> f;
  ASSERT_EQ(r.open("sub/big.dat", &f), 0);
  ASSERT_EQ(f->size(), big.size());
  std::string back(big.size(), '\0');
  EXPECT_EQ(f->pread(back.data(), back.size(), 0), static_cast<ssize_t>(big.size()));
  EXPECT_TRUE(back == big);
  // The kernel's file has the size the manifest claims.
  int fd = uk_open(p_, "/imp/a.txt", O_RDONLY, 0);
  ASSERT_GE(fd, 0);
  char c[16];
  EXPECT_EQ(uk_pread(p_, fd, c, sizeof c, 0), 5);
  uk_close(p_, fd);
}

TEST_F(UkHttpd, KtlsBodiesLeaveBySendfileInSwMode) {
  for (int version : {TLS1_2_VERSION, TLS1_3_VERSION}) {
    SCOPED_TRACE(version == TLS1_2_VERSION ? "TLS 1.2" : "TLS 1.3");
    std::shared_ptr<UkModeStats> ms;
    Counters c;
    auto rs = Fetch(true, version, kRequests, 0, {false, false, true, false, false}, &ms, &c);
    ASSERT_EQ(rs.size(), 5u);
    EXPECT_EQ(rs[0].status, 200);
    EXPECT_TRUE(rs[0].body == Pattern("big.bin", 0, kBig));
    EXPECT_EQ(rs[1].status, 206);
    EXPECT_EQ(rs[1].header("content-range"), "bytes 16380-40000/" + std::to_string(kBig));
    EXPECT_TRUE(rs[1].body == Pattern("big.bin", 16380, 40000 - 16380 + 1));
    EXPECT_EQ(rs[2].status, 200);
    EXPECT_EQ(rs[2].header("content-length"), "1024");
    EXPECT_EQ(rs[3].status, 404);
    EXPECT_EQ(rs[4].status, 200);
    EXPECT_NE(rs[4].body.find("big.bin"), std::string::npos);
    EXPECT_EQ(c.ktls_tx_connections.load(), 1u);
    EXPECT_EQ(c.bodies_sendfile.load(), 3u);  // big, the range, index.html
    EXPECT_EQ(c.bodies_ssl_write.load(), 0u);
    EXPECT_EQ(ms->tx_mode[TCP_TLS_MODE_SW].load(), 1u);
    EXPECT_EQ(ms->switch_attempts.load(), 0u);
  }
}

TEST_F(UkHttpd, WithoutKtlsBodiesFallBackToSslWrite) {
  std::shared_ptr<UkModeStats> ms;
  Counters c;
  auto rs = Fetch(false, TLS1_2_VERSION, kRequests, 0, {false, false, true, false, false}, &ms,
                  &c);
  ASSERT_EQ(rs.size(), 5u);
  EXPECT_TRUE(rs[0].body == Pattern("big.bin", 0, kBig));
  EXPECT_EQ(c.ktls_tx_connections.load(), 0u);
  EXPECT_EQ(c.bodies_sendfile.load(), 0u);
  EXPECT_EQ(c.bodies_ssl_write.load(), 3u);
  for (int m = 0; m < 4; m++) EXPECT_EQ(ms->tx_mode[m].load(), 0u);
}

// lo0 has no TLS offload, so asking for IFNET fails as ktls(4) says it
// does without a capable interface, and the session stays in SW.
TEST_F(UkHttpd, RequestedIfnetWithoutACapableNicStaysSwAndSaysWhy) {
  std::shared_ptr<UkModeStats> ms;
  Counters c;
  auto rs = Fetch(true, TLS1_2_VERSION,
                  "GET /1k.bin HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
                  TCP_TLS_MODE_IFNET, {false}, &ms, &c);
  ASSERT_EQ(rs.size(), 1u);
  EXPECT_TRUE(rs[0].body == Pattern("1k.bin", 0, 1024));
  EXPECT_EQ(ms->switch_attempts.load(), 1u);
  EXPECT_EQ(ms->switch_failures.load(), 1u);
  EXPECT_NE(ms->last_error.load(), 0);
  EXPECT_EQ(ms->tx_mode[TCP_TLS_MODE_SW].load(), 1u);
  EXPECT_EQ(c.bodies_sendfile.load(), 1u);
}

}  // namespace
}  // namespace ukhttpd
