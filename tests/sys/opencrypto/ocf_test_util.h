// Helpers for the OCF tests: kernels, sessions, synchronous waits on a
// request, and buffers of every kind OCF walks (contiguous, iovec arrays,
// page vectors, mbuf chains with M_EXTPG mbufs) built from flat bytes and
// read back independently of the framework's own cursor.
#ifndef UKTLS_TESTS_SYS_OPENCRYPTO_OCF_TEST_UTIL_H_
#define UKTLS_TESTS_SYS_OPENCRYPTO_OCF_TEST_UTIL_H_

#include <sys/uio.h>

#include <condition_variable>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <random>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "sys/kern/kernel.h"
#include "sys/kern/vm_page.h"
#include "sys/opencrypto/crypto.h"
#include "sys/sys/mbuf.h"
#include "sys/sys/sysctl.h"

namespace uk_test {

using Bytes = std::vector<uint8_t>;

inline Bytes H(const std::string& hex) {
  Bytes out;
  for (size_t i = 0; i + 1 < hex.size(); i += 2)
    out.push_back(static_cast<uint8_t>(std::stoi(hex.substr(i, 2), nullptr, 16)));
  return out;
}
inline Bytes S(const std::string& s) { return Bytes(s.begin(), s.end()); }
inline std::string Hex(const Bytes& b) {
  static const char* d = "0123456789abcdef";
  std::string s;
  for (uint8_t c : b) {
    s += d[c >> 4];
    s += d[c & 15];
  }
  return s;
}
inline Bytes Cat(Bytes a, const Bytes& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

inline std::unique_ptr<uk::kernel> Boot(const std::string& tunables = "",
                                        int ncpus = 2) {
  uk::boot_params bp;
  bp.ncpus = ncpus;
  bp.tunables = tunables;
  int err = 0;
  auto k = uk::kernel::boot(bp, &err);
  EXPECT_EQ(err, 0);
  return k;
}

inline uint64_t SysctlU64(uk::kernel& k, const std::string& name) {
  uint64_t v = 0;
  size_t len = sizeof(v);
  EXPECT_EQ(k.sysctl->sysctlbyname(name, &v, &len, nullptr, 0), 0) << name;
  return v;
}
inline int SysctlInt(uk::kernel& k, const std::string& name) {
  int v = 0;
  size_t len = sizeof(v);
  EXPECT_EQ(k.sysctl->sysctlbyname(name, &v, &len, nullptr, 0), 0) << name;
  return v;
}
inline int SetSysctlInt(uk::kernel& k, const std::string& name, int v) {
  return k.sysctl->sysctlbyname(name, nullptr, nullptr, &v, sizeof(v));
}

// Waits for one request's callback, whichever thread runs it.
class Waiter {
 public:
  void Arm(uk::cryptop* crp) {
    crp->crp_opaque = this;
    crp->crp_callback = [](uk::cryptop* c) {
      auto* w = static_cast<Waiter*>(c->crp_opaque);
      std::lock_guard<std::mutex> l(w->mu_);
      w->done_ = true;
      w->etype_ = c->crp_etype;
      w->cv_.notify_all();
      return 0;
    };
  }
  int Wait() {
    std::unique_lock<std::mutex> l(mu_);
    cv_.wait(l, [this] { return done_; });
    done_ = false;
    return etype_;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool done_ = false;
  int etype_ = -1;
};

// Dispatches crp and waits for it; returns crp_etype. Resubmits on EAGAIN
// as FreeBSD's consumers do, up to |retries| times.
inline int RunReq(uk::cryptop* crp, int retries = 2) {
  Waiter w;
  for (;;) {
    w.Arm(crp);
    crp->crp_flags |= uk::CRYPTO_F_CBIMM;
    int e = uk::crypto_dispatch(crp);
    if (e != 0) return e;
    int et = w.Wait();
    if (et == EAGAIN && retries-- > 0) continue;
    return et;
  }
}

enum class BufKind { kContig, kUio, kVmpage, kMbuf, kExtpg };
inline const char* BufKindName(BufKind k) {
  switch (k) {
    case BufKind::kContig:
      return "contig";
    case BufKind::kUio:
      return "uio";
    case BufKind::kVmpage:
      return "vmpage";
    case BufKind::kMbuf:
      return "mbuf";
    case BufKind::kExtpg:
      return "extpg";
  }
  return "?";
}
constexpr BufKind kAllBufKinds[] = {BufKind::kContig, BufKind::kUio,
                                    BufKind::kVmpage, BufKind::kMbuf,
                                    BufKind::kExtpg};

// Storage of one kind holding a given byte string, laid out with splits
// chosen by |seed| (odd iovec lengths, pages at odd offsets, M_EXTPG mbufs
// with header, pages at odd offsets, trailer and a non-zero m_epg_off).
class TestBuf {
 public:
  TestBuf(BufKind kind, const Bytes& data, uint32_t seed) : kind_(kind) {
    std::mt19937 rng(seed);
    size_t n = data.size();
    switch (kind) {
      case BufKind::kContig:
        flat_ = data;
        cb_.cb_type = uk::CRYPTO_BUF_CONTIG;
        cb_.cb_buf = reinterpret_cast<char*>(flat_.data());
        cb_.cb_buf_len = static_cast<int>(n);
        break;
      case BufKind::kUio: {
        size_t off = 0;
        while (off < n || iov_.empty()) {
          size_t l = std::min<size_t>(n - off, 1 + rng() % 5000);
          if (rng() % 7 == 0) l = 0;  // empty iovecs are legal
          auto* p = static_cast<uint8_t*>(malloc(std::max<size_t>(l, 1)));
          if (l > 0) memcpy(p, data.data() + off, l);
          mem_.push_back(p);
          iov_.push_back({p, l});
          off += l;
        }
        cb_.cb_type = uk::CRYPTO_BUF_UIO;
        cb_.cb_iov = iov_.data();
        cb_.cb_iovcnt = static_cast<int>(iov_.size());
        break;
      }
      case BufKind::kVmpage: {
        size_t off0 = rng() % uk::PAGE_SIZE;
        size_t np = (off0 + n + uk::PAGE_SIZE - 1) / uk::PAGE_SIZE;
        for (size_t i = 0; i < std::max<size_t>(np, 1); i++) pgs_.push_back(NewPage());
        for (size_t i = 0; i < n; i++) {
          size_t a = off0 + i;
          pgs_[a / uk::PAGE_SIZE]->data[a % uk::PAGE_SIZE] = data[i];
        }
        cb_.cb_type = uk::CRYPTO_BUF_VMPAGE;
        cb_.cb_vm_page = pgs_.data();
        cb_.cb_vm_page_len = static_cast<int>(n);
        cb_.cb_vm_page_offset = static_cast<int>(off0);
        break;
      }
      case BufKind::kMbuf:
      case BufKind::kExtpg: {
        size_t off = 0;
        uk::mbuf** tail = &head_;
        bool ext = kind == BufKind::kExtpg;
        while (off < n || head_ == nullptr) {
          uk::mbuf* m;
          if (ext && (rng() % 4 != 0)) {
            m = NewExtpg(data, &off, rng);
          } else {
            m = new uk::mbuf();
            size_t l = std::min<size_t>(n - off, 1 + rng() % uk::MLEN);
            size_t lead = rng() % (uk::MLEN - l + 1);
            m->m_data = m->m_dat + lead;
            m->m_len = static_cast<int>(l);
            if (l > 0) memcpy(m->m_data, data.data() + off, l);
            off += l;
          }
          mbufs_.push_back(m);
          *tail = m;
          tail = &m->m_next;
        }
        cb_.cb_type = uk::CRYPTO_BUF_MBUF;
        cb_.cb_mbuf = head_;
        break;
      }
    }
  }
  ~TestBuf() {
    for (void* p : mem_) free(p);
    for (uk::mbuf* m : mbufs_) delete m;
    for (uk::vm_page* pg : allpgs_) {
      free(pg->data);
      delete pg;
    }
  }
  TestBuf(const TestBuf&) = delete;
  TestBuf& operator=(const TestBuf&) = delete;

  const uk::crypto_buffer& cb() const { return cb_; }

  // The bytes, read straight from the storage (not through OCF's cursor).
  Bytes Read() const {
    Bytes out;
    switch (kind_) {
      case BufKind::kContig:
        return flat_;
      case BufKind::kUio:
        for (const auto& v : iov_) {
          auto* p = static_cast<uint8_t*>(v.iov_base);
          out.insert(out.end(), p, p + v.iov_len);
        }
        return out;
      case BufKind::kVmpage:
        for (int i = 0; i < cb_.cb_vm_page_len; i++) {
          size_t a = cb_.cb_vm_page_offset + i;
          out.push_back(pgs_[a / uk::PAGE_SIZE]->data[a % uk::PAGE_SIZE]);
        }
        return out;
      case BufKind::kMbuf:
      case BufKind::kExtpg:
        for (const uk::mbuf* m = head_; m != nullptr; m = m->m_next) {
          if (m->m_flags & uk::M_EXTPG) {
            Bytes all(m->m_epg_hdr, m->m_epg_hdr + m->m_epg_hdrlen);
            for (int i = 0; i < m->m_epg_npgs; i++) {
              int o = i == 0 ? m->m_epg_1st_off : 0;
              int l = i == m->m_epg_npgs - 1 ? m->m_epg_last_len
                                             : static_cast<int>(uk::PAGE_SIZE) - o;
              all.insert(all.end(), m->m_epg_pa[i]->data + o,
                         m->m_epg_pa[i]->data + o + l);
            }
            all.insert(all.end(), m->m_epg_trail, m->m_epg_trail + m->m_epg_trllen);
            out.insert(out.end(), all.begin() + m->m_epg_off,
                       all.begin() + m->m_epg_off + m->m_len);
          } else {
            out.insert(out.end(), m->m_data, m->m_data + m->m_len);
          }
        }
        return out;
    }
    return out;
  }

 private:
  uk::vm_page* NewPage() {
    auto* pg = new uk::vm_page();
    pg->data = static_cast<uint8_t*>(aligned_alloc(uk::PAGE_SIZE, uk::PAGE_SIZE));
    memset(pg->data, 0xa5, uk::PAGE_SIZE);
    pg->pool = nullptr;
    allpgs_.push_back(pg);
    return pg;
  }

  // An M_EXTPG mbuf: [skip bytes] hdr ‖ pages ‖ trailer, m_epg_off = skip.
  uk::mbuf* NewExtpg(const Bytes& data, size_t* off, std::mt19937& rng) {
    auto* m = new uk::mbuf();
    m->m_flags = uk::M_EXTPG;
    size_t left = data.size() - *off;
    int skip = static_cast<int>(rng() % 3);  // leading bytes trimmed away
    int hdr = static_cast<int>(std::min<size_t>(rng() % (uk::MBUF_PEXT_HDR_LEN + 1), 64));
    hdr = std::max(hdr, skip);
    int trl = static_cast<int>(rng() % (uk::MBUF_PEXT_TRAIL_LEN + 1));
    int first = static_cast<int>(rng() % uk::PAGE_SIZE);
    size_t maxpages = uk::MBUF_PEXT_MAX_PGS_UK * uk::PAGE_SIZE - first;
    size_t body = std::min<size_t>(left, std::min<size_t>(maxpages, 1 + rng() % 20000));
    // Split |body| (the data this mbuf carries) into header/pages/trailer.
    size_t in_hdr = std::min<size_t>(body, hdr - skip);
    size_t in_trl = std::min<size_t>(body - in_hdr, trl);
    size_t in_pg = body - in_hdr - in_trl;
    m->m_epg_hdrlen = static_cast<uint8_t>(skip + in_hdr);
    for (int i = 0; i < skip; i++) m->m_epg_hdr[i] = static_cast<char>(0xee);
    if (in_hdr > 0) memcpy(m->m_epg_hdr + skip, data.data() + *off, in_hdr);
    *off += in_hdr;
    if (in_pg > 0) {
      m->m_epg_1st_off = static_cast<uint16_t>(first);
      size_t pos = 0;
      int i = 0;
      while (pos < in_pg) {
        uk::vm_page* pg = NewPage();
        size_t o = i == 0 ? first : 0;
        size_t l = std::min(uk::PAGE_SIZE - o, in_pg - pos);
        memcpy(pg->data + o, data.data() + *off + pos, l);
        m->m_epg_pa[i++] = pg;
        pos += l;
        m->m_epg_last_len = static_cast<uint16_t>(l);
      }
      m->m_epg_npgs = static_cast<uint8_t>(i);
      *off += in_pg;
    }
    m->m_epg_trllen = static_cast<uint8_t>(in_trl);
    if (in_trl > 0) memcpy(m->m_epg_trail, data.data() + *off, in_trl);
    *off += in_trl;
    m->m_epg_off = skip;
    m->m_len = static_cast<int>(in_hdr + in_pg + in_trl);
    return m;
  }

  BufKind kind_;
  uk::crypto_buffer cb_;
  Bytes flat_;
  std::vector<void*> mem_;
  std::vector<struct iovec> iov_;
  std::vector<uk::vm_page*> pgs_;
  std::vector<uk::vm_page*> allpgs_;
  std::vector<uk::mbuf*> mbufs_;
  uk::mbuf* head_ = nullptr;
};

}  // namespace uk_test

#endif  // UKTLS_TESTS_SYS_OPENCRYPTO_OCF_TEST_UTIL_H_
