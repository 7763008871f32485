/*
 * test_interop_proc.c - checks the test/util/proc.c helpers against real peers.
 *
 * Needs the PKI made by test/pki/mkpki.sh in $SECHAN_PKI_DIR (default build/test/pki-out).
 * Peer programs that are missing make their test skip, or fail when $CI is set.
 */
#define _POSIX_C_SOURCE 200809L

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "../util/need.h"
#include "../util/proc.h"

static char pki_dir[1024];

static long elapsed_ms(const struct timespec *t0)
{
    struct timespec t1;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    return (long)(t1.tv_sec - t0->tv_sec) * 1000L + (t1.tv_nsec - t0->tv_nsec) / 1000000L;
}

static void start_clock(struct timespec *t0)
{
    clock_gettime(CLOCK_MONOTONIC, t0);
}

static void msleep(long ms)
{
    struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

/* Skip (or fail in CI) when a program is missing. */
/* Path of a PKI file; skips (or fails in CI) when mkpki.sh has not been run. */
static const char *pki(const char *rel, char *buf, size_t n)
{
    int w = snprintf(buf, n, "%s/%s", pki_dir, rel);
    assert_true(w > 0 && (size_t)w < n);
    if (access(buf, R_OK) != 0) {
        if (tp_in_ci())
            fail_msg("%s missing: run test/pki/mkpki.sh %s", buf, pki_dir);
        print_message("%s missing (run test/pki/mkpki.sh %s): skipping\n", buf, pki_dir);
        skip();
    }
    return buf;
}

/* Log file in the build dir when it exists, else no log. */
static const char *log_path(const char *name, char *buf, size_t n)
{
    struct stat sb;
    const char *d = tp_build_dir();
    if (stat(d, &sb) != 0 || !S_ISDIR(sb.st_mode))
        return NULL;
    int w = snprintf(buf, n, "%s/proc_selftest-%s.log", d, name);
    return (w > 0 && (size_t)w < n) ? buf : NULL;
}

static char *read_file(const char *path)
{
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return NULL;
    static char buf[65536];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

/* Is a process gone (no such pid, or only a zombie left for init to reap)? */
static bool pid_gone(pid_t pid)
{
    if (kill(pid, 0) != 0)
        return errno == ESRCH;
    char p[64];
    snprintf(p, sizeof p, "/proc/%ld/stat", (long)pid);
    FILE *f = fopen(p, "r");
    if (f == NULL)
        return true;
    char line[512];
    bool zombie = false;
    if (fgets(line, sizeof line, f) != NULL) {
        char *rp = strrchr(line, ')');
        zombie = rp != NULL && rp[1] == ' ' && rp[2] == 'Z';
    }
    fclose(f);
    return zombie;
}

/* Is 127.0.0.1:port (and not 0.0.0.0:port) in the LISTEN table? */
static bool listens_on_loopback_only(int port)
{
    FILE *f = fopen("/proc/net/tcp", "r");
    if (f == NULL)
        return true; /* cannot tell */
    char line[512], want_lo[32], want_any[32];
    snprintf(want_lo, sizeof want_lo, "0100007F:%04X", (unsigned)port);
    snprintf(want_any, sizeof want_any, "00000000:%04X", (unsigned)port);
    bool lo = false, any = false;
    while (fgets(line, sizeof line, f) != NULL) {
        if (strstr(line, want_lo) != NULL && strstr(line, " 0A ") != NULL)
            lo = true;
        if (strstr(line, want_any) != NULL && strstr(line, " 0A ") != NULL)
            any = true;
    }
    fclose(f);
    return lo && !any;
}

/* Start a server that must listen on 127.0.0.1:port within 5 s (probed by
 * connecting), log under logname; says how long it took. */
static pid_t spawn_listening(const char *const argv[], const char *logname, int port,
                             const char *what)
{
    char lg[1100];
    struct timespec t0;
    start_clock(&t0);
    pid_t pid = tp_spawn(argv, log_path(logname, lg, sizeof lg));
    assert_true(pid > 0);
    int rc = tp_wait_listen(pid, port, 5000);
    long t = elapsed_ms(&t0);
    if (rc != 0)
        tp_stop(pid, 1000);
    assert_int_equal(rc, 0);
    print_message("%s listening after %ld ms\n", what, t);
    return pid;
}

/* ---- tests without peers ------------------------------------------------------------- */

static void test_free_port(void **state)
{
    (void)state;
    int a = tp_free_port();
    int b = tp_free_port();
    assert_true(a > 0 && a <= 65535);
    assert_true(b > 0 && b <= 65535);
}

static void test_env_helpers(void **state)
{
    (void)state;
    assert_true(tp_have_program("sh"));
    assert_true(tp_have_program("/bin/sh"));
    assert_false(tp_have_program("sechan-no-such-program-xyz"));
    assert_false(tp_have_program(""));

    char *old = getenv("SECHAN_TEST_DIR");
    char *saved = old != NULL ? strdup(old) : NULL;
    assert_int_equal(setenv("SECHAN_TEST_DIR", "/tmp/x", 1), 0);
    assert_string_equal(tp_build_dir(), "/tmp/x");
    assert_int_equal(setenv("SECHAN_TEST_DIR", "", 1), 0);
    assert_string_equal(tp_build_dir(), "build/test");
    assert_int_equal(unsetenv("SECHAN_TEST_DIR"), 0);
    assert_string_equal(tp_build_dir(), "build/test");
    if (saved != NULL) {
        setenv("SECHAN_TEST_DIR", saved, 1);
        free(saved);
    }

    char *ci = getenv("CI");
    char *saved_ci = ci != NULL ? strdup(ci) : NULL;
    setenv("CI", "", 1);
    assert_false(tp_in_ci());
    setenv("CI", "true", 1);
    assert_true(tp_in_ci());
    unsetenv("CI");
    assert_false(tp_in_ci());
    if (saved_ci != NULL) {
        setenv("CI", saved_ci, 1);
        free(saved_ci);
    }
}

static void test_spawn_missing(void **state)
{
    (void)state;
    const char *argv[] = { "sechan-no-such-program-xyz", NULL };
    assert_int_equal(tp_spawn(argv, NULL), -1);
    int fd = 123;
    assert_int_equal(tp_spawn_stdin_pipe(argv, NULL, &fd), -1);
    assert_int_equal(fd, -1);
    assert_int_equal(tp_stop(-1, 100), -1);
}

static void test_sleep_stopped_fast(void **state)
{
    (void)state;
    const char *argv[] = { "sleep", "30", NULL };
    pid_t pid = tp_spawn(argv, NULL);
    assert_true(pid > 0);
    assert_true(tp_alive(pid));
    assert_int_equal(getpgid(pid), pid); /* own process group */

    /* Nothing listens on a fresh free port: times out while the child lives. */
    struct timespec t0;
    start_clock(&t0);
    assert_int_equal(tp_wait_listen(pid, tp_free_port(), 100), -1);
    long waited = elapsed_ms(&t0);
    assert_true(waited >= 90 && waited < 1000);

    start_clock(&t0);
    assert_int_equal(tp_stop(pid, 2000), 128 + SIGTERM);
    assert_true(elapsed_ms(&t0) < 2000);
    assert_int_equal(tp_stop(pid, 100), -1); /* already reaped */
}

static void test_sigterm_ignored_gets_sigkill(void **state)
{
    (void)state;
    const char *argv[] = { "sh", "-c", "trap '' TERM; sleep 30 & wait; sleep 30", NULL };
    pid_t pid = tp_spawn(argv, NULL);
    assert_true(pid > 0);
    msleep(100); /* let the shell install its trap */
    struct timespec t0;
    start_clock(&t0);
    assert_int_equal(tp_stop(pid, 300), 128 + SIGKILL);
    long t = elapsed_ms(&t0);
    assert_true(t >= 250 && t < 2000);
}

static void test_dead_child_detected(void **state)
{
    (void)state;
    const char *argv[] = { "sh", "-c", "exit 3", NULL };
    pid_t pid = tp_spawn(argv, NULL);
    assert_true(pid > 0);
    struct timespec t0;
    start_clock(&t0);
    assert_int_equal(tp_wait_listen(pid, tp_free_port(), 5000), -1);
    assert_true(elapsed_ms(&t0) < 2000);
    assert_false(tp_alive(pid));
    assert_int_equal(tp_stop(pid, 1000), 3); /* status of a child that ended on its own */
}

static void test_group_is_ended(void **state)
{
    (void)state;
    char path[] = "/tmp/sechan-proc-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    char script[256];
    snprintf(script, sizeof script, "sleep 30 & echo $! > %s; wait", path);
    const char *argv[] = { "sh", "-c", script, NULL };
    pid_t pid = tp_spawn(argv, NULL);
    assert_true(pid > 0);

    long gpid = 0;
    for (int i = 0; i < 200 && gpid <= 0; i++) {
        char *s = read_file(path);
        if (s != NULL)
            gpid = strtol(s, NULL, 10);
        if (gpid <= 0)
            msleep(10);
    }
    unlink(path);
    assert_true(gpid > 0);
    assert_int_equal(getpgid((pid_t)gpid), pid);

    assert_true(tp_stop(pid, 2000) >= 0);
    bool gone = false;
    for (int i = 0; i < 100 && !gone; i++) {
        gone = pid_gone((pid_t)gpid);
        if (!gone)
            msleep(10);
    }
    assert_true(gone);
}

static void test_stdin_pipe(void **state)
{
    (void)state;
    char path[] = "/tmp/sechan-proc-XXXXXX";
    int lfd = mkstemp(path);
    assert_true(lfd >= 0);
    close(lfd);
    const char *argv[] = { "cat", NULL };
    int in = -1;
    pid_t pid = tp_spawn_stdin_pipe(argv, path, &in);
    assert_true(pid > 0);
    assert_true(in >= 0);
    assert_int_equal(write(in, "abc\n", 4), 4);
    close(in); /* EOF: cat exits by itself */
    for (int i = 0; i < 200 && tp_alive(pid); i++)
        msleep(10);
    assert_false(tp_alive(pid));
    assert_int_equal(tp_stop(pid, 1000), 0);
    char *s = read_file(path);
    unlink(path);
    assert_non_null(s);
    assert_string_equal(s, "abc\n");
}

/* ---- peers ----------------------------------------------------------------------------- */

static void test_gnutls_serv_x509(void **state)
{
    (void)state;
    tp_need_program("gnutls-serv");
    char ca[1100], cert[1100], key[1100], portstr[16];
    pki("pki/ca-cert.pem", ca, sizeof ca);
    pki("pki/server-cert.pem", cert, sizeof cert);
    pki("pki/server-key.pem", key, sizeof key);
    int port = tp_free_port();
    assert_true(port > 0);
    snprintf(portstr, sizeof portstr, "%d", port);
    const char *argv[] = { "gnutls-serv", "--echo", "-p", portstr, "--x509cafile", ca,
                           "--x509certfile", cert, "--x509keyfile", key, NULL };
    pid_t pid = spawn_listening(argv, "gnutls-serv", port, "gnutls-serv x509");
    msleep(50);
    assert_true(tp_alive(pid)); /* the connect probe did not upset it */
    /* gnutls-serv catches SIGTERM ("Exiting via signal 15") and exits with status 1. */
    assert_int_equal(tp_stop(pid, 2000), 1);
}

static void test_gnutls_serv_psk(void **state)
{
    (void)state;
    tp_need_program("gnutls-serv");
    char psk[1100], portstr[16];
    pki("keys.psk", psk, sizeof psk);
    int port = tp_free_port();
    snprintf(portstr, sizeof portstr, "%d", port);
    const char *argv[] = { "gnutls-serv", "--echo", "-p", portstr, "--pskpasswd", psk, NULL };
    pid_t pid = spawn_listening(argv, "gnutls-serv-psk", port, "gnutls-serv psk");
    assert_int_equal(tp_stop(pid, 2000), 1);
}

static void test_openssl_s_server(void **state)
{
    (void)state;
    tp_need_program("openssl");
    char cert[1100], key[1100], lg[1100], accept[64];
    pki("pki/server-cert.pem", cert, sizeof cert);
    pki("pki/server-key.pem", key, sizeof key);
    int port = tp_free_port();
    snprintf(accept, sizeof accept, "127.0.0.1:%d", port);
    /* -naccept 1: a connect() probe would use up the one connection, so wait quietly. */
    const char *argv[] = { "openssl", "s_server", "-accept", accept, "-cert", cert, "-key", key,
                           "-naccept", "1", NULL };
    int in = -1;
    struct timespec t0;
    start_clock(&t0);
    pid_t pid = tp_spawn_stdin_pipe(argv, log_path("openssl-s_server", lg, sizeof lg), &in);
    assert_true(pid > 0);
    int rc = tp_wait_listen_quiet(pid, port, 5000);
    long t = elapsed_ms(&t0);
    if (rc != 0)
        tp_stop(pid, 1000);
    assert_int_equal(rc, 0);
    print_message("openssl s_server x509 listening after %ld ms\n", t);
    assert_true(listens_on_loopback_only(port));
    msleep(50);
    assert_true(tp_alive(pid));
    assert_int_equal(tp_stop(pid, 2000), 128 + SIGTERM);
    close(in);
}

static void test_openssl_s_server_psk_rev(void **state)
{
    (void)state;
    tp_need_program("openssl");
    char psk[1100], accept[64];
    pki("keys.psk", psk, sizeof psk);
    char *line = read_file(psk);
    assert_non_null(line);
    char *colon = strchr(line, ':');
    assert_non_null(colon);
    char hex[80];
    size_t n = strcspn(colon + 1, "\r\n");
    assert_true(n == 64);
    memcpy(hex, colon + 1, n);
    hex[n] = '\0';
    int port = tp_free_port();
    snprintf(accept, sizeof accept, "127.0.0.1:%d", port);
    /* -rev never reads stdin, so /dev/null is fine; the connect probe is harmless here
     * because there is no -naccept. */
    const char *argv[] = { "openssl", "s_server", "-accept", accept, "-nocert", "-psk", hex,
                           "-psk_identity", "alice", "-rev", NULL };
    pid_t pid = spawn_listening(argv, "openssl-s_server-psk", port, "openssl s_server psk");
    msleep(50);
    assert_true(tp_alive(pid));
    assert_int_equal(tp_stop(pid, 2000), 128 + SIGTERM);
}

static void test_openssl_unix(void **state)
{
    (void)state;
    tp_need_program("openssl");
    char cert[1100], key[1100], lg[1100];
    pki("pki/server-cert.pem", cert, sizeof cert);
    pki("pki/server-key.pem", key, sizeof key);
    char dir[] = "/tmp/sechan-proc-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char sock[128];
    snprintf(sock, sizeof sock, "%s/s.sock", dir);
    const char *argv[] = { "openssl", "s_server", "-unix", sock, "-cert", cert, "-key", key,
                           "-rev", NULL };
    pid_t pid = tp_spawn(argv, log_path("openssl-s_server-unix", lg, sizeof lg));
    assert_true(pid > 0);
    int rc = tp_wait_unix(pid, sock, 5000);
    int st = tp_stop(pid, 2000);
    unlink(sock);
    rmdir(dir);
    assert_int_equal(rc, 0);
    assert_int_equal(st, 128 + SIGTERM);
}

int main(void)
{
    const char *d = getenv("SECHAN_PKI_DIR");
    snprintf(pki_dir, sizeof pki_dir, "%s", (d != NULL && d[0] != '\0') ? d : "build/test/pki-out");

    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_free_port),
        cmocka_unit_test(test_env_helpers),
        cmocka_unit_test(test_spawn_missing),
        cmocka_unit_test(test_sleep_stopped_fast),
        cmocka_unit_test(test_sigterm_ignored_gets_sigkill),
        cmocka_unit_test(test_dead_child_detected),
        cmocka_unit_test(test_group_is_ended),
        cmocka_unit_test(test_stdin_pipe),
        cmocka_unit_test(test_gnutls_serv_x509),
        cmocka_unit_test(test_gnutls_serv_psk),
        cmocka_unit_test(test_openssl_s_server),
        cmocka_unit_test(test_openssl_s_server_psk_rev),
        cmocka_unit_test(test_openssl_unix),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
