"""Running octuefs the way operators do: from /etc/fstab through mount(8), and under systemd."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import unavailable
from tests.mount.conftest import is_mount, require_fuse, run, stop_daemon, wait_gone

pytestmark = pytest.mark.timeout(60)


def test_fstab_entry_mounts_and_unmounts_with_mount_and_umount(bucket, proxy, tmp_path):
    require_fuse()
    if not Path("/usr/local/bin/octuefs").exists():
        unavailable(
            "/usr/local/bin/octuefs is missing: mount(8) needs it for fuse.octuefs (scripts/install.sh as root)"
        )
    bucket.blob("data/readings.csv").upload_from_string(b"t,v\n")
    mountpoint = tmp_path / "mnt"
    mountpoint.mkdir()
    fstab = tmp_path / "fstab"
    options = f"rw,_netdev,endpoint={proxy.url},cache_dir={tmp_path / 'cache'},metadata_ttl=1"
    fstab.write_text(f"{bucket.name}/data {mountpoint} fuse.octuefs {options} 0 0\n")
    try:
        mounted = subprocess.run(
            ["mount", "-T", str(fstab), str(mountpoint)], capture_output=True, text=True, timeout=30
        )
        assert mounted.returncode == 0, mounted.stderr
        assert is_mount(mountpoint)
        assert run("cat", mountpoint / "readings.csv").stdout == b"t,v\n"
        unmounted = subprocess.run(["umount", str(mountpoint)], capture_output=True, text=True, timeout=30)
        assert unmounted.returncode == 0, unmounted.stderr
        assert not is_mount(mountpoint)
    finally:
        run("fusermount3", "-u", "-z", mountpoint, timeout=10)


def test_foreground_daemon_notifies_systemd_and_stops_on_sigterm(bucket, proxy, tmp_path):
    require_fuse()
    bucket.blob("a.txt").upload_from_string(b"a")
    mountpoint = tmp_path / "mnt"
    mountpoint.mkdir()
    notify_path = tmp_path / "notify.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as notify:
        notify.bind(str(notify_path))
        notify.settimeout(20)
        command = [sys.executable, "-m", "octuefs.cli.main", "mount", "--foreground", bucket.name, str(mountpoint),
                   "--endpoint", proxy.url, "--cache-dir", str(tmp_path / "cache")]  # fmt: skip
        daemon = subprocess.Popen(command, env={**os.environ, "NOTIFY_SOCKET": str(notify_path)},
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)  # fmt: skip
        try:
            ready = notify.recv(4096).decode()
            assert "READY=1" in ready and f"MAINPID={daemon.pid}" in ready
            assert run("cat", mountpoint / "a.txt").stdout == b"a"
            daemon.terminate()
            assert "STOPPING=1" in notify.recv(4096).decode()
            assert daemon.wait(timeout=20) == 0
            assert not is_mount(mountpoint)
        finally:
            run("fusermount3", "-u", "-z", mountpoint, timeout=10)
            if not wait_gone(daemon.pid, 1):
                stop_daemon(daemon.pid)
            daemon.wait(timeout=10)
