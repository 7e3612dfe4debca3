// AES-GCM for the simulated NIC's engines. See nic_gcm.h.
#include "sys/dev/nic_sim/nic_gcm.h"

#include <openssl/crypto.h>

#include <cstring>

namespace uk {

namespace {

// The direct API only reads the manager's table of functions for this
// CPU, so one manager serves every engine and thread (as in the ipsecmb
// OCF driver). Made on first use and kept for the life of the process.
IMB_MGR* mgr() {
  static IMB_MGR* const m = [] {
    IMB_MGR* x = alloc_mb_mgr(0);
    IMB_ARCH arch = IMB_ARCH_NONE;
    if (x != nullptr) init_mb_mgr_auto(x, &arch);
    return x;
  }();
  return m;
}

}  // namespace

NicGcmKey::~NicGcmKey() { OPENSSL_cleanse(&data, sizeof data); }

bool NicGcmKey::set(const uint8_t* key, int klen) {
  IMB_MGR* m = mgr();
  if (m == nullptr || (klen != 16 && klen != 32)) return false;
  aes256 = klen == 32;
  if (aes256)
    IMB_AES256_GCM_PRE(m, key, &data);
  else
    IMB_AES128_GCM_PRE(m, key, &data);
  return true;
}

NicGcm::~NicGcm() { OPENSSL_cleanse(&ctx, sizeof ctx); }

void NicGcm::init(const NicGcmKey& k, const uint8_t nonce[12], const uint8_t* aad,
                  size_t aadlen) {
  if (k.aes256)
    IMB_AES256_GCM_INIT_VAR_IV(mgr(), &k.data, &ctx, nonce, 12, aad, aadlen);
  else
    IMB_AES128_GCM_INIT_VAR_IV(mgr(), &k.data, &ctx, nonce, 12, aad, aadlen);
}

void NicGcm::init_tls(const NicGcmKey& k, bool tls13, const uint8_t* iv, uint64_t seqno,
                      const uint8_t* hdr, int plen) {
  uint8_t nonce[12], aad[13];
  for (int i = 0; i < 8; i++) aad[i] = static_cast<uint8_t>(seqno >> (56 - 8 * i));
  if (tls13) {
    memcpy(nonce, iv, 12);
    for (int i = 0; i < 8; i++) nonce[4 + i] ^= aad[i];
    init(k, nonce, hdr, 5);
    return;
  }
  memcpy(nonce, iv, 4);
  memcpy(nonce + 4, hdr + 5, 8);
  aad[8] = hdr[0];
  aad[9] = hdr[1];
  aad[10] = hdr[2];
  aad[11] = static_cast<uint8_t>(plen >> 8);
  aad[12] = static_cast<uint8_t>(plen);
  init(k, nonce, aad, sizeof aad);
}

void NicGcm::encrypt(const NicGcmKey& k, uint8_t* out, const uint8_t* in, size_t n) {
  if (k.aes256)
    IMB_AES256_GCM_ENC_UPDATE(mgr(), &k.data, &ctx, out, in, n);
  else
    IMB_AES128_GCM_ENC_UPDATE(mgr(), &k.data, &ctx, out, in, n);
}

void NicGcm::finalize(const NicGcmKey& k, uint8_t tag[16]) {
  if (k.aes256)
    IMB_AES256_GCM_ENC_FINALIZE(mgr(), &k.data, &ctx, tag, 16);
  else
    IMB_AES128_GCM_ENC_FINALIZE(mgr(), &k.data, &ctx, tag, 16);
}

void NicGcm::decrypt(const NicGcmKey& k, uint8_t* out, const uint8_t* in, size_t n) {
  if (k.aes256)
    IMB_AES256_GCM_DEC_UPDATE(mgr(), &k.data, &ctx, out, in, n);
  else
    IMB_AES128_GCM_DEC_UPDATE(mgr(), &k.data, &ctx, out, in, n);
}

bool NicGcm::verify(const NicGcmKey& k, const uint8_t tag[16]) {
  uint8_t got[16];
  if (k.aes256)
    IMB_AES256_GCM_DEC_FINALIZE(mgr(), &k.data, &ctx, got, sizeof got);
  else
    IMB_AES128_GCM_DEC_FINALIZE(mgr(), &k.data, &ctx, got, sizeof got);
  return CRYPTO_memcmp(got, tag, sizeof got) == 0;
}

}  // namespace uk
