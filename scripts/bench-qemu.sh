#!/usr/bin/env bash
# make bench-qemu: the firmware's throughput under QEMU, per board and
# transport, in one run. Each case boots the bench image
# (boards/common/fwbench.c) twice through scripts/run-board.sh:
#   1. against test/qemu/bench-peer.py: the firmware's own record decrypt
#      rate (no I/O), then the link's raw rate as an echo (both ways at
#      once) and as a sink (host to firmware only, the direction of reads);
#   2. against qemu-nbd, then nbdkit, with TLS (PSK): NBD reads, one in
#      flight (over the first MiB) and four in flight (the whole export as
#      one stream that stops up to 32 times for 60 ms of the decrypt step,
#      so the NBD rate is set against the CPU of the same seconds), with
#      the time the firmware spent waiting on the link, in the transport's
#      read and write calls and in Mbed TLS's record decryptions counted
#      apart.
# All rates come from the firmware's own clock; each figure is the median of
# BENCH_QEMU_RUNS runs. Prints one table with the NBD-over-TLS rate against
# the lesser of echo and decrypt (the target is 90 %) and against decrypt and
# sink in series, and where the NBD time went. Exits non-zero if a run
# failed; the figures themselves are reported, not asserted.
#
#   BENCH_QEMU_CASES="mps2-an385/uart ..."   a subset of the cases
#   BENCH_QEMU_RUNS=N                        runs per case, median shown (3)
set -euo pipefail
cd "$(dirname "$0")/.."
W=build/bench-qemu
mkdir -p "$W"
fwdisk=build/host/test/fwdisk
RUNS=${BENCH_QEMU_RUNS:-3}
cases=${BENCH_QEMU_CASES:-"mps2-an385/uart riscv-virt/uart riscv-virt/virtio linux-agent/virtio"}

# Bytes moved per case: the UARTs carry tens of KiB/s, virtio tens of MiB/s.
bytes_for() {
    case "$1" in */uart) echo 65536 ;; *) echo 16777216 ;; esac
}

# field NAME LINE: the value of NAME=... in LINE
field() { sed -n "s/.* $1=\([^ ]*\).*/\1/p" <<<"$2"; }
rate() { awk -v b="$1" 'BEGIN { if (b >= 1048576) printf "%.2f MiB/s", b / 1048576; else printf "%.1f KiB/s", b / 1024 }'; }
command -v nbdkit >/dev/null || { echo "bench-qemu: nbdkit is not installed" >&2; exit 1; }

failed=0
rows=()
# add NAME VALUE: one run's figure; median NAME: the middle one of the runs
declare -A vals
add() { vals[$1]="${vals[$1]:-} $2"; }
median() { tr ' ' '\n' <<<"${vals[$1]}" | grep . | sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
for c in $cases; do
    board=${c%/*} transport=${c#*/}
    n=$(bytes_for "$c")
    tag=$board-$transport
    rm -f "$W/$tag".*
    "$fwdisk" make "$W/$tag.img" "$n"
    vals=()
    ok=1
    for run in $(seq "$RUNS"); do
        echo "bench-qemu: $c run $run/$RUNS: decrypt, echo and sink of $n bytes"
        log=$W/$tag.$run.link.log
        if ! RUN_BOARD_IMAGE=bench RUN_BOARD_PEER=echo:$n \
                scripts/run-board.sh "$board" psk "$transport" - "$log" "" 180 >/dev/null 2>&1 \
                || [ "$(grep -c ' ok ' "$log.peer" 2>/dev/null)" != 2 ]; then
            echo "bench-qemu: FAIL $c link run; firmware and peer said:" >&2
            cat "$log" "$log.peer" >&2 2>/dev/null || true
            ok=0
            break
        fi
        for server in qemu-nbd nbdkit; do
            echo "bench-qemu: $c run $run/$RUNS: NBD over TLS read of $n bytes from $server"
            nlog=$W/$tag.$run.$server.log
            peer=nbd
            [ "$server" = qemu-nbd ] || peer=nbdkit
            if ! RUN_BOARD_IMAGE=bench RUN_BOARD_PEER=$peer scripts/run-board.sh "$board" psk \
                    "$transport" "$W/$tag.img" "$nlog" "" 180 >/dev/null 2>&1; then
                echo "bench-qemu: FAIL $c NBD run against $server; firmware said:" >&2
                cat "$nlog" "$nlog.nbd" >&2 2>/dev/null || true
                ok=0
                break 2
            fi
        done
        dec=$(grep -a 'sechan-bench: .* decrypt ' "$log" | tr -d '\r')
        echo_l=$(grep -a 'sechan-bench: .* echo ' "$log" | tr -d '\r')
        sink=$(grep -a 'sechan-bench: .* sink ' "$log" | tr -d '\r')
        nbd=$(grep -a 'sechan-bench: .* nbd-read ' "$W/$tag.$run.qemu-nbd.log" | tr -d '\r')
        kit=$(grep -a 'sechan-bench: .* nbd-read ' "$W/$tag.$run.nbdkit.log" | tr -d '\r')
        if [ -z "$dec" ] || [ -z "$echo_l" ] || [ -z "$sink" ] || [ -z "$nbd" ] || [ -z "$kit" ]; then
            echo "bench-qemu: FAIL $c: a result line is missing (see $W/$tag.*)" >&2
            ok=0
            break
        fi
        pdec=$(grep -a 'sechan-bench: .* decrypt ' "$W/$tag.$run.qemu-nbd.log" | tr -d '\r')
        add dec "$(field Bps "$dec")"
        add pdec "$(field Bps "$pdec")"
        add echo "$(field Bps "$echo_l")"
        add sink "$(field Bps "$sink")"
        add nbd1 "$(field Bps1 "$nbd")"
        add nbd2 "$(field Bps2 "$nbd")"
        add kit1 "$(field Bps1 "$kit")"
        add kit2 "$(field Bps2 "$kit")"
        # this run's ratio: NBD x4 against its own decrypt rate and this run's link
        b=$(field Bps "$pdec") e=$(field Bps "$echo_l") k=$(field Bps "$sink")
        add ratio "$(( 1000 * $(field Bps2 "$nbd") / (b < e ? b : e) ))"
        # and against decryption and the sink in series: one CPU doing both
        add sratio "$(awk -v n="$(field Bps2 "$nbd")" -v b="$b" -v k="$k" \
            'BEGIN { printf "%d", 1000 * n * (1 / b + 1 / k) }')"
        for f in ms2 wait-ms2 bytes2 bytes1 wire-bytes1 record-us2 read-us2 write-us2 reads2; do
            add "$f" "$(field "$f" "$nbd")"
        done
        # the decrypt step's time per ciphertext byte against the record
        # layer's during the reads (x1000; above 1000: slower in the reads)
        step=$(awk -v us="$(field call-us "$pdec")" -v n="$(field records "$pdec")" \
            -v rec="$(field record "$pdec")" 'BEGIN { print us / (n * (rec + 16)) }')
        add slower "$(awk -v us="$(field record-us2 "$nbd")" -v b="$(field record-bytes2 "$nbd")" \
            -v step="$step" 'BEGIN { printf "%d", 1000 * us / b / step }')"
        records=$(field records "$nbd") chunk=$(field chunk "$nbd")
    done
    if [ "$ok" = 0 ]; then
        failed=$((failed + 1))
        continue
    fi
    row="$c"
    for f in pdec echo sink nbd1 nbd2 kit1 kit2 ratio sratio ms2 wait-ms2 bytes2 bytes1 wire-bytes1 \
            record-us2 read-us2 write-us2 reads2 slower; do
        row+="|$(median "$f")"
    done
    rows+=("$row|$records|$chunk")
done

echo
echo "Firmware throughput under QEMU, median of $RUNS runs (TLS 1.3 PSK, AES-128-GCM; the firmware's clock)"
printf '%-19s %11s %11s %11s | %11s %11s | %11s %11s | %6s %7s\n' "" "" "" "" \
    "qemu-nbd" "qemu-nbd" "nbdkit" "nbdkit" "" ""
printf '%-19s %11s %11s %11s | %11s %11s | %11s %11s | %6s %7s\n' "board/link" "decrypt" "echo" \
    "sink" "x1" "x4" "x1" "x4" "target" "serial"
for r in "${rows[@]}"; do
    IFS='|' read -r c dec echo_b sink_b nbd1 nbd2 kit1 kit2 ratio sratio ms wait bytes b1 wire1 \
        rus readus writeus reads slower recs chunk <<<"$r"
    pct=$(awk -v r="$ratio" 'BEGIN { printf "%.0f%%", r / 10 }')
    spct=$(awk -v r="$sratio" 'BEGIN { printf "%.0f%%", r / 10 }')
    printf '%-19s %11s %11s %11s | %11s %11s | %11s %11s | %6s %7s\n' "$c" "$(rate "$dec")" \
        "$(rate "$echo_b")" "$(rate "$sink_b")" "$(rate "$nbd1")" "$(rate "$nbd2")" \
        "$(rate "$kit1")" "$(rate "$kit2")" "$pct" "$spct"
done
echo "decrypt: AES-128-GCM records of the size the firmware accepts, decrypted and copied out, no I/O"
echo "  (in the same boot as the qemu-nbd reads, in spells of 60 ms among them)"
echo "echo: bytes each way per second, both at once; sink: host to firmware only"
echo "x1: NBD over TLS, one read in flight; x4: four (the engine's window); a read is the"
echo "  largest power of two up to 256 KiB that the export holds 64 times, at least 16 KiB"
echo "target: qemu-nbd x4 / min(decrypt, echo) per run, median; goal >= 90%"
echo "serial: qemu-nbd x4 against 1 / (1/decrypt + 1/sink), the rate if one CPU did the"
echo "  decryption and the link's reading one after the other (on virtio the same vCPU does both)"
echo
echo "Where the qemu-nbd x4 time went (medians, the firmware's clock)"
printf '%-19s %8s %13s %13s %13s %13s %13s %9s %9s %9s\n' "board/link" "time" "decrypt" \
    "link wait" "link reads" "link writes" "other CPU" "decrypt+" "read" "wire/data"
for r in "${rows[@]}"; do
    IFS='|' read -r c dec echo_b sink_b nbd1 nbd2 kit1 kit2 ratio sratio ms wait bytes b1 wire1 \
        rus readus writeus reads slower recs chunk <<<"$r"
    awk -v c="$c" -v ms="$ms" -v wait="$wait" -v b1="$b1" -v wire="$wire1" -v rus="$rus" \
            -v readus="$readus" -v writeus="$writeus" -v slower="$slower" \
            -v chunk="$chunk" 'BEGIN {
        d = rus / 1000; rd = readus / 1000; wr = writeus / 1000
        o = ms - wait - d - rd - wr; if (o < 0) o = 0
        printf "%-19s %5d ms %6d ms %3.0f%% %6d ms %3.0f%% %6d ms %3.0f%% %6d ms %3.0f%% %6d ms %3.0f%% %8.0f%% %6d KiB %9.3f\n",
            c, ms, d, 100 * d / ms, wait, 100 * wait / ms, rd, 100 * rd / ms, wr, 100 * wr / ms,
            o, 100 * o / ms, slower / 10, chunk / 1024, wire / b1 }'
done
echo "decrypt: inside Mbed TLS's record decryptions (timed per call); link wait: blocked on the"
echo "transport; link reads/writes: inside the transport's read and write calls (copies, system"
echo "calls, ring work); other CPU: the rest (record and NBD framing, the engine, the checks);"
echo "decrypt+: a record decryption's time per byte during the reads against the decrypt step's;"
echo "read: bytes per NBD request; wire/data: link bytes per byte read (TLS and NBD framing)"
echo
echo "bench-qemu: ${#rows[@]} passed, $failed failed"
[ "$failed" -eq 0 ]
