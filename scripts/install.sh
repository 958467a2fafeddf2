#!/usr/bin/env bash
# Install octuefs and everything it needs into ./.venv (idempotent; re-running is fast).
# As root on Debian/Ubuntu it also installs the system packages: fuse3 (mount helper), libfuse3-dev and
# pkg-config (to build pyfuse3), attr (getfattr/setfattr), python3-venv, rsync, git and vim (the tools the
# mount tests drive), and as root only (never asked of other users) rclone (the benchmark's comparison) and
# podman, runc and debootstrap (scripts/build-image.sh and the container tests).
set -euo pipefail
cd "$(dirname "$0")/.."

system_packages=(fuse3 libfuse3-dev pkg-config attr gcc python3-dev python3-venv rsync git vim)
if [ "$(id -u)" = 0 ]; then
    system_packages+=(rclone podman runc debootstrap)
fi

missing_system_packages() {
    command -v dpkg-query >/dev/null || return 0
    for package in "${system_packages[@]}"; do
        dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || echo "$package"
    done
}

missing=$(missing_system_packages | tr '\n' ' ')
if [ -n "${missing// /}" ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        echo "octuefs: installing system packages: $missing"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >/dev/null
    else
        echo "octuefs: missing system packages ($missing); install them as root: apt-get install $missing" >&2
    fi
fi

python=${PYTHON:-python3}
if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
    echo "octuefs: needs Python >= 3.11; set PYTHON=/path/to/python3.11" >&2
    exit 1
fi
[ -x .venv/bin/python ] || "$python" -m venv .venv
stamp=.venv/.octuefs-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
    .venv/bin/python -m pip install -q --upgrade pip
    .venv/bin/python -m pip install -q -e '.[dev]'
    touch "$stamp"
fi
if [ "$(id -u)" = 0 ]; then
    # mount(8) runs fuse.octuefs fstab entries with a fixed PATH: put the command where it looks.
    ln -sf "$(pwd)/.venv/bin/octuefs" /usr/local/bin/octuefs
fi
echo "octuefs: installed in $(pwd)/.venv ($(.venv/bin/octuefs --version))"
