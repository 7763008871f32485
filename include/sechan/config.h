/* sechan/config.h: compile-time sizes of every static pool and buffer.
 *
 * Each value may be overridden with -D. Host builds (SC_TLS_HOST) get room
 * for servers with many clients; bare-metal builds get the small values.
 */
#ifndef SECHAN_CONFIG_H
#define SECHAN_CONFIG_H

/* Bytes of the static arena that Mbed TLS allocates from. One TLS 1.3
 * connection with 16 KiB records and X.509 peaks near 60 KiB on the host. */
#ifndef SC_TLS_ARENA_SIZE
#if defined(SC_TLS_HOST)
#define SC_TLS_ARENA_SIZE (8u * 1024u * 1024u)
#else
#define SC_TLS_ARENA_SIZE (24u * 1024u)
#endif
#endif

/* Pre-shared keys held by one credentials object (a server's PSK file may
 * list several identities; a client uses one). */
#ifndef SC_TLS_PSK_MAX
#if defined(SC_TLS_HOST)
#define SC_TLS_PSK_MAX 16
#else
#define SC_TLS_PSK_MAX 1
#endif
#endif
#define SC_TLS_PSK_ID_MAX 128   /* bytes of a PSK identity */
#define SC_TLS_PSK_KEY_MAX 64   /* bytes of a PSK key (psktool makes 32) */

/* Largest credential file (PEM, PSK) read at once; read on the stack.
 * Small builds read no files and take credentials from memory as DER or
 * NUL-terminated PEM, which need no copy: 0. */
#ifndef SC_TLS_FILE_MAX
#if defined(SC_TLS_HOST)
#define SC_TLS_FILE_MAX (32u * 1024u)
#else
#define SC_TLS_FILE_MAX 0u
#endif
#endif

#endif
