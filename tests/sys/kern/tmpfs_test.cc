// tmpfs and the descriptor system calls on files, through lib/libuk as a
// program sees them: open flags, errors, holes, truncation, page-pool
// exhaustion, read/write offsets, fcntl and poll.
#include <fcntl.h>
#include <poll.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "lib/libuk/uk.h"
#include "sys/kern/kern_descrip.h"
#include "sys/kern/kern_proc.h"
#include "sys/kern/kernel.h"
#include "sys/kern/tmpfs.h"
#include "sys/kern/vm_page.h"

namespace {

class TmpfsTest : public ::testing::Test {
 protected:
  void Boot(const char* tunables) {
    uk_boot_config cfg{};
    cfg.ncpus = 2;
    cfg.modules = "";
    cfg.tunables = tunables;
    k_ = uk_boot(&cfg);
    ASSERT_NE(k_, nullptr);
    p_ = uk_proc_create(k_, "tmpfs_test");
    ASSERT_NE(p_, nullptr);
  }
  void SetUp() override { Boot(nullptr); }
  void TearDown() override {
    if (k_ != nullptr) {
      EXPECT_EQ(uk_halt(k_), 0);
    }
  }
  std::string pread_all(int fd, size_t len, off_t off) {
    std::string s(len, '\0');
    ssize_t n = uk_pread(p_, fd, s.data(), len, off);
    if (n < 0) return "<error>";
    s.resize(n);
    return s;
  }
  uk_kernel* k_ = nullptr;
  uk_proc* p_ = nullptr;
};

TEST_F(TmpfsTest, CreateWriteReadBack) {
  int fd = uk_open(p_, "/www/index.html", O_CREAT | O_RDWR, 0644);
  ASSERT_GE(fd, 0);
  const char msg[] = "hello, world";
  EXPECT_EQ(uk_pwrite(p_, fd, msg, 12, 0), 12);
  EXPECT_EQ(pread_all(fd, 100, 0), "hello, world");
  EXPECT_EQ(pread_all(fd, 5, 7), "world");
  EXPECT_EQ(pread_all(fd, 5, 12), "");  // at EOF
  EXPECT_EQ(pread_all(fd, 5, 1000), "");
  EXPECT_EQ(uk_close(p_, fd), 0);
  // The same name reaches the same file, however it is spelled.
  fd = uk_open(p_, "//www/./x/../index.html", O_RDONLY, 0);
  ASSERT_GE(fd, 0);
  EXPECT_EQ(pread_all(fd, 100, 0), "hello, world");
  EXPECT_EQ(uk_close(p_, fd), 0);
  EXPECT_EQ(uk_close(p_, fd), -1);
  EXPECT_EQ(errno, EBADF);
}

TEST_F(TmpfsTest, OpenErrorsAreFreeBsds) {
  EXPECT_EQ(uk_open(p_, "/nope", O_RDONLY, 0), -1);
  EXPECT_EQ(errno, ENOENT);
  EXPECT_EQ(uk_open(p_, "", O_RDONLY, 0), -1);
  EXPECT_EQ(errno, ENOENT);
  EXPECT_EQ(uk_open(p_, nullptr, O_RDONLY, 0), -1);
  EXPECT_EQ(errno, EFAULT);
  EXPECT_EQ(uk_open(p_, "/f", O_CREAT | O_ACCMODE, 0644), -1);
  EXPECT_EQ(errno, EINVAL);

  int fd = uk_open(p_, "/d/f", O_CREAT | O_EXCL | O_WRONLY, 0644);
  ASSERT_GE(fd, 0);
  EXPECT_EQ(uk_open(p_, "/d/f", O_CREAT | O_EXCL | O_WRONLY, 0644), -1);
  EXPECT_EQ(errno, EEXIST);
  // "/d" exists as a directory: readable, not writable, not creatable.
  EXPECT_EQ(uk_open(p_, "/d", O_WRONLY, 0), -1);
  EXPECT_EQ(errno, EISDIR);
  EXPECT_EQ(uk_open(p_, "/d", O_CREAT | O_RDWR, 0644), -1);
  EXPECT_EQ(errno, EISDIR);
  EXPECT_EQ(uk_open(p_, "/d", O_CREAT | O_EXCL | O_RDWR, 0644), -1);
  EXPECT_EQ(errno, EEXIST);
  EXPECT_EQ(uk_open(p_, "/", O_RDWR, 0), -1);
  EXPECT_EQ(errno, EISDIR);
  int dfd = uk_open(p_, "/d", O_RDONLY, 0);
  ASSERT_GE(dfd, 0);
  char c;
  EXPECT_EQ(uk_read(p_, dfd, &c, 1), -1);
  EXPECT_EQ(errno, EISDIR);
  EXPECT_EQ(uk_close(p_, dfd), 0);
  // Through a regular file, or a file named as a directory.
  EXPECT_EQ(uk_open(p_, "/d/f/g", O_CREAT | O_RDWR, 0644), -1);
  EXPECT_EQ(errno, ENOTDIR);
  EXPECT_EQ(uk_open(p_, "/d/f/", O_RDONLY, 0), -1);
  EXPECT_EQ(errno, ENOTDIR);
  EXPECT_EQ(uk_open(p_, "/d/f", O_RDONLY | O_DIRECTORY, 0), -1);
  EXPECT_EQ(errno, ENOTDIR);
  EXPECT_EQ(uk_open(p_, "/newdir/", O_CREAT | O_RDWR, 0644), -1);
  EXPECT_EQ(errno, EISDIR);
  std::string longname = "/" + std::string(256, 'a');
  EXPECT_EQ(uk_open(p_, longname.c_str(), O_CREAT | O_RDWR, 0644), -1);
  EXPECT_EQ(errno, ENAMETOOLONG);
  EXPECT_EQ(uk_close(p_, fd), 0);
}

TEST_F(TmpfsTest, AccessModesAreEnforcedWithEbadf) {
  int fd = uk_open(p_, "/f", O_CREAT | O_WRONLY, 0644);
  ASSERT_GE(fd, 0);
  char buf[4];
  EXPECT_EQ(uk_write(p_, fd, "abcd", 4), 4);
  EXPECT_EQ(uk_read(p_, fd, buf, 4), -1);
  EXPECT_EQ(errno, EBADF);
  EXPECT_EQ(uk_pread(p_, fd, buf, 4, 0), -1);
  EXPECT_EQ(errno, EBADF);
  int rfd = uk_open(p_, "/f", O_RDONLY, 0);
  ASSERT_GE(rfd, 0);
  EXPECT_EQ(uk_write(p_, rfd, "x", 1), -1);
  EXPECT_EQ(errno, EBADF);
  EXPECT_EQ(uk_pwrite(p_, rfd, "x", 1, 0), -1);
  EXPECT_EQ(errno, EBADF);
  EXPECT_EQ(uk_ftruncate(p_, rfd, 0), -1);  // kern_ftruncate: not writable
  EXPECT_EQ(errno, EINVAL);
  EXPECT_EQ(uk_pread(p_, rfd, buf, 4, -1), -1);
  EXPECT_EQ(errno, EINVAL);
  EXPECT_EQ(uk_read(p_, 77, buf, 1), -1);
  EXPECT_EQ(errno, EBADF);
  EXPECT_EQ(uk_pread(p_, rfd, buf, 4, 0), 4);
  EXPECT_EQ(std::string(buf, 4), "abcd");
}

TEST_F(TmpfsTest, TruncAndAppend) {
  int fd = uk_open(p_, "/log", O_CREAT | O_RDWR, 0644);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(uk_write(p_, fd, "0123456789", 10), 10);
  int afd = uk_open(p_, "/log", O_WRONLY | O_APPEND, 0);
  ASSERT_GE(afd, 0);
  EXPECT_EQ(uk_write(p_, afd, "ab", 2), 2);
  // O_APPEND wins over pwrite's offset, as on FreeBSD.
  EXPECT_EQ(uk_pwrite(p_, afd, "cd", 2, 0), 2);
  EXPECT_EQ(pread_all(fd, 100, 0), "0123456789abcd");
  int tfd = uk_open(p_, "/log", O_RDWR | O_TRUNC, 0);
  ASSERT_GE(tfd, 0);
  EXPECT_EQ(pread_all(fd, 100, 0), "");
  EXPECT_EQ(uk_close(p_, tfd), 0);
  EXPECT_EQ(uk_close(p_, afd), 0);
  EXPECT_EQ(uk_close(p_, fd), 0);
}

TEST_F(TmpfsTest, ReadAndWriteAdvanceTheSharedOffset) {
  int fd = uk_open(p_, "/seq", O_CREAT | O_RDWR, 0644);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(uk_write(p_, fd, "abc", 3), 3);
  ASSERT_EQ(uk_write(p_, fd, "def", 3), 3);
  // pwrite/pread do not move it.
  ASSERT_EQ(uk_pwrite(p_, fd, "XY", 2, 0), 2);
  ASSERT_EQ(uk_write(p_, fd, "g", 1), 1);
  EXPECT_EQ(pread_all(fd, 100, 0), "XYcdefg");
  int rfd = uk_open(p_, "/seq", O_RDONLY, 0);
  char buf[4] = {};
  EXPECT_EQ(uk_read(p_, rfd, buf, 4), 4);
  EXPECT_EQ(std::string(buf, 4), "XYcd");
  EXPECT_EQ(uk_read(p_, rfd, buf, 4), 3);
  EXPECT_EQ(std::string(buf, 3), "efg");
  EXPECT_EQ(uk_read(p_, rfd, buf, 4), 0);  // EOF
  // A null buffer with a length is EFAULT.
  EXPECT_EQ(uk_pread(p_, rfd, nullptr, 4, 0), -1);
  EXPECT_EQ(errno, EFAULT);
}

TEST_F(TmpfsTest, HolesReadAsZeroAndTakeNoPages) {
  int fd = uk_open(p_, "/sparse", O_CREAT | O_RDWR, 0644);
  ASSERT_GE(fd, 0);
  off_t far = 10 * 4096 + 100;
  ASSERT_EQ(uk_pwrite(p_, fd, "end", 3, far), 3);
  std::string all = pread_all(fd, far + 3, 0);
  ASSERT_EQ(all.size(), static_cast<size_t>(far + 3));
  EXPECT_EQ(all.substr(0, far), std::string(far, '\0'));
  EXPECT_EQ(all.substr(far), "end");
  uk::RefPtr<uk::vnode> vp;
  ASSERT_EQ(p_->k->tmpfs->lookup("/sparse", &vp), 0);
  EXPECT_EQ(vp->resident(), 1u);
  // Growing with ftruncate makes a hole too.
  ASSERT_EQ(uk_ftruncate(p_, fd, 1 << 20), 0);
  EXPECT_EQ(vp->size(), 1 << 20);
  EXPECT_EQ(vp->resident(), 1u);
  EXPECT_EQ(pread_all(fd, 10, (1 << 20) - 10), std::string(10, '\0'));
}

TEST_F(TmpfsTest, ShrinkingZeroesWhatLaterGrowthReveals) {
  int fd = uk_open(p_, "/t", O_CREAT | O_RDWR, 0644);
  ASSERT_GE(fd, 0);
  std::string data(3 * 4096, 'x');
  ASSERT_EQ(uk_pwrite(p_, fd, data.data(), data.size(), 0), (ssize_t)data.size());
  ASSERT_EQ(uk_ftruncate(p_, fd, 100), 0);
  uk::RefPtr<uk::vnode> vp;
  ASSERT_EQ(p_->k->tmpfs->lookup("/t", &vp), 0);
  EXPECT_EQ(vp->resident(), 1u);  // pages past the end went back to the pool
  ASSERT_EQ(uk_ftruncate(p_, fd, 3 * 4096), 0);
  std::string back = pread_all(fd, 3 * 4096, 0);
  EXPECT_EQ(back.substr(0, 100), std::string(100, 'x'));
  EXPECT_EQ(back.substr(100), std::string(3 * 4096 - 100, '\0'));
  EXPECT_EQ(uk_ftruncate(p_, fd, -1), -1);
  EXPECT_EQ(errno, EINVAL);
}

TEST_F(TmpfsTest, SendfileGetsTheFilesOwnPagesByReference) {
  int fd = uk_open(p_, "/big", O_CREAT | O_RDWR, 0644);
  ASSERT_GE(fd, 0);
  std::string data(2 * 4096 + 10, 'q');
  data[4096] = 'Z';
  ASSERT_EQ(uk_pwrite(p_, fd, data.data(), data.size(), 0), (ssize_t)data.size());
  ASSERT_EQ(uk_ftruncate(p_, fd, 4 * 4096), 0);  // pages 3 is a hole
  uk::RefPtr<uk::file> fp;
  ASSERT_EQ(p_->fd.fget(fd, &fp), 0);
  uk::vnode* vp = fp->fo_vnode();
  ASSERT_NE(vp, nullptr);
  EXPECT_EQ(vp->size(), 4 * 4096);
  uk::vm_page* pg = nullptr;
  ASSERT_EQ(vp->getpage(1, &pg), 0);
  EXPECT_EQ(pg->ref_count.load(), 2u);  // the file's and ours
  EXPECT_EQ(uk::PHYS_TO_DMAP(pg)[0], 'Z');
  // Same page, not a copy: a write through the file shows in it.
  ASSERT_EQ(uk_pwrite(p_, fd, "W", 1, 4096 + 1), 1);
  EXPECT_EQ(uk::PHYS_TO_DMAP(pg)[1], 'W');
  uk::PagePool::release(pg);
  // A hole gets a zero page that joins the file.
  size_t before = vp->resident();
  ASSERT_EQ(vp->getpage(3, &pg), 0);
  EXPECT_EQ(vp->resident(), before + 1);
  EXPECT_EQ(std::string(reinterpret_cast<char*>(pg->data), 4096),
            std::string(4096, '\0'));
  uk::PagePool::release(pg);
  EXPECT_EQ(vp->getpage(4, &pg), EINVAL);  // past the end
  // A directory has no vnode.
  int dfd = uk_open(p_, "/", O_RDONLY, 0);
  uk::RefPtr<uk::file> dp;
  ASSERT_EQ(p_->fd.fget(dfd, &dp), 0);
  EXPECT_EQ(dp->fo_vnode(), nullptr);
  struct stat sb;
  ASSERT_EQ(fp->fo_stat(&sb), 0);
  EXPECT_TRUE(S_ISREG(sb.st_mode));
  EXPECT_EQ(sb.st_size, 4 * 4096);
  ASSERT_EQ(dp->fo_stat(&sb), 0);
  EXPECT_TRUE(S_ISDIR(sb.st_mode));
}

class TmpfsPoolTest : public TmpfsTest {
 protected:
  void SetUp() override { Boot("vm.pages_max=16"); }
};

TEST_F(TmpfsPoolTest, ExhaustionIsEnospcAndLosesNothing) {
  int fd = uk_open(p_, "/a", O_CREAT | O_RDWR, 0644);
  ASSERT_GE(fd, 0);
  // Fill the pool one page at a time, each page with its own byte.
  std::string page(4096, '\0');
  int pages = 0;
  for (;; pages++) {
    ASSERT_LT(pages, 17);
    memset(page.data(), 'a' + pages, page.size());
    ssize_t n = uk_pwrite(p_, fd, page.data(), page.size(), pages * 4096);
    if (n < 0) {
      EXPECT_EQ(errno, ENOSPC);
      break;
    }
    ASSERT_EQ(n, 4096);
  }
  ASSERT_GT(pages, 2);
  off_t size = pages * 4096;
  uk::RefPtr<uk::vnode> vp;
  ASSERT_EQ(p_->k->tmpfs->lookup("/a", &vp), 0);
  EXPECT_EQ(vp->size(), size);  // the failed write left the size alone
  // Everything written is intact.
  for (int i = 0; i < pages; i++)
    EXPECT_EQ(pread_all(fd, 4096, i * 4096), std::string(4096, 'a' + i)) << i;
  // A write that needs a new page fails whole; one into existing pages works.
  std::string two(4096 + 10, 'N');
  EXPECT_EQ(uk_pwrite(p_, fd, two.data(), two.size(), size - 5), -1);
  EXPECT_EQ(errno, ENOSPC);
  EXPECT_EQ(vp->size(), size);
  EXPECT_EQ(pread_all(fd, 5, size - 5), std::string(5, 'a' + pages - 1));
  EXPECT_EQ(uk_pwrite(p_, fd, "over", 4, 0), 4);
  // Another file cannot grow either; reading holes costs nothing.
  int bfd = uk_open(p_, "/b", O_CREAT | O_RDWR, 0644);
  ASSERT_GE(bfd, 0);
  EXPECT_EQ(uk_write(p_, bfd, "x", 1), -1);
  EXPECT_EQ(errno, ENOSPC);
  ASSERT_EQ(uk_ftruncate(p_, bfd, 8192), 0);
  EXPECT_EQ(pread_all(bfd, 8192, 0), std::string(8192, '\0'));
  // sendfile's page lookup on a hole: ENOMEM.
  uk::vm_page* pg = nullptr;
  uk::RefPtr<uk::file> bfp;
  ASSERT_EQ(p_->fd.fget(bfd, &bfp), 0);
  EXPECT_EQ(bfp->fo_vnode()->getpage(0, &pg), ENOMEM);
  // Freeing pages makes room again.
  ASSERT_EQ(uk_ftruncate(p_, fd, 4096), 0);
  EXPECT_EQ(uk_pwrite(p_, bfd, "fits", 4, 0), 4);
  EXPECT_EQ(pread_all(bfd, 4, 0), "fits");
  EXPECT_EQ(pread_all(fd, 4, 0), "over");
}

TEST_F(TmpfsTest, FcntlFlags) {
  int fd = uk_open(p_, "/f", O_CREAT | O_RDWR | O_APPEND, 0644);
  ASSERT_GE(fd, 0);
  EXPECT_EQ(uk_fcntl(p_, fd, F_GETFL, 0), O_RDWR | O_APPEND);
  EXPECT_EQ(uk_fcntl(p_, fd, F_SETFL, O_NONBLOCK | O_WRONLY), 0);
  // The access mode cannot change; O_APPEND was cleared, O_NONBLOCK set.
  EXPECT_EQ(uk_fcntl(p_, fd, F_GETFL, 0), O_RDWR | O_NONBLOCK);
  EXPECT_EQ(uk_fcntl(p_, fd, F_GETFD, 0), 0);
  EXPECT_EQ(uk_fcntl(p_, fd, F_SETFD, FD_CLOEXEC), 0);
  EXPECT_EQ(uk_fcntl(p_, fd, F_GETFD, 0), FD_CLOEXEC);
  int rfd = uk_open(p_, "/f", O_RDONLY, 0);
  EXPECT_EQ(uk_fcntl(p_, rfd, F_GETFL, 0), O_RDONLY);
  EXPECT_EQ(uk_fcntl(p_, rfd, F_GETFD, 0), 0);
  EXPECT_EQ(uk_fcntl(p_, 99, F_GETFL, 0), -1);
  EXPECT_EQ(errno, EBADF);
  EXPECT_EQ(uk_fcntl(p_, fd, 12345, 0), -1);
  EXPECT_EQ(errno, EINVAL);
  // A new descriptor in a reused slot starts without FD_CLOEXEC.
  ASSERT_EQ(uk_close(p_, fd), 0);
  int fd2 = uk_open(p_, "/f", O_RDONLY, 0);
  EXPECT_EQ(fd2, fd);
  EXPECT_EQ(uk_fcntl(p_, fd2, F_GETFD, 0), 0);
}

// A file whose readiness the test controls, standing in for a socket.
struct test_file : uk::file {
  test_file() : uk::file(uk::DTYPE_SOCKET) {}
  int fo_poll(int events) override { return ready.load() & events; }
  std::atomic<int> ready{0};
};

TEST_F(TmpfsTest, PollReportsFilesAndBadDescriptors) {
  int fd = uk_open(p_, "/f", O_CREAT | O_RDWR, 0644);
  ASSERT_GE(fd, 0);
  pollfd fds[3] = {{fd, POLLIN | POLLOUT, 0}, {-1, POLLIN, 0}, {42, POLLIN, 0}};
  EXPECT_EQ(uk_poll(p_, fds, 3, -1), 2);
  EXPECT_EQ(fds[0].revents, POLLIN | POLLOUT);
  EXPECT_EQ(fds[1].revents, 0);  // negative fds are ignored
  EXPECT_EQ(fds[2].revents, POLLNVAL);
  EXPECT_EQ(uk_poll(p_, nullptr, 1, 0), -1);
  EXPECT_EQ(errno, EFAULT);
  EXPECT_EQ(uk_poll(p_, fds, uk::filedesc::kMaxFiles + 1, 0), -1);
  EXPECT_EQ(errno, EINVAL);
  EXPECT_EQ(uk_poll(p_, fds, 1, -2), -1);
  EXPECT_EQ(errno, EINVAL);
  EXPECT_EQ(uk_poll(p_, nullptr, 0, 0), 0);
}

TEST_F(TmpfsTest, PollTimesOutAndWakesOnSelwakeup) {
  auto tf = uk::make_ref<test_file>();
  test_file* raw = tf.get();
  int fd = -1;
  ASSERT_EQ(p_->fd.falloc(std::move(tf), &fd), 0);
  pollfd pfd{fd, POLLIN, 0};
  EXPECT_EQ(uk_poll(p_, &pfd, 1, 0), 0);   // immediate
  EXPECT_EQ(uk_poll(p_, &pfd, 1, 20), 0);  // times out
  EXPECT_EQ(pfd.revents, 0);
  std::thread waker([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    raw->ready = POLLIN;
    p_->k->procs->sel.wakeup();
  });
  EXPECT_EQ(uk_poll(p_, &pfd, 1, -1), 1);  // infinite, until the wakeup
  EXPECT_EQ(pfd.revents, POLLIN);
  waker.join();
  // A descriptor closed while others wait is POLLNVAL.
  ASSERT_EQ(uk_close(p_, fd), 0);
  EXPECT_EQ(uk_poll(p_, &pfd, 1, 0), 1);
  EXPECT_EQ(pfd.revents, POLLNVAL);
}

TEST(TmpfsKernels, ManyKernelsAtOnceHaveSeparateFileSystems) {
  constexpr int kKernels = 6;
  std::vector<std::thread> threads;
  std::atomic<int> ok{0};
  for (int i = 0; i < kKernels; i++) {
    threads.emplace_back([i, &ok] {
      uk_boot_config cfg{};
      cfg.ncpus = 2;
      uk_kernel* k = uk_boot(&cfg);
      if (k == nullptr) return;
      uk_proc* p = uk_proc_create(k, "many");
      std::string mine = "kernel " + std::to_string(i);
      bool good = true;
      for (int round = 0; round < 50 && good; round++) {
        int fd = uk_open(p, "/same/name", O_CREAT | O_RDWR | O_TRUNC, 0644);
        good = fd >= 0 &&
               uk_pwrite(p, fd, mine.data(), mine.size(), round * 4096) ==
                   (ssize_t)mine.size();
        char buf[32] = {};
        good = good && uk_pread(p, fd, buf, sizeof(buf), round * 4096) ==
                           (ssize_t)mine.size();
        good = good && mine == std::string(buf, mine.size());
        good = good && uk_close(p, fd) == 0;
      }
      if (good) ok++;
      uk_halt(k);
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(ok.load(), kKernels);
}

}  // namespace
