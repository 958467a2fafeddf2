"""POSIX attributes kept in an object's custom metadata, under gsutil's `goog-reserved-*` keys.

An object has no mode, owner or mtime of its own. `chmod`, `chown` and `touch` (and so `cp -p`,
`rsync -a`, `tar x`) store them here, exactly as `gsutil rsync -P` does, so both tools agree;
objects without them show the mount's `file_mode`, `uid`, `gid` and their update time.
"""

from __future__ import annotations

import stat as stat_module
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pyfuse3

MTIME_KEY = "goog-reserved-file-mtime"
MODE_KEY = "goog-reserved-posix-mode"
UID_KEY = "goog-reserved-posix-uid"
GID_KEY = "goog-reserved-posix-gid"


@dataclass(frozen=True)
class PosixAttributes:
    mode: int
    uid: int
    gid: int
    mtime_ns: int


def _integer(custom: Mapping[str, str], key: str, base: int = 10) -> int | None:
    try:
        return int(custom[key], base)
    except (KeyError, ValueError):
        return None


def read(custom: Mapping[str, str], default: PosixAttributes) -> PosixAttributes:
    mode, uid, gid, mtime = (
        _integer(custom, MODE_KEY, 8),
        _integer(custom, UID_KEY),
        _integer(custom, GID_KEY),
        _integer(custom, MTIME_KEY),
    )
    return PosixAttributes(
        mode=stat_module.S_IMODE(mode) if mode is not None else default.mode,
        uid=uid if uid is not None else default.uid,
        gid=gid if gid is not None else default.gid,
        mtime_ns=mtime * 10**9 if mtime is not None else default.mtime_ns,
    )


def changes(attr: pyfuse3.EntryAttributes, fields: pyfuse3.SetattrFields) -> dict[str, str]:
    """The custom-metadata keys a setattr call changes."""
    changed = {}
    if fields.update_mode:
        changed[MODE_KEY] = format(stat_module.S_IMODE(attr.st_mode), "o")
    if fields.update_uid:
        changed[UID_KEY] = str(attr.st_uid)
    if fields.update_gid:
        changed[GID_KEY] = str(attr.st_gid)
    if fields.update_mtime:
        changed[MTIME_KEY] = str(attr.st_mtime_ns // 10**9)
    return changed


def created(mode: int, uid: int, gid: int, default: PosixAttributes) -> dict[str, str]:
    """The keys a new file needs to show the mode and owner it was created with, stored as chmod and
    chown store them. Only those that differ from what the mount shows for a file that says nothing:
    files written the ordinary way then carry Octue's keys alone, as other writers' files do."""
    wanted = {MODE_KEY: format(stat_module.S_IMODE(mode), "o"), UID_KEY: str(uid), GID_KEY: str(gid)}
    shown = {MODE_KEY: format(default.mode, "o"), UID_KEY: str(default.uid), GID_KEY: str(default.gid)}
    return {key: value for key, value in wanted.items() if value != shown[key]}


KEYS = (MTIME_KEY, MODE_KEY, UID_KEY, GID_KEY)


def carried(custom: Mapping[str, str]) -> dict[str, str]:
    """The POSIX keys of `custom`, to carry onto an object that replaces this one."""
    return {key: custom[key] for key in KEYS if key in custom}
