/* see sechan/tls.h: the TLS connection as a channel over a lower channel. */
#include <stdio.h>
#include <string.h>

#include <mbedtls/error.h>
#include <mbedtls/ssl.h>
#include <mbedtls/psa_util.h>
#include <psa/crypto.h>

#include "sechan/port.h"
#include "tls_internal.h"

/* AES-GCM first: peers that follow the client's order (GnuTLS) then avoid
 * ChaCha20, which is several times slower in their software builds. */
static const int tls_ciphersuites[] = {
    MBEDTLS_TLS1_3_AES_128_GCM_SHA256,
    MBEDTLS_TLS1_3_AES_256_GCM_SHA384,
    MBEDTLS_TLS1_3_CHACHA20_POLY1305_SHA256,
    MBEDTLS_TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
    MBEDTLS_TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
    MBEDTLS_TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
    MBEDTLS_TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
    MBEDTLS_TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
    MBEDTLS_TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
    MBEDTLS_TLS_ECDHE_PSK_WITH_CHACHA20_POLY1305_SHA256,
    MBEDTLS_TLS_PSK_WITH_AES_128_GCM_SHA256,
    MBEDTLS_TLS_PSK_WITH_AES_256_GCM_SHA384,
    MBEDTLS_TLS_PSK_WITH_CHACHA20_POLY1305_SHA256,
    0,
};

static const uint16_t tls_groups[] = {
    MBEDTLS_SSL_IANA_TLS_GROUP_X25519,
#if defined(MBEDTLS_ECP_DP_SECP256R1_ENABLED)
    MBEDTLS_SSL_IANA_TLS_GROUP_SECP256R1,
#endif
#if defined(MBEDTLS_ECP_DP_SECP384R1_ENABLED)
    MBEDTLS_SSL_IANA_TLS_GROUP_SECP384R1,
#endif
    MBEDTLS_SSL_IANA_TLS_GROUP_NONE,
};

/* ---- errors ---- */

static const char *alert_name(unsigned char code)
{
    switch (code) {
    case MBEDTLS_SSL_ALERT_MSG_HANDSHAKE_FAILURE: return "handshake_failure";
    case MBEDTLS_SSL_ALERT_MSG_BAD_RECORD_MAC: return "bad_record_mac";
    case MBEDTLS_SSL_ALERT_MSG_BAD_CERT: return "bad_certificate";
    case MBEDTLS_SSL_ALERT_MSG_UNSUPPORTED_CERT: return "unsupported_certificate";
    case MBEDTLS_SSL_ALERT_MSG_CERT_REVOKED: return "certificate_revoked";
    case MBEDTLS_SSL_ALERT_MSG_CERT_EXPIRED: return "certificate_expired";
    case MBEDTLS_SSL_ALERT_MSG_CERT_UNKNOWN: return "certificate_unknown";
    case MBEDTLS_SSL_ALERT_MSG_ILLEGAL_PARAMETER: return "illegal_parameter";
    case MBEDTLS_SSL_ALERT_MSG_UNKNOWN_CA: return "unknown_ca";
    case MBEDTLS_SSL_ALERT_MSG_ACCESS_DENIED: return "access_denied";
    case MBEDTLS_SSL_ALERT_MSG_DECODE_ERROR: return "decode_error";
    case MBEDTLS_SSL_ALERT_MSG_DECRYPT_ERROR: return "decrypt_error";
    case MBEDTLS_SSL_ALERT_MSG_PROTOCOL_VERSION: return "protocol_version";
    case MBEDTLS_SSL_ALERT_MSG_INSUFFICIENT_SECURITY: return "insufficient_security";
    case MBEDTLS_SSL_ALERT_MSG_INTERNAL_ERROR: return "internal_error";
    case MBEDTLS_SSL_ALERT_MSG_MISSING_EXTENSION: return "missing_extension";
    case MBEDTLS_SSL_ALERT_MSG_UNSUPPORTED_EXT: return "unsupported_extension";
    case MBEDTLS_SSL_ALERT_MSG_UNRECOGNIZED_NAME: return "unrecognized_name";
    case MBEDTLS_SSL_ALERT_MSG_UNKNOWN_PSK_IDENTITY: return "unknown_psk_identity";
    case MBEDTLS_SSL_ALERT_MSG_CERT_REQUIRED: return "certificate_required";
    case MBEDTLS_SSL_ALERT_MSG_NO_APPLICATION_PROTOCOL: return "no_application_protocol";
    default: return "unknown alert";
    }
}

#if TLS_HAVE_X509
/* Which certificate problem to name first: trust, then revocation, then
 * validity dates, then the name. */
static int verify_code(uint32_t vr, const char **what)
{
    if (vr & MBEDTLS_X509_BADCERT_MISSING) {
        *what = "peer sent no certificate";
        return SC_ERR_TLS_NOCERT;
    }
    if (vr & MBEDTLS_X509_BADCERT_NOT_TRUSTED) {
        *what = "peer certificate is not signed by a trusted CA";
        return SC_ERR_TLS_UNTRUSTED;
    }
    if (vr & MBEDTLS_X509_BADCERT_REVOKED) {
        *what = "peer certificate is revoked by the CRL";
        return SC_ERR_TLS_REVOKED;
    }
    if (vr & (MBEDTLS_X509_BADCERT_EXPIRED | MBEDTLS_X509_BADCERT_FUTURE)) {
        *what = "peer certificate is expired or not yet valid";
        return SC_ERR_TLS_EXPIRED;
    }
    if (vr & MBEDTLS_X509_BADCERT_CN_MISMATCH) {
        *what = "peer certificate does not match the host name";
        return SC_ERR_TLS_HOSTNAME;
    }
    *what = "peer certificate rejected";
    return SC_ERR_TLS_CERT;
}
#endif

static int received_alert(const struct tls_impl *im)
{
    /* Mbed TLS has no public getter for the alert it received; after
     * MBEDTLS_ERR_SSL_FATAL_ALERT_MESSAGE the record is still in in_msg. */
    const unsigned char *msg = im->ssl.MBEDTLS_PRIVATE(in_msg);
    return msg != NULL ? msg[1] : 0;
}

/* Turn an Mbed TLS failure into a sticky SC_ERR_* and a message. */
static int tls_fail(struct tls_impl *im, int mbed, const char *phase)
{
    char detail[112];
    const char *what = NULL;
    int code;
    char alert_text[64];

    im->mbed_err = mbed;
    tls_describe_mbedtls(mbed, detail, sizeof(detail));
    if (im->lower_err != 0) {
        snprintf(im->msg, sizeof(im->msg), "tls %s: transport: %s", phase,
                 sc_channel_errmsg(im->lower));
        return im->lower_err;
    }
    switch (mbed) {
#if TLS_HAVE_X509
    case MBEDTLS_ERR_X509_CERT_VERIFY_FAILED:
        code = verify_code(mbedtls_ssl_get_verify_result(&im->ssl), &what);
        break;
#endif
    case MBEDTLS_ERR_SSL_NO_CLIENT_CERTIFICATE:
        code = SC_ERR_TLS_NOCERT;
        what = "peer sent no certificate";
        break;
    case MBEDTLS_ERR_SSL_FATAL_ALERT_MESSAGE: {
        int alert = received_alert(im);
        snprintf(alert_text, sizeof(alert_text), "peer sent alert %s (%d)",
                 alert_name((unsigned char)alert), alert);
        what = alert_text;
        code = SC_ERR_TLS_ALERT;
        if (im->use_psk && !im->handshake_done &&
            (alert == MBEDTLS_SSL_ALERT_MSG_DECRYPT_ERROR ||
             alert == MBEDTLS_SSL_ALERT_MSG_BAD_RECORD_MAC ||
             alert == MBEDTLS_SSL_ALERT_MSG_HANDSHAKE_FAILURE ||
             alert == MBEDTLS_SSL_ALERT_MSG_ILLEGAL_PARAMETER ||
             alert == MBEDTLS_SSL_ALERT_MSG_UNKNOWN_PSK_IDENTITY ||
             /* Mbed TLS servers that know no offered identity and have
              * nothing else to fall back on send missing_extension. */
             alert == MBEDTLS_SSL_ALERT_MSG_MISSING_EXTENSION)) {
            code = SC_ERR_TLS_PSK;
            snprintf(alert_text, sizeof(alert_text),
                     "peer rejected our pre-shared key (alert %s)",
                     alert_name((unsigned char)alert));
        }
        break;
    }
    case MBEDTLS_ERR_SSL_INVALID_MAC:
    case MBEDTLS_ERR_SSL_DECODE_ERROR:
    case MBEDTLS_ERR_SSL_INVALID_RECORD:
        code = SC_ERR_TLS_RECORD;
        what = "record failed authentication or is malformed";
        if (im->use_psk && !im->handshake_done) {
            code = SC_ERR_TLS_PSK;
            what = "pre-shared key mismatch (handshake did not authenticate)";
        }
        break;
    case MBEDTLS_ERR_SSL_ALLOC_FAILED:
    case MBEDTLS_ERR_SSL_BAD_CONFIG:
        code = mbed == MBEDTLS_ERR_SSL_ALLOC_FAILED ? SC_ERR_TLS_MEMORY : SC_ERR_TLS;
        what = mbed == MBEDTLS_ERR_SSL_ALLOC_FAILED ? "arena exhausted" : "bad configuration";
        break;
    case MBEDTLS_ERR_SSL_CONN_EOF:
        code = SC_ERR_EOF;
        what = im->handshake_done ? "peer closed without close_notify (truncation)"
                                  : "peer closed the connection during the handshake";
        /* Some servers (qemu-nbd 7.2) answer a bad PSK binder by hanging up
         * instead of sending an alert: an EOF in reply to our PSK offer. */
        if (!im->handshake_done && im->use_psk && im->endpoint == SC_TLS_CLIENT &&
            im->ssl.MBEDTLS_PRIVATE(state) <= MBEDTLS_SSL_SERVER_HELLO) {
            code = SC_ERR_TLS_PSK;
            what = "peer hung up on our pre-shared key (wrong key or identity?)";
        }
        break;
    case MBEDTLS_ERR_SSL_UNKNOWN_IDENTITY:
        code = SC_ERR_TLS_PSK;
        what = "unknown pre-shared key identity";
        break;
    case MBEDTLS_ERR_SSL_HANDSHAKE_FAILURE:
    case MBEDTLS_ERR_SSL_BAD_PROTOCOL_VERSION:
    case MBEDTLS_ERR_SSL_UNSUPPORTED_EXTENSION:
    case MBEDTLS_ERR_SSL_ILLEGAL_PARAMETER:
        code = SC_ERR_TLS_HANDSHAKE;
        what = "no agreement with the peer";
        if (im->use_psk && im->endpoint == SC_TLS_SERVER) {
            code = SC_ERR_TLS_PSK;
            what = "client's pre-shared key did not match";
        }
        break;
    case MBEDTLS_ERR_SSL_UNEXPECTED_MESSAGE:
    case MBEDTLS_ERR_SSL_UNEXPECTED_RECORD:
        code = SC_ERR_PROTO;
        what = "unexpected TLS message";
        break;
    default:
        code = im->handshake_done ? SC_ERR_TLS : SC_ERR_TLS_HANDSHAKE;
        what = "failure";
        break;
    }
    snprintf(im->msg, sizeof(im->msg), "tls %s: %s (%s)", phase, what, detail);
    return code;
}

/* ---- the BIO: Mbed TLS's view of the channel below ---- */

static int tls_bio_send(void *ctx, const unsigned char *buf, size_t len)
{
    struct tls_impl *im = ctx;
    long r = sc_write(im->lower, buf, len);
    if (r == SC_ERR_AGAIN) {
        im->want = SC_DIR_WRITE;
        return MBEDTLS_ERR_SSL_WANT_WRITE;
    }
    if (r < 0) {
        im->lower_err = (int)r;
        return MBEDTLS_ERR_SSL_INTERNAL_ERROR;
    }
    return (int)r;
}

static int tls_bio_recv(void *ctx, unsigned char *buf, size_t len)
{
    struct tls_impl *im = ctx;
    long r = sc_read(im->lower, buf, len);
    if (r == SC_ERR_AGAIN) {
        im->want = SC_DIR_READ;
        return MBEDTLS_ERR_SSL_WANT_READ;
    }
    if (r < 0) {
        im->lower_err = (int)r;
        return MBEDTLS_ERR_SSL_INTERNAL_ERROR;
    }
    return (int)r;  /* 0: the lower channel reached end-of-stream */
}

/* ---- certificate verification ---- */
#if TLS_HAVE_X509

struct flag_map {
    uint32_t sc;
    uint32_t mbed;
};

static const struct flag_map tls_flag_map[] = {
    {SC_TLS_VERIFY_NOT_TRUSTED, MBEDTLS_X509_BADCERT_NOT_TRUSTED},
    {SC_TLS_VERIFY_HOSTNAME, MBEDTLS_X509_BADCERT_CN_MISMATCH},
    {SC_TLS_VERIFY_REVOKED, MBEDTLS_X509_BADCERT_REVOKED},
    {SC_TLS_VERIFY_EXPIRED, MBEDTLS_X509_BADCERT_EXPIRED | MBEDTLS_X509_BADCERT_FUTURE},
};

static uint32_t flags_to_sc(uint32_t mbed)
{
    uint32_t sc = 0, known = 0;
    for (size_t i = 0; i < sizeof(tls_flag_map) / sizeof(tls_flag_map[0]); i++) {
        known |= tls_flag_map[i].mbed;
        if (mbed & tls_flag_map[i].mbed)
            sc |= tls_flag_map[i].sc;
    }
    if (mbed & ~known)
        sc |= SC_TLS_VERIFY_OTHER;
    return sc;
}

/* Apply the validator's verdict: cleared flags clear their Mbed TLS bits,
 * SC_TLS_VERIFY_OTHER set means "reject". */
static uint32_t flags_from_sc(uint32_t sc, uint32_t mbed)
{
    uint32_t known = 0;
    for (size_t i = 0; i < sizeof(tls_flag_map) / sizeof(tls_flag_map[0]); i++) {
        known |= tls_flag_map[i].mbed;
        if (!(sc & tls_flag_map[i].sc))
            mbed &= ~tls_flag_map[i].mbed;
    }
    if (!(sc & SC_TLS_VERIFY_OTHER))
        mbed &= known;
    else if (!(mbed & ~known))
        mbed |= MBEDTLS_X509_BADCERT_OTHER;
    return mbed;
}

static int tls_verify(void *ctx, mbedtls_x509_crt *crt, int depth, uint32_t *flags)
{
    struct tls_impl *im = ctx;
    if (im->no_hostname_check && depth == 0)
        *flags &= ~(uint32_t)MBEDTLS_X509_BADCERT_CN_MISMATCH;
    if (sc_port_wall_time() <= 0) {
        /* No clock: "now" was only the build-time floor, which says nothing
         * about "not before"; with no floor either, no date says anything. */
        *flags &= ~(uint32_t)(MBEDTLS_X509_BADCERT_FUTURE | MBEDTLS_X509_BADCRL_FUTURE);
        if (sc_port_time_floor() <= 0)
            *flags &= ~(uint32_t)(MBEDTLS_X509_BADCERT_EXPIRED | MBEDTLS_X509_BADCRL_EXPIRED);
    }
    if (im->verify_cb == NULL)
        return 0;
    struct sc_tls_cert_view view = {.depth = depth, .der = crt->raw.p, .der_len = crt->raw.len};
    if (mbedtls_x509_dn_gets(view.subject, sizeof(view.subject), &crt->subject) < 0)
        view.subject[0] = '\0';
    uint32_t sc = flags_to_sc(*flags);
    if (im->verify_cb(im->verify_arg, &view, &sc) < 0)
        return MBEDTLS_ERR_X509_FATAL_ERROR;
    *flags = flags_from_sc(sc, *flags);
    return 0;
}
#endif /* TLS_HAVE_X509 */

#if TLS_HAVE_SERVER
/* Server: find the key for the identity the client offered. */
static int tls_psk_lookup(void *ctx, mbedtls_ssl_context *ssl, const unsigned char *id,
                          size_t id_len)
{
    struct tls_impl *im = ctx;
    for (size_t i = 0; i < im->creds->psk_count; i++) {
        const struct tls_psk_entry *e = &im->creds->psk[i];
        if (strlen(e->identity) == id_len && memcmp(e->identity, id, id_len) == 0) {
            if (mbedtls_ssl_set_hs_psk(ssl, e->key, e->key_len) != 0)
                return -1;
            im->psk_used = e;
            return 0;
        }
    }
    return -1;
}
#endif

/* ---- the channel ---- */

/* Mbed TLS would block: note what it waits for. True for WANT_READ/WRITE. */
static bool tls_would_block(struct tls_impl *im, int mbed)
{
    if (mbed != MBEDTLS_ERR_SSL_WANT_READ && mbed != MBEDTLS_ERR_SSL_WANT_WRITE)
        return false;
    im->want = mbed == MBEDTLS_ERR_SSL_WANT_READ ? SC_DIR_READ : SC_DIR_WRITE;
    return true;
}

static int tls_step(struct tls_impl *im)
{
    if (im->handshake_done)
        return 0;
    int r = mbedtls_ssl_handshake(&im->ssl);
    if (r == 0) {
        im->handshake_done = true;
        return 0;
    }
    if (tls_would_block(im, r))
        return SC_ERR_AGAIN;
    return tls_fail(im, r, "handshake");
}

int sc_tls_handshake(struct sc_tls *t)
{
    int e = t->base.error;
    if (e != 0)
        return e;
    int r = tls_step(tls_impl_of(t));
    if (r < 0 && r != SC_ERR_AGAIN)
        t->base.error = r;
    return r;
}

int sc_tls_handshake_wait(struct sc_tls *t, uint64_t deadline_ms)
{
    for (;;) {
        int r = sc_tls_handshake(t);
        if (r != SC_ERR_AGAIN)
            return r;
        int w = sc_wait(&t->base, sc_direction(&t->base), deadline_ms);
        if (w < 0)
            return w;
    }
}

static long tls_read(struct sc_channel *ch, void *buf, size_t len)
{
    struct tls_impl *im = tls_impl_of((struct sc_tls *)ch);
    int r = tls_step(im);
    if (r != 0)
        return r;
    if (len > INT32_MAX)
        len = INT32_MAX;
    for (;;) {
        int n = mbedtls_ssl_read(&im->ssl, buf, len);
        if (n > 0)
            return n;
        if (n == MBEDTLS_ERR_SSL_PEER_CLOSE_NOTIFY)
            return 0;
        if (tls_would_block(im, n))
            return SC_ERR_AGAIN;
        if (n == MBEDTLS_ERR_SSL_RECEIVED_NEW_SESSION_TICKET)
            continue;  /* post-handshake message consumed; look for data */
        if (n == 0)
            n = MBEDTLS_ERR_SSL_CONN_EOF;
        return tls_fail(im, n, "read");
    }
}

static long tls_write(struct sc_channel *ch, const void *buf, size_t len)
{
    struct tls_impl *im = tls_impl_of((struct sc_tls *)ch);
    int r = tls_step(im);
    if (r != 0)
        return r;
    /* After WANT_WRITE, Mbed TLS holds a record made of the first
     * write_pending bytes and, on the next call, reports whatever length it
     * is given once that record is out. Retry with exactly that many bytes
     * so a caller whose retry carries more data loses none of it. */
    if (im->write_pending != 0) {
        if (len < im->write_pending)
            return SC_ERR_INVAL;  /* the retry must start with the same bytes */
        len = im->write_pending;
    }
    if (len > INT32_MAX)
        len = INT32_MAX;
    int n = mbedtls_ssl_write(&im->ssl, buf, len);
    if (n > 0) {
        im->write_pending = 0;
        return n;
    }
    if (tls_would_block(im, n)) {
        if (im->write_pending == 0) {
            int max = mbedtls_ssl_get_max_out_record_payload(&im->ssl);
            im->write_pending = max > 0 && (size_t)max < len ? (size_t)max : len;
        }
        return SC_ERR_AGAIN;
    }
    return tls_fail(im, n == 0 ? MBEDTLS_ERR_SSL_INTERNAL_ERROR : n, "write");
}

static int tls_shutdown(struct sc_channel *ch)
{
    struct tls_impl *im = tls_impl_of((struct sc_tls *)ch);
    if (!im->handshake_done)
        return 0;  /* nothing was ever said: nothing to end */
    int r = mbedtls_ssl_close_notify(&im->ssl);
    if (r == 0)
        return 0;
    if (tls_would_block(im, r))
        return SC_ERR_AGAIN;
    return tls_fail(im, r, "shutdown");
}

static int tls_close(struct sc_channel *ch)
{
    struct tls_impl *im = tls_impl_of((struct sc_tls *)ch);
    mbedtls_ssl_free(&im->ssl);
    mbedtls_ssl_config_free(&im->conf);
    char keep[sizeof(im->msg)];
    memcpy(keep, im->msg, sizeof(keep));
    tls_wipe(im, sizeof(*im));
    memcpy(im->msg, keep, sizeof(keep));
    return 0;
}

static enum sc_dir tls_direction(const struct sc_channel *ch)
{
    return tls_impl_of_const((const struct sc_tls *)ch)->want;
}

static size_t tls_pending(const struct sc_channel *ch)
{
    return mbedtls_ssl_get_bytes_avail(&tls_impl_of_const((const struct sc_tls *)ch)->ssl);
}

static const char *tls_errmsg(const struct sc_channel *ch)
{
    return tls_impl_of_const((const struct sc_tls *)ch)->msg;
}

static const struct sc_channel_ops tls_ops = {
    .name = "tls",
    .read = tls_read,
    .write = tls_write,
    .close = tls_close,
    .direction = tls_direction,
    .shutdown = tls_shutdown,
    .pending = tls_pending,
    .errmsg = tls_errmsg,
};

/* ---- setup ---- */

static int setup_fail(struct sc_tls *t, int code, const char *msg, int mbed)
{
    struct tls_impl *im = tls_impl_of(t);
    char detail[112] = "";
    if (mbed != 0)
        tls_describe_mbedtls(mbed, detail, sizeof(detail));
    snprintf(im->msg, sizeof(im->msg), "tls setup: %s%s%s", msg, detail[0] ? ": " : "",
             detail);
    im->mbed_err = mbed;
    t->base.error = code;
    return code;
}

static mbedtls_ssl_protocol_version tls_version(enum sc_tls_version v,
                                                mbedtls_ssl_protocol_version dflt)
{
    if (v == SC_TLS_1_2)
        return MBEDTLS_SSL_VERSION_TLS1_2;
    if (v == SC_TLS_1_3)
        return MBEDTLS_SSL_VERSION_TLS1_3;
    return dflt;
}

static const struct tls_psk_entry *find_psk(const struct tls_creds_impl *c, const char *id)
{
    for (size_t i = 0; i < c->psk_count; i++) {
        if (id == NULL || strcmp(c->psk[i].identity, id) == 0)
            return &c->psk[i];
    }
    return NULL;
}

static int setup_client(struct sc_tls *t, const struct sc_tls_config *cfg, bool want_psk,
                        bool want_x509)
{
    struct tls_impl *im = tls_impl_of(t);
    const struct tls_creds_impl *c = im->creds;
    int r;
    unsigned modes = 0;
    if (want_psk) {
        const struct tls_psk_entry *e = find_psk(c, cfg->psk_identity);
        if (e == NULL)
            return setup_fail(t, SC_ERR_CRED, "no pre-shared key for that identity", 0);
        r = mbedtls_ssl_conf_psk(&im->conf, e->key, e->key_len,
                                 (const unsigned char *)e->identity, strlen(e->identity));
        if (r != 0)
            return setup_fail(t, SC_ERR_TLS, "cannot set the pre-shared key", r);
        im->psk_used = e;
        /* psk_dhe_ke only: forward secrecy even if the key leaks later. */
        modes |= MBEDTLS_SSL_TLS1_3_KEY_EXCHANGE_MODE_PSK_EPHEMERAL;
        mbedtls_ssl_conf_authmode(&im->conf, MBEDTLS_SSL_VERIFY_NONE);
    }
    if (want_x509) {
#if !TLS_HAVE_X509
        return setup_fail(t, SC_ERR_UNSUPPORTED, "this build has no X.509 support", 0);
#else
        modes |= MBEDTLS_SSL_TLS1_3_KEY_EXCHANGE_MODE_EPHEMERAL;
        if (cfg->insecure_no_verify) {
            mbedtls_ssl_conf_authmode(&im->conf, MBEDTLS_SSL_VERIFY_NONE);
        } else {
            if (!c->have_ca)
                return setup_fail(t, SC_ERR_CRED, "no CA certificate to verify the server", 0);
            if (cfg->hostname == NULL && !cfg->no_hostname_check)
                return setup_fail(t, SC_ERR_INVAL,
                                  "a host name is required to verify the server "
                                  "(or set no_hostname_check)", 0);
            mbedtls_ssl_conf_authmode(&im->conf, MBEDTLS_SSL_VERIFY_REQUIRED);
            mbedtls_ssl_conf_ca_chain(&im->conf, (mbedtls_x509_crt *)&c->ca, tls_crl_of(c));
        }
        if (c->have_own) {
            r = mbedtls_ssl_conf_own_cert(&im->conf, (mbedtls_x509_crt *)&c->own_cert,
                                          (mbedtls_pk_context *)&c->own_key);
            if (r != 0)
                return setup_fail(t, SC_ERR_TLS, "cannot use the client certificate", r);
        }
#endif
    }
    mbedtls_ssl_conf_tls13_key_exchange_modes(&im->conf, (int)modes);
    return 0;
}

#if TLS_HAVE_SERVER
static int setup_server(struct sc_tls *t, const struct sc_tls_config *cfg, bool want_psk,
                        bool want_x509)
{
    struct tls_impl *im = tls_impl_of(t);
    const struct tls_creds_impl *c = im->creds;
    unsigned modes = 0;
    mbedtls_ssl_conf_authmode(&im->conf, MBEDTLS_SSL_VERIFY_NONE);
    if (want_psk) {
        mbedtls_ssl_conf_psk_cb(&im->conf, tls_psk_lookup, im);
        modes |= MBEDTLS_SSL_TLS1_3_KEY_EXCHANGE_MODE_PSK_ALL;
    }
    if (want_x509) {
        if (!c->have_own)
            return setup_fail(t, SC_ERR_CRED, "a server needs its certificate and key", 0);
        int r = mbedtls_ssl_conf_own_cert(&im->conf, (mbedtls_x509_crt *)&c->own_cert,
                                          (mbedtls_pk_context *)&c->own_key);
        if (r != 0)
            return setup_fail(t, SC_ERR_TLS, "cannot use the server certificate", r);
        modes |= MBEDTLS_SSL_TLS1_3_KEY_EXCHANGE_MODE_EPHEMERAL;
        if (cfg->verify_peer) {
            if (!c->have_ca)
                return setup_fail(t, SC_ERR_CRED, "no CA certificate to verify clients", 0);
            mbedtls_ssl_conf_authmode(&im->conf, MBEDTLS_SSL_VERIFY_REQUIRED);
            mbedtls_ssl_conf_ca_chain(&im->conf, (mbedtls_x509_crt *)&c->ca, tls_crl_of(c));
        }
    }
    mbedtls_ssl_conf_tls13_key_exchange_modes(&im->conf, (int)modes);
    return 0;
}
#else
static int setup_server(struct sc_tls *t, const struct sc_tls_config *cfg, bool want_psk,
                        bool want_x509)
{
    (void)cfg;
    (void)want_psk;
    (void)want_x509;
    return setup_fail(t, SC_ERR_UNSUPPORTED, "this build has no TLS server", 0);
}
#endif

int sc_tls_init(struct sc_tls *t, struct sc_channel *lower, const struct sc_tls_config *cfg)
{
    if (t == NULL)
        return SC_ERR_INVAL;
    struct tls_impl *im = tls_impl_of(t);
    memset(im, 0, sizeof(*im));
    sc_channel_init(&t->base, &tls_ops, lower);
    mbedtls_ssl_init(&im->ssl);
    mbedtls_ssl_config_init(&im->conf);
    if (lower == NULL || cfg == NULL || cfg->creds == NULL)
        return setup_fail(t, SC_ERR_INVAL, "lower channel, config and creds are required", 0);
    int g = sc_tls_global_init(NULL, 0);
    if (g != 0)
        return setup_fail(t, g, "global init failed (arena or entropy)", 0);

    im->lower = lower;
    im->creds = tls_creds_of_const(cfg->creds);
    im->endpoint = cfg->endpoint;
    im->verify_cb = cfg->verify_cb;
    im->verify_arg = cfg->verify_arg;
    im->no_hostname_check = cfg->no_hostname_check;
    im->want = SC_DIR_WRITE;

    bool server = cfg->endpoint == SC_TLS_SERVER;
    int r = mbedtls_ssl_config_defaults(&im->conf,
                                        server ? MBEDTLS_SSL_IS_SERVER : MBEDTLS_SSL_IS_CLIENT,
                                        MBEDTLS_SSL_TRANSPORT_STREAM,
                                        MBEDTLS_SSL_PRESET_DEFAULT);
    if (r != 0)
        return setup_fail(t, SC_ERR_TLS, "config defaults", r);
    mbedtls_ssl_conf_rng(&im->conf, mbedtls_psa_get_random, MBEDTLS_PSA_RANDOM_STATE);
    mbedtls_ssl_conf_min_tls_version(&im->conf,
                                     tls_version(cfg->min_version, MBEDTLS_SSL_VERSION_TLS1_2));
    mbedtls_ssl_conf_max_tls_version(&im->conf,
                                     tls_version(cfg->max_version, MBEDTLS_SSL_VERSION_TLS1_3));
    mbedtls_ssl_conf_ciphersuites(&im->conf, tls_ciphersuites);
    mbedtls_ssl_conf_groups(&im->conf, tls_groups);
#if TLS_HAVE_X509
    mbedtls_ssl_conf_verify(&im->conf, tls_verify, im);
#endif

    const struct tls_creds_impl *c = im->creds;
    bool have_psk = c->psk_count > 0;
    bool want_psk = cfg->auth == SC_TLS_AUTH_PSK ||
                    (cfg->auth == SC_TLS_AUTH_AUTO && have_psk);
    bool want_x509 = cfg->auth == SC_TLS_AUTH_X509 ||
                     (cfg->auth == SC_TLS_AUTH_AUTO &&
                      (server ? c->have_own : !have_psk));
    if (want_psk && !have_psk)
        return setup_fail(t, SC_ERR_CRED, "PSK requested but the credentials hold no key", 0);
    if (!want_psk && !want_x509)
        return setup_fail(t, SC_ERR_CRED, "credentials hold neither a key nor a certificate",
                          0);
    im->use_psk = want_psk;

    r = server ? setup_server(t, cfg, want_psk, want_x509)
               : setup_client(t, cfg, want_psk, want_x509);
    if (r != 0)
        return r;
    r = mbedtls_ssl_setup(&im->ssl, &im->conf);
    if (r != 0)
        return setup_fail(t, r == MBEDTLS_ERR_SSL_ALLOC_FAILED ? SC_ERR_TLS_MEMORY : SC_ERR_TLS,
                          "ssl setup", r);
#if TLS_HAVE_X509
    if (!server) {
        /* The name is both SNI and what the certificate must match; with
         * no_hostname_check the verify callback forgives a mismatch. */
        r = mbedtls_ssl_set_hostname(&im->ssl, cfg->hostname);
        if (r != 0)
            return setup_fail(t, SC_ERR_INVAL, "bad host name", r);
    }
#endif
    mbedtls_ssl_set_bio(&im->ssl, im, tls_bio_send, tls_bio_recv, NULL);
    return 0;
}

int sc_tls_get_info(const struct sc_tls *t, struct sc_tls_info *info)
{
    const struct tls_impl *im = tls_impl_of_const(t);
    memset(info, 0, sizeof(*info));
    if (!im->handshake_done)
        return SC_ERR_STATE;
    bool peer_named = false;
    snprintf(info->version, sizeof(info->version), "%s", mbedtls_ssl_get_version(&im->ssl));
    snprintf(info->ciphersuite, sizeof(info->ciphersuite), "%s",
             mbedtls_ssl_get_ciphersuite(&im->ssl));
#if TLS_HAVE_X509
    const mbedtls_x509_crt *peer = mbedtls_ssl_get_peer_cert(&im->ssl);
    if (peer != NULL) {
        if (mbedtls_x509_dn_gets(info->peer, sizeof(info->peer), &peer->subject) < 0)
            info->peer[0] = '\0';
        peer_named = true;
    }
#endif
    if (!peer_named && im->psk_used != NULL) {
        snprintf(info->peer, sizeof(info->peer), "%s", im->psk_used->identity);
        info->psk = true;
    }
    int in = mbedtls_ssl_get_max_in_record_payload(&im->ssl);
    int out = mbedtls_ssl_get_max_out_record_payload(&im->ssl);
    info->max_in_record = in > 0 ? (size_t)in : 0;
    info->max_out_record = out > 0 ? (size_t)out : 0;
    return 0;
}

const char *sc_tls_errmsg(const struct sc_tls *t)
{
    return tls_impl_of_const(t)->msg;
}

int sc_tls_mbedtls_error(const struct sc_tls *t)
{
    return tls_impl_of_const(t)->mbed_err;
}

int sc_tls_export_keying_material(struct sc_tls *t, const char *label, const uint8_t *context,
                                  size_t context_len, uint8_t *out, size_t out_len)
{
    struct tls_impl *im = tls_impl_of(t);
    if (!im->handshake_done)
        return SC_ERR_STATE;
#if defined(MBEDTLS_SSL_KEYING_MATERIAL_EXPORT)
    int r = mbedtls_ssl_export_keying_material(&im->ssl, out, out_len, label, strlen(label),
                                               context, context_len, context != NULL);
    return r == 0 ? 0 : SC_ERR_TLS;
#else
    (void)label;
    (void)context;
    (void)context_len;
    (void)out;
    (void)out_len;
    return SC_ERR_UNSUPPORTED;
#endif
}

int sc_tls_server_end_point(struct sc_tls *t, uint8_t *out, size_t cap, size_t *len)
{
    struct tls_impl *im = tls_impl_of(t);
    if (!im->handshake_done)
        return SC_ERR_STATE;
#if TLS_HAVE_X509
    const mbedtls_x509_crt *crt = NULL;
    if (im->psk_used == NULL) {
        if (im->endpoint == SC_TLS_CLIENT)
            crt = mbedtls_ssl_get_peer_cert(&im->ssl);
        else if (im->creds != NULL && im->creds->have_own)
            crt = &im->creds->own_cert;
    }
    if (crt == NULL || crt->raw.len == 0)
        return SC_ERR_UNSUPPORTED;
    mbedtls_md_type_t md = crt->MBEDTLS_PRIVATE(sig_md);
    if (md == MBEDTLS_MD_MD5 || md == MBEDTLS_MD_SHA1 || md == MBEDTLS_MD_NONE)
        md = MBEDTLS_MD_SHA256;
    const mbedtls_md_info_t *info = mbedtls_md_info_from_type(md);
    if (info == NULL)
        return SC_ERR_UNSUPPORTED;
    size_t n = mbedtls_md_get_size(info);
    if (n > cap)
        return SC_ERR_NOSPACE;
    if (mbedtls_md(info, crt->raw.p, crt->raw.len, out) != 0)
        return SC_ERR_TLS;
    *len = n;
    return SC_OK;
#else
    (void)out;
    (void)cap;
    (void)len;
    return SC_ERR_UNSUPPORTED;
#endif
}
