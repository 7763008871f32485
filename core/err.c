/* see sechan/err.h */
#include "sechan/err.h"

#include <stddef.h>

struct err_entry {
    const char *name;
    const char *text;
};

/* Indexed by -code. */
static const struct err_entry err_table[SC_ERR_COUNT] = {
    [0] = {"SC_OK", "success"},
    [-SC_ERR_AGAIN] = {"SC_ERR_AGAIN", "operation would block"},
    [-SC_ERR_INVAL] = {"SC_ERR_INVAL", "invalid argument"},
    [-SC_ERR_STATE] = {"SC_ERR_STATE", "operation not allowed in this state"},
    [-SC_ERR_UNSUPPORTED] = {"SC_ERR_UNSUPPORTED", "operation not supported"},
    [-SC_ERR_NOSPACE] = {"SC_ERR_NOSPACE", "buffer, pool or arena too small"},
    [-SC_ERR_TIMEOUT] = {"SC_ERR_TIMEOUT", "deadline passed"},
    [-SC_ERR_EOF] = {"SC_ERR_EOF", "peer closed the connection early"},
    [-SC_ERR_CLOSED] = {"SC_ERR_CLOSED", "channel is closed"},
    [-SC_ERR_IO] = {"SC_ERR_IO", "I/O error"},
    [-SC_ERR_RESET] = {"SC_ERR_RESET", "connection reset by peer"},
    [-SC_ERR_REFUSED] = {"SC_ERR_REFUSED", "connection refused"},
    [-SC_ERR_ADDR] = {"SC_ERR_ADDR", "bad or unusable address"},
    [-SC_ERR_TOO_LONG] = {"SC_ERR_TOO_LONG", "length exceeds its bound"},
    [-SC_ERR_PROTO] = {"SC_ERR_PROTO", "protocol violation by peer"},
    [-SC_ERR_ENTROPY] = {"SC_ERR_ENTROPY", "no usable entropy source"},
    [-SC_ERR_FILE] = {"SC_ERR_FILE", "file cannot be read"},
    [-SC_ERR_CRED] = {"SC_ERR_CRED", "credentials malformed or unusable"},
    [-SC_ERR_TLS] = {"SC_ERR_TLS", "TLS failure"},
    [-SC_ERR_TLS_HANDSHAKE] = {"SC_ERR_TLS_HANDSHAKE", "TLS handshake failed"},
    [-SC_ERR_TLS_ALERT] = {"SC_ERR_TLS_ALERT", "peer sent a fatal TLS alert"},
    [-SC_ERR_TLS_UNTRUSTED] = {"SC_ERR_TLS_UNTRUSTED",
                               "peer certificate is not signed by a trusted CA"},
    [-SC_ERR_TLS_HOSTNAME] = {"SC_ERR_TLS_HOSTNAME",
                              "peer certificate does not match the host name"},
    [-SC_ERR_TLS_REVOKED] = {"SC_ERR_TLS_REVOKED", "peer certificate is revoked"},
    [-SC_ERR_TLS_EXPIRED] = {"SC_ERR_TLS_EXPIRED",
                             "peer certificate is expired or not yet valid"},
    [-SC_ERR_TLS_CERT] = {"SC_ERR_TLS_CERT", "peer certificate rejected"},
    [-SC_ERR_TLS_NOCERT] = {"SC_ERR_TLS_NOCERT", "peer sent no certificate"},
    [-SC_ERR_TLS_PSK] = {"SC_ERR_TLS_PSK", "pre-shared key rejected (wrong key or identity)"},
    [-SC_ERR_TLS_RECORD] = {"SC_ERR_TLS_RECORD", "TLS record failed authentication"},
    [-SC_ERR_TLS_MEMORY] = {"SC_ERR_TLS_MEMORY", "TLS memory arena exhausted"},
    [-SC_ERR_INTERNAL] = {"SC_ERR_INTERNAL", "internal error"},
    [-SC_ERR_TLS_REQUIRED] = {"SC_ERR_TLS_REQUIRED", "TLS is required but the peer refused it"},
    [-SC_ERR_NOT_FOUND] = {"SC_ERR_NOT_FOUND", "no such export"},
    [-SC_ERR_REMOTE] = {"SC_ERR_REMOTE", "the peer reported an error"},
    [-SC_ERR_BUSY] = {"SC_ERR_BUSY", "the peer has no room for another connection"},
    [-SC_ERR_SASL_AUTH] = {"SC_ERR_SASL_AUTH", "authentication failed"},
    [-SC_ERR_SASL_USER] = {"SC_ERR_SASL_USER", "unknown user"},
    [-SC_ERR_SASL_POLICY] = {"SC_ERR_SASL_POLICY",
                             "no mechanism or security layer that our policy allows"},
    [-SC_ERR_SASL_REPLAY] = {"SC_ERR_SASL_REPLAY", "nonce not issued here or already used"},
    [-SC_ERR_SASL_MAC] = {"SC_ERR_SASL_MAC", "security-layer frame failed its integrity check"},
    [-SC_ERR_SASL_SEQ] = {"SC_ERR_SASL_SEQ", "security-layer frame out of sequence"},
    [-SC_ERR_SASL_SERVER] = {"SC_ERR_SASL_SERVER", "the server did not prove it knows the password"},
};

static const struct err_entry *err_lookup(int err)
{
    if (err > 0 || err <= -SC_ERR_COUNT)
        return NULL;
    return &err_table[-err];
}

const char *sc_strerror(int err)
{
    const struct err_entry *e = err_lookup(err);
    return e ? e->text : "unknown error";
}

const char *sc_errname(int err)
{
    const struct err_entry *e = err_lookup(err);
    return e ? e->name : "SC_ERR_UNKNOWN";
}
