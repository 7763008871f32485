#!/usr/bin/env bash
# The firmware under QEMU against qemu-nbd over TLS (make test runs this).
# Each case boots a board with its link wired by -chardev socket straight to
# qemu-nbd on 127.0.0.1, then checks the firmware's result line, its exit
# status and, afterwards, the export's content on the host.
#
#   test/qemu/test_qemu_firmware.sh [CASE...]   (default: every case)
# Ends with "qemu: N passed, N failed"; exits non-zero if any failed or none ran.
set -uo pipefail
cd "$(dirname "$0")/../.."
pki=${SECHAN_PKI_DIR:-build/test/pki-out}
work=${SECHAN_TEST_DIR:-build/test}/qemu
fwdisk=build/host/test/fwdisk
rm -rf "$work"
mkdir -p "$work/wrong-psk"
# qemu-nbd holding a key the firmware does not have.
cp "$pki/keys-wrong.psk" "$work/wrong-psk/keys.psk"
cp "$pki/psk/dh-params.pem" "$work/wrong-psk/"

passed=0
failed=0
failed_names=()

# Every case: NAME BOARD VARIANT TRANSPORT EXPECT [CREDS]
#   EXPECT pass: exit 0, a PASS line, the export holds the firmware's block
#   EXPECT fail-TEXT: exit 2 (connect), a FAIL line containing TEXT,
#          the export untouched
cases=(
    "mps2-psk mps2-an385 psk uart pass"
    "mps2-x509 mps2-an385 x509 uart pass"
    "mps2-wrong-psk mps2-an385 psk uart fail-timed_out_waiting_for_the_TLS_handshake $work/wrong-psk"
    "riscv-uart-psk riscv-virt psk uart pass"
    "riscv-uart-x509 riscv-virt x509 uart pass"
    "riscv-virtio-psk riscv-virt psk virtio pass"
    "riscv-virtio-x509 riscv-virt x509 virtio pass"
    "riscv-uart-wrong-psk riscv-virt psk uart fail-timed_out_waiting_for_the_TLS_handshake $work/wrong-psk"
    "riscv-virtio-wrong-psk riscv-virt psk virtio fail-pre-shared_key_rejected $work/wrong-psk"
    "linux-psk linux-agent psk virtio pass"
    "linux-x509 linux-agent x509 virtio pass"
    "linux-wrong-psk linux-agent psk virtio fail-pre-shared_key_rejected $work/wrong-psk"
)

run_case() {
    local name=$1 board=$2 variant=$3 transport=$4 expect=$5 creds=${6:-}
    local dir=$work/$name
    mkdir -p "$dir"
    "$fwdisk" make "$dir/disk.img" 1048576 || return 1
    local t0=$SECONDS status
    scripts/run-board.sh "$board" "$variant" "$transport" "$dir/disk.img" "$dir/console.log" \
        "$creds" 60 >/dev/null
    status=$?
    local secs=$((SECONDS - t0))
    local line
    line=$(grep -a '^sechan-fw: board=' "$dir/console.log" | tail -n 1)
    echo "    $line"
    echo "    exit $status after ${secs}s"
    if [ "$expect" = pass ]; then
        [ "$status" -eq 0 ] || { echo "    expected exit 0"; return 1; }
        [[ "$line" == *"result=PASS"* ]] || { echo "    no PASS line"; return 1; }
        local tag=${line##*tag=}
        tag=${tag%% *}
        "$fwdisk" check "$dir/disk.img" "$tag" | sed 's/^/    /'
        return "${PIPESTATUS[0]}"
    fi
    local text=${expect#fail-}
    text=${text//_/ }
    [ "$status" -eq 2 ] || { echo "    expected exit 2 (connect failed)"; return 1; }
    [[ "$line" == *"result=FAIL step=connect"* ]] || { echo "    no FAIL line"; return 1; }
    [[ "$line" == *"$text"* ]] || { echo "    the FAIL line does not say: $text"; return 1; }
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
        sed 's/^/    | /' "$work/$name/console.log.qemu" "$work/$name/console.log.nbd" 2>/dev/null | tail -n 20
    fi
done
[ ${#failed_names[@]} -eq 0 ] || echo "failed: ${failed_names[*]}"
echo "qemu: $passed passed, $failed failed"
[ "$failed" -eq 0 ] && [ "$passed" -gt 0 ]
