#!/usr/bin/env bash
# make bench: read SIZE (default 1 GiB) from qemu-nbd and from nbdkit's
# memory plugin, plaintext, TLS 1.3 PSK and TLS 1.3 X.509, with
#   sechan-nbd copy URI - > /dev/null     (ours)
#   nbdcopy URI null:                      (libnbd, default: up to 4 connections)
#   nbdcopy --connections=1 URI null:
# in one run, and print one table of MB/s and the ratios. Every server is
# started here on 127.0.0.1 and ended by PID. Figures are best of RUNS.
set -euo pipefail
cd "$(dirname "$0")/.."
SIZE=${BENCH_SIZE:-1G}
RUNS=${BENCH_RUNS:-3}
P=$PWD/build/test/pki-out
T=$PWD/build/host/sechan-nbd
W=$PWD/build/bench
mkdir -p "$W"
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT

port=21900
next_port() { port=$((port + 1)); while (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; do port=$((port + 1)); done; }
wait_listen() {
    for _ in $(seq 200); do
        ss -ltn 2>/dev/null | grep -q "127.0.0.1:$1 " && return 0
        sleep 0.05
    done
    echo "bench: nothing listens on $1" >&2; exit 1
}

# BENCH_ONLY=nbd or gw runs one half.
if [ "${BENCH_ONLY:-all}" != gw ]; then
bytes=$(numfmt --from=iec "$SIZE")
if [ ! -f "$W/disk.img" ] || [ "$(stat -c %s "$W/disk.img")" != "$bytes" ]; then
    echo "bench: making a $SIZE disk of random bytes"
    head -c "$bytes" /dev/urandom > "$W/disk.img"
fi

declare -A URI
start_qemu() {  # mode
    next_port
    local tls=()
    case $1 in
        x509) tls=(--object "tls-creds-x509,id=tls0,dir=$P/pki,endpoint=server,verify-peer=no" --tls-creds=tls0) ;;
        psk) tls=(--object "tls-creds-psk,id=tls0,dir=$P/psk,endpoint=server" --tls-creds=tls0) ;;
    esac
    qemu-nbd -f raw -r -b 127.0.0.1 -p "$port" -x disk -t -e 8 "${tls[@]}" "$W/disk.img" \
        >"$W/qemu-$1.log" 2>&1 &
    pids+=($!)
    wait_listen "$port"
    URI[qemu-nbd/$1]=$(uri "$1" "$port" disk)
}
start_nbdkit() {  # mode
    next_port
    local tls=()
    case $1 in
        x509) tls=(--tls=require "--tls-certificates=$P/pki") ;;
        psk) tls=(--tls=require "--tls-psk=$P/keys.psk") ;;
    esac
    nbdkit -f -i 127.0.0.1 -p "$port" "${tls[@]}" memory "$SIZE" >"$W/nbdkit-$1.log" 2>&1 &
    pids+=($!)
    wait_listen "$port"
    URI[nbdkit-memory/$1]=$(uri "$1" "$port" "")
    nbdcopy "$W/disk.img" "${URI[nbdkit-memory/$1]}"   # load the data
}
uri() {  # mode port export
    case $1 in
        plain) echo "nbd://127.0.0.1:$2/$3" ;;
        x509) echo "nbds://localhost:$2/$3?tls-certificates=$P/pki" ;;
        psk) echo "nbds://alice@localhost:$2/$3?tls-psk-file=$P/keys.psk" ;;
    esac
}

# best MB/s of RUNS runs of a command
measure() {
    local best=0 t0 t1 mbs
    for _ in $(seq "$RUNS"); do
        t0=$(date +%s.%N)
        if ! "$@" >/dev/null 2>>"$W/errors.log"; then echo "FAIL"; return; fi
        t1=$(date +%s.%N)
        mbs=$(echo "$bytes / ($t1 - $t0) / 1000000" | bc -l)
        best=$(echo "if ($mbs > $best) $mbs else $best" | bc -l)
    done
    printf '%.0f' "$best"
}
ours() { "$T" copy --no-progress "$1" - > /dev/null; }

for m in plain psk x509; do start_qemu $m; start_nbdkit $m; done
# A fresh server is slow on its first pass (qemu-nbd: 1.5 s against 0.55 s
# later for 1 GiB): warm every one up before timing anything.
for u in "${URI[@]}"; do nbdcopy "$u" null: 2>>"$W/errors.log" || true; done

printf '\n%-22s %10s %14s %12s %10s %12s\n' "server/auth" "ours MB/s" "nbdcopy MB/s" "nbdcopy -C1" "ours/nbd" "ours/-C1"
printf '%s\n' "--------------------------------------------------------------------------------------"
for srv in qemu-nbd nbdkit-memory; do
    for m in plain psk x509; do
        u=${URI[$srv/$m]}
        b=$(measure nbdcopy "$u" null:)
        a=$(measure ours "$u")
        c=$(measure nbdcopy --connections=1 "$u" null:)
        r1=$( [ "$a" != FAIL ] && [ "$b" != FAIL ] && echo "scale=2; $a / $b" | bc || echo -)
        r2=$( [ "$a" != FAIL ] && [ "$c" != FAIL ] && echo "scale=2; $a / $c" | bc || echo -)
        printf '%-22s %10s %14s %12s %10s %12s\n' "$srv/$m" "$a" "$b" "$c" "$r1" "$r2"
    done
done
echo
echo "bench: $SIZE per run, best of $RUNS; TLS 1.3 everywhere (PSK: our client offers AES-128-GCM"
echo "first, libnbd's gnutls picks ChaCha20-Poly1305). Targets: plain >= 1.0x nbdcopy,"
echo "PSK >= 1.2x nbdcopy, X.509 >= 1.0x nbdcopy --connections=1."
fi
[ "${BENCH_ONLY:-all}" = nbd ] && exit 0

# ---- sechan-gw: its relay through each security layer against a relay
# with none (SCRAM-SHA-256 in clear, no layer), same run. A guest
# (gwbench client) uploads and downloads GW_MIB MiB through the gateway to a
# backend on a unix socket (gwbench backend). Best of RUNS.
GW=$PWD/build/host/sechan-gw
GB=$PWD/build/host/gwbench
GW_MIB=${BENCH_GW_MIB:-64}
rm -f "$W/gw-creds"
echo "bench-password" | "$GW" adduser "$W/gw-creds" bench --realm sechan 2>/dev/null
"$GB" backend "$W/gw-backend.sock" & pids+=($!)
start_gw() {  # name settings...
    next_port
    { echo "listen tcp:127.0.0.1:$port"; echo "credentials $W/gw-creds"; echo "sasl required"
      echo "route bench unix:$W/gw-backend.sock"; printf '%s\n' "${@:2}"; } > "$W/gw-$1.conf"
    "$GW" serve "$W/gw-$1.conf" >"$W/gw-$1.log" 2>&1 &
    pids+=($!)
    wait_listen "$port"
    GWPORT[$1]=$port
}
declare -A GWPORT
start_gw plain "tls off" "sasl-allow-no-layer yes" "sasl-mechs SCRAM-SHA-256"
start_gw digest "tls off" "sasl-qop auth-int auth-conf"
start_gw tls "tls psk $P/keys.psk"
gw_best() {  # name mode -> "up down" best of RUNS
    local bu=0 bd=0 line u d
    for _ in $(seq "$RUNS"); do
        line=$("$GB" client "${GWPORT[$1]}" "$2" "$GW_MIB" "$P/keys.psk" 2>>"$W/errors.log") || { echo "FAIL FAIL"; return; }
        u=$(echo "$line" | awk '{print $4}'); d=$(echo "$line" | awk '{print $7}')
        bu=$(echo "if ($u > $bu) $u else $bu" | bc -l); bd=$(echo "if ($d > $bd) $d else $bd" | bc -l)
    done
    printf '%.1f %.1f' "$bu" "$bd"
}
read -r pu pd <<<"$(gw_best plain scram)"
printf '\n%-40s %10s %10s %10s %10s\n' "sechan-gw relay, guest <-> backend" "up MB/s" "down MB/s" "up/plain" "down/plain"
printf '%s\n' "----------------------------------------------------------------------------------"
printf '%-40s %10s %10s %10s %10s\n' "plain (SCRAM-SHA-256 in clear, no layer)" "$pu" "$pd" "1.00" "1.00"
for row in "digest:digest-int:DIGEST-MD5 auth-int (HMAC-MD5)" \
           "digest:digest-des:DIGEST-MD5 auth-conf des" \
           "digest:digest-3des:DIGEST-MD5 auth-conf 3des" \
           "tls:tls-psk:TLS 1.3 PSK + SCRAM-SHA-256-PLUS"; do
    IFS=: read -r gw mode label <<<"$row"
    read -r u d <<<"$(gw_best "$gw" "$mode")"
    ru=$( [ "$u" != FAIL ] && echo "scale=2; $u / $pu" | bc || echo -)
    rd=$( [ "$d" != FAIL ] && echo "scale=2; $d / $pd" | bc || echo -)
    printf '%-40s %10s %10s %10s %10s\n' "$label" "$u" "$d" "$ru" "$rd"
done
echo
echo "bench: $GW_MIB MiB each way per run, best of $RUNS; guest, gateway and backend on this host."
