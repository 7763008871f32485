/* see cli.h */
#define _POSIX_C_SOURCE 200809L
#include "cli.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "sechan/port.h"

unsigned cli_timeout_s = 30;
static struct sc_tls_creds creds;
static bool creds_loaded;

uint64_t cli_deadline(void)
{
    return sc_deadline_in((uint64_t)cli_timeout_s * 1000u);
}

int cli_exit_code(int err)
{
    switch (err) {
    case 0:
        return EXIT_OK;
    case SC_ERR_REFUSED:
    case SC_ERR_ADDR:
    case SC_ERR_RESET:
        return EXIT_CONNECT;
    case SC_ERR_FILE:
    case SC_ERR_CRED:
        return EXIT_CREDS;
    case SC_ERR_TIMEOUT:
        return EXIT_TIMEOUT;
    case SC_ERR_TLS_REQUIRED:
        return EXIT_TLS;
    case SC_ERR_IO:
    case SC_ERR_REMOTE:
        return EXIT_IO;
    default:
        if (err <= SC_ERR_TLS && err >= SC_ERR_TLS_MEMORY)
            return EXIT_TLS;
        return EXIT_NBD;
    }
}

int cli_parse_size(const char *s, uint64_t *out)
{
    char *end;
    unsigned long long v = strtoull(s, &end, 10);
    if (end == s)
        return -1;
    unsigned shift = 0;
    switch (*end) {
    case 'k': case 'K': shift = 10; end++; break;
    case 'm': case 'M': shift = 20; end++; break;
    case 'g': case 'G': shift = 30; end++; break;
    case 't': case 'T': shift = 40; end++; break;
    default: break;
    }
    if (*end != '\0' || v > (UINT64_MAX >> shift))
        return -1;
    *out = (uint64_t)v << shift;
    return 0;
}

int cli_load_creds(const struct nbd_uri *u)
{
    if (!u->tls || creds_loaded)
        return 0;
    if (!u->tls_certificates[0] && !u->tls_psk_file[0]) {
        fprintf(stderr, "sechan-nbd: nbds:// needs tls-certificates=DIR or tls-psk-file=FILE\n");
        return EXIT_CREDS;
    }
    int r = sc_tls_creds_init(&creds);
    if (r == 0)
        r = u->tls_psk_file[0] ? sc_tls_creds_load_psk_file(&creds, u->tls_psk_file)
                               : sc_tls_creds_load_x509_dir(&creds, u->tls_certificates,
                                                            SC_TLS_CLIENT);
    if (r != 0) {
        fprintf(stderr, "sechan-nbd: %s\n", sc_tls_creds_errmsg(&creds));
        return EXIT_CREDS;
    }
    creds_loaded = true;
    return 0;
}

/* The library takes numeric addresses only; resolve other names here. */
static int resolve(const char *host, char *out, size_t cap)
{
    struct in6_addr a6;
    struct in_addr a4;
    if (strcmp(host, "localhost") == 0 || inet_pton(AF_INET, host, &a4) == 1 ||
        inet_pton(AF_INET6, host, &a6) == 1) {
        snprintf(out, cap, "%s", host);
        return 0;
    }
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res = NULL;
    if (getaddrinfo(host, NULL, &hints, &res) != 0 || res == NULL)
        return -1;
    const void *addr = res->ai_family == AF_INET6
                           ? (const void *)&((struct sockaddr_in6 *)res->ai_addr)->sin6_addr
                           : (const void *)&((struct sockaddr_in *)res->ai_addr)->sin_addr;
    inet_ntop(res->ai_family, addr, out, (socklen_t)cap);
    freeaddrinfo(res);
    return 0;
}

int cli_connect(struct cli_conn *c, const struct nbd_uri *u,
                const struct sc_nbd_client_config *cfg_in)
{
    int r = cli_load_creds(u);
    if (r != 0)
        return r;
    uint64_t deadline = cli_deadline();
    if (u->is_unix) {
        r = sc_unix_connect(&c->sock, u->socket, deadline);
    } else {
        char addr[64];
        if (resolve(u->host, addr, sizeof(addr)) != 0) {
            fprintf(stderr, "sechan-nbd: cannot resolve host '%s'\n", u->host);
            return EXIT_CONNECT;
        }
        r = sc_tcp_connect(&c->sock, addr, u->port, deadline);
    }
    if (r != 0) {
        fprintf(stderr, "sechan-nbd: %s: %s\n", u->is_unix ? u->socket : u->host,
                sc_sock_errmsg(&c->sock));
        return cli_exit_code(r);
    }
    c->tls_cfg = (struct sc_tls_config){
        .endpoint = SC_TLS_CLIENT,
        .creds = &creds,
        .hostname = u->tls_hostname[0] ? u->tls_hostname : (u->is_unix ? "localhost" : u->host),
        .insecure_no_verify = !u->tls_verify_peer,
        .psk_identity = u->user[0] ? u->user : NULL,
    };
    struct sc_nbd_client_config cfg = *cfg_in;
    cfg.export_name = u->export_name;
    cfg.tls = u->tls ? SC_NBD_TLS_REQUIRE : SC_NBD_TLS_OFF;
    r = sc_nbd_connect(&c->nbd, &c->sock.base, &cfg, u->tls ? &c->tls_cfg : NULL, deadline);
    if (r != 0) {
        fprintf(stderr, "sechan-nbd: %s\n", sc_nbd_conn_errmsg(&c->nbd));
        cli_disconnect(c);
        return cli_exit_code(r);
    }
    return 0;
}

void cli_disconnect(struct cli_conn *c)
{
    (void)sc_nbd_close(&c->nbd, sc_deadline_in(2000));
    sc_close(&c->sock.base);
}
