// KTLS record framing and parsing: ktls_frame() on a batch of unmapped
// records (header, nonce, trailer length, session reference per record),
// ktls_seq(), the receive side's header check, and a whole received record
// parsed and decrypted (ktls_rx_decrypt_record) for small and full-size
// records. Per-record CPU time.
#include <cstring>
#include <memory>
#include <vector>

#include "benchmark/benchmark.h"
#include "sys/kern/kernel.h"
#include "sys/kern/uipc_ktls.h"
#include "sys/kern/vm_page.h"
#include "sys/sys/mbuf.h"
#include "tests/sys/kern/ktls_test_util.h"

namespace {

using ktls_test::Suite;

const Suite kSuites[] = {
    {"aes128_gcm_1_2", CRYPTO_AES_NIST_GCM_16, 16, 0, TLS_MINOR_VER_TWO},
    {"aes128_gcm_1_3", CRYPTO_AES_NIST_GCM_16, 16, 0, TLS_MINOR_VER_THREE},
    {"chacha20_poly1305_1_3", CRYPTO_CHACHA20_POLY1305, 32, 0, TLS_MINOR_VER_THREE},
    {"aes128_cbc_1_2_sha1", CRYPTO_AES_CBC, 16, CRYPTO_SHA1_HMAC, TLS_MINOR_VER_TWO},
};

struct Fixture {
  explicit Fixture(const Suite& s, int direction) {
    uk::boot_params bp;
    bp.ncpus = 1;
    int error = 0;
    k = uk::kernel::boot(bp, &error);
    ktls_test::BuildTlsEnable(s, 0, &keys);
    if (uk::ktls_create_session(*k, nullptr, &keys.en, &tls, direction) != 0 ||
        uk::ktls_try_sw(tls.get(), direction) != 0)
      tls.reset();
  }
  ~Fixture() {
    tls.reset();
    k.reset();
  }
  std::unique_ptr<uk::kernel> k;
  ktls_test::TlsKeys keys;
  uk::RefPtr<uk::ktls_session> tls;
};

// ktls_frame + ktls_seq over a batch of 16 records of len bytes each (the
// mbufs and their pages are made once; framing is redone each time).
void BM_Frame(benchmark::State& state) {
  const Suite& s = kSuites[state.range(0)];
  const int len = static_cast<int>(state.range(1));
  Fixture f(s, uk::KTLS_TX);
  if (!f.tls) {
    state.SkipWithError("no session");
    return;
  }
  constexpr int kBatch = 16;
  std::vector<uk::mbuf*> recs;
  int npgs = (len + uk::PAGE_SIZE - 1) / uk::PAGE_SIZE;
  for (int i = 0; i < kBatch; i++) {
    uk::mbuf* m = uk::mb_alloc_ext_pgs(*f.k, uk::M_NOWAIT, true);
    f.k->vm->alloc_n(npgs, m->m_epg_pa);
    m->m_epg_npgs = static_cast<uint8_t>(npgs);
    m->m_epg_last_len = static_cast<uint16_t>(len - (npgs - 1) * uk::PAGE_SIZE);
    recs.push_back(m);
  }
  uint64_t seq = 0;
  for (auto _ : state) {
    for (int i = 0; i < kBatch; i++) {
      uk::mbuf* m = recs[i];
      m->m_len = len;
      m->m_epg_hdrlen = m->m_epg_trllen = 0;
      m->m_next = i + 1 < kBatch ? recs[i + 1] : nullptr;
    }
    int cnt = 0;
    uk::ktls_frame(recs[0], f.tls.get(), &cnt, TLS_RLTYPE_APP);
    uk::ktls_seq(&seq, recs[0]);
    benchmark::DoNotOptimize(cnt);
    // Drop the per-record session references ktls_frame took.
    for (uk::mbuf* m : recs) {
      uk::ktls_free(m->m_epg_tls);
      m->m_epg_tls = nullptr;
    }
  }
  for (uk::mbuf* m : recs) {
    m->m_next = nullptr;
    uk::m_free(m);
  }
  state.SetItemsProcessed(state.iterations() * kBatch);
  state.SetLabel(s.name);
}
BENCHMARK(BM_Frame)
    ->Name("ktls/frame+seq")
    ->ArgsProduct({{0, 1, 2, 3}, {1024, 16384}});

void BM_RxCheckHeader(benchmark::State& state) {
  Fixture f(kSuites[1], uk::KTLS_RX);
  if (!f.tls) {
    state.SkipWithError("no session");
    return;
  }
  tls_record_layer hdr{};
  hdr.tls_type = TLS_RLTYPE_APP;
  hdr.tls_vmajor = 3;
  hdr.tls_vminor = 3;
  hdr.tls_length = htons(16384 + 17);
  int len = 0;
  for (auto _ : state) {
    int e = uk::ktls_rx_check_header(f.tls.get(), &hdr, &len);
    benchmark::DoNotOptimize(e);
    benchmark::DoNotOptimize(len);
  }
}
BENCHMARK(BM_RxCheckHeader)->Name("ktls/rx_check_header");

// A received record (made by OpenSSL EVP) parsed, authenticated and
// decrypted in place; the ciphertext is restored from a copy each time
// (that copy is part of the figure, as ktls_decrypt's private copy is).
void BM_RxDecryptRecord(benchmark::State& state) {
  const Suite& s = kSuites[state.range(0)];
  const int len = static_cast<int>(state.range(1));
  Fixture f(s, uk::KTLS_RX);
  if (!f.tls) {
    state.SkipWithError("no session");
    return;
  }
  std::vector<uint8_t> pt(len, 0x42);
  auto rec = ktls_test::EncryptRecord(s, f.keys, 7, TLS_RLTYPE_APP, pt.data(), len);
  std::vector<uint8_t> work(rec.size());
  tls_get_record tgr;
  for (auto _ : state) {
    memcpy(work.data(), rec.data(), rec.size());
    int e = uk::ktls_rx_decrypt_record(f.tls.get(), work.data(),
                                       static_cast<int>(work.size()), 7, &tgr);
    if (e != 0) {
      state.SkipWithError("decrypt failed");
      break;
    }
  }
  state.SetBytesProcessed(state.iterations() * len);
  state.SetLabel(s.name);
}
BENCHMARK(BM_RxDecryptRecord)
    ->Name("ktls/rx_decrypt_record")
    ->ArgsProduct({{0, 1, 2, 3}, {64, 1024, 16384}});

}  // namespace

BENCHMARK_MAIN();
