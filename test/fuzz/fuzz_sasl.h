/* Shared by the SASL fuzz targets (fuzz_sasl_*.c): the invariants every
 * sasl-lite call must keep, exact-size copies of input parts, and the
 * split of one input into several messages. Header-only. */
#ifndef SC_FUZZ_SASL_H
#define SC_FUZZ_SASL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_util.h"
#include "sechan/err.h"
#include "sechan/sasl.h"
#include "sechan/tls.h"

/* Messages inside one input are separated by the first 0xff bytes: a byte
 * no SASL message here needs (SCRAM is printable ASCII, DIGEST-MD5 tokens
 * are ASCII; 0x80-0xfe still reach the parsers). */
#define FZ_SEP 0xffu

struct fz_parts {
    const uint8_t *p[4];
    size_t n[4];
    size_t count;
};

/* At most max parts; the last one takes the rest, separators included. */
FZ_NOCOV static inline void fz_split(const uint8_t *d, size_t n, size_t max, struct fz_parts *out)
{
    out->count = 0;
    while (out->count + 1 < max && out->count < 4) {
        const uint8_t *sep = memchr(d, FZ_SEP, n);
        if (sep == NULL)
            break;
        out->p[out->count] = d;
        out->n[out->count] = (size_t)(sep - d);
        out->count++;
        n -= (size_t)(sep - d) + 1;
        d = sep + 1;
    }
    out->p[out->count] = d;
    out->n[out->count] = n;
    out->count++;
}

/* A heap copy of exactly n bytes, so ASan sees a read past the message
 * (the fuzzer's own buffer goes on into the next part). Never NULL. */
FZ_NOCOV static inline uint8_t *fz_dup(const uint8_t *p, size_t n)
{
    uint8_t *c = malloc(n > 0 ? n : 1);
    FZ_CHECK(c != NULL);
    if (n > 0)
        memcpy(c, p, n);
    return c;
}

/* Output goes to the end of a static buffer, so a write past the capacity
 * given lands in ASan's redzone after it. */
static uint8_t fz_outbuf[SC_SASL_TOKEN_MAX];
static inline uint8_t *fz_out(size_t cap)
{
    FZ_CHECK(cap <= sizeof(fz_outbuf));
    return fz_outbuf + sizeof(fz_outbuf) - cap;
}

/* Every result is CONTINUE, OK or one of the error codes; no would-block
 * (no I/O here) and no SC_ERR_INTERNAL, which err.h reserves for bugs. */
static inline void fz_sasl_result(int r)
{
    FZ_CHECK(r == SC_SASL_CONTINUE || r == SC_OK || (r < 0 && r > -SC_ERR_COUNT));
    FZ_CHECK(r != SC_ERR_AGAIN);
    if (!fz_skip("internal"))
        FZ_CHECK(r != SC_ERR_INTERNAL);
}

/* After an error r: it is the context's error, with a message, and every
 * further step returns it again with nothing written. */
static inline void fz_sasl_sticky(struct sc_sasl *s, int r, size_t cap)
{
    FZ_CHECK(r < 0);
    FZ_CHECK(sc_sasl_error(s) == r);
    const char *m = sc_sasl_errmsg(s);
    FZ_CHECK(m != NULL && m[0] != '\0' && strcmp(m, "no error") != 0);
    static const uint8_t again[] = "r=x,s=QSXCR+Q6sek8bf92,i=4096";
    size_t n = 12345;
    FZ_CHECK(sc_sasl_step(s, again, sizeof(again) - 1, fz_out(cap), cap, &n) == r);
    FZ_CHECK(n == 0);
    struct sc_sasl_info info;
    FZ_CHECK(sc_sasl_info(s, &info) == SC_ERR_STATE);
    FZ_CHECK(sc_sasl_error(s) == r);
}

/* A result's name, for SC_FUZZ_VERBOSE. */
static inline const char *fz_result_name(int r)
{
    return r == SC_SASL_CONTINUE ? "CONTINUE" : sc_errname(r);
}

/* What a step wrote: within the capacity, and for SCRAM printable. */
FZ_NOCOV static inline void fz_check_out(const uint8_t *out, size_t n, size_t cap, bool printable)
{
    FZ_CHECK(n <= cap);
    for (size_t i = 0; i < n; i++) {
        FZ_CHECK(out[i] != 0);
        if (printable)
            FZ_CHECK(out[i] >= 0x20 && out[i] <= 0x7e);
    }
}

/* Does out[0..n) contain the string s? */
FZ_NOCOV static inline bool fz_has(const uint8_t *out, size_t n, const char *s)
{
    size_t k = strlen(s);
    for (size_t i = 0; i + k <= n; i++)
        if (memcmp(out + i, s, k) == 0)
            return true;
    return false;
}

/* Mbed TLS allocates from sechan's arena: every input must give back all
 * it took (HMAC contexts and the like), or a long-lived server runs dry. */
static inline size_t fz_arena_mark(void)
{
    /* the first init allocates for good (PSA): before the mark */
    FZ_CHECK(sc_tls_global_init(NULL, 0) == 0);
    return sc_tls_arena_in_use();
}

static inline void fz_arena_check(size_t mark)
{
    if (!fz_skip("arena"))
        FZ_CHECK(sc_tls_arena_in_use() == mark);
}

/* A SCRAM client runs PBKDF2 with the server's iteration count: 4096 takes
 * a few ms, 1000000 a second. An input that asks for more than 4096 (and
 * no more than the client accepts) is skipped (returned -1: libFuzzer
 * keeps it out of the corpus); counts out of range still reach the parser.
 * Looks at every "i=" followed by digits, wherever it is. */
FZ_NOCOV static inline bool fz_scram_costly(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i + 2 < n; i++) {
        if (p[i] != 'i' || p[i + 1] != '=')
            continue;
        uint32_t v = 0;
        size_t k = i + 2, digits = 0;
        while (k < n && digits < 9 && p[k] >= '0' && p[k] <= '9') {
            v = v * 10 + (uint32_t)(p[k] - '0');
            k++;
            digits++;
        }
        if (v > SC_SASL_ITER_MIN && v <= SC_SASL_ITER_MAX)
            return true;
    }
    return false;
}

#endif
