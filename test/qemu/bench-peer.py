#!/usr/bin/env python3
"""Host peer of the firmware bench's echo step (boards/common/fwbench.c).

    bench-peer.py PORT N

Listens on 127.0.0.1:PORT for QEMU's chardev connection, sends the hello
"SCBENCH1" + N (u32 little-endian), waits for the firmware's "G" (it runs
its decrypt step first), then sends N random bytes while reading the echo,
and compares; then waits for "S", sends N more bytes and waits for "D"
(the sink step). Prints "PEER echo|sink ok|FAIL ..." with the rates seen
from here. Every socket operation is bounded by a timeout; exits 0 if both
steps passed.
"""
import os
import socket
import struct
import sys
import threading
import time

TIMEOUT = 120.0


def main():
    port, n = int(sys.argv[1]), int(sys.argv[2])
    data = os.urandom(n)
    lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    lsock.bind(("127.0.0.1", port))
    lsock.listen(1)
    lsock.settimeout(TIMEOUT)
    sock, _ = lsock.accept()
    lsock.close()
    sock.settimeout(TIMEOUT)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.sendall(b"SCBENCH1" + struct.pack("<I", n))
    ready = sock.recv(1)
    if ready != b"G":
        print("PEER echo FAIL expected 'G', got %r" % ready, flush=True)
        return 1

    failure = []

    def send():
        try:
            for i in range(0, n, 4096):
                sock.sendall(data[i:i + 4096])
        except OSError as e:
            failure.append("send: %s" % e)

    t0 = time.perf_counter()
    sender = threading.Thread(target=send, daemon=True)
    sender.start()
    got = bytearray()
    try:
        while len(got) < n:
            chunk = sock.recv(min(65536, n - len(got)))
            if not chunk:
                failure.append("closed after %d of %d bytes" % (len(got), n))
                break
            got += chunk
    except OSError as e:
        failure.append("recv after %d of %d bytes: %s" % (len(got), n, e))
    secs = time.perf_counter() - t0
    sender.join(TIMEOUT)
    if not failure and bytes(got) != data:
        failure.append("echo differs from what was sent")
    if failure:
        print("PEER echo FAIL %s" % "; ".join(failure), flush=True)
        return 1
    print("PEER echo ok bytes=%d s=%.3f Bps=%.0f" % (n, secs, n / max(secs, 1e-9)), flush=True)

    ready = sock.recv(1)
    if ready != b"S":
        print("PEER sink FAIL expected 'S', got %r" % ready, flush=True)
        return 1
    t0 = time.perf_counter()
    for i in range(0, n, 4096):
        sock.sendall(data[i:i + 4096])
    done = sock.recv(1)
    secs = time.perf_counter() - t0
    sock.close()
    if done != b"D":
        print("PEER sink FAIL expected 'D', got %r" % done, flush=True)
        return 1
    print("PEER sink ok bytes=%d s=%.3f Bps=%.0f" % (n, secs, n / max(secs, 1e-9)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
