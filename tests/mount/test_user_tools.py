"""The tools people run on a mounted bucket, each checked by what it leaves behind: git, tar, rsync,
cp, sqlite, editors and h5py.

These pin down whole workflows (many opens, renames, fsyncs, truncates and lock files in the order
real tools issue them), so a change to the filesystem core that breaks one shows up here as a broken
repository, archive, database or lost identity, not as a passing unit test. Every result is checked by
the tool's own verifier (`git fsck`, `PRAGMA integrity_check`, `diff -r`, `tar --compare`) and, where
it matters, again through a second mount of the same bucket, which can only see what reached the server.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

from tests.mount.conftest import Mount
from tests.mount.test_write_workflows import assert_identity_kept, octue_object
from tests.support.http_proxy import Fault

pytestmark = pytest.mark.timeout(60)

# Identity given on the command line so the user's own git configuration plays no part.
GIT = ("git", "-c", "user.name=Octue Tester", "-c", "user.email=tester@example.com", "-c", "init.defaultBranch=main")
BIG = 5 * 1024 * 1024


def git(mounted: Mount, repository: Path, *arguments: str) -> str:
    return mounted.sh(*GIT, "-C", repository, *arguments).stdout.decode()


def python(mounted: Mount, program: str, *arguments: str | os.PathLike[str]) -> Any:
    """Run `program` in its own interpreter and return the JSON it printed last: libraries that hold the
    GIL through their file calls (sqlite, h5py) must not run in this process, which serves the proxy
    the daemon talks to."""
    done = mounted.sh(sys.executable, "-c", textwrap.dedent(program), *arguments)
    return json.loads(done.stdout.decode().strip().splitlines()[-1])


def digests(root: Path) -> dict[str, str | None]:
    """sha256 of every file under `root`, by relative path; empty directories listed with None."""
    found: dict[str, str | None] = {}
    for directory, subdirectories, files in os.walk(root):
        relative = os.path.relpath(directory, root)
        if not subdirectories and not files:
            found[relative] = None
        for name in files:
            found[os.path.join(relative, name)] = hashlib.sha256(Path(directory, name).read_bytes()).hexdigest()
    return found


def plain_tree(root: Path) -> Path:
    """Nested directories, an empty one, a 0-byte file, a 5 MiB file, names with spaces and non-ASCII,
    a private mode and an old mtime: what a data directory looks like."""
    for directory in ("a/b/c", "with space/ünï cödé", "empty"):
        (root / directory).mkdir(parents=True)
    (root / "zero").write_bytes(b"")
    (root / "a" / "big.bin").write_bytes(os.urandom(BIG))
    (root / "a" / "b" / "c" / "deep.txt").write_bytes(b"deep\n")
    (root / "with space" / "file name.txt").write_bytes(b"spaced\n")
    (root / "with space" / "ünï cödé" / "日本語.txt").write_text("日本語\n")
    (root / "a" / "b" / "c" / "deep.txt").chmod(0o600)
    os.utime(root / "zero", (1600000000, 1600000000))
    return root


def test_git_init_clone_commit_and_read_from_a_second_mount(mount, tmp_path):
    source = tmp_path / "source"
    (source / "pkg" / "sub dir").mkdir(parents=True)
    (source / "pkg" / "sub dir" / "mödule.py").write_text("print('hi')\n")
    (source / "data.bin").write_bytes(os.urandom(300_000))
    subprocess.run([*GIT, "init", "-q", source], check=True, timeout=30)
    subprocess.run([*GIT, "-C", source, "add", "-A"], check=True, timeout=30)
    subprocess.run([*GIT, "-C", source, "commit", "-qm", "first"], check=True, timeout=30)
    mounted = mount()

    fresh = mounted / "fresh"
    mounted.sh(*GIT, "init", "-q", fresh)
    mounted.call((fresh / "notes.txt").write_text, "notes\n")
    git(mounted, fresh, "add", "notes.txt")
    git(mounted, fresh, "commit", "-qm", "notes")
    clone = mounted / "clone"
    # No template: its sample hooks are a dozen more files to upload, which `git init` above already covers.
    mounted.sh(*GIT, "clone", "-q", "--template=", source, clone)
    assert git(mounted, clone, "status", "--porcelain") == ""
    mounted.call((clone / "README").write_text, "second\n")
    mounted.call((clone / "data.bin").write_bytes, b"replaced")
    git(mounted, clone, "add", "-A")
    git(mounted, clone, "commit", "-qm", "second")
    for repository in (fresh, clone):
        assert git(mounted, repository, "status", "--porcelain") == ""
        git(mounted, repository, "fsck", "--full", "--strict")
    head = git(mounted, clone, "rev-parse", "HEAD")

    again = mount()
    clone_again = again / "clone"
    assert git(again, clone_again, "rev-parse", "HEAD") == head
    assert git(again, clone_again, "log", "--format=%s") == "second\nfirst\n"
    assert git(again, clone_again, "status", "--porcelain") == ""
    git(again, clone_again, "fsck", "--full", "--strict")
    assert git(again, clone_again, "diff", "--name-only", "HEAD~1") == "README\ndata.bin\n"
    assert git(again, again / "fresh", "log", "--format=%s") == "notes\n"
    assert again.read_bytes("clone/pkg/sub dir/mödule.py") == b"print('hi')\n"
    assert again.read_bytes("clone/data.bin") == b"replaced"


def test_tar_extracts_and_archives_a_tree_unchanged(mount, bucket, tmp_path):
    tree = plain_tree(tmp_path / "tree")
    archive = tmp_path / "tree.tar"
    subprocess.run(["tar", "-C", tmp_path, "-cf", archive, "tree"], check=True, timeout=30)
    mounted = mount()

    mounted.sh("mkdir", mounted / "x")
    mounted.sh("tar", "-C", mounted / "x", "-xpf", archive)
    mounted.sh("tar", "-C", mounted / "x", "-xpf", archive)
    mounted.sh("diff", "-r", tree, mounted / "x/tree")

    again = mount()
    again.sh("tar", "-C", again / "x", "--compare", "-f", archive)
    assert again.call(digests, again / "x/tree") == digests(tree)
    mounted.sh("tar", "-C", mounted / "x", "-cf", mounted / "back.tar", "tree")
    out = tmp_path / "out"
    out.mkdir()
    again.sh("tar", "-C", out, "-xf", again / "back.tar")
    mounted.sh("diff", "-r", tree, out / "tree")
    assert bucket.get_blob("x/tree/a/big.bin").download_as_bytes() == (tree / "a" / "big.bin").read_bytes()


def test_rsync_in_update_with_delete_and_out(mount, bucket, tmp_path):
    tree = plain_tree(tmp_path / "tree")
    mounted = mount()

    mounted.sh("rsync", "-a", f"{tree}/", f"{mounted / 'mirror'}/")
    mounted.sh("diff", "-r", tree, mounted / "mirror")
    unchanged = mounted.sh("rsync", "-ai", f"{tree}/", f"{mounted / 'mirror'}/").stdout.decode()
    assert [line for line in unchanged.splitlines() if line.startswith(">f")] == []

    (tree / "a" / "b" / "c" / "deep.txt").unlink()
    (tree / "empty").rmdir()
    (tree / "with space" / "file name.txt").write_bytes(b"changed\n")
    (tree / "a" / "new.txt").write_bytes(b"new\n")
    mounted.sh("rsync", "-a", "--delete", f"{tree}/", f"{mounted / 'mirror'}/")
    mounted.sh("diff", "-r", tree, mounted / "mirror")
    names = sorted(blob.name for blob in bucket.list_blobs(prefix="mirror/"))
    assert "mirror/a/b/c/deep.txt" not in names and "mirror/empty/" not in names
    assert [name for name in names if os.path.basename(name).startswith(".")] == []

    again = mount()
    out = tmp_path / "out"
    again.sh("rsync", "-a", f"{again / 'mirror'}/", f"{out}/")
    mounted.sh("diff", "-r", tree, out)
    assert digests(out) == digests(tree)
    assert os.stat(out / "zero").st_mtime == 1600000000


def test_cp_archive_in_and_out_keeps_bytes_modes_and_times(mount, tmp_path):
    tree = plain_tree(tmp_path / "tree")
    mounted = mount()

    mounted.sh("cp", "-a", tree, mounted / "copy")
    mounted.sh("diff", "-r", tree, mounted / "copy")

    again = mount()
    for name in ("zero", "a/b/c/deep.txt", "a/big.bin"):
        local, shown = os.stat(tree / name), again.call(os.stat, again / "copy" / name)
        assert (shown.st_mode, shown.st_size, int(shown.st_mtime)) == (
            local.st_mode,
            local.st_size,
            int(local.st_mtime),
        ), name
    again.sh("cp", "-a", again / "copy", tmp_path / "out")
    mounted.sh("diff", "-r", tree, tmp_path / "out")
    assert digests(tmp_path / "out") == digests(tree)


SQLITE_WRITER = """
    import hashlib, json, os, sqlite3, sys
    path, mode = sys.argv[1], sys.argv[2]
    db = sqlite3.connect(path, isolation_level=None)
    db.execute(f"PRAGMA journal_mode={mode}")
    db.execute("CREATE TABLE readings(i INTEGER PRIMARY KEY, value BLOB)")
    seen_by_reader = None
    for i in range(20):
        db.execute("BEGIN")
        db.execute("INSERT INTO readings(value) VALUES (?)", (hashlib.sha256(str(i).encode()).digest() * 40,))
        if i % 10 == 0:
            db.execute("DELETE FROM readings WHERE i % 3 = 0")
        db.execute("COMMIT")
        if i == 10:
            reader = sqlite3.connect(path)
            seen_by_reader = reader.execute("SELECT count(*) FROM readings").fetchone()[0]
            reader.close()
    db.execute("VACUUM")
    check = db.execute("PRAGMA integrity_check").fetchone()[0]
    db.close()
    files = sorted(os.listdir(os.path.dirname(path)))
    print(json.dumps({"check": check, "seen_by_reader": seen_by_reader, "files": files}))
"""

SQLITE_READER = """
    import hashlib, json, sqlite3, sys
    db = sqlite3.connect(sys.argv[1])
    rows = db.execute("SELECT i, value FROM readings ORDER BY i").fetchall()
    print(json.dumps({
        "check": db.execute("PRAGMA integrity_check").fetchone()[0],
        "mode": db.execute("PRAGMA journal_mode").fetchone()[0],
        "ids": [i for i, _ in rows],
        "content": hashlib.sha256(b"".join(value for _, value in rows)).hexdigest(),
    }))
"""


@pytest.mark.parametrize("mode", ["delete", "truncate", "wal"])
def test_sqlite_transactions_in_each_journal_mode_match_a_local_disk_after_a_remount(mount, bucket, tmp_path, mode):
    """The same program run on the local disk is the reference: same rows, same bytes, same files left."""
    mounted = mount()
    mounted.sh("mkdir", mounted / "db")
    (tmp_path / "db").mkdir()

    written = python(mounted, SQLITE_WRITER, mounted / "db/readings.db", mode)

    assert written == python(mounted, SQLITE_WRITER, tmp_path / "db/readings.db", mode)
    assert written["check"] == "ok" and written["seen_by_reader"] > 0
    again = mount()
    read = python(again, SQLITE_READER, again / "db/readings.db")
    assert read == python(again, SQLITE_READER, tmp_path / "db/readings.db")
    assert read["check"] == "ok" and read["mode"] == ("wal" if mode == "wal" else "delete")
    stored = sorted(blob.name for blob in bucket.list_blobs(prefix="db/"))
    assert stored == ["db/", *(f"db/{name}" for name in written["files"])]


SQLITE_CRASH = """
    import os, sqlite3, sys
    db = sqlite3.connect(sys.argv[1], isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA wal_autocheckpoint=0")
    db.execute("PRAGMA synchronous=FULL")
    db.execute("CREATE TABLE readings(i INTEGER PRIMARY KEY, value TEXT)")
    for i in range(20):
        db.execute("INSERT INTO readings(value) VALUES (?)", (f"row {i}",))
    os.kill(os.getpid(), 9)
"""


def test_sqlite_wal_commits_survive_a_killed_writer(mount):
    """Every commit fsyncs the WAL, so the rows are in the bucket even though the writer never closed:
    a second mount replays the WAL left behind."""
    mounted = mount()

    crashed = subprocess.run([sys.executable, "-c", textwrap.dedent(SQLITE_CRASH), mounted / "crash.db"], timeout=30)

    assert crashed.returncode == -9
    assert sorted(mounted.call(os.listdir, mounted.path)) == ["crash.db", "crash.db-shm", "crash.db-wal"]
    again = mount()
    replay = (
        "import json, sqlite3, sys; db = sqlite3.connect(sys.argv[1]); "
        "print(json.dumps([db.execute('PRAGMA integrity_check').fetchone()[0], "
        "db.execute('SELECT count(*), max(value) FROM readings').fetchone()]))"
    )
    assert python(again, replay, again / "crash.db") == ["ok", [20, "row 9"]]


SQLITE_CONCURRENT = """
    import json, multiprocessing, sqlite3, sys
    path = sys.argv[1]

    def write(worker):
        db = sqlite3.connect(path, timeout=30, isolation_level=None)
        for i in range(15):
            db.execute("BEGIN IMMEDIATE")
            db.execute("INSERT INTO readings VALUES (?, ?)", (worker, i))
            db.execute("COMMIT")
        db.close()

    if __name__ == "__main__":
        db = sqlite3.connect(path, isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("CREATE TABLE readings(worker, i)")
        workers = [multiprocessing.Process(target=write, args=(worker,)) for worker in range(3)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        rows = db.execute("SELECT worker, count(*) FROM readings GROUP BY worker").fetchall()
        check = db.execute("PRAGMA integrity_check").fetchone()[0]
        print(json.dumps([[worker.exitcode for worker in workers], rows, check]))
"""


def test_sqlite_concurrent_writers_on_one_mount(mount):
    """The kernel's byte-range locks are enough for processes sharing one mount (not across mounts)."""
    mounted = mount()

    assert python(mounted, SQLITE_CONCURRENT, mounted / "shared.db") == [[0, 0, 0], [[0, 15], [1, 15], [2, 15]], "ok"]


SAVE_BY_RENAME = """
    import json, os, sys
    path = sys.argv[1]
    temporary = os.path.join(os.path.dirname(path), "." + os.path.basename(path) + ".tmp")
    with open(temporary, "wb") as file:
        file.write(open(path, "rb").read() + b"2,4.5\\n")
        file.flush()
        os.fsync(file.fileno())
    os.rename(temporary, path)
    print(json.dumps(os.getxattr(path, "user.octue.id").decode()))
"""

OCTUE_XATTRS = ("user.octue.id", "user.octue.tags", "user.octue.labels", "user.octue.timestamp")


def octue_xattrs(path: Path) -> dict[str, bytes]:
    return {name: os.getxattr(path, name) for name in OCTUE_XATTRS}


def test_editors_saves_keep_the_octue_identity(mount, bucket):
    """Save-by-rename (write a temporary file, fsync, rename it over the original), `sed -i` and vim
    writing in place right after another in-place write, with its stock backup (rename the file away,
    write it anew, delete the backup) and with a copied backup (`backupcopy=yes`) all keep id, tags,
    labels, timestamp and foreign keys, seen through the mount, on the server and through a second mount."""
    octue_object(bucket, "data/readings.csv", b"t,speed\n0,3.5\n")
    mounted = mount()
    path = mounted / "data/readings.csv"
    before = mounted.call(octue_xattrs, path)

    assert python(mounted, SAVE_BY_RENAME, path) == before["user.octue.id"].decode()
    mounted.sh("sed", "-i", "s/3.5/9.9/", path)
    mounted.sh("sh", "-c", f"echo 3,5.5 >> {path}")
    vim = ("vim", "-u", "DEFAULTS", "-i", "NONE", "-es")
    mounted.sh(*vim, "-c", "normal Go4,6.0", "-c", "wq", path)  # in place: backups under /tmp are skipped
    mounted.sh(*vim, "-c", "set backupskip=", "-c", "normal Go5,6.5", "-c", "wq", path)
    mounted.sh(*vim, "-c", "set backupcopy=yes backupskip=", "-c", "normal Go6,7.0", "-c", "wq", path)

    content = b"t,speed\n0,9.9\n2,4.5\n3,5.5\n4,6.0\n5,6.5\n6,7.0\n"
    assert mounted.read_bytes("data/readings.csv") == content
    assert mounted.call(octue_xattrs, path) == before
    assert sorted(mounted.call(os.listdir, mounted / "data")) == ["readings.csv"]
    assert [blob.name for blob in bucket.list_blobs()] == ["data/readings.csv"]
    blob = bucket.get_blob("data/readings.csv")
    assert blob.download_as_bytes() == content
    assert_identity_kept(blob)
    again = mount()
    assert again.call(octue_xattrs, again / "data/readings.csv") == before
    assert again.read_bytes("data/readings.csv") == content


H5_WRITER = """
    import h5py, numpy, sys
    with h5py.File(sys.argv[1], "w") as f:
        f.attrs["title"] = "wind run"
        mast = f.create_group("site/mast")
        mast.create_dataset("speed", data=numpy.arange(200_000, dtype="f8"), chunks=(4096,), compression="gzip")
        mast["speed"].attrs["units"] = "m/s"
        f.create_dataset("matrix", data=numpy.arange(120, dtype="i4").reshape(10, 12))
        f.create_dataset("names", data=numpy.array([b"a", b"bb", b"ccc"]))
        grow = f.create_dataset("grow", shape=(0,), maxshape=(None,), dtype="i8", chunks=(1000,))
        for i in range(20):
            grow.resize((grow.shape[0] + 1000,))
            grow[-1000:] = numpy.arange(i * 1000, (i + 1) * 1000)
    print("null")
"""

H5_LISTING = """
    import h5py, json, numpy, sys
    listing = []
    with h5py.File(sys.argv[1], "r") as f:
        def visit(name, item):
            attributes = {key: str(value) for key, value in item.attrs.items()}
            if isinstance(item, h5py.Dataset):
                listing.append([name, "dataset", list(item.shape), str(item.dtype), attributes])
            else:
                listing.append([name, "group", attributes])
        f.visititems(visit)
        values = {
            "title": str(f.attrs["title"]),
            "speed": bool((f["site/mast/speed"][:] == numpy.arange(200_000)).all()) and float(f["site/mast/speed"][12]),
            "grow": bool((f["grow"][:] == numpy.arange(20_000)).all()),
            "matrix": int(f["matrix"][3, 4]),
            "names": [name.decode() for name in f["names"][:]],
        }
    print(json.dumps([listing, values]))
"""


def test_h5py_writes_a_new_file_that_a_second_mount_lists_and_reads(mount, tmp_path):
    """The local disk is the reference for the listing (an h5dump -n like walk) and the values."""
    mounted = mount()

    python(mounted, H5_WRITER, mounted / "run.h5")
    python(mounted, H5_WRITER, tmp_path / "run.h5")

    again = mount()
    listing = python(again, H5_LISTING, again / "run.h5")
    assert listing == python(again, H5_LISTING, tmp_path / "run.h5")
    assert listing[1] == {
        "title": "wind run",
        "speed": 12.0,
        "grow": True,
        "matrix": 40,
        "names": ["a", "bb", "ccc"],
    }
    assert [entry[0] for entry in listing[0]] == ["grow", "matrix", "names", "site", "site/mast", "site/mast/speed"]


def appended_then_reopened(path: Path, line: bytes) -> list[int]:
    """The mtimes seen after an in-place append and fsync (before and after the close, which the
    daemon's release of the file may still be following), and again once a read-only open past the
    metadata TTL has re-read the object."""
    descriptor = os.open(path, os.O_WRONLY | os.O_APPEND)
    try:
        os.write(descriptor, line)
        os.fsync(descriptor)
        seen = [os.fstat(descriptor).st_mtime_ns]
    finally:
        os.close(descriptor)
    seen.append(os.stat(path).st_mtime_ns)
    time.sleep(0.3)
    with open(path, "rb") as file:
        file.read()
    return [*seen, os.stat(path).st_mtime_ns]


def test_the_mtime_seen_after_a_write_stays_when_the_object_is_read_again(mount, bucket, proxy, tmp_path):
    """What vim checks before it saves: the mtime after a write does not turn into the object's update
    time when the object is re-read (each request ~50 ms late, as from real GCS)."""
    bucket.blob("notes.txt").upload_from_string(b"first\n")
    mounted = mount(metadata_ttl=0.2)
    path = mounted / "notes.txt"
    proxy.add(Fault("delay", None, r".*", remaining=None, lasting=50, seconds=0.05))

    for index in range(5):
        seen = mounted.call(appended_then_reopened, path, b"line %d\n" % index)
        assert len(set(seen)) == 1, f"iteration {index}: the mtime moved with no write: {seen}"

    # vim checks the mtime before it writes: in place (its default skips backups under /tmp), then with its
    # stock backup (rename away, write anew), four saves in a row each.
    vim = ("vim", "-u", "DEFAULTS", "-i", "NONE", "-es")
    for line in range(8):
        backups = "backupskip=" if line >= 4 else "nobackup"
        mounted.sh(*vim, "-c", f"set {backups}", "-c", f"normal Go{line}", "-c", "wq", path)
    assert mounted.read_bytes("notes.txt").splitlines()[-8:] == [str(line).encode() for line in range(8)]


def saved_with_a_renamed_backup(path: Path, content: bytes) -> None:
    """vim's save with `writebackup` (strace): probe file, rename away, create anew, delete the backup."""
    probe = path.parent / "4913"
    os.close(os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644))
    os.unlink(probe)
    backup = path.with_name(path.name + "~")
    os.rename(path, backup)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        os.write(descriptor, content)
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
    os.unlink(backup)


def test_a_save_that_renames_the_file_away_and_writes_it_anew_keeps_the_octue_identity(mount, bucket):
    """vim's sequence by syscalls, then vim itself (`backupskip=`: its default skips backups under /tmp).
    The saved file shows its own mtime, not the stored one of the file it replaced."""
    original = octue_object(bucket, "v.csv", b"t,speed\n1,2\n")
    original.metadata = {**original.metadata, "goog-reserved-file-mtime": "1600000000"}
    original.patch()
    mounted = mount()
    path = mounted / "v.csv"
    before = mounted.call(octue_xattrs, path)

    mounted.call(saved_with_a_renamed_backup, path, b"t,speed\n1,2\n2,3\n")
    vim = ("vim", "-u", "DEFAULTS", "-i", "NONE", "-es", "-c", "set backupskip=")
    mounted.sh(*vim, "-c", "normal Go3,4", "-c", "wq", path)

    content = b"t,speed\n1,2\n2,3\n3,4\n"
    assert mounted.read_bytes("v.csv") == content
    assert mounted.call(octue_xattrs, path) == before
    assert sorted(mounted.call(os.listdir, mounted.path)) == ["v.csv"]
    assert mounted.call(os.stat, path).st_mtime > time.time() - 60
    blob = bucket.get_blob("v.csv")
    assert "goog-reserved-file-mtime" not in blob.metadata
    assert blob.download_as_bytes() == content
    assert_identity_kept(blob)
    again = mount()
    assert again.call(octue_xattrs, again / "v.csv") == before
