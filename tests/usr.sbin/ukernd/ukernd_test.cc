// ukernd's parts in-process: the lab file format, the default lab, and the
// request handler (permissions, kernel selection, sysctl through the
// protocol) on booted kernels.
#include <unistd.h>

#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "usr.sbin/ukernd/lab.h"
#include "usr.sbin/ukernd/lab_host.h"
#include "usr.sbin/ukernd/protocol.h"
#include "usr.sbin/ukernd/server.h"

namespace {

using ::testing::HasSubstr;
using ukernd::json;

TEST(LabFile, DefaultLabIsServerAndClientOnOneWire) {
  ukernd::LabSpec lab;
  std::string err;
  ASSERT_TRUE(ukernd::parse_lab(ukernd::default_lab_toml(), "default", &lab, &err)) << err;
  ASSERT_EQ(lab.kernels.size(), 2u);
  EXPECT_EQ(lab.kernels[0].name, "server");
  EXPECT_EQ(lab.kernels[0].hostname, "server");
  EXPECT_FALSE(lab.kernels[0].modules.has_value());  // the default set
  ASSERT_EQ(lab.kernels[0].nics.size(), 1u);
  EXPECT_EQ(lab.kernels[0].nics[0].name, "nic_sim0");
  EXPECT_EQ(lab.kernels[0].nics[0].inet, "10.0.0.1/24");
  EXPECT_EQ(lab.kernels[1].nics[0].inet, "10.0.0.2/24");
  const std::vector<std::string> offloads = {"txcsum", "rxcsum", "tso", "lro", "mextpg"};
  for (const auto& k : lab.kernels) EXPECT_EQ(k.nics[0].options, offloads) << k.name;
  for (const auto& k : lab.kernels)
    EXPECT_EQ(k.tunables_string(), "kern.ipc.tls.ifnet.permitted=1");
  ASSERT_EQ(lab.wires.size(), 1u);
  EXPECT_EQ(lab.wires[0].params(), "bw=10g delay=20us loss=0 reorder=0 seed=1");
  ASSERT_EQ(lab.services.size(), 2u);
  EXPECT_EQ(lab.services[0].type, "ukhttpd");
  EXPECT_EQ(lab.services[0].kernel, "server");
  EXPECT_EQ(lab.services[0].options.at("listen"), "0.0.0.0:443");
  EXPECT_EQ(lab.services[1].type, "bridge");
  EXPECT_EQ(lab.services[1].kernel, "client");
  EXPECT_EQ(lab.services[1].options.at("listen"), "127.0.0.1:8443");
  EXPECT_EQ(lab.services[1].options.at("target"), "https");
}

TEST(LabFile, DottedTunableKeysFlattenToSysctlNames) {
  ukernd::LabSpec lab;
  std::string err;
  ASSERT_TRUE(ukernd::parse_lab(R"(
[[kernel]]
name = "a"
modules = ["ktls_ocf", "cryptosoft"]
[kernel.tunables]
kern.ipc.tls.maxlen = 4096
kern.ipc.tls.cbc_enable = false
"kern.ipc.tls.ifnet.permitted" = "1"
[[service]]
name = "https"
type = "ukhttpd"
kernel = "a"
port = 443
)", "t.toml", &lab, &err)) << err;
  EXPECT_EQ(lab.kernels[0].tunables_string(),
            "kern.ipc.tls.cbc_enable=0,kern.ipc.tls.maxlen=4096,"
            "kern.ipc.tls.ifnet.permitted=1");
  EXPECT_EQ(*lab.kernels[0].modules, "ktls_ocf,cryptosoft");
  ASSERT_EQ(lab.services.size(), 1u);
  EXPECT_EQ(lab.services[0].options.at("port"), "443");
}

TEST(LabFile, ErrorsNameFileLineAndColumn) {
  struct {
    const char* text;
    const char* want;
  } cases[] = {
      {"[[kernel]]\nname = \"a\"\nncpu = 1\n", "t.toml:3:8: unknown key 'ncpu' in [[kernel]]"},
      {"name = \"x\"\n", "a lab needs at least one [[kernel]]"},
      {"[[kernel]]\nname = \"a\"\n[[kernel]]\nname = \"a\"\n", "two kernels named 'a'"},
      {"[[kernel]]\nname = \"all\"\n", "bad kernel name 'all'"},
      {"[[kernel]]\nname = \"a\"\n[[kernel.nic]]\nname = \"nic_sim0\"\ninet = \"10.0.0.300/24\"\n",
       "bad IPv4 address '10.0.0.300/24'"},
      {"[[kernel]]\nname = \"a\"\n[[wire]]\na = \"a:nic_sim0\"\nb = \"a:nic_sim1\"\n",
       "kernel 'a' has no NIC 'nic_sim0'"},
      {"[[kernel]]\nname = \"a\"\n[[kernel.nic]]\nname = \"n0\"\n[[kernel.nic]]\nname = \"n1\"\n"
       "[[wire]]\na = \"a:n0\"\nb = \"a:n1\"\ndelay = \"20 parsecs\"\n",
       "bad delay '20 parsecs'"},
      {"[[kernel]]\nname = \"a\"\nncpus = -1\n", "'ncpus' must be an integer from 0 to 1024"},
      {"[[kernel\n", "t.toml:1:"},
  };
  for (const auto& c : cases) {
    ukernd::LabSpec lab;
    std::string err;
    EXPECT_FALSE(ukernd::parse_lab(c.text, "t.toml", &lab, &err)) << c.text;
    EXPECT_THAT(err, HasSubstr(c.want)) << c.text;
  }
}

class HandlerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ukernd::LabSpec spec;
    std::string err;
    ASSERT_TRUE(ukernd::parse_lab(R"(
[[kernel]]
name = "server"
ncpus = 1
[[kernel]]
name = "client"
ncpus = 1
[kernel.tunables]
kern.ipc.tls.enable = 0
)", "t.toml", &spec, &err)) << err;
    log_ = fopen("/dev/null", "w");
    lab_ = ukernd::Lab::boot(spec, log_, false, &err);
    ASSERT_NE(lab_, nullptr) << err;
  }
  void TearDown() override {
    lab_.reset();
    fclose(log_);
  }
  json ask(const std::string& line, uid_t uid = geteuid()) {
    return ukernd::handle_line(*lab_, line, uid, [](const json&) { return true; });
  }
  FILE* log_ = nullptr;
  std::unique_ptr<ukernd::Lab> lab_;
};

TEST_F(HandlerTest, TunablesFromTheLabReachTheKernel) {
  json r = ask(R"({"v":1,"op":"sysctl.list","oid":"kern.ipc.tls.enable","kernel":"client"})");
  ASSERT_EQ(r["ok"], true) << r.dump();
  EXPECT_EQ(r["kernel"], "client");
  EXPECT_EQ(r["result"]["oid"][0]["value"], 0);
  r = ask(R"({"v":1,"op":"sysctl.list","oid":"kern.ipc.tls.enable"})");
  EXPECT_EQ(r["kernel"], "server");
  EXPECT_EQ(r["result"]["oid"][0]["value"], 1);
  EXPECT_EQ(r["result"]["oid"][0]["type"], "uint8");
  EXPECT_EQ(r["result"]["oid"][0]["writable"], true);
}

TEST_F(HandlerTest, OtherUsersMayReadButNotChangeState) {
  uid_t other = geteuid() + 1000;
  json r = ask(R"({"v":1,"op":"sysctl.list","oid":"kern.ipc.tls.enable"})", other);
  EXPECT_EQ(r["ok"], true);
  r = ask(R"({"v":1,"op":"sysctl.set","oid":"kern.ipc.tls.enable","value":"0"})", other);
  EXPECT_EQ(r["ok"], false);
  EXPECT_EQ(r["error"]["code"], "EPERM");
  EXPECT_THAT(r["error"]["message"].get<std::string>(), HasSubstr("permission denied"));
  for (const char* req : {R"({"v":1,"op":"kldload","module":"x"})",
                          R"({"v":1,"op":"kldunload","module":"x"})",
                          R"({"v":1,"op":"mode","session":"1","mode":"sw"})",
                          R"({"v":1,"op":"ifconfig","interface":"lo0","args":["down"]})",
                          R"({"v":1,"op":"pcap","interface":"lo0"})"}) {
    EXPECT_EQ(ask(req, other)["error"]["code"], "EPERM") << req;
  }
  // Listing interfaces changes nothing: not refused for permission.
  EXPECT_NE(ask(R"({"v":1,"op":"ifconfig"})", other)["error"]["code"], "EPERM");
  r = ask(R"({"v":1,"op":"sysctl.list","oid":"kern.ipc.tls.enable"})", other);
  EXPECT_EQ(r["result"]["oid"][0]["value"], 1);
  // Root may.
  r = ask(R"({"v":1,"op":"sysctl.set","oid":"kern.ipc.tls.enable","value":"0"})", 0);
  EXPECT_EQ(r["ok"], true) << r.dump();
  EXPECT_EQ(r["result"]["old"], 1);
  EXPECT_EQ(r["result"]["new"], 0);
}

TEST_F(HandlerTest, KernelSelection) {
  json r = ask(R"({"v":1,"op":"stats","kernel":"nope"})");
  EXPECT_EQ(r["error"]["code"], "ESRCH");
  EXPECT_EQ(r["error"]["message"], "no kernel named 'nope' in this lab (kernels: server, client)");
  r = ask(R"({"v":1,"op":"stats","kernel":"all"})");
  EXPECT_EQ(r["error"]["code"], "EINVAL");
  r = ask(R"({"v":1,"op":"hello"})");
  EXPECT_EQ(r["result"]["default-kernel"], "server");
  EXPECT_EQ(r["result"]["protocol"], ukernd::kProtocolVersion);
  r = ask(R"({"v":1,"op":"lab"})");
  EXPECT_EQ(r["result"]["kernel"][1]["tunables"]["kern.ipc.tls.enable"], "0");
}

TEST_F(HandlerTest, StatsGroupTheTlsTree) {
  json r = ask(R"({"v":1,"op":"stats"})");
  ASSERT_EQ(r["ok"], true);
  const json& g = r["result"]["groups"];
  EXPECT_EQ(g["stats"]["offload_total"], 0);
  EXPECT_EQ(g["stats.ocf"]["tls12_gcm_encrypts"], 0);
  EXPECT_EQ(g["config"]["maxlen"], 16384);
  EXPECT_TRUE(g.contains("sw") && g.contains("ifnet") && g.contains("toe"));
}

}  // namespace
