# mk/fuzz.mk: libFuzzer targets for the NBD client engine (test/fuzz/).
#
#   make fuzz                       build the targets into build/fuzz/
#   make fuzz-smoke                 run each for FUZZ_SECONDS (default 60)
#   make fuzz-regress               run the saved reproducers (test/fuzz/crashes/)
#   make fuzz-seeds                 regenerate test/fuzz/corpus/ (gen_seeds.c)
#
# Included by the top Makefile, or stand-alone from the top of the tree:
#   make -f mk/fuzz.mk fuzz-smoke FUZZ_SECONDS=20
#
# Needs clang with its sanitizer and libFuzzer runtimes (Debian bookworm:
# clang + libclang-rt-14-dev, which clang only recommends). The targets
# build the library sources they need (core/*.c, nbd/*.c) with the fuzzer
# instrumentation into build/fuzz/obj; the engine needs no TLS, so Mbed TLS
# is neither fetched nor linked.

BUILD ?= build
FUZZ_OUT := $(BUILD)/fuzz
FUZZ_CC ?= clang
FUZZ_AR ?= ar
FUZZ_SECONDS ?= 60
FUZZ_MAX_LEN ?= 65536
# Every test/fuzz/fuzz_*.c is a target (fuzz_util.h is their shared helper).
FUZZ_TARGETS := $(sort $(basename $(notdir $(wildcard test/fuzz/fuzz_*.c))))

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
FUZZ_TOOLCHAIN := $(FUZZ_OUT)/.toolchain-ok

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

$(FUZZ_BINS): $(FUZZ_OUT)/%: $(FUZZ_OUT)/obj/test/fuzz/%.o $(FUZZ_LIB)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer -o $@ $< $(FUZZ_LIB)

fuzz-smoke: fuzz
	@test/fuzz/run-smoke.sh $(FUZZ_OUT) $(FUZZ_SECONDS) $(FUZZ_MAX_LEN) $(FUZZ_TARGETS)

# Every reproducer test/fuzz/crashes/<short>-* must now run clean in its
# target, fuzz_nbd_client_<short> or fuzz_nbd_<short>.
fuzz-regress: fuzz
	@pass=0; fail=0; \
	for f in test/fuzz/crashes/*-*; do \
		[ -f "$$f" ] || continue; \
		p=$$(basename "$$f" | cut -d- -f1); t=; \
		for c in fuzz_nbd_client_$$p fuzz_nbd_$$p; do \
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

# (only the client targets' corpora: gen_seeds.c writes those two)
FUZZ_SEEDED := fuzz_nbd_client_handshake fuzz_nbd_client_replies
fuzz-seeds: $(FUZZ_OUT)/gen_seeds
	rm -rf $(FUZZ_SEEDED:%=test/fuzz/corpus/%)
	$(FUZZ_OUT)/gen_seeds test/fuzz/corpus

fuzz-clean:
	rm -rf $(FUZZ_OUT)

-include $(FUZZ_LIB_OBJS:.o=.d) $(FUZZ_MAIN_OBJS:.o=.d)
