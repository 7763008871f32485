/* sechan/sasl.h: password authentication (SASL) and its security layer.
 *
 * Three levels, each usable on its own:
 *
 *  1. Mechanisms, I/O-free: SCRAM-SHA-256, SCRAM-SHA-1 and their -PLUS
 *     variants (RFC 5802, RFC 7677; channel binding RFC 9266 / RFC 5929),
 *     and DIGEST-MD5 (RFC 2831) with qop auth, auth-int and auth-conf.
 *     sc_sasl_client_start / sc_sasl_server_start / sc_sasl_step turn one
 *     token into the next.
 *  2. The exchange: the framing of docs/sasl.md (mechanism list, chosen
 *     mechanism, tokens, outcome) and the policy, as an engine with
 *     sc_sasl_sendbuf/sendack and sc_sasl_recvbuf/recvack, and sc_sasl_run
 *     which joins it to a channel.
 *  3. The security layer: after DIGEST-MD5 with auth-int or auth-conf, a
 *     channel (struct sc_sasl_layer) over the channel below, with the same
 *     contract as TLS.
 *
 * Memory: every context is caller-allocated with its size a public
 * constant; strings given in a config are borrowed and must stay valid
 * until the exchange ends. Hashes, HMAC, PBKDF2, DES and base64 come from
 * Mbed TLS, which runs on the arena of sc_tls_global_init (called here
 * implicitly).
 *
 * Limits (docs/sasl.md): names and passwords are printable US-ASCII
 * (0x20-0x7E, the ASCII subset of SASLprep); anything else is refused with
 * SC_ERR_UNSUPPORTED. Tokens are at most SC_SASL_TOKEN_MAX bytes.
 */
#ifndef SECHAN_SASL_H
#define SECHAN_SASL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sechan/channel.h"

/* The largest token (challenge or response) accepted or produced. A build
 * may lower it to save RAM; larger tokens are then SC_ERR_TOO_LONG. */
#ifndef SC_SASL_TOKEN_MAX
#define SC_SASL_TOKEN_MAX 4096
#endif
#define SC_SASL_NAME_MAX 255       /* user name, authzid, realm: bytes */
#define SC_SASL_PASS_MAX 255       /* password: bytes */
#define SC_SASL_MECHS_MAX 256      /* MECHS frame body */
#define SC_SASL_REASON_MAX 128     /* failure reason in an OUTCOME frame */
#define SC_SASL_ROUNDS_MAX 8       /* challenge/response round trips */
#define SC_SASL_CB_MAX 64          /* channel binding data */
#define SC_SASL_SALT_MAX 64
#define SC_SASL_ITER_MIN 4096
#define SC_SASL_ITER_MAX 1000000
#define SC_SASL_MAXBUF_MIN 64       /* DIGEST-MD5 maxbuf bounds: RFC 2831 allows 17, */
                                    /* but a frame's overhead is up to 29 bytes */
#define SC_SASL_MAXBUF_MAX 16777215
#define SC_SASL_MAXBUF_DEFAULT 65536
#define SC_SASL_DECOY_KEY_LEN 32

enum sc_sasl_mech {
    SC_SASL_SCRAM_SHA_256_PLUS = 0,
    SC_SASL_SCRAM_SHA_1_PLUS = 1,
    SC_SASL_SCRAM_SHA_256 = 2,
    SC_SASL_SCRAM_SHA_1 = 3,
    SC_SASL_DIGEST_MD5 = 4,
    SC_SASL_MECH_COUNT = 5
};

/* "SCRAM-SHA-256-PLUS", ...; NULL for a value out of range. */
const char *sc_sasl_mech_name(enum sc_sasl_mech m);
/* The mechanism named by name[0..len) (exact, upper case), or -1. */
int sc_sasl_mech_lookup(const char *name, size_t len);

/* DIGEST-MD5 quality of protection, as bits so a config can list several. */
#define SC_SASL_QOP_AUTH 1u   /* authentication only */
#define SC_SASL_QOP_INT 2u    /* then an integrity layer (HMAC-MD5) */
#define SC_SASL_QOP_CONF 4u   /* then integrity and confidentiality */
/* auth-conf ciphers (rc4 is not offered: see docs/sasl.md) */
#define SC_SASL_CIPHER_DES 1u
#define SC_SASL_CIPHER_3DES 2u

/* Channel binding data from the TLS layer below (sc_tls_channel_binding). */
enum sc_sasl_cb_type {
    SC_SASL_CB_NONE = 0,
    SC_SASL_CB_TLS_EXPORTER = 1,        /* RFC 9266, TLS 1.3 */
    SC_SASL_CB_TLS_SERVER_END_POINT = 2 /* RFC 5929, X.509 servers */
};
struct sc_sasl_binding {
    enum sc_sasl_cb_type type;
    size_t len;
    uint8_t data[SC_SASL_CB_MAX];
};

struct sc_tls;
/* Fill b with the binding of a finished TLS session: tls-exporter (32
 * bytes, label "EXPORTER-Channel-Binding", RFC 9266) or
 * tls-server-end-point. SC_ERR_UNSUPPORTED where the session has none. */
int sc_sasl_binding_from_tls(struct sc_sasl_binding *b, struct sc_tls *t,
                             enum sc_sasl_cb_type type);

/* ---- Server-side secrets: never the password ---- */

/* A SCRAM verifier (RFC 5802 section 3): what the server stores. */
struct sc_sasl_scram_secret {
    uint32_t iterations;
    size_t salt_len;
    uint8_t salt[SC_SASL_SALT_MAX];
    uint8_t stored_key[32];  /* SHA-1 uses the first 20 bytes */
    uint8_t server_key[32];
};

/* What a server knows about one user; the lookup fills what it has. */
struct sc_sasl_user_secret {
    bool has_sha1, has_sha256, has_digest;
    struct sc_sasl_scram_secret sha1;
    struct sc_sasl_scram_secret sha256;
    uint8_t digest_ha1[16];  /* MD5(user ":" realm ":" password) */
};

/* Derive a SCRAM verifier from a password (sha256: true for SHA-256, false
 * for SHA-1). salt_len 1..SC_SASL_SALT_MAX, iterations in
 * SC_SASL_ITER_MIN..SC_SASL_ITER_MAX. */
int sc_sasl_scram_secret_make(struct sc_sasl_scram_secret *s, bool sha256, const char *password,
                              const uint8_t *salt, size_t salt_len, uint32_t iterations);
/* The DIGEST-MD5 password hash for user at realm. */
int sc_sasl_digest_secret_make(uint8_t ha1[16], const char *user, const char *realm,
                               const char *password);

/* Look a user up: 0 and *out filled, SC_ERR_NOT_FOUND for no such user, or
 * another error. realm is the DIGEST-MD5 realm ("" for SCRAM). */
typedef int (*sc_sasl_lookup_fn)(void *arg, const char *user, const char *realm,
                                 struct sc_sasl_user_secret *out);

/* ---- Configuration ---- */

struct sc_sasl_client_config {
    const char *user;       /* authentication identity (required) */
    const char *password;   /* required */
    const char *authzid;    /* optional authorization identity */
    const char *service;    /* DIGEST-MD5 digest-uri service; NULL: "nbd" */
    const char *host;       /* DIGEST-MD5 digest-uri host; NULL: "localhost" */
    const char *realm;      /* DIGEST-MD5 realm; NULL: the server's first */
    /* Own preference order, best first; NULL: SCRAM-SHA-256-PLUS,
     * SCRAM-SHA-1-PLUS, SCRAM-SHA-256, SCRAM-SHA-1, DIGEST-MD5. */
    const enum sc_sasl_mech *mechs;
    size_t mech_count;
    /* Policy. plaintext: the channel below is not TLS, so only a mechanism
     * with a security layer is allowed, unless allow_no_layer is set. */
    bool plaintext;
    bool allow_no_layer;
    unsigned qop;           /* DIGEST-MD5 qops we accept (SC_SASL_QOP_*); 0: by policy */
    unsigned ciphers;       /* auth-conf ciphers we accept; 0: both */
    bool prefer_des;        /* pick des over 3des when both are possible */
    uint32_t maxbuf;        /* largest frame we receive; 0: SC_SASL_MAXBUF_DEFAULT */
    const struct sc_sasl_binding *binding;  /* TLS below, or NULL */
    const char *test_nonce; /* known-answer tests only: a fixed client nonce */
};

struct sc_sasl_server_config {
    sc_sasl_lookup_fn lookup;
    void *lookup_arg;
    const char *service;    /* expected digest-uri service; NULL: "nbd" */
    const char *realm;      /* DIGEST-MD5 realm offered; NULL: "sechan" */
    /* Mechanisms offered, in this order; NULL: every one the policy and
     * the binding allow, in the default order. */
    const enum sc_sasl_mech *mechs;
    size_t mech_count;
    bool plaintext;
    bool allow_no_layer;
    unsigned qop;           /* DIGEST-MD5 qops offered; 0: by policy */
    unsigned ciphers;       /* auth-conf ciphers offered; 0: both */
    uint32_t maxbuf;        /* largest frame we receive; 0: default */
    const struct sc_sasl_binding *binding;
    uint32_t unknown_iterations;  /* SCRAM: iterations shown for unknown users; 0: 4096 */
    /* SCRAM: SC_SASL_DECOY_KEY_LEN random bytes, the same for the server's
     * lifetime. An unknown user then gets the same made-up salt on every
     * attempt, like a real user. NULL: a fresh random salt each time, which
     * lets a client that asks twice tell unknown users apart. */
    const uint8_t *decoy_key;
    const char *test_nonce; /* known-answer tests only */
};

/* ---- The context ---- */

#define SC_SASL_CTX_SIZE (3 * (SC_SASL_TOKEN_MAX + 32) + 3072)

struct sc_sasl {
    union {
        unsigned char bytes[SC_SASL_CTX_SIZE];
        max_align_t align;
    } opaque;
};

int sc_sasl_client_init(struct sc_sasl *s, const struct sc_sasl_client_config *cfg);
int sc_sasl_server_init(struct sc_sasl *s, const struct sc_sasl_server_config *cfg);
/* Wipes every secret the context holds. */
void sc_sasl_free(struct sc_sasl *s);

/* ---- Level 1: mechanism steps (no framing) ----
 * Results: SC_SASL_CONTINUE (another token is expected), SC_OK (done), or an
 * error. *out_len is set on every result; on a server error it holds a
 * short reason to send (possibly SCRAM's "e=..."). */
#define SC_SASL_CONTINUE 1

/* Client: begin mechanism m. *has_out says whether there is an initial
 * response (SCRAM has one; DIGEST-MD5 waits for the challenge). */
int sc_sasl_client_start(struct sc_sasl *s, enum sc_sasl_mech m, uint8_t *out, size_t cap,
                         size_t *out_len, bool *has_out);
/* Server: begin mechanism m with the client's initial response, if any. */
int sc_sasl_server_start(struct sc_sasl *s, enum sc_sasl_mech m, const uint8_t *in,
                         size_t in_len, bool has_in, uint8_t *out, size_t cap, size_t *out_len);
/* Either side: the peer's next token in, ours out. A client given the
 * server's success data (SCRAM v=, DIGEST-MD5 rspauth=) returns SC_OK only
 * once the server has proved itself. */
int sc_sasl_step(struct sc_sasl *s, const uint8_t *in, size_t in_len, uint8_t *out, size_t cap,
                 size_t *out_len);

/* ---- Level 2: the exchange over the framing of docs/sasl.md ---- */

#define SC_SASL_WANT_READ 1u
#define SC_SASL_WANT_WRITE 2u
#define SC_SASL_DONE 4u      /* authenticated (sc_sasl_info tells how) */
#define SC_SASL_FAILED 8u    /* sc_sasl_error / sc_sasl_errmsg tell why */

unsigned sc_sasl_state(const struct sc_sasl *s);
/* Bytes to send now; call sendack with how many went out. */
const uint8_t *sc_sasl_sendbuf(struct sc_sasl *s, size_t *len);
void sc_sasl_sendack(struct sc_sasl *s, size_t n);
/* Room for received bytes. Never more than the rest of the current frame,
 * so bytes after the exchange stay in the channel. */
uint8_t *sc_sasl_recvbuf(struct sc_sasl *s, size_t *room);
/* n bytes were written into the recvbuf. 0, or the (sticky) error. */
int sc_sasl_recvack(struct sc_sasl *s, size_t n);

/* Run the exchange over ch until done, failed, or the deadline. A server
 * that refuses sends its OUTCOME first. 0 when authenticated. */
int sc_sasl_run(struct sc_sasl *s, struct sc_channel *ch, uint64_t deadline_ms);

struct sc_sasl_info {
    enum sc_sasl_mech mech;
    char user[SC_SASL_NAME_MAX + 1];     /* authenticated identity (server side) */
    char authzid[SC_SASL_NAME_MAX + 1];  /* requested authorization identity, or "" */
    unsigned qop;           /* SC_SASL_QOP_* negotiated (SCRAM: AUTH) */
    unsigned cipher;        /* SC_SASL_CIPHER_* with QOP_CONF, else 0 */
    uint32_t send_maxbuf;   /* the peer's maxbuf: our largest frame */
    uint32_t recv_maxbuf;   /* ours */
    bool channel_bound;     /* a -PLUS mechanism verified the binding */
};
int sc_sasl_info(const struct sc_sasl *s, struct sc_sasl_info *info);
/* The first error (0 while healthy) and a message naming where it arose. */
int sc_sasl_error(const struct sc_sasl *s);
const char *sc_sasl_errmsg(const struct sc_sasl *s);
/* Does the finished exchange need a security layer (auth-int/auth-conf)? */
bool sc_sasl_has_layer(const struct sc_sasl *s);

/* ---- Level 3: the security layer ---- */

#define SC_SASL_LAYER_CTX_SIZE 1280

struct sc_sasl_layer {
    struct sc_channel base;  /* first: a struct sc_sasl_layer * is a channel */
    union {
        unsigned char bytes[SC_SASL_LAYER_CTX_SIZE];
        max_align_t align;
    } opaque;
};

/* Become a channel over lower, taking the keys of a finished exchange (they
 * are wiped from s). rx holds one incoming frame: at least our maxbuf + 4
 * bytes. tx holds one outgoing frame: at least min(peer maxbuf, tx_len)
 * (frames are sized to what fits, at least 64 bytes). */
int sc_sasl_layer_init(struct sc_sasl_layer *l, struct sc_channel *lower, struct sc_sasl *s,
                       void *rx, size_t rx_len, void *tx, size_t tx_len);

/* ---- For tests and fuzzers: the layer's codec without a channel ---- */

/* Seal msg into one frame (with its 4-byte length) at out. */
int sc_sasl_layer_seal(struct sc_sasl_layer *l, const uint8_t *msg, size_t len, uint8_t *out,
                       size_t cap, size_t *out_len);
/* Open one whole frame (with its length) in place; *msg points into frame. */
int sc_sasl_layer_open(struct sc_sasl_layer *l, uint8_t *frame, size_t len, uint8_t **msg,
                       size_t *msg_len);

#endif
