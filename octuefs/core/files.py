"""File content: fresh views of objects, write sessions, uploads, truncates and metadata changes.

Every change to one inode runs under `inode.lock` (see `octuefs.core` for the lock order); the work
itself runs in worker threads (`Workers`), which change only the session handed to them.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from octuefs.cache import ChunkCache
from octuefs.core.inodes import Inode
from octuefs.core.parts import CoreParts
from octuefs.datafile import Datafile
from octuefs.errors import CloudObjectNotFound, ServerUnavailable, StaleObject
from octuefs.fs import posix
from octuefs.fs.dirs import DirEntry
from octuefs.metadata.model import OctueMetadata
from octuefs.storage.gcs import ObjectStat
from octuefs.uploads.session import WriteSession, WriteStatus
from octuefs.uploads.staging import set_aside
from octuefs.uploads.uploader import Uploader

logger = logging.getLogger(__name__)


@dataclass
class Files(CoreParts):
    cache: ChunkCache
    uploader: Uploader
    mounted_at_ns: int = field(default_factory=time.time_ns)
    # Objects whose stored POSIX attributes were reported unusable: once each, not at every stat.
    reported_attributes: set[str] = field(default_factory=set)

    def location(self, inode: Inode) -> str:
        return self.location_of(inode.path)

    @cached_property
    def shown(self) -> posix.Shown:
        """Fixed for the mount, and made once: building it per entry was a fifth of `ls -l` of 10,000
        files in the daemon (py-spy)."""
        return posix.shown(self.config)

    def attributes(self, inode: Inode) -> tuple[int, posix.PosixAttributes]:
        """Size and POSIX attributes: staged while being written here, else from the object."""
        stat = inode.stat
        custom = dict(stat.metadata) if stat else {}
        updated_ns = int(stat.updated.timestamp() * 1e9) if stat and stat.updated else self.mounted_at_ns
        if stat and inode.mtime_made_here is not None and stat.generation == inode.generation_made_here:
            updated_ns = inode.mtime_made_here
        session = inode.write
        if session is not None:
            custom.update(session.custom_changes)
            if session.dirty:
                updated_ns = session.modified_ns
        default = posix.PosixAttributes(self.config.file_mode, self.config.uid, self.config.gid, updated_ns)
        attributes, unusable = posix.read(custom, default, self.shown)
        if unusable:
            self.report_unusable(self.location(inode), custom, unusable)
        if session is not None:
            return session.size, attributes
        return (stat.size if stat else 0), attributes

    def report_unusable(self, location: str, custom: Mapping[str, str], unusable: list[str]) -> None:
        """Log stored values no attribute can hold, once per object (not at every stat)."""
        if unusable and location not in self.reported_attributes:
            self.reported_attributes.add(location)
            stored = ", ".join(f"{key} {custom[key]!r:.40}" for key in unusable)
            logger.warning("%s: stored %s out of range; the mount's values are shown", location, stored)

    async def fresh(self, inode: Inode) -> Datafile:
        """The file's datafile, re-read from the server once it is older than the metadata TTL.

        While the file is being written here, the staged state is what is true, so nothing is re-read.
        Adopting the answer is one step on the loop, ordered by when each request was sent: no lock.
        """
        if inode.write is not None and inode.datafile is not None:
            return inode.datafile
        if not inode.known or not inode.is_fresh(self.config.metadata_ttl):
            started = time.monotonic()
            try:
                stat = await self.workers.blocking(
                    self.storage.stat, self.config.bucket, self.dirs.object_name(inode.path)
                )
            except ServerUnavailable as error:
                return self._last_known(inode, error)
            self.stale.refreshed()
            if inode.known and inode.refreshed_at > started:
                # An upload or metadata change finished while this stat was out: what it adopted is newer,
                # and an older generation adopted here would make the next upload of the file fail.
                assert inode.datafile is not None
                return inode.datafile
            if stat is None:
                raise CloudObjectNotFound(f"{self.location(inode)}: no longer exists.")
            inode.refresh_stat(stat, started)
        assert inode.datafile is not None
        return inode.datafile

    def _last_known(self, inode: Inode, error: ServerUnavailable) -> Datafile:
        """The datafile as last seen, while the server cannot say what it is now (stale-if-error); left
        as old as it is, so the first stat once the server is back refreshes it."""
        if inode.datafile is None or not self.stale.usable(inode.refreshed_at):
            raise error
        self.stale.serve(self.location(inode), inode.refreshed_at, error)
        return inode.datafile

    def pending(self) -> list[Inode]:
        """Files being written here that still have a name: no server listing shows them before upload."""
        return [inode for inode in self.inodes.writing() if inode.write is not None and not inode.write.unlinked]

    def pending_under(self, path: str) -> list[Inode]:
        return [inode for inode in self.pending() if inode.path.startswith(path + "/")]

    def unsent_inodes(self) -> list[Inode]:
        """Files holding bytes or attributes their object lacks (an unlinked file's are never sent)."""
        return [inode for inode in self.inodes.writing() if inode.write is not None and inode.write.dirty]

    def unsent(self, describe: Callable[[Inode], str] | None = None) -> dict[str, dict[str, str | int]]:
        """The unsent files by location: how their upload stands (its `WriteStatus`, or what `describe`
        says of it), how many handles hold them open and where their bytes are kept (what `octuefs stats`
        shows and `octuefs unmount` waits for)."""
        return {
            self.location(inode): {
                "status": describe(inode) if describe else inode.write.status.value,
                "open": inode.write.holders,
                "staged": str(inode.write.staged.data_path),
            }
            for inode in self.unsent_inodes()
        }

    def settle(self) -> None:
        """When the mount has stopped serving: drop the staged copies whose object already holds them (an
        upload finished, and the release that would have dropped them never came), and say where the rest
        are kept. Those stay with their records, for recovery at the next mount with this cache directory."""
        for location, state in self.unsent().items():
            logger.warning(
                "%s: not uploaded (%s, %d open); its bytes are kept at %s and go up at the next mount",
                location,
                state["status"],
                state["open"],
                state["staged"],
            )
        for inode in self.inodes.writing():
            if inode.write is not None and not inode.write.dirty:
                self.uploader.staging.remove(inode.write.staged)

    # Writing ---------------------------------------------------------------------------------------

    async def open_for_writing(
        self, inode: Inode, truncate: bool, new: Datafile | None = None, attributes: dict[str, str] | None = None
    ) -> None:
        """Count one more write handle on the inode's session (staged now if it has none). `new` is the
        datafile of a file being created (there is no object to ask about yet), `attributes` its mode
        and owner, put into the session before any part of it is streamed."""
        self.require_writable(inode.path)
        async with inode.lock:
            session = await self._hold(inode, new or await self.fresh(inode), truncate)
            session.custom_changes.update(attributes or {})
        inode.last_opened_generation = None

    async def _hold(self, inode: Inode, datafile: Datafile, truncate: bool, keep: int | None = None) -> WriteSession:
        """The inode's session counted as one more holder. The caller holds `inode.lock`."""
        session = inode.write
        if session is None:
            session = await self.workers.on_disk(self.uploader.begin, datafile, truncate, keep)
            self.inodes.start_writing(inode, session)
        elif truncate:
            await self.workers.on_disk(self.uploader.truncate, session, 0)
        session.holders += 1
        return session

    async def write(self, inode: Inode, offset: int, data: bytes, append: bool) -> int:
        async with inode.lock:
            session = inode.write
            assert session is not None, "a write handle holds its inode's session"
            return await self.workers.on_disk(self.uploader.write, session, offset, data, append)

    async def read_staged(self, session: WriteSession, offset: int, size: int) -> bytes:
        """Without the inode's lock: reads go through a descriptor of their own."""
        try:
            return await self.workers.on_disk(self.uploader.read, session, offset, size)
        except CloudObjectNotFound as error:
            # The object whose bytes the staged copy has not copied in yet was replaced or deleted.
            raise StaleObject(str(error)) from None

    async def flush(self, inode: Inode) -> None:
        async with inode.lock:
            await self.upload(inode)

    async def release(self, inode: Inode, writes: bool = True) -> None:
        """A write handle closed: the last one uploads what is staged and drops the session. One opened
        read-only leaves an upload that failed to the lander (octuefs.core.landing): it changed nothing,
        and while the server is away another attempt would only hold the file's lock."""
        async with inode.lock:
            session = inode.write
            if session is None:
                return
            session.holders -= 1
            if session.holders <= 0 and (writes or session.status is not WriteStatus.FAILED):
                await self.upload(inode)

    async def upload(self, inode: Inode) -> None:
        """Send the staged bytes if they changed, then drop the session if no handle holds it (a close
        whose upload failed leaves it to the next flush, close or rename, or to the lander). The caller
        holds `inode.lock`."""
        session = inode.write
        if session is None or inode.datafile is None:
            return
        if session.dirty:  # else no thread is needed: a close after its flush has nothing to send
            await self._send(inode, inode.datafile, session)
        await self.finish_if_idle(inode)

    async def _send(self, inode: Inode, datafile: Datafile, session: WriteSession) -> None:
        shown_ns = self.attributes(inode)[1].mtime_ns
        stat = await self.workers.uploading(self.uploader.upload, datafile, session)
        if stat is not None:
            inode.generation_made_here, inode.mtime_made_here = stat.generation, shown_ns
            inode.refresh(datafile)
            name = inode.path.rpartition("/")[2]
            self.dirs.record(inode.path, DirEntry(name, False, stat, inode.refreshed_at))

    async def finish_if_idle(self, inode: Inode) -> None:
        """Drop the session once nothing holds it and nothing is left to upload. The caller holds `inode.lock`."""
        session = inode.write
        if session is not None and session.holders <= 0 and not session.dirty:
            self.inodes.stop_writing(inode)
            await self.workers.on_disk(self.uploader.discard, session)

    async def set_aside(self, inode: Inode, lost_and_found: Path) -> str:
        """The object changed since the staged bytes came from it (their upload was refused by its
        generation precondition): move them to `lost_and_found`, as recovery does, and show the other
        writer's object from now on. Returns the line saying where they are. The caller holds `inode.lock`."""
        session = inode.write
        assert session is not None
        location = session.recorded.location
        current = await self.workers.blocking(self.storage.stat, location.bucket, location.name)
        generation = current.generation if current is not None else 0
        line = await self.workers.on_disk(set_aside, session.staged, session.recorded, lost_and_found, generation)
        # The other writer's object is shown in the same step as the session ends: nothing may see neither.
        if current is None:
            inode.outdate()
            self.dirs.record(inode.path, None)
        else:
            inode.refresh_stat(current)
            self.dirs.record(inode.path, DirEntry(inode.path.rpartition("/")[2], False, current, inode.refreshed_at))
        self.inodes.stop_writing(inode)
        await self.workers.on_disk(self.uploader.discard, session)
        return line

    async def orphan(self, inode: Inode) -> None:
        """The file lost its name: its staged bytes are never uploaded. The caller holds `inode.lock`."""
        if inode.write is not None:
            await self.workers.blocking(self.uploader.orphan, inode.write)
            await self.finish_if_idle(inode)

    async def moved(self, inode: Inode, original: ObjectStat, copied: ObjectStat) -> None:
        """Point the inode, and its staged bytes if it is being written, at the copy of its object: the
        kernel keeps asking about it by number, and an upload still aimed at the old name would fail.
        The caller holds `inode.lock`."""
        shown_ns = self.attributes(inode)[1].mtime_ns  # a rename keeps the mtime, as on a local disk
        inode.refresh_stat(copied)
        inode.generation_made_here, inode.mtime_made_here = copied.generation, shown_ns
        if inode.write is not None:
            assert inode.datafile is not None
            await self.workers.on_disk(self.uploader.moved, inode.write, original, inode.datafile)

    # Attributes and metadata -----------------------------------------------------------------------

    async def set_attributes(self, inode: Inode, size: int | None, changes: dict[str, str]) -> None:
        """A truncate to `size` (None: none) and POSIX attribute changes (chmod, chown, touch)."""
        self.require_writable(inode.path)
        async with inode.lock:
            try:
                await self._set_attributes(inode, size, changes)
            finally:
                await self.finish_if_idle(inode)  # after a refused truncate too: nothing to keep

    async def _set_attributes(self, inode: Inode, size: int | None, changes: dict[str, str]) -> None:
        datafile = await self.fresh(inode)
        session = inode.write
        if size is not None:
            session = await self._hold(inode, datafile, False, size)
        try:
            if size is not None:
                assert session is not None
                await self.workers.on_disk(self.uploader.truncate, session, size)
            if session is not None and session.dirty and changes:
                session.change_attributes(changes)
            elif changes:
                # Also when the file is open but already uploaded: the release would have nothing to send.
                datafile = await self.fresh(inode)
                await self.workers.blocking(datafile.update_custom_metadata, changes)
                inode.refresh(datafile)
        finally:
            if size is not None and session is not None:
                session.holders -= 1
        if session is not None and session.holders <= 0:
            await self.upload(inode)

    async def change_metadata(self, inode: Inode, change: Callable[[Datafile], OctueMetadata]) -> None:
        """Compute the change from, and write it through, the inode's current Datafile under its lock: a
        change computed from a view another change replaced meanwhile would be adopted over it, and an
        upload sent from that view would carry metadata without it.

        Then mark the inode's view as the newest: listings sent before the write finished may hold the
        old metadata and must not replace it (see `Namespace.adopt`)."""
        async with inode.lock:
            datafile = await self.fresh(inode)
            await self.workers.blocking(datafile.save_metadata, change(datafile))
            inode.refresh(datafile)
