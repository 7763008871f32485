/* sc_mbedtls_config.h: the Mbed TLS 3.6 configuration of sechan.
 *
 * Selected with -DMBEDTLS_CONFIG_FILE='"sc_mbedtls_config.h"'. Everything not
 * listed here is off. Costs are for Cortex-M3 -Os where measured
 * (../shared/notes/mbedtls.md); the host build adds what only a host needs
 * (threads, AES-NI, error strings) under SC_TLS_HOST.
 */
#ifndef SC_MBEDTLS_CONFIG_H
#define SC_MBEDTLS_CONFIG_H

/* ---- Memory: no heap. All allocation goes to a static arena through
 * memory_buffer_alloc; the platform defaults point at functions that always
 * fail, so no object references libc's calloc/free. */
#define MBEDTLS_PLATFORM_C
#define MBEDTLS_PLATFORM_MEMORY
#define MBEDTLS_MEMORY_BUFFER_ALLOC_C
#define MBEDTLS_PLATFORM_STD_CALLOC sc_mbedtls_no_calloc
#define MBEDTLS_PLATFORM_STD_FREE sc_mbedtls_no_free
#include <stddef.h>
void *sc_mbedtls_no_calloc(size_t n, size_t size);
void sc_mbedtls_no_free(void *p);

/* ---- Time: validity dates of certificates. gmtime_r from glibc may
 * allocate (tzset), so the conversion is ours (tls/tls_platform.c). */
#define MBEDTLS_HAVE_TIME
#define MBEDTLS_HAVE_TIME_DATE
#define MBEDTLS_PLATFORM_GMTIME_R_ALT
/* "Now" and the millisecond clock come from sechan's port: a board without
 * a real-time clock answers its build-time floor (tls/tls_platform.c). */
#include <time.h>
time_t sc_mbedtls_time(time_t *t);
#define MBEDTLS_PLATFORM_TIME_MACRO sc_mbedtls_time
#define MBEDTLS_PLATFORM_MS_TIME_ALT

/* ---- Entropy: only from sechan's port (sc_port_entropy) via the hardware
 * hook; no platform source is compiled in. PSA's DRBG is the one RNG. */
#define MBEDTLS_NO_PLATFORM_ENTROPY
#define MBEDTLS_ENTROPY_HARDWARE_ALT
#define MBEDTLS_ENTROPY_C
#define MBEDTLS_CTR_DRBG_C
#define MBEDTLS_HMAC_DRBG_C

#if defined(SC_TLS_FW)
/* ---- Firmware: a TLS 1.3 client and nothing else. SC_TLS_FW_PSK gives
 * psk_dhe_ke over X25519; SC_TLS_FW_X509 gives ECDHE-ECDSA on P-256 (plus
 * X25519 for the key share). One cipher suite, TLS_AES_128_GCM_SHA256, the
 * one every TLS 1.3 peer must offer. Records: the server is asked for
 * records of at most MBEDTLS_SSL_IN_CONTENT_LEN bytes (RFC 8449). */
#define MBEDTLS_PSA_CRYPTO_C
#define MBEDTLS_CIPHER_C
#define MBEDTLS_MD_C
#define MBEDTLS_AES_C
#define MBEDTLS_AES_ROM_TABLES            /* tables in flash, not RAM */
#define MBEDTLS_AES_FEWER_TABLES
#define MBEDTLS_GCM_C
#define MBEDTLS_SHA224_C                  /* comes with SHA-256 */
#define MBEDTLS_SHA256_C
#define MBEDTLS_SHA256_SMALLER
#define MBEDTLS_HKDF_C
#define MBEDTLS_BIGNUM_C
#define MBEDTLS_ECP_C
#define MBEDTLS_ECDH_C
#define MBEDTLS_ECP_DP_CURVE25519_ENABLED
#define MBEDTLS_SSL_TLS_C
#define MBEDTLS_SSL_CLI_C
#define MBEDTLS_SSL_PROTO_TLS1_3
#define MBEDTLS_SSL_KEEP_PEER_CERTIFICATE
#define MBEDTLS_SSL_RECORD_SIZE_LIMIT
#define MBEDTLS_SSL_TLS1_3_KEY_EXCHANGE_MODE_PSK_EPHEMERAL_ENABLED
#if defined(SC_TLS_FW_X509)
#define MBEDTLS_SSL_SERVER_NAME_INDICATION
#define MBEDTLS_SSL_TLS1_3_KEY_EXCHANGE_MODE_EPHEMERAL_ENABLED
#define MBEDTLS_ECP_DP_SECP256R1_ENABLED
#define MBEDTLS_ECDSA_C
#define MBEDTLS_ASN1_PARSE_C
#define MBEDTLS_ASN1_WRITE_C
#define MBEDTLS_OID_C
#define MBEDTLS_PK_C
#define MBEDTLS_PK_PARSE_C
#define MBEDTLS_X509_USE_C
#define MBEDTLS_X509_CRT_PARSE_C
#endif
#ifndef MBEDTLS_SSL_IN_CONTENT_LEN
#define MBEDTLS_SSL_IN_CONTENT_LEN 2048
#endif
#ifndef MBEDTLS_SSL_OUT_CONTENT_LEN
#define MBEDTLS_SSL_OUT_CONTENT_LEN 2048
#endif
#define MBEDTLS_SSL_MAX_EARLY_DATA_SIZE 0
#if defined(SC_SASL_FW)
/* ---- The SASL variants only (SC_SASL_FW_DIGEST: DIGEST-MD5 auth-conf on
 * a plaintext link; SC_SASL_FW_SCRAM: SCRAM-SHA-256(-PLUS) inside TLS PSK),
 * so the PSK and X.509 images stay as they are. sasl-lite dispatches to
 * every mechanism, so both images link both engines: PBKDF2 (SCRAM) and
 * base64 (nonces, SCRAM) are needed by both. MD5 and DES-CBC only where
 * DIGEST-MD5 runs; without MD5_C the SCRAM image's dead DIGEST-MD5 code
 * links and would fail cleanly. SHA-1 is left out: the firmware offers
 * only SCRAM-SHA-256, never SCRAM-SHA-1. */
/* Flash on Cortex-M3 -Os, measured in these images. */
#define MBEDTLS_PKCS5_C                   /* PBKDF2: 0.4 KB */
#define MBEDTLS_BASE64_C                  /* 0.8 KB */
#if defined(SC_SASL_FW_DIGEST)
#define MBEDTLS_MD5_C                     /* DIGEST-MD5, HMAC-MD5 of the layer: 2.2 KB */
#define MBEDTLS_DES_C                     /* auth-conf 3DES: 5.4 KB (tables in flash) */
#define MBEDTLS_CIPHER_MODE_CBC           /* 0.7 KB with the cipher table's entries */
#endif
#if defined(SC_SASL_FW_SCRAM)
#define MBEDTLS_SSL_KEYING_MATERIAL_EXPORT /* tls-exporter for -PLUS: 0.3 KB */
#endif
#endif /* SC_SASL_FW */

#else /* !SC_TLS_FW: the full build (host tools, small boards that serve) */

/* ---- Primitives */
#define MBEDTLS_PSA_CRYPTO_C          /* required by TLS 1.3 */
#define MBEDTLS_CIPHER_C
#define MBEDTLS_MD_C
#define MBEDTLS_AES_C
#define MBEDTLS_GCM_C
#define MBEDTLS_CHACHA20_C
#define MBEDTLS_POLY1305_C
#define MBEDTLS_CHACHAPOLY_C
#define MBEDTLS_SHA224_C
#define MBEDTLS_SHA256_C
#define MBEDTLS_SHA384_C
#define MBEDTLS_SHA512_C
#define MBEDTLS_HKDF_C
#define MBEDTLS_BIGNUM_C
#define MBEDTLS_ECP_C
#define MBEDTLS_ECP_NIST_OPTIM
#define MBEDTLS_ECP_DP_SECP256R1_ENABLED
#define MBEDTLS_ECP_DP_CURVE25519_ENABLED
#define MBEDTLS_ECDH_C
#define MBEDTLS_ECDSA_C
#define MBEDTLS_ECDSA_DETERMINISTIC
#define MBEDTLS_RSA_C
#define MBEDTLS_PKCS1_V15
#define MBEDTLS_PKCS1_V21             /* RSA-PSS: TLS 1.3 signatures */
#define MBEDTLS_X509_RSASSA_PSS_SUPPORT /* offers rsa_pss_rsae_* (else no RSA in 1.3) */

/* ---- SASL (sasl-lite/): DIGEST-MD5 needs MD5 and DES/3DES in CBC mode,
 * SCRAM-SHA-1 SHA-1 and PBKDF2. TLS does not pick them up: its ciphersuite
 * list is explicit (tls_channel.c) and Mbed TLS's default signature
 * algorithms and X.509 profile leave SHA-1 out. */
#define MBEDTLS_MD5_C
#define MBEDTLS_SHA1_C
#define MBEDTLS_DES_C
#define MBEDTLS_CIPHER_MODE_CBC
#define MBEDTLS_PKCS5_C

/* ---- Keys and certificates */
#define MBEDTLS_ASN1_PARSE_C
#define MBEDTLS_ASN1_WRITE_C
#define MBEDTLS_OID_C
#define MBEDTLS_BASE64_C
#define MBEDTLS_PEM_PARSE_C
#define MBEDTLS_PK_C
#define MBEDTLS_PK_PARSE_C
#define MBEDTLS_X509_USE_C
#define MBEDTLS_X509_CRT_PARSE_C
#define MBEDTLS_X509_CRL_PARSE_C

/* ---- TLS: 1.3 and 1.2, client and server, certificates and PSK */
#define MBEDTLS_SSL_TLS_C
#define MBEDTLS_SSL_CLI_C
#define MBEDTLS_SSL_SRV_C
#define MBEDTLS_SSL_PROTO_TLS1_2
#define MBEDTLS_SSL_PROTO_TLS1_3
#define MBEDTLS_SSL_TLS1_3_COMPATIBILITY_MODE
#define MBEDTLS_SSL_TLS1_3_KEY_EXCHANGE_MODE_PSK_ENABLED
#define MBEDTLS_SSL_TLS1_3_KEY_EXCHANGE_MODE_EPHEMERAL_ENABLED
#define MBEDTLS_SSL_TLS1_3_KEY_EXCHANGE_MODE_PSK_EPHEMERAL_ENABLED
#define MBEDTLS_KEY_EXCHANGE_ECDHE_ECDSA_ENABLED
#define MBEDTLS_KEY_EXCHANGE_ECDHE_RSA_ENABLED
#define MBEDTLS_KEY_EXCHANGE_PSK_ENABLED
#define MBEDTLS_KEY_EXCHANGE_ECDHE_PSK_ENABLED
#define MBEDTLS_SSL_ENCRYPT_THEN_MAC
#define MBEDTLS_SSL_EXTENDED_MASTER_SECRET
#define MBEDTLS_SSL_SERVER_NAME_INDICATION
#define MBEDTLS_SSL_KEEP_PEER_CERTIFICATE   /* required by TLS 1.3 in 3.6 */
#define MBEDTLS_SSL_KEYING_MATERIAL_EXPORT  /* tls-exporter channel binding */
#define MBEDTLS_SSL_SESSION_TICKETS         /* accept servers' NewSessionTicket */
#define MBEDTLS_SSL_ALL_ALERT_MESSAGES
#define MBEDTLS_SSL_RECORD_SIZE_LIMIT       /* RFC 8449: small records for small RAM */

#if defined(SC_TLS_HOST)
#define MBEDTLS_ECP_DP_SECP384R1_ENABLED
#define MBEDTLS_HAVE_ASM
#define MBEDTLS_AESNI_C
#define MBEDTLS_THREADING_C                 /* one arena, several threads */
#define MBEDTLS_THREADING_PTHREAD
#define MBEDTLS_ERROR_C                     /* mbedtls_strerror in messages */
#define MBEDTLS_MEMORY_DEBUG                /* arena high-water mark */
#define MBEDTLS_SSL_IN_CONTENT_LEN 16384
#define MBEDTLS_SSL_OUT_CONTENT_LEN 16384
#endif

#if defined(SC_TLS_SMALL)
/* Small boards: receive buffer sized for the peer's records (RFC 8449). */
#define MBEDTLS_SSL_IN_CONTENT_LEN 2048
#define MBEDTLS_SSL_OUT_CONTENT_LEN 1024
#endif

#endif /* SC_TLS_FW */

#endif
