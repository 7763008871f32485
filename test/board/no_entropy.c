/* A board that forgets its entropy hook must not link (make check-cross
 * proves it): there is no default that could run TLS with a fixed seed.
 * Built once without and once with -DWITH_ENTROPY (which must link). */
#include <stddef.h>
#include <stdint.h>

#include "sechan/board.h"
#include "sechan/port.h"

uint64_t sc_board_now_ms(void)
{
    return 0;
}

int64_t sc_board_wall_time(void)
{
    return 0;
}

void sc_board_idle(void)
{
}

#if defined(WITH_ENTROPY)
int sc_board_entropy(void *buf, size_t len)
{
    (void)buf;
    (void)len;
    return -1;
}
#endif

void _exit(int status);
void _exit(int status)
{
    (void)status;
    for (;;) {
    }
}

int main(void)
{
    uint8_t seed[16];
    return sc_port_entropy(seed, sizeof(seed));
}
