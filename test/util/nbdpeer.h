/*
 * nbdpeer.h - start and stop real NBD servers (qemu-nbd 7.2, nbdkit 1.32, nbd-server 3.24) for
 * interop tests, with or without TLS, and make disk images whose every byte a test can predict.
 *
 * Built on proc.h: every server is started with tp_spawn(), waited for with a bounded quiet
 * wait (the kernel's socket tables are read, so no probe connection is ever made: a server
 * limited to one connection keeps it for the test) and ended with tp_stop().
 *
 * Credentials come from the test PKI (test/pki/mkpki.sh): np_pki("pki") is QEMU's x509 layout
 * (ca-cert.pem, server-*.pem, client-*.pem), np_pki("psk") a directory holding keys.psk (what
 * qemu wants), np_pki("keys.psk") the same key as a file (nbdkit, libnbd).
 *
 * nbd-server always daemonizes unless run with -d, and -d serves exactly one connection and
 * exits.  To keep the daemon as our own child, np_start() makes the calling process a child
 * subreaper (Linux prctl PR_SET_CHILD_SUBREAPER) the first time it starts nbd-server in
 * daemon mode: from then on every orphaned descendant of the test process is re-parented to it
 * instead of to init.  np_stop() reaps the orphans of the server it stops; other orphans are
 * left as zombies until the test process ends.
 *
 * Not thread-safe (as proc.h).  Linux only (/proc, prctl).
 */
#ifndef SECHAN_TEST_UTIL_NBDPEER_H
#define SECHAN_TEST_UTIL_NBDPEER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

enum np_server {
    NP_QEMU_NBD,      /* qemu-nbd -f raw FILE, foreground, persistent (-t)             */
    NP_NBDKIT_MEMORY, /* nbdkit -f memory SIZE (starts all zero, sparse)               */
    NP_NBDKIT_FILE,   /* nbdkit -f file FILE                                            */
    NP_NBD_SERVER     /* nbd-server -C CONF (daemon; see above)                         */
};

enum np_tls {
    NP_TLS_NONE,
    NP_TLS_X509,        /* server certificate only (not nbd-server: it always wants a client's) */
    NP_TLS_X509_VERIFY, /* and a client certificate from the test CA is required          */
    NP_TLS_PSK          /* user "alice" (not nbd-server)                                  */
};

struct np_opts {
    enum np_server server;
    enum np_tls tls;
    const char *file;        /* the disk image (qemu-nbd, nbdkit file, nbd-server)          */
    uint64_t mem_size;       /* nbdkit memory: size in bytes (0 = 1 MiB)                    */
    const char *export_name; /* NULL = "disk"; qemu-nbd -x, nbd-server section name; nbdkit
                                accepts any name and only uses it in np_uri()              */
    bool unix_socket;        /* listen on a unix socket in tp_build_dir() instead of TCP    */
    bool read_only;          /* -r / readonly = true                                        */
    bool one_connection;     /* exit when the first client leaves: qemu-nbd without -t,
                                nbdkit --filter=exitlast, nbd-server -d (foreground; serves
                                exactly one connection, then exits 0)                       */
    int connections;         /* qemu-nbd -e N, nbd-server maxconnections; 0 = default (8 /
                                unlimited); nbdkit ignores it                              */
    const char *creds;       /* NULL = the test PKI: x509 np_pki("pki"); PSK np_pki("psk")
                                for qemu-nbd (a dir with keys.psk), np_pki("keys.psk") for
                                nbdkit (a file).  Else that path, in the same form.        */
    const char *extra[8];    /* NULL-terminated extra arguments.  qemu-nbd: options, before
                                the file.  nbdkit: ones starting with '-' go before the
                                plugin, others (key=value) after it.  nbd-server: config
                                lines ("key = value") added to the export's section.       */
};

struct np_peer {
    pid_t pid;               /* the server process (our child); -1 when not running         */
    int port;                /* TCP port on 127.0.0.1; 0 with a unix socket                 */
    char socket_path[108];   /* unix socket (absolute), "" with TCP                         */
    char log[256];           /* server's stdout+stderr (nbd-server daemon: until it forks)  */
    char conf[256];          /* nbd-server config file                                      */
    char pidfile[256];       /* nbd-server pid file                                         */
    char export_name[64];
    enum np_server server;
    enum np_tls tls;
    int listen_ms;           /* spawn -> listening, milliseconds                            */
};

/* Start a server and wait (up to 10 s) until it listens.  0, or -1 with a message and the
 * tail of the server's log on stderr (the peer is then not running).  On TCP a free port is
 * picked (and the start retried if another process took it).  Combinations the server cannot
 * do (np_supported() false) fail. */
int np_start(struct np_peer *p, const struct np_opts *o);

/* End the server: its direct children (nbd-server's per-connection processes, which in 3.24
 * may spin after a TLS close) are SIGKILLed by PID, then tp_stop(): SIGTERM, up to 3 s, then
 * SIGKILL to its process group; then orphans of that group re-parented to us are reaped.
 * Returns the server's exit code as tp_stop() does (143 = our SIGTERM; 0 for a one_connection
 * server that already ended), or -1 if it was not running.  Sets p->pid = -1. */
int np_stop(struct np_peer *p);

/* Number of processes still present (running or zombie) that are pid, its children or
 * members of its process group: 0 after np_stop() has done its job. */
int np_leftovers(pid_t pid);

/* Can this server do this TLS mode? */
bool np_supported(enum np_server server, enum np_tls tls);

/* The program behind a server ("qemu-nbd", "nbdkit", "nbd-server"), for tp_have_program(). */
const char *np_program(enum np_server server);

/* Short names for messages and file names: "qemu-nbd", "nbdkit-memory", ..., "none", "x509",
 * "x509-verify", "psk". */
const char *np_server_name(enum np_server server);
const char *np_tls_name(enum np_tls tls);

/* A libnbd URI for the running peer, e.g. "nbd://127.0.0.1:PORT/disk",
 * "nbds://127.0.0.1:PORT/disk?tls-certificates=DIR",
 * "nbds://alice@127.0.0.1:PORT/disk?tls-psk-file=FILE",
 * "nbd+unix:///disk?socket=PATH" / "nbds+unix://alice@/disk?socket=PATH&tls-psk-file=FILE".
 * client_creds: NULL = np_pki("pki") (has a client certificate) / np_pki("keys.psk"); else
 * that directory / PSK file.  0, or -1 if it does not fit. */
int np_uri(const struct np_peer *p, const char *client_creds, char *buf, size_t size);

/* $SECHAN_PKI_DIR/sub (default build/test/pki-out/sub).  The result lives in one of 8
 * rotating static buffers. */
const char *np_pki(const char *sub);

/* Disk content.  Byte off of a disk made with seed is byte (off % 8) (little-endian) of the
 * 64-bit word w(off / 8), where, with all arithmetic mod 2^64,
 *     z = i ^ (seed * 0x9E3779B97F4A7C15)
 *     z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9
 *     z = (z ^ (z >> 27)) * 0x94D049BB133111EB
 *     w(i) = z ^ (z >> 31)                           (the splitmix64 finalizer)
 * np_disk_fill() writes len such bytes starting at offset off into buf. */
uint8_t np_disk_byte(uint32_t seed, uint64_t off);
void np_disk_fill(uint32_t seed, uint64_t off, void *buf, size_t len);

/* Create (or replace) path as a regular file of size bytes of np_disk_byte(seed, off).
 * 0, or -1 with a message on stderr. */
int np_make_disk(const char *path, uint64_t size, uint32_t seed);

/* Create (or replace) path as a sparse file of size bytes: for every k >= 0 the bytes
 * [k * period, k * period + data_len) (clipped to size) are written with np_disk_byte(seed,
 * off) (the same bytes np_make_disk() would put there); every other byte is a hole that
 * reads as zero.  period and data_len must be multiples of 4096 with 0 < data_len <= period.
 * E.g. period 1 MiB, data_len 64 KiB: data in the first 64 KiB of every MiB.  (If size is not
 * a multiple of period, the file ends with a hole or clipped data.)
 * Returns 0 if the file system reports the holes (checked with SEEK_DATA/SEEK_HOLE on the
 * first period), 1 if the file was made but the file system shows no hole there (then a
 * server cannot report holes either), -1 on error (message on stderr). */
int np_make_sparse(const char *path, uint64_t size, uint64_t period, uint64_t data_len,
                   uint32_t seed);

/* Is offset off data (true) or a hole (false) in a file made by np_make_sparse()? */
bool np_sparse_is_data(uint64_t off, uint64_t period, uint64_t data_len);

#ifdef __cplusplus
}
#endif

#endif /* SECHAN_TEST_UTIL_NBDPEER_H */
