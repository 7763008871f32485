/*
 * proc.c - test helpers for running real peer programs under a deadline.  See proc.h.
 */
#define _POSIX_C_SOURCE 200809L

#include "proc.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <signal.h>
#include <spawn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

#define TP_POLL_MS 15

/* ---- time ---------------------------------------------------------------------------- */

int64_t tp_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + (int64_t)(ts.tv_nsec / 1000000);
}

void tp_sleep_ms(int ms)
{
    struct timespec ts;
    ts.tv_sec = ms / 1000;
    ts.tv_nsec = (long)(ms % 1000) * 1000000L;
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

/* ---- ports ----------------------------------------------------------------------------- */

int tp_free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return -1;
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    sa.sin_port = 0;
    socklen_t len = sizeof sa;
    int port = -1;
    if (bind(fd, (struct sockaddr *)&sa, sizeof sa) == 0 &&
        getsockname(fd, (struct sockaddr *)&sa, &len) == 0)
        port = ntohs(sa.sin_port);
    close(fd);
    return port > 0 ? port : -1;
}

/* ---- spawning -------------------------------------------------------------------------- */

static pid_t spawn_common(const char *const argv[], const char *log_path, int stdin_read_fd)
{
    if (argv == NULL || argv[0] == NULL) {
        fprintf(stderr, "tp_spawn: empty argv\n");
        return -1;
    }

    posix_spawn_file_actions_t fa;
    posix_spawnattr_t attr;
    int rc = posix_spawn_file_actions_init(&fa);
    if (rc != 0) {
        fprintf(stderr, "tp_spawn: file_actions_init: %s\n", strerror(rc));
        return -1;
    }
    rc = posix_spawnattr_init(&attr);
    if (rc != 0) {
        posix_spawn_file_actions_destroy(&fa);
        fprintf(stderr, "tp_spawn: spawnattr_init: %s\n", strerror(rc));
        return -1;
    }

    const char *out = log_path != NULL ? log_path : "/dev/null";
    if (stdin_read_fd >= 0)
        rc = posix_spawn_file_actions_adddup2(&fa, stdin_read_fd, STDIN_FILENO);
    else
        rc = posix_spawn_file_actions_addopen(&fa, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
    if (rc == 0)
        rc = posix_spawn_file_actions_addopen(&fa, STDOUT_FILENO, out,
                                              O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (rc == 0)
        rc = posix_spawn_file_actions_adddup2(&fa, STDOUT_FILENO, STDERR_FILENO);

    /* Own process group; default dispositions for signals a test runner may have ignored
     * or blocked (an inherited SIG_IGN for SIGTERM would make tp_stop() wait in vain). */
    sigset_t def, empty;
    sigemptyset(&empty);
    sigemptyset(&def);
    sigaddset(&def, SIGTERM);
    sigaddset(&def, SIGINT);
    sigaddset(&def, SIGHUP);
    sigaddset(&def, SIGPIPE);
    sigaddset(&def, SIGCHLD);
    sigaddset(&def, SIGQUIT);
    if (rc == 0)
        rc = posix_spawnattr_setflags(&attr, (short)(POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK |
                                                     POSIX_SPAWN_SETSIGDEF));
    if (rc == 0)
        rc = posix_spawnattr_setpgroup(&attr, 0);
    if (rc == 0)
        rc = posix_spawnattr_setsigmask(&attr, &empty);
    if (rc == 0)
        rc = posix_spawnattr_setsigdefault(&attr, &def);

    pid_t pid = -1;
    if (rc == 0) {
        /* posix_spawnp() takes char *const argv[]; the strings are not modified. */
        char *const *args;
        memcpy(&args, &argv, sizeof args);
        rc = posix_spawnp(&pid, argv[0], &fa, &attr, args, environ);
    }
    if (rc != 0) {
        fprintf(stderr, "tp_spawn: cannot start %s (log %s): %s\n", argv[0], out, strerror(rc));
        pid = -1;
    }
    posix_spawnattr_destroy(&attr);
    posix_spawn_file_actions_destroy(&fa);
    return pid;
}

/* Every child we start, until tp_stop() reaps it: a test that fails
 * half-way (cmocka jumps out of it) must not leave its peers running. */
#define TP_MAX_CHILDREN 64
static pid_t children[TP_MAX_CHILDREN];
static bool atexit_set;

static void forget_child(pid_t pid)
{
    for (int i = 0; i < TP_MAX_CHILDREN; i++) {
        if (children[i] == pid)
            children[i] = 0;
    }
}

void tp_stop_all(void)
{
    for (int i = 0; i < TP_MAX_CHILDREN; i++) {
        if (children[i] > 0)
            (void)tp_stop(children[i], 2000);
    }
}

int tp_stop_all_teardown(void **state)
{
    (void)state;
    tp_stop_all();
    return 0;
}

static void remember_child(pid_t pid)
{
    if (!atexit_set) {
        atexit(tp_stop_all);
        atexit_set = true;
    }
    for (int i = 0; i < TP_MAX_CHILDREN; i++) {
        if (children[i] == 0) {
            children[i] = pid;
            return;
        }
    }
    fprintf(stderr, "tp_spawn: more than %d children at once; pid %d untracked\n",
            TP_MAX_CHILDREN, (int)pid);
}

pid_t tp_spawn(const char *const argv[], const char *log_path)
{
    pid_t pid = spawn_common(argv, log_path, -1);
    if (pid > 0)
        remember_child(pid);
    return pid;
}

pid_t tp_spawn_stdin_pipe(const char *const argv[], const char *log_path, int *stdin_fd)
{
    if (stdin_fd == NULL)
        return -1;
    *stdin_fd = -1;
    int p[2];
    if (pipe(p) != 0) {
        fprintf(stderr, "tp_spawn_stdin_pipe: pipe: %s\n", strerror(errno));
        return -1;
    }
    /* Both ends close-on-exec: the child gets its stdin through dup2 (which clears the flag
     * on the copy); no other child may inherit the write end, or EOF would never come. */
    if (fcntl(p[0], F_SETFD, FD_CLOEXEC) != 0 || fcntl(p[1], F_SETFD, FD_CLOEXEC) != 0) {
        fprintf(stderr, "tp_spawn_stdin_pipe: fcntl: %s\n", strerror(errno));
        close(p[0]);
        close(p[1]);
        return -1;
    }
    pid_t pid = spawn_common(argv, log_path, p[0]);
    if (pid > 0)
        remember_child(pid);
    close(p[0]);
    if (pid < 0) {
        close(p[1]);
        return -1;
    }
    *stdin_fd = p[1];
    return pid;
}

/* ---- liveness / waiting ---------------------------------------------------------------- */

int tp_peek_exit(pid_t pid)
{
    if (pid <= 0)
        return -1;
    siginfo_t si;
    memset(&si, 0, sizeof si);
    int rc;
    do {
        rc = waitid(P_PID, (id_t)pid, &si, WEXITED | WNOHANG | WNOWAIT);
    } while (rc != 0 && errno == EINTR);
    if (rc != 0)
        return -1; /* not our child (or already reaped) */
    if (si.si_pid == 0)
        return -2;
    return si.si_code == CLD_EXITED ? si.si_status : 128 + si.si_status;
}

bool tp_alive(pid_t pid)
{
    return tp_peek_exit(pid) == -2;
}

static int probe_connect(const struct sockaddr *sa, socklen_t len, int family)
{
    int fd = socket(family, SOCK_STREAM, 0);
    if (fd < 0)
        return -1;
    (void)fcntl(fd, F_SETFD, FD_CLOEXEC);
    int rc;
    do {
        rc = connect(fd, sa, len);
    } while (rc != 0 && errno == EINTR);
    close(fd); /* no byte sent: the peer sees connect + FIN */
    return rc == 0 ? 0 : -1;
}

static int probe_tcp(int port)
{
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    sa.sin_port = htons((uint16_t)port);
    return probe_connect((const struct sockaddr *)&sa, sizeof sa, AF_INET);
}

/* 1: a LISTEN socket on port is in the table; 0: none; -1: table not readable. */
static int proc_net_listening(const char *table, int port)
{
    FILE *f = fopen(table, "r");
    if (f == NULL)
        return -1;
    char line[512];
    int found = 0;
    if (fgets(line, sizeof line, f) == NULL) { /* header */
        fclose(f);
        return -1;
    }
    while (!found && fgets(line, sizeof line, f) != NULL) {
        /* "  sl: ADDR:PORT REMADDR:PORT ST ..." with hex PORT and ST 0A = LISTEN */
        char local[128], remote[128], st[8];
        if (sscanf(line, " %*[^:]: %127s %127s %7s", local, remote, st) != 3)
            continue;
        char *colon = strrchr(local, ':');
        if (colon == NULL)
            continue;
        long p = strtol(colon + 1, NULL, 16);
        if (p == port && strcmp(st, "0A") == 0)
            found = 1;
    }
    fclose(f);
    return found;
}

static int probe_tcp_quiet(int port)
{
    int a = proc_net_listening("/proc/net/tcp", port);
    if (a == 1)
        return 0;
    int b = proc_net_listening("/proc/net/tcp6", port);
    if (b == 1)
        return 0;
    if (a < 0 && b < 0)
        return probe_tcp(port); /* no /proc: fall back to connecting */
    return -1;
}

static int wait_until(pid_t pid, int timeout_ms, int (*probe)(const void *), const void *arg)
{
    int64_t deadline = tp_now_ms() + (timeout_ms > 0 ? timeout_ms : 0);
    for (;;) {
        if (probe(arg) == 0)
            return 0;
        if (!tp_alive(pid))
            return -1;
        int64_t left = deadline - tp_now_ms();
        if (left <= 0)
            return -1;
        tp_sleep_ms(left < TP_POLL_MS ? (int)left : TP_POLL_MS);
    }
}

static int probe_tcp_cb(const void *arg)
{
    return probe_tcp(*(const int *)arg);
}

static int probe_tcp_quiet_cb(const void *arg)
{
    return probe_tcp_quiet(*(const int *)arg);
}

static int probe_unix_cb(const void *arg)
{
    const char *path = arg;
    struct sockaddr_un sa;
    memset(&sa, 0, sizeof sa);
    sa.sun_family = AF_UNIX;
    size_t n = strlen(path);
    if (n >= sizeof sa.sun_path)
        return -1;
    memcpy(sa.sun_path, path, n + 1);
    return probe_connect((const struct sockaddr *)&sa, (socklen_t)sizeof sa, AF_UNIX);
}

int tp_wait_listen(pid_t pid, int port, int timeout_ms)
{
    if (pid <= 0 || port <= 0 || port > 65535)
        return -1;
    return wait_until(pid, timeout_ms, probe_tcp_cb, &port);
}

int tp_wait_listen_quiet(pid_t pid, int port, int timeout_ms)
{
    if (pid <= 0 || port <= 0 || port > 65535)
        return -1;
    return wait_until(pid, timeout_ms, probe_tcp_quiet_cb, &port);
}

int tp_wait_unix(pid_t pid, const char *path, int timeout_ms)
{
    if (pid <= 0 || path == NULL)
        return -1;
    struct sockaddr_un sa;
    if (strlen(path) >= sizeof sa.sun_path) {
        fprintf(stderr, "tp_wait_unix: path too long: %s\n", path);
        return -1;
    }
    return wait_until(pid, timeout_ms, probe_unix_cb, path);
}

/* ---- stopping -------------------------------------------------------------------------- */

/* Waits (without reaping) up to timeout_ms for pid to exit.  1 exited, 0 still running,
 * -1 not our child. */
static int wait_exit_noreap(pid_t pid, int timeout_ms)
{
    int64_t deadline = tp_now_ms() + (timeout_ms > 0 ? timeout_ms : 0);
    for (;;) {
        siginfo_t si;
        memset(&si, 0, sizeof si);
        int rc = waitid(P_PID, (id_t)pid, &si, WEXITED | WNOHANG | WNOWAIT);
        if (rc != 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        if (si.si_pid != 0)
            return 1;
        int64_t left = deadline - tp_now_ms();
        if (left <= 0)
            return 0;
        tp_sleep_ms(left < 10 ? (int)left : 10);
    }
}

int tp_stop(pid_t pid, int timeout_ms)
{
    if (pid <= 0)
        return -1;
    forget_child(pid);
    /* Check it is our unreaped child before signalling anything. */
    int st = wait_exit_noreap(pid, 0);
    if (st < 0)
        return -1;
    if (st == 0) {
        (void)kill(-pid, SIGTERM); /* the group made by tp_spawn (pgid == pid) */
        (void)kill(pid, SIGTERM);  /* in case the child left the group */
        st = wait_exit_noreap(pid, timeout_ms);
        if (st < 0)
            return -1;
        if (st == 0) {
            (void)kill(-pid, SIGKILL);
            (void)kill(pid, SIGKILL);
        }
    }
    /* The child is exited-or-dying but not reaped, so pgid == pid cannot name another
     * group: finish off whatever it forked that is still in its group. */
    (void)kill(-pid, SIGKILL);

    int status = 0;
    pid_t r;
    do {
        r = waitpid(pid, &status, 0);
    } while (r < 0 && errno == EINTR);
    if (r != pid)
        return -1;
    if (WIFEXITED(status))
        return WEXITSTATUS(status);
    if (WIFSIGNALED(status))
        return 128 + WTERMSIG(status);
    return -1;
}

/* ---- environment ----------------------------------------------------------------------- */

static bool is_exec_file(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0 && S_ISREG(sb.st_mode) && access(path, X_OK) == 0;
}

bool tp_have_program(const char *name)
{
    if (name == NULL || name[0] == '\0')
        return false;
    if (strchr(name, '/') != NULL)
        return is_exec_file(name);
    const char *path = getenv("PATH");
    if (path == NULL)
        path = "/usr/bin:/bin";
    size_t nlen = strlen(name);
    const char *p = path;
    for (;;) {
        const char *end = strchr(p, ':');
        size_t dlen = end != NULL ? (size_t)(end - p) : strlen(p);
        char buf[4096];
        if (dlen == 0) {
            if (nlen + 1 <= sizeof buf) {
                memcpy(buf, name, nlen + 1); /* empty entry = current directory */
                if (is_exec_file(buf))
                    return true;
            }
        } else if (dlen + 1 + nlen + 1 <= sizeof buf) {
            memcpy(buf, p, dlen);
            buf[dlen] = '/';
            memcpy(buf + dlen + 1, name, nlen + 1);
            if (is_exec_file(buf))
                return true;
        }
        if (end == NULL)
            break;
        p = end + 1;
    }
    return false;
}

bool tp_in_ci(void)
{
    const char *ci = getenv("CI");
    return ci != NULL && ci[0] != '\0';
}

const char *tp_bin_dir(void)
{
    const char *d = getenv("SECHAN_BIN_DIR");
    return (d != NULL && d[0] != '\0') ? d : "build/host";
}

const char *tp_build_dir(void)
{
    const char *d = getenv("SECHAN_TEST_DIR");
    return (d != NULL && d[0] != '\0') ? d : "build/test";
}

bool tp_file_has(const char *path, const char *text, int wait_ms)
{
    static char buf[1 << 16];
    int64_t end = tp_now_ms() + wait_ms;
    for (;;) {
        FILE *f = fopen(path, "r");
        if (f != NULL) {
            size_t n = fread(buf, 1, sizeof(buf) - 1, f);
            fclose(f);
            buf[n] = '\0';
            if (strstr(buf, text) != NULL)
                return true;
        }
        if (tp_now_ms() >= end)
            return false;
        tp_sleep_ms(20);
    }
}

void tp_print_file(const char *path, const char *prefix)
{
    char line[512];
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return;
    while (fgets(line, sizeof(line), f) != NULL)
        fprintf(stderr, "%s%s", prefix, line);
    fclose(f);
}
