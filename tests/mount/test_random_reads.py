"""A read that looks random (small, and the second jump in a row) fetches only its own bytes with one
small ranged GET, not the whole 1 MiB chunk around it; sequential reads, a first jump and reads of
chunks already cached keep fetching whole chunks."""

from __future__ import annotations

import os

import pytest

from octuefs.cache import DEFAULT_CHUNK_SIZE

pytestmark = pytest.mark.timeout(60)

MiB = 1024 * 1024
PAGE = 4096


def media(proxy) -> list[tuple[str | None, int]]:
    return [(request.range, request.response_bytes) for request in proxy.requests if request.kind == "media"]


def pread_all(path, offsets: list[int]) -> list[bytes]:
    descriptor = os.open(path, os.O_RDONLY)
    try:
        return [os.pread(descriptor, PAGE, offset) for offset in offsets]
    finally:
        os.close(descriptor)


def object_looked_up(mount, bucket, proxy, size: int, **options):
    """A fresh mount that has looked up `big.bin` of `size` random bytes; the proxy counts from here."""
    content = os.urandom(size)
    bucket.blob("big.bin").upload_from_string(content)
    mounted = mount(**options)
    mounted.sh("stat", mounted / "big.bin")
    proxy.reset()
    return mounted, content


def test_random_4_KiB_reads_fetch_4_KiB_each_after_the_first(mount, bucket, proxy):
    mounted, content = object_looked_up(mount, bucket, proxy, 8 * MiB)
    offsets = [3 * MiB + 2 * PAGE, 6 * MiB + 5 * PAGE, MiB + 7 * PAGE, 7 * MiB]

    found = mounted.call(pread_all, mounted / "big.bin", offsets)

    assert found == [content[offset : offset + PAGE] for offset in offsets]
    whole_chunk = (f"bytes={3 * MiB}-{4 * MiB - 1}", DEFAULT_CHUNK_SIZE)
    assert media(proxy) == [whole_chunk] + [(f"bytes={offset}-{offset + PAGE - 1}", PAGE) for offset in offsets[1:]]


def test_a_read_from_the_start_fetches_whole_chunks(mount, bucket, proxy):
    mounted, content = object_looked_up(mount, bucket, proxy, 3 * MiB)

    assert mounted.call(pread_all, mounted / "big.bin", [0]) == [content[:PAGE]]

    assert media(proxy)[0] == (f"bytes=0-{DEFAULT_CHUNK_SIZE - 1}", DEFAULT_CHUNK_SIZE)


def test_a_random_read_of_a_cached_chunk_fetches_nothing(mount, bucket, proxy, tmp_path):
    cache_dir = tmp_path / "shared-cache"
    first, content = object_looked_up(mount, bucket, proxy, 3 * MiB, cache_dir=cache_dir)
    assert first.read_bytes("big.bin") == content
    assert first.unmount().returncode == 0
    second = mount(cache_dir=cache_dir)  # a fresh page cache, the chunks on the cache disk
    second.sh("stat", second / "big.bin")
    proxy.reset()

    offset = 2 * MiB + 3 * PAGE
    assert second.call(pread_all, second / "big.bin", [offset]) == [content[offset : offset + PAGE]]

    assert media(proxy) == []
