/* see sechan/port.h: the POSIX implementation. */
#define _POSIX_C_SOURCE 200809L
#include "sechan/port.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

uint64_t sc_port_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

int sc_port_entropy(void *buf, size_t len)
{
    uint8_t *p = buf;
    while (len > 0) {
        /* getrandom() never returns more than 33554431 bytes at once. */
        ssize_t n = getrandom(p, len, 0);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return SC_ERR_ENTROPY;
        }
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

int64_t sc_port_wall_time(void)
{
    struct timespec ts;
    if (clock_gettime(CLOCK_REALTIME, &ts) != 0)
        return 0;
    return (int64_t)ts.tv_sec;
}

int64_t sc_port_time_floor(void)
{
    return 0;  /* a POSIX host has a clock */
}

void sc_port_yield(void)
{
    sched_yield();
}

long sc_port_read_file(const char *path, void *buf, size_t cap)
{
    if (path == NULL || buf == NULL)
        return SC_ERR_INVAL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return SC_ERR_FILE;
    size_t got = 0;
    long rc = 0;
    for (;;) {
        if (got == cap) {
            /* Full: only fine if the file ends exactly here. */
            uint8_t probe;
            ssize_t n = read(fd, &probe, 1);
            if (n < 0 && errno == EINTR)
                continue;
            rc = n == 0 ? (long)got : (n > 0 ? SC_ERR_TOO_LONG : SC_ERR_FILE);
            break;
        }
        ssize_t n = read(fd, (uint8_t *)buf + got, cap - got);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            rc = SC_ERR_FILE;
            break;
        }
        if (n == 0) {
            rc = (long)got;
            break;
        }
        got += (size_t)n;
    }
    close(fd);
    return rc;
}

int sc_port_wait_fd(int fd, enum sc_dir dir, uint64_t deadline_ms)
{
    struct pollfd pfd = {.fd = fd, .events = 0};
    if (dir & SC_DIR_READ)
        pfd.events |= POLLIN;
    if (dir & SC_DIR_WRITE)
        pfd.events |= POLLOUT;
    for (;;) {
        int timeout = -1;
        if (deadline_ms != SC_DEADLINE_NEVER) {
            uint64_t now = sc_port_now_ms();
            if (now >= deadline_ms)
                return SC_ERR_TIMEOUT;
            uint64_t left = deadline_ms - now;
            timeout = left > 60000u ? 60000 : (int)left;
        }
        int n = poll(&pfd, 1, timeout);
        if (n > 0)
            return 0;  /* ready, or an error/hang-up the next I/O will report */
        if (n < 0 && errno != EINTR)
            return SC_ERR_IO;
    }
}

const char *sc_port_strerror(int os_errno, char *buf, size_t cap)
{
    if (cap == 0)
        return buf;
    if (strerror_r(os_errno, buf, cap) != 0)
        buf[0] = '\0';
    return buf;
}
