/* see sechan/tls.h: credentials (X.509 from a QEMU-layout directory or
 * memory, PSK from a psktool file or memory). */
#include <stdio.h>
#include <string.h>

#include <mbedtls/pk.h>
#include <mbedtls/psa_util.h>

#include "sechan/port.h"
#include "tls_internal.h"

/* Keep "subject: reason[: mbedtls detail]" as the creds' message. */
static int creds_fail(struct tls_creds_impl *c, int code, const char *subject,
                      const char *reason, int mbed)
{
    char detail[112] = "";
    if (mbed != 0)
        tls_describe_mbedtls(mbed, detail, sizeof(detail));
    snprintf(c->msg, sizeof(c->msg), "%s: %s%s%s", subject, reason, detail[0] ? ": " : "",
             detail);
    return code;
}

int sc_tls_creds_init(struct sc_tls_creds *cr)
{
    if (cr == NULL)
        return SC_ERR_INVAL;
    int g = sc_tls_global_init(NULL, 0);
    if (g != 0)
        return g;
    struct tls_creds_impl *c = tls_creds_of(cr);
    memset(c, 0, sizeof(*c));
#if TLS_HAVE_X509
    mbedtls_x509_crt_init(&c->ca);
    mbedtls_x509_crt_init(&c->own_cert);
    mbedtls_pk_init(&c->own_key);
#endif
#if TLS_HAVE_CRL
    mbedtls_x509_crl_init(&c->crl);
#endif
    return 0;
}

void sc_tls_creds_free(struct sc_tls_creds *cr)
{
    if (cr == NULL)
        return;
    struct tls_creds_impl *c = tls_creds_of(cr);
#if TLS_HAVE_X509
    mbedtls_x509_crt_free(&c->ca);
    mbedtls_x509_crt_free(&c->own_cert);
    mbedtls_pk_free(&c->own_key);
#endif
#if TLS_HAVE_CRL
    mbedtls_x509_crl_free(&c->crl);
#endif
    tls_wipe(c, sizeof(*c));
}

const char *sc_tls_creds_errmsg(const struct sc_tls_creds *cr)
{
    return tls_creds_of_const(cr)->msg;
}

#if TLS_HAVE_X509
/* Mbed TLS parses PEM only from a NUL-terminated buffer whose length counts
 * the NUL; DER is taken as it is. The copy lives on the stack. */
struct pem_buf {
    unsigned char data[SC_TLS_FILE_MAX + 1];
    size_t len;
};

/* What Mbed TLS parses: DER, or PEM that ends with its NUL. */
struct cred_in {
    const unsigned char *p;
    size_t len;
};

/* Present src as Mbed TLS wants it: DER and NUL-terminated PEM as they are;
 * other PEM copied into scratch to add the NUL (a small build has no room
 * for that, SC_TLS_FILE_MAX 0, and takes only the first two forms). */
static int from_mem(struct tls_creds_impl *c, const char *what, const void *src, size_t len,
                    struct pem_buf *scratch, struct cred_in *out)
{
    const unsigned char *p = src;
    if (p == NULL || len == 0)
        return creds_fail(c, SC_ERR_INVAL, what, "empty", 0);
    /* DER starts with a SEQUENCE tag; anything else is treated as PEM. */
    if (p[0] == 0x30 || p[len - 1] == '\0') {
        *out = (struct cred_in){p, len};
        return 0;
    }
#if SC_TLS_FILE_MAX == 0
    (void)scratch;
    return creds_fail(c, SC_ERR_INVAL, what, "PEM in memory must end with its NUL (or use DER)", 0);
#else
    if (len > SC_TLS_FILE_MAX)
        return creds_fail(c, SC_ERR_TOO_LONG, what, "larger than SC_TLS_FILE_MAX", 0);
    memcpy(scratch->data, src, len);
    scratch->data[len] = '\0';
    *out = (struct cred_in){scratch->data, len + 1};
    return 0;
#endif
}

static struct cred_in file_in(const struct pem_buf *b)
{
    return (struct cred_in){b->data, b->len};
}

static int pem_from_file(struct tls_creds_impl *c, struct pem_buf *b, const char *path)
{
    long n = sc_port_read_file(path, b->data, SC_TLS_FILE_MAX);
    if (n == SC_ERR_TOO_LONG)
        return creds_fail(c, SC_ERR_TOO_LONG, path, "larger than SC_TLS_FILE_MAX", 0);
    if (n <= 0 || (size_t)n > SC_TLS_FILE_MAX)
        return creds_fail(c, SC_ERR_FILE, path, "cannot read", 0);
    b->data[n] = '\0';
    b->len = (size_t)n + 1;
    return 0;
}

static int add_ca(struct tls_creds_impl *c, struct cred_in b, const char *what)
{
    int r = mbedtls_x509_crt_parse(&c->ca, b.p, b.len);
    if (r != 0)
        return creds_fail(c, SC_ERR_CRED, what, "bad CA certificate", r);
    c->have_ca = true;
    return 0;
}

static int add_crl(struct tls_creds_impl *c, struct cred_in b, const char *what)
{
#if TLS_HAVE_CRL
    int r = mbedtls_x509_crl_parse(&c->crl, b.p, b.len);
    if (r != 0)
        return creds_fail(c, SC_ERR_CRED, what, "bad CRL", r);
    c->have_crl = true;
    return 0;
#else
    (void)b;
    return creds_fail(c, SC_ERR_UNSUPPORTED, what, "this build has no CRL support", 0);
#endif
}

static int set_own(struct tls_creds_impl *c, struct cred_in cert, struct cred_in key,
                   const char *what)
{
    if (c->have_own)
        return creds_fail(c, SC_ERR_STATE, what, "own certificate already set", 0);
    int r = mbedtls_x509_crt_parse(&c->own_cert, cert.p, cert.len);
    if (r != 0)
        return creds_fail(c, SC_ERR_CRED, what, "bad certificate", r);
    r = mbedtls_pk_parse_key(&c->own_key, key.p, key.len, NULL, 0,
                             mbedtls_psa_get_random, MBEDTLS_PSA_RANDOM_STATE);
    if (r != 0)
        return creds_fail(c, SC_ERR_CRED, what, "bad private key", r);
    r = mbedtls_pk_check_pair(&c->own_cert.pk, &c->own_key, mbedtls_psa_get_random,
                              MBEDTLS_PSA_RANDOM_STATE);
    if (r != 0)
        return creds_fail(c, SC_ERR_CRED, what, "key does not match the certificate", r);
    c->have_own = true;
    return 0;
}

int sc_tls_creds_add_ca(struct sc_tls_creds *cr, const void *pem, size_t len)
{
    struct tls_creds_impl *c = tls_creds_of(cr);
    struct pem_buf scratch;
    struct cred_in in;
    int r = from_mem(c, "CA", pem, len, &scratch, &in);
    return r != 0 ? r : add_ca(c, in, "CA");
}

int sc_tls_creds_add_crl(struct sc_tls_creds *cr, const void *pem, size_t len)
{
    struct tls_creds_impl *c = tls_creds_of(cr);
    struct pem_buf scratch;
    struct cred_in in;
    int r = from_mem(c, "CRL", pem, len, &scratch, &in);
    return r != 0 ? r : add_crl(c, in, "CRL");
}

int sc_tls_creds_set_own(struct sc_tls_creds *cr, const void *cert, size_t cert_len,
                         const void *key, size_t key_len)
{
    struct tls_creds_impl *c = tls_creds_of(cr);
    struct pem_buf cb, kb;
    struct cred_in cin, kin;
    int r = from_mem(c, "own certificate", cert, cert_len, &cb, &cin);
    if (r == 0 && (r = from_mem(c, "own key", key, key_len, &kb, &kin)) == 0)
        r = set_own(c, cin, kin, "own certificate");
    tls_wipe(&kb, sizeof(kb));
    return r;
}

static int dir_path(char *out, size_t cap, const char *dir, const char *name)
{
    int n = snprintf(out, cap, "%s/%s", dir, name);
    return n < 0 || (size_t)n >= cap ? SC_ERR_TOO_LONG : 0;
}

static bool file_exists(const char *path)
{
    uint8_t probe[1];
    long n = sc_port_read_file(path, probe, sizeof(probe));
    return n != SC_ERR_FILE;
}

int sc_tls_creds_load_x509_dir(struct sc_tls_creds *cr, const char *dir,
                               enum sc_tls_endpoint ep)
{
    struct tls_creds_impl *c = tls_creds_of(cr);
    if (dir == NULL)
        return creds_fail(c, SC_ERR_INVAL, "x509", "no directory given", 0);
    const char *who = ep == SC_TLS_SERVER ? "server" : "client";
    char path[512], cert_name[32], key_name[32];
    snprintf(cert_name, sizeof(cert_name), "%s-cert.pem", who);
    snprintf(key_name, sizeof(key_name), "%s-key.pem", who);

    struct pem_buf b;
    int r;
    if (dir_path(path, sizeof(path), dir, "ca-cert.pem") != 0)
        return creds_fail(c, SC_ERR_TOO_LONG, dir, "path too long", 0);
    if (file_exists(path)) {
        if ((r = pem_from_file(c, &b, path)) != 0 || (r = add_ca(c, file_in(&b), path)) != 0)
            return r;
    } else if (ep == SC_TLS_CLIENT) {
        return creds_fail(c, SC_ERR_FILE, path, "missing (a client needs the CA)", 0);
    }

    dir_path(path, sizeof(path), dir, "ca-crl.pem");
    if (file_exists(path)) {
        if ((r = pem_from_file(c, &b, path)) != 0 || (r = add_crl(c, file_in(&b), path)) != 0)
            return r;
    }

    char key_path[512];
    dir_path(path, sizeof(path), dir, cert_name);
    dir_path(key_path, sizeof(key_path), dir, key_name);
    bool have_cert = file_exists(path), have_key = file_exists(key_path);
    if (!have_cert && !have_key) {
        if (ep == SC_TLS_SERVER)
            return creds_fail(c, SC_ERR_FILE, path, "missing (a server needs its certificate)", 0);
        return 0;
    }
    if (!have_cert || !have_key)
        return creds_fail(c, SC_ERR_FILE, have_cert ? key_path : path, "certificate and key must come together", 0);
    struct pem_buf kb;
    if ((r = pem_from_file(c, &b, path)) == 0 && (r = pem_from_file(c, &kb, key_path)) == 0)
        r = set_own(c, file_in(&b), file_in(&kb), path);
    tls_wipe(&kb, sizeof(kb));
    return r;
}

#else /* no X.509 in this build */

int sc_tls_creds_add_ca(struct sc_tls_creds *cr, const void *pem, size_t len)
{
    (void)pem;
    (void)len;
    return creds_fail(tls_creds_of(cr), SC_ERR_UNSUPPORTED, "CA", "this build has no X.509", 0);
}

int sc_tls_creds_add_crl(struct sc_tls_creds *cr, const void *pem, size_t len)
{
    (void)pem;
    (void)len;
    return creds_fail(tls_creds_of(cr), SC_ERR_UNSUPPORTED, "CRL", "this build has no X.509", 0);
}

int sc_tls_creds_set_own(struct sc_tls_creds *cr, const void *cert, size_t cert_len,
                         const void *key, size_t key_len)
{
    (void)cert;
    (void)cert_len;
    (void)key;
    (void)key_len;
    return creds_fail(tls_creds_of(cr), SC_ERR_UNSUPPORTED, "own certificate",
                      "this build has no X.509", 0);
}

int sc_tls_creds_load_x509_dir(struct sc_tls_creds *cr, const char *dir,
                               enum sc_tls_endpoint ep)
{
    (void)ep;
    return creds_fail(tls_creds_of(cr), SC_ERR_UNSUPPORTED, dir != NULL ? dir : "x509",
                      "this build has no X.509", 0);
}
#endif /* TLS_HAVE_X509 */

static int hex_nibble(char ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    if (ch >= 'a' && ch <= 'f')
        return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F')
        return ch - 'A' + 10;
    return -1;
}

int sc_tls_creds_add_psk(struct sc_tls_creds *cr, const char *identity, const uint8_t *key,
                         size_t key_len)
{
    struct tls_creds_impl *c = tls_creds_of(cr);
    if (identity == NULL || key == NULL)
        return creds_fail(c, SC_ERR_INVAL, "psk", "identity and key required", 0);
    size_t id_len = strlen(identity);
    if (id_len == 0 || id_len > SC_TLS_PSK_ID_MAX)
        return creds_fail(c, SC_ERR_TOO_LONG, "psk", "identity empty or too long", 0);
    if (key_len == 0 || key_len > SC_TLS_PSK_KEY_MAX)
        return creds_fail(c, SC_ERR_TOO_LONG, "psk", "key empty or too long", 0);
    for (size_t i = 0; i < c->psk_count; i++) {
        if (strcmp(c->psk[i].identity, identity) == 0)
            return creds_fail(c, SC_ERR_CRED, identity, "PSK identity given twice", 0);
    }
    if (c->psk_count == SC_TLS_PSK_MAX)
        return creds_fail(c, SC_ERR_NOSPACE, "psk", "more keys than SC_TLS_PSK_MAX", 0);
    struct tls_psk_entry *e = &c->psk[c->psk_count++];
    memcpy(e->identity, identity, id_len + 1);
    memcpy(e->key, key, key_len);
    e->key_len = key_len;
    return 0;
}

/* One "identity:hexkey" line (without its newline). */
static int psk_line(struct tls_creds_impl *c, struct sc_tls_creds *cr, const char *line,
                    size_t len, unsigned lineno, const char *path)
{
    char where[160];
    snprintf(where, sizeof(where), "%.120s line %u", path, lineno);
    const char *colon = memchr(line, ':', len);
    if (colon == NULL)
        return creds_fail(c, SC_ERR_CRED, where, "expected identity:hexkey", 0);
    size_t id_len = (size_t)(colon - line);
    size_t hex_len = len - id_len - 1;
    if (id_len == 0 || id_len > SC_TLS_PSK_ID_MAX)
        return creds_fail(c, SC_ERR_CRED, where, "identity empty or too long", 0);
    if (hex_len == 0 || hex_len % 2 != 0 || hex_len / 2 > SC_TLS_PSK_KEY_MAX)
        return creds_fail(c, SC_ERR_CRED, where, "key must be 2 to 128 hex digits, even count", 0);
    char identity[SC_TLS_PSK_ID_MAX + 1];
    memcpy(identity, line, id_len);
    identity[id_len] = '\0';
    uint8_t key[SC_TLS_PSK_KEY_MAX];
    for (size_t i = 0; i < hex_len / 2; i++) {
        int hi = hex_nibble(colon[1 + 2 * i]), lo = hex_nibble(colon[2 + 2 * i]);
        if (hi < 0 || lo < 0) {
            tls_wipe(key, sizeof(key));
            return creds_fail(c, SC_ERR_CRED, where, "key is not hexadecimal", 0);
        }
        key[i] = (uint8_t)(hi << 4 | lo);
    }
    int r = sc_tls_creds_add_psk(cr, identity, key, hex_len / 2);
    tls_wipe(key, sizeof(key));
    return r;
}

int sc_tls_creds_load_psk_file(struct sc_tls_creds *cr, const char *path)
{
    struct tls_creds_impl *c = tls_creds_of(cr);
    char text[SC_TLS_FILE_MAX + 1];
    long n = sc_port_read_file(path, text, SC_TLS_FILE_MAX);
    if (n == SC_ERR_TOO_LONG)
        return creds_fail(c, SC_ERR_TOO_LONG, path, "larger than SC_TLS_FILE_MAX", 0);
    if (n < 0)
        return creds_fail(c, SC_ERR_FILE, path, "cannot read", 0);
    size_t before = c->psk_count;
    unsigned lineno = 0;
    int r = 0;
    for (size_t pos = 0; pos < (size_t)n && r == 0;) {
        const char *line = text + pos;
        const char *nl = memchr(line, '\n', (size_t)n - pos);
        size_t len = nl ? (size_t)(nl - line) : (size_t)n - pos;
        pos += len + (nl != NULL);
        lineno++;
        if (len > 0 && line[len - 1] == '\r')
            len--;
        if (len == 0)
            continue;
        r = psk_line(c, cr, line, len, lineno, path);
    }
    tls_wipe(text, sizeof(text));
    if (r == 0 && c->psk_count == before)
        r = creds_fail(c, SC_ERR_CRED, path, "no keys in file", 0);
    if (r != 0) {
        /* Fail closed: keep nothing of a file that was partly bad. */
        tls_wipe(&c->psk[before], (c->psk_count - before) * sizeof(c->psk[0]));
        c->psk_count = before;
    }
    return r;
}
