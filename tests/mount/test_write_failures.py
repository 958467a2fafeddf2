"""Writes that cannot reach the cloud: never a silent clobber, never a silent loss.

Another client changing the object (or taking a new file's name) between open and close makes
close() fail with EIO; the cloud keeps the other client's bytes, the daemon log names the file
and where the staged copy is, and the copy is there. A failed upload (injected server errors
past the mount's 2 s retry deadline) fails close() too, keeps the bytes, and a later fsync sends
them with the complete metadata.
"""

from __future__ import annotations

import errno
import json
import os
import re
import time
from pathlib import Path

import pytest

from tests.integration.datafile_objects import CSV, FOREIGN, GOLDEN_CSV_METADATA, put_golden_csv

pytestmark = pytest.mark.timeout(90)

KEPT_AT = re.compile(r"(gs://\S+): upload failed \(.*\); the written bytes are kept at (\S+\.data)$", re.MULTILINE)


def staged_copies(log: str, location: str) -> list[Path]:
    """The staged paths the daemon reported for failed uploads of `location`."""
    return [Path(kept) for named, kept in KEPT_AT.findall(log) if named == location]


def wait_for_failed_uploads(mounted, location: str, count: int, seconds: float = 20.0) -> None:
    """close() returns after FLUSH; the kernel sends RELEASE afterwards and the daemon tries again then.
    Wait until that attempt has failed too, so the next step is not racing it."""
    deadline = time.monotonic() + seconds
    while len(staged_copies(mounted.log, location)) < count:
        assert time.monotonic() < deadline, f"expected {count} failed uploads of {location}:\n{mounted.log[-3000:]}"
        time.sleep(0.05)


def close_fails_with_eio(mounted, fd: int) -> None:
    with pytest.raises(OSError) as raised:
        mounted.call(os.close, fd)
    assert raised.value.errno == errno.EIO


# Conflicts ---------------------------------------------------------------------------------


def test_object_changed_by_another_client_before_close(mount, bucket):
    bucket.blob("data.txt").upload_from_string(b"original content\n")
    mounted = mount()
    location = f"gs://{bucket.name}/data.txt"

    fd = mounted.call(os.open, mounted / "data.txt", os.O_WRONLY)
    mounted.call(os.pwrite, fd, b"OURS", 0)
    bucket.blob("data.txt").upload_from_string(b"their content\n")
    close_fails_with_eio(mounted, fd)

    assert bucket.blob("data.txt").download_as_bytes() == b"their content\n"
    kept = staged_copies(mounted.log, location)
    assert kept, f"no log line names {location} and its staged copy:\n{mounted.log}"
    assert kept[0].is_relative_to(mounted.cache_dir / "staging")
    assert kept[0].read_bytes() == b"OURSinal content\n"

    # A retry (fsync on a new descriptor) is still refused: it would overwrite the other client's bytes.
    fd = mounted.call(os.open, mounted / "data.txt", os.O_WRONLY)
    with pytest.raises(OSError) as raised:
        mounted.call(os.fsync, fd)
    assert raised.value.errno == errno.EIO
    close_fails_with_eio(mounted, fd)
    assert bucket.blob("data.txt").download_as_bytes() == b"their content\n"
    assert kept[0].read_bytes() == b"OURSinal content\n"


def test_new_file_whose_name_another_client_takes_before_close(mount, bucket):
    mounted = mount()
    location = f"gs://{bucket.name}/reports/new.csv"
    mounted.call(os.mkdir, mounted / "reports")

    fd = mounted.call(os.open, mounted / "reports/new.csv", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    mounted.call(os.write, fd, b"a,b\n1,2\n")
    bucket.blob("reports/new.csv").upload_from_string(b"theirs\n")
    close_fails_with_eio(mounted, fd)

    blob = bucket.get_blob("reports/new.csv")
    assert blob.download_as_bytes() == b"theirs\n"
    assert not (blob.metadata or {}), "the other client's object got our metadata"
    kept = staged_copies(mounted.log, location)
    assert kept and kept[0].read_bytes() == b"a,b\n1,2\n", mounted.log


def test_conflict_leaves_other_files_of_the_mount_working(mount, bucket):
    bucket.blob("contested.txt").upload_from_string(b"v1")
    mounted = mount()

    fd = mounted.call(os.open, mounted / "contested.txt", os.O_WRONLY | os.O_APPEND)
    mounted.call(os.write, fd, b"+ours")
    bucket.blob("contested.txt").upload_from_string(b"v2")
    close_fails_with_eio(mounted, fd)
    mounted.call((mounted / "other.txt").write_bytes, b"unaffected")

    assert bucket.blob("other.txt").download_as_bytes() == b"unaffected"
    assert bucket.blob("contested.txt").download_as_bytes() == b"v2"


# Failed uploads ----------------------------------------------------------------------------


def test_failed_upload_of_a_new_file_fails_close_and_a_later_fsync_sends_it(mount, bucket, proxy):
    content = os.urandom(300_000)
    mounted = mount()
    location = f"gs://{bucket.name}/results/out.bin"
    mounted.call(os.mkdir, mounted / "results")
    proxy.inject("POST", r"/upload/", 503, 1000)

    fd = mounted.call(os.open, mounted / "results/out.bin", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    mounted.call(os.write, fd, content)
    close_fails_with_eio(mounted, fd)
    wait_for_failed_uploads(mounted, location, 2)

    assert any(request.kind == "upload" and request.status == 503 for request in proxy.requests)
    assert bucket.get_blob("results/out.bin") is None
    kept = staged_copies(mounted.log, location)
    assert kept[-1].read_bytes() == content
    assert "out.bin" in mounted.call(os.listdir, mounted / "results"), "the unsent file vanished from the mount"

    proxy.reset()
    fd = mounted.call(os.open, mounted / "results/out.bin", os.O_RDWR)
    assert mounted.call(os.pread, fd, len(content) + 10, 0) == content
    mounted.call(os.fsync, fd)
    blob = bucket.get_blob("results/out.bin")
    assert blob is not None, "fsync did not upload the kept bytes"
    assert blob.download_as_bytes() == content
    assert json.loads(blob.metadata["octue__tags"]) == {} and json.loads(blob.metadata["octue__id"])
    assert proxy.count("upload") == 1
    mounted.call(os.close, fd)
    assert proxy.count("upload") == 1, "closing after the fsync uploaded the same bytes again"
    # RELEASE (which drops the staged copy) reaches the daemon after close() has returned.
    deadline = time.monotonic() + 10
    while kept[-1].exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not kept[-1].exists(), "the staged copy outlived its upload"


def test_failed_upload_of_an_edit_keeps_it_and_a_later_fsync_sends_it_with_the_metadata(mount, bucket, proxy):
    put_golden_csv(bucket, "readings.csv")
    mounted = mount()
    location = f"gs://{bucket.name}/readings.csv"
    proxy.inject("POST", r"/upload/", 503, 1000)

    fd = mounted.call(os.open, mounted / "readings.csv", os.O_WRONLY | os.O_APPEND)
    mounted.call(os.write, fd, b"99,1.5\n")
    close_fails_with_eio(mounted, fd)
    wait_for_failed_uploads(mounted, location, 2)
    assert bucket.blob("readings.csv").download_as_bytes() == CSV

    proxy.reset()
    fd = mounted.call(os.open, mounted / "readings.csv", os.O_WRONLY)
    mounted.call(os.fsync, fd)
    mounted.call(os.close, fd)

    blob = bucket.get_blob("readings.csv")
    assert blob.download_as_bytes() == CSV + b"99,1.5\n"
    for key in ("octue__id", "octue__tags", "octue__labels", "octue__timestamp"):
        assert json.loads(blob.metadata[key]) == json.loads(GOLDEN_CSV_METADATA[key]), key
    assert blob.metadata["owner"] == FOREIGN["owner"]
    assert mounted.read_bytes("readings.csv") == CSV + b"99,1.5\n"
