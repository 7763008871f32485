/* linux-agent: the firmware application as a static Linux program, for a
 * guest that reaches the host's NBD server through a virtio-serial port.
 *
 *   sechan-agent PORT     PORT: a device (/dev/vport0p1) or a port name
 *
 * Prints the same result line as the boards and exits with its status.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "fwapp.h"
#include "sechan/port.h"
#include "sechan/vport.h"

uint64_t fw_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static void log_line(const char *line)
{
    printf("%s\n", line);
    fflush(stdout);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s PORT-DEVICE|PORT-NAME\n", argv[0]);
        return FW_EXIT_INIT;
    }
    char dev[128];
    const char *path = argv[1];
    if (path[0] != '/') {
        if (sc_vport_find(path, dev, sizeof(dev)) != 0) {
            fprintf(stderr, "sechan-agent: no virtio port named %s\n", path);
            return FW_EXIT_INIT;
        }
        path = dev;
    }
    /* getrandom() blocks until the kernel's generator is seeded, which in a
     * fresh VM without virtio-rng can take minutes: say how long it took. */
    uint64_t t0 = sc_port_now_ms();
    uint8_t probe[16];
    if (sc_port_entropy(probe, sizeof(probe)) != 0) {
        fprintf(stderr, "sechan-agent: no entropy\n");
        return FW_EXIT_INIT;
    }
    fprintf(stderr, "sechan-agent: entropy ready after %lu ms\n",
            (unsigned long)(sc_port_now_ms() - t0));
    static struct sc_vport port;
    if (sc_vport_open(&port, path) != 0) {
        fprintf(stderr, "sechan-agent: %s\n", sc_channel_errmsg(&port.base));
        return FW_EXIT_INIT;
    }
    struct fw_env env = {
        .board = "linux-agent",
        .peer = &port.base,
        .log = log_line,
        .timeout_ms = 120000,
    };
    int status = fw_run(&env);
    sc_close(&port.base);
    return status;
}
