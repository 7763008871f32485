/* see nbdfake.h */
#define _POSIX_C_SOURCE 200809L
#include "nbdfake.h"

#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "sechan/port.h"

#define TICK_MS 50u

/* ------------------------------------------------------------------ shared helpers */

static void put16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}

static void put32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static void put64(uint8_t *p, uint64_t v)
{
    put32(p, (uint32_t)(v >> 32));
    put32(p + 4, (uint32_t)v);
}

static uint16_t get16(const uint8_t *p)
{
    return (uint16_t)((unsigned)p[0] << 8 | p[1]);
}

static uint32_t get32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static uint64_t get64(const uint8_t *p)
{
    return (uint64_t)get32(p) << 32 | get32(p + 4);
}

/* The end of the next short wait: a tick from now, never past the deadline. */
static uint64_t tick_end(const struct nf_runner *r)
{
    uint64_t t = sc_port_now_ms() + TICK_MS;
    return t < r->deadline ? t : r->deadline;
}

static bool stopping(struct nf_runner *r)
{
    return atomic_load(&r->stop) || sc_port_now_ms() >= r->deadline;
}

static void run_note(struct nf_runner *r, int err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void run_note(struct nf_runner *r, int err, const char *fmt, ...)
{
    if (r->error != 0)
        return;
    r->error = err;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->msg, sizeof(r->msg), fmt, ap);
    va_end(ap);
}

static int run_start(struct nf_runner *r, void *(*fn)(void *), void *arg, uint64_t timeout_ms)
{
    r->lst.fd = -1;
    atomic_init(&r->stop, false);
    int e = sc_tcp_listen(&r->lst, "127.0.0.1", 0, 1);
    if (e != 0)
        return e;
    r->port = sc_listener_port(&r->lst);
    r->deadline = sc_deadline_in(timeout_ms);
    if (pthread_create(&r->thread, NULL, fn, arg) != 0) {
        sc_listener_close(&r->lst);
        return SC_ERR_INTERNAL;
    }
    r->running = true;
    return 0;
}

static void run_stop(struct nf_runner *r)
{
    if (!r->running)
        return;
    atomic_store(&r->stop, true);
    pthread_join(r->thread, NULL);
    r->running = false;
    sc_listener_close(&r->lst);
}

/* Wait for the one client, a tick at a time. */
static int run_accept(struct nf_runner *r, struct sc_sock *s)
{
    int e = SC_ERR_TIMEOUT;
    while (!stopping(r)) {
        e = sc_listener_accept(&r->lst, s, tick_end(r));
        if (e != SC_ERR_TIMEOUT)
            break;
    }
    if (e != 0)
        run_note(r, e, "no client connected (%s)", sc_errname(e));
    return e;
}

static void capture(uint8_t *dst, size_t *len, uint64_t *total, const uint8_t *p, size_t n)
{
    *total += n;
    size_t room = NF_CAPTURE_MAX - *len;
    size_t take = n < room ? n : room;
    memcpy(dst + *len, p, take);
    *len += take;
}

static bool contains(const uint8_t *hay, size_t hay_len, const void *needle, size_t len)
{
    if (len == 0 || len > hay_len)
        return len == 0;
    for (size_t i = 0; i + len <= hay_len; i++) {
        if (memcmp(hay + i, needle, len) == 0)
            return true;
    }
    return false;
}

static bool option_carries_name(uint32_t opt)
{
    return opt == SC_NBD_OPT_EXPORT_NAME || opt == SC_NBD_OPT_INFO || opt == SC_NBD_OPT_GO ||
           opt == SC_NBD_OPT_LIST_META_CONTEXT || opt == SC_NBD_OPT_SET_META_CONTEXT;
}

/* An option reply header: magic, option, type, length. */
static void put_reply_hdr(uint8_t *p, uint32_t opt, uint32_t type, uint32_t len)
{
    put64(p, SC_NBD_REP_MAGIC);
    put32(p + 8, opt);
    put32(p + 12, type);
    put32(p + 16, len);
}

/* ------------------------------------------------------------------ script building */

void nf_script_init(struct nf_script *sc)
{
    memset(sc, 0, sizeof(*sc));
    sc->greeting_flags = SC_NBD_FLAG_FIXED_NEWSTYLE | SC_NBD_FLAG_NO_ZEROES;
    sc->default_reply = SC_NBD_REP_ERR_UNSUP;
}

struct nf_answer *nf_answer_add(struct nf_script *sc, uint32_t option, enum nf_then then)
{
    if (sc->nr_answers >= NF_MAX_ANSWERS)
        return NULL;
    struct nf_answer *a = &sc->answers[sc->nr_answers++];
    memset(a, 0, sizeof(*a));
    a->option = option;
    a->then = then;
    return a;
}

struct nf_reply *nf_reply_add(struct nf_answer *a, uint32_t type, const void *data, uint32_t len)
{
    if (a == NULL || a->nr_replies >= NF_MAX_REPLIES)
        return NULL;
    struct nf_reply *r = &a->replies[a->nr_replies++];
    memset(r, 0, sizeof(*r));
    r->type = type;
    r->len = len;
    if (len > NF_REPLY_INLINE)
        r->ext = data;
    else if (len > 0)
        memcpy(r->inline_data, data, len);
    return r;
}

struct nf_reply *nf_reply_info_export(struct nf_answer *a, uint64_t size, uint16_t flags)
{
    uint8_t p[12];
    put16(p, SC_NBD_INFO_EXPORT);
    put64(p + 2, size);
    put16(p + 10, flags);
    return nf_reply_add(a, SC_NBD_REP_INFO, p, sizeof(p));
}

struct nf_reply *nf_reply_meta(struct nf_answer *a, uint32_t id, const char *name)
{
    uint8_t p[NF_REPLY_INLINE];
    size_t n = strlen(name);
    if (n > sizeof(p) - 4)
        n = sizeof(p) - 4;
    put32(p, id);
    memcpy(p + 4, name, n);
    return nf_reply_add(a, SC_NBD_REP_META_CONTEXT, p, (uint32_t)(4 + n));
}

void nf_script_tls_go(struct nf_script *sc, const struct sc_tls_creds *creds, bool structured,
                      uint32_t meta_id, uint64_t size, uint16_t flags)
{
    sc->tls_creds = creds;
    nf_reply_add(nf_answer_add(sc, SC_NBD_OPT_STARTTLS, NF_THEN_TLS), SC_NBD_REP_ACK, NULL, 0);
    if (structured)
        nf_reply_add(nf_answer_add(sc, SC_NBD_OPT_STRUCTURED_REPLY, NF_THEN_NEXT),
                     SC_NBD_REP_ACK, NULL, 0);
    if (structured && meta_id != 0) {
        struct nf_answer *m = nf_answer_add(sc, SC_NBD_OPT_SET_META_CONTEXT, NF_THEN_NEXT);
        nf_reply_meta(m, meta_id, SC_NBD_META_BASE_ALLOCATION);
        nf_reply_add(m, SC_NBD_REP_ACK, NULL, 0);
    }
    struct nf_answer *go = nf_answer_add(sc, SC_NBD_OPT_GO, NF_THEN_TRANSMISSION);
    nf_reply_info_export(go, size, flags);
    nf_reply_add(go, SC_NBD_REP_ACK, NULL, 0);
}

/* ------------------------------------------------------------------ fake server: I/O */

static bool nf_stopping(struct nf_server *s)
{
    return stopping(&s->run);
}

static void nf_record_in(struct nf_server *s, const uint8_t *p, size_t n)
{
    if (s->draining)
        return;
    if (s->ch == &s->tls.base) {
        s->rec.tls_total += n;
        return;
    }
    capture(s->rec.plain, &s->rec.plain_len, &s->rec.plain_total, p, n);
}

/* Wait a tick for what the channel wants; a tick passing is not an error. */
static int nf_wait(struct nf_server *s, enum sc_dir fallback)
{
    enum sc_dir d = sc_direction(s->ch);
    int w = sc_wait(s->ch, d != SC_DIR_NONE ? d : fallback, tick_end(&s->run));
    return w == SC_ERR_TIMEOUT ? 0 : w;
}

/* Some bytes (> 0), SC_ERR_EOF when the client closed, SC_ERR_TIMEOUT on stop/deadline. */
static long nf_read_some(struct nf_server *s, void *buf, size_t len)
{
    for (;;) {
        /* Read before looking at the stop flag: what the client sent before it left counts. */
        long r = sc_read(s->ch, buf, len);
        if (r > 0) {
            nf_record_in(s, buf, (size_t)r);
            return r;
        }
        if (r == 0 || r == SC_ERR_EOF || r == SC_ERR_RESET) {
            s->rec.client_eof = true;
            return SC_ERR_EOF;
        }
        if (r != SC_ERR_AGAIN)
            return r;
        if (nf_stopping(s))
            return SC_ERR_TIMEOUT;
        int w = nf_wait(s, SC_DIR_READ);
        if (w != 0)
            return w;
    }
}

static int nf_read_full(struct nf_server *s, void *buf, size_t len)
{
    uint8_t *p = buf;
    while (len > 0) {
        long r = nf_read_some(s, p, len);
        if (r < 0)
            return (int)r;
        p += r;
        len -= (size_t)r;
    }
    return 0;
}

static int nf_discard(struct nf_server *s, uint64_t len)
{
    uint8_t junk[4096];
    while (len > 0) {
        size_t n = len < sizeof(junk) ? (size_t)len : sizeof(junk);
        int r = nf_read_full(s, junk, n);
        if (r != 0)
            return r;
        len -= n;
    }
    return 0;
}

int nf_send(struct nf_server *s, const void *buf, size_t len)
{
    const uint8_t *p = buf;
    while (len > 0) {
        long w = sc_write(s->ch, p, len);
        if (w > 0) {
            p += w;
            len -= (size_t)w;
            continue;
        }
        if (w != SC_ERR_AGAIN)
            return (int)w;
        if (nf_stopping(s))
            return SC_ERR_TIMEOUT;
        int r = nf_wait(s, SC_DIR_WRITE);
        if (r != 0)
            return r;
    }
    for (;;) {
        int f = sc_flush(s->ch);
        if (f != SC_ERR_AGAIN)
            return f;
        if (nf_stopping(s))
            return SC_ERR_TIMEOUT;
        int r = nf_wait(s, SC_DIR_WRITE);
        if (r != 0)
            return r;
    }
}

int nf_send_simple(struct nf_server *s, uint64_t cookie, uint32_t error, const void *data,
                   size_t len)
{
    uint8_t h[SC_NBD_SIMPLE_REPLY_LEN];
    put32(h, SC_NBD_SIMPLE_REPLY_MAGIC);
    put32(h + 4, error);
    put64(h + 8, cookie);
    int r = nf_send(s, h, sizeof(h));
    return r != 0 || len == 0 ? r : nf_send(s, data, len);
}

int nf_send_chunk(struct nf_server *s, uint16_t flags, uint16_t type, uint64_t cookie,
                  uint32_t len, const void *payload, size_t payload_len)
{
    uint8_t h[SC_NBD_STRUCTURED_REPLY_LEN];
    put32(h, SC_NBD_STRUCTURED_REPLY_MAGIC);
    put16(h + 4, flags);
    put16(h + 6, type);
    put64(h + 8, cookie);
    put32(h + 16, len);
    int r = nf_send(s, h, sizeof(h));
    return r != 0 || payload_len == 0 ? r : nf_send(s, payload, payload_len);
}

/* Output gathered so that replies and what follows them leave in as few writes as possible. */
struct nf_out {
    uint8_t b[8192];
    size_t n;
};

static int nf_out_add(struct nf_server *s, struct nf_out *o, const void *p, size_t len)
{
    const uint8_t *src = p;
    while (len > 0) {
        if (o->n == sizeof(o->b)) {
            int r = nf_send(s, o->b, o->n);
            if (r != 0)
                return r;
            o->n = 0;
        }
        size_t take = sizeof(o->b) - o->n < len ? sizeof(o->b) - o->n : len;
        memcpy(o->b + o->n, src, take);
        o->n += take;
        src += take;
        len -= take;
    }
    return 0;
}

/* ------------------------------------------------------------------ fake server: phases */

/* Send nothing more; read (and record) until the client closes, stop or the deadline. */
static void nf_hang(struct nf_server *s)
{
    uint8_t buf[4096];
    while (nf_read_some(s, buf, sizeof(buf)) > 0) {
    }
}

static int nf_start_tls(struct nf_server *s)
{
    if (s->script.tls_creds == NULL) {
        run_note(&s->run, SC_ERR_INVAL, "script starts TLS without server credentials");
        return SC_ERR_INVAL;
    }
    s->tls_cfg = (struct sc_tls_config){.endpoint = SC_TLS_SERVER,
                                        .creds = s->script.tls_creds};
    int r = sc_tls_init(&s->tls, &s->sock.base, &s->tls_cfg);
    if (r != 0) {
        s->rec.tls_error = r;
        run_note(&s->run, r, "server TLS init: %s", sc_tls_errmsg(&s->tls));
        return r;
    }
    s->tls_on = true;
    for (;;) {
        if (nf_stopping(s))
            return SC_ERR_TIMEOUT;
        r = sc_tls_handshake(&s->tls);
        if (r == 0)
            break;
        if (r != SC_ERR_AGAIN) {
            s->rec.tls_error = r;
            run_note(&s->run, r, "server TLS handshake: %s", sc_channel_errmsg(&s->tls.base));
            return r;
        }
        enum sc_dir d = sc_direction(&s->tls.base);
        int w = sc_wait(&s->tls.base, d != SC_DIR_NONE ? d : SC_DIR_READ, tick_end(&s->run));
        if (w != 0 && w != SC_ERR_TIMEOUT)
            return w;
    }
    s->ch = &s->tls.base;
    s->rec.tls_done = true;
    return 0;
}

static int nf_default_request(struct nf_server *s, const struct nf_request *q)
{
    if (q->type != SC_NBD_CMD_READ) {
        nf_send_simple(s, q->cookie, 0, NULL, 0);
        return NF_REQ_CONTINUE;
    }
    static const uint8_t zeroes[4096];
    if (nf_send_simple(s, q->cookie, 0, NULL, 0) != 0)
        return NF_REQ_CLOSE;
    for (uint32_t left = q->length; left > 0;) {
        uint32_t n = left < sizeof(zeroes) ? left : (uint32_t)sizeof(zeroes);
        if (nf_send(s, zeroes, n) != 0)
            return NF_REQ_CLOSE;
        left -= n;
    }
    return NF_REQ_CONTINUE;
}

static int nf_transmission(struct nf_server *s)
{
    for (;;) {
        uint8_t h[SC_NBD_REQUEST_LEN];
        int r = nf_read_full(s, h, sizeof(h));
        if (r != 0)
            return r;
        if (get32(h) != SC_NBD_REQUEST_MAGIC) {
            run_note(&s->run, SC_ERR_PROTO, "client sent request magic 0x%08x", get32(h));
            return SC_ERR_PROTO;
        }
        struct nf_request q = {.flags = get16(h + 4), .type = get16(h + 6),
                               .cookie = get64(h + 8), .offset = get64(h + 16),
                               .length = get32(h + 24), .tls = s->ch == &s->tls.base};
        if (s->rec.nr_reqs < NF_MAX_SEEN)
            s->rec.reqs[s->rec.nr_reqs++] = q;
        if (q.type == SC_NBD_CMD_DISC)
            return 0;
        if (q.type == SC_NBD_CMD_WRITE && (r = nf_discard(s, q.length)) != 0)
            return r;
        int act = s->script.on_request != NULL ? s->script.on_request(s, &q, s->script.arg)
                                               : nf_default_request(s, &q);
        if (act == NF_REQ_CLOSE)
            return 0;
        if (act == NF_REQ_HANG) {
            nf_hang(s);
            return 0;
        }
    }
}

static struct nf_answer *nf_find_answer(struct nf_server *s, uint32_t opt)
{
    struct nf_answer *any = NULL;
    for (unsigned i = 0; i < s->script.nr_answers; i++) {
        struct nf_answer *a = &s->script.answers[i];
        if (a->used)
            continue;
        if (a->option == opt)
            return a;
        if (a->option == NF_ANY_OPTION && any == NULL)
            any = a;
    }
    return any;
}

static int nf_send_answer(struct nf_server *s, uint32_t opt, const struct nf_answer *a)
{
    struct nf_out out = {.n = 0};
    struct nf_out *o = &out;
    for (unsigned i = 0; i < a->nr_replies; i++) {
        const struct nf_reply *rp = &a->replies[i];
        uint8_t h[SC_NBD_OPT_REPLY_HDR_LEN];
        put_reply_hdr(h, opt, rp->type, rp->lie_len ? rp->wire_len : rp->len);
        int r = nf_out_add(s, o, h, sizeof(h));
        if (r == 0)
            r = nf_out_add(s, o, rp->ext != NULL ? rp->ext : rp->inline_data, rp->len);
        if (r != 0)
            return r;
    }
    int r = a->raw_len > 0 ? nf_out_add(s, o, a->raw, a->raw_len) : 0;
    return r != 0 || o->n == 0 ? r : nf_send(s, o->b, o->n);
}

static int nf_options(struct nf_server *s)
{
    for (;;) {
        uint8_t h[SC_NBD_OPT_HDR_LEN];
        int r = nf_read_full(s, h, sizeof(h));
        if (r != 0)
            return r;
        if (get64(h) != SC_NBD_OPTS_MAGIC) {
            run_note(&s->run, SC_ERR_PROTO, "client sent option magic 0x%016llx",
                    (unsigned long long)get64(h));
            return SC_ERR_PROTO;
        }
        uint32_t opt = get32(h + 8), len = get32(h + 12);
        bool tls = s->ch == &s->tls.base;
        if (s->rec.nr_opts < NF_MAX_SEEN)
            s->rec.opts[s->rec.nr_opts++] = (struct nf_opt_seen){
                .option = opt, .len = len, .tls = tls, .carries_name = option_carries_name(opt)};
        if (!tls && option_carries_name(opt))
            s->rec.name_in_plain = true;
        if (len > NF_OPT_DATA_MAX) {
            run_note(&s->run, SC_ERR_TOO_LONG, "client option %u of %u bytes", opt, len);
            return SC_ERR_TOO_LONG;
        }
        if ((r = nf_discard(s, len)) != 0)
            return r;
        struct nf_answer *a = nf_find_answer(s, opt);
        if (a == NULL) {
            if (opt == SC_NBD_OPT_EXPORT_NAME)
                return 0;  /* no way to refuse it but closing */
            uint8_t rep[SC_NBD_OPT_REPLY_HDR_LEN];
            bool abort = opt == SC_NBD_OPT_ABORT;
            put_reply_hdr(rep, opt, abort ? SC_NBD_REP_ACK : s->script.default_reply, 0);
            if ((r = nf_send(s, rep, sizeof(rep))) != 0 || abort)
                return r;
            continue;
        }
        a->used = true;
        if ((r = nf_send_answer(s, opt, a)) != 0)
            return r;
        switch (a->then) {
        case NF_THEN_NEXT:
            continue;
        case NF_THEN_TLS:
            if ((r = nf_start_tls(s)) != 0)
                return r;
            continue;
        case NF_THEN_TRANSMISSION:
            return nf_transmission(s);
        case NF_THEN_HANG:
            nf_hang(s);
            return 0;
        case NF_THEN_CLOSE:
        default:
            return 0;
        }
    }
}

static int nf_greet(struct nf_server *s)
{
    uint8_t g[SC_NBD_OLDSTYLE_LEN];
    memset(g, 0, sizeof(g));
    put64(g, SC_NBD_MAGIC);
    if (s->script.oldstyle) {
        put64(g + 8, SC_NBD_OLDSTYLE_MAGIC);
        put64(g + 16, s->script.oldstyle_size);
        put32(g + 24, s->script.oldstyle_flags);
        int r = nf_send(s, g, sizeof(g));
        if (r == 0)
            nf_hang(s);
        return r;
    }
    put64(g + 8, SC_NBD_OPTS_MAGIC);
    put16(g + 16, s->script.greeting_flags);
    int r = nf_send(s, g, SC_NBD_GREETING_LEN);
    uint8_t f[4];
    if (r == 0)
        r = nf_read_full(s, f, sizeof(f));
    if (r != 0)
        return r;
    s->rec.client_flags = get32(f);
    s->rec.got_client_flags = true;
    return nf_options(s);
}

static void *nf_thread(void *arg)
{
    struct nf_server *s = arg;
    if (run_accept(&s->run, &s->sock) != 0)
        return NULL;
    s->rec.accepted = true;
    s->ch = &s->sock.base;
    int r = nf_greet(s);
    if (r != 0 && r != SC_ERR_EOF)
        run_note(&s->run, r, "server ended with %s", sc_errname(r));
    /* FIN first and read what is left, so the client sees a clean end of stream (closing
     * with unread bytes would send a reset). */
    (void)shutdown(s->sock.fd, SHUT_WR);
    s->ch = &s->sock.base;
    s->draining = true;
    nf_hang(s);
    if (s->tls_on)
        sc_close(&s->tls.base);
    sc_close(&s->sock.base);
    return NULL;
}

int nf_server_start(struct nf_server *s, const struct nf_script *sc, uint64_t timeout_ms)
{
    memset(s, 0, sizeof(*s));
    s->script = *sc;
    s->sock.fd = -1;
    return run_start(&s->run, nf_thread, s, timeout_ms);
}

uint16_t nf_server_port(const struct nf_server *s)
{
    return s->run.port;
}

void nf_server_stop(struct nf_server *s)
{
    run_stop(&s->run);
}

bool nf_plain_contains(const struct nf_server *s, const void *needle, size_t len)
{
    return contains(s->rec.plain, s->rec.plain_len, needle, len);
}

unsigned nf_count_opt(const struct nf_server *s, uint32_t option, int under_tls)
{
    unsigned n = 0;
    for (unsigned i = 0; i < s->rec.nr_opts; i++) {
        const struct nf_opt_seen *o = &s->rec.opts[i];
        if (o->option == option && (under_tls < 0 || (under_tls != 0) == o->tls))
            n++;
    }
    return n;
}

/* ------------------------------------------------------------------ man in the middle */

static int nm_wait_fd(struct nm_mitm *m, int fd, short events)
{
    for (;;) {
        if (stopping(&m->run))
            return SC_ERR_TIMEOUT;
        struct pollfd p = {.fd = fd, .events = events};
        int r = poll(&p, 1, (int)TICK_MS);
        if (r > 0)
            return 0;
        if (r < 0 && errno != EINTR)
            return SC_ERR_IO;
    }
}

static void nm_from_client(struct nm_mitm *m, const uint8_t *p, size_t n)
{
    if (!m->tls_begun)
        capture(m->rec.client_plain, &m->rec.client_plain_len, &m->rec.client_plain_total, p,
                n);
}

/* Some bytes (> 0), SC_ERR_EOF, SC_ERR_TIMEOUT (stop/deadline) or SC_ERR_IO. */
static long nm_read_some(struct nm_mitm *m, int fd, void *buf, size_t len)
{
    for (;;) {
        ssize_t n = recv(fd, buf, len, 0);
        if (n > 0) {
            if (fd == m->cfd)
                nm_from_client(m, buf, (size_t)n);
            return (long)n;
        }
        if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR))
            return n == 0 || errno == ECONNRESET ? SC_ERR_EOF : SC_ERR_IO;
        int w = nm_wait_fd(m, fd, POLLIN);
        if (w != 0)
            return w;
    }
}

static int nm_read_full(struct nm_mitm *m, int fd, void *buf, size_t len)
{
    uint8_t *p = buf;
    while (len > 0) {
        long r = nm_read_some(m, fd, p, len);
        if (r < 0)
            return (int)r;
        p += r;
        len -= (size_t)r;
    }
    return 0;
}

static int nm_write_all(struct nm_mitm *m, int fd, const void *buf, size_t len)
{
    const uint8_t *p = buf;
    while (len > 0) {
        ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
        if (n > 0) {
            p += n;
            len -= (size_t)n;
            continue;
        }
        if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
            return SC_ERR_IO;
        int w = nm_wait_fd(m, fd, POLLOUT);
        if (w != 0)
            return w;
    }
    return 0;
}

/* Copy bytes both ways until one side closes, stop or the deadline. */
static void nm_relay(struct nm_mitm *m)
{
    m->rec.relaying = true;
    uint8_t buf[16384];
    while (!stopping(&m->run)) {
        struct pollfd p[2] = {{.fd = m->cfd, .events = POLLIN}, {.fd = m->ufd, .events = POLLIN}};
        int r = poll(p, 2, (int)TICK_MS);
        if (r < 0 && errno != EINTR)
            return;
        for (int i = 0; r > 0 && i < 2; i++) {
            if (p[i].revents == 0)
                continue;
            int src = p[i].fd, dst = i == 0 ? m->ufd : m->cfd;
            ssize_t n = recv(src, buf, sizeof(buf), 0);
            if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
                continue;
            if (n <= 0) {
                (void)shutdown(dst, SHUT_WR);
                return;
            }
            if (i == 0) {
                nm_from_client(m, buf, (size_t)n);
                m->rec.relayed_c2s += (uint64_t)n;
            } else {
                m->rec.relayed_s2c += (uint64_t)n;
            }
            if (nm_write_all(m, dst, buf, (size_t)n) != 0)
                return;
        }
    }
}

/* Read the client's bytes until it closes (nothing is forwarded). */
static void nm_drain_client(struct nm_mitm *m)
{
    uint8_t buf[4096];
    while (nm_read_some(m, m->cfd, buf, sizeof(buf)) > 0) {
    }
}

static void nm_forwarded(struct nm_mitm *m, uint32_t opt)
{
    if (m->rec.nr_forwarded < NF_MAX_SEEN)
        m->rec.forwarded_opts[m->rec.nr_forwarded++] = opt;
}

/* One option reply from the upstream into hdr/data; returns 0 and its type in *type. */
static int nm_read_reply(struct nm_mitm *m, uint8_t *hdr, uint8_t *data, size_t cap,
                         uint32_t *type, uint32_t *len)
{
    int r = nm_read_full(m, m->ufd, hdr, SC_NBD_OPT_REPLY_HDR_LEN);
    if (r != 0)
        return r;
    if (get64(hdr) != SC_NBD_REP_MAGIC) {
        run_note(&m->run, SC_ERR_PROTO, "upstream sent option reply magic 0x%016llx",
                (unsigned long long)get64(hdr));
        return SC_ERR_PROTO;
    }
    *type = get32(hdr + 12);
    *len = get32(hdr + 16);
    if (*len > cap) {
        run_note(&m->run, SC_ERR_TOO_LONG, "upstream option reply of %u bytes", *len);
        return SC_ERR_TOO_LONG;
    }
    return nm_read_full(m, m->ufd, data, *len);
}

static bool reply_final(uint32_t type)
{
    return type == SC_NBD_REP_ACK || (type & SC_NBD_REP_FLAG_ERROR) != 0;
}

/* (d): an NBD_OPT_STRUCTURED_REPLY exchange the client never asked for. */
static int nm_inject_structured(struct nm_mitm *m, uint8_t *data, size_t cap)
{
    uint8_t h[SC_NBD_OPT_HDR_LEN];
    put64(h, SC_NBD_OPTS_MAGIC);
    put32(h + 8, SC_NBD_OPT_STRUCTURED_REPLY);
    put32(h + 12, 0);
    int r = nm_write_all(m, m->ufd, h, sizeof(h));
    if (r != 0)
        return r;
    nm_forwarded(m, SC_NBD_OPT_STRUCTURED_REPLY);
    uint8_t rh[SC_NBD_OPT_REPLY_HDR_LEN];
    uint32_t type = 0, len = 0;
    do {
        if ((r = nm_read_reply(m, rh, data, cap, &type, &len)) != 0)
            return r;
    } while (!reply_final(type));
    m->rec.injected_reply_type = type;
    m->rec.injected = true;
    return 0;
}

/* Forward the upstream's replies to opt until the final one; *final gets its type.
 * (c): the STARTTLS acknowledgement leaves with the injected bytes in one write. */
static int nm_forward_replies(struct nm_mitm *m, uint32_t opt, uint8_t *buf, size_t cap,
                              uint32_t *final)
{
    for (;;) {
        uint32_t type = 0, len = 0;
        int r = nm_read_reply(m, buf, buf + SC_NBD_OPT_REPLY_HDR_LEN,
                              cap - SC_NBD_OPT_REPLY_HDR_LEN - NM_INJECT_MAX, &type, &len);
        if (r != 0)
            return r;
        size_t n = SC_NBD_OPT_REPLY_HDR_LEN + len;
        if (opt == SC_NBD_OPT_STARTTLS && type == SC_NBD_REP_ACK) {
            m->rec.starttls_acked = true;
            if (m->mode == NM_INJECT_AFTER_ACK) {
                memcpy(buf + n, m->inject, m->inject_len);
                n += m->inject_len;
                m->rec.injected = true;
            }
            m->tls_begun = true;
        }
        if ((r = nm_write_all(m, m->cfd, buf, n)) != 0)
            return r;
        if (reply_final(type)) {
            *final = type;
            return 0;
        }
    }
}

/* The option phase, until raw relaying takes over: returns 1 to relay, 0 to end, < 0 error. */
static int nm_options(struct nm_mitm *m)
{
    uint8_t data[NF_OPT_DATA_MAX + SC_NBD_OPT_HDR_LEN + NM_INJECT_MAX];
    for (;;) {
        uint8_t *h = data;
        int r = nm_read_full(m, m->cfd, h, SC_NBD_OPT_HDR_LEN);
        if (r != 0)
            return r;
        if (get64(h) != SC_NBD_OPTS_MAGIC) {
            run_note(&m->run, SC_ERR_PROTO, "client sent option magic 0x%016llx",
                    (unsigned long long)get64(h));
            return SC_ERR_PROTO;
        }
        uint32_t opt = get32(h + 8), len = get32(h + 12);
        if (m->rec.nr_client_opts < NF_MAX_SEEN)
            m->rec.client_opts[m->rec.nr_client_opts++] = opt;
        if (len > NF_OPT_DATA_MAX) {
            run_note(&m->run, SC_ERR_TOO_LONG, "client option of %u bytes", len);
            return SC_ERR_TOO_LONG;
        }
        if ((r = nm_read_full(m, m->cfd, h + SC_NBD_OPT_HDR_LEN, len)) != 0)
            return r;
        if (opt == SC_NBD_OPT_STARTTLS && m->mode == NM_REFUSE_STARTTLS) {
            uint8_t rep[SC_NBD_OPT_REPLY_HDR_LEN];
            put_reply_hdr(rep, opt, SC_NBD_REP_ERR_UNSUP, 0);
            m->rec.injected = true;
            if ((r = nm_write_all(m, m->cfd, rep, sizeof(rep))) != 0)
                return r;
            continue;
        }
        if (opt == SC_NBD_OPT_STARTTLS && m->mode == NM_STRIP_STARTTLS) {
            m->rec.injected = true;
            continue;  /* the upstream never hears of it; the client hears nothing */
        }
        if (opt == SC_NBD_OPT_STARTTLS && m->mode == NM_INJECT_STRUCTURED && !m->rec.injected) {
            uint8_t junk[4096];
            if ((r = nm_inject_structured(m, junk, sizeof(junk))) != 0)
                return r;
        }
        if ((r = nm_write_all(m, m->ufd, h, SC_NBD_OPT_HDR_LEN + len)) != 0)
            return r;
        nm_forwarded(m, opt);
        if (opt == SC_NBD_OPT_EXPORT_NAME || opt == SC_NBD_OPT_ABORT)
            return 1;  /* no option reply framing follows */
        uint32_t final = 0;
        if ((r = nm_forward_replies(m, opt, data, sizeof(data), &final)) != 0)
            return r;
        if (final == SC_NBD_REP_ACK && (opt == SC_NBD_OPT_STARTTLS || opt == SC_NBD_OPT_GO))
            return 1;
    }
}

static int nm_session(struct nm_mitm *m)
{
    uint8_t g[SC_NBD_OLDSTYLE_LEN];
    int r = nm_read_full(m, m->ufd, g, SC_NBD_GREETING_LEN);
    if (r != 0)
        return r;
    if (m->mode == NM_OLDSTYLE) {
        /* NBDMAGIC, the oldstyle magic, a size, 32 bits of flags, 124 zero bytes. */
        memset(g, 0, sizeof(g));
        put64(g, SC_NBD_MAGIC);
        put64(g + 8, SC_NBD_OLDSTYLE_MAGIC);
        put64(g + 16, 1u << 20);
        put32(g + 24, SC_NBD_FLAG_HAS_FLAGS);
        m->rec.injected = true;
        if ((r = nm_write_all(m, m->cfd, g, sizeof(g))) != 0)
            return r;
        nm_drain_client(m);
        return 0;
    }
    if ((r = nm_write_all(m, m->cfd, g, SC_NBD_GREETING_LEN)) != 0)
        return r;
    uint8_t f[4];
    if ((r = nm_read_full(m, m->cfd, f, sizeof(f))) != 0 ||
        (r = nm_write_all(m, m->ufd, f, sizeof(f))) != 0)
        return r;
    r = nm_options(m);
    if (r == 1) {
        nm_relay(m);
        return 0;
    }
    return r;
}

static void *nm_thread(void *arg)
{
    struct nm_mitm *m = arg;
    struct sc_sock cs, us;
    if (run_accept(&m->run, &cs) != 0)
        return NULL;
    m->rec.accepted = true;
    m->cfd = cs.fd;
    int r = sc_tcp_connect(&us, "127.0.0.1", m->upstream_port, m->run.deadline);
    if (r != 0) {
        run_note(&m->run, r, "upstream connect: %s", sc_sock_errmsg(&us));
    } else {
        m->ufd = us.fd;
        r = nm_session(m);
        if (r != 0 && r != SC_ERR_EOF)
            run_note(&m->run, r, "mitm ended with %s", sc_errname(r));
    }
    /* FIN to the client, then read what it still sends, so it sees a clean close. */
    (void)shutdown(m->cfd, SHUT_WR);
    if (m->ufd >= 0) {
        close(m->ufd);
        m->ufd = -1;
    }
    nm_drain_client(m);
    close(m->cfd);
    m->cfd = -1;
    return NULL;
}

int nm_start(struct nm_mitm *m, enum nm_mode mode, uint16_t upstream_port, uint64_t timeout_ms)
{
    memset(m, 0, sizeof(*m));
    m->mode = mode;
    m->upstream_port = upstream_port;
    m->cfd = m->ufd = -1;
    /* (c): a forged NBD_REP_ACK to NBD_OPT_STRUCTURED_REPLY, as if from the server. */
    put_reply_hdr(m->inject, SC_NBD_OPT_STRUCTURED_REPLY, SC_NBD_REP_ACK, 0);
    m->inject_len = SC_NBD_OPT_REPLY_HDR_LEN;
    return run_start(&m->run, nm_thread, m, timeout_ms);
}

uint16_t nm_port(const struct nm_mitm *m)
{
    return m->run.port;
}

void nm_stop(struct nm_mitm *m)
{
    run_stop(&m->run);
}

bool nm_plain_contains(const struct nm_mitm *m, const void *needle, size_t len)
{
    return contains(m->rec.client_plain, m->rec.client_plain_len, needle, len);
}

const char *nm_mode_name(enum nm_mode mode)
{
    switch (mode) {
    case NM_RELAY:
        return "relay";
    case NM_REFUSE_STARTTLS:
        return "refuse-starttls";
    case NM_STRIP_STARTTLS:
        return "strip-starttls";
    case NM_INJECT_AFTER_ACK:
        return "inject-after-ack";
    case NM_INJECT_STRUCTURED:
        return "inject-structured";
    case NM_OLDSTYLE:
        return "oldstyle";
    default:
        return "?";
    }
}
