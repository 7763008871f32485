/* sechan/tcp.h: stream sockets (TCP over IPv4/IPv6, unix domain) as channels.
 * POSIX hosts only. Sockets are non-blocking, close-on-exec, TCP_NODELAY.
 *
 * Addresses are numeric ("127.0.0.1", "::1") or "localhost" (127.0.0.1):
 * the library never resolves names, because the resolver allocates.
 */
#ifndef SECHAN_TCP_H
#define SECHAN_TCP_H

#include <stdint.h>

#include "sechan/channel.h"

struct sc_sock {
    struct sc_channel base;   /* first: a struct sc_sock * is a channel */
    int fd;
    enum sc_dir want;         /* what the last SC_ERR_AGAIN waited for */
    bool wr_shut;
    char msg[96];             /* what failed, for sc_channel_errmsg() */
};

/* Connect, waiting at most until deadline_ms. On failure the struct holds
 * no descriptor and msg says why (SC_ERR_REFUSED, SC_ERR_TIMEOUT, SC_ERR_ADDR...). */
int sc_tcp_connect(struct sc_sock *s, const char *host, uint16_t port, uint64_t deadline_ms);
int sc_unix_connect(struct sc_sock *s, const char *path, uint64_t deadline_ms);

/* Take over an already connected socket descriptor (made non-blocking). */
int sc_sock_adopt(struct sc_sock *s, int fd);

/* The message of a failed connect (also reachable as sc_channel_errmsg). */
const char *sc_sock_errmsg(const struct sc_sock *s);

struct sc_listener {
    int fd;
    bool is_unix;
    char msg[96];
};

/* Listen on host:port (port 0 picks a free one: see sc_listener_port). */
int sc_tcp_listen(struct sc_listener *l, const char *host, uint16_t port, int backlog);
/* Listen on a unix socket path (an existing socket file is not removed). */
int sc_unix_listen(struct sc_listener *l, const char *path, int backlog);
uint16_t sc_listener_port(const struct sc_listener *l);
/* Accept one connection into s, waiting until deadline_ms (SC_ERR_TIMEOUT). */
int sc_listener_accept(struct sc_listener *l, struct sc_sock *s, uint64_t deadline_ms);
void sc_listener_close(struct sc_listener *l);

#endif
