"""Files being written, kept on local disk until their upload succeeds, and across a crash.

Each staged file is a data file plus a JSON record of the upload it is waiting for (object,
generation it came from, complete metadata, content type), written before every upload
attempt. After a crash or kill, `recover` finishes what it can: an object still at the
generation the bytes came from gets them; one changed by someone else meanwhile is never
overwritten: the bytes are moved aside to `lost+found` and reported with their path.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from octuefs.datafile import UploadRequest
from octuefs.errors import MountError, OctuefsError, StagingDiskError
from octuefs.private_files import open_private, private_directory
from octuefs.storage.gcs import TEMPORARY_PREFIX
from octuefs.storage.interface import Storage
from octuefs.storage.objects import ObjectStat, crc32c_of_file
from octuefs.uploads import sending

logger = logging.getLogger(__name__)

# Older than any append could take: a part this old was left by a crash, not by an append in flight.
STALE_PART_AGE = timedelta(days=1)
CREATE_NEW = os.O_WRONLY | os.O_CREAT | os.O_EXCL


@contextlib.contextmanager
def disk_errors(path: Path) -> Iterator[None]:
    """Errors of the staging disk as a typed error carrying their errno: a full disk must reach the
    program writing as ENOSPC, as from a local file, not as an unexpected error (EIO). Storage
    errors raised meanwhile (a staged copy being filled from the object) pass through unchanged."""
    try:
        yield
    except OctuefsError:
        raise
    except OSError as error:
        raise StagingDiskError(error.errno, f"{path}: the staging disk refused it ({error.strerror})") from error


@dataclass(frozen=True)
class StagedFile:
    directory: Path
    token: str

    @property
    def data_path(self) -> Path:
        return self.directory / f"{self.token}.data"

    @property
    def record_path(self) -> Path:
        return self.directory / f"{self.token}.json"

    @contextlib.contextmanager
    def opened(self) -> Iterator[int]:
        """A descriptor of the staged bytes for one step of work, closed after it.

        Sessions hold none while idle: a program keeping thousands of files open for writing would
        otherwise use up the daemon's descriptors, and every other request (each needs a socket or a
        chunk file) would fail for every user. Opening costs microseconds against a write's copy."""
        descriptor = os.open(self.data_path, os.O_RDWR)
        try:
            yield descriptor
        finally:
            os.close(descriptor)

    @property
    def size(self) -> int:
        return self.data_path.stat().st_size

    def write_record(self, request: UploadRequest) -> None:
        """Record the pending upload atomically, so a crash leaves either the old or the new record.

        Not fsynced: the record and the staged bytes outlive a crash or kill of the daemon (they are
        in the page cache); only a crash of the whole machine can lose writes not yet uploaded, and
        a program that must not lose them calls fsync(), which uploads.
        """
        with disk_errors(self.record_path):
            handle, temporary = tempfile.mkstemp(dir=self.directory, suffix=".tmp")
            try:
                with os.fdopen(handle, "w") as file:
                    json.dump(request.to_dict(), file)
                os.replace(temporary, self.record_path)
            except OSError:
                Path(temporary).unlink(missing_ok=True)
                raise

    def read_record(self) -> UploadRequest:
        return UploadRequest.from_dict(json.loads(self.record_path.read_text()))


class StagingArea:
    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = private_directory(Path(directory))

    def hold(self) -> int:
        """Make this process the area's only user until it exits, and return the descriptor that holds it.

        Recovery adopts every record it finds: a second daemon on the same cache directory would upload
        (or set aside in lost+found) the files the first one is still writing, and delete its `.tmp`
        records mid-write. The lock dies with the process, so a crashed daemon never blocks the next.
        """
        handle = open_private(self.directory / ".lock", os.O_RDWR | os.O_CREAT)
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(handle)
            raise MountError(
                f"{self.directory}: in use by another octuefs mount; give each mount its own --cache-dir"
            ) from None
        return handle

    def create(self, request: UploadRequest) -> StagedFile:
        staged = StagedFile(self.directory, uuid.uuid4().hex)
        # Written in place, not renamed into place: there are no staged bytes yet that a torn record
        # could lose (recovery drops a record without data), and the rename is a journal commit.
        with disk_errors(staged.record_path):
            try:
                with os.fdopen(open_private(staged.record_path, CREATE_NEW), "w") as file:
                    json.dump(request.to_dict(), file)
                os.close(open_private(staged.data_path, CREATE_NEW))
            except OSError:
                self.remove(staged)
                raise
        return staged

    def remove(self, staged: StagedFile) -> None:
        staged.data_path.unlink(missing_ok=True)
        staged.record_path.unlink(missing_ok=True)

    def pending(self) -> list[StagedFile]:
        for leftover in self.directory.glob("*.tmp"):
            leftover.unlink(missing_ok=True)
        return [StagedFile(self.directory, path.stem) for path in sorted(self.directory.glob("*.json"))]


def recover(area: StagingArea, storage: Storage, lost_and_found: Path, bucket: str, prefix: str) -> list[str]:
    """Finish or set aside what an earlier daemon of this mount's `bucket` and `prefix` left staged;
    returns one line per file, also logged. Records of other objects (a cache directory shared by
    mounts of other sources, or a record someone planted) are left alone: a mount uploads only to
    what it serves."""
    report = []
    for staged in area.pending():
        try:
            line = _recover_one(area, staged, storage, lost_and_found, (bucket, prefix))
        except (OctuefsError, OSError, ValueError, KeyError) as error:
            line = f"could not recover staged file {staged.data_path}: {error}; it is left where it is"
        logger.warning("recovery: %s", line)
        report.append(line)
    return report


def _recover_one(
    area: StagingArea, staged: StagedFile, storage: Storage, lost_and_found: Path, source: tuple[str, str]
) -> str:
    if not staged.data_path.exists():
        area.remove(staged)
        return f"dropped a record without data ({staged.record_path.name})"
    request = staged.read_record()
    location = request.location
    bucket, prefix = source
    if location.bucket != bucket or not location.name.startswith(f"{prefix}/" if prefix else ""):
        return f"{staged.data_path} is staged for {location}, not under gs://{bucket}/{prefix}: left where it is"
    current = storage.stat(location.bucket, location.name)
    current_generation = current.generation if current else 0
    if current_generation == request.if_generation_match:
        stat = sending.send(storage, request, staged.data_path)
        area.remove(staged)
        return f"uploaded {stat.size} bytes to {location} (generation {stat.generation})"
    if current is not None and not request.base_size and _holds(current, staged.data_path):
        # An upload that reached the server as the daemon stopped, before it could drop its staged copy.
        area.remove(staged)
        return f"{location} already holds these {current.size} bytes (generation {current.generation})"
    return set_aside(staged, request, lost_and_found, current_generation)


def set_aside(staged: StagedFile, request: UploadRequest, lost_and_found: Path, current_generation: int) -> str:
    """Move staged bytes whose object another writer changed (now at `current_generation`, 0: gone) into
    `lost_and_found` with their record, never over that writer's object; returns the line saying where.
    Recovery at mount and the lander (octuefs.core.landing) both end a conflict here."""
    location = request.location
    private_directory(lost_and_found)
    base_name = os.path.basename(location.name)
    if base_name in ("", ".", "..") or len(base_name.encode("utf-8", "surrogateescape")) > 200:
        base_name = "object"
    kept = lost_and_found / f"{staged.token}-{base_name}"
    shutil.move(staged.data_path, kept)
    with contextlib.suppress(FileNotFoundError):
        shutil.move(staged.record_path, kept.with_name(kept.name + ".json"))
    hole = (
        f" (its first {request.base_size} bytes are zeros standing for generation {request.if_generation_match})"
        if request.base_size
        else ""
    )
    return (
        f"{location} changed since these bytes were staged (generation {request.if_generation_match} → "
        f"{current_generation}); not uploaded, kept at {kept}{hole}"
    )


def _holds(current: ObjectStat, path: Path) -> bool:
    return current.size == path.stat().st_size and current.crc32c == crc32c_of_file(path)


def remove_stale_parts(storage: Storage, bucket: str, older_than: timedelta = STALE_PART_AGE) -> list[str]:
    """Delete appended bytes a crash left waiting under `.octuefs_tmp/` (see `GCSStorage.append`).

    Listings hide them, so nobody would notice what they cost. Only old ones go: a younger part may
    belong to an append another mount of the bucket is making right now.
    """
    removed = []
    try:
        parts = storage.list(bucket, TEMPORARY_PREFIX).objects
    except OctuefsError as error:
        logger.info("gs://%s/%s: not listed for leftover parts (%s)", bucket, TEMPORARY_PREFIX, error)
        return removed
    cutoff = datetime.now(UTC) - older_than
    for part in parts:
        if part.updated is not None and part.updated < cutoff:
            try:
                storage.delete(bucket, part.name, part.generation)
            except OctuefsError as error:
                logger.warning("%s: could not remove this leftover part: %s", part.location, error)
                continue
            logger.info("removed %s, a part a crashed append left behind", part.location)
            removed.append(part.name)
    return removed
