/* The firmware application shared by every board: NBD over STARTTLS to the
 * host's server, through whatever channel the board opened. The SASL
 * variants (SC_SASL_FW, fwsasl.h) secure the channel first instead and run
 * NBD without STARTTLS through a gateway (sechan-gw): DIGEST-MD5 auth-conf
 * on the plaintext link (sasl-digest), or SCRAM-SHA-256 inside TLS 1.3 PSK
 * (sasl-scram).
 *
 * It reads the start of the export and checks the pattern the test wrote
 * (fw_pattern_byte), writes one block with FUA at FW_WRITE_OFFSET whose
 * content follows from a random tag, flushes, reads the block back, and
 * prints one result line:
 *
 *   sechan-fw: board=B tls=TLSv1.3 auth=psk read=N ok write=N@OFF tag=T flush=ok readback=ok result=PASS
 *   sechan-fw: board=B sasl=DIGEST-MD5 qop=auth-conf cipher=3des ... result=PASS
 *   sechan-fw: board=B result=FAIL step=S err=NAME(CODE) msg=...
 *
 * and returns the exit status (FW_EXIT_*), which the board reports to the
 * emulator (semihosting, test device, process exit code).
 */
#ifndef SECHAN_FWAPP_H
#define SECHAN_FWAPP_H

#include <stddef.h>
#include <stdint.h>

#include "sechan/channel.h"

#define FW_READ_BYTES (16u * 1024u)     /* checked against the pattern */
#define FW_WRITE_OFFSET (64u * 1024u)
#define FW_WRITE_BYTES 4096u
#define FW_IO_CHUNK 2048u               /* bytes per NBD request */
#define FW_CONNECT_TIMEOUT_MS 20000u    /* negotiation and TLS handshake */

enum fw_exit {
    FW_EXIT_PASS = 0,
    FW_EXIT_INIT = 1,      /* TLS or credentials could not be set up */
    FW_EXIT_CONNECT = 2,   /* NBD negotiation, TLS handshake or SASL failed */
    FW_EXIT_READ = 3,      /* a read failed */
    FW_EXIT_PATTERN = 4,   /* the export does not hold the expected pattern */
    FW_EXIT_WRITE = 5,
    FW_EXIT_FLUSH = 6,
    FW_EXIT_READBACK = 7,  /* the block read back differs from what was written */
    FW_EXIT_CLOSE = 8,
};

/* The byte at offset off of the pattern the test writes to the export. */
static inline uint8_t fw_pattern_byte(uint64_t off)
{
    uint32_t x = (uint32_t)(off * 2654435761u);
    return (uint8_t)((x >> 13) ^ (uint32_t)off ^ (uint32_t)(off >> 8));
}

/* The byte at index i of the block written for tag (tag: 32 random bits). */
static inline uint8_t fw_block_byte(uint32_t tag, uint32_t i)
{
    uint32_t x = (tag ^ (i * 0x9e3779b9u)) * 0x85ebca6bu;
    return (uint8_t)(x >> 24 ^ x >> 11);
}

struct fw_env {
    const char *board;                     /* for the result line */
    struct sc_channel *peer;               /* the transport to the NBD server */
    void (*log)(const char *line);         /* one line, no newline */
    uint32_t timeout_ms;                   /* for the whole run */
};

/* Microseconds from any fixed start: each board's finest clock. The bench
 * (fwbench.c) times every record decryption with it. */
uint64_t fw_now_us(void);

/* Run once; returns an FW_EXIT_* status. */
int fw_run(const struct fw_env *env);

/* Shared by fwapp.c and fwsasl.c: print the FAIL line, return status. */
int fw_fail(const struct fw_env *env, int status, const char *step, int err, const char *msg);
struct sc_tls_config;
struct sc_tls;
/* Mbed TLS's arena and the compiled-in TLS credentials into *tc. */
int fw_tls_setup(const struct fw_env *env, struct sc_tls_config *tc);
/* "tls=V auth=psk|x509 suite=S records=IN/OUT" of a finished session. */
void fw_tls_describe(const struct sc_tls *t, char *buf, size_t cap);

#endif
