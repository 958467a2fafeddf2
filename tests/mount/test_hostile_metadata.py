"""Custom metadata a hostile bucket writer stored, seen through a real mount: it can neither break a
listing or a read, nor make a file owned by a local user it names, nor show setuid or setgid.

The objects' metadata is written directly on the server, as any client with write access may. By
default the mount's `--uid/--gid/--file-mode` apply to every file (as gcsfuse and mountpoint-s3 do);
`--trust-stored-owners` honours stored owners and modes (never setuid/setgid, never over a given
`--uid/--gid/--file-mode`) for single-tenant buckets and POSIX test runs.
"""

from __future__ import annotations

import os
import stat

import pytest

from tests.mount.conftest import alive, is_mount

pytestmark = pytest.mark.timeout(90)

CONTENT = b"hostile\n"
DEEP_TAGS = '{"deep": ' + "[" * 990 + "]" * 990 + "}"
OUT_OF_RANGE = {
    "goog-reserved-posix-uid": "-1",
    "goog-reserved-posix-gid": "99999999999999999999",
    "goog-reserved-posix-mode": "7777777777777777777777",
    "goog-reserved-file-mtime": "99999999999999999999999",
}
CLAIMED = {"goog-reserved-posix-uid": "1001", "goog-reserved-posix-gid": "1001", "goog-reserved-posix-mode": "6777"}
STORED_MTIME = 1612325106


def put(bucket, name: str, metadata: dict[str, str]) -> None:
    blob = bucket.blob(name)
    blob.metadata = metadata
    blob.upload_from_string(CONTENT)


@pytest.fixture
def hostile(bucket) -> None:
    put(bucket, "dir/out-of-range.txt", OUT_OF_RANGE)
    put(bucket, "dir/negative-mtime.txt", {"goog-reserved-file-mtime": "-99999999999999"})
    put(bucket, "dir/deep.txt", {"octue__tags": DEEP_TAGS, "octue__labels": '["kept"]'})
    put(bucket, "dir/claims-owner.txt", {**CLAIMED, "goog-reserved-file-mtime": str(STORED_MTIME)})
    put(bucket, "dir/fine.txt", {})


def test_out_of_range_posix_values_list_with_the_mounts_values_and_one_warning_per_object(hostile, mount):
    for options, reported in (((), {"goog-reserved-file-mtime"}), (("--trust-stored-owners",), set(OUT_OF_RANGE))):
        mounted = mount("", *options)
        listing = mounted.sh("ls", "-ln", mounted / "dir").stdout.decode()
        assert "out-of-range.txt" in listing and "negative-mtime.txt" in listing and "fine.txt" in listing
        for name in ("out-of-range.txt", "negative-mtime.txt"):
            for _ in range(3):
                status = mounted.call(os.stat, mounted / "dir" / name)
            assert (status.st_uid, status.st_gid, stat.S_IMODE(status.st_mode)) == (os.getuid(), os.getgid(), 0o644)
            assert 0 < status.st_mtime < 2**32
            assert mounted.read_bytes(f"dir/{name}") == CONTENT
        warnings = [line for line in mounted.log.splitlines() if "out-of-range.txt" in line]
        assert len(warnings) == 1 and f"gs://{mounted.source}/dir/out-of-range.txt: stored" in warnings[0]
        assert {key for key in OUT_OF_RANGE if key in warnings[0]} == reported
        assert sum("negative-mtime.txt" in line for line in mounted.log.splitlines()) == 1
        assert alive(mounted.pid) and is_mount(mounted.path)


def test_tags_nested_too_deep_read_as_none_and_the_file_still_reads(hostile, mount):
    mounted = mount()
    assert mounted.sh("cat", mounted / "dir/deep.txt").stdout == CONTENT
    shown = mounted.sh("getfattr", "-d", "--absolute-names", mounted / "dir/deep.txt").stdout.decode()
    assert 'user.octue.tags="{}"' in shown and 'user.octue.labels="kept"' in shown
    assert mounted.call(os.getxattr, mounted / "dir/deep.txt", "user.octue.tags") == b"{}"
    assert f"gs://{mounted.source}/dir/deep.txt: stored tags" in mounted.log
    assert "levels deep" in mounted.log and "RecursionError" not in mounted.log
    assert alive(mounted.pid)


def test_by_default_a_bucket_grants_no_owner_mode_or_setuid(hostile, mount):
    mounted = mount("", "--allow-other", "--uid", "4321", "--gid", "4322", "--file-mode", "640")
    status = mounted.call(os.stat, mounted / "dir/claims-owner.txt")
    assert (status.st_uid, status.st_gid, stat.S_IMODE(status.st_mode)) == (4321, 4322, 0o640)
    assert int(status.st_mtime) == STORED_MTIME  # a time grants nothing: it is still shown

    default = mount()
    status = default.call(os.stat, default / "dir/claims-owner.txt")
    assert (status.st_uid, status.st_gid, stat.S_IMODE(status.st_mode)) == (os.getuid(), os.getgid(), 0o644)


def test_trusted_stored_owners_show_but_never_setuid_nor_over_a_given_option(hostile, mount):
    trusting = mount("", "--trust-stored-owners")
    status = trusting.call(os.stat, trusting / "dir/claims-owner.txt")
    assert (status.st_uid, status.st_gid, stat.S_IMODE(status.st_mode)) == (1001, 1001, 0o777)

    given = mount("", "-o", "trust_stored_owners,uid=4321,file_mode=600")
    status = given.call(os.stat, given / "dir/claims-owner.txt")
    assert (status.st_uid, status.st_gid, stat.S_IMODE(status.st_mode)) == (4321, 1001, 0o600)


def test_chmod_and_chown_without_trust_change_nothing_shown_or_stored(hostile, mount, bucket):
    """As on gcsfuse: accepted (so `cp -p`, `rsync -a` and `tar x` work) but the mount's values stay."""
    mounted = mount()
    path = mounted / "dir/fine.txt"
    mounted.sh("chmod", "4755", path)
    mounted.sh("chown", "1001:1001", path)
    mounted.sh("touch", "-m", "-d", f"@{STORED_MTIME}", path)
    status = mounted.call(os.stat, path)
    assert (status.st_uid, status.st_gid, stat.S_IMODE(status.st_mode)) == (os.getuid(), os.getgid(), 0o644)
    assert int(status.st_mtime) == STORED_MTIME
    metadata = bucket.get_blob("dir/fine.txt").metadata
    assert {key: value for key, value in metadata.items() if key.startswith("goog-reserved")} == {
        "goog-reserved-file-mtime": str(STORED_MTIME)
    }


def test_chmod_and_chown_with_trust_are_stored_and_shown_without_setuid(hostile, mount, bucket):
    mounted = mount("", "--trust-stored-owners")
    path = mounted / "dir/fine.txt"
    mounted.sh("chmod", "4750", path)
    mounted.sh("chown", "1001:1002", path)
    status = mounted.call(os.stat, path)
    assert (status.st_uid, status.st_gid, stat.S_IMODE(status.st_mode)) == (1001, 1002, 0o750)
    metadata = bucket.get_blob("dir/fine.txt").metadata
    assert (metadata["goog-reserved-posix-uid"], metadata["goog-reserved-posix-gid"]) == ("1001", "1002")
    assert metadata["goog-reserved-posix-mode"] in ("4750", "750")
