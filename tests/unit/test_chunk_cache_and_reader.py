"""The chunk cache and the ranged reader, against a fake storage (the real server is covered elsewhere)."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from octuefs.cache import ChunkCache, ChunkKey
from octuefs.reader import ObjectReader
from octuefs.storage.gcs import ObjectStat, crc32c_of_bytes

CHUNK = 1024


class FakeStorage:
    """Serves byte ranges of one object and records them; optionally slow, optionally lying."""

    def __init__(self, content: bytes, served: bytes | None = None, delay: float = 0.0) -> None:
        self.content = content
        self.served = content if served is None else served
        self.delay = delay
        self.ranges: list[tuple[int, int]] = []
        self.lock = threading.Lock()

    def read_range(self, stat: ObjectStat, start: int, end: int) -> bytes:
        time.sleep(self.delay)
        with self.lock:
            self.ranges.append((start, min(end, stat.size)))
        return self.served[start:end]


def stat_of(content: bytes, name: str = "data/object.bin") -> ObjectStat:
    return ObjectStat("bucket", name, len(content), 7, 1, crc32c_of_bytes(content), None, None)


def test_chunks_round_trip_and_survive_a_new_cache_on_the_same_directory(tmp_path: Path) -> None:
    key = ChunkKey("bucket", "a", 1, CHUNK)
    ChunkCache(tmp_path, 10 * CHUNK).put(key, 3, b"x" * CHUNK)
    reopened = ChunkCache(tmp_path, 10 * CHUNK, memory_bytes=0)
    assert reopened.contains(key, 3)
    assert reopened.get(key, 3) == b"x" * CHUNK


def test_a_damaged_chunk_is_dropped_not_served(tmp_path: Path) -> None:
    key = ChunkKey("bucket", "a", 1, CHUNK)
    ChunkCache(tmp_path, 10 * CHUNK).put(key, 0, b"y" * CHUNK)
    (chunk_file,) = (tmp_path / "chunks").glob("*/*")
    damaged = bytearray(chunk_file.read_bytes())
    damaged[10] ^= 0xFF
    chunk_file.write_bytes(bytes(damaged))

    reopened = ChunkCache(tmp_path, 10 * CHUNK, memory_bytes=0)
    assert reopened.get(key, 0) is None
    assert not chunk_file.exists() and not reopened.contains(key, 0)


def test_size_bound_evicts_least_recently_used(tmp_path: Path) -> None:
    cache = ChunkCache(tmp_path, 3 * (CHUNK + 4), memory_bytes=0)
    key = ChunkKey("bucket", "a", 1, CHUNK)
    for index in range(3):
        cache.put(key, index, bytes([index]) * CHUNK)
    assert cache.get(key, 0) is not None  # 0 is now the most recently used
    cache.put(key, 3, b"\3" * CHUNK)

    assert cache.size_bytes <= 3 * (CHUNK + 4)
    assert sorted(cache.cached_indices(key)) == [0, 2, 3]
    assert sum(path.stat().st_size for path in (tmp_path / "chunks").glob("*/*")) <= 3 * (CHUNK + 4)


def test_no_object_name_reaches_a_local_path(tmp_path: Path) -> None:
    cache = ChunkCache(tmp_path, 10 * CHUNK)
    for name in ("../../etc/passwd", "a/../../b", "/absolute", "x" * 1000, "new\nline"):
        cache.put(ChunkKey("bucket", name, 1, CHUNK), 0, b"z")
    for path in (tmp_path / "chunks").glob("*/*"):
        assert path.resolve().is_relative_to((tmp_path / "chunks").resolve())
        assert len(path.name) < 80 and "/" not in path.name and ".." not in path.name.split(".")[0]


def test_generations_never_share_chunks(tmp_path: Path) -> None:
    cache = ChunkCache(tmp_path, 10 * CHUNK)
    cache.put(ChunkKey("bucket", "a", 1, CHUNK), 0, b"old")
    assert cache.get(ChunkKey("bucket", "a", 2, CHUNK), 0) is None


def test_reader_fetches_only_touched_chunks_and_assembles_ranges(tmp_path: Path) -> None:
    content = bytes(range(256)) * 20  # 5120 bytes: chunks 0..4, the last one partial
    storage = FakeStorage(content)
    reader = ObjectReader(stat_of(content), ChunkCache(tmp_path, 100 * CHUNK), storage, CHUNK)  # type: ignore[arg-type]

    assert reader.read(100, 100) == content[100:200]
    assert reader.read(5000, 500) == content[5000:]
    assert storage.ranges == [(0, 1024), (4096, 5120)]
    assert reader.read(100, 100) == content[100:200]
    assert len(storage.ranges) == 2


def test_fetch_span_uses_one_request_for_contiguous_missing_chunks(tmp_path: Path) -> None:
    content = bytes(8 * CHUNK)
    storage = FakeStorage(content)
    reader = ObjectReader(stat_of(content), ChunkCache(tmp_path, 100 * CHUNK), storage, CHUNK)  # type: ignore[arg-type]
    reader.chunk(2)
    reader.fetch_span(0, 8)
    assert storage.ranges == [(2 * CHUNK, 3 * CHUNK), (0, 2 * CHUNK), (3 * CHUNK, 8 * CHUNK)]


def test_concurrent_readers_of_one_chunk_fetch_it_once(tmp_path: Path) -> None:
    content = b"q" * CHUNK
    storage = FakeStorage(content, delay=0.2)
    reader = ObjectReader(stat_of(content), ChunkCache(tmp_path, 100 * CHUNK), storage, CHUNK)  # type: ignore[arg-type]
    results: list[bytes] = []
    threads = [threading.Thread(target=lambda: results.append(reader.chunk(0))) for _ in range(5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert results == [content] * 5
    assert storage.ranges == [(0, CHUNK)]


def test_a_fully_cached_object_that_fails_its_crc32c_is_dropped(tmp_path: Path) -> None:
    content = b"a" * (2 * CHUNK)
    storage = FakeStorage(content, served=b"b" * (2 * CHUNK))
    cache = ChunkCache(tmp_path, 100 * CHUNK)
    reader = ObjectReader(stat_of(content), cache, storage, CHUNK)  # type: ignore[arg-type]

    reader.fetch_span(0, 2)

    deadline = time.monotonic() + 5  # chunks go to disk in the background, and the check runs after
    while (cache.cached_indices(reader.key) or any((tmp_path / "chunks").glob("*/*"))) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert cache.cached_indices(reader.key) == frozenset()
    assert list((tmp_path / "chunks").glob("*/*")) == []
