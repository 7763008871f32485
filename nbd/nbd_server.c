/* see sechan/nbd.h: the NBD server engine's buffer interface and its
 * option haggling; transmission is in nbd_server_tx.c. */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "nbd_server_int.h"
#include "nbd_wire.h"

int nbd_server_fail(struct sc_nbd_server *s, int err, const char *fmt, ...)
{
    if (s->error == 0) {
        s->error = err;
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(s->msg, sizeof(s->msg), fmt, ap);
        va_end(ap);
    }
    s->state = SS_FAILED;
    return s->error;
}

void nbd_server_expect(struct sc_nbd_server *s, void *p, size_t n, unsigned state)
{
    s->in_ptr = p;
    s->in_need = n;
    s->state = state;
}

void nbd_server_send(struct sc_nbd_server *s, unsigned after)
{
    s->out_pos = 0;
    s->after_send = after;
    s->state = SS_SEND;
}

int sc_nbd_server_init(struct sc_nbd_server *s, const struct sc_nbd_server_config *cfg)
{
    if (s == NULL || cfg == NULL || cfg->buf == NULL || cfg->buf_len < 4096)
        return SC_ERR_INVAL;
    memset(s, 0, sizeof(*s));
    s->cfg = *cfg;
    /* Greeting: NBDMAGIC, IHAVEOPT, fixed newstyle + no zeroes. */
    be64_put(s->out, SC_NBD_MAGIC);
    be64_put(s->out + 8, SC_NBD_OPTS_MAGIC);
    be16_put(s->out + 16, SC_NBD_FLAG_FIXED_NEWSTYLE | SC_NBD_FLAG_NO_ZEROES);
    s->out_len = SC_NBD_GREETING_LEN;
    nbd_server_send(s, AS_CLIENT_FLAGS);
    return 0;
}

unsigned sc_nbd_server_state(const struct sc_nbd_server *s)
{
    switch (s->state) {
    case SS_FAILED:
        return SC_NBD_FAILED;
    case SS_CLOSED:
        return SC_NBD_CLOSED;
    case SS_TLS:
        return SC_NBD_WANT_TLS;
    case SS_SEND:
        return SC_NBD_WANT_WRITE | (s->exp && !sc_nbd_server_negotiating(s) ? SC_NBD_READY : 0);
    case SS_REQ_HDR:
    case SS_REQ_DATA:
        return SC_NBD_WANT_READ | SC_NBD_READY;
    default:
        return SC_NBD_WANT_READ;
    }
}

bool sc_nbd_server_negotiating(const struct sc_nbd_server *s)
{
    return s->state != SS_REQ_HDR && s->state != SS_REQ_DATA && s->state != SS_CLOSED &&
           s->state != SS_FAILED && !(s->state == SS_SEND && s->after_send >= AS_READY);
}

const uint8_t *sc_nbd_server_sendbuf(struct sc_nbd_server *s, size_t *len)
{
    *len = 0;
    if (s->state != SS_SEND)
        return NULL;
    if (s->out_pos < s->out_len) {
        *len = s->out_len - s->out_pos;
        return s->out + s->out_pos;
    }
    *len = s->payload_len;
    return s->payload_len ? s->payload : NULL;
}

static void opt_next(struct sc_nbd_server *s)
{
    nbd_server_expect(s, s->hdr, SC_NBD_OPT_HDR_LEN, SS_OPT_HDR);
}

static void after_list(struct sc_nbd_server *s);

/* strlen bounded by the protocol's string limit (strnlen is not C11). */
static uint32_t str_len(const char *str)
{
    uint32_t n = 0;
    while (n < SC_NBD_MAX_STRING && str[n] != '\0')
        n++;
    return n;
}

void sc_nbd_server_sendack(struct sc_nbd_server *s, size_t n)
{
    size_t offered;
    (void)sc_nbd_server_sendbuf(s, &offered);
    if (n > offered) {
        nbd_server_fail(s, SC_ERR_INVAL, "driver acknowledged more bytes than offered");
        return;
    }
    if (s->state != SS_SEND)
        return;
    if (s->out_pos < s->out_len)
        s->out_pos += n;
    else {
        s->payload += n;
        s->payload_len -= n;
    }
    if (s->out_pos < s->out_len || s->payload_len > 0)
        return;
    s->out_len = 0;
    switch (s->after_send) {
    case AS_CLIENT_FLAGS:
        nbd_server_expect(s, s->hdr, 4, SS_CLIENT_FLAGS);
        break;
    case AS_OPT:
        opt_next(s);
        break;
    case AS_TLS:
        s->state = SS_TLS;
        break;
    case AS_CLOSE:
        s->state = SS_CLOSED;
        break;
    case AS_LIST_NEXT:
        after_list(s);
        break;
    default:
        nbd_server_tx_sent(s, s->after_send);
        break;
    }
}

uint8_t *sc_nbd_server_recvbuf(struct sc_nbd_server *s, size_t *room)
{
    *room = 0;
    if (s->state == SS_SEND || s->state == SS_TLS || s->state == SS_CLOSED ||
        s->state == SS_FAILED || s->in_need == 0)
        return NULL;
    *room = s->in_need;
    return s->in_ptr;
}

/* ---- option replies ---- */

/* Append one option reply to out[]. */
static void put_reply(struct sc_nbd_server *s, uint32_t type, const void *data, uint32_t len)
{
    uint8_t *p = s->out + s->out_len;
    be64_put(p, SC_NBD_REP_MAGIC);
    be32_put(p + 8, s->opt);
    be32_put(p + 12, type);
    be32_put(p + 16, len);
    if (len > 0)
        memcpy(p + 20, data, len);
    s->out_len += 20 + len;
}

static void reply_error(struct sc_nbd_server *s, uint32_t type, const char *text)
{
    s->out_len = 0;
    put_reply(s, type, text, (uint32_t)strlen(text));
    nbd_server_send(s, AS_OPT);
}

static void reply_ack(struct sc_nbd_server *s, unsigned after)
{
    put_reply(s, SC_NBD_REP_ACK, NULL, 0);
    nbd_server_send(s, after);
}

static const struct sc_nbd_export *find_export(const struct sc_nbd_server *s, const uint8_t *name,
                                               uint32_t len)
{
    for (size_t i = 0; i < s->cfg.nr_exports; i++) {
        const struct sc_nbd_export *e = &s->cfg.exports[i];
        if (strlen(e->name) == len && memcmp(e->name, name, len) == 0)
            return e;
    }
    return NULL;
}

uint16_t nbd_server_export_flags(const struct sc_nbd_server *s)
{
    const struct sc_nbd_export *e = s->exp;
    const struct sc_nbd_backend_ops *o = e->ops;
    uint16_t f = SC_NBD_FLAG_HAS_FLAGS | SC_NBD_FLAG_SEND_CACHE;
    if (e->read_only)
        f |= SC_NBD_FLAG_READ_ONLY;
    if (o->flush)
        f |= SC_NBD_FLAG_SEND_FLUSH | SC_NBD_FLAG_SEND_FUA;
    if (o->trim && !e->read_only)
        f |= SC_NBD_FLAG_SEND_TRIM;
    if (o->zero && !e->read_only)
        f |= SC_NBD_FLAG_SEND_WRITE_ZEROES | SC_NBD_FLAG_SEND_FAST_ZERO;
    if (e->multi_conn)
        f |= SC_NBD_FLAG_CAN_MULTI_CONN;
    return f;
}

static void after_list(struct sc_nbd_server *s)
{
    s->out_len = 0;
    if (s->list_next < s->cfg.nr_exports) {
        const struct sc_nbd_export *e = &s->cfg.exports[s->list_next++];
        uint8_t item[4 + SC_NBD_MAX_STRING * 2];
        uint32_t nl = str_len(e->name);
        uint32_t dl = e->description ? str_len(e->description) : 0;
        be32_put(item, nl);
        memcpy(item + 4, e->name, nl);
        if (dl)
            memcpy(item + 4 + nl, e->description, dl);
        put_reply(s, SC_NBD_REP_SERVER, item, 4 + nl + dl);
        nbd_server_send(s, AS_LIST_NEXT);
        return;
    }
    reply_ack(s, AS_OPT);
}

/* INFO and GO: u32 name length, name, u16 count, count x u16 info types. */
static void on_info_go(struct sc_nbd_server *s)
{
    const uint8_t *p = s->opt_buf;
    uint32_t len = s->opt_len;
    if (len < 6 || be32_get(p) > len - 6) {
        reply_error(s, SC_NBD_REP_ERR_INVALID, "malformed request");
        return;
    }
    uint32_t nl = be32_get(p);
    uint16_t count = be16_get(p + 4 + nl);
    if (len != 6u + nl + 2u * count) {
        reply_error(s, SC_NBD_REP_ERR_INVALID, "info request length mismatch");
        return;
    }
    const struct sc_nbd_export *e = find_export(s, p + 4, nl);
    if (e == NULL) {
        reply_error(s, SC_NBD_REP_ERR_UNKNOWN, "no such export");
        return;
    }
    s->exp = e;
    s->out_len = 0;
    uint8_t item[14];
    be16_put(item, SC_NBD_INFO_EXPORT);
    be64_put(item + 2, e->size);
    be16_put(item + 10, nbd_server_export_flags(s));
    put_reply(s, SC_NBD_REP_INFO, item, 12);
    /* Each type is answered once, however often it is asked for: out[]
     * holds one of each. */
    bool sent_block = false, sent_desc = false;
    for (uint16_t i = 0; i < count; i++) {
        uint16_t type = be16_get(p + 6 + nl + 2u * i);
        if (type == SC_NBD_INFO_BLOCK_SIZE && !sent_block) {
            sent_block = true;
            be16_put(item, SC_NBD_INFO_BLOCK_SIZE);
            be32_put(item + 2, 1);
            be32_put(item + 6, 4096);
            be32_put(item + 10, SC_NBD_SRV_REQ_MAX);
            put_reply(s, SC_NBD_REP_INFO, item, 14);
        } else if (type == SC_NBD_INFO_DESCRIPTION && e->description != NULL && !sent_desc) {
            sent_desc = true;
            uint8_t d[2 + SC_NBD_MAX_STRING];
            uint32_t dl = str_len(e->description);
            be16_put(d, SC_NBD_INFO_DESCRIPTION);
            memcpy(d + 2, e->description, dl);
            put_reply(s, SC_NBD_REP_INFO, d, 2 + dl);
        }
    }
    if (s->opt == SC_NBD_OPT_GO) {
        reply_ack(s, AS_READY);
    } else {
        s->exp = NULL;
        reply_ack(s, AS_OPT);
    }
}

/* SET/LIST_META_CONTEXT: grant base:allocation when the backend has it. */
static void on_meta(struct sc_nbd_server *s)
{
    const uint8_t *p = s->opt_buf;
    uint32_t len = s->opt_len;
    if (s->opt == SC_NBD_OPT_SET_META_CONTEXT && !s->structured) {
        reply_error(s, SC_NBD_REP_ERR_INVALID, "structured replies first");
        return;
    }
    if (len < 8 || be32_get(p) > len - 8) {
        reply_error(s, SC_NBD_REP_ERR_INVALID, "malformed request");
        return;
    }
    uint32_t nl = be32_get(p);
    const struct sc_nbd_export *e = find_export(s, p + 4, nl);
    if (e == NULL) {
        reply_error(s, SC_NBD_REP_ERR_UNKNOWN, "no such export");
        return;
    }
    uint32_t count = be32_get(p + 4 + nl), at = 8 + nl;
    bool want_base = false;
    for (uint32_t i = 0; i < count; i++) {
        if (at + 4 > len || be32_get(p + at) > len - at - 4) {
            reply_error(s, SC_NBD_REP_ERR_INVALID, "malformed query");
            return;
        }
        uint32_t ql = be32_get(p + at);
        const char *q = (const char *)p + at + 4;
        const size_t bl = strlen(SC_NBD_META_BASE_ALLOCATION);
        if ((ql == bl && memcmp(q, SC_NBD_META_BASE_ALLOCATION, bl) == 0) ||
            (s->opt == SC_NBD_OPT_LIST_META_CONTEXT && ql == 5 && memcmp(q, "base:", 5) == 0))
            want_base = true;
        at += 4 + ql;
    }
    if (at != len) {
        reply_error(s, SC_NBD_REP_ERR_INVALID, "trailing bytes");
        return;
    }
    if (count == 0 && s->opt == SC_NBD_OPT_LIST_META_CONTEXT)
        want_base = true;
    s->out_len = 0;
    bool grant = want_base && e->ops->block_status != NULL;
    if (s->opt == SC_NBD_OPT_SET_META_CONTEXT)
        s->meta_base = grant;
    if (grant) {
        uint8_t item[4 + 16];
        const uint32_t bl = (uint32_t)strlen(SC_NBD_META_BASE_ALLOCATION);
        be32_put(item, 1);
        memcpy(item + 4, SC_NBD_META_BASE_ALLOCATION, bl);
        put_reply(s, SC_NBD_REP_META_CONTEXT, item, 4 + bl);
    }
    reply_ack(s, AS_OPT);
}

static void on_export_name(struct sc_nbd_server *s)
{
    const struct sc_nbd_export *e = find_export(s, s->opt_buf, s->opt_len);
    if (e == NULL) {
        /* The protocol gives EXPORT_NAME no error reply: close. */
        nbd_server_fail(s, SC_ERR_NOT_FOUND, "client asked for an unknown export");
        return;
    }
    s->exp = e;
    s->out_len = 0;
    be64_put(s->out, e->size);
    be16_put(s->out + 8, nbd_server_export_flags(s));
    s->out_len = 10;
    if (!s->client_no_zeroes) {
        memset(s->out + 10, 0, 124);
        s->out_len += 124;
    }
    nbd_server_send(s, AS_READY);
}

/* A whole option is in opt_buf: answer it. */
static int on_option(struct sc_nbd_server *s)
{
    bool tls_gate = s->cfg.tls == SC_NBD_TLS_REQUIRE && !s->tls_active;
    s->out_len = 0;
    switch (s->opt) {
    case SC_NBD_OPT_STARTTLS:
        if (s->opt_len != 0)
            reply_error(s, SC_NBD_REP_ERR_INVALID, "STARTTLS takes no data");
        else if (s->tls_active)
            reply_error(s, SC_NBD_REP_ERR_INVALID, "TLS is already active");
        else if (s->cfg.tls == SC_NBD_TLS_OFF)
            reply_error(s, SC_NBD_REP_ERR_UNSUP, "TLS is not configured");
        else
            reply_ack(s, AS_TLS);
        return 0;
    case SC_NBD_OPT_ABORT:
        reply_ack(s, AS_CLOSE);
        return 0;
    case SC_NBD_OPT_EXPORT_NAME:
        if (tls_gate)
            return nbd_server_fail(s, SC_ERR_TLS_REQUIRED,
                                   "client sent NBD_OPT_EXPORT_NAME before TLS");
        if (s->extended)
            return nbd_server_fail(s, SC_ERR_PROTO,
                                   "client sent NBD_OPT_EXPORT_NAME after extended headers");
        on_export_name(s);
        return s->error;
    default:
        break;
    }
    if (tls_gate) {
        reply_error(s, SC_NBD_REP_ERR_TLS_REQD, "TLS is required");
        return 0;
    }
    switch (s->opt) {
    case SC_NBD_OPT_LIST:
        if (s->opt_len != 0) {
            reply_error(s, SC_NBD_REP_ERR_INVALID, "LIST takes no data");
            return 0;
        }
        s->list_next = 0;
        after_list(s);
        return 0;
    case SC_NBD_OPT_INFO:
    case SC_NBD_OPT_GO:
        on_info_go(s);
        return 0;
    case SC_NBD_OPT_STRUCTURED_REPLY:
        if (s->opt_len != 0) {
            reply_error(s, SC_NBD_REP_ERR_INVALID, "STRUCTURED_REPLY takes no data");
            return 0;
        }
        if (s->extended) {
            reply_error(s, SC_NBD_REP_ERR_EXT_HEADER_REQD, "extended headers are in use");
            return 0;
        }
        s->structured = true;
        reply_ack(s, AS_OPT);
        return 0;
    case SC_NBD_OPT_EXTENDED_HEADERS:
        if (s->opt_len != 0) {
            reply_error(s, SC_NBD_REP_ERR_INVALID, "EXTENDED_HEADERS takes no data");
            return 0;
        }
        s->extended = true;
        s->structured = true;  /* extended replies are structured chunks */
        reply_ack(s, AS_OPT);
        return 0;
    case SC_NBD_OPT_SET_META_CONTEXT:
    case SC_NBD_OPT_LIST_META_CONTEXT:
        on_meta(s);
        return 0;
    default:
        reply_error(s, SC_NBD_REP_ERR_UNSUP, "option not supported");
        return 0;
    }
}

static int on_opt_hdr(struct sc_nbd_server *s)
{
    if (be64_get(s->hdr) != SC_NBD_OPTS_MAGIC)
        return nbd_server_fail(s, SC_ERR_PROTO, "bad option magic");
    s->opt = be32_get(s->hdr + 8);
    s->opt_len = be32_get(s->hdr + 12);
    if (s->opt == SC_NBD_OPT_EXPORT_NAME && s->cfg.tls == SC_NBD_TLS_REQUIRE && !s->tls_active)
        return nbd_server_fail(s, SC_ERR_TLS_REQUIRED,
                               "client sent NBD_OPT_EXPORT_NAME before TLS");
    /* Bound the payload before reading it (QEMU CVE-2017-15119). */
    if (s->opt_len > SC_NBD_SRV_OPT_DRAIN_MAX)
        return nbd_server_fail(s, SC_ERR_TOO_LONG, "option %" PRIu32 " with a %" PRIu32 "-byte payload", s->opt,
                               s->opt_len);
    if (s->opt_len > sizeof(s->opt_buf)) {
        s->opt_left = s->opt_len;
        size_t n = s->opt_left < sizeof(s->opt_buf) ? s->opt_left : sizeof(s->opt_buf);
        nbd_server_expect(s, s->opt_buf, n, SS_OPT_DRAIN);
        return 0;
    }
    if (s->opt_len == 0)
        return on_option(s);
    nbd_server_expect(s, s->opt_buf, s->opt_len, SS_OPT_DATA);
    return 0;
}

static int on_client_flags(struct sc_nbd_server *s)
{
    uint32_t f = be32_get(s->hdr);
    if (f & ~(uint32_t)(SC_NBD_FLAG_C_FIXED_NEWSTYLE | SC_NBD_FLAG_C_NO_ZEROES))
        return nbd_server_fail(s, SC_ERR_PROTO, "unknown client flags 0x%" PRIx32, f);
    s->client_no_zeroes = (f & SC_NBD_FLAG_C_NO_ZEROES) != 0;
    opt_next(s);
    return 0;
}

int sc_nbd_server_recvack(struct sc_nbd_server *s, size_t n)
{
    if (s->error != 0)
        return s->error;
    if (n > s->in_need)
        return nbd_server_fail(s, SC_ERR_INVAL, "driver acknowledged more bytes than offered");
    s->in_ptr += n;
    s->in_need -= n;
    if (s->in_need > 0)
        return 0;
    switch (s->state) {
    case SS_CLIENT_FLAGS:
        return on_client_flags(s);
    case SS_OPT_HDR:
        return on_opt_hdr(s);
    case SS_OPT_DATA:
        return on_option(s);
    case SS_OPT_DRAIN:
        s->opt_left -= (uint32_t)(s->in_ptr - s->opt_buf);
        if (s->opt_left > 0) {
            size_t m = s->opt_left < sizeof(s->opt_buf) ? s->opt_left : sizeof(s->opt_buf);
            nbd_server_expect(s, s->opt_buf, m, SS_OPT_DRAIN);
            return 0;
        }
        reply_error(s, SC_NBD_REP_ERR_TOO_BIG, "option payload too large");
        return 0;
    case SS_REQ_HDR:
    case SS_REQ_DATA:
        return nbd_server_tx_input(s);
    default:
        return nbd_server_fail(s, SC_ERR_INTERNAL, "input in state %u", s->state);
    }
}

int sc_nbd_server_tls_done(struct sc_nbd_server *s)
{
    if (s->state != SS_TLS)
        return nbd_server_fail(s, SC_ERR_STATE, "TLS finished outside STARTTLS");
    /* Nothing negotiated in clear survives (nbdkit CVE-2021-3716). */
    s->tls_active = true;
    s->structured = false;
    s->extended = false;
    s->meta_base = false;
    s->exp = NULL;
    opt_next(s);
    return 0;
}

int sc_nbd_server_eof(struct sc_nbd_server *s)
{
    if (s->state == SS_CLOSED)
        return 0;
    if (s->state == SS_REQ_HDR &&
        s->in_need == (s->extended ? SC_NBD_EXT_REQUEST_LEN : SC_NBD_REQUEST_LEN))
        return nbd_server_fail(s, SC_ERR_EOF, "client left without NBD_CMD_DISC");
    return nbd_server_fail(s, SC_ERR_EOF, "client closed the connection mid-%s",
                           sc_nbd_server_negotiating(s) ? "handshake" : "request");
}

int sc_nbd_server_error(const struct sc_nbd_server *s)
{
    return s->error;
}

const char *sc_nbd_server_errmsg(const struct sc_nbd_server *s)
{
    return s->msg[0] ? s->msg : sc_strerror(s->error);
}
