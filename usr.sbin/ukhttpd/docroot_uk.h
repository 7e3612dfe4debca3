// The docroot of a ukhttpd running inside a uktls kernel: files in the
// kernel's tmpfs, opened with uk_open and read with uk_pread, so that
// DocFile::sendfile_fd() is a uk descriptor that uk_sendfile accepts. Bodies
// then leave as M_EXTPG mbufs that reference the tmpfs pages (DESIGN.md
// section 5) and are encrypted by KTLS, never copied through userland.
//
// Part of the uktls adapter (target :uk). tmpfs has a flat namespace in
// which directories exist only as prefixes of file paths and lib/libuk has
// no fstat, so the sink records what it wrote (paths, sizes, directories) in
// a UkTmpfsManifest that the docroot answers stat() and sizes from; file
// contents are read only through uk_open/uk_pread/uk_sendfile.
#ifndef UKTLS_USR_SBIN_UKHTTPD_DOCROOT_UK_H_
#define UKTLS_USR_SBIN_UKHTTPD_DOCROOT_UK_H_

#include <cstdint>
#include <map>
#include <memory>
#include <string>

#include "usr.sbin/ukhttpd/docroot.h"

struct uk_proc;

namespace ukhttpd {

// What the importer wrote: relpath -> size for files; directories map to
// UINT64_MAX. Filled by UkTmpfsDocSink, read-only once serving starts.
using UkTmpfsManifest = std::map<std::string, uint64_t>;

class UkTmpfsDocroot final : public Docroot {
 public:
  // Serves the tree under |root| (an absolute tmpfs path such as "/www") of
  // process |p|'s kernel. |p| must outlive the docroot.
  UkTmpfsDocroot(struct uk_proc* p, std::string root,
                 std::shared_ptr<const UkTmpfsManifest> manifest);
  ~UkTmpfsDocroot() override;

  int stat(std::string_view relpath, DocKind* kind) override;
  int open(std::string_view relpath, std::unique_ptr<DocFile>* out) override;

 private:
  struct uk_proc* const p_;
  const std::string root_;
  const std::shared_ptr<const UkTmpfsManifest> manifest_;
  const int64_t mtime_;  // Last-Modified of every file: when serving began
};

// Writes into the kernel's tmpfs with uk_open(O_CREAT)/uk_pwrite, streaming:
// the generator and ImportTree hand it 1 MiB at a time, so a 64 MiB file is
// never held twice.
class UkTmpfsDocSink final : public DocSink {
 public:
  UkTmpfsDocSink(struct uk_proc* p, std::string root,
                 std::shared_ptr<UkTmpfsManifest> manifest);
  ~UkTmpfsDocSink() override;

  int make_dir(std::string_view relpath) override;
  int begin_file(std::string_view relpath, uint64_t size_hint) override;
  int append(const void* buf, size_t len) override;
  int end_file() override;

 private:
  struct uk_proc* const p_;
  const std::string root_;
  const std::shared_ptr<UkTmpfsManifest> manifest_;
  int fd_ = -1;
  uint64_t off_ = 0;
  std::string cur_;
};

}  // namespace ukhttpd

#endif  // UKTLS_USR_SBIN_UKHTTPD_DOCROOT_UK_H_
