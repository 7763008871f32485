# Builds Mbed TLS from the unpacked Debian source with sechan's own config.
# Called from the top-level Makefile:
#   make -f mk/mbedtls.mk SRC=<mbedtls source> OUT=<obj dir> LIB=<archive> CC=... CFG_CFLAGS=...
SRC ?= build/mbedtls/src
OUT ?= build/host/mbedtls
LIB ?= build/host/libsechan-mbedtls.a
AR ?= ar
CFG_CFLAGS ?= -DSC_TLS_HOST
OPT ?= -O2
MBED_CFLAGS := -std=c99 $(OPT) -g -ffunction-sections -fdata-sections \
	-I$(SRC)/include -I$(SRC)/library -Itls \
	-DMBEDTLS_CONFIG_FILE='"sc_mbedtls_config.h"' $(CFG_CFLAGS) $(EXTRA_CFLAGS)

MBED_SRCS := $(wildcard $(SRC)/library/*.c)
MBED_OBJS := $(patsubst $(SRC)/library/%.c,$(OUT)/%.o,$(MBED_SRCS))

$(LIB): $(MBED_OBJS)
	@rm -f $@
	$(AR) rcs $@ $^

$(OUT)/%.o: $(SRC)/library/%.c tls/sc_mbedtls_config.h mk/mbedtls.mk
	@mkdir -p $(@D)
	@$(CC) $(MBED_CFLAGS) -c $< -o $@
	@echo "  CC(mbedtls) $(notdir $<)"
