/* libFuzzer target: the NBD client engine's handshake against a hostile
 * server. The input is
 *
 *   byte 0   the client config:
 *              bits 0-1  TLS policy (0 off, 1 optional, 2 require, 3 off)
 *              bit 2     list_exports
 *              bit 3     info_only
 *              bit 4     no_structured_replies
 *              bit 5     no_block_status
 *              bits 6-7  export name: "", "exp", SC_NBD_NAME_MAX bytes, "a\tb"
 *   byte 1   seed of the slice sizes (0: whole items; otherwise slices of
 *            1, 2, a few or all the bytes the engine offers, mixed)
 *   rest     the server's bytes, fed in slices whenever the engine reads.
 *
 * The driver acks everything the engine sends (in slices too), parses it
 * as a client option stream, and calls tls_done on SC_NBD_WANT_TLS. It
 * stops at FAILED, CLOSED or READY, or at the end of the input (then it
 * reports EOF, which must fail the handshake).
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_util.h"
#include "sechan/nbd.h"

/* ---- the client's option stream, as a server would parse it ---- */

struct opt_parser {
    uint8_t hdr[SC_NBD_OPT_HDR_LEN];
    size_t have;             /* header bytes so far */
    size_t skip;             /* option data still to pass over */
    bool flags_done;
    uint32_t last_opt;
    unsigned options;
};

struct run {
    struct sc_nbd_client_config cfg;
    bool tls_done;
    unsigned exports;
    struct opt_parser op;
};

static void on_option(struct run *r, uint32_t opt, uint32_t len)
{
    struct opt_parser *op = &r->op;
    op->last_opt = opt;
    op->options++;
    /* "STARTTLS or fail; nothing about exports in clear" */
    if (r->cfg.tls == SC_NBD_TLS_REQUIRE && !r->tls_done)
        FZ_CHECK(opt == SC_NBD_OPT_STARTTLS);
    if (r->tls_done)
        FZ_CHECK(opt != SC_NBD_OPT_STARTTLS);
    if (r->cfg.tls == SC_NBD_TLS_OFF)
        FZ_CHECK(opt != SC_NBD_OPT_STARTTLS);
    switch (opt) {
    case SC_NBD_OPT_STARTTLS:
        FZ_CHECK(len == 0);
        break;
    case SC_NBD_OPT_LIST:
        FZ_CHECK(r->cfg.list_exports && len == 0);
        break;
    case SC_NBD_OPT_STRUCTURED_REPLY:
        FZ_CHECK(!r->cfg.no_structured_replies && len == 0);
        break;
    case SC_NBD_OPT_EXTENDED_HEADERS:
        FZ_CHECK(!r->cfg.no_structured_replies && !r->cfg.no_extended_headers && len == 0);
        break;
    case SC_NBD_OPT_SET_META_CONTEXT:
        FZ_CHECK(!r->cfg.no_block_status);
        break;
    case SC_NBD_OPT_GO:
        FZ_CHECK(!r->cfg.info_only);
        break;
    case SC_NBD_OPT_INFO:
    case SC_NBD_OPT_ABORT:
        FZ_CHECK(r->cfg.info_only);
        break;
    case SC_NBD_OPT_EXPORT_NAME:
        FZ_CHECK(r->cfg.tls != SC_NBD_TLS_REQUIRE && !r->cfg.info_only);
        break;
    default:
        FZ_FAIL("the client sent an option it has no business sending");
    }
    FZ_CHECK(len <= 4 + SC_NBD_NAME_MAX + 64);
}

/* Bytes the driver took from sendbuf, in order. */
FZ_NOCOV static void parse_sent(struct run *r, const uint8_t *p, size_t n)
{
    struct opt_parser *op = &r->op;
    while (n > 0) {
        if (op->skip > 0) {
            size_t k = n < op->skip ? n : op->skip;
            op->skip -= k;
            p += k;
            n -= k;
            continue;
        }
        size_t want = op->flags_done ? SC_NBD_OPT_HDR_LEN : 4;
        size_t k = want - op->have < n ? want - op->have : n;
        memcpy(op->hdr + op->have, p, k);
        op->have += k;
        p += k;
        n -= k;
        if (op->have < want)
            continue;
        op->have = 0;
        if (!op->flags_done) {
            uint32_t flags = fz_be32(op->hdr);
            FZ_CHECK(flags & SC_NBD_FLAG_C_FIXED_NEWSTYLE);
            FZ_CHECK((flags & ~(uint32_t)(SC_NBD_FLAG_C_FIXED_NEWSTYLE |
                                          SC_NBD_FLAG_C_NO_ZEROES)) == 0);
            op->flags_done = true;
            continue;
        }
        FZ_CHECK(fz_be64(op->hdr) == SC_NBD_OPTS_MAGIC);
        uint32_t opt = fz_be32(op->hdr + 8), len = fz_be32(op->hdr + 12);
        on_option(r, opt, len);
        op->skip = len;
    }
}

static void on_export(void *arg, const char *name, const char *desc)
{
    struct run *r = arg;
    /* Both must be NUL-terminated within what one reply can carry. */
    FZ_CHECK(strlen(name) <= SC_NBD_OPT_REPLY_MAX);
    FZ_CHECK(strlen(desc) <= SC_NBD_OPT_REPLY_MAX);
    FZ_CHECK(r->cfg.list_exports);
    r->exports++;
}

/* Where the engine may ask to receive handshake bytes: its header buffer
 * or its option scratch (an overrun inside the struct is invisible to
 * ASan, so check the span itself). */
FZ_NOCOV static void check_recv_span(const struct sc_nbd_client *c, const uint8_t *p, size_t room)
{
    FZ_CHECK(p != NULL && room > 0);
    FZ_CHECK(fz_inside(p, room, c->hdr, sizeof(c->hdr)) ||
             fz_inside(p, room, c->scratch, sizeof(c->scratch)));
}

static void check_final(const struct run *r, const struct sc_nbd_client *c, unsigned st)
{
    const struct sc_nbd_export_info *info = sc_nbd_client_info(c);
    FZ_CHECK(memchr(info->description, 0, sizeof(info->description)) != NULL);
    if (st & SC_NBD_FAILED) {
        FZ_CHECK(sc_nbd_client_error(c) < 0);
        const char *m = sc_nbd_client_errmsg(c);
        FZ_CHECK(m != NULL && strlen(m) < 200);
        return;
    }
    FZ_CHECK(sc_nbd_client_error(c) == 0);
    if (st & SC_NBD_CLOSED) {
        /* The handshake only closes after NBD_OPT_INFO + NBD_OPT_ABORT. */
        FZ_CHECK(r->cfg.info_only);
        FZ_CHECK(r->op.last_opt == SC_NBD_OPT_ABORT);
        FZ_CHECK(info->size <= (uint64_t)INT64_MAX);
        if (r->cfg.tls == SC_NBD_TLS_REQUIRE)
            FZ_CHECK(r->tls_done);
        return;
    }
    FZ_CHECK(st & SC_NBD_READY);
    FZ_CHECK(!r->cfg.info_only);
    FZ_CHECK(info->size <= (uint64_t)INT64_MAX);
    if (r->cfg.tls == SC_NBD_TLS_REQUIRE)
        FZ_CHECK(r->tls_done && info->tls);
    FZ_CHECK(info->tls == r->tls_done);
    if (r->cfg.no_structured_replies)
        FZ_CHECK(!info->structured_replies);
    if (info->block_status)
        FZ_CHECK(info->structured_replies && !r->cfg.no_block_status);
    if (info->used_export_name)
        FZ_CHECK(r->op.last_opt == SC_NBD_OPT_EXPORT_NAME);
    else
        FZ_CHECK(r->op.last_opt == SC_NBD_OPT_GO);
    if (info->block_min != 0)
        FZ_CHECK(info->block_min <= info->block_pref && info->block_pref <= info->block_max);
    /* Nothing to send with no request queued. */
    size_t len;
    struct sc_nbd_client *cc = (struct sc_nbd_client *)c;
    (void)sc_nbd_client_sendbuf(cc, &len);
    FZ_CHECK(len == 0);
}

static char long_name[SC_NBD_NAME_MAX + 1];

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    struct run r;
    memset(&r, 0, sizeof(r));
    uint8_t k = data[0];
    r.cfg.tls = (enum sc_nbd_tls_policy)((k & 3u) == 3u ? 0u : (k & 3u));
    r.cfg.list_exports = (k & 0x04u) != 0;
    r.cfg.info_only = (k & 0x08u) != 0;
    r.cfg.no_structured_replies = (k & 0x10u) != 0;
    r.cfg.no_block_status = (k & 0x20u) != 0;
    switch (k >> 6) {
    case 0:
        r.cfg.export_name = NULL;
        break;
    case 1:
        r.cfg.export_name = "exp";
        break;
    case 2:
        memset(long_name, 'n', SC_NBD_NAME_MAX);
        long_name[SC_NBD_NAME_MAX] = '\0';
        r.cfg.export_name = long_name;
        break;
    default:
        r.cfg.export_name = "a\tb";
        break;
    }
    r.cfg.on_export = on_export;
    r.cfg.on_export_arg = &r;

    struct fz_rng rng;
    fz_rng_init(&rng, data[1]);
    data += 2;
    size -= 2;

    /* On the heap, so ASan sees any access past the struct. */
    struct sc_nbd_client *c = malloc(sizeof(*c));
    FZ_CHECK(c != NULL);
    FZ_CHECK(sc_nbd_client_init(c, &r.cfg) == 0);

    size_t pos = 0;
    unsigned st;
    for (;;) {
        st = sc_nbd_client_state(c);
        if (st & (SC_NBD_FAILED | SC_NBD_CLOSED | SC_NBD_READY))
            break;
        if (st & SC_NBD_WANT_TLS) {
            FZ_CHECK(r.cfg.tls != SC_NBD_TLS_OFF && !r.tls_done);
            FZ_CHECK(r.op.last_opt == SC_NBD_OPT_STARTTLS);
            size_t room;
            FZ_CHECK(sc_nbd_client_recvbuf(c, &room) == NULL && room == 0);
            FZ_CHECK(sc_nbd_client_tls_done(c) == 0);
            r.tls_done = true;
            continue;
        }
        if (st & SC_NBD_WANT_WRITE) {
            size_t len;
            const uint8_t *p = sc_nbd_client_sendbuf(c, &len);
            FZ_CHECK(p != NULL && len > 0);
            FZ_CHECK(fz_inside(p, len, c->out, sizeof(c->out)));
            size_t n = fz_slice(&rng, len, len);
            FZ_CHECK(n >= 1 && n <= len);
            parse_sent(&r, p, n);
            sc_nbd_client_sendack(c, n);
            continue;
        }
        FZ_CHECK(st == SC_NBD_WANT_READ);
        size_t room;
        uint8_t *p = sc_nbd_client_recvbuf(c, &room);
        check_recv_span(c, p, room);
        /* The engine must refuse a driver that acks more than it offered
         * (tried on a copy, which fails before touching any buffer). */
        if (!rng.whole && (fz_next(&rng) & 15u) == 0) {
            static struct sc_nbd_client copy;
            memcpy(&copy, c, sizeof(copy));
            FZ_CHECK(sc_nbd_client_recvack(&copy, room + 1) == SC_ERR_INVAL);
            FZ_CHECK(sc_nbd_client_state(&copy) == SC_NBD_FAILED);
        }
        if (pos == size) {
            /* End of input: the server hung up mid-handshake. */
            FZ_CHECK(sc_nbd_client_eof(c) != 0);
            st = sc_nbd_client_state(c);
            FZ_CHECK(st == SC_NBD_FAILED);
            break;
        }
        size_t n = fz_slice(&rng, room, size - pos);
        FZ_CHECK(n >= 1 && n <= room);  /* never ack more than offered */
        memcpy(p, data + pos, n);
        pos += n;
        int e = sc_nbd_client_recvack(c, n);
        unsigned after = sc_nbd_client_state(c);
        FZ_CHECK((e != 0) == (after == SC_NBD_FAILED));
    }
    if (fz_verbose())
        fprintf(stderr, "handshake: state 0x%x after %zu of %zu bytes, tls_done %d, "
                "exports %u, size %llu, flags 0x%x, structured %d, block_status %d: %s\n", st,
                pos, size, r.tls_done, r.exports,
                (unsigned long long)sc_nbd_client_info(c)->size, sc_nbd_client_info(c)->flags,
                sc_nbd_client_info(c)->structured_replies, sc_nbd_client_info(c)->block_status,
                sc_nbd_client_error(c) ? sc_nbd_client_errmsg(c) : "ok");
    check_final(&r, c, st);
    if (!r.cfg.list_exports)
        FZ_CHECK(r.exports == 0);
    free(c);
    return 0;
}
