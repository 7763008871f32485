/* sechan-nbd serve: export a file or memory over NBD to a fixed pool of
 * clients, one thread, poll(). TLS policy off / on (optional) / require.
 * A client that has not reached the transmission phase within the
 * handshake timeout is dropped, and clients beyond the pool are refused
 * (QEMU CVE-2024-7409 was an unbounded number of idle handshakes). */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "sechan/nbd_backend.h"
#include "sechan/port.h"

#define POOL_MAX 16
#define CLIENT_BUF (1u << 20)

struct client {
    bool used;
    unsigned id;
    struct sc_sock sock;
    struct sc_nbd_server_conn conn;
    uint64_t started_ms;
    enum sc_dir want;
    uint8_t *buf;
};

static struct client pool[POOL_MAX];
static volatile sig_atomic_t stop_requested;
static struct sc_tls_creds server_creds;

static void on_signal(int sig)
{
    (void)sig;
    stop_requested = 1;
}

static void drop(struct client *c, const char *why)
{
    fprintf(stderr, "sechan-nbd: client %u: %s\n", c->id, why);
    sc_nbd_server_conn_close(&c->conn);
    sc_close(&c->sock.base);
    c->used = false;
}

struct serve_opts {
    const char *file;
    uint64_t memory;
    long port;
    const char *unix_path;
    const char *export_name;
    const char *description;
    enum sc_nbd_tls_policy tls;
    bool tls_given;
    const char *certs, *psk;
    bool verify_peer, read_only, once;
    unsigned max_clients;
    unsigned hs_timeout_s;
};

static int parse(int argc, char **argv, struct serve_opts *o)
{
    *o = (struct serve_opts){.port = SC_NBD_DEFAULT_PORT, .export_name = "",
                             .max_clients = POOL_MAX, .hs_timeout_s = 10};
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        const char *v = strchr(a, '=');
        v = v ? v + 1 : NULL;
        uint64_t n;
        if (strcmp(a, "--memory") == 0 && i + 1 < argc) {
            if (cli_parse_size(argv[++i], &o->memory) != 0 || o->memory == 0)
                return -1;
        } else if (strncmp(a, "--memory=", 9) == 0) {
            if (cli_parse_size(v, &o->memory) != 0 || o->memory == 0)
                return -1;
        } else if (strncmp(a, "--port=", 7) == 0) {
            if (cli_parse_size(v, &n) != 0 || n > 65535)
                return -1;
            o->port = (long)n;
        } else if (strncmp(a, "--unix=", 7) == 0) {
            o->unix_path = v;
        } else if (strncmp(a, "--export=", 9) == 0) {
            o->export_name = v;
        } else if (strncmp(a, "--description=", 14) == 0) {
            o->description = v;
        } else if (strncmp(a, "--tls=", 6) == 0) {
            o->tls_given = true;
            if (strcmp(v, "off") == 0)
                o->tls = SC_NBD_TLS_OFF;
            else if (strcmp(v, "on") == 0)
                o->tls = SC_NBD_TLS_OPTIONAL;
            else if (strcmp(v, "require") == 0)
                o->tls = SC_NBD_TLS_REQUIRE;
            else
                return -1;
        } else if (strncmp(a, "--tls-certificates=", 19) == 0) {
            o->certs = v;
        } else if (strncmp(a, "--tls-psk-file=", 15) == 0) {
            o->psk = v;
        } else if (strcmp(a, "--tls-verify-peer") == 0) {
            o->verify_peer = true;
        } else if (strcmp(a, "--read-only") == 0) {
            o->read_only = true;
        } else if (strcmp(a, "--once") == 0) {
            o->once = true;
        } else if (strncmp(a, "--max-clients=", 14) == 0) {
            if (cli_parse_size(v, &n) != 0 || n == 0 || n > POOL_MAX)
                return -1;
            o->max_clients = (unsigned)n;
        } else if (strncmp(a, "--handshake-timeout=", 20) == 0) {
            if (cli_parse_size(v, &n) != 0 || n == 0 || n > 3600)
                return -1;
            o->hs_timeout_s = (unsigned)n;
        } else if (a[0] != '-' && o->file == NULL) {
            o->file = a;
        } else {
            return -1;
        }
    }
    if ((o->file == NULL) == (o->memory == 0))
        return -1;
    if (o->certs && o->psk)
        return -1;
    if (!o->tls_given)
        o->tls = (o->certs || o->psk) ? SC_NBD_TLS_REQUIRE : SC_NBD_TLS_OFF;
    if (o->tls != SC_NBD_TLS_OFF && !o->certs && !o->psk)
        return -1;
    return 0;
}

static void accept_one(struct sc_listener *l, const struct serve_opts *o,
                       const struct sc_nbd_server_config *cfg, const struct sc_tls_config *tcfg,
                       unsigned *next_id)
{
    struct sc_sock s;
    if (sc_listener_accept(l, &s, sc_port_now_ms()) != 0)
        return;
    unsigned id = ++*next_id;
    struct client *c = NULL;
    unsigned active = 0;
    for (unsigned i = 0; i < POOL_MAX; i++) {
        active += pool[i].used;
        if (!pool[i].used && c == NULL && i < o->max_clients)
            c = &pool[i];
    }
    if (c == NULL || active >= o->max_clients) {
        fprintf(stderr, "sechan-nbd: client %u refused: all %u slots are busy\n", id,
                o->max_clients);
        sc_close(&s.base);
        return;
    }
    c->used = true;
    c->id = id;
    c->sock = s;
    c->sock.base.ops = s.base.ops;
    c->started_ms = sc_port_now_ms();
    c->want = SC_DIR_WRITE;
    struct sc_nbd_server_config ccfg = *cfg;
    ccfg.buf = c->buf;
    ccfg.buf_len = CLIENT_BUF;
    if (sc_nbd_server_conn_init(&c->conn, &c->sock.base, &ccfg, tcfg) != 0) {
        drop(c, sc_nbd_server_conn_errmsg(&c->conn));
        return;
    }
    fprintf(stderr, "sechan-nbd: client %u connected\n", id);
}

int cmd_serve(int argc, char **argv)
{
    struct serve_opts o;
    if (parse(argc, argv, &o) != 0) {
        fprintf(stderr, "sechan-nbd serve: bad arguments (see sechan-nbd --help)\n");
        return EXIT_USAGE;
    }
    static struct sc_nbd_file_backend file;
    static struct sc_nbd_mem_backend mem;
    struct sc_nbd_export exp = {.name = o.export_name, .description = o.description,
                                .read_only = o.read_only, .multi_conn = true};
    if (o.file) {
        if (sc_nbd_file_open(&file, o.file, o.read_only) != 0) {
            fprintf(stderr, "sechan-nbd: %s\n", file.msg);
            return EXIT_USAGE;
        }
        exp.size = file.size;
        exp.ops = &sc_nbd_file_ops;
        exp.ctx = &file;
    } else {
        mem.data = calloc(1, (size_t)o.memory);
        if (mem.data == NULL) {
            fprintf(stderr, "sechan-nbd: cannot allocate %llu bytes\n",
                    (unsigned long long)o.memory);
            return EXIT_USAGE;
        }
        mem.size = o.memory;
        exp.size = o.memory;
        exp.ops = &sc_nbd_mem_ops;
        exp.ctx = &mem;
    }
    struct sc_tls_config tcfg = {.endpoint = SC_TLS_SERVER, .creds = &server_creds,
                                 .verify_peer = o.verify_peer};
    if (o.tls != SC_NBD_TLS_OFF) {
        int r = sc_tls_creds_init(&server_creds);
        if (r == 0)
            r = o.psk ? sc_tls_creds_load_psk_file(&server_creds, o.psk)
                      : sc_tls_creds_load_x509_dir(&server_creds, o.certs, SC_TLS_SERVER);
        if (r != 0) {
            fprintf(stderr, "sechan-nbd: %s\n", sc_tls_creds_errmsg(&server_creds));
            return EXIT_CREDS;
        }
    }
    struct sc_nbd_server_config cfg = {.exports = &exp, .nr_exports = 1, .tls = o.tls};
    for (unsigned i = 0; i < POOL_MAX; i++) {
        pool[i].buf = malloc(CLIENT_BUF);
        if (pool[i].buf == NULL)
            return EXIT_USAGE;
    }
    struct sc_listener l;
    int r = o.unix_path ? sc_unix_listen(&l, o.unix_path, 16)
                        : sc_tcp_listen(&l, "127.0.0.1", (uint16_t)o.port, 16);
    if (r != 0) {
        fprintf(stderr, "sechan-nbd: cannot listen: %s\n", l.msg);
        return EXIT_CONNECT;
    }
    if (o.unix_path)
        fprintf(stderr, "sechan-nbd: listening on unix socket %s\n", o.unix_path);
    else
        fprintf(stderr, "sechan-nbd: listening on 127.0.0.1:%u\n", sc_listener_port(&l));
    fflush(stderr);
    struct sigaction sa = {.sa_handler = on_signal};
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);

    unsigned next_id = 0, finished = 0;
    while (!stop_requested && !(o.once && finished > 0)) {
        struct pollfd pfd[POOL_MAX + 1];
        struct client *who[POOL_MAX + 1];
        nfds_t n = 0;
        pfd[n] = (struct pollfd){.fd = l.fd, .events = POLLIN};
        who[n++] = NULL;
        for (unsigned i = 0; i < POOL_MAX; i++) {
            if (!pool[i].used)
                continue;
            short ev = 0;
            if (pool[i].want & SC_DIR_READ)
                ev |= POLLIN;
            if (pool[i].want & SC_DIR_WRITE)
                ev |= POLLOUT;
            pfd[n] = (struct pollfd){.fd = pool[i].sock.fd, .events = ev ? ev : POLLIN};
            who[n++] = &pool[i];
        }
        if (poll(pfd, n, 200) < 0 && errno != EINTR)
            break;
        if (pfd[0].revents & POLLIN)
            accept_one(&l, &o, &cfg, o.tls != SC_NBD_TLS_OFF ? &tcfg : NULL, &next_id);
        uint64_t now = sc_port_now_ms();
        for (nfds_t k = 1; k < n; k++) {
            struct client *c = who[k];
            if (!c->used)
                continue;
            if (pfd[k].revents != 0) {
                c->want = SC_DIR_NONE;
                r = sc_nbd_server_conn_pump(&c->conn, &c->want);
                if (r == 1) {
                    drop(c, "session ended");
                    finished++;
                    continue;
                }
                if (r < 0 && r != SC_ERR_AGAIN) {
                    drop(c, sc_nbd_server_conn_errmsg(&c->conn));
                    finished++;
                    continue;
                }
                if (r == 0 && c->want == SC_DIR_NONE)
                    c->want = SC_DIR_BOTH;  /* more to do: come back at once */
            }
            if (sc_nbd_server_negotiating(&c->conn.eng) &&
                now - c->started_ms > o.hs_timeout_s * 1000ull) {
                drop(c, "dropped: no NBD_OPT_GO within the handshake timeout");
                finished++;
            }
        }
    }
    for (unsigned i = 0; i < POOL_MAX; i++) {
        if (pool[i].used)
            drop(&pool[i], "server shutting down");
    }
    sc_listener_close(&l);
    if (o.unix_path)
        unlink(o.unix_path);
    if (o.file)
        sc_nbd_file_close(&file);
    fprintf(stderr, "sechan-nbd: server stopped\n");
    return EXIT_OK;
}
