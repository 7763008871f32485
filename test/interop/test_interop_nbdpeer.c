/* The NBD peers of nbdpeer.h against libnbd's tools: every server (qemu-nbd, nbdkit memory
 * and file, nbd-server) in every TLS mode it can do, on TCP and unix sockets, is started,
 * asked for its size with `nbdinfo --json`, and stopped, and must then be gone with all its
 * children.  Also: nbd-server across sequential connections, servers limited to one
 * connection, disk content and holes as np_make_disk()/np_make_sparse() promise, and clients
 * refused for want of TLS or a client certificate. */
#define _POSIX_C_SOURCE 200809L
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "../util/nbdpeer.h"
#include "../util/need.h"
#include "../util/proc.h"

#define DISK_SIZE (8u * 1024u * 1024u)
#define DISK_SEED 0x5ec4a9u
#define MEM_SIZE (16u * 1024u * 1024u)
#define SPARSE_SIZE (4u * 1024u * 1024u)
#define SPARSE_PERIOD (1024u * 1024u)
#define SPARSE_DATA (64u * 1024u)
#define TOOL_TIMEOUT_MS 10000

static char disk_path[512];
static char sparse_path[512];
static int sparse_state = -1; /* np_make_sparse() result */

/* What a test runs, for the teardown to end if an assertion fails midway. */
static struct np_peer cur = {.pid = -1};
static pid_t tool_pid = -1;

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + (int64_t)(ts.tv_nsec / 1000000);
}

/* Run argv to completion (bounded), stdout+stderr to out.  Returns the exit code (143 if it
 * had to be stopped). */
static int run_tool(const char *const argv[], const char *out)
{
    tp_need_program(argv[0]);
    (void)unlink(out);
    tool_pid = tp_spawn(argv, out);
    assert_true(tool_pid > 0);
    int64_t deadline = now_ms() + TOOL_TIMEOUT_MS;
    while (tp_alive(tool_pid) && now_ms() < deadline) {
        struct timespec ts = {0, 5 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    if (tp_alive(tool_pid))
        print_error("%s did not finish in %d ms\n", argv[0], TOOL_TIMEOUT_MS);
    int rc = tp_stop(tool_pid, 1000);
    tool_pid = -1;
    return rc;
}

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    static char buf[65536];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    return buf;
}

static void out_path(char *buf, size_t size, const char *what)
{
    snprintf(buf, size, "%s/np-%s-%s-%s.out", tp_build_dir(), what, np_server_name(cur.server),
             np_tls_name(cur.tls));
}

/* nbdinfo --size URI (one connection, NBD_OPT_GO): must succeed and print size. */
static void nbdinfo_size(const char *uri, uint64_t size)
{
    char out[512];
    out_path(out, sizeof out, "size");
    const char *argv[] = {"nbdinfo", "--size", uri, NULL};
    int rc = run_tool(argv, out);
    char *text = slurp(out);
    if (rc != 0)
        print_error("nbdinfo --size %s: exit %d:\n%s\n", uri, rc, text);
    assert_int_equal(rc, 0);
    assert_int_equal(strtoull(text, NULL, 10), size);
}

/* nbdinfo --json URI: must succeed and report size and TLS state.  nbd-server 3.24 answers
 * NBD_OPT_INFO (which nbdinfo --json uses) with size 0; its real size (NBD_OPT_GO) is checked
 * with a second connection, nbdinfo --size. */
static void nbdinfo_expect(const char *uri, uint64_t size, bool tls)
{
    char out[512];
    out_path(out, sizeof out, "nbdinfo");
    const char *argv[] = {"nbdinfo", "--json", uri, NULL};
    int rc = run_tool(argv, out);
    char *json = slurp(out);
    if (rc != 0)
        print_error("nbdinfo %s: exit %d:\n%s\n", uri, rc, json);
    assert_int_equal(rc, 0);
    char *p = strstr(json, "\"export-size\":");
    assert_non_null(p);
    unsigned long long got = strtoull(p + strlen("\"export-size\":"), NULL, 10);
    assert_non_null(strstr(json, tls ? "\"TLS\": true" : "\"TLS\": false"));
    if (cur.server != NP_NBD_SERVER || got == size) {
        assert_int_equal(got, size);
        return;
    }
    assert_int_equal(got, 0);
    nbdinfo_size(uri, size);
}

/* nbdinfo URI must fail, with one of the expected messages in its output. */
static void nbdinfo_refused(const char *uri)
{
    char out[512];
    out_path(out, sizeof out, "refused");
    const char *argv[] = {"nbdinfo", "--size", uri, NULL};
    int rc = run_tool(argv, out);
    char *text = slurp(out);
    printf("# refused (exit %d): %.*s", rc, 160, text);
    if (text[0] == '\0' || text[strlen(text) - 1] != '\n')
        printf("\n");
    assert_int_not_equal(rc, 0);
}

static void start(const struct np_opts *o)
{
    tp_need_program(np_program(o->server));
    tp_need_program("nbdinfo");
    int r = np_start(&cur, o);
    if (r != 0)
        print_error("np_start %s/%s failed\n", np_server_name(o->server), np_tls_name(o->tls));
    assert_int_equal(r, 0);
    printf("# %s/%s%s listening after %d ms (pid %ld)\n", np_server_name(o->server),
           np_tls_name(o->tls), o->unix_socket ? "/unix" : "", cur.listen_ms, (long)cur.pid);
}

/* Stop and check that nothing of the server is left.  Returns np_stop()'s result. */
static int stop_and_check(void)
{
    pid_t pid = cur.pid;
    bool running = tp_alive(pid);
    int rc = np_stop(&cur);
    if (running && rc != 0 && rc != 143)
        print_error("%s/%s ended with status %d on SIGTERM\n", np_server_name(cur.server),
                    np_tls_name(cur.tls), rc);
    if (running) /* exits on SIGTERM, with 0 (handled) or 143 */
        assert_true(rc == 0 || rc == 143);
    printf("# %s/%s stopped: status %d\n", np_server_name(cur.server), np_tls_name(cur.tls), rc);
    assert_int_equal(kill(pid, 0), -1);
    assert_int_equal(errno, ESRCH);
    assert_int_equal(np_leftovers(pid), 0);
    return rc;
}

static uint64_t export_size(enum np_server s)
{
    return s == NP_NBDKIT_MEMORY ? MEM_SIZE : DISK_SIZE;
}

static struct np_opts opts_for(enum np_server s, enum np_tls t)
{
    struct np_opts o;
    memset(&o, 0, sizeof o);
    o.server = s;
    o.tls = t;
    o.file = disk_path;
    o.mem_size = MEM_SIZE;
    return o;
}

/* ---- the matrix -------------------------------------------------------------------------- */

struct tcase {
    enum np_server server;
    enum np_tls tls;
    bool unix_socket;
};

static void test_info(void **state)
{
    const struct tcase *c = *state;
    struct np_opts o = opts_for(c->server, c->tls);
    o.unix_socket = c->unix_socket;
    start(&o);
    char uri[1024];
    assert_int_equal(np_uri(&cur, NULL, uri, sizeof uri), 0);
    nbdinfo_expect(uri, export_size(c->server), c->tls != NP_TLS_NONE);
    stop_and_check();
}

/* ---- nbd-server: several sequential connections to one daemon --------------------------- */

static int count_children(pid_t parent)
{
    /* np_leftovers counts the parent and group members too: children = leftovers - 1 when
     * every child stays in the group (nbd-server's do). */
    return np_leftovers(parent) - 1;
}

static void nbd_server_sequential(enum np_tls tls)
{
    struct np_opts o = opts_for(NP_NBD_SERVER, tls);
    start(&o);
    char uri[1024];
    assert_int_equal(np_uri(&cur, NULL, uri, sizeof uri), 0);
    for (int i = 0; i < 4; i++) {
        nbdinfo_expect(uri, DISK_SIZE, tls != NP_TLS_NONE);
        struct timespec ts = {0, 50 * 1000 * 1000};
        nanosleep(&ts, NULL);
        int kids = count_children(cur.pid);
        printf("# nbd-server/%s: after connection %d: %d child process(es) left\n",
               np_tls_name(tls), i + 1, kids);
    }
    stop_and_check();
}

static void test_nbd_server_sequential_plain(void **state)
{
    (void)state;
    nbd_server_sequential(NP_TLS_NONE);
}

static void test_nbd_server_sequential_tls(void **state)
{
    (void)state;
    nbd_server_sequential(NP_TLS_X509_VERIFY);
}

/* A client still connected when the server is stopped: nbd-server's per-connection child
 * must go too (and be reaped: we are its subreaper once the daemon is gone). */
static void test_nbd_server_stop_connected(void **state)
{
    (void)state;
    struct np_opts o = opts_for(NP_NBD_SERVER, NP_TLS_X509_VERIFY);
    start(&o);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    sa.sin_port = htons((uint16_t)cur.port);
    assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    /* the server forks a child that waits for our NBD options */
    int64_t deadline = now_ms() + 5000;
    while (np_leftovers(cur.pid) < 2 && now_ms() < deadline) {
        struct timespec ts = {0, 5 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    int n = np_leftovers(cur.pid);
    printf("# nbd-server with a client connected: %d process(es)\n", n);
    assert_true(n >= 2);
    stop_and_check();
    close(fd);
}

/* A server that cannot start: np_start() fails (printing the log's tail), nothing is left. */
static void test_start_failure(void **state)
{
    const struct tcase *c = *state;
    tp_need_program(np_program(c->server));
    struct np_opts o = opts_for(c->server, c->tls);
    o.file = "/nonexistent/np-disk.img";
    printf("# expect a start failure and a log tail below\n");
    fflush(stdout);
    assert_int_equal(np_start(&cur, &o), -1);
    assert_int_equal(cur.pid, -1);
}

/* ---- one connection, then the server exits by itself ------------------------------------- */

static void test_one_connection(void **state)
{
    const struct tcase *c = *state;
    struct np_opts o = opts_for(c->server, c->tls);
    o.one_connection = true;
    o.unix_socket = c->unix_socket;
    start(&o);
    char uri[1024];
    assert_int_equal(np_uri(&cur, NULL, uri, sizeof uri), 0);
    if (c->server == NP_NBD_SERVER) /* --json would need a second connection (see above) */
        nbdinfo_size(uri, export_size(c->server));
    else
        nbdinfo_expect(uri, export_size(c->server), c->tls != NP_TLS_NONE);
    int64_t deadline = now_ms() + 5000;
    while (tp_alive(cur.pid) && now_ms() < deadline) {
        struct timespec ts = {0, 5 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    bool exited = !tp_alive(cur.pid);
    int rc = stop_and_check();
    printf("# %s/%s one_connection: %s, status %d\n", np_server_name(c->server),
           np_tls_name(c->tls), exited ? "exited by itself" : "still running", rc);
    assert_true(exited);
    assert_int_equal(rc, 0);
}

/* ---- content: the export reads back as np_disk_byte() ------------------------------------ */

static void check_disk_copy(const char *path, uint64_t size)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    static uint8_t got[65536], want[65536];
    uint64_t off = 0;
    while (off < size) {
        size_t n = fread(got, 1, sizeof got, f);
        if (n == 0)
            break;
        np_disk_fill(DISK_SEED, off, want, n);
        if (memcmp(got, want, n) != 0) {
            size_t i = 0;
            while (got[i] == want[i])
                i++;
            print_error("byte %llu: 0x%02x, want 0x%02x\n", (unsigned long long)(off + i),
                        got[i], want[i]);
            fail();
        }
        off += n;
    }
    fclose(f);
    assert_int_equal(off, size);
}

static void test_content(void **state)
{
    const struct tcase *c = *state;
    tp_need_program("nbdcopy");
    struct np_opts o = opts_for(c->server, c->tls);
    o.read_only = true;
    start(&o);
    char uri[1024], copy[512], out[512];
    assert_int_equal(np_uri(&cur, NULL, uri, sizeof uri), 0);
    out_path(copy, sizeof copy, "copy");
    out_path(out, sizeof out, "nbdcopy");
    (void)unlink(copy);
    const char *argv[] = {"nbdcopy", uri, copy, NULL};
    int rc = run_tool(argv, out);
    if (rc != 0)
        print_error("nbdcopy: exit %d: %s\n", rc, slurp(out));
    assert_int_equal(rc, 0);
    check_disk_copy(copy, DISK_SIZE);
    (void)unlink(copy);
    stop_and_check();
}

/* ---- block status: the holes of np_make_sparse() ----------------------------------------- */

static void test_sparse_map(void **state)
{
    const struct tcase *c = *state;
    if (sparse_state != 0) {
        printf("# skip: the file system of %s does not report holes (%d)\n", sparse_path,
               sparse_state);
        skip();
    }
    struct np_opts o = opts_for(c->server, c->tls);
    o.file = sparse_path;
    start(&o);
    char uri[1024], out[512];
    assert_int_equal(np_uri(&cur, NULL, uri, sizeof uri), 0);
    out_path(out, sizeof out, "map");
    const char *argv[] = {"nbdinfo", "--map", uri, NULL};
    int rc = run_tool(argv, out);
    char *text = slurp(out);
    if (rc != 0)
        print_error("nbdinfo --map: exit %d: %s\n", rc, text);
    assert_int_equal(rc, 0);
    /* lines: OFFSET LENGTH TYPE DESCRIPTION; type bit 0 = hole */
    uint64_t next = 0;
    int extents = 0;
    for (char *line = strtok(text, "\n"); line != NULL; line = strtok(NULL, "\n")) {
        unsigned long long off, len;
        unsigned type;
        if (sscanf(line, "%llu %llu %u", &off, &len, &type) != 3)
            continue;
        assert_int_equal(off, next);
        bool data = (type & 1u) == 0;
        assert_int_equal(data, np_sparse_is_data(off, SPARSE_PERIOD, SPARSE_DATA));
        assert_int_equal(data, np_sparse_is_data(off + len - 1, SPARSE_PERIOD, SPARSE_DATA));
        next = off + len;
        extents++;
    }
    assert_int_equal(next, SPARSE_SIZE);
    printf("# %s: %d extents as laid out\n", np_server_name(c->server), extents);
    assert_int_equal(extents, 2 * (int)(SPARSE_SIZE / SPARSE_PERIOD));
    stop_and_check();
}

/* ---- refusals ----------------------------------------------------------------------------- */

/* A client certificate is required: a client with only the CA is refused. */
static void test_no_client_cert(void **state)
{
    const struct tcase *c = *state;
    struct np_opts o = opts_for(c->server, NP_TLS_X509_VERIFY);
    start(&o);
    char uri[1024];
    assert_int_equal(np_uri(&cur, np_pki("pki-caonly"), uri, sizeof uri), 0);
    nbdinfo_refused(uri);
    stop_and_check();
}

/* A TLS server refuses a plaintext client. */
static void test_plain_client(void **state)
{
    const struct tcase *c = *state;
    struct np_opts o = opts_for(c->server, c->tls);
    start(&o);
    char uri[1024];
    struct np_peer plain = cur;
    plain.tls = NP_TLS_NONE;
    assert_int_equal(np_uri(&plain, NULL, uri, sizeof uri), 0);
    nbdinfo_refused(uri);
    stop_and_check();
}

/* ---- fixtures ------------------------------------------------------------------------------ */

static int teardown_test(void **state)
{
    (void)state;
    if (tool_pid > 0) {
        tp_stop(tool_pid, 1000);
        tool_pid = -1;
    }
    if (cur.pid > 0)
        np_stop(&cur);
    return 0;
}

static int setup_group(void **state)
{
    (void)state;
    snprintf(disk_path, sizeof disk_path, "%s/np-disk-%ld.img", tp_build_dir(), (long)getpid());
    snprintf(sparse_path, sizeof sparse_path, "%s/np-sparse-%ld.img", tp_build_dir(),
             (long)getpid());
    if (np_make_disk(disk_path, DISK_SIZE, DISK_SEED) != 0)
        return -1;
    sparse_state = np_make_sparse(sparse_path, SPARSE_SIZE, SPARSE_PERIOD, SPARSE_DATA, DISK_SEED);
    return sparse_state < 0 ? -1 : 0;
}

static int teardown_group(void **state)
{
    (void)state;
    (void)unlink(disk_path);
    (void)unlink(sparse_path);
    return 0;
}

/* ---- the list -------------------------------------------------------------------------------- */

static const struct tcase matrix[] = {
    {NP_QEMU_NBD, NP_TLS_NONE, false},
    {NP_QEMU_NBD, NP_TLS_X509, false},
    {NP_QEMU_NBD, NP_TLS_X509_VERIFY, false},
    {NP_QEMU_NBD, NP_TLS_PSK, false},
    {NP_NBDKIT_MEMORY, NP_TLS_NONE, false},
    {NP_NBDKIT_MEMORY, NP_TLS_X509, false},
    {NP_NBDKIT_MEMORY, NP_TLS_X509_VERIFY, false},
    {NP_NBDKIT_MEMORY, NP_TLS_PSK, false},
    {NP_NBDKIT_FILE, NP_TLS_NONE, false},
    {NP_NBDKIT_FILE, NP_TLS_X509, false},
    {NP_NBDKIT_FILE, NP_TLS_X509_VERIFY, false},
    {NP_NBDKIT_FILE, NP_TLS_PSK, false},
    {NP_NBD_SERVER, NP_TLS_NONE, false},
    {NP_NBD_SERVER, NP_TLS_X509_VERIFY, false},
    {NP_QEMU_NBD, NP_TLS_NONE, true},
    {NP_QEMU_NBD, NP_TLS_PSK, true},
    {NP_NBDKIT_MEMORY, NP_TLS_X509, true},
    {NP_NBDKIT_FILE, NP_TLS_PSK, true},
    {NP_NBD_SERVER, NP_TLS_NONE, true},
    {NP_NBD_SERVER, NP_TLS_X509_VERIFY, true},
};

static const struct tcase one_conn[] = {
    {NP_QEMU_NBD, NP_TLS_X509, false},
    {NP_NBDKIT_MEMORY, NP_TLS_PSK, false},
    {NP_NBD_SERVER, NP_TLS_NONE, false},
    {NP_NBD_SERVER, NP_TLS_X509_VERIFY, true},
};

static const struct tcase content[] = {
    {NP_QEMU_NBD, NP_TLS_X509, false},
    {NP_NBDKIT_FILE, NP_TLS_PSK, false},
    {NP_NBD_SERVER, NP_TLS_X509_VERIFY, false},
};

static const struct tcase sparse[] = {
    {NP_QEMU_NBD, NP_TLS_NONE, false},
    {NP_NBDKIT_FILE, NP_TLS_NONE, false},
};

static const struct tcase verify[] = {
    {NP_QEMU_NBD, NP_TLS_X509_VERIFY, false},
    {NP_NBDKIT_MEMORY, NP_TLS_X509_VERIFY, false},
    {NP_NBD_SERVER, NP_TLS_X509_VERIFY, false},
};

static const struct tcase bad_start[] = {
    {NP_QEMU_NBD, NP_TLS_X509, false},
    {NP_NBDKIT_FILE, NP_TLS_NONE, false},
};

static const struct tcase plain_client[] = {
    {NP_QEMU_NBD, NP_TLS_PSK, false},
    {NP_NBDKIT_MEMORY, NP_TLS_X509, false},
    {NP_NBD_SERVER, NP_TLS_X509_VERIFY, false},
};

#define N_OF(a) (sizeof(a) / sizeof((a)[0]))
#define N_TESTS                                                                               \
    (N_OF(matrix) + N_OF(one_conn) + N_OF(content) + N_OF(sparse) + N_OF(verify) +            \
     N_OF(plain_client) + N_OF(bad_start) + 3)

static struct CMUnitTest tests[N_TESTS];
static char names[N_TESTS][80];
static size_t n_tests;

static void add(const char *kind, CMUnitTestFunction fn, const struct tcase *c)
{
    char *name = names[n_tests];
    if (c != NULL)
        snprintf(name, sizeof names[0], "%s %s/%s%s", kind, np_server_name(c->server),
                 np_tls_name(c->tls), c->unix_socket ? "/unix" : "");
    else
        snprintf(name, sizeof names[0], "%s", kind);
    struct CMUnitTest t = {name, fn, NULL, teardown_test, NULL};
    /* cmocka hands initial_state to the test as *state; it never writes through it. */
    memcpy(&t.initial_state, &c, sizeof c);
    tests[n_tests++] = t;
}

int main(void)
{
    for (size_t i = 0; i < N_OF(matrix); i++)
        add("info", test_info, &matrix[i]);
    add("nbd-server sequential connections", test_nbd_server_sequential_plain, NULL);
    add("nbd-server sequential TLS connections", test_nbd_server_sequential_tls, NULL);
    add("nbd-server stopped with a client connected", test_nbd_server_stop_connected, NULL);
    for (size_t i = 0; i < N_OF(one_conn); i++)
        add("one connection", test_one_connection, &one_conn[i]);
    for (size_t i = 0; i < N_OF(content); i++)
        add("content", test_content, &content[i]);
    for (size_t i = 0; i < N_OF(sparse); i++)
        add("holes", test_sparse_map, &sparse[i]);
    for (size_t i = 0; i < N_OF(verify); i++)
        add("no client cert", test_no_client_cert, &verify[i]);
    for (size_t i = 0; i < N_OF(plain_client); i++)
        add("plaintext client", test_plain_client, &plain_client[i]);
    for (size_t i = 0; i < N_OF(bad_start); i++)
        add("start failure", test_start_failure, &bad_start[i]);
    return _cmocka_run_group_tests("nbdpeer", tests, n_tests, setup_group, teardown_group);
}
