"""Chunks of cloud objects on local disk: ranged, size-bounded, safe from hostile names, reusable.

A chunk is stored as one file named by a SHA-256 of (bucket, object name, generation, chunk
size) and its index, so no object name ever reaches a local path, a new generation never finds
an older generation's bytes, and a remount with the same cache directory reuses what is there.
Each file ends with the CRC32C of its bytes: a chunk damaged on disk is dropped and fetched
again instead of being served. Files are written to a temp name and renamed, so a crash never
leaves a half chunk. The least recently used chunks are evicted past the size bound.

The most recently used chunks are also kept in memory (a small, bounded layer), because the
kernel reads in 128 KiB pieces and each 1 MiB chunk would otherwise be read from disk and
checksummed eight times over.

The cache also knows which chunks are being fetched (`claim`), so every reader of one cache, whatever
its handle, shares one fetch of a chunk: the first claims it and fetches, the others wait for it.

Its lock guards only the tables in memory, never a disk or network operation, and nothing else is
locked or waited for while it is held (a leaf in any lock order). The FUSE loop takes it to serve
reads from memory, so a file to delete (an evicted or dropped chunk) is chosen under the lock and
deleted after it is released, by the worker thread that caused the deletion; waiters for a fetch are
woken after it is released too. A chunk stored again between the choice and the deletion is then
indexed but gone from disk: its next read misses and fetches it again, never reads wrong bytes.

Processes sharing one cache directory (library readers) do not share fetches in flight, only chunks
on disk: a chunk another process stored is found on disk and not written again, and a chunk two
processes store at once is two atomic renames of identical bytes. Each keeps its own size account,
so together they may exceed the bound until one of them starts again and counts what is there.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import tempfile
import threading
import time
from collections import Counter, OrderedDict
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import google_crc32c

from octuefs.private_files import DIRECTORY_MODE, private_directory
from octuefs.storage.gcs import ObjectStat

logger = logging.getLogger(__name__)

# Chunk writes to disk run on these threads, with at most PENDING_WRITES chunks waiting (beyond that the
# thread that fetched a chunk writes it itself). They run at the lowest CPU priority: copying chunks into
# the cache disk took over a third of the daemon's CPU in a cold sequential read (perf), and on a busy
# machine it must wait for idle time rather than slow the reader (cold read 323 -> 537 MB/s, one run).
WRITER_THREADS = 2
PENDING_WRITES = 128
WRITER_NICENESS = 19

TRAILER_BYTES = 4
DEFAULT_CHUNK_SIZE = 1024 * 1024
DEFAULT_MEMORY_BYTES = 64 * 1024 * 1024
# A temp file this old was left by a process that died while writing it; a younger one may be another
# process's chunk being written right now.
STALE_TEMP_SECONDS = 600


@dataclass(frozen=True)
class ChunkKey:
    """Which object generation, cut into chunks of which size."""

    bucket: str
    name: str
    generation: int
    chunk_size: int

    @classmethod
    def of(cls, stat: ObjectStat, chunk_size: int) -> ChunkKey:
        return cls(stat.bucket, stat.name, stat.generation, chunk_size)

    @property
    def digest(self) -> str:
        identity = f"{self.bucket}\0{self.name}\0{self.generation}\0{self.chunk_size}"
        return hashlib.sha256(identity.encode("utf-8", "surrogatepass")).hexdigest()


def _crc(data: bytes) -> bytes:
    return google_crc32c.Checksum(data).digest()


@dataclass(frozen=True)
class Claim:
    """What a reader asking for some chunks must do: fetch `owned` (futures it settles) and wait for
    `pending` (fetched by another reader). Chunks in neither were cached meanwhile."""

    owned: dict[int, Future[bytes]]
    pending: dict[int, Future[bytes]]


class ChunkCache:
    """Thread-safe: FUSE worker threads and library readers use it concurrently."""

    def __init__(
        self, directory: str | os.PathLike[str], max_bytes: int, memory_bytes: int = DEFAULT_MEMORY_BYTES
    ) -> None:
        self.directory = private_directory(Path(directory) / "chunks")
        self.max_bytes = max_bytes
        self.memory_bytes = memory_bytes
        self._lock = threading.Lock()
        self._lru: OrderedDict[str, int] = OrderedDict()
        self._memory: OrderedDict[str, bytes] = OrderedDict()
        self._memory_used = 0
        self._made_directories: set[Path] = set()
        self._per_object: dict[str, set[int]] = {}
        self._in_flight: dict[str, Future[bytes]] = {}
        # Chunks forgotten whose files are being deleted: a read of one meanwhile is a miss.
        self._deleting: Counter[str] = Counter()
        self._bytes = 0
        self.hits = 0
        self.misses = 0
        # Bumped by `drop`: a chunk written in the background for an earlier epoch is not kept.
        self._epochs: dict[str, int] = {}
        self._writer = ThreadPoolExecutor(
            WRITER_THREADS, thread_name_prefix="octuefs-cache-write", initializer=_lower_priority
        )
        self._pending_writes = threading.Semaphore(PENDING_WRITES)
        self._load_existing()

    def _load_existing(self) -> None:
        """Index chunks left by an earlier mount, oldest use first (use time is kept as mtime)."""
        found = []
        stale_before = time.time() - STALE_TEMP_SECONDS
        for path in self.directory.glob("*/*"):
            with contextlib.suppress(FileNotFoundError):
                status = path.stat()
                if not path.name.endswith(".tmp"):
                    found.append((status.st_mtime_ns, path.name, status.st_size))
                elif status.st_mtime < stale_before:
                    path.unlink(missing_ok=True)
        for _, name, size in sorted(found):
            self._remember(name, size)
        self._delete(self._victims())

    def _remember(self, file_name: str, size: int) -> None:
        digest, _, index = file_name.partition(".")
        self._lru[file_name] = size
        self._bytes += size
        self._per_object.setdefault(digest, set()).add(int(index))

    def _keep_in_memory(self, file_name: str, data: bytes) -> None:
        if file_name in self._memory:
            self._memory.move_to_end(file_name)
            return
        self._memory[file_name] = data
        self._memory_used += len(data)
        while self._memory_used > self.memory_bytes and self._memory:
            _, dropped = self._memory.popitem(last=False)
            self._memory_used -= len(dropped)

    def _forget(self, file_name: str) -> None:
        in_memory = self._memory.pop(file_name, None)
        if in_memory is not None:
            self._memory_used -= len(in_memory)
        size = self._lru.pop(file_name, None)
        if size is None:
            return
        self._bytes -= size
        digest, _, index = file_name.partition(".")
        indices = self._per_object.get(digest)
        if indices is not None:
            indices.discard(int(index))
            if not indices:
                del self._per_object[digest]

    def _path(self, file_name: str) -> Path:
        return self.directory / file_name[:2] / file_name

    @staticmethod
    def _file_name(key: ChunkKey, index: int) -> str:
        return f"{key.digest}.{index}"

    @property
    def size_bytes(self) -> int:
        return self._bytes

    def cached_indices(self, key: ChunkKey) -> frozenset[int]:
        with self._lock:
            return frozenset(self._per_object.get(key.digest, ()))

    def contains(self, key: ChunkKey, index: int) -> bool:
        file_name = self._file_name(key, index)
        with self._lock:
            return file_name in self._lru or file_name in self._memory

    def held_or_coming(self, key: ChunkKey, index: int) -> bool:
        """Cached, or being fetched by some reader: asking for it costs no request of one's own."""
        file_name = self._file_name(key, index)
        with self._lock:
            return file_name in self._lru or file_name in self._memory or file_name in self._in_flight

    def get_from_memory(self, key: ChunkKey, index: int) -> bytes | None:
        """The chunk if it is in the memory layer; never touches the disk, so it never blocks."""
        file_name = self._file_name(key, index)
        with self._lock:
            data = self._memory.get(file_name)
            if data is None:
                return None
            self.hits += 1
            self._memory.move_to_end(file_name)
            if file_name in self._lru:
                self._lru.move_to_end(file_name)
            return data

    def get(self, key: ChunkKey, index: int) -> bytes | None:
        data = self.get_from_memory(key, index)
        if data is not None:
            return data
        file_name = self._file_name(key, index)
        path = self._path(file_name)
        epoch = self._epochs.get(key.digest, 0)
        try:
            stored = path.read_bytes()
        except FileNotFoundError:
            return self._missed(file_name)
        data, trailer = stored[:-TRAILER_BYTES], stored[-TRAILER_BYTES:]
        if len(stored) < TRAILER_BYTES or _crc(data) != trailer:
            logger.warning("cache chunk %s of gs://%s/%s is damaged; fetching it again", index, key.bucket, key.name)
            path.unlink(missing_ok=True)
            return self._missed(file_name)
        with self._lock:
            if self._epochs.get(key.digest, 0) != epoch or self._deleting[file_name]:
                # Dropped (its bytes failed the object's checksum) or evicted while this read it.
                self.misses += 1
                return None
            self.hits += 1
            if file_name in self._lru:
                self._lru.move_to_end(file_name)
            else:
                self._remember(file_name, len(stored))
            self._keep_in_memory(file_name, data)
        with contextlib.suppress(FileNotFoundError):
            os.utime(path)
        return data

    def _missed(self, file_name: str) -> bytes | None:
        """Forget a chunk not found on disk, unless a fetch delivered it meanwhile (forgetting that
        would fetch it again)."""
        with self._lock:
            data = self._memory.get(file_name)
            if data is None:
                self._forget(file_name)
                self.misses += 1
            else:
                self.hits += 1
            return data

    def put(self, key: ChunkKey, index: int, data: bytes) -> None:
        with self._lock:
            self._keep_in_memory(self._file_name(key, index), data)
        self.persist(key, index, data)

    def claim(self, key: ChunkKey, indices: Iterable[int]) -> Claim:
        """Which of these chunks the caller must fetch and which it should wait for. Atomic with
        `deliver`, so a chunk is always cached, in flight, or claimed by exactly one caller."""
        owned: dict[int, Future[bytes]] = {}
        pending: dict[int, Future[bytes]] = {}
        with self._lock:
            for index in indices:
                file_name = self._file_name(key, index)
                if file_name in self._memory or file_name in self._lru:
                    continue
                future = self._in_flight.get(file_name)
                if future is not None:
                    pending[index] = future
                else:
                    owned[index] = self._in_flight[file_name] = Future()
        return Claim(owned, pending)

    def deliver(self, key: ChunkKey, index: int, data: bytes, claimed: Future[bytes]) -> None:
        """Make a fetched chunk readable at once and wake those waiting for it; `persist_soon` writes
        it to disk afterwards, so a reader waiting for it never waits for the disk."""
        file_name = self._file_name(key, index)
        with self._lock:
            self._keep_in_memory(file_name, data)
            if self._in_flight.get(file_name) is claimed:
                del self._in_flight[file_name]
        claimed.set_result(data)

    def abandon(self, key: ChunkKey, claimed: dict[int, Future[bytes]], error: BaseException) -> None:
        """Fail the claimed fetches not delivered, and forget them: the next reader fetches afresh."""
        with self._lock:
            for index, future in claimed.items():
                file_name = self._file_name(key, index)
                if self._in_flight.get(file_name) is future:
                    del self._in_flight[file_name]
        for future in claimed.values():
            if not future.done():
                future.set_exception(error)

    def persist_soon(
        self, key: ChunkKey, index: int, data: bytes, where: str, then: Callable[[], None] | None = None
    ) -> None:
        """Write a chunk (already in memory) to disk in the background, so that the reader that fetched
        it returns at once; when PENDING_WRITES chunks already wait, write it now (their bytes are held
        until written, so a reader outrunning the disk is slowed to its pace instead of growing memory).
        `then` runs once the chunk is on disk.
        """
        epoch = self._epochs.get(key.digest, 0)
        arguments = (key, index, data, epoch, where, then)
        if not self._pending_writes.acquire(blocking=False):
            self._persist_or_warn(*arguments)
            return
        future = self._writer.submit(self._persist_or_warn, *arguments)
        future.add_done_callback(lambda _: self._pending_writes.release())

    def close(self) -> None:
        """Finish the chunk writes still waiting (a process ending with os._exit would drop them)."""
        self._writer.shutdown(wait=True)

    def _persist_or_warn(
        self, key: ChunkKey, index: int, data: bytes, epoch: int, where: str, then: Callable[[], None] | None
    ) -> None:
        try:
            self.persist(key, index, data, epoch)
        except OSError as error:
            # A full or failing cache disk must not fail reads: the bytes are in memory.
            logger.warning("%s: could not cache chunk %d on disk: %s", where, index, error)
            return
        if then is not None:
            then()

    def persist(self, key: ChunkKey, index: int, data: bytes, epoch: int | None = None) -> None:
        """Write a chunk to disk; if `epoch` is given and its object was dropped since, it is not kept."""
        file_name = self._file_name(key, index)
        path = self._path(file_name)
        if path.parent not in self._made_directories:
            path.parent.mkdir(mode=DIRECTORY_MODE, exist_ok=True)
            self._made_directories.add(path.parent)
        if not path.exists():  # else another process sharing the directory stored these very bytes
            self._write_atomically(path, data)
        with self._lock:
            if epoch is not None and self._epochs.get(key.digest, 0) != epoch:
                victims = self._doom([file_name])
            else:
                if file_name in self._lru:
                    self._bytes -= self._lru[file_name]
                    self._lru[file_name] = len(data) + TRAILER_BYTES
                    self._bytes += len(data) + TRAILER_BYTES
                    self._lru.move_to_end(file_name)
                else:
                    self._remember(file_name, len(data) + TRAILER_BYTES)
                victims = self._victims(keep=file_name)
        self._delete(victims)

    @staticmethod
    def _write_atomically(path: Path, data: bytes) -> None:
        handle, temporary = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
        try:
            with os.fdopen(handle, "wb") as file:
                file.write(data)
                file.write(_crc(data))
            os.replace(temporary, path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temporary)
            raise

    def drop(self, key: ChunkKey) -> None:
        """Remove every chunk of an object generation (e.g. when its full checksum did not match)."""
        with self._lock:
            self._epochs[key.digest] = self._epochs.get(key.digest, 0) + 1
            victims = self._doom([self._file_name(key, index) for index in self._per_object.get(key.digest, ())])
        self._delete(victims)

    def _doom(self, file_names: list[str]) -> list[str]:
        """Forget chunks whose files are to be deleted (call with the lock held), for the caller to
        `_delete` once it has released the lock."""
        for file_name in file_names:
            self._forget(file_name)
        self._deleting.update(file_names)
        return file_names

    def _delete(self, file_names: list[str]) -> None:
        """Delete the files of doomed chunks; never with the lock held (see the module docstring)."""
        if not file_names:
            return
        for file_name in file_names:
            self._path(file_name).unlink(missing_ok=True)
        with self._lock:
            self._deleting.subtract(file_names)
            self._deleting = +self._deleting  # drops the counts back at zero

    def _victims(self, keep: str | None = None) -> list[str]:
        """Doom the least recently used chunks past the size bound (call with the lock held)."""
        victims: list[str] = []
        while self._bytes > self.max_bytes and self._lru:
            file_name = next(iter(self._lru))
            if file_name == keep:
                if len(self._lru) == 1:
                    break
                self._lru.move_to_end(file_name)
                continue
            victims.extend(self._doom([file_name]))
        return victims


def _lower_priority() -> None:
    """Give the calling thread (Linux schedules threads one by one) the lowest CPU priority; a platform
    that refuses only loses the speed-up."""
    with contextlib.suppress(OSError, AttributeError):
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), WRITER_NICENESS)
