# Builds one firmware image: make -f mk/firmware.mk BOARD=<board>
# VARIANT=psk|x509|sasl-digest|sasl-scram into build/fw/<board>-<variant>/
# (Mbed TLS built with the same compiler and sechan's firmware config;
# picolibc from Debian for memcpy/snprintf).
#   psk, x509:   NBD with STARTTLS straight to qemu-nbd
#   sasl-digest: DIGEST-MD5 auth-conf on the plaintext link, NBD over its
#                security layer, through sechan-gw
#   sasl-scram:  TLS 1.3 PSK, then SCRAM-SHA-256(-PLUS), NBD inside, through
#                sechan-gw
# The SASL variants also build bob.elf: the same image as the second test
# identity (fw-bob) asking for the first one's export (test/qemu).
BOARD ?= mps2-an385
VARIANT ?= psk
BUILD ?= build
PKI ?= $(BUILD)/test/pki-out
# The SASL test users' passwords (made on first use; the QEMU tests give
# the gateway the same files).
FW_USERS ?= $(BUILD)/test/fw-users
MBEDTLS_SRC ?= $(BUILD)/mbedtls/src
OUT := $(BUILD)/fw/$(BOARD)-$(VARIANT)

include boards/$(BOARD)/board.mk

# Certificates that expired before the code was committed are refused even
# on a board without a clock (sechan/port.h: the time floor).
TIME_FLOOR := $(or $(SOURCE_DATE_EPOCH),$(shell git log -1 --format=%ct 2>/dev/null),0)

# RAM given to Mbed TLS's arena and to the stack: the high-water marks
# measured in a run (make size) plus a margin. A board may set its own.
ARENA_psk ?= 12288
ARENA_x509 ?= 20480
# DIGEST-MD5 without TLS needs Mbed TLS's arena only for PSA's RNG and
# HMAC contexts; SCRAM's HMACs come after the TLS handshake freed its peak.
ARENA_sasl-digest ?= 2048
ARENA_sasl-scram ?= 12288
FW_STACK ?= 6144
# SCRAM's client-final step alone takes 4 KiB of stack on Cortex-M3.
FW_STACK_sasl-scram ?= 8192
STACK := $(or $(FW_STACK_$(VARIANT)),$(FW_STACK))

SASL := $(filter sasl-%,$(VARIANT))
VARIANT_DEF_psk := -DSC_TLS_FW_PSK
VARIANT_DEF_x509 := -DSC_TLS_FW_X509
# SASL tokens of at most 1 KiB (the exchanges here are a few hundred bytes):
# the context is 6 KiB instead of 15 KiB.
VARIANT_DEF_sasl-digest := -DSC_SASL_FW -DSC_SASL_FW_DIGEST -DSC_SASL_TOKEN_MAX=1024
VARIANT_DEF_sasl-scram := -DSC_TLS_FW_PSK -DSC_SASL_FW -DSC_SASL_FW_SCRAM -DSC_SASL_TOKEN_MAX=1024
VARIANT_DEF := $(or $(VARIANT_DEF_$(VARIANT)),$(error unknown VARIANT $(VARIANT)))
CFG := -DSC_TLS_FW $(VARIANT_DEF) -DMBEDTLS_CONFIG_FILE='"sc_mbedtls_config.h"'
# picolibc from Debian: integer-only printf (no floating point anywhere).
LIBC := --specs=picolibc.specs -DPICOLIBC_INTEGER_PRINTF_SCANF
FW_CFLAGS := -std=c11 -Os -g $(BOARD_ARCH) $(LIBC) -ffunction-sections \
	-fdata-sections -fstack-usage -fcallgraph-info=su -fno-common \
	-Wall -Wextra -Werror -Wshadow -Wno-format-truncation
FW_CPPFLAGS := -Iinclude -Itls -Iboards/common -I$(MBEDTLS_SRC)/include $(CFG) \
	-DSC_TIME_FLOOR=$(TIME_FLOOR) -DSC_TLS_ARENA_SIZE=$(ARENA_$(VARIANT))u
MBED_CFLAGS := -std=c99 -Os -g $(BOARD_ARCH) $(LIBC) -ffunction-sections \
	-fdata-sections -fstack-usage -fcallgraph-info=su -I$(MBEDTLS_SRC)/include -I$(MBEDTLS_SRC)/library -Itls $(CFG)

# What each module of the image is made of (make size reports per module).
SRC_core := $(wildcard core/*.c)
SRC_port := port/baremetal/port_baremetal.c
SRC_transports := transports/uart.c $(BOARD_TRANSPORTS)
# sasl-digest has no TLS: only Mbed TLS's arena and RNG (tls_platform.c),
# and boards/common/fwnotls.c answers the NBD driver's STARTTLS calls.
SRC_tls := $(if $(filter sasl-digest,$(VARIANT)),tls/tls_platform.c,$(wildcard tls/*.c))
SRC_nbd := nbd/nbd_client.c nbd/nbd_client_hs.c nbd/nbd_client_tx.c nbd/nbd_conn.c nbd/nbd_tls.c
# sasl-scram has no security layer (TLS is below it): no sasl_layer.c, and
# no DES in its Mbed TLS (tls/sc_mbedtls_config.h).
SRC_sasl := $(filter-out $(if $(filter sasl-scram,$(VARIANT)),sasl-lite/sasl_layer.c), \
	$(if $(SASL),$(wildcard sasl-lite/*.c)))
SRC_board := boards/common/fwapp.c $(if $(SASL),boards/common/fwsasl.c) \
	$(if $(filter sasl-digest,$(VARIANT)),boards/common/fwnotls.c) $(BOARD_SRCS)
SRCS := $(SRC_core) $(SRC_port) $(SRC_transports) $(SRC_tls) $(SRC_sasl) $(SRC_nbd) $(SRC_board)
CODE_OBJS := $(SRCS:%.c=$(OUT)/obj/%.o) $(BOARD_ASM:%.S=$(OUT)/obj/%.o)
OBJS := $(CODE_OBJS) $(OUT)/obj/creds.o

MBED_SRCS := $(wildcard $(MBEDTLS_SRC)/library/*.c)
MBED_OBJS := $(patsubst $(MBEDTLS_SRC)/library/%.c,$(OUT)/mbedtls/%.o,$(MBED_SRCS))
LIBMBED := $(OUT)/libmbedtls.a

ELF := $(OUT)/firmware.elf
BOB_ELF := $(OUT)/bob.elf

all: $(ELF) $(if $(SASL),$(BOB_ELF))

$(OUT)/obj/%.o: %.c tls/sc_mbedtls_config.h mk/firmware.mk boards/$(BOARD)/board.mk
	@mkdir -p $(@D)
	@$(BOARD_CC) $(FW_CPPFLAGS) $(FW_CFLAGS) -MMD -MP -c $< -o $@
	@echo "  CC($(BOARD)-$(VARIANT)) $<"

$(OUT)/obj/%.o: %.S mk/firmware.mk
	@mkdir -p $(@D)
	@$(BOARD_CC) $(BOARD_ARCH) $(BOARD_ASFLAGS) -c $< -o $@

ifeq ($(SASL),)
$(OUT)/creds.c: scripts/mkfwcreds.sh $(PKI)/.done
	@mkdir -p $(@D)
	scripts/mkfwcreds.sh $(PKI) $(VARIANT) $@
else
# fw-alice asks for her own export; fw-bob (bob.elf) asks for hers too,
# which the gateway must not let him reach.
$(OUT)/creds.c: scripts/mkfwcreds.sh $(PKI)/.done $(FW_USERS)/fw-alice.pass
	@mkdir -p $(@D)
	scripts/mkfwcreds.sh $(PKI) $(VARIANT) $@ $(FW_USERS) fw-alice alice
$(OUT)/bob-creds.c: scripts/mkfwcreds.sh $(PKI)/.done $(FW_USERS)/fw-bob.pass
	@mkdir -p $(@D)
	scripts/mkfwcreds.sh $(PKI) $(VARIANT) $@ $(FW_USERS) fw-bob alice
endif
$(FW_USERS)/%.pass:
	scripts/mkfwcreds.sh --password $@

$(OUT)/obj/creds.o: $(OUT)/creds.c
	@$(BOARD_CC) $(FW_CPPFLAGS) $(FW_CFLAGS) -c $< -o $@
$(OUT)/obj/bob-creds.o: $(OUT)/bob-creds.c
	@$(BOARD_CC) $(FW_CPPFLAGS) $(FW_CFLAGS) -c $< -o $@

$(OUT)/mbedtls/%.o: $(MBEDTLS_SRC)/library/%.c tls/sc_mbedtls_config.h mk/firmware.mk
	@mkdir -p $(@D)
	@$(BOARD_CC) $(MBED_CFLAGS) -c $< -o $@

$(LIBMBED): $(MBED_OBJS)
	@rm -f $@
	@$(BOARD_AR) rcs $@ $^

$(ELF): $(OBJS) $(LIBMBED) boards/$(BOARD)/link.ld
	$(BOARD_CC) $(BOARD_ARCH) $(LIBC) -nostartfiles -T boards/$(BOARD)/link.ld \
		-Wl,--gc-sections -Wl,-Map=$(OUT)/firmware.map -Wl,--defsym=STACK_SIZE=$(STACK) \
		-o $@ $(OBJS) $(LIBMBED) -lc -lgcc
	@echo "  built $@"

$(BOB_ELF): $(CODE_OBJS) $(OUT)/obj/bob-creds.o $(LIBMBED) boards/$(BOARD)/link.ld
	@$(BOARD_CC) $(BOARD_ARCH) $(LIBC) -nostartfiles -T boards/$(BOARD)/link.ld \
		-Wl,--gc-sections -Wl,--defsym=STACK_SIZE=$(STACK) \
		-o $@ $(CODE_OBJS) $(OUT)/obj/bob-creds.o $(LIBMBED) -lc -lgcc
	@echo "  built $@"

# The throughput bench (make bench-qemu): the same image with
# boards/common/fwbench.c in place of the application.
BENCH_ELF := $(OUT)/bench.elf
BENCH_OBJS := $(filter-out $(OUT)/obj/boards/common/fwapp.o,$(OBJS)) \
	$(OUT)/obj/boards/common/fwbench.o
bench-elf: $(BENCH_ELF)
$(BENCH_ELF): $(BENCH_OBJS) $(LIBMBED) boards/$(BOARD)/link.ld
	@$(BOARD_CC) $(BOARD_ARCH) $(LIBC) -nostartfiles -T boards/$(BOARD)/link.ld \
		-Wl,--gc-sections -Wl,--defsym=STACK_SIZE=$(STACK) -Wl,--wrap=mbedtls_cipher_auth_decrypt_ext \
		-o $@ $(BENCH_OBJS) $(LIBMBED) -lc -lgcc
	@echo "  built $@"

-include $(shell find $(OUT)/obj -name '*.d' 2>/dev/null)
.SECONDARY:
