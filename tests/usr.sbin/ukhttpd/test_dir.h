// A fresh directory under $TEST_TMPDIR for one test.
#ifndef UKTLS_TESTS_USR_SBIN_UKHTTPD_TEST_DIR_H_
#define UKTLS_TESTS_USR_SBIN_UKHTTPD_TEST_DIR_H_

#include <stdlib.h>

#include <fstream>
#include <string>

#include <gtest/gtest.h>

namespace ukhttpd_test {

inline std::string MakeTestDir(const std::string& tag) {
  const char* base = std::getenv("TEST_TMPDIR");
  std::string tmpl = std::string(base && *base ? base : "/tmp") + "/" + tag + ".XXXXXX";
  if (::mkdtemp(tmpl.data()) == nullptr) ADD_FAILURE() << "mkdtemp " << tmpl;
  return tmpl;
}

inline void WriteFile(const std::string& path, const std::string& data) {
  std::ofstream f(path, std::ios::binary);
  f << data;
  ASSERT_TRUE(f.good()) << path;
}

inline std::string ReadFile(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
}

}  // namespace ukhttpd_test

#endif  // UKTLS_TESTS_USR_SBIN_UKHTTPD_TEST_DIR_H_
