#!/usr/bin/env bash
# Build the Linux guest that the QEMU tests boot to run a static "agent" program
# on a virtio-serial port (run it with scripts/linux-guest-run.sh).
#
#   scripts/linux-guest.sh OUTDIR AGENT_BINARY
#
# Outputs:
#   OUTDIR/vmlinux            uncompressed kernel, booted directly through its PVH
#                             entry point (about twice as fast under TCG as the bzImage)
#   OUTDIR/initramfs.cpio.gz  busybox-static, the virtio modules, /agent and /init
#
# The kernel is Debian's linux-image-*-amd64 package, resolved from the machine's apt
# lists (run `apt-get update` once on a fresh machine) and kept in OUTDIR/cache (or
# $LINUX_GUEST_CACHE, to share one download between several OUTDIRs). Nothing is
# installed on the host. Running the script again only redoes what changed: the
# initramfs is rebuilt when the agent (or busybox, the modules, this script) changed.
#
# Environment (all optional):
#   LINUX_GUEST_CACHE    where the .deb and its unpacked parts live (default OUTDIR/cache)
#   LINUX_GUEST_KERNEL   kernel package name (default: what linux-image-amd64 depends on)
#   LINUX_GUEST_MODULES  modules to load, dependencies are added (default: virtio_pci
#                        virtio_console)
#
# Tools: apt-get/apt-cache, dpkg-deb, tar, xz (xz-utils; or whatever compressor
# the kernel uses), gzip, objcopy (binutils), sha256sum, flock, and busybox-static
# (/bin/busybox, which is both copied into the guest and used here for `cpio -o`,
# so neither cpio nor kmod is needed).
set -euo pipefail

prog=linux-guest.sh
die() { echo "$prog: $*" >&2; exit 1; }

[ $# -eq 2 ] || die "usage: $prog OUTDIR AGENT_BINARY"
out=$1
agent=$2
[ -f "$agent" ] || die "agent binary '$agent' not found"
mkdir -p "$out"
out=$(cd "$out" && pwd)
agent=$(cd "$(dirname "$agent")" && pwd)/$(basename "$agent")
cache=${LINUX_GUEST_CACHE:-$out/cache}
mkdir -p "$cache"
cache=$(cd "$cache" && pwd)
busybox=/bin/busybox
modules_wanted=${LINUX_GUEST_MODULES:-virtio_pci virtio_console}
self=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/$(basename "${BASH_SOURCE[0]}")

for tool in apt-get apt-cache dpkg-deb tar gzip objcopy sha256sum flock od; do
    command -v "$tool" >/dev/null || die "needs '$tool' on the host"
done
# The guest needs a static busybox: the dynamic one (package busybox) would not run
# in an initramfs without its libraries.
[ -x "$busybox" ] || die "needs $busybox (Debian package busybox-static)"
if command -v ldd >/dev/null && ldd "$busybox" >/dev/null 2>&1; then
    die "$busybox is dynamically linked; install busybox-static"
fi

# Several tests may build the same OUTDIR (or share the cache) at once: serialise.
exec 9>"$cache/.lock"
flock -w 600 9 || die "timed out waiting for the lock on $cache"
if [ "$cache" != "$out/cache" ]; then
    exec 8>"$out/.lock"
    flock -w 600 8 || die "timed out waiting for the lock on $out"
fi

# ---------------------------------------------------------------------------
# 1. The kernel package: resolve the current version, download it once.
# ---------------------------------------------------------------------------
pkg=${LINUX_GUEST_KERNEL:-}
if [ -z "$pkg" ]; then
    # linux-image-amd64 is the metapackage that tracks the current ABI
    # (e.g. linux-image-6.1.0-56-amd64); its candidate's Depends names it.
    pkg=$(apt-cache depends linux-image-amd64 2>/dev/null \
          | sed -n 's/^ *Depends: *\(linux-image-[0-9][^ ]*-amd64\) *$/\1/p' | head -n1 || true)
fi
version=
if [ -n "$pkg" ]; then
    version=$(apt-cache policy "$pkg" 2>/dev/null \
              | sed -n 's/^ *Candidate: *//p' | head -n1 || true)
    [ "$version" = "(none)" ] && version=
fi

deb=
if [ -n "$pkg" ] && [ -n "$version" ]; then
    # apt-get download names files PACKAGE_VERSION_ARCH.deb, with ':' as '%3a'.
    deb=$cache/${pkg}_${version//:/%3a}_amd64.deb
    if [ ! -s "$deb" ]; then
        echo "$prog: downloading $pkg $version" >&2
        dl=$(mktemp -d "$cache/dl.XXXXXX")
        # As root, apt drops privileges to the _apt user, which cannot write into
        # our directory; it then warns and downloads as root anyway. Asking for
        # root directly gives the same result without the warning.
        sandbox=()
        [ "$(id -u)" -eq 0 ] && sandbox=(-o APT::Sandbox::User=root)
        if ! (cd "$dl" && apt-get "${sandbox[@]}" -q download "$pkg=$version") >"$dl/log" 2>&1; then
            cat "$dl/log" >&2
            rm -rf "$dl"
            die "apt-get download $pkg=$version failed"
        fi
        got=$(find "$dl" -maxdepth 1 -name '*.deb' | head -n1)
        [ -n "$got" ] || { rm -rf "$dl"; die "apt-get download produced no .deb"; }
        mv "$got" "$deb"
        rm -rf "$dl"
        # A new kernel replaces the old one: drop older downloads and their unpacked
        # parts (OUTDIRs keep their own vmlinux until they are rebuilt).
        find "$cache" -maxdepth 1 -name 'linux-image-*' ! -name "$(basename "$deb" .deb)*" \
            -exec rm -rf {} +
    fi
else
    # No apt lists (offline, or `apt-get update` never ran): fall back to the newest
    # kernel already in the cache, if any.
    deb=$(find "$cache" -maxdepth 1 -name "${pkg:-linux-image-*-amd64}_*_amd64.deb" -printf '%T@ %p\n' \
          | sort -n | tail -n1 | cut -d' ' -f2- || true)
    [ -n "$deb" ] || die "cannot resolve the kernel package (run 'apt-get update' first)"
    echo "$prog: apt cannot resolve ${pkg:-linux-image-amd64}; using cached $(basename "$deb")" >&2
fi
debname=$(basename "$deb" .deb)

# ---------------------------------------------------------------------------
# Only what we need is unpacked from the .deb (it is ~70 MB, ~400 MB unpacked):
# the bzImage, the modules in the closure, modules.builtin if a module is missing.
# ---------------------------------------------------------------------------
kdir=$cache/$debname
mkdir -p "$kdir/mod"
if [ ! -s "$kdir/files.txt" ]; then
    dpkg-deb --fsys-tarfile "$deb" | tar -t >"$kdir/files.txt.tmp"
    mv "$kdir/files.txt.tmp" "$kdir/files.txt"
fi
vmlinuz_member=$(grep -E '^\./boot/vmlinuz-' "$kdir/files.txt" | head -n1 || true)
[ -n "$vmlinuz_member" ] || die "no /boot/vmlinuz-* in $debname"
builtin_member=$(grep -E '^\./lib/modules/[^/]+/modules\.builtin$' "$kdir/files.txt" | head -n1 || true)
kver=${vmlinuz_member#./boot/vmlinuz-}

# extract MEMBER...: pull members of the .deb into $kdir/root (one pass over the data).
extract() {
    mkdir -p "$kdir/root"
    dpkg-deb --fsys-tarfile "$deb" | tar -x -C "$kdir/root" "$@"
}

# ---------------------------------------------------------------------------
# 2. The modules: the closure of $modules_wanted over their "depends", unpacked
#    (and decompressed if need be) into $kdir/mod, and a load order.
# ---------------------------------------------------------------------------
# Module names treat '-' and '_' alike; files may be compressed (.ko.xz, .ko.zst, ...).
norm() { printf '%s' "${1//-/_}"; }
# member_of NAME: the .deb member holding module NAME (empty if none).
member_of() {
    awk -v want="$(norm "$1")" '
        /^\.\/lib\/modules\/.*\.ko(\.(xz|zst|gz))?$/ {
            base = $0; sub(/.*\//, "", base); sub(/\.ko.*$/, "", base); gsub(/-/, "_", base)
            if (base == want) { print; exit }
        }' "$kdir/files.txt"
}
is_builtin() {
    [ -n "$builtin_member" ] || return 1
    local f=$kdir/root/${builtin_member#./}
    [ -s "$f" ] || extract "$builtin_member"
    # (grep without -q: an early exit would fail the pipeline under pipefail)
    sed 's|.*/||; s|\.ko$||; s|-|_|g' "$f" | grep -x "$(norm "$1")" >/dev/null
}
# modinfo_depends FILE.ko: the module's "depends=" field, read from its .modinfo
# section (the .deb has no modules.dep, and busybox modinfo insists on one).
modinfo_depends() {
    local tmp
    tmp=$(mktemp)
    objcopy -O binary --only-section=.modinfo "$1" "$tmp"
    tr '\0' '\n' <"$tmp" | sed -n 's/^depends=//p' | head -n1 | tr ',' ' '
    rm -f "$tmp"
}

# Breadth-first closure over "depends": one tar pass per level (a pass costs
# ~4 s: it decompresses the whole package). The bzImage rides along on the first.
extra=() vmlinuz_fresh=
if [ ! -s "$kdir/vmlinux" ]; then extra=("$vmlinuz_member"); vmlinuz_fresh=1; fi
declare -A deps=() seen=()
pending=()
for m in $modules_wanted; do
    m=$(norm "$m")
    [ -n "${seen[$m]:-}" ] && continue
    seen[$m]=1
    pending+=("$m")
done
while [ ${#pending[@]} -gt 0 ]; do
    need=()
    for m in "${pending[@]}"; do
        [ -s "$kdir/mod/$m.ko" ] && continue
        mem=$(member_of "$m")
        if [ -z "$mem" ]; then
            # Built into the kernel: nothing to load.
            if is_builtin "$m"; then deps[$m]=builtin; continue; fi
            die "module $m is neither in $debname nor built in"
        fi
        need+=("$mem")
    done
    need+=("${extra[@]+"${extra[@]}"}")
    extra=()
    [ ${#need[@]} -eq 0 ] || extract "${need[@]}"
    next=()
    for m in "${pending[@]}"; do
        [ "${deps[$m]:-}" = builtin ] && continue
        if [ ! -s "$kdir/mod/$m.ko" ]; then
            mem=$(member_of "$m")
            src=$kdir/root/${mem#./}
            # busybox insmod in the guest wants a plain ELF object.
            case "$src" in
                *.ko.xz)  xz -dc "$src" ;;
                *.ko.zst) zstd -qdc "$src" ;;
                *.ko.gz)  gzip -dc "$src" ;;
                *)        cat "$src" ;;
            esac >"$kdir/mod/$m.ko.tmp"
            mv "$kdir/mod/$m.ko.tmp" "$kdir/mod/$m.ko"
        fi
        deps[$m]=$(modinfo_depends "$kdir/mod/$m.ko")
        for d in ${deps[$m]}; do
            d=$(norm "$d")
            [ -n "${seen[$d]:-}" ] && continue
            seen[$d]=1
            next+=("$d")
        done
    done
    pending=("${next[@]+"${next[@]}"}")
done

# Load order: depth-first post-order (every module after all of its dependencies).
declare -A state=()
order=()
visit() {
    local m=$1 d
    case "${state[$m]:-}" in
        visited) return 0 ;;
        visiting) die "module dependency cycle through $m" ;;
    esac
    state[$m]=visiting
    if [ "${deps[$m]}" != builtin ]; then
        for d in ${deps[$m]}; do visit "$(norm "$d")"; done
        order+=("$m")
    fi
    state[$m]=visited
}
for m in $modules_wanted; do visit "$(norm "$m")"; done

# ---------------------------------------------------------------------------
# 3. vmlinux: decompress the bzImage's payload. The x86 boot header says where the
#    payload is (boot protocol >= 2.08), so no scanning for compressor magic is
#    needed: setup_sects at 0x1f1, payload_offset/payload_length at 0x248/0x24c, the
#    offset counted from the protected-mode code at (setup_sects + 1) * 512. The
#    payload ends with the uncompressed size as a le32, which we check.
# ---------------------------------------------------------------------------
# The header is little-endian whatever the host is.
le32() { od -A n --endian=little -t u4 -j "$2" -N 4 "$1" | tr -d ' '; }
u8() { od -A n -t u1 -j "$2" -N 1 "$1" | tr -d ' '; }
u16() { od -A n --endian=little -t u2 -j "$2" -N 2 "$1" | tr -d ' '; }

build_vmlinux() {
    local bz=$1 dst=$2 magic setup_sects proto pm poff plen fmt want tmp
    magic=$(od -A n -c -j $((0x202)) -N 4 "$bz" | tr -d ' ')
    [ "$magic" = HdrS ] || die "$bz: not a bzImage (no HdrS)"
    proto=$(u16 "$bz" $((0x206)))
    [ "$proto" -ge $((0x208)) ] || die "$bz: boot protocol $proto too old for payload fields"
    setup_sects=$(u8 "$bz" $((0x1f1)))
    [ "$setup_sects" -ne 0 ] || setup_sects=4
    pm=$(( (setup_sects + 1) * 512 ))
    poff=$(le32 "$bz" $((0x248)))
    plen=$(le32 "$bz" $((0x24c)))
    [ "$plen" -gt 4 ] || die "$bz: empty payload"
    want=$(le32 "$bz" $((pm + poff + plen - 4)))
    magic=$(od -A n -t x1 -j $((pm + poff)) -N 6 "$bz" | tr -d ' \n')
    case "$magic" in
        fd377a585a00*) fmt="xz -dc --single-stream" ;;
        1f8b*)         fmt="gzip -dc" ;;
        28b52ffd*)     fmt="zstd -qdc" ;;
        425a68*)       fmt="bzip2 -dc" ;;
        5d0000*)       fmt="xz -dc --format=lzma" ;;
        02214c18*)     fmt="lz4 -dc" ;;
        *) die "$bz: unknown payload compression (magic $magic)" ;;
    esac
    # (busybox's xz cannot stand in: it lacks the x86 BCJ filter the kernel uses)
    command -v "${fmt%% *}" >/dev/null \
        || die "needs '${fmt%% *}' to decompress the kernel (for xz: Debian package xz-utils)"
    tmp=$dst.tmp
    # Drop the trailing size word: the compressors reject it as trailing garbage.
    # $fmt is deliberately split into command and options.
    # shellcheck disable=SC2086
    dd if="$bz" iflag=skip_bytes,count_bytes skip=$((pm + poff)) count=$((plen - 4)) \
        bs=1M status=none | $fmt >"$tmp" \
        || die "$bz: decompressing the payload failed"
    [ "$(od -A n -t x1 -N 4 "$tmp" | tr -d ' \n')" = 7f454c46 ] || die "$bz: payload is not an ELF file"
    [ "$(stat -c %s "$tmp")" -eq "$want" ] || die "$bz: payload size $(stat -c %s "$tmp") != $want"
    mv "$tmp" "$dst"
}

# Decompressed once per kernel in the cache, then hard-linked (or copied) into
# each OUTDIR: it is 60+ MiB. build_vmlinux writes it atomically and checks the
# size recorded in the bzImage; the bzImage is unpacked afresh for it (unless the
# module pass just did), so a half-unpacked one from a killed run does no harm.
if [ ! -s "$kdir/vmlinux" ]; then
    [ -n "$vmlinuz_fresh" ] || extract "$vmlinuz_member"
    build_vmlinux "$kdir/root/${vmlinuz_member#./}" "$kdir/vmlinux"
fi
if [ ! -s "$out/vmlinux" ] || [ "$(cat "$out/vmlinux.from" 2>/dev/null)" != "$debname" ]; then
    rm -f "$out/vmlinux"
    ln "$kdir/vmlinux" "$out/vmlinux" 2>/dev/null || cp "$kdir/vmlinux" "$out/vmlinux"
    printf '%s\n' "$debname" >"$out/vmlinux.from"
fi

# ---------------------------------------------------------------------------
# 4. The initramfs. Its /init is a busybox sh script; see the comments inside.
# ---------------------------------------------------------------------------
read -r -d '' init_script <<'EOF' || true
#!/bin/sh
# /init of the sechan Linux test guest (generated by scripts/linux-guest.sh).
#
# Kernel command line (written by scripts/linux-guest-run.sh; the last one wins):
#   sechan.port=NAME   name of the virtserialport to hand to the agent
#   sechan.argc=N      number of agent arguments
#   sechan.args=A,B    the arguments, comma separated, each percent-encoded (%XX)
#   sechan.end=1       marks that the command line was not truncated
# Runs `/agent /dev/vportNpM ARGS...`, prints `sechan-agent-exit=STATUS` on the
# console and powers off. Setup failures give status 98, a port that does not
# appear within 10 s gives 99. init must never return (the kernel would panic), so
# every path goes through finish().
export PATH=/bin

finish() {
    # Own line, even if the agent left a partial one on the console.
    printf '\nsechan-agent-exit=%s\n' "$1"
    poweroff -f
    # Not reached; if it were, exiting init panics and panic=-1 with QEMU's
    # -no-reboot ends the VM anyway.
    exit "$1"
}
fail() {
    echo "sechan-guest: error: $2"
    finish "$1"
}

mount -t proc proc /proc || fail 98 "mount /proc failed"
mount -t sysfs sysfs /sys || fail 98 "mount /sys failed"
mount -t devtmpfs devtmpfs /dev || fail 98 "mount /dev failed"
[ -c /dev/console ] && exec </dev/console >/dev/console 2>&1

port='' argc='' args='' end=''
set -f    # split the command line on spaces, but never glob its words
read -r cmdline </proc/cmdline
for w in $cmdline; do
    case $w in
        sechan.port=*) port=${w#*=} ;;
        sechan.argc=*) argc=${w#*=} ;;
        sechan.args=*) args=${w#*=} ;;
        sechan.end=*)  end=${w#*=} ;;
    esac
done
set +f    # globbing is needed again for /sys/class/virtio-ports/*
[ "$end" = 1 ] || fail 98 "kernel command line truncated or not from linux-guest-run.sh"
[ -n "$port" ] || fail 98 "no sechan.port= on the kernel command line"
case $argc in ''|*[!0-9]*) fail 98 "bad sechan.argc='$argc'" ;; esac

while read -r m; do
    insmod "/lib/modules/$m.ko" || fail 98 "insmod $m failed"
done </lib/modules/load-order

# Decode the arguments into "$@". %XX becomes \xXX for printf %b; the encoder
# escaped every backslash, so no other escapes can appear. The trailing x keeps
# $(...) from eating trailing newlines.
set --
if [ "$argc" -gt 0 ]; then
    rest=$args
    while :; do
        field=${rest%%,*}
        v=$(printf '%s' "$field" | sed 's/%\([0-9A-Fa-f][0-9A-Fa-f]\)/\\x\1/g')
        v=$(printf '%bx' "$v")
        set -- "$@" "${v%x}"
        case $rest in *,*) rest=${rest#*,} ;; *) break ;; esac
    done
fi
[ "$#" -eq "$argc" ] || fail 98 "sechan.args has $# fields, sechan.argc says $argc"

# Wait (at most 10 s of guest uptime) for the port: virtio_console creates the
# device first and learns the name from the host a moment later.
uptime_s() { read -r up _ </proc/uptime; echo "${up%.*}"; }
deadline=$(( $(uptime_s) + 10 ))
dev=
while [ -z "$dev" ]; do
    for d in /sys/class/virtio-ports/*; do
        [ -r "$d/name" ] || continue
        n=
        read -r n <"$d/name" || true
        if [ "$n" = "$port" ] && [ -c "/dev/${d##*/}" ]; then
            dev=/dev/${d##*/}
            break
        fi
    done
    [ -n "$dev" ] && break
    [ "$(uptime_s)" -lt "$deadline" ] || fail 99 "no virtio port named '$port' after 10 s"
    sleep 0.02
done

read -r up _ </proc/uptime
echo "sechan-agent-start dev=$dev uptime=$up"
/agent "$dev" "$@" </dev/null
finish "$?"
EOF

# Everything the initramfs is made of, hashed: rebuild only when something changed
# (a new agent binary, a new kernel, busybox, or this script's /init).
manifest=$(
    {
        printf 'kernel %s\nmodules %s\n' "$debname" "${order[*]}"
        sha256sum "$agent" "$busybox" "$self" | cut -d' ' -f1
        for m in "${order[@]}"; do sha256sum "$kdir/mod/$m.ko" | cut -d' ' -f1; done
    } | sha256sum | cut -d' ' -f1
)
if [ ! -s "$out/initramfs.cpio.gz" ] || [ "$agent" -nt "$out/initramfs.cpio.gz" ] \
   || [ "$(cat "$out/initramfs.manifest" 2>/dev/null)" != "$manifest" ]; then
    stage=$out/initramfs.d
    rm -rf "$stage"
    mkdir -p "$stage"/{bin,dev,proc,sys,lib/modules}
    cp "$busybox" "$stage/bin/busybox"
    # One symlink per applet, so /init can call them by name (sh runs /init itself).
    for a in $("$busybox" --list); do
        [ "$a" = busybox ] || ln -s busybox "$stage/bin/$a"
    done
    for m in "${order[@]}"; do cp "$kdir/mod/$m.ko" "$stage/lib/modules/$m.ko"; done
    printf '%s\n' "${order[@]}" >"$stage/lib/modules/load-order"
    cp "$agent" "$stage/agent"
    chmod 0755 "$stage/agent"
    printf '%s\n' "$init_script" >"$stage/init"
    chmod 0755 "$stage/init"
    # newc is the format the kernel unpacks; owners forced to root, names sorted so
    # that equal inputs give equal archives.
    # busybox cpio reports "N blocks" on stderr: keep it out of the way unless it fails.
    (cd "$stage" && find . -mindepth 1 | sed 's|^\./||' | LC_ALL=C sort \
        | "$busybox" cpio -o -H newc -R 0:0 2>"$out/cpio.log") | gzip -9n >"$out/initramfs.cpio.gz.tmp" \
        || { cat "$out/cpio.log" >&2; die "creating the initramfs failed"; }
    rm -f "$out/cpio.log"
    mv "$out/initramfs.cpio.gz.tmp" "$out/initramfs.cpio.gz"
    printf '%s\n' "$manifest" >"$out/initramfs.manifest"
    rm -rf "$stage"
    echo "$prog: built $out/initramfs.cpio.gz ($(stat -c %s "$out/initramfs.cpio.gz") bytes;" \
         "kernel $kver; modules ${order[*]})" >&2
fi
