/* sasl-digest has no TLS: DIGEST-MD5's security layer protects the link and
 * NBD runs with STARTTLS off, so the NBD driver's STARTTLS step
 * (nbd/nbd_tls.c) is never taken. Binding the two TLS calls it makes to a
 * refusal here, instead of linking tls/tls_channel.c, keeps Mbed TLS's TLS
 * client (about 30 KB on Cortex-M3) out of the image. Only this variant
 * links this file (mk/firmware.mk). */
#include "sechan/err.h"
#include "sechan/tls.h"

int sc_tls_init(struct sc_tls *t, struct sc_channel *lower, const struct sc_tls_config *cfg)
{
    (void)t;
    (void)lower;
    (void)cfg;
    return SC_ERR_UNSUPPORTED;
}

int sc_tls_handshake(struct sc_tls *t)
{
    (void)t;
    return SC_ERR_UNSUPPORTED;
}
