/* sechan/buf.h: bounded buffers shared by every layer.
 *
 * sc_cursor: a span still to be moved (partial I/O in engines and drivers).
 * sc_ring:   a single-producer single-consumer byte ring over caller memory,
 *            safe with one writer thread and one reader thread.
 */
#ifndef SECHAN_BUF_H
#define SECHAN_BUF_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "sechan/channel.h"

struct sc_cursor {
    uint8_t *ptr;
    size_t len;   /* bytes still to move */
};

enum sc_cursor_result {
    SC_CURSOR_MORE = 0,  /* would block: wait for sc_direction() and call again */
    SC_CURSOR_DONE = 1   /* len reached 0 */
};

static inline void sc_cursor_set(struct sc_cursor *c, void *ptr, size_t len)
{
    c->ptr = (uint8_t *)ptr;
    c->len = len;
}

/* Move bytes between the channel and the cursor's span without waiting.
 * SC_CURSOR_DONE, SC_CURSOR_MORE, or a negative SC_ERR_* (SC_ERR_EOF when
 * the peer closed before the span was filled). */
int sc_cursor_read(struct sc_channel *ch, struct sc_cursor *c);
int sc_cursor_write(struct sc_channel *ch, struct sc_cursor *c);

struct sc_ring {
    uint8_t *buf;
    size_t cap;                /* a power of two */
    atomic_size_t head;        /* total bytes ever written */
    atomic_size_t tail;        /* total bytes ever read */
};

/* cap must be a power of two (SC_ERR_INVAL otherwise). */
int sc_ring_init(struct sc_ring *r, void *storage, size_t cap);
size_t sc_ring_used(const struct sc_ring *r);
size_t sc_ring_space(const struct sc_ring *r);
/* Copy in / out as much as fits; return the count (0 when full / empty). */
size_t sc_ring_put(struct sc_ring *r, const void *src, size_t len);
size_t sc_ring_get(struct sc_ring *r, void *dst, size_t len);

#endif
