/*
 * OpenSSL glue: a BIO over an emulated (uktls) socket that an unmodified
 * OpenSSL 3 SSL object uses as its transport. With SSL_OP_ENABLE_KTLS set,
 * libssl hands its traffic keys to the BIO (ctrl 72, the Linux
 * tls_crypto_info layout), and the BIO installs them in the uktls kernel
 * through the Linux personality (TCP_ULP "tls", SOL_TLS TLS_TX/TLS_RX); from
 * then on the kernel, not OpenSSL, frames and encrypts (and decrypts).
 */
#ifndef UKTLS_LIB_LIBUK_SSL_UK_SSL_H_
#define UKTLS_LIB_LIBUK_SSL_UK_SSL_H_

#include <openssl/bio.h>

#include "lib/libuk/uk.h"

#ifdef __cplusplus
extern "C" {
#endif

/* A BIO reading and writing socket s of process p. With close_flag
   (BIO_CLOSE) the socket is closed when the BIO is freed. NULL on failure. */
BIO* uk_BIO_new_socket(struct uk_proc* p, int s, int close_flag);

/* The BIO_METHOD behind uk_BIO_new_socket (one per process, never freed). */
const BIO_METHOD* uk_BIO_s_socket(void);

#ifdef __cplusplus
}
#endif

#endif /* UKTLS_LIB_LIBUK_SSL_UK_SSL_H_ */
