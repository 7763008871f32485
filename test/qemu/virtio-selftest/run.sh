#!/usr/bin/env bash
# QEMU test of the virtio-mmio drivers (sechan/virtio.h) on riscv virt.
#
#   test/qemu/virtio-selftest/run.sh [BUILDDIR]   (default build/qemu/virtio-selftest)
#
# Builds the bare-metal firmware (main.c on the riscv-virt board's start.S and
# link.ld, with the library's core, port/baremetal, the NS16550A and virtio
# drivers), then:
#   1. boots it with modern virtio-mmio devices (virtio-rng, virtio-serial with
#      one virtserialport whose chardev connects to peer.py on 127.0.0.1): rng
#      checks, port discovery, sink / generate / echo of random bytes, EOF
#      when the peer closes, write after EOF, close;
#   2. boots it with QEMU's default legacy devices: both drivers must refuse
#      them and leave them untouched.
# Every process runs under a timeout. Prints the rates measured by the peer
# (host clock) and by the firmware (mtime), then `N passed, N failed`.
#
# Environment: VIRTIO_SELFTEST_SINK / _GEN / _ECHO (bytes; default 1 MiB,
# 1 MiB, 256 KiB), VIRTIO_SELFTEST_CFLAGS (extra flags, e.g. buffer sizes:
# -DSC_VIRTIO_SERIAL_BUF_SIZE=1024u), QEMU (default qemu-system-riscv64).
set -uo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../../.." && pwd)
out=${1:-$root/build/qemu/virtio-selftest}
mkdir -p "$out"
out=$(cd "$out" && pwd)
qemu=${QEMU:-qemu-system-riscv64}
sink_n=${VIRTIO_SELFTEST_SINK:-1048576}
gen_n=${VIRTIO_SELFTEST_GEN:-1048576}
echo_n=${VIRTIO_SELFTEST_ECHO:-262144}
port_name=org.sechan.test

# shellcheck source=test/qemu/selftest-lib.sh
. "$here/../selftest-lib.sh"

for tool in riscv64-unknown-elf-gcc "$qemu" python3 timeout; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        fail "missing $tool"
        finish
    fi
done

# ---- build ----
# Objects are built for rv64imac_zicsr (binutils 2.40 wants zicsr spelt out
# for csrr/csrw), but the link names plain rv64imac: with the _zicsr suffix
# GCC 12's multilib match fails and picks the default rv64imafdc/lp64d
# picolibc, which does not link with lp64 objects.
cflags=(-std=c11 -Os -g -march=rv64imac_zicsr -mabi=lp64 -mcmodel=medany
    --specs=picolibc.specs -DPICOLIBC_INTEGER_PRINTF_SCANF
    -Wall -Wextra -Werror -Wshadow -Wconversion -Wstrict-prototypes -Wno-format-truncation
    -ffunction-sections -fdata-sections -I"$root/include")
# shellcheck disable=SC2206  # word splitting wanted
cflags+=(${VIRTIO_SELFTEST_CFLAGS:-})
srcs=("$root/boards/riscv-virt/start.S" "$here/main.c" "$root"/core/*.c "$root/port/baremetal/port_baremetal.c"
    "$root/transports/uart.c" "$root"/transports/virtio_*.c)
build_fw() {
    local src obj objs=()
    rm -rf "$out/obj"
    mkdir -p "$out/obj"
    for src in "${srcs[@]}"; do
        obj=$out/obj/$(basename "${src%.*}").o
        timeout 120 riscv64-unknown-elf-gcc "${cflags[@]}" -c "$src" -o "$obj" || return 1
        objs+=("$obj")
    done
    timeout 120 riscv64-unknown-elf-gcc -march=rv64imac -mabi=lp64 -mcmodel=medany \
        --specs=picolibc.specs -DPICOLIBC_INTEGER_PRINTF_SCANF -nostartfiles \
        -T "$root/boards/riscv-virt/link.ld" -Wl,--defsym=STACK_SIZE=65536 \
        -Wl,--gc-sections -Wl,-Map="$out/fw.map" -o "$out/fw.elf" "${objs[@]}"
}
if build_fw >"$out/build.log" 2>&1; then
    pass "build firmware ($(riscv64-unknown-elf-size "$out/fw.elf" | awk 'NR==2 {print "text " $1 ", data " $2 ", bss " $3}'))"
else
    cat "$out/build.log"
    fail "build firmware"
    finish
fi

# count_checks FILE PREFIX: one test per "<PREFIX> name ok|FAIL" line.
count_checks() {
    local line name verdict
    while IFS= read -r line; do
        line=${line%$'\r'}
        read -r _ name verdict _ <<<"$line"
        if [ "$verdict" = ok ]; then pass "$name"; else fail "$line"; fi
    done < <(grep -a "^$2 " "$1")
}

# ---- 1: modern devices, peer on 127.0.0.1 ----
rm -f "$out/port" "$out/uart.log" "$out/peer.log"
timeout 120 python3 "$here/peer.py" "$out/port" "$sink_n" "$gen_n" "$echo_n" \
    >"$out/peer.log" 2>&1 &
peer_pid=$!
bg_pids+=("$peer_pid")
for _ in $(seq 100); do
    [ -s "$out/port" ] && break
    sleep 0.1
done
if [ ! -s "$out/port" ]; then
    fail "peer did not start listening"
    cat "$out/peer.log"
    finish
fi
tcp_port=$(cat "$out/port")

t0=$EPOCHREALTIME
timeout 90 "$qemu" -M virt -bios none -display none -monitor none -serial stdio \
    -global virtio-mmio.force-legacy=false \
    -device virtio-rng-device -device virtio-serial-device \
    -chardev socket,id=c0,host=127.0.0.1,port="$tcp_port",server=off \
    -device virtserialport,chardev=c0,name="$port_name" \
    -kernel "$out/fw.elf" </dev/null >"$out/uart.log" 2>"$out/qemu.err"
qrc=$?
t1=$EPOCHREALTIME
wait "$peer_pid"
prc=$?
echo "---- firmware log (modern devices) ----"
tr -d '\r' <"$out/uart.log"
echo "---- peer log ----"
cat "$out/peer.log"
[ -s "$out/qemu.err" ] && { echo "---- qemu stderr ----"; cat "$out/qemu.err"; }
echo "----"
count_checks "$out/uart.log" CHECK
count_checks "$out/peer.log" PEER
if [ "$qrc" -eq 0 ]; then pass "firmware exit status 0 ($(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f s", b - a }'))"
else fail "firmware exit status $qrc (124: timeout; 1..: failed checks)"; fi
if [ "$prc" -eq 0 ]; then pass "peer exit status 0"; else fail "peer exit status $prc"; fi
if grep -aq "^RESULT pass" "$out/uart.log"; then pass "firmware RESULT pass"; else fail "no RESULT pass line"; fi

# ---- 2: legacy devices (QEMU's default) must be refused ----
timeout 30 "$qemu" -M virt -bios none -display none -monitor none -serial stdio \
    -device virtio-rng-device -device virtio-serial-device \
    -kernel "$out/fw.elf" </dev/null >"$out/uart-legacy.log" 2>"$out/qemu-legacy.err"
lrc=$?
echo "---- firmware log (legacy devices) ----"
tr -d '\r' <"$out/uart-legacy.log"
echo "----"
count_checks "$out/uart-legacy.log" CHECK
grep -aq "^CHECK legacy-rng-refused " "$out/uart-legacy.log" || fail "legacy run: no refusal check ran"
if [ "$lrc" -eq 0 ]; then pass "legacy run exit status 0"; else fail "legacy run exit status $lrc"; fi

echo "---- rates ----"
grep -ah '^PEER-RATE\|^RATE' "$out/peer.log" "$out/uart.log" | tr -d '\r'
finish
