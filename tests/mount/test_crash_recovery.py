"""A daemon killed with writes pending: the next mount with the same cache dir finishes them.

Pending means staged and not uploaded: a file still open for writing when the daemon dies, or
one whose close() failed because uploads failed. SIGKILL gives the daemon no chance to clean
up; the mount is then detached lazily (as an admin would) and mounted again with the same cache
dir. Objects still at the generation the bytes came from get them, with Octue metadata; objects
another client changed meanwhile keep that client's bytes, and ours go to CACHE_DIR/lost+found,
the log saying where.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import time
from pathlib import Path

import pytest

from tests.integration.datafile_objects import CSV, CSV_CONTENT_TYPE, FOREIGN, GOLDEN_CSV_METADATA, put_golden_csv
from tests.mount.conftest import is_mount, run, wait_gone

pytestmark = pytest.mark.timeout(90)

MiB = 1024 * 1024
RECOVERED = "recovery: uploaded {size} bytes to {location} (generation"
KEPT_AT = re.compile(r"recovery: (gs://\S+) changed since these bytes were staged .*; not uploaded, kept at (.+)$")


def kill_daemon(mounted) -> None:
    """SIGKILL, then detach the dead mount lazily; descriptors still open on it answer ENOTCONN."""
    os.kill(mounted.pid, signal.SIGKILL)
    assert wait_gone(mounted.pid, 10), "the daemon survived SIGKILL"
    assert run("fusermount3", "-u", "-z", mounted.path, timeout=10).returncode == 0
    assert not is_mount(mounted.path)


def close_on_dead_mount(mounted, fd: int) -> None:
    with contextlib.suppress(OSError):
        mounted.call(os.close, fd)


def staged_files(cache_dir: Path) -> list[Path]:
    return sorted((cache_dir / "staging").glob("*.data"))


def kept_aside(log: str) -> dict[str, Path]:
    """Object location → where recovery put the bytes it did not upload."""
    found = {}
    for line in log.splitlines():
        match = KEPT_AT.search(line)
        if match:
            found[match.group(1)] = Path(match.group(2))
    return found


def test_files_open_for_writing_when_the_daemon_is_killed_are_uploaded_at_the_next_mount(mount, bucket):
    put_golden_csv(bucket, "readings.csv")
    new_content = os.urandom(MiB + 4321)
    first = mount()
    mounted_new = first.call(os.open, first / "new.bin", os.O_WRONLY | os.O_CREAT, 0o644)
    first.call(os.write, mounted_new, new_content)
    mounted_edit = first.call(os.open, first / "readings.csv", os.O_WRONLY | os.O_APPEND)
    first.call(os.write, mounted_edit, b"99,1.5\n")

    kill_daemon(first)
    close_on_dead_mount(first, mounted_new)
    close_on_dead_mount(first, mounted_edit)
    assert bucket.get_blob("new.bin") is None
    assert bucket.blob("readings.csv").download_as_bytes() == CSV
    assert len(staged_files(first.cache_dir)) == 2

    second = mount(cache_dir=first.cache_dir)

    new_blob = bucket.get_blob("new.bin")
    assert new_blob is not None and new_blob.download_as_bytes() == new_content
    assert json.loads(new_blob.metadata["octue__id"]) and json.loads(new_blob.metadata["octue__tags"]) == {}
    edited = bucket.get_blob("readings.csv")
    assert edited.download_as_bytes() == CSV + b"99,1.5\n"
    for key in ("octue__id", "octue__tags", "octue__labels", "octue__timestamp"):
        assert json.loads(edited.metadata[key]) == json.loads(GOLDEN_CSV_METADATA[key]), key
    assert edited.metadata["owner"] == FOREIGN["owner"]
    assert edited.content_type == CSV_CONTENT_TYPE

    log = second.log
    assert RECOVERED.format(size=len(new_content), location=f"gs://{bucket.name}/new.bin") in log, log
    assert RECOVERED.format(size=len(CSV) + 7, location=f"gs://{bucket.name}/readings.csv") in log, log
    assert staged_files(second.cache_dir) == []
    assert second.read_bytes("readings.csv") == CSV + b"99,1.5\n"
    assert second.read_bytes("new.bin") == new_content


def test_bytes_kept_after_failed_uploads_are_uploaded_at_the_next_mount(mount, bucket, proxy):
    first = mount()
    proxy.inject("POST", r"/upload/", 503, 1000)
    fd = first.call(os.open, first / "out.txt", os.O_WRONLY | os.O_CREAT, 0o644)
    first.call(os.write, fd, b"results: 42\n")
    with pytest.raises(OSError):
        first.call(os.close, fd)
    deadline = time.monotonic() + 20
    while first.log.count("out.txt: upload failed") < 2:  # close's FLUSH, then the RELEASE after it
        assert time.monotonic() < deadline, first.log
        time.sleep(0.05)

    kill_daemon(first)
    proxy.reset()
    assert bucket.get_blob("out.txt") is None

    second = mount(cache_dir=first.cache_dir)

    blob = bucket.get_blob("out.txt")
    assert blob is not None and blob.download_as_bytes() == b"results: 42\n"
    assert "octue__id" in blob.metadata
    assert RECOVERED.format(size=12, location=f"gs://{bucket.name}/out.txt") in second.log
    assert staged_files(second.cache_dir) == []


def test_objects_changed_before_the_next_mount_keep_the_other_clients_bytes(mount, bucket):
    bucket.blob("data.txt").upload_from_string(b"original\n")
    first = mount()
    edit = first.call(os.open, first / "data.txt", os.O_WRONLY | os.O_TRUNC)
    first.call(os.write, edit, b"our edit\n")
    created = first.call(os.open, first / "taken.txt", os.O_WRONLY | os.O_CREAT, 0o644)
    first.call(os.write, created, b"our new file\n")

    kill_daemon(first)
    close_on_dead_mount(first, edit)
    close_on_dead_mount(first, created)
    bucket.blob("data.txt").upload_from_string(b"their edit\n")
    bucket.blob("taken.txt").upload_from_string(b"their new file\n")

    second = mount(cache_dir=first.cache_dir)

    assert bucket.blob("data.txt").download_as_bytes() == b"their edit\n"
    assert bucket.blob("taken.txt").download_as_bytes() == b"their new file\n"
    kept = kept_aside(second.log)
    for name, ours in (("data.txt", b"our edit\n"), ("taken.txt", b"our new file\n")):
        location = f"gs://{bucket.name}/{name}"
        assert location in kept, f"the log does not say where {location}'s bytes went:\n{second.log}"
        assert kept[location].parent == second.cache_dir / "lost+found"
        assert kept[location].read_bytes() == ours
    assert staged_files(second.cache_dir) == []
    assert second.read_bytes("data.txt") == b"their edit\n"
