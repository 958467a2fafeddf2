"""The chunk cache and the ranged reader, against a fake storage (the real server is covered elsewhere)."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

from octuefs.cache import STALE_TEMP_SECONDS, ChunkCache, ChunkKey, Claim
from octuefs.errors import StorageError
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
    # Chunks go to disk in the background (polling for "no chunk files" before they were all written
    # passed before a niced writer had even started), then the check runs in a thread of its own: once
    # every write is done, the chunks can only go away.
    cache.close()
    deadline = time.monotonic() + 30
    while (cache.cached_indices(reader.key) or any((tmp_path / "chunks").glob("*/*"))) and time.monotonic() < deadline:
        time.sleep(0.01)

    assert cache.cached_indices(reader.key) == frozenset()
    assert list((tmp_path / "chunks").glob("*/*")) == []


class FailingStorage(FakeStorage):
    """Refuses every read after `delay`, until `healed`."""

    def __init__(self, content: bytes, delay: float) -> None:
        super().__init__(content, delay=delay)
        self.healed = False

    def read_range(self, stat: ObjectStat, start: int, end: int) -> bytes:
        data = super().read_range(stat, start, end)
        if not self.healed:
            raise StorageError(f"{stat.location}: refused")
        return data


def at_once(functions: list[Callable[[], bytes]], seconds: float = 10) -> list[bytes | BaseException]:
    """Call each function in a thread of its own, all at once; the results or exceptions of those that
    returned within `seconds`."""
    outcomes: list[bytes | BaseException] = []

    def target(function: Callable[[], bytes]) -> None:
        try:
            outcomes.append(function())
        except BaseException as error:
            outcomes.append(error)

    threads = [threading.Thread(target=target, args=(function,), daemon=True) for function in functions]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + seconds
    for thread in threads:
        thread.join(max(deadline - time.monotonic(), 0))
    return list(outcomes)


def test_readers_of_one_object_on_one_cache_share_fetches_and_readahead(tmp_path: Path) -> None:
    content = bytes(range(256)) * 32  # 8 chunks
    storage = FakeStorage(content, delay=0.2)
    cache = ChunkCache(tmp_path, 100 * CHUNK)
    readers = [ObjectReader(stat_of(content), cache, storage, CHUNK) for _ in range(4)]  # type: ignore[arg-type]

    def read_all(reader: ObjectReader) -> bytes:
        reader.fetch_span(0, 8)  # readahead: a no-op for chunks in flight
        return reader.read(0, len(content))

    outcomes = at_once([partial(read_all, reader) for reader in readers])

    assert outcomes == [content] * 4
    assert sorted(storage.ranges) == [(0, 8 * CHUNK)]


def test_a_failed_shared_fetch_fails_every_waiter_and_is_not_remembered(tmp_path: Path) -> None:
    content = b"f" * CHUNK
    storage = FailingStorage(content, delay=0.2)
    cache = ChunkCache(tmp_path, 100 * CHUNK)

    reader = partial(ObjectReader, stat_of(content), cache, storage, CHUNK)

    outcomes = at_once([lambda: reader().chunk(0)] * 5)

    assert len(outcomes) == 5 and all(isinstance(outcome, StorageError) for outcome in outcomes), outcomes
    assert storage.ranges == [(0, CHUNK)]
    storage.healed = True
    assert reader().chunk(0) == content
    assert storage.ranges == [(0, CHUNK), (0, CHUNK)]


def test_the_cache_lock_is_not_held_while_evicted_or_dropped_chunks_are_deleted(tmp_path: Path, monkeypatch) -> None:
    """And a chunk read from disk meanwhile is a miss, not taken back into the cache."""
    cache = ChunkCache(tmp_path, 3 * (CHUNK + 4))
    key = ChunkKey("bucket", "a", 1, CHUNK)
    for index in range(3):
        cache.put(key, index, bytes([index]) * CHUNK)
    deleting, finish = threading.Event(), threading.Event()
    real_unlink = Path.unlink

    def slow_unlink(path: Path, missing_ok: bool = False) -> None:
        deleting.set()
        finish.wait(10)
        real_unlink(path, missing_ok=missing_ok)

    monkeypatch.setattr(Path, "unlink", slow_unlink)
    evictions = [(lambda: cache.put(key, 3, b"\3" * CHUNK), [0]), (lambda: cache.drop(key), [1, 2, 3])]
    for evict, doomed in evictions:
        deleting.clear()
        finish.clear()
        evicting = threading.Thread(target=evict)
        evicting.start()
        assert deleting.wait(10)

        # What the FUSE loop does on a read, and a reader on a miss, while a file is being deleted.
        served = at_once([lambda: cache.get_from_memory(key, 2) or bytes(cache.contains(key, 9))], seconds=2)
        assert served, "the cache lock was held while a file was deleted"
        assert [cache.get(key, index) for index in doomed] == [None] * len(doomed)
        finish.set()
        evicting.join(10)
        assert not evicting.is_alive()
    assert cache.cached_indices(key) == frozenset()


def test_a_chunk_another_process_stored_is_not_written_again(tmp_path: Path) -> None:
    key = ChunkKey("bucket", "a", 1, CHUNK)
    ours, theirs = ChunkCache(tmp_path, 10 * CHUNK), ChunkCache(tmp_path, 10 * CHUNK)
    theirs.put(key, 0, b"s" * CHUNK)
    (chunk_file,) = (tmp_path / "chunks").glob("*/*")
    stored = chunk_file.stat()

    ours.put(key, 0, b"s" * CHUNK)

    again = chunk_file.stat()
    assert (again.st_ino, again.st_mtime_ns) == (stored.st_ino, stored.st_mtime_ns)
    assert ours.cached_indices(key) == frozenset([0]) and ours.size_bytes == CHUNK + 4
    assert ChunkCache(tmp_path, 10 * CHUNK, memory_bytes=0).get(key, 0) == b"s" * CHUNK


def test_a_new_cache_leaves_young_temp_files_of_other_processes_alone(tmp_path: Path) -> None:
    ChunkCache(tmp_path, 10 * CHUNK).put(ChunkKey("bucket", "a", 1, CHUNK), 0, b"t")
    (shard,) = (tmp_path / "chunks").iterdir()
    young, stale = shard / "being-written.tmp", shard / "left-by-a-crash.tmp"
    young.write_bytes(b"half")
    stale.write_bytes(b"half")
    long_ago = time.time() - 2 * STALE_TEMP_SECONDS
    os.utime(stale, (long_ago, long_ago))

    ChunkCache(tmp_path, 10 * CHUNK)

    assert young.exists() and not stale.exists()


def test_a_chunk_read_from_disk_while_its_object_is_dropped_is_neither_served_nor_kept(
    tmp_path: Path, monkeypatch
) -> None:
    cache = ChunkCache(tmp_path, 10 * CHUNK, memory_bytes=CHUNK)
    key = ChunkKey("bucket", "a", 1, CHUNK)
    cache.put(key, 0, b"bad" * 100)
    cache.put(key, 1, b"x" * CHUNK)  # pushes chunk 0 out of memory: it is read from disk
    reading, dropped = threading.Event(), threading.Event()
    real_read_bytes = Path.read_bytes

    def read_bytes_then_wait(path: Path) -> bytes:
        data = real_read_bytes(path)
        reading.set()
        dropped.wait(10)
        return data

    monkeypatch.setattr(Path, "read_bytes", read_bytes_then_wait)
    found: list[bytes | None] = []
    reader = threading.Thread(target=lambda: found.append(cache.get(key, 0)))
    reader.start()
    assert reading.wait(10)
    cache.drop(key)
    dropped.set()
    reader.join(10)

    assert found == [None]
    assert cache.cached_indices(key) == frozenset() and cache.get_from_memory(key, 0) is None


def test_a_chunk_delivered_while_a_reader_misses_it_on_disk_stays_cached(tmp_path: Path, monkeypatch) -> None:
    cache = ChunkCache(tmp_path, 10 * CHUNK)
    key = ChunkKey("bucket", "a", 1, CHUNK)
    looking, delivered = threading.Event(), threading.Event()
    real_read_bytes = Path.read_bytes

    def not_there_yet(path: Path) -> bytes:
        looking.set()
        delivered.wait(10)
        raise FileNotFoundError(path)

    monkeypatch.setattr(Path, "read_bytes", not_there_yet)
    found: list[bytes | None] = []
    reader = threading.Thread(target=lambda: found.append(cache.get(key, 0)))
    reader.start()
    assert looking.wait(10)
    (claimed,) = cache.claim(key, [0]).owned.values()
    cache.deliver(key, 0, b"d" * CHUNK, claimed)
    delivered.set()
    reader.join(10)
    monkeypatch.setattr(Path, "read_bytes", real_read_bytes)

    assert found == [b"d" * CHUNK]
    assert cache.claim(key, [0]) == Claim({}, {})


def test_background_chunk_writes_run_at_the_lowest_cpu_priority(tmp_path: Path) -> None:
    cache = ChunkCache(tmp_path, 10 * CHUNK)
    key = ChunkKey.of(stat_of(b"z" * CHUNK), CHUNK)
    priorities: list[int] = []

    def written() -> None:
        priorities.append(os.getpriority(os.PRIO_PROCESS, threading.get_native_id()))

    cache.persist_soon(key, 0, b"z" * CHUNK, "gs://bucket/data/object.bin", then=written)
    cache.close()
    assert priorities == [19]
    assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) != 19  # the caller's own is unchanged
