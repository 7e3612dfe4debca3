/*
 * Kernel TLS: the structures and constants userland shares with the kernel,
 * with FreeBSD's names, numbers and layouts (sys/sys/ktls.h). C and C++.
 */
#ifndef UKTLS_SYS_SYS_KTLS_H_
#define UKTLS_SYS_SYS_KTLS_H_

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Socket options at level IPPROTO_TCP (FreeBSD netinet/tcp.h). */
#define TCP_TXTLS_ENABLE 39
#define TCP_TXTLS_MODE 40
#define TCP_RXTLS_ENABLE 41
#define TCP_RXTLS_MODE 42

#define TCP_TLS_MODE_NONE 0
#define TCP_TLS_MODE_SW 1
#define TCP_TLS_MODE_IFNET 2
#define TCP_TLS_MODE_TOE 3

/* Control messages at level IPPROTO_TCP. */
#define TLS_SET_RECORD_TYPE 1 /* send: one byte, the record type */
#define TLS_GET_RECORD 2      /* receive: struct tls_get_record */

#define TLS_MAX_MSG_SIZE_V10_2 16384
#define TLS_MAX_PARAM_SIZE 1024
#define TLS_AEAD_GCM_LEN 4
#define TLS_1_3_GCM_IV_LEN 12
#define TLS_CHACHA20_IV_LEN 12
#define TLS_CBC_IMPLICIT_IV_LEN 16

#define TLS_MAJOR_VER_ONE 3
#define TLS_MINOR_VER_ZERO 1  /* TLS 1.0 */
#define TLS_MINOR_VER_ONE 2   /* TLS 1.1 */
#define TLS_MINOR_VER_TWO 3   /* TLS 1.2 */
#define TLS_MINOR_VER_THREE 4 /* TLS 1.3 */

#define TLS_RLTYPE_ALERT 21
#define TLS_RLTYPE_HANDSHAKE 22
#define TLS_RLTYPE_APP 23

/* The 5-byte record header on the wire. */
struct tls_record_layer {
  uint8_t tls_type;
  uint8_t tls_vmajor;
  uint8_t tls_vminor;
  uint16_t tls_length; /* network byte order, excludes the header */
} __attribute__((packed));

/* AAD of TLS 1.0-1.2 (AEAD and MAC): seq, type, version, length. */
struct tls_aead_data {
  uint64_t seq; /* big-endian */
  uint8_t type;
  uint8_t tls_vmajor;
  uint8_t tls_vminor;
  uint16_t tls_length; /* big-endian */
} __attribute__((packed));

struct tls_mac_data {
  uint64_t seq;
  uint8_t type;
  uint8_t tls_vmajor;
  uint8_t tls_vminor;
  uint16_t tls_length;
} __attribute__((packed));

/* AAD of TLS 1.3: the outer header. */
struct tls_aead_data_13 {
  uint8_t type;
  uint8_t tls_vmajor;
  uint8_t tls_vminor;
  uint16_t tls_length;
} __attribute__((packed));

struct tls_nonce_data {
  uint8_t fixed[TLS_AEAD_GCM_LEN];
  uint64_t seq;
} __attribute__((packed));

/*
 * Argument of TCP_TXTLS_ENABLE / TCP_RXTLS_ENABLE. Keys and IV are user
 * pointers copied in at enable time. rec_seq is the initial sequence number,
 * big-endian.
 */
struct tls_enable {
  const uint8_t* cipher_key;
  const uint8_t* iv; /* implicit IV / salt */
  const uint8_t* auth_key;
  int cipher_algorithm; /* CRYPTO_* */
  int cipher_key_len;
  int iv_len;
  int auth_algorithm; /* CRYPTO_* or 0 */
  int auth_key_len;
  int flags; /* must be 0 */
  uint8_t tls_vmajor;
  uint8_t tls_vminor;
  uint8_t rec_seq[8];
};

/* The original layout, still accepted by TCP_TXTLS_ENABLE (rec_seq = 0). */
struct tls_enable_v0 {
  const uint8_t* cipher_key;
  const uint8_t* iv;
  const uint8_t* auth_key;
  int cipher_algorithm;
  int cipher_key_len;
  int iv_len;
  int auth_algorithm;
  int auth_key_len;
  int flags;
  uint8_t tls_vmajor;
  uint8_t tls_vminor;
};

/* TLS_GET_RECORD control message payload. */
struct tls_get_record {
  uint8_t tls_type; /* the inner type for TLS 1.3 */
  uint8_t tls_vmajor;
  uint8_t tls_vminor;
  uint16_t tls_length; /* decrypted payload length, network byte order */
};

#ifdef __cplusplus
}
#endif

#ifdef __cplusplus
static_assert(sizeof(struct tls_enable) == 64, "LP64 layout of tls_enable");
static_assert(sizeof(struct tls_enable_v0) == 56, "LP64 layout of tls_enable_v0");
static_assert(sizeof(struct tls_get_record) == 6, "tls_get_record");
static_assert(sizeof(struct tls_record_layer) == 5, "tls_record_layer");
static_assert(sizeof(struct tls_aead_data) == 13, "tls_aead_data");
#endif

#endif /* UKTLS_SYS_SYS_KTLS_H_ */
