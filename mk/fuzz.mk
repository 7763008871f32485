# mk/fuzz.mk: libFuzzer targets (test/fuzz/): the NBD engines, and the SASL
# mechanisms, framing and security layer of sasl-lite/.
#
#   make fuzz                       build the targets into build/fuzz/
#   make fuzz-smoke                 run each: NBD targets FUZZ_SECONDS (60),
#                                   SASL targets FUZZ_SASL_SECONDS (20), FUZZ_JOBS at once
#   make fuzz-regress               run the saved reproducers (test/fuzz/crashes/)
#   make fuzz-seeds                 regenerate test/fuzz/corpus/ (gen_seeds.c, gen_sasl_seeds.c)
#
# Included by the top Makefile, or stand-alone from the top of the tree:
#   make -f mk/fuzz.mk fuzz-smoke FUZZ_SECONDS=20   (every target 20 s)
#
# Needs clang with its sanitizer and libFuzzer runtimes (Debian bookworm:
# clang + libclang-rt-14-dev, which clang only recommends). The targets
# build the library sources they need with the fuzzer instrumentation into
# build/fuzz/obj: the NBD targets core/*.c and nbd/*.c only (no TLS); the
# SASL targets also sasl-lite/*.c, tls/tls_platform.c (the Mbed TLS arena),
# transports/pipe.c and port/posix/port_posix.c, and link Mbed TLS, built
# here with clang (mk/mbedtls.mk) into build/fuzz/mbedtls.

BUILD ?= build
FUZZ_OUT := $(BUILD)/fuzz
FUZZ_CC ?= clang
FUZZ_AR ?= ar
FUZZ_SECONDS ?= 60
# The SASL engines are small; 20 s each reaches nearly all the coverage a
# minute does (measured). A FUZZ_SECONDS set by hand applies to them too.
FUZZ_SASL_SECONDS ?= $(if $(filter-out 60,$(FUZZ_SECONDS)),$(FUZZ_SECONDS),20)
# Targets run side by side (CI has 2 cores).
FUZZ_JOBS ?= 2
FUZZ_MAX_LEN ?= 65536
# Checks fuzz-smoke leaves out (SC_FUZZ_SKIP), should an open bug that
# every run hits need stepping over (its reproducer in test/fuzz/crashes/
# still fails fuzz-regress until fixed). None now.
FUZZ_SKIP ?=
# Every test/fuzz/fuzz_*.c is a target (fuzz_util.h and fuzz_sasl*.h are
# their shared helpers). fuzz_sasl_* link sasl-lite and Mbed TLS.
FUZZ_TARGETS := $(sort $(basename $(notdir $(wildcard test/fuzz/fuzz_*.c))))
FUZZ_SASL_TARGETS := $(filter fuzz_sasl_%,$(FUZZ_TARGETS))
FUZZ_CORE_TARGETS := $(filter-out $(FUZZ_SASL_TARGETS),$(FUZZ_TARGETS))

FUZZ_SAN := -fsanitize=address,undefined -fno-sanitize-recover=all
FUZZ_WARN := -Wall -Wextra -Werror -Wshadow -Wconversion -Wstrict-prototypes \
	-Wno-format-truncation -Wno-unknown-warning-option
FUZZ_CFLAGS := -std=c11 -O1 -g -fno-omit-frame-pointer $(FUZZ_SAN) $(FUZZ_WARN)
FUZZ_CPPFLAGS := -Iinclude -DSC_TLS_HOST

FUZZ_LIB_SRCS := $(wildcard core/*.c) $(wildcard nbd/*.c)
FUZZ_LIB_OBJS := $(FUZZ_LIB_SRCS:%.c=$(FUZZ_OUT)/obj/%.o)
FUZZ_LIB := $(FUZZ_OUT)/libsechan-fuzz.a
FUZZ_MAIN_OBJS := $(FUZZ_TARGETS:%=$(FUZZ_OUT)/obj/test/fuzz/%.o)
FUZZ_BINS := $(FUZZ_TARGETS:%=$(FUZZ_OUT)/%)
FUZZ_CORE_BINS := $(FUZZ_CORE_TARGETS:%=$(FUZZ_OUT)/%)
FUZZ_SASL_BINS := $(FUZZ_SASL_TARGETS:%=$(FUZZ_OUT)/%)
FUZZ_TOOLCHAIN := $(FUZZ_OUT)/.toolchain-ok

# ---- Mbed TLS for the SASL targets ----
# The source the top Makefile fetches; stand-alone, this file fetches it the
# same way.
ifdef MBEDTLS_STAMP
FUZZ_MBEDTLS_SRC := $(MBEDTLS_SRC)
FUZZ_MBEDTLS_STAMP := $(MBEDTLS_STAMP)
else
FUZZ_MBEDTLS_SRC := $(BUILD)/mbedtls/src
FUZZ_MBEDTLS_STAMP := $(FUZZ_MBEDTLS_SRC)/.sechan-fetched
$(FUZZ_MBEDTLS_STAMP): scripts/fetch-mbedtls.sh
	scripts/fetch-mbedtls.sh $(BUILD)/mbedtls
	@touch $@
endif
# Mbed TLS is built with AddressSanitizer, so a length sasl-lite passes
# wrongly (base64, HMAC, DES into a caller buffer) is caught where Mbed TLS
# writes, but without coverage instrumentation (its hash loops would only
# add noise and slow PBKDF2) and without UBSan (not our code to fix); -O2,
# so the 4096 PBKDF2 iterations of each SCRAM client run stay cheap.
# Changing these flags needs `make fuzz-clean`.
FUZZ_MBED_CFLAGS := -fsanitize=address -fno-omit-frame-pointer
FUZZ_MBED_LIB := $(FUZZ_OUT)/libmbedtls-fuzz.a
FUZZ_SASL_SRCS := $(wildcard core/*.c) $(wildcard sasl-lite/*.c) tls/tls_platform.c \
	transports/pipe.c port/posix/port_posix.c
FUZZ_SASL_OBJS := $(FUZZ_SASL_SRCS:%.c=$(FUZZ_OUT)/obj/%.o)
FUZZ_SASL_LIB := $(FUZZ_OUT)/libsechan-sasl-fuzz.a
FUZZ_SASL_MAIN_OBJS := $(FUZZ_SASL_TARGETS:%=$(FUZZ_OUT)/obj/test/fuzz/%.o) \
	$(FUZZ_OUT)/obj/test/fuzz/gen_sasl_seeds.o
# Objects that see Mbed TLS headers (core/ does not: it is shared with the
# NBD targets and built as before).
FUZZ_MBED_USERS := $(filter-out $(FUZZ_OUT)/obj/core/%,$(FUZZ_SASL_OBJS)) $(FUZZ_SASL_MAIN_OBJS)
$(FUZZ_MBED_USERS): FUZZ_CPPFLAGS += -Itls -I$(FUZZ_MBEDTLS_SRC)/include \
	-DMBEDTLS_CONFIG_FILE='"sc_mbedtls_config.h"'
$(FUZZ_MBED_USERS): | $(FUZZ_MBEDTLS_STAMP)

.PHONY: fuzz fuzz-smoke fuzz-regress fuzz-seeds fuzz-clean

fuzz: $(FUZZ_BINS)

# Fail early, and say why, when clang cannot link a libFuzzer binary.
$(FUZZ_TOOLCHAIN):
	@mkdir -p $(@D)
	@printf 'int LLVMFuzzerTestOneInput(const unsigned char *d, unsigned long n);\nint LLVMFuzzerTestOneInput(const unsigned char *d, unsigned long n) { (void)d; (void)n; return 0; }\n' \
		> $(FUZZ_OUT)/toolchain-probe.c
	@if ! $(FUZZ_CC) -fsanitize=fuzzer,address,undefined $(FUZZ_OUT)/toolchain-probe.c \
		-o $(FUZZ_OUT)/toolchain-probe >$(FUZZ_OUT)/toolchain-probe.log 2>&1; then \
		cat $(FUZZ_OUT)/toolchain-probe.log; \
		echo "fuzz: '$(FUZZ_CC) -fsanitize=fuzzer' cannot link: install clang and its runtimes"; \
		echo "fuzz: (Debian: apt-get install clang libclang-rt-dev, i.e. libclang-rt-14-dev on bookworm)"; \
		exit 1; \
	fi
	@rm -f $(FUZZ_OUT)/toolchain-probe $(FUZZ_OUT)/toolchain-probe.c $(FUZZ_OUT)/toolchain-probe.log
	@touch $@

# Library objects: coverage instrumentation, no libFuzzer main.
$(FUZZ_OUT)/obj/%.o: %.c | $(FUZZ_TOOLCHAIN)
	@mkdir -p $(@D)
	$(FUZZ_CC) $(FUZZ_CPPFLAGS) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link -MMD -MP -c $< -o $@

# An archive, so a target pulls in only what it uses: the engine, not the
# channel driver (nbd_conn.o needs TLS and the port layer).
$(FUZZ_LIB): $(FUZZ_LIB_OBJS)
	@rm -f $@
	$(FUZZ_AR) rcs $@ $^

# Likewise for the SASL targets: sasl_tls.o (binding data from a TLS session)
# is in the archive but linked by none.
$(FUZZ_SASL_LIB): $(FUZZ_SASL_OBJS)
	@rm -f $@
	$(FUZZ_AR) rcs $@ $^

$(FUZZ_MBED_LIB): $(FUZZ_MBEDTLS_STAMP) tls/sc_mbedtls_config.h mk/mbedtls.mk | $(FUZZ_TOOLCHAIN)
	@$(MAKE) --no-print-directory -f mk/mbedtls.mk SRC=$(FUZZ_MBEDTLS_SRC) \
		OUT=$(FUZZ_OUT)/mbedtls LIB=$@ CC="$(FUZZ_CC)" AR="$(FUZZ_AR)" OPT=-O2 \
		CFG_CFLAGS=-DSC_TLS_HOST EXTRA_CFLAGS="$(FUZZ_MBED_CFLAGS)"

$(FUZZ_CORE_BINS): $(FUZZ_OUT)/%: $(FUZZ_OUT)/obj/test/fuzz/%.o $(FUZZ_LIB)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer -o $@ $< $(FUZZ_LIB)

$(FUZZ_SASL_BINS): $(FUZZ_OUT)/%: $(FUZZ_OUT)/obj/test/fuzz/%.o $(FUZZ_SASL_LIB) $(FUZZ_MBED_LIB)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer -o $@ $< $(FUZZ_SASL_LIB) $(FUZZ_MBED_LIB) -lpthread

# run-smoke.sh takes TARGET:SECONDS.
FUZZ_SMOKE_LIST := $(FUZZ_CORE_TARGETS:%=%:$(FUZZ_SECONDS)) \
	$(FUZZ_SASL_TARGETS:%=%:$(FUZZ_SASL_SECONDS))

fuzz-smoke: fuzz
	@FUZZ_JOBS=$(FUZZ_JOBS) $(if $(FUZZ_SKIP),SC_FUZZ_SKIP=$(FUZZ_SKIP)) test/fuzz/run-smoke.sh $(FUZZ_OUT) \
		$(FUZZ_SECONDS) $(FUZZ_MAX_LEN) $(FUZZ_SMOKE_LIST)

# Every reproducer test/fuzz/crashes/<short>-* must now run clean in its
# target: fuzz_nbd_client_<short>, fuzz_nbd_<short> or fuzz_<short> (so
# sasl_layer-* runs in fuzz_sasl_layer).
fuzz-regress: fuzz
	@pass=0; fail=0; \
	for f in test/fuzz/crashes/*-*; do \
		[ -f "$$f" ] || continue; \
		p=$$(basename "$$f" | cut -d- -f1); t=; \
		for c in fuzz_nbd_client_$$p fuzz_nbd_$$p fuzz_$$p; do \
			[ -x $(FUZZ_OUT)/$$c ] && t=$$c && break; \
		done; \
		if [ -z "$$t" ]; then echo "fuzz-regress: $$f: no target named by '$$p'"; fail=$$((fail + 1)); continue; fi; \
		if $(FUZZ_OUT)/$$t "$$f" >$(FUZZ_OUT)/regress.log 2>&1; then \
			pass=$$((pass + 1)); echo "fuzz-regress: $$f: OK"; \
		else \
			fail=$$((fail + 1)); echo "fuzz-regress: $$f: FAILED"; \
			grep -E 'fuzz invariant|ERROR: ' $(FUZZ_OUT)/regress.log | head -n 3 | sed 's/^/    /'; \
		fi; \
	done; \
	echo "fuzz-regress: $$pass passed, $$fail failed"; [ $$fail -eq 0 ]

# The seed corpus is generated, deterministically; the result is committed.
$(FUZZ_OUT)/gen_seeds: test/fuzz/gen_seeds.c include/sechan/nbd_proto.h
	@mkdir -p $(@D)
	$(FUZZ_CC) -std=c11 -O1 -g $(FUZZ_WARN) $(FUZZ_CPPFLAGS) -o $@ $<

# The SASL seeds are what our own peers send (sasl-lite with fixed nonces),
# so the generator links the same library as the targets.
$(FUZZ_OUT)/gen_sasl_seeds: $(FUZZ_OUT)/obj/test/fuzz/gen_sasl_seeds.o $(FUZZ_SASL_LIB) \
		$(FUZZ_MBED_LIB)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link -o $@ $< $(FUZZ_SASL_LIB) \
		$(FUZZ_MBED_LIB) -lpthread

# (gen_seeds.c writes the NBD client targets' corpora; the server's come
# from make-server-seeds.py)
FUZZ_SEEDED := fuzz_nbd_client_handshake fuzz_nbd_client_replies
fuzz-seeds: $(FUZZ_OUT)/gen_seeds $(FUZZ_OUT)/gen_sasl_seeds
	rm -rf $(FUZZ_SEEDED:%=test/fuzz/corpus/%) $(FUZZ_SASL_TARGETS:%=test/fuzz/corpus/%)
	$(FUZZ_OUT)/gen_seeds test/fuzz/corpus
	$(FUZZ_OUT)/gen_sasl_seeds test/fuzz/corpus

fuzz-clean:
	rm -rf $(FUZZ_OUT)

-include $(FUZZ_LIB_OBJS:.o=.d) $(FUZZ_SASL_OBJS:.o=.d) $(FUZZ_MAIN_OBJS:.o=.d) \
	$(FUZZ_OUT)/obj/test/fuzz/gen_sasl_seeds.d
