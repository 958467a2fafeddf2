"""Files being written live on the local staging disk: its refusals reach programs as a local disk's
would (EFBIG, ENOSPC), not as EIO, and are not logged as unexpected errors.

The small disk is a tmpfs this test mounts as the cache directory (and unmounts in teardown); the
log goes elsewhere, so that a full disk does not also silence it.
"""

from __future__ import annotations

import errno
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.mount.conftest import Mount, is_mount, run

pytestmark = pytest.mark.timeout(90)

HUGE = 999_999_999_999_999
MiB = 1024 * 1024


def local_errno(function, *args) -> int | None:
    try:
        function(*args)
    except OSError as error:
        return error.errno
    return None


def staged(cache_dir: Path) -> list[Path]:
    return sorted((cache_dir / "staging").glob("*.data"))


def staged_after_release(cache_dir: Path) -> list[Path]:
    """What stays staged once the last release, which reaches the daemon just after close() returns,
    has been handled (waiting at most 5 s for the staged files to go)."""
    deadline = time.monotonic() + 5
    while staged(cache_dir) and time.monotonic() < deadline:
        time.sleep(0.05)
    return staged(cache_dir)


def free_bytes(directory: Path) -> int:
    disk = os.statvfs(directory)
    return disk.f_bavail * disk.f_frsize


def fill_until_full(mounted: Mount, descriptor: int) -> None:
    """Write to `descriptor` until the 2 MiB staging disk refuses more, as ENOSPC."""
    with pytest.raises(OSError) as raised:
        for _ in range(8):
            mounted.call(os.write, descriptor, os.urandom(MiB))
    assert raised.value.errno == errno.ENOSPC


@pytest.fixture
def small_disk(tmp_path) -> Iterator[Path]:
    """A 2 MiB tmpfs, 0700 (a cache directory others can write is refused), unmounted (lazily, in
    case a daemon still holds it) when the test ends."""
    directory = tmp_path / "small-disk"
    directory.mkdir()
    mounted = run("mount", "-t", "tmpfs", "-o", "size=2m,mode=0700", "tmpfs", directory)
    if mounted.returncode != 0:
        pytest.fail(f"could not mount a tmpfs (the test needs root): {mounted.stderr.decode()}")
    try:
        yield directory
    finally:
        subprocess.run(["umount", "-l", directory], capture_output=True, timeout=10)
        assert not is_mount(directory)


def test_a_size_the_staging_disk_refuses_answers_its_own_error(mount, bucket, tmp_path):
    bucket.blob("small.txt").upload_from_string(b"small\n")
    local = tmp_path / "local.txt"
    local.write_bytes(b"small\n")
    expected = local_errno(os.truncate, local, HUGE)
    assert expected == errno.EFBIG, "the disk under the cache directory must refuse a file this large"
    mounted = mount()

    for name in ("small.txt", "new.txt"):
        result = run("truncate", "-s", str(HUGE), mounted / name)
        assert result.returncode != 0 and b"File too large" in result.stderr, (name, result.stderr)
    with pytest.raises(OSError) as raised:  # truncate(2) by path: no open handle holds the staged copy
        mounted.call(os.truncate, mounted / "small.txt", HUGE)
    assert raised.value.errno == errno.EFBIG
    assert staged(mounted.cache_dir) == [], "the refused truncate left its staged copy behind"
    assert mounted.read_bytes("small.txt") == b"small\n"
    assert mounted.read_bytes("new.txt") == b""  # made by the open, as truncate makes it on a local disk
    assert bucket.blob("small.txt").download_as_bytes() == b"small\n"
    assert staged(mounted.cache_dir) == []
    assert "Traceback" not in mounted.log and "unexpected error" not in mounted.log


def test_a_full_staging_disk_answers_enospc(small_disk, mount, bucket, tmp_path):
    log_file = tmp_path / "octuefs.log"
    mounted = mount("", "--log-file", str(log_file), cache_dir=small_disk)
    filler = mounted.call(os.open, mounted / "big.bin", os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        fill_until_full(mounted, filler)
        result = run("sh", "-c", f"echo more > {mounted / 'more.txt'}")
        assert result.returncode != 0 and b"No space left on device" in result.stderr, result.stderr
    finally:
        mounted.call(os.close, filler)

    log = log_file.read_text()
    assert "Traceback" not in log and "unexpected error" not in log, log[-3000:]
    mounted.sh("sh", "-c", f"echo fits > {mounted / 'more.txt'}")  # the closed file's staged bytes are gone
    assert bucket.blob("more.txt").download_as_bytes() == b"fits\n"
    assert mounted.unmount().returncode == 0


TiB = 1024**4


@pytest.mark.parametrize("size", ["1P", str(5 * TiB + 1), "6T"])
def test_a_size_past_the_object_limit_is_efbig_at_once(mount, bucket, size):
    """GCS holds objects up to 5 TiB: a larger file could never be uploaded, whatever the disk takes."""
    bucket.blob("small.txt").upload_from_string(b"small\n")
    mounted = mount()
    for name in ("small.txt", "new.txt"):
        result = run("truncate", "-s", size, mounted / name, timeout=10)
        assert result.returncode != 0 and b"File too large" in result.stderr, (name, result.stderr)
        descriptor = mounted.call(os.open, mounted / name, os.O_WRONLY)
        try:
            assert local_errno(mounted.call, os.pwrite, descriptor, b"x", 5 * TiB) == errno.EFBIG
        finally:
            mounted.call(os.close, descriptor)
    assert bucket.blob("small.txt").download_as_bytes() == b"small\n"
    assert bucket.blob("new.txt").download_as_bytes() == b""
    assert staged_after_release(mounted.cache_dir) == []


def test_a_sparse_growth_past_the_free_staging_space_is_enospc(small_disk, mount, bucket, tmp_path):
    """A hole is uploaded as zeros: growing a file by more than the staging disk could hold is refused
    at once (as writing the zeros locally would be), instead of sending gigabytes nobody wrote."""
    bucket.blob("small.txt").upload_from_string(b"small\n")
    mounted = mount("", "--log-file", str(tmp_path / "octuefs.log"), cache_dir=small_disk)
    for name in ("small.txt", "new.txt"):
        result = run("truncate", "-s", "100G", mounted / name, timeout=10)
        assert result.returncode != 0 and b"No space left on device" in result.stderr, (name, result.stderr)
    descriptor = mounted.call(os.open, mounted / "small.txt", os.O_WRONLY)
    try:
        assert local_errno(mounted.call, os.pwrite, descriptor, b"x", 100 * MiB) == errno.ENOSPC
    finally:
        mounted.call(os.close, descriptor)
    assert bucket.blob("small.txt").download_as_bytes() == b"small\n"
    mounted.sh("truncate", "-s", "1M", mounted / "small.txt")  # what the disk could hold is a file's size
    assert bucket.blob("small.txt").download_as_bytes() == b"small\n" + bytes(MiB - 6)
    assert staged_after_release(small_disk) == []


def test_a_file_that_filled_the_staging_disk_gives_the_space_back_when_unlinked(small_disk, mount, bucket, tmp_path):
    mounted = mount("", "--log-file", str(tmp_path / "octuefs.log"), cache_dir=small_disk)
    filler = mounted.call(os.open, mounted / "big.bin", os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        fill_until_full(mounted, filler)
        mounted.call(os.unlink, mounted / "big.bin")
    finally:
        mounted.call(os.close, filler)
    assert staged_after_release(small_disk) == [], "the unlinked file's staged bytes outlived its last close"
    deadline = time.monotonic() + 5  # a worker may still be closing its descriptor of the removed file
    while free_bytes(small_disk) < MiB and time.monotonic() < deadline:
        time.sleep(0.05)
    assert free_bytes(small_disk) > MiB, sorted(small_disk.rglob("*"))
    mounted.sh("sh", "-c", f"echo fits > {mounted / 'more.txt'}")
    assert bucket.blob("more.txt").download_as_bytes() == b"fits\n"
    assert bucket.blob("big.bin").exists() is False
    assert "Traceback" not in (tmp_path / "octuefs.log").read_text()
