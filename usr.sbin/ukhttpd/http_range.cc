#include "usr.sbin/ukhttpd/http_range.h"

#include <cctype>
#include <optional>

namespace ukhttpd {
namespace {

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// 1*DIGIT without overflow; nullopt otherwise.
std::optional<uint64_t> ParseDigits(std::string_view s) {
  if (s.empty() || s.size() > 19) {
    // More than 19 digits may overflow; such a position is beyond any file.
    if (s.size() > 19 && s.find_first_not_of("0123456789") == std::string_view::npos) {
      return UINT64_MAX;
    }
    return std::nullopt;
  }
  uint64_t v = 0;
  for (char c : s) {
    if (!std::isdigit(static_cast<unsigned char>(c))) return std::nullopt;
    v = v * 10 + static_cast<uint64_t>(c - '0');
  }
  return v;
}

}  // namespace

ByteRange ParseRange(std::string_view value, uint64_t size) {
  ByteRange none;
  value = Trim(value);
  size_t eq = value.find('=');
  if (eq == std::string_view::npos) return none;
  std::string_view unit = Trim(value.substr(0, eq));
  if (unit.size() != 5) return none;
  for (size_t i = 0; i < 5; ++i) {
    if (std::tolower(static_cast<unsigned char>(unit[i])) != "bytes"[i]) return none;
  }
  std::string_view spec = Trim(value.substr(eq + 1));
  if (spec.find(',') != std::string_view::npos) return none;  // several ranges: 200
  size_t dash = spec.find('-');
  if (dash == std::string_view::npos) return none;
  std::string_view a = Trim(spec.substr(0, dash));
  std::string_view b = Trim(spec.substr(dash + 1));

  ByteRange r;
  if (a.empty()) {
    // suffix-range "-n"
    std::optional<uint64_t> n = ParseDigits(b);
    if (!n) return none;
    if (*n == 0 || size == 0) {
      r.kind = RangeKind::kUnsatisfiable;
      return r;
    }
    r.kind = RangeKind::kSatisfiable;
    r.first = *n >= size ? 0 : size - *n;
    r.last = size - 1;
    return r;
  }
  std::optional<uint64_t> first = ParseDigits(a);
  if (!first) return none;
  std::optional<uint64_t> last;
  if (!b.empty()) {
    last = ParseDigits(b);
    if (!last || *last < *first) return none;  // invalid range-spec: ignore the field
  }
  if (*first >= size) {
    r.kind = RangeKind::kUnsatisfiable;
    return r;
  }
  r.kind = RangeKind::kSatisfiable;
  r.first = *first;
  r.last = (!last || *last >= size) ? size - 1 : *last;
  return r;
}

std::string ContentRange(const ByteRange& r, uint64_t size) {
  if (r.kind != RangeKind::kSatisfiable) return "bytes */" + std::to_string(size);
  return "bytes " + std::to_string(r.first) + "-" + std::to_string(r.last) + "/" +
         std::to_string(size);
}

}  // namespace ukhttpd
