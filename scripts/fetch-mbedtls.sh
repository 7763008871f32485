#!/usr/bin/env bash
# Fetch Mbed TLS 3.6 from Debian trixie's source package into build/, without
# touching the machine's own apt configuration: a private sources file, lists
# and cache under build/apt/. Nothing of Mbed TLS is committed to the tree.
set -euo pipefail
out=${1:?usage: fetch-mbedtls.sh OUTDIR}
want=${MBEDTLS_DEB_VERSION:-}
mkdir -p "$out"
out=$(cd "$out" && pwd)
if [ -f "$out/src/include/mbedtls/version.h" ]; then exit 0; fi

apt_dir="$out/apt"
mkdir -p "$apt_dir/lists/partial" "$apt_dir/cache/archives/partial" "$out/dl"
# Use the same archive as the machine's own apt sources.
mirror=$(grep -hoE '^URIs:[[:space:]]*[^ ]+' /etc/apt/sources.list.d/*.sources 2>/dev/null \
         | awk '{print $2}' | grep -v security | head -n1 || true)
if [ -z "$mirror" ]; then
    mirror=$(grep -hoE '^deb[[:space:]]+(\[[^]]*\][[:space:]]+)?[a-z]+://[^ ]+' /etc/apt/sources.list 2>/dev/null \
             | awk '{print $NF}' | grep -v security | head -n1 || true)
fi
[ -n "$mirror" ] || { echo "fetch-mbedtls: cannot find the Debian archive in /etc/apt" >&2; exit 1; }
echo "deb-src $mirror trixie main" > "$apt_dir/sources.list"

apt_opts=(-o "Dir::Etc::sourcelist=$apt_dir/sources.list" -o Dir::Etc::sourceparts=/dev/null
          -o "Dir::State::Lists=$apt_dir/lists" -o "Dir::Cache=$apt_dir/cache"
          -o Debug::NoLocking=1)
apt-get "${apt_opts[@]}" -q update >"$apt_dir/update.log" 2>&1 \
    || { cat "$apt_dir/update.log" >&2; exit 1; }
command -v dpkg-source >/dev/null || { echo "fetch-mbedtls: needs dpkg-dev (dpkg-source)" >&2; exit 1; }
spec=mbedtls${want:+=$want}
( cd "$out/dl" && apt-get "${apt_opts[@]}" -q source --only-source "$spec" ) >"$apt_dir/source.log" 2>&1 \
    || { cat "$apt_dir/source.log" >&2; exit 1; }
srcdir=$(find "$out/dl" -maxdepth 1 -mindepth 1 -type d -name 'mbedtls-*' | head -n1)
[ -n "$srcdir" ] || { echo "fetch-mbedtls: no source tree unpacked" >&2; exit 1; }
ver=$(sed -n 's/.*MBEDTLS_VERSION_STRING[[:space:]]*"\(.*\)".*/\1/p' "$srcdir/include/mbedtls/build_info.h" | head -n1)
case "$ver" in
    3.6.*) ;;
    *) echo "fetch-mbedtls: expected Mbed TLS 3.6.x, got '$ver'" >&2; exit 1 ;;
esac
rm -rf "$out/src"
mv "$srcdir" "$out/src"
echo "fetch-mbedtls: Mbed TLS $ver from Debian trixie in $out/src"
