// Byte ranges (RFC 9110 section 14). ukhttpd serves a single range; a Range
// field with several ranges is ignored and the whole representation is sent
// with 200, which RFC 9110 section 14.2 permits ("A server MAY ignore the
// Range header field"). So are syntactically invalid fields and units other
// than "bytes".
#ifndef UKTLS_USR_SBIN_UKHTTPD_HTTP_RANGE_H_
#define UKTLS_USR_SBIN_UKHTTPD_HTTP_RANGE_H_

#include <cstdint>
#include <string>
#include <string_view>

namespace ukhttpd {

enum class RangeKind {
  kNone,            // no usable Range: send 200 with the whole body
  kSatisfiable,     // send 206 with [first, last]
  kUnsatisfiable,   // send 416 with "Content-Range: bytes */size"
};

struct ByteRange {
  RangeKind kind = RangeKind::kNone;
  uint64_t first = 0;
  uint64_t last = 0;  // inclusive
  uint64_t length() const { return last - first + 1; }
};

// Evaluates a Range field value against a representation of |size| bytes:
// "bytes=a-b" (b clamped to size-1), "bytes=a-", "bytes=-n" (the last n
// bytes, all of them if n >= size). a >= size, "-0", and any range of an
// empty representation are unsatisfiable.
ByteRange ParseRange(std::string_view value, uint64_t size);

// "bytes first-last/size" for a Content-Range field.
std::string ContentRange(const ByteRange& r, uint64_t size);

}  // namespace ukhttpd

#endif  // UKTLS_USR_SBIN_UKHTTPD_HTTP_RANGE_H_
