/* The NBD server engine's transmission phase: one request at a time,
 * payloads streamed through the caller's buffer in pieces; compact
 * (28-byte) or extended (32-byte) headers. */
#include <inttypes.h>
#include <string.h>

#include "nbd_server_int.h"
#include "nbd_wire.h"

/* Trim, zero and cache of more than this go to the backend in pieces (its
 * ops take 32-bit lengths; extended headers allow 64-bit effect lengths). */
#define BIG_PIECE (1u << 30)

void nbd_server_tx_start(struct sc_nbd_server *s)
{
    nbd_server_expect(s, s->hdr, s->extended ? SC_NBD_EXT_REQUEST_LEN : SC_NBD_REQUEST_LEN,
                      SS_REQ_HDR);
}

static uint32_t piece(const struct sc_nbd_server *s)
{
    uint64_t left = s->req_len - s->req_done;
    return left < s->cfg.buf_len ? (uint32_t)left : (uint32_t)s->cfg.buf_len;
}

/* A chunk header (structured: 20 bytes, extended: 32) at p; its length. */
static size_t put_chunk(const struct sc_nbd_server *s, uint8_t *p, uint16_t flags, uint16_t type,
                        uint32_t len)
{
    be16_put(p + 4, flags);
    be16_put(p + 6, type);
    be64_put(p + 8, s->req_cookie);
    if (s->extended) {
        be32_put(p, SC_NBD_EXT_REPLY_MAGIC);
        be64_put(p + 16, s->req_offset);
        be64_put(p + 24, len);
        return SC_NBD_EXT_REPLY_LEN;
    }
    be32_put(p, SC_NBD_STRUCTURED_REPLY_MAGIC);
    be32_put(p + 16, len);
    return SC_NBD_STRUCTURED_REPLY_LEN;
}

/* A simple reply, or a NONE/ERROR chunk that ends the request. */
static void reply_final(struct sc_nbd_server *s, uint32_t err)
{
    uint8_t *p = s->out;
    if (!s->structured) {
        be32_put(p, SC_NBD_SIMPLE_REPLY_MAGIC);
        be32_put(p + 4, err);
        be64_put(p + 8, s->req_cookie);
        s->out_len = SC_NBD_SIMPLE_REPLY_LEN;
    } else {
        s->out_len = put_chunk(s, p, SC_NBD_REPLY_FLAG_DONE,
                               err ? SC_NBD_REPLY_TYPE_ERROR : SC_NBD_REPLY_TYPE_NONE,
                               err ? 6u : 0u);
        if (err) {
            be32_put(p + s->out_len, err);
            be16_put(p + s->out_len + 4, 0);
            s->out_len += 6;
        }
    }
    s->payload_len = 0;
    nbd_server_send(s, AS_READY);
}

/* Read the next piece from the backend and queue it for sending. */
static void read_piece(struct sc_nbd_server *s)
{
    const struct sc_nbd_export *e = s->exp;
    uint32_t n = piece(s);
    int r = e->ops->read(e->ctx, s->cfg.buf, n, s->req_offset + s->req_done);
    bool first = s->req_done == 0;
    if (r != 0) {
        if (first || s->structured) {
            reply_final(s, (uint32_t)r);
            return;
        }
        /* A simple reply promised the data already: all we can do. */
        nbd_server_fail(s, SC_ERR_IO, "backend read failed mid-reply");
        return;
    }
    uint8_t *p = s->out;
    s->out_len = 0;
    if (s->structured) {
        bool last = s->req_done + n == s->req_len;
        s->out_len = put_chunk(s, p, last ? SC_NBD_REPLY_FLAG_DONE : 0,
                               SC_NBD_REPLY_TYPE_OFFSET_DATA, 8 + n);
        be64_put(p + s->out_len, s->req_offset + s->req_done);
        s->out_len += 8;
    } else if (first) {
        be32_put(p, SC_NBD_SIMPLE_REPLY_MAGIC);
        be32_put(p + 4, 0);
        be64_put(p + 8, s->req_cookie);
        s->out_len = SC_NBD_SIMPLE_REPLY_LEN;
    }
    s->req_done += n;
    s->payload = s->cfg.buf;
    s->payload_len = n;
    nbd_server_send(s, s->req_done < s->req_len ? AS_READ_NEXT : AS_READY);
}

static void block_status(struct sc_nbd_server *s)
{
    const struct sc_nbd_export *e = s->exp;
    size_t nr = 0;
    size_t max = (s->req_flags & SC_NBD_CMD_FLAG_REQ_ONE) ? 1 : SC_NBD_SRV_EXTENTS;
    /* The backend answers for at most 4 GiB less a block: fewer extents
     * than asked for are allowed. */
    uint32_t len = s->req_len > 0xfffff000u ? 0xfffff000u : (uint32_t)s->req_len;
    int r = e->ops->block_status(e->ctx, len, s->req_offset, s->extents, max, &nr);
    if (r != 0 || nr == 0) {
        reply_final(s, r != 0 ? (uint32_t)r : SC_NBD_EIO);
        return;
    }
    /* Keep what we send inside the request: no zero-length extent, and only
     * the last may reach past its end (nbdkit CVE-2025-47711/47712). */
    size_t hdr = s->extended ? SC_NBD_EXT_REPLY_LEN + 8 : SC_NBD_STRUCTURED_REPLY_LEN + 4;
    size_t each = s->extended ? 16 : 8;
    uint8_t *p = s->out;
    uint64_t sum = 0;
    uint32_t count = 0;
    for (size_t i = 0; i < nr && sum < len; i++) {
        uint64_t elen = s->extents[i].length;
        if (elen == 0)
            break;
        if (elen > len - sum)
            elen = len - sum;
        uint8_t *d = p + hdr + each * count;
        if (s->extended) {
            be64_put(d, elen);
            be64_put(d + 8, s->extents[i].flags & 3u);
        } else {
            be32_put(d, (uint32_t)elen);
            be32_put(d + 4, s->extents[i].flags & 3u);
        }
        sum += elen;
        count++;
    }
    if (count == 0) {
        reply_final(s, SC_NBD_EIO);
        return;
    }
    uint32_t plen = (uint32_t)(hdr - (s->extended ? SC_NBD_EXT_REPLY_LEN
                                                  : SC_NBD_STRUCTURED_REPLY_LEN) +
                               each * count);
    size_t at = put_chunk(s, p, SC_NBD_REPLY_FLAG_DONE,
                          s->extended ? SC_NBD_REPLY_TYPE_BLOCK_STATUS_EXT
                                      : SC_NBD_REPLY_TYPE_BLOCK_STATUS,
                          plen);
    be32_put(p + at, 1);  /* context id of base:allocation */
    if (s->extended)
        be32_put(p + at + 4, count);
    s->out_len = hdr + each * count;
    s->payload_len = 0;
    nbd_server_send(s, AS_READY);
}

/* Check a request against the export; 0 or the NBD error to answer. */
static uint32_t check_request(struct sc_nbd_server *s)
{
    const struct sc_nbd_export *e = s->exp;
    const struct sc_nbd_backend_ops *o = e->ops;
    uint16_t t = s->req_type, f = s->req_flags;
    uint16_t allowed = 0;
    bool ranged = true, writes = false;
    if (s->extended && t == SC_NBD_CMD_WRITE) {
        if (!(f & SC_NBD_CMD_FLAG_PAYLOAD_LEN))
            return SC_NBD_EINVAL;
        f &= (uint16_t)~SC_NBD_CMD_FLAG_PAYLOAD_LEN;
    }
    switch (t) {
    case SC_NBD_CMD_READ:
        break;
    case SC_NBD_CMD_WRITE:
        writes = true;
        allowed = SC_NBD_CMD_FLAG_FUA;
        break;
    case SC_NBD_CMD_FLUSH:
        if (!o->flush)
            return SC_NBD_EINVAL;
        ranged = false;
        break;
    case SC_NBD_CMD_TRIM:
        if (!o->trim)
            return SC_NBD_EINVAL;
        writes = true;
        allowed = SC_NBD_CMD_FLAG_FUA;
        break;
    case SC_NBD_CMD_WRITE_ZEROES:
        if (!o->zero)
            return SC_NBD_EINVAL;
        writes = true;
        allowed = SC_NBD_CMD_FLAG_FUA | SC_NBD_CMD_FLAG_NO_HOLE | SC_NBD_CMD_FLAG_FAST_ZERO;
        break;
    case SC_NBD_CMD_CACHE:
        break;
    case SC_NBD_CMD_BLOCK_STATUS:
        if (!s->meta_base)
            return SC_NBD_EINVAL;
        allowed = SC_NBD_CMD_FLAG_REQ_ONE;
        break;
    default:
        return SC_NBD_EINVAL;
    }
    if (f & ~allowed)
        return SC_NBD_EINVAL;
    if (writes && e->read_only)
        return SC_NBD_EPERM;
    if (!ranged)
        return 0;
    if (s->req_len == 0 || s->req_offset > e->size || s->req_len > e->size - s->req_offset)
        return writes ? SC_NBD_ENOSPC : SC_NBD_EINVAL;
    if ((t == SC_NBD_CMD_READ) && s->req_len > SC_NBD_SRV_REQ_MAX)
        return SC_NBD_EINVAL;
    return 0;
}

/* Trim, zero, cache: 64-bit effect lengths go to the backend in pieces. */
static int in_pieces(struct sc_nbd_server *s)
{
    const struct sc_nbd_export *e = s->exp;
    const struct sc_nbd_backend_ops *o = e->ops;
    bool fua = (s->req_flags & SC_NBD_CMD_FLAG_FUA) != 0;
    for (uint64_t done = 0; done < s->req_len;) {
        uint64_t left = s->req_len - done;
        uint32_t n = left < BIG_PIECE ? (uint32_t)left : BIG_PIECE;
        bool last = done + n == s->req_len;
        uint64_t off = s->req_offset + done;
        int r;
        if (s->req_type == SC_NBD_CMD_TRIM)
            r = o->trim(e->ctx, n, off, fua && last);
        else if (s->req_type == SC_NBD_CMD_WRITE_ZEROES)
            r = o->zero(e->ctx, n, off, !(s->req_flags & SC_NBD_CMD_FLAG_NO_HOLE), fua && last,
                        (s->req_flags & SC_NBD_CMD_FLAG_FAST_ZERO) != 0);
        else
            r = o->cache ? o->cache(e->ctx, n, off) : 0;
        if (r != 0)
            return r;
        done += n;
    }
    return 0;
}

static void serve_request(struct sc_nbd_server *s)
{
    const struct sc_nbd_export *e = s->exp;
    switch (s->req_type) {
    case SC_NBD_CMD_READ:
        read_piece(s);
        return;
    case SC_NBD_CMD_FLUSH:
        reply_final(s, (uint32_t)e->ops->flush(e->ctx));
        return;
    case SC_NBD_CMD_BLOCK_STATUS:
        block_status(s);
        return;
    case SC_NBD_CMD_TRIM:
    case SC_NBD_CMD_WRITE_ZEROES:
    case SC_NBD_CMD_CACHE:
        reply_final(s, (uint32_t)in_pieces(s));
        return;
    default:
        reply_final(s, SC_NBD_EINVAL);
        return;
    }
}

static void payload_next(struct sc_nbd_server *s)
{
    nbd_server_expect(s, s->cfg.buf, piece(s), SS_REQ_DATA);
}

static int on_request(struct sc_nbd_server *s)
{
    uint32_t magic = be32_get(s->hdr);
    if (magic != (s->extended ? SC_NBD_EXT_REQUEST_MAGIC : SC_NBD_REQUEST_MAGIC))
        return nbd_server_fail(s, SC_ERR_PROTO, "bad request magic 0x%08" PRIx32, magic);
    s->req_flags = be16_get(s->hdr + 4);
    s->req_type = be16_get(s->hdr + 6);
    s->req_cookie = be64_get(s->hdr + 8);
    s->req_offset = be64_get(s->hdr + 16);
    s->req_len = s->extended ? be64_get(s->hdr + 24) : be32_get(s->hdr + 24);
    s->req_done = 0;
    if (s->req_type == SC_NBD_CMD_DISC) {
        s->state = SS_CLOSED;
        return 0;
    }
    s->req_error = check_request(s);
    /* Does a payload follow? A WRITE's always; with extended headers,
     * any command flagged PAYLOAD_LEN (we accept none other: refused after
     * it is consumed, to stay in step). */
    bool payload = s->extended ? (s->req_flags & SC_NBD_CMD_FLAG_PAYLOAD_LEN) != 0
                               : s->req_type == SC_NBD_CMD_WRITE;
    if (payload && s->req_type != SC_NBD_CMD_WRITE && s->req_error == 0)
        s->req_error = SC_NBD_EINVAL;
    if (payload) {
        /* Too large to drain in reasonable time means the stream is lost. */
        if (s->req_len > SC_NBD_SRV_REQ_MAX)
            return nbd_server_fail(s, SC_ERR_TOO_LONG, "request payload of %llu bytes",
                                   (unsigned long long)s->req_len);
        if (s->req_len == 0) {
            reply_final(s, SC_NBD_EINVAL);
            return 0;
        }
        payload_next(s);
        return 0;
    }
    if (s->req_error != 0) {
        reply_final(s, s->req_error);
        return 0;
    }
    serve_request(s);
    return 0;
}

/* A piece of a payload is in the buffer. */
static int on_payload_piece(struct sc_nbd_server *s)
{
    const struct sc_nbd_export *e = s->exp;
    uint32_t n = piece(s);
    if (s->req_error == 0) {
        bool last = s->req_done + n == s->req_len;
        bool fua = last && (s->req_flags & SC_NBD_CMD_FLAG_FUA);
        int r = e->ops->write(e->ctx, s->cfg.buf, n, s->req_offset + s->req_done, fua);
        if (r != 0)
            s->req_error = (uint32_t)r;  /* keep draining the payload */
    }
    s->req_done += n;
    if (s->req_done < s->req_len) {
        payload_next(s);
        return 0;
    }
    reply_final(s, s->req_error);
    return 0;
}

int nbd_server_tx_input(struct sc_nbd_server *s)
{
    if (s->state == SS_REQ_HDR)
        return on_request(s);
    return on_payload_piece(s);
}

void nbd_server_tx_sent(struct sc_nbd_server *s, unsigned after)
{
    if (after == AS_READ_NEXT)
        read_piece(s);
    else
        nbd_server_tx_start(s);
}
