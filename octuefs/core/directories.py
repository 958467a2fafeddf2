"""Directories' own attributes: mode, owner, group and times, kept on the directory's placeholder.

A directory is a prefix; only its placeholder object (`dir/`) can hold metadata, so chmod, chown and
utimens store gsutil's keys there (octuefs/fs/posix.py), making the placeholder when the directory
had none (a bare prefix). A placeholder comes with the listing of the parent (GCS's
includeTrailingDelimiter), so showing a directory's attributes costs no request of its own; a
getattr asks once the metadata TTL has passed, as for a file.

A directory's mtime and ctime also change when an entry is created, removed or renamed in it. That
is kept by this mount only, never stored: storing it would be one more request (a PATCH of the
parent's placeholder, measured as costly as the create itself) for every file made, and gcsfuse and
s3fs do not store it either. Another mount, or this one after a remount, shows the stored times.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace

from octuefs.core.files import Files
from octuefs.core.inodes import Inode
from octuefs.core.parts import CoreParts
from octuefs.errors import CloudObjectNotFound, PreconditionConflict, ServerUnavailable
from octuefs.fs import posix
from octuefs.storage.gcs import ObjectStat

# A PATCH refused because the placeholder changed since it was read is sent again, this many times.
ATTEMPTS = 3


@dataclass
class Directories(CoreParts):
    files: Files

    def placeholder_name(self, inode: Inode) -> str:
        """'' for the root of a whole-bucket mount, which has no placeholder."""
        return self.dirs.dir_prefix(inode.path)

    async def fresh(self, inode: Inode) -> None:
        """Look the placeholder up again once the metadata TTL has passed; while the server is
        unavailable, what was last seen of it stands."""
        name = self.placeholder_name(inode)
        if not name or (inode.placeholder_seen and inode.is_fresh(self.config.metadata_ttl)):
            return
        started = time.monotonic()
        try:
            stat = await self.workers.blocking(self.storage.stat, self.config.bucket, name)
        except ServerUnavailable:
            return
        if not inode.placeholder_seen or inode.refreshed_at <= started:
            inode.refresh_placeholder(stat, started)

    def attributes(self, inode: Inode) -> posix.PosixAttributes:
        """What the placeholder says, shown by the rules files follow (with `dir_mode`), and the times
        of the changes made in it here."""
        stat = inode.stat
        custom = stat.metadata if stat is not None else {}
        object_ns = int(stat.updated.timestamp() * 1e9) if stat is not None and stat.updated else None
        default_ns = object_ns or self.files.mounted_at_ns
        default = posix.PosixAttributes(self.config.dir_mode, self.config.uid, self.config.gid, default_ns)
        attributes, unusable = posix.read(custom, default, posix.shown(self.config, directory=True))
        location = f"gs://{self.config.bucket}/{self.placeholder_name(inode)}"
        self.files.report_unusable(location, custom, unusable)
        if inode.entries_changed_ns is not None:
            mtime_ns = max(attributes.mtime_ns, inode.entries_changed_ns)
            return replace(attributes, mtime_ns=mtime_ns, ctime_ns=max(attributes.ctime_ns, mtime_ns))
        return attributes

    def link_count(self, inode: Inode) -> int:
        """2 and one per subdirectory when a fresh listing of it is at hand; else 1, as btrfs shows
        for every directory and `find` reads as "count unknown" (no request is made to count)."""
        listing = self.dirs.fresh(inode.path)
        if listing is None:
            return 1
        return 2 + sum(1 for entry in listing.entries.values() if entry.is_dir)

    async def set_attributes(self, inode: Inode, changes: dict[str, str]) -> None:
        """Store chmod's, chown's and utimens's keys on the placeholder, made if there is none."""
        self.require_writable(inode.path)
        name = self.placeholder_name(inode)
        if not name:
            return  # nothing in a whole bucket can hold the root's attributes: the mount's are shown
        async with inode.lock:
            await self.fresh(inode)
            for attempt in range(ATTEMPTS):
                try:
                    stat = await self._store(name, inode.stat, changes)
                    break
                except (PreconditionConflict, CloudObjectNotFound):  # changed, made or removed meanwhile
                    if attempt == ATTEMPTS - 1:
                        raise
                    started = time.monotonic()
                    found = await self.workers.blocking(self.storage.stat, self.config.bucket, name)
                    inode.refresh_placeholder(found, started)
            inode.refresh_placeholder(stat)
        if posix.MTIME_KEY in changes:
            inode.entries_changed_ns = None  # the time given wins over the changes made in it before

    async def _store(self, name: str, stat: ObjectStat | None, changes: dict[str, str]) -> ObjectStat:
        if stat is None:
            return await self.workers.blocking(self.storage.create_placeholder, self.config.bucket, name, changes)
        return await self.workers.blocking(self.storage.patch_metadata, stat, changes)
