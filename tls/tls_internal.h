/* Private to tls/: the layouts behind the opaque public structs. */
#ifndef SC_TLS_INTERNAL_H
#define SC_TLS_INTERNAL_H

#include <mbedtls/ssl.h>

#include "sechan/tls.h"

/* What this build of Mbed TLS can do (firmware builds leave parts out). */
#if defined(MBEDTLS_X509_CRT_PARSE_C)
#define TLS_HAVE_X509 1
#include <mbedtls/x509_crt.h>
#endif
#if defined(MBEDTLS_X509_CRL_PARSE_C)
#define TLS_HAVE_CRL 1
#include <mbedtls/x509_crl.h>
#endif
#if defined(MBEDTLS_SSL_SRV_C)
#define TLS_HAVE_SERVER 1
#endif

struct tls_psk_entry {
    char identity[SC_TLS_PSK_ID_MAX + 1];
    uint8_t key[SC_TLS_PSK_KEY_MAX];
    size_t key_len;
};

struct tls_creds_impl {
#if TLS_HAVE_X509
    mbedtls_x509_crt ca;
    mbedtls_x509_crt own_cert;
    mbedtls_pk_context own_key;
#endif
#if TLS_HAVE_CRL
    mbedtls_x509_crl crl;
#endif
    bool have_ca;
    bool have_crl;
    bool have_own;
    size_t psk_count;
    struct tls_psk_entry psk[SC_TLS_PSK_MAX];
    char msg[192];
};

struct tls_impl {
    mbedtls_ssl_context ssl;
    mbedtls_ssl_config conf;
    const struct tls_creds_impl *creds;
    struct sc_channel *lower;
    sc_tls_verify_fn verify_cb;
    void *verify_arg;
    enum sc_tls_endpoint endpoint;
    bool use_psk;            /* PSK is (one of) the configured ways in */
    bool no_hostname_check;
    bool handshake_done;
    enum sc_dir want;
    size_t write_pending;    /* bytes of the record Mbed TLS still holds */
    int lower_err;           /* error the channel below gave to a BIO call */
    int mbed_err;            /* raw Mbed TLS code of the first failure */
    const struct tls_psk_entry *psk_used;
    char msg[160];
};

static inline struct tls_impl *tls_impl_of(struct sc_tls *t)
{
    return (struct tls_impl *)(void *)t->opaque.bytes;
}

static inline const struct tls_impl *tls_impl_of_const(const struct sc_tls *t)
{
    return (const struct tls_impl *)(const void *)t->opaque.bytes;
}

static inline struct tls_creds_impl *tls_creds_of(struct sc_tls_creds *c)
{
    return (struct tls_creds_impl *)(void *)c->opaque.bytes;
}

static inline const struct tls_creds_impl *tls_creds_of_const(const struct sc_tls_creds *c)
{
    return (const struct tls_creds_impl *)(const void *)c->opaque.bytes;
}

#if TLS_HAVE_X509
/* The CRL to check chains against, if any. */
static inline mbedtls_x509_crl *tls_crl_of(const struct tls_creds_impl *c)
{
#if TLS_HAVE_CRL
    return c->have_crl ? (mbedtls_x509_crl *)&c->crl : NULL;
#else
    (void)c;
    return NULL;
#endif
}
#endif

/* Describe an Mbed TLS error code into buf ("-0x2700 X509 - Certificate ..."). */
void tls_describe_mbedtls(int code, char *buf, size_t cap);

/* Wipe memory the compiler may not elide. */
void tls_wipe(void *p, size_t n);

#endif
