/* see sechan/port.h: the implementation for boards with no OS. Every call
 * goes to a hook of the board (sechan/board.h); what needs an OS (files,
 * descriptors) answers SC_ERR_UNSUPPORTED. */
#include <stdio.h>

#include "sechan/board.h"
#include "sechan/port.h"

/* Certificate dates on a board without a clock: the build passes the time
 * it was built (seconds since 1970) as SC_TIME_FLOOR, so a certificate that
 * had expired before the firmware was built is still refused. 0 = no floor:
 * dates are then not checked at all. */
#ifndef SC_TIME_FLOOR
#define SC_TIME_FLOOR 0
#endif

uint64_t sc_port_now_ms(void)
{
    return sc_board_now_ms();
}

int sc_port_entropy(void *buf, size_t len)
{
    return sc_board_entropy(buf, len) == 0 ? 0 : SC_ERR_ENTROPY;
}

int64_t sc_port_wall_time(void)
{
    return sc_board_wall_time();
}

int64_t sc_port_time_floor(void)
{
    return (int64_t)SC_TIME_FLOOR;
}

void sc_port_yield(void)
{
    sc_board_idle();
}

long sc_port_read_file(const char *path, void *buf, size_t cap)
{
    (void)path;
    (void)buf;
    (void)cap;
    return SC_ERR_UNSUPPORTED;
}

int sc_port_wait_fd(int fd, enum sc_dir dir, uint64_t deadline_ms)
{
    (void)fd;
    (void)dir;
    (void)deadline_ms;
    return SC_ERR_UNSUPPORTED;
}

const char *sc_port_strerror(int os_errno, char *buf, size_t cap)
{
    /* No strerror table on bare metal: the number is all there is. */
    if (cap > 0)
        snprintf(buf, cap, "error %d", os_errno);
    return buf;
}
