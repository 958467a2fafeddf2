"""Private files and directories on the real filesystem: what is created, tightened and refused."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from octuefs.errors import UnsafePath
from octuefs.private_files import check_shared_directory, make_directories, open_private, private_directory

NOBODY = 65534


@pytest.fixture
def usual_umask() -> Iterator[None]:
    """Library users run with umask 022: what octuefs makes must be private regardless."""
    previous = os.umask(0o022)
    yield
    os.umask(previous)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


def test_every_missing_level_is_made_0700(tmp_path, usual_umask):
    private_directory(tmp_path / "home" / ".cache" / "octuefs" / "chunks")

    for path in (tmp_path / "home", tmp_path / "home" / ".cache", tmp_path / "home" / ".cache" / "octuefs"):
        assert mode(path) == 0o700, path


def test_one_of_ours_others_can_only_read_is_tightened(tmp_path):
    directory = tmp_path / "staging"
    directory.mkdir(mode=0o755)

    private_directory(directory)

    assert mode(directory) == 0o700


@pytest.mark.parametrize("prepared", ["symlink", "writable by others", "owned by another user"])
def test_a_directory_someone_else_prepared_is_refused(tmp_path, prepared):
    directory = tmp_path / "staging"
    if prepared == "symlink":
        (tmp_path / "elsewhere").mkdir(mode=0o700)
        directory.symlink_to(tmp_path / "elsewhere")
    else:
        directory.mkdir(mode=0o700)
        if prepared == "writable by others":
            directory.chmod(0o773)
        else:
            os.chown(directory, NOBODY, NOBODY)
    reason = {
        "symlink": "symbolic link",
        "writable by others": "writable by other",
        "owned by another user": "owned by uid",
    }

    with pytest.raises(UnsafePath, match=reason[prepared]):
        private_directory(directory)


def test_a_chosen_cache_directory_may_be_a_symlink_and_readable_but_not_writable_by_others(tmp_path):
    (tmp_path / "real").mkdir(mode=0o755)
    (tmp_path / "link").symlink_to(tmp_path / "real")
    check_shared_directory(tmp_path / "link")

    (tmp_path / "real").chmod(0o775)
    with pytest.raises(UnsafePath, match=f"{tmp_path / 'link'}: is writable by other users"):
        check_shared_directory(tmp_path / "link")


@pytest.mark.parametrize("planted", ["symlink", "hard link", "owned by another user"])
def test_a_planted_file_is_refused_and_its_target_untouched(tmp_path, planted):
    target = tmp_path / "precious"
    target.write_text("precious\n")
    path = tmp_path / "octuefs.log"
    if planted == "symlink":
        path.symlink_to(target)
    elif planted == "hard link":
        os.link(target, path)
    else:
        path.write_text("")
        os.chown(path, NOBODY, NOBODY)

    with pytest.raises(UnsafePath, match=str(path)):
        open_private(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT)

    assert target.read_text() == "precious\n"


def test_a_new_file_is_0600_whatever_the_umask(tmp_path, usual_umask):
    os.close(open_private(tmp_path / "octuefs.log", os.O_WRONLY | os.O_CREAT))

    assert mode(tmp_path / "octuefs.log") == 0o600


def test_make_directories_leaves_an_existing_symlink_to_the_caller(tmp_path):
    (tmp_path / "link").symlink_to(tmp_path / "missing")

    make_directories(tmp_path / "link")

    assert not (tmp_path / "missing").exists()
