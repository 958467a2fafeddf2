"""Browsing a mounted bucket with ls, stat and find: directories from the `/` delimiter, sizes and
times from the objects, stable inode numbers, and a listing that costs one request per page."""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from tests.mount.conftest import run

pytestmark = pytest.mark.timeout(60)

TREE = {
    "top.txt": b"top level\n",
    "data/readme.md": b"# data\n",
    "data/2024/jan/wind.csv": b"t,speed\n0,3.5\n",
    "data/2024/feb/wind.csv": b"t,speed\n0,4.25\n1,5.0\n",
    "data/empty.bin": b"",
    "placeholder/": b"",
    "placeholder/inside.txt": b"inside a placeholder\n",
    "only-placeholder/": b"",
}


@pytest.fixture
def tree(bucket):
    for name, content in TREE.items():
        bucket.blob(name).upload_from_string(content)
    return {blob.name: blob for blob in bucket.list_blobs()}


def ls_names(mount, relative: str = "") -> list[str]:
    return mount.sh("ls", "-1", mount / relative).stdout.decode().split()


def stat_lines(mount, *relatives: str) -> dict[str, tuple[str, int, int, int]]:
    """`stat` of each path: name → (file type, size, mtime seconds, inode)."""
    output = mount.sh("stat", "-c", "%F|%s|%Y|%i|%n", *(mount / relative for relative in relatives)).stdout
    found = {}
    for line in output.decode().splitlines():
        kind, size, mtime, inode, name = line.split("|", 4)
        found[os.path.relpath(name, mount.path)] = (kind, int(size), int(mtime), int(inode))
    return found


def test_directories_from_prefixes_and_placeholders(mount, tree):
    mounted = mount()

    assert ls_names(mounted) == ["data", "only-placeholder", "placeholder", "top.txt"]
    assert ls_names(mounted, "data") == ["2024", "empty.bin", "readme.md"]
    assert ls_names(mounted, "data/2024") == ["feb", "jan"]
    assert ls_names(mounted, "data/2024/feb") == ["wind.csv"]
    assert ls_names(mounted, "placeholder") == ["inside.txt"]
    assert ls_names(mounted, "only-placeholder") == []
    kinds = stat_lines(mounted, "data", "data/2024/jan", "placeholder", "only-placeholder", "top.txt", "data/empty.bin")
    assert {name: kind for name, (kind, *_rest) in kinds.items()} == {
        "data": "directory",
        "data/2024/jan": "directory",
        "placeholder": "directory",
        "only-placeholder": "directory",
        "top.txt": "regular file",
        "data/empty.bin": "regular empty file",
    }


def test_prefix_mount_shows_only_that_subtree(mount, tree):
    mounted = mount("data/2024")

    assert ls_names(mounted) == ["feb", "jan"]
    found = mounted.sh("find", mounted.path).stdout.decode().splitlines()
    assert sorted(os.path.relpath(path, mounted.path) for path in found) == [
        ".",
        "feb",
        "feb/wind.csv",
        "jan",
        "jan/wind.csv",
    ]
    assert mounted.read_bytes("feb/wind.csv") == TREE["data/2024/feb/wind.csv"]
    outside = run("ls", mounted / "top.txt", mounted / "data", mounted / "2024")
    assert outside.returncode != 0
    assert b"No such file or directory" in outside.stderr


def test_sizes_and_times_come_from_the_objects(mount, tree):
    mounted = mount()
    files = [name for name in TREE if not name.endswith("/")]

    listed = {}
    for line in mounted.sh("ls", "-l", "--time-style=+%s", mounted / "data").stdout.decode().splitlines()[1:]:
        fields = line.split()
        listed[fields[-1]] = (int(fields[4]), int(fields[5]))
    assert listed["readme.md"] == (tree["data/readme.md"].size, int(tree["data/readme.md"].updated.timestamp()))
    assert listed["empty.bin"] == (0, int(tree["data/empty.bin"].updated.timestamp()))

    stats = stat_lines(mounted, *files)
    for name in files:
        _kind, size, mtime, _inode = stats[name]
        assert size == tree[name].size == len(TREE[name]), name
        assert mtime == int(tree[name].updated.timestamp()), name


def test_inode_numbers_are_stable(mount, tree):
    mounted = mount()
    paths = ["top.txt", "data", "data/readme.md", "data/2024/feb/wind.csv", "placeholder/inside.txt"]

    first = {name: inode for name, (*_rest, inode) in stat_lines(mounted, *paths).items()}
    mounted.sh("ls", "-lR", mounted.path)
    second = {name: inode for name, (*_rest, inode) in stat_lines(mounted, *paths).items()}
    third = {name: mounted.call(os.stat, mounted / name).st_ino for name in paths}

    assert first == second == third
    assert len(set(first.values())) == len(paths)
    assert mounted.call(os.stat, mounted.path).st_ino == 1


def test_find_lists_the_whole_tree(mount, tree):
    mounted = mount()

    output = mounted.sh("find", mounted.path, "-printf", "%y %P\\n").stdout.decode().splitlines()

    assert sorted(output) == sorted(
        [
            "d ",
            "f top.txt",
            "d data",
            "f data/readme.md",
            "f data/empty.bin",
            "d data/2024",
            "d data/2024/jan",
            "f data/2024/jan/wind.csv",
            "d data/2024/feb",
            "f data/2024/feb/wind.csv",
            "d placeholder",
            "f placeholder/inside.txt",
            "d only-placeholder",
        ]
    )


def upload_many(server_url: str, bucket: str, names: list[str]) -> None:
    """Simple media uploads straight to the server: twice as fast as the client for thousands of objects."""
    session = requests.Session()
    session.mount("http://", requests.adapters.HTTPAdapter(pool_maxsize=8))

    def upload(name: str) -> None:
        url = f"{server_url}/upload/storage/v1/b/{bucket}/o"
        session.post(
            url, params={"uploadType": "media", "name": name}, data=name.encode(), timeout=30
        ).raise_for_status()

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(upload, names))


def test_listing_two_thousand_objects_costs_list_requests_only(mount, bucket, gcs_server, proxy):
    names = [f"many/file-{index:04d}.dat" for index in range(2000)]
    upload_many(gcs_server.url, bucket.name, names)
    mounted = mount()
    # Reaching `many` from a listed parent: looking up a name nobody listed yet probes it (a stat).
    assert mounted.sh("ls", mounted.path).stdout == b"many\n"
    proxy.reset()

    listing = mounted.sh("ls", "-l", mounted / "many").stdout.decode().splitlines()

    assert len(listing) == 1 + 2000
    kinds = proxy.kinds()
    assert set(kinds) == {"list"}, kinds
    assert 1 <= len(kinds) <= 3
    proxy.reset()

    attributes = mounted.sh("getfattr", "-d", mounted / "many/file-0007.dat").stdout.decode()

    assert "user.octue.id=" in attributes
    assert 'user.octue.cloud_path="gs://' in attributes
    assert proxy.kinds() == []


def test_stat_of_many_names_in_an_unlisted_directory_lists_it_once(mount, bucket, gcs_server, proxy):
    """A program stat-ing a manifest of paths: after a few lookups by name, one listing answers the rest."""
    names = [f"runs/file-{index:04d}.dat" for index in range(300)]
    upload_many(gcs_server.url, bucket.name, names)
    mounted = mount()
    mounted.call(os.stat, mounted / "runs")  # reach the directory without listing it
    proxy.reset()

    sizes = mounted.call(lambda: [os.stat(mounted / name).st_size for name in names])
    missing = mounted.call(lambda: [os.path.exists(mounted / f"runs/absent-{index}") for index in range(50)])

    assert sizes == [len(name) for name in names] and not any(missing)
    kinds = proxy.kinds()
    assert kinds.count("list") == 1 and kinds.count("stat") <= 3, kinds


def test_a_directory_that_cannot_be_listed_is_still_looked_up_name_by_name(mount, bucket, gcs_server, proxy):
    """Credentials that may read objects but not list them: lookups go on probing instead of failing."""
    names = [f"runs/file-{index:04d}.dat" for index in range(12)]
    upload_many(gcs_server.url, bucket.name, names)
    mounted = mount()
    mounted.call(os.stat, mounted / "runs")
    proxy.reset()
    proxy.inject("GET", r"/storage/v1/b/[^/]+/o\?.*delimiter", 403, 1000)

    sizes = mounted.call(lambda: [os.stat(mounted / name).st_size for name in names])

    assert sizes == [len(name) for name in names]
    assert "not listed for lookups" in mounted.log
