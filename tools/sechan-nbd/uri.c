/* see uri.h */
#include "uri.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int fail(char *err, size_t cap, const char *msg)
{
    snprintf(err, cap, "%s", msg);
    return -1;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Percent-decode [s, s+n) into dst (cap bytes with the NUL); -1 if it does
 * not fit, a %XX is malformed, or it decodes to a NUL. */
static int decode(char *dst, size_t cap, const char *s, size_t n)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (c == '%') {
            if (i + 2 >= n)
                return -1;
            int hi = hexval(s[i + 1]), lo = hexval(s[i + 2]);
            if (hi < 0 || lo < 0 || (hi == 0 && lo == 0))
                return -1;
            c = (char)(hi << 4 | lo);
            i += 2;
        }
        if (o + 1 >= cap)
            return -1;
        dst[o++] = c;
    }
    dst[o] = '\0';
    return 0;
}

bool nbd_uri_is_uri(const char *s)
{
    return strncmp(s, "nbd://", 6) == 0 || strncmp(s, "nbds://", 7) == 0 ||
           strncmp(s, "nbd+unix://", 11) == 0 || strncmp(s, "nbds+unix://", 12) == 0;
}

static int parse_query(const char *q, struct nbd_uri *u, char *err, size_t cap)
{
    while (*q) {
        const char *amp = strchr(q, '&');
        size_t len = amp ? (size_t)(amp - q) : strlen(q);
        const char *eq = memchr(q, '=', len);
        if (eq == NULL)
            return fail(err, cap, "query parameter without '='");
        size_t klen = (size_t)(eq - q), vlen = len - klen - 1;
        const char *v = eq + 1;
        char *dst = NULL;
        size_t dcap = 0;
        char flag[8];
        if (klen == 6 && memcmp(q, "socket", 6) == 0) {
            dst = u->socket;
            dcap = sizeof(u->socket);
        } else if (klen == 16 && memcmp(q, "tls-certificates", 16) == 0) {
            dst = u->tls_certificates;
            dcap = sizeof(u->tls_certificates);
        } else if (klen == 12 && memcmp(q, "tls-psk-file", 12) == 0) {
            dst = u->tls_psk_file;
            dcap = sizeof(u->tls_psk_file);
        } else if (klen == 12 && memcmp(q, "tls-username", 12) == 0) {
            dst = u->user;
            dcap = sizeof(u->user);
        } else if (klen == 12 && memcmp(q, "tls-hostname", 12) == 0) {
            dst = u->tls_hostname;
            dcap = sizeof(u->tls_hostname);
        } else if (klen == 15 && memcmp(q, "tls-verify-peer", 15) == 0) {
            if (decode(flag, sizeof(flag), v, vlen) != 0)
                return fail(err, cap, "bad tls-verify-peer value");
            if (strcmp(flag, "true") == 0 || strcmp(flag, "1") == 0)
                u->tls_verify_peer = true;
            else if (strcmp(flag, "false") == 0 || strcmp(flag, "0") == 0)
                u->tls_verify_peer = false;
            else
                return fail(err, cap, "tls-verify-peer must be true or false");
        } else {
            snprintf(err, cap, "unknown query parameter '%.*s'", (int)(klen > 40 ? 40 : klen),
                     q);
            return -1;
        }
        if (dst != NULL && decode(dst, dcap, v, vlen) != 0) {
            snprintf(err, cap, "value of '%.*s' is malformed or too long", (int)klen, q);
            return -1;
        }
        q += len + (amp != NULL);
    }
    return 0;
}

int nbd_uri_parse(const char *s, struct nbd_uri *u, char *err, size_t cap)
{
    memset(u, 0, sizeof(*u));
    u->tls_verify_peer = true;
    u->port = 10809;
    if (strlen(s) > 16384)
        return fail(err, cap, "URI too long");
    const char *p;
    if (strncmp(s, "nbds+unix://", 12) == 0) {
        u->tls = u->is_unix = true;
        p = s + 12;
    } else if (strncmp(s, "nbd+unix://", 11) == 0) {
        u->is_unix = true;
        p = s + 11;
    } else if (strncmp(s, "nbds://", 7) == 0) {
        u->tls = true;
        p = s + 7;
    } else if (strncmp(s, "nbd://", 6) == 0) {
        p = s + 6;
    } else {
        return fail(err, cap, "not an NBD URI (nbd://, nbds://, nbd+unix://, nbds+unix://)");
    }
    /* authority: up to '/', '?' or the end */
    size_t alen = strcspn(p, "/?");
    const char *auth = p, *rest = p + alen;
    const char *at = memchr(auth, '@', alen);
    if (at != NULL) {
        if (decode(u->user, sizeof(u->user), auth, (size_t)(at - auth)) != 0)
            return fail(err, cap, "malformed user name");
        alen -= (size_t)(at - auth) + 1;
        auth = at + 1;
    }
    if (u->is_unix) {
        if (alen != 0)
            return fail(err, cap, "nbd+unix URIs take no host (use ?socket=PATH)");
    } else {
        const char *port = NULL;
        size_t hlen = alen;
        if (alen > 0 && auth[0] == '[') {
            const char *close = memchr(auth, ']', alen);
            if (close == NULL)
                return fail(err, cap, "unterminated [IPv6 address]");
            hlen = (size_t)(close - auth - 1);
            if (hlen == 0 || hlen >= sizeof(u->host))
                return fail(err, cap, "bad [IPv6 address]");
            memcpy(u->host, auth + 1, hlen);
            u->host[hlen] = '\0';
            if ((size_t)(close + 1 - auth) < alen) {
                if (close[1] != ':')
                    return fail(err, cap, "junk after [IPv6 address]");
                port = close + 2;
            }
        } else {
            const char *colon = memchr(auth, ':', alen);
            if (colon != NULL) {
                hlen = (size_t)(colon - auth);
                port = colon + 1;
            }
            if (hlen == 0 || hlen >= sizeof(u->host))
                return fail(err, cap, "missing or too long host name");
            memcpy(u->host, auth, hlen);
            u->host[hlen] = '\0';
        }
        if (port != NULL) {
            size_t plen = (size_t)(auth + alen - port);
            char digits[8];
            if (plen == 0 || plen > 5 || strspn(port, "0123456789") < plen)
                return fail(err, cap, "port must be a number from 1 to 65535");
            memcpy(digits, port, plen);
            digits[plen] = '\0';
            long v = strtol(digits, NULL, 10);
            if (v < 1 || v > 65535)
                return fail(err, cap, "port must be a number from 1 to 65535");
            u->port = (uint16_t)v;
        }
    }
    /* path: the export name after the first '/' */
    if (*rest == '/') {
        size_t plen = strcspn(rest + 1, "?");
        if (decode(u->export_name, sizeof(u->export_name), rest + 1, plen) != 0)
            return fail(err, cap, "export name malformed or longer than 4096 bytes");
        rest += 1 + plen;
    }
    if (*rest == '?' && parse_query(rest + 1, u, err, cap) != 0)
        return -1;
    if (u->is_unix && u->socket[0] == '\0')
        return fail(err, cap, "nbd+unix URIs need ?socket=PATH");
    if (!u->is_unix && u->socket[0] != '\0')
        return fail(err, cap, "?socket= belongs to nbd+unix URIs");
    if (u->tls_certificates[0] && u->tls_psk_file[0])
        return fail(err, cap, "give tls-certificates or tls-psk-file, not both");
    if (!u->tls && (u->tls_certificates[0] || u->tls_psk_file[0]))
        return fail(err, cap, "TLS parameters need an nbds:// URI");
    return 0;
}
