"""Directories' mode, owner, group and times on their placeholder objects, through the mount's core
(no FUSE) on the real server, checked from both sides with google-cloud-storage: the keys octuefs
writes on `dir/` are gsutil's, and a placeholder another client wrote in that form is shown here.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import trio

from octuefs.cache import ChunkCache
from octuefs.core.inodes import ROOT_INODE, Inode
from octuefs.core.mount import MountCore
from octuefs.fs.config import MountConfig
from octuefs.storage.gcs import get_storage
from octuefs.uploads.staging import StagingArea
from octuefs.uploads.uploader import Uploader

UID, GID = 1234, 5678
STORED_MTIME = 1500000000


def make_core(bucket_name: str, tmp_path: Path, **options: object) -> MountCore:
    storage = get_storage()
    config = MountConfig(bucket_name, "", tmp_path / "mnt", **options)  # type: ignore[arg-type]
    cache = ChunkCache(tmp_path / "cache", 64 * 1024 * 1024)
    uploader = Uploader(StagingArea(tmp_path / "staging"), cache, storage, config.chunk_size)
    return MountCore(config, storage, cache, uploader)


@pytest.fixture
def core(bucket, tmp_path: Path) -> Iterator[MountCore]:
    core = make_core(bucket.name, tmp_path, trust_stored_owners=True)
    yield core
    core.cache.close()


async def looked_up(core: MountCore, name: str) -> Inode:
    inode = await core.namespace.lookup(core.inodes[ROOT_INODE], name)
    assert inode is not None, name
    return inode


def test_mkdir_stores_its_mode_and_owner_on_the_placeholder_in_gsutils_keys(core, bucket) -> None:
    trio.run(core.namespace.mkdir, core.inodes[ROOT_INODE], "made", 0o1750, UID, GID)

    blob = bucket.get_blob("made/")
    assert blob is not None and blob.size == 0
    assert blob.metadata == {
        "goog-reserved-posix-mode": "1750",
        "goog-reserved-posix-uid": str(UID),
        "goog-reserved-posix-gid": str(GID),
    }


def test_chmod_of_a_bare_prefix_makes_its_placeholder_with_the_mode_and_ctime(core, bucket) -> None:
    bucket.blob("implicit/file.txt").upload_from_string(b"data")
    assert bucket.get_blob("implicit/") is None

    async def scenario() -> None:
        inode = await looked_up(core, "implicit")
        await core.directories.set_attributes(
            inode, {"goog-reserved-posix-mode": "700", "octuefs-posix-ctime": "1700000000"}
        )
        await core.directories.set_attributes(inode, {"goog-reserved-file-mtime": str(STORED_MTIME)})

    trio.run(scenario)
    assert bucket.get_blob("implicit/").metadata == {
        "goog-reserved-posix-mode": "700",
        "octuefs-posix-ctime": "1700000000",
        "goog-reserved-file-mtime": str(STORED_MTIME),
    }
    assert bucket.get_blob("implicit/file.txt").download_as_bytes() == b"data"


def test_a_placeholder_another_client_wrote_gives_the_directory_its_attributes(bucket, tmp_path) -> None:
    placeholder = bucket.blob("theirs/")
    placeholder.metadata = {
        "goog-reserved-posix-mode": "1770",
        "goog-reserved-posix-uid": "1001",
        "goog-reserved-posix-gid": "1002",
        "goog-reserved-file-mtime": str(STORED_MTIME),
    }
    placeholder.upload_from_string(b"")
    bucket.blob("theirs/inside.txt").upload_from_string(b"x")

    async def shown(core: MountCore) -> tuple[int, int, int, int]:
        attributes = core.directories.attributes(await looked_up(core, "theirs"))
        return attributes.mode, attributes.uid, attributes.gid, attributes.mtime_ns // 10**9

    trusting = make_core(bucket.name, tmp_path / "trusting", trust_stored_owners=True, uid=4321, gid=4322)
    assert trio.run(shown, trusting) == (0o1770, 1001, 1002, STORED_MTIME)
    # Not trusted: the mount's owner, and the stored mode only as far as it takes away from dir_mode.
    untrusting = make_core(bucket.name, tmp_path / "untrusting", uid=4321, gid=4322, dir_mode=0o755)
    assert trio.run(shown, untrusting) == (0o750, 4321, 4322, STORED_MTIME)
    for made in (trusting, untrusting):
        made.cache.close()


def test_a_directory_listing_brings_its_subdirectories_placeholders_in_one_request(core, bucket, proxy) -> None:
    for name in ("one", "two"):
        placeholder = bucket.blob(f"parent/{name}/")
        placeholder.metadata = {"goog-reserved-posix-mode": "711"}
        placeholder.upload_from_string(b"")
    bucket.blob("parent/three/file").upload_from_string(b"x")

    async def scenario() -> list[tuple[str, int]]:
        parent = await looked_up(core, "parent")
        proxy.reset()
        entries = await core.namespace.entries(parent)
        shown = []
        for entry in entries:
            inode = core.namespace.adopt(f"parent/{entry.name}", entry)
            shown.append((entry.name, core.directories.attributes(inode).mode))
        return shown

    assert trio.run(scenario) == [("one", 0o711), ("three", 0o755), ("two", 0o711)]
    assert proxy.kinds() == ["list"]


def test_a_placeholder_value_no_attribute_can_hold_shows_the_mounts_and_is_reported_once(core, bucket, caplog) -> None:
    placeholder = bucket.blob("odd/")
    placeholder.metadata = {"goog-reserved-posix-mode": "99999999999", "goog-reserved-posix-uid": "-1"}
    placeholder.upload_from_string(b"")

    async def scenario() -> list[tuple[int, int]]:
        inode = await looked_up(core, "odd")
        return [(core.directories.attributes(inode).mode, core.directories.attributes(inode).uid) for _ in range(2)]

    assert trio.run(scenario) == [(0o755, core.config.uid)] * 2
    reports = [record.getMessage() for record in caplog.records if "out of range" in record.getMessage()]
    assert len(reports) == 1 and f"gs://{bucket.name}/odd/" in reports[0]
