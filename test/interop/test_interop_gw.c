/* sechan-gw end to end: a guest (our client library, as the firmware
 * application uses it) authenticates to the gateway with SCRAM-SHA-256-PLUS
 * over TLS, and with DIGEST-MD5 auth-conf over plaintext, then speaks NBD
 * through the gateway to its own qemu-nbd, reads, writes and checks the
 * disk. A second identity is refused the first one's export; wrong
 * passwords, unknown users, identities without a route and a backend that
 * is down each get their log line and a closed connection; the pool is
 * fixed; SIGTERM stops the gateway cleanly. */
#define _POSIX_C_SOURCE 200809L
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "../util/need.h"
#include "../util/nbdpeer.h"
#include "../util/proc.h"
#include "../util/seclink.h"
#include "sechan/nbd.h"
#include "sechan/port.h"
#include "sechan/sasl.h"
#include "sechan/tcp.h"

#define DISK_SIZE (1024u * 1024u)
#define SEED_ALICE 11u
#define SEED_BOB 22u

static struct np_peer alice_nbd, bob_nbd;
static char creds_path[256], alice_img[256], bob_img[256];

struct gw {
    pid_t pid;
    int port;
    char log[256];
    char conf[256];
};

/* ---- the gateway process ---- */

/* listen: NULL for TCP on a free port, else the whole listen/connect line. */
static void gw_start_at(struct gw *g, const char *name, const char *listen,
                        const char *settings)
{
    g->port = listen == NULL ? tp_free_port() : 0;
    assert_true(listen != NULL || g->port > 0);
    snprintf(g->conf, sizeof(g->conf), "%s/gw-%s.conf", tp_build_dir(), name);
    snprintf(g->log, sizeof(g->log), "%s/gw-%s.log", tp_build_dir(), name);
    unlink(g->log);
    FILE *f = fopen(g->conf, "w");
    assert_non_null(f);
    if (listen == NULL)
        fprintf(f, "listen tcp:127.0.0.1:%d\n", g->port);
    else
        fprintf(f, "%s\n", listen);
    fprintf(f, "credentials %s\n%s\n", creds_path, settings);
    fprintf(f, "route alice unix:%s\nroute bob unix:%s\n", alice_nbd.socket_path,
            bob_nbd.socket_path);
    fprintf(f, "route dave unix:%s/no-such-backend.sock\n", tp_build_dir());
    fclose(f);
    char exe[256];
    snprintf(exe, sizeof(exe), "%s/sechan-gw", tp_bin_dir());
    const char *argv[] = {exe, "serve", g->conf, NULL};
    g->pid = tp_spawn(argv, g->log);
    assert_true(g->pid > 0);
    if (g->port != 0 && tp_wait_listen_quiet(g->pid, g->port, 10000) != 0) {
        print_error("sechan-gw did not start; see %s\n", g->log);
        fail();
    }
}

static void gw_start(struct gw *g, const char *name, const char *settings)
{
    gw_start_at(g, name, NULL, settings);
}

/* Wait (bounded) for text to appear in the gateway's log. */
static bool gw_logged(const struct gw *g, const char *text)
{
    if (tp_file_has(g->log, text, 5000))
        return true;
    print_error("not in %s: \"%s\"\n", g->log, text);
    return false;
}

static int adduser(const char *user, const char *password)
{
    char exe[256];
    snprintf(exe, sizeof(exe), "%s/sechan-gw", tp_bin_dir());
    const char *argv[] = {exe, "adduser", creds_path, user, "--realm", "sechan", NULL};
    int fd = -1;
    pid_t pid = tp_spawn_stdin_pipe(argv, NULL, &fd);
    if (pid < 0)
        return -1;
    dprintf(fd, "%s\n", password);
    close(fd);
    int64_t end = tp_now_ms() + 10000;
    while (tp_alive(pid) && tp_now_ms() < end)
        tp_sleep_ms(10);
    return tp_stop(pid, 1000);
}

static int setup(void **state)
{
    (void)state;
    if (!tp_have_program("qemu-nbd")) {
        if (tp_in_ci()) {
            fprintf(stderr, "qemu-nbd is not installed (CI must have it)\n");
            return -1;
        }
        return 0;  /* each test skips */
    }
    snprintf(creds_path, sizeof(creds_path), "%s/gw-creds", tp_build_dir());
    unlink(creds_path);
    snprintf(alice_img, sizeof(alice_img), "%s/gw-alice.img", tp_build_dir());
    snprintf(bob_img, sizeof(bob_img), "%s/gw-bob.img", tp_build_dir());
    if (np_make_disk(alice_img, DISK_SIZE, SEED_ALICE) != 0 ||
        np_make_disk(bob_img, DISK_SIZE, SEED_BOB) != 0)
        return -1;
    if (adduser("alice", "alice's password") != 0 || adduser("bob", "bob-pw") != 0 ||
        adduser("carol", "carol-pw") != 0 || adduser("dave", "dave-pw") != 0)
        return -1;
    struct np_opts a = {.server = NP_QEMU_NBD, .file = alice_img, .export_name = "alice",
                        .unix_socket = true};
    struct np_opts b = {.server = NP_QEMU_NBD, .file = bob_img, .export_name = "bob",
                        .unix_socket = true};
    if (np_start(&alice_nbd, &a) != 0 || np_start(&bob_nbd, &b) != 0)
        return -1;
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    if (alice_nbd.pid > 0)
        np_stop(&alice_nbd);
    if (bob_nbd.pid > 0)
        np_stop(&bob_nbd);
    tp_stop_all();
    return 0;
}

/* ---- the guest ---- */

struct guest {
    struct seclink link;
    struct sc_nbd_conn nbd;
    struct sc_sasl_info info;
};

static struct guest g;

/* Connect, secure and authenticate. 0, or the error. */
static int guest_auth(int port, bool tls, const char *user, const char *password,
                      const struct sc_sasl_client_config *extra)
{
    uint64_t deadline = sc_deadline_in(20000);
    int r;
    if (port > 0) {
        memset(&g, 0, sizeof(g));
        r = sc_tcp_connect(&g.link.sock, "127.0.0.1", (uint16_t)port, deadline);
        assert_int_equal(r, 0);
    }
    seclink_begin(&g.link);
    struct sc_sasl_binding bind;
    bool bound = false;
    if (tls) {
        r = seclink_tls(&g.link, np_pki("pki"), false, SC_TLS_VERSION_DEFAULT, deadline);
        if (r != 0)
            return r;
        bound = sc_sasl_binding_from_tls(&bind, &g.link.tls, SC_SASL_CB_TLS_EXPORTER) == 0;
        assert_true(bound);
    }
    struct sc_sasl_client_config cc = extra != NULL ? *extra : (struct sc_sasl_client_config){0};
    cc.user = user;
    cc.password = password;
    cc.plaintext = !tls;
    cc.binding = bound ? &bind : NULL;
    assert_int_equal(sc_sasl_client_init(&g.link.sasl, &cc), 0);
    r = sc_sasl_run(&g.link.sasl, g.link.ch, deadline);
    if (r != 0) {
        print_message("# %s: %s\n", user, sc_sasl_errmsg(&g.link.sasl));
        return r;
    }
    assert_int_equal(sc_sasl_info(&g.link.sasl, &g.info), 0);
    assert_int_equal(seclink_layer(&g.link), 0);
    return 0;
}

static void guest_close(void)
{
    seclink_close(&g.link);
}

/* NBD through the gateway: read and check, write with FUA, flush, read
 * back; then the disk file on the host must hold the block. */
static void guest_nbd(const char *export_name, uint32_t seed, const char *img)
{
    static uint8_t buf[65536], want[65536];
    uint64_t deadline = sc_deadline_in(20000);
    struct sc_nbd_client_config nc = {.export_name = export_name, .tls = SC_NBD_TLS_OFF};
    int r = sc_nbd_connect(&g.nbd, g.link.ch, &nc, NULL, deadline);
    if (r != 0)
        print_error("NBD connect: %s\n", sc_nbd_conn_errmsg(&g.nbd));
    assert_int_equal(r, 0);
    assert_int_equal(sc_nbd_pread(&g.nbd, buf, sizeof(buf), 0, deadline), 0);
    np_disk_fill(seed, 0, want, sizeof(want));
    assert_memory_equal(buf, want, sizeof(want));
    for (size_t i = 0; i < 4096; i++)
        buf[i] = (uint8_t)(i * 7 + seed);
    assert_int_equal(sc_nbd_pwrite(&g.nbd, buf, 4096, 512 * 1024, SC_NBD_CMD_FLAG_FUA, deadline),
                     0);
    assert_int_equal(sc_nbd_command(&g.nbd, SC_NBD_CMD_FLUSH, 0, 0, 0, deadline), 0);
    memset(want, 0, 4096);
    assert_int_equal(sc_nbd_pread(&g.nbd, want, 4096, 512 * 1024, deadline), 0);
    assert_memory_equal(buf, want, 4096);
    assert_int_equal(sc_nbd_close(&g.nbd, deadline), 0);
    FILE *f = fopen(img, "rb");
    assert_non_null(f);
    assert_int_equal(fseek(f, 512 * 1024, SEEK_SET), 0);
    assert_int_equal(fread(want, 1, 4096, f), 4096);
    fclose(f);
    assert_memory_equal(buf, want, 4096);
}

static void need_peers(void)
{
    tp_need_program("qemu-nbd");
}

static void test_scram_plus_over_tls(void **state)
{
    (void)state;
    need_peers();
    struct gw gw;
    char settings[512];
    snprintf(settings, sizeof(settings), "tls x509 %s\nsasl required", np_pki("pki"));
    gw_start(&gw, "tls", settings);
    assert_int_equal(guest_auth(gw.port, true, "alice", "alice's password", NULL), 0);
    assert_int_equal(g.info.mech, SC_SASL_SCRAM_SHA_256_PLUS);
    assert_true(g.info.channel_bound);
    guest_nbd("alice", SEED_ALICE, alice_img);
    guest_close();
    assert_true(gw_logged(&gw, "\"alice\" authenticated (TLS + SASL SCRAM-SHA-256-PLUS "
                               "channel-bound); relaying to unix:"));
    /* Plain SCRAM-SHA-1 over the same TLS works too. */
    static const enum sc_sasl_mech sha1[] = {SC_SASL_SCRAM_SHA_1};
    struct sc_sasl_client_config only = {.mechs = sha1, .mech_count = 1};
    assert_int_equal(guest_auth(gw.port, true, "bob", "bob-pw", &only), 0);
    assert_int_equal(g.info.mech, SC_SASL_SCRAM_SHA_1);
    guest_nbd("bob", SEED_BOB, bob_img);
    guest_close();
    assert_int_equal(tp_stop(gw.pid, 5000), 0);
    assert_true(gw_logged(&gw, "sechan-gw: stopped"));
}

static void test_digest_auth_conf_over_plaintext(void **state)
{
    (void)state;
    need_peers();
    struct gw gw;
    gw_start(&gw, "plain", "tls off\nsasl required\nsasl-qop auth-conf");
    assert_int_equal(guest_auth(gw.port, false, "alice", "alice's password", NULL), 0);
    assert_int_equal(g.info.mech, SC_SASL_DIGEST_MD5);
    assert_int_equal(g.info.qop, SC_SASL_QOP_CONF);
    assert_int_equal(g.info.cipher, SC_SASL_CIPHER_3DES);
    guest_nbd("alice", SEED_ALICE, alice_img);
    guest_close();
    struct sc_sasl_client_config des = {.ciphers = SC_SASL_CIPHER_DES};
    assert_int_equal(guest_auth(gw.port, false, "bob", "bob-pw", &des), 0);
    assert_int_equal(g.info.cipher, SC_SASL_CIPHER_DES);
    guest_nbd("bob", SEED_BOB, bob_img);
    guest_close();
    assert_true(gw_logged(&gw, "\"bob\" authenticated (SASL DIGEST-MD5 auth-conf des)"));
    assert_int_equal(tp_stop(gw.pid, 5000), 0);
}

static void test_second_identity_refused_first_export(void **state)
{
    (void)state;
    need_peers();
    struct gw gw;
    gw_start(&gw, "iso", "tls off\nsasl required");
    /* bob is relayed to bob's qemu-nbd, which has no export "alice" */
    assert_int_equal(guest_auth(gw.port, false, "bob", "bob-pw", NULL), 0);
    struct sc_nbd_client_config nc = {.export_name = "alice", .tls = SC_NBD_TLS_OFF};
    int r = sc_nbd_connect(&g.nbd, g.link.ch, &nc, NULL, sc_deadline_in(10000));
    print_message("# bob asking for export alice: %s\n", sc_nbd_conn_errmsg(&g.nbd));
    assert_int_not_equal(r, 0);
    guest_close();
    /* and bob's data is bob's */
    assert_int_equal(guest_auth(gw.port, false, "bob", "bob-pw", NULL), 0);
    guest_nbd("bob", SEED_BOB, bob_img);
    guest_close();
    assert_int_equal(tp_stop(gw.pid, 5000), 0);
}

static void test_refusals_are_logged_and_closed(void **state)
{
    (void)state;
    need_peers();
    struct gw gw;
    gw_start(&gw, "refuse", "tls off\nsasl required");
    assert_int_equal(guest_auth(gw.port, false, "alice", "not her password", NULL),
                     SC_ERR_SASL_AUTH);
    guest_close();
    assert_true(gw_logged(&gw, "wrong password for \"alice\""));
    assert_int_equal(guest_auth(gw.port, false, "mallory", "x", NULL), SC_ERR_SASL_AUTH);
    guest_close();
    assert_true(gw_logged(&gw, "unknown user \"mallory\""));
    /* carol authenticates but has no route: the connection closes */
    assert_int_equal(guest_auth(gw.port, false, "carol", "carol-pw", NULL), 0);
    uint8_t b[16];
    assert_true(sc_read_some(g.link.ch, b, sizeof(b), sc_deadline_in(5000)) <= 0);
    guest_close();
    assert_true(gw_logged(&gw, "\"carol\" authenticated (SASL DIGEST-MD5 auth-conf 3des) but "
                               "has no route; closed"));
    /* dave's backend is down */
    assert_int_equal(guest_auth(gw.port, false, "dave", "dave-pw", NULL), 0);
    assert_true(sc_read_some(g.link.ch, b, sizeof(b), sc_deadline_in(5000)) <= 0);
    guest_close();
    assert_true(gw_logged(&gw, "of \"dave\" is down"));
    /* a plaintext client whose policy wants a layer, against a gateway
     * that allows SCRAM in clear: refused by the client */
    assert_int_equal(tp_stop(gw.pid, 5000), 0);
    gw_start(&gw, "weak", "tls off\nsasl required\nsasl-allow-no-layer yes\n"
                          "sasl-mechs SCRAM-SHA-256");
    assert_int_equal(guest_auth(gw.port, false, "alice", "alice's password", NULL),
                     SC_ERR_SASL_POLICY);
    guest_close();
    assert_int_equal(tp_stop(gw.pid, 5000), 0);
}

static void test_pool_full_and_sigterm(void **state)
{
    (void)state;
    need_peers();
    struct gw gw;
    gw_start(&gw, "pool", "tls off\nsasl required\npool 2\nhandshake-timeout 30");
    /* Two connections that never authenticate hold the pool. */
    struct sc_sock idle[3];
    for (int i = 0; i < 3; i++)
        assert_int_equal(sc_tcp_connect(&idle[i], "127.0.0.1", (uint16_t)gw.port,
                                        sc_deadline_in(5000)),
                         0);
    assert_true(gw_logged(&gw, "conn 3: refused: all 2 connections of the pool are in use"));
    uint8_t b[300];
    /* the third is closed at once; the first two got the mechanism list */
    assert_true(sc_read_some(&idle[2].base, b, sizeof(b), sc_deadline_in(5000)) <= 0);
    assert_true(sc_read_some(&idle[0].base, b, sizeof(b), sc_deadline_in(5000)) > 3);
    assert_int_equal(b[0], 0x01);
    /* SIGTERM: the gateway closes both and exits 0 */
    int64_t t0 = tp_now_ms();
    assert_int_equal(tp_stop(gw.pid, 5000), 0);
    print_message("# SIGTERM to exit: %lld ms\n", (long long)(tp_now_ms() - t0));
    assert_true(gw_logged(&gw, "stopping: closing 2 connections"));
    assert_true(sc_read_some(&idle[0].base, b, sizeof(b), sc_deadline_in(5000)) <= 0);
    for (int i = 0; i < 3; i++)
        sc_close(&idle[i].base);
}

/* The gateway dials a QEMU-style chardev server (here: a unix socket we
 * listen on, as qemu -chardev socket,server=on would), and listens on a
 * unix socket. */
static void test_connect_mode_and_unix_listen(void **state)
{
    (void)state;
    need_peers();
    char path[200], line[260];
    snprintf(path, sizeof(path), "%s/gw-chardev.sock", tp_build_dir());
    unlink(path);
    struct sc_listener l;
    assert_int_equal(sc_unix_listen(&l, path, 1), 0);
    snprintf(line, sizeof(line), "connect unix:%s", path);
    struct gw gw;
    gw_start_at(&gw, "connect", line, "tls off\nsasl required");
    memset(&g, 0, sizeof(g));
    assert_int_equal(sc_listener_accept(&l, &g.link.sock, sc_deadline_in(10000)), 0);
    assert_int_equal(guest_auth(-1, false, "alice", "alice's password", NULL), 0);
    guest_nbd("alice", SEED_ALICE, alice_img);
    guest_close();
    /* after the session the gateway dials again */
    memset(&g, 0, sizeof(g));
    assert_int_equal(sc_listener_accept(&l, &g.link.sock, sc_deadline_in(10000)), 0);
    assert_int_equal(guest_auth(-1, false, "bob", "bob-pw", NULL), 0);
    guest_nbd("bob", SEED_BOB, bob_img);
    guest_close();
    assert_int_equal(tp_stop(gw.pid, 5000), 0);
    sc_listener_close(&l);
    unlink(path);

    snprintf(path, sizeof(path), "%s/gw-listen.sock", tp_build_dir());
    snprintf(line, sizeof(line), "listen unix:%s", path);
    gw_start_at(&gw, "unix", line, "tls off\nsasl required");
    assert_int_equal(tp_wait_unix(gw.pid, path, 10000), 0);
    memset(&g, 0, sizeof(g));
    assert_int_equal(sc_unix_connect(&g.link.sock, path, sc_deadline_in(5000)), 0);
    assert_int_equal(guest_auth(-1, false, "alice", "alice's password", NULL), 0);
    guest_nbd("alice", SEED_ALICE, alice_img);
    guest_close();
    assert_int_equal(tp_stop(gw.pid, 5000), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_scram_plus_over_tls),
        cmocka_unit_test(test_digest_auth_conf_over_plaintext),
        cmocka_unit_test(test_second_identity_refused_first_export),
        cmocka_unit_test(test_refusals_are_logged_and_closed),
        cmocka_unit_test(test_pool_full_and_sigterm),
        cmocka_unit_test(test_connect_mode_and_unix_listen),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
