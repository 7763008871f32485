/* see conform.h */
#define _POSIX_C_SOURCE 200809L
#include "conform.h"

#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdint.h>
#include <cmocka.h>

#include "sechan/port.h"

#define CONFORM_TIMEOUT_MS 60000u

void conform_nonblocking(struct sc_channel *writer, struct sc_channel *reader, size_t total,
                         size_t max_chunk, void (*pump)(void *), void *pump_arg)
{
    unsigned char out[4096], in[4096];
    size_t sent = 0, got = 0, round = 0;
    uint64_t deadline = sc_deadline_in(CONFORM_TIMEOUT_MS);
    if (max_chunk > sizeof(out))
        max_chunk = sizeof(out);
    while (got < total) {
        assert_true(sc_port_now_ms() < deadline);
        round++;
        if (pump != NULL)
            pump(pump_arg);
        if (sent < total) {
            size_t n = round % max_chunk + 1;
            if (n > total - sent)
                n = total - sent;
            for (size_t i = 0; i < n; i++)
                out[i] = conform_byte(sent + i);
            long w = sc_write(writer, out, n);
            if (w != SC_ERR_AGAIN) {
                assert_true(w > 0);
                assert_true((size_t)w <= n);
                sent += (size_t)w;
            }
        }
        size_t want = (round * 7) % max_chunk + 1;
        long r = sc_read(reader, in, want);
        if (r == SC_ERR_AGAIN)
            continue;
        assert_true(r > 0);
        assert_true((size_t)r <= want);
        for (long i = 0; i < r; i++)
            assert_int_equal(in[i], conform_byte(got + (size_t)i));
        got += (size_t)r;
    }
    assert_int_equal(sent, total);
}

struct writer_job {
    struct sc_channel *ch;
    size_t total;
    size_t max_chunk;
    int result;
};

static void *writer_thread(void *arg)
{
    struct writer_job *job = arg;
    unsigned char out[4096];
    uint64_t deadline = sc_deadline_in(CONFORM_TIMEOUT_MS);
    size_t sent = 0, round = 0;
    job->result = 0;
    while (sent < job->total && job->result == 0) {
        size_t n = (++round * 13) % job->max_chunk + 1;
        if (n > job->total - sent)
            n = job->total - sent;
        for (size_t i = 0; i < n; i++)
            out[i] = conform_byte(sent + i);
        job->result = sc_write_all(job->ch, out, n, deadline);
        sent += n;
    }
    if (job->result == 0)
        job->result = sc_shutdown_wait(job->ch, deadline);
    return NULL;
}

void conform_blocking(struct sc_channel *writer, struct sc_channel *reader, size_t total,
                      size_t max_chunk)
{
    struct writer_job job = {.ch = writer, .total = total, .max_chunk = max_chunk};
    if (job.max_chunk > 4096)
        job.max_chunk = 4096;
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, writer_thread, &job), 0);
    unsigned char in[4096];
    uint64_t deadline = sc_deadline_in(CONFORM_TIMEOUT_MS);
    size_t got = 0, round = 0;
    for (;;) {
        size_t want = (++round * 5) % job.max_chunk + 1;
        long r = sc_read_some(reader, in, want, deadline);
        if (r == 0)
            break;
        if (r < 0) {
            print_error("read failed: %s (%s)\n", sc_errname((int)r),
                        sc_channel_errmsg(reader));
            break;
        }
        for (long i = 0; i < r; i++) {
            if (in[i] != conform_byte(got + (size_t)i)) {
                print_error("mismatch at %zu\n", got + (size_t)i);
                fail();
            }
        }
        got += (size_t)r;
    }
    pthread_join(th, NULL);
    assert_int_equal(job.result, 0);
    assert_int_equal(got, total);
}
