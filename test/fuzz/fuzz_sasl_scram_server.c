/* libFuzzer target: the SCRAM server (RFC 5802, RFC 7677) against a
 * hostile client, at the mechanism level (sc_sasl_server_start, then
 * sc_sasl_step). The input is
 *
 *   byte 0   the server (fuzz_sasl_peers.h, FZ_SS_*): SHA-1 or SHA-256,
 *            -PLUS, a binding without -PLUS (so "y" is a downgrade), the
 *            binding's type, a 64-byte output, no initial response
 *   rest     client-first-message; after the first 0xff byte, the
 *            client-final-message (fed only if the first gave CONTINUE).
 *
 * The user table (fz_lookup) knows "user"/"pencil" with RFC 5802's salt
 * for SHA-1 and RFC 7677's for SHA-256, and the server nonce is the RFC's,
 * so the RFCs' client messages are valid inputs.
 *
 * Invariants beyond the sanitizers (fuzz_sasl.h): results in range, errors
 * sticky with a message, outputs (reasons included) within the capacity
 * and printable; server-first extends the client's nonce with ours, and a
 * second server answers the same client-first the same (known user or
 * not); SC_OK only for a known user, with v=, and for -PLUS with
 * channel_bound after a well-formed "p=" header; the arena balanced. */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_sasl.h"
#include "fuzz_sasl_peers.h"

static struct sc_sasl srv, twin;
static uint8_t first_copy[SC_SASL_TOKEN_MAX];

/* start, and with FZ_SS_NOINIT a step, with the client-first-message */
static int client_first(struct sc_sasl *s, const struct fz_scram_server *c, const uint8_t *cf,
                        size_t len, uint8_t *out, size_t *n)
{
    if (c->has_in)
        return sc_sasl_server_start(s, c->mech, cf, len, true, out, c->cap, n);
    /* an empty challenge asks for the client-first-message */
    int r = sc_sasl_server_start(s, c->mech, NULL, 0, false, out, c->cap, n);
    FZ_CHECK(r == SC_SASL_CONTINUE && *n == 0);
    return sc_sasl_step(s, cf, len, out, c->cap, n);
}

FZ_NOCOV static void check_server_first(const struct fz_scram_server *s, const uint8_t *out,
                                        size_t n)
{
    FZ_CHECK(n > 2 && memcmp(out, "r=", 2) == 0);
    FZ_CHECK(fz_has(out, n, s->cfg.test_nonce));
    FZ_CHECK(fz_has(out, n, ",s="));
    FZ_CHECK(fz_has(out, n, ",i="));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    uint8_t mode = data[0];
    struct fz_scram_server s;
    fz_scram_server_cfg(mode, &s);
    struct fz_parts parts;
    fz_split(data + 1, size - 1, 2, &parts);
    fz_users_init();  /* before the mark: the verifiers stay */
    size_t mark = fz_arena_mark();

    FZ_CHECK(sc_sasl_server_init(&srv, &s.cfg) == 0);
    uint8_t *out = fz_out(s.cap);
    size_t n = 12345;
    uint8_t *cf = fz_dup(parts.p[0], parts.n[0]);
    const char *how = "client-first";
    int r = client_first(&srv, &s, cf, parts.n[0], out, &n);
    fz_sasl_result(r);
    fz_check_out(out, n, s.cap, true);
    FZ_CHECK(r != SC_OK);
    if (r == SC_SASL_CONTINUE) {
        check_server_first(&s, out, n);
        /* Asked again, the server answers the same (its nonce is fixed
         * here): a salt that changes tells an unknown user from a known
         * one, the enumeration the decoy verifier is there to prevent. */
        if (!fz_skip("decoy-salt")) {
            size_t n1 = n, n2 = 0;
            memcpy(first_copy, out, n1);
            FZ_CHECK(sc_sasl_server_init(&twin, &s.cfg) == 0);
            FZ_CHECK(client_first(&twin, &s, cf, parts.n[0], out, &n2) == SC_SASL_CONTINUE);
            FZ_CHECK(n2 == n1 && memcmp(out, first_copy, n1) == 0);
            sc_sasl_free(&twin);
        }
        if (parts.count > 1) {
            how = "client-final";
            uint8_t *cfin = fz_dup(parts.p[1], parts.n[1]);
            r = sc_sasl_step(&srv, cfin, parts.n[1], out, s.cap, &n);
            fz_sasl_result(r);
            fz_check_out(out, n, s.cap, true);
            FZ_CHECK(r != SC_SASL_CONTINUE);
            if (r == SC_OK) {
                /* a known user proved the password: v= goes back */
                FZ_CHECK(n > 2 && memcmp(out, "v=", 2) == 0);
                struct sc_sasl_info info;
                FZ_CHECK(sc_sasl_info(&srv, &info) == 0);
                FZ_CHECK(strcmp(info.user, "user") == 0);
                FZ_CHECK(info.mech == s.mech && info.channel_bound == s.plus);
                FZ_CHECK(info.qop == SC_SASL_QOP_AUTH && !sc_sasl_has_layer(&srv));
                /* -PLUS proved the binding, which the client asked for
                 * with a gs2 header "p=" cb-name (RFC 5802 section 7) */
                if (!fz_skip("gs2-flag"))
                    FZ_CHECK(!s.plus || (parts.n[0] > 2 && memcmp(cf, "p=", 2) == 0));
                r = sc_sasl_step(&srv, cfin, parts.n[1], out, s.cap, &n);
                FZ_CHECK(r == SC_ERR_STATE);
                how = "after the end";
            }
            free(cfin);
        }
    }
    if (r < 0)
        fz_sasl_sticky(&srv, r, s.cap);
    if (fz_verbose())
        fprintf(stderr, "mode 0x%02x: %s: %d %s (%s)\n", mode, how, r, fz_result_name(r),
                r < 0 ? sc_sasl_errmsg(&srv) : "");
    free(cf);
    sc_sasl_free(&srv);
    fz_arena_check(mark);
    return 0;
}
