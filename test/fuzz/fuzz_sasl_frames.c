/* libFuzzer target: the framing engine of docs/sasl.md (sc_sasl_recvbuf /
 * recvack / sendbuf / sendack) on either side, fed a hostile peer's bytes.
 * The input is
 *
 *   byte 0   bit 0     the engine is the server (else the client)
 *            bit 1     plaintext transport (only DIGEST-MD5 with a layer)
 *            bit 2     a tls-exporter channel binding (-PLUS)
 *            bits 3-7  seed of the slice sizes (0: as much as offered)
 *   rest     the peer's frames (the client gets MECHS, CHALLENGE,
 *            OUTCOME; the server START, RESPONSE, ABORT), fed in slices
 *            whenever the engine reads, until it stops reading.
 *
 * The driver takes what the engine sends in slices too, and parses it.
 * Peers: fuzz_sasl_peers.h (user/pencil, RFC 5802's nonces, fz_lookup).
 * Client inputs asking for more than 4096 PBKDF2 iterations are skipped.
 *
 * Invariants beyond the sanitizers: recvbuf never offers more room than
 * the rest of the current incoming frame (bytes after the exchange stay in
 * the channel) and both buffers lie inside the context; recvack returns 0
 * or an error, which then sticks (recvack, recvbuf, state); what the
 * engine sends is well-formed frames of its side within their bounds; a
 * client STARTs only a mechanism the server offered and its policy
 * allows; a server offers only what its policy allows and reports DONE
 * only for a known user; the arena balanced. */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "fuzz_sasl.h"
#include "fuzz_sasl_peers.h"

enum { FR_MECHS = 1, FR_START, FR_CHALLENGE, FR_RESPONSE, FR_OUTCOME, FR_ABORT };
#define HDR 3
#define FRAME_MAX (HDR + 2 + 20 + SC_SASL_TOKEN_MAX)

static struct sc_sasl eng;

/* One direction's byte stream, cut into frames. */
struct stream {
    uint8_t frame[FRAME_MAX];
    size_t have;    /* bytes of the current frame so far */
    size_t need;    /* its whole length, once the header is in */
    unsigned frames;
};

struct run {
    bool server;
    bool plaintext;
    bool binding;
    struct stream in, out;
    uint32_t offered;     /* client: the mechanisms of the MECHS fed */
    bool mechs_seen;
    int started;          /* client: the mechanism STARTed, or -1 */
    bool outcome_ok;      /* server: sent a success OUTCOME */
    bool aborted;         /* client: sent ABORT */
};

/* Bytes of the current incoming frame still to come. */
static size_t in_rest(const struct stream *s)
{
    return s->have < HDR ? HDR - s->have : s->need - s->have;
}

static bool mech_allowed(const struct run *r, int m)
{
    bool plus = m == SC_SASL_SCRAM_SHA_256_PLUS || m == SC_SASL_SCRAM_SHA_1_PLUS;
    if (r->plaintext)
        return m == SC_SASL_DIGEST_MD5;  /* allow_no_layer is off */
    return !plus || r->binding;
}

/* Names separated by single spaces, as in a MECHS body. */
FZ_NOCOV static uint32_t mech_bits(const uint8_t *p, size_t n)
{
    uint32_t bits = 0;
    size_t i = 0;
    while (i < n) {
        size_t k = 0;
        while (i + k < n && p[i + k] != ' ')
            k++;
        int m = sc_sasl_mech_lookup((const char *)p + i, k);
        if (m >= 0)
            bits |= 1u << m;
        i += k + 1;
    }
    return bits;
}

/* A whole frame the engine received (as far as the engine is concerned). */
FZ_NOCOV static void on_frame_in(struct run *r, const uint8_t *f, size_t n)
{
    if (!r->server && f[0] == FR_MECHS && !r->mechs_seen) {
        r->offered = mech_bits(f + HDR, n - HDR);
        r->mechs_seen = true;
    }
}

/* A whole frame the engine sent. */
FZ_NOCOV static void on_frame_out(struct run *r, const uint8_t *f, size_t n)
{
    const uint8_t *b = f + HDR;
    size_t len = n - HDR;
    unsigned type = f[0];
    if (r->server) {
        FZ_CHECK(type == FR_MECHS || type == FR_CHALLENGE || type == FR_OUTCOME);
        if (type == FR_MECHS) {
            FZ_CHECK(r->out.frames == 0 && len > 0 && len <= SC_SASL_MECHS_MAX);
            uint32_t bits = mech_bits(b, len);
            for (int m = 0; m < SC_SASL_MECH_COUNT; m++)
                if (bits & (1u << m))
                    FZ_CHECK(mech_allowed(r, m));
        } else if (type == FR_OUTCOME) {
            FZ_CHECK(len >= 1 && b[0] <= 1);
            if (b[0] == 0) {
                r->outcome_ok = true;
            } else {
                FZ_CHECK(len - 1 <= SC_SASL_REASON_MAX);
                for (size_t i = 1; i < len; i++)
                    FZ_CHECK(b[i] >= 0x20 && b[i] <= 0x7e);
            }
        } else {
            FZ_CHECK(len <= SC_SASL_TOKEN_MAX);
        }
        return;
    }
    FZ_CHECK(type == FR_START || type == FR_RESPONSE || type == FR_ABORT);
    FZ_CHECK(!r->aborted);
    if (type == FR_START) {
        FZ_CHECK(r->started < 0 && r->mechs_seen);
        FZ_CHECK(len >= 2 && b[0] >= 1 && b[0] <= 20 && (size_t)b[0] + 2 <= len);
        int m = sc_sasl_mech_lookup((const char *)b + 1, b[0]);
        FZ_CHECK(m >= 0 && (r->offered & (1u << m)) && mech_allowed(r, m));
        uint8_t flag = b[1 + b[0]];
        FZ_CHECK(flag <= 1 && (flag == 1 || len == (size_t)b[0] + 2));
        r->started = m;
    } else if (type == FR_RESPONSE) {
        FZ_CHECK(r->started >= 0 && len <= SC_SASL_TOKEN_MAX);
    } else {
        FZ_CHECK(len == 0);
        r->aborted = true;
    }
}

/* Feed n bytes of one direction through its frame cutter. */
FZ_NOCOV static void stream_feed(struct run *r, struct stream *s, const uint8_t *p, size_t n,
                                 bool out)
{
    while (n > 0) {
        size_t want = s->have < HDR ? HDR : s->need;
        size_t k = want - s->have < n ? want - s->have : n;
        FZ_CHECK(s->have + k <= sizeof(s->frame));
        memcpy(s->frame + s->have, p, k);
        s->have += k;
        p += k;
        n -= k;
        if (s->have == HDR)
            s->need = HDR + ((size_t)s->frame[1] << 8 | s->frame[2]);
        if (s->have >= HDR && s->have == s->need) {
            if (out)
                on_frame_out(r, s->frame, s->have);
            else
                on_frame_in(r, s->frame, s->have);
            s->frames++;
            s->have = s->need = 0;
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    uint8_t mode = data[0];
    static struct run r;
    memset(&r, 0, sizeof(r));
    r.server = mode & FZ_FR_SERVER;
    r.plaintext = mode & FZ_FR_PLAIN;
    r.binding = mode & FZ_FR_BIND;
    r.started = -1;
    data++;
    size--;
    if (!r.server && fz_scram_costly(data, size))
        return -1;
    struct fz_rng rng;
    fz_rng_init(&rng, FZ_FR_SEED(mode));
    fz_users_init();
    size_t mark = fz_arena_mark();

    if (r.server) {
        struct sc_sasl_server_config sc;
        fz_frames_server_cfg(mode, &sc);
        FZ_CHECK(sc_sasl_server_init(&eng, &sc) == 0);
    } else {
        struct sc_sasl_client_config cc;
        fz_frames_client_cfg(mode, &cc);
        FZ_CHECK(sc_sasl_client_init(&eng, &cc) == 0);
    }

    size_t pos = 0;
    int err = 0;
    unsigned st = 0;
    for (unsigned rounds = 0;; rounds++) {
        FZ_CHECK(rounds < 4 * FRAME_MAX + 100000);  /* every round moves a byte */
        st = sc_sasl_state(&eng);
        if (st & SC_SASL_WANT_WRITE) {
            size_t len = 0;
            const uint8_t *p = sc_sasl_sendbuf(&eng, &len);
            FZ_CHECK(p != NULL && len > 0 && fz_inside(p, len, &eng, sizeof(eng)));
            size_t k = fz_slice(&rng, len, len);
            stream_feed(&r, &r.out, p, k, true);
            sc_sasl_sendack(&eng, k);
            continue;
        }
        if (!(st & SC_SASL_WANT_READ))
            break;
        FZ_CHECK(err == 0);
        size_t room = 0;
        uint8_t *p = sc_sasl_recvbuf(&eng, &room);
        FZ_CHECK(p != NULL && room > 0 && fz_inside(p, room, &eng, sizeof(eng)));
        FZ_CHECK(room <= in_rest(&r.in));
        if (pos == size)
            break;  /* the peer went quiet or closed */
        size_t k = fz_slice(&rng, room, size - pos);
        memcpy(p, data + pos, k);
        stream_feed(&r, &r.in, data + pos, k, false);
        pos += k;
        int e = sc_sasl_recvack(&eng, k);
        FZ_CHECK(e == 0 || (e < 0 && e > -SC_ERR_COUNT && e != SC_ERR_AGAIN));
        if (e < 0) {
            err = e;
            FZ_CHECK(sc_sasl_error(&eng) == e);
            FZ_CHECK(sc_sasl_recvack(&eng, 0) == e && sc_sasl_recvack(&eng, 1) == e);
            size_t again = 1;
            FZ_CHECK(sc_sasl_recvbuf(&eng, &again) == NULL && again == 0);
        }
    }

    /* how it ended */
    int e = sc_sasl_error(&eng);
    if (err != 0)
        FZ_CHECK(e == err);
    if (e != 0) {
        FZ_CHECK(e < 0 && e > -SC_ERR_COUNT);
        if (!fz_skip("internal"))
            FZ_CHECK(e != SC_ERR_INTERNAL);
        FZ_CHECK(st & SC_SASL_FAILED);
        const char *m = sc_sasl_errmsg(&eng);
        FZ_CHECK(m != NULL && m[0] != '\0' && strcmp(m, "no error") != 0);
    }
    if (st & SC_SASL_FAILED)
        FZ_CHECK(e != 0);
    if (st & SC_SASL_DONE) {
        FZ_CHECK(e == 0);
        struct sc_sasl_info info;
        FZ_CHECK(sc_sasl_info(&eng, &info) == 0);
        FZ_CHECK(mech_allowed(&r, (int)info.mech));
        if (r.server) {
            FZ_CHECK(r.outcome_ok && fz_known_user(info.user));
        } else {
            FZ_CHECK((int)info.mech == r.started);
            FZ_CHECK(info.channel_bound ==
                     (info.mech == SC_SASL_SCRAM_SHA_256_PLUS ||
                      info.mech == SC_SASL_SCRAM_SHA_1_PLUS));
        }
        FZ_CHECK(sc_sasl_has_layer(&eng) == (info.qop != SC_SASL_QOP_AUTH));
        if (r.plaintext)
            FZ_CHECK(info.qop != SC_SASL_QOP_AUTH);
        size_t len = 1;
        FZ_CHECK(sc_sasl_recvbuf(&eng, &len) == NULL && len == 0);
    }
    if (st & (SC_SASL_DONE | SC_SASL_FAILED)) {
        size_t len = 1;
        FZ_CHECK(sc_sasl_sendbuf(&eng, &len) == NULL && len == 0);
    }
    if (fz_verbose())
        fprintf(stderr, "mode 0x%02x: state 0x%x after %zu of %zu bytes (%u frames in, %u out): "
                        "%s\n",
                mode, st, pos, size, r.in.frames, r.out.frames, sc_sasl_errmsg(&eng));
    sc_sasl_free(&eng);
    fz_arena_check(mark);
    return 0;
}
