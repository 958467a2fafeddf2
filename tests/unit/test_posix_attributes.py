"""Which stored POSIX attributes a mount shows, and the values it refuses to pass to the kernel."""

from __future__ import annotations

from pathlib import Path

import pytest

from octuefs.fs import posix
from octuefs.fs.config import MountConfig

DEFAULT = posix.PosixAttributes(mode=0o644, uid=1000, gid=1000, mtime_ns=5 * 10**9)
TRUSTED = frozenset(posix.KEYS)


def config(**options: object) -> MountConfig:
    return MountConfig(bucket="bucket", prefix="", mountpoint=Path("/mnt"), given_options=frozenset(options), **options)


def test_by_default_only_the_mtime_is_shown_and_trust_yields_to_given_options() -> None:
    assert posix.shown_keys(config()) == {posix.MTIME_KEY}
    assert posix.shown_keys(config(trust_stored_owners=True)) == TRUSTED
    fixed = config(trust_stored_owners=True, uid=0, file_mode=0o600)
    assert posix.shown_keys(fixed) == {posix.MTIME_KEY, posix.GID_KEY}


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
    ],
)
def test_values_no_attribute_can_hold_show_the_default_and_are_reported(key: str, text: str, shown) -> None:
    attributes, unusable = posix.read({key: text}, DEFAULT, TRUSTED)
    field, value = shown
    assert getattr(attributes, field) == value
    assert unusable == ([] if value != getattr(DEFAULT, field) else [key])


def test_keys_not_shown_are_neither_read_nor_reported() -> None:
    attributes, unusable = posix.read({posix.UID_KEY: "-1", posix.MODE_KEY: "4777"}, DEFAULT, frozenset())
    assert (attributes, unusable) == (DEFAULT, [])
