/*
 * sasl-peer-cyrus: a test-only SASL peer running Cyrus SASL 2.1.28 over the
 * framing of docs/sasl.md. See README.md in this directory.
 *
 * No system configuration is read: the options Cyrus asks for come from our
 * SASL_CB_GETOPT, the config path points at our own (empty) work directory,
 * and the server's one account lives in a sasldb created here with
 * sasl_setpass (plaintext password: Cyrus 2.1.28 cannot do SCRAM-SHA-256 from
 * hashed-only secrets, /work/shared/notes/sasl.md).
 */
#include "peer_common.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sasl/sasl.h>

struct cyrus_lib {
	const struct peer_opts *o;
	sasl_conn_t *conn;
	char err[512];
	char sasldb[4200];
	char level[4];
	sasl_secret_t *secret;
	sasl_channel_binding_t cb;
	gnutls_datum_t cb_data;
	int server;
};

static struct cyrus_lib lib_state;
static char workdir_tmp[64];    /* set when we created the work dir ourselves */
static char sasldb_tmp[128];

/* Runs at exit and from the timeout handler: unlink/rmdir only. */
static void remove_workdir(void)
{
	if (workdir_tmp[0] != '\0') {
		unlink(sasldb_tmp);
		rmdir(workdir_tmp);
		workdir_tmp[0] = '\0';
	}
}

/* Cyrus's callbacks are an untyped int (*)(void); void (*)(void) casts cleanly to any. */
typedef int (*cyrus_cb_fn)(void);
#define CB(fn) ((cyrus_cb_fn)(void (*)(void))(fn))

static int cb_getopt(void *context, const char *plugin, const char *option,
		     const char **result, unsigned *len)
{
	struct cyrus_lib *l = context;
	(void)plugin;

	if (strcmp(option, "log_level") == 0 && l->o->trace)
		*result = l->level;
	else if (!l->server)
		return SASL_FAIL;
	else if (strcmp(option, "pwcheck_method") == 0)
		*result = "auxprop";
	else if (strcmp(option, "auxprop_plugin") == 0)
		*result = "sasldb";
	else if (strcmp(option, "sasldb_path") == 0)
		*result = l->sasldb;
	else if (strcmp(option, "mech_list") == 0)
		*result = l->o->mech_list;
	else
		return SASL_FAIL;
	if (len != NULL)
		*len = (unsigned)strlen(*result);
	return SASL_OK;
}

static int cb_log(void *context, int level, const char *message)
{
	struct cyrus_lib *l = context;
	if (l->o->trace)
		fprintf(stderr, "sasl-peer: trace: cyrus log %d: %s\n", level, message);
	return SASL_OK;
}

static int cb_confpath(void *context, const char **path)
{
	struct cyrus_lib *l = context;
	*path = l->o->workdir ? l->o->workdir : workdir_tmp[0] ? workdir_tmp : "/nonexistent";
	return SASL_OK;
}

static int cb_simple(void *context, int id, const char **result, unsigned *len)
{
	struct cyrus_lib *l = context;

	if (id == SASL_CB_AUTHNAME)
		*result = l->o->user;
	else if (id == SASL_CB_USER)
		*result = l->o->authzid ? l->o->authzid : "";
	else
		return SASL_FAIL;
	if (len != NULL)
		*len = (unsigned)strlen(*result);
	return SASL_OK;
}

static int cb_pass(sasl_conn_t *conn, void *context, int id, sasl_secret_t **psecret)
{
	struct cyrus_lib *l = context;
	size_t n = strlen(l->o->pass);
	(void)conn;
	(void)id;

	if (l->secret == NULL) {
		l->secret = malloc(sizeof(sasl_secret_t) + n);
		if (l->secret == NULL)
			return SASL_NOMEM;
	}
	l->secret->len = n;
	memcpy(l->secret->data, l->o->pass, n + 1);
	*psecret = l->secret;
	return SASL_OK;
}

static int cb_realm(void *context, int id, const char **avail, const char **result)
{
	struct cyrus_lib *l = context;
	(void)id;

	if (l->o->realm != NULL)
		*result = l->o->realm;
	else if (avail != NULL && avail[0] != NULL)
		*result = avail[0];
	else
		*result = "";
	return SASL_OK;
}

static const char *cyrus_error(void *lib)
{
	struct cyrus_lib *l = lib;
	return l->err;
}

static void set_error(struct cyrus_lib *l, const char *call, int rc)
{
	const char *detail = l->conn ? sasl_errdetail(l->conn) : sasl_errstring(rc, NULL, NULL);
	snprintf(l->err, sizeof l->err, "%s: %s", call, detail ? detail : "?");
}

static enum peer_step map_step(struct cyrus_lib *l, const char *call, int rc,
			       const char *out, unsigned outlen, struct peer_token *tok)
{
	if (rc != SASL_OK && rc != SASL_CONTINUE) {
		if (rc == SASL_INTERACT)
			snprintf(l->err, sizeof l->err, "%s: the library asked for interaction", call);
		else
			set_error(l, call, rc);
		return STEP_FAIL;
	}
	if (out != NULL && peer_token_set(tok, out, outlen) != 0) {
		snprintf(l->err, sizeof l->err, "%s: token of %u bytes exceeds 4096", call, outlen);
		return STEP_FAIL;
	}
	return rc == SASL_OK ? STEP_DONE : STEP_CONTINUE;
}

static enum peer_step cyrus_client_start(void *lib, const char *mech, struct peer_token *tok)
{
	struct cyrus_lib *l = lib;
	sasl_interact_t *prompt = NULL;
	const char *out = NULL, *used = NULL;
	unsigned outlen = 0;

	int rc = sasl_client_start(l->conn, mech, &prompt, &out, &outlen, &used);
	return map_step(l, "sasl_client_start", rc, out, outlen, tok);
}

static enum peer_step cyrus_client_step(void *lib, const unsigned char *in, size_t len,
					struct peer_token *tok)
{
	struct cyrus_lib *l = lib;
	sasl_interact_t *prompt = NULL;
	const char *out = NULL;
	unsigned outlen = 0;

	int rc = sasl_client_step(l->conn, (const char *)in, (unsigned)len, &prompt, &out, &outlen);
	return map_step(l, "sasl_client_step", rc, out, outlen, tok);
}

static enum peer_step cyrus_server_start(void *lib, const char *mech, const unsigned char *in,
					 size_t len, int has_in, struct peer_token *tok)
{
	struct cyrus_lib *l = lib;
	const char *out = NULL;
	unsigned outlen = 0;

	int rc = sasl_server_start(l->conn, mech, has_in ? (const char *)in : NULL,
				   (unsigned)len, &out, &outlen);
	return map_step(l, "sasl_server_start", rc, out, outlen, tok);
}

static enum peer_step cyrus_server_step(void *lib, const unsigned char *in, size_t len,
					struct peer_token *tok)
{
	struct cyrus_lib *l = lib;
	const char *out = NULL;
	unsigned outlen = 0;

	int rc = sasl_server_step(l->conn, (const char *)in, (unsigned)len, &out, &outlen);
	return map_step(l, "sasl_server_step", rc, out, outlen, tok);
}

static void cyrus_report(void *lib, struct peer_auth_report *r)
{
	struct cyrus_lib *l = lib;
	const void *p;

	if (sasl_getprop(l->conn, SASL_USERNAME, &p) == SASL_OK && p != NULL)
		snprintf(r->user, sizeof r->user, "%s", (const char *)p);
	if (sasl_getprop(l->conn, SASL_SSF, &p) == SASL_OK && p != NULL)
		r->ssf = *(const sasl_ssf_t *)p;
	if (sasl_getprop(l->conn, SASL_MAXOUTBUF, &p) == SASL_OK && p != NULL)
		r->maxbuf = *(const unsigned *)p;
	r->layer = r->ssf > 0;
	r->out_chunk = r->maxbuf;
	r->in_max = l->o->maxbuf;
}

static int cyrus_encode(void *lib, const unsigned char *in, size_t len, struct peer_buf *out)
{
	struct cyrus_lib *l = lib;
	const char *enc;
	unsigned enclen;

	int rc = sasl_encode(l->conn, (const char *)in, (unsigned)len, &enc, &enclen);
	if (rc != SASL_OK) {
		set_error(l, "sasl_encode", rc);
		return -1;
	}
	peer_buf_append(out, enc, enclen);
	return 0;
}

static int cyrus_decode(void *lib, const unsigned char *frame, size_t len, struct peer_buf *out)
{
	struct cyrus_lib *l = lib;
	const char *dec;
	unsigned declen;

	int rc = sasl_decode(l->conn, (const char *)frame, (unsigned)len, &dec, &declen);
	if (rc != SASL_OK) {
		set_error(l, "sasl_decode", rc);
		return -1;
	}
	peer_buf_append(out, dec, declen);
	return 0;
}

static const struct peer_sasl_ops cyrus_ops = {
	.client_start = cyrus_client_start,
	.client_step = cyrus_client_step,
	.server_start = cyrus_server_start,
	.server_step = cyrus_server_step,
	.error = cyrus_error,
	.report = cyrus_report,
	.encode = cyrus_encode,
	.decode = cyrus_decode,
};

/* --qop as Cyrus security properties: the SSF range that admits exactly those qops. */
static void set_secprops(struct cyrus_lib *l)
{
	const struct peer_opts *o = l->o;
	/* Cyrus's cipher table: des has SSF 55 (not 56), 3des 112; rc4-56 sits at 56,
	 * so a 55..55 range is what makes a Cyrus client pick des. */
	sasl_ssf_t conf = (o->cipher != NULL && strcmp(o->cipher, "3des") == 0) ? 112 : 55;
	sasl_ssf_t lo = 0, hi = 0;
	int any = 0;

	if (o->qops & QOP_AUTH) {
		lo = 0;
		hi = 0;
		any = 1;
	}
	if (o->qops & QOP_AUTH_INT) {
		if (!any)
			lo = 1;
		hi = 1;
		any = 1;
	}
	if (o->qops & QOP_AUTH_CONF) {
		if (!any)
			lo = conf;
		hi = conf;
	}
	sasl_security_properties_t sp;
	memset(&sp, 0, sizeof sp);
	sp.min_ssf = lo;
	sp.max_ssf = hi;
	sp.maxbufsize = o->maxbuf;
	sp.security_flags = 0;
	int rc = sasl_setprop(l->conn, SASL_SEC_PROPS, &sp);
	if (rc != SASL_OK) {
		set_error(l, "sasl_setprop(SASL_SEC_PROPS)", rc);
		peer_fail(PEER_EXIT_USAGE, "%s", l->err);
	}
	if (o->trace)
		fprintf(stderr, "sasl-peer: trace: secprops min_ssf=%u max_ssf=%u maxbufsize=%u\n",
			lo, hi, o->maxbuf);
}

static void setup_sasldb(struct cyrus_lib *l)
{
	const struct peer_opts *o = l->o;
	const char *dir = o->workdir;

	if (dir == NULL) {
		strcpy(workdir_tmp, "/tmp/sasl-peer-XXXXXX");
		if (mkdtemp(workdir_tmp) == NULL)
			peer_fail(PEER_EXIT_USAGE, "mkdtemp: %m");
		snprintf(sasldb_tmp, sizeof sasldb_tmp, "%s/sasldb2", workdir_tmp);
		peer_set_cleanup(remove_workdir);
		dir = workdir_tmp;
	}
	if (strlen(dir) > 4000)
		peer_fail(PEER_EXIT_USAGE, "--workdir path too long");
	snprintf(l->sasldb, sizeof l->sasldb, "%s/sasldb2", dir);
	unlink(l->sasldb); /* a fresh database: exactly the one account */
}

static void make_account(struct cyrus_lib *l)
{
	const struct peer_opts *o = l->o;
	sasl_conn_t *conn = NULL;

	int rc = sasl_server_new(o->service, o->host, o->realm, NULL, NULL, NULL, 0, &conn);
	if (rc != SASL_OK)
		peer_fail(PEER_EXIT_USAGE, "sasl_server_new (account): %s",
			  sasl_errstring(rc, NULL, NULL));
	rc = sasl_setpass(conn, o->user, o->pass, (unsigned)strlen(o->pass), NULL, 0,
			  SASL_SET_CREATE);
	if (rc != SASL_OK)
		peer_fail(PEER_EXIT_USAGE, "sasl_setpass %s in %s: %s", o->user, l->sasldb,
			  sasl_errdetail(conn));
	sasl_dispose(&conn);
}

int main(int argc, char **argv)
{
	static struct peer_opts o;
	static struct peer_io io;
	struct peer_auth_report report;
	struct cyrus_lib *l = &lib_state;
	int rc;

	peer_parse_args(argc, argv, &o);
	peer_start_timeout(o.timeout);
	l->o = &o;
	l->server = o.role == ROLE_SERVER;
	strcpy(l->level, "5"); /* SASL_LOG_DEBUG, with --trace only */

	static sasl_callback_t global_cbs[4];
	global_cbs[0] = (sasl_callback_t){ SASL_CB_GETOPT, CB(cb_getopt), l };
	global_cbs[1] = (sasl_callback_t){ SASL_CB_LOG, CB(cb_log), l };
	global_cbs[2] = (sasl_callback_t){ SASL_CB_GETCONFPATH, CB(cb_confpath), l };
	global_cbs[3] = (sasl_callback_t){ SASL_CB_LIST_END, NULL, NULL };

	if (l->server) {
		setup_sasldb(l);
		rc = sasl_server_init(global_cbs, "sasl-peer");
		if (rc != SASL_OK)
			peer_fail(PEER_EXIT_USAGE, "sasl_server_init: %s",
				  sasl_errstring(rc, NULL, NULL));
		make_account(l);
		/* SASL_SUCCESS_DATA: rspauth / v= come with SASL_OK, for OUTCOME. */
		rc = sasl_server_new(o.service, o.host, o.realm, NULL, NULL, NULL,
				     SASL_SUCCESS_DATA, &l->conn);
		if (rc != SASL_OK)
			peer_fail(PEER_EXIT_USAGE, "sasl_server_new: %s",
				  sasl_errstring(rc, NULL, NULL));
	} else {
		static sasl_callback_t client_cbs[5];
		client_cbs[0] = (sasl_callback_t){ SASL_CB_USER, CB(cb_simple), l };
		client_cbs[1] = (sasl_callback_t){ SASL_CB_AUTHNAME, CB(cb_simple), l };
		client_cbs[2] = (sasl_callback_t){ SASL_CB_PASS, CB(cb_pass), l };
		client_cbs[3] = (sasl_callback_t){ SASL_CB_GETREALM, CB(cb_realm), l };
		client_cbs[4] = (sasl_callback_t){ SASL_CB_LIST_END, NULL, NULL };
		rc = sasl_client_init(global_cbs);
		if (rc != SASL_OK)
			peer_fail(PEER_EXIT_USAGE, "sasl_client_init: %s",
				  sasl_errstring(rc, NULL, NULL));
		rc = sasl_client_new(o.service, o.host, NULL, NULL, client_cbs,
				     SASL_SUCCESS_DATA, &l->conn);
		if (rc != SASL_OK)
			peer_fail(PEER_EXIT_USAGE, "sasl_client_new: %s",
				  sasl_errstring(rc, NULL, NULL));
	}
	set_secprops(l);

	peer_connect(&o, &io);
	if (o.cb != NULL) {
		peer_channel_binding(&o, &io, &l->cb_data);
		l->cb.name = o.cb;
		l->cb.critical = 0;
		l->cb.len = l->cb_data.size;
		l->cb.data = l->cb_data.data;
		rc = sasl_setprop(l->conn, SASL_CHANNEL_BINDING, &l->cb);
		if (rc != SASL_OK) {
			set_error(l, "sasl_setprop(SASL_CHANNEL_BINDING)", rc);
			peer_fail(PEER_EXIT_USAGE, "%s", l->err);
		}
	}

	peer_authenticate(&o, &io, &cyrus_ops, l, &report);
	peer_data_phase(&o, &io, &cyrus_ops, l, &report);

	sasl_dispose(&l->conn);
	if (l->server)
		sasl_server_done();
	else
		sasl_client_done();
	gnutls_free(l->cb_data.data);
	free(l->secret);
	return PEER_EXIT_OK;
}
