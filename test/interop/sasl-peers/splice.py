#!/usr/bin/env python3
"""Test-only: splice two SASL peers together over unix sockets.

Run mode: start a server and a client peer, each told `--unix PATH` of its
own listening socket, accept both, and copy bytes between them until both
sides close. Prints each peer's output and exit code; exits 0 when both exit
codes are as expected.

    splice.py [--timeout S] [--dump N] [--expect-server RC] [--expect-client RC] \
        --server 'build/host/test/sasl-peer-cyrus --role server ...' \
        --client 'build/host/test/sasl-peer-gsasl --role client ...'

Listen mode: only the splice, for peers started elsewhere.

    splice.py --listen A.sock B.sock [--timeout S] [--dump N]

Feed mode: play a scripted peer against one real peer, for hostile input.
Writes the bytes of HEX (whitespace ignored) to the peer, then prints what
the peer sent back (escaped) and its exit code, checked against --expect-*.

    splice.py --feed '01 0101' --client 'build/host/test/sasl-peer-cyrus --role client ...' \
        --expect-client 4

--dump N prints the first N bytes of each direction, escaped, as they pass.
Every wait is bounded by --timeout (default 60 s); on expiry the peers this
script started are killed and it exits 3.
"""
import argparse
import os
import select
import shlex
import socket
import subprocess
import sys
import tempfile
import time


def escape(data):
    out = []
    for b in data:
        if 0x20 <= b < 0x7f and b != 0x5c:
            out.append(chr(b))
        else:
            out.append('\\x%02x' % b)
    return ''.join(out)


def listener(path):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(path)
    s.listen(1)
    return s


def accept_both(listeners, procs, deadline):
    """Accept one connection per listener; stop waiting for a peer that exited."""
    conns = [None, None]
    while None in conns:
        left = deadline - time.monotonic()
        if left <= 0:
            return conns, 'timeout while waiting for the peers to connect'
        waiting = [i for i in (0, 1) if conns[i] is None]
        for i in waiting:
            if procs and procs[i].poll() is not None:
                return conns, 'peer %d exited before connecting' % i
        r, _, _ = select.select([listeners[i] for i in waiting], [], [], min(left, 0.2))
        for i in waiting:
            if listeners[i] in r:
                conns[i], _ = listeners[i].accept()
    return conns, None


def splice(a, b, deadline, dump):
    """Copy a<->b until both directions reached EOF and drained."""
    socks = [a, b]
    for s in socks:
        s.setblocking(False)
    pending = [bytearray(), bytearray()]  # pending[i]: bytes to write to socks[1 - i]
    eof = [False, False]
    shut = [False, False]
    dumped = [0, 0]
    total = [0, 0]
    while True:
        for i in (0, 1):
            if eof[i] and not pending[i] and not shut[i]:
                try:
                    socks[1 - i].shutdown(socket.SHUT_WR)
                except OSError:
                    pass
                shut[i] = True
        if shut[0] and shut[1]:
            return total, None
        left = deadline - time.monotonic()
        if left <= 0:
            return total, 'timeout while splicing'
        rl = [socks[i] for i in (0, 1) if not eof[i] and len(pending[i]) < (1 << 20)]
        wl = [socks[1 - i] for i in (0, 1) if pending[i]]
        r, w, _ = select.select(rl, wl, [], min(left, 0.5))
        for i in (0, 1):
            if socks[i] in r:
                try:
                    data = socks[i].recv(65536)
                except (ConnectionResetError, BrokenPipeError):
                    data = b''
                if not data:
                    eof[i] = True
                else:
                    if dump and dumped[i] < dump:
                        part = data[:dump - dumped[i]]
                        print('splice: %s %d: %s' % (
                            'server->client' if i == 0 else 'client->server',
                            len(part), escape(part)), flush=True)
                        dumped[i] += len(part)
                    total[i] += len(data)
                    pending[i] += data
            if socks[1 - i] in w and pending[i]:
                try:
                    n = socks[1 - i].send(pending[i])
                    del pending[i][:n]
                except (ConnectionResetError, BrokenPipeError):
                    pending[i].clear()
                    eof[i] = True


def run(args):
    tmp = tempfile.mkdtemp(prefix='sasl-splice-')
    paths = [os.path.join(tmp, 'server.sock'), os.path.join(tmp, 'client.sock')]
    deadline = time.monotonic() + args.timeout
    procs = []
    outputs = []
    try:
        listeners = [listener(p) for p in paths]
        for cmd, path in ((args.server, paths[0]), (args.client, paths[1])):
            argv = shlex.split(cmd) + ['--unix', path]
            # Files, not pipes: a chatty peer (--trace) must not block on a full pipe.
            out = tempfile.TemporaryFile()
            errout = tempfile.TemporaryFile()
            outputs.append((out, errout))
            procs.append(subprocess.Popen(argv, stdout=out, stderr=errout))
        conns, err = accept_both(listeners, procs, deadline)
        total = [0, 0]
        if err is None:
            total, err = splice(conns[0], conns[1], deadline, args.dump)
        for c in conns:
            if c is not None:
                c.close()
        results = []
        for p, (out, errout) in zip(procs, outputs):
            left = max(0.1, deadline - time.monotonic())
            try:
                p.wait(timeout=left)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(timeout=10)
                err = err or 'timeout while waiting for the peers to exit'
            out.seek(0)
            errout.seek(0)
            results.append((p.returncode, out.read().decode(errors='replace'),
                            errout.read().decode(errors='replace')))
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait(timeout=10)
        for p in paths:
            if os.path.exists(p):
                os.unlink(p)
        os.rmdir(tmp)

    ok = err is None
    for name, (rc, out, errout), want in (('server', results[0], args.expect_server),
                                          ('client', results[1], args.expect_client)):
        for line in out.splitlines():
            print('%s: %s' % (name, line))
        for line in errout.splitlines():
            print('%s(stderr): %s' % (name, line))
        print('%s: exit %d (want %d)' % (name, rc, want))
        ok = ok and rc == want
    print('splice: %d bytes server->client, %d bytes client->server%s' % (
        total[0], total[1], '' if err is None else '; ' + err))
    print('PASS' if ok else 'FAIL')
    return 0 if ok else (3 if err and 'timeout' in err else 1)


def feed(args):
    name = 'client' if args.client else 'server'
    cmd = args.client or args.server
    want = args.expect_client if args.client else args.expect_server
    data = bytes.fromhex(''.join(args.feed.split()))
    tmp = tempfile.mkdtemp(prefix='sasl-feed-')
    path = os.path.join(tmp, 'peer.sock')
    deadline = time.monotonic() + args.timeout
    out = tempfile.TemporaryFile()
    errout = tempfile.TemporaryFile()
    proc = None
    received = bytearray()
    err = None
    try:
        lst = listener(path)
        proc = subprocess.Popen(shlex.split(cmd) + ['--unix', path], stdout=out, stderr=errout)
        lst.settimeout(max(0.1, deadline - time.monotonic()))
        conn, _ = lst.accept()
        conn.settimeout(max(0.1, deadline - time.monotonic()))
        try:
            conn.sendall(data)
            while True:
                chunk = conn.recv(65536)
                if not chunk:
                    break
                received += chunk
        except socket.timeout:
            err = 'timeout: the peer neither closed nor exited'
        except (ConnectionResetError, BrokenPipeError):
            pass
        conn.close()
        proc.wait(timeout=max(0.1, deadline - time.monotonic()))
    except (socket.timeout, subprocess.TimeoutExpired):
        err = 'timeout'
    finally:
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
        if os.path.exists(path):
            os.unlink(path)
        os.rmdir(tmp)
    out.seek(0)
    errout.seek(0)
    print('feed: sent %d bytes: %s' % (len(data), escape(data[:200])))
    print('feed: %s sent %d bytes: %s' % (name, len(received), escape(bytes(received[:200]))))
    for line in out.read().decode(errors='replace').splitlines():
        print('%s: %s' % (name, line))
    for line in errout.read().decode(errors='replace').splitlines():
        print('%s(stderr): %s' % (name, line))
    rc = proc.returncode if proc is not None else -1
    print('%s: exit %d (want %d)%s' % (name, rc, want, '' if err is None else '; ' + err))
    ok = err is None and rc == want
    print('PASS' if ok else 'FAIL')
    return 0 if ok else 1


def listen_only(args):
    deadline = time.monotonic() + args.timeout
    listeners = [listener(p) for p in args.listen]
    try:
        conns, err = accept_both(listeners, None, deadline)
        if err is None:
            total, err = splice(conns[0], conns[1], deadline, args.dump)
            print('splice: %d bytes A->B, %d bytes B->A' % (total[0], total[1]))
        for c in conns:
            if c is not None:
                c.close()
    finally:
        for p in args.listen:
            if os.path.exists(p):
                os.unlink(p)
    if err:
        print('splice: ' + err, file=sys.stderr)
        return 3 if 'timeout' in err else 1
    return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--server', help='server peer command (shell words; --unix is appended)')
    ap.add_argument('--client', help='client peer command (shell words; --unix is appended)')
    ap.add_argument('--listen', nargs=2, metavar=('A', 'B'), help='only splice A and B')
    ap.add_argument('--timeout', type=float, default=60.0)
    ap.add_argument('--dump', type=int, default=0, metavar='N')
    ap.add_argument('--feed', metavar='HEX', help='play these bytes against one peer')
    ap.add_argument('--expect-server', type=int, default=0)
    ap.add_argument('--expect-client', type=int, default=0)
    args = ap.parse_args()
    if args.listen:
        return listen_only(args)
    if args.feed is not None:
        if bool(args.server) == bool(args.client):
            ap.error('--feed needs exactly one of --server and --client')
        return feed(args)
    if not args.server or not args.client:
        ap.error('need --server and --client, or --listen A B')
    return run(args)


if __name__ == '__main__':
    sys.exit(main())
