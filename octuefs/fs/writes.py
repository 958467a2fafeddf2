"""Files open for writing: staged on local disk, uploaded whole by the engine on flush or fsync.

GCS objects cannot be changed in place, so a file being written lives in the staging area
(see `octuefs.staging`): empty for a new file or `O_TRUNC`, otherwise filled from the object
through the chunk reader (cached chunks are reused, missing ones fetched by range). A large
object is not copied in at open: its bytes stay a hole in the staged file until a write or
truncate reaches into them, so appending to it sends only the new bytes, joined on in the cloud
(see `GCSStorage.append`). Reads of the file from this mount see the staged bytes.

An upload carries the complete metadata, the content type and `ifGenerationMatch` of the
generation the bytes came from (0 for a new file), so another writer's newer object is never
overwritten; a failed upload leaves the staged bytes in place for the next flush or fsync, and
for recovery at the next mount.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace

from octuefs.cache import ChunkCache
from octuefs.datafile import Datafile, UploadRequest
from octuefs.errors import OctuefsError, PreconditionConflict
from octuefs.fs.feeds import Feed
from octuefs.reader import ObjectReader
from octuefs.staging import StagedFile, StagingArea, disk_errors
from octuefs.storage.gcs import GCSStorage, ObjectStat

logger = logging.getLogger(__name__)

# Filling a staged copy fetches this many chunks per ranged GET (as readahead does).
FILL_SPAN_CHUNKS = 8
# Below this, copying the object in (one ranged GET, often cached) is cheaper than the three extra
# requests of joining appended bytes on in the cloud.
JOIN_MIN_BYTES = 8 * 1024 * 1024
# Files fed while written at once; each sends one part at a time, streamed from its staged file.
FEEDING_THREADS = 4


@dataclass
class OpenWrite:
    staged: StagedFile
    fd: int
    # What the staged file's record on disk says (recovery after a crash sends exactly that).
    recorded: UploadRequest
    dirty: bool = False
    handles: int = 0
    custom_changes: dict[str, str] = field(default_factory=dict)
    unlinked: bool = False
    modified_ns: int = field(default_factory=time.time_ns)
    # Held for a whole upload: two flushes of one file (two processes closing or fsyncing it) must go
    # one after the other, or the second carries the generation the first just replaced and fails.
    upload_lock: threading.Lock = field(default_factory=threading.Lock)
    changes: int = 0
    # While not None, the staged file's first `base.size` bytes are a hole standing for this object's
    # content: copied in only when a write or truncate reaches into them.
    base: ObjectStat | None = None
    # Held around each write, truncate and change of the hole: an upload that finishes in between
    # must see either none or all of a write, or it could mark bytes as uploaded that were not.
    lock: threading.Lock = field(default_factory=threading.Lock)
    # The lowest offset written or truncated since the last upload began: an upload whose object covers
    # no byte changed meanwhile can stand for the staged file's head from then on.
    changed_from: int = sys.maxsize
    # A new or truncated file's upload, fed with its parts while it is written (see octuefs.fs.feeds).
    feed: Feed | None = None

    @property
    def size(self) -> int:
        return os.fstat(self.fd).st_size

    def mark_changed(self, offset: int = 0) -> None:
        """Counted, not only flagged: an upload compares the count before and after sending, so bytes
        written by another handle while it was sending stay dirty for the next flush."""
        self.dirty = True
        self.changes += 1
        self.changed_from = min(self.changed_from, offset)
        self.modified_ns = time.time_ns()


def _record(state: OpenWrite, request: UploadRequest) -> None:
    """Record the upload the staged file waits for, unless the record already says exactly that: each
    write of it is a rename and a journal commit on the cache disk, as long as a small file's upload."""
    if request != state.recorded:
        state.staged.write_record(request)
        state.recorded = request


class KeyedLocks:
    """A lock per key, kept only while a thread holds or waits for it: one kept for every inode ever
    opened for writing would stay for the life of the mount."""

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._locks: dict[int, tuple[threading.Lock, int]] = {}  # key → (lock, threads holding or waiting)

    def __len__(self) -> int:
        return len(self._locks)

    @contextlib.contextmanager
    def holding(self, key: int) -> Iterator[None]:
        with self._guard:
            lock, users = self._locks.get(key, (threading.Lock(), 0))
            self._locks[key] = (lock, users + 1)
        try:
            with lock:
                yield
        finally:
            with self._guard:
                lock, users = self._locks[key]
                if users == 1:
                    del self._locks[key]
                else:
                    self._locks[key] = (lock, users - 1)


class WriteTracker:
    """The staged content of every inode being written; methods block, so callers run them in threads."""

    def __init__(self, staging: StagingArea, cache: ChunkCache, storage: GCSStorage, chunk_size: int) -> None:
        self.staging = staging
        self.cache = cache
        self.storage = storage
        self.chunk_size = chunk_size
        # Read on the loop, added to by `begin` in worker threads: every change and every copy the loop
        # walks is made under `_by_ino_lock` (a walk of the dict itself can meet an insertion midway).
        self.by_ino: dict[int, OpenWrite] = {}
        self._by_ino_lock = threading.Lock()
        self.begin_locks = KeyedLocks()
        self._feeders = ThreadPoolExecutor(FEEDING_THREADS, thread_name_prefix="octuefs-feed")

    def begin(self, ino: int, datafile: Datafile, truncate: bool, keep: int | None = None) -> OpenWrite:
        """Stage the inode's content (once, however many opens), keeping it when `truncate` is False.

        `keep` limits what is copied from the object to its first bytes (a truncate to that size
        needs nothing beyond them).

        Opens of one inode run in parallel worker threads (several processes opening a file at
        once); the per-inode lock makes them share one staged copy, the later ones waiting while
        the first fills it, instead of each staging its own and all but one being orphaned.
        """
        with self.begin_locks.holding(ino), disk_errors(self.staging.directory):
            state = self.by_ino.get(ino)
            if state is None:
                request = datafile.content_upload_request()
                staged = self.staging.create(request)
                state = OpenWrite(staged, os.open(staged.data_path, os.O_RDWR), request)
                stat = datafile.cloud_stat
                try:
                    if stat is None or truncate:
                        state.feed = self._feed_for(datafile, state)
                    if stat is None:
                        state.mark_changed()
                    elif not truncate and keep is None and stat.size >= JOIN_MIN_BYTES:
                        self._leave_hole(state, stat)
                    elif not truncate:
                        self._fill(state, stat, stat.size if keep is None else min(keep, stat.size))
                except BaseException:
                    self.discard(state)
                    raise
                with self._by_ino_lock:
                    self.by_ino[ino] = state
            if truncate:
                self.truncate(state, 0)
            return state

    def _feed_for(self, datafile: Datafile, state: OpenWrite) -> Feed:
        part_size = self.storage.settings.upload_chunk_size
        return Feed(
            state.staged.data_path,
            part_size,
            lambda: self._next_request(datafile, state, dict(state.custom_changes)),
            self._feeders,
        )

    @staticmethod
    def _leave_hole(state: OpenWrite, stat: ObjectStat) -> None:
        """Stand the object's bytes in as a hole, recorded before anything is written, so recovery after
        a crash joins the staged tail onto the object instead of uploading the hole as zeros."""
        os.ftruncate(state.fd, stat.size)
        _record(state, replace(state.recorded, base_size=stat.size, if_generation_match=stat.generation))
        state.base = stat

    def _copy_in_base(self, state: OpenWrite, source: ObjectStat | None = None, limit: int | None = None) -> None:
        """Fill the hole (its first `limit` bytes, if given) from `source`, or from the object it stands
        for; the caller holds `state.lock`."""
        base = state.base
        if base is None:
            return
        source = source or base
        self._fill(state, source, base.size if limit is None else min(limit, base.size))
        _record(state, replace(state.recorded, base_size=0, if_generation_match=source.generation))
        state.base = None

    def _fill(self, state: OpenWrite, stat: ObjectStat, size: int) -> None:
        """Copy the object's first `size` bytes into the staged file through the chunk cache, fetching
        what is missing in large ranges; bytes after them are left as they are."""
        reader = ObjectReader(stat, self.cache, self.storage, self.chunk_size)
        indices = reader.chunk_range(0, size)
        for first in range(indices.start, indices.stop, FILL_SPAN_CHUNKS):
            reader.fetch_span(first, FILL_SPAN_CHUNKS)
            for index in range(first, min(first + FILL_SPAN_CHUNKS, indices.stop)):
                start = index * self.chunk_size
                os.pwrite(state.fd, reader.chunk(index)[: size - start], start)

    def write(self, state: OpenWrite, offset: int, data: bytes, append: bool) -> int:
        with state.lock, disk_errors(state.staged.data_path):
            position = state.size if append else offset
            if state.base is not None and position < state.base.size:
                self._copy_in_base(state)
            written = os.pwrite(state.fd, data, position)
            state.mark_changed(position)
            if state.feed is not None:
                state.feed.written(position, state.size)
        return written

    def read(self, state: OpenWrite, offset: int, size: int) -> bytes:
        """Through a descriptor of its own: the writer's may be closed (and its number reused) by a
        release while this runs in a worker thread. Bytes still in the hole come from the object."""
        head = b""
        base = state.base
        if base is not None and offset < base.size:
            reader = ObjectReader(base, self.cache, self.storage, self.chunk_size)
            head = reader.read(offset, min(size, base.size - offset))
            offset, size = offset + len(head), size - len(head)
        with open(state.staged.data_path, "rb") as file:
            return head + os.pread(file.fileno(), size, offset)

    def truncate(self, state: OpenWrite, size: int) -> None:
        with state.lock, disk_errors(state.staged.data_path):
            if state.base is not None and size < state.base.size:
                self._copy_in_base(state, limit=size)
            os.ftruncate(state.fd, size)
            state.mark_changed(size)
            if state.feed is not None:
                state.feed.written(size, size)

    def upload(self, datafile: Datafile, state: OpenWrite) -> ObjectStat | None:
        """Send the staged bytes if they changed; on failure say where they are kept, and keep them."""
        with state.upload_lock:
            if not state.dirty or state.unlinked:
                return None
            started = time.monotonic()
            location = datafile.cloud_path
            try:
                with state.lock:  # the request and its record must agree with the hole as it is now
                    sent_changes, sent_count = dict(state.custom_changes), state.changes
                    state.changed_from = sys.maxsize
                    feed, state.feed = state.feed, None
                    request = self._next_request(datafile, state, sent_changes)
                    _record(state, request)
                stat = (feed and feed.finish(request)) or self._send(state, request)
            except (OctuefsError, OSError) as error:
                kept = state.staged.data_path
                logger.error("%s: upload failed (%s); the written bytes are kept at %s", location, error, kept)
                raise
            datafile.adopt_uploaded(stat)
            with state.lock:  # a change of attributes in between would be forgotten (see `change_attributes`)
                state.dirty = state.changes != sent_count
                self._rebase(state, stat)
                for key, value in sent_changes.items():
                    if state.custom_changes.get(key) == value:
                        del state.custom_changes[key]
        logger.info(
            "%s: uploaded %d bytes in %.2f s (generation %d)",
            location,
            stat.size,
            time.monotonic() - started,
            stat.generation,
        )
        return stat

    @staticmethod
    def change_attributes(state: OpenWrite, changes: dict[str, str]) -> None:
        """A chmod, chown or touch of a file whose bytes are still to be uploaded: the upload carries it.
        Counted as a change, so that an upload in flight, which took the metadata before it, leaves the
        file dirty for the next one instead of the change being dropped with the staged state."""
        with state.lock:
            state.custom_changes.update(changes)
            state.changes += 1
            state.dirty = True

    @staticmethod
    def _next_request(datafile: Datafile, state: OpenWrite, custom_changes: dict[str, str]) -> UploadRequest:
        """The upload the staged file waits for, as recovery after a crash would send it."""
        request = datafile.content_upload_request(custom_changes)
        base = state.base
        if base is None:
            return request
        return replace(request, base_size=base.size, if_generation_match=base.generation)

    def _send(self, state: OpenWrite, request: UploadRequest) -> ObjectStat:
        """Send the request; an append refused for another reason than a newer object (compose needs a
        storage class and permissions a plain upload does not) copies the hole in and goes up whole."""
        try:
            return request.send(state.staged.data_path)
        except PreconditionConflict:
            raise
        except OctuefsError as error:
            if not request.base_size:
                raise
            logger.warning("%s: joining the appended bytes on failed (%s); sending it whole", request.location, error)
        with state.lock:
            self._copy_in_base(state)
            request = replace(request, base_size=0)
            _record(state, request)
        return request.send(state.staged.data_path)

    def _rebase(self, state: OpenWrite, uploaded: ObjectStat) -> None:
        """After joining bytes on: the new object stands for the whole staged file when nothing in it
        changed during the upload; otherwise only the hole is filled from it (the same bytes), and the
        next upload sends the file whole. The caller holds `state.lock`."""
        if state.base is None:
            return
        if state.changed_from >= uploaded.size:
            state.base = uploaded
            _record(state, replace(state.recorded, base_size=uploaded.size, if_generation_match=uploaded.generation))
        else:
            self._copy_in_base(state, source=uploaded)

    def moved(self, state: OpenWrite, original: ObjectStat, datafile: Datafile) -> None:
        """The object was copied to a new name (a rename): the hole now stands for the copy (the same
        bytes, unless another writer had replaced the object), and the record names where the staged
        bytes go now, so that recovery after a crash does not send them to the deleted name."""
        with state.lock:
            base = state.base
            if base is not None and (base.name, base.generation) == (original.name, original.generation):
                state.base = datafile.cloud_stat
            _record(state, self._next_request(datafile, state, dict(state.custom_changes)))

    def named(self) -> list[int]:
        """Inodes being written that still have a name: an unlinked file kept open by its handles is
        gone from the tree, so listings and rmdir's emptiness check must not see it."""
        return [ino for ino, state in self.states().items() if not state.unlinked]

    def states(self) -> dict[int, OpenWrite]:
        """A copy of `by_ino` to walk: the table itself may grow in a worker thread meanwhile."""
        with self._by_ino_lock:
            return dict(self.by_ino)

    def unlink(self, ino: int) -> None:
        """The file lost its name (unlink, or a rename over it): its bytes must never be uploaded, as
        they would replace whatever holds the name now; open handles keep them until the last release."""
        state = self.by_ino.get(ino)
        if state is not None:
            state.unlinked = True
            if state.feed is not None:
                state.feed.abandon()  # its parts would only go up to be thrown away
                state.feed = None
            # Without its record, a crash before the last release cannot bring the file back.
            state.staged.record_path.unlink(missing_ok=True)
            if state.handles <= 0:
                self.finish(ino)

    def release(self, ino: int) -> OpenWrite | None:
        """One handle fewer; the state once the last handle is gone (the caller uploads or keeps it)."""
        state = self.by_ino.get(ino)
        if state is None:
            return None
        state.handles -= 1
        return state if state.handles <= 0 else None

    def finish(self, ino: int) -> None:
        """Forget an inode's staged bytes once they are uploaded (or unlinked)."""
        with self._by_ino_lock:
            state = self.by_ino.pop(ino, None)
        if state is not None:
            self.discard(state)

    def discard(self, state: OpenWrite) -> None:
        if state.feed is not None:
            state.feed.abandon()
        os.close(state.fd)
        self.staging.remove(state.staged)
