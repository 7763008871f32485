/* sechan-nbd copy: between an NBD export and a file or - (stdin/stdout).
 * Each connection keeps a window of requests in flight; several
 * connections run when the server advertises multi-conn. Output to a pipe
 * stays in order. Any failed request ends the copy with a non-zero exit
 * (libnbd CVE-2022-0485 was a copy that reported success anyway). */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <stdarg.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <mbedtls/sha256.h>

#include "cli.h"
#include "sechan/port.h"

#define MAX_CONNS 16

struct copy {
    struct nbd_uri uri;
    bool download;              /* NBD -> file */
    int fd;
    bool seekable;
    bool fresh_file;            /* we created and truncated it: zero chunks may be skipped */
    uint64_t size;
    uint32_t req_size;
    unsigned requests, conns;
    bool progress, checksum;
    atomic_uint_fast64_t next;   /* next offset to hand out */
    atomic_uint_fast64_t done;   /* bytes finished */
    atomic_int failed;          /* first exit code */
    char msg[256];
    pthread_mutex_t lock;
    pthread_cond_t turn;
    uint64_t write_pos;         /* ordered output / sequential input position */
    mbedtls_sha256_context stream_sha;  /* --checksum of a non-seekable side */
    uint16_t flags;
};

struct slot {
    uint64_t offset;
    uint32_t len;
    bool busy, done;
    uint8_t *buf;
};

static void copy_fail(struct copy *cp, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void copy_fail(struct copy *cp, int code, const char *fmt, ...)
{
    int expected = 0;
    if (atomic_compare_exchange_strong(&cp->failed, &expected, code)) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(cp->msg, sizeof(cp->msg), fmt, ap);
        va_end(ap);
    }
    pthread_mutex_lock(&cp->lock);
    pthread_cond_broadcast(&cp->turn);
    pthread_mutex_unlock(&cp->lock);
}

static bool all_zero(const uint8_t *p, size_t n)
{
    static const uint8_t z[4096];
    while (n >= sizeof(z)) {
        if (memcmp(p, z, sizeof(z)) != 0)
            return false;
        p += sizeof(z);
        n -= sizeof(z);
    }
    return memcmp(p, z, n) == 0;
}

static int write_all_fd(int fd, const uint8_t *p, size_t n, int64_t at)
{
    while (n > 0) {
        ssize_t w = at >= 0 ? pwrite(fd, p, n, (off_t)at) : write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        p += w;
        n -= (size_t)w;
        if (at >= 0)
            at += w;
    }
    return 0;
}

static ssize_t read_full_fd(int fd, uint8_t *p, size_t n, int64_t at)
{
    size_t got = 0;
    while (got < n) {
        ssize_t r = at >= 0 ? pread(fd, p + got, n - got, (off_t)(at + (int64_t)got))
                            : read(fd, p + got, n - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return -1;
        if (r == 0)
            break;
        got += (size_t)r;
    }
    return (ssize_t)got;
}

/* Downloaded chunk at the head of a connection's window: put it out. */
static void emit(struct copy *cp, struct slot *s)
{
    if (cp->seekable) {
        if (cp->fresh_file && all_zero(s->buf, s->len))
            return;  /* the truncated file already reads as zeroes there */
        if (write_all_fd(cp->fd, s->buf, s->len, (int64_t)s->offset) != 0)
            copy_fail(cp, EXIT_IO, "write to the destination at %llu failed: %s",
                      (unsigned long long)s->offset, strerror(errno));
        return;
    }
    pthread_mutex_lock(&cp->lock);
    while (cp->write_pos != s->offset && atomic_load(&cp->failed) == 0)
        pthread_cond_wait(&cp->turn, &cp->lock);
    if (atomic_load(&cp->failed) == 0) {
        if (write_all_fd(cp->fd, s->buf, s->len, -1) != 0)
            copy_fail(cp, EXIT_IO, "write to the destination failed: %s", strerror(errno));
        if (cp->checksum)
            mbedtls_sha256_update(&cp->stream_sha, s->buf, s->len);
        cp->write_pos += s->len;
        pthread_cond_broadcast(&cp->turn);
    }
    pthread_mutex_unlock(&cp->lock);
}

/* Fill a slot for upload: returns false when the input is exhausted. */
static bool fill(struct copy *cp, struct slot *s)
{
    if (cp->seekable) {
        uint64_t off = atomic_fetch_add(&cp->next, cp->req_size);
        if (off >= cp->size)
            return false;
        s->offset = off;
        s->len = (uint32_t)(cp->size - off < cp->req_size ? cp->size - off : cp->req_size);
        ssize_t r = read_full_fd(cp->fd, s->buf, s->len, (int64_t)off);
        if (r != (ssize_t)s->len) {
            copy_fail(cp, EXIT_IO, "read of the source at %llu failed", (unsigned long long)off);
            return false;
        }
        return true;
    }
    /* A pipe: one connection reads it in order. */
    uint64_t off = cp->write_pos;
    if (off >= cp->size)
        return false;
    uint32_t want = (uint32_t)(cp->size - off < cp->req_size ? cp->size - off : cp->req_size);
    ssize_t r = read_full_fd(cp->fd, s->buf, want, -1);
    if (r < 0) {
        copy_fail(cp, EXIT_IO, "read of the source failed: %s", strerror(errno));
        return false;
    }
    if (r == 0)
        return false;
    if (cp->checksum)
        mbedtls_sha256_update(&cp->stream_sha, s->buf, (size_t)r);
    s->offset = off;
    s->len = (uint32_t)r;
    cp->write_pos += (uint64_t)r;
    return true;
}

static int submit(struct copy *cp, struct cli_conn *c, struct slot *s)
{
    struct sc_nbd_request req = {.offset = s->offset, .length = s->len, .buf = s->buf, .user = s};
    if (cp->download) {
        req.type = SC_NBD_CMD_READ;
    } else if ((cp->flags & SC_NBD_FLAG_SEND_WRITE_ZEROES) && all_zero(s->buf, s->len)) {
        req.type = SC_NBD_CMD_WRITE_ZEROES;
        req.buf = NULL;
    } else {
        req.type = SC_NBD_CMD_WRITE;
    }
    return sc_nbd_client_submit(&c->nbd.eng, &req, NULL);
}

struct worker {
    struct copy *cp;
    struct cli_conn *conn;
    struct slot slots[SC_NBD_WINDOW];
    pthread_t th;
};

static void *work(void *arg)
{
    struct worker *w = arg;
    struct copy *cp = w->cp;
    struct cli_conn *c = w->conn;
    unsigned head = 0, used = 0, n = cp->requests;
    bool input_left = true;
    while (atomic_load(&cp->failed) == 0) {
        while (input_left && used < n) {
            struct slot *s = &w->slots[(head + used) % n];
            if (cp->download) {
                uint64_t off = atomic_fetch_add(&cp->next, cp->req_size);
                if (off >= cp->size) {
                    input_left = false;
                    break;
                }
                s->offset = off;
                s->len = (uint32_t)(cp->size - off < cp->req_size ? cp->size - off : cp->req_size);
            } else if (!fill(cp, s)) {
                input_left = false;
                break;
            }
            s->busy = true;
            s->done = false;
            int r = submit(cp, c, s);
            if (r != 0) {
                copy_fail(cp, EXIT_NBD, "request at %llu refused locally: %s",
                          (unsigned long long)s->offset, sc_strerror(r));
                break;
            }
            used++;
        }
        if (used == 0 || atomic_load(&cp->failed) != 0)
            break;
        int r = sc_nbd_conn_wait(&c->nbd, cli_deadline());
        if (r != 0) {
            copy_fail(cp, cli_exit_code(r), "%s", sc_nbd_conn_errmsg(&c->nbd));
            break;
        }
        struct sc_nbd_completion done;
        while (sc_nbd_client_reap(&c->nbd.eng, &done) == 1) {
            struct slot *s = done.user;
            if (done.error != 0) {
                copy_fail(cp, EXIT_IO, "%s at offset %llu failed: server error %u",
                          cp->download ? "read" : "write", (unsigned long long)s->offset,
                          done.nbd_error);
            }
            s->done = true;
        }
        while (used > 0 && w->slots[head].done && atomic_load(&cp->failed) == 0) {
            struct slot *s = &w->slots[head];
            if (cp->download)
                emit(cp, s);
            atomic_fetch_add(&cp->done, s->len);
            s->busy = false;
            head = (head + 1) % n;
            used--;
        }
    }
    if (atomic_load(&cp->failed) == 0 && !cp->download &&
        (cp->flags & SC_NBD_FLAG_SEND_FLUSH)) {
        int r = sc_nbd_command(&c->nbd, SC_NBD_CMD_FLUSH, 0, 0, 0, cli_deadline());
        if (r != 0)
            copy_fail(cp, EXIT_IO, "flush failed: %s", sc_nbd_conn_errmsg(&c->nbd));
    }
    return NULL;
}

static void show_progress(struct copy *cp, double secs, bool final)
{
    uint64_t d = atomic_load(&cp->done);
    double mb = (double)d / 1e6;
    fprintf(stderr, "\r%5.1f%%  %8.1f MB  %7.1f MB/s%s", cp->size ? 100.0 * (double)d / (double)cp->size : 100.0,
            mb, secs > 0 ? mb / secs : 0.0, final ? "\n" : "");
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* --checksum: SHA-256 of one side, read again from the start. */
typedef int (*read_at_fn)(void *ctx, uint8_t *buf, uint32_t n, uint64_t off);

static int read_nbd_at(void *ctx, uint8_t *buf, uint32_t n, uint64_t off)
{
    struct cli_conn *c = ctx;
    int r = sc_nbd_pread(&c->nbd, buf, n, off, cli_deadline());
    if (r != 0)
        fprintf(stderr, "sechan-nbd: checksum read at %llu: %s\n", (unsigned long long)off,
                sc_nbd_conn_errmsg(&c->nbd));
    return r;
}

static int read_file_at(void *ctx, uint8_t *buf, uint32_t n, uint64_t off)
{
    const struct copy *cp = ctx;
    if (read_full_fd(cp->fd, buf, n, (int64_t)off) == (ssize_t)n)
        return 0;
    fprintf(stderr, "sechan-nbd: checksum: cannot read the file back at %llu\n",
            (unsigned long long)off);
    return -1;
}

static int hash_side(struct copy *cp, read_at_fn read_at, void *ctx, uint8_t out[32])
{
    mbedtls_sha256_context sha;
    mbedtls_sha256_init(&sha);
    mbedtls_sha256_starts(&sha, 0);
    uint8_t *buf = malloc(cp->req_size);
    int rc = buf == NULL ? EXIT_IO : 0;
    for (uint64_t off = 0; off < cp->size && rc == 0;) {
        uint32_t n = (uint32_t)(cp->size - off < cp->req_size ? cp->size - off : cp->req_size);
        if (read_at(ctx, buf, n, off) != 0)
            rc = EXIT_IO;
        else
            mbedtls_sha256_update(&sha, buf, n);
        off += n;
    }
    free(buf);
    mbedtls_sha256_finish(&sha, out);
    mbedtls_sha256_free(&sha);
    return rc;
}

static int open_file_side(struct copy *cp, const char *name)
{
    bool dash = strcmp(name, "-") == 0;
    if (cp->download) {
        cp->fd = dash ? STDOUT_FILENO : open(name, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        cp->fresh_file = !dash;
    } else {
        cp->fd = dash ? STDIN_FILENO : open(name, O_RDONLY | O_CLOEXEC);
    }
    if (cp->fd < 0) {
        fprintf(stderr, "sechan-nbd: %s: %s\n", name, strerror(errno));
        return EXIT_USAGE;
    }
    struct stat st;
    cp->seekable = fstat(cp->fd, &st) == 0 && S_ISREG(st.st_mode);
    if (cp->download && cp->seekable && cp->fresh_file && ftruncate(cp->fd, (off_t)cp->size) != 0)
        cp->fresh_file = false;
    if (!cp->download && cp->seekable) {
        if ((uint64_t)st.st_size > cp->size) {
            fprintf(stderr, "sechan-nbd: %s (%lld bytes) is larger than the export (%llu)\n",
                    name, (long long)st.st_size, (unsigned long long)cp->size);
            return EXIT_USAGE;
        }
        cp->size = (uint64_t)st.st_size;
    }
    return 0;
}

static int parse_uint(const char *arg, const char *name, unsigned long max, unsigned long *out)
{
    size_t n = strlen(name);
    if (strncmp(arg, name, n) != 0 || arg[n] != '=')
        return 1;
    uint64_t v;
    if (cli_parse_size(arg + n + 1, &v) != 0 || v == 0 || v > max) {
        fprintf(stderr, "sechan-nbd copy: bad %s (1..%lu)\n", name, max);
        return -1;
    }
    *out = (unsigned long)v;
    return 0;
}

int cmd_copy(int argc, char **argv)
{
    static struct copy cp;
    const char *src = NULL, *dst = NULL;
    unsigned long conns = 0, requests = SC_NBD_WINDOW, req_size = 256u << 10, timeout = 30;
    cp.progress = isatty(STDERR_FILENO);
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        int r;
        if (strcmp(a, "--no-progress") == 0)
            cp.progress = false;
        else if (strcmp(a, "--progress") == 0)
            cp.progress = true;
        else if (strcmp(a, "--checksum") == 0)
            cp.checksum = true;
        else if ((r = parse_uint(a, "--connections", MAX_CONNS, &conns)) <= 0 ||
                 (r = parse_uint(a, "--requests", SC_NBD_WINDOW, &requests)) <= 0 ||
                 (r = parse_uint(a, "--request-size", SC_NBD_SRV_REQ_MAX, &req_size)) <= 0 ||
                 (r = parse_uint(a, "--timeout", 86400, &timeout)) <= 0) {
            if (r < 0)
                return EXIT_USAGE;
        } else if (a[0] != '-' || strcmp(a, "-") == 0) {
            if (src == NULL)
                src = a;
            else if (dst == NULL)
                dst = a;
            else {
                fprintf(stderr, "sechan-nbd copy: too many arguments\n");
                return EXIT_USAGE;
            }
        } else {
            fprintf(stderr, "sechan-nbd copy: unknown option '%s'\n", a);
            return EXIT_USAGE;
        }
    }
    cli_timeout_s = (unsigned)timeout;
    if (src == NULL || dst == NULL) {
        fprintf(stderr, "sechan-nbd copy: give SRC and DST (one an NBD URI, the other a file or -)\n");
        return EXIT_USAGE;
    }
    bool src_uri = nbd_uri_is_uri(src), dst_uri = nbd_uri_is_uri(dst);
    if (src_uri == dst_uri) {
        fprintf(stderr, "sechan-nbd copy: exactly one of SRC and DST must be an NBD URI\n");
        return EXIT_USAGE;
    }
    cp.download = src_uri;
    char err[128];
    if (nbd_uri_parse(src_uri ? src : dst, &cp.uri, err, sizeof(err)) != 0) {
        fprintf(stderr, "sechan-nbd: bad URI: %s\n", err);
        return EXIT_USAGE;
    }
    cp.req_size = (uint32_t)req_size;
    cp.requests = (unsigned)requests;
    pthread_mutex_init(&cp.lock, NULL);
    pthread_cond_init(&cp.turn, NULL);
    mbedtls_sha256_init(&cp.stream_sha);
    mbedtls_sha256_starts(&cp.stream_sha, 0);

    static struct cli_conn conn[MAX_CONNS];
    static struct worker workers[MAX_CONNS];
    struct sc_nbd_client_config cfg = {.no_block_status = true};
    int r = cli_connect(&conn[0], &cp.uri, &cfg);
    if (r != 0)
        return r;
    const struct sc_nbd_export_info *in = sc_nbd_client_info(&conn[0].nbd.eng);
    cp.size = in->size;
    cp.flags = in->flags;
    if (!cp.download && (in->flags & SC_NBD_FLAG_READ_ONLY)) {
        fprintf(stderr, "sechan-nbd: the export is read-only\n");
        cli_disconnect(&conn[0]);
        return EXIT_NBD;
    }
    if (in->block_max && cp.req_size > in->block_max)
        cp.req_size = in->block_max;
    r = open_file_side(&cp, src_uri ? dst : src);
    if (r != 0) {
        cli_disconnect(&conn[0]);
        return r;
    }
    /* Several connections only where the server promises they agree, and
     * only where they pay: a TLS connection is bound by one core's
     * decryption (Mbed TLS AES-GCM), a plaintext one by nothing a second
     * connection would add on a small machine (measured: make bench). */
    bool multi = (in->flags & SC_NBD_FLAG_CAN_MULTI_CONN) != 0;
    if (conns == 0) {
        long cpus = sysconf(_SC_NPROCESSORS_ONLN);
        conns = multi && cp.uri.tls ? (unsigned long)(cpus < 1 ? 1 : cpus > 4 ? 4 : cpus) : 1;
    }
    if (conns > 1 && !multi) {
        fprintf(stderr, "sechan-nbd: the server does not advertise multi-conn; using 1 connection\n");
        conns = 1;
    }
    if (!cp.download && !cp.seekable)
        conns = 1;  /* a pipe is read in order by one connection */
    cp.conns = (unsigned)conns;
    for (unsigned i = 1; i < cp.conns; i++) {
        r = cli_connect(&conn[i], &cp.uri, &cfg);
        if (r != 0) {
            for (unsigned j = 0; j < i; j++)
                cli_disconnect(&conn[j]);
            return r;
        }
    }
    for (unsigned i = 0; i < cp.conns; i++) {
        workers[i].cp = &cp;
        workers[i].conn = &conn[i];
        for (unsigned k = 0; k < cp.requests; k++) {
            workers[i].slots[k].buf = malloc(cp.req_size);
            if (workers[i].slots[k].buf == NULL) {
                fprintf(stderr, "sechan-nbd: out of memory\n");
                return EXIT_IO;
            }
        }
    }
    double t0 = now_s();
    for (unsigned i = 0; i < cp.conns; i++)
        pthread_create(&workers[i].th, NULL, work, &workers[i]);
    if (cp.progress) {
        for (;;) {
            struct timespec ts = {0, 200 * 1000 * 1000};
            nanosleep(&ts, NULL);
            show_progress(&cp, now_s() - t0, false);
            if (atomic_load(&cp.done) >= cp.size || atomic_load(&cp.failed) != 0)
                break;
        }
    }
    for (unsigned i = 0; i < cp.conns; i++)
        pthread_join(workers[i].th, NULL);
    double secs = now_s() - t0;
    if (cp.progress)
        show_progress(&cp, secs, true);
    int rc = atomic_load(&cp.failed);
    if (rc != 0)
        fprintf(stderr, "sechan-nbd: copy failed: %s\n", cp.msg);
    if (rc == 0 && cp.checksum) {
        uint8_t a[32], b[32];
        int h1 = hash_side(&cp, read_nbd_at, &conn[0], a);
        int h2 = 0;
        if (cp.seekable)
            h2 = hash_side(&cp, read_file_at, &cp, b);
        else
            mbedtls_sha256_finish(&cp.stream_sha, b);
        char hex[65];
        for (int i = 0; i < 32; i++)
            snprintf(hex + 2 * i, 3, "%02x", a[i]);
        if (h1 != 0 || h2 != 0) {
            rc = EXIT_IO;
        } else if (memcmp(a, b, 32) != 0) {
            fprintf(stderr, "sechan-nbd: checksum MISMATCH: export sha256 %s differs from the file\n", hex);
            rc = EXIT_VERIFY;
        } else {
            fprintf(stderr, "sechan-nbd: checksum sha256 %s (source and destination agree)\n", hex);
        }
    }
    for (unsigned i = 0; i < cp.conns; i++)
        cli_disconnect(&conn[i]);
    if (cp.fd > STDERR_FILENO)
        close(cp.fd);
    if (rc == 0 && !cp.progress && getenv("SECHAN_NBD_STATS") != NULL)
        fprintf(stderr, "sechan-nbd: %llu bytes in %.3f s (%.1f MB/s), %u connection(s)\n",
                (unsigned long long)cp.size, secs, (double)cp.size / 1e6 / secs, cp.conns);
    return rc;
}
