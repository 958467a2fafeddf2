"""Names: lookups and the inodes they adopt, directory listings with files not uploaded yet, and
create, mkdir, symlink, mknod, rmdir, unlink and rename (of files and directories) on the bucket.

Names arrive decoded (str); what answers the kernel is the FUSE adapter's (`octuefs.fs.operations`).
"""

from __future__ import annotations

import logging
import stat as stat_module
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, replace

from octuefs.core.files import Files
from octuefs.core.inodes import Inode
from octuefs.core.parts import CoreParts
from octuefs.datafile import Datafile, UploadRequest
from octuefs.errors import (
    AlreadyExists,
    CloudObjectNotFound,
    DirectoryNotEmpty,
    IsADirectory,
    NoSuchEntry,
    NotADirectory,
    OctuefsError,
    PreconditionConflict,
    ServerUnavailable,
)
from octuefs.fs import posix
from octuefs.fs.dirs import LOOKUP_LISTING_LIMIT, DirEntry, Listing
from octuefs.storage.gcs import ObjectStat

logger = logging.getLogger(__name__)

# Renames remembered for `Namespace.create` (see there): enough for many editors saving at once.
RENAMES_REMEMBERED = 256


@dataclass
class Namespace(CoreParts):
    files: Files
    # Files this mount renamed away lately (old path -> new path, when), oldest first: a file created at
    # an old path within the metadata TTL takes the renamed object's identity (see `create`).
    renamed_away: dict[str, tuple[str, float]] = field(default_factory=dict)

    @staticmethod
    def child_path(parent: Inode, name: str) -> str:
        return f"{parent.path}/{name}" if parent.path else name

    def adopt(self, path: str, entry: DirEntry) -> Inode:
        """The inode for a listed or probed entry, its view of the object brought up to date.

        Only newer knowledge replaces the inode's: a directory listing is reused for the whole TTL, and
        adopting it after a setxattr would bring the old metadata back, which the next setxattr would
        then write over the change just made.
        """
        inode = self.inodes.entry(path, entry.is_dir)
        if entry.is_dir:
            if entry.seen_at and (not inode.placeholder_seen or entry.seen_at >= inode.refreshed_at):
                inode.refresh_placeholder(entry.stat, entry.seen_at)
            return inode
        if inode.write is not None:
            # Its upload must stay guarded by the generation its bytes came from: adopting a newer
            # listed generation would let our upload overwrite another writer's object.
            return inode
        if entry.stat is not None and (not inode.known or entry.seen_at >= inode.refreshed_at):
            inode.refresh_stat(entry.stat, entry.seen_at)
        return inode

    async def lookup(self, parent: Inode, name: str) -> Inode | None:
        """The inode of `name` in `parent` (asking the server if needed), without counting a kernel lookup.

        While the server is unavailable, the answer is what was last known: the parent's last listing
        (a name not in it is not there, so a program can create it), else the inode of a name seen before.
        """
        path = self.child_path(parent, name)
        self.dirs.require_short(path)
        pending = self.inodes.find(path, False)
        if pending is not None and pending.write is not None:
            return pending  # its staged bytes are what is true, whatever a listing says
        try:
            entry = await self._find(parent.path, path)
        except ServerUnavailable as error:
            entry = self._last_known_entry(parent.path, path, error)
        return self.adopt(path, entry) if entry is not None else None

    async def _find(self, directory: str, path: str) -> DirEntry | None:
        listing = self.dirs.fresh(directory)
        if listing is None and self.dirs.worth_listing(directory):
            listing = await self._listing_for_lookups(directory)
        if listing is not None:
            return listing.entries.get(path.rpartition("/")[2])
        entry = await self.workers.blocking(self.dirs.probe, path)
        self.stale.refreshed()
        return entry

    def _last_known_entry(self, directory: str, path: str, error: ServerUnavailable) -> DirEntry | None:
        """`path` as last known: in its directory's last listing, else as the inode of a name probed before."""
        name = path.rpartition("/")[2]
        listing = self._last_listing(directory, error)
        if listing is not None:
            return listing.entries.get(name)
        for inode in (self.inodes.find(path, False), self.inodes.find(path, True)):
            if inode is not None and (inode.is_dir or inode.known) and self.stale.usable(inode.refreshed_at):
                self.stale.serve(self.location_of(path), inode.refreshed_at, error)
                return DirEntry(name, inode.is_dir, inode.stat, inode.refreshed_at)
        raise error

    def _last_listing(self, path: str, error: ServerUnavailable) -> Listing | None:
        """The directory's last listing if it may stand in for the one the server cannot give."""
        listing = self.dirs.last(path)
        if listing is None or not self.stale.usable(listing.fetched_at):
            return None
        self.stale.serve(f"gs://{self.config.bucket}/{self.dirs.dir_prefix(path)}", listing.fetched_at, error)
        return listing

    async def entries(self, directory: Inode) -> list[DirEntry]:
        """What the directory holds, sorted by name: its listing and the files being written in it; while
        the server is unavailable, its last listing."""
        if not directory.is_dir:
            raise NotADirectory(f"{self.files.location(directory)}: not a directory.")
        listing = self.dirs.fresh(directory.path)
        if listing is None:
            try:
                listing = await self._listing(directory.path, None)
            except ServerUnavailable as error:
                listing = self._last_listing(directory.path, error)
                if listing is None:
                    raise
        assert listing is not None, "a listing without a limit is never refused for its size"
        entries = dict(listing.entries)
        for inode in self.files.pending():
            parent, _, name = inode.path.rpartition("/")
            if parent == directory.path:
                entries.setdefault(name, DirEntry(name, False))
        return [entries[name] for name in sorted(entries)]

    async def _listing(self, path: str, limit: int | None) -> Listing | None:
        """Listed in a worker, cached here on the loop (None: `limit` entries or more)."""
        version = self.dirs.start_listing(path)
        listing = await self.workers.blocking(self.dirs.read, path, limit)
        self.stale.refreshed()
        if listing is not None:
            self.dirs.keep(path, listing, version)
        return listing

    async def _listing_for_lookups(self, path: str) -> Listing | None:
        """The directory's listing if it is small enough and may be listed; None: go on probing names.
        An unavailable server is no reason to stop listing it: that error goes to the caller."""
        try:
            listing = await self._listing(path, LOOKUP_LISTING_LIMIT)
        except ServerUnavailable:
            raise
        except OctuefsError as error:
            logger.info("%s: not listed for lookups (%s); looking names up one by one", self.location_of(path), error)
            listing = None
        if listing is None:
            self.dirs.probe_only(path)
        return listing

    async def create(self, parent: Inode, name: str, mode: int, uid: int, gid: int) -> Inode:
        """A new file, open for writing, showing the mode and owner it was created with."""
        path = self.child_path(parent, name)
        self.require_writable(path)
        self.dirs.require_representable(path)
        stored = self._created(mode, uid, gid)
        renamed = await self._renamed_away_from(path)
        datafile = Datafile.for_new_object(self.config.bucket, self.dirs.object_name(path), renamed)
        if renamed is not None:
            # Renamed away, created anew, the renamed one deleted: how vim and emacs save with a backup.
            # The new file is the old one's successor, as when a new file is renamed over an old one.
            stored = _inherited(stored, renamed).metadata
        inode = self.inodes.entry(path, False)
        inode.refresh(datafile)
        inode.created_here = True
        await self.files.open_for_writing(inode, True, datafile, stored)
        parent.entries_changed(time.time_ns())
        return inode

    async def _renamed_away_from(self, path: str) -> Datafile | None:
        """The object this mount renamed away from `path` within the metadata TTL, if it still exists."""
        moved = self.renamed_away.pop(path, None)
        if moved is None or time.monotonic() - moved[1] > self.config.metadata_ttl:
            return None
        inode = self.inodes.find(moved[0], False)
        if inode is None:
            return None
        try:
            return await self.files.fresh(inode)
        except CloudObjectNotFound:
            return None

    async def mkdir(self, parent: Inode, name: str, mode: int, uid: int, gid: int) -> Inode:
        """A directory: its placeholder, carrying the mode and owner it was made with (see `create`)."""
        path = self.child_path(parent, name)
        self.require_writable(path)
        if await self.lookup(parent, name) is not None:
            raise AlreadyExists(f"{self.location_of(path)}: already exists.")
        self.dirs.require_representable(path)
        default = posix.PosixAttributes(self.config.dir_mode, self.config.uid, self.config.gid, 0)
        keys = posix.created(mode, uid, gid, default, self.config.trust_stored_owners)
        create, prefix = self.storage.create_placeholder, self.dirs.dir_prefix(path)
        stat = await self.workers.blocking(create, self.config.bucket, prefix, keys)
        inode = self.inodes.entry(path, True)
        inode.refresh_placeholder(stat)
        self.dirs.record(path, DirEntry(name, True, stat, inode.refreshed_at))
        self.dirs.record_empty(path)
        parent.entries_changed(time.time_ns())
        return inode

    async def symlink(self, parent: Inode, name: str, target: bytes, uid: int, gid: int) -> Inode:
        """A symbolic link, stored as gcsfuse stores one (see octuefs/fs/posix.py); never followed here."""
        owners = {key: value for key, value in self._created(0, uid, gid).items() if key != posix.MODE_KEY}
        return await self._make_object(parent, name, target, posix.link_metadata(target) | owners)

    async def mknod(self, parent: Inode, name: str, mode: int, rdev: int, uid: int, gid: int) -> Inode:
        """A FIFO, socket or device node: an empty object carrying its type (the kernel does the rest:
        a FIFO's pipe and a socket's binding are local, and the mount is `nodev`). A regular file made
        by mknod is an empty file, created and closed."""
        if stat_module.S_ISREG(mode):
            inode = await self.create(parent, name, stat_module.S_IMODE(mode), uid, gid)
            await self.files.release(inode)
            return inode
        keys = self._created(mode, uid, gid) | posix.special_metadata(mode, rdev)
        return await self._make_object(parent, name, b"", keys)

    def _created(self, mode: int, uid: int, gid: int) -> dict[str, str]:
        default = posix.PosixAttributes(self.config.file_mode, self.config.uid, self.config.gid, 0)
        return posix.created(mode, uid, gid, default, self.config.trust_stored_owners)

    async def _make_object(self, parent: Inode, name: str, data: bytes, metadata: dict[str, str]) -> Inode:
        """A link's or special file's object, made in one request if the name is free."""
        path = self.child_path(parent, name)
        self.require_writable(path)
        if await self.lookup(parent, name) is not None:
            raise AlreadyExists(f"{self.location_of(path)}: already exists.")
        self.dirs.require_representable(path)
        create, object_name = self.storage.create_small, self.dirs.object_name(path)
        try:
            stat = await self.workers.blocking(create, self.config.bucket, object_name, data, metadata)
        except PreconditionConflict:
            raise AlreadyExists(f"{self.location_of(path)}: already exists (made by another writer).") from None
        inode = self.inodes.entry(path, False)
        inode.refresh_stat(stat)
        self.dirs.record(path, DirEntry(name, False, stat, inode.refreshed_at))
        parent.entries_changed(time.time_ns())
        return inode

    async def _existing(self, parent: Inode, name: str) -> Inode:
        inode = await self.lookup(parent, name)
        if inode is None:
            path = self.child_path(parent, name)
            raise NoSuchEntry(f"{self.location_of(path)}: no such file or directory.")
        return inode

    async def rmdir(self, parent: Inode, name: str) -> None:
        inode = await self._existing(parent, name)
        if not inode.is_dir:
            raise NotADirectory(f"{self.files.location(inode)}: not a directory.")
        prefix = self.dirs.dir_prefix(inode.path)
        listing = await self.workers.blocking(self.storage.list, self.config.bucket, prefix, "/", None, 2)
        if (
            listing.prefixes
            or any(stat.name != prefix for stat in listing.objects)
            or self.files.pending_under(inode.path)
        ):
            raise DirectoryNotEmpty(f"{self.files.location(inode)}: directory not empty.")
        for stat in listing.objects:
            await self.workers.blocking(self.storage.delete, stat.bucket, stat.name, stat.generation)
        self.dirs.invalidate(parent.path)
        self.dirs.invalidate(inode.path)
        parent.entries_changed(time.time_ns())

    async def unlink(self, parent: Inode, name: str) -> None:
        inode = await self._existing(parent, name)
        if inode.is_dir:
            raise IsADirectory(f"{self.files.location(inode)}: is a directory.")
        async with inode.lock:
            stat = inode.stat  # read under the lock: an upload that was in flight has landed
            if stat is not None:
                await self.workers.blocking(self.storage.delete, stat.bucket, stat.name, stat.generation)
            await self.files.orphan(inode)
            self.dirs.record(inode.path, None)
            self.inodes.detach(inode)
        inode.unlinked, inode.changed_here_ns = True, time.time_ns()
        parent.entries_changed(inode.changed_here_ns)

    async def rename(
        self, old_parent: Inode, old_name: str, new_parent: Inode, new_name: str, no_replace: bool
    ) -> None:
        source = await self._existing(old_parent, old_name)
        new_path = self.child_path(new_parent, new_name)
        self.require_writable(new_path)
        target = await self.lookup(new_parent, new_name)
        self.dirs.require_representable(new_path)
        if target is not None and no_replace:
            raise AlreadyExists(f"{self.files.location(target)}: already exists.")
        if target is not None and target.is_dir != source.is_dir:
            if target.is_dir:
                raise IsADirectory(f"{self.files.location(target)}: is a directory.")
            raise NotADirectory(f"{self.files.location(target)}: not a directory.")
        if source.is_dir:
            await self._rename_directory(source, new_path, target)
        else:
            async with source.lock:
                await self._rename_file(source, new_path, target)
            if target is not None:
                async with target.lock:
                    await self.files.orphan(target)
        if target is not None:
            target.unlinked = True
        self.dirs.invalidate(old_parent.path)
        self.dirs.invalidate(new_parent.path)
        source.changed_here_ns = time.time_ns()
        old_parent.entries_changed(source.changed_here_ns)
        new_parent.entries_changed(source.changed_here_ns)
        if not source.is_dir:
            self.renamed_away.pop(source.path, None)  # re-inserted last: the oldest is dropped first
            self.renamed_away[source.path] = (new_path, time.monotonic())
            while len(self.renamed_away) > RENAMES_REMEMBERED:
                del self.renamed_away[next(iter(self.renamed_away))]
        self.inodes.move(source.path, new_path, source.is_dir)

    async def _rename_file(self, source: Inode, new_path: str, target: Inode | None) -> None:
        """Copy on the server with the complete metadata, then delete the original; both guarded. The
        caller holds `source.lock`."""
        await self.files.upload(source)
        datafile = await self.files.fresh(source)
        stat = datafile.cloud_stat
        if stat is None:
            raise NoSuchEntry(f"{self.files.location(source)}: no such file.")
        target_stat = target.stat if target is not None else None
        name = self.dirs.object_name(new_path)
        generation = target_stat.generation if target_stat else 0
        metadata, content_type = dict(stat.metadata), stat.content_type
        if target is not None and target_stat is not None and source.created_here and not _has_user_metadata(datafile):
            # Writing a new file and renaming it over the old one is how sed -i, rsync and editors
            # save: the file keeps its identity (Octue id, tags, labels, foreign keys, content type).
            assert target.datafile is not None
            inherited = _inherited(stat.metadata, target.datafile)
            metadata, content_type = inherited.metadata, inherited.content_type
        copied = await self._move_object(stat, name, metadata, generation, content_type)
        await self.files.moved(source, stat, copied)

    async def _rename_directory(self, source: Inode, new_path: str, target: Inode | None) -> None:
        """Every object under the old prefix, one by one: not atomic (see docs/semantics.md).

        A file being written under it is sent first, under its lock, and copied in the same hold, so
        the copy holds what was written and the staged bytes follow it to the new name."""
        new_prefix = self.dirs.dir_prefix(new_path)
        if target is not None:
            existing = await self.workers.blocking(self.storage.list, self.config.bucket, new_prefix, None, None, 2)
            if any(stat.name != new_prefix for stat in existing.objects):
                raise DirectoryNotEmpty(f"{self.files.location(target)}: directory not empty.")
            for placeholder in existing.objects:
                await self.workers.blocking(
                    self.storage.delete, placeholder.bucket, placeholder.name, placeholder.generation
                )
        for inode in self.files.pending_under(source.path):
            async with inode.lock:
                await self.files.upload(inode)
        old_prefix = self.dirs.dir_prefix(source.path)
        listing = await self.workers.blocking(self.storage.list, self.config.bucket, old_prefix)
        for stat in listing.objects:
            relative = stat.name[len(old_prefix) :]
            moved = self.inodes.find(f"{source.path}/{relative}", False)
            if moved is None:
                await self._move_object(stat, new_prefix + relative)
                continue
            async with moved.lock:
                if moved.write is not None:
                    await self.files.upload(moved)
                    stat = moved.stat or stat  # written here: its own upload is the newest generation
                copied = await self._move_object(stat, new_prefix + relative)
                await self.files.moved(moved, stat, copied)
        for path in list(self.dirs.cached_paths()):
            if path == source.path or path.startswith(source.path + "/"):
                self.dirs.invalidate(path)
        source.placeholder_seen = False  # moved with the rest: looked up again at its new name

    async def _move_object(
        self,
        stat: ObjectStat,
        name: str,
        metadata: Mapping[str, str] | None = None,
        generation: int = 0,
        content_type: str | None = None,
    ) -> ObjectStat:
        """Copy `stat` to `name` (over `generation`, 0 for none) with `metadata` (its own by default),
        then delete the source: GCS has no rename."""
        metadata = dict(stat.metadata) if metadata is None else metadata
        copied = await self.workers.blocking(
            self.storage.copy, stat, stat.bucket, name, metadata, generation, content_type
        )
        await self.workers.blocking(self.storage.delete, stat.bucket, stat.name, stat.generation)
        return copied


def _inherited(heir_metadata: Mapping[str, str], replaced: Datafile) -> UploadRequest:
    """What a file taking the place of `replaced` carries: its identity (Octue metadata, foreign keys,
    content type), with the POSIX keys of the heir's own custom metadata. Not the replaced file's
    stored mtime: the heir's content is newer, and shows its own time unless it was given one."""
    inherited = replaced.content_upload_request(posix.carried(heir_metadata))
    metadata = posix.as_regular(inherited.metadata)
    if posix.MTIME_KEY not in heir_metadata:
        metadata.pop(posix.MTIME_KEY, None)
    return replace(inherited, metadata=metadata)


def _has_user_metadata(datafile: Datafile) -> bool:
    metadata = datafile.octue_metadata
    return bool(metadata.tags or metadata.labels or metadata.timestamp is not None)
