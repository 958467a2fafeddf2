"""The lander (octuefs.core.landing) driven without FUSE, on MemoryStorage with injected faults.

Files are created, written and closed through the core while uploads fail as when the server is
away (`ServerUnavailable`), refused (`StorageError`) or beaten by another writer; the lander runs
on the test's trio loop as it runs on the daemon's, with its waits shortened so that each test
takes a second or two. What must hold: a file waiting for the server lands by itself once the
storage works, with the generation precondition of when it was opened; never in a tight loop; a
conflict goes to lost+found and the other object stays; a refused upload stays staged; an unlinked
file is never sent; a renamed one lands under its new name.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import trio

from octuefs.cache import ChunkCache
from octuefs.core import landing
from octuefs.core.inodes import ROOT_INODE, Inode
from octuefs.core.mount import MountCore
from octuefs.errors import ServerUnavailable, StorageError
from octuefs.fs.config import MountConfig
from octuefs.storage.gcs import serving
from octuefs.storage.memory import MemoryStorage
from octuefs.uploads.staging import StagingArea
from octuefs.uploads.uploader import Uploader

BUCKET = "landing-bucket"
# Generous: the machine is shared, and a lander that works lands within a few of its short waits.
PATIENCE = 10.0


@dataclass
class Rig:
    core: MountCore
    storage: MemoryStorage
    cache_dir: Path

    @property
    def staged(self) -> list[Path]:
        return sorted((self.cache_dir / "staging").glob("*.data"))

    def away(self) -> None:
        self.storage.fail("upload", ServerUnavailable("upload: server away (injected)"), None)

    def content(self, name: str) -> bytes | None:
        stat = self.storage.stat(BUCKET, name)
        return None if stat is None else self.storage.read_range(stat, 0, stat.size)

    async def written(self, name: str, data: bytes) -> Inode:
        """A new file created and written, still open (one handle)."""
        inode = await self.core.namespace.create(self.core.inodes[ROOT_INODE], name, 0o640, 1000, 1000)
        await self.core.files.write(inode, 0, data, False)
        return inode

    async def close_failing(self, inode: Inode, error: type[Exception] = ServerUnavailable) -> None:
        """close() reports the failed upload, as a program sees it (EIO)."""
        with pytest.raises(error):
            await self.core.files.release(inode)


@pytest.fixture
def rig(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Rig]:
    monkeypatch.setattr(landing, "FIRST_RETRY", 0.05)
    monkeypatch.setattr(landing, "TICK", 0.05)
    storage = MemoryStorage()
    storage.create_bucket(BUCKET)
    cache_dir = tmp_path / "cache"
    config = MountConfig(BUCKET, "", tmp_path / "mnt", cache_dir=cache_dir, storage_threads=2, landing_interval=0.2)
    cache = ChunkCache(cache_dir / "chunks", 64 * 1024 * 1024)
    uploader = Uploader(StagingArea(cache_dir / "staging"), cache, storage, config.chunk_size)
    with serving(storage):
        yield Rig(MountCore(config, storage, cache, uploader), storage, cache_dir)
    cache.close()


async def until(condition: Callable[[], bool], seconds: float = PATIENCE) -> float:
    """Seconds until `condition` held (polled on the loop, so the lander runs meanwhile)."""
    started = time.monotonic()
    while not condition():
        assert time.monotonic() - started < seconds, "condition not reached in time"
        await trio.sleep(0.01)
    return time.monotonic() - started


def with_lander(rig: Rig, body: Callable[[], Awaitable[None]]) -> None:
    """Run `body` on a trio loop where the lander runs too, as on the daemon's."""

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(rig.core.lander.run)
            await body()
            nursery.cancel_scope.cancel()

    trio.run(main)


def test_a_file_closed_while_the_server_is_away_lands_by_itself_once_it_is_back(rig: Rig) -> None:
    async def body() -> None:
        rig.away()
        await rig.close_failing(await rig.written("new.txt", b"saved offline\n"))
        assert [path.read_bytes() for path in rig.staged] == [b"saved offline\n"]
        await until(lambda: rig.storage.calls.count("upload") >= 3)  # the close's, then the lander's
        state = rig.core.lander.states()[f"gs://{BUCKET}/new.txt"]
        assert state.startswith("waiting for the server ("), state
        assert rig.content("new.txt") is None

        rig.storage.clear_faults()
        await until(lambda: rig.content("new.txt") is not None)
        await until(lambda: not rig.core.lander.states())

    with_lander(rig, body)
    stat = rig.storage.require_stat(BUCKET, "new.txt")
    assert rig.content("new.txt") == b"saved offline\n"
    assert "octue__id" in stat.metadata and stat.metadata["goog-reserved-posix-mode"] == "640"
    assert rig.staged == [] and rig.core.inodes.writing() == []


def test_attempts_back_off_while_the_server_stays_away(rig: Rig) -> None:
    """Waits double from FIRST_RETRY up to landing_interval (0.05 s to 0.2 s here): no tight loop."""

    async def body() -> None:
        rig.away()
        await rig.close_failing(await rig.written("a.txt", b"a"))
        await trio.sleep(1.5)

    with_lander(rig, body)
    attempts = rig.storage.calls.count("upload") - 1  # the close's own
    # 0.05 + 0.1 + 0.2 + 0.2 ... in 1.5 s: about 8; a tight loop would make thousands.
    assert 3 <= attempts <= 12, attempts
    assert len(rig.staged) == 1


def test_wake_lands_at_once_what_waits_for_the_server(rig: Rig, monkeypatch: pytest.MonkeyPatch) -> None:
    """The breaker's "server found again" hook: a thread calls wake(), and nobody waits out a backoff."""
    monkeypatch.setattr(landing, "FIRST_RETRY", 600.0)
    rig.core.lander.longest_wait = 600.0

    async def body() -> None:
        rig.away()
        await rig.close_failing(await rig.written("a.txt", b"first"))
        await rig.close_failing(await rig.written("b.txt", b"second"))
        await until(
            lambda: len(rig.core.lander.states()) == 2 and "in 6" in rig.core.lander.states()[f"gs://{BUCKET}/a.txt"]
        )
        rig.storage.clear_faults()
        await trio.to_thread.run_sync(rig.core.lander.wake)
        waited = await until(lambda: rig.content("a.txt") is not None and rig.content("b.txt") is not None)
        assert waited < 5.0, waited

    with_lander(rig, body)
    assert (rig.content("a.txt"), rig.content("b.txt")) == (b"first", b"second")


@pytest.mark.parametrize("existing", [False, True], ids=["new-name", "overwritten-object"])
def test_a_conflict_goes_to_lost_and_found_and_the_other_object_stays(
    rig: Rig, existing: bool, caplog: pytest.LogCaptureFixture
) -> None:
    """The landing upload carries ifGenerationMatch of when the file was opened (0 for a new name): another
    client's object made meanwhile is never replaced."""
    theirs_path = rig.cache_dir / "theirs.txt"
    theirs_path.write_bytes(b"theirs\n")

    async def body() -> None:
        if existing:
            rig.storage.upload(BUCKET, "data.txt", theirs_path, "text/plain", {}, 0)
            inode = await rig.core.namespace.lookup(rig.core.inodes[ROOT_INODE], "data.txt")
            assert inode is not None
            await rig.core.files.open_for_writing(inode, True)
            await rig.core.files.write(inode, 0, b"ours\n", False)
        else:
            inode = await rig.written("data.txt", b"ours\n")
        rig.away()
        await rig.close_failing(inode)
        rig.storage.clear_faults()
        theirs = rig.storage.upload(
            BUCKET,
            "data.txt",
            theirs_path,
            "text/plain",
            {"by": "them"},
            0 if not existing else rig.storage.require_stat(BUCKET, "data.txt").generation,
        )
        await until(lambda: rig.core.inodes.writing() == [])
        assert (await rig.core.files.fresh(inode)).cloud_stat == theirs, "the mount does not show their object"

    with caplog.at_level(logging.WARNING, logger="octuefs.core.landing"):
        with_lander(rig, body)
    assert rig.content("data.txt") == b"theirs\n"
    kept = list((rig.cache_dir / "lost+found").glob("*-data.txt"))
    assert [path.read_bytes() for path in kept] == [b"ours\n"]
    line = next(record.getMessage() for record in caplog.records if "lost+found" in record.getMessage())
    assert f"gs://{BUCKET}/data.txt changed since these bytes were staged" in line and str(kept[0]) in line
    assert rig.staged == []


def test_a_refused_upload_stays_staged_and_is_tried_again_rarely(rig: Rig, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(landing, "REFUSED_RETRY", 0.5)

    async def body() -> None:
        rig.storage.fail("upload", StorageError("server refused to upload it: 403 Forbidden (injected)"), None)
        await rig.close_failing(await rig.written("a.txt", b"kept"), StorageError)
        await trio.sleep(1.2)
        state = rig.core.lander.states()[f"gs://{BUCKET}/a.txt"]
        assert state.startswith("refused (server refused to upload it: 403"), state
        assert [path.read_bytes() for path in rig.staged] == [b"kept"]
        assert rig.storage.calls.count("upload") <= 4, rig.storage.calls  # the close's, then one each 0.5 s
        rig.storage.clear_faults()
        await until(lambda: rig.content("a.txt") == b"kept")

    with_lander(rig, body)
    assert rig.staged == []


def test_an_unlinked_file_is_never_landed(rig: Rig, caplog: pytest.LogCaptureFixture) -> None:
    async def body() -> None:
        rig.away()
        await rig.close_failing(await rig.written("gone.txt", b"never"))
        await rig.close_failing(await rig.written("kept.txt", b"landed"))
        await rig.core.namespace.unlink(rig.core.inodes[ROOT_INODE], "gone.txt")
        assert list(rig.core.lander.states()) == [f"gs://{BUCKET}/kept.txt"]
        rig.storage.clear_faults()
        await until(lambda: rig.content("kept.txt") is not None)

    with caplog.at_level(logging.INFO, logger="octuefs"):
        with_lander(rig, body)
    assert rig.content("gone.txt") is None
    sent = [record.getMessage() for record in caplog.records if "gone.txt" in record.getMessage()]
    assert len(sent) == 1 and "upload failed" in sent[0], sent  # only the close's, before the unlink
    assert rig.staged == []


def test_a_renamed_file_lands_under_its_new_name(rig: Rig, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(landing, "FIRST_RETRY", 600.0)
    rig.core.lander.longest_wait = 600.0

    async def body() -> None:
        root = rig.core.inodes[ROOT_INODE]
        rig.away()
        await rig.close_failing(await rig.written("draft.txt", b"final"))
        rig.storage.clear_faults()
        await rig.core.namespace.rename(root, "draft.txt", root, "final.txt", False)
        await trio.sleep(0.3)

    with_lander(rig, body)
    assert (rig.content("draft.txt"), rig.content("final.txt")) == (None, b"final")
    assert rig.staged == [] and rig.core.lander.states() == {}


def test_a_file_open_again_is_its_handles_business(rig: Rig) -> None:
    """Reopened, its own close sends it; the lander leaves a file some handle holds alone."""

    async def body() -> None:
        rig.away()
        inode = await rig.written("a.txt", b"one")
        await rig.close_failing(inode)
        await rig.core.files.open_for_writing(inode, False)
        assert rig.core.lander.states() == {f"gs://{BUCKET}/a.txt": "open for writing"}
        rig.storage.clear_faults()
        await trio.sleep(0.5)
        assert rig.content("a.txt") is None
        await rig.core.files.write(inode, 3, b" two", False)
        await rig.core.files.release(inode)

    with_lander(rig, body)
    assert rig.content("a.txt") == b"one two"


def test_an_unexpected_error_in_one_upload_does_not_end_the_lander(rig: Rig, monkeypatch: pytest.MonkeyPatch) -> None:
    """The lander runs in the daemon's nursery: an exception escaping it would take the mount down."""
    monkeypatch.setattr(landing, "REFUSED_RETRY", 0.2)
    upload = rig.core.files.uploader.upload
    broken = iter([True])

    def upload_once_broken(*args):  # type: ignore[no-untyped-def]
        if next(broken, False):
            raise RuntimeError("a bug (injected)")
        return upload(*args)

    async def body() -> None:
        rig.away()
        await rig.close_failing(await rig.written("a.txt", b"survives"))
        monkeypatch.setattr(rig.core.files.uploader, "upload", upload_once_broken)
        rig.storage.clear_faults()
        await until(lambda: rig.content("a.txt") == b"survives")

    with_lander(rig, body)


def test_creating_a_file_sends_nothing_that_needs_the_server(rig: Rig) -> None:
    """Also a save by an editor that renamed the old file away first (the new file takes its identity,
    which the rename made known): create sends no request, so it works while the server is away."""
    away = ServerUnavailable("server away (injected)")

    async def body() -> None:
        root = rig.core.inodes[ROOT_INODE]
        await rig.core.files.release(await rig.written("notes.txt", b"v1"))
        identity = rig.storage.require_stat(BUCKET, "notes.txt").metadata["octue__id"]
        await rig.core.namespace.rename(root, "notes.txt", root, "notes.txt~", False)
        for operation in ("stat", "list", "upload", "copy", "delete", "read_range", "start_upload"):
            rig.storage.fail(operation, away, None)
        calls = len(rig.storage.calls)
        saved = await rig.core.namespace.create(root, "notes.txt", 0o644, 1000, 1000)
        fresh = await rig.core.namespace.create(root, "other.txt", 0o644, 1000, 1000)
        assert rig.storage.calls[calls:] == [], rig.storage.calls[calls:]
        await rig.core.files.write(saved, 0, b"v2", False)
        await rig.close_failing(saved)
        await rig.close_failing(fresh)
        rig.storage.clear_faults()
        await until(lambda: rig.content("notes.txt") == b"v2" and rig.content("other.txt") == b"")
        assert rig.storage.require_stat(BUCKET, "notes.txt").metadata["octue__id"] == identity

    with_lander(rig, body)


def test_a_conflict_that_cannot_be_set_aside_stays_staged_and_the_lander_goes_on(rig: Rig) -> None:
    """lost+found unusable (here a file stands where its directory should be): the bytes stay staged,
    shown as refused, and the lander (with it the mount) keeps landing other files."""
    (rig.cache_dir / "lost+found").write_bytes(b"not a directory")
    theirs_path = rig.cache_dir / "theirs.txt"
    theirs_path.write_bytes(b"theirs\n")

    async def body() -> None:
        rig.away()
        await rig.close_failing(await rig.written("clash.txt", b"ours\n"))
        await rig.close_failing(await rig.written("other.txt", b"other\n"))
        rig.storage.clear_faults()
        rig.storage.upload(BUCKET, "clash.txt", theirs_path, "text/plain", {}, 0)
        await until(lambda: rig.content("other.txt") == b"other\n")
        await until(lambda: rig.core.lander.states()[f"gs://{BUCKET}/clash.txt"].startswith("refused ("))

    with_lander(rig, body)
    assert rig.content("clash.txt") == b"theirs\n"
    assert [path.read_bytes() for path in rig.staged] == [b"ours\n"]
