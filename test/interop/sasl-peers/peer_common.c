/* see peer_common.h */
#include "peer_common.h"

#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

static void (*cleanup_fn)(void);
static char alarm_msg[128];

/* ---- errors, trace, cleanup, deadline ---- */

static void run_cleanup(void)
{
	if (cleanup_fn != NULL) {
		void (*fn)(void) = cleanup_fn;
		cleanup_fn = NULL;
		fn();
	}
}

void peer_set_cleanup(void (*fn)(void))
{
	cleanup_fn = fn;
	atexit(run_cleanup);
}

void peer_fail(int code, const char *fmt, ...)
{
	va_list ap;

	fflush(stdout);
	fputs("sasl-peer: error: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(code);
}

void peer_trace(const struct peer_io *io, const char *fmt, ...)
{
	va_list ap;

	if (io != NULL && !io->trace)
		return;
	fputs("sasl-peer: trace: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

static void on_alarm(int sig)
{
	(void)sig;
	/* Only write(2) and unlink/rmdir run here; the cleanup does no stdio. */
	ssize_t rc = write(2, alarm_msg, strlen(alarm_msg));
	(void)rc;
	if (cleanup_fn != NULL)
		cleanup_fn();
	_exit(PEER_EXIT_TIMEOUT);
}

void peer_start_timeout(unsigned seconds)
{
	struct sigaction sa;

	snprintf(alarm_msg, sizeof alarm_msg,
		 "sasl-peer: error: timeout: deadline of %u s passed\n", seconds);
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_alarm;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGALRM, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	alarm(seconds);
}

/* ---- buffers, tokens ---- */

void peer_buf_append(struct peer_buf *b, const void *p, size_t n)
{
	if (b->len + n > b->cap) {
		size_t cap = b->cap ? b->cap : 4096;
		while (cap < b->len + n)
			cap *= 2;
		unsigned char *d = realloc(b->data, cap);
		if (d == NULL)
			peer_fail(PEER_EXIT_USAGE, "out of memory (%zu bytes)", cap);
		b->data = d;
		b->cap = cap;
	}
	if (n > 0 && p != NULL) /* p == NULL: reserve n bytes for the caller to fill */
		memcpy(b->data + b->len, p, n);
	b->len += n;
}

void peer_buf_free(struct peer_buf *b)
{
	free(b->data);
	memset(b, 0, sizeof *b);
}

int peer_token_set(struct peer_token *t, const void *p, size_t len)
{
	t->present = 1;
	t->len = 0;
	if (len > sizeof t->data)
		return -1;
	if (len > 0)
		memcpy(t->data, p, len);
	t->len = len;
	return 0;
}

int peer_digest_directive(const unsigned char *tok, size_t len, const char *name,
			  char *value, size_t value_size)
{
	size_t nlen = strlen(name), i = 0;

	/* RFC 2831 #rule: name=value or name="quoted", separated by commas and spaces. */
	while (i < len) {
		while (i < len && (tok[i] == ',' || tok[i] == ' ' || tok[i] == '\t'))
			i++;
		size_t start = i;
		while (i < len && tok[i] != '=' && tok[i] != ',')
			i++;
		size_t klen = i - start;
		while (klen > 0 && tok[start + klen - 1] == ' ')
			klen--;
		if (i >= len || tok[i] != '=') {
			continue;
		}
		i++;
		while (i < len && tok[i] == ' ')
			i++;
		size_t out = 0;
		int match = klen == nlen && strncasecmp((const char *)tok + start, name, nlen) == 0;
		if (i < len && tok[i] == '"') {
			i++;
			while (i < len && tok[i] != '"') {
				if (tok[i] == '\\' && i + 1 < len)
					i++;
				if (match && out + 1 < value_size)
					value[out++] = (char)tok[i];
				i++;
			}
			i++;
		} else {
			while (i < len && tok[i] != ',') {
				if (match && out + 1 < value_size)
					value[out++] = (char)tok[i];
				i++;
			}
			while (match && out > 0 && value[out - 1] == ' ')
				out--;
		}
		if (match) {
			value[out] = '\0';
			return 1;
		}
	}
	return 0;
}

/* ---- options ---- */

static const char usage_text[] =
	"usage: sasl-peer-{cyrus,gsasl} --role client|server --unix PATH [options]\n"
	"  --mech LIST            server: mechanisms to offer (comma-separated); client: the one to use\n"
	"  --user U --pass P      credentials (client) / the one account (server)\n"
	"  --authzid Z            authorization identity (client)\n"
	"  --realm R              DIGEST-MD5 realm\n"
	"  --service S --host H   digest-uri S/H (default nbd/localhost)\n"
	"  --qop LIST             DIGEST-MD5 qops to allow: auth,auth-int,auth-conf (default auth)\n"
	"  --cipher des|3des      auth-conf cipher (Cyrus; default des)\n"
	"  --maxbuf N             security-layer maxbuf to advertise (17..16777215)\n"
	"  --tls-client CAFILE | --tls-server CERT KEY | --tls-psk IDENTITY:HEXKEY\n"
	"  --cb tls-exporter|tls-server-end-point\n"
	"  --send N               write N bytes through the layer, read them back, compare\n"
	"  --echo N               read N bytes through the layer, write them back\n"
	"  --timeout SEC          overall deadline (default 30)\n"
	"  --workdir DIR          where Cyrus creates its sasldb (default: temporary)\n"
	"  --trace                log every frame to stderr\n";

static void usage_fail(const char *fmt, const char *arg)
{
	fflush(stdout);
	fputs("sasl-peer: error: usage: ", stderr);
	fprintf(stderr, fmt, arg);
	fputc('\n', stderr);
	fputs(usage_text, stderr);
	exit(PEER_EXIT_USAGE);
}

static long parse_number(const char *s, long min, long max, const char *opt)
{
	char *end;
	errno = 0;
	long v = strtol(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0' || v < min || v > max)
		usage_fail("bad number for %s", opt);
	return v;
}

static int mech_name_ok(const char *p, size_t n)
{
	if (n < 1 || n > PEER_MECH_NAME_MAX)
		return 0;
	for (size_t i = 0; i < n; i++) {
		char c = p[i];
		if (!((c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_'))
			return 0;
	}
	return 1;
}

static void parse_mech_list(struct peer_opts *o)
{
	const char *p = o->mech;
	size_t out = 0;

	for (;;) {
		const char *comma = strchr(p, ',');
		size_t n = comma ? (size_t)(comma - p) : strlen(p);
		if (!mech_name_ok(p, n))
			usage_fail("bad mechanism name in --mech %s (1-20 of A-Z 0-9 - _)", o->mech);
		if (out + (out ? 1 : 0) + n > PEER_MECHS_MAX)
			usage_fail("--mech %s: the MECHS list exceeds 256 bytes", o->mech);
		if (out)
			o->mech_list[out++] = ' ';
		memcpy(o->mech_list + out, p, n);
		out += n;
		if (!comma)
			break;
		p = comma + 1;
	}
	o->mech_list[out] = '\0';
}

static unsigned parse_qops(const char *s)
{
	unsigned q = 0;
	const char *p = s;

	for (;;) {
		const char *comma = strchr(p, ',');
		size_t n = comma ? (size_t)(comma - p) : strlen(p);
		if (n == 4 && strncmp(p, "auth", 4) == 0)
			q |= QOP_AUTH;
		else if (n == 8 && strncmp(p, "auth-int", 8) == 0)
			q |= QOP_AUTH_INT;
		else if (n == 9 && strncmp(p, "auth-conf", 9) == 0)
			q |= QOP_AUTH_CONF;
		else
			usage_fail("bad --qop %s (auth, auth-int, auth-conf)", s);
		if (!comma)
			break;
		p = comma + 1;
	}
	return q;
}

void peer_parse_args(int argc, char **argv, struct peer_opts *o)
{
	memset(o, 0, sizeof *o);
	o->service = "nbd";
	o->host = "localhost";
	o->qops = QOP_AUTH;
	o->maxbuf = PEER_MAXBUF_DEFAULT;
	o->echo = -1;
	o->send = -1;
	o->timeout = 30;

	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
#define NEXT() (i + 1 < argc ? argv[++i] : (usage_fail("%s needs an argument", a), ""))
		if (strcmp(a, "--role") == 0) {
			const char *v = NEXT();
			if (strcmp(v, "client") == 0)
				o->role = ROLE_CLIENT;
			else if (strcmp(v, "server") == 0)
				o->role = ROLE_SERVER;
			else
				usage_fail("bad --role %s", v);
		} else if (strcmp(a, "--unix") == 0) {
			o->unix_path = NEXT();
		} else if (strcmp(a, "--mech") == 0) {
			o->mech = NEXT();
		} else if (strcmp(a, "--user") == 0) {
			o->user = NEXT();
		} else if (strcmp(a, "--pass") == 0) {
			o->pass = NEXT();
		} else if (strcmp(a, "--authzid") == 0) {
			o->authzid = NEXT();
		} else if (strcmp(a, "--realm") == 0) {
			o->realm = NEXT();
		} else if (strcmp(a, "--service") == 0) {
			o->service = NEXT();
		} else if (strcmp(a, "--host") == 0) {
			o->host = NEXT();
		} else if (strcmp(a, "--qop") == 0) {
			o->qops = parse_qops(NEXT());
		} else if (strcmp(a, "--cipher") == 0) {
			o->cipher = NEXT();
			if (strcmp(o->cipher, "des") != 0 && strcmp(o->cipher, "3des") != 0)
				usage_fail("bad --cipher %s (des, 3des)", o->cipher);
		} else if (strcmp(a, "--maxbuf") == 0) {
			o->maxbuf = (unsigned)parse_number(NEXT(), PEER_MAXBUF_MIN, PEER_MAXBUF_MAX, a);
			o->maxbuf_set = 1;
		} else if (strcmp(a, "--tls-client") == 0) {
			o->tls_ca = NEXT();
		} else if (strcmp(a, "--tls-server") == 0) {
			o->tls_cert = NEXT();
			o->tls_key = NEXT();
		} else if (strcmp(a, "--tls-psk") == 0) {
			o->tls_psk = NEXT();
			if (strchr(o->tls_psk, ':') == NULL)
				usage_fail("--tls-psk %s: want IDENTITY:HEXKEY", o->tls_psk);
		} else if (strcmp(a, "--cb") == 0) {
			o->cb = NEXT();
			if (strcmp(o->cb, "tls-exporter") != 0 &&
			    strcmp(o->cb, "tls-server-end-point") != 0)
				usage_fail("bad --cb %s (tls-exporter, tls-server-end-point)", o->cb);
		} else if (strcmp(a, "--echo") == 0) {
			o->echo = parse_number(NEXT(), 0, 1L << 30, a);
		} else if (strcmp(a, "--send") == 0) {
			o->send = parse_number(NEXT(), 0, 1L << 30, a);
		} else if (strcmp(a, "--timeout") == 0) {
			o->timeout = (unsigned)parse_number(NEXT(), 1, 86400, a);
		} else if (strcmp(a, "--workdir") == 0) {
			o->workdir = NEXT();
		} else if (strcmp(a, "--trace") == 0) {
			o->trace = 1;
		} else if (strcmp(a, "--help") == 0) {
			fputs(usage_text, stdout);
			exit(PEER_EXIT_OK);
		} else {
			usage_fail("unknown option %s", a);
		}
#undef NEXT
	}

	if (o->role == ROLE_NONE)
		usage_fail("%s", "--role client|server is required");
	if (o->unix_path == NULL)
		usage_fail("%s", "--unix PATH is required");
	if (o->mech == NULL)
		usage_fail("%s", "--mech is required");
	parse_mech_list(o);
	if (o->role == ROLE_CLIENT && strchr(o->mech, ',') != NULL)
		usage_fail("client --mech %s: give exactly one mechanism", o->mech);
	if (o->user == NULL || o->pass == NULL)
		usage_fail("%s", "--user and --pass are required");
	if (o->tls_ca != NULL && o->role != ROLE_CLIENT)
		usage_fail("%s", "--tls-client is for --role client");
	if (o->tls_cert != NULL && o->role != ROLE_SERVER)
		usage_fail("%s", "--tls-server is for --role server");
	if (o->tls_psk != NULL && (o->tls_ca != NULL || o->tls_cert != NULL))
		usage_fail("%s", "--tls-psk excludes certificates");
	if (o->cb != NULL && o->tls_ca == NULL && o->tls_cert == NULL && o->tls_psk == NULL)
		usage_fail("--cb %s needs TLS", o->cb);
	if (o->cb != NULL && o->tls_psk != NULL && strcmp(o->cb, "tls-server-end-point") == 0)
		usage_fail("%s", "--cb tls-server-end-point needs a certificate, not --tls-psk");
	if (o->cipher != NULL && !(o->qops & QOP_AUTH_CONF))
		usage_fail("%s", "--cipher needs --qop with auth-conf");
}

/* ---- transport ---- */

static void tls_check(int rc, const char *what)
{
	if (rc < 0)
		peer_fail(PEER_EXIT_USAGE, "tls: %s: %s", what, gnutls_strerror(rc));
}

static int psk_server_key(gnutls_session_t s, const char *username, gnutls_datum_t *key)
{
	const char *spec = gnutls_session_get_ptr(s);
	const char *colon = strchr(spec, ':');
	gnutls_datum_t hex;

	if ((size_t)(colon - spec) != strlen(username) ||
	    strncmp(spec, username, (size_t)(colon - spec)) != 0)
		return -1;
	hex.data = (unsigned char *)(colon + 1);
	hex.size = (unsigned)strlen(colon + 1);
	return gnutls_hex_decode2(&hex, key) < 0 ? -1 : 0;
}

static void tls_handshake(const struct peer_opts *o, struct peer_io *io)
{
	int server = o->role == ROLE_SERVER;
	int rc;

	tls_check(gnutls_init(&io->tls, server ? GNUTLS_SERVER : GNUTLS_CLIENT), "init");
	if (o->tls_psk != NULL) {
		const char *colon = strchr(o->tls_psk, ':');
		tls_check(gnutls_priority_set_direct(io->tls,
			"NORMAL:-VERS-ALL:+VERS-TLS1.3:+ECDHE-PSK:+DHE-PSK:+PSK", NULL), "priority");
		if (server) {
			tls_check(gnutls_psk_allocate_server_credentials(&io->psk_server), "psk");
			gnutls_psk_set_server_credentials_function(io->psk_server, psk_server_key);
			gnutls_session_set_ptr(io->tls, (void *)o->tls_psk);
			tls_check(gnutls_credentials_set(io->tls, GNUTLS_CRD_PSK, io->psk_server),
				  "credentials");
		} else {
			char identity[256];
			size_t n = (size_t)(colon - o->tls_psk);
			if (n >= sizeof identity)
				peer_fail(PEER_EXIT_USAGE, "tls: PSK identity too long");
			memcpy(identity, o->tls_psk, n);
			identity[n] = '\0';
			gnutls_datum_t key = { (unsigned char *)(colon + 1),
					       (unsigned)strlen(colon + 1) };
			tls_check(gnutls_psk_allocate_client_credentials(&io->psk_client), "psk");
			tls_check(gnutls_psk_set_client_credentials(io->psk_client, identity, &key,
								    GNUTLS_PSK_KEY_HEX), "psk key");
			tls_check(gnutls_credentials_set(io->tls, GNUTLS_CRD_PSK, io->psk_client),
				  "credentials");
		}
	} else {
		tls_check(gnutls_priority_set_direct(io->tls, "NORMAL:-VERS-ALL:+VERS-TLS1.3", NULL),
			  "priority");
		tls_check(gnutls_certificate_allocate_credentials(&io->x509), "credentials");
		if (server) {
			tls_check(gnutls_certificate_set_x509_key_file(io->x509, o->tls_cert, o->tls_key,
								       GNUTLS_X509_FMT_PEM),
				  "server certificate and key");
		} else {
			rc = gnutls_certificate_set_x509_trust_file(io->x509, o->tls_ca,
								    GNUTLS_X509_FMT_PEM);
			if (rc <= 0)
				peer_fail(PEER_EXIT_USAGE, "tls: CA file %s: %s", o->tls_ca,
					  rc < 0 ? gnutls_strerror(rc) : "no certificates");
			tls_check(gnutls_server_name_set(io->tls, GNUTLS_NAME_DNS, o->host,
							 strlen(o->host)), "server name");
			gnutls_session_set_verify_cert(io->tls, o->host, 0);
		}
		tls_check(gnutls_credentials_set(io->tls, GNUTLS_CRD_CERTIFICATE, io->x509),
			  "credentials");
	}
	gnutls_transport_set_int(io->tls, io->fd);
	do {
		rc = gnutls_handshake(io->tls);
	} while (rc < 0 && gnutls_error_is_fatal(rc) == 0);
	if (rc < 0) {
		if (rc == GNUTLS_E_CERTIFICATE_VERIFICATION_ERROR) {
			gnutls_datum_t txt;
			unsigned status = gnutls_session_get_verify_cert_status(io->tls);
			gnutls_certificate_verification_status_print(
				status, gnutls_certificate_type_get(io->tls), &txt, 0);
			peer_fail(PEER_EXIT_AUTH, "tls: handshake: %s", (const char *)txt.data);
		}
		peer_fail(PEER_EXIT_AUTH, "tls: handshake: %s", gnutls_strerror(rc));
	}
	char *desc = gnutls_session_get_desc(io->tls);
	peer_trace(io, "tls handshake done: %s", desc ? desc : "?");
	gnutls_free(desc);
}

void peer_connect(const struct peer_opts *o, struct peer_io *io)
{
	struct sockaddr_un sa;

	memset(io, 0, sizeof *io);
	io->trace = o->trace;
	if (strlen(o->unix_path) >= sizeof sa.sun_path)
		peer_fail(PEER_EXIT_USAGE, "connect: socket path too long: %s", o->unix_path);
	io->fd = socket(AF_UNIX, SOCK_STREAM, 0);
	if (io->fd < 0)
		peer_fail(PEER_EXIT_USAGE, "socket: %s", strerror(errno));
	memset(&sa, 0, sizeof sa);
	sa.sun_family = AF_UNIX;
	strcpy(sa.sun_path, o->unix_path);
	if (connect(io->fd, (struct sockaddr *)&sa, sizeof sa) != 0)
		peer_fail(PEER_EXIT_USAGE, "connect %s: %s", o->unix_path, strerror(errno));
	if (o->tls_ca != NULL || o->tls_cert != NULL || o->tls_psk != NULL)
		tls_handshake(o, io);
}

void peer_channel_binding(const struct peer_opts *o, struct peer_io *io, gnutls_datum_t *cb)
{
	gnutls_channel_binding_t type = strcmp(o->cb, "tls-exporter") == 0
		? GNUTLS_CB_TLS_EXPORTER : GNUTLS_CB_TLS_SERVER_END_POINT;
	int rc = gnutls_session_channel_binding(io->tls, type, cb);
	if (rc < 0)
		peer_fail(PEER_EXIT_USAGE, "tls: channel binding %s: %s", o->cb, gnutls_strerror(rc));
	peer_trace(io, "channel binding %s: %u bytes", o->cb, cb->size);
}

static void io_write_all(struct peer_io *io, const void *p, size_t n)
{
	const unsigned char *b = p;

	while (n > 0) {
		ssize_t w;
		if (io->tls != NULL) {
			w = gnutls_record_send(io->tls, b, n);
			if (w == GNUTLS_E_AGAIN || w == GNUTLS_E_INTERRUPTED)
				continue;
			if (w < 0)
				peer_fail(PEER_EXIT_PROTO, "write: tls: %s", gnutls_strerror((int)w));
		} else {
			w = send(io->fd, b, n, MSG_NOSIGNAL);
			if (w < 0 && errno == EINTR)
				continue;
			if (w < 0)
				peer_fail(PEER_EXIT_PROTO, "write: %s", strerror(errno));
		}
		b += w;
		n -= (size_t)w;
	}
}

static void io_read_exact(struct peer_io *io, void *p, size_t n, const char *what)
{
	unsigned char *b = p;

	while (n > 0) {
		ssize_t r;
		if (io->tls != NULL) {
			r = gnutls_record_recv(io->tls, b, n);
			if (r == GNUTLS_E_AGAIN || r == GNUTLS_E_INTERRUPTED)
				continue;
			if (r < 0)
				peer_fail(PEER_EXIT_PROTO, "read %s: tls: %s", what,
					  gnutls_strerror((int)r));
		} else {
			r = read(io->fd, b, n);
			if (r < 0 && errno == EINTR)
				continue;
			if (r < 0)
				peer_fail(PEER_EXIT_PROTO, "read %s: %s", what, strerror(errno));
		}
		if (r == 0)
			peer_fail(PEER_EXIT_PROTO, "read %s: the peer closed the connection", what);
		b += r;
		n -= (size_t)r;
	}
}

static void io_close(struct peer_io *io)
{
	if (io->tls != NULL) {
		gnutls_bye(io->tls, GNUTLS_SHUT_WR);
		gnutls_deinit(io->tls);
		io->tls = NULL;
	}
	close(io->fd);
	io->fd = -1;
	if (io->x509)
		gnutls_certificate_free_credentials(io->x509);
	if (io->psk_client)
		gnutls_psk_free_client_credentials(io->psk_client);
	if (io->psk_server)
		gnutls_psk_free_server_credentials(io->psk_server);
}

/* ---- frames ---- */

static const char *frame_name(unsigned type)
{
	static const char *const names[] = { "?", "MECHS", "START", "CHALLENGE",
					     "RESPONSE", "OUTCOME", "ABORT" };
	return type >= 1 && type <= 6 ? names[type] : "unknown";
}

static size_t frame_bound(unsigned type)
{
	switch (type) {
	case FRAME_MECHS: return PEER_MECHS_MAX;
	case FRAME_START: return PEER_START_MAX;
	case FRAME_CHALLENGE: return PEER_TOKEN_MAX;
	case FRAME_RESPONSE: return PEER_TOKEN_MAX;
	case FRAME_OUTCOME: return PEER_OUTCOME_MAX;
	default: return 0;
	}
}

/* Printable rendering for --trace and error messages. */
static const char *escape(const unsigned char *p, size_t n, char *out, size_t out_size)
{
	size_t o = 0;
	for (size_t i = 0; i < n && o + 5 < out_size; i++) {
		if (p[i] >= 0x20 && p[i] < 0x7f && p[i] != '\\')
			out[o++] = (char)p[i];
		else
			o += (size_t)snprintf(out + o, out_size - o, "\\x%02x", p[i]);
	}
	out[o] = '\0';
	return out;
}

static void frame_send(struct peer_io *io, unsigned type, const void *body, size_t len)
{
	unsigned char hdr[3];

	if (len > frame_bound(type))
		peer_fail(PEER_EXIT_PROTO, "send %s: %zu bytes exceed its bound of %zu",
			  frame_name(type), len, frame_bound(type));
	if (io->trace) {
		static char esc[4 * PEER_FRAME_BODY_MAX + 8];
		peer_trace(io, "> %s %zu: %s", frame_name(type), len,
			   escape(body, len, esc, sizeof esc));
	}
	hdr[0] = (unsigned char)type;
	hdr[1] = (unsigned char)(len >> 8);
	hdr[2] = (unsigned char)len;
	io_write_all(io, hdr, 3);
	if (len > 0)
		io_write_all(io, body, len);
}

#define ALLOW(t) (1u << (t))

/* Reads exactly one frame; checks type, order and bound before the body. */
static unsigned frame_recv(struct peer_io *io, unsigned allowed, unsigned char *body, size_t *len)
{
	unsigned char hdr[3];

	io_read_exact(io, hdr, 3, "frame header");
	unsigned type = hdr[0];
	size_t blen = (size_t)hdr[1] << 8 | hdr[2];
	if (type < FRAME_MECHS || type > FRAME_ABORT)
		peer_fail(PEER_EXIT_PROTO, "frame: unknown type 0x%02x", type);
	if (!(allowed & ALLOW(type)))
		peer_fail(PEER_EXIT_PROTO, "frame: unexpected %s here (out of order)",
			  frame_name(type));
	if (blen > frame_bound(type))
		peer_fail(PEER_EXIT_PROTO, "frame: %s of %zu bytes exceeds its bound of %zu",
			  frame_name(type), blen, frame_bound(type));
	io_read_exact(io, body, blen, frame_name(type));
	*len = blen;
	if (io->trace) {
		static char esc[4 * PEER_FRAME_BODY_MAX + 8];
		peer_trace(io, "< %s %zu: %s", frame_name(type), blen,
			   escape(body, blen, esc, sizeof esc));
	}
	return type;
}

static int mechs_valid(const unsigned char *p, size_t n)
{
	size_t start = 0;
	if (n == 0)
		return 0;
	for (size_t i = 0; i <= n; i++) {
		if (i == n || p[i] == ' ') {
			if (!mech_name_ok((const char *)p + start, i - start))
				return 0;
			start = i + 1;
		}
	}
	return 1;
}

static int mechs_contain(const char *list, const char *mech)
{
	size_t n = strlen(mech);
	const char *p = list;
	while (*p) {
		const char *sp = strchr(p, ' ');
		size_t len = sp ? (size_t)(sp - p) : strlen(p);
		if (len == n && strncmp(p, mech, n) == 0)
			return 1;
		p += len;
		if (*p == ' ')
			p++;
	}
	return 0;
}

/* A failure reason fit for OUTCOME: printable ASCII, at most 128 bytes. */
static size_t make_reason(const char *msg, char *out)
{
	size_t n = 0;
	for (; msg != NULL && msg[n] != '\0' && n < PEER_REASON_MAX; n++)
		out[n] = (msg[n] >= 0x20 && msg[n] < 0x7f) ? msg[n] : '?';
	if (n == 0) {
		strcpy(out, "authentication failed");
		n = strlen(out);
	}
	return n;
}

static void server_outcome_fail(struct peer_io *io, const char *what, const char *msg)
{
	unsigned char body[1 + PEER_REASON_MAX + 1];
	body[0] = 1;
	size_t n = make_reason(msg, (char *)body + 1);
	frame_send(io, FRAME_OUTCOME, body, 1 + n);
	peer_fail(PEER_EXIT_AUTH, "%s: %s", what, msg ? msg : "authentication failed");
}

static void run_server(const struct peer_opts *o, struct peer_io *io,
		       const struct peer_sasl_ops *ops, void *lib, struct peer_auth_report *r)
{
	static unsigned char body[PEER_FRAME_BODY_MAX];
	static struct peer_token out;
	size_t len;
	enum peer_step st;

	frame_send(io, FRAME_MECHS, o->mech_list, strlen(o->mech_list));
	unsigned type = frame_recv(io, ALLOW(FRAME_START) | ALLOW(FRAME_ABORT), body, &len);
	if (type == FRAME_ABORT)
		peer_fail(PEER_EXIT_AUTH, "exchange: the client sent ABORT");

	/* START: name length, name, flag, initial response. */
	if (len < 2 || body[0] < 1 || body[0] > PEER_MECH_NAME_MAX || len < 2u + body[0])
		peer_fail(PEER_EXIT_PROTO, "START: malformed (%zu bytes)", len);
	size_t nlen = body[0];
	char mech[PEER_MECH_NAME_MAX + 1];
	memcpy(mech, body + 1, nlen);
	mech[nlen] = '\0';
	if (!mech_name_ok(mech, nlen))
		peer_fail(PEER_EXIT_PROTO, "START: bad mechanism name");
	unsigned flag = body[1 + nlen];
	size_t irlen = len - 2 - nlen;
	if (flag > 1 || (flag == 0 && irlen > 0))
		peer_fail(PEER_EXIT_PROTO, "START: bad initial-response flag %u with %zu bytes",
			  flag, irlen);
	if (irlen > PEER_TOKEN_MAX)
		peer_fail(PEER_EXIT_PROTO, "START: initial response of %zu bytes exceeds 4096",
			  irlen);
	if (!mechs_contain(o->mech_list, mech))
		server_outcome_fail(io, "START", "mechanism not offered");
	strcpy(r->mech, mech);

	memset(&out, 0, sizeof out);
	st = ops->server_start(lib, mech, body + 2 + nlen, irlen, (int)flag, &out);
	for (unsigned rounds = 0;; rounds++) {
		if (st == STEP_FAIL)
			server_outcome_fail(io, "server step", ops->error(lib));
		if (st == STEP_DONE) {
			unsigned char ok[PEER_OUTCOME_MAX];
			ok[0] = 0;
			memcpy(ok + 1, out.data, out.len);
			frame_send(io, FRAME_OUTCOME, ok, 1 + out.len);
			return;
		}
		if (rounds >= PEER_ROUNDS_MAX)
			server_outcome_fail(io, "exchange", "more than 8 round trips");
		frame_send(io, FRAME_CHALLENGE, out.data, out.len);
		type = frame_recv(io, ALLOW(FRAME_RESPONSE) | ALLOW(FRAME_ABORT), body, &len);
		if (type == FRAME_ABORT)
			peer_fail(PEER_EXIT_AUTH, "exchange: the client sent ABORT");
		memset(&out, 0, sizeof out);
		st = ops->server_step(lib, body, len, &out);
	}
}

static void client_abort(struct peer_io *io, const char *what, const char *msg)
{
	frame_send(io, FRAME_ABORT, NULL, 0);
	peer_fail(PEER_EXIT_AUTH, "%s: %s", what, msg ? msg : "failed");
}

static void run_client(const struct peer_opts *o, struct peer_io *io,
		       const struct peer_sasl_ops *ops, void *lib, struct peer_auth_report *r)
{
	static unsigned char body[PEER_FRAME_BODY_MAX];
	static struct peer_token out;
	size_t len;
	char esc[4 * PEER_REASON_MAX + 8];

	frame_recv(io, ALLOW(FRAME_MECHS), body, &len);
	if (!mechs_valid(body, len))
		peer_fail(PEER_EXIT_PROTO, "MECHS: malformed list \"%s\"",
			  escape(body, len < 64 ? len : 64, esc, sizeof esc));
	char offered[PEER_MECHS_MAX + 1];
	memcpy(offered, body, len);
	offered[len] = '\0';
	if (!mechs_contain(offered, o->mech))
		client_abort(io, "MECHS", "the server does not offer the mechanism");

	strcpy(r->mech, o->mech);
	memset(&out, 0, sizeof out);
	enum peer_step st = ops->client_start(lib, o->mech, &out);
	if (st == STEP_FAIL) {
		/* The library refused our configuration: a setup error, but tell the server. */
		frame_send(io, FRAME_ABORT, NULL, 0);
		peer_fail(PEER_EXIT_USAGE, "client start %s: %s", o->mech, ops->error(lib));
	}

	unsigned char start[PEER_START_MAX];
	size_t nlen = strlen(o->mech);
	start[0] = (unsigned char)nlen;
	memcpy(start + 1, o->mech, nlen);
	start[1 + nlen] = out.present ? 1 : 0;
	memcpy(start + 2 + nlen, out.data, out.len);
	frame_send(io, FRAME_START, start, 2 + nlen + out.len);

	int done = st == STEP_DONE;
	for (unsigned rounds = 0;; rounds++) {
		unsigned type = frame_recv(io, ALLOW(FRAME_CHALLENGE) | ALLOW(FRAME_OUTCOME),
					   body, &len);
		if (type == FRAME_OUTCOME) {
			if (len < 1 || body[0] > 1)
				peer_fail(PEER_EXIT_PROTO, "OUTCOME: bad status");
			if (body[0] == 1) {
				if (len - 1 > PEER_REASON_MAX)
					peer_fail(PEER_EXIT_PROTO,
						  "OUTCOME: reason of %zu bytes exceeds 128", len - 1);
				peer_fail(PEER_EXIT_AUTH, "server refused: %s",
					  escape(body + 1, len - 1, esc, sizeof esc));
			}
			if (len > 1) {
				/* Mutual authentication: the library must accept the final data. */
				memset(&out, 0, sizeof out);
				st = ops->client_step(lib, body + 1, len - 1, &out);
				if (st == STEP_FAIL)
					peer_fail(PEER_EXIT_AUTH,
						  "final server data rejected: %s", ops->error(lib));
				if (st != STEP_DONE)
					peer_fail(PEER_EXIT_AUTH, "final server data: the library "
						  "is not complete after it");
				if (out.present && out.len > 0)
					peer_fail(PEER_EXIT_AUTH, "final server data: the library "
						  "wants to send %zu more bytes", out.len);
			} else if (!done) {
				peer_fail(PEER_EXIT_AUTH, "OUTCOME success without data, but the "
					  "library is not complete (no mutual authentication)");
			}
			return;
		}
		if (rounds >= PEER_ROUNDS_MAX)
			peer_fail(PEER_EXIT_PROTO, "exchange: more than 8 round trips");
		memset(&out, 0, sizeof out);
		st = ops->client_step(lib, body, len, &out);
		if (st == STEP_FAIL)
			client_abort(io, "client step", ops->error(lib));
		done = st == STEP_DONE;
		frame_send(io, FRAME_RESPONSE, out.data, out.len);
	}
}

void peer_authenticate(const struct peer_opts *o, struct peer_io *io,
		       const struct peer_sasl_ops *ops, void *lib, struct peer_auth_report *r)
{
	memset(r, 0, sizeof *r);
	if (o->role == ROLE_SERVER)
		run_server(o, io, ops, lib, r);
	else
		run_client(o, io, ops, lib, r);
	ops->report(lib, r);
}

/* ---- data phase ---- */

static void layer_send(struct peer_io *io, const struct peer_sasl_ops *ops, void *lib,
		       const struct peer_auth_report *r, const unsigned char *p, size_t n)
{
	if (!r->layer) {
		io_write_all(io, p, n);
		return;
	}
	struct peer_buf enc = { 0 };
	while (n > 0) {
		size_t chunk = n < r->out_chunk ? n : r->out_chunk;
		enc.len = 0;
		if (ops->encode(lib, p, chunk, &enc) != 0)
			peer_fail(PEER_EXIT_PROTO, "encode: %s", ops->error(lib));
		io_write_all(io, enc.data, enc.len);
		p += chunk;
		n -= chunk;
	}
	peer_buf_free(&enc);
}

static void layer_recv(struct peer_io *io, const struct peer_sasl_ops *ops, void *lib,
		       const struct peer_auth_report *r, unsigned char *dst, size_t n)
{
	if (!r->layer) {
		io_read_exact(io, dst, n, "application data");
		return;
	}
	struct peer_buf frame = { 0 }, dec = { 0 };
	size_t got = 0, frames = 0;
	while (got < n) {
		unsigned char hdr[4];
		io_read_exact(io, hdr, 4, "security-layer frame length");
		size_t flen = (size_t)hdr[0] << 24 | (size_t)hdr[1] << 16 | (size_t)hdr[2] << 8 | hdr[3];
		if (flen == 0 || flen > r->in_max)
			peer_fail(PEER_EXIT_PROTO, "security layer: frame of %zu bytes (our maxbuf %zu)",
				  flen, r->in_max);
		frame.len = 0;
		peer_buf_append(&frame, hdr, 4);
		peer_buf_append(&frame, NULL, flen);
		io_read_exact(io, frame.data + 4, flen, "security-layer frame");
		dec.len = 0;
		if (ops->decode(lib, frame.data, frame.len, &dec) != 0)
			peer_fail(PEER_EXIT_PROTO, "decode frame %zu: %s", frames, ops->error(lib));
		if (dec.len > n - got)
			peer_fail(PEER_EXIT_PROTO, "security layer: the peer sent more than %zu bytes", n);
		memcpy(dst + got, dec.data, dec.len);
		got += dec.len;
		frames++;
	}
	peer_trace(io, "received %zu bytes in %zu security-layer frames", n, frames);
	peer_buf_free(&frame);
	peer_buf_free(&dec);
}

void peer_data_phase(const struct peer_opts *o, struct peer_io *io,
		     const struct peer_sasl_ops *ops, void *lib,
		     const struct peer_auth_report *r)
{
	printf("sasl-peer: ok mech=%s user=%s ssf=%u maxbuf=%u\n", r->mech, r->user, r->ssf,
	       r->maxbuf);
	fflush(stdout);

	if (o->send >= 0) {
		size_t n = (size_t)o->send;
		unsigned char *pattern = malloc(n ? n : 1), *back = malloc(n ? n : 1);
		if (pattern == NULL || back == NULL)
			peer_fail(PEER_EXIT_USAGE, "out of memory");
		for (size_t i = 0; i < n; i++)
			pattern[i] = (unsigned char)((i * 2654435761u) >> 13 ^ i);
		layer_send(io, ops, lib, r, pattern, n);
		layer_recv(io, ops, lib, r, back, n);
		for (size_t i = 0; i < n; i++)
			if (back[i] != pattern[i])
				peer_fail(PEER_EXIT_PROTO, "send: echoed data differs at offset %zu", i);
		printf("sasl-peer: sent and verified %zu bytes\n", n);
		fflush(stdout);
		free(pattern);
		free(back);
	}
	if (o->echo >= 0) {
		/* Read everything first: a peer that writes all before reading cannot deadlock. */
		size_t n = (size_t)o->echo;
		unsigned char *data = malloc(n ? n : 1);
		if (data == NULL)
			peer_fail(PEER_EXIT_USAGE, "out of memory");
		layer_recv(io, ops, lib, r, data, n);
		layer_send(io, ops, lib, r, data, n);
		printf("sasl-peer: echoed %zu bytes\n", n);
		fflush(stdout);
		free(data);
	}
	io_close(io);
}
