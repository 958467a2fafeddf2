"""The pyfuse3 Operations of a mounted bucket: the FUSE adapter of the core (`octuefs.core`).

It translates, nothing more: kernel requests with pyfuse3 types become calls on the core's
`Namespace` and `Files`, their answers become pyfuse3 attributes, and errors become errnos (through
`fuse_errors`, the one mapping in octuefs/fs/errno.py). It owns the open handles. Attributes and
listings are trusted for `metadata_ttl` seconds (also given to the kernel as attr/entry timeouts);
after that a lookup, getattr or open asks the server again, so other clients' changes appear.
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
from typing import Any

import pyfuse3
import trio

from octuefs.cache import ChunkCache
from octuefs.core.inodes import Inode
from octuefs.core.mount import MountCore
from octuefs.errors import CloudObjectNotFound, StaleObject, UnsupportedAttribute
from octuefs.fs import posix, xattrs
from octuefs.fs.config import MountConfig
from octuefs.fs.errno import fuse_errors
from octuefs.fs.handles import DirHandle, FileHandle, ReadHandle, WriteHandle, prefetch
from octuefs.fs.readahead import raise_kernel_readahead
from octuefs.reader import ObjectReader
from octuefs.storage.interface import Storage
from octuefs.uploads.uploader import Uploader

logger = logging.getLogger(__name__)

WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_TRUNC | os.O_APPEND


class BucketOperations(pyfuse3.Operations):
    supports_dot_lookup = False
    enable_writeback_cache = False
    enable_acl = False

    def __init__(self, config: MountConfig, storage: Storage, cache: ChunkCache, uploader: Uploader) -> None:
        super().__init__()
        self.config = config
        self.storage = storage
        self.cache = cache
        self.core = MountCore(config, storage, cache, uploader)
        self.inodes = self.core.inodes
        self.files = self.core.files
        self.namespace = self.core.namespace
        self.directories = self.core.directories
        self.handles: dict[int, FileHandle] = {}
        self.dir_handles: dict[int, DirHandle] = {}
        self._handle_numbers = itertools.count(1)
        self.nursery: trio.Nursery | None = None
        self.errors: Counter[str] = Counter()
        # Sizes of the reads and writes the kernel sent, in KiB: what `max_pages` and the mount's
        # readahead let through decides how many Python answers a large transfer costs.
        self.request_sizes: dict[str, Counter[int]] = {"read": Counter(), "write": Counter()}

    def statistics(self) -> dict[str, Any]:
        """What `octuefs stats` shows: the server's state, requests by kind, bytes moved, cache use, errors,
        pending uploads (each file not uploaded yet, by cloud path: where it stands, how many handles hold
        it open, where its bytes are kept)."""
        pending = self.files.unsent(self.core.lander.describe)
        return {
            "source": self.config.source,
            "server": self.storage.health.snapshot(),
            **self.storage.stats.snapshot(),
            "cache": {
                "hits": self.cache.hits,
                "misses": self.cache.misses,
                "size_bytes": self.cache.size_bytes,
                "max_bytes": self.cache.max_bytes,
            },
            "errors": dict(self.errors),
            "fuse_request_kib": {kind: dict(sorted(sizes.items())) for kind, sizes in self.request_sizes.items()},
            "open_files": len(self.handles),
            "pending_uploads": len(pending),
            "pending": pending,
        }

    def init(self) -> None:
        """Called while libfuse answers the kernel's INIT. The answer sets the mount's readahead (to the
        kernel's 128 KiB), so raising it waits for a task that runs once the answer is sent."""
        if self.nursery is not None:
            self.nursery.start_soon(
                trio.to_thread.run_sync, raise_kernel_readahead, self.config.mountpoint, self.config.kernel_readahead
            )

    # Helpers ---------------------------------------------------------------------------------

    def describe(self, ino: int) -> str:
        """The cloud path of an inode, for log lines and errors."""
        inode = self.inodes.find_by_number(ino)
        return self.files.location(inode) if inode is not None else f"inode {ino}"

    def describe_argument(self, parameter: str, value: Any) -> str:
        """What a request concerns, from its first argument, for log lines: an open file's or directory's
        handle (`fh`) or an inode number (`ino`, `parent_ino`, ...). Both are small integers, so a number
        must be looked up as what it is, or the line names whatever the other table holds under it."""
        if parameter == "fh":
            handle = self.handles.get(value) or self.dir_handles.get(value)
            return self.files.location_of(handle.path) if handle is not None else f"handle {value}"
        if parameter.endswith("ino"):
            return self.describe(value)
        return "-"

    def _attributes(self, inode: Inode) -> pyfuse3.EntryAttributes:
        attributes = pyfuse3.EntryAttributes()
        attributes.st_ino = inode.ino
        attributes.generation = 0
        attributes.entry_timeout = self.config.metadata_ttl
        attributes.attr_timeout = self.config.metadata_ttl
        attributes.st_blksize = self.config.chunk_size
        if inode.is_dir:
            posix_attributes = self.directories.attributes(inode)
            attributes.st_mode = stat_module.S_IFDIR | posix_attributes.mode
            attributes.st_nlink = self.directories.link_count(inode)
            attributes.st_size = 0
        else:
            attributes.st_size, posix_attributes = self.files.attributes(inode)
            custom = inode.stat.metadata if inode.stat is not None else {}
            kind = posix.file_type(custom)
            if kind == stat_module.S_IFLNK:
                attributes.st_mode = kind | 0o777  # as on Linux: a link's own mode is never used
                attributes.st_size = posix.link_size(custom, attributes.st_size)
            else:
                attributes.st_mode = kind | posix_attributes.mode
                attributes.st_rdev = posix.device(custom)
            attributes.st_nlink = 0 if inode.unlinked else 1
        attributes.st_uid, attributes.st_gid = posix_attributes.uid, posix_attributes.gid
        attributes.st_blocks = (attributes.st_size + 511) // 512
        attributes.st_mtime_ns, attributes.st_atime_ns = posix_attributes.mtime_ns, posix_attributes.atime_ns
        attributes.st_ctime_ns = max(posix_attributes.ctime_ns, inode.changed_here_ns or 0)
        return attributes

    def _looked_up(self, inode: Inode) -> pyfuse3.EntryAttributes:
        """The kernel now holds one more lookup of the inode (until its FORGET)."""
        inode.lookups += 1
        return self._attributes(inode)

    def _file_inode(self, ino: int) -> Inode:
        inode = self.inodes[ino]
        if inode.is_dir:
            raise UnsupportedAttribute(f"{self.describe(ino)}: directories carry no Octue metadata.")
        return inode

    # Names and attributes --------------------------------------------------------------------

    @fuse_errors
    async def lookup(self, parent_ino: int, name: bytes, ctx: pyfuse3.RequestContext) -> pyfuse3.EntryAttributes:
        inode = await self.namespace.lookup(self.inodes[parent_ino], os.fsdecode(name))
        if inode is None:
            negative = pyfuse3.EntryAttributes()
            negative.st_ino = 0
            negative.entry_timeout = self.config.metadata_ttl
            return negative
        return self._looked_up(inode)

    @fuse_errors
    async def getattr(self, ino: int, ctx: pyfuse3.RequestContext) -> pyfuse3.EntryAttributes:
        inode = self.inodes[ino]
        if inode.is_dir:
            await self.directories.fresh(inode)
        elif not inode.unlinked:  # an unlinked file open here has no object left to ask about
            await self.files.fresh(inode)
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
        handle = next(self._handle_numbers)
        self.dir_handles[handle] = DirHandle(inode.path, await self.namespace.entries(inode))
        return handle

    @fuse_errors
    async def readdir(self, fh: int, start_id: int, token: pyfuse3.ReaddirToken) -> None:
        handle = self.dir_handles[fh]
        for index in range(start_id, len(handle.entries)):
            entry = handle.entries[index]
            path = f"{handle.path}/{entry.name}" if handle.path else entry.name
            inode = self.namespace.adopt(path, entry)
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
        datafile = await self.files.fresh(inode)
        if flags & WRITE_FLAGS or inode.write is not None:
            truncate = bool(flags & os.O_TRUNC) and bool(flags & (os.O_WRONLY | os.O_RDWR))
            await self.files.open_for_writing(inode, truncate)
            return self._write_handle(inode, flags)
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

    def _write_handle(self, inode: Inode, flags: int) -> pyfuse3.FileInfo:
        writes = flags & os.O_ACCMODE != os.O_RDONLY
        handle = WriteHandle(inode, append=bool(flags & os.O_APPEND), writes=writes)
        return pyfuse3.FileInfo(fh=self._new_handle(handle), direct_io=False, keep_cache=False)

    @fuse_errors
    async def create(
        self, parent_ino: int, name: bytes, mode: int, flags: int, ctx: pyfuse3.RequestContext
    ) -> tuple[pyfuse3.FileInfo, pyfuse3.EntryAttributes]:
        parent = self.inodes[parent_ino]
        inode = await self.namespace.create(parent, os.fsdecode(name), mode & ~ctx.umask, ctx.uid, ctx.gid)
        return self._write_handle(inode, flags), self._looked_up(inode)

    @fuse_errors
    async def read(self, fh: int, offset: int, size: int) -> bytes:
        self.request_sizes["read"][-(-size // 1024)] += 1
        handle = self.handles[fh]
        session = handle.inode.write
        if isinstance(handle, WriteHandle):
            assert session is not None, "a write handle holds its inode's write session"
            return await self.files.read_staged(session, offset, size)
        if session is not None:
            try:
                return await self.files.read_staged(session, offset, size)
            except FileNotFoundError:
                pass  # the last writer's release uploaded and dropped the staged copy meanwhile
        reader = self._reader_of(handle)
        data = reader.read_from_memory(offset, size)
        if data is None:
            fetch = reader.read_scattered if handle.looks_random(offset, size) else reader.read
            try:
                data = await self.core.workers.blocking(fetch, offset, size)
            except CloudObjectNotFound as error:
                # The generation this file was opened at was replaced or deleted meanwhile.
                raise StaleObject(str(error)) from None
        if self.nursery is not None:
            for span in handle.plan_readahead(offset, size):
                self.nursery.start_soon(prefetch, handle, span, self.core.workers.limiter)
        return data

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
        self.request_sizes["write"][-(-len(data) // 1024)] += 1
        handle = self.handles[fh]
        assert isinstance(handle, WriteHandle)
        written = await self.files.write(handle.inode, offset, data, handle.append)
        handle.inode.changed_here_ns = time.time_ns()
        return written

    @fuse_errors
    async def flush(self, fh: int) -> None:
        """Every close(): sends what is staged, unless the descriptor was opened read-only. Such a close
        changed nothing, and while the server is away it would wait for the retry deadline and then fail
        a program that only read (what waits is sent by the last release, or landed later)."""
        handle = self.handles[fh]
        if isinstance(handle, WriteHandle) and handle.writes:
            await self.files.flush(handle.inode)

    @fuse_errors
    async def fsync(self, fh: int, datasync: bool) -> None:
        await self.files.flush(self.handles[fh].inode)

    @fuse_errors
    async def release(self, fh: int) -> None:
        handle = self.handles.pop(fh, None)
        if isinstance(handle, WriteHandle):
            await self.files.release(handle.inode, handle.writes)

    # Changing the tree and attributes --------------------------------------------------------

    @fuse_errors
    async def setattr(
        self, ino: int, attr: pyfuse3.EntryAttributes, fields: pyfuse3.SetattrFields, fh: int | None,
        ctx: pyfuse3.RequestContext,
    ) -> pyfuse3.EntryAttributes:  # fmt: skip
        inode = self.inodes[ino]
        now_ns = time.time_ns()
        changes = posix.changes(attr, fields, self.config.trust_stored_owners, now_ns)
        if inode.is_dir and changes:
            await self.directories.set_attributes(inode, changes)
        elif not inode.is_dir and (fields.update_size or changes):
            await self.files.set_attributes(inode, attr.st_size if fields.update_size else None, changes)
        if changes or (fields.update_size and not inode.is_dir):
            inode.changed_here_ns = now_ns
        return self._attributes(inode)

    @fuse_errors
    async def unlink(self, parent_ino: int, name: bytes, ctx: pyfuse3.RequestContext) -> None:
        await self.namespace.unlink(self.inodes[parent_ino], os.fsdecode(name))

    @fuse_errors
    async def mkdir(
        self, parent_ino: int, name: bytes, mode: int, ctx: pyfuse3.RequestContext
    ) -> pyfuse3.EntryAttributes:
        parent, mode = self.inodes[parent_ino], mode & ~ctx.umask
        return self._looked_up(await self.namespace.mkdir(parent, os.fsdecode(name), mode, ctx.uid, ctx.gid))

    @fuse_errors
    async def rmdir(self, parent_ino: int, name: bytes, ctx: pyfuse3.RequestContext) -> None:
        await self.namespace.rmdir(self.inodes[parent_ino], os.fsdecode(name))

    @fuse_errors
    async def rename(
        self, old_parent_ino: int, old_name: bytes, new_parent_ino: int, new_name: bytes, flags: int,
        ctx: pyfuse3.RequestContext,
    ) -> None:  # fmt: skip
        if flags & pyfuse3.RENAME_EXCHANGE:
            raise pyfuse3.FUSEError(errno.EINVAL)
        old_parent, new_parent = self.inodes[old_parent_ino], self.inodes[new_parent_ino]
        no_replace = bool(flags & pyfuse3.RENAME_NOREPLACE)
        await self.namespace.rename(old_parent, os.fsdecode(old_name), new_parent, os.fsdecode(new_name), no_replace)

    @fuse_errors
    async def symlink(
        self, parent_ino: int, name: bytes, target: bytes, ctx: pyfuse3.RequestContext
    ) -> pyfuse3.EntryAttributes:
        parent = self.inodes[parent_ino]
        return self._looked_up(await self.namespace.symlink(parent, os.fsdecode(name), target, ctx.uid, ctx.gid))

    @fuse_errors
    async def readlink(self, ino: int, ctx: pyfuse3.RequestContext) -> bytes:
        return await self.core.links.target(self.inodes[ino])

    @fuse_errors
    async def link(
        self, ino: int, new_parent_ino: int, new_name: bytes, ctx: pyfuse3.RequestContext
    ) -> pyfuse3.EntryAttributes:
        raise pyfuse3.FUSEError(errno.EPERM)

    @fuse_errors
    async def mknod(
        self, parent_ino: int, name: bytes, mode: int, rdev: int, ctx: pyfuse3.RequestContext
    ) -> pyfuse3.EntryAttributes:
        parent, mode = self.inodes[parent_ino], mode & ~ctx.umask
        return self._looked_up(await self.namespace.mknod(parent, os.fsdecode(name), mode, rdev, ctx.uid, ctx.gid))

    # Extended attributes ---------------------------------------------------------------------

    @fuse_errors
    async def listxattr(self, ino: int, ctx: pyfuse3.RequestContext) -> list[bytes]:
        inode = self.inodes[ino]
        if inode.is_dir:
            return []
        return [name.encode() for name in xattrs.names(await self.files.fresh(inode))]

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
        return xattrs.get(await self.files.fresh(inode), os.fsdecode(name))

    @fuse_errors
    async def setxattr(self, ino: int, name: bytes, value: bytes, ctx: pyfuse3.RequestContext) -> None:
        inode = self._file_inode(ino)
        await self.files.change_metadata(inode, lambda datafile: xattrs.with_set(datafile, os.fsdecode(name), value))
        inode.changed_here_ns = time.time_ns()

    @fuse_errors
    async def removexattr(self, ino: int, name: bytes, ctx: pyfuse3.RequestContext) -> None:
        inode = self._file_inode(ino)
        await self.files.change_metadata(inode, lambda datafile: xattrs.with_removed(datafile, os.fsdecode(name)))
        inode.changed_here_ns = time.time_ns()
