/* see sechan/serial.h: polled UART drivers (CMSDK APB UART, NS16550A). */
#include <stdio.h>

#include "sechan/mmio.h"
#include "sechan/port.h"
#include "sechan/serial.h"

/* ---- CMSDK APB UART (Arm Cortex-M System Design Kit) ---- */
#define CMSDK_DATA 0x00u
#define CMSDK_STATE 0x04u
#define CMSDK_CTRL 0x08u
#define CMSDK_INTSTATUS 0x0cu
#define CMSDK_BAUDDIV 0x10u
#define CMSDK_STATE_TX_FULL 0x01u
#define CMSDK_STATE_RX_FULL 0x02u
#define CMSDK_STATE_RX_OVERRUN 0x08u
#define CMSDK_CTRL_TX_EN 0x01u
#define CMSDK_CTRL_RX_EN 0x02u

/* ---- NS16550A, byte-wide registers ---- */
#define NS_RBR 0u /* read: receive buffer */
#define NS_THR 0u /* write: transmit holding */
#define NS_DLL 0u /* with LCR.DLAB */
#define NS_IER 1u
#define NS_DLM 1u /* with LCR.DLAB */
#define NS_FCR 2u
#define NS_LCR 3u
#define NS_MCR 4u
#define NS_LSR 5u
#define NS_LCR_8N1 0x03u
#define NS_LCR_DLAB 0x80u
#define NS_FCR_ENABLE_CLEAR 0x07u /* FIFO on, clear RX and TX */
#define NS_MCR_DTR_RTS 0x03u
#define NS_LSR_DR 0x01u   /* data ready */
#define NS_LSR_OE 0x02u   /* overrun: a received byte was lost */
#define NS_LSR_THRE 0x20u /* transmit FIFO empty */
#define NS_TX_FIFO 16u

static int uart_fail(struct sc_uart *u, int code, const char *what)
{
    snprintf(u->msg, sizeof(u->msg), "%s", what);
    return code;
}

static int uart_close(struct sc_channel *ch)
{
    ((struct sc_uart *)ch)->closed = true;
    return 0;
}

static enum sc_dir uart_direction(const struct sc_channel *ch)
{
    return ((const struct sc_uart *)ch)->want;
}

static const char *uart_errmsg(const struct sc_channel *ch)
{
    return ((const struct sc_uart *)ch)->msg;
}

/* Poll until ready(u, dir) or the deadline; the board may sleep between
 * looks (sc_port_yield). */
static int uart_poll(struct sc_uart *u, enum sc_dir dir, uint64_t deadline_ms,
                     bool (*ready)(const struct sc_uart *, enum sc_dir))
{
    for (;;) {
        if (ready(u, dir))
            return 0;
        if (sc_port_now_ms() >= deadline_ms)
            return SC_ERR_TIMEOUT;
        sc_port_yield();
    }
}

/* ---- CMSDK ---- */

static long cmsdk_read(struct sc_channel *ch, void *buf, size_t len)
{
    struct sc_uart *u = (struct sc_uart *)ch;
    uint8_t *p = buf;
    size_t n = 0;
    if (u->closed)
        return SC_ERR_CLOSED;
    while (n < len) {
        uint32_t st = sc_mmio_read32(u->regs + CMSDK_STATE);
        if (st & CMSDK_STATE_RX_OVERRUN)
            return uart_fail(u, SC_ERR_IO, "UART receive overrun: bytes lost");
        if (!(st & CMSDK_STATE_RX_FULL))
            break;
        p[n++] = (uint8_t)sc_mmio_read32(u->regs + CMSDK_DATA);
    }
    if (n > 0)
        return (long)n;
    u->want = SC_DIR_READ;
    return SC_ERR_AGAIN;
}

static long cmsdk_write(struct sc_channel *ch, const void *buf, size_t len)
{
    struct sc_uart *u = (struct sc_uart *)ch;
    const uint8_t *p = buf;
    size_t n = 0;
    if (u->closed)
        return SC_ERR_CLOSED;
    while (n < len && !(sc_mmio_read32(u->regs + CMSDK_STATE) & CMSDK_STATE_TX_FULL))
        sc_mmio_write32(u->regs + CMSDK_DATA, p[n++]);
    if (n > 0)
        return (long)n;
    u->want = SC_DIR_WRITE;
    return SC_ERR_AGAIN;
}

static size_t cmsdk_pending(const struct sc_channel *ch)
{
    const struct sc_uart *u = (const struct sc_uart *)ch;
    return (sc_mmio_read32(u->regs + CMSDK_STATE) & CMSDK_STATE_RX_FULL) ? 1u : 0u;
}

static bool cmsdk_ready(const struct sc_uart *u, enum sc_dir dir)
{
    uint32_t st = sc_mmio_read32(u->regs + CMSDK_STATE);
    bool r = (dir & SC_DIR_READ) && (st & (CMSDK_STATE_RX_FULL | CMSDK_STATE_RX_OVERRUN));
    bool w = (dir & SC_DIR_WRITE) && !(st & CMSDK_STATE_TX_FULL);
    return r || w || dir == SC_DIR_NONE;
}

static int cmsdk_wait(struct sc_channel *ch, enum sc_dir dir, uint64_t deadline_ms)
{
    return uart_poll((struct sc_uart *)ch, dir, deadline_ms, cmsdk_ready);
}

static const struct sc_channel_ops cmsdk_ops = {
    .read = cmsdk_read,
    .write = cmsdk_write,
    .close = uart_close,
    .direction = uart_direction,
    .pending = cmsdk_pending,
    .wait = cmsdk_wait,
    .errmsg = uart_errmsg,
};

int sc_uart_cmsdk_init(struct sc_uart *u, uintptr_t regs, uint32_t baud_div)
{
    if (u == NULL || regs == 0 || baud_div < 16u)
        return SC_ERR_INVAL;
    *u = (struct sc_uart){.regs = regs, .want = SC_DIR_NONE};
    sc_channel_init(&u->base, &cmsdk_ops, NULL);
    sc_mmio_write32(regs + CMSDK_CTRL, 0);
    sc_mmio_write32(regs + CMSDK_BAUDDIV, baud_div);
    sc_mmio_write32(regs + CMSDK_CTRL, CMSDK_CTRL_TX_EN | CMSDK_CTRL_RX_EN);
    /* One read of DATA after enabling the receiver: it drops a stale byte
     * and clears RX_FULL (without it QEMU's model held the first incoming
     * byte for about a second). Overrun flags clear by writing them. */
    (void)sc_mmio_read32(regs + CMSDK_DATA);
    sc_mmio_write32(regs + CMSDK_STATE, CMSDK_STATE_RX_OVERRUN);
    return 0;
}

/* ---- NS16550A ---- */

static long ns_read(struct sc_channel *ch, void *buf, size_t len)
{
    struct sc_uart *u = (struct sc_uart *)ch;
    uint8_t *p = buf;
    size_t n = 0;
    if (u->closed)
        return SC_ERR_CLOSED;
    while (n < len) {
        uint8_t lsr = sc_mmio_read8(u->regs + NS_LSR);
        if (lsr & NS_LSR_OE)
            return uart_fail(u, SC_ERR_IO, "UART receive overrun: bytes lost");
        if (!(lsr & NS_LSR_DR))
            break;
        p[n++] = sc_mmio_read8(u->regs + NS_RBR);
    }
    if (n > 0)
        return (long)n;
    u->want = SC_DIR_READ;
    return SC_ERR_AGAIN;
}

static long ns_write(struct sc_channel *ch, const void *buf, size_t len)
{
    struct sc_uart *u = (struct sc_uart *)ch;
    const uint8_t *p = buf;
    if (u->closed)
        return SC_ERR_CLOSED;
    /* THRE says the FIFO is empty, not how full it is: fill it whole. */
    if (!(sc_mmio_read8(u->regs + NS_LSR) & NS_LSR_THRE)) {
        u->want = SC_DIR_WRITE;
        return SC_ERR_AGAIN;
    }
    size_t n = len < u->tx_burst ? len : u->tx_burst;
    for (size_t i = 0; i < n; i++)
        sc_mmio_write8(u->regs + NS_THR, p[i]);
    return (long)n;
}

static size_t ns_pending(const struct sc_channel *ch)
{
    const struct sc_uart *u = (const struct sc_uart *)ch;
    return (sc_mmio_read8(u->regs + NS_LSR) & NS_LSR_DR) ? 1u : 0u;
}

static bool ns_ready(const struct sc_uart *u, enum sc_dir dir)
{
    uint8_t lsr = sc_mmio_read8(u->regs + NS_LSR);
    bool r = (dir & SC_DIR_READ) && (lsr & (NS_LSR_DR | NS_LSR_OE));
    bool w = (dir & SC_DIR_WRITE) && (lsr & NS_LSR_THRE);
    return r || w || dir == SC_DIR_NONE;
}

static int ns_wait(struct sc_channel *ch, enum sc_dir dir, uint64_t deadline_ms)
{
    return uart_poll((struct sc_uart *)ch, dir, deadline_ms, ns_ready);
}

static const struct sc_channel_ops ns16550_ops = {
    .read = ns_read,
    .write = ns_write,
    .close = uart_close,
    .direction = uart_direction,
    .pending = ns_pending,
    .wait = ns_wait,
    .errmsg = uart_errmsg,
};

int sc_uart_ns16550_init(struct sc_uart *u, uintptr_t regs, uint16_t divisor)
{
    if (u == NULL || regs == 0)
        return SC_ERR_INVAL;
    *u = (struct sc_uart){.regs = regs, .want = SC_DIR_NONE};
    sc_channel_init(&u->base, &ns16550_ops, NULL);
    sc_mmio_write8(regs + NS_IER, 0);
    if (divisor != 0) {
        sc_mmio_write8(regs + NS_LCR, NS_LCR_DLAB);
        sc_mmio_write8(regs + NS_DLL, (uint8_t)(divisor & 0xffu));
        sc_mmio_write8(regs + NS_DLM, (uint8_t)(divisor >> 8));
    }
    sc_mmio_write8(regs + NS_LCR, NS_LCR_8N1);
    /* Enabling the FIFOs clears them: not while a byte is waiting. */
    u->tx_burst = 1;
    if (!(sc_mmio_read8(regs + NS_LSR) & NS_LSR_DR)) {
        sc_mmio_write8(regs + NS_FCR, NS_FCR_ENABLE_CLEAR);
        u->tx_burst = NS_TX_FIFO;
    }
    sc_mmio_write8(regs + NS_MCR, NS_MCR_DTR_RTS);
    /* Reading LSR clears a stale overrun flag. */
    (void)sc_mmio_read8(regs + NS_LSR);
    return 0;
}
