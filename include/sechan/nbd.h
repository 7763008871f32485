/* sechan/nbd.h: the NBD client, as an engine that never does I/O and a
 * driver that joins it to a channel (and starts TLS on NBD_OPT_STARTTLS).
 *
 * The engine takes and gives bytes through buffers, BearSSL style:
 *
 *     sendbuf/sendack   bytes the engine wants on the wire, and how many went
 *     recvbuf/recvack   where the next received bytes go, and how many came
 *     state             SC_NBD_WANT_READ | SC_NBD_WANT_WRITE | SC_NBD_WANT_TLS |
 *                       SC_NBD_READY | SC_NBD_CLOSED | SC_NBD_FAILED
 *
 * It never asks for more bytes than the protocol item it is reading, so when
 * STARTTLS is acknowledged nothing sent after the acknowledgement has been
 * consumed: those bytes belong to the TLS handshake (or fail it).
 *
 * The structs are public so callers can allocate them (their sizes are
 * sizeof); their fields are private.
 */
#ifndef SECHAN_NBD_H
#define SECHAN_NBD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sechan/channel.h"
#include "sechan/nbd_proto.h"
#include "sechan/tls.h"

/* Requests in flight at once (the window); a compile-time constant. */
#ifndef SC_NBD_WINDOW
#if defined(SC_TLS_HOST)
#define SC_NBD_WINDOW 64
#else
#define SC_NBD_WINDOW 4
#endif
#endif

/* Largest option reply payload taken (a legal NBD_REP_SERVER is at most
 * 4 + 4096 + 4096 bytes); larger replies fail with SC_ERR_TOO_LONG. */
#ifndef SC_NBD_OPT_REPLY_MAX
#if defined(SC_TLS_HOST)
#define SC_NBD_OPT_REPLY_MAX 8200
#else
#define SC_NBD_OPT_REPLY_MAX 512
#endif
#endif

/* Longest export name the client will send. */
#ifndef SC_NBD_NAME_MAX
#if defined(SC_TLS_HOST)
#define SC_NBD_NAME_MAX 4096
#else
#define SC_NBD_NAME_MAX 64
#endif
#endif

/* Largest block-status reply chunk accepted (the protocol's own ceiling). */
#define SC_NBD_BLOCK_STATUS_MAX (4u + 8u * (1u << 20))

enum sc_nbd_tls_policy {
    SC_NBD_TLS_OFF = 0,       /* plaintext only */
    SC_NBD_TLS_OPTIONAL = 1,  /* STARTTLS if the server agrees, else plaintext */
    SC_NBD_TLS_REQUIRE = 2    /* STARTTLS or fail; nothing about exports in clear */
};

/* Engine state bits (sc_nbd_client_state). */
#define SC_NBD_WANT_READ 0x01u
#define SC_NBD_WANT_WRITE 0x02u
#define SC_NBD_WANT_TLS 0x04u   /* STARTTLS acknowledged: run the TLS handshake */
#define SC_NBD_READY 0x08u      /* transmission phase: requests may be submitted */
#define SC_NBD_CLOSED 0x10u     /* done (after DISC or an INFO-only session) */
#define SC_NBD_FAILED 0x20u     /* a fatal error: see sc_nbd_client_error() */

struct sc_nbd_client_config {
    const char *export_name;          /* NULL or "": the default export */
    enum sc_nbd_tls_policy tls;
    bool no_structured_replies;       /* (implies no extended headers) */
    bool no_extended_headers;         /* do not try NBD_OPT_EXTENDED_HEADERS */
    bool no_block_status;             /* do not ask for base:allocation */
    bool info_only;                   /* NBD_OPT_INFO, then NBD_OPT_ABORT */
    bool list_exports;                /* NBD_OPT_LIST before choosing the export */
    /* Called for each export NBD_OPT_LIST reports (name and description
     * are NUL-terminated and valid during the call only). */
    void (*on_export)(void *arg, const char *name, const char *description);
    void *on_export_arg;
};

/* What the server said about the export (valid once READY, or CLOSED
 * after info_only). */
struct sc_nbd_export_info {
    uint64_t size;
    uint16_t flags;                   /* SC_NBD_FLAG_* transmission flags */
    uint32_t block_min, block_pref, block_max;  /* 0 when not sent */
    bool structured_replies;
    bool extended_headers;            /* 32-byte requests and replies */
    bool block_status;                /* base:allocation negotiated */
    bool tls;                         /* negotiated under TLS */
    bool used_export_name;            /* old NBD_OPT_EXPORT_NAME fallback */
    char description[128];
};

struct sc_nbd_extent {
    uint64_t length;
    uint32_t flags;                   /* SC_NBD_STATE_HOLE | SC_NBD_STATE_ZERO */
};

/* One request. buf: READ destination / WRITE source (len bytes).
 * extents: BLOCK_STATUS destination (max_extents entries). */
struct sc_nbd_request {
    uint16_t type;                    /* SC_NBD_CMD_* (not DISC) */
    uint16_t flags;                   /* SC_NBD_CMD_FLAG_* */
    uint64_t offset;
    uint32_t length;
    void *buf;
    struct sc_nbd_extent *extents;
    size_t max_extents;
    void *user;                       /* returned with the completion */
};

struct sc_nbd_completion {
    uint64_t cookie;
    int error;                        /* 0 or SC_ERR_REMOTE */
    uint32_t nbd_error;               /* the server's NBD_E* code, 0 if none */
    size_t nr_extents;                /* BLOCK_STATUS: entries filled */
    void *user;
};

/* Disjoint pieces of one read a server may send before they join up; a
 * reply scattered wider than this fails (qemu-nbd and nbdkit send 1-2). */
#ifndef SC_NBD_READ_PIECES
#define SC_NBD_READ_PIECES 8
#endif

/* ---- private layout ---- */
struct sc_nbd_range {
    uint32_t start, end;              /* [start, end) relative to the request */
};

struct sc_nbd_slot {
    struct sc_nbd_request req;
    uint64_t cookie;
    struct sc_nbd_range got[SC_NBD_READ_PIECES];  /* READ: bytes received, sorted */
    uint8_t nr_got;
    size_t nr_extents;
    uint64_t extent_sum;
    uint32_t nbd_error;
    uint8_t state;                    /* free, queued, sent, done */
};

struct sc_nbd_client {
    struct sc_nbd_client_config cfg;
    char export_name[SC_NBD_NAME_MAX + 1];
    uint32_t export_name_len;
    unsigned state;                   /* named handshake/transmission state */
    unsigned next_opt_step;
    unsigned after_send;              /* what follows once out[] is sent */
    int error;
    char msg[160];
    bool tls_active;
    bool server_no_zeroes;
    bool listed;
    uint32_t cur_opt;                 /* option awaiting its reply */
    uint32_t meta_id;
    struct sc_nbd_export_info info;
    bool have_export_info;
    /* output: a small header buffer, then an optional payload span */
    uint8_t out[SC_NBD_OPT_HDR_LEN + 4 + SC_NBD_NAME_MAX + 64];
    size_t out_len, out_pos;
    const uint8_t *payload;
    size_t payload_len;
    /* input: the item being read goes to hdr, scratch, or a caller buffer */
    uint8_t hdr[32];
    uint8_t *in_ptr;
    size_t in_need;
    unsigned rx_state;
    uint32_t rx_type, rx_len, rx_flags16;
    uint64_t rx_cookie;
    uint32_t rx_left;                 /* payload bytes still to come */
    int rx_slot;
    uint8_t scratch[SC_NBD_OPT_REPLY_MAX];
    /* transmission */
    struct sc_nbd_slot slots[SC_NBD_WINDOW];
    uint8_t sendq[SC_NBD_WINDOW];
    unsigned sendq_head, sendq_len;
    unsigned in_flight;
    uint32_t completions;             /* requests completed, ever (wraps) */
    int tx_slot;                      /* request being sent, -1 if none */
    uint32_t generation;
    bool disc_queued, disc_sent;
};

/* ---- the engine ---- */

/* Start a client handshake. The config (and export name) is copied. */
int sc_nbd_client_init(struct sc_nbd_client *c, const struct sc_nbd_client_config *cfg);

unsigned sc_nbd_client_state(const struct sc_nbd_client *c);

const uint8_t *sc_nbd_client_sendbuf(struct sc_nbd_client *c, size_t *len);
void sc_nbd_client_sendack(struct sc_nbd_client *c, size_t n);
uint8_t *sc_nbd_client_recvbuf(struct sc_nbd_client *c, size_t *room);
/* Process n received bytes; 0 or the (sticky) error. */
int sc_nbd_client_recvack(struct sc_nbd_client *c, size_t n);

/* The driver ran the TLS handshake after SC_NBD_WANT_TLS. Everything
 * negotiated before is forgotten; negotiation starts again under TLS. */
int sc_nbd_client_tls_done(struct sc_nbd_client *c);

/* The peer closed the connection: fail (or finish, if we had sent DISC). */
int sc_nbd_client_eof(struct sc_nbd_client *c);

/* Submit a request (READY state). Returns 0 and its cookie, SC_ERR_BUSY when
 * the window is full, SC_ERR_INVAL for a request the export does not allow
 * (past the end, read-only, unsupported command or flag). */
int sc_nbd_client_submit(struct sc_nbd_client *c, const struct sc_nbd_request *req,
                         uint64_t *cookie);
/* Take one completed request: 1 and *out filled, 0 if none is complete. */
int sc_nbd_client_reap(struct sc_nbd_client *c, struct sc_nbd_completion *out);
/* Requests submitted and not yet reaped. */
unsigned sc_nbd_client_in_flight(const struct sc_nbd_client *c);
/* Queue NBD_CMD_DISC; the engine is CLOSED once it is sent. */
int sc_nbd_client_disconnect(struct sc_nbd_client *c);

const struct sc_nbd_export_info *sc_nbd_client_info(const struct sc_nbd_client *c);
int sc_nbd_client_error(const struct sc_nbd_client *c);
const char *sc_nbd_client_errmsg(const struct sc_nbd_client *c);

/* ---- the driver: the engine over a channel ---- */

struct sc_nbd_conn {
    struct sc_nbd_client eng;
    struct sc_channel *raw;           /* the transport, the caller's */
    struct sc_channel *ch;            /* raw, or &tls.base after STARTTLS */
    const struct sc_tls_config *tls_cfg;
    bool tls_started;
    int error;
    char msg[200];
    struct sc_tls tls;                /* last: init clears everything before it */
};

/* Run the handshake over raw (TLS configured by tls_cfg when the policy
 * is not OFF) until READY (or CLOSED for info_only), with a deadline. */
int sc_nbd_connect(struct sc_nbd_conn *n, struct sc_channel *raw,
                   const struct sc_nbd_client_config *cfg,
                   const struct sc_tls_config *tls_cfg, uint64_t deadline_ms);

/* Move bytes both ways without waiting; 0 when something moved, SC_ERR_AGAIN
 * when nothing could, or a fatal error. Reading stops at the first request
 * completed, so the caller can reap it and fill the window again before the
 * rest of the replies come in; call again to go on. */
int sc_nbd_conn_pump(struct sc_nbd_conn *n);
/* Pump, waiting on the channel when nothing moves, until the engine has a
 * completion to reap (or no request is in flight), or the deadline. */
int sc_nbd_conn_wait(struct sc_nbd_conn *n, uint64_t deadline_ms);

/* Blocking single requests (each waits for its own reply). */
int sc_nbd_pread(struct sc_nbd_conn *n, void *buf, uint32_t len, uint64_t offset,
                 uint64_t deadline_ms);
int sc_nbd_pwrite(struct sc_nbd_conn *n, const void *buf, uint32_t len, uint64_t offset,
                  uint16_t flags, uint64_t deadline_ms);
int sc_nbd_command(struct sc_nbd_conn *n, uint16_t type, uint16_t flags, uint64_t offset,
                   uint32_t len, uint64_t deadline_ms);   /* FLUSH TRIM CACHE WRITE_ZEROES */
int sc_nbd_block_status(struct sc_nbd_conn *n, uint64_t offset, uint32_t len,
                        struct sc_nbd_extent *extents, size_t max, size_t *nr,
                        uint64_t deadline_ms);
/* NBD_CMD_DISC, then close_notify under TLS. The raw channel stays open. */
int sc_nbd_close(struct sc_nbd_conn *n, uint64_t deadline_ms);

const char *sc_nbd_conn_errmsg(const struct sc_nbd_conn *n);


/* ======================================================================
 * The NBD server engine: one per client connection, same buffer interface.
 * Exports are served through a backend ops table; optional ops may be NULL
 * and are then not advertised. Requests are handled one at a time (the
 * client may pipeline them); payloads stream through a caller buffer, so
 * any request size works with a small buffer.
 * ====================================================================== */

/* Backend results: 0 or a positive SC_NBD_E* code for the client. */
struct sc_nbd_backend_ops {
    int (*read)(void *ctx, void *buf, uint32_t len, uint64_t offset);
    int (*write)(void *ctx, const void *buf, uint32_t len, uint64_t offset, bool fua);
    int (*flush)(void *ctx);                                               /* optional */
    int (*trim)(void *ctx, uint32_t len, uint64_t offset, bool fua);       /* optional */
    int (*zero)(void *ctx, uint32_t len, uint64_t offset, bool may_trim, bool fua,
                bool fast_only);                                           /* optional */
    int (*cache)(void *ctx, uint32_t len, uint64_t offset);                /* optional */
    /* Fill up to max extents covering [offset, offset+len) from offset on. */
    int (*block_status)(void *ctx, uint32_t len, uint64_t offset, struct sc_nbd_extent *ext,
                        size_t max, size_t *nr);                           /* optional */
};

struct sc_nbd_export {
    const char *name;            /* "" is the default export */
    const char *description;     /* may be NULL */
    uint64_t size;
    bool read_only;
    bool multi_conn;             /* advertise NBD_FLAG_CAN_MULTI_CONN */
    const struct sc_nbd_backend_ops *ops;
    void *ctx;
};

struct sc_nbd_server_config {
    const struct sc_nbd_export *exports;
    size_t nr_exports;
    enum sc_nbd_tls_policy tls;  /* OFF: no STARTTLS; OPTIONAL; REQUIRE */
    uint8_t *buf;                /* payload buffer (caller's) ... */
    size_t buf_len;              /* ... of at least 4096 bytes */
};

#ifndef SC_NBD_SRV_OPT_MAX
#define SC_NBD_SRV_OPT_MAX (4u + SC_NBD_MAX_STRING + 4u + 2u * 64u + 64u)
#endif

/* Option payloads above this are never read: the connection is closed
 * (QEMU CVE-2017-15119). Between SC_NBD_SRV_OPT_MAX and this they are
 * drained and answered NBD_REP_ERR_TOO_BIG. */
#define SC_NBD_SRV_OPT_DRAIN_MAX (1u << 20)
/* The largest request accepted (the protocol's default maximum). */
#define SC_NBD_SRV_REQ_MAX (32u << 20)
#define SC_NBD_SRV_EXTENTS 64

struct sc_nbd_server {
    struct sc_nbd_server_config cfg;
    unsigned state;
    int error;
    char msg[160];
    bool tls_active;
    bool client_no_zeroes;
    bool structured;
    bool extended;               /* 32-byte requests and replies */
    bool meta_base;              /* base:allocation granted (context id 1) */
    const struct sc_nbd_export *exp;  /* chosen by GO / EXPORT_NAME */
    unsigned list_next;          /* LIST: next export to announce */
    uint32_t opt, opt_len, opt_left;
    int pending_reply;           /* reply to send after draining a payload */
    /* output */
    uint8_t out[256 + SC_NBD_MAX_STRING * 2];
    size_t out_len, out_pos;
    const uint8_t *payload;
    size_t payload_len;
    unsigned after_send;
    /* input */
    uint8_t hdr[32];
    uint8_t *in_ptr;
    size_t in_need;
    uint8_t opt_buf[SC_NBD_SRV_OPT_MAX];
    /* the request being served */
    uint16_t req_flags, req_type;
    uint64_t req_cookie, req_offset;
    uint64_t req_len, req_done;       /* 64-bit with extended headers */
    uint32_t req_error;
    struct sc_nbd_extent extents[SC_NBD_SRV_EXTENTS];
};

int sc_nbd_server_init(struct sc_nbd_server *s, const struct sc_nbd_server_config *cfg);
unsigned sc_nbd_server_state(const struct sc_nbd_server *s);   /* SC_NBD_* bits */
const uint8_t *sc_nbd_server_sendbuf(struct sc_nbd_server *s, size_t *len);
void sc_nbd_server_sendack(struct sc_nbd_server *s, size_t n);
uint8_t *sc_nbd_server_recvbuf(struct sc_nbd_server *s, size_t *room);
int sc_nbd_server_recvack(struct sc_nbd_server *s, size_t n);
/* The driver completed the TLS handshake after SC_NBD_WANT_TLS. */
int sc_nbd_server_tls_done(struct sc_nbd_server *s);
/* The client went away: fine after DISC or ABORT, an error otherwise. */
int sc_nbd_server_eof(struct sc_nbd_server *s);
int sc_nbd_server_error(const struct sc_nbd_server *s);
const char *sc_nbd_server_errmsg(const struct sc_nbd_server *s);
/* True while still negotiating (for the idle-handshake deadline). */
bool sc_nbd_server_negotiating(const struct sc_nbd_server *s);

/* The server engine over a channel (one client). */
struct sc_nbd_server_conn {
    struct sc_nbd_server eng;
    struct sc_channel *raw;
    struct sc_channel *ch;
    const struct sc_tls_config *tls_cfg;
    bool tls_started;
    int error;
    char msg[200];
    struct sc_tls tls;           /* last: init clears everything before it */
};

int sc_nbd_server_conn_init(struct sc_nbd_server_conn *n, struct sc_channel *raw,
                            const struct sc_nbd_server_config *cfg,
                            const struct sc_tls_config *tls_cfg);
/* Move bytes without waiting: 0 progress, SC_ERR_AGAIN (see *want), an error,
 * or 1 when the session has ended cleanly. */
int sc_nbd_server_conn_pump(struct sc_nbd_server_conn *n, enum sc_dir *want);
/* Close TLS (close_notify if possible); the raw channel stays the caller's. */
void sc_nbd_server_conn_close(struct sc_nbd_server_conn *n);
const char *sc_nbd_server_conn_errmsg(const struct sc_nbd_server_conn *n);

#endif
