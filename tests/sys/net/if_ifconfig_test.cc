// ifconfig(8) argument parsing and capability formatting.
#include "sys/net/if_ifconfig.h"

#include <arpa/inet.h>

#include <cerrno>

#include "gtest/gtest.h"
#include "sys/net/if_cap.h"

namespace uk {
namespace {

ifconfig_req Parse(const char* s) {
  ifconfig_req r;
  std::string err;
  EXPECT_EQ(ifconfig_parse(s, &r, &err), 0) << s << ": " << err;
  return r;
}

TEST(IfconfigParse, CreateDestroyUpDownMtu) {
  EXPECT_TRUE(Parse("create").create);
  EXPECT_TRUE(Parse("destroy").destroy);
  EXPECT_EQ(Parse("up").up, std::optional<bool>(true));
  EXPECT_EQ(Parse("down").up, std::optional<bool>(false));
  EXPECT_EQ(Parse("mtu 9000").mtu, std::optional<int>(9000));
  EXPECT_TRUE(Parse("").empty());
  EXPECT_TRUE(Parse("   ").empty());
  ifconfig_req r = Parse("create mtu 1400 up");
  EXPECT_TRUE(r.create);
  EXPECT_EQ(*r.mtu, 1400);
  EXPECT_TRUE(*r.up);
}

TEST(IfconfigParse, InetForms) {
  ifconfig_req r = Parse("inet 10.0.0.1/24 up");
  ASSERT_TRUE(r.inet_addr);
  EXPECT_EQ(inet_format(*r.inet_addr), "10.0.0.1");
  EXPECT_EQ(r.inet_prefixlen, 24);
  EXPECT_EQ(r.inet_mask, htonl(0xffffff00));
  EXPECT_TRUE(*r.up);
  r = Parse("inet 192.168.1.7 netmask 255.255.0.0");
  EXPECT_EQ(r.inet_prefixlen, 16);
  r = Parse("inet 192.168.1.7 netmask 0xfffffff0 alias");
  EXPECT_EQ(r.inet_prefixlen, 28);
  EXPECT_TRUE(r.inet_alias);
  r = Parse("inet 10.1.2.3");  // classful default
  EXPECT_EQ(r.inet_prefixlen, 8);
  r = Parse("inet 10.1.2.3 -alias");
  EXPECT_TRUE(r.inet_delete);
  r = Parse("inet 10.1.2.3/32");
  EXPECT_EQ(r.inet_mask, 0xffffffffu);
}

TEST(IfconfigParse, CapabilityWordsAndNegations) {
  ifconfig_req r = Parse("txcsum rxcsum tso lro txtls txtlsrtlmt rxtls toe");
  EXPECT_EQ(r.cap_on, IFCAP_TXCSUM | IFCAP_RXCSUM | IFCAP_TSO4 | IFCAP_TSO6 |
                          IFCAP_LRO | IFCAP_TXTLS4 | IFCAP_TXTLS6 |
                          IFCAP_TXTLS_RTLMT | IFCAP_TOE4 | IFCAP_TOE6);
  EXPECT_EQ(r.cap2_on, IFCAP2_BIT(IFCAP2_RXTLS4) | IFCAP2_BIT(IFCAP2_RXTLS6));
  EXPECT_EQ(r.cap_off, 0u);
  r = Parse("-txcsum -rxcsum -tso -lro -txtls -txtlsrtlmt -rxtls -toe");
  EXPECT_EQ(r.cap_on, 0u);
  EXPECT_EQ(r.cap_off, IFCAP_TXCSUM | IFCAP_RXCSUM | IFCAP_TSO | IFCAP_LRO |
                           IFCAP_TXTLS | IFCAP_TXTLS_RTLMT | IFCAP_TOE);
  EXPECT_EQ(r.cap2_off, IFCAP2_RXTLS);
  // The last word about a bit wins.
  r = Parse("txtls -txtls");
  EXPECT_EQ(r.cap_on, 0u);
  EXPECT_EQ(r.cap_off, IFCAP_TXTLS);
  r = Parse("-lro lro");
  EXPECT_EQ(r.cap_on, IFCAP_LRO);
  EXPECT_EQ(r.cap_off, 0u);
  EXPECT_EQ(Parse("mextpg").cap_on, IFCAP_MEXTPG);
  EXPECT_EQ(Parse("tso4").cap_on, IFCAP_TSO4);
}

TEST(IfconfigParse, ErrorsNameTheWord) {
  struct {
    const char* in;
    const char* msg;
  } cases[] = {
      {"txtsl", "ifconfig: unknown word \"txtsl\""},
      {"up fast", "ifconfig: unknown word \"fast\""},
      {"-bogus", "ifconfig: unknown word \"-bogus\""},
      {"mtu", "ifconfig: mtu: missing value"},
      {"mtu big", "ifconfig: mtu \"big\": not a number in 1..65535"},
      {"mtu 0", "ifconfig: mtu \"0\": not a number in 1..65535"},
      {"inet", "ifconfig: inet: missing address"},
      {"inet 10.0.0.300/24", "ifconfig: inet 10.0.0.300/24: bad address"},
      {"inet 10.0.0.1/33", "ifconfig: inet 10.0.0.1/33: bad prefix length"},
      {"inet 10.0.0.1 netmask 255.0.255.0", "ifconfig: netmask 255.0.255.0: not contiguous"},
      {"inet 10.0.0.1/24 netmask 255.255.0.0", "contradicts /24"},
      {"create destroy", "ifconfig: create and destroy together"},
  };
  for (const auto& c : cases) {
    ifconfig_req r;
    r.mtu = 77;
    std::string err;
    EXPECT_EQ(ifconfig_parse(c.in, &r, &err), EINVAL) << c.in;
    EXPECT_NE(err.find(c.msg), std::string::npos) << c.in << " -> " << err;
    EXPECT_EQ(r.mtu, std::optional<int>(77)) << "untouched on error";
  }
}

TEST(IfconfigParse, InterfaceNames) {
  std::string d;
  int u;
  ASSERT_EQ(ifname_parse("nic_sim0", &d, &u), 0);
  EXPECT_EQ(d, "nic_sim");
  EXPECT_EQ(u, 0);
  ASSERT_EQ(ifname_parse("nic_sim12", &d, &u), 0);
  EXPECT_EQ(u, 12);
  EXPECT_EQ(ifname_parse("nic_sim", &d, &u), EINVAL);
  EXPECT_EQ(ifname_parse("0", &d, &u), EINVAL);
  EXPECT_EQ(ifname_parse("nic_sim01", &d, &u), EINVAL);
  EXPECT_EQ(ifname_parse("nic-sim0", &d, &u), EINVAL);
  EXPECT_EQ(ifname_parse("", &d, &u), EINVAL);
}

TEST(IfCap, FreeBsdBitNumbers) {
  EXPECT_EQ(IFCAP_MEXTPG, 1u << 26);
  EXPECT_EQ(IFCAP_TXTLS4, 1u << 27);
  EXPECT_EQ(IFCAP_TXTLS6, 1u << 28);
  EXPECT_EQ(IFCAP_TXTLS_RTLMT, 1u << 31);
  EXPECT_EQ(IFCAP_TOE4, 1u << 14);
  EXPECT_EQ(IFCAP_TOE6, 1u << 15);
  EXPECT_EQ(IFCAP_RXCSUM, 1u);
  EXPECT_EQ(IFCAP_TXCSUM, 2u);
  EXPECT_EQ(IFCAP_TSO4, 0x100u);
  EXPECT_EQ(IFCAP_LRO, 0x400u);
  EXPECT_EQ(IFCAP2_RXTLS4, 0u);
  EXPECT_EQ(IFCAP2_RXTLS6, 1u);
}

TEST(IfCap, PrintbFormat) {
  EXPECT_EQ(ifcap_format("options", 0, 0), "options=0<>");
  EXPECT_EQ(ifcap_format("options", IFCAP_RXCSUM | IFCAP_TXCSUM, 0),
            "options=3<RXCSUM,TXCSUM>");
  EXPECT_EQ(ifcap_format("capabilities",
                         IFCAP_HWCSUM | IFCAP_TSO4 | IFCAP_LRO | IFCAP_TOE4 |
                             IFCAP_MEXTPG | IFCAP_TXTLS | IFCAP_TXTLS_RTLMT,
                         IFCAP2_RXTLS),
            "capabilities=9c004503<RXCSUM,TXCSUM,TSO4,LRO,TOE4,MEXTPG,TXTLS4,"
            "TXTLS6,TXTLS_RTLMT,RXTLS4,RXTLS6>");
  EXPECT_STREQ(ifcap_name(27), "TXTLS4");
  EXPECT_STREQ(ifcap2_name(1), "RXTLS6");
  EXPECT_EQ(ifcap_name(32), nullptr);
}

}  // namespace
}  // namespace uk
