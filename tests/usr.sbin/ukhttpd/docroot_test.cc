// Host docroot (the second wall against traversal: symbolic links), the
// generated default docroot, and ImportTree.
#include <errno.h>
#include <openssl/evp.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cstring>
#include <set>

#include "tests/usr.sbin/ukhttpd/test_dir.h"
#include "usr.sbin/ukhttpd/docroot_gen.h"
#include "usr.sbin/ukhttpd/docroot_host.h"

namespace ukhttpd {
namespace {

using ukhttpd_test::MakeTestDir;
using ukhttpd_test::ReadFile;
using ukhttpd_test::WriteFile;

std::string Sha256Hex(const std::string& data) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  EVP_Digest(data.data(), data.size(), md, &n, EVP_sha256(), nullptr);
  std::string out;
  char b[3];
  for (unsigned i = 0; i < n; ++i) {
    std::snprintf(b, sizeof(b), "%02x", md[i]);
    out += b;
  }
  return out;
}

class HostDocrootTest : public ::testing::Test {
 protected:
  void SetUp() override {
    base_ = MakeTestDir("docroot");
    root_dir_ = base_ + "/root";
    ASSERT_EQ(::mkdir(root_dir_.c_str(), 0755), 0);
    ASSERT_EQ(::mkdir((root_dir_ + "/sub").c_str(), 0755), 0);
    WriteFile(base_ + "/secret.txt", "SECRET");
    WriteFile(root_dir_ + "/hello.txt", "hello");
    WriteFile(root_dir_ + "/sub/inner.txt", "inner");
    ASSERT_EQ(::symlink("../secret.txt", (root_dir_ + "/escape").c_str()), 0);
    ASSERT_EQ(::symlink("/etc", (root_dir_ + "/etc").c_str()), 0);
    ASSERT_EQ(::symlink("sub/inner.txt", (root_dir_ + "/alias").c_str()), 0);
    ASSERT_EQ(::mkfifo((root_dir_ + "/fifo").c_str(), 0644), 0);
    ASSERT_EQ(HostDocroot::Open(root_dir_, &root_), 0);
  }

  std::string Read(DocFile& f) {
    std::string s(f.size(), '\0');
    EXPECT_EQ(f.pread(s.data(), s.size(), 0), static_cast<ssize_t>(s.size()));
    return s;
  }

  std::string base_, root_dir_;
  std::unique_ptr<HostDocroot> root_;
};

TEST_F(HostDocrootTest, OpensFilesAndDirectories) {
  DocKind k;
  ASSERT_EQ(root_->stat("", &k), 0);
  EXPECT_EQ(k, DocKind::kDirectory);
  ASSERT_EQ(root_->stat("sub", &k), 0);
  EXPECT_EQ(k, DocKind::kDirectory);
  std::unique_ptr<DocFile> f;
  ASSERT_EQ(root_->open("sub/inner.txt", &f), 0);
  EXPECT_EQ(f->size(), 5u);
  EXPECT_EQ(Read(*f), "inner");
  EXPECT_GE(f->sendfile_fd(), 0);
  EXPECT_GT(f->mtime(), 0);
  EXPECT_EQ(root_->open("sub", &f), EISDIR);
  EXPECT_EQ(root_->open("missing", &f), ENOENT);
  EXPECT_EQ(root_->open("hello.txt/x", &f), ENOTDIR);
}

TEST_F(HostDocrootTest, SymlinksOutOfTheRootAreRefused) {
  std::unique_ptr<DocFile> f;
  int err = root_->open("escape", &f);
  EXPECT_TRUE(err == EXDEV || err == ELOOP) << err;
  err = root_->open("etc/passwd", &f);
  EXPECT_TRUE(err == EXDEV || err == ELOOP) << err;
  DocKind k;
  err = root_->stat("etc", &k);
  EXPECT_TRUE(err == EXDEV || err == ELOOP) << err;
}

TEST_F(HostDocrootTest, SymlinkInsideTheRootIsFollowedWhenOpenat2Exists) {
  std::unique_ptr<DocFile> f;
  int err = root_->open("alias", &f);
  if (err == ELOOP) GTEST_SKIP() << "no openat2: every symbolic link is refused";
  ASSERT_EQ(err, 0);
  EXPECT_EQ(Read(*f), "inner");
}

TEST_F(HostDocrootTest, SpecialFilesAreNotServed) {
  std::unique_ptr<DocFile> f;
  EXPECT_EQ(root_->open("fifo", &f), EACCES);
}

TEST(GeneratedDocroot, PatternIsPositionalAndDiffersBetweenFiles) {
  uint8_t whole[64], part[13];
  PatternFill("1k.bin", 0, whole, sizeof(whole));
  PatternFill("1k.bin", 5, part, sizeof(part));
  EXPECT_EQ(std::memcmp(whole + 5, part, sizeof(part)), 0);
  uint8_t other[64];
  PatternFill("1m.bin", 0, other, sizeof(other));
  EXPECT_NE(std::memcmp(whole, other, sizeof(whole)), 0);
  // No 8-byte word repeats in the first 64 KiB of a file.
  std::vector<uint8_t> big(64 * 1024);
  PatternFill("64m.bin", 0, big.data(), big.size());
  std::set<uint64_t> words;
  for (size_t i = 0; i < big.size(); i += 8) {
    uint64_t w;
    std::memcpy(&w, big.data() + i, 8);
    words.insert(w);
  }
  EXPECT_EQ(words.size(), big.size() / 8);
}

TEST(GeneratedDocroot, WrittenFilesMatchTheirExpectedDigests) {
  std::string dir = MakeTestDir("gen") + "/www";
  HostDocSink sink(dir);
  std::vector<GeneratedFile> files = {{"1k.bin", 1024}, {"odd.bin", 100003}, {"1m.bin", 1 << 20}};
  std::vector<std::string> sums;
  ASSERT_EQ(WriteDocroot(sink, files, &sums), 0);
  ASSERT_EQ(sums.size(), files.size());
  for (size_t i = 0; i < files.size(); ++i) {
    std::string data = ReadFile(dir + "/" + files[i].name);
    ASSERT_EQ(data.size(), files[i].size);
    EXPECT_EQ(Sha256Hex(data), sums[i]);
    EXPECT_EQ(PatternSha256(files[i].name, files[i].size), sums[i]);
  }
  std::string index = ReadFile(dir + "/index.html");
  for (size_t i = 0; i < files.size(); ++i) {
    EXPECT_NE(index.find("href=\"/" + files[i].name + "\""), std::string::npos);
    EXPECT_NE(index.find(sums[i]), std::string::npos);
  }
  auto def = DefaultFiles();
  ASSERT_EQ(def.size(), 3u);
  EXPECT_EQ(def[0].size, 1024u);
  EXPECT_EQ(def[1].size, 1u << 20);
  EXPECT_EQ(def[2].size, 64u << 20);
}

TEST(ImportTree, CopiesFilesAndDirectoriesSkippingLinks) {
  std::string base = MakeTestDir("import");
  std::string src = base + "/src";
  ASSERT_EQ(::mkdir(src.c_str(), 0755), 0);
  ASSERT_EQ(::mkdir((src + "/d").c_str(), 0755), 0);
  WriteFile(src + "/a.txt", "alpha");
  std::string big(3 * 1024 * 1024 + 7, '\0');
  PatternFill("big", 0, reinterpret_cast<uint8_t*>(big.data()), big.size());
  WriteFile(src + "/d/big.bin", big);
  ASSERT_EQ(::symlink("/etc/passwd", (src + "/link").c_str()), 0);
  HostDocSink sink(base + "/dst");
  std::string what;
  ASSERT_EQ(ImportTree(src, sink, &what), 0) << what;
  EXPECT_EQ(ReadFile(base + "/dst/a.txt"), "alpha");
  EXPECT_EQ(ReadFile(base + "/dst/d/big.bin"), big);
  struct stat st;
  EXPECT_NE(::lstat((base + "/dst/link").c_str(), &st), 0);
  EXPECT_EQ(ImportTree(base + "/nonexistent", sink, &what), ENOENT);
}

}  // namespace
}  // namespace ukhttpd
