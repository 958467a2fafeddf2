"""Symbolic links on a real mount, made and followed by real tools: ln, readlink, ls, cat, mv, rm, cp -a,
tar, rsync, git and `python3 -m venv` (its `lib64 -> lib`).

A link is an object in gcsfuse's form (tests/integration/test_special_objects.py checks the stored
form itself); here every link is also read back through a second mount, which knows only what
reached the server.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.mount.test_user_tools import GIT, git

pytestmark = pytest.mark.timeout(90)


def link_tree(root: Path) -> Path:
    """A file, a directory, relative links to each, a link out of a subdirectory, a link to a link and
    a dangling link."""
    (root / "dir").mkdir(parents=True)
    (root / "file.txt").write_text("content\n")
    (root / "dir" / "inner.txt").write_text("inner\n")
    os.symlink("file.txt", root / "to-file")
    os.symlink("dir", root / "to-dir")
    os.symlink("../file.txt", root / "dir" / "up")
    os.symlink("to-file", root / "to-link")
    os.symlink("nowhere/at/all", root / "dangling")
    return root


def links_in(root: Path) -> dict[str, str]:
    """Every link under `root` (not followed) and its target."""
    found = {}
    for directory, subdirectories, files in os.walk(root):
        for name in files + subdirectories:
            path = Path(directory, name)
            if path.is_symlink():
                found[str(path.relative_to(root))] = os.readlink(path)
    return found


def test_ln_readlink_ls_and_cat_also_after_a_remount(mount, bucket):
    mounted = mount()
    mounted.call((mounted / "data.csv").write_text, "a,b\n1,2\n")
    mounted.sh("ln", "-s", "data.csv", mounted / "latest")

    assert mounted.sh("readlink", mounted / "latest").stdout == b"data.csv\n"
    listing = mounted.sh("ls", "-l", mounted.path).stdout.decode()
    assert "latest -> data.csv" in listing
    assert next(line for line in listing.splitlines() if line.endswith("latest -> data.csv")).startswith("lrwxrwxrwx")
    assert mounted.sh("cat", mounted / "latest").stdout == b"a,b\n1,2\n"
    assert mounted.call(os.lstat, mounted / "latest").st_size == len("data.csv")

    mounted.unmount()
    again = mount()
    assert again.sh("readlink", again / "latest").stdout == b"data.csv\n"
    assert again.sh("cat", again / "latest").stdout == b"a,b\n1,2\n"
    assert "latest -> data.csv" in again.sh("ls", "-l", again.path).stdout.decode()


def test_a_dangling_link_is_kept_and_fails_only_when_followed(mount):
    mounted = mount()
    mounted.sh("ln", "-s", "/no/such/place", mounted / "dangling")

    assert mounted.sh("test", "-L", mounted / "dangling").returncode == 0
    assert mounted.sh("readlink", mounted / "dangling").stdout == b"/no/such/place\n"
    followed = subprocess.run(["cat", mounted / "dangling"], capture_output=True, timeout=30)
    assert followed.returncode != 0 and b"No such file or directory" in followed.stderr
    again = mount()
    assert again.sh("readlink", again / "dangling").stdout == b"/no/such/place\n"


def test_a_link_is_renamed_and_removed_as_a_link(mount, bucket):
    mounted = mount()
    mounted.call((mounted / "target.txt").write_text, "kept\n")
    mounted.sh("ln", "-s", "target.txt", mounted / "first")
    mounted.sh("mkdir", mounted / "sub")
    mounted.sh("mv", mounted / "first", mounted / "sub" / "moved")

    assert mounted.sh("readlink", mounted / "sub" / "moved").stdout == b"target.txt\n"
    assert bucket.get_blob("first") is None
    assert bucket.get_blob("sub/moved").metadata["gcsfuse_symlink_target"] == "target.txt"
    mounted.sh("mv", mounted / "sub", mounted / "renamed")
    assert mounted.sh("readlink", mounted / "renamed" / "moved").stdout == b"target.txt\n"
    assert bucket.get_blob("renamed/moved").download_as_bytes() == b"target.txt"
    mounted.sh("rm", mounted / "renamed" / "moved")
    assert bucket.get_blob("renamed/moved") is None
    assert bucket.get_blob("target.txt").download_as_bytes() == b"kept\n"
    again = mount()
    assert again.call(os.listdir, again / "renamed") == []


def test_a_file_saved_over_a_link_is_a_file(mount, bucket):
    """`sed -i` and editors write a new file and rename it over the old name: over a link, the new
    file must not take the link's type along with its identity."""
    mounted = mount()
    mounted.call((mounted / "target.txt").write_text, "target\n")
    mounted.sh("ln", "-s", "target.txt", mounted / "name")
    mounted.call((mounted / "new.txt").write_text, "replacement\n")
    mounted.sh("mv", mounted / "new.txt", mounted / "name")

    assert not mounted.call(os.path.islink, mounted / "name")
    assert mounted.read_bytes("name") == b"replacement\n"
    assert mounted.read_bytes("target.txt") == b"target\n"
    metadata = bucket.get_blob("name").metadata or {}
    assert not {"goog-reserved-file-is-symlink", "gcsfuse_symlink_target"} & set(metadata)


@pytest.mark.parametrize(
    "metadata, content",
    [
        ({"goog-reserved-file-is-symlink": "true"}, b"dir/inner.txt"),
        ({"gcsfuse_symlink_target": "dir/inner.txt"}, b""),
    ],
    ids=["gcsfuse-3.9-form", "older-gcsfuse-form"],
)
def test_a_link_another_client_wrote_is_followed(mount, bucket, metadata, content):
    bucket.blob("dir/inner.txt").upload_from_string(b"inner\n")
    blob = bucket.blob("their-link")
    blob.metadata = metadata
    blob.upload_from_string(content)
    mounted = mount()

    assert "their-link -> dir/inner.txt" in mounted.sh("ls", "-l", mounted.path).stdout.decode()
    assert mounted.sh("readlink", mounted / "their-link").stdout == b"dir/inner.txt\n"
    assert mounted.sh("cat", mounted / "their-link").stdout == b"inner\n"


def test_cp_tar_and_rsync_keep_a_tree_of_links(mount, tmp_path):
    tree = link_tree(tmp_path / "tree")
    archive = tmp_path / "tree.tar"
    subprocess.run(["tar", "-C", tmp_path, "-cf", archive, "tree"], check=True, timeout=30)
    mounted = mount()

    mounted.sh("cp", "-a", tree, mounted / "copied")
    mounted.sh("mkdir", mounted / "untarred")
    mounted.sh("tar", "-C", mounted / "untarred", "-xpf", archive)
    mounted.sh("rsync", "-a", f"{tree}/", f"{mounted / 'synced'}/")

    again = mount()
    for copy in ("copied", "untarred/tree", "synced"):
        assert again.call(links_in, again / copy) == links_in(tree), copy
        again.sh("diff", "-r", "--no-dereference", tree, again / copy)
        assert again.read_bytes(f"{copy}/to-dir/inner.txt") == b"inner\n"
        assert again.read_bytes(f"{copy}/to-link") == b"content\n"
    assert again.sh("rsync", "-ai", "--omit-dir-times", f"{tree}/", f"{again / 'synced'}/").stdout == b""
    out = tmp_path / "out"
    again.sh("cp", "-a", again / "copied", out)
    assert links_in(out) == links_in(tree)


def test_git_clone_of_a_repository_with_a_link(mount, tmp_path):
    source = tmp_path / "source"
    (source / "docs").mkdir(parents=True)
    (source / "docs" / "guide.md").write_text("# guide\n")
    os.symlink("docs/guide.md", source / "README.md")
    subprocess.run([*GIT, "init", "-q", source], check=True, timeout=30)
    subprocess.run([*GIT, "-C", source, "add", "-A"], check=True, timeout=30)
    subprocess.run([*GIT, "-C", source, "commit", "-qm", "with a link"], check=True, timeout=30)
    mounted = mount()

    clone = mounted / "clone"
    mounted.sh(*GIT, "clone", "-q", "--template=", source, clone)
    assert mounted.call(os.readlink, clone / "README.md") == "docs/guide.md"
    assert git(mounted, clone, "status", "--porcelain") == ""
    assert mounted.read_bytes("clone/README.md") == b"# guide\n"
    again = mount()
    assert git(again, again / "clone", "status", "--porcelain") == ""
    git(again, again / "clone", "fsck", "--full", "--strict")


@pytest.mark.timeout(180)
def test_python_venv_on_the_mount(mount):
    """`python3 -m venv` makes `lib64 -> lib` (on 64-bit Linux) and links to the interpreter."""
    mounted = mount()
    environment = mounted / "env"
    mounted.sh("python3", "-m", "venv", "--without-pip", environment, timeout=120)

    assert mounted.call(os.readlink, environment / "lib64") == "lib"
    assert mounted.call(os.path.islink, environment / "bin" / "python")
    ran = mounted.sh(environment / "bin" / "python", "-c", "import sys; print(sys.prefix)", timeout=60)
    assert ran.stdout.decode().strip() == str(environment)
