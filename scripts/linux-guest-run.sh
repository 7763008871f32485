#!/usr/bin/env bash
# Boot the Linux test guest built by scripts/linux-guest.sh under QEMU (TCG) and
# run its agent on a virtio-serial port; exit with the agent's exit status.
#
#   scripts/linux-guest-run.sh OUTDIR CHARDEV_SPEC PORT_NAME TIMEOUT_S [ARGS...]
#
#   OUTDIR        holds vmlinux and initramfs.cpio.gz (from linux-guest.sh)
#   CHARDEV_SPEC  the host side of the port, as for QEMU's -chardev without the id,
#                 e.g. socket,host=127.0.0.1,port=5555,server=off,nodelay=on
#                 (have the peer listen first: QEMU connects at start), or null
#   PORT_NAME     virtserialport name; the guest looks the port up by it
#   TIMEOUT_S     wall-clock bound on the whole VM run (boot takes ~2.5 s)
#   ARGS          passed to the agent after the port device: /agent /dev/vportNpM ARGS
#
# Exit status: the agent's status as reported by the guest's /init
# (`sechan-agent-exit=N` on the console; 98 = guest setup failed, 99 = port not
# found within 10 s), 124 on timeout, 125 if the guest printed no status line
# (QEMU failed to start, kernel panic, ...). The guest console goes to stderr.
#
# Environment (optional):
#   LINUX_GUEST_APPEND  extra kernel command line, after ours (a later sechan.port=
#                       overrides ours; the selftest uses that for a missing port)
#   LINUX_GUEST_MEM     guest memory (default 256M)
#   LINUX_GUEST_LOG     also keep the console output in this file
#   LINUX_GUEST_QEMU_OPTS  extra QEMU options, split on whitespace (e.g. -cpu max)
#   QEMU_SYSTEM_X86_64  the QEMU binary (default qemu-system-x86_64)
set -euo pipefail

prog=linux-guest-run.sh
die() { echo "$prog: $*" >&2; exit 125; }

[ $# -ge 4 ] || die "usage: $prog OUTDIR CHARDEV_SPEC PORT_NAME TIMEOUT_S [ARGS...]"
out=$1 chardev=$2 port=$3 limit=$4
shift 4
kernel=$out/vmlinux
initrd=$out/initramfs.cpio.gz
if [ ! -s "$kernel" ] || [ ! -s "$initrd" ]; then
    die "no $kernel / $initrd: run scripts/linux-guest.sh first"
fi
# The name goes into QEMU's option syntax (commas) and the kernel command line
# (spaces, quotes): allow only characters that mean nothing to either.
[[ $port =~ ^[A-Za-z0-9._:-]+$ ]] || die "port name '$port' must match [A-Za-z0-9._:-]+"
[[ $limit =~ ^[1-9][0-9]*$ ]] || die "TIMEOUT_S must be a positive integer"
[ -n "$chardev" ] || die "empty CHARDEV_SPEC"
qemu=${QEMU_SYSTEM_X86_64:-qemu-system-x86_64}
command -v "$qemu" >/dev/null || die "'$qemu' not found (Debian package qemu-system-x86)"

# Arguments travel on the kernel command line as sechan.args=A,B,...: each one
# percent-encoded except for a few plain characters, so commas, spaces, quotes and
# any other byte survive; sechan.argc tells an empty list from one empty argument.
encode() {
    local s=$1 out='' c i
    for ((i = 0; i < ${#s}; i++)); do
        c=${s:i:1}
        case $c in
            [A-Za-z0-9._/:+@-]) out+=$c ;;
            *) out+=$(printf '%%%02X' "'$c") ;;
        esac
    done
    printf '%s' "$out"
}
export LC_ALL=C    # one byte per character in encode()
enc=()
for a in "$@"; do enc+=("$(encode "$a")"); done
joined=$(IFS=,; printf '%s' "${enc[*]}")

# quiet: only errors from the kernel on the console. panic=-1 with -no-reboot: any
# panic ends QEMU at once instead of waiting for the timeout. cryptomgr.notests=1
# and rodata=off skip the crypto self-tests and the read-only remapping + W+X scan
# of the kernel image: measured 0.3-0.5 s of a ~2.4 s boot under TCG, and this
# throwaway guest needs neither. sechan.end last, so the guest can tell a
# truncated command line.
cmdline="console=ttyS0 quiet panic=-1 cryptomgr.notests=1 rodata=off"
cmdline+=" sechan.port=$port sechan.argc=$#"
[ $# -eq 0 ] || cmdline+=" sechan.args=$joined"
[ -z "${LINUX_GUEST_APPEND:-}" ] || cmdline+=" $LINUX_GUEST_APPEND"
cmdline+=" sechan.end=1"
# x86 Linux keeps at most 2048 bytes (COMMAND_LINE_SIZE) of it.
[ ${#cmdline} -lt 2048 ] || die "kernel command line too long (${#cmdline} bytes; arguments too big)"

log=$(mktemp "${TMPDIR:-/tmp}/linux-guest-console.XXXXXX")
trap 'rm -f "$log"' EXIT

# -nodefaults: no NIC (its option ROM), VGA, floppy or CD-ROM to probe.
# -serial stdio with stdin from /dev/null: the console comes out on stdout, nothing
# goes in. The kernel is the uncompressed vmlinux, booted through its PVH note.
# timeout -k: QEMU gets SIGTERM at the limit, SIGKILL 5 s later if still there.
set +e
# LINUX_GUEST_QEMU_OPTS is split on whitespace on purpose.
# shellcheck disable=SC2086
timeout -k 5 "$limit" "$qemu" \
    -accel tcg -M pc -smp 1 -m "${LINUX_GUEST_MEM:-256M}" ${LINUX_GUEST_QEMU_OPTS:-} \
    -nodefaults -no-user-config -display none -monitor none -serial stdio -no-reboot \
    -kernel "$kernel" -initrd "$initrd" -append "$cmdline" \
    -device virtio-serial-pci \
    -chardev "$chardev,id=ch0" \
    -device "virtserialport,chardev=ch0,name=$port" \
    </dev/null 2>&1 | tee "$log" >&2
status=("${PIPESTATUS[@]}")
set -e
[ -z "${LINUX_GUEST_LOG:-}" ] || cp "$log" "$LINUX_GUEST_LOG"

# The status line is on a line of its own (the console ends lines with CR LF).
code=$(tr -d '\r' <"$log" | sed -n 's/^sechan-agent-exit=\([0-9]\{1,3\}\)$/\1/p' | tail -n1)
if [ -n "$code" ]; then
    exit "$code"
fi
case ${status[0]} in
    124|137) echo "$prog: timed out after ${limit} s" >&2; exit 124 ;;
esac
echo "$prog: the guest printed no sechan-agent-exit line (qemu exit status ${status[0]})" >&2
exit 125
