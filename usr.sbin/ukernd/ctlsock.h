// Where the control socket lives and how to reach it; shared by ukernd and
// ktlsctl so both pick the same default the same way (rump's RUMP_SERVER
// convention): -s URL, else $UKERN_SERVER, else $XDG_RUNTIME_DIR/ukernd.sock,
// else /tmp/ukernd-$UID.sock.
#ifndef UKTLS_USR_SBIN_UKERND_CTLSOCK_H_
#define UKTLS_USR_SBIN_UKERND_CTLSOCK_H_

#include <string>
#include <string_view>

namespace ukernd {

// The control URL to use: |flag| (from -s) if non-empty, else the
// environment, else the default. Always of the form unix://PATH.
std::string control_url(std::string_view flag);

// "unix:///run/x.sock" -> "/run/x.sock"; a bare absolute path is accepted
// too. Returns false and a message for other schemes or an empty path.
bool url_to_path(std::string_view url, std::string* path, std::string* err);

// Unix stream sockets by path. Paths longer than sun_path are reached
// through /proc/self/fd/N/NAME of their directory, so deep temporary
// directories work. Both return a descriptor or -1 with errno set.
int unix_connect(const std::string& path);
int unix_bind_listen(const std::string& path, int backlog);

}  // namespace ukernd

#endif  // UKTLS_USR_SBIN_UKERND_CTLSOCK_H_
