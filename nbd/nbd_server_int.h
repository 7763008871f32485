/* Private to nbd/: the server engine's named states. */
#ifndef SC_NBD_SERVER_INT_H
#define SC_NBD_SERVER_INT_H

#include "sechan/nbd.h"

enum nbd_sstate {
    SS_SEND = 1,        /* writing out[] (and payload); then after_send */
    SS_CLIENT_FLAGS,    /* reading the client's 32-bit flags */
    SS_OPT_HDR,         /* reading IHAVEOPT, option, length */
    SS_OPT_DATA,        /* reading an option payload into opt_buf */
    SS_OPT_DRAIN,       /* discarding a payload we refuse, then replying */
    SS_TLS,             /* STARTTLS acknowledged: the driver runs TLS */
    SS_REQ_HDR,         /* reading a 28-byte request */
    SS_REQ_DATA,        /* reading a WRITE payload piece into the buffer */
    SS_CLOSED,
    SS_FAILED
};

enum nbd_after {
    AS_CLIENT_FLAGS = 1, AS_OPT, AS_TLS, AS_CLOSE, AS_LIST_NEXT, AS_READY, AS_READ_NEXT
};

int nbd_server_fail(struct sc_nbd_server *s, int err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void nbd_server_expect(struct sc_nbd_server *s, void *p, size_t n, unsigned state);
void nbd_server_send(struct sc_nbd_server *s, unsigned after);
uint16_t nbd_server_export_flags(const struct sc_nbd_server *s);

/* transmission (nbd_server_tx.c) */
void nbd_server_tx_start(struct sc_nbd_server *s);
int nbd_server_tx_input(struct sc_nbd_server *s);
void nbd_server_tx_sent(struct sc_nbd_server *s, unsigned after);

#endif
