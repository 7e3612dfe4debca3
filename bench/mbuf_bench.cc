// mbuf(9) hot paths: allocation and free of chains, unmapped (M_EXTPG)
// page mbufs as sendfile and sosend build them, m_copym (what tcp_output
// does for every segment), m_copydata (reading a record header across
// mbufs) and m_uiotombuf/m_mbuftouio (the copy in and out of a write and a
// read). Per-operation CPU time.
#include <cstring>
#include <memory>
#include <vector>

#include "benchmark/benchmark.h"
#include "sys/kern/kernel.h"
#include "sys/kern/vm_page.h"
#include "sys/sys/mbuf.h"
#include "sys/sys/uio.h"

namespace {

uk::kernel& K() {
  static std::unique_ptr<uk::kernel> k = [] {
    uk::boot_params bp;
    bp.ncpus = 1;
    bp.default_modules = false;
    int err = 0;
    return uk::kernel::boot(bp, &err);
  }();
  return *k;
}

void BM_MGetFree(benchmark::State& state) {
  uk::kernel& k = K();
  for (auto _ : state) {
    uk::mbuf* m = uk::m_gethdr(k, uk::M_NOWAIT, uk::MT_DATA);
    benchmark::DoNotOptimize(m);
    uk::m_free(m);
  }
}
BENCHMARK(BM_MGetFree)->Name("mbuf/m_gethdr+m_free");

// A chain of n 2 KiB clusters, built and freed.
void BM_ClusterChain(benchmark::State& state) {
  uk::kernel& k = K();
  const int n = static_cast<int>(state.range(0));
  for (auto _ : state) {
    uk::mbuf* m = uk::m_getm2(k, nullptr, n * uk::MCLBYTES, uk::M_NOWAIT, uk::MT_DATA,
                              uk::M_PKTHDR);
    benchmark::DoNotOptimize(m);
    uk::m_freem(m);
  }
  state.SetItemsProcessed(state.iterations() * n);
}
BENCHMARK(BM_ClusterChain)->Name("mbuf/m_getm2+m_freem/clusters")->Arg(1)->Arg(8)->Arg(64);

// One unmapped mbuf with a record's four pages: anonymous (sosend: fresh
// pages) or referring to file pages (sendfile: references only).
void BM_ExtPgs(benchmark::State& state) {
  uk::kernel& k = K();
  const bool anon = state.range(0) != 0;
  uk::vm_page* file[4];
  k.vm->alloc_n(4, file);
  for (auto _ : state) {
    uk::mbuf* m = uk::mb_alloc_ext_pgs(k, uk::M_NOWAIT, anon);
    if (anon) {
      k.vm->alloc_n(4, m->m_epg_pa);
    } else {
      for (int i = 0; i < 4; i++) {
        uk::PagePool::hold(file[i]);
        m->m_epg_pa[i] = file[i];
      }
    }
    m->m_epg_npgs = 4;
    m->m_epg_last_len = uk::PAGE_SIZE;
    m->m_len = 4 * uk::PAGE_SIZE;
    benchmark::DoNotOptimize(m);
    uk::m_free(m);
  }
  for (auto* pg : file) uk::PagePool::release(pg);
  state.SetLabel(anon ? "anonymous pages" : "file pages by reference");
}
BENCHMARK(BM_ExtPgs)->Name("mbuf/mb_alloc_ext_pgs+4pages+m_free")->Arg(1)->Arg(0);

// A send buffer of n records (unmapped mbufs of 16 KiB); m_copym of one
// segment's worth (16344 bytes, lo0's MSS) at a moving offset, as
// tcp_output does, then the copy freed.
void BM_CopymExtPgs(benchmark::State& state) {
  uk::kernel& k = K();
  const int n = 16;
  uk::mbuf* top = nullptr;
  uk::mbuf** tail = &top;
  for (int r = 0; r < n; r++) {
    uk::mbuf* m = uk::mb_alloc_ext_pgs(k, uk::M_NOWAIT, true);
    k.vm->alloc_n(4, m->m_epg_pa);
    m->m_epg_npgs = 4;
    m->m_epg_last_len = uk::PAGE_SIZE;
    m->m_len = 4 * uk::PAGE_SIZE;
    *tail = m;
    tail = &m->m_next;
  }
  const int total = n * 4 * uk::PAGE_SIZE, seg = 16344;
  int off = 0;
  for (auto _ : state) {
    if (off + seg > total) off = 0;
    uk::mbuf* c = uk::m_copym(top, off, seg, uk::M_NOWAIT);
    benchmark::DoNotOptimize(c);
    uk::m_freem(c);
    off += seg;
  }
  uk::m_freem(top);
  state.SetBytesProcessed(state.iterations() * seg);
}
BENCHMARK(BM_CopymExtPgs)->Name("mbuf/m_copym/extpg_records/16344");

void BM_CopymClusters(benchmark::State& state) {
  uk::kernel& k = K();
  const int total = 256 * 1024, seg = static_cast<int>(state.range(0));
  uk::mbuf* top = uk::m_getm2(k, nullptr, total, uk::M_NOWAIT, uk::MT_DATA, 0);
  for (uk::mbuf* m = top; m; m = m->m_next) m->m_len = uk::M_TRAILINGSPACE(m);
  int have = static_cast<int>(uk::m_length(top, nullptr));
  int off = 0;
  for (auto _ : state) {
    if (off + seg > have) off = 0;
    uk::mbuf* c = uk::m_copym(top, off, seg, uk::M_NOWAIT);
    benchmark::DoNotOptimize(c);
    uk::m_freem(c);
    off += seg;
  }
  uk::m_freem(top);
  state.SetBytesProcessed(state.iterations() * seg);
}
BENCHMARK(BM_CopymClusters)->Name("mbuf/m_copym/clusters")->Arg(1448)->Arg(16344);

// Reading a 5-byte TLS header that straddles two mbufs (ktls_check_rx).
void BM_CopydataHeader(benchmark::State& state) {
  uk::kernel& k = K();
  uk::mbuf* top = uk::m_getm2(k, nullptr, 4 * uk::MCLBYTES, uk::M_NOWAIT, uk::MT_DATA, 0);
  for (uk::mbuf* m = top; m; m = m->m_next) m->m_len = uk::M_TRAILINGSPACE(m);
  uint8_t hdr[5];
  for (auto _ : state) {
    uk::m_copydata(top, uk::MCLBYTES - 2, sizeof hdr, hdr);
    benchmark::DoNotOptimize(hdr);
  }
  uk::m_freem(top);
}
BENCHMARK(BM_CopydataHeader)->Name("mbuf/m_copydata/tls_header_straddling");

// The copy in of write(2) (m_uiotombuf, clusters or unmapped pages as KTLS
// uses) and the copy out of read(2) (m_mbuftouio).
void BM_UioToMbuf(benchmark::State& state) {
  uk::kernel& k = K();
  const bool extpg = state.range(0) != 0;
  std::vector<char> src(16384, 'x');
  for (auto _ : state) {
    iovec iov{src.data(), src.size()};
    uk::uio u;
    u.uio_iov = &iov;
    u.uio_iovcnt = 1;
    u.uio_resid = src.size();
    u.uio_rw = uk::UIO_WRITE;
    int error = 0;
    uk::mbuf* m = uk::m_uiotombuf(k, &u, uk::M_NOWAIT, 0, extpg ? 16384 : 0,
                                  extpg ? uk::M_EXTPG : 0, &error);
    benchmark::DoNotOptimize(m);
    uk::m_freem(m);
  }
  state.SetBytesProcessed(state.iterations() * 16384);
  state.SetLabel(extpg ? "unmapped pages" : "clusters");
}
BENCHMARK(BM_UioToMbuf)->Name("mbuf/m_uiotombuf/16384")->Arg(0)->Arg(1);

void BM_MbufToUio(benchmark::State& state) {
  uk::kernel& k = K();
  uk::mbuf* top = uk::m_getm2(k, nullptr, 16384, uk::M_NOWAIT, uk::MT_DATA, 0);
  for (uk::mbuf* m = top; m; m = m->m_next) m->m_len = uk::M_TRAILINGSPACE(m);
  int have = static_cast<int>(uk::m_length(top, nullptr));
  std::vector<char> dst(have);
  for (auto _ : state) {
    iovec iov{dst.data(), dst.size()};
    uk::uio u;
    u.uio_iov = &iov;
    u.uio_iovcnt = 1;
    u.uio_resid = dst.size();
    u.uio_rw = uk::UIO_READ;
    uk::m_mbuftouio(&u, top, 0, have);
    benchmark::DoNotOptimize(dst.data());
  }
  uk::m_freem(top);
  state.SetBytesProcessed(state.iterations() * have);
}
BENCHMARK(BM_MbufToUio)->Name("mbuf/m_mbuftouio/16384");

}  // namespace

BENCHMARK_MAIN();
