// Packet capture into pcap files. See bpf.h.
#include "sys/net/bpf.h"

#include <cerrno>
#include <chrono>
#include <cstring>
#include <ctime>
#include <algorithm>
#include <vector>

#include "sys/sys/mbuf.h"

namespace uk {

namespace {

struct pcap_file_header {
  uint32_t magic;
  uint16_t version_major;
  uint16_t version_minor;
  int32_t thiszone;
  uint32_t sigfigs;
  uint32_t snaplen;
  uint32_t linktype;
};
static_assert(sizeof(pcap_file_header) == 24);

struct pcap_rec_header {
  uint32_t ts_sec;
  uint32_t ts_frac;  // us or ns, per the magic
  uint32_t incl_len;
  uint32_t orig_len;
};
static_assert(sizeof(pcap_rec_header) == 16);

constexpr size_t kEtherHdrLen = 14;

}  // namespace

uint64_t bpf_realtime_ns() {
  timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000000000u + ts.tv_nsec;
}

int64_t bpf_steady_to_realtime_ns() {
  int64_t steady = std::chrono::duration_cast<std::chrono::nanoseconds>(
                       std::chrono::steady_clock::now().time_since_epoch())
                       .count();
  return static_cast<int64_t>(bpf_realtime_ns()) - steady;
}

PcapWriter::~PcapWriter() { close(); }

int PcapWriter::open(const std::string& path, const bpf_capture_opts& o) {
  if (f_) return EBUSY;
  FILE* f = fopen(path.c_str(), "wb");
  if (!f) return errno ? errno : EIO;
  pcap_file_header h{o.nanosecond ? PCAP_MAGIC_NSEC : PCAP_MAGIC_USEC,
                     2, 4, 0, 0, o.snaplen, LINKTYPE_ETHERNET};
  if (fwrite(&h, sizeof h, 1, f) != 1) {
    int e = errno ? errno : EIO;
    fclose(f);
    return e;
  }
  f_ = f;
  o_ = o;
  error_ = 0;
  return 0;
}

int PcapWriter::write(uint64_t ts_ns, const uint8_t* const* parts,
                      const size_t* lens, int nparts) {
  if (!f_) return EBADF;
  size_t total = 0;
  for (int i = 0; i < nparts; i++) total += lens[i];
  size_t incl = total < o_.snaplen ? total : o_.snaplen;
  pcap_rec_header r;
  r.ts_sec = static_cast<uint32_t>(ts_ns / 1000000000u);
  r.ts_frac = static_cast<uint32_t>(o_.nanosecond ? ts_ns % 1000000000u
                                                  : ts_ns % 1000000000u / 1000u);
  r.incl_len = static_cast<uint32_t>(incl);
  r.orig_len = static_cast<uint32_t>(total);
  bool ok = fwrite(&r, sizeof r, 1, f_) == 1;
  size_t left = incl;
  for (int i = 0; ok && i < nparts && left > 0; i++) {
    size_t n = lens[i] < left ? lens[i] : left;
    ok = fwrite(parts[i], 1, n, f_) == n;
    left -= n;
  }
  if (!ok && error_ == 0) error_ = errno ? errno : EIO;
  return ok ? 0 : error_;
}

int PcapWriter::close() {
  if (!f_) return 0;
  int e = error_;
  if (fclose(f_) != 0 && e == 0) e = errno ? errno : EIO;
  f_ = nullptr;
  return e;
}

bpf_if::~bpf_if() {
  MutexLock l(&mu_);
  w_.close();
}

int bpf_if::start(const std::string& path, const bpf_capture_opts& o) {
  if (o.snaplen < kEtherHdrLen) return EINVAL;
  MutexLock l(&mu_);
  if (w_.is_open() || sink_) return EBUSY;
  if (int e = w_.open(path, o)) return e;
  path_ = path;
  packets_.store(0);
  bytes_.store(0);
  active_.store(true, std::memory_order_release);
  return 0;
}

int bpf_if::start_sink(Sink sink, uint32_t snaplen) {
  if (snaplen < kEtherHdrLen || !sink) return EINVAL;
  MutexLock l(&mu_);
  if (w_.is_open() || sink_) return EBUSY;
  sink_ = std::move(sink);
  sink_snaplen_ = snaplen;
  path_.clear();
  packets_.store(0);
  bytes_.store(0);
  active_.store(true, std::memory_order_release);
  return 0;
}

int bpf_if::stop() {
  MutexLock l(&mu_);
  if (sink_) {
    active_.store(false, std::memory_order_release);
    sink_ = nullptr;
    return 0;
  }
  if (!w_.is_open()) return ENOENT;
  active_.store(false, std::memory_order_release);
  return w_.close();
}

std::string bpf_if::path() const {
  MutexLock l(&mu_);
  if (sink_) return "(streamed to a reader)";
  return w_.is_open() ? path_ : std::string();
}

void bpf_if::tap(const uint8_t* const* parts, const size_t* lens, int nparts,
                 uint64_t ts_ns) {
  if (!active()) return;
  if (ts_ns == 0) ts_ns = bpf_realtime_ns();
  size_t total = 0;
  for (int i = 0; i < nparts; i++) total += lens[i];
  MutexLock l(&mu_);
  if (sink_) {
    // One contiguous frame for the sink (drivers tap in one piece; a
    // header built apart is the rare case).
    size_t caplen = total < sink_snaplen_ ? total : sink_snaplen_;
    if (nparts == 1) {
      sink_(ts_ns, parts[0], caplen, total);
    } else {
      std::vector<uint8_t> flat;
      flat.reserve(caplen);
      for (int i = 0; i < nparts && flat.size() < caplen; i++) {
        size_t n = std::min(lens[i], caplen - flat.size());
        flat.insert(flat.end(), parts[i], parts[i] + n);
      }
      sink_(ts_ns, flat.data(), caplen, total);
    }
    packets_.fetch_add(1, std::memory_order_relaxed);
    bytes_.fetch_add(total, std::memory_order_relaxed);
    return;
  }
  if (!w_.is_open()) return;  // stopped meanwhile
  if (w_.write(ts_ns, parts, lens, nparts) == 0) {
    packets_.fetch_add(1, std::memory_order_relaxed);
    bytes_.fetch_add(total, std::memory_order_relaxed);
  }
}

void bpf_tap(bpf_if* b, const uint8_t* frame, size_t len, uint64_t ts_ns) {
  if (!bpf_peers_present(b)) return;
  const uint8_t* parts[1] = {frame};
  size_t lens[1] = {len};
  b->tap(parts, lens, 1, ts_ns);
}

void bpf_mtap(bpf_if* b, const mbuf* m, uint64_t ts_ns) {
  if (!bpf_peers_present(b) || m == nullptr) return;
  unsigned len = m_length(m, nullptr);
  std::vector<uint8_t> flat(len);
  if (len) m_copydata(m, 0, static_cast<int>(len), flat.data());
  bpf_tap(b, flat.data(), flat.size(), ts_ns);
}

}  // namespace uk
