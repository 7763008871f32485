/* The NBD client engine's transmission phase: a fixed window of requests,
 * cookies, and replies (simple and structured) checked against the request
 * they answer before a byte lands in the caller's buffer. */
#include <inttypes.h>
#include <string.h>

#include "nbd_client_int.h"
#include "nbd_wire.h"

#define COOKIE_SLOT(ck) ((unsigned)((ck) & 0xffu))

void nbd_client_tx_start(struct sc_nbd_client *c)
{
    c->rx_slot = -1;
    c->tx_slot = -1;
    nbd_client_expect(c, c->hdr, SC_NBD_SIMPLE_REPLY_LEN, CS_READY);
    c->rx_state = RX_HDR;
}

static void rx_next(struct sc_nbd_client *c, unsigned rx, void *p, size_t n)
{
    c->rx_state = rx;
    c->in_ptr = p;
    c->in_need = n;
}

static void rx_reset(struct sc_nbd_client *c)
{
    c->rx_slot = -1;
    rx_next(c, RX_HDR, c->hdr, SC_NBD_SIMPLE_REPLY_LEN);
}

/* ---- submitting ---- */

static bool cmd_allowed(const struct sc_nbd_export_info *in, uint16_t type, uint16_t flags)
{
    uint16_t f = in->flags;
    bool writes = type == SC_NBD_CMD_WRITE || type == SC_NBD_CMD_TRIM ||
                  type == SC_NBD_CMD_WRITE_ZEROES;
    if (writes && (f & SC_NBD_FLAG_READ_ONLY))
        return false;
    switch (type) {
    case SC_NBD_CMD_READ:
    case SC_NBD_CMD_WRITE:
        break;
    case SC_NBD_CMD_FLUSH:
        if (!(f & SC_NBD_FLAG_SEND_FLUSH))
            return false;
        break;
    case SC_NBD_CMD_TRIM:
        if (!(f & SC_NBD_FLAG_SEND_TRIM))
            return false;
        break;
    case SC_NBD_CMD_WRITE_ZEROES:
        if (!(f & SC_NBD_FLAG_SEND_WRITE_ZEROES))
            return false;
        break;
    case SC_NBD_CMD_CACHE:
        if (!(f & SC_NBD_FLAG_SEND_CACHE))
            return false;
        break;
    case SC_NBD_CMD_BLOCK_STATUS:
        if (!in->block_status)
            return false;
        break;
    default:
        return false;
    }
    uint16_t ok = 0;
    if (writes)
        ok |= (f & SC_NBD_FLAG_SEND_FUA) ? SC_NBD_CMD_FLAG_FUA : 0;
    if (type == SC_NBD_CMD_WRITE_ZEROES) {
        ok |= SC_NBD_CMD_FLAG_NO_HOLE;
        ok |= (f & SC_NBD_FLAG_SEND_FAST_ZERO) ? SC_NBD_CMD_FLAG_FAST_ZERO : 0;
    }
    if (type == SC_NBD_CMD_READ && (f & SC_NBD_FLAG_SEND_DF) && in->structured_replies)
        ok |= SC_NBD_CMD_FLAG_DF;
    if (type == SC_NBD_CMD_BLOCK_STATUS)
        ok |= SC_NBD_CMD_FLAG_REQ_ONE;
    return (flags & ~ok) == 0;
}

int sc_nbd_client_submit(struct sc_nbd_client *c, const struct sc_nbd_request *req,
                         uint64_t *cookie)
{
    if (c->error != 0)
        return c->error;
    if (c->state != CS_READY || c->disc_queued)
        return SC_ERR_STATE;
    const struct sc_nbd_export_info *in = &c->info;
    if (!cmd_allowed(in, req->type, req->flags))
        return SC_ERR_INVAL;
    bool ranged = req->type != SC_NBD_CMD_FLUSH;
    if (ranged) {
        if (req->length == 0 || req->offset > in->size || req->length > in->size - req->offset)
            return SC_ERR_INVAL;
        if (in->block_min > 1 && (req->offset % in->block_min || req->length % in->block_min))
            return SC_ERR_INVAL;
        if ((req->type == SC_NBD_CMD_READ || req->type == SC_NBD_CMD_WRITE) &&
            in->block_max != 0 && req->length > in->block_max)
            return SC_ERR_INVAL;
    } else if (req->offset != 0 || req->length != 0) {
        return SC_ERR_INVAL;
    }
    if ((req->type == SC_NBD_CMD_READ || req->type == SC_NBD_CMD_WRITE) && req->buf == NULL)
        return SC_ERR_INVAL;
    if (req->type == SC_NBD_CMD_BLOCK_STATUS && (req->extents == NULL || req->max_extents == 0))
        return SC_ERR_INVAL;

    int idx = -1;
    for (unsigned i = 0; i < SC_NBD_WINDOW; i++) {
        if (c->slots[i].state == SLOT_FREE) {
            idx = (int)i;
            break;
        }
    }
    if (idx < 0)
        return SC_ERR_BUSY;
    struct sc_nbd_slot *s = &c->slots[idx];
    memset(s, 0, sizeof(*s));
    s->req = *req;
    s->cookie = (uint64_t)++c->generation << 8 | (unsigned)idx;
    s->state = SLOT_QUEUED;
    c->sendq[(c->sendq_head + c->sendq_len) % SC_NBD_WINDOW] = (uint8_t)idx;
    c->sendq_len++;
    c->in_flight++;
    if (cookie != NULL)
        *cookie = s->cookie;
    return 0;
}

unsigned sc_nbd_client_in_flight(const struct sc_nbd_client *c)
{
    return c->in_flight;
}

int sc_nbd_client_reap(struct sc_nbd_client *c, struct sc_nbd_completion *out)
{
    for (unsigned i = 0; i < SC_NBD_WINDOW; i++) {
        struct sc_nbd_slot *s = &c->slots[i];
        if (s->state != SLOT_DONE)
            continue;
        out->cookie = s->cookie;
        out->nbd_error = s->nbd_error;
        out->error = s->nbd_error != 0 ? SC_ERR_REMOTE : 0;
        out->nr_extents = s->nr_extents;
        out->user = s->req.user;
        s->state = SLOT_FREE;
        c->in_flight--;
        return 1;
    }
    return 0;
}

int sc_nbd_client_disconnect(struct sc_nbd_client *c)
{
    if (c->state != CS_READY)
        return c->state == CS_CLOSED ? 0 : SC_ERR_STATE;
    c->disc_queued = true;
    return 0;
}

/* ---- sending ---- */

static void put_request(struct sc_nbd_client *c, uint16_t flags, uint16_t type, uint64_t cookie,
                        uint64_t offset, uint32_t length)
{
    bool ext = c->info.extended_headers;
    if (ext && type == SC_NBD_CMD_WRITE)
        flags |= SC_NBD_CMD_FLAG_PAYLOAD_LEN;  /* the length is the payload's */
    be32_put(c->out, ext ? SC_NBD_EXT_REQUEST_MAGIC : SC_NBD_REQUEST_MAGIC);
    be16_put(c->out + 4, flags);
    be16_put(c->out + 6, type);
    be64_put(c->out + 8, cookie);
    be64_put(c->out + 16, offset);
    if (ext)
        be64_put(c->out + 24, length);
    else
        be32_put(c->out + 24, length);
    c->out_len = ext ? SC_NBD_EXT_REQUEST_LEN : SC_NBD_REQUEST_LEN;
    c->out_pos = 0;
}

const uint8_t *nbd_client_tx_sendbuf(struct sc_nbd_client *c, size_t *len)
{
    if (c->out_pos < c->out_len) {
        *len = c->out_len - c->out_pos;
        return c->out + c->out_pos;
    }
    if (c->payload_len > 0) {
        *len = c->payload_len;
        return c->payload;
    }
    if (c->sendq_len > 0) {
        unsigned idx = c->sendq[c->sendq_head];
        c->sendq_head = (c->sendq_head + 1) % SC_NBD_WINDOW;
        c->sendq_len--;
        struct sc_nbd_slot *s = &c->slots[idx];
        put_request(c, s->req.flags, s->req.type, s->cookie, s->req.offset, s->req.length);
        if (s->req.type == SC_NBD_CMD_WRITE) {
            c->payload = s->req.buf;
            c->payload_len = s->req.length;
        }
        s->state = SLOT_SENDING;
        c->tx_slot = (int)idx;
        *len = c->out_len;
        return c->out;
    }
    if (c->disc_queued && !c->disc_sent) {
        put_request(c, 0, SC_NBD_CMD_DISC, 0, 0, 0);
        c->disc_sent = true;
        *len = c->out_len;
        return c->out;
    }
    *len = 0;
    return NULL;
}

void nbd_client_tx_sent(struct sc_nbd_client *c, size_t n)
{
    if (c->out_pos < c->out_len) {
        c->out_pos += n;
    } else if (c->payload_len > 0) {
        c->payload += n;
        c->payload_len -= n;
    }
    bool all_out = c->out_pos == c->out_len && c->payload_len == 0;
    if (all_out && c->tx_slot >= 0) {
        c->slots[c->tx_slot].state = SLOT_SENT;  /* now a reply may complete it */
        c->tx_slot = -1;
    }
    if (c->disc_sent && all_out && c->sendq_len == 0)
        c->state = CS_CLOSED;  /* DISC is out: no reply comes */
}

/* ---- receiving ---- */

static struct sc_nbd_slot *slot_for(struct sc_nbd_client *c, uint64_t cookie)
{
    unsigned idx = COOKIE_SLOT(cookie);
    if (idx >= SC_NBD_WINDOW)
        return NULL;
    struct sc_nbd_slot *s = &c->slots[idx];
    if (s->cookie != cookie || s->state != SLOT_SENT) {
        if (s->cookie == cookie && s->state == SLOT_SENDING)
            nbd_client_fail(c, SC_ERR_PROTO, "reply to a request still being sent");
        return NULL;
    }
    c->rx_slot = (int)idx;
    return s;
}

static struct sc_nbd_slot *cur_slot(struct sc_nbd_client *c)
{
    return &c->slots[c->rx_slot];
}

/* Record that [lo, hi) of a read arrived. Chunks may come in any order but
 * must not overlap: a duplicate would otherwise pass for missing bytes. */
static int cover(struct sc_nbd_client *c, struct sc_nbd_slot *s, uint32_t lo, uint32_t hi)
{
    unsigned i = 0;
    while (i < s->nr_got && s->got[i].start < lo)
        i++;
    bool touch_prev = i > 0 && s->got[i - 1].end == lo;
    bool touch_next = i < s->nr_got && s->got[i].start == hi;
    if ((i > 0 && s->got[i - 1].end > lo) || (i < s->nr_got && s->got[i].start < hi))
        return nbd_client_fail(c, SC_ERR_PROTO, "read chunks overlap at %" PRIu32 "..%" PRIu32, lo, hi);
    if (touch_prev && touch_next) {
        s->got[i - 1].end = s->got[i].end;
        memmove(&s->got[i], &s->got[i + 1], (s->nr_got - i - 1) * sizeof(s->got[0]));
        s->nr_got--;
    } else if (touch_prev) {
        s->got[i - 1].end = hi;
    } else if (touch_next) {
        s->got[i].start = lo;
    } else {
        if (s->nr_got == SC_NBD_READ_PIECES)
            return nbd_client_fail(c, SC_ERR_PROTO, "read reply scattered in more than %d pieces",
                                   SC_NBD_READ_PIECES);
        memmove(&s->got[i + 1], &s->got[i], (s->nr_got - i) * sizeof(s->got[0]));
        s->got[i] = (struct sc_nbd_range){lo, hi};
        s->nr_got++;
    }
    return 0;
}

static bool read_whole(const struct sc_nbd_slot *s)
{
    return s->nr_got == 1 && s->got[0].start == 0 && s->got[0].end == s->req.length;
}

static int complete(struct sc_nbd_client *c, struct sc_nbd_slot *s)
{
    if (s->nbd_error == 0 && s->req.type == SC_NBD_CMD_READ && !read_whole(s))
        return nbd_client_fail(c, SC_ERR_PROTO,
                               "server ended a read of %" PRIu32 " bytes without sending all of it",
                               s->req.length);
    if (s->nbd_error == 0 && s->req.type == SC_NBD_CMD_BLOCK_STATUS && s->extent_sum == 0)
        return nbd_client_fail(c, SC_ERR_PROTO, "block status reply without extents");
    s->state = SLOT_DONE;
    c->completions++;
    rx_reset(c);
    return 0;
}

/* A chunk ended: finish the request if the server said it was the last. */
static int chunk_end(struct sc_nbd_client *c)
{
    if (c->rx_flags16 & SC_NBD_REPLY_FLAG_DONE)
        return complete(c, cur_slot(c));
    rx_reset(c);
    return 0;
}

static int on_simple(struct sc_nbd_client *c)
{
    uint32_t err = be32_get(c->hdr + 4);
    uint64_t cookie = be64_get(c->hdr + 8);
    struct sc_nbd_slot *s = slot_for(c, cookie);
    if (s == NULL)
        return nbd_client_fail(c, SC_ERR_PROTO, "reply for unknown cookie 0x%llx",
                               (unsigned long long)cookie);
    if (s->req.type == SC_NBD_CMD_READ && c->info.structured_replies)
        return nbd_client_fail(c, SC_ERR_PROTO, "simple reply to a read after structured "
                               "replies were negotiated");
    if (s->req.type == SC_NBD_CMD_BLOCK_STATUS && err == 0)
        return nbd_client_fail(c, SC_ERR_PROTO, "simple reply to block status");
    s->nbd_error = err;
    if (err == 0 && s->req.type == SC_NBD_CMD_READ) {
        s->got[0] = (struct sc_nbd_range){0, s->req.length};
        s->nr_got = 1;
        rx_next(c, RX_SIMPLE_DATA, s->req.buf, s->req.length);
        return 0;
    }
    return complete(c, s);
}

/* A structured or extended chunk header is parsed: check it against its
 * request and read its payload. */
static int on_chunk(struct sc_nbd_client *c, struct sc_nbd_slot *s)
{
    uint32_t len = c->rx_len;
    uint16_t type = (uint16_t)c->rx_type;
    bool ext = c->info.extended_headers;
    if (type & SC_NBD_REPLY_TYPE_ERROR_BIT) {
        if (len < 6)
            return nbd_client_fail(c, SC_ERR_PROTO, "error chunk of %" PRIu32 " bytes", len);
        rx_next(c, RX_ERR_HDR, c->hdr, 6);
        return 0;
    }
    switch (type) {
    case SC_NBD_REPLY_TYPE_NONE:
        if (len != 0 || !(c->rx_flags16 & SC_NBD_REPLY_FLAG_DONE))
            return nbd_client_fail(c, SC_ERR_PROTO, "malformed NBD_REPLY_TYPE_NONE");
        return complete(c, s);
    case SC_NBD_REPLY_TYPE_OFFSET_DATA:
        if (s->req.type != SC_NBD_CMD_READ || len <= 8)
            return nbd_client_fail(c, SC_ERR_PROTO, "unexpected data chunk");
        rx_next(c, RX_OFFSET, c->hdr, 8);
        return 0;
    case SC_NBD_REPLY_TYPE_OFFSET_HOLE:
        if (s->req.type != SC_NBD_CMD_READ || len != 12)
            return nbd_client_fail(c, SC_ERR_PROTO, "unexpected hole chunk");
        rx_next(c, RX_HOLE, c->hdr, 12);
        return 0;
    case SC_NBD_REPLY_TYPE_BLOCK_STATUS:
        if (ext || s->req.type != SC_NBD_CMD_BLOCK_STATUS || len < 12 || (len - 4) % 8 != 0)
            return nbd_client_fail(c, SC_ERR_PROTO, "malformed block status chunk");
        if (len > SC_NBD_BLOCK_STATUS_MAX)
            return nbd_client_fail(c, SC_ERR_TOO_LONG, "block status chunk of %" PRIu32 " bytes", len);
        if (s->extent_sum != 0)
            return nbd_client_fail(c, SC_ERR_PROTO, "second block status chunk for one context");
        c->rx_left = len - 4;
        rx_next(c, RX_BS_ID, c->hdr, 4);
        return 0;
    case SC_NBD_REPLY_TYPE_BLOCK_STATUS_EXT:
        if (!ext || s->req.type != SC_NBD_CMD_BLOCK_STATUS || len < 24 || (len - 8) % 16 != 0)
            return nbd_client_fail(c, SC_ERR_PROTO, "malformed extended block status chunk");
        if (len > 8u + 16u * (1u << 20))
            return nbd_client_fail(c, SC_ERR_TOO_LONG, "block status chunk of %" PRIu32 " bytes", len);
        if (s->extent_sum != 0)
            return nbd_client_fail(c, SC_ERR_PROTO, "second block status chunk for one context");
        c->rx_left = len - 8;
        rx_next(c, RX_BSX_HDR, c->hdr, 8);
        return 0;
    default:
        return nbd_client_fail(c, SC_ERR_PROTO, "unknown reply chunk type %u", type);
    }
}

static int on_structured(struct sc_nbd_client *c)
{
    c->rx_flags16 = be16_get(c->hdr + 4);
    c->rx_type = be16_get(c->hdr + 6);
    c->rx_cookie = be64_get(c->hdr + 8);
    c->rx_len = be32_get(c->hdr + 16);
    struct sc_nbd_slot *s = slot_for(c, c->rx_cookie);
    if (s == NULL)
        return nbd_client_fail(c, SC_ERR_PROTO, "reply for unknown cookie 0x%llx",
                               (unsigned long long)c->rx_cookie);
    return on_chunk(c, s);
}

/* Extended header: also the request's offset and a 64-bit length. */
static int on_extended(struct sc_nbd_client *c)
{
    c->rx_flags16 = be16_get(c->hdr + 4);
    c->rx_type = be16_get(c->hdr + 6);
    c->rx_cookie = be64_get(c->hdr + 8);
    uint64_t offset = be64_get(c->hdr + 16), len = be64_get(c->hdr + 24);
    struct sc_nbd_slot *s = slot_for(c, c->rx_cookie);
    if (s == NULL)
        return nbd_client_fail(c, SC_ERR_PROTO, "reply for unknown cookie 0x%llx",
                               (unsigned long long)c->rx_cookie);
    if (offset != s->req.offset)
        return nbd_client_fail(c, SC_ERR_PROTO, "extended reply offset %llu for a request at %llu",
                               (unsigned long long)offset, (unsigned long long)s->req.offset);
    /* Reply payloads are bounded by the 32-bit block size limits. */
    if (len > UINT32_MAX)
        return nbd_client_fail(c, SC_ERR_TOO_LONG, "extended reply payload of %llu bytes",
                               (unsigned long long)len);
    c->rx_len = (uint32_t)len;
    return on_chunk(c, s);
}

/* Is [off, off+len) inside the request? (No overflow: len < 2^32.) */
static bool in_request(const struct sc_nbd_slot *s, uint64_t off, uint64_t len)
{
    return off >= s->req.offset && off - s->req.offset <= s->req.length &&
           len <= s->req.length - (off - s->req.offset);
}

static int on_offset(struct sc_nbd_client *c)
{
    struct sc_nbd_slot *s = cur_slot(c);
    uint64_t off = be64_get(c->hdr);
    uint32_t dlen = c->rx_len - 8;
    if (!in_request(s, off, dlen))
        return nbd_client_fail(c, SC_ERR_PROTO, "data chunk at %llu+%" PRIu32 " outside the read",
                               (unsigned long long)off, dlen);
    uint32_t lo = (uint32_t)(off - s->req.offset);
    if (cover(c, s, lo, lo + dlen) != 0)
        return c->error;
    rx_next(c, RX_CHUNK_DATA, (uint8_t *)s->req.buf + (off - s->req.offset), dlen);
    return 0;
}

static int on_hole(struct sc_nbd_client *c)
{
    struct sc_nbd_slot *s = cur_slot(c);
    uint64_t off = be64_get(c->hdr);
    uint32_t hlen = be32_get(c->hdr + 8);
    if (hlen == 0 || !in_request(s, off, hlen))
        return nbd_client_fail(c, SC_ERR_PROTO, "hole chunk at %llu+%" PRIu32 " outside the read",
                               (unsigned long long)off, hlen);
    uint32_t lo = (uint32_t)(off - s->req.offset);
    if (cover(c, s, lo, lo + hlen) != 0)
        return c->error;
    memset((uint8_t *)s->req.buf + (off - s->req.offset), 0, hlen);
    return chunk_end(c);
}

static int on_bs_extent(struct sc_nbd_client *c, uint64_t elen, uint32_t flags, unsigned size)
{
    struct sc_nbd_slot *s = cur_slot(c);
    c->rx_left -= size;
    bool last = c->rx_left == 0;
    if (elen == 0)
        return nbd_client_fail(c, SC_ERR_PROTO, "block status extent of length 0");
    /* All but the last extent must stay inside the request (nbdkit
     * CVE-2025-47711/47712 were servers getting this wrong). Until the
     * last one, extent_sum < length holds, so no sum here can wrap. */
    uint64_t room = s->req.length - s->extent_sum;
    if (!last && elen >= room)
        return nbd_client_fail(c, SC_ERR_PROTO, "block status extents overrun the request");
    if ((s->req.flags & SC_NBD_CMD_FLAG_REQ_ONE) && (!last || s->nr_extents > 0 ||
                                                     elen > s->req.length))
        return nbd_client_fail(c, SC_ERR_PROTO, "more than one extent after REQ_ONE");
    if (s->nr_extents < s->req.max_extents) {
        /* Report the last extent clipped to what was asked. */
        s->req.extents[s->nr_extents].length = elen < room ? elen : room;
        s->req.extents[s->nr_extents].flags = flags;
        s->nr_extents++;
    }
    s->extent_sum = elen < room ? s->extent_sum + elen : s->req.length;
    if (!last) {
        rx_next(c, size == 8 ? RX_BS_EXTENT : RX_BSX_EXTENT, c->hdr, size);
        return 0;
    }
    return chunk_end(c);
}

static int on_err_hdr(struct sc_nbd_client *c)
{
    struct sc_nbd_slot *s = cur_slot(c);
    uint32_t err = be32_get(c->hdr);
    uint16_t msg_len = be16_get(c->hdr + 4);
    uint32_t rest = c->rx_len - 6;
    if (err == 0)
        return nbd_client_fail(c, SC_ERR_PROTO, "error chunk with error 0");
    if (msg_len > rest)
        return nbd_client_fail(c, SC_ERR_PROTO, "error message longer than its chunk");
    if (c->rx_type == SC_NBD_REPLY_TYPE_ERROR_OFFSET && rest - msg_len != 8)
        return nbd_client_fail(c, SC_ERR_PROTO, "malformed NBD_REPLY_TYPE_ERROR_OFFSET");
    if (rest > sizeof(c->scratch))
        return nbd_client_fail(c, SC_ERR_TOO_LONG, "error chunk of %" PRIu32 " bytes", c->rx_len);
    if (s->nbd_error == 0)
        s->nbd_error = err;
    c->rx_left = msg_len;  /* where the offset starts, for ERROR_OFFSET */
    if (rest == 0)
        return chunk_end(c);
    rx_next(c, RX_ERR_REST, c->scratch, rest);
    return 0;
}

static int on_err_rest(struct sc_nbd_client *c)
{
    if (c->rx_type == SC_NBD_REPLY_TYPE_ERROR_OFFSET) {
        uint64_t off = be64_get(c->scratch + c->rx_left);
        if (!in_request(cur_slot(c), off, 0))
            return nbd_client_fail(c, SC_ERR_PROTO, "error offset outside the request");
    }
    return chunk_end(c);
}

int nbd_client_tx_input(struct sc_nbd_client *c)
{
    switch (c->rx_state) {
    case RX_HDR: {
        uint32_t magic = be32_get(c->hdr);
        bool ext = c->info.extended_headers;
        if (magic == SC_NBD_SIMPLE_REPLY_MAGIC && !ext)
            return on_simple(c);
        if (magic == SC_NBD_STRUCTURED_REPLY_MAGIC && c->info.structured_replies && !ext) {
            rx_next(c, RX_SHDR_TAIL, c->hdr + 16, 4);
            return 0;
        }
        if (magic == SC_NBD_EXT_REPLY_MAGIC && ext) {
            rx_next(c, RX_XHDR_TAIL, c->hdr + 16, 16);
            return 0;
        }
        return nbd_client_fail(c, SC_ERR_PROTO, "bad reply magic 0x%08" PRIx32, magic);
    }
    case RX_SHDR_TAIL:
        return on_structured(c);
    case RX_XHDR_TAIL:
        return on_extended(c);
    case RX_SIMPLE_DATA:
        return complete(c, cur_slot(c));
    case RX_OFFSET:
        return on_offset(c);
    case RX_CHUNK_DATA:
        return chunk_end(c);
    case RX_HOLE:
        return on_hole(c);
    case RX_BS_ID:
        if (be32_get(c->hdr) != c->meta_id)
            return nbd_client_fail(c, SC_ERR_PROTO, "block status for an unknown context");
        rx_next(c, RX_BS_EXTENT, c->hdr, 8);
        return 0;
    case RX_BS_EXTENT:
        return on_bs_extent(c, be32_get(c->hdr), be32_get(c->hdr + 4), 8);
    case RX_BSX_HDR:
        if (be32_get(c->hdr) != c->meta_id)
            return nbd_client_fail(c, SC_ERR_PROTO, "block status for an unknown context");
        if (be32_get(c->hdr + 4) == 0 || (uint64_t)be32_get(c->hdr + 4) * 16u != c->rx_left)
            return nbd_client_fail(c, SC_ERR_PROTO, "block status descriptor count mismatch");
        rx_next(c, RX_BSX_EXTENT, c->hdr, 16);
        return 0;
    case RX_BSX_EXTENT: {
        uint64_t status = be64_get(c->hdr + 8);
        if (status > UINT32_MAX)
            return nbd_client_fail(c, SC_ERR_PROTO, "base:allocation status above 32 bits");
        return on_bs_extent(c, be64_get(c->hdr), (uint32_t)status, 16);
    }
    case RX_ERR_HDR:
        return on_err_hdr(c);
    case RX_ERR_REST:
        return on_err_rest(c);
    default:
        return nbd_client_fail(c, SC_ERR_INTERNAL, "receive state %u", c->rx_state);
    }
}
