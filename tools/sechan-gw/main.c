/* sechan-gw: the host gateway (see gw.h and docs/gateway.md).
 *
 *   sechan-gw serve CONFIG
 *   sechan-gw check CONFIG
 *   sechan-gw adduser CREDENTIALS USER [--realm REALM] [--iterations N]
 *       (reads the password from the first line of standard input)
 */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gw.h"

static struct gw_config config;

static int usage(void)
{
    fprintf(stderr, "usage: sechan-gw serve CONFIG\n"
                    "       sechan-gw check CONFIG\n"
                    "       sechan-gw adduser CREDENTIALS USER [--realm REALM] "
                    "[--iterations N]   (password on stdin)\n");
    return 2;
}

static int adduser(int argc, char **argv)
{
    if (argc < 4)
        return usage();
    const char *realm = "sechan";
    unsigned long iterations = 4096;
    for (int i = 4; i < argc; i++) {
        if (strcmp(argv[i], "--realm") == 0 && i + 1 < argc) {
            realm = argv[++i];
        } else if (strcmp(argv[i], "--iterations") == 0 && i + 1 < argc) {
            char *end = NULL;
            iterations = strtoul(argv[++i], &end, 10);
            if (*end != '\0' || iterations < SC_SASL_ITER_MIN || iterations > SC_SASL_ITER_MAX) {
                fprintf(stderr, "sechan-gw: iterations from %d to %d\n", SC_SASL_ITER_MIN,
                        SC_SASL_ITER_MAX);
                return 2;
            }
        } else {
            return usage();
        }
    }
    char pass[SC_SASL_PASS_MAX + 2];
    if (fgets(pass, sizeof(pass), stdin) == NULL) {
        fprintf(stderr, "sechan-gw: no password on standard input\n");
        return 2;
    }
    pass[strcspn(pass, "\r\n")] = '\0';
    if (pass[0] == '\0') {
        fprintf(stderr, "sechan-gw: empty password\n");
        return 2;
    }
    int r = gw_adduser(argv[2], argv[3], realm, (uint32_t)iterations, pass);
    memset(pass, 0, sizeof(pass));
    if (r != 0)
        return 1;
    fprintf(stderr, "sechan-gw: %s: wrote SCRAM-SHA-256, SCRAM-SHA-1 and DIGEST-MD5 (realm %s) "
                    "secrets of %s\n", argv[2], realm, argv[3]);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 2)
        return usage();
    if (strcmp(argv[1], "adduser") == 0)
        return adduser(argc, argv);
    if (argc != 3 || (strcmp(argv[1], "serve") != 0 && strcmp(argv[1], "check") != 0))
        return usage();
    if (gw_config_load(&config, argv[2]) != 0)
        return 2;
    if (strcmp(argv[1], "check") == 0) {
        if (config.sasl && gw_creds_load(config.creds_path) != 0)
            return 2;
        fprintf(stderr, "sechan-gw: %s: OK (%zu routes)\n", argv[2], config.route_count);
        return 0;
    }
    return gw_serve(&config) == 0 ? 0 : 1;
}
