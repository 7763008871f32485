#!/usr/bin/env bash
# check-nomalloc.sh [--nm NM] [--image] FILE...: fail if any object in the
# given objects or archives references the C heap (malloc, calloc, realloc,
# free and the functions that allocate for their caller). Prints each
# offender. With --image, FILEs are linked firmware images: there the heap
# must not even be present (any symbol of that name fails).
set -euo pipefail
nm_tool=nm
if [ "${1:-}" = "--nm" ]; then nm_tool=$2; shift 2; fi
nm_mode=-u
if [ "${1:-}" = "--image" ]; then nm_mode=; shift; fi
[ $# -gt 0 ] || { echo "check-nomalloc: no files given" >&2; exit 2; }
forbidden='^(malloc|calloc|realloc|reallocarray|free|strdup|strndup|aligned_alloc|posix_memalign|memalign|valloc|pvalloc|asprintf|vasprintf|getline|getdelim|open_memstream|fopen|fdopen|getaddrinfo)$'
bad=0
count=0
for f in "$@"; do
    [ -e "$f" ] || { echo "check-nomalloc: missing $f" >&2; exit 2; }
    # -A prefixes each line with archive:member; -u lists undefined symbols.
    out=$("$nm_tool" -A $nm_mode "$f" 2>/dev/null) || { echo "check-nomalloc: $nm_tool failed on $f" >&2; exit 2; }
    count=$((count + 1))
    while IFS= read -r line; do
        [ -n "$line" ] || continue
        sym=${line##* }
        sym=${sym%@*}
        if [[ $sym =~ $forbidden ]]; then
            echo "check-nomalloc: ${line%%:*}: has $sym" >&2
            bad=1
        fi
    done <<<"$out"
done
if [ $bad -ne 0 ]; then
    echo "check-nomalloc: FAILED: the stack must not use the heap" >&2
    exit 1
fi
echo "check-nomalloc: OK ($count files, no heap references)"
