"""POSIX attributes kept in an object's custom metadata, under gsutil's `goog-reserved-*` keys.

An object has no mode, owner or mtime of its own. `chmod`, `chown` and `touch` (and so `cp -p`,
`rsync -a`, `tar x`) store them here, exactly as `gsutil rsync -P` does, so both tools agree;
objects without them show the mount's `file_mode`, `uid`, `gid` and their update time.

Anyone who can write the bucket writes these keys, so a stored owner or mode would let a bucket
writer pick which local user owns a file, or make it setuid. As on gcsfuse and mountpoint-s3, by
default the mount's `uid`, `gid` and `file_mode` apply and chmod/chown change nothing; with
`trust_stored_owners` (single-tenant buckets, POSIX test runs) stored owners and modes are written
and shown, but never setuid/setgid and never over a `uid`, `gid` or `file_mode` the user gave. A
time grants nothing, so a stored mtime is always shown. Values no attribute can hold are shown as
the mount's values and reported, never passed to the kernel.
"""

from __future__ import annotations

import stat as stat_module
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pyfuse3

    from octuefs.fs.config import MountConfig

MTIME_KEY = "goog-reserved-file-mtime"
MODE_KEY = "goog-reserved-posix-mode"
UID_KEY = "goog-reserved-posix-uid"
GID_KEY = "goog-reserved-posix-gid"
KEYS = (MTIME_KEY, MODE_KEY, UID_KEY, GID_KEY)

# The option that fixes each owner or mode key: given, it wins over a stored value even when trusted.
FIXED_BY = {UID_KEY: "uid", GID_KEY: "gid", MODE_KEY: "file_mode"}
NEVER_SHOWN_BITS = stat_module.S_ISUID | stat_module.S_ISGID
LARGEST_ID = 2**32 - 2  # uid_t and gid_t are 32 bits; 2**32 - 1 is (uid_t) -1, "no owner"
LARGEST_SECONDS = (2**63 - 1) // 10**9  # st_mtime_ns is a signed 64-bit count of nanoseconds

# Each key's base and the values an attribute can hold. A mode may carry its file-type bits (st_mode).
_READERS: dict[str, tuple[int, Callable[[int], bool]]] = {
    MODE_KEY: (8, lambda value: 0 <= value <= 0o177777),
    UID_KEY: (10, lambda value: 0 <= value <= LARGEST_ID),
    GID_KEY: (10, lambda value: 0 <= value <= LARGEST_ID),
    MTIME_KEY: (10, lambda value: -LARGEST_SECONDS <= value <= LARGEST_SECONDS),
}


@dataclass(frozen=True)
class PosixAttributes:
    mode: int
    uid: int
    gid: int
    mtime_ns: int


def shown_keys(config: MountConfig) -> frozenset[str]:
    """The stored keys this mount shows (see the module's docstring for why)."""
    if not config.trust_stored_owners:
        return frozenset({MTIME_KEY})
    return frozenset(key for key in KEYS if FIXED_BY.get(key) not in config.given_options)


def read(
    custom: Mapping[str, str | None], default: PosixAttributes, shown: frozenset[str]
) -> tuple[PosixAttributes, list[str]]:
    """The attributes to show, and the shown keys whose stored value no attribute can hold (each is
    shown as `default`'s, so one bad object never fails a listing)."""
    values: dict[str, int] = {}
    unusable = []
    for key in sorted(shown):
        text = custom.get(key)
        if text is None:
            continue
        base, holds = _READERS[key]
        try:
            value = int(text, base)
        except ValueError:
            unusable.append(key)
            continue
        if holds(value):
            values[key] = value
        else:
            unusable.append(key)
    attributes = PosixAttributes(
        mode=stat_module.S_IMODE(values[MODE_KEY]) & ~NEVER_SHOWN_BITS if MODE_KEY in values else default.mode,
        uid=values.get(UID_KEY, default.uid),
        gid=values.get(GID_KEY, default.gid),
        mtime_ns=values[MTIME_KEY] * 10**9 if MTIME_KEY in values else default.mtime_ns,
    )
    return attributes, unusable


def changes(attr: pyfuse3.EntryAttributes, fields: pyfuse3.SetattrFields, owners: bool) -> dict[str, str]:
    """The custom-metadata keys a setattr call changes; mode and owner only if `owners` are stored."""
    changed = {}
    if fields.update_mode and owners:
        changed[MODE_KEY] = format(stat_module.S_IMODE(attr.st_mode), "o")
    if fields.update_uid and owners:
        changed[UID_KEY] = str(attr.st_uid)
    if fields.update_gid and owners:
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


def carried(custom: Mapping[str, str]) -> dict[str, str]:
    """The POSIX keys of `custom`, to carry onto an object that replaces this one."""
    return {key: custom[key] for key in KEYS if key in custom}
