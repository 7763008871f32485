/* Our NBD server (sechan-nbd serve) against libnbd's tools (nbdinfo,
 * nbdcopy, nbdsh) and QEMU's NBD client (qemu-img, qemu-io), plain and over
 * TLS; the TLS-required gate checked byte by byte on the wire; the bugs
 * other servers shipped, replayed; the client pool and handshake deadline;
 * and sechan-nbd copy failing loudly on an I/O error. */
#define _POSIX_C_SOURCE 200809L
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "../../nbd/nbd_wire.h"
#include "../util/nbdpeer.h"
#include "../util/need.h"
#include "../util/proc.h"
#include "sechan/nbd.h"
#include "sechan/port.h"
#include "sechan/tcp.h"

#define DISK_SIZE (8u << 20)
#define SEED 11u
#define IO_MS 20000u

struct server {
    pid_t pid;
    int port;
    char log[256];
};

static char src_img[256];

/* Start sechan-nbd serve with the given extra arguments (NULL-terminated). */
static void serve(struct server *s, const char *const extra[])
{
    static char exe[256], port_arg[32];
    snprintf(exe, sizeof(exe), "%s/sechan-nbd", tp_bin_dir());
    s->port = tp_free_port();
    snprintf(port_arg, sizeof(port_arg), "--port=%d", s->port);
    snprintf(s->log, sizeof(s->log), "%s/sechan-nbd-serve-%d.log", tp_build_dir(), s->port);
    const char *argv[24] = {exe, "serve", port_arg};
    size_t n = 3;
    for (size_t i = 0; extra[i] != NULL && n < 23; i++)
        argv[n++] = extra[i];
    argv[n] = NULL;
    s->pid = tp_spawn(argv, s->log);
    assert_true(s->pid > 0);
    if (tp_wait_listen_quiet(s->pid, s->port, 10000) != 0) {
        print_error("sechan-nbd serve did not start; see %s\n", s->log);
        fail();
    }
}

static void stop(struct server *s)
{
    tp_stop(s->pid, 3000);
}

/* Run a program to completion within timeout_ms; its exit status. */
static int run(const char *const argv[], const char *log, int timeout_ms)
{
    pid_t pid = tp_spawn(argv, log);
    if (pid <= 0)
        return -1;
    uint64_t deadline = sc_deadline_in((uint64_t)timeout_ms);
    while (tp_alive(pid) && sc_port_now_ms() < deadline)
        nanosleep(&(struct timespec){.tv_nsec = 5000000}, NULL);
    if (tp_alive(pid))
        print_error("%s timed out\n", argv[0]);
    return tp_stop(pid, 1000);
}

static void log_path(char *buf, size_t cap, const char *what)
{
    snprintf(buf, cap, "%s/%s.log", tp_build_dir(), what);
}

static bool files_equal(const char *a, const char *b, uint64_t len)
{
    static uint8_t x[1u << 20], y[1u << 20];
    FILE *fa = fopen(a, "rb"), *fb = fopen(b, "rb");
    bool same = fa && fb;
    for (uint64_t off = 0; same && off < len; off += sizeof(x)) {
        size_t n = fread(x, 1, sizeof(x), fa), m = fread(y, 1, sizeof(y), fb);
        same = n == m && memcmp(x, y, n) == 0;
        if (n == 0)
            break;
    }
    if (fa)
        fclose(fa);
    if (fb)
        fclose(fb);
    return same;
}

enum mode { PLAIN, X509, PSK };

static void uri_for(char *buf, size_t cap, const struct server *s, enum mode m)
{
    if (m == PLAIN)
        snprintf(buf, cap, "nbd://127.0.0.1:%d/disk", s->port);
    else if (m == X509)
        snprintf(buf, cap, "nbds://localhost:%d/disk?tls-certificates=%s", s->port, np_pki("pki"));
    else
        snprintf(buf, cap, "nbds://alice@localhost:%d/disk?tls-psk-file=%s", s->port,
                 np_pki("keys.psk"));
}

static void serve_mode(struct server *s, enum mode m, const char *file)
{
    static char certs[300], psk[300];
    snprintf(certs, sizeof(certs), "--tls-certificates=%s", np_pki("pki"));
    snprintf(psk, sizeof(psk), "--tls-psk-file=%s", np_pki("keys.psk"));
    const char *extra[] = {file, "--export=disk", m == X509 ? certs : m == PSK ? psk : NULL, NULL};
    serve(s, extra);
}

/* nbdinfo, nbdcopy down and up, nbdsh. */
static void libnbd_tools(enum mode m)
{
    tp_need_program("nbdinfo");
    tp_need_program("nbdcopy");
    char work[256], uri[600], lg[256], out[256];
    snprintf(work, sizeof(work), "%s/serve-work-%d.img", tp_build_dir(), (int)m);
    assert_int_equal(np_make_disk(work, DISK_SIZE, SEED + 1), 0);
    struct server s;
    serve_mode(&s, m, work);
    uri_for(uri, sizeof(uri), &s, m);
    log_path(lg, sizeof(lg), "nbdinfo");
    const char *info[] = {"nbdinfo", uri, NULL};
    assert_int_equal(run(info, lg, IO_MS), 0);
    /* Upload the source image, then download it again: both agree. */
    log_path(lg, sizeof(lg), "nbdcopy");
    const char *up[] = {"nbdcopy", src_img, uri, NULL};
    assert_int_equal(run(up, lg, IO_MS), 0);
    snprintf(out, sizeof(out), "%s/serve-down-%d.img", tp_build_dir(), (int)m);
    const char *down[] = {"nbdcopy", uri, out, NULL};
    assert_int_equal(run(down, lg, IO_MS), 0);
    assert_true(files_equal(src_img, out, DISK_SIZE));
    assert_true(files_equal(src_img, work, DISK_SIZE));
    /* nbdsh (python3-libnbd): a write, a flush, a read. */
    tp_need_program("/usr/bin/python3");
    {
        /* libnbd reads tls-* files named in a URI only when allowed to. */
        char script[900];
        snprintf(script, sizeof(script),
                 "h.set_uri_allow_local_file(True); h.connect_uri('%s'); "
                 "h.pwrite(b'sechan'*100, 4096); h.flush(); "
                 "assert h.pread(600, 4096) == b'sechan'*100; "
                 "assert h.get_size() == 8388608",
                 uri);
        const char *sh[] = {"/usr/bin/python3", "-m", "nbd", "-c", script, NULL};
        log_path(lg, sizeof(lg), "nbdsh");
        int r = run(sh, lg, IO_MS);
        if (r != 0)
            print_error("nbdsh failed (%d), see %s\n", r, lg);
        assert_int_equal(r, 0);
    }
    stop(&s);
}

static void test_libnbd_plain(void **st) { (void)st; libnbd_tools(PLAIN); }
static void test_libnbd_x509(void **st) { (void)st; libnbd_tools(X509); }
static void test_libnbd_psk(void **st) { (void)st; libnbd_tools(PSK); }

/* qemu-img convert both ways and qemu-io, through --object tls-creds-*. */
static void qemu_tools(enum mode m)
{
    tp_need_program("qemu-img");
    tp_need_program("qemu-io");
    char work[256], out[256], opts[600], obj[400], lg[256];
    snprintf(work, sizeof(work), "%s/serve-qemu-%d.img", tp_build_dir(), (int)m);
    assert_int_equal(np_make_disk(work, DISK_SIZE, SEED + 2), 0);
    struct server s;
    serve_mode(&s, m, work);
    snprintf(opts, sizeof(opts), "driver=nbd,host=localhost,port=%d,export=disk%s", s.port,
             m == PLAIN ? "" : ",tls-creds=tls0");
    if (m == X509)
        snprintf(obj, sizeof(obj), "tls-creds-x509,id=tls0,dir=%s,endpoint=client", np_pki("pki"));
    else
        snprintf(obj, sizeof(obj), "tls-creds-psk,id=tls0,dir=%s,endpoint=client,username=alice",
                 np_pki("psk"));
    /* Plaintext needs no credentials object; a placeholder secret keeps
     * the argument lists the same shape. */
    if (m == PLAIN)
        snprintf(obj, sizeof(obj), "secret,id=unused,data=x");
    const char *o1 = "--object", *o2 = obj;
    log_path(lg, sizeof(lg), "qemu-img");
    /* upload: -n keeps the target as it is */
    const char *up[] = {"qemu-img", "convert", o1, o2, "-n", "-f", "raw", src_img,
                        "--target-image-opts", opts, NULL};
    assert_int_equal(run(up, lg, IO_MS), 0);
    assert_true(files_equal(src_img, work, DISK_SIZE));
    snprintf(out, sizeof(out), "%s/serve-qemu-down-%d.img", tp_build_dir(), (int)m);
    const char *down[] = {"qemu-img", "convert", o1, o2, "--image-opts", opts, "-O", "raw", out,
                          NULL};
    assert_int_equal(run(down, lg, IO_MS), 0);
    assert_true(files_equal(src_img, out, DISK_SIZE));
    log_path(lg, sizeof(lg), "qemu-io");
    const char *io[] = {"qemu-io", o1, o2, "--image-opts", opts, "-c", "write -P 0xa5 65536 131072",
                        "-c", "read -P 0xa5 65536 131072", "-c", "flush", NULL};
    assert_int_equal(run(io, lg, IO_MS), 0);
    stop(&s);
}

static void test_qemu_plain(void **st) { (void)st; qemu_tools(PLAIN); }
static void test_qemu_x509(void **st) { (void)st; qemu_tools(X509); }
static void test_qemu_psk(void **st) { (void)st; qemu_tools(PSK); }

/* ---- the wire, byte by byte ---- */

struct raw {
    struct sc_sock s;
};

static void raw_open(struct raw *r, const struct server *s)
{
    assert_int_equal(sc_tcp_connect(&r->s, "127.0.0.1", (uint16_t)s->port, sc_deadline_in(IO_MS)), 0);
    uint8_t greet[18];
    assert_int_equal(sc_read_full(&r->s.base, greet, sizeof(greet), NULL, sc_deadline_in(IO_MS)), 0);
    assert_true(be64_get(greet) == SC_NBD_MAGIC && be64_get(greet + 8) == SC_NBD_OPTS_MAGIC);
    uint8_t flags[4];
    be32_put(flags, SC_NBD_FLAG_C_FIXED_NEWSTYLE | SC_NBD_FLAG_C_NO_ZEROES);
    assert_int_equal(sc_write_all(&r->s.base, flags, 4, sc_deadline_in(IO_MS)), 0);
}

static void send_opt(struct raw *r, uint32_t opt, const void *data, uint32_t len,
                     uint32_t claimed)
{
    uint8_t h[16];
    be64_put(h, SC_NBD_OPTS_MAGIC);
    be32_put(h + 8, opt);
    be32_put(h + 12, claimed);
    assert_int_equal(sc_write_all(&r->s.base, h, 16, sc_deadline_in(IO_MS)), 0);
    if (len)
        assert_int_equal(sc_write_all(&r->s.base, data, len, sc_deadline_in(IO_MS)), 0);
}

/* Read one option reply; returns its type (payload skipped). */
static uint32_t read_reply(struct raw *r, uint32_t opt)
{
    uint8_t h[20], skipbuf[9000];
    assert_int_equal(sc_read_full(&r->s.base, h, 20, NULL, sc_deadline_in(IO_MS)), 0);
    assert_true(be64_get(h) == SC_NBD_REP_MAGIC);
    assert_int_equal(be32_get(h + 8), opt);
    uint32_t len = be32_get(h + 16);
    assert_true(len <= sizeof(skipbuf));
    if (len)
        assert_int_equal(sc_read_full(&r->s.base, skipbuf, len, NULL, sc_deadline_in(IO_MS)), 0);
    return be32_get(h + 12);
}

/* STARTTLS on a raw connection, then our TLS client over it (X.509). */
static void raw_starttls(struct raw *r, struct sc_tls_creds *creds, struct sc_tls *tls)
{
    send_opt(r, SC_NBD_OPT_STARTTLS, NULL, 0, 0);
    assert_int_equal(read_reply(r, SC_NBD_OPT_STARTTLS), SC_NBD_REP_ACK);
    assert_int_equal(sc_tls_creds_init(creds), 0);
    assert_int_equal(sc_tls_creds_load_x509_dir(creds, np_pki("pki"), SC_TLS_CLIENT), 0);
    struct sc_tls_config cfg = {.endpoint = SC_TLS_CLIENT, .creds = creds, .hostname = "localhost"};
    assert_int_equal(sc_tls_init(tls, &r->s.base, &cfg), 0);
    assert_int_equal(sc_tls_handshake_wait(tls, sc_deadline_in(IO_MS)), 0);
}

static bool closed_soon(struct raw *r, uint64_t ms)
{
    uint8_t b;
    long n = sc_read_some(&r->s.base, &b, 1, sc_deadline_in(ms));
    return n == 0 || n == SC_ERR_RESET;
}

static void tls_server(struct server *s)
{
    static char certs[300];
    snprintf(certs, sizeof(certs), "--tls-certificates=%s", np_pki("pki"));
    const char *extra[] = {"--memory=1M", "--export=disk", certs, NULL};
    serve(s, extra);
}

static void test_tls_required_gate(void **st)
{
    (void)st;
    struct server s;
    tls_server(&s);
    struct raw r;
    raw_open(&r, &s);
    /* Every option but STARTTLS is refused, and its payload consumed first:
     * the next option is read in sync. */
    send_opt(&r, SC_NBD_OPT_LIST, NULL, 0, 0);
    assert_int_equal(read_reply(&r, SC_NBD_OPT_LIST), SC_NBD_REP_ERR_TLS_REQD);
    uint8_t go[4 + 4 + 2] = {0, 0, 0, 4, 'd', 'i', 's', 'k', 0, 0};
    send_opt(&r, SC_NBD_OPT_INFO, go, sizeof(go), sizeof(go));
    assert_int_equal(read_reply(&r, SC_NBD_OPT_INFO), SC_NBD_REP_ERR_TLS_REQD);
    send_opt(&r, SC_NBD_OPT_GO, go, sizeof(go), sizeof(go));
    assert_int_equal(read_reply(&r, SC_NBD_OPT_GO), SC_NBD_REP_ERR_TLS_REQD);
    send_opt(&r, SC_NBD_OPT_STRUCTURED_REPLY, NULL, 0, 0);
    assert_int_equal(read_reply(&r, SC_NBD_OPT_STRUCTURED_REPLY), SC_NBD_REP_ERR_TLS_REQD);
    /* EXPORT_NAME has no error reply: the connection closes. */
    send_opt(&r, SC_NBD_OPT_EXPORT_NAME, "disk", 4, 4);
    assert_true(closed_soon(&r, 3000));
    sc_close(&r.s.base);
    /* Our own client without TLS gets the refusal as an error. */
    struct sc_sock sock;
    static struct sc_nbd_conn n;
    assert_int_equal(sc_tcp_connect(&sock, "127.0.0.1", (uint16_t)s.port, sc_deadline_in(IO_MS)), 0);
    struct sc_nbd_client_config cfg = {.export_name = "disk"};
    assert_int_equal(sc_nbd_connect(&n, &sock.base, &cfg, NULL, sc_deadline_in(IO_MS)),
                     SC_ERR_TLS_REQUIRED);
    sc_close(&sock.base);
    stop(&s);
}

static void test_second_starttls_refused(void **st)
{
    (void)st;
    struct server s;
    tls_server(&s);
    struct raw r;
    raw_open(&r, &s);
    static struct sc_tls_creds creds;
    static struct sc_tls tls;
    raw_starttls(&r, &creds, &tls);
    /* Inside TLS: a second STARTTLS is refused, the session goes on. */
    uint8_t h[16];
    be64_put(h, SC_NBD_OPTS_MAGIC);
    be32_put(h + 8, SC_NBD_OPT_STARTTLS);
    be32_put(h + 12, 0);
    assert_int_equal(sc_write_all(&tls.base, h, 16, sc_deadline_in(IO_MS)), 0);
    uint8_t rep[20];
    assert_int_equal(sc_read_full(&tls.base, rep, 20, NULL, sc_deadline_in(IO_MS)), 0);
    assert_int_equal(be32_get(rep + 12), SC_NBD_REP_ERR_INVALID);
    sc_close(&tls.base);
    sc_close(&r.s.base);
    sc_tls_creds_free(&creds);
    stop(&s);
}

/* Structured replies negotiated in clear do not survive STARTTLS (nbdkit
 * CVE-2021-3716, server side): after the upgrade a read gets a simple reply. */
static void test_plaintext_state_forgotten(void **st)
{
    (void)st;
    struct server s;
    static char certs[300];
    snprintf(certs, sizeof(certs), "--tls-certificates=%s", np_pki("pki"));
    const char *extra[] = {"--memory=1M", "--export=disk", "--tls=on", certs, NULL};
    serve(&s, extra);
    struct raw r;
    raw_open(&r, &s);
    send_opt(&r, SC_NBD_OPT_STRUCTURED_REPLY, NULL, 0, 0);
    assert_int_equal(read_reply(&r, SC_NBD_OPT_STRUCTURED_REPLY), SC_NBD_REP_ACK);
    static struct sc_tls_creds creds;
    static struct sc_tls tls;
    raw_starttls(&r, &creds, &tls);
    /* GO under TLS, no new STRUCTURED_REPLY. */
    uint8_t go[16 + 10];
    be64_put(go, SC_NBD_OPTS_MAGIC);
    be32_put(go + 8, SC_NBD_OPT_GO);
    be32_put(go + 12, 10);
    uint8_t body[10] = {0, 0, 0, 4, 'd', 'i', 's', 'k', 0, 0};
    memcpy(go + 16, body, sizeof(body));
    assert_int_equal(sc_write_all(&tls.base, go, sizeof(go), sc_deadline_in(IO_MS)), 0);
    for (;;) {
        uint8_t h[20], pl[64];
        assert_int_equal(sc_read_full(&tls.base, h, 20, NULL, sc_deadline_in(IO_MS)), 0);
        uint32_t len = be32_get(h + 16);
        assert_true(len <= sizeof(pl));
        if (len)
            assert_int_equal(sc_read_full(&tls.base, pl, len, NULL, sc_deadline_in(IO_MS)), 0);
        if (be32_get(h + 12) == SC_NBD_REP_ACK)
            break;
        assert_int_equal(be32_get(h + 12), SC_NBD_REP_INFO);
    }
    uint8_t req[28];
    be32_put(req, SC_NBD_REQUEST_MAGIC);
    be16_put(req + 4, 0);
    be16_put(req + 6, SC_NBD_CMD_READ);
    be64_put(req + 8, 42);
    be64_put(req + 16, 0);
    be32_put(req + 24, 512);
    assert_int_equal(sc_write_all(&tls.base, req, sizeof(req), sc_deadline_in(IO_MS)), 0);
    uint8_t rep[16];
    assert_int_equal(sc_read_full(&tls.base, rep, 16, NULL, sc_deadline_in(IO_MS)), 0);
    assert_int_equal(be32_get(rep), SC_NBD_SIMPLE_REPLY_MAGIC);
    assert_int_equal(be64_get(rep + 8), 42);
    sc_close(&tls.base);
    sc_close(&r.s.base);
    sc_tls_creds_free(&creds);
    stop(&s);
}

static void plain_server(struct server *s, const char *const more[])
{
    const char *extra[8] = {"--memory=1M", "--export=disk"};
    size_t n = 2;
    for (size_t i = 0; more && more[i]; i++)
        extra[n++] = more[i];
    extra[n] = NULL;
    serve(s, extra);
}

/* Hostile option payloads: a 4 GiB length is never read (QEMU
 * CVE-2017-15119); a name length of 0xffffffff and a 4096-byte name are
 * answered, not trusted (nbd-server CVE-2022-26495, QEMU CVE-2017-15118,
 * CVE-2020-10761); a payload above the buffer is drained and refused. */
static void test_hostile_option_payloads(void **st)
{
    (void)st;
    struct server s;
    plain_server(&s, NULL);
    struct raw r;
    raw_open(&r, &s);
    uint8_t bad[10] = {0xff, 0xff, 0xff, 0xff, 'd', 'i', 's', 'k', 0, 0};
    send_opt(&r, SC_NBD_OPT_GO, bad, sizeof(bad), sizeof(bad));
    assert_int_equal(read_reply(&r, SC_NBD_OPT_GO), SC_NBD_REP_ERR_INVALID);
    static uint8_t longname[4 + 4096 + 2];
    be32_put(longname, 4096);
    memset(longname + 4, 'n', 4096);
    send_opt(&r, SC_NBD_OPT_GO, longname, sizeof(longname), sizeof(longname));
    assert_int_equal(read_reply(&r, SC_NBD_OPT_GO), SC_NBD_REP_ERR_UNKNOWN);
    static uint8_t big[20000];
    send_opt(&r, SC_NBD_OPT_GO, big, sizeof(big), sizeof(big));
    assert_int_equal(read_reply(&r, SC_NBD_OPT_GO), SC_NBD_REP_ERR_TOO_BIG);
    /* Still in sync after all that. */
    send_opt(&r, SC_NBD_OPT_LIST, NULL, 0, 0);
    assert_int_equal(read_reply(&r, SC_NBD_OPT_LIST), SC_NBD_REP_SERVER);
    assert_int_equal(read_reply(&r, SC_NBD_OPT_LIST), SC_NBD_REP_ACK);
    uint64_t t0 = sc_port_now_ms();
    send_opt(&r, SC_NBD_OPT_GO, NULL, 0, 0xffffffffu);
    assert_true(closed_soon(&r, 3000));
    assert_true(sc_port_now_ms() - t0 < 3000);
    sc_close(&r.s.base);
    stop(&s);
}

/* The pool is fixed, and a client that idles in the handshake is dropped
 * (QEMU CVE-2024-7409). */
static void test_pool_and_handshake_deadline(void **st)
{
    (void)st;
    struct server s;
    const char *more[] = {"--max-clients=2", "--handshake-timeout=1", NULL};
    plain_server(&s, more);
    struct raw a, b, c;
    raw_open(&a, &s);
    raw_open(&b, &s);
    /* The third finds no room: closed at once, before any greeting. */
    assert_int_equal(sc_tcp_connect(&c.s, "127.0.0.1", (uint16_t)s.port, sc_deadline_in(IO_MS)), 0);
    assert_true(closed_soon(&c, 2000));
    sc_close(&c.s.base);
    /* The two idle ones are dropped after the handshake timeout. */
    uint64_t t0 = sc_port_now_ms();
    assert_true(closed_soon(&a, 4000));
    assert_true(closed_soon(&b, 4000));
    uint64_t waited = sc_port_now_ms() - t0;
    printf("# idle clients dropped after %llu ms\n", (unsigned long long)waited);
    assert_true(waited >= 700 && waited < 4000);
    sc_close(&a.s.base);
    sc_close(&b.s.base);
    /* With the slots free again a real client gets in. */
    char lg[256], uri[128];
    snprintf(uri, sizeof(uri), "nbd://127.0.0.1:%d/disk", s.port);
    log_path(lg, sizeof(lg), "pool-info");
    char exe[256];
    snprintf(exe, sizeof(exe), "%s/sechan-nbd", tp_bin_dir());
    const char *info[] = {exe, "info", uri, NULL};
    assert_int_equal(run(info, lg, IO_MS), 0);
    stop(&s);
}

/* Several clients at once, each with its own session. */
static void test_concurrent_clients(void **st)
{
    (void)st;
    struct server s;
    const char *more[] = {"--max-clients=4", NULL};
    plain_server(&s, more);
    static struct sc_sock socks[3];
    static struct sc_nbd_conn conns[3];
    struct sc_nbd_client_config cfg = {.export_name = "disk"};
    for (int i = 0; i < 3; i++) {
        assert_int_equal(sc_tcp_connect(&socks[i], "127.0.0.1", (uint16_t)s.port,
                                        sc_deadline_in(IO_MS)), 0);
        assert_int_equal(sc_nbd_connect(&conns[i], &socks[i].base, &cfg, NULL,
                                        sc_deadline_in(IO_MS)), 0);
    }
    uint8_t w[4096], rd[4096];
    for (int round = 0; round < 4; round++) {
        for (int i = 0; i < 3; i++) {
            memset(w, 'a' + i + round, sizeof(w));
            uint64_t off = (uint64_t)(i * 8 + round) * 4096;
            assert_int_equal(sc_nbd_pwrite(&conns[i], w, sizeof(w), off, 0, sc_deadline_in(IO_MS)), 0);
            assert_int_equal(sc_nbd_pread(&conns[(i + 1) % 3], rd, sizeof(rd), off,
                                          sc_deadline_in(IO_MS)), 0);
            assert_memory_equal(w, rd, sizeof(w));
        }
    }
    for (int i = 0; i < 3; i++) {
        assert_int_equal(sc_nbd_close(&conns[i], sc_deadline_in(IO_MS)), 0);
        sc_close(&socks[i].base);
    }
    stop(&s);
}

/* A copy that meets an I/O error says so and fails (libnbd CVE-2022-0485). */
static void test_copy_reports_io_error(void **st)
{
    (void)st;
    tp_need_program("nbdkit");
    struct np_peer p;
    struct np_opts o = {.server = NP_NBDKIT_MEMORY, .mem_size = 4u << 20,
                        .extra = {"--filter=error", "error-pread=EIO", "error-pread-rate=100%"}};
    assert_int_equal(np_start(&p, &o), 0);
    char uri[128], out[256], lg[256], exe[256];
    snprintf(uri, sizeof(uri), "nbd://127.0.0.1:%d/", p.port);
    snprintf(out, sizeof(out), "%s/copy-eio.img", tp_build_dir());
    snprintf(exe, sizeof(exe), "%s/sechan-nbd", tp_bin_dir());
    log_path(lg, sizeof(lg), "copy-eio");
    unlink(lg);
    const char *cp[] = {exe, "copy", "--no-progress", uri, out, NULL};
    int r = run(cp, lg, IO_MS);
    char text[512] = "";
    long n = sc_port_read_file(lg, text, sizeof(text) - 1);
    text[n > 0 ? n : 0] = '\0';
    printf("# exit %d: %s", r, text);
    assert_int_equal(r, 6);
    assert_non_null(strstr(text, "failed"));
    np_stop(&p);
}

/* sechan-nbd's own error exits. */
static void test_cli_errors(void **st)
{
    (void)st;
    char exe[256], lg[256];
    snprintf(exe, sizeof(exe), "%s/sechan-nbd", tp_bin_dir());
    log_path(lg, sizeof(lg), "cli-errors");
    const char *bad_uri[] = {exe, "info", "nbd://host:notaport/x", NULL};
    assert_int_equal(run(bad_uri, lg, IO_MS), 1);
    const char *bad_scheme[] = {exe, "copy", "http://x/", "-", NULL};
    assert_int_equal(run(bad_scheme, lg, IO_MS), 1);
    int port = tp_free_port();
    char uri[64];
    snprintf(uri, sizeof(uri), "nbd://127.0.0.1:%d/", port);
    const char *refused[] = {exe, "info", uri, NULL};
    assert_int_equal(run(refused, lg, IO_MS), 2);
    const char *nocreds[] = {exe, "info", "nbds://127.0.0.1:1/x", NULL};
    assert_int_equal(run(nocreds, lg, IO_MS), 3);
    const char *nofile[] = {exe, "serve", "/nonexistent.img", NULL};
    assert_int_equal(run(nofile, lg, IO_MS), 1);
}

static int setup(void **st)
{
    (void)st;
    snprintf(src_img, sizeof(src_img), "%s/serve-src.img", tp_build_dir());
    return np_make_disk(src_img, DISK_SIZE, SEED);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_libnbd_plain, tp_stop_all_teardown),
        cmocka_unit_test_teardown(test_libnbd_x509, tp_stop_all_teardown),
        cmocka_unit_test_teardown(test_libnbd_psk, tp_stop_all_teardown),
        cmocka_unit_test_teardown(test_qemu_plain, tp_stop_all_teardown),
        cmocka_unit_test_teardown(test_qemu_x509, tp_stop_all_teardown),
        cmocka_unit_test_teardown(test_qemu_psk, tp_stop_all_teardown),
        cmocka_unit_test_teardown(test_tls_required_gate, tp_stop_all_teardown),
        cmocka_unit_test_teardown(test_second_starttls_refused, tp_stop_all_teardown),
        cmocka_unit_test_teardown(test_plaintext_state_forgotten, tp_stop_all_teardown),
        cmocka_unit_test_teardown(test_hostile_option_payloads, tp_stop_all_teardown),
        cmocka_unit_test_teardown(test_pool_and_handshake_deadline, tp_stop_all_teardown),
        cmocka_unit_test_teardown(test_concurrent_clients, tp_stop_all_teardown),
        cmocka_unit_test_teardown(test_copy_reports_io_error, tp_stop_all_teardown),
        cmocka_unit_test_teardown(test_cli_errors, tp_stop_all_teardown),
    };
    return cmocka_run_group_tests_name("interop_nbd_server", tests, setup, NULL);
}
