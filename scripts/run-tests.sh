#!/usr/bin/env bash
# run-tests.sh BIN...: run each test program with a time limit, show its own
# output (cmocka's summary), and end with one "N passed, N failed" line for
# the suites. Exit non-zero if any suite failed or if none ran.
set -u
limit=${SECHAN_SUITE_TIMEOUT:-600}

# Suites that start real peers run in a network namespace of their own
# when we may make one: some peers (gnutls-serv) listen on every address,
# and there the only address is the namespace's own loopback.
netns=()
if [ "${SECHAN_NO_NETNS:-}" = "" ] && unshare -n sh -c 'ip link set lo up' 2>/dev/null; then
    netns=(unshare -n sh -c 'ip link set lo up && exec "$@"' sechan-netns)
fi
[ ${#netns[@]} -gt 0 ] || echo "run-tests: no private network namespace here; peers use the host's loopback"
passed=0
failed=0
failed_names=()
for bin in "$@"; do
    name=$(basename "$bin")
    echo "=== $name"
    start=$(date +%s)
    case "$name" in
        test_interop_*|test_qemu_*) timeout --kill-after=10 "$limit" "${netns[@]}" "$bin" ;;
        *) timeout --kill-after=10 "$limit" "$bin" ;;
    esac
    rc=$?
    secs=$(( $(date +%s) - start ))
    if [ $rc -eq 0 ]; then
        passed=$((passed + 1))
        echo "=== $name: ok (${secs}s)"
    else
        failed=$((failed + 1))
        failed_names+=("$name")
        [ $rc -eq 124 ] && echo "=== $name: TIMED OUT after ${limit}s"
        echo "=== $name: FAILED (exit $rc, ${secs}s)"
    fi
done
if [ ${#failed_names[@]} -gt 0 ]; then
    echo "failed suites: ${failed_names[*]}"
fi
echo "suites: $passed passed, $failed failed"
[ $failed -eq 0 ] && [ $passed -gt 0 ]
