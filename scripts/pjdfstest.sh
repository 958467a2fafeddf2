#!/usr/bin/env bash
# Run pjdfstest (the POSIX behaviour suite, github.com/pjd/pjdfstest) against a real octuefs mount of a
# bucket of the bundled server, and print how many of its assertions passed and failed.
#
#   scripts/pjdfstest.sh PJDFSTEST_BUILD [TEST_DIR_OR_FILE ...]
#
# PJDFSTEST_BUILD is a built checkout of pjdfstest (holding the `pjdfstest` binary and `tests/`), made
# outside this repository: pjdfstest is packaged neither for Debian nor for PyPI, and its sources are
# never committed here. Without TEST arguments every test runs (`prove -r tests/`); with them, only
# those (paths relative to PJDFSTEST_BUILD/tests, e.g. `symlink mkfifo/00.t`).
#
# The suite switches users and groups, so the mount is made with --allow-other (root mounts it, and
# other users reach it) and --trust-stored-owners (chown and stored modes are kept, as the suite
# expects; the mount is made by scripts/posix-mount.sh). Run as root. The full log (prove -v) is kept
# in the printed work directory.
set -uo pipefail

build=${1:?usage: scripts/pjdfstest.sh PJDFSTEST_BUILD [TEST ...]}
shift
build=$(cd "$build" && pwd)
if [[ ! -x "$build/pjdfstest" || ! -d "$build/tests" ]]; then
    echo "$build: no pjdfstest binary and tests/ here (build it with autoreconf -ifs, ./configure, make)" >&2
    exit 2
fi
source "$(dirname "$0")/posix-mount.sh" pjdfstest

tests=()
for test in "$@"; do
    tests+=("$build/tests/$test")
done
[[ ${#tests[@]} == 0 ]] && tests=("$build/tests")

started=$(date +%s)
(cd "$mountpoint" && prove -rv "${tests[@]}") >"$work/prove.log" 2>&1
elapsed=$(($(date +%s) - started))

# prove -v prints each test's plan ("1..N") and every assertion ("ok N", "not ok N"); the assertions of
# a test that stopped early never ran, and count as failed (planned less passed).
planned=$(grep -oE '^1\.\.[0-9]+' "$work/prove.log" | cut -c4- | awk '{sum += $1} END {print sum + 0}')
passed=$(grep -cE '^ok [0-9]+' "$work/prove.log")
grep -E '^Files=|^Result:' "$work/prove.log"
echo "pjdfstest: $planned assertions planned, $passed passed, $(($planned - passed)) failed or not run, in $elapsed s (log: $work/prove.log)"
