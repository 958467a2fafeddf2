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
SPAN_CHUNKS = int(__import__("os").environ.get("SPAN", "8"))
# Reads in sequence count as a stream, worth reading ahead of, past this many chunks: the kernel sends
# reads of up to 1 MiB, and h5py reading two neighbouring HDF5 chunks of 512 KiB sends 1.5 MiB in sequence.
STREAM_CHUNKS = 2
# A read no larger than this that does not follow the handle's last one is random (see looks_random).
SCATTERED_READ_BYTES = 64 * 1024


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
    # Reads in a row that did not follow on from the one before (see looks_random).
    jumps: int = 0

    @property
    def path(self) -> str:
        return self.inode.path

    def looks_random(self, offset: int, size: int) -> bool:
        """Small, away from where this handle's reads have got to, and the read before was such a jump too.

        Small: the kernel asks a random reader for its own `pread` sizes (4 KiB for 4 KiB), a sequential
        one mostly for whole readahead windows. Two jumps in a row: a sequential reader also jumps now
        and then, with small reads, where it skips pages that another reader of the file brought into
        the page cache, and then follows on from there."""
        return size <= SCATTERED_READ_BYTES and self.jumps > 0 and not self._follows(offset, size)

    def _follows(self, offset: int, size: int) -> bool:
        # The kernel sends several reads of one sequential stream at once, and they may arrive out
        # of order: a read near the expected offset still counts as sequential.
        return abs(offset - self.next_offset) <= max(4 * size, self.reader.chunk_size)

    def plan_readahead(self, offset: int, size: int) -> list[tuple[int, int]]:
        """Spans of chunks (first, count) to prefetch after a read of [offset, offset + size).

        The window is twice what the reader has read in sequence so far (capped), and nothing is
        prefetched until it has read more than STREAM_CHUNKS chunks in sequence: a random reader such
        as h5py reads a few scattered pieces and must not pull in megabytes it never asked for. The
        window is refilled in large spans once half of it has been consumed, so each GET is big.
        """
        chunk_size = self.reader.chunk_size
        if self._follows(offset, size):
            self.jumps = 0
            self.sequential_bytes += size
            self.next_offset = max(self.next_offset, offset + size)
        else:
            self.jumps += 1
            self.sequential_bytes = size
            self.next_offset = offset + size
            self.prefetched_until = 0
        if self.sequential_bytes <= STREAM_CHUNKS * chunk_size:
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
