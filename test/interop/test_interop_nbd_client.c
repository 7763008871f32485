/* Our NBD client against qemu-nbd, nbdkit (memory and file plugins) and
 * nbd-server, plain and over TLS (X.509 with and without a client
 * certificate, PSK): random writes checked against a model of the disk,
 * flush, full read-back, trim and zeroes reading back as zeroes, block
 * status against a sparse file, and refusals. */
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

#include "../util/nbdpeer.h"
#include "../util/need.h"
#include "../util/proc.h"
#include "sechan/nbd.h"
#include "sechan/port.h"
#include "sechan/tcp.h"

#define DISK_SIZE (16u << 20)
#define SEED 7u
#define IO_MS 30000u

static struct sc_tls_creds creds_x509, creds_caonly, creds_psk;
static uint8_t model[DISK_SIZE], readback[1u << 20];

struct client {
    struct sc_sock sock;
    struct sc_nbd_conn nbd;
    struct sc_tls_config tls;
};
static struct client cl;

static void need(enum np_server s)
{
    tp_need_program(np_program(s));
}

static void disk_path(char *buf, size_t cap, const char *tag)
{
    snprintf(buf, cap, "%s/nbd-client-%s.img", tp_build_dir(), tag);
}

static void start_peer(struct np_peer *p, enum np_server s, enum np_tls t, const char *file)
{
    need(s);
    struct np_opts o = {.server = s, .tls = t, .file = file, .mem_size = DISK_SIZE,
                        .export_name = "disk"};
    /* qemu-nbd ignores TRIM unless told to unmap (--discard=ignore is its
     * default; the protocol lets a server ignore it): ask for real trims so
     * trimmed ranges read back as zeroes. */
    if (s == NP_QEMU_NBD)
        o.extra[0] = "--discard=unmap";
    assert_int_equal(np_start(p, &o), 0);
}

static int connect_to(const struct np_peer *p, enum np_tls t, const struct sc_tls_creds *creds)
{
    assert_int_equal(sc_tcp_connect(&cl.sock, "127.0.0.1", (uint16_t)p->port,
                                    sc_deadline_in(IO_MS)),
                     0);
    cl.tls = (struct sc_tls_config){.endpoint = SC_TLS_CLIENT, .creds = creds,
                                    .hostname = "localhost"};
    struct sc_nbd_client_config cfg = {
        .export_name = "disk", .tls = t == NP_TLS_NONE ? SC_NBD_TLS_OFF : SC_NBD_TLS_REQUIRE};
    return sc_nbd_connect(&cl.nbd, &cl.sock.base, &cfg, &cl.tls, sc_deadline_in(IO_MS));
}

static void disconnect(void)
{
    assert_int_equal(sc_nbd_close(&cl.nbd, sc_deadline_in(IO_MS)), 0);
    sc_close(&cl.sock.base);
}

static uint64_t rnd_state = 0x1234567;
static uint64_t rnd(void)
{
    rnd_state ^= rnd_state << 13;
    rnd_state ^= rnd_state >> 7;
    rnd_state ^= rnd_state << 17;
    return rnd_state;
}

/* Read the whole export with a window of requests and compare with the
 * model. Replies may come in any order: each request owns its buffer. */
static void verify_all(void)
{
    static uint8_t bufs[8][256 * 1024];
    struct pending {
        uint64_t offset;
        bool busy;
    } slot[8] = {{0, false}};
    const uint32_t chunk = sizeof(bufs[0]);
    uint64_t next = 0, checked = 0;
    while (checked < DISK_SIZE) {
        for (unsigned i = 0; i < 8 && next < DISK_SIZE; i++) {
            if (slot[i].busy)
                continue;
            struct sc_nbd_request req = {.type = SC_NBD_CMD_READ, .offset = next,
                                         .length = chunk, .buf = bufs[i],
                                         .user = &slot[i]};
            assert_int_equal(sc_nbd_client_submit(&cl.nbd.eng, &req, NULL), 0);
            slot[i] = (struct pending){.offset = next, .busy = true};
            next += chunk;
        }
        assert_int_equal(sc_nbd_conn_wait(&cl.nbd, sc_deadline_in(IO_MS)), 0);
        struct sc_nbd_completion c;
        while (sc_nbd_client_reap(&cl.nbd.eng, &c) == 1) {
            struct pending *pd = c.user;
            size_t i = (size_t)(pd - slot);
            assert_int_equal(c.error, 0);
            if (memcmp(bufs[i], model + pd->offset, chunk) != 0) {
                print_error("data differs in [%llu, +%u)\n", (unsigned long long)pd->offset,
                            chunk);
                fail();
            }
            pd->busy = false;
            checked += chunk;
        }
    }
}

static void exercise(bool zeroed_start)
{
    const struct sc_nbd_export_info *in = sc_nbd_client_info(&cl.nbd.eng);
    assert_int_equal(in->size, DISK_SIZE);
    if (zeroed_start)
        memset(model, 0, sizeof(model));
    else
        np_disk_fill(SEED, 0, model, sizeof(model));
    /* Random writes at random offsets, some with FUA. */
    static uint8_t data[256 * 1024];
    for (int i = 0; i < 48; i++) {
        uint32_t len = (uint32_t)(rnd() % sizeof(data)) + 1;
        uint64_t off = rnd() % (DISK_SIZE - len);
        for (uint32_t k = 0; k < len; k++)
            data[k] = (uint8_t)rnd();
        uint16_t flags = (i % 8 == 0 && (in->flags & SC_NBD_FLAG_SEND_FUA)) ? SC_NBD_CMD_FLAG_FUA
                                                                           : 0;
        assert_int_equal(sc_nbd_pwrite(&cl.nbd, data, len, off, flags, sc_deadline_in(IO_MS)), 0);
        memcpy(model + off, data, len);
    }
    if (in->flags & SC_NBD_FLAG_SEND_FLUSH)
        assert_int_equal(sc_nbd_command(&cl.nbd, SC_NBD_CMD_FLUSH, 0, 0, 0, sc_deadline_in(IO_MS)), 0);
    /* Trim and write-zeroes read back as zeroes. */
    if (in->flags & SC_NBD_FLAG_SEND_TRIM) {
        assert_int_equal(sc_nbd_command(&cl.nbd, SC_NBD_CMD_TRIM, 0, 4u << 20, 1u << 20,
                                        sc_deadline_in(IO_MS)), 0);
        memset(model + (4u << 20), 0, 1u << 20);
        assert_int_equal(sc_nbd_pread(&cl.nbd, readback, 1u << 20, 4u << 20, sc_deadline_in(IO_MS)), 0);
        assert_memory_equal(readback, model + (4u << 20), 1u << 20);
    }
    if (in->flags & SC_NBD_FLAG_SEND_WRITE_ZEROES) {
        assert_int_equal(sc_nbd_command(&cl.nbd, SC_NBD_CMD_WRITE_ZEROES, SC_NBD_CMD_FLAG_NO_HOLE,
                                        9u << 20, 123456, sc_deadline_in(IO_MS)), 0);
        memset(model + (9u << 20), 0, 123456);
    }
    if (in->flags & SC_NBD_FLAG_SEND_CACHE)
        assert_int_equal(sc_nbd_command(&cl.nbd, SC_NBD_CMD_CACHE, 0, 0, 1u << 20,
                                        sc_deadline_in(IO_MS)), 0);
    verify_all();
    /* Past the end is refused locally, before anything is sent. */
    assert_int_equal(sc_nbd_pread(&cl.nbd, readback, 2, DISK_SIZE - 1, sc_deadline_in(IO_MS)),
                     SC_ERR_INVAL);
}

static void run(enum np_server s, enum np_tls t)
{
    struct np_peer p;
    char file[256];
    bool memory = s == NP_NBDKIT_MEMORY;
    disk_path(file, sizeof(file), np_server_name(s));
    if (!memory)
        assert_int_equal(np_make_disk(file, DISK_SIZE, SEED), 0);
    start_peer(&p, s, t, memory ? NULL : file);
    const struct sc_tls_creds *creds = t == NP_TLS_PSK ? &creds_psk : &creds_x509;
    int r = connect_to(&p, t, creds);
    if (r != 0)
        print_error("%s/%s: %s\n", np_server_name(s), np_tls_name(t), sc_nbd_conn_errmsg(&cl.nbd));
    assert_int_equal(r, 0);
    const struct sc_nbd_export_info *in = sc_nbd_client_info(&cl.nbd.eng);
    printf("# %s/%s: flags 0x%x structured %d block-status %d tls %d\n", np_server_name(s),
           np_tls_name(t), in->flags, in->structured_replies, in->block_status, in->tls);
    assert_int_equal(in->tls, t != NP_TLS_NONE);
    exercise(memory);
    disconnect();
    np_stop(&p);
}

static void test_qemu_plain(void **st) { (void)st; run(NP_QEMU_NBD, NP_TLS_NONE); }
static void test_qemu_x509(void **st) { (void)st; run(NP_QEMU_NBD, NP_TLS_X509); }
static void test_qemu_x509_client_cert(void **st) { (void)st; run(NP_QEMU_NBD, NP_TLS_X509_VERIFY); }
static void test_qemu_psk(void **st) { (void)st; run(NP_QEMU_NBD, NP_TLS_PSK); }
static void test_nbdkit_memory_plain(void **st) { (void)st; run(NP_NBDKIT_MEMORY, NP_TLS_NONE); }
static void test_nbdkit_memory_x509(void **st) { (void)st; run(NP_NBDKIT_MEMORY, NP_TLS_X509); }
static void test_nbdkit_memory_psk(void **st) { (void)st; run(NP_NBDKIT_MEMORY, NP_TLS_PSK); }
static void test_nbdkit_file_plain(void **st) { (void)st; run(NP_NBDKIT_FILE, NP_TLS_NONE); }
static void test_nbdkit_file_x509(void **st) { (void)st; run(NP_NBDKIT_FILE, NP_TLS_X509); }
static void test_nbdkit_file_psk(void **st) { (void)st; run(NP_NBDKIT_FILE, NP_TLS_PSK); }
static void test_nbd_server_plain(void **st) { (void)st; run(NP_NBD_SERVER, NP_TLS_NONE); }
static void test_nbd_server_x509_client_cert(void **st)
{
    (void)st;
    run(NP_NBD_SERVER, NP_TLS_X509_VERIFY);
}

/* A server that wants a client certificate refuses a client without one. */
static void test_client_cert_required(void **st)
{
    (void)st;
    enum np_server servers[] = {NP_QEMU_NBD, NP_NBDKIT_MEMORY, NP_NBD_SERVER};
    for (size_t i = 0; i < 3; i++) {
        struct np_peer p;
        char file[256];
        disk_path(file, sizeof(file), "certreq");
        assert_int_equal(np_make_disk(file, DISK_SIZE, SEED), 0);
        start_peer(&p, servers[i], NP_TLS_X509_VERIFY, servers[i] == NP_NBDKIT_MEMORY ? NULL : file);
        int r = connect_to(&p, NP_TLS_X509_VERIFY, &creds_caonly);
        printf("# %s without a client certificate: %s: %s\n", np_server_name(servers[i]),
               sc_errname(r), sc_nbd_conn_errmsg(&cl.nbd));
        assert_true(r == SC_ERR_TLS_ALERT || r == SC_ERR_EOF || r == SC_ERR_RESET ||
                    r == SC_ERR_TLS_HANDSHAKE);
        sc_nbd_close(&cl.nbd, sc_deadline_in(1000));
        sc_close(&cl.sock.base);
        np_stop(&p);
    }
}

/* Block status over a sparse file: data in the first 64 KiB of each MiB. */
static void block_status_sparse(enum np_server s)
{
    struct np_peer p;
    char file[256];
    disk_path(file, sizeof(file), "sparse");
    const uint64_t period = 1u << 20, data_len = 64u << 10;
    int made = np_make_sparse(file, DISK_SIZE, period, data_len, SEED);
    assert_true(made >= 0);
    if (made == 1) {
        printf("# skip: this file system shows no holes\n");
        skip();
    }
    start_peer(&p, s, NP_TLS_NONE, file);
    assert_int_equal(connect_to(&p, NP_TLS_NONE, NULL), 0);
    assert_true(sc_nbd_client_info(&cl.nbd.eng)->block_status);
    struct sc_nbd_extent ext[64];
    size_t nr = 0;
    for (uint64_t off = 0; off < DISK_SIZE; off += 4 * period) {
        assert_int_equal(sc_nbd_block_status(&cl.nbd, off, (uint32_t)(4 * period), ext, 64, &nr,
                                             sc_deadline_in(IO_MS)), 0);
        assert_true(nr >= 1);
        uint64_t at = off;
        for (size_t i = 0; i < nr; i++) {
            bool hole = (ext[i].flags & SC_NBD_STATE_HOLE) != 0;
            /* Every byte of the extent agrees with the layout. */
            for (uint64_t b = at; b < at + ext[i].length; b += 4096)
                assert_int_equal(!hole, np_sparse_is_data(b, period, data_len));
            at += ext[i].length;
        }
        assert_true(at <= off + 4 * period);
    }
    /* Holes read back as zeroes, data as written. */
    assert_int_equal(sc_nbd_pread(&cl.nbd, readback, (uint32_t)period, period, sc_deadline_in(IO_MS)), 0);
    np_disk_fill(SEED, period, model, data_len);
    assert_memory_equal(readback, model, data_len);
    for (uint64_t k = data_len; k < period; k++)
        assert_int_equal(readback[k], 0);
    disconnect();
    np_stop(&p);
}

static void test_block_status_qemu(void **st) { (void)st; block_status_sparse(NP_QEMU_NBD); }
static void test_block_status_nbdkit_file(void **st) { (void)st; block_status_sparse(NP_NBDKIT_FILE); }

/* Plaintext client, TLS-only server: a clear refusal, not a hang. */
static void test_plain_client_tls_server(void **st)
{
    (void)st;
    struct np_peer p;
    char file[256];
    disk_path(file, sizeof(file), "tlsonly");
    assert_int_equal(np_make_disk(file, DISK_SIZE, SEED), 0);
    start_peer(&p, NP_QEMU_NBD, NP_TLS_X509, file);
    int r = connect_to(&p, NP_TLS_NONE, NULL);
    printf("# plaintext client: %s: %s\n", sc_errname(r), sc_nbd_conn_errmsg(&cl.nbd));
    assert_int_equal(r, SC_ERR_TLS_REQUIRED);
    sc_close(&cl.sock.base);
    np_stop(&p);
}

static void test_unknown_export(void **st)
{
    (void)st;
    struct np_peer p;
    char file[256];
    disk_path(file, sizeof(file), "unknown");
    assert_int_equal(np_make_disk(file, DISK_SIZE, SEED), 0);
    start_peer(&p, NP_QEMU_NBD, NP_TLS_PSK, file);
    assert_int_equal(sc_tcp_connect(&cl.sock, "127.0.0.1", (uint16_t)p.port, sc_deadline_in(IO_MS)), 0);
    cl.tls = (struct sc_tls_config){.endpoint = SC_TLS_CLIENT, .creds = &creds_psk};
    struct sc_nbd_client_config cfg = {.export_name = "nope", .tls = SC_NBD_TLS_REQUIRE};
    int r = sc_nbd_connect(&cl.nbd, &cl.sock.base, &cfg, &cl.tls, sc_deadline_in(IO_MS));
    printf("# unknown export: %s\n", sc_nbd_conn_errmsg(&cl.nbd));
    assert_int_equal(r, SC_ERR_NOT_FOUND);
    sc_nbd_close(&cl.nbd, sc_deadline_in(1000));
    sc_close(&cl.sock.base);
    np_stop(&p);
}

/* Through NBD STARTTLS against qemu-nbd, each TLS failure keeps its own
 * code: wrong CA, wrong host name, revoked certificate, wrong PSK. */
static void starttls_failure(const char *server_creds, enum np_tls t, const char *client_dir,
                             const char *psk_file, const char *hostname, int want)
{
    need(NP_QEMU_NBD);
    struct np_peer p;
    char file[256];
    disk_path(file, sizeof(file), "tlsfail");
    assert_int_equal(np_make_disk(file, DISK_SIZE, SEED), 0);
    struct np_opts o = {.server = NP_QEMU_NBD, .tls = t, .file = file, .export_name = "disk",
                        .creds = server_creds ? np_pki(server_creds) : NULL};
    assert_int_equal(np_start(&p, &o), 0);
    static struct sc_tls_creds creds;
    assert_int_equal(sc_tls_creds_init(&creds), 0);
    if (psk_file)
        assert_int_equal(sc_tls_creds_load_psk_file(&creds, np_pki(psk_file)), 0);
    else
        assert_int_equal(sc_tls_creds_load_x509_dir(&creds, np_pki(client_dir), SC_TLS_CLIENT), 0);
    assert_int_equal(sc_tcp_connect(&cl.sock, "127.0.0.1", (uint16_t)p.port, sc_deadline_in(IO_MS)), 0);
    cl.tls = (struct sc_tls_config){.endpoint = SC_TLS_CLIENT, .creds = &creds, .hostname = hostname};
    struct sc_nbd_client_config cfg = {.export_name = "disk", .tls = SC_NBD_TLS_REQUIRE};
    int r = sc_nbd_connect(&cl.nbd, &cl.sock.base, &cfg, &cl.tls, sc_deadline_in(IO_MS));
    printf("# %s: %s\n", sc_errname(r), sc_nbd_conn_errmsg(&cl.nbd));
    assert_int_equal(r, want);
    sc_nbd_close(&cl.nbd, sc_deadline_in(1000));
    sc_close(&cl.sock.base);
    sc_tls_creds_free(&creds);
    np_stop(&p);
}

static void test_starttls_wrong_ca(void **st)
{
    (void)st;
    starttls_failure("pki-otherca", NP_TLS_X509, "pki", NULL, "localhost", SC_ERR_TLS_UNTRUSTED);
}

static void test_starttls_wrong_host(void **st)
{
    (void)st;
    starttls_failure(NULL, NP_TLS_X509, "pki", NULL, "otherhost", SC_ERR_TLS_HOSTNAME);
}

static void test_starttls_revoked(void **st)
{
    (void)st;
    starttls_failure("pki-revoked", NP_TLS_X509, "pki-revoked", NULL, "localhost",
                     SC_ERR_TLS_REVOKED);
}

static void test_starttls_wrong_psk(void **st)
{
    (void)st;
    starttls_failure(NULL, NP_TLS_PSK, NULL, "keys-wrong.psk", "localhost", SC_ERR_TLS_PSK);
}

static int setup(void **st)
{
    (void)st;
    if (sc_tls_creds_init(&creds_x509) || sc_tls_creds_init(&creds_caonly) ||
        sc_tls_creds_init(&creds_psk))
        return -1;
    if (sc_tls_creds_load_x509_dir(&creds_x509, np_pki("pki"), SC_TLS_CLIENT) ||
        sc_tls_creds_load_x509_dir(&creds_caonly, np_pki("pki-caonly"), SC_TLS_CLIENT) ||
        sc_tls_creds_load_psk_file(&creds_psk, np_pki("keys.psk")))
        return -1;
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_qemu_plain, tp_stop_all_teardown),
        cmocka_unit_test_teardown(test_qemu_x509, tp_stop_all_teardown),
        cmocka_unit_test_teardown(test_qemu_x509_client_cert, tp_stop_all_teardown),
        cmocka_unit_test_teardown(test_qemu_psk, tp_stop_all_teardown),
        cmocka_unit_test_teardown(test_nbdkit_memory_plain, tp_stop_all_teardown),
        cmocka_unit_test_teardown(test_nbdkit_memory_x509, tp_stop_all_teardown),
        cmocka_unit_test_teardown(test_nbdkit_memory_psk, tp_stop_all_teardown),
        cmocka_unit_test_teardown(test_nbdkit_file_plain, tp_stop_all_teardown),
        cmocka_unit_test_teardown(test_nbdkit_file_x509, tp_stop_all_teardown),
        cmocka_unit_test_teardown(test_nbdkit_file_psk, tp_stop_all_teardown),
        cmocka_unit_test_teardown(test_nbd_server_plain, tp_stop_all_teardown),
        cmocka_unit_test_teardown(test_nbd_server_x509_client_cert, tp_stop_all_teardown),
        cmocka_unit_test_teardown(test_client_cert_required, tp_stop_all_teardown),
        cmocka_unit_test_teardown(test_block_status_qemu, tp_stop_all_teardown),
        cmocka_unit_test_teardown(test_block_status_nbdkit_file, tp_stop_all_teardown),
        cmocka_unit_test_teardown(test_plain_client_tls_server, tp_stop_all_teardown),
        cmocka_unit_test_teardown(test_unknown_export, tp_stop_all_teardown),
        cmocka_unit_test_teardown(test_starttls_wrong_ca, tp_stop_all_teardown),
        cmocka_unit_test_teardown(test_starttls_wrong_host, tp_stop_all_teardown),
        cmocka_unit_test_teardown(test_starttls_revoked, tp_stop_all_teardown),
        cmocka_unit_test_teardown(test_starttls_wrong_psk, tp_stop_all_teardown),
    };
    return cmocka_run_group_tests_name("interop_nbd_client", tests, setup, NULL);
}
