#!/usr/bin/env bash
# run-smoke.sh OUT SECONDS MAX_LEN TARGET[:SECONDS]...: run each libFuzzer
# target in OUT for its SECONDS (default: the second argument) on a fresh
# copy of its seed corpus (OUT/corpus-TARGET, so the tree is not modified),
# FUZZ_JOBS (default 1) at a time. Prints libFuzzer's final stats per
# target, one summary line per target, then "fuzz-smoke: N passed, N
# failed in Ss". Exits non-zero when any target crashed, leaked, timed out
# or broke an invariant; the reproducer is left in OUT/artifacts-TARGET/.
set -u
out=$1 default_secs=$2 maxlen=$3
shift 3
jobs=${FUZZ_JOBS:-1}
started=$(date +%s)

# One target; everything it has to say goes to OUT/TARGET.report, its
# summary line to OUT/TARGET.summary, and its verdict to OUT/TARGET.verdict.
run_one() {
    local t=$1 secs=$2
    local corpus=$out/corpus-$t art=$out/artifacts-$t log=$out/$t.log report=$out/$t.report
    "$out/$t" -max_total_time="$secs" -max_len="$maxlen" -timeout=10 -rss_limit_mb=2048 \
        -print_final_stats=1 -artifact_prefix="$art/" "$corpus" >"$log" 2>&1
    local rc=$?
    local done_line runs eps cov artifacts
    done_line=$(grep -E '^#[0-9]+[[:space:]]+DONE' "$log" | tail -n1)
    {
        grep -E '^stat::' "$log" | sed 's/^/    /'
        [ -n "$done_line" ] && echo "    $done_line"
    } >"$report"
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n1)
    eps=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -n1)
    cov=$(echo "$done_line" | grep -oE 'cov: [0-9]+ ft: [0-9]+' || true)
    artifacts=$(ls "$art" 2>/dev/null | wc -l)
    if [ "$rc" -eq 0 ] && [ "$artifacts" -eq 0 ]; then
        echo pass >"$out/$t.verdict"
        echo "fuzz-smoke: $t: OK (${secs}s, ${runs:-?} runs, ${eps:-?} exec/s, ${cov:-cov: ?})" \
            >"$out/$t.summary"
    else
        echo fail >"$out/$t.verdict"
        {
            echo "---- $t: last lines of $log ----"
            tail -n 40 "$log"
            echo "----"
        } >>"$report"
        local repro
        repro=$(ls -d "$art"/* 2>/dev/null | tr '\n' ' ')
        echo "fuzz-smoke: $t: FAILED (exit $rc; reproducer: $repro)" >"$out/$t.summary"
    fi
}

names=()
running=0
for spec in "$@"; do
    t=${spec%%:*}
    secs=$default_secs
    [ "$t" != "$spec" ] && secs=${spec#*:}
    names+=("$t")
    corpus=$out/corpus-$t art=$out/artifacts-$t
    rm -rf "$corpus" "$art" "$out/$t.report" "$out/$t.summary" "$out/$t.verdict"
    mkdir -p "$corpus" "$art"
    if [ -d "test/fuzz/corpus/$t" ]; then
        cp test/fuzz/corpus/"$t"/* "$corpus"/
    fi
    echo "fuzz-smoke: $t: ${secs}s on $(ls "$corpus" | wc -l) seed(s), log in $out/$t.log"
    if [ "$running" -ge "$jobs" ]; then
        wait -n
        running=$((running - 1))
    fi
    run_one "$t" "$secs" &
    running=$((running + 1))
done
wait

passed=0 failed=0
for t in "${names[@]}"; do
    echo "fuzz-smoke: $t:"
    cat "$out/$t.report" 2>/dev/null
done
for t in "${names[@]}"; do
    cat "$out/$t.summary" 2>/dev/null || echo "fuzz-smoke: $t: FAILED (no result)"
    if [ "$(cat "$out/$t.verdict" 2>/dev/null)" = pass ]; then
        passed=$((passed + 1))
    else
        failed=$((failed + 1))
    fi
done
echo "fuzz-smoke: $passed passed, $failed failed in $(($(date +%s) - started))s (FUZZ_JOBS=$jobs)"
[ "$failed" -eq 0 ]
