/* mps2-an385 (Cortex-M3, QEMU): UART0 is the console, UART1 the link to
 * the NBD server; SysTick keeps time; semihosting gives the test build its
 * entropy (the host's /dev/urandom) and its exit status. The board has no
 * RNG and no real-time clock: certificate dates are checked against the
 * build-time floor only (sechan/port.h). */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "../common/fwapp.h"
#include "sechan/board.h"
#include "sechan/mmio.h"
#include "sechan/serial.h"

#define UART0_BASE 0x40004000u
#define UART1_BASE 0x40005000u
#define SYSCLK_HZ 25000000u          /* the AN385 FPGA image runs at 25 MHz */
#define SYST_CSR 0xe000e010u
#define SYST_RVR 0xe000e014u
#define SYST_CVR 0xe000e018u

void board_fault(const char *what) __attribute__((noreturn));
void systick_handler(void);

static struct sc_uart console, peer_uart;
static volatile uint32_t ticks_lo, ticks_hi;

void systick_handler(void)
{
    uint32_t lo = ticks_lo + 1u;
    if (lo == 0)
        ticks_hi = ticks_hi + 1u;
    ticks_lo = lo;
}

uint64_t sc_board_now_ms(void)
{
    uint32_t hi, lo;
    do {
        hi = ticks_hi;
        lo = ticks_lo;
    } while (hi != ticks_hi);
    return (uint64_t)hi << 32 | lo;
}

uint64_t fw_now_us(void)
{
    /* Whole milliseconds: the bench sums many short spans, and a span
     * counts a tick when it crosses one, so the sums come out right. (The
     * SysTick count between ticks disagreed with the tick count under
     * QEMU: spans measured with it added up to more than the run.) */
    return sc_board_now_ms() * 1000u;
}

void sc_board_idle(void)
{
    /* The UARTs' interrupts are not wired up, so sleeping (wfi) would wait
     * for the next tick: poll instead. */
}

int64_t sc_board_wall_time(void)
{
    return 0;  /* no real-time clock on this board */
}

/* ---- semihosting (test builds under QEMU) ---- */
#define SH_OPEN 0x01
#define SH_CLOSE 0x02
#define SH_READ 0x06
#define SH_EXIT_EXTENDED 0x20
#define SH_APP_EXIT 0x20026

static int semihost(int op, void *arg)
{
    register int r0 __asm__("r0") = op;
    register void *r1 __asm__("r1") = arg;
    __asm__ volatile("bkpt 0xab" : "+r"(r0) : "r"(r1) : "memory");
    return r0;
}

int sc_board_entropy(void *buf, size_t len)
{
    static int fd = -1;
    if (fd < 0) {
        static const char path[] = "/dev/urandom";
        uintptr_t args[3] = {(uintptr_t)path, 1 /* "rb" */, sizeof(path) - 1};
        fd = semihost(SH_OPEN, args);
        if (fd < 0)
            return -1;
    }
    uint8_t *p = buf;
    while (len > 0) {
        size_t n = len > 256 ? 256 : len;
        uintptr_t args[3] = {(uintptr_t)fd, (uintptr_t)p, n};
        int left = semihost(SH_READ, args);  /* bytes NOT read */
        if (left < 0 || (size_t)left >= n)
            return -1;
        p += n - (size_t)left;
        len -= n - (size_t)left;
    }
    return 0;
}

static void __attribute__((noreturn)) board_exit(int status)
{
    uintptr_t args[2] = {SH_APP_EXIT, (uintptr_t)status};
    semihost(SH_EXIT_EXTENDED, args);
    for (;;)
        __asm__ volatile("wfi");
}

/* The C library's exit (and Mbed TLS's, on a corrupted arena) ends here. */
void _exit(int status);
void _exit(int status)
{
    board_exit(status);
}

/* ---- console ---- */

static void board_log(const char *line)
{
    /* A console that does not drain within a second loses the line. */
    uint64_t deadline = sc_board_now_ms() + 1000u;
    if (sc_write_all(&console.base, line, strlen(line), deadline) == 0)
        (void)sc_write_all(&console.base, "\r\n", 2, deadline);
}

void board_fault(const char *what)
{
    board_log(what);
    board_exit(70);
}

static uint32_t stack_used(void)
{
    extern uint32_t __stack_bottom[], __stack_top[];
    uint32_t *p = __stack_bottom;
    while (p < __stack_top && *p == 0x5ca1ab1eu)
        p++;
    return (uint32_t)((uintptr_t)__stack_top - (uintptr_t)p);
}

int main(void)
{
    sc_mmio_write32(SYST_RVR, SYSCLK_HZ / 1000u - 1u);
    sc_mmio_write32(SYST_CVR, 0);
    sc_mmio_write32(SYST_CSR, 0x7u);  /* processor clock, interrupt, enable */
    sc_uart_cmsdk_init(&console, UART0_BASE, 16);
    sc_uart_cmsdk_init(&peer_uart, UART1_BASE, 16);

    struct fw_env env = {
        .board = "mps2-an385",
        .peer = &peer_uart.base,
        .log = board_log,
        .timeout_ms = 120000,
    };
    int status = fw_run(&env);
    char line[48];
    snprintf(line, sizeof(line), "sechan-fw: stack=%lu", (unsigned long)stack_used());
    board_log(line);
    board_exit(status);
}
