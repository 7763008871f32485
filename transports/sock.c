/* see sechan/tcp.h */
#define _POSIX_C_SOURCE 200809L
#define _DEFAULT_SOURCE  /* SOCK_CLOEXEC, SOCK_NONBLOCK, accept4 on glibc */
#define _GNU_SOURCE
#include "sechan/tcp.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "sechan/port.h"

static int sock_errno_code(int e)
{
    switch (e) {
    case ECONNREFUSED:
        return SC_ERR_REFUSED;
    case ECONNRESET:
    case EPIPE:
    case ECONNABORTED:
        return SC_ERR_RESET;
    case ETIMEDOUT:
        return SC_ERR_TIMEOUT;
    case EADDRNOTAVAIL:
    case EADDRINUSE:
    case EAFNOSUPPORT:
    case ENOENT:
    case ENETUNREACH:
    case EHOSTUNREACH:
        return SC_ERR_ADDR;
    default:
        return SC_ERR_IO;
    }
}

/* Record "what: os error" in msg and return the matching code. */
static int sock_fail(char *msg, size_t cap, const char *what, int os_errno)
{
    char os[64];
    snprintf(msg, cap, "%s: %s", what, sc_port_strerror(os_errno, os, sizeof(os)));
    return sock_errno_code(os_errno);
}

static long sock_read(struct sc_channel *ch, void *buf, size_t len)
{
    struct sc_sock *s = (struct sc_sock *)ch;
    for (;;) {
        ssize_t n = recv(s->fd, buf, len, 0);
        if (n >= 0)
            return (long)n;
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
            s->want = SC_DIR_READ;
            return SC_ERR_AGAIN;
        }
        return sock_fail(s->msg, sizeof(s->msg), "socket read", errno);
    }
}

static long sock_write(struct sc_channel *ch, const void *buf, size_t len)
{
    struct sc_sock *s = (struct sc_sock *)ch;
    if (s->wr_shut)
        return SC_ERR_STATE;
    for (;;) {
        ssize_t n = send(s->fd, buf, len, MSG_NOSIGNAL);
        if (n >= 0)
            return (long)n;
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
            s->want = SC_DIR_WRITE;
            return SC_ERR_AGAIN;
        }
        return sock_fail(s->msg, sizeof(s->msg), "socket write", errno);
    }
}

static int sock_close(struct sc_channel *ch)
{
    struct sc_sock *s = (struct sc_sock *)ch;
    int r = 0;
    if (s->fd >= 0 && close(s->fd) != 0)
        r = SC_ERR_IO;
    s->fd = -1;
    return r;
}

static enum sc_dir sock_direction(const struct sc_channel *ch)
{
    return ((const struct sc_sock *)ch)->want;
}

static int sock_shutdown(struct sc_channel *ch)
{
    struct sc_sock *s = (struct sc_sock *)ch;
    if (s->wr_shut)
        return 0;
    if (shutdown(s->fd, SHUT_WR) != 0 && errno != ENOTCONN)
        return sock_fail(s->msg, sizeof(s->msg), "socket shutdown", errno);
    s->wr_shut = true;
    return 0;
}

static int sock_wait(struct sc_channel *ch, enum sc_dir dir, uint64_t deadline_ms)
{
    return sc_port_wait_fd(((struct sc_sock *)ch)->fd, dir, deadline_ms);
}

static const char *sock_errmsg(const struct sc_channel *ch)
{
    return ((const struct sc_sock *)ch)->msg;
}

static const struct sc_channel_ops sock_ops = {
    .name = "socket",
    .read = sock_read,
    .write = sock_write,
    .close = sock_close,
    .direction = sock_direction,
    .shutdown = sock_shutdown,
    .wait = sock_wait,
    .errmsg = sock_errmsg,
};

static void sock_reset(struct sc_sock *s)
{
    sc_channel_init(&s->base, &sock_ops, NULL);
    s->fd = -1;
    s->want = SC_DIR_READ;
    s->wr_shut = false;
    s->msg[0] = '\0';
}

const char *sc_sock_errmsg(const struct sc_sock *s)
{
    return s->msg;
}

static void sock_tune(int fd, int family)
{
    if (family == AF_INET || family == AF_INET6) {
        /* Protocol messages are small and latency-bound: never wait for Nagle. */
        int one = 1;
        (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    }
}

int sc_sock_adopt(struct sc_sock *s, int fd)
{
    sock_reset(s);
    if (fd < 0)
        return SC_ERR_INVAL;
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) != 0)
        return sock_fail(s->msg, sizeof(s->msg), "fcntl", errno);
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    if (getsockname(fd, (struct sockaddr *)&ss, &sl) == 0)
        sock_tune(fd, ss.ss_family);
    s->fd = fd;
    return 0;
}

/* Parse a numeric host (or "localhost") into ss. */
static int sock_addr(const char *host, uint16_t port, struct sockaddr_storage *ss,
                     socklen_t *len)
{
    memset(ss, 0, sizeof(*ss));
    if (host == NULL || strcmp(host, "localhost") == 0 || host[0] == '\0')
        host = "127.0.0.1";
    struct sockaddr_in *v4 = (struct sockaddr_in *)ss;
    struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)ss;
    if (inet_pton(AF_INET, host, &v4->sin_addr) == 1) {
        v4->sin_family = AF_INET;
        v4->sin_port = htons(port);
        *len = sizeof(*v4);
        return 0;
    }
    if (inet_pton(AF_INET6, host, &v6->sin6_addr) == 1) {
        v6->sin6_family = AF_INET6;
        v6->sin6_port = htons(port);
        *len = sizeof(*v6);
        return 0;
    }
    return SC_ERR_ADDR;
}

static int unix_addr(const char *path, struct sockaddr_un *sun, socklen_t *len)
{
    memset(sun, 0, sizeof(*sun));
    if (path == NULL || path[0] == '\0')
        return SC_ERR_ADDR;
    size_t n = strlen(path);
    if (n >= sizeof(sun->sun_path))
        return SC_ERR_TOO_LONG;
    sun->sun_family = AF_UNIX;
    memcpy(sun->sun_path, path, n + 1);
    *len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n + 1);
    return 0;
}

static int sock_connect_addr(struct sc_sock *s, const struct sockaddr *sa, socklen_t sl,
                             uint64_t deadline_ms)
{
    int fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return sock_fail(s->msg, sizeof(s->msg), "socket", errno);
    sock_tune(fd, sa->sa_family);
    int r = connect(fd, sa, sl);
    if (r != 0 && errno != EINPROGRESS && errno != EINTR) {
        int e = errno;
        close(fd);
        return sock_fail(s->msg, sizeof(s->msg), "connect", e);
    }
    if (r != 0) {
        int w = sc_port_wait_fd(fd, SC_DIR_WRITE, deadline_ms);
        int soerr = 0;
        socklen_t el = sizeof(soerr);
        if (w == 0 && getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &el) != 0)
            soerr = errno;
        if (w != 0 || soerr != 0) {
            close(fd);
            if (w == SC_ERR_TIMEOUT) {
                snprintf(s->msg, sizeof(s->msg), "connect: timed out");
                return SC_ERR_TIMEOUT;
            }
            return sock_fail(s->msg, sizeof(s->msg), "connect", w != 0 ? EIO : soerr);
        }
    }
    s->fd = fd;
    return 0;
}

int sc_tcp_connect(struct sc_sock *s, const char *host, uint16_t port, uint64_t deadline_ms)
{
    sock_reset(s);
    struct sockaddr_storage ss;
    socklen_t sl;
    if (sock_addr(host, port, &ss, &sl) != 0) {
        snprintf(s->msg, sizeof(s->msg), "connect: '%.40s' is not a numeric address", host);
        return SC_ERR_ADDR;
    }
    return sock_connect_addr(s, (struct sockaddr *)&ss, sl, deadline_ms);
}

int sc_unix_connect(struct sc_sock *s, const char *path, uint64_t deadline_ms)
{
    sock_reset(s);
    struct sockaddr_un sun;
    socklen_t sl;
    int r = unix_addr(path, &sun, &sl);
    if (r != 0) {
        snprintf(s->msg, sizeof(s->msg), "connect: bad unix socket path");
        return r;
    }
    return sock_connect_addr(s, (struct sockaddr *)&sun, sl, deadline_ms);
}

static int listen_fd(struct sc_listener *l, const struct sockaddr *sa, socklen_t sl,
                     int backlog)
{
    int fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return sock_fail(l->msg, sizeof(l->msg), "socket", errno);
    int one = 1;
    if (sa->sa_family != AF_UNIX)
        (void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (bind(fd, sa, sl) != 0 || listen(fd, backlog > 0 ? backlog : 16) != 0) {
        int e = errno;
        close(fd);
        return sock_fail(l->msg, sizeof(l->msg), "bind/listen", e);
    }
    l->fd = fd;
    return 0;
}

int sc_tcp_listen(struct sc_listener *l, const char *host, uint16_t port, int backlog)
{
    l->fd = -1;
    l->is_unix = false;
    l->msg[0] = '\0';
    struct sockaddr_storage ss;
    socklen_t sl;
    if (sock_addr(host, port, &ss, &sl) != 0) {
        snprintf(l->msg, sizeof(l->msg), "listen: '%.40s' is not a numeric address", host);
        return SC_ERR_ADDR;
    }
    return listen_fd(l, (struct sockaddr *)&ss, sl, backlog);
}

int sc_unix_listen(struct sc_listener *l, const char *path, int backlog)
{
    l->fd = -1;
    l->is_unix = true;
    l->msg[0] = '\0';
    struct sockaddr_un sun;
    socklen_t sl;
    int r = unix_addr(path, &sun, &sl);
    if (r != 0) {
        snprintf(l->msg, sizeof(l->msg), "listen: bad unix socket path");
        return r;
    }
    return listen_fd(l, (struct sockaddr *)&sun, sl, backlog);
}

uint16_t sc_listener_port(const struct sc_listener *l)
{
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    if (l->fd < 0 || getsockname(l->fd, (struct sockaddr *)&ss, &sl) != 0)
        return 0;
    if (ss.ss_family == AF_INET)
        return ntohs(((struct sockaddr_in *)&ss)->sin_port);
    if (ss.ss_family == AF_INET6)
        return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
    return 0;
}

int sc_listener_accept(struct sc_listener *l, struct sc_sock *s, uint64_t deadline_ms)
{
    sock_reset(s);
    for (;;) {
        int fd = accept4(l->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd >= 0) {
            if (!l->is_unix)
                sock_tune(fd, AF_INET);
            s->fd = fd;
            return 0;
        }
        if (errno == EINTR || errno == ECONNABORTED)
            continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK)
            return sock_fail(l->msg, sizeof(l->msg), "accept", errno);
        int w = sc_port_wait_fd(l->fd, SC_DIR_READ, deadline_ms);
        if (w != 0)
            return w;
    }
}

void sc_listener_close(struct sc_listener *l)
{
    if (l->fd >= 0)
        close(l->fd);
    l->fd = -1;
}
