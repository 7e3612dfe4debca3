#include "tests/fuzz/ktls_rx_fuzz.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>

#include <cerrno>
#include <cstring>
#include <map>
#include <random>
#include <thread>

#include "lib/libuk/uk.h"
#include "sys/kern/kernel.h"
#include "sys/kern/uipc_ktls.h"

namespace ktls_rx_fuzz {

using ktls_test::Suite;
using ktls_test::TlsKeys;

namespace {

const std::vector<Suite>& Suites() {
  static const std::vector<Suite> v = ktls_test::RxSuites();
  return v;
}

// An expected event, with the error a socket may report instead when the
// record is still incomplete at EOF (ktls_check_rx waits for a whole record
// before the header is looked at, unless the decrypt loop is already
// running and sees it first).
struct Expect {
  Event ev;
  int alt_error = 0;
};

std::vector<Expect> ModelEx(size_t si, const uint8_t* p, size_t n) {
  const Suite& s = Suites()[si];
  const TlsKeys& k = Keys(si);
  const size_t hlen = ktls_test::HeaderLen(s);
  const size_t tlen = ktls_test::MaxTrailerLen(s);
  const bool tls13 = s.minor == TLS_MINOR_VER_THREE;
  std::vector<Expect> out;
  uint64_t seq = kSeq;
  size_t off = 0;
  while (off < n) {
    const size_t rem = n - off;
    Expect x;
    // ktls_decrypt needs tls_hlen bytes before it reads a header; less
    // than that at EOF is an incomplete record.
    if (rem < hlen) {
      x.ev.error = EMSGSIZE;
      out.push_back(x);
      break;
    }
    const uint8_t* h = p + off;
    const size_t plen = (static_cast<size_t>(h[3]) << 8) | h[4];
    const size_t tls_len = 5 + plen;
    int herr = 0;
    if (h[1] != TLS_MAJOR_VER_ONE || h[2] != ktls_test::WireMinor(s))
      herr = EINVAL;
    else if (tls13 && h[0] != TLS_RLTYPE_APP)
      herr = EINVAL;
    else if (tls_len < hlen || tls_len > hlen + TLS_MAX_MSG_SIZE_V10_2 + tlen)
      herr = EMSGSIZE;
    if (herr != 0) {
      x.ev.error = herr;
      x.ev.fatal = true;
      if (rem < tls_len) x.alt_error = EMSGSIZE;
      out.push_back(x);
      break;
    }
    if (rem < tls_len) {
      x.ev.error = EMSGSIZE;
      out.push_back(x);
      break;
    }
    if (!ktls_test::RecordLengthFitsCipher(s, plen)) {
      x.ev.error = EMSGSIZE;
    } else {
      std::string why;
      if (!ktls_test::DecryptRecord(s, k, seq, h, tls_len, &x.ev.data,
                                    &x.ev.type, &why, nullptr,
                                    /*require_minimal=*/false)) {
        x.ev.error = EBADMSG;
        x.ev.data.clear();
      }
    }
    out.push_back(std::move(x));
    seq++;
    off += tls_len;
  }
  return out;
}

std::string Hex(const std::vector<uint8_t>& v, size_t max = 24) {
  static const char* d = "0123456789abcdef";
  std::string s;
  for (size_t i = 0; i < v.size() && i < max; i++) {
    s += d[v[i] >> 4];
    s += d[v[i] & 15];
  }
  if (v.size() > max) s += "...";
  return s;
}

std::string Describe(const Event& e) {
  if (e.error != 0)
    return std::string(e.fatal ? "fatal " : "") + strerror(e.error);
  return "record type " + std::to_string(e.type) + " len " +
         std::to_string(e.data.size());
}

}  // namespace

size_t NumSuites() { return Suites().size(); }

const TlsKeys& Keys(size_t suite) {
  static const std::vector<TlsKeys>* keys = [] {
    auto* v = new std::vector<TlsKeys>(Suites().size());
    for (size_t i = 0; i < v->size(); i++)
      ktls_test::BuildTlsEnableSeeded(Suites()[i], kSeq,
                                      0x6b746c73u + static_cast<uint32_t>(i),
                                      &(*v)[i]);
    return v;
  }();
  return (*keys)[suite];
}

std::vector<Event> Model(size_t suite, const uint8_t* stream, size_t len) {
  std::vector<Event> v;
  for (auto& x : ModelEx(suite, stream, len)) v.push_back(std::move(x.ev));
  return v;
}

std::vector<uint8_t> MakeInput(size_t suite, uint8_t flags, uint8_t seed,
                               const std::vector<uint8_t>& stream) {
  std::vector<uint8_t> in(3 + stream.size());
  in[0] = static_cast<uint8_t>(suite);
  in[1] = flags;
  in[2] = seed;
  std::copy(stream.begin(), stream.end(), in.begin() + 3);
  return in;
}

std::vector<std::vector<uint8_t>> SeedInputs() {
  std::vector<std::vector<uint8_t>> seeds;
  for (size_t i = 0; i < NumSuites(); i++) {
    const Suite& s = Suites()[i];
    const TlsKeys& k = Keys(i);
    const bool tls13 = s.minor == TLS_MINOR_VER_THREE;
    const bool cbc = s.cipher == CRYPTO_AES_CBC;
    uint64_t seq = kSeq;
    auto rec = [&](uint8_t type, size_t len, size_t extra_pad) {
      auto pt = ktls_test::RandomBytes(len);
      // GCM 1.2: any explicit nonce; use the record's index.
      return ktls_test::EncryptRecord(s, k, seq, type, pt.data(), len,
                                      extra_pad, seq - kSeq);
    };
    std::vector<uint8_t> a;
    for (auto [type, len, pad] :
         {std::tuple<uint8_t, size_t, size_t>{TLS_RLTYPE_APP, 1, 0},
          {TLS_RLTYPE_APP, 0, 0},
          {0x21, 100, cbc ? 16u : (tls13 ? 7u : 0u)},
          {TLS_RLTYPE_APP, 0, 0}}) {
      auto r = rec(type, len, pad);
      a.insert(a.end(), r.begin(), r.end());
      seq++;
    }
    seq = kSeq;
    std::vector<uint8_t> b = rec(TLS_RLTYPE_APP, 16384, 0);
    seq++;
    auto b2 = rec(TLS_RLTYPE_HANDSHAKE, 300, 0);
    b.insert(b.end(), b2.begin(), b2.end());

    // A bad tag/MAC in the third record of a: EBADMSG, then the fourth.
    std::vector<uint8_t> c = a;
    size_t r0 = 5 + ((c[3] << 8) | c[4]);
    r0 += 5 + ((c[r0 + 3] << 8) | c[r0 + 4]);
    size_t r1 = 5 + ((c[r0 + 3] << 8) | c[r0 + 4]);
    c[r0 + r1 - 1] ^= 0x40;
    // A bad version after a: EINVAL, connection dropped.
    std::vector<uint8_t> d = a;
    d.insert(d.end(), {TLS_RLTYPE_APP, 3, 9, 0, 40});
    d.insert(d.end(), 40, 0);
    // a cut inside its last record: EMSGSIZE at EOF.
    std::vector<uint8_t> e(a.begin(), a.end() - 3);

    seeds.push_back(MakeInput(i, kArriveOnce | kReadWhole | kEndShutWr, 1, a));
    seeds.push_back(MakeInput(i, kArriveBytes | kReadByte | kEndShutWr, 2, a));
    seeds.push_back(MakeInput(i, kRecordLevel, 3, a));
    seeds.push_back(MakeInput(i, kArriveChunks | kReadRandom | kEndShutWr, 4, b));
    seeds.push_back(
        MakeInput(i, kArriveSplitHeaders | kReadAlternate | kEndPeerClose, 5, b));
    seeds.push_back(MakeInput(i, kRecordLevel, 6, b));
    seeds.push_back(MakeInput(i, kEnableLate | kArriveChunks, 7, c));
    seeds.push_back(MakeInput(i, kRecordLevel, 8, c));
    seeds.push_back(MakeInput(i, kEndShutRd | kReadRandom, 9, d));
    seeds.push_back(MakeInput(i, kRecordLevel, 10, d));
    seeds.push_back(MakeInput(i, kEndReaderClose | kArriveSplitHeaders, 11, e));
    seeds.push_back(MakeInput(i, kRecordLevel | kArriveSplitHeaders, 12, e));
  }
  return seeds;
}

struct Harness::RecordLevel {
  std::unique_ptr<uk::kernel> k;
  std::vector<uk::RefPtr<uk::ktls_session>> sessions;
};

Harness::Harness() = default;

Harness::~Harness() { Halt(); }

std::string Harness::Boot() {
  uk_boot_config cfg{};
  cfg.ncpus = 2;
  k_ = uk_boot(&cfg);
  if (k_ == nullptr) return std::string("uk_boot: ") + strerror(errno);
  p_ = uk_proc_create(k_, "ktls_rx_fuzz");
  listener_ = uk_socket(p_, AF_INET, SOCK_STREAM, 0);
  sockaddr_in sin{};
  sin.sin_family = AF_INET;
  sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (uk_bind(p_, listener_, reinterpret_cast<sockaddr*>(&sin), sizeof sin) != 0 ||
      uk_listen(p_, listener_, 8) != 0)
    return std::string("listener: ") + strerror(errno);

  rl_ = std::make_unique<RecordLevel>();
  uk::boot_params bp;
  bp.ncpus = 1;
  int error = 0;
  rl_->k = uk::kernel::boot(bp, &error);
  if (rl_->k == nullptr) return std::string("kernel::boot: ") + strerror(error);
  for (size_t i = 0; i < NumSuites(); i++) {
    tls_enable en = Keys(i).en;
    uk::RefPtr<uk::ktls_session> tls;
    error = uk::ktls_create_session(*rl_->k, nullptr, &en, &tls, uk::KTLS_RX);
    if (error == 0) error = uk::ktls_try_sw(tls.get(), uk::KTLS_RX);
    if (error != 0)
      return std::string(Suites()[i].name) + ": RX session: " + strerror(error);
    rl_->sessions.push_back(std::move(tls));
  }
  return "";
}

std::string Harness::Halt() {
  std::string err;
  if (rl_ != nullptr) {
    rl_->sessions.clear();
    rl_->k.reset();
    rl_.reset();
  }
  if (k_ != nullptr) {
    if (uk_halt(k_) != 0) err = std::string("uk_halt: ") + strerror(errno);
    k_ = nullptr;
    p_ = nullptr;
    listener_ = -1;
  }
  return err;
}

std::string Harness::Run(const uint8_t* data, size_t size) {
  if (size < 3) return "";
  if (k_ == nullptr) {
    std::string err = Boot();
    if (!err.empty()) return err;
  }
  size_t suite = data[0] % NumSuites();
  uint8_t flags = data[1];
  uint8_t seed = data[2];
  size_t len = std::min(size - 3, kMaxStream);
  std::string err = (flags & kRecordLevel)
                        ? RunRecords(suite, data + 3, len)
                        : RunSockets(suite, flags, seed, data + 3, len);
  if (!err.empty())
    err = std::string(Suites()[suite].name) + " flags " + std::to_string(flags) +
          " seed " + std::to_string(seed) + " len " + std::to_string(len) +
          ": " + err;
  return err;
}

// The stream walked the way ktls_decrypt walks sb_mtls: a header once
// tls_hlen bytes are there, the record once it is whole, each record in its
// own exactly sized buffer (so a read past it is an ASan report).
std::string Harness::RunRecords(size_t suite, const uint8_t* p, size_t n) {
  uk::ktls_session* tls = rl_->sessions[suite].get();
  const size_t hlen = tls->params.tls_hlen;
  std::vector<Event> got;
  uint64_t seq = kSeq;
  size_t off = 0;
  bool fatal = false;
  while (n - off >= hlen) {
    tls_record_layer hdr;
    memcpy(&hdr, p + off, sizeof hdr);
    int tls_len = 0;
    int error = uk::ktls_rx_check_header(tls, &hdr, &tls_len);
    if (error != 0) {
      Event e;
      e.error = error;
      e.fatal = fatal = true;
      got.push_back(e);
      break;
    }
    if (n - off < static_cast<size_t>(tls_len)) break;
    std::vector<uint8_t> rec(p + off, p + off + tls_len);
    tls_get_record tgr;
    memset(&tgr, 0xa5, sizeof tgr);
    Event e;
    e.error = uk::ktls_rx_decrypt_record(tls, rec.data(), tls_len, seq++, &tgr);
    if (e.error == 0) {
      size_t plen = ntohs(tgr.tls_length);
      if (tgr.tls_vmajor != hdr.tls_vmajor || tgr.tls_vminor != hdr.tls_vminor)
        return "tls_get_record version is not the header's";
      if (hlen + plen > static_cast<size_t>(tls_len))
        return "plaintext length " + std::to_string(plen) + " beyond the record";
      e.type = tgr.tls_type;
      e.data.assign(rec.begin() + hlen, rec.begin() + hlen + plen);
    }
    got.push_back(std::move(e));
    off += tls_len;
  }
  if (!fatal && off < n) {
    Event e;
    e.error = EMSGSIZE;
    got.push_back(e);
  }
  std::vector<Event> want = Model(suite, p, n);
  for (size_t i = 0; i < std::max(got.size(), want.size()); i++) {
    if (i >= got.size()) return "missing event " + std::to_string(i) + ": " + Describe(want[i]);
    if (i >= want.size()) return "extra event " + std::to_string(i) + ": " + Describe(got[i]);
    const Event &g = got[i], &w = want[i];
    if (g.error != w.error || g.fatal != w.fatal || g.type != w.type ||
        g.data != w.data)
      return "event " + std::to_string(i) + ": kernel " + Describe(g) + " " +
             Hex(g.data) + ", model " + Describe(w) + " " + Hex(w.data);
  }
  return "";
}

std::string Harness::RunSockets(size_t suite, uint8_t flags, uint8_t seed,
                                const uint8_t* p, size_t n) {
  const Suite& s = Suites()[suite];
  const int arrival = flags & 3;
  const int reads = (flags >> 2) & 3;
  const int ending = (flags >> 4) & 3;

  // What the reader may see: the records before the first fatal error, in
  // order; errors only from this set, each no earlier than the records
  // that precede its cause.
  std::vector<Event> goods;
  std::map<int, size_t> err_after;  // errno -> fewest records before it
  for (auto& x : ModelEx(suite, p, n)) {
    if (x.ev.error == 0) {
      goods.push_back(x.ev);
      continue;
    }
    for (int e : {x.ev.error, x.alt_error})
      if (e != 0 && !err_after.count(e)) err_after[e] = goods.size();
    if (x.ev.fatal) break;
  }

  sockaddr_in sin{};
  socklen_t sl = sizeof sin;
  uk_getsockname(p_, listener_, reinterpret_cast<sockaddr*>(&sin), &sl);
  int rd = uk_socket(p_, AF_INET, SOCK_STREAM, 0);
  if (uk_connect(p_, rd, reinterpret_cast<sockaddr*>(&sin), sizeof sin) != 0)
    return std::string("connect: ") + strerror(errno);
  int wr = uk_accept(p_, listener_, nullptr, nullptr);
  if (wr < 0) return std::string("accept: ") + strerror(errno);
  int one = 1;
  uk_setsockopt(p_, wr, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  timeval tv{10, 0};  // a read that waits this long is a hang
  uk_setsockopt(p_, rd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  const tls_enable en = Keys(suite).en;
  auto enable = [&]() -> std::string {
    tls_enable e = en;
    if (uk_setsockopt(p_, rd, IPPROTO_TCP, TCP_RXTLS_ENABLE, &e, sizeof e) != 0)
      return std::string("TCP_RXTLS_ENABLE: ") + strerror(errno);
    return "";
  };
  std::string err;
  if (!(flags & kEnableLate)) err = enable();

  bool wr_closed = false;
  std::thread writer([&] {
    std::mt19937 rng(seed);
    size_t off = 0;
    auto put = [&](size_t len) {
      len = std::min(len, n - off);
      while (len > 0) {
        ssize_t w = uk_send(p_, wr, p + off, len, 0);
        if (w <= 0) return false;  // the reader dropped the connection
        off += w;
        len -= w;
      }
      return true;
    };
    bool ok = true;
    switch (arrival) {
      case kArriveOnce:
        ok = put(n);
        break;
      case kArriveBytes:
        while (ok && off < n && off < 512) ok = put(1);
        if (ok) ok = put(n);
        break;
      case kArriveChunks:
        while (ok && off < n) ok = put(1 + rng() % 1500);
        break;
      case kArriveSplitHeaders:
        while (ok && off < n) {
          size_t rlen = n - off >= 5 ? 5 + ((p[off + 3] << 8) | p[off + 4]) : n - off;
          ok = put(2) && put(3) && put(rlen - 5);
        }
        break;
    }
    (void)ok;
    if (ending == 1) {
      uk_close(p_, wr);
      wr_closed = true;
    } else {
      uk_shutdown(p_, wr, SHUT_WR);
    }
  });

  if (err.empty() && (flags & kEnableLate)) {
    if (n > 0) {
      pollfd pfd{rd, POLLIN, 0};
      uk_poll(p_, &pfd, 1, 2000);
    }
    err = enable();
  }

  std::mt19937 rng(seed * 31u + 7u);
  const size_t stop_at = ending >= 2 ? seed % (goods.size() + 1) : SIZE_MAX;
  size_t next = 0;
  bool inrec = false, seen_err = false;
  std::vector<uint8_t> cur, buf(20000);
  int calls = 0;
  while (err.empty()) {
    if (!inrec && next == stop_at) break;
    if (!inrec && next == goods.size() && !err_after.empty() && seen_err) break;
    if (++calls > 400000) {
      err = "too many reads";
      break;
    }
    size_t want = 20000;
    switch (reads) {
      case 1: want = 1; break;
      case 2: want = 1 + rng() % 300; break;
      case 3: want = (calls & 1) ? 7 : 20000; break;
    }
    alignas(cmsghdr) char cbuf[CMSG_SPACE(sizeof(tls_get_record)) + 16];
    iovec iov{buf.data(), want};
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = cbuf;
    msg.msg_controllen = sizeof cbuf;
    ssize_t rv = uk_recvmsg(p_, rd, &msg, 0);
    if (rv < 0) {
      int e = errno;
      if (e == EAGAIN) {
        err = "read hangs after " + std::to_string(next) + " of " +
              std::to_string(goods.size()) + " records";
      } else if (inrec) {
        err = std::string("error inside a record: ") + strerror(e);
      } else if (!err_after.count(e)) {
        err = std::string("unexpected error ") + strerror(e) + " after " +
              std::to_string(next) + " records";
      } else if (next < err_after[e]) {
        err = std::string(strerror(e)) + " after " + std::to_string(next) +
              " records, before the " + std::to_string(err_after[e]) +
              " that precede its cause";
      }
      seen_err = true;
      continue;
    }
    cmsghdr* cm = CMSG_FIRSTHDR(&msg);
    if (rv == 0 && cm == nullptr) {
      if (inrec || next < goods.size())
        err = "EOF after " + std::to_string(next) + " of " +
              std::to_string(goods.size()) + " records";
      else if (!err_after.empty() && !seen_err)
        err = "EOF without the error the stream calls for";
      break;
    }
    if (!inrec) {
      if (cm == nullptr) {
        err = "a record without TLS_GET_RECORD";
        break;
      }
      if (next >= goods.size()) {
        err = "a record the stream does not hold";
        break;
      }
      tls_get_record tgr;
      if (cm->cmsg_level != IPPROTO_TCP || cm->cmsg_type != TLS_GET_RECORD ||
          cm->cmsg_len != CMSG_LEN(sizeof tgr)) {
        err = "bad cmsg";
        break;
      }
      memcpy(&tgr, CMSG_DATA(cm), sizeof tgr);
      const Event& g = goods[next];
      if (tgr.tls_type != g.type || tgr.tls_vmajor != TLS_MAJOR_VER_ONE ||
          tgr.tls_vminor != ktls_test::WireMinor(s) ||
          ntohs(tgr.tls_length) != g.data.size()) {
        err = "record " + std::to_string(next) + ": cmsg type " +
              std::to_string(tgr.tls_type) + " len " +
              std::to_string(ntohs(tgr.tls_length)) + ", want " + Describe(g);
        break;
      }
      if (rv == 0) {  // an empty record
        if (!g.data.empty() || (msg.msg_flags & MSG_EOR)) {
          err = "empty read for a non-empty record";
          break;
        }
        next++;
        continue;
      }
      inrec = true;
      cur.clear();
    } else if (cm != nullptr) {
      err = "cmsg in the middle of a record";
      break;
    }
    cur.insert(cur.end(), buf.begin(), buf.begin() + rv);
    const Event& g = goods[next];
    if (msg.msg_flags & MSG_EOR) {
      if (cur != g.data) {
        err = "record " + std::to_string(next) + " data differs: " + Hex(cur) +
              " vs " + Hex(g.data);
        break;
      }
      inrec = false;
      next++;
    } else if (cur.size() >= g.data.size()) {
      err = "record " + std::to_string(next) + " without MSG_EOR";
      break;
    }
  }

  // shutdown(SHUT_RD) discards what is queued, decrypted or not; on a
  // connection already dropped it is ENOTCONN and discards nothing (as
  // FreeBSD's soshutdown).
  if (err.empty() && ending == 2 && uk_shutdown(p_, rd, SHUT_RD) == 0) {
    for (int i = 0; i < 3 && err.empty(); i++) {
      alignas(cmsghdr) char cbuf[CMSG_SPACE(sizeof(tls_get_record))];
      iovec iov{buf.data(), buf.size()};
      msghdr msg{};
      msg.msg_iov = &iov;
      msg.msg_iovlen = 1;
      msg.msg_control = cbuf;
      msg.msg_controllen = sizeof cbuf;
      ssize_t rv = uk_recvmsg(p_, rd, &msg, MSG_DONTWAIT);
      if (rv > 0 || (rv == 0 && CMSG_FIRSTHDR(&msg) != nullptr))
        err = "data after shutdown(SHUT_RD)";
      else if (rv < 0 && !err_after.count(errno))
        err = std::string("after shutdown(SHUT_RD): ") + strerror(errno);
    }
  }
  // Abortive close (no TIME_WAIT), which also unblocks the writer.
  linger lg{1, 0};
  uk_setsockopt(p_, rd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
  uk_close(p_, rd);
  writer.join();
  if (!wr_closed) {
    uk_setsockopt(p_, wr, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    uk_close(p_, wr);
  }
  return err;
}

}  // namespace ktls_rx_fuzz
