"""What is mounted where: the real directory a mountpoint path names, and the kernel's mount table."""

from __future__ import annotations

import os
import re
from pathlib import Path


def resolve_mountpoint(path: Path) -> Path:
    """The real directory a mountpoint path names, as fusermount3 mounts on it: a symlinked mountpoint
    is followed, so the pid file, `ismount` and `unmount` all name the directory really mounted.

    The last component is followed with readlink only, never stat: a live mountpoint's stat is
    answered by its daemon, which may be the hung one being unmounted.
    """
    current = Path(os.path.abspath(path))
    for _ in range(40):  # the kernel's own bound on symlinks in one lookup
        try:
            target = os.readlink(current)
        except OSError:  # not a symlink (or nothing there): the check before mounting says which
            break
        current = Path(os.path.abspath(current.parent / target))
    return Path(os.path.realpath(current.parent)) / current.name


def is_mounted(path: Path) -> bool:
    """Whether something is mounted at `path`, from the mount table: unlike `os.path.ismount`, asking
    never waits on that mount's daemon, and a mount whose daemon is gone (ENOTCONN) still counts."""
    target = os.path.abspath(path)
    with open("/proc/self/mountinfo") as mountinfo:
        # Field 5 is the mount point, with space, tab, newline and backslash as octal escapes.
        return any(_unescape(line.split()[4]) == target for line in mountinfo)


def _unescape(field: str) -> str:
    return re.sub(r"\\([0-7]{3})", lambda match: chr(int(match.group(1), 8)), field)
