/* see fwapp.h: the firmware application. */
#include "fwapp.h"

#include <stdio.h>
#include <string.h>

#include "fwcreds.h"
#include "sechan/err.h"
#include "sechan/nbd.h"
#include "sechan/port.h"
#include "sechan/tls.h"
#if defined(SC_SASL_FW)
#include "fwsasl.h"
#endif

/* Static: nothing of the session lives on the stack. */
static struct sc_nbd_conn fw_conn;
#if !defined(SC_SASL_FW_DIGEST)
static struct sc_tls_creds fw_creds;
#endif
static uint8_t fw_buf[FW_IO_CHUNK];
#if defined(SC_SASL_FW)
static char fw_line[288];  /* the result line also describes SASL */
#else
static char fw_line[224];
#endif

int fw_fail(const struct fw_env *env, int status, const char *step, int err, const char *msg)
{
    snprintf(fw_line, sizeof(fw_line), "sechan-fw: board=%s result=FAIL step=%s err=%s(%d) msg=%s",
             env->board, step, sc_strerror(err), err, msg != NULL ? msg : "");
    env->log(fw_line);
    return status;
}

#if !defined(SC_SASL_FW_DIGEST)
int fw_tls_setup(const struct fw_env *env, struct sc_tls_config *tc)
{
    int r = sc_tls_global_init(NULL, 0);
    if (r != 0)
        return fw_fail(env, FW_EXIT_INIT, "tls-init", r, "no entropy or no arena");
    sc_tls_creds_init(&fw_creds);
    *tc = (struct sc_tls_config){
        .endpoint = SC_TLS_CLIENT,
        .creds = &fw_creds,
        .min_version = SC_TLS_1_3,
        .max_version = SC_TLS_1_3,
    };
#if defined(SC_TLS_FW_X509)
    r = sc_tls_creds_add_ca(&fw_creds, fw_ca_der, fw_ca_der_len);
    if (r == 0)
        r = sc_tls_creds_set_own(&fw_creds, fw_cert_der, fw_cert_der_len, fw_key_der,
                                 fw_key_der_len);
    tc->auth = SC_TLS_AUTH_X509;
    tc->hostname = fw_tls_hostname;
#else
    r = sc_tls_creds_add_psk(&fw_creds, fw_psk_identity, fw_psk_key, fw_psk_key_len);
    tc->auth = SC_TLS_AUTH_PSK;
#endif
    if (r != 0)
        return fw_fail(env, FW_EXIT_INIT, "credentials", r, sc_tls_creds_errmsg(&fw_creds));
    return 0;
}
#endif

/* Read [0, FW_READ_BYTES) and compare with the pattern. */
static int fw_check_pattern(const struct fw_env *env, uint64_t deadline)
{
    for (uint32_t off = 0; off < FW_READ_BYTES; off += FW_IO_CHUNK) {
        int r = sc_nbd_pread(&fw_conn, fw_buf, FW_IO_CHUNK, off, deadline);
        if (r != 0)
            return fw_fail(env, FW_EXIT_READ, "read", r, sc_nbd_conn_errmsg(&fw_conn));
        for (uint32_t i = 0; i < FW_IO_CHUNK; i++) {
            if (fw_buf[i] != fw_pattern_byte(off + i)) {
                char what[64];
                snprintf(what, sizeof(what), "byte %lu is 0x%02x, expected 0x%02x",
                         (unsigned long)(off + i), fw_buf[i], fw_pattern_byte(off + i));
                return fw_fail(env, FW_EXIT_PATTERN, "pattern", SC_ERR_PROTO, what);
            }
        }
    }
    return 0;
}

/* Write the tagged block with FUA, flush, read it back. */
static int fw_write_block(const struct fw_env *env, uint32_t tag, uint64_t deadline)
{
    for (uint32_t done = 0; done < FW_WRITE_BYTES; done += FW_IO_CHUNK) {
        for (uint32_t i = 0; i < FW_IO_CHUNK; i++)
            fw_buf[i] = fw_block_byte(tag, done + i);
        int r = sc_nbd_pwrite(&fw_conn, fw_buf, FW_IO_CHUNK, FW_WRITE_OFFSET + done,
                              SC_NBD_CMD_FLAG_FUA, deadline);
        if (r != 0)
            return fw_fail(env, FW_EXIT_WRITE, "write", r, sc_nbd_conn_errmsg(&fw_conn));
    }
    int r = sc_nbd_command(&fw_conn, SC_NBD_CMD_FLUSH, 0, 0, 0, deadline);
    if (r != 0)
        return fw_fail(env, FW_EXIT_FLUSH, "flush", r, sc_nbd_conn_errmsg(&fw_conn));
    for (uint32_t done = 0; done < FW_WRITE_BYTES; done += FW_IO_CHUNK) {
        memset(fw_buf, 0, sizeof(fw_buf));
        r = sc_nbd_pread(&fw_conn, fw_buf, FW_IO_CHUNK, FW_WRITE_OFFSET + done, deadline);
        if (r != 0)
            return fw_fail(env, FW_EXIT_READBACK, "readback", r, sc_nbd_conn_errmsg(&fw_conn));
        for (uint32_t i = 0; i < FW_IO_CHUNK; i++)
            if (fw_buf[i] != fw_block_byte(tag, done + i))
                return fw_fail(env, FW_EXIT_READBACK, "readback", SC_ERR_PROTO,
                               "block read back differs from what was written");
    }
    return 0;
}

#if !defined(SC_SASL_FW_DIGEST)
void fw_tls_describe(const struct sc_tls *t, char *buf, size_t cap)
{
    struct sc_tls_info ti;
    sc_tls_get_info(t, &ti);
    snprintf(buf, cap, "tls=%s auth=%s suite=%s records=%lu/%lu", ti.version,
             ti.psk ? "psk" : "x509", ti.ciphersuite, (unsigned long)ti.max_in_record,
             (unsigned long)ti.max_out_record);
}
#endif

int fw_run(const struct fw_env *env)
{
    uint64_t start = sc_port_now_ms();
    uint64_t deadline = start + env->timeout_ms;
    /* Negotiation and the TLS handshake (and SASL) get a bound of their
     * own: a server that rejects our key or certificate may just hang up,
     * and over a UART a hang-up looks like silence. */
    uint64_t connect_deadline = start + FW_CONNECT_TIMEOUT_MS;
    if (connect_deadline > deadline)
        connect_deadline = deadline;
    int r;
#if defined(SC_SASL_FW)
    /* The link is secured below NBD: no STARTTLS, the gateway's export. */
    struct sc_channel *ch = NULL;
    if ((r = fw_sasl_open(env, connect_deadline, &ch)) != 0)
        return r;
    struct sc_nbd_client_config nc = {.export_name = fw_nbd_export, .tls = SC_NBD_TLS_OFF};
    r = sc_nbd_connect(&fw_conn, ch, &nc, NULL, connect_deadline);
    if (r != 0) {
        r = fw_fail(env, FW_EXIT_CONNECT, "connect", r, sc_nbd_conn_errmsg(&fw_conn));
        fw_sasl_abort();
        return r;
    }
#else
    struct sc_tls_config tc;
    if ((r = fw_tls_setup(env, &tc)) != 0)
        return r;
    struct sc_nbd_client_config nc = {.export_name = "", .tls = SC_NBD_TLS_REQUIRE};
    r = sc_nbd_connect(&fw_conn, env->peer, &nc, &tc, connect_deadline);
#endif
    if (r != 0)
        return fw_fail(env, FW_EXIT_CONNECT, "connect", r, sc_nbd_conn_errmsg(&fw_conn));
    uint64_t t_connected = sc_port_now_ms();
    const struct sc_nbd_export_info *info = sc_nbd_client_info(&fw_conn.eng);
    if (info->size < FW_WRITE_OFFSET + FW_WRITE_BYTES)
        return fw_fail(env, FW_EXIT_CONNECT, "size", SC_ERR_NOSPACE, "export smaller than the test needs");

    if ((r = fw_check_pattern(env, deadline)) != 0)
        return r;
    uint64_t t_read = sc_port_now_ms();

    uint32_t tag;
    if (sc_port_entropy(&tag, sizeof(tag)) != 0)
        return fw_fail(env, FW_EXIT_INIT, "entropy", SC_ERR_ENTROPY, "no random tag");
    if ((r = fw_write_block(env, tag, deadline)) != 0)
        return r;

    /* The line starts with what secured the link, described while the
     * session is still up. */
    int n = snprintf(fw_line, sizeof(fw_line), "sechan-fw: board=%s ", env->board);
#if defined(SC_SASL_FW)
    fw_sasl_describe(fw_line + n, sizeof(fw_line) - (size_t)n);
#else
    fw_tls_describe(&fw_conn.tls, fw_line + n, sizeof(fw_line) - (size_t)n);
#endif
    r = sc_nbd_close(&fw_conn, deadline);
    if (r != 0)
        return fw_fail(env, FW_EXIT_CLOSE, "close", r, sc_nbd_conn_errmsg(&fw_conn));
#if defined(SC_SASL_FW)
    if ((r = fw_sasl_close(env, deadline)) != 0)
        return r;
#endif
    uint64_t end = sc_port_now_ms();

    n = (int)strlen(fw_line);
    snprintf(fw_line + n, sizeof(fw_line) - (size_t)n,
             " read=%lu ok write=%lu@%lu tag=%08lx flush=ok readback=ok "
             "ms=%lu/%lu/%lu arena=%lu result=PASS",
             (unsigned long)FW_READ_BYTES, (unsigned long)FW_WRITE_BYTES,
             (unsigned long)FW_WRITE_OFFSET, (unsigned long)tag,
             (unsigned long)(t_connected - start), (unsigned long)(t_read - t_connected),
             (unsigned long)(end - start), (unsigned long)sc_tls_arena_high_water());
    env->log(fw_line);
    return FW_EXIT_PASS;
}
