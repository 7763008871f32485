/* see sechan/channel.h */
#include "sechan/channel.h"

#include "sechan/port.h"

void sc_channel_init(struct sc_channel *ch, const struct sc_channel_ops *ops,
                     struct sc_channel *lower)
{
    ch->ops = ops;
    ch->lower = lower;
    ch->error = 0;
}

static int channel_usable(const struct sc_channel *ch)
{
    if (ch == NULL || ch->ops == NULL)
        return SC_ERR_INVAL;
    return ch->error;
}

/* Keep the first fatal error; would-block is never fatal. */
static long channel_note(struct sc_channel *ch, long r)
{
    if (r < 0 && r != SC_ERR_AGAIN && ch->error == 0)
        ch->error = (int)r;
    return r;
}

long sc_read(struct sc_channel *ch, void *buf, size_t len)
{
    int e = channel_usable(ch);
    if (e != 0)
        return e;
    if (buf == NULL || len == 0)
        return SC_ERR_INVAL;
    if (len > SC_IO_MAX)
        len = SC_IO_MAX;
    return channel_note(ch, ch->ops->read(ch, buf, len));
}

long sc_write(struct sc_channel *ch, const void *buf, size_t len)
{
    int e = channel_usable(ch);
    if (e != 0)
        return e;
    if (len == 0)
        return 0;
    if (buf == NULL)
        return SC_ERR_INVAL;
    if (len > SC_IO_MAX)
        len = SC_IO_MAX;
    return channel_note(ch, ch->ops->write(ch, buf, len));
}

int sc_close(struct sc_channel *ch)
{
    if (ch == NULL || ch->ops == NULL)
        return SC_ERR_INVAL;
    if (ch->error == SC_ERR_CLOSED)
        return SC_ERR_CLOSED;
    int r = ch->ops->close(ch);
    ch->error = SC_ERR_CLOSED;
    return r;
}

enum sc_dir sc_direction(const struct sc_channel *ch)
{
    if (ch == NULL || ch->ops == NULL || ch->error != 0)
        return SC_DIR_NONE;
    return ch->ops->direction(ch);
}

int sc_shutdown(struct sc_channel *ch)
{
    int e = channel_usable(ch);
    if (e != 0)
        return e;
    if (ch->ops->shutdown == NULL)
        return SC_ERR_UNSUPPORTED;
    return (int)channel_note(ch, ch->ops->shutdown(ch));
}

size_t sc_pending(const struct sc_channel *ch)
{
    if (channel_usable(ch) != 0 || ch->ops->pending == NULL)
        return 0;
    return ch->ops->pending(ch);
}

int sc_flush(struct sc_channel *ch)
{
    int e = channel_usable(ch);
    if (e != 0)
        return e;
    if (ch->ops->flush == NULL)
        return 0;
    return (int)channel_note(ch, ch->ops->flush(ch));
}

int sc_wait(struct sc_channel *ch, enum sc_dir dir, uint64_t deadline_ms)
{
    int e = channel_usable(ch);
    if (e != 0)
        return e;
    if (dir == SC_DIR_NONE)
        return 0;
    if (ch->ops->wait != NULL)
        return ch->ops->wait(ch, dir, deadline_ms);
    if (ch->lower != NULL)
        return sc_wait(ch->lower, dir, deadline_ms);
    return SC_ERR_UNSUPPORTED;
}

const char *sc_channel_errmsg(const struct sc_channel *ch)
{
    if (ch == NULL)
        return sc_strerror(SC_ERR_INVAL);
    for (const struct sc_channel *c = ch; c != NULL; c = c->lower) {
        if (c->error == 0 || c->ops == NULL || c->ops->errmsg == NULL)
            continue;
        const char *m = c->ops->errmsg(c);
        if (m != NULL && m[0] != '\0')
            return m;
    }
    return sc_strerror(ch->error);
}

uint64_t sc_deadline_in(uint64_t timeout_ms)
{
    uint64_t now = sc_port_now_ms();
    if (timeout_ms >= SC_DEADLINE_NEVER - now)
        return SC_DEADLINE_NEVER;
    return now + timeout_ms;
}

/* After SC_ERR_AGAIN: wait for what the channel asks, unless time is up. */
static int channel_block(struct sc_channel *ch, uint64_t deadline_ms)
{
    if (deadline_ms != SC_DEADLINE_NEVER && sc_port_now_ms() >= deadline_ms)
        return SC_ERR_TIMEOUT;
    enum sc_dir dir = sc_direction(ch);
    if (dir == SC_DIR_NONE)
        return 0;  /* nothing to wait for: retry at once */
    return sc_wait(ch, dir, deadline_ms);
}

long sc_read_some(struct sc_channel *ch, void *buf, size_t len, uint64_t deadline_ms)
{
    for (;;) {
        long r = sc_read(ch, buf, len);
        if (r != SC_ERR_AGAIN)
            return r;
        int w = channel_block(ch, deadline_ms);
        if (w < 0)
            return w;
    }
}

int sc_read_full(struct sc_channel *ch, void *buf, size_t len, size_t *got,
                 uint64_t deadline_ms)
{
    uint8_t *p = buf;
    size_t done = 0;
    int rc = 0;
    while (done < len) {
        long r = sc_read_some(ch, p + done, len - done, deadline_ms);
        if (r <= 0) {
            rc = r == 0 ? SC_ERR_EOF : (int)r;
            break;
        }
        done += (size_t)r;
    }
    if (got != NULL)
        *got = done;
    return rc;
}

static int flush_wait(struct sc_channel *ch, uint64_t deadline_ms)
{
    for (;;) {
        int r = sc_flush(ch);
        if (r != SC_ERR_AGAIN)
            return r;
        int w = channel_block(ch, deadline_ms);
        if (w < 0)
            return w;
    }
}

int sc_write_all(struct sc_channel *ch, const void *buf, size_t len, uint64_t deadline_ms)
{
    const uint8_t *p = buf;
    size_t done = 0;
    while (done < len) {
        long r = sc_write(ch, p + done, len - done);
        if (r == SC_ERR_AGAIN) {
            int w = channel_block(ch, deadline_ms);
            if (w < 0)
                return w;
            continue;
        }
        if (r < 0)
            return (int)r;
        if (r == 0)
            return SC_ERR_INTERNAL;  /* a channel broke the contract */
        done += (size_t)r;
    }
    return flush_wait(ch, deadline_ms);
}

int sc_shutdown_wait(struct sc_channel *ch, uint64_t deadline_ms)
{
    for (;;) {
        int r = sc_shutdown(ch);
        if (r != SC_ERR_AGAIN)
            return r;
        int w = channel_block(ch, deadline_ms);
        if (w < 0)
            return w;
    }
}
