/* sechan/err.h: error codes shared by every layer.
 *
 * Every function of the stack that can fail returns 0 (or a count) on
 * success and one of these small negative codes on failure. Would-block
 * (SC_ERR_AGAIN) is not a failure: it is never sticky and never stored as
 * a channel's error.
 */
#ifndef SECHAN_ERR_H
#define SECHAN_ERR_H

enum sc_err {
    SC_OK = 0,
    SC_ERR_AGAIN = -1,          /* would block: retry after waiting */
    SC_ERR_INVAL = -2,          /* bad argument from the caller */
    SC_ERR_STATE = -3,          /* call not allowed in this state */
    SC_ERR_UNSUPPORTED = -4,    /* optional operation not provided */
    SC_ERR_NOSPACE = -5,        /* caller buffer, pool or arena too small */
    SC_ERR_TIMEOUT = -6,        /* deadline passed */
    SC_ERR_EOF = -7,            /* peer closed before the expected data */
    SC_ERR_CLOSED = -8,         /* channel already closed locally */
    SC_ERR_IO = -9,             /* transport I/O failure */
    SC_ERR_RESET = -10,         /* connection reset or broken pipe */
    SC_ERR_REFUSED = -11,       /* connection refused */
    SC_ERR_ADDR = -12,          /* bad or unusable address */
    SC_ERR_TOO_LONG = -13,      /* a length from input exceeds its bound */
    SC_ERR_PROTO = -14,         /* peer broke the protocol */
    SC_ERR_ENTROPY = -15,       /* no entropy source or it failed */
    SC_ERR_FILE = -16,          /* a file could not be opened or read */
    SC_ERR_CRED = -17,          /* credentials malformed or unusable */
    SC_ERR_TLS = -18,           /* TLS failure not covered below */
    SC_ERR_TLS_HANDSHAKE = -19, /* handshake failed (no common parameters...) */
    SC_ERR_TLS_ALERT = -20,     /* peer sent a fatal alert */
    SC_ERR_TLS_UNTRUSTED = -21, /* peer certificate not signed by a trusted CA */
    SC_ERR_TLS_HOSTNAME = -22,  /* peer certificate does not match the host name */
    SC_ERR_TLS_REVOKED = -23,   /* peer certificate revoked by the CRL */
    SC_ERR_TLS_EXPIRED = -24,   /* peer certificate expired or not yet valid */
    SC_ERR_TLS_CERT = -25,      /* peer certificate rejected for another reason */
    SC_ERR_TLS_NOCERT = -26,    /* peer sent no certificate but one is required */
    SC_ERR_TLS_PSK = -27,       /* pre-shared key rejected (wrong key or identity) */
    SC_ERR_TLS_RECORD = -28,    /* record failed authentication (tampering) */
    SC_ERR_TLS_MEMORY = -29,    /* the Mbed TLS arena is exhausted */
    SC_ERR_INTERNAL = -30,      /* a bug: an invariant did not hold */
    SC_ERR_TLS_REQUIRED = -31,  /* TLS is required but the peer refused it */
    SC_ERR_NOT_FOUND = -32,     /* no such export (or other named object) */
    SC_ERR_REMOTE = -33,        /* the peer reported an error for a request */
    SC_ERR_BUSY = -34,          /* the peer has no room for us right now */
    SC_ERR_SASL_AUTH = -35,     /* authentication failed (wrong password or proof) */
    SC_ERR_SASL_USER = -36,     /* unknown user (server side; the client sees SASL_AUTH) */
    SC_ERR_SASL_POLICY = -37,   /* no mechanism or security layer our policy allows */
    SC_ERR_SASL_REPLAY = -38,   /* a nonce that is not the one issued, or used twice */
    SC_ERR_SASL_MAC = -39,      /* a security-layer frame failed its MAC (tampered) */
    SC_ERR_SASL_SEQ = -40,      /* a security-layer frame out of sequence (replayed, lost) */
    SC_ERR_SASL_SERVER = -41    /* the server failed to prove it knows the password */
};

#define SC_ERR_COUNT 42

/* A short, static, human-readable description of an error code.
 * Unknown codes give "unknown error". Never NULL. */
const char *sc_strerror(int err);

/* The symbolic name of an error code ("SC_ERR_TIMEOUT"), for logs and tests. */
const char *sc_errname(int err);

#endif
