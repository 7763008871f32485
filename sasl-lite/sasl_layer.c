/* The DIGEST-MD5 security layer (RFC 2831 2.3, 2.4) as a channel: each
 * frame is a 4-byte big-endian length, then for auth-int
 *     message | HMAC-MD5(Ki, seq | message)[0..10] | 0x0001 | seq
 * and for auth-conf
 *     DES-CBC(Kc, message | padding | HMAC-MD5(Ki, seq | message)[0..10]) | 0x0001 | seq
 * with the CBC chain running on from frame to frame, as Cyrus SASL does.
 * See sechan/sasl.h. */
#include <stdio.h>
#include <string.h>

#include <mbedtls/des.h>

#include "sasl_internal.h"

#define LAYER_MAC 10
#define LAYER_TRAILER (LAYER_MAC + 2 + 4)  /* mac, message type, sequence number */
#define LAYER_LEN 4

struct layer_impl {
    struct sasl_keys k;
    uint32_t seq_send;
    uint32_t seq_recv;
    union {
        mbedtls_des_context des;
        mbedtls_des3_context des3;
    } enc, dec;
    uint8_t iv_send[8];
    uint8_t iv_recv[8];
    struct sc_channel *lower;
    uint8_t *rx;
    size_t rx_cap;
    size_t rx_have;
    size_t rx_need;
    uint8_t *plain;        /* the opened message inside rx, not yet read */
    size_t plain_len;
    uint8_t *tx;
    size_t tx_cap;
    size_t tx_len;
    size_t tx_off;
    size_t tx_taken;       /* caller bytes the frame in tx carries */
    size_t max_msg;        /* the largest message one frame carries */
    int error;
    char msg[112];
};

_Static_assert(sizeof(struct layer_impl) <= SC_SASL_LAYER_CTX_SIZE,
               "SC_SASL_LAYER_CTX_SIZE too small");

static struct layer_impl *layer_of(struct sc_sasl_layer *l)
{
    return (struct layer_impl *)(void *)l->opaque.bytes;
}

static const struct layer_impl *clayer_of(const struct sc_sasl_layer *l)
{
    return (const struct layer_impl *)(const void *)l->opaque.bytes;
}

static int layer_fail(struct layer_impl *li, int err, const char *what)
{
    if (li->error == 0) {
        li->error = err;
        snprintf(li->msg, sizeof(li->msg), "SASL layer: %s", what);
    }
    return li->error;
}

static void put32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static uint32_t get32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* 7 key bytes spread over 8, with odd parity in the low bit of each. */
static void des_key_from56(const uint8_t in[7], uint8_t out[8])
{
    out[0] = in[0];
    for (int i = 1; i < 7; i++)
        out[i] = (uint8_t)(in[i - 1] << (8 - i) | in[i] >> i);
    out[7] = (uint8_t)(in[6] << 1);
    mbedtls_des_key_set_parity(out);
}

static int cipher_setup(struct layer_impl *li)
{
    const struct sasl_keys *k = &li->k;
    uint8_t a[8], b[16];
    int r = 0;
    if (k->cipher == SC_SASL_CIPHER_DES) {
        mbedtls_des_init(&li->enc.des);
        mbedtls_des_init(&li->dec.des);
        des_key_from56(k->kc_send, a);
        r |= mbedtls_des_setkey_enc(&li->enc.des, a);
        des_key_from56(k->kc_recv, a);
        r |= mbedtls_des_setkey_dec(&li->dec.des, a);
    } else {
        mbedtls_des3_init(&li->enc.des3);
        mbedtls_des3_init(&li->dec.des3);
        des_key_from56(k->kc_send, b);
        des_key_from56(k->kc_send + 7, b + 8);
        r |= mbedtls_des3_set2key_enc(&li->enc.des3, b);
        des_key_from56(k->kc_recv, b);
        des_key_from56(k->kc_recv + 7, b + 8);
        r |= mbedtls_des3_set2key_dec(&li->dec.des3, b);
    }
    memcpy(li->iv_send, k->kc_send + 8, 8);
    memcpy(li->iv_recv, k->kc_recv + 8, 8);
    sasl_wipe(a, sizeof(a));
    sasl_wipe(b, sizeof(b));
    return r == 0 ? SC_OK : SC_ERR_INTERNAL;
}

static int cbc(struct layer_impl *li, bool encrypt, uint8_t *buf, size_t len)
{
    int r;
    if (li->k.cipher == SC_SASL_CIPHER_DES)
        r = encrypt ? mbedtls_des_crypt_cbc(&li->enc.des, MBEDTLS_DES_ENCRYPT, len, li->iv_send,
                                            buf, buf)
                    : mbedtls_des_crypt_cbc(&li->dec.des, MBEDTLS_DES_DECRYPT, len, li->iv_recv,
                                            buf, buf);
    else
        r = encrypt ? mbedtls_des3_crypt_cbc(&li->enc.des3, MBEDTLS_DES_ENCRYPT, len,
                                             li->iv_send, buf, buf)
                    : mbedtls_des3_crypt_cbc(&li->dec.des3, MBEDTLS_DES_DECRYPT, len,
                                             li->iv_recv, buf, buf);
    return r == 0 ? SC_OK : SC_ERR_INTERNAL;
}

static int mac10(const uint8_t key[16], uint32_t seq, const uint8_t *msg, size_t len,
                 uint8_t out[LAYER_MAC])
{
    uint8_t seqb[4], full[16];
    put32(seqb, seq);
    /* HMAC over seq | msg: the sequence number is the first part. */
    int r = sasl_hmac(5, key, 16, seqb, 4, msg, len, full);
    memcpy(out, full, LAYER_MAC);
    return r;
}

/* The frame body (without the length) for a message of len bytes. */
static size_t body_len(const struct layer_impl *li, size_t len)
{
    if (li->k.qop == SC_SASL_QOP_INT)
        return len + LAYER_TRAILER;
    size_t plain = len + 1 + LAYER_MAC;
    return (plain + 7) / 8 * 8 + 6;
}

/* ---- the codec ---- */

static int seal(struct layer_impl *li, const uint8_t *msg, size_t len, uint8_t *out, size_t cap,
                size_t *out_len)
{
    size_t body = body_len(li, len);
    if (len == 0 || len > li->max_msg || LAYER_LEN + body > cap)
        return SC_ERR_NOSPACE;
    uint8_t *p = out + LAYER_LEN;
    memmove(p, msg, len);
    uint8_t mac[LAYER_MAC];
    int r = mac10(li->k.ki_send, li->seq_send, p, len, mac);
    if (r != 0)
        return r;
    size_t n = len;
    if (li->k.qop == SC_SASL_QOP_CONF) {
        size_t pad = 8 - (len + LAYER_MAC) % 8;  /* 1..8 */
        memset(p + n, (int)pad, pad);
        n += pad;
        memcpy(p + n, mac, LAYER_MAC);
        n += LAYER_MAC;
        r = cbc(li, true, p, n);
        if (r != 0)
            return r;
    } else {
        memcpy(p + n, mac, LAYER_MAC);
        n += LAYER_MAC;
    }
    p[n] = 0;
    p[n + 1] = 1;
    put32(p + n + 2, li->seq_send);
    n += 6;
    put32(out, (uint32_t)n);
    li->seq_send++;
    *out_len = LAYER_LEN + n;
    return SC_OK;
}

static int open_frame(struct layer_impl *li, uint8_t *frame, size_t len, uint8_t **msg,
                      size_t *msg_len)
{
    if (len < LAYER_LEN)
        return layer_fail(li, SC_ERR_PROTO, "frame shorter than its length field");
    size_t body = get32(frame);
    if (body != len - LAYER_LEN)
        return layer_fail(li, SC_ERR_PROTO, "frame length does not match");
    uint8_t *p = frame + LAYER_LEN;
    bool conf = li->k.qop == SC_SASL_QOP_CONF;
    if (body < (conf ? 16u + 6 : (size_t)LAYER_TRAILER) || (conf && (body - 6) % 8 != 0))
        return layer_fail(li, SC_ERR_PROTO, "frame too short or not whole cipher blocks");
    if (p[body - 6] != 0 || p[body - 5] != 1)
        return layer_fail(li, SC_ERR_SASL_MAC, "frame has a wrong message type (tampered)");
    uint32_t seq = get32(p + body - 4);
    if (seq != li->seq_recv) {
        char why[96];
        snprintf(why, sizeof(why), "frame with sequence number %lu, expected %lu (replayed, "
                                   "reordered or lost)",
                 (unsigned long)seq, (unsigned long)li->seq_recv);
        return layer_fail(li, SC_ERR_SASL_SEQ, why);
    }
    size_t n = body - 6;
    size_t mlen;
    if (conf) {
        if (cbc(li, false, p, n) != 0)
            return layer_fail(li, SC_ERR_INTERNAL, "DES failed");
        size_t pad = p[n - LAYER_MAC - 1];
        if (pad < 1 || pad > 8 || pad + LAYER_MAC > n)
            return layer_fail(li, SC_ERR_SASL_MAC, "frame fails its integrity check (padding)");
        mlen = n - LAYER_MAC - pad;
        for (size_t i = 0; i < pad; i++)
            if (p[mlen + i] != pad)
                return layer_fail(li, SC_ERR_SASL_MAC,
                                  "frame fails its integrity check (padding)");
    } else {
        mlen = n - LAYER_MAC;
    }
    uint8_t mac[LAYER_MAC];
    if (mac10(li->k.ki_recv, seq, p, mlen, mac) != 0)
        return layer_fail(li, SC_ERR_INTERNAL, "HMAC failed");
    if (!sasl_ct_equal(mac, p + n - LAYER_MAC, LAYER_MAC))
        return layer_fail(li, SC_ERR_SASL_MAC, "frame fails its integrity check (tampered)");
    li->seq_recv++;
    *msg = p;
    *msg_len = mlen;
    return SC_OK;
}

int sc_sasl_layer_seal(struct sc_sasl_layer *l, const uint8_t *msg, size_t len, uint8_t *out,
                       size_t cap, size_t *out_len)
{
    struct layer_impl *li = layer_of(l);
    if (li->error != 0)
        return li->error;
    return seal(li, msg, len, out, cap, out_len);
}

int sc_sasl_layer_open(struct sc_sasl_layer *l, uint8_t *frame, size_t len, uint8_t **msg,
                       size_t *msg_len)
{
    struct layer_impl *li = layer_of(l);
    if (li->error != 0)
        return li->error;
    return open_frame(li, frame, len, msg, msg_len);
}

/* ---- the channel ---- */

static int flush_tx(struct layer_impl *li)
{
    while (li->tx_off < li->tx_len) {
        long n = sc_write(li->lower, li->tx + li->tx_off, li->tx_len - li->tx_off);
        if (n < 0)
            return n == SC_ERR_AGAIN ? SC_ERR_AGAIN : layer_fail(li, (int)n, "sending a frame");
        li->tx_off += (size_t)n;
    }
    li->tx_off = li->tx_len = 0;
    return SC_OK;
}

static long layer_write(struct sc_channel *ch, const void *buf, size_t len)
{
    struct layer_impl *li = layer_of((struct sc_sasl_layer *)ch);
    if (li->error != 0)
        return li->error;
    if (li->tx_len > 0) {
        /* A retry after SC_ERR_AGAIN: the frame already holds its bytes. */
        int r = flush_tx(li);
        if (r != 0)
            return r;
        long taken = (long)li->tx_taken;
        li->tx_taken = 0;
        return taken;
    }
    if (len == 0)
        return 0;
    size_t n = len < li->max_msg ? len : li->max_msg;
    int r = seal(li, buf, n, li->tx, li->tx_cap, &li->tx_len);
    if (r != 0)
        return layer_fail(li, r, "sealing a frame");
    li->tx_off = 0;
    li->tx_taken = n;
    r = flush_tx(li);
    if (r != 0)
        return r;
    li->tx_taken = 0;
    return (long)n;
}

static long layer_read(struct sc_channel *ch, void *buf, size_t len)
{
    struct layer_impl *li = layer_of((struct sc_sasl_layer *)ch);
    if (li->error != 0)
        return li->error;
    while (li->plain_len == 0) {
        /* Read exactly one frame: the bytes after it stay below. */
        size_t need = li->rx_have < LAYER_LEN ? LAYER_LEN : li->rx_need;
        long n = sc_read(li->lower, li->rx + li->rx_have, need - li->rx_have);
        if (n == 0) {
            if (li->rx_have == 0)
                return 0;
            return layer_fail(li, SC_ERR_EOF, "the peer closed inside a frame");
        }
        if (n < 0)
            return n == SC_ERR_AGAIN ? SC_ERR_AGAIN : layer_fail(li, (int)n, "receiving");
        li->rx_have += (size_t)n;
        if (li->rx_have == LAYER_LEN && need == LAYER_LEN) {
            uint32_t body = get32(li->rx);
            if (body > li->k.recv_maxbuf || LAYER_LEN + (size_t)body > li->rx_cap) {
                char why[96];
                snprintf(why, sizeof(why), "frame of %lu bytes, above our maxbuf %lu",
                         (unsigned long)body, (unsigned long)li->k.recv_maxbuf);
                return layer_fail(li, SC_ERR_TOO_LONG, why);
            }
            li->rx_need = LAYER_LEN + body;
        }
        if (li->rx_have >= LAYER_LEN && li->rx_have == li->rx_need) {
            int r = open_frame(li, li->rx, li->rx_have, &li->plain, &li->plain_len);
            li->rx_have = 0;
            if (r != 0)
                return r;
        }
    }
    size_t n = len < li->plain_len ? len : li->plain_len;
    memcpy(buf, li->plain, n);
    li->plain += n;
    li->plain_len -= n;
    return (long)n;
}

static enum sc_dir layer_direction(const struct sc_channel *ch)
{
    const struct layer_impl *li = clayer_of((const struct sc_sasl_layer *)ch);
    if (li->tx_len > 0)
        return SC_DIR_WRITE;
    return sc_direction(li->lower);
}

static size_t layer_pending(const struct sc_channel *ch)
{
    return clayer_of((const struct sc_sasl_layer *)ch)->plain_len;
}

static int layer_flush(struct sc_channel *ch)
{
    struct layer_impl *li = layer_of((struct sc_sasl_layer *)ch);
    if (li->error != 0)
        return li->error;
    int r = flush_tx(li);
    return r != 0 ? r : sc_flush(li->lower);
}

static int layer_shutdown(struct sc_channel *ch)
{
    struct layer_impl *li = layer_of((struct sc_sasl_layer *)ch);
    int r = layer_flush(ch);
    return r != 0 ? r : sc_shutdown(li->lower);
}

static int layer_close(struct sc_channel *ch)
{
    struct layer_impl *li = layer_of((struct sc_sasl_layer *)ch);
    sasl_wipe(li, sizeof(*li));
    return SC_OK;
}

static const char *layer_errmsg(const struct sc_channel *ch)
{
    const struct layer_impl *li = clayer_of((const struct sc_sasl_layer *)ch);
    return li->msg[0] != '\0' ? li->msg : sc_strerror(li->error);
}

static const struct sc_channel_ops layer_ops = {
    .name = "sasl",
    .read = layer_read,
    .write = layer_write,
    .close = layer_close,
    .direction = layer_direction,
    .shutdown = layer_shutdown,
    .pending = layer_pending,
    .flush = layer_flush,
    .errmsg = layer_errmsg,
};

int sc_sasl_layer_init(struct sc_sasl_layer *l, struct sc_channel *lower, struct sc_sasl *s,
                       void *rx, size_t rx_len, void *tx, size_t tx_len)
{
    if (l == NULL || lower == NULL || s == NULL || rx == NULL || tx == NULL)
        return SC_ERR_INVAL;
    struct sasl_impl *im = sasl_impl_of(s);
    if (!sc_sasl_has_layer(s))
        return SC_ERR_STATE;
    struct layer_impl *li = layer_of(l);
    memset(l, 0, sizeof(*l));
    sc_channel_init(&l->base, &layer_ops, lower);
    li->k = im->keys;
    sasl_wipe(&im->keys, sizeof(im->keys));
    im->have_keys = false;
    li->lower = lower;
    li->rx = rx;
    li->rx_cap = rx_len;
    li->tx = tx;
    li->tx_cap = tx_len;
    if (rx_len < (size_t)li->k.recv_maxbuf + LAYER_LEN)
        return layer_fail(li, SC_ERR_NOSPACE, "receive buffer smaller than our maxbuf + 4");
    /* The largest message whose frame, length included, fits both the
     * peer's maxbuf (Cyrus counts the length field in it) and tx. */
    size_t limit = li->k.send_maxbuf < tx_len ? li->k.send_maxbuf : tx_len;
    if (limit < 64)
        return layer_fail(li, SC_ERR_NOSPACE, "send buffer or the peer's maxbuf below 64 bytes");
    size_t room = limit - LAYER_LEN;
    if (li->k.qop == SC_SASL_QOP_CONF)
        li->max_msg = (room - 6) / 8 * 8 - 1 - LAYER_MAC;
    else
        li->max_msg = room - LAYER_TRAILER;
    if (li->k.qop == SC_SASL_QOP_CONF && cipher_setup(li) != 0)
        return layer_fail(li, SC_ERR_INTERNAL, "DES key setup failed");
    return SC_OK;
}
