/* libFuzzer target: the DIGEST-MD5 client (RFC 2831) against a hostile
 * server, at the mechanism level. The input is
 *
 *   byte 0   the client's policy (fuzz_sasl_peers.h, FZ_DC_*): the qops it
 *            accepts, plaintext, allow_no_layer, des only, prefer_des, a
 *            configured realm
 *   byte 1   FZ_DC2_*: a 128-byte output, an authzid, the smallest maxbuf, the
 *            default digest-uri "nbd/localhost" (else RFC 2831's)
 *   rest     the digest-challenge; after the first 0xff byte, the
 *            response-auth (fed only if the challenge gave CONTINUE).
 *
 * User chris/secret and RFC 2831's cnonce, so the RFC's challenge and
 * rspauth are valid inputs (with byte 0 allowing qop auth).
 *
 * Invariants beyond the sanitizers (fuzz_sasl.h): results in range, errors
 * sticky with a message, outputs within the capacity; the qop and cipher
 * chosen are ones the policy accepts (docs/sasl.md: never below the
 * configured minimum, whatever the server lists); SC_OK only after
 * rspauth, with a layer exactly when the qop has one; the arena balanced. */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_sasl.h"
#include "fuzz_sasl_peers.h"

static struct sc_sasl cli;

/* The value of ",name=" in out[0..n), up to the next comma. */
FZ_NOCOV static bool value_of(const uint8_t *out, size_t n, const char *name, char *val,
                              size_t cap)
{
    size_t k = strlen(name);
    const uint8_t *at = NULL;
    for (size_t i = 0; i + k <= n && at == NULL; i++)
        if (memcmp(out + i, name, k) == 0)
            at = out + i + k;
    if (at == NULL)
        return false;
    size_t v = 0;
    while (at + v < out + n && at[v] != ',' && v + 1 < cap) {
        val[v] = (char)at[v];
        v++;
    }
    val[v] = '\0';
    return true;
}

/* The response's qop and cipher against the client's policy; returns the
 * qop. They follow our response= value, the last one in the response:
 * the server's strings (realm, nonce), which may hold anything, come
 * before it. */
FZ_NOCOV static unsigned check_choice(const struct fz_digest_client *c, const uint8_t *out,
                                      size_t n)
{
    const uint8_t *tail = NULL;
    for (size_t i = 0; i + 10 <= n; i++)
        if (memcmp(out + i, ",response=", 10) == 0)
            tail = out + i + 10;
    FZ_CHECK(tail != NULL);
    size_t tn = (size_t)(out + n - tail);
    char qop[16], cipher[16], maxbuf[16];
    FZ_CHECK(value_of(tail, tn, ",qop=", qop, sizeof(qop)));
    unsigned q = strcmp(qop, "auth") == 0        ? SC_SASL_QOP_AUTH
                 : strcmp(qop, "auth-int") == 0  ? SC_SASL_QOP_INT
                 : strcmp(qop, "auth-conf") == 0 ? SC_SASL_QOP_CONF
                                                 : 0;
    FZ_CHECK(q != 0);
    unsigned mine = c->cfg.qop != 0 ? c->cfg.qop
                                    : SC_SASL_QOP_AUTH | SC_SASL_QOP_INT | SC_SASL_QOP_CONF;
    if (c->cfg.plaintext && !c->cfg.allow_no_layer)
        mine &= ~SC_SASL_QOP_AUTH;
    FZ_CHECK(q & mine);
    bool has_cipher = value_of(tail, tn, ",cipher=", cipher, sizeof(cipher));
    FZ_CHECK(has_cipher == (q == SC_SASL_QOP_CONF));
    if (has_cipher) {
        unsigned ok = c->cfg.ciphers != 0 ? c->cfg.ciphers
                                          : SC_SASL_CIPHER_DES | SC_SASL_CIPHER_3DES;
        FZ_CHECK((strcmp(cipher, "des") == 0 && (ok & SC_SASL_CIPHER_DES)) ||
                 (strcmp(cipher, "3des") == 0 && (ok & SC_SASL_CIPHER_3DES)));
    }
    FZ_CHECK(value_of(tail, tn, ",maxbuf=", maxbuf, sizeof(maxbuf)) == (q != SC_SASL_QOP_AUTH));
    return q;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    uint8_t mode = data[0], mode2 = data[1];
    struct fz_digest_client c;
    fz_digest_client_cfg(mode, mode2, &c);
    struct fz_parts parts;
    fz_split(data + 2, size - 2, 2, &parts);
    size_t mark = fz_arena_mark();

    FZ_CHECK(sc_sasl_client_init(&cli, &c.cfg) == 0);
    uint8_t *out = fz_out(c.cap);
    size_t n = 12345;
    bool has = true;
    int r = sc_sasl_client_start(&cli, SC_SASL_DIGEST_MD5, out, c.cap, &n, &has);
    FZ_CHECK(r == SC_SASL_CONTINUE && !has && n == 0);  /* the server speaks first */

    const char *how = "challenge";
    uint8_t *ch = fz_dup(parts.p[0], parts.n[0]);
    r = sc_sasl_step(&cli, ch, parts.n[0], out, c.cap, &n);
    fz_sasl_result(r);
    fz_check_out(out, n, c.cap, false);
    FZ_CHECK(r != SC_OK);
    if (r == SC_SASL_CONTINUE) {
        unsigned q = check_choice(&c, out, n);
        if (parts.count > 1) {
            how = "rspauth";
            uint8_t *rsp = fz_dup(parts.p[1], parts.n[1]);
            r = sc_sasl_step(&cli, rsp, parts.n[1], out, c.cap, &n);
            fz_sasl_result(r);
            FZ_CHECK(r != SC_SASL_CONTINUE && n == 0);
            if (r == SC_OK) {
                FZ_CHECK(fz_has(rsp, parts.n[1], "rspauth"));
                struct sc_sasl_info info;
                FZ_CHECK(sc_sasl_info(&cli, &info) == 0);
                FZ_CHECK(info.mech == SC_SASL_DIGEST_MD5 && info.qop == q);
                FZ_CHECK(sc_sasl_has_layer(&cli) == (q != SC_SASL_QOP_AUTH));
                FZ_CHECK((info.cipher != 0) == (q == SC_SASL_QOP_CONF));
                FZ_CHECK(info.send_maxbuf >= SC_SASL_MAXBUF_MIN &&
                         info.send_maxbuf <= SC_SASL_MAXBUF_MAX);
                r = sc_sasl_step(&cli, rsp, parts.n[1], out, c.cap, &n);
                FZ_CHECK(r == SC_ERR_STATE);
                how = "after the end";
            }
            free(rsp);
        }
    }
    if (r < 0)
        fz_sasl_sticky(&cli, r, c.cap);
    if (fz_verbose())
        fprintf(stderr, "mode 0x%02x 0x%02x: %s: %d %s (%s)\n", mode, mode2, how, r,
                fz_result_name(r), r < 0 ? sc_sasl_errmsg(&cli) : "");
    free(ch);
    sc_sasl_free(&cli);
    fz_arena_check(mark);
    return 0;
}
