#!/usr/bin/env bash
# Build the octuefs image with one command; the last line printed is the image's name.
#
#   bash scripts/build-image.sh            # base: a Debian bookworm rootfs made here with debootstrap
#   BASE=debian:bookworm-slim bash scripts/build-image.sh   # a base image the registry can give
#
# Without BASE, the base image is made locally (debootstrap, then `podman import`), for machines that
# cannot pull images. The image is tagged by a hash of everything it is built from (the Containerfile,
# the entrypoint, the package's sources and the base image's id): a second run with the same inputs
# builds nothing and prints the same name.
set -euo pipefail
cd "$(dirname "$0")/.."

# The project's podman settings, unless the user chose a containers.conf for this run themselves.
export CONTAINERS_CONF=${CONTAINERS_CONF:-$(pwd)/deploy/podman/containers.conf}
image_repository=${OCTUEFS_IMAGE:-localhost/octuefs}
debian_mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
local_base=localhost/octuefs-base:bookworm

for tool in podman; do
    command -v "$tool" >/dev/null || { echo "build-image: $tool is missing (as root: bash scripts/install.sh)" >&2; exit 1; }
done

make_local_base() {
    command -v debootstrap >/dev/null || { echo "build-image: debootstrap is missing (as root: bash scripts/install.sh)" >&2; exit 1; }
    local rootfs
    rootfs=$(mktemp -d)
    trap 'rm -rf "$rootfs"' RETURN
    echo "build-image: debootstrap bookworm into $rootfs" >&2
    debootstrap --variant=minbase bookworm "$rootfs" "$debian_mirror" >&2
    rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
    tar -C "$rootfs" --numeric-owner -c . | podman import --quiet - "$local_base" >&2
}

if [ -z "${BASE:-}" ]; then
    podman image exists "$local_base" || make_local_base
    base=$local_base
else
    base=$BASE
    podman image exists "$base" || podman pull --quiet "$base" >&2
fi

inputs_hash() {
    {
        podman image inspect --format '{{.Id}}' "$base"
        find Containerfile .containerignore scripts/build-image.sh deploy/container pyproject.toml README.md octuefs \
            -type f -not -path '*/__pycache__/*' -print0 | LC_ALL=C sort -z | xargs -0 sha256sum
    } | sha256sum | cut -c1-16
}

image="$image_repository:$(inputs_hash)"
if ! podman image exists "$image"; then
    echo "build-image: building $image from $base" >&2
    rm -rf build/wheels
    "${PYTHON:-python3}" -m pip wheel --quiet --wheel-dir build/wheels . >&2
    podman build --format docker --network host --build-arg "BASE=$base" --tag "$image" --file Containerfile . >&2
fi
echo "$image"
