/* The NBD client engine's handshake: fixed newstyle negotiation with
 * STARTTLS, LIST, STRUCTURED_REPLY, SET_META_CONTEXT and GO/INFO, and the
 * NBD_OPT_EXPORT_NAME fallback. One handler per named state. */
#include <inttypes.h>
#include <string.h>

#include "nbd_client_int.h"
#include "nbd_wire.h"

/* Which option the plan sends next (next_opt_step). */
enum { STEP_STARTTLS = 0, STEP_LIST, STEP_EXTENDED, STEP_STRUCTURED, STEP_META, STEP_GO, STEP_END };
/* What follows a completed send (after_send). */
enum { AFTER_FLAGS = 1, AFTER_OPTION, AFTER_EXPORT_NAME, AFTER_ABORT };

/* Up to 80 bytes of a peer's message, with anything unprintable replaced. */
static const char *printable(char *dst, size_t cap, const uint8_t *src, size_t len)
{
    size_t n = len < cap - 1 ? len : cap - 1;
    if (n > 80)
        n = 80;
    for (size_t i = 0; i < n; i++)
        dst[i] = src[i] >= 0x20 && src[i] < 0x7f ? (char)src[i] : '?';
    dst[n] = '\0';
    return dst;
}

static void send_out(struct sc_nbd_client *c, size_t len, unsigned after)
{
    c->out_len = len;
    c->out_pos = 0;
    c->after_send = after;
    c->state = CS_SEND;
}

/* An option request: IHAVEOPT, option, length, data (already at out+16). */
static void send_option(struct sc_nbd_client *c, uint32_t opt, uint32_t data_len)
{
    be64_put(c->out, SC_NBD_OPTS_MAGIC);
    be32_put(c->out + 8, opt);
    be32_put(c->out + 12, data_len);
    c->cur_opt = opt;
    send_out(c, SC_NBD_OPT_HDR_LEN + data_len,
             opt == SC_NBD_OPT_EXPORT_NAME ? AFTER_EXPORT_NAME
             : opt == SC_NBD_OPT_ABORT     ? AFTER_ABORT
                                           : AFTER_OPTION);
}

/* u32 name length + name at out+16+at; returns the bytes written. */
static uint32_t put_name(struct sc_nbd_client *c, size_t at)
{
    uint8_t *p = c->out + SC_NBD_OPT_HDR_LEN + at;
    be32_put(p, c->export_name_len);
    memcpy(p + 4, c->export_name, c->export_name_len);
    return 4 + c->export_name_len;
}

static void send_go(struct sc_nbd_client *c)
{
    uint32_t n = put_name(c, 0);
    uint8_t *p = c->out + SC_NBD_OPT_HDR_LEN + n;
    /* Ask for block sizes (we honour them) and the description. */
    be16_put(p, 2);
    be16_put(p + 2, SC_NBD_INFO_BLOCK_SIZE);
    be16_put(p + 4, SC_NBD_INFO_DESCRIPTION);
    send_option(c, c->cfg.info_only ? SC_NBD_OPT_INFO : SC_NBD_OPT_GO, n + 6);
}

static void send_meta(struct sc_nbd_client *c)
{
    uint32_t n = put_name(c, 0);
    uint8_t *p = c->out + SC_NBD_OPT_HDR_LEN + n;
    const uint32_t qlen = (uint32_t)strlen(SC_NBD_META_BASE_ALLOCATION);
    be32_put(p, 1);
    be32_put(p + 4, qlen);
    memcpy(p + 8, SC_NBD_META_BASE_ALLOCATION, qlen);
    send_option(c, SC_NBD_OPT_SET_META_CONTEXT, n + 8 + qlen);
}

static void send_export_name(struct sc_nbd_client *c)
{
    memcpy(c->out + SC_NBD_OPT_HDR_LEN, c->export_name, c->export_name_len);
    send_option(c, SC_NBD_OPT_EXPORT_NAME, c->export_name_len);
}

/* Send the next option of the plan. Under SC_NBD_TLS_REQUIRE the plan's
 * first option is STARTTLS, and a refusal ends the session, so nothing
 * about exports is ever sent in clear. */
static void advance_options(struct sc_nbd_client *c)
{
    for (;;) {
        switch (c->next_opt_step++) {
        case STEP_STARTTLS:
            if (c->cfg.tls != SC_NBD_TLS_OFF && !c->tls_active) {
                send_option(c, SC_NBD_OPT_STARTTLS, 0);
                return;
            }
            break;
        case STEP_LIST:
            if (c->cfg.list_exports && !c->listed) {
                send_option(c, SC_NBD_OPT_LIST, 0);
                return;
            }
            break;
        case STEP_EXTENDED:
            /* Extended headers take the place of structured replies; servers
             * that predate them answer NBD_REP_ERR_UNSUP. */
            if (!c->cfg.no_structured_replies && !c->cfg.no_extended_headers) {
                send_option(c, SC_NBD_OPT_EXTENDED_HEADERS, 0);
                return;
            }
            break;
        case STEP_STRUCTURED:
            if (!c->cfg.no_structured_replies && !c->info.extended_headers) {
                send_option(c, SC_NBD_OPT_STRUCTURED_REPLY, 0);
                return;
            }
            break;
        case STEP_META:
            if (c->info.structured_replies && !c->cfg.no_block_status) {
                send_meta(c);
                return;
            }
            break;
        default:
            send_go(c);
            return;
        }
    }
}

static void enter_ready(struct sc_nbd_client *c)
{
    c->info.tls = c->tls_active;
    c->info.block_status = c->meta_id != 0 || c->info.block_status;
    nbd_client_tx_start(c);
}

static int check_export(struct sc_nbd_client *c, uint64_t size, uint16_t flags)
{
    /* Sizes above 2^63 break signed offsets everywhere (libnbd CVE-2023-5215). */
    if (size > (uint64_t)INT64_MAX)
        return nbd_client_fail(c, SC_ERR_PROTO, "server sent an export size above 2^63");
    c->info.size = size;
    c->info.flags = (flags & SC_NBD_FLAG_HAS_FLAGS) ? flags : 0;
    c->have_export_info = true;
    return 0;
}

static bool pow2(uint32_t v)
{
    return v != 0 && (v & (v - 1)) == 0;
}

static int on_info(struct sc_nbd_client *c, const uint8_t *p, uint32_t len)
{
    if (len < 2)
        return nbd_client_fail(c, SC_ERR_PROTO, "NBD_REP_INFO shorter than its type");
    uint16_t type = be16_get(p);
    switch (type) {
    case SC_NBD_INFO_EXPORT:
        if (len != 12)
            return nbd_client_fail(c, SC_ERR_PROTO, "NBD_INFO_EXPORT of %" PRIu32 " bytes", len);
        return check_export(c, be64_get(p + 2), be16_get(p + 10));
    case SC_NBD_INFO_BLOCK_SIZE: {
        if (len != 14)
            return nbd_client_fail(c, SC_ERR_PROTO, "NBD_INFO_BLOCK_SIZE of %" PRIu32 " bytes", len);
        uint32_t min = be32_get(p + 2), pref = be32_get(p + 6), max = be32_get(p + 10);
        if (!pow2(min) || min > 65536 || !pow2(pref) || pref < min || max < pref ||
            (max != UINT32_MAX && max % min != 0))
            return nbd_client_fail(c, SC_ERR_PROTO, "inconsistent block sizes %" PRIu32 "/%" PRIu32 "/%" PRIu32, min,
                                   pref, max);
        c->info.block_min = min;
        c->info.block_pref = pref;
        c->info.block_max = max;
        return 0;
    }
    case SC_NBD_INFO_DESCRIPTION:
        printable(c->info.description, sizeof(c->info.description), p + 2, len - 2u);
        return 0;
    default:
        return 0;  /* NAME and types we did not ask for: ignore */
    }
}

static int on_server(struct sc_nbd_client *c, const uint8_t *p, uint32_t len)
{
    if (len < 4 || be32_get(p) > len - 4)
        return nbd_client_fail(c, SC_ERR_PROTO, "malformed NBD_REP_SERVER");
    uint32_t name_len = be32_get(p);
    if (c->cfg.on_export != NULL) {
        char name[SC_NBD_OPT_REPLY_MAX + 1], desc[SC_NBD_OPT_REPLY_MAX + 1];
        memcpy(name, p + 4, name_len);
        name[name_len] = '\0';
        memcpy(desc, p + 4 + name_len, len - 4 - name_len);
        desc[len - 4 - name_len] = '\0';
        c->cfg.on_export(c->cfg.on_export_arg, name, desc);
    }
    return 0;
}

static int on_meta(struct sc_nbd_client *c, const uint8_t *p, uint32_t len)
{
    const size_t qlen = strlen(SC_NBD_META_BASE_ALLOCATION);
    if (len != 4 + qlen || memcmp(p + 4, SC_NBD_META_BASE_ALLOCATION, qlen) != 0)
        return nbd_client_fail(c, SC_ERR_PROTO, "server granted a meta context we did not ask for");
    c->meta_id = be32_get(p);
    c->info.block_status = true;
    return 0;
}

/* An error reply to cur_opt: decide whether the session can go on. */
static int on_option_error(struct sc_nbd_client *c, uint32_t type, const uint8_t *p,
                           uint32_t len)
{
    char text[96];
    printable(text, sizeof(text), p, len);
    uint32_t code = type & ~SC_NBD_REP_FLAG_ERROR;
    switch (c->cur_opt) {
    case SC_NBD_OPT_STARTTLS:
        if (c->cfg.tls == SC_NBD_TLS_REQUIRE)
            return nbd_client_fail(c, SC_ERR_TLS_REQUIRED,
                                   "server refused NBD_OPT_STARTTLS (error %" PRIu32 "%s%s) and TLS is "
                                   "required", code, len ? ": " : "", text);
        advance_options(c);  /* optional TLS: carry on in clear */
        return 0;
    case SC_NBD_OPT_LIST:
        c->listed = true;
        advance_options(c);
        return 0;
    case SC_NBD_OPT_EXTENDED_HEADERS:
    case SC_NBD_OPT_STRUCTURED_REPLY:
    case SC_NBD_OPT_SET_META_CONTEXT:
        advance_options(c);
        return 0;
    default:
        break;
    }
    /* GO / INFO */
    if (type == SC_NBD_REP_ERR_UNSUP && !c->cfg.info_only && c->info.extended_headers)
        return nbd_client_fail(c, SC_ERR_PROTO, "server agreed to extended headers but lacks "
                               "NBD_OPT_GO");
    if (type == SC_NBD_REP_ERR_UNSUP && !c->cfg.info_only) {
        if (c->cfg.tls == SC_NBD_TLS_REQUIRE)
            return nbd_client_fail(c, SC_ERR_UNSUPPORTED,
                                   "server lacks NBD_OPT_GO; the NBD_OPT_EXPORT_NAME fallback "
                                   "is not used when TLS is required");
        c->info.used_export_name = true;
        send_export_name(c);
        return 0;
    }
    if (type == SC_NBD_REP_ERR_UNKNOWN)
        return nbd_client_fail(c, SC_ERR_NOT_FOUND, "server has no export named '%.64s'%s%s",
                               c->export_name, len ? ": " : "", text);
    if (type == SC_NBD_REP_ERR_TLS_REQD)
        return nbd_client_fail(c, SC_ERR_TLS_REQUIRED, "server requires TLS%s%s",
                               len ? ": " : "", text);
    return nbd_client_fail(c, SC_ERR_REMOTE, "server refused the export (error %" PRIu32 "%s%s)", code,
                           len ? ": " : "", text);
}

static int on_ack(struct sc_nbd_client *c)
{
    switch (c->cur_opt) {
    case SC_NBD_OPT_STARTTLS:
        c->state = CS_TLS;
        return 0;
    case SC_NBD_OPT_LIST:
        c->listed = true;
        break;
    case SC_NBD_OPT_EXTENDED_HEADERS:
        c->info.extended_headers = true;
        c->info.structured_replies = true;
        break;
    case SC_NBD_OPT_STRUCTURED_REPLY:
        c->info.structured_replies = true;
        break;
    case SC_NBD_OPT_SET_META_CONTEXT:
        break;
    case SC_NBD_OPT_GO:
    case SC_NBD_OPT_INFO:
        if (!c->have_export_info)
            return nbd_client_fail(c, SC_ERR_PROTO, "server acknowledged %s without "
                                   "NBD_INFO_EXPORT", c->cur_opt == SC_NBD_OPT_GO ? "GO" : "INFO");
        if (c->cfg.info_only) {
            send_option(c, SC_NBD_OPT_ABORT, 0);
            return 0;
        }
        enter_ready(c);
        return 0;
    default:
        return nbd_client_fail(c, SC_ERR_INTERNAL, "acknowledgement for option %" PRIu32, c->cur_opt);
    }
    advance_options(c);
    return 0;
}

/* A whole option reply (header in hdr, payload in scratch). */
static int on_option_reply(struct sc_nbd_client *c)
{
    uint32_t type = c->rx_type, len = c->rx_len;
    const uint8_t *p = c->scratch;
    if (type & SC_NBD_REP_FLAG_ERROR)
        return on_option_error(c, type, p, len);
    switch (type) {
    case SC_NBD_REP_ACK:
        if (len != 0)
            return nbd_client_fail(c, SC_ERR_PROTO, "NBD_REP_ACK with a %" PRIu32 "-byte payload", len);
        return on_ack(c);
    case SC_NBD_REP_SERVER:
        if (c->cur_opt != SC_NBD_OPT_LIST)
            break;
        if (on_server(c, p, len) != 0)
            return c->error;
        nbd_client_expect(c, c->hdr, SC_NBD_OPT_REPLY_HDR_LEN, CS_OPT_REPLY);
        return 0;
    case SC_NBD_REP_INFO:
        if (c->cur_opt != SC_NBD_OPT_GO && c->cur_opt != SC_NBD_OPT_INFO)
            break;
        if (on_info(c, p, len) != 0)
            return c->error;
        nbd_client_expect(c, c->hdr, SC_NBD_OPT_REPLY_HDR_LEN, CS_OPT_REPLY);
        return 0;
    case SC_NBD_REP_META_CONTEXT:
        if (c->cur_opt != SC_NBD_OPT_SET_META_CONTEXT)
            break;
        if (on_meta(c, p, len) != 0)
            return c->error;
        nbd_client_expect(c, c->hdr, SC_NBD_OPT_REPLY_HDR_LEN, CS_OPT_REPLY);
        return 0;
    default:
        break;
    }
    return nbd_client_fail(c, SC_ERR_PROTO, "unexpected reply type %" PRIu32 " to option %" PRIu32, type,
                           c->cur_opt);
}

static int on_greeting(struct sc_nbd_client *c)
{
    uint64_t magic = be64_get(c->hdr), second = be64_get(c->hdr + 8);
    if (magic != SC_NBD_MAGIC)
        return nbd_client_fail(c, SC_ERR_PROTO, "not an NBD server (bad greeting magic)");
    if (second == SC_NBD_OLDSTYLE_MAGIC) {
        /* Oldstyle has no options, hence no TLS (libnbd CVE-2019-14842). */
        if (c->cfg.tls == SC_NBD_TLS_REQUIRE)
            return nbd_client_fail(c, SC_ERR_TLS_REQUIRED,
                                   "server speaks oldstyle NBD, which cannot do TLS");
        return nbd_client_fail(c, SC_ERR_UNSUPPORTED, "oldstyle NBD servers are not supported");
    }
    if (second != SC_NBD_OPTS_MAGIC)
        return nbd_client_fail(c, SC_ERR_PROTO, "not a newstyle NBD server");
    nbd_client_expect(c, c->hdr, 2, CS_GREETING_FLAGS);
    return 0;
}

static int on_greeting_flags(struct sc_nbd_client *c)
{
    uint16_t flags = be16_get(c->hdr);
    if (!(flags & SC_NBD_FLAG_FIXED_NEWSTYLE))
        return nbd_client_fail(c, SC_ERR_UNSUPPORTED,
                               "server lacks fixed newstyle negotiation");
    c->server_no_zeroes = (flags & SC_NBD_FLAG_NO_ZEROES) != 0;
    uint32_t ours = SC_NBD_FLAG_C_FIXED_NEWSTYLE |
                    (c->server_no_zeroes ? SC_NBD_FLAG_C_NO_ZEROES : 0u);
    be32_put(c->out, ours);
    send_out(c, 4, AFTER_FLAGS);
    return 0;
}

static int on_option_header(struct sc_nbd_client *c)
{
    if (be64_get(c->hdr) != SC_NBD_REP_MAGIC)
        return nbd_client_fail(c, SC_ERR_PROTO, "bad option reply magic");
    if (be32_get(c->hdr + 8) != c->cur_opt)
        return nbd_client_fail(c, SC_ERR_PROTO, "reply to option %" PRIu32 " while %" PRIu32 " was asked",
                               be32_get(c->hdr + 8), c->cur_opt);
    c->rx_type = be32_get(c->hdr + 12);
    c->rx_len = be32_get(c->hdr + 16);
    /* Bound the payload before reading any of it. */
    if (c->rx_len > sizeof(c->scratch))
        return nbd_client_fail(c, SC_ERR_TOO_LONG, "option reply of %" PRIu32 " bytes (limit %u)",
                               c->rx_len, (unsigned)sizeof(c->scratch));
    if (c->rx_len == 0)
        return on_option_reply(c);
    nbd_client_expect(c, c->scratch, c->rx_len, CS_OPT_PAYLOAD);
    return 0;
}

static int on_export_reply(struct sc_nbd_client *c)
{
    if (check_export(c, be64_get(c->hdr), be16_get(c->hdr + 8)) != 0)
        return c->error;
    if (!c->server_no_zeroes) {
        nbd_client_expect(c, c->scratch, 124, CS_EXPORT_ZEROES);
        return 0;
    }
    enter_ready(c);
    return 0;
}

int nbd_client_hs_input(struct sc_nbd_client *c)
{
    switch (c->state) {
    case CS_GREETING:
        return on_greeting(c);
    case CS_GREETING_FLAGS:
        return on_greeting_flags(c);
    case CS_OPT_REPLY:
        return on_option_header(c);
    case CS_OPT_PAYLOAD:
        return on_option_reply(c);
    case CS_EXPORT_REPLY:
        return on_export_reply(c);
    case CS_EXPORT_ZEROES:
        enter_ready(c);
        return 0;
    default:
        return nbd_client_fail(c, SC_ERR_INTERNAL, "input in state %u", c->state);
    }
}

void nbd_client_hs_sent(struct sc_nbd_client *c)
{
    switch (c->after_send) {
    case AFTER_FLAGS:
        advance_options(c);
        break;
    case AFTER_OPTION:
        nbd_client_expect(c, c->hdr, SC_NBD_OPT_REPLY_HDR_LEN, CS_OPT_REPLY);
        break;
    case AFTER_EXPORT_NAME:
        nbd_client_expect(c, c->hdr, 10, CS_EXPORT_REPLY);
        break;
    default:
        c->state = CS_CLOSED;  /* NBD_OPT_ABORT sent: nothing more to say */
        break;
    }
}

int sc_nbd_client_tls_done(struct sc_nbd_client *c)
{
    if (c->state != CS_TLS)
        return nbd_client_fail(c, SC_ERR_STATE, "TLS finished outside STARTTLS");
    /* Forget everything negotiated in clear (nbdkit CVE-2021-3716). */
    memset(&c->info, 0, sizeof(c->info));
    c->have_export_info = false;
    c->meta_id = 0;
    c->listed = false;
    c->tls_active = true;
    c->next_opt_step = STEP_LIST;
    advance_options(c);
    return 0;
}
