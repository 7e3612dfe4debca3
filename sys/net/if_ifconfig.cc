// The ifconfig(8) argument parser. See if_ifconfig.h.
#include "sys/net/if_ifconfig.h"

#include <arpa/inet.h>

#include <cerrno>
#include <cstdio>
#include <vector>

#include "sys/net/ethernet.h"
#include "sys/net/if_cap.h"

namespace uk {

namespace {

struct CapWord {
  const char* word;
  uint32_t cap;   // first word
  uint32_t cap2;  // second word
};

// ifconfig(8)'s capability words and the bits each one toggles.
const CapWord kCapWords[] = {
    {"rxcsum", IFCAP_RXCSUM, 0},
    {"txcsum", IFCAP_TXCSUM, 0},
    {"rxcsum6", IFCAP_RXCSUM_IPV6, 0},
    {"txcsum6", IFCAP_TXCSUM_IPV6, 0},
    {"tso", IFCAP_TSO, 0},
    {"tso4", IFCAP_TSO4, 0},
    {"tso6", IFCAP_TSO6, 0},
    {"lro", IFCAP_LRO, 0},
    {"toe", IFCAP_TOE, 0},
    {"mextpg", IFCAP_MEXTPG, 0},
    {"txtls", IFCAP_TXTLS, 0},
    {"txtlsrtlmt", IFCAP_TXTLS_RTLMT, 0},
    {"txrtlmt", IFCAP_TXRTLMT, 0},
    {"rxtls", 0, IFCAP2_RXTLS},
};

std::vector<std::string_view> split_words(std::string_view s) {
  std::vector<std::string_view> v;
  size_t i = 0;
  while (i < s.size()) {
    while (i < s.size() && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n')) i++;
    size_t j = i;
    while (j < s.size() && s[j] != ' ' && s[j] != '\t' && s[j] != '\n') j++;
    if (j > i) v.push_back(s.substr(i, j - i));
    i = j;
  }
  return v;
}

bool parse_int(std::string_view s, long min, long max, long* out) {
  if (s.empty() || s.size() > 10) return false;
  long v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
    v = v * 10 + (c - '0');
  }
  if (v < min || v > max) return false;
  *out = v;
  return true;
}

}  // namespace

bool ifconfig_req::empty() const {
  return !create && !destroy && !up && !mtu && !inet_addr && !inet_delete &&
         !cap_on && !cap_off && !cap2_on && !cap2_off;
}

int inet_parse(std::string_view s, uint32_t* addr_be) {
  std::string str(s);
  in_addr a;
  // inet_pton accepts only the full dotted-quad form, as ifconfig does.
  if (inet_pton(AF_INET, str.c_str(), &a) != 1) return EINVAL;
  *addr_be = a.s_addr;
  return 0;
}

std::string inet_format(uint32_t addr_be) {
  char buf[INET_ADDRSTRLEN];
  in_addr a{addr_be};
  inet_ntop(AF_INET, &a, buf, sizeof buf);
  return buf;
}

uint32_t inet_prefix_mask(int prefixlen) {
  if (prefixlen <= 0) return 0;
  if (prefixlen >= 32) return 0xffffffffu;
  return htonl(~((1u << (32 - prefixlen)) - 1));
}

int inet_mask_prefix(uint32_t mask_be) {
  uint32_t m = ntohl(mask_be);
  int n = 0;
  while (n < 32 && (m & (0x80000000u >> n))) n++;
  if (n < 32 && (m << n) != 0) return -1;
  return n;
}

int ifname_parse(std::string_view name, std::string* driver, int* unit) {
  if (name.empty() || name.size() >= 16) return EINVAL;  // IFNAMSIZ
  size_t i = name.size();
  while (i > 0 && name[i - 1] >= '0' && name[i - 1] <= '9') i--;
  if (i == 0 || i == name.size()) return EINVAL;
  if (name.size() - i > 1 && name[i] == '0') return EINVAL;  // "nic_sim01"
  long u;
  if (!parse_int(name.substr(i), 0, 32767, &u)) return EINVAL;
  for (size_t j = 0; j < i; j++) {
    char c = name[j];
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'))
      return EINVAL;
  }
  *driver = std::string(name.substr(0, i));
  *unit = static_cast<int>(u);
  return 0;
}

int ifconfig_parse(std::string_view args, ifconfig_req* out, std::string* err) {
  ifconfig_req r;
  auto fail = [&](std::string msg) {
    if (err) *err = "ifconfig: " + std::move(msg);
    return EINVAL;
  };
  std::vector<std::string_view> w = split_words(args);
  for (size_t i = 0; i < w.size(); i++) {
    std::string_view word = w[i];
    std::string ws(word);
    if (word == "create") {
      r.create = true;
    } else if (word == "destroy") {
      r.destroy = true;
    } else if (word == "up") {
      r.up = true;
    } else if (word == "down") {
      r.up = false;
    } else if (word == "mtu") {
      if (i + 1 >= w.size()) return fail("mtu: missing value");
      long v;
      std::string vs(w[i + 1]);
      // ifconfig's range check is the driver's; nic_sim enforces its own.
      if (!parse_int(w[i + 1], 1, 65535, &v))
        return fail("mtu \"" + vs + "\": not a number in 1..65535");
      r.mtu = static_cast<int>(v);
      i++;
    } else if (word == "inet") {
      if (i + 1 >= w.size()) return fail("inet: missing address");
      std::string_view a = w[++i];
      std::string as(a);
      int plen = -1;
      size_t slash = a.find('/');
      if (slash != std::string_view::npos) {
        long p;
        if (!parse_int(a.substr(slash + 1), 0, 32, &p))
          return fail("inet " + as + ": bad prefix length");
        plen = static_cast<int>(p);
        a = a.substr(0, slash);
      }
      uint32_t addr;
      if (inet_parse(a, &addr) != 0)
        return fail("inet " + as + ": bad address");
      r.inet_addr = addr;
      r.inet_prefixlen = plen;
      // "netmask M" and "alias" may follow.
      while (i + 1 < w.size()) {
        if (w[i + 1] == "netmask") {
          if (i + 2 >= w.size()) return fail("netmask: missing value");
          std::string ms(w[i + 2]);
          uint32_t m;
          if (ms.size() > 2 && ms[0] == '0' && (ms[1] == 'x' || ms[1] == 'X')) {
            char* end = nullptr;
            unsigned long v = strtoul(ms.c_str() + 2, &end, 16);
            if (*end != '\0' || v > 0xffffffffu)
              return fail("netmask " + ms + ": bad mask");
            m = htonl(static_cast<uint32_t>(v));
          } else if (inet_parse(ms, &m) != 0) {
            return fail("netmask " + ms + ": bad mask");
          }
          int p = inet_mask_prefix(m);
          if (p < 0) return fail("netmask " + ms + ": not contiguous");
          if (plen >= 0 && p != plen)
            return fail("netmask " + ms + " contradicts /" + std::to_string(plen));
          r.inet_prefixlen = plen = p;
          i += 2;
        } else if (w[i + 1] == "alias" || w[i + 1] == "add") {
          r.inet_alias = true;
          i++;
        } else if (w[i + 1] == "-alias" || w[i + 1] == "delete") {
          r.inet_delete = true;
          i++;
        } else {
          break;
        }
      }
      if (r.inet_prefixlen < 0) {
        // Classful default, as ifconfig does without a mask.
        uint32_t h = ntohl(addr);
        r.inet_prefixlen = (h >> 31) == 0 ? 8 : (h >> 30) == 2 ? 16 : 24;
      }
      r.inet_mask = inet_prefix_mask(r.inet_prefixlen);
    } else if (word == "-alias" || word == "delete") {
      r.inet_delete = true;
    } else {
      bool neg = word.size() > 1 && word[0] == '-';
      std::string_view base = neg ? word.substr(1) : word;
      const CapWord* cw = nullptr;
      for (const CapWord& c : kCapWords)
        if (base == c.word) cw = &c;
      if (cw == nullptr) return fail("unknown word \"" + ws + "\"");
      if (neg) {
        r.cap_off |= cw->cap;
        r.cap2_off |= cw->cap2;
        r.cap_on &= ~cw->cap;
        r.cap2_on &= ~cw->cap2;
      } else {
        r.cap_on |= cw->cap;
        r.cap2_on |= cw->cap2;
        r.cap_off &= ~cw->cap;
        r.cap2_off &= ~cw->cap2;
      }
    }
  }
  if (r.create && r.destroy) return fail("create and destroy together");
  *out = r;
  return 0;
}

}  // namespace uk
