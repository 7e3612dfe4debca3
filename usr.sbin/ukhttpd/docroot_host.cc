#include "usr.sbin/ukhttpd/docroot_host.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <vector>

namespace ukhttpd {
namespace {

class HostFile final : public DocFile {
 public:
  HostFile(int fd, uint64_t size, int64_t mtime) : fd_(fd), size_(size), mtime_(mtime) {}
  ~HostFile() override { ::close(fd_); }
  uint64_t size() const override { return size_; }
  int64_t mtime() const override { return mtime_; }
  ssize_t pread(void* buf, size_t len, uint64_t off) override {
    ssize_t n;
    do {
      n = ::pread(fd_, buf, len, static_cast<off_t>(off));
    } while (n < 0 && errno == EINTR);
    return n;
  }
  int sendfile_fd() const override { return fd_; }

 private:
  const int fd_;
  const uint64_t size_;
  const int64_t mtime_;
};

int WriteAll(int fd, const void* buf, size_t len) {
  const char* p = static_cast<const char*>(buf);
  while (len > 0) {
    ssize_t n = ::write(fd, p, len);
    if (n < 0) {
      if (errno == EINTR) continue;
      return errno;
    }
    p += n;
    len -= static_cast<size_t>(n);
  }
  return 0;
}

int ImportDir(const std::string& host_dir, const std::string& rel, DocSink& sink,
              std::string* what) {
  DIR* d = ::opendir(host_dir.c_str());
  if (d == nullptr) {
    *what = host_dir;
    return errno;
  }
  std::vector<std::string> names;
  while (struct dirent* e = ::readdir(d)) {
    std::string n = e->d_name;
    if (n != "." && n != "..") names.push_back(n);
  }
  ::closedir(d);
  std::sort(names.begin(), names.end());
  std::vector<char> buf(1 << 20);
  for (const std::string& n : names) {
    std::string hpath = host_dir + "/" + n;
    std::string rpath = rel.empty() ? n : rel + "/" + n;
    struct stat st;
    if (::lstat(hpath.c_str(), &st) != 0) {
      *what = hpath;
      return errno;
    }
    if (S_ISDIR(st.st_mode)) {
      if (int err = sink.make_dir(rpath)) {
        *what = rpath;
        return err;
      }
      if (int err = ImportDir(hpath, rpath, sink, what)) return err;
      continue;
    }
    if (!S_ISREG(st.st_mode)) continue;
    int fd = ::open(hpath.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) {
      *what = hpath;
      return errno;
    }
    int err = sink.begin_file(rpath, static_cast<uint64_t>(st.st_size));
    while (err == 0) {
      ssize_t n = ::read(fd, buf.data(), buf.size());
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) {
        err = errno;
        break;
      }
      if (n == 0) break;
      err = sink.append(buf.data(), static_cast<size_t>(n));
    }
    ::close(fd);
    if (err == 0) err = sink.end_file();
    if (err) {
      *what = rpath;
      return err;
    }
  }
  return 0;
}

}  // namespace

int HostDocroot::Open(const std::string& dir, std::unique_ptr<HostDocroot>* out) {
  int fd = ::open(dir.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return errno;
  out->reset(new HostDocroot(fd));
  return 0;
}

HostDocroot::~HostDocroot() { ::close(dirfd_); }

int HostDocroot::OpenBeneath(std::string_view relpath, int flags) {
  std::string path = relpath.empty() ? "." : std::string(relpath);
  struct open_how how = {};
  how.flags = static_cast<uint64_t>(flags | O_CLOEXEC);
  how.resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS;
  long fd = ::syscall(SYS_openat2, dirfd_, path.c_str(), &how, sizeof(how));
  if (fd >= 0) return static_cast<int>(fd);
  if (errno != ENOSYS && errno != EPERM) return -errno;

  // No openat2 (or a seccomp filter refusing it): walk the components with
  // O_NOFOLLOW. relpath is normalised, so no component is "." or "..".
  int cur = ::openat(dirfd_, ".", O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (cur < 0) return -errno;
  std::string_view rest = relpath;
  while (!rest.empty()) {
    size_t slash = rest.find('/');
    std::string comp(rest.substr(0, slash));
    bool last = slash == std::string_view::npos;
    int f = last ? (flags | O_NOFOLLOW | O_CLOEXEC) : (O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    int next = ::openat(cur, comp.c_str(), f);
    int err = errno;
    ::close(cur);
    if (next < 0) return -(err == ENOTDIR && !last ? ENOENT : err);
    cur = next;
    if (last) return cur;
    rest.remove_prefix(slash + 1);
  }
  // The root itself.
  int root = ::openat(cur, ".", flags | O_CLOEXEC);
  int err = errno;
  ::close(cur);
  return root >= 0 ? root : -err;
}

int HostDocroot::stat(std::string_view relpath, DocKind* kind) {
  int fd = OpenBeneath(relpath, O_PATH);
  if (fd < 0) return -fd;
  struct stat st;
  int rc = ::fstat(fd, &st);
  int err = errno;
  ::close(fd);
  if (rc != 0) return err;
  if (S_ISDIR(st.st_mode)) {
    *kind = DocKind::kDirectory;
  } else if (S_ISREG(st.st_mode)) {
    *kind = DocKind::kFile;
  } else {
    return EACCES;  // devices, sockets, fifos are never served
  }
  return 0;
}

int HostDocroot::open(std::string_view relpath, std::unique_ptr<DocFile>* out) {
  // O_PATH first, so that opening a fifo never blocks and a device is never
  // opened for reading.
  DocKind kind;
  if (int err = stat(relpath, &kind)) return err;
  if (kind == DocKind::kDirectory) return EISDIR;
  int fd = OpenBeneath(relpath, O_RDONLY | O_NONBLOCK);
  if (fd < 0) return -fd;
  struct stat st;
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    return EACCES;
  }
  int fl = ::fcntl(fd, F_GETFL);
  if (fl >= 0) ::fcntl(fd, F_SETFL, fl & ~O_NONBLOCK);
  *out = std::make_unique<HostFile>(fd, static_cast<uint64_t>(st.st_size),
                                    static_cast<int64_t>(st.st_mtim.tv_sec));
  return 0;
}

HostDocSink::~HostDocSink() {
  if (fd_ >= 0) ::close(fd_);
}

int HostDocSink::make_dir(std::string_view relpath) {
  if (::mkdir(dir_.c_str(), 0755) != 0 && errno != EEXIST) return errno;
  std::string p = dir_ + "/" + std::string(relpath);
  if (::mkdir(p.c_str(), 0755) != 0 && errno != EEXIST) return errno;
  return 0;
}

int HostDocSink::begin_file(std::string_view relpath, uint64_t size_hint) {
  (void)size_hint;
  if (fd_ >= 0) return EBUSY;
  if (::mkdir(dir_.c_str(), 0755) != 0 && errno != EEXIST) return errno;
  std::string p = dir_ + "/" + std::string(relpath);
  fd_ = ::open(p.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0644);
  return fd_ < 0 ? errno : 0;
}

int HostDocSink::append(const void* buf, size_t len) {
  if (fd_ < 0) return EBADF;
  return WriteAll(fd_, buf, len);
}

int HostDocSink::end_file() {
  if (fd_ < 0) return EBADF;
  int rc = ::close(fd_);
  fd_ = -1;
  return rc == 0 ? 0 : errno;
}

int ImportTree(const std::string& host_dir, DocSink& sink, std::string* what) {
  return ImportDir(host_dir, "", sink, what);
}

}  // namespace ukhttpd
