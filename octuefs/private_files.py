"""Files and directories only the mounting user can read, and refusal of ones someone else prepared.

A mount's cache holds bytes written but not yet uploaded, whole objects copied in for writing, the
pending records (object names, metadata) and the log; the runtime directory holds the pid files
`octuefs unmount` trusts. Another local user must not read them, nor plant what the daemon would
follow: a symlink it writes through, a record it would upload, a pid it would wait for.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

from octuefs.errors import UnsafePath

PRIVATE_UMASK = 0o077
DIRECTORY_MODE = 0o700
FILE_MODE = 0o600
OTHERS_WRITE = stat.S_IWGRP | stat.S_IWOTH
OTHERS_ANY = stat.S_IRWXG | stat.S_IRWXO


def check_shared_directory(path: Path) -> None:
    """A directory the user chose (a cache directory): it may be a symlink the user made and may be
    readable by others (what it holds is private anyway), but nobody else may own or write it, or
    they could plant a log symlink or a staged record the daemon would upload."""
    status = path.stat()
    if not stat.S_ISDIR(status.st_mode):
        raise UnsafePath(f"{path}: is not a directory.")
    _check_owner_and_writers(path, status)


def make_directories(path: Path) -> None:
    """`mkdir -p` making every missing level 0700, not only the last (`Path.mkdir(parents=True)`
    makes parents by the umask: a library user's `~/.cache/octuefs` would be 0755). An existing
    path, even a planted symlink, is left for the caller to check, never followed."""
    missing = []
    while not os.path.lexists(path):
        missing.append(path)
        path = path.parent
    for directory in reversed(missing):
        directory.mkdir(mode=DIRECTORY_MODE, exist_ok=True)


def private_directory(path: Path) -> Path:
    """Make `path` (and missing parents) 0700 and check it is a directory of ours that nobody else
    can write and that is not a symlink. One of ours that others can only read (made by an older
    octuefs with umask 022) is tightened to 0700; one others can write may hold planted files and
    is refused."""
    make_directories(path)
    status = path.lstat()
    if stat.S_ISLNK(status.st_mode):
        raise UnsafePath(f"{path}: is a symbolic link, which someone else may have planted; remove it.")
    if not stat.S_ISDIR(status.st_mode):
        raise UnsafePath(f"{path}: is not a directory.")
    _check_owner_and_writers(path, status)
    if status.st_mode & OTHERS_ANY:
        path.chmod(DIRECTORY_MODE)
    return path


def _check_owner_and_writers(path: Path, status: os.stat_result) -> None:
    if status.st_uid != os.geteuid():
        raise UnsafePath(
            f"{path}: is owned by uid {status.st_uid}, not by the mounting user (uid {os.geteuid()}); "
            "its owner could plant files the mount would trust. Use a directory of your own."
        )
    if status.st_mode & OTHERS_WRITE:
        raise UnsafePath(
            f"{path}: is writable by other users (mode {stat.S_IMODE(status.st_mode):o}); they could plant "
            "files the mount would trust. Remove the group and other write bits (chmod go-w)."
        )


def open_private(path: Path, flags: int) -> int:
    """`os.open` that creates 0600, never follows a symlink at `path`, and refuses a file someone else
    owns or a hard link (to a file elsewhere): a planted `octuefs.log` or pid file must not make the
    daemon, perhaps root, write to what it points at."""
    try:
        handle = os.open(path, flags | os.O_NOFOLLOW | os.O_CLOEXEC, FILE_MODE)
    except OSError as error:
        if error.errno == errno.ELOOP:
            raise UnsafePath(f"{path}: is a symbolic link, which someone else may have planted; remove it.") from None
        raise
    status = os.fstat(handle)
    if status.st_uid != os.geteuid() or status.st_nlink > 1:
        os.close(handle)
        whose = f"is owned by uid {status.st_uid}" if status.st_uid != os.geteuid() else "has other hard links"
        raise UnsafePath(f"{path}: {whose}, so someone else may have planted it; remove it.")
    return handle
