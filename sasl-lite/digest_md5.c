/* DIGEST-MD5 (RFC 2831), client and server, with qop auth, auth-int and
 * auth-conf (des, 3des). The security layer itself is sasl_layer.c; this
 * file derives its keys. See sechan/sasl.h. */
#include <stdio.h>
#include <string.h>

#include "sasl_internal.h"

#define DIGEST_CHALLENGE_MAX 2048  /* RFC 2831 2.1.1: less than 2048 bytes */
#define DIGEST_VALUE_MAX 512
#define DIGEST_URI_MAX (2 * SC_SASL_NAME_MAX + 2)

/* ---- the directive parser: name=value or name="quoted", comma separated,
 * in any order, with optional white space (RFC 2831 #rule) ---- */

struct dparse {
    const char *s;
    size_t len;
    size_t pos;
};

static bool is_lws(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

static bool is_token_char(char c)
{
    if ((unsigned char)c <= 0x20 || (unsigned char)c >= 0x7f)
        return false;
    return strchr("()<>@,;:\\\"/[]?={}", c) == NULL;
}

/* 1: one directive in name/val; 0: the end; < 0: malformed. */
static int next_directive(struct dparse *p, char *name, size_t name_cap, char *val,
                          size_t val_cap, size_t *val_len)
{
    while (p->pos < p->len && (is_lws(p->s[p->pos]) || p->s[p->pos] == ','))
        p->pos++;
    if (p->pos >= p->len)
        return 0;
    size_t n = 0;
    while (p->pos < p->len && is_token_char(p->s[p->pos])) {
        if (n + 1 >= name_cap)
            return SC_ERR_TOO_LONG;
        name[n++] = p->s[p->pos++];
    }
    name[n] = '\0';
    while (p->pos < p->len && is_lws(p->s[p->pos]))
        p->pos++;
    if (n == 0 || p->pos >= p->len || p->s[p->pos] != '=')
        return SC_ERR_PROTO;
    p->pos++;
    while (p->pos < p->len && is_lws(p->s[p->pos]))
        p->pos++;
    size_t v = 0;
    if (p->pos < p->len && p->s[p->pos] == '"') {
        p->pos++;
        for (;;) {
            if (p->pos >= p->len)
                return SC_ERR_PROTO;  /* unterminated */
            char c = p->s[p->pos++];
            if (c == '"')
                break;
            if (c == '\\') {
                if (p->pos >= p->len)
                    return SC_ERR_PROTO;
                c = p->s[p->pos++];
            }
            if (c == '\0')
                return SC_ERR_PROTO;
            if (v + 1 >= val_cap)
                return SC_ERR_TOO_LONG;
            val[v++] = c;
        }
    } else {
        while (p->pos < p->len && is_token_char(p->s[p->pos])) {
            if (v + 1 >= val_cap)
                return SC_ERR_TOO_LONG;
            val[v++] = p->s[p->pos++];
        }
    }
    val[v] = '\0';
    *val_len = v;
    while (p->pos < p->len && is_lws(p->s[p->pos]))
        p->pos++;
    if (p->pos < p->len && p->s[p->pos] != ',')
        return SC_ERR_PROTO;
    return 1;
}

/* Bits for a comma-separated list of qop or cipher names (unknown ones
 * are ignored: rc4 and friends). */
static unsigned list_bits(const char *v, bool ciphers)
{
    unsigned bits = 0;
    while (*v != '\0') {
        while (*v == ',' || is_lws(*v))
            v++;
        size_t n = 0;
        while (v[n] != '\0' && v[n] != ',' && !is_lws(v[n]))
            n++;
        if (!ciphers) {
            if (n == 4 && memcmp(v, "auth", 4) == 0)
                bits |= SC_SASL_QOP_AUTH;
            else if (n == 8 && memcmp(v, "auth-int", 8) == 0)
                bits |= SC_SASL_QOP_INT;
            else if (n == 9 && memcmp(v, "auth-conf", 9) == 0)
                bits |= SC_SASL_QOP_CONF;
        } else {
            if (n == 3 && memcmp(v, "des", 3) == 0)
                bits |= SC_SASL_CIPHER_DES;
            else if (n == 4 && memcmp(v, "3des", 4) == 0)
                bits |= SC_SASL_CIPHER_3DES;
        }
        v += n;
    }
    return bits;
}

static const char *qop_name(unsigned qop)
{
    return qop == SC_SASL_QOP_CONF ? "auth-conf" : qop == SC_SASL_QOP_INT ? "auth-int" : "auth";
}

static int parse_maxbuf(const char *v, size_t len, uint32_t *out)
{
    if (len == 0 || len > 8)
        return SC_ERR_PROTO;
    uint32_t x = 0;
    for (size_t i = 0; i < len; i++) {
        if (v[i] < '0' || v[i] > '9')
            return SC_ERR_PROTO;
        x = x * 10 + (uint32_t)(v[i] - '0');
    }
    if (x <= 16 || x > SC_SASL_MAXBUF_MAX)
        return SC_ERR_PROTO;  /* RFC 2831: bigger than 16 */
    if (x < SC_SASL_MAXBUF_MIN)
        return SC_ERR_SASL_POLICY;  /* legal, but leaves a frame no room */
    *out = x;
    return SC_OK;
}

/* Quote a value, escaping '"' and '\'. */
static void put_quoted(struct sasl_text *t, const char *name, const char *v)
{
    sasl_puts(t, name);
    sasl_puts(t, "=\"");
    for (; *v != '\0'; v++) {
        if (*v == '"' || *v == '\\')
            sasl_puts(t, "\\");
        sasl_put(t, v, 1);
    }
    sasl_puts(t, "\"");
}

int sc_sasl_digest_secret_make(uint8_t ha1[16], const char *user, const char *realm,
                               const char *password)
{
    if (ha1 == NULL || user == NULL || realm == NULL || password == NULL)
        return SC_ERR_INVAL;
    int r = sasl_check_ascii(user, SC_SASL_NAME_MAX);
    if (r == 0)
        r = sasl_check_ascii(realm, SC_SASL_NAME_MAX);
    if (r == 0)
        r = sasl_check_ascii(password, SC_SASL_PASS_MAX);
    if (r != 0)
        return r;
    r = sasl_init_crypto();
    if (r != 0)
        return r;
    char buf[2 * SC_SASL_NAME_MAX + SC_SASL_PASS_MAX + 3];
    int n = snprintf(buf, sizeof(buf), "%s:%s:%s", user, realm, password);
    r = sasl_hash(5, buf, (size_t)n, NULL, 0, ha1);
    sasl_wipe(buf, sizeof(buf));
    return r;
}

/* H(A1) from the stored H(user:realm:password), and the response value
 * (or, with rsp true, rspauth) as 32 hex digits. */
static int session_key(uint8_t ha1[16], const uint8_t urp[16], const char *nonce,
                       const char *cnonce, const char *authzid)
{
    char buf[16 + 2 * SASL_NONCE_MAX + SC_SASL_NAME_MAX + 4];
    struct sasl_text t = {.buf = buf, .cap = sizeof(buf)};
    sasl_put(&t, (const char *)urp, 16);
    sasl_puts(&t, ":");
    sasl_puts(&t, nonce);
    sasl_puts(&t, ":");
    sasl_puts(&t, cnonce);
    if (authzid != NULL && authzid[0] != '\0') {
        sasl_puts(&t, ":");
        sasl_puts(&t, authzid);
    }
    int r = t.overflow ? SC_ERR_TOO_LONG : sasl_hash(5, buf, t.len, NULL, 0, ha1);
    sasl_wipe(buf, sizeof(buf));
    return r;
}

static int response_value(const uint8_t ha1[16], const char *nonce, const char *cnonce,
                          unsigned qop, const char *uri, bool rsp, char out[33])
{
    char a2[DIGEST_URI_MAX + 64];
    struct sasl_text t = {.buf = a2, .cap = sizeof(a2)};
    sasl_puts(&t, rsp ? ":" : "AUTHENTICATE:");
    sasl_puts(&t, uri);
    if (qop != SC_SASL_QOP_AUTH)
        sasl_puts(&t, ":00000000000000000000000000000000");
    if (t.overflow)
        return SC_ERR_TOO_LONG;
    uint8_t h[16];
    char ha1_hex[33], ha2_hex[33];
    int r = sasl_hash(5, a2, t.len, NULL, 0, h);
    if (r != 0)
        return r;
    sasl_hex(h, 16, ha2_hex);
    sasl_hex(ha1, 16, ha1_hex);
    char kd[33 + 2 * SASL_NONCE_MAX + 64];
    struct sasl_text k = {.buf = kd, .cap = sizeof(kd)};
    sasl_puts(&k, ha1_hex);
    sasl_puts(&k, ":");
    sasl_puts(&k, nonce);
    sasl_puts(&k, ":00000001:");
    sasl_puts(&k, cnonce);
    sasl_puts(&k, ":");
    sasl_puts(&k, qop_name(qop));
    sasl_puts(&k, ":");
    sasl_puts(&k, ha2_hex);
    if (k.overflow)
        return SC_ERR_TOO_LONG;
    r = sasl_hash(5, kd, k.len, NULL, 0, h);
    sasl_wipe(ha1_hex, sizeof(ha1_hex));
    sasl_wipe(kd, sizeof(kd));
    if (r == 0)
        sasl_hex(h, 16, out);
    return r;
}

/* The layer's keys (RFC 2831 2.3 and 2.4) from H(A1). */
static int derive_keys(struct sasl_impl *im, unsigned qop, unsigned cipher, uint32_t peer_maxbuf,
                       uint32_t own_maxbuf)
{
    static const char kic[] = "Digest session key to client-to-server signing key magic constant";
    static const char kis[] = "Digest session key to server-to-client signing key magic constant";
    static const char kcc[] = "Digest H(A1) to client-to-server sealing key magic constant";
    static const char kcs[] = "Digest H(A1) to server-to-client sealing key magic constant";
    struct sasl_keys *k = &im->keys;
    const uint8_t *ha1 = im->m.digest.ha1;
    memset(k, 0, sizeof(*k));
    k->qop = qop;
    k->cipher = cipher;
    k->server = im->server;
    k->send_maxbuf = peer_maxbuf;
    k->recv_maxbuf = own_maxbuf;
    uint8_t c2s[16], s2c[16];
    int r = sasl_hash(5, ha1, 16, kic, sizeof(kic) - 1, c2s);
    if (r == 0)
        r = sasl_hash(5, ha1, 16, kis, sizeof(kis) - 1, s2c);
    if (r != 0)
        return r;
    memcpy(im->server ? k->ki_recv : k->ki_send, c2s, 16);
    memcpy(im->server ? k->ki_send : k->ki_recv, s2c, 16);
    if (qop == SC_SASL_QOP_CONF) {
        /* RFC 2831 2.4 hashes only 7 bytes of H(A1) for des; Cyrus SASL,
         * the one auth-conf peer there is, hashes all 16 for des as for
         * 3des (measured: with 7 its frames fail to decrypt here). */
        size_t n = 16;
        r = sasl_hash(5, ha1, n, kcc, sizeof(kcc) - 1, c2s);
        if (r == 0)
            r = sasl_hash(5, ha1, n, kcs, sizeof(kcs) - 1, s2c);
        if (r != 0)
            return r;
        memcpy(im->server ? k->kc_recv : k->kc_send, c2s, 16);
        memcpy(im->server ? k->kc_send : k->kc_recv, s2c, 16);
    }
    sasl_wipe(c2s, sizeof(c2s));
    sasl_wipe(s2c, sizeof(s2c));
    im->have_keys = qop != SC_SASL_QOP_AUTH;
    return SC_OK;
}

unsigned sasl_policy_qops(bool plaintext, bool allow_no_layer, unsigned configured)
{
    unsigned q = configured != 0 ? configured
                                 : (SC_SASL_QOP_AUTH | SC_SASL_QOP_INT | SC_SASL_QOP_CONF);
    if (plaintext && !allow_no_layer)
        q &= ~SC_SASL_QOP_AUTH;
    return q & (SC_SASL_QOP_AUTH | SC_SASL_QOP_INT | SC_SASL_QOP_CONF);
}

static const char *default_str(const char *v, const char *dflt)
{
    return v != NULL ? v : dflt;
}

/* ---- client ---- */

static int client_challenge(struct sasl_impl *im, const char *in, size_t in_len, uint8_t *out,
                            size_t cap, size_t *out_len)
{
    struct digest_state *d = &im->m.digest;
    const struct sc_sasl_client_config *cfg = &im->ccfg;
    if (in_len >= DIGEST_CHALLENGE_MAX)
        return sasl_fail(im, SC_ERR_TOO_LONG, "DIGEST-MD5: challenge of %zu bytes (limit %d)",
                         in_len, DIGEST_CHALLENGE_MAX - 1);
    struct dparse p = {.s = in, .len = in_len};
    char name[32], val[DIGEST_VALUE_MAX];
    size_t vlen = 0;
    bool have_nonce = false, have_alg = false, have_maxbuf = false, have_qop = false;
    bool realm_match = false, have_cipher = false;
    uint32_t peer_maxbuf = 65536;
    d->qops = SC_SASL_QOP_AUTH;
    d->realm[0] = '\0';
    int r;
    while ((r = next_directive(&p, name, sizeof(name), val, sizeof(val), &vlen)) == 1) {
        if (strcmp(name, "realm") == 0) {
            if (vlen > SC_SASL_NAME_MAX)
                return sasl_fail(im, SC_ERR_TOO_LONG, "DIGEST-MD5: realm too long");
            bool want = cfg->realm != NULL && strcmp(cfg->realm, val) == 0;
            if (!realm_match && (want || d->realm[0] == '\0'))
                memcpy(d->realm, val, vlen + 1);
            realm_match = realm_match || want;
        } else if (strcmp(name, "nonce") == 0) {
            if (have_nonce)
                return sasl_fail(im, SC_ERR_PROTO, "DIGEST-MD5: two nonces in the challenge");
            if (vlen == 0 || vlen > SASL_NONCE_MAX)
                return sasl_fail(im, SC_ERR_TOO_LONG, "DIGEST-MD5: nonce of %zu bytes", vlen);
            memcpy(d->nonce, val, vlen + 1);
            have_nonce = true;
        } else if (strcmp(name, "qop") == 0) {
            if (have_qop)
                return sasl_fail(im, SC_ERR_PROTO, "DIGEST-MD5: two qop directives");
            d->qops = list_bits(val, false);
            have_qop = true;
        } else if (strcmp(name, "cipher") == 0) {
            if (have_cipher)
                return sasl_fail(im, SC_ERR_PROTO, "DIGEST-MD5: two cipher directives");
            d->ciphers = list_bits(val, true);
            have_cipher = true;
        } else if (strcmp(name, "maxbuf") == 0) {
            r = have_maxbuf ? SC_ERR_PROTO : parse_maxbuf(val, vlen, &peer_maxbuf);
            if (r != 0)
                return sasl_fail(im, r, "DIGEST-MD5: maxbuf \"%s\" in the challenge: %s", val,
                                 r == SC_ERR_PROTO ? "malformed or repeated"
                                                   : "below the 64 bytes a frame needs");
            have_maxbuf = true;
        } else if (strcmp(name, "charset") == 0) {
            if (strcmp(val, "utf-8") != 0)
                return sasl_fail(im, SC_ERR_PROTO, "DIGEST-MD5: charset must be utf-8");
            d->utf8 = true;
        } else if (strcmp(name, "algorithm") == 0) {
            if (have_alg || strcmp(val, "md5-sess") != 0)
                return sasl_fail(im, SC_ERR_PROTO, "DIGEST-MD5: algorithm must be md5-sess once");
            have_alg = true;
        }
        /* stale and unknown directives are ignored (RFC 2831 2.1.1) */
    }
    if (r < 0)
        return sasl_fail(im, r, "DIGEST-MD5: malformed challenge");
    if (!have_nonce || !have_alg)
        return sasl_fail(im, SC_ERR_PROTO, "DIGEST-MD5: challenge lacks nonce or algorithm");
    if (cfg->realm != NULL && cfg->realm[0] != '\0' && !realm_match) {
        if (d->realm[0] != '\0')
            return sasl_fail(im, SC_ERR_SASL_AUTH,
                             "DIGEST-MD5: the server does not offer realm \"%s\"", cfg->realm);
        snprintf(d->realm, sizeof(d->realm), "%s", cfg->realm);
    }

    /* policy: the strongest qop both accept, never below our minimum */
    unsigned mine = sasl_policy_qops(cfg->plaintext, cfg->allow_no_layer, cfg->qop);
    unsigned common = mine & d->qops;
    unsigned ciphers = (cfg->ciphers != 0 ? cfg->ciphers
                                          : (SC_SASL_CIPHER_DES | SC_SASL_CIPHER_3DES)) &
                       d->ciphers;
    if ((common & SC_SASL_QOP_CONF) && ciphers == 0)
        common &= ~SC_SASL_QOP_CONF;
    if (common == 0 && (mine & d->qops & SC_SASL_QOP_CONF))
        return sasl_fail(im, SC_ERR_SASL_POLICY,
                         "DIGEST-MD5: the server offers auth-conf only with ciphers our policy "
                         "refuses (offered:%s%s; we accept:%s%s)",
                         (d->ciphers & SC_SASL_CIPHER_DES) ? " des" : "",
                         (d->ciphers & SC_SASL_CIPHER_3DES) ? " 3des" : "",
                         (cfg->ciphers == 0 || (cfg->ciphers & SC_SASL_CIPHER_DES)) ? " des" : "",
                         (cfg->ciphers == 0 || (cfg->ciphers & SC_SASL_CIPHER_3DES)) ? " 3des"
                                                                                     : "");
    if (common == 0)
        return sasl_fail(im, SC_ERR_SASL_POLICY,
                         "DIGEST-MD5: the server offers only a security layer our policy "
                         "refuses (offered:%s%s%s; we accept:%s%s%s)",
                         (d->qops & SC_SASL_QOP_AUTH) ? " auth" : "",
                         (d->qops & SC_SASL_QOP_INT) ? " auth-int" : "",
                         (d->qops & SC_SASL_QOP_CONF) ? " auth-conf" : "",
                         (mine & SC_SASL_QOP_AUTH) ? " auth" : "",
                         (mine & SC_SASL_QOP_INT) ? " auth-int" : "",
                         (mine & SC_SASL_QOP_CONF) ? " auth-conf" : "");
    unsigned qop = (common & SC_SASL_QOP_CONF)  ? SC_SASL_QOP_CONF
                   : (common & SC_SASL_QOP_INT) ? SC_SASL_QOP_INT
                                                : SC_SASL_QOP_AUTH;
    unsigned cipher = 0;
    if (qop == SC_SASL_QOP_CONF)
        cipher = (ciphers & SC_SASL_CIPHER_3DES) && !(cfg->prefer_des && (ciphers & SC_SASL_CIPHER_DES))
                     ? SC_SASL_CIPHER_3DES
                     : SC_SASL_CIPHER_DES;

    int n = sasl_make_nonce(d->cnonce, sizeof(d->cnonce), cfg->test_nonce);
    if (n < 0)
        return sasl_fail(im, n, "DIGEST-MD5: no cnonce: %s", sc_strerror(n));
    char uri[DIGEST_URI_MAX + 1];
    snprintf(uri, sizeof(uri), "%s/%s", default_str(cfg->service, "nbd"),
             default_str(cfg->host, "localhost"));

    uint8_t urp[16];
    r = sc_sasl_digest_secret_make(urp, cfg->user, d->realm, cfg->password);
    if (r == 0)
        r = session_key(d->ha1, urp, d->nonce, d->cnonce, cfg->authzid);
    sasl_wipe(urp, sizeof(urp));
    char resp[33];
    if (r == 0)
        r = response_value(d->ha1, d->nonce, d->cnonce, qop, uri, false, resp);
    if (r == 0)
        r = response_value(d->ha1, d->nonce, d->cnonce, qop, uri, true, d->rspauth);
    if (r != 0)
        return sasl_fail(im, r, "DIGEST-MD5: digest failed: %s", sc_strerror(r));

    uint32_t own_maxbuf = cfg->maxbuf != 0 ? cfg->maxbuf : SC_SASL_MAXBUF_DEFAULT;
    struct sasl_text t = {.buf = (char *)out, .cap = cap};
    if (d->utf8)
        sasl_puts(&t, "charset=utf-8,");
    put_quoted(&t, "username", cfg->user);
    sasl_puts(&t, ",");
    put_quoted(&t, "realm", d->realm);
    sasl_puts(&t, ",");
    put_quoted(&t, "nonce", d->nonce);
    sasl_puts(&t, ",nc=00000001,");
    put_quoted(&t, "cnonce", d->cnonce);
    sasl_puts(&t, ",");
    put_quoted(&t, "digest-uri", uri);
    sasl_puts(&t, ",response=");
    sasl_puts(&t, resp);
    sasl_puts(&t, ",qop=");
    sasl_puts(&t, qop_name(qop));
    if (qop != SC_SASL_QOP_AUTH) {
        char mb[24];
        snprintf(mb, sizeof(mb), ",maxbuf=%lu", (unsigned long)own_maxbuf);
        sasl_puts(&t, mb);
    }
    if (cipher != 0)
        sasl_puts(&t, cipher == SC_SASL_CIPHER_DES ? ",cipher=des" : ",cipher=3des");
    if (cfg->authzid != NULL && cfg->authzid[0] != '\0') {
        sasl_puts(&t, ",");
        put_quoted(&t, "authzid", cfg->authzid);
    }
    if (t.overflow)
        return sasl_fail(im, SC_ERR_NOSPACE, "DIGEST-MD5: response does not fit");
    *out_len = t.len;
    im->info.qop = qop;
    im->info.cipher = cipher;
    im->info.send_maxbuf = peer_maxbuf;
    im->info.recv_maxbuf = own_maxbuf;
    return SC_SASL_CONTINUE;
}

static int client_rspauth(struct sasl_impl *im, const char *in, size_t in_len)
{
    struct digest_state *d = &im->m.digest;
    struct dparse p = {.s = in, .len = in_len};
    char name[32], val[64];
    size_t vlen = 0;
    bool ok = false;
    int r;
    while ((r = next_directive(&p, name, sizeof(name), val, sizeof(val), &vlen)) == 1)
        if (strcmp(name, "rspauth") == 0)
            ok = vlen == 32 && sasl_ct_equal(val, d->rspauth, 32);
    if (r < 0)
        return sasl_fail(im, SC_ERR_PROTO, "DIGEST-MD5: malformed rspauth");
    if (!ok)
        return sasl_fail(im, SC_ERR_SASL_SERVER,
                         "DIGEST-MD5: rspauth is wrong: the server does not know the password");
    r = derive_keys(im, im->info.qop, im->info.cipher, im->info.send_maxbuf,
                    im->info.recv_maxbuf);
    if (r != 0)
        return sasl_fail(im, r, "DIGEST-MD5: key derivation failed");
    return SC_OK;
}

int digest_client_step(struct sasl_impl *im, const uint8_t *in, size_t in_len, uint8_t *out,
                       size_t cap, size_t *out_len)
{
    *out_len = 0;
    if (im->step == 1)
        return client_challenge(im, (const char *)in, in_len, out, cap, out_len);
    if (im->step == 2)
        return client_rspauth(im, (const char *)in, in_len);
    return sasl_fail(im, SC_ERR_PROTO, "DIGEST-MD5: unexpected token after the exchange");
}

/* ---- server ---- */

static unsigned server_qops(const struct sasl_impl *im)
{
    return sasl_policy_qops(im->scfg.plaintext, im->scfg.allow_no_layer, im->scfg.qop);
}

static unsigned server_ciphers(const struct sasl_impl *im)
{
    return im->scfg.ciphers != 0 ? im->scfg.ciphers : (SC_SASL_CIPHER_DES | SC_SASL_CIPHER_3DES);
}

int digest_server_start(struct sasl_impl *im, uint8_t *out, size_t cap, size_t *out_len)
{
    struct digest_state *d = &im->m.digest;
    const struct sc_sasl_server_config *cfg = &im->scfg;
    memset(d, 0, sizeof(*d));
    *out_len = 0;
    int n = sasl_make_nonce(d->nonce, sizeof(d->nonce), cfg->test_nonce);
    if (n < 0)
        return sasl_fail(im, n, "DIGEST-MD5: no nonce: %s", sc_strerror(n));
    snprintf(d->realm, sizeof(d->realm), "%s", default_str(cfg->realm, "sechan"));
    d->qops = server_qops(im);
    d->ciphers = server_ciphers(im);
    if (d->qops == 0)
        return sasl_fail(im, SC_ERR_SASL_POLICY, "DIGEST-MD5: no qop left by the policy");
    struct sasl_text t = {.buf = (char *)out, .cap = cap};
    put_quoted(&t, "realm", d->realm);
    sasl_puts(&t, ",");
    put_quoted(&t, "nonce", d->nonce);
    sasl_puts(&t, ",qop=\"");
    const char *sep = "";
    for (unsigned q = SC_SASL_QOP_AUTH; q <= SC_SASL_QOP_CONF; q <<= 1) {
        if (d->qops & q) {
            sasl_puts(&t, sep);
            sasl_puts(&t, qop_name(q));
            sep = ",";
        }
    }
    sasl_puts(&t, "\"");
    if (d->qops & SC_SASL_QOP_CONF) {
        sasl_puts(&t, ",cipher=\"");
        if (d->ciphers & SC_SASL_CIPHER_3DES)
            sasl_puts(&t, (d->ciphers & SC_SASL_CIPHER_DES) ? "3des,des" : "3des");
        else
            sasl_puts(&t, "des");
        sasl_puts(&t, "\"");
    }
    char mb[32];
    snprintf(mb, sizeof(mb), ",maxbuf=%lu",
             (unsigned long)(cfg->maxbuf != 0 ? cfg->maxbuf : SC_SASL_MAXBUF_DEFAULT));
    sasl_puts(&t, mb);
    sasl_puts(&t, ",charset=utf-8,algorithm=md5-sess");
    if (t.overflow)
        return sasl_fail(im, SC_ERR_NOSPACE, "DIGEST-MD5: challenge does not fit");
    *out_len = t.len;
    return SC_SASL_CONTINUE;
}

struct digest_response {
    char user[SC_SASL_NAME_MAX + 1];
    char realm[SC_SASL_NAME_MAX + 1];
    char nonce[SASL_NONCE_MAX + 1];
    char cnonce[SASL_NONCE_MAX + 1];
    char nc[16];
    char uri[DIGEST_URI_MAX + 1];
    char response[40];
    char authzid[SC_SASL_NAME_MAX + 1];
    unsigned qop;
    unsigned cipher;
    uint32_t maxbuf;
    unsigned seen;  /* bit per directive, each at most once */
};

enum { D_USER, D_REALM, D_NONCE, D_CNONCE, D_NC, D_URI, D_RESP, D_AUTHZ, D_QOP, D_CIPHER,
       D_MAXBUF, D_CHARSET };

static int response_field(struct digest_response *dr, const char *name, const char *val,
                          size_t vlen)
{
    static const struct {
        const char *name;
        int bit;
        size_t off;
        size_t cap;
    } text[] = {
        {"username", D_USER, offsetof(struct digest_response, user), SC_SASL_NAME_MAX + 1},
        {"realm", D_REALM, offsetof(struct digest_response, realm), SC_SASL_NAME_MAX + 1},
        {"nonce", D_NONCE, offsetof(struct digest_response, nonce), SASL_NONCE_MAX + 1},
        {"cnonce", D_CNONCE, offsetof(struct digest_response, cnonce), SASL_NONCE_MAX + 1},
        {"nc", D_NC, offsetof(struct digest_response, nc), 16},
        {"digest-uri", D_URI, offsetof(struct digest_response, uri), DIGEST_URI_MAX + 1},
        {"response", D_RESP, offsetof(struct digest_response, response), 40},
        {"authzid", D_AUTHZ, offsetof(struct digest_response, authzid), SC_SASL_NAME_MAX + 1},
    };
    for (size_t i = 0; i < sizeof(text) / sizeof(text[0]); i++) {
        if (strcmp(name, text[i].name) != 0)
            continue;
        if (dr->seen & (1u << text[i].bit))
            return SC_ERR_PROTO;
        dr->seen |= 1u << text[i].bit;
        if (vlen >= text[i].cap)
            return SC_ERR_TOO_LONG;
        memcpy((char *)dr + text[i].off, val, vlen + 1);
        return SC_OK;
    }
    int bit = strcmp(name, "qop") == 0       ? D_QOP
              : strcmp(name, "cipher") == 0  ? D_CIPHER
              : strcmp(name, "maxbuf") == 0  ? D_MAXBUF
              : strcmp(name, "charset") == 0 ? D_CHARSET
                                             : -1;
    if (bit < 0)
        return SC_OK;  /* unknown directives are ignored */
    if (dr->seen & (1u << bit))
        return SC_ERR_PROTO;
    dr->seen |= 1u << bit;
    if (bit == D_QOP) {
        dr->qop = list_bits(val, false);
        if (dr->qop != SC_SASL_QOP_AUTH && dr->qop != SC_SASL_QOP_INT &&
            dr->qop != SC_SASL_QOP_CONF)
            return SC_ERR_PROTO;
    } else if (bit == D_CIPHER) {
        dr->cipher = list_bits(val, true);
        if (dr->cipher != SC_SASL_CIPHER_DES && dr->cipher != SC_SASL_CIPHER_3DES)
            return SC_ERR_SASL_POLICY;
    } else if (bit == D_MAXBUF) {
        return parse_maxbuf(val, vlen, &dr->maxbuf);
    } else if (strcmp(val, "utf-8") != 0) {
        return SC_ERR_PROTO;
    }
    return SC_OK;
}

static int server_response(struct sasl_impl *im, const char *in, size_t in_len, uint8_t *out,
                           size_t cap, size_t *out_len)
{
    struct digest_state *d = &im->m.digest;
    const struct sc_sasl_server_config *cfg = &im->scfg;
    struct digest_response dr;
    memset(&dr, 0, sizeof(dr));
    dr.qop = SC_SASL_QOP_AUTH;
    dr.maxbuf = 65536;
    if (in_len >= SC_SASL_TOKEN_MAX)
        return sasl_fail(im, SC_ERR_TOO_LONG, "DIGEST-MD5: response too long");
    struct dparse p = {.s = in, .len = in_len};
    char name[32], val[DIGEST_VALUE_MAX];
    size_t vlen = 0;
    int r;
    while ((r = next_directive(&p, name, sizeof(name), val, sizeof(val), &vlen)) == 1) {
        r = response_field(&dr, name, val, vlen);
        if (r != 0)
            return sasl_fail(im, r, "DIGEST-MD5: bad or repeated %s in the response", name);
    }
    if (r < 0)
        return sasl_fail(im, r, "DIGEST-MD5: malformed response");
    unsigned need = (1u << D_USER) | (1u << D_NONCE) | (1u << D_CNONCE) | (1u << D_NC) |
                    (1u << D_URI) | (1u << D_RESP);
    if ((dr.seen & need) != need)
        return sasl_fail(im, SC_ERR_PROTO, "DIGEST-MD5: the response lacks a required directive");

    /* The nonce is single-use: whatever happens next, it is spent. */
    bool fresh = !d->nonce_used && strcmp(dr.nonce, d->nonce) == 0;
    d->nonce_used = true;
    if (!fresh)
        return sasl_fail(im, SC_ERR_SASL_REPLAY,
                         "DIGEST-MD5: the response is for a nonce we did not issue or already "
                         "used (a replay)");
    if (strcmp(dr.nc, "00000001") != 0)
        return sasl_fail(im, SC_ERR_SASL_REPLAY, "DIGEST-MD5: nonce count %s, expected 00000001",
                         dr.nc);
    if (strcmp(dr.realm, d->realm) != 0)
        return sasl_fail(im, SC_ERR_SASL_AUTH, "DIGEST-MD5: realm \"%s\" is not ours", dr.realm);
    if (!(d->qops & dr.qop))
        return sasl_fail(im, SC_ERR_SASL_POLICY, "DIGEST-MD5: the client chose qop %s, not "
                         "offered", qop_name(dr.qop));
    if (dr.qop == SC_SASL_QOP_CONF && !(dr.cipher & d->ciphers))
        return sasl_fail(im, SC_ERR_SASL_POLICY, "DIGEST-MD5: auth-conf without a cipher we offer");
    if (dr.qop != SC_SASL_QOP_CONF)
        dr.cipher = 0;
    const char *service = default_str(cfg->service, "nbd");
    size_t slen = strlen(service);
    if (strncmp(dr.uri, service, slen) != 0 || dr.uri[slen] != '/' || dr.uri[slen + 1] == '\0')
        return sasl_fail(im, SC_ERR_SASL_AUTH,
                         "DIGEST-MD5: digest-uri \"%s\" is not for service %s", dr.uri, service);
    r = sasl_check_ascii(dr.user, SC_SASL_NAME_MAX);
    if (r == 0)
        r = sasl_check_ascii(dr.authzid, SC_SASL_NAME_MAX);
    if (r != 0)
        return sasl_fail(im, r, "DIGEST-MD5: non-ASCII names are not supported");
    snprintf(im->info.user, sizeof(im->info.user), "%s", dr.user);
    snprintf(im->info.authzid, sizeof(im->info.authzid), "%s", dr.authzid);

    struct sc_sasl_user_secret user;
    memset(&user, 0, sizeof(user));
    r = cfg->lookup(cfg->lookup_arg, dr.user, d->realm, &user);
    if (r == SC_ERR_NOT_FOUND || (r == 0 && !user.has_digest)) {
        sasl_wipe(&user, sizeof(user));
        return sasl_fail(im, SC_ERR_SASL_USER, "DIGEST-MD5: unknown user \"%s\"", dr.user);
    }
    if (r != 0)
        return sasl_fail(im, r, "DIGEST-MD5: user lookup failed");
    r = session_key(d->ha1, user.digest_ha1, d->nonce, dr.cnonce, dr.authzid);
    sasl_wipe(&user, sizeof(user));
    char want[33];
    if (r == 0)
        r = response_value(d->ha1, d->nonce, dr.cnonce, dr.qop, dr.uri, false, want);
    if (r != 0)
        return sasl_fail(im, r, "DIGEST-MD5: digest failed");
    if (strlen(dr.response) != 32 || !sasl_ct_equal(dr.response, want, 32))
        return sasl_fail(im, SC_ERR_SASL_AUTH,
                         "DIGEST-MD5: wrong password for \"%s\" (response does not verify)",
                         dr.user);
    char rsp[33];
    r = response_value(d->ha1, d->nonce, dr.cnonce, dr.qop, dr.uri, true, rsp);
    uint32_t own_maxbuf = cfg->maxbuf != 0 ? cfg->maxbuf : SC_SASL_MAXBUF_DEFAULT;
    if (r == 0)
        r = derive_keys(im, dr.qop, dr.cipher, dr.maxbuf, own_maxbuf);
    if (r != 0 || cap < 8 + 32)
        return sasl_fail(im, r != 0 ? r : SC_ERR_NOSPACE, "DIGEST-MD5: rspauth");
    memcpy(out, "rspauth=", 8);
    memcpy(out + 8, rsp, 32);
    *out_len = 40;
    im->info.qop = dr.qop;
    im->info.cipher = dr.cipher;
    im->info.send_maxbuf = dr.maxbuf;
    im->info.recv_maxbuf = own_maxbuf;
    return SC_OK;
}

int digest_server_step(struct sasl_impl *im, const uint8_t *in, size_t in_len, uint8_t *out,
                       size_t cap, size_t *out_len)
{
    *out_len = 0;
    if (im->step == 1)
        return server_response(im, (const char *)in, in_len, out, cap, out_len);
    return sasl_fail(im, SC_ERR_PROTO, "DIGEST-MD5: unexpected token after the exchange");
}
