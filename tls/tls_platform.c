/* The platform side of Mbed TLS for sechan: the static arena, the entropy
 * hook, the allocation stubs that keep libc's heap out, and gmtime_r. */
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <mbedtls/entropy.h>
#include <mbedtls/error.h>
#include <mbedtls/memory_buffer_alloc.h>
#include <mbedtls/platform.h>
#include <mbedtls/platform_time.h>
#include <mbedtls/platform_util.h>
#include <psa/crypto.h>

#include "sechan/port.h"
#include "tls_internal.h"

_Static_assert(sizeof(struct tls_impl) <= SC_TLS_CTX_SIZE, "SC_TLS_CTX_SIZE too small");
_Static_assert(sizeof(struct tls_creds_impl) <= SC_TLS_CREDS_SIZE,
               "SC_TLS_CREDS_SIZE too small");

/* Before sc_tls_global_init has installed the arena, any allocation fails:
 * these are the platform defaults (see sc_mbedtls_config.h). */
void *sc_mbedtls_no_calloc(size_t n, size_t size)
{
    (void)n;
    (void)size;
    return NULL;
}

void sc_mbedtls_no_free(void *p)
{
    (void)p;
}

int mbedtls_hardware_poll(void *data, unsigned char *output, size_t len, size_t *olen);
int mbedtls_hardware_poll(void *data, unsigned char *output, size_t len, size_t *olen)
{
    (void)data;
    if (sc_port_entropy(output, len) != 0) {
        *olen = 0;
        return MBEDTLS_ERR_ENTROPY_SOURCE_FAILED;
    }
    *olen = len;
    return 0;
}

time_t sc_mbedtls_time(time_t *t)
{
    int64_t now = sc_port_wall_time();
    if (now <= 0)
        now = sc_port_time_floor();
    if (t != NULL)
        *t = (time_t)now;
    return (time_t)now;
}

mbedtls_ms_time_t mbedtls_ms_time(void)
{
    return (mbedtls_ms_time_t)sc_port_now_ms();
}

/* Civil date from days since 1970-01-01 (proleptic Gregorian). */
static void days_to_civil(int64_t days, int *year, int *month, int *mday)
{
    days += 719468;
    int64_t era = (days >= 0 ? days : days - 146096) / 146097;
    int64_t doe = days - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    int64_t d = doy - (153 * mp + 2) / 5 + 1;
    int64_t m = mp < 10 ? mp + 3 : mp - 9;
    int64_t y = yoe + era * 400 + (m <= 2);
    *year = (int)y;
    *month = (int)m;
    *mday = (int)d;
}

struct tm *mbedtls_platform_gmtime_r(const mbedtls_time_t *tt, struct tm *tm_buf)
{
    int64_t t = (int64_t)*tt;
    int64_t days = t / 86400;
    int64_t secs = t % 86400;
    if (secs < 0) {
        secs += 86400;
        days -= 1;
    }
    int y, m, d;
    days_to_civil(days, &y, &m, &d);
    memset(tm_buf, 0, sizeof(*tm_buf));
    tm_buf->tm_year = y - 1900;
    tm_buf->tm_mon = m - 1;
    tm_buf->tm_mday = d;
    tm_buf->tm_hour = (int)(secs / 3600);
    tm_buf->tm_min = (int)(secs / 60 % 60);
    tm_buf->tm_sec = (int)(secs % 60);
    return tm_buf;
}

#if !defined(SC_TLS_EXTERNAL_ARENA)
static unsigned char tls_arena[SC_TLS_ARENA_SIZE] __attribute__((aligned(16)));
#endif

#if !defined(MBEDTLS_MEMORY_DEBUG)
/* Without the allocator's own statistics (small builds), the high-water
 * mark is read off a painted arena. */
#define ARENA_PAINT 0xa5u
#define ARENA_HEADER_ROOM 128u
static unsigned char *tls_arena_base;
static size_t tls_arena_len;
#endif

/* 0 = not yet, 1 = someone is initialising, 2 = done, 3 = failed. */
static atomic_int tls_global_state;
static int tls_global_result;

int sc_tls_global_init(void *arena, size_t len)
{
    int expected = 0;
    if (!atomic_compare_exchange_strong(&tls_global_state, &expected, 1)) {
        while (atomic_load(&tls_global_state) == 1)
            sc_port_yield();
        return tls_global_result;
    }
    if (arena == NULL) {
#if defined(SC_TLS_EXTERNAL_ARENA)
        tls_global_result = SC_ERR_INVAL;  /* this build has no arena of its own */
        atomic_store(&tls_global_state, 3);
        return tls_global_result;
#else
        arena = tls_arena;
        len = sizeof(tls_arena);
#endif
    }
    mbedtls_memory_buffer_alloc_init(arena, len);
#if !defined(MBEDTLS_MEMORY_DEBUG)
    /* Paint after init (which zeroes the arena), past the allocator's
     * first block header; calloc zeroes what it hands out itself. */
    if (len > ARENA_HEADER_ROOM) {
        memset((unsigned char *)arena + ARENA_HEADER_ROOM, ARENA_PAINT, len - ARENA_HEADER_ROOM);
        tls_arena_base = arena;
        tls_arena_len = len;
    }
#endif
    psa_status_t st = psa_crypto_init();
    tls_global_result = st == PSA_SUCCESS ? 0 : (st == PSA_ERROR_INSUFFICIENT_ENTROPY
                                                     ? SC_ERR_ENTROPY
                                                     : SC_ERR_TLS_MEMORY);
    atomic_store(&tls_global_state, tls_global_result == 0 ? 2 : 3);
    return tls_global_result;
}

size_t sc_tls_arena_in_use(void)
{
#if defined(MBEDTLS_MEMORY_DEBUG)
    size_t used = 0, blocks = 0;
    mbedtls_memory_buffer_alloc_cur_get(&used, &blocks);
    return used;
#else
    return 0;
#endif
}

size_t sc_tls_arena_high_water(void)
{
#if defined(MBEDTLS_MEMORY_DEBUG)
    size_t used = 0, blocks = 0;
    mbedtls_memory_buffer_alloc_max_get(&used, &blocks);
    return used;
#else
    /* The arena was painted at init and the allocator takes the lowest
     * free block first: the last byte still painted marks the peak. */
    if (tls_arena_base == NULL)
        return 0;
    size_t top = tls_arena_len;
    while (top > 0 && tls_arena_base[top - 1] == ARENA_PAINT)
        top--;
    return top;
#endif
}

void tls_describe_mbedtls(int code, char *buf, size_t cap)
{
#if defined(MBEDTLS_ERROR_C)
    char text[96];
    mbedtls_strerror(code, text, sizeof(text));
    snprintf(buf, cap, "mbedtls -0x%04x: %s", (unsigned)-code, text);
#else
    snprintf(buf, cap, "mbedtls -0x%04x", (unsigned)-code);
#endif
}

void tls_wipe(void *p, size_t n)
{
    mbedtls_platform_zeroize(p, n);
}
