/*
 * sasl-peer-gsasl: a test-only SASL peer running GNU SASL 2.2.0 over the
 * framing of docs/sasl.md. See README.md in this directory.
 *
 * GNU SASL 2.2.0 has no auth-conf, cannot advertise a DIGEST-MD5 maxbuf, does
 * not report the negotiated qop, and knows only tls-unique and tls-exporter
 * channel bindings. What it does not report (qop, the peer's maxbuf) is read
 * from the DIGEST-MD5 tokens as they pass through this adapter.
 */
#include "peer_common.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <gsasl.h>

struct gsasl_lib {
	const struct peer_opts *o;
	Gsasl *ctx;
	Gsasl_session *s;
	char err[512];
	char *cb_b64;
	int digest;             /* the mechanism is DIGEST-MD5 */
	int auth_int;           /* qop=auth-int was negotiated */
	unsigned long peer_maxbuf;
	int no_qop;             /* the client found no acceptable qop */
};

static struct gsasl_lib lib_state;

static int callback(Gsasl *ctx, Gsasl_session *s, Gsasl_property prop)
{
	struct gsasl_lib *l = &lib_state;
	const struct peer_opts *o = l->o;
	(void)ctx;

	switch (prop) {
	case GSASL_PASSWORD: {
		/* Server: the one account; DIGEST-MD5 also names the realm. */
		const char *authid = gsasl_property_fast(s, GSASL_AUTHID);
		const char *realm = gsasl_property_fast(s, GSASL_REALM);
		if (authid == NULL || strcmp(authid, o->user) != 0)
			return GSASL_NO_CALLBACK;
		if (l->digest && o->realm != NULL && (realm == NULL || strcmp(realm, o->realm) != 0))
			return GSASL_NO_CALLBACK;
		return gsasl_property_set(s, GSASL_PASSWORD, o->pass);
	}
	case GSASL_VALIDATE_SIMPLE: {
		const char *authid = gsasl_property_fast(s, GSASL_AUTHID);
		const char *pass = gsasl_property_fast(s, GSASL_PASSWORD);
		return authid && pass && strcmp(authid, o->user) == 0 && strcmp(pass, o->pass) == 0
			? GSASL_OK : GSASL_AUTHENTICATION_ERROR;
	}
	case GSASL_REALM:
		/* Client (DIGEST-MD5): after it took the first realm of the challenge. */
		if (o->role == ROLE_CLIENT && o->realm != NULL)
			return gsasl_property_set(s, GSASL_REALM, o->realm);
		return GSASL_NO_CALLBACK;
	case GSASL_QOP: {
		/* Client: the strongest qop we allow that the server offers. */
		const char *offered = gsasl_property_fast(s, GSASL_QOPS);
		if (offered == NULL)
			offered = "";
		if ((o->qops & QOP_AUTH_INT) && strstr(offered, "qop-int") != NULL) {
			l->auth_int = 1;
			return gsasl_property_set(s, GSASL_QOP, "qop-int");
		}
		if ((o->qops & QOP_AUTH) && strstr(offered, "qop-auth") != NULL)
			return gsasl_property_set(s, GSASL_QOP, "qop-auth");
		/* Unset would mean "auth": name an unknown qop so that the library fails. */
		l->no_qop = 1;
		return gsasl_property_set(s, GSASL_QOP, "qop-none-acceptable");
	}
	default:
		return GSASL_NO_CALLBACK;
	}
}

static const char *gs_error(void *lib)
{
	struct gsasl_lib *l = lib;
	return l->err;
}

static void set_error(struct gsasl_lib *l, const char *call, int rc)
{
	snprintf(l->err, sizeof l->err, "%s: %s (%s)%s", call, gsasl_strerror(rc),
		 gsasl_strerror_name(rc),
		 l->no_qop ? ": no qop that we allow is offered by the server" : "");
}

static void set_prop(struct gsasl_lib *l, Gsasl_property p, const char *v)
{
	if (v == NULL)
		return;
	int rc = gsasl_property_set(l->s, p, v);
	if (rc != GSASL_OK)
		peer_fail(PEER_EXIT_USAGE, "gsasl_property_set: %s", gsasl_strerror(rc));
}

/* One gsasl_step; NEEDS_MORE continues, OK is done. */
static enum peer_step step(struct gsasl_lib *l, const unsigned char *in, size_t len,
			   struct peer_token *tok)
{
	char *out = NULL;
	size_t outlen = 0;

	int rc = gsasl_step(l->s, (const char *)in, len, &out, &outlen);
	if (rc != GSASL_OK && rc != GSASL_NEEDS_MORE) {
		set_error(l, "gsasl_step", rc);
		gsasl_free(out);
		return STEP_FAIL;
	}
	if (outlen > 0 && peer_token_set(tok, out, outlen) != 0) {
		snprintf(l->err, sizeof l->err, "gsasl_step: token of %zu bytes exceeds 4096", outlen);
		gsasl_free(out);
		return STEP_FAIL;
	}
	gsasl_free(out);
	return rc == GSASL_OK ? STEP_DONE : STEP_CONTINUE;
}

/* DIGEST-MD5 maxbuf= of a challenge (client) or response (server); RFC 2831 default. */
static void note_peer_maxbuf(struct gsasl_lib *l, const unsigned char *tok, size_t len)
{
	char v[32];
	if (peer_digest_directive(tok, len, "maxbuf", v, sizeof v))
		l->peer_maxbuf = strtoul(v, NULL, 10);
}

static enum peer_step gs_client_start(void *lib, const char *mech, struct peer_token *tok)
{
	struct gsasl_lib *l = lib;
	const struct peer_opts *o = l->o;

	if (!gsasl_client_support_p(l->ctx, mech)) {
		snprintf(l->err, sizeof l->err, "GNU SASL has no client mechanism %s", mech);
		return STEP_FAIL;
	}
	int rc = gsasl_client_start(l->ctx, mech, &l->s);
	if (rc != GSASL_OK) {
		set_error(l, "gsasl_client_start", rc);
		return STEP_FAIL;
	}
	l->digest = strcmp(mech, "DIGEST-MD5") == 0;
	set_prop(l, GSASL_AUTHID, o->user);
	set_prop(l, GSASL_PASSWORD, o->pass);
	set_prop(l, GSASL_AUTHZID, o->authzid);
	set_prop(l, GSASL_SERVICE, o->service);
	set_prop(l, GSASL_HOSTNAME, o->host);
	set_prop(l, GSASL_CB_TLS_EXPORTER, l->cb_b64);

	/* A client-first mechanism answers an empty step with its initial response;
	 * a server-first one (DIGEST-MD5) with nothing. */
	enum peer_step st = step(l, NULL, 0, tok);
	if (tok->len == 0)
		tok->present = 0;
	return st;
}

static enum peer_step gs_client_step(void *lib, const unsigned char *in, size_t len,
				     struct peer_token *tok)
{
	struct gsasl_lib *l = lib;
	if (l->digest && peer_digest_directive(in, len, "nonce", (char[8]){ 0 }, 8))
		note_peer_maxbuf(l, in, len);
	return step(l, in, len, tok);
}

static enum peer_step gs_server_start(void *lib, const char *mech, const unsigned char *in,
				      size_t len, int has_in, struct peer_token *tok)
{
	struct gsasl_lib *l = lib;
	const struct peer_opts *o = l->o;
	(void)has_in; /* an absent and an empty initial response are the same step here */

	if (!gsasl_server_support_p(l->ctx, mech)) {
		snprintf(l->err, sizeof l->err, "GNU SASL has no server mechanism %s", mech);
		return STEP_FAIL;
	}
	int rc = gsasl_server_start(l->ctx, mech, &l->s);
	if (rc != GSASL_OK) {
		set_error(l, "gsasl_server_start", rc);
		return STEP_FAIL;
	}
	l->digest = strcmp(mech, "DIGEST-MD5") == 0;
	set_prop(l, GSASL_SERVICE, o->service);
	set_prop(l, GSASL_HOSTNAME, o->host);
	set_prop(l, GSASL_REALM, o->realm);
	set_prop(l, GSASL_CB_TLS_EXPORTER, l->cb_b64);
	char qops[64] = "";
	if (o->qops & QOP_AUTH)
		strcat(qops, "qop-auth");
	if (o->qops & QOP_AUTH_INT)
		strcat(qops, qops[0] ? ",qop-int" : "qop-int");
	set_prop(l, GSASL_QOPS, qops);
	return step(l, in, len, tok);
}

static enum peer_step gs_server_step(void *lib, const unsigned char *in, size_t len,
				     struct peer_token *tok)
{
	struct gsasl_lib *l = lib;
	char qop[16];

	if (l->digest && peer_digest_directive(in, len, "response", (char[8]){ 0 }, 8)) {
		note_peer_maxbuf(l, in, len);
		l->auth_int = peer_digest_directive(in, len, "qop", qop, sizeof qop) &&
			      strcmp(qop, "auth-int") == 0;
	}
	return step(l, in, len, tok);
}

static void gs_report(void *lib, struct peer_auth_report *r)
{
	struct gsasl_lib *l = lib;
	const char *user = gsasl_property_fast(l->s, GSASL_AUTHID);

	snprintf(r->user, sizeof r->user, "%s", user ? user : "");
	r->layer = l->digest && l->auth_int;
	r->ssf = r->layer ? 1 : 0; /* Cyrus's convention: auth-int is SSF 1 */
	/* The frame body may be counted with or without its 4-byte length (Cyrus's
	 * client and server differ): stay under both readings. */
	r->out_chunk = r->layer ? l->peer_maxbuf - 4 - 16 : 0;
	r->maxbuf = (unsigned)r->out_chunk;
	r->in_max = PEER_MAXBUF_DEFAULT; /* we cannot advertise another maxbuf */
}

static int gs_encode(void *lib, const unsigned char *in, size_t len, struct peer_buf *out)
{
	struct gsasl_lib *l = lib;
	char *enc = NULL;
	size_t enclen = 0;

	int rc = gsasl_encode(l->s, (const char *)in, len, &enc, &enclen);
	if (rc != GSASL_OK) {
		set_error(l, "gsasl_encode", rc);
		return -1;
	}
	peer_buf_append(out, enc, enclen);
	gsasl_free(enc);
	return 0;
}

static int gs_decode(void *lib, const unsigned char *frame, size_t len, struct peer_buf *out)
{
	struct gsasl_lib *l = lib;
	char *dec = NULL;
	size_t declen = 0;

	/* One whole frame per call: GNU SASL finds the MAC from the end of its input. */
	int rc = gsasl_decode(l->s, (const char *)frame, len, &dec, &declen);
	if (rc != GSASL_OK) {
		set_error(l, "gsasl_decode", rc);
		gsasl_free(dec);
		return -1;
	}
	peer_buf_append(out, dec, declen);
	gsasl_free(dec);
	return 0;
}

static const struct peer_sasl_ops gsasl_ops = {
	.client_start = gs_client_start,
	.client_step = gs_client_step,
	.server_start = gs_server_start,
	.server_step = gs_server_step,
	.error = gs_error,
	.report = gs_report,
	.encode = gs_encode,
	.decode = gs_decode,
};

int main(int argc, char **argv)
{
	static struct peer_opts o;
	static struct peer_io io;
	struct peer_auth_report report;
	struct gsasl_lib *l = &lib_state;

	peer_parse_args(argc, argv, &o);
	if (o.qops & QOP_AUTH_CONF)
		peer_fail(PEER_EXIT_USAGE, "GNU SASL 2.2.0 has no auth-conf");
	if (o.maxbuf_set)
		peer_fail(PEER_EXIT_USAGE, "GNU SASL 2.2.0 cannot advertise a DIGEST-MD5 maxbuf");
	if (o.cb != NULL && strcmp(o.cb, "tls-exporter") != 0)
		peer_fail(PEER_EXIT_USAGE, "GNU SASL 2.2.0 supports only the tls-unique and "
			  "tls-exporter channel bindings, not %s", o.cb);
	peer_start_timeout(o.timeout);
	l->o = &o;
	l->peer_maxbuf = PEER_MAXBUF_DEFAULT;

	int rc = gsasl_init(&l->ctx);
	if (rc != GSASL_OK)
		peer_fail(PEER_EXIT_USAGE, "gsasl_init: %s", gsasl_strerror(rc));
	gsasl_callback_set(l->ctx, callback);

	peer_connect(&o, &io);
	if (o.cb != NULL) {
		gnutls_datum_t cb;
		peer_channel_binding(&o, &io, &cb);
		rc = gsasl_base64_to((const char *)cb.data, cb.size, &l->cb_b64, NULL);
		gnutls_free(cb.data);
		if (rc != GSASL_OK)
			peer_fail(PEER_EXIT_USAGE, "gsasl_base64_to: %s", gsasl_strerror(rc));
	}

	peer_authenticate(&o, &io, &gsasl_ops, l, &report);
	peer_data_phase(&o, &io, &gsasl_ops, l, &report);

	gsasl_finish(l->s);
	gsasl_done(l->ctx);
	gsasl_free(l->cb_b64);
	return PEER_EXIT_OK;
}
