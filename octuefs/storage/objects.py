"""What every storage implementation deals in: object stats, listings, checksums, settings, counts.

Kept apart from the GCS client so the storage interface and its in-memory implementation speak
the same values without importing google-cloud-storage, and so both say the same errors.
"""

from __future__ import annotations

import base64
import contextlib
import os
import threading
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import google_crc32c

from octuefs.errors import CloudObjectNotFound, PreconditionConflict
from octuefs.storage.paths import CloudLocation

EMPTY_CRC32C = "AAAAAA=="


@dataclass(frozen=True)
class StorageSettings:
    endpoint: str | None = None
    project: str | None = None
    # Timeouts of one attempt, each cut to what is left of the retry deadline (storage/attempts.py).
    # Real GCS connects in milliseconds: a connection not made in 5 s is not coming, and a shorter
    # wait leaves room for several attempts within the deadline when packets are being dropped.
    connect_timeout: float = 5.0
    # The longest wait for the next byte of a reply; ranged GETs wait less, from recent latencies.
    read_timeout: float = 60.0
    # How long an operation retries transient failures (5xx, 429, dropped connections, timeouts).
    # DEFAULT_RETRY sleeps uniform(0, 2**k) s before retry k+1 (at most 60 s) and gives up as soon as
    # the next sleep would pass the deadline. Three 503s in a row sleep at most 1+2+4 = 7 s before the
    # attempt that succeeds, and two dropped connections 1+2 = 3 s, so 20 s rides out such outages
    # with room for slow attempts. With the server gone, the last attempt starts before 20 s and its
    # timeouts are cut to what is left (at least 1 s), so the first operation that needs the server
    # fails by about 21 s: inside the 30 s promised (docs), with margin for a loaded machine. After
    # that, the circuit breaker (storage/health.py) fails requests at once.
    retry_deadline: float = 20.0
    pool_size: int = 32
    # Resumable uploads hold one chunk in memory at a time; must be a multiple of 256 KiB. Each chunk
    # is one request, so larger chunks upload faster (the client's own default is 100 MiB).
    upload_chunk_size: int = 32 * 1024 * 1024

    @property
    def resolved_endpoint(self) -> str | None:
        return self.endpoint or os.environ.get("STORAGE_EMULATOR_HOST") or None


@dataclass(frozen=True)
class ObjectStat:
    """What one GET or listing tells about an object; enough to act on it without asking again."""

    bucket: str
    name: str
    size: int
    generation: int
    metageneration: int | None
    crc32c: str | None
    content_type: str | None
    updated: datetime | None
    metadata: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def from_resource(cls, bucket: str, resource: Mapping[str, Any]) -> ObjectStat:
        """From the JSON API's object resource, as GET, list, upload, PATCH and rewrite return it."""
        updated = resource.get("updated")
        metageneration = resource.get("metageneration")
        return cls(
            bucket=bucket,
            name=resource["name"],
            size=int(resource.get("size") or 0),
            generation=int(resource.get("generation") or 0),
            metageneration=int(metageneration) if metageneration is not None else None,
            crc32c=resource.get("crc32c"),
            content_type=resource.get("contentType"),
            updated=datetime.fromisoformat(updated.replace("Z", "+00:00")) if updated else None,
            metadata=dict(resource.get("metadata") or {}),
        )

    @property
    def location(self) -> CloudLocation:
        return CloudLocation(self.bucket, self.name)

    def to_dict(self) -> dict[str, Any]:
        """JSON-compatible form, so a serialised datafile can be rebuilt without a request."""
        data = {**self.__dict__, "metadata": dict(self.metadata)}
        data["updated"] = self.updated.isoformat() if self.updated else None
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ObjectStat:
        updated = datetime.fromisoformat(data["updated"]) if data.get("updated") else None
        return cls(**{**data, "updated": updated})


@dataclass(frozen=True)
class Listing:
    objects: list[ObjectStat]
    prefixes: list[str]


def crc32c_of_bytes(data: bytes) -> str:
    return base64.b64encode(google_crc32c.Checksum(data).digest()).decode()


def crc32c_of_file(path: str | os.PathLike[str], block_size: int = 1024 * 1024, offset: int = 0) -> str:
    checksum = google_crc32c.Checksum()
    with open(path, "rb") as file:
        file.seek(offset)
        while block := file.read(block_size):
            checksum.update(block)
    return base64.b64encode(checksum.digest()).decode()


def missing(location: CloudLocation | str, action: str) -> CloudObjectNotFound:
    """What a 404 means, however the implementation learnt it."""
    return CloudObjectNotFound(f"{location}: no such object or bucket (while trying to {action}).")


def refused(location: CloudLocation | str, action: str) -> PreconditionConflict:
    """What a 412 means: a generation or metageneration guard found the object changed."""
    return PreconditionConflict(
        f"{location}: changed by another writer since it was read; the request to {action} was not applied."
    )


_progress = threading.local()


@contextlib.contextmanager
def reporting_progress(callback: Callable[[int], None]) -> Iterator[None]:
    """Report bytes as this thread's downloads and uploads move them (for a progress bar), not only
    once each is done."""
    _progress.callback = callback
    try:
        yield
    finally:
        _progress.callback = None


def report_progress(count: int) -> None:
    callback = getattr(_progress, "callback", None)
    if callback is not None:
        callback(count)


class RequestStats:
    """Requests sent and bytes moved by this process, for `octuefs stats` (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.requests: Counter[str] = Counter()
        self.failures: Counter[str] = Counter()
        self.bytes_down = 0
        self.bytes_up = 0
        # Ranged GETs abandoned because they delivered nothing for much longer than recent ones took.
        self.stalled_reads_retried = 0

    def record(self, kind: str, failed: bool) -> None:
        with self._lock:
            self.requests[kind] += 1
            if failed:
                self.failures[kind] += 1

    def moved(self, down: int = 0, up: int = 0) -> None:
        with self._lock:
            self.bytes_down += down
            self.bytes_up += up

    def stalled(self) -> None:
        with self._lock:
            self.stalled_reads_retried += 1

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {
                "requests": dict(self.requests),
                "failed_requests": dict(self.failures),
                "bytes_down": self.bytes_down,
                "bytes_up": self.bytes_up,
                "stalled_reads_retried": self.stalled_reads_retried,
            }
