/*
 * OpenCrypto algorithm identifiers, with FreeBSD's numbers
 * (sys/opencrypto/cryptodev.h). C and C++; included by lib/libuk/uk.h.
 *
 * Ids 100 and up are uktls's own: FreeBSD has no SM4, ARIA or AES-CCM TLS
 * suites in KTLS, but the Linux personality (tls(7)) and RFC 8998 need them.
 */
#ifndef UKTLS_SYS_OPENCRYPTO_CRYPTODEV_H_
#define UKTLS_SYS_OPENCRYPTO_CRYPTODEV_H_

#define CRYPTO_SHA1_HMAC 7
#define CRYPTO_AES_CBC 11
#define CRYPTO_SHA1 14
#define CRYPTO_SHA2_256_HMAC 18
#define CRYPTO_SHA2_384_HMAC 19
#define CRYPTO_SHA2_512_HMAC 20
#define CRYPTO_AES_ICM 23
#define CRYPTO_AES_NIST_GCM_16 25
#define CRYPTO_AES_128_NIST_GMAC 26
#define CRYPTO_AES_192_NIST_GMAC 27
#define CRYPTO_AES_256_NIST_GMAC 28
#define CRYPTO_SHA2_256 32
#define CRYPTO_SHA2_384 33
#define CRYPTO_SHA2_512 34
#define CRYPTO_AES_CCM_16 39
#define CRYPTO_AES_CCM_CBC_MAC 40
#define CRYPTO_CHACHA20_POLY1305 41

/* uktls extensions (not in FreeBSD). */
#define CRYPTO_SM4_GCM_16 100  /* SM4-GCM, RFC 8998 */
#define CRYPTO_SM4_CCM_16 101  /* SM4-CCM, RFC 8998 */
#define CRYPTO_ARIA_GCM_16 102 /* ARIA-GCM, RFC 6209 (Linux personality) */
#define CRYPTO_SM4_CTR 103     /* SM4 in counter mode (SM4-GCM recrypt) */

#define AES_BLOCK_LEN 16
#define AES_GCM_IV_LEN 12
#define AES_CCM_IV_LEN 12
#define GMAC_DIGEST_LEN 16
#define POLY1305_HASH_LEN 16
#define SHA1_HASH_LEN 20
#define SHA2_256_HASH_LEN 32
#define SHA2_384_HASH_LEN 48
#define SHA2_512_HASH_LEN 64
#define HASH_MAX_LEN SHA2_512_HASH_LEN
#define EALG_MAX_BLOCK_LEN 16

#endif /* UKTLS_SYS_OPENCRYPTO_CRYPTODEV_H_ */
