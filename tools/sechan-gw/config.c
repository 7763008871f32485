/* sechan-gw's configuration and credentials files. Both are read as
 * hostile text: bounded lines, every field checked, line numbers in the
 * messages. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <mbedtls/base64.h>

#include "gw.h"
#include "sechan/port.h"

/* Split line into at most max words (in place); returns the count, or -1
 * for too many. A '#' starts a comment. */
static int split(char *line, char **words, int max)
{
    int n = 0;
    char *p = line;
    for (;;) {
        while (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n')
            p++;
        if (*p == '\0' || *p == '#')
            return n;
        if (n == max)
            return -1;
        words[n++] = p;
        while (*p != '\0' && *p != ' ' && *p != '\t' && *p != '\r' && *p != '\n')
            p++;
        if (*p == '\0')
            return n;
        *p++ = '\0';
    }
}

/* Read one line into buf; 1 a line, 0 end of file, -1 a line too long. */
static int read_line(FILE *f, char *buf, size_t cap)
{
    if (fgets(buf, (int)cap, f) == NULL)
        return 0;
    size_t n = strlen(buf);
    if (n == cap - 1 && buf[n - 1] != '\n' && !feof(f))
        return -1;
    return 1;
}

int gw_parse_addr(struct gw_addr *a, const char *text)
{
    memset(a, 0, sizeof(*a));
    if (strncmp(text, "unix:", 5) == 0) {
        a->is_unix = true;
        size_t n = strlen(text + 5);
        if (n == 0 || n >= sizeof(a->host) || n >= 108)
            return -1;
        memcpy(a->host, text + 5, n + 1);
        return 0;
    }
    if (strncmp(text, "tcp:", 4) != 0)
        return -1;
    const char *hp = text + 4;
    const char *colon = strrchr(hp, ':');
    if (colon == NULL || colon == hp || (size_t)(colon - hp) >= sizeof(a->host))
        return -1;
    char *end = NULL;
    errno = 0;
    unsigned long port = strtoul(colon + 1, &end, 10);
    if (errno != 0 || *end != '\0' || colon[1] == '\0' || port > 65535)
        return -1;
    size_t hl = (size_t)(colon - hp);
    if (hp[0] == '[' && hl >= 2 && hp[hl - 1] == ']') {  /* [::1] */
        hp++;
        hl -= 2;
    }
    memcpy(a->host, hp, hl);
    a->host[hl] = '\0';
    a->port = (uint16_t)port;
    return 0;
}

static int yes_no(const char *v, bool *out)
{
    if (strcmp(v, "yes") == 0 || strcmp(v, "true") == 0)
        *out = true;
    else if (strcmp(v, "no") == 0 || strcmp(v, "false") == 0)
        *out = false;
    else
        return -1;
    return 0;
}

static int bounded_uint(const char *v, unsigned lo, unsigned hi, unsigned *out)
{
    char *end = NULL;
    errno = 0;
    unsigned long x = strtoul(v, &end, 10);
    if (errno != 0 || *end != '\0' || v[0] == '\0' || x < lo || x > hi)
        return -1;
    *out = (unsigned)x;
    return 0;
}

static int copy_word(char *dst, size_t cap, const char *src)
{
    size_t n = strlen(src);
    if (n >= cap)
        return -1;
    memcpy(dst, src, n + 1);
    return 0;
}

/* One "key value..." line; NULL on success, else what is wrong. */
static const char *config_line(struct gw_config *cfg, char **w, int n, bool *have_listen)
{
    const char *k = w[0];
    if (strcmp(k, "listen") == 0 || strcmp(k, "connect") == 0) {
        if (n != 2 || gw_parse_addr(&cfg->listen, w[1]) != 0)
            return "expected: listen|connect tcp:HOST:PORT|unix:PATH";
        cfg->connect_mode = k[0] == 'c';
        *have_listen = true;
    } else if (strcmp(k, "tls") == 0) {
        if (n == 2 && strcmp(w[1], "off") == 0)
            cfg->tls = GW_TLS_OFF;
        else if (n == 3 && (strcmp(w[1], "x509") == 0 || strcmp(w[1], "psk") == 0) &&
                 copy_word(cfg->tls_path, sizeof(cfg->tls_path), w[2]) == 0)
            cfg->tls = w[1][0] == 'x' ? GW_TLS_X509 : GW_TLS_PSK;
        else
            return "expected: tls off | tls x509 DIR | tls psk FILE";
    } else if (strcmp(k, "tls-verify-client") == 0) {
        if (n != 2 || yes_no(w[1], &cfg->tls_verify_client) != 0)
            return "expected: tls-verify-client yes|no";
    } else if (strcmp(k, "sasl") == 0) {
        if (n != 2 || (strcmp(w[1], "required") != 0 && strcmp(w[1], "off") != 0))
            return "expected: sasl required|off";
        cfg->sasl = w[1][0] == 'r';
    } else if (strcmp(k, "sasl-mechs") == 0) {
        if (n < 2 || n - 1 > SC_SASL_MECH_COUNT)
            return "expected: sasl-mechs NAME... (SCRAM-SHA-256-PLUS SCRAM-SHA-1-PLUS "
                   "SCRAM-SHA-256 SCRAM-SHA-1 DIGEST-MD5)";
        cfg->mech_count = 0;
        for (int i = 1; i < n; i++) {
            int m = sc_sasl_mech_lookup(w[i], strlen(w[i]));
            if (m < 0)
                return "unknown mechanism (PLAIN and the like are never offered)";
            cfg->mechs[cfg->mech_count++] = (enum sc_sasl_mech)m;
        }
    } else if (strcmp(k, "sasl-allow-no-layer") == 0) {
        if (n != 2 || yes_no(w[1], &cfg->allow_no_layer) != 0)
            return "expected: sasl-allow-no-layer yes|no";
    } else if (strcmp(k, "sasl-qop") == 0 || strcmp(k, "sasl-ciphers") == 0) {
        bool qop = k[5] == 'q';
        unsigned bits = 0;
        for (int i = 1; i < n; i++) {
            if (qop && strcmp(w[i], "auth") == 0)
                bits |= SC_SASL_QOP_AUTH;
            else if (qop && strcmp(w[i], "auth-int") == 0)
                bits |= SC_SASL_QOP_INT;
            else if (qop && strcmp(w[i], "auth-conf") == 0)
                bits |= SC_SASL_QOP_CONF;
            else if (!qop && strcmp(w[i], "des") == 0)
                bits |= SC_SASL_CIPHER_DES;
            else if (!qop && strcmp(w[i], "3des") == 0)
                bits |= SC_SASL_CIPHER_3DES;
            else
                return qop ? "expected: sasl-qop auth|auth-int|auth-conf..."
                           : "expected: sasl-ciphers des|3des (rc4 is not offered)";
        }
        if (bits == 0)
            return "an empty list";
        *(qop ? &cfg->qop : &cfg->ciphers) = bits;
    } else if (strcmp(k, "sasl-channel-binding") == 0) {
        if (n == 2 && strcmp(w[1], "tls-exporter") == 0)
            cfg->cb = SC_SASL_CB_TLS_EXPORTER;
        else if (n == 2 && strcmp(w[1], "tls-server-end-point") == 0)
            cfg->cb = SC_SASL_CB_TLS_SERVER_END_POINT;
        else
            return "expected: sasl-channel-binding tls-exporter|tls-server-end-point";
    } else if (strcmp(k, "sasl-realm") == 0) {
        if (n != 2 || copy_word(cfg->realm, sizeof(cfg->realm), w[1]) != 0)
            return "expected: sasl-realm REALM";
    } else if (strcmp(k, "sasl-service") == 0) {
        if (n != 2 || copy_word(cfg->service, sizeof(cfg->service), w[1]) != 0)
            return "expected: sasl-service NAME";
    } else if (strcmp(k, "credentials") == 0) {
        if (n != 2 || copy_word(cfg->creds_path, sizeof(cfg->creds_path), w[1]) != 0)
            return "expected: credentials FILE";
    } else if (strcmp(k, "pool") == 0) {
        if (n != 2 || bounded_uint(w[1], 1, GW_POOL_MAX, &cfg->pool) != 0)
            return "expected: pool N (1 to 64)";
    } else if (strcmp(k, "handshake-timeout") == 0) {
        if (n != 2 || bounded_uint(w[1], 1, 600, &cfg->handshake_timeout_s) != 0)
            return "expected: handshake-timeout SECONDS (1 to 600)";
    } else if (strcmp(k, "route") == 0) {
        /* route IDENTITY... ADDR: the identity may hold spaces (a subject) */
        if (n < 3)
            return "expected: route IDENTITY tcp:HOST:PORT|unix:PATH";
        if (cfg->route_count == GW_ROUTES_MAX)
            return "too many routes";
        struct gw_route *r = &cfg->routes[cfg->route_count];
        if (gw_parse_addr(&r->backend, w[n - 1]) != 0)
            return "bad backend address (tcp:HOST:PORT or unix:PATH)";
        r->identity[0] = '\0';
        for (int i = 1; i < n - 1; i++) {
            size_t have = strlen(r->identity);
            if (have + strlen(w[i]) + 2 > sizeof(r->identity))
                return "identity too long";
            if (i > 1)
                strcat(r->identity, " ");
            strcat(r->identity, w[i]);
        }
        if (gw_route_find(cfg, r->identity) != NULL)
            return "a second route for the same identity";
        cfg->route_count++;
    } else {
        return "unknown setting";
    }
    return NULL;
}

int gw_config_load(struct gw_config *cfg, const char *path)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->pool = 8;
    cfg->handshake_timeout_s = 10;
    cfg->cb = SC_SASL_CB_TLS_EXPORTER;
    snprintf(cfg->realm, sizeof(cfg->realm), "sechan");
    snprintf(cfg->service, sizeof(cfg->service), "nbd");
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        fprintf(stderr, "sechan-gw: %s: %s\n", path, strerror(errno));
        return -1;
    }
    char line[GW_LINE_MAX];
    bool have_listen = false;
    const char *why = NULL;
    unsigned lineno = 0;
    int r;
    while ((r = read_line(f, line, sizeof(line))) != 0) {
        lineno++;
        if (r < 0) {
            why = "line too long";
            break;
        }
        char *w[16];
        int n = split(line, w, 16);
        if (n < 0) {
            why = "too many words";
            break;
        }
        if (n == 0)
            continue;
        why = config_line(cfg, w, n, &have_listen);
        if (why != NULL)
            break;
    }
    fclose(f);
    if (why == NULL && !have_listen) {
        why = "no listen or connect line";
        lineno = 0;
    }
    if (why == NULL && !cfg->sasl && cfg->tls == GW_TLS_OFF) {
        why = "neither tls nor sasl: every connection would be anonymous";
        lineno = 0;
    }
    if (why == NULL && cfg->sasl && cfg->creds_path[0] == '\0') {
        why = "sasl needs a credentials file";
        lineno = 0;
    }
    if (why != NULL) {
        fprintf(stderr, "sechan-gw: %s:%u: %s\n", path, lineno, why);
        return -1;
    }
    return 0;
}

const struct gw_route *gw_route_find(const struct gw_config *cfg, const char *identity)
{
    for (size_t i = 0; i < cfg->route_count; i++)
        if (strcmp(cfg->routes[i].identity, identity) == 0)
            return &cfg->routes[i];
    return NULL;
}

/* ---- credentials ---- */

struct gw_user {
    char name[SC_SASL_NAME_MAX + 1];
    char realm[SC_SASL_NAME_MAX + 1];
    struct sc_sasl_user_secret secret;
};

static struct gw_user users[GW_USERS_MAX];
static size_t user_count;

static struct gw_user *user_slot(const char *name)
{
    for (size_t i = 0; i < user_count; i++)
        if (strcmp(users[i].name, name) == 0)
            return &users[i];
    if (user_count == GW_USERS_MAX)
        return NULL;
    struct gw_user *u = &users[user_count++];
    memset(u, 0, sizeof(*u));
    snprintf(u->name, sizeof(u->name), "%s", name);
    return u;
}

static int b64(const char *in, uint8_t *out, size_t cap, size_t *len)
{
    return mbedtls_base64_decode(out, cap, len, (const unsigned char *)in, strlen(in)) == 0 ? 0
                                                                                           : -1;
}

static int unhex(const char *in, uint8_t *out, size_t len)
{
    if (strlen(in) != 2 * len)
        return -1;
    for (size_t i = 0; i < len; i++) {
        unsigned v = 0;
        if (sscanf(in + 2 * i, "%2x", &v) != 1)
            return -1;
        out[i] = (uint8_t)v;
    }
    return 0;
}

static const char *creds_line(char **w, int n)
{
    if (n < 2)
        return "expected: USER scram-sha-256|scram-sha-1|digest-md5 ...";
    if (strlen(w[0]) > SC_SASL_NAME_MAX)
        return "user name too long";
    struct gw_user *u = user_slot(w[0]);
    if (u == NULL)
        return "too many users";
    if (strcmp(w[1], "scram-sha-256") == 0 || strcmp(w[1], "scram-sha-1") == 0) {
        bool sha256 = strcmp(w[1], "scram-sha-256") == 0;
        struct sc_sasl_scram_secret *s = sha256 ? &u->secret.sha256 : &u->secret.sha1;
        size_t hlen = sha256 ? 32 : 20, klen = 0;
        unsigned iter = 0;
        if (n != 6 || bounded_uint(w[2], SC_SASL_ITER_MIN, SC_SASL_ITER_MAX, &iter) != 0 ||
            b64(w[3], s->salt, sizeof(s->salt), &s->salt_len) != 0 || s->salt_len == 0 ||
            b64(w[4], s->stored_key, sizeof(s->stored_key), &klen) != 0 || klen != hlen ||
            b64(w[5], s->server_key, sizeof(s->server_key), &klen) != 0 || klen != hlen)
            return "expected: USER scram-sha-* ITERATIONS SALT STOREDKEY SERVERKEY (base64)";
        s->iterations = iter;
        *(sha256 ? &u->secret.has_sha256 : &u->secret.has_sha1) = true;
    } else if (strcmp(w[1], "digest-md5") == 0) {
        if (n != 4 || strlen(w[2]) > SC_SASL_NAME_MAX ||
            unhex(w[3], u->secret.digest_ha1, 16) != 0)
            return "expected: USER digest-md5 REALM HEX(MD5(user:realm:password))";
        snprintf(u->realm, sizeof(u->realm), "%s", w[2]);
        u->secret.has_digest = true;
    } else {
        return "unknown kind of secret";
    }
    return NULL;
}

int gw_creds_load(const char *path)
{
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        fprintf(stderr, "sechan-gw: %s: %s\n", path, strerror(errno));
        return -1;
    }
    user_count = 0;
    char line[GW_LINE_MAX];
    unsigned lineno = 0;
    int r;
    const char *why = NULL;
    while ((r = read_line(f, line, sizeof(line))) != 0) {
        lineno++;
        char *w[8];
        int n = r < 0 ? -1 : split(line, w, 8);
        if (n == 0)
            continue;
        why = n < 0 ? "line too long or too many words" : creds_line(w, n);
        if (why != NULL)
            break;
    }
    fclose(f);
    if (why != NULL) {
        fprintf(stderr, "sechan-gw: %s:%u: %s\n", path, lineno, why);
        return -1;
    }
    return 0;
}

int gw_creds_lookup(void *arg, const char *user, const char *realm,
                    struct sc_sasl_user_secret *out)
{
    (void)arg;
    for (size_t i = 0; i < user_count; i++) {
        if (strcmp(users[i].name, user) != 0)
            continue;
        *out = users[i].secret;
        /* DIGEST-MD5's hash is bound to its realm */
        if (realm[0] != '\0' && strcmp(realm, users[i].realm) != 0)
            out->has_digest = false;
        return 0;
    }
    return SC_ERR_NOT_FOUND;
}

static void put_b64(FILE *f, const uint8_t *in, size_t len)
{
    unsigned char out[128];
    size_t olen = 0;
    mbedtls_base64_encode(out, sizeof(out), &olen, in, len);
    fprintf(f, " %s", (char *)out);
}

int gw_adduser(const char *path, const char *user, const char *realm, uint32_t iterations,
               const char *password)
{
    uint8_t salt[16];
    struct sc_sasl_scram_secret s1, s256;
    uint8_t ha1[16];
    if (strchr(user, ' ') != NULL || strchr(user, '\t') != NULL || user[0] == '#' ||
        strchr(realm, ' ') != NULL) {
        fprintf(stderr, "sechan-gw: user names and realms in the file cannot hold spaces\n");
        return -1;
    }
    int r = sc_port_entropy(salt, sizeof(salt));
    if (r == 0)
        r = sc_sasl_scram_secret_make(&s256, true, password, salt, sizeof(salt), iterations);
    if (r == 0)
        r = sc_port_entropy(salt, sizeof(salt));
    if (r == 0)
        r = sc_sasl_scram_secret_make(&s1, false, password, salt, sizeof(salt), iterations);
    if (r == 0)
        r = sc_sasl_digest_secret_make(ha1, user, realm, password);
    if (r != 0) {
        fprintf(stderr, "sechan-gw: cannot derive the secrets: %s\n",
                r == SC_ERR_UNSUPPORTED ? "non-ASCII names and passwords are not supported"
                                        : sc_strerror(r));
        return -1;
    }
    /* Copy the other users' lines, then ours, into a new file, and rename. */
    char tmp[GW_ADDR_MAX + 8];
    snprintf(tmp, sizeof(tmp), "%s.new", path);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    FILE *out = fd >= 0 ? fdopen(fd, "w") : NULL;
    if (out == NULL) {
        fprintf(stderr, "sechan-gw: %s: %s\n", tmp, strerror(errno));
        return -1;
    }
    FILE *in = fopen(path, "r");
    if (in != NULL) {
        char line[GW_LINE_MAX];
        size_t ul = strlen(user);
        while (fgets(line, sizeof(line), in) != NULL)
            if (!(strncmp(line, user, ul) == 0 && (line[ul] == ' ' || line[ul] == '\t')))
                fputs(line, out);
        fclose(in);
    }
    fprintf(out, "%s scram-sha-256 %lu", user, (unsigned long)iterations);
    put_b64(out, s256.salt, s256.salt_len);
    put_b64(out, s256.stored_key, 32);
    put_b64(out, s256.server_key, 32);
    fprintf(out, "\n%s scram-sha-1 %lu", user, (unsigned long)iterations);
    put_b64(out, s1.salt, s1.salt_len);
    put_b64(out, s1.stored_key, 20);
    put_b64(out, s1.server_key, 20);
    char hex[33];
    for (int i = 0; i < 16; i++)
        snprintf(hex + 2 * i, 3, "%02x", ha1[i]);
    fprintf(out, "\n%s digest-md5 %s %s\n", user, realm, hex);
    memset(&s1, 0, sizeof(s1));
    memset(&s256, 0, sizeof(s256));
    memset(ha1, 0, sizeof(ha1));
    if (fclose(out) != 0 || rename(tmp, path) != 0) {
        fprintf(stderr, "sechan-gw: writing %s: %s\n", path, strerror(errno));
        unlink(tmp);
        return -1;
    }
    return 0;
}
