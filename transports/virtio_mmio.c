/* see sechan/virtio.h: the virtio-mmio transport (version 2 register
 * layout) and the split virtqueue, written from the virtio 1.x spec. */
#include <string.h>

#include "sechan/mmio.h"
#include "sechan/port.h"
#include "sechan/virtio.h"

/* ---- registers (virtio 1.x, 4.2.2: MMIO device register layout) ---- */
#define VM_MAGIC 0x000u
#define VM_VERSION 0x004u
#define VM_DEVICE_ID 0x008u
#define VM_DEVICE_FEATURES 0x010u
#define VM_DEVICE_FEATURES_SEL 0x014u
#define VM_DRIVER_FEATURES 0x020u
#define VM_DRIVER_FEATURES_SEL 0x024u
#define VM_QUEUE_SEL 0x030u
#define VM_QUEUE_NUM_MAX 0x034u
#define VM_QUEUE_NUM 0x038u
#define VM_QUEUE_READY 0x044u
#define VM_QUEUE_NOTIFY 0x050u
#define VM_STATUS 0x070u
#define VM_QUEUE_DESC_LOW 0x080u
#define VM_QUEUE_DESC_HIGH 0x084u
#define VM_QUEUE_DRIVER_LOW 0x090u
#define VM_QUEUE_DRIVER_HIGH 0x094u
#define VM_QUEUE_DEVICE_LOW 0x0a0u
#define VM_QUEUE_DEVICE_HIGH 0x0a4u
#define VM_CONFIG 0x100u

#define VM_VERSION_LEGACY 1u
#define VM_VERSION_MODERN 2u

/* device status bits */
#define ST_ACKNOWLEDGE 0x01u
#define ST_DRIVER 0x02u
#define ST_DRIVER_OK 0x04u
#define ST_FEATURES_OK 0x08u
#define ST_NEEDS_RESET 0x40u
#define ST_FAILED 0x80u

/* ring flags */
#define VQ_DESC_F_WRITE 0x2u
#define VQ_AVAIL_F_NO_INTERRUPT 0x1u
#define VQ_USED_F_NO_NOTIFY 0x1u

/* ---- little-endian ring fields ---- */
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
static uint16_t le16(uint16_t v)
{
    return (uint16_t)((v >> 8) | (v << 8));
}
static uint32_t le32(uint32_t v)
{
    return (v >> 24) | ((v >> 8) & 0xff00u) | ((v << 8) & 0xff0000u) | (v << 24);
}
static uint64_t le64(uint64_t v)
{
    return (uint64_t)le32((uint32_t)v) << 32 | le32((uint32_t)(v >> 32));
}
#else
static uint16_t le16(uint16_t v)
{
    return v;
}
static uint32_t le32(uint32_t v)
{
    return v;
}
static uint64_t le64(uint64_t v)
{
    return v;
}
#endif

static uint32_t reg_read(uintptr_t regs, uint32_t off)
{
    return sc_mmio_read32(regs + off);
}

static void reg_write(uintptr_t regs, uint32_t off, uint32_t v)
{
    sc_mmio_write32(regs + off, v);
}

static bool deadline_passed(uint64_t deadline_ms)
{
    return deadline_ms != SC_DEADLINE_NEVER && sc_port_now_ms() >= deadline_ms;
}

/* ---- finding devices ---- */

uintptr_t sc_virtio_mmio_find(uintptr_t first, uintptr_t stride, unsigned slots,
                              uint32_t device_id)
{
    if (first == 0 || stride == 0 || device_id == 0)
        return 0;
    uintptr_t a = first;
    for (unsigned i = 0; i < slots; i++) {
        if (i > 0) {
            if (UINTPTR_MAX - a < stride)
                break;  /* the next window would wrap around */
            a += stride;
        }
        if (reg_read(a, VM_MAGIC) != SC_VIRTIO_MMIO_MAGIC)
            continue;
        uint32_t version = reg_read(a, VM_VERSION);
        if ((version == VM_VERSION_LEGACY || version == VM_VERSION_MODERN) &&
            reg_read(a, VM_DEVICE_ID) == device_id)
            return a;
    }
    return 0;
}

/* ---- the device ---- */

int sc_virtio_dev_fail(struct sc_virtio_dev *d, int err, const char *msg)
{
    if (d->error == 0) {
        d->error = err;
        d->msg = msg;
    }
    if (d->begun)
        reg_write(d->regs, VM_STATUS, reg_read(d->regs, VM_STATUS) | ST_FAILED);
    return err;
}

int sc_virtio_dev_check(struct sc_virtio_dev *d)
{
    if (d->error != 0)
        return d->error;
    if (reg_read(d->regs, VM_STATUS) & ST_NEEDS_RESET)
        return sc_virtio_dev_fail(d, SC_ERR_IO, "virtio device needs a reset (internal error)");
    return 0;
}

int sc_virtio_dev_reset(struct sc_virtio_dev *d, uint64_t deadline_ms)
{
    reg_write(d->regs, VM_STATUS, 0);
    /* The device may finish the reset later; until status reads 0 it may
     * still use the rings. */
    while (reg_read(d->regs, VM_STATUS) != 0) {
        if (deadline_passed(deadline_ms))
            return SC_ERR_TIMEOUT;
        sc_port_yield();
    }
    sc_mmio_fence();
    return 0;
}

static uint64_t device_features(uintptr_t regs)
{
    reg_write(regs, VM_DEVICE_FEATURES_SEL, 1);
    uint64_t hi = reg_read(regs, VM_DEVICE_FEATURES);
    reg_write(regs, VM_DEVICE_FEATURES_SEL, 0);
    uint64_t lo = reg_read(regs, VM_DEVICE_FEATURES);
    return hi << 32 | lo;
}

int sc_virtio_dev_begin(struct sc_virtio_dev *d, uintptr_t regs, uint32_t device_id,
                        uint64_t required, uint64_t optional, uint64_t deadline_ms)
{
    *d = (struct sc_virtio_dev){.regs = regs, .msg = ""};
    if (regs == 0)
        return sc_virtio_dev_fail(d, SC_ERR_INVAL, "virtio: no register address");
    if (reg_read(regs, VM_MAGIC) != SC_VIRTIO_MMIO_MAGIC)
        return sc_virtio_dev_fail(d, SC_ERR_NOT_FOUND, "virtio: no virtio-mmio device there");
    uint32_t version = reg_read(regs, VM_VERSION);
    if (version == VM_VERSION_LEGACY)
        return sc_virtio_dev_fail(d, SC_ERR_UNSUPPORTED,
                                  "virtio: legacy device (version 1); QEMU: "
                                  "-global virtio-mmio.force-legacy=false");
    if (version != VM_VERSION_MODERN)
        return sc_virtio_dev_fail(d, SC_ERR_UNSUPPORTED, "virtio: unknown MMIO version");
    uint32_t id = reg_read(regs, VM_DEVICE_ID);
    if (id == 0)
        return sc_virtio_dev_fail(d, SC_ERR_NOT_FOUND, "virtio: empty slot (device id 0)");
    if (id != device_id)
        return sc_virtio_dev_fail(d, SC_ERR_NOT_FOUND, "virtio: another kind of device");

    d->begun = true;
    /* A reset is quick or never: bound it even under SC_DEADLINE_NEVER. */
    uint64_t reset_by = sc_deadline_in(SC_VIRTIO_RESET_TIMEOUT_MS);
    if (sc_virtio_dev_reset(d, reset_by < deadline_ms ? reset_by : deadline_ms) != 0)
        return sc_virtio_dev_fail(d, SC_ERR_TIMEOUT, "virtio: device reset did not complete");
    reg_write(regs, VM_STATUS, ST_ACKNOWLEDGE);
    reg_write(regs, VM_STATUS, ST_ACKNOWLEDGE | ST_DRIVER);

    required |= (uint64_t)1 << SC_VIRTIO_F_VERSION_1;
    uint64_t offered = device_features(regs);
    if (!(offered & ((uint64_t)1 << SC_VIRTIO_F_VERSION_1)))
        return sc_virtio_dev_fail(d, SC_ERR_UNSUPPORTED, "virtio: device lacks VERSION_1");
    if ((offered & required) != required)
        return sc_virtio_dev_fail(d, SC_ERR_UNSUPPORTED,
                                  "virtio: device lacks a required feature");
    uint64_t accepted = offered & (required | optional);
    reg_write(regs, VM_DRIVER_FEATURES_SEL, 1);
    reg_write(regs, VM_DRIVER_FEATURES, (uint32_t)(accepted >> 32));
    reg_write(regs, VM_DRIVER_FEATURES_SEL, 0);
    reg_write(regs, VM_DRIVER_FEATURES, (uint32_t)accepted);
    reg_write(regs, VM_STATUS, ST_ACKNOWLEDGE | ST_DRIVER | ST_FEATURES_OK);
    if (!(reg_read(regs, VM_STATUS) & ST_FEATURES_OK))
        return sc_virtio_dev_fail(d, SC_ERR_UNSUPPORTED, "virtio: device refused our features");
    d->features = accepted;
    return 0;
}

int sc_virtio_dev_live(struct sc_virtio_dev *d)
{
    if (d->error != 0)
        return d->error;
    sc_mmio_fence();  /* rings and buffers written before the device goes live */
    reg_write(d->regs, VM_STATUS,
              ST_ACKNOWLEDGE | ST_DRIVER | ST_FEATURES_OK | ST_DRIVER_OK);
    uint32_t st = reg_read(d->regs, VM_STATUS);
    if (st & (ST_NEEDS_RESET | ST_FAILED))
        return sc_virtio_dev_fail(d, SC_ERR_IO, "virtio: device failed on DRIVER_OK");
    return 0;
}

uint32_t sc_virtio_dev_config32(const struct sc_virtio_dev *d, uint32_t offset)
{
    return reg_read(d->regs, VM_CONFIG + offset);
}

/* ---- the split virtqueue ---- */

static void write_addr(uintptr_t regs, uint32_t low, const volatile void *p)
{
    uint64_t a = (uint64_t)(uintptr_t)p;
    reg_write(regs, low, (uint32_t)a);
    reg_write(regs, low + 4u, (uint32_t)(a >> 32));
}

int sc_virtq_setup(struct sc_virtio_dev *d, struct sc_virtq *q, uint32_t index, uint16_t size)
{
    _Static_assert(SC_VIRTQ_MAX >= 1 && SC_VIRTQ_MAX <= 32 &&
                       (SC_VIRTQ_MAX & (SC_VIRTQ_MAX - 1)) == 0,
                   "SC_VIRTQ_MAX must be a power of two up to 32");
    if (size == 0 || size > SC_VIRTQ_MAX || (size & (size - 1u)) != 0 || index > 0xffffu)
        return sc_virtio_dev_fail(d, SC_ERR_INVAL, "virtio: bad queue size or index");
    memset(q, 0, sizeof(*q));
    q->regs = d->regs;
    q->index = (uint16_t)index;

    reg_write(d->regs, VM_QUEUE_SEL, index);
    if (reg_read(d->regs, VM_QUEUE_READY) != 0)
        return sc_virtio_dev_fail(d, SC_ERR_PROTO, "virtio: queue live after reset");
    uint32_t max = reg_read(d->regs, VM_QUEUE_NUM_MAX);
    if (max == 0)
        return sc_virtio_dev_fail(d, SC_ERR_UNSUPPORTED, "virtio: device lacks a queue");
    while (size > max)
        size = (uint16_t)(size >> 1);
    q->size = size;
    q->avail.flags = le16(VQ_AVAIL_F_NO_INTERRUPT);  /* we poll */

    reg_write(d->regs, VM_QUEUE_NUM, size);
    write_addr(d->regs, VM_QUEUE_DESC_LOW, q->desc);
    write_addr(d->regs, VM_QUEUE_DRIVER_LOW, &q->avail);
    write_addr(d->regs, VM_QUEUE_DEVICE_LOW, &q->used);
    sc_mmio_fence();
    reg_write(d->regs, VM_QUEUE_READY, 1);
    return 0;
}

int sc_virtq_add(struct sc_virtq *q, uint16_t id, const void *buf, uint32_t len,
                 bool device_writes)
{
    uint32_t bit = (uint32_t)1 << (id % 32u);
    if (id >= q->size || (q->inflight & bit))
        return SC_ERR_INTERNAL;
    struct sc_virtq_desc *dsc = &q->desc[id];
    dsc->addr = le64((uint64_t)(uintptr_t)buf);
    dsc->len = le32(len);
    dsc->flags = le16(device_writes ? VQ_DESC_F_WRITE : 0u);
    dsc->next = 0;
    q->avail.ring[q->next_avail & (q->size - 1u)] = le16(id);
    q->next_avail++;
    q->inflight |= bit;
    q->count++;
    return 0;
}

void sc_virtq_publish(struct sc_virtq *q)
{
    sc_mmio_fence();  /* descriptors and ring entries before the index */
    ((volatile struct sc_virtq_avail *)&q->avail)->idx = le16(q->next_avail);
}

void sc_virtq_kick(struct sc_virtq *q)
{
    sc_virtq_publish(q);
    sc_mmio_fence();  /* the index before reading the device's flags */
    uint16_t flags = le16(((const volatile struct sc_virtq_used *)&q->used)->flags);
    if (!(flags & VQ_USED_F_NO_NOTIFY))
        reg_write(q->regs, VM_QUEUE_NOTIFY, q->index);
}

static uint16_t used_idx(const struct sc_virtq *q)
{
    return le16(((const volatile struct sc_virtq_used *)&q->used)->idx);
}

uint16_t sc_virtq_used_waiting(const struct sc_virtq *q)
{
    uint16_t n = (uint16_t)(used_idx(q) - q->last_used);
    return n > q->count ? q->count : n;
}

int sc_virtq_peek_used(const struct sc_virtq *q, uint16_t k, uint16_t *id, uint32_t *len)
{
    if (k >= sc_virtq_used_waiting(q))
        return 0;
    sc_mmio_fence();
    const volatile struct sc_virtq_used_elem *e =
        &((const volatile struct sc_virtq_used *)&q->used)
             ->ring[(uint16_t)(q->last_used + k) & (q->size - 1u)];
    *id = (uint16_t)le32(e->id);
    *len = le32(e->len);
    return 1;
}

int sc_virtq_next_used(struct sc_virtq *q, uint16_t *id, uint32_t *len)
{
    uint16_t ahead = (uint16_t)(used_idx(q) - q->last_used);
    if (ahead == 0)
        return 0;
    if (ahead > q->count)
        return SC_ERR_PROTO;
    sc_mmio_fence();  /* the index before the entry and the buffer it names */
    const volatile struct sc_virtq_used_elem *e =
        &((const volatile struct sc_virtq_used *)&q->used)->ring[q->last_used & (q->size - 1u)];
    uint32_t elem_id = le32(e->id);
    uint32_t elem_len = le32(e->len);
    if (elem_id >= q->size || !(q->inflight & ((uint32_t)1 << elem_id)))
        return SC_ERR_PROTO;
    q->inflight &= ~((uint32_t)1 << elem_id);
    q->count--;
    q->last_used++;
    *id = (uint16_t)elem_id;
    *len = elem_len;
    return 1;
}
