#include "usr.sbin/ukernd/conn.h"

#include <arpa/inet.h>
#include <sys/random.h>

#include <cerrno>
#include <cstring>
#include <vector>

#include "absl/time/clock.h"
#include "lib/libuk/uk.h"
#include "sys/kern/kern_proc.h"
#include "sys/kern/uipc_ktls.h"
#include "usr.sbin/ukernd/lab_host.h"

namespace ukernd {

namespace {

std::string addr_port(const sockaddr_in& sin) {
  char a[INET_ADDRSTRLEN];
  inet_ntop(AF_INET, &sin.sin_addr, a, sizeof a);
  return std::string(a) + ":" + std::to_string(ntohs(sin.sin_port));
}

// The receiving kernel's address: its first NIC's, or lo0's when both
// ends are the same kernel.
bool peer_address(const LabKernel& tx, const LabKernel& rx, in_addr* out) {
  if (&tx == &rx) {
    out->s_addr = htonl(INADDR_LOOPBACK);
    return true;
  }
  for (const NicSpec& n : rx.spec->nics) {
    if (n.inet.empty()) continue;
    std::string a = n.inet.substr(0, n.inet.find('/'));
    if (inet_pton(AF_INET, a.c_str(), out) == 1) return true;
  }
  return false;
}

struct Keys {
  uint8_t key[32];
  uint8_t iv[12];
  uint8_t nonce[8];
};

int set_freebsd(uk_proc* p, int fd, int opt, const ConnOptions& o, const Keys& k) {
  tls_enable en{};
  en.cipher_key = k.key;
  en.iv = k.iv;
  en.tls_vmajor = TLS_MAJOR_VER_ONE;
  en.tls_vminor = o.version == "1.3" ? TLS_MINOR_VER_THREE : TLS_MINOR_VER_TWO;
  if (o.cipher == "chacha20-poly1305") {
    en.cipher_algorithm = CRYPTO_CHACHA20_POLY1305;
    en.cipher_key_len = 32;
    en.iv_len = 12;
  } else {
    en.cipher_algorithm = CRYPTO_AES_NIST_GCM_16;
    en.cipher_key_len = o.cipher == "aes256-gcm" ? 32 : 16;
    // TLS 1.2 GCM takes the 4-byte salt; the nonce travels in each record.
    en.iv_len = o.version == "1.3" ? 12 : 4;
  }
  return uk_setsockopt(p, fd, IPPROTO_TCP, opt, &en, sizeof en);
}

// Linux's tls(7): TCP_ULP "tls", then TLS_TX / TLS_RX with the
// tls12_crypto_info_* of the suite.
int set_linux(uk_proc* p, int fd, int opt, const ConnOptions& o, const Keys& k) {
  if (uk_setsockopt(p, fd, IPPROTO_TCP, TCP_ULP, "tls", 4) != 0) return -1;
  uint16_t version = o.version == "1.3" ? TLS_1_3_VERSION : TLS_1_2_VERSION;
  if (o.cipher == "chacha20-poly1305") {
    tls12_crypto_info_chacha20_poly1305 ci{};
    ci.info.version = version;
    ci.info.cipher_type = TLS_CIPHER_CHACHA20_POLY1305;
    memcpy(ci.key, k.key, sizeof ci.key);
    memcpy(ci.iv, k.iv, sizeof ci.iv);
    return uk_setsockopt(p, fd, SOL_TLS, opt, &ci, sizeof ci);
  }
  if (o.cipher == "aes256-gcm") {
    tls12_crypto_info_aes_gcm_256 ci{};
    ci.info.version = version;
    ci.info.cipher_type = TLS_CIPHER_AES_GCM_256;
    memcpy(ci.key, k.key, sizeof ci.key);
    memcpy(ci.salt, k.iv, sizeof ci.salt);
    memcpy(ci.iv, version == TLS_1_3_VERSION ? k.iv + 4 : k.nonce, sizeof ci.iv);
    return uk_setsockopt(p, fd, SOL_TLS, opt, &ci, sizeof ci);
  }
  tls12_crypto_info_aes_gcm_128 ci{};
  ci.info.version = version;
  ci.info.cipher_type = TLS_CIPHER_AES_GCM_128;
  memcpy(ci.key, k.key, sizeof ci.key);
  memcpy(ci.salt, k.iv, sizeof ci.salt);
  memcpy(ci.iv, version == TLS_1_3_VERSION ? k.iv + 4 : k.nonce, sizeof ci.iv);
  return uk_setsockopt(p, fd, SOL_TLS, opt, &ci, sizeof ci);
}

void reader_loop(Conn* c) {
  std::vector<uint8_t> buf(64 * 1024);
  uint64_t off = 0;
  for (;;) {
    ssize_t n = uk_recv(c->rx->p, c->rx_fd, buf.data(), buf.size(), 0);
    if (n <= 0) {
      uk::MutexLock l(&c->mu);
      c->eof = true;
      c->rx_error = n < 0 ? errno : 0;
      c->cv.SignalAll();
      return;
    }
    uint64_t bad = 0;
    for (ssize_t i = 0; i < n; i++)
      if (buf[i] != conn_pattern(off + i)) bad++;
    off += n;
    uk::MutexLock l(&c->mu);
    c->received = off;
    c->mismatches += bad;
    c->cv.SignalAll();
  }
}

json conn_json(Conn& c) {
  uint64_t sent;
  {
    uk::MutexLock l(&c.send_mu);
    sent = c.sent;
  }
  uk::MutexLock l(&c.mu);
  return {{"conn", c.id},
          {"kernel", c.tx->spec->name},
          {"peer", c.rx->spec->name},
          {"local", c.local},
          {"foreign", c.foreign},
          {"cipher", c.opts.cipher},
          {"version", c.opts.version},
          {"personality", c.opts.personality},
          {"tx-session", c.tx_session},
          {"rx-session", c.rx_session},
          {"sent", sent},
          {"received", c.received},
          {"mismatches", c.mismatches}};
}

// Stops the connection: wakes the reader and any sender (shutdown), joins
// the reader, closes both descriptors.
void shut(Conn& c) {
  uk_shutdown(c.tx->p, c.tx_fd, SHUT_RDWR);
  uk_shutdown(c.rx->p, c.rx_fd, SHUT_RDWR);
  if (c.reader.joinable()) c.reader.join();
  uk::MutexLock l(&c.send_mu);  // waits out a sender
  if (c.closed) return;
  c.closed = true;
  uk_close(c.tx->p, c.tx_fd);
  uk_close(c.rx->p, c.rx_fd);
}

}  // namespace

int ConnTable::open(LabKernel& tx, LabKernel& rx, const ConnOptions& o,
                    json* result, std::string* msg) {
  if (o.cipher != "aes128-gcm" && o.cipher != "aes256-gcm" &&
      o.cipher != "chacha20-poly1305") {
    *msg = "unknown cipher '" + o.cipher + "' (aes128-gcm, aes256-gcm, chacha20-poly1305)";
    return EINVAL;
  }
  if (o.version != "1.2" && o.version != "1.3") {
    *msg = "unknown TLS version '" + o.version + "' (1.2, 1.3)";
    return EINVAL;
  }
  if (o.personality != "freebsd" && o.personality != "linux") {
    *msg = "unknown personality '" + o.personality + "' (freebsd, linux)";
    return EINVAL;
  }
  sockaddr_in sin{};
  sin.sin_family = AF_INET;
  if (!peer_address(tx, rx, &sin.sin_addr)) {
    *msg = "kernel '" + rx.spec->name + "' has no address to connect to";
    return EHOSTUNREACH;
  }
  auto fail = [&](const std::string& what, int e) {
    *msg = what + ": " + strerror(e);
    return e;
  };
  auto c = std::make_shared<Conn>();
  c->tx = &tx;
  c->rx = &rx;
  c->opts = o;
  int lfd = uk_socket(rx.p, AF_INET, SOCK_STREAM, 0);
  if (lfd < 0) return fail("socket", errno);
  socklen_t len = sizeof sin;
  if (uk_bind(rx.p, lfd, reinterpret_cast<sockaddr*>(&sin), sizeof sin) != 0 ||
      uk_listen(rx.p, lfd, 1) != 0 ||
      uk_getsockname(rx.p, lfd, reinterpret_cast<sockaddr*>(&sin), &len) != 0) {
    int e = errno;
    uk_close(rx.p, lfd);
    return fail("listen on " + addr_port(sin) + " in " + rx.spec->name, e);
  }
  c->tx_fd = uk_socket(tx.p, AF_INET, SOCK_STREAM, 0);
  if (c->tx_fd < 0) {
    int e = errno;
    uk_close(rx.p, lfd);
    return fail("socket", e);
  }
  if (uk_connect(tx.p, c->tx_fd, reinterpret_cast<sockaddr*>(&sin), sizeof sin) != 0) {
    int e = errno;
    uk_close(rx.p, lfd);
    uk_close(tx.p, c->tx_fd);
    return fail("connect to " + addr_port(sin) + " from " + tx.spec->name, e);
  }
  c->rx_fd = uk_accept(rx.p, lfd, nullptr, nullptr);
  int accept_error = errno;
  uk_close(rx.p, lfd);
  if (c->rx_fd < 0) {
    uk_close(tx.p, c->tx_fd);
    return fail("accept", accept_error);
  }
  sockaddr_in local{}, foreign{};
  len = sizeof local;
  uk_getsockname(tx.p, c->tx_fd, reinterpret_cast<sockaddr*>(&local), &len);
  len = sizeof foreign;
  uk_getpeername(tx.p, c->tx_fd, reinterpret_cast<sockaddr*>(&foreign), &len);
  c->local = addr_port(local);
  c->foreign = addr_port(foreign);

  Keys k;
  if (getrandom(&k, sizeof k, 0) != sizeof k) memset(&k, 0x5a, sizeof k);
  bool lnx = o.personality == "linux";
  int r = lnx ? set_linux(tx.p, c->tx_fd, TLS_TX, o, k)
                : set_freebsd(tx.p, c->tx_fd, TCP_TXTLS_ENABLE, o, k);
  int e = errno;
  std::string what = lnx ? "TLS_TX" : "TCP_TXTLS_ENABLE";
  if (r == 0) {
    r = lnx ? set_linux(rx.p, c->rx_fd, TLS_RX, o, k)
              : set_freebsd(rx.p, c->rx_fd, TCP_RXTLS_ENABLE, o, k);
    e = errno;
    what = lnx ? "TLS_RX" : "TCP_RXTLS_ENABLE";
  }
  explicit_bzero(&k, sizeof k);
  if (r != 0) {
    uk_close(tx.p, c->tx_fd);
    uk_close(rx.p, c->rx_fd);
    return fail(what, e);
  }
  // The sessions just made: the TX one on the sender's 4-tuple, the RX
  // one on the receiver's (the same tuple, reversed).
  for (const uk::ktls_session_info& si : uk::ktls_session_list(*tx.p->k)) {
    if (si.direction == uk::KTLS_TX && addr_port(si.local) == c->local &&
        addr_port(si.foreign) == c->foreign)
      c->tx_session = si.id;
  }
  for (const uk::ktls_session_info& si : uk::ktls_session_list(*rx.p->k)) {
    if (si.direction == uk::KTLS_RX && addr_port(si.local) == c->foreign &&
        addr_port(si.foreign) == c->local)
      c->rx_session = si.id;
  }
  c->reader = std::thread(reader_loop, c.get());
  {
    uk::MutexLock l(&mu_);
    c->id = next_id_++;
    conns_[c->id] = c;
  }
  *result = conn_json(*c);
  return 0;
}

std::shared_ptr<Conn> ConnTable::find(int id) {
  uk::MutexLock l(&mu_);
  auto it = conns_.find(id);
  return it == conns_.end() ? nullptr : it->second;
}

int ConnTable::send(int id, uint64_t bytes, json* result, std::string* msg) {
  std::shared_ptr<Conn> c = find(id);
  if (c == nullptr) {
    *msg = "no connection " + std::to_string(id);
    return ENOENT;
  }
  uint64_t target;
  {
    uk::MutexLock l(&c->send_mu);
    if (c->closed) {
      *msg = "connection " + std::to_string(id) + " is closed";
      return ENOTCONN;
    }
    std::vector<uint8_t> buf(64 * 1024);
    uint64_t left = bytes;
    while (left > 0) {
      size_t n = left < buf.size() ? left : buf.size();
      for (size_t i = 0; i < n; i++) buf[i] = conn_pattern(c->sent + i);
      ssize_t w = uk_send(c->tx->p, c->tx_fd, buf.data(), n, 0);
      if (w < 0) {
        if (errno == EINTR) continue;
        int e = errno;
        *msg = "send on connection " + std::to_string(id) + ": " + strerror(e);
        return e;
      }
      c->sent += w;
      left -= w;
    }
    target = c->sent;
  }
  // Wait until the receiver has checked everything sent so far.
  {
    uk::MutexLock l(&c->mu);
    auto deadline = absl::Now() + absl::Seconds(60);
    while (c->received < target && !c->eof) {
      if (c->cv.WaitWithTimeout(&c->mu, deadline - absl::Now()) &&
          absl::Now() >= deadline)
        break;
    }
    if (c->received < target) {
      int e = c->eof ? (c->rx_error ? c->rx_error : ECONNRESET) : ETIMEDOUT;
      *msg = "connection " + std::to_string(id) + ": the receiver got " +
             std::to_string(c->received) + " of " + std::to_string(target) +
             " bytes: " + strerror(e);
      return e;
    }
  }
  *result = conn_json(*c);
  return 0;
}

int ConnTable::close(int id, std::string* msg) {
  std::shared_ptr<Conn> c;
  {
    uk::MutexLock l(&mu_);
    auto it = conns_.find(id);
    if (it == conns_.end()) {
      *msg = "no connection " + std::to_string(id);
      return ENOENT;
    }
    c = std::move(it->second);
    conns_.erase(it);
  }
  shut(*c);
  return 0;
}

json ConnTable::list() {
  std::vector<std::shared_ptr<Conn>> all;
  {
    uk::MutexLock l(&mu_);
    for (auto& [id, c] : conns_) all.push_back(c);
  }
  json out = json::array();
  for (auto& c : all) out.push_back(conn_json(*c));
  return out;
}

void ConnTable::close_all() {
  std::map<int, std::shared_ptr<Conn>> all;
  {
    uk::MutexLock l(&mu_);
    all.swap(conns_);
  }
  for (auto& [id, c] : all) shut(*c);
}

}  // namespace ukernd
