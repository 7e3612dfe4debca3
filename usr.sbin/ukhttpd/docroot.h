// The document root seen by the HTTP core: open a docroot-relative path and
// read it, or hand its descriptor to the transport's send_file. Two
// implementations: HostDocroot (a host directory; docroot_host.h) and, for a
// server running inside a uktls kernel, UkTmpfsDocroot (the kernel's tmpfs,
// reached with uk_open/uk_pread; docroot_uk.h).
//
// DocSink is the write side, used by the default-docroot generator and by an
// importer that copies a host directory into a kernel's file system. Files
// are streamed through it in chunks, never held whole in memory.
#ifndef UKTLS_USR_SBIN_UKHTTPD_DOCROOT_H_
#define UKTLS_USR_SBIN_UKHTTPD_DOCROOT_H_

#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <string_view>

namespace ukhttpd {

// One open regular file. Not shared between threads.
class DocFile {
 public:
  virtual ~DocFile() = default;
  virtual uint64_t size() const = 0;
  // Modification time in seconds since the epoch, or -1 when unknown.
  virtual int64_t mtime() const = 0;
  // Reads up to |len| bytes at |off|: the count, 0 at end of file, or -1 with
  // errno set.
  virtual ssize_t pread(void* buf, size_t len, uint64_t off) = 0;
  // The descriptor that Transport::send_file passes to sendfile(2), in the
  // descriptor space of the transport's socket (a host fd for host sockets, a
  // uk fd for uktls sockets); -1 when the file cannot be sent that way.
  virtual int sendfile_fd() const = 0;
};

enum class DocKind { kFile, kDirectory };

class Docroot {
 public:
  virtual ~Docroot() = default;
  // Looks up |relpath| ("" is the root, "a/b" otherwise; already normalised
  // by NormalizeTarget, so it has no "." or ".." segments). Returns 0,
  // ENOENT/ENOTDIR (404), or EACCES/EXDEV/ELOOP (403: not readable, or a
  // symbolic link that leads out of the root).
  virtual int stat(std::string_view relpath, DocKind* kind) = 0;
  // Opens the regular file |relpath|; errors as stat(), EISDIR for a
  // directory.
  virtual int open(std::string_view relpath, std::unique_ptr<DocFile>* out) = 0;
};

class DocSink {
 public:
  virtual ~DocSink() = default;
  // Each returns 0 or an errno. A file is written as begin_file, any number
  // of append calls, end_file; directories before the files in them.
  virtual int make_dir(std::string_view relpath) = 0;
  virtual int begin_file(std::string_view relpath, uint64_t size_hint) = 0;
  virtual int append(const void* buf, size_t len) = 0;
  virtual int end_file() = 0;
};

}  // namespace ukhttpd

#endif  // UKTLS_USR_SBIN_UKHTTPD_DOCROOT_H_
