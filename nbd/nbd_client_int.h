/* Private to nbd/: the client engine's named states and shared helpers. */
#ifndef SC_NBD_CLIENT_INT_H
#define SC_NBD_CLIENT_INT_H

#include "sechan/nbd.h"

/* Handshake and session states: one handler each (nbd_client_hs.c). */
enum nbd_cstate {
    CS_GREETING = 1,      /* reading NBDMAGIC + IHAVEOPT (16 bytes) */
    CS_GREETING_FLAGS,    /* reading the 16-bit handshake flags */
    CS_SEND,              /* writing out[]; then next_after_send */
    CS_OPT_REPLY,         /* reading a 20-byte option reply header */
    CS_OPT_PAYLOAD,       /* reading its payload into scratch */
    CS_TLS,               /* STARTTLS acknowledged: the driver runs TLS */
    CS_EXPORT_REPLY,      /* reading size+flags after NBD_OPT_EXPORT_NAME */
    CS_EXPORT_ZEROES,     /* reading the 124 legacy zero bytes */
    CS_READY,             /* transmission phase */
    CS_CLOSED,
    CS_FAILED
};

/* Transmission receive states (nbd_client_tx.c). */
enum nbd_rxstate {
    RX_HDR = 0,           /* first 16 bytes of any reply */
    RX_SHDR_TAIL,         /* last 4 bytes of a structured reply header */
    RX_XHDR_TAIL,         /* last 16 bytes of an extended reply header */
    RX_SIMPLE_DATA,       /* READ payload of a simple reply */
    RX_OFFSET,            /* 8-byte offset of OFFSET_DATA */
    RX_CHUNK_DATA,        /* the data of OFFSET_DATA */
    RX_HOLE,              /* offset + size of OFFSET_HOLE */
    RX_BS_ID,             /* context id of BLOCK_STATUS */
    RX_BS_EXTENT,         /* one 8-byte extent */
    RX_BSX_HDR,           /* context id + count of BLOCK_STATUS_EXT */
    RX_BSX_EXTENT,        /* one 16-byte extent */
    RX_ERR_HDR,           /* error + message length */
    RX_ERR_REST           /* message (and offset), into scratch */
};

/* SENDING: its header or payload is still going out, so the engine still
 * points into the caller's buffer and no reply may complete it yet. */
enum nbd_slot_state { SLOT_FREE = 0, SLOT_QUEUED, SLOT_SENDING, SLOT_SENT, SLOT_DONE };

/* Record the first fatal error with a message; returns the error. */
int nbd_client_fail(struct sc_nbd_client *c, int err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Arrange to read n bytes into p, then run the handler of `state`. */
void nbd_client_expect(struct sc_nbd_client *c, void *p, size_t n, unsigned state);

/* Handshake: the handler for the item just read in state c->state. */
int nbd_client_hs_input(struct sc_nbd_client *c);
/* Handshake: out[] fully sent in CS_SEND. */
void nbd_client_hs_sent(struct sc_nbd_client *c);

/* What the engine is waiting for, for a timeout message. */
const char *nbd_client_waiting_for(const struct sc_nbd_client *c, char *buf, size_t cap);

/* Transmission: buffers and handlers. */
const uint8_t *nbd_client_tx_sendbuf(struct sc_nbd_client *c, size_t *len);
void nbd_client_tx_sent(struct sc_nbd_client *c, size_t n);
int nbd_client_tx_input(struct sc_nbd_client *c);
void nbd_client_tx_start(struct sc_nbd_client *c);

#endif
