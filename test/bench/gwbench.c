/* gwbench: the guest and the backend of the gateway benchmark
 * (scripts/bench.sh, make bench).
 *
 *   gwbench backend PATH
 *       a unix-socket server: "U" + u64 n: read n bytes, answer "K";
 *       "D" + u64 n: send n bytes. One thread per connection.
 *   gwbench client PORT MODE MIB
 *       connect to sechan-gw on 127.0.0.1:PORT, secure and authenticate
 *       as MODE says, then upload and download MIB MiB through it and print
 *       "gwbench: MODE up X MB/s down Y MB/s".
 *       MODE: scram (SCRAM-SHA-256, no layer), digest-int, digest-des,
 *       digest-3des (DIGEST-MD5 auth-int / auth-conf), tls-psk (TLS 1.3
 *       PSK + SCRAM-SHA-256-PLUS).
 */
#define _POSIX_C_SOURCE 200809L
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "sechan/port.h"
#include "sechan/sasl.h"
#include "sechan/tcp.h"
#include "sechan/tls.h"

#define CHUNK (256u * 1024u)

static uint8_t chunk[CHUNK];

static int read_all_fd(int fd, void *buf, size_t len)
{
    uint8_t *p = buf;
    while (len > 0) {
        ssize_t n = read(fd, p, len);
        if (n <= 0)
            return -1;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

static int write_all_fd(int fd, const void *buf, size_t len)
{
    const uint8_t *p = buf;
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n <= 0)
            return -1;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

static void *backend_conn(void *arg)
{
    int fd = (int)(intptr_t)arg;
    static __thread uint8_t buf[CHUNK];
    for (;;) {
        uint8_t hdr[9];
        if (read_all_fd(fd, hdr, sizeof(hdr)) != 0)
            break;
        uint64_t n = 0;
        for (int i = 1; i < 9; i++)
            n = n << 8 | hdr[i];
        if (hdr[0] == 'U') {
            while (n > 0) {
                size_t k = n < CHUNK ? (size_t)n : CHUNK;
                ssize_t r = read(fd, buf, k);
                if (r <= 0)
                    goto out;
                n -= (uint64_t)r;
            }
            if (write_all_fd(fd, "K", 1) != 0)
                break;
        } else if (hdr[0] == 'D') {
            while (n > 0) {
                size_t k = n < CHUNK ? (size_t)n : CHUNK;
                if (write_all_fd(fd, buf, k) != 0)
                    goto out;
                n -= k;
            }
        } else {
            break;
        }
    }
out:
    close(fd);
    return NULL;
}

static int backend(const char *path)
{
    int l = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    snprintf(a.sun_path, sizeof(a.sun_path), "%s", path);
    unlink(path);
    if (l < 0 || bind(l, (struct sockaddr *)&a, sizeof(a)) != 0 || listen(l, 16) != 0) {
        perror("gwbench backend");
        return 1;
    }
    for (;;) {
        int fd = accept(l, NULL, NULL);
        if (fd < 0)
            continue;
        pthread_t t;
        if (pthread_create(&t, NULL, backend_conn, (void *)(intptr_t)fd) == 0)
            pthread_detach(t);
        else
            close(fd);
    }
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static struct sc_sock sock;
static struct sc_tls_creds creds;
static struct sc_tls tls;
static struct sc_sasl sasl;
static struct sc_sasl_layer layer;
static uint8_t lrx[SC_SASL_MAXBUF_DEFAULT + 4], ltx[SC_SASL_MAXBUF_DEFAULT + 4];

static int fail(const char *what, const char *msg)
{
    fprintf(stderr, "gwbench: %s: %s\n", what, msg);
    return 1;
}

static int client(int port, const char *mode, unsigned mib, const char *psk_file)
{
    uint64_t deadline = sc_deadline_in(600000);
    if (sc_tcp_connect(&sock, "127.0.0.1", (uint16_t)port, deadline) != 0)
        return fail("connect", sc_sock_errmsg(&sock));
    struct sc_channel *ch = &sock.base;
    bool use_tls = strcmp(mode, "tls-psk") == 0;
    struct sc_sasl_binding bind;
    struct sc_sasl_client_config cc = {.user = "bench", .password = "bench-password",
                                       .plaintext = !use_tls};
    static const enum sc_sasl_mech scram[] = {SC_SASL_SCRAM_SHA_256};
    if (use_tls) {
        if (sc_tls_creds_init(&creds) != 0 || sc_tls_creds_load_psk_file(&creds, psk_file) != 0)
            return fail("PSK", sc_tls_creds_errmsg(&creds));
        struct sc_tls_config tc = {.endpoint = SC_TLS_CLIENT, .creds = &creds,
                                   .hostname = "localhost"};
        if (sc_tls_init(&tls, ch, &tc) != 0 || sc_tls_handshake_wait(&tls, deadline) != 0)
            return fail("TLS", sc_tls_errmsg(&tls));
        ch = &tls.base;
        if (sc_sasl_binding_from_tls(&bind, &tls, SC_SASL_CB_TLS_EXPORTER) == 0)
            cc.binding = &bind;
    } else if (strcmp(mode, "scram") == 0) {
        cc.mechs = scram;
        cc.mech_count = 1;
        cc.allow_no_layer = true;
    } else {
        cc.qop = strcmp(mode, "digest-int") == 0 ? SC_SASL_QOP_INT : SC_SASL_QOP_CONF;
        cc.ciphers = strcmp(mode, "digest-des") == 0 ? SC_SASL_CIPHER_DES : SC_SASL_CIPHER_3DES;
    }
    if (sc_sasl_client_init(&sasl, &cc) != 0 || sc_sasl_run(&sasl, ch, deadline) != 0)
        return fail("SASL", sc_sasl_errmsg(&sasl));
    if (sc_sasl_has_layer(&sasl)) {
        if (sc_sasl_layer_init(&layer, ch, &sasl, lrx, sizeof(lrx), ltx, sizeof(ltx)) != 0)
            return fail("layer", "init");
        ch = &layer.base;
    }
    uint64_t total = (uint64_t)mib << 20;
    uint8_t hdr[9] = {'U'};
    for (int i = 0; i < 8; i++)
        hdr[8 - i] = (uint8_t)(total >> (8 * i));
    double t0 = now_s();
    if (sc_write_all(ch, hdr, sizeof(hdr), deadline) != 0)
        return fail("upload", sc_channel_errmsg(ch));
    for (uint64_t sent = 0; sent < total; sent += CHUNK)
        if (sc_write_all(ch, chunk, CHUNK, deadline) != 0)
            return fail("upload", sc_channel_errmsg(ch));
    uint8_t k = 0;
    if (sc_read_full(ch, &k, 1, NULL, deadline) != 0 || k != 'K')
        return fail("upload", "no acknowledgement");
    double up = (double)total / (now_s() - t0) / 1e6;
    hdr[0] = 'D';
    t0 = now_s();
    if (sc_write_all(ch, hdr, sizeof(hdr), deadline) != 0)
        return fail("download", sc_channel_errmsg(ch));
    for (uint64_t got = 0; got < total; got += CHUNK)
        if (sc_read_full(ch, chunk, CHUNK, NULL, deadline) != 0)
            return fail("download", sc_channel_errmsg(ch));
    double down = (double)total / (now_s() - t0) / 1e6;
    printf("gwbench: %s up %.1f MB/s down %.1f MB/s\n", mode, up, down);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc == 3 && strcmp(argv[1], "backend") == 0)
        return backend(argv[2]);
    if ((argc == 5 || argc == 6) && strcmp(argv[1], "client") == 0)
        return client(atoi(argv[2]), argv[3], (unsigned)atoi(argv[4]),
                      argc == 6 ? argv[5] : NULL);
    fprintf(stderr, "usage: gwbench backend PATH | gwbench client PORT MODE MIB [PSKFILE]\n");
    return 2;
}
