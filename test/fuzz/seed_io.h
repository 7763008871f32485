/* The seed generators' one way of writing a corpus file:
 * OUTDIR/TARGET/NAME, the directory made on the way; exit(1) on failure. */
#ifndef SC_FUZZ_SEED_IO_H
#define SC_FUZZ_SEED_IO_H

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>

static inline void seed_save(const char *outdir, const char *target, const char *name,
                             const void *bytes, size_t len)
{
    char path[1024];
    snprintf(path, sizeof(path), "%s/%s", outdir, target);
    if (mkdir(path, 0755) != 0 && errno != EEXIST) {
        perror(path);
        exit(1);
    }
    snprintf(path, sizeof(path), "%s/%s/%s", outdir, target, name);
    FILE *f = fopen(path, "wb");
    if (f == NULL || fwrite(bytes, 1, len, f) != len || fclose(f) != 0) {
        perror(path);
        exit(1);
    }
}

#endif
