/* see sechan/nbd_backend.h: the memory backend. Bounds are checked by the
 * engine before any op is called. */
#include <string.h>

#include "sechan/nbd_backend.h"

static int mem_read(void *ctx, void *buf, uint32_t len, uint64_t offset)
{
    struct sc_nbd_mem_backend *m = ctx;
    memcpy(buf, m->data + offset, len);
    return 0;
}

static int mem_write(void *ctx, const void *buf, uint32_t len, uint64_t offset, bool fua)
{
    (void)fua;
    struct sc_nbd_mem_backend *m = ctx;
    memcpy(m->data + offset, buf, len);
    return 0;
}

static int mem_flush(void *ctx)
{
    (void)ctx;
    return 0;
}

static int mem_zero(void *ctx, uint32_t len, uint64_t offset, bool may_trim, bool fua,
                    bool fast_only)
{
    (void)may_trim;
    (void)fua;
    (void)fast_only;  /* memset is as fast as zeroing gets here */
    struct sc_nbd_mem_backend *m = ctx;
    memset(m->data + offset, 0, len);
    return 0;
}

static int mem_trim(void *ctx, uint32_t len, uint64_t offset, bool fua)
{
    return mem_zero(ctx, len, offset, true, fua, false);
}

static bool all_zero(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (p[i] != 0)
            return false;
    }
    return true;
}

/* Zero runs in 64 KiB granules read as holes. */
static int mem_block_status(void *ctx, uint32_t len, uint64_t offset, struct sc_nbd_extent *ext,
                            size_t max, size_t *nr)
{
    struct sc_nbd_mem_backend *m = ctx;
    const uint64_t granule = 65536;
    uint64_t end = offset + len, at = offset;
    size_t n = 0;
    while (at < end && n < max) {
        uint64_t next = (at / granule + 1) * granule;
        if (next > end)
            next = end;
        uint32_t flags = all_zero(m->data + at, (size_t)(next - at))
                             ? SC_NBD_STATE_HOLE | SC_NBD_STATE_ZERO
                             : 0;
        if (n > 0 && ext[n - 1].flags == flags)
            ext[n - 1].length += next - at;
        else
            ext[n++] = (struct sc_nbd_extent){.length = next - at, .flags = flags};
        at = next;
    }
    *nr = n;
    return 0;
}

const struct sc_nbd_backend_ops sc_nbd_mem_ops = {
    .read = mem_read,
    .write = mem_write,
    .flush = mem_flush,
    .trim = mem_trim,
    .zero = mem_zero,
    .block_status = mem_block_status,
};
