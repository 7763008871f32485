/*
 * Shared code of the SASL interop peers (test-only): options, the frame
 * codec of docs/sasl.md ("Framing over a raw channel"), the GnuTLS
 * transport, the exchange driver and the data phase. Each peer program
 * (cyrus_peer.c, gsasl_peer.c) supplies a struct peer_sasl_ops that adapts
 * its library; everything that touches the wire lives here, so both peers
 * frame and bound the exchange identically.
 */
#ifndef SASL_PEER_COMMON_H
#define SASL_PEER_COMMON_H

#include <stddef.h>
#include <stdint.h>

#include <gnutls/gnutls.h>

/* Exit codes (README.md). */
#define PEER_EXIT_OK 0
#define PEER_EXIT_AUTH 1    /* authentication failed or the peer refused */
#define PEER_EXIT_USAGE 2   /* usage or setup error */
#define PEER_EXIT_TIMEOUT 3 /* --timeout passed */
#define PEER_EXIT_PROTO 4   /* bad frame, bound exceeded, out of order */

/* Frame types and bounds (docs/sasl.md). */
enum peer_frame_type {
	FRAME_MECHS = 0x01,
	FRAME_START = 0x02,
	FRAME_CHALLENGE = 0x03,
	FRAME_RESPONSE = 0x04,
	FRAME_OUTCOME = 0x05,
	FRAME_ABORT = 0x06,
};
#define PEER_MECHS_MAX 256
#define PEER_MECH_NAME_MAX 20
#define PEER_TOKEN_MAX 4096
#define PEER_START_MAX (4 + PEER_MECH_NAME_MAX + PEER_TOKEN_MAX)
#define PEER_OUTCOME_MAX (1 + PEER_TOKEN_MAX)
#define PEER_REASON_MAX 128
#define PEER_ROUNDS_MAX 8
#define PEER_FRAME_BODY_MAX PEER_START_MAX /* the largest of all bounds */

/* DIGEST-MD5 maxbuf range (docs/sasl.md "Limits"); 65536 is RFC 2831's default. */
#define PEER_MAXBUF_MIN 17u
#define PEER_MAXBUF_MAX 16777215u
#define PEER_MAXBUF_DEFAULT 65536u

enum peer_role { ROLE_NONE, ROLE_CLIENT, ROLE_SERVER };

/* qop bits of --qop. */
#define QOP_AUTH 1u
#define QOP_AUTH_INT 2u
#define QOP_AUTH_CONF 4u

struct peer_opts {
	enum peer_role role;
	const char *unix_path;
	const char *mech;       /* as given: comma-separated for the server */
	char mech_list[PEER_MECHS_MAX + 1]; /* space-separated, validated */
	const char *user, *pass, *authzid, *realm;
	const char *service, *host;
	unsigned qops;          /* QOP_* bits; default QOP_AUTH */
	const char *cipher;     /* "des" or "3des"; NULL if not given */
	unsigned maxbuf;
	int maxbuf_set;
	const char *tls_ca;     /* --tls-client */
	const char *tls_cert, *tls_key; /* --tls-server */
	const char *tls_psk;    /* --tls-psk IDENTITY:HEXKEY */
	const char *cb;         /* --cb: "tls-exporter" or "tls-server-end-point" */
	long echo, send;        /* -1 when not given */
	unsigned timeout;
	const char *workdir;
	int trace;
};

/* The connection: a unix socket, optionally wrapped in TLS. */
struct peer_io {
	int fd;
	gnutls_session_t tls;   /* NULL without TLS */
	gnutls_certificate_credentials_t x509;
	gnutls_psk_client_credentials_t psk_client;
	gnutls_psk_server_credentials_t psk_server;
	int trace;
};

/* A token out of the library, bounded like the frames that carry it. */
struct peer_token {
	unsigned char data[PEER_TOKEN_MAX];
	size_t len;
	int present;            /* 0: no token at all (e.g. no initial response) */
};

/* What a library step says. */
enum peer_step { STEP_CONTINUE, STEP_DONE, STEP_FAIL };

/* A growable byte buffer (test code: malloc is fine). */
struct peer_buf {
	unsigned char *data;
	size_t len, cap;
};
void peer_buf_append(struct peer_buf *b, const void *p, size_t n);
void peer_buf_free(struct peer_buf *b);

/*
 * What a SASL library adapter provides. A step fills *out (present=0 when
 * the library produced nothing); on STEP_FAIL the message is in error().
 * The layer hooks are used only when report() said the layer is active.
 */
struct peer_auth_report {
	char mech[PEER_MECH_NAME_MAX + 1]; /* filled by peer_authenticate */
	char user[256];
	unsigned ssf;
	unsigned maxbuf;        /* what the library says it may send per encode */
	int layer;              /* a security layer was negotiated */
	size_t out_chunk;       /* plaintext bytes per encode (respects the peer's maxbuf) */
	size_t in_max;          /* largest frame body (after the 4-byte length) we accept */
};
struct peer_sasl_ops {
	enum peer_step (*client_start)(void *lib, const char *mech, struct peer_token *out);
	enum peer_step (*client_step)(void *lib, const unsigned char *in, size_t len,
				      struct peer_token *out);
	enum peer_step (*server_start)(void *lib, const char *mech, const unsigned char *in,
				       size_t len, int has_in, struct peer_token *out);
	enum peer_step (*server_step)(void *lib, const unsigned char *in, size_t len,
				      struct peer_token *out);
	const char *(*error)(void *lib);
	void (*report)(void *lib, struct peer_auth_report *r);
	/* Encode plaintext (len <= out_chunk) into one or more frames; appends to out. */
	int (*encode)(void *lib, const unsigned char *in, size_t len, struct peer_buf *out);
	/* Decode one whole frame (4-byte length included); appends plaintext to out. */
	int (*decode)(void *lib, const unsigned char *frame, size_t len, struct peer_buf *out);
};

/* Errors: print "sasl-peer: error: ..." and exit with code. */
void peer_fail(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3), noreturn));
void peer_trace(const struct peer_io *io, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Called from exit paths and the timeout handler (e.g. remove the sasldb dir). */
void peer_set_cleanup(void (*fn)(void));

/* Parse argv into o; exits 2 on usage errors. */
void peer_parse_args(int argc, char **argv, struct peer_opts *o);

/* Arm alarm(timeout): exit 3 when it fires. */
void peer_start_timeout(unsigned seconds);

/* Connect to --unix and, if asked, run the TLS 1.3 handshake. */
void peer_connect(const struct peer_opts *o, struct peer_io *io);

/* The channel binding named by --cb, from GnuTLS; caller frees with gnutls_free. */
void peer_channel_binding(const struct peer_opts *o, struct peer_io *io, gnutls_datum_t *cb);

/* Run the whole exchange of docs/sasl.md; returns only on success. */
void peer_authenticate(const struct peer_opts *o, struct peer_io *io,
		       const struct peer_sasl_ops *ops, void *lib, struct peer_auth_report *r);

/* Print the ok line, then --send and --echo through the layer, then close. */
void peer_data_phase(const struct peer_opts *o, struct peer_io *io,
		     const struct peer_sasl_ops *ops, void *lib,
		     const struct peer_auth_report *r);

/* Helpers for the adapters. */
int peer_token_set(struct peer_token *t, const void *p, size_t len);
/* Find DIGEST-MD5 directive name in a token; copies the unquoted value. */
int peer_digest_directive(const unsigned char *tok, size_t len, const char *name,
			  char *value, size_t value_size);

#endif
