# Sourced by the QEMU self-test scripts: counting checks, the final
# "N passed, N failed" line, and ending the background processes a script
# started (by PID, when it leaves for any reason).

passed=0 failed=0
pass() { passed=$((passed + 1)); echo "PASS: $*"; }
fail() { failed=$((failed + 1)); echo "FAIL: $*"; }
finish() {
    echo "$passed passed, $failed failed"
    [ "$failed" -eq 0 ] && exit 0
    exit 1
}

# Processes started in the background; scripts append their PIDs.
bg_pids=()
# shellcheck disable=SC2317  # called from the EXIT trap
cleanup() {
    local p
    for p in "${bg_pids[@]+"${bg_pids[@]}"}"; do kill "$p" 2>/dev/null || true; done
}
trap cleanup EXIT
