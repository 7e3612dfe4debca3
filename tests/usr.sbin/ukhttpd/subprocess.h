// Child processes for the end-to-end tests: the server under test and the
// host's curl and openssl. Every child gets PR_SET_PDEATHSIG so that a
// crashed test leaves none behind.
#ifndef UKTLS_TESTS_USR_SBIN_UKHTTPD_SUBPROCESS_H_
#define UKTLS_TESTS_USR_SBIN_UKHTTPD_SUBPROCESS_H_

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <string>
#include <vector>

extern char** environ;

namespace ukhttpd_test {

struct SpawnSpec {
  std::vector<std::string> argv;
  std::vector<std::string> env;  // extra NAME=VALUE entries
  std::string stdin_file;        // empty: /dev/null
  std::string stdout_file;       // empty: /dev/null (ignored when stdout_pipe)
  std::string stderr_file;       // empty: /dev/null
  int* stdout_pipe = nullptr;    // receives the read end of a pipe for stdout
};

// Starts the process; returns its pid, or -1.
inline pid_t Spawn(const SpawnSpec& s) {
  std::vector<char*> argv;
  for (const auto& a : s.argv) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  std::vector<char*> envp;
  for (char** e = environ; *e; ++e) envp.push_back(*e);
  for (const auto& e : s.env) envp.push_back(const_cast<char*>(e.c_str()));
  envp.push_back(nullptr);
  std::string in = s.stdin_file.empty() ? "/dev/null" : s.stdin_file;
  std::string out = s.stdout_file.empty() ? "/dev/null" : s.stdout_file;
  std::string err = s.stderr_file.empty() ? "/dev/null" : s.stderr_file;
  int p[2] = {-1, -1};
  if (s.stdout_pipe && ::pipe2(p, O_CLOEXEC) != 0) return -1;
  pid_t parent = ::getpid();
  pid_t pid = ::fork();
  if (pid == 0) {
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) ::_exit(127);
    int fi = ::open(in.c_str(), O_RDONLY);
    int fo = s.stdout_pipe ? p[1] : ::open(out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    int fe = ::open(err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fi < 0 || fo < 0 || fe < 0) ::_exit(126);
    ::dup2(fi, 0);
    ::dup2(fo, 1);
    ::dup2(fe, 2);
    ::execve(argv[0], argv.data(), envp.data());
    ::_exit(127);
  }
  if (s.stdout_pipe) {
    ::close(p[1]);
    if (pid < 0) {
      ::close(p[0]);
    } else {
      *s.stdout_pipe = p[0];
    }
  }
  return pid;
}

// Waits for |pid|; returns its exit status, or 128 + signal.
inline int Wait(pid_t pid) {
  int st = 0;
  while (::waitpid(pid, &st, 0) < 0) {
    if (errno != EINTR) return -1;
  }
  if (WIFEXITED(st)) return WEXITSTATUS(st);
  if (WIFSIGNALED(st)) return 128 + WTERMSIG(st);
  return -1;
}

inline int Run(const SpawnSpec& s) {
  pid_t pid = Spawn(s);
  return pid < 0 ? -1 : Wait(pid);
}

// The first executable called |name| in $PATH or the usual directories.
inline std::string FindProgram(const std::string& name) {
  std::string path = getenv("PATH") ? getenv("PATH") : "";
  path += ":/usr/bin:/bin:/usr/local/bin";
  size_t start = 0;
  while (start <= path.size()) {
    size_t colon = path.find(':', start);
    std::string dir = path.substr(start, colon == std::string::npos ? std::string::npos : colon - start);
    if (!dir.empty()) {
      std::string p = dir + "/" + name;
      if (::access(p.c_str(), X_OK) == 0) return p;
    }
    if (colon == std::string::npos) break;
    start = colon + 1;
  }
  return "";
}

}  // namespace ukhttpd_test

#endif  // UKTLS_TESTS_USR_SBIN_UKHTTPD_SUBPROCESS_H_
