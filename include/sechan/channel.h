/* sechan/channel.h: the one contract every transport and layer fulfils.
 *
 * A channel is a caller-allocated struct whose first member is a
 * struct sc_channel. A layer (TLS, SASL) holds the channel below it in
 * `lower` and owns nothing but caller memory.
 *
 * Every channel works non-blocking:
 *   read:  > 0 bytes read, 0 = the peer closed cleanly, < 0 an SC_ERR_* code
 *   write: > 0 bytes taken, < 0 an SC_ERR_* code
 * SC_ERR_AGAIN means "would block": call direction() to learn what the
 * channel waits for, wait for it (sc_wait), and retry. A write retried after
 * SC_ERR_AGAIN must start with the same bytes (it may carry more); a layer
 * may have taken some of them already (TLS holds a sealed record), and says
 * how many on the retry. Short reads and writes are normal.
 *
 * Any other negative result is fatal and sticky: the public wrappers below
 * store the first one in `error` and refuse all further I/O with it until
 * the channel is closed.
 */
#ifndef SECHAN_CHANNEL_H
#define SECHAN_CHANNEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sechan/err.h"

enum sc_dir {
    SC_DIR_NONE = 0,
    SC_DIR_READ = 1,
    SC_DIR_WRITE = 2,
    SC_DIR_BOTH = 3
};

/* Absolute deadlines are in milliseconds of sc_port_now_ms()'s clock. */
#define SC_DEADLINE_NEVER UINT64_MAX

struct sc_channel;

struct sc_channel_ops {
    const char *name;  /* "tcp", "tls", ... for messages */
    /* mandatory */
    long (*read)(struct sc_channel *ch, void *buf, size_t len);
    long (*write)(struct sc_channel *ch, const void *buf, size_t len);
    int (*close)(struct sc_channel *ch);
    enum sc_dir (*direction)(const struct sc_channel *ch);
    /* optional: NULL means "not provided" (see each wrapper) */
    int (*shutdown)(struct sc_channel *ch);            /* end our sending side */
    size_t (*pending)(const struct sc_channel *ch);    /* bytes readable now */
    int (*flush)(struct sc_channel *ch);               /* push buffered output */
    int (*wait)(struct sc_channel *ch, enum sc_dir dir, uint64_t deadline_ms);
    const char *(*errmsg)(const struct sc_channel *ch); /* layer's own message */
};

struct sc_channel {
    const struct sc_channel_ops *ops;
    struct sc_channel *lower;  /* the channel below, NULL for a transport */
    int error;                 /* first fatal SC_ERR_*, 0 while healthy */
};

/* Prepare the base of a channel (called by each transport or layer's init). */
void sc_channel_init(struct sc_channel *ch, const struct sc_channel_ops *ops,
                     struct sc_channel *lower);

/* Non-blocking I/O through ops, with the sticky-error rule applied. A len
 * above SC_IO_MAX is clipped to it (a short read or write). */
#define SC_IO_MAX ((size_t)0x7fffffff)
long sc_read(struct sc_channel *ch, void *buf, size_t len);
long sc_write(struct sc_channel *ch, const void *buf, size_t len);

/* Close the channel (not the one below it: each owner closes its own).
 * Returns the close result; the channel is unusable afterwards. */
int sc_close(struct sc_channel *ch);

/* What the channel waits for after SC_ERR_AGAIN. */
enum sc_dir sc_direction(const struct sc_channel *ch);

/* End our sending side (TLS close_notify, TCP FIN). SC_ERR_AGAIN: retry.
 * Without the op: SC_ERR_UNSUPPORTED. */
int sc_shutdown(struct sc_channel *ch);

/* Bytes that a read would return without waiting; 0 without the op. */
size_t sc_pending(const struct sc_channel *ch);

/* Push buffered output down. 0 when nothing is left; SC_ERR_AGAIN: retry.
 * Without the op there is never anything buffered: 0. */
int sc_flush(struct sc_channel *ch);

/* Wait until the channel may make progress in `dir`, or the deadline.
 * 0: ready (or maybe ready: retry the I/O), SC_ERR_TIMEOUT, or an error.
 * A layer without its own wait op waits on the channel below it. */
int sc_wait(struct sc_channel *ch, enum sc_dir dir, uint64_t deadline_ms);

/* The first fatal error of the channel or of any channel below it: the
 * topmost layer's own message when it has one, else sc_strerror(). Never NULL. */
const char *sc_channel_errmsg(const struct sc_channel *ch);

/* Blocking helpers: thin loops over the non-blocking calls, direction()
 * and sc_wait(), each bounded by an absolute deadline.
 *   sc_read_some:  > 0 bytes, 0 at clean EOF, < 0 error (SC_ERR_TIMEOUT).
 *   sc_read_full:  0 when all len bytes arrived; SC_ERR_EOF if the peer
 *                  closed first; *got (may be NULL) says how many arrived.
 *   sc_write_all:  0 when all len bytes were taken and flushed.
 *   sc_shutdown_wait: sc_shutdown until done.
 */
long sc_read_some(struct sc_channel *ch, void *buf, size_t len, uint64_t deadline_ms);
int sc_read_full(struct sc_channel *ch, void *buf, size_t len, size_t *got,
                 uint64_t deadline_ms);
int sc_write_all(struct sc_channel *ch, const void *buf, size_t len, uint64_t deadline_ms);
int sc_shutdown_wait(struct sc_channel *ch, uint64_t deadline_ms);

/* Deadline arithmetic that saturates instead of wrapping. */
uint64_t sc_deadline_in(uint64_t timeout_ms);

#endif
