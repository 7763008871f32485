/* Writes the seed corpora of the NBD client fuzz targets:
 *
 *     gen_seeds DIR
 *
 * makes DIR/fuzz_nbd_client_handshake/ and DIR/fuzz_nbd_client_replies/
 * (see the two targets for the input layout: a config/mode byte, a slice
 * seed byte, then the server's bytes). The output is deterministic, so
 * regenerating test/fuzz/corpus/ changes nothing unless this file does.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "seed_io.h"
#include "sechan/nbd_proto.h"

#define CAP 16384

struct seed {
    uint8_t b[CAP];
    size_t n;
};

static void need(struct seed *s, size_t k)
{
    if (s->n + k > CAP) {
        fprintf(stderr, "gen_seeds: seed too large\n");
        exit(1);
    }
}

static void u8(struct seed *s, uint8_t v)
{
    need(s, 1);
    s->b[s->n++] = v;
}

static void u16(struct seed *s, uint16_t v)
{
    u8(s, (uint8_t)(v >> 8));
    u8(s, (uint8_t)v);
}

static void u32(struct seed *s, uint32_t v)
{
    u16(s, (uint16_t)(v >> 16));
    u16(s, (uint16_t)v);
}

static void u64(struct seed *s, uint64_t v)
{
    u32(s, (uint32_t)(v >> 32));
    u32(s, (uint32_t)v);
}

static void bytes(struct seed *s, const void *p, size_t n)
{
    need(s, n);
    memcpy(s->b + s->n, p, n);
    s->n += n;
}

static void fill(struct seed *s, uint8_t v, size_t n)
{
    need(s, n);
    memset(s->b + s->n, v, n);
    s->n += n;
}

static void start(struct seed *s, uint8_t cfg, uint8_t slice_seed)
{
    s->n = 0;
    u8(s, cfg);
    u8(s, slice_seed);
}

static const char *outdir;

static void save(const char *target, const char *name, const struct seed *s)
{
    seed_save(outdir, target, name, s->b, s->n);
}

/* ---- handshake pieces (server side) ---- */

static void greeting(struct seed *s, uint16_t flags)
{
    u64(s, SC_NBD_MAGIC);
    u64(s, SC_NBD_OPTS_MAGIC);
    u16(s, flags);
}

#define NEWSTYLE (SC_NBD_FLAG_FIXED_NEWSTYLE | SC_NBD_FLAG_NO_ZEROES)

static void rep(struct seed *s, uint32_t opt, uint32_t type, uint32_t len)
{
    u64(s, SC_NBD_REP_MAGIC);
    u32(s, opt);
    u32(s, type);
    u32(s, len);
}

static void ack(struct seed *s, uint32_t opt)
{
    rep(s, opt, SC_NBD_REP_ACK, 0);
}

static void rep_err(struct seed *s, uint32_t opt, uint32_t type, const char *msg)
{
    rep(s, opt, type, (uint32_t)strlen(msg));
    bytes(s, msg, strlen(msg));
}

static void meta(struct seed *s, uint32_t id)
{
    const char *q = SC_NBD_META_BASE_ALLOCATION;
    rep(s, SC_NBD_OPT_SET_META_CONTEXT, SC_NBD_REP_META_CONTEXT, 4 + (uint32_t)strlen(q));
    u32(s, id);
    bytes(s, q, strlen(q));
}

#define ALL_FLAGS                                                                         \
    (SC_NBD_FLAG_HAS_FLAGS | SC_NBD_FLAG_SEND_FLUSH | SC_NBD_FLAG_SEND_FUA |             \
     SC_NBD_FLAG_SEND_TRIM | SC_NBD_FLAG_SEND_WRITE_ZEROES | SC_NBD_FLAG_SEND_DF |         \
     SC_NBD_FLAG_SEND_RESIZE | SC_NBD_FLAG_SEND_CACHE | SC_NBD_FLAG_SEND_FAST_ZERO)

static void info_export(struct seed *s, uint32_t opt, uint64_t size, uint16_t flags)
{
    rep(s, opt, SC_NBD_REP_INFO, 12);
    u16(s, SC_NBD_INFO_EXPORT);
    u64(s, size);
    u16(s, flags);
}

static void info_desc(struct seed *s, uint32_t opt, const char *d)
{
    rep(s, opt, SC_NBD_REP_INFO, 2 + (uint32_t)strlen(d));
    u16(s, SC_NBD_INFO_DESCRIPTION);
    bytes(s, d, strlen(d));
}

static void info_block(struct seed *s, uint32_t opt, uint32_t min, uint32_t pref, uint32_t max)
{
    rep(s, opt, SC_NBD_REP_INFO, 14);
    u16(s, SC_NBD_INFO_BLOCK_SIZE);
    u32(s, min);
    u32(s, pref);
    u32(s, max);
}

static void server_entry(struct seed *s, const char *name, const char *desc)
{
    rep(s, SC_NBD_OPT_LIST, SC_NBD_REP_SERVER, 4 + (uint32_t)(strlen(name) + strlen(desc)));
    u32(s, (uint32_t)strlen(name));
    bytes(s, name, strlen(name));
    bytes(s, desc, strlen(desc));
}

/* Servers on this machine predate extended headers: they decline. */
static void decline_extended(struct seed *s)
{
    rep_err(s, SC_NBD_OPT_EXTENDED_HEADERS, SC_NBD_REP_ERR_UNSUP, "");
}

/* STRUCTURED_REPLY ack, base:allocation granted, GO with an export. */
static void negotiate(struct seed *s)
{
    decline_extended(s);
    ack(s, SC_NBD_OPT_STRUCTURED_REPLY);
    meta(s, 1);
    ack(s, SC_NBD_OPT_SET_META_CONTEXT);
    info_export(s, SC_NBD_OPT_GO, 1u << 20, ALL_FLAGS);
    ack(s, SC_NBD_OPT_GO);
}

static void handshake_seeds(void)
{
    const char *t = "fuzz_nbd_client_handshake";
    struct seed *s = malloc(sizeof(*s));
    if (s == NULL)
        exit(1);

    start(s, 0x00, 0);
    greeting(s, NEWSTYLE);
    negotiate(s);
    save(t, "go-plain", s);

    s->b[1] = 0x5a;  /* the same, fed in mixed slices */
    save(t, "go-plain-sliced", s);

    start(s, 0x02, 0);  /* TLS required, STARTTLS accepted */
    greeting(s, NEWSTYLE);
    ack(s, SC_NBD_OPT_STARTTLS);
    negotiate(s);
    save(t, "tls-require", s);

    start(s, 0x02, 0);  /* TLS required, refused */
    greeting(s, NEWSTYLE);
    rep_err(s, SC_NBD_OPT_STARTTLS, SC_NBD_REP_ERR_POLICY, "no TLS here");
    save(t, "tls-require-refused", s);

    start(s, 0x01, 0);  /* TLS optional, refused: carry on in clear */
    greeting(s, NEWSTYLE);
    rep_err(s, SC_NBD_OPT_STARTTLS, SC_NBD_REP_ERR_UNSUP, "");
    negotiate(s);
    save(t, "tls-optional-refused", s);

    start(s, 0x81, 0x11);  /* TLS optional, accepted, longest export name */
    greeting(s, NEWSTYLE);
    ack(s, SC_NBD_OPT_STARTTLS);
    negotiate(s);
    save(t, "tls-optional-longname", s);

    start(s, 0x44, 0);  /* LIST, then GO on "exp" with block sizes and a description */
    greeting(s, NEWSTYLE);
    server_entry(s, "exp", "the export");
    server_entry(s, "", "");
    ack(s, SC_NBD_OPT_LIST);
    decline_extended(s);
    ack(s, SC_NBD_OPT_STRUCTURED_REPLY);
    meta(s, 7);
    ack(s, SC_NBD_OPT_SET_META_CONTEXT);
    info_export(s, SC_NBD_OPT_GO, 1u << 30, ALL_FLAGS | SC_NBD_FLAG_READ_ONLY);
    info_block(s, SC_NBD_OPT_GO, 512, 4096, 1u << 25);
    info_desc(s, SC_NBD_OPT_GO, "a disk\nwith\ttabs");
    rep(s, SC_NBD_OPT_GO, SC_NBD_REP_INFO, 5);  /* NBD_INFO_NAME: ignored */
    u16(s, SC_NBD_INFO_NAME);
    bytes(s, "exp", 3);
    ack(s, SC_NBD_OPT_GO);
    save(t, "list-go", s);

    start(s, 0x0e, 0);  /* TLS required + LIST + INFO only */
    greeting(s, NEWSTYLE);
    ack(s, SC_NBD_OPT_STARTTLS);
    server_entry(s, "disk", "");
    ack(s, SC_NBD_OPT_LIST);
    decline_extended(s);
    ack(s, SC_NBD_OPT_STRUCTURED_REPLY);
    meta(s, 1);
    ack(s, SC_NBD_OPT_SET_META_CONTEXT);
    info_export(s, SC_NBD_OPT_INFO, 4096, SC_NBD_FLAG_HAS_FLAGS);
    info_desc(s, SC_NBD_OPT_INFO, "info only");
    ack(s, SC_NBD_OPT_INFO);
    save(t, "tls-list-info", s);

    start(s, 0x10, 0);  /* no structured replies: straight to GO */
    greeting(s, NEWSTYLE);
    info_export(s, SC_NBD_OPT_GO, 65536, 0);
    ack(s, SC_NBD_OPT_GO);
    save(t, "go-simple", s);

    start(s, 0x10, 0);  /* no GO: the EXPORT_NAME fallback, 124 zeroes */
    greeting(s, SC_NBD_FLAG_FIXED_NEWSTYLE);
    rep_err(s, SC_NBD_OPT_GO, SC_NBD_REP_ERR_UNSUP, "what is GO");
    u64(s, 1u << 20);
    u16(s, ALL_FLAGS);
    fill(s, 0, 124);
    save(t, "export-name-zeroes", s);

    start(s, 0x50, 0x03);  /* the same with NO_ZEROES, export "exp" */
    greeting(s, NEWSTYLE);
    rep_err(s, SC_NBD_OPT_GO, SC_NBD_REP_ERR_UNSUP, "");
    u64(s, 512);
    u16(s, SC_NBD_FLAG_HAS_FLAGS | SC_NBD_FLAG_READ_ONLY);
    save(t, "export-name-nozeroes", s);

    start(s, 0x40, 0);  /* unknown export */
    greeting(s, NEWSTYLE);
    decline_extended(s);
    ack(s, SC_NBD_OPT_STRUCTURED_REPLY);
    meta(s, 1);
    ack(s, SC_NBD_OPT_SET_META_CONTEXT);
    rep_err(s, SC_NBD_OPT_GO, SC_NBD_REP_ERR_UNKNOWN, "no such export\x01");
    save(t, "go-unknown", s);

    start(s, 0x00, 0);  /* structured replies and meta refused */
    greeting(s, NEWSTYLE);
    decline_extended(s);
    rep_err(s, SC_NBD_OPT_STRUCTURED_REPLY, SC_NBD_REP_ERR_UNSUP, "");
    info_export(s, SC_NBD_OPT_GO, 1u << 20, ALL_FLAGS);
    ack(s, SC_NBD_OPT_GO);
    save(t, "structured-refused", s);

    start(s, 0x00, 0);
    greeting(s, NEWSTYLE);
    decline_extended(s);
    ack(s, SC_NBD_OPT_STRUCTURED_REPLY);
    rep_err(s, SC_NBD_OPT_SET_META_CONTEXT, SC_NBD_REP_ERR_INVALID, "meta?");
    info_export(s, SC_NBD_OPT_GO, 1u << 20, ALL_FLAGS);
    ack(s, SC_NBD_OPT_GO);
    save(t, "meta-refused", s);

    start(s, 0x00, 0);  /* extended headers accepted: no STRUCTURED_REPLY asked */
    greeting(s, NEWSTYLE);
    ack(s, SC_NBD_OPT_EXTENDED_HEADERS);
    meta(s, 1);
    ack(s, SC_NBD_OPT_SET_META_CONTEXT);
    info_export(s, SC_NBD_OPT_GO, 1u << 20, ALL_FLAGS);
    ack(s, SC_NBD_OPT_GO);
    save(t, "go-extended", s);

    start(s, 0x20, 0);  /* export size of 2^63: refused */
    greeting(s, NEWSTYLE);
    decline_extended(s);
    ack(s, SC_NBD_OPT_STRUCTURED_REPLY);
    info_export(s, SC_NBD_OPT_GO, 1ull << 63, ALL_FLAGS);
    ack(s, SC_NBD_OPT_GO);
    save(t, "huge-size", s);

    start(s, 0x00, 0);  /* oldstyle */
    u64(s, SC_NBD_MAGIC);
    u64(s, SC_NBD_OLDSTYLE_MAGIC);
    u64(s, 1u << 20);
    u32(s, 1);
    fill(s, 0, 124);
    save(t, "oldstyle", s);

    free(s);
}

/* ---- transmission replies ---- */

/* Cookies of the requests the replies target submits first (structured
 * mode; in simple mode there is no BLOCK_STATUS and the rest move up). */
#define CK_READ 0x100u
#define CK_BS 0x201u
#define CK_WRITE 0x302u
#define CK_FLUSH 0x403u
#define CK_TRIM 0x504u
#define CK_WZ 0x605u
#define CK_CACHE 0x706u
#define READ_OFF 8192u
#define BS_LEN 65536u

static void simple(struct seed *s, uint32_t err, uint64_t cookie)
{
    u32(s, SC_NBD_SIMPLE_REPLY_MAGIC);
    u32(s, err);
    u64(s, cookie);
}

static void chunk(struct seed *s, uint16_t flags, uint16_t type, uint64_t cookie, uint32_t len)
{
    u32(s, SC_NBD_STRUCTURED_REPLY_MAGIC);
    u16(s, flags);
    u16(s, type);
    u64(s, cookie);
    u32(s, len);
}

static void data_chunk(struct seed *s, uint16_t flags, uint64_t off, uint32_t len)
{
    chunk(s, flags, SC_NBD_REPLY_TYPE_OFFSET_DATA, CK_READ, 8 + len);
    u64(s, off);
    need(s, len);
    for (uint32_t i = 0; i < len; i++)
        s->b[s->n++] = (uint8_t)(off + i);
}

static void hole_chunk(struct seed *s, uint16_t flags, uint64_t off, uint32_t len)
{
    chunk(s, flags, SC_NBD_REPLY_TYPE_OFFSET_HOLE, CK_READ, 12);
    u64(s, off);
    u32(s, len);
}

static void bs_chunk(struct seed *s, uint16_t flags, const uint32_t *ext, size_t n)
{
    chunk(s, flags, SC_NBD_REPLY_TYPE_BLOCK_STATUS, CK_BS, 4 + 8 * (uint32_t)n);
    u32(s, 1);
    for (size_t i = 0; i < n; i++) {
        u32(s, ext[2 * i]);
        u32(s, ext[2 * i + 1]);
    }
}

static void err_chunk(struct seed *s, uint16_t flags, uint64_t cookie, uint32_t err,
                      const char *msg, const uint64_t *off)
{
    uint16_t mlen = (uint16_t)strlen(msg);
    chunk(s, flags, off ? SC_NBD_REPLY_TYPE_ERROR_OFFSET : SC_NBD_REPLY_TYPE_ERROR, cookie,
          6u + mlen + (off ? 8u : 0u));
    u32(s, err);
    u16(s, mlen);
    bytes(s, msg, mlen);
    if (off)
        u64(s, *off);
}

#define DONE SC_NBD_REPLY_FLAG_DONE

/* WRITE, FLUSH, TRIM, WRITE_ZEROES and CACHE answered, simply and structured. */
static void others(struct seed *s)
{
    simple(s, 0, CK_WRITE);
    chunk(s, DONE, SC_NBD_REPLY_TYPE_NONE, CK_FLUSH, 0);
    simple(s, 0, CK_TRIM);
    chunk(s, DONE, SC_NBD_REPLY_TYPE_NONE, CK_WZ, 0);
    simple(s, SC_NBD_EINVAL, CK_CACHE);
}

static void replies_seeds(void)
{
    const char *t = "fuzz_nbd_client_replies";
    struct seed *s = malloc(sizeof(*s));
    if (s == NULL)
        exit(1);
    static const uint32_t two[] = {32768, 0, 32768, SC_NBD_STATE_HOLE | SC_NBD_STATE_ZERO};

    start(s, 0x00, 0);  /* every request answered well, one chunk each */
    data_chunk(s, DONE, READ_OFF, 4096);
    bs_chunk(s, DONE, two, 2);
    others(s);
    save(t, "all-ok", s);

    s->b[1] = 0x33;
    save(t, "all-ok-sliced", s);

    s->b[0] = 0x10;  /* sends interleaved with the replies */
    s->b[1] = 0x77;
    save(t, "all-ok-interleaved", s);

    s->b[0] = 0x20;  /* each request submitted again once reaped */
    s->b[1] = 0;
    save(t, "all-ok-resubmit", s);

    start(s, 0x00, 0);  /* READ as data + hole + NONE, replies out of order */
    chunk(s, DONE, SC_NBD_REPLY_TYPE_NONE, CK_FLUSH, 0);
    data_chunk(s, 0, READ_OFF + 2048, 2048);
    bs_chunk(s, DONE, two, 2);
    hole_chunk(s, 0, READ_OFF, 2048);
    simple(s, 0, CK_WRITE);
    chunk(s, DONE, SC_NBD_REPLY_TYPE_NONE, CK_READ, 0);
    save(t, "read-split", s);

    start(s, 0x00, 0);  /* READ and BLOCK_STATUS fail with error chunks */
    data_chunk(s, 0, READ_OFF, 512);
    err_chunk(s, DONE, CK_READ, SC_NBD_EIO, "disk on fire", NULL);
    err_chunk(s, 0, CK_BS, SC_NBD_EINVAL, "", NULL);
    chunk(s, DONE, SC_NBD_REPLY_TYPE_NONE, CK_BS, 0);
    simple(s, SC_NBD_ENOSPC, CK_WRITE);
    simple(s, 0, CK_FLUSH);
    save(t, "errors", s);

    start(s, 0x00, 0);  /* NBD_REPLY_TYPE_ERROR_OFFSET inside the read */
    uint64_t off = READ_OFF + 100;
    err_chunk(s, 0, CK_READ, SC_NBD_EIO, "bad sector", &off);
    chunk(s, DONE, SC_NBD_REPLY_TYPE_NONE, CK_READ, 0);
    bs_chunk(s, DONE, two, 2);
    others(s);
    save(t, "error-offset", s);

    start(s, 0x01, 0);  /* REQ_ONE: one extent */
    static const uint32_t one[] = {BS_LEN, SC_NBD_STATE_ZERO};
    bs_chunk(s, DONE, one, 1);
    hole_chunk(s, DONE, READ_OFF, 4096);
    others(s);
    save(t, "bs-req-one", s);

    start(s, 0x0c, 0);  /* 24 extents into room for 16, the last past the end */
    uint32_t many[48];
    for (unsigned i = 0; i < 24; i++) {
        many[2 * i] = i == 23 ? 1u << 20 : 1024;
        many[2 * i + 1] = i & 3u;
    }
    bs_chunk(s, DONE, many, 24);
    data_chunk(s, DONE, READ_OFF, 4096);
    others(s);
    save(t, "bs-many", s);

    start(s, 0x40, 0);  /* READ of 1 byte */
    data_chunk(s, DONE, READ_OFF, 1);
    bs_chunk(s, DONE, two, 2);
    others(s);
    save(t, "read-one", s);

    start(s, 0xc0, 0);  /* READ of 64 KiB as holes, BLOCK_STATUS without DONE then NONE */
    hole_chunk(s, 0, READ_OFF, 32768);
    hole_chunk(s, DONE, READ_OFF + 32768, 32768);
    bs_chunk(s, 0, two, 2);
    chunk(s, DONE, SC_NBD_REPLY_TYPE_NONE, CK_BS, 0);
    others(s);
    save(t, "read-64k-holes", s);

    start(s, 0x00, 0);  /* READ in pieces out of order: joins next, both, previous */
    data_chunk(s, 0, READ_OFF + 3072, 1024);
    data_chunk(s, 0, READ_OFF + 2048, 1024);
    data_chunk(s, 0, READ_OFF, 512);
    hole_chunk(s, 0, READ_OFF + 1024, 1024);
    data_chunk(s, 0, READ_OFF + 512, 512);
    chunk(s, DONE, SC_NBD_REPLY_TYPE_NONE, CK_READ, 0);
    bs_chunk(s, DONE, two, 2);
    others(s);
    save(t, "read-pieces", s);

    start(s, 0x00, 0);  /* READ scattered in 9 pieces: more than the engine tracks */
    for (unsigned i = 0; i < 9; i++)
        data_chunk(s, 0, READ_OFF + 2 * i, 1);
    save(t, "read-scattered", s);

    start(s, 0x02, 0);  /* simple replies only: READ data in a simple reply */
    simple(s, 0, 0x100);
    need(s, 4096);
    for (unsigned i = 0; i < 4096; i++)
        s->b[s->n++] = (uint8_t)(i * 13u);
    simple(s, 0, 0x201);
    simple(s, SC_NBD_EIO, 0x302);
    simple(s, 0, 0x403);
    simple(s, SC_NBD_ENOSPC, 0x504);
    simple(s, 0, 0x605);
    save(t, "simple-all", s);

    start(s, 0x82, 0x21);  /* simple replies, a READ of 513 bytes failing, sliced */
    simple(s, 0, 0x201);
    simple(s, SC_NBD_EIO, 0x100);
    simple(s, 0, 0x605);
    save(t, "simple-read-error", s);

    free(s);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: gen_seeds DIR\n");
        return 2;
    }
    outdir = argv[1];
    if (mkdir(outdir, 0755) != 0 && errno != EEXIST) {
        perror(outdir);
        return 1;
    }
    handshake_seeds();
    replies_seeds();
    return 0;
}
