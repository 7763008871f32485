/* Private to sasl-lite/: the layouts behind struct sc_sasl and
 * struct sc_sasl_layer, and the helpers the mechanisms share. */
#ifndef SC_SASL_INTERNAL_H
#define SC_SASL_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sechan/sasl.h"

/* The longest frame of the framing: START with the longest name and token. */
#define SASL_FRAME_HDR 3
#define SASL_FRAME_MAX (SASL_FRAME_HDR + 2 + 20 + SC_SASL_TOKEN_MAX)
#define SASL_MECH_NAME_MAX 20
_Static_assert(SC_SASL_TOKEN_MAX >= 512 && SC_SASL_TOKEN_MAX + 2 + SASL_MECH_NAME_MAX <= 65535,
               "a frame's length is 16 bits; SCRAM needs a few hundred bytes");
#define SASL_NONCE_MAX 128       /* SCRAM and DIGEST-MD5 nonces we accept */
#define SASL_NONCE_RAND 18       /* random bytes in a nonce we make (24 base64 chars) */

/* SCRAM, either side. The transcript holds client-first-message-bare and,
 * on the server, "," server-first-message: the AuthMessage's first parts. */
struct scram_state {
    bool sha256;
    bool plus;
    bool unknown_user;          /* server: carry on with a decoy, fail at the end */
    size_t hash_len;            /* 20 or 32 */
    size_t gs2_len;             /* client: our gs2 header; server: the client's */
    char gs2[8 + 24 + 3 * SC_SASL_NAME_MAX];
    size_t nonce_len;           /* the combined nonce (client + server parts) */
    char nonce[2 * SASL_NONCE_MAX + 1];
    size_t cnonce_len;          /* the client's part */
    size_t bare_len;            /* client-first-message-bare in transcript */
    size_t transcript_len;
    char transcript[SC_SASL_TOKEN_MAX + 512];
    uint8_t server_sig[32];     /* client: the v= we expect */
    struct sc_sasl_scram_secret secret;  /* server: the user's verifier */
};

/* DIGEST-MD5, either side. */
struct digest_state {
    char nonce[SASL_NONCE_MAX + 1];
    char cnonce[SASL_NONCE_MAX + 1];
    char realm[SC_SASL_NAME_MAX + 1];
    char rspauth[33];           /* client: expected; server: to send */
    bool nonce_used;            /* server: single use */
    bool utf8;                  /* charset=utf-8 seen */
    unsigned qops;              /* offered by the server */
    unsigned ciphers;           /* offered by the server */
    uint8_t ha1[16];            /* H(A1): the session key */
};

/* The security layer's state, made by DIGEST-MD5 and moved into the layer. */
struct sasl_keys {
    unsigned qop;               /* SC_SASL_QOP_INT or SC_SASL_QOP_CONF */
    unsigned cipher;
    bool server;
    uint8_t ki_send[16];
    uint8_t ki_recv[16];
    uint8_t kc_send[16];
    uint8_t kc_recv[16];
    uint32_t send_maxbuf;
    uint32_t recv_maxbuf;
};

enum sasl_fstate {
    FS_IDLE = 0,      /* level 1 only: no framing yet */
    FS_SEND,          /* a frame is in tx; then next_state */
    FS_RECV,          /* reading one frame into rx */
    FS_DONE,
    FS_FAILED
};

struct sasl_impl {
    bool server;
    bool started;
    bool mech_done;             /* the mechanism returned SC_OK */
    unsigned step;              /* tokens the mechanism has taken so far */
    enum sc_sasl_mech mech;
    int error;
    char msg[160];
    struct sc_sasl_client_config ccfg;
    struct sc_sasl_server_config scfg;
    uint32_t offered;           /* bits of SC_SASL_MECH_*: the server's list */
    /* framing */
    enum sasl_fstate fstate;
    enum sasl_fstate after_send;
    unsigned expect;            /* bits (1 << frame type) allowed next */
    unsigned rounds;
    size_t tx_len, tx_off;
    size_t rx_have, rx_need;
    uint8_t tx[SASL_FRAME_MAX];
    uint8_t rx[SASL_FRAME_MAX];
    union {
        struct scram_state scram;
        struct digest_state digest;
    } m;
    struct sc_sasl_info info;
    bool have_keys;
    struct sasl_keys keys;
};

_Static_assert(sizeof(struct sasl_impl) <= SC_SASL_CTX_SIZE, "SC_SASL_CTX_SIZE too small");

static inline struct sasl_impl *sasl_impl_of(struct sc_sasl *s)
{
    return (struct sasl_impl *)(void *)s->opaque.bytes;
}
static inline const struct sasl_impl *sasl_cimpl_of(const struct sc_sasl *s)
{
    return (const struct sasl_impl *)(const void *)s->opaque.bytes;
}

/* A SCRAM -PLUS mechanism: one with channel binding. */
static inline bool sasl_mech_is_plus(enum sc_sasl_mech m)
{
    return m == SC_SASL_SCRAM_SHA_256_PLUS || m == SC_SASL_SCRAM_SHA_1_PLUS;
}

/* Record the first error with a message; returns err. */
int sasl_fail(struct sasl_impl *im, int err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* ---- helpers (sasl_util.c) ---- */

/* Printable US-ASCII only (our SASLprep subset); else SC_ERR_UNSUPPORTED. */
int sasl_check_ascii(const char *s, size_t max);
/* Fill out with a fresh nonce of printable base64 characters; returns its length. */
int sasl_make_nonce(char *out, size_t cap, const char *fixed);
int sasl_b64_encode(const uint8_t *in, size_t len, char *out, size_t cap, size_t *out_len);
int sasl_b64_decode(const char *in, size_t len, uint8_t *out, size_t cap, size_t *out_len);
/* HMAC with SHA-1, SHA-256 or MD5 (md: 1, 256, 5) over up to three parts. */
int sasl_hmac(int md, const uint8_t *key, size_t key_len, const void *a, size_t a_len,
              const void *b, size_t b_len, uint8_t *out);
int sasl_hash(int md, const void *a, size_t a_len, const void *b, size_t b_len, uint8_t *out);
int sasl_pbkdf2(int md, const char *password, const uint8_t *salt, size_t salt_len,
                uint32_t iterations, uint8_t *out, size_t out_len);
bool sasl_ct_equal(const void *a, const void *b, size_t len);
void sasl_wipe(void *p, size_t len);
void sasl_hex(const uint8_t *in, size_t len, char *out);
/* Append to a bounded text buffer; SC_ERR_TOO_LONG when it does not fit. */
struct sasl_text {
    char *buf;
    size_t cap;
    size_t len;
    bool overflow;
};
void sasl_put(struct sasl_text *t, const char *s, size_t len);
void sasl_puts(struct sasl_text *t, const char *s);
int sasl_init_crypto(void);

/* ---- mechanisms ---- */
int scram_client_start(struct sasl_impl *im, uint8_t *out, size_t cap, size_t *out_len);
int scram_client_step(struct sasl_impl *im, const uint8_t *in, size_t in_len, uint8_t *out,
                      size_t cap, size_t *out_len);
int scram_server_start(struct sasl_impl *im, const uint8_t *in, size_t in_len, bool has_in,
                       uint8_t *out, size_t cap, size_t *out_len);
int scram_server_step(struct sasl_impl *im, const uint8_t *in, size_t in_len, uint8_t *out,
                      size_t cap, size_t *out_len);
int digest_client_step(struct sasl_impl *im, const uint8_t *in, size_t in_len, uint8_t *out,
                       size_t cap, size_t *out_len);
int digest_server_start(struct sasl_impl *im, uint8_t *out, size_t cap, size_t *out_len);
int digest_server_step(struct sasl_impl *im, const uint8_t *in, size_t in_len, uint8_t *out,
                       size_t cap, size_t *out_len);
/* The DIGEST-MD5 qops and ciphers a side accepts under its policy. */
unsigned sasl_policy_qops(bool plaintext, bool allow_no_layer, unsigned configured);

#endif
