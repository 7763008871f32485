/* sechan/nbd_proto.h: NBD wire constants, as the NBD protocol document
 * (NetworkBlockDevice/nbd doc/proto.md) names them. All fields travel in
 * network byte order. */
#ifndef SECHAN_NBD_PROTO_H
#define SECHAN_NBD_PROTO_H

#include <stdint.h>

#define SC_NBD_DEFAULT_PORT 10809

/* handshake */
#define SC_NBD_MAGIC 0x4e42444d41474943ULL          /* "NBDMAGIC" */
#define SC_NBD_OPTS_MAGIC 0x49484156454f5054ULL     /* "IHAVEOPT" */
#define SC_NBD_OLDSTYLE_MAGIC 0x0000420281861253ULL
#define SC_NBD_REP_MAGIC 0x0003e889045565a9ULL

#define SC_NBD_FLAG_FIXED_NEWSTYLE (1u << 0)        /* handshake flags (server) */
#define SC_NBD_FLAG_NO_ZEROES (1u << 1)
#define SC_NBD_FLAG_C_FIXED_NEWSTYLE (1u << 0)      /* client flags */
#define SC_NBD_FLAG_C_NO_ZEROES (1u << 1)

/* options */
#define SC_NBD_OPT_EXPORT_NAME 1u
#define SC_NBD_OPT_ABORT 2u
#define SC_NBD_OPT_LIST 3u
#define SC_NBD_OPT_STARTTLS 5u
#define SC_NBD_OPT_INFO 6u
#define SC_NBD_OPT_GO 7u
#define SC_NBD_OPT_STRUCTURED_REPLY 8u
#define SC_NBD_OPT_LIST_META_CONTEXT 9u
#define SC_NBD_OPT_SET_META_CONTEXT 10u
#define SC_NBD_OPT_EXTENDED_HEADERS 11u

/* option replies */
#define SC_NBD_REP_ACK 1u
#define SC_NBD_REP_SERVER 2u
#define SC_NBD_REP_INFO 3u
#define SC_NBD_REP_META_CONTEXT 4u
#define SC_NBD_REP_FLAG_ERROR (1u << 31)
#define SC_NBD_REP_ERR_UNSUP (SC_NBD_REP_FLAG_ERROR | 1u)
#define SC_NBD_REP_ERR_POLICY (SC_NBD_REP_FLAG_ERROR | 2u)
#define SC_NBD_REP_ERR_INVALID (SC_NBD_REP_FLAG_ERROR | 3u)
#define SC_NBD_REP_ERR_PLATFORM (SC_NBD_REP_FLAG_ERROR | 4u)
#define SC_NBD_REP_ERR_TLS_REQD (SC_NBD_REP_FLAG_ERROR | 5u)
#define SC_NBD_REP_ERR_UNKNOWN (SC_NBD_REP_FLAG_ERROR | 6u)
#define SC_NBD_REP_ERR_SHUTDOWN (SC_NBD_REP_FLAG_ERROR | 7u)
#define SC_NBD_REP_ERR_BLOCK_SIZE_REQD (SC_NBD_REP_FLAG_ERROR | 8u)
#define SC_NBD_REP_ERR_TOO_BIG (SC_NBD_REP_FLAG_ERROR | 9u)
#define SC_NBD_REP_ERR_EXT_HEADER_REQD (SC_NBD_REP_FLAG_ERROR | 10u)

/* NBD_REP_INFO types */
#define SC_NBD_INFO_EXPORT 0u
#define SC_NBD_INFO_NAME 1u
#define SC_NBD_INFO_DESCRIPTION 2u
#define SC_NBD_INFO_BLOCK_SIZE 3u

/* transmission flags */
#define SC_NBD_FLAG_HAS_FLAGS (1u << 0)
#define SC_NBD_FLAG_READ_ONLY (1u << 1)
#define SC_NBD_FLAG_SEND_FLUSH (1u << 2)
#define SC_NBD_FLAG_SEND_FUA (1u << 3)
#define SC_NBD_FLAG_ROTATIONAL (1u << 4)
#define SC_NBD_FLAG_SEND_TRIM (1u << 5)
#define SC_NBD_FLAG_SEND_WRITE_ZEROES (1u << 6)
#define SC_NBD_FLAG_SEND_DF (1u << 7)
#define SC_NBD_FLAG_CAN_MULTI_CONN (1u << 8)
#define SC_NBD_FLAG_SEND_RESIZE (1u << 9)
#define SC_NBD_FLAG_SEND_CACHE (1u << 10)
#define SC_NBD_FLAG_SEND_FAST_ZERO (1u << 11)
#define SC_NBD_FLAG_BLOCK_STAT_PAYLOAD (1u << 12)

/* requests and replies */
#define SC_NBD_REQUEST_MAGIC 0x25609513u
#define SC_NBD_EXT_REQUEST_MAGIC 0x21e41c71u
#define SC_NBD_SIMPLE_REPLY_MAGIC 0x67446698u
#define SC_NBD_STRUCTURED_REPLY_MAGIC 0x668e33efu
#define SC_NBD_EXT_REPLY_MAGIC 0x6e8a278cu

#define SC_NBD_CMD_READ 0u
#define SC_NBD_CMD_WRITE 1u
#define SC_NBD_CMD_DISC 2u
#define SC_NBD_CMD_FLUSH 3u
#define SC_NBD_CMD_TRIM 4u
#define SC_NBD_CMD_CACHE 5u
#define SC_NBD_CMD_WRITE_ZEROES 6u
#define SC_NBD_CMD_BLOCK_STATUS 7u

#define SC_NBD_CMD_FLAG_FUA (1u << 0)
#define SC_NBD_CMD_FLAG_NO_HOLE (1u << 1)
#define SC_NBD_CMD_FLAG_DF (1u << 2)
#define SC_NBD_CMD_FLAG_REQ_ONE (1u << 3)
#define SC_NBD_CMD_FLAG_FAST_ZERO (1u << 4)
#define SC_NBD_CMD_FLAG_PAYLOAD_LEN (1u << 5)   /* extended headers: length is a payload */

#define SC_NBD_REPLY_FLAG_DONE (1u << 0)
#define SC_NBD_REPLY_TYPE_NONE 0u
#define SC_NBD_REPLY_TYPE_OFFSET_DATA 1u
#define SC_NBD_REPLY_TYPE_OFFSET_HOLE 2u
#define SC_NBD_REPLY_TYPE_BLOCK_STATUS 5u
#define SC_NBD_REPLY_TYPE_BLOCK_STATUS_EXT 6u   /* extended headers only */
#define SC_NBD_REPLY_TYPE_ERROR_BIT (1u << 15)
#define SC_NBD_REPLY_TYPE_ERROR (SC_NBD_REPLY_TYPE_ERROR_BIT | 1u)
#define SC_NBD_REPLY_TYPE_ERROR_OFFSET (SC_NBD_REPLY_TYPE_ERROR_BIT | 2u)

/* base:allocation status flags */
#define SC_NBD_STATE_HOLE (1u << 0)
#define SC_NBD_STATE_ZERO (1u << 1)

/* errors carried in replies */
#define SC_NBD_EPERM 1u
#define SC_NBD_EIO 5u
#define SC_NBD_ENOMEM 12u
#define SC_NBD_EINVAL 22u
#define SC_NBD_ENOSPC 28u
#define SC_NBD_EOVERFLOW 75u
#define SC_NBD_ENOTSUP 95u
#define SC_NBD_ESHUTDOWN 108u

/* sizes on the wire */
#define SC_NBD_GREETING_LEN 18u        /* NBDMAGIC, IHAVEOPT, flags */
#define SC_NBD_OLDSTYLE_LEN 152u
#define SC_NBD_OPT_HDR_LEN 16u         /* IHAVEOPT, option, length */
#define SC_NBD_OPT_REPLY_HDR_LEN 20u   /* magic, option, type, length */
#define SC_NBD_REQUEST_LEN 28u
#define SC_NBD_SIMPLE_REPLY_LEN 16u
#define SC_NBD_STRUCTURED_REPLY_LEN 20u
#define SC_NBD_EXT_REQUEST_LEN 32u
#define SC_NBD_EXT_REPLY_LEN 32u
#define SC_NBD_MAX_STRING 4096u        /* export names, messages */
#define SC_NBD_META_BASE_ALLOCATION "base:allocation"

#endif
