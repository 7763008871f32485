/* see seclink.h */
#include "seclink.h"

void seclink_begin(struct seclink *l)
{
    l->ch = &l->sock.base;
    l->tls_on = l->layer_on = false;
}

int seclink_tls(struct seclink *l, const char *dir, bool server, enum sc_tls_version min,
                uint64_t deadline_ms)
{
    int r = sc_tls_creds_init(&l->creds);
    if (r != 0)
        return r;
    r = sc_tls_creds_load_x509_dir(&l->creds, dir, server ? SC_TLS_SERVER : SC_TLS_CLIENT);
    if (r != 0) {
        sc_tls_creds_free(&l->creds);
        return r;
    }
    struct sc_tls_config tc = {.endpoint = server ? SC_TLS_SERVER : SC_TLS_CLIENT,
                               .creds = &l->creds, .hostname = "localhost",
                               .min_version = min};
    r = sc_tls_init(&l->tls, l->ch, &tc);
    if (r != 0) {
        sc_tls_creds_free(&l->creds);
        return r;
    }
    l->tls_on = true;  /* from here on there is a TLS context to close */
    r = sc_tls_handshake_wait(&l->tls, deadline_ms);
    if (r == 0)
        l->ch = &l->tls.base;
    return r;
}

int seclink_layer(struct seclink *l)
{
    if (!sc_sasl_has_layer(&l->sasl))
        return 0;
    int r = sc_sasl_layer_init(&l->layer, l->ch, &l->sasl, l->rx, sizeof(l->rx), l->tx,
                               sizeof(l->tx));
    if (r == 0) {
        l->layer_on = true;
        l->ch = &l->layer.base;
    }
    return r;
}

void seclink_close(struct seclink *l)
{
    if (l->layer_on)
        sc_close(&l->layer.base);
    if (l->tls_on) {
        sc_close(&l->tls.base);
        sc_tls_creds_free(&l->creds);
    }
    sc_close(&l->sock.base);
    sc_sasl_free(&l->sasl);
    l->tls_on = l->layer_on = false;
}
