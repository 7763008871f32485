/* Credentials compiled into the firmware: generated at build time from the
 * test PKI by scripts/mkfwcreds.sh (build/fw/creds-*.c). A product would
 * generate the same file from its own provisioning data. */
#ifndef SECHAN_FWCREDS_H
#define SECHAN_FWCREDS_H

#include <stddef.h>
#include <stdint.h>

#if defined(SC_TLS_FW_X509)
extern const uint8_t fw_ca_der[];      /* the CA that signed the server */
extern const size_t fw_ca_der_len;
extern const char fw_tls_hostname[];   /* the name the server's certificate carries */
extern const uint8_t fw_cert_der[];    /* ours, for servers that verify clients */
extern const size_t fw_cert_der_len;
extern const uint8_t fw_key_der[];
extern const size_t fw_key_der_len;
#elif !defined(SC_SASL_FW_DIGEST)      /* psk, and the TLS below sasl-scram */
extern const char fw_psk_identity[];
extern const uint8_t fw_psk_key[];
extern const size_t fw_psk_key_len;
#endif

#if defined(SC_SASL_FW)
extern const char fw_sasl_user[];      /* the SASL identity the gateway routes by */
extern const char fw_sasl_password[];
extern const char fw_nbd_export[];     /* the export asked for behind the gateway */
#endif

#endif
