/* sechan-gw serve: a fixed pool of connections, one thread each. A
 * connection is authenticated (TLS, then SASL), mapped to its backend by
 * identity, and relayed both ways until either end closes. SIGTERM stops
 * accepting, ends every relay with a clean shutdown, and exits. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "gw.h"
#include "sechan/port.h"
#include "sechan/tcp.h"

#define RELAY_BUF 16384
#define LAYER_BUF (SC_SASL_MAXBUF_DEFAULT + 4)

struct gw_conn {
    atomic_bool used;
    atomic_bool done;
    pthread_t thread;
    unsigned id;
    const struct gw_config *cfg;
    struct sc_sock sock;
    struct sc_sock backend;
    struct sc_tls tls;
    struct sc_sasl sasl;
    struct sc_sasl_layer layer;
    uint8_t layer_rx[LAYER_BUF];
    uint8_t layer_tx[LAYER_BUF];
    uint8_t buf[RELAY_BUF];
    uint64_t bytes_in, bytes_out;
};

static struct gw_conn pool[GW_POOL_MAX];
static uint8_t decoy_key[SC_SASL_DECOY_KEY_LEN];  /* made once at start */
static atomic_int stop_requested;
static struct sc_tls_creds tls_creds;

static void nap_ms(long ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static void on_signal(int sig)
{
    (void)sig;
    atomic_store(&stop_requested, 1);
}

static void logf_conn(const struct gw_conn *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void logf_conn(const struct gw_conn *c, const char *fmt, ...)
{
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    fprintf(stderr, "sechan-gw: conn %u: %s\n", c->id, line);
}

static const char *addr_text(const struct gw_addr *a, char *buf, size_t cap)
{
    if (a->is_unix)
        snprintf(buf, cap, "unix:%s", a->host);
    else
        snprintf(buf, cap, "tcp:%s:%u", a->host, a->port);
    return buf;
}

static int connect_addr(struct sc_sock *s, const struct gw_addr *a, uint64_t deadline)
{
    return a->is_unix ? sc_unix_connect(s, a->host, deadline)
                      : sc_tcp_connect(s, a->host, a->port, deadline);
}

/* Move what one side has ready to the other. 1 progress, 0 nothing to do,
 * 2 end of stream, < 0 an error. */
static int pump(struct gw_conn *c, struct sc_channel *from, struct sc_channel *to,
                uint64_t *count)
{
    long n = sc_read(from, c->buf, sizeof(c->buf));
    if (n == SC_ERR_AGAIN)
        return 0;
    if (n == 0)
        return 2;
    if (n < 0)
        return (int)n;
    int r = sc_write_all(to, c->buf, (size_t)n, sc_deadline_in(30000));
    if (r < 0)
        return r;
    *count += (uint64_t)n;
    return 1;
}

static int relay(struct gw_conn *c, struct sc_channel *guest, struct sc_channel *back)
{
    bool guest_eof = false, back_eof = false;
    while (!(guest_eof && back_eof)) {
        if (atomic_load(&stop_requested))
            return 1;
        bool progress = false;
        if (!guest_eof) {
            int r = pump(c, guest, back, &c->bytes_in);
            if (r < 0) {
                logf_conn(c, "guest side: %s", sc_channel_errmsg(guest));
                return r;
            }
            if (r == 2) {
                guest_eof = true;
                sc_shutdown(back);
            }
            progress = progress || r > 0;
        }
        if (!back_eof) {
            int r = pump(c, back, guest, &c->bytes_out);
            if (r < 0) {
                logf_conn(c, "backend side: %s", sc_channel_errmsg(back));
                return r;
            }
            if (r == 2) {
                back_eof = true;
                sc_shutdown_wait(guest, sc_deadline_in(2000));
            }
            progress = progress || r > 0;
        }
        if (progress)
            continue;
        struct pollfd pfd[2] = {
            {.fd = guest_eof ? -1 : c->sock.fd, .events = POLLIN},
            {.fd = back_eof ? -1 : c->backend.fd, .events = POLLIN},
        };
        if (sc_direction(guest) & SC_DIR_WRITE)
            pfd[0].events |= POLLOUT;
        if (poll(pfd, 2, 200) < 0 && errno != EINTR)
            return SC_ERR_IO;
    }
    return 0;
}

static const char *mech_text(const struct sc_sasl_info *si, char *buf, size_t cap)
{
    snprintf(buf, cap, "%s%s%s", sc_sasl_mech_name(si->mech),
             si->qop == SC_SASL_QOP_CONF  ? (si->cipher == SC_SASL_CIPHER_DES ? " auth-conf des"
                                                                             : " auth-conf 3des")
             : si->qop == SC_SASL_QOP_INT ? " auth-int"
                                          : "",
             si->channel_bound ? " channel-bound" : "");
    return buf;
}

/* Authenticate, route, relay. Returns when the connection is over. */
static void serve_conn(struct gw_conn *c)
{
    const struct gw_config *cfg = c->cfg;
    uint64_t deadline = sc_deadline_in((uint64_t)cfg->handshake_timeout_s * 1000);
    struct sc_channel *ch = &c->sock.base;
    char identity[sizeof(cfg->routes[0].identity)] = "";
    char how[96] = "";
    bool tls_on = cfg->tls != GW_TLS_OFF;
    if (tls_on) {
        struct sc_tls_config tc = {.endpoint = SC_TLS_SERVER, .creds = &tls_creds,
                                   .verify_peer = cfg->tls_verify_client};
        int r = sc_tls_init(&c->tls, ch, &tc);
        if (r == 0)
            r = sc_tls_handshake_wait(&c->tls, deadline);
        if (r != 0) {
            logf_conn(c, "TLS handshake failed: %s; closed", sc_tls_errmsg(&c->tls));
            sc_close(&c->tls.base);
            return;
        }
        struct sc_tls_info ti;
        sc_tls_get_info(&c->tls, &ti);
        snprintf(identity, sizeof(identity), "%s", ti.peer);
        snprintf(how, sizeof(how), "%s", ti.psk ? "TLS PSK" : "TLS");
        ch = &c->tls.base;
    }
    bool layer = false;
    if (cfg->sasl) {
        struct sc_sasl_binding bind;
        bool bound = tls_on && sc_sasl_binding_from_tls(&bind, &c->tls, cfg->cb) == 0;
        struct sc_sasl_server_config sc = {
            .lookup = gw_creds_lookup, .service = cfg->service, .realm = cfg->realm,
            .mechs = cfg->mech_count > 0 ? cfg->mechs : NULL, .mech_count = cfg->mech_count,
            .plaintext = !tls_on, .allow_no_layer = cfg->allow_no_layer, .qop = cfg->qop,
            .ciphers = cfg->ciphers, .binding = bound ? &bind : NULL,
            .decoy_key = decoy_key};
        int r = sc_sasl_server_init(&c->sasl, &sc);
        if (r == 0)
            r = sc_sasl_run(&c->sasl, ch, deadline);
        if (r != 0) {
            logf_conn(c, "SASL authentication failed: %s (%s); closed",
                      sc_sasl_errmsg(&c->sasl), sc_errname(r));
            sc_sasl_free(&c->sasl);
            if (tls_on)
                sc_close(&c->tls.base);
            return;
        }
        struct sc_sasl_info si;
        sc_sasl_info(&c->sasl, &si);
        snprintf(identity, sizeof(identity), "%s", si.user);
        char mt[64];
        size_t hl = strlen(how);
        snprintf(how + hl, sizeof(how) - hl, "%sSASL %s", hl ? " + " : "",
                 mech_text(&si, mt, sizeof(mt)));
        layer = sc_sasl_has_layer(&c->sasl);
        if (layer)
            r = sc_sasl_layer_init(&c->layer, ch, &c->sasl, c->layer_rx, sizeof(c->layer_rx),
                                   c->layer_tx, sizeof(c->layer_tx));
        sc_sasl_free(&c->sasl);  /* the layer holds its keys now */
        if (layer && r != 0) {
            logf_conn(c, "\"%s\" authenticated but the security layer failed: %s; closed",
                      identity, sc_channel_errmsg(&c->layer.base));
            if (tls_on)
                sc_close(&c->tls.base);
            return;
        }
        if (layer)
            ch = &c->layer.base;
    }
    const struct gw_route *route = gw_route_find(cfg, identity);
    char at[GW_ADDR_MAX + 16];
    if (route == NULL) {
        logf_conn(c, "\"%s\" authenticated (%s) but has no route; closed", identity, how);
    } else if (connect_addr(&c->backend, &route->backend, sc_deadline_in(5000)) != 0) {
        logf_conn(c, "backend %s of \"%s\" is down: %s; closed",
                  addr_text(&route->backend, at, sizeof(at)), identity,
                  sc_sock_errmsg(&c->backend));
    } else {
        logf_conn(c, "\"%s\" authenticated (%s); relaying to %s", identity, how,
                  addr_text(&route->backend, at, sizeof(at)));
        int r = relay(c, ch, &c->backend.base);
        logf_conn(c, "%s after %llu bytes in, %llu out",
                  r == 1 ? "closed for shutdown" : r == 0 ? "closed" : "closed on error",
                  (unsigned long long)c->bytes_in, (unsigned long long)c->bytes_out);
        if (r == 1)
            sc_shutdown_wait(ch, sc_deadline_in(1000));
        sc_close(&c->backend.base);
    }
    if (layer)
        sc_close(&c->layer.base);
    if (tls_on)
        sc_close(&c->tls.base);
}

static void *conn_thread(void *arg)
{
    struct gw_conn *c = arg;
    serve_conn(c);
    /* The socket stays open until the join, so that the main thread may
     * shut it down without racing a close. */
    shutdown(c->sock.fd, SHUT_RDWR);
    atomic_store(&c->done, true);
    return NULL;
}

static unsigned active_not_done(void);

static void reap(bool all)
{
    if (all) {
        /* Relays notice the stop within 200 ms and close cleanly; what is
         * still waiting in a handshake after a second has its socket shut. */
        for (int waited = 0; waited < 1000 && active_not_done() > 0; waited += 20)
            nap_ms(20);
        for (unsigned i = 0; i < GW_POOL_MAX; i++)
            if (atomic_load(&pool[i].used) && !atomic_load(&pool[i].done))
                shutdown(pool[i].sock.fd, SHUT_RDWR);
    }
    for (unsigned i = 0; i < GW_POOL_MAX; i++) {
        struct gw_conn *c = &pool[i];
        if (atomic_load(&c->used) && (all || atomic_load(&c->done))) {
            pthread_join(c->thread, NULL);
            sc_close(&c->sock.base);
            atomic_store(&c->used, false);
        }
    }
}

static unsigned active_not_done(void)
{
    unsigned n = 0;
    for (unsigned i = 0; i < GW_POOL_MAX; i++)
        n += atomic_load(&pool[i].used) && !atomic_load(&pool[i].done) ? 1u : 0u;
    return n;
}

static unsigned active(void)
{
    unsigned n = 0;
    for (unsigned i = 0; i < GW_POOL_MAX; i++)
        n += atomic_load(&pool[i].used) ? 1u : 0u;
    return n;
}

static int start_conn(const struct gw_config *cfg, struct sc_sock *s, unsigned id)
{
    for (unsigned i = 0; i < cfg->pool; i++) {
        struct gw_conn *c = &pool[i];
        if (atomic_load(&c->used))
            continue;
        c->sock = *s;
        c->id = id;
        c->cfg = cfg;
        c->bytes_in = c->bytes_out = 0;
        atomic_store(&c->done, false);
        atomic_store(&c->used, true);
        if (pthread_create(&c->thread, NULL, conn_thread, c) != 0) {
            atomic_store(&c->used, false);
            return -1;
        }
        return 0;
    }
    return -1;
}

static int load_tls(const struct gw_config *cfg)
{
    if (cfg->tls == GW_TLS_OFF)
        return 0;
    int r = sc_tls_creds_init(&tls_creds);
    if (r == 0)
        r = cfg->tls == GW_TLS_PSK ? sc_tls_creds_load_psk_file(&tls_creds, cfg->tls_path)
                                   : sc_tls_creds_load_x509_dir(&tls_creds, cfg->tls_path,
                                                                SC_TLS_SERVER);
    if (r != 0)
        fprintf(stderr, "sechan-gw: %s\n", sc_tls_creds_errmsg(&tls_creds));
    return r;
}

int gw_serve(const struct gw_config *cfg)
{
    if (cfg->sasl && gw_creds_load(cfg->creds_path) != 0)
        return 1;
    if (load_tls(cfg) != 0)
        return 1;
    if (sc_port_entropy(decoy_key, sizeof(decoy_key)) != 0) {
        fprintf(stderr, "sechan-gw: no entropy for the SCRAM decoy key\n");
        return 1;
    }
    struct sigaction sa = {.sa_handler = on_signal};
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    char at[GW_ADDR_MAX + 16];
    struct sc_listener l;
    bool listening = !cfg->connect_mode;
    if (listening) {
        int r = cfg->listen.is_unix ? sc_unix_listen(&l, cfg->listen.host, 16)
                                    : sc_tcp_listen(&l, cfg->listen.host, cfg->listen.port, 16);
        if (r != 0) {
            fprintf(stderr, "sechan-gw: cannot listen on %s: %s\n",
                    addr_text(&cfg->listen, at, sizeof(at)), l.msg);
            return 1;
        }
        struct gw_addr shown = cfg->listen;
        if (!shown.is_unix)
            shown.port = sc_listener_port(&l);
        fprintf(stderr, "sechan-gw: listening on %s (pool %u)\n",
                addr_text(&shown, at, sizeof(at)), cfg->pool);
    } else {
        fprintf(stderr, "sechan-gw: connecting to %s\n", addr_text(&cfg->listen, at, sizeof(at)));
    }
    fflush(stderr);
    unsigned next_id = 1;
    while (!atomic_load(&stop_requested)) {
        reap(false);
        struct sc_sock s;
        if (!listening) {
            /* A QEMU chardev server takes one connection at a time. */
            if (active() > 0 || connect_addr(&s, &cfg->listen, sc_deadline_in(500)) != 0) {
                nap_ms(100);
                continue;
            }
        } else {
            struct pollfd p = {.fd = l.fd, .events = POLLIN};
            if (poll(&p, 1, 200) <= 0 || sc_listener_accept(&l, &s, sc_deadline_in(100)) != 0)
                continue;
        }
        unsigned id = next_id++;
        if (start_conn(cfg, &s, id) != 0) {
            fprintf(stderr, "sechan-gw: conn %u: refused: all %u connections of the pool are "
                            "in use\n", id, cfg->pool);
            sc_close(&s.base);
        }
    }
    unsigned n = active();
    fprintf(stderr, "sechan-gw: stopping: closing %u connection%s\n", n, n == 1 ? "" : "s");
    reap(true);
    if (listening) {
        sc_listener_close(&l);
        if (cfg->listen.is_unix)
            unlink(cfg->listen.host);
    }
    if (cfg->tls != GW_TLS_OFF)
        sc_tls_creds_free(&tls_creds);
    fprintf(stderr, "sechan-gw: stopped\n");
    return 0;
}
