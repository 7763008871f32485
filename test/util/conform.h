/* Transport conformance: push bytes from one channel to another and check
 * every one arrives, in order, in blocking and non-blocking styles. */
#ifndef SC_TEST_CONFORM_H
#define SC_TEST_CONFORM_H

#include <stdbool.h>
#include <stddef.h>

#include "sechan/channel.h"

/* The byte at stream offset i of the test pattern (not periodic at small
 * powers of two, so a lost or repeated chunk is caught). */
static inline unsigned char conform_byte(size_t i)
{
    return (unsigned char)((i * 2654435761u) >> 13 ^ i);
}

/* Non-blocking, one thread: alternately write and read in chunk sizes that
 * cycle through 1..max_chunk until total bytes crossed, with a deadline.
 * Asserts (cmocka) on any mismatch or error. If `pump` is not NULL it is
 * called every round (to drive a peer such as a TLS server). */
void conform_nonblocking(struct sc_channel *writer, struct sc_channel *reader, size_t total,
                         size_t max_chunk, void (*pump)(void *), void *pump_arg);

/* Blocking, two threads: a writer thread uses sc_write_all then
 * sc_shutdown_wait; this thread reads with sc_read_some until EOF. */
void conform_blocking(struct sc_channel *writer, struct sc_channel *reader, size_t total,
                      size_t max_chunk);

#endif
