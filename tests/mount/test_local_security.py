"""What another local user can do to a mount: read nothing it keeps, plant nothing it trusts.

A second local user (made for the run) tries what an attacker on a shared machine would: reading
staged bytes, pending records and the log of a mount whose cache is in a shared directory, and
preparing the cache directory, the log, the runtime directory or a pid file for the daemon to follow.
"""

from __future__ import annotations

import os
import shutil
import stat
from pathlib import Path

import pytest

from octuefs.datafile import Datafile
from octuefs.fs.runtime import pid_file
from octuefs.uploads.staging import StagingArea
from tests.mount.conftest import CLI, is_mount, processes_mentioning, run, wait_gone

pytestmark = pytest.mark.timeout(90)


def assert_refused_before_mounting(result, mountpoint: Path, *phrases: str) -> str:
    """Refused with a message naming the problem, and nothing mounted or left running."""
    stderr = result.stderr.decode(errors="replace")
    assert result.returncode == 1, stderr
    assert "Traceback" not in stderr
    for phrase in phrases:
        assert phrase in stderr, stderr
    assert not is_mount(mountpoint)
    assert processes_mentioning(str(mountpoint)) == []
    return stderr


def mount_command(mount, mountpoint: Path, cache: Path, bucket: str | None = None) -> tuple[str, ...]:
    return ("mount", bucket or mount.bucket, str(mountpoint), "--endpoint", mount.endpoint, "--cache-dir", str(cache))


def test_another_user_reads_nothing_a_mount_keeps_in_a_shared_cache_directory(mount, bucket, other_user, shared_dir):
    bucket.blob("read.txt").upload_from_string(b"cached chunk")
    cache = shared_dir / "cache"
    cache.mkdir(mode=0o755)  # as an admin makes /var/cache/octuefs
    mounted = mount(cache_dir=cache)
    assert mounted.read_bytes("read.txt") == b"cached chunk"
    fd = mounted.call(os.open, mounted / "draft.txt", os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        mounted.call(os.write, fd, b"not uploaded yet")
        staged = sorted((cache / "staging").iterdir())
        assert {path.suffix or path.name for path in staged} == {".data", ".json", ".lock"}

        # The user reaches the cache directory itself (so what follows is the modes' doing)...
        listing = other_user.run("ls", cache)
        assert listing.returncode == 0 and b"staging" in listing.stdout
        # ...but reads none of the staged bytes, pending records, chunks or the log.
        for path in [*staged, cache / "octuefs.log", cache / "staging", cache / "chunks"]:
            attempt = other_user.run("cat" if path.is_file() else "ls", path)
            assert attempt.returncode != 0 and b"Permission denied" in attempt.stderr, path

        for path in cache.rglob("*"):
            expected = 0o700 if path.is_dir() else 0o600
            assert stat.S_IMODE(path.stat().st_mode) == expected, path
    finally:
        mounted.call(os.close, fd)
    assert bucket.blob("draft.txt").download_as_bytes() == b"not uploaded yet"


@pytest.mark.parametrize("prepared", ["writable by others", "owned by another user"])
def test_a_cache_directory_another_user_controls_is_refused(mount, other_user, shared_dir, prepared):
    cache = shared_dir / "cache"
    cache.mkdir()
    if prepared == "writable by others":
        cache.chmod(0o777)
        reason = "writable by other users"
    else:
        os.chown(cache, other_user.uid, other_user.gid)
        reason = f"owned by uid {other_user.uid}"
    mountpoint = mount.new_dir("mnt")

    result = mount.attempt(*mount_command(mount, mountpoint, cache), mountpoint=mountpoint)

    assert_refused_before_mounting(result, mountpoint, str(cache), reason)
    assert list(cache.iterdir()) == []


def test_a_planted_log_symlink_is_refused_and_its_target_untouched(mount, tmp_path):
    target = tmp_path / "precious"
    target.write_text("precious\n")
    cache = mount.new_dir("cache")
    (cache / "octuefs.log").symlink_to(target)
    mountpoint = mount.new_dir("mnt")

    result = mount.attempt(*mount_command(mount, mountpoint, cache), mountpoint=mountpoint)

    assert_refused_before_mounting(result, mountpoint, str(cache / "octuefs.log"), "symbolic link")
    assert target.read_text() == "precious\n"


def test_recovery_uploads_only_records_of_the_source_being_mounted(mount, bucket):
    cache = mount.new_dir("cache")
    area = StagingArea(cache / "staging")
    planted = area.create(Datafile.for_new_object(bucket.name, "elsewhere/planted.txt").content_upload_request())
    planted.data_path.write_bytes(b"planted")
    ours = area.create(Datafile.for_new_object(bucket.name, "mine/left.txt").content_upload_request())
    ours.data_path.write_bytes(b"left by a crash")

    mounted = mount("mine", cache_dir=cache)

    assert bucket.blob("mine/left.txt").download_as_bytes() == b"left by a crash"
    assert bucket.get_blob("elsewhere/planted.txt") is None
    assert planted.data_path.read_bytes() == b"planted" and planted.record_path.exists()
    assert f"{planted.data_path} is staged for gs://{bucket.name}/elsewhere/planted.txt" in mounted.log


def planted_runtime_directory(user, tmp_path: Path, how: str, pid_name: str) -> tuple[Path, Path]:
    """`/tmp/octuefs-$UID` made by someone else first, as a symlink to their directory or as a
    directory of theirs, with the pid file linked to a file of theirs; returns it and that file."""
    target = tmp_path / "precious"
    target.write_text("precious\n")
    theirs = tmp_path / "theirs"
    (theirs / "octuefs").mkdir(parents=True)
    (theirs / "octuefs" / pid_name).symlink_to(target)
    base = Path(f"/tmp/octuefs-{user.uid}")
    if how == "symlink":
        base.symlink_to(theirs)
    else:
        shutil.copytree(theirs, base, symlinks=True)
    for directory in (base, base / "octuefs"):
        directory.chmod(0o777)
    return base, target


@pytest.mark.parametrize("how", ["symlink", "directory"])
def test_a_runtime_directory_another_user_prepared_is_refused(mount, other_user, shared_dir, tmp_path, how):
    mountpoint, cache = shared_dir / "mnt", shared_dir / "cache"
    for directory in (mountpoint, cache):
        directory.mkdir(mode=0o700)
        os.chown(directory, other_user.uid, other_user.gid)
    base, target = planted_runtime_directory(other_user, tmp_path, how, pid_file(mountpoint).name)
    try:
        result = other_user.octuefs(*mount_command(mount, mountpoint, cache))
        reason = "symbolic link" if how == "symlink" else "owned by uid 0"
        assert_refused_before_mounting(result, mountpoint, str(base), reason)
        assert target.read_text() == "precious\n"
    finally:
        if base.is_symlink():
            base.unlink()
        else:
            shutil.rmtree(base, ignore_errors=True)


def test_a_runtime_directory_is_made_private_to_its_user(mount, other_user, shared_dir):
    mountpoint, cache = shared_dir / "mnt", shared_dir / "cache"
    for directory in (mountpoint, cache):
        directory.mkdir(mode=0o700)
        os.chown(directory, other_user.uid, other_user.gid)
    base = Path(f"/tmp/octuefs-{other_user.uid}")
    try:
        result = other_user.octuefs(*mount_command(mount, mountpoint, cache, bucket="no-such-bucket-here"))
        assert b"no such bucket" in result.stderr, result.stderr
        for directory in (base, base / "octuefs"):
            status = directory.lstat()
            assert stat.S_ISDIR(status.st_mode) and status.st_uid == other_user.uid
            assert stat.S_IMODE(status.st_mode) == 0o700
    finally:
        shutil.rmtree(base, ignore_errors=True)


@pytest.mark.parametrize("planted", ["not a pid", "symlink"])
def test_a_planted_pid_file_does_not_break_unmount(mount, tmp_path, planted):
    mounted = mount()
    record = pid_file(mounted.path)
    target = tmp_path / "precious"
    target.write_text("precious\n")
    record.unlink()
    if planted == "symlink":
        record.symlink_to(target)
        reason = "symbolic link"
    else:
        record.write_text("not-a-pid\n")
        reason = "does not hold a daemon's pid"
    try:
        result = mounted.unmount()
        stderr = result.stderr.decode(errors="replace")
        assert result.returncode == 0, stderr
        assert "Traceback" not in stderr and reason in stderr and str(record) in stderr
        assert not is_mount(mounted.path)
        assert wait_gone(mounted.pid, 10)
        assert target.read_text() == "precious\n"
    finally:
        record.unlink(missing_ok=True)


def test_a_symlinked_mountpoint_is_mounted_at_its_target_and_unmounted_through_it(mount, bucket, tmp_path):
    bucket.blob("seen.txt").upload_from_string(b"through the link")
    real = mount.new_dir("real")
    link = tmp_path / "link"
    link.symlink_to(real)

    result = mount.attempt(*mount_command(mount, link, mount.new_dir("cache")), mountpoint=real)

    assert result.returncode == 0, result.stderr
    assert str(real) in result.stdout.decode()
    assert is_mount(real)
    daemon = mount.pids[-1]
    assert run("cat", link / "seen.txt").stdout == b"through the link"
    unmounted = run(*CLI, "unmount", link)
    assert unmounted.returncode == 0, unmounted.stderr
    assert not is_mount(real)
    assert wait_gone(daemon, 10)
