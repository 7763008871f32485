/* sechan/nbd_backend.h: ready-made backends for the NBD server engine.
 *
 * Memory: any caller buffer (firmware RAM disk, tests, `sechan-nbd serve
 * --memory`). File: a regular file or block device (POSIX hosts only),
 * sparse-aware: trim punches holes, block status follows SEEK_DATA/HOLE. */
#ifndef SECHAN_NBD_BACKEND_H
#define SECHAN_NBD_BACKEND_H

#include <stdbool.h>
#include <stdint.h>

#include "sechan/nbd.h"

struct sc_nbd_mem_backend {
    uint8_t *data;
    uint64_t size;
};
extern const struct sc_nbd_backend_ops sc_nbd_mem_ops;

struct sc_nbd_file_backend {
    int fd;
    uint64_t size;
    bool read_only;
    char msg[128];
};
extern const struct sc_nbd_backend_ops sc_nbd_file_ops;

/* Open path (read-only or read-write); 0, SC_ERR_FILE with msg set. */
int sc_nbd_file_open(struct sc_nbd_file_backend *f, const char *path, bool read_only);
void sc_nbd_file_close(struct sc_nbd_file_backend *f);

#endif
