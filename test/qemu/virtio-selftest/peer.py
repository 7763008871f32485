#!/usr/bin/env python3
"""Host peer of the virtio-selftest firmware (see main.c for the protocol).

    peer.py PORTFILE [SINK_BYTES GEN_BYTES ECHO_BYTES]

Listens on 127.0.0.1 (an ephemeral port, written to PORTFILE once listening),
accepts QEMU's chardev connection, then runs: hello (sent at once, answered
when the firmware is up), sink (host -> firmware), generate
(firmware -> host), echo (random bytes, both ways at once), and closes the
connection so that the firmware sees end-of-stream. Prints one "PEER <step>
ok|FAIL ..." line per step and "PEER-RATE ..." lines; exits 0 if all passed.
Every socket operation is bounded by a timeout.
"""
import os
import socket
import struct
import sys
import threading
import time

STEP_TIMEOUT = 60.0


def fnv1a32(data):
    h = 2166136261
    for b in data:
        h = ((h ^ b) * 16777619) & 0xFFFFFFFF
    return h


def pattern(n):
    return bytes(((i * 2654435761) & 0xFFFFFFFF) >> 24 for i in range(n))


def recv_exact(sock, n):
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(min(65536, n - len(buf)))
        if not chunk:
            raise EOFError("connection closed after %d of %d bytes" % (len(buf), n))
        buf += chunk
    return bytes(buf)


def rate(nbytes, seconds):
    return "%d bytes in %.3f s = %.0f KiB/s" % (nbytes, seconds, nbytes / 1024 / max(seconds, 1e-9))


def main():
    portfile = sys.argv[1]
    sink_n, gen_n, echo_n = (int(x) for x in (sys.argv[2:5] or (1 << 20, 1 << 20, 256 << 10)))
    results = []

    def report(step, ok, detail):
        results.append(ok)
        print("PEER %s %s %s" % (step, "ok" if ok else "FAIL", detail), flush=True)

    lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    lsock.bind(("127.0.0.1", 0))
    lsock.listen(1)
    lsock.settimeout(STEP_TIMEOUT)
    tmp = portfile + ".tmp"
    with open(tmp, "w") as f:
        f.write("%d\n" % lsock.getsockname()[1])
    os.rename(tmp, portfile)

    sock, _ = lsock.accept()
    lsock.close()
    sock.settimeout(STEP_TIMEOUT)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        # hello at once, before the firmware has opened the port (an NBD
        # server's greeting comes this way); the answer says it is ready
        t0 = time.perf_counter()
        sock.sendall(b"VTH\0" + struct.pack("<I", 0))
        reply = recv_exact(sock, 8)
        report("hello", reply == b"VTh\0\0\0\0\0", "answered %.3f s after connect" % (time.perf_counter() - t0))

        # sink: host -> firmware
        data = os.urandom(sink_n)
        want = fnv1a32(data)
        t0 = time.perf_counter()
        sock.sendall(b"VTS\0" + struct.pack("<I", sink_n) + data)
        reply = recv_exact(sock, 8)
        dt = time.perf_counter() - t0
        got = struct.unpack("<I", reply[4:])[0]
        ok = reply[:4] == b"VTs\0" and got == want
        report("sink", ok, "fnv %08x (want %08x)" % (got, want))
        print("PEER-RATE host-to-fw " + rate(sink_n, dt), flush=True)

        # generate: firmware -> host
        t0 = time.perf_counter()
        sock.sendall(b"VTG\0" + struct.pack("<I", gen_n))
        got = recv_exact(sock, gen_n)
        dt = time.perf_counter() - t0
        report("generate", got == pattern(gen_n), "%d bytes" % gen_n)
        print("PEER-RATE fw-to-host " + rate(gen_n, dt), flush=True)

        # echo: both ways at once (a sender thread, so neither side stalls)
        data = os.urandom(echo_n)
        sock.sendall(b"VTE\0" + struct.pack("<I", echo_n))
        send_error = []

        def sender():
            try:
                sock.sendall(data)
            except OSError as exc:
                send_error.append(exc)

        t0 = time.perf_counter()
        th = threading.Thread(target=sender, daemon=True)
        th.start()
        got = recv_exact(sock, echo_n)
        dt = time.perf_counter() - t0
        th.join(STEP_TIMEOUT)
        ok = got == data and not send_error and not th.is_alive()
        first_bad = next((i for i in range(echo_n) if got[i] != data[i]), -1) if got != data else -1
        report("echo", ok, "%d bytes back%s" % (len(got), "" if first_bad < 0 else ", first difference at %d" % first_bad))
        print("PEER-RATE echo " + rate(echo_n, dt) + " each way", flush=True)
    except (OSError, EOFError) as exc:
        report("io", False, repr(exc))
    finally:
        sock.close()
    return 0 if results and all(results) else 1


if __name__ == "__main__":
    sys.exit(main())
