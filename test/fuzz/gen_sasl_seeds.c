/* Writes the seed corpora of the SASL fuzz targets:
 *
 *     gen_sasl_seeds DIR
 *
 * makes DIR/fuzz_sasl_<target>/ for the six targets. Besides the RFCs'
 * examples (RFC 5802 section 5, RFC 7677 section 3, RFC 2831 section 4),
 * the seeds are what our own peer sends to each target's configuration
 * (fuzz_sasl_peers.h), run here through sasl-lite with the same fixed
 * nonces, so each seed completes its exchange: -PLUS proofs, auth-int and
 * auth-conf responses, whole framed exchanges and sealed layer frames. The
 * output is deterministic, so regenerating test/fuzz/corpus/ changes
 * nothing unless sasl-lite's output or this file does. */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "seed_io.h"
#include "fuzz_sasl.h"
#include "fuzz_sasl_peers.h"
#include "sechan/pipe.h"

#define CAP 65536

struct seed {
    uint8_t b[CAP];
    size_t n;
};

static const char *outdir;
static struct seed seed;

static void put(struct seed *s, const void *p, size_t n)
{
    if (s->n + n > CAP) {
        fprintf(stderr, "gen_sasl_seeds: seed too large\n");
        exit(1);
    }
    memcpy(s->b + s->n, p, n);
    s->n += n;
}

static void put8(struct seed *s, uint8_t v)
{
    put(s, &v, 1);
}

static void puts_str(struct seed *s, const char *str)
{
    put(s, str, strlen(str));
}

static void start(struct seed *s, uint8_t mode)
{
    s->n = 0;
    put8(s, mode);
}

static void save(const char *target, const char *name, const struct seed *s)
{
    seed_save(outdir, target, name, s->b, s->n);
}

/* Two messages, FZ_SEP between them, after the mode byte(s) already in s. */
static void two(struct seed *s, const void *a, size_t a_len, const void *b, size_t b_len)
{
    put(s, a, a_len);
    if (b != NULL) {
        put8(s, FZ_SEP);
        put(s, b, b_len);
    }
}

static void two_str(struct seed *s, const char *a, const char *b)
{
    two(s, a, strlen(a), b, b != NULL ? strlen(b) : 0);
}

static struct sc_sasl cli, srv;
static uint8_t m1[SC_SASL_TOKEN_MAX], m2[SC_SASL_TOKEN_MAX], m3[SC_SASL_TOKEN_MAX],
    m4[SC_SASL_TOKEN_MAX], m5[SC_SASL_TOKEN_MAX];

/* ---- SCRAM at the mechanism level: our client against our server ----
 * m1 client-first, m2 server-first, m3 client-final, m4 server-final, as
 * far as the exchange gets; the lengths and the last results of each side. */
struct scram_run {
    size_t cf, sf, cfin, sfin;
    int server_r, client_r;
};

static struct scram_run scram_run(const struct sc_sasl_client_config *cc, enum sc_sasl_mech m,
                                  const struct sc_sasl_server_config *sc)
{
    struct scram_run r = {0, 0, 0, 0, -1, -1};
    bool has = false;
    FZ_CHECK(sc_sasl_client_init(&cli, cc) == 0);
    FZ_CHECK(sc_sasl_server_init(&srv, sc) == 0);
    FZ_CHECK(sc_sasl_client_start(&cli, m, m1, sizeof(m1), &r.cf, &has) == SC_SASL_CONTINUE);
    r.server_r = sc_sasl_server_start(&srv, m, m1, r.cf, true, m2, sizeof(m2), &r.sf);
    if (r.server_r != SC_SASL_CONTINUE)
        return r;
    r.client_r = sc_sasl_step(&cli, m2, r.sf, m3, sizeof(m3), &r.cfin);
    if (r.client_r != SC_SASL_CONTINUE)
        return r;
    r.server_r = sc_sasl_step(&srv, m3, r.cfin, m4, sizeof(m4), &r.sfin);
    if (r.server_r != SC_OK)
        return r;
    r.client_r = sc_sasl_step(&cli, m4, r.sfin, m5, sizeof(m5), &(size_t){0});
    return r;
}

static const char rfc5802_cf[] = RFC5802_CF;
static const char rfc5802_sf[] = RFC5802_SF;
static const char rfc5802_cfin[] = RFC5802_CFIN;
static const char rfc5802_sfin[] = RFC5802_SFIN;
static const char rfc7677_cf[] = RFC7677_CF;
static const char rfc7677_sf[] = RFC7677_SF;
static const char rfc7677_cfin[] = RFC7677_CFIN;
static const char rfc7677_sfin[] = RFC7677_SFIN;

static void scram_client_seeds(void)
{
    const char *t = "fuzz_sasl_scram_client";
    start(&seed, 0);
    two_str(&seed, rfc5802_sf, rfc5802_sfin);
    save(t, "rfc5802", &seed);
    start(&seed, FZ_SC_SHA256);
    two_str(&seed, rfc7677_sf, rfc7677_sfin);
    save(t, "rfc7677", &seed);
    start(&seed, FZ_SC_SHA256 | FZ_SC_ODDUSER);
    two_str(&seed, rfc7677_sf, rfc7677_sfin);
    save(t, "rfc7677-other-user", &seed);
    start(&seed, 0);
    two_str(&seed, rfc5802_sf, "e=invalid-proof");
    save(t, "refused", &seed);
    start(&seed, FZ_SC_SHA256);
    two_str(&seed, "r=" RFC7677_CNONCE "x,s=QSXCR+Q6sek8bf92,i=4096,x=ext", "v=AAAA,x=1");
    save(t, "extension-bad-v", &seed);
    start(&seed, 0);
    two_str(&seed, "m=must,r=" RFC5802_CNONCE "x,s=QSXCR+Q6sek8bf92,i=4096", NULL);
    save(t, "mandatory-ext", &seed);
    start(&seed, 0);
    two_str(&seed, "r=" RFC5802_CNONCE "x,s=QSXCR+Q6sek8bf92,i=4095", NULL);
    save(t, "too-few-iterations", &seed);

    /* our server's answers to each client configuration */
    static const struct {
        uint8_t mode;
        const char *name;
    } modes[] = {
        {FZ_SC_PLUS, "plus-sha1"},
        {FZ_SC_PLUS | FZ_SC_SHA256, "plus-sha256"},
        {FZ_SC_PLUS | FZ_SC_SHA256 | FZ_SC_BIND2, "plus-endpoint"},
        {FZ_SC_AUTHZ, "authzid-sha1"},
        {FZ_SC_AUTHZ | FZ_SC_PLUS | FZ_SC_SHA256, "authzid-plus"},
        {FZ_SC_BIND2 | FZ_SC_SHA256, "could-bind"},
        {FZ_SC_SMALL, "small-output"},
    };
    for (size_t i = 0; i < sizeof(modes) / sizeof(modes[0]); i++) {
        struct fz_scram_client c;
        fz_scram_client_cfg(modes[i].mode, &c);
        struct sc_sasl_server_config sc = {
            .lookup = fz_lookup,
            .binding = c.plus ? c.cfg.binding : NULL,
            .test_nonce = (modes[i].mode & FZ_SC_SHA256) ? RFC7677_SNONCE : RFC5802_SNONCE};
        struct sc_sasl_client_config cc = c.cfg;
        bool small = modes[i].mode & FZ_SC_SMALL;
        struct scram_run r = scram_run(&cc, c.mech, &sc);
        /* the small client cannot write its final message: the server's
         * messages of the full-size run serve */
        FZ_CHECK(r.client_r == SC_OK || small);
        if (small) {
            struct fz_scram_client full;
            fz_scram_client_cfg(modes[i].mode & ~FZ_SC_SMALL, &full);
            r = scram_run(&full.cfg, full.mech, &sc);
            FZ_CHECK(r.client_r == SC_OK);
        }
        start(&seed, modes[i].mode);
        two(&seed, m2, r.sf, m4, r.sfin);
        save(t, modes[i].name, &seed);
    }
}

static void scram_server_seeds(void)
{
    const char *t = "fuzz_sasl_scram_server";
    start(&seed, 0);
    two_str(&seed, rfc5802_cf, rfc5802_cfin);
    save(t, "rfc5802", &seed);
    start(&seed, FZ_SS_SHA256);
    two_str(&seed, rfc7677_cf, rfc7677_cfin);
    save(t, "rfc7677", &seed);
    start(&seed, FZ_SS_SHA256 | FZ_SS_NOINIT);
    two_str(&seed, rfc7677_cf, rfc7677_cfin);
    save(t, "rfc7677-empty-start", &seed);
    start(&seed, FZ_SS_SHA256);
    two_str(&seed, "n,,n=nobody,r=" RFC7677_CNONCE, rfc7677_cfin);
    save(t, "unknown-user", &seed);
    start(&seed, 0);
    two_str(&seed, "n,,n=bad,r=" RFC5802_CNONCE, NULL);
    save(t, "bad-verifier", &seed);
    start(&seed, 0);
    two_str(&seed, "n,,n=error,r=" RFC5802_CNONCE, NULL);
    save(t, "lookup-error", &seed);
    start(&seed, FZ_SS_SHA256 | FZ_SS_BIND);
    two_str(&seed, "y,,n=user,r=" RFC7677_CNONCE, NULL);
    save(t, "downgrade", &seed);
    start(&seed, 0);
    two_str(&seed, "n,a=us=2Cer=3D,n=us=3Der,r=" RFC5802_CNONCE ",x=ext", NULL);
    save(t, "escaped-names", &seed);
    /* client messages long enough (with extensions) to overflow the AuthMessage */
    start(&seed, 0);
    puts_str(&seed, rfc5802_cf);
    puts_str(&seed, ",x=");
    for (int i = 0; i < 2500; i++)
        put8(&seed, 'A');
    two_str(&seed, "", "c=biws,r=" RFC5802_CNONCE RFC5802_SNONCE ",x=");
    for (int i = 0; i < 2500; i++)
        put8(&seed, 'B');
    puts_str(&seed, ",p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts=");
    save(t, "long-messages", &seed);

    /* our client's messages to each server configuration */
    static const struct {
        uint8_t mode;
        const char *authzid;
        const char *name;
    } modes[] = {
        {FZ_SS_PLUS, NULL, "plus-sha1"},
        {FZ_SS_PLUS | FZ_SS_SHA256, NULL, "plus-sha256"},
        {FZ_SS_PLUS | FZ_SS_SHA256 | FZ_SS_BIND2, NULL, "plus-endpoint"},
        {FZ_SS_BIND | FZ_SS_SHA256, NULL, "bindable-plain"},
        {FZ_SS_SHA256, "admin", "authzid"},
        {FZ_SS_NOINIT | FZ_SS_PLUS, NULL, "plus-empty-start"},
    };
    for (size_t i = 0; i < sizeof(modes) / sizeof(modes[0]); i++) {
        struct fz_scram_server s;
        fz_scram_server_cfg(modes[i].mode, &s);
        struct sc_sasl_client_config cc = {
            .user = "user", .password = "pencil", .authzid = modes[i].authzid,
            .binding = s.plus ? s.cfg.binding : NULL,
            .test_nonce = (modes[i].mode & FZ_SS_SHA256) ? RFC7677_CNONCE : RFC5802_CNONCE};
        struct scram_run r = scram_run(&cc, s.mech, &s.cfg);
        FZ_CHECK(r.client_r == SC_OK);
        start(&seed, modes[i].mode);
        two(&seed, m1, r.cf, m3, r.cfin);
        save(t, modes[i].name, &seed);
    }
}

/* ---- DIGEST-MD5 at the mechanism level ---- */

static const char rfc2831_challenge[] = RFC2831_CHALLENGE;
static const char rfc2831_response[] = RFC2831_RESPONSE;
static const char rfc2831_rspauth[] = RFC2831_RSPAUTH;

/* Our client against our server, both given: m1 the challenge, m2 the
 * response, m3 the rspauth. */
struct digest_run {
    size_t ch, resp, rsp;
};

static struct digest_run digest_run(const struct sc_sasl_client_config *cc,
                                    const struct sc_sasl_server_config *sc)
{
    struct digest_run r = {0, 0, 0};
    bool has = false;
    size_t n = 0;
    FZ_CHECK(sc_sasl_client_init(&cli, cc) == 0);
    FZ_CHECK(sc_sasl_server_init(&srv, sc) == 0);
    FZ_CHECK(sc_sasl_client_start(&cli, SC_SASL_DIGEST_MD5, m5, sizeof(m5), &n, &has) ==
             SC_SASL_CONTINUE);
    FZ_CHECK(sc_sasl_server_start(&srv, SC_SASL_DIGEST_MD5, NULL, 0, false, m1, sizeof(m1),
                                  &r.ch) == SC_SASL_CONTINUE);
    FZ_CHECK(sc_sasl_step(&cli, m1, r.ch, m2, sizeof(m2), &r.resp) == SC_SASL_CONTINUE);
    FZ_CHECK(sc_sasl_step(&srv, m2, r.resp, m3, sizeof(m3), &r.rsp) == SC_OK);
    FZ_CHECK(sc_sasl_step(&cli, m3, r.rsp, m5, sizeof(m5), &n) == SC_OK);
    return r;
}

static void digest_client_seeds(void)
{
    const char *t = "fuzz_sasl_digest_client";
    start(&seed, 1);  /* qop auth accepted */
    put8(&seed, 0);
    two_str(&seed, rfc2831_challenge, rfc2831_rspauth);
    save(t, "rfc2831", &seed);
    start(&seed, 0);
    put8(&seed, 0);
    two_str(&seed,
            "realm=\"other\", realm=\"elwood.innosoft.com\",nonce=\"a\\\"b\\\\c\","
            "qop=\"auth,auth-int,auth-conf,token\",cipher=\"rc4,des,3des\",maxbuf=17,"
            "stale=true,unknown=\"x\",charset=utf-8,algorithm=md5-sess",
            "rspauth=00000000000000000000000000000000");
    save(t, "lists-and-escapes", &seed);
    start(&seed, 0);  /* RFC 2831: a challenge is less than 2048 bytes */
    put8(&seed, 0);
    puts_str(&seed, rfc2831_challenge);
    puts_str(&seed, ",padding=\"");
    for (int i = 0; i < 2000; i++)
        put8(&seed, 'p');
    puts_str(&seed, "\"");
    save(t, "long-challenge", &seed);

    static const struct {
        uint8_t mode, mode2;
        uint8_t server_mode;  /* fz_digest_server_cfg */
        const char *name;
    } modes[] = {
        {0, 0, 0, "conf-3des"},
        {FZ_DC_DES, 0, 0, "conf-des"},
        {FZ_DC_PREFDES, 0, 0, "conf-prefer-des"},
        {2, 0, 2, "int"},
        {FZ_DC_PLAIN, 0, 0, "plaintext"},
        {FZ_DC_REALM | 1, FZ_DC2_AUTHZ, 1, "realm-authzid"},
        {0, FZ_DC2_MAXBUF, 3 | 0x10, "maxbuf-min-des"},
        {0, FZ_DC2_DEFURI, 0, "default-uri"},
    };
    for (size_t i = 0; i < sizeof(modes) / sizeof(modes[0]); i++) {
        struct fz_digest_client c;
        fz_digest_client_cfg(modes[i].mode, modes[i].mode2, &c);
        struct fz_digest_server s;
        fz_digest_server_cfg(modes[i].server_mode, &s);
        s.cfg.service = c.cfg.service;  /* the client's digest-uri */
        struct digest_run r = digest_run(&c.cfg, &s.cfg);
        start(&seed, modes[i].mode);
        put8(&seed, modes[i].mode2);
        two(&seed, m1, r.ch, m3, r.rsp);
        save(t, modes[i].name, &seed);
    }
}

static void digest_server_seeds(void)
{
    const char *t = "fuzz_sasl_digest_server";
    start(&seed, 1);  /* qop auth offered */
    two_str(&seed, rfc2831_response, NULL);
    save(t, "rfc2831", &seed);
    start(&seed, 0);
    two_str(&seed, rfc2831_response, rfc2831_response);
    save(t, "rfc2831-twice", &seed);
    start(&seed, 0);
    two_str(&seed,
            "username=\"nobody\",realm=\"elwood.innosoft.com\",nonce=\"OA6MG9tEQGm2hh\","
            "nc=00000001,cnonce=\"x\",digest-uri=\"imap/h\","
            "response=0123456789abcdef0123456789abcdef,"
            "qop=auth-conf,cipher=des,maxbuf=1000,authzid=\"a\"",
            NULL);
    save(t, "unknown-user", &seed);
    start(&seed, 0);
    two_str(&seed,
            "username=\"error\",realm=\"elwood.innosoft.com\",nonce=\"OA6MG9tEQGm2hh\","
            "nc=00000001,cnonce=\"x\",digest-uri=\"imap/h\","
            "response=0123456789abcdef0123456789abcdef",
            NULL);
    save(t, "lookup-error", &seed);
    start(&seed, 0);  /* a whole token's worth */
    puts_str(&seed, rfc2831_response);
    puts_str(&seed, ",padding=");
    while (seed.n < 1 + SC_SASL_TOKEN_MAX)
        put8(&seed, 'p');
    save(t, "long-response", &seed);

    static const struct {
        uint8_t mode;
        unsigned qop, ciphers;
        const char *user, *password;
        const char *name;
    } modes[] = {
        {0, 0, 0, "chris", "secret", "conf-3des"},
        {0x10 | 3, 0, 0, "chris", "secret", "conf-des"},
        {2, 0, 0, "user", "pencil", "int"},
        {FZ_DS_PLAIN, SC_SASL_QOP_CONF, SC_SASL_CIPHER_DES, "chris", "secret", "plaintext-des"},
        {FZ_DS_SMALL | 1, 0, 0, "chris", "secret", "small-output"},
        {FZ_DS_DEFAULTS, SC_SASL_QOP_INT, 0, "chris", "secret", "defaults"},
    };
    for (size_t i = 0; i < sizeof(modes) / sizeof(modes[0]); i++) {
        struct fz_digest_server s;
        fz_digest_server_cfg(modes[i].mode, &s);
        struct sc_sasl_client_config cc = {
            .user = modes[i].user, .password = modes[i].password, .service = s.cfg.service,
            .host = RFC2831_REALM, .qop = modes[i].qop, .ciphers = modes[i].ciphers,
            .test_nonce = RFC2831_CNONCE};
        struct sc_sasl_server_config sc = s.cfg;
        if (modes[i].mode & FZ_DS_DEFAULTS)
            sc.realm = RFC2831_REALM;  /* so the run completes; the target's realm is "sechan" */
        struct digest_run r = digest_run(&cc, &sc);
        start(&seed, modes[i].mode);
        two(&seed, m2, r.resp, NULL, 0);
        save(t, modes[i].name, &seed);
    }
}

/* ---- the framing: whole exchanges, one direction recorded ---- */

struct tap {
    int dir;
    struct seed *s;
};

static void tap_fn(void *arg, int dir, const uint8_t *p, size_t n)
{
    struct tap *t = arg;
    if (dir == t->dir)
        put(t->s, p, n);
}

/* The server's last frame in s, OUTCOME success with data, becomes that
 * data in a CHALLENGE, then OUTCOME success without data (the client
 * answers the challenge with an empty RESPONSE): how RFC 4422 servers that
 * cannot send data with success end. */
static void data_in_challenge(struct seed *s)
{
    size_t off = 1, last = 0;
    while (off + 3 <= s->n) {
        last = off;
        off += 3 + ((size_t)s->b[off + 1] << 8 | s->b[off + 2]);
    }
    FZ_CHECK(off == s->n && s->b[last] == 5 && s->b[last + 3] == 0);
    size_t len = ((size_t)s->b[last + 1] << 8 | s->b[last + 2]) - 1;
    memmove(s->b + last + 3, s->b + last + 4, len);
    s->b[last] = 3;
    s->b[last + 1] = (uint8_t)(len >> 8);
    s->b[last + 2] = (uint8_t)len;
    s->n = last + 3 + len;
    static const uint8_t ok[] = {5, 0, 1, 0};
    put(s, ok, sizeof(ok));
}

static const char *mech_file(enum sc_sasl_mech m)
{
    static const char *const names[SC_SASL_MECH_COUNT] = {
        "scram-sha-256-plus", "scram-sha-1-plus", "scram-sha-256", "scram-sha-1", "digest-md5"};
    return names[m];
}

static void frames_seeds(void)
{
    const char *t = "fuzz_sasl_frames";
    static const uint8_t modes[] = {0, FZ_FR_BIND, FZ_FR_PLAIN};
    char name[96];
    for (size_t i = 0; i < sizeof(modes) / sizeof(modes[0]); i++) {
        for (int m = 0; m < SC_SASL_MECH_COUNT; m++) {
            /* the client under test: our server offers only m */
            struct sc_sasl_client_config cc;
            struct sc_sasl_server_config sc;
            fz_frames_client_cfg(modes[i], &cc);
            fz_frames_server_cfg(modes[i], &sc);
            enum sc_sasl_mech only = (enum sc_sasl_mech)m;
            bool plus = m == SC_SASL_SCRAM_SHA_256_PLUS || m == SC_SASL_SCRAM_SHA_1_PLUS;
            if ((modes[i] & FZ_FR_PLAIN) ? m != SC_SASL_DIGEST_MD5
                                         : plus != ((modes[i] & FZ_FR_BIND) != 0))
                continue;
            sc.mechs = &only;
            sc.mech_count = 1;
            struct tap tp = {1, &seed};
            start(&seed, modes[i]);
            FZ_CHECK(sc_sasl_client_init(&cli, &cc) == 0);
            FZ_CHECK(sc_sasl_server_init(&srv, &sc) == 0);
            FZ_CHECK(fz_exchange(&cli, &srv, tap_fn, &tp) == 0);
            snprintf(name, sizeof(name), "client-%s%s", mech_file(only),
                     (modes[i] & FZ_FR_PLAIN) ? "-plaintext" : "");
            save(t, name, &seed);
            if (modes[i] == 0 && (m == SC_SASL_SCRAM_SHA_256 || m == SC_SASL_DIGEST_MD5)) {
                seed.b[0] = (uint8_t)(modes[i] | 7u << 3);  /* sliced */
                snprintf(name, sizeof(name), "client-%s-sliced", mech_file(only));
                save(t, name, &seed);
                seed.b[0] = modes[i];
                data_in_challenge(&seed);
                snprintf(name, sizeof(name), "client-%s-data-in-challenge", mech_file(only));
                save(t, name, &seed);
            }

            /* the server under test: our client asks for m */
            fz_frames_client_cfg(modes[i], &cc);
            fz_frames_server_cfg(modes[i], &sc);
            cc.mechs = &only;
            cc.mech_count = 1;
            tp.dir = 0;
            start(&seed, (uint8_t)(modes[i] | FZ_FR_SERVER));
            FZ_CHECK(sc_sasl_client_init(&cli, &cc) == 0);
            FZ_CHECK(sc_sasl_server_init(&srv, &sc) == 0);
            FZ_CHECK(fz_exchange(&cli, &srv, tap_fn, &tp) == 0);
            snprintf(name, sizeof(name), "server-%s%s", mech_file(only),
                     (modes[i] & FZ_FR_PLAIN) ? "-plaintext" : "");
            save(t, name, &seed);
            if (modes[i] == 0 && (m == SC_SASL_SCRAM_SHA_1 || m == SC_SASL_DIGEST_MD5)) {
                seed.b[0] = (uint8_t)(modes[i] | FZ_FR_SERVER | 11u << 3);
                snprintf(name, sizeof(name), "server-%s-sliced", mech_file(only));
                save(t, name, &seed);
            }
        }
    }
    /* refusals, by hand: MECHS, then a failure OUTCOME; a client's ABORT */
    static const uint8_t refused[] = {0, 1, 0, 13, 'S', 'C', 'R', 'A', 'M', '-', 'S', 'H', 'A',
                                      '-', '2', '5', '6', 5, 0, 7, 1, 'n', 'o', ' ', 'w', 'a',
                                      'y'};
    seed.n = 0;
    put(&seed, refused, sizeof(refused));
    save(t, "client-refused", &seed);
    /* success claimed with the server-first-message as its data */
    seed.n = 0;
    put8(&seed, 0);
    static const uint8_t mechs_sha1[] = {1, 0, 11, 'S', 'C', 'R', 'A', 'M', '-', 'S', 'H', 'A',
                                         '-', '1'};
    put(&seed, mechs_sha1, sizeof(mechs_sha1));
    uint8_t hdr[4] = {5, 0, (uint8_t)(sizeof(rfc5802_sf)), 0};
    put(&seed, hdr, sizeof(hdr));
    put(&seed, rfc5802_sf, sizeof(rfc5802_sf) - 1);
    save(t, "client-early-success", &seed);
    static const uint8_t aborted[] = {FZ_FR_SERVER, 2, 0, 12, 10, 'D', 'I', 'G', 'E', 'S', 'T',
                                      '-', 'M', 'D', '5', 0, 6, 0, 0};
    seed.n = 0;
    put(&seed, aborted, sizeof(aborted));
    save(t, "server-aborted", &seed);
}

/* ---- the security layer: frames the honest peer seals ---- */

static struct sc_sasl snap_cli, snap_srv;
static struct sc_sasl_layer sealer;
static uint8_t lrx[SC_SASL_MAXBUF_DEFAULT + 64], ltx[SC_SASL_MAXBUF_DEFAULT + 64];
static uint8_t ring_ab[64], ring_ba[64];
static struct sc_pipe dummy;

static void layer_seeds(void)
{
    const char *t = "fuzz_sasl_layer";
    static const char *const files[FZ_LAYER_VARIANTS] = {"int", "des", "3des", "3des-maxbuf100"};
    static uint8_t msg[2000], frame[4096];
    for (size_t i = 0; i < sizeof(msg); i++)
        msg[i] = (uint8_t)(i * 7 + 1);
    FZ_CHECK(sc_pipe_init(&dummy, ring_ab, sizeof(ring_ab), ring_ba, sizeof(ring_ba)) == 0);
    char name[96];
    for (int v = 0; v < FZ_LAYER_VARIANTS; v++) {
        for (int server_opens = 0; server_opens < 2; server_opens++) {
            fz_layer_exchange(v, &snap_cli, &snap_srv);
            struct sc_sasl *sealing = server_opens ? &snap_cli : &snap_srv;
            FZ_CHECK(sc_sasl_layer_init(&sealer, &dummy.a.base, sealing, lrx, sizeof(lrx), ltx,
                                        sizeof(ltx)) == 0);
            uint8_t mode = (uint8_t)(v | (server_opens ? 4 : 0));
            start(&seed, mode);
            /* "hello", one byte, 60 bytes, and 1000 bytes where maxbuf allows */
            static const size_t lens[] = {5, 1, 60, 1000};
            for (size_t k = 0; k < sizeof(lens) / sizeof(lens[0]); k++) {
                const uint8_t *p = k == 0 ? (const uint8_t *)"hello" : msg;
                size_t n = 0;
                if (sc_sasl_layer_seal(&sealer, p, lens[k], frame, sizeof(frame), &n) == 0)
                    put(&seed, frame, n);
            }
            snprintf(name, sizeof(name), "%s-%s-opens", files[v],
                     server_opens ? "server" : "client");
            save(t, name, &seed);
            seed.b[0] = (uint8_t)(mode | 5u << 3);
            snprintf(name, sizeof(name), "%s-%s-opens-sliced", files[v],
                     server_opens ? "server" : "client");
            save(t, name, &seed);
            sc_close(&sealer.base);
        }
    }
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: gen_sasl_seeds DIR\n");
        return 2;
    }
    outdir = argv[1];
    if (mkdir(outdir, 0755) != 0 && errno != EEXIST) {
        perror(outdir);
        return 1;
    }
    scram_client_seeds();
    scram_server_seeds();
    digest_client_seeds();
    digest_server_seeds();
    frames_seeds();
    layer_seeds();
    return 0;
}
