"""`octuefs mount` / `octuefs unmount` as users run them: ready on return, gone after unmount,
problems found before mounting reported with a reason and nothing left behind, the mount-helper
`-o` form, read-only mounts, and object names that cannot be local file names."""

from __future__ import annotations

import errno
import os
import re
import subprocess
import time
from pathlib import Path

import pytest

from octuefs.fs.runtime import pid_file
from octuefs.local_server import free_port
from tests.mount.conftest import CLI, PID_LINE, alive, is_mount, processes_mentioning, run

pytestmark = pytest.mark.timeout(60)


def assert_nothing_left(mountpoint) -> None:
    assert not is_mount(mountpoint)
    assert not os.path.ismount(mountpoint)
    assert processes_mentioning(os.fspath(mountpoint)) == []


def test_mount_returns_ready_and_unmount_leaves_nothing(mount, bucket):
    bucket.blob("hello.txt").upload_from_string(b"hello\n")

    mounted = mount()

    assert is_mount(mounted.path)
    assert mounted.sh("ls", mounted.path).stdout == b"hello.txt\n"
    assert alive(mounted.pid)
    assert mounted.pid in processes_mentioning(os.fspath(mounted.path))
    mountinfo = next(
        line for line in Path("/proc/self/mountinfo").read_text().splitlines() if line.split()[4] == str(mounted.path)
    )
    assert " fuse.octuefs " in mountinfo
    assert f"gs://{bucket.name}" in mountinfo

    unmounted = mounted.unmount()

    assert unmounted.returncode == 0, unmounted.stderr
    assert not alive(mounted.pid)
    assert_nothing_left(mounted.path)
    assert mounted.path.is_dir() and list(mounted.path.iterdir()) == []


def test_no_such_bucket(mount, proxy):
    mountpoint = mount.new_dir("mnt")

    result = mount.attempt("mount", "no-such-bucket-here", mountpoint, "--endpoint", proxy.url, mountpoint=mountpoint)

    assert result.returncode != 0
    assert b"gs://no-such-bucket-here: no such bucket" in result.stderr, result.stderr
    assert_nothing_left(mountpoint)


def test_missing_mountpoint(mount, bucket, proxy):
    mountpoint = mount.base / "not-there"

    result = mount.attempt("mount", bucket.name, mountpoint, "--endpoint", proxy.url, mountpoint=mountpoint)

    assert result.returncode != 0
    assert b"mountpoint does not exist" in result.stderr, result.stderr
    assert not mountpoint.exists()
    assert processes_mentioning(os.fspath(mountpoint)) == []


def test_busy_mountpoint(mount, bucket, proxy):
    bucket.blob("hello.txt").upload_from_string(b"hello\n")
    mounted = mount()

    result = mount.attempt("mount", bucket.name, mounted.path, "--endpoint", proxy.url, mountpoint=mounted.path)

    assert result.returncode != 0
    assert b"mountpoint is busy" in result.stderr, result.stderr
    assert processes_mentioning(os.fspath(mounted.path)) == [mounted.pid]
    assert mounted.sh("cat", mounted / "hello.txt").stdout == b"hello\n"


def test_unreachable_server(mount, bucket):
    mountpoint = mount.new_dir("mnt")
    closed = f"http://127.0.0.1:{free_port()}"
    started = time.monotonic()

    result = mount.attempt(
        "mount", bucket.name, mountpoint, "--endpoint", closed, "--retry-deadline", "1", mountpoint=mountpoint
    )

    assert result.returncode != 0
    assert b"cannot reach the storage server" in result.stderr, result.stderr
    assert time.monotonic() - started < 15
    assert_nothing_left(mountpoint)


def test_mount_helper_form_with_options(mount, bucket, proxy):
    bucket.blob("first.txt").upload_from_string(b"first\n")
    mountpoint, cache_dir = mount.new_dir("mnt"), mount.new_dir("cache")
    options = f"endpoint={proxy.url},cache_dir={cache_dir},metadata_ttl=1,rw,_netdev"

    result = mount.attempt(bucket.name, mountpoint, "-o", options, mountpoint=mountpoint)

    assert result.returncode == 0, result.stderr
    pid = int(re.search(rb"daemon pid (\d+)", result.stdout).group(1))
    assert run("ls", mountpoint).stdout == b"first.txt\n"
    assert (cache_dir / "octuefs.log").exists()
    bucket.blob("second.txt").upload_from_string(b"second\n")
    time.sleep(1.5)  # metadata_ttl=1 took effect: the listing is fetched again
    assert run("ls", mountpoint, timeout=20).stdout == b"first.txt\nsecond.txt\n"
    assert run(*CLI, "unmount", mountpoint).returncode == 0
    assert not alive(pid)
    assert_nothing_left(mountpoint)


def test_read_only_mount_reads_but_refuses_metadata_changes(mount, bucket, proxy):
    blob = bucket.blob("data.csv")
    blob.metadata = {"owner": "alice"}
    blob.upload_from_string(b"a,b\n1,2\n")
    mounted = mount("", "--read-only")
    path = mounted / "data.csv"

    assert mounted.sh("cat", path).stdout == b"a,b\n1,2\n"
    proxy.reset()
    refused = run("setfattr", "-n", "user.octue.tag.k", "-v", "1", path)
    assert refused.returncode != 0
    assert b"Read-only file system" in refused.stderr
    with pytest.raises(OSError) as raised:
        mounted.call(os.setxattr, path, "user.octue.labels", b"lidar")
    assert raised.value.errno == errno.EROFS
    with pytest.raises(OSError) as raised:
        mounted.call(os.removexattr, path, "user.octue.tags")
    assert raised.value.errno == errno.EROFS
    with pytest.raises(OSError) as raised:
        mounted.call(open, path, "r+b")
    assert raised.value.errno == errno.EROFS

    assert "patch" not in proxy.kinds()
    assert bucket.get_blob("data.csv").metadata == {"owner": "alice"}
    assert mounted.call(os.getxattr, path, "user.octue.tags") == b"{}"


HOSTILE = [
    "odd/line\nbreak.txt",
    "odd/" + "x" * 300,
    "odd/a//b",
    "odd/./dot.txt",
    "odd/../escape.txt",
    "odd/cr\rname",
]


def test_hostile_object_names_are_hidden_without_breaking_listings(mount, bucket):
    for name in [*HOSTILE, "odd/fine.txt"]:
        bucket.blob(name).upload_from_string(b"hostile\n")
    mounted = mount()
    # Named before its directory is listed: hidden too, so lookups and listings agree.
    for name in ("odd/line\nbreak.txt", "odd/cr\rname"):
        with pytest.raises(FileNotFoundError):
            mounted.call(os.stat, mounted / name)

    assert mounted.sh("ls", mounted / "odd").stdout.decode().split() == ["a", "fine.txt"]
    long_listing = mounted.sh("ls", "-la", mounted / "odd").stdout.decode().splitlines()[1:]
    assert [line.split()[-1] for line in long_listing] == ["a", "fine.txt"]
    assert mounted.sh("ls", "-l", mounted / "odd/a").stdout.decode().splitlines() == ["total 0"]
    found = mounted.sh("find", mounted.path).stdout.decode().splitlines()
    assert sorted(os.path.relpath(path, mounted.path) for path in found) == [".", "odd", "odd/a", "odd/fine.txt"]
    assert mounted.sh("cat", mounted / "odd/fine.txt").stdout == b"hostile\n"
    with pytest.raises(FileNotFoundError):
        mounted.call(os.stat, mounted / "odd/line\nbreak.txt")
    assert "longer than 255 bytes" in mounted.log
    assert "cannot be a local file name" in mounted.log


def test_a_stale_pid_file_is_replaced_at_mount_and_removed_at_unmount(mount, bucket):
    """A daemon killed outright leaves its pid file; the next mount there takes it over, and a clean
    exit removes it."""
    mountpoint = mount.new_dir("mnt")
    record = pid_file(mountpoint)
    record.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    finished = subprocess.Popen(["true"])
    finished.wait()
    record.write_text(f"{finished.pid}\n")  # the pid of a process that has exited
    try:
        result = mount.attempt(
            "mount",
            bucket.name,
            mountpoint,
            "--endpoint",
            mount.endpoint,
            "--cache-dir",
            mount.new_dir("cache"),
            mountpoint=mountpoint,
        )
        assert result.returncode == 0, result.stderr
        daemon = int(PID_LINE.search(result.stdout.decode()).group(1))
        assert record.read_text() == f"{daemon}\n"
        unmounted = run(*CLI, "unmount", mountpoint)
        assert unmounted.returncode == 0, unmounted.stderr
        assert not alive(daemon)
        assert not record.exists(), "the pid file outlived a clean exit"
    finally:
        record.unlink(missing_ok=True)


def test_a_second_mount_on_a_cache_directory_in_use_is_refused_and_the_first_keeps_its_writes(mount, bucket, proxy):
    """Recovery adopts every staged record in the cache directory: a second daemon there would upload
    (or set aside in lost+found) the first one's files while they are still being written."""
    first = mount()
    handle = first.call(open, first / "open.txt", "wb")
    first.call(handle.write, b"first half, ")
    first.call(handle.flush)
    mountpoint = mount.new_dir("mnt")

    result = mount.attempt(
        "mount", bucket.name, mountpoint, "--endpoint", proxy.url, "--cache-dir", first.cache_dir, mountpoint=mountpoint
    )

    assert result.returncode != 0
    assert b"in use by another octuefs mount" in result.stderr, result.stderr
    assert_nothing_left(mountpoint)
    first.call(handle.write, b"second half\n")
    first.call(handle.close)
    assert bucket.blob("open.txt").download_as_bytes() == b"first half, second half\n"
    lost_and_found = first.cache_dir / "lost+found"
    assert not lost_and_found.exists() or not any(lost_and_found.iterdir())
