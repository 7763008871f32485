/* Our NBD client engine against our NBD server engine over the in-memory
 * pipe, the server in its own thread: extended headers (no peer on this
 * machine speaks them), compact structured replies, simple replies, and
 * STARTTLS with a pre-shared key; every command, checked against a model. */
#define _POSIX_C_SOURCE 200809L
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "../util/tlspair.h"
#include "sechan/nbd.h"
#include "sechan/nbd_backend.h"
#include "sechan/pipe.h"
#include "sechan/port.h"

#define DISK (4u << 20)
#define IO_MS 20000u

static uint8_t disk[DISK], model[DISK];
static uint8_t ring_ab[1u << 16], ring_ba[1u << 16];
static uint8_t srv_buf[64 * 1024];
static struct sc_pipe pipe_pair;
static struct sc_tls_creds ccreds, screds;

struct server {
    struct sc_nbd_server_conn conn;
    struct sc_tls_config tls;
    pthread_t th;
    int result;
};
static struct server srv;
static struct sc_nbd_mem_backend mem = {.data = disk, .size = DISK};

static void *server_main(void *arg)
{
    struct server *s = arg;
    uint64_t deadline = sc_deadline_in(IO_MS);
    for (;;) {
        enum sc_dir want = SC_DIR_NONE;
        int r = sc_nbd_server_conn_pump(&s->conn, &want);
        if (r == 1) {
            s->result = 0;
            break;
        }
        if (r < 0 && r != SC_ERR_AGAIN) {
            s->result = r;
            break;
        }
        if (sc_port_now_ms() > deadline) {
            s->result = SC_ERR_TIMEOUT;
            break;
        }
        if (r == SC_ERR_AGAIN)
            (void)sc_wait(s->conn.ch, want ? want : SC_DIR_READ, sc_deadline_in(50));
    }
    sc_nbd_server_conn_close(&s->conn);
    sc_close(&pipe_pair.b.base);
    return NULL;
}

static void start_server(enum sc_nbd_tls_policy tls)
{
    static struct sc_nbd_export exp;
    exp = (struct sc_nbd_export){.name = "disk", .size = DISK, .ops = &sc_nbd_mem_ops,
                                 .ctx = &mem, .description = "in-process"};
    struct sc_nbd_server_config cfg = {.exports = &exp, .nr_exports = 1, .tls = tls,
                                       .buf = srv_buf, .buf_len = sizeof(srv_buf)};
    srv.tls = (struct sc_tls_config){.endpoint = SC_TLS_SERVER, .creds = &screds};
    assert_int_equal(sc_pipe_init(&pipe_pair, ring_ab, sizeof(ring_ab), ring_ba, sizeof(ring_ba)),
                     0);
    assert_int_equal(sc_nbd_server_conn_init(&srv.conn, &pipe_pair.b.base, &cfg,
                                             tls ? &srv.tls : NULL), 0);
    assert_int_equal(pthread_create(&srv.th, NULL, server_main, &srv), 0);
}

static int stop_server(void)
{
    pthread_join(srv.th, NULL);
    return srv.result;
}

static struct sc_nbd_conn cl;

static void connect_client(const struct sc_nbd_client_config *cfg)
{
    static struct sc_tls_config tcfg;
    tcfg = (struct sc_tls_config){.endpoint = SC_TLS_CLIENT, .creds = &ccreds};
    int r = sc_nbd_connect(&cl, &pipe_pair.a.base, cfg, &tcfg, sc_deadline_in(IO_MS));
    if (r != 0)
        print_error("connect: %s\n", sc_nbd_conn_errmsg(&cl));
    assert_int_equal(r, 0);
}

/* Every command, with a model of the disk; reads pipelined. */
static void exercise(void)
{
    const struct sc_nbd_export_info *in = sc_nbd_client_info(&cl.eng);
    assert_int_equal(in->size, DISK);
    memset(disk, 0, sizeof(disk));
    memset(model, 0, sizeof(model));
    static uint8_t data[200000];
    for (size_t i = 0; i < sizeof(data); i++)
        data[i] = (uint8_t)(i * 7 + 3);
    /* larger than the server's 64 KiB buffer: streamed in pieces */
    assert_int_equal(sc_nbd_pwrite(&cl, data, sizeof(data), 12345, SC_NBD_CMD_FLAG_FUA,
                                   sc_deadline_in(IO_MS)), 0);
    memcpy(model + 12345, data, sizeof(data));
    assert_int_equal(sc_nbd_pwrite(&cl, data, 4096, 3u << 20, 0, sc_deadline_in(IO_MS)), 0);
    memcpy(model + (3u << 20), data, 4096);
    assert_int_equal(sc_nbd_command(&cl, SC_NBD_CMD_FLUSH, 0, 0, 0, sc_deadline_in(IO_MS)), 0);
    assert_int_equal(sc_nbd_command(&cl, SC_NBD_CMD_TRIM, 0, 65536, 8192, sc_deadline_in(IO_MS)), 0);
    memset(model + 65536, 0, 8192);
    assert_int_equal(sc_nbd_command(&cl, SC_NBD_CMD_WRITE_ZEROES, SC_NBD_CMD_FLAG_FAST_ZERO,
                                    100000, 5000, sc_deadline_in(IO_MS)), 0);
    memset(model + 100000, 0, 5000);
    assert_int_equal(sc_nbd_command(&cl, SC_NBD_CMD_CACHE, 0, 0, 4096, sc_deadline_in(IO_MS)), 0);
    /* pipelined reads of the whole disk, 128 KiB each */
    static uint8_t back[DISK];
    const uint32_t chunk = 128 * 1024;
    unsigned submitted = 0, done = 0, total = DISK / chunk;
    while (done < total) {
        while (submitted < total && sc_nbd_client_in_flight(&cl.eng) < 8) {
            struct sc_nbd_request req = {.type = SC_NBD_CMD_READ, .offset = submitted * chunk,
                                         .length = chunk, .buf = back + submitted * chunk};
            assert_int_equal(sc_nbd_client_submit(&cl.eng, &req, NULL), 0);
            submitted++;
        }
        assert_int_equal(sc_nbd_conn_wait(&cl, sc_deadline_in(IO_MS)), 0);
        struct sc_nbd_completion c;
        while (sc_nbd_client_reap(&cl.eng, &c) == 1) {
            assert_int_equal(c.error, 0);
            done++;
        }
    }
    assert_memory_equal(back, model, DISK);
    /* block status: the memory backend reports zero granules as holes */
    if (in->block_status) {
        struct sc_nbd_extent ext[16];
        size_t nr = 0;
        assert_int_equal(sc_nbd_block_status(&cl, 0, 1u << 20, ext, 16, &nr, sc_deadline_in(IO_MS)),
                         0);
        assert_true(nr >= 2);
        assert_int_equal(ext[0].flags, 0);                   /* data at 12345.. */
        uint64_t sum = 0;
        for (size_t i = 0; i < nr; i++)
            sum += ext[i].length;
        assert_true(sum <= 1u << 20);
        assert_int_equal(ext[nr - 1].flags, SC_NBD_STATE_HOLE | SC_NBD_STATE_ZERO);
    }
    /* out of range: refused locally; an error from the server: reported */
    assert_int_equal(sc_nbd_pread(&cl, back, 2, DISK - 1, sc_deadline_in(IO_MS)), SC_ERR_INVAL);
    assert_int_equal(sc_nbd_close(&cl, sc_deadline_in(IO_MS)), 0);
    assert_int_equal(stop_server(), 0);
}

static void test_extended_headers(void **st)
{
    (void)st;
    start_server(SC_NBD_TLS_OFF);
    struct sc_nbd_client_config cfg = {.export_name = "disk"};
    connect_client(&cfg);
    const struct sc_nbd_export_info *in = sc_nbd_client_info(&cl.eng);
    assert_true(in->extended_headers);
    assert_true(in->structured_replies);
    assert_true(in->block_status);
    assert_string_equal(in->description, "in-process");
    exercise();
}

static void test_structured_replies(void **st)
{
    (void)st;
    start_server(SC_NBD_TLS_OFF);
    struct sc_nbd_client_config cfg = {.export_name = "disk", .no_extended_headers = true};
    connect_client(&cfg);
    const struct sc_nbd_export_info *in = sc_nbd_client_info(&cl.eng);
    assert_false(in->extended_headers);
    assert_true(in->structured_replies);
    exercise();
}

static void test_simple_replies(void **st)
{
    (void)st;
    start_server(SC_NBD_TLS_OFF);
    struct sc_nbd_client_config cfg = {.export_name = "disk", .no_structured_replies = true};
    connect_client(&cfg);
    const struct sc_nbd_export_info *in = sc_nbd_client_info(&cl.eng);
    assert_false(in->structured_replies);
    assert_false(in->block_status);
    exercise();
}

static void test_starttls_psk_extended(void **st)
{
    (void)st;
    start_server(SC_NBD_TLS_REQUIRE);
    struct sc_nbd_client_config cfg = {.export_name = "disk", .tls = SC_NBD_TLS_REQUIRE,
                                       .list_exports = true};
    connect_client(&cfg);
    const struct sc_nbd_export_info *in = sc_nbd_client_info(&cl.eng);
    assert_true(in->tls);
    assert_true(in->extended_headers);
    exercise();
}

static void test_plain_client_refused(void **st)
{
    (void)st;
    start_server(SC_NBD_TLS_REQUIRE);
    struct sc_nbd_client_config cfg = {.export_name = "disk"};
    assert_int_equal(sc_nbd_connect(&cl, &pipe_pair.a.base, &cfg, NULL, sc_deadline_in(IO_MS)),
                     SC_ERR_TLS_REQUIRED);
    sc_close(&pipe_pair.a.base);  /* the server sees the client leave */
    assert_int_not_equal(stop_server(), SC_ERR_TIMEOUT);
}

/* With two replies already in, a wait returns at the first completion and
 * leaves the second unread: the caller refills the window between them. */
static void test_wait_stops_at_first_completion(void **st)
{
    (void)st;
    start_server(SC_NBD_TLS_OFF);
    struct sc_nbd_client_config cfg = {.export_name = "disk", .no_structured_replies = true};
    connect_client(&cfg);
    static uint8_t back[2][4096];
    for (unsigned i = 0; i < 2; i++) {
        struct sc_nbd_request req = {.type = SC_NBD_CMD_READ, .offset = i * 4096u,
                                     .length = 4096, .buf = back[i]};
        assert_int_equal(sc_nbd_client_submit(&cl.eng, &req, NULL), 0);
    }
    assert_int_equal(sc_nbd_conn_pump(&cl), 0);  /* both requests sent */
    const size_t reply = 16 + 4096;              /* simple reply header + data */
    uint64_t deadline = sc_deadline_in(IO_MS);
    while (sc_pending(&pipe_pair.a.base) < 2 * reply && sc_port_now_ms() < deadline)
        (void)sc_wait(&pipe_pair.a.base, SC_DIR_READ, sc_deadline_in(1));
    assert_true(sc_pending(&pipe_pair.a.base) >= 2 * reply);
    struct sc_nbd_completion c;
    assert_int_equal(sc_nbd_conn_wait(&cl, sc_deadline_in(IO_MS)), 0);
    assert_int_equal(sc_nbd_client_reap(&cl.eng, &c), 1);
    assert_int_equal(sc_nbd_client_reap(&cl.eng, &c), 0);
    assert_int_equal(sc_pending(&pipe_pair.a.base), reply);
    assert_int_equal(sc_nbd_conn_wait(&cl, sc_deadline_in(IO_MS)), 0);
    assert_int_equal(sc_nbd_client_reap(&cl.eng, &c), 1);
    assert_int_equal(c.error, 0);
    assert_int_equal(sc_nbd_close(&cl, sc_deadline_in(IO_MS)), 0);
    assert_int_equal(stop_server(), 0);
}

static int setup(void **st)
{
    (void)st;
    if (sc_tls_creds_init(&ccreds) || sc_tls_creds_init(&screds))
        return -1;
    if (sc_tls_creds_load_psk_file(&ccreds, pki_path("keys.psk")) ||
        sc_tls_creds_load_psk_file(&screds, pki_path("keys.psk")))
        return -1;
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_extended_headers),
        cmocka_unit_test(test_structured_replies),
        cmocka_unit_test(test_simple_replies),
        cmocka_unit_test(test_starttls_psk_extended),
        cmocka_unit_test(test_plain_client_refused),
        cmocka_unit_test(test_wait_stops_at_first_completion),
    };
    return cmocka_run_group_tests_name("nbd_engines", tests, setup, NULL);
}
