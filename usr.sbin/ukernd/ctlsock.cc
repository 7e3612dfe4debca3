#include "usr.sbin/ukernd/ctlsock.h"

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

namespace ukernd {

std::string control_url(std::string_view flag) {
  if (!flag.empty()) return std::string(flag);
  if (const char* e = getenv("UKERN_SERVER"); e != nullptr && *e != '\0')
    return e;
  if (const char* x = getenv("XDG_RUNTIME_DIR"); x != nullptr && *x == '/')
    return std::string("unix://") + x + "/ukernd.sock";
  return "unix:///tmp/ukernd-" + std::to_string(getuid()) + ".sock";
}

bool url_to_path(std::string_view url, std::string* path, std::string* err) {
  constexpr std::string_view kUnix = "unix://";
  if (url.substr(0, kUnix.size()) == kUnix) {
    *path = std::string(url.substr(kUnix.size()));
  } else if (!url.empty() && url[0] == '/') {
    *path = std::string(url);
  } else {
    size_t colon = url.find("://");
    *err = colon == std::string_view::npos
               ? "'" + std::string(url) + "' is not a unix:// URL"
               : "unsupported scheme '" + std::string(url.substr(0, colon)) +
                     "' (only unix:// is supported)";
    return false;
  }
  if (path->empty()) {
    *err = "'" + std::string(url) + "' has no path";
    return false;
  }
  return true;
}

namespace {

// Fills |sun| for |path|, opening the parent directory (O_PATH) into
// *dirfd when the path does not fit; the caller closes *dirfd.
bool make_addr(const std::string& path, sockaddr_un* sun, int* dirfd) {
  *dirfd = -1;
  memset(sun, 0, sizeof(*sun));
  sun->sun_family = AF_UNIX;
  std::string p = path;
  if (p.size() >= sizeof(sun->sun_path)) {
    size_t slash = p.rfind('/');
    std::string dir = slash == std::string::npos ? "." : p.substr(0, slash + 1);
    std::string base = slash == std::string::npos ? p : p.substr(slash + 1);
    *dirfd = open(dir.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (*dirfd < 0) return false;
    p = "/proc/self/fd/" + std::to_string(*dirfd) + "/" + base;
    if (p.size() >= sizeof(sun->sun_path)) {
      close(*dirfd);
      *dirfd = -1;
      errno = ENAMETOOLONG;
      return false;
    }
  }
  memcpy(sun->sun_path, p.c_str(), p.size() + 1);
  return true;
}

}  // namespace

int unix_connect(const std::string& path) {
  sockaddr_un sun;
  int dirfd;
  if (!make_addr(path, &sun, &dirfd)) return -1;
  int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  int error = 0;
  if (s < 0) {
    error = errno;
  } else if (connect(s, reinterpret_cast<sockaddr*>(&sun), sizeof(sun)) != 0) {
    error = errno;
    close(s);
    s = -1;
  }
  if (dirfd >= 0) close(dirfd);
  errno = error;
  return s;
}

int unix_bind_listen(const std::string& path, int backlog) {
  sockaddr_un sun;
  int dirfd;
  if (!make_addr(path, &sun, &dirfd)) return -1;
  int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  int error = 0;
  if (s < 0) {
    error = errno;
  } else {
    // Created 0600 from the start: no window in which another user could
    // connect before a chmod.
    mode_t old = umask(0177);
    int r = bind(s, reinterpret_cast<sockaddr*>(&sun), sizeof(sun));
    error = errno;
    umask(old);
    if (r == 0 && listen(s, backlog) == 0) {
      error = 0;
    } else {
      if (r == 0) error = errno;
      close(s);
      s = -1;
    }
  }
  if (dirfd >= 0) close(dirfd);
  errno = error;
  return s;
}

}  // namespace ukernd
