"""POSIX attributes kept in an object's custom metadata, under gsutil's `goog-reserved-*` keys.

An object has no mode, owner or mtime of its own. `chmod`, `chown` and `touch` (and so `cp -p`,
`rsync -a`, `tar x`) store them here, exactly as `gsutil rsync -P` does, so both tools agree;
objects without them show the mount's `file_mode`, `uid`, `gid` and their update time.

Anyone who can write the bucket writes these keys, so honouring them as stored would let a bucket
writer grant: pick which local user owns a file, make it setuid, or open it to every local user of
an `allow_other` mount. By default a bucket can therefore only take permissions away, never grant
them: a stored mode is shown intersected with the mount's `file_mode` (a narrower mode denies only,
and the mount's own user, who owns every file, can chmod it back), never setuid/setgid, and stored
owners are neither written nor shown (an owner always grants), so chown changes nothing. chmod and
create store the mode as gsutil does, so `chmod 600` and `open(O_CREAT, 0o600)` show 0600 here and
on the next mount. With `trust_stored_owners` (single-tenant buckets, POSIX test runs) stored owners
and modes are written and shown as they are, but never setuid/setgid and never over a `uid`, `gid`
or `file_mode` the user gave. A time grants nothing, so a stored mtime is always shown. Values no
attribute can hold are shown as the mount's values and reported, never passed to the kernel.

The file type is kept here too, in the forms other tools read. A symbolic link is gcsfuse's (3.9 on):
the target as the object's content, marked by `goog-reserved-file-is-symlink: true`, and the target
also in `gcsfuse_symlink_target`, the only form gcsfuse before 3.9 reads (its objects are empty).
A FIFO, socket or device node is an empty object whose stored mode carries its type bits (S_IFIFO,
...), as s3fs stores a mode and reads this key; a device node's number is in `octuefs-posix-rdev`
(no other tool stores one). A stored mode with any other type bits is a regular file's.

A directory keeps the same keys on its placeholder object (`dir/`), made when a directory that had
none (a bare prefix) is given a mode, owner or time; the same rules decide what is shown, with the
mount's `dir_mode` in place of `file_mode`. ctime, which no other tool stores, is ours:
`octuefs-posix-ctime`, seconds like gsutil's mtime, written with every chmod, chown and utimens (the
changes that make no new object); a write, rename or copy makes a new object, whose time is its ctime.
"""

from __future__ import annotations

import contextlib
import stat as stat_module
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pyfuse3

    from octuefs.fs.config import MountConfig

MTIME_KEY = "goog-reserved-file-mtime"
ATIME_KEY = "goog-reserved-file-atime"
CTIME_KEY = "octuefs-posix-ctime"
MODE_KEY = "goog-reserved-posix-mode"
UID_KEY = "goog-reserved-posix-uid"
GID_KEY = "goog-reserved-posix-gid"
KEYS = (MTIME_KEY, ATIME_KEY, MODE_KEY, UID_KEY, GID_KEY)
TIME_KEYS = frozenset({MTIME_KEY, ATIME_KEY, CTIME_KEY})
SYMLINK_KEY = "goog-reserved-file-is-symlink"
SYMLINK_TARGET_KEY = "gcsfuse_symlink_target"
RDEV_KEY = "octuefs-posix-rdev"
SPECIAL_TYPES = frozenset({stat_module.S_IFIFO, stat_module.S_IFSOCK, stat_module.S_IFCHR, stat_module.S_IFBLK})
DEVICE_TYPES = frozenset({stat_module.S_IFCHR, stat_module.S_IFBLK})
LARGEST_RDEV = 2**32 - 1  # the FUSE protocol's rdev is 32 bits

# The option that fixes each owner or mode key: given, it wins over a stored value even when trusted.
FIXED_BY = {UID_KEY: "uid", GID_KEY: "gid", MODE_KEY: "file_mode"}
FIXED_BY_FOR_DIRECTORIES = FIXED_BY | {MODE_KEY: "dir_mode"}
NEVER_SHOWN_BITS = stat_module.S_ISUID | stat_module.S_ISGID
LARGEST_ID = 2**32 - 2  # uid_t and gid_t are 32 bits; 2**32 - 1 is (uid_t) -1, "no owner"
LARGEST_SECONDS = (2**63 - 1) // 10**9  # st_mtime_ns is a signed 64-bit count of nanoseconds

# Each key's base and the values an attribute can hold. A mode may carry its file-type bits (st_mode).
_READERS: dict[str, tuple[int, Callable[[int], bool]]] = {
    MODE_KEY: (8, lambda value: 0 <= value <= 0o177777),
    UID_KEY: (10, lambda value: 0 <= value <= LARGEST_ID),
    GID_KEY: (10, lambda value: 0 <= value <= LARGEST_ID),
    **{key: (10, lambda value: -LARGEST_SECONDS <= value <= LARGEST_SECONDS) for key in TIME_KEYS},
    RDEV_KEY: (10, lambda value: 0 <= value <= LARGEST_RDEV),
}


@dataclass(frozen=True)
class PosixAttributes:
    mode: int
    uid: int
    gid: int
    mtime_ns: int
    # Never before the mtime shown, nor (in a default) before the object's own time.
    ctime_ns: int = 0
    atime_ns: int = 0  # the mtime unless one was stored (reads never change it, as with noatime)


@dataclass(frozen=True)
class Shown:
    """The stored keys a mount shows, and the permission bits a stored mode may keep there."""

    keys: frozenset[str]
    mode_bits: int


def shown(config: MountConfig, directory: bool = False) -> Shown:
    """What this mount shows of the stored keys of a file or, with `directory`, of a directory's
    placeholder (see the module's docstring for why)."""
    if not config.trust_stored_owners:
        mode = config.dir_mode if directory else config.file_mode
        return Shown(TIME_KEYS | {MODE_KEY}, mode & ~NEVER_SHOWN_BITS)
    fixed_by = FIXED_BY_FOR_DIRECTORIES if directory else FIXED_BY
    keys = frozenset(key for key in (*KEYS, CTIME_KEY) if fixed_by.get(key) not in config.given_options)
    return Shown(keys, 0o7777 & ~NEVER_SHOWN_BITS)


def read(custom: Mapping[str, str | None], default: PosixAttributes, shown: Shown) -> tuple[PosixAttributes, list[str]]:
    """The attributes to show, and the shown keys whose stored value no attribute can hold (each is
    shown as `default`'s, so one bad object never fails a listing)."""
    values: dict[str, int] = {}
    unusable = []
    for key in sorted(shown.keys):
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
    mtime_ns = values[MTIME_KEY] * 10**9 if MTIME_KEY in values else default.mtime_ns
    attributes = PosixAttributes(
        mode=stat_module.S_IMODE(values[MODE_KEY]) & shown.mode_bits if MODE_KEY in values else default.mode,
        uid=values.get(UID_KEY, default.uid),
        gid=values.get(GID_KEY, default.gid),
        mtime_ns=mtime_ns,
        ctime_ns=max(values.get(CTIME_KEY, 0) * 10**9, default.ctime_ns, default.mtime_ns, mtime_ns),
        atime_ns=values[ATIME_KEY] * 10**9 if ATIME_KEY in values else mtime_ns,
    )
    return attributes, unusable


def stored_mode(st_mode: int) -> str:
    """The mode key's value: the permission bits, as gsutil stores them, and the type bits of a
    special file, whose type lives only here (the kernel's chmod passes them along)."""
    kind = stat_module.S_IFMT(st_mode)
    return format(stat_module.S_IMODE(st_mode) | (kind if kind in SPECIAL_TYPES else 0), "o")


def file_type(custom: Mapping[str, str]) -> int:
    """S_IFLNK, S_IFIFO, S_IFSOCK, S_IFCHR or S_IFBLK as the object's metadata says; else S_IFREG."""
    if SYMLINK_TARGET_KEY in custom or custom.get(SYMLINK_KEY) == "true":
        return stat_module.S_IFLNK
    mode = _usable(custom, MODE_KEY)
    kind = stat_module.S_IFMT(mode) if mode is not None else stat_module.S_IFREG
    return kind if kind in SPECIAL_TYPES else stat_module.S_IFREG


def _usable(custom: Mapping[str, str], key: str) -> int | None:
    """The key's stored value if an attribute can hold it (see `read`); else None."""
    base, holds = _READERS[key]
    try:
        value = int(custom[key], base)
    except (KeyError, ValueError):
        return None
    return value if holds(value) else None


def link_target_in_content(custom: Mapping[str, str]) -> bool:
    """Whether a link's target is its object's content (gcsfuse's form since 3.9, which wins over the
    older key when both are there, as gcsfuse reads them) rather than the older key's value."""
    return custom.get(SYMLINK_KEY) == "true"


def link_size(custom: Mapping[str, str], object_size: int) -> int:
    """A link's st_size: the length of its target in bytes."""
    if link_target_in_content(custom):
        return object_size
    return len(custom.get(SYMLINK_TARGET_KEY, "").encode("utf-8", "surrogateescape"))


def link_metadata(target: bytes) -> dict[str, str]:
    """A new link's keys (its target is also its content). A target that is not UTF-8 cannot be a
    metadata value: it is then in the content only, which gcsfuse before 3.9 cannot read."""
    metadata = {SYMLINK_KEY: "true"}
    with contextlib.suppress(UnicodeDecodeError):
        metadata[SYMLINK_TARGET_KEY] = target.decode()
    return metadata


def device(custom: Mapping[str, str]) -> int:
    """A device node's number (st_rdev, as the FUSE protocol encodes it); 0 when none is usable."""
    rdev = _usable(custom, RDEV_KEY)
    return rdev if rdev is not None and file_type(custom) in DEVICE_TYPES else 0


def special_metadata(mode: int, rdev: int) -> dict[str, str]:
    """A FIFO's, socket's or device node's keys: its type and permissions, and a device's number."""
    metadata = {MODE_KEY: stored_mode(mode)}
    if stat_module.S_IFMT(mode) in DEVICE_TYPES:
        metadata[RDEV_KEY] = str(rdev)
    return metadata


def as_regular(metadata: Mapping[str, str]) -> dict[str, str]:
    """`metadata` for a regular file taking over another object's: without a link's keys, a special
    file's type bits and a device number, or the file would show as what it replaced."""
    regular = {key: value for key, value in metadata.items() if key not in (SYMLINK_KEY, SYMLINK_TARGET_KEY, RDEV_KEY)}
    if file_type(metadata) in SPECIAL_TYPES:
        regular[MODE_KEY] = stored_mode(int(metadata[MODE_KEY], 8) & 0o7777)
    return regular


def changes(attr: pyfuse3.EntryAttributes, fields: pyfuse3.SetattrFields, owners: bool, now_ns: int) -> dict[str, str]:
    """The custom-metadata keys a setattr call changes; owners only if `owners` are stored; with any
    of them, the ctime (`now_ns`)."""
    changed = {}
    if fields.update_mode:
        changed[MODE_KEY] = stored_mode(attr.st_mode)
    if fields.update_uid and owners:
        changed[UID_KEY] = str(attr.st_uid)
    if fields.update_gid and owners:
        changed[GID_KEY] = str(attr.st_gid)
    if fields.update_mtime:
        changed[MTIME_KEY] = str(attr.st_mtime_ns // 10**9)
    if fields.update_atime:
        changed[ATIME_KEY] = str(attr.st_atime_ns // 10**9)
    if changed:
        changed[CTIME_KEY] = str(now_ns // 10**9)
    return changed


def created(mode: int, uid: int, gid: int, default: PosixAttributes, owners: bool) -> dict[str, str]:
    """The keys a new file needs to show the mode (and, if `owners` are stored, the owner) it was
    created with, stored as chmod and chown store them. Only those that differ from what the mount
    shows for a file that says nothing: files written the ordinary way then carry Octue's keys alone,
    as other writers' files do."""
    wanted = {MODE_KEY: format(stat_module.S_IMODE(mode), "o")}
    shown = {MODE_KEY: format(default.mode, "o")}
    if owners:
        wanted |= {UID_KEY: str(uid), GID_KEY: str(gid)}
        shown |= {UID_KEY: str(default.uid), GID_KEY: str(default.gid)}
    return {key: value for key, value in wanted.items() if value != shown[key]}


def carried(custom: Mapping[str, str]) -> dict[str, str]:
    """The POSIX keys of `custom`, to carry onto an object that replaces this one."""
    return {key: custom[key] for key in KEYS if key in custom}
