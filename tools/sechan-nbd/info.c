/* sechan-nbd info: what a server offers, as text or JSON. */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "sechan/nbd_backend.h"

struct export_list {
    char names[32][256];
    char descs[32][256];
    unsigned count;
};

static void on_export(void *arg, const char *name, const char *desc)
{
    struct export_list *l = arg;
    if (l->count < 32) {
        snprintf(l->names[l->count], sizeof(l->names[0]), "%s", name);
        snprintf(l->descs[l->count], sizeof(l->descs[0]), "%s", desc);
        l->count++;
    }
}

/* JSON string body: quotes, backslashes and control bytes escaped. */
static void json_str(const char *s)
{
    putchar('"');
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            printf("\\%c", c);
        else if (c < 0x20)
            printf("\\u%04x", c);
        else
            putchar(c);
    }
    putchar('"');
}

static const struct {
    uint16_t bit;
    const char *name;
} flag_names[] = {
    {SC_NBD_FLAG_READ_ONLY, "read-only"},   {SC_NBD_FLAG_SEND_FLUSH, "flush"},
    {SC_NBD_FLAG_SEND_FUA, "fua"},          {SC_NBD_FLAG_ROTATIONAL, "rotational"},
    {SC_NBD_FLAG_SEND_TRIM, "trim"},        {SC_NBD_FLAG_SEND_WRITE_ZEROES, "zero"},
    {SC_NBD_FLAG_SEND_DF, "df"},            {SC_NBD_FLAG_CAN_MULTI_CONN, "multi-conn"},
    {SC_NBD_FLAG_SEND_RESIZE, "resize"},    {SC_NBD_FLAG_SEND_CACHE, "cache"},
    {SC_NBD_FLAG_SEND_FAST_ZERO, "fast-zero"},
};

static void print_sizes(void)
{
    printf("sizes of this build's contexts (bytes):\n");
    printf("  NBD client engine (window %d)  %zu\n", SC_NBD_WINDOW, sizeof(struct sc_nbd_client));
    printf("  NBD client connection         %zu\n", sizeof(struct sc_nbd_conn));
    printf("  NBD server engine (per client) %zu\n", sizeof(struct sc_nbd_server));
    printf("  NBD server connection         %zu\n", sizeof(struct sc_nbd_server_conn));
    printf("  TLS connection context        %zu\n", sizeof(struct sc_tls));
    printf("  TLS credentials               %zu\n", sizeof(struct sc_tls_creds));
    printf("  TLS arena (static)            %u\n", (unsigned)SC_TLS_ARENA_SIZE);
}

int cmd_info(int argc, char **argv)
{
    const char *uri_s = NULL;
    bool json = false, list = false;
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--json") == 0)
            json = true;
        else if (strcmp(argv[i], "--list") == 0)
            list = true;
        else if (strcmp(argv[i], "--sizes") == 0) {
            print_sizes();
            return EXIT_OK;
        } else if (argv[i][0] != '-' && uri_s == NULL)
            uri_s = argv[i];
        else {
            fprintf(stderr, "sechan-nbd info: unknown argument '%s'\n", argv[i]);
            return EXIT_USAGE;
        }
    }
    if (uri_s == NULL) {
        fprintf(stderr, "sechan-nbd info: give a URI\n");
        return EXIT_USAGE;
    }
    struct nbd_uri u;
    char err[128];
    if (nbd_uri_parse(uri_s, &u, err, sizeof(err)) != 0) {
        fprintf(stderr, "sechan-nbd: bad URI: %s\n", err);
        return EXIT_USAGE;
    }
    static struct cli_conn c;
    static struct export_list exports;
    struct sc_nbd_client_config cfg = {.info_only = true, .list_exports = list,
                                       .on_export = on_export, .on_export_arg = &exports};
    int r = cli_connect(&c, &u, &cfg);
    if (r != 0)
        return r;
    const struct sc_nbd_export_info *in = sc_nbd_client_info(&c.nbd.eng);
    struct sc_tls_info ti = {0};
    bool tls = c.nbd.tls_started && sc_tls_get_info(&c.nbd.tls, &ti) == 0;
    if (json) {
        printf("{\n  \"protocol\": \"newstyle-fixed\",\n  \"TLS\": %s,\n", tls ? "true" : "false");
        if (tls) {
            printf("  \"tls-version\": ");
            json_str(ti.version);
            printf(",\n  \"tls-cipher\": ");
            json_str(ti.ciphersuite);
            printf(",\n");
        }
        if (list) {
            printf("  \"exports-listed\": [");
            for (unsigned i = 0; i < exports.count; i++) {
                printf("%s{\"name\": ", i ? ", " : "");
                json_str(exports.names[i]);
                printf(", \"description\": ");
                json_str(exports.descs[i]);
                printf("}");
            }
            printf("],\n");
        }
        printf("  \"export-name\": ");
        json_str(u.export_name);
        printf(",\n  \"export-size\": %llu,\n  \"flags\": %u,\n",
               (unsigned long long)in->size, in->flags);
        for (size_t i = 0; i < sizeof(flag_names) / sizeof(flag_names[0]); i++)
            printf("  \"%s\": %s,\n", flag_names[i].name,
                   (in->flags & flag_names[i].bit) ? "true" : "false");
        printf("  \"structured-replies\": %s,\n  \"extended-headers\": %s,\n"
               "  \"block-status\": %s,\n",
               in->structured_replies ? "true" : "false", in->extended_headers ? "true" : "false",
               in->block_status ? "true" : "false");
        printf("  \"block-size-minimum\": %u,\n  \"block-size-preferred\": %u,\n"
               "  \"block-size-maximum\": %u,\n  \"description\": ",
               in->block_min, in->block_pref, in->block_max);
        json_str(in->description);
        printf("\n}\n");
    } else {
        printf("protocol: newstyle-fixed%s%s%s%s\n", tls ? ", " : ", no TLS", tls ? ti.version : "",
               tls ? " " : "", tls ? ti.ciphersuite : "");
        for (unsigned i = 0; i < exports.count; i++)
            printf("listed export: \"%s\"%s%s\n", exports.names[i],
                   exports.descs[i][0] ? " - " : "", exports.descs[i]);
        printf("export: \"%s\"\n  size: %llu\n  flags: 0x%x (", u.export_name,
               (unsigned long long)in->size, in->flags);
        bool first = true;
        for (size_t i = 0; i < sizeof(flag_names) / sizeof(flag_names[0]); i++) {
            if (in->flags & flag_names[i].bit) {
                printf("%s%s", first ? "" : " ", flag_names[i].name);
                first = false;
            }
        }
        printf(")\n  structured replies: %s\n  extended headers: %s\n"
               "  block status (base:allocation): %s\n",
               in->structured_replies ? "yes" : "no", in->extended_headers ? "yes" : "no",
               in->block_status ? "yes" : "no");
        if (in->block_min)
            printf("  block size: minimum %u, preferred %u, maximum %u\n", in->block_min,
                   in->block_pref, in->block_max);
        if (in->description[0])
            printf("  description: %s\n", in->description);
    }
    cli_disconnect(&c);
    return EXIT_OK;
}
