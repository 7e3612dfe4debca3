// The generated default docroot: index.html and three files of
// deterministic content, 1k.bin (1 KiB), 1m.bin (1 MiB) and 64m.bin
// (64 MiB). Content is a function of (file name, offset), so a test can
// compute the expected bytes of any range, or the SHA-256 of a whole file,
// without reading the docroot.
#ifndef UKTLS_USR_SBIN_UKHTTPD_DOCROOT_GEN_H_
#define UKTLS_USR_SBIN_UKHTTPD_DOCROOT_GEN_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "usr.sbin/ukhttpd/docroot.h"

namespace ukhttpd {

struct GeneratedFile {
  std::string name;
  uint64_t size;
};

// The default set: 1k.bin, 1m.bin, 64m.bin.
std::vector<GeneratedFile> DefaultFiles();

// Fills |buf| with bytes [off, off+len) of the generated file |name|. The
// pattern: 64-bit little-endian words, word i = splitmix64(fnv1a64(name) + i),
// a counter-based sequence that does not repeat within a file and differs
// between files, so a body served from the wrong file or offset never hashes
// right.
void PatternFill(std::string_view name, uint64_t off, uint8_t* buf, size_t len);

// Lower-case hex SHA-256 of the first |size| bytes of |name|'s pattern,
// computed with OpenSSL EVP over the same PatternFill output.
std::string PatternSha256(std::string_view name, uint64_t size);

// The index page for |files| (names, sizes, SHA-256 when |sha256| is given in
// the same order, links).
std::string IndexHtml(const std::vector<GeneratedFile>& files,
                      const std::vector<std::string>& sha256);

// Writes index.html and |files| into |sink|, streaming each file in 1 MiB
// chunks. Returns 0 or the sink's errno. When |sha256_out| is non-null it
// receives each file's SHA-256 (computed while writing, not re-read).
int WriteDocroot(DocSink& sink, const std::vector<GeneratedFile>& files,
                 std::vector<std::string>* sha256_out);

}  // namespace ukhttpd

#endif  // UKTLS_USR_SBIN_UKHTTPD_DOCROOT_GEN_H_
