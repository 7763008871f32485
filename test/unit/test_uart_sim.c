/* The UART drivers (transports/uart.c) on the host, against simulated
 * registers: a CMSDK APB UART and an NS16550A whose far side is one end of
 * a pipe pair, so the conformance suite of the host transports runs through
 * the very driver code the boards use. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

/* The driver's register access goes to the models below. */
#define SC_MMIO_SIM 1
#define sc_mmio_read8 usim_read8
#define sc_mmio_read32 usim_read32
#define sc_mmio_write8 usim_write8
#define sc_mmio_write32 usim_write32
#define sc_mmio_fence usim_fence
#include "../../transports/uart.c"

#include "../util/conform.h"
#include "sechan/pipe.h"

#define CMSDK_AT 0x40005000u
#define NS_AT 0x10000000u

/* The wire: the test holds end a, the device model end b. */
static struct sc_pipe wire;
static uint8_t wire_ab[256], wire_ba[256];
static int rx_hold = -1;      /* the receive holding register (-1: empty) */
static bool overrun;          /* the model lost a byte */
static bool last_lcr_dlab;    /* THR/RBR are the divisor latch while set */

static void refill(void)
{
    uint8_t b;
    if (rx_hold < 0 && sc_read(&wire.b.base, &b, 1) == 1)
        rx_hold = b;
}

static bool tx_room(size_t n)
{
    return sc_ring_space(&wire.b_to_a) >= n;
}

static void push(uint8_t v)
{
    assert_true(tx_room(1));  /* the driver wrote while the model said full */
    assert_int_equal(sc_write(&wire.b.base, &v, 1), 1);
}

uint32_t usim_read32(uintptr_t addr)
{
    assert_true(addr >= CMSDK_AT && addr < CMSDK_AT + 0x20);
    refill();
    switch (addr - CMSDK_AT) {
    case CMSDK_DATA: {
        uint32_t v = rx_hold < 0 ? 0u : (uint32_t)rx_hold;
        rx_hold = -1;
        return v;
    }
    case CMSDK_STATE:
        return (rx_hold >= 0 ? CMSDK_STATE_RX_FULL : 0u) | (tx_room(1) ? 0u : CMSDK_STATE_TX_FULL) |
               (overrun ? CMSDK_STATE_RX_OVERRUN : 0u);
    default:
        return 0;
    }
}

void usim_write32(uintptr_t addr, uint32_t v)
{
    assert_true(addr >= CMSDK_AT && addr < CMSDK_AT + 0x20);
    if (addr - CMSDK_AT == CMSDK_DATA)
        push((uint8_t)v);
    else if (addr - CMSDK_AT == CMSDK_STATE && (v & CMSDK_STATE_RX_OVERRUN))
        overrun = false;
}

uint8_t usim_read8(uintptr_t addr)
{
    assert_true(addr >= NS_AT && addr < NS_AT + 8);
    refill();
    switch (addr - NS_AT) {
    case NS_RBR: {
        uint8_t v = rx_hold < 0 ? 0u : (uint8_t)rx_hold;
        rx_hold = -1;
        return v;
    }
    case NS_LSR: {
        uint8_t lsr = (uint8_t)((rx_hold >= 0 ? NS_LSR_DR : 0u) |
                                (tx_room(NS_TX_FIFO) ? NS_LSR_THRE : 0u) |
                                (overrun ? NS_LSR_OE : 0u));
        overrun = false;  /* reading LSR clears OE */
        return lsr;
    }
    default:
        return 0;
    }
}

void usim_write8(uintptr_t addr, uint8_t v)
{
    assert_true(addr >= NS_AT && addr < NS_AT + 8);
    if (addr - NS_AT == NS_THR && !last_lcr_dlab)
        push(v);
    if (addr - NS_AT == NS_LCR)
        last_lcr_dlab = (v & NS_LCR_DLAB) != 0;
    if (addr - NS_AT == NS_FCR && (v & 0x02u))
        rx_hold = -1;  /* "clear the receive FIFO" drops what was held */
}

void usim_fence(void)
{
}

static int setup(void **state)
{
    (void)state;
    assert_int_equal(sc_pipe_init(&wire, wire_ab, sizeof(wire_ab), wire_ba, sizeof(wire_ba)), 0);
    rx_hold = -1;
    overrun = false;
    last_lcr_dlab = false;
    return 0;
}

static void test_cmsdk_conformance(void **state)
{
    (void)state;
    static struct sc_uart u;
    assert_int_equal(sc_uart_cmsdk_init(&u, CMSDK_AT, 16), 0);
    conform_nonblocking(&u.base, &wire.a.base, 64 * 1024, 300, NULL, NULL);
    conform_nonblocking(&wire.a.base, &u.base, 64 * 1024, 300, NULL, NULL);
}

static void test_ns16550_conformance(void **state)
{
    (void)state;
    static struct sc_uart u;
    assert_int_equal(sc_uart_ns16550_init(&u, NS_AT, 1), 0);
    assert_int_equal(u.tx_burst, NS_TX_FIFO);
    conform_nonblocking(&u.base, &wire.a.base, 64 * 1024, 300, NULL, NULL);
    conform_nonblocking(&wire.a.base, &u.base, 64 * 1024, 300, NULL, NULL);
}

/* A byte already waiting at init (QEMU's chardev is live before the
 * firmware runs; an NBD server speaks first) is kept: the FIFO stays off. */
static void test_ns16550_keeps_early_byte(void **state)
{
    (void)state;
    static struct sc_uart u;
    assert_int_equal(sc_write(&wire.a.base, "NBDMAGIC", 8), 8);
    assert_int_equal(sc_uart_ns16550_init(&u, NS_AT, 0), 0);
    assert_int_equal(u.tx_burst, 1);
    char got[8];
    size_t n = 0;
    while (n < sizeof(got)) {
        long r = sc_read(&u.base, got + n, sizeof(got) - n);
        assert_true(r > 0);
        n += (size_t)r;
    }
    assert_memory_equal(got, "NBDMAGIC", 8);
    conform_nonblocking(&u.base, &wire.a.base, 4096, 64, NULL, NULL);
}

/* A lost byte cannot be repaired by any layer above: sticky SC_ERR_IO. */
static void test_overrun_is_sticky(void **state)
{
    (void)state;
    static struct sc_uart c, n;
    assert_int_equal(sc_uart_cmsdk_init(&c, CMSDK_AT, 16), 0);
    overrun = true;
    uint8_t b[4];
    assert_int_equal(sc_read(&c.base, b, sizeof(b)), SC_ERR_IO);
    assert_int_equal(sc_read(&c.base, b, sizeof(b)), SC_ERR_IO);
    assert_int_equal(sc_write(&c.base, b, 1), SC_ERR_IO);
    assert_non_null(strstr(sc_channel_errmsg(&c.base), "overrun"));

    assert_int_equal(sc_uart_ns16550_init(&n, NS_AT, 0), 0);
    overrun = true;
    assert_int_equal(sc_read(&n.base, b, sizeof(b)), SC_ERR_IO);
    assert_int_equal(sc_read(&n.base, b, sizeof(b)), SC_ERR_IO);
}

/* Nothing arrives: a wait ends at its deadline, not before, not much after. */
static void test_wait_deadline(void **state)
{
    (void)state;
    static struct sc_uart u;
    assert_int_equal(sc_uart_cmsdk_init(&u, CMSDK_AT, 16), 0);
    uint8_t b;
    assert_int_equal(sc_read(&u.base, &b, 1), SC_ERR_AGAIN);
    assert_int_equal(sc_direction(&u.base), SC_DIR_READ);
    uint64_t t0 = sc_port_now_ms();
    assert_int_equal(sc_wait(&u.base, SC_DIR_READ, t0 + 50), SC_ERR_TIMEOUT);
    uint64_t took = sc_port_now_ms() - t0;
    assert_true(took >= 50 && took < 1000);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_cmsdk_conformance, setup),
        cmocka_unit_test_setup(test_ns16550_conformance, setup),
        cmocka_unit_test_setup(test_ns16550_keeps_early_byte, setup),
        cmocka_unit_test_setup(test_overrun_is_sticky, setup),
        cmocka_unit_test_setup(test_wait_deadline, setup),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
