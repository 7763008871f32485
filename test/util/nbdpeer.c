/*
 * nbdpeer.c - real NBD servers for interop tests.  See nbdpeer.h.
 */
#define _POSIX_C_SOURCE 200809L

#include "nbdpeer.h"

#include "proc.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* Linux values; glibc only names them with _GNU_SOURCE. */
#ifndef SEEK_DATA
#define SEEK_DATA 3
#endif
#ifndef SEEK_HOLE
#define SEEK_HOLE 4
#endif

#define NP_LISTEN_TIMEOUT_MS 10000
#define NP_STOP_TIMEOUT_MS 3000
#define NP_REAP_TIMEOUT_MS 2000
#define NP_START_TRIES 3
#define NP_MAX_KIDS 256

/* ---- small helpers ------------------------------------------------------------------ */

/* snprintf that reports truncation: 0 fits, -1 does not. */
static int fmt(char *buf, size_t size, const char *f, ...) __attribute__((format(printf, 3, 4)));

static int fmt(char *buf, size_t size, const char *f, ...)
{
    va_list ap;
    va_start(ap, f);
    int n = vsnprintf(buf, size, f, ap);
    va_end(ap);
    return (n < 0 || (size_t)n >= size) ? -1 : 0;
}

/* path made absolute against the current directory (no file system lookups). */
static int abs_path(const char *path, char *out, size_t size)
{
    if (path[0] == '/')
        return fmt(out, size, "%s", path);
    char cwd[4096];
    if (getcwd(cwd, sizeof cwd) == NULL)
        return -1;
    return fmt(out, size, "%s/%s", cwd, path);
}

static int mkdir_p(const char *dir)
{
    char tmp[512];
    if (fmt(tmp, sizeof tmp, "%s", dir) != 0)
        return -1;
    for (char *s = tmp + 1; *s != '\0'; s++) {
        if (*s == '/') {
            *s = '\0';
            if (mkdir(tmp, 0755) != 0 && errno != EEXIST)
                return -1;
            *s = '/';
        }
    }
    if (mkdir(tmp, 0755) != 0 && errno != EEXIST)
        return -1;
    return 0;
}

/* Print the last ~2 KiB of a log file to stderr. */
static void print_log_tail(const char *log)
{
    FILE *f = fopen(log, "r");
    if (f == NULL) {
        fprintf(stderr, "nbdpeer: (no log %s)\n", log);
        return;
    }
    char buf[2048];
    long start = 0;
    if (fseek(f, 0, SEEK_END) == 0) {
        long end = ftell(f);
        start = end > (long)sizeof buf - 1 ? end - (long)sizeof buf + 1 : 0;
    }
    (void)fseek(f, start, SEEK_SET);
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    fprintf(stderr, "nbdpeer: --- tail of %s ---\n%s%s--- end of log ---\n", log, buf,
            (n > 0 && buf[n - 1] != '\n') ? "\n" : "");
}

static bool log_contains(const char *log, const char *needle)
{
    FILE *f = fopen(log, "r");
    if (f == NULL)
        return false;
    char line[1024];
    bool found = false;
    while (!found && fgets(line, sizeof line, f) != NULL)
        found = strstr(line, needle) != NULL;
    fclose(f);
    return found;
}

/* ---- /proc ------------------------------------------------------------------------------ */

/* Reads PPid, pgrp and state of pid from /proc/pid/stat.  0, or -1 if gone. */
static int proc_stat(pid_t pid, pid_t *ppid, pid_t *pgrp, char *state)
{
    char path[64], buf[1024];
    if (fmt(path, sizeof path, "/proc/%ld/stat", (long)pid) != 0)
        return -1;
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return -1;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    /* "pid (comm) S ppid pgrp ..." - comm may hold spaces and parentheses: use the last ')'. */
    char *rp = strrchr(buf, ')');
    if (rp == NULL)
        return -1;
    char st = '?';
    long pp = 0, pg = 0;
    if (sscanf(rp + 1, " %c %ld %ld", &st, &pp, &pg) != 3)
        return -1;
    if (ppid != NULL)
        *ppid = (pid_t)pp;
    if (pgrp != NULL)
        *pgrp = (pid_t)pg;
    if (state != NULL)
        *state = st;
    return 0;
}

/* Visit every process; cb returns nonzero to stop. */
static void proc_scan(int (*cb)(pid_t pid, pid_t ppid, pid_t pgrp, char state, void *arg),
                      void *arg)
{
    DIR *d = opendir("/proc");
    if (d == NULL)
        return;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        char *end;
        long v = strtol(e->d_name, &end, 10);
        if (*end != '\0' || v <= 0)
            continue;
        pid_t pp, pg;
        char st;
        if (proc_stat((pid_t)v, &pp, &pg, &st) != 0)
            continue;
        if (cb((pid_t)v, pp, pg, st, arg) != 0)
            break;
    }
    closedir(d);
}

struct kids {
    pid_t parent;
    pid_t pids[NP_MAX_KIDS];
    int n;
};

static int collect_kid(pid_t pid, pid_t ppid, pid_t pgrp, char state, void *arg)
{
    (void)pgrp;
    (void)state;
    struct kids *k = arg;
    if (ppid == k->parent && k->n < NP_MAX_KIDS)
        k->pids[k->n++] = pid;
    return 0;
}

struct leftovers {
    pid_t pid;
    int n;
};

static int count_leftover(pid_t pid, pid_t ppid, pid_t pgrp, char state, void *arg)
{
    (void)state;
    struct leftovers *l = arg;
    if (pid == l->pid || ppid == l->pid || pgrp == l->pid)
        l->n++;
    return 0;
}

int np_leftovers(pid_t pid)
{
    if (pid <= 0)
        return 0;
    struct leftovers l = {pid, 0};
    proc_scan(count_leftover, &l);
    return l.n;
}

struct orphans {
    pid_t self;
    pid_t pgrp;
    int left;
};

static int reap_orphan(pid_t pid, pid_t ppid, pid_t pgrp, char state, void *arg)
{
    (void)state;
    struct orphans *o = arg;
    if (ppid != o->self || pgrp != o->pgrp)
        return 0;
    pid_t r;
    int status;
    do {
        r = waitpid(pid, &status, WNOHANG);
    } while (r < 0 && errno == EINTR);
    if (r == 0)
        o->left++; /* ours, still dying */
    return 0;
}

/* Reap the processes of group pgrp that were re-parented to us (subreaper), bounded. */
static void reap_orphans(pid_t pgrp)
{
    int64_t deadline = tp_now_ms() + NP_REAP_TIMEOUT_MS;
    for (;;) {
        struct orphans o = {getpid(), pgrp, 0};
        proc_scan(reap_orphan, &o);
        if (o.left == 0 || tp_now_ms() >= deadline)
            return;
        tp_sleep_ms(10);
    }
}

/* Wait until a unix stream socket bound to path listens, from /proc/net/unix (no probe
 * connection).  0, or -1 if pid exited or timeout_ms passed. */
static int unix_listening(const char *path)
{
    FILE *f = fopen("/proc/net/unix", "r");
    if (f == NULL)
        return -1;
    char line[1024];
    int found = 0;
    if (fgets(line, sizeof line, f) != NULL) { /* header */
        while (!found && fgets(line, sizeof line, f) != NULL) {
            /* "Num: RefCount Protocol Flags Type St Inode Path"; Flags 00010000 = listening */
            unsigned long flags = 0;
            char p[512];
            p[0] = '\0';
            if (sscanf(line, "%*s %*s %*s %lx %*s %*s %*s %511s", &flags, p) < 1)
                continue;
            if ((flags & 0x10000ul) != 0 && strcmp(p, path) == 0)
                found = 1;
        }
    }
    fclose(f);
    return found ? 0 : -1;
}

static int wait_unix_quiet(pid_t pid, const char *path, int timeout_ms)
{
    int64_t deadline = tp_now_ms() + timeout_ms;
    for (;;) {
        if (unix_listening(path) == 0)
            return 0;
        if (!tp_alive(pid) || tp_now_ms() >= deadline)
            return -1;
        tp_sleep_ms(10);
    }
}

/* ---- names, PKI, URIs -------------------------------------------------------------------- */

const char *np_pki(const char *sub)
{
    static char path[8][512];
    static unsigned slot;
    const char *dir = getenv("SECHAN_PKI_DIR");
    if (dir == NULL || dir[0] == '\0')
        dir = "build/test/pki-out";
    char *p = path[slot++ % 8];
    snprintf(p, sizeof path[0], "%s/%s", dir, sub);
    return p;
}

bool np_supported(enum np_server server, enum np_tls tls)
{
    switch (server) {
    case NP_QEMU_NBD:
    case NP_NBDKIT_MEMORY:
    case NP_NBDKIT_FILE:
        return tls == NP_TLS_NONE || tls == NP_TLS_X509 || tls == NP_TLS_X509_VERIFY ||
               tls == NP_TLS_PSK;
    case NP_NBD_SERVER:
        return tls == NP_TLS_NONE || tls == NP_TLS_X509_VERIFY;
    }
    return false;
}

const char *np_program(enum np_server server)
{
    switch (server) {
    case NP_QEMU_NBD:
        return "qemu-nbd";
    case NP_NBDKIT_MEMORY:
    case NP_NBDKIT_FILE:
        return "nbdkit";
    case NP_NBD_SERVER:
        return "nbd-server";
    }
    return "?";
}

const char *np_server_name(enum np_server server)
{
    switch (server) {
    case NP_QEMU_NBD:
        return "qemu-nbd";
    case NP_NBDKIT_MEMORY:
        return "nbdkit-memory";
    case NP_NBDKIT_FILE:
        return "nbdkit-file";
    case NP_NBD_SERVER:
        return "nbd-server";
    }
    return "?";
}

const char *np_tls_name(enum np_tls tls)
{
    switch (tls) {
    case NP_TLS_NONE:
        return "none";
    case NP_TLS_X509:
        return "x509";
    case NP_TLS_X509_VERIFY:
        return "x509-verify";
    case NP_TLS_PSK:
        return "psk";
    }
    return "?";
}

int np_uri(const struct np_peer *p, const char *client_creds, char *buf, size_t size)
{
    bool tls = p->tls != NP_TLS_NONE;
    bool psk = p->tls == NP_TLS_PSK;
    const char *creds = client_creds;
    if (creds == NULL)
        creds = np_pki(psk ? "keys.psk" : "pki");
    const char *scheme = tls ? "nbds" : "nbd";
    const char *user = psk ? "alice@" : "";
    char query[600];
    query[0] = '\0';
    if (tls && fmt(query, sizeof query, "%s=%s", psk ? "tls-psk-file" : "tls-certificates",
                   creds) != 0)
        return -1;
    if (p->socket_path[0] != '\0')
        return fmt(buf, size, "%s+unix://%s/%s?socket=%s%s%s", scheme, user, p->export_name,
                   p->socket_path, tls ? "&" : "", query);
    return fmt(buf, size, "%s://%s127.0.0.1:%d/%s%s%s", scheme, user, p->port, p->export_name,
               tls ? "?" : "", query);
}

/* ---- starting ------------------------------------------------------------------------------ */

struct argv_buf {
    const char *v[64];
    int n;
};

static void arg(struct argv_buf *a, const char *s)
{
    if (a->n < (int)(sizeof a->v / sizeof a->v[0]) - 1)
        a->v[a->n++] = s;
    a->v[a->n] = NULL;
}

static bool argv_full(const struct argv_buf *a)
{
    return a->n >= (int)(sizeof a->v / sizeof a->v[0]) - 1;
}

/* Strings that must outlive the argv of one start attempt. */
struct start_ctx {
    char port[16], listen[64], sock[108], object[700], conns[16], size[32], file[512];
    char creds_opt[600];
    char abs_file[512];  /* opts.file, absolute ("" if none) */
    char abs_creds[512]; /* the server's credentials, absolute ("" without TLS) */
};

/* qemu-nbd chdir()s to / after starting (and reads the PSK file only at handshake time);
 * nbd-server chdir()s to / when it daemonizes: hand every server absolute paths. */
static int resolve_paths(struct start_ctx *c, const struct np_peer *p, const struct np_opts *o)
{
    if (o->file != NULL && abs_path(o->file, c->abs_file, sizeof c->abs_file) != 0)
        return -1;
    if (p->tls == NP_TLS_NONE)
        return 0;
    const char *creds = o->creds;
    if (creds == NULL) {
        if (p->tls != NP_TLS_PSK)
            creds = np_pki("pki");
        else
            creds = np_pki(p->server == NP_QEMU_NBD ? "psk" : "keys.psk");
    }
    return abs_path(creds, c->abs_creds, sizeof c->abs_creds);
}

static int build_qemu_nbd(struct argv_buf *a, struct start_ctx *c, const struct np_peer *p,
                          const struct np_opts *o)
{
    if (o->file == NULL) {
        fprintf(stderr, "nbdpeer: qemu-nbd needs opts.file\n");
        return -1;
    }
    arg(a, "qemu-nbd");
    arg(a, "-f");
    arg(a, "raw");
    arg(a, "-x");
    arg(a, p->export_name);
    if (p->socket_path[0] != '\0') {
        arg(a, "-k");
        arg(a, p->socket_path);
    } else {
        arg(a, "-b");
        arg(a, "127.0.0.1");
        arg(a, "-p");
        arg(a, c->port);
    }
    if (!o->one_connection)
        arg(a, "-t");
    (void)fmt(c->conns, sizeof c->conns, "%d", o->connections > 0 ? o->connections : 8);
    arg(a, "-e");
    arg(a, c->conns);
    if (o->read_only)
        arg(a, "-r");
    if (p->tls != NP_TLS_NONE) {
        int r;
        if (p->tls == NP_TLS_PSK)
            r = fmt(c->object, sizeof c->object, "tls-creds-psk,id=tls0,dir=%s,endpoint=server",
                    c->abs_creds);
        else
            r = fmt(c->object, sizeof c->object,
                    "tls-creds-x509,id=tls0,dir=%s,endpoint=server,verify-peer=%s",
                    c->abs_creds, p->tls == NP_TLS_X509_VERIFY ? "yes" : "no");
        if (r != 0)
            return -1;
        arg(a, "--object");
        arg(a, c->object);
        arg(a, "--tls-creds=tls0");
    }
    for (int i = 0; i < 8 && o->extra[i] != NULL; i++)
        arg(a, o->extra[i]);
    arg(a, c->abs_file);
    return argv_full(a) ? -1 : 0;
}

static int build_nbdkit(struct argv_buf *a, struct start_ctx *c, const struct np_peer *p,
                        const struct np_opts *o)
{
    bool mem = p->server == NP_NBDKIT_MEMORY;
    if (!mem && o->file == NULL) {
        fprintf(stderr, "nbdpeer: nbdkit file needs opts.file\n");
        return -1;
    }
    arg(a, "nbdkit");
    arg(a, "-f");
    if (p->socket_path[0] != '\0') {
        arg(a, "-U");
        arg(a, p->socket_path);
    } else {
        arg(a, "-i");
        arg(a, "127.0.0.1");
        arg(a, "-p");
        arg(a, c->port);
    }
    if (o->read_only)
        arg(a, "-r");
    if (o->one_connection)
        arg(a, "--filter=exitlast");
    if (p->tls != NP_TLS_NONE) {
        arg(a, "--tls=require");
        int r;
        if (p->tls == NP_TLS_PSK)
            r = fmt(c->creds_opt, sizeof c->creds_opt, "--tls-psk=%s", c->abs_creds);
        else
            r = fmt(c->creds_opt, sizeof c->creds_opt, "--tls-certificates=%s",
                    c->abs_creds);
        if (r != 0)
            return -1;
        arg(a, c->creds_opt);
        if (p->tls == NP_TLS_X509_VERIFY)
            arg(a, "--tls-verify-peer");
    }
    for (int i = 0; i < 8 && o->extra[i] != NULL; i++)
        if (o->extra[i][0] == '-')
            arg(a, o->extra[i]);
    if (mem) {
        arg(a, "memory");
        (void)fmt(c->size, sizeof c->size, "size=%llu",
                  (unsigned long long)(o->mem_size > 0 ? o->mem_size : 1024u * 1024u));
        arg(a, c->size);
    } else {
        arg(a, "file");
        if (fmt(c->file, sizeof c->file, "file=%s", c->abs_file) != 0)
            return -1;
        arg(a, c->file);
    }
    for (int i = 0; i < 8 && o->extra[i] != NULL; i++)
        if (o->extra[i][0] != '-')
            arg(a, o->extra[i]);
    return argv_full(a) ? -1 : 0;
}

static int write_nbd_server_conf(const struct start_ctx *c, struct np_peer *p,
                                 const struct np_opts *o)
{
    if (o->file == NULL) {
        fprintf(stderr, "nbdpeer: nbd-server needs opts.file\n");
        return -1;
    }
    const char *file = c->abs_file, *pki = c->abs_creds;
    FILE *f = fopen(p->conf, "w");
    if (f == NULL) {
        fprintf(stderr, "nbdpeer: %s: %s\n", p->conf, strerror(errno));
        return -1;
    }
    fprintf(f, "# written by nbdpeer.c\n[generic]\nallowlist = true\n");
    if (p->socket_path[0] != '\0')
        fprintf(f, "unixsock = %s\n", p->socket_path);
    else
        fprintf(f, "listenaddr = 127.0.0.1\nport = %d\n", p->port);
    if (p->tls != NP_TLS_NONE)
        fprintf(f,
                "certfile = %s/server-cert.pem\nkeyfile = %s/server-key.pem\n"
                "cacertfile = %s/ca-cert.pem\nforce_tls = true\n",
                pki, pki, pki);
    fprintf(f, "[%s]\nexportname = %s\nflush = true\nfua = true\ntrim = true\n", p->export_name,
            file);
    if (o->read_only)
        fprintf(f, "readonly = true\n");
    if (o->connections > 0)
        fprintf(f, "maxconnections = %d\n", o->connections);
    for (int i = 0; i < 8 && o->extra[i] != NULL; i++)
        fprintf(f, "%s\n", o->extra[i]);
    int bad = ferror(f);
    if (fclose(f) != 0 || bad) {
        fprintf(stderr, "nbdpeer: cannot write %s\n", p->conf);
        return -1;
    }
    return 0;
}

static pid_t read_pidfile(const char *path)
{
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return -1;
    long v = 0;
    int n = fscanf(f, "%ld", &v);
    fclose(f);
    return (n == 1 && v > 0) ? (pid_t)v : -1;
}

/* nbd-server in daemon mode: launcher forks the daemon (setsid, chdir /, pid file) and
 * exits 0.  As a subreaper we inherit the daemon when the launcher exits.  Returns the
 * daemon's pid or -1. */
static pid_t daemon_handover(pid_t launcher, const struct np_peer *p)
{
    int64_t deadline = tp_now_ms() + NP_LISTEN_TIMEOUT_MS;
    /* 1. the launcher ends (0 = daemon forked) */
    int st;
    while ((st = tp_peek_exit(launcher)) == -2 && tp_now_ms() < deadline)
        tp_sleep_ms(5);
    if (st != 0) {
        fprintf(stderr, "nbdpeer: nbd-server %s (status %d)\n",
                st == -2 ? "did not daemonize in time" : "failed", st);
        tp_stop(launcher, 1000);
        return -1;
    }
    /* 2. the daemon writes its pid file after setsid() */
    pid_t d;
    while ((d = read_pidfile(p->pidfile)) <= 0 && tp_now_ms() < deadline)
        tp_sleep_ms(5);
    if (d <= 0) {
        fprintf(stderr, "nbdpeer: nbd-server wrote no pid file %s\n", p->pidfile);
        tp_stop(launcher, 1000); /* its group may still hold the daemon: ends it */
        return -1;
    }
    pid_t pgrp = -1, ppid = -1;
    if (proc_stat(d, &ppid, &pgrp, NULL) != 0 || ppid != getpid() || pgrp != d) {
        fprintf(stderr,
                "nbdpeer: nbd-server daemon %ld: parent %ld, group %ld (want %ld, %ld)\n",
                (long)d, (long)ppid, (long)pgrp, (long)getpid(), (long)d);
        tp_stop(launcher, 1000);
        return -1;
    }
    /* The daemon has its own session, so the launcher's group is only the launcher. */
    tp_stop(launcher, 1000);
    return d;
}

static bool subreaper_on;

static int start_once(struct np_peer *p, const struct np_opts *o)
{
    struct start_ctx c;
    memset(&c, 0, sizeof c);
    struct argv_buf a;
    memset(&a, 0, sizeof a);
    bool nbd_daemon = p->server == NP_NBD_SERVER && !o->one_connection;

    if (p->socket_path[0] == '\0') {
        p->port = tp_free_port();
        if (p->port <= 0) {
            fprintf(stderr, "nbdpeer: no free port\n");
            return -1;
        }
        (void)fmt(c.port, sizeof c.port, "%d", p->port);
    } else {
        (void)unlink(p->socket_path);
    }
    const char *where = p->socket_path[0] != '\0' ? "unix" : c.port;
    if (fmt(p->log, sizeof p->log, "%s/np-%s-%s-%s.log", tp_build_dir(),
            np_server_name(p->server), np_tls_name(p->tls), where) != 0)
        return -1;
    (void)unlink(p->log);

    int r = resolve_paths(&c, p, o);
    if (r != 0) {
        fprintf(stderr, "nbdpeer: path too long\n");
        return -1;
    }
    switch (p->server) {
    case NP_QEMU_NBD:
        r = build_qemu_nbd(&a, &c, p, o);
        break;
    case NP_NBDKIT_MEMORY:
    case NP_NBDKIT_FILE:
        r = build_nbdkit(&a, &c, p, o);
        break;
    case NP_NBD_SERVER:
        r = write_nbd_server_conf(&c, p, o);
        arg(&a, "nbd-server");
        arg(&a, "-C");
        arg(&a, p->conf);
        if (nbd_daemon) {
            (void)unlink(p->pidfile);
            arg(&a, "-p");
            arg(&a, p->pidfile);
        } else {
            arg(&a, "-d");
        }
        break;
    default:
        r = -1;
    }
    if (r != 0) {
        fprintf(stderr, "nbdpeer: cannot build the %s command line\n", np_server_name(p->server));
        return -1;
    }

    if (nbd_daemon && !subreaper_on) {
        if (prctl(PR_SET_CHILD_SUBREAPER, 1L, 0L, 0L, 0L) != 0) {
            fprintf(stderr, "nbdpeer: prctl(PR_SET_CHILD_SUBREAPER): %s\n", strerror(errno));
            return -1;
        }
        subreaper_on = true;
    }

    int64_t t0 = tp_now_ms();
    pid_t pid = tp_spawn(a.v, p->log);
    if (pid <= 0)
        return -1;
    if (nbd_daemon) {
        pid = daemon_handover(pid, p);
        if (pid <= 0)
            return -1;
    }
    p->pid = pid;
    if (p->socket_path[0] != '\0')
        r = wait_unix_quiet(pid, p->socket_path, NP_LISTEN_TIMEOUT_MS);
    else
        r = tp_wait_listen_quiet(pid, p->port, NP_LISTEN_TIMEOUT_MS);
    p->listen_ms = (int)(tp_now_ms() - t0);
    if (r == 0)
        return 0;
    int st = tp_peek_exit(pid);
    np_stop(p);
    /* Another process took the port between tp_free_port() and bind(): try another. */
    if (p->socket_path[0] == '\0' && st >= 0 && log_contains(p->log, "in use"))
        return 1;
    fprintf(stderr, "nbdpeer: %s (%s) %s after %d ms; log %s\n", np_server_name(p->server),
            np_tls_name(p->tls), st == -2 ? "is not listening" : "exited", p->listen_ms,
            p->log);
    print_log_tail(p->log);
    return -1;
}

int np_start(struct np_peer *p, const struct np_opts *o)
{
    memset(p, 0, sizeof *p);
    p->pid = -1;
    p->server = o->server;
    p->tls = o->tls;
    if (!np_supported(o->server, o->tls)) {
        fprintf(stderr, "nbdpeer: %s cannot do TLS mode %s\n", np_server_name(o->server),
                np_tls_name(o->tls));
        return -1;
    }
    if (fmt(p->export_name, sizeof p->export_name, "%s",
            o->export_name != NULL ? o->export_name : "disk") != 0)
        return -1;
    const char *dir = tp_build_dir();
    if (mkdir_p(dir) != 0) {
        fprintf(stderr, "nbdpeer: cannot create %s: %s\n", dir, strerror(errno));
        return -1;
    }
    static unsigned serial;
    unsigned n = serial++;
    char absdir[512];
    if (abs_path(dir, absdir, sizeof absdir) != 0)
        return -1;
    if (o->unix_socket &&
        fmt(p->socket_path, sizeof p->socket_path, "%s/np-%ld-%u.sock", absdir, (long)getpid(),
            n) != 0) {
        fprintf(stderr, "nbdpeer: socket path under %s is too long\n", absdir);
        return -1;
    }
    if (o->server == NP_NBD_SERVER &&
        (fmt(p->conf, sizeof p->conf, "%s/np-nbd-server-%ld-%u.conf", absdir, (long)getpid(),
             n) != 0 ||
         fmt(p->pidfile, sizeof p->pidfile, "%s/np-nbd-server-%ld-%u.pid", absdir,
             (long)getpid(), n) != 0)) {
        fprintf(stderr, "nbdpeer: path under %s is too long\n", absdir);
        return -1;
    }
    for (int i = 0; i < NP_START_TRIES; i++) {
        int r = start_once(p, o);
        if (r <= 0)
            return r;
        fprintf(stderr, "nbdpeer: port %d was taken, retrying\n", p->port);
    }
    fprintf(stderr, "nbdpeer: no free port after %d tries\n", NP_START_TRIES);
    return -1;
}

/* ---- stopping ------------------------------------------------------------------------------ */

int np_stop(struct np_peer *p)
{
    if (p == NULL || p->pid <= 0)
        return -1;
    pid_t pid = p->pid;
    p->pid = -1;
    /* Per-connection children first (nbd-server forks one per client): by PID. */
    struct kids k;
    memset(&k, 0, sizeof k);
    k.parent = pid;
    proc_scan(collect_kid, &k);
    for (int i = 0; i < k.n; i++)
        (void)kill(k.pids[i], SIGKILL);
    int rc = tp_stop(pid, NP_STOP_TIMEOUT_MS);
    /* Children that outlived their parent came to us if we are a subreaper. */
    if (subreaper_on)
        reap_orphans(pid);
    if (p->socket_path[0] != '\0')
        (void)unlink(p->socket_path);
    if (p->pidfile[0] != '\0')
        (void)unlink(p->pidfile);
    return rc;
}

/* ---- disks ------------------------------------------------------------------------------- */

static uint64_t disk_word(uint32_t seed, uint64_t i)
{
    uint64_t z = i ^ ((uint64_t)seed * 0x9E3779B97F4A7C15u);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9u;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBu;
    return z ^ (z >> 31);
}

uint8_t np_disk_byte(uint32_t seed, uint64_t off)
{
    return (uint8_t)(disk_word(seed, off >> 3) >> ((off & 7u) * 8u));
}

void np_disk_fill(uint32_t seed, uint64_t off, void *buf, size_t len)
{
    uint8_t *b = buf;
    size_t i = 0;
    while (i < len && ((off + i) & 7u) != 0) {
        b[i] = np_disk_byte(seed, off + i);
        i++;
    }
    while (len - i >= 8) {
        uint64_t w = disk_word(seed, (off + i) >> 3);
        for (unsigned j = 0; j < 8; j++)
            b[i + j] = (uint8_t)(w >> (j * 8u));
        i += 8;
    }
    while (i < len) {
        b[i] = np_disk_byte(seed, off + i);
        i++;
    }
}

static int write_range(int fd, const char *path, uint64_t off, uint64_t len, uint32_t seed)
{
    static uint8_t buf[256u * 1024u];
    while (len > 0) {
        size_t n = len < sizeof buf ? (size_t)len : sizeof buf;
        np_disk_fill(seed, off, buf, n);
        size_t done = 0;
        while (done < n) {
            ssize_t w = pwrite(fd, buf + done, n - done, (off_t)(off + done));
            if (w < 0 && errno == EINTR)
                continue;
            if (w <= 0) {
                fprintf(stderr, "nbdpeer: write %s: %s\n", path, strerror(errno));
                return -1;
            }
            done += (size_t)w;
        }
        off += n;
        len -= n;
    }
    return 0;
}

static int open_new(const char *path)
{
    (void)unlink(path);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        fprintf(stderr, "nbdpeer: create %s: %s\n", path, strerror(errno));
    return fd;
}

static int close_checked(int fd, const char *path, int r)
{
    if (close(fd) != 0 && r == 0) {
        fprintf(stderr, "nbdpeer: close %s: %s\n", path, strerror(errno));
        r = -1;
    }
    return r;
}

int np_make_disk(const char *path, uint64_t size, uint32_t seed)
{
    int fd = open_new(path);
    if (fd < 0)
        return -1;
    int r = write_range(fd, path, 0, size, seed);
    return close_checked(fd, path, r);
}

bool np_sparse_is_data(uint64_t off, uint64_t period, uint64_t data_len)
{
    return period > 0 && off % period < data_len;
}

int np_make_sparse(const char *path, uint64_t size, uint64_t period, uint64_t data_len,
                   uint32_t seed)
{
    if (period == 0 || data_len == 0 || data_len > period || period % 4096 != 0 ||
        data_len % 4096 != 0) {
        fprintf(stderr, "nbdpeer: np_make_sparse: bad layout period %llu data %llu\n",
                (unsigned long long)period, (unsigned long long)data_len);
        return -1;
    }
    int fd = open_new(path);
    if (fd < 0)
        return -1;
    int r = 0;
    for (uint64_t base = 0; r == 0 && base < size; base += period) {
        uint64_t n = size - base < data_len ? size - base : data_len;
        r = write_range(fd, path, base, n, seed);
    }
    if (r == 0 && ftruncate(fd, (off_t)size) != 0) {
        fprintf(stderr, "nbdpeer: truncate %s: %s\n", path, strerror(errno));
        r = -1;
    }
    if (r == 0 && fsync(fd) != 0) { /* some file systems settle extents at writeback */
        fprintf(stderr, "nbdpeer: fsync %s: %s\n", path, strerror(errno));
        r = -1;
    }
    r = close_checked(fd, path, r);
    if (r != 0 || data_len == period || size <= data_len)
        return r; /* no hole to check */
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        fprintf(stderr, "nbdpeer: open %s: %s\n", path, strerror(errno));
        return -1;
    }
    off_t hole = lseek(fd, 0, SEEK_HOLE);
    off_t data = lseek(fd, (off_t)data_len, SEEK_DATA);
    (void)close(fd);
    uint64_t want_data = period < size ? period : size; /* no more data: ENXIO */
    bool ok = hole == (off_t)data_len &&
              (want_data < size ? data == (off_t)want_data : data < 0);
    return ok ? 0 : 1;
}
