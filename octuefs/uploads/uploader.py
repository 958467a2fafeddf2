"""Filling and changing staged copies, and sending them up by the strategy that fits (see `octuefs.uploads`).

A staged copy is empty for a new file or `O_TRUNC`, otherwise filled from the object through the
chunk reader (cached chunks are reused, missing ones fetched by range). A large object is not copied
in at open: its bytes stay a hole in the staged file until a write or truncate reaches into them, so
appending to it sends only the new bytes, joined on in the cloud (see `GCSStorage.append`). Reads of
the file from this mount see the staged bytes.
"""

from __future__ import annotations

import errno
import logging
import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

from octuefs.cache import ChunkCache
from octuefs.datafile import Datafile, UploadRequest
from octuefs.errors import OctuefsError, PreconditionConflict, StagingDiskError
from octuefs.reader import ObjectReader
from octuefs.storage.gcs import ObjectStat
from octuefs.storage.interface import Storage
from octuefs.uploads import sending
from octuefs.uploads.feed import Feed
from octuefs.uploads.session import WriteSession, WriteStatus
from octuefs.uploads.staging import StagingArea, disk_errors

logger = logging.getLogger(__name__)

# Filling a staged copy fetches this many chunks per ranged GET (as readahead does).
FILL_SPAN_CHUNKS = 8
# Below this, copying the object in (one ranged GET, often cached) is cheaper than the three extra
# requests of joining appended bytes on in the cloud.
JOIN_MIN_BYTES = 8 * 1024 * 1024
# GCS's largest object: a file past it could never be uploaded.
MAX_OBJECT_SIZE = 5 * 1024**4
# Files fed while written at once; each sends one part at a time, streamed from its staged file.
FEEDING_THREADS = 4


class Uploader:
    """Blocking work on write sessions, run in worker threads by a caller holding the inode's lock."""

    def __init__(self, staging: StagingArea, cache: ChunkCache, storage: Storage, chunk_size: int) -> None:
        self.staging = staging
        self.cache = cache
        self.storage = storage
        self.chunk_size = chunk_size
        self._feeders = ThreadPoolExecutor(FEEDING_THREADS, thread_name_prefix="octuefs-feed")

    def begin(self, datafile: Datafile, truncate: bool, keep: int | None = None) -> WriteSession:
        """Stage the file's content, keeping it when `truncate` is False; `keep` limits what is copied
        from the object to its first bytes (a truncate to that size needs nothing beyond them)."""
        with disk_errors(self.staging.directory):
            request = datafile.content_upload_request()
            staged = self.staging.create(request)
            session = WriteSession(staged, request)
            stat = datafile.cloud_stat
            try:
                if stat is None or truncate:
                    session.feed = self._feed_for(datafile, session)
                if stat is None:
                    session.mark_changed()
                elif truncate:
                    self.truncate(session, 0)
                elif keep is None and stat.size >= JOIN_MIN_BYTES:
                    self._leave_hole(session, stat)
                else:
                    self._fill(session, stat, stat.size if keep is None else min(keep, stat.size))
            except BaseException:
                self.discard(session)
                raise
            return session

    def _feed_for(self, datafile: Datafile, session: WriteSession) -> Feed:
        part_size = self.storage.settings.upload_chunk_size
        return Feed(
            self.storage,
            session.staged.data_path,
            part_size,
            lambda: self._next_request(datafile, session, dict(session.custom_changes)),
            self._feeders,
        )

    @staticmethod
    def _leave_hole(session: WriteSession, stat: ObjectStat) -> None:
        """Stand the object's bytes in as a hole, recorded before anything is written, so recovery after
        a crash joins the staged tail onto the object instead of uploading the hole as zeros."""
        with session.staged.opened() as descriptor:
            os.ftruncate(descriptor, stat.size)
        session.record(replace(session.recorded, base_size=stat.size, if_generation_match=stat.generation))
        session.base = stat

    def _copy_in_base(self, session: WriteSession, source: ObjectStat | None = None, limit: int | None = None) -> None:
        """Fill the hole (its first `limit` bytes, if given) from `source`, or from the object it stands for."""
        base = session.base
        if base is None:
            return
        source = source or base
        self._fill(session, source, base.size if limit is None else min(limit, base.size))
        session.record(replace(session.recorded, base_size=0, if_generation_match=source.generation))
        session.base = None

    def _fill(self, session: WriteSession, stat: ObjectStat, size: int) -> None:
        """Copy the object's first `size` bytes into the staged file through the chunk cache, fetching
        what is missing in large ranges; bytes after them are left as they are."""
        reader = ObjectReader(stat, self.cache, self.storage, self.chunk_size)
        indices = reader.chunk_range(0, size)
        for first in range(indices.start, indices.stop, FILL_SPAN_CHUNKS):
            reader.fetch_span(first, FILL_SPAN_CHUNKS)
            with session.staged.opened() as descriptor:
                for index in range(first, min(first + FILL_SPAN_CHUNKS, indices.stop)):
                    start = index * self.chunk_size
                    os.pwrite(descriptor, reader.chunk(index)[: size - start], start)

    def write(self, session: WriteSession, offset: int, data: bytes, append: bool) -> int:
        with disk_errors(session.staged.data_path):
            position = session.size if append else offset
            self._check_growth(session, position, position + len(data))
            if session.base is not None and position < session.base.size:
                self._copy_in_base(session)
            with session.staged.opened() as descriptor:
                written = os.pwrite(descriptor, data, position)
                size = os.fstat(descriptor).st_size
            session.mark_changed()
            if session.feed is not None:
                session.feed.written(position, size)
        return written

    def read(self, session: WriteSession, offset: int, size: int) -> bytes:
        """Runs without the inode's lock, so read-only and through a descriptor of its own (a release may
        remove the session meanwhile). Bytes still in the hole come from the object."""
        head = b""
        base = session.base
        if base is not None and offset < base.size:
            reader = ObjectReader(base, self.cache, self.storage, self.chunk_size)
            head = reader.read(offset, min(size, base.size - offset))
            offset, size = offset + len(head), size - len(head)
        with open(session.staged.data_path, "rb") as file:
            return head + os.pread(file.fileno(), size, offset)

    def truncate(self, session: WriteSession, size: int) -> None:
        with disk_errors(session.staged.data_path):
            self._check_growth(session, size, size)
            if session.base is not None and size < session.base.size:
                self._copy_in_base(session, limit=size)
            with session.staged.opened() as descriptor:
                os.ftruncate(descriptor, size)
            session.mark_changed()
            if session.feed is not None:
                session.feed.written(size, size)

    @staticmethod
    def _check_growth(session: WriteSession, hole_end: int, size: int) -> None:
        """Refuse at once a size the file could never be uploaded at (EFBIG), and a hole (up to
        `hole_end`) the staging disk could not hold as zeros (ENOSPC): a hole a far truncate or write
        leaves goes up as zeros, so `truncate -s 1P` would stream zeros for days. Bytes actually
        written meet the disk's own limit."""
        path = session.staged.data_path
        if size > MAX_OBJECT_SIZE:
            raise StagingDiskError(errno.EFBIG, f"{path}: {size} bytes is past the largest object GCS holds")
        hole = hole_end - session.size
        if hole > 0:
            disk = os.statvfs(path)
            if hole > disk.f_bavail * disk.f_frsize:
                raise StagingDiskError(
                    errno.ENOSPC, f"{path}: a hole of {hole} bytes would not fit on the staging disk"
                )

    def upload(self, datafile: Datafile, session: WriteSession) -> ObjectStat | None:
        """Send the staged bytes if they changed; on failure say where they are kept, and keep them.

        Nothing else changes the session meanwhile (the caller holds the inode's lock), so once sent
        the staged file is exactly what the object holds."""
        if not session.dirty:
            return None
        started = time.monotonic()
        session.status = WriteStatus.UPLOADING
        feed, session.feed = session.feed, None
        request = self._next_request(datafile, session, dict(session.custom_changes))
        try:
            session.record(request)
            stat = (feed and feed.finish(request)) or self._send(session, request)
        except (OctuefsError, OSError) as error:
            session.status, session.error = WriteStatus.FAILED, error
            kept = session.staged.data_path
            logger.error("%s: upload failed (%s); the written bytes are kept at %s", datafile.cloud_path, error, kept)
            raise
        datafile.adopt_uploaded(stat)
        session.status, session.error = WriteStatus.CLEAN, None
        session.custom_changes.clear()
        if session.base is not None:
            # The object now holds the whole staged file, joined on: it stands for all of it.
            session.base = stat
            session.record(replace(session.recorded, base_size=stat.size, if_generation_match=stat.generation))
        logger.info(
            "%s: uploaded %d bytes in %.2f s (generation %d)",
            datafile.cloud_path,
            stat.size,
            time.monotonic() - started,
            stat.generation,
        )
        return stat

    @staticmethod
    def _next_request(datafile: Datafile, session: WriteSession, custom_changes: dict[str, str]) -> UploadRequest:
        """The upload the staged file waits for, as recovery after a crash would send it."""
        request = datafile.content_upload_request(custom_changes)
        base = session.base
        if base is None:
            return request
        return replace(request, base_size=base.size, if_generation_match=base.generation)

    def _send(self, session: WriteSession, request: UploadRequest) -> ObjectStat:
        """Send the request; an append refused for another reason than a newer object (compose needs a
        storage class and permissions a plain upload does not) copies the hole in and goes up whole."""
        try:
            return sending.send(self.storage, request, session.staged.data_path)
        except PreconditionConflict:
            raise
        except OctuefsError as error:
            if not request.base_size:
                raise
            logger.warning("%s: joining the appended bytes on failed (%s); sending it whole", request.location, error)
        self._copy_in_base(session)
        request = replace(request, base_size=0)
        session.record(request)
        return sending.send(self.storage, request, session.staged.data_path)

    def moved(self, session: WriteSession, original: ObjectStat, datafile: Datafile) -> None:
        """The object was copied to a new name (a rename): the hole now stands for the copy (the same
        bytes, unless another writer had replaced the object), and the record names where the staged
        bytes go now, so that recovery after a crash does not send them to the deleted name."""
        base = session.base
        if base is not None and (base.name, base.generation) == (original.name, original.generation):
            session.base = datafile.cloud_stat
        session.record(self._next_request(datafile, session, dict(session.custom_changes)))

    @staticmethod
    def orphan(session: WriteSession) -> None:
        """The file lost its name (unlink, or a rename over it): its bytes must never be uploaded, as
        they would replace whatever holds the name now; open handles keep them until the last release.
        Cancelling a streamed upload is an HTTP request: run this in a worker."""
        session.status = WriteStatus.UNLINKED
        feed, session.feed = session.feed, None
        if feed is not None:
            feed.abandon()  # its parts would only go up to be thrown away
        # Without its record, a crash before the last release cannot bring the file back.
        session.staged.record_path.unlink(missing_ok=True)

    def discard(self, session: WriteSession) -> None:
        """Remove the staged files of a session no inode holds any more (uploaded or unlinked)."""
        if session.feed is not None:
            session.feed.abandon()
        self.staging.remove(session.staged)
