/* SCRAM-SHA-1 and SCRAM-SHA-256, with and without channel binding
 * (RFC 5802, RFC 7677), client and server. See sechan/sasl.h. */
#include <stdio.h>
#include <string.h>

#include "sasl_internal.h"
#include "sechan/port.h"

static const char *cb_name(enum sc_sasl_cb_type t)
{
    switch (t) {
    case SC_SASL_CB_TLS_EXPORTER:
        return "tls-exporter";
    case SC_SASL_CB_TLS_SERVER_END_POINT:
        return "tls-server-end-point";
    default:
        return NULL;
    }
}

static bool mech_is_sha256(enum sc_sasl_mech m)
{
    return m == SC_SASL_SCRAM_SHA_256_PLUS || m == SC_SASL_SCRAM_SHA_256;
}

static bool have_binding(const struct sc_sasl_binding *b)
{
    return b != NULL && b->type != SC_SASL_CB_NONE && b->len > 0 && cb_name(b->type) != NULL;
}

/* RFC 5802 saslname: ',' and '=' are escaped as =2C and =3D. */
static void put_saslname(struct sasl_text *t, const char *name)
{
    for (; *name != '\0'; name++) {
        if (*name == ',')
            sasl_puts(t, "=2C");
        else if (*name == '=')
            sasl_puts(t, "=3D");
        else
            sasl_put(t, name, 1);
    }
}

/* Undo the escaping into out (NUL-terminated). Names must be printable ASCII. */
static int get_saslname(const char *v, size_t len, char *out, size_t cap)
{
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        char c = v[i];
        if (c == '=') {
            if (len - i < 3)
                return SC_ERR_PROTO;
            if (v[i + 1] == '2' && v[i + 2] == 'C')
                c = ',';
            else if (v[i + 1] == '3' && v[i + 2] == 'D')
                c = '=';
            else
                return SC_ERR_PROTO;
            i += 2;
        } else if ((unsigned char)c < 0x20 || (unsigned char)c > 0x7e) {
            return SC_ERR_UNSUPPORTED;
        }
        if (n + 1 >= cap)
            return SC_ERR_TOO_LONG;
        out[n++] = c;
    }
    if (n == 0)
        return SC_ERR_PROTO;
    out[n] = '\0';
    return SC_OK;
}

/* One "x=value" attribute starting at *pos, up to the next ',' or the end. */
struct attr {
    char name;
    const char *val;
    size_t len;
};

static int next_attr(const char *msg, size_t len, size_t *pos, struct attr *a)
{
    size_t p = *pos;
    if (p >= len)
        return SC_ERR_PROTO;
    if (p + 2 > len || msg[p + 1] != '=')
        return SC_ERR_PROTO;
    char c = msg[p];
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')))
        return SC_ERR_PROTO;
    a->name = c;
    a->val = msg + p + 2;
    const char *comma = memchr(a->val, ',', len - (p + 2));
    a->len = comma != NULL ? (size_t)(comma - a->val) : len - (p + 2);
    *pos = p + 2 + a->len + (comma != NULL ? 1 : 0);
    if (comma != NULL && *pos >= len)
        return SC_ERR_PROTO;  /* a trailing comma */
    return SC_OK;
}

/* Printable ASCII except ',' (RFC 5802 "printable"). */
static bool nonce_ok(const char *v, size_t len)
{
    if (len == 0 || len > 2 * SASL_NONCE_MAX)
        return false;
    for (size_t i = 0; i < len; i++)
        if (v[i] < 0x21 || v[i] > 0x7e || v[i] == ',')
            return false;
    return true;
}

static int md_of(const struct scram_state *sc)
{
    return sc->sha256 ? 256 : 1;
}

/* ClientKey, StoredKey and ServerKey from the salted password. */
static int keys_from_salted(int md, const uint8_t *salted, size_t hlen, uint8_t *client_key,
                            uint8_t *stored_key, uint8_t *server_key)
{
    int r = sasl_hmac(md, salted, hlen, "Client Key", 10, NULL, 0, client_key);
    if (r == 0)
        r = sasl_hash(md, client_key, hlen, NULL, 0, stored_key);
    if (r == 0)
        r = sasl_hmac(md, salted, hlen, "Server Key", 10, NULL, 0, server_key);
    return r;
}

int sc_sasl_scram_secret_make(struct sc_sasl_scram_secret *s, bool sha256, const char *password,
                              const uint8_t *salt, size_t salt_len, uint32_t iterations)
{
    if (s == NULL || password == NULL || salt == NULL || salt_len == 0 ||
        salt_len > SC_SASL_SALT_MAX || iterations < SC_SASL_ITER_MIN ||
        iterations > SC_SASL_ITER_MAX)
        return SC_ERR_INVAL;
    int r = sasl_check_ascii(password, SC_SASL_PASS_MAX);
    if (r != 0)
        return r;
    r = sasl_init_crypto();
    if (r != 0)
        return r;
    memset(s, 0, sizeof(*s));
    int md = sha256 ? 256 : 1;
    size_t hlen = sha256 ? 32 : 20;
    uint8_t salted[32], client_key[32];
    r = sasl_pbkdf2(md, password, salt, salt_len, iterations, salted, hlen);
    if (r == 0)
        r = keys_from_salted(md, salted, hlen, client_key, s->stored_key, s->server_key);
    sasl_wipe(salted, sizeof(salted));
    sasl_wipe(client_key, sizeof(client_key));
    if (r != 0) {
        sasl_wipe(s, sizeof(*s));
        return r;
    }
    s->iterations = iterations;
    s->salt_len = salt_len;
    memcpy(s->salt, salt, salt_len);
    return SC_OK;
}

/* The channel binding input of c=: the gs2 header, then the binding data
 * when the header asked for it ("p="). */
static int cbind_b64(const struct scram_state *sc, const struct sc_sasl_binding *b, char *out,
                     size_t cap, size_t *out_len)
{
    uint8_t raw[sizeof(sc->gs2) + SC_SASL_CB_MAX];
    size_t n = sc->gs2_len;
    memcpy(raw, sc->gs2, n);
    if (sc->gs2[0] == 'p') {
        memcpy(raw + n, b->data, b->len);
        n += b->len;
    }
    return sasl_b64_encode(raw, n, out, cap, out_len);
}

/* ---- client ---- */

int scram_client_start(struct sasl_impl *im, uint8_t *out, size_t cap, size_t *out_len)
{
    struct scram_state *sc = &im->m.scram;
    const struct sc_sasl_client_config *cfg = &im->ccfg;
    memset(sc, 0, sizeof(*sc));
    sc->sha256 = mech_is_sha256(im->mech);
    sc->plus = sasl_mech_is_plus(im->mech);
    sc->hash_len = sc->sha256 ? 32 : 20;

    struct sasl_text gs2 = {.buf = sc->gs2, .cap = sizeof(sc->gs2) - 1};
    if (sc->plus) {
        if (!have_binding(cfg->binding))
            return sasl_fail(im, SC_ERR_SASL_POLICY, "%s needs TLS channel binding",
                             sc_sasl_mech_name(im->mech));
        sasl_puts(&gs2, "p=");
        sasl_puts(&gs2, cb_name(cfg->binding->type));
    } else if (have_binding(cfg->binding) &&
               (im->offered & ((1u << SC_SASL_SCRAM_SHA_256_PLUS) |
                               (1u << SC_SASL_SCRAM_SHA_1_PLUS))) == 0) {
        /* We could bind but the server offered no -PLUS: say so, so that a
         * server that can bind sees the downgrade (RFC 5802 section 6). */
        sasl_puts(&gs2, "y");
    } else {
        sasl_puts(&gs2, "n");
    }
    sasl_puts(&gs2, ",");
    if (cfg->authzid != NULL && cfg->authzid[0] != '\0') {
        sasl_puts(&gs2, "a=");
        put_saslname(&gs2, cfg->authzid);
    }
    sasl_puts(&gs2, ",");
    if (gs2.overflow)
        return sasl_fail(im, SC_ERR_TOO_LONG, "SCRAM: authzid too long");
    sc->gs2_len = gs2.len;

    char nonce[SASL_NONCE_MAX + 1];
    int n = sasl_make_nonce(nonce, sizeof(nonce), cfg->test_nonce);
    if (n < 0)
        return sasl_fail(im, n, "SCRAM: no nonce: %s", sc_strerror(n));
    if (!nonce_ok(nonce, (size_t)n))
        return sasl_fail(im, SC_ERR_INVAL, "SCRAM: the fixed nonce is not printable");
    sc->cnonce_len = (size_t)n;
    memcpy(sc->nonce, nonce, (size_t)n);

    struct sasl_text bare = {.buf = sc->transcript, .cap = sizeof(sc->transcript)};
    sasl_puts(&bare, "n=");
    put_saslname(&bare, cfg->user);
    sasl_puts(&bare, ",r=");
    sasl_put(&bare, nonce, (size_t)n);
    if (bare.overflow)
        return sasl_fail(im, SC_ERR_TOO_LONG, "SCRAM: user name too long");
    sc->bare_len = sc->transcript_len = bare.len;

    if (sc->gs2_len + bare.len > cap)
        return sasl_fail(im, SC_ERR_NOSPACE, "SCRAM: output buffer too small");
    memcpy(out, sc->gs2, sc->gs2_len);
    memcpy(out + sc->gs2_len, bare.buf, bare.len);
    *out_len = sc->gs2_len + bare.len;
    return SC_SASL_CONTINUE;
}

static int parse_uint(const char *v, size_t len, uint32_t *out)
{
    if (len == 0 || len > 9 || (len > 1 && v[0] == '0'))
        return SC_ERR_PROTO;
    uint32_t x = 0;
    for (size_t i = 0; i < len; i++) {
        if (v[i] < '0' || v[i] > '9')
            return SC_ERR_PROTO;
        x = x * 10 + (uint32_t)(v[i] - '0');
    }
    *out = x;
    return SC_OK;
}

static int client_server_first(struct sasl_impl *im, const char *msg, size_t len, uint8_t *out,
                               size_t cap, size_t *out_len)
{
    struct scram_state *sc = &im->m.scram;
    const struct sc_sasl_client_config *cfg = &im->ccfg;
    size_t pos = 0;
    struct attr a;
    if (len >= 2 && msg[0] == 'm' && msg[1] == '=')
        return sasl_fail(im, SC_ERR_UNSUPPORTED, "SCRAM: server requires an extension (m=)");
    if (next_attr(msg, len, &pos, &a) != 0 || a.name != 'r')
        return sasl_fail(im, SC_ERR_PROTO, "SCRAM: server-first-message has no r=");
    if (!nonce_ok(a.val, a.len) || a.len <= sc->cnonce_len ||
        memcmp(a.val, sc->nonce, sc->cnonce_len) != 0)
        return sasl_fail(im, SC_ERR_PROTO, "SCRAM: server nonce does not extend ours");
    memcpy(sc->nonce, a.val, a.len);
    sc->nonce_len = a.len;

    uint8_t salt[SC_SASL_SALT_MAX];
    size_t salt_len = 0;
    if (next_attr(msg, len, &pos, &a) != 0 || a.name != 's')
        return sasl_fail(im, SC_ERR_PROTO, "SCRAM: server-first-message has no s=");
    int r = sasl_b64_decode(a.val, a.len, salt, sizeof(salt), &salt_len);
    if (r == SC_ERR_TOO_LONG)
        return sasl_fail(im, r, "SCRAM: salt longer than %d bytes", SC_SASL_SALT_MAX);
    if (r != 0 || salt_len == 0)
        return sasl_fail(im, SC_ERR_PROTO, "SCRAM: salt is not base64");
    uint32_t iter = 0;
    if (next_attr(msg, len, &pos, &a) != 0 || a.name != 'i' ||
        parse_uint(a.val, a.len, &iter) != 0)
        return sasl_fail(im, SC_ERR_PROTO, "SCRAM: server-first-message has no valid i=");
    if (iter < SC_SASL_ITER_MIN || iter > SC_SASL_ITER_MAX)
        return sasl_fail(im, SC_ERR_SASL_POLICY,
                         "SCRAM: server asks for %lu iterations; we accept %d to %d",
                         (unsigned long)iter, SC_SASL_ITER_MIN, SC_SASL_ITER_MAX);
    /* Extensions after i= are allowed and ignored (RFC 5802 section 5.1). */

    /* client-final-message-without-proof, built in out (no large locals:
     * small boards run this on a few KiB of stack) */
    struct sasl_text t = {.buf = (char *)out, .cap = cap};
    sasl_puts(&t, "c=");
    size_t c64_len = 0;
    if (t.overflow || cbind_b64(sc, cfg->binding, t.buf + t.len, t.cap - t.len, &c64_len) != 0)
        return sasl_fail(im, SC_ERR_NOSPACE, "SCRAM: output buffer too small");
    t.len += c64_len;
    sasl_puts(&t, ",r=");
    sasl_put(&t, sc->nonce, sc->nonce_len);
    if (t.overflow)
        return sasl_fail(im, SC_ERR_NOSPACE, "SCRAM: output buffer too small");

    /* AuthMessage = bare "," server-first "," without-proof */
    struct sasl_text am = {.buf = sc->transcript, .cap = sizeof(sc->transcript),
                           .len = sc->bare_len};
    sasl_puts(&am, ",");
    sasl_put(&am, msg, len);
    sasl_puts(&am, ",");
    sasl_put(&am, t.buf, t.len);
    if (am.overflow)
        return sasl_fail(im, SC_ERR_TOO_LONG, "SCRAM: server-first-message too long");
    sc->transcript_len = am.len;

    int md = md_of(sc);
    size_t hlen = sc->hash_len;
    uint8_t salted[32], client_key[32], stored_key[32], server_key[32], sig[32];
    r = sasl_pbkdf2(md, cfg->password, salt, salt_len, iter, salted, hlen);
    if (r == 0)
        r = keys_from_salted(md, salted, hlen, client_key, stored_key, server_key);
    if (r == 0)
        r = sasl_hmac(md, stored_key, hlen, am.buf, am.len, NULL, 0, sig);
    if (r == 0)
        r = sasl_hmac(md, server_key, hlen, am.buf, am.len, NULL, 0, sc->server_sig);
    for (size_t i = 0; i < hlen; i++)
        client_key[i] ^= sig[i];  /* now the ClientProof */
    char p64[64];
    size_t p64_len = 0;
    if (r == 0)
        r = sasl_b64_encode(client_key, hlen, p64, sizeof(p64), &p64_len);
    sasl_wipe(salted, sizeof(salted));
    sasl_wipe(client_key, sizeof(client_key));
    sasl_wipe(stored_key, sizeof(stored_key));
    sasl_wipe(server_key, sizeof(server_key));
    if (r != 0)
        return sasl_fail(im, r, "SCRAM: key derivation failed: %s", sc_strerror(r));

    sasl_puts(&t, ",p=");
    sasl_put(&t, p64, p64_len);
    if (t.overflow)
        return sasl_fail(im, SC_ERR_NOSPACE, "SCRAM: output buffer too small");
    *out_len = t.len;
    return SC_SASL_CONTINUE;
}

static int client_server_final(struct sasl_impl *im, const char *msg, size_t len)
{
    struct scram_state *sc = &im->m.scram;
    size_t pos = 0;
    struct attr a;
    if (next_attr(msg, len, &pos, &a) != 0)
        return sasl_fail(im, SC_ERR_PROTO, "SCRAM: malformed server-final-message");
    if (a.name == 'e')
        return sasl_fail(im, SC_ERR_SASL_AUTH, "SCRAM: server refused: %.*s",
                         (int)(a.len > 64 ? 64 : a.len), a.val);
    if (a.name != 'v')
        return sasl_fail(im, SC_ERR_PROTO, "SCRAM: server-final-message has no v=");
    uint8_t v[64];
    size_t v_len = 0;
    if (sasl_b64_decode(a.val, a.len, v, sizeof(v), &v_len) != 0 || v_len != sc->hash_len ||
        !sasl_ct_equal(v, sc->server_sig, sc->hash_len))
        return sasl_fail(im, SC_ERR_SASL_SERVER,
                         "SCRAM: the server's signature is wrong: it does not know the password");
    im->info.channel_bound = sc->plus;
    return SC_OK;
}

int scram_client_step(struct sasl_impl *im, const uint8_t *in, size_t in_len, uint8_t *out,
                      size_t cap, size_t *out_len)
{
    *out_len = 0;
    if (im->step == 1)
        return client_server_first(im, (const char *)in, in_len, out, cap, out_len);
    if (im->step == 2)
        return client_server_final(im, (const char *)in, in_len);
    return sasl_fail(im, SC_ERR_PROTO, "SCRAM: unexpected token after the exchange");
}

/* ---- server ---- */

static int put_reason(uint8_t *out, size_t cap, size_t *out_len, const char *reason)
{
    size_t n = strlen(reason);
    if (n > cap)
        n = cap;
    memcpy(out, reason, n);
    *out_len = n;
    return SC_OK;
}

static int server_fail(struct sasl_impl *im, uint8_t *out, size_t cap, size_t *out_len,
                       const char *e, int err, const char *why)
{
    put_reason(out, cap, out_len, e);
    return sasl_fail(im, err, "SCRAM: %s", why);
}

/* A decoy verifier for an unknown user, so the exchange looks the same
 * until the proof fails (no user enumeration by a missing salt). With the
 * server's decoy key the salt is HMAC(key, user name): the same on every
 * attempt, as a real user's is. Without one it is random, and a client
 * that asks twice can tell (documented in sasl.h). */
static int decoy_secret(struct sasl_impl *im, struct sc_sasl_scram_secret *s)
{
    const struct sc_sasl_server_config *cfg = &im->scfg;
    memset(s, 0, sizeof(*s));
    s->iterations = cfg->unknown_iterations != 0 ? cfg->unknown_iterations : SC_SASL_ITER_MIN;
    s->salt_len = 16;
    uint8_t mac[32];
    int r;
    if (cfg->decoy_key != NULL)
        r = sasl_hmac(256, cfg->decoy_key, SC_SASL_DECOY_KEY_LEN, "sechan decoy salt", 17,
                      im->info.user, strlen(im->info.user), mac);
    else
        r = sc_port_entropy(mac, sizeof(mac));
    memcpy(s->salt, mac, s->salt_len);
    if (r == 0)
        r = sc_port_entropy(s->stored_key, sizeof(s->stored_key));
    return r;
}

static int server_client_first(struct sasl_impl *im, const char *msg, size_t len, uint8_t *out,
                               size_t cap, size_t *out_len)
{
    struct scram_state *sc = &im->m.scram;
    const struct sc_sasl_server_config *cfg = &im->scfg;
    bool bindable = have_binding(cfg->binding);

    /* gs2-header: cbind flag "," [authzid] "," */
    size_t pos = 0;
    if (len < 3)
        return server_fail(im, out, cap, out_len, "e=other-error", SC_ERR_PROTO,
                           "client-first-message too short");
    char flag = msg[0];
    const char *comma = memchr(msg, ',', len);
    if (comma == NULL)
        return server_fail(im, out, cap, out_len, "e=other-error", SC_ERR_PROTO,
                           "client-first-message has no gs2 header");
    size_t flag_len = (size_t)(comma - msg);
    if (flag == 'p') {
        const char *want = bindable ? cb_name(cfg->binding->type) : NULL;
        if (!sc->plus)
            return server_fail(im, out, cap, out_len, "e=other-error", SC_ERR_PROTO,
                               "channel binding requested with a mechanism without -PLUS");
        if (flag_len < 3 || msg[1] != '=')
            return server_fail(im, out, cap, out_len, "e=other-error", SC_ERR_PROTO,
                               "bad channel binding flag");
        if (want == NULL || flag_len != 2 + strlen(want) ||
            memcmp(msg + 2, want, strlen(want)) != 0)
            return server_fail(im, out, cap, out_len,
                               "e=unsupported-channel-binding-type", SC_ERR_SASL_POLICY,
                               "the client asks for a channel binding type we do not have");
    } else if (flag_len != 1 || (flag != 'n' && flag != 'y')) {
        return server_fail(im, out, cap, out_len, "e=other-error", SC_ERR_PROTO,
                           "bad channel binding flag");
    } else if (sc->plus) {
        return server_fail(im, out, cap, out_len, "e=other-error", SC_ERR_PROTO,
                           "-PLUS mechanism without channel binding");
    } else if (flag == 'y' && bindable && (im->offered & ((1u << SC_SASL_SCRAM_SHA_256_PLUS) |
                                                         (1u << SC_SASL_SCRAM_SHA_1_PLUS)))) {
        return server_fail(im, out, cap, out_len, "e=server-does-support-channel-binding",
                           SC_ERR_SASL_POLICY,
                           "the client thinks we cannot bind: the -PLUS offer was removed on "
                           "the way (downgrade)");
    }
    pos = flag_len + 1;
    if (pos < len && msg[pos] == 'a') {
        struct attr a;
        if (next_attr(msg, len, &pos, &a) != 0 || pos == 0 || msg[pos - 1] != ',')
            return server_fail(im, out, cap, out_len, "e=other-error", SC_ERR_PROTO,
                               "bad authzid");
        int r = get_saslname(a.val, a.len, im->info.authzid, sizeof(im->info.authzid));
        if (r != 0)
            return server_fail(im, out, cap, out_len, "e=invalid-username-encoding", r,
                               "bad authzid");
    } else if (pos >= len || msg[pos] != ',') {
        return server_fail(im, out, cap, out_len, "e=other-error", SC_ERR_PROTO,
                           "bad gs2 header");
    } else {
        pos++;
    }
    sc->gs2_len = pos;
    if (pos > sizeof(sc->gs2))
        return server_fail(im, out, cap, out_len, "e=other-error", SC_ERR_TOO_LONG,
                           "gs2 header too long");
    memcpy(sc->gs2, msg, pos);

    /* client-first-message-bare */
    const char *bare = msg + pos;
    size_t bare_len = len - pos;
    if (bare_len >= 2 && bare[0] == 'm' && bare[1] == '=')
        return server_fail(im, out, cap, out_len, "e=extensions-not-supported",
                           SC_ERR_UNSUPPORTED, "the client requires an extension (m=)");
    size_t bpos = 0;
    struct attr a;
    if (next_attr(bare, bare_len, &bpos, &a) != 0 || a.name != 'n')
        return server_fail(im, out, cap, out_len, "e=other-error", SC_ERR_PROTO,
                           "client-first-message has no n=");
    int r = get_saslname(a.val, a.len, im->info.user, sizeof(im->info.user));
    if (r != 0)
        return server_fail(im, out, cap, out_len, "e=invalid-username-encoding", r,
                           r == SC_ERR_UNSUPPORTED ? "non-ASCII user names are not supported"
                                                   : "bad user name");
    if (next_attr(bare, bare_len, &bpos, &a) != 0 || a.name != 'r' || a.len > SASL_NONCE_MAX ||
        !nonce_ok(a.val, a.len))
        return server_fail(im, out, cap, out_len, "e=other-error", SC_ERR_PROTO,
                           "client-first-message has no valid r=");
    memcpy(sc->nonce, a.val, a.len);
    sc->cnonce_len = a.len;

    struct sc_sasl_user_secret user;
    memset(&user, 0, sizeof(user));
    r = cfg->lookup(cfg->lookup_arg, im->info.user, "", &user);
    bool found = r == 0 && (sc->sha256 ? user.has_sha256 : user.has_sha1);
    if (r != 0 && r != SC_ERR_NOT_FOUND) {
        sasl_wipe(&user, sizeof(user));
        return server_fail(im, out, cap, out_len, "e=other-error", r, "user lookup failed");
    }
    if (found) {
        sc->secret = sc->sha256 ? user.sha256 : user.sha1;
    } else {
        sc->unknown_user = true;
        r = decoy_secret(im, &sc->secret);
        if (r != 0) {
            sasl_wipe(&user, sizeof(user));
            return server_fail(im, out, cap, out_len, "e=other-error", r, "no entropy");
        }
    }
    sasl_wipe(&user, sizeof(user));
    if (sc->secret.salt_len == 0 || sc->secret.salt_len > SC_SASL_SALT_MAX ||
        sc->secret.iterations < SC_SASL_ITER_MIN || sc->secret.iterations > SC_SASL_ITER_MAX)
        return server_fail(im, out, cap, out_len, "e=other-error", SC_ERR_CRED,
                           "the stored verifier is malformed");

    char snonce[SASL_NONCE_MAX + 1];
    int n = sasl_make_nonce(snonce, sizeof(snonce), cfg->test_nonce);
    if (n < 0)
        return server_fail(im, out, cap, out_len, "e=other-error", n, "no nonce");
    memcpy(sc->nonce + sc->cnonce_len, snonce, (size_t)n);
    sc->nonce_len = sc->cnonce_len + (size_t)n;

    char salt64[SC_SASL_SALT_MAX * 2];
    size_t salt64_len = 0;
    char iter[12];
    snprintf(iter, sizeof(iter), "%lu", (unsigned long)sc->secret.iterations);
    if (sasl_b64_encode(sc->secret.salt, sc->secret.salt_len, salt64, sizeof(salt64),
                        &salt64_len) != 0)
        return server_fail(im, out, cap, out_len, "e=other-error", SC_ERR_INTERNAL, "salt");

    /* transcript: bare "," server-first; out: server-first */
    struct sasl_text t = {.buf = sc->transcript, .cap = sizeof(sc->transcript)};
    sasl_put(&t, bare, bare_len);
    sasl_puts(&t, ",");
    size_t sf_start = t.len;
    sasl_puts(&t, "r=");
    sasl_put(&t, sc->nonce, sc->nonce_len);
    sasl_puts(&t, ",s=");
    sasl_put(&t, salt64, salt64_len);
    sasl_puts(&t, ",i=");
    sasl_puts(&t, iter);
    if (t.overflow)
        return server_fail(im, out, cap, out_len, "e=other-error", SC_ERR_TOO_LONG,
                           "client-first-message too long");
    sc->transcript_len = t.len;
    if (t.len - sf_start > cap)
        return sasl_fail(im, SC_ERR_NOSPACE, "SCRAM: output buffer too small");
    memcpy(out, t.buf + sf_start, t.len - sf_start);
    *out_len = t.len - sf_start;
    return SC_SASL_CONTINUE;
}

static int server_client_final(struct sasl_impl *im, const char *msg, size_t len, uint8_t *out,
                               size_t cap, size_t *out_len)
{
    struct scram_state *sc = &im->m.scram;
    const struct sc_sasl_server_config *cfg = &im->scfg;
    size_t pos = 0;
    struct attr a;
    if (next_attr(msg, len, &pos, &a) != 0 || a.name != 'c')
        return server_fail(im, out, cap, out_len, "e=other-error", SC_ERR_PROTO,
                           "client-final-message has no c=");
    char want[sizeof(sc->gs2) * 2 + SC_SASL_CB_MAX * 2];
    size_t want_len = 0;
    if (cbind_b64(sc, cfg->binding, want, sizeof(want), &want_len) != 0)
        return server_fail(im, out, cap, out_len, "e=other-error", SC_ERR_INTERNAL, "c=");
    if (a.len != want_len || !sasl_ct_equal(a.val, want, want_len))
        return server_fail(im, out, cap, out_len, "e=channel-bindings-dont-match",
                           SC_ERR_SASL_AUTH,
                           sc->gs2[0] == 'p' ? "channel binding does not match: the client "
                                               "is not at the other end of our TLS session"
                                             : "c= does not repeat the gs2 header");
    if (next_attr(msg, len, &pos, &a) != 0 || a.name != 'r')
        return server_fail(im, out, cap, out_len, "e=other-error", SC_ERR_PROTO,
                           "client-final-message has no r=");
    if (a.len != sc->nonce_len || memcmp(a.val, sc->nonce, a.len) != 0)
        return server_fail(im, out, cap, out_len, "e=other-error", SC_ERR_SASL_REPLAY,
                           "client-final-message carries a nonce we did not issue");
    /* extensions, then p= last */
    size_t proof_at = 0;
    for (;;) {
        size_t before = pos;
        if (next_attr(msg, len, &pos, &a) != 0)
            return server_fail(im, out, cap, out_len, "e=other-error", SC_ERR_PROTO,
                               "client-final-message has no p=");
        if (a.name == 'p') {
            proof_at = before;
            break;
        }
    }
    if (pos != len)
        return server_fail(im, out, cap, out_len, "e=other-error", SC_ERR_PROTO,
                           "p= is not the last attribute");
    uint8_t proof[64];
    size_t proof_len = 0;
    if (sasl_b64_decode(a.val, a.len, proof, sizeof(proof), &proof_len) != 0 ||
        proof_len != sc->hash_len)
        return server_fail(im, out, cap, out_len, "e=invalid-proof", SC_ERR_PROTO,
                           "p= is not a proof of the right length");

    struct sasl_text am = {.buf = sc->transcript, .cap = sizeof(sc->transcript),
                           .len = sc->transcript_len};
    sasl_puts(&am, ",");
    sasl_put(&am, msg, proof_at - 1);
    if (am.overflow)
        return server_fail(im, out, cap, out_len, "e=other-error", SC_ERR_TOO_LONG,
                           "client-final-message too long");

    int md = md_of(sc);
    size_t hlen = sc->hash_len;
    uint8_t sig[32], client_key[32], stored[32];
    int r = sasl_hmac(md, sc->secret.stored_key, hlen, am.buf, am.len, NULL, 0, sig);
    for (size_t i = 0; i < hlen; i++)
        client_key[i] = (uint8_t)(proof[i] ^ sig[i]);
    if (r == 0)
        r = sasl_hash(md, client_key, hlen, NULL, 0, stored);
    bool ok = r == 0 && sasl_ct_equal(stored, sc->secret.stored_key, hlen);
    sasl_wipe(client_key, sizeof(client_key));
    if (r != 0)
        return server_fail(im, out, cap, out_len, "e=other-error", r, "HMAC failed");
    if (sc->unknown_user)
        return server_fail(im, out, cap, out_len, "e=invalid-proof", SC_ERR_SASL_USER,
                           "unknown user");
    if (!ok)
        return server_fail(im, out, cap, out_len, "e=invalid-proof", SC_ERR_SASL_AUTH,
                           "wrong password (the client's proof does not verify)");

    uint8_t server_sig[32];
    r = sasl_hmac(md, sc->secret.server_key, hlen, am.buf, am.len, NULL, 0, server_sig);
    char v64[64];
    size_t v64_len = 0;
    if (r == 0)
        r = sasl_b64_encode(server_sig, hlen, v64, sizeof(v64), &v64_len);
    if (r != 0 || v64_len + 2 > cap)
        return server_fail(im, out, cap, out_len, "e=other-error", SC_ERR_INTERNAL,
                           "ServerSignature");
    memcpy(out, "v=", 2);
    memcpy(out + 2, v64, v64_len);
    *out_len = v64_len + 2;
    sasl_wipe(&sc->secret, sizeof(sc->secret));
    im->info.channel_bound = sc->plus;
    return SC_OK;
}

int scram_server_start(struct sasl_impl *im, const uint8_t *in, size_t in_len, bool has_in,
                       uint8_t *out, size_t cap, size_t *out_len)
{
    struct scram_state *sc = &im->m.scram;
    memset(sc, 0, sizeof(*sc));
    sc->sha256 = mech_is_sha256(im->mech);
    sc->plus = sasl_mech_is_plus(im->mech);
    sc->hash_len = sc->sha256 ? 32 : 20;
    *out_len = 0;
    if (!has_in)
        return SC_SASL_CONTINUE;  /* an empty challenge asks for client-first */
    im->step = 1;
    return server_client_first(im, (const char *)in, in_len, out, cap, out_len);
}

int scram_server_step(struct sasl_impl *im, const uint8_t *in, size_t in_len, uint8_t *out,
                      size_t cap, size_t *out_len)
{
    *out_len = 0;
    if (im->step == 1)
        return server_client_first(im, (const char *)in, in_len, out, cap, out_len);
    if (im->step == 2)
        return server_client_final(im, (const char *)in, in_len, out, cap, out_len);
    return sasl_fail(im, SC_ERR_PROTO, "SCRAM: unexpected token after the exchange");
}
