/* sechan/board.h: what a bare-metal board gives port/baremetal.
 *
 * port/baremetal implements sechan/port.h on top of these hooks; a board
 * (boards/<name>/board.c) defines them. There are no weak defaults: a board
 * that does not say where its entropy comes from does not link, so no image
 * can run TLS with a fixed seed.
 */
#ifndef SECHAN_BOARD_H
#define SECHAN_BOARD_H

#include <stddef.h>
#include <stdint.h>

/* Monotonic milliseconds from a board timer (SysTick, mtime, ...). */
uint64_t sc_board_now_ms(void);

/* Fill buf from a true random source (virtio-rng, a TRNG peripheral, the
 * host's /dev/urandom through semihosting in test builds). 0 on success,
 * negative if the source failed: TLS then refuses to start. */
int sc_board_entropy(void *buf, size_t len);

/* Seconds since 1970-01-01 UTC from a real-time clock, or 0 if the board
 * has none. Without a clock, certificate dates are checked against the
 * build-time floor SC_TIME_FLOOR instead (see sc_port_time_floor). */
int64_t sc_board_wall_time(void);

/* Called while a blocking loop waits for a transport: a board may sleep
 * until the next interrupt (wfi) or do nothing. */
void sc_board_idle(void);

#endif
