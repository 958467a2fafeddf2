"""Open files, typed by what they read: a ReadHandle reads an object through its reader (pinned to the
generation that was opened, plus readahead); a WriteHandle reads and writes the inode's staged bytes.

The kernel sends reads of at most 128 KiB, so throughput comes from our own readahead: while a
reader stays sequential, chunks ahead of it are fetched in parallel, the window doubling up to
`max_readahead`; a seek shrinks it back to one chunk (mountpoint-s3's prefetcher works the same
way). Fetches run in worker threads under a limiter, so one slow object never stalls the mount.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import trio

from octuefs.core.inodes import Inode
from octuefs.fs.dirs import DirEntry
from octuefs.reader import ObjectReader

logger = logging.getLogger(__name__)

# Readahead fetches up to this many chunks with one ranged GET: large ranges cost the server and
# the client far less per byte than 1 MiB ones.
SPAN_CHUNKS = 8


@dataclass(frozen=True)
class DirHandle:
    """A directory as it was when opened, so readdir's offsets stay valid while it is read."""

    path: str
    entries: list[DirEntry]


@dataclass
class WriteHandle:
    """An open file on the inode's staged bytes: opened for writing, or opened while the file was being
    written here (its reads must see the staged bytes). Each counts as one holder of the write session."""

    inode: Inode
    append: bool = False
    # Opened with write access: only such a handle's close sends the staged bytes (see `flush`).
    writes: bool = True

    @property
    def path(self) -> str:
        return self.inode.path


@dataclass
class ReadHandle:
    """An open file reading an object: a reader pinned to a generation, with its readahead state."""

    inode: Inode
    reader: ObjectReader
    max_readahead: int
    next_offset: int = 0
    sequential_bytes: int = 0
    prefetched_until: int = 0

    @property
    def path(self) -> str:
        return self.inode.path

    def plan_readahead(self, offset: int, size: int) -> list[tuple[int, int]]:
        """Spans of chunks (first, count) to prefetch after a read of [offset, offset + size).

        The window is twice what the reader has read in sequence so far (capped), and nothing is
        prefetched until it has read a whole chunk in sequence: a random reader such as h5py reads
        a few scattered pieces and must not pull in megabytes it never asked for. The window is
        refilled in large spans once half of it has been consumed, so each GET is big.
        """
        chunk_size = self.reader.chunk_size
        # The kernel sends several reads of one sequential stream at once, and they may arrive out
        # of order: a read near the expected offset still counts as sequential.
        if abs(offset - self.next_offset) <= max(4 * size, chunk_size):
            self.sequential_bytes += size
            self.next_offset = max(self.next_offset, offset + size)
        else:
            self.sequential_bytes = size
            self.next_offset = offset + size
            self.prefetched_until = 0
        if self.sequential_bytes < chunk_size:
            return []
        window_chunks = max(min(2 * self.sequential_bytes, self.max_readahead) // chunk_size, 1)
        position = self.next_offset // chunk_size
        start = max(self.prefetched_until, position)
        if start - position > window_chunks // 2:
            return []
        end = min(position + window_chunks, self.reader.chunk_count)
        self.prefetched_until = max(self.prefetched_until, end)
        return [(first, min(SPAN_CHUNKS, end - first)) for first in range(start, end, SPAN_CHUNKS)]


FileHandle = ReadHandle | WriteHandle


async def prefetch(handle: ReadHandle, span: tuple[int, int], limiter: trio.CapacityLimiter) -> None:
    """Fetch chunks ahead of the reader; a failure is only logged (the read itself will retry). Abandoned
    when the mount stops: nobody waits for these chunks then."""
    first, count = span
    try:
        await trio.to_thread.run_sync(handle.reader.fetch_span, first, count, limiter=limiter, abandon_on_cancel=True)
    except Exception as error:
        logger.debug("%s: readahead of chunks %d+%d failed: %s", handle.inode.path, first, count, error)
