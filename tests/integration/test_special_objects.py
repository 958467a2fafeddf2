"""Symbolic links and special files as objects, through the mount's core (no FUSE) on the real server.

Other tools must read what the mount writes and the mount what they write, so each form is checked
from both sides with google-cloud-storage: gcsfuse's links (both its current form, the target as the
content, and its older one, the target in metadata only) and the typed mode of FIFOs and devices.
"""

from __future__ import annotations

import os
import stat as stat_module
from collections.abc import Iterator
from pathlib import Path

import pytest
import trio

from octuefs.cache import ChunkCache
from octuefs.core.inodes import ROOT_INODE, Inode
from octuefs.core.mount import MountCore
from octuefs.errors import AlreadyExists, InvalidInputException, NameTooLong
from octuefs.fs import posix
from octuefs.fs.config import MountConfig
from octuefs.storage.gcs import get_storage
from octuefs.uploads.staging import StagingArea
from octuefs.uploads.uploader import Uploader

UID, GID = 1234, 5678


@pytest.fixture
def core(bucket, tmp_path: Path) -> Iterator[MountCore]:
    storage = get_storage()
    config = MountConfig(bucket.name, "", tmp_path / "mnt", trust_stored_owners=True)
    cache = ChunkCache(tmp_path / "cache", 64 * 1024 * 1024)
    uploader = Uploader(StagingArea(tmp_path / "staging"), cache, storage, config.chunk_size)
    yield MountCore(config, storage, cache, uploader)
    cache.close()


def root(core: MountCore) -> Inode:
    return core.inodes[ROOT_INODE]


async def looked_up(core: MountCore, name: str) -> Inode:
    inode = await core.namespace.lookup(root(core), name)
    assert inode is not None, name
    return inode


def test_a_link_is_stored_as_gcsfuse_stores_it(core, bucket) -> None:
    trio.run(core.namespace.symlink, root(core), "link", b"../data/target.csv", UID, GID)

    blob = bucket.get_blob("link")
    assert blob.download_as_bytes() == b"../data/target.csv"
    assert blob.metadata == {
        "goog-reserved-file-is-symlink": "true",
        "gcsfuse_symlink_target": "../data/target.csv",
        "goog-reserved-posix-uid": str(UID),
        "goog-reserved-posix-gid": str(GID),
    }


def test_a_target_that_is_not_utf8_is_kept_in_the_content_only(core, bucket) -> None:
    async def scenario() -> bytes:
        await core.namespace.symlink(root(core), "odd", b"caf\xe9", UID, GID)
        return await core.links.target(await looked_up(core, "odd"))

    assert trio.run(scenario) == b"caf\xe9"
    blob = bucket.get_blob("odd")
    assert blob.download_as_bytes() == b"caf\xe9"
    assert "gcsfuse_symlink_target" not in blob.metadata
    assert blob.metadata["goog-reserved-file-is-symlink"] == "true"


@pytest.mark.parametrize(
    ("content", "metadata"),
    [
        (b"dir/file.txt", {"goog-reserved-file-is-symlink": "true"}),  # gcsfuse 3.9 on, other GCS tools
        (b"", {"gcsfuse_symlink_target": "dir/file.txt"}),  # gcsfuse before 3.9
    ],
    ids=["target-in-content", "target-in-metadata"],
)
def test_a_link_another_client_wrote_is_a_link_here(core, bucket, content, metadata) -> None:
    blob = bucket.blob("made-elsewhere")
    blob.metadata = metadata
    blob.upload_from_string(content)

    async def scenario() -> tuple[int, int, bytes]:
        inode = await looked_up(core, "made-elsewhere")
        shown = await core.links.target(inode)
        assert inode.stat is not None
        custom = inode.stat.metadata
        return posix.file_type(custom), posix.link_size(custom, inode.stat.size), shown

    assert trio.run(scenario) == (stat_module.S_IFLNK, len(b"dir/file.txt"), b"dir/file.txt")


def test_a_link_is_made_only_where_the_name_is_free(core, bucket) -> None:
    bucket.blob("taken").upload_from_string(b"a file")
    with pytest.raises(AlreadyExists):
        trio.run(core.namespace.symlink, root(core), "taken", b"elsewhere", UID, GID)
    assert bucket.get_blob("taken").download_as_bytes() == b"a file"


def test_a_fifo_and_a_device_carry_their_type_and_mode(core, bucket) -> None:
    async def scenario() -> None:
        await core.namespace.mknod(root(core), "pipe", stat_module.S_IFIFO | 0o640, 0, UID, GID)
        await core.namespace.mknod(root(core), "tty", stat_module.S_IFCHR | 0o600, os.makedev(4, 1), UID, GID)

    trio.run(scenario)
    pipe, device = bucket.get_blob("pipe"), bucket.get_blob("tty")
    assert (pipe.size, pipe.metadata["goog-reserved-posix-mode"]) == (0, "10640")
    assert "octuefs-posix-rdev" not in pipe.metadata
    assert device.metadata["goog-reserved-posix-mode"] == "20600"
    assert device.metadata["octuefs-posix-rdev"] == str(os.makedev(4, 1))
    assert (device.metadata["goog-reserved-posix-uid"], device.metadata["goog-reserved-posix-gid"]) == ("1234", "5678")


def test_a_fifo_another_client_wrote_is_a_fifo_here(core, bucket) -> None:
    blob = bucket.blob("their-pipe")
    blob.metadata = {"goog-reserved-posix-mode": "10600"}
    blob.upload_from_string(b"")

    async def scenario() -> Inode:
        return await looked_up(core, "their-pipe")

    inode = trio.run(scenario)
    assert inode.stat is not None
    assert posix.file_type(inode.stat.metadata) == stat_module.S_IFIFO
    size, attributes = core.files.attributes(inode)
    assert (size, attributes.mode) == (0, 0o600)


@pytest.mark.parametrize(
    ("content", "refusal"),
    [(b"x" * 5_000_000, NameTooLong), (b"/etc\0/passwd", InvalidInputException)],
    ids=["longer-than-PATH_MAX", "with-NUL"],
)
def test_a_link_no_kernel_could_hold_is_refused(core, bucket, proxy, content, refusal) -> None:
    """Whoever writes the bucket can call any object a link: one over PATH_MAX is refused unread."""
    blob = bucket.blob("hostile")
    blob.metadata = {"goog-reserved-file-is-symlink": "true"}
    blob.upload_from_string(content)

    async def scenario() -> bytes:
        return await core.links.target(await looked_up(core, "hostile"))

    proxy.reset()
    with pytest.raises(refusal, match="hostile"):
        trio.run(scenario)
    assert sum(request.response_bytes for request in proxy.requests) < 100_000
