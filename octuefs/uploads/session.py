"""One inode's write session: its staged file, the hole standing for the object's bytes, its upload state."""

from __future__ import annotations

import enum
import time
from dataclasses import dataclass, field

from octuefs.datafile import UploadRequest
from octuefs.storage.gcs import ObjectStat
from octuefs.uploads.feed import Feed
from octuefs.uploads.staging import StagedFile


class WriteStatus(enum.Enum):
    """Where the staged bytes stand against the object (as mountpoint-s3's WriteStatus)."""

    CLEAN = "clean"  # the object holds what is staged: nothing to send
    DIRTY = "dirty"  # changed since the last upload
    UPLOADING = "uploading"  # an upload is sending every change made so far
    FAILED = "failed"  # the last upload failed: the bytes stay staged for the next flush, fsync or the lander
    UNLINKED = "unlinked"  # the name is gone: never uploaded, dropped at the last release


@dataclass
class WriteSession:
    """Owned by its `Inode` and changed only under the inode's lock (by the loop, or by the worker the
    loop handed it to while holding that lock)."""

    staged: StagedFile
    # What the staged file's record on disk says (recovery after a crash sends exactly that).
    recorded: UploadRequest
    status: WriteStatus = WriteStatus.CLEAN
    # Write handles and requests (a truncate) using the session: it is dropped only when none is left.
    holders: int = 0
    # chmod, chown, touch and create's mode and owner, for the next upload to carry.
    custom_changes: dict[str, str] = field(default_factory=dict)
    modified_ns: int = field(default_factory=time.time_ns)
    # While not None, the staged file's first `base.size` bytes are a hole standing for this object's
    # content: copied in only when a write or truncate reaches into them.
    base: ObjectStat | None = None
    # A new or truncated file's upload, fed with its parts while it is written (see octuefs.uploads.feed).
    feed: Feed | None = None
    # Why the last upload failed (FAILED): the lander (octuefs.core.landing) waits for a server that was
    # away differently from one that refused.
    error: Exception | None = None

    @property
    def size(self) -> int:
        return self.staged.size

    @property
    def dirty(self) -> bool:
        """Holds bytes or attributes the object does not have yet."""
        return self.status in (WriteStatus.DIRTY, WriteStatus.UPLOADING, WriteStatus.FAILED)

    @property
    def unlinked(self) -> bool:
        return self.status is WriteStatus.UNLINKED

    def mark_changed(self) -> None:
        if self.status is not WriteStatus.UNLINKED:
            self.status = WriteStatus.DIRTY
        self.modified_ns = time.time_ns()

    def change_attributes(self, changes: dict[str, str]) -> None:
        """A chmod, chown or touch of a file whose bytes are still to be uploaded: the upload carries it."""
        self.custom_changes.update(changes)
        if self.status is not WriteStatus.UNLINKED:
            self.status = WriteStatus.DIRTY

    def record(self, request: UploadRequest) -> None:
        """Record the upload the staged file waits for, unless the record already says exactly that: each
        write of it is a rename and a journal commit on the cache disk, as long as a small file's upload."""
        if request != self.recorded:
            self.staged.write_record(request)
            self.recorded = request
