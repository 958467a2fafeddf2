"""Which stored POSIX attributes a mount shows (by default a bucket only takes permissions away),
which a chmod, chown or create stores, and the values a mount refuses to pass to the kernel."""

from __future__ import annotations

import stat
from pathlib import Path
from types import SimpleNamespace

import pytest

from octuefs.fs import posix
from octuefs.fs.config import MountConfig

DEFAULT = posix.PosixAttributes(0o644, 1000, 1000, mtime_ns=5 * 10**9, ctime_ns=5 * 10**9, atime_ns=5 * 10**9)
SHOWN_UNTRUSTED = posix.TIME_KEYS | {posix.MODE_KEY}
TRUSTED = posix.Shown(frozenset(posix.KEYS), 0o1777)


def config(**options: object) -> MountConfig:
    return MountConfig(bucket="bucket", prefix="", mountpoint=Path("/mnt"), given_options=frozenset(options), **options)


def test_by_default_stored_modes_only_narrow_the_mounts_and_trust_yields_to_given_options() -> None:
    assert posix.shown(config()) == posix.Shown(SHOWN_UNTRUSTED, 0o644)
    assert posix.shown(config(file_mode=0o6750)) == posix.Shown(SHOWN_UNTRUSTED, 0o750)
    assert posix.shown(config(trust_stored_owners=True)) == posix.Shown(TRUSTED.keys | {posix.CTIME_KEY}, 0o1777)
    fixed = config(trust_stored_owners=True, uid=0, file_mode=0o600)
    assert posix.shown(fixed).keys == posix.TIME_KEYS | {posix.GID_KEY}


def test_a_directory_is_shown_by_the_same_rules_with_the_mounts_dir_mode() -> None:
    assert posix.shown(config(dir_mode=0o1775), directory=True) == posix.Shown(SHOWN_UNTRUSTED, 0o1775)
    assert posix.shown(config(file_mode=0o600, trust_stored_owners=True), directory=True).keys == (
        TRUSTED.keys | {posix.CTIME_KEY}
    )
    fixed = config(dir_mode=0o700, trust_stored_owners=True)
    assert posix.MODE_KEY not in posix.shown(fixed, directory=True).keys
    assert posix.MODE_KEY in posix.shown(fixed).keys


@pytest.mark.parametrize(
    ("stored", "ctime_ns"),
    [({}, 5 * 10**9), ({posix.CTIME_KEY: "9"}, 9 * 10**9), ({posix.CTIME_KEY: "9", posix.MTIME_KEY: "12"}, 12 * 10**9),
     ({posix.CTIME_KEY: "1"}, 5 * 10**9)],
)  # fmt: skip
def test_ctime_is_the_stored_one_but_never_before_the_mtime_or_the_objects_time(stored, ctime_ns) -> None:
    attributes, unusable = posix.read(stored, DEFAULT, posix.shown(config()))
    assert (attributes.ctime_ns, unusable) == (ctime_ns, [])


@pytest.mark.parametrize(
    ("stored", "mount_mode", "shown_mode"),
    [("600", 0o644, 0o600), ("0", 0o644, 0o000), ("4777", 0o644, 0o644), ("100777", 0o640, 0o640),
     ("6755", 0o6777, 0o755), ("1777", 0o644, 0o644), ("640", 0o604, 0o600)],
)  # fmt: skip
def test_by_default_a_stored_mode_can_take_permissions_away_but_never_grant(
    stored: str, mount_mode: int, shown_mode: int
) -> None:
    default = posix.PosixAttributes(mount_mode, 1000, 1000, 0)
    custom = {posix.MODE_KEY: stored, posix.UID_KEY: "0", posix.GID_KEY: "0"}
    attributes, unusable = posix.read(custom, default, posix.shown(config(file_mode=mount_mode)))
    assert (attributes.mode, attributes.uid, attributes.gid, unusable) == (shown_mode, 1000, 1000, [])


@pytest.mark.parametrize(
    ("key", "text", "shown"),
    [
        (posix.UID_KEY, "4294967294", ("uid", 2**32 - 2)),
        (posix.UID_KEY, "4294967295", ("uid", 1000)),
        (posix.UID_KEY, "-1", ("uid", 1000)),
        (posix.GID_KEY, "99999999999999999999", ("gid", 1000)),
        (posix.GID_KEY, "twelve", ("gid", 1000)),
        (posix.MODE_KEY, "100640", ("mode", 0o640)),
        (posix.MODE_KEY, "6777", ("mode", 0o777)),
        (posix.MODE_KEY, "1777", ("mode", 0o1777)),
        (posix.MODE_KEY, "7777777777777777777777", ("mode", 0o644)),
        (posix.MTIME_KEY, "-86400", ("mtime_ns", -86400 * 10**9)),
        (posix.MTIME_KEY, str(posix.LARGEST_SECONDS + 1), ("mtime_ns", 5 * 10**9)),
        (posix.ATIME_KEY, "86400", ("atime_ns", 86400 * 10**9)),
    ],
)
def test_values_no_attribute_can_hold_show_the_default_and_are_reported(key: str, text: str, shown) -> None:
    attributes, unusable = posix.read({key: text}, DEFAULT, TRUSTED)
    field, value = shown
    assert getattr(attributes, field) == value
    assert unusable == ([] if value != getattr(DEFAULT, field) else [key])


def test_keys_not_shown_are_neither_read_nor_reported() -> None:
    nothing = posix.Shown(frozenset(), 0o7777)
    attributes, unusable = posix.read({posix.UID_KEY: "-1", posix.MODE_KEY: "4777"}, DEFAULT, nothing)
    assert (attributes, unusable) == (DEFAULT, [])


def test_chmod_and_create_store_the_mode_always_and_the_owner_only_when_trusted() -> None:
    """The mode is stored even untrusted (it is shown narrowed); an owner is stored only if shown."""
    attr, fields = (
        SimpleNamespace(st_mode=0o100600, st_uid=7, st_gid=8, st_mtime_ns=3 * 10**9),
        SimpleNamespace(update_mode=True, update_uid=True, update_gid=True, update_mtime=False, update_atime=False),
    )
    now = 1_700_000_000 * 10**9 + 5
    assert posix.changes(attr, fields, False, now) == {posix.MODE_KEY: "600", posix.CTIME_KEY: "1700000000"}
    assert posix.changes(attr, fields, True, now) == {
        posix.MODE_KEY: "600",
        posix.UID_KEY: "7",
        posix.GID_KEY: "8",
        posix.CTIME_KEY: "1700000000",
    }
    touched = SimpleNamespace(
        update_mode=False, update_uid=False, update_gid=False, update_mtime=True, update_atime=True
    )
    times = SimpleNamespace(st_mtime_ns=3 * 10**9 + 7, st_atime_ns=2 * 10**9)
    assert posix.changes(times, touched, False, now) == {
        posix.MTIME_KEY: "3",
        posix.ATIME_KEY: "2",
        posix.CTIME_KEY: "1700000000",
    }
    chown_untrusted = SimpleNamespace(
        update_mode=False, update_uid=True, update_gid=True, update_mtime=False, update_atime=False
    )
    assert posix.changes(attr, chown_untrusted, False, now) == {}  # nothing changed: ctime stays
    assert posix.created(0o100600, 7, 8, DEFAULT, owners=False) == {posix.MODE_KEY: "600"}
    assert posix.created(0o100644, 7, 8, DEFAULT, owners=False) == {}
    assert posix.created(0o100644, 7, 1000, DEFAULT, owners=True) == {posix.UID_KEY: "7"}


@pytest.mark.parametrize(
    ("custom", "kind"),
    [
        ({}, stat.S_IFREG),
        ({posix.MODE_KEY: "644"}, stat.S_IFREG),
        ({posix.MODE_KEY: "100644"}, stat.S_IFREG),  # a regular file's type bits, as some tools store them
        ({posix.MODE_KEY: "40755"}, stat.S_IFREG),  # an object is never a directory by its mode
        ({posix.MODE_KEY: "not octal"}, stat.S_IFREG),
        ({posix.MODE_KEY: "7777777777777777777777"}, stat.S_IFREG),  # no st_mode holds it
        ({posix.MODE_KEY: "10640"}, stat.S_IFIFO),
        ({posix.MODE_KEY: "140755"}, stat.S_IFSOCK),
        ({posix.MODE_KEY: "20600"}, stat.S_IFCHR),
        ({posix.MODE_KEY: "60600"}, stat.S_IFBLK),
        ({posix.SYMLINK_KEY: "true"}, stat.S_IFLNK),
        ({posix.SYMLINK_KEY: "false"}, stat.S_IFREG),
        ({posix.SYMLINK_TARGET_KEY: "t"}, stat.S_IFLNK),
    ],
)
def test_the_file_type_comes_from_gcsfuses_link_keys_or_the_stored_modes_type_bits(custom, kind) -> None:
    assert posix.file_type(custom) == kind


def test_a_links_size_is_its_targets_length_wherever_the_target_is() -> None:
    assert posix.link_size({posix.SYMLINK_KEY: "true", posix.SYMLINK_TARGET_KEY: "ab"}, 7) == 7
    assert posix.link_size({posix.SYMLINK_TARGET_KEY: "dé"}, 0) == 3


def test_chmod_keeps_a_special_files_type_and_a_file_saved_over_one_is_regular() -> None:
    assert posix.stored_mode(stat.S_IFIFO | 0o600) == "10600"
    assert posix.stored_mode(stat.S_IFREG | 0o600) == "600"
    assert posix.stored_mode(stat.S_IFLNK | 0o777) == "777"
    device = {posix.MODE_KEY: "20600", posix.RDEV_KEY: "259", "octue__id": "x"}
    assert posix.device(device) == 259
    assert posix.as_regular(device) == {posix.MODE_KEY: "600", "octue__id": "x"}
    link = {posix.SYMLINK_KEY: "true", posix.SYMLINK_TARGET_KEY: "t", posix.MTIME_KEY: "1"}
    assert posix.as_regular(link) == {posix.MTIME_KEY: "1"}


@pytest.mark.parametrize("rdev", ["-1", str(2**32), "x"])
def test_a_device_number_no_attribute_can_hold_shows_as_none(rdev: str) -> None:
    assert posix.device({posix.MODE_KEY: "20600", posix.RDEV_KEY: rdev}) == 0
    assert posix.device({posix.MODE_KEY: "10600", posix.RDEV_KEY: "259"}) == 0
