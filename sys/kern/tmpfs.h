// tmpfs(5): the memory file system mounted at "/". Mirrors FreeBSD's
// sys/fs/tmpfs (tmpfs_vnops.c, tmpfs_subr.c) closely enough for sendfile:
// regular files are made of page-pool pages (vm_page), so sendfile can hand
// the very pages to M_EXTPG mbufs by reference.
//
// Namespace: flat. Every file is named by its normalised absolute path
// ("/www/index.html"); directories exist implicitly as the prefixes of file
// paths, plus "/". Opening a directory read-only works (reads give EISDIR);
// a path through a regular file gives ENOTDIR.
//
// Files: sparse. Holes (never written, or beyond an ftruncate extension) read
// as zeros and take no pages. A write allocates every page it needs before it
// copies a byte: when the pool cannot supply them it fails with ENOSPC and
// the file is unchanged (FreeBSD's tmpfs_reg_resize checks space first, too).
//
// Locking: Tmpfs::mu_ guards the name table; vnode::mu guards one file's
// size and pages. Lock order: Tmpfs::mu_ -> vnode::mu -> PagePool::mu_.
#ifndef UKTLS_SYS_KERN_TMPFS_H_
#define UKTLS_SYS_KERN_TMPFS_H_

#include <sys/types.h>

#include <map>
#include <string>
#include <string_view>

#include "absl/container/btree_map.h"
#include "sys/kern/kern_descrip.h"
#include "sys/kern/vm_page.h"
#include "sys/sys/lock.h"
#include "sys/sys/refcount.h"
#include "sys/sys/uio.h"

namespace uk {

struct kernel;

// Largest file size (FreeBSD's tmpfs caps at its mount size; this cap only
// keeps offsets and page indexes well inside off_t).
constexpr off_t kTmpfsMaxFileSize = off_t{1} << 46;

// A regular file (FreeBSD's vnode + tmpfs_node, merged). Refcounted: the name
// table holds one reference, and every open file and sendfile in flight
// another.
struct vnode final : RefCounted<vnode> {
  explicit vnode(PagePool* pool) : pool_(pool) {}
  ~vnode();

  // Bytes in the file.
  off_t size() ABSL_LOCKS_EXCLUDED(mu);

  // Copies out up to u.uio_resid bytes from offset |off| (stops at EOF).
  // Returns 0 or an errno (EFAULT for a bad buffer).
  int read_locked(uio& u, off_t off) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu);
  // Writes u.uio_resid bytes at |off|, or at the end if |append|; *start
  // gets where the write went. ENOSPC: nothing written. EFBIG beyond
  // kTmpfsMaxFileSize.
  int write_locked(uio& u, off_t off, bool append, off_t* start)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu);
  // Sets the size. Shrinking frees whole pages past the end and zeroes the
  // tail of the last page; growing makes a hole. EINVAL for a negative
  // length, EFBIG beyond the cap.
  int truncate(off_t length) ABSL_LOCKS_EXCLUDED(mu);

  // For sendfile (FreeBSD's vm_page_grab on the file's object): returns in
  // *out page |pindex| of the file with one reference held for the caller
  // (release with PagePool::release), without copying. A hole gets a zero
  // page, which becomes part of the file. EINVAL if the page lies wholly past
  // the end of the file, ENOMEM if the pool is exhausted.
  int getpage(size_t pindex, vm_page** out) ABSL_LOCKS_EXCLUDED(mu);
  // getpage for the n pages from |pindex| under one lock and one lookup
  // (sendfile takes a record's pages at once). On error no reference is
  // left held.
  int getpages(size_t pindex, int n, vm_page** out) ABSL_LOCKS_EXCLUDED(mu);
  // Pages the file holds now (holes excluded).
  size_t resident() ABSL_LOCKS_EXCLUDED(mu);

  Mutex mu;

 private:
  PagePool* const pool_;
  off_t size_ ABSL_GUARDED_BY(mu) = 0;
  // index -> page. A B-tree (FreeBSD keeps a radix trie): a lookup touches
  // a few wide nodes, and a record's pages sit side by side in one.
  absl::btree_map<size_t, vm_page*> pages_ ABSL_GUARDED_BY(mu);
};

// An open regular file or directory (FreeBSD's vnops via vn_read/vn_write).
class vn_file final : public file {
 public:
  // |vp| null: a directory.
  vn_file(RefPtr<vnode> vp, int fflags);

  int fo_read(uio& u, int flags) override;
  int fo_write(uio& u, int flags) override;
  int fo_poll(int events) override;
  int fo_truncate(off_t length) override;
  int fo_stat(struct stat* sb) override;
  vnode* fo_vnode() override { return vp_.get(); }

 private:
  const RefPtr<vnode> vp_;
};

class Tmpfs final {
 public:
  // |pool| may be null only in a kernel without a page pool: every
  // allocation then fails (ENOSPC/ENOMEM).
  explicit Tmpfs(PagePool* pool) : pool_(pool) {}
  ~Tmpfs();
  Tmpfs(const Tmpfs&) = delete;
  Tmpfs& operator=(const Tmpfs&) = delete;

  // open(2) on the file system: |flags| are the host's O_* flags. On success
  // *out is a new open file (f_flag = FFLAGS(flags)). Errors as FreeBSD:
  // ENOENT (no such file, or empty path), EEXIST (O_CREAT|O_EXCL on an
  // existing name), EISDIR (a directory opened for writing, or created),
  // ENOTDIR (a path through a file, or O_DIRECTORY on a file), EINVAL (bad
  // access mode), ENAMETOOLONG.
  int open(std::string_view path, int flags, int mode, RefPtr<file>* out)
      ABSL_LOCKS_EXCLUDED(mu_);
  // The file's vnode (a new reference) or ENOENT/EISDIR.
  int lookup(std::string_view path, RefPtr<vnode>* out) ABSL_LOCKS_EXCLUDED(mu_);
  size_t nfiles() ABSL_LOCKS_EXCLUDED(mu_);

 private:
  bool is_dir_locked(const std::string& path) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  int check_parents_locked(const std::string& path)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  PagePool* const pool_;
  Mutex mu_;
  std::map<std::string, RefPtr<vnode>, std::less<>> files_ ABSL_GUARDED_BY(mu_);
};

// Normalises a path: relative paths are taken from "/", "." and empty
// components go, ".." goes up (not above "/"). Sets *dir_only when the path
// ends in '/'. ENOENT for "", ENAMETOOLONG over PATH_MAX or NAME_MAX.
int tmpfs_normalize(std::string_view path, std::string* out, bool* dir_only);

}  // namespace uk

#endif  // UKTLS_SYS_KERN_TMPFS_H_
