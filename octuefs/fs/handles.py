"""Open files: one reader per open, pinned to the generation that was opened, plus readahead.

The kernel sends reads of at most 128 KiB, so throughput comes from our own readahead: while a
reader stays sequential, chunks ahead of it are fetched in parallel, the window doubling up to
`max_readahead`; a seek shrinks it back to one chunk (mountpoint-s3's prefetcher works the same
way). Fetches run in worker threads under a limiter, so one slow object never stalls the mount.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import trio

from octuefs.fs.dirs import DirEntry
from octuefs.fs.inodes import Inode
from octuefs.reader import ObjectReader

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class DirHandle:
    """A directory as it was when opened, so readdir's offsets stay valid while it is read."""

    path: str
    entries: list[DirEntry]


@dataclass
class FileHandle:
    """An open file: a reader pinned to a generation, or (reader None) a handle on staged bytes."""

    inode: Inode
    reader: ObjectReader | None
    max_readahead: int
    append: bool = False
    next_offset: int = 0
    window: int = 0
    scheduled: set[int] = field(default_factory=set)

    def plan_readahead(self, offset: int, size: int) -> list[int]:
        """Chunks to prefetch after a read of [offset, offset + size)."""
        assert self.reader is not None
        chunk_size = self.reader.chunk_size
        if offset == self.next_offset:
            self.window = min(max(self.window * 2, chunk_size), self.max_readahead)
        else:
            self.window = chunk_size
            self.scheduled.clear()
        self.next_offset = offset + size
        wanted = self.reader.chunk_range(self.next_offset, self.window)
        plan = [index for index in wanted if index not in self.scheduled and not self.reader.is_cached(index)]
        self.scheduled.update(plan)
        return plan


async def prefetch(handle: FileHandle, index: int, limiter: trio.CapacityLimiter) -> None:
    """Fetch one chunk ahead of the reader; a failure is only logged (the read itself will retry)."""
    assert handle.reader is not None
    try:
        await trio.to_thread.run_sync(handle.reader.chunk, index, limiter=limiter)
    except Exception as error:
        logger.debug("%s: readahead of chunk %d failed: %s", handle.inode.path, index, error)
    finally:
        handle.scheduled.discard(index)
