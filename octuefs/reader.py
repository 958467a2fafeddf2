"""Ranged reads of one object generation through the chunk cache.

The mount and the library share this reader: a FUSE read and an h5py read both fetch only the
chunks they touch. Concurrent requests for one chunk wait for a single fetch. When the last
missing chunk of an object arrives, the whole object is checked against its crc32c in the
background; a mismatch drops the object's chunks so bad bytes are never served again.
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
from octuefs.storage.gcs import GCSStorage, ObjectStat, get_storage

logger = logging.getLogger(__name__)

DEFAULT_LIBRARY_CACHE_BYTES = 1024**3


class ObjectReader:
    def __init__(
        self, stat: ObjectStat, cache: ChunkCache, storage: GCSStorage, chunk_size: int = DEFAULT_CHUNK_SIZE
    ) -> None:
        self.stat = stat
        self.cache = cache
        self.storage = storage
        self.chunk_size = chunk_size
        self.key = ChunkKey.of(stat, chunk_size)
        self.chunk_count = (stat.size + chunk_size - 1) // chunk_size
        self._lock = threading.Lock()
        self._in_flight: dict[int, Future[bytes]] = {}
        self.bytes_fetched = 0

    def chunk_range(self, offset: int, size: int) -> range:
        end = min(offset + size, self.stat.size)
        if offset >= end:
            return range(0)
        return range(offset // self.chunk_size, (end - 1) // self.chunk_size + 1)

    def is_cached(self, index: int) -> bool:
        return self.cache.contains(self.key, index)

    def chunk(self, index: int) -> bytes:
        """The bytes of one chunk, from the cache or fetched once however many threads ask."""
        data = self.cache.get(self.key, index)
        if data is not None:
            return data
        with self._lock:
            future = self._in_flight.get(index)
            owner = future is None
            if owner:
                future = self._in_flight[index] = Future()
        assert future is not None
        if not owner:
            return future.result()
        try:
            data = self.cache.get(self.key, index)
            if data is None:
                data = self._fetch(index)
            future.set_result(data)
            return data
        except BaseException as error:
            future.set_exception(error)
            raise
        finally:
            with self._lock:
                del self._in_flight[index]

    def _fetch(self, index: int) -> bytes:
        start = index * self.chunk_size
        data = self.storage.read_range(self.stat, start, start + self.chunk_size)
        with self._lock:
            self.bytes_fetched += len(data)
        self.cache.put(self.key, index, data)
        if len(self.cache.cached_indices(self.key)) == self.chunk_count:
            threading.Thread(target=self._verify_whole_object, daemon=True).start()
        return data

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

    def read(self, offset: int, size: int) -> bytes:
        parts = []
        for index in self.chunk_range(offset, size):
            data = self.chunk(index)
            chunk_start = index * self.chunk_size
            parts.append(data[max(offset - chunk_start, 0) : offset + size - chunk_start])
        return b"".join(parts)


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
