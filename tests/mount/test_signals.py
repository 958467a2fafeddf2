"""The daemon stopped by a signal (SIGTERM from systemd or kill, SIGINT, SIGHUP from a closed terminal):
it takes no new operations, gives uploads in progress a bounded time to finish, keeps what is left
staged (uploaded at the next mount with the same cache directory), unmounts and exits.

Real daemons, real signals, real FUSE; the proxy slows or refuses uploads so a signal lands mid-upload.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from octuefs.storage.objects import StorageSettings
from tests.mount.conftest import CLI, Mount, is_mount, require_fuse, run, wait_gone, within
from tests.support.http_proxy import Fault

pytestmark = pytest.mark.timeout(120)

MiB = 1024 * 1024
PART = StorageSettings().upload_chunk_size
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
# The bound given to the daemons here (--stop-timeout), and what the shared machine may add to it.
STOP_TIMEOUT = 3
MARGIN = 15


def stop_and_time(mounted: Mount, number: int = signal.SIGTERM, bound: float = 60) -> float:
    """Send `number` to the daemon; seconds until it exited (the test fails if that passes `bound`)."""
    started = time.monotonic()
    os.kill(mounted.pid, number)
    assert wait_gone(mounted.pid, bound), f"the daemon is still running {bound} s after the signal\n{mounted.log}"
    return time.monotonic() - started


def wait_until(condition, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"{what} did not happen within {seconds} s"
        time.sleep(0.02)


def staged_files(cache_dir: Path) -> list[Path]:
    return sorted((cache_dir / "staging").glob("*.data"))


def start_copy(source: Path, target: Path) -> subprocess.Popen:
    """`cp` in its own process: its close() is what waits for the upload."""
    return subprocess.Popen(["cp", source, target], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def finish_copy(copy: subprocess.Popen) -> None:
    """The copy ends once the daemon is gone (its close fails or succeeds); never left running."""
    try:
        copy.wait(timeout=20)
    finally:
        if copy.poll() is None:
            copy.kill()
            copy.wait()


@pytest.mark.parametrize("number", STOP_SIGNALS, ids=lambda number: signal.Signals(number).name)
def test_each_stop_signal_unmounts_and_ends_the_daemon(mount, bucket, number):
    bucket.blob("a.txt").upload_from_string(b"a")
    mounted = mount("", "--stop-timeout", str(STOP_TIMEOUT))
    assert mounted.read_bytes("a.txt") == b"a"

    elapsed = stop_and_time(mounted, number)

    assert not is_mount(mounted.path)
    assert elapsed < 5 + MARGIN, elapsed
    name = signal.Signals(number).name
    assert f"received {name}" in mounted.log and f"unmounted {mounted.path}" in mounted.log, mounted.log
    print(f"{name} to exit with nothing pending: {elapsed:.2f} s")


def test_sigterm_during_a_slow_upload_lets_it_finish(mount, bucket, proxy, tmp_path):
    content = os.urandom(8 * MiB + 123)
    source = tmp_path / "big.bin"
    source.write_bytes(content)
    mounted = mount("", "--stop-timeout", "30")
    slow = proxy.add(Fault("delay", None, r"/upload/", remaining=100, lasting=60, seconds=2))
    copy = start_copy(source, mounted / "big.bin")
    try:
        wait_until(lambda: slow.remaining < 100, 20, "the upload reaching the server")

        elapsed = stop_and_time(mounted)
    finally:
        finish_copy(copy)

    assert copy.returncode == 0, copy.stderr.read() if copy.stderr else ""
    assert bucket.blob("big.bin").download_as_bytes() == content
    assert staged_files(mounted.cache_dir) == []
    assert not is_mount(mounted.path)
    assert elapsed < 30 + MARGIN, elapsed
    print(f"SIGTERM to exit with a slowed upload in progress (finished): {elapsed:.2f} s")


def test_sigterm_while_the_server_refuses_an_upload_exits_within_the_bound_and_keeps_the_bytes(
    mount, bucket, proxy, tmp_path
):
    content = os.urandom(2 * MiB + 7)
    source = tmp_path / "kept.bin"
    source.write_bytes(content)
    # The default retry deadline: the upload alone would hold a close (and the exit) for two minutes.
    mounted = mount("", "--retry-deadline", "120", "--stop-timeout", str(STOP_TIMEOUT))
    proxy.add(Fault("status", None, r"/upload/", remaining=None, lasting=100, status=503))
    copy = start_copy(source, mounted / "kept.bin")
    try:
        wait_until(lambda: proxy.count("upload") > 0, 20, "the upload reaching the server")

        elapsed = stop_and_time(mounted, bound=STOP_TIMEOUT + MARGIN)
    finally:
        finish_copy(copy)

    assert not is_mount(mounted.path)
    assert bucket.get_blob("kept.bin") is None
    staged = staged_files(mounted.cache_dir)
    assert len(staged) == 1 and staged[0].read_bytes() == content
    log = mounted.log
    assert f"gs://{bucket.name}/kept.bin" in log and str(staged[0]) in log, log

    proxy.reset()
    again = mount(cache_dir=mounted.cache_dir)
    assert bucket.blob("kept.bin").download_as_bytes() == content
    assert staged_files(again.cache_dir) == []
    assert again.read_bytes("kept.bin") == content
    print(f"SIGTERM to exit with an upload the server refuses: {elapsed:.2f} s")


def test_sigterm_with_a_file_open_for_writing_keeps_its_bytes_for_the_next_mount(mount, bucket):
    content = os.urandom(MiB + 99)
    mounted = mount("", "--stop-timeout", str(STOP_TIMEOUT))
    descriptor = mounted.call(os.open, mounted / "open.bin", os.O_WRONLY | os.O_CREAT, 0o644)
    mounted.call(os.write, descriptor, content)

    elapsed = stop_and_time(mounted, bound=STOP_TIMEOUT + MARGIN)
    with contextlib.suppress(OSError):
        mounted.call(os.close, descriptor)

    assert not is_mount(mounted.path)
    assert bucket.get_blob("open.bin") is None
    staged = staged_files(mounted.cache_dir)
    assert len(staged) == 1 and staged[0].read_bytes() == content
    assert f"gs://{bucket.name}/open.bin" in mounted.log and str(staged[0]) in mounted.log, mounted.log

    again = mount(cache_dir=mounted.cache_dir)
    assert bucket.blob("open.bin").download_as_bytes() == content
    assert again.read_bytes("open.bin") == content
    print(f"SIGTERM to exit with a file open for writing: {elapsed:.2f} s")


def test_bytes_whose_upload_landed_as_the_daemon_died_are_not_set_aside_at_the_next_mount(mount, bucket):
    """The upload reached the server, the daemon died before dropping its staged copy (SIGKILL after a
    stop timeout, as systemd does): the next mount finds the object holding exactly those bytes."""
    content = os.urandom(MiB + 1)
    mounted = mount()
    descriptor = mounted.call(os.open, mounted / "landed.bin", os.O_WRONLY | os.O_CREAT, 0o644)
    mounted.call(os.write, descriptor, content)
    os.kill(mounted.pid, signal.SIGKILL)
    assert wait_gone(mounted.pid, 10)
    with contextlib.suppress(OSError):
        mounted.call(os.close, descriptor)
    bucket.blob("landed.bin").upload_from_string(content)  # what the dying daemon's upload made
    generation = bucket.get_blob("landed.bin").generation

    again = mount(cache_dir=mounted.cache_dir)

    assert f"gs://{bucket.name}/landed.bin already holds these {len(content)} bytes" in again.log, again.log
    assert bucket.get_blob("landed.bin").generation == generation
    assert not (mounted.cache_dir / "lost+found").exists()
    assert staged_files(again.cache_dir) == []


def test_a_foreground_daemon_stops_within_the_bound_while_a_part_of_a_file_is_being_sent(bucket, proxy, tmp_path):
    """Under systemd the daemon runs in the foreground: a part of a large new file sent while it is
    written (by a pool that interpreter exit joins) must not hold the exit while its request stalls."""
    require_fuse()
    mountpoint = tmp_path / "mnt"
    mountpoint.mkdir()
    command = [*CLI, "mount", "--foreground", bucket.name, str(mountpoint), "--endpoint", proxy.url,
               "--cache-dir", str(tmp_path / "cache"), "--stop-timeout", str(STOP_TIMEOUT)]  # fmt: skip
    daemon = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        wait_until(lambda: is_mount(mountpoint), 30, "the mount")
        # The part's request hangs, as on a link that stopped answering.
        stalled = proxy.add(Fault("delay", "PUT", r"/upload/", remaining=1, seconds=50))
        descriptor = within(20, os.open, mountpoint / "big.bin", os.O_WRONLY | os.O_CREAT, 0o644)
        within(60, os.write, descriptor, os.urandom(PART + MiB))
        wait_until(lambda: stalled.remaining == 0, 20, "a part being sent")

        started = time.monotonic()
        daemon.send_signal(signal.SIGTERM)
        code = daemon.wait(timeout=STOP_TIMEOUT + MARGIN + 10)
        elapsed = time.monotonic() - started
        with contextlib.suppress(OSError, pytest.fail.Exception):
            within(10, os.close, descriptor)
    finally:
        run("fusermount3", "-u", "-z", mountpoint, timeout=10)
        if daemon.poll() is None:
            daemon.kill()
            daemon.wait(timeout=10)
    assert code == 0, daemon.stderr.read()
    assert not is_mount(mountpoint)
    assert elapsed < STOP_TIMEOUT + MARGIN, elapsed
    assert len(staged_files(tmp_path / "cache")) == 1
    print(f"foreground daemon, SIGTERM while a part is being sent: {elapsed:.2f} s")
