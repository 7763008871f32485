/* The peers of the SASL fuzz targets: the configurations each target
 * builds from its mode byte, the user table behind every server, and the
 * finished DIGEST-MD5 exchanges the layer target starts from. Shared with
 * gen_sasl_seeds.c, which runs the same configurations against our own
 * peers to write valid seeds. Header-only.
 *
 * The fixed nonces are the RFCs' (RFC 5802 section 5, RFC 7677 section 3,
 * RFC 2831 section 4), so the RFC examples are valid inputs as they stand. */
#ifndef SC_FUZZ_SASL_PEERS_H
#define SC_FUZZ_SASL_PEERS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "../util/sasl_rfc.h"
#include "fuzz_sasl.h"
#include "sechan/sasl.h"

/* Channel binding data as a TLS layer below would give it. */
static const struct sc_sasl_binding fz_bind_exporter = {
    .type = SC_SASL_CB_TLS_EXPORTER, .len = 32,
    .data = {0x45, 0x58, 0x50, 0x4f, 0x52, 0x54, 0x45, 0x52, 1, 2, 3, 4, 5, 6, 7, 8,
             9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24}};
static const struct sc_sasl_binding fz_bind_endpoint = {
    .type = SC_SASL_CB_TLS_SERVER_END_POINT, .len = 32,
    .data = {0xe0, 0xe1, 0xe2, 0xe3, 0xe4, 0xe5, 0xe6, 0xe7, 0xe8, 0xe9, 0xea, 0xeb, 0xec,
             0xed, 0xee, 0xef, 0xf0, 0xf1, 0xf2, 0xf3, 0xf4, 0xf5, 0xf6, 0xf7, 0xf8, 0xf9,
             0xfa, 0xfb, 0xfc, 0xfd, 0xfe, 0xff}};

/* A SCRAM server's decoy key: an unknown user's made-up salt is then the
 * same on every attempt (fuzz_sasl_scram_server checks it). */
static const uint8_t fz_decoy_key[SC_SASL_DECOY_KEY_LEN] = {
    0xd0, 0xd1, 0xd2, 0xd3, 0xd4, 0xd5, 0xd6, 0xd7, 0xd8, 0xd9, 0xda, 0xdb, 0xdc, 0xdd, 0xde, 0xdf,
    0x10, 0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17, 0x18, 0x19, 0x1a, 0x1b, 0x1c, 0x1d, 0x1e, 0x1f};

/* ---- the users every server knows ----
 * "user"/"pencil": SCRAM-SHA-1 with RFC 5802's salt, SCRAM-SHA-256 with
 *                  RFC 7677's, DIGEST-MD5 at RFC2831_REALM
 * "chris"/"secret": DIGEST-MD5 at RFC2831_REALM (RFC 2831)
 * "bad": a malformed SCRAM verifier; "error": the lookup fails;
 * anyone else: not found. The verifiers are made once (PBKDF2 is slow). */
static struct {
    bool ready;
    struct sc_sasl_user_secret user, chris, bad;
} fz_users;

static inline void fz_users_init(void)
{
    if (fz_users.ready)
        return;
    struct sc_sasl_user_secret *u = &fz_users.user;
    FZ_CHECK(sc_sasl_scram_secret_make(&u->sha1, false, "pencil", rfc5802_salt,
                                       sizeof(rfc5802_salt), 4096) == 0);
    FZ_CHECK(sc_sasl_scram_secret_make(&u->sha256, true, "pencil", rfc7677_salt,
                                       sizeof(rfc7677_salt), 4096) == 0);
    FZ_CHECK(sc_sasl_digest_secret_make(u->digest_ha1, "user", RFC2831_REALM, "pencil") == 0);
    u->has_sha1 = u->has_sha256 = u->has_digest = true;
    struct sc_sasl_user_secret *c = &fz_users.chris;
    FZ_CHECK(sc_sasl_digest_secret_make(c->digest_ha1, "chris", RFC2831_REALM, "secret") == 0);
    c->has_digest = true;
    fz_users.bad = fz_users.user;
    fz_users.bad.sha1.salt_len = 0;
    fz_users.bad.sha256.iterations = 1;
    fz_users.ready = true;
}

static inline int fz_lookup(void *arg, const char *user, const char *realm,
                            struct sc_sasl_user_secret *out)
{
    (void)arg;
    fz_users_init();
    FZ_CHECK(user != NULL && realm != NULL);
    if (strcmp(user, "error") == 0)
        return SC_ERR_IO;
    const struct sc_sasl_user_secret *u = strcmp(user, "user") == 0    ? &fz_users.user
                                          : strcmp(user, "chris") == 0 ? &fz_users.chris
                                          : strcmp(user, "bad") == 0   ? &fz_users.bad
                                                                       : NULL;
    if (u == NULL)
        return SC_ERR_NOT_FOUND;
    *out = *u;
    if (realm[0] != '\0' && strcmp(realm, RFC2831_REALM) != 0)
        out->has_digest = false;
    return 0;
}

/* Names a server may authenticate (used by the "never someone unknown" checks). */
static inline bool fz_known_user(const char *u)
{
    return strcmp(u, "user") == 0 || strcmp(u, "chris") == 0;
}

/* ---- fuzz_sasl_scram_client: byte 0 ---- */
#define FZ_SC_SHA256 0x01u  /* SCRAM-SHA-256, else SCRAM-SHA-1 */
#define FZ_SC_PLUS 0x02u    /* -PLUS with fz_bind_exporter */
#define FZ_SC_AUTHZ 0x04u   /* authzid "adm,in=" (escaped on the wire) */
#define FZ_SC_BIND2 0x08u   /* -PLUS: tls-server-end-point; else a binding anyway ("y") */
#define FZ_SC_SMALL 0x10u   /* output capacity 96 bytes */
#define FZ_SC_ODDUSER 0x20u /* user "us,er=" instead of "user" */

struct fz_scram_client {
    struct sc_sasl_client_config cfg;
    enum sc_sasl_mech mech;
    bool plus;
    size_t cap;
};

static inline void fz_scram_client_cfg(uint8_t mode, struct fz_scram_client *c)
{
    bool sha256 = mode & FZ_SC_SHA256;
    memset(c, 0, sizeof(*c));
    c->plus = mode & FZ_SC_PLUS;
    c->mech = sha256 ? (c->plus ? SC_SASL_SCRAM_SHA_256_PLUS : SC_SASL_SCRAM_SHA_256)
                     : (c->plus ? SC_SASL_SCRAM_SHA_1_PLUS : SC_SASL_SCRAM_SHA_1);
    c->cap = (mode & FZ_SC_SMALL) ? 96 : SC_SASL_TOKEN_MAX;
    c->cfg.user = (mode & FZ_SC_ODDUSER) ? "us,er=" : "user";
    c->cfg.password = "pencil";
    c->cfg.authzid = (mode & FZ_SC_AUTHZ) ? "adm,in=" : NULL;
    if (c->plus)
        c->cfg.binding = (mode & FZ_SC_BIND2) ? &fz_bind_endpoint : &fz_bind_exporter;
    else if (mode & FZ_SC_BIND2)
        c->cfg.binding = &fz_bind_exporter;
    c->cfg.test_nonce = sha256 ? RFC7677_CNONCE : RFC5802_CNONCE;
}

/* ---- fuzz_sasl_scram_server: byte 0 ---- */
#define FZ_SS_SHA256 0x01u /* SCRAM-SHA-256, else SCRAM-SHA-1 */
#define FZ_SS_PLUS 0x02u   /* -PLUS (the server has a binding) */
#define FZ_SS_BIND 0x04u   /* a binding without -PLUS: -PLUS offered, "y" is a downgrade */
#define FZ_SS_BIND2 0x08u  /* the binding is tls-server-end-point, else tls-exporter */
#define FZ_SS_SMALL 0x10u  /* output capacity 64 bytes */
#define FZ_SS_NOINIT 0x20u /* START without an initial response: client-first in a step */

struct fz_scram_server {
    struct sc_sasl_server_config cfg;
    enum sc_sasl_mech mech;
    bool plus;
    bool has_in;
    size_t cap;
};

static inline void fz_scram_server_cfg(uint8_t mode, struct fz_scram_server *s)
{
    bool sha256 = mode & FZ_SS_SHA256;
    memset(s, 0, sizeof(*s));
    s->plus = mode & FZ_SS_PLUS;
    s->mech = sha256 ? (s->plus ? SC_SASL_SCRAM_SHA_256_PLUS : SC_SASL_SCRAM_SHA_256)
                     : (s->plus ? SC_SASL_SCRAM_SHA_1_PLUS : SC_SASL_SCRAM_SHA_1);
    s->has_in = !(mode & FZ_SS_NOINIT);
    s->cap = (mode & FZ_SS_SMALL) ? 64 : SC_SASL_TOKEN_MAX;
    s->cfg.lookup = fz_lookup;
    s->cfg.realm = RFC2831_REALM;
    s->cfg.decoy_key = fz_decoy_key;
    if (s->plus || (mode & FZ_SS_BIND))
        s->cfg.binding = (mode & FZ_SS_BIND2) ? &fz_bind_endpoint : &fz_bind_exporter;
    s->cfg.test_nonce = sha256 ? RFC7677_SNONCE : RFC5802_SNONCE;
}

/* ---- fuzz_sasl_digest_client: bytes 0 and 1 ---- */
/* byte 0 bits 0-1: qop accepted: 0 by policy, 1 auth, 2 auth-int|auth-conf, 3 auth-conf */
#define FZ_DC_PLAIN 0x04u     /* plaintext transport */
#define FZ_DC_NOLAYER 0x08u   /* allow_no_layer */
#define FZ_DC_DES 0x10u       /* ciphers: des only, else both */
#define FZ_DC_PREFDES 0x20u   /* prefer_des */
#define FZ_DC_REALM 0x40u     /* realm RFC2831_REALM configured, else the server's first */
/* byte 1 */
#define FZ_DC2_SMALL 0x01u    /* output capacity 128 bytes */
#define FZ_DC2_AUTHZ 0x02u    /* authzid "ad\"min" (quoted on the wire) */
#define FZ_DC2_MAXBUF 0x04u   /* maxbuf SC_SASL_MAXBUF_MIN */
#define FZ_DC2_DEFURI 0x08u   /* service and host NULL: "nbd/localhost", else RFC 2831's */

struct fz_digest_client {
    struct sc_sasl_client_config cfg;
    size_t cap;
};

static const unsigned fz_dc_qops[4] = {0, SC_SASL_QOP_AUTH, SC_SASL_QOP_INT | SC_SASL_QOP_CONF,
                                       SC_SASL_QOP_CONF};

static inline void fz_digest_client_cfg(uint8_t mode, uint8_t mode2, struct fz_digest_client *c)
{
    memset(c, 0, sizeof(*c));
    c->cfg.user = "chris";
    c->cfg.password = "secret";
    if (!(mode2 & FZ_DC2_DEFURI)) {
        c->cfg.service = "imap";
        c->cfg.host = RFC2831_REALM;
    }
    c->cfg.qop = fz_dc_qops[mode & 3];
    c->cfg.plaintext = mode & FZ_DC_PLAIN;
    c->cfg.allow_no_layer = mode & FZ_DC_NOLAYER;
    c->cfg.ciphers = (mode & FZ_DC_DES) ? SC_SASL_CIPHER_DES : 0;
    c->cfg.prefer_des = mode & FZ_DC_PREFDES;
    c->cfg.realm = (mode & FZ_DC_REALM) ? RFC2831_REALM : NULL;
    c->cfg.authzid = (mode2 & FZ_DC2_AUTHZ) ? "ad\"min" : NULL;
    c->cfg.maxbuf = (mode2 & FZ_DC2_MAXBUF) ? SC_SASL_MAXBUF_MIN : 0;
    c->cfg.test_nonce = RFC2831_CNONCE;
    c->cap = (mode2 & FZ_DC2_SMALL) ? 128 : SC_SASL_TOKEN_MAX;
}

/* ---- fuzz_sasl_digest_server: byte 0 ---- */
/* bits 0-1: qop offered: 0 by policy, 1 auth, 2 auth-int, 3 auth-conf */
#define FZ_DS_PLAIN 0x04u     /* plaintext transport */
#define FZ_DS_NOLAYER 0x08u   /* allow_no_layer */
/* bits 4-5: ciphers offered: 0 both (default), 1 des, 2 3des, 3 both */
#define FZ_DS_SMALL 0x40u     /* capacity 39 bytes for the answer (rspauth needs 40) */
#define FZ_DS_DEFAULTS 0x80u  /* service and realm NULL: "nbd", "sechan" */

struct fz_digest_server {
    struct sc_sasl_server_config cfg;
    size_t cap;
};

static inline void fz_digest_server_cfg(uint8_t mode, struct fz_digest_server *s)
{
    static const unsigned qops[4] = {0, SC_SASL_QOP_AUTH, SC_SASL_QOP_INT, SC_SASL_QOP_CONF};
    static const unsigned ciphers[4] = {0, SC_SASL_CIPHER_DES, SC_SASL_CIPHER_3DES,
                                        SC_SASL_CIPHER_DES | SC_SASL_CIPHER_3DES};
    memset(s, 0, sizeof(*s));
    s->cfg.lookup = fz_lookup;
    if (!(mode & FZ_DS_DEFAULTS)) {
        s->cfg.service = "imap";
        s->cfg.realm = RFC2831_REALM;
    }
    s->cfg.qop = qops[mode & 3];
    s->cfg.plaintext = mode & FZ_DS_PLAIN;
    s->cfg.allow_no_layer = mode & FZ_DS_NOLAYER;
    s->cfg.ciphers = ciphers[(mode >> 4) & 3];
    s->cfg.test_nonce = RFC2831_NONCE;
    s->cap = (mode & FZ_DS_SMALL) ? 39 : SC_SASL_TOKEN_MAX;
}

/* ---- fuzz_sasl_frames: byte 0 ---- */
#define FZ_FR_SERVER 0x01u /* the engine under test is the server, else the client */
#define FZ_FR_PLAIN 0x02u  /* plaintext transport (DIGEST-MD5 with a layer only) */
#define FZ_FR_BIND 0x04u   /* a tls-exporter binding (-PLUS) */
#define FZ_FR_SEED(m) ((uint8_t)((m) >> 3)) /* bits 3-7: the slice seed (0: whole) */

static inline void fz_frames_client_cfg(uint8_t mode, struct sc_sasl_client_config *c)
{
    memset(c, 0, sizeof(*c));
    c->user = "user";
    c->password = "pencil";
    c->realm = RFC2831_REALM;
    c->plaintext = mode & FZ_FR_PLAIN;
    c->binding = (mode & FZ_FR_BIND) ? &fz_bind_exporter : NULL;
    c->test_nonce = RFC5802_CNONCE;
}

static inline void fz_frames_server_cfg(uint8_t mode, struct sc_sasl_server_config *s)
{
    memset(s, 0, sizeof(*s));
    s->lookup = fz_lookup;
    s->realm = RFC2831_REALM;
    s->decoy_key = fz_decoy_key;
    s->plaintext = mode & FZ_FR_PLAIN;
    s->binding = (mode & FZ_FR_BIND) ? &fz_bind_exporter : NULL;
    s->test_nonce = RFC5802_SNONCE;
}

/* ---- two engines joined: our client against our server ---- */

/* Shuttle bytes between a client and a server (inited) until neither
 * moves; tap, if not NULL, sees every byte sent (dir 0: client to
 * server). Returns 0 when both are done. */
typedef void (*fz_tap_fn)(void *arg, int dir, const uint8_t *p, size_t n);

static inline int fz_exchange(struct sc_sasl *cli, struct sc_sasl *srv, fz_tap_fn tap, void *arg)
{
    for (int round = 0; round < 1000; round++) {
        bool moved = false;
        struct sc_sasl *from[2] = {cli, srv};
        for (int d = 0; d < 2; d++) {
            struct sc_sasl *a = from[d], *b = from[1 - d];
            size_t len = 0, room = 0;
            const uint8_t *src = sc_sasl_sendbuf(a, &len);
            if (len == 0)
                continue;
            uint8_t *dst = sc_sasl_recvbuf(b, &room);
            size_t n = dst == NULL ? len : len < room ? len : room;
            if (tap != NULL)
                tap(arg, d, src, n);
            if (dst != NULL) {
                memcpy(dst, src, n);
                sc_sasl_recvack(b, n);
            }
            sc_sasl_sendack(a, n);
            moved = true;
        }
        if (!moved)
            break;
    }
    bool ok = (sc_sasl_state(cli) & SC_SASL_DONE) && (sc_sasl_state(srv) & SC_SASL_DONE);
    return ok ? 0 : -1;
}

/* ---- fuzz_sasl_layer: finished DIGEST-MD5 exchanges ---- */
#define FZ_LAYER_VARIANTS 4
struct fz_layer_variant {
    const char *name;
    unsigned qop;
    unsigned cipher;
    uint32_t maxbuf;
};
static const struct fz_layer_variant fz_layer_variants[FZ_LAYER_VARIANTS] = {
    {"auth-int", SC_SASL_QOP_INT, 0, 0},
    {"auth-conf des", SC_SASL_QOP_CONF, SC_SASL_CIPHER_DES, 0},
    {"auth-conf 3des", SC_SASL_QOP_CONF, SC_SASL_CIPHER_3DES, 0},
    {"auth-conf 3des, maxbuf 100", SC_SASL_QOP_CONF, SC_SASL_CIPHER_3DES, 100},
};

/* cli and srv end up holding the finished exchange of variant v (the
 * same bytes every time: fixed nonces). */
static inline void fz_layer_exchange(int v, struct sc_sasl *cli, struct sc_sasl *srv)
{
    static const enum sc_sasl_mech dm[] = {SC_SASL_DIGEST_MD5};
    const struct fz_layer_variant *lv = &fz_layer_variants[v];
    struct sc_sasl_client_config cc = {.user = "chris", .password = "secret", .mechs = dm,
                                       .mech_count = 1, .qop = lv->qop, .ciphers = lv->cipher,
                                       .maxbuf = lv->maxbuf, .test_nonce = RFC2831_CNONCE};
    struct sc_sasl_server_config sc = {.lookup = fz_lookup, .realm = RFC2831_REALM,
                                       .maxbuf = lv->maxbuf, .test_nonce = RFC2831_NONCE};
    FZ_CHECK(sc_sasl_client_init(cli, &cc) == 0);
    FZ_CHECK(sc_sasl_server_init(srv, &sc) == 0);
    FZ_CHECK(fz_exchange(cli, srv, NULL, NULL) == 0);
    FZ_CHECK(sc_sasl_has_layer(cli) && sc_sasl_has_layer(srv));
    struct sc_sasl_info ci;
    FZ_CHECK(sc_sasl_info(cli, &ci) == 0);
    FZ_CHECK(ci.qop == lv->qop && ci.cipher == lv->cipher);
}

#endif
