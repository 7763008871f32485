/* see sechan/nbd.h: the server engine over a channel, starting TLS when
 * the engine acknowledged NBD_OPT_STARTTLS. */
#include <stdio.h>
#include <string.h>

#include "nbd_server_int.h"
#include "nbd_tls.h"

static int sconn_fail(struct sc_nbd_server_conn *n, int err, const char *what,
                      const char *detail)
{
    if (n->error == 0) {
        n->error = err;
        snprintf(n->msg, sizeof(n->msg), "%s: %s", what, detail);
    }
    return n->error;
}

int sc_nbd_server_conn_init(struct sc_nbd_server_conn *n, struct sc_channel *raw,
                            const struct sc_nbd_server_config *cfg,
                            const struct sc_tls_config *tls_cfg)
{
    memset(n, 0, offsetof(struct sc_nbd_server_conn, tls));
    n->raw = raw;
    n->ch = raw;
    n->tls_cfg = tls_cfg;
    if (cfg->tls != SC_NBD_TLS_OFF && tls_cfg == NULL)
        return sconn_fail(n, SC_ERR_INVAL, "nbd server", "TLS policy without TLS config");
    int r = sc_nbd_server_init(&n->eng, cfg);
    return r != 0 ? sconn_fail(n, r, "nbd server", "bad configuration") : 0;
}

static int engine_fail(struct sc_nbd_server_conn *n)
{
    return sconn_fail(n, n->eng.error, "nbd server", sc_nbd_server_errmsg(&n->eng));
}

static int step_tls(struct sc_nbd_server_conn *n, enum sc_dir *want)
{
    int r = nbd_tls_step(&n->tls, &n->tls_started, n->raw, &n->ch, n->tls_cfg, want);
    if (r == SC_ERR_AGAIN)
        return r;
    if (r != 0)
        return sconn_fail(n, r, "nbd server starttls", sc_channel_errmsg(&n->tls.base));
    return sc_nbd_server_tls_done(&n->eng) != 0 ? engine_fail(n) : 0;
}

int sc_nbd_server_conn_pump(struct sc_nbd_server_conn *n, enum sc_dir *want)
{
    if (n->error != 0)
        return n->error;
    bool moved = false;
    for (int round = 0; round < 64; round++) {
        unsigned st = sc_nbd_server_state(&n->eng);
        if (st & SC_NBD_FAILED)
            return engine_fail(n);
        if (st & SC_NBD_CLOSED)
            return 1;
        if (st & SC_NBD_WANT_TLS) {
            int r = step_tls(n, want);
            if (r == SC_ERR_AGAIN)
                return moved ? 0 : SC_ERR_AGAIN;
            if (r != 0)
                return r;
            moved = true;
            continue;
        }
        size_t len;
        const uint8_t *out = sc_nbd_server_sendbuf(&n->eng, &len);
        if (out != NULL && len > 0) {
            long w = sc_write(n->ch, out, len);
            if (w == SC_ERR_AGAIN) {
                *want |= sc_direction(n->ch);
                return moved ? 0 : SC_ERR_AGAIN;
            }
            if (w < 0)
                return sconn_fail(n, (int)w, "nbd server send", sc_channel_errmsg(n->ch));
            sc_nbd_server_sendack(&n->eng, (size_t)w);
            moved = true;
            continue;
        }
        uint8_t *in = sc_nbd_server_recvbuf(&n->eng, &len);
        if (in == NULL || len == 0)
            return moved ? 0 : SC_ERR_AGAIN;
        long r = sc_read(n->ch, in, len);
        if (r == SC_ERR_AGAIN) {
            *want |= sc_direction(n->ch);
            return moved ? 0 : SC_ERR_AGAIN;
        }
        /* A TLS peer that just drops the connection (no close_notify) is
         * judged like a plain EOF: fine after DISC, else "left early". */
        if (r == 0 || (r == SC_ERR_EOF && n->tls_started))
            return sc_nbd_server_eof(&n->eng) == 0 ? 1 : engine_fail(n);
        if (r < 0)
            return sconn_fail(n, (int)r, "nbd server receive", sc_channel_errmsg(n->ch));
        if (sc_nbd_server_recvack(&n->eng, (size_t)r) != 0)
            return engine_fail(n);
        moved = true;
    }
    return 0;  /* fairness: let the caller serve other clients */
}

void sc_nbd_server_conn_close(struct sc_nbd_server_conn *n)
{
    if (n->tls_started) {
        if (n->error == 0)
            (void)sc_shutdown(&n->tls.base);  /* best effort close_notify */
        sc_close(&n->tls.base);
        n->tls_started = false;
    }
    n->ch = n->raw;
}

const char *sc_nbd_server_conn_errmsg(const struct sc_nbd_server_conn *n)
{
    return n->msg[0] ? n->msg : sc_strerror(n->error);
}
