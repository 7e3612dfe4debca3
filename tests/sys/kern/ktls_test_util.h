// Test-side TLS record crypto: an independent implementation of the record
// formats KTLS produces and consumes, built on OpenSSL EVP (and, for the
// RFC 8998 SM4 suites that OpenSSL 3.0 lacks, GCM and CCM composed here from
// OpenSSL's SM4 block cipher). Mirrors the helpers of FreeBSD's
// tests/sys/kern/ktls_test.c.
#ifndef UKTLS_TESTS_SYS_KERN_KTLS_TEST_UTIL_H_
#define UKTLS_TESTS_SYS_KERN_KTLS_TEST_UTIL_H_

#include <netinet/in.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "lib/libuk/uk.h"
#include "sys/opencrypto/cryptodev.h"
#include "sys/sys/ktls.h"

namespace ktls_test {

struct Suite {
  const char* name;
  int cipher;  // CRYPTO_*
  int keylen;  // bytes
  int auth;    // CRYPTO_*_HMAC or 0
  int minor;   // TLS_MINOR_VER_*
};

// FreeBSD's suite families (ktls_test.c) plus uktls's SM4 suites.
std::vector<Suite> CbcSuites();      // AES_CBC_TESTS (10)
std::vector<Suite> GcmSuites();      // AES_GCM_TESTS (4)
std::vector<Suite> ChachaSuites();   // CHACHA20_TESTS (2)
std::vector<Suite> Sm4Suites();      // SM4-GCM, SM4-CCM TLS 1.3 (uktls)
std::vector<Suite> AllSuites();      // all of the above (18)
std::vector<Suite> InvalidSuites();  // INVALID_CIPHER_SUITES (11)
std::vector<Suite> RxSuites();       // AllSuites() minus TLS 1.0 CBC (16)

// Keys and the struct tls_enable pointing at them (build_tls_enable()).
struct TlsKeys {
  std::vector<uint8_t> cipher_key, iv, auth_key;
  tls_enable en{};
};
void BuildTlsEnable(const Suite& s, uint64_t seqno, TlsKeys* k);
// The same with keys drawn from a PRNG seeded with seed: reproducible keys
// for fuzz corpora and their regression runs.
void BuildTlsEnableSeeded(const Suite& s, uint64_t seqno, uint32_t seed,
                          TlsKeys* k);

int MacLen(int auth);                 // 20 / 32 / 48, 0 for none
// TLS 1.2 AEAD with salt ‖ 8-byte explicit nonce (AES-GCM; AES-CCM, ARIA,
// SM4 in the Linux personality).
bool ExplicitNonce(const Suite& s);
int HeaderLen(const Suite& s);        // header + explicit IV/nonce
// Trailer of a record with a payload of len bytes as KTLS frames it
// (minimal CBC padding, TLS 1.3 type byte, no padding).
int TrailerLen(const Suite& s, size_t len);
// FreeBSD's tls_tlen: the largest trailer (tag + TLS 1.3 type byte, or MAC +
// 16 bytes of CBC padding).
int MaxTrailerLen(const Suite& s);
// The record minor version on the wire (TLS 1.3 records say 1.2).
uint8_t WireMinor(const Suite& s);
// FreeBSD's RX rules: the smallest header length field a record of the
// suite may carry before it is "too short for its cipher" (EMSGSIZE,
// record skipped), and whether a length is acceptable to the cipher (CBC
// also wants a block multiple).
int MinRecordPayload(const Suite& s);
bool RecordLengthFitsCipher(const Suite& s, size_t payload_len);

// Decrypts and checks one whole record (header included) as a peer would.
// For TLS 1.0 CBC, *chain_iv is the IV to use and is updated. Returns
// false and sets *why on any failure (version, length, tag/MAC, padding).
// require_minimal: CBC padding must be minimal and TLS 1.3 unpadded (what
// KTLS transmits).
bool DecryptRecord(const Suite& s, const TlsKeys& k, uint64_t seqno,
                   const uint8_t* rec, size_t len, std::vector<uint8_t>* pt,
                   uint8_t* type, std::string* why,
                   std::vector<uint8_t>* chain_iv = nullptr,
                   bool require_minimal = true);

// Encrypts one record as a peer would. extra_pad: CBC padding beyond the
// minimum (a multiple of 16), or TLS 1.3 zero padding bytes. For TLS 1.2
// GCM the explicit nonce is `nonce`. For TLS 1.0, *chain_iv is used and
// updated.
std::vector<uint8_t> EncryptRecord(const Suite& s, const TlsKeys& k,
                                   uint64_t seqno, uint8_t type,
                                   const uint8_t* pt, size_t len,
                                   size_t extra_pad = 0, uint64_t nonce = 0,
                                   std::vector<uint8_t>* chain_iv = nullptr);

// Generic GCM and CCM (12-byte nonce, 16-byte tag) over a 128-bit block
// cipher given as an EVP ECB cipher; exposed so tests can check them against
// OpenSSL's own AES-GCM/CCM before trusting them for SM4.
bool GenericGcm(const void* ecb_cipher, bool enc, const uint8_t* key,
                const uint8_t* nonce, const uint8_t* aad, size_t aadlen,
                const uint8_t* in, size_t len, uint8_t* out, uint8_t* tag);
bool GenericCcm(const void* ecb_cipher, bool enc, const uint8_t* key,
                const uint8_t* nonce, const uint8_t* aad, size_t aadlen,
                const uint8_t* in, size_t len, uint8_t* out, uint8_t* tag);
// OpenSSL's own AEAD (GCM, CCM, ChaCha20-Poly1305), 12-byte nonce, tag 16.
bool EvpAead(const void* evp_cipher, bool ccm, bool enc, const uint8_t* key,
             const uint8_t* nonce, const uint8_t* aad, size_t aadlen,
             const uint8_t* in, size_t len, uint8_t* out, uint8_t* tag);

std::vector<uint8_t> RandomBytes(size_t n);

// One uk_recvmsg on a KTLS RX socket: a record's plaintext into buf (at
// most len bytes) and, when one came, its TLS_GET_RECORD control message.
struct TlsRecv {
  ssize_t n = -1;  // recvmsg's result
  int msg_flags = 0;
  bool has_tgr = false;
  tls_get_record tgr{};
};
TlsRecv RecvTlsRecord(struct uk_proc* p, int fd, void* buf, size_t len, int flags = 0);

// A connected TCP pair over 127.0.0.1 in process p: sv[0] connected,
// sv[1] accepted (with TCP_NODELAY when asked). rcvbuf > 0: sv[0]'s
// SO_RCVBUF, set before the handshake so its window never exceeds it.
// Fails the test on error.
void LoopbackPair(struct uk_proc* p, int sv[2], bool nodelay, int rcvbuf = 0);

// 127.0.0.1:port.
sockaddr_in Loopback(uint16_t port);

// Reads exactly n bytes of fd into buf; false on EOF or an error first.
bool ReadFull(uk_proc* p, int fd, uint8_t* buf, size_t n);
// Reads one raw TLS record: the 5-byte header, then its body; false on
// EOF or an error first.
bool ReadRecord(uk_proc* p, int fd, std::vector<uint8_t>* rec);

// What the socket-level KTLS tests (ktls_tx, ktls_rx, ktls_rx_cases,
// compat/linux) each set up: a kernel with 2 CPUs booted per test, one
// process, listeners on 127.0.0.1, counters read by sysctl name and whole
// reads and writes. The kernel is halted (and must halt cleanly) at the end.
class KernelTest : public ::testing::Test {
 protected:
  explicit KernelTest(const char* proc_name = "ktls")
      : proc_name_(proc_name) {}
  void SetUp() override { Boot(nullptr); }
  void TearDown() override;

  // Halts the running kernel, if any, and boots one with these tunables.
  void Boot(const char* tunables);
  // A socket listening on 127.0.0.1 at an ephemeral port (*port).
  int Listen(uint16_t* port, int backlog = 8);
  // A 64-bit counter by sysctl name; fails the test if it cannot be read.
  uint64_t Stat(const std::string& name);
  // Sends all of b (blocking); fails the test on an error.
  void WriteAll(int fd, const std::vector<uint8_t>& b);
  // Reads exactly n bytes (blocking); false on EOF or an error.
  bool ReadFull(int fd, uint8_t* buf, size_t n);
  // KTLS both ways on a connected pair: sv[0] sends with a2b and receives
  // with b2a, sv[1] the other way round; fails the test on an error.
  void EnableBothWays(const int sv[2], const TlsKeys& a2b, const TlsKeys& b2a);
  // Reads one raw TLS record: the 5-byte header, then its body.
  bool ReadRecord(int fd, std::vector<uint8_t>* rec);

  uk_kernel* k_ = nullptr;
  uk_proc* p_ = nullptr;

 private:
  const char* proc_name_;
};

}  // namespace ktls_test

#endif  // UKTLS_TESTS_SYS_KERN_KTLS_TEST_UTIL_H_
