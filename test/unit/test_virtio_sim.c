/* The virtio-mmio drivers (sechan/virtio.h) against a simulated device: the
 * register file and a device side that works the rings in memory, as QEMU
 * does (synchronously on each notify). Covers discovery (including the
 * reset-and-retry when the name is on another port), data both ways with
 * more bytes than buffers, EOF on the host's PORT_OPEN 0, write before the
 * host opens and after it closed, legacy refusal, missing features, and a
 * hostile device: lengths beyond buffers, ids it does not hold, ports
 * beyond max_nr_ports, short control messages, over-long names.
 *
 * The drivers are compiled into this file with SC_MMIO_SIM, their register
 * accessors renamed to this file's simulator (so a shared simulator in
 * test/util can never clash with this one). */
#define _POSIX_C_SOURCE 200809L
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#define SC_MMIO_SIM 1
#define sc_mmio_read8 vsim_read8
#define sc_mmio_read32 vsim_read32
#define sc_mmio_write8 vsim_write8
#define sc_mmio_write32 vsim_write32
#define sc_mmio_fence vsim_fence
#include "../../transports/virtio_mmio.c"
#include "../../transports/virtio_rng.c"
#include "../../transports/virtio_serial.c"

/* ---- the simulated device ---- */

#define SIM_QUEUES 12
#define SIM_PORTS 4
#define SIM_BYTES (64u * 1024u)
#define SIM_BASE 0x10001000u
#define SIM_STRIDE 0x1000u

struct simq {
    uint32_t num_max, num, ready;
    uint64_t desc, avail, used;
    uint16_t last_avail;
};

struct simport {
    const char *name;  /* NULL: no PORT_NAME */
    bool present;
    bool host_open;
    bool guest_open;
    uint8_t to_guest[SIM_BYTES];
    size_t to_guest_len, to_guest_off;
    uint8_t from_guest[SIM_BYTES];
    size_t from_guest_len;
};

struct simdev {
    uintptr_t base;
    uint32_t magic, version, device_id;
    uint64_t features;
    uint32_t status;
    uint32_t dev_feat_sel, drv_feat_sel;
    uint64_t drv_features;
    uint32_t queue_sel;
    struct simq q[SIM_QUEUES];
    uint32_t max_ports;
    struct simport port[SIM_PORTS];
    unsigned resets, status_writes, ctrl_dropped;
    unsigned rx_kicks_while_open;  /* QEMU re-polls its chardev only on these */
    bool failed_seen;
    bool rng_mute;          /* rng: hold requests */
    uint32_t rng_len_extra; /* rng: claim this many bytes beyond the buffer */
    uint32_t last_guest_event, last_guest_port, last_guest_value;
};

static struct simdev sim[3];

static struct simdev *sim_at(uintptr_t addr, uint32_t *off)
{
    for (size_t i = 0; i < sizeof(sim) / sizeof(sim[0]); i++) {
        if (sim[i].base != 0 && addr >= sim[i].base && addr < sim[i].base + SIM_STRIDE) {
            *off = (uint32_t)(addr - sim[i].base);
            return &sim[i];
        }
    }
    return NULL;
}

static bool sim_pop(struct simq *q, uint16_t *head, uint8_t **buf, uint32_t *len)
{
    if (!q->ready || q->num == 0)
        return false;
    volatile uint16_t *avail = (uint16_t *)(uintptr_t)q->avail;
    if (avail[1] == q->last_avail)
        return false;
    uint16_t h = avail[2 + q->last_avail % q->num];
    q->last_avail++;
    assert_true(h < q->num);
    struct sc_virtq_desc *d = (struct sc_virtq_desc *)(uintptr_t)q->desc + h;
    *head = h;
    *buf = (uint8_t *)(uintptr_t)d->addr;
    *len = d->len;
    return true;
}

/* Return a buffer (or claim to: the tests also push entries of their own). */
static void sim_push(struct simq *q, uint32_t id, uint32_t len)
{
    uint8_t *used = (uint8_t *)(uintptr_t)q->used;
    uint16_t idx;
    memcpy(&idx, used + 2, 2);
    struct sc_virtq_used_elem e = {.id = id, .len = len};
    memcpy(used + 4 + 8u * (idx % q->num), &e, sizeof(e));
    idx++;
    memcpy(used + 2, &idx, 2);
}

/* A control message to the driver; like QEMU, the used length is the whole
 * message even when the buffer was too short for it. */
static void sim_ctrl(struct simdev *d, uint32_t port, uint16_t event, uint16_t value,
                     const char *extra)
{
    uint8_t msg[300];
    size_t n = 8;
    memcpy(msg, &port, 4);
    memcpy(msg + 4, &event, 2);
    memcpy(msg + 6, &value, 2);
    if (extra != NULL) {
        size_t x = strlen(extra) + 1;
        assert_true(x <= sizeof(msg) - 8);
        memcpy(msg + 8, extra, x);
        n += x;
    }
    uint16_t head;
    uint8_t *buf;
    uint32_t room;
    if (!sim_pop(&d->q[2], &head, &buf, &room)) {
        d->ctrl_dropped++;
        return;
    }
    memcpy(buf, msg, n < room ? n : room);
    sim_push(&d->q[2], head, (uint32_t)n);
}

static uint32_t rxq(uint32_t port)
{
    return port == 0 ? 0u : 2u * port + 2u;
}

/* Bytes waiting for the guest go into whatever receive buffers are posted. */
static void sim_pump(struct simdev *d, uint32_t port)
{
    struct simport *p = &d->port[port];
    struct simq *q = &d->q[rxq(port)];
    while (p->guest_open && p->to_guest_off < p->to_guest_len) {
        uint16_t head;
        uint8_t *buf;
        uint32_t room;
        if (!sim_pop(q, &head, &buf, &room))
            return;
        size_t n = p->to_guest_len - p->to_guest_off;
        if (n > room)
            n = room;
        memcpy(buf, p->to_guest + p->to_guest_off, n);
        p->to_guest_off += n;
        sim_push(q, head, (uint32_t)n);
    }
}

static void sim_console_notify(struct simdev *d, uint32_t qi)
{
    uint16_t head;
    uint8_t *buf;
    uint32_t len;
    if (qi == 3) {
        while (sim_pop(&d->q[3], &head, &buf, &len)) {
            assert_int_equal(len, 8);
            uint32_t port;
            uint16_t event, value;
            memcpy(&port, buf, 4);
            memcpy(&event, buf + 4, 2);
            memcpy(&value, buf + 6, 2);
            sim_push(&d->q[3], head, 0);
            d->last_guest_event = event;
            d->last_guest_port = port;
            d->last_guest_value = value;
            if (event == EV_DEVICE_READY) {
                for (uint32_t i = 0; i < SIM_PORTS; i++)
                    if (d->port[i].present)
                        sim_ctrl(d, i, EV_DEVICE_ADD, 1, NULL);
            } else if (event == EV_PORT_READY && port < SIM_PORTS) {
                struct simport *p = &d->port[port];
                if (p->name != NULL)
                    sim_ctrl(d, port, EV_PORT_NAME, 1, p->name);
                if (p->host_open)
                    sim_ctrl(d, port, EV_PORT_OPEN, 1, NULL);
            } else if (event == EV_PORT_OPEN && port < SIM_PORTS) {
                d->port[port].guest_open = value != 0;
                sim_pump(d, port);
            }
        }
        return;
    }
    if (qi == 2 || qi == 0)
        return;
    uint32_t port = qi / 2u - 1u;
    if (port >= SIM_PORTS)
        return;
    if (qi % 2u == 0) {
        if (d->port[port].guest_open)
            d->rx_kicks_while_open++;
        sim_pump(d, port);
        return;
    }
    struct simport *p = &d->port[port];
    while (sim_pop(&d->q[qi], &head, &buf, &len)) {
        if (p->host_open) {
            assert_true(p->from_guest_len + len <= SIM_BYTES);
            memcpy(p->from_guest + p->from_guest_len, buf, len);
            p->from_guest_len += len;
        }
        sim_push(&d->q[qi], head, 0);
    }
}

static void sim_rng_notify(struct simdev *d)
{
    if (d->rng_mute)
        return;
    uint16_t head;
    uint8_t *buf;
    uint32_t len;
    while (sim_pop(&d->q[0], &head, &buf, &len)) {
        for (uint32_t i = 0; i < len; i++)
            buf[i] = (uint8_t)(i * 37u + 11u);
        sim_push(&d->q[0], head, len + d->rng_len_extra);
    }
}

static void sim_reset(struct simdev *d)
{
    d->status = 0;
    d->resets++;
    memset(d->q, 0, sizeof(d->q));
    for (size_t i = 0; i < SIM_QUEUES; i++)
        d->q[i].num_max = d->device_id == 0 ? 0 : 32;
    for (size_t i = 0; i < SIM_PORTS; i++)
        d->port[i].guest_open = false;
}

uint8_t vsim_read8(uintptr_t addr)
{
    (void)addr;
    fail_msg("8-bit register read");
    return 0;
}

void vsim_write8(uintptr_t addr, uint8_t v)
{
    (void)addr;
    (void)v;
    fail_msg("8-bit register write");
}

void vsim_fence(void)
{
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
}

uint32_t vsim_read32(uintptr_t addr)
{
    uint32_t off;
    struct simdev *d = sim_at(addr, &off);
    if (d == NULL)
        return 0;
    assert_int_equal(off % 4u, 0);
    struct simq *q = &d->q[d->queue_sel < SIM_QUEUES ? d->queue_sel : 0];
    switch (off) {
    case 0x000: return d->magic;
    case 0x004: return d->version;
    case 0x008: return d->device_id;
    case 0x00c: return 0x554d4551u;
    case 0x010: return (uint32_t)(d->features >> (d->dev_feat_sel == 1 ? 32 : 0));
    case 0x034: return d->queue_sel < SIM_QUEUES ? q->num_max : 0;
    case 0x044: return q->ready;
    case 0x070: return d->status;
    case 0x100: return 0;
    case 0x104: return d->max_ports;
    default: return 0;
    }
}

void vsim_write32(uintptr_t addr, uint32_t v)
{
    uint32_t off;
    struct simdev *d = sim_at(addr, &off);
    assert_non_null(d);
    struct simq *q = &d->q[d->queue_sel < SIM_QUEUES ? d->queue_sel : 0];
    switch (off) {
    case 0x014: d->dev_feat_sel = v; break;
    case 0x020:
        if (d->drv_feat_sel == 1)
            d->drv_features = (d->drv_features & 0xffffffffu) | (uint64_t)v << 32;
        else
            d->drv_features = (d->drv_features & ~(uint64_t)0xffffffffu) | v;
        break;
    case 0x024: d->drv_feat_sel = v; break;
    case 0x030: d->queue_sel = v; break;
    case 0x038: q->num = v; break;
    case 0x044:
        assert_true(q->num > 0 && q->num <= q->num_max);
        q->ready = v;
        break;
    case 0x050:
        assert_true(d->status & ST_DRIVER_OK);
        if (d->device_id == SC_VIRTIO_ID_RNG)
            sim_rng_notify(d);
        else
            sim_console_notify(d, v);
        break;
    case 0x070:
        d->status_writes++;
        if (v == 0) {
            sim_reset(d);
            break;
        }
        if (v & ST_FAILED)
            d->failed_seen = true;
        if ((v & ST_FEATURES_OK) && (d->drv_features & ~d->features))
            v &= ~ST_FEATURES_OK;  /* refuse features we never offered */
        d->status = v;
        break;
    case 0x080: q->desc = (q->desc & ~(uint64_t)0xffffffffu) | v; break;
    case 0x084: q->desc = (q->desc & 0xffffffffu) | (uint64_t)v << 32; break;
    case 0x090: q->avail = (q->avail & ~(uint64_t)0xffffffffu) | v; break;
    case 0x094: q->avail = (q->avail & 0xffffffffu) | (uint64_t)v << 32; break;
    case 0x0a0: q->used = (q->used & ~(uint64_t)0xffffffffu) | v; break;
    case 0x0a4: q->used = (q->used & 0xffffffffu) | (uint64_t)v << 32; break;
    default: break;
    }
}

#define F_V1 ((uint64_t)1 << SC_VIRTIO_F_VERSION_1)
#define F_MULTIPORT ((uint64_t)1 << SC_VIRTIO_CONSOLE_F_MULTIPORT)

static struct simdev *sim_console(const char *name1, const char *name2)
{
    memset(sim, 0, sizeof(sim));
    struct simdev *d = &sim[0];
    d->base = SIM_BASE;
    d->magic = SC_VIRTIO_MMIO_MAGIC;
    d->version = 2;
    d->device_id = SC_VIRTIO_ID_CONSOLE;
    d->features = F_V1 | F_MULTIPORT | 1u /* SIZE */;
    d->max_ports = 31;
    d->port[1] = (struct simport){.name = name1, .present = true, .host_open = true};
    if (name2 != NULL)
        d->port[2] = (struct simport){.name = name2, .present = true, .host_open = true};
    sim_reset(d);
    d->resets = 0;
    return d;
}

static struct simdev *sim_rng(void)
{
    memset(sim, 0, sizeof(sim));
    struct simdev *d = &sim[0];
    d->base = SIM_BASE;
    d->magic = SC_VIRTIO_MMIO_MAGIC;
    d->version = 2;
    d->device_id = SC_VIRTIO_ID_RNG;
    d->features = F_V1;
    sim_reset(d);
    return d;
}

static void host_send(struct simdev *d, uint32_t port, const void *p, size_t n)
{
    struct simport *sp = &d->port[port];
    assert_true(sp->to_guest_len + n <= SIM_BYTES);
    memcpy(sp->to_guest + sp->to_guest_len, p, n);
    sp->to_guest_len += n;
    sim_pump(d, port);
}

static void host_close(struct simdev *d, uint32_t port)
{
    d->port[port].host_open = false;
    sim_ctrl(d, port, EV_PORT_OPEN, 0, NULL);
}

static struct sc_virtio_serial vs;
static struct sc_virtio_rng vr;

static uint64_t soon(void)
{
    return sc_deadline_in(200);
}

/* ---- discovery ---- */

static void test_open_on_guessed_port(void **state)
{
    (void)state;
    struct simdev *d = sim_console("org.sechan.test", NULL);
    assert_int_equal(sc_virtio_serial_open(&vs, SIM_BASE, "org.sechan.test", soon()), 0);
    assert_int_equal(vs.port, 1);
    assert_int_equal(d->resets, 1);
    assert_true(d->port[1].guest_open);
    /* Without a receive kick after PORT_OPEN, QEMU delivered bytes the host
     * sent before the open a second late. */
    assert_true(d->rx_kicks_while_open > 0);
    assert_int_equal(d->drv_features, F_V1 | F_MULTIPORT);  /* SIZE not taken */
    assert_int_equal(d->ctrl_dropped, 0);
    assert_int_equal(sc_close(&vs.base), 0);
    assert_int_equal(d->status, 0);
    assert_int_equal(d->last_guest_event, EV_PORT_OPEN);
    assert_int_equal(d->last_guest_value, 0);
}

static void test_open_retries_on_other_port(void **state)
{
    (void)state;
    struct simdev *d = sim_console("org.other", "org.sechan.test");
    assert_int_equal(sc_virtio_serial_open(&vs, SIM_BASE, "org.sechan.test", soon()), 0);
    assert_int_equal(vs.port, 2);
    assert_int_equal(d->resets, 2);  /* once with port 1 guessed, once for port 2 */
    assert_false(d->port[1].guest_open);
    assert_true(d->port[2].guest_open);
    const char msg[] = "hello port 2";
    host_send(d, 2, msg, sizeof(msg));
    char got[sizeof(msg)];
    assert_int_equal(sc_read_full(&vs.base, got, sizeof(got), NULL, soon()), 0);
    assert_memory_equal(got, msg, sizeof(msg));
    sc_close(&vs.base);
}

static void test_unknown_name(void **state)
{
    (void)state;
    struct simdev *d = sim_console("org.a", "org.b");
    uint64_t t0 = sc_port_now_ms();
    assert_int_equal(sc_virtio_serial_open(&vs, SIM_BASE, "org.c", sc_deadline_in(5000)),
                     SC_ERR_NOT_FOUND);
    assert_true(sc_port_now_ms() - t0 < 1000);  /* every port named itself: no waiting */
    assert_true(d->failed_seen);
    assert_int_equal(d->status, 0);  /* left reset */
    char c;
    assert_int_equal(sc_read(&vs.base, &c, 1), SC_ERR_NOT_FOUND);
}

static void test_unnamed_port_waits_for_deadline(void **state)
{
    (void)state;
    sim_console(NULL, NULL);
    uint64_t t0 = sc_port_now_ms();
    assert_int_equal(sc_virtio_serial_open(&vs, SIM_BASE, "org.c", sc_deadline_in(50)),
                     SC_ERR_NOT_FOUND);
    assert_true(sc_port_now_ms() - t0 >= 50);
}

static void test_no_port_announced(void **state)
{
    (void)state;
    struct simdev *d = sim_console("x", NULL);
    d->port[1].present = false;
    assert_int_equal(sc_virtio_serial_open(&vs, SIM_BASE, "x", sc_deadline_in(30)),
                     SC_ERR_TIMEOUT);
}

static void test_long_name_of_other_port_skipped(void **state)
{
    (void)state;
    static char longname[200];
    memset(longname, 'q', sizeof(longname) - 1);
    struct simdev *d = sim_console(longname, "org.sechan.test");
    assert_int_equal(sc_virtio_serial_open(&vs, SIM_BASE, "org.sechan.test", soon()), 0);
    assert_int_equal(vs.port, 2);
    sc_close(&vs.base);
    (void)d;
}

static void test_bad_names(void **state)
{
    (void)state;
    sim_console("x", NULL);
    char name[SC_VIRTIO_SERIAL_NAME_MAX + 2];
    memset(name, 'n', sizeof(name) - 1);
    name[sizeof(name) - 1] = '\0';
    assert_int_equal(sc_virtio_serial_open(&vs, SIM_BASE, name, soon()), SC_ERR_INVAL);
    assert_int_equal(sc_virtio_serial_open(&vs, SIM_BASE, "", soon()), SC_ERR_INVAL);
    assert_int_equal(sc_virtio_serial_open(&vs, SIM_BASE, NULL, soon()), SC_ERR_INVAL);
    name[SC_VIRTIO_SERIAL_NAME_MAX] = '\0';  /* exactly the longest */
    sim[0].port[1].name = name;
    assert_int_equal(sc_virtio_serial_open(&vs, SIM_BASE, name, soon()), 0);
    sc_close(&vs.base);
}

/* ---- refusals ---- */

static void test_legacy_refused_untouched(void **state)
{
    (void)state;
    struct simdev *d = sim_console("x", NULL);
    d->version = 1;
    assert_int_equal(sc_virtio_serial_open(&vs, SIM_BASE, "x", soon()), SC_ERR_UNSUPPORTED);
    assert_non_null(strstr(vs.dev.msg, "legacy"));
    assert_int_equal(d->status_writes, 0);
    assert_int_equal(sc_virtio_rng_init(&vr, SIM_BASE), SC_ERR_UNSUPPORTED);
    assert_int_equal(d->status_writes, 0);
}

static void test_missing_features(void **state)
{
    (void)state;
    struct simdev *d = sim_console("x", NULL);
    d->features = F_MULTIPORT;
    assert_int_equal(sc_virtio_serial_open(&vs, SIM_BASE, "x", soon()), SC_ERR_UNSUPPORTED);
    assert_non_null(strstr(vs.dev.msg, "VERSION_1"));
    assert_true(d->failed_seen);
    assert_int_equal(d->status, 0);
    d = sim_console("x", NULL);
    d->features = F_V1;
    assert_int_equal(sc_virtio_serial_open(&vs, SIM_BASE, "x", soon()), SC_ERR_UNSUPPORTED);
    assert_true(d->failed_seen);
}

static void test_wrong_device(void **state)
{
    (void)state;
    sim_console("x", NULL);
    assert_int_equal(sc_virtio_rng_init(&vr, SIM_BASE), SC_ERR_NOT_FOUND);
    assert_int_equal(sc_virtio_serial_open(&vs, SIM_BASE + SIM_STRIDE, "x", soon()),
                     SC_ERR_NOT_FOUND);
}

/* ---- data ---- */

static uint8_t big_in[3 * SC_VIRTIO_SERIAL_RX_BUFS * SC_VIRTIO_SERIAL_BUF_SIZE + 7];
static uint8_t big_out[sizeof(big_in)];

static void open_one(struct simdev **d)
{
    *d = sim_console("org.sechan.test", NULL);
    assert_int_equal(sc_virtio_serial_open(&vs, SIM_BASE, "org.sechan.test", soon()), 0);
}

static void test_data_both_ways(void **state)
{
    (void)state;
    struct simdev *d;
    open_one(&d);
    for (size_t i = 0; i < sizeof(big_in); i++)
        big_in[i] = (uint8_t)(i * 7u + (i >> 9));
    /* More than every posted buffer holds: the rest follows as the driver
     * gives buffers back. */
    host_send(d, 1, big_in, sizeof(big_in));
    assert_int_equal(sc_pending(&vs.base),
                     SC_VIRTIO_SERIAL_RX_BUFS * SC_VIRTIO_SERIAL_BUF_SIZE);
    size_t done = 0;
    while (done < sizeof(big_in)) {
        long r = sc_read(&vs.base, big_out + done, 100);  /* small reads across buffers */
        assert_true(r > 0);
        done += (size_t)r;
    }
    assert_memory_equal(big_out, big_in, sizeof(big_in));
    assert_int_equal(sc_read(&vs.base, big_out, 1), SC_ERR_AGAIN);
    assert_int_equal(sc_direction(&vs.base), SC_DIR_READ);
    assert_int_equal(sc_wait(&vs.base, SC_DIR_READ, sc_deadline_in(20)), SC_ERR_TIMEOUT);

    assert_int_equal(sc_write_all(&vs.base, big_in, sizeof(big_in), soon()), 0);
    assert_int_equal(d->port[1].from_guest_len, sizeof(big_in));
    assert_memory_equal(d->port[1].from_guest, big_in, sizeof(big_in));
    assert_int_equal(sc_close(&vs.base), 0);
}

static void test_eof_after_buffered_data(void **state)
{
    (void)state;
    struct simdev *d;
    open_one(&d);
    host_send(d, 1, "tail", 4);
    host_close(d, 1);
    char buf[16];
    assert_int_equal(sc_wait(&vs.base, SC_DIR_READ, soon()), 0);
    assert_int_equal(sc_read(&vs.base, buf, sizeof(buf)), 4);
    assert_memory_equal(buf, "tail", 4);
    assert_int_equal(sc_read(&vs.base, buf, sizeof(buf)), 0);
    /* a reconnection does not undo end-of-stream */
    d->port[1].host_open = true;
    sim_ctrl(d, 1, EV_PORT_OPEN, 1, NULL);
    assert_int_equal(sc_read(&vs.base, buf, sizeof(buf)), 0);
    assert_int_equal(sc_write(&vs.base, "x", 1), SC_ERR_RESET);
    sc_close(&vs.base);
}

static void test_port_removed_is_eof(void **state)
{
    (void)state;
    struct simdev *d;
    open_one(&d);
    sim_ctrl(d, 1, EV_DEVICE_REMOVE, 1, NULL);
    char c;
    assert_int_equal(sc_read(&vs.base, &c, 1), 0);
    sc_close(&vs.base);
}

static void test_write_waits_for_host(void **state)
{
    (void)state;
    struct simdev *d = sim_console("p", NULL);
    d->port[1].host_open = false;
    assert_int_equal(sc_virtio_serial_open(&vs, SIM_BASE, "p", soon()), 0);
    assert_int_equal(sc_write(&vs.base, "abc", 3), SC_ERR_AGAIN);
    assert_int_equal(sc_direction(&vs.base), SC_DIR_WRITE);
    assert_int_equal(sc_wait(&vs.base, SC_DIR_WRITE, sc_deadline_in(20)), SC_ERR_TIMEOUT);
    d->port[1].host_open = true;
    sim_ctrl(d, 1, EV_PORT_OPEN, 1, NULL);
    assert_int_equal(sc_wait(&vs.base, SC_DIR_WRITE, soon()), 0);
    assert_int_equal(sc_write(&vs.base, "abc", 3), 3);
    assert_int_equal(d->port[1].from_guest_len, 3);
    sc_close(&vs.base);
}

/* ---- a hostile device ---- */

static void expect_proto(struct simdev *d, long r, const char *words)
{
    assert_int_equal(r, SC_ERR_PROTO);
    assert_true(d->failed_seen);
    assert_non_null(strstr(sc_channel_errmsg(&vs.base), words));
    char c;
    assert_int_equal(sc_read(&vs.base, &c, 1), SC_ERR_PROTO);  /* sticky */
    assert_int_equal(sc_write(&vs.base, "x", 1), SC_ERR_PROTO);
    sc_close(&vs.base);
    assert_int_equal(d->status, 0);
}

static void test_rx_length_beyond_buffer(void **state)
{
    (void)state;
    struct simdev *d;
    open_one(&d);
    uint16_t head;
    uint8_t *buf;
    uint32_t room;
    assert_true(sim_pop(&d->q[4], &head, &buf, &room));
    sim_push(&d->q[4], head, room + 1);
    char c;
    expect_proto(d, sc_read(&vs.base, &c, 1), "beyond the buffer");
}

static void test_rx_id_out_of_range(void **state)
{
    (void)state;
    struct simdev *d;
    open_one(&d);
    sim_push(&d->q[4], SC_VIRTQ_MAX + 3u, 1);
    char c;
    expect_proto(d, sc_read(&vs.base, &c, 1), "bad used entry");
}

static void test_tx_id_not_held(void **state)
{
    (void)state;
    struct simdev *d;
    open_one(&d);
    sim_push(&d->q[5], 0, 0);  /* nothing was sent */
    expect_proto(d, sc_write(&vs.base, "x", 1), "bad used entry");
}

static void test_used_index_runs_ahead(void **state)
{
    (void)state;
    struct simdev *d;
    open_one(&d);
    uint16_t idx = 200;
    memcpy((uint8_t *)(uintptr_t)d->q[4].used + 2, &idx, 2);
    char c;
    expect_proto(d, sc_read(&vs.base, &c, 1), "bad used entry");
}

static void test_control_port_beyond_max(void **state)
{
    (void)state;
    struct simdev *d;
    open_one(&d);
    sim_ctrl(d, 31, EV_PORT_OPEN, 0, NULL);
    char c;
    expect_proto(d, sc_read(&vs.base, &c, 1), "beyond max");
}

static void test_control_message_short(void **state)
{
    (void)state;
    struct simdev *d;
    open_one(&d);
    uint16_t head;
    uint8_t *buf;
    uint32_t room;
    assert_true(sim_pop(&d->q[2], &head, &buf, &room));
    sim_push(&d->q[2], head, 7);
    char c;
    expect_proto(d, sc_read(&vs.base, &c, 1), "short control");
}

static void test_control_length_beyond_buffer(void **state)
{
    (void)state;
    struct simdev *d;
    open_one(&d);
    uint16_t head;
    uint8_t *buf;
    uint32_t room;
    assert_true(sim_pop(&d->q[2], &head, &buf, &room));
    memset(buf, 0, 8);
    buf[4] = EV_PORT_OPEN;
    sim_push(&d->q[2], head, room + 1);
    char c;
    expect_proto(d, sc_read(&vs.base, &c, 1), "control length");
}

static void test_max_ports_zero(void **state)
{
    (void)state;
    struct simdev *d = sim_console("x", NULL);
    d->max_ports = 0;
    assert_int_equal(sc_virtio_serial_open(&vs, SIM_BASE, "x", soon()), SC_ERR_PROTO);
    assert_int_equal(d->status, 0);
}

/* ---- rng and find ---- */

static void test_rng(void **state)
{
    (void)state;
    struct simdev *d = sim_rng();
    assert_int_equal(sc_virtio_rng_init(&vr, SIM_BASE), 0);
    uint8_t buf[150];
    assert_int_equal(sc_virtio_rng_read(&vr, buf, sizeof(buf), soon()), 0);
    for (size_t i = 0; i < sizeof(buf); i++)
        assert_int_equal(buf[i], (uint8_t)((i % SC_VIRTIO_RNG_BUF_SIZE) * 37u + 11u));
    /* a silent device: a timeout, not sticky; the answer is collected later */
    d->rng_mute = true;
    assert_int_equal(sc_virtio_rng_read(&vr, buf, 10, sc_deadline_in(20)), SC_ERR_TIMEOUT);
    d->rng_mute = false;
    sim_rng_notify(d);
    assert_int_equal(sc_virtio_rng_read(&vr, buf, 10, soon()), 0);
    assert_int_equal(sc_virtio_rng_read(&vr, buf, 0, soon()), 0);
    /* a device claiming more than the buffer */
    d->rng_len_extra = 1;
    assert_int_equal(sc_virtio_rng_read(&vr, buf, 10, soon()), SC_ERR_PROTO);
    assert_true(d->failed_seen);
    assert_int_equal(sc_virtio_rng_read(&vr, buf, 10, soon()), SC_ERR_PROTO);
    assert_non_null(strstr(sc_virtio_rng_errmsg(&vr), "beyond"));
    sc_virtio_rng_close(&vr);
    assert_int_equal(d->status, 0);
    assert_int_equal(sc_virtio_rng_read(&vr, buf, 10, soon()), SC_ERR_PROTO);
}

static void test_find(void **state)
{
    (void)state;
    memset(sim, 0, sizeof(sim));
    uint32_t ids[3] = {SC_VIRTIO_ID_RNG, 0, SC_VIRTIO_ID_RNG};
    for (int i = 0; i < 3; i++) {
        sim[i].base = SIM_BASE + (uintptr_t)i * SIM_STRIDE;
        sim[i].magic = SC_VIRTIO_MMIO_MAGIC;
        sim[i].version = 2;
        sim[i].device_id = ids[i];
    }
    assert_int_equal(sc_virtio_mmio_find(SIM_BASE, SIM_STRIDE, 8, 4), SIM_BASE);
    /* the next one: scan on from after the first */
    assert_int_equal(sc_virtio_mmio_find(SIM_BASE + SIM_STRIDE, SIM_STRIDE, 7, 4),
                     SIM_BASE + 2u * SIM_STRIDE);
    assert_int_equal(sc_virtio_mmio_find(SIM_BASE + 3u * SIM_STRIDE, SIM_STRIDE, 5, 4), 0);
    assert_int_equal(sc_virtio_mmio_find(SIM_BASE, SIM_STRIDE, 8, 3), 0);
    assert_int_equal(sc_virtio_mmio_find(SIM_BASE, SIM_STRIDE, 2, 4), SIM_BASE);
    /* the last slot is scanned, and no further */
    assert_int_equal(sc_virtio_mmio_find(SIM_BASE + SIM_STRIDE, SIM_STRIDE, 2, 4),
                     SIM_BASE + 2u * SIM_STRIDE);
    assert_int_equal(sc_virtio_mmio_find(SIM_BASE + SIM_STRIDE, SIM_STRIDE, 1, 4), 0);
    /* a stride that would wrap the address space stops the scan */
    assert_int_equal(sc_virtio_mmio_find(SIM_BASE + SIM_STRIDE, UINTPTR_MAX / 2 + 1, 8, 4), 0);
    assert_int_equal(sc_virtio_mmio_find(SIM_BASE, 0, 8, 4), 0);
    assert_int_equal(sc_virtio_mmio_find(0, SIM_STRIDE, 8, 4), 0);
    assert_int_equal(sc_virtio_mmio_find(SIM_BASE, SIM_STRIDE, 8, 0), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_open_on_guessed_port),
        cmocka_unit_test(test_open_retries_on_other_port),
        cmocka_unit_test(test_unknown_name),
        cmocka_unit_test(test_unnamed_port_waits_for_deadline),
        cmocka_unit_test(test_no_port_announced),
        cmocka_unit_test(test_long_name_of_other_port_skipped),
        cmocka_unit_test(test_bad_names),
        cmocka_unit_test(test_legacy_refused_untouched),
        cmocka_unit_test(test_missing_features),
        cmocka_unit_test(test_wrong_device),
        cmocka_unit_test(test_data_both_ways),
        cmocka_unit_test(test_eof_after_buffered_data),
        cmocka_unit_test(test_port_removed_is_eof),
        cmocka_unit_test(test_write_waits_for_host),
        cmocka_unit_test(test_rx_length_beyond_buffer),
        cmocka_unit_test(test_rx_id_out_of_range),
        cmocka_unit_test(test_tx_id_not_held),
        cmocka_unit_test(test_used_index_runs_ahead),
        cmocka_unit_test(test_control_port_beyond_max),
        cmocka_unit_test(test_control_message_short),
        cmocka_unit_test(test_control_length_beyond_buffer),
        cmocka_unit_test(test_max_ports_zero),
        cmocka_unit_test(test_rng),
        cmocka_unit_test(test_find),
    };
    return cmocka_run_group_tests_name("virtio_sim", tests, NULL, NULL);
}
