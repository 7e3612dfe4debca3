// Throughput of KTLS software encryption per suite: one 16 KiB record
// framed and encrypted through ktls_ocf and OCF (whichever driver OCF
// picks), in place (anonymous pages, as sosend builds them) and into new
// pages (file pages, as sendfile builds them).
#include <cstring>
#include <memory>

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
    {"aes256_gcm_1_3", CRYPTO_AES_NIST_GCM_16, 32, 0, TLS_MINOR_VER_THREE},
    {"chacha20_poly1305_1_3", CRYPTO_CHACHA20_POLY1305, 32, 0, TLS_MINOR_VER_THREE},
    {"aes128_cbc_1_2_sha1", CRYPTO_AES_CBC, 16, CRYPTO_SHA1_HMAC, TLS_MINOR_VER_TWO},
    {"aes256_cbc_1_2_sha384", CRYPTO_AES_CBC, 32, CRYPTO_SHA2_384_HMAC, TLS_MINOR_VER_TWO},
    {"sm4_gcm_1_3", CRYPTO_SM4_GCM_16, 16, 0, TLS_MINOR_VER_THREE},
};

void BM_KtlsEncrypt(benchmark::State& state) {
  const Suite& s = kSuites[state.range(0)];
  const bool anon = state.range(1) != 0;
  const int len = 16384;
  uk::boot_params bp;
  bp.ncpus = 1;
  int error = 0;
  auto k = uk::kernel::boot(bp, &error);
  ktls_test::TlsKeys keys;
  ktls_test::BuildTlsEnable(s, 0, &keys);
  uk::RefPtr<uk::ktls_session> tls;
  if (uk::ktls_create_session(*k, nullptr, &keys.en, &tls, uk::KTLS_TX) != 0 ||
      uk::ktls_try_sw(tls.get(), uk::KTLS_TX) != 0) {
    state.SkipWithError("no session");
    return;
  }
  auto st = std::make_unique<uk::ktls_ocf_encrypt_state>();
  uk::vm_page* file[4];
  k->vm->alloc_n(4, file);
  for (auto* pg : file) memset(uk::PHYS_TO_DMAP(pg), 0x5a, uk::PAGE_SIZE);
  uint64_t seq = 0;
  for (auto _ : state) {
    uk::mbuf* m = uk::mb_alloc_ext_pgs(*k, uk::M_NOWAIT, anon);
    if (anon) {
      k->vm->alloc_n(4, m->m_epg_pa);
    } else {
      for (int i = 0; i < 4; i++) {
        uk::PagePool::hold(file[i]);
        m->m_epg_pa[i] = file[i];
      }
    }
    m->m_epg_npgs = 4;
    m->m_epg_last_len = uk::PAGE_SIZE;
    m->m_len = len;
    int cnt = 0;
    uk::ktls_frame(m, tls.get(), &cnt, TLS_RLTYPE_APP);
    m->m_epg_seqno = seq++;
    if (uk::ktls_encrypt_record(*k, m, st.get()) != 0) {
      state.SkipWithError("encrypt failed");
      uk::m_freem(m);
      break;
    }
    uk::m_freem(m);
  }
  state.SetBytesProcessed(state.iterations() * len);
  state.SetLabel(std::string(s.name) + (anon ? " in-place" : " new-pages"));
  for (auto* pg : file) uk::PagePool::release(pg);
  tls.reset();
  k.reset();
}

BENCHMARK(BM_KtlsEncrypt)
    ->ArgsProduct({{0, 1, 2, 3, 4, 5}, {1, 0}})
    ->Unit(benchmark::kMicrosecond);

}  // namespace

BENCHMARK_MAIN();
