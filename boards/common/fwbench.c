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
 *   "NBDMAGIC"             an NBD server: the NBD client negotiates STARTTLS
 *       (PSK) and reads the export twice, in requests of FWB_CHUNK_MAX
 *       bytes (smaller on an export too small to make FWB_CHUNK_ROUNDS of
 *       them, down to FWB_CHUNK_MIN): its first FWB_PASS1_MAX bytes one
 *       request at a time (sc_nbd_pread), checking every byte of the pattern
 *       untimed; then all of it with FWB_DEPTH requests in flight (the
 *       engine's window), checking a sample of each chunk, as one stream
 *       that stops up to FWB_ROUNDS times, once per slice of the export
 *       (at most once per reply), for FWB_ROUND_DECRYPT_MS of the decrypt
 *       step, its window kept full.
 *       The emulated CPU's speed drifts with the host's load (the same
 *       loop ran at 16 to 27 MiB/s on the Linux agent in boots a minute
 *       apart): interleaving sets each slice of reads against the CPU of
 *       the same moment, and the decrypt line printed is the sum over the
 *       spells. Counted apart: the time spent waiting on the link, inside
 *       the transport's read and write calls, and inside Mbed TLS's record
 *       decryptions (each timed on the board's microsecond clock, see the
 *       wrap below). (A server that leaves Nagle's algorithm on, as
 *       qemu-nbd did before QEMU 8.0, holds the tail of each reply until
 *       the client's next packet or its delayed ACK, 40 ms on Linux: only
 *       the second pass hides that.)
 *
 * Lines printed (integers only, rates in bytes per second):
 *   sechan-bench: board=B decrypt record=R records=N bytes=X ms=T Bps=V call-us=U
 *   sechan-bench: board=B echo bytes=N ms=T Bps=V
 *   sechan-bench: board=B sink bytes=N ms=T Bps=V
 *   sechan-bench: board=B nbd-read chunk=C records=I/O bytes1=X wire-bytes1=Y ms1=T
 *                 wait-ms1=W Bps1=V depth=D rounds=S bytes2=X ms2=T wait-ms2=W Bps2=V
 *                 records2=N record-bytes2=X record-us2=U reads2=N read-us2=U
 *                 writes2=N write-us2=U waits2=N
 *   (call-us, record-us2: time inside the decryptions; record-bytes2: the
 *   ciphertext they were given; reads2/writes2: calls into the transport;
 *   waits2: times the NBD run blocked on the link, wait-ms2 in all)
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
#define FWB_CHUNK_MAX (256u * 1024u)     /* bytes per NBD read request */
#define FWB_CHUNK_MIN (16u * 1024u)
#define FWB_CHUNK_ROUNDS 64u             /* requests an export makes at least */
#define FWB_DEPTH 4u                     /* requests in flight, second pass */
#define FWB_PASS1_MAX (1024u * 1024u)    /* bytes read one request at a time */
#define FWB_ROUNDS 32u                   /* slices of the second pass */
#define FWB_ROUND_DECRYPT_MS 60u         /* decrypt time before each slice */
_Static_assert(FWB_DEPTH <= SC_NBD_WINDOW, "the engine's window holds FWB_DEPTH requests");
#define FWB_RECORD MBEDTLS_SSL_IN_CONTENT_LEN
#define FWB_TAG 16u                      /* AES-GCM tag */
#define FWB_DECRYPT_MS 1000u             /* how long the decrypt step runs alone */
#define FWB_ECHO_MAX (64u * 1024u * 1024u)

static struct sc_nbd_conn fwb_conn;
static struct sc_tls_creds fwb_creds;
static uint8_t fwb_buf[FWB_DEPTH][FWB_CHUNK_MAX];
static uint8_t fwb_rec[FWB_RECORD + FWB_TAG];   /* one sealed record */
static uint8_t fwb_plain[FWB_RECORD];
static uint8_t fwb_out[FWB_RECORD];   /* the decrypt step's reader's buffer */
static char fwb_line[448];

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
    uint64_t wait_us;      /* time spent blocked in wait() */
    unsigned long waits;   /* and how often */
    uint64_t read_bytes;   /* bytes read from the link */
    unsigned long reads, writes;  /* calls into the transport */
    uint64_t read_us, write_us;   /* time they took */
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
    uint64_t t0 = fw_now_us();
    long r = sc_read(ch->lower, buf, len);
    l->read_us += fw_now_us() - t0;
    l->reads++;
    if (r > 0)
        l->read_bytes += (uint64_t)r;
    return r;
}

static long fwb_link_write(struct sc_channel *ch, const void *buf, size_t len)
{
    struct fwb_link *l = (struct fwb_link *)ch;
    uint64_t t0 = fw_now_us();
    long r = sc_write(ch->lower, buf, len);
    l->write_us += fw_now_us() - t0;
    l->writes++;
    return r;
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
    uint64_t t0 = fw_now_us();
    int r = sc_wait(ch->lower, dir, deadline_ms);
    l->wait_us += fw_now_us() - t0;
    l->waits++;
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

/* ---- every record decryption timed where it happens: the image is linked
 * with --wrap=mbedtls_cipher_auth_decrypt_ext, so this sees the decrypt
 * step's calls and those of Mbed TLS's record layer during the NBD reads
 * alike, on the board's microsecond clock. (Called directly: on riscv-virt
 * under QEMU 7.2's TCG the same clock called through a function pointer
 * from here made each decryption six times slower; measured, cause not
 * found.) ---- */

struct fwb_prof {
    uint64_t us;           /* inside the call */
    uint64_t bytes;        /* ciphertext given */
    unsigned long calls;
};
static struct fwb_prof fwb_prof_dec, fwb_prof_nbd;
static struct fwb_prof *fwb_prof_cur;  /* where calls count now, or NULL */

int __real_mbedtls_cipher_auth_decrypt_ext(mbedtls_cipher_context_t *ctx,
                                           const unsigned char *iv, size_t iv_len,
                                           const unsigned char *ad, size_t ad_len,
                                           const unsigned char *input, size_t ilen,
                                           unsigned char *output, size_t output_len,
                                           size_t *olen, size_t tag_len);
int __wrap_mbedtls_cipher_auth_decrypt_ext(mbedtls_cipher_context_t *ctx,
                                           const unsigned char *iv, size_t iv_len,
                                           const unsigned char *ad, size_t ad_len,
                                           const unsigned char *input, size_t ilen,
                                           unsigned char *output, size_t output_len,
                                           size_t *olen, size_t tag_len)
{
    struct fwb_prof *p = fwb_prof_cur;
    uint64_t t0 = p != NULL ? fw_now_us() : 0;
    int r = __real_mbedtls_cipher_auth_decrypt_ext(ctx, iv, iv_len, ad, ad_len, input, ilen,
                                                   output, output_len, olen, tag_len);
    if (p != NULL) {
        p->us += fw_now_us() - t0;
        p->bytes += ilen;
        p->calls++;
    }
    return r;
}

/* ---- 1. record decryption, no I/O ---- */

static struct {
    mbedtls_cipher_context_t dec;
    uint8_t iv[12];
    uint8_t aad[5];
    unsigned long records;  /* decrypted since fwb_decrypt_setup */
    uint64_t ms;            /* time they took */
} fwb_dec;

/* Seal one record under a fresh key and keep a context that opens it. */
static int fwb_decrypt_setup(const struct fw_env *env)
{
    static mbedtls_cipher_context_t enc;
    uint8_t key[16];
    const uint8_t aad[5] = {23, 3, 3, (FWB_RECORD + FWB_TAG) >> 8, (FWB_RECORD + FWB_TAG) & 0xff};
    memcpy(fwb_dec.aad, aad, sizeof(aad));
    fwb_dec.records = 0;
    fwb_dec.ms = 0;
    if (sc_port_entropy(key, sizeof(key)) != 0 ||
        sc_port_entropy(fwb_dec.iv, sizeof(fwb_dec.iv)) != 0)
        return fwb_fail(env, FW_EXIT_INIT, "entropy", SC_ERR_ENTROPY, "no key");
    const mbedtls_cipher_info_t *info = mbedtls_cipher_info_from_type(MBEDTLS_CIPHER_AES_128_GCM);
    mbedtls_cipher_init(&enc);
    mbedtls_cipher_init(&fwb_dec.dec);
    int r = info == NULL ? -1 : mbedtls_cipher_setup(&enc, info);
    if (r == 0)
        r = mbedtls_cipher_setup(&fwb_dec.dec, info);
    if (r == 0)
        r = mbedtls_cipher_setkey(&enc, key, 128, MBEDTLS_ENCRYPT);
    if (r == 0)
        r = mbedtls_cipher_setkey(&fwb_dec.dec, key, 128, MBEDTLS_DECRYPT);
    for (uint32_t i = 0; i < FWB_RECORD; i++)
        fwb_plain[i] = fw_pattern_byte(i);
    size_t olen = 0;
    if (r == 0)
        r = mbedtls_cipher_auth_encrypt_ext(&enc, fwb_dec.iv, sizeof(fwb_dec.iv), fwb_dec.aad,
                                            sizeof(fwb_dec.aad), fwb_plain, FWB_RECORD, fwb_rec,
                                            sizeof(fwb_rec), &olen, FWB_TAG);
    mbedtls_cipher_free(&enc);
    if (r != 0 || olen != sizeof(fwb_rec)) {
        char why[64];
        snprintf(why, sizeof(why), "AES-128-GCM not usable: Mbed TLS -0x%04x olen %lu",
                 (unsigned)-r, (unsigned long)olen);
        mbedtls_cipher_free(&fwb_dec.dec);
        return fwb_fail(env, FW_EXIT_INIT, "decrypt-setup", SC_ERR_TLS, why);
    }
    return 0;
}

/* Decrypt the record over and over for at least ms (and 8 records): the
 * record layer decrypts and the caller's read copies the plaintext out,
 * both timed, per record. */
static int fwb_decrypt_run(const struct fw_env *env, uint64_t ms)
{
    memset(fwb_out, 0, FWB_RECORD);
    fwb_prof_cur = &fwb_prof_dec;
    uint64_t t0 = sc_port_now_ms(), t = t0;
    unsigned long records = 0;
    while (t - t0 < ms || records < 8) {
        size_t olen = 0;
        int r = mbedtls_cipher_auth_decrypt_ext(&fwb_dec.dec, fwb_dec.iv, sizeof(fwb_dec.iv),
                                                fwb_dec.aad, sizeof(fwb_dec.aad), fwb_rec,
                                                sizeof(fwb_rec), fwb_plain, sizeof(fwb_plain),
                                                &olen, FWB_TAG);
        if (r != 0 || olen != FWB_RECORD)
            return fwb_fail(env, FW_EXIT_READ, "decrypt", SC_ERR_TLS_RECORD,
                            "record did not authenticate");
        memcpy(fwb_out, fwb_plain, FWB_RECORD);
        records++;
        t = sc_port_now_ms();
    }
    fwb_prof_cur = NULL;
    for (uint32_t i = 0; i < FWB_RECORD; i++)
        if (fwb_out[i] != fw_pattern_byte(i))
            return fwb_fail(env, FW_EXIT_PATTERN, "decrypt", SC_ERR_PROTO, "wrong plaintext");
    fwb_dec.records += records;
    fwb_dec.ms += t - t0;
    return 0;
}

/* The decrypt line: everything run since the setup; frees the context. */
static void fwb_decrypt_report(const struct fw_env *env)
{
    mbedtls_cipher_free(&fwb_dec.dec);
    uint64_t bytes = (uint64_t)fwb_dec.records * FWB_RECORD;
    snprintf(fwb_line, sizeof(fwb_line),
             "sechan-bench: board=%s decrypt record=%lu records=%lu bytes=%lu ms=%lu Bps=%lu "
             "call-us=%lu",
             env->board, (unsigned long)FWB_RECORD, fwb_dec.records, (unsigned long)bytes,
             (unsigned long)fwb_dec.ms, fwb_bps(bytes, fwb_dec.ms),
             (unsigned long)fwb_prof_dec.us);
    env->log(fwb_line);
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

/* Read [0, size) as one stream with FWB_DEPTH requests of chunk bytes in
 * flight, checking a sample of each reply against the pattern. It pauses up
 * to FWB_ROUNDS times for FWB_ROUND_DECRYPT_MS of the decrypt step: first
 * before any request, then each time another slice of the export has come
 * in (at most once per reply), with the window refilled, so the stream
 * never drains (a reader that stopped to empty its window at each pause
 * would pay the round trip of a new request each time, which one
 * continuous read does not). *busy gets the time spent reading, without
 * the pauses. */
static int fwb_stream_read(const struct fw_env *env, uint64_t size, uint32_t chunk,
                           uint64_t *busy, uint64_t deadline)
{
    uint64_t next = 0, done = 0, pause_at = 0, t0 = 0;
    uint64_t slot_off[FWB_DEPTH];
    uint32_t slot_len[FWB_DEPTH];
    bool slot_busy[FWB_DEPTH] = {false};
    unsigned round = 0;
    int r;
    *busy = 0;
    while (done < size) {
        if (round < FWB_ROUNDS && done >= pause_at) {
            if (round > 0)
                *busy += sc_port_now_ms() - t0;
            if ((r = fwb_decrypt_run(env, FWB_ROUND_DECRYPT_MS)) != 0)
                return r;
            round++;
            pause_at = size * round / FWB_ROUNDS;
            fwb_prof_cur = &fwb_prof_nbd;
            t0 = sc_port_now_ms();
        }
        for (unsigned i = 0; i < FWB_DEPTH && next < size; i++) {
            if (slot_busy[i])
                continue;
            uint32_t len = size - next < chunk ? (uint32_t)(size - next) : chunk;
            struct sc_nbd_request req = {.type = SC_NBD_CMD_READ, .offset = next, .length = len,
                                         .buf = fwb_buf[i], .user = &slot_busy[i]};
            uint64_t cookie;
            if ((r = sc_nbd_client_submit(&fwb_conn.eng, &req, &cookie)) != 0)
                return fwb_fail(env, FW_EXIT_READ, "submit", r, sc_nbd_conn_errmsg(&fwb_conn));
            slot_busy[i] = true;
            slot_off[i] = next;
            slot_len[i] = len;
            next += len;
        }
        if ((r = sc_nbd_conn_wait(&fwb_conn, deadline)) != 0)
            return fwb_fail(env, FW_EXIT_READ, "read", r, sc_nbd_conn_errmsg(&fwb_conn));
        struct sc_nbd_completion c;
        while (sc_nbd_client_reap(&fwb_conn.eng, &c) == 1) {
            unsigned i = (unsigned)((bool *)c.user - slot_busy);
            if (c.error != 0)
                return fwb_fail(env, FW_EXIT_READ, "read", c.error, "the server answered an error");
            if (!fwb_check(fwb_buf[i], slot_off[i], slot_len[i], 61))
                return fwb_fail(env, FW_EXIT_PATTERN, "pattern", SC_ERR_PROTO,
                                "a pipelined read returned the wrong bytes");
            slot_busy[i] = false;
            done += slot_len[i];
        }
    }
    *busy += sc_port_now_ms() - t0;
    fwb_prof_cur = NULL;
    return 0;
}

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
    uint32_t chunk = FWB_CHUNK_MAX;
    while (chunk > FWB_CHUNK_MIN && size / chunk < FWB_CHUNK_ROUNDS)
        chunk /= 2;

    /* One request at a time (sc_nbd_pread), every byte checked (untimed) */
    fwb_link.wait_us = 0;
    fwb_link.read_bytes = 0;
    uint64_t busy1 = 0, size1 = size < FWB_PASS1_MAX ? size : FWB_PASS1_MAX;
    for (uint64_t off = 0; off < size1;) {
        uint32_t len = size1 - off < chunk ? (uint32_t)(size1 - off) : chunk;
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
    uint64_t wait1 = fwb_link.wait_us / 1000u, wire1 = fwb_link.read_bytes;

    /* FWB_DEPTH requests in flight, sampled checks (timed), with spells
     * of decryption in the stream */
    fwb_link.wait_us = 0;
    fwb_link.waits = fwb_link.reads = fwb_link.writes = 0;
    fwb_link.read_us = fwb_link.write_us = 0;
    uint64_t busy2 = 0;
    if ((r = fwb_stream_read(env, size, chunk, &busy2, deadline)) != 0)
        return r;
    uint64_t wait2 = fwb_link.wait_us / 1000u;
    struct sc_tls_info ti;
    sc_tls_get_info(&fwb_conn.tls, &ti);
    r = sc_nbd_close(&fwb_conn, deadline);
    if (r != 0)
        return fwb_fail(env, FW_EXIT_CLOSE, "close", r, sc_nbd_conn_errmsg(&fwb_conn));
    fwb_decrypt_report(env);
    snprintf(fwb_line, sizeof(fwb_line),
             "sechan-bench: board=%s nbd-read chunk=%lu records=%lu/%lu bytes1=%lu wire-bytes1=%lu "
             "ms1=%lu wait-ms1=%lu Bps1=%lu depth=%u rounds=%u bytes2=%lu ms2=%lu wait-ms2=%lu "
             "Bps2=%lu records2=%lu record-bytes2=%lu record-us2=%lu reads2=%lu read-us2=%lu "
             "writes2=%lu write-us2=%lu waits2=%lu",
             env->board, (unsigned long)chunk, (unsigned long)ti.max_in_record,
             (unsigned long)ti.max_out_record, (unsigned long)size1, (unsigned long)wire1,
             (unsigned long)busy1, (unsigned long)wait1, fwb_bps(size1, busy1), FWB_DEPTH,
             FWB_ROUNDS, (unsigned long)size, (unsigned long)busy2, (unsigned long)wait2,
             fwb_bps(size, busy2), fwb_prof_nbd.calls, (unsigned long)fwb_prof_nbd.bytes,
             (unsigned long)fwb_prof_nbd.us, fwb_link.reads, (unsigned long)fwb_link.read_us,
             fwb_link.writes, (unsigned long)fwb_link.write_us, fwb_link.waits);
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
        /* decrypt here too, in spells among the reads, to set the NBD
         * rate against the CPU the emulator gave this very run */
        fwb_link.held_len = FWB_HELLO_LEN;
        r = fwb_decrypt_setup(env);
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
        r = fwb_decrypt_setup(env);
        if (r == 0)
            r = fwb_decrypt_run(env, FWB_DECRYPT_MS);
        if (r == 0)
            fwb_decrypt_report(env);
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
