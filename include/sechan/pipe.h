/* sechan/pipe.h: an in-memory, connected pair of channels over caller memory.
 *
 * What end a writes, end b reads, and the other way round. Each direction
 * is a lock-free single-producer single-consumer ring, so one thread may
 * drive each end; a single thread may also drive both ends non-blocking.
 * Waiting (sc_wait) polls with sc_port_yield() until the deadline.
 * For tests and for joining two layers inside one program.
 */
#ifndef SECHAN_PIPE_H
#define SECHAN_PIPE_H

#include <stdatomic.h>
#include <stdbool.h>

#include "sechan/buf.h"
#include "sechan/channel.h"

struct sc_pipe_end {
    struct sc_channel base;       /* first: a struct sc_pipe_end * is a channel */
    struct sc_ring *rx;
    struct sc_ring *tx;
    atomic_bool *rx_eof;          /* the peer shut its sending side */
    atomic_bool *tx_eof;          /* we shut our sending side */
    atomic_bool *peer_gone;       /* the peer closed entirely */
    atomic_bool *self_gone;
    size_t max_io;                /* cap per read/write call (0: none), for tests */
    enum sc_dir want;
};

struct sc_pipe {
    struct sc_ring a_to_b;
    struct sc_ring b_to_a;
    atomic_bool a_shut, b_shut;
    atomic_bool a_gone, b_gone;
    struct sc_pipe_end a;
    struct sc_pipe_end b;
};

/* Each buffer's size must be a power of two. */
int sc_pipe_init(struct sc_pipe *p, void *buf_ab, size_t cap_ab, void *buf_ba, size_t cap_ba);

#endif
