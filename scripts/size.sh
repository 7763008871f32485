#!/bin/sh
# make size: see scripts/size.py (flash and RAM per module, arena and stack
# marks from a run under QEMU, against boards/budget.txt).
exec python3 "$(dirname "$0")/size.py" "$@"
