// AES-GCM for the simulated NIC's engines (the inline TLS transmit engine
// and the TOE): IPsec-MB's incremental direct API, the fastest cipher on
// the host, so the simulated hardware takes as little host CPU as it can.
// The engines' output is checked against OpenSSL EVP by the tests.
#ifndef UKTLS_SYS_DEV_NIC_SIM_NIC_GCM_H_
#define UKTLS_SYS_DEV_NIC_SIM_NIC_GCM_H_

#include <intel-ipsec-mb.h>

#include <cstddef>
#include <cstdint>

namespace uk {

// A key's AES schedule and GHASH tables, expanded once. IPsec-MB's vector
// code wants them aligned; its header says so only when LINUX is defined.
struct NicGcmKey {
  alignas(64) gcm_key_data data;
  bool aes256 = false;

  NicGcmKey() = default;
  ~NicGcmKey();
  NicGcmKey(const NicGcmKey&) = delete;
  NicGcmKey& operator=(const NicGcmKey&) = delete;

  // klen 16 or 32; false if the library could not be set up.
  bool set(const uint8_t* key, int klen);
};

// One record's encryption or decryption in progress: init, any number of
// updates of any length (in place allowed; one direction per record), then
// finalize (the tag of what was encrypted) or verify (the tag of what was
// decrypted against the record's, in constant time).
struct NicGcm {
  alignas(64) gcm_context_data ctx;

  ~NicGcm();
  void init(const NicGcmKey& k, const uint8_t nonce[12], const uint8_t* aad,
            size_t aadlen);
  // init for the TLS record with sequence number seqno, header hdr (with
  // TLS 1.2's 8-byte explicit nonce after its 5 bytes) and plen bytes of
  // payload, as ktls_ocf builds them: TLS 1.3, nonce = iv (12 bytes) XOR
  // seqno, AAD = the header; TLS 1.2, nonce = salt (iv's first 4 bytes) ||
  // explicit nonce, AAD = seqno || type || version || plen.
  void init_tls(const NicGcmKey& k, bool tls13, const uint8_t* iv, uint64_t seqno,
                const uint8_t* hdr, int plen);
  void encrypt(const NicGcmKey& k, uint8_t* out, const uint8_t* in, size_t n);
  void finalize(const NicGcmKey& k, uint8_t tag[16]);
  void decrypt(const NicGcmKey& k, uint8_t* out, const uint8_t* in, size_t n);
  bool verify(const NicGcmKey& k, const uint8_t tag[16]);
};

}  // namespace uk

#endif  // UKTLS_SYS_DEV_NIC_SIM_NIC_GCM_H_
