/* The firmware's throughput bench (make bench-qemu): linked in place of
 * fwapp.c, it gives the board's fw_run() three measurements, all timed by
 * the board's own clock (sc_port_now_ms), from the first byte that comes.
 *
 * What runs depends on who is at the other end of the link, which speaks
 * first either way:
 *
 *   "SCBENCH1" + u32le N   the bench peer (test/qemu/bench-peer.py):
 *       1. decrypt: the record decryption the TLS layer performs, with no
 *          I/O: AES-128-GCM records of MBEDTLS_SSL_IN_CONTENT_LEN bytes
 *          through mbedtls_cipher_auth_decrypt_ext (the call Mbed TLS's
 *          record layer makes in this configuration) and the copy out to
 *          the caller's buffer, for about a second;
 *       2. echo: one byte 'G' says "ready", then N bytes are echoed back as
 *          they come: the raw rate of the link, both ways at once;
 *       3. sink: one byte 'S' says "ready", the peer sends N bytes, and 'D'
 *          says they all came: the link's rate in the direction of reads;
 *   "NBDMAGIC"             an NBD server: the decrypt step runs again (the
 *       emulated CPU's speed varies from run to run with the host's load,
 *       so the NBD rate is set against the decrypt rate of its own run),
 *       then the greeting is handed back to the NBD client, which negotiates STARTTLS (PSK) and reads the whole
 *       export in FWB_CHUNK requests twice: its first FWB_PASS1_MAX bytes
 *       one request at a time (sc_nbd_pread), checking every byte of the
 *       pattern untimed; then all of it with FWB_DEPTH requests in flight
 *       (the engine's window), checking a sample of each chunk. The time spent waiting on the link is counted
 *       apart. (A server that leaves Nagle's algorithm on, as qemu-nbd did
 *       before QEMU 8.0, holds the tail of each reply until the client's
 *       next packet or its delayed ACK, 40 ms on Linux: only the second
 *       pass hides that.)
 *
 * Lines printed (integers only, rates in bytes per second):
 *   sechan-bench: board=B decrypt record=R records=N bytes=X ms=T Bps=V
 *   sechan-bench: board=B echo bytes=N ms=T Bps=V
 *   sechan-bench: board=B sink bytes=N ms=T Bps=V
 *   sechan-bench: board=B nbd-read chunk=C records=I/O bytes1=X wire-bytes1=Y ms1=T
 *                 wait-ms1=W Bps1=V depth=D bytes2=X ms2=T wait-ms2=W Bps2=V
 *   sechan-bench: board=B result=PASS|FAIL ...
 */
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "fwapp.h"
#include "fwcreds.h"
#include "mbedtls/cipher.h"
#include "mbedtls/ssl.h"
#include "sechan/err.h"
#include "sechan/nbd.h"
#include "sechan/port.h"
#include "sechan/tls.h"

#define FWB_HELLO_LEN 8u
#define FWB_CHUNK (16u * 1024u)          /* bytes per NBD read request */
#define FWB_DEPTH 4u                     /* requests in flight, second pass */
#define FWB_PASS1_MAX (1024u * 1024u)    /* bytes read one request at a time */
_Static_assert(FWB_DEPTH <= SC_NBD_WINDOW, "the engine's window holds FWB_DEPTH requests");
                    /* requests in flight, second pass */
#define FWB_RECORD MBEDTLS_SSL_IN_CONTENT_LEN
#define FWB_TAG 16u                      /* AES-GCM tag */
#define FWB_DECRYPT_MS 1000u             /* how long the decrypt loop runs */
#define FWB_ECHO_MAX (64u * 1024u * 1024u)

static struct sc_nbd_conn fwb_conn;
static struct sc_tls_creds fwb_creds;
static uint8_t fwb_buf[FWB_DEPTH][FWB_CHUNK];
static uint8_t fwb_rec[FWB_RECORD + FWB_TAG];   /* one sealed record */
static uint8_t fwb_plain[FWB_RECORD];
static char fwb_line[224];

static int fwb_fail(const struct fw_env *env, int status, const char *step, int err,
                    const char *msg)
{
    snprintf(fwb_line, sizeof(fwb_line), "sechan-bench: board=%s result=FAIL step=%s err=%s(%d) msg=%s",
             env->board, step, sc_strerror(err), err, msg != NULL ? msg : "");
    env->log(fwb_line);
    return status;
}

static unsigned long fwb_bps(uint64_t bytes, uint64_t ms)
{
    return (unsigned long)(bytes * 1000u / (ms > 0 ? ms : 1));
}

/* Does buf hold the pattern at [off, off + len)? Every step-th byte. */
static bool fwb_check(const uint8_t *buf, uint64_t off, uint32_t len, uint32_t step)
{
    for (uint32_t i = 0; i < len; i += step)
        if (buf[i] != fw_pattern_byte(off + i))
            return false;
    return len == 0 || buf[len - 1] == fw_pattern_byte(off + len - 1);
}

/* ---- the link, seen through a channel that hands back the bytes read to
 * tell who is at the other end, and counts what the NBD run waited for ---- */

struct fwb_link {
    struct sc_channel base;
    uint8_t held[FWB_HELLO_LEN];
    size_t held_len, held_off;
    uint64_t wait_ms;      /* time spent blocked in wait() */
    uint64_t read_bytes;   /* bytes read from the link */
};

static long fwb_link_read(struct sc_channel *ch, void *buf, size_t len)
{
    struct fwb_link *l = (struct fwb_link *)ch;
    if (l->held_off < l->held_len) {
        size_t n = l->held_len - l->held_off;
        if (n > len)
            n = len;
        memcpy(buf, l->held + l->held_off, n);
        l->held_off += n;
        return (long)n;
    }
    long r = sc_read(ch->lower, buf, len);
    if (r > 0)
        l->read_bytes += (uint64_t)r;
    return r;
}

static long fwb_link_write(struct sc_channel *ch, const void *buf, size_t len)
{
    return sc_write(ch->lower, buf, len);
}

static int fwb_link_close(struct sc_channel *ch)
{
    (void)ch;  /* the board owns the transport */
    return 0;
}

static enum sc_dir fwb_link_direction(const struct sc_channel *ch)
{
    return sc_direction(ch->lower);
}

static size_t fwb_link_pending(const struct sc_channel *ch)
{
    const struct fwb_link *l = (const struct fwb_link *)ch;
    return l->held_len - l->held_off + sc_pending(ch->lower);
}

static int fwb_link_flush(struct sc_channel *ch)
{
    return sc_flush(ch->lower);
}

static int fwb_link_wait(struct sc_channel *ch, enum sc_dir dir, uint64_t deadline_ms)
{
    struct fwb_link *l = (struct fwb_link *)ch;
    if ((dir & SC_DIR_READ) != 0 && l->held_off < l->held_len)
        return 0;
    uint64_t t0 = sc_port_now_ms();
    int r = sc_wait(ch->lower, dir, deadline_ms);
    l->wait_ms += sc_port_now_ms() - t0;
    return r;
}

static const struct sc_channel_ops fwb_link_ops = {
    .read = fwb_link_read,
    .write = fwb_link_write,
    .close = fwb_link_close,
    .direction = fwb_link_direction,
    .pending = fwb_link_pending,
    .flush = fwb_link_flush,
    .wait = fwb_link_wait,
};

static struct fwb_link fwb_link;

/* ---- 1. record decryption, no I/O ---- */

static int fwb_decrypt(const struct fw_env *env)
{
    static mbedtls_cipher_context_t enc, dec;
    uint8_t key[16], iv[12], aad[5] = {23, 3, 3, (FWB_RECORD + FWB_TAG) >> 8,
                                       (FWB_RECORD + FWB_TAG) & 0xff};
    if (sc_port_entropy(key, sizeof(key)) != 0 || sc_port_entropy(iv, sizeof(iv)) != 0)
        return fwb_fail(env, FW_EXIT_INIT, "entropy", SC_ERR_ENTROPY, "no key");
    const mbedtls_cipher_info_t *info = mbedtls_cipher_info_from_type(MBEDTLS_CIPHER_AES_128_GCM);
    mbedtls_cipher_init(&enc);
    mbedtls_cipher_init(&dec);
    int r = info == NULL ? -1 : mbedtls_cipher_setup(&enc, info);
    if (r == 0)
        r = mbedtls_cipher_setup(&dec, info);
    if (r == 0)
        r = mbedtls_cipher_setkey(&enc, key, 128, MBEDTLS_ENCRYPT);
    if (r == 0)
        r = mbedtls_cipher_setkey(&dec, key, 128, MBEDTLS_DECRYPT);
    for (uint32_t i = 0; i < FWB_RECORD; i++)
        fwb_plain[i] = fw_pattern_byte(i);
    size_t olen = 0;
    if (r == 0)
        r = mbedtls_cipher_auth_encrypt_ext(&enc, iv, sizeof(iv), aad, sizeof(aad), fwb_plain,
                                            FWB_RECORD, fwb_rec, sizeof(fwb_rec), &olen, FWB_TAG);
    if (r != 0 || olen != sizeof(fwb_rec)) {
        char why[64];
        snprintf(why, sizeof(why), "AES-128-GCM not usable: Mbed TLS -0x%04x olen %lu",
                 (unsigned)-r, (unsigned long)olen);
        return fwb_fail(env, FW_EXIT_INIT, "decrypt-setup", SC_ERR_TLS, why);
    }

    /* The record layer decrypts the record and the caller's read copies
     * the plaintext out: both are timed, per record. */
    memset(fwb_buf[0], 0, sizeof(fwb_buf[0]));
    uint64_t t0 = sc_port_now_ms(), t = t0;
    unsigned long records = 0;
    while (t - t0 < FWB_DECRYPT_MS || records < 8) {
        r = mbedtls_cipher_auth_decrypt_ext(&dec, iv, sizeof(iv), aad, sizeof(aad), fwb_rec,
                                            sizeof(fwb_rec), fwb_plain, sizeof(fwb_plain),
                                            &olen, FWB_TAG);
        if (r != 0 || olen != FWB_RECORD)
            return fwb_fail(env, FW_EXIT_READ, "decrypt", SC_ERR_TLS_RECORD,
                            "record did not authenticate");
        memcpy(fwb_buf[0], fwb_plain, FWB_RECORD < FWB_CHUNK ? FWB_RECORD : FWB_CHUNK);
        records++;
        t = sc_port_now_ms();
    }
    for (uint32_t i = 0; i < FWB_RECORD && i < FWB_CHUNK; i++)
        if (fwb_buf[0][i] != fw_pattern_byte(i))
            return fwb_fail(env, FW_EXIT_PATTERN, "decrypt", SC_ERR_PROTO, "wrong plaintext");
    mbedtls_cipher_free(&enc);
    mbedtls_cipher_free(&dec);
    uint64_t bytes = (uint64_t)records * FWB_RECORD;
    snprintf(fwb_line, sizeof(fwb_line),
             "sechan-bench: board=%s decrypt record=%lu records=%lu bytes=%lu ms=%lu Bps=%lu",
             env->board, (unsigned long)FWB_RECORD, records, (unsigned long)bytes,
             (unsigned long)(t - t0), fwb_bps(bytes, t - t0));
    env->log(fwb_line);
    return 0;
}

/* ---- 2 and 3. echo and sink: the link's own rate ---- */

/* One byte to the peer (a step's "ready" or "done"), pushed out. */
static int fwb_signal(const struct fw_env *env, const char *byte, const char *step,
                      uint64_t deadline)
{
    int r = sc_write_all(env->peer, byte, 1, deadline);
    if (r == 0)
        r = sc_flush(env->peer);
    if (r != 0)
        return fwb_fail(env, FW_EXIT_WRITE, step, r, sc_channel_errmsg(env->peer));
    return 0;
}

/* Take n bytes from the peer, timed from the first one (not the peer's
 * start-up), writing each back if echo. */
static int fwb_stream(const struct fw_env *env, uint32_t n, bool echo, uint64_t deadline)
{
    struct sc_channel *link = env->peer;
    const char *name = echo ? "echo" : "sink";
    int r = fwb_signal(env, echo ? "G" : "S", name, deadline);
    if (r != 0)
        return r;
    uint64_t t0 = 0;
    uint32_t done = 0;
    while (done < n) {
        uint32_t want = n - done < sizeof(fwb_buf[0]) ? n - done : (uint32_t)sizeof(fwb_buf[0]);
        long got = sc_read_some(link, fwb_buf[0], want, deadline);
        if (got <= 0)
            return fwb_fail(env, FW_EXIT_READ, name, got == 0 ? SC_ERR_EOF : (int)got,
                            sc_channel_errmsg(link));
        if (t0 == 0)
            t0 = sc_port_now_ms();
        if (echo && (r = sc_write_all(link, fwb_buf[0], (size_t)got, deadline)) != 0)
            return fwb_fail(env, FW_EXIT_WRITE, name, r, sc_channel_errmsg(link));
        done += (uint32_t)got;
    }
    if (echo && (r = sc_flush(link)) != 0)
        return fwb_fail(env, FW_EXIT_WRITE, name, r, sc_channel_errmsg(link));
    uint64_t ms = sc_port_now_ms() - t0;
    if (!echo && (r = fwb_signal(env, "D", name, deadline)) != 0)
        return r;
    snprintf(fwb_line, sizeof(fwb_line), "sechan-bench: board=%s %s bytes=%lu ms=%lu Bps=%lu",
             env->board, name, (unsigned long)n, (unsigned long)ms, fwb_bps(n, ms));
    env->log(fwb_line);
    return 0;
}

/* ---- 4. NBD over TLS: read the whole export ---- */

static int fwb_nbd(const struct fw_env *env, uint64_t deadline)
{
    sc_tls_creds_init(&fwb_creds);
    int r = sc_tls_creds_add_psk(&fwb_creds, fw_psk_identity, fw_psk_key, fw_psk_key_len);
    if (r != 0)
        return fwb_fail(env, FW_EXIT_INIT, "credentials", r, sc_tls_creds_errmsg(&fwb_creds));
    struct sc_tls_config tc = {
        .endpoint = SC_TLS_CLIENT,
        .creds = &fwb_creds,
        .auth = SC_TLS_AUTH_PSK,
        .min_version = SC_TLS_1_3,
        .max_version = SC_TLS_1_3,
    };
    struct sc_nbd_client_config nc = {.export_name = "", .tls = SC_NBD_TLS_REQUIRE};
    uint64_t connect_deadline = sc_port_now_ms() + FW_CONNECT_TIMEOUT_MS;
    r = sc_nbd_connect(&fwb_conn, &fwb_link.base, &nc, &tc,
                       connect_deadline < deadline ? connect_deadline : deadline);
    if (r != 0)
        return fwb_fail(env, FW_EXIT_CONNECT, "connect", r, sc_nbd_conn_errmsg(&fwb_conn));
    uint64_t size = sc_nbd_client_info(&fwb_conn.eng)->size;

    /* One request at a time (sc_nbd_pread), every byte checked (untimed) */
    fwb_link.wait_ms = 0;
    fwb_link.read_bytes = 0;
    uint64_t busy1 = 0, size1 = size < FWB_PASS1_MAX ? size : FWB_PASS1_MAX;
    for (uint64_t off = 0; off < size1;) {
        uint32_t len = size1 - off < FWB_CHUNK ? (uint32_t)(size1 - off) : FWB_CHUNK;
        uint64_t t0 = sc_port_now_ms();
        r = sc_nbd_pread(&fwb_conn, fwb_buf[0], len, off, deadline);
        busy1 += sc_port_now_ms() - t0;
        if (r != 0)
            return fwb_fail(env, FW_EXIT_READ, "read", r, sc_nbd_conn_errmsg(&fwb_conn));
        if (!fwb_check(fwb_buf[0], off, len, 1))
            return fwb_fail(env, FW_EXIT_PATTERN, "pattern", SC_ERR_PROTO,
                            "the export does not hold the pattern");
        off += len;
    }
    uint64_t wait1 = fwb_link.wait_ms, wire1 = fwb_link.read_bytes;

    /* FWB_DEPTH requests in flight, sampled checks (timed) */
    fwb_link.wait_ms = 0;
    uint64_t t0 = sc_port_now_ms(), next = 0, done = 0;
    uint64_t slot_off[FWB_DEPTH];
    bool slot_busy[FWB_DEPTH] = {false};
    while (done < size) {
        for (unsigned i = 0; i < FWB_DEPTH && next < size; i++) {
            if (slot_busy[i])
                continue;
            uint32_t len = size - next < FWB_CHUNK ? (uint32_t)(size - next) : FWB_CHUNK;
            struct sc_nbd_request req = {.type = SC_NBD_CMD_READ, .offset = next, .length = len,
                                         .buf = fwb_buf[i], .user = &slot_busy[i]};
            uint64_t cookie;
            if ((r = sc_nbd_client_submit(&fwb_conn.eng, &req, &cookie)) != 0)
                return fwb_fail(env, FW_EXIT_READ, "submit", r, sc_nbd_conn_errmsg(&fwb_conn));
            slot_busy[i] = true;
            slot_off[i] = next;
            next += len;
        }
        if ((r = sc_nbd_conn_wait(&fwb_conn, deadline)) != 0)
            return fwb_fail(env, FW_EXIT_READ, "read", r, sc_nbd_conn_errmsg(&fwb_conn));
        struct sc_nbd_completion c;
        while (sc_nbd_client_reap(&fwb_conn.eng, &c) == 1) {
            unsigned i = (unsigned)((bool *)c.user - slot_busy);
            uint32_t len = size - slot_off[i] < FWB_CHUNK ? (uint32_t)(size - slot_off[i]) : FWB_CHUNK;
            if (c.error != 0)
                return fwb_fail(env, FW_EXIT_READ, "read", c.error, "the server answered an error");
            if (!fwb_check(fwb_buf[i], slot_off[i], len, 61))
                return fwb_fail(env, FW_EXIT_PATTERN, "pattern", SC_ERR_PROTO,
                                "a pipelined read returned the wrong bytes");
            slot_busy[i] = false;
            done += len;
        }
    }
    uint64_t busy2 = sc_port_now_ms() - t0, wait2 = fwb_link.wait_ms;
    struct sc_tls_info ti;
    sc_tls_get_info(&fwb_conn.tls, &ti);
    r = sc_nbd_close(&fwb_conn, deadline);
    if (r != 0)
        return fwb_fail(env, FW_EXIT_CLOSE, "close", r, sc_nbd_conn_errmsg(&fwb_conn));
    snprintf(fwb_line, sizeof(fwb_line),
             "sechan-bench: board=%s nbd-read chunk=%lu records=%lu/%lu bytes1=%lu wire-bytes1=%lu "
             "ms1=%lu wait-ms1=%lu Bps1=%lu depth=%u bytes2=%lu ms2=%lu wait-ms2=%lu Bps2=%lu",
             env->board, (unsigned long)FWB_CHUNK, (unsigned long)ti.max_in_record,
             (unsigned long)ti.max_out_record, (unsigned long)size1, (unsigned long)wire1,
             (unsigned long)busy1, (unsigned long)wait1, fwb_bps(size1, busy1), FWB_DEPTH,
             (unsigned long)size, (unsigned long)busy2, (unsigned long)wait2,
             fwb_bps(size, busy2));
    env->log(fwb_line);
    return 0;
}

int fw_run(const struct fw_env *env)
{
    uint64_t deadline = sc_port_now_ms() + env->timeout_ms;
    /* Mbed TLS's arena (the cipher contexts come from it) and entropy. */
    int r = sc_tls_global_init(NULL, 0);
    if (r != 0)
        return fwb_fail(env, FW_EXIT_INIT, "tls-init", r, "no entropy or no arena");
    sc_channel_init(&fwb_link.base, &fwb_link_ops, env->peer);
    size_t got = 0;
    r = sc_read_full(env->peer, fwb_link.held, FWB_HELLO_LEN, &got, deadline);
    if (r != 0)
        return fwb_fail(env, FW_EXIT_CONNECT, "hello", r, sc_channel_errmsg(env->peer));
    if (memcmp(fwb_link.held, "NBDMAGIC", FWB_HELLO_LEN) == 0) {
        /* decrypt again here, to set the NBD rates against the CPU the
         * emulator gave this very run */
        fwb_link.held_len = FWB_HELLO_LEN;
        r = fwb_decrypt(env);
        if (r == 0)
            r = fwb_nbd(env, deadline);
    } else if (memcmp(fwb_link.held, "SCBENCH1", FWB_HELLO_LEN) == 0) {
        uint8_t le[4];
        r = sc_read_full(env->peer, le, sizeof(le), &got, deadline);
        if (r != 0)
            return fwb_fail(env, FW_EXIT_CONNECT, "hello", r, sc_channel_errmsg(env->peer));
        uint32_t n = (uint32_t)le[0] | (uint32_t)le[1] << 8 | (uint32_t)le[2] << 16 |
                     (uint32_t)le[3] << 24;
        if (n == 0 || n > FWB_ECHO_MAX)
            return fwb_fail(env, FW_EXIT_CONNECT, "hello", SC_ERR_PROTO, "echo length out of range");
        r = fwb_decrypt(env);
        if (r == 0)
            r = fwb_stream(env, n, true, deadline);
        if (r == 0)
            r = fwb_stream(env, n, false, deadline);
    } else {
        return fwb_fail(env, FW_EXIT_CONNECT, "hello", SC_ERR_PROTO,
                        "neither an NBD server nor the bench peer");
    }
    if (r == 0) {
        snprintf(fwb_line, sizeof(fwb_line), "sechan-bench: board=%s result=PASS", env->board);
        env->log(fwb_line);
    }
    return r;
}
