# mk/sasl-peers.mk: the test-only SASL interop peers (test/interop/sasl-peers/).
#
#   make sasl-peers                 build sasl-peer-cyrus and sasl-peer-gsasl into $(HOST)/test/
#
# Included by the top Makefile, or stand-alone from the top of the tree:
#   make -f mk/sasl-peers.mk sasl-peers HOST=build/host
#
# They link real SASL libraries to talk to ours over the framing of
# docs/sasl.md: Cyrus SASL 2.1.28 (libsasl2-dev), GNU SASL 2.2.0
# (libgsasl-dev) and GnuTLS (libgnutls28-dev) for the TLS and channel-binding
# cases. Test programs: malloc and POSIX are fine, so they build with their
# own flags, not the library's.

HOST ?= build/host
SASL_PEERS_DIR := test/interop/sasl-peers
SASL_PEERS_OUT := $(HOST)/test
SASL_PEERS_PKGS := libsasl2 libgsasl gnutls
SASL_PEERS_CC ?= $(CC)
SASL_PEERS_CFLAGS := -std=gnu11 -O2 -g -Wall -Wextra -Werror
SASL_PEERS_PKG_CFLAGS = $(shell pkg-config --cflags $(SASL_PEERS_PKGS))
SASL_PEERS_PKG_LIBS = -Wl,--as-needed $(shell pkg-config --libs $(SASL_PEERS_PKGS))
SASL_PEERS_COMMON := $(SASL_PEERS_DIR)/peer_common.c $(SASL_PEERS_DIR)/peer_common.h
SASL_PEERS_BINS := $(SASL_PEERS_OUT)/sasl-peer-cyrus $(SASL_PEERS_OUT)/sasl-peer-gsasl

.PHONY: sasl-peers sasl-peers-check-deps

sasl-peers: $(SASL_PEERS_BINS)

sasl-peers-check-deps:
	@pkg-config --exists $(SASL_PEERS_PKGS) || { echo "sasl-peers: missing" \
		"pkg-config packages: $(SASL_PEERS_PKGS) (Debian: libsasl2-dev" \
		"libsasl2-modules libsasl2-modules-db libgsasl-dev libgnutls28-dev)"; exit 1; }

$(SASL_PEERS_OUT)/sasl-peer-cyrus: $(SASL_PEERS_DIR)/cyrus_peer.c $(SASL_PEERS_COMMON) \
		mk/sasl-peers.mk | sasl-peers-check-deps
	@mkdir -p $(@D)
	$(SASL_PEERS_CC) $(SASL_PEERS_CFLAGS) $(SASL_PEERS_PKG_CFLAGS) -o $@ \
		$(SASL_PEERS_DIR)/cyrus_peer.c $(SASL_PEERS_DIR)/peer_common.c $(SASL_PEERS_PKG_LIBS)

$(SASL_PEERS_OUT)/sasl-peer-gsasl: $(SASL_PEERS_DIR)/gsasl_peer.c $(SASL_PEERS_COMMON) \
		mk/sasl-peers.mk | sasl-peers-check-deps
	@mkdir -p $(@D)
	$(SASL_PEERS_CC) $(SASL_PEERS_CFLAGS) $(SASL_PEERS_PKG_CFLAGS) -o $@ \
		$(SASL_PEERS_DIR)/gsasl_peer.c $(SASL_PEERS_DIR)/peer_common.c $(SASL_PEERS_PKG_LIBS)
