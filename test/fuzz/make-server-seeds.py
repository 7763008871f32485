#!/usr/bin/env python3
"""Seed corpus for fuzz_nbd_server: whole client sessions, byte 0 = mode
(TLS policy = mode % 3, read-only = mode & 4), byte 1 = slicing seed (0 =
whole items). Run from the top of the tree; the output is committed."""
import os
import struct

OUT = "test/fuzz/corpus/fuzz_nbd_server"
IHAVEOPT = 0x49484156454F5054


def opt(num, data=b""):
    return struct.pack(">QII", IHAVEOPT, num, len(data)) + data


def go(name=b"", infos=(3, 2)):
    return struct.pack(">I", len(name)) + name + struct.pack(">H", len(infos)) + b"".join(
        struct.pack(">H", i) for i in infos)


def meta(name=b"", queries=(b"base:allocation",)):
    body = struct.pack(">I", len(name)) + name + struct.pack(">I", len(queries))
    return body + b"".join(struct.pack(">I", len(q)) + q for q in queries)


def req(cmd, off, length, cookie, flags=0, payload=b""):
    return struct.pack(">IHHQQI", 0x25609513, flags, cmd, cookie, off, length) + payload


flags = struct.pack(">I", 3)
io = (req(1, 4096, 512, 2, 1, b"w" * 512) + req(0, 0, 8192, 1) + req(3, 0, 0, 3) +
      req(4, 8192, 4096, 4) + req(6, 16384, 4096, 5, 2) + req(5, 0, 4096, 6) +
      req(7, 0, 65536, 7, 8) + req(0, 262144 - 4096, 8192, 8) + req(2, 0, 0, 9))
sessions = {
    "plain-go": bytes([0, 0]) + flags + opt(8) + opt(10, meta()) + opt(7, go()) + io,
    "plain-list-info": bytes([0, 0]) + flags + opt(3) + opt(6, go(b"second")) + opt(9, meta(b"", (b"base:",))) + opt(2),
    "export-name": bytes([0, 0]) + struct.pack(">I", 1) + opt(1, b"second") + io,
    "starttls-go": bytes([2, 0]) + flags + opt(3) + opt(5) + opt(8) + opt(10, meta()) + opt(7, go()) + io,
    "optional-tls": bytes([1, 0]) + flags + opt(8) + opt(5) + opt(5) + opt(7, go()) + io,
    "readonly-writes": bytes([4, 0]) + flags + opt(7, go()) + io,
    "big-option": bytes([0, 0]) + flags + opt(7, b"\0" * 9000) + opt(7, go(b"x" * 4096)) + opt(7, go()) + io,
    "sliced": bytes([0, 77]) + flags + opt(8) + opt(7, go()) + io,
}
os.makedirs(OUT, exist_ok=True)
for name, data in sessions.items():
    with open(os.path.join(OUT, name), "wb") as f:
        f.write(data)
print(f"{len(sessions)} seeds in {OUT}")
