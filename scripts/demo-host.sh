#!/usr/bin/env bash
# The sechan demo on the host: our TLS client and server against OpenSSL,
# with X.509 and a pre-shared key, and what a failure looks like. Everything
# listens on 127.0.0.1 only and every process started here is ended by PID.
set -euo pipefail
cd "$(dirname "$0")/.."
T=build/host/sechan-tls
P=build/test/pki-out
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT

free_port() {
    local p
    for _ in $(seq 50); do
        p=$((20000 + RANDOM % 40000))
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then echo "$p"; return; fi
    done
    echo "demo: no free port" >&2; exit 1
}
log=$(mktemp)
trap 'cleanup; rm -f "$log"' EXIT
# Start our server in the background and wait for its "listening" line
# (a probe connection would use up its --count).
serve_bg() {
    : >"$log"
    $T serve "$@" 2>>"$log" &
    pids+=($!)
    for _ in $(seq 100); do
        grep -q "listening on" "$log" && return 0
        sleep 0.05
    done
    echo "demo: the server did not start" >&2; exit 1
}
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "1. sechan client -> openssl s_server, X.509 (QEMU's credential layout in $P/pki)"
port=$(free_port)
openssl s_server -accept "127.0.0.1:$port" -cert $P/pki/server-cert.pem \
    -key $P/pki/server-key.pem -rev -naccept 1 -quiet >/dev/null 2>&1 &
pids+=($!)
sleep 0.3
echo "\$ echo 'hello from sechan' | $T connect localhost $port --x509 $P/pki"
echo 'hello from sechan' | $T connect localhost "$port" --x509 $P/pki --timeout 5
echo "(openssl -rev sent the line back reversed)"

step "2. openssl s_client -> sechan server, TLS 1.3 with a pre-shared key (psktool format)"
port=$(free_port)
serve_bg "$port" --psk $P/keys.psk --count 1 --timeout 5
psk=$(cut -d: -f2 $P/keys.psk)
echo "\$ echo 'echo me' | openssl s_client -connect 127.0.0.1:$port -psk_identity alice -psk <key> -tls1_3 -quiet -no_ign_eof"
{ echo 'echo me'; sleep 1; } | openssl s_client -connect "127.0.0.1:$port" -psk_identity alice \
    -psk "$psk" -tls1_3 -quiet -no_ign_eof 2>/dev/null || true
wait "${pids[-1]}" || true
sed 's/^/  server log: /' "$log"

step "3. Failing closed: a server whose certificate names another host"
port=$(free_port)
serve_bg "$port" --x509 $P/pki-wronghost --count 1 --timeout 5
echo "\$ $T connect localhost $port --x509 $P/pki"
set +e
echo 'secret' | $T connect localhost "$port" --x509 $P/pki --timeout 5
rc=$?
set -e
echo "(exit code $rc: the handshake failed and nothing was sent)"

step "4. Failing closed: the wrong pre-shared key"
port=$(free_port)
serve_bg "$port" --psk $P/keys.psk --count 1 --timeout 5
set +e
echo 'secret' | $T connect localhost "$port" --psk $P/keys-wrong.psk --timeout 5
rc=$?
set -e
echo "(exit code $rc)"
echo
echo "demo done. Run all tests with: make test"
