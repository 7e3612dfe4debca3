// End to end, the main job: ukernd started for real with the default lab,
// its ukhttpd serving HTTPS with kernel TLS in the server kernel, reached by
// the host's own curl and openssl s_client through the host bridge (which
// relays through the client kernel and the simulated wire). Downloads are
// checked by SHA-256 against the generated docroot's pattern; then the
// built-in experiment runs once and its report is checked.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/evp.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/e2e/process.h"
#include "usr.sbin/ukernd/ctlsock.h"
#include "usr.sbin/ukhttpd/docroot_gen.h"

namespace {

using e2e::Process;
using e2e::Result;
using nlohmann::json;
using ::testing::HasSubstr;

std::string ukernd_bin() { return e2e::runfile("usr.sbin/ukernd/ukernd"); }

std::string which(const std::string& name) {
  const char* path = getenv("PATH");
  std::string p = path && *path ? path : "/usr/bin:/bin";
  size_t start = 0;
  while (start <= p.size()) {
    size_t end = p.find(':', start);
    std::string dir = p.substr(start, end == std::string::npos ? std::string::npos : end - start);
    std::string cand = (dir.empty() ? "." : dir) + "/" + name;
    if (access(cand.c_str(), X_OK) == 0) return cand;
    if (end == std::string::npos) break;
    start = end + 1;
  }
  return "/usr/bin/" + name;
}

std::string file_sha256(const std::string& path) {
  std::string data = e2e::read_file(path);
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned n = 0;
  EVP_Digest(data.data(), data.size(), md, &n, EVP_sha256(), nullptr);
  std::string out;
  char b[3];
  for (unsigned i = 0; i < n; ++i) {
    snprintf(b, sizeof b, "%02x", md[i]);
    out += b;
  }
  return out;
}

std::string pattern(const std::string& name, uint64_t off, uint64_t len) {
  std::string s(len, '\0');
  ukhttpd::PatternFill(name, off, reinterpret_cast<uint8_t*>(s.data()), len);
  return s;
}

// One ukernd with the default lab and its services, shared by the tests of
// the suite (booting it and generating the 64 MiB docroot is the slow part).
class Https : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new std::string(e2e::temp_dir("https"));
    daemon_ = new Process();
    daemon_->start({ukernd_bin(), "-s", "unix://" + *dir_ + "/ctl.sock", "--bridge",
                    "127.0.0.1:0", "--keylog", *dir_ + "/keys.log"});
    const std::string mark = "bridge: https://127.0.0.1:";
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
    while (std::chrono::steady_clock::now() < deadline && daemon_->running()) {
      std::string err = daemon_->err();
      size_t at = err.find(mark);
      if (at != std::string::npos && err.find('/', at + mark.size()) != std::string::npos) {
        port_ = std::atoi(err.c_str() + at + mark.size());
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
  }
  static void TearDownTestSuite() {
    if (daemon_->running()) {
      daemon_->signal(SIGTERM);
      int st = daemon_->wait(60);
      EXPECT_EQ(st, 0) << daemon_->err();
    }
    delete daemon_;
    delete dir_;
  }
  void SetUp() override {
    ASSERT_GT(port_, 0) << "the bridge did not come up:\n" << daemon_->err();
  }

  std::string url(const std::string& path) const {
    return "https://127.0.0.1:" + std::to_string(port_) + path;
  }
  // curl with |args|, body into a fresh file whose path is returned in *out.
  Result curl(std::vector<std::string> args, const std::string& path, std::string* out) {
    static int seq = 0;
    *out = *dir_ + "/body." + std::to_string(++seq);
    std::vector<std::string> argv = {which("curl"), "-sS", "-k", "--max-time", "60",
                                     "-o", *out};
    argv.insert(argv.end(), args.begin(), args.end());
    argv.push_back(url(path));
    return e2e::run(argv, {}, 90);
  }
  // openssl s_client sending |request| raw; returns what came back.
  Result s_client(std::vector<std::string> args, const std::string& request) {
    std::string in = *dir_ + "/req." + std::to_string(request.size());
    e2e::write_file(in, request);
    std::string cmd = which("openssl") + " s_client -connect 127.0.0.1:" +
                      std::to_string(port_) + " -ign_eof";
    for (const std::string& a : args) cmd += " " + a;
    cmd += " < " + in;
    return e2e::run({"/bin/sh", "-c", cmd}, {}, 60);
  }

  static std::string* dir_;
  static Process* daemon_;
  static int port_;
};

std::string* Https::dir_ = nullptr;
Process* Https::daemon_ = nullptr;
int Https::port_ = 0;

TEST_F(Https, DownloadsMatchTheDocrootForTls12And13AndSeveralCiphers) {
  const std::string want = ukhttpd::PatternSha256("1m.bin", 1 << 20);
  struct Case {
    std::vector<std::string> args;
  } cases[] = {
      {{"--tlsv1.2", "--tls-max", "1.2", "--ciphers", "ECDHE-ECDSA-AES128-GCM-SHA256"}},
      {{"--tlsv1.2", "--tls-max", "1.2", "--ciphers", "ECDHE-ECDSA-AES256-GCM-SHA384"}},
      {{"--tlsv1.2", "--tls-max", "1.2", "--ciphers", "ECDHE-ECDSA-CHACHA20-POLY1305"}},
      {{"--tlsv1.3", "--tls13-ciphers", "TLS_AES_128_GCM_SHA256"}},
      {{"--tlsv1.3", "--tls13-ciphers", "TLS_AES_256_GCM_SHA384"}},
      {{"--tlsv1.3", "--tls13-ciphers", "TLS_CHACHA20_POLY1305_SHA256"}},
  };
  for (const Case& c : cases) {
    std::vector<std::string> args = c.args;
    args.insert(args.end(), {"-w", "%{http_code} %{ssl_version}"});
    std::string body;
    Result r = curl(args, "/1m.bin", &body);
    SCOPED_TRACE(args[0] + " " + args.back());
    ASSERT_EQ(r.status, 0) << r.err;
    EXPECT_EQ(r.out.substr(0, 3), "200");
    EXPECT_EQ(file_sha256(body), want);
  }
  std::string body;
  Result r = curl({}, "/1k.bin", &body);
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(file_sha256(body), ukhttpd::PatternSha256("1k.bin", 1024));
  r = curl({}, "/64m.bin", &body);
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(file_sha256(body), ukhttpd::PatternSha256("64m.bin", 64 << 20));
}

TEST_F(Https, ThirtyTwoParallelDownloads) {
  const std::string want = ukhttpd::PatternSha256("1m.bin", 1 << 20);
  std::vector<std::unique_ptr<Process>> ps;
  std::vector<std::string> files;
  for (int i = 0; i < 32; i++) {
    files.push_back(*dir_ + "/par." + std::to_string(i));
    ps.push_back(std::make_unique<Process>());
    ps.back()->start({which("curl"), "-sS", "-k", "--max-time", "120", "-o", files.back(),
                      url("/1m.bin")});
  }
  for (int i = 0; i < 32; i++) {
    EXPECT_EQ(ps[i]->wait(150), 0) << i << ": " << ps[i]->err();
    EXPECT_EQ(file_sha256(files[i]), want) << i;
  }
}

TEST_F(Https, RangesAndHead) {
  std::string body;
  Result r = curl({"-r", "1000-1999", "-w", "%{http_code}"}, "/1m.bin", &body);
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(r.out, "206");
  EXPECT_TRUE(e2e::read_file(body) == pattern("1m.bin", 1000, 1000));
  r = curl({"-r", "-100", "-w", "%{http_code}"}, "/1k.bin", &body);
  EXPECT_EQ(r.out, "206");
  EXPECT_TRUE(e2e::read_file(body) == pattern("1k.bin", 924, 100));
  r = curl({"-r", "5000-", "-w", "%{http_code}"}, "/1k.bin", &body);
  EXPECT_EQ(r.out, "416");
  r = curl({"-I"}, "/1m.bin", &body);
  ASSERT_EQ(r.status, 0) << r.err;
  std::string head = e2e::read_file(body);
  EXPECT_THAT(head, HasSubstr("HTTP/1.1 200 OK"));
  EXPECT_THAT(head, HasSubstr("Content-Length: 1048576"));
  EXPECT_THAT(head, HasSubstr("Accept-Ranges: bytes"));
  r = curl({"-w", "%{http_code}"}, "/no-such-file", &body);
  EXPECT_EQ(r.out, "404");
  r = curl({"--path-as-is", "-w", "%{http_code}"}, "/../../etc/passwd", &body);
  EXPECT_EQ(r.out, "403");
  r = curl({"-X", "POST", "-w", "%{http_code}"}, "/1k.bin", &body);
  EXPECT_EQ(r.out, "405");
}

TEST_F(Https, BadRequestsThroughSClient) {
  Result r = s_client({"-quiet"}, "GARBAGE\r\n\r\n");
  EXPECT_THAT(r.out, HasSubstr("HTTP/1.1 400 Bad Request"));
  r = s_client({"-quiet"}, "GET / HTTP/2.0\r\nHost: x\r\n\r\n");
  EXPECT_THAT(r.out, HasSubstr("HTTP/1.1 505"));
  r = s_client({"-quiet"}, "GET /1k.bin HTTP/1.1\r\n\r\n");  // no Host
  EXPECT_THAT(r.out, HasSubstr("HTTP/1.1 400"));
  // A good request: s_client's own report of the session, then the body.
  r = s_client({"-tls1_3"}, "GET /1k.bin HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
  EXPECT_THAT(r.out, HasSubstr("Protocol  : TLSv1.3"));
  EXPECT_THAT(r.out, HasSubstr("HTTP/1.1 200 OK"));
  EXPECT_THAT(r.out, HasSubstr("Content-Length: 1024"));
  r = s_client({"-tls1_2", "-cipher", "ECDHE-ECDSA-CHACHA20-POLY1305"},
               "HEAD / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
  EXPECT_THAT(r.out, HasSubstr("Cipher is ECDHE-ECDSA-CHACHA20-POLY1305"));
  EXPECT_THAT(r.out, HasSubstr("HTTP/1.1 200 OK"));
}

// The bridge relays a FIN as a FIN and a close as a close: a client that
// goes away mid-handshake or says nothing leaves the bridge serving.
TEST_F(Https, ClosingEitherSideClosesTheOther) {
  for (int i = 0; i < 8; i++) {
    int s = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in sin{};
    sin.sin_family = AF_INET;
    sin.sin_port = htons(static_cast<uint16_t>(port_));
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ASSERT_EQ(connect(s, reinterpret_cast<sockaddr*>(&sin), sizeof sin), 0);
    if (i % 2 == 0) {
      // Not TLS: ukhttpd's handshake fails and it closes; the bridge must
      // pass that close on, so our read sees EOF (after any alert bytes).
      const char junk[] = "hello\r\n\r\n";
      ASSERT_EQ(write(s, junk, sizeof junk - 1), static_cast<ssize_t>(sizeof junk - 1));
      char buf[512];
      ssize_t n;
      int reads = 0;
      while ((n = read(s, buf, sizeof buf)) > 0 && reads < 100) reads++;
      EXPECT_EQ(n, 0) << "no EOF from the lab side";
    }
    close(s);
  }
  std::string body;
  Result r = curl({"-w", "%{http_code}"}, "/1k.bin", &body);
  EXPECT_EQ(r.out, "200");
}

TEST_F(Https, KeyLogHasTheSessionSecrets) {
  std::string body;
  ASSERT_EQ(curl({"--tlsv1.2", "--tls-max", "1.2"}, "/1k.bin", &body).status, 0);
  ASSERT_EQ(curl({"--tlsv1.3"}, "/1k.bin", &body).status, 0);
  std::string keys = e2e::read_file(*dir_ + "/keys.log");
  EXPECT_THAT(keys, HasSubstr("CLIENT_RANDOM "));
  EXPECT_THAT(keys, HasSubstr("SERVER_TRAFFIC_SECRET_0 "));
  EXPECT_THAT(keys, HasSubstr("CLIENT_HANDSHAKE_TRAFFIC_SECRET "));
}

// The control socket reports both services as running, with their URLs.
TEST_F(Https, ServicesAreReportedRunning) {
  int s = ukernd::unix_connect(*dir_ + "/ctl.sock");
  ASSERT_GE(s, 0);
  const std::string req = "{\"v\": 1, \"op\": \"services\"}\n";
  ASSERT_EQ(write(s, req.data(), req.size()), static_cast<ssize_t>(req.size()));
  std::string line;
  char c;
  while (read(s, &c, 1) == 1 && c != '\n') line += c;
  close(s);
  json j = json::parse(line, nullptr, false);
  ASSERT_FALSE(j.is_discarded()) << line;
  const json& list = j["result"]["service"];
  ASSERT_EQ(list.size(), 2u) << line;
  EXPECT_EQ(list[0]["name"], "https");
  EXPECT_EQ(list[0]["state"], "running");
  EXPECT_EQ(list[0]["url"], "https://10.0.0.1:443/");
  EXPECT_EQ(list[1]["name"], "bridge");
  EXPECT_EQ(list[1]["state"], "running");
  EXPECT_EQ(list[1]["url"], "https://127.0.0.1:" + std::to_string(port_) + "/");
  EXPECT_EQ(list[1]["target"], "10.0.0.1:443");
}

// A capture on the server's NIC (ktlsctl pcap) while curl downloads,
// decrypted by tshark with ukhttpd's key log: the HTTP responses are inside.
// Skips while the daemon cannot capture (ktlsctl pcap not provided).
TEST_F(Https, CaptureDecryptsWithTheKeyLog) {
  std::string pcap = *dir_ + "/capture.pcap";
  Process cap;
  cap.start({e2e::runfile("usr.sbin/ktlsctl/ktlsctl"), "-s", "unix://" + *dir_ + "/ctl.sock",
             "-k", "server", "pcap", "nic_sim0", "-w", pcap, "-t", "60"});
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (access(pcap.c_str(), F_OK) != 0 && cap.running() &&
         std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  if (access(pcap.c_str(), F_OK) != 0) {
    if (cap.running()) cap.signal(SIGINT);
    int st = cap.wait(30);
    GTEST_SKIP() << "no capture (ktlsctl pcap exit " << st << "): " << cap.err();
  }
  std::string body;
  Result r = curl({"--tlsv1.2", "--tls-max", "1.2", "-w", "%{http_code}"}, "/1k.bin", &body);
  EXPECT_EQ(r.out, "200");
  r = curl({"--tlsv1.3", "-w", "%{http_code}"}, "/index.html", &body);
  EXPECT_EQ(r.out, "200");
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  cap.signal(SIGINT);
  EXPECT_EQ(cap.wait(30), 0) << cap.err();
  Result t = e2e::run({which("tshark"), "-n", "-r", pcap, "-o",
                       "tls.keylog_file:" + *dir_ + "/keys.log", "-Y", "http.response",
                       "-T", "fields", "-e", "http.response.code", "-e",
                       "http.content_length_header"},
                      {}, 120);
  ASSERT_EQ(t.status, 0) << t.err;
  EXPECT_THAT(t.out, HasSubstr("200\t1024")) << t.out;
  EXPECT_GE(std::count(t.out.begin(), t.out.end(), '\n'), 2) << t.out;
}

// --docroot: a host directory imported into the server kernel's tmpfs and
// served with sendfile; --demo without --once keeps serving afterwards (its
// file generated beside the imported docroot) until SIGTERM.
TEST(HttpsDocroot, HostDirectoryServedAfterTheDemoUntilSigterm) {
  std::string dir = e2e::temp_dir("docroot");
  std::string www = dir + "/www";
  ASSERT_EQ(mkdir(www.c_str(), 0755), 0);
  ASSERT_EQ(mkdir((www + "/sub").c_str(), 0755), 0);
  std::string big = pattern("big", 0, 3 * 1024 * 1024 + 5);
  e2e::write_file(www + "/sub/big.dat", big);
  e2e::write_file(www + "/index.html", "<p>hello</p>\n");
  Process d;
  d.start({ukernd_bin(), "-s", "unix://" + dir + "/ctl.sock", "--bridge", "127.0.0.1:0",
           "--docroot", www, "--access-log", "--demo", "--demo-requests", "1",
           "--demo-connections", "2", "--demo-modes", "sw", "--out", dir + "/report"});
  const std::string mark = "bridge: https://127.0.0.1:";
  int port = 0;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
  while (std::chrono::steady_clock::now() < deadline && d.running()) {
    std::string err = d.err();
    size_t at = err.find(mark);
    if (at != std::string::npos && err.find("report written") != std::string::npos) {
      port = std::atoi(err.c_str() + at + mark.size());
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  ASSERT_GT(port, 0) << d.err();
  std::string out = dir + "/big.out";
  Result r = e2e::run({which("curl"), "-sS", "-k", "-o", out, "-w", "%{http_code}",
                       "https://127.0.0.1:" + std::to_string(port) + "/sub/big.dat"},
                      {}, 60);
  EXPECT_EQ(r.out, "200") << r.err;
  EXPECT_TRUE(e2e::read_file(out) == big);
  r = e2e::run({which("curl"), "-sS", "-k", "https://127.0.0.1:" + std::to_string(port) + "/"},
               {}, 60);
  EXPECT_EQ(r.out, "<p>hello</p>\n");
  EXPECT_TRUE(d.running());
  d.signal(SIGTERM);
  EXPECT_EQ(d.wait(60), 0);
  std::string err = d.err();
  EXPECT_THAT(err, HasSubstr("\"GET /sub/big.dat HTTP/1.1\" 200 3145733 sendfile"));
  EXPECT_THAT(err, HasSubstr("ukernd: halted"));
  json rep = json::parse(e2e::read_file(dir + "/report/report.json"));
  EXPECT_GT(rep["rows"][0]["throughput_gbps"].get<double>(), 0);
}

// ukernd --demo --once: the experiment, small, and its report.
TEST(Demo, OnceWritesAReportWithARowPerMode) {
  std::string dir = e2e::temp_dir("demo");
  Result r = e2e::run({ukernd_bin(), "--demo", "--once", "--out", dir + "/report", "-s",
                       "unix://" + dir + "/ctl.sock", "--bridge", "127.0.0.1:0",
                       "--demo-requests", "4", "--demo-connections", "3"},
                      {}, 300);
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("mode"));
  EXPECT_THAT(r.err, HasSubstr("ukernd: demo: sw"));
  json rep = json::parse(e2e::read_file(dir + "/report/report.json"));
  ASSERT_TRUE(rep["rows"].is_array());
  std::set<std::string> modes;
  for (const json& row : rep["rows"]) {
    std::string mode = row["mode"];
    modes.insert(mode);
    SCOPED_TRACE(mode);
    ASSERT_TRUE(row["throughput_gbps"].is_number());
    EXPECT_EQ(row["bytes"].get<uint64_t>(), 3u * 4u * (1u << 20));
    EXPECT_FALSE(row.contains("error")) << row["error"];
    const std::string achieved = row["achieved_mode"];
    if (mode == "sw" || mode == "userland") {
      EXPECT_EQ(achieved, mode);
      EXPECT_GT(row["throughput_gbps"].get<double>(), 0);
    } else if (achieved == mode) {
      EXPECT_GT(row["throughput_gbps"].get<double>(), 0);
    } else {
      // A mode the kernel could not reach says so, with what ran instead.
      EXPECT_TRUE(row.contains("note"));
      EXPECT_FALSE(row["reached"].get<bool>());
    }
    // The server's CPU is charged to the threads that did the work: the
    // KTLS workers encrypt in SW mode, the NIC's TOE engine in TOE mode.
    const json& cpu = row["server_cpu_seconds"];
    if (achieved == "sw") {
      EXPECT_GT(cpu["ktls_crypto"].get<double>(), 0) << cpu.dump();
    }
    if (achieved == "toe") {
      EXPECT_GT(cpu["nic"].get<double>(), 0) << cpu.dump();
    }
    if (mode == "userland") {
      EXPECT_EQ(row["bodies_sendfile"].get<int>(), 0);
      EXPECT_EQ(row["bodies_ssl_write"].get<int>(), 12);
    } else if (achieved != "userland") {
      EXPECT_EQ(row["bodies_sendfile"].get<int>(), 12);
    }
  }
  EXPECT_EQ(modes, (std::set<std::string>{"sw", "ifnet", "toe", "userland"}));
  std::string csv = e2e::read_file(dir + "/report/report.csv");
  EXPECT_EQ(std::count(csv.begin(), csv.end(), '\n'), 5);
  EXPECT_EQ(e2e::read_file(dir + "/report/report.svg").rfind("<svg", 0), 0u);
}

}  // namespace
