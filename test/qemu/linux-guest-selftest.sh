#!/usr/bin/env bash
# Self-test of the Linux test guest: scripts/linux-guest.sh (build) and
# scripts/linux-guest-run.sh (boot + run the agent on a virtio-serial port).
#
#   test/qemu/linux-guest-selftest.sh [BUILDDIR]     (default build/qemu/linux)
#
# Builds a small static echo agent, boots it with its port connected to a host-side
# checker over 127.0.0.1 TCP, and checks: a 1 MiB echo round trip (exit 0), that
# agent arguments survive the kernel command line, that a missing port gives 99
# within the bound, and the 124/125 statuses of the run script. Prints the boot
# time (QEMU start to agent start) and the echo throughput, then `N passed, N failed`.
#
# Environment: SELFTEST_ECHO_BYTES (default 1048576), LINUX_GUEST_CACHE (default
# BUILDDIR/cache, shared by all guests built under BUILDDIR).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
build=${1:-$root/build/qemu/linux}
mkdir -p "$build"
build=$(cd "$build" && pwd)
work=$build/selftest
mkdir -p "$work"
export LINUX_GUEST_CACHE=${LINUX_GUEST_CACHE:-$build/cache}
echo_bytes=${SELFTEST_ECHO_BYTES:-1048576}
port_name=org.sechan.agent

# shellcheck source=test/qemu/selftest-lib.sh
. "$root/test/qemu/selftest-lib.sh"

now() { printf '%s\n' "$EPOCHREALTIME"; }
# stamp: prefix each line read with the wall-clock time it arrived at.
stamp() {
    local line
    while IFS= read -r line || [ -n "$line" ]; do
        printf '%s %s\n' "$EPOCHREALTIME" "${line%$'\r'}"
    done
}
# elapsed T0 [T1]: seconds from T0 to T1 (default now), 2 decimals.
elapsed() { awk -v a="$1" -v b="${2:-$(now)}" 'BEGIN { printf "%.2f", b - a }'; }

# ---------------------------------------------------------------------------
# The echo agent: /agent PORT BYTES echoes BYTES bytes (or until EOF if BYTES is 0
# or missing) and exits 0, 3 on an I/O error. /agent PORT --args A B ... prints
# each argument in hex instead, so the test can check them byte for byte.
# ---------------------------------------------------------------------------
cat >"$work/echo-agent.c" <<'EOF'
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int print_args(int argc, char **argv)
{
    for (int i = 3; i < argc; i++) {
        printf("echo-agent-arg%d=", i - 3);
        for (const unsigned char *p = (const unsigned char *)argv[i]; *p; p++)
            printf("%02x", *p);
        printf("\n");
    }
    printf("echo-agent-argc=%d\n", argc - 3);
    return fflush(stdout) == 0 ? 0 : 3;
}

static int write_all(int fd, const unsigned char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

int main(int argc, char **argv)
{
    static unsigned char buf[65536];
    unsigned long long limit = 0, done = 0;
    int fd;

    if (argc < 2) {
        fprintf(stderr, "usage: echo-agent PORT [BYTES | --args ARG...]\n");
        return 3;
    }
    if (argc > 2 && strcmp(argv[2], "--args") == 0)
        return print_args(argc, argv);
    if (argc > 2)
        limit = strtoull(argv[2], NULL, 10);
    fd = open(argv[1], O_RDWR);
    if (fd < 0) {
        perror(argv[1]);
        return 3;
    }
    while (limit == 0 || done < limit) {
        size_t want = sizeof buf;
        ssize_t n;

        if (limit != 0 && limit - done < want)
            want = (size_t)(limit - done);
        n = read(fd, buf, want);
        if (n == 0)
            break;
        if (n < 0) {
            if (errno == EINTR)
                continue;
            perror("echo-agent: read");
            return 3;
        }
        if (write_all(fd, buf, (size_t)n) != 0) {
            perror("echo-agent: write");
            return 3;
        }
        done += (unsigned long long)n;
    }
    fprintf(stderr, "echo-agent: echoed %llu bytes\n", done);
    return limit == 0 || done == limit ? 0 : 3;
}
EOF

# ---------------------------------------------------------------------------
# The host-side checker: listens on 127.0.0.1 (ephemeral port, written to a file
# once listening), accepts QEMU's connection, sends N random bytes while reading
# the echo, and reports timings as key=value. Exit 0 iff the echo is identical.
# ---------------------------------------------------------------------------
cat >"$work/echo-check.py" <<'EOF'
import os, socket, sys, threading, time

port_file, nbytes, limit = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
deadline = time.monotonic() + limit
srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
srv.bind(("127.0.0.1", 0))
srv.listen(1)
with open(port_file + ".tmp", "w") as f:
    f.write("%d\n" % srv.getsockname()[1])
os.rename(port_file + ".tmp", port_file)      # appears complete or not at all
srv.settimeout(limit)
conn, _ = srv.accept()
t_accept = time.time()
conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
conn.settimeout(max(1.0, deadline - time.monotonic()))
data = os.urandom(nbytes)
send_error = []

def sender():
    try:
        conn.sendall(data)
    except OSError as e:
        send_error.append(e)

t = threading.Thread(target=sender, daemon=True)
t.start()
got = bytearray()
t_first = None
error = ""
try:
    while len(got) < nbytes:
        chunk = conn.recv(1 << 20)
        if not chunk:
            error = "EOF after %d bytes" % len(got)
            break
        if t_first is None:
            t_first = time.time()
        got += chunk
except OSError as e:
    error = "%s after %d bytes" % (e, len(got))
t_end = time.time()
t.join(timeout=1)
if send_error and not error:
    error = "send: %s" % send_error[0]
ok = not error and bytes(got) == data
if not error and not ok:
    error = "echoed data differs"
rate = 0.0
if ok and t_first is not None and t_end > t_first:
    rate = nbytes / (t_end - t_first) / (1 << 20)
print("accept=%.6f first=%.6f end=%.6f bytes=%d rate_mib_s=%.1f ok=%d error=%s"
      % (t_accept, t_first or 0.0, t_end, len(got), rate, ok, error.replace(" ", "_") or "-"))
conn.close()
sys.exit(0 if ok else 1)
EOF

# ---------------------------------------------------------------------------
# Build the agent and the guest.
# ---------------------------------------------------------------------------
if ! timeout 120 gcc -static -O2 -Wall -Wextra -o "$work/echo-agent" "$work/echo-agent.c"; then
    fail "compiling the echo agent"
    finish
fi
t0=$(now)
if timeout 900 "$root/scripts/linux-guest.sh" "$work" "$work/echo-agent"; then
    pass "linux-guest.sh built the guest ($(elapsed "$t0") s): $(cat "$work/vmlinux.from")"
else
    fail "linux-guest.sh"
    finish
fi

run=$root/scripts/linux-guest-run.sh
# field KEY FILE: value of KEY=VALUE in the checker's report line.
field() { tr ' ' '\n' <"$2" | sed -n "s/^$1=//p" | head -n1; }

# ---------------------------------------------------------------------------
# 1. Echo round trip through a TCP chardev.
# ---------------------------------------------------------------------------
rm -f "$work/port" "$work/check.out"
timeout 120 python3 "$work/echo-check.py" "$work/port" "$echo_bytes" 100 >"$work/check.out" &
checker=$!
bg_pids+=("$checker")
for _ in $(seq 100); do [ -s "$work/port" ] && break; sleep 0.1; done
if [ ! -s "$work/port" ]; then
    fail "echo checker did not start listening"
else
    tcp=$(cat "$work/port")
    t0=$(now)
    # The console (the run script's stderr) is time-stamped line by line: the
    # agent-start line gives the boot time.
    set +e
    "$run" "$work" "socket,host=127.0.0.1,port=$tcp,server=off,nodelay=on" "$port_name" 120 \
        "$echo_bytes" 2>&1 >/dev/null | stamp >"$work/echo.console"
    rc=${PIPESTATUS[0]}
    set -e
    t_exit=$(now)
    check_rc=0
    wait "$checker" || check_rc=$?
    bg_pids=()    # reaped: its PID must not be killed later
    if [ "$rc" -eq 0 ] && [ "$check_rc" -eq 0 ]; then
        first=$(field first "$work/check.out")
        start_line=$(grep -m1 ' sechan-agent-start ' "$work/echo.console" || true)
        pass "echo $echo_bytes bytes: exit 0, data identical"
        echo "  boot (QEMU start to agent start): $(elapsed "$t0" "${start_line%% *}") s" \
             "(guest uptime then: ${start_line##*uptime=} s; first echoed byte at" \
             "$(elapsed "$t0" "$first") s)"
        echo "  echo throughput: $(field rate_mib_s "$work/check.out") MiB/s" \
             "(from the first echoed byte to the last)"
        echo "  whole run (QEMU start to exit): $(elapsed "$t0" "$t_exit") s"
    else
        fail "echo: run status $rc (want 0), checker status $check_rc: $(cat "$work/check.out")"
        cat "$work/echo.console"
    fi
fi

# ---------------------------------------------------------------------------
# 2. Arguments with awkward bytes reach the agent unchanged.
# ---------------------------------------------------------------------------
args=('a b' '' 'x,y%z' $'tab\there' "q\"u'o" 'back\slash' 'é' $'nl\n' '-1' 'sechan.end=0')
set +e
"$run" "$work" null "$port_name" 60 --args "${args[@]}" 2>"$work/args.console"
rc=$?
set -e
console=$(tr -d '\r' <"$work/args.console")
ok=1
[ "$rc" -eq 0 ] || ok=0
grep -qx "echo-agent-argc=${#args[@]}" <<<"$console" || ok=0
for i in "${!args[@]}"; do
    hex=$(printf '%s' "${args[$i]}" | od -A n -t x1 | tr -d ' \n')
    grep -qx "echo-agent-arg$i=$hex" <<<"$console" || { ok=0; echo "  argument $i wrong (want hex '$hex')"; }
done
if [ "$ok" -eq 1 ]; then
    pass "${#args[@]} agent arguments (spaces, commas, %, quotes, UTF-8, newline, empty) arrive intact"
else
    fail "agent arguments: run status $rc"
    printf '%s\n' "$console"
fi

# ---------------------------------------------------------------------------
# 3. A port name that does not exist: /init gives up after 10 s with 99.
# ---------------------------------------------------------------------------
t0=$(now)
set +e
LINUX_GUEST_APPEND="sechan.port=org.sechan.no-such-port" \
    "$run" "$work" null "$port_name" 60 "$echo_bytes" 2>"$work/noport.console"
rc=$?
set -e
secs=$(elapsed "$t0")
if [ "$rc" -eq 99 ] && awk -v s="$secs" 'BEGIN { exit !(s < 30) }'; then
    pass "missing port: exit 99 after $secs s"
else
    fail "missing port: run status $rc after $secs s (want 99 within 30 s)"
    cat "$work/noport.console"
fi

# ---------------------------------------------------------------------------
# 4. The run script's own statuses: 124 when the VM outlives TIMEOUT_S (the guest
#    cannot even boot in 1 s), 125 when no status line comes (QEMU cannot connect
#    its chardev: nothing listens on that port, so QEMU exits at once).
# ---------------------------------------------------------------------------
set +e
"$run" "$work" null "$port_name" 1 "$echo_bytes" 2>"$work/timeout.console"
rc=$?
set -e
if [ "$rc" -eq 124 ]; then pass "timeout: exit 124"; else fail "timeout: run status $rc (want 124)"; fi

# An ephemeral port that was free a moment ago; a race with another program
# taking it would show as a failure here, not a hang (QEMU is bounded).
free_port=$(timeout 10 python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
set +e
"$run" "$work" "socket,host=127.0.0.1,port=$free_port,server=off" "$port_name" 30 \
    2>"$work/refused.console"
rc=$?
set -e
if [ "$rc" -eq 125 ]; then
    pass "QEMU cannot connect: exit 125"
else
    fail "QEMU cannot connect: run status $rc (want 125)"
    cat "$work/refused.console"
fi

finish
