# Sourced by scripts/pjdfstest.sh and scripts/fsx.sh: start the bundled server on 127.0.0.1, make a
# bucket, and mount it (as root) with --allow-other --trust-stored-owners at "$mountpoint", in a fresh
# work directory "$work"; everything is stopped and unmounted when the sourcing script exits.
#
#   source scripts/posix-mount.sh NAME   (NAME: the bucket, and the work directory's prefix)

if [[ $(id -u) != 0 ]]; then
    echo "this needs root (the suites switch users and make device nodes)" >&2
    exit 2
fi
cd "$(dirname "${BASH_SOURCE[0]}")/.."
repository=$(pwd)
python="$repository/.venv/bin/python"
[[ -x $python ]] || bash scripts/install.sh >/dev/null

work=$(mktemp -d "/tmp/octuefs-$1.XXXXXX")
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
bucket=$1
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
