// Helpers for end-to-end tests: run the real ukernd and ktlsctl binaries as
// processes with temporary paths under $TEST_TMPDIR, and make sure none is
// left behind (children die with the test: PR_SET_PDEATHSIG).
#ifndef UKTLS_TESTS_E2E_PROCESS_H_
#define UKTLS_TESTS_E2E_PROCESS_H_

#include <sys/types.h>

#include <string>
#include <vector>

namespace e2e {

// Path of a binary of this repository in the test's runfiles.
std::string runfile(const std::string& rel);
// A fresh directory under $TEST_TMPDIR.
std::string temp_dir(const std::string& name);
std::string read_file(const std::string& path);
void write_file(const std::string& path, const std::string& text);

struct Result {
  int status = -1;  // exit status, or 128+signal
  std::string out, err;
};

// A child process with stdout and stderr sent to files.
class Process {
 public:
  Process() = default;
  ~Process();  // SIGKILL and reap if still running
  Process(const Process&) = delete;
  Process& operator=(const Process&) = delete;

  void start(const std::vector<std::string>& argv,
             const std::vector<std::string>& env = {});
  bool running();
  void signal(int sig);
  // Waits up to |timeout_s| (then SIGKILLs). Returns the exit status, or
  // 128+signal.
  int wait(int timeout_s = 60);
  std::string out() const { return read_file(out_); }
  std::string err() const { return read_file(err_); }
  pid_t pid() const { return pid_; }

 private:
  pid_t pid_ = -1;
  int status_ = -1;
  std::string out_, err_;
};

// Runs a command to completion.
Result run(const std::vector<std::string>& argv, const std::vector<std::string>& env = {},
           int timeout_s = 60);

}  // namespace e2e

#endif  // UKTLS_TESTS_E2E_PROCESS_H_
