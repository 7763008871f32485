/* libFuzzer target: the DIGEST-MD5 server (RFC 2831) against a hostile
 * client, at the mechanism level: sc_sasl_server_start makes the
 * challenge, then the input is the digest-response. The input is
 *
 *   byte 0   the server (fuzz_sasl_peers.h, FZ_DS_*): the qops offered,
 *            plaintext, allow_no_layer, the ciphers offered, a 39-byte
 *            output for the answer, service and realm left to defaults
 *   rest     the digest-response; after the first 0xff byte, a second
 *            token (fed only after SC_OK: it must be refused).
 *
 * The server's nonce is RFC 2831's and it knows chris/secret at the RFC's
 * realm, so the RFC's response is a valid input (with byte 0 offering
 * qop auth and not plaintext).
 *
 * Invariants beyond the sanitizers (fuzz_sasl.h): results in range, errors
 * sticky with a message, outputs within the capacity; the challenge offers
 * only what the policy allows; SC_OK only for a known user, with a qop and
 * cipher that were offered, a layer exactly when the qop has one, and
 * "rspauth=" with 32 hex digits; the arena balanced. */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_sasl.h"
#include "fuzz_sasl_peers.h"

static struct sc_sasl srv;

static unsigned server_qops(const struct fz_digest_server *s)
{
    unsigned q = s->cfg.qop != 0 ? s->cfg.qop
                                 : SC_SASL_QOP_AUTH | SC_SASL_QOP_INT | SC_SASL_QOP_CONF;
    if (s->cfg.plaintext && !s->cfg.allow_no_layer)
        q &= ~SC_SASL_QOP_AUTH;
    return q;
}

FZ_NOCOV static void check_challenge(const struct fz_digest_server *s, const uint8_t *out,
                                     size_t n)
{
    unsigned q = server_qops(s);
    FZ_CHECK(fz_has(out, n, "nonce=\"" RFC2831_NONCE "\""));
    FZ_CHECK(fz_has(out, n, "algorithm=md5-sess"));
    FZ_CHECK(fz_has(out, n, "auth-conf") == ((q & SC_SASL_QOP_CONF) != 0));
    FZ_CHECK(fz_has(out, n, "auth-int") == ((q & SC_SASL_QOP_INT) != 0));
    FZ_CHECK(fz_has(out, n, "cipher=") == ((q & SC_SASL_QOP_CONF) != 0));
}

FZ_NOCOV static bool is_hex(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!((p[i] >= '0' && p[i] <= '9') || (p[i] >= 'a' && p[i] <= 'f')))
            return false;
    return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    uint8_t mode = data[0];
    struct fz_digest_server s;
    fz_digest_server_cfg(mode, &s);
    struct fz_parts parts;
    fz_split(data + 1, size - 1, 2, &parts);
    fz_users_init();
    size_t mark = fz_arena_mark();

    int r = sc_sasl_server_init(&srv, &s.cfg);
    if (r != 0) {
        /* plaintext, no layer allowed, only auth: nothing to offer */
        FZ_CHECK(r == SC_ERR_SASL_POLICY && server_qops(&s) == 0);
        FZ_CHECK(sc_sasl_error(&srv) == r);
        sc_sasl_free(&srv);
        fz_arena_check(mark);
        return 0;
    }
    uint8_t *out = fz_out(SC_SASL_TOKEN_MAX);
    size_t n = 12345;
    r = sc_sasl_server_start(&srv, SC_SASL_DIGEST_MD5, NULL, 0, false, out, SC_SASL_TOKEN_MAX,
                             &n);
    FZ_CHECK(r == SC_SASL_CONTINUE);
    fz_check_out(out, n, SC_SASL_TOKEN_MAX, true);
    check_challenge(&s, out, n);

    const char *how = "response";
    out = fz_out(s.cap);
    uint8_t *resp = fz_dup(parts.p[0], parts.n[0]);
    r = sc_sasl_step(&srv, resp, parts.n[0], out, s.cap, &n);
    fz_sasl_result(r);
    fz_check_out(out, n, s.cap, true);
    FZ_CHECK(r != SC_SASL_CONTINUE);
    if (r == SC_OK) {
        FZ_CHECK(n == 40 && memcmp(out, "rspauth=", 8) == 0 && is_hex(out + 8, 32));
        struct sc_sasl_info info;
        FZ_CHECK(sc_sasl_info(&srv, &info) == 0);
        FZ_CHECK(fz_known_user(info.user));
        FZ_CHECK(info.mech == SC_SASL_DIGEST_MD5 && (info.qop & server_qops(&s)));
        FZ_CHECK(sc_sasl_has_layer(&srv) == (info.qop != SC_SASL_QOP_AUTH));
        if (info.qop == SC_SASL_QOP_CONF) {
            unsigned offered = s.cfg.ciphers != 0 ? s.cfg.ciphers
                                                  : SC_SASL_CIPHER_DES | SC_SASL_CIPHER_3DES;
            FZ_CHECK(info.cipher != 0 && (info.cipher & offered) == info.cipher);
        } else {
            FZ_CHECK(info.cipher == 0);
        }
        how = "after the end";
        const uint8_t *more = parts.count > 1 ? parts.p[1] : resp;
        size_t more_len = parts.count > 1 ? parts.n[1] : parts.n[0];
        uint8_t *again = fz_dup(more, more_len);
        r = sc_sasl_step(&srv, again, more_len, out, s.cap, &n);
        FZ_CHECK(r == SC_ERR_STATE);
        free(again);
    }
    if (r < 0)
        fz_sasl_sticky(&srv, r, s.cap);
    if (fz_verbose())
        fprintf(stderr, "mode 0x%02x: %s: %d %s (%s)\n", mode, how, r, fz_result_name(r),
                r < 0 ? sc_sasl_errmsg(&srv) : "");
    free(resp);
    sc_sasl_free(&srv);
    fz_arena_check(mark);
    return 0;
}
