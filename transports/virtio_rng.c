/* see sechan/virtio.h: virtio-rng (entropy device, id 4), one request queue. */
#include <string.h>

#include "sechan/port.h"
#include "sechan/virtio.h"

#define RNG_QUEUE 0u

int sc_virtio_rng_init(struct sc_virtio_rng *r, uintptr_t regs)
{
    if (r == NULL)
        return SC_ERR_INVAL;
    memset(r, 0, sizeof(*r));
    uint64_t deadline = sc_deadline_in(SC_VIRTIO_RESET_TIMEOUT_MS);
    int e = sc_virtio_dev_begin(&r->dev, regs, SC_VIRTIO_ID_RNG, 0, 0, deadline);
    if (e == 0)
        e = sc_virtq_setup(&r->dev, &r->q, RNG_QUEUE, 1);
    if (e == 0)
        e = sc_virtio_dev_live(&r->dev);
    if (e != 0) {
        if (r->dev.begun)
            (void)sc_virtio_dev_reset(&r->dev, sc_deadline_in(SC_VIRTIO_RESET_TIMEOUT_MS));
        r->closed = true;
        return e;
    }
    return 0;
}

int sc_virtio_rng_read(struct sc_virtio_rng *r, void *buf, size_t len, uint64_t deadline_ms)
{
    if (r == NULL || (buf == NULL && len > 0))
        return SC_ERR_INVAL;
    if (r->closed)
        return r->dev.error != 0 ? r->dev.error : SC_ERR_CLOSED;
    if (r->dev.error != 0)
        return r->dev.error;
    uint8_t *out = buf;
    while (len > 0) {
        if (!r->waiting) {
            if (sc_virtq_add(&r->q, 0, r->buf, sizeof(r->buf), true) != 0)
                return sc_virtio_dev_fail(&r->dev, SC_ERR_INTERNAL, "virtio-rng: queue state");
            sc_virtq_kick(&r->q);
            r->waiting = true;
        }
        uint16_t id;
        uint32_t got;
        int u = sc_virtq_next_used(&r->q, &id, &got);
        if (u < 0)
            return sc_virtio_dev_fail(&r->dev, SC_ERR_PROTO,
                                      "virtio-rng: device returned a buffer it did not hold");
        if (u == 0) {
            int e = sc_virtio_dev_check(&r->dev);
            if (e != 0)
                return e;
            if (deadline_ms != SC_DEADLINE_NEVER && sc_port_now_ms() >= deadline_ms)
                return SC_ERR_TIMEOUT;
            sc_port_yield();
            continue;
        }
        r->waiting = false;
        if (got > sizeof(r->buf))
            return sc_virtio_dev_fail(&r->dev, SC_ERR_PROTO,
                                      "virtio-rng: length beyond the buffer");
        size_t n = got < len ? got : len;
        memcpy(out, r->buf, n);
        /* Bytes handed out are not kept in the context. */
        memset(r->buf, 0, sizeof(r->buf));
        out += n;
        len -= n;
    }
    return 0;
}

void sc_virtio_rng_close(struct sc_virtio_rng *r)
{
    if (r == NULL || r->closed)
        return;
    (void)sc_virtio_dev_reset(&r->dev, sc_deadline_in(SC_VIRTIO_RESET_TIMEOUT_MS));
    memset(r->buf, 0, sizeof(r->buf));
    r->waiting = false;
    r->closed = true;
}

const char *sc_virtio_rng_errmsg(const struct sc_virtio_rng *r)
{
    return r != NULL && r->dev.msg != NULL ? r->dev.msg : "";
}
