/* A test client's or server's secured link: a socket, TLS on it if asked,
 * a SASL exchange, and the security layer when the exchange gave one. All
 * in one struct of caller memory; ch is always the topmost channel. */
#ifndef SC_TEST_UTIL_SECLINK_H
#define SC_TEST_UTIL_SECLINK_H

#include <stdbool.h>
#include <stdint.h>

#include "sechan/sasl.h"
#include "sechan/tcp.h"
#include "sechan/tls.h"

struct seclink {
    struct sc_sock sock;
    struct sc_tls_creds creds;
    struct sc_tls tls;
    struct sc_sasl sasl;
    struct sc_sasl_layer layer;
    uint8_t rx[SC_SASL_MAXBUF_DEFAULT + 4];
    uint8_t tx[SC_SASL_MAXBUF_DEFAULT + 4];
    struct sc_channel *ch;
    bool tls_on, layer_on;
};

/* sock is connected: the link starts as the bare socket. */
void seclink_begin(struct seclink *l);
/* TLS over the link with the x509 directory dir (QEMU's layout), as server
 * or as client of "localhost", at least TLS min. 0, or the error (the
 * creds' or the handshake's message is in sc_tls_creds_errmsg/sc_tls_errmsg). */
int seclink_tls(struct seclink *l, const char *dir, bool server, enum sc_tls_version min,
                uint64_t deadline_ms);
/* After a finished exchange in l->sasl: the security layer on top when the
 * exchange negotiated one. 0, or the layer's error. */
int seclink_layer(struct seclink *l);
/* Close what was stacked, top down, and wipe the SASL context. */
void seclink_close(struct seclink *l);

#endif
