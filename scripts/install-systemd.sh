#!/usr/bin/env bash
# Install octuefs for systemd (as root): everything install.sh installs (including /usr/local/bin/octuefs),
# the octuefs@.service template, and an example instance configuration in /etc/octuefs/example.conf.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" != 0 ]; then
    echo "install-systemd.sh: run as root" >&2
    exit 1
fi
bash scripts/install.sh
install -m 644 systemd/octuefs@.service /etc/systemd/system/octuefs@.service
mkdir -p /etc/octuefs
if [ ! -f /etc/octuefs/example.conf ]; then
    cat > /etc/octuefs/example.conf <<'CONF'
SOURCE=my-bucket/some/prefix
MOUNTPOINT=/mnt/example
OPTIONS=cache_dir=/var/cache/octuefs/example,cache_size=10G,metadata_ttl=60
CONF
fi
if command -v systemctl >/dev/null && [ -d /run/systemd/system ]; then
    systemctl daemon-reload
fi
echo "installed: edit /etc/octuefs/NAME.conf, then: systemctl enable --now octuefs@NAME"
