/* Helpers every mechanism shares: Mbed TLS's hashes, HMAC, PBKDF2 and
 * base64 behind small wrappers, nonces, bounded text. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <mbedtls/base64.h>
#include <mbedtls/md.h>
#include <mbedtls/pkcs5.h>

#include "sasl_internal.h"
#include "sechan/port.h"
#include "sechan/tls.h"

int sasl_fail(struct sasl_impl *im, int err, const char *fmt, ...)
{
    if (im->error != 0)
        return im->error;
    im->error = err;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(im->msg, sizeof(im->msg), fmt, ap);
    va_end(ap);
    return err;
}

int sasl_init_crypto(void)
{
    /* Mbed TLS allocates HMAC contexts from the arena tls/ owns. */
    return sc_tls_global_init(NULL, 0);
}

int sasl_check_ascii(const char *s, size_t max)
{
    size_t n = 0;
    for (; s[n] != '\0'; n++) {
        if (n >= max)
            return SC_ERR_TOO_LONG;
        unsigned char c = (unsigned char)s[n];
        if (c < 0x20 || c > 0x7e)
            return SC_ERR_UNSUPPORTED;
    }
    return SC_OK;
}

int sasl_make_nonce(char *out, size_t cap, const char *fixed)
{
    size_t len;
    if (fixed != NULL) {
        len = strlen(fixed);
        if (len == 0 || len >= cap || len > SASL_NONCE_MAX)
            return SC_ERR_INVAL;
        memcpy(out, fixed, len + 1);
        return (int)len;
    }
    uint8_t raw[SASL_NONCE_RAND];
    int r = sc_port_entropy(raw, sizeof(raw));
    if (r != 0)
        return r;
    r = sasl_b64_encode(raw, sizeof(raw), out, cap, &len);
    sasl_wipe(raw, sizeof(raw));
    return r != 0 ? r : (int)len;
}

int sasl_b64_encode(const uint8_t *in, size_t len, char *out, size_t cap, size_t *out_len)
{
    /* Mbed TLS writes a terminating NUL, which needs its own byte. */
    size_t olen = 0;
    if (mbedtls_base64_encode((unsigned char *)out, cap, &olen, in, len) != 0)
        return SC_ERR_NOSPACE;
    *out_len = olen;
    return SC_OK;
}

int sasl_b64_decode(const char *in, size_t len, uint8_t *out, size_t cap, size_t *out_len)
{
    /* Strict: Mbed TLS would also skip line breaks and spaces. */
    for (size_t i = 0; i < len; i++) {
        char c = in[i];
        bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                  c == '+' || c == '/' || c == '=';
        if (!ok)
            return SC_ERR_PROTO;
    }
    size_t olen = 0;
    int r = mbedtls_base64_decode(out, cap, &olen, (const unsigned char *)in, len);
    if (r == MBEDTLS_ERR_BASE64_BUFFER_TOO_SMALL)
        return SC_ERR_TOO_LONG;
    if (r != 0)
        return SC_ERR_PROTO;
    *out_len = olen;
    return SC_OK;
}

static const mbedtls_md_info_t *md_of(int md)
{
    switch (md) {
    case 1:
        return mbedtls_md_info_from_type(MBEDTLS_MD_SHA1);
    case 256:
        return mbedtls_md_info_from_type(MBEDTLS_MD_SHA256);
    case 5:
        return mbedtls_md_info_from_type(MBEDTLS_MD_MD5);
    default:
        return NULL;
    }
}

int sasl_hmac(int md, const uint8_t *key, size_t key_len, const void *a, size_t a_len,
              const void *b, size_t b_len, uint8_t *out)
{
    const mbedtls_md_info_t *info = md_of(md);
    if (info == NULL)
        return SC_ERR_INTERNAL;
    mbedtls_md_context_t ctx;
    mbedtls_md_init(&ctx);
    int r = mbedtls_md_setup(&ctx, info, 1);
    if (r == 0)
        r = mbedtls_md_hmac_starts(&ctx, key, key_len);
    if (r == 0 && a_len > 0)
        r = mbedtls_md_hmac_update(&ctx, a, a_len);
    if (r == 0 && b_len > 0)
        r = mbedtls_md_hmac_update(&ctx, b, b_len);
    if (r == 0)
        r = mbedtls_md_hmac_finish(&ctx, out);
    mbedtls_md_free(&ctx);
    if (r == MBEDTLS_ERR_MD_ALLOC_FAILED)
        return SC_ERR_NOSPACE;
    return r == 0 ? SC_OK : SC_ERR_INTERNAL;
}

int sasl_hash(int md, const void *a, size_t a_len, const void *b, size_t b_len, uint8_t *out)
{
    const mbedtls_md_info_t *info = md_of(md);
    if (info == NULL)
        return SC_ERR_INTERNAL;
    mbedtls_md_context_t ctx;
    mbedtls_md_init(&ctx);
    int r = mbedtls_md_setup(&ctx, info, 0);
    if (r == 0)
        r = mbedtls_md_starts(&ctx);
    if (r == 0 && a_len > 0)
        r = mbedtls_md_update(&ctx, a, a_len);
    if (r == 0 && b_len > 0)
        r = mbedtls_md_update(&ctx, b, b_len);
    if (r == 0)
        r = mbedtls_md_finish(&ctx, out);
    mbedtls_md_free(&ctx);
    if (r == MBEDTLS_ERR_MD_ALLOC_FAILED)
        return SC_ERR_NOSPACE;
    return r == 0 ? SC_OK : SC_ERR_INTERNAL;
}

int sasl_pbkdf2(int md, const char *password, const uint8_t *salt, size_t salt_len,
                uint32_t iterations, uint8_t *out, size_t out_len)
{
    mbedtls_md_type_t t = md == 1 ? MBEDTLS_MD_SHA1 : MBEDTLS_MD_SHA256;
    int r = mbedtls_pkcs5_pbkdf2_hmac_ext(t, (const unsigned char *)password, strlen(password),
                                          salt, salt_len, iterations, (uint32_t)out_len, out);
    if (r == MBEDTLS_ERR_MD_ALLOC_FAILED)
        return SC_ERR_NOSPACE;
    return r == 0 ? SC_OK : SC_ERR_INTERNAL;
}

bool sasl_ct_equal(const void *a, const void *b, size_t len)
{
    const volatile uint8_t *x = a;
    const volatile uint8_t *y = b;
    uint8_t diff = 0;
    for (size_t i = 0; i < len; i++)
        diff |= (uint8_t)(x[i] ^ y[i]);
    return diff == 0;
}

void sasl_wipe(void *p, size_t len)
{
    volatile uint8_t *v = p;
    for (size_t i = 0; i < len; i++)
        v[i] = 0;
}

void sasl_hex(const uint8_t *in, size_t len, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < len; i++) {
        out[2 * i] = digits[in[i] >> 4];
        out[2 * i + 1] = digits[in[i] & 15];
    }
    out[2 * len] = '\0';
}

void sasl_put(struct sasl_text *t, const char *s, size_t len)
{
    if (t->overflow || len > t->cap - t->len) {
        t->overflow = true;
        return;
    }
    memcpy(t->buf + t->len, s, len);
    t->len += len;
}

void sasl_puts(struct sasl_text *t, const char *s)
{
    sasl_put(t, s, strlen(s));
}
