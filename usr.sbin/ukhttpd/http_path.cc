#include "usr.sbin/ukhttpd/http_path.h"

#include <cctype>

namespace ukhttpd {
namespace {

int HexVal(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

TargetPath Fail(int status, std::string reason) {
  TargetPath t;
  t.error_status = status;
  t.reason = std::move(reason);
  return t;
}

}  // namespace

std::string TargetPath::relpath() const {
  std::string out;
  for (size_t i = 0; i < segments.size(); ++i) {
    if (i) out.push_back('/');
    out.append(segments[i]);
  }
  return out;
}

std::string PercentEncodePath(std::string_view path) {
  static const char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (char c : path) {
    unsigned char u = static_cast<unsigned char>(c);
    if (std::isalnum(u) || c == '-' || c == '.' || c == '_' || c == '~' || c == '/') {
      out.push_back(c);
    } else {
      out.push_back('%');
      out.push_back(kHex[u >> 4]);
      out.push_back(kHex[u & 15]);
    }
  }
  return out;
}

TargetPath NormalizeTarget(std::string_view target) {
  std::string_view path = target;
  if (path.find('#') != std::string_view::npos) return Fail(400, "fragment in request target");
  if (path.empty()) return Fail(400, "empty request target");
  if (path[0] != '/') {
    // absolute-form (RFC 9112 section 3.2.2): scheme "://" authority path.
    size_t scheme_end = path.find("://");
    if (scheme_end == std::string_view::npos || scheme_end == 0) {
      return Fail(400, "request target is neither origin-form nor absolute-form");
    }
    for (size_t i = 0; i < scheme_end; ++i) {
      unsigned char c = static_cast<unsigned char>(path[i]);
      if (!std::isalnum(c) && c != '+' && c != '-' && c != '.') {
        return Fail(400, "malformed scheme in request target");
      }
    }
    path.remove_prefix(scheme_end + 3);
    size_t slash = path.find_first_of("/?");
    if (slash == std::string_view::npos) {
      path = "/";
    } else if (path[slash] == '?') {
      path = "/";
    } else {
      path.remove_prefix(slash);
    }
  }
  size_t q = path.find('?');
  if (q != std::string_view::npos) path = path.substr(0, q);

  TargetPath out;
  // Raw segments are split on literal "/" only; an encoded "%2F" decodes to a
  // "/" inside a segment and is refused below rather than becoming a
  // separator after the dot-segment pass.
  std::string_view rest = path.substr(1);
  bool last_was_dir = true;  // "/" alone names the root directory
  while (true) {
    size_t slash = rest.find('/');
    std::string_view raw = rest.substr(0, slash);
    bool more = slash != std::string_view::npos;
    std::string seg;
    seg.reserve(raw.size());
    for (size_t i = 0; i < raw.size(); ++i) {
      if (raw[i] != '%') {
        seg.push_back(raw[i]);
        continue;
      }
      if (i + 2 >= raw.size()) {
        return Fail(400, "truncated %-escape");
      }
      int hi = HexVal(raw[i + 1]), lo = HexVal(raw[i + 2]);
      if (hi < 0 || lo < 0) return Fail(400, "invalid %-escape");
      seg.push_back(static_cast<char>(hi * 16 + lo));
      i += 2;
    }
    for (char c : seg) {
      if (c == '\0') return Fail(400, "NUL in path");
      if (c == '/' || c == '\\') return Fail(400, "encoded path separator");
    }
    if (seg == "..") {
      if (out.segments.empty()) return Fail(403, "path climbs above the document root");
      out.segments.pop_back();
      last_was_dir = true;
    } else if (seg == "." || seg.empty()) {
      // "a//b" and "a/./b" are "a/b"; a trailing "/", "." or ".." names a directory.
      last_was_dir = true;
    } else {
      out.segments.push_back(std::move(seg));
      last_was_dir = false;
    }
    if (!more) break;
    rest.remove_prefix(slash + 1);
  }
  out.trailing_slash = last_was_dir;
  std::string plain = "/" + out.relpath();
  if (out.trailing_slash && !out.segments.empty()) plain.push_back('/');
  out.encoded_path = PercentEncodePath(plain);
  return out;
}

}  // namespace ukhttpd
