"""Writing through the mount with ordinary tools; every result checked on the server afterwards.

Each workflow must leave the object with the bytes the tool wrote and with its Octue metadata
(id, tags, labels, timestamp) and foreign custom metadata intact, as the issue asks.
"""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys

import pytest

from octuefs import Datafile
from octuefs.metadata.codec import encode_cloud
from octuefs.metadata.model import OctueMetadata
from tests.mount.conftest import run

pytestmark = pytest.mark.timeout(90)

OCTUE_KEYS = {"octue__id", "octue__timestamp", "octue__tags", "octue__labels", "octue__sdk_version"}
ID = "11111111-1111-4111-8111-111111111111"


def octue_object(bucket, name: str, content: bytes, content_type: str = "text/csv"):
    """An object with Octue metadata and a foreign key, as another tool would have left it."""
    metadata = OctueMetadata.build(id=ID, timestamp="2024-05-06T07:08:09", tags={"site": "a"}, labels=["raw"])
    blob = bucket.blob(name)
    blob.metadata = {**encode_cloud(metadata), "owner": "alice"}
    blob.upload_from_string(content, content_type=content_type)
    return bucket.get_blob(name)


def assert_identity_kept(blob, content_type: str = "text/csv") -> None:
    assert json.loads(blob.metadata["octue__id"]) == ID
    assert json.loads(blob.metadata["octue__tags"]) == {"site": "a"}
    assert json.loads(blob.metadata["octue__labels"]) == {"_type": "set", "items": ["raw"]}
    assert json.loads(blob.metadata["octue__timestamp"])["value"] == "2024-05-06T07:08:09"
    assert blob.metadata["owner"] == "alice"
    assert blob.content_type == content_type


def test_shell_redirections_create_and_append(mount, bucket):
    mounted = mount()
    mounted.sh("sh", "-c", f"echo first > {mounted / 'log.txt'}")
    mounted.sh("sh", "-c", f"echo second >> {mounted / 'log.txt'}")

    assert mounted.sh("cat", mounted / "log.txt").stdout == b"first\nsecond\n"
    blob = bucket.get_blob("log.txt")
    assert blob.download_as_bytes() == b"first\nsecond\n"
    assert set(blob.metadata) == OCTUE_KEYS
    assert json.loads(blob.metadata["octue__sdk_version"]) == "0.69.1"
    assert blob.content_type == "text/plain"


def test_python_open_write_and_new_file_is_an_octue_datafile(mount, bucket):
    mounted = mount()
    mounted.call((mounted / "results.json").write_text, '{"ok": true}\n')

    datafile = Datafile(f"gs://{bucket.name}/results.json")
    assert datafile.tags == {} and datafile.labels == set() and datafile.timestamp is None
    with datafile.open() as file:
        assert json.load(file) == {"ok": True}
    blob = bucket.get_blob("results.json")
    assert json.loads(blob.metadata["octue__id"]) == datafile.id
    assert blob.content_type == "application/json"


def test_editing_in_place_keeps_metadata_and_uses_the_generation_precondition(mount, bucket, proxy):
    before = octue_object(bucket, "data/readings.csv", b"t,speed\n0,3.5\n")
    mounted = mount()
    proxy.reset()

    mounted.sh("sh", "-c", f"echo 1,4.25 >> {mounted / 'data/readings.csv'}")

    after = bucket.get_blob("data/readings.csv")
    assert after.download_as_bytes() == b"t,speed\n0,3.5\n1,4.25\n"
    assert after.generation != before.generation
    assert_identity_kept(after)
    uploads = [request for request in proxy.requests if request.kind == "upload"]
    assert len(uploads) == 1 and f"ifGenerationMatch={before.generation}" in uploads[0].path


def test_sed_in_place_keeps_identity(mount, bucket):
    octue_object(bucket, "data/readings.csv", b"t,speed\n0,3.5\n")
    mounted = mount()

    mounted.sh("sed", "-i", "s/3.5/9.9/", mounted / "data/readings.csv")

    blob = bucket.get_blob("data/readings.csv")
    assert blob.download_as_bytes() == b"t,speed\n0,9.9\n"
    assert_identity_kept(blob)
    assert [name for name in (b.name for b in bucket.list_blobs()) if "sed" in name] == []


def test_truncate_keeps_metadata(mount, bucket):
    octue_object(bucket, "data/readings.csv", b"t,speed\n0,3.5\n")
    mounted = mount()

    mounted.sh("truncate", "-s", "7", mounted / "data/readings.csv")

    blob = bucket.get_blob("data/readings.csv")
    assert blob.download_as_bytes() == b"t,speed"
    assert_identity_kept(blob)


def test_mv_of_a_file_keeps_its_metadata_and_removes_the_original(mount, bucket):
    octue_object(bucket, "data/readings.csv", b"t,speed\n0,3.5\n")
    mounted = mount()

    mounted.sh("mv", mounted / "data/readings.csv", mounted / "archive.csv")

    assert bucket.get_blob("data/readings.csv") is None
    blob = bucket.get_blob("archive.csv")
    assert blob.download_as_bytes() == b"t,speed\n0,3.5\n"
    assert_identity_kept(blob)
    assert mounted.sh("ls", mounted.path).stdout.split() == [b"archive.csv"]


def test_mv_over_an_existing_file_replaces_it(mount, bucket):
    octue_object(bucket, "a.csv", b"a\n")
    bucket.blob("b.csv").upload_from_string(b"b\n")
    mounted = mount()

    mounted.sh("mv", mounted / "a.csv", mounted / "b.csv")

    assert sorted(blob.name for blob in bucket.list_blobs()) == ["b.csv"]
    blob = bucket.get_blob("b.csv")
    assert blob.download_as_bytes() == b"a\n"
    assert_identity_kept(blob)


def test_mv_of_a_directory_moves_every_object(mount, bucket):
    for name in ("src/a.txt", "src/sub/b.txt", "src/sub/deeper/c.txt"):
        bucket.blob(name).upload_from_string(name.encode())
    mounted = mount()

    mounted.sh("mv", mounted / "src", mounted / "dst")

    assert sorted(blob.name for blob in bucket.list_blobs()) == ["dst/a.txt", "dst/sub/b.txt", "dst/sub/deeper/c.txt"]
    assert mounted.sh("cat", mounted / "dst/sub/deeper/c.txt").stdout == b"src/sub/deeper/c.txt"


def test_cp_recursive_and_tar_extract(mount, bucket, tmp_path):
    tree = tmp_path / "tree"
    (tree / "sub").mkdir(parents=True)
    (tree / "a.txt").write_bytes(b"alpha\n")
    (tree / "sub" / "b.bin").write_bytes(os.urandom(1536 * 1024))
    mounted = mount()

    mounted.sh("cp", "-r", tree, mounted / "copied")
    archive = tmp_path / "tree.tar"
    subprocess.run(["tar", "-C", tmp_path, "-cf", archive, "tree"], check=True, timeout=30)
    mounted.sh("mkdir", mounted / "extracted")
    mounted.sh("tar", "-C", mounted / "extracted", "-xf", archive)

    for top in ("copied", "extracted/tree"):
        mounted.sh("diff", "-r", tree, mounted / top)
        assert bucket.get_blob(f"{top}/sub/b.bin").download_as_bytes() == (tree / "sub" / "b.bin").read_bytes()


def test_rsync_archive_preserves_mode_and_mtime_and_second_run_copies_nothing(mount, bucket, tmp_path):
    source = tmp_path / "source"
    source.mkdir()
    (source / "x.txt").write_bytes(b"one\n")
    (source / "x.txt").chmod(0o640)
    os.utime(source / "x.txt", (1612325106, 1612325106))
    mounted = mount()

    mounted.sh("rsync", "-a", f"{source}/", f"{mounted / 'mirror'}/")
    second = mounted.sh("rsync", "-ai", f"{source}/", f"{mounted / 'mirror'}/")

    status = os.stat(mounted / "mirror/x.txt")
    assert oct(status.st_mode & 0o777) == oct(0o640)
    assert int(status.st_mtime) == 1612325106
    assert [line for line in second.stdout.splitlines() if line.startswith(b">f")] == []
    blob = bucket.get_blob("mirror/x.txt")
    assert blob.metadata["goog-reserved-file-mtime"] == "1612325106"
    assert blob.metadata["goog-reserved-posix-mode"] == "640"
    assert [blob.name for blob in bucket.list_blobs()] == ["mirror/", "mirror/x.txt"]


CREATE_600 = "import os, sys; os.close(os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))"


def test_a_new_file_has_the_mode_it_was_created_with_and_its_creators_owner(mount, bucket):
    """On a mount that trusts stored owners, as on a local disk: open(O_CREAT, mode) less the umask,
    owned by the caller (root here, while the mount's default is uid and gid 4321), kept on the object
    as chmod keeps it. A uid or gid given to a mount wins over the stored owner."""
    mounted = mount("", "-o", "trust_stored_owners", "--uid", "4321", "--gid", "4321")
    mounted.sh("sh", "-c", f"umask 077; echo secret > {mounted / 'private.txt'}")
    mounted.sh(sys.executable, "-c", CREATE_600, mounted / "empty.txt")
    mounted.sh("sh", "-c", f"umask 022; echo shared > {mounted / 'plain.txt'}")

    modes = {"private.txt": 0o600, "empty.txt": 0o600, "plain.txt": 0o644}
    trusting = mount("", "--trust-stored-owners")
    for shown_by, owner in ((mounted, 4321), (trusting, 0)):
        for name, mode in modes.items():
            status = shown_by.call(os.stat, shown_by / name)
            assert (status.st_mode & 0o7777, status.st_uid, status.st_gid) == (mode, owner, owner), name
    metadata = bucket.get_blob("private.txt").metadata
    assert (metadata["goog-reserved-posix-mode"], metadata["goog-reserved-posix-uid"]) == ("600", "0")
    assert metadata["goog-reserved-posix-gid"] == "0" and "octue__id" in metadata


def test_a_new_file_on_a_default_mount_has_the_mode_it_was_created_with_and_the_mounts_owner(mount, bucket):
    """Issue 12 on a mount that does not trust the bucket's owners: open(O_CREAT, mode) less the umask
    is kept as chmod keeps it and shown here and on the next mount, as it only takes permissions away
    from the mount's `--file-mode`; the creator's owner is neither stored nor shown."""
    mounted = mount("", "--uid", "4321", "--gid", "4321")
    mounted.sh("sh", "-c", f"umask 077; echo secret > {mounted / 'private.txt'}")
    mounted.sh(sys.executable, "-c", CREATE_600, mounted / "empty.txt")
    mounted.sh("sh", "-c", f"umask 022; echo shared > {mounted / 'plain.txt'}")

    modes = {"private.txt": 0o600, "empty.txt": 0o600, "plain.txt": 0o644}
    again = mount("", "--uid", "4321", "--gid", "4321")
    for shown_by in (mounted, again):
        for name, mode in modes.items():
            status = shown_by.call(os.stat, shown_by / name)
            assert (status.st_mode & 0o7777, status.st_uid, status.st_gid) == (mode, 4321, 4321), name
    stored = {name: bucket.get_blob(name).metadata for name in modes}
    assert stored["private.txt"]["goog-reserved-posix-mode"] == "600" and "octue__id" in stored["private.txt"]
    assert stored["empty.txt"]["goog-reserved-posix-mode"] == "600"
    assert not any(key.startswith("goog-reserved-posix") for key in stored["plain.txt"])
    assert not any(
        key in metadata
        for metadata in stored.values()
        for key in ("goog-reserved-posix-uid", "goog-reserved-posix-gid")
    )


def test_cp_preserve_sets_mtime_on_an_existing_file_with_one_patch(mount, bucket, tmp_path, proxy):
    local = tmp_path / "stamp.txt"
    local.write_bytes(b"x")
    os.utime(local, (1500000000, 1500000000))
    mounted = mount()

    mounted.sh("cp", "-p", local, mounted / "stamp.txt")
    proxy.reset()
    mounted.sh("touch", "-d", "@1600000000", mounted / "stamp.txt")

    assert int(os.stat(mounted / "stamp.txt").st_mtime) == 1600000000
    assert proxy.kinds().count("patch") == 1 and proxy.kinds().count("upload") == 0
    assert bucket.get_blob("stamp.txt").metadata["goog-reserved-file-mtime"] == "1600000000"


def test_mkdir_rmdir_and_unlink(mount, bucket):
    mounted = mount()
    mounted.sh("mkdir", mounted / "empty")
    assert bucket.get_blob("empty/") is not None
    mounted.sh("sh", "-c", f"echo x > {mounted / 'empty/file.txt'}")

    result = run("rmdir", mounted / "empty")
    assert result.returncode != 0 and b"not empty" in result.stderr.lower()

    mounted.sh("rm", mounted / "empty/file.txt")
    mounted.sh("rmdir", mounted / "empty")
    assert list(bucket.list_blobs()) == []
    assert mounted.sh("ls", "-A", mounted.path).stdout == b""


def test_hard_links_are_refused(mount, bucket):
    """Symbolic links and special files are objects of their own (tests/mount/test_symlinks.py,
    test_special_files.py); a hard link would be two names for one object, which GCS has not."""
    bucket.blob("a.txt").upload_from_string(b"a")
    mounted = mount()

    with pytest.raises(OSError) as raised:
        mounted.call(os.link, mounted / "a.txt", mounted / "hard")
    assert raised.value.errno == errno.EPERM
    assert [blob.name for blob in bucket.list_blobs()] == ["a.txt"]


def test_xattrs_set_before_the_first_upload_go_up_with_it(mount, bucket):
    mounted = mount()
    path = mounted / "new.csv"

    def write_with_metadata() -> None:
        with open(path, "w") as file:
            file.write("a,b\n")
            os.setxattr(path, "user.octue.tag.quality", b'"good"')
            os.setxattr(path, "user.octue.labels", b"fresh")

    mounted.call(write_with_metadata)

    blob = bucket.get_blob("new.csv")
    assert blob.download_as_bytes() == b"a,b\n"
    assert json.loads(blob.metadata["octue__tags"]) == {"quality": "good"}
    assert json.loads(blob.metadata["octue__labels"])["items"] == ["fresh"]


def test_h5py_writes_a_dataset_and_the_library_reads_it(mount, bucket):
    mounted = mount()
    script = (
        "import h5py, numpy, sys; "
        "f = h5py.File(sys.argv[1], 'w'); f.create_dataset('speed', data=numpy.arange(1000.0)); f.close()"
    )
    result = run(sys.executable, "-c", script, mounted / "run.hdf5", timeout=60)
    assert result.returncode == 0, result.stderr

    datafile = Datafile(f"gs://{bucket.name}/run.hdf5")
    with datafile.open() as file:
        assert list(file["speed"][:5]) == [0.0, 1.0, 2.0, 3.0, 4.0]
        assert file["speed"].shape == (1000,)
