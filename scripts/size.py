#!/usr/bin/env python3
"""make size: what each firmware image costs, per module, against a budget.

For every bare-metal board and variant built under build/fw/ (psk, x509,
and the SASL variants sasl-digest and sasl-scram, measured through
sechan-gw):
  - flash (text + rodata + initialised data) and RAM (data + bss) per module,
    read off the linker map;
  - the stack: the worst case over the call graph (-fcallgraph-info=su), with
    indirect calls resolved to every function whose address the image takes,
    and the depth measured in a run;
  - the Mbed TLS arena: its size and the high-water mark measured in a run
    against qemu-nbd (scripts/run-board.sh);
and fails if an image is past the limits in boards/budget.txt.
"""
import os
import re
import subprocess
import sys

BUILD = os.environ.get("SECHAN_BUILD", "build")
TEST_DIR = os.environ.get("SECHAN_TEST_DIR", "build/test")
MODULES = ["core", "port", "transports", "tls", "sasl-lite", "nbd", "mbedtls", "board", "libc"]
VARIANTS = ["psk", "x509", "sasl-digest", "sasl-scram"]
DESCRIPTION = {
    "psk": "TLS 1.3 PSK",
    "x509": "TLS 1.3 ECDHE-ECDSA P-256",
    "sasl-digest": "SASL DIGEST-MD5 auth-conf 3DES, no TLS",
    "sasl-scram": "TLS 1.3 PSK + SASL SCRAM-SHA-256-PLUS",
}
TOOLS = {"mps2-an385": "arm-none-eabi-", "riscv-virt": "riscv64-unknown-elf-"}
CALL_RELOCS = {"R_ARM_THM_CALL", "R_ARM_CALL", "R_ARM_JUMP24", "R_ARM_THM_JUMP24",
               "R_ARM_THM_JUMP11", "R_ARM_THM_JUMP8", "R_ARM_PC24",
               "R_RISCV_CALL", "R_RISCV_CALL_PLT", "R_RISCV_JAL", "R_RISCV_BRANCH",
               "R_RISCV_RVC_JUMP", "R_RISCV_RVC_BRANCH", "R_RISCV_RELAX"}
# Frames of the C library's functions are not in the call graph (picolibc
# comes built); each path that reaches one is charged this much.
LIBC_FRAME = 256


def module_of(path):
    if "libmbedtls.a" in path or "/mbedtls/" in path:
        return "mbedtls"
    for m in ("core", "port", "transports", "tls", "sasl-lite", "nbd"):
        if "/obj/%s/" % m in path:
            return m
    if "/obj/boards/" in path or path.endswith("/obj/creds.o"):
        return "board"
    return "libc"


def parse_map(path):
    """Bytes per module per kind (flash, ram) from a GNU ld map."""
    sizes = {m: [0, 0] for m in MODULES}
    stack = 0
    out = None
    pending = None
    started = False
    for line in open(path, encoding="utf-8", errors="replace"):
        if line.startswith("Linker script and memory map"):
            started = True
            continue
        if not started:
            continue
        m = re.match(r"^(\.[\w.]+)\s+0x([0-9a-f]+)\s+0x([0-9a-f]+)", line)
        if m or re.match(r"^(\.[\w.]+)\s*$", line):
            out = (m or re.match(r"^(\.[\w.]+)", line)).group(1)
            if out == ".stack" and m:
                stack = int(m.group(3), 16)
            continue
        m = re.match(r"^ (\S+)\s*$", line)
        if m and not line.startswith(" *"):
            pending = m.group(1)
            continue
        m = re.match(r"^ (\S+)?\s+0x([0-9a-f]+)\s+0x([0-9a-f]+)\s+(\S+\.(?:o|a)\S*)", line)
        if not m or out is None:
            pending = None
            continue
        size = int(m.group(3), 16)
        mod = module_of(m.group(4))
        if out in (".text", ".rodata", ".ARM.exidx"):
            sizes[mod][0] += size
        elif out == ".data":
            sizes[mod][0] += size
            sizes[mod][1] += size
        elif out == ".bss":
            sizes[mod][1] += size
        pending = None
    return sizes, stack


def app_contexts(path, obj_suffix):
    """Static objects of one application object (name, bytes) off the map:
    the SASL contexts and buffers fwsasl.c hands to sasl-lite."""
    found = []
    pending = None
    for line in open(path, encoding="utf-8", errors="replace"):
        m = re.match(r"^ \.(?:bss|data)\.(\w+)\s*$", line)
        if m:
            pending = m.group(1)
            continue
        m = re.match(r"^ (?:\.(?:bss|data)\.(\w+))?\s+0x[0-9a-f]+\s+0x([0-9a-f]+)\s+(\S+)", line)
        name = (m.group(1) or pending) if m else None
        pending = None
        if m and name and m.group(3).endswith(obj_suffix):
            found.append((name, int(m.group(2), 16)))
    return found


def address_taken(objs, prefix):
    """Functions whose address some object takes (not a call)."""
    taken = set()
    for obj in objs:
        try:
            syms = subprocess.run([prefix + "readelf", "-sW", obj], capture_output=True,
                                  text=True, check=True).stdout
            rels = subprocess.run([prefix + "readelf", "-rW", obj], capture_output=True,
                                  text=True, check=True).stdout
        except subprocess.CalledProcessError:
            continue
        funcs = {ln.split()[-1] for ln in syms.splitlines() if " FUNC " in ln}
        src = os.path.basename(obj)[:-2] + ".c"
        in_vectors = False
        for ln in rels.splitlines():
            if ln.startswith("Relocation section"):
                # The vector table's handlers are entered by the hardware,
                # not through a pointer the code calls.
                in_vectors = ".vectors" in ln
                continue
            parts = ln.split()
            if in_vectors:
                continue
            if len(parts) >= 5 and parts[2].startswith("R_") and parts[2] not in CALL_RELOCS:
                name = parts[4]
                if name in funcs:
                    taken.add((src, name))
    return taken


def worst_stack(ci_files, taken, root):
    frames, edges, dynamic = {}, {}, set()
    for f in ci_files:
        for line in open(f, encoding="utf-8", errors="replace"):
            m = re.match(r'node: \{ title: "([^"]+)" label: "[^"]*\\n(\d+) bytes \((\w+)', line)
            if m:
                frames[m.group(1)] = int(m.group(2))
                if m.group(3) != "static":
                    dynamic.add(m.group(1))
                continue
            m = re.match(r'edge: \{ sourcename: "([^"]+)" targetname: "([^"]+)"', line)
            if m:
                edges.setdefault(m.group(1), set()).add(m.group(2))
    targets = set()
    for title in frames:
        base = title.rsplit(":", 1)
        name = base[-1]
        src = os.path.basename(base[0]) if len(base) == 2 else None
        if (src, name) in taken or (title in frames and any(n == title for _, n in taken)):
            targets.add(title)
    # Depth-first over the calls, memoised. An indirect call may reach any
    # function whose address the image takes; a recursion is cut where it
    # repeats (the cut is listed), so the figure is the deepest acyclic path.
    memo, cycles = {}, set()
    sys.setrecursionlimit(20000)

    def depth(fn, path):
        if fn in path:
            cycles.add(fn)
            return 0, []
        if fn in memo:
            return memo[fn]
        if fn == "__indirect_call":
            callees, own = targets, 0
        elif fn not in frames:
            return LIBC_FRAME, [fn + "(libc)"]
        else:
            callees, own = edges.get(fn, ()), frames[fn]
        path.add(fn)
        best, best_chain = 0, []
        for c in sorted(callees):
            d, chain = depth(c, path)
            if d > best:
                best, best_chain = d, chain
        path.discard(fn)
        memo[fn] = (own + best, [fn] + best_chain)
        return memo[fn]

    total, chain = depth(root, set())
    return total, chain, sorted(cycles), sorted(dynamic & set(chain))


def measure(board, variant):
    """Run the image once against qemu-nbd; the firmware prints its marks."""
    work = os.path.join(TEST_DIR, "size")
    os.makedirs(work, exist_ok=True)
    disk = os.path.join(work, "%s-%s.img" % (board, variant))
    log = os.path.join(work, "%s-%s.log" % (board, variant))
    subprocess.run([os.path.join(BUILD, "host/test/fwdisk"), "make", disk, "1048576"], check=True)
    subprocess.run(["scripts/run-board.sh", board, variant, "uart", disk, log, "", "90"],
                   stdout=subprocess.DEVNULL, check=False)
    text = open(log, encoding="utf-8", errors="replace").read() if os.path.exists(log) else ""
    arena = re.search(r"arena=(\d+) result=PASS", text)
    stack = re.search(r"stack=(\d+)", text)
    return (int(arena.group(1)) if arena else None, int(stack.group(1)) if stack else None)


def arena_size(board, variant):
    mk = open("mk/firmware.mk").read() + open("boards/%s/board.mk" % board).read()
    vals = re.findall(r"^ARENA_%s \??:?= (\d+)" % variant, mk, re.M)
    return int(vals[-1]) if vals else 0


def main():
    budget = {}
    for line in open("boards/budget.txt"):
        parts = line.split("#")[0].split()
        if len(parts) == 4:
            budget[(parts[0], parts[1])] = (int(parts[2]), int(parts[3]))
    failed = []
    for board in sorted(TOOLS):
        for variant in VARIANTS:
            out = os.path.join(BUILD, "fw", "%s-%s" % (board, variant))
            if not os.path.exists(os.path.join(out, "firmware.elf")):
                print("size: %s-%s is not built" % (board, variant))
                failed.append("%s-%s" % (board, variant))
                continue
            sizes, stack_rsv = parse_map(os.path.join(out, "firmware.map"))
            cis, objs = [], []
            for root, _, files in os.walk(out):
                cis += [os.path.join(root, f) for f in files if f.endswith(".ci")]
                objs += [os.path.join(root, f) for f in files if f.endswith(".o")]
            taken = address_taken(objs, TOOLS[board])
            worst, chain, cycles, dyn = worst_stack(cis, taken, "main")
            arena_hw, stack_hw = measure(board, variant)
            flash = sum(v[0] for v in sizes.values())
            ram = sum(v[1] for v in sizes.values()) + stack_rsv
            print("\n== %s %s (%s)" % (board, variant, DESCRIPTION[variant]))
            print("  %-11s %9s %9s" % ("module", "flash", "RAM"))
            for m in MODULES:
                print("  %-11s %9d %9d" % (m, sizes[m][0], sizes[m][1]))
            print("  %-11s %9s %9d" % ("stack", "", stack_rsv))
            print("  %-11s %9d %9d" % ("total", flash, ram))
            ctx = app_contexts(os.path.join(out, "firmware.map"), "/boards/common/fwsasl.o")
            if ctx:
                print("  SASL contexts and buffers (in board RAM, caller-allocated): %s = %d"
                      % (", ".join("%s %d" % c for c in ctx), sum(c[1] for c in ctx)))
            print("  Mbed TLS arena: %d bytes (in tls RAM), high-water %s in a run"
                  % (arena_size(board, variant), arena_hw if arena_hw is not None else "n/a"))
            print("  stack: worst case %d bytes over the call graph (%d per libc call; indirect"
                  " calls: any address-taken function),"
                  " %s used in a run; reserved %d" % (worst, LIBC_FRAME,
                                                       stack_hw if stack_hw else "n/a", stack_rsv))
            print("    deepest path: %s" % " > ".join(c.split(":")[-1] for c in chain[:14]))
            if cycles:
                print("    recursion cut at: %s"
                      % ", ".join(c.split(":")[-1] for c in cycles[:6]))
            lim = budget.get((board, variant))
            if lim is None:
                print("  budget: none in boards/budget.txt")
                failed.append("%s-%s (no budget)" % (board, variant))
                continue
            ok = flash <= lim[0] and ram <= lim[1] and arena_hw is not None \
                and worst <= stack_rsv
            print("  budget: flash %d/%d, RAM %d/%d, worst-case stack %d/%d: %s"
                  % (flash, lim[0], ram, lim[1], worst, stack_rsv, "ok" if ok else "OVER"))
            if not ok:
                failed.append("%s-%s" % (board, variant))
    if failed:
        print("\nsize: FAILED: %s" % ", ".join(failed))
        return 1
    print("\nsize: every image within boards/budget.txt")
    return 0


if __name__ == "__main__":
    sys.exit(main())
