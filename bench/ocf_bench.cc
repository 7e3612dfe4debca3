// OCF overhead: 16 KiB AES-128-GCM records (the TLS maximum) encrypted
// through crypto_dispatch() on each driver, next to the same work done by
// calling IPsec-MB and OpenSSL EVP directly, so the framework's cost is the
// difference. Buffers: one contiguous 16 KiB buffer, and the same bytes as a
// page vector starting at an odd offset (how an M_EXTPG record's pages look
// to a driver). AAD is a separate 13-byte TLS header, the tag goes after the
// payload, as ktls_ocf does.
#include <intel-ipsec-mb.h>
#include <openssl/evp.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <vector>

#include "benchmark/benchmark.h"
#include "sys/kern/kernel.h"
#include "sys/kern/vm_page.h"
#include "sys/opencrypto/crypto.h"
#include "sys/opencrypto/crypto_drv.h"
#include "sys/sys/module.h"

namespace {

constexpr int kRecord = 16384;
const uint8_t kKey[16] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16};
const uint8_t kIv[12] = {9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9};
const uint8_t kAad[13] = {0, 0, 0, 0, 0, 0, 0, 1, 23, 3, 3, 64, 0};

std::unique_ptr<uk::kernel>& Kernel() {
  static std::unique_ptr<uk::kernel> k;
  return k;
}

struct Buffer {
  std::vector<uint8_t> flat = std::vector<uint8_t>(kRecord + 16, 0x5a);
};

void BM_IpsecMbDirect(benchmark::State& state) {
  IMB_MGR* m = alloc_mb_mgr(0);
  IMB_ARCH arch;
  init_mb_mgr_auto(m, &arch);
  auto* key = static_cast<gcm_key_data*>(aligned_alloc(64, sizeof(gcm_key_data) + 64));
  IMB_AES128_GCM_PRE(m, kKey, key);
  Buffer b;
  const int len = static_cast<int>(state.range(0));
  for (auto _ : state) {
    gcm_context_data ctx;
    IMB_AES128_GCM_INIT(m, key, &ctx, kIv, kAad, sizeof(kAad));
    IMB_AES128_GCM_ENC_UPDATE(m, key, &ctx, b.flat.data(), b.flat.data(), len);
    IMB_AES128_GCM_ENC_FINALIZE(m, key, &ctx, b.flat.data() + len, 16);
    benchmark::DoNotOptimize(b.flat.data());
  }
  state.SetBytesProcessed(state.iterations() * len);
  free(key);
  free_mb_mgr(m);
}
BENCHMARK(BM_IpsecMbDirect)->Name("raw/ipsecmb/aes128gcm")->Arg(kRecord)->Arg(64);

// The same call sequence over a record laid out in pages at an odd offset
// (five update calls), the library's own cost of scatter/gather.
void BM_IpsecMbDirectPages(benchmark::State& state) {
  IMB_MGR* m = alloc_mb_mgr(0);
  IMB_ARCH arch;
  init_mb_mgr_auto(m, &arch);
  auto* key = static_cast<gcm_key_data*>(aligned_alloc(64, sizeof(gcm_key_data) + 64));
  IMB_AES128_GCM_PRE(m, kKey, key);
  std::vector<uint8_t*> pages;
  for (int i = 0; i < 5; i++)
    pages.push_back(static_cast<uint8_t*>(aligned_alloc(4096, 4096)));
  uint8_t tag[16];
  for (auto _ : state) {
    gcm_context_data ctx;
    IMB_AES128_GCM_INIT(m, key, &ctx, kIv, kAad, sizeof(kAad));
    int left = kRecord, off = 1234;
    for (int i = 0; left > 0; i++) {
      int n = std::min(left, 4096 - off);
      IMB_AES128_GCM_ENC_UPDATE(m, key, &ctx, pages[i] + off, pages[i] + off, n);
      left -= n;
      off = 0;
    }
    IMB_AES128_GCM_ENC_FINALIZE(m, key, &ctx, tag, 16);
    benchmark::DoNotOptimize(tag);
  }
  state.SetBytesProcessed(state.iterations() * kRecord);
  for (auto* p : pages) free(p);
  free(key);
  free_mb_mgr(m);
}
BENCHMARK(BM_IpsecMbDirectPages)->Name("raw/ipsecmb/aes128gcm/pages/16384");

void BM_EvpDirect(benchmark::State& state) {
  EVP_CIPHER_CTX* c = EVP_CIPHER_CTX_new();
  EVP_EncryptInit_ex(c, EVP_aes_128_gcm(), nullptr, kKey, nullptr);
  Buffer b;
  for (auto _ : state) {
    int l;
    EVP_EncryptInit_ex(c, nullptr, nullptr, nullptr, kIv);
    EVP_EncryptUpdate(c, nullptr, &l, kAad, sizeof(kAad));
    EVP_EncryptUpdate(c, b.flat.data(), &l, b.flat.data(), kRecord);
    EVP_EncryptFinal_ex(c, b.flat.data() + kRecord, &l);
    EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_AEAD_GET_TAG, 16, b.flat.data() + kRecord);
    benchmark::DoNotOptimize(b.flat.data());
  }
  state.SetBytesProcessed(state.iterations() * kRecord);
  EVP_CIPHER_CTX_free(c);
}
BENCHMARK(BM_EvpDirect)->Name("raw/evp/aes128gcm/16384");

uk::crypto_session_t NewSession(const char* driver) {
  uk::crypto_session_params csp;
  csp.csp_mode = uk::CSP_MODE_AEAD;
  csp.csp_flags = uk::CSP_F_SEPARATE_OUTPUT | uk::CSP_F_SEPARATE_AAD;
  csp.csp_cipher_alg = CRYPTO_AES_NIST_GCM_16;
  csp.csp_cipher_key = kKey;
  csp.csp_cipher_klen = 16;
  csp.csp_ivlen = 12;
  uk::crypto_session_t ses = nullptr;
  uk::crypto_newsession(*Kernel(), &ses, csp, uk::crypto_find_driver(*Kernel(), driver));
  return ses;
}

// Pages holding a record at an odd offset, as a sendfile or sosend record.
struct Pages {
  Pages() {
    for (int i = 0; i < 5; i++) {
      auto* pg = new uk::vm_page();
      pg->data = static_cast<uint8_t*>(aligned_alloc(uk::PAGE_SIZE, uk::PAGE_SIZE));
      memset(pg->data, 0x5a, uk::PAGE_SIZE);
      v.push_back(pg);
    }
  }
  ~Pages() {
    for (auto* pg : v) {
      free(pg->data);
      delete pg;
    }
  }
  std::vector<uk::vm_page*> v;
};

void Prepare(uk::cryptop* crp, uk::crypto_session_t ses, Buffer* b, Pages* p,
             int len = kRecord) {
  uk::crypto_initreq(crp, ses);
  crp->crp_op = uk::CRYPTO_OP_ENCRYPT | uk::CRYPTO_OP_COMPUTE_DIGEST;
  crp->crp_flags = uk::CRYPTO_F_CBIMM | uk::CRYPTO_F_IV_SEPARATE;
  memcpy(crp->crp_iv, kIv, 12);
  if (p != nullptr)
    uk::crypto_use_vmpage(crp, p->v.data(), kRecord + 16, 1234);
  else
    uk::crypto_use_buf(crp, b->flat.data(), len + 16);
  crp->crp_aad = kAad;
  crp->crp_aad_length = sizeof(kAad);
  crp->crp_payload_length = len;
  crp->crp_digest_start = len;
  crp->crp_callback = [](uk::cryptop* c) {
    if (c->crp_opaque != nullptr)
      static_cast<std::atomic<int>*>(c->crp_opaque)->fetch_add(1, std::memory_order_release);
    return 0;
  };
}

// A synchronous driver: the callback runs inline before crypto_dispatch
// returns.
void BM_OcfSync(benchmark::State& state, const char* driver, bool pages) {
  uk::crypto_session_t ses = NewSession(driver);
  if (ses == nullptr) {
    state.SkipWithError("no session");
    return;
  }
  Buffer b;
  Pages p;
  uk::cryptop crp;
  const int len = static_cast<int>(state.range(0));
  Prepare(&crp, ses, &b, pages ? &p : nullptr, len);
  for (auto _ : state) {
    uk::crypto_dispatch(&crp);
    benchmark::DoNotOptimize(crp.crp_etype);
  }
  state.SetBytesProcessed(state.iterations() * len);
  state.SetLabel(uk::crypto_ses2name(ses));
  uk::crypto_freesession(ses);
}
BENCHMARK_CAPTURE(BM_OcfSync, ipsecmb_contig, "ipsecmb", false)
    ->Name("ocf/ipsecmb/aes128gcm/contig")->Arg(kRecord)->Arg(64);
BENCHMARK_CAPTURE(BM_OcfSync, ipsecmb_pages, "ipsecmb", true)
    ->Name("ocf/ipsecmb/aes128gcm/pages")->Arg(kRecord);
BENCHMARK_CAPTURE(BM_OcfSync, ossl_contig, "ossl", false)
    ->Name("ocf/ossl/aes128gcm/contig")->Arg(kRecord);
BENCHMARK_CAPTURE(BM_OcfSync, ossl_pages, "ossl", true)
    ->Name("ocf/ossl/aes128gcm/pages")->Arg(kRecord);

// The asynchronous device with 16 records in flight.
void BM_OcfAsync(benchmark::State& state) {
  uk::crypto_session_t ses = NewSession("ccr_sim");
  if (ses == nullptr) {
    state.SkipWithError("no session");
    return;
  }
  constexpr int kInflight = 16;
  std::vector<Buffer> bufs(kInflight);
  std::vector<uk::cryptop> crps(kInflight);
  std::atomic<int> done{0};
  for (int i = 0; i < kInflight; i++) {
    Prepare(&crps[i], ses, &bufs[i], nullptr);
    crps[i].crp_opaque = &done;
  }
  for (auto _ : state) {
    done.store(0);
    for (auto& c : crps) uk::crypto_dispatch(&c);
    while (done.load(std::memory_order_acquire) < kInflight) {
    }
  }
  state.SetBytesProcessed(state.iterations() * kRecord * kInflight);
  uk::crypto_freesession(ses);
}
BENCHMARK(BM_OcfAsync)->Name("ocf/ccr_sim/aes128gcm/contig/16384/16inflight")->UseRealTime();

}  // namespace

int main(int argc, char** argv) {
  uk::boot_params bp;
  bp.ncpus = 2;
  int err = 0;
  Kernel() = uk::kernel::boot(bp, &err);
  if (Kernel() == nullptr) return 1;
  uk::ccr_sim_modevent(*Kernel(), uk::MOD_LOAD, nullptr);
  benchmark::Initialize(&argc, argv);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  Kernel().reset();
  return 0;
}
