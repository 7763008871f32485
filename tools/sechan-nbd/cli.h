/* sechan-nbd: shared pieces of the subcommands. */
#ifndef SECHAN_NBD_CLI_H
#define SECHAN_NBD_CLI_H

#include <stdbool.h>
#include <stdint.h>

#include "sechan/nbd.h"
#include "sechan/tcp.h"
#include "uri.h"

/* Exit codes a script can rely on. */
enum {
    EXIT_OK = 0,
    EXIT_USAGE = 1,      /* bad arguments, URI or file name */
    EXIT_CONNECT = 2,    /* could not reach the server */
    EXIT_CREDS = 3,      /* credentials missing or unreadable */
    EXIT_TLS = 4,        /* TLS failed or was refused */
    EXIT_NBD = 5,        /* the server refused the export or broke the protocol */
    EXIT_IO = 6,         /* a read or write failed during the work */
    EXIT_TIMEOUT = 7,
    EXIT_VERIFY = 8      /* --checksum found a difference */
};

struct cli_conn {
    struct sc_sock sock;
    struct sc_nbd_conn nbd;
    struct sc_tls_config tls_cfg;
};

extern unsigned cli_timeout_s;  /* --timeout, default 30 */

/* Load the credentials a URI names (once per process). */
int cli_load_creds(const struct nbd_uri *u);
/* Connect and negotiate; on failure print one line and return an exit code. */
int cli_connect(struct cli_conn *c, const struct nbd_uri *u,
                const struct sc_nbd_client_config *cfg);
void cli_disconnect(struct cli_conn *c);
/* Map an SC_ERR_* to an exit code. */
int cli_exit_code(int err);
uint64_t cli_deadline(void);
/* Parse "1G", "512M", "4096" into bytes; -1 on error. */
int cli_parse_size(const char *s, uint64_t *out);

int cmd_info(int argc, char **argv);
int cmd_copy(int argc, char **argv);
int cmd_serve(int argc, char **argv);

#endif
