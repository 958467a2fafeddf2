#!/bin/sh
# octuefs-entrypoint [SOURCE] [octuefs mount options...]
# Mounts SOURCE (bucket, bucket/prefix or gs://...; else $OCTUEFS_BUCKET) at $OCTUEFS_MOUNTPOINT and
# becomes the daemon (exec: octuefs is PID 1 and gets the runtime's SIGTERM itself). $OCTUEFS_OPTIONS
# takes mount options as in fstab (key=value,flag,...); arguments after SOURCE are passed on as they are.
set -eu
source=${OCTUEFS_BUCKET:-}
case "${1:-}" in
    "" | -*) ;;
    *) source=$1; shift ;;
esac
if [ -z "$source" ]; then
    echo "octuefs-entrypoint: no bucket: set OCTUEFS_BUCKET or give it as the first argument" >&2
    exit 2
fi
mountpoint=${OCTUEFS_MOUNTPOINT:-/mnt/bucket}
mkdir -p "$mountpoint"
set -- --foreground --log-format json \
    --cache-dir "${OCTUEFS_CACHE_DIR:-/var/cache/octuefs}" \
    --metrics-port "${OCTUEFS_METRICS_PORT:-9101}" --metrics-address "${OCTUEFS_METRICS_ADDRESS:-0.0.0.0}" \
    ${OCTUEFS_OPTIONS:+-o "$OCTUEFS_OPTIONS"} "$@"
exec octuefs mount "$source" "$mountpoint" "$@"
