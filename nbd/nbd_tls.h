/* Private to nbd/: the STARTTLS upgrade both drivers perform. */
#ifndef SC_NBD_TLS_H
#define SC_NBD_TLS_H

#include "sechan/channel.h"
#include "sechan/tls.h"

/* Start (once) and advance the TLS handshake over raw, switching *ch to the
 * TLS channel. 0 when the handshake is complete, SC_ERR_AGAIN (*want says
 * what to wait for), or an error whose text is sc_channel_errmsg(&tls->base)
 * (or sc_tls_errmsg(tls) when the setup itself failed). */
int nbd_tls_step(struct sc_tls *tls, bool *started, struct sc_channel *raw,
                 struct sc_channel **ch, const struct sc_tls_config *cfg, enum sc_dir *want);

#endif
