/* The link of the SASL variants (SC_SASL_FW): what fwapp.c runs NBD over,
 * without STARTTLS, to a gateway (sechan-gw) that routes the authenticated
 * identity to its own NBD server.
 *
 *   sasl-digest (SC_SASL_FW_DIGEST): DIGEST-MD5 on the plaintext link,
 *       auth-conf (3DES) required, then its security layer is the channel.
 *   sasl-scram (SC_SASL_FW_SCRAM): TLS 1.3 with the compiled-in PSK, then
 *       SCRAM-SHA-256-PLUS bound to the session (tls-exporter), or
 *       SCRAM-SHA-256 if the gateway offers no -PLUS; TLS is the channel.
 *
 * User name, password and export name are compiled in (fwcreds.h).
 */
#ifndef SECHAN_FWSASL_H
#define SECHAN_FWSASL_H

#include <stddef.h>
#include <stdint.h>

#include "fwapp.h"
#include "sechan/channel.h"

/* DIGEST-MD5: the largest security-layer frame we accept (our maxbuf). It
 * sizes the receive buffer (maxbuf + 4); one NBD read reply of FW_IO_CHUNK
 * fits in one frame. Sends use frames of at most FW_SASL_TX bytes. */
#define FW_SASL_MAXBUF 4096u
#define FW_SASL_TX 2304u

/* Secure env->peer; *ch is the channel to run NBD over. 0, or the exit
 * status after printing the FAIL line (step tls or sasl). */
int fw_sasl_open(const struct fw_env *env, uint64_t deadline, struct sc_channel **ch);
/* Write what secured the link ("sasl=MECH ...", after "tls=..." for
 * sasl-scram) at buf. */
void fw_sasl_describe(char *buf, size_t cap);
/* After NBD's disconnect: TLS close_notify, or flush the layer; wipes the
 * keys. 0, or the exit status after printing the FAIL line. */
int fw_sasl_close(const struct fw_env *env, uint64_t deadline);
/* After a failure above the link: close it as cleanly as it goes, quietly
 * (the FAIL line is already out). */
void fw_sasl_abort(void);

#endif
