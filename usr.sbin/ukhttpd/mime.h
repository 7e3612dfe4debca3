// Content-Type by file-name extension.
#ifndef UKTLS_USR_SBIN_UKHTTPD_MIME_H_
#define UKTLS_USR_SBIN_UKHTTPD_MIME_H_

#include <string_view>

namespace ukhttpd {

// The media type for |name|'s extension (case-insensitive);
// "application/octet-stream" when the extension is unknown or absent.
std::string_view ContentTypeFor(std::string_view name);

}  // namespace ukhttpd

#endif  // UKTLS_USR_SBIN_UKHTTPD_MIME_H_
