// tmpfs: files of page-pool pages in a flat namespace. Mirrors FreeBSD's
// sys/fs/tmpfs/tmpfs_vnops.c (tmpfs_open, tmpfs_read, tmpfs_write),
// tmpfs_subr.c (tmpfs_reg_resize, tmpfs_truncate) and vfs_vnops.c (vn_read,
// vn_write, vn_poll, vn_statfile); see tmpfs.h.
#include "sys/kern/tmpfs.h"

#include <fcntl.h>
#include <poll.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <vector>

#include "sys/kern/kernel.h"
#include "sys/kern/subr_prf.h"

namespace uk {

UK_KERNEL_SLOT(Tmpfs)

namespace {

// FreeBSD's PATH_MAX and NAME_MAX.
constexpr size_t kPathMax = 1024;
constexpr size_t kNameMax = 255;

// What a hole reads as.
const uint8_t kZeroPage[PAGE_SIZE] = {};

}  // namespace

int tmpfs_normalize(std::string_view path, std::string* out, bool* dir_only) {
  if (path.empty()) return ENOENT;
  if (path.size() >= kPathMax) return ENAMETOOLONG;
  std::vector<std::string_view> parts;
  size_t i = 0;
  while (i < path.size()) {
    size_t slash = path.find('/', i);
    if (slash == std::string_view::npos) slash = path.size();
    std::string_view c = path.substr(i, slash - i);
    i = slash + 1;
    if (c.empty() || c == ".") continue;
    if (c.size() > kNameMax) return ENAMETOOLONG;
    if (c == "..") {
      if (!parts.empty()) parts.pop_back();
      continue;
    }
    parts.push_back(c);
  }
  out->clear();
  for (std::string_view c : parts) {
    out->push_back('/');
    out->append(c);
  }
  if (out->empty()) out->assign(1, '/');  // (not = "/": GCC 12 -Wrestrict)
  *dir_only = path.back() == '/' && *out != "/";
  return 0;
}

// vnode

vnode::~vnode() {
  MutexLock l(&mu);
  for (auto& [idx, pg] : pages_) PagePool::release(pg);
  pages_.clear();
}

off_t vnode::size() {
  MutexLock l(&mu);
  return size_;
}

size_t vnode::resident() {
  MutexLock l(&mu);
  return pages_.size();
}

int vnode::read_locked(uio& u, off_t off) {
  if (off < 0) return EINVAL;
  while (u.uio_resid > 0 && off < size_) {
    size_t idx = static_cast<size_t>(off) >> PAGE_SHIFT;
    size_t pgoff = static_cast<size_t>(off) & PAGE_MASK;
    size_t n = std::min<size_t>({PAGE_SIZE - pgoff,
                                 static_cast<size_t>(size_ - off),
                                 static_cast<size_t>(u.uio_resid)});
    auto it = pages_.find(idx);
    const uint8_t* src = it == pages_.end() ? kZeroPage : it->second->data;
    ssize_t before = u.uio_resid;
    if (int e = uiomove(const_cast<uint8_t*>(src) + pgoff, n, &u)) return e;
    if (u.uio_resid == before) break;  // the uio has no room left
    off += static_cast<off_t>(before - u.uio_resid);
  }
  return 0;
}

int vnode::write_locked(uio& u, off_t off, bool append, off_t* start) {
  if (append) off = size_;
  *start = off;
  if (off < 0) return EINVAL;
  size_t len = static_cast<size_t>(u.uio_resid);
  if (len == 0) return 0;
  if (off > kTmpfsMaxFileSize ||
      len > static_cast<size_t>(kTmpfsMaxFileSize - off))
    return EFBIG;
  size_t first = static_cast<size_t>(off) >> PAGE_SHIFT;
  size_t last = (static_cast<size_t>(off) + len - 1) >> PAGE_SHIFT;

  // Every page the write needs, before any byte moves: a write that cannot
  // complete leaves the file as it was.
  std::vector<size_t> missing;
  for (size_t idx = first; idx <= last; idx++)
    if (pages_.find(idx) == pages_.end()) missing.push_back(idx);
  if (!missing.empty()) {
    std::vector<vm_page*> fresh(missing.size());
    if (pool_ == nullptr || !pool_->alloc_n(fresh.size(), fresh.data()))
      return ENOSPC;
    size_t end = static_cast<size_t>(off) + len;
    for (size_t j = 0; j < missing.size(); j++) {
      size_t idx = missing[j];
      size_t pstart = idx << PAGE_SHIFT;
      // Only bytes the write will not cover need zeroing: the invariant is
      // that resident bytes past EOF are zero.
      bool whole = pstart >= static_cast<size_t>(off) && pstart + PAGE_SIZE <= end;
      if (!whole) memset(fresh[j]->data, 0, PAGE_SIZE);
      pages_.emplace(idx, fresh[j]);
    }
  }

  int error = 0;
  off_t pos = off;
  while (u.uio_resid > 0) {
    size_t idx = static_cast<size_t>(pos) >> PAGE_SHIFT;
    size_t pgoff = static_cast<size_t>(pos) & PAGE_MASK;
    size_t n = std::min<size_t>(PAGE_SIZE - pgoff, static_cast<size_t>(u.uio_resid));
    ssize_t before = u.uio_resid;
    error = uiomove(pages_[idx]->data + pgoff, n, &u);
    pos += static_cast<off_t>(before - u.uio_resid);
    if (error != 0 || u.uio_resid == before) break;
  }
  if (pos > size_) size_ = pos;
  return error;
}

int vnode::truncate(off_t length) {
  if (length < 0) return EINVAL;
  if (length > kTmpfsMaxFileSize) return EFBIG;
  std::vector<vm_page*> freed;
  {
    MutexLock l(&mu);
    if (length < size_) {
      size_t keep = round_page(static_cast<size_t>(length)) >> PAGE_SHIFT;
      for (auto it = pages_.lower_bound(keep); it != pages_.end();) {
        freed.push_back(it->second);
        it = pages_.erase(it);
      }
      size_t tail = static_cast<size_t>(length) & PAGE_MASK;
      if (tail != 0) {
        auto it = pages_.find(static_cast<size_t>(length) >> PAGE_SHIFT);
        if (it != pages_.end())
          memset(it->second->data + tail, 0, PAGE_SIZE - tail);
      }
    }
    size_ = length;
  }
  for (vm_page* pg : freed) PagePool::release(pg);
  return 0;
}

int vnode::getpage(size_t pindex, vm_page** out) {
  MutexLock l(&mu);
  if (pindex > (static_cast<size_t>(kTmpfsMaxFileSize) >> PAGE_SHIFT) ||
      static_cast<off_t>(pindex << PAGE_SHIFT) >= size_)
    return EINVAL;
  auto it = pages_.find(pindex);
  if (it == pages_.end()) {
    vm_page* pg = pool_ != nullptr ? pool_->alloc(true) : nullptr;
    if (pg == nullptr) return ENOMEM;
    it = pages_.emplace(pindex, pg).first;
  }
  PagePool::hold(it->second);
  *out = it->second;
  return 0;
}

int vnode::getpages(size_t pindex, int n, vm_page** out) {
  MutexLock l(&mu);
  if (n <= 0) return 0;
  size_t last = pindex + static_cast<size_t>(n) - 1;
  if (last > (static_cast<size_t>(kTmpfsMaxFileSize) >> PAGE_SHIFT) ||
      static_cast<off_t>(last << PAGE_SHIFT) >= size_)
    return EINVAL;
  auto it = pages_.lower_bound(pindex);
  for (int i = 0; i < n; i++) {
    if (it == pages_.end() || it->first != pindex + i) {
      vm_page* pg = pool_ != nullptr ? pool_->alloc(true) : nullptr;
      if (pg == nullptr) {
        while (i > 0) PagePool::release(out[--i]);
        return ENOMEM;
      }
      it = pages_.emplace_hint(it, pindex + i, pg);
    }
    PagePool::hold(it->second);
    out[i] = it->second;
    ++it;
  }
  return 0;
}

// vn_file

vn_file::vn_file(RefPtr<vnode> vp, int fflags)
    : file(DTYPE_VNODE), vp_(std::move(vp)) {
  f_flag.store(fflags);
}

int vn_file::fo_read(uio& u, int flags) {
  if (!vp_) return EISDIR;
  // The vnode lock also serialises the shared offset, as foffset_lock().
  MutexLock l(&vp_->mu);
  off_t off = (flags & FOF_OFFSET) ? u.uio_offset : f_offset.load();
  ssize_t before = u.uio_resid;
  int error = vp_->read_locked(u, off);
  if (!(flags & FOF_OFFSET)) f_offset.store(off + (before - u.uio_resid));
  return error;
}

int vn_file::fo_write(uio& u, int flags) {
  if (!vp_) return EISDIR;
  MutexLock l(&vp_->mu);
  off_t off = (flags & FOF_OFFSET) ? u.uio_offset : f_offset.load();
  // O_APPEND wins even over pwrite's offset, as FreeBSD's IO_APPEND.
  bool append = (f_flag.load() & O_APPEND) != 0;
  ssize_t before = u.uio_resid;
  off_t start = off;
  int error = vp_->write_locked(u, off, append, &start);
  if (!(flags & FOF_OFFSET)) f_offset.store(start + (before - u.uio_resid));
  return error;
}

int vn_file::fo_poll(int events) {
  // Regular files and directories are always ready (vop_stdpoll).
  return events & (POLLIN | POLLOUT | POLLRDNORM | POLLWRNORM);
}

int vn_file::fo_truncate(off_t length) {
  if (!vp_) return EINVAL;
  return vp_->truncate(length);
}

int vn_file::fo_stat(struct stat* sb) {
  memset(sb, 0, sizeof(*sb));
  sb->st_nlink = 1;
  sb->st_blksize = PAGE_SIZE;
  if (!vp_) {
    sb->st_mode = S_IFDIR | 0755;
    return 0;
  }
  sb->st_mode = S_IFREG | 0644;
  sb->st_size = vp_->size();
  sb->st_blocks = static_cast<blkcnt_t>(vp_->resident() * (PAGE_SIZE / 512));
  return 0;
}

// Tmpfs

Tmpfs::~Tmpfs() = default;

bool Tmpfs::is_dir_locked(const std::string& path) {
  if (path == "/") return true;
  std::string prefix = path + "/";
  auto it = files_.lower_bound(prefix);
  return it != files_.end() && it->first.compare(0, prefix.size(), prefix) == 0;
}

int Tmpfs::check_parents_locked(const std::string& path) {
  for (size_t slash = path.find('/', 1); slash != std::string::npos;
       slash = path.find('/', slash + 1)) {
    if (files_.find(std::string_view(path).substr(0, slash)) != files_.end())
      return ENOTDIR;
  }
  return 0;
}

int Tmpfs::open(std::string_view path, int flags, int mode, RefPtr<file>* out) {
  (void)mode;  // no permissions: every process is root
  int acc = flags & O_ACCMODE;
  if (acc == O_ACCMODE) return EINVAL;
  std::string np;
  bool dir_only = false;
  if (int e = tmpfs_normalize(path, &np, &dir_only)) return e;
  // FreeBSD's FMASK: what of the open flags a file remembers.
  int fflags = FFLAGS(flags) & (FREAD | FWRITE | O_APPEND | O_NONBLOCK |
                                O_ASYNC | O_SYNC | O_DSYNC | O_DIRECT);
  RefPtr<vnode> vp;
  {
    MutexLock l(&mu_);
    if (int e = check_parents_locked(np)) return e;
    if (is_dir_locked(np)) {
      if ((flags & (O_CREAT | O_EXCL)) == (O_CREAT | O_EXCL)) return EEXIST;
      if ((flags & (O_CREAT | O_TRUNC)) != 0 || acc != O_RDONLY) return EISDIR;
      *out = make_ref<vn_file>(nullptr, fflags);
      return 0;
    }
    auto it = files_.find(np);
    if (it != files_.end()) {
      if ((flags & (O_CREAT | O_EXCL)) == (O_CREAT | O_EXCL)) return EEXIST;
      if (dir_only || (flags & O_DIRECTORY)) return ENOTDIR;
      vp = it->second;
    } else {
      if (!(flags & O_CREAT)) return ENOENT;
      if (dir_only) return EISDIR;  // "newname/" can only be a directory
      vp = make_ref<vnode>(pool_);
      files_.emplace(np, vp);
    }
  }
  if (flags & O_TRUNC) {
    if (int e = vp->truncate(0)) return e;
  }
  *out = make_ref<vn_file>(std::move(vp), fflags);
  return 0;
}

int Tmpfs::lookup(std::string_view path, RefPtr<vnode>* out) {
  std::string np;
  bool dir_only = false;
  if (int e = tmpfs_normalize(path, &np, &dir_only)) return e;
  MutexLock l(&mu_);
  auto it = files_.find(np);
  if (it == files_.end()) return is_dir_locked(np) ? EISDIR : ENOENT;
  *out = it->second;
  return 0;
}

size_t Tmpfs::nfiles() {
  MutexLock l(&mu_);
  return files_.size();
}

static int tmpfs_sysinit(kernel& k) {
  k.tmpfs.reset(new Tmpfs(k.vm.get()));
  kprintf(k, "tmpfs: mounted on / (files of page-pool pages)\n");
  return 0;
}

static void tmpfs_sysuninit(kernel& k) { k.tmpfs.reset(); }

UK_SYSINIT(tmpfs, SI_SUB_VFS, SI_ORDER_MIDDLE, tmpfs_sysinit, tmpfs_sysuninit);

}  // namespace uk
