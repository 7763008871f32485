/* The examples of RFC 5802 section 5 (SCRAM-SHA-1), RFC 7677 section 3
 * (SCRAM-SHA-256) and RFC 2831 section 4 (DIGEST-MD5), taken from the RFC
 * texts, for the known-answer tests and the fuzzers' seeds. User "user",
 * password "pencil" (SCRAM); user "chris", password "secret", realm
 * "elwood.innosoft.com", digest-uri "imap/elwood.innosoft.com" (DIGEST-MD5). */
#ifndef SC_TEST_UTIL_SASL_RFC_H
#define SC_TEST_UTIL_SASL_RFC_H

#include <stdint.h>

#define RFC5802_CNONCE "fyko+d2lbbFgONRv9qkxdawL"
#define RFC5802_SNONCE "3rfcNHYJY1ZVvWVs7j"
#define RFC5802_CF "n,,n=user,r=" RFC5802_CNONCE
#define RFC5802_SF "r=" RFC5802_CNONCE RFC5802_SNONCE ",s=QSXCR+Q6sek8bf92,i=4096"
#define RFC5802_CFIN "c=biws,r=" RFC5802_CNONCE RFC5802_SNONCE ",p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts="
#define RFC5802_SFIN "v=rmF9pqV8S7suAoZWja4dJRkFsKQ="

#define RFC7677_CNONCE "rOprNGfwEbeRWgbNEkqO"
#define RFC7677_SNONCE "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0"
#define RFC7677_CF "n,,n=user,r=" RFC7677_CNONCE
#define RFC7677_SF "r=" RFC7677_CNONCE RFC7677_SNONCE ",s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"
#define RFC7677_CFIN \
    "c=biws,r=" RFC7677_CNONCE RFC7677_SNONCE ",p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
#define RFC7677_SFIN "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="

/* The two salts, decoded: QSXCR+Q6sek8bf92 and W22ZaJ0SNY7soEsUEjb6gQ== */
static const uint8_t rfc5802_salt[12] = {0x41, 0x25, 0xc2, 0x47, 0xe4, 0x3a,
                                         0xb1, 0xe9, 0x3c, 0x6d, 0xff, 0x76};
static const uint8_t rfc7677_salt[16] = {0x5b, 0x6d, 0x99, 0x68, 0x9d, 0x12, 0x35, 0x8e,
                                         0xec, 0xa0, 0x4b, 0x14, 0x12, 0x36, 0xfa, 0x81};

#define RFC2831_REALM "elwood.innosoft.com"
#define RFC2831_NONCE "OA6MG9tEQGm2hh"
#define RFC2831_CNONCE "OA6MHXh6VqTrRk"
#define RFC2831_CHALLENGE                                                                   \
    "realm=\"" RFC2831_REALM "\",nonce=\"" RFC2831_NONCE "\",qop=\"auth\","               \
    "algorithm=md5-sess,charset=utf-8"
#define RFC2831_RESPONSE                                                                    \
    "charset=utf-8,username=\"chris\",realm=\"" RFC2831_REALM "\","                         \
    "nonce=\"" RFC2831_NONCE "\",nc=00000001,cnonce=\"" RFC2831_CNONCE "\","                \
    "digest-uri=\"imap/elwood.innosoft.com\","                                              \
    "response=d388dad90d4bbd760a152321f2143af7,qop=auth"
#define RFC2831_RSPAUTH "rspauth=ea40f60335c427b5527b84dbabcdfffd"

#endif
