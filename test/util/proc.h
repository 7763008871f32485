/*
 * proc.h - test helpers for running real peer programs (gnutls-serv, openssl s_server,
 * qemu-nbd, ...) under a deadline.
 *
 * Rules of use:
 *  - Every pid returned by tp_spawn*() must eventually be passed to tp_stop(), which is the
 *    only function that reaps it.  The tp_wait_*() functions notice a dead child without
 *    reaping it (waitid(WNOWAIT)), so the pid cannot be recycled before tp_stop() runs and
 *    tp_stop() never signals a stranger.
 *  - Children are placed in their own process group (pgid == pid); tp_stop() signals that
 *    group, so helpers forked by the peer are ended too (unless they called setsid()).
 *  - Not thread-safe: spawn from one thread (the pipe of tp_spawn_stdin_pipe() is made
 *    close-on-exec with fcntl(), which races with a concurrent fork in another thread).
 */
#ifndef SECHAN_TEST_UTIL_PROC_H
#define SECHAN_TEST_UTIL_PROC_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Monotonic milliseconds, and a sleep that resumes after signals. */
int64_t tp_now_ms(void);
void tp_sleep_ms(int ms);

/* Bind 127.0.0.1:0, read the kernel-chosen port back, close.  Returns the port or -1.
 * (Another process may take the port before the caller uses it; tests that race for ports
 * should retry on "address in use".) */
int tp_free_port(void);

/* Start argv[0] (searched on PATH) with argv, stdout and stderr appended to log_path
 * (created 0644 if missing; /dev/null when log_path is NULL), stdin from /dev/null, in a new
 * process group, with default signal dispositions and an empty signal mask.
 * Returns the pid, or -1 (with a message on stderr) if the program could not be started. */
pid_t tp_spawn(const char *const argv[], const char *log_path);

/* As tp_spawn(), but the child's stdin is the read end of a pipe whose write end (close-on-
 * exec) is stored in *stdin_fd.  Close *stdin_fd to give the child EOF (openssl s_server
 * ends its current connection on stdin EOF).  Writing after the child exited raises SIGPIPE
 * unless the caller ignores it.  On failure returns -1 and sets *stdin_fd to -1. */
pid_t tp_spawn_stdin_pipe(const char *const argv[], const char *log_path, int *stdin_fd);

/* Wait until something accepts TCP connections on 127.0.0.1:port.  Probes with connect()
 * every 15 ms; a successful probe is closed at once without sending a byte, so the server
 * sees a client that connects and leaves (gnutls-serv logs a failed handshake and carries
 * on; NOTE: openssl s_server -naccept N counts the probe as one of its N connections - use
 * tp_wait_listen_quiet() for it).  Returns 0 once listening, -1 if the child exited (not
 * reaped) or timeout_ms passed. */
int tp_wait_listen(pid_t pid, int port, int timeout_ms);

/* Like tp_wait_listen() but never connects: polls the kernel's table of listening TCP
 * sockets (/proc/net/tcp and /proc/net/tcp6, Linux) for port.  Falls back to the connect()
 * probe where /proc/net/tcp cannot be read.  Any address bound to the port counts. */
int tp_wait_listen_quiet(pid_t pid, int port, int timeout_ms);

/* Wait until a unix stream socket at path accepts connections (connect probe, closed at
 * once).  0 / -1 as for tp_wait_listen(). */
int tp_wait_unix(pid_t pid, const char *path, int timeout_ms);

/* Non-reaping liveness check: true while pid has not exited. */
bool tp_alive(pid_t pid);
/* Exit status of our child pid without reaping it: -2 still running, -1 not
 * our child (or already reaped), else the exit code (128 + signal if killed). */
int tp_peek_exit(pid_t pid);

/* End a child from tp_spawn*(): SIGTERM to its process group, wait up to timeout_ms for the
 * child to exit, else SIGKILL to the group; then SIGKILL whatever is left of the group (the
 * child is still an unreaped zombie at that point, so the group id cannot have been reused)
 * and reap the child.  Returns the child's exit code (0-255), or 128+signal number if it was
 * killed by a signal (143 = our SIGTERM, 137 = SIGKILL), or -1 on error (pid <= 0, not our
 * child, already reaped). */
int tp_stop(pid_t pid, int timeout_ms);

/* Stop every child tp_spawn*() started that tp_stop() has not reaped yet. Runs
 * by itself at exit. */
void tp_stop_all(void);
/* The same as a cmocka teardown, so a failed test leaves no peer behind for
 * the next one. */
int tp_stop_all_teardown(void **state);

/* Is name an executable regular file on PATH (or, if it contains '/', at that path)? */
bool tp_have_program(const char *name);

/* True if the environment variable CI is set and non-empty: tests should then fail, not
 * skip, when a peer program is missing. */
bool tp_in_ci(void);

/* Does the file (its first 64 KiB) hold text? Polls until wait_ms passed
 * (0: look once); for logs that a peer is still writing. */
bool tp_file_has(const char *path, const char *text, int wait_ms);
/* Copy a file (a peer's log) to stderr, each line after prefix. */
void tp_print_file(const char *path, const char *prefix);

/* Where our programs are built: $SECHAN_BIN_DIR if set and non-empty,
 * else "build/host". */
const char *tp_bin_dir(void);

/* $SECHAN_TEST_DIR if set and non-empty, else "build/test". */
const char *tp_build_dir(void);

#ifdef __cplusplus
}
#endif

#endif /* SECHAN_TEST_UTIL_PROC_H */
