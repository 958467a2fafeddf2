"""The on-disk chunk cache seen through the mount: bounded by --cache-size, reused by a remount of
the same cache directory, and never serving an older generation once a newer one is seen."""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

import pytest

from tests.mount.conftest import alive, is_mount

pytestmark = pytest.mark.timeout(60)

MiB = 1024 * 1024
CHUNK_FILE_BYTES = MiB + 4  # one cached chunk: its bytes and a CRC32C trailer


def chunk_files(cache_dir: Path) -> list[Path]:
    return [path for path in (cache_dir / "chunks").glob("*/*") if path.is_file()]


def settled_cache_bytes(cache_dir: Path, seconds: float = 5.0) -> int:
    """The cache's size once readahead has stopped writing (no temp files, same total twice)."""
    deadline = time.monotonic() + seconds
    previous = -1
    while True:
        files = chunk_files(cache_dir)
        total = sum(path.stat().st_size for path in files if path.exists())
        if (total == previous and not any(path.name.endswith(".tmp") for path in files)) or time.monotonic() > deadline:
            return total
        previous = total
        time.sleep(0.2)


def test_cache_stays_within_its_size_bound(mount, bucket):
    content = os.urandom(12 * MiB)
    bucket.blob("twelve.bin").upload_from_string(content)
    mounted = mount("", "--cache-size", "3M")

    assert mounted.sh("md5sum", mounted / "twelve.bin").stdout.split()[0].decode() == hashlib.md5(content).hexdigest()

    total = settled_cache_bytes(mounted.cache_dir)
    assert 0 < total <= 3 * MiB + CHUNK_FILE_BYTES, total
    assert mounted.read_bytes("twelve.bin") == content


def test_remount_with_the_same_cache_dir_reads_from_the_cache(mount, bucket, proxy):
    content = b"cached across mounts\n" * 100
    bucket.blob("notes/small.txt").upload_from_string(content)
    first = mount()
    assert first.sh("cat", first / "notes/small.txt").stdout == content
    assert chunk_files(first.cache_dir)
    unmounted = first.unmount()
    assert unmounted.returncode == 0, unmounted.stderr
    assert not is_mount(first.path)
    assert not alive(first.pid)

    second = mount(cache_dir=first.cache_dir)
    second.sh("stat", second / "notes/small.txt")
    proxy.reset()

    assert second.sh("cat", second / "notes/small.txt").stdout == content
    assert "media" not in proxy.kinds(), proxy.kinds()


def test_an_overwritten_object_is_read_anew_after_the_ttl(mount, bucket, proxy):
    old = b"old generation " * 1000
    new = b"NEW GENERATION " * 1000
    bucket.blob("report.txt").upload_from_string(old)
    mounted = mount(metadata_ttl=1)
    assert mounted.sh("cat", mounted / "report.txt").stdout == old
    assert mounted.read_bytes("report.txt") == old  # now in the chunk cache and the kernel's page cache

    bucket.blob("report.txt").upload_from_string(new)
    time.sleep(1.5)
    proxy.reset()

    assert mounted.sh("cat", mounted / "report.txt").stdout == new
    assert mounted.read_bytes("report.txt") == new
    assert "media" in proxy.kinds()
