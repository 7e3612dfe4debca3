// End to end: ukhttpd_host started as a real process on 127.0.0.1 with an
// ephemeral port, driven by the host's curl and openssl s_client. Bodies are
// checked by SHA-256 against the generator's digests (computed without
// reading the docroot), the negotiated version and cipher against what curl
// reports, the key log against the one curl writes itself.
#include <poll.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <openssl/evp.h>
#include <openssl/ssl.h>

#include <fstream>
#include <nlohmann/json.hpp>
// GCC 12 warns (-Wmaybe-uninitialized) inside libstdc++'s regex compiler
// when it is inlined into an ASan build; the warning is about library code.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#include <regex>
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif
#include <set>
#include <sstream>

#include <gtest/gtest.h>

#include "tests/usr.sbin/ukhttpd/http_response.h"
#include "tests/usr.sbin/ukhttpd/subprocess.h"
#include "tests/usr.sbin/ukhttpd/test_dir.h"
#include "usr.sbin/ukhttpd/docroot_gen.h"
#include "usr.sbin/ukhttpd/docroot_host.h"

namespace ukhttpd {
namespace {

using ukhttpd_test::MakeTestDir;
using ukhttpd_test::ReadFile;
using ukhttpd_test::Response;
using ukhttpd_test::SpawnSpec;
using ukhttpd_test::WriteFile;

std::string Sha256Hex(const std::string& data) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  EVP_Digest(data.data(), data.size(), md, &n, EVP_sha256(), nullptr);
  std::string out;
  char b[3];
  for (unsigned i = 0; i < n; ++i) {
    std::snprintf(b, sizeof(b), "%02x", md[i]);
    out += b;
  }
  return out;
}

std::string Pattern(const std::string& name, uint64_t off, uint64_t len) {
  std::string s(len, '\0');
  PatternFill(name, off, reinterpret_cast<uint8_t*>(s.data()), len);
  return s;
}

std::string ServerBinary() {
  const char* srcdir = std::getenv("TEST_SRCDIR");
  const char* ws = std::getenv("TEST_WORKSPACE");
  return std::string(srcdir ? srcdir : ".") + "/" + (ws ? ws : "uktls") +
         "/usr.sbin/ukhttpd/ukhttpd_host";
}

// A running ukhttpd_host. Stop() sends SIGTERM and returns the exit status.
class ServerProcess {
 public:
  bool Start(const std::string& dir, std::vector<std::string> args,
             std::vector<std::string> env = {}) {
    SpawnSpec s;
    s.argv = {ServerBinary(), "--listen", "127.0.0.1:0", "--access-log", "--idle-timeout", "20"};
    for (auto& a : args) s.argv.push_back(a);
    s.env = std::move(env);
    stderr_file_ = dir + "/server.stderr." + std::to_string(++seq_);
    s.stderr_file = stderr_file_;
    int out = -1;
    s.stdout_pipe = &out;
    pid_ = ukhttpd_test::Spawn(s);
    if (pid_ < 0) return false;
    // The first stdout line says where it listens.
    std::string line;
    char c;
    while (true) {
      struct pollfd p = {out, POLLIN, 0};
      if (::poll(&p, 1, 120000) <= 0) break;  // a hang guard, not a measurement
      if (::read(out, &c, 1) != 1) break;
      if (c == '\n') break;
      line.push_back(c);
    }
    ::close(out);
    std::smatch m;
    if (!std::regex_search(line, m, std::regex("https://127\\.0\\.0\\.1:([0-9]+)/"))) {
      ADD_FAILURE() << "server did not start: " << line << "\n" << ReadFile(stderr_file_);
      Stop();
      return false;
    }
    port_ = std::stoi(m[1]);
    listen_line_ = line;
    return true;
  }
  int Stop() {
    if (pid_ <= 0) return -1;
    ::kill(pid_, SIGTERM);
    int st = ukhttpd_test::Wait(pid_);
    pid_ = -1;
    return st;
  }
  ~ServerProcess() { Stop(); }
  std::string url(const std::string& path) const {
    return "https://127.0.0.1:" + std::to_string(port_) + path;
  }
  int port() const { return port_; }
  std::string stderr_text() const { return ReadFile(stderr_file_); }
  const std::string& listen_line() const { return listen_line_; }

 private:
  static inline int seq_ = 0;
  pid_t pid_ = -1;
  int port_ = 0;
  std::string stderr_file_, listen_line_;
};

struct CurlResult {
  int exit = -1;
  std::string body, stderr_text, headers;
};

class UkhttpdHostTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new std::string(MakeTestDir("e2e"));
    docroot_ = new std::string(*dir_ + "/www");
    HostDocSink sink(*docroot_);
    sums_ = new std::vector<std::string>();
    ASSERT_EQ(WriteDocroot(sink, DefaultFiles(), sums_), 0);
    WriteFile(*dir_ + "/secret.txt", "TOP-SECRET");
    ASSERT_EQ(::symlink("../secret.txt", (*docroot_ + "/escape").c_str()), 0);
    server_ = new ServerProcess();
    ASSERT_TRUE(server_->Start(*dir_, {"--docroot", *docroot_, "--cert-out", *dir_ + "/cert.pem"}));
  }
  static void TearDownTestSuite() {
    int st = server_->Stop();
    EXPECT_EQ(st, 0) << server_->stderr_text();
    delete server_;
    delete sums_;
    delete docroot_;
    delete dir_;
  }

  // Runs curl with |args| + |url|, body to a file, -v to stderr.
  CurlResult Curl(std::vector<std::string> args, const std::string& url,
                  std::vector<std::string> env = {}) {
    static int seq = 0;
    std::string base = *dir_ + "/curl." + std::to_string(++seq);
    SpawnSpec s;
    s.argv = {Curl(), "-sS", "-v", "-o", base + ".body", "-D", base + ".headers"};
    for (auto& a : args) s.argv.push_back(a);
    s.argv.push_back(url);
    s.env = std::move(env);
    s.stderr_file = base + ".stderr";
    CurlResult r;
    r.exit = ukhttpd_test::Run(s);
    r.body = ReadFile(base + ".body");
    r.headers = ReadFile(base + ".headers");
    r.stderr_text = ReadFile(base + ".stderr");
    ::unlink((base + ".body").c_str());
    return r;
  }
  static std::string Curl() { return ukhttpd_test::FindProgram("curl"); }
  static std::string OpenSsl() { return ukhttpd_test::FindProgram("openssl"); }

  // Sends |request| through `openssl s_client` and returns what came back.
  std::string SClient(const std::string& request, std::vector<std::string> args = {}) {
    static int seq = 0;
    std::string base = *dir_ + "/sclient." + std::to_string(++seq);
    WriteFile(base + ".in", request);
    SpawnSpec s;
    s.argv = {OpenSsl(), "s_client", "-connect", "127.0.0.1:" + std::to_string(server_->port()),
              "-servername", "localhost", "-quiet"};
    for (auto& a : args) s.argv.push_back(a);
    s.stdin_file = base + ".in";
    s.stdout_file = base + ".out";
    s.stderr_file = base + ".err";
    int st = ukhttpd_test::Run(s);
    EXPECT_EQ(st, 0) << ReadFile(base + ".err");
    return ReadFile(base + ".out");
  }

  std::vector<Response> Responses(std::string raw, std::vector<bool> heads = {}) {
    std::vector<Response> out;
    for (size_t i = 0; !raw.empty(); ++i) {
      Response r;
      if (!ukhttpd_test::TakeResponse(&raw, i < heads.size() && heads[i], &r)) {
        ADD_FAILURE() << "unparseable: " << raw.substr(0, 300);
        break;
      }
      out.push_back(r);
    }
    return out;
  }

  static std::string Sum(const std::string& name) {
    auto files = DefaultFiles();
    for (size_t i = 0; i < files.size(); ++i) {
      if (files[i].name == name) return (*sums_)[i];
    }
    return "";
  }

  static std::string* dir_;
  static std::string* docroot_;
  static std::vector<std::string>* sums_;
  static ServerProcess* server_;
};
std::string* UkhttpdHostTest::dir_ = nullptr;
std::string* UkhttpdHostTest::docroot_ = nullptr;
std::vector<std::string>* UkhttpdHostTest::sums_ = nullptr;
ServerProcess* UkhttpdHostTest::server_ = nullptr;

TEST_F(UkhttpdHostTest, GeneratorDigestsAreThePatternDigests) {
  for (const auto& f : DefaultFiles()) EXPECT_EQ(Sum(f.name), PatternSha256(f.name, f.size));
}

TEST_F(UkhttpdHostTest, DownloadsMatchAcrossVersionsAndCiphers) {
  struct Case {
    std::vector<std::string> args;
    std::string expect;  // as curl -v prints it
  } cases[] = {
      {{"--tlsv1.2", "--tls-max", "1.2", "--ciphers", "ECDHE-ECDSA-AES128-GCM-SHA256"},
       "TLSv1.2 / ECDHE-ECDSA-AES128-GCM-SHA256"},
      {{"--tlsv1.2", "--tls-max", "1.2", "--ciphers", "ECDHE-ECDSA-AES256-GCM-SHA384"},
       "TLSv1.2 / ECDHE-ECDSA-AES256-GCM-SHA384"},
      {{"--tlsv1.2", "--tls-max", "1.2", "--ciphers", "ECDHE-ECDSA-CHACHA20-POLY1305"},
       "TLSv1.2 / ECDHE-ECDSA-CHACHA20-POLY1305"},
      {{"--tlsv1.3", "--tls13-ciphers", "TLS_AES_128_GCM_SHA256"},
       "TLSv1.3 / TLS_AES_128_GCM_SHA256"},
      {{"--tlsv1.3", "--tls13-ciphers", "TLS_AES_256_GCM_SHA384"},
       "TLSv1.3 / TLS_AES_256_GCM_SHA384"},
      {{"--tlsv1.3", "--tls13-ciphers", "TLS_CHACHA20_POLY1305_SHA256"},
       "TLSv1.3 / TLS_CHACHA20_POLY1305_SHA256"},
  };
  for (auto& c : cases) {
    std::vector<std::string> args = c.args;
    args.insert(args.begin(), "-k");
    CurlResult r = Curl(args, server_->url("/1m.bin"));
    ASSERT_EQ(r.exit, 0) << r.stderr_text;
    EXPECT_NE(r.stderr_text.find("SSL connection using " + c.expect), std::string::npos)
        << r.stderr_text;
    EXPECT_EQ(Sha256Hex(r.body), Sum("1m.bin")) << c.expect;
  }
}

TEST_F(UkhttpdHostTest, LargeAndSmallFiles) {
  for (const char* f : {"1k.bin", "64m.bin"}) {
    CurlResult r = Curl({"-k"}, server_->url(std::string("/") + f));
    ASSERT_EQ(r.exit, 0) << r.stderr_text;
    EXPECT_EQ(Sha256Hex(r.body), Sum(f)) << f;
  }
}

TEST_F(UkhttpdHostTest, ThirtyTwoParallelDownloads) {
  std::vector<pid_t> pids;
  std::vector<std::string> outs;
  for (int i = 0; i < 32; ++i) {
    SpawnSpec s;
    std::string out = *dir_ + "/par." + std::to_string(i);
    s.argv = {Curl(), "-k", "-sS", "-o", out, server_->url("/1m.bin")};
    s.stderr_file = out + ".err";
    pid_t pid = ukhttpd_test::Spawn(s);
    ASSERT_GT(pid, 0);
    pids.push_back(pid);
    outs.push_back(out);
  }
  for (size_t i = 0; i < pids.size(); ++i) {
    EXPECT_EQ(ukhttpd_test::Wait(pids[i]), 0) << ReadFile(outs[i] + ".err");
    EXPECT_EQ(Sha256Hex(ReadFile(outs[i])), Sum("1m.bin")) << i;
    ::unlink(outs[i].c_str());
  }
}

TEST_F(UkhttpdHostTest, RangeRequests) {
  const uint64_t size = 1 << 20;
  struct Case {
    std::string range;
    uint64_t first, len;
  } cases[] = {
      {"0-99", 0, 100}, {"1048000-", 1048000, size - 1048000}, {"-100", size - 100, 100},
      {"12345-67890", 12345, 67890 - 12345 + 1}};
  for (auto& c : cases) {
    CurlResult r = Curl({"-k", "-r", c.range}, server_->url("/1m.bin"));
    ASSERT_EQ(r.exit, 0) << r.stderr_text;
    EXPECT_NE(r.headers.find("HTTP/1.1 206 Partial Content"), std::string::npos) << r.headers;
    EXPECT_NE(r.headers.find("Content-Range: bytes " + std::to_string(c.first) + "-" +
                             std::to_string(c.first + c.len - 1) + "/1048576"),
              std::string::npos)
        << r.headers;
    EXPECT_EQ(r.body, Pattern("1m.bin", c.first, c.len)) << c.range;
  }
  CurlResult r = Curl({"-k", "-r", "2000000-"}, server_->url("/1m.bin"));
  EXPECT_NE(r.headers.find("HTTP/1.1 416"), std::string::npos) << r.headers;
  EXPECT_NE(r.headers.find("Content-Range: bytes */1048576"), std::string::npos) << r.headers;
  // Several ranges: answered with the whole file (documented choice).
  r = Curl({"-k", "-r", "0-1,5-6"}, server_->url("/1k.bin"));
  EXPECT_NE(r.headers.find("HTTP/1.1 200 OK"), std::string::npos) << r.headers;
  EXPECT_EQ(Sha256Hex(r.body), Sum("1k.bin"));
}

TEST_F(UkhttpdHostTest, HeadAndStatuses) {
  CurlResult r = Curl({"-k", "-I"}, server_->url("/64m.bin"));
  ASSERT_EQ(r.exit, 0) << r.stderr_text;
  EXPECT_NE(r.headers.find("HTTP/1.1 200 OK"), std::string::npos);
  EXPECT_NE(r.headers.find("Content-Length: 67108864"), std::string::npos) << r.headers;
  EXPECT_NE(r.headers.find("Content-Type: application/octet-stream"), std::string::npos);
  // With -I curl writes the head where the body would go; no body follows it.
  EXPECT_EQ(r.body, r.headers);

  r = Curl({"-k"}, server_->url("/"));
  EXPECT_NE(r.headers.find("Content-Type: text/html"), std::string::npos);
  for (const auto& f : DefaultFiles()) {
    EXPECT_NE(r.body.find(Sum(f.name)), std::string::npos) << "index lists " << f.name;
  }

  r = Curl({"-k"}, server_->url("/missing.bin"));
  EXPECT_NE(r.headers.find("HTTP/1.1 404"), std::string::npos) << r.headers;
  r = Curl({"-k", "-X", "DELETE"}, server_->url("/1k.bin"));
  EXPECT_NE(r.headers.find("HTTP/1.1 405"), std::string::npos) << r.headers;
  EXPECT_NE(r.headers.find("Allow: GET, HEAD"), std::string::npos) << r.headers;
  r = Curl({"-k", "--data", "x=1"}, server_->url("/1k.bin"));
  EXPECT_NE(r.headers.find("HTTP/1.1 405"), std::string::npos) << r.headers;
}

TEST_F(UkhttpdHostTest, TraversalAttemptsNeverLeaveTheDocroot) {
  for (const char* path : {"/../secret.txt", "/%2e%2e/secret.txt", "/..%2fsecret.txt",
                           "/escape", "/%2e%2e%2f%2e%2e%2fetc/passwd", "/1k.bin%00",
                           "/../../../../etc/passwd"}) {
    CurlResult r = Curl({"-k", "--path-as-is"}, server_->url(path));
    std::smatch m;
    ASSERT_TRUE(std::regex_search(r.headers, m, std::regex("HTTP/1.1 ([0-9]{3})"))) << path;
    int st = std::stoi(m[1]);
    EXPECT_TRUE(st == 400 || st == 403 || st == 404) << path << " -> " << st;
    EXPECT_EQ(r.body.find("TOP-SECRET"), std::string::npos) << path;
    EXPECT_EQ(r.body.find("root:"), std::string::npos) << path;
  }
}

TEST_F(UkhttpdHostTest, RawRequestsThroughSClient) {
  // Bad request: 400 and the server closes (s_client -quiet exits on close).
  auto rs = Responses(SClient("GARBAGE\r\n\r\n"));
  ASSERT_EQ(rs.size(), 1u);
  EXPECT_EQ(rs[0].status, 400);
  EXPECT_EQ(rs[0].header("connection"), "close");

  rs = Responses(SClient("GET / HTTP/1.1\r\n\r\n"));  // no Host
  ASSERT_EQ(rs.size(), 1u);
  EXPECT_EQ(rs[0].status, 400);

  rs = Responses(SClient("BREW /pot HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"));
  ASSERT_EQ(rs.size(), 1u);
  EXPECT_EQ(rs[0].status, 405);
  EXPECT_EQ(rs[0].header("allow"), "GET, HEAD");

  rs = Responses(SClient("GET /../secret.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"));
  ASSERT_EQ(rs.size(), 1u);
  EXPECT_EQ(rs[0].status, 403);

  rs = Responses(SClient("GET /%00 HTTP/1.1\r\nHost: x\r\n\r\n"));
  ASSERT_EQ(rs.size(), 1u);
  EXPECT_EQ(rs[0].status, 400);

  rs = Responses(SClient("GET /" + std::string(10000, 'a') + " HTTP/1.1\r\nHost: x\r\n\r\n"));
  ASSERT_EQ(rs.size(), 1u);
  EXPECT_EQ(rs[0].status, 414);

  // Keep-alive with pipelining: three requests on one connection, the last
  // one closes it.
  rs = Responses(SClient("GET /1k.bin HTTP/1.1\r\nHost: x\r\n\r\n"
                         "HEAD /1m.bin HTTP/1.1\r\nHost: x\r\n\r\n"
                         "GET /1k.bin HTTP/1.1\r\nHost: x\r\nRange: bytes=10-19\r\n"
                         "Connection: close\r\n\r\n"),
                 {false, true, false});
  ASSERT_EQ(rs.size(), 3u);
  EXPECT_EQ(Sha256Hex(rs[0].body), Sum("1k.bin"));
  EXPECT_EQ(rs[1].header("content-length"), "1048576");
  EXPECT_EQ(rs[2].status, 206);
  EXPECT_EQ(rs[2].body, Pattern("1k.bin", 10, 10));

  // HTTP/1.0 closes after one response, over TLS 1.2 with ChaCha20.
  rs = Responses(SClient("GET /1m.bin HTTP/1.0\r\n\r\n",
                         {"-tls1_2", "-cipher", "ECDHE-ECDSA-CHACHA20-POLY1305"}));
  ASSERT_EQ(rs.size(), 1u);
  EXPECT_EQ(rs[0].header("connection"), "close");
  EXPECT_EQ(Sha256Hex(rs[0].body), Sum("1m.bin"));

  rs = Responses(SClient("GET /1m.bin HTTP/1.0\r\n\r\n",
                         {"-tls1_3", "-ciphersuites", "TLS_AES_256_GCM_SHA384"}));
  ASSERT_EQ(rs.size(), 1u);
  EXPECT_EQ(Sha256Hex(rs[0].body), Sum("1m.bin"));
}

// The server ends the connection itself after "Connection: close" (and
// after HTTP/1.0): the client reads to end of stream, it does not have to
// rely on Content-Length. SO_RCVTIMEO is only a guard against a hang.
TEST_F(UkhttpdHostTest, ServerClosesAfterConnectionClose) {
  for (const char* req : {"GET /1k.bin HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
                          "GET /1k.bin HTTP/1.0\r\n\r\n", "GARBAGE\r\n\r\n"}) {
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    ASSERT_GE(fd, 0);
    struct timeval tv = {20, 0};
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    struct sockaddr_in a = {};
    a.sin_family = AF_INET;
    a.sin_port = htons(static_cast<uint16_t>(server_->port()));
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ASSERT_EQ(::connect(fd, reinterpret_cast<struct sockaddr*>(&a), sizeof(a)), 0);
    SSL_CTX* ctx = SSL_CTX_new(TLS_client_method());
    SSL* ssl = SSL_new(ctx);
    SSL_set_fd(ssl, fd);
    ASSERT_EQ(SSL_connect(ssl), 1);
    ASSERT_EQ(SSL_write(ssl, req, static_cast<int>(strlen(req))), static_cast<int>(strlen(req)));
    std::string got;
    char buf[4096];
    int n;
    while ((n = SSL_read(ssl, buf, sizeof(buf))) > 0) got.append(buf, n);
    int err = SSL_get_error(ssl, n);
    EXPECT_EQ(err, SSL_ERROR_ZERO_RETURN) << req << ": the server did not close (errno "
                                          << errno << ")";
    // After close_notify, TCP's end of stream: the descriptor is closed, not
    // merely the TLS session.
    char b;
    EXPECT_EQ(::recv(fd, &b, 1, 0), 0) << req << ": no FIN (errno " << errno << ")";
    auto rs = Responses(got);
    ASSERT_EQ(rs.size(), 1u) << req;
    EXPECT_EQ(rs[0].header("connection"), "close");
    SSL_free(ssl);
    SSL_CTX_free(ctx);
    ::close(fd);
  }
}

TEST_F(UkhttpdHostTest, GeneratedCertificateVerifiesForLocalhostAndLoopback) {
  for (const char* host : {"localhost", "127.0.0.1"}) {
    CurlResult r = Curl({"--cacert", *dir_ + "/cert.pem"},
                        "https://" + std::string(host) + ":" + std::to_string(server_->port()) +
                            "/1k.bin");
    ASSERT_EQ(r.exit, 0) << host << "\n" << r.stderr_text;
    EXPECT_EQ(Sha256Hex(r.body), Sum("1k.bin"));
  }
}

// Key log and counters need a server of their own, so that every connection
// it saw is one this test made.
TEST_F(UkhttpdHostTest, KeyLogMatchesCurlsAndCountersAddUp) {
  std::string dir = MakeTestDir("keylog");
  ServerProcess s;
  ASSERT_TRUE(s.Start(dir, {"--docroot", *docroot_, "--keylog", dir + "/server.keys",
                            "--stats-json", dir + "/stats.json", "--key-type", "rsa"}));
  std::vector<std::string> env = {"SSLKEYLOGFILE=" + dir + "/client.keys"};
  CurlResult r = Curl({"-k", "--tlsv1.3"}, s.url("/1m.bin"), env);
  ASSERT_EQ(r.exit, 0) << r.stderr_text;
  EXPECT_EQ(Sha256Hex(r.body), Sum("1m.bin"));
  r = Curl({"-k", "--tlsv1.2", "--tls-max", "1.2", "--ciphers", "ECDHE-RSA-AES128-GCM-SHA256"},
           s.url("/1k.bin"), env);
  ASSERT_EQ(r.exit, 0) << r.stderr_text;
  EXPECT_NE(r.stderr_text.find("TLSv1.2 / ECDHE-RSA-AES128-GCM-SHA256"), std::string::npos);
  r = Curl({"-k", "-r", "0-9"}, s.url("/1k.bin"), env);
  ASSERT_EQ(r.exit, 0);
  r = Curl({"-k"}, s.url("/nope"), env);
  ASSERT_EQ(r.exit, 0);
  r = Curl({"-k", "-I"}, s.url("/1m.bin"), env);
  ASSERT_EQ(r.exit, 0);
  ASSERT_EQ(s.Stop(), 0) << s.stderr_text();

  auto lines = [](const std::string& text) {
    std::multiset<std::string> out;
    std::istringstream in(text);
    for (std::string l; std::getline(in, l);) {
      if (!l.empty() && l[0] != '#') out.insert(l);
    }
    return out;
  };
  std::multiset<std::string> server_keys = lines(ReadFile(dir + "/server.keys"));
  std::multiset<std::string> client_keys = lines(ReadFile(dir + "/client.keys"));
  EXPECT_EQ(server_keys, client_keys);
  // NSS key log format: LABEL <client_random hex 64> <secret hex>.
  std::regex tls13("(CLIENT_HANDSHAKE_TRAFFIC_SECRET|SERVER_HANDSHAKE_TRAFFIC_SECRET|"
                   "CLIENT_TRAFFIC_SECRET_0|SERVER_TRAFFIC_SECRET_0|EXPORTER_SECRET) "
                   "[0-9a-f]{64} ([0-9a-f]{64}|[0-9a-f]{96})");
  std::regex tls12("CLIENT_RANDOM [0-9a-f]{64} [0-9a-f]{96}");
  size_t n12 = 0, n13 = 0;
  for (const std::string& l : server_keys) {
    if (std::regex_match(l, tls12)) {
      ++n12;
    } else if (std::regex_match(l, tls13)) {
      ++n13;
    } else {
      ADD_FAILURE() << "malformed key log line: " << l;
    }
  }
  EXPECT_EQ(n12, 1u);       // the one TLS 1.2 connection
  EXPECT_EQ(n13, 4u * 5);   // four TLS 1.3 connections, five secrets each
  struct stat st;
  ASSERT_EQ(::stat((dir + "/server.keys").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);

  nlohmann::json j = nlohmann::json::parse(ReadFile(dir + "/stats.json"));
  EXPECT_EQ(j["connections"], 5);
  EXPECT_EQ(j["handshakes"], 5);
  EXPECT_EQ(j["tls12"], 1);
  EXPECT_EQ(j["tls13"], 4);
  EXPECT_EQ(j["requests"], 5);
  EXPECT_EQ(j["responses"]["200"], 3);
  EXPECT_EQ(j["responses"]["206"], 1);
  EXPECT_EQ(j["responses"]["404"], 1);
  // Three bodies (1m, 1k, the range); HEAD and 404 have none. Each went by
  // exactly one path, sendfile only when KTLS TX was on for its connection.
  uint64_t sf = j["bodies"]["sendfile"], sw = j["bodies"]["ssl-write"];
  EXPECT_EQ(sf + sw, 3u);
  EXPECT_EQ(uint64_t{j["bodies"]["sendfile-bytes"]} + uint64_t{j["bodies"]["ssl-write-bytes"]},
            (1u << 20) + 1024u + 10u);
  if (j["ktls-tx-connections"] == 0) {
    EXPECT_EQ(sf, 0u);
  }
  EXPECT_NE(s.stderr_text().find("by SSL_write"), std::string::npos);
}

TEST_F(UkhttpdHostTest, DefaultDocrootIsGeneratedAndRemoved) {
  std::string dir = MakeTestDir("default");
  ServerProcess s;
  ASSERT_TRUE(s.Start(dir, {}, {"TMPDIR=" + dir}));
  EXPECT_NE(s.listen_line().find("(generated)"), std::string::npos) << s.listen_line();
  for (const char* f : {"1k.bin", "1m.bin"}) {
    CurlResult r = Curl({"-k"}, s.url(std::string("/") + f));
    ASSERT_EQ(r.exit, 0) << r.stderr_text;
    EXPECT_EQ(Sha256Hex(r.body), Sum(f));
  }
  CurlResult r = Curl({"-k", "-I"}, s.url("/64m.bin"));
  EXPECT_NE(r.headers.find("Content-Length: 67108864"), std::string::npos);
  std::smatch m;
  std::string line = s.listen_line();
  ASSERT_TRUE(std::regex_search(line, m, std::regex("docroot (\\S+)")));
  std::string generated = m[1];
  struct stat st;
  EXPECT_EQ(::stat(generated.c_str(), &st), 0);
  ASSERT_EQ(s.Stop(), 0) << s.stderr_text();
  EXPECT_NE(::stat(generated.c_str(), &st), 0) << generated << " left behind";
}

TEST_F(UkhttpdHostTest, GivenCertificateIsUsed) {
  std::string dir = MakeTestDir("givencert");
  SpawnSpec g;
  g.argv = {OpenSsl(), "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
            "-subj", "/CN=given.test", "-addext", "subjectAltName=DNS:localhost",
            "-keyout", dir + "/key.pem", "-out", dir + "/cert.pem"};
  ASSERT_EQ(ukhttpd_test::Run(g), 0);
  ServerProcess s;
  ASSERT_TRUE(s.Start(dir, {"--docroot", *docroot_, "--cert", dir + "/cert.pem", "--key",
                            dir + "/key.pem"}));
  CurlResult r = Curl({"--cacert", dir + "/cert.pem"},
                      "https://localhost:" + std::to_string(s.port()) + "/1k.bin");
  ASSERT_EQ(r.exit, 0) << r.stderr_text;
  EXPECT_NE(r.stderr_text.find("CN=given.test"), std::string::npos);
  EXPECT_EQ(Sha256Hex(r.body), Sum("1k.bin"));
  EXPECT_EQ(s.Stop(), 0);
}

TEST_F(UkhttpdHostTest, CurlReusesTheConnectionForSeveralUrls) {
  std::string second = *dir_ + "/reuse.second";
  CurlResult r = Curl({"-k", "-o", second, server_->url("/1k.bin")}, server_->url("/1m.bin"));
  ASSERT_EQ(r.exit, 0) << r.stderr_text;
  EXPECT_NE(r.stderr_text.find("Re-using existing connection"), std::string::npos)
      << r.stderr_text;
  EXPECT_EQ(Sha256Hex(r.body), Sum("1k.bin"));
  EXPECT_EQ(Sha256Hex(ReadFile(second)), Sum("1m.bin"));
}

// SIGTERM while bodies are in flight: the server shuts every connection,
// joins its threads and exits 0; the clients see their transfers cut short.
TEST_F(UkhttpdHostTest, SigtermWithDownloadsInFlightExitsCleanly) {
  std::string dir = MakeTestDir("sigterm");
  ServerProcess s;
  ASSERT_TRUE(s.Start(dir, {"--docroot", *docroot_}));
  std::vector<pid_t> pids;
  std::vector<std::string> outs;
  for (int i = 0; i < 4; ++i) {
    SpawnSpec c;
    outs.push_back(dir + "/dl." + std::to_string(i));
    c.argv = {Curl(), "-k", "-sS", "--limit-rate", "10M", "-o", outs.back(), s.url("/64m.bin")};
    pid_t pid = ukhttpd_test::Spawn(c);
    ASSERT_GT(pid, 0);
    pids.push_back(pid);
  }
  // Wait until every transfer is under way (a guard of a minute, not a measurement).
  for (const std::string& o : outs) {
    struct stat st;
    for (int i = 0; i < 6000 && (::stat(o.c_str(), &st) != 0 || st.st_size == 0); ++i) {
      ::usleep(10000);
    }
    ASSERT_EQ(::stat(o.c_str(), &st), 0) << o;
    ASSERT_GT(st.st_size, 0) << o;
  }
  EXPECT_EQ(s.Stop(), 0) << s.stderr_text();
  for (size_t i = 0; i < pids.size(); ++i) {
    EXPECT_NE(ukhttpd_test::Wait(pids[i]), 0) << "download " << i << " completed";
    struct stat st;
    ASSERT_EQ(::stat(outs[i].c_str(), &st), 0);
    EXPECT_LT(st.st_size, 64 << 20);
  }
  EXPECT_NE(s.stderr_text().find("stopping"), std::string::npos);
}

}  // namespace
}  // namespace ukhttpd
