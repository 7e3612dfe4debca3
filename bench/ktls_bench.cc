// End-to-end KTLS benchmark: one JSON object with the figures of the
// performance bar (bench/README.md), each the median of interleaved
// repetitions taken in the same run, and the ratios between them.
//
//   bazel run -c opt //bench:ktls_bench -- --json
//   bazel run -c opt //bench:ktls_bench -- --quick --json
//   bazel run -c opt //bench:ktls_bench -- --sweep --svg-dir=/tmp/plots
//
// Throughput is payload bytes over wall-clock time, in Gbit/s (1e9 bit/s).
// Kernels boot with one emulated CPU (one KTLS worker) unless said
// otherwise. Copies are read from the kernel's own counters
// (kern.ipc.mbstat.*), never inferred.
#include <arpa/inet.h>
#include <fcntl.h>
#include <malloc.h>
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define UKTLS_BENCH_SANITIZER 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define UKTLS_BENCH_SANITIZER 1
#endif
#endif
#ifdef UKTLS_BENCH_SANITIZER
// From the sanitizer runtime (sanitizer/allocator_interface.h, which not
// every toolchain here installs).
extern "C" size_t __sanitizer_get_current_allocated_bytes(void);
#endif
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
// After OpenSSL: IPsec-MB defines SHA1 & co. as macros.
#include <intel-ipsec-mb.h>
#include <poll.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "bench/svg_plot.h"
#include "lib/libuk/uk.h"
#include "nlohmann/json.hpp"
#include "sys/kern/kern_proc.h"
#include "sys/kern/kernel.h"
#include "sys/kern/uipc_ktls.h"
#include "sys/opencrypto/crypto.h"
#include "sys/opencrypto/crypto_drv.h"
#include "tests/sys/kern/ktls_test_util.h"
#include "usr.sbin/ukernd/thread_cpu.h"

namespace {

using Clock = std::chrono::steady_clock;
using ktls_test::Suite;
using ktls_test::TlsKeys;
using json = nlohmann::json;

constexpr int kRecord = 16384;
constexpr size_t kMiB = 1u << 20;
constexpr double kGiB = 1024.0 * 1024.0 * 1024.0;

double Seconds(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}
double Gbps(double bytes, double secs) { return secs > 0 ? bytes * 8 / secs / 1e9 : 0; }

double CpuNow(clockid_t id) {
  timespec ts;
  clock_gettime(id, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}
double ThreadCpu() { return CpuNow(CLOCK_THREAD_CPUTIME_ID); }
double ProcessCpu() { return CpuNow(CLOCK_PROCESS_CPUTIME_ID); }

// Where a transfer's CPU time went, thread by thread: a snapshot of every
// thread's CPU clock, and the difference to a later one by thread name
// (the kernel's netisr, callout, KTLS workers ktls_thr_N, ...; the thread
// taking the snapshots as "caller"). A thread that ended in between (the
// peer thread of a figure) is not there: the figure adds it by name.
struct ThreadSplit {
  struct At {
    std::string name;
    uint64_t ns;
  };
  std::map<pid_t, At> at;
  static ThreadSplit Now() {
    ThreadSplit t;
    const pid_t self = gettid();
    for (pid_t tid : ukernd::list_tids())
      t.at[tid] = {tid == self ? "caller" : ukernd::thread_comm(tid), ukernd::thread_cpu_ns(tid)};
    return t;
  }
  // CPU seconds per GiB of |bytes| since |before|, by thread name (threads
  // of one name summed; none that used no CPU), with the peer thread's
  // |peer_cpu| seconds under |peer|.
  std::map<std::string, double> Since(const ThreadSplit& before, size_t bytes, const char* peer,
                                      double peer_cpu) const {
    const double gib = static_cast<double>(bytes) / kGiB;
    std::map<std::string, double> out;
    for (const auto& [tid, a] : at) {
      auto b = before.at.find(tid);
      uint64_t ns = a.ns - (b == before.at.end() ? 0 : std::min(a.ns, b->second.ns));
      if (ns > 0) out[a.name] += static_cast<double>(ns) / 1e9 / gib;
    }
    out[peer] = peer_cpu / gib;
    return out;
  }
};

// A throughput two ways: over wall-clock time, and over the CPU time the
// measured side used (the process's CPU time less the peer thread's), which
// the other programs on a shared host disturb much less.
struct Tput {
  double gbps = NAN;
  double cpu_gbps = NAN;
  // CPU seconds per GiB of payload by thread (see ThreadSplit).
  std::map<std::string, double> thread_s_per_gib;
  std::string error;  // why there is no figure (empty when there is one)
};

// "what: strerror(errno)", taken before anything else can change errno.
std::string Why(const std::string& what) { return what + ": " + strerror(errno); }
Tput Failed(std::string error) {
  Tput t;
  t.error = std::move(error);
  return t;
}

struct Options {
  bool json = false;
  bool quick = false;
  bool sweep = false;
  std::string svg_dir;
  int reps = 5;
  size_t sendfile_bytes = 1024 * kMiB;  // the 1 GiB file
  size_t write_bytes = 1024 * kMiB;
  size_t rx_bytes = 256 * kMiB;        // pre-encrypted: held in memory
  size_t openssl_bytes = 1024 * kMiB;
  size_t wire_bytes = 256 * kMiB;
  size_t scaling_bytes = 1024 * kMiB;  // 1 MiB per connection at 1024
  size_t scaling_warm_bytes = 4 * kMiB;  // per connection, before scaling_warm's
  size_t sweep_bytes = 64 * kMiB;
  int crypto_records = 20000;
  int idle_conns = 10000;
  int setup_conns = 5000;
  int ncpus = 1;
  std::string only;  // run just this figure (for profiling)
};

double Median(std::vector<double> v) {
  if (v.empty()) return NAN;
  std::sort(v.begin(), v.end());
  size_t n = v.size();
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

const Suite kAes128Gcm13{"aes128_gcm_1_3", CRYPTO_AES_NIST_GCM_16, 16, 0,
                         TLS_MINOR_VER_THREE};

// ---------------------------------------------------------------------------
// The limit: IPsec-MB AES-128-GCM on 16 KiB buffers, one thread.


// A buffer in 2 MiB-aligned runs asked to be backed by transparent huge
// pages, as the kernel's page pool (and so the sendfile file) is: the
// cipher-over-DRAM baseline then pays the same TLB costs as sendfile.
class HugeBuffer {
 public:
  static constexpr size_t kHuge = 2 << 20;
  HugeBuffer() = default;
  explicit HugeBuffer(const std::vector<uint8_t>& bytes) : n_(bytes.size()) {
    size_t len = (n_ + kHuge - 1) & ~(kHuge - 1);
    p_.reset(static_cast<uint8_t*>(std::aligned_alloc(kHuge, len)));
    if (!p_) throw std::bad_alloc();
    (void)madvise(p_.get(), len, MADV_HUGEPAGE);
    memcpy(p_.get(), bytes.data(), n_);
  }
  const uint8_t* data() const { return p_.get(); }
  size_t size() const { return n_; }

 private:
  struct Free {
    void operator()(uint8_t* p) const { std::free(p); }
  };
  std::unique_ptr<uint8_t, Free> p_;
  size_t n_ = 0;
};

struct RawGcm {
  RawGcm() {
    m = alloc_mb_mgr(0);
    IMB_ARCH arch;
    init_mb_mgr_auto(m, &arch);
    // aligned_alloc wants a multiple of the alignment.
    key = static_cast<gcm_key_data*>(aligned_alloc(64, (sizeof(gcm_key_data) + 63) / 64 * 64));
    static const uint8_t k[16] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16};
    IMB_AES128_GCM_PRE(m, k, key);
    buf.assign(kRecord + 16, 0x5a);
  }
  ~RawGcm() {
    free(key);
    free_mb_mgr(m);
  }
  Tput Run(bool enc, int records) {
    uint8_t iv[12] = {9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9};
    uint8_t aad[5] = {23, 3, 3, 64, 17};
    uint8_t tag[16];
    auto t0 = Clock::now();
    double c0 = ThreadCpu();
    for (int i = 0; i < records; i++) {
      memcpy(iv + 4, &i, sizeof i);
      gcm_context_data ctx;
      IMB_AES128_GCM_INIT(m, key, &ctx, iv, aad, sizeof aad);
      if (enc) {
        IMB_AES128_GCM_ENC_UPDATE(m, key, &ctx, buf.data(), buf.data(), kRecord);
        IMB_AES128_GCM_ENC_FINALIZE(m, key, &ctx, tag, 16);
      } else {
        IMB_AES128_GCM_DEC_UPDATE(m, key, &ctx, buf.data(), buf.data(), kRecord);
        IMB_AES128_GCM_DEC_FINALIZE(m, key, &ctx, tag, 16);
      }
      asm volatile("" : : "r"(tag) : "memory");
    }
    double bytes = static_cast<double>(records) * kRecord;
    return {Gbps(bytes, Seconds(t0, Clock::now())), Gbps(bytes, ThreadCpu() - c0)};
  }
  // The same encryption over a buffer as large as the sendfile file, 16 KiB
  // at a time into one reused output buffer: the plaintext comes from DRAM,
  // as sendfile's file pages do, and the output stays in cache, as the KTLS
  // worker's recycled pages do.
  Tput RunStream(const HugeBuffer& src) {
    uint8_t iv[12] = {9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9};
    uint8_t aad[5] = {23, 3, 3, 64, 17};
    uint8_t tag[16];
    auto t0 = Clock::now();
    double c0 = ThreadCpu();
    size_t n = src.size() / kRecord;
    for (size_t i = 0; i < n; i++) {
      memcpy(iv + 4, &i, 4);
      gcm_context_data ctx;
      IMB_AES128_GCM_INIT(m, key, &ctx, iv, aad, sizeof aad);
      IMB_AES128_GCM_ENC_UPDATE(m, key, &ctx, buf.data(), src.data() + i * kRecord, kRecord);
      IMB_AES128_GCM_ENC_FINALIZE(m, key, &ctx, tag, 16);
      asm volatile("" : : "r"(tag) : "memory");
    }
    double bytes = static_cast<double>(n) * kRecord;
    return {Gbps(bytes, Seconds(t0, Clock::now())), Gbps(bytes, ThreadCpu() - c0)};
  }
  IMB_MGR* m;
  gcm_key_data* key;
  std::vector<uint8_t> buf;
};

// The same work through crypto_dispatch() (driver chosen by OCF, as
// ktls_ocf's sessions are), synchronous: the callback runs before dispatch
// returns.
struct OcfGcm {
  OcfGcm() {
    uk::boot_params bp;
    bp.ncpus = 1;
    int err = 0;
    k = uk::kernel::boot(bp, &err);
    static const uint8_t key[16] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16};
    uk::crypto_session_params csp;
    csp.csp_mode = uk::CSP_MODE_AEAD;
    csp.csp_flags = uk::CSP_F_SEPARATE_OUTPUT | uk::CSP_F_SEPARATE_AAD;
    csp.csp_cipher_alg = CRYPTO_AES_NIST_GCM_16;
    csp.csp_cipher_key = key;
    csp.csp_cipher_klen = 16;
    csp.csp_ivlen = 12;
    if (k != nullptr)
      uk::crypto_newsession(*k, &ses, csp,
                            uk::CRYPTO_FLAG_HARDWARE | uk::CRYPTO_FLAG_SOFTWARE);
    buf.assign(kRecord + 16, 0x5a);
  }
  ~OcfGcm() {
    if (ses != nullptr) uk::crypto_freesession(ses);
  }
  std::string driver() const { return ses ? uk::crypto_ses2name(ses) : "none"; }
  Tput Run(int records) {
    if (ses == nullptr) return Failed("no OCF driver takes AES-128-GCM");
    static const uint8_t aad[5] = {23, 3, 3, 64, 17};
    uk::cryptop crp;
    auto t0 = Clock::now();
    double c0 = ThreadCpu();
    for (int i = 0; i < records; i++) {
      uk::crypto_initreq(&crp, ses);
      crp.crp_op = uk::CRYPTO_OP_ENCRYPT | uk::CRYPTO_OP_COMPUTE_DIGEST;
      crp.crp_flags = uk::CRYPTO_F_CBIMM | uk::CRYPTO_F_IV_SEPARATE;
      memset(crp.crp_iv, 9, 12);
      memcpy(crp.crp_iv + 4, &i, sizeof i);
      uk::crypto_use_buf(&crp, buf.data(), kRecord + 16);
      crp.crp_aad = aad;
      crp.crp_aad_length = sizeof aad;
      crp.crp_payload_length = kRecord;
      crp.crp_digest_start = kRecord;
      crp.crp_callback = [](uk::cryptop*) { return 0; };
      uk::crypto_dispatch(&crp);
      if (crp.crp_etype != 0) {
        errno = crp.crp_etype;
        return Failed(Why("crypto_dispatch"));
      }
    }
    double bytes = static_cast<double>(records) * kRecord;
    return {Gbps(bytes, Seconds(t0, Clock::now())), Gbps(bytes, ThreadCpu() - c0)};
  }
  std::unique_ptr<uk::kernel> k;
  uk::crypto_session_t ses = nullptr;
  std::vector<uint8_t> buf;
};

// ---------------------------------------------------------------------------
// Kernels, connections, counters.

// "a,b,,c" -> {"a", "b", "", "c"}; "" -> {}.
std::vector<std::string> SplitList(const std::string& s) {
  std::vector<std::string> out;
  for (size_t pos = 0; pos < s.size();) {
    size_t comma = std::min(s.find(',', pos), s.size());
    out.push_back(s.substr(pos, comma - pos));
    pos = comma + 1;
  }
  return out;
}

struct Kernel {
  // --tunables: boot tunables added to every kernel the benchmark boots
  // (after the figure's own, so they win).
  static inline std::string extra;
  // --sysctls: integer sysctls set in every kernel right after boot
  // (sysctl.conf), e.g. net.inet.tcp.sendspace, which is not a tunable.
  static inline std::string sysctls;

  explicit Kernel(int ncpus, const std::string& tunables = "") : tun(tunables) {
    if (!extra.empty()) tun += (tun.empty() ? "" : ",") + extra;
    uk_boot_config cfg{};
    cfg.ncpus = ncpus;
    cfg.tunables = tun.empty() ? nullptr : tun.c_str();
    k = uk_boot(&cfg);
    if (k == nullptr) {
      fprintf(stderr, "uk_boot%s%s%s: %s\n", tun.empty() ? "" : " (tunables \"",
              tun.c_str(), tun.empty() ? "" : "\")", strerror(errno));
      exit(1);
    }
    p = uk_proc_create(k, "bench");
    // A tunable no subsystem asked for changes nothing (the kernel says so
    // in dmesg); the run would measure something other than was asked.
    std::vector<std::string> unused = p->k->unused_tunables();
    if (!unused.empty()) {
      fprintf(stderr, "ktls_bench: --tunables: no tunable named %s\n", unused[0].c_str());
      exit(2);
    }
    if (!SetSysctls(sysctls)) exit(2);
    // lo0 carries unmapped mbufs by reference (ifconfig lo0 mextpg): what
    // a zero-copy sendfile needs from the interface.
    uk_ifconfig(k, "lo0", "mextpg");
  }
  ~Kernel() { uk_halt(k); }
  // "NAME=VALUE,...": each an integer sysctl of 4 or 8 bytes.
  bool SetSysctls(const std::string& list) const {
    for (const std::string& item : SplitList(list)) {
      if (int e = SetSysctl(item)) {
        fprintf(stderr, "ktls_bench: --sysctls: %s: %s\n", item.c_str(), strerror(e));
        return false;
      }
    }
    return true;
  }
  // "NAME=VALUE". Returns 0 or an errno.
  int SetSysctl(const std::string& item) const {
    size_t eq = item.find('=');
    if (eq == std::string::npos) return EINVAL;
    std::string name = item.substr(0, eq);
    const char* val = item.c_str() + eq + 1;
    char* end = nullptr;
    long long v = strtoll(val, &end, 0);
    if (end == val || *end != '\0') return EINVAL;
    size_t len = 0;
    if (uk_sysctlbyname(p, name.c_str(), nullptr, &len, nullptr, 0) != 0) return errno;
    int32_t v32 = static_cast<int32_t>(v);
    int64_t v64 = v;
    int rc;
    if (len == sizeof v32 && v32 == v)
      rc = uk_sysctlbyname(p, name.c_str(), nullptr, nullptr, &v32, sizeof v32);
    else if (len == sizeof v64)
      rc = uk_sysctlbyname(p, name.c_str(), nullptr, nullptr, &v64, sizeof v64);
    else
      return EINVAL;
    return rc == 0 ? 0 : errno;
  }
  uint64_t Counter(const char* name) const {
    uint64_t v = 0;
    size_t len = sizeof v;
    if (uk_sysctlbyname(p, name, &v, &len, nullptr, 0) != 0) return 0;
    return v;
  }
  int64_t Gauge(const char* name) const {
    int64_t v = 0;
    size_t len = sizeof v;
    if (uk_sysctlbyname(p, name, &v, &len, nullptr, 0) != 0) return 0;
    return v;
  }
  std::string tun;
  uk_kernel* k;
  uk_proc* p;
};

// A connected TCP pair over 127.0.0.1: sv[0] the connecting end (the
// reader / peer), sv[1] the accepted end (the KTLS end).
// False with errno set by the call that failed (nothing left open).
bool Pair(uk_proc* p, int sv[2], int listener = -1) {
  int l = listener;
  sockaddr_in sin{};
  sin.sin_family = AF_INET;
  sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof sin;
  sv[0] = sv[1] = -1;
  auto fail = [&] {
    int e = errno;
    for (int fd : {sv[0], listener < 0 ? l : -1})
      if (fd >= 0) uk_close(p, fd);
    errno = e;
    return false;
  };
  if (l < 0) {
    l = uk_socket(p, AF_INET, SOCK_STREAM, 0);
    if (l < 0 || uk_bind(p, l, reinterpret_cast<sockaddr*>(&sin), sizeof sin) != 0 ||
        uk_listen(p, l, 64) != 0)
      return fail();
  }
  uk_getsockname(p, l, reinterpret_cast<sockaddr*>(&sin), &len);
  sv[0] = uk_socket(p, AF_INET, SOCK_STREAM, 0);
  if (sv[0] < 0 || uk_connect(p, sv[0], reinterpret_cast<sockaddr*>(&sin), sizeof sin) != 0)
    return fail();
  sv[1] = uk_accept(p, l, nullptr, nullptr);
  if (sv[1] < 0) return fail();
  if (listener < 0) uk_close(p, l);
  return true;
}

// -1 with errno set on failure.
int Listener(uk_proc* p) {
  int l = uk_socket(p, AF_INET, SOCK_STREAM, 0);
  sockaddr_in sin{};
  sin.sin_family = AF_INET;
  sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (l < 0) return -1;
  if (uk_bind(p, l, reinterpret_cast<sockaddr*>(&sin), sizeof sin) != 0 ||
      uk_listen(p, l, 1024) != 0) {
    int e = errno;
    uk_close(p, l);
    errno = e;
    return -1;
  }
  return l;
}

int EnableTx(uk_proc* p, int fd, const Suite& s, TlsKeys* keys) {
  ktls_test::BuildTlsEnable(s, 0, keys);
  return uk_setsockopt(p, fd, IPPROTO_TCP, TCP_TXTLS_ENABLE, &keys->en, sizeof keys->en);
}

// Reads until EOF; returns the bytes read.
size_t Drain(uk_proc* p, int fd) {
  std::vector<char> buf(256 * 1024);
  size_t got = 0;
  for (;;) {
    ssize_t n = uk_recv(p, fd, buf.data(), buf.size(), 0);
    if (n <= 0) break;
    got += n;
  }
  return got;
}

int MakeFile(uk_proc* p, const char* path, size_t bytes) {
  int fd = uk_open(p, path, O_RDWR | O_CREAT | O_TRUNC, 0644);
  std::vector<uint8_t> chunk = ktls_test::RandomBytes(kMiB);
  for (size_t off = 0; off < bytes; off += kMiB)
    uk_pwrite(p, fd, chunk.data(), std::min(kMiB, bytes - off), off);
  return fd;
}

// Copies the kernel counted during a run, apart from the reader's copy out
// to its buffer (m_mbuftouio) and user data copied in (m_uiotombuf).
struct CopyProbe {
  explicit CopyProbe(const Kernel& k) : k(k) { Snap(a); }
  void Snap(uint64_t* s) const {
    s[0] = k.Counter("kern.ipc.mbstat.copy_bytes");
    s[1] = k.Counter("kern.ipc.mbstat.copyout_bytes");
    s[2] = k.Counter("kern.ipc.mbstat.copyin_bytes");
  }
  uint64_t Payload() const {
    uint64_t b[3];
    Snap(b);
    return (b[0] - a[0]) - (b[1] - a[1]) - (b[2] - a[2]);
  }
  const Kernel& k;
  uint64_t a[3];
};

// ---------------------------------------------------------------------------
// Software TX over lo0.

// The least a TLS stream carrying |payload| bytes in records of at most
// kRecord can be: each record adds at least 22 bytes (TLS 1.3's header,
// type and tag; more in TLS 1.2).
size_t MinTlsBytes(size_t payload) { return payload + (payload + kRecord - 1) / kRecord * 22; }

struct TxResult {
  Tput t;
  double copies_per_byte = NAN;
};

// sendfile (file pages by reference) or write (16 KiB buffers) of `bytes`
// on a KTLS socket; the peer reads the ciphertext to EOF. With s null, the
// same on a plain socket: TCP over lo0 without TLS, the baseline.
TxResult SwTx(Kernel& k, int file_fd, size_t bytes, const Suite* s, bool sendfile) {
  TxResult r;
  int sv[2];
  if (!Pair(k.p, sv)) {
    r.t.error = Why("TCP connection over lo0");
    return r;
  }
  TlsKeys keys;
  if (s != nullptr && EnableTx(k.p, sv[1], *s, &keys) != 0) {
    r.t.error = Why("TCP_TXTLS_ENABLE");
    uk_close(k.p, sv[0]);
    uk_close(k.p, sv[1]);
    return r;
  }
  std::vector<char> wbuf(kRecord, 'x');
  CopyProbe probe(k);
  const ThreadSplit threads0 = ThreadSplit::Now();
  auto t0 = Clock::now();
  double c0 = ProcessCpu(), peer_cpu = 0;
  size_t ciphertext = 0;
  std::thread reader([&] {
    double p0 = ThreadCpu();
    ciphertext = Drain(k.p, sv[0]);
    peer_cpu = ThreadCpu() - p0;
  });
  size_t sent = 0;
  std::string error;
  if (sendfile) {
    off_t sb = 0;
    if (uk_sendfile(k.p, file_fd, sv[1], 0, bytes, nullptr, &sb, 0) == 0)
      sent = sb;
    else
      error = Why("sendfile");
  } else {
    while (sent < bytes) {
      ssize_t n = uk_write(k.p, sv[1], wbuf.data(), std::min<size_t>(kRecord, bytes - sent));
      if (n <= 0) {
        error = n < 0 ? Why("write") : "write returned 0";
        break;
      }
      sent += n;
    }
  }
  uk_shutdown(k.p, sv[1], SHUT_WR);
  reader.join();
  auto t1 = Clock::now();
  double cpu = ProcessCpu() - c0 - peer_cpu;
  if (sent != bytes) {
    r.t.error = !error.empty() ? error
                               : "sent " + std::to_string(sent) + " of " + std::to_string(bytes) +
                                     " bytes";
  } else if (s != nullptr ? ciphertext < MinTlsBytes(bytes) : ciphertext != bytes) {
    r.t.error = "the peer read " + std::to_string(ciphertext) + " bytes for " +
                std::to_string(bytes) + " bytes of payload";
  } else {
    r.t.gbps = Gbps(static_cast<double>(bytes), Seconds(t0, t1));
    r.t.cpu_gbps = Gbps(static_cast<double>(bytes), cpu);
    r.t.thread_s_per_gib = ThreadSplit::Now().Since(threads0, bytes, "reader", peer_cpu);
    r.copies_per_byte = static_cast<double>(probe.Payload()) / static_cast<double>(bytes);
  }
  uk_close(k.p, sv[0]);
  uk_close(k.p, sv[1]);
  return r;
}

// ---------------------------------------------------------------------------
// Software RX: the peer writes records encrypted beforehand; the KTLS
// socket's recvmsg returns plaintext, one record per call.

struct RxRecords {
  RxRecords(const Suite& s, size_t bytes, int reclen) : suite(s) {
    ktls_test::BuildTlsEnable(s, 0, &keys);
    std::vector<uint8_t> pt = ktls_test::RandomBytes(reclen);
    size_t n = (bytes + reclen - 1) / reclen;
    for (uint64_t seq = 0; seq < n; seq++) {
      auto rec = ktls_test::EncryptRecord(s, keys, seq, TLS_RLTYPE_APP, pt.data(), reclen);
      wire.insert(wire.end(), rec.begin(), rec.end());
    }
    payload = n * reclen;
  }
  Suite suite;
  TlsKeys keys;
  std::vector<uint8_t> wire;
  size_t payload = 0;
};

// Sends all of bytes in writes of up to 256 KiB, until done or an error.
void SendAll(uk_proc* p, int fd, const std::vector<uint8_t>& bytes) {
  size_t off = 0;
  while (off < bytes.size()) {
    ssize_t n = uk_send(p, fd, bytes.data() + off,
                        std::min<size_t>(256 * 1024, bytes.size() - off), 0);
    if (n <= 0) break;
    off += static_cast<size_t>(n);
  }
}

// Why a read loop stopped short: "CALL: ERROR" or "EOF", after how much.
std::string ShortRead(const char* call, ssize_t n, size_t got, size_t want) {
  return (n < 0 ? Why(call) : std::string("EOF")) + " after " + std::to_string(got) + " of " +
         std::to_string(want) + " bytes";
}

// Reads records off a KTLS RX socket with recvmsg, one record's plaintext
// and its TLS_GET_RECORD per call, until payload bytes came or the socket
// fails (*error says how); returns the plaintext bytes read.
size_t RecvRecords(uk_proc* p, int fd, size_t payload, std::string* error = nullptr) {
  std::vector<uint8_t> buf(kRecord + 256);
  size_t got = 0;
  while (got < payload) {
    ssize_t n = ktls_test::RecvTlsRecord(p, fd, buf.data(), buf.size()).n;
    if (n <= 0) {
      if (error != nullptr) *error = ShortRead("recvmsg", n, got, payload);
      break;
    }
    got += static_cast<size_t>(n);
  }
  return got;
}

// *copies: the kernel's own copies (less the writer's copyin and the
// reader's copyout) per payload byte.
// With tls false, the same bytes into a plain socket, read with recv into
// the same buffer: TCP over lo0 without TLS, the baseline (Gbit/s of the
// byte stream).
Tput SwRx(Kernel& k, RxRecords& recs, double* copies = nullptr, bool tls = true) {
  int sv[2];
  if (!Pair(k.p, sv)) return Failed(Why("TCP connection over lo0"));
  // The keys are built once; the sequence restarts at 0 on each connection.
  if (tls && uk_setsockopt(k.p, sv[1], IPPROTO_TCP, TCP_RXTLS_ENABLE, &recs.keys.en,
                           sizeof recs.keys.en) != 0) {
    Tput t = Failed(Why("TCP_RXTLS_ENABLE"));
    uk_close(k.p, sv[0]);
    uk_close(k.p, sv[1]);
    return t;
  }
  CopyProbe probe(k);
  const ThreadSplit threads0 = ThreadSplit::Now();
  auto t0 = Clock::now();
  double c0 = ProcessCpu(), peer_cpu = 0;
  std::thread writer([&] {
    double p0 = ThreadCpu();
    SendAll(k.p, sv[0], recs.wire);
    peer_cpu = ThreadCpu() - p0;
  });
  std::string error;
  const size_t want = tls ? recs.payload : recs.wire.size();
  size_t got = 0;
  if (tls) {
    got = RecvRecords(k.p, sv[1], recs.payload, &error);
  } else {
    std::vector<uint8_t> buf(kRecord + 256);
    while (got < want) {
      ssize_t n = uk_recv(k.p, sv[1], buf.data(), buf.size(), 0);
      if (n <= 0) {
        error = ShortRead("recv", n, got, want);
        break;
      }
      got += static_cast<size_t>(n);
    }
  }
  auto t1 = Clock::now();
  writer.join();
  double cpu = ProcessCpu() - c0 - peer_cpu;
  uk_close(k.p, sv[0]);
  uk_close(k.p, sv[1]);
  if (got != want) return Failed(error);
  if (copies != nullptr)
    *copies = static_cast<double>(probe.Payload()) / static_cast<double>(got);
  return {Gbps(static_cast<double>(got), Seconds(t0, t1)), Gbps(static_cast<double>(got), cpu),
          ThreadSplit::Now().Since(threads0, got, "writer", peer_cpu)};
}

// ---------------------------------------------------------------------------
// Userland TLS without kernel TLS: OpenSSL SSL_write over the host's
// loopback TCP; the reader takes the ciphertext off its socket.

struct OpensslPeer {
  OpensslPeer() {
    EVP_PKEY* pkey = EVP_EC_gen("P-256");
    X509* x = X509_new();
    X509_set_version(x, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
    X509_gmtime_adj(X509_getm_notBefore(x), 0);
    X509_gmtime_adj(X509_getm_notAfter(x), 3600);
    X509_set_pubkey(x, pkey);
    X509_NAME* nm = X509_get_subject_name(x);
    X509_NAME_add_entry_by_txt(nm, "CN", MBSTRING_ASC,
                               reinterpret_cast<const unsigned char*>("bench"), -1, -1, 0);
    X509_set_issuer_name(x, nm);
    X509_sign(x, pkey, EVP_sha256());
    sctx = SSL_CTX_new(TLS_server_method());
    cctx = SSL_CTX_new(TLS_client_method());
    for (SSL_CTX* c : {sctx, cctx}) {
      SSL_CTX_set_min_proto_version(c, TLS1_3_VERSION);
      SSL_CTX_set_ciphersuites(c, "TLS_AES_128_GCM_SHA256");
      SSL_CTX_clear_options(c, SSL_OP_ENABLE_KTLS);
    }
    SSL_CTX_use_certificate(sctx, x);
    SSL_CTX_use_PrivateKey(sctx, pkey);
    SSL_CTX_set_num_tickets(sctx, 0);
    X509_free(x);
    EVP_PKEY_free(pkey);
  }
  ~OpensslPeer() {
    SSL_CTX_free(sctx);
    SSL_CTX_free(cctx);
  }
  Tput Run(size_t bytes) {
    int l = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in sin{};
    sin.sin_family = AF_INET;
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ::bind(l, reinterpret_cast<sockaddr*>(&sin), sizeof sin);
    ::listen(l, 1);
    socklen_t len = sizeof sin;
    ::getsockname(l, reinterpret_cast<sockaddr*>(&sin), &len);
    int c = ::socket(AF_INET, SOCK_STREAM, 0);
    if (::connect(c, reinterpret_cast<sockaddr*>(&sin), sizeof sin) != 0) {
      Tput t = Failed(Why("host loopback connect"));
      ::close(c);
      ::close(l);
      return t;
    }
    int a = ::accept(l, nullptr, nullptr);
    ::close(l);
    SSL* srv = SSL_new(sctx);
    SSL_set_fd(srv, a);
    SSL* cli = SSL_new(cctx);
    SSL_set_fd(cli, c);
    std::thread hs([&] { SSL_connect(cli); });
    int ok = SSL_accept(srv);
    hs.join();
    Tput r;
    if (ok == 1) {
      std::vector<char> wbuf(kRecord, 'x');
      auto t0 = Clock::now();
      double c0 = ProcessCpu(), peer_cpu = 0;
      std::thread reader([&] {
        double p0 = ThreadCpu();
        std::vector<char> buf(256 * 1024);
        while (::recv(c, buf.data(), buf.size(), 0) > 0) {
        }
        peer_cpu = ThreadCpu() - p0;
      });
      size_t sent = 0;
      while (sent < bytes) {
        int n = SSL_write(srv, wbuf.data(), static_cast<int>(std::min<size_t>(kRecord, bytes - sent)));
        if (n <= 0) break;
        sent += n;
      }
      ::shutdown(a, SHUT_WR);
      reader.join();
      double cpu = ProcessCpu() - c0 - peer_cpu;
      if (sent == bytes)
        r = {Gbps(static_cast<double>(bytes), Seconds(t0, Clock::now())),
             Gbps(static_cast<double>(bytes), cpu)};
      else
        r.error = "SSL_write failed after " + std::to_string(sent) + " bytes";
    } else {
      r.error = "TLS handshake over the host loopback failed";
    }
    SSL_free(srv);
    SSL_free(cli);
    ::close(a);
    ::close(c);
    return r;
  }
  SSL_CTX* sctx;
  SSL_CTX* cctx;
};

// ---------------------------------------------------------------------------
// Two kernels over an unthrottled wire, sendfile with the session in SW,
// IFNET or TOE mode. Reports null with a reason when the mode cannot be had.

struct WireResult {
  std::optional<double> gbps;
  // CPU seconds per GiB sent of the sending kernel's host threads: the
  // thread calling sendfile, the kernel's own threads (netisr, callout,
  // taskqueues) and its KTLS workers; not the simulated NIC's threads
  // (the hardware) nor anything of the receiving kernel. What offload saves.
  std::optional<double> host_cpu_s_per_gib;
  std::string reason;
};

// CPU seconds used so far by the threads tids of this process.
double ThreadsCpu(const std::set<pid_t>& tids) {
  uint64_t ns = 0;
  for (pid_t t : tids) ns += ukernd::thread_cpu_ns(t);
  return static_cast<double>(ns) / 1e9;
}

// The KTLS workers of p's kernel: they start with its first session and
// publish their thread ids once running, so wait (up to a second) until
// all n have.
std::set<pid_t> KtlsWorkers(uk_proc* p, size_t n) {
  std::vector<pid_t> v;
  for (int i = 0; i < 1000; i++) {
    v = ktls_worker_tids(*p->k);
    if (v.size() >= n) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return std::set<pid_t>(v.begin(), v.end());
}

const char* ModeName(int mode) {
  static const char* const names[] = {"NONE", "SW", "IFNET", "TOE"};
  return mode >= 0 && mode <= 3 ? names[mode] : "?";
}

// Two kernels, a (10.9.0.1) and b (10.9.0.2), each with a nic_sim0 (MTU
// 9000 and the offloads a NIC ships with: txcsum rxcsum tso lro), joined by
// an unthrottled wire, and one TCP connection from a to b. The offload
// capability goes on the NIC of the side that does TLS (caps: "txtls",
// "rxtls", "toe" or ""); the tunables on both kernels. host_a / host_b:
// the threads each kernel's boot started (its netisr, callout,
// taskqueues, crypto), for the host-CPU figures.
struct WireLab {
  WireLab(const std::string& tun, const char* a_caps, const char* b_caps)
      : before(ukernd::list_tids()), a(1, tun), host_a(NewTids(before)),
        b(1, tun), host_b(NewTids(before)) {
    for (pid_t t : host_a) host_b.erase(t);
    for (Kernel* k : {&a, &b}) {
      if (uk_ifconfig(k->k, "nic_sim0", "create") != 0) {
        reason = std::string("ifconfig nic_sim0 create: ") + strerror(errno);
        return;
      }
    }
    if (uk_ifconfig(a.k, "nic_sim0", "inet 10.9.0.1/24 up") != 0 ||
        uk_ifconfig(b.k, "nic_sim0", "inet 10.9.0.2/24 up") != 0 ||
        uk_wire(a.k, "nic_sim0", b.k, "nic_sim0", "bw=0") != 0) {
      reason = std::string("nic_sim set-up: ") + strerror(errno);
      return;
    }
    for (Kernel* k : {&a, &b}) {
      uk_ifconfig(k->k, "nic_sim0", "mtu 9000");
      uk_ifconfig(k->k, "nic_sim0", "txcsum rxcsum tso lro mextpg");
    }
    for (auto [k, caps] : {std::make_pair(&a, a_caps), std::make_pair(&b, b_caps)}) {
      if (*caps != '\0' && uk_ifconfig(k->k, "nic_sim0", caps) != 0) {
        reason = std::string("ifconfig nic_sim0 ") + caps + ": " + strerror(errno);
        return;
      }
    }
    int l = uk_socket(b.p, AF_INET, SOCK_STREAM, 0);
    sockaddr_in sin{};
    sin.sin_family = AF_INET;
    sin.sin_port = htons(4433);
    inet_pton(AF_INET, "10.9.0.2", &sin.sin_addr);
    if (l < 0 || uk_bind(b.p, l, reinterpret_cast<sockaddr*>(&sin), sizeof sin) != 0 ||
        uk_listen(b.p, l, 4) != 0) {
      reason = Why("listen on the far kernel");
      return;
    }
    sa = uk_socket(a.p, AF_INET, SOCK_STREAM, 0);
    if (uk_connect(a.p, sa, reinterpret_cast<sockaddr*>(&sin), sizeof sin) != 0) {
      reason = std::string("connect over the wire: ") + strerror(errno);
      return;
    }
    sb = uk_accept(b.p, l, nullptr, nullptr);
    if (sb < 0) reason = std::string("accept over the wire: ") + strerror(errno);
  }
  static std::set<pid_t> NewTids(const std::set<pid_t>& old) {
    std::set<pid_t> out;
    for (pid_t t : ukernd::list_tids())
      if (!old.count(t)) out.insert(t);
    return out;
  }
  // Checks the session's mode (opt TCP_TXTLS_MODE or TCP_RXTLS_MODE).
  bool ModeIs(uk_proc* p, int fd, int opt, int mode) {
    int cur = -1;
    socklen_t cl = sizeof cur;
    uk_getsockopt(p, fd, IPPROTO_TCP, opt, &cur, &cl);
    if (cur == mode) return true;
    reason = std::string(ModeName(mode)) + " mode not available: the session is in " +
             ModeName(cur) + " mode";
    return false;
  }

  std::set<pid_t> before;
  Kernel a;
  std::set<pid_t> host_a;
  Kernel b;
  std::set<pid_t> host_b;
  int sa = -1, sb = -1;  // the connection's ends in a and in b
  std::string reason;    // empty while the set-up went well
};

// Two kernels over an unthrottled wire (WireLab), sendfile of |bytes| from
// a to b with the session (suite s, records of at most maxlen bytes; 0: the
// default 16 KiB) in SW, IFNET or TOE mode. A mode the NIC cannot give the
// suite (nic_sim's IFNET engine does AES-GCM; its TOE AES-GCM and AES-CBC)
// is a null figure with the reason.
WireResult WireTx(int mode, size_t bytes, const Suite& suite = kAes128Gcm13, int maxlen = 0) {
  WireResult r;
  std::string tun = "kern.ipc.tls.ifnet.permitted=1";
  if (maxlen > 0) tun += ",kern.ipc.tls.maxlen=" + std::to_string(maxlen);
  WireLab lab(tun,
              mode == TCP_TLS_MODE_TOE     ? "toe"
              : mode == TCP_TLS_MODE_IFNET ? "txtls"
                                           : "",
              "");
  if (!lab.reason.empty()) {
    r.reason = lab.reason;
    return r;
  }
  uk_proc* ap = lab.a.p;
  TlsKeys keys;
  if (EnableTx(ap, lab.sa, suite, &keys) != 0) {
    r.reason = std::string("TCP_TXTLS_ENABLE: ") + strerror(errno);
    return r;
  }
  if (mode == TCP_TLS_MODE_IFNET) {
    int m = mode;
    uk_setsockopt(ap, lab.sa, IPPROTO_TCP, TCP_TXTLS_MODE, &m, sizeof m);
  }
  if (!lab.ModeIs(ap, lab.sa, TCP_TXTLS_MODE, mode)) {
    r.reason = lab.reason;
    return r;
  }
  std::set<pid_t> host = lab.host_a;
  for (pid_t t : KtlsWorkers(ap, 1)) host.insert(t);
  int fd = MakeFile(ap, "/wire", bytes);
  const double host0 = ThreadsCpu(host), self0 = ThreadCpu();
  auto t0 = Clock::now();
  size_t ciphertext = 0;
  std::thread reader([&] { ciphertext = Drain(lab.b.p, lab.sb); });
  off_t sent = 0;
  int rc = uk_sendfile(ap, fd, lab.sa, 0, bytes, nullptr, &sent, 0);
  std::string error = rc != 0 ? Why("sendfile") : "";
  uk_shutdown(ap, lab.sa, SHUT_WR);
  const double self = ThreadCpu() - self0;
  reader.join();
  auto t1 = Clock::now();
  if (rc != 0 || static_cast<size_t>(sent) != bytes) {
    r.reason = !error.empty() ? error
                              : "sendfile sent " + std::to_string(sent) + " of " +
                                    std::to_string(bytes) + " bytes";
    return r;
  }
  if (ciphertext < bytes) {
    r.reason = "the peer read " + std::to_string(ciphertext) + " bytes of ciphertext for " +
               std::to_string(bytes) + " bytes of payload";
    return r;
  }
  r.gbps = Gbps(static_cast<double>(bytes), Seconds(t0, t1));
  r.host_cpu_s_per_gib = (ThreadsCpu(host) - host0 + self) / (static_cast<double>(bytes) / kGiB);
  return r;
}

// The receive side over the same wire: a sends records encrypted
// beforehand (recs, whose keys b's session takes) from a plain socket; b
// reads them with recvmsg, one record and its TLS_GET_RECORD per call,
// with the session in SW, IFNET (rxtls: the NIC decrypts inline) or TOE
// mode. host_cpu_s_per_gib is then the receiving kernel's.
WireResult WireRx(int mode, const RxRecords& recs) {
  WireResult r;
  WireLab lab("kern.ipc.tls.ifnet.permitted=1", "",
              mode == TCP_TLS_MODE_TOE     ? "toe"
              : mode == TCP_TLS_MODE_IFNET ? "rxtls"
                                           : "");
  if (!lab.reason.empty()) {
    r.reason = lab.reason;
    return r;
  }
  uk_proc* bp = lab.b.p;
  if (uk_setsockopt(bp, lab.sb, IPPROTO_TCP, TCP_RXTLS_ENABLE, &recs.keys.en,
                    sizeof recs.keys.en) != 0) {
    r.reason = std::string("TCP_RXTLS_ENABLE: ") + strerror(errno);
    return r;
  }
  if (!lab.ModeIs(bp, lab.sb, TCP_RXTLS_MODE, mode)) {
    r.reason = lab.reason;
    return r;
  }
  std::set<pid_t> host = lab.host_b;
  for (pid_t t : KtlsWorkers(bp, 1)) host.insert(t);
  const double host0 = ThreadsCpu(host), self0 = ThreadCpu();
  auto t0 = Clock::now();
  std::thread writer([&] { SendAll(lab.a.p, lab.sa, recs.wire); });
  std::string error;
  size_t got = RecvRecords(bp, lab.sb, recs.payload, &error);
  auto t1 = Clock::now();
  const double self = ThreadCpu() - self0;
  writer.join();
  if (got != recs.payload) {
    r.reason = error;
    return r;
  }
  r.gbps = Gbps(static_cast<double>(got), Seconds(t0, t1));
  r.host_cpu_s_per_gib = (ThreadsCpu(host) - host0 + self) / (static_cast<double>(got) / kGiB);
  return r;
}

// The wire figures: key, mode, direction; each keeps the first round's
// reason when it cannot be had.
struct WireFigure {
  const char* key;
  int mode;
  bool rx;
  WireResult first;
};
std::vector<WireFigure> WireFigures() {
  return {{"sw_wire_tx_gbps", TCP_TLS_MODE_SW, false, {}},
          {"ifnet_tx_gbps", TCP_TLS_MODE_IFNET, false, {}},
          {"toe_tx_gbps", TCP_TLS_MODE_TOE, false, {}},
          {"sw_wire_rx_gbps", TCP_TLS_MODE_SW, true, {}},
          {"ifnet_rx_gbps", TCP_TLS_MODE_IFNET, true, {}},
          {"toe_rx_gbps", TCP_TLS_MODE_TOE, true, {}}};
}

// ---------------------------------------------------------------------------
// Sessions: set-up rate and memory of idle sessions.

// TCP_TXTLS_ENABLE on n connected sockets, then their close; the cost of
// destroying the sessions is the close time beyond that of as many plain
// sockets. Returns sessions per second (NaN, and *error, on failure; the
// kernel goes with its sockets).
double SessionSetup(int n, std::string* error) {
  Kernel k(1);
  int l = Listener(k.p);
  if (l < 0) {
    *error = Why("listen on lo0");
    return NAN;
  }
  std::vector<int> tls_fds, plain_fds, peers;
  for (int i = 0; i < 2 * n; i++) {
    int sv[2];
    if (!Pair(k.p, sv, l)) {
      *error = Why("TCP connection " + std::to_string(i + 1) + " over lo0");
      return NAN;
    }
    peers.push_back(sv[0]);
    (i % 2 ? plain_fds : tls_fds).push_back(sv[1]);
  }
  TlsKeys keys;
  ktls_test::BuildTlsEnable(kAes128Gcm13, 0, &keys);
  auto t0 = Clock::now();
  for (int fd : tls_fds)
    if (uk_setsockopt(k.p, fd, IPPROTO_TCP, TCP_TXTLS_ENABLE, &keys.en, sizeof keys.en) != 0) {
      *error = Why("TCP_TXTLS_ENABLE");
      return NAN;
    }
  auto t1 = Clock::now();
  for (int fd : plain_fds) uk_close(k.p, fd);
  auto t2 = Clock::now();
  for (int fd : tls_fds) uk_close(k.p, fd);
  auto t3 = Clock::now();
  double destroy = std::max(0.0, Seconds(t2, t3) - Seconds(t1, t2));
  for (int fd : peers) uk_close(k.p, fd);
  uk_close(k.p, l);
  return n / (Seconds(t0, t1) + destroy);
}

// Bytes of heap in use: the sanitizers' allocators replace malloc, and
// mallinfo2 then knows nothing.
double HeapInUse() {
#ifdef UKTLS_BENCH_SANITIZER
  return static_cast<double>(__sanitizer_get_current_allocated_bytes());
#else
  return static_cast<double>(mallinfo2().uordblks);
#endif
}

// Heap and page-pool growth from enabling TX and RX on n connected sockets,
// per socket (NaN, and *error, on failure).
double IdleSessionBytes(int n, std::string* error) {
  Kernel k(1);
  int l = Listener(k.p);
  if (l < 0) {
    *error = Why("listen on lo0");
    return NAN;
  }
  std::vector<int> fds;
  for (int i = 0; i < n + 1; i++) {
    int sv[2];
    if (!Pair(k.p, sv, l)) {
      *error = Why("TCP connection " + std::to_string(i + 1) + " over lo0");
      return NAN;
    }
    fds.push_back(sv[0]);
    fds.push_back(sv[1]);
  }
  TlsKeys keys;
  ktls_test::BuildTlsEnable(kAes128Gcm13, 0, &keys);
  auto enable = [&](int fd) {
    return uk_setsockopt(k.p, fd, IPPROTO_TCP, TCP_TXTLS_ENABLE, &keys.en, sizeof keys.en) == 0 &&
           uk_setsockopt(k.p, fd, IPPROTO_TCP, TCP_RXTLS_ENABLE, &keys.en, sizeof keys.en) == 0;
  };
  // The first session starts the workers; keep that out of the figure.
  if (!enable(fds[1])) {
    *error = Why("TCP_TXTLS_ENABLE or TCP_RXTLS_ENABLE");
    return NAN;
  }
  malloc_trim(0);
  double m0 = HeapInUse();
  int64_t pg0 = k.Counter("vm.pages.in_use");
  for (int i = 1; i <= n; i++)
    if (!enable(fds[2 * i + 1])) {
      *error = Why("TCP_TXTLS_ENABLE or TCP_RXTLS_ENABLE");
      return NAN;
    }
  double m1 = HeapInUse();
  int64_t pg1 = k.Counter("vm.pages.in_use");
  double bytes = m1 - m0 + static_cast<double>(pg1 - pg0) * 4096;
  for (int fd : fds) uk_close(k.p, fd);
  uk_close(k.p, l);
  return bytes / n;
}

// ---------------------------------------------------------------------------
// Scaling: c connections at once, each sendfile-ing its share of the file
// without blocking; one sender thread and one reader thread poll them all.
// With |warm| bytes, each connection first sends that much untimed, so the
// timed transfer runs on connections whose TCP buffers have grown (TCP
// autosizes the send buffer in 8 KiB steps; a new connection that has 1 MiB
// to send spends its life ramping up).

// Waits for descriptors to become readable or writable, the way a server
// with many connections does: kevent(2) (only the ready ones come back), or
// poll(2) over every descriptor for comparison.
class Readiness {
 public:
  Readiness(uk_proc* p, bool use_poll, const std::vector<int>& fds, short filter)
      : p_(p), poll_(use_poll), fds_(fds) {
    if (poll_) {
      short ev = filter == EVFILT_READ ? POLLIN : POLLOUT;
      for (int fd : fds) pf_.push_back({fd, ev, 0});
      return;
    }
    kq_ = uk_kqueue(p);
    std::vector<struct kevent> ch(fds.size());
    for (size_t i = 0; i < fds.size(); i++)
      EV_SET(&ch[i], fds[i], filter, EV_ADD, 0, 0,
             reinterpret_cast<void*>(static_cast<uintptr_t>(i)));
    if (kq_ < 0 || uk_kevent(p, kq_, ch.data(), static_cast<int>(ch.size()), nullptr, 0,
                             nullptr) != 0)
      ok_ = false;
    filter_ = filter;
    ev_.resize(256);
  }
  ~Readiness() {
    if (kq_ >= 0) uk_close(p_, kq_);
  }
  bool ok() const { return ok_; }
  // The indexes of the descriptors that are ready; false on error.
  bool Wait(std::vector<size_t>* ready) {
    ready->clear();
    if (poll_) {
      if (uk_poll(p_, pf_.data(), pf_.size(), 1000) < 0) return false;
      for (size_t i = 0; i < pf_.size(); i++)
        if (pf_[i].fd >= 0 && pf_[i].revents != 0) ready->push_back(i);
      return true;
    }
    timespec to{1, 0};
    int n = uk_kevent(p_, kq_, nullptr, 0, ev_.data(), static_cast<int>(ev_.size()), &to);
    if (n < 0) return false;
    for (int e = 0; e < n; e++)
      ready->push_back(static_cast<size_t>(reinterpret_cast<uintptr_t>(ev_[e].udata)));
    return true;
  }
  // Stops watching descriptor i.
  void Remove(size_t i) {
    if (poll_) {
      pf_[i].fd = -1;
      return;
    }
    struct kevent ch;
    EV_SET(&ch, fds_[i], filter_, EV_DELETE, 0, 0, nullptr);
    uk_kevent(p_, kq_, &ch, 1, nullptr, 0, nullptr);
  }

 private:
  uk_proc* p_;
  bool poll_;
  std::vector<int> fds_;
  std::vector<pollfd> pf_;
  int kq_ = -1;
  short filter_ = 0;
  std::vector<struct kevent> ev_;
  bool ok_ = true;
};

Tput Scaling(Kernel& k, int file_fd, size_t bytes, int conns, bool use_poll, size_t warm = 0) {
  std::vector<int> snd, rcv;
  auto close_all = [&] {
    for (int fd : snd) uk_close(k.p, fd);
    for (int fd : rcv) uk_close(k.p, fd);
  };
  auto fail = [&](const std::string& what) {
    Tput t = Failed(Why(what));
    close_all();
    return t;
  };
  int l = Listener(k.p);
  if (l < 0) return fail("listen on lo0");
  std::vector<TlsKeys> keys(conns);
  for (int i = 0; i < conns; i++) {
    int sv[2];
    if (!Pair(k.p, sv, l)) {
      Tput t = fail("TCP connection " + std::to_string(i + 1) + " over lo0");
      uk_close(k.p, l);
      return t;
    }
    rcv.push_back(sv[0]);
    snd.push_back(sv[1]);
    if (EnableTx(k.p, snd[i], kAes128Gcm13, &keys[i]) != 0) {
      Tput t = fail("TCP_TXTLS_ENABLE");
      uk_close(k.p, l);
      return t;
    }
    uk_fcntl(k.p, snd[i], F_SETFL, O_NONBLOCK);
    uk_fcntl(k.p, rcv[i], F_SETFL, O_NONBLOCK);
  }
  uk_close(k.p, l);
  // Page-aligned shares.
  const size_t share = (bytes / conns) & ~static_cast<size_t>(4095);
  // One pass: |len| bytes down every connection, from its share of the file
  // (round again when |len| is the larger). The last pass ends each
  // connection and its reader reads to EOF; a warm-up pass leaves them open
  // and its reader is done with a connection once the least ciphertext
  // |len| bytes make has come (what shorter records add is read in the next
  // pass).
  size_t ciphertext = 0;
  double peer_cpu = 0;
  auto pass = [&](size_t len, bool last) -> std::string {
    Readiness rd(k.p, use_poll, rcv, EVFILT_READ);
    Readiness wr(k.p, use_poll, snd, EVFILT_WRITE);
    if (!rd.ok() || !wr.ok()) return "kqueue";
    std::thread reader([&] {
      double p0 = ThreadCpu();
      std::vector<char> buf(256 * 1024);
      std::vector<size_t> ready, got(conns, 0);
      const size_t want = MinTlsBytes(len);
      int open = conns;
      while (open > 0 && rd.Wait(&ready)) {
        for (size_t i : ready) {
          for (;;) {
            ssize_t n = uk_recv(k.p, rcv[i], buf.data(), buf.size(), 0);
            if (n > 0) {
              got[i] += static_cast<size_t>(n);
              if (last || got[i] < want) continue;
            } else if (n < 0 && errno == EAGAIN) {
              break;
            }
            rd.Remove(i);
            open--;
            break;
          }
        }
      }
      if (last) {
        for (size_t g : got) ciphertext += g;
        peer_cpu = ThreadCpu() - p0;
      }
    });
    std::vector<size_t> done(conns, 0), ready;
    int left = conns;
    std::string error;
    while (left > 0 && error.empty()) {
      if (!wr.Wait(&ready)) {
        error = Why(use_poll ? "poll" : "kevent");
        break;
      }
      for (size_t i : ready) {
        size_t at = done[i] % share;
        off_t sb = 0;
        int rc = uk_sendfile(k.p, file_fd, snd[i], static_cast<off_t>(i * share + at),
                             std::min(share - at, len - done[i]), nullptr, &sb, 0);
        done[i] += sb;
        if (rc != 0 && errno != EAGAIN && error.empty()) error = Why("sendfile");
        if (done[i] == len) {
          if (last) uk_shutdown(k.p, snd[i], SHUT_WR);
          wr.Remove(i);
          left--;
        }
      }
    }
    // On failure every connection not done ends now, so the reader sees EOF.
    if (!error.empty())
      for (int i = 0; i < conns; i++)
        if (!last || done[i] != len) uk_shutdown(k.p, snd[i], SHUT_WR);
    reader.join();
    return error;
  };
  std::string error = warm > 0 ? pass(warm & ~static_cast<size_t>(4095), false) : "";
  const ThreadSplit threads0 = ThreadSplit::Now();
  auto t0 = Clock::now();
  double c0 = ProcessCpu();
  if (error.empty()) error = pass(share, true);
  auto t1 = Clock::now();
  double cpu = ProcessCpu() - c0 - peer_cpu;
  const ThreadSplit threads1 = ThreadSplit::Now();
  close_all();
  if (!error.empty()) return Failed(error);
  const size_t total = share * static_cast<size_t>(conns);
  // Each connection's records.
  if (ciphertext < MinTlsBytes(share) * static_cast<size_t>(conns))
    return Failed("the readers got " + std::to_string(ciphertext) + " bytes of ciphertext for " +
                  std::to_string(total) + " bytes of payload");
  return {Gbps(static_cast<double>(total), Seconds(t0, t1)),
          Gbps(static_cast<double>(total), cpu), threads1.Since(threads0, total, "reader", peer_cpu)};
}

// ---------------------------------------------------------------------------

json Num(double v) { return std::isfinite(v) ? json(v) : json(nullptr); }

// Each figure's values over the rounds, and the rounds that gave none.
struct Collected {
  struct Failures {
    int rounds = 0;
    std::string first;  // the first round's error
  };
  std::map<std::string, std::vector<double>> v;
  std::map<std::string, Failures> failed;
  void Add(const std::string& key, double x) {
    if (std::isfinite(x)) v[key].push_back(x);
  }
  void Add(const std::string& key, const Tput& t) {
    if (!std::isfinite(t.gbps)) {
      Fail(key, t.error);
      return;
    }
    Add(key, t.gbps);
    Add("cpu:" + key, t.cpu_gbps);
    double worker = 0;
    for (const auto& [name, x] : t.thread_s_per_gib) {
      Add("threads:" + key + "\t" + name, x);
      if (name.rfind("ktls_thr_", 0) == 0) worker = std::max(worker, x);
    }
    // What the round's busiest KTLS worker (the only one a single
    // connection uses) could carry were it never idle: payload over its CPU
    // time; the throughput over that is its busy share.
    if (worker > 0) {
      const double bound = kGiB * 8 / 1e9 / worker;
      Add("worker_bound:" + key, bound);
      Add("worker_busy:" + key, t.gbps / bound);
    }
  }
  void Fail(const std::string& key, const std::string& error) {
    Failures& f = failed[key];
    if (f.rounds++ == 0) f.first = error.empty() ? "no result" : error;
  }
  double Med(const std::string& key) const {
    auto it = v.find(key);
    return it == v.end() ? NAN : Median(it->second);
  }
  // A figure some rounds of which failed: said on stderr, and in *where
  // (a JSON object) as "failed_rounds" and "error". The figure is the
  // median of the rounds that worked, null if none did.
  void Report(const std::string& key, int rounds, const std::string& label, json* where) const {
    auto it = failed.find(key);
    if (it == failed.end()) return;
    fprintf(stderr, "ktls_bench: %s%s: %d of %d rounds failed: %s\n", label.c_str(), key.c_str(),
            it->second.rounds, rounds, it->second.first.c_str());
    (*where)["failed_rounds"] = it->second.rounds;
    (*where)["error"] = it->second.first;
  }
};

const std::vector<Suite>& SweepSuites() {
  static const std::vector<Suite> s = {
      kAes128Gcm13,
      {"aes256_gcm_1_3", CRYPTO_AES_NIST_GCM_16, 32, 0, TLS_MINOR_VER_THREE},
      {"chacha20_poly1305_1_3", CRYPTO_CHACHA20_POLY1305, 32, 0, TLS_MINOR_VER_THREE},
      {"aes128_cbc_sha1_1_2", CRYPTO_AES_CBC, 16, CRYPTO_SHA1_HMAC, TLS_MINOR_VER_TWO},
  };
  return s;
}

// Throughput vs record size per cipher and mode (SW sendfile, write and RX
// over lo0; SW, IFNET and TOE sendfile between two kernels), and
// throughput vs connections, as SVG files in o.svg_dir (and a JSON
// summary). Each point: the median of max(1, reps/2) runs; wall-clock and
// per-CPU-second figures side by side.
json Sweep(const Options& o) {
  json out;
  const int sizes[] = {1024, 2048, 4096, 8192, 16384};
  const int reps = std::max(1, o.reps / 2);
  auto pt = [](double x, double y) {
    return std::make_pair(x, std::isfinite(y) ? y : -1.0);
  };
  std::vector<std::pair<std::string, bench::Chart>> charts;
  for (const Suite& s : SweepSuites()) {
    bench::Chart ch{std::string("KTLS ") + s.name +
                        ": throughput vs record size (over lo0; and between two kernels)",
                    "record size (bytes)", "Gbit/s", true, {}};
    // sendfile with the session in SW, IFNET and TOE mode, two kernels
    // over an unthrottled wire (as sw_wire_tx_gbps, ifnet_tx_gbps and
    // toe_tx_gbps): the offload modes against software over the same wire.
    struct WireMode {
      const char* series;
      const char* key;
      int mode;
    };
    const WireMode offload[] = {{"sw sendfile (wire)", "sw_wire_sendfile", TCP_TLS_MODE_SW},
                                {"ifnet sendfile", "ifnet_sendfile", TCP_TLS_MODE_IFNET},
                                {"toe sendfile", "toe_sendfile", TCP_TLS_MODE_TOE}};
    constexpr int kWire = 3;
    std::vector<bench::Series> off(kWire);
    for (int i = 0; i < kWire; i++) off[i].name = offload[i].series;
    const char* modes[] = {"sendfile", "write", "rx"};
    std::vector<bench::Series> wall(3), cpu(3);
    for (int i = 0; i < 3; i++) {
      wall[i].name = modes[i];
      cpu[i].name = std::string(modes[i]) + " per CPU-second";
    }
    for (int sz : sizes) {
      Kernel k(o.ncpus, "kern.ipc.tls.maxlen=" + std::to_string(sz));
      int fd = MakeFile(k.p, "/sweep", o.sweep_bytes);
      RxRecords recs(s, o.sweep_bytes / 2, sz);
      // Untimed: a new kernel's first transfer grows its page pool (fresh
      // huge pages the host zeroes), which the few rounds of a point
      // would otherwise carry in their median.
      SwTx(k, fd, o.sweep_bytes, &s, true);
      Collected got;
      for (int r = 0; r < reps; r++) {
        got.Add(modes[0], SwTx(k, fd, o.sweep_bytes, &s, true).t);
        got.Add(modes[1], SwTx(k, fd, o.sweep_bytes, &s, false).t);
        got.Add(modes[2], SwRx(k, recs));
      }
      for (int i = 0; i < 3; i++) {
        double mw = got.Med(modes[i]), mc = got.Med(std::string("cpu:") + modes[i]);
        wall[i].points.push_back(pt(sz, mw));
        cpu[i].points.push_back(pt(sz, mc));
        json& e = out["record_size"][s.name][std::to_string(sz)][modes[i]];
        e = {{"gbps", Num(mw)}, {"cpu_gbps", Num(mc)}};
        got.Report(modes[i], reps, std::string(s.name) + " " + std::to_string(sz) + " ", &e);
      }
      uk_close(k.p, fd);
      double ow[kWire];
      for (int i = 0; i < kWire; i++) {
        std::vector<double> g;
        std::string reason;
        for (int r = 0; r < reps; r++) {
          WireResult wr = WireTx(offload[i].mode, o.sweep_bytes, s, sz);
          if (!wr.gbps) {
            reason = wr.reason;
            break;
          }
          g.push_back(*wr.gbps);
        }
        ow[i] = g.empty() ? NAN : Median(g);
        off[i].points.push_back(pt(sz, ow[i]));
        json& e = out["record_size"][s.name][std::to_string(sz)][offload[i].key];
        e = {{"gbps", Num(ow[i])}};
        if (!reason.empty()) e["reason"] = reason;
      }
      fprintf(stderr,
              "sweep %s %d: sendfile %.2f write %.2f rx %.2f; wire: sw %.2f ifnet %.2f "
              "toe %.2f Gbit/s\n",
              s.name, sz, got.Med(modes[0]), got.Med(modes[1]), got.Med(modes[2]), ow[0], ow[1],
              ow[2]);
    }
    for (int i = 0; i < 3; i++) ch.series.push_back(wall[i]);
    for (int i = 0; i < kWire; i++) {
      // A mode the NIC never gave this suite has no series.
      bool any = false;
      for (auto& p : off[i].points) any = any || p.second >= 0;
      if (any) ch.series.push_back(off[i]);
    }
    for (int i = 0; i < 3; i++) ch.series.push_back(cpu[i]);
    charts.emplace_back(std::string("throughput_vs_record_size_") + s.name + ".svg", ch);
  }
  bench::Chart sc{"KTLS SW TX (sendfile, AES-128-GCM 16 KiB) vs connections", "connections",
                  "aggregate Gbit/s", true, {}};
  bench::Series sw{"aggregate", {}}, scpu{"aggregate per CPU-second", {}};
  {
    Kernel k(o.ncpus);
    int fd = MakeFile(k.p, "/scale", o.scaling_bytes);
    Scaling(k, fd, o.scaling_bytes, 1024, false);  // untimed, as above
    for (int n : {1, 2, 4, 16, 64, 256, 1024}) {
      Collected got;
      for (int r = 0; r < reps; r++)
        got.Add("aggregate", Scaling(k, fd, o.scaling_bytes, n, false));
      double w = got.Med("aggregate"), c = got.Med("cpu:aggregate");
      sw.points.push_back(pt(n, w));
      scpu.points.push_back(pt(n, c));
      json& e = out["connections"][std::to_string(n)];
      e = {{"gbps", Num(w)}, {"cpu_gbps", Num(c)}};
      got.Report("aggregate", reps, std::to_string(n) + " connections ", &e);
      fprintf(stderr, "sweep connections %d: %.2f Gbit/s\n", n, w);
    }
    uk_close(k.p, fd);
  }
  sc.series = {sw, scpu};
  charts.emplace_back("throughput_vs_connections.svg", sc);
  if (!o.svg_dir.empty()) {
    // The directory is made if missing; a file that cannot be written is
    // an error (exit status 1), not a silent loss of the plots.
    std::error_code ec;
    std::filesystem::create_directories(o.svg_dir, ec);
    auto write = [&o](const std::string& name, const std::string& text) {
      std::string path = o.svg_dir + "/" + name;
      std::ofstream f(path);
      f << text;
      f.close();
      if (!f) {
        fprintf(stderr, "ktls_bench: cannot write %s: %s\n", path.c_str(), strerror(errno));
        exit(1);
      }
    };
    for (auto& [name, ch] : charts) write(name, bench::RenderSvg(ch));
    write("sweep.json", out.dump(2) + "\n");
  }
  return out;
}

bool ParseSize(const char* v, size_t* out) {
  char* end;
  double d = strtod(v, &end);
  if (end == v || d < 0) return false;
  *out = static_cast<size_t>(d * kMiB);
  return true;
}

void Usage() {
  fprintf(stderr,
          "usage: ktls_bench [--json] [--quick] [--reps=N] [--ncpus=N]\n"
          "                  [--sendfile-mib=N] [--write-mib=N] [--rx-mib=N]\n"
          "                  [--openssl-mib=N] [--wire-mib=N] [--scaling-mib=N]\n"
          "                  [--scaling-warm-mib=N]\n"
          "                  [--records=N] [--idle-conns=N] [--setup-conns=N]\n"
          "                  [--only=KEY] [--sweep [--svg-dir=DIR] [--sweep-mib=N]]\n"
          "                  [--tunables=NAME=VALUE,...] [--sysctls=NAME=VALUE,...]\n");
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; i++) {
    std::string a = argv[i];
    auto val = [&](const char* name) -> const char* {
      size_t n = strlen(name);
      return a.compare(0, n, name) == 0 ? argv[i] + n : nullptr;
    };
    const char* v;
    if (a == "--json") {
      o.json = true;
    } else if (a == "--quick") {
      o.quick = true;
      o.reps = 3;
      o.sendfile_bytes = o.write_bytes = o.openssl_bytes = 16 * kMiB;
      o.rx_bytes = o.wire_bytes = o.scaling_bytes = 8 * kMiB;
      o.scaling_warm_bytes = 64 * 1024;
      o.sweep_bytes = 4 * kMiB;
      o.crypto_records = 2000;
      o.idle_conns = 200;
      o.setup_conns = 200;
    } else if (a == "--sweep") {
      o.sweep = true;
    } else if ((v = val("--only="))) {
      o.only = v;
    } else if ((v = val("--svg-dir="))) {
      o.svg_dir = v;
    } else if ((v = val("--tunables="))) {
      Kernel::extra = v;
    } else if ((v = val("--sysctls="))) {
      Kernel::sysctls = v;
    } else if ((v = val("--reps="))) {
      o.reps = std::max(1, atoi(v));
    } else if ((v = val("--ncpus="))) {
      o.ncpus = std::max(1, atoi(v));
    } else if ((v = val("--records="))) {
      o.crypto_records = std::max(1, atoi(v));
    } else if ((v = val("--idle-conns="))) {
      o.idle_conns = std::max(1, atoi(v));
    } else if ((v = val("--setup-conns="))) {
      o.setup_conns = std::max(1, atoi(v));
    } else if (((v = val("--sendfile-mib=")) && ParseSize(v, &o.sendfile_bytes)) ||
               ((v = val("--write-mib=")) && ParseSize(v, &o.write_bytes)) ||
               ((v = val("--rx-mib=")) && ParseSize(v, &o.rx_bytes)) ||
               ((v = val("--openssl-mib=")) && ParseSize(v, &o.openssl_bytes)) ||
               ((v = val("--wire-mib=")) && ParseSize(v, &o.wire_bytes)) ||
               ((v = val("--scaling-mib=")) && ParseSize(v, &o.scaling_bytes)) ||
               ((v = val("--scaling-warm-mib=")) && ParseSize(v, &o.scaling_warm_bytes)) ||
               ((v = val("--sweep-mib=")) && ParseSize(v, &o.sweep_bytes))) {
    } else {
      Usage();
      return 2;
    }
  }
  // --only=KEY[,KEY...]: just those figures (a figure's JSON key, or
  // "scaling" / "scaling_warm" for every connection count).
  const int scal[] = {1, 2, 16, 256, 1024};
  const int warm_scal[] = {1, 2, 1024};
  std::set<std::string> known = {
      "raw_crypto_gbps",      "raw_crypto_stream_gbps", "raw_decrypt_gbps",
      "ocf_gbps",             "sw_tx_sendfile_gbps",    "sw_tx_write_gbps",
      "sw_rx_gbps",           "userland_openssl_gbps",  "sw_wire_tx_gbps",
      "ifnet_tx_gbps",        "toe_tx_gbps",            "sw_wire_rx_gbps",
      "ifnet_rx_gbps",        "toe_rx_gbps",            "scaling",
      "scaling_poll_1024",    "plain_tx_sendfile_gbps", "plain_rx_gbps",
      "session_setup_per_sec", "idle_session_bytes",    "scaling_warm"};
  for (int n : scal) known.insert("scaling." + std::to_string(n));
  for (int n : warm_scal) known.insert("scaling_warm." + std::to_string(n));
  std::set<std::string> only;
  for (const std::string& key : SplitList(o.only)) {
    if (!known.count(key)) {
      fprintf(stderr, "ktls_bench: --only: no figure named \"%s\"; one of:", key.c_str());
      for (const std::string& k : known) fprintf(stderr, " %s", k.c_str());
      fprintf(stderr, "\n");
      return 2;
    }
    only.insert(key);
  }
  if (o.sweep) {
    json s = Sweep(o);
    printf("%s\n", s.dump(o.json ? -1 : 2).c_str());
    return 0;
  }

  Collected c;
  RawGcm raw;
  OcfGcm ocf;
  OpensslPeer ossl;
  Kernel k(o.ncpus);
  auto want = [&only](const std::string& key) { return only.empty() || only.count(key) > 0; };
  // The file sendfile and the scaling runs read (written only if one runs).
  bool scaling = want("scaling") || want("scaling_poll_1024") || want("scaling_warm");
  for (int n : scal) scaling = scaling || want("scaling." + std::to_string(n));
  for (int n : warm_scal) scaling = scaling || want("scaling_warm." + std::to_string(n));
  const bool sendfile = want("sw_tx_sendfile_gbps") || want("plain_tx_sendfile_gbps");
  int sf_fd = MakeFile(k.p, "/payload",
                       std::max(sendfile ? o.sendfile_bytes : 0, scaling ? o.scaling_bytes : 0));
  RxRecords recs(kAes128Gcm13, want("sw_rx_gbps") || want("plain_rx_gbps") ? o.rx_bytes : 0,
                 kRecord);
  std::vector<double> copies, rx_copies;
  // Interleaved: every figure is taken once per round, so drift in the
  // host's load touches all of them alike.
  std::vector<WireFigure> wire = WireFigures();
  bool wire_rx = false;
  for (const WireFigure& f : wire) wire_rx = wire_rx || (f.rx && want(f.key));
  RxRecords wire_recs(kAes128Gcm13, wire_rx ? o.wire_bytes : 0, kRecord);
  HugeBuffer stream;
  if (want("raw_crypto_stream_gbps")) stream = HugeBuffer(ktls_test::RandomBytes(o.sendfile_bytes));
  for (int r = 0; r < o.reps; r++) {
    if (want("raw_crypto_gbps")) c.Add("raw_crypto_gbps", raw.Run(true, o.crypto_records));
    if (want("raw_crypto_stream_gbps")) c.Add("raw_crypto_stream_gbps", raw.RunStream(stream));
    if (want("raw_decrypt_gbps")) c.Add("raw_decrypt_gbps", raw.Run(false, o.crypto_records));
    if (want("ocf_gbps")) c.Add("ocf_gbps", ocf.Run(o.crypto_records));
    if (want("sw_tx_sendfile_gbps")) {
      TxResult sf = SwTx(k, sf_fd, o.sendfile_bytes, &kAes128Gcm13, true);
      c.Add("sw_tx_sendfile_gbps", sf.t);
      if (std::isfinite(sf.copies_per_byte)) copies.push_back(sf.copies_per_byte);
    }
    // The same transfers without TLS: what TCP over lo0 and the two
    // threads give with no cipher at all.
    if (want("plain_tx_sendfile_gbps"))
      c.Add("plain_tx_sendfile_gbps", SwTx(k, sf_fd, o.sendfile_bytes, nullptr, true).t);
    if (want("sw_tx_write_gbps"))
    {
      TxResult w = SwTx(k, sf_fd, o.write_bytes, &kAes128Gcm13, false);
      c.Add("sw_tx_write_gbps", w.t);
    }
    if (want("sw_rx_gbps")) {
      double cp = NAN;
      c.Add("sw_rx_gbps", SwRx(k, recs, &cp));
      if (std::isfinite(cp)) rx_copies.push_back(cp);
    }
    if (want("plain_rx_gbps")) c.Add("plain_rx_gbps", SwRx(k, recs, nullptr, false));
    if (want("userland_openssl_gbps")) c.Add("userland_openssl_gbps", ossl.Run(o.openssl_bytes));
    for (int n : scal)
      if (want("scaling") || want("scaling." + std::to_string(n)))
        c.Add("scaling." + std::to_string(n), Scaling(k, sf_fd, o.scaling_bytes, n, false));
    // The same 1,024 connections driven by poll(2), for comparison.
    if (want("scaling_poll_1024"))
      c.Add("scaling_poll_1024", Scaling(k, sf_fd, o.scaling_bytes, 1024, true));
    // Connections that have run before (their buffers autosized).
    for (int n : warm_scal)
      if (want("scaling_warm") || want("scaling_warm." + std::to_string(n)))
        c.Add("scaling_warm." + std::to_string(n),
              Scaling(k, sf_fd, o.scaling_bytes, n, false, o.scaling_warm_bytes));
    // The three modes over the same wire, each way; the offload modes join
    // the rounds once they work at all.
    for (WireFigure& f : wire) {
      if (!want(f.key) || (r > 0 && !f.first.reason.empty())) continue;
      WireResult w = f.rx ? WireRx(f.mode, wire_recs) : WireTx(f.mode, o.wire_bytes);
      if (w.gbps) {
        c.Add(f.key, *w.gbps);
        if (w.host_cpu_s_per_gib) c.Add(std::string("host_cpu:") + f.key, *w.host_cpu_s_per_gib);
        f.first.reason.clear();
      } else if (r == 0) {
        f.first.reason = w.reason;  // not to be had here: not tried again
      } else {
        c.Fail(f.key, w.reason);
      }
    }
    if (!o.json) fprintf(stderr, "round %d/%d done\n", r + 1, o.reps);
  }
  // One-off figures (their own kernels): a value, or NaN and why.
  auto one_off = [&c](const char* key, double (*f)(int, std::string*), int n) {
    std::string error;
    double x = f(n, &error);
    if (std::isfinite(x))
      c.Add(key, x);
    else
      c.Fail(key, error);
  };
  const int setup_rounds = std::min(o.reps, 3);
  if (want("session_setup_per_sec"))
    for (int r = 0; r < setup_rounds; r++)
      one_off("session_setup_per_sec", SessionSetup, o.setup_conns);
  if (want("idle_session_bytes")) one_off("idle_session_bytes", IdleSessionBytes, o.idle_conns);

  // The single-machine throughput figures, each with a per-CPU-second twin.
  static const char* const kThroughput[] = {
      "raw_crypto_gbps", "raw_crypto_stream_gbps", "raw_decrypt_gbps",
      "ocf_gbps",        "sw_tx_sendfile_gbps",    "sw_tx_write_gbps",
      "sw_rx_gbps",      "userland_openssl_gbps",  "plain_tx_sendfile_gbps",
      "plain_rx_gbps"};
  json j;
  for (const char* key : kThroughput) j[key] = Num(c.Med(key));
  j["ocf_driver"] = ocf.driver();
  json host_cpu = json::object();
  for (const WireFigure& f : wire) {
    double m = c.Med(f.key);
    j[f.key] = Num(m);
    if (!std::isfinite(m))
      j["reason"][f.key] = f.first.reason.empty() ? "not measured" : f.first.reason;
    host_cpu[f.key] = Num(c.Med(std::string("host_cpu:") + f.key));
  }
  // CPU seconds per GiB of the TLS side's host threads (WireResult).
  j["wire_host_cpu_s_per_gib"] = host_cpu;
  j["session_setup_per_sec"] = Num(c.Med("session_setup_per_sec"));
  j["idle_session_bytes"] = Num(c.Med("idle_session_bytes"));
  j["payload_copies_per_byte_sendfile"] = Num(copies.empty() ? NAN : *std::max_element(copies.begin(), copies.end()));
  j["payload_copies_per_byte_rx"] =
      Num(rx_copies.empty() ? NAN : *std::max_element(rx_copies.begin(), rx_copies.end()));
  json sc = json::object();
  for (int n : scal) sc[std::to_string(n)] = Num(c.Med("scaling." + std::to_string(n)));
  j["scaling"] = sc;
  j["scaling_poll_1024"] = Num(c.Med("scaling_poll_1024"));
  json sw = json::object();
  for (int n : warm_scal) sw[std::to_string(n)] = Num(c.Med("scaling_warm." + std::to_string(n)));
  j["scaling_warm"] = sw;
  auto ratio = [](double a, double b) { return std::isfinite(a) && std::isfinite(b) && b > 0 ? a / b : NAN; };
  double best12 = std::max(c.Med("scaling.1"), c.Med("scaling.2"));
  j["ratios"] = {
      {"sendfile_over_raw_crypto", Num(ratio(c.Med("sw_tx_sendfile_gbps"), c.Med("raw_crypto_gbps")))},
      {"sendfile_over_raw_crypto_stream",
       Num(ratio(c.Med("sw_tx_sendfile_gbps"), c.Med("raw_crypto_stream_gbps")))},
      {"rx_over_raw_decrypt", Num(ratio(c.Med("sw_rx_gbps"), c.Med("raw_decrypt_gbps")))},
      {"sendfile_over_userland_openssl",
       Num(ratio(c.Med("sw_tx_sendfile_gbps"), c.Med("userland_openssl_gbps")))},
      {"ocf_over_raw_crypto", Num(ratio(c.Med("ocf_gbps"), c.Med("raw_crypto_gbps")))},
      {"scaling_1024_over_best_1_2", Num(ratio(c.Med("scaling.1024"), best12))},
      // The same on warm connections (no bar): what concurrency costs
      // without the connections' ramp-up.
      {"scaling_warm_1024_over_best_1_2",
       Num(ratio(c.Med("scaling_warm.1024"),
                 std::max(c.Med("scaling_warm.1"), c.Med("scaling_warm.2"))))},
      // KTLS against the same transfer without TLS (no bar): what the
      // session costs on top of TCP over lo0.
      {"sendfile_over_plain_sendfile",
       Num(ratio(c.Med("sw_tx_sendfile_gbps"), c.Med("plain_tx_sendfile_gbps")))},
      {"rx_over_plain_rx", Num(ratio(c.Med("sw_rx_gbps"), c.Med("plain_rx_gbps")))},
      // The ceilings of the first three bars on this host (no bar): TCP over
      // lo0 with no cipher at all against the cipher; the KTLS worker's
      // bound (Collected::Add) against the cipher; and the worker's busy
      // share (medians of the per-round figures).
      {"plain_rx_over_raw_decrypt", Num(ratio(c.Med("plain_rx_gbps"), c.Med("raw_decrypt_gbps")))},
      {"sendfile_worker_bound_over_raw_crypto",
       Num(ratio(c.Med("worker_bound:sw_tx_sendfile_gbps"), c.Med("raw_crypto_gbps")))},
      {"rx_worker_bound_over_raw_decrypt",
       Num(ratio(c.Med("worker_bound:sw_rx_gbps"), c.Med("raw_decrypt_gbps")))},
      {"sendfile_worker_bound_over_userland_openssl",
       Num(ratio(c.Med("worker_bound:sw_tx_sendfile_gbps"), c.Med("userland_openssl_gbps")))},
      {"sendfile_worker_busy", Num(c.Med("worker_busy:sw_tx_sendfile_gbps"))},
      {"rx_worker_busy", Num(c.Med("worker_busy:sw_rx_gbps"))},
      // Over the same wire: offload against software, in throughput and in
      // the sender's host CPU per byte.
      {"ifnet_over_sw_wire", Num(ratio(c.Med("ifnet_tx_gbps"), c.Med("sw_wire_tx_gbps")))},
      {"toe_over_sw_wire", Num(ratio(c.Med("toe_tx_gbps"), c.Med("sw_wire_tx_gbps")))},
      {"ifnet_host_cpu_over_sw_wire",
       Num(ratio(c.Med("host_cpu:ifnet_tx_gbps"), c.Med("host_cpu:sw_wire_tx_gbps")))},
      {"toe_host_cpu_over_sw_wire",
       Num(ratio(c.Med("host_cpu:toe_tx_gbps"), c.Med("host_cpu:sw_wire_tx_gbps")))},
      {"ifnet_rx_over_sw_wire_rx", Num(ratio(c.Med("ifnet_rx_gbps"), c.Med("sw_wire_rx_gbps")))},
      {"toe_rx_over_sw_wire_rx", Num(ratio(c.Med("toe_rx_gbps"), c.Med("sw_wire_rx_gbps")))},
      {"ifnet_rx_host_cpu_over_sw_wire_rx",
       Num(ratio(c.Med("host_cpu:ifnet_rx_gbps"), c.Med("host_cpu:sw_wire_rx_gbps")))},
      {"toe_rx_host_cpu_over_sw_wire_rx",
       Num(ratio(c.Med("host_cpu:toe_rx_gbps"), c.Med("host_cpu:sw_wire_rx_gbps")))},
  };
  // The same figures over CPU time (see Tput), and the bar's ratios on them:
  // on a shared host these say how much of the CPU the framework spends
  // besides the cipher, whatever the other programs took.
  json cpu = json::object();
  for (const char* key : kThroughput) cpu[key] = Num(c.Med(std::string("cpu:") + key));
  json csc = json::object();
  for (int n : scal) csc[std::to_string(n)] = Num(c.Med("cpu:scaling." + std::to_string(n)));
  cpu["scaling"] = csc;
  cpu["scaling_poll_1024"] = Num(c.Med("cpu:scaling_poll_1024"));
  json csw = json::object();
  for (int n : warm_scal)
    csw[std::to_string(n)] = Num(c.Med("cpu:scaling_warm." + std::to_string(n)));
  cpu["scaling_warm"] = csw;
  j["cpu_gbps"] = cpu;
  double cbest12 = std::max(c.Med("cpu:scaling.1"), c.Med("cpu:scaling.2"));
  j["ratios_cpu"] = {
      {"sendfile_over_raw_crypto",
       Num(ratio(c.Med("cpu:sw_tx_sendfile_gbps"), c.Med("cpu:raw_crypto_gbps")))},
      {"sendfile_over_raw_crypto_stream",
       Num(ratio(c.Med("cpu:sw_tx_sendfile_gbps"), c.Med("cpu:raw_crypto_stream_gbps")))},
      {"rx_over_raw_decrypt", Num(ratio(c.Med("cpu:sw_rx_gbps"), c.Med("cpu:raw_decrypt_gbps")))},
      {"sendfile_over_userland_openssl",
       Num(ratio(c.Med("cpu:sw_tx_sendfile_gbps"), c.Med("cpu:userland_openssl_gbps")))},
      {"ocf_over_raw_crypto", Num(ratio(c.Med("cpu:ocf_gbps"), c.Med("cpu:raw_crypto_gbps")))},
      {"scaling_1024_over_best_1_2", Num(ratio(c.Med("cpu:scaling.1024"), cbest12))},
      {"scaling_warm_1024_over_best_1_2",
       Num(ratio(c.Med("cpu:scaling_warm.1024"),
                 std::max(c.Med("cpu:scaling_warm.1"), c.Med("cpu:scaling_warm.2"))))},
      {"sendfile_over_plain_sendfile",
       Num(ratio(c.Med("cpu:sw_tx_sendfile_gbps"), c.Med("cpu:plain_tx_sendfile_gbps")))},
      {"rx_over_plain_rx", Num(ratio(c.Med("cpu:sw_rx_gbps"), c.Med("cpu:plain_rx_gbps")))},
  };
  // Each throughput's lowest and highest round, next to its median: on
  // this kind of host a pipeline's rounds can differ by half.
  json range = json::object();
  for (const auto& [key, xs] : c.v) {
    if (key.rfind("cpu:", 0) == 0 || key.rfind("host_cpu:", 0) == 0 ||
        key.rfind("threads:", 0) == 0 || key.rfind("worker_", 0) == 0 || xs.empty())
      continue;
    auto [lo, hi] = std::minmax_element(xs.begin(), xs.end());
    range[key] = {Num(*lo), Num(*hi)};
  }
  j["range"] = range;
  // Each figure's CPU seconds per GiB by thread (medians over the rounds):
  // which of the kernel's threads (netisr, ktls_thr_N, callout, ...), the
  // calling thread ("caller") and the peer ("reader" / "writer") the bytes
  // cost. A thread absent from a round counts as 0 in it.
  json split = json::object();
  for (const auto& [key, xs] : c.v) {
    if (key.rfind("threads:", 0) != 0) continue;
    size_t tab = key.find('\t');
    std::string fig = key.substr(8, tab - 8), name = key.substr(tab + 1);
    auto rounds = c.v.find(fig);
    std::vector<double> all = xs;
    if (rounds != c.v.end() && rounds->second.size() > all.size())
      all.resize(rounds->second.size(), 0.0);
    split[fig][name] = Num(Median(all));
  }
  j["thread_cpu_s_per_gib"] = split;
  j["config"] = {{"repetitions", o.reps},
                 {"quick", o.quick},
                 {"ncpus", o.ncpus},
                 {"record_bytes", kRecord},
                 {"cipher", "AES-128-GCM TLS 1.3"},
                 {"sendfile_bytes", o.sendfile_bytes},
                 {"rx_bytes", recs.payload},
                 {"scaling_bytes", o.scaling_bytes},
                 {"scaling_warm_bytes_per_conn", o.scaling_warm_bytes},
                 {"idle_conns", o.idle_conns},
                 {"setup_conns", o.setup_conns},
                 {"tunables", Kernel::extra},
                 {"sysctls", Kernel::sysctls}};
  // Rounds that gave no figure: on stderr and under "failed"; a figure no
  // round gave is null, with the first round's error as its reason.
  for (const auto& [key, f] : c.failed) {
    json e = json::object();
    c.Report(key, key == "session_setup_per_sec" ? setup_rounds
                  : key == "idle_session_bytes"  ? 1
                                                 : o.reps,
             "", &e);
    j["failed"][key] = e;
    if (!std::isfinite(c.Med(key)) && !(j.contains("reason") && j["reason"].contains(key)))
      j["reason"][key] = f.first;
  }
  uk_close(k.p, sf_fd);
  printf("%s\n", j.dump(o.json ? -1 : 2).c_str());
  return 0;
}
