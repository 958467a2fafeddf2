"""Stale-if-error in the core (octuefs.core), driven without FUSE on MemoryStorage: while the storage
raises ServerUnavailable, lookups, listings and file views past their TTL are what was last known,
names never seen fail, and only unavailability falls back (a missing object or a refusal does not).

The metadata TTL is 0, so every access is past it and asks the storage first. Through a real mount
and server: tests/mount/test_stale_if_error.py.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import trio

from octuefs.cache import ChunkCache
from octuefs.core.inodes import ROOT_INODE, Inode
from octuefs.core.mount import MountCore
from octuefs.core.stale import StaleKnowledge
from octuefs.errors import CloudObjectNotFound, ServerUnavailable, StorageError
from octuefs.fs import dirs
from octuefs.fs.config import MountConfig
from octuefs.fs.dirs import DirectoryCache, Listing
from octuefs.reader import ObjectReader
from octuefs.storage.gcs import serving
from octuefs.storage.memory import MemoryStorage
from octuefs.uploads.staging import StagingArea
from octuefs.uploads.uploader import Uploader

BUCKET = "stale-bucket"
# What a refresh of a file or a directory asks the storage.
REFRESHES = ("stat", "list")
STALE = "served stale"


@dataclass
class Offline:
    """A core on a storage that can be made unreachable."""

    core: MountCore
    storage: MemoryStorage
    directory: Path

    def put(self, name: str, data: bytes) -> None:
        source = self.directory / "upload"
        source.write_bytes(data)
        current = self.storage.stat(BUCKET, name)
        self.storage.upload(BUCKET, name, source, "application/octet-stream", {}, current.generation if current else 0)

    def down(self, *operations: str) -> None:
        for operation in operations or (*REFRESHES, "read_range"):
            self.storage.fail(operation, ServerUnavailable(f"{operation}: connection reset (injected)"), count=None)

    def up(self) -> None:
        self.storage.clear_faults()

    def run(self, function, *args):  # type: ignore[no-untyped-def]
        return trio.run(function, *args)

    @property
    def root(self) -> Inode:
        return self.core.inodes[ROOT_INODE]

    def lookup(self, parent: Inode, name: str) -> Inode | None:
        return self.run(self.core.namespace.lookup, parent, name)

    def names(self, directory: Inode) -> list[str]:
        return [entry.name for entry in self.run(self.core.namespace.entries, directory)]

    def generation(self, inode: Inode) -> int:
        stat = self.run(self.core.files.fresh, inode).cloud_stat
        assert stat is not None
        return stat.generation


@contextlib.contextmanager
def offline_core(tmp_path: Path, stale_if_error: float = float("inf")) -> Iterator[Offline]:
    storage = MemoryStorage()
    storage.create_bucket(BUCKET)
    config = MountConfig(BUCKET, "", tmp_path / "mnt", metadata_ttl=0.0, stale_if_error=stale_if_error)
    cache = ChunkCache(tmp_path / "cache", 64 * 1024 * 1024)
    uploader = Uploader(StagingArea(tmp_path / "staging"), cache, storage, config.chunk_size)
    try:
        with serving(storage):
            yield Offline(MountCore(config, storage, cache, uploader), storage, tmp_path)
    finally:
        cache.close()


@pytest.fixture
def offline(tmp_path: Path) -> Iterator[Offline]:
    with offline_core(tmp_path) as made:
        yield made


def stale_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [record.getMessage() for record in caplog.records if STALE in record.getMessage()]


def test_a_listed_directory_answers_from_its_last_listing_and_says_so_once(offline, caplog):
    offline.put("data/a.txt", b"a")
    offline.put("data/b.txt", b"b")
    data = offline.lookup(offline.root, "data")
    assert data is not None and data.is_dir
    assert offline.names(data) == ["a.txt", "b.txt"]
    known = offline.lookup(data, "a.txt")
    assert known is not None

    offline.down()
    caplog.set_level(logging.INFO)
    asked_before = len(offline.storage.calls)
    for _ in range(3):
        assert offline.names(data) == ["a.txt", "b.txt"]
        assert offline.lookup(data, "a.txt") is known
        assert offline.lookup(data, "new.txt") is None  # absent from what is known: free for a new file
    assert offline.storage.calls[asked_before:].count("list") >= 3  # the server was asked each time first
    (line,) = stale_lines(caplog)
    assert line.startswith(f"gs://{BUCKET}/data/: served stale")


def test_a_file_past_its_ttl_is_its_last_known_view_while_down(offline, caplog):
    offline.put("f.bin", b"first")
    inode = offline.lookup(offline.root, "f.bin")
    assert inode is not None
    generation = offline.generation(inode)

    offline.down()
    caplog.set_level(logging.INFO)
    assert offline.generation(inode) == generation
    assert offline.generation(inode) == generation
    (line,) = stale_lines(caplog)
    assert line.startswith(f"gs://{BUCKET}/f.bin: served stale")


def test_a_directory_never_listed_and_a_name_never_seen_fail_while_down(offline):
    offline.put("listed/a", b"a")
    offline.put("never/b", b"b")
    assert offline.names(offline.root) == ["listed", "never"]
    never = offline.lookup(offline.root, "never")
    assert never is not None

    offline.down()
    with pytest.raises(ServerUnavailable):
        offline.names(never)
    with pytest.raises(ServerUnavailable):
        offline.lookup(never, "b")


def test_a_name_probed_but_never_listed_is_served_from_its_inode_while_down(offline):
    offline.put("deep/dir/file.txt", b"x")
    directory = offline.lookup(offline.root, "deep")  # the root is never listed: names are probed
    assert directory is not None
    inner = offline.lookup(directory, "dir")
    assert inner is not None
    file = offline.lookup(inner, "file.txt")
    assert file is not None
    assert offline.core.dirs.last("") is None and offline.core.dirs.last("deep/dir") is None

    offline.down()
    assert offline.lookup(offline.root, "deep") is directory
    assert offline.lookup(directory, "dir") is inner
    assert offline.lookup(inner, "file.txt") is file
    with pytest.raises(ServerUnavailable):
        offline.lookup(inner, "never-seen.txt")


def test_a_file_being_written_is_found_without_asking_the_server(offline):
    created = offline.run(offline.core.namespace.create, offline.root, "new.txt", 0o644, 0, 0)
    offline.down()
    calls = len(offline.storage.calls)
    assert offline.lookup(offline.root, "new.txt") is created
    assert len(offline.storage.calls) == calls


def test_only_an_unavailable_server_falls_back(offline):
    offline.put("gone.txt", b"g")
    offline.put("refused.txt", b"r")
    gone = offline.lookup(offline.root, "gone.txt")
    refused = offline.lookup(offline.root, "refused.txt")
    assert gone is not None and refused is not None
    assert offline.names(offline.root) == ["gone.txt", "refused.txt"]

    offline.storage.delete(BUCKET, "gone.txt", None)
    with pytest.raises(CloudObjectNotFound):
        offline.generation(gone)
    offline.storage.fail("stat", StorageError("stat: server refused: 403 (injected)"), count=None)
    offline.storage.fail("list", StorageError("list: server refused: 403 (injected)"), count=None)
    with pytest.raises(StorageError) as raised:
        offline.generation(refused)
    assert not isinstance(raised.value, ServerUnavailable)
    with pytest.raises(StorageError) as raised:
        offline.names(offline.root)
    assert not isinstance(raised.value, ServerUnavailable)


def test_once_the_server_is_back_the_next_access_refreshes(offline, caplog):
    offline.put("data/a.txt", b"old")
    data = offline.lookup(offline.root, "data")
    assert data is not None
    assert offline.names(data) == ["a.txt"]
    file = offline.lookup(data, "a.txt")
    assert file is not None
    old = offline.generation(file)
    offline.down()
    caplog.set_level(logging.INFO)
    assert offline.names(data) == ["a.txt"]
    assert offline.generation(file) == old

    offline.up()
    offline.put("data/a.txt", b"new")
    offline.put("data/b.txt", b"b")
    assert offline.names(data) == ["a.txt", "b.txt"]
    assert offline.generation(file) > old
    assert any("answers again" in record.getMessage() for record in caplog.records)

    caplog.clear()
    offline.down()
    assert offline.names(data) == ["a.txt", "b.txt"]
    assert len(stale_lines(caplog)) == 1  # a new outage is logged again


def test_cached_bytes_of_the_known_generation_read_while_down_and_others_fail(offline):
    content = b"0123456789" * 100_000
    offline.put("cached.bin", content)
    offline.put("uncached.bin", content)
    assert offline.names(offline.root) == ["cached.bin", "uncached.bin"]
    cached, uncached = offline.lookup(offline.root, "cached.bin"), offline.lookup(offline.root, "uncached.bin")
    assert cached is not None and uncached is not None
    core = offline.core

    def reader(inode: Inode) -> ObjectReader:
        stat = offline.run(core.files.fresh, inode).cloud_stat
        assert stat is not None
        return ObjectReader(stat, core.cache, offline.storage, core.config.chunk_size)

    assert reader(cached).read(0, len(content)) == content
    offline.down()
    assert reader(cached).read(0, len(content)) == content
    with pytest.raises(ServerUnavailable):
        reader(uncached).read(0, 10)


def test_knowledge_older_than_the_limit_is_not_served(tmp_path):
    with offline_core(tmp_path, stale_if_error=0.0) as offline:
        offline.put("a.txt", b"a")
        file = offline.lookup(offline.root, "a.txt")
        assert file is not None and offline.names(offline.root) == ["a.txt"]
        offline.down()
        with pytest.raises(ServerUnavailable):
            offline.generation(file)
        with pytest.raises(ServerUnavailable):
            offline.names(offline.root)
    now = time.monotonic()
    knowledge = StaleKnowledge(ttl=1.0, limit=5.0)
    assert knowledge.usable(now - 5.5)
    assert not knowledge.usable(now - 6.5)


def test_listings_kept_are_bounded_dropping_the_least_recently_used(monkeypatch):
    monkeypatch.setattr(dirs, "LISTED_ENTRIES_KEPT", 10)
    cache = DirectoryCache(MemoryStorage(), BUCKET, "", ttl=0.0)

    def listing(count: int) -> Listing:
        return Listing({f"n{index}": dirs.DirEntry(f"n{index}", False) for index in range(count)}, time.monotonic())

    for path in ("a", "b", "c"):
        cache.keep(path, listing(4), cache.start_listing(path))
    assert cache.last("a") is None  # 12 entries: the oldest went
    assert cache.last("b") is not None  # used now: "c" is the least recently used
    cache.keep("d", listing(4), cache.start_listing("d"))
    assert cache.last("c") is None
    assert cache.last("b") is not None and cache.last("d") is not None
    cache.keep("huge", listing(50), cache.start_listing("huge"))
    assert cache.cached_paths() == ["huge"]  # one listing over the bound is kept alone
