/* The SASL context: mechanism dispatch (level 1), the framing of
 * docs/sasl.md with its policy (level 2), and the driver that joins the
 * framing to a channel. See sechan/sasl.h. */
#include <stdio.h>
#include <string.h>

#include "sasl_internal.h"

enum {
    FR_MECHS = 1,
    FR_START = 2,
    FR_CHALLENGE = 3,
    FR_RESPONSE = 4,
    FR_OUTCOME = 5,
    FR_ABORT = 6
};

static const char *const mech_names[SC_SASL_MECH_COUNT] = {
    [SC_SASL_SCRAM_SHA_256_PLUS] = "SCRAM-SHA-256-PLUS",
    [SC_SASL_SCRAM_SHA_1_PLUS] = "SCRAM-SHA-1-PLUS",
    [SC_SASL_SCRAM_SHA_256] = "SCRAM-SHA-256",
    [SC_SASL_SCRAM_SHA_1] = "SCRAM-SHA-1",
    [SC_SASL_DIGEST_MD5] = "DIGEST-MD5",
};

static const enum sc_sasl_mech default_order[SC_SASL_MECH_COUNT] = {
    SC_SASL_SCRAM_SHA_256_PLUS, SC_SASL_SCRAM_SHA_1_PLUS, SC_SASL_SCRAM_SHA_256,
    SC_SASL_SCRAM_SHA_1, SC_SASL_DIGEST_MD5,
};

const char *sc_sasl_mech_name(enum sc_sasl_mech m)
{
    return (unsigned)m < SC_SASL_MECH_COUNT ? mech_names[m] : NULL;
}

int sc_sasl_mech_lookup(const char *name, size_t len)
{
    for (int m = 0; m < SC_SASL_MECH_COUNT; m++)
        if (strlen(mech_names[m]) == len && memcmp(mech_names[m], name, len) == 0)
            return m;
    return -1;
}

static bool is_scram(enum sc_sasl_mech m)
{
    return m != SC_SASL_DIGEST_MD5;
}

/* The policy of docs/sasl.md for one mechanism on one side. */
static bool mech_allowed(enum sc_sasl_mech m, bool plaintext, bool allow_no_layer, unsigned qop,
                         const struct sc_sasl_binding *b)
{
    bool bindable = b != NULL && b->type != SC_SASL_CB_NONE && b->len > 0;
    if (sasl_mech_is_plus(m))
        return bindable && !plaintext;
    if (is_scram(m))
        return !plaintext || allow_no_layer;
    return sasl_policy_qops(plaintext, allow_no_layer, qop) != 0;
}

static int check_binding(const struct sc_sasl_binding *b)
{
    if (b == NULL)
        return SC_OK;
    if (b->len > SC_SASL_CB_MAX || (b->type != SC_SASL_CB_NONE && b->len == 0))
        return SC_ERR_INVAL;
    return SC_OK;
}

/* ---- framing: building frames ---- */

/* The body of each token goes straight into tx after its header. */
static uint8_t *tx_body(struct sasl_impl *im)
{
    return im->tx + SASL_FRAME_HDR;
}

static void tx_frame(struct sasl_impl *im, unsigned type, const uint8_t *a, size_t a_len,
                     const uint8_t *b, size_t b_len)
{
    size_t len = a_len + b_len;
    im->tx[0] = (uint8_t)type;
    im->tx[1] = (uint8_t)(len >> 8);
    im->tx[2] = (uint8_t)len;
    if (a_len > 0)
        memmove(im->tx + SASL_FRAME_HDR, a, a_len);
    if (b_len > 0)
        memmove(im->tx + SASL_FRAME_HDR + a_len, b, b_len);
    im->tx_len = SASL_FRAME_HDR + len;
    im->tx_off = 0;
    im->fstate = FS_SEND;
}

/* The body was built in place at tx_body(). */
static void tx_finish(struct sasl_impl *im, unsigned type, size_t len)
{
    im->tx[0] = (uint8_t)type;
    im->tx[1] = (uint8_t)(len >> 8);
    im->tx[2] = (uint8_t)len;
    im->tx_len = SASL_FRAME_HDR + len;
    im->tx_off = 0;
    im->fstate = FS_SEND;
}

static void expect_frames(struct sasl_impl *im, unsigned types)
{
    im->after_send = FS_RECV;
    im->expect = types;
    im->rx_have = 0;
    im->rx_need = SASL_FRAME_HDR;
}

static void go_recv(struct sasl_impl *im, unsigned types)
{
    expect_frames(im, types);
    im->fstate = FS_RECV;
}

static size_t tx_room(void)
{
    return SC_SASL_TOKEN_MAX;
}

/* ---- init ---- */

int sc_sasl_client_init(struct sc_sasl *s, const struct sc_sasl_client_config *cfg)
{
    if (s == NULL || cfg == NULL)
        return SC_ERR_INVAL;
    struct sasl_impl *im = sasl_impl_of(s);
    memset(im, 0, sizeof(*im));
    im->ccfg = *cfg;
    if (cfg->user == NULL || cfg->password == NULL)
        return sasl_fail(im, SC_ERR_INVAL, "SASL: a client needs a user and a password");
    int r = sasl_check_ascii(cfg->user, SC_SASL_NAME_MAX);
    if (r == 0)
        r = sasl_check_ascii(cfg->password, SC_SASL_PASS_MAX);
    if (r == 0 && cfg->authzid != NULL)
        r = sasl_check_ascii(cfg->authzid, SC_SASL_NAME_MAX);
    if (r == 0 && cfg->realm != NULL)
        r = sasl_check_ascii(cfg->realm, SC_SASL_NAME_MAX);
    if (r == SC_ERR_UNSUPPORTED)
        return sasl_fail(im, r, "SASL: non-ASCII names and passwords are not supported");
    if (r != 0)
        return sasl_fail(im, r, "SASL: user name, password or realm too long");
    if (cfg->user[0] == '\0')
        return sasl_fail(im, SC_ERR_INVAL, "SASL: empty user name");
    if (check_binding(cfg->binding) != 0 ||
        (cfg->maxbuf != 0 && (cfg->maxbuf < SC_SASL_MAXBUF_MIN ||
                              cfg->maxbuf > SC_SASL_MAXBUF_MAX)))
        return sasl_fail(im, SC_ERR_INVAL, "SASL: bad channel binding or maxbuf");
    r = sasl_init_crypto();
    if (r != 0)
        return sasl_fail(im, r, "SASL: Mbed TLS init failed");
    /* The exchange starts by reading the server's MECHS. */
    go_recv(im, 1u << FR_MECHS);
    return SC_OK;
}

int sc_sasl_server_init(struct sc_sasl *s, const struct sc_sasl_server_config *cfg)
{
    if (s == NULL || cfg == NULL)
        return SC_ERR_INVAL;
    struct sasl_impl *im = sasl_impl_of(s);
    memset(im, 0, sizeof(*im));
    im->server = true;
    im->scfg = *cfg;
    if (cfg->lookup == NULL)
        return sasl_fail(im, SC_ERR_INVAL, "SASL: a server needs a user lookup");
    if (check_binding(cfg->binding) != 0 ||
        (cfg->maxbuf != 0 && (cfg->maxbuf < SC_SASL_MAXBUF_MIN ||
                              cfg->maxbuf > SC_SASL_MAXBUF_MAX)) ||
        (cfg->realm != NULL && sasl_check_ascii(cfg->realm, SC_SASL_NAME_MAX) != 0) ||
        (cfg->unknown_iterations != 0 && (cfg->unknown_iterations < SC_SASL_ITER_MIN ||
                                          cfg->unknown_iterations > SC_SASL_ITER_MAX)))
        return sasl_fail(im, SC_ERR_INVAL, "SASL: bad binding, maxbuf, realm or iterations");
    int r = sasl_init_crypto();
    if (r != 0)
        return sasl_fail(im, r, "SASL: Mbed TLS init failed");

    const enum sc_sasl_mech *list = cfg->mechs != NULL ? cfg->mechs : default_order;
    size_t count = cfg->mechs != NULL ? cfg->mech_count : SC_SASL_MECH_COUNT;
    uint8_t body[SC_SASL_MECHS_MAX];
    size_t len = 0;
    for (size_t i = 0; i < count; i++) {
        enum sc_sasl_mech m = list[i];
        if ((unsigned)m >= SC_SASL_MECH_COUNT)
            return sasl_fail(im, SC_ERR_INVAL, "SASL: unknown mechanism in the list");
        if (!mech_allowed(m, cfg->plaintext, cfg->allow_no_layer, cfg->qop, cfg->binding) ||
            (im->offered & (1u << m)))
            continue;
        size_t n = strlen(mech_names[m]);
        if (len + (len > 0) + n > sizeof(body))
            break;
        if (len > 0)
            body[len++] = ' ';
        memcpy(body + len, mech_names[m], n);
        len += n;
        im->offered |= 1u << m;
    }
    if (im->offered == 0)
        return sasl_fail(im, SC_ERR_SASL_POLICY,
                         "SASL: the policy leaves no mechanism to offer (plaintext transport: "
                         "only DIGEST-MD5 with a security layer, unless allow_no_layer)");
    tx_frame(im, FR_MECHS, body, len, NULL, 0);
    expect_frames(im, 1u << FR_START | 1u << FR_ABORT);
    return SC_OK;
}

void sc_sasl_free(struct sc_sasl *s)
{
    if (s != NULL)
        sasl_wipe(s, sizeof(*s));
}

/* ---- level 1 ---- */

static int mech_client_start(struct sasl_impl *im, enum sc_sasl_mech m, uint8_t *out, size_t cap,
                             size_t *out_len, bool *has_out)
{
    *out_len = 0;
    *has_out = false;
    if (im->error != 0)
        return im->error;
    if (im->server || im->started || (unsigned)m >= SC_SASL_MECH_COUNT)
        return SC_ERR_STATE;
    im->started = true;
    im->mech = m;
    im->info.mech = m;
    im->step = 0;
    if (!is_scram(m))
        return SC_SASL_CONTINUE;  /* DIGEST-MD5: the server speaks first */
    *has_out = true;
    int r = scram_client_start(im, out, cap, out_len);
    if (r >= 0)
        im->info.qop = SC_SASL_QOP_AUTH;
    return r;
}

static int mech_server_start(struct sasl_impl *im, enum sc_sasl_mech m, const uint8_t *in,
                             size_t in_len, bool has_in, uint8_t *out, size_t cap, size_t *out_len)
{
    *out_len = 0;
    if (im->error != 0)
        return im->error;
    if (!im->server || im->started || (unsigned)m >= SC_SASL_MECH_COUNT)
        return SC_ERR_STATE;
    im->started = true;
    im->mech = m;
    im->info.mech = m;
    im->step = 0;
    if (is_scram(m)) {
        im->info.qop = SC_SASL_QOP_AUTH;
        int r = scram_server_start(im, in, in_len, has_in, out, cap, out_len);
        if (r == SC_OK)
            im->mech_done = true;
        return r;
    }
    if (has_in && in_len > 0)
        return sasl_fail(im, SC_ERR_PROTO, "DIGEST-MD5: an initial response is not allowed");
    return digest_server_start(im, out, cap, out_len);
}

static int mech_step(struct sasl_impl *im, const uint8_t *in, size_t in_len, uint8_t *out,
                     size_t cap, size_t *out_len)
{
    *out_len = 0;
    if (im->error != 0)
        return im->error;
    if (!im->started || im->mech_done)
        return sasl_fail(im, SC_ERR_STATE, "SASL: step after the end of the exchange");
    if (in_len > SC_SASL_TOKEN_MAX)
        return sasl_fail(im, SC_ERR_TOO_LONG, "SASL: token of %zu bytes (limit %d)", in_len,
                         SC_SASL_TOKEN_MAX);
    im->step++;
    int r;
    if (im->server)
        r = is_scram(im->mech) ? scram_server_step(im, in, in_len, out, cap, out_len)
                               : digest_server_step(im, in, in_len, out, cap, out_len);
    else
        r = is_scram(im->mech) ? scram_client_step(im, in, in_len, out, cap, out_len)
                               : digest_client_step(im, in, in_len, out, cap, out_len);
    if (r == SC_OK)
        im->mech_done = true;
    else if (r < 0 && im->error == 0)
        sasl_fail(im, r, "SASL: %s", sc_strerror(r));
    return r;
}

int sc_sasl_client_start(struct sc_sasl *s, enum sc_sasl_mech m, uint8_t *out, size_t cap,
                         size_t *out_len, bool *has_out)
{
    return mech_client_start(sasl_impl_of(s), m, out, cap, out_len, has_out);
}

int sc_sasl_server_start(struct sc_sasl *s, enum sc_sasl_mech m, const uint8_t *in,
                         size_t in_len, bool has_in, uint8_t *out, size_t cap, size_t *out_len)
{
    return mech_server_start(sasl_impl_of(s), m, in, in_len, has_in, out, cap, out_len);
}

int sc_sasl_step(struct sc_sasl *s, const uint8_t *in, size_t in_len, uint8_t *out, size_t cap,
                 size_t *out_len)
{
    return mech_step(sasl_impl_of(s), in, in_len, out, cap, out_len);
}

/* ---- level 2: handling one received frame ---- */

static bool mech_char(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_';
}

static int client_mechs(struct sasl_impl *im, const uint8_t *body, size_t len)
{
    const struct sc_sasl_client_config *cfg = &im->ccfg;
    size_t i = 0;
    while (i < len) {
        size_t n = 0;
        while (i + n < len && body[i + n] != ' ') {
            if (!mech_char((char)body[i + n]) || n >= SASL_MECH_NAME_MAX)
                return sasl_fail(im, SC_ERR_PROTO, "SASL: malformed mechanism list");
            n++;
        }
        if (n == 0)
            return sasl_fail(im, SC_ERR_PROTO, "SASL: malformed mechanism list");
        int m = sc_sasl_mech_lookup((const char *)body + i, n);
        if (m >= 0)
            im->offered |= 1u << m;
        i += n;
        if (i < len && ++i == len)
            return sasl_fail(im, SC_ERR_PROTO, "SASL: mechanism list ends with a space");
    }
    const enum sc_sasl_mech *list = cfg->mechs != NULL ? cfg->mechs : default_order;
    size_t count = cfg->mechs != NULL ? cfg->mech_count : SC_SASL_MECH_COUNT;
    int chosen = -1;
    for (size_t k = 0; k < count && chosen < 0; k++) {
        enum sc_sasl_mech m = list[k];
        if ((unsigned)m < SC_SASL_MECH_COUNT && (im->offered & (1u << m)) &&
            mech_allowed(m, cfg->plaintext, cfg->allow_no_layer, cfg->qop, cfg->binding))
            chosen = (int)m;
    }
    if (chosen < 0)
        return sasl_fail(im, SC_ERR_SASL_POLICY,
                         "SASL: the server offers only mechanisms our policy refuses "
                         "(offered: %.*s)",
                         (int)(len > 100 ? 100 : len), (const char *)body);

    enum sc_sasl_mech m = (enum sc_sasl_mech)chosen;
    size_t name_len = strlen(mech_names[m]);
    uint8_t *b = tx_body(im);
    b[0] = (uint8_t)name_len;
    memcpy(b + 1, mech_names[m], name_len);
    size_t resp_len = 0;
    bool has = false;
    int r = mech_client_start(im, m, b + 2 + name_len, tx_room() - 2 - name_len, &resp_len,
                              &has);
    if (r < 0)
        return r;
    b[1 + name_len] = has ? 1 : 0;
    tx_finish(im, FR_START, 2 + name_len + resp_len);
    expect_frames(im, 1u << FR_CHALLENGE | 1u << FR_OUTCOME);
    return SC_OK;
}

static void client_abort(struct sasl_impl *im)
{
    tx_frame(im, FR_ABORT, NULL, 0, NULL, 0);
    im->after_send = FS_FAILED;
}

static int client_challenge(struct sasl_impl *im, const uint8_t *body, size_t len)
{
    if (++im->rounds > SC_SASL_ROUNDS_MAX)
        return sasl_fail(im, SC_ERR_PROTO, "SASL: more than %d round trips",
                         SC_SASL_ROUNDS_MAX);
    if (im->mech_done)
        return sasl_fail(im, SC_ERR_PROTO, "SASL: a challenge after the mechanism finished");
    /* The challenge is in rx; the response is built in tx. */
    size_t out_len = 0;
    int r = mech_step(im, body, len, tx_body(im), tx_room(), &out_len);
    if (r < 0)
        return r;
    tx_finish(im, FR_RESPONSE, out_len);
    expect_frames(im, 1u << FR_CHALLENGE | 1u << FR_OUTCOME);
    return SC_OK;
}

static bool reason_ok(const uint8_t *r, size_t len)
{
    if (len > SC_SASL_REASON_MAX)
        return false;
    for (size_t i = 0; i < len; i++)
        if (r[i] < 0x20 || r[i] > 0x7e)
            return false;
    return true;
}

static int client_outcome(struct sasl_impl *im, const uint8_t *body, size_t len)
{
    if (len < 1 || body[0] > 1)
        return sasl_fail(im, SC_ERR_PROTO, "SASL: malformed outcome");
    if (body[0] == 1) {
        if (!reason_ok(body + 1, len - 1))
            return sasl_fail(im, SC_ERR_PROTO, "SASL: malformed failure reason");
        return sasl_fail(im, SC_ERR_SASL_AUTH, "SASL: %s: the server refused: %.*s",
                         mech_names[im->mech], (int)(len - 1), (const char *)body + 1);
    }
    if (len > 1 && !im->mech_done) {
        size_t out_len = 0;
        int r = mech_step(im, body + 1, len - 1, tx_body(im), tx_room(), &out_len);
        if (r < 0)
            return r;
        if (r != SC_OK || out_len != 0)
            return sasl_fail(im, SC_ERR_SASL_SERVER,
                             "SASL: %s: the server claims success before the mechanism ended",
                             mech_names[im->mech]);
    } else if (len > 1) {
        return sasl_fail(im, SC_ERR_PROTO, "SASL: success data after the mechanism ended");
    }
    if (!im->mech_done)
        return sasl_fail(im, SC_ERR_SASL_SERVER,
                         "SASL: %s: the server claims success without proving itself",
                         mech_names[im->mech]);
    im->fstate = FS_DONE;
    return SC_OK;
}

static const char *public_reason(int err)
{
    /* The wire says no more than this: an unknown user looks like a
     * wrong password (no user enumeration). */
    if (err == SC_ERR_SASL_USER || err == SC_ERR_SASL_AUTH || err == SC_ERR_SASL_REPLAY)
        return "authentication failed";
    return sc_strerror(err);
}

/* A mechanism's answer (at tx_body() + 1) becomes the next frame. */
static void server_reply(struct sasl_impl *im, int r, size_t out_len)
{
    uint8_t *b = tx_body(im);
    if (r == SC_SASL_CONTINUE) {
        memmove(b, b + 1, out_len);
        tx_finish(im, FR_CHALLENGE, out_len);
        expect_frames(im, 1u << FR_RESPONSE | 1u << FR_ABORT);
        return;
    }
    if (r == SC_OK) {
        b[0] = 0;
        tx_finish(im, FR_OUTCOME, 1 + out_len);
        im->after_send = FS_DONE;
        return;
    }
    /* SCRAM's e= is a fine reason; otherwise a generic one. */
    b[0] = 1;
    size_t n = out_len;
    if (n == 0 || !reason_ok(b + 1, n)) {
        const char *why = public_reason(r);
        n = strlen(why);
        memcpy(b + 1, why, n);
    }
    tx_finish(im, FR_OUTCOME, 1 + n);
    im->after_send = FS_FAILED;
}

static int server_startframe(struct sasl_impl *im, const uint8_t *body, size_t len)
{
    if (len < 2 || body[0] == 0 || body[0] > SASL_MECH_NAME_MAX || (size_t)body[0] + 2 > len) {
        sasl_fail(im, SC_ERR_PROTO, "SASL: malformed START");
        server_reply(im, SC_ERR_PROTO, 0);
        return SC_OK;
    }
    size_t name_len = body[0];
    uint8_t flag = body[1 + name_len];
    size_t resp_len = len - 2 - name_len;
    int m = sc_sasl_mech_lookup((const char *)body + 1, name_len);
    if (flag > 1 || (flag == 0 && resp_len != 0)) {
        sasl_fail(im, SC_ERR_PROTO, "SASL: malformed START");
        server_reply(im, SC_ERR_PROTO, 0);
        return SC_OK;
    }
    if (m < 0 || !(im->offered & (1u << m))) {
        sasl_fail(im, SC_ERR_SASL_POLICY, "SASL: the client chose %.*s, which we do not offer",
                  (int)name_len, (const char *)body + 1);
        server_reply(im, SC_ERR_SASL_POLICY, 0);
        return SC_OK;
    }
    size_t out_len = 0;
    int r = mech_server_start(im, (enum sc_sasl_mech)m, body + 2 + name_len, resp_len, flag == 1,
                              tx_body(im) + 1, tx_room() - 1, &out_len);
    server_reply(im, r, out_len);
    return SC_OK;
}

static int server_response(struct sasl_impl *im, const uint8_t *body, size_t len)
{
    if (++im->rounds > SC_SASL_ROUNDS_MAX) {
        sasl_fail(im, SC_ERR_PROTO, "SASL: more than %d round trips", SC_SASL_ROUNDS_MAX);
        server_reply(im, SC_ERR_PROTO, 0);
        return SC_OK;
    }
    size_t out_len = 0;
    int r = mech_step(im, body, len, tx_body(im) + 1, tx_room() - 1, &out_len);
    server_reply(im, r, out_len);
    return SC_OK;
}

static size_t frame_bound(unsigned type)
{
    switch (type) {
    case FR_MECHS:
        return SC_SASL_MECHS_MAX;
    case FR_START:
        return 2 + SASL_MECH_NAME_MAX + SC_SASL_TOKEN_MAX;
    case FR_CHALLENGE:
    case FR_RESPONSE:
        return SC_SASL_TOKEN_MAX;
    case FR_OUTCOME:
        return 1 + SC_SASL_TOKEN_MAX;
    default:
        return 0;
    }
}

/* A whole frame is in rx. */
static int dispatch(struct sasl_impl *im)
{
    unsigned type = im->rx[0];
    const uint8_t *body = im->rx + SASL_FRAME_HDR;
    size_t len = im->rx_need - SASL_FRAME_HDR;
    int r;
    switch (type) {
    case FR_MECHS:
        r = client_mechs(im, body, len);
        break;
    case FR_CHALLENGE:
        r = client_challenge(im, body, len);
        break;
    case FR_OUTCOME:
        return client_outcome(im, body, len);
    case FR_START:
        return server_startframe(im, body, len);
    case FR_RESPONSE:
        return server_response(im, body, len);
    case FR_ABORT:
        im->fstate = FS_FAILED;
        return sasl_fail(im, SC_ERR_SASL_AUTH, "SASL: the client aborted the exchange");
    default:
        return sasl_fail(im, SC_ERR_INTERNAL, "SASL: frame type %u", type);
    }
    if (r < 0 && !im->server)
        client_abort(im);
    return r;
}

/* ---- level 2: the engine's byte interface ---- */

unsigned sc_sasl_state(const struct sc_sasl *s)
{
    const struct sasl_impl *im = sasl_cimpl_of(s);
    if (im->fstate == FS_SEND)
        return SC_SASL_WANT_WRITE;
    if (im->error != 0 || im->fstate == FS_FAILED)
        return SC_SASL_FAILED;
    if (im->fstate == FS_DONE)
        return SC_SASL_DONE;
    if (im->fstate == FS_RECV)
        return SC_SASL_WANT_READ;
    return 0;
}

const uint8_t *sc_sasl_sendbuf(struct sc_sasl *s, size_t *len)
{
    struct sasl_impl *im = sasl_impl_of(s);
    if (im->fstate != FS_SEND) {
        *len = 0;
        return NULL;
    }
    *len = im->tx_len - im->tx_off;
    return im->tx + im->tx_off;
}

void sc_sasl_sendack(struct sc_sasl *s, size_t n)
{
    struct sasl_impl *im = sasl_impl_of(s);
    if (im->fstate != FS_SEND)
        return;
    if (n > im->tx_len - im->tx_off)
        n = im->tx_len - im->tx_off;
    im->tx_off += n;
    if (im->tx_off == im->tx_len) {
        im->fstate = im->after_send;
        im->tx_len = im->tx_off = 0;
    }
}

uint8_t *sc_sasl_recvbuf(struct sc_sasl *s, size_t *room)
{
    struct sasl_impl *im = sasl_impl_of(s);
    if (im->fstate != FS_RECV || im->error != 0) {
        *room = 0;
        return NULL;
    }
    *room = im->rx_need - im->rx_have;
    return im->rx + im->rx_have;
}

int sc_sasl_recvack(struct sc_sasl *s, size_t n)
{
    struct sasl_impl *im = sasl_impl_of(s);
    if (im->error != 0)
        return im->error;
    if (im->fstate != FS_RECV || n > im->rx_need - im->rx_have)
        return sasl_fail(im, SC_ERR_STATE, "SASL: recvack without a recvbuf");
    im->rx_have += n;
    if (im->rx_have < im->rx_need)
        return SC_OK;
    if (im->rx_need == SASL_FRAME_HDR) {
        unsigned type = im->rx[0];
        size_t len = (size_t)im->rx[1] << 8 | im->rx[2];
        if (type < FR_MECHS || type > FR_ABORT || !(im->expect & (1u << type))) {
            im->fstate = FS_FAILED;
            return sasl_fail(im, SC_ERR_PROTO, "SASL: unexpected frame type %u", type);
        }
        if (len > frame_bound(type)) {
            im->fstate = FS_FAILED;
            return sasl_fail(im, SC_ERR_TOO_LONG,
                             "SASL: frame type %u of %zu bytes (limit %zu)", type, len,
                             frame_bound(type));
        }
        im->rx_need = SASL_FRAME_HDR + len;
        if (len > 0)
            return SC_OK;
    }
    im->fstate = FS_IDLE;
    int r = dispatch(im);
    if (r < 0 && im->fstate != FS_SEND)
        im->fstate = FS_FAILED;
    /* A refusal still has its OUTCOME or ABORT to send (state says so). */
    return im->error;
}

int sc_sasl_run(struct sc_sasl *s, struct sc_channel *ch, uint64_t deadline_ms)
{
    struct sasl_impl *im = sasl_impl_of(s);
    for (;;) {
        unsigned st = sc_sasl_state(s);
        if (st & SC_SASL_DONE)
            return SC_OK;
        if (st & SC_SASL_FAILED)
            return im->error != 0 ? im->error : SC_ERR_INTERNAL;
        if (st & SC_SASL_WANT_WRITE) {
            size_t len = 0;
            const uint8_t *buf = sc_sasl_sendbuf(s, &len);
            int r = sc_write_all(ch, buf, len, deadline_ms);
            if (r < 0) {
                im->fstate = FS_FAILED;
                return sasl_fail(im, r, "SASL: sending: %s", sc_channel_errmsg(ch));
            }
            sc_sasl_sendack(s, len);
            continue;
        }
        if (!(st & SC_SASL_WANT_READ))
            return sasl_fail(im, SC_ERR_STATE, "SASL: the exchange was not started");
        size_t room = 0;
        uint8_t *buf = sc_sasl_recvbuf(s, &room);
        long n = sc_read_some(ch, buf, room, deadline_ms);
        if (n <= 0) {
            im->fstate = FS_FAILED;
            int e = n == 0 ? SC_ERR_EOF : (int)n;
            return sasl_fail(im, e, "SASL: receiving: %s",
                             n == 0 ? "the peer closed the connection" : sc_channel_errmsg(ch));
        }
        sc_sasl_recvack(s, (size_t)n);
    }
}

/* ---- results ---- */

int sc_sasl_info(const struct sc_sasl *s, struct sc_sasl_info *info)
{
    const struct sasl_impl *im = sasl_cimpl_of(s);
    if (!im->mech_done || im->error != 0)
        return SC_ERR_STATE;
    *info = im->info;
    if (!im->server)
        snprintf(info->user, sizeof(info->user), "%s", im->ccfg.user);
    return SC_OK;
}

int sc_sasl_error(const struct sc_sasl *s)
{
    return sasl_cimpl_of(s)->error;
}

const char *sc_sasl_errmsg(const struct sc_sasl *s)
{
    const struct sasl_impl *im = sasl_cimpl_of(s);
    if (im->error == 0)
        return "no error";
    return im->msg[0] != '\0' ? im->msg : sc_strerror(im->error);
}

bool sc_sasl_has_layer(const struct sc_sasl *s)
{
    const struct sasl_impl *im = sasl_cimpl_of(s);
    return im->mech_done && im->have_keys;
}
