"""The pyfuse3 Operations of a mounted bucket: thin translation from kernel requests to the engine.

Every blocking storage call runs in a worker thread under one CapacityLimiter, so the trio loop
keeps answering other requests while one object is slow. Attributes and listings are trusted for
`metadata_ttl` seconds (also given to the kernel as attr/entry timeouts); after that a lookup,
getattr or open asks the server again, so other clients' changes appear.
"""

from __future__ import annotations

import errno
import itertools
import logging
import os
import stat as stat_module
import time
from collections.abc import Callable
from typing import Any, TypeVar

import pyfuse3
import trio

from octuefs.cache import ChunkCache
from octuefs.datafile import Datafile
from octuefs.errors import CloudObjectNotFound, ReadOnlyFilesystem, UnsupportedAttribute
from octuefs.fs import xattrs
from octuefs.fs.config import MountConfig
from octuefs.fs.dirs import DirectoryCache, DirEntry, Listing
from octuefs.fs.errno import fuse_errors
from octuefs.fs.handles import DirHandle, FileHandle, prefetch
from octuefs.fs.inodes import Inode, InodeTable
from octuefs.reader import ObjectReader
from octuefs.storage.gcs import GCSStorage, ObjectStat

logger = logging.getLogger(__name__)

Result = TypeVar("Result")
WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_TRUNC | os.O_APPEND


class BucketOperations(pyfuse3.Operations):
    supports_dot_lookup = False
    enable_writeback_cache = False
    enable_acl = False

    def __init__(self, config: MountConfig, storage: GCSStorage, cache: ChunkCache) -> None:
        super().__init__()
        self.config = config
        self.storage = storage
        self.cache = cache
        self.inodes = InodeTable()
        self.dirs = DirectoryCache(storage, config.bucket, config.prefix, config.metadata_ttl)
        self.limiter = trio.CapacityLimiter(config.storage_threads)
        self.handles: dict[int, FileHandle] = {}
        self.dir_handles: dict[int, DirHandle] = {}
        self._handle_numbers = itertools.count(1)
        self.mounted_at_ns = time.time_ns()
        self.nursery: trio.Nursery | None = None

    # Helpers ---------------------------------------------------------------------------------

    def describe(self, ino_or_fh: Any) -> str:
        """The cloud path a request concerns, for log lines."""
        handle = self.handles.get(ino_or_fh) if isinstance(ino_or_fh, int) else None
        inode = handle.inode if handle else None
        if inode is None and isinstance(ino_or_fh, int):
            try:
                inode = self.inodes[ino_or_fh]
            except CloudObjectNotFound:
                return f"inode {ino_or_fh}"
        return f"gs://{self.config.bucket}/{self.dirs.object_name(inode.path)}" if inode else str(ino_or_fh)

    async def _blocking(self, function: Callable[..., Result], *args: Any) -> Result:
        return await trio.to_thread.run_sync(function, *args, limiter=self.limiter)

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
        attributes.st_uid = self.config.uid
        attributes.st_gid = self.config.gid
        attributes.st_blksize = self.config.chunk_size
        stat = inode.datafile.cloud_stat if inode.datafile else None
        if inode.is_dir or stat is None:
            attributes.st_mode = stat_module.S_IFDIR | self.config.dir_mode
            attributes.st_nlink = 2
            attributes.st_size = 0
            time_ns = self.mounted_at_ns
        else:
            attributes.st_mode = stat_module.S_IFREG | self.config.file_mode
            attributes.st_nlink = 1
            attributes.st_size = stat.size
            time_ns = int(stat.updated.timestamp() * 1e9) if stat.updated else self.mounted_at_ns
        attributes.st_blocks = (attributes.st_size + 511) // 512
        attributes.st_atime_ns = attributes.st_mtime_ns = attributes.st_ctime_ns = time_ns
        return attributes

    def _adopt(self, path: str, entry: DirEntry) -> Inode:
        """The inode for a listed or probed entry, its view of the object brought up to date."""
        inode = self.inodes.entry(path, entry.is_dir)
        if entry.stat is not None:
            inode.refresh(self._datafile(entry.stat))
        return inode

    @staticmethod
    def _datafile(stat: ObjectStat) -> Datafile:
        """The engine's view of an object; bad stored metadata is shown as none rather than hiding the file."""
        try:
            return Datafile.from_object_stat(stat)
        except ValueError as error:
            logger.warning("%s (shown without its Octue metadata)", error)
            return Datafile.from_object_stat(stat, ignore_stored_metadata=True)

    async def _fresh_file(self, inode: Inode) -> Datafile:
        """The file's datafile, re-read from the server once it is older than the metadata TTL."""
        if inode.datafile is None or not inode.is_fresh(self.config.metadata_ttl):
            stat = await self._blocking(self.storage.stat, self.config.bucket, self.dirs.object_name(inode.path))
            if stat is None:
                raise CloudObjectNotFound(f"{self.describe(inode.ino)}: no longer exists.")
            inode.refresh(self._datafile(stat))
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
        listing = self.dirs.fresh(parent.path)
        if listing is not None:
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
        handle = next(self._handle_numbers)
        self.dir_handles[handle] = DirHandle(inode.path, [listing.entries[name] for name in sorted(listing.entries)])
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

    # Reading ---------------------------------------------------------------------------------

    @fuse_errors
    async def open(self, ino: int, flags: int, ctx: pyfuse3.RequestContext) -> pyfuse3.FileInfo:
        inode = self.inodes[ino]
        if flags & WRITE_FLAGS:
            raise ReadOnlyFilesystem(f"{self.describe(ino)}: octuefs does not write file content yet.")
        datafile = await self._fresh_file(inode)
        stat = datafile.cloud_stat
        assert stat is not None
        handle_number = next(self._handle_numbers)
        reader = ObjectReader(stat, self.cache, self.storage, self.config.chunk_size)
        self.handles[handle_number] = FileHandle(inode, reader, self.config.max_readahead)
        info = pyfuse3.FileInfo(fh=handle_number)
        # The kernel may keep its page cache only while the object is the generation it cached.
        info.keep_cache = inode.last_opened_generation == stat.generation
        inode.last_opened_generation = stat.generation
        return info

    @fuse_errors
    async def read(self, fh: int, offset: int, size: int) -> bytes:
        handle = self.handles[fh]
        data = await self._blocking(handle.reader.read, offset, size)
        if self.nursery is not None:
            for index in handle.plan_readahead(offset, size):
                self.nursery.start_soon(prefetch, handle, index, self.limiter)
        return data

    @fuse_errors
    async def release(self, fh: int) -> None:
        self.handles.pop(fh, None)

    # Extended attributes ---------------------------------------------------------------------

    @fuse_errors
    async def listxattr(self, ino: int, ctx: pyfuse3.RequestContext) -> list[bytes]:
        inode = self.inodes[ino]
        if inode.is_dir:
            return []
        return [name.encode() for name in xattrs.names(await self._fresh_file(inode))]

    @fuse_errors
    async def getxattr(self, ino: int, name: bytes, ctx: pyfuse3.RequestContext) -> bytes:
        inode = self.inodes[ino]
        if inode.is_dir:
            raise pyfuse3.FUSEError(pyfuse3.ENOATTR)
        return xattrs.get(await self._fresh_file(inode), os.fsdecode(name))

    @fuse_errors
    async def setxattr(self, ino: int, name: bytes, value: bytes, ctx: pyfuse3.RequestContext) -> None:
        datafile = await self._fresh_file(self._file_inode(ino))
        changed = xattrs.with_set(datafile, os.fsdecode(name), value)
        await self._blocking(datafile.save_metadata, changed)

    @fuse_errors
    async def removexattr(self, ino: int, name: bytes, ctx: pyfuse3.RequestContext) -> None:
        datafile = await self._fresh_file(self._file_inode(ino))
        changed = xattrs.with_removed(datafile, os.fsdecode(name))
        await self._blocking(datafile.save_metadata, changed)
