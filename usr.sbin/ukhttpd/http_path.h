// Request targets to docroot-relative paths. This is the first of the two
// walls against directory traversal: after %-decoding and dot-segment removal
// (RFC 3986 section 5.2.4) the result has no "..", no empty segment, no "/" or
// "\" or NUL inside a segment, and never climbs above the docroot. The second
// wall is the Docroot implementation, which refuses symbolic links that lead
// out of the root (docroot.h).
#ifndef UKTLS_USR_SBIN_UKHTTPD_HTTP_PATH_H_
#define UKTLS_USR_SBIN_UKHTTPD_HTTP_PATH_H_

#include <string>
#include <string_view>
#include <vector>

namespace ukhttpd {

struct TargetPath {
  int error_status = 0;  // 0, or 400 (malformed) / 403 (climbs out of the root)
  std::string reason;
  // Decoded, normalised segments; empty for the root.
  std::vector<std::string> segments;
  // The target named a directory ("/", "/dir/"): the last character of the
  // normalised path is "/".
  bool trailing_slash = false;
  // The normalised path as it should appear in a Location header, %-encoded.
  std::string encoded_path;
  // "a/b/c": segments joined with "/"; "" for the root.
  std::string relpath() const;
};

// Parses an origin-form ("/a/b?q") or absolute-form ("https://h/a/b") target.
// The query is ignored. Each segment is %-decoded exactly once, so "%252e"
// stays the literal name "%2e". Invalid %-escapes, a decoded NUL, "/" or "\",
// a fragment, and targets that are neither form give 400; ".." that would
// climb above the root gives 403.
TargetPath NormalizeTarget(std::string_view target);

// %-encodes a path for a Location header or an HTML link: unreserved
// characters and "/" stay, everything else becomes %XX.
std::string PercentEncodePath(std::string_view path);

}  // namespace ukhttpd

#endif  // UKTLS_USR_SBIN_UKHTTPD_HTTP_PATH_H_
