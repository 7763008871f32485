/*
 * nbdfake.h - hostile NBD peers for tests: a scripted fake server and a man-in-the-middle
 * proxy, each one pthread serving one client on 127.0.0.1 (kernel-chosen port).
 *
 * Both are bounded: every wait inside the thread is cut into short ticks that check a stop
 * flag and an overall deadline, so nf_server_stop()/nm_stop() always return promptly and join
 * the thread.  Call the stop function before reading the record (it is written by the thread
 * without locks) and before the struct goes out of scope.  Structs are large: make them static.
 *
 * Fake server: a script of plain-C behaviours.
 *   - a newstyle greeting with given handshake flags (or an oldstyle one);
 *   - the client's flags are read;
 *   - each option is read and answered from a table (first unused answer for that option,
 *     else an NF_ANY_OPTION answer, else NBD_REP_ERR_UNSUP): a list of option replies (any
 *     type and payload, optionally with a length field that lies), raw bytes written in the
 *     same write right after them, and what to do next (next option, start TLS as a server,
 *     enter transmission, hang, close);
 *   - in transmission each request is handed to a callback that writes whatever bytes it
 *     likes (nf_send*), and says whether to go on, close, or hang.
 * Everything the client sent is recorded: the raw bytes before TLS, every option (number,
 * length, under TLS or not, whether it carries an export name) and every request.
 *
 * MITM: accepts one client, connects to an upstream NBD server, parses the option phase
 * (IHAVEOPT option length data / reply magic option type length data) and applies a mode;
 * once STARTTLS is acknowledged (or the transmission phase begins) it relays bytes both ways.
 *
 * Not for use from several test threads at once on the same struct; different structs are
 * independent.  POSIX (pthreads, poll).
 */
#ifndef SECHAN_TEST_UTIL_NBDFAKE_H
#define SECHAN_TEST_UTIL_NBDFAKE_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sechan/nbd_proto.h"
#include "sechan/tcp.h"
#include "sechan/tls.h"

#define NF_MAX_ANSWERS 16
#define NF_MAX_REPLIES 6
#define NF_REPLY_INLINE 64          /* payload bytes an nf_reply holds itself */
#define NF_ANY_OPTION 0xffffffffu
#define NF_CAPTURE_MAX 16384        /* plaintext client bytes kept */
#define NF_MAX_SEEN 32              /* options / requests recorded */
#define NF_OPT_DATA_MAX 65536u      /* option data accepted from the client */

/* What both peers share: a listener, a thread, a stop flag and a deadline, and what ended
 * the thread abnormally (error 0: it ended as scripted or when the client left). */
struct nf_runner {
    struct sc_listener lst;
    uint16_t port;
    pthread_t thread;
    bool running;
    atomic_bool stop;
    uint64_t deadline;
    int error;
    char msg[160];
};

/* ------------------------------------------------------------------ fake server */

struct nf_reply {
    uint32_t type;                  /* SC_NBD_REP_* (the option field is the client's) */
    uint8_t inline_data[NF_REPLY_INLINE];
    const uint8_t *ext;             /* payload elsewhere (must outlive the server), or NULL */
    uint32_t len;                   /* payload bytes actually sent */
    bool lie_len;                   /* the length field says wire_len instead of len */
    uint32_t wire_len;
};

enum nf_then {
    NF_THEN_NEXT = 0,               /* read the next option */
    NF_THEN_TLS,                    /* run a TLS server handshake, then read options under it */
    NF_THEN_TRANSMISSION,           /* the transmission phase (requests to on_request) */
    NF_THEN_HANG,                   /* send nothing more; keep reading (and recording) until
                                       the client closes, stop, or the deadline */
    NF_THEN_CLOSE                   /* close the connection at once */
};

struct nf_answer {
    uint32_t option;                /* the option answered, or NF_ANY_OPTION */
    struct nf_reply replies[NF_MAX_REPLIES];
    unsigned nr_replies;
    const uint8_t *raw;             /* written right after the replies, in the same write */
    size_t raw_len;
    enum nf_then then;
    bool used;                      /* private: answers are used once */
};

struct nf_request {
    uint16_t flags, type;
    uint64_t cookie, offset;
    uint32_t length;
    bool tls;
};

/* What a request callback asks for next. */
enum { NF_REQ_CONTINUE = 0, NF_REQ_CLOSE = 1, NF_REQ_HANG = 2 };

struct nf_server;
typedef int (*nf_request_fn)(struct nf_server *s, const struct nf_request *req, void *arg);

struct nf_script {
    bool oldstyle;                  /* send an oldstyle greeting, then hang */
    uint64_t oldstyle_size;
    uint32_t oldstyle_flags;
    uint16_t greeting_flags;        /* nf_script_init: FIXED_NEWSTYLE | NO_ZEROES */
    struct nf_answer answers[NF_MAX_ANSWERS];
    unsigned nr_answers;
    uint32_t default_reply;         /* for unanswered options: NBD_REP_ERR_UNSUP */
    nf_request_fn on_request;       /* NULL: READ answered with zeroes, others with success */
    void *arg;
    const struct sc_tls_creds *tls_creds;   /* server credentials for NF_THEN_TLS */
};

struct nf_opt_seen {
    uint32_t option;
    uint32_t len;
    bool tls;                       /* arrived under TLS */
    bool carries_name;              /* EXPORT_NAME, INFO, GO, LIST/SET_META_CONTEXT */
};

struct nf_record {
    uint8_t plain[NF_CAPTURE_MAX];  /* client bytes before TLS (first NF_CAPTURE_MAX) */
    size_t plain_len;
    uint64_t plain_total;
    uint64_t tls_total;             /* client bytes read under TLS (decrypted) */
    uint32_t client_flags;
    bool got_client_flags;
    struct nf_opt_seen opts[NF_MAX_SEEN];
    unsigned nr_opts;
    bool name_in_plain;             /* an option carrying an export name came before TLS */
    struct nf_request reqs[NF_MAX_SEEN];
    unsigned nr_reqs;
    bool accepted;                  /* a client connected */
    bool tls_done;
    int tls_error;
    bool client_eof;                /* the client closed its side */
};

struct nf_server {
    struct nf_runner run;
    struct nf_script script;
    struct sc_sock sock;
    struct sc_tls tls;
    struct sc_tls_config tls_cfg;
    struct sc_channel *ch;
    bool tls_on;
    bool draining;                  /* after the script: read without recording */
    struct nf_record rec;
};

/* Script building. */
void nf_script_init(struct nf_script *sc);
/* Add an answer for `option` (NULL if the table is full). */
struct nf_answer *nf_answer_add(struct nf_script *sc, uint32_t option, enum nf_then then);
/* Add a reply; data of up to NF_REPLY_INLINE bytes is copied, longer data is referenced. */
struct nf_reply *nf_reply_add(struct nf_answer *a, uint32_t type, const void *data,
                              uint32_t len);
/* NBD_REP_INFO / NBD_INFO_EXPORT with size and transmission flags. */
struct nf_reply *nf_reply_info_export(struct nf_answer *a, uint64_t size, uint16_t flags);
/* NBD_REP_META_CONTEXT: id + name. */
struct nf_reply *nf_reply_meta(struct nf_answer *a, uint32_t id, const char *name);

/* Common scripts: STARTTLS acknowledged and TLS started (creds must be set), then optionally
 * STRUCTURED_REPLY acknowledged and SET_META_CONTEXT granting base:allocation as meta_id
 * (0: not granted), then GO with INFO_EXPORT(size, flags) and ACK, then transmission. */
void nf_script_tls_go(struct nf_script *sc, const struct sc_tls_creds *creds, bool structured,
                      uint32_t meta_id, uint64_t size, uint16_t flags);

/* Start listening and the thread; the client has timeout_ms from now.  0 or an SC_ERR_*. */
int nf_server_start(struct nf_server *s, const struct nf_script *sc, uint64_t timeout_ms);
uint16_t nf_server_port(const struct nf_server *s);
/* Stop and join the thread, close everything.  Safe to call twice. */
void nf_server_stop(struct nf_server *s);
/* Did the client send these bytes in plaintext (before TLS)? (after stop) */
bool nf_plain_contains(const struct nf_server *s, const void *needle, size_t len);
/* Number of options recorded with this number (under_tls: -1 any, 0 plaintext, 1 TLS). */
unsigned nf_count_opt(const struct nf_server *s, uint32_t option, int under_tls);

/* For request callbacks (inside the server thread): write bytes to the client.
 * 0 or an SC_ERR_* (the client may already be gone: callbacks may ignore it). */
int nf_send(struct nf_server *s, const void *buf, size_t len);
int nf_send_simple(struct nf_server *s, uint64_t cookie, uint32_t error, const void *data,
                   size_t len);
/* A structured reply chunk header (with length len) followed by payload (payload_len <= len
 * bytes: send fewer to cut the chunk short). */
int nf_send_chunk(struct nf_server *s, uint16_t flags, uint16_t type, uint64_t cookie,
                  uint32_t len, const void *payload, size_t payload_len);

/* ------------------------------------------------------------------ man in the middle */

enum nm_mode {
    NM_RELAY = 0,            /* parse and forward everything (a transparent baseline) */
    NM_REFUSE_STARTTLS,      /* (a) answer NBD_OPT_STARTTLS ourselves with NBD_REP_ERR_UNSUP */
    NM_STRIP_STARTTLS,       /* (b) drop NBD_OPT_STARTTLS, forward the rest */
    NM_INJECT_AFTER_ACK,     /* (c) forward the STARTTLS ACK with plaintext bytes right behind
                                it, in the same write */
    NM_INJECT_STRUCTURED,    /* (d) send the upstream NBD_OPT_STRUCTURED_REPLY (and swallow
                                its reply) before forwarding STARTTLS (nbdkit CVE-2021-3716) */
    NM_OLDSTYLE              /* (e) give the client an oldstyle greeting instead (libnbd
                                CVE-2019-14842) */
};

#define NM_INJECT_MAX 64

struct nm_record {
    uint8_t client_plain[NF_CAPTURE_MAX];   /* client bytes before TLS began */
    size_t client_plain_len;
    uint64_t client_plain_total;
    uint32_t client_opts[NF_MAX_SEEN];      /* options the client sent in plaintext */
    unsigned nr_client_opts;
    uint32_t forwarded_opts[NF_MAX_SEEN];   /* options passed (or injected) upstream */
    unsigned nr_forwarded;
    bool injected;                          /* (c)/(d)/(e) did their thing */
    uint32_t injected_reply_type;           /* (d): the upstream's final reply to our option */
    bool starttls_acked;                    /* the upstream acknowledged STARTTLS */
    bool relaying;                          /* raw relay phase reached */
    uint64_t relayed_c2s, relayed_s2c;
    bool accepted;
};

struct nm_mitm {
    struct nf_runner run;
    enum nm_mode mode;
    uint16_t upstream_port;
    int cfd, ufd;                           /* client and upstream sockets */
    bool tls_begun;
    uint8_t inject[NM_INJECT_MAX];          /* (c): the bytes injected */
    size_t inject_len;
    struct nm_record rec;
};

/* Listen, then (in the thread) accept one client and connect to 127.0.0.1:upstream_port.
 * The whole session has timeout_ms.  0 or an SC_ERR_*. */
int nm_start(struct nm_mitm *m, enum nm_mode mode, uint16_t upstream_port, uint64_t timeout_ms);
uint16_t nm_port(const struct nm_mitm *m);
void nm_stop(struct nm_mitm *m);
bool nm_plain_contains(const struct nm_mitm *m, const void *needle, size_t len);
const char *nm_mode_name(enum nm_mode mode);

#endif /* SECHAN_TEST_UTIL_NBDFAKE_H */
