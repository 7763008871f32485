/* see sechan/pipe.h */
#include "sechan/pipe.h"

#include "sechan/port.h"

static size_t pipe_clip(const struct sc_pipe_end *e, size_t len)
{
    return e->max_io != 0 && len > e->max_io ? e->max_io : len;
}

static long pipe_read(struct sc_channel *ch, void *buf, size_t len)
{
    struct sc_pipe_end *e = (struct sc_pipe_end *)ch;
    size_t n = sc_ring_get(e->rx, buf, pipe_clip(e, len));
    if (n > 0)
        return (long)n;
    /* Empty: end-of-stream only once the peer stopped sending; check the
     * ring again after seeing the flag, since bytes may have raced in. */
    if (atomic_load(e->rx_eof) || atomic_load(e->peer_gone)) {
        n = sc_ring_get(e->rx, buf, pipe_clip(e, len));
        return (long)n;
    }
    e->want = SC_DIR_READ;
    return SC_ERR_AGAIN;
}

static long pipe_write(struct sc_channel *ch, const void *buf, size_t len)
{
    struct sc_pipe_end *e = (struct sc_pipe_end *)ch;
    if (atomic_load(e->tx_eof))
        return SC_ERR_STATE;
    if (atomic_load(e->peer_gone))
        return SC_ERR_RESET;
    size_t n = sc_ring_put(e->tx, buf, pipe_clip(e, len));
    if (n > 0)
        return (long)n;
    e->want = SC_DIR_WRITE;
    return SC_ERR_AGAIN;
}

static int pipe_close(struct sc_channel *ch)
{
    struct sc_pipe_end *e = (struct sc_pipe_end *)ch;
    atomic_store(e->tx_eof, true);
    atomic_store(e->self_gone, true);
    return 0;
}

static enum sc_dir pipe_direction(const struct sc_channel *ch)
{
    return ((const struct sc_pipe_end *)ch)->want;
}

static int pipe_shutdown(struct sc_channel *ch)
{
    atomic_store(((struct sc_pipe_end *)ch)->tx_eof, true);
    return 0;
}

static size_t pipe_pending(const struct sc_channel *ch)
{
    return sc_ring_used(((const struct sc_pipe_end *)ch)->rx);
}

static bool pipe_ready(const struct sc_pipe_end *e, enum sc_dir dir)
{
    if ((dir & SC_DIR_READ) && (sc_ring_used(e->rx) > 0 || atomic_load(e->rx_eof) ||
                                atomic_load(e->peer_gone)))
        return true;
    if ((dir & SC_DIR_WRITE) && (sc_ring_space(e->tx) > 0 || atomic_load(e->peer_gone)))
        return true;
    return false;
}

static int pipe_wait(struct sc_channel *ch, enum sc_dir dir, uint64_t deadline_ms)
{
    struct sc_pipe_end *e = (struct sc_pipe_end *)ch;
    while (!pipe_ready(e, dir)) {
        if (deadline_ms != SC_DEADLINE_NEVER && sc_port_now_ms() >= deadline_ms)
            return SC_ERR_TIMEOUT;
        sc_port_yield();
    }
    return 0;
}

static const struct sc_channel_ops pipe_ops = {
    .name = "pipe",
    .read = pipe_read,
    .write = pipe_write,
    .close = pipe_close,
    .direction = pipe_direction,
    .shutdown = pipe_shutdown,
    .pending = pipe_pending,
    .wait = pipe_wait,
};

static void pipe_end_init(struct sc_pipe_end *e, struct sc_ring *rx,
                          struct sc_ring *tx, atomic_bool *rx_eof, atomic_bool *tx_eof,
                          atomic_bool *peer_gone, atomic_bool *self_gone)
{
    sc_channel_init(&e->base, &pipe_ops, NULL);
    e->rx = rx;
    e->tx = tx;
    e->rx_eof = rx_eof;
    e->tx_eof = tx_eof;
    e->peer_gone = peer_gone;
    e->self_gone = self_gone;
    e->max_io = 0;
    e->want = SC_DIR_READ;
}

int sc_pipe_init(struct sc_pipe *p, void *buf_ab, size_t cap_ab, void *buf_ba, size_t cap_ba)
{
    int r = sc_ring_init(&p->a_to_b, buf_ab, cap_ab);
    if (r == 0)
        r = sc_ring_init(&p->b_to_a, buf_ba, cap_ba);
    if (r != 0)
        return r;
    atomic_init(&p->a_shut, false);
    atomic_init(&p->b_shut, false);
    atomic_init(&p->a_gone, false);
    atomic_init(&p->b_gone, false);
    pipe_end_init(&p->a, &p->b_to_a, &p->a_to_b, &p->b_shut, &p->a_shut, &p->b_gone,
                  &p->a_gone);
    pipe_end_init(&p->b, &p->a_to_b, &p->b_to_a, &p->a_shut, &p->b_shut, &p->a_gone,
                  &p->b_gone);
    return 0;
}
