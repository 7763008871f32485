/* Our TLS client against real peers: gnutls-serv (GnuTLS, the library of
 * qemu-nbd and nbdkit) and openssl s_server, each started on 127.0.0.1 with
 * a free port and ended by PID. X.509 and PSK, TLS 1.3 and 1.2, client
 * certificates, and every failure closed with its own error. */
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
#include "../util/proc.h"
#include "../util/tlspair.h"
#include "sechan/port.h"
#include "sechan/tcp.h"

#define MIB (1024u * 1024u)
#define IO_TIMEOUT_MS 10000u

static struct sc_tls_creds creds;
static char psk_hex[80];

struct peer {
    pid_t pid;
    int port;
    int stdin_fd;
    char log[256];
};

static void peer_start(struct peer *p, const char *const argv[], const char *name)
{
    snprintf(p->log, sizeof(p->log), "%s/%s-%d.log", tp_build_dir(), name, p->port);
    p->stdin_fd = -1;
    /* openssl s_server ends when its stdin closes: keep a pipe open. */
    p->pid = tp_spawn_stdin_pipe(argv, p->log, &p->stdin_fd);
    assert_true(p->pid > 0);
    if (tp_wait_listen_quiet(p->pid, p->port, 10000) != 0) {
        print_error("%s did not start listening; see %s\n", name, p->log);
        tp_stop(p->pid, 2000);
        fail();
    }
}

static void peer_stop(struct peer *p)
{
    if (p->stdin_fd >= 0)
        close(p->stdin_fd);
    tp_stop(p->pid, 3000);
}

static void gnutls_x509(struct peer *p, const char *pki, const char *extra1, const char *extra2)
{
    tp_need_program("gnutls-serv");
    p->port = tp_free_port();
    char port[16], ca[300], cert[300], key[300];
    snprintf(port, sizeof(port), "%d", p->port);
    snprintf(ca, sizeof(ca), "%s/ca-cert.pem", pki_path(pki));
    snprintf(cert, sizeof(cert), "%s/server-cert.pem", pki_path(pki));
    snprintf(key, sizeof(key), "%s/server-key.pem", pki_path(pki));
    const char *argv[] = {"gnutls-serv", "--echo", "-p", port, "--x509cafile", ca,
                          "--x509certfile", cert, "--x509keyfile", key, extra1, extra2, NULL};
    peer_start(p, argv, "gnutls-serv");
}

static void gnutls_psk(struct peer *p)
{
    tp_need_program("gnutls-serv");
    p->port = tp_free_port();
    char port[16];
    snprintf(port, sizeof(port), "%d", p->port);
    const char *argv[] = {"gnutls-serv", "--echo", "-p", port, "--pskpasswd",
                          pki_path("keys.psk"), "--priority", "NORMAL:+ECDHE-PSK:+PSK", NULL};
    peer_start(p, argv, "gnutls-serv-psk");
}

static void openssl_x509(struct peer *p, const char *pki)
{
    tp_need_program("openssl");
    p->port = tp_free_port();
    char accept[32], cert[300], key[300];
    snprintf(accept, sizeof(accept), "127.0.0.1:%d", p->port);
    snprintf(cert, sizeof(cert), "%s/server-cert.pem", pki_path(pki));
    snprintf(key, sizeof(key), "%s/server-key.pem", pki_path(pki));
    const char *argv[] = {"openssl", "s_server", "-accept", accept, "-cert", cert,
                          "-key", key, "-rev", "-naccept", "1", NULL};
    peer_start(p, argv, "openssl-s_server");
}

static void openssl_psk(struct peer *p)
{
    tp_need_program("openssl");
    p->port = tp_free_port();
    char accept[32];
    snprintf(accept, sizeof(accept), "127.0.0.1:%d", p->port);
    const char *argv[] = {"openssl", "s_server", "-accept", accept, "-psk", psk_hex,
                          "-psk_identity", "alice", "-nocert", "-rev", "-naccept", "1", NULL};
    peer_start(p, argv, "openssl-s_server-psk");
}

struct conn {
    struct sc_sock sock;
    struct sc_tls tls;
};

/* Connect and handshake; returns the handshake result. */
static int client_connect(struct conn *c, const struct peer *p, struct sc_tls_config *cfg)
{
    assert_int_equal(sc_tcp_connect(&c->sock, "127.0.0.1", (uint16_t)p->port,
                                    sc_deadline_in(IO_TIMEOUT_MS)),
                     0);
    cfg->endpoint = SC_TLS_CLIENT;
    cfg->creds = &creds;
    int r = sc_tls_init(&c->tls, &c->sock.base, cfg);
    if (r == 0)
        r = sc_tls_handshake_wait(&c->tls, sc_deadline_in(IO_TIMEOUT_MS));
    return r;
}

static void conn_close(struct conn *c)
{
    sc_close(&c->tls.base);
    sc_close(&c->sock.base);
}

/* gnutls-serv --echo works on text lines (it handles C strings and holds
 * a partial line back), so the pattern is lines of 63 letters and '\n'. */
static unsigned char echo_byte(size_t i)
{
    return i % 64 == 63 ? '\n' : (unsigned char)('a' + conform_byte(i) % 26);
}

/* Send total bytes of whole lines in chunks of varying size, reading each
 * echo back before the next. */
static void echo_roundtrip(struct conn *c, size_t total)
{
    static unsigned char out[16384], in[16384];
    uint64_t deadline = sc_deadline_in(60000);
    for (size_t off = 0, round = 0; off < total; round++) {
        size_t n = 64 * (round % 256 + 1);
        if (n > total - off)
            n = total - off;
        for (size_t i = 0; i < n; i++)
            out[i] = echo_byte(off + i);
        assert_int_equal(sc_write_all(&c->tls.base, out, n, deadline), 0);
        size_t got;
        int r = sc_read_full(&c->tls.base, in, n, &got, deadline);
        if (r != 0)
            print_error("echo read at %zu: %s: %s\n", off + got, sc_errname(r),
                        sc_channel_errmsg(&c->tls.base));
        assert_int_equal(r, 0);
        assert_memory_equal(in, out, n);
        off += n;
    }
}

/* openssl s_server -rev answers each line reversed. */
static void reversed_line(struct conn *c)
{
    const char *line = "sechan says hello\n";
    char buf[64];
    assert_int_equal(sc_write_all(&c->tls.base, line, strlen(line), sc_deadline_in(IO_TIMEOUT_MS)),
                     0);
    size_t got;
    assert_int_equal(sc_read_full(&c->tls.base, buf, strlen(line), &got,
                                  sc_deadline_in(IO_TIMEOUT_MS)),
                     0);
    assert_memory_equal(buf, "olleh syas nahces\n", strlen(line));
}

static void expect_info(struct conn *c, const char *version, bool psk)
{
    struct sc_tls_info info;
    assert_int_equal(sc_tls_get_info(&c->tls, &info), 0);
    printf("# %s %s peer=%s\n", info.version, info.ciphersuite, info.peer);
    assert_string_equal(info.version, version);
    assert_int_equal(info.psk, psk);
    if (strcmp(version, "TLSv1.3") == 0)
        assert_string_equal(info.ciphersuite, "TLS1-3-AES-128-GCM-SHA256");
}

static void load_x509(const char *pki)
{
    creds_x509(&creds, pki, SC_TLS_CLIENT);
}

static void load_psk(const char *file)
{
    creds_psk(&creds, file);
}

static int teardown(void **state)
{
    (void)state;
    tp_stop_all();  /* peers of a test that failed half-way */
    sc_tls_creds_free(&creds);
    return 0;
}

/* Expect the handshake (or, for failures the server reports after the
 * client's last flight in TLS 1.3, the first read) to fail with want. */
static void expect_failure(struct conn *c, int hs, int want)
{
    int r = hs;
    if (r == 0) {
        unsigned char buf[16];
        r = (int)sc_read_some(&c->tls.base, buf, sizeof(buf), sc_deadline_in(IO_TIMEOUT_MS));
    }
    printf("# %s: %s\n", sc_errname(r), sc_channel_errmsg(&c->tls.base));
    assert_int_equal(r, want);
    /* Fail closed: nothing more goes through. */
    assert_int_equal(sc_write(&c->tls.base, "x", 1), want);
}

/* ---- GnuTLS ---- */

static void test_gnutls_x509_echo(void **state)
{
    (void)state;
    struct peer p;
    struct conn c;
    gnutls_x509(&p, "pki", NULL, NULL);
    load_x509("pki");
    struct sc_tls_config cfg = {.hostname = "localhost"};
    assert_int_equal(client_connect(&c, &p, &cfg), 0);
    expect_info(&c, "TLSv1.3", false);
    echo_roundtrip(&c, MIB);
    assert_int_equal(sc_shutdown_wait(&c.tls.base, sc_deadline_in(IO_TIMEOUT_MS)), 0);
    conn_close(&c);
    peer_stop(&p);
}

static void test_gnutls_x509_tls12(void **state)
{
    (void)state;
    struct peer p;
    struct conn c;
    gnutls_x509(&p, "pki", NULL, NULL);
    load_x509("pki");
    struct sc_tls_config cfg = {.hostname = "127.0.0.1", .max_version = SC_TLS_1_2};
    assert_int_equal(client_connect(&c, &p, &cfg), 0);
    expect_info(&c, "TLSv1.2", false);
    echo_roundtrip(&c, 256 * 1024);
    conn_close(&c);
    peer_stop(&p);
}

static void test_gnutls_client_cert(void **state)
{
    (void)state;
    struct peer p;
    struct conn c;
    gnutls_x509(&p, "pki", "--require-client-cert", "--verify-client-cert");
    load_x509("pki");
    struct sc_tls_config cfg = {.hostname = "localhost"};
    assert_int_equal(client_connect(&c, &p, &cfg), 0);
    echo_roundtrip(&c, 64 * 1024);
    conn_close(&c);
    sc_tls_creds_free(&creds);
    /* Without a client certificate the server refuses us. */
    load_x509("pki-caonly");
    int hs = client_connect(&c, &p, &cfg);
    expect_failure(&c, hs, SC_ERR_TLS_ALERT);
    assert_non_null(strstr(sc_channel_errmsg(&c.tls.base), "certificate_required"));
    conn_close(&c);
    peer_stop(&p);
}

static void test_gnutls_psk_echo(void **state)
{
    (void)state;
    struct peer p;
    struct conn c;
    gnutls_psk(&p);
    load_psk("keys.psk");
    struct sc_tls_config cfg = {.hostname = "localhost"};
    assert_int_equal(client_connect(&c, &p, &cfg), 0);
    expect_info(&c, "TLSv1.3", true);
    echo_roundtrip(&c, MIB);
    conn_close(&c);
    peer_stop(&p);
}

static void gnutls_expect_x509_failure(const char *client_pki, const char *server_pki,
                                       const char *hostname, int want)
{
    struct peer p;
    struct conn c;
    gnutls_x509(&p, server_pki, NULL, NULL);
    load_x509(client_pki);
    struct sc_tls_config cfg = {.hostname = hostname};
    expect_failure(&c, client_connect(&c, &p, &cfg), want);
    conn_close(&c);
    peer_stop(&p);
}

static void test_gnutls_wrong_ca(void **state)
{
    (void)state;
    gnutls_expect_x509_failure("pki", "pki-otherca", "localhost", SC_ERR_TLS_UNTRUSTED);
}

static void test_gnutls_wrong_host(void **state)
{
    (void)state;
    gnutls_expect_x509_failure("pki", "pki-wronghost", "localhost", SC_ERR_TLS_HOSTNAME);
}

static void test_gnutls_revoked(void **state)
{
    (void)state;
    gnutls_expect_x509_failure("pki-revoked", "pki-revoked", "localhost", SC_ERR_TLS_REVOKED);
}

static void test_gnutls_wrong_psk(void **state)
{
    (void)state;
    struct peer p;
    struct conn c;
    gnutls_psk(&p);
    load_psk("keys-wrong.psk");
    struct sc_tls_config cfg = {.hostname = "localhost"};
    expect_failure(&c, client_connect(&c, &p, &cfg), SC_ERR_TLS_PSK);
    conn_close(&c);
    sc_tls_creds_free(&creds);
    /* An identity the server does not know fails the same way. */
    load_psk("keys-multi.psk");
    cfg.psk_identity = "bob";
    expect_failure(&c, client_connect(&c, &p, &cfg), SC_ERR_TLS_PSK);
    conn_close(&c);
    peer_stop(&p);
}

/* ---- OpenSSL ---- */

static void test_openssl_x509(void **state)
{
    (void)state;
    struct peer p;
    struct conn c;
    openssl_x509(&p, "pki");
    load_x509("pki");
    struct sc_tls_config cfg = {.hostname = "localhost"};
    assert_int_equal(client_connect(&c, &p, &cfg), 0);
    expect_info(&c, "TLSv1.3", false);
    reversed_line(&c);
    conn_close(&c);
    peer_stop(&p);
}

static void test_openssl_psk(void **state)
{
    (void)state;
    struct peer p;
    struct conn c;
    openssl_psk(&p);
    load_psk("keys.psk");
    struct sc_tls_config cfg = {.hostname = "localhost"};
    assert_int_equal(client_connect(&c, &p, &cfg), 0);
    expect_info(&c, "TLSv1.3", true);
    reversed_line(&c);
    conn_close(&c);
    peer_stop(&p);
}

static void openssl_expect_x509_failure(const char *client_pki, const char *server_pki,
                                        const char *hostname, int want)
{
    struct peer p;
    struct conn c;
    openssl_x509(&p, server_pki);
    load_x509(client_pki);
    struct sc_tls_config cfg = {.hostname = hostname};
    expect_failure(&c, client_connect(&c, &p, &cfg), want);
    conn_close(&c);
    peer_stop(&p);
}

static void test_openssl_wrong_ca(void **state)
{
    (void)state;
    openssl_expect_x509_failure("pki", "pki-otherca", "localhost", SC_ERR_TLS_UNTRUSTED);
}

static void test_openssl_wrong_host(void **state)
{
    (void)state;
    openssl_expect_x509_failure("pki", "pki-wronghost", "localhost", SC_ERR_TLS_HOSTNAME);
}

static void test_openssl_revoked(void **state)
{
    (void)state;
    openssl_expect_x509_failure("pki-revoked", "pki-revoked", "localhost", SC_ERR_TLS_REVOKED);
}

static void test_openssl_wrong_psk(void **state)
{
    (void)state;
    struct peer p;
    struct conn c;
    openssl_psk(&p);
    load_psk("keys-wrong.psk");
    struct sc_tls_config cfg = {.hostname = "localhost"};
    expect_failure(&c, client_connect(&c, &p, &cfg), SC_ERR_TLS_PSK);
    conn_close(&c);
    peer_stop(&p);
}

static int suite_setup(void **state)
{
    (void)state;
    /* openssl s_server takes the key as hex on its command line. */
    char text[256];
    long n = sc_port_read_file(pki_path("keys.psk"), text, sizeof(text) - 1);
    if (n <= 0)
        return -1;
    text[n] = '\0';
    const char *colon = strchr(text, ':');
    if (colon == NULL)
        return -1;
    snprintf(psk_hex, sizeof(psk_hex), "%.64s", colon + 1);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_gnutls_x509_echo, teardown),
        cmocka_unit_test_teardown(test_gnutls_x509_tls12, teardown),
        cmocka_unit_test_teardown(test_gnutls_client_cert, teardown),
        cmocka_unit_test_teardown(test_gnutls_psk_echo, teardown),
        cmocka_unit_test_teardown(test_gnutls_wrong_ca, teardown),
        cmocka_unit_test_teardown(test_gnutls_wrong_host, teardown),
        cmocka_unit_test_teardown(test_gnutls_revoked, teardown),
        cmocka_unit_test_teardown(test_gnutls_wrong_psk, teardown),
        cmocka_unit_test_teardown(test_openssl_x509, teardown),
        cmocka_unit_test_teardown(test_openssl_psk, teardown),
        cmocka_unit_test_teardown(test_openssl_wrong_ca, teardown),
        cmocka_unit_test_teardown(test_openssl_wrong_host, teardown),
        cmocka_unit_test_teardown(test_openssl_revoked, teardown),
        cmocka_unit_test_teardown(test_openssl_wrong_psk, teardown),
    };
    return cmocka_run_group_tests_name("interop_tls", tests, suite_setup, NULL);
}
