/* sechan/port.h: the OS abstraction. Nothing else in the stack calls the OS.
 *
 * Two implementations: port/posix (Linux and other POSIX hosts) and
 * port/baremetal (no OS: a board supplies the clock and entropy hooks).
 */
#ifndef SECHAN_PORT_H
#define SECHAN_PORT_H

#include <stddef.h>
#include <stdint.h>

#include "sechan/channel.h"

/* Monotonic milliseconds since an arbitrary origin; never goes backwards. */
uint64_t sc_port_now_ms(void);

/* Fill buf with len bytes from a cryptographically secure source.
 * 0 on success, SC_ERR_ENTROPY if no such source is available. */
int sc_port_entropy(void *buf, size_t len);

/* Seconds since 1970-01-01 UTC from a wall clock, for certificate validity;
 * returns 0 when the platform has no wall clock. */
int64_t sc_port_wall_time(void);

/* When sc_port_wall_time() has no clock: a lower bound on the current time
 * (the firmware's build time, seconds since 1970), or 0 if none is known.
 * The TLS layer then refuses certificates that expired before it and
 * cannot check "not before"; with no floor either, dates are not checked. */
int64_t sc_port_time_floor(void);

/* Let other work run (another thread, or nothing on bare metal). */
void sc_port_yield(void);

/* Read a whole file into buf (POSIX port only; bare metal: SC_ERR_UNSUPPORTED).
 * Returns the byte count, SC_ERR_FILE if it cannot be read, SC_ERR_TOO_LONG
 * if it does not fit in cap bytes. Uses no stdio (no hidden allocation). */
long sc_port_read_file(const char *path, void *buf, size_t cap);

/* Wait until file descriptor fd is ready for dir or the deadline passes
 * (POSIX port only). 0 ready, SC_ERR_TIMEOUT, SC_ERR_IO. */
int sc_port_wait_fd(int fd, enum sc_dir dir, uint64_t deadline_ms);

/* Write the description of an OS error number into buf (POSIX only,
 * thread-safe). Returns buf. */
const char *sc_port_strerror(int os_errno, char *buf, size_t cap);

#endif
