/* sechan-tls: a TLS client and echo server on the sechan stack, for trying
 * peers by hand, for the demo, and for interop tests of our server.
 *
 *   sechan-tls connect HOST PORT [options]   stdin -> peer, peer -> stdout
 *   sechan-tls serve PORT [options]          echo each connection's bytes back
 *
 * Exit codes: 0 done, 1 usage, 2 could not connect/listen, 3 credentials,
 * 4 TLS handshake failed, 5 I/O failed after the handshake, 6 timed out.
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sechan/port.h"
#include "sechan/tcp.h"
#include "sechan/tls.h"

enum { EX_OK = 0, EX_USAGE = 1, EX_NET = 2, EX_CRED = 3, EX_HANDSHAKE = 4, EX_IO = 5,
       EX_TIMEOUT = 6 };

struct opts {
    const char *x509_dir;
    const char *psk_file;
    const char *user;
    const char *hostname;
    bool insecure;
    bool no_hostname_check;
    bool verify_peer;
    bool tls12;
    bool quiet;
    int count;          /* serve: connections to handle, then exit (0 = forever) */
    unsigned timeout_s; /* idle limit */
};

static struct sc_tls_creds creds;

static void usage(void)
{
    fprintf(stderr,
            "usage: sechan-tls connect HOST PORT [options]\n"
            "       sechan-tls serve PORT [options]\n"
            "options:\n"
            "  --x509 DIR           credentials in QEMU's layout (ca-cert.pem, ...)\n"
            "  --psk FILE           PSK file, psktool format (identity:hexkey)\n"
            "  --user NAME          PSK identity to use (client; default: first)\n"
            "  --hostname NAME      name to verify (client; default: HOST)\n"
            "  --no-hostname-check  verify the chain only\n"
            "  --insecure           do not verify the server at all\n"
            "  --verify-peer        require a client certificate (server)\n"
            "  --tls1.2             at most TLS 1.2\n"
            "  --count N            serve N connections, then exit\n"
            "  --timeout SEC        idle limit (default 30)\n"
            "  -q                   no handshake summary on stderr\n");
}

static int parse_opts(int argc, char **argv, int first, struct opts *o)
{
    *o = (struct opts){.timeout_s = 30};
    for (int i = first; i < argc; i++) {
        const char *a = argv[i];
        bool more = i + 1 < argc;
        if (strcmp(a, "--x509") == 0 && more)
            o->x509_dir = argv[++i];
        else if (strcmp(a, "--psk") == 0 && more)
            o->psk_file = argv[++i];
        else if (strcmp(a, "--user") == 0 && more)
            o->user = argv[++i];
        else if (strcmp(a, "--hostname") == 0 && more)
            o->hostname = argv[++i];
        else if (strcmp(a, "--count") == 0 && more)
            o->count = atoi(argv[++i]);
        else if (strcmp(a, "--timeout") == 0 && more)
            o->timeout_s = (unsigned)atoi(argv[++i]);
        else if (strcmp(a, "--no-hostname-check") == 0)
            o->no_hostname_check = true;
        else if (strcmp(a, "--insecure") == 0)
            o->insecure = true;
        else if (strcmp(a, "--verify-peer") == 0)
            o->verify_peer = true;
        else if (strcmp(a, "--tls1.2") == 0)
            o->tls12 = true;
        else if (strcmp(a, "-q") == 0)
            o->quiet = true;
        else {
            fprintf(stderr, "sechan-tls: unknown or incomplete option '%s'\n", a);
            return -1;
        }
    }
    if ((o->x509_dir == NULL) == (o->psk_file == NULL)) {
        fprintf(stderr, "sechan-tls: give exactly one of --x509 DIR and --psk FILE\n");
        return -1;
    }
    if (o->timeout_s == 0)
        o->timeout_s = 30;
    return 0;
}

static int load_creds(const struct opts *o, enum sc_tls_endpoint ep)
{
    int r = sc_tls_creds_init(&creds);
    if (r == 0)
        r = o->x509_dir ? sc_tls_creds_load_x509_dir(&creds, o->x509_dir, ep)
                        : sc_tls_creds_load_psk_file(&creds, o->psk_file);
    if (r != 0) {
        fprintf(stderr, "sechan-tls: %s\n", sc_tls_creds_errmsg(&creds));
        return EX_CRED;
    }
    return 0;
}

static void print_info(const struct sc_tls *t, const char *what)
{
    struct sc_tls_info info;
    if (sc_tls_get_info(t, &info) == 0)
        fprintf(stderr, "sechan-tls: %s %s %s, peer %s%s\n", what, info.version,
                info.ciphersuite, info.psk ? "PSK identity " : "",
                info.peer[0] ? info.peer : "(no certificate)");
}

/* Move bytes between fd_in/fd_out and the TLS channel until the peer
 * closes or, after our input ends, close_notify has gone out and the peer
 * answered in kind. */
static int relay(struct sc_tls *t, struct sc_sock *s, int fd_in, int fd_out, unsigned timeout_s)
{
    unsigned char buf[16384];
    bool in_open = fd_in >= 0;
    for (;;) {
        long n;
        while ((n = sc_read(&t->base, buf, sizeof(buf))) > 0) {
            for (long off = 0; off < n;) {
                ssize_t w = write(fd_out, buf + off, (size_t)(n - off));
                if (w < 0 && errno != EINTR)
                    return EX_IO;
                off += w > 0 ? w : 0;
            }
        }
        if (n == 0)
            return EX_OK;  /* peer's close_notify */
        if (n != SC_ERR_AGAIN) {
            fprintf(stderr, "sechan-tls: %s\n", sc_channel_errmsg(&t->base));
            return EX_IO;
        }
        struct pollfd pfd[2] = {{.fd = s->fd, .events = POLLIN},
                                {.fd = in_open ? fd_in : -1, .events = POLLIN}};
        int p = poll(pfd, 2, (int)(timeout_s * 1000u));
        if (p == 0) {
            fprintf(stderr, "sechan-tls: idle for %us, giving up\n", timeout_s);
            return EX_TIMEOUT;
        }
        if (p < 0 && errno != EINTR)
            return EX_IO;
        if (in_open && (pfd[1].revents & (POLLIN | POLLHUP))) {
            ssize_t r = read(fd_in, buf, sizeof(buf));
            uint64_t deadline = sc_deadline_in(timeout_s * 1000u);
            if (r > 0) {
                if (sc_write_all(&t->base, buf, (size_t)r, deadline) != 0) {
                    fprintf(stderr, "sechan-tls: %s\n", sc_channel_errmsg(&t->base));
                    return EX_IO;
                }
            } else if (r == 0 || errno != EINTR) {
                in_open = false;
                if (sc_shutdown_wait(&t->base, deadline) != 0)
                    return EX_IO;
            }
        }
    }
}

static int handshake(struct sc_tls *t, const struct opts *o, const char *what)
{
    int r = sc_tls_handshake_wait(t, sc_deadline_in(o->timeout_s * 1000u));
    if (r != 0) {
        fprintf(stderr, "sechan-tls: %s (%s)\n", sc_channel_errmsg(&t->base), sc_errname(r));
        return r == SC_ERR_TIMEOUT ? EX_TIMEOUT : EX_HANDSHAKE;
    }
    if (!o->quiet)
        print_info(t, what);
    return 0;
}

static int cmd_connect(const char *host, const char *port_s, const struct opts *o)
{
    int r = load_creds(o, SC_TLS_CLIENT);
    if (r != 0)
        return r;
    struct sc_sock s;
    int port = atoi(port_s);
    if (port <= 0 || port > 65535) {
        fprintf(stderr, "sechan-tls: bad port '%s'\n", port_s);
        return EX_USAGE;
    }
    if (sc_tcp_connect(&s, host, (uint16_t)port, sc_deadline_in(o->timeout_s * 1000u)) != 0) {
        fprintf(stderr, "sechan-tls: %s:%d: %s\n", host, port, sc_sock_errmsg(&s));
        return EX_NET;
    }
    struct sc_tls_config cfg = {
        .endpoint = SC_TLS_CLIENT,
        .creds = &creds,
        .hostname = o->hostname ? o->hostname : host,
        .no_hostname_check = o->no_hostname_check,
        .insecure_no_verify = o->insecure,
        .psk_identity = o->user,
        .max_version = o->tls12 ? SC_TLS_1_2 : SC_TLS_VERSION_DEFAULT,
    };
    struct sc_tls t;
    if (sc_tls_init(&t, &s.base, &cfg) != 0) {
        fprintf(stderr, "sechan-tls: %s\n", sc_tls_errmsg(&t));
        sc_close(&s.base);
        return EX_CRED;
    }
    r = handshake(&t, o, "connected:");
    if (r == 0)
        r = relay(&t, &s, STDIN_FILENO, STDOUT_FILENO, o->timeout_s);
    sc_close(&t.base);
    sc_close(&s.base);
    sc_tls_creds_free(&creds);
    return r;
}

static int cmd_serve(const char *port_s, const struct opts *o)
{
    int r = load_creds(o, SC_TLS_SERVER);
    if (r != 0)
        return r;
    struct sc_listener l;
    int port = atoi(port_s);
    if (port < 0 || port > 65535 || sc_tcp_listen(&l, "127.0.0.1", (uint16_t)port, 8) != 0) {
        fprintf(stderr, "sechan-tls: cannot listen on 127.0.0.1:%s\n", port_s);
        return EX_NET;
    }
    fprintf(stderr, "sechan-tls: listening on 127.0.0.1:%u\n", sc_listener_port(&l));
    int last = EX_OK;
    for (int n = 0; o->count == 0 || n < o->count; n++) {
        struct sc_sock s;
        if (sc_listener_accept(&l, &s, SC_DEADLINE_NEVER) != 0)
            return EX_NET;
        struct sc_tls_config cfg = {
            .endpoint = SC_TLS_SERVER,
            .creds = &creds,
            .verify_peer = o->verify_peer,
            .max_version = o->tls12 ? SC_TLS_1_2 : SC_TLS_VERSION_DEFAULT,
        };
        struct sc_tls t;
        last = sc_tls_init(&t, &s.base, &cfg) == 0 ? handshake(&t, o, "accepted:") : EX_CRED;
        if (last == 0) {
            last = EX_OK;
            unsigned char buf[16384];
            for (;;) {
                long got = sc_read_some(&t.base, buf, sizeof(buf),
                                        sc_deadline_in(o->timeout_s * 1000u));
                if (got <= 0) {
                    if (got == SC_ERR_TIMEOUT) {
                        fprintf(stderr, "sechan-tls: idle for %us, closing\n", o->timeout_s);
                        last = EX_TIMEOUT;
                    } else if (got < 0) {
                        fprintf(stderr, "sechan-tls: %s\n", sc_channel_errmsg(&t.base));
                        last = EX_IO;
                    } else {
                        sc_shutdown_wait(&t.base, sc_deadline_in(1000));
                    }
                    break;
                }
                if (sc_write_all(&t.base, buf, (size_t)got,
                                 sc_deadline_in(o->timeout_s * 1000u)) != 0) {
                    last = EX_IO;
                    break;
                }
            }
        }
        sc_close(&t.base);
        sc_close(&s.base);
    }
    sc_listener_close(&l);
    sc_tls_creds_free(&creds);
    return last;
}

int main(int argc, char **argv)
{
    signal(SIGPIPE, SIG_IGN);
    struct opts o;
    if (argc >= 4 && strcmp(argv[1], "connect") == 0) {
        if (parse_opts(argc, argv, 4, &o) != 0) {
            usage();
            return EX_USAGE;
        }
        return cmd_connect(argv[2], argv[3], &o);
    }
    if (argc >= 3 && strcmp(argv[1], "serve") == 0) {
        if (parse_opts(argc, argv, 3, &o) != 0) {
            usage();
            return EX_USAGE;
        }
        return cmd_serve(argv[2], &o);
    }
    usage();
    return EX_USAGE;
}
