/* see fwsasl.h: the SASL variants' link. */
#include "fwsasl.h"

#include <stdio.h>
#include <string.h>

#include "fwcreds.h"
#include "sechan/err.h"
#include "sechan/sasl.h"
#include "sechan/tls.h"

#if !defined(SC_SASL_FW_DIGEST) && !defined(SC_SASL_FW_SCRAM)
#error "a SASL variant is SC_SASL_FW_DIGEST or SC_SASL_FW_SCRAM"
#endif

/* Static, like the rest of the session. The exchange's context is only
 * needed until the link is up; its secrets are wiped then. */
static struct sc_sasl fw_sasl;
/* What the result line tells of the exchange (sc_sasl_info is 0.5 KiB). */
static struct {
    enum sc_sasl_mech mech;
    unsigned qop, cipher;
    uint32_t recv_maxbuf, send_maxbuf;
    bool channel_bound;
} fw_info;

#if defined(SC_SASL_FW_DIGEST)
static struct sc_sasl_layer fw_layer;
static uint8_t fw_layer_rx[FW_SASL_MAXBUF + 4];
static uint8_t fw_layer_tx[FW_SASL_TX];
/* Only DIGEST-MD5 gives a security layer: on a plaintext link nothing else
 * is allowed, and nothing below auth-conf with 3DES. */
static const enum sc_sasl_mech fw_mechs[] = {SC_SASL_DIGEST_MD5};
#else
#define FW_SASL_ABORT_MS 1000u
static struct sc_tls fw_tls;
static bool fw_bound;
/* Bound to the TLS session when the gateway offers it. */
static const enum sc_sasl_mech fw_mechs[] = {SC_SASL_SCRAM_SHA_256_PLUS, SC_SASL_SCRAM_SHA_256};
#endif

#if defined(SC_SASL_FW_SCRAM)
/* close_notify, so that the gateway sees an end and not a truncation */
static void fw_tls_abort(void)
{
    (void)sc_shutdown_wait(&fw_tls.base, sc_deadline_in(FW_SASL_ABORT_MS));
    sc_close(&fw_tls.base);
}
#endif

/* Out of line: its sc_sasl_info is on the stack only during the call. */
static int __attribute__((noinline)) fw_keep_info(void)
{
    struct sc_sasl_info si;
    int r = sc_sasl_info(&fw_sasl, &si);
    fw_info.mech = si.mech;
    fw_info.qop = si.qop;
    fw_info.cipher = si.cipher;
    fw_info.recv_maxbuf = si.recv_maxbuf;
    fw_info.send_maxbuf = si.send_maxbuf;
    fw_info.channel_bound = si.channel_bound;
    return r;
}

int fw_sasl_open(const struct fw_env *env, uint64_t deadline, struct sc_channel **ch)
{
    struct sc_sasl_client_config cc = {
        .user = fw_sasl_user,
        .password = fw_sasl_password,
        .mechs = fw_mechs,
        .mech_count = sizeof(fw_mechs) / sizeof(fw_mechs[0]),
    };
    struct sc_channel *below = env->peer;
#if defined(SC_SASL_FW_DIGEST)
    cc.plaintext = true;
    cc.qop = SC_SASL_QOP_CONF;
    cc.ciphers = SC_SASL_CIPHER_3DES;
    cc.maxbuf = FW_SASL_MAXBUF;
#else
    struct sc_tls_config tc;
    int r = fw_tls_setup(env, &tc);
    if (r != 0)
        return r;
    r = sc_tls_init(&fw_tls, env->peer, &tc);
    if (r == 0)
        r = sc_tls_handshake_wait(&fw_tls, deadline);
    if (r != 0)
        return fw_fail(env, FW_EXIT_CONNECT, "tls", r, sc_channel_errmsg(&fw_tls.base));
    struct sc_sasl_binding bind;
    fw_bound = sc_sasl_binding_from_tls(&bind, &fw_tls, SC_SASL_CB_TLS_EXPORTER) == 0;
    cc.binding = fw_bound ? &bind : NULL;
    below = &fw_tls.base;
#endif
    int e = sc_sasl_client_init(&fw_sasl, &cc);
    if (e == 0)
        e = sc_sasl_run(&fw_sasl, below, deadline);
    if (e == 0)
        e = fw_keep_info();
    if (e != 0) {
        e = fw_fail(env, FW_EXIT_CONNECT, "sasl", e, sc_sasl_errmsg(&fw_sasl));
        sc_sasl_free(&fw_sasl);
#if defined(SC_SASL_FW_SCRAM)
        fw_tls_abort();
#endif
        return e;
    }
#if defined(SC_SASL_FW_DIGEST)
    /* The keys move into the layer; the rest of the context is wiped. */
    e = sc_sasl_layer_init(&fw_layer, below, &fw_sasl, fw_layer_rx, sizeof(fw_layer_rx),
                           fw_layer_tx, sizeof(fw_layer_tx));
    sc_sasl_free(&fw_sasl);
    if (e != 0)
        return fw_fail(env, FW_EXIT_CONNECT, "sasl-layer", e,
                       sc_channel_errmsg(&fw_layer.base));
    *ch = &fw_layer.base;
#else
    sc_sasl_free(&fw_sasl);
    *ch = below;
#endif
    return 0;
}

void fw_sasl_describe(char *buf, size_t cap)
{
#if defined(SC_SASL_FW_DIGEST)
    snprintf(buf, cap, "sasl=%s qop=%s cipher=%s maxbuf=%lu/%lu", sc_sasl_mech_name(fw_info.mech),
             fw_info.qop == SC_SASL_QOP_CONF  ? "auth-conf"
             : fw_info.qop == SC_SASL_QOP_INT ? "auth-int"
                                              : "auth",
             fw_info.cipher == SC_SASL_CIPHER_3DES  ? "3des"
             : fw_info.cipher == SC_SASL_CIPHER_DES ? "des"
                                                    : "none",
             (unsigned long)fw_info.recv_maxbuf, (unsigned long)fw_info.send_maxbuf);
#else
    fw_tls_describe(&fw_tls, buf, cap);
    size_t n = strlen(buf);
    snprintf(buf + n, cap - n, " sasl=%s cb=%s", sc_sasl_mech_name(fw_info.mech),
             fw_info.channel_bound ? "tls-exporter" : fw_bound ? "unused" : "none");
#endif
}

void fw_sasl_abort(void)
{
#if defined(SC_SASL_FW_DIGEST)
    sc_close(&fw_layer.base);
#else
    fw_tls_abort();
#endif
}

int fw_sasl_close(const struct fw_env *env, uint64_t deadline)
{
#if defined(SC_SASL_FW_DIGEST)
    /* Every frame went out with NBD's writes; closing wipes the keys. */
    (void)env;
    (void)deadline;
    sc_close(&fw_layer.base);
    return 0;
#else
    int r = sc_shutdown_wait(&fw_tls.base, deadline);
    /* The gateway may close as soon as NBD's disconnect reached the
     * backend: that is a clean end too. */
    if (r == SC_ERR_RESET || r == SC_ERR_EOF)
        r = 0;
    if (r != 0)
        r = fw_fail(env, FW_EXIT_CLOSE, "close", r, sc_channel_errmsg(&fw_tls.base));
    sc_close(&fw_tls.base);
    return r;
#endif
}
