"""Directories' mode, owner and times, ctime and st_nlink, on a real mount with real tools and syscalls.

The kernel enforces what is shown (`default_permissions`): with --trust-stored-owners another local
user is let in or kept out by a directory's stored mode, and a sticky directory keeps users from
removing each other's files. ctime moves with every change of a file's status.
"""

from __future__ import annotations

import os
import stat
import subprocess
import time

import pytest

from tests.mount.conftest import COMMAND_TIMEOUT

pytestmark = pytest.mark.timeout(120)

STORED_MTIME = 1500000000
NOBODY = 65534


def shown(mounted, name: str) -> tuple[int, int, int]:
    status = mounted.call(os.stat, mounted / name)
    return stat.S_IMODE(status.st_mode), status.st_uid, status.st_gid


def as_user(uid: int, gid: int, directory, *command: str) -> subprocess.CompletedProcess:
    """`command` run in `directory` as `uid` (the directory is entered as root, before the switch)."""
    return subprocess.run(
        command, cwd=directory, user=uid, group=gid, extra_groups=[], capture_output=True, timeout=COMMAND_TIMEOUT
    )


def test_chmod_chown_and_touch_of_a_directory_are_kept_over_a_remount(mount, bucket):
    mounted = mount("", "--trust-stored-owners")
    mounted.sh("mkdir", "-m", "750", mounted / "made")
    bucket.blob("implicit/file.txt").upload_from_string(b"data")  # a bare prefix: no placeholder yet
    for name in ("made", "implicit"):
        mounted.sh("chmod", "1770", mounted / name)
        mounted.sh("chown", "1001:1002", mounted / name)
        mounted.sh("touch", "-m", "-d", f"@{STORED_MTIME}", mounted / name)
        assert shown(mounted, name) == (0o1770, 1001, 1002)

    again = mount("", "--trust-stored-owners")
    for name in ("made", "implicit"):
        assert shown(again, name) == (0o1770, 1001, 1002)
        assert int(again.call(os.stat, again / name).st_mtime) == STORED_MTIME
        metadata = bucket.get_blob(f"{name}/").metadata
        assert metadata["goog-reserved-posix-mode"] == "1770"
        assert (metadata["goog-reserved-posix-uid"], metadata["goog-reserved-posix-gid"]) == ("1001", "1002")
        assert metadata["goog-reserved-file-mtime"] == str(STORED_MTIME)
    assert again.read_bytes("implicit/file.txt") == b"data"

    untrusting = mount()  # owners are not shown, and a mode only as far as it takes away
    assert shown(untrusting, "made") == (0o750, os.getuid(), os.getgid())


def test_a_directory_mode_another_client_stored_is_shown(mount, bucket):
    placeholder = bucket.blob("theirs/")
    placeholder.metadata = {"goog-reserved-posix-mode": "700", "goog-reserved-posix-uid": "1001"}
    placeholder.upload_from_string(b"")
    mounted = mount("", "--trust-stored-owners")
    assert shown(mounted, "theirs") == (0o700, 1001, os.getgid())
    assert mounted.sh("stat", "-c", "%A %u", mounted / "theirs").stdout == b"drwx------ 1001\n"


def test_another_user_is_kept_out_and_let_in_by_the_stored_directory_mode(mount, other_user):
    mounted = mount("", "--trust-stored-owners", "--allow-other")
    mounted.sh("mkdir", "-m", "700", mounted / "private")
    mounted.sh("touch", mounted / "private/secret")
    user = (other_user.uid, other_user.gid)

    listing = as_user(*user, mounted.path, "ls", "private")
    assert listing.returncode != 0 and b"Permission denied" in listing.stderr
    creating = as_user(*user, mounted.path, "touch", "private/mine")
    assert creating.returncode != 0 and b"Permission denied" in creating.stderr

    mounted.sh("chmod", "777", mounted / "private")
    assert as_user(*user, mounted.path, "ls", "private").stdout == b"secret\n"
    assert as_user(*user, mounted.path, "touch", "private/mine").returncode == 0
    assert shown(mounted, "private/mine")[1:] == user

    mounted.sh("chown", f"{other_user.uid}:{other_user.gid}", mounted / "private")
    mounted.sh("chmod", "700", mounted / "private")
    again = mount("", "--trust-stored-owners", "--allow-other")
    assert as_user(*user, again.path, "ls", "private").stdout == b"mine\nsecret\n"
    refused = as_user(NOBODY, NOBODY, again.path, "ls", "private")
    assert refused.returncode != 0 and b"Permission denied" in refused.stderr


def test_a_sticky_directory_keeps_users_from_removing_each_others_files(mount, other_user):
    mounted = mount("", "--trust-stored-owners", "--allow-other")
    mounted.sh("mkdir", "-m", "1777", mounted / "shared")
    assert shown(mounted, "shared")[0] == 0o1777
    user = (other_user.uid, other_user.gid)
    assert as_user(NOBODY, NOBODY, mounted.path, "touch", "shared/nobodys").returncode == 0
    assert as_user(*user, mounted.path, "touch", "shared/users").returncode == 0

    refused = as_user(*user, mounted.path, "rm", "-f", "shared/nobodys")
    assert refused.returncode != 0 and b"Operation not permitted" in refused.stderr
    refused = as_user(*user, mounted.path, "mv", "shared/nobodys", "shared/taken")
    assert refused.returncode != 0
    assert as_user(*user, mounted.path, "rm", "shared/users").returncode == 0
    assert as_user(NOBODY, NOBODY, mounted.path, "rm", "shared/nobodys").returncode == 0
    assert mounted.call(os.listdir, mounted / "shared") == []


def test_ctime_moves_with_chmod_write_rename_and_setfattr_and_chmod_keeps_mtime(mount, bucket):
    mounted = mount("", "--trust-stored-owners")
    path = mounted / "file.txt"
    mounted.sh("sh", "-c", 'echo one > "$1"', "sh", path)
    before = mounted.call(os.stat, path)
    changes = (
        ("chmod", lambda: mounted.sh("chmod", "600", path)),
        ("write", lambda: mounted.sh("sh", "-c", 'echo two >> "$1"', "sh", path)),
        ("setfattr", lambda: mounted.sh("setfattr", "-n", "user.octue.tag.colour", "-v", "blue", path)),
        ("rename", lambda: mounted.sh("mv", path, mounted / "renamed.txt")),
    )
    for what, change in changes:
        change()
        path = mounted / "renamed.txt" if what == "rename" else path
        after = mounted.call(os.stat, path)
        assert after.st_ctime_ns > before.st_ctime_ns, what
        if what in ("chmod", "setfattr", "rename"):
            assert after.st_mtime_ns == before.st_mtime_ns, what
        before = after

    chmodded = time.time()
    mounted.sh("chmod", "640", path)
    again = mount("", "--trust-stored-owners")
    status = again.call(os.stat, again / "renamed.txt")
    assert status.st_ctime >= int(chmodded) and status.st_ctime >= status.st_mtime
    assert bucket.get_blob("renamed.txt").metadata["octuefs-posix-ctime"] == str(int(status.st_ctime))


def test_a_directory_shows_entries_made_and_removed_in_it_in_its_times_and_link_count(mount):
    mounted = mount("", "--trust-stored-owners")
    directory = mounted / "dir"
    mounted.sh("mkdir", directory)
    before = mounted.call(os.stat, directory)
    assert before.st_nlink == 2
    mounted.sh("mkdir", directory / "a", directory / "b")
    mounted.sh("touch", directory / "file")
    after = mounted.call(os.stat, directory)
    assert after.st_nlink == 4
    assert after.st_mtime_ns > before.st_mtime_ns and after.st_ctime_ns >= after.st_mtime_ns
    mounted.sh("rm", directory / "file")
    assert mounted.call(os.stat, directory).st_mtime_ns > after.st_mtime_ns


def test_an_unlinked_file_still_open_has_no_links(mount):
    mounted = mount()
    path = mounted / "doomed.txt"
    mounted.sh("sh", "-c", 'echo bytes > "$1"', "sh", path)
    handle = mounted.call(os.open, path, os.O_RDONLY)
    try:
        assert mounted.call(os.fstat, handle).st_nlink == 1
        mounted.sh("rm", path)
        assert mounted.call(os.fstat, handle).st_nlink == 0
    finally:
        os.close(handle)


def test_an_access_time_given_by_touch_is_kept_in_gsutils_key(mount, bucket):
    mounted = mount()
    path = mounted / "file.txt"
    mounted.sh("sh", "-c", 'echo data > "$1"', "sh", path)
    mounted.sh("touch", "-m", "-d", f"@{STORED_MTIME}", path)
    mounted.sh("touch", "-a", "-d", "@1400000000", path)
    assert mounted.call(os.stat, path).st_atime == 1400000000
    again = mount()
    status = again.call(os.stat, again / "file.txt")
    assert (status.st_atime, status.st_mtime) == (1400000000, STORED_MTIME)
    assert bucket.get_blob("file.txt").metadata["goog-reserved-file-atime"] == "1400000000"
