#!/usr/bin/env bash
# Run fsx (the file system exerciser of xfstests, github.com/kdave/xfstests `ltp/fsx.c`) against a real
# octuefs mount of a bucket of the bundled server: random reads, writes (also through mmap), truncates
# and closes of one file, each checked against a copy kept in memory.
#
#   scripts/fsx.sh FSX_BINARY [OPERATIONS [FSX_OPTION ...]]     (OPERATIONS: 100000 by default)
#
# FSX_BINARY is built outside this repository (its sources are never committed here), e.g. from a
# checkout of xfstests: write a src/config.h defining the HAVE_*_H of src/global.h and including
# <getopt.h>, then `gcc -O2 -D_GNU_SOURCE -Isrc -Iinclude -o fsx ltp/fsx.c`. Operations the mount does
# not offer (fallocate, hole punching, reflinks) are found missing by fsx itself and left out. The
# mount is made by scripts/posix-mount.sh, as for pjdfstest. Run as root.
set -uo pipefail

fsx=${1:?usage: scripts/fsx.sh FSX_BINARY [OPERATIONS [FSX_OPTION ...]]}
fsx=$(cd "$(dirname "$fsx")" && pwd)/$(basename "$fsx")
operations=${2:-100000}
shift $(($# < 2 ? $# : 2))
if [[ ! -x $fsx ]]; then
    echo "$fsx: not an executable fsx" >&2
    exit 2
fi
source "$(dirname "$0")/posix-mount.sh" fsx

started=$(date +%s)
(cd "$mountpoint" && "$fsx" -N "$operations" -S 1 -P "$work" "$@" fsx.data) >"$work/fsx.log" 2>&1
status=$?
elapsed=$(($(date +%s) - started))
tail -n 5 "$work/fsx.log"
echo "fsx: $operations operations, exit status $status, in $elapsed s (log: $work/fsx.log)"
exit $status
