#include "tests/e2e/process.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <thread>

namespace e2e {

std::string runfile(const std::string& rel) {
  const char* srcdir = getenv("TEST_SRCDIR");
  const char* ws = getenv("TEST_WORKSPACE");
  std::string base = srcdir ? srcdir : ".";
  return base + "/" + (ws ? ws : "uktls") + "/" + rel;
}

std::string temp_dir(const std::string& name) {
  static std::atomic<int> seq{0};
  const char* t = getenv("TEST_TMPDIR");
  std::string d = std::string(t ? t : "/tmp") + "/" + name + "." +
                  std::to_string(getpid()) + "." + std::to_string(seq++);
  mkdir(d.c_str(), 0700);
  return d;
}

std::string read_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::ostringstream s;
  s << f.rdbuf();
  return s.str();
}

void write_file(const std::string& path, const std::string& text) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f << text;
}

Process::~Process() {
  if (pid_ > 0 && status_ < 0) {
    kill(pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
  }
}

void Process::start(const std::vector<std::string>& argv,
                    const std::vector<std::string>& env) {
  std::string dir = temp_dir("proc");
  out_ = dir + "/stdout";
  err_ = dir + "/stderr";
  pid_t parent = getpid();
  pid_ = fork();
  if (pid_ == 0) {
    // Never outlive the test.
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(127);
    int o = open(out_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    int e = open(err_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    dup2(o, 1);
    dup2(e, 2);
    int devnull = open("/dev/null", O_RDONLY);
    dup2(devnull, 0);
    for (const std::string& kv : env) putenv(strdup(kv.c_str()));
    std::vector<char*> av;
    for (const std::string& a : argv) av.push_back(const_cast<char*>(a.c_str()));
    av.push_back(nullptr);
    execv(av[0], av.data());
    fprintf(stderr, "exec %s: %s\n", av[0], strerror(errno));
    _exit(127);
  }
}

bool Process::running() {
  if (pid_ <= 0 || status_ >= 0) return false;
  int st;
  pid_t r = waitpid(pid_, &st, WNOHANG);
  if (r == pid_) {
    status_ = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    return false;
  }
  return true;
}

void Process::signal(int sig) {
  if (pid_ > 0 && status_ < 0) kill(pid_, sig);
}

int Process::wait(int timeout_s) {
  if (pid_ <= 0) return -1;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(timeout_s);
  while (running()) {
    if (std::chrono::steady_clock::now() > deadline) {
      kill(pid_, SIGKILL);
      int st;
      waitpid(pid_, &st, 0);
      status_ = 128 + SIGKILL;
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return status_;
}

Result run(const std::vector<std::string>& argv, const std::vector<std::string>& env,
           int timeout_s) {
  Process p;
  p.start(argv, env);
  Result r;
  r.status = p.wait(timeout_s);
  r.out = p.out();
  r.err = p.err();
  return r;
}

}  // namespace e2e
