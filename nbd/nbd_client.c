/* see sechan/nbd.h: the client engine's buffer interface and common parts.
 * The handshake lives in nbd_client_hs.c, transmission in nbd_client_tx.c. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "nbd_client_int.h"

int nbd_client_fail(struct sc_nbd_client *c, int err, const char *fmt, ...)
{
    if (c->error == 0) {
        c->error = err;
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(c->msg, sizeof(c->msg), fmt, ap);
        va_end(ap);
        c->state = CS_FAILED;
    }
    return c->error;
}

void nbd_client_expect(struct sc_nbd_client *c, void *p, size_t n, unsigned state)
{
    c->in_ptr = p;
    c->in_need = n;
    c->state = state;
}

int sc_nbd_client_init(struct sc_nbd_client *c, const struct sc_nbd_client_config *cfg)
{
    if (c == NULL || cfg == NULL)
        return SC_ERR_INVAL;
    memset(c, 0, sizeof(*c));
    c->cfg = *cfg;
    const char *name = cfg->export_name ? cfg->export_name : "";
    size_t len = strlen(name);
    if (len > SC_NBD_NAME_MAX)
        return nbd_client_fail(c, SC_ERR_TOO_LONG, "export name longer than %u bytes",
                               (unsigned)SC_NBD_NAME_MAX);
    memcpy(c->export_name, name, len + 1);
    c->export_name_len = (uint32_t)len;
    c->cfg.export_name = c->export_name;
    c->rx_slot = -1;
    nbd_client_expect(c, c->hdr, 16, CS_GREETING);
    return 0;
}

unsigned sc_nbd_client_state(const struct sc_nbd_client *c)
{
    switch (c->state) {
    case CS_FAILED:
        return SC_NBD_FAILED;
    case CS_CLOSED:
        return SC_NBD_CLOSED;
    case CS_TLS:
        return SC_NBD_WANT_TLS;
    case CS_SEND:
        return SC_NBD_WANT_WRITE;
    case CS_READY: {
        unsigned s = SC_NBD_READY | SC_NBD_WANT_READ;
        if (c->out_pos < c->out_len || c->payload_len > 0 || c->sendq_len > 0 ||
            (c->disc_queued && !c->disc_sent))
            s |= SC_NBD_WANT_WRITE;
        return s;
    }
    default:
        return SC_NBD_WANT_READ;
    }
}

const uint8_t *sc_nbd_client_sendbuf(struct sc_nbd_client *c, size_t *len)
{
    *len = 0;
    if (c->state == CS_SEND) {
        *len = c->out_len - c->out_pos;
        return c->out + c->out_pos;
    }
    if (c->state == CS_READY)
        return nbd_client_tx_sendbuf(c, len);
    return NULL;
}

void sc_nbd_client_sendack(struct sc_nbd_client *c, size_t n)
{
    size_t offered;
    (void)sc_nbd_client_sendbuf(c, &offered);
    if (n > offered) {
        nbd_client_fail(c, SC_ERR_INVAL, "driver acknowledged more bytes than offered");
        return;
    }
    if (c->state == CS_SEND) {
        c->out_pos += n;
        if (c->out_pos == c->out_len)
            nbd_client_hs_sent(c);
    } else if (c->state == CS_READY) {
        nbd_client_tx_sent(c, n);
    }
}

uint8_t *sc_nbd_client_recvbuf(struct sc_nbd_client *c, size_t *room)
{
    *room = 0;
    if (c->state == CS_FAILED || c->state == CS_CLOSED || c->state == CS_TLS ||
        c->state == CS_SEND || c->in_need == 0)
        return NULL;
    *room = c->in_need;
    return c->in_ptr;
}

int sc_nbd_client_recvack(struct sc_nbd_client *c, size_t n)
{
    if (c->error != 0)
        return c->error;
    if (n > c->in_need)
        return nbd_client_fail(c, SC_ERR_INVAL, "driver acknowledged more bytes than offered");
    c->in_ptr += n;
    c->in_need -= n;
    if (c->in_need > 0)
        return 0;
    int r = c->state == CS_READY ? nbd_client_tx_input(c) : nbd_client_hs_input(c);
    return r != 0 ? r : c->error;
}

int sc_nbd_client_eof(struct sc_nbd_client *c)
{
    if (c->state == CS_CLOSED)
        return 0;
    if (c->state == CS_READY && c->disc_sent)
        return 0;
    return nbd_client_fail(c, SC_ERR_EOF,
                           c->state == CS_READY && c->in_flight > 0
                               ? "server closed the connection with %u request(s) unanswered"
                               : "server closed the connection%.0u",
                           c->in_flight);
}

static const char *option_name(uint32_t opt)
{
    switch (opt) {
    case SC_NBD_OPT_EXPORT_NAME: return "NBD_OPT_EXPORT_NAME";
    case SC_NBD_OPT_ABORT: return "NBD_OPT_ABORT";
    case SC_NBD_OPT_LIST: return "NBD_OPT_LIST";
    case SC_NBD_OPT_STARTTLS: return "NBD_OPT_STARTTLS";
    case SC_NBD_OPT_INFO: return "NBD_OPT_INFO";
    case SC_NBD_OPT_GO: return "NBD_OPT_GO";
    case SC_NBD_OPT_STRUCTURED_REPLY: return "NBD_OPT_STRUCTURED_REPLY";
    case SC_NBD_OPT_EXTENDED_HEADERS: return "NBD_OPT_EXTENDED_HEADERS";
    case SC_NBD_OPT_SET_META_CONTEXT: return "NBD_OPT_SET_META_CONTEXT";
    default: return "an option";
    }
}

const char *nbd_client_waiting_for(const struct sc_nbd_client *c, char *buf, size_t cap)
{
    switch (c->state) {
    case CS_GREETING:
    case CS_GREETING_FLAGS:
        snprintf(buf, cap, "the server's greeting");
        break;
    case CS_OPT_REPLY:
    case CS_OPT_PAYLOAD:
        snprintf(buf, cap, "the reply to %s", option_name(c->cur_opt));
        break;
    case CS_EXPORT_REPLY:
    case CS_EXPORT_ZEROES:
        snprintf(buf, cap, "the reply to NBD_OPT_EXPORT_NAME");
        break;
    case CS_TLS:
        snprintf(buf, cap, "the TLS handshake");
        break;
    case CS_SEND:
        snprintf(buf, cap, "the server to take %s", option_name(c->cur_opt));
        break;
    default:
        snprintf(buf, cap, "replies to %u request(s)", c->in_flight);
        break;
    }
    return buf;
}

const struct sc_nbd_export_info *sc_nbd_client_info(const struct sc_nbd_client *c)
{
    return &c->info;
}

int sc_nbd_client_error(const struct sc_nbd_client *c)
{
    return c->error;
}

const char *sc_nbd_client_errmsg(const struct sc_nbd_client *c)
{
    return c->msg[0] ? c->msg : sc_strerror(c->error);
}
