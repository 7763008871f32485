/* see sechan/vport.h */
#define _GNU_SOURCE
#include "sechan/vport.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "sechan/port.h"

static int vport_fail(struct sc_vport *v, int code, const char *what, int os_errno)
{
    char text[64];
    snprintf(v->msg, sizeof(v->msg), "virtio port: %s: %s", what,
             sc_port_strerror(os_errno, text, sizeof(text)));
    return code;
}

static long vport_read(struct sc_channel *ch, void *buf, size_t len)
{
    struct sc_vport *v = (struct sc_vport *)ch;
    for (;;) {
        ssize_t n = read(v->fd, buf, len);
        if (n >= 0)
            return (long)n;  /* 0: the host side is not connected (any more) */
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
            v->want = SC_DIR_READ;
            return SC_ERR_AGAIN;
        }
        return vport_fail(v, SC_ERR_IO, "read", errno);
    }
}

static long vport_write(struct sc_channel *ch, const void *buf, size_t len)
{
    struct sc_vport *v = (struct sc_vport *)ch;
    for (;;) {
        ssize_t n = write(v->fd, buf, len);
        if (n >= 0)
            return (long)n;
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
            /* The port also refuses writes once nothing is connected on
             * the host side; poll says which it is (POLLHUP). */
            struct pollfd pfd = {.fd = v->fd, .events = POLLOUT};
            if (poll(&pfd, 1, 0) == 1 && (pfd.revents & POLLHUP)) {
                snprintf(v->msg, sizeof(v->msg), "virtio port: the host side is closed");
                return SC_ERR_RESET;
            }
            v->want = SC_DIR_WRITE;
            return SC_ERR_AGAIN;
        }
        return vport_fail(v, SC_ERR_IO, "write", errno);
    }
}

static int vport_close(struct sc_channel *ch)
{
    struct sc_vport *v = (struct sc_vport *)ch;
    if (v->fd >= 0)
        close(v->fd);
    v->fd = -1;
    return 0;
}

static enum sc_dir vport_direction(const struct sc_channel *ch)
{
    return ((const struct sc_vport *)ch)->want;
}

static int vport_wait(struct sc_channel *ch, enum sc_dir dir, uint64_t deadline_ms)
{
    return sc_port_wait_fd(((struct sc_vport *)ch)->fd, dir, deadline_ms);
}

static const char *vport_errmsg(const struct sc_channel *ch)
{
    return ((const struct sc_vport *)ch)->msg;
}

static const struct sc_channel_ops vport_ops = {
    .read = vport_read,
    .write = vport_write,
    .close = vport_close,
    .direction = vport_direction,
    .wait = vport_wait,
    .errmsg = vport_errmsg,
};

int sc_vport_open(struct sc_vport *v, const char *path)
{
    if (v == NULL || path == NULL)
        return SC_ERR_INVAL;
    *v = (struct sc_vport){.fd = -1, .want = SC_DIR_NONE};
    sc_channel_init(&v->base, &vport_ops, NULL);
    v->fd = open(path, O_RDWR | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
    if (v->fd < 0)
        return vport_fail(v, SC_ERR_FILE, path, errno);
    return 0;
}

int sc_vport_find(const char *name, char *out, size_t cap)
{
    DIR *d = opendir("/sys/class/virtio-ports");
    if (d == NULL)
        return SC_ERR_NOT_FOUND;
    int rc = SC_ERR_NOT_FOUND;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        char path[300], got[128];
        snprintf(path, sizeof(path), "/sys/class/virtio-ports/%s/name", e->d_name);
        long n = sc_port_read_file(path, got, sizeof(got) - 1);
        if (n <= 0)
            continue;
        got[n] = '\0';
        if (got[n - 1] == '\n')
            got[n - 1] = '\0';
        if (strcmp(got, name) == 0) {
            int w = snprintf(out, cap, "/dev/%s", e->d_name);
            rc = w > 0 && (size_t)w < cap ? 0 : SC_ERR_TOO_LONG;
            break;
        }
    }
    closedir(d);
    return rc;
}
