"""Storage held in memory, with GCS's semantics and faults a test can inject.

Tests of the Datafile engine and of the mount's write logic run against this without a server,
and can make any call fail the way GCS fails it: refused by a precondition, not found, a
server error, slow, or applied with its reply lost. The contract tests
(tests/integration/test_storage_contract.py) run the same cases against this and against
`GCSStorage` through a real server, so what passes here holds there.

Only the current generation of an object is kept, as in a bucket without versioning: a read of
an older generation is not found. Generations are increasing microsecond timestamps, as on GCS.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path

from octuefs.errors import OctuefsError, ServerLost, ServerUnavailable, StorageError
from octuefs.storage.health import ServerHealth
from octuefs.storage.interface import Storage
from octuefs.storage.objects import (
    Listing,
    ObjectStat,
    RequestStats,
    StorageSettings,
    crc32c_of_bytes,
    missing,
    refused,
)
from octuefs.storage.paths import CloudLocation
from octuefs.storage.streaming import FileRange, StreamingUpload

# GCS takes a resumable upload's parts in multiples of this, all but the last.
SESSION_GRANULE = 256 * 1024
DEFAULT_PAGE_SIZE = 1000


@dataclass(frozen=True)
class _Object:
    data: bytes
    generation: int
    metageneration: int
    content_type: str | None
    metadata: dict[str, str]
    updated: datetime
    crc32c: str

    def stat(self, bucket: str, name: str) -> ObjectStat:
        return ObjectStat(
            bucket,
            name,
            len(self.data),
            self.generation,
            self.metageneration,
            self.crc32c,
            self.content_type,
            self.updated,
            dict(self.metadata),
        )


@dataclass
class _Session:
    location: CloudLocation
    content_type: str
    metadata: dict[str, str]
    if_generation_match: int
    received: bytearray = field(default_factory=bytearray)


@dataclass
class Fault:
    """What happens to the next `remaining` calls of `operation` (a `Storage` method name), or to every
    call while `remaining` is None: held `delay` seconds, then `error` raised, before the call acts or,
    with `after_acting`, after it (a reply lost on the way back)."""

    operation: str
    error: OctuefsError | None = None
    remaining: int | None = 1
    delay: float = 0.0
    after_acting: bool = False


class MemoryStorage(Storage):
    """Buckets of objects in memory; thread-safe, like `GCSStorage`."""

    def __init__(self, settings: StorageSettings | None = None) -> None:
        self.settings = settings or StorageSettings()
        self.stats = RequestStats()
        # The breaker as GCSStorage has it: a `ServerUnavailable` fault is an operation that gave up, and
        # the probe is the operation "probe" (fail it to keep the server lost, clear it to let it back).
        self.health = ServerHealth(self._probe)
        # Every call made, in order, by operation name: the request budget a test can check.
        self.calls: list[str] = []
        self._lock = threading.Lock()
        self._buckets: dict[str, dict[str, _Object]] = {}
        self._sessions: dict[str, _Session] = {}
        self._faults: list[Fault] = []
        self._last_generation = 0

    def fail(self, operation: str, error: OctuefsError, count: int | None = 1) -> Fault:
        """The next `count` calls of `operation` raise `error` and change nothing."""
        return self._add(Fault(operation, error, count))

    def lose_reply(self, operation: str, error: OctuefsError | None = None, count: int | None = 1) -> Fault:
        """The next `count` calls of `operation` act, then raise `error` (by default a lost connection)."""
        lost = error or StorageError(f"the reply to {operation} was lost (injected)")
        return self._add(Fault(operation, lost, count, after_acting=True))

    def slow(self, operation: str, seconds: float, count: int | None = None) -> Fault:
        """Calls of `operation` are held `seconds` before they act (every call while `count` is None)."""
        return self._add(Fault(operation, None, count, delay=seconds))

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    def _add(self, fault: Fault) -> Fault:
        with self._lock:
            self._faults.append(fault)
        return fault

    def _take_fault(self, operation: str) -> Fault | None:
        with self._lock:
            for fault in self._faults:
                if fault.operation == operation and fault.remaining != 0:
                    if fault.remaining is not None:
                        fault.remaining -= 1
                    return fault
        return None

    @contextlib.contextmanager
    def _call(self, operation: str) -> Iterator[None]:
        """Every operation runs inside this: refused while the server is lost, its faults applied, its
        outcome told to the breaker, and the call counted."""
        try:
            self.health.check()
        except ServerLost as error:
            raise ServerUnavailable(f"{operation}: {error}") from None
        fault = self._take_fault(operation)
        failure: BaseException | None = None
        try:
            if fault is not None:
                if fault.delay:
                    time.sleep(fault.delay)
                if fault.error is not None and not fault.after_acting:
                    raise fault.error
            yield
            if fault is not None and fault.error is not None:
                raise fault.error
        except BaseException as error:
            failure = error
            raise
        finally:
            # Any answer but a transient failure shows the server is there (a 404 too).
            if isinstance(failure, ServerUnavailable):
                self.health.gave_up(str(failure))
            else:
                self.health.succeeded()
            self.stats.record(operation, failure is not None)
            with self._lock:
                self.calls.append(operation)

    def _bucket(self, bucket: str, location: CloudLocation | str, action: str) -> dict[str, _Object]:
        """The bucket's objects; the caller holds the lock."""
        objects = self._buckets.get(bucket)
        if objects is None:
            raise missing(location, action)
        return objects

    def _object(self, stat: ObjectStat, action: str) -> _Object:
        """Exactly `stat`'s generation; the caller holds the lock."""
        found = self._bucket(stat.bucket, stat.location, action).get(stat.name)
        if found is None or found.generation != stat.generation:
            raise missing(stat.location, action)
        return found

    def _store(
        self,
        location: CloudLocation,
        data: bytes,
        content_type: str | None,
        metadata: Mapping[str, str],
        if_generation_match: int,
        action: str,
    ) -> ObjectStat:
        """A new generation, if the guard holds; the caller holds the lock."""
        objects = self._bucket(location.bucket, location, action)
        current = objects.get(location.name)
        if (current.generation if current else 0) != if_generation_match:
            raise refused(location, action)
        self._last_generation = max(self._last_generation + 1, time.time_ns() // 1000)
        stored = _Object(
            data, self._last_generation, 1, content_type, dict(metadata), datetime.now(UTC), crc32c_of_bytes(data)
        )
        objects[location.name] = stored
        return stored.stat(location.bucket, location.name)

    def _probe(self) -> None:
        with self._call("probe"):
            pass

    def bucket_exists(self, bucket: str, deadline: float = 10.0) -> bool:
        with self.health.bypassing(), self._call("bucket_exists"), self._lock:
            return bucket in self._buckets

    def create_bucket(self, bucket: str) -> None:
        with self._call("create_bucket"), self._lock:
            if bucket in self._buckets:
                raise StorageError(f"gs://{bucket}: server refused to create the bucket: 409 it already exists")
            self._buckets[bucket] = {}

    def stat(self, bucket: str, name: str) -> ObjectStat | None:
        with self._call("stat"), self._lock:
            found = self._buckets.get(bucket, {}).get(name)
            return found.stat(bucket, name) if found else None

    def list(
        self,
        bucket: str,
        prefix: str = "",
        delimiter: str | None = None,
        page_size: int | None = None,
        limit: int | None = None,
        trailing_delimiter: bool = False,
    ) -> Listing:
        with self._call("list"), self._lock:
            objects = self._bucket(bucket, f"gs://{bucket}/{prefix}", "list objects")
            entries: dict[str, ObjectStat | None] = {}  # a sub-prefix stands for itself with None
            for name in sorted(name for name in objects if name.startswith(prefix)):
                cut = name.find(delimiter, len(prefix)) if delimiter else -1
                if cut < 0:
                    entries[name] = objects[name].stat(bucket, name)
                    continue
                entries.setdefault(name[: cut + len(delimiter or "")], None)
                if trailing_delimiter and cut + len(delimiter or "") == len(name):
                    entries[name + "\0"] = objects[name].stat(bucket, name)  # both an object and a prefix
        found: list[ObjectStat] = []
        prefixes: list[str] = []
        ordered = sorted(entries.items())
        page = page_size or limit or DEFAULT_PAGE_SIZE
        for start in range(0, len(ordered), page):
            for key, stat in ordered[start : start + page]:
                if stat is None:
                    prefixes.append(key)
                else:
                    found.append(stat)
            if limit is not None and len(found) + len(prefixes) >= limit:
                break
        return Listing(found, prefixes)

    def read_range(self, stat: ObjectStat, start: int, end: int) -> bytes:
        end = min(end, stat.size)
        if start >= end:
            return b""
        with self._call("read_range"), self._lock:
            data = self._object(stat, f"read bytes {start}-{end - 1}").data[start:end]
        self.stats.moved(down=len(data))
        return data

    def download(self, stat: ObjectStat, destination: str | os.PathLike[str]) -> None:
        destination = Path(destination)
        destination.parent.mkdir(parents=True, exist_ok=True)
        with self._call("download"), self._lock:
            data = self._object(stat, "download it").data
        temporary = destination.with_name(f".{destination.name}.{uuid.uuid4().hex}.part")
        temporary.write_bytes(data)
        os.replace(temporary, destination)
        self.stats.moved(down=len(data))

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
        with open(source, "rb") as file:
            file.seek(offset)
            data = file.read()
        location = CloudLocation(bucket, name)
        with self._call("upload"), self._lock:
            stored = self._store(location, data, content_type, metadata, if_generation_match, "upload it")
        self.stats.moved(up=len(data))
        return stored

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
        with open(source, "rb") as file:
            file.seek(base_size)
            tail = file.read()
        location = CloudLocation(bucket, name)
        action = f"append {len(tail)} bytes to it"
        with self._call("append"), self._lock:
            current = self._bucket(bucket, location, action).get(name)
            if current is None or current.generation != if_generation_match:
                raise refused(location, action)
            stored = self._store(location, current.data + tail, content_type, metadata, if_generation_match, action)
        self.stats.moved(up=len(tail))
        return stored

    def patch_metadata(self, stat: ObjectStat, metadata: Mapping[str, str | None]) -> ObjectStat:
        action = "update its metadata"
        with self._call("patch_metadata"), self._lock:
            objects = self._bucket(stat.bucket, stat.location, action)
            current = objects.get(stat.name)
            if current is None:
                raise missing(stat.location, action)
            if current.generation != stat.generation or stat.metageneration not in (None, current.metageneration):
                raise refused(stat.location, action)
            merged = {**current.metadata, **{key: value for key, value in metadata.items() if value is not None}}
            for key in (key for key, value in metadata.items() if value is None):
                merged.pop(key, None)
            patched = replace(
                current, metadata=merged, metageneration=current.metageneration + 1, updated=datetime.now(UTC)
            )
            objects[stat.name] = patched
            return patched.stat(stat.bucket, stat.name)

    def copy(
        self,
        source: ObjectStat,
        bucket: str,
        name: str,
        metadata: Mapping[str, str],
        if_generation_match: int,
        content_type: str | None = None,
    ) -> ObjectStat:
        location = CloudLocation(bucket, name)
        action = f"copy {source.location} to it"
        with self._call("copy"), self._lock:
            current = self._bucket(bucket, location, action).get(name)
            if (current.generation if current else 0) != if_generation_match:
                raise refused(location, action)
            data = self._object(source, action).data
            return self._store(
                location, data, content_type or source.content_type, metadata, if_generation_match, action
            )

    def delete(self, bucket: str, name: str, if_generation_match: int | None) -> None:
        location = CloudLocation(bucket, name)
        with self._call("delete"), self._lock:
            objects = self._bucket(bucket, location, "delete it")
            current = objects.get(name)
            if current is None:
                raise missing(location, "delete it")
            if if_generation_match is not None and current.generation != if_generation_match:
                raise refused(location, "delete it")
            del objects[name]

    def create_placeholder(self, bucket: str, name: str, metadata: Mapping[str, str] | None = None) -> ObjectStat:
        with self._call("create_placeholder"), self._lock:
            location = CloudLocation(bucket, name)
            return self._store(location, b"", "application/x-directory", metadata or {}, 0, "create it")

    def create_small(self, bucket: str, name: str, data: bytes, metadata: Mapping[str, str]) -> ObjectStat:
        with self._call("create_small"), self._lock:
            return self._store(CloudLocation(bucket, name), data, "application/octet-stream", metadata, 0, "create it")

    def start_upload(
        self, location: CloudLocation, content_type: str, metadata: Mapping[str, str], if_generation_match: int
    ) -> StreamingUpload:
        session = uuid.uuid4().hex
        with self._call("start_upload"), self._lock:
            self._bucket(location.bucket, location, "start an upload")
            self._sessions[session] = _Session(location, content_type, dict(metadata), if_generation_match)
        return StreamingUpload(self, location, session, metadata)

    def send_part(self, session: str, location: CloudLocation, body: FileRange) -> None:
        with self._call("send_part"):
            if len(body) % SESSION_GRANULE:
                raise StorageError(f"{location}: server refused to upload a part: 400 {len(body)} bytes is no multiple")
            self._receive(session, location, body, "upload a part")

    def finish_session(
        self, session: str, location: CloudLocation, body: FileRange, size: int, crc32c: str
    ) -> ObjectStat:
        action = "finish the upload"
        with self._call("finish_session"):
            data = self._receive(session, location, body, action)
            if len(data) != size or crc32c_of_bytes(data) != crc32c:
                raise StorageError(f"{location}: server refused to {action}: 400 the bytes do not match")
            with self._lock:
                ongoing = self._sessions.pop(session)
                return self._store(
                    location, data, ongoing.content_type, ongoing.metadata, ongoing.if_generation_match, action
                )

    def _receive(self, session: str, location: CloudLocation, body: FileRange, action: str) -> bytes:
        """Take the body's bytes into the session (read outside the lock: they come from a file)."""
        data = b"".join(body)
        with self._lock:
            ongoing = self._sessions.get(session)
            if ongoing is None:
                raise missing(location, action)
            if body.start != len(ongoing.received):
                raise StorageError(f"{location}: server refused to {action}: 400 bytes from {body.start} out of order")
            ongoing.received += data
            received = bytes(ongoing.received)
        self.stats.moved(up=len(data))
        return received

    def cancel_session(self, session: str) -> None:
        with self._call("cancel_session"), self._lock:
            self._sessions.pop(session, None)
