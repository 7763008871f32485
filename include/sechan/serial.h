/* sechan/serial.h: UARTs as channels, for boards with no OS.
 *
 *   CMSDK APB UART (Arm MPS2 boards): one byte each way, no FIFO.
 *   NS16550A (RISC-V virt and most SoCs): 16-byte FIFOs.
 *
 * The drivers poll their registers; they never block and never allocate.
 * A UART has no end-of-stream: read() answers bytes or SC_ERR_AGAIN, never
 * 0. A receive overrun means bytes were lost, which no layer above could
 * repair: it is a sticky SC_ERR_IO. Waiting (sc_wait) polls the registers
 * with sc_port_yield() between looks until the deadline.
 */
#ifndef SECHAN_SERIAL_H
#define SECHAN_SERIAL_H

#include <stdint.h>

#include "sechan/channel.h"

struct sc_uart {
    struct sc_channel base;   /* first: a struct sc_uart * is a channel */
    uintptr_t regs;           /* register base address */
    enum sc_dir want;         /* what the last SC_ERR_AGAIN waited for */
    bool closed;
    uint8_t tx_burst;         /* bytes the transmitter takes when empty */
    char msg[48];
};

/* CMSDK APB UART at regs. baud_div is written to BAUDDIV (>= 16; the
 * model ignores the rate, hardware needs sysclk / baud). Enables TX and RX
 * and discards a stale received byte. */
int sc_uart_cmsdk_init(struct sc_uart *u, uintptr_t regs, uint32_t baud_div);

/* NS16550A at regs with byte-wide registers (reg-shift 0). divisor is the
 * 16-bit baud divisor latch (0 leaves it as firmware/QEMU set it). Sets
 * 8N1, masks interrupts and turns the 16-byte FIFOs on, unless a byte has
 * already arrived: turning the FIFOs on empties them, and a link that is
 * live before init (QEMU connects its chardev before the firmware runs, and
 * an NBD server speaks first) must lose nothing. It then runs without. */
int sc_uart_ns16550_init(struct sc_uart *u, uintptr_t regs, uint16_t divisor);

#endif
