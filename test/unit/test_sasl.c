/* sasl-lite: known answers from RFC 5802 section 5, RFC 7677 section 3 and
 * RFC 2831 section 4; our client against our server through the framing
 * engine; the security layer over a pipe pair; and every refusal with its
 * own error. Interop with Cyrus SASL and GNU SASL is test_interop_sasl. */
#define _POSIX_C_SOURCE 200809L
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "../util/conform.h"
#include "../util/sasl_rfc.h"
#include "sechan/pipe.h"
#include "sechan/sasl.h"

static struct sc_sasl cli_ctx, srv_ctx;

/* ---- the user table behind the server's lookup ---- */

struct user_row {
    const char *user;
    const char *password;
    const char *realm;
    const uint8_t *salt;  /* raw bytes for SCRAM */
    size_t salt_len;
};

static const struct user_row users[] = {
    {"user", "pencil", RFC2831_REALM, rfc5802_salt, sizeof(rfc5802_salt)},
    {"chris", "secret", RFC2831_REALM, (const uint8_t *)"0123456789abcdef", 16},
    {"alice", "wonder land", "sechan", (const uint8_t *)"salt-of-alice", 13},
};

static int lookup(void *arg, const char *user, const char *realm, struct sc_sasl_user_secret *out)
{
    (void)arg;
    for (size_t i = 0; i < sizeof(users) / sizeof(users[0]); i++) {
        const struct user_row *u = &users[i];
        if (strcmp(u->user, user) != 0)
            continue;
        memset(out, 0, sizeof(*out));
        if (sc_sasl_scram_secret_make(&out->sha1, false, u->password, u->salt,
                                      u->salt_len, 4096) != 0 ||
            sc_sasl_scram_secret_make(&out->sha256, true, u->password,
                                      u->salt, u->salt_len, 4096) != 0)
            return SC_ERR_INTERNAL;
        out->has_sha1 = out->has_sha256 = true;
        if (realm[0] != '\0' && strcmp(realm, u->realm) == 0) {
            assert_int_equal(sc_sasl_digest_secret_make(out->digest_ha1, u->user, realm,
                                                        u->password), 0);
            out->has_digest = true;
        }
        return 0;
    }
    return SC_ERR_NOT_FOUND;
}

/* ---- known answers ---- */

/* The client, given the RFC's nonce and server messages, writes the RFC's. */
static void scram_kat_client(bool sha256, const char *cnonce, const char *client_first,
                             const char *server_first, const char *client_final,
                             const char *server_final)
{
    enum sc_sasl_mech m = sha256 ? SC_SASL_SCRAM_SHA_256 : SC_SASL_SCRAM_SHA_1;
    struct sc_sasl_client_config cc = {.user = "user", .password = "pencil",
                                       .test_nonce = cnonce};
    uint8_t out[512];
    size_t n = 0;
    bool has = false;
    assert_int_equal(sc_sasl_client_init(&cli_ctx, &cc), 0);
    assert_int_equal(sc_sasl_client_start(&cli_ctx, m, out, sizeof(out), &n, &has),
                     SC_SASL_CONTINUE);
    assert_true(has);
    assert_int_equal(n, strlen(client_first));
    assert_memory_equal(out, client_first, n);

    assert_int_equal(sc_sasl_step(&cli_ctx, (const uint8_t *)server_first, strlen(server_first),
                                  out, sizeof(out), &n),
                     SC_SASL_CONTINUE);
    assert_int_equal(n, strlen(client_final));
    assert_memory_equal(out, client_final, n);
    assert_int_equal(sc_sasl_step(&cli_ctx, (const uint8_t *)server_final,
                                  strlen(server_final), out, sizeof(out), &n),
                     SC_OK);

}

static void test_kat_rfc5802_scram_sha1(void **state)
{
    (void)state;
    scram_kat_client(false, RFC5802_CNONCE, RFC5802_CF, RFC5802_SF, RFC5802_CFIN, RFC5802_SFIN);

    /* The server, given the RFC's client messages, answers with the RFC's
     * (users[0] holds the RFC's salt, QSXCR+Q6sek8bf92). */
    struct sc_sasl_server_config sc = {.lookup = lookup, .test_nonce = RFC5802_SNONCE};
    assert_int_equal(sc_sasl_server_init(&srv_ctx, &sc), 0);
    uint8_t out[512];
    size_t n = 0;
    const char *cf = RFC5802_CF;
    const char *cfin = RFC5802_CFIN;
    assert_int_equal(sc_sasl_server_start(&srv_ctx, SC_SASL_SCRAM_SHA_1, (const uint8_t *)cf,
                                          strlen(cf), true, out, sizeof(out), &n),
                     SC_SASL_CONTINUE);
    const char *sf = RFC5802_SF;
    assert_int_equal(n, strlen(sf));
    assert_memory_equal(out, sf, n);
    assert_int_equal(sc_sasl_step(&srv_ctx, (const uint8_t *)cfin, strlen(cfin), out,
                                  sizeof(out), &n),
                     SC_OK);
    assert_int_equal(n, strlen(RFC5802_SFIN));
    assert_memory_equal(out, RFC5802_SFIN, n);
    struct sc_sasl_info info;
    assert_int_equal(sc_sasl_info(&srv_ctx, &info), 0);
    assert_string_equal(info.user, "user");
}

/* RFC 7677's salt (W22ZaJ0SNY7soEsUEjb6gQ==) differs from RFC 5802's, so
 * its server side runs on a lookup of its own. */
static int lookup_7677(void *arg, const char *user, const char *realm,
                       struct sc_sasl_user_secret *out)
{
    (void)arg;
    (void)realm;
    if (strcmp(user, "user") != 0)
        return SC_ERR_NOT_FOUND;
    memset(out, 0, sizeof(*out));
    out->has_sha256 = true;
    return sc_sasl_scram_secret_make(&out->sha256, true, "pencil", rfc7677_salt,
                                     sizeof(rfc7677_salt), 4096);
}

static void test_kat_rfc7677_scram_sha256(void **state)
{
    (void)state;
    const char *cf = RFC7677_CF, *sf = RFC7677_SF, *cfin = RFC7677_CFIN, *sfin = RFC7677_SFIN;
    scram_kat_client(true, RFC7677_CNONCE, cf, sf, cfin, sfin);

    struct sc_sasl_server_config sc = {.lookup = lookup_7677,
                                       .test_nonce = RFC7677_SNONCE};
    uint8_t out[512];
    size_t n = 0;
    assert_int_equal(sc_sasl_server_init(&srv_ctx, &sc), 0);
    assert_int_equal(sc_sasl_server_start(&srv_ctx, SC_SASL_SCRAM_SHA_256, (const uint8_t *)cf,
                                          strlen(cf), true, out, sizeof(out), &n),
                     SC_SASL_CONTINUE);
    assert_int_equal(n, strlen(sf));
    assert_memory_equal(out, sf, n);
    assert_int_equal(sc_sasl_step(&srv_ctx, (const uint8_t *)cfin, strlen(cfin), out,
                                  sizeof(out), &n),
                     SC_OK);
    assert_int_equal(n, strlen(sfin));
    assert_memory_equal(out, sfin, n);
}

static const char rfc2831_challenge[] = RFC2831_CHALLENGE;
static const char rfc2831_response[] = RFC2831_RESPONSE;

static void test_kat_rfc2831_client(void **state)
{
    (void)state;
    struct sc_sasl_client_config cc = {.user = "chris", .password = "secret",
                                       .service = "imap", .host = "elwood.innosoft.com",
                                       .test_nonce = RFC2831_CNONCE};
    uint8_t out[1024];
    size_t n = 0;
    bool has = true;
    assert_int_equal(sc_sasl_client_init(&cli_ctx, &cc), 0);
    assert_int_equal(sc_sasl_client_start(&cli_ctx, SC_SASL_DIGEST_MD5, out, sizeof(out), &n,
                                          &has),
                     SC_SASL_CONTINUE);
    assert_false(has);
    assert_int_equal(sc_sasl_step(&cli_ctx, (const uint8_t *)rfc2831_challenge,
                                  strlen(rfc2831_challenge), out, sizeof(out), &n),
                     SC_SASL_CONTINUE);
    out[n] = '\0';
    /* Same directives as the RFC's, in our order. */
    assert_non_null(strstr((char *)out, "response=d388dad90d4bbd760a152321f2143af7"));
    assert_non_null(strstr((char *)out, "cnonce=\"" RFC2831_CNONCE "\""));
    assert_non_null(strstr((char *)out, "digest-uri=\"imap/elwood.innosoft.com\""));
    const char *rsp = RFC2831_RSPAUTH;
    assert_int_equal(sc_sasl_step(&cli_ctx, (const uint8_t *)rsp, strlen(rsp), out, sizeof(out),
                                  &n),
                     SC_OK);
    assert_int_equal(n, 0);
    assert_false(sc_sasl_has_layer(&cli_ctx));
}

static void test_kat_rfc2831_server(void **state)
{
    (void)state;
    struct sc_sasl_server_config sc = {.lookup = lookup, .service = "imap",
                                       .realm = "elwood.innosoft.com",
                                       .test_nonce = RFC2831_NONCE};
    uint8_t out[1024];
    size_t n = 0;
    assert_int_equal(sc_sasl_server_init(&srv_ctx, &sc), 0);
    assert_int_equal(sc_sasl_server_start(&srv_ctx, SC_SASL_DIGEST_MD5, NULL, 0, false, out,
                                          sizeof(out), &n),
                     SC_SASL_CONTINUE);
    out[n] = '\0';
    assert_non_null(strstr((char *)out, "nonce=\"" RFC2831_NONCE "\""));
    assert_int_equal(sc_sasl_step(&srv_ctx, (const uint8_t *)rfc2831_response,
                                  strlen(rfc2831_response), out, sizeof(out), &n),
                     SC_OK);
    assert_int_equal(n, 40);
    assert_memory_equal(out, "rspauth=ea40f60335c427b5527b84dbabcdfffd", 40);

    /* The same response again, to a fresh server: its nonce is not ours. */
    assert_int_equal(sc_sasl_server_init(&srv_ctx, &(struct sc_sasl_server_config){
                                                       .lookup = lookup, .service = "imap",
                                                       .realm = "elwood.innosoft.com"}),
                     0);
    assert_int_equal(sc_sasl_server_start(&srv_ctx, SC_SASL_DIGEST_MD5, NULL, 0, false, out,
                                          sizeof(out), &n),
                     SC_SASL_CONTINUE);
    assert_int_equal(sc_sasl_step(&srv_ctx, (const uint8_t *)rfc2831_response,
                                  strlen(rfc2831_response), out, sizeof(out), &n),
                     SC_ERR_SASL_REPLAY);
}

/* ---- our client against our server through the framing ---- */

struct outcome {
    int client;
    int server;
};

/* Shuttle bytes between the two engines, a few at a time, until both end. */
static struct outcome exchange(const struct sc_sasl_client_config *cc,
                               const struct sc_sasl_server_config *sc, size_t chunk)
{
    struct outcome o = {sc_sasl_client_init(&cli_ctx, cc), sc_sasl_server_init(&srv_ctx, sc)};
    if (o.client != 0 || o.server != 0)
        return o;
    for (int round = 0; round < 100000; round++) {
        bool moved = false;
        struct sc_sasl *from[2] = {&cli_ctx, &srv_ctx};
        for (int d = 0; d < 2; d++) {
            struct sc_sasl *a = from[d], *b = from[1 - d];
            size_t len = 0, room = 0;
            const uint8_t *src = sc_sasl_sendbuf(a, &len);
            uint8_t *dst = sc_sasl_recvbuf(b, &room);
            if (len == 0)
                continue;
            if (dst == NULL) {
                /* the peer no longer reads: drop what is left */
                sc_sasl_sendack(a, len);
                moved = true;
                continue;
            }
            size_t n = len < room ? len : room;
            n = n < chunk ? n : chunk;
            memcpy(dst, src, n);
            sc_sasl_sendack(a, n);
            sc_sasl_recvack(b, n);
            moved = true;
        }
        if (!moved)
            break;
    }
    unsigned cs = sc_sasl_state(&cli_ctx), ss = sc_sasl_state(&srv_ctx);
    o.client = (cs & SC_SASL_DONE) ? 0 : (cs & SC_SASL_FAILED) ? sc_sasl_error(&cli_ctx) : 99;
    o.server = (ss & SC_SASL_DONE) ? 0 : (ss & SC_SASL_FAILED) ? sc_sasl_error(&srv_ctx) : 99;
    return o;
}

static void test_framing_each_mechanism(void **state)
{
    (void)state;
    static const struct sc_sasl_binding bind = {.type = SC_SASL_CB_TLS_EXPORTER, .len = 32,
                                                .data = {1, 2, 3, 4, 5}};
    for (int m = 0; m < SC_SASL_MECH_COUNT; m++) {
        enum sc_sasl_mech only = (enum sc_sasl_mech)m;
        bool plus = m == SC_SASL_SCRAM_SHA_256_PLUS || m == SC_SASL_SCRAM_SHA_1_PLUS;
        struct sc_sasl_client_config cc = {.user = "alice", .password = "wonder land",
                                           .mechs = &only, .mech_count = 1,
                                           .binding = plus ? &bind : NULL};
        struct sc_sasl_server_config sc = {.lookup = lookup, .binding = plus ? &bind : NULL};
        struct outcome o = exchange(&cc, &sc, (size_t)m + 1);
        print_message("# %s: client %d server %d (%s)\n", sc_sasl_mech_name(only), o.client,
                      o.server, sc_sasl_errmsg(&cli_ctx));
        assert_int_equal(o.client, 0);
        assert_int_equal(o.server, 0);
        struct sc_sasl_info ci, si;
        assert_int_equal(sc_sasl_info(&cli_ctx, &ci), 0);
        assert_int_equal(sc_sasl_info(&srv_ctx, &si), 0);
        assert_int_equal(ci.mech, only);
        assert_int_equal(si.mech, only);
        assert_string_equal(si.user, "alice");
        assert_int_equal(si.channel_bound, plus);
        if (only == SC_SASL_DIGEST_MD5) {
            /* the strongest both allow: auth-conf with 3des */
            assert_int_equal(ci.qop, SC_SASL_QOP_CONF);
            assert_int_equal(si.cipher, SC_SASL_CIPHER_3DES);
            assert_true(sc_sasl_has_layer(&srv_ctx));
        }
    }
}

static void test_framing_default_choice(void **state)
{
    (void)state;
    /* No binding, over TLS: SCRAM-SHA-256 is the best both have. */
    struct sc_sasl_client_config cc = {.user = "alice", .password = "wonder land"};
    struct sc_sasl_server_config sc = {.lookup = lookup};
    struct outcome o = exchange(&cc, &sc, 4096);
    assert_int_equal(o.client, 0);
    struct sc_sasl_info ci;
    assert_int_equal(sc_sasl_info(&cli_ctx, &ci), 0);
    assert_int_equal(ci.mech, SC_SASL_SCRAM_SHA_256);
    /* Plaintext on both sides: only DIGEST-MD5 with a layer. */
    cc.plaintext = sc.plaintext = true;
    o = exchange(&cc, &sc, 4096);
    assert_int_equal(o.client, 0);
    assert_int_equal(sc_sasl_info(&cli_ctx, &ci), 0);
    assert_int_equal(ci.mech, SC_SASL_DIGEST_MD5);
    assert_int_equal(ci.qop, SC_SASL_QOP_CONF);
}

static void test_wrong_password_and_unknown_user(void **state)
{
    (void)state;
    for (int m = SC_SASL_SCRAM_SHA_256; m < SC_SASL_MECH_COUNT; m++) {
        enum sc_sasl_mech only = (enum sc_sasl_mech)m;
        struct sc_sasl_client_config cc = {.user = "alice", .password = "wonder lamp",
                                           .mechs = &only, .mech_count = 1};
        struct sc_sasl_server_config sc = {.lookup = lookup};
        struct outcome o = exchange(&cc, &sc, 4096);
        assert_int_equal(o.client, SC_ERR_SASL_AUTH);
        assert_int_equal(o.server, SC_ERR_SASL_AUTH);
        cc.user = "mallory";
        o = exchange(&cc, &sc, 4096);
        assert_int_equal(o.client, SC_ERR_SASL_AUTH);
        assert_int_equal(o.server, SC_ERR_SASL_USER);
    }
}

static void test_policy_refuses_weak_offer(void **state)
{
    (void)state;
    /* The server offers only DIGEST-MD5 without a layer; a plaintext
     * client refuses rather than take it. */
    struct sc_sasl_client_config cc = {.user = "alice", .password = "wonder land",
                                       .plaintext = true};
    struct sc_sasl_server_config sc = {.lookup = lookup, .plaintext = true,
                                       .allow_no_layer = true, .qop = SC_SASL_QOP_AUTH};
    struct outcome o = exchange(&cc, &sc, 4096);
    assert_int_equal(o.client, SC_ERR_SASL_POLICY);
    /* Only SCRAM offered (operator turned the rule off on the server). */
    static const enum sc_sasl_mech scram_only[] = {SC_SASL_SCRAM_SHA_256};
    sc.qop = 0;
    sc.mechs = scram_only;
    sc.mech_count = 1;
    o = exchange(&cc, &sc, 4096);
    assert_int_equal(o.client, SC_ERR_SASL_POLICY);
    assert_non_null(strstr(sc_sasl_errmsg(&cli_ctx), "policy refuses"));
    /* A server on plaintext with the rule on has nothing to offer but DIGEST-MD5. */
    struct sc_sasl_server_config strict = {.lookup = lookup, .plaintext = true,
                                           .mechs = scram_only, .mech_count = 1};
    assert_int_equal(sc_sasl_server_init(&srv_ctx, &strict), SC_ERR_SASL_POLICY);
}

static void test_channel_binding_checks(void **state)
{
    (void)state;
    static const struct sc_sasl_binding ours = {.type = SC_SASL_CB_TLS_EXPORTER, .len = 32,
                                                .data = {9, 9, 9}};
    static const struct sc_sasl_binding theirs = {.type = SC_SASL_CB_TLS_EXPORTER, .len = 32,
                                                  .data = {7, 7, 7}};
    /* A man in the middle has two TLS sessions: the bindings differ. */
    struct sc_sasl_client_config cc = {.user = "alice", .password = "wonder land",
                                       .binding = &theirs};
    struct sc_sasl_server_config sc = {.lookup = lookup, .binding = &ours};
    struct outcome o = exchange(&cc, &sc, 4096);
    assert_int_equal(o.server, SC_ERR_SASL_AUTH);
    assert_non_null(strstr(sc_sasl_errmsg(&srv_ctx), "channel binding"));
    /* The -PLUS offer stripped on the way: the client says "y", the server
     * sees the downgrade. Modelled by a client that never saw a -PLUS. */
    static const enum sc_sasl_mech plain256[] = {SC_SASL_SCRAM_SHA_256};
    uint8_t out[512], srv_out[512];
    size_t n = 0, sn = 0;
    bool has = false;
    struct sc_sasl_client_config yc = {.user = "alice", .password = "wonder land",
                                       .binding = &ours, .mechs = plain256, .mech_count = 1};
    assert_int_equal(sc_sasl_client_init(&cli_ctx, &yc), 0);
    assert_int_equal(sc_sasl_client_start(&cli_ctx, SC_SASL_SCRAM_SHA_256, out, sizeof(out), &n,
                                          &has),
                     SC_SASL_CONTINUE);
    assert_memory_equal(out, "y,,", 3);
    assert_int_equal(sc_sasl_server_init(&srv_ctx, &sc), 0);
    assert_int_equal(sc_sasl_server_start(&srv_ctx, SC_SASL_SCRAM_SHA_256, out, n, true, srv_out,
                                          sizeof(srv_out), &sn),
                     SC_ERR_SASL_POLICY);
    assert_memory_equal(srv_out, "e=server-does-support-channel-binding", sn);
}

static void test_non_ascii_and_limits(void **state)
{
    (void)state;
    struct sc_sasl_client_config cc = {.user = "j\xc3\xbcrgen", .password = "x"};
    assert_int_equal(sc_sasl_client_init(&cli_ctx, &cc), SC_ERR_UNSUPPORTED);
    assert_non_null(strstr(sc_sasl_errmsg(&cli_ctx), "non-ASCII"));
    cc.user = "alice";
    cc.password = "p\xe4ss";
    assert_int_equal(sc_sasl_client_init(&cli_ctx, &cc), SC_ERR_UNSUPPORTED);
    struct sc_sasl_scram_secret s;
    uint8_t salt[4] = {1, 2, 3, 4};
    assert_int_equal(sc_sasl_scram_secret_make(&s, true, "x", salt, 4, 4095), SC_ERR_INVAL);
    assert_int_equal(sc_sasl_scram_secret_make(&s, true, "x", salt, 4, 4096), 0);

    /* A client refuses a server that asks for too few iterations. */
    cc.password = "pencil";
    cc.user = "user";
    cc.test_nonce = "abc";
    uint8_t out[512];
    size_t n = 0;
    bool has = false;
    assert_int_equal(sc_sasl_client_init(&cli_ctx, &cc), 0);
    assert_int_equal(sc_sasl_client_start(&cli_ctx, SC_SASL_SCRAM_SHA_1, out, sizeof(out), &n,
                                          &has),
                     SC_SASL_CONTINUE);
    const char *weak = "r=abcdef,s=QSXCR+Q6sek8bf92,i=1000";
    assert_int_equal(sc_sasl_step(&cli_ctx, (const uint8_t *)weak, strlen(weak), out,
                                  sizeof(out), &n),
                     SC_ERR_SASL_POLICY);
}

/* An unknown user gets the same made-up salt on every attempt when the
 * server has a decoy key (found by fuzz_sasl_scram_server: without it the
 * salt changed per attempt, which told unknown users apart). */
static void test_scram_decoy_is_stable(void **state)
{
    (void)state;
    static const uint8_t key[SC_SASL_DECOY_KEY_LEN] = {1, 2, 3};
    const char *cf = "n,,n=nobody,r=abcdef";
    uint8_t first[256], again[256];
    size_t n1 = 0, n2 = 0;
    struct sc_sasl_server_config sc = {.lookup = lookup, .test_nonce = "XYZ", .decoy_key = key};
    for (int i = 0; i < 2; i++) {
        assert_int_equal(sc_sasl_server_init(&srv_ctx, &sc), 0);
        assert_int_equal(sc_sasl_server_start(&srv_ctx, SC_SASL_SCRAM_SHA_256,
                                              (const uint8_t *)cf, strlen(cf), true,
                                              i == 0 ? first : again, 256, i == 0 ? &n1 : &n2),
                         SC_SASL_CONTINUE);
    }
    assert_int_equal(n1, n2);
    assert_memory_equal(first, again, n1);
    /* another name, another salt */
    const char *cf2 = "n,,n=nobody2,r=abcdef";
    assert_int_equal(sc_sasl_server_init(&srv_ctx, &sc), 0);
    assert_int_equal(sc_sasl_server_start(&srv_ctx, SC_SASL_SCRAM_SHA_256, (const uint8_t *)cf2,
                                          strlen(cf2), true, again, 256, &n2),
                     SC_SASL_CONTINUE);
    assert_true(n1 != n2 || memcmp(first, again, n1) != 0);
    /* the gs2 header's "p" must be followed by "=" */
    static const struct sc_sasl_binding bind = {.type = SC_SASL_CB_TLS_EXPORTER, .len = 32};
    struct sc_sasl_server_config pc = {.lookup = lookup, .binding = &bind};
    const char *bad = "pxtls-exporter,,n=user,r=abc";
    assert_int_equal(sc_sasl_server_init(&srv_ctx, &pc), 0);
    assert_int_equal(sc_sasl_server_start(&srv_ctx, SC_SASL_SCRAM_SHA_256_PLUS,
                                          (const uint8_t *)bad, strlen(bad), true, again, 256,
                                          &n2),
                     SC_ERR_PROTO);
}

/* A maxbuf that RFC 2831 allows but that leaves a frame no room, and an
 * auth-conf offer with only a cipher we refuse: each named in the error. */
static void test_digest_challenge_limits(void **state)
{
    (void)state;
    struct sc_sasl_client_config cc = {.user = "chris", .password = "secret",
                                       .qop = SC_SASL_QOP_CONF,
                                       .ciphers = SC_SASL_CIPHER_3DES};
    uint8_t out[1024];
    size_t n = 0;
    bool has = false;
    const char *small = "realm=\"r\",nonce=\"abc\",qop=\"auth-conf\",cipher=\"3des\","
                        "maxbuf=32,algorithm=md5-sess";
    assert_int_equal(sc_sasl_client_init(&cli_ctx, &cc), 0);
    sc_sasl_client_start(&cli_ctx, SC_SASL_DIGEST_MD5, out, sizeof(out), &n, &has);
    assert_int_equal(sc_sasl_step(&cli_ctx, (const uint8_t *)small, strlen(small), out,
                                  sizeof(out), &n),
                     SC_ERR_SASL_POLICY);
    assert_non_null(strstr(sc_sasl_errmsg(&cli_ctx), "maxbuf"));
    const char *des_only = "realm=\"r\",nonce=\"abc\",qop=\"auth-conf\",cipher=\"des,rc4\","
                           "algorithm=md5-sess";
    assert_int_equal(sc_sasl_client_init(&cli_ctx, &cc), 0);
    sc_sasl_client_start(&cli_ctx, SC_SASL_DIGEST_MD5, out, sizeof(out), &n, &has);
    assert_int_equal(sc_sasl_step(&cli_ctx, (const uint8_t *)des_only, strlen(des_only), out,
                                  sizeof(out), &n),
                     SC_ERR_SASL_POLICY);
    print_message("# %s\n", sc_sasl_errmsg(&cli_ctx));
    assert_non_null(strstr(sc_sasl_errmsg(&cli_ctx), "ciphers our policy refuses"));
    const char *bad = "realm=\"r\",nonce=\"abc\",maxbuf=16,algorithm=md5-sess";
    assert_int_equal(sc_sasl_client_init(&cli_ctx, &cc), 0);
    sc_sasl_client_start(&cli_ctx, SC_SASL_DIGEST_MD5, out, sizeof(out), &n, &has);
    assert_int_equal(sc_sasl_step(&cli_ctx, (const uint8_t *)bad, strlen(bad), out, sizeof(out),
                                  &n),
                     SC_ERR_PROTO);
}

/* Feed a server raw frame bytes; return the server's error. */
static int server_fed(const uint8_t *bytes, size_t len)
{
    struct sc_sasl_server_config sc = {.lookup = lookup};
    assert_int_equal(sc_sasl_server_init(&srv_ctx, &sc), 0);
    size_t l = 0;
    sc_sasl_sendbuf(&srv_ctx, &l);
    sc_sasl_sendack(&srv_ctx, l);  /* MECHS went out */
    size_t off = 0;
    while (off < len) {
        size_t room = 0;
        uint8_t *dst = sc_sasl_recvbuf(&srv_ctx, &room);
        if (dst == NULL || room == 0)
            break;
        size_t n = len - off < room ? len - off : room;
        memcpy(dst, bytes + off, n);
        off += n;
        if (sc_sasl_recvack(&srv_ctx, n) != 0)
            break;
    }
    return sc_sasl_error(&srv_ctx);
}

static void test_frames_hostile(void **state)
{
    (void)state;
    /* oversized: a RESPONSE-sized START header of 65535 bytes */
    static const uint8_t big[] = {0x02, 0xff, 0xff};
    assert_int_equal(server_fed(big, sizeof(big)), SC_ERR_TOO_LONG);
    static const uint8_t wrong_type[] = {0x03, 0x00, 0x00};
    assert_int_equal(server_fed(wrong_type, sizeof(wrong_type)), SC_ERR_PROTO);
    static const uint8_t bad_name[] = {0x02, 0x00, 0x03, 0x15, 'A', 0};
    assert_int_equal(server_fed(bad_name, sizeof(bad_name)), SC_ERR_PROTO);
    static const uint8_t unknown_mech[] = {0x02, 0x00, 0x07, 0x05, 'P', 'L', 'A', 'I', 'N', 0};
    assert_int_equal(server_fed(unknown_mech, sizeof(unknown_mech)), SC_ERR_SASL_POLICY);
    /* a refusing server still sends its OUTCOME: failure, "..." */
    size_t l = 0;
    const uint8_t *o = sc_sasl_sendbuf(&srv_ctx, &l);
    assert_true(l > 4);
    assert_int_equal(o[0], 0x05);
    assert_int_equal(o[3], 1);
    sc_sasl_sendack(&srv_ctx, l);
    assert_true(sc_sasl_state(&srv_ctx) & SC_SASL_FAILED);

    /* a client given an oversized challenge */
    struct sc_sasl_client_config cc = {.user = "alice", .password = "wonder land"};
    assert_int_equal(sc_sasl_client_init(&cli_ctx, &cc), 0);
    size_t room = 0;
    uint8_t *dst = sc_sasl_recvbuf(&cli_ctx, &room);
    assert_int_equal(room, 3);
    memcpy(dst, "\x01\x01\x01", 3);  /* MECHS of 257 bytes */
    assert_int_equal(sc_sasl_recvack(&cli_ctx, 3), SC_ERR_TOO_LONG);
}

/* ---- the security layer ---- */

static uint8_t ring_ab[1 << 16], ring_ba[1 << 16];
static uint8_t c_rx[70000], c_tx[70000], s_rx[70000], s_tx[70000];

static void layer_pair(unsigned qop, unsigned cipher, uint32_t maxbuf, struct sc_pipe *p,
                       struct sc_sasl_layer *cl, struct sc_sasl_layer *sl)
{
    static const enum sc_sasl_mech dm[] = {SC_SASL_DIGEST_MD5};
    struct sc_sasl_client_config cc = {.user = "alice", .password = "wonder land",
                                       .mechs = dm, .mech_count = 1, .qop = qop,
                                       .ciphers = cipher, .maxbuf = maxbuf};
    struct sc_sasl_server_config sc = {.lookup = lookup, .maxbuf = maxbuf};
    struct outcome o = exchange(&cc, &sc, 4096);
    assert_int_equal(o.client, 0);
    assert_int_equal(o.server, 0);
    assert_int_equal(sc_pipe_init(p, ring_ab, sizeof(ring_ab), ring_ba, sizeof(ring_ba)), 0);
    assert_int_equal(sc_sasl_layer_init(cl, &p->a.base, &cli_ctx, c_rx, sizeof(c_rx), c_tx,
                                        sizeof(c_tx)),
                     0);
    assert_int_equal(sc_sasl_layer_init(sl, &p->b.base, &srv_ctx, s_rx, sizeof(s_rx), s_tx,
                                        sizeof(s_tx)),
                     0);
}

static void test_layer_roundtrip(void **state)
{
    (void)state;
    static const struct {
        unsigned qop, cipher;
        uint32_t maxbuf;
    } cases[] = {
        {SC_SASL_QOP_INT, 0, 65536},
        {SC_SASL_QOP_CONF, SC_SASL_CIPHER_DES, 65536},
        {SC_SASL_QOP_CONF, SC_SASL_CIPHER_3DES, 65536},
        {SC_SASL_QOP_CONF, SC_SASL_CIPHER_DES, 100},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct sc_pipe p;
        struct sc_sasl_layer cl, sl;
        layer_pair(cases[i].qop, cases[i].cipher, cases[i].maxbuf, &p, &cl, &sl);
        conform_nonblocking(&cl.base, &sl.base, 1024 * 1024, 20000, NULL, NULL);
        conform_nonblocking(&sl.base, &cl.base, 256 * 1024, 7000, NULL, NULL);
        sc_close(&cl.base);
        sc_close(&sl.base);
    }
}

static void test_layer_tamper_and_replay(void **state)
{
    (void)state;
    struct sc_pipe p;
    struct sc_sasl_layer cl, sl;
    layer_pair(SC_SASL_QOP_CONF, SC_SASL_CIPHER_DES, 65536, &p, &cl, &sl);
    uint8_t f1[256], f2[256], f3[256];
    size_t n1 = 0, n2 = 0, n3 = 0;
    const uint8_t hello[] = "hello through DES";
    assert_int_equal(sc_sasl_layer_seal(&cl, hello, sizeof(hello), f1, sizeof(f1), &n1), 0);
    assert_int_equal(sc_sasl_layer_seal(&cl, hello, sizeof(hello), f2, sizeof(f2), &n2), 0);
    assert_int_equal(sc_sasl_layer_seal(&cl, hello, sizeof(hello), f3, sizeof(f3), &n3), 0);
    uint8_t *msg = NULL;
    size_t mlen = 0;
    uint8_t copy[256];
    memcpy(copy, f1, n1);
    assert_int_equal(sc_sasl_layer_open(&sl, copy, n1, &msg, &mlen), 0);
    assert_int_equal(mlen, sizeof(hello));
    assert_memory_equal(msg, hello, mlen);
    /* the same frame again: sequence number 0 where 1 is due */
    memcpy(copy, f1, n1);
    assert_int_equal(sc_sasl_layer_open(&sl, copy, n1, &msg, &mlen), SC_ERR_SASL_SEQ);
    /* sticky */
    memcpy(copy, f2, n2);
    assert_int_equal(sc_sasl_layer_open(&sl, copy, n2, &msg, &mlen), SC_ERR_SASL_SEQ);
    sc_close(&cl.base);
    sc_close(&sl.base);

    /* a flipped ciphertext bit */
    layer_pair(SC_SASL_QOP_INT, 0, 65536, &p, &cl, &sl);
    assert_int_equal(sc_sasl_layer_seal(&cl, hello, sizeof(hello), f1, sizeof(f1), &n1), 0);
    f1[6] ^= 0x20;
    assert_int_equal(sc_sasl_layer_open(&sl, f1, n1, &msg, &mlen), SC_ERR_SASL_MAC);
    sc_close(&cl.base);
    sc_close(&sl.base);

    /* through the channel: a tampered frame is a sticky read error */
    layer_pair(SC_SASL_QOP_CONF, SC_SASL_CIPHER_3DES, 65536, &p, &cl, &sl);
    assert_int_equal(sc_sasl_layer_seal(&cl, hello, sizeof(hello), f1, sizeof(f1), &n1), 0);
    f1[n1 - 8] ^= 1;  /* inside the last cipher block */
    assert_int_equal(sc_write(&p.a.base, f1, n1), (long)n1);
    uint8_t buf[64];
    assert_int_equal(sc_read(&sl.base, buf, sizeof(buf)), SC_ERR_SASL_MAC);
    assert_int_equal(sc_read(&sl.base, buf, sizeof(buf)), SC_ERR_SASL_MAC);
    sc_close(&cl.base);
    sc_close(&sl.base);

    /* a frame longer than our maxbuf is refused before its body is read */
    layer_pair(SC_SASL_QOP_INT, 0, 1000, &p, &cl, &sl);
    static const uint8_t huge[4] = {0, 0, 0x10, 0};
    assert_int_equal(sc_write(&p.a.base, huge, 4), 4);
    assert_int_equal(sc_read(&sl.base, buf, sizeof(buf)), SC_ERR_TOO_LONG);
    sc_close(&cl.base);
    sc_close(&sl.base);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_kat_rfc5802_scram_sha1),
        cmocka_unit_test(test_kat_rfc7677_scram_sha256),
        cmocka_unit_test(test_kat_rfc2831_client),
        cmocka_unit_test(test_kat_rfc2831_server),
        cmocka_unit_test(test_framing_each_mechanism),
        cmocka_unit_test(test_framing_default_choice),
        cmocka_unit_test(test_wrong_password_and_unknown_user),
        cmocka_unit_test(test_policy_refuses_weak_offer),
        cmocka_unit_test(test_channel_binding_checks),
        cmocka_unit_test(test_non_ascii_and_limits),
        cmocka_unit_test(test_frames_hostile),
        cmocka_unit_test(test_digest_challenge_limits),
        cmocka_unit_test(test_scram_decoy_is_stable),
        cmocka_unit_test(test_layer_roundtrip),
        cmocka_unit_test(test_layer_tamper_and_replay),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
