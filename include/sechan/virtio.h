/* sechan/virtio.h: virtio-mmio (modern, version 2) drivers for boards with
 * no OS, polled (no interrupts).
 *
 *   - a split-virtqueue core over caller memory (struct sc_virtq) and the
 *     device bring-up every driver shares (struct sc_virtio_dev);
 *   - virtio-rng (device id 4): random bytes for sc_board_entropy();
 *   - virtio-serial (device id 3) with MULTIPORT: one named port as a
 *     channel (sechan/channel.h), the link to qemu-nbd or another host peer.
 *
 * Only virtio 1.x devices are driven: VERSION_1 is required, and a legacy
 * device (MMIO Version register 1, QEMU's default for virtio-mmio) is
 * refused with SC_ERR_UNSUPPORTED before anything is written to it (QEMU:
 * `-global virtio-mmio.force-legacy=false`).
 *
 * Everything lives in the caller's struct: the rings, the buffers the device
 * reads and writes (bare metal: CPU addresses are the device's addresses)
 * and the state. The struct must not move or be reused while the device
 * is live: close the driver first (it resets the device, after which the
 * device touches none of that memory). Registers are reached only through
 * sechan/mmio.h, so a host test can put a device model behind them.
 *
 * The device is hostile: every index and length it writes is bounded
 * before use. A device that breaks the protocol (a used id it does not
 * own, a length beyond the buffer, a port id beyond max_nr_ports) is a
 * sticky SC_ERR_PROTO; the driver then sets FAILED in the device status.
 * Every wait is bounded by a deadline (sc_port_now_ms()'s clock) and calls
 * sc_port_yield() between looks.
 */
#ifndef SECHAN_VIRTIO_H
#define SECHAN_VIRTIO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sechan/channel.h"

/* ---- virtio-mmio devices ---- */

#define SC_VIRTIO_MMIO_MAGIC 0x74726976u  /* "virt", little-endian */
#define SC_VIRTIO_ID_CONSOLE 3u
#define SC_VIRTIO_ID_RNG 4u

/* QEMU's riscv `virt` board: eight slots; the first -device on the command
 * line takes the highest one. Empty slots answer the magic with id 0. */
#define SC_VIRTIO_MMIO_VIRT_FIRST 0x10001000u
#define SC_VIRTIO_MMIO_VIRT_STRIDE 0x1000u
#define SC_VIRTIO_MMIO_VIRT_SLOTS 8u

/* Feature bits (bit numbers of the 64-bit feature word). */
#define SC_VIRTIO_F_VERSION_1 32u
#define SC_VIRTIO_CONSOLE_F_MULTIPORT 1u

/* Bound on each wait that the caller gives no deadline for (device reset
 * in init and close, draining in close). */
#define SC_VIRTIO_RESET_TIMEOUT_MS 100u

/* Scan `slots` register windows first, first + stride, ... for a
 * virtio-mmio device with this device id; the lowest address that has one,
 * or 0 if none does (or the arguments are unusable). For a second device of
 * the same kind, scan again from the found address + stride. Legacy devices
 * are found too (their init then refuses them). Every window must be
 * mapped: the scan reads the magic, version and id registers of each. */
uintptr_t sc_virtio_mmio_find(uintptr_t first, uintptr_t stride, unsigned slots,
                              uint32_t device_id);

/* One device under a driver: where it is, what was negotiated, and the
 * first fatal error with a static message saying what happened. */
struct sc_virtio_dev {
    uintptr_t regs;
    uint64_t features;    /* negotiated (after sc_virtio_dev_begin) */
    int error;            /* first fatal SC_ERR_*, 0 while healthy */
    bool begun;           /* the driver has written the status register */
    const char *msg;      /* what failed ("" while healthy); never NULL */
};

/* Check the registers at regs (magic, version 2, device id), reset the
 * device, set ACKNOWLEDGE and DRIVER, and negotiate features: VERSION_1
 * and every bit of `required` must be offered, bits of `optional` are taken
 * when offered; FEATURES_OK must stick.
 * 0; SC_ERR_NOT_FOUND (no device, empty slot, other id); SC_ERR_UNSUPPORTED
 * (legacy or unknown version, a required feature missing, features
 * refused); SC_ERR_TIMEOUT (reset never completed). On failure after the
 * checks the device status has FAILED set. */
int sc_virtio_dev_begin(struct sc_virtio_dev *d, uintptr_t regs, uint32_t device_id,
                        uint64_t required, uint64_t optional, uint64_t deadline_ms);

/* Set DRIVER_OK: the device is live. 0 or SC_ERR_IO if the device then
 * reports DEVICE_NEEDS_RESET or FAILED. */
int sc_virtio_dev_live(struct sc_virtio_dev *d);

/* Record err with msg as the device's first error (a later one does not
 * replace it), set FAILED in the device status, and return err. */
int sc_virtio_dev_fail(struct sc_virtio_dev *d, int err, const char *msg);

/* The sticky error, or SC_ERR_IO (recorded) if the device asks for a reset. */
int sc_virtio_dev_check(struct sc_virtio_dev *d);

/* Reset the device (status 0) and wait until it reads back 0 or the
 * deadline. After it the device no longer touches the driver's memory.
 * 0 or SC_ERR_TIMEOUT. */
int sc_virtio_dev_reset(struct sc_virtio_dev *d, uint64_t deadline_ms);

/* A 32-bit field of the device-specific configuration space (offset from
 * its start, a multiple of 4). */
uint32_t sc_virtio_dev_config32(const struct sc_virtio_dev *d, uint32_t offset);

/* ---- the split virtqueue ---- */

/* Descriptors per queue (a power of two, at most 32). Each driver uses one
 * descriptor per buffer, no chains, no indirect tables. */
#ifndef SC_VIRTQ_MAX
#define SC_VIRTQ_MAX 8
#endif

/* The rings as the device sees them: little-endian, in this struct. */
struct sc_virtq_desc {
    uint64_t addr;
    uint32_t len;
    uint16_t flags;
    uint16_t next;
};

struct sc_virtq_avail {
    uint16_t flags;
    uint16_t idx;
    uint16_t ring[SC_VIRTQ_MAX];
    uint16_t used_event;
};

struct sc_virtq_used_elem {
    uint32_t id;
    uint32_t len;
};

struct sc_virtq_used {
    uint16_t flags;
    uint16_t idx;
    struct sc_virtq_used_elem ring[SC_VIRTQ_MAX];
    uint16_t avail_event;
};

struct sc_virtq {
    _Alignas(16) struct sc_virtq_desc desc[SC_VIRTQ_MAX];  /* 16-byte aligned */
    struct sc_virtq_avail avail;                           /* 2-byte aligned */
    _Alignas(4) struct sc_virtq_used used;                 /* 4-byte aligned */
    /* driver state */
    uintptr_t regs;
    uint32_t inflight;     /* bit i: descriptor i is with the device */
    uint16_t index;        /* queue number on the device */
    uint16_t size;         /* descriptors in use (a power of two) */
    uint16_t next_avail;   /* avail.idx once published */
    uint16_t last_used;    /* used.idx consumed so far */
    uint16_t count;        /* descriptors with the device */
};

/* Configure queue `index` of the device over q's rings: size is a power of
 * two <= SC_VIRTQ_MAX, lowered to the device's QueueNumMax (q->size says
 * what was taken). Asks the device for no interrupts; sets QueueReady.
 * 0, SC_ERR_INVAL, SC_ERR_UNSUPPORTED (no such queue), SC_ERR_PROTO (the
 * queue is already live after a reset). Recorded in d on failure. */
int sc_virtq_setup(struct sc_virtio_dev *d, struct sc_virtq *q, uint32_t index,
                   uint16_t size);

/* Give buffer buf[0..len) to the device as descriptor id (< q->size, not in
 * flight), device-writable or device-readable. Visible to the device only
 * after sc_virtq_publish(). 0 or SC_ERR_INTERNAL (id misuse). */
int sc_virtq_add(struct sc_virtq *q, uint16_t id, const void *buf, uint32_t len,
                 bool device_writes);

/* Make the added buffers visible (the avail index, after a barrier). */
void sc_virtq_publish(struct sc_virtq *q);

/* Publish, then notify the device unless it asked not to be. */
void sc_virtq_kick(struct sc_virtq *q);

/* Take the next buffer the device returned: 1 with *id and *len set (len is
 * the device's claim; bound it before use), 0 if none, SC_ERR_PROTO if the
 * device returned a descriptor it does not hold or more than it holds. */
int sc_virtq_next_used(struct sc_virtq *q, uint16_t *id, uint32_t *len);

/* Returned buffers waiting to be taken (0 .. q->count; a device claiming
 * more is caught by sc_virtq_next_used). */
uint16_t sc_virtq_used_waiting(const struct sc_virtq *q);

/* The k-th waiting returned buffer without taking it: 1 (*id, *len set) or
 * 0 if there are not k + 1 waiting. Unchecked: for estimates only. */
int sc_virtq_peek_used(const struct sc_virtq *q, uint16_t k, uint16_t *id, uint32_t *len);

/* ---- virtio-rng ---- */

/* Bytes asked of the device per request (an internal buffer: the device
 * never writes into caller memory, even after a timeout). */
#define SC_VIRTIO_RNG_BUF_SIZE 64u

struct sc_virtio_rng {
    struct sc_virtio_dev dev;
    struct sc_virtq q;
    uint8_t buf[SC_VIRTIO_RNG_BUF_SIZE];
    bool waiting;   /* buf is with the device */
    bool closed;
};

/* Bring up the virtio-rng at regs (find it with sc_virtio_mmio_find).
 * 0 or an error of sc_virtio_dev_begin / sc_virtq_setup; on failure the
 * device is left reset and r->dev.msg says why. */
int sc_virtio_rng_init(struct sc_virtio_rng *r, uintptr_t regs);

/* Fill buf with len random bytes from the device, polling until the
 * deadline. 0, SC_ERR_TIMEOUT (not sticky: a request left with the device
 * is collected by the next call), SC_ERR_PROTO (sticky), SC_ERR_CLOSED. */
int sc_virtio_rng_read(struct sc_virtio_rng *r, void *buf, size_t len, uint64_t deadline_ms);

/* Reset the device; r may be reused afterwards. */
void sc_virtio_rng_close(struct sc_virtio_rng *r);

/* What failed, "" if nothing. Never NULL. */
const char *sc_virtio_rng_errmsg(const struct sc_virtio_rng *r);

/* ---- virtio-serial: one named port as a channel ---- */

/* Sizes (override with -D, the same for every file of a build):
 *   SC_VIRTIO_SERIAL_BUF_SIZE   bytes per data buffer
 *   SC_VIRTIO_SERIAL_RX_BUFS    receive buffers kept posted: together they
 *                               should hold more than one record of the
 *                               protocol above (a 2 KiB TLS record is 2069
 *                               bytes on the wire), so the device fetches
 *                               the next record while the CPU decrypts this
 *                               one. 4 x 512 bytes left the firmware
 *                               waiting on the device for 16-20% of a bulk
 *                               read under QEMU, 8 x 512 for 1-9%
 *                               (make bench-qemu).
 *   SC_VIRTIO_SERIAL_TX_BUFS    transmit buffers
 *   SC_VIRTIO_SERIAL_CTRL_BUFS  control receive buffers kept posted; QEMU
 *                               drops control messages when none is posted,
 *                               and announces every port at once, so this
 *                               is also the most ports a device may have
 *   SC_VIRTIO_SERIAL_NAME_MAX   longest port name matched (longer names
 *                               of other ports are skipped) */
#ifndef SC_VIRTIO_SERIAL_BUF_SIZE
#define SC_VIRTIO_SERIAL_BUF_SIZE 512u
#endif
#ifndef SC_VIRTIO_SERIAL_RX_BUFS
#define SC_VIRTIO_SERIAL_RX_BUFS 8u
#endif
#ifndef SC_VIRTIO_SERIAL_TX_BUFS
#define SC_VIRTIO_SERIAL_TX_BUFS 4u
#endif
#ifndef SC_VIRTIO_SERIAL_CTRL_BUFS
#define SC_VIRTIO_SERIAL_CTRL_BUFS 8u
#endif
#ifndef SC_VIRTIO_SERIAL_NAME_MAX
#define SC_VIRTIO_SERIAL_NAME_MAX 55u
#endif
#define SC_VIRTIO_SERIAL_CTRL_MSG 8u  /* {le32 id, le16 event, le16 value} */
#define SC_VIRTIO_SERIAL_CTRL_BUF_SIZE (SC_VIRTIO_SERIAL_CTRL_MSG + SC_VIRTIO_SERIAL_NAME_MAX + 1u)
#define SC_VIRTIO_SERIAL_CTRL_TX_BUFS 4u

/* Port ids the driver tracks: a port numbered higher is ignored. */
#define SC_VIRTIO_SERIAL_PORTS_MAX 32u

/* All buffer bytes inside struct sc_virtio_serial (6688 by default; the
 * rings add about 1 KiB). */
#define SC_VIRTIO_SERIAL_BUFFER_BYTES                                              \
    ((SC_VIRTIO_SERIAL_RX_BUFS + SC_VIRTIO_SERIAL_TX_BUFS) * SC_VIRTIO_SERIAL_BUF_SIZE + \
     SC_VIRTIO_SERIAL_CTRL_BUFS * SC_VIRTIO_SERIAL_CTRL_BUF_SIZE +                 \
     SC_VIRTIO_SERIAL_CTRL_TX_BUFS * SC_VIRTIO_SERIAL_CTRL_MSG)

/* Bound on close()'s waits for sent data to leave and for PORT_OPEN(0). */
#define SC_VIRTIO_SERIAL_CLOSE_MS 100u

struct sc_virtio_serial {
    struct sc_channel base;   /* first: a struct sc_virtio_serial * is a channel */
    struct sc_virtio_dev dev;
    struct sc_virtq ctrl_rx, ctrl_tx, rx, tx;
    uint8_t ctrl_rx_buf[SC_VIRTIO_SERIAL_CTRL_BUFS][SC_VIRTIO_SERIAL_CTRL_BUF_SIZE];
    uint8_t ctrl_tx_buf[SC_VIRTIO_SERIAL_CTRL_TX_BUFS][SC_VIRTIO_SERIAL_CTRL_MSG];
    uint8_t rx_buf[SC_VIRTIO_SERIAL_RX_BUFS][SC_VIRTIO_SERIAL_BUF_SIZE];
    uint8_t tx_buf[SC_VIRTIO_SERIAL_TX_BUFS][SC_VIRTIO_SERIAL_BUF_SIZE];
    uint32_t port;            /* our port's id */
    uint32_t max_ports;       /* from the device's configuration */
    uint32_t ports_added;     /* bit i: DEVICE_ADD seen for port i (open) */
    uint32_t ports_named;     /* bit i: PORT_NAME seen for port i (open) */
    uint32_t ports_to_ready;  /* bit i: PORT_READY still to send (open) */
    int32_t found;            /* id whose name matched, -1 while none (open) */
    const char *want_name;    /* the name looked for (open only) */
    uint16_t rx_cur;          /* receive buffer being read */
    uint16_t rx_off;          /* next unread byte in it */
    uint16_t rx_left;         /* unread bytes in it; 0 = none held */
    bool host_open;           /* the host side has the port open */
    bool host_closed;         /* the host closed (or removed) it: EOF */
    bool closed;              /* sc_close() was called */
    enum sc_dir want;         /* what the last SC_ERR_AGAIN waited for */
};

/* Bring up the virtio-serial device at regs, find the port named port_name
 * (control exchange: DEVICE_READY, PORT_READY for each port, PORT_NAME
 * from the device, then our PORT_OPEN) and become a channel over its
 * queues. Until the host side opens the port, read and write answer
 * SC_ERR_AGAIN (bytes written then would be dropped by QEMU).
 *
 * After the host closes the port (PORT_OPEN 0, or the port is removed),
 * read returns the data already received and then 0 (EOF) for good; write
 * answers SC_ERR_RESET. The channel has no shutdown (virtio-serial cannot
 * half-close). close() waits a little for sent data to leave, says
 * PORT_OPEN 0, and resets the device.
 *
 * 0; SC_ERR_INVAL (name empty or longer than SC_VIRTIO_SERIAL_NAME_MAX);
 * SC_ERR_NOT_FOUND (ports were announced but none has that name: at once
 * when every announced port has named itself, else at the deadline);
 * SC_ERR_TIMEOUT (no port announced by the deadline); SC_ERR_UNSUPPORTED
 * (legacy device, no MULTIPORT); SC_ERR_PROTO. On failure the device is
 * left reset and s->dev.msg says why. */
int sc_virtio_serial_open(struct sc_virtio_serial *s, uintptr_t regs, const char *port_name,
                          uint64_t deadline_ms);

#endif
