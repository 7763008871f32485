/* libFuzzer target: the NBD server engine's option and request parser.
 *
 * Input: byte 0 picks the TLS policy (off, optional, require) and whether
 * the export is read-only; byte 1 seeds the slicing; the rest is what a
 * client sends. The engine runs over a 256 KiB memory export with a small
 * (4 KiB) payload buffer, so every request streams in pieces.
 *
 * Invariants beyond the sanitizers: the engine never offers room outside
 * its buffers, never reaches transmission before TLS when TLS is required,
 * and never writes the export when it is read-only. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "fuzz_util.h"
#include "sechan/nbd.h"
#include "sechan/nbd_backend.h"

#define EXPORT_SIZE (256u * 1024u)

static uint8_t disk[EXPORT_SIZE], pristine[EXPORT_SIZE];
static uint8_t payload_buf[4096];
static struct sc_nbd_server srv;

FZ_NOCOV static int recv_room_ok(const uint8_t *p, size_t room)
{
    return fz_inside(p, room, &srv, sizeof(srv)) || fz_inside(p, room, payload_buf,
                                                              sizeof(payload_buf));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    uint8_t mode = data[0];
    struct fz_rng rng;
    fz_rng_init(&rng, data[1]);
    data += 2;
    size -= 2;

    static struct sc_nbd_mem_backend mem = {.data = disk, .size = EXPORT_SIZE};
    bool read_only = (mode & 4) != 0;
    struct sc_nbd_export exports[2] = {
        {.name = "", .size = EXPORT_SIZE, .ops = &sc_nbd_mem_ops, .ctx = &mem,
         .read_only = read_only, .description = "fuzz"},
        {.name = "second", .size = EXPORT_SIZE / 2, .ops = &sc_nbd_mem_ops, .ctx = &mem,
         .read_only = read_only},
    };
    enum sc_nbd_tls_policy tls = (enum sc_nbd_tls_policy)(mode % 3);
    struct sc_nbd_server_config cfg = {.exports = exports, .nr_exports = 2, .tls = tls,
                                       .buf = payload_buf, .buf_len = sizeof(payload_buf)};
    if (read_only)
        memcpy(disk, pristine, sizeof(disk));
    FZ_CHECK(sc_nbd_server_init(&srv, &cfg) == 0);

    bool tls_up = false;
    size_t pos = 0;
    for (unsigned rounds = 0; rounds < 100000; rounds++) {
        unsigned st = sc_nbd_server_state(&srv);
        if (st & (SC_NBD_FAILED | SC_NBD_CLOSED))
            break;
        if (tls == SC_NBD_TLS_REQUIRE && !tls_up)
            FZ_CHECK(!(st & SC_NBD_READY));
        if (st & SC_NBD_WANT_TLS) {
            FZ_CHECK(tls != SC_NBD_TLS_OFF);
            FZ_CHECK(sc_nbd_server_tls_done(&srv) == 0);
            tls_up = true;
            continue;
        }
        size_t len;
        const uint8_t *out = sc_nbd_server_sendbuf(&srv, &len);
        if (out != NULL && len > 0) {
            /* The client takes what it is given in slices. */
            size_t n = fz_slice(&rng, len, len);
            sc_nbd_server_sendack(&srv, n);
            continue;
        }
        uint8_t *in = sc_nbd_server_recvbuf(&srv, &len);
        if (in == NULL || len == 0)
            break;
        FZ_CHECK(recv_room_ok(in, len));
        if (pos == size) {
            (void)sc_nbd_server_eof(&srv);
            break;
        }
        size_t n = fz_slice(&rng, len, size - pos);
        memcpy(in, data + pos, n);
        pos += n;
        if (sc_nbd_server_recvack(&srv, n) != 0)
            break;
    }
    if (read_only)
        FZ_CHECK(memcmp(disk, pristine, sizeof(disk)) == 0);
    if (fz_verbose())
        fprintf(stderr, "server ended: state %u error %d (%s)\n", sc_nbd_server_state(&srv),
                sc_nbd_server_error(&srv), sc_nbd_server_errmsg(&srv));
    return 0;
}
