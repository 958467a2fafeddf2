"""The pyfuse3 Operations of a mounted bucket: thin translation from kernel requests to the engine.

Every blocking call runs in a worker thread, so the trio loop keeps answering other requests while
one object is slow; uploads, work on staged files and everything else (reads, lookups, listings,
metadata) each have a CapacityLimiter of their own, so slow uploads filling theirs cannot keep a
getattr or a read waiting. Attributes and listings are trusted for
`metadata_ttl` seconds (also given to the kernel as attr/entry timeouts); after that a lookup,
getattr or open asks the server again, so other clients' changes appear.
"""

from __future__ import annotations

import errno
import itertools
import json
import logging
import os
import stat as stat_module
import time
from collections import Counter
from collections.abc import Callable
from typing import Any, TypeVar

import pyfuse3
import trio

from octuefs.cache import ChunkCache
from octuefs.datafile import Datafile
from octuefs.errors import CloudObjectNotFound, UnsupportedAttribute
from octuefs.fs import posix, xattrs
from octuefs.fs.config import MountConfig
from octuefs.fs.dirs import DirectoryCache, DirEntry, Listing
from octuefs.fs.errno import fuse_errors
from octuefs.fs.handles import DirHandle, FileHandle, ReadHandle, WriteHandle, prefetch
from octuefs.fs.inodes import Inode, InodeTable
from octuefs.fs.writes import OpenWrite, WriteTracker
from octuefs.metadata.model import OctueMetadata
from octuefs.reader import ObjectReader
from octuefs.storage.gcs import GCSStorage, ObjectStat

logger = logging.getLogger(__name__)

Result = TypeVar("Result")
WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_TRUNC | os.O_APPEND


class BucketOperations(pyfuse3.Operations):
    supports_dot_lookup = False
    enable_writeback_cache = False
    enable_acl = False

    def __init__(self, config: MountConfig, storage: GCSStorage, cache: ChunkCache, writes: WriteTracker) -> None:
        super().__init__()
        self.config = config
        self.storage = storage
        self.cache = cache
        self.writes = writes
        self.inodes = InodeTable()
        self.dirs = DirectoryCache(storage, config.bucket, config.prefix, config.metadata_ttl)
        self.limiter = trio.CapacityLimiter(config.storage_threads)
        self.upload_limiter = trio.CapacityLimiter(config.storage_threads)
        self.disk_limiter = trio.CapacityLimiter(config.storage_threads)
        self.handles: dict[int, FileHandle] = {}
        self.dir_handles: dict[int, DirHandle] = {}
        self._handle_numbers = itertools.count(1)
        self.mounted_at_ns = time.time_ns()
        self.nursery: trio.Nursery | None = None
        self.errors: Counter[str] = Counter()

    def statistics(self) -> dict[str, Any]:
        """What `octuefs stats` shows: requests by kind, bytes moved, cache use, errors, pending uploads."""
        return {
            "source": self.config.source,
            **self.storage.stats.snapshot(),
            "cache": {
                "hits": self.cache.hits,
                "misses": self.cache.misses,
                "size_bytes": self.cache.size_bytes,
                "max_bytes": self.cache.max_bytes,
            },
            "errors": dict(self.errors),
            "open_files": len(self.handles),
            "pending_uploads": sum(1 for state in self.writes.states().values() if state.dirty),
        }

    # Helpers ---------------------------------------------------------------------------------

    def describe(self, ino: int) -> str:
        """The cloud path of an inode, for log lines and errors."""
        inode = self.inodes.find_by_number(ino)
        return self._location(inode.path) if inode is not None else f"inode {ino}"

    def describe_argument(self, parameter: str, value: Any) -> str:
        """What a request concerns, from its first argument, for log lines: an open file's or directory's
        handle (`fh`) or an inode number (`ino`, `parent_ino`, ...). Both are small integers, so a number
        must be looked up as what it is, or the line names whatever the other table holds under it."""
        if parameter == "fh":
            handle = self.handles.get(value) or self.dir_handles.get(value)
            return self._location(handle.path) if handle is not None else f"handle {value}"
        if parameter.endswith("ino"):
            return self.describe(value)
        return "-"

    def _location(self, path: str) -> str:
        return f"gs://{self.config.bucket}/{self.dirs.object_name(path)}"

    async def _blocking(self, function: Callable[..., Result], *args: Any) -> Result:
        return await trio.to_thread.run_sync(function, *args, limiter=self.limiter)

    async def _uploading(self, function: Callable[..., Result], *args: Any) -> Result:
        return await trio.to_thread.run_sync(function, *args, limiter=self.upload_limiter)

    async def _on_disk(self, function: Callable[..., Result], *args: Any) -> Result:
        return await trio.to_thread.run_sync(function, *args, limiter=self.disk_limiter)

    @staticmethod
    def _child_path(parent: Inode, name: bytes) -> str:
        decoded = os.fsdecode(name)
        return f"{parent.path}/{decoded}" if parent.path else decoded

    def _attributes(self, inode: Inode) -> pyfuse3.EntryAttributes:
        attributes = pyfuse3.EntryAttributes()
        attributes.st_ino = inode.ino
        attributes.generation = 0
        attributes.entry_timeout = self.config.metadata_ttl
        attributes.attr_timeout = self.config.metadata_ttl
        attributes.st_blksize = self.config.chunk_size
        if inode.is_dir:
            attributes.st_mode = stat_module.S_IFDIR | self.config.dir_mode
            attributes.st_nlink = 2
            attributes.st_size = 0
            attributes.st_uid, attributes.st_gid = self.config.uid, self.config.gid
            time_ns = self.mounted_at_ns
        else:
            attributes.st_size, posix_attributes = self._file_attributes(inode)
            attributes.st_mode = stat_module.S_IFREG | posix_attributes.mode
            attributes.st_nlink = 1
            attributes.st_uid, attributes.st_gid = posix_attributes.uid, posix_attributes.gid
            time_ns = posix_attributes.mtime_ns
        attributes.st_blocks = (attributes.st_size + 511) // 512
        attributes.st_atime_ns = attributes.st_mtime_ns = attributes.st_ctime_ns = time_ns
        return attributes

    def _file_attributes(self, inode: Inode) -> tuple[int, posix.PosixAttributes]:
        """Size and POSIX attributes: staged while being written here, else from the object."""
        stat = inode.stat
        custom = dict(stat.metadata) if stat else {}
        updated_ns = int(stat.updated.timestamp() * 1e9) if stat and stat.updated else self.mounted_at_ns
        state = self.writes.by_ino.get(inode.ino)
        if state is not None:
            custom.update(state.custom_changes)
            updated_ns = state.modified_ns
        default = posix.PosixAttributes(self.config.file_mode, self.config.uid, self.config.gid, updated_ns)
        attributes = posix.read(custom, default)
        if state is not None:
            return state.size, attributes
        return (stat.size if stat else 0), attributes

    def _adopt(self, path: str, entry: DirEntry) -> Inode:
        """The inode for a listed or probed entry, its view of the object brought up to date.

        Only newer knowledge replaces the inode's: a directory listing is reused for the whole TTL, and
        adopting it after a setxattr would bring the old metadata back, which the next setxattr would
        then write over the change just made.
        """
        inode = self.inodes.entry(path, entry.is_dir)
        if inode.ino in self.writes.by_ino:
            # Its upload must stay guarded by the generation its bytes came from: adopting a newer
            # listed generation would let our upload overwrite another writer's object.
            return inode
        if entry.stat is not None and (not inode.known or entry.seen_at >= inode.refreshed_at):
            inode.refresh_stat(entry.stat, entry.seen_at)
        return inode

    async def _fresh_file(self, inode: Inode) -> Datafile:
        """The file's datafile, re-read from the server once it is older than the metadata TTL.

        While the file is being written here, the staged state is what is true, so nothing is re-read.
        """
        if inode.ino in self.writes.by_ino and inode.datafile is not None:
            return inode.datafile
        if not inode.known or not inode.is_fresh(self.config.metadata_ttl):
            started = time.monotonic()
            stat = await self._blocking(self.storage.stat, self.config.bucket, self.dirs.object_name(inode.path))
            if inode.known and inode.refreshed_at > started:
                # An upload or metadata change finished while this stat was out: what it adopted is newer,
                # and an older generation adopted here would make the next upload of the file fail.
                assert inode.datafile is not None
                return inode.datafile
            if stat is None:
                raise CloudObjectNotFound(f"{self.describe(inode.ino)}: no longer exists.")
            inode.refresh_stat(stat, started)
        assert inode.datafile is not None
        return inode.datafile

    def _file_inode(self, ino: int) -> Inode:
        inode = self.inodes[ino]
        if inode.is_dir:
            raise UnsupportedAttribute(f"{self.describe(ino)}: directories carry no Octue metadata.")
        return inode

    # Names and attributes --------------------------------------------------------------------

    @fuse_errors
    async def lookup(self, parent_ino: int, name: bytes, ctx: pyfuse3.RequestContext) -> pyfuse3.EntryAttributes:
        parent = self.inodes[parent_ino]
        path = self._child_path(parent, name)
        self.dirs.require_short(path)
        pending = self.inodes.find(path, False)
        listing = self.dirs.fresh(parent.path)
        if listing is None and self.dirs.worth_listing(parent.path):
            listing = await self._blocking(self.dirs.fetch_for_lookups, parent.path)
        if pending is not None and pending.ino in self.writes.by_ino:
            entry: DirEntry | None = DirEntry(os.fsdecode(name), False)
        elif listing is not None:
            entry = listing.entries.get(os.fsdecode(name))
        else:
            entry = await self._blocking(self.dirs.probe, path)
        if entry is None:
            negative = pyfuse3.EntryAttributes()
            negative.st_ino = 0
            negative.entry_timeout = self.config.metadata_ttl
            return negative
        inode = self._adopt(path, entry)
        inode.lookups += 1
        return self._attributes(inode)

    @fuse_errors
    async def getattr(self, ino: int, ctx: pyfuse3.RequestContext) -> pyfuse3.EntryAttributes:
        inode = self.inodes[ino]
        if not inode.is_dir:
            await self._fresh_file(inode)
        return self._attributes(inode)

    @fuse_errors
    async def forget(self, inode_list: list[tuple[int, int]]) -> None:
        for ino, count in inode_list:
            self.inodes.forget(ino, count)

    @fuse_errors
    async def statfs(self, ctx: pyfuse3.RequestContext) -> pyfuse3.StatvfsData:
        data = pyfuse3.StatvfsData()
        data.f_bsize = data.f_frsize = 4096
        data.f_blocks = data.f_bfree = data.f_bavail = 2**50 // 4096
        data.f_files = data.f_ffree = data.f_favail = 2**32
        data.f_namemax = 255
        return data

    # Directories -----------------------------------------------------------------------------

    @fuse_errors
    async def opendir(self, ino: int, ctx: pyfuse3.RequestContext) -> int:
        inode = self.inodes[ino]
        if not inode.is_dir:
            raise pyfuse3.FUSEError(errno.ENOTDIR)
        listing: Listing = self.dirs.fresh(inode.path) or await self._blocking(self.dirs.fetch, inode.path)
        entries = dict(listing.entries)
        for path in self._pending_paths():
            parent, _, name = path.rpartition("/")
            if parent == inode.path:
                entries.setdefault(name, DirEntry(name, False))
        handle = next(self._handle_numbers)
        self.dir_handles[handle] = DirHandle(inode.path, [entries[name] for name in sorted(entries)])
        return handle

    @fuse_errors
    async def readdir(self, fh: int, start_id: int, token: pyfuse3.ReaddirToken) -> None:
        handle = self.dir_handles[fh]
        for index in range(start_id, len(handle.entries)):
            entry = handle.entries[index]
            path = f"{handle.path}/{entry.name}" if handle.path else entry.name
            inode = self._adopt(path, entry)
            if not pyfuse3.readdir_reply(token, os.fsencode(entry.name), self._attributes(inode), index + 1):
                return
            inode.lookups += 1

    @fuse_errors
    async def releasedir(self, fh: int) -> None:
        self.dir_handles.pop(fh, None)

    # Reading and writing ---------------------------------------------------------------------

    @fuse_errors
    async def open(self, ino: int, flags: int, ctx: pyfuse3.RequestContext) -> pyfuse3.FileInfo:
        inode = self.inodes[ino]
        datafile = await self._fresh_file(inode)
        writing = bool(flags & WRITE_FLAGS)
        if writing or ino in self.writes.by_ino:
            return await self._open_for_writing(inode, datafile, flags)
        stat = datafile.cloud_stat
        assert stat is not None
        reader = ObjectReader(stat, self.cache, self.storage, self.config.chunk_size)
        handle_number = self._new_handle(ReadHandle(inode, reader, self.config.max_readahead))
        info = pyfuse3.FileInfo(fh=handle_number)
        # The kernel may keep its page cache only while the object is the generation it cached.
        info.keep_cache = inode.last_opened_generation == stat.generation
        inode.last_opened_generation = stat.generation
        return info

    def _new_handle(self, handle: FileHandle) -> int:
        number = next(self._handle_numbers)
        self.handles[number] = handle
        return number

    async def _open_for_writing(self, inode: Inode, datafile: Datafile, flags: int) -> pyfuse3.FileInfo:
        if self.config.read_only:
            raise pyfuse3.FUSEError(errno.EROFS)
        truncate = bool(flags & os.O_TRUNC) and bool(flags & (os.O_WRONLY | os.O_RDWR))
        await self._held_write(inode, datafile, truncate)
        handle = WriteHandle(inode, append=bool(flags & os.O_APPEND))
        inode.last_opened_generation = None
        return pyfuse3.FileInfo(fh=self._new_handle(handle), direct_io=False, keep_cache=False)

    async def _held_write(self, inode: Inode, datafile: Datafile, truncate: bool, keep: int | None = None) -> OpenWrite:
        """The inode's staged state, counted as one more holder: a release finishing meanwhile would close
        the staged descriptor under a write or truncate still running in a worker thread (EBADF, or
        worse, a reused descriptor number naming another file)."""
        state = await self._blocking(self.writes.begin, inode.ino, datafile, truncate, keep)
        while self.writes.by_ino.get(inode.ino) is not state:
            # The last release of the file dropped the (uploaded) state before this open could count itself.
            state = await self._blocking(self.writes.begin, inode.ino, datafile, truncate, keep)
        state.handles += 1
        return state

    def _finish_if_idle(self, ino: int, state: OpenWrite) -> None:
        """Drop the staged state once nothing holds it and nothing is left to upload. Only this state: a
        release and a setattr may both get here, and by then an open may have begun a new one."""
        if state.handles <= 0 and (not state.dirty or state.unlinked) and self.writes.by_ino.get(ino) is state:
            self.writes.finish(ino)

    @fuse_errors
    async def create(
        self, parent_ino: int, name: bytes, mode: int, flags: int, ctx: pyfuse3.RequestContext
    ) -> tuple[pyfuse3.FileInfo, pyfuse3.EntryAttributes]:
        if self.config.read_only:
            raise pyfuse3.FUSEError(errno.EROFS)
        parent = self.inodes[parent_ino]
        path = self._child_path(parent, name)
        self.dirs.require_representable(path)
        inode = self.inodes.entry(path, False)
        inode.refresh(Datafile.for_new_object(self.config.bucket, self.dirs.object_name(path)))
        inode.created_here = True
        info = await self._open_for_writing(inode, inode.datafile, flags | os.O_TRUNC | os.O_WRONLY)  # type: ignore[arg-type]
        default = posix.PosixAttributes(self.config.file_mode, self.config.uid, self.config.gid, 0)
        # Before the first part is streamed: the upload session carries the metadata it started with.
        self.writes.by_ino[inode.ino].custom_changes.update(posix.created(mode & ~ctx.umask, ctx.uid, ctx.gid, default))
        inode.lookups += 1
        return info, self._attributes(inode)

    @fuse_errors
    async def read(self, fh: int, offset: int, size: int) -> bytes:
        handle = self.handles[fh]
        state = self.writes.by_ino.get(handle.inode.ino)
        if isinstance(handle, WriteHandle):
            assert state is not None, "a write handle holds its inode's write session"
            return await self._read_staged(state, offset, size)
        if state is not None:
            try:
                return await self._read_staged(state, offset, size)
            except FileNotFoundError:
                pass  # the last writer's release uploaded and dropped the staged copy meanwhile
        reader = self._reader_of(handle)
        data = reader.read_from_memory(offset, size)
        if data is None:
            try:
                data = await self._blocking(reader.read, offset, size)
            except CloudObjectNotFound:
                # The generation this file was opened at was replaced or deleted meanwhile.
                raise pyfuse3.FUSEError(errno.ESTALE) from None
        if self.nursery is not None:
            for span in handle.plan_readahead(offset, size):
                self.nursery.start_soon(prefetch, handle, span, self.limiter)
        return data

    async def _read_staged(self, state: OpenWrite, offset: int, size: int) -> bytes:
        try:
            return await self._on_disk(self.writes.read, state, offset, size)
        except CloudObjectNotFound:
            # The object whose bytes the staged copy has not copied in yet was replaced or deleted.
            raise pyfuse3.FUSEError(errno.ESTALE) from None

    def _reader_of(self, handle: ReadHandle) -> ObjectReader:
        """The handle's reader, moved on to what this mount uploaded since the handle was opened: a
        program that wrote a file through another descriptor reads its new bytes, as on a local disk
        (and as it did while they were staged). Likewise the copy a rename made: the object the handle
        was reading is gone. Other writers' changes are not followed mid-handle."""
        stat, current = handle.inode.stat, handle.reader
        made_here = stat is not None and stat.generation == handle.inode.generation_made_here
        if made_here and current.stat.generation != stat.generation:
            assert stat is not None
            handle.reader = ObjectReader(stat, self.cache, self.storage, self.config.chunk_size)
        return handle.reader

    @fuse_errors
    async def write(self, fh: int, offset: int, data: bytes) -> int:
        handle = self.handles[fh]
        state = self.writes.by_ino[handle.inode.ino]
        return await self._on_disk(self.writes.write, state, offset, data, handle.append)

    async def _upload(self, inode: Inode) -> None:
        state = self.writes.by_ino.get(inode.ino)
        if state is None or inode.datafile is None:
            return
        async with inode.sending:
            stat = await self._uploading(self.writes.upload, inode.datafile, state)
            if stat is not None and state.unlinked:
                # Removed while its upload was in flight: the rm must stick.
                await self._blocking(self.storage.delete, stat.bucket, stat.name, stat.generation)
            elif stat is not None:
                inode.generation_made_here = stat.generation
                inode.refresh(inode.datafile)
                name = inode.path.rpartition("/")[2]
                self.dirs.record(inode.path, DirEntry(name, False, stat, inode.refreshed_at))

    @fuse_errors
    async def flush(self, fh: int) -> None:
        await self._upload(self.handles[fh].inode)

    @fuse_errors
    async def fsync(self, fh: int, datasync: bool) -> None:
        await self._upload(self.handles[fh].inode)

    @fuse_errors
    async def release(self, fh: int) -> None:
        handle = self.handles.pop(fh, None)
        if not isinstance(handle, WriteHandle):
            return
        state = self.writes.release(handle.inode.ino)
        if state is None:
            return
        try:
            await self._upload(handle.inode)
        finally:
            # An open during the upload took the state up again: its handle still writes to it.
            self._finish_if_idle(handle.inode.ino, state)

    # Changing the tree and attributes --------------------------------------------------------

    @fuse_errors
    async def setattr(
        self, ino: int, attr: pyfuse3.EntryAttributes, fields: pyfuse3.SetattrFields, fh: int | None,
        ctx: pyfuse3.RequestContext,
    ) -> pyfuse3.EntryAttributes:  # fmt: skip
        inode = self.inodes[ino]
        changes = posix.changes(attr, fields)
        if inode.is_dir or not (fields.update_size or changes):
            return self._attributes(inode)
        if self.config.read_only:
            raise pyfuse3.FUSEError(errno.EROFS)
        datafile = await self._fresh_file(inode)
        state = self.writes.by_ino.get(ino)
        if fields.update_size:
            state = await self._held_write(inode, datafile, False, attr.st_size)
        elif state is not None:
            state.handles += 1
        try:
            if fields.update_size:
                await self._on_disk(self.writes.truncate, state, attr.st_size)
            if state is not None and state.dirty and changes:
                await self._on_disk(self.writes.change_attributes, state, changes)
            elif changes:
                # Also when the file is open but already uploaded: a pending release would drop the change.
                async with inode.sending:
                    datafile = await self._fresh_file(inode)
                    await self._blocking(datafile.update_custom_metadata, changes)
                    inode.refresh(datafile)
        finally:
            if state is not None:
                state.handles -= 1
                self._finish_if_idle(ino, state)  # a refused truncate of a file open nowhere: nothing to keep
        if state is not None and state.handles <= 0:
            await self._upload(inode)
            self._finish_if_idle(ino, state)
        return self._attributes(inode)

    async def _child(self, parent: Inode, name: bytes) -> tuple[str, Inode | None]:
        """The path of `name` in `parent` and its inode if it exists (asking the server if needed)."""
        attributes = await self.lookup(parent.ino, name, None)
        if attributes.st_ino == 0:
            return self._child_path(parent, name), None
        inode = self.inodes[attributes.st_ino]
        inode.lookups -= 1
        return inode.path, inode

    @fuse_errors
    async def unlink(self, parent_ino: int, name: bytes, ctx: pyfuse3.RequestContext) -> None:
        parent = self.inodes[parent_ino]
        _, inode = await self._child(parent, name)
        if inode is None:
            raise pyfuse3.FUSEError(errno.ENOENT)
        if inode.is_dir:
            raise pyfuse3.FUSEError(errno.EISDIR)
        stat = inode.stat
        if stat is not None:
            await self._blocking(self.storage.delete, stat.bucket, stat.name, stat.generation)
        self.writes.unlink(inode.ino)
        self.dirs.record(inode.path, None)
        self.inodes.detach(inode)

    @fuse_errors
    async def mkdir(
        self, parent_ino: int, name: bytes, mode: int, ctx: pyfuse3.RequestContext
    ) -> pyfuse3.EntryAttributes:
        if self.config.read_only:
            raise pyfuse3.FUSEError(errno.EROFS)
        parent = self.inodes[parent_ino]
        path, existing = await self._child(parent, name)
        if existing is not None:
            raise pyfuse3.FUSEError(errno.EEXIST)
        self.dirs.require_representable(path)
        await self._blocking(self.storage.create_placeholder, self.config.bucket, self.dirs.dir_prefix(path))
        self.dirs.record(path, DirEntry(path.rpartition("/")[2], True))
        self.dirs.record_empty(path)
        inode = self.inodes.entry(path, True)
        inode.lookups += 1
        return self._attributes(inode)

    @fuse_errors
    async def rmdir(self, parent_ino: int, name: bytes, ctx: pyfuse3.RequestContext) -> None:
        parent = self.inodes[parent_ino]
        path, inode = await self._child(parent, name)
        if inode is None:
            raise pyfuse3.FUSEError(errno.ENOENT)
        if not inode.is_dir:
            raise pyfuse3.FUSEError(errno.ENOTDIR)
        prefix = self.dirs.dir_prefix(path)
        listing = await self._blocking(self.storage.list, self.config.bucket, prefix, "/", None, 2)
        if listing.prefixes or any(stat.name != prefix for stat in listing.objects) or self._pending_under(path):
            raise pyfuse3.FUSEError(errno.ENOTEMPTY)
        for stat in listing.objects:
            await self._blocking(self.storage.delete, stat.bucket, stat.name, stat.generation)
        self.dirs.invalidate(parent.path)
        self.dirs.invalidate(path)

    def _pending(self) -> list[Inode]:
        """Files being written here that still have a name: no server listing shows them before upload."""
        return [inode for ino in self.writes.named() if (inode := self.inodes.find_by_number(ino)) is not None]

    def _pending_paths(self) -> list[str]:
        return [inode.path for inode in self._pending()]

    def _pending_under(self, path: str) -> list[Inode]:
        return [inode for inode in self._pending() if inode.path.startswith(path + "/")]

    def _dirty(self, inode: Inode) -> bool:
        state = self.writes.by_ino.get(inode.ino)
        return state is not None and state.dirty

    @fuse_errors
    async def rename(
        self, old_parent_ino: int, old_name: bytes, new_parent_ino: int, new_name: bytes, flags: int,
        ctx: pyfuse3.RequestContext,
    ) -> None:  # fmt: skip
        if self.config.read_only:
            raise pyfuse3.FUSEError(errno.EROFS)
        if flags & pyfuse3.RENAME_EXCHANGE:
            raise pyfuse3.FUSEError(errno.EINVAL)
        old_parent, new_parent = self.inodes[old_parent_ino], self.inodes[new_parent_ino]
        _, source = await self._child(old_parent, old_name)
        new_path, target = await self._child(new_parent, new_name)
        if source is None:
            raise pyfuse3.FUSEError(errno.ENOENT)
        self.dirs.require_representable(new_path)
        if target is not None and flags & pyfuse3.RENAME_NOREPLACE:
            raise pyfuse3.FUSEError(errno.EEXIST)
        if target is not None and target.is_dir != source.is_dir:
            raise pyfuse3.FUSEError(errno.EISDIR if target.is_dir else errno.ENOTDIR)
        if source.is_dir:
            await self._rename_directory(source, new_path, target)
        else:
            await self._rename_file(source, new_path, target)
            if target is not None:
                self.writes.unlink(target.ino)
        self.dirs.invalidate(old_parent.path)
        self.dirs.invalidate(new_parent.path)
        self.inodes.move(source.path, new_path, source.is_dir)

    async def _rename_file(self, source: Inode, new_path: str, target: Inode | None) -> None:
        """Copy on the server with the complete metadata, then delete the original; both guarded."""
        await self._upload(source)
        datafile = await self._fresh_file(source)
        stat = datafile.cloud_stat
        if stat is None:
            raise pyfuse3.FUSEError(errno.ENOENT)
        target_stat = target.stat if target is not None else None
        name = self.dirs.object_name(new_path)
        generation = target_stat.generation if target_stat else 0
        metadata, content_type = dict(stat.metadata), stat.content_type
        if target_stat is not None and source.created_here and not self._has_user_metadata(datafile):
            # Writing a new file and renaming it over the old one is how sed -i, rsync and editors
            # save: the file keeps its identity (Octue id, tags, labels, foreign keys, content type).
            inherited = target.datafile.content_upload_request(posix.carried(stat.metadata))  # type: ignore[union-attr]
            metadata, content_type = inherited.metadata, inherited.content_type
        copied = await self._blocking(self.storage.copy, stat, stat.bucket, name, metadata, generation, content_type)
        await self._blocking(self.storage.delete, stat.bucket, stat.name, stat.generation)
        await self._moved(source, stat, copied)

    async def _moved(self, inode: Inode, original: ObjectStat, copied: ObjectStat) -> None:
        """Point the inode, and its staged bytes if it is being written, at the copy of its object: the
        kernel keeps asking about it by number, and an upload still aimed at the old name would fail."""
        inode.refresh_stat(copied)
        inode.generation_made_here = copied.generation
        state = self.writes.by_ino.get(inode.ino)
        if state is not None:
            assert inode.datafile is not None
            await self._on_disk(self.writes.moved, state, original, inode.datafile)

    @staticmethod
    def _has_user_metadata(datafile: Datafile) -> bool:
        metadata = datafile.octue_metadata
        return bool(metadata.tags or metadata.labels or metadata.timestamp is not None)

    async def _rename_directory(self, source: Inode, new_path: str, target: Inode | None) -> None:
        """Every object under the old prefix, one by one: not atomic (see docs/semantics.md).

        Files being written under it are sent first, as a renamed file is, so that each copy holds what
        was written; a file written to again meanwhile makes the rename answer EBUSY. A file whose close()
        has uploaded it is no obstacle, though it counts as open until the kernel's RELEASE arrives."""
        for inode in self._pending_under(source.path):
            await self._upload(inode)
        if any(self._dirty(inode) for inode in self._pending_under(source.path)):
            raise pyfuse3.FUSEError(errno.EBUSY)
        new_prefix = self.dirs.dir_prefix(new_path)
        if target is not None:
            existing = await self._blocking(self.storage.list, self.config.bucket, new_prefix, None, None, 2)
            if any(stat.name != new_prefix for stat in existing.objects):
                raise pyfuse3.FUSEError(errno.ENOTEMPTY)
            for placeholder in existing.objects:
                await self._blocking(self.storage.delete, placeholder.bucket, placeholder.name, placeholder.generation)
        old_prefix = self.dirs.dir_prefix(source.path)
        listing = await self._blocking(self.storage.list, self.config.bucket, old_prefix)
        for stat in listing.objects:
            relative = stat.name[len(old_prefix) :]
            copied = await self._blocking(
                self.storage.copy, stat, stat.bucket, new_prefix + relative, dict(stat.metadata), 0
            )
            await self._blocking(self.storage.delete, stat.bucket, stat.name, stat.generation)
            moved = self.inodes.find(f"{source.path}/{relative}", False)
            if moved is not None:
                await self._moved(moved, stat, copied)
        for path in list(self.dirs.cached_paths()):
            if path == source.path or path.startswith(source.path + "/"):
                self.dirs.invalidate(path)

    @fuse_errors
    async def symlink(
        self, parent_ino: int, name: bytes, target: bytes, ctx: pyfuse3.RequestContext
    ) -> pyfuse3.EntryAttributes:
        raise pyfuse3.FUSEError(errno.EPERM)

    @fuse_errors
    async def link(
        self, ino: int, new_parent_ino: int, new_name: bytes, ctx: pyfuse3.RequestContext
    ) -> pyfuse3.EntryAttributes:
        raise pyfuse3.FUSEError(errno.EPERM)

    @fuse_errors
    async def mknod(
        self, parent_ino: int, name: bytes, mode: int, rdev: int, ctx: pyfuse3.RequestContext
    ) -> pyfuse3.EntryAttributes:
        raise pyfuse3.FUSEError(errno.EPERM)

    # Extended attributes ---------------------------------------------------------------------

    @fuse_errors
    async def listxattr(self, ino: int, ctx: pyfuse3.RequestContext) -> list[bytes]:
        inode = self.inodes[ino]
        if inode.is_dir:
            return []
        return [name.encode() for name in xattrs.names(await self._fresh_file(inode))]

    @fuse_errors
    async def getxattr(self, ino: int, name: bytes, ctx: pyfuse3.RequestContext) -> bytes:
        if name == xattrs.STATS and ino == pyfuse3.ROOT_INODE:
            return json.dumps(self.statistics()).encode()
        # `ls -l` asks every file for security.selinux and system.posix_acl_access. ENOTSUP (this
        # filesystem has no such namespace, as is true) makes it stop asking for the rest of the mount,
        # where ENODATA cost a round trip per file and name.
        if not name.startswith(xattrs.USER_NAMESPACE):
            raise pyfuse3.FUSEError(errno.ENOTSUP)
        if not name.startswith(xattrs.PREFIX_BYTES):
            raise pyfuse3.FUSEError(pyfuse3.ENOATTR)
        inode = self.inodes[ino]
        if inode.is_dir:
            raise pyfuse3.FUSEError(pyfuse3.ENOATTR)
        return xattrs.get(await self._fresh_file(inode), os.fsdecode(name))

    @fuse_errors
    async def setxattr(self, ino: int, name: bytes, value: bytes, ctx: pyfuse3.RequestContext) -> None:
        await self._change_metadata(
            self._file_inode(ino), lambda datafile: xattrs.with_set(datafile, os.fsdecode(name), value)
        )

    @fuse_errors
    async def removexattr(self, ino: int, name: bytes, ctx: pyfuse3.RequestContext) -> None:
        await self._change_metadata(
            self._file_inode(ino), lambda datafile: xattrs.with_removed(datafile, os.fsdecode(name))
        )

    async def _change_metadata(self, inode: Inode, change: Callable[[Datafile], OctueMetadata]) -> None:
        """Compute the change from, and write it through, the inode's current Datafile, one change or
        upload at a time: a change computed from a view another change replaced meanwhile would be
        adopted over it, and an upload sent from that view would carry metadata without it.

        Then mark the inode's view as the newest: listings sent before the write finished may hold the
        old metadata and must not replace it (see `_adopt`)."""
        async with inode.sending:
            datafile = await self._fresh_file(inode)
            await self._blocking(datafile.save_metadata, change(datafile))
            inode.refresh(datafile)
