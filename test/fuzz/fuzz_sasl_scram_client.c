/* libFuzzer target: the SCRAM client (RFC 5802, RFC 7677) against a
 * hostile server, at the mechanism level (sc_sasl_client_start, then
 * sc_sasl_step). The input is
 *
 *   byte 0   the client (fuzz_sasl_peers.h, FZ_SC_*): SHA-1 or SHA-256,
 *            -PLUS (tls-exporter or tls-server-end-point), authzid, a
 *            binding without -PLUS ("y"), a 96-byte output, a user name
 *            that needs escaping
 *   rest     server-first-message; after the first 0xff byte, the
 *            server-final-message (fed only if the first gave CONTINUE).
 *
 * The client nonce is RFC 5802's (SHA-1) or RFC 7677's (SHA-256), so the
 * RFCs' server messages are valid inputs. Inputs asking for more than 4096
 * PBKDF2 iterations are skipped (fz_scram_costly).
 *
 * Invariants beyond the sanitizers (fuzz_sasl.h): results in range, errors
 * sticky with a message, outputs within the capacity and printable, the
 * client-final carries our channel binding and the combined nonce, SC_OK
 * only after a v= and with channel_bound for -PLUS, the arena balanced. */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_sasl.h"
#include "fuzz_sasl_peers.h"

static struct sc_sasl cli;

/* The client-final-message must start with c=, carry r= with the nonce
 * the server gave (which extends ours), and end with p=. */
FZ_NOCOV static void check_client_final(const struct fz_scram_client *c, const uint8_t *sf,
                                        size_t sf_len, const uint8_t *out, size_t n)
{
    FZ_CHECK(n > 2 && memcmp(out, "c=", 2) == 0);
    FZ_CHECK(fz_has(out, n, ",r="));
    FZ_CHECK(fz_has(out, n, ",p="));
    /* r= of server-first, up to its comma, is what we echo */
    FZ_CHECK(sf_len > 2 && memcmp(sf, "r=", 2) == 0);
    const uint8_t *comma = memchr(sf, ',', sf_len);
    size_t rlen = comma != NULL ? (size_t)(comma - sf) : sf_len;
    const char *cn = c->cfg.test_nonce;
    FZ_CHECK(rlen > 2 + strlen(cn) && memcmp(sf + 2, cn, strlen(cn)) == 0);
    const uint8_t *r = NULL;
    for (size_t i = 0; i + 3 <= n; i++)
        if (memcmp(out + i, ",r=", 3) == 0) {
            r = out + i + 1;
            break;
        }
    FZ_CHECK(r != NULL && (size_t)(out + n - r) >= rlen && memcmp(r, sf, rlen) == 0);
    /* "c=biws" is base64("n,,"): without a binding and an authzid it is fixed */
    if (c->cfg.binding == NULL && c->cfg.authzid == NULL)
        FZ_CHECK(n > 7 && memcmp(out, "c=biws,", 7) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    uint8_t mode = data[0];
    if (fz_scram_costly(data + 1, size - 1))
        return -1;
    struct fz_scram_client c;
    fz_scram_client_cfg(mode, &c);
    struct fz_parts parts;
    fz_split(data + 1, size - 1, 2, &parts);
    size_t mark = fz_arena_mark();

    FZ_CHECK(sc_sasl_client_init(&cli, &c.cfg) == 0);
    uint8_t *out = fz_out(c.cap);
    size_t n = 12345;
    bool has = false;
    int r = sc_sasl_client_start(&cli, c.mech, out, c.cap, &n, &has);
    /* client-first-message: gs2 header, n=, r= with our nonce */
    FZ_CHECK(r == SC_SASL_CONTINUE && has);
    fz_check_out(out, n, c.cap, true);
    FZ_CHECK(n >= 3 && out[0] == (c.plus ? 'p' : c.cfg.binding != NULL ? 'y' : 'n'));
    FZ_CHECK(fz_has(out, n, c.cfg.test_nonce));

    const char *how = "server-first";
    uint8_t *sf = fz_dup(parts.p[0], parts.n[0]);
    r = sc_sasl_step(&cli, sf, parts.n[0], out, c.cap, &n);
    fz_sasl_result(r);
    fz_check_out(out, n, c.cap, true);
    FZ_CHECK(r != SC_OK);  /* nothing is proved yet */
    if (r == SC_SASL_CONTINUE) {
        check_client_final(&c, sf, parts.n[0], out, n);
        if (parts.count > 1) {
            how = "server-final";
            uint8_t *sfin = fz_dup(parts.p[1], parts.n[1]);
            r = sc_sasl_step(&cli, sfin, parts.n[1], out, c.cap, &n);
            fz_sasl_result(r);
            FZ_CHECK(r != SC_SASL_CONTINUE && n == 0);
            if (r == SC_OK) {
                /* proved by a v= as long as the signature's base64 */
                bool sha1 = c.mech == SC_SASL_SCRAM_SHA_1 || c.mech == SC_SASL_SCRAM_SHA_1_PLUS;
                FZ_CHECK(parts.n[1] >= 2 + (sha1 ? 20u : 32u) * 4 / 3);
                FZ_CHECK(memcmp(sfin, "v=", 2) == 0);
                struct sc_sasl_info info;
                FZ_CHECK(sc_sasl_info(&cli, &info) == 0);
                FZ_CHECK(info.mech == c.mech && info.channel_bound == c.plus);
                FZ_CHECK(info.qop == SC_SASL_QOP_AUTH && !sc_sasl_has_layer(&cli));
                /* the exchange is over: another token is an error */
                r = sc_sasl_step(&cli, sfin, parts.n[1], out, c.cap, &n);
                FZ_CHECK(r == SC_ERR_STATE);
                how = "after the end";
            }
            free(sfin);
        }
    }
    if (r < 0)
        fz_sasl_sticky(&cli, r, c.cap);
    if (fz_verbose())
        fprintf(stderr, "mode 0x%02x: %s: %d %s (%s)\n", mode, how, r, fz_result_name(r),
                r < 0 ? sc_sasl_errmsg(&cli) : "");
    free(sf);
    sc_sasl_free(&cli);
    fz_arena_check(mark);
    return 0;
}
