// The HTTP/1.1 static file server core of ukhttpd: ServeConnection answers
// requests on one Transport from one Docroot; Server accepts Sockets from a
// Listener and runs each connection on a thread of its own.
//
// What it answers (README.md has the full list): GET and HEAD of regular
// files, 206 for a single byte range, 416 for unsatisfiable ones; 301 to add
// the slash to a directory; index.html for a directory; 400 for malformed
// requests and paths, 403 for paths that leave the root or cannot be read,
// 404, 405 with "Allow: GET, HEAD" for every other method, 413/414/431 for
// limits, 501 for request bodies with Transfer-Encoding, 505 for HTTP/2+.
// HTTP/1.1 connections stay open unless "Connection: close"; HTTP/1.0 ones
// close unless "Connection: keep-alive". Errors that leave the request stream
// unsynchronised (400, 413, 414, 431, 501, 505) close the connection.
#ifndef UKTLS_USR_SBIN_UKHTTPD_HTTPD_H_
#define UKTLS_USR_SBIN_UKHTTPD_HTTPD_H_

#include <cstdint>
#include <functional>
#include <list>
#include <memory>
#include <string>
#include <thread>

#include "sys/sys/lock.h"
#include "usr.sbin/ukhttpd/counters.h"
#include "usr.sbin/ukhttpd/docroot.h"
#include "usr.sbin/ukhttpd/http_request.h"
#include "usr.sbin/ukhttpd/tls.h"
#include "usr.sbin/ukhttpd/transport.h"

namespace ukhttpd {

struct HttpConfig {
  RequestLimits limits;
  // Largest request body (Content-Length) read and discarded; more gets 413.
  uint64_t max_request_body = 1 << 20;
  // Bytes per SSL_write on the fallback path. A multiple of the 16 KiB TLS
  // record payload so that records are full.
  size_t write_chunk = 64 * 1024;
  // Access log: one line per response, or per failed handshake. Called from
  // connection threads; null for none.
  std::function<void(const std::string&)> log;
};

// Serves requests from |t| until the peer closes, an error closes the
// connection, or a response says "Connection: close". Returns the number of
// requests answered. |peer| is only used in log lines.
uint64_t ServeConnection(Transport& t, Docroot& root, const HttpConfig& cfg, Counters& c,
                         const std::string& peer);

// An HTTP date (RFC 9110 section 5.6.7) for |t| seconds since the epoch.
std::string HttpDate(int64_t t);

class Server {
 public:
  // The pointees must outlive the Server.
  Server(const HttpConfig& cfg, Docroot* root, TlsContext* tls, Counters* counters,
         size_t max_connections);
  ~Server();

  // Accepts connections until stop() is called or the listener fails; then
  // shuts every connection down and joins its thread before returning.
  void run(Listener& listener) ABSL_LOCKS_EXCLUDED(mu_);
  // Makes run() return. Any thread; idempotent.
  void stop() ABSL_LOCKS_EXCLUDED(mu_);

 private:
  struct Conn {
    std::unique_ptr<Socket> sock;  // reset by the connection thread under mu_
    std::thread thread;
    bool done = false;  // guarded by Server::mu_
  };
  void serve(Conn* conn) ABSL_LOCKS_EXCLUDED(mu_);

  const HttpConfig cfg_;
  Docroot* const root_;
  TlsContext* const tls_;
  Counters* const counters_;
  const size_t max_connections_;

  uk::Mutex mu_;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  Listener* listener_ ABSL_GUARDED_BY(mu_) = nullptr;
  std::list<std::unique_ptr<Conn>> conns_ ABSL_GUARDED_BY(mu_);
};

}  // namespace ukhttpd

#endif  // UKTLS_USR_SBIN_UKHTTPD_HTTPD_H_
