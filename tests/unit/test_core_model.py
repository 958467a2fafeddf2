"""The core (octuefs.core) driven without FUSE, on MemoryStorage, against a reference model.

A hypothesis state machine creates, opens, writes, truncates, renames (files and directories),
unlinks, fsyncs and closes files, with several handles open per file and some requests run
concurrently, while the storage sometimes refuses uploads. After every step, every name reads
as the model says through the core, and every file not being written holds exactly that in the
bucket. A failed upload must report its error at fsync or close and keep the bytes staged; once the
storage works again, the next fsync or close lands them. Parts are one 256 KiB granule and the
append threshold is lowered, so streamed uploads and appends by compose run as well as whole ones.
"""

from __future__ import annotations

import contextlib
import itertools
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import trio
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule, run_state_machine_as_test

from octuefs.cache import ChunkCache
from octuefs.core.inodes import ROOT_INODE, Inode
from octuefs.core.mount import MountCore
from octuefs.errors import StorageError
from octuefs.fs.config import MountConfig
from octuefs.reader import ObjectReader
from octuefs.storage.gcs import serving
from octuefs.storage.memory import SESSION_GRANULE, MemoryStorage
from octuefs.storage.objects import StorageSettings
from octuefs.uploads import uploader
from octuefs.uploads.staging import StagingArea
from octuefs.uploads.uploader import Uploader

BUCKET = "model-bucket"
NAMES = ("a", "b", "c")
DIRECTORIES = ("d", "e")
# Operations that send content up, failed together when the storage "breaks".
UPLOADS = ("upload", "finish_session", "append")


@dataclass
class Handle:
    """An open write handle in the model: the inode the core gave, and the file it writes."""

    inode: Inode
    file: int
    append: bool


class CoreModel(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self._cleanup = contextlib.ExitStack()
        directory = Path(self._cleanup.enter_context(tempfile.TemporaryDirectory()))
        self.storage = MemoryStorage(StorageSettings(upload_chunk_size=SESSION_GRANULE))
        self.storage.create_bucket(BUCKET)
        self._cleanup.enter_context(serving(self.storage))
        config = MountConfig(BUCKET, "", directory / "mnt", metadata_ttl=0.0, storage_threads=4)
        cache = ChunkCache(directory / "cache", 256 * 1024 * 1024)
        self._cleanup.callback(cache.close)
        uploads = Uploader(StagingArea(directory / "staging"), cache, self.storage, config.chunk_size)
        self.core = MountCore(config, self.storage, cache, uploads)
        # The reference: which file each name holds, each file's bytes, the directories.
        self.names: dict[str, int] = {}
        self.contents: dict[int, bytearray] = {}
        self.directories: set[str] = set()
        self.handles: list[Handle] = []
        self._files = itertools.count()
        self.broken = False

    def teardown(self) -> None:
        self._cleanup.close()

    def run(self, function, *args):  # type: ignore[no-untyped-def]
        return trio.run(function, *args)

    # Walking the core ------------------------------------------------------------------------

    async def _resolve(self, path: str) -> Inode | None:
        inode = self.core.inodes[ROOT_INODE]
        for name in path.split("/"):
            found = await self.core.namespace.lookup(inode, name)
            if found is None:
                return None
            inode = found
        return inode

    async def _parent(self, path: str) -> tuple[Inode, str]:
        parent, _, name = path.rpartition("/")
        inode = await self._resolve(parent) if parent else self.core.inodes[ROOT_INODE]
        assert inode is not None and inode.is_dir, parent
        return inode, name

    async def _read(self, path: str) -> bytes:
        inode = await self._resolve(path)
        assert inode is not None and not inode.is_dir, f"{path} is not found as a file"
        session = inode.write
        if session is not None:
            return await self.core.files.read_staged(session, 0, session.size + 1)
        datafile = await self.core.files.fresh(inode)
        stat = datafile.cloud_stat
        assert stat is not None
        reader = ObjectReader(stat, self.core.cache, self.storage, self.core.config.chunk_size)
        return await trio.to_thread.run_sync(reader.read, 0, stat.size)

    # Rules -----------------------------------------------------------------------------------

    def _paths(self, name: str, directory: str | None) -> str:
        return f"{directory}/{name}" if directory else name

    @rule(name=st.sampled_from(NAMES), directory=st.sampled_from((None, *DIRECTORIES)), append=st.booleans())
    def create(self, name: str, directory: str | None, append: bool) -> None:
        if directory is not None and directory not in self.directories:
            return
        path = self._paths(name, directory)
        if path in self.names or path in self.directories:
            return

        async def create() -> Inode:
            parent, child = await self._parent(path)
            return await self.core.namespace.create(parent, child, 0o640, 1000, 1000)

        inode = self.run(create)
        file = next(self._files)
        self.names[path], self.contents[file] = file, bytearray()
        self.handles.append(Handle(inode, file, append))

    @precondition(lambda self: self.names)
    @rule(data=st.data(), truncate=st.booleans(), append=st.booleans())
    def open_for_writing(self, data: st.DataObject, truncate: bool, append: bool) -> None:
        path = data.draw(st.sampled_from(sorted(self.names)))

        async def open_file() -> Inode:
            inode = await self._resolve(path)
            assert inode is not None
            await self.core.files.open_for_writing(inode, truncate)
            return inode

        inode = self.run(open_file)
        file = self.names[path]
        if truncate:
            self.contents[file].clear()
        self.handles.append(Handle(inode, file, append))

    @precondition(lambda self: self.handles)
    @rule(data=st.data(), offset=st.integers(0, 3000), size=st.sampled_from((1, 100, 4000, SESSION_GRANULE + 7)))
    def write(self, data: st.DataObject, offset: int, size: int) -> None:
        handle = data.draw(st.sampled_from(self.handles))
        payload = data.draw(st.binary(min_size=1, max_size=8)) * (size // 8 + 1)
        payload = payload[:size]
        self.run(self._write, handle, offset, payload)

    async def _write(self, handle: Handle, offset: int, payload: bytes) -> None:
        written = await self.core.files.write(handle.inode, offset, payload, handle.append)
        assert written == len(payload)
        content = self.contents[handle.file]
        position = len(content) if handle.append else offset
        content.extend(bytes(max(0, position + len(payload) - len(content))))
        content[position : position + len(payload)] = payload

    @precondition(lambda self: len(self.handles) >= 2)
    @rule(data=st.data())
    def concurrently(self, data: st.DataObject) -> None:
        """Writes through handles of different files, fsyncs and lookups at once (their results commute)."""
        by_file = {handle.file: handle for handle in self.handles}
        writers = data.draw(st.lists(st.sampled_from(sorted(by_file)), min_size=1, max_size=3, unique=True))
        flushed = data.draw(st.lists(st.sampled_from(self.handles), max_size=2))
        payloads = [data.draw(st.binary(min_size=1, max_size=5000)) for _ in writers]
        offsets = [data.draw(st.integers(0, 2000)) for _ in writers]

        async def together() -> None:
            async with trio.open_nursery() as nursery:
                for file, payload, offset in zip(writers, payloads, offsets, strict=True):
                    nursery.start_soon(self._write, by_file[file], offset, payload)
                for handle in flushed:
                    nursery.start_soon(self._flush_expecting_faults, handle)
                for path in sorted(self.names)[:2]:
                    nursery.start_soon(self._read, path)

        self.run(together)

    async def _flush_expecting_faults(self, handle: Handle) -> None:
        try:
            await self.core.files.flush(handle.inode)
        except StorageError:
            assert self.broken, "an upload failed while the storage worked"

    @precondition(lambda self: self.handles)
    @rule(data=st.data())
    def fsync(self, data: st.DataObject) -> None:
        self.run(self._flush_expecting_faults, data.draw(st.sampled_from(self.handles)))

    @precondition(lambda self: self.handles)
    @rule(data=st.data())
    def close(self, data: st.DataObject) -> None:
        handle = data.draw(st.sampled_from(self.handles))
        self.handles.remove(handle)

        async def release() -> None:
            try:
                await self.core.files.release(handle.inode)
            except StorageError:
                assert self.broken, "an upload failed while the storage worked"

        self.run(release)

    @precondition(lambda self: self.names)
    @rule(data=st.data(), size=st.integers(0, 6000))
    def truncate(self, data: st.DataObject, size: int) -> None:
        path = data.draw(st.sampled_from(sorted(self.names)))

        async def truncate() -> None:
            inode = await self._resolve(path)
            assert inode is not None
            try:
                await self.core.files.set_attributes(inode, size, {})
            except StorageError:
                assert self.broken, "an upload failed while the storage worked"

        self.run(truncate)
        content = self.contents[self.names[path]]
        del content[size:]
        content.extend(bytes(size - len(content)))

    @precondition(lambda self: self.names)
    @rule(data=st.data())
    def unlink(self, data: st.DataObject) -> None:
        path = data.draw(st.sampled_from(sorted(self.names)))

        async def unlink() -> None:
            parent, name = await self._parent(path)
            await self.core.namespace.unlink(parent, name)

        self.run(unlink)
        del self.names[path]

    # A rename sends a file being written first; while uploads fail it fails, half done for a directory.
    @precondition(lambda self: self.names and not self.broken)
    @rule(data=st.data(), name=st.sampled_from(NAMES), directory=st.sampled_from((None, *DIRECTORIES)))
    def rename_file(self, data: st.DataObject, name: str, directory: str | None) -> None:
        source = data.draw(st.sampled_from(sorted(self.names)))
        target = self._paths(name, directory)
        if (directory is not None and directory not in self.directories) or target in self.directories:
            return
        if target == source:
            return
        self._rename(source, target)
        self.names[target] = self.names.pop(source)

    @rule(directory=st.sampled_from(DIRECTORIES))
    def mkdir(self, directory: str) -> None:
        if directory in self.directories or directory in self.names:
            return

        async def mkdir() -> None:
            parent, name = await self._parent(directory)
            await self.core.namespace.mkdir(parent, name, 0o755, 1000, 1000)

        self.run(mkdir)
        self.directories.add(directory)

    @precondition(lambda self: not self.broken)
    @rule(source=st.sampled_from(DIRECTORIES), destination=st.sampled_from(DIRECTORIES))
    def rename_directory(self, source: str, destination: str) -> None:
        """Onto a free name: the files under it (open ones too) follow."""
        if source not in self.directories or destination in self.directories or destination in self.names:
            return
        self._rename(source, destination)
        self.directories = {destination if path == source else path for path in self.directories}
        self.names = {
            (destination + path[len(source) :] if path.startswith(source + "/") else path): file
            for path, file in self.names.items()
        }

    def _rename(self, source: str, target: str) -> None:
        async def rename() -> None:
            old_parent, old_name = await self._parent(source)
            new_parent, new_name = await self._parent(target)
            await self.core.namespace.rename(old_parent, old_name, new_parent, new_name, False)

        self.run(rename)

    @precondition(lambda self: not self.broken)
    @rule(count=st.integers(1, 3))
    def break_uploads(self, count: int) -> None:
        self.broken = True
        for operation in UPLOADS:
            self.storage.fail(operation, StorageError(f"{operation} refused (injected)"), count)

    @precondition(lambda self: self.broken)
    @rule()
    def repair_uploads(self) -> None:
        self.storage.clear_faults()
        self.broken = False

    # What must hold after every step -----------------------------------------------------------

    @invariant()
    def every_name_reads_as_the_model_says(self) -> None:
        async def check() -> None:
            for path, file in self.names.items():
                assert await self._read(path) == bytes(self.contents[file]), path
            for directory in self.directories:
                inode = await self._resolve(directory)
                assert inode is not None and inode.is_dir, directory

        self.run(check)

    @invariant()
    def files_not_being_written_are_in_the_bucket(self) -> None:
        stored = {stat.name: stat for stat in self.storage.list(BUCKET).objects if not stat.name.endswith("/")}
        assert set(stored) <= set(self.names), f"objects no name holds: {set(stored) - set(self.names)}"
        for path, file in self.names.items():
            inode = self.core.inodes.find(path, False)
            if inode is not None and inode.write is not None:
                continue  # still staged: its bytes are checked through the core above
            assert path in stored, f"{path}: neither staged nor in the bucket"
            assert self.storage.read_range(stored[path], 0, stored[path].size) == bytes(self.contents[file]), path

    @invariant()
    def a_file_written_and_closed_while_storage_works_has_landed(self) -> None:
        if self.broken:
            return
        open_files = {handle.file for handle in self.handles}
        for path, file in self.names.items():
            inode = self.core.inodes.find(path, False)
            if file not in open_files and inode is not None and inode.write is not None:
                assert inode.write.dirty, f"{path}: a clean session is kept with no handle"


def test_unlinking_a_file_whose_upload_is_streaming_cancels_it_off_the_loop() -> None:
    """The cancel is an HTTP DELETE with long timeouts: the loop keeps answering other requests meanwhile."""
    machine = CoreModel()
    try:
        machine.create("a", None, False)
        handle = machine.handles[0]
        machine.run(machine._write, handle, 0, bytes(SESSION_GRANULE + 7))
        deadline = time.monotonic() + 10
        while "send_part" not in machine.storage.calls:  # the feeder thread sends the first part
            assert time.monotonic() < deadline, "no part was streamed"
            time.sleep(0.01)
        machine.storage.slow("cancel_session", 0.5)
        ticks: list[float] = []

        async def unlink() -> None:
            await machine.core.namespace.unlink(machine.core.inodes[ROOT_INODE], "a")

        async def unlink_while_ticking() -> None:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(unlink)
                while nursery.child_tasks:
                    ticks.append(time.monotonic())
                    await trio.sleep(0.01)

        started = time.monotonic()
        machine.run(unlink_while_ticking)
        assert time.monotonic() - started >= 0.5, "the unlink did not wait for the cancel"
        assert max(later - earlier for earlier, later in itertools.pairwise(ticks)) < 0.25, "the loop was blocked"
        assert machine.storage.stat(BUCKET, "a") is None
    finally:
        machine.teardown()


def test_an_inode_the_kernel_forgets_keeps_the_bytes_its_failed_close_left_staged() -> None:
    """The kernel forgets an inode once no name or descriptor refers to it; bytes whose upload failed at
    close stay with it, and the next open and close of the name lands them."""
    machine = CoreModel()
    try:
        machine.create("a", None, False)
        handle = machine.handles[0]
        machine.run(machine._write, handle, 0, b"kept\n")
        machine.break_uploads(1)
        machine.close(_Draw(handle))
        machine.core.inodes.forget(handle.inode.ino, handle.inode.lookups)
        assert machine.core.inodes.find("a", False) is handle.inode
        machine.repair_uploads()
        machine.open_for_writing(_Draw("a"), False, False)
        machine.close(_Draw(machine.handles[0]))
        stat = machine.storage.require_stat(BUCKET, "a")
        assert machine.storage.read_range(stat, 0, stat.size) == b"kept\n"
        assert machine.core.inodes.writing() == []
    finally:
        machine.teardown()


class _Draw:
    """Stands in for hypothesis' data object where a rule draws one value: it draws `value`."""

    def __init__(self, value: object) -> None:
        self.value = value

    def draw(self, strategy: object) -> object:
        return self.value


@pytest.fixture
def small_appends(monkeypatch: pytest.MonkeyPatch) -> None:
    """Objects of a few KiB are appended to by compose instead of copied in, so that path runs too."""
    monkeypatch.setattr(uploader, "JOIN_MIN_BYTES", 2000)


def test_the_core_keeps_what_programs_wrote_through_renames_unlinks_and_failed_uploads(small_appends) -> None:
    run_state_machine_as_test(
        CoreModel,
        settings=settings(
            max_examples=150,
            stateful_step_count=50,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
        ),
    )
