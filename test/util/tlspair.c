/* see tlspair.h */
#define _POSIX_C_SOURCE 200809L
#include "tlspair.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <cmocka.h>

#include "sechan/port.h"

static unsigned char pair_ring_ab[1u << 16], pair_ring_ba[1u << 16];

const char *pki_path(const char *sub)
{
    static char path[4][512];
    static int slot;
    const char *dir = getenv("SECHAN_PKI_DIR");
    char *p = path[slot++ % 4];
    snprintf(p, sizeof(path[0]), "%s/%s", dir ? dir : "build/test/pki-out", sub);
    return p;
}

void creds_x509(struct sc_tls_creds *c, const char *sub, enum sc_tls_endpoint ep)
{
    assert_int_equal(sc_tls_creds_init(c), 0);
    int r = sc_tls_creds_load_x509_dir(c, pki_path(sub), ep);
    if (r != 0)
        print_error("creds %s: %s\n", sub, sc_tls_creds_errmsg(c));
    assert_int_equal(r, 0);
}

void creds_psk(struct sc_tls_creds *c, const char *file)
{
    assert_int_equal(sc_tls_creds_init(c), 0);
    int r = sc_tls_creds_load_psk_file(c, pki_path(file));
    if (r != 0)
        print_error("psk %s: %s\n", file, sc_tls_creds_errmsg(c));
    assert_int_equal(r, 0);
}

int tls_pair_run(struct tls_pair *tp, const struct sc_tls_config *ccfg,
                 const struct sc_tls_config *scfg)
{
    assert_int_equal(sc_pipe_init(&tp->pipe, pair_ring_ab, sizeof(pair_ring_ab), pair_ring_ba,
                                  sizeof(pair_ring_ba)),
                     0);
    tp->client_rc = sc_tls_init(&tp->client, &tp->pipe.a.base, ccfg);
    tp->server_rc = sc_tls_init(&tp->server, &tp->pipe.b.base, scfg);
    assert_int_equal(tp->server_rc, 0);
    if (tp->client_rc != 0)
        return tp->client_rc;
    uint64_t deadline = sc_deadline_in(20000);
    int c = SC_ERR_AGAIN, s = SC_ERR_AGAIN;
    while (c == SC_ERR_AGAIN || s == SC_ERR_AGAIN) {
        assert_true(sc_port_now_ms() < deadline);
        if (c == SC_ERR_AGAIN)
            c = sc_tls_handshake(&tp->client);
        if (s == SC_ERR_AGAIN)
            s = sc_tls_handshake(&tp->server);
        /* One side failed: the other gets EOF once its pipe end is closed. */
        if (c < 0 && c != SC_ERR_AGAIN && s == SC_ERR_AGAIN)
            sc_close(&tp->pipe.a.base);
        if (s < 0 && s != SC_ERR_AGAIN && c == SC_ERR_AGAIN)
            sc_close(&tp->pipe.b.base);
    }
    tp->client_rc = c;
    tp->server_rc = s;
    return c != 0 ? c : s;
}

void tls_pair_close(struct tls_pair *tp)
{
    sc_close(&tp->client.base);
    sc_close(&tp->server.base);
    sc_close(&tp->pipe.a.base);
    sc_close(&tp->pipe.b.base);
}
