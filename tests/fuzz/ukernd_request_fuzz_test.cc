// Mutation fuzzing of the ukernd control-request parser and dispatcher,
// runnable under plain `bazel test` (gcc, ASan, TSan): valid requests of
// every op are mutated (byte flips, insertions, deletions, splices,
// hostile values) and fed to parse_request and to handle_line on a booted
// lab. The libFuzzer target next to this file explores further with clang.
#include <unistd.h>

#include <random>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "usr.sbin/ukernd/lab.h"
#include "usr.sbin/ukernd/lab_host.h"
#include "usr.sbin/ukernd/protocol.h"
#include "usr.sbin/ukernd/server.h"

namespace {

using ukernd::json;

const std::vector<std::string>& seeds() {
  static const std::vector<std::string> s = {
      R"({"v":1,"id":1,"op":"hello"})",
      R"({"v":1,"id":"a","op":"lab"})",
      R"({"v":1,"op":"kernels"})",
      R"({"v":1,"op":"sysctl.list","oid":"kern.ipc.tls"})",
      R"({"v":1,"op":"sysctl.list","oid":""})",
      R"({"v":1,"op":"sysctl.set","oid":"kern.ipc.tls.enable","value":"0","kernel":"client"})",
      R"({"v":1,"op":"sysctl.set","oid":"kern.ipc.tls.max_reclaim","value":2048})",
      R"({"v":1,"op":"dmesg","kernel":"server"})",
      R"({"v":1,"op":"kldstat"})",
      R"({"v":1,"op":"kldload","module":"ktls_ocf"})",
      R"({"v":1,"op":"kldunload","module":"ktls_ocf"})",
      R"({"v":1,"op":"stats"})",
      R"({"v":1,"op":"sessions","kernel":"all"})",
      R"({"v":1,"op":"mode","session":"3","mode":"ifnet"})",
      R"({"v":1,"op":"ifconfig","interface":"nic_sim0","args":["txtls","mtu 9000"]})",
      R"({"v":1,"op":"ifconfig"})",
      R"({"v":1,"op":"pcap","interface":"nic_sim0","count":10,"seconds":1.5})",
      R"({"v":1,"op":"services"})",
      // Test connections: the fuzz lab has no NICs, so opens fail before
      // any transfer (and no seed names a peer).
      R"({"v":1,"op":"conn.list"})",
      R"({"v":1,"op":"conn.open","cipher":"rot13","version":"1.3","personality":"linux"})",
      R"({"v":1,"op":"conn.send","conn":99,"bytes":10})",
      R"({"v":1,"op":"conn.close","conn":1})",
  };
  return s;
}

// Long enough to cross the field limit (4096) sometimes.
constexpr size_t kMaxFieldBytesPlus = ukernd::kMaxFieldBytes + 200;

const char* const kHostile[] = {
    "-1", "1e999", "-0", "null", "[]", "{}", "\"\\u0000\"", "18446744073709551616",
    "-9223372036854775809", "\"\\ud800\"", "true", "\"all\"", "\"\"", "[[[[[[[[",
    "\"\xff\xfe\"", "0x10", "\"kern.ipc.tls.enable\"", "\"sysctl.set\"", "1.5",
};

std::string mutate(std::string s, std::mt19937_64& rng) {
  auto pick = [&](size_t n) { return n == 0 ? 0 : static_cast<size_t>(rng() % n); };
  int rounds = 1 + static_cast<int>(rng() % 4);
  for (int i = 0; i < rounds; i++) {
    switch (rng() % 7) {
      case 0:  // flip a byte
        if (!s.empty()) s[pick(s.size())] ^= static_cast<char>(1u << (rng() % 8));
        break;
      case 1:  // insert a byte, often a JSON metacharacter
        s.insert(pick(s.size() + 1), 1, "{}[]\",:\\0 \n\x01\x80"[rng() % 14]);
        break;
      case 2:  // delete a range
        if (!s.empty()) {
          size_t a = pick(s.size());
          s.erase(a, pick(s.size() - a + 1));
        }
        break;
      case 3:  // duplicate a range
        if (!s.empty()) {
          size_t a = pick(s.size());
          std::string part = s.substr(a, pick(64));
          s.insert(pick(s.size() + 1), part);
        }
        break;
      case 4: {  // splice with another seed
        const std::string& o = seeds()[pick(seeds().size())];
        s = s.substr(0, pick(s.size() + 1)) + o.substr(pick(o.size() + 1));
        break;
      }
      case 5: {  // replace a value after a colon with a hostile one
        size_t c = s.find(':', pick(s.size() + 1));
        if (c != std::string::npos) {
          size_t end = s.find_first_of(",}", c);
          s.replace(c + 1, end == std::string::npos ? std::string::npos : end - c - 1,
                    kHostile[pick(sizeof(kHostile) / sizeof(kHostile[0]))]);
        }
        break;
      }
      case 6:  // a long field
        s.insert(pick(s.size() + 1), std::string(pick(kMaxFieldBytesPlus), 'A'));
        break;
    }
  }
  return s;
}

TEST(UkerndRequestFuzz, ParserSurvivesMutatedRequests) {
  std::mt19937_64 rng(20261122);
  int accepted = 0;
  for (int i = 0; i < 10000; i++) {
    std::string line = mutate(seeds()[i % seeds().size()], rng);
    ukernd::Request req;
    ukernd::RequestError err;
    bool ok = ukernd::parse_request(line, &req, &err);
    std::string out;
    if (ok) {
      accepted++;
      EXPECT_LE(req.name.size(), ukernd::kMaxFieldBytes);
      EXPECT_LE(req.args.size(), ukernd::kMaxArgs);
      out = ukernd::to_line(ukernd::make_reply(req.id, req.kernel, json::object()));
    } else {
      ASSERT_NE(err.error, 0) << line;
      ASSERT_FALSE(err.message.empty()) << line;
      out = ukernd::to_line(ukernd::make_error(err.id, err.error, err.message));
    }
    ASSERT_EQ(out.find('\n'), std::string::npos) << line;
    ASSERT_FALSE(json::parse(out, nullptr, false).is_discarded()) << line;
  }
  // The mutations must leave some requests valid, or only the error paths
  // were exercised.
  EXPECT_GT(accepted, 250);
}

TEST(UkerndRequestFuzz, ParserRejectsEveryPrefixOfAValidRequestCleanly) {
  for (const std::string& s : seeds()) {
    for (size_t n = 0; n < s.size(); n++) {
      ukernd::Request req;
      ukernd::RequestError err;
      EXPECT_FALSE(ukernd::parse_request(s.substr(0, n), &req, &err)) << s.substr(0, n);
    }
    ukernd::Request req;
    ukernd::RequestError err;
    EXPECT_TRUE(ukernd::parse_request(s, &req, &err)) << s << ": " << err.message;
  }
}

TEST(UkerndRequestFuzz, DispatcherSurvivesMutatedRequestsOnALiveLab) {
  ukernd::LabSpec spec;
  std::string err;
  ASSERT_TRUE(ukernd::parse_lab(R"(
[[kernel]]
name = "server"
ncpus = 1
[[kernel]]
name = "client"
ncpus = 1
)", "fuzz.toml", &spec, &err)) << err;
  FILE* log = fopen("/dev/null", "w");
  auto lab = ukernd::Lab::boot(spec, log, false, &err);
  ASSERT_NE(lab, nullptr) << err;
  std::mt19937_64 rng(7);
  ukernd::EmitFn emit = [](const json&) { return true; };
  for (int i = 0; i < 3000; i++) {
    std::string line = mutate(seeds()[i % seeds().size()], rng);
    uid_t uid = (i % 2) ? geteuid() : geteuid() + 1;
    json reply = ukernd::handle_line(*lab, line, uid, emit);
    ASSERT_TRUE(reply.is_object()) << line;
    ASSERT_TRUE(reply["ok"].is_boolean()) << line;
    if (!reply["ok"].get<bool>()) {
      ASSERT_TRUE(reply["error"]["message"].is_string()) << line;
    }
    ASSERT_EQ(ukernd::to_line(reply).find('\n'), std::string::npos);
  }
  lab->halt();
  fclose(log);
}

}  // namespace
