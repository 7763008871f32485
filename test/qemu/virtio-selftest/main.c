/* virtio-selftest: bare-metal RISC-V firmware that drives the virtio-mmio
 * drivers (sechan/virtio.h) on QEMU's virt board against a host peer
 * (peer.py, run by run.sh).
 *
 * Log on the NS16550A UART: one "CHECK <name> ok|FAIL <detail>" line per
 * check, "RATE ..." lines, and a final "RESULT pass|fail N/M". Exit through
 * the SiFive test device: 0x5555 (pass) or (failed checks << 16) | 0x3333.
 *
 * The peer speaks a tiny protocol over the port "org.sechan.test": an
 * 8-byte header {'V', 'T', cmd, 0, le32 len} then
 *   'H' hello:    sent by the peer as soon as it is connected (before we
 *                 open the port, like an NBD server's greeting); we answer
 *                 {'V','T','h',0, 0,0,0,0} and log how long after open it came
 *   'S' sink:     the peer sends len bytes; we answer {'V','T','s',0, le32
 *                 FNV-1a of the bytes}
 *   'G' generate: we send len bytes of pattern_byte(i)
 *   'E' echo:     we echo everything until end-of-stream, which must come
 *                 after exactly len bytes.
 * With legacy devices (no -global virtio-mmio.force-legacy=false) the
 * firmware checks instead that both drivers refuse them. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "sechan/board.h"
#include "sechan/channel.h"
#include "sechan/mmio.h"
#include "sechan/port.h"
#include "sechan/serial.h"
#include "sechan/virtio.h"

#define UART0_BASE 0x10000000u
#define TEST_DEVICE 0x00100000u
#define CLINT_MTIME 0x0200bff8u
#define MTIME_PER_MS 10000u  /* mtime runs at 10 MHz */
#define PORT_NAME "org.sechan.test"
#define MMIO_VERSION 0x004u
#define MMIO_STATUS 0x070u

#define STEP_MS 30000u  /* bound on each protocol step */
#define EARLY_DATA_MAX_MS 300u

void selftest_exit(int code) __attribute__((noreturn));
/* Entered from boards/riscv-virt/start.S on any trap. */
void board_trap(uintptr_t cause, uintptr_t epc, uintptr_t tval) __attribute__((noreturn));
int main(void);

static struct sc_uart console;
static struct sc_virtio_rng rng;
static bool rng_ready;
static struct sc_virtio_serial port;
static uint8_t io_buf[4096];
static unsigned checks_passed, checks_failed;
static uint64_t opened_at;  /* sc_port_now_ms() when the port opened */

/* ---- board hooks (sechan/board.h) ---- */

uint64_t sc_board_now_ms(void)
{
    return *(volatile uint64_t *)(uintptr_t)CLINT_MTIME / MTIME_PER_MS;
}

int sc_board_entropy(void *buf, size_t len)
{
    if (!rng_ready)
        return -1;
    return sc_virtio_rng_read(&rng, buf, len, sc_deadline_in(1000)) == 0 ? 0 : -1;
}

int64_t sc_board_wall_time(void)
{
    return 0;
}

void sc_board_idle(void)
{
}

/* ---- log and exit ---- */

static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void say(const char *fmt, ...)
{
    char line[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    if (n <= 0)
        return;
    size_t len = (size_t)n < sizeof(line) ? (size_t)n : sizeof(line) - 1;
    (void)sc_write_all(&console.base, line, len, sc_deadline_in(1000));
}

static bool check(bool ok, const char *name, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static bool check(bool ok, const char *name, const char *fmt, ...)
{
    char detail[200];
    va_list ap;
    va_start(ap, fmt);
    (void)vsnprintf(detail, sizeof(detail), fmt, ap);
    va_end(ap);
    if (ok)
        checks_passed++;
    else
        checks_failed++;
    say("CHECK %s %s %s\n", name, ok ? "ok" : "FAIL", detail);
    return ok;
}

void selftest_exit(int code)
{
    uint32_t v = code == 0 ? 0x5555u : ((uint32_t)code << 16) | 0x3333u;
    sc_mmio_write32(TEST_DEVICE, v);
    for (;;)
        __asm__ volatile("wfi");
}

void board_trap(uintptr_t cause, uintptr_t epc, uintptr_t tval)
{
    say("TRAP mcause=%lx mepc=%lx mtval=%lx\n", (unsigned long)cause, (unsigned long)epc,
        (unsigned long)tval);
    selftest_exit(99);
}

static unsigned long kib_per_s(size_t bytes, uint64_t ms)
{
    return (unsigned long)(bytes * 1000u / 1024u / (ms == 0 ? 1u : ms));
}

/* ---- virtio-rng ---- */

static bool all_equal(const uint8_t *p, size_t n)
{
    for (size_t i = 1; i < n; i++)
        if (p[i] != p[0])
            return false;
    return true;
}

static void test_rng(uintptr_t regs)
{
    uint64_t t0 = sc_port_now_ms();
    int e = sc_virtio_rng_init(&rng, regs);
    if (!check(e == 0, "rng-init", "%s %s", sc_errname(e), sc_virtio_rng_errmsg(&rng)))
        return;
    static uint8_t a[64], b[64], big[1000];
    e = sc_virtio_rng_read(&rng, a, sizeof(a), sc_deadline_in(2000));
    uint64_t ms = sc_port_now_ms() - t0;
    if (!check(e == 0, "rng-read", "%s %s", sc_errname(e), sc_virtio_rng_errmsg(&rng)))
        return;
    check(!all_equal(a, sizeof(a)), "rng-not-constant",
          "64 bytes %02x%02x%02x%02x%02x%02x%02x%02x... (init + read %lu ms)", a[0], a[1], a[2],
          a[3], a[4], a[5], a[6], a[7], (unsigned long)ms);
    e = sc_virtio_rng_read(&rng, b, sizeof(b), sc_deadline_in(2000));
    check(e == 0 && memcmp(a, b, sizeof(a)) != 0, "rng-second-read-differs", "%s",
          sc_errname(e));
    e = sc_virtio_rng_read(&rng, big, sizeof(big), sc_deadline_in(2000));
    check(e == 0 && !all_equal(big, sizeof(big)), "rng-read-1000", "%s", sc_errname(e));
    rng_ready = true;
    e = sc_port_entropy(a, 32);
    check(e == 0, "port-entropy-from-rng", "%s", sc_errname(e));
}

/* ---- virtio-serial ---- */

static uint8_t pattern_byte(uint32_t i)
{
    return (uint8_t)((i * 2654435761u) >> 24);
}

static uint32_t get_le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static bool do_sink(struct sc_channel *ch, uint32_t len)
{
    uint32_t h = 2166136261u;  /* FNV-1a, 32 bits */
    uint64_t t0 = sc_port_now_ms();
    size_t done = 0;
    while (done < len) {
        size_t want = len - done < sizeof(io_buf) ? len - done : sizeof(io_buf);
        long r = sc_read_some(ch, io_buf, want, sc_deadline_in(STEP_MS));
        if (r <= 0)
            return check(false, "sink", "read after %lu bytes: %s %s", (unsigned long)done,
                         r == 0 ? "EOF" : sc_errname((int)r), sc_channel_errmsg(ch));
        for (long i = 0; i < r; i++) {
            h ^= io_buf[i];
            h *= 16777619u;
        }
        done += (size_t)r;
    }
    uint64_t ms = sc_port_now_ms() - t0;
    uint8_t reply[8] = {'V', 'T', 's', 0, (uint8_t)h, (uint8_t)(h >> 8), (uint8_t)(h >> 16),
                        (uint8_t)(h >> 24)};
    int e = sc_write_all(ch, reply, sizeof(reply), sc_deadline_in(STEP_MS));
    say("RATE host-to-fw %lu bytes in %lu ms = %lu KiB/s (firmware clock)\n",
        (unsigned long)len, (unsigned long)ms, kib_per_s(len, ms));
    return check(e == 0, "sink", "%lu bytes, fnv %08lx, reply %s", (unsigned long)len,
                 (unsigned long)h, sc_errname(e));
}

static bool do_generate(struct sc_channel *ch, uint32_t len)
{
    uint64_t t0 = sc_port_now_ms();
    uint32_t done = 0;
    while (done < len) {
        uint32_t n = len - done < sizeof(io_buf) ? len - done : (uint32_t)sizeof(io_buf);
        for (uint32_t i = 0; i < n; i++)
            io_buf[i] = pattern_byte(done + i);
        int e = sc_write_all(ch, io_buf, n, sc_deadline_in(STEP_MS));
        if (e != 0)
            return check(false, "generate", "write after %lu bytes: %s %s",
                         (unsigned long)done, sc_errname(e), sc_channel_errmsg(ch));
        done += n;
    }
    uint64_t ms = sc_port_now_ms() - t0;
    say("RATE fw-to-host %lu bytes in %lu ms = %lu KiB/s (firmware clock)\n",
        (unsigned long)len, (unsigned long)ms, kib_per_s(len, ms));
    return check(true, "generate", "%lu bytes sent", (unsigned long)len);
}

static bool do_echo(struct sc_channel *ch, uint32_t len)
{
    uint64_t t0 = sc_port_now_ms();
    size_t total = 0;
    for (;;) {
        long r = sc_read_some(ch, io_buf, sizeof(io_buf), sc_deadline_in(STEP_MS));
        if (r == 0)
            break;
        if (r < 0)
            return check(false, "echo", "read after %lu bytes: %s %s", (unsigned long)total,
                         sc_errname((int)r), sc_channel_errmsg(ch));
        int e = sc_write_all(ch, io_buf, (size_t)r, sc_deadline_in(STEP_MS));
        if (e != 0)
            return check(false, "echo", "write after %lu bytes: %s %s", (unsigned long)total,
                         sc_errname(e), sc_channel_errmsg(ch));
        total += (size_t)r;
    }
    uint64_t ms = sc_port_now_ms() - t0;
    say("RATE echo %lu bytes each way in %lu ms = %lu KiB/s (firmware clock, until EOF)\n",
        (unsigned long)total, (unsigned long)ms, kib_per_s(total, ms));
    check(total == len, "echo", "%lu bytes echoed, %lu announced", (unsigned long)total,
          (unsigned long)len);
    bool ok = check(true, "eof", "read returned 0 after the host closed");
    long r = sc_read(ch, io_buf, sizeof(io_buf));
    ok &= check(r == 0, "eof-stays", "second read %ld", r);
    r = sc_write(ch, "x", 1);
    ok &= check(r == SC_ERR_RESET, "write-after-eof", "%s", sc_errname((int)r));
    return ok;
}

static void serve(struct sc_channel *ch)
{
    for (;;) {
        uint8_t hdr[8];
        size_t got = 0;
        int e = sc_read_full(ch, hdr, sizeof(hdr), &got, sc_deadline_in(STEP_MS));
        if (e != 0) {
            check(false, "command", "header: %s after %lu bytes %s", sc_errname(e),
                  (unsigned long)got, sc_channel_errmsg(ch));
            return;
        }
        uint32_t len = get_le32(hdr + 4);
        if (hdr[0] != 'V' || hdr[1] != 'T') {
            check(false, "command", "bad header %02x %02x", hdr[0], hdr[1]);
            return;
        }
        switch (hdr[2]) {
        case 'H': {
            uint64_t ms = sc_port_now_ms() - opened_at;
            static const uint8_t reply[8] = {'V', 'T', 'h', 0, 0, 0, 0, 0};
            e = sc_write_all(ch, reply, sizeof(reply), sc_deadline_in(STEP_MS));
            /* Without the driver's rx kick after PORT_OPEN this took 1000 ms. */
            if (!check(e == 0 && ms < EARLY_DATA_MAX_MS, "hello",
                       "data sent before open arrived %lu ms after open (bound %u), reply %s",
                       (unsigned long)ms, EARLY_DATA_MAX_MS, sc_errname(e)))
                return;
            break;
        }
        case 'S':
            if (!do_sink(ch, len))
                return;
            break;
        case 'G':
            if (!do_generate(ch, len))
                return;
            break;
        case 'E':
            do_echo(ch, len);
            return;
        default:
            check(false, "command", "unknown command %02x", hdr[2]);
            return;
        }
    }
}

static void test_serial(uintptr_t regs)
{
    char long_name[SC_VIRTIO_SERIAL_NAME_MAX + 2];
    memset(long_name, 'n', sizeof(long_name) - 1);
    long_name[sizeof(long_name) - 1] = '\0';
    int e = sc_virtio_serial_open(&port, regs, long_name, sc_deadline_in(1000));
    check(e == SC_ERR_INVAL, "serial-name-too-long", "%s", sc_errname(e));

    uint64_t t0 = sc_port_now_ms();
    e = sc_virtio_serial_open(&port, regs, "org.sechan.nosuch", sc_deadline_in(3000));
    uint64_t ms = sc_port_now_ms() - t0;
    check(e == SC_ERR_NOT_FOUND && ms < 1000, "serial-unknown-name", "%s in %lu ms: %s",
          sc_errname(e), (unsigned long)ms, port.dev.msg);

    t0 = sc_port_now_ms();
    e = sc_virtio_serial_open(&port, regs, PORT_NAME, sc_deadline_in(5000));
    opened_at = sc_port_now_ms();
    ms = opened_at - t0;
    if (!check(e == 0, "serial-open", "%s in %lu ms (port %lu of %lu) %s", sc_errname(e),
               (unsigned long)ms, (unsigned long)port.port, (unsigned long)port.max_ports,
               port.dev.msg))
        return;
    serve(&port.base);
    e = sc_close(&port.base);
    check(e == 0, "serial-close", "%s", sc_errname(e));
}

/* ---- legacy devices must be refused, untouched ---- */

static void test_legacy(uintptr_t rng_regs, uintptr_t con_regs)
{
    int e = sc_virtio_rng_init(&rng, rng_regs);
    check(e == SC_ERR_UNSUPPORTED, "legacy-rng-refused", "%s: %s", sc_errname(e),
          sc_virtio_rng_errmsg(&rng));
    e = sc_virtio_serial_open(&port, con_regs, PORT_NAME, sc_deadline_in(1000));
    check(e == SC_ERR_UNSUPPORTED, "legacy-serial-refused", "%s: %s", sc_errname(e),
          port.dev.msg);
    uint32_t st = sc_mmio_read32(rng_regs + MMIO_STATUS) | sc_mmio_read32(con_regs + MMIO_STATUS);
    check(st == 0, "legacy-untouched", "status registers %lx", (unsigned long)st);
}

int main(void)
{
    (void)sc_uart_ns16550_init(&console, UART0_BASE, 0);
    say("virtio-selftest: sizeof(struct sc_virtio_serial) = %lu (buffers %lu), "
        "sizeof(struct sc_virtio_rng) = %lu\n",
        (unsigned long)sizeof(struct sc_virtio_serial),
        (unsigned long)SC_VIRTIO_SERIAL_BUFFER_BYTES, (unsigned long)sizeof(struct sc_virtio_rng));

    uintptr_t rng_regs = sc_virtio_mmio_find(SC_VIRTIO_MMIO_VIRT_FIRST, SC_VIRTIO_MMIO_VIRT_STRIDE,
                                             SC_VIRTIO_MMIO_VIRT_SLOTS, SC_VIRTIO_ID_RNG);
    check(rng_regs != 0, "find-rng", "at %lx", (unsigned long)rng_regs);
    uintptr_t con_regs = sc_virtio_mmio_find(SC_VIRTIO_MMIO_VIRT_FIRST, SC_VIRTIO_MMIO_VIRT_STRIDE,
                                             SC_VIRTIO_MMIO_VIRT_SLOTS, SC_VIRTIO_ID_CONSOLE);
    check(con_regs != 0, "find-console", "at %lx", (unsigned long)con_regs);
    uintptr_t none = sc_virtio_mmio_find(SC_VIRTIO_MMIO_VIRT_FIRST, SC_VIRTIO_MMIO_VIRT_STRIDE,
                                         SC_VIRTIO_MMIO_VIRT_SLOTS, 2u /* block */);
    check(none == 0, "find-absent", "%lx", (unsigned long)none);

    if (rng_regs != 0 && con_regs != 0) {
        if (sc_mmio_read32(rng_regs + MMIO_VERSION) == 1u) {
            say("virtio-selftest: legacy devices\n");
            test_legacy(rng_regs, con_regs);
        } else {
            test_rng(rng_regs);
            test_serial(con_regs);
            sc_virtio_rng_close(&rng);
        }
    }
    say("RESULT %s %u/%u\n", checks_failed == 0 ? "pass" : "fail", checks_passed,
        checks_passed + checks_failed);
    selftest_exit(checks_failed == 0 ? 0 : (int)checks_failed);
}
