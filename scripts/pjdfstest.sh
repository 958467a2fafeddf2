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
# expects). Run as root. The full log (prove -v) is kept in the printed work directory.
set -uo pipefail

build=${1:?usage: scripts/pjdfstest.sh PJDFSTEST_BUILD [TEST ...]}
shift
build=$(cd "$build" && pwd)
if [[ ! -x "$build/pjdfstest" || ! -d "$build/tests" ]]; then
    echo "$build: no pjdfstest binary and tests/ here (build it with autoreconf -ifs, ./configure, make)" >&2
    exit 2
fi
if [[ $(id -u) != 0 ]]; then
    echo "pjdfstest needs root (it switches users and makes device nodes)" >&2
    exit 2
fi
cd "$(dirname "$0")/.."
repository=$(pwd)
python="$repository/.venv/bin/python"
[[ -x $python ]] || bash scripts/install.sh >/dev/null

work=$(mktemp -d /tmp/octuefs-pjdfstest.XXXXXX)
mountpoint="$work/mnt"
mkdir -p "$mountpoint" "$work/cache"
chmod 755 "$work"
server_pid=""

cleanup() {
    cd /
    if grep -q " $mountpoint " /proc/self/mountinfo; then
        fusermount3 -u -z "$mountpoint"
    fi
    if [[ -f "$work/daemon.pid" ]]; then
        kill "$(cat "$work/daemon.pid")" 2>/dev/null
    fi
    if [[ -n $server_pid ]]; then
        kill "$server_pid" 2>/dev/null
    fi
}
trap cleanup EXIT

port=$("$python" -c 'from octuefs.local_server import free_port; print(free_port())')
endpoint="http://127.0.0.1:$port"
"$("$python" -c 'from octuefs.local_server import binary_path; print(binary_path())')" \
    -scheme http -host 127.0.0.1 -port "$port" -backend memory -external-url "$endpoint" \
    -public-host "127.0.0.1:$port" -log-level warn >"$work/server.log" 2>&1 &
server_pid=$!
bucket=pjdfstest
for _ in $(seq 100); do
    if curl -sf -X POST -H 'Content-Type: application/json' -d "{\"name\": \"$bucket\"}" \
        "$endpoint/storage/v1/b?project=test" >/dev/null; then
        break
    fi
    sleep 0.1
done

"$python" -m octuefs.cli.main mount "$bucket" "$mountpoint" --endpoint "$endpoint" \
    --cache-dir "$work/cache" --allow-other --trust-stored-owners >"$work/mount.out" 2>&1 || {
    cat "$work/mount.out" >&2
    exit 1
}
sed -n 's/.*(daemon pid \([0-9]*\)).*/\1/p' "$work/mount.out" >"$work/daemon.pid"

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
