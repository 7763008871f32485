/* riscv-virt (RV64, QEMU -M virt -bios none, machine mode).
 *
 * The link to the NBD server is a virtio-serial port named
 * "org.sechan.nbd" when the machine has one (the console is then the
 * NS16550A), else the NS16550A itself (the console is then semihosting).
 * Time: the CLINT's mtime (10 MHz) and the Goldfish RTC for certificate
 * dates. Entropy: virtio-rng; an image without it refuses to run TLS.
 * Exit status: the SiFive test device.
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "../common/fwapp.h"
#include "sechan/board.h"
#include "sechan/mmio.h"
#include "sechan/serial.h"
#include "sechan/virtio.h"

#define UART_BASE 0x10000000u
#define TEST_DEV 0x100000u
#define RTC_BASE 0x101000u           /* Goldfish RTC: ns since 1970 */
#define CLINT_MTIME 0x0200bff8u
#define CLINT_MTIMECMP0 0x02004000u  /* hart 0's */
#define MTIME_HZ 10000000u
#define VIRTIO_FIRST 0x10001000u
#define VIRTIO_STRIDE 0x1000u
#define VIRTIO_SLOTS 8u
#define NBD_PORT_NAME "org.sechan.nbd"

void board_trap(uint64_t cause, uint64_t epc, uint64_t tval) __attribute__((noreturn));
int main(void);

static struct sc_uart uart;
static struct sc_virtio_rng rng;
static struct sc_virtio_serial vport;
static bool have_rng, console_is_uart;

uint64_t sc_board_now_ms(void)
{
    return *(volatile uint64_t *)CLINT_MTIME / (MTIME_HZ / 1000u);
}

uint64_t fw_now_us(void)
{
    /* The time CSR (rdtime): the same counter as mtime, read without an
     * MMIO access, which under QEMU takes the lock the I/O thread needs. */
    uint64_t t;
    __asm__ volatile(".insn i 0x73, 2, %0, x0, -1023" : "=r"(t));  /* csrr t, time */
    return t / (MTIME_HZ / 1000000u);
}

void sc_board_idle(void)
{
}

int64_t sc_board_wall_time(void)
{
    uint32_t lo = sc_mmio_read32(RTC_BASE + 0x00);  /* latches the high half */
    uint32_t hi = sc_mmio_read32(RTC_BASE + 0x04);
    return (int64_t)(((uint64_t)hi << 32 | lo) / 1000000000u);
}

int sc_board_entropy(void *buf, size_t len)
{
    if (!have_rng)
        return -1;
    return sc_virtio_rng_read(&rng, buf, len, sc_board_now_ms() + 2000u) == 0 ? 0 : -1;
}

/* ---- semihosting: the console when the UART is the link ---- */
#define SH_WRITE0 0x04

static long semihost(long op, const void *arg)
{
    register long a0 __asm__("a0") = op;
    register const void *a1 __asm__("a1") = arg;
    /* The magic sequence must not be compressed nor cross a page. */
    __asm__ volatile(".option push\n\t.option norvc\n\t.balign 16\n\t"
                     "slli x0, x0, 0x1f\n\tebreak\n\tsrai x0, x0, 7\n\t.option pop"
                     : "+r"(a0)
                     : "r"(a1)
                     : "memory");
    return a0;
}

static void __attribute__((noreturn)) board_exit(int status)
{
    uint32_t v = status == 0 ? 0x5555u : ((uint32_t)(status & 0xffff) << 16) | 0x3333u;
    sc_mmio_write32(TEST_DEV, v);
    for (;;)
        __asm__ volatile("wfi");
}

void _exit(int status);
void _exit(int status)
{
    board_exit(status);
}

static void board_log(const char *line)
{
    if (console_is_uart) {
        /* A console that does not drain within a second loses the line. */
        uint64_t deadline = sc_board_now_ms() + 1000u;
        if (sc_write_all(&uart.base, line, strlen(line), deadline) == 0)
            (void)sc_write_all(&uart.base, "\r\n", 2, deadline);
    } else {
        semihost(SH_WRITE0, line);
        semihost(SH_WRITE0, "\n");
    }
}

void board_trap(uint64_t cause, uint64_t epc, uint64_t tval)
{
    char line[96];
    snprintf(line, sizeof(line), "sechan-fw: trap mcause=%lx mepc=%lx mtval=%lx",
             (unsigned long)cause, (unsigned long)epc, (unsigned long)tval);
    board_log(line);
    board_exit(70);
}

static unsigned long stack_used(void)
{
    extern uint64_t __stack_bottom[], __stack_top[];
    uint64_t *p = __stack_bottom;
    while (p < __stack_top && *p == 0x5ca1ab1e5ca1ab1eu)
        p++;
    return (unsigned long)((uintptr_t)__stack_top - (uintptr_t)p);
}

int main(void)
{
    /* mtimecmp resets to 0, so the machine timer interrupt is pending from
     * the first tick. It is masked (mie is 0: we poll), but QEMU's TCG
     * takes its global lock on every return to its execution loop while an
     * interrupt is pending, and that lock is the one its I/O thread holds
     * while it fills our virtio queues. Park the compare at the end of
     * time: nothing pends. */
    *(volatile uint64_t *)CLINT_MTIMECMP0 = UINT64_MAX;
    sc_uart_ns16550_init(&uart, UART_BASE, 0);
    uintptr_t rng_regs = sc_virtio_mmio_find(VIRTIO_FIRST, VIRTIO_STRIDE, VIRTIO_SLOTS,
                                             SC_VIRTIO_ID_RNG);
    have_rng = rng_regs != 0 && sc_virtio_rng_init(&rng, rng_regs) == 0;

    struct sc_channel *peer = &uart.base;
    const char *transport = "uart";
    uintptr_t serial_regs = sc_virtio_mmio_find(VIRTIO_FIRST, VIRTIO_STRIDE, VIRTIO_SLOTS,
                                                SC_VIRTIO_ID_CONSOLE);
    int vr = 0;
    if (serial_regs != 0) {
        vr = sc_virtio_serial_open(&vport, serial_regs, NBD_PORT_NAME, sc_board_now_ms() + 5000u);
        if (vr == 0) {
            peer = &vport.base;
            transport = "virtio";
            console_is_uart = true;
        }
    }
    if (serial_regs != 0 && vr != 0) {
        char line[96];
        snprintf(line, sizeof(line), "sechan-fw: board=riscv-virt result=FAIL step=virtio err=%s(%d)",
                 sc_strerror(vr), vr);
        board_log(line);
        board_exit(FW_EXIT_INIT);
    }

    char board_name[32];
    snprintf(board_name, sizeof(board_name), "riscv-virt/%s", transport);
    struct fw_env env = {
        .board = board_name,
        .peer = peer,
        .log = board_log,
        .timeout_ms = 120000,
    };
    int status = fw_run(&env);
    char line[48];
    snprintf(line, sizeof(line), "sechan-fw: stack=%lu", stack_used());
    board_log(line);
    board_exit(status);
}
