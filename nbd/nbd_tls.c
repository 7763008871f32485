/* see nbd_tls.h */
#include "nbd_tls.h"

int nbd_tls_step(struct sc_tls *tls, bool *started, struct sc_channel *raw,
                 struct sc_channel **ch, const struct sc_tls_config *cfg, enum sc_dir *want)
{
    if (!*started) {
        if (cfg == NULL)
            return SC_ERR_INVAL;
        *started = true;
        int r = sc_tls_init(tls, raw, cfg);
        if (r != 0)
            return r;
        *ch = &tls->base;
    }
    int r = sc_tls_handshake(tls);
    if (r == SC_ERR_AGAIN)
        *want |= sc_direction(&tls->base);
    return r;
}
