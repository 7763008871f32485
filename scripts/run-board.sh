#!/usr/bin/env bash
# run-board.sh: boot one firmware image under QEMU with its link connected
# by a -chardev socket straight to a qemu-nbd on 127.0.0.1, and report.
#
#   run-board.sh BOARD VARIANT TRANSPORT DISK LOG [CREDS_DIR] [TIMEOUT_S]
#
# BOARD mps2-an385 | riscv-virt | linux-agent; VARIANT psk | x509 |
# sasl-digest | sasl-scram; TRANSPORT uart | virtio (linux-agent: virtio,
# its virtio-serial port).
# qemu-nbd exports DISK (raw) with TLS credentials from CREDS_DIR (default:
# the test PKI's psk/ or pki-ecdsa/). The firmware's console goes to LOG
# and to stdout. Exits with the firmware's status (QEMU passes it on), 124
# if QEMU had to be stopped at the timeout, 125 if qemu-nbd or the gateway
# did not start.
#
# The SASL variants go through the gateway: qemu-nbd exports DISK in plain
# as "alice" on a unix socket (in a temporary directory), and sechan-gw
# (config in LOG.gw.conf, log in LOG.gw) listens on 127.0.0.1 for the
# board's chardev, authenticates it (sasl-digest: plaintext, DIGEST-MD5
# auth-conf; sasl-scram: TLS PSK from the test PKI, then SCRAM) and routes
# fw-alice there. For them CREDS_DIR is instead the gateway's credentials
# FILE (default: the test users fw-alice and fw-bob with the passwords the
# images hold, made from build/test/fw-users/*.pass).
# RUN_BOARD_GW_EXTRA=FILE appends FILE's lines to the gateway's config
# (more routes); RUN_BOARD_IMAGE=bob boots bob.elf (fw-bob asking for
# fw-alice's export).
#
# For make bench-qemu: RUN_BOARD_IMAGE=bench boots the bench image
# (boards/common/fwbench.c) instead of the application, and
# RUN_BOARD_PEER=echo:N puts test/qemu/bench-peer.py (echo N bytes, log in
# LOG.peer) at the other end of the link instead of qemu-nbd (DISK unused),
# and RUN_BOARD_PEER=nbdkit puts nbdkit's file plugin there (PSK only).
set -euo pipefail
board=$1 variant=$2 transport=$3 disk=$4 log=$5
pki=${SECHAN_PKI_DIR:-build/test/pki-out}
creds=${6:-}
limit=${7:-60}
image=${RUN_BOARD_IMAGE:-firmware}
peer=${RUN_BOARD_PEER:-nbd}
case "$image" in firmware|bench|bob) ;; *) echo "run-board: no such image: $image" >&2; exit 2 ;; esac
sasl=
case "$variant" in sasl-*) sasl=$variant ;; esac
case "$peer" in nbd|nbdkit|echo:[0-9]*) ;; *) echo "run-board: no such peer: $peer" >&2; exit 2 ;; esac
if [ "$board" = linux-agent ]; then
    elf=build/host/agent-$variant/sechan-agent
    guest=build/qemu/linux/$variant
    if [ "$image" = bench ]; then
        elf=$elf-bench
        guest=$guest-bench
    fi
    [ -f "$elf" ] || { echo "run-board: $elf is not built (make agents)" >&2; exit 2; }
    # The guest: Debian's kernel and a busybox initramfs holding the agent
    # (make guests fetches the kernel; here it is only brought up to date,
    # which needs no network once the .deb is in the cache).
    # virtio-rng feeds the guest kernel's CRNG: without it getrandom() may
    # block for a long time in a fresh VM.
    LINUX_GUEST_CACHE=build/qemu/linux/cache LINUX_GUEST_MODULES="virtio_pci virtio_console virtio_rng" \
        scripts/linux-guest.sh "$guest" "$elf" >>"$log.qemu" 2>&1 \
        || { echo "run-board: could not build the Linux guest (see $log.qemu)" >&2; exit 2; }
else
    elf=build/fw/$board-$variant/$image.elf
    [ -f "$elf" ] || { echo "run-board: $elf is not built (make firmware)" >&2; exit 2; }
fi
users=${SECHAN_FW_USERS:-build/test/fw-users}
gw=build/host/sechan-gw
if [ -n "$sasl" ]; then
    [ -x "$gw" ] || { echo "run-board: $gw is not built (make tools)" >&2; exit 2; }
    [ "$peer" = nbd ] ||
        { echo "run-board: the SASL variants have the gateway as their peer" >&2; exit 2; }
    if [ -z "$creds" ]; then
        # The gateway's side of the compiled-in test users: made again
        # whenever a password file is newer.
        creds=$users/gw.creds
        if [ ! -s "$creds" ] || [ "$users/fw-alice.pass" -nt "$creds" ] ||
            [ "$users/fw-bob.pass" -nt "$creds" ]; then
            tmp=$creds.$$.tmp
            rm -f "$tmp"
            for u in fw-alice fw-bob; do
                "$gw" adduser "$tmp" "$u" --realm sechan <"$users/$u.pass" 2>/dev/null ||
                    { echo "run-board: cannot add $u to the gateway's credentials" >&2; exit 2; }
            done
            mv "$tmp" "$creds"
        fi
    fi
    creds=$(cd "$(dirname "$creds")" && pwd)/$(basename "$creds")
elif [ -z "$creds" ]; then
    if [ "$variant" = psk ]; then creds=$pki/psk; else creds=$pki/pki-ecdsa; fi
fi
[ -n "$sasl" ] || creds=$(cd "$creds" && pwd)   # qemu-nbd wants absolute paths
[ "${peer%%:*}" = echo ] || disk=$(cd "$(dirname "$disk")" && pwd)/$(basename "$disk")

peer_pid=
gw_pid=
qemu_pid=
sock_dir=
cleanup() {
    # End only what this script started, by PID.
    for p in $qemu_pid $gw_pid $peer_pid; do
        kill "$p" 2>/dev/null || true
    done
    wait 2>/dev/null || true
    [ -z "$sock_dir" ] || rm -rf "$sock_dir"
}
trap cleanup EXIT

# Is something listening on 127.0.0.1:$1? (/proc/net/tcp, state 0A; a probe
# connection would count as qemu-nbd's one client.)
listening() {
    local hex
    hex=$(printf '%04X' "$1")
    grep -q "^ *[0-9]*: 0100007F:$hex 00000000:0000 0A" /proc/net/tcp
}

if [ "$variant" = psk ]; then
    tls_obj="tls-creds-psk,id=tls0,endpoint=server,dir=$creds"
else
    tls_obj="tls-creds-x509,id=tls0,endpoint=server,dir=$creds"
fi

# The SASL variants: qemu-nbd in plain on a unix socket, exporting DISK by
# the name fw-alice's image asks for (mk/firmware.mk), and the gateway in
# front of it on a port of its own choosing (it prints it).
start_gateway() {
    # qemu-nbd wants an absolute socket path, and unix paths are short.
    sock_dir=$(mktemp -d /tmp/sechan-rb.XXXXXX)
    local sock=$sock_dir/nbd.sock conf=$log.gw.conf
    timeout --kill-after=5 $((limit + 30)) qemu-nbd -f raw -x alice -k "$sock" "$disk" \
        2>>"$log.nbd" &
    peer_pid=$!
    for _ in $(seq 100); do
        [ -S "$sock" ] && break
        kill -0 "$peer_pid" 2>/dev/null || break
        sleep 0.05
    done
    [ -S "$sock" ] || { echo "run-board: qemu-nbd did not start (see $log.nbd)" >&2; exit 125; }
    {
        echo "listen tcp:127.0.0.1:0"
        if [ "$sasl" = sasl-scram ]; then
            echo "tls psk $(cd "$pki/psk" && pwd)/keys.psk"
        else
            echo "tls off"
            echo "sasl-qop auth-conf"
        fi
        echo "sasl required"
        echo "credentials $creds"
        echo "route fw-alice unix:$sock"
        [ -z "${RUN_BOARD_GW_EXTRA:-}" ] || cat "$RUN_BOARD_GW_EXTRA"
    } >"$conf"
    : >"$log.gw"
    timeout --kill-after=5 $((limit + 30)) "$gw" serve "$conf" 2>>"$log.gw" &
    gw_pid=$!
    port=
    for _ in $(seq 100); do
        port=$(sed -n 's/^sechan-gw: listening on tcp:127\.0\.0\.1:\([0-9]*\) .*/\1/p' "$log.gw")
        [ -n "$port" ] && break
        kill -0 "$gw_pid" 2>/dev/null || break
        sleep 0.05
    done
    [ -n "$port" ] || { echo "run-board: the gateway did not start (see $log.gw)" >&2; exit 125; }
}

[ -z "$sasl" ] || start_gateway

# A free port: try a few at random; qemu-nbd fails at once if one is taken.
for attempt in 1 2 3 4 5 6 7 8; do
    [ -z "$sasl" ] || break
    port=$((20000 + RANDOM % 20000))
    listening "$port" && continue
    if [ "$peer" = nbd ]; then
        timeout --kill-after=5 $((limit + 30)) qemu-nbd --object "$tls_obj" --tls-creds tls0 \
            -f raw -b 127.0.0.1 -p "$port" "$disk" 2>>"$log.nbd" &
    elif [ "$peer" = nbdkit ]; then
        [ "$variant" = psk ] || { echo "run-board: the nbdkit peer is for PSK only" >&2; exit 2; }
        timeout --kill-after=5 $((limit + 30)) nbdkit -f --tls=require --tls-psk="$creds/keys.psk" \
            -i 127.0.0.1 -p "$port" file "$disk" 2>>"$log.nbd" &
    else
        timeout --kill-after=5 $((limit + 30)) python3 test/qemu/bench-peer.py "$port" \
            "${peer#echo:}" >>"$log.peer" 2>&1 &
    fi
    peer_pid=$!
    for _ in $(seq 100); do
        listening "$port" && break
        kill -0 "$peer_pid" 2>/dev/null || break
        sleep 0.05
    done
    listening "$port" && break
    kill "$peer_pid" 2>/dev/null || true
    wait "$peer_pid" 2>/dev/null || true
    peer_pid=
done
[ -n "$peer_pid" ] || { echo "run-board: the $peer peer did not start (see $log.nbd, $log.peer)" >&2; exit 125; }

chardev="socket,id=link,host=127.0.0.1,port=$port,server=off,nodelay=on"
common=(-display none -monitor none -no-reboot -kernel "$elf")
case "$board/$transport" in
mps2-an385/uart)
    cmd=(qemu-system-arm -M mps2-an385 "${common[@]}"
         -semihosting-config enable=on,target=native
         -chardev "$chardev" -serial stdio -serial chardev:link) ;;
riscv-virt/uart)
    # The UART is the link: the console is semihosting, on stdout.
    cmd=(qemu-system-riscv64 -M virt -bios none "${common[@]}"
         -chardev stdio,id=con,signal=off
         -semihosting-config enable=on,target=native,chardev=con
         -global virtio-mmio.force-legacy=false -device virtio-rng-device
         -chardev "$chardev" -serial chardev:link) ;;
riscv-virt/virtio)
    cmd=(qemu-system-riscv64 -M virt -bios none "${common[@]}"
         -semihosting-config enable=on,target=native
         -global virtio-mmio.force-legacy=false -device virtio-rng-device
         -device virtio-serial-device -chardev "$chardev"
         -device virtserialport,chardev=link,name=org.sechan.nbd -serial stdio) ;;
linux-agent/virtio)
    # The guest's console (the agent's output among it) comes on stderr.
    # The agent links the host build of Mbed TLS, compiled for AES-NI and
    # SSE4.1: the guest CPU must have them (TCG's qemu64 has not: SIGILL).
    export LINUX_GUEST_QEMU_OPTS="-cpu max,erms=off,fsrm=off -device virtio-rng-pci"
    cmd=(scripts/linux-guest-run.sh "$guest" "socket,host=127.0.0.1,port=$port,server=off,nodelay=on"
         org.sechan.nbd "$limit") ;;
*) echo "run-board: no such board/transport: $board/$transport" >&2; exit 2 ;;
esac

start=$(date +%s%N)
set +e
if [ "$board" = linux-agent ]; then
    timeout --kill-after=5 "$limit" "${cmd[@]}" </dev/null > >(tee "$log") 2>&1 &
else
    timeout --kill-after=5 "$limit" "${cmd[@]}" </dev/null > >(tee "$log") 2>>"$log.qemu" &
fi
qemu_pid=$!
wait "$qemu_pid"
status=$?
set -e
qemu_pid=
ms=$(( ($(date +%s%N) - start) / 1000000 ))
echo "run-board: $board $variant over $transport: exit $status in $ms ms" >> "$log.qemu"
exit "$status"
