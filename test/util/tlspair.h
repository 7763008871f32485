/* Our TLS client and server over an in-memory pipe, driven in one thread. */
#ifndef SC_TEST_TLSPAIR_H
#define SC_TEST_TLSPAIR_H

#include "sechan/pipe.h"
#include "sechan/tls.h"

struct tls_pair {
    struct sc_pipe pipe;
    struct sc_tls client;
    struct sc_tls server;
    int client_rc;
    int server_rc;
};

/* The test PKI made by test/pki/mkpki.sh: $SECHAN_PKI_DIR/<sub>. */
const char *pki_path(const char *sub);

/* Load creds (asserting success). */
void creds_x509(struct sc_tls_creds *c, const char *sub, enum sc_tls_endpoint ep);
void creds_psk(struct sc_tls_creds *c, const char *file);

/* Init both ends over a fresh pipe and run both handshakes to completion
 * or failure (first error of each side in *_rc), with a deadline. Returns
 * 0 when both succeeded. */
int tls_pair_run(struct tls_pair *tp, const struct sc_tls_config *ccfg,
                 const struct sc_tls_config *scfg);
void tls_pair_close(struct tls_pair *tp);

#endif
