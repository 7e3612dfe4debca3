#include "usr.sbin/ukhttpd/docroot_uk.h"

#include <errno.h>
#include <fcntl.h>
#include <time.h>

#include "lib/libuk/uk.h"

namespace ukhttpd {
namespace {

constexpr uint64_t kDir = UINT64_MAX;

class UkFile final : public DocFile {
 public:
  UkFile(struct uk_proc* p, int fd, uint64_t size, int64_t mtime)
      : p_(p), fd_(fd), size_(size), mtime_(mtime) {}
  ~UkFile() override { uk_close(p_, fd_); }
  uint64_t size() const override { return size_; }
  int64_t mtime() const override { return mtime_; }
  ssize_t pread(void* buf, size_t len, uint64_t off) override {
    return uk_pread(p_, fd_, buf, len, static_cast<off_t>(off));
  }
  int sendfile_fd() const override { return fd_; }

 private:
  struct uk_proc* const p_;
  const int fd_;
  const uint64_t size_;
  const int64_t mtime_;
};

std::string Join(const std::string& root, std::string_view rel) {
  if (rel.empty()) return root;
  return root + "/" + std::string(rel);
}

// Marks every proper prefix directory of |rel| ("a/b/c" -> "", "a", "a/b").
void AddParents(UkTmpfsManifest& m, std::string_view rel) {
  m[""] = kDir;
  for (size_t i = rel.find('/'); i != std::string_view::npos; i = rel.find('/', i + 1)) {
    m[std::string(rel.substr(0, i))] = kDir;
  }
}

}  // namespace

UkTmpfsDocroot::UkTmpfsDocroot(struct uk_proc* p, std::string root,
                               std::shared_ptr<const UkTmpfsManifest> manifest)
    : p_(p), root_(std::move(root)), manifest_(std::move(manifest)), mtime_(::time(nullptr)) {}

UkTmpfsDocroot::~UkTmpfsDocroot() = default;

int UkTmpfsDocroot::stat(std::string_view relpath, DocKind* kind) {
  auto it = manifest_->find(std::string(relpath));
  if (it == manifest_->end()) {
    if (relpath.empty()) {  // an empty docroot still has its root
      *kind = DocKind::kDirectory;
      return 0;
    }
    return ENOENT;
  }
  *kind = it->second == kDir ? DocKind::kDirectory : DocKind::kFile;
  return 0;
}

int UkTmpfsDocroot::open(std::string_view relpath, std::unique_ptr<DocFile>* out) {
  auto it = manifest_->find(std::string(relpath));
  if (it == manifest_->end()) return ENOENT;
  if (it->second == kDir) return EISDIR;
  std::string path = Join(root_, relpath);
  int fd = uk_open(p_, path.c_str(), O_RDONLY, 0);
  if (fd < 0) return errno;
  *out = std::make_unique<UkFile>(p_, fd, it->second, mtime_);
  return 0;
}

UkTmpfsDocSink::UkTmpfsDocSink(struct uk_proc* p, std::string root,
                               std::shared_ptr<UkTmpfsManifest> manifest)
    : p_(p), root_(std::move(root)), manifest_(std::move(manifest)) {
  (*manifest_)[""] = kDir;
}

UkTmpfsDocSink::~UkTmpfsDocSink() {
  if (fd_ >= 0) uk_close(p_, fd_);
}

int UkTmpfsDocSink::make_dir(std::string_view relpath) {
  AddParents(*manifest_, relpath);
  (*manifest_)[std::string(relpath)] = kDir;
  return 0;
}

int UkTmpfsDocSink::begin_file(std::string_view relpath, uint64_t size_hint) {
  (void)size_hint;
  if (fd_ >= 0) return EBUSY;
  std::string path = Join(root_, relpath);
  fd_ = uk_open(p_, path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd_ < 0) return errno;
  cur_ = std::string(relpath);
  off_ = 0;
  return 0;
}

int UkTmpfsDocSink::append(const void* buf, size_t len) {
  if (fd_ < 0) return EBADF;
  const char* p = static_cast<const char*>(buf);
  while (len > 0) {
    ssize_t n = uk_pwrite(p_, fd_, p, len, static_cast<off_t>(off_));
    if (n < 0) {
      if (errno == EINTR) continue;
      return errno;
    }
    if (n == 0) return EIO;
    p += n;
    len -= static_cast<size_t>(n);
    off_ += static_cast<uint64_t>(n);
  }
  return 0;
}

int UkTmpfsDocSink::end_file() {
  if (fd_ < 0) return EBADF;
  int rc = uk_close(p_, fd_);
  int err = rc == 0 ? 0 : errno;
  fd_ = -1;
  AddParents(*manifest_, cur_);
  (*manifest_)[cur_] = off_;
  return err;
}

}  // namespace ukhttpd
