/* see sechan/nbd.h: the driver that joins the client engine to a channel,
 * starting the TLS layer when the engine asks for it. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "nbd_client_int.h"
#include "nbd_tls.h"
#include "sechan/port.h"

static int conn_fail(struct sc_nbd_conn *n, int err, const char *what, const char *detail)
{
    if (n->error == 0) {
        n->error = err;
        snprintf(n->msg, sizeof(n->msg), "%s: %s", what, detail);
    }
    return n->error;
}

const char *sc_nbd_conn_errmsg(const struct sc_nbd_conn *n)
{
    if (n->msg[0])
        return n->msg;
    if (n->eng.error)
        return sc_nbd_client_errmsg(&n->eng);
    return sc_strerror(n->error);
}

/* Run the TLS handshake over the raw channel; the engine read nothing past
 * the STARTTLS acknowledgement, so the TLS layer starts on a clean stream. */
static int step_tls(struct sc_nbd_conn *n, enum sc_dir *want)
{
    int r = nbd_tls_step(&n->tls, &n->tls_started, n->raw, &n->ch, n->tls_cfg, want);
    if (r == SC_ERR_AGAIN)
        return r;
    if (r == SC_ERR_INVAL && n->tls_cfg == NULL)
        return conn_fail(n, r, "nbd starttls", "no TLS configuration given");
    if (r != 0)
        return conn_fail(n, r, "nbd starttls", sc_channel_errmsg(&n->tls.base));
    r = sc_nbd_client_tls_done(&n->eng);
    return r != 0 ? conn_fail(n, r, "nbd", sc_nbd_client_errmsg(&n->eng)) : 0;
}

static int engine_fail(struct sc_nbd_conn *n)
{
    return conn_fail(n, n->eng.error, "nbd", sc_nbd_client_errmsg(&n->eng));
}

/* One round of moving bytes; *want collects what to wait for. */
static int pump(struct sc_nbd_conn *n, enum sc_dir *want)
{
    if (n->error != 0)
        return n->error;
    unsigned st = sc_nbd_client_state(&n->eng);
    if (st & SC_NBD_FAILED)
        return engine_fail(n);
    if (st & SC_NBD_WANT_TLS) {
        int r = step_tls(n, want);
        if (r != 0)
            return r;
    }
    bool moved = false;
    size_t len;
    const uint8_t *out;
    while ((out = sc_nbd_client_sendbuf(&n->eng, &len)) != NULL && len > 0) {
        long w = sc_write(n->ch, out, len);
        if (w == SC_ERR_AGAIN) {
            *want |= sc_direction(n->ch);
            break;
        }
        if (w < 0)
            return conn_fail(n, (int)w, "nbd send", sc_channel_errmsg(n->ch));
        sc_nbd_client_sendack(&n->eng, (size_t)w);
        moved = true;
    }
    /* Stop reading at a completion: the caller reaps it and submits the next
     * request before the replies queued behind it are read, or the window
     * would drain to empty whenever the replies come faster than we read. */
    uint8_t *in;
    uint32_t completions = n->eng.completions;
    while (n->eng.completions == completions &&
           (in = sc_nbd_client_recvbuf(&n->eng, &len)) != NULL && len > 0) {
        long r = sc_read(n->ch, in, len);
        if (r == SC_ERR_AGAIN) {
            *want |= sc_direction(n->ch);
            break;
        }
        if (r == 0) {
            if (sc_nbd_client_eof(&n->eng) != 0)
                return engine_fail(n);
            break;
        }
        if (r < 0)
            return conn_fail(n, (int)r, "nbd receive", sc_channel_errmsg(n->ch));
        if (sc_nbd_client_recvack(&n->eng, (size_t)r) != 0)
            return engine_fail(n);
        moved = true;
    }
    if (sc_nbd_client_state(&n->eng) & SC_NBD_FAILED)
        return engine_fail(n);
    return moved ? 0 : SC_ERR_AGAIN;
}

int sc_nbd_conn_pump(struct sc_nbd_conn *n)
{
    enum sc_dir want = SC_DIR_NONE;
    return pump(n, &want);
}

static bool has_completion(const struct sc_nbd_client *c)
{
    for (unsigned i = 0; i < SC_NBD_WINDOW; i++) {
        if (c->slots[i].state == SLOT_DONE)
            return true;
    }
    return false;
}

/* Pump until done(n) holds, waiting on the channel when nothing moves. */
static int run_until(struct sc_nbd_conn *n, bool (*done)(const struct sc_nbd_conn *),
                     uint64_t deadline_ms)
{
    for (;;) {
        enum sc_dir want = SC_DIR_NONE;
        int r = pump(n, &want);
        if (done(n))
            return 0;
        if (r != 0 && r != SC_ERR_AGAIN)
            return r;
        if (r == 0)
            continue;
        int w = SC_ERR_TIMEOUT;
        if (deadline_ms == SC_DEADLINE_NEVER || sc_port_now_ms() < deadline_ms)
            w = sc_wait(n->ch, want != SC_DIR_NONE ? want : SC_DIR_READ, deadline_ms);
        if (w == SC_ERR_TIMEOUT) {
            char what[64], text[96];
            snprintf(text, sizeof(text), "timed out waiting for %s",
                     nbd_client_waiting_for(&n->eng, what, sizeof(what)));
            return conn_fail(n, SC_ERR_TIMEOUT, "nbd", text);
        }
        if (w < 0)
            return conn_fail(n, w, "nbd wait", sc_channel_errmsg(n->ch));
    }
}

static bool handshake_over(const struct sc_nbd_conn *n)
{
    return (sc_nbd_client_state(&n->eng) & (SC_NBD_READY | SC_NBD_CLOSED)) != 0;
}

static bool completion_ready(const struct sc_nbd_conn *n)
{
    return has_completion(&n->eng) || n->eng.in_flight == 0;
}

int sc_nbd_connect(struct sc_nbd_conn *n, struct sc_channel *raw,
                   const struct sc_nbd_client_config *cfg,
                   const struct sc_tls_config *tls_cfg, uint64_t deadline_ms)
{
    memset(n, 0, offsetof(struct sc_nbd_conn, tls));
    n->raw = raw;
    n->ch = raw;
    n->tls_cfg = tls_cfg;
    int r = sc_nbd_client_init(&n->eng, cfg);
    if (r != 0)
        return engine_fail(n);
    return run_until(n, handshake_over, deadline_ms);
}

int sc_nbd_conn_wait(struct sc_nbd_conn *n, uint64_t deadline_ms)
{
    return run_until(n, completion_ready, deadline_ms);
}

/* Submit one request and wait for its own completion. */
static int one_request(struct sc_nbd_conn *n, const struct sc_nbd_request *req, size_t *nr,
                       uint64_t deadline_ms)
{
    if (n->eng.in_flight != 0)
        return SC_ERR_STATE;  /* the blocking helpers own the window */
    uint64_t cookie;
    int r = sc_nbd_client_submit(&n->eng, req, &cookie);
    if (r != 0)
        return r;
    r = run_until(n, completion_ready, deadline_ms);
    if (r != 0)
        return r;
    struct sc_nbd_completion done;
    if (sc_nbd_client_reap(&n->eng, &done) != 1 || done.cookie != cookie)
        return SC_ERR_INTERNAL;
    if (nr != NULL)
        *nr = done.nr_extents;
    if (done.error != 0) {
        char text[48];
        snprintf(text, sizeof(text), "server answered error %" PRIu32, done.nbd_error);
        snprintf(n->msg, sizeof(n->msg), "nbd request: %s", text);
    }
    return done.error;
}

int sc_nbd_pread(struct sc_nbd_conn *n, void *buf, uint32_t len, uint64_t offset,
                 uint64_t deadline_ms)
{
    struct sc_nbd_request req = {.type = SC_NBD_CMD_READ, .offset = offset, .length = len,
                                 .buf = buf};
    return one_request(n, &req, NULL, deadline_ms);
}

int sc_nbd_pwrite(struct sc_nbd_conn *n, const void *buf, uint32_t len, uint64_t offset,
                  uint16_t flags, uint64_t deadline_ms)
{
    struct sc_nbd_request req = {.type = SC_NBD_CMD_WRITE, .flags = flags, .offset = offset,
                                 .length = len, .buf = (void *)(uintptr_t)buf};
    return one_request(n, &req, NULL, deadline_ms);
}

int sc_nbd_command(struct sc_nbd_conn *n, uint16_t type, uint16_t flags, uint64_t offset,
                   uint32_t len, uint64_t deadline_ms)
{
    struct sc_nbd_request req = {.type = type, .flags = flags, .offset = offset, .length = len};
    return one_request(n, &req, NULL, deadline_ms);
}

int sc_nbd_block_status(struct sc_nbd_conn *n, uint64_t offset, uint32_t len,
                        struct sc_nbd_extent *extents, size_t max, size_t *nr,
                        uint64_t deadline_ms)
{
    struct sc_nbd_request req = {.type = SC_NBD_CMD_BLOCK_STATUS, .offset = offset,
                                 .length = len, .extents = extents, .max_extents = max};
    return one_request(n, &req, nr, deadline_ms);
}

static bool closed(const struct sc_nbd_conn *n)
{
    return (sc_nbd_client_state(&n->eng) & SC_NBD_CLOSED) != 0;
}

int sc_nbd_close(struct sc_nbd_conn *n, uint64_t deadline_ms)
{
    int r = 0;
    if (n->error == 0 && (sc_nbd_client_state(&n->eng) & SC_NBD_READY)) {
        r = sc_nbd_client_disconnect(&n->eng);
        if (r == 0)
            r = run_until(n, closed, deadline_ms);
    }
    if (n->tls_started) {
        if (r == 0 && n->error == 0) {
            r = sc_shutdown_wait(&n->tls.base, deadline_ms);
            /* A server may close as soon as it reads NBD_CMD_DISC, before
             * our close_notify can go out: that is a clean end too. */
            if (r == SC_ERR_RESET || r == SC_ERR_EOF)
                r = 0;
        }
        sc_close(&n->tls.base);
        n->tls_started = false;
    }
    n->ch = n->raw;
    return r;
}
