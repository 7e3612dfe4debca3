// The wire between two simulated NIC ports. See wire.h for the model.
#include "sys/dev/nic_sim/wire.h"

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <limits>

#include "sys/kern/kern_kthread.h"

namespace uk {

namespace {

constexpr uint64_t kNever = std::numeric_limits<uint64_t>::max();
// A frame held back for reordering waits for the next frame at most this long
// past its own arrival time (or the one-way delay, if longer), so a held frame
// at the end of a burst is late, not lost.
constexpr uint64_t kMinHoldNs = 200'000;
// Frames delivered per lock release: bounds the time the lock is held while
// keeping the per-frame cost low at 10 Gb/s.
constexpr size_t kBatch = 256;

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

bool lower_eq(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); i++) {
    char c = a[i];
    if (c >= 'A' && c <= 'Z') c = c - 'A' + 'a';
    if (c != b[i]) return false;
  }
  return true;
}

// Splits "123.5xyz" into a non-negative number and a unit suffix.
bool split_number(std::string_view s, double* v, std::string_view* unit) {
  size_t i = 0;
  bool digits = false, dot = false;
  while (i < s.size()) {
    char c = s[i];
    if (c >= '0' && c <= '9') {
      digits = true;
    } else if (c == '.' && !dot) {
      dot = true;
    } else {
      break;
    }
    i++;
  }
  if (!digits) return false;
  std::string num(s.substr(0, i));
  char* end = nullptr;
  errno = 0;
  *v = std::strtod(num.c_str(), &end);
  if (errno != 0 || end != num.c_str() + num.size() || !std::isfinite(*v))
    return false;
  *unit = s.substr(i);
  return true;
}

bool parse_prob(std::string_view s, double* out) {
  double v;
  std::string_view unit;
  if (!split_number(s, &v, &unit)) return false;
  if (unit == "%") v /= 100;
  else if (!unit.empty()) return false;
  if (v < 0 || v > 1) return false;
  *out = v;
  return true;
}

bool parse_u64(std::string_view s, uint64_t* out) {
  if (s.empty() || s.size() > 19) return false;
  uint64_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
    v = v * 10 + (c - '0');
  }
  *out = v;
  return true;
}

// qlen: frames ("1000") or bytes ("65536B", "64KB", "1MB"; binary multiples,
// as buffer sizes are usually given).
bool parse_qlen(std::string_view s, uint64_t* frames, uint64_t* bytes) {
  double v;
  std::string_view unit;
  if (!split_number(s, &v, &unit)) return false;
  if (unit.empty()) {
    if (v != std::floor(v) || v > 1e12) return false;
    *frames = static_cast<uint64_t>(v);
    *bytes = 0;
    return true;
  }
  double mult;
  if (lower_eq(unit, "b")) mult = 1;
  else if (lower_eq(unit, "kb")) mult = 1024;
  else if (lower_eq(unit, "mb")) mult = 1024 * 1024;
  else if (lower_eq(unit, "gb")) mult = 1024.0 * 1024 * 1024;
  else return false;
  double b = v * mult;
  if (b > 1e15) return false;
  *bytes = static_cast<uint64_t>(b);
  *frames = 0;
  return true;
}

std::string fmt_double(double v) {
  char buf[64];
  snprintf(buf, sizeof buf, "%.10g", v);
  return buf;
}

}  // namespace

int parse_bandwidth(std::string_view s, uint64_t* bps) {
  double v;
  std::string_view unit;
  if (!split_number(s, &v, &unit)) return EINVAL;
  // "10gbit", "10gbps" and "10g" alike.
  for (std::string_view suffix : {"bit/s", "bps", "bit", "b/s"}) {
    if (unit.size() >= suffix.size() &&
        lower_eq(unit.substr(unit.size() - suffix.size()), suffix)) {
      unit.remove_suffix(suffix.size());
      break;
    }
  }
  double mult;
  if (unit.empty()) mult = 1;
  else if (lower_eq(unit, "k")) mult = 1e3;
  else if (lower_eq(unit, "m")) mult = 1e6;
  else if (lower_eq(unit, "g")) mult = 1e9;
  else if (lower_eq(unit, "t")) mult = 1e12;
  else return EINVAL;
  double b = v * mult;
  if (b > 1e15) return EINVAL;  // 1 Pb/s: beyond any NIC, likely a typo
  if (b != 0 && b < 1) return EINVAL;
  *bps = static_cast<uint64_t>(std::llround(b));
  return 0;
}

int parse_duration_ns(std::string_view s, uint64_t* ns) {
  double v;
  std::string_view unit;
  if (!split_number(s, &v, &unit)) return EINVAL;
  double mult;
  if (unit.empty() || lower_eq(unit, "ns")) mult = 1;
  else if (lower_eq(unit, "us")) mult = 1e3;
  else if (lower_eq(unit, "ms")) mult = 1e6;
  else if (lower_eq(unit, "s")) mult = 1e9;
  else return EINVAL;
  double d = v * mult;
  if (d > 3600e9) return EINVAL;  // an hour of one-way delay is a typo
  *ns = static_cast<uint64_t>(std::llround(d));
  return 0;
}

std::string format_bandwidth(uint64_t bps) {
  if (bps == 0) return "0";
  static const struct {
    uint64_t mult;
    const char* unit;
  } units[] = {{1000000000000ull, "t"}, {1000000000, "g"}, {1000000, "m"}, {1000, "k"}};
  for (const auto& u : units) {
    if (bps >= u.mult) {
      if (bps % u.mult == 0) return std::to_string(bps / u.mult) + u.unit;
      return fmt_double(static_cast<double>(bps) / u.mult) + u.unit;
    }
  }
  return std::to_string(bps);
}

std::string format_duration_ns(uint64_t ns) {
  if (ns == 0) return "0";
  if (ns % 1000000000 == 0) return std::to_string(ns / 1000000000) + "s";
  if (ns % 1000000 == 0) return std::to_string(ns / 1000000) + "ms";
  if (ns % 1000 == 0) return std::to_string(ns / 1000) + "us";
  return std::to_string(ns) + "ns";
}

int wire_params_parse(std::string_view s, WireParams* out, std::string* err,
                      bool* seed_given) {
  WireParams p = *out;
  bool seeded = false;
  auto fail = [&](std::string msg) {
    if (err) *err = std::move(msg);
    return EINVAL;
  };
  size_t i = 0;
  while (i < s.size()) {
    while (i < s.size() && (s[i] == ' ' || s[i] == '\t' || s[i] == ',')) i++;
    if (i >= s.size()) break;
    size_t j = i;
    while (j < s.size() && s[j] != ' ' && s[j] != '\t' && s[j] != ',') j++;
    std::string_view word = s.substr(i, j - i);
    i = j;
    size_t eq = word.find('=');
    if (eq == std::string_view::npos)
      return fail("wire: \"" + std::string(word) + "\": expected key=value");
    std::string_view key = trim(word.substr(0, eq));
    std::string_view val = trim(word.substr(eq + 1));
    std::string k(key), v(val);
    auto bad = [&](const char* what) {
      return fail("wire: " + k + "=" + v + ": " + what);
    };
    if (val.empty()) return bad("missing value");
    if (key == "bw") {
      if (parse_bandwidth(val, &p.bw_bps) != 0)
        return bad("bad bandwidth (bits/s, e.g. 10g, 100m, 0 for unlimited)");
    } else if (key == "delay") {
      if (parse_duration_ns(val, &p.delay_ns) != 0)
        return bad("bad delay (e.g. 20us, 1ms, 0)");
    } else if (key == "loss") {
      if (!parse_prob(val, &p.loss)) return bad("probability must be in [0,1]");
    } else if (key == "reorder") {
      if (!parse_prob(val, &p.reorder)) return bad("probability must be in [0,1]");
    } else if (key == "dup") {
      if (!parse_prob(val, &p.dup)) return bad("probability must be in [0,1]");
    } else if (key == "qlen") {
      if (!parse_qlen(val, &p.qlen_frames, &p.qlen_bytes))
        return bad("bad queue limit (frames, or bytes as 65536B, 64KB, 1MB; 0 = none)");
    } else if (key == "seed") {
      if (!parse_u64(val, &p.seed)) return bad("seed must be an unsigned integer");
      seeded = true;
    } else if (key == "overhead") {
      uint64_t o;
      if (!parse_u64(val, &o) || o > 1000) return bad("overhead must be 0..1000 bytes");
      p.overhead = static_cast<uint32_t>(o);
    } else {
      return fail("wire: unknown parameter \"" + k +
                  "\" (known: bw delay loss reorder dup qlen overhead seed)");
    }
  }
  *out = p;
  if (seed_given) *seed_given = seeded;
  return 0;
}

std::string wire_params_format(const WireParams& p) {
  std::string s = "bw=" + format_bandwidth(p.bw_bps) +
                  " delay=" + format_duration_ns(p.delay_ns) +
                  " loss=" + fmt_double(p.loss) +
                  " reorder=" + fmt_double(p.reorder) + " dup=" + fmt_double(p.dup);
  if (p.qlen_bytes) s += " qlen=" + std::to_string(p.qlen_bytes) + "B";
  else s += " qlen=" + std::to_string(p.qlen_frames);
  if (p.overhead) s += " overhead=" + std::to_string(p.overhead);
  s += " seed=" + std::to_string(p.seed);
  return s;
}

uint64_t Wire::now_ns() {
  return static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(
          std::chrono::steady_clock::now().time_since_epoch())
          .count());
}

std::shared_ptr<Wire> Wire::Create(const WireParams& p) {
  std::shared_ptr<Wire> w(new Wire(p));
  w->thread_ = std::thread([raw = w.get()] { raw->run(); });
  kthread_set_name(w->thread_, "wire");
  return w;
}

Wire::Wire(const WireParams& p) {
  MutexLock l(&mu_);
  p_ = p;
  reseed_locked();
}

Wire::~Wire() {
  {
    MutexLock l(&mu_);
    stop_ = true;
    cv_.SignalAll();
  }
  if (thread_.joinable()) thread_.join();
}

void Wire::reseed_locked() {
  for (int d = 0; d < 2; d++) dir_[d].rng.seed(p_.seed + d);
}

// A uniform double in [0,1) from 53 random bits: the same on every host,
// unlike std::uniform_real_distribution, whose algorithm is unspecified.
double Wire::draw(Dir& d) {
  return static_cast<double>(d.rng() >> 11) * 0x1.0p-53;
}

int Wire::attach(int side, RxFn rx) {
  if (!rx) return attach_owned(side, nullptr);
  return attach_owned(side, [rx = std::move(rx)](std::vector<uint8_t>&& f,
                                                 uint64_t at) {
    rx(f.data(), f.size(), at);
  });
}

int Wire::attach_owned(int side, RxOwnFn rx) {
  if (side != 0 && side != 1) return EINVAL;
  Port& pt = port_[side];
  MutexLock l(&pt.cb_mu);
  if (pt.attached.load()) return EBUSY;
  pt.rx = std::move(rx);
  pt.attached.store(true);
  return 0;
}

void Wire::detach(int side) {
  if (side != 0 && side != 1) return;
  Port& pt = port_[side];
  // Taking cb_mu waits out a callback in progress; later deliveries see
  // attached == false and drop.
  MutexLock l(&pt.cb_mu);
  pt.attached.store(false);
  pt.rx = nullptr;
}

bool Wire::attached(int side) const {
  return (side == 0 || side == 1) && port_[side].attached.load();
}

void Wire::push_locked(Event e) {
  bool wake = e.at_ns < sleep_until_;
  q_.push(std::move(e));
  if (wake) cv_.Signal();
}

int Wire::transmit(int side, const uint8_t* frame, size_t len) {
  return transmit(side, std::vector<uint8_t>(frame, frame + len));
}

int Wire::transmit(int side, std::vector<uint8_t>&& buf) {
  if (side != 0 && side != 1) return EINVAL;
  const uint8_t* frame = buf.data();
  const size_t len = buf.size();
  const int to = 1 - side;
  uint64_t now = now_ns();
  MutexLock l(&mu_);
  Dir& d = dir_[side];
  d.st.tx_frames++;
  d.st.tx_bytes += len;
  // Three draws per offered frame, always in this order, so frame i of a
  // direction meets the same fate under the same seed whatever the timing.
  const double u_loss = draw(d), u_reorder = draw(d), u_dup = draw(d);

  while (!d.serialising.empty() && d.serialising.front().first <= now) {
    d.queued_bytes -= d.serialising.front().second;
    d.serialising.pop_front();
  }
  if ((p_.qlen_frames && d.serialising.size() >= p_.qlen_frames) ||
      (p_.qlen_bytes && d.queued_bytes + len > p_.qlen_bytes)) {
    d.st.drops_queue++;
    return ENOBUFS;
  }
  uint64_t done = now;
  if (p_.bw_bps) {
    uint64_t start = std::max(now, d.link_free_ns);
    uint64_t bits = (static_cast<uint64_t>(len) + p_.overhead) * 8;
    // Rounded up so that a long burst never beats the configured rate.
    uint64_t tx_ns = static_cast<uint64_t>(
        (static_cast<unsigned __int128>(bits) * 1000000000u + p_.bw_bps - 1) /
        p_.bw_bps);
    done = start + tx_ns;
    d.link_free_ns = done;
    d.serialising.emplace_back(done, static_cast<uint32_t>(len));
    d.queued_bytes += len;
    d.st.max_queue_bytes = std::max(d.st.max_queue_bytes, d.queued_bytes);
  }
  if (u_loss < p_.loss || (d.drop_fn && d.drop_fn(frame, len))) {
    d.st.drops_loss++;
    return 0;
  }
  if (!port_[to].attached.load()) {
    d.st.drops_detached++;
    return 0;
  }
  Event e{done + p_.delay_ns, 0, to, std::move(buf)};
  const bool dup = u_dup < p_.dup;
  if (d.held) {
    // The held frame goes right after this one: that is the reordering.
    Event h = std::move(*d.held);
    d.held.reset();
    e.seq = seq_++;
    h.at_ns = std::max(h.at_ns, e.at_ns);
    h.seq = seq_++;
    in_flight_++;
    if (dup) {
      Event c = e;
      c.seq = seq_++;
      d.st.dups++;
      in_flight_++;
      push_locked(std::move(c));
    }
    push_locked(std::move(e));
    push_locked(std::move(h));
    d.st.reorders++;
    return 0;
  }
  if (dup) {
    Event c = e;
    c.seq = seq_++;
    d.st.dups++;
    in_flight_++;
    push_locked(std::move(c));
  }
  in_flight_++;
  if (u_reorder < p_.reorder) {
    // Held until the next frame of this direction is scheduled, or until
    // the deadline below if none comes.
    e.seq = seq_++;
    uint64_t deadline = e.at_ns + std::max(kMinHoldNs, p_.delay_ns);
    d.held = std::move(e);
    d.held_deadline = deadline;
    if (deadline < sleep_until_) cv_.Signal();
    return 0;
  }
  e.seq = seq_++;
  if (e.at_ns <= now && in_flight_ == 1 && q_.empty() && !dir_[0].held && !dir_[1].held) {
    // Due now and alone on the wire: nothing can be overtaken, so the
    // sender's thread delivers it (mu_ dropped, as the wire thread does).
    const size_t n = e.frame.size();
    mu_.Unlock();
    const bool ok = deliver(e);
    mu_.Lock();
    if (ok) {
      d.st.rx_frames++;
      d.st.rx_bytes += n;
    } else {
      d.st.drops_detached++;
    }
    if (--in_flight_ == 0) idle_cv_.SignalAll();
    return 0;
  }
  push_locked(std::move(e));
  return 0;
}

bool Wire::deliver(Event& e) {
  Port& pt = port_[e.to_side];
  MutexLock cl(&pt.cb_mu);
  if (!pt.attached.load() || !pt.rx) return false;
  pt.rx(std::move(e.frame), e.at_ns);
  return true;
}

void Wire::run() {
  std::vector<Event> batch;
  batch.reserve(kBatch);
  MutexLock l(&mu_);
  for (;;) {
    if (stop_) break;
    uint64_t now = now_ns();
    // Held frames nobody overtook in time go out late but in order.
    for (Dir& d : dir_) {
      if (d.held && d.held_deadline <= now) {
        q_.push(std::move(*d.held));
        d.held.reset();
      }
    }
    while (!q_.empty() && q_.top().at_ns <= now && batch.size() < kBatch) {
      // The frame's bytes move out; pop() only compares times and seqs.
      batch.push_back(std::move(const_cast<Event&>(q_.top())));
      q_.pop();
    }
    if (!batch.empty()) {
      sleep_until_ = 0;
      mu_.Unlock();
      uint64_t delivered[2][2] = {};  // [side][frames, bytes]
      uint64_t gone[2] = {};
      for (Event& e : batch) {
        const size_t n = e.frame.size();
        if (deliver(e)) {
          delivered[e.to_side][0]++;
          delivered[e.to_side][1] += n;
        } else {
          gone[e.to_side]++;
        }
      }
      size_t n = batch.size();
      batch.clear();
      mu_.Lock();
      for (int to = 0; to < 2; to++) {
        WireDirStats& st = dir_[1 - to].st;
        st.rx_frames += delivered[to][0];
        st.rx_bytes += delivered[to][1];
        st.drops_detached += gone[to];
      }
      in_flight_ -= n;
      if (in_flight_ == 0) idle_cv_.SignalAll();
      continue;
    }
    uint64_t next = q_.empty() ? kNever : q_.top().at_ns;
    for (Dir& d : dir_)
      if (d.held) next = std::min(next, d.held_deadline);
    sleep_until_ = next;
    if (next == kNever) {
      cv_.Wait(&mu_);
    } else {
      cv_.WaitWithTimeout(&mu_, absl::Nanoseconds(next - now));
    }
  }
}

int Wire::set_params(std::string_view s, std::string* err) {
  MutexLock l(&mu_);
  bool seeded = false;
  WireParams p = p_;
  if (int e = wire_params_parse(s, &p, err, &seeded)) return e;
  p_ = p;
  if (seeded) reseed_locked();
  return 0;
}

void Wire::set_params(const WireParams& p, bool reseed) {
  MutexLock l(&mu_);
  p_ = p;
  if (reseed) reseed_locked();
}

WireParams Wire::params() const {
  MutexLock l(&mu_);
  return p_;
}

void Wire::set_drop_filter(int from_side, DropFn fn) {
  if (from_side != 0 && from_side != 1) return;
  MutexLock l(&mu_);
  dir_[from_side].drop_fn = std::move(fn);
}

WireDirStats Wire::stats(int from_side) const {
  MutexLock l(&mu_);
  if (from_side != 0 && from_side != 1) return {};
  return dir_[from_side].st;
}

size_t Wire::in_flight() const {
  MutexLock l(&mu_);
  return in_flight_;
}

bool Wire::drain(uint64_t timeout_ns) {
  uint64_t deadline = now_ns() + timeout_ns;
  MutexLock l(&mu_);
  while (in_flight_ != 0) {
    uint64_t now = now_ns();
    if (now >= deadline) return false;
    idle_cv_.WaitWithTimeout(&mu_, absl::Nanoseconds(deadline - now));
  }
  return true;
}

}  // namespace uk
