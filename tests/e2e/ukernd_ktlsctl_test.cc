// End to end: ukernd started for real on a temporary socket, ktlsctl run as
// a process, their output and exit codes checked.
#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <sysexits.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/e2e/process.h"
#include "usr.sbin/ukernd/ctlsock.h"

namespace {

using e2e::Process;
using e2e::Result;
using nlohmann::json;
using ::testing::HasSubstr;
using ::testing::Not;

// Like the default lab, with one emulated CPU per kernel to keep boots
// cheap on shared machines.
constexpr char kLab[] = R"(name = "test"
[[kernel]]
name = "server"
ncpus = 1
[kernel.tunables]
"kern.ipc.tls.ifnet.permitted" = 1
[[kernel.nic]]
name = "nic_sim0"
inet = "10.0.0.1/24"
options = ["txcsum", "rxcsum", "tso", "lro", "mextpg"]

[[kernel]]
name = "client"
ncpus = 1
[kernel.tunables]
kern.ipc.tls.ifnet.permitted = 1
[[kernel.nic]]
name = "nic_sim0"
inet = "10.0.0.2/24"
options = ["txcsum", "rxcsum", "tso", "lro", "mextpg"]

[[wire]]
a = "server:nic_sim0"
b = "client:nic_sim0"
bandwidth = "10g"
delay = "20us"
)";

std::string ukernd_bin() { return e2e::runfile("usr.sbin/ukernd/ukernd"); }
std::string ktlsctl_bin() { return e2e::runfile("usr.sbin/ktlsctl/ktlsctl"); }

// One ukernd on its own socket in a fresh temporary directory.
class Daemon {
 public:
  explicit Daemon(std::string lab = kLab, std::vector<std::string> extra = {}) {
    dir_ = e2e::temp_dir("ukernd");
    sock_ = dir_ + "/ctl.sock";
    std::vector<std::string> argv = {ukernd_bin(), "-s", url()};
    if (!lab.empty()) {
      e2e::write_file(dir_ + "/lab.toml", lab);
      argv.push_back("-f");
      argv.push_back(dir_ + "/lab.toml");
    }
    argv.insert(argv.end(), extra.begin(), extra.end());
    proc_.start(argv);
  }
  ~Daemon() {
    if (proc_.running()) {
      proc_.signal(SIGTERM);
      proc_.wait(30);
    }
  }

  // Waits until the socket accepts connections (or the daemon exits).
  bool ready() {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    while (std::chrono::steady_clock::now() < deadline) {
      int s = ukernd::unix_connect(sock_);
      if (s >= 0) {
        close(s);
        return true;
      }
      if (!proc_.running()) return false;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return false;
  }

  // SIGTERM (or |sig|) and the exit status.
  int stop(int sig = SIGTERM) {
    proc_.signal(sig);
    return proc_.wait(60);
  }

  std::string url() const { return "unix://" + sock_; }
  const std::string& sock() const { return sock_; }
  const std::string& dir() const { return dir_; }
  Process& proc() { return proc_; }

  Result ctl(std::vector<std::string> args, std::vector<std::string> env = {}) {
    std::vector<std::string> argv = {ktlsctl_bin(), "-s", url()};
    argv.insert(argv.end(), args.begin(), args.end());
    return e2e::run(argv, env);
  }

 private:
  std::string dir_, sock_;
  Process proc_;
};

// A raw protocol connection, for requests ktlsctl would never send.
class Raw {
 public:
  explicit Raw(const std::string& path) : fd_(ukernd::unix_connect(path)) {
    timeval tv{30, 0};
    setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  }
  ~Raw() {
    if (fd_ >= 0) close(fd_);
  }
  bool ok() const { return fd_ >= 0; }
  void send_raw(const std::string& s) {
    ASSERT_EQ(send(fd_, s.data(), s.size(), MSG_NOSIGNAL), static_cast<ssize_t>(s.size()));
  }
  // The next line, or "" at EOF.
  std::string line() {
    while (true) {
      size_t nl = buf_.find('\n');
      if (nl != std::string::npos) {
        std::string l = buf_.substr(0, nl);
        buf_.erase(0, nl + 1);
        return l;
      }
      char c[4096];
      ssize_t n = recv(fd_, c, sizeof c, 0);
      if (n <= 0) return "";
      buf_.append(c, n);
    }
  }
  json ask(const std::string& request_line) {
    send_raw(request_line + "\n");
    std::string l = line();
    json j = json::parse(l, nullptr, false);
    return j;
  }

 private:
  int fd_;
  std::string buf_;
};

class UkerndTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_TRUE(d_.ready()) << d_.proc().err(); }
  void TearDown() override {
    // Every test ends with the clean halt the daemon owes its kernels.
    int st = d_.stop();
    EXPECT_EQ(st, 0) << d_.proc().err();
    EXPECT_THAT(d_.proc().err(), HasSubstr("halting 2 kernels"));
    struct stat sb;
    EXPECT_NE(stat(d_.sock().c_str(), &sb), 0) << "socket left behind";
  }
  Daemon d_;
};

TEST_F(UkerndTest, SocketIsPrivateToItsOwner) {
  struct stat sb;
  ASSERT_EQ(stat(d_.sock().c_str(), &sb), 0);
  EXPECT_TRUE(S_ISSOCK(sb.st_mode));
  EXPECT_EQ(sb.st_mode & 0777, 0600u);
}

TEST_F(UkerndTest, SysctlReadsAsSysctl8Does) {
  Result r = d_.ctl({"sysctl", "kern.ipc.tls.enable"});
  EXPECT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(r.out, "kern.ipc.tls.enable: 1\n");
  EXPECT_EQ(r.err, "");

  r = d_.ctl({"sysctl", "-n", "kern.ipc.tls.enable", "kern.ipc.tls.maxlen"});
  EXPECT_EQ(r.status, 0);
  EXPECT_EQ(r.out, "1\n16384\n");

  r = d_.ctl({"sysctl", "-e", "kern.ipc.tls.ifnet.permitted"});
  EXPECT_EQ(r.out, "kern.ipc.tls.ifnet.permitted=1\n");  // from the lab file

  r = d_.ctl({"sysctl", "-d", "kern.ipc.tls.enable"});
  EXPECT_EQ(r.out, "kern.ipc.tls.enable: Enable support for kernel TLS offload\n");

  r = d_.ctl({"sysctl", "-N", "kern.ipc.tls.stats.ocf"});
  EXPECT_THAT(r.out, HasSubstr("kern.ipc.tls.stats.ocf.tls13_gcm_encrypts\n"));
  EXPECT_THAT(r.out, Not(HasSubstr(":")));
}

TEST_F(UkerndTest, SysctlAllListsTheWholeTreeInNameOrder) {
  Result r = d_.ctl({"sysctl", "-a"});
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("kern.ipc.tls.maxlen: 16384\n"));
  EXPECT_THAT(r.out, HasSubstr("kern.ipc.tls.stats.offload_total: 0\n"));
  size_t a = r.out.find("kern.ipc.tls.enable:");
  size_t b = r.out.find("kern.ipc.tls.maxlen:");
  ASSERT_NE(a, std::string::npos);
  EXPECT_LT(a, b);
}

TEST_F(UkerndTest, SysctlJsonAndXmlCarryTheSameValues) {
  Result r = d_.ctl({"--libxo", "json", "sysctl", "kern.ipc.tls.enable", "kern.ipc.tls.maxlen"});
  ASSERT_EQ(r.status, 0) << r.err;
  json j = json::parse(r.out, nullptr, false);
  ASSERT_FALSE(j.is_discarded()) << r.out;
  ASSERT_EQ(j["sysctl"]["oid"].size(), 2u);
  EXPECT_EQ(j["sysctl"]["kernel"], "server");
  EXPECT_EQ(j["sysctl"]["oid"][0]["name"], "kern.ipc.tls.enable");
  EXPECT_EQ(j["sysctl"]["oid"][0]["value"], 1);
  EXPECT_EQ(j["sysctl"]["oid"][1]["value"], 16384);

  r = d_.ctl({"--libxo=json,pretty", "sysctl", "kern.ipc.tls.enable"});
  EXPECT_THAT(r.out, HasSubstr("\n  \"sysctl\": {\n"));

  r = d_.ctl({"--libxo", "xml", "sysctl", "kern.ipc.tls.maxlen"});
  EXPECT_THAT(r.out, HasSubstr("<oid><name>kern.ipc.tls.maxlen</name>"));
  EXPECT_THAT(r.out, HasSubstr("<value>16384</value>"));
}

TEST_F(UkerndTest, SysctlSetChangesOnlyTheSelectedKernel) {
  Result r = d_.ctl({"sysctl", "kern.ipc.tls.enable=0"});
  EXPECT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(r.out, "kern.ipc.tls.enable: 1 -> 0\n");
  r = d_.ctl({"sysctl", "-n", "kern.ipc.tls.enable"});
  EXPECT_EQ(r.out, "0\n");

  // The other kernel keeps its own tree, and says it answered.
  r = d_.ctl({"-k", "client", "sysctl", "kern.ipc.tls.enable"});
  EXPECT_EQ(r.status, 0);
  EXPECT_EQ(r.out, "kern.ipc.tls.enable: 1\n");
  EXPECT_THAT(r.err, HasSubstr("kernel client answered"));

  r = d_.ctl({"-k", "client", "sysctl", "kern.ipc.tls.ifnet_max_rexmit_pct=7"});
  EXPECT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(r.out, "kern.ipc.tls.ifnet_max_rexmit_pct: 2 -> 7\n");
  r = d_.ctl({"-k", "server", "sysctl", "-n", "kern.ipc.tls.ifnet_max_rexmit_pct"});
  EXPECT_EQ(r.out, "2\n");
  EXPECT_EQ(r.err, "");  // server is the default: nothing to say
}

TEST_F(UkerndTest, UnknownOidIsAWarningAndExitOne) {
  Result r = d_.ctl({"sysctl", "kern.ipc.tls.enabl"});
  EXPECT_EQ(r.status, 1);
  EXPECT_EQ(r.out, "");
  EXPECT_EQ(r.err, "ktlsctl: sysctl: unknown oid 'kern.ipc.tls.enabl'\n");

  // The other names are still printed; -q silences the warning only.
  r = d_.ctl({"sysctl", "-q", "kern.nope", "kern.ipc.tls.enable"});
  EXPECT_EQ(r.status, 1);
  EXPECT_EQ(r.out, "kern.ipc.tls.enable: 1\n");
  EXPECT_EQ(r.err, "");

  r = d_.ctl({"sysctl", "kern.nope=1"});
  EXPECT_EQ(r.status, 1);
  EXPECT_EQ(r.err, "ktlsctl: sysctl: unknown oid 'kern.nope'\n");
}

TEST_F(UkerndTest, ReadOnlyOidsRefuseWrites) {
  Result r = d_.ctl({"sysctl", "kern.ipc.tls.stats.active=5"});
  EXPECT_EQ(r.status, 1);
  EXPECT_EQ(r.err, "ktlsctl: sysctl: oid 'kern.ipc.tls.stats.active' is read only\n");

  r = d_.ctl({"sysctl", "kern.ipc.tls.maxlen=4096"});
  EXPECT_EQ(r.status, 1);
  EXPECT_THAT(r.err, HasSubstr("ktlsctl: sysctl: oid 'kern.ipc.tls.maxlen' is a read only tunable\n"));
  EXPECT_THAT(r.err, HasSubstr("Tunable values are set in the lab file"));
  EXPECT_EQ(d_.ctl({"sysctl", "-n", "kern.ipc.tls.maxlen"}).out, "16384\n");

  r = d_.ctl({"sysctl", "kern.ipc.tls=1"});
  EXPECT_EQ(r.status, 1);
  EXPECT_EQ(r.err, "ktlsctl: sysctl: oid 'kern.ipc.tls' isn't a leaf node\n");
}

TEST_F(UkerndTest, BadValuesAreRejectedWithTheirType) {
  Result r = d_.ctl({"sysctl", "kern.ipc.tls.enable=abc"});
  EXPECT_EQ(r.status, 1);
  EXPECT_EQ(r.err, "ktlsctl: sysctl: invalid uint8_t 'abc'\n");
  r = d_.ctl({"sysctl", "kern.ipc.tls.ifnet_max_rexmit_pct=-1"});
  EXPECT_EQ(r.err, "ktlsctl: sysctl: invalid unsigned integer '-1'\n");
  r = d_.ctl({"sysctl", "kern.ipc.tls.max_reclaim=99999999999"});
  EXPECT_EQ(r.err, "ktlsctl: sysctl: invalid integer '99999999999'\n");
  r = d_.ctl({"sysctl", "kern.ipc.tls.max_reclaim="});
  EXPECT_EQ(r.err, "ktlsctl: sysctl: empty numeric value\n");
  EXPECT_EQ(d_.ctl({"sysctl", "-n", "kern.ipc.tls.max_reclaim"}).out, "1024\n");
  // Hexadecimal, as strtol(3) base 0 in sysctl(8).
  r = d_.ctl({"sysctl", "kern.ipc.tls.max_reclaim=0x10"});
  EXPECT_EQ(r.out, "kern.ipc.tls.max_reclaim: 1024 -> 16\n");
}

TEST_F(UkerndTest, WrongKernelNameIsNamedWithTheChoices) {
  Result r = d_.ctl({"-k", "nope", "sysctl", "kern.ipc.tls.enable"});
  EXPECT_EQ(r.status, EX_NOHOST);
  EXPECT_EQ(r.err,
            "ktlsctl: sysctl: no kernel named 'nope' in this lab (kernels: server, client)\n");
  r = d_.ctl({"-k", "nope", "stats"});
  EXPECT_EQ(r.status, EX_NOHOST);
}

TEST_F(UkerndTest, KernelsListsTheLab) {
  Result r = d_.ctl({"kernels"});
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("NAME"));
  EXPECT_THAT(r.out, HasSubstr("\nserver*"));
  EXPECT_THAT(r.out, HasSubstr("\nclient "));
  r = d_.ctl({"--libxo", "json", "kernels"});
  json j = json::parse(r.out, nullptr, false);
  ASSERT_FALSE(j.is_discarded()) << r.out;
  const json& ks = j["kernels"]["kernel"];
  ASSERT_EQ(ks.size(), 2u);
  EXPECT_EQ(ks[0]["name"], "server");
  EXPECT_EQ(ks[0]["default"], true);
  EXPECT_EQ(ks[0]["ncpus"], 1);
  EXPECT_EQ(ks[1]["name"], "client");
  EXPECT_EQ(ks[1]["hostname"], "client");
}

TEST_F(UkerndTest, StatsAreGroupedWithHyphenatedKeys) {
  Result r = d_.ctl({"stats"});
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("kern.ipc.tls.stats:\n"));
  EXPECT_THAT(r.out, HasSubstr("kern.ipc.tls.stats.ocf:\n"));
  EXPECT_THAT(r.out, HasSubstr(" offload_total\n"));
  r = d_.ctl({"--libxo", "json", "stats"});
  json j = json::parse(r.out, nullptr, false);
  ASSERT_FALSE(j.is_discarded()) << r.out;
  const json& s = j["ktls-stats"];
  EXPECT_EQ(s["kernel"], "server");
  EXPECT_EQ(s["stats"]["offload-total"], 0);
  EXPECT_EQ(s["ocf"]["tls13-gcm-encrypts"], 0);
  EXPECT_EQ(s["sw"]["gcm"], 0);
  EXPECT_EQ(s["ifnet"]["permitted"], 1);
  EXPECT_EQ(s["config"]["maxlen"], 16384);
}

TEST_F(UkerndTest, StatsWatchPrintsCountIntervals) {
  Result r = d_.ctl({"stats", "-w", "0.05", "-c", "3"});
  ASSERT_EQ(r.status, 0) << r.err;
  // Two header lines, then one line per interval.
  int lines = 0;
  for (char ch : r.out) lines += ch == '\n';
  EXPECT_EQ(lines, 5) << r.out;
  EXPECT_THAT(r.out, HasSubstr("setups/s"));

  r = d_.ctl({"--libxo", "json", "stats", "-w", "0.05", "-c", "2"});
  ASSERT_EQ(r.status, 0) << r.err;
  size_t nl = r.out.find('\n');
  json j = json::parse(r.out.substr(0, nl), nullptr, false);
  ASSERT_FALSE(j.is_discarded()) << r.out;
  EXPECT_EQ(j["ktls-stats-interval"]["active"], 0);
  EXPECT_TRUE(j["ktls-stats-interval"].contains("encrypts-per-second"));
}

TEST_F(UkerndTest, SecondClientIsServedWhileTheFirstStreamsStats) {
  Process watch;
  watch.start({ktlsctl_bin(), "-s", d_.url(), "stats", "-w", "0.05"});
  // Wait for the watcher's first interval line.
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (true) {
    std::string out = watch.out();
    if (std::count(out.begin(), out.end(), '\n') >= 3) break;
    ASSERT_TRUE(watch.running()) << watch.err();
    ASSERT_LT(std::chrono::steady_clock::now(), deadline);
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  // A client that sends half a request and stalls holds only its own thread.
  Raw stalled(d_.sock());
  ASSERT_TRUE(stalled.ok());
  stalled.send_raw("{\"v\":1,\"op\":");

  Result r = d_.ctl({"sysctl", "kern.ipc.tls.enable=0"});
  EXPECT_EQ(r.status, 0) << r.err;
  r = d_.ctl({"--libxo", "json", "kernels"});
  EXPECT_EQ(r.status, 0) << r.err;
  EXPECT_TRUE(watch.running());

  // netstat -w ends on SIGINT, successfully.
  watch.signal(SIGINT);
  EXPECT_EQ(watch.wait(30), 0) << watch.err();
}

TEST_F(UkerndTest, MalformedRequestsGetErrorRepliesAndTheDaemonStaysUp) {
  Raw raw(d_.sock());
  ASSERT_TRUE(raw.ok());
  struct {
    const char* line;
    const char* code;
  } cases[] = {
      {"this is not json", "EINVAL"},
      {"[1,2,3]", "EINVAL"},
      {"{\"op\":\"hello\"}", "EPROTO"},
      {"{\"v\":2,\"op\":\"hello\"}", "EPROTONOSUPPORT"},
      {"{\"v\":1}", "EINVAL"},
      {"{\"v\":1,\"op\":\"reboot\"}", "EOPNOTSUPP"},
      {"{\"v\":1,\"op\":\"sysctl.set\",\"oid\":\"kern.ipc.tls.enable\"}", "EINVAL"},
      {"{\"v\":1,\"op\":\"sysctl.list\",\"oid\":[]}", "EINVAL"},
      {"{\"v\":1,\"op\":\"kernels\",\"kernel\":\"a b\"}", "EINVAL"},
      {"{\"v\":1,\"op\":\"mode\",\"session\":\"1\",\"mode\":\"fast\"}", "EINVAL"},
      {"{\"v\":1,\"op\":\"pcap\",\"interface\":\"x\",\"count\":-1}", "ERANGE"},
      {"{\"v\":1,\"op\":\"conn.send\",\"bytes\":1}", "EINVAL"},
      {"{\"v\":1,\"op\":\"conn.close\",\"conn\":0}", "ERANGE"},
      {"{\"v\":1,\"op\":\"conn.open\",\"cipher\":\"rot13\"}", "EINVAL"},
      {"{\"v\":1,\"op\":\"conn.open\",\"peer\":\"nosuch\"}", "ESRCH"},
      {"{\"v\":1,\"op\":\"mode\",\"session\":\"77\",\"mode\":\"sw\"}", "ENOENT"},
      {"{\"v\":1,\"id\":{\"a\":1},\"op\":\"hello\"}", "EINVAL"},
      {"\xff\xfe{\"v\":1}", "EINVAL"},
  };
  for (const auto& c : cases) {
    json j = raw.ask(c.line);
    ASSERT_TRUE(j.is_object()) << c.line;
    EXPECT_EQ(j["ok"], false) << c.line;
    EXPECT_EQ(j["error"]["code"], c.code) << c.line << " -> " << j.dump();
    EXPECT_FALSE(j["error"]["message"].get<std::string>().empty());
  }
  // Deep nesting.
  json j = raw.ask(std::string(10000, '[') + std::string(10000, ']'));
  EXPECT_EQ(j["ok"], false);
  // The id is echoed, and the same connection still works.
  j = raw.ask("{\"v\":1,\"id\":\"x7\",\"op\":\"sysctl.list\",\"oid\":\"kern.ipc.tls.enable\"}");
  EXPECT_EQ(j["ok"], true) << j.dump();
  EXPECT_EQ(j["id"], "x7");
  EXPECT_EQ(j["kernel"], "server");
  EXPECT_EQ(j["result"]["oid"][0]["value"], 1);

  // A line longer than the limit is answered, then the connection closes.
  Raw big(d_.sock());
  big.send_raw(std::string(100 * 1024, 'x'));
  json e = json::parse(big.line(), nullptr, false);
  EXPECT_EQ(e["error"]["code"], "E2BIG");
  EXPECT_EQ(big.line(), "");

  EXPECT_EQ(d_.ctl({"sysctl", "-n", "kern.ipc.tls.enable"}).out, "1\n");
}

TEST_F(UkerndTest, OtherUsersMayReadButNotChangeState) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root to act as another user";
  ASSERT_EQ(chmod(d_.sock().c_str(), 0666), 0);
  ASSERT_EQ(chmod(d_.dir().c_str(), 0711), 0);
  int pfd[2];
  ASSERT_EQ(pipe(pfd), 0);
  // The test's temporary directory sits below directories only root may
  // search; the other user reaches the socket through a directory
  // descriptor opened before the switch.
  int dirfd = open(d_.dir().c_str(), O_PATH | O_DIRECTORY);
  ASSERT_GE(dirfd, 0);
  pid_t pid = fork();
  if (pid == 0) {
    close(pfd[0]);
    if (setgid(65534) != 0 || setuid(65534) != 0) _exit(2);
    prctl(PR_SET_DUMPABLE, 1);  // keep /proc/self/fd usable
    Raw raw("/proc/self/fd/" + std::to_string(dirfd) + "/ctl.sock");
    if (!raw.ok()) _exit(3);
    std::string out;
    out += raw.ask("{\"v\":1,\"op\":\"sysctl.list\",\"oid\":\"kern.ipc.tls.enable\"}").dump() + "\n";
    out += raw.ask("{\"v\":1,\"op\":\"sysctl.set\",\"oid\":\"kern.ipc.tls.enable\",\"value\":\"0\"}").dump() + "\n";
    (void)!write(pfd[1], out.data(), out.size());
    _exit(0);
  }
  close(pfd[1]);
  close(dirfd);
  std::string out;
  char buf[4096];
  for (ssize_t n; (n = read(pfd[0], buf, sizeof buf)) > 0;) out.append(buf, n);
  close(pfd[0]);
  int st;
  waitpid(pid, &st, 0);
  ASSERT_TRUE(WIFEXITED(st));
  // A sandbox's user namespace may map no other uid; server_test checks
  // the same rule in-process then.
  if (WEXITSTATUS(st) == 2) GTEST_SKIP() << "cannot become uid 65534 here";
  ASSERT_EQ(WEXITSTATUS(st), 0);
  size_t nl = out.find('\n');
  json read = json::parse(out.substr(0, nl), nullptr, false);
  json write = json::parse(out.substr(nl + 1), nullptr, false);
  EXPECT_EQ(read["ok"], true) << out;
  EXPECT_EQ(write["ok"], false) << out;
  EXPECT_EQ(write["error"]["code"], "EPERM");
  EXPECT_EQ(d_.ctl({"sysctl", "-n", "kern.ipc.tls.enable"}).out, "1\n");
}

// A test connection opened through ktlsctl: its JSON (conn.open's result).
json open_conn(Daemon& d, std::vector<std::string> args) {
  std::vector<std::string> argv = {"--libxo", "json"};
  argv.insert(argv.end(), args.begin(), args.end());
  Result r = d.ctl(argv);
  EXPECT_EQ(r.status, 0) << r.err;
  json j = json::parse(r.out, nullptr, false);
  EXPECT_FALSE(j.is_discarded()) << r.out;
  return j.is_discarded() ? json::object() : j["conn"];
}

json sessions_json(Daemon& d, const std::string& kernel) {
  Result r = d.ctl({"-k", kernel, "--libxo", "json", "sessions"});
  EXPECT_EQ(r.status, 0) << r.err;
  json j = json::parse(r.out, nullptr, false);
  EXPECT_FALSE(j.is_discarded()) << r.out;
  return j.is_discarded() ? json::array() : j["sessions"]["session"];
}

const json* find_session(const json& list, const std::string& kernel, uint64_t id) {
  for (const json& s : list)
    if (s["kernel"] == kernel && s["id"] == id) return &s;
  return nullptr;
}

// A KTLS connection from client to server, fed 100000 bytes: each end's
// session is listed with its addresses, suite, personality and counters,
// in text and in JSON; a Linux-personality TLS 1.3 connection inside one
// kernel shows as such.
TEST_F(UkerndTest, SessionsListsLiveSessionsOfEveryKernel) {
  Result r = d_.ctl({"-k", "all", "sessions"});
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(std::count(r.out.begin(), r.out.end(), '\n'), 1) << r.out;  // header only

  json c = open_conn(d_, {"-k", "client", "conn", "open", "-p", "server"});
  ASSERT_TRUE(c.contains("tx-session")) << c;
  EXPECT_EQ(c["local"].get<std::string>().rfind("10.0.0.2:", 0), 0u) << c;
  EXPECT_EQ(c["foreign"].get<std::string>().rfind("10.0.0.1:", 0), 0u) << c;
  r = d_.ctl({"conn", "send", "1", "100000"});
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("sent 100000, received 100000, mismatches 0"));

  json all = sessions_json(d_, "all");
  ASSERT_EQ(all.size(), 2u) << all;
  const json* tx = find_session(all, "client", c["tx-session"].get<uint64_t>());
  const json* rx = find_session(all, "server", c["rx-session"].get<uint64_t>());
  ASSERT_NE(tx, nullptr) << all;
  ASSERT_NE(rx, nullptr) << all;
  EXPECT_EQ((*tx)["direction"], "tx");
  EXPECT_EQ((*rx)["direction"], "rx");
  for (const json* s : {tx, rx}) {
    EXPECT_EQ((*s)["mode"], "SW");
    EXPECT_EQ((*s)["cipher"], "AES-128-GCM");
    EXPECT_EQ((*s)["version"], "TLS1.2");
    EXPECT_EQ((*s)["personality"], "freebsd");
    EXPECT_EQ((*s)["bytes"], 100000);
    // 100000 bytes in records of at most 16384.
    EXPECT_GE((*s)["records"].get<int>(), 7) << *s;
    EXPECT_EQ((*s)["tcp-state"], "ESTABLISHED");
  }
  EXPECT_EQ((*tx)["local"], c["local"]);
  EXPECT_EQ((*tx)["foreign"], c["foreign"]);
  EXPECT_EQ((*rx)["local"], c["foreign"]);
  EXPECT_EQ((*rx)["foreign"], c["local"]);
  EXPECT_EQ((*tx)["records"], (*rx)["records"]);

  // Text: a header and one row per session; the default kernel (server)
  // alone without -k.
  r = d_.ctl({"-k", "all", "sessions"});
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("KERNEL      ID LOCAL"));
  EXPECT_THAT(r.out, HasSubstr(" tx  SW    AES-128-GCM       TLS1.2  freebsd "));
  EXPECT_THAT(r.out, HasSubstr(" rx  SW    AES-128-GCM       TLS1.2  freebsd "));
  EXPECT_THAT(r.out, HasSubstr("100000\n"));
  r = d_.ctl({"sessions"});
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(std::count(r.out.begin(), r.out.end(), '\n'), 2) << r.out;
  EXPECT_THAT(r.out, HasSubstr("\nserver "));
  EXPECT_THAT(r.out, Not(HasSubstr("\nclient ")));

  json l = open_conn(d_, {"conn", "open", "-p", "server", "-L", "-V", "1.3", "-c", "aes256-gcm"});
  r = d_.ctl({"conn", "send", "2", "20000"});
  ASSERT_EQ(r.status, 0) << r.err;
  json srv = sessions_json(d_, "server");
  ASSERT_EQ(srv.size(), 3u) << srv;
  for (const char* key : {"tx-session", "rx-session"}) {
    const json* s = find_session(srv, "server", l[key].get<uint64_t>());
    ASSERT_NE(s, nullptr) << key << srv;
    EXPECT_EQ((*s)["personality"], "linux");
    EXPECT_EQ((*s)["version"], "TLS1.3");
    EXPECT_EQ((*s)["cipher"], "AES-256-GCM");
    EXPECT_EQ((*s)["local"].get<std::string>().rfind("127.0.0.1:", 0), 0u);
    EXPECT_EQ((*s)["bytes"], 20000);
  }
  r = d_.ctl({"-k", "nosuch", "sessions"});
  EXPECT_EQ(r.status, EX_NOHOST) << r.err;

  // Closing a connection removes its sessions (once TCP lets go of the
  // sockets).
  EXPECT_EQ(d_.ctl({"conn", "close", "1"}).status, 0);
  size_t left = 1;
  for (int i = 0; i < 100 && (left = sessions_json(d_, "client").size()) != 0; i++)
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  EXPECT_EQ(left, 0u);
  r = d_.ctl({"conn", "close", "1"});
  EXPECT_EQ(r.status, EX_NOINPUT);
  EXPECT_EQ(r.err, "ktlsctl: conn: no connection 1\n");
}

// mode goes to ktls_set_tx_mode on the session's socket: sw on a SW
// session is a successful no-op; ifnet either switches or fails in words;
// the errors of the kernel and of the lookup come back in words.
TEST_F(UkerndTest, ModeSwitchesATransmitSessionAndReportsErrorsInWords) {
  json c = open_conn(d_, {"-k", "client", "conn", "open"});
  std::string tx = std::to_string(c["tx-session"].get<uint64_t>());
  std::string rx = std::to_string(c["rx-session"].get<uint64_t>());

  Result r = d_.ctl({"-k", "client", "mode", tx, "sw"});
  EXPECT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(r.out, "");
  json list = sessions_json(d_, "client");
  const json* s = find_session(list, "client", std::stoull(tx));
  ASSERT_NE(s, nullptr);
  EXPECT_EQ((*s)["mode"], "SW");

  r = d_.ctl({"-k", "client", "mode", tx, "ifnet"});
  if (r.status != 0) {
    // IFNET offload not available for this session: said so, in words.
    EXPECT_EQ(r.status, EX_UNAVAILABLE) << r.err;
    EXPECT_THAT(r.err, HasSubstr("ktlsctl: mode: session " + tx + ": switch to ifnet: "));
    EXPECT_THAT(r.err, testing::AnyOf(HasSubstr("(EOPNOTSUPP)"), HasSubstr("(ENXIO)")));
  }
  EXPECT_EQ(d_.ctl({"-k", "client", "mode", tx, "sw"}).status, 0);

  r = d_.ctl({"-k", "client", "mode", tx, "toe"});
  EXPECT_EQ(r.status, EX_DATAERR) << r.err;
  EXPECT_EQ(r.err, "ktlsctl: kernel client answered (the lab's default is server)\n"
                   "ktlsctl: mode: session " + tx +
                   ": switch to toe: invalid mode 'toe' for TCP_TXTLS_MODE (EINVAL)\n");

  r = d_.ctl({"-k", "client", "mode", "999", "sw"});
  EXPECT_EQ(r.status, EX_NOINPUT);
  EXPECT_THAT(r.err, HasSubstr("ktlsctl: mode: session 999: no such session in kernel client\n"));
  r = d_.ctl({"-k", "client", "mode", "abc", "sw"});
  EXPECT_EQ(r.status, EX_DATAERR);
  EXPECT_THAT(r.err, HasSubstr("not a session id"));
  r = d_.ctl({"mode", rx, "sw"});  // the server holds the receive session
  EXPECT_EQ(r.status, EX_UNAVAILABLE);
  EXPECT_THAT(r.err, HasSubstr("is a receive session: only transmit sessions switch mode"));

  // Data still flows, byte-exact, after all that.
  r = d_.ctl({"conn", "send", "1", "300000"});
  EXPECT_EQ(r.status, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("received 300000, mismatches 0"));
}

// A live session switched SW -> IFNET -> SW through ktlsctl while data
// flows: every byte arrives intact in each mode, sessions shows the mode,
// and the kernel counts both switches.
TEST_F(UkerndTest, ModeSwitchesALiveSessionToIfnetAndBackWithDataExact) {
  // The session starts in SW: the NIC gets TLS offload only afterwards
  // (with it on at TCP_TXTLS_ENABLE the kernel would choose IFNET itself).
  json c = open_conn(d_, {"-k", "client", "conn", "open"});
  std::string tx = std::to_string(c["tx-session"].get<uint64_t>());
  Result r = d_.ctl({"conn", "send", "1", "200000"});
  ASSERT_EQ(r.status, 0) << r.err;
  ASSERT_EQ(d_.ctl({"-k", "client", "ifconfig", "nic_sim0", "txtls"}).status, 0);
  {
    json list = sessions_json(d_, "client");
    const json* s = find_session(list, "client", std::stoull(tx));
    ASSERT_NE(s, nullptr) << list;
    EXPECT_EQ((*s)["mode"], "SW");
  }

  r = d_.ctl({"-k", "client", "mode", tx, "ifnet"});
  if (r.status == EX_UNAVAILABLE && r.err.find("(EOPNOTSUPP)") != std::string::npos)
    GTEST_SKIP() << "this kernel has no NIC TLS offload (IFNET) yet: " << r.err;
  ASSERT_EQ(r.status, 0) << r.err;
  json list = sessions_json(d_, "client");
  const json* s = find_session(list, "client", std::stoull(tx));
  ASSERT_NE(s, nullptr) << list;
  EXPECT_EQ((*s)["mode"], "IFNET");
  r = d_.ctl({"conn", "send", "1", "500000"});
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("sent 700000, received 700000, mismatches 0"));

  r = d_.ctl({"-k", "client", "mode", tx, "sw"});
  ASSERT_EQ(r.status, 0) << r.err;
  list = sessions_json(d_, "client");
  s = find_session(list, "client", std::stoull(tx));
  ASSERT_NE(s, nullptr) << list;
  EXPECT_EQ((*s)["mode"], "SW");
  r = d_.ctl({"conn", "send", "1", "300000"});
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("sent 1000000, received 1000000, mismatches 0"));
  r = d_.ctl({"-k", "client", "sysctl", "-n", "kern.ipc.tls.stats.switch_to_ifnet",
              "kern.ipc.tls.stats.switch_to_sw"});
  EXPECT_EQ(r.out, "1\n1\n") << r.err;
}

// ifconfig without an interface lists them all in ifconfig(8)'s form
// (lo0 and the lab's NIC with FreeBSD's capability names); with one, that
// interface; changes show up in options=.
TEST_F(UkerndTest, IfconfigListsInterfacesInIfconfigForm) {
  Result r = d_.ctl({"ifconfig"});
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("lo0: flags=8049<UP,LOOPBACK,RUNNING,MULTICAST> metric 0 mtu 16384\n"));
  EXPECT_THAT(r.out, HasSubstr("\tinet 127.0.0.1 netmask 0xff000000\n"));
  EXPECT_THAT(r.out, HasSubstr(
      "nic_sim0: flags=8843<UP,BROADCAST,RUNNING,SIMPLEX,MULTICAST> metric 0 mtu 1500\n"
      "\toptions=4000503<RXCSUM,TXCSUM,TSO4,LRO,MEXTPG>\n"
      "\tcapabilities=9d004503<RXCSUM,TXCSUM,TSO4,LRO,TOE4,TXRTLMT,MEXTPG,TXTLS4,TXTLS6,"
      "TXTLS_RTLMT,RXTLS4,RXTLS6>\n\tether 02:75:6b:"));
  EXPECT_THAT(r.out, HasSubstr("\tinet 10.0.0.1 netmask 0xffffff00 broadcast 10.0.0.255\n"));
  EXPECT_THAT(r.out, HasSubstr("\tmedia: Ethernet autoselect (10Gbit/s <full-duplex>)\n"
                               "\tstatus: active\n"));

  ASSERT_EQ(d_.ctl({"ifconfig", "nic_sim0", "txtls", "rxtls"}).status, 0);
  r = d_.ctl({"ifconfig", "nic_sim0"});
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(r.out.rfind("nic_sim0: ", 0), 0u) << r.out;
  EXPECT_THAT(r.out, Not(HasSubstr("lo0")));
  EXPECT_THAT(r.out, HasSubstr("\toptions=1c000503<RXCSUM,TXCSUM,TSO4,LRO,MEXTPG,TXTLS4,TXTLS6,RXTLS4,RXTLS6>\n"));

  r = d_.ctl({"-k", "client", "--libxo", "json", "ifconfig", "nic_sim0"});
  ASSERT_EQ(r.status, 0) << r.err;
  json j = json::parse(r.out, nullptr, false);
  ASSERT_FALSE(j.is_discarded()) << r.out;
  const json& i = j["interfaces"]["interface"][0];
  EXPECT_EQ(i["name"], "nic_sim0");
  // The lab file's offloads; the server's change is not the client's.
  EXPECT_EQ(i["options"], 0x4000503);
  EXPECT_EQ(i["inet"][0]["address"], "10.0.0.2");
  EXPECT_EQ(i["status"], "active");
  EXPECT_NE(std::find(i["capabilities-names"].begin(), i["capabilities-names"].end(),
                      "TXTLS_RTLMT"),
            i["capabilities-names"].end());

  r = d_.ctl({"ifconfig", "nosuch0"});
  EXPECT_EQ(r.status, EX_NOINPUT);
  EXPECT_EQ(r.err, "ktlsctl: ifconfig: interface nosuch0 does not exist\n");
}

// netstat -i: netstat(1)'s columns, one <Link#N> row per interface (lo0
// first, index 1) and one per address, counters from
// net.link.generic.ifdata; traffic between the kernels shows on both NICs.
TEST_F(UkerndTest, NetstatShowsInterfaceCounters) {
  json c = open_conn(d_, {"-k", "client", "conn", "open", "-p", "server"});
  ASSERT_TRUE(c.contains("conn")) << c;
  Result r = d_.ctl({"conn", "send", std::to_string(c["conn"].get<int>()), "200000"});
  ASSERT_EQ(r.status, 0) << r.err;

  r = d_.ctl({"-k", "client", "netstat", "-i"});
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(r.out.rfind("Name        Mtu Network       Address              Ipkts Ierrs Idrop"
                        "    Opkts Oerrs  Coll\n", 0),
            0u)
      << r.out;
  EXPECT_THAT(r.out, HasSubstr("\nlo0       16384 <Link#1>      lo0      "));
  EXPECT_THAT(r.out, HasSubstr("\nlo0           - 127.0.0.0/8   127.0.0.1  "));
  EXPECT_THAT(r.out, HasSubstr("\nnic_sim0   1500 <Link#2>      02:75:6b:"));
  EXPECT_THAT(r.out, HasSubstr("\nnic_sim0      - 10.0.0.0/24   10.0.0.2  "));

  // JSON: the client sent the 200000 bytes the server received.
  auto nic = [&](const char* kernel) {
    Result j = d_.ctl({"-k", kernel, "--libxo", "json", "netstat", "-i", "-I", "nic_sim0"});
    EXPECT_EQ(j.status, 0) << j.err;
    json doc = json::parse(j.out, nullptr, false);
    EXPECT_FALSE(doc.is_discarded()) << j.out;
    if (doc.is_discarded() || doc["statistics"]["interface"].size() != 1) return json::object();
    return doc["statistics"]["interface"][0];
  };
  json cl = nic("client"), sv = nic("server");
  EXPECT_EQ(cl["name"], "nic_sim0");
  EXPECT_EQ(cl["index"], 2);
  EXPECT_GT(cl["sent-packets"].get<uint64_t>(), 200000u / 1514);
  EXPECT_GT(cl["sent-bytes"].get<uint64_t>(), 200000u);
  EXPECT_GT(sv["received-packets"].get<uint64_t>(), 200000u / 1514);
  EXPECT_GT(sv["received-bytes"].get<uint64_t>(), 200000u);
  EXPECT_EQ(cl["received-errors"], 0);
  EXPECT_EQ(sv["send-errors"], 0);
  EXPECT_EQ(cl["baudrate"], 10000000000u);
  EXPECT_EQ(cl["inet"][0]["address"], "10.0.0.2");

  // -b and -d add netstat's byte and drop columns.
  r = d_.ctl({"netstat", "-ibd"});
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("Ibytes    Opkts Oerrs     Obytes  Coll  Drop\n"));

  r = d_.ctl({"netstat", "-i", "-I", "nosuch0"});
  EXPECT_EQ(r.status, EX_NOINPUT);
  EXPECT_EQ(r.err, "ktlsctl: netstat: interface nosuch0 does not exist\n");
  r = d_.ctl({"netstat"});
  EXPECT_EQ(r.status, EX_USAGE);
  EXPECT_THAT(r.err, HasSubstr("usage: ktlsctl netstat -i"));
}

// The NIC's attach lines are in the boot log (stderr) and in dmesg.
TEST_F(UkerndTest, BootPrintsTheNicAsFreeBsdDoes) {
  std::string err = d_.proc().err();
  EXPECT_THAT(err, HasSubstr("[server] nic_sim0: <Simulated TLS NIC> on nexus0\n"));
  EXPECT_THAT(err, HasSubstr("[client] nic_sim0: <Simulated TLS NIC> on nexus0\n"));
  Result r = d_.ctl({"dmesg"});
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("nic_sim0: <Simulated TLS NIC> on nexus0\n"
                               "nic_sim0: Ethernet address: 02:75:6b:"));
  EXPECT_THAT(r.out, HasSubstr("nic_sim0: capabilities=9d004503<RXCSUM,TXCSUM,TSO4,"));
}

std::string find_tool(const char* name) {
  for (const char* dir : {"/usr/bin/", "/usr/sbin/", "/bin/", "/usr/local/bin/"}) {
    std::string p = std::string(dir) + name;
    if (access(p.c_str(), X_OK) == 0) return p;
  }
  return "";
}

// A capture on the client's NIC while a KTLS transfer runs: the pcap file
// opens in tshark, which decodes TCP and, told the port, whole TLS records
// of application data.
TEST_F(UkerndTest, PcapCapturesKtlsTrafficThatTsharkDecodes) {
  std::string tshark = find_tool("tshark");
  std::string file = d_.dir() + "/ktls.pcap";

  Process cap;
  cap.start({ktlsctl_bin(), "-s", d_.url(), "-k", "client", "pcap", "nic_sim0", "-w", file,
             "-c", "60"});
  // The connection opens once the tap is on (ktlsctl creates the file when
  // the daemon's pcap-header arrives), so the capture holds the whole TCP
  // stream and tshark finds every record boundary; a capture that starts
  // inside a record leaves tshark's TLS dissector out of step.
  for (int i = 0; i < 1000 && access(file.c_str(), F_OK) != 0; i++) usleep(10000);
  ASSERT_EQ(access(file.c_str(), F_OK), 0) << cap.err();
  json c = open_conn(d_, {"-k", "client", "conn", "open"});
  std::string port = c["foreign"].get<std::string>().substr(strlen("10.0.0.1:"));
  // Feed the connection until the capture has its packets.
  for (int i = 0; i < 200 && cap.running(); i++) {
    Result r = d_.ctl({"conn", "send", "1", "100000"});
    ASSERT_EQ(r.status, 0) << r.err;
  }
  ASSERT_EQ(cap.wait(60), 0) << cap.err();
  EXPECT_THAT(cap.err(), HasSubstr("60 packets captured\n"));
  std::string bytes = e2e::read_file(file);
  ASSERT_GE(bytes.size(), 24u);
  EXPECT_EQ(bytes.substr(0, 4), std::string("\xd4\xc3\xb2\xa1", 4));  // pcap, LE, usec

  if (tshark.empty()) GTEST_SKIP() << "tshark is not installed (tools/setup installs it)";
  std::string home = e2e::temp_dir("tshark");
  Result t = e2e::run({tshark, "-r", file, "-T", "fields", "-e", "ip.src", "-e", "tcp.dstport"},
                      {"HOME=" + home});
  ASSERT_EQ(t.status, 0) << t.err;
  EXPECT_EQ(std::count(t.out.begin(), t.out.end(), '\n'), 60) << t.out;
  EXPECT_THAT(t.out, HasSubstr("10.0.0.2\t" + port + "\n"));
  t = e2e::run({tshark, "-2", "-r", file, "-d", "tcp.port==" + port + ",tls", "-Y", "tls",
                "-T", "fields", "-E", "occurrence=f", "-e", "tls.record.content_type", "-e",
                "tls.record.version"},
               {"HOME=" + home});
  ASSERT_EQ(t.status, 0) << t.err;
  EXPECT_THAT(t.out, HasSubstr("23\t0x0303\n")) << t.out;  // application data, TLS 1.2
}

TEST_F(UkerndTest, PcapRefusesInterfacesWithoutATap) {
  Result r = d_.ctl({"pcap", "lo0", "-w", d_.dir() + "/lo.pcap", "-c", "1"});
  EXPECT_EQ(r.status, EX_UNAVAILABLE);
  EXPECT_THAT(r.err, HasSubstr("lo0: no capture tap (bpf) on this interface"));
  r = d_.ctl({"pcap", "nosuch0", "-w", d_.dir() + "/x.pcap", "-t", "1"});
  EXPECT_EQ(r.status, EX_NOINPUT);
  EXPECT_EQ(r.err, "ktlsctl: pcap: interface nosuch0 does not exist\n");
  struct stat sb;
  EXPECT_NE(stat((d_.dir() + "/x.pcap").c_str(), &sb), 0) << "pcap file created for nothing";
  // -t alone ends a quiet capture with an empty but valid file.
  r = d_.ctl({"-k", "client", "pcap", "nic_sim0", "-w", d_.dir() + "/quiet.pcap", "-t", "0.3"});
  EXPECT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(e2e::read_file(d_.dir() + "/quiet.pcap").size(), 24u);
}

// SIGTERM while connections with KTLS sessions are open: every kernel halts
// cleanly (sessions gone, modules unloaded) and the daemon exits 0.
TEST(Ukernd, SigtermWithSessionsOpenHaltsCleanly) {
  Daemon d;
  ASSERT_TRUE(d.ready()) << d.proc().err();
  open_conn(d, {"-k", "client", "conn", "open"});
  open_conn(d, {"conn", "open", "-L", "-V", "1.3"});
  open_conn(d, {"conn", "open", "-p", "client", "-c", "chacha20-poly1305"});
  EXPECT_EQ(d.ctl({"conn", "send", "1", "1000000"}).status, 0);
  EXPECT_EQ(d.ctl({"conn", "send", "3", "50000"}).status, 0);
  json all = sessions_json(d, "all");
  EXPECT_EQ(all.size(), 6u) << all;
  EXPECT_EQ(d.stop(), 0) << d.proc().err();
  std::string err = d.proc().err();
  EXPECT_THAT(err, HasSubstr("ukernd: halted\n"));
  EXPECT_THAT(err, Not(HasSubstr("refused to unload"))) << err;
  EXPECT_THAT(err, Not(HasSubstr("still has"))) << err;
}

// kldstat lists the kernel first; kldload of an unknown module and kldunload
// of one never loaded fail with the kernel's errno in words.
TEST_F(UkerndTest, KldThroughTheDaemon) {
  Result r = d_.ctl({"kldstat"});
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("Id Refs Name\n"));
  EXPECT_THAT(r.out, HasSubstr(" 1 "));
  EXPECT_THAT(r.out, HasSubstr("kernel\n"));
  r = d_.ctl({"--libxo", "json", "kldstat"});
  ASSERT_EQ(r.status, 0) << r.err;
  json j = json::parse(r.out, nullptr, false);
  ASSERT_FALSE(j.is_discarded()) << r.out;
  EXPECT_EQ(j["kldstat"]["module"][0]["name"], "kernel") << r.out;
  r = d_.ctl({"kldload", "no_such_module"});
  EXPECT_NE(r.status, 0);
  EXPECT_EQ(r.err, "ktlsctl: kldload: can't load no_such_module: No such file or directory\n");
  r = d_.ctl({"kldunload", "no_such_module"});
  EXPECT_NE(r.status, 0);
  EXPECT_EQ(r.err, "ktlsctl: kldunload: can't find file no_such_module\n");
}

// Changing an interface goes to the kernel's ifconfig; one that does not
// exist is ENXIO, in words, as ifconfig(8) reports it.
TEST_F(UkerndTest, IfconfigErrorsComeFromTheKernel) {
  Result r = d_.ctl({"ifconfig", "nosuch0", "up"});
  EXPECT_NE(r.status, 0);
  EXPECT_EQ(r.err, "ktlsctl: ifconfig: nosuch0: No such device or address\n");
  r = d_.ctl({"ifconfig", "lo0", "mtu", "9000"});
  EXPECT_EQ(r.status, 0) << r.err;
}

TEST_F(UkerndTest, UsageErrorsUseSysexits) {
  Result r = d_.ctl({"mode", "1", "fast"});
  EXPECT_EQ(r.status, EX_USAGE);
  EXPECT_THAT(r.err, HasSubstr("usage: ktlsctl mode session sw|ifnet\n"));
  r = d_.ctl({"sysctl"});
  EXPECT_EQ(r.status, EX_USAGE);
  EXPECT_EQ(r.err, "usage: ktlsctl sysctl [-adeNnq] [name[=value] ...]\n");
  r = d_.ctl({"sysctl", "-x", "kern"});
  EXPECT_EQ(r.status, EX_USAGE);
  EXPECT_THAT(r.err, HasSubstr("ktlsctl: sysctl: illegal option -- x\n"));
  r = d_.ctl({"frobnicate"});
  EXPECT_EQ(r.status, EX_USAGE);
  r = d_.ctl({"--libxo", "yaml", "kernels"});
  EXPECT_EQ(r.status, EX_USAGE);
  r = d_.ctl({"pcap", "nic_sim0"});
  EXPECT_EQ(r.status, EX_USAGE);
  r = d_.ctl({"-k", "all", "stats"});
  EXPECT_EQ(r.status, EX_USAGE);
}

TEST_F(UkerndTest, EnvironmentSelectsTheDaemon) {
  Result r = e2e::run({ktlsctl_bin(), "sysctl", "-n", "kern.ipc.tls.enable"},
                      {"UKERN_SERVER=" + d_.url()});
  EXPECT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(r.out, "1\n");
}

TEST_F(UkerndTest, DmesgReadsTheMessageBuffer) {
  Result r = d_.ctl({"dmesg"});
  EXPECT_EQ(r.status, 0) << r.err;
  r = d_.ctl({"--libxo", "json", "-k", "client", "dmesg"});
  EXPECT_EQ(r.status, 0) << r.err;
  json j = json::parse(r.out, nullptr, false);
  ASSERT_FALSE(j.is_discarded()) << r.out;
  EXPECT_EQ(j["dmesg"]["kernel"], "client");
  EXPECT_TRUE(j["dmesg"]["line"].is_array());
}

TEST_F(UkerndTest, ASecondDaemonOnTheSameSocketRefusesToStart) {
  Result r = e2e::run({ukernd_bin(), "-s", d_.url(), "-f", d_.dir() + "/lab.toml"});
  EXPECT_EQ(r.status, EX_UNAVAILABLE);
  EXPECT_THAT(r.err, HasSubstr("in use by a running ukernd"));
  // The first one is unharmed.
  EXPECT_EQ(d_.ctl({"sysctl", "-n", "kern.ipc.tls.enable"}).status, 0);
}

TEST(Ukernd, NoDaemonReachableSaysHowToStartOne) {
  std::string dir = e2e::temp_dir("nodaemon");
  std::string url = "unix://" + dir + "/none.sock";
  Result r = e2e::run({ktlsctl_bin(), "-s", url, "sysctl", "kern.ipc.tls.enable"});
  EXPECT_EQ(r.status, EX_UNAVAILABLE);
  EXPECT_THAT(r.err, HasSubstr("ktlsctl: no ukernd reachable at " + url));
  EXPECT_THAT(r.err, HasSubstr("ukernd -s " + url));
  r = e2e::run({ktlsctl_bin(), "-s", "tcp://1.2.3.4:5", "kernels"});
  EXPECT_EQ(r.status, EX_USAGE);
  EXPECT_THAT(r.err, HasSubstr("unsupported scheme 'tcp'"));
}

TEST(Ukernd, TwoDaemonsOnTwoSocketsAreIndependent) {
  Daemon a, b;
  ASSERT_TRUE(a.ready()) << a.proc().err();
  ASSERT_TRUE(b.ready()) << b.proc().err();
  EXPECT_EQ(a.ctl({"sysctl", "kern.ipc.tls.enable=0"}).status, 0);
  EXPECT_EQ(a.ctl({"sysctl", "-n", "kern.ipc.tls.enable"}).out, "0\n");
  EXPECT_EQ(b.ctl({"sysctl", "-n", "kern.ipc.tls.enable"}).out, "1\n");
  EXPECT_EQ(a.stop(), 0);
  // b outlives a.
  EXPECT_EQ(b.ctl({"sysctl", "-n", "kern.ipc.tls.enable"}).out, "1\n");
  EXPECT_EQ(b.stop(SIGINT), 0) << b.proc().err();
}

TEST(Ukernd, StaleSocketIsRemoved) {
  std::string dir = e2e::temp_dir("stale");
  std::string path = dir + "/ctl.sock";
  int s = ukernd::unix_bind_listen(path, 1);
  ASSERT_GE(s, 0);
  close(s);  // the file stays, nobody listens: a crashed daemon's leftover
  e2e::write_file(dir + "/lab.toml", kLab);
  Process p;
  p.start({ukernd_bin(), "-s", "unix://" + path, "-f", dir + "/lab.toml"});
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  int c;
  while ((c = ukernd::unix_connect(path)) < 0) {
    ASSERT_TRUE(p.running()) << p.err();
    ASSERT_LT(std::chrono::steady_clock::now(), deadline);
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  close(c);
  p.signal(SIGTERM);
  EXPECT_EQ(p.wait(), 0);
  EXPECT_THAT(p.err(), HasSubstr("removed stale socket"));
}

TEST(Ukernd, NonSocketFileIsNeverTouched) {
  std::string dir = e2e::temp_dir("notsock");
  std::string path = dir + "/ctl.sock";
  e2e::write_file(path, "precious");
  e2e::write_file(dir + "/lab.toml", kLab);
  Result r = e2e::run({ukernd_bin(), "-s", "unix://" + path, "-f", dir + "/lab.toml"});
  EXPECT_NE(r.status, 0);
  EXPECT_THAT(r.err, HasSubstr("exists and is not a socket"));
  EXPECT_EQ(e2e::read_file(path), "precious");
}

TEST(Ukernd, DefaultLabBootsServerAndClient) {
  Daemon d("");  // no -f: the embedded default lab
  ASSERT_TRUE(d.ready()) << d.proc().err();
  Result r = d.ctl({"--libxo", "json", "kernels"});
  json j = json::parse(r.out, nullptr, false);
  ASSERT_FALSE(j.is_discarded()) << r.out;
  ASSERT_EQ(j["kernels"]["kernel"].size(), 2u);
  EXPECT_EQ(j["kernels"]["kernel"][0]["name"], "server");
  EXPECT_EQ(j["kernels"]["kernel"][1]["name"], "client");
  for (const char* k : {"server", "client"}) {
    r = d.ctl({"-k", k, "sysctl", "-n", "kern.ipc.tls.ifnet.permitted"});
    EXPECT_EQ(r.out, "1\n") << k;
  }
  EXPECT_EQ(d.stop(), 0);
  // NIC and wire lines either applied or reported once and skipped.
  std::string err = d.proc().err();
  size_t warn = err.find("ukernd: warning: ifconfig nic_sim0");
  if (warn != std::string::npos) {
    EXPECT_EQ(err.find("ukernd: warning: ifconfig", warn + 1), std::string::npos) << err;
  }
}

TEST(Ukernd, DemoOncePrintsTheModeTableAndExits) {
  std::string dir = e2e::temp_dir("demo");
  Result r = e2e::run({ukernd_bin(), "--demo", "--once", "-s", "unix://" + dir + "/ctl.sock",
                       "--out", dir + "/report", "--bridge", "127.0.0.1:0",
                       "--demo-requests", "2", "--demo-connections", "2"},
                      {}, 300);
  EXPECT_EQ(r.status, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("\nsw "));
  EXPECT_THAT(r.out, HasSubstr("\nuserland "));
  EXPECT_THAT(r.err, HasSubstr("ukernd: demo: report written to " + dir + "/report"));
  EXPECT_THAT(r.err, HasSubstr("ukernd: halted"));
  struct stat sb;
  EXPECT_EQ(stat((dir + "/report/report.json").c_str(), &sb), 0);
  EXPECT_NE(stat((dir + "/ctl.sock").c_str(), &sb), 0);
}

TEST(Ukernd, BadLabFileIsReportedWithItsPosition) {
  std::string dir = e2e::temp_dir("badlab");
  e2e::write_file(dir + "/lab.toml",
                  "[[kernel]]\nname = \"server\"\nncpu = 2\n");
  Result r = e2e::run({ukernd_bin(), "-s", "unix://" + dir + "/s", "-f", dir + "/lab.toml"});
  EXPECT_EQ(r.status, EX_CONFIG);
  EXPECT_THAT(r.err, HasSubstr(dir + "/lab.toml:3:"));
  EXPECT_THAT(r.err, HasSubstr("unknown key 'ncpu'"));
  r = e2e::run({ukernd_bin(), "-s", "unix://" + dir + "/s", "-f", dir + "/missing.toml"});
  EXPECT_EQ(r.status, EX_CONFIG);
}

TEST(Ukernd, HelpListsEverySubcommand) {
  Result r = e2e::run({ktlsctl_bin(), "--help"});
  EXPECT_EQ(r.status, 0);
  for (const char* c : {"sysctl", "kernels", "dmesg", "kldstat", "kldload", "kldunload",
                        "stats", "sessions", "mode", "ifconfig", "netstat", "pcap", "conn"})
    EXPECT_THAT(r.out, HasSubstr("ktlsctl " + std::string(c))) << c;
  r = e2e::run({ktlsctl_bin()});
  EXPECT_EQ(r.status, EX_USAGE);
  r = e2e::run({ukernd_bin(), "--help"});
  EXPECT_EQ(r.status, 0);
  EXPECT_THAT(r.out, HasSubstr("--demo"));
  r = e2e::run({ukernd_bin(), "--print-lab"});
  EXPECT_EQ(r.status, 0);
  EXPECT_THAT(r.out, HasSubstr("inet = \"10.0.0.1/24\""));
}

}  // namespace
