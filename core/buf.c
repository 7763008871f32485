/* see sechan/buf.h */
#include "sechan/buf.h"

#include <string.h>

int sc_cursor_read(struct sc_channel *ch, struct sc_cursor *c)
{
    while (c->len > 0) {
        long r = sc_read(ch, c->ptr, c->len);
        if (r == SC_ERR_AGAIN)
            return SC_CURSOR_MORE;
        if (r == 0)
            return SC_ERR_EOF;
        if (r < 0)
            return (int)r;
        c->ptr += r;
        c->len -= (size_t)r;
    }
    return SC_CURSOR_DONE;
}

int sc_cursor_write(struct sc_channel *ch, struct sc_cursor *c)
{
    while (c->len > 0) {
        long r = sc_write(ch, c->ptr, c->len);
        if (r == SC_ERR_AGAIN)
            return SC_CURSOR_MORE;
        if (r <= 0)
            return r == 0 ? SC_ERR_INTERNAL : (int)r;
        c->ptr += r;
        c->len -= (size_t)r;
    }
    return SC_CURSOR_DONE;
}

int sc_ring_init(struct sc_ring *r, void *storage, size_t cap)
{
    if (storage == NULL || cap == 0 || (cap & (cap - 1)) != 0)
        return SC_ERR_INVAL;
    r->buf = storage;
    r->cap = cap;
    atomic_init(&r->head, 0);
    atomic_init(&r->tail, 0);
    return 0;
}

size_t sc_ring_used(const struct sc_ring *r)
{
    size_t head = atomic_load_explicit(&r->head, memory_order_acquire);
    size_t tail = atomic_load_explicit(&r->tail, memory_order_acquire);
    return head - tail;
}

size_t sc_ring_space(const struct sc_ring *r)
{
    return r->cap - sc_ring_used(r);
}

/* Copy n bytes at logical position pos of the ring, in at most two pieces. */
static void ring_copy_in(struct sc_ring *r, size_t pos, const uint8_t *src, size_t n)
{
    size_t at = pos & (r->cap - 1);
    size_t first = r->cap - at < n ? r->cap - at : n;
    memcpy(r->buf + at, src, first);
    memcpy(r->buf, src + first, n - first);
}

static void ring_copy_out(const struct sc_ring *r, size_t pos, uint8_t *dst, size_t n)
{
    size_t at = pos & (r->cap - 1);
    size_t first = r->cap - at < n ? r->cap - at : n;
    memcpy(dst, r->buf + at, first);
    memcpy(dst + first, r->buf, n - first);
}

size_t sc_ring_put(struct sc_ring *r, const void *src, size_t len)
{
    /* Only the producer moves head; tail is read with acquire so that the
     * consumer's reads of the freed bytes happen before we overwrite them. */
    size_t head = atomic_load_explicit(&r->head, memory_order_relaxed);
    size_t tail = atomic_load_explicit(&r->tail, memory_order_acquire);
    size_t space = r->cap - (head - tail);
    size_t n = len < space ? len : space;
    if (n == 0)
        return 0;
    ring_copy_in(r, head, src, n);
    atomic_store_explicit(&r->head, head + n, memory_order_release);
    return n;
}

size_t sc_ring_get(struct sc_ring *r, void *dst, size_t len)
{
    size_t tail = atomic_load_explicit(&r->tail, memory_order_relaxed);
    size_t head = atomic_load_explicit(&r->head, memory_order_acquire);
    size_t used = head - tail;
    size_t n = len < used ? len : used;
    if (n == 0)
        return 0;
    ring_copy_out(r, tail, dst, n);
    atomic_store_explicit(&r->tail, tail + n, memory_order_release);
    return n;
}
