# sechan: the one entry point. `make` builds the host library and tools into
# build/host/; `make test` runs every suite; see README.md for the rest.

BUILD := build
HOST ?= $(BUILD)/host
MBEDTLS_DIR := $(BUILD)/mbedtls
MBEDTLS_SRC := $(MBEDTLS_DIR)/src
MBEDTLS_STAMP := $(MBEDTLS_SRC)/.sechan-fetched
TEST_DIR := $(BUILD)/test

CC ?= cc
AR ?= ar
OPT ?= -O2
# Messages are truncated on purpose to fit fixed buffers: no format-truncation.
WARN := -Wall -Wextra -Werror -Wshadow -Wconversion -Wstrict-prototypes -Wno-format-truncation -Wno-unknown-warning-option
CFLAGS := -std=c11 $(OPT) -g $(WARN) -ffunction-sections -fdata-sections
CPPFLAGS := -Iinclude -Itls -I$(MBEDTLS_SRC)/include -DSC_TLS_HOST \
	-DMBEDTLS_CONFIG_FILE='"sc_mbedtls_config.h"'
DEPFLAGS = -MMD -MP
LDLIBS := -lpthread

LIB_SRCS := $(wildcard core/*.c) port/posix/port_posix.c $(wildcard nbd/*.c) \
	transports/sock.c transports/pipe.c transports/vport_linux.c $(wildcard tls/*.c) \
	$(wildcard sasl-lite/*.c)
LIB_OBJS := $(LIB_SRCS:%.c=$(HOST)/obj/%.o)
LIBSECHAN := $(HOST)/libsechan.a
LIBMBED := $(HOST)/libsechan-mbedtls.a
LIBS := $(LIBSECHAN) $(LIBMBED)

TESTUTIL_SRCS := $(wildcard test/util/*.c)
TESTUTIL_OBJS := $(filter-out %selftest.o,$(TESTUTIL_SRCS:%.c=$(HOST)/obj/%.o))
UNIT_SRCS := $(wildcard test/unit/test_*.c)
INTEROP_SRCS := $(wildcard test/interop/test_*.c)
UNIT_BINS := $(UNIT_SRCS:test/unit/%.c=$(HOST)/test/%)
INTEROP_BINS := $(INTEROP_SRCS:test/interop/%.c=$(HOST)/test/%)
TOOL_SRCS := $(wildcard tools/*.c)
TOOL_BINS := $(TOOL_SRCS:tools/%.c=$(HOST)/%) $(HOST)/sechan-nbd $(HOST)/sechan-gw
NBDCLI_SRCS := $(wildcard tools/sechan-nbd/*.c)
NBDCLI_OBJS := $(NBDCLI_SRCS:%.c=$(HOST)/obj/%.o)
GW_SRCS := $(wildcard tools/sechan-gw/*.c)
GW_OBJS := $(GW_SRCS:%.c=$(HOST)/obj/%.o)

.PHONY: all lib tools tests test unit interop check-nomalloc check-nomalloc-selftest \
	pki demo setup check-clang check-cross bench bench-qemu clean distclean firmware size qemu agents guests demo-host
.DEFAULT_GOAL := all

all: lib tools

lib: $(LIBS)

tools: $(TOOL_BINS)

# ---- Mbed TLS: Debian trixie's source package, our config, built here ----
$(MBEDTLS_STAMP): scripts/fetch-mbedtls.sh
	scripts/fetch-mbedtls.sh $(MBEDTLS_DIR)
	@touch $@

# On x86_64 hosts Mbed TLS's AES-NI code uses compiler intrinsics when built
# with these flags (it still checks CPUID at run time); measured: AES-128-GCM
# 210 -> 300 MB/s per core, the bound of every TLS copy here.
MBEDTLS_HOST_OPT := -O3 $(if $(filter x86_64,$(shell uname -m)),-maes -mpclmul -msse4.1)

$(LIBMBED): $(MBEDTLS_STAMP) tls/sc_mbedtls_config.h mk/mbedtls.mk
	@$(MAKE) --no-print-directory -f mk/mbedtls.mk SRC=$(MBEDTLS_SRC) \
		OUT=$(HOST)/mbedtls LIB=$@ CC="$(CC)" AR="$(AR)" OPT="$(MBEDTLS_HOST_OPT)" \
		CFG_CFLAGS=-DSC_TLS_HOST

# ---- our objects ----
$(HOST)/obj/%.o: %.c | $(MBEDTLS_STAMP)
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) $(CFLAGS) $(DEPFLAGS) -c $< -o $@

$(LIBSECHAN): $(LIB_OBJS)
	@rm -f $@
	$(AR) rcs $@ $^

$(HOST)/sechan-nbd: $(NBDCLI_OBJS) $(LIBS)
	$(CC) $(CFLAGS) -o $@ $(NBDCLI_OBJS) $(LIBS) $(LDLIBS)

$(HOST)/sechan-gw: $(GW_OBJS) $(LIBS)
	$(CC) $(CFLAGS) -o $@ $(GW_OBJS) $(LIBS) $(LDLIBS)

$(HOST)/%: $(HOST)/obj/tools/%.o $(LIBS)
	$(CC) $(CFLAGS) -o $@ $< $(LIBS) $(LDLIBS)

# ---- tests ----
$(HOST)/test/%: $(HOST)/obj/test/unit/%.o $(TESTUTIL_OBJS) $(LIBS)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) -o $@ $< $(TESTUTIL_OBJS) $(LIBS) -lcmocka $(LDLIBS)

$(HOST)/test/test_interop_%: $(HOST)/obj/test/interop/test_interop_%.o $(TESTUTIL_OBJS) $(LIBS)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) -o $@ $< $(TESTUTIL_OBJS) $(LIBS) -lcmocka $(LDLIBS)

# The URI parser lives in the CLI; its unit test links it directly.
$(HOST)/test/test_uri: $(HOST)/obj/test/unit/test_uri.o $(HOST)/obj/tools/sechan-nbd/uri.o $(LIBS)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) -o $@ $^ -lcmocka $(LDLIBS)

tests: $(UNIT_BINS) $(INTEROP_BINS) $(HOST)/test/fwdisk sasl-peers

# The host side of the firmware tests (writes and checks the export).
$(HOST)/test/fwdisk: test/qemu/fwdisk.c boards/common/fwapp.h
	@mkdir -p $(@D)
	$(CC) -std=c11 -O2 $(WARN) -Iinclude -Iboards/common -o $@ $<

# ---- firmware: every bare-metal board in every variant (mk/firmware.mk) ----
FW_BOARDS := mps2-an385 riscv-virt
# sasl-digest and sasl-scram reach qemu-nbd through sechan-gw (SASL).
FW_VARIANTS := psk x509 sasl-digest sasl-scram
QEMU_SUITES := test/qemu/virtio-selftest/run.sh test/qemu/test_qemu_firmware.sh

firmware: $(MBEDTLS_STAMP) pki
	@for b in $(FW_BOARDS); do for v in $(FW_VARIANTS); do \
		$(MAKE) --no-print-directory -f mk/firmware.mk BOARD=$$b VARIANT=$$v BUILD=$(BUILD) \
			all $$([ $$v = psk ] && echo bench-elf) || exit 1; done; done

# The Linux guest agent: the same application, static, over /dev/vportNpM.
AGENTS := $(HOST)/agent-psk/sechan-agent $(HOST)/agent-x509/sechan-agent \
	$(HOST)/agent-psk/sechan-agent-bench
agents: $(AGENTS)
$(HOST)/agent-%/creds.c: scripts/mkfwcreds.sh $(TEST_DIR)/pki-out/.done
	@mkdir -p $(@D)
	scripts/mkfwcreds.sh $(TEST_DIR)/pki-out $* $@
$(HOST)/agent-%/sechan-agent: boards/linux-agent/main.c boards/common/fwapp.c \
		$(HOST)/agent-%/creds.c $(LIBS)
	$(CC) $(CPPFLAGS) -Iboards/common $(if $(filter x509,$*),-DSC_TLS_FW_X509) $(CFLAGS) \
		-static -o $@ boards/linux-agent/main.c boards/common/fwapp.c $(@D)/creds.c \
		$(LIBS) $(LDLIBS)

$(HOST)/agent-psk/sechan-agent-bench: boards/linux-agent/main.c boards/common/fwbench.c \
		$(HOST)/agent-psk/creds.c $(LIBS)
	$(CC) $(CPPFLAGS) -Iboards/common $(CFLAGS) -static \
		-Wl,--wrap=mbedtls_cipher_auth_decrypt_ext -o $@ boards/linux-agent/main.c \
		boards/common/fwbench.c $(@D)/creds.c $(LIBS) $(LDLIBS)

# The Linux guests that run the agents: Debian's kernel (downloaded here,
# outside the suites' network namespace) and a busybox initramfs each.
GUEST_ENV := LINUX_GUEST_CACHE=$(BUILD)/qemu/linux/cache \
	LINUX_GUEST_MODULES="virtio_pci virtio_console virtio_rng"
guests: agents
	$(GUEST_ENV) scripts/linux-guest.sh $(BUILD)/qemu/linux/psk $(HOST)/agent-psk/sechan-agent
	$(GUEST_ENV) scripts/linux-guest.sh $(BUILD)/qemu/linux/x509 $(HOST)/agent-x509/sechan-agent

# The firmware under QEMU against qemu-nbd (also part of make test).
qemu: firmware guests $(HOST)/test/fwdisk $(HOST)/sechan-gw
	SECHAN_PKI_DIR=$(TEST_DIR)/pki-out SECHAN_TEST_DIR=$(TEST_DIR) \
		scripts/run-tests.sh $(QEMU_SUITES)

# Flash and RAM per module, arena and stack high-water marks, against
# boards/budget.txt (fails past a limit).
size: firmware $(HOST)/test/fwdisk $(HOST)/sechan-gw
	SECHAN_PKI_DIR=$(TEST_DIR)/pki-out SECHAN_TEST_DIR=$(TEST_DIR) scripts/size.sh

pki: $(TEST_DIR)/pki-out/.done
$(TEST_DIR)/pki-out/.done: test/pki/mkpki.sh
	test/pki/mkpki.sh $(TEST_DIR)/pki-out

# The library must never reference the heap: check every object we ship,
# ours and Mbed TLS's. The self-test proves the check can fail.
check-nomalloc: $(LIBS) check-nomalloc-selftest firmware
	scripts/check-nomalloc.sh $(LIBSECHAN) $(LIBMBED)
	scripts/check-nomalloc.sh --nm arm-none-eabi-nm --image $(BUILD)/fw/mps2-an385-*/*.elf
	scripts/check-nomalloc.sh --nm riscv64-unknown-elf-nm --image $(BUILD)/fw/riscv-virt-*/*.elf

check-nomalloc-selftest: $(HOST)/obj/test/nomalloc/uses_heap.o
	@if scripts/check-nomalloc.sh $< >/dev/null 2>&1; then \
		echo "check-nomalloc-selftest: FAILED: an object calling malloc passed"; exit 1; \
	else echo "check-nomalloc-selftest: OK (an object calling malloc is rejected)"; fi

$(HOST)/obj/test/nomalloc/uses_heap.o: test/nomalloc/uses_heap.c
	@mkdir -p $(@D)
	$(CC) -std=c11 -O0 -c $< -o $@

NPROC := $(shell nproc 2>/dev/null || echo 2)

# Installs the Debian packages listed in scripts/debian-packages.txt (no-op
# when present), then builds and runs every suite.
setup:
	scripts/setup.sh

test: setup
	$(MAKE) --no-print-directory -j$(NPROC) all tests pki
	$(MAKE) --no-print-directory -j$(NPROC) firmware agents
	$(MAKE) --no-print-directory guests
	$(MAKE) --no-print-directory check-nomalloc
	$(MAKE) --no-print-directory -j$(NPROC) check-clang
	$(MAKE) --no-print-directory check-cross
	$(MAKE) --no-print-directory fuzz-regress
	$(MAKE) --no-print-directory fuzz-smoke
	SECHAN_PKI_DIR=$(TEST_DIR)/pki-out SECHAN_TEST_DIR=$(TEST_DIR) \
		scripts/run-tests.sh $(UNIT_BINS) $(INTEROP_BINS) $(QEMU_SUITES)

unit: $(UNIT_BINS) pki
	SECHAN_PKI_DIR=$(TEST_DIR)/pki-out SECHAN_TEST_DIR=$(TEST_DIR) \
		scripts/run-tests.sh $(UNIT_BINS)

interop: $(INTEROP_BINS) pki
	SECHAN_PKI_DIR=$(TEST_DIR)/pki-out SECHAN_TEST_DIR=$(TEST_DIR) \
		scripts/run-tests.sh $(INTEROP_BINS)

# The portable parts (no OS, no Mbed TLS) must build for Cortex-M too.
PORTABLE_SRCS := $(wildcard core/*.c) nbd/nbd_client.c nbd/nbd_client_hs.c \
	nbd/nbd_client_tx.c nbd/nbd_server.c nbd/nbd_server_tx.c nbd/backend_mem.c \
	transports/pipe.c transports/uart.c transports/virtio_mmio.c transports/virtio_rng.c \
	transports/virtio_serial.c port/baremetal/port_baremetal.c
CROSS_ARM_FLAGS := -std=c11 -Os -mcpu=cortex-m3 -mthumb $(WARN) -ffunction-sections -Iinclude

check-cross:
	@mkdir -p $(BUILD)/cross-arm
	@for f in $(PORTABLE_SRCS); do \
		arm-none-eabi-gcc $(CROSS_ARM_FLAGS) -c $$f -o $(BUILD)/cross-arm/$$(basename $$f .c).o \
			|| exit 1; done
	@echo "check-cross: OK ($(words $(PORTABLE_SRCS)) portable sources build for Cortex-M3 with -Werror)"
	@if arm-none-eabi-gcc $(CROSS_ARM_FLAGS) --specs=picolibc.specs -o $(BUILD)/cross-arm/no-entropy.elf \
		test/board/no_entropy.c port/baremetal/port_baremetal.c 2>$(BUILD)/cross-arm/no-entropy.log; then \
		echo "check-cross: FAILED: a board without sc_board_entropy linked"; exit 1; fi
	@grep -q 'sc_board_entropy' $(BUILD)/cross-arm/no-entropy.log || \
		{ echo "check-cross: FAILED: the link failed for another reason:"; cat $(BUILD)/cross-arm/no-entropy.log; exit 1; }
	@arm-none-eabi-gcc $(CROSS_ARM_FLAGS) --specs=picolibc.specs -DWITH_ENTROPY \
		-o $(BUILD)/cross-arm/with-entropy.elf test/board/no_entropy.c port/baremetal/port_baremetal.c
	@echo "check-cross: OK (a board without an entropy hook does not link; with one it does)"

# The same sources must build warning-free with clang as with gcc.
check-clang:
	@$(MAKE) --no-print-directory -s HOST=$(BUILD)/clang CC=clang lib tools tests >/dev/null
	@echo "check-clang: OK (library, tools and tests build with clang -Werror)"

# The main demo: mps2-an385 firmware against qemu-nbd over TLS.
demo: setup
	$(MAKE) --no-print-directory -j$(NPROC) all pki $(HOST)/test/fwdisk
	$(MAKE) --no-print-directory -j$(NPROC) firmware
	scripts/demo.sh

# The host-only demo: our TLS client and server against OpenSSL.
demo-host: setup
	$(MAKE) --no-print-directory -j$(NPROC) all pki
	scripts/demo-host.sh

clean:
	rm -rf $(HOST) $(TEST_DIR)

distclean:
	rm -rf $(BUILD)

# libFuzzer targets: fuzz, fuzz-smoke (NBD 60 s, SASL 20 s each, two at a time), fuzz-regress.
include mk/fuzz.mk
# The Cyrus SASL and GNU SASL peers of test_interop_sasl.
include mk/sasl-peers.mk

-include $(shell find $(HOST)/obj -name '*.d' 2>/dev/null)
.SECONDARY:

# The firmware's link, decrypt and NBD-over-TLS rates under QEMU, per board
# and transport (not part of make test).
bench-qemu: setup
	$(MAKE) --no-print-directory -j$(NPROC) all pki $(HOST)/test/fwdisk
	$(MAKE) --no-print-directory -j$(NPROC) firmware agents
	$(GUEST_ENV) scripts/linux-guest.sh $(BUILD)/qemu/linux/psk-bench \
		$(HOST)/agent-psk/sechan-agent-bench
	SECHAN_PKI_DIR=$(TEST_DIR)/pki-out scripts/bench-qemu.sh

# Throughput against nbdcopy, and the gateway's relay through each security
# layer against a plain relay, side by side (not part of make test).
bench: setup
	$(MAKE) --no-print-directory -j$(NPROC) all pki $(HOST)/gwbench
	scripts/bench.sh

$(HOST)/gwbench: $(HOST)/obj/test/bench/gwbench.o $(LIBS)
	$(CC) $(CFLAGS) -o $@ $< $(LIBS) $(LDLIBS)
