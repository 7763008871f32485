/* sechan-nbd: an NBD client and server on the sechan stack.
 *   sechan-nbd info URI [--json] [--list]     what the server offers
 *   sechan-nbd info --sizes                    context sizes of this build
 *   sechan-nbd copy SRC DST [options]          between an NBD URI and a file or -
 *   sechan-nbd serve FILE|--memory SIZE [...]  export a file or RAM
 * See each subcommand's --help. Exit codes are in cli.h (0 ok, 1 usage,
 * 2 connect, 3 credentials, 4 TLS, 5 NBD, 6 I/O, 7 timeout, 8 verify). */
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"

static void usage(void)
{
    fprintf(stderr,
            "usage: sechan-nbd info URI [--json] [--list] | info --sizes\n"
            "       sechan-nbd copy SRC DST [--connections=N] [--requests=N] [--request-size=N]\n"
            "                               [--no-progress] [--checksum] [--timeout=S]\n"
            "       sechan-nbd serve FILE|--memory SIZE [--port=P] [--unix=PATH] [--export=NAME]\n"
            "                        [--tls=off|on|require] [--tls-certificates=DIR]\n"
            "                        [--tls-psk-file=FILE] [--tls-verify-peer] [--read-only]\n"
            "                        [--max-clients=N] [--handshake-timeout=S] [--once]\n"
            "URIs: nbd://host[:port]/export, nbds://..., nbd+unix:///export?socket=PATH,\n"
            "      with ?tls-certificates=DIR, tls-psk-file=FILE, tls-username=, tls-verify-peer=\n");
}

int main(int argc, char **argv)
{
    signal(SIGPIPE, SIG_IGN);
    if (argc < 2) {
        usage();
        return EXIT_USAGE;
    }
    if (strcmp(argv[1], "info") == 0)
        return cmd_info(argc - 2, argv + 2);
    if (strcmp(argv[1], "copy") == 0)
        return cmd_copy(argc - 2, argv + 2);
    if (strcmp(argv[1], "serve") == 0)
        return cmd_serve(argc - 2, argv + 2);
    usage();
    return EXIT_USAGE;
}
