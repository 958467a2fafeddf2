"""Races between a file being written here and other activity must never let our upload clobber."""

from __future__ import annotations

import errno
import os
import threading
import time

import pytest

from tests.support.http_proxy import Fault

pytestmark = pytest.mark.timeout(60)


def test_a_listing_during_a_write_keeps_the_generation_precondition(mount, bucket):
    bucket.blob("data/shared.txt").upload_from_string(b"original\n")
    mounted = mount("", "--metadata-ttl", "1")
    path = mounted / "data/shared.txt"
    descriptor = mounted.call(os.open, path, os.O_WRONLY | os.O_APPEND)
    try:
        mounted.call(os.write, descriptor, b"ours\n")
        bucket.blob("data/shared.txt").upload_from_string(b"theirs\n")
        time.sleep(1.5)
        mounted.sh("ls", "-l", mounted / "data")  # lists the newer generation while we still write
    finally:
        with pytest.raises(OSError) as raised:
            mounted.call(os.close, descriptor)
    assert raised.value.errno == errno.EIO
    assert bucket.blob("data/shared.txt").download_as_bytes() == b"theirs\n"


def test_a_chmod_while_the_close_is_uploading_is_kept(mount, bucket, proxy):
    """The upload in flight carries the metadata it started with; a chmod arriving meanwhile must go up
    with the next upload (at RELEASE), not be dropped with the staged state. (Stored modes are shown
    and chmod stored only on a mount that trusts the bucket's owners.)"""
    mounted = mount("", "--trust-stored-owners")
    path = mounted / "slow.txt"
    descriptor = mounted.call(os.open, path, os.O_WRONLY | os.O_CREAT, 0o644)
    mounted.call(os.write, descriptor, b"slowly\n")
    proxy.add(Fault("delay", "POST", r"/upload/", remaining=1, seconds=1.5))
    closing = threading.Thread(target=os.close, args=(descriptor,))
    closing.start()
    time.sleep(0.5)
    mounted.call(os.chmod, path, 0o600)
    closing.join(10)
    assert not closing.is_alive()

    deadline = time.monotonic() + 10  # the RELEASE, which sends the change, comes after close()
    while bucket.get_blob("slow.txt").metadata.get("goog-reserved-posix-mode") != "600":
        assert time.monotonic() < deadline, f"the chmod was dropped: {bucket.get_blob('slow.txt').metadata}"
        time.sleep(0.1)
    assert bucket.blob("slow.txt").download_as_bytes() == b"slowly\n"
    again = mount("", "--trust-stored-owners")
    assert again.call(os.stat, again / "slow.txt").st_mode & 0o777 == 0o600


def test_reading_bytes_of_an_object_deleted_while_open_for_writing_is_estale(mount, bucket):
    """A large file opened for writing is not copied in: reads of its head come from the object. When
    another client deletes it, they answer ESTALE, as reads of a replaced object do, not EIO."""
    bucket.blob("big.bin").upload_from_string(os.urandom(9 * 1024 * 1024))
    mounted = mount()
    descriptor = mounted.call(os.open, mounted / "big.bin", os.O_RDWR)
    try:
        bucket.blob("big.bin").delete()
        with pytest.raises(OSError) as raised:
            mounted.call(os.pread, descriptor, 4096, 0)
        assert raised.value.errno == errno.ESTALE
    finally:
        mounted.call(os.close, descriptor)
    assert "unexpected error" not in mounted.log


def test_log_lines_name_the_object_of_an_inode_not_of_a_handle_with_the_same_number(mount, bucket):
    """Handle and inode numbers are both small integers: an error about an inode must not be reported
    as being about whatever file a handle of that number has open."""
    bucket.blob("gone.txt").upload_from_string(b"soon gone\n")
    bucket.blob("other.txt").upload_from_string(b"still here\n")
    mounted = mount("", "--debug", metadata_ttl=0.5)
    gone = mounted.call(os.open, mounted / "gone.txt", os.O_RDONLY)
    others = [mounted.call(os.open, mounted / "other.txt", os.O_RDONLY) for _ in range(20)]
    try:
        bucket.blob("gone.txt").delete()
        time.sleep(1)
        with pytest.raises(FileNotFoundError):
            mounted.call(os.fstat, gone)
    finally:
        for descriptor in [gone, *others]:
            mounted.call(os.close, descriptor)
    location = f"gs://{bucket.name}"
    failures = [line for line in mounted.log.splitlines() if "getattr" in line and "no longer exists" in line]
    assert failures, mounted.log[-3000:]
    assert all(f"{location}/gone.txt: {location}/gone.txt: no longer exists" in line for line in failures), failures
