/* Our NBD client against hostile peers: a man in the middle in front of a real qemu-nbd with
 * TLS (STARTTLS refused, stripped, plaintext injected after its ACK, an option injected before
 * it, an oldstyle greeting), and a scripted fake server (nbdfake.h) that lies in every way the
 * NBD CVEs of libnbd and nbdkit taught us: refusals with payloads, option replies of gigabytes,
 * export sizes above 2^63, data and holes outside the read, bad block-status extents, cookies
 * nobody asked for, bad magic, a death mid-reply, garbage instead of TLS.
 *
 * Every case runs under a deadline and must fail closed with its own error code, without
 * touching memory it was not given and, when TLS is required, without ever sending the export
 * name in plaintext.  Each prints the client's message as "# case: CODE: message". */
#define _POSIX_C_SOURCE 200809L
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "../util/nbdfake.h"
#include "../util/proc.h"
#include "../util/tlspair.h"
#include "sechan/nbd.h"
#include "sechan/port.h"
#include "sechan/tcp.h"

#define EXPORT_NAME "hostile-secret-export"
#define DISK_SIZE (1u << 20)
#define CASE_MS 10000u     /* the client's deadline for each step */
#define FAST_MS 3000u      /* what "at once" means (a TLS handshake included) */
#define PEER_MS 30000u     /* the fake's and the mitm's own bound */
#define READ_OFF 8192u
#define READ_LEN 4096u
#define GUARD 64u
#define CANARY 0xa5u
#define META_ID 7u
#define BS_LEN 65536u
#define EXPORT_FLAGS (SC_NBD_FLAG_HAS_FLAGS | SC_NBD_FLAG_SEND_FLUSH | SC_NBD_FLAG_SEND_DF)

static struct sc_tls_creds ccreds, screds;
static struct sc_tls_config ctls;
static struct nf_server fake;
static struct nm_mitm mitm;
static struct sc_nbd_conn conn;
static struct sc_sock sock;
static bool conn_used, sock_open;
static uint64_t t_start;
static const char *case_name = "?";

static pid_t qemu_pid = -1;
static uint16_t qemu_port;
static char disk_path[512];

static uint8_t disk_byte(uint64_t off)
{
    return (uint8_t)(off * 131u + (off >> 9) + 7u);
}

static uint64_t elapsed(void)
{
    return sc_port_now_ms() - t_start;
}

/* ------------------------------------------------------------------ client side */

static int client_connect(const char *what, uint16_t port, enum sc_nbd_tls_policy tls,
                          const struct sc_nbd_client_config *base, uint64_t ms)
{
    struct sc_nbd_client_config cfg = {0};
    if (base != NULL)
        cfg = *base;
    cfg.export_name = EXPORT_NAME;
    cfg.tls = tls;
    case_name = what;
    t_start = sc_port_now_ms();
    uint64_t dl = sc_deadline_in(ms);
    assert_int_equal(sc_tcp_connect(&sock, "127.0.0.1", port, dl), 0);
    sock_open = true;
    conn_used = true;
    int r = sc_nbd_connect(&conn, &sock.base, &cfg, tls != SC_NBD_TLS_OFF ? &ctls : NULL, dl);
    printf("# %s: connect: %s%s%s (%llu ms)\n", what, sc_errname(r), r ? ": " : "",
           r ? sc_nbd_conn_errmsg(&conn) : "", (unsigned long long)elapsed());
    return r;
}

static void report(const char *step, int r)
{
    printf("# %s: %s: %s%s%s (%llu ms)\n", case_name, step, sc_errname(r), r ? ": " : "",
           r ? sc_nbd_conn_errmsg(&conn) : "", (unsigned long long)elapsed());
}

static void client_close(void)
{
    if (conn_used)
        sc_nbd_close(&conn, sc_deadline_in(2000));
    conn_used = false;
    if (sock_open)
        sc_close(&sock.base);
    sock_open = false;
}

static bool is_tls_error(int r)
{
    return r <= SC_ERR_TLS && r >= SC_ERR_TLS_MEMORY;
}

/* After nf_server_stop(): the client never named the export in clear. */
static void fake_no_plain_name(void)
{
    assert_false(fake.rec.name_in_plain);
    assert_false(nf_plain_contains(&fake, EXPORT_NAME, strlen(EXPORT_NAME)));
}

static int fake_start(const struct nf_script *sc)
{
    int r = nf_server_start(&fake, sc, PEER_MS);
    assert_int_equal(r, 0);
    return r;
}

static void fake_end(void)
{
    client_close();
    nf_server_stop(&fake);
    if (fake.run.error != 0)
        printf("#   fake: %s\n", fake.run.msg);
}

/* ------------------------------------------------------------------ qemu-nbd and the mitm */

static int qemu_start(void)
{
    if (!tp_have_program("qemu-nbd"))
        return -1;
    snprintf(disk_path, sizeof(disk_path), "%s/hostile-disk.img", tp_build_dir());
    FILE *f = fopen(disk_path, "wb");
    if (f == NULL) {
        printf("# cannot create %s\n", disk_path);
        return -1;
    }
    for (uint64_t off = 0; off < DISK_SIZE; off++)
        fputc(disk_byte(off), f);
    fclose(f);
    char obj[700], log[600];
    snprintf(obj, sizeof(obj), "tls-creds-x509,id=tls0,dir=%s,endpoint=server,verify-peer=no",
             pki_path("pki"));
    snprintf(log, sizeof(log), "%s/hostile-qemu-nbd.log", tp_build_dir());
    for (int attempt = 0; attempt < 3; attempt++) {
        int port = tp_free_port();
        char ps[16];
        snprintf(ps, sizeof(ps), "%d", port);
        const char *argv[] = {"qemu-nbd", "-f", "raw", "-x", EXPORT_NAME, "-b", "127.0.0.1",
                              "-p", ps, "-t", "-e", "8", "--object", obj, "--tls-creds=tls0",
                              disk_path, NULL};
        pid_t pid = tp_spawn(argv, log);
        if (pid > 0 && tp_wait_listen_quiet(pid, port, 10000) == 0) {
            qemu_pid = pid;
            qemu_port = (uint16_t)port;
            return 0;
        }
        if (pid > 0)
            tp_stop(pid, 1000);
    }
    return -1;
}

static void need_qemu(void)
{
    if (qemu_pid > 0)
        return;
    if (tp_in_ci()) {
        print_error("qemu-nbd with TLS could not be started (CI must have it)\n");
        fail();
    }
    printf("# skip: qemu-nbd is not available\n");
    skip();
}

static int mitm_connect(enum nm_mode mode, enum sc_nbd_tls_policy tls,
                        const struct sc_nbd_client_config *base, uint64_t ms)
{
    need_qemu();
    assert_int_equal(nm_start(&mitm, mode, qemu_port, PEER_MS), 0);
    return client_connect(nm_mode_name(mode), nm_port(&mitm), tls, base, ms);
}

static void mitm_end(void)
{
    client_close();
    nm_stop(&mitm);
    printf("#   mitm: client sent %llu plaintext bytes, options [", 
           (unsigned long long)mitm.rec.client_plain_total);
    for (unsigned i = 0; i < mitm.rec.nr_client_opts; i++)
        printf("%s%u", i ? " " : "", mitm.rec.client_opts[i]);
    printf("], forwarded %u%s%s\n", mitm.rec.nr_forwarded, mitm.run.error ? "; " : "",
           mitm.run.error ? mitm.run.msg : "");
}

/* The client said nothing in clear but its flags and NBD_OPT_STARTTLS. */
static void mitm_only_starttls(void)
{
    assert_false(nm_plain_contains(&mitm, EXPORT_NAME, strlen(EXPORT_NAME)));
    assert_int_equal(mitm.rec.nr_client_opts, 1);
    assert_int_equal(mitm.rec.client_opts[0], SC_NBD_OPT_STARTTLS);
}

static void check_disk_read(void)
{
    static uint8_t buf[READ_LEN];
    memset(buf, 0, sizeof(buf));
    int r = sc_nbd_pread(&conn, buf, READ_LEN, READ_OFF, sc_deadline_in(CASE_MS));
    report("pread", r);
    assert_int_equal(r, 0);
    for (uint32_t i = 0; i < READ_LEN; i++)
        assert_int_equal(buf[i], disk_byte(READ_OFF + i));
}

static void test_mitm_baseline_relay(void **state)
{
    (void)state;
    int r = mitm_connect(NM_RELAY, SC_NBD_TLS_REQUIRE, NULL, CASE_MS);
    assert_int_equal(r, 0);
    const struct sc_nbd_export_info *in = sc_nbd_client_info(&conn.eng);
    assert_true(in->tls);
    assert_true(in->structured_replies);
    assert_int_equal(in->size, DISK_SIZE);
    check_disk_read();
    mitm_end();
    assert_true(mitm.rec.starttls_acked);
    mitm_only_starttls();
}

/* (a) The mitm answers STARTTLS with NBD_REP_ERR_UNSUP: no downgrade. */
static void test_mitm_refuse_starttls(void **state)
{
    (void)state;
    int r = mitm_connect(NM_REFUSE_STARTTLS, SC_NBD_TLS_REQUIRE, NULL, CASE_MS);
    assert_int_equal(r, SC_ERR_TLS_REQUIRED);
    assert_true(elapsed() < FAST_MS);
    mitm_end();
    mitm_only_starttls();
    assert_int_equal(mitm.rec.nr_forwarded, 0);
    assert_int_equal(mitm.rec.client_plain_total, 4 + SC_NBD_OPT_HDR_LEN);
}

/* (b) STARTTLS never reaches the server and no answer comes: the client must not go on in
 * clear after some silence; it waits for its deadline and says so. */
static void test_mitm_strip_starttls(void **state)
{
    (void)state;
    int r = mitm_connect(NM_STRIP_STARTTLS, SC_NBD_TLS_REQUIRE, NULL, 1500);
    assert_int_equal(r, SC_ERR_TIMEOUT);
    assert_true(elapsed() < FAST_MS + 1500);
    mitm_end();
    mitm_only_starttls();
    assert_int_equal(mitm.rec.nr_forwarded, 0);
    assert_int_equal(mitm.rec.client_plain_total, 4 + SC_NBD_OPT_HDR_LEN);
}

/* (c) A forged option reply rides right behind the real STARTTLS ACK, in the same segment:
 * the engine must not have consumed it, so it reaches TLS, which must reject it. */
static void test_mitm_inject_after_ack(void **state)
{
    (void)state;
    int r = mitm_connect(NM_INJECT_AFTER_ACK, SC_NBD_TLS_REQUIRE, NULL, CASE_MS);
    assert_true(is_tls_error(r));
    assert_true(elapsed() < FAST_MS);
    mitm_end();
    assert_true(mitm.rec.starttls_acked);
    assert_true(mitm.rec.injected);
    mitm_only_starttls();
}

/* (d) nbdkit CVE-2021-3716: an NBD_OPT_STRUCTURED_REPLY exchange before STARTTLS. Whatever
 * the server made of it, what counts is what the client negotiated itself under TLS. */
static void test_mitm_inject_structured(void **state)
{
    (void)state;
    int r = mitm_connect(NM_INJECT_STRUCTURED, SC_NBD_TLS_REQUIRE, NULL, CASE_MS);
    assert_int_equal(r, 0);
    const struct sc_nbd_export_info *in = sc_nbd_client_info(&conn.eng);
    assert_true(in->tls);
    assert_true(in->structured_replies);
    check_disk_read();
    mitm_end();
    printf("#   upstream answered the injected option with reply type 0x%08x\n",
           mitm.rec.injected_reply_type);
    assert_true(mitm.rec.injected);
    mitm_only_starttls();
}

/* (d) again, with a client that does not want structured replies: after TLS they must be off,
 * and a read must work with simple replies (a server that kept the plaintext negotiation would
 * send structured replies, which the client must refuse as SC_ERR_PROTO, never misparse). */
static void test_mitm_inject_structured_unwanted(void **state)
{
    (void)state;
    struct sc_nbd_client_config cfg = {.no_structured_replies = true};
    int r = mitm_connect(NM_INJECT_STRUCTURED, SC_NBD_TLS_REQUIRE, &cfg, CASE_MS);
    assert_int_equal(r, 0);
    const struct sc_nbd_export_info *in = sc_nbd_client_info(&conn.eng);
    assert_true(in->tls);
    assert_false(in->structured_replies);
    static uint8_t buf[READ_LEN];
    r = sc_nbd_pread(&conn, buf, READ_LEN, READ_OFF, sc_deadline_in(CASE_MS));
    report("pread", r);
    assert_true(r == 0 || r == SC_ERR_PROTO);
    for (uint32_t i = 0; r == 0 && i < READ_LEN; i++)
        assert_int_equal(buf[i], disk_byte(READ_OFF + i));
    mitm_end();
    mitm_only_starttls();
}

/* (e) libnbd CVE-2019-14842: an oldstyle greeting cannot do TLS. */
static void test_mitm_oldstyle(void **state)
{
    (void)state;
    int r = mitm_connect(NM_OLDSTYLE, SC_NBD_TLS_REQUIRE, NULL, CASE_MS);
    assert_int_equal(r, SC_ERR_TLS_REQUIRED);
    assert_true(elapsed() < FAST_MS);
    mitm_end();
    assert_int_equal(mitm.rec.client_plain_total, 0);
    /* Without TLS the client still refuses oldstyle, with its own code. */
    r = mitm_connect(NM_OLDSTYLE, SC_NBD_TLS_OFF, NULL, CASE_MS);
    assert_int_equal(r, SC_ERR_UNSUPPORTED);
    mitm_end();
    assert_int_equal(mitm.rec.client_plain_total, 0);
}

/* ------------------------------------------------------------------ option phase fakes */

static const char refusal_text[] = "TLS is disabled by local policy";

/* A refusal of STARTTLS with a message: drained, then fatal. */
static void test_starttls_refused_with_payload(void **state)
{
    (void)state;
    struct nf_script sc;
    nf_script_init(&sc);
    nf_reply_add(nf_answer_add(&sc, SC_NBD_OPT_STARTTLS, NF_THEN_NEXT), SC_NBD_REP_ERR_POLICY,
                 refusal_text, (uint32_t)strlen(refusal_text));
    fake_start(&sc);
    int r = client_connect("starttls-refused-payload", nf_server_port(&fake),
                           SC_NBD_TLS_REQUIRE, NULL, CASE_MS);
    assert_int_equal(r, SC_ERR_TLS_REQUIRED);
    assert_non_null(strstr(sc_nbd_conn_errmsg(&conn), refusal_text));
    fake_end();
    fake_no_plain_name();
    assert_int_equal(fake.rec.nr_opts, 1);
    assert_int_equal(fake.rec.plain_total, 4 + SC_NBD_OPT_HDR_LEN);
}

/* The same refusal with a long payload, to a client for which TLS is optional: it must drain
 * every byte and go on in step (the next options and GO parse). */
static void test_starttls_refused_payload_no_desync(void **state)
{
    (void)state;
    static uint8_t payload[3000];
    memset(payload, 'x', sizeof(payload));
    memcpy(payload, refusal_text, strlen(refusal_text));
    struct nf_script sc;
    nf_script_init(&sc);
    nf_reply_add(nf_answer_add(&sc, SC_NBD_OPT_STARTTLS, NF_THEN_NEXT), SC_NBD_REP_ERR_POLICY,
                 payload, sizeof(payload));
    struct nf_answer *go = nf_answer_add(&sc, SC_NBD_OPT_GO, NF_THEN_TRANSMISSION);
    nf_reply_info_export(go, DISK_SIZE, SC_NBD_FLAG_HAS_FLAGS | SC_NBD_FLAG_READ_ONLY);
    nf_reply_add(go, SC_NBD_REP_ACK, NULL, 0);
    fake_start(&sc);
    int r = client_connect("starttls-refused-optional", nf_server_port(&fake),
                           SC_NBD_TLS_OPTIONAL, NULL, CASE_MS);
    assert_int_equal(r, 0);
    const struct sc_nbd_export_info *in = sc_nbd_client_info(&conn.eng);
    assert_false(in->tls);
    assert_int_equal(in->size, DISK_SIZE);
    static uint8_t buf[READ_LEN];
    r = sc_nbd_pread(&conn, buf, READ_LEN, 0, sc_deadline_in(CASE_MS));
    report("pread", r);
    assert_int_equal(r, 0);
    fake_end();
    assert_int_equal(nf_count_opt(&fake, SC_NBD_OPT_STARTTLS, 0), 1);
    assert_int_equal(nf_count_opt(&fake, SC_NBD_OPT_GO, 0), 1);
    assert_int_equal(fake.rec.nr_reqs, 2);  /* the read, then DISC */
}

/* An option reply header whose length would take forever to read: refused at the header. */
static void opt_reply_too_long(const char *what, uint32_t wire_len, bool under_tls,
                               uint32_t type)
{
    struct nf_script sc;
    nf_script_init(&sc);
    struct nf_answer *a;
    if (under_tls) {
        sc.tls_creds = &screds;
        nf_reply_add(nf_answer_add(&sc, SC_NBD_OPT_STARTTLS, NF_THEN_TLS), SC_NBD_REP_ACK,
                     NULL, 0);
        nf_reply_add(nf_answer_add(&sc, SC_NBD_OPT_STRUCTURED_REPLY, NF_THEN_NEXT),
                     SC_NBD_REP_ACK, NULL, 0);
        a = nf_answer_add(&sc, SC_NBD_OPT_GO, NF_THEN_HANG);
    } else {
        a = nf_answer_add(&sc, SC_NBD_OPT_STARTTLS, NF_THEN_HANG);
    }
    struct nf_reply *rp = nf_reply_add(a, type, "abcd", 4);
    rp->lie_len = true;
    rp->wire_len = wire_len;
    fake_start(&sc);
    int r = client_connect(what, nf_server_port(&fake), SC_NBD_TLS_REQUIRE, NULL, CASE_MS);
    assert_int_equal(r, SC_ERR_TOO_LONG);
    assert_true(elapsed() < FAST_MS);
    fake_end();
    fake_no_plain_name();
}

static void test_opt_reply_len_ffffffff(void **state)
{
    (void)state;
    opt_reply_too_long("opt-reply-0xffffffff", 0xffffffffu, false, SC_NBD_REP_ACK);
}

static void test_opt_reply_len_3gib_under_tls(void **state)
{
    (void)state;
    opt_reply_too_long("opt-reply-3GiB", 0xc0000000u, true, SC_NBD_REP_INFO);
}

static void test_opt_reply_len_just_over(void **state)
{
    (void)state;
    opt_reply_too_long("opt-reply-bound+1", SC_NBD_OPT_REPLY_MAX + 1u, true,
                       SC_NBD_REP_ERR_POLICY);
}

/* libnbd CVE-2023-5215: sizes above 2^63 break signed offsets. */
static void test_export_size_above_2_63(void **state)
{
    (void)state;
    const uint64_t sizes[] = {(uint64_t)1 << 63, ((uint64_t)1 << 63) + 4096u, UINT64_MAX};
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        struct nf_script sc;
        nf_script_init(&sc);
        nf_script_tls_go(&sc, &screds, true, 0, sizes[i], EXPORT_FLAGS);
        fake_start(&sc);
        int r = client_connect("export-size>2^63", nf_server_port(&fake), SC_NBD_TLS_REQUIRE,
                               NULL, CASE_MS);
        assert_int_equal(r, SC_ERR_PROTO);
        fake_end();
        fake_no_plain_name();
    }
    /* The largest legal size is taken. */
    struct nf_script sc;
    nf_script_init(&sc);
    nf_script_tls_go(&sc, &screds, true, 0, (uint64_t)INT64_MAX, EXPORT_FLAGS);
    fake_start(&sc);
    int r = client_connect("export-size=2^63-1", nf_server_port(&fake), SC_NBD_TLS_REQUIRE,
                           NULL, CASE_MS);
    assert_int_equal(r, 0);
    assert_int_equal(sc_nbd_client_info(&conn.eng)->size, (uint64_t)INT64_MAX);
    fake_end();
}

/* The same through the NBD_OPT_EXPORT_NAME fallback (plaintext client, GO unsupported). */
static void test_export_size_above_2_63_export_name(void **state)
{
    (void)state;
    static uint8_t reply[10];
    for (int i = 0; i < 8; i++)
        reply[i] = 0xff;
    reply[8] = 0;
    reply[9] = SC_NBD_FLAG_HAS_FLAGS;
    struct nf_script sc;
    nf_script_init(&sc);
    nf_reply_add(nf_answer_add(&sc, SC_NBD_OPT_GO, NF_THEN_NEXT), SC_NBD_REP_ERR_UNSUP, NULL, 0);
    struct nf_answer *a = nf_answer_add(&sc, SC_NBD_OPT_EXPORT_NAME, NF_THEN_HANG);
    a->raw = reply;
    a->raw_len = sizeof(reply);
    fake_start(&sc);
    int r = client_connect("export-name-size>2^63", nf_server_port(&fake), SC_NBD_TLS_OFF,
                           NULL, CASE_MS);
    assert_int_equal(r, SC_ERR_PROTO);
    fake_end();
    assert_int_equal(nf_count_opt(&fake, SC_NBD_OPT_EXPORT_NAME, 0), 1);
}

static void test_go_without_info_export(void **state)
{
    (void)state;
    struct nf_script sc;
    nf_script_init(&sc);
    sc.tls_creds = &screds;
    nf_reply_add(nf_answer_add(&sc, SC_NBD_OPT_STARTTLS, NF_THEN_TLS), SC_NBD_REP_ACK, NULL, 0);
    nf_reply_add(nf_answer_add(&sc, SC_NBD_OPT_GO, NF_THEN_TRANSMISSION), SC_NBD_REP_ACK, NULL,
                 0);
    fake_start(&sc);
    int r = client_connect("go-without-info-export", nf_server_port(&fake), SC_NBD_TLS_REQUIRE,
                           NULL, CASE_MS);
    assert_int_equal(r, SC_ERR_PROTO);
    fake_end();
    fake_no_plain_name();
    assert_int_equal(nf_count_opt(&fake, SC_NBD_OPT_GO, 1), 1);
    assert_int_equal(fake.rec.nr_reqs, 0);
}

/* STARTTLS acknowledged, then anything but TLS. */
static void test_starttls_ack_then_garbage(void **state)
{
    (void)state;
    static const uint8_t garbage[] = "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n"
                                     "\x00\x03\xe8\x89\x04\x55\x65\xa9 not TLS at all";
    struct nf_script sc;
    nf_script_init(&sc);
    struct nf_answer *a = nf_answer_add(&sc, SC_NBD_OPT_STARTTLS, NF_THEN_HANG);
    nf_reply_add(a, SC_NBD_REP_ACK, NULL, 0);
    a->raw = garbage;
    a->raw_len = sizeof(garbage);
    fake_start(&sc);
    int r = client_connect("starttls-then-garbage", nf_server_port(&fake), SC_NBD_TLS_REQUIRE,
                           NULL, CASE_MS);
    assert_true(is_tls_error(r));
    assert_true(elapsed() < FAST_MS);
    fake_end();
    fake_no_plain_name();
    assert_int_equal(fake.rec.nr_opts, 1);
}

/* STARTTLS acknowledged, then the server is gone before any TLS byte. */
static void test_starttls_ack_then_close(void **state)
{
    (void)state;
    struct nf_script sc;
    nf_script_init(&sc);
    nf_reply_add(nf_answer_add(&sc, SC_NBD_OPT_STARTTLS, NF_THEN_CLOSE), SC_NBD_REP_ACK, NULL,
                 0);
    fake_start(&sc);
    int r = client_connect("starttls-then-close", nf_server_port(&fake), SC_NBD_TLS_REQUIRE,
                           NULL, CASE_MS);
    assert_int_equal(r, SC_ERR_EOF);
    assert_true(elapsed() < FAST_MS);
    fake_end();
    fake_no_plain_name();
}

/* STARTTLS answered with something that is neither an ACK nor an error. */
static void test_starttls_answered_with_info(void **state)
{
    (void)state;
    struct nf_script sc;
    nf_script_init(&sc);
    struct nf_answer *a = nf_answer_add(&sc, SC_NBD_OPT_STARTTLS, NF_THEN_HANG);
    nf_reply_info_export(a, DISK_SIZE, EXPORT_FLAGS);
    nf_reply_add(a, SC_NBD_REP_ACK, NULL, 0);
    fake_start(&sc);
    int r = client_connect("starttls-answered-info", nf_server_port(&fake), SC_NBD_TLS_REQUIRE,
                           NULL, CASE_MS);
    assert_int_equal(r, SC_ERR_PROTO);
    fake_end();
    fake_no_plain_name();
    assert_int_equal(fake.rec.nr_opts, 1);
}

/* Option replies that break the framing: wrong magic, wrong option. */
static void bad_option_reply(const char *what, uint64_t magic, uint32_t opt)
{
    static uint8_t rep[SC_NBD_OPT_REPLY_HDR_LEN];
    for (int i = 0; i < 8; i++)
        rep[i] = (uint8_t)(magic >> (56 - 8 * i));
    rep[8] = rep[9] = rep[10] = 0;
    rep[11] = (uint8_t)opt;
    rep[12] = rep[13] = rep[14] = 0;
    rep[15] = SC_NBD_REP_ACK;
    memset(rep + 16, 0, 4);
    struct nf_script sc;
    nf_script_init(&sc);
    struct nf_answer *a = nf_answer_add(&sc, SC_NBD_OPT_STARTTLS, NF_THEN_HANG);
    a->raw = rep;
    a->raw_len = sizeof(rep);
    fake_start(&sc);
    int r = client_connect(what, nf_server_port(&fake), SC_NBD_TLS_REQUIRE, NULL, CASE_MS);
    assert_int_equal(r, SC_ERR_PROTO);
    fake_end();
    fake_no_plain_name();
}

static void test_option_reply_bad_magic(void **state)
{
    (void)state;
    bad_option_reply("opt-reply-bad-magic", SC_NBD_REP_MAGIC ^ 1u, SC_NBD_OPT_STARTTLS);
}

static void test_option_reply_wrong_option(void **state)
{
    (void)state;
    bad_option_reply("opt-reply-wrong-option", SC_NBD_REP_MAGIC, SC_NBD_OPT_STRUCTURED_REPLY);
}

/* libnbd CVE-2021-20286 family: the server dies in the middle of an option reply. */
static void test_die_mid_option_reply(void **state)
{
    (void)state;
    struct nf_script sc;
    nf_script_init(&sc);
    sc.tls_creds = &screds;
    nf_reply_add(nf_answer_add(&sc, SC_NBD_OPT_STARTTLS, NF_THEN_TLS), SC_NBD_REP_ACK, NULL, 0);
    struct nf_answer *go = nf_answer_add(&sc, SC_NBD_OPT_GO, NF_THEN_CLOSE);
    struct nf_reply *rp = nf_reply_info_export(go, DISK_SIZE, EXPORT_FLAGS);
    rp->lie_len = true;
    rp->wire_len = rp->len;
    rp->len = 5;  /* 5 of 12 bytes, then gone */
    fake_start(&sc);
    int r = client_connect("die-mid-option-reply", nf_server_port(&fake), SC_NBD_TLS_REQUIRE,
                           NULL, CASE_MS);
    assert_int_equal(r, SC_ERR_EOF);
    assert_true(elapsed() < FAST_MS);
    fake_end();
    fake_no_plain_name();
}

/* ------------------------------------------------------------------ transmission fakes */

enum tx_case {
    TX_GOOD_READ,
    TX_DATA_OFF_NEG1, TX_DATA_PAST, TX_DATA_STRADDLE, TX_DATA_BEFORE,
    TX_HOLE_PAST, TX_HOLE_WRAP, TX_HOLE_ZERO, TX_DATA_OVERLAP, TX_READ_SHORT,
    TX_SIMPLE_AFTER_STRUCTURED, TX_DATA_HUGE, TX_DATA_TINY, TX_DATA_DUP_HALF, TX_HOLE_DUP_HALF,
    TX_ERR_CHUNK, TX_ERR_HUGE, TX_ERR_MSG_LONGER, TX_ERR_OFFSET_OUTSIDE,
    TX_BS_GOOD, TX_BS_LAST_LONG, TX_BS_MANY, TX_BS_OVERRUN, TX_BS_SUM_OVERRUN,
    TX_BS_ZERO_FIRST, TX_BS_ZERO_LAST, TX_BS_TWO_CHUNKS, TX_BS_UNKNOWN_CTX, TX_BS_HUGE,
    TX_BS_BAD_LEN, TX_BS_NO_EXTENTS, TX_BS_SIMPLE_OK, TX_BS_REQ_ONE_TWO, TX_BS_REQ_ONE_LONG,
    TX_DIE_HDR, TX_DIE_SIMPLE_DATA, TX_DIE_CHUNK, TX_DIE_BETWEEN_CHUNKS, TX_DIE_BS,
    TX_COOKIE_OTHER_GEN, TX_COOKIE_FREE_SLOT, TX_COOKIE_HIGH, TX_COOKIE_STALE,
    TX_COOKIE_CHUNK_UNKNOWN,
    TX_MAGIC_BAD, TX_MAGIC_STRUCTURED_UNNEGOTIATED
};

static enum tx_case tx_case;
static uint64_t first_cookie;
static unsigned tx_count;

static int send_data(struct nf_server *s, uint16_t flags, uint64_t cookie, uint64_t off,
                     uint64_t disk_off, uint32_t n)
{
    static uint8_t pl[8 + READ_LEN];
    if (n > READ_LEN)
        n = READ_LEN;
    for (int i = 0; i < 8; i++)
        pl[i] = (uint8_t)(off >> (56 - 8 * i));
    for (uint32_t i = 0; i < n; i++)
        pl[8 + i] = disk_byte(disk_off + i);
    return nf_send_chunk(s, flags, SC_NBD_REPLY_TYPE_OFFSET_DATA, cookie, 8 + n, pl, 8 + n);
}

static int send_hole(struct nf_server *s, uint16_t flags, uint64_t cookie, uint64_t off,
                     uint32_t n)
{
    uint8_t pl[12];
    for (int i = 0; i < 8; i++)
        pl[i] = (uint8_t)(off >> (56 - 8 * i));
    for (int i = 0; i < 4; i++)
        pl[8 + i] = (uint8_t)(n >> (24 - 8 * i));
    return nf_send_chunk(s, flags, SC_NBD_REPLY_TYPE_OFFSET_HOLE, cookie, 12, pl, 12);
}

/* A block status chunk for context ctx: n extents (length, flags) pairs. */
static int send_bs(struct nf_server *s, uint16_t flags, uint64_t cookie, uint32_t ctx,
                   const uint32_t *ext, unsigned n)
{
    uint8_t pl[4 + 8 * 16];
    if (n > 16)
        n = 16;
    uint32_t words[1 + 2 * 16];
    words[0] = ctx;
    memcpy(words + 1, ext, 8u * n);
    for (unsigned w = 0; w < 1 + 2 * n; w++)
        for (int i = 0; i < 4; i++)
            pl[4 * w + (unsigned)i] = (uint8_t)(words[w] >> (24 - 8 * i));
    return nf_send_chunk(s, flags, SC_NBD_REPLY_TYPE_BLOCK_STATUS, cookie, 4 + 8 * n, pl,
                         4 + 8 * n);
}

static const uint8_t fill16[16] = {0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a,
                                   0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a};

static int on_tx(struct nf_server *s, const struct nf_request *q, void *arg)
{
    (void)arg;
    const uint16_t D = SC_NBD_REPLY_FLAG_DONE;
    const uint64_t ck = q->cookie, off = q->offset;
    const uint32_t len = q->length;
    tx_count++;
    switch (tx_case) {
    case TX_GOOD_READ:
        send_data(s, D, ck, off, off, len);
        return NF_REQ_CONTINUE;
    case TX_DATA_OFF_NEG1:
        send_data(s, D, ck, UINT64_MAX, 0, 16);
        return NF_REQ_HANG;
    case TX_DATA_PAST:
        send_data(s, D, ck, off + len, 0, 16);
        return NF_REQ_HANG;
    case TX_DATA_STRADDLE:
        send_data(s, D, ck, off + len - 8, 0, 16);
        return NF_REQ_HANG;
    case TX_DATA_BEFORE:
        send_data(s, D, ck, off - 16, 0, 16);
        return NF_REQ_HANG;
    case TX_HOLE_PAST:
        send_hole(s, D, ck, off + len - 100, 200);
        return NF_REQ_HANG;
    case TX_HOLE_WRAP:
        send_hole(s, D, ck, UINT64_MAX - 10, len);
        return NF_REQ_HANG;
    case TX_HOLE_ZERO:
        send_hole(s, D, ck, off, 0);
        return NF_REQ_HANG;
    case TX_DATA_OVERLAP:
        send_data(s, 0, ck, off, off, len);
        send_data(s, D, ck, off, 0, 16);
        return NF_REQ_HANG;
    case TX_DATA_DUP_HALF:
        /* the first half twice: as many bytes as asked, the second half never written */
        send_data(s, 0, ck, off, off, len / 2);
        send_data(s, D, ck, off, off, len / 2);
        return NF_REQ_HANG;
    case TX_HOLE_DUP_HALF:
        send_hole(s, 0, ck, off, len / 2);
        send_hole(s, D, ck, off, len / 2);
        return NF_REQ_HANG;
    case TX_READ_SHORT:
        send_data(s, D, ck, off, off, len / 2);
        return NF_REQ_HANG;
    case TX_SIMPLE_AFTER_STRUCTURED:
        nf_send_simple(s, ck, 0, fill16, sizeof(fill16));
        return NF_REQ_HANG;
    case TX_DATA_HUGE: {
        uint8_t pl[8];
        for (int i = 0; i < 8; i++)
            pl[i] = (uint8_t)(off >> (56 - 8 * i));
        nf_send_chunk(s, D, SC_NBD_REPLY_TYPE_OFFSET_DATA, ck, 0xffffffffu, pl, sizeof(pl));
        return NF_REQ_HANG;
    }
    case TX_DATA_TINY: {
        uint8_t pl[8];
        for (int i = 0; i < 8; i++)
            pl[i] = (uint8_t)(off >> (56 - 8 * i));
        nf_send_chunk(s, D, SC_NBD_REPLY_TYPE_OFFSET_DATA, ck, 8, pl, sizeof(pl));
        return NF_REQ_HANG;
    }
    case TX_ERR_CHUNK: {
        static const uint8_t pl[] = {0, 0, 0, SC_NBD_EIO, 0, 12, 'd', 'i', 's', 'k', ' ', 'o',
                                     'n', ' ', 'f', 'i', 'r', 'e'};
        nf_send_chunk(s, D, SC_NBD_REPLY_TYPE_ERROR, ck, sizeof(pl), pl, sizeof(pl));
        return NF_REQ_CONTINUE;
    }
    case TX_ERR_HUGE: {
        static const uint8_t pl[] = {0, 0, 0, SC_NBD_EIO, 0, 10};
        nf_send_chunk(s, D, SC_NBD_REPLY_TYPE_ERROR, ck, 0xffffffffu, pl, sizeof(pl));
        return NF_REQ_HANG;
    }
    case TX_ERR_MSG_LONGER: {
        static const uint8_t pl[] = {0, 0, 0, SC_NBD_EIO, 0, 100, 'o', 'o', 'p', 's'};
        nf_send_chunk(s, D, SC_NBD_REPLY_TYPE_ERROR, ck, sizeof(pl), pl, sizeof(pl));
        return NF_REQ_HANG;
    }
    case TX_ERR_OFFSET_OUTSIDE: {
        uint8_t pl[6 + 8] = {0, 0, 0, SC_NBD_EIO, 0, 0};
        uint64_t bad = off + len + 4096u;
        for (int i = 0; i < 8; i++)
            pl[6 + i] = (uint8_t)(bad >> (56 - 8 * i));
        nf_send_chunk(s, D, SC_NBD_REPLY_TYPE_ERROR_OFFSET, ck, sizeof(pl), pl, sizeof(pl));
        return NF_REQ_HANG;
    }
    case TX_BS_GOOD: {
        const uint32_t e[] = {16384, 0, BS_LEN - 16384, SC_NBD_STATE_HOLE | SC_NBD_STATE_ZERO};
        send_bs(s, D, ck, META_ID, e, 2);
        return NF_REQ_CONTINUE;
    }
    case TX_BS_LAST_LONG: {
        const uint32_t e[] = {16384, 0, DISK_SIZE, SC_NBD_STATE_HOLE};
        send_bs(s, D, ck, META_ID, e, 2);
        return NF_REQ_CONTINUE;
    }
    case TX_BS_MANY: {
        uint32_t e[20];
        for (unsigned i = 0; i < 10; i++) {
            e[2 * i] = i < 9 ? 6144u : BS_LEN - 9u * 6144u;
            e[2 * i + 1] = i & 1u;
        }
        send_bs(s, D, ck, META_ID, e, 10);
        return NF_REQ_CONTINUE;
    }
    case TX_BS_OVERRUN: {
        const uint32_t e[] = {2 * BS_LEN, 0, 4096, 0};
        send_bs(s, D, ck, META_ID, e, 2);
        return NF_REQ_HANG;
    }
    case TX_BS_SUM_OVERRUN: {
        const uint32_t e[] = {BS_LEN / 2, 0, BS_LEN / 2, 1, 4096, 0};
        send_bs(s, D, ck, META_ID, e, 3);
        return NF_REQ_HANG;
    }
    case TX_BS_ZERO_FIRST: {
        const uint32_t e[] = {0, 0, BS_LEN, 0};
        send_bs(s, D, ck, META_ID, e, 2);
        return NF_REQ_HANG;
    }
    case TX_BS_ZERO_LAST: {
        const uint32_t e[] = {4096, 0, 0, 0};
        send_bs(s, D, ck, META_ID, e, 2);
        return NF_REQ_HANG;
    }
    case TX_BS_TWO_CHUNKS: {
        const uint32_t e[] = {BS_LEN, 0};
        send_bs(s, 0, ck, META_ID, e, 1);
        send_bs(s, D, ck, META_ID, e, 1);
        return NF_REQ_HANG;
    }
    case TX_BS_UNKNOWN_CTX: {
        const uint32_t e[] = {BS_LEN, 0};
        send_bs(s, D, ck, META_ID + 2, e, 1);
        return NF_REQ_HANG;
    }
    case TX_BS_HUGE: {
        const uint8_t ctx[4] = {0, 0, 0, META_ID};
        nf_send_chunk(s, D, SC_NBD_REPLY_TYPE_BLOCK_STATUS, ck, 0xfffffffcu, ctx, 4);
        return NF_REQ_HANG;
    }
    case TX_BS_BAD_LEN: {
        const uint8_t pl[11] = {0, 0, 0, META_ID, 0, 1, 0, 0, 0, 0, 0};
        nf_send_chunk(s, D, SC_NBD_REPLY_TYPE_BLOCK_STATUS, ck, sizeof(pl), pl, sizeof(pl));
        return NF_REQ_HANG;
    }
    case TX_BS_NO_EXTENTS:
        nf_send_chunk(s, D, SC_NBD_REPLY_TYPE_NONE, ck, 0, NULL, 0);
        return NF_REQ_HANG;
    case TX_BS_SIMPLE_OK:
        nf_send_simple(s, ck, 0, NULL, 0);
        return NF_REQ_HANG;
    case TX_BS_REQ_ONE_TWO: {
        const uint32_t e[] = {8192, 0, 8192, 1};
        send_bs(s, D, ck, META_ID, e, 2);
        return NF_REQ_HANG;
    }
    case TX_BS_REQ_ONE_LONG: {
        const uint32_t e[] = {2 * BS_LEN, 0};
        send_bs(s, D, ck, META_ID, e, 1);
        return NF_REQ_HANG;
    }
    case TX_DIE_HDR: {
        uint8_t h[10] = {0x67, 0x44, 0x66, 0x98, 0, 0, 0, 0, 0, 0};
        nf_send(s, h, sizeof(h));
        return NF_REQ_CLOSE;
    }
    case TX_DIE_SIMPLE_DATA:
        nf_send_simple(s, ck, 0, fill16, sizeof(fill16));
        return NF_REQ_CLOSE;
    case TX_DIE_CHUNK: {
        uint8_t pl[8 + 100];
        memset(pl, 0x5a, sizeof(pl));
        for (int i = 0; i < 8; i++)
            pl[i] = (uint8_t)(off >> (56 - 8 * i));
        nf_send_chunk(s, D, SC_NBD_REPLY_TYPE_OFFSET_DATA, ck, 8 + len, pl, sizeof(pl));
        return NF_REQ_CLOSE;
    }
    case TX_DIE_BETWEEN_CHUNKS:
        send_data(s, 0, ck, off, off, len / 2);
        return NF_REQ_CLOSE;
    case TX_DIE_BS: {
        const uint8_t pl[12] = {0, 0, 0, META_ID, 0, 0, 0x10, 0, 0, 0, 0, 0};
        nf_send_chunk(s, D, SC_NBD_REPLY_TYPE_BLOCK_STATUS, ck, 4 + 16, pl, sizeof(pl));
        return NF_REQ_CLOSE;
    }
    case TX_COOKIE_OTHER_GEN:
        nf_send_simple(s, ck + 0x100u, 0, NULL, 0);
        return NF_REQ_HANG;
    case TX_COOKIE_FREE_SLOT:
        nf_send_simple(s, (ck & ~(uint64_t)0xff) | 5u, 0, NULL, 0);
        return NF_REQ_HANG;
    case TX_COOKIE_HIGH:
        nf_send_simple(s, UINT64_MAX, 0, NULL, 0);
        return NF_REQ_HANG;
    case TX_COOKIE_STALE:
        if (tx_count == 1) {
            first_cookie = ck;
            nf_send_simple(s, ck, 0, NULL, 0);
            return NF_REQ_CONTINUE;
        }
        nf_send_simple(s, first_cookie, 0, NULL, 0);
        return NF_REQ_HANG;
    case TX_COOKIE_CHUNK_UNKNOWN:
        nf_send_chunk(s, D, SC_NBD_REPLY_TYPE_NONE, ck ^ 0x5500u, 0, NULL, 0);
        return NF_REQ_HANG;
    case TX_MAGIC_BAD: {
        uint8_t h[16] = {0xde, 0xad, 0xbe, 0xef};
        for (int i = 0; i < 8; i++)
            h[8 + i] = (uint8_t)(ck >> (56 - 8 * i));
        nf_send(s, h, sizeof(h));
        return NF_REQ_HANG;
    }
    case TX_MAGIC_STRUCTURED_UNNEGOTIATED:
        nf_send_chunk(s, D, SC_NBD_REPLY_TYPE_NONE, ck, 0, NULL, 0);
        return NF_REQ_HANG;
    default:
        return NF_REQ_CLOSE;
    }
}

/* A TLS session to a fake that answers requests per tx_case. */
static void tx_session(const char *what, enum tx_case c, bool structured, uint32_t meta)
{
    tx_case = c;
    tx_count = 0;
    first_cookie = 0;
    struct nf_script sc;
    nf_script_init(&sc);
    nf_script_tls_go(&sc, &screds, structured, meta, DISK_SIZE, EXPORT_FLAGS);
    sc.on_request = on_tx;
    fake_start(&sc);
    int r = client_connect(what, nf_server_port(&fake), SC_NBD_TLS_REQUIRE, NULL, CASE_MS);
    assert_int_equal(r, 0);
    const struct sc_nbd_export_info *in = sc_nbd_client_info(&conn.eng);
    assert_true(in->tls);
    assert_int_equal(in->structured_replies, structured);
    assert_int_equal(in->block_status, meta != 0);
}

static void tx_end(void)
{
    fake_end();
    fake_no_plain_name();
}

/* One transmission case: what the fake does, what the client must answer. */
struct tx_spec {
    const char *name;
    enum tx_case c;
    int want;              /* the request's result */
    bool structured;       /* negotiate structured replies */
    bool pristine;         /* read: not one byte of the destination may change */
    uint16_t flags;        /* block status: request flags */
    size_t nr;             /* block status: extents expected on success */
};

/* A read into the middle of a guarded buffer: the guards must survive whatever happens. */
static void run_read(void **state)
{
    const struct tx_spec *t = *state;
    static uint8_t guard[GUARD + READ_LEN + GUARD];
    tx_session(t->name, t->c, t->structured, 0);
    memset(guard, CANARY, sizeof(guard));
    int r = sc_nbd_pread(&conn, guard + GUARD, READ_LEN, READ_OFF, sc_deadline_in(CASE_MS));
    report("pread", r);
    assert_int_equal(r, t->want);
    assert_true(elapsed() < FAST_MS);
    for (uint32_t i = 0; i < GUARD; i++) {
        assert_int_equal(guard[i], CANARY);
        assert_int_equal(guard[GUARD + READ_LEN + i], CANARY);
    }
    for (uint32_t i = 0; t->want == 0 && i < READ_LEN; i++)
        assert_int_equal(guard[GUARD + i], disk_byte(READ_OFF + i));
    for (uint32_t i = 0; t->pristine && i < READ_LEN; i++)
        assert_int_equal(guard[GUARD + i], CANARY);
    tx_end();
}

/* Block status into a guarded extent array of 4 entries. */
static void run_bs(void **state)
{
    const struct tx_spec *t = *state;
    static struct sc_nbd_extent ext[8];
    const struct sc_nbd_extent canary = {.length = 0xdeadbeefcafef00dull, .flags = 0x5a5a5a5a};
    tx_session(t->name, t->c, true, META_ID);
    for (size_t i = 0; i < 8; i++)
        ext[i] = canary;
    struct sc_nbd_request req = {.type = SC_NBD_CMD_BLOCK_STATUS, .flags = t->flags,
                                 .offset = 0, .length = BS_LEN, .extents = ext + 1,
                                 .max_extents = 4};
    uint64_t cookie;
    assert_int_equal(sc_nbd_client_submit(&conn.eng, &req, &cookie), 0);
    int r = sc_nbd_conn_wait(&conn, sc_deadline_in(CASE_MS));
    struct sc_nbd_completion done = {0};
    if (r == 0) {
        assert_int_equal(sc_nbd_client_reap(&conn.eng, &done), 1);
        r = done.error;
    }
    report("block-status", r);
    assert_int_equal(r, t->want);
    assert_true(elapsed() < FAST_MS);
    assert_memory_equal(&ext[0], &canary, sizeof(canary));
    for (size_t i = 5; i < 8; i++)
        assert_memory_equal(&ext[i], &canary, sizeof(canary));
    if (t->want == 0) {
        assert_int_equal(done.nr_extents, t->nr);
        uint64_t sum = 0;
        for (size_t i = 0; i < done.nr_extents; i++)
            sum += ext[1 + i].length;
        assert_true(sum <= BS_LEN);
    }
    tx_end();
}

#define P SC_ERR_PROTO
static struct tx_spec read_specs[] = {
    {"read: good (control)", TX_GOOD_READ, 0, true, false, 0, 0},
    {"read: OFFSET_DATA at offset -1", TX_DATA_OFF_NEG1, P, true, true, 0, 0},
    {"read: OFFSET_DATA past the request", TX_DATA_PAST, P, true, true, 0, 0},
    {"read: OFFSET_DATA straddling its end", TX_DATA_STRADDLE, P, true, true, 0, 0},
    {"read: OFFSET_DATA before the request", TX_DATA_BEFORE, P, true, true, 0, 0},
    {"read: OFFSET_HOLE past the request", TX_HOLE_PAST, P, true, true, 0, 0},
    {"read: OFFSET_HOLE offset wraps", TX_HOLE_WRAP, P, true, true, 0, 0},
    {"read: OFFSET_HOLE of length 0", TX_HOLE_ZERO, P, true, true, 0, 0},
    {"read: overlapping data chunks", TX_DATA_OVERLAP, P, true, false, 0, 0},
    {"read: DONE before all data", TX_READ_SHORT, P, true, false, 0, 0},
    {"read: same half twice (data)", TX_DATA_DUP_HALF, P, true, false, 0, 0},
    {"read: same half twice (holes)", TX_HOLE_DUP_HALF, P, true, false, 0, 0},
    {"read: simple reply after structured", TX_SIMPLE_AFTER_STRUCTURED, P, true, true, 0, 0},
    {"read: OFFSET_DATA chunk of 4 GiB", TX_DATA_HUGE, P, true, true, 0, 0},
    {"read: OFFSET_DATA without data", TX_DATA_TINY, P, true, true, 0, 0},
    {"read: error chunk (control)", TX_ERR_CHUNK, SC_ERR_REMOTE, true, true, 0, 0},
    {"read: error chunk of 4 GiB", TX_ERR_HUGE, SC_ERR_TOO_LONG, true, true, 0, 0},
    {"read: error message past its chunk", TX_ERR_MSG_LONGER, P, true, true, 0, 0},
    {"read: ERROR_OFFSET outside the read", TX_ERR_OFFSET_OUTSIDE, P, true, true, 0, 0},
    /* libnbd CVE-2021-20286 family: the server dies mid-reply: a clean EOF, at once */
    {"die: mid reply header", TX_DIE_HDR, SC_ERR_EOF, true, true, 0, 0},
    {"die: mid simple reply data", TX_DIE_SIMPLE_DATA, SC_ERR_EOF, false, false, 0, 0},
    {"die: mid data chunk", TX_DIE_CHUNK, SC_ERR_EOF, true, false, 0, 0},
    {"die: between chunks", TX_DIE_BETWEEN_CHUNKS, SC_ERR_EOF, true, false, 0, 0},
    /* replies for requests never sent, and bad magic */
    {"cookie: other generation", TX_COOKIE_OTHER_GEN, P, false, true, 0, 0},
    {"cookie: a free slot", TX_COOKIE_FREE_SLOT, P, false, true, 0, 0},
    {"cookie: outside the window", TX_COOKIE_HIGH, P, false, true, 0, 0},
    {"cookie: unknown in a chunk", TX_COOKIE_CHUNK_UNKNOWN, P, true, true, 0, 0},
    {"magic: bad reply magic", TX_MAGIC_BAD, P, true, true, 0, 0},
    {"magic: structured, not negotiated", TX_MAGIC_STRUCTURED_UNNEGOTIATED, P, false, true, 0,
     0},
};

/* nbdkit CVE-2025-47711/47712: extents that overrun, overlap or are empty. */
static struct tx_spec bs_specs[] = {
    {"bs: good (control)", TX_BS_GOOD, 0, true, false, 0, 2},
    {"bs: last extent past the request (legal)", TX_BS_LAST_LONG, 0, true, false, 0, 2},
    {"bs: more extents than room (legal)", TX_BS_MANY, 0, true, false, 0, 4},
    {"bs: first extent overruns", TX_BS_OVERRUN, P, true, false, 0, 0},
    {"bs: extents overrun before the last", TX_BS_SUM_OVERRUN, P, true, false, 0, 0},
    {"bs: zero-length first extent", TX_BS_ZERO_FIRST, P, true, false, 0, 0},
    {"bs: zero-length last extent", TX_BS_ZERO_LAST, P, true, false, 0, 0},
    {"bs: two chunks, one context (overlap)", TX_BS_TWO_CHUNKS, P, true, false, 0, 0},
    {"bs: unknown context id", TX_BS_UNKNOWN_CTX, P, true, false, 0, 0},
    {"bs: chunk of 4 GiB", TX_BS_HUGE, SC_ERR_TOO_LONG, true, false, 0, 0},
    {"bs: chunk length not 4+8n", TX_BS_BAD_LEN, P, true, false, 0, 0},
    {"bs: DONE without extents", TX_BS_NO_EXTENTS, P, true, false, 0, 0},
    {"bs: simple reply", TX_BS_SIMPLE_OK, P, true, false, 0, 0},
    {"bs: REQ_ONE answered with two", TX_BS_REQ_ONE_TWO, P, true, false,
     SC_NBD_CMD_FLAG_REQ_ONE, 0},
    {"bs: REQ_ONE extent past the request", TX_BS_REQ_ONE_LONG, P, true, false,
     SC_NBD_CMD_FLAG_REQ_ONE, 0},
    {"die: mid block status chunk", TX_DIE_BS, SC_ERR_EOF, true, false, 0, 0},
};
#undef P

/* A second reply to a request already completed. */
static void test_cookie_stale_duplicate(void **state)
{
    (void)state;
    tx_session("cookie-stale", TX_COOKIE_STALE, false, 0);
    int r = sc_nbd_command(&conn, SC_NBD_CMD_FLUSH, 0, 0, 0, sc_deadline_in(CASE_MS));
    report("flush 1", r);
    assert_int_equal(r, 0);
    r = sc_nbd_command(&conn, SC_NBD_CMD_FLUSH, 0, 0, 0, sc_deadline_in(CASE_MS));
    report("flush 2", r);
    assert_int_equal(r, SC_ERR_PROTO);
    tx_end();
}

/* A reply that arrives before any request, in the same TLS record as the GO ACK. */
static void test_reply_before_any_request(void **state)
{
    (void)state;
    static uint8_t unsolicited[SC_NBD_SIMPLE_REPLY_LEN];
    memset(unsolicited, 0, sizeof(unsolicited));
    unsolicited[0] = 0x67;
    unsolicited[1] = 0x44;
    unsolicited[2] = 0x66;
    unsolicited[3] = 0x98;
    unsolicited[14] = 1;  /* cookie 0x100: what the first request will carry */
    struct nf_script sc;
    nf_script_init(&sc);
    nf_script_tls_go(&sc, &screds, false, 0, DISK_SIZE, EXPORT_FLAGS);
    struct nf_answer *go = &sc.answers[sc.nr_answers - 1];
    go->raw = unsolicited;
    go->raw_len = sizeof(unsolicited);
    go->then = NF_THEN_HANG;
    fake_start(&sc);
    int r = client_connect("reply-before-request", nf_server_port(&fake), SC_NBD_TLS_REQUIRE,
                           NULL, CASE_MS);
    assert_int_equal(r, SC_ERR_PROTO);
    fake_end();
    fake_no_plain_name();
    assert_int_equal(fake.rec.nr_reqs, 0);
}

/* ------------------------------------------------------------------ suite */

static int teardown(void **state)
{
    (void)state;
    client_close();
    nf_server_stop(&fake);
    nm_stop(&mitm);
    return 0;
}

static int group_setup(void **state)
{
    (void)state;
    creds_x509(&ccreds, "pki", SC_TLS_CLIENT);
    creds_x509(&screds, "pki", SC_TLS_SERVER);
    ctls = (struct sc_tls_config){.endpoint = SC_TLS_CLIENT, .creds = &ccreds,
                                  .hostname = "localhost"};
    if (qemu_start() != 0)
        printf("# qemu-nbd with TLS is not available: the mitm cases will skip\n");
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    if (qemu_pid > 0)
        tp_stop(qemu_pid, 3000);
    qemu_pid = -1;
    sc_tls_creds_free(&ccreds);
    sc_tls_creds_free(&screds);
    return 0;
}

#define T(f) {.name = #f, .test_func = f, .teardown_func = teardown}

int main(void)
{
    static const struct CMUnitTest fixed[] = {
        T(test_mitm_baseline_relay),
        T(test_mitm_refuse_starttls),
        T(test_mitm_strip_starttls),
        T(test_mitm_inject_after_ack),
        T(test_mitm_inject_structured),
        T(test_mitm_inject_structured_unwanted),
        T(test_mitm_oldstyle),
        T(test_starttls_refused_with_payload),
        T(test_starttls_refused_payload_no_desync),
        T(test_opt_reply_len_ffffffff),
        T(test_opt_reply_len_3gib_under_tls),
        T(test_opt_reply_len_just_over),
        T(test_export_size_above_2_63),
        T(test_export_size_above_2_63_export_name),
        T(test_go_without_info_export),
        T(test_starttls_ack_then_garbage),
        T(test_starttls_ack_then_close),
        T(test_starttls_answered_with_info),
        T(test_option_reply_bad_magic),
        T(test_option_reply_wrong_option),
        T(test_die_mid_option_reply),
        T(test_cookie_stale_duplicate),
        T(test_reply_before_any_request),
    };
    enum { NR_FIXED = sizeof(fixed) / sizeof(fixed[0]),
           NR_READ = sizeof(read_specs) / sizeof(read_specs[0]),
           NR_BS = sizeof(bs_specs) / sizeof(bs_specs[0]) };
    static struct CMUnitTest tests[NR_FIXED + NR_READ + NR_BS];
    size_t n = 0;
    for (size_t i = 0; i < NR_FIXED; i++)
        tests[n++] = fixed[i];
    for (size_t i = 0; i < NR_READ; i++)
        tests[n++] = (struct CMUnitTest){.name = read_specs[i].name, .test_func = run_read,
                                         .teardown_func = teardown,
                                         .initial_state = &read_specs[i]};
    for (size_t i = 0; i < NR_BS; i++)
        tests[n++] = (struct CMUnitTest){.name = bs_specs[i].name, .test_func = run_bs,
                                         .teardown_func = teardown,
                                         .initial_state = &bs_specs[i]};
    return _cmocka_run_group_tests("test_interop_nbd_hostile", tests, n, group_setup,
                                   group_teardown);
}
