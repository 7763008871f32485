#!/usr/bin/env bash
# run-smoke.sh OUT SECONDS MAX_LEN TARGET...: run each libFuzzer target in
# OUT for SECONDS on a fresh copy of its seed corpus (OUT/corpus-TARGET, so
# the tree is not modified), print libFuzzer's final stats and one summary
# line per target, then "fuzz-smoke: N passed, N failed". Exits non-zero
# when any target crashed, leaked, timed out or broke an invariant; the
# reproducer is left in OUT/artifacts-TARGET/.
set -u
out=$1 secs=$2 maxlen=$3
shift 3
passed=0 failed=0
summary=()
for t in "$@"; do
    corpus=$out/corpus-$t art=$out/artifacts-$t log=$out/$t.log
    rm -rf "$corpus" "$art"
    mkdir -p "$corpus" "$art"
    if [ -d "test/fuzz/corpus/$t" ]; then
        cp test/fuzz/corpus/"$t"/* "$corpus"/
    fi
    echo "fuzz-smoke: $t: ${secs}s on $(ls "$corpus" | wc -l) seed(s), log in $log"
    "$out/$t" -max_total_time="$secs" -max_len="$maxlen" -timeout=10 -rss_limit_mb=2048 \
        -print_final_stats=1 -artifact_prefix="$art/" "$corpus" >"$log" 2>&1
    rc=$?
    done_line=$(grep -E '^#[0-9]+[[:space:]]+DONE' "$log" | tail -n1)
    grep -E '^stat::' "$log" | sed 's/^/    /'
    [ -n "$done_line" ] && echo "    $done_line"
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n1)
    eps=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -n1)
    cov=$(echo "$done_line" | grep -oE 'cov: [0-9]+ ft: [0-9]+' || true)
    artifacts=$(ls "$art" 2>/dev/null | wc -l)
    if [ "$rc" -eq 0 ] && [ "$artifacts" -eq 0 ]; then
        passed=$((passed + 1))
        summary+=("fuzz-smoke: $t: OK (${runs:-?} runs, ${eps:-?} exec/s, ${cov:-cov: ?})")
    else
        failed=$((failed + 1))
        echo "---- $t: last lines of $log ----"
        tail -n 40 "$log"
        echo "----"
        summary+=("fuzz-smoke: $t: FAILED (exit $rc; reproducer: $(ls -d "$art"/* 2>/dev/null | tr '\n' ' '))")
    fi
done
printf '%s\n' "${summary[@]}"
echo "fuzz-smoke: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
