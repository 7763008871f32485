/* sechan-gw: the host gateway. A guest connects over TCP, a unix socket or
 * a QEMU chardev; the gateway authenticates it by TLS and/or SASL, maps the
 * identity to that guest's backend (qemu-nbd's socket, say) and relays
 * bytes both ways through the security layer. docs/gateway.md. */
#ifndef SECHAN_GW_H
#define SECHAN_GW_H

#include <stdbool.h>
#include <stdint.h>

#include "sechan/sasl.h"
#include "sechan/tls.h"

#define GW_LINE_MAX 1024
#define GW_ROUTES_MAX 64
#define GW_USERS_MAX 256
#define GW_POOL_MAX 64
#define GW_ADDR_MAX 256

enum gw_tls { GW_TLS_OFF, GW_TLS_X509, GW_TLS_PSK };

/* "tcp:HOST:PORT" or "unix:PATH". */
struct gw_addr {
    bool is_unix;
    char host[GW_ADDR_MAX];   /* or the path */
    uint16_t port;
};

struct gw_route {
    char identity[SC_SASL_NAME_MAX + 160];
    struct gw_addr backend;
};

struct gw_config {
    struct gw_addr listen;
    bool connect_mode;        /* "connect": dial a QEMU chardev server instead */
    enum gw_tls tls;
    char tls_path[GW_ADDR_MAX];
    bool tls_verify_client;
    bool sasl;
    enum sc_sasl_mech mechs[SC_SASL_MECH_COUNT];
    size_t mech_count;        /* 0: the library's default order */
    bool allow_no_layer;
    unsigned qop;
    unsigned ciphers;
    enum sc_sasl_cb_type cb;
    char realm[SC_SASL_NAME_MAX + 1];
    char service[64];
    char creds_path[GW_ADDR_MAX];
    unsigned pool;
    unsigned handshake_timeout_s;
    struct gw_route routes[GW_ROUTES_MAX];
    size_t route_count;
};

/* Parse a config file; on failure print "FILE:LINE: why" and return -1. */
int gw_config_load(struct gw_config *cfg, const char *path);
int gw_parse_addr(struct gw_addr *a, const char *text);
const struct gw_route *gw_route_find(const struct gw_config *cfg, const char *identity);

/* The credentials file: one line per user and mechanism family. */
int gw_creds_load(const char *path);
int gw_creds_lookup(void *arg, const char *user, const char *realm,
                    struct sc_sasl_user_secret *out);
int gw_adduser(const char *path, const char *user, const char *realm, uint32_t iterations,
               const char *password);

int gw_serve(const struct gw_config *cfg);

#endif
