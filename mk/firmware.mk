# Builds one firmware image: make -f mk/firmware.mk BOARD=<board> VARIANT=psk|x509
# into build/fw/<board>-<variant>/ (Mbed TLS built with the same compiler
# and sechan's firmware config; picolibc from Debian for memcpy/snprintf).
BOARD ?= mps2-an385
VARIANT ?= psk
BUILD ?= build
PKI ?= $(BUILD)/test/pki-out
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
FW_STACK ?= 6144

VARIANT_DEF := $(if $(filter x509,$(VARIANT)),-DSC_TLS_FW_X509,-DSC_TLS_FW_PSK)
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
SRC_tls := $(wildcard tls/*.c)
SRC_nbd := nbd/nbd_client.c nbd/nbd_client_hs.c nbd/nbd_client_tx.c nbd/nbd_conn.c nbd/nbd_tls.c
SRC_board := boards/common/fwapp.c $(BOARD_SRCS)
SRCS := $(SRC_core) $(SRC_port) $(SRC_transports) $(SRC_tls) $(SRC_nbd) $(SRC_board)
OBJS := $(SRCS:%.c=$(OUT)/obj/%.o) $(BOARD_ASM:%.S=$(OUT)/obj/%.o) $(OUT)/obj/creds.o

MBED_SRCS := $(wildcard $(MBEDTLS_SRC)/library/*.c)
MBED_OBJS := $(patsubst $(MBEDTLS_SRC)/library/%.c,$(OUT)/mbedtls/%.o,$(MBED_SRCS))
LIBMBED := $(OUT)/libmbedtls.a

ELF := $(OUT)/firmware.elf

all: $(ELF)

$(OUT)/obj/%.o: %.c tls/sc_mbedtls_config.h mk/firmware.mk
	@mkdir -p $(@D)
	@$(BOARD_CC) $(FW_CPPFLAGS) $(FW_CFLAGS) -MMD -MP -c $< -o $@
	@echo "  CC($(BOARD)-$(VARIANT)) $<"

$(OUT)/obj/%.o: %.S mk/firmware.mk
	@mkdir -p $(@D)
	@$(BOARD_CC) $(BOARD_ARCH) $(BOARD_ASFLAGS) -c $< -o $@

$(OUT)/creds.c: scripts/mkfwcreds.sh $(PKI)/.done
	@mkdir -p $(@D)
	scripts/mkfwcreds.sh $(PKI) $(VARIANT) $@

$(OUT)/obj/creds.o: $(OUT)/creds.c
	@$(BOARD_CC) $(FW_CPPFLAGS) $(FW_CFLAGS) -c $< -o $@

$(OUT)/mbedtls/%.o: $(MBEDTLS_SRC)/library/%.c tls/sc_mbedtls_config.h mk/firmware.mk
	@mkdir -p $(@D)
	@$(BOARD_CC) $(MBED_CFLAGS) -c $< -o $@

$(LIBMBED): $(MBED_OBJS)
	@rm -f $@
	@$(BOARD_AR) rcs $@ $^

$(ELF): $(OBJS) $(LIBMBED) boards/$(BOARD)/link.ld
	$(BOARD_CC) $(BOARD_ARCH) $(LIBC) -nostartfiles -T boards/$(BOARD)/link.ld \
		-Wl,--gc-sections -Wl,-Map=$(OUT)/firmware.map -Wl,--defsym=STACK_SIZE=$(FW_STACK) \
		-o $@ $(OBJS) $(LIBMBED) -lc -lgcc
	@echo "  built $@"

# The throughput bench (make bench-qemu): the same image with
# boards/common/fwbench.c in place of the application.
BENCH_ELF := $(OUT)/bench.elf
BENCH_OBJS := $(filter-out $(OUT)/obj/boards/common/fwapp.o,$(OBJS)) \
	$(OUT)/obj/boards/common/fwbench.o
bench-elf: $(BENCH_ELF)
$(BENCH_ELF): $(BENCH_OBJS) $(LIBMBED) boards/$(BOARD)/link.ld
	@$(BOARD_CC) $(BOARD_ARCH) $(LIBC) -nostartfiles -T boards/$(BOARD)/link.ld \
		-Wl,--gc-sections -Wl,--defsym=STACK_SIZE=$(FW_STACK) -o $@ $(BENCH_OBJS) $(LIBMBED) -lc -lgcc
	@echo "  built $@"

-include $(shell find $(OUT)/obj -name '*.d' 2>/dev/null)
.SECONDARY:
