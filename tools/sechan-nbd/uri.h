/* NBD URIs as the NBD URI specification and libnbd read them:
 *   nbd://[user@]host[:port][/export][?query]     nbds://... (TLS required)
 *   nbd+unix:///[export]?socket=PATH              nbds+unix:///...?socket=PATH
 * Query keys: socket, tls-certificates, tls-psk-file, tls-username,
 * tls-verify-peer (true/false), tls-hostname. Unknown keys are an error. */
#ifndef SECHAN_NBD_URI_H
#define SECHAN_NBD_URI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct nbd_uri {
    bool tls;
    bool is_unix;
    char host[256];
    uint16_t port;
    char socket[108];
    char export_name[4097];
    char user[129];
    char tls_certificates[512];
    char tls_psk_file[512];
    char tls_hostname[256];
    bool tls_verify_peer;
};

/* Parse s; 0, or -1 with a one-line reason in err. */
int nbd_uri_parse(const char *s, struct nbd_uri *u, char *err, size_t err_cap);

/* Does s look like an NBD URI (rather than a file name)? */
bool nbd_uri_is_uri(const char *s);

#endif
