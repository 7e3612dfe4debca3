// A host directory as docroot (for ukhttpd_host and the tests), a DocSink
// that writes into a host directory, and ImportTree, which streams a host
// directory into any DocSink (the uktls adapter uses it for --docroot).
#ifndef UKTLS_USR_SBIN_UKHTTPD_DOCROOT_HOST_H_
#define UKTLS_USR_SBIN_UKHTTPD_DOCROOT_HOST_H_

#include <memory>
#include <string>

#include "usr.sbin/ukhttpd/docroot.h"

namespace ukhttpd {

// Lookups resolve beneath the root directory with openat2(RESOLVE_BENEATH |
// RESOLVE_NO_MAGICLINKS): symbolic links that stay inside the root are
// followed, ones that leave it fail with EXDEV. On kernels without openat2
// each component is opened with O_NOFOLLOW instead, so every symbolic link
// is refused (ELOOP).
class HostDocroot final : public Docroot {
 public:
  // Opens |dir|; 0 or an errno.
  static int Open(const std::string& dir, std::unique_ptr<HostDocroot>* out);
  ~HostDocroot() override;

  int stat(std::string_view relpath, DocKind* kind) override;
  int open(std::string_view relpath, std::unique_ptr<DocFile>* out) override;

 private:
  explicit HostDocroot(int dirfd) : dirfd_(dirfd) {}
  // An fd for |relpath| opened with |flags| beneath the root, or -errno.
  int OpenBeneath(std::string_view relpath, int flags);

  const int dirfd_;
};

class HostDocSink final : public DocSink {
 public:
  // Writes beneath |dir|, which is created if missing.
  explicit HostDocSink(std::string dir) : dir_(std::move(dir)) {}
  ~HostDocSink() override;

  int make_dir(std::string_view relpath) override;
  int begin_file(std::string_view relpath, uint64_t size_hint) override;
  int append(const void* buf, size_t len) override;
  int end_file() override;

 private:
  std::string dir_;
  int fd_ = -1;
};

// Copies the regular files and directories under |host_dir| into |sink| in
// 1 MiB chunks. Symbolic links and special files are skipped. 0 or an errno;
// |*what| names the path that failed.
int ImportTree(const std::string& host_dir, DocSink& sink, std::string* what);

}  // namespace ukhttpd

#endif  // UKTLS_USR_SBIN_UKHTTPD_DOCROOT_HOST_H_
