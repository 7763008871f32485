/* libFuzzer target: the NBD client engine's transmission phase against a
 * hostile server. A scripted good handshake (structured replies, the
 * base:allocation context with id 1, a 1 MiB export with every SEND_* flag)
 * makes the engine READY; then a READ (with DF), a BLOCK_STATUS, a WRITE, a
 * FLUSH, a TRIM, a WRITE_ZEROES and a CACHE are submitted (cookies 0x100,
 * 0x201, ... 0x706) and the input plays the server's replies. The input is
 *
 *   byte 0   mode:
 *              bit 0     BLOCK_STATUS with REQ_ONE
 *              bit 1     simple replies only: the server refuses
 *                        STRUCTURED_REPLY, so no BLOCK_STATUS is sent
 *                        (cookies 0x100 READ, 0x201 WRITE, ... 0x605)
 *              bits 2-3  max_extents: 1, 2, 4, 16
 *              bit 4     interleave: the driver sends in slices between
 *                        reply slices (like a socket with partial writes)
 *                        instead of sending everything first
 *              bit 5     resubmit: each reaped request is submitted again
 *                        (fresh buffers, new cookie) up to 16 requests
 *              bits 6-7  READ length: 4096, 1, 513, 65536
 *   byte 1   seed of the slice sizes (0: whole items)
 *   rest     the server's replies.
 *
 * Before that, requests the export does not allow must be refused without
 * a trace, and a full window must answer SC_ERR_BUSY.
 *
 * Buffers belong to the caller and are freed when their completion is
 * reaped, as a real caller would; guard bytes surround every buffer and
 * every extents array. Checked: no guard is touched, every completion
 * matches one submitted cookie exactly once, nr_extents <= max_extents,
 * a successful READ had every byte of its buffer filled by the reply,
 * a WRITE is not completed while its payload is still being sent, and
 * the requests on the wire are exactly the ones submitted.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_util.h"
#include "sechan/nbd.h"

#define GUARD 64u            /* guard bytes each side of a buffer */
#define GUARD_EXT 4u         /* guard extents each side of an extents array */
#define GUARD_BYTE 0xccu
#define FILL_BYTE 0xa5u      /* a READ buffer before the reply */
#define MAX_REQS 16u
#define EXPORT_SIZE (1u << 20)

struct hreq {
    struct sc_nbd_request r;
    uint64_t cookie;
    uint8_t *mem;            /* READ/WRITE: guard + data + guard */
    uint8_t *marked;         /* READ: 1 where a reply byte was stored */
    struct sc_nbd_extent *ext_mem;  /* BLOCK_STATUS: guards + max + guards */
    uint64_t payload_sent;   /* WRITE: payload bytes the driver sent */
    bool hdr_sent;           /* its request header went out */
    bool live;               /* submitted, not reaped */
};

struct run {
    struct sc_nbd_client *c;
    struct fz_rng rng;
    uint8_t mode;
    struct hreq reqs[MAX_REQS];
    unsigned nreqs, submitted, reaped;
    /* the request stream, as the server would parse it */
    uint8_t hdr[SC_NBD_REQUEST_LEN];
    size_t have;
    struct hreq *payload_of;  /* WRITE whose payload is on the wire */
    uint64_t payload_left;
    bool disc_seen;
    uint8_t wire[4096];       /* where sent payload bytes are copied */
    bool skip_read_coverage;  /* SC_FUZZ_SKIP=read-coverage */
    bool skip_write_inflight; /* SC_FUZZ_SKIP=write-inflight */
    bool read_freed;          /* SC_FUZZ_SKIP=write-inflight-asan: and send the rest anyway */
};

static const uint8_t ext_guard_pattern = GUARD_BYTE;

/* ---- the scripted handshake ---- */

static size_t put16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
    return 2;
}

static size_t put32(uint8_t *p, uint32_t v)
{
    put16(p, (uint16_t)(v >> 16));
    put16(p + 2, (uint16_t)v);
    return 4;
}

static size_t put64(uint8_t *p, uint64_t v)
{
    put32(p, (uint32_t)(v >> 32));
    put32(p + 4, (uint32_t)v);
    return 8;
}

static size_t opt_reply(uint8_t *p, uint32_t opt, uint32_t type, const void *data, uint32_t len)
{
    size_t n = put64(p, SC_NBD_REP_MAGIC);
    n += put32(p + n, opt);
    n += put32(p + n, type);
    n += put32(p + n, len);
    if (len > 0)
        memcpy(p + n, data, len);
    return n + len;
}

#define EXPORT_FLAGS                                                                      \
    (SC_NBD_FLAG_HAS_FLAGS | SC_NBD_FLAG_SEND_FLUSH | SC_NBD_FLAG_SEND_FUA |             \
     SC_NBD_FLAG_SEND_TRIM | SC_NBD_FLAG_SEND_WRITE_ZEROES | SC_NBD_FLAG_SEND_DF |         \
     SC_NBD_FLAG_SEND_RESIZE | SC_NBD_FLAG_SEND_CACHE | SC_NBD_FLAG_SEND_FAST_ZERO)

static size_t server_handshake(uint8_t *p, bool structured)
{
    size_t n = put64(p, SC_NBD_MAGIC);
    n += put64(p + n, SC_NBD_OPTS_MAGIC);
    n += put16(p + n, SC_NBD_FLAG_FIXED_NEWSTYLE | SC_NBD_FLAG_NO_ZEROES);
    /* This target fuzzes compact replies: the server declines extended
     * headers, as every server on this machine does. */
    n += opt_reply(p + n, SC_NBD_OPT_EXTENDED_HEADERS, SC_NBD_REP_ERR_UNSUP, NULL, 0);
    if (!structured) {
        n += opt_reply(p + n, SC_NBD_OPT_STRUCTURED_REPLY, SC_NBD_REP_ERR_UNSUP, NULL, 0);
    } else {
        n += opt_reply(p + n, SC_NBD_OPT_STRUCTURED_REPLY, SC_NBD_REP_ACK, NULL, 0);
        uint8_t meta[4 + sizeof(SC_NBD_META_BASE_ALLOCATION) - 1];
        put32(meta, 1);
        memcpy(meta + 4, SC_NBD_META_BASE_ALLOCATION, sizeof(meta) - 4);
        n += opt_reply(p + n, SC_NBD_OPT_SET_META_CONTEXT, SC_NBD_REP_META_CONTEXT, meta,
                       (uint32_t)sizeof(meta));
        n += opt_reply(p + n, SC_NBD_OPT_SET_META_CONTEXT, SC_NBD_REP_ACK, NULL, 0);
    }
    uint8_t info[12];
    put16(info, SC_NBD_INFO_EXPORT);
    put64(info + 2, EXPORT_SIZE);
    put16(info + 10, EXPORT_FLAGS);
    n += opt_reply(p + n, SC_NBD_OPT_GO, SC_NBD_REP_INFO, info, sizeof(info));
    n += opt_reply(p + n, SC_NBD_OPT_GO, SC_NBD_REP_ACK, NULL, 0);
    return n;
}

static void handshake(struct sc_nbd_client *c, bool structured)
{
    static const struct sc_nbd_client_config cfg = {.export_name = "", .tls = SC_NBD_TLS_OFF};
    uint8_t script[256];
    size_t len = server_handshake(script, structured), pos = 0;
    FZ_CHECK(sc_nbd_client_init(c, &cfg) == 0);
    for (;;) {
        unsigned st = sc_nbd_client_state(c);
        if (st & SC_NBD_READY)
            break;
        FZ_CHECK(!(st & (SC_NBD_FAILED | SC_NBD_CLOSED | SC_NBD_WANT_TLS)));
        size_t n;
        if (st & SC_NBD_WANT_WRITE) {
            FZ_CHECK(sc_nbd_client_sendbuf(c, &n) != NULL && n > 0);
            sc_nbd_client_sendack(c, n);
            continue;
        }
        uint8_t *p = sc_nbd_client_recvbuf(c, &n);
        FZ_CHECK(p != NULL && n > 0 && n <= len - pos);
        memcpy(p, script + pos, n);
        pos += n;
        FZ_CHECK(sc_nbd_client_recvack(c, n) == 0);
    }
    FZ_CHECK(pos == len);
    const struct sc_nbd_export_info *info = sc_nbd_client_info(c);
    FZ_CHECK(info->structured_replies == structured && info->block_status == structured &&
             info->size == EXPORT_SIZE && info->flags == EXPORT_FLAGS);
}

/* ---- requests ---- */

static size_t max_extents(uint8_t mode)
{
    static const size_t m[4] = {1, 2, 4, 16};
    return m[(mode >> 2) & 3u];
}

static uint32_t read_len(uint8_t mode)
{
    static const uint32_t l[4] = {4096, 1, 513, 65536};
    return l[mode >> 6];
}

static void submit(struct run *run, uint16_t type)
{
    if (run->nreqs == MAX_REQS)
        return;
    struct hreq *h = &run->reqs[run->nreqs];
    memset(h, 0, sizeof(*h));
    h->r.type = type;
    h->r.user = h;
    switch (type) {
    case SC_NBD_CMD_READ:
        h->r.offset = 8192;
        h->r.length = read_len(run->mode);
        h->r.flags = (run->mode & 2u) ? 0 : SC_NBD_CMD_FLAG_DF;
        h->mem = malloc(GUARD + h->r.length + GUARD);
        h->marked = calloc(1, h->r.length);
        FZ_CHECK(h->mem != NULL && h->marked != NULL);
        memset(h->mem, GUARD_BYTE, GUARD);
        memset(h->mem + GUARD, FILL_BYTE, h->r.length);
        memset(h->mem + GUARD + h->r.length, GUARD_BYTE, GUARD);
        h->r.buf = h->mem + GUARD;
        break;
    case SC_NBD_CMD_WRITE:
        h->r.offset = 512;
        h->r.length = 1024;
        h->r.flags = SC_NBD_CMD_FLAG_FUA;
        h->mem = malloc(GUARD + h->r.length + GUARD);
        FZ_CHECK(h->mem != NULL);
        memset(h->mem, GUARD_BYTE, GUARD);
        for (uint32_t i = 0; i < h->r.length; i++)
            h->mem[GUARD + i] = (uint8_t)(i * 7u + 3u);
        memset(h->mem + GUARD + h->r.length, GUARD_BYTE, GUARD);
        h->r.buf = h->mem + GUARD;
        break;
    case SC_NBD_CMD_BLOCK_STATUS: {
        h->r.offset = 4096;
        h->r.length = 65536;
        h->r.flags = (run->mode & 1u) ? SC_NBD_CMD_FLAG_REQ_ONE : 0;
        h->r.max_extents = max_extents(run->mode);
        size_t total = GUARD_EXT + h->r.max_extents + GUARD_EXT;
        h->ext_mem = malloc(total * sizeof(struct sc_nbd_extent));
        FZ_CHECK(h->ext_mem != NULL);
        memset(h->ext_mem, ext_guard_pattern, total * sizeof(struct sc_nbd_extent));
        h->r.extents = h->ext_mem + GUARD_EXT;
        break;
    }
    case SC_NBD_CMD_TRIM:
        h->r.offset = EXPORT_SIZE - 4096;
        h->r.length = 4096;
        break;
    case SC_NBD_CMD_WRITE_ZEROES:
        h->r.offset = 0;
        h->r.length = EXPORT_SIZE;
        h->r.flags = SC_NBD_CMD_FLAG_NO_HOLE | SC_NBD_CMD_FLAG_FAST_ZERO | SC_NBD_CMD_FLAG_FUA;
        break;
    case SC_NBD_CMD_CACHE:
        h->r.offset = 12345;
        h->r.length = 1;
        break;
    default:  /* FLUSH */
        break;
    }
    FZ_CHECK(sc_nbd_client_submit(run->c, &h->r, &h->cookie) == 0);
    h->live = true;
    run->nreqs++;
    run->submitted++;
}

FZ_NOCOV /* Requests the export does not allow are refused and leave no trace; a
 * full window answers SC_ERR_BUSY (tried on a copy of the engine). */
static void check_refusals(struct run *run)
{
    struct sc_nbd_client *c = run->c;
    uint8_t b[8];
    struct sc_nbd_extent e[1];
    const bool bs = sc_nbd_client_info(c)->block_status;
    const struct sc_nbd_request bad[] = {
        {.type = SC_NBD_CMD_READ, .offset = EXPORT_SIZE, .length = 1, .buf = b},
        {.type = SC_NBD_CMD_READ, .offset = EXPORT_SIZE - 4, .length = 8, .buf = b},
        {.type = SC_NBD_CMD_READ, .offset = UINT64_MAX, .length = 8, .buf = b},
        {.type = SC_NBD_CMD_READ, .offset = 0, .length = 0, .buf = b},
        {.type = SC_NBD_CMD_READ, .offset = 0, .length = 8, .buf = NULL},
        {.type = SC_NBD_CMD_READ, .flags = SC_NBD_CMD_FLAG_FUA, .length = 8, .buf = b},
        {.type = SC_NBD_CMD_WRITE, .flags = SC_NBD_CMD_FLAG_REQ_ONE, .length = 8, .buf = b},
        {.type = SC_NBD_CMD_FLUSH, .length = 1},
        {.type = SC_NBD_CMD_FLUSH, .offset = 1},
        {.type = SC_NBD_CMD_DISC},
        {.type = 99, .length = 1},
        {.type = SC_NBD_CMD_BLOCK_STATUS, .length = 8, .extents = NULL, .max_extents = 1},
        {.type = SC_NBD_CMD_BLOCK_STATUS, .length = 8, .extents = e, .max_extents = 0},
        {.type = SC_NBD_CMD_BLOCK_STATUS, .flags = SC_NBD_CMD_FLAG_FUA, .length = 8,
         .extents = e, .max_extents = 1},
        {.type = SC_NBD_CMD_BLOCK_STATUS, .length = bs ? 0 : 8, .extents = e, .max_extents = 1},
        {.type = SC_NBD_CMD_TRIM, .length = 0},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        uint64_t cookie = 0x5a5a;
        FZ_CHECK(sc_nbd_client_submit(c, &bad[i], &cookie) == SC_ERR_INVAL);
        FZ_CHECK(cookie == 0x5a5a);
    }
    size_t len;
    FZ_CHECK(sc_nbd_client_in_flight(c) == 0);
    FZ_CHECK(sc_nbd_client_sendbuf(c, &len) == NULL && len == 0);

    static struct sc_nbd_client copy;
    memcpy(&copy, c, sizeof(copy));
    const struct sc_nbd_request flush = {.type = SC_NBD_CMD_FLUSH};
    for (unsigned i = 0; i < SC_NBD_WINDOW; i++)
        FZ_CHECK(sc_nbd_client_submit(&copy, &flush, NULL) == 0);
    FZ_CHECK(sc_nbd_client_submit(&copy, &flush, NULL) == SC_ERR_BUSY);
    FZ_CHECK(sc_nbd_client_in_flight(&copy) == SC_NBD_WINDOW);
}

static bool all_bytes(const void *p, uint8_t v, size_t n)
{
    const uint8_t *b = p;
    for (size_t i = 0; i < n; i++) {
        if (b[i] != v)
            return false;
    }
    return true;
}

FZ_NOCOV static void check_guards(const struct hreq *h)
{
    if (h->mem != NULL) {
        FZ_CHECK(all_bytes(h->mem, GUARD_BYTE, GUARD));
        FZ_CHECK(all_bytes(h->mem + GUARD + h->r.length, GUARD_BYTE, GUARD));
    }
    if (h->ext_mem != NULL) {
        FZ_CHECK(all_bytes(h->ext_mem, GUARD_BYTE, GUARD_EXT * sizeof(*h->ext_mem)));
        FZ_CHECK(all_bytes(h->ext_mem + GUARD_EXT + h->r.max_extents, GUARD_BYTE,
                           GUARD_EXT * sizeof(*h->ext_mem)));
    }
}

/* A WRITE source is read-only to the engine (checked at completion). */
FZ_NOCOV static void check_write_source(const struct hreq *h)
{
    if (h->r.type == SC_NBD_CMD_WRITE && h->mem != NULL) {
        for (uint32_t i = 0; i < h->r.length; i++)
            FZ_CHECK(h->mem[GUARD + i] == (uint8_t)(i * 7u + 3u));
    }
}

FZ_NOCOV static void check_all_guards(const struct run *run)
{
    for (unsigned i = 0; i < run->nreqs; i++) {
        if (run->reqs[i].live)
            check_guards(&run->reqs[i]);
    }
}

static void release(struct hreq *h)
{
    free(h->mem);
    free(h->marked);
    free(h->ext_mem);
    h->mem = h->marked = NULL;
    h->ext_mem = NULL;
    h->r.buf = NULL;
    h->r.extents = NULL;
}

/* Every byte of a successful READ came from its reply: stored through
 * recvbuf (marked) or zeroed for a hole (no longer FILL_BYTE). */
FZ_NOCOV static void check_read_filled(const struct hreq *h)
{
    const uint8_t *d = h->mem + GUARD;
    for (uint32_t i = 0; i < h->r.length; i++) {
        if (!h->marked[i] && d[i] == FILL_BYTE) {
            fprintf(stderr, "READ reported success but byte %u of %u was never written\n", i,
                    h->r.length);
            FZ_FAIL("a successful READ left part of the buffer unwritten");
        }
    }
}

static void on_completion(struct run *run, const struct sc_nbd_completion *cp)
{
    struct hreq *h = cp->user;
    FZ_CHECK(h >= run->reqs && h < run->reqs + run->nreqs);
    FZ_CHECK(h->live);             /* each request completes once */
    FZ_CHECK(cp->cookie == h->cookie);
    FZ_CHECK(cp->error == 0 || cp->error == SC_ERR_REMOTE);
    FZ_CHECK((cp->error == 0) == (cp->nbd_error == 0));
    check_guards(h);
    check_write_source(h);
    if (h->r.type == SC_NBD_CMD_BLOCK_STATUS) {
        FZ_CHECK(cp->nr_extents <= h->r.max_extents);
        if (cp->error == 0) {
            FZ_CHECK(cp->nr_extents >= 1);
            if (h->r.flags & SC_NBD_CMD_FLAG_REQ_ONE)
                FZ_CHECK(cp->nr_extents == 1);
            uint64_t sum = 0;
            for (size_t i = 0; i < cp->nr_extents; i++) {
                FZ_CHECK(h->r.extents[i].length > 0);
                sum += h->r.extents[i].length;
            }
            FZ_CHECK(sum <= h->r.length);  /* reported extents stay inside the request */
        }
        for (size_t i = cp->nr_extents; i < h->r.max_extents; i++)
            FZ_CHECK(all_bytes(&h->r.extents[i], GUARD_BYTE, sizeof(h->r.extents[i])));
    } else {
        FZ_CHECK(cp->nr_extents == 0);
    }
    if (h->r.type == SC_NBD_CMD_READ && cp->error == 0 && !run->skip_read_coverage) {
        check_read_filled(h);
    }
    if (h->r.type == SC_NBD_CMD_WRITE && !run->skip_write_inflight) {
        /* The caller may free the source once the WRITE completes, so the
         * engine must be done sending it. */
        if (h->payload_sent != h->r.length)
            fprintf(stderr, "WRITE completed with %llu of %u payload bytes sent\n",
                    (unsigned long long)h->payload_sent, h->r.length);
        FZ_CHECK(h->payload_sent == h->r.length);
    }
    if (fz_verbose())
        fprintf(stderr, "replies: reaped type %u cookie 0x%llx error %d nbd_error %u "
                "extents %zu\n", h->r.type, (unsigned long long)cp->cookie, cp->error,
                cp->nbd_error, cp->nr_extents);
    h->live = false;
    run->reaped++;
    uint16_t type = h->r.type;
    release(h);
    if (run->mode & 0x20u)
        submit(run, type);
}

static void reap_all(struct run *run)
{
    struct sc_nbd_completion cp;
    while (sc_nbd_client_reap(run->c, &cp) == 1)
        on_completion(run, &cp);
    FZ_CHECK(sc_nbd_client_in_flight(run->c) == run->submitted - run->reaped);
}

/* ---- the request stream ---- */

/* Cookies are never reused, so a reaped request is still found. */
FZ_NOCOV static struct hreq *by_cookie(struct run *run, uint64_t cookie)
{
    for (unsigned i = 0; i < run->nreqs; i++) {
        if (run->reqs[i].cookie == cookie)
            return &run->reqs[i];
    }
    return NULL;
}

FZ_NOCOV static void parse_sent(struct run *run, const uint8_t *p, size_t n)
{
    while (n > 0) {
        FZ_CHECK(!run->disc_seen);  /* nothing after NBD_CMD_DISC */
        if (run->payload_left > 0) {
            struct hreq *h = run->payload_of;
            size_t k = n < run->payload_left ? n : (size_t)run->payload_left;
            FZ_CHECK(k <= sizeof(run->wire));
            if (h->live) {
                /* Send them, as write() would, and they are the caller's. */
                memcpy(run->wire, p, k);
                FZ_CHECK(memcmp(run->wire, h->mem + GUARD + h->payload_sent, k) == 0);
            } else if (!run->skip_write_inflight || run->read_freed) {
                /* The caller freed the buffer when the WRITE completed:
                 * ASan reports this read. */
                memcpy(run->wire, p, k);
            }
            h->payload_sent += k;
            run->payload_left -= k;
            p += k;
            n -= k;
            continue;
        }
        size_t k = SC_NBD_REQUEST_LEN - run->have < n ? SC_NBD_REQUEST_LEN - run->have : n;
        memcpy(run->hdr + run->have, p, k);
        run->have += k;
        p += k;
        n -= k;
        if (run->have < SC_NBD_REQUEST_LEN)
            continue;
        run->have = 0;
        FZ_CHECK(fz_be32(run->hdr) == SC_NBD_REQUEST_MAGIC);
        uint16_t flags = fz_be16(run->hdr + 4), type = fz_be16(run->hdr + 6);
        uint64_t cookie = fz_be64(run->hdr + 8), off = fz_be64(run->hdr + 16);
        uint32_t len = fz_be32(run->hdr + 24);
        if (type == SC_NBD_CMD_DISC) {
            FZ_CHECK(flags == 0 && off == 0 && len == 0);
            run->disc_seen = true;
            continue;
        }
        /* Only submitted requests go out, each once, exactly as submitted
         * (found even if already reaped, so a regression of the "completed
         * while still being sent" bug is still parsed correctly). */
        struct hreq *h = by_cookie(run, cookie);
        FZ_CHECK(h != NULL);
        FZ_CHECK(!h->hdr_sent);
        h->hdr_sent = true;
        FZ_CHECK(h->r.type == type && h->r.flags == flags && h->r.offset == off &&
                 h->r.length == len);
        if (type == SC_NBD_CMD_WRITE) {
            run->payload_of = h;
            run->payload_left = len;
        }
    }
}

/* Ack one slice (all of it unless interleaving) of what the engine sends. */
static void send_some(struct run *run, bool all)
{
    size_t len;
    const uint8_t *p = sc_nbd_client_sendbuf(run->c, &len);
    FZ_CHECK(p != NULL && len > 0);
    size_t n = all ? len : fz_slice(&run->rng, len, len);
    FZ_CHECK(n >= 1 && n <= len);
    parse_sent(run, p, n);  /* reads the bytes, as write() would */
    sc_nbd_client_sendack(run->c, n);
}

/* Mark the READ bytes a recvbuf span is about to receive. */
FZ_NOCOV static void mark_span(struct run *run, const uint8_t *p, size_t n)
{
    for (unsigned i = 0; i < run->nreqs; i++) {
        struct hreq *h = &run->reqs[i];
        if (!h->live || h->r.type != SC_NBD_CMD_READ)
            continue;
        const uint8_t *d = h->mem + GUARD;
        if (fz_inside(p, n, d, h->r.length)) {
            memset(h->marked + (size_t)(p - d), 1, n);
            return;
        }
    }
}

/* The engine receives into its own header/scratch or a live READ buffer. */
FZ_NOCOV static void check_recv_span(struct run *run, const uint8_t *p, size_t room)
{
    const struct sc_nbd_client *c = run->c;
    if (fz_inside(p, room, c->hdr, sizeof(c->hdr)) ||
        fz_inside(p, room, c->scratch, sizeof(c->scratch)))
        return;
    for (unsigned i = 0; i < run->nreqs; i++) {
        const struct hreq *h = &run->reqs[i];
        if (h->live && h->r.type == SC_NBD_CMD_READ &&
            fz_inside(p, room, h->mem + GUARD, h->r.length))
            return;
    }
    FZ_FAIL("recvbuf points outside the engine and the live READ buffers");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    struct run *run = calloc(1, sizeof(*run));
    FZ_CHECK(run != NULL);
    run->mode = data[0];
    run->skip_read_coverage = fz_skip("read-coverage");
    run->skip_write_inflight = fz_skip("write-inflight");
    run->read_freed = fz_skip("write-inflight-asan");
    fz_rng_init(&run->rng, data[1]);
    data += 2;
    size -= 2;
    const bool interleave = (run->mode & 0x10u) != 0;

    run->c = malloc(sizeof(*run->c));
    FZ_CHECK(run->c != NULL);
    const bool structured = (run->mode & 2u) == 0;
    handshake(run->c, structured);
    check_refusals(run);

    submit(run, SC_NBD_CMD_READ);
    if (structured)
        submit(run, SC_NBD_CMD_BLOCK_STATUS);
    submit(run, SC_NBD_CMD_WRITE);
    submit(run, SC_NBD_CMD_FLUSH);
    submit(run, SC_NBD_CMD_TRIM);
    submit(run, SC_NBD_CMD_WRITE_ZEROES);
    submit(run, SC_NBD_CMD_CACHE);

    size_t pos = 0;
    for (;;) {
        unsigned st = sc_nbd_client_state(run->c);
        if (st & (SC_NBD_FAILED | SC_NBD_CLOSED))
            break;
        FZ_CHECK(st & SC_NBD_READY);
        if ((st & SC_NBD_WANT_WRITE) &&
            (!interleave || pos == size || (fz_next(&run->rng) & 1u))) {
            send_some(run, !interleave);
            continue;
        }
        if (pos == size)
            break;
        size_t room;
        uint8_t *p = sc_nbd_client_recvbuf(run->c, &room);
        FZ_CHECK(p != NULL && room > 0);
        check_recv_span(run, p, room);
        size_t n = fz_slice(&run->rng, room, size - pos);
        FZ_CHECK(n >= 1 && n <= room);  /* never ack more than offered */
        mark_span(run, p, n);
        memcpy(p, data + pos, n);
        pos += n;
        int e = sc_nbd_client_recvack(run->c, n);
        FZ_CHECK((e != 0) == (sc_nbd_client_state(run->c) == SC_NBD_FAILED));
        check_all_guards(run);
        reap_all(run);
    }

    /* End of the replies: disconnect cleanly unless the engine failed. */
    reap_all(run);
    if (fz_verbose())
        fprintf(stderr, "replies: state 0x%x after %zu of %zu bytes, %u submitted, %u reaped: "
                "%s\n", sc_nbd_client_state(run->c), pos, size, run->submitted, run->reaped,
                sc_nbd_client_error(run->c) ? sc_nbd_client_errmsg(run->c) : "ok");
    if (!(sc_nbd_client_state(run->c) & SC_NBD_FAILED)) {
        FZ_CHECK(sc_nbd_client_disconnect(run->c) == 0);
        for (int i = 0; i < 100000 && (sc_nbd_client_state(run->c) & SC_NBD_WANT_WRITE); i++)
            send_some(run, true);
        FZ_CHECK(sc_nbd_client_state(run->c) == SC_NBD_CLOSED);
        FZ_CHECK(run->disc_seen);
        FZ_CHECK(sc_nbd_client_eof(run->c) == 0);
    } else {
        FZ_CHECK(sc_nbd_client_error(run->c) < 0);
        FZ_CHECK(sc_nbd_client_submit(run->c, &(struct sc_nbd_request){.type = SC_NBD_CMD_FLUSH},
                                      NULL) != 0);
    }
    check_all_guards(run);
    for (unsigned i = 0; i < run->nreqs; i++) {
        check_write_source(&run->reqs[i]);
        release(&run->reqs[i]);
    }
    free(run->c);
    free(run);
    return 0;
}
