/* see sechan/virtio.h: a virtio-serial port (console device, id 3, with
 * MULTIPORT) as a channel. Queues: 2/3 control in/out; port p has p == 0 ?
 * 0/1 : 2p+2/2p+3 (in/out). */
#include <string.h>

#include "sechan/mmio.h"
#include "sechan/port.h"
#include "sechan/virtio.h"

#define CTRL_RX_QUEUE 2u
#define CTRL_TX_QUEUE 3u
#define CFG_MAX_NR_PORTS 4u /* le32 after le16 cols, le16 rows */

/* control events (virtio 1.x, 5.3.6.2) */
#define EV_DEVICE_READY 0u
#define EV_DEVICE_ADD 1u
#define EV_DEVICE_REMOVE 2u
#define EV_PORT_READY 3u
#define EV_PORT_OPEN 6u
#define EV_PORT_NAME 7u

_Static_assert(SC_VIRTIO_SERIAL_RX_BUFS >= 1 && SC_VIRTIO_SERIAL_RX_BUFS <= SC_VIRTQ_MAX &&
                   (SC_VIRTIO_SERIAL_RX_BUFS & (SC_VIRTIO_SERIAL_RX_BUFS - 1)) == 0,
               "SC_VIRTIO_SERIAL_RX_BUFS: a power of two up to SC_VIRTQ_MAX");
_Static_assert(SC_VIRTIO_SERIAL_TX_BUFS >= 1 && SC_VIRTIO_SERIAL_TX_BUFS <= SC_VIRTQ_MAX &&
                   (SC_VIRTIO_SERIAL_TX_BUFS & (SC_VIRTIO_SERIAL_TX_BUFS - 1)) == 0,
               "SC_VIRTIO_SERIAL_TX_BUFS: a power of two up to SC_VIRTQ_MAX");
_Static_assert(SC_VIRTIO_SERIAL_CTRL_BUFS >= 4 && SC_VIRTIO_SERIAL_CTRL_BUFS <= SC_VIRTQ_MAX &&
                   (SC_VIRTIO_SERIAL_CTRL_BUFS & (SC_VIRTIO_SERIAL_CTRL_BUFS - 1)) == 0,
               "SC_VIRTIO_SERIAL_CTRL_BUFS: a power of two from 4 up to SC_VIRTQ_MAX");
_Static_assert(SC_VIRTIO_SERIAL_CTRL_TX_BUFS <= SC_VIRTQ_MAX, "control tx buffers");
_Static_assert(SC_VIRTIO_SERIAL_BUF_SIZE >= 16 && SC_VIRTIO_SERIAL_BUF_SIZE <= 0xffffu,
               "SC_VIRTIO_SERIAL_BUF_SIZE: 16 .. 65535");
_Static_assert(SC_VIRTIO_SERIAL_PORTS_MAX <= 32, "port masks are 32 bits");

static const struct sc_channel_ops vs_ops;

static int vs_fail(struct sc_virtio_serial *s, int err, const char *msg)
{
    return sc_virtio_dev_fail(&s->dev, err, msg);
}

static bool vs_deadline_passed(uint64_t deadline_ms)
{
    return deadline_ms != SC_DEADLINE_NEVER && sc_port_now_ms() >= deadline_ms;
}

/* Between two looks at the queues of a polling loop: the device's error,
 * SC_ERR_TIMEOUT once the deadline has passed, else 0 after yielding. */
static int vs_pause(struct sc_virtio_serial *s, uint64_t deadline_ms)
{
    int e = sc_virtio_dev_check(&s->dev);
    if (e != 0)
        return e;
    if (vs_deadline_passed(deadline_ms))
        return SC_ERR_TIMEOUT;
    sc_port_yield();
    return 0;
}

static uint32_t port_in_queue(uint32_t port)
{
    return port == 0 ? 0u : 2u * port + 2u;
}

static uint32_t free_mask(const struct sc_virtq *q)
{
    uint32_t all = q->size >= 32u ? 0xffffffffu : ((uint32_t)1 << q->size) - 1u;
    return all & ~q->inflight;
}

static uint16_t lowest_bit(uint32_t mask)
{
    uint16_t i = 0;
    while (!(mask & 1u)) {
        mask >>= 1;
        i++;
    }
    return i;
}

static size_t bounded_len(const char *s, size_t max)
{
    size_t n = 0;
    while (n <= max && s[n] != '\0')
        n++;
    return n;
}

static uint32_t get_le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint16_t get_le16(const uint8_t *p)
{
    return (uint16_t)(p[0] | p[1] << 8);
}

/* ---- control queue ---- */

/* Returned control messages we sent are just taken back. */
static int ctrl_reclaim(struct sc_virtio_serial *s)
{
    uint16_t id;
    uint32_t len;
    int u;
    while ((u = sc_virtq_next_used(&s->ctrl_tx, &id, &len)) == 1)
        ;
    if (u < 0)
        return vs_fail(s, SC_ERR_PROTO, "virtio-serial: bad used entry on control out");
    return 0;
}

static int ctrl_send(struct sc_virtio_serial *s, uint32_t port, uint16_t event, uint16_t value,
                     uint64_t deadline_ms)
{
    for (;;) {
        int e = ctrl_reclaim(s);
        if (e != 0)
            return e;
        uint32_t free = free_mask(&s->ctrl_tx);
        if (free != 0) {
            uint16_t id = lowest_bit(free);
            uint8_t *m = s->ctrl_tx_buf[id];
            m[0] = (uint8_t)port;
            m[1] = (uint8_t)(port >> 8);
            m[2] = (uint8_t)(port >> 16);
            m[3] = (uint8_t)(port >> 24);
            m[4] = (uint8_t)event;
            m[5] = (uint8_t)(event >> 8);
            m[6] = (uint8_t)value;
            m[7] = (uint8_t)(value >> 8);
            if (sc_virtq_add(&s->ctrl_tx, id, m, SC_VIRTIO_SERIAL_CTRL_MSG, false) != 0)
                return vs_fail(s, SC_ERR_INTERNAL, "virtio-serial: control queue state");
            sc_virtq_kick(&s->ctrl_tx);
            return 0;
        }
        if ((e = vs_pause(s, deadline_ms)) != 0)
            return e;
    }
}

/* A PORT_NAME payload: the name up to a NUL or the end of what the device
 * wrote. A name longer than our buffer never matches (QEMU reports the whole
 * length even when it had to cut the name). */
static bool name_matches(const struct sc_virtio_serial *s, const uint8_t *buf, uint32_t len)
{
    if (len > SC_VIRTIO_SERIAL_CTRL_BUF_SIZE)
        return false;
    const uint8_t *name = buf + SC_VIRTIO_SERIAL_CTRL_MSG;
    size_t room = len - SC_VIRTIO_SERIAL_CTRL_MSG;
    size_t n = 0;
    while (n < room && name[n] != 0)
        n++;
    size_t want = bounded_len(s->want_name, SC_VIRTIO_SERIAL_NAME_MAX);
    return n == want && memcmp(name, s->want_name, n) == 0;
}

/* One control message from the device; len is the device's claim. */
static int ctrl_handle(struct sc_virtio_serial *s, const uint8_t *buf, uint32_t len)
{
    if (len < SC_VIRTIO_SERIAL_CTRL_MSG)
        return vs_fail(s, SC_ERR_PROTO, "virtio-serial: short control message");
    uint32_t port = get_le32(buf);
    uint16_t event = get_le16(buf + 4);
    uint16_t value = get_le16(buf + 6);
    if (len > SC_VIRTIO_SERIAL_CTRL_BUF_SIZE && event != EV_PORT_NAME)
        return vs_fail(s, SC_ERR_PROTO, "virtio-serial: control length beyond the buffer");
    if (port >= s->max_ports)
        return vs_fail(s, SC_ERR_PROTO, "virtio-serial: control message for a port beyond max");
    bool opening = s->want_name != NULL;
    bool tracked = port < SC_VIRTIO_SERIAL_PORTS_MAX;
    uint32_t bit = tracked ? (uint32_t)1 << port : 0u;

    switch (event) {
    case EV_DEVICE_ADD:
        if (opening && tracked) {
            s->ports_added |= bit;
            s->ports_to_ready |= bit;
        }
        break;
    case EV_DEVICE_REMOVE:
        if (opening) {
            s->ports_added &= ~bit;
            s->ports_named &= ~bit;
            s->ports_to_ready &= ~bit;
            if (s->found >= 0 && (uint32_t)s->found == port)
                s->found = -1;
        }
        if (port == s->port) {
            s->host_closed = s->host_open || !opening;
            s->host_open = false;
        }
        break;
    case EV_PORT_OPEN:
        if (port != s->port)
            break;
        if (value != 0) {
            /* A later reconnection is another conversation: once closed,
             * the channel stays at end-of-stream. */
            if (!s->host_closed)
                s->host_open = true;
        } else if (s->host_open) {
            s->host_open = false;
            s->host_closed = true;
        }
        break;
    case EV_PORT_NAME:
        if (opening && tracked) {
            s->ports_named |= bit;
            if (s->found < 0 && name_matches(s, buf, len))
                s->found = (int32_t)port;
        }
        break;
    default:
        /* CONSOLE_PORT, RESIZE and anything newer: nothing to do. */
        break;
    }
    return 0;
}

/* Handle every control message the device returned and post the buffers
 * again at once: QEMU drops a control message when no buffer is posted. */
static int ctrl_poll(struct sc_virtio_serial *s)
{
    bool reposted = false;
    int e = 0;
    for (;;) {
        uint16_t id;
        uint32_t len;
        int u = sc_virtq_next_used(&s->ctrl_rx, &id, &len);
        if (u < 0) {
            e = vs_fail(s, SC_ERR_PROTO, "virtio-serial: bad used entry on control in");
            break;
        }
        if (u == 0)
            break;
        e = ctrl_handle(s, s->ctrl_rx_buf[id], len);
        (void)sc_virtq_add(&s->ctrl_rx, id, s->ctrl_rx_buf[id], SC_VIRTIO_SERIAL_CTRL_BUF_SIZE,
                           true);
        reposted = true;
        if (e != 0)
            break;
    }
    if (reposted)
        sc_virtq_kick(&s->ctrl_rx);
    return e;
}

/* Everything each operation does first: the sticky error, then news from
 * the control queue (a host close must be seen before the data queue is
 * judged empty). */
static int vs_service(struct sc_virtio_serial *s)
{
    if (s->closed)
        return SC_ERR_CLOSED;
    if (s->dev.error != 0)
        return s->dev.error;
    int e = ctrl_poll(s);
    sc_mmio_fence();  /* control news before looking at the data queue */
    return e;
}

/* ---- bring-up ---- */

static int post_all(struct sc_virtq *q, uint8_t *bufs, size_t stride)
{
    for (uint16_t id = 0; id < q->size; id++) {
        int e = sc_virtq_add(q, id, bufs + (size_t)id * stride, (uint32_t)stride, true);
        if (e != 0)
            return e;
    }
    sc_virtq_publish(q);
    return 0;
}

static int vs_start(struct sc_virtio_serial *s, uintptr_t regs, uint32_t port,
                    uint64_t deadline_ms)
{
    s->ports_added = s->ports_named = s->ports_to_ready = 0;
    s->found = -1;
    s->host_open = s->host_closed = false;
    s->rx_cur = s->rx_off = s->rx_left = 0;

    int e = sc_virtio_dev_begin(&s->dev, regs, SC_VIRTIO_ID_CONSOLE,
                                (uint64_t)1 << SC_VIRTIO_CONSOLE_F_MULTIPORT, 0, deadline_ms);
    if (e != 0)
        return e;
    s->max_ports = sc_virtio_dev_config32(&s->dev, CFG_MAX_NR_PORTS);
    if (s->max_ports == 0 || s->max_ports > 0x7fffu)
        return vs_fail(s, SC_ERR_PROTO, "virtio-serial: max_nr_ports out of range");
    if (port >= s->max_ports)
        port = 0;
    s->port = port;

    e = sc_virtq_setup(&s->dev, &s->ctrl_rx, CTRL_RX_QUEUE, SC_VIRTIO_SERIAL_CTRL_BUFS);
    if (e == 0)
        e = sc_virtq_setup(&s->dev, &s->ctrl_tx, CTRL_TX_QUEUE, SC_VIRTIO_SERIAL_CTRL_TX_BUFS);
    if (e == 0)
        e = sc_virtq_setup(&s->dev, &s->rx, port_in_queue(port), SC_VIRTIO_SERIAL_RX_BUFS);
    if (e == 0)
        e = sc_virtq_setup(&s->dev, &s->tx, port_in_queue(port) + 1u, SC_VIRTIO_SERIAL_TX_BUFS);
    if (e != 0)
        return e;
    if (s->ctrl_rx.size < 4)
        return vs_fail(s, SC_ERR_UNSUPPORTED, "virtio-serial: control queue too small");
    if (post_all(&s->ctrl_rx, &s->ctrl_rx_buf[0][0], SC_VIRTIO_SERIAL_CTRL_BUF_SIZE) != 0 ||
        post_all(&s->rx, &s->rx_buf[0][0], SC_VIRTIO_SERIAL_BUF_SIZE) != 0)
        return vs_fail(s, SC_ERR_INTERNAL, "virtio-serial: posting receive buffers");
    e = sc_virtio_dev_live(&s->dev);
    if (e != 0)
        return e;
    sc_virtq_kick(&s->ctrl_rx);
    sc_virtq_kick(&s->rx);
    e = ctrl_send(s, 0, EV_DEVICE_READY, 1, deadline_ms);
    if (e == SC_ERR_TIMEOUT)
        return vs_fail(s, e, "virtio-serial: control queue stuck (DEVICE_READY)");
    return e;
}

/* Ready every announced port (one at a time, so the replies find posted
 * buffers) until one names itself as the port we want. */
static int vs_discover(struct sc_virtio_serial *s, uint64_t deadline_ms)
{
    for (;;) {
        int e = ctrl_poll(s);
        if (e != 0)
            return e;
        if (s->found >= 0)
            return 0;
        if (s->ports_to_ready != 0) {
            uint16_t id = lowest_bit(s->ports_to_ready);
            s->ports_to_ready &= ~((uint32_t)1 << id);
            e = ctrl_send(s, id, EV_PORT_READY, 1, deadline_ms);
            if (e == SC_ERR_TIMEOUT)
                return vs_fail(s, e, "virtio-serial: control queue stuck (PORT_READY)");
            if (e != 0)
                return e;
            continue;
        }
        if (s->ports_added != 0 && s->ports_named == s->ports_added)
            return vs_fail(s, SC_ERR_NOT_FOUND, "virtio-serial: no port has that name");
        e = vs_pause(s, deadline_ms);
        if (e == SC_ERR_TIMEOUT && s->ports_added == 0)
            return vs_fail(s, SC_ERR_TIMEOUT, "virtio-serial: device announced no port");
        if (e == SC_ERR_TIMEOUT)
            return vs_fail(s, SC_ERR_NOT_FOUND, "virtio-serial: no port named so in time");
        if (e != 0)
            return e;
    }
}

int sc_virtio_serial_open(struct sc_virtio_serial *s, uintptr_t regs, const char *port_name,
                          uint64_t deadline_ms)
{
    if (s == NULL || port_name == NULL)
        return SC_ERR_INVAL;
    size_t name_len = bounded_len(port_name, SC_VIRTIO_SERIAL_NAME_MAX);
    if (name_len == 0 || name_len > SC_VIRTIO_SERIAL_NAME_MAX)
        return SC_ERR_INVAL;
    memset(s, 0, sizeof(*s));
    sc_channel_init(&s->base, &vs_ops, NULL);
    s->dev.msg = "";
    s->want_name = port_name;
    s->want = SC_DIR_READ;

    /* Queues are set up before DRIVER_OK, but which port carries the name
     * is learnt only after it: guess port 1 (QEMU's first virtserialport),
     * and if the name is elsewhere, reset and start again with that port. */
    uint32_t port = 1;
    int e;
    for (int attempt = 0;; attempt++) {
        e = vs_start(s, regs, port, deadline_ms);
        if (e == 0)
            e = vs_discover(s, deadline_ms);
        if (e != 0)
            break;
        if ((uint32_t)s->found == s->port) {
            e = ctrl_send(s, s->port, EV_PORT_OPEN, 1, deadline_ms);
            if (e == SC_ERR_TIMEOUT)
                e = vs_fail(s, e, "virtio-serial: control queue stuck (PORT_OPEN)");
            if (e == 0) {
                /* Tell the device again that receive buffers wait, now that
                 * the port is open: QEMU looks at its chardev again only on
                 * such a kick, and bytes the host sent before our PORT_OPEN
                 * otherwise arrived a full second late (measured). */
                sc_virtq_kick(&s->rx);
                s->want_name = NULL;
                return 0;
            }
            break;
        }
        if (attempt > 0) {
            e = vs_fail(s, SC_ERR_PROTO, "virtio-serial: port ids changed across a reset");
            break;
        }
        port = (uint32_t)s->found;  /* vs_start() resets the device first */
    }
    /* Stop the device from touching s before handing it back. */
    if (s->dev.begun)
        (void)sc_virtio_dev_reset(&s->dev, sc_deadline_in(SC_VIRTIO_RESET_TIMEOUT_MS));
    s->want_name = NULL;
    s->closed = true;
    s->base.error = e;
    return e;
}

/* ---- the channel ---- */

static long vs_read(struct sc_channel *ch, void *buf, size_t len)
{
    struct sc_virtio_serial *s = (struct sc_virtio_serial *)ch;
    int e = vs_service(s);
    if (e != 0)
        return e;
    uint8_t *out = buf;
    size_t n = 0;
    bool reposted = false;
    while (n < len) {
        if (s->rx_left > 0) {
            size_t c = len - n < s->rx_left ? len - n : s->rx_left;
            memcpy(out + n, &s->rx_buf[s->rx_cur][s->rx_off], c);
            n += c;
            s->rx_off = (uint16_t)(s->rx_off + c);
            s->rx_left = (uint16_t)(s->rx_left - c);
            if (s->rx_left > 0)
                break;
        } else {
            uint16_t id;
            uint32_t got;
            int u = sc_virtq_next_used(&s->rx, &id, &got);
            if (u < 0)
                return vs_fail(s, SC_ERR_PROTO, "virtio-serial: bad used entry on port in");
            if (u == 0)
                break;
            if (got > SC_VIRTIO_SERIAL_BUF_SIZE)
                return vs_fail(s, SC_ERR_PROTO, "virtio-serial: length beyond the buffer");
            s->rx_cur = id;
            s->rx_off = 0;
            s->rx_left = (uint16_t)got;
            if (got > 0)
                continue;
        }
        /* the held buffer is used up: give it back */
        (void)sc_virtq_add(&s->rx, s->rx_cur, s->rx_buf[s->rx_cur], SC_VIRTIO_SERIAL_BUF_SIZE,
                           true);
        reposted = true;
    }
    if (reposted)
        sc_virtq_kick(&s->rx);
    if (n > 0)
        return (long)n;
    if (s->host_closed)
        return 0;
    s->want = SC_DIR_READ;
    return SC_ERR_AGAIN;
}

static int tx_reclaim(struct sc_virtio_serial *s)
{
    uint16_t id;
    uint32_t len;
    int u;
    while ((u = sc_virtq_next_used(&s->tx, &id, &len)) == 1)
        ;  /* len of a device-readable buffer carries nothing */
    if (u < 0)
        return vs_fail(s, SC_ERR_PROTO, "virtio-serial: bad used entry on port out");
    return 0;
}

static long vs_write(struct sc_channel *ch, const void *buf, size_t len)
{
    struct sc_virtio_serial *s = (struct sc_virtio_serial *)ch;
    int e = vs_service(s);
    if (e != 0)
        return e;
    if (s->host_closed)
        return SC_ERR_RESET;
    e = tx_reclaim(s);
    if (e != 0)
        return e;
    if (!s->host_open) {
        s->want = SC_DIR_WRITE;
        return SC_ERR_AGAIN;
    }
    const uint8_t *in = buf;
    size_t n = 0;
    uint32_t free = free_mask(&s->tx);
    while (n < len && free != 0) {
        uint16_t id = lowest_bit(free);
        free &= ~((uint32_t)1 << id);
        size_t c = len - n < SC_VIRTIO_SERIAL_BUF_SIZE ? len - n : SC_VIRTIO_SERIAL_BUF_SIZE;
        memcpy(s->tx_buf[id], in + n, c);
        (void)sc_virtq_add(&s->tx, id, s->tx_buf[id], (uint32_t)c, false);
        n += c;
    }
    if (n > 0) {
        sc_virtq_kick(&s->tx);
        return (long)n;
    }
    s->want = SC_DIR_WRITE;
    return SC_ERR_AGAIN;
}

static int vs_flush(struct sc_channel *ch)
{
    struct sc_virtio_serial *s = (struct sc_virtio_serial *)ch;
    int e = vs_service(s);
    if (e == 0)
        e = tx_reclaim(s);
    if (e != 0)
        return e;
    if (s->tx.count == 0)
        return 0;
    s->want = SC_DIR_WRITE;
    return SC_ERR_AGAIN;
}

static bool vs_ready(const struct sc_virtio_serial *s, enum sc_dir dir)
{
    if ((dir & SC_DIR_READ) &&
        (s->rx_left > 0 || sc_virtq_used_waiting(&s->rx) > 0 || s->host_closed))
        return true;
    if ((dir & SC_DIR_WRITE) &&
        (s->host_closed || sc_virtq_used_waiting(&s->tx) > 0 ||
         (s->host_open && s->tx.count < s->tx.size)))
        return true;
    return false;
}

static int vs_wait(struct sc_channel *ch, enum sc_dir dir, uint64_t deadline_ms)
{
    struct sc_virtio_serial *s = (struct sc_virtio_serial *)ch;
    for (;;) {
        int e = vs_service(s);
        if (e != 0)
            return e;
        if (vs_ready(s, dir))
            return 0;
        if ((e = vs_pause(s, deadline_ms)) != 0)
            return e;
    }
}

static size_t vs_pending(const struct sc_channel *ch)
{
    const struct sc_virtio_serial *s = (const struct sc_virtio_serial *)ch;
    if (s->closed || s->dev.error != 0)
        return 0;
    size_t n = s->rx_left;
    uint16_t id;
    uint32_t len;
    for (uint16_t k = 0; sc_virtq_peek_used(&s->rx, k, &id, &len) == 1; k++)
        n += len < SC_VIRTIO_SERIAL_BUF_SIZE ? len : SC_VIRTIO_SERIAL_BUF_SIZE;
    return n;
}

static enum sc_dir vs_direction(const struct sc_channel *ch)
{
    return ((const struct sc_virtio_serial *)ch)->want;
}

static const char *vs_errmsg(const struct sc_channel *ch)
{
    return ((const struct sc_virtio_serial *)ch)->dev.msg;
}

static int vs_close(struct sc_channel *ch)
{
    struct sc_virtio_serial *s = (struct sc_virtio_serial *)ch;
    if (s->closed)
        return 0;
    uint64_t deadline = sc_deadline_in(SC_VIRTIO_SERIAL_CLOSE_MS);
    if (s->dev.error == 0) {
        /* Let sent bytes leave (a reset drops them), then say goodbye. */
        while (s->tx.count > 0 && tx_reclaim(s) == 0 && !vs_deadline_passed(deadline))
            sc_port_yield();
        if (s->dev.error == 0 && ctrl_send(s, s->port, EV_PORT_OPEN, 0, deadline) == 0) {
            while (s->ctrl_tx.count > 0 && ctrl_reclaim(s) == 0 && !vs_deadline_passed(deadline))
                sc_port_yield();
        }
    }
    s->closed = true;
    s->host_open = false;
    return sc_virtio_dev_reset(&s->dev, sc_deadline_in(SC_VIRTIO_RESET_TIMEOUT_MS));
}

static const struct sc_channel_ops vs_ops = {
    .name = "virtio-serial",
    .read = vs_read,
    .write = vs_write,
    .close = vs_close,
    .direction = vs_direction,
    .pending = vs_pending,
    .flush = vs_flush,
    .wait = vs_wait,
    .errmsg = vs_errmsg,
};
