// Runs `ktls_bench --quick --json` and checks the shape of its output:
// every key of the performance bar present and numeric (IFNET/TOE may be
// null, then with a reason), the scaling points, the ratios, and that the
// sendfile path copied no payload byte by the kernel's own counters.
// No timing thresholds: the figures themselves are not judged here.
#include <sys/wait.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <tuple>
#include <utility>

#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace {

using json = nlohmann::json;

std::string BenchPath() {
  const char* srcdir = getenv("TEST_SRCDIR");
  const char* ws = getenv("TEST_WORKSPACE");
  return std::string(srcdir ? srcdir : ".") + "/" + (ws ? ws : "uktls") +
         "/bench/ktls_bench";
}

json RunBench(const std::string& args) {
  std::string cmd = BenchPath() + " " + args;
  FILE* f = popen(cmd.c_str(), "r");
  EXPECT_NE(f, nullptr);
  if (f == nullptr) return json();
  std::string out;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, f)) > 0) out.append(buf, n);
  int st = pclose(f);
  EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << cmd << " status " << st;
  return json::parse(out, nullptr, /*allow_exceptions=*/false);
}

bool Numeric(const json& v) {
  return v.is_number() && std::isfinite(v.get<double>()) && v.get<double>() >= 0;
}

TEST(KtlsBench, QuickJsonHasEveryFigure) {
  json j = RunBench("--quick --json --reps=1");
  ASSERT_TRUE(j.is_object()) << "output is not one JSON object";
  for (const char* key :
       {"raw_crypto_gbps", "raw_crypto_stream_gbps", "raw_decrypt_gbps", "ocf_gbps",
        "sw_tx_sendfile_gbps", "sw_tx_write_gbps", "sw_rx_gbps", "userland_openssl_gbps",
        "sw_wire_tx_gbps", "sw_wire_rx_gbps", "session_setup_per_sec", "idle_session_bytes",
        "payload_copies_per_byte_sendfile", "payload_copies_per_byte_rx",
        "scaling_poll_1024", "plain_tx_sendfile_gbps", "plain_rx_gbps"}) {
    ASSERT_TRUE(j.contains(key)) << key;
    EXPECT_TRUE(Numeric(j[key])) << key << " = " << j[key].dump();
  }
  EXPECT_GT(j["raw_crypto_gbps"].get<double>(), 0);
  EXPECT_GT(j["sw_tx_sendfile_gbps"].get<double>(), 0);
  EXPECT_GT(j["sw_rx_gbps"].get<double>(), 0);
  EXPECT_GT(j["idle_session_bytes"].get<double>(), 0);
  // Offload modes: a figure, or null with the reason it is missing. Each
  // wire figure comes with the sending kernel's host CPU per GiB.
  ASSERT_TRUE(j.contains("wire_host_cpu_s_per_gib"));
  const json& host = j["wire_host_cpu_s_per_gib"];
  EXPECT_GT(host["sw_wire_tx_gbps"].get<double>(), 0) << host.dump();
  EXPECT_GT(host["sw_wire_rx_gbps"].get<double>(), 0) << host.dump();
  for (const char* key : {"ifnet_tx_gbps", "toe_tx_gbps", "ifnet_rx_gbps", "toe_rx_gbps"}) {
    ASSERT_TRUE(j.contains(key)) << key;
    if (j[key].is_null()) {
      ASSERT_TRUE(j.contains("reason") && j["reason"].contains(key)) << key;
      EXPECT_TRUE(j["reason"][key].is_string());
      EXPECT_FALSE(j["reason"][key].get<std::string>().empty());
    } else {
      EXPECT_TRUE(Numeric(j[key])) << key << " = " << j[key].dump();
      EXPECT_TRUE(Numeric(host[key])) << key << " = " << host.dump();
    }
  }
  ASSERT_TRUE(j.contains("scaling"));
  for (const char* n : {"1", "2", "16", "256", "1024"}) {
    ASSERT_TRUE(j["scaling"].contains(n)) << n;
    EXPECT_TRUE(Numeric(j["scaling"][n])) << n << " = " << j["scaling"][n].dump();
  }
  // The warm-connection runs: the same transfers after an untimed one.
  ASSERT_TRUE(j.contains("scaling_warm"));
  for (const char* n : {"1", "2", "1024"}) {
    ASSERT_TRUE(j["scaling_warm"].contains(n)) << n;
    EXPECT_TRUE(Numeric(j["scaling_warm"][n])) << n << " = " << j["scaling_warm"][n].dump();
    EXPECT_TRUE(Numeric(j["cpu_gbps"]["scaling_warm"][n])) << n;
  }
  EXPECT_EQ(j["config"]["scaling_warm_bytes_per_conn"].get<double>(), 64 * 1024);
  // Where each transfer's CPU went, by thread: the KTLS worker encrypts
  // (TX) or decrypts (RX), the netisr carries the segments, the calling
  // thread and the peer thread do their share.
  ASSERT_TRUE(j.contains("thread_cpu_s_per_gib"));
  const json& split = j["thread_cpu_s_per_gib"];
  for (const char* fig : {"sw_tx_sendfile_gbps", "sw_tx_write_gbps", "scaling.1024"}) {
    ASSERT_TRUE(split.contains(fig)) << fig;
    for (const char* thread : {"ktls_thr_0", "netisr", "caller", "reader"})
      EXPECT_TRUE(Numeric(split[fig][thread]) && split[fig][thread].get<double>() > 0)
          << fig << " " << thread << ": " << split[fig].dump();
  }
  for (const char* thread : {"ktls_thr_0", "netisr", "caller", "writer"})
    EXPECT_TRUE(Numeric(split["sw_rx_gbps"][thread]) && split["sw_rx_gbps"][thread].get<double>() > 0)
        << thread << ": " << split["sw_rx_gbps"].dump();
  ASSERT_TRUE(j.contains("ratios"));
  for (const char* r : {"sendfile_over_raw_crypto", "sendfile_over_raw_crypto_stream",
                        "rx_over_raw_decrypt", "sendfile_over_plain_sendfile", "rx_over_plain_rx",
                        "sendfile_over_userland_openssl", "scaling_1024_over_best_1_2",
                        "scaling_warm_1024_over_best_1_2",
                        "ifnet_over_sw_wire", "toe_over_sw_wire", "ifnet_host_cpu_over_sw_wire",
                        "toe_host_cpu_over_sw_wire", "ifnet_rx_over_sw_wire_rx",
                        "toe_rx_over_sw_wire_rx", "ifnet_rx_host_cpu_over_sw_wire_rx",
                        "toe_rx_host_cpu_over_sw_wire_rx", "plain_rx_over_raw_decrypt",
                        "sendfile_worker_bound_over_raw_crypto", "rx_worker_bound_over_raw_decrypt",
                        "sendfile_worker_bound_over_userland_openssl",
                        "sendfile_worker_busy", "rx_worker_busy"}) {
    ASSERT_TRUE(j["ratios"].contains(r)) << r;
    EXPECT_TRUE(Numeric(j["ratios"][r])) << r << " = " << j["ratios"][r].dump();
  }
  // The worker's bound is what it would carry were it never idle, from its
  // CPU time in each round: never less than what it carried (a busy share
  // in (0, 1]; the clocks are read apart, hence the slack).
  for (const char* fig : {"sendfile", "rx"}) {
    const double busy = j["ratios"][std::string(fig) + "_worker_busy"].get<double>();
    EXPECT_GT(busy, 0) << fig;
    EXPECT_LE(busy, 1.05) << fig;
  }
  // sendfile hands file pages to the socket and the wire by reference: the
  // kernel copies no payload byte (kern.ipc.mbstat counters).
  EXPECT_EQ(j["payload_copies_per_byte_sendfile"].get<double>(), 0.0);
  // KTLS RX decrypts AES-GCM records out of the stream's mbufs into the
  // cluster the reader gets: only headers and nonces are copied.
  EXPECT_GE(j["payload_copies_per_byte_rx"].get<double>(), 0.0);
  EXPECT_LT(j["payload_copies_per_byte_rx"].get<double>(), 0.01);
  // Every round of every figure gave a result (a failed round is listed
  // under "failed" with its error).
  EXPECT_FALSE(j.contains("failed")) << j["failed"].dump();
}

// --sweep writes one SVG per cipher and the connections chart into
// --svg-dir, making the directory; an unwritable one fails the run.
TEST(KtlsBench, SweepWritesItsPlots) {
  const char* tmp = getenv("TEST_TMPDIR");
  std::string dir = std::string(tmp != nullptr ? tmp : "/tmp") + "/sweep/plots";
  json j = RunBench("--sweep --quick --json --svg-dir=" + dir);
  ASSERT_TRUE(j.is_object());
  ASSERT_TRUE(j.contains("record_size"));
  ASSERT_TRUE(j.contains("connections"));
  // Per cipher and mode: IFNET and TOE sendfile where nic_sim offers the
  // suite (AES-GCM both, AES-CBC TOE only), null with a reason elsewhere.
  const json& rs = j["record_size"];
  auto at = [&](const char* suite, const char* mode) { return rs[suite]["16384"][mode]; };
  EXPECT_TRUE(Numeric(at("aes128_gcm_1_3", "ifnet_sendfile")["gbps"]));
  EXPECT_TRUE(Numeric(at("aes128_gcm_1_3", "toe_sendfile")["gbps"]));
  EXPECT_TRUE(Numeric(at("aes128_cbc_sha1_1_2", "toe_sendfile")["gbps"]));
  EXPECT_TRUE(at("aes128_cbc_sha1_1_2", "ifnet_sendfile")["gbps"].is_null());
  EXPECT_TRUE(at("aes128_cbc_sha1_1_2", "ifnet_sendfile")["reason"].is_string());
  EXPECT_TRUE(at("chacha20_poly1305_1_3", "toe_sendfile")["gbps"].is_null());
  EXPECT_TRUE(Numeric(at("chacha20_poly1305_1_3", "sendfile")["gbps"]));
  // SW over the same wire, the offload modes' baseline, for every suite.
  for (const char* suite : {"aes128_gcm_1_3", "aes128_cbc_sha1_1_2", "chacha20_poly1305_1_3"})
    EXPECT_TRUE(Numeric(at(suite, "sw_wire_sendfile")["gbps"])) << suite;
  for (const char* f : {"throughput_vs_connections.svg",
                        "throughput_vs_record_size_aes128_gcm_1_3.svg",
                        "throughput_vs_record_size_aes128_cbc_sha1_1_2.svg", "sweep.json"}) {
    std::string path = dir + "/" + f;
    FILE* fp = fopen(path.c_str(), "r");
    ASSERT_NE(fp, nullptr) << path;
    char head[5] = {};
    EXPECT_EQ(fread(head, 1, 4, fp), 4u) << path;
    fclose(fp);
    if (std::string(f).find(".svg") != std::string::npos) {
      EXPECT_EQ(std::string(head), "<svg") << path;
    }
  }
  std::string cmd = BenchPath() + " --sweep --quick --svg-dir=/proc/no/such >/dev/null 2>&1";
  int st = system(cmd.c_str());
  ASSERT_TRUE(WIFEXITED(st));
  EXPECT_EQ(WEXITSTATUS(st), 1);
}

// --tunables reaches every kernel the benchmark boots: with KTLS turned
// off at boot no session can be made, so the KTLS figures are null, and the
// JSON says which tunables the run used.
TEST(KtlsBench, TunablesAreAppliedToTheKernels) {
  json on = RunBench("--quick --json --reps=1 --only=sw_tx_sendfile_gbps,session_setup_per_sec");
  ASSERT_TRUE(on.is_object());
  EXPECT_TRUE(Numeric(on["sw_tx_sendfile_gbps"]));
  EXPECT_TRUE(Numeric(on["session_setup_per_sec"]));
  EXPECT_EQ(on["config"]["tunables"], "");
  json off = RunBench(
      "--quick --json --reps=1 --only=sw_tx_sendfile_gbps,session_setup_per_sec "
      "--tunables=kern.ipc.tls.enable=0");
  ASSERT_TRUE(off.is_object());
  EXPECT_TRUE(off["sw_tx_sendfile_gbps"].is_null()) << off["sw_tx_sendfile_gbps"].dump();
  EXPECT_TRUE(off["session_setup_per_sec"].is_null()) << off["session_setup_per_sec"].dump();
  EXPECT_EQ(off["config"]["tunables"], "kern.ipc.tls.enable=0");
  // Each null figure says why: the failing call and its errno (ENOTSUP).
  for (const char* key : {"sw_tx_sendfile_gbps", "session_setup_per_sec"}) {
    EXPECT_EQ(off["reason"][key], "TCP_TXTLS_ENABLE: Operation not supported") << key;
    EXPECT_EQ(off["failed"][key]["failed_rounds"], 1) << key;
  }
  EXPECT_FALSE(on.contains("failed")) << on["failed"].dump();
}

TEST(KtlsBench, RejectsUnknownFlags) {
  std::string cmd = BenchPath() + " --no-such-flag 2>/dev/null";
  int st = system(cmd.c_str());
  ASSERT_TRUE(WIFEXITED(st));
  EXPECT_EQ(WEXITSTATUS(st), 2);
}

// Exit status and stderr of the benchmark run with |args|.
std::pair<int, std::string> RunForError(const std::string& args) {
  std::string cmd = BenchPath() + " " + args + " 2>&1 >/dev/null";
  FILE* f = popen(cmd.c_str(), "r");
  std::string err;
  char buf[512];
  size_t n;
  while (f != nullptr && (n = fread(buf, 1, sizeof buf, f)) > 0) err.append(buf, n);
  int st = f != nullptr ? pclose(f) : -1;
  return {WIFEXITED(st) ? WEXITSTATUS(st) : -1, err};
}

// A misspelt figure name would measure nothing and print nulls; a tunable
// that no subsystem takes (misspelt, or a sysctl that is not a tunable)
// would measure the defaults. Both are usage errors.
TEST(KtlsBench, RejectsUnknownFiguresAndTunables) {
  auto [st, err] = RunForError("--quick --json --reps=1 --only=sw_tx_sendfile");
  EXPECT_EQ(st, 2);
  EXPECT_NE(err.find("no figure named \"sw_tx_sendfile\""), std::string::npos) << err;
  EXPECT_NE(err.find("sw_tx_sendfile_gbps"), std::string::npos) << err;
  std::tie(st, err) = RunForError("--quick --json --reps=1 --only=ocf_gbps "
                                  "--tunables=net.inet.tcp.sendspace=65536");
  EXPECT_EQ(st, 2);
  EXPECT_NE(err.find("no tunable named net.inet.tcp.sendspace"), std::string::npos) << err;
  std::tie(st, err) = RunForError("--sweep --quick --tunables=kern.ipc.tls.maxlne=4096");
  EXPECT_EQ(st, 2);
  EXPECT_NE(err.find("no tunable named kern.ipc.tls.maxlne"), std::string::npos) << err;
  std::tie(st, err) = RunForError("--quick --json --reps=1 --only=ocf_gbps "
                                  "--sysctls=net.inet.tcp.sendspce=65536");
  EXPECT_EQ(st, 2);
  EXPECT_NE(err.find("--sysctls: net.inet.tcp.sendspce=65536: No such file or directory"),
            std::string::npos)
      << err;
  std::tie(st, err) = RunForError("--quick --json --reps=1 --only=ocf_gbps "
                                  "--sysctls=net.inet.tcp.sendspace=big");
  EXPECT_EQ(st, 2);
  EXPECT_NE(err.find("Invalid argument"), std::string::npos) << err;
}

// --sysctls sets sysctls after boot, for what is not a tunable: with the
// largest socket buffer below the default send space every TCP socket fails
// (ENOBUFS, as FreeBSD's soreserve), so the transfers give no figure - and
// say so, on stderr and in the JSON, for every round.
TEST(KtlsBench, SysctlsAreSetAfterBoot) {
  const std::string args =
      "--quick --json --reps=2 --only=sw_tx_sendfile_gbps,sw_rx_gbps,scaling.2,ocf_gbps "
      "--sysctls=net.inet.tcp.sendspace=65536,kern.ipc.maxsockbuf=16384";
  json j = RunBench(args);
  ASSERT_TRUE(j.is_object());
  EXPECT_TRUE(Numeric(j["ocf_gbps"]));
  EXPECT_EQ(j["config"]["sysctls"], "net.inet.tcp.sendspace=65536,kern.ipc.maxsockbuf=16384");
  EXPECT_TRUE(j["sw_tx_sendfile_gbps"].is_null()) << j["sw_tx_sendfile_gbps"].dump();
  EXPECT_TRUE(j["sw_rx_gbps"].is_null()) << j["sw_rx_gbps"].dump();
  EXPECT_TRUE(j["scaling"]["2"].is_null()) << j["scaling"].dump();
  for (const char* key : {"sw_tx_sendfile_gbps", "sw_rx_gbps", "scaling.2"}) {
    ASSERT_TRUE(j["failed"].contains(key)) << key << " " << j["failed"].dump();
    EXPECT_EQ(j["failed"][key]["failed_rounds"], 2) << key;
    const std::string why = j["reason"][key].get<std::string>();
    EXPECT_NE(why.find("No buffer space available"), std::string::npos) << key << ": " << why;
    EXPECT_EQ(j["failed"][key]["error"], why) << key;
  }
  EXPECT_FALSE(j["failed"].contains("ocf_gbps"));
  auto [st, err] = RunForError(args);
  EXPECT_EQ(st, 0);
  EXPECT_NE(err.find("ktls_bench: sw_rx_gbps: 2 of 2 rounds failed: TCP connection over lo0: "
                     "No buffer space available"),
            std::string::npos)
      << err;
}

}  // namespace
