"""The storage boundary as an interface: every call the Datafile engine and the mount make on storage.

`GCSStorage` implements it against Google Cloud Storage (or a server speaking its JSON API);
`MemoryStorage` implements it in memory with GCS's semantics and injectable faults, so the
engine's logic can be tested without a server (as mountpoint-s3's `ObjectClient` has a mock and
a failure-injecting client). Both run the same contract tests (tests/integration/test_storage_contract.py).

The semantics every implementation keeps, since callers rely on them:
- Each content change makes a new generation; each metadata change a new metageneration.
- `if_generation_match` guards a write (0: the name must be free); a guard that fails raises
  `PreconditionConflict` and changes nothing. A missing object or bucket raises `CloudObjectNotFound`;
  any other failure `StorageError`, and a transient one (or a request not sent because the server is
  lost, see octuefs/storage/health.py) its subclass `ServerUnavailable`. Each message names the object.
- Reads name a generation (through an `ObjectStat`) and never return another generation's bytes.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from typing import Protocol

from octuefs.errors import CloudObjectNotFound
from octuefs.storage.health import ServerHealth
from octuefs.storage.objects import Listing, ObjectStat, RequestStats, StorageSettings
from octuefs.storage.paths import CloudLocation
from octuefs.storage.streaming import StreamingUpload, UploadSessions

logger = logging.getLogger(__name__)


class Storage(UploadSessions, Protocol):
    settings: StorageSettings
    stats: RequestStats
    # Whether the server answers (the circuit breaker); `health.on_recovered(callback)` tells of its return.
    health: ServerHealth

    def bucket_exists(self, bucket: str, deadline: float = 10.0) -> bool:
        """Whether the bucket exists, answered within about `deadline` seconds."""
        ...

    def create_bucket(self, bucket: str) -> None: ...

    def stat(self, bucket: str, name: str) -> ObjectStat | None:
        """The object's current generation; None when it (or its bucket) does not exist."""
        ...

    def require_stat(self, bucket: str, name: str) -> ObjectStat:
        stat = self.stat(bucket, name)
        if stat is None:
            raise CloudObjectNotFound(f"{CloudLocation(bucket, name)}: no such object.")
        return stat

    def own_lost_upload(
        self, bucket: str, name: str, crc32c: str, size: int, metadata: Mapping[str, str]
    ) -> ObjectStat | None:
        """The object, if it is exactly what an upload sent (bytes and metadata); else None.

        When the server stores an upload but its reply is lost (a reset connection), the retry is
        refused by the generation guard the first attempt already moved on: without this check a
        successful upload would be reported as another writer's conflict, and fail every fsync
        after. Asked only after a failure, so a plain conflict costs no extra request.
        """
        stat = self.stat(bucket, name)
        if stat is None or (stat.crc32c, stat.size, dict(stat.metadata)) != (crc32c, size, dict(metadata)):
            return None
        logger.info("%s: stored by the upload whose reply was lost (generation %d)", stat.location, stat.generation)
        return stat

    def list(
        self,
        bucket: str,
        prefix: str = "",
        delimiter: str | None = None,
        page_size: int | None = None,
        limit: int | None = None,
        trailing_delimiter: bool = False,
    ) -> Listing:
        """Objects under `prefix` in name order (with `delimiter`, names holding it after the prefix roll
        up into sorted `prefixes`), through every page of `page_size` entries, or stopping at the first
        page that brings the entries to `limit`. With `trailing_delimiter` (GCS's
        includeTrailingDelimiter), an object whose name ends at its first delimiter (a directory's
        placeholder) is among the objects too, with its metadata."""
        ...

    def read_range(self, stat: ObjectStat, start: int, end: int) -> bytes:
        """Bytes [start, end) (cut at the object's end) of exactly `stat`'s generation."""
        ...

    def download(self, stat: ObjectStat, destination: str | os.PathLike[str]) -> None:
        """Exactly `stat`'s generation into `destination`, verified, all or nothing."""
        ...

    def upload(
        self,
        bucket: str,
        name: str,
        source: str | os.PathLike[str],
        content_type: str,
        metadata: Mapping[str, str],
        if_generation_match: int,
        offset: int = 0,
    ) -> ObjectStat:
        """`source` from `offset` on as the object's new generation, with this content type and metadata."""
        ...

    def append(
        self,
        bucket: str,
        name: str,
        source: str | os.PathLike[str],
        base_size: int,
        content_type: str,
        metadata: Mapping[str, str],
        if_generation_match: int,
    ) -> ObjectStat:
        """A new generation: generation `if_generation_match`'s bytes followed by `source`'s after
        `base_size`, with new metadata; the object's own bytes never travel."""
        ...

    def patch_metadata(self, stat: ObjectStat, metadata: Mapping[str, str | None]) -> ObjectStat:
        """Merge `metadata` into the object's (None removes a key), guarded by `stat`'s generation and
        metageneration."""
        ...

    def copy(
        self,
        source: ObjectStat,
        bucket: str,
        name: str,
        metadata: Mapping[str, str],
        if_generation_match: int,
        content_type: str | None = None,
    ) -> ObjectStat:
        """Exactly `source`'s generation to `bucket/name` with this metadata (replacing the source's),
        without the bytes travelling."""
        ...

    def delete(self, bucket: str, name: str, if_generation_match: int | None) -> None: ...

    def create_placeholder(self, bucket: str, name: str, metadata: Mapping[str, str] | None = None) -> ObjectStat:
        """An empty `dir/` object marking a directory (and carrying its attributes in `metadata`), only
        if the name is free."""
        ...

    def create_small(self, bucket: str, name: str, data: bytes, metadata: Mapping[str, str]) -> ObjectStat:
        """An object of a few bytes (a symbolic link's target, nothing for a FIFO) with this metadata, in
        one request, only if the name is free."""
        ...

    def start_upload(
        self, location: CloudLocation, content_type: str, metadata: Mapping[str, str], if_generation_match: int
    ) -> StreamingUpload:
        """A session taking the object in parts; `if_generation_match` is checked when the last part
        makes the object."""
        ...
