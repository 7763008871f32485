/* sasl-lite against Cyrus SASL 2.1.28 and GNU SASL 2.2.0 (the test peers
 * in test/interop/sasl-peers/, which link the real libraries) over the
 * framing of docs/sasl.md: our client against their servers, their clients
 * against our server, for SCRAM-SHA-1, SCRAM-SHA-256, DIGEST-MD5 auth and
 * auth-int (both libraries), auth-conf with des (Cyrus), and the -PLUS
 * variants over our TLS (tls-exporter with both, tls-server-end-point with
 * Cyrus). After each authentication 1 MiB goes each way through the
 * security layer and is compared. Wrong passwords fail on both sides. */
#define _POSIX_C_SOURCE 200809L
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "../util/conform.h"
#include "../util/need.h"
#include "../util/nbdpeer.h"
#include "../util/proc.h"
#include "../util/seclink.h"
#include "sechan/sasl.h"
#include "sechan/tcp.h"
#include "sechan/tls.h"

#define DATA_LEN (1024u * 1024u)
#define PASSWORD "s3cret pass"

enum peer_lib { CYRUS, GSASL };

struct icase {
    enum sc_sasl_mech mech;
    unsigned qop;     /* DIGEST-MD5 */
    bool tls;
    enum sc_sasl_cb_type cb;
};

static const char *peer_prog(enum peer_lib lib)
{
    static char path[2][256];
    snprintf(path[lib], sizeof(path[lib]), "%s/test/sasl-peer-%s", tp_bin_dir(),
             lib == CYRUS ? "cyrus" : "gsasl");
    return path[lib];
}

static const char *qop_arg(unsigned qop)
{
    return qop == SC_SASL_QOP_CONF ? "auth-conf" : qop == SC_SASL_QOP_INT ? "auth-int" : "auth";
}

static const char *cb_arg(enum sc_sasl_cb_type cb)
{
    return cb == SC_SASL_CB_TLS_SERVER_END_POINT ? "tls-server-end-point" : "tls-exporter";
}

static uint8_t data_out[DATA_LEN], data_in[DATA_LEN];

/* Everything one run needs: the peer process, our socket, TLS, SASL, layer. */
struct run {
    pid_t pid;
    char log[256];
    char path[108];
    struct sc_listener l;
    struct seclink link;
};

static struct run R;

static int lookup(void *arg, const char *user, const char *realm, struct sc_sasl_user_secret *out)
{
    (void)arg;
    if (strcmp(user, "alice") != 0)
        return SC_ERR_NOT_FOUND;
    static const uint8_t salt[] = "interop-salt";
    memset(out, 0, sizeof(*out));
    int r = sc_sasl_scram_secret_make(&out->sha1, false, PASSWORD, salt, 12, 4096);
    if (r == 0)
        r = sc_sasl_scram_secret_make(&out->sha256, true, PASSWORD, salt, 12, 4096);
    if (r == 0 && realm[0] != '\0')
        r = sc_sasl_digest_secret_make(out->digest_ha1, "alice", realm, PASSWORD);
    out->has_sha1 = out->has_sha256 = true;
    out->has_digest = realm[0] != '\0';
    return r;
}

/* Start the peer with args (NULL-terminated) and accept its connection. */
static void peer_start(enum peer_lib lib, const char *const args[])
{
    memset(&R, 0, sizeof(R));
    static unsigned seq;
    snprintf(R.path, sizeof(R.path), "%s/sasl-peer-%d-%u.sock", tp_build_dir(), (int)getpid(),
             seq);
    snprintf(R.log, sizeof(R.log), "%s/sasl-peer-%u.log", tp_build_dir(), seq++);
    unlink(R.path);
    unlink(R.log);
    assert_int_equal(sc_unix_listen(&R.l, R.path, 1), 0);
    const char *argv[48] = {peer_prog(lib), "--unix", R.path, "--timeout", "60"};
    size_t n = 5;
    for (size_t i = 0; args[i] != NULL && n < 47; i++)
        argv[n++] = args[i];
    argv[n] = NULL;
    R.pid = tp_spawn(argv, R.log);
    assert_true(R.pid > 0);
    int r = sc_listener_accept(&R.l, &R.link.sock, sc_deadline_in(15000));
    if (r != 0) {
        print_error("the peer did not connect; see %s\n", R.log);
        fail();
    }
    seclink_begin(&R.link);
}

/* Wait for the peer to exit; its exit code (after the log on failure). */
static int peer_finish(void)
{
    int64_t end = tp_now_ms() + 60000;
    while (tp_alive(R.pid) && tp_now_ms() < end)
        tp_sleep_ms(10);
    int code = tp_stop(R.pid, 2000);
    seclink_close(&R.link);
    sc_listener_close(&R.l);
    unlink(R.path);
    return code;
}

static bool log_has(const char *text)
{
    return tp_file_has(R.log, text, 0);
}

static void show_log(void)
{
    tp_print_file(R.log, "  peer: ");
}

static void our_tls(bool server)
{
    int r = seclink_tls(&R.link, np_pki("pki-ecdsa"), server, SC_TLS_1_3, sc_deadline_in(15000));
    if (r != 0) {
        print_error("TLS: %s\n", R.link.tls_on ? sc_tls_errmsg(&R.link.tls)
                                               : sc_tls_creds_errmsg(&R.link.creds));
        show_log();
    }
    assert_int_equal(r, 0);
}

/* Our end of the exchange, in role who, must end with want. True when it
 * succeeded and the data phase follows; after a refusal the peer must have
 * exited 1. */
static bool exchange_as_wanted(const char *who, int want)
{
    int r = sc_sasl_run(&R.link.sasl, R.link.ch, sc_deadline_in(30000));
    if (r != want) {
        print_error("%s: %s\n", who, sc_sasl_errmsg(&R.link.sasl));
        show_log();
    }
    assert_int_equal(r, want);
    if (want == 0) {
        assert_int_equal(seclink_layer(&R.link), 0);
        return true;
    }
    assert_int_equal(peer_finish(), 1);
    return false;
}

/* Read the peer's 1 MiB into data_in. */
static void read_data(const char *what, uint64_t deadline)
{
    size_t got = 0;
    int r = sc_read_full(R.link.ch, data_in, DATA_LEN, &got, deadline);
    if (r != 0) {
        print_error("%s: %s (%zu bytes)\n", what, sc_channel_errmsg(R.link.ch), got);
        show_log();
    }
    assert_int_equal(r, 0);
}

/* The peer exits 0 and its log says so. */
static void peer_finished_ok(const char *line)
{
    int code = peer_finish();
    if (code != 0)
        show_log();
    assert_int_equal(code, 0);
    assert_true(log_has(line));
}

static void fill_pattern(void)
{
    for (size_t i = 0; i < DATA_LEN; i++)
        data_out[i] = conform_byte(i);
}

/* The peer's command line: the other role of ours, the case's mechanism,
 * qop and TLS; a server echoes 1 MiB, a client sends it and checks the echo. */
static void peer_args(const char **args, const struct icase *c, bool peer_is_client,
                      const char *password)
{
    static char count[16], cert[300], key[300], ca[300];
    const char *pki = np_pki("pki-ecdsa");
    snprintf(count, sizeof(count), "%u", DATA_LEN);
    snprintf(cert, sizeof(cert), "%s/server-cert.pem", pki);
    snprintf(key, sizeof(key), "%s/server-key.pem", pki);
    snprintf(ca, sizeof(ca), "%s/ca-cert.pem", pki);
    size_t n = 0;
    args[n++] = "--role";
    args[n++] = peer_is_client ? "client" : "server";
    args[n++] = "--mech";
    args[n++] = sc_sasl_mech_name(c->mech);
    args[n++] = "--user";
    args[n++] = "alice";
    args[n++] = "--pass";
    args[n++] = password;
    args[n++] = "--realm";
    args[n++] = "sechan";
    args[n++] = "--qop";
    args[n++] = qop_arg(c->qop);
    args[n++] = peer_is_client ? "--send" : "--echo";
    args[n++] = count;
    if (c->qop == SC_SASL_QOP_CONF) {
        args[n++] = "--cipher";
        args[n++] = "des";
    }
    if (c->tls && peer_is_client) {
        args[n++] = "--tls-client";
        args[n++] = ca;
    } else if (c->tls) {
        args[n++] = "--tls-server";
        args[n++] = cert;
        args[n++] = key;
    }
    if (c->tls) {
        args[n++] = "--cb";
        args[n++] = cb_arg(c->cb);
    }
    args[n] = NULL;
}

/* Start the peer in the other role; for a TLS case, our end of TLS and the
 * binding it gives. True when bound. */
static bool open_link(enum peer_lib lib, const struct icase *c, bool we_serve,
                      const char *peer_password, struct sc_sasl_binding *bind)
{
    const char *args[24];
    peer_args(args, c, we_serve, peer_password);
    peer_start(lib, args);
    if (!c->tls)
        return false;
    our_tls(we_serve);
    assert_int_equal(sc_sasl_binding_from_tls(bind, &R.link.tls, c->cb), 0);
    return true;
}

/* Our client against the peer's server; the peer echoes 1 MiB. */
static void client_case(enum peer_lib lib, const struct icase *c, const char *password,
                        int want)
{
    struct sc_sasl_binding bind;
    bool bound = open_link(lib, c, false, PASSWORD, &bind);
    enum sc_sasl_mech only = c->mech;
    struct sc_sasl_client_config cc = {
        .user = "alice", .password = password, .realm = "sechan", .mechs = &only,
        .mech_count = 1, .plaintext = !c->tls, .allow_no_layer = true, .qop = c->qop,
        .ciphers = SC_SASL_CIPHER_DES, .binding = bound ? &bind : NULL};
    assert_int_equal(sc_sasl_client_init(&R.link.sasl, &cc), 0);
    if (!exchange_as_wanted("our client", want))
        return;
    struct sc_sasl_info info;
    assert_int_equal(sc_sasl_info(&R.link.sasl, &info), 0);
    assert_int_equal(info.mech, c->mech);
    if (c->mech == SC_SASL_DIGEST_MD5)
        assert_int_equal(info.qop, c->qop);
    uint64_t deadline = sc_deadline_in(60000);
    assert_int_equal(sc_write_all(R.link.ch, data_out, DATA_LEN, deadline), 0);
    read_data("reading the echo", deadline);
    assert_memory_equal(data_in, data_out, DATA_LEN);
    peer_finished_ok("sasl-peer: echoed 1048576 bytes");
    assert_true(log_has("sasl-peer: ok mech="));
}

/* The peer's client against our server; the peer sends 1 MiB and checks
 * that we echo it. */
static void server_case(enum peer_lib lib, const struct icase *c, const char *password,
                        int want)
{
    struct sc_sasl_binding bind;
    bool bound = open_link(lib, c, true, password, &bind);
    enum sc_sasl_mech only = c->mech;
    struct sc_sasl_server_config sc = {
        .lookup = lookup, .realm = "sechan", .mechs = &only, .mech_count = 1,
        .plaintext = !c->tls, .allow_no_layer = true,
        .qop = c->mech == SC_SASL_DIGEST_MD5 ? c->qop : 0, .binding = bound ? &bind : NULL};
    assert_int_equal(sc_sasl_server_init(&R.link.sasl, &sc), 0);
    if (!exchange_as_wanted("our server", want))
        return;
    struct sc_sasl_info info;
    assert_int_equal(sc_sasl_info(&R.link.sasl, &info), 0);
    assert_string_equal(info.user, "alice");
    assert_int_equal(info.channel_bound, c->tls);
    uint64_t deadline = sc_deadline_in(60000);
    read_data("reading", deadline);
    assert_int_equal(sc_write_all(R.link.ch, data_in, DATA_LEN, deadline), 0);
    peer_finished_ok("sasl-peer: sent and verified 1048576 bytes");
}

static const struct icase common_cases[] = {
    {SC_SASL_SCRAM_SHA_1, 0, false, SC_SASL_CB_NONE},
    {SC_SASL_SCRAM_SHA_256, 0, false, SC_SASL_CB_NONE},
    {SC_SASL_DIGEST_MD5, SC_SASL_QOP_AUTH, false, SC_SASL_CB_NONE},
    {SC_SASL_DIGEST_MD5, SC_SASL_QOP_INT, false, SC_SASL_CB_NONE},
    {SC_SASL_SCRAM_SHA_256_PLUS, 0, true, SC_SASL_CB_TLS_EXPORTER},
    {SC_SASL_SCRAM_SHA_1_PLUS, 0, true, SC_SASL_CB_TLS_EXPORTER},
};
static const struct icase cyrus_cases[] = {
    {SC_SASL_DIGEST_MD5, SC_SASL_QOP_CONF, false, SC_SASL_CB_NONE},
    {SC_SASL_SCRAM_SHA_256_PLUS, 0, true, SC_SASL_CB_TLS_SERVER_END_POINT},
};

static void describe(const char *who, const struct icase *c)
{
    print_message("# %s %s%s%s%s\n", who, sc_sasl_mech_name(c->mech),
                  c->mech == SC_SASL_DIGEST_MD5 ? " " : "",
                  c->mech == SC_SASL_DIGEST_MD5 ? qop_arg(c->qop) : "",
                  c->tls ? (c->cb == SC_SASL_CB_TLS_EXPORTER ? " (TLS, tls-exporter)"
                                                              : " (TLS, tls-server-end-point)")
                         : "");
}

static void run_all(enum peer_lib lib, bool our_client)
{
    tp_need_program(peer_prog(lib));
    fill_pattern();
    const char *who = our_client ? (lib == CYRUS ? "ours -> Cyrus server:" : "ours -> GNU SASL server:")
                                 : (lib == CYRUS ? "Cyrus client -> ours:" : "GNU SASL client -> ours:");
    for (size_t i = 0; i < sizeof(common_cases) / sizeof(common_cases[0]); i++) {
        describe(who, &common_cases[i]);
        if (our_client)
            client_case(lib, &common_cases[i], PASSWORD, 0);
        else
            server_case(lib, &common_cases[i], PASSWORD, 0);
    }
    if (lib == CYRUS) {
        for (size_t i = 0; i < sizeof(cyrus_cases) / sizeof(cyrus_cases[0]); i++) {
            describe(who, &cyrus_cases[i]);
            if (our_client)
                client_case(lib, &cyrus_cases[i], PASSWORD, 0);
            else
                server_case(lib, &cyrus_cases[i], PASSWORD, 0);
        }
    }
    /* a wrong password fails on both sides */
    static const struct icase wrong[] = {
        {SC_SASL_SCRAM_SHA_256, 0, false, SC_SASL_CB_NONE},
        {SC_SASL_DIGEST_MD5, SC_SASL_QOP_INT, false, SC_SASL_CB_NONE},
    };
    for (size_t i = 0; i < 2; i++) {
        describe(who, &wrong[i]);
        print_message("#   with a wrong password\n");
        if (our_client)
            client_case(lib, &wrong[i], "not the password", SC_ERR_SASL_AUTH);
        else
            server_case(lib, &wrong[i], "not the password", SC_ERR_SASL_AUTH);
    }
}

static void test_our_client_cyrus_server(void **state)
{
    (void)state;
    run_all(CYRUS, true);
}

static void test_cyrus_client_our_server(void **state)
{
    (void)state;
    run_all(CYRUS, false);
}

static void test_our_client_gsasl_server(void **state)
{
    (void)state;
    run_all(GSASL, true);
}

static void test_gsasl_client_our_server(void **state)
{
    (void)state;
    run_all(GSASL, false);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_our_client_cyrus_server, tp_stop_all_teardown),
        cmocka_unit_test_teardown(test_cyrus_client_our_server, tp_stop_all_teardown),
        cmocka_unit_test_teardown(test_our_client_gsasl_server, tp_stop_all_teardown),
        cmocka_unit_test_teardown(test_gsasl_client_our_server, tp_stop_all_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
