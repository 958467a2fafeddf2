"""Renaming a directory moves every object under it: the files below must follow at once.

The kernel keeps its entries and inode numbers for the moved files for the metadata TTL (60 s here),
so they are asked about by number, not looked up again by their new names: the mount itself must
point each of them at its new object. Uploads aimed at the old names would fail their generation
precondition, and their bytes would end in `lost+found` at the next mount.
"""

from __future__ import annotations

import errno
import os

import pytest

pytestmark = pytest.mark.timeout(120)

MiB = 1024 * 1024


def lost_and_found(mounted) -> list[str]:
    kept = mounted.cache_dir / "lost+found"
    return sorted(os.listdir(kept)) if kept.exists() else []


def append(path, data: bytes) -> None:
    with open(path, "ab") as file:
        file.write(data)


def test_files_under_a_renamed_directory_are_read_appended_and_rewritten(mount, bucket):
    mounted = mount()
    mounted.call(os.mkdir, mounted / "a")
    mounted.sh("sh", "-c", f"echo v1 > {mounted / 'a/f'}")
    mounted.sh("sh", "-c", f"echo kept > {mounted / 'a/g'}")
    mounted.sh("mv", mounted / "a", mounted / "b")

    assert mounted.sh("cat", mounted / "b/f").stdout == b"v1\n"
    mounted.sh("sh", "-c", f"echo x >> {mounted / 'b/f'}")
    assert mounted.read_bytes("b/f") == b"v1\nx\n"
    mounted.sh("sh", "-c", f"echo v2 > {mounted / 'b/g'}")
    assert mounted.read_bytes("b/g") == b"v2\n"

    assert bucket.blob("b/f").download_as_bytes() == b"v1\nx\n"
    assert bucket.blob("b/g").download_as_bytes() == b"v2\n"
    assert sorted(blob.name for blob in bucket.list_blobs()) == ["b/", "b/f", "b/g"]
    assert mounted.unmount().returncode == 0
    again = mount(cache_dir=mounted.cache_dir)
    assert again.read_bytes("b/f") == b"v1\nx\n" and again.read_bytes("b/g") == b"v2\n"
    assert lost_and_found(again) == []


def test_files_in_nested_directories_follow_a_rename_of_their_ancestor(mount, bucket):
    mounted = mount()
    mounted.call(os.makedirs, mounted / "n1/n2")
    mounted.sh("sh", "-c", f"echo deep > {mounted / 'n1/n2/f'}")
    assert mounted.read_bytes("n1/n2/f") == b"deep\n"
    mounted.sh("mv", mounted / "n1", mounted / "m1")

    assert mounted.read_bytes("m1/n2/f") == b"deep\n"
    mounted.sh("sh", "-c", f"echo more >> {mounted / 'm1/n2/f'}")
    mounted.sh("mv", mounted / "m1/n2", mounted / "m1/n3")
    mounted.sh("sh", "-c", f"echo new > {mounted / 'm1/n3/f'}")

    assert mounted.read_bytes("m1/n3/f") == b"new\n"
    assert bucket.blob("m1/n3/f").download_as_bytes() == b"new\n"
    assert not bucket.blob("n1/n2/f").exists() and not bucket.blob("m1/n2/f").exists()
    with pytest.raises(FileNotFoundError):
        mounted.call(os.stat, mounted / "n1/n2/f")


def test_a_sequence_of_renames_and_writes_leaves_the_right_bytes_for_a_fresh_mount(mount, bucket):
    """As the write model would run it: files staying open for writing across the renames of their
    directories, with reads, appends and rewrites between, then a new mount with the same cache."""
    mounted = mount()
    mounted.call(os.makedirs, mounted / "d/e")
    for name, content in (("d/one", b"1"), ("d/e/two", b"2"), ("d/three", b"3")):
        mounted.call((mounted / name).write_bytes, content)
    held = mounted.call(os.open, mounted / "d/three", os.O_RDWR)
    mounted.call(os.fsync, held)

    mounted.call(os.rename, mounted / "d", mounted / "x")
    assert mounted.read_bytes("x/e/two") == b"2"
    mounted.call(append, mounted / "x/one", b"+a")
    mounted.call(os.pwrite, held, b"3+held", 0)
    mounted.call(os.rename, mounted / "x/e", mounted / "x/f")
    mounted.call((mounted / "x/f/two").write_bytes, b"2+rewritten")
    mounted.call(os.rename, mounted / "x", mounted / "y")
    assert mounted.call(os.pread, held, 100, 0) == b"3+held"
    mounted.call(os.close, held)

    expected = {"y/one": b"1+a", "y/f/two": b"2+rewritten", "y/three": b"3+held"}
    for name, content in expected.items():
        assert mounted.read_bytes(name) == content, name
    files = {blob.name for blob in bucket.list_blobs() if not blob.name.endswith("/")}
    assert files == set(expected)
    assert mounted.unmount().returncode == 0
    again = mount(cache_dir=mounted.cache_dir)
    for name, content in expected.items():
        assert again.read_bytes(name) == content, name
        assert bucket.blob(name).download_as_bytes() == content, name
    assert lost_and_found(again) == []
    assert "changed by another writer" not in mounted.log + again.log


def test_a_directory_renamed_right_after_a_close_in_it_is_not_busy(mount, bucket):
    """close() returns once FLUSH has uploaded the file; its RELEASE arrives later. A rename of the
    directory meanwhile must not answer EBUSY: nothing is left to upload. The listing just before
    lets the rename find both names without a request, so it often overtakes the RELEASE."""
    mounted = mount()
    mounted.call(os.mkdir, mounted / "d0")
    for number in range(40):
        mounted.call(os.listdir, mounted.path)
        mounted.call((mounted / f"d{number}/f").write_bytes, b"round %d" % number)
        try:
            mounted.call(os.rename, mounted / f"d{number}", mounted / f"d{number + 1}")
        except OSError as error:
            assert error.errno != errno.EBUSY, f"round {number}: EBUSY"
            raise
    assert mounted.read_bytes("d40/f") == b"round 39"
    assert bucket.blob("d40/f").download_as_bytes() == b"round 39"


def test_a_file_open_for_reading_keeps_reading_after_its_directory_is_renamed(mount, bucket):
    content = os.urandom(3 * MiB)
    bucket.blob("a/big.bin").upload_from_string(content)
    bucket.blob("c/small.txt").upload_from_string(b"small\n")
    mounted = mount()
    reader = mounted.call(os.open, mounted / "a/big.bin", os.O_RDONLY)
    moved = mounted.call(os.open, mounted / "c/small.txt", os.O_RDONLY)
    try:
        assert mounted.call(os.pread, reader, 4096, 0) == content[:4096]
        mounted.call(os.rename, mounted / "a", mounted / "b")
        mounted.call(os.rename, mounted / "c/small.txt", mounted / "c/renamed.txt")
        assert mounted.call(os.pread, reader, 4096, 2 * MiB + 10) == content[2 * MiB + 10 : 2 * MiB + 4106]
        assert mounted.call(os.pread, moved, 100, 0) == b"small\n"
    finally:
        mounted.call(os.close, reader)
        mounted.call(os.close, moved)


def test_a_directory_renamed_while_a_file_in_it_is_being_written_moves_with_every_byte(mount, bucket):
    """Each file being written under the directory is uploaded and copied within one hold of its lock:
    a write arriving meanwhile waits and lands under the new name, and the rename succeeds."""
    mounted = mount()
    mounted.call(os.mkdir, mounted / "d")
    lines = "".join(f"line {number}\n" for number in range(1, 151))
    script = (  # sleep's output goes elsewhere: a process closing its copy of the descriptor would flush it
        'for i in $(seq 150); do printf "line %d\\n" "$i"; sleep 0.005 >/dev/null; done > d/f & '
        "sleep 0.2; mv d e; status=$?; wait; exit $status"
    )
    mounted.sh("sh", "-c", f"cd {mounted.path} && {{ {script}; }}")
    assert mounted.read_bytes("e/f") == lines.encode()
    assert bucket.blob("e/f").download_as_bytes() == lines.encode()
    assert bucket.get_blob("d/f") is None
    assert lost_and_found(mounted) == []
