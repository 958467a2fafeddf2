"""`octuefs unmount` with uploads pending: it waits for them (bounded by --wait), names what is still
pending and where its bytes are kept, and unmounts unless the mount is in use (as umount(8) refuses).
`octuefs stats` names the pending files. Real mounts, real `cp`, the proxy slowing or refusing uploads."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.mount.conftest import CLI, alive, is_mount, run, wait_gone
from tests.mount.test_signals import MARGIN, finish_copy, staged_files, start_copy, wait_until
from tests.support.http_proxy import Fault

pytestmark = pytest.mark.timeout(120)

MiB = 1024 * 1024


def unmount(mounted, *options: str) -> tuple[subprocess.CompletedProcess, float]:
    started = time.monotonic()
    result = run(*CLI, "unmount", *options, mounted.path, timeout=90)
    return result, time.monotonic() - started


def statistics_of(mounted) -> dict:
    """Read in this process: a child process would inherit descriptors open on the mount, and closing
    them (at exec) would flush, i.e. upload, the very files being watched."""
    return json.loads(mounted.call(os.getxattr, mounted.path, "user.octuefs.stats"))


def test_stats_names_each_pending_file_its_state_and_where_its_bytes_are(mount, bucket):
    mounted = mount()
    descriptor = mounted.call(os.open, mounted / "draft.txt", os.O_WRONLY | os.O_CREAT, 0o644)
    mounted.call(os.write, descriptor, b"not yet closed\n")

    statistics = statistics_of(mounted)

    location = f"gs://{bucket.name}/draft.txt"
    assert statistics["pending_uploads"] == 1, statistics
    state = statistics["pending"][location]
    assert state["status"] == "open for writing" and state["open"] == 1
    assert Path(state["staged"]).read_bytes() == b"not yet closed\n"
    mounted.call(os.close, descriptor)
    assert statistics_of(mounted)["pending"] == {}
    assert "pending: -" in mounted.sh(*CLI, "stats", mounted.path).stdout.decode()


def test_unmount_waits_for_an_upload_in_progress(mount, bucket, proxy, tmp_path):
    content = os.urandom(4 * MiB + 5)
    source = tmp_path / "results.bin"
    source.write_bytes(content)
    mounted = mount()
    slow = proxy.add(Fault("delay", None, r"/upload/", remaining=100, lasting=60, seconds=2))
    copy = start_copy(source, mounted / "results.bin")
    try:
        wait_until(lambda: slow.remaining < 100, 20, "the upload reaching the server")

        result, elapsed = unmount(mounted)
    finally:
        finish_copy(copy)

    assert result.returncode == 0, result.stderr
    assert bucket.blob("results.bin").download_as_bytes() == content
    assert b"waiting up to 30 s for 1 pending upload" in result.stderr, result.stderr
    assert f"gs://{bucket.name}/results.bin".encode() in result.stderr
    assert copy.returncode == 0
    assert not is_mount(mounted.path) and not alive(mounted.pid)
    assert staged_files(mounted.cache_dir) == []
    print(f"unmount waiting for a slowed upload: {elapsed:.2f} s")


def test_unmount_with_the_server_down_gives_up_after_its_bound_naming_the_file(mount, bucket, proxy):
    mounted = mount("", "--stop-timeout", "3")
    proxy.add(Fault("status", None, r"/upload/", remaining=None, lasting=100, status=503))
    descriptor = mounted.call(os.open, mounted / "offline.txt", os.O_WRONLY | os.O_CREAT, 0o644)
    mounted.call(os.write, descriptor, b"written while the server is down\n")
    with pytest.raises(OSError):
        mounted.call(os.close, descriptor)  # EIO: the upload failed; the bytes stay staged

    result, elapsed = unmount(mounted, "--wait", "2")

    assert result.returncode == 0, result.stderr
    staged = staged_files(mounted.cache_dir)
    assert len(staged) == 1 and staged[0].read_bytes() == b"written while the server is down\n"
    message = result.stderr.decode()
    assert "still pending after 2 s" in message and f"gs://{bucket.name}/offline.txt" in message, message
    assert str(staged[0]) in message and "next mount" in message, message
    assert 2 <= elapsed < 2 + 3 + MARGIN, elapsed
    assert not is_mount(mounted.path)
    assert wait_gone(mounted.pid, 5)

    proxy.reset()
    again = mount(cache_dir=mounted.cache_dir)
    assert bucket.blob("offline.txt").download_as_bytes() == b"written while the server is down\n"
    assert again.read_bytes("offline.txt") == b"written while the server is down\n"
    print(f"unmount --wait 2 with the server refusing uploads: {elapsed:.2f} s")


def test_unmount_of_a_mount_with_a_file_open_for_writing_refuses_and_names_it(mount, bucket):
    mounted = mount()
    # Another program holds the file open with bytes not yet uploaded.
    writer = subprocess.Popen(
        [sys.executable, "-c", WRITE_AND_HOLD, mounted / "open.txt"], stdout=subprocess.PIPE, stdin=subprocess.PIPE
    )
    try:
        assert writer.stdout.readline() == b"written\n"

        result, elapsed = unmount(mounted, "--wait", "1")

        assert result.returncode == 1
        assert 1 <= elapsed < 1 + MARGIN, elapsed
        message = result.stderr.decode()
        assert "busy" in message and f"gs://{bucket.name}/open.txt (open for writing, 1 open handle(s))" in message, (
            message
        )
        assert is_mount(mounted.path) and alive(mounted.pid)
        writer.communicate(b"close\n", timeout=20)
    finally:
        if writer.poll() is None:
            writer.kill()
            writer.wait()
    assert writer.returncode == 0
    assert bucket.blob("open.txt").download_as_bytes() == b"still writing\n"
    result, _ = unmount(mounted)
    assert result.returncode == 0 and result.stderr == b"", result.stderr
    assert not is_mount(mounted.path)


WRITE_AND_HOLD = """
import os, sys
descriptor = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT, 0o644)
os.write(descriptor, b"still writing\\n")
print("written", flush=True)
sys.stdin.readline()
os.close(descriptor)
"""
