/* libFuzzer target: the DIGEST-MD5 security layer (RFC 2831 2.3, 2.4) fed
 * a hostile peer's frames, twice: through the codec (sc_sasl_layer_open,
 * one frame at a time) and through the layer channel over an sc_pipe
 * (sc_read until EOF or an error, echoing each read back with sc_write).
 * The input is
 *
 *   byte 0   bits 0-1  the exchange (fz_layer_variants): auth-int,
 *                      auth-conf des, auth-conf 3des, auth-conf 3des with
 *                      maxbuf 100
 *            bit 2     the server opens what the client sealed (else the
 *                      client opens the server's)
 *            bits 3-7  seed of the slice sizes on the channel (0: whole)
 *   rest     frames: a 4-byte big-endian length, then the body. The codec
 *            takes each frame by its own length (the last one cut short
 *            if the input ends first).
 *
 * The exchanges (our client against our server with fixed nonces, so the
 * keys are always the same) run once; each input starts from copies of
 * the finished contexts, so sequence numbers and CBC chains start afresh.
 *
 * Invariants beyond the sanitizers: results in range and sticky; an opened
 * message lies inside its frame; a frame the codec accepts is exactly the
 * frame the honest peer seals for that message (no malleability); the
 * channel delivers exactly the codec's messages, or a prefix of them when
 * it refused a frame above our maxbuf; reads never return more than asked;
 * what was read, written back through the channel (in pieces: the pipe
 * takes 64 bytes at a time), reaches the peer's layer intact; the arena
 * balanced. */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_sasl.h"
#include "fuzz_sasl_peers.h"
#include "sechan/pipe.h"

#define BUF_LEN (SC_SASL_MAXBUF_DEFAULT + 64)

static struct sc_sasl snap_cli[FZ_LAYER_VARIANTS], snap_srv[FZ_LAYER_VARIANTS];
static struct sc_sasl work, peer_work;
static struct sc_sasl_layer opener, sealer, chan, echo_peer;
static uint8_t rx_buf[BUF_LEN], tx_buf[BUF_LEN], peer_rx[BUF_LEN], peer_tx[BUF_LEN];
static uint8_t ring_ab[1u << 17], ring_ba[64];
static struct sc_pipe pipe_pair;
static uint8_t sealed[BUF_LEN], read_buf[BUF_LEN];
/* the messages each path delivered */
static uint8_t codec_out[1u << 20], chan_out[1u << 20], echo_out[1u << 20];
static uint8_t echo_frame[BUF_LEN];

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    for (int v = 0; v < FZ_LAYER_VARIANTS; v++)
        fz_layer_exchange(v, &snap_cli[v], &snap_srv[v]);
    return 0;
}

static void layer_from(struct sc_sasl_layer *l, const struct sc_sasl *snap, struct sc_sasl *s,
                       struct sc_channel *lower, uint8_t *rx, uint8_t *tx)
{
    *s = *snap;
    FZ_CHECK(sc_sasl_layer_init(l, lower, s, rx, BUF_LEN, tx, BUF_LEN) == 0);
}

static void check_err(int e)
{
    FZ_CHECK(e < 0 && e > -SC_ERR_COUNT && e != SC_ERR_AGAIN);
    if (!fz_skip("internal"))
        FZ_CHECK(e != SC_ERR_INTERNAL);
}

/* The codec: open each frame; returns the error that ended it, or 0. */
static int run_codec(const uint8_t *in, size_t n, const struct sc_sasl *open_snap,
                     const struct sc_sasl *seal_snap, size_t *out_len, unsigned *frames)
{
    layer_from(&opener, open_snap, &work, &pipe_pair.b.base, rx_buf, tx_buf);
    layer_from(&sealer, seal_snap, &peer_work, &pipe_pair.a.base, peer_rx, peer_tx);
    bool honest = true;  /* the sealer is in step with the opener */
    size_t off = 0, got = 0;
    int r = 0;
    *frames = 0;
    while (off < n) {
        size_t rest = n - off, len = rest;
        if (rest >= 4 && fz_be32(in + off) <= rest - 4)
            len = 4 + (size_t)fz_be32(in + off);
        uint8_t *frame = fz_dup(in + off, len);
        uint8_t *msg = NULL;
        size_t mlen = 0;
        r = sc_sasl_layer_open(&opener, frame, len, &msg, &mlen);
        if (r != 0) {
            check_err(r);
            memcpy(frame, in + off, len);
            FZ_CHECK(sc_sasl_layer_open(&opener, frame, len, &msg, &mlen) == r);
            free(frame);
            break;
        }
        FZ_CHECK(msg != NULL && fz_inside(msg, mlen, frame, len) && mlen + 4 + 16 <= len);
        FZ_CHECK(got + mlen <= sizeof(codec_out));
        memcpy(codec_out + got, msg, mlen);
        got += mlen;
        (*frames)++;
        /* The honest peer, sealing this message now, writes this very frame. */
        size_t slen = 0;
        if (honest && mlen > 0 &&
            sc_sasl_layer_seal(&sealer, msg, mlen, sealed, sizeof(sealed), &slen) == 0)
            FZ_CHECK(slen == len && memcmp(sealed, in + off, len) == 0);
        else
            honest = false;
        free(frame);
        off += len;
    }
    sc_close(&opener.base);
    sc_close(&sealer.base);
    *out_len = got;
    return r;
}

/* What the layer channel writes, as the peer receives it: frames read off
 * the pipe's other end and opened by the peer's own layer. */
struct echo {
    size_t have, need;  /* bytes of the current frame; its whole length */
    size_t got;         /* message bytes opened */
};

static void echo_collect(struct echo *e)
{
    for (;;) {
        size_t want = e->have < 4 ? 4 - e->have : e->need - e->have;
        long n = sc_read(&pipe_pair.a.base, echo_frame + e->have, want);
        if (n == SC_ERR_AGAIN)
            return;
        FZ_CHECK(n > 0 && (size_t)n <= want);
        e->have += (size_t)n;
        if (e->have == 4 && e->need == 0) {
            e->need = 4 + (size_t)fz_be32(echo_frame);
            FZ_CHECK(e->need > 4 && e->need <= sizeof(echo_frame));
        }
        if (e->have >= 4 && e->have == e->need) {
            uint8_t *msg = NULL;
            size_t mlen = 0;
            FZ_CHECK(sc_sasl_layer_open(&echo_peer, echo_frame, e->have, &msg, &mlen) == 0);
            FZ_CHECK(e->got + mlen <= sizeof(echo_out));
            memcpy(echo_out + e->got, msg, mlen);
            e->got += mlen;
            e->have = e->need = 0;
        }
    }
}

/* Send what was read back through the layer channel. Its lower end has a
 * 64-byte ring, so frames go out in pieces: after SC_ERR_AGAIN the same
 * write is retried (the channel contract) once the peer has read some. */
static void echo_back(const uint8_t *p, size_t n, struct echo *e)
{
    for (unsigned tries = 0; n > 0; tries++) {
        FZ_CHECK(tries < 10 * BUF_LEN);
        long w = sc_write(&chan.base, p, n);
        if (w == SC_ERR_AGAIN) {
            echo_collect(e);
            continue;
        }
        FZ_CHECK(w > 0 && (size_t)w <= n);
        p += w;
        n -= (size_t)w;
    }
    echo_collect(e);
}

/* Read the layer channel until AGAIN, EOF or an error (1, 0 or the
 * error), echoing each read back. */
static long drain(struct fz_rng *rng, size_t *got, struct echo *e)
{
    for (;;) {
        size_t want = fz_slice(rng, sizeof(read_buf), sizeof(read_buf));
        long n = sc_read(&chan.base, read_buf, want);
        if (n == SC_ERR_AGAIN)
            return 1;
        if (n <= 0)
            return n;
        FZ_CHECK((size_t)n <= want && *got + (size_t)n <= sizeof(chan_out));
        memcpy(chan_out + *got, read_buf, (size_t)n);
        *got += (size_t)n;
        echo_back(read_buf, (size_t)n, e);
    }
}

/* The channel: the input written into the pipe in slices, read between. */
static long run_channel(const uint8_t *in, size_t n, const struct sc_sasl *open_snap,
                        const struct sc_sasl *peer_snap, uint8_t seed, size_t *out_len)
{
    FZ_CHECK(sc_pipe_init(&pipe_pair, ring_ab, sizeof(ring_ab), ring_ba, sizeof(ring_ba)) == 0);
    layer_from(&chan, open_snap, &work, &pipe_pair.b.base, rx_buf, tx_buf);
    layer_from(&echo_peer, peer_snap, &peer_work, &pipe_pair.a.base, peer_rx, peer_tx);
    struct echo e = {0, 0, 0};
    struct fz_rng rng;
    fz_rng_init(&rng, seed);
    size_t off = 0, got = 0;
    long end = 1;
    while (off < n && end == 1) {
        size_t k = fz_slice(&rng, n - off, n - off);
        long w = sc_write(&pipe_pair.a.base, in + off, k);
        FZ_CHECK(w == SC_ERR_AGAIN || (w > 0 && (size_t)w <= k));
        if (w > 0)
            off += (size_t)w;
        end = drain(&rng, &got, &e);
    }
    if (end == 1) {
        FZ_CHECK(sc_shutdown(&pipe_pair.a.base) == 0);
        end = drain(&rng, &got, &e);
        FZ_CHECK(end != 1);  /* the pipe said EOF: no more would-block */
    }
    if (end < 0) {
        check_err((int)end);
        /* sticky, in the layer itself and in the channel above it */
        FZ_CHECK(chan.base.ops->read(&chan.base, read_buf, 16) == end);
        FZ_CHECK(sc_read(&chan.base, read_buf, 16) == end);
        const char *m = sc_channel_errmsg(&chan.base);
        FZ_CHECK(m != NULL && m[0] != '\0');
    } else {
        FZ_CHECK(sc_read(&chan.base, read_buf, 16) == 0);  /* EOF stays EOF */
    }
    /* the peer got back exactly what was read */
    FZ_CHECK(e.got == got && memcmp(echo_out, chan_out, got) == 0 && e.have == 0);
    sc_close(&chan.base);
    sc_close(&echo_peer.base);
    *out_len = got;
    return end;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    uint8_t mode = data[0];
    int v = mode & 3;
    bool server_opens = mode & 4;
    const struct sc_sasl *open_snap = server_opens ? &snap_srv[v] : &snap_cli[v];
    const struct sc_sasl *seal_snap = server_opens ? &snap_cli[v] : &snap_srv[v];
    uint8_t *in = fz_dup(data + 1, size - 1);
    size_t n = size - 1;
    size_t mark = fz_arena_mark();

    size_t codec_len = 0, chan_len = 0;
    unsigned frames = 0;
    int codec_r = run_codec(in, n, open_snap, seal_snap, &codec_len, &frames);
    long chan_r = run_channel(in, n, open_snap, seal_snap, (uint8_t)(mode >> 3), &chan_len);

    /* the same messages both ways, unless the channel refused a frame
     * above our maxbuf (the codec does not look at maxbuf) */
    FZ_CHECK(chan_len <= codec_len && memcmp(chan_out, codec_out, chan_len) == 0);
    if (chan_r != SC_ERR_TOO_LONG) {
        FZ_CHECK(chan_len == codec_len);
        FZ_CHECK((chan_r == 0) == (codec_r == 0));
    }
    if (fz_verbose())
        fprintf(stderr, "mode 0x%02x (%s, %s opens): codec %u frames, %zu bytes, %s; channel "
                        "%zu bytes, %s\n",
                mode, fz_layer_variants[v].name, server_opens ? "server" : "client", frames,
                codec_len, sc_errname(codec_r), chan_len, sc_errname((int)chan_r));
    free(in);
    fz_arena_check(mark);
    return 0;
}
