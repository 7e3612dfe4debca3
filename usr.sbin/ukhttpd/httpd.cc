#include "usr.sbin/ukhttpd/httpd.h"

#include <errno.h>
#include <time.h>

#include <cctype>
#include <cstring>
#include <optional>
#include <vector>

#include "usr.sbin/ukhttpd/http_path.h"
#include "usr.sbin/ukhttpd/http_range.h"
#include "usr.sbin/ukhttpd/mime.h"

namespace ukhttpd {
namespace {

const char* Reason(int status) {
  switch (status) {
    case 200: return "OK";
    case 206: return "Partial Content";
    case 301: return "Moved Permanently";
    case 400: return "Bad Request";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 413: return "Content Too Large";
    case 414: return "URI Too Long";
    case 416: return "Range Not Satisfiable";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 505: return "HTTP Version Not Supported";
    default: return "Unknown";
  }
}

std::optional<uint64_t> ParseContentLength(std::string_view v) {
  // Several identical values ("5, 5") are one value (RFC 9112 section 6.3).
  std::optional<uint64_t> out;
  while (true) {
    size_t comma = v.find(',');
    std::string_view item = v.substr(0, comma);
    while (!item.empty() && (item.front() == ' ' || item.front() == '\t')) item.remove_prefix(1);
    while (!item.empty() && (item.back() == ' ' || item.back() == '\t')) item.remove_suffix(1);
    if (item.empty() || item.size() > 18) return std::nullopt;
    uint64_t n = 0;
    for (char c : item) {
      if (!std::isdigit(static_cast<unsigned char>(c))) return std::nullopt;
      n = n * 10 + static_cast<uint64_t>(c - '0');
    }
    if (out && *out != n) return std::nullopt;
    out = n;
    if (comma == std::string_view::npos) break;
    v.remove_prefix(comma + 1);
  }
  return out;
}

class Session {
 public:
  Session(Transport& t, Docroot& root, const HttpConfig& cfg, Counters& c,
          const std::string& peer)
      : t_(t), root_(root), cfg_(cfg), c_(c), peer_(peer) {}

  uint64_t run() {
    uint64_t answered = 0;
    while (true) {
      HttpRequest req;
      ParseResult r;
      while (true) {
        r = ParseRequestHead(in_, cfg_.limits, &req);
        if (r.status != ParseStatus::kIncomplete) break;
        if (!fill()) return answered;  // EOF or error between or inside requests
      }
      if (r.status == ParseStatus::kError) {
        c_.requests.fetch_add(1, std::memory_order_relaxed);
        request_line_ = "-";
        send_error(r.error_status, /*head_only=*/false, /*close=*/true, r.reason);
        return answered + 1;
      }
      in_.erase(0, r.consumed);
      c_.requests.fetch_add(1, std::memory_order_relaxed);
      ++answered;
      request_line_ = req.method + " " + req.target + " HTTP/" +
                      std::to_string(req.version_major) + "." +
                      std::to_string(req.version_minor);
      if (!handle(req)) return answered;
    }
  }

 private:
  bool fill() {
    char buf[16384];
    ssize_t n = t_.read(buf, sizeof(buf));
    if (n <= 0) return false;
    c_.request_bytes.fetch_add(static_cast<uint64_t>(n), std::memory_order_relaxed);
    in_.append(buf, static_cast<size_t>(n));
    return true;
  }

  // Returns false when the connection must close.
  bool handle(const HttpRequest& req) {
    const bool head = req.method == "HEAD";
    const bool http10 = req.version_minor == 0;
    close_ = http10 ? !req.connection_has("keep-alive") : req.connection_has("close");
    keepalive10_ = http10 && !close_;

    // RFC 9112 section 3.2: exactly one Host in HTTP/1.1, at most one in 1.0.
    size_t hosts = req.header_count("host");
    if (hosts > 1 || (!http10 && hosts == 0)) {
      return send_error(400, head, true, hosts ? "several Host fields" : "no Host field");
    }
    if (req.header_count("transfer-encoding") > 0) {
      return send_error(501, head, true, "request Transfer-Encoding not supported");
    }
    if (std::optional<std::string> cl = req.header("content-length")) {
      std::optional<uint64_t> n = ParseContentLength(*cl);
      if (!n) return send_error(400, head, true, "malformed Content-Length");
      if (*n > cfg_.max_request_body) return send_error(413, head, true, "request body too large");
      // Discard the body so that the next request starts where it should.
      while (in_.size() < *n) {
        if (!fill()) return false;
      }
      in_.erase(0, static_cast<size_t>(*n));
    }
    if (req.method != "GET" && !head) {
      return send_error(405, false, close_, "method " + req.method);
    }

    TargetPath tp = NormalizeTarget(req.target);
    if (tp.error_status) return send_error(tp.error_status, head, tp.error_status == 400, tp.reason);

    std::string rel = tp.relpath();
    DocKind kind;
    int err = root_.stat(rel, &kind);
    if (err) return send_lookup_error(err, head);
    if (kind == DocKind::kDirectory) {
      if (!tp.trailing_slash) return send_redirect(tp.encoded_path + "/", head);
      rel = rel.empty() ? "index.html" : rel + "/index.html";
    }
    std::unique_ptr<DocFile> f;
    err = root_.open(rel, &f);
    if (err == EISDIR || (err == ENOENT && kind == DocKind::kDirectory)) {
      return send_error(403, head, close_, "directory without index.html");
    }
    if (err) return send_lookup_error(err, head);
    return send_file(req, rel, *f, head);
  }

  bool send_lookup_error(int err, bool head) {
    switch (err) {
      case ENOENT:
      case ENOTDIR:
      case ENAMETOOLONG:
        return send_error(404, head, close_, std::strerror(err));
      case EACCES:
      case EPERM:
      case EXDEV:
      case ELOOP:
        return send_error(403, head, close_, std::strerror(err));
      default:
        return send_error(500, head, close_, std::strerror(err));
    }
  }

  std::string head_start(int status) {
    std::string h = "HTTP/1.1 " + std::to_string(status) + " " + Reason(status) + "\r\n";
    h += "Date: " + HttpDate(::time(nullptr)) + "\r\n";
    h += "Server: ukhttpd\r\n";
    return h;
  }

  void head_end(std::string* h) {
    if (close_) {
      *h += "Connection: close\r\n";
    } else if (keepalive10_) {
      *h += "Connection: keep-alive\r\n";
    }
    *h += "\r\n";
  }

  bool write_counted(const std::string& s) {
    if (!t_.write(s.data(), s.size())) return false;
    c_.response_bytes.fetch_add(s.size(), std::memory_order_relaxed);
    return true;
  }

  void log(int status, uint64_t bytes, std::string_view how) {
    if (!cfg_.log) return;
    std::string line = peer_ + " \"" + request_line_ + "\" " + std::to_string(status) + " " +
                       std::to_string(bytes);
    if (!how.empty()) {
      line += " ";
      line += how;
    }
    cfg_.log(line);
  }

  bool send_simple(int status, bool head, bool close, const std::string& extra_headers,
                   const std::string& body, std::string_view why) {
    if (close) close_ = true;
    std::string h = head_start(status);
    h += extra_headers;
    h += "Content-Type: text/html; charset=utf-8\r\n";
    h += "Content-Length: " + std::to_string(body.size()) + "\r\n";
    head_end(&h);
    if (!head) h += body;
    c_.count_status(status);
    log(status, head ? 0 : body.size(), why);
    return write_counted(h) && !close_;
  }

  bool send_error(int status, bool head, bool close, const std::string& why) {
    std::string extra;
    if (status == 405) extra = "Allow: GET, HEAD\r\n";
    std::string body = "<!DOCTYPE html>\n<html><head><title>" + std::to_string(status) + " " +
                       Reason(status) + "</title></head><body><h1>" + std::to_string(status) +
                       " " + Reason(status) + "</h1></body></html>\n";
    return send_simple(status, head, close, extra, body, why);
  }

  bool send_redirect(const std::string& location, bool head) {
    std::string body = "<!DOCTYPE html>\n<html><body><a href=\"" + location + "\">" + location +
                       "</a></body></html>\n";
    return send_simple(301, head, false, "Location: " + location + "\r\n", body, "");
  }

  bool send_file(const HttpRequest& req, const std::string& rel, DocFile& f, bool head) {
    const uint64_t size = f.size();
    const int64_t mtime = f.mtime();
    const std::string last_modified = mtime >= 0 ? HttpDate(mtime) : "";

    ByteRange range;
    if (std::optional<std::string> rv = req.header("range")) {
      // If-Range with a validator other than our exact Last-Modified date
      // means "send it all" (RFC 9110 section 13.1.5, strong comparison).
      std::optional<std::string> ir = req.header("if-range");
      if (!ir || (!last_modified.empty() && *ir == last_modified)) {
        range = ParseRange(*rv, size);
      }
    }
    if (range.kind == RangeKind::kUnsatisfiable) {
      return send_error_range(size, head);
    }
    const bool partial = range.kind == RangeKind::kSatisfiable;
    const uint64_t first = partial ? range.first : 0;
    const uint64_t len = partial ? range.length() : size;
    const int status = partial ? 206 : 200;

    std::string h = head_start(status);
    h += "Content-Type: " + std::string(ContentTypeFor(rel)) + "\r\n";
    h += "Content-Length: " + std::to_string(len) + "\r\n";
    if (partial) h += "Content-Range: " + ContentRange(range, size) + "\r\n";
    h += "Accept-Ranges: bytes\r\n";
    if (!last_modified.empty()) h += "Last-Modified: " + last_modified + "\r\n";
    head_end(&h);
    c_.count_status(status);

    if (head || len == 0) {
      log(status, 0, "");
      return write_counted(h) && !close_;
    }
    if (t_.ktls_send() && f.sendfile_fd() >= 0) {
      if (!write_counted(h)) return false;
      int err = t_.send_file(f, first, len);
      if (err) {
        c_.sendfile_errors.fetch_add(1, std::memory_order_relaxed);
        log(status, len, std::string("sendfile failed: ") + std::strerror(err));
        return false;
      }
      c_.bodies_sendfile.fetch_add(1, std::memory_order_relaxed);
      c_.body_bytes_sendfile.fetch_add(len, std::memory_order_relaxed);
      c_.response_bytes.fetch_add(len, std::memory_order_relaxed);
      log(status, len, "sendfile");
      return !close_;
    }

    // Fallback: read and SSL_write. The head rides in the first write so a
    // small body shares its record.
    std::vector<char> buf(cfg_.write_chunk);
    std::string out = std::move(h);
    uint64_t off = first, left = len;
    while (left > 0) {
      size_t room = buf.size() > out.size() ? buf.size() - out.size() : 0;
      if (room == 0) room = buf.size();
      size_t want = static_cast<size_t>(std::min<uint64_t>(room, left));
      ssize_t n = f.pread(buf.data(), want, off);
      if (n <= 0) {
        // The file shrank or failed after Content-Length went out (or is
        // about to): the only honest thing left is to drop the connection.
        log(status, len - left, "read error");
        return false;
      }
      out.append(buf.data(), static_cast<size_t>(n));
      off += static_cast<uint64_t>(n);
      left -= static_cast<uint64_t>(n);
      if (out.size() >= buf.size() || left == 0) {
        if (!write_counted(out)) return false;
        out.clear();
      }
    }
    c_.bodies_ssl_write.fetch_add(1, std::memory_order_relaxed);
    c_.body_bytes_ssl_write.fetch_add(len, std::memory_order_relaxed);
    log(status, len, "ssl_write");
    return !close_;
  }

  bool send_error_range(uint64_t size, bool head) {
    return send_simple(416, head, false,
                       "Content-Range: bytes */" + std::to_string(size) + "\r\n", "",
                       "range not satisfiable");
  }

  Transport& t_;
  Docroot& root_;
  const HttpConfig& cfg_;
  Counters& c_;
  const std::string& peer_;
  std::string in_;
  std::string request_line_;
  bool close_ = false;
  bool keepalive10_ = false;
};

}  // namespace

std::string HttpDate(int64_t t) {
  static const char* const kDays[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
  static const char* const kMonths[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                        "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
  time_t tt = static_cast<time_t>(t);
  struct tm tm;
  ::gmtime_r(&tt, &tm);
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%s, %02d %s %04d %02d:%02d:%02d GMT", kDays[tm.tm_wday],
                tm.tm_mday, kMonths[tm.tm_mon], tm.tm_year + 1900, tm.tm_hour, tm.tm_min,
                tm.tm_sec);
  return buf;
}

uint64_t ServeConnection(Transport& t, Docroot& root, const HttpConfig& cfg, Counters& c,
                         const std::string& peer) {
  Session s(t, root, cfg, c, peer);
  return s.run();
}

Server::Server(const HttpConfig& cfg, Docroot* root, TlsContext* tls, Counters* counters,
               size_t max_connections)
    : cfg_(cfg), root_(root), tls_(tls), counters_(counters), max_connections_(max_connections) {}

Server::~Server() { stop(); }

void Server::serve(Conn* conn) {
  // conn->sock is only reset by this thread (below), so reading it unlocked
  // before that is safe.
  Socket& sock = *conn->sock;
  std::string peer = sock.peer();
  {
    TlsTransport t(*tls_, sock);
    std::string err;
    if (t.handshake(&err)) {
      counters_->handshakes.fetch_add(1, std::memory_order_relaxed);
      (t.version() == "TLSv1.3" ? counters_->tls13 : counters_->tls12)
          .fetch_add(1, std::memory_order_relaxed);
      if (t.ktls_send()) {
        counters_->ktls_tx_connections.fetch_add(1, std::memory_order_relaxed);
        sock.ktls_tx_established();
      }
      if (t.ktls_recv()) counters_->ktls_rx_connections.fetch_add(1, std::memory_order_relaxed);
      ServeConnection(t, *root_, cfg_, *counters_, peer);
      t.close();
    } else {
      counters_->handshake_failures.fetch_add(1, std::memory_order_relaxed);
      if (cfg_.log) cfg_.log(peer + " TLS " + err);
    }
  }
  struct timespec cpu;
  if (::clock_gettime(CLOCK_THREAD_CPUTIME_ID, &cpu) == 0) {
    counters_->connection_cpu_ns.fetch_add(
        static_cast<uint64_t>(cpu.tv_sec) * 1000000000u + static_cast<uint64_t>(cpu.tv_nsec),
        std::memory_order_relaxed);
  }
  // Close the descriptor now, not when run() reaps this thread at some later
  // accept: the peer must see the end of the connection. Under mu_, because
  // stop() calls shutdown() on every live socket.
  uk::MutexLock l(&mu_);
  conn->sock.reset();
  conn->done = true;
}

void Server::run(Listener& listener) {
  {
    uk::MutexLock l(&mu_);
    if (stopping_) return;
    listener_ = &listener;
  }
  while (true) {
    std::unique_ptr<Socket> s = listener.accept();
    if (!s) break;
    std::list<std::unique_ptr<Conn>> finished;
    {
      uk::MutexLock l(&mu_);
      for (auto it = conns_.begin(); it != conns_.end();) {
        if ((*it)->done) {
          finished.splice(finished.end(), conns_, it++);
        } else {
          ++it;
        }
      }
      if (stopping_) break;
      if (conns_.size() >= max_connections_) {
        counters_->connections_refused.fetch_add(1, std::memory_order_relaxed);
        s->shutdown();
      } else {
        counters_->connections.fetch_add(1, std::memory_order_relaxed);
        auto conn = std::make_unique<Conn>();
        conn->sock = std::move(s);
        Conn* raw = conn.get();
        conns_.push_back(std::move(conn));
        raw->thread = std::thread([this, raw] { serve(raw); });
      }
    }
    for (auto& c : finished) c->thread.join();
  }

  // Stopping: wake every connection, then join them all outside the lock
  // (their last act is to take it).
  std::list<std::unique_ptr<Conn>> all;
  {
    uk::MutexLock l(&mu_);
    stopping_ = true;
    listener_ = nullptr;
    for (auto& c : conns_) {
      if (c->sock) c->sock->shutdown();
    }
    all.swap(conns_);
  }
  for (auto& c : all) c->thread.join();
}

void Server::stop() {
  uk::MutexLock l(&mu_);
  stopping_ = true;
  if (listener_) listener_->close();
  for (auto& c : conns_) {
    if (c->sock) c->sock->shutdown();
  }
}

}  // namespace ukhttpd
