/* sechan/tls.h: TLS as a channel layer over any channel, on Mbed TLS 3.6.
 *
 * Credentials (sc_tls_creds) are loaded once and shared read-only by any
 * number of connections (sc_tls). Both are caller-allocated opaque structs
 * of public size; neither may be moved or copied after init, because Mbed
 * TLS keeps pointers into them. All memory Mbed TLS needs comes from one
 * static arena (see sc_tls_global_init); nothing uses the heap.
 *
 * X.509 credentials come from a directory in QEMU's layout:
 *   ca-cert.pem  ca-crl.pem (optional)
 *   server-cert.pem server-key.pem   (server)
 *   client-cert.pem client-key.pem   (client, optional)
 * PSK credentials come from a file in qemu-nbd/nbdkit's (psktool) format:
 * one "identity:hexkey" per line.
 */
#ifndef SECHAN_TLS_H
#define SECHAN_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sechan/channel.h"
#include "sechan/config.h"

/* Sizes of the opaque contexts for this build's Mbed TLS configuration;
 * the implementation checks them at compile time. */
#if defined(SC_TLS_HOST)
#define SC_TLS_CTX_SIZE 1280
#else
#define SC_TLS_CTX_SIZE 1536
#endif
#define SC_TLS_CREDS_SIZE (2560 + SC_TLS_PSK_MAX * (SC_TLS_PSK_ID_MAX + SC_TLS_PSK_KEY_MAX + 16))

enum sc_tls_endpoint { SC_TLS_CLIENT = 0, SC_TLS_SERVER = 1 };

enum sc_tls_version { SC_TLS_VERSION_DEFAULT = 0, SC_TLS_1_2 = 12, SC_TLS_1_3 = 13 };

enum sc_tls_auth {
    SC_TLS_AUTH_AUTO = 0,  /* PSK if the credentials hold a key, else X.509;
                              a server with both accepts either */
    SC_TLS_AUTH_X509 = 1,
    SC_TLS_AUTH_PSK = 2
};

struct sc_tls_creds {
    union {
        unsigned char bytes[SC_TLS_CREDS_SIZE];
        max_align_t align;
    } opaque;
};

struct sc_tls {
    struct sc_channel base;  /* first: a struct sc_tls * is a channel */
    union {
        unsigned char bytes[SC_TLS_CTX_SIZE];
        max_align_t align;
    } opaque;
};

/* Initialise the library once: Mbed TLS's arena, threading and PSA RNG.
 * arena/len may be NULL/0 to use the built-in static arena of
 * SC_TLS_ARENA_SIZE bytes. Called implicitly by every init below; call it
 * first yourself only to supply your own arena. A second call is a no-op. */
int sc_tls_global_init(void *arena, size_t len);

/* Arena statistics in bytes: in use now (0 in builds without the
 * allocator's statistics) and the peak since sc_tls_global_init (kept by
 * every build; small builds read it off a painted arena). */
size_t sc_tls_arena_in_use(void);
size_t sc_tls_arena_high_water(void);

/* ---- Credentials ---- */

int sc_tls_creds_init(struct sc_tls_creds *c);
void sc_tls_creds_free(struct sc_tls_creds *c);  /* also wipes the keys */

/* Load a QEMU-layout directory for one endpoint: the CA (required for a
 * client, and for a server that verifies clients), the CRL if present, and
 * <endpoint>-cert.pem / <endpoint>-key.pem (required for a server, optional
 * for a client). Needs SC_TLS_FILE_MAX bytes of stack. */
int sc_tls_creds_load_x509_dir(struct sc_tls_creds *c, const char *dir,
                               enum sc_tls_endpoint ep);
/* The same from memory (firmware with compiled-in credentials). PEM text
 * need not be NUL-terminated; DER is accepted too. */
int sc_tls_creds_add_ca(struct sc_tls_creds *c, const void *pem, size_t len);
int sc_tls_creds_add_crl(struct sc_tls_creds *c, const void *pem, size_t len);
int sc_tls_creds_set_own(struct sc_tls_creds *c, const void *cert, size_t cert_len,
                         const void *key, size_t key_len);

/* Load every "identity:hexkey" line of a psktool file. Blank lines are
 * skipped; a malformed line fails the whole load with its line number. */
int sc_tls_creds_load_psk_file(struct sc_tls_creds *c, const char *path);
int sc_tls_creds_add_psk(struct sc_tls_creds *c, const char *identity, const uint8_t *key,
                         size_t key_len);

/* What went wrong in the last failed creds call (never NULL). */
const char *sc_tls_creds_errmsg(const struct sc_tls_creds *c);

/* ---- Certificate validator callback ---- */

/* Verification flags, as seen and changed by a validator. */
#define SC_TLS_VERIFY_NOT_TRUSTED 0x01u  /* not signed by a trusted CA */
#define SC_TLS_VERIFY_HOSTNAME 0x02u     /* name does not match */
#define SC_TLS_VERIFY_REVOKED 0x04u      /* listed in the CRL */
#define SC_TLS_VERIFY_EXPIRED 0x08u      /* expired or not yet valid */
#define SC_TLS_VERIFY_OTHER 0x80u        /* any other problem */

struct sc_tls_cert_view {
    int depth;             /* 0 = the peer's own certificate */
    const uint8_t *der;    /* the certificate, valid during the call */
    size_t der_len;
    char subject[160];     /* "CN=localhost, O=..." (truncated) */
};

/* Called for each certificate of the peer's chain, from the root down. It
 * may clear flags (accept) or set SC_TLS_VERIFY_OTHER (reject). Return 0,
 * or a negative value to abort the handshake. */
typedef int (*sc_tls_verify_fn)(void *arg, const struct sc_tls_cert_view *cert,
                                uint32_t *flags);

/* ---- Connections ---- */

struct sc_tls_config {
    enum sc_tls_endpoint endpoint;
    const struct sc_tls_creds *creds;
    enum sc_tls_auth auth;
    enum sc_tls_version min_version;   /* default TLS 1.2 */
    enum sc_tls_version max_version;   /* default TLS 1.3 */
    /* client */
    const char *hostname;          /* SNI and the name the certificate must match */
    bool no_hostname_check;        /* verify the chain but not the name */
    bool insecure_no_verify;       /* accept any server certificate (tests, tls-verify-peer=false) */
    const char *psk_identity;      /* which key of the creds (NULL: the first) */
    /* server */
    bool verify_peer;              /* require a client certificate from the CA */
    /* both */
    sc_tls_verify_fn verify_cb;
    void *verify_arg;
};

/* Set up a TLS connection over lower (which stays the caller's to close).
 * Nothing is sent until the first handshake/read/write call. */
int sc_tls_init(struct sc_tls *t, struct sc_channel *lower, const struct sc_tls_config *cfg);

/* Advance the handshake without waiting: 0 when complete, SC_ERR_AGAIN
 * (see sc_direction), or a fatal error. read/write also drive it. */
int sc_tls_handshake(struct sc_tls *t);
int sc_tls_handshake_wait(struct sc_tls *t, uint64_t deadline_ms);

struct sc_tls_info {
    char version[16];       /* "TLSv1.3" */
    char ciphersuite[64];   /* "TLS1-3-AES-128-GCM-SHA256" */
    char peer[160];         /* peer certificate subject, or PSK identity used */
    bool psk;               /* authenticated by pre-shared key */
    size_t max_in_record;   /* largest plaintext record we accept */
    size_t max_out_record;  /* largest plaintext record we send */
};
int sc_tls_get_info(const struct sc_tls *t, struct sc_tls_info *info);

/* The message of the first failure: where, what, and Mbed TLS's code. */
const char *sc_tls_errmsg(const struct sc_tls *t);
/* The raw Mbed TLS error code kept with it (0 if none). */
int sc_tls_mbedtls_error(const struct sc_tls *t);

/* RFC 5705 / RFC 8446 7.5 keying material exporter (TLS 1.3 only). */
int sc_tls_export_keying_material(struct sc_tls *t, const char *label, const uint8_t *context,
                                  size_t context_len, uint8_t *out, size_t out_len);

/* The tls-server-end-point channel binding (RFC 5929 4.1): the hash of the
 * server's certificate (ours on a server, the peer's on a client) with its
 * signature's hash, SHA-256 in place of MD5 and SHA-1. SC_ERR_UNSUPPORTED
 * for a session without a server certificate (PSK). */
int sc_tls_server_end_point(struct sc_tls *t, uint8_t *out, size_t cap, size_t *len);

#endif
