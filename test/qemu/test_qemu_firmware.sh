#!/usr/bin/env bash
# The firmware under QEMU against qemu-nbd over TLS (make test runs this).
# Each case boots a board with its link wired by -chardev socket straight to
# qemu-nbd on 127.0.0.1, then checks the firmware's result line, its exit
# status and, afterwards, the export's content on the host. The SASL
# variants' link goes to sechan-gw instead, which authenticates the board
# (DIGEST-MD5 auth-conf in plain, or SCRAM inside TLS PSK) and relays to the
# qemu-nbd of its identity (scripts/run-board.sh does the wiring).
#
#   test/qemu/test_qemu_firmware.sh [CASE...]   (default: every case)
# Ends with "qemu: N passed, N failed"; exits non-zero if any failed or none ran.
set -uo pipefail
cd "$(dirname "$0")/../.."
pki=${SECHAN_PKI_DIR:-build/test/pki-out}
work=${SECHAN_TEST_DIR:-build/test}/qemu
fwdisk=build/host/test/fwdisk
gw=build/host/sechan-gw
users=${SECHAN_FW_USERS:-build/test/fw-users}
rm -rf "$work"
mkdir -p "$work/wrong-psk"
# qemu-nbd holding a key the firmware does not have.
cp "$pki/keys-wrong.psk" "$work/wrong-psk/keys.psk"
cp "$pki/psk/dh-params.pem" "$work/wrong-psk/"
# A gateway that knows fw-alice by another password than her firmware's.
if [ -x "$gw" ] && [ -s "$users/fw-alice.pass" ]; then
    echo "not $(cat "$users/fw-alice.pass")" | "$gw" adduser "$work/wrong-password.creds" \
        fw-alice --realm sechan 2>/dev/null
fi
# Gateways that offer less: DIGEST-MD5 with auth-int, or auth-conf with
# single DES only (sasl-digest must refuse both); SCRAM without -PLUS
# (sasl-scram falls back to SCRAM-SHA-256, saying it could have bound).
printf 'sasl-qop auth-int auth-conf\nsasl-ciphers des\n' >"$work/weak-layer.gw"
echo "sasl-mechs SCRAM-SHA-256" >"$work/no-plus.gw"

passed=0
failed=0
failed_names=()

# Every case: NAME BOARD VARIANT TRANSPORT EXPECT [CREDS]
#   EXPECT pass[:TEXT]: exit 0, a PASS line (containing TEXT), the export
#          holds the firmware's block (SASL variants: and the gateway logged
#          fw-alice's authentication)
#   EXPECT fail:STEP:TEXT: exit 2, a FAIL line of step STEP containing
#          TEXT, the export untouched
#   EXPECT other-identity (SASL variants): bob.elf, fw-bob with his own
#          password, asks for fw-alice's export "alice"; the gateway routes
#          fw-bob to his own qemu-nbd (export "bob"), which refuses it: exit
#          2, both exports untouched
# CREDS: qemu-nbd's TLS credentials; for the SASL variants the gateway's
# credentials file, or gw:FILE for more lines of the gateway's config.
cases=(
    "mps2-psk mps2-an385 psk uart pass"
    "mps2-x509 mps2-an385 x509 uart pass"
    "mps2-wrong-psk mps2-an385 psk uart fail:connect:timed_out_waiting_for_the_TLS_handshake $work/wrong-psk"
    "mps2-sasl-digest mps2-an385 sasl-digest uart pass:sasl=DIGEST-MD5_qop=auth-conf_cipher=3des"
    "mps2-sasl-scram mps2-an385 sasl-scram uart pass:sasl=SCRAM-SHA-256-PLUS_cb=tls-exporter"
    "mps2-sasl-digest-wrong-password mps2-an385 sasl-digest uart fail:sasl:DIGEST-MD5:_the_server_refused $work/wrong-password.creds"
    "mps2-sasl-scram-wrong-password mps2-an385 sasl-scram uart fail:sasl:SCRAM-SHA-256-PLUS:_the_server_refused $work/wrong-password.creds"
    "mps2-sasl-digest-other-identity mps2-an385 sasl-digest uart other-identity"
    "mps2-sasl-scram-other-identity mps2-an385 sasl-scram uart other-identity"
    "mps2-sasl-digest-weak-layer mps2-an385 sasl-digest uart fail:sasl:auth-conf_only_with_ciphers_our_policy_refuses gw:$work/weak-layer.gw"
    "mps2-sasl-scram-no-plus mps2-an385 sasl-scram uart pass:sasl=SCRAM-SHA-256_cb=unused gw:$work/no-plus.gw"
    "riscv-uart-psk riscv-virt psk uart pass"
    "riscv-uart-x509 riscv-virt x509 uart pass"
    "riscv-virtio-psk riscv-virt psk virtio pass"
    "riscv-virtio-x509 riscv-virt x509 virtio pass"
    "riscv-uart-wrong-psk riscv-virt psk uart fail:connect:timed_out_waiting_for_the_TLS_handshake $work/wrong-psk"
    "riscv-virtio-wrong-psk riscv-virt psk virtio fail:connect:pre-shared_key_rejected $work/wrong-psk"
    "riscv-uart-sasl-digest riscv-virt sasl-digest uart pass:sasl=DIGEST-MD5_qop=auth-conf_cipher=3des"
    "riscv-uart-sasl-scram riscv-virt sasl-scram uart pass:sasl=SCRAM-SHA-256-PLUS_cb=tls-exporter"
    "riscv-virtio-sasl-digest riscv-virt sasl-digest virtio pass:sasl=DIGEST-MD5_qop=auth-conf_cipher=3des"
    "riscv-virtio-sasl-scram riscv-virt sasl-scram virtio pass:sasl=SCRAM-SHA-256-PLUS_cb=tls-exporter"
    "riscv-uart-sasl-digest-wrong-password riscv-virt sasl-digest uart fail:sasl:DIGEST-MD5:_the_server_refused $work/wrong-password.creds"
    "riscv-virtio-sasl-scram-other-identity riscv-virt sasl-scram virtio other-identity"
    "linux-psk linux-agent psk virtio pass"
    "linux-x509 linux-agent x509 virtio pass"
    "linux-wrong-psk linux-agent psk virtio fail:connect:pre-shared_key_rejected $work/wrong-psk"
)

# fw-bob's own qemu-nbd behind the gateway (other-identity): started here,
# ended by its PID.
bob_pid=
bob_sock_dir=
start_bob() {
    local dir=$1
    "$fwdisk" make "$dir/bob.img" 1048576 || return 1
    # qemu-nbd wants an absolute socket path, and unix paths are short.
    bob_sock_dir=$(mktemp -d /tmp/sechan-bob.XXXXXX)
    bob_sock=$bob_sock_dir/bob.sock
    timeout --kill-after=5 120 qemu-nbd -f raw -x bob -k "$bob_sock" "$dir/bob.img" \
        2>>"$dir/bob.nbd.log" &
    bob_pid=$!
    for _ in $(seq 100); do
        [ -S "$bob_sock" ] && break
        kill -0 "$bob_pid" 2>/dev/null || break
        sleep 0.05
    done
    [ -S "$bob_sock" ] || { echo "    bob's qemu-nbd did not start (see $dir/bob.nbd.log)"; return 1; }
    echo "route fw-bob unix:$bob_sock" >"$dir/gw.extra"
}
stop_bob() {
    [ -z "$bob_pid" ] || { kill "$bob_pid" 2>/dev/null; wait "$bob_pid" 2>/dev/null; }
    [ -z "$bob_sock_dir" ] || rm -rf "$bob_sock_dir"
    bob_pid= bob_sock_dir= bob_sock=
}
trap stop_bob EXIT

run_case() {
    local name=$1 board=$2 variant=$3 transport=$4 expect=$5 creds=${6:-}
    local dir=$work/$name
    local sasl=
    [[ "$variant" == sasl-* ]] && sasl=1
    mkdir -p "$dir"
    "$fwdisk" make "$dir/disk.img" 1048576 || return 1
    local image=firmware extra=
    if [[ "$creds" == gw:* ]]; then
        extra=${creds#gw:} creds=
    fi
    if [ "$expect" = other-identity ]; then
        start_bob "$dir" || return 1
        image=bob extra=$dir/gw.extra
    fi
    local t0 status
    t0=$(date +%s%N)
    RUN_BOARD_IMAGE=$image RUN_BOARD_GW_EXTRA=$extra scripts/run-board.sh "$board" "$variant" \
        "$transport" "$dir/disk.img" "$dir/console.log" "$creds" 60 >/dev/null
    status=$?
    local ms=$(( ($(date +%s%N) - t0) / 1000000 ))
    local bob_sock_was=${bob_sock:-}
    stop_bob
    local line
    line=$(grep -a '^sechan-fw: board=' "$dir/console.log" | tail -n 1)
    echo "    $line"
    echo "    exit $status after ${ms} ms"
    [ -z "$sasl" ] || sed -n 's/^sechan-gw: conn [0-9]*: /    gateway: /p' "$dir/console.log.gw"
    if [[ "$expect" == pass* ]]; then
        [ "$status" -eq 0 ] || { echo "    expected exit 0"; return 1; }
        [[ "$line" == *"result=PASS"* ]] || { echo "    no PASS line"; return 1; }
        if [[ "$expect" == pass:* ]]; then
            local want=${expect#pass:}
            want=${want//_/ }
            [[ "$line" == *" $want "* ]] || { echo "    the PASS line does not say: $want"; return 1; }
        fi
        if [ -n "$sasl" ]; then
            grep -q '"fw-alice" authenticated' "$dir/console.log.gw" ||
                { echo "    the gateway did not log fw-alice's authentication"; return 1; }
        fi
        local tag=${line##*tag=}
        tag=${tag%% *}
        "$fwdisk" check "$dir/disk.img" "$tag" | sed 's/^/    /'
        return "${PIPESTATUS[0]}"
    fi
    local step text
    if [ "$expect" = other-identity ]; then
        step=connect text="server has no export named 'alice'"
    else
        step=${expect#fail:}
        step=${step%%:*}
        text=${expect#fail:*:}
        text=${text//_/ }
    fi
    [ "$status" -eq 2 ] || { echo "    expected exit 2 (connect failed)"; return 1; }
    [[ "$line" == *"result=FAIL step=$step "* ]] || { echo "    no FAIL line of step $step"; return 1; }
    [[ "$line" == *"$text"* ]] || { echo "    the FAIL line does not say: $text"; return 1; }
    if [ "$expect" = other-identity ]; then
        # fw-bob got in, but only as far as his own qemu-nbd.
        grep -q "\"fw-bob\" authenticated .*; relaying to unix:$bob_sock_was\$" \
            "$dir/console.log.gw" ||
            { echo "    the gateway did not relay fw-bob to his own backend"; return 1; }
        "$fwdisk" check "$dir/bob.img" - | sed 's/^/    bob: /'
        [ "${PIPESTATUS[0]}" -eq 0 ] || return 1
    elif [ -n "$sasl" ]; then
        grep -q 'SASL authentication failed' "$dir/console.log.gw" ||
            { echo "    the gateway did not log the refusal"; return 1; }
    fi
    "$fwdisk" check "$dir/disk.img" - | sed 's/^/    /'
    return "${PIPESTATUS[0]}"
}

want=("$@")
for c in "${cases[@]}"; do
    read -r name board variant transport expect creds <<<"$c"
    if [ ${#want[@]} -gt 0 ] && [[ " ${want[*]} " != *" $name "* ]]; then
        continue
    fi
    echo "[ RUN      ] $name"
    if run_case "$name" "$board" "$variant" "$transport" "$expect" "$creds"; then
        passed=$((passed + 1))
        echo "[       OK ] $name"
    else
        failed=$((failed + 1))
        failed_names+=("$name")
        echo "[  FAILED  ] $name (console: $work/$name/console.log)"
        sed 's/^/    | /' "$work/$name/console.log.qemu" "$work/$name/console.log.nbd" \
            "$work/$name/console.log.gw" 2>/dev/null | tail -n 20
    fi
done
[ ${#failed_names[@]} -eq 0 ] || echo "failed: ${failed_names[*]}"
echo "qemu: $passed passed, $failed failed"
[ "$failed" -eq 0 ] && [ "$passed" -gt 0 ]
