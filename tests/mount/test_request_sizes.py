"""The kernel sends large reads and writes: 1 MiB requests instead of 128 KiB ones, so a sequential
transfer costs the daemon an eighth of the Python answers (octuefs/fs/readahead.py)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

pytestmark = pytest.mark.timeout(60)

MiB = 1024 * 1024


def readahead_kib(mountpoint: Path) -> int:
    device = os.stat(mountpoint).st_dev
    return int(Path(f"/sys/class/bdi/{os.major(device)}:{os.minor(device)}/read_ahead_kb").read_text())


def read_through(path: Path, block: int) -> bytes:
    parts = []
    with open(path, "rb", buffering=0) as file:
        while part := file.read(block):
            parts.append(part)
    return b"".join(parts)


@pytest.fixture(autouse=True)
def as_root() -> None:
    if os.geteuid() != 0:
        pytest.skip("only root may raise a mount's readahead")


def test_a_sequential_read_arrives_in_1_MiB_requests(mount, bucket):
    content = os.urandom(8 * MiB)
    bucket.blob("big.bin").upload_from_string(content)
    mounted = mount()

    assert readahead_kib(mounted.path) == 4096
    assert mounted.call(read_through, mounted / "big.bin", MiB) == content

    sizes = {int(kib): count for kib, count in mounted.statistics()["fuse_request_kib"]["read"].items()}
    assert max(sizes) == 1024, sizes
    assert sum(sizes.values()) <= 8 + 2, sizes  # one read per MiB (at most a short last one or two more)


def test_writes_arrive_in_1_MiB_requests(mount):
    mounted = mount()
    content = os.urandom(4 * MiB)

    def write() -> None:
        with open(mounted / "written.bin", "wb", buffering=0) as file:
            for start in range(0, len(content), MiB):
                file.write(content[start : start + MiB])

    mounted.call(write)
    assert mounted.read_bytes("written.bin") == content
    assert mounted.statistics()["fuse_request_kib"]["write"] == {"1024": 4}


def test_the_kernel_readahead_is_an_option(mount, bucket):
    content = os.urandom(2 * MiB)
    bucket.blob("big.bin").upload_from_string(content)
    mounted = mount("", "--kernel-readahead", "256K")

    assert readahead_kib(mounted.path) == 256
    assert mounted.call(read_through, mounted / "big.bin", MiB) == content
    sizes = {int(kib) for kib in mounted.statistics()["fuse_request_kib"]["read"]}
    assert max(sizes) == 256, sizes
