/* Shared by the NBD client fuzz targets: a tiny deterministic generator
 * for slice sizes, big-endian helpers and a loud abort. Header-only. */
#ifndef SC_FUZZ_UTIL_H
#define SC_FUZZ_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Harness helpers that loop over buffers or steer slicing: kept out of the
 * coverage instrumentation, so they neither slow the run down with
 * comparison tracing nor add features that say nothing about the engine. */
#if defined(__clang__)
#define FZ_NOCOV __attribute__((no_sanitize("coverage")))
#else
#define FZ_NOCOV
#endif

/* Invariant check: say which one broke, then abort() so libFuzzer keeps
 * the input as a crash. */
#define FZ_CHECK(cond)                                                                   \
    do {                                                                                 \
        if (!(cond)) {                                                                   \
            fprintf(stderr, "fuzz invariant failed: %s (%s:%d)\n", #cond, __FILE__,      \
                    __LINE__);                                                           \
            abort();                                                                     \
        }                                                                                \
    } while (0)

#define FZ_FAIL(what)                                                                    \
    do {                                                                                 \
        fprintf(stderr, "fuzz invariant failed: %s (%s:%d)\n", what, __FILE__, __LINE__); \
        abort();                                                                         \
    } while (0)

/* SC_FUZZ_VERBOSE=1 in the environment: say how each input ended. */
static inline int fz_verbose(void)
{
    static int v = -1;
    if (v < 0) {
        const char *e = getenv("SC_FUZZ_VERBOSE");
        v = e != NULL && e[0] != '\0' && e[0] != '0';
    }
    return v;
}

/* SC_FUZZ_SKIP=name[,name]: leave out the named checks (for known,
 * reported engine bugs, so a long run can look for others). */
static inline int fz_skip(const char *name)
{
    const char *e = getenv("SC_FUZZ_SKIP");
    return e != NULL && strstr(e, name) != NULL;
}

/* Slice sizes come from a xorshift generator seeded by one input byte.
 * Seed 0 means "whole items": every slice is as large as allowed, which
 * keeps hand-made seeds easy to read. */
struct fz_rng {
    uint32_t s;
    int whole;
};

static inline void fz_rng_init(struct fz_rng *r, uint8_t seed)
{
    r->whole = seed == 0;
    r->s = 0x9e3779b9u ^ ((uint32_t)seed * 0x01000193u);
    if (r->s == 0)
        r->s = 1;
}

FZ_NOCOV static inline uint32_t fz_next(struct fz_rng *r)
{
    uint32_t x = r->s;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    r->s = x;
    return x;
}

/* A slice of at most min(room, left) bytes (never 0 when both are > 0):
 * often 1 byte, sometimes a few, sometimes all that fits. */
FZ_NOCOV static inline size_t fz_slice(struct fz_rng *r, size_t room, size_t left)
{
    size_t cap = room < left ? room : left;
    if (cap == 0)
        return 0;
    if (r->whole)
        return cap;
    uint32_t x = fz_next(r);
    size_t n;
    switch (x & 7u) {
    case 0:
    case 1:
        n = 1;
        break;
    case 2:
        n = 2;
        break;
    case 3:
        n = 3 + (x >> 3) % 6u;
        break;
    case 4:
    case 5:
        n = cap;
        break;
    default:
        n = 1 + (size_t)(x >> 3) % cap;
        break;
    }
    return n < cap ? n : cap;
}

static inline uint16_t fz_be16(const uint8_t *p)
{
    return (uint16_t)((unsigned)p[0] << 8 | p[1]);
}

static inline uint32_t fz_be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static inline uint64_t fz_be64(const uint8_t *p)
{
    return (uint64_t)fz_be32(p) << 32 | fz_be32(p + 4);
}

/* Is [p, p+n) inside [base, base+size)? */
FZ_NOCOV static inline int fz_inside(const void *p, size_t n, const void *base, size_t size)
{
    uintptr_t a = (uintptr_t)p, b = (uintptr_t)base;
    return a >= b && a - b <= size && n <= size - (a - b);
}

#endif
