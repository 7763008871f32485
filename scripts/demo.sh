#!/usr/bin/env bash
# The sechan demo: firmware on an emulated Cortex-M3 (QEMU mps2-an385), with
# no OS and no heap, reads and writes a disk that qemu-nbd exports on the
# host, over TLS 1.3, through a UART. Its UART is wired by a QEMU
# -chardev socket straight to qemu-nbd on 127.0.0.1.
set -euo pipefail
cd "$(dirname "$0")/.."
work=build/test/demo
rm -rf "$work"
mkdir -p "$work"
fwdisk=build/host/test/fwdisk

say() { printf '\n\033[1m%s\033[0m\n' "$*"; }

say "1. The host: a 1 MiB disk image holding a known pattern, exported by qemu-nbd with TLS"
"$fwdisk" make "$work/disk.img" 1048576
echo "   qemu-nbd --object tls-creds-psk,...,dir=build/test/pki-out/psk --tls-creds tls0 -b 127.0.0.1 disk.img"

say "2. The firmware: build/fw/mps2-an385-psk/firmware.elf"
arm-none-eabi-size build/fw/mps2-an385-psk/firmware.elf | sed 's/^/   /'
echo "   It opens UART1, runs the NBD handshake, asks for STARTTLS (refusing to go on without"
echo "   it), does a TLS 1.3 handshake with a pre-shared key, reads 16 KiB and checks the"
echo "   pattern, writes a 4 KiB block with FUA at 64 KiB, flushes, reads it back, disconnects."

say "3. Boot it under QEMU (its console is UART0):"
scripts/run-board.sh mps2-an385 psk uart "$work/disk.img" "$work/psk.log" "" 60 | sed 's/^/   /'
status=${PIPESTATUS[0]}
echo "   exit status $status (semihosting SYS_EXIT_EXTENDED)"

say "4. Back on the host: the export holds the pattern and the firmware's block, nothing else"
line=$(grep -a 'result=PASS' "$work/psk.log" || true)
tag=${line##*tag=}
tag=${tag%% *}
"$fwdisk" check "$work/disk.img" "${tag:-none}" | sed 's/^/   /'

say "5. The same with X.509 (ECDHE-ECDSA P-256; qemu-nbd also checks the firmware's certificate)"
"$fwdisk" make "$work/disk2.img" 1048576
scripts/run-board.sh mps2-an385 x509 uart "$work/disk2.img" "$work/x509.log" "" 60 | sed 's/^/   /'

say "6. Failing closed: qemu-nbd holds a different key"
mkdir -p "$work/wrong"
cp build/test/pki-out/keys-wrong.psk "$work/wrong/keys.psk"
echo "   (qemu-nbd hangs up without an alert, which a UART cannot see: the firmware gives up"
echo "    when its 20 s handshake bound passes)"
"$fwdisk" make "$work/disk3.img" 1048576
set +e
scripts/run-board.sh mps2-an385 psk uart "$work/disk3.img" "$work/wrong.log" "$work/wrong" 60 | sed 's/^/   /'
wrong=${PIPESTATUS[0]}
set -e
echo "   exit status $wrong"
"$fwdisk" check "$work/disk3.img" - | sed 's/^/   /'

[ "$status" -eq 0 ] && [ "$wrong" -eq 2 ]
