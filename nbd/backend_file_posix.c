/* see sechan/nbd_backend.h: the file backend (POSIX hosts). */
#define _GNU_SOURCE  /* fallocate, SEEK_DATA, SEEK_HOLE */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sechan/nbd_backend.h"
#include "sechan/port.h"

static int nbd_errno(int e)
{
    switch (e) {
    case EPERM:
    case EACCES:
    case EROFS:
        return SC_NBD_EPERM;
    case ENOMEM:
        return SC_NBD_ENOMEM;
    case EINVAL:
        return SC_NBD_EINVAL;
    case ENOSPC:
    case EDQUOT:
        return SC_NBD_ENOSPC;
    case EOPNOTSUPP:
        return SC_NBD_ENOTSUP;
    default:
        return SC_NBD_EIO;
    }
}

int sc_nbd_file_open(struct sc_nbd_file_backend *f, const char *path, bool read_only)
{
    f->fd = open(path, (read_only ? O_RDONLY : O_RDWR) | O_CLOEXEC);
    f->read_only = read_only;
    f->msg[0] = '\0';
    if (f->fd < 0) {
        char os[64];
        snprintf(f->msg, sizeof(f->msg), "%s: %s", path, sc_port_strerror(errno, os, sizeof(os)));
        return SC_ERR_FILE;
    }
    struct stat st;
    off_t end = lseek(f->fd, 0, SEEK_END);
    if (fstat(f->fd, &st) != 0 || end < 0 || (!S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode))) {
        snprintf(f->msg, sizeof(f->msg), "%s: not a regular file or block device", path);
        close(f->fd);
        f->fd = -1;
        return SC_ERR_FILE;
    }
    f->size = (uint64_t)end;
    return 0;
}

void sc_nbd_file_close(struct sc_nbd_file_backend *f)
{
    if (f->fd >= 0)
        close(f->fd);
    f->fd = -1;
}

static int file_read(void *ctx, void *buf, uint32_t len, uint64_t offset)
{
    struct sc_nbd_file_backend *f = ctx;
    uint8_t *p = buf;
    while (len > 0) {
        ssize_t n = pread(f->fd, p, len, (off_t)offset);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return nbd_errno(errno);
        if (n == 0) {
            memset(p, 0, len);  /* the file shrank under us: reads as zeroes */
            return 0;
        }
        p += n;
        len -= (uint32_t)n;
        offset += (uint64_t)n;
    }
    return 0;
}

static int file_flush(void *ctx)
{
    struct sc_nbd_file_backend *f = ctx;
    return fdatasync(f->fd) == 0 ? 0 : nbd_errno(errno);
}

static int file_write(void *ctx, const void *buf, uint32_t len, uint64_t offset, bool fua)
{
    struct sc_nbd_file_backend *f = ctx;
    const uint8_t *p = buf;
    while (len > 0) {
        ssize_t n = pwrite(f->fd, p, len, (off_t)offset);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return nbd_errno(n < 0 ? errno : ENOSPC);
        p += n;
        len -= (uint32_t)n;
        offset += (uint64_t)n;
    }
    return fua ? file_flush(ctx) : 0;
}

static int write_zeroes(struct sc_nbd_file_backend *f, uint32_t len, uint64_t offset)
{
    static const uint8_t zeroes[65536];
    while (len > 0) {
        uint32_t n = len < sizeof(zeroes) ? len : (uint32_t)sizeof(zeroes);
        int r = file_write(f, zeroes, n, offset, false);
        if (r != 0)
            return r;
        len -= n;
        offset += n;
    }
    return 0;
}

static int file_zero(void *ctx, uint32_t len, uint64_t offset, bool may_trim, bool fua,
                     bool fast_only)
{
    struct sc_nbd_file_backend *f = ctx;
    int mode = may_trim ? FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE : FALLOC_FL_ZERO_RANGE;
    if (fallocate(f->fd, mode, (off_t)offset, (off_t)len) != 0) {
        if (fast_only)
            return SC_NBD_ENOTSUP;  /* FAST_ZERO: fail rather than write zeroes */
        int r = write_zeroes(f, len, offset);
        if (r != 0)
            return r;
    }
    return fua ? file_flush(ctx) : 0;
}

static int file_trim(void *ctx, uint32_t len, uint64_t offset, bool fua)
{
    struct sc_nbd_file_backend *f = ctx;
    /* Trim is advisory: a file system without hole punching ignores it. */
    (void)fallocate(f->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)offset,
                    (off_t)len);
    return fua ? file_flush(ctx) : 0;
}

static int file_block_status(void *ctx, uint32_t len, uint64_t offset, struct sc_nbd_extent *ext,
                             size_t max, size_t *nr)
{
    struct sc_nbd_file_backend *f = ctx;
    uint64_t end = offset + len, at = offset;
    size_t n = 0;
    while (at < end && n < max) {
        off_t data = lseek(f->fd, (off_t)at, SEEK_DATA);
        if (data < 0 && errno != ENXIO) {
            /* No SEEK_DATA here: everything is data. */
            ext[n++] = (struct sc_nbd_extent){.length = end - at, .flags = 0};
            break;
        }
        if (data < 0 || (uint64_t)data > at) {
            uint64_t hole_end = data < 0 || (uint64_t)data > end ? end : (uint64_t)data;
            ext[n++] = (struct sc_nbd_extent){.length = hole_end - at,
                                              .flags = SC_NBD_STATE_HOLE | SC_NBD_STATE_ZERO};
            at = hole_end;
            continue;
        }
        off_t hole = lseek(f->fd, (off_t)at, SEEK_HOLE);
        uint64_t data_end = hole < 0 || (uint64_t)hole > end ? end : (uint64_t)hole;
        if (data_end <= at)
            data_end = end;
        ext[n++] = (struct sc_nbd_extent){.length = data_end - at, .flags = 0};
        at = data_end;
    }
    *nr = n;
    return 0;
}

const struct sc_nbd_backend_ops sc_nbd_file_ops = {
    .read = file_read,
    .write = file_write,
    .flush = file_flush,
    .trim = file_trim,
    .zero = file_zero,
    .block_status = file_block_status,
};
