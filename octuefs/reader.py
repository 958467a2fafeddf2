"""Ranged reads of one object generation through the chunk cache.

The mount and the library share this reader: a FUSE read and an h5py read both fetch only the
chunks they touch. Concurrent requests for one chunk wait for a single fetch, whichever readers of
one cache make them (every handle of a mount, its readahead, the staging of a rewrite): the cache
keeps the table of fetches in flight, so readers need no registry of their own. A failed fetch fails
its waiters and is forgotten, so the next request fetches afresh. When the last missing chunk of an
object arrives, the whole object is checked against its crc32c in the background; a mismatch drops
the object's chunks so bad bytes are never served again.
"""

from __future__ import annotations

import base64
import io
import logging
import os
import threading
from concurrent.futures import Future
from pathlib import Path

import google_crc32c

from octuefs.cache import DEFAULT_CHUNK_SIZE, ChunkCache, ChunkKey
from octuefs.storage.gcs import get_storage
from octuefs.storage.interface import Storage
from octuefs.storage.objects import ObjectStat

logger = logging.getLogger(__name__)

DEFAULT_LIBRARY_CACHE_BYTES = 1024**3


class ObjectReader:
    def __init__(
        self, stat: ObjectStat, cache: ChunkCache, storage: Storage, chunk_size: int = DEFAULT_CHUNK_SIZE
    ) -> None:
        self.stat = stat
        self.cache = cache
        self.storage = storage
        self.chunk_size = chunk_size
        self.key = ChunkKey.of(stat, chunk_size)
        self.chunk_count = (stat.size + chunk_size - 1) // chunk_size

    def chunk_range(self, offset: int, size: int) -> range:
        end = min(offset + size, self.stat.size)
        if offset >= end:
            return range(0)
        return range(offset // self.chunk_size, (end - 1) // self.chunk_size + 1)

    def chunk(self, index: int) -> bytes:
        """The bytes of one chunk, from the cache or fetched once however many threads ask."""
        while True:
            data = self.cache.get(self.key, index)
            if data is not None:
                return data
            claim = self.cache.claim(self.key, [index])
            if claim.owned:
                self._fetch(claim.owned)
            future = claim.owned.get(index) or claim.pending.get(index)
            if future is not None:
                return future.result()
            # Cached between the miss and the claim: read it from the cache.

    def fetch_span(self, first: int, count: int) -> None:
        """Fetch the chunks among [first, first + count) that are neither cached nor in flight, with as
        few ranged GETs as possible.

        Readahead uses this: one large range is much cheaper than many 1 MiB ones for the server and
        for us, while the cache keeps 1 MiB granularity for random readers such as h5py.
        """
        claim = self.cache.claim(self.key, range(first, min(first + count, self.chunk_count)))
        if claim.owned:
            self._fetch(claim.owned)

    def _fetch(self, owned: dict[int, Future[bytes]]) -> None:
        """Fetch the claimed chunks, one GET per contiguous run, and settle every claimed future."""
        try:
            for run in _contiguous_runs(sorted(owned)):
                start = run[0] * self.chunk_size
                data = self.storage.read_range(self.stat, start, (run[-1] + 1) * self.chunk_size)
                parts = {index: data[position * self.chunk_size : (position + 1) * self.chunk_size]
                         for position, index in enumerate(run)}  # fmt: skip
                for index, part in parts.items():
                    self.cache.deliver(self.key, index, part, owned[index])
                for index, part in parts.items():
                    self.cache.persist_soon(self.key, index, part, str(self.stat.location), then=self._check_complete)
        except BaseException as error:
            self.cache.abandon(self.key, owned, error)
            raise

    def _check_complete(self) -> None:
        """Once every chunk is on disk, check the whole object against its crc32c, in the background."""
        if len(self.cache.cached_indices(self.key)) == self.chunk_count:
            threading.Thread(target=self._verify_whole_object, daemon=True).start()

    def _verify_whole_object(self) -> None:
        if not self.stat.crc32c:
            return
        checksum = google_crc32c.Checksum()
        for index in range(self.chunk_count):
            data = self.cache.get(self.key, index)
            if data is None:
                return
            checksum.update(data)
        if base64.b64encode(checksum.digest()).decode() != self.stat.crc32c:
            logger.error(
                "%s: cached bytes do not match the object's crc32c %s; dropped them from the cache",
                self.stat.location,
                self.stat.crc32c,
            )
            self.cache.drop(self.key)

    def read_scattered(self, offset: int, size: int) -> bytes:
        """A read that looks random (see ReadHandle.looks_random): only the bytes asked for, with one
        ranged GET, when none of the chunks they span is cached or on its way. A random reader rarely
        comes back for the rest of a chunk, and a whole chunk takes longer to arrive and to hand over.
        These bytes are not cached: the kernel's page cache keeps them while the file's generation holds."""
        if any(self.cache.held_or_coming(self.key, index) for index in self.chunk_range(offset, size)):
            return self.read(offset, size)
        return self.storage.read_range(self.stat, offset, offset + size)

    def read(self, offset: int, size: int) -> bytes:
        return self._assemble(offset, size, [self.chunk(index) for index in self.chunk_range(offset, size)])

    def read_from_memory(self, offset: int, size: int) -> bytes | None:
        """The bytes if every chunk they span is in memory (no I/O, so callable on the event loop)."""
        chunks = []
        for index in self.chunk_range(offset, size):
            data = self.cache.get_from_memory(self.key, index)
            if data is None:
                return None
            chunks.append(data)
        return self._assemble(offset, size, chunks)

    def _assemble(self, offset: int, size: int, chunks: list[bytes]) -> bytes:
        first = offset // self.chunk_size
        parts = []
        for position, data in enumerate(chunks):
            chunk_start = (first + position) * self.chunk_size
            parts.append(data[max(offset - chunk_start, 0) : offset + size - chunk_start])
        return b"".join(parts)


def _contiguous_runs(indices: list[int]) -> list[list[int]]:
    runs: list[list[int]] = []
    for index in indices:
        if runs and runs[-1][-1] == index - 1:
            runs[-1].append(index)
        else:
            runs.append([index])
    return runs


class RangedFile(io.RawIOBase):
    """A read-only, seekable file over an ObjectReader, for h5py and other file-object consumers."""

    def __init__(self, reader: ObjectReader) -> None:
        super().__init__()
        self.reader = reader
        self.name = reader.stat.location.path
        self._position = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._position, io.SEEK_END: self.reader.stat.size}[whence]
        self._position = max(base + offset, 0)
        return self._position

    def tell(self) -> int:
        return self._position

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        data = self.reader.read(self._position, len(buffer))
        buffer[: len(data)] = data
        self._position += len(data)
        return len(data)


_library_cache: ChunkCache | None = None
_library_cache_lock = threading.Lock()


def default_cache_directory() -> Path:
    configured = os.environ.get("OCTUEFS_CACHE_DIR")
    if configured:
        return Path(configured)
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "octuefs"


def library_reader(stat: ObjectStat) -> ObjectReader:
    """A reader on the process's shared cache (OCTUEFS_CACHE_DIR, else ~/.cache/octuefs; 1 GiB)."""
    global _library_cache
    with _library_cache_lock:
        if _library_cache is None:
            _library_cache = ChunkCache(default_cache_directory() / "library", DEFAULT_LIBRARY_CACHE_BYTES)
    return ObjectReader(stat, _library_cache, get_storage())
