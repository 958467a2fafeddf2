"""Appending to a large object through the mount sends only the new bytes.

The object's own bytes stay in the cloud: the staged file holds a hole where they are, the new
bytes go up as a temporary part, and one compose guarded by the generation joins them on. The
wire (the counting proxy) shows that no byte of the object was downloaded and that only the
appended bytes were uploaded; the bucket shows the joined content with its Octue metadata kept and
no temporary part left behind. Writes or truncates that reach into the object's bytes copy them
in first, and give the same content as a local file would.
"""

from __future__ import annotations

import errno
import json
import os
import signal
import time

import pytest

from octuefs.storage.gcs import TEMPORARY_PREFIX
from tests.mount.conftest import is_mount, run, wait_gone
from tests.mount.test_write_workflows import assert_identity_kept, octue_object
from tests.support.http_proxy import Fault

pytestmark = pytest.mark.timeout(120)

MiB = 1024 * 1024
SIZE = 12 * MiB  # above the size where joining in the cloud beats copying the object in


def large_object(bucket, name: str = "runs/log.bin") -> bytes:
    content = os.urandom(SIZE)
    octue_object(bucket, name, content, content_type="application/octet-stream")
    return content


def temporary_parts(bucket) -> list[str]:
    return [blob.name for blob in bucket.list_blobs(prefix=TEMPORARY_PREFIX)]


def test_appending_uploads_only_the_new_bytes_and_downloads_nothing(mount, bucket, proxy):
    content = large_object(bucket)
    mounted = mount()
    proxy.reset()

    mounted.sh("sh", "-c", f"printf 'tail one\\n' >> {mounted / 'runs/log.bin'}")

    assert proxy.count("media") == 0, proxy.kinds()
    sent = sum(request.request_bytes for request in proxy.requests if request.kind == "upload")
    assert sent < 64 * 1024, f"{sent} bytes uploaded to append 9"
    blob = bucket.get_blob("runs/log.bin")
    assert blob.download_as_bytes() == content + b"tail one\n"
    assert_identity_kept(blob, content_type="application/octet-stream")
    assert temporary_parts(bucket) == []
    assert TEMPORARY_PREFIX.rstrip("/") not in os.listdir(mounted.path)


def test_successive_appends_and_reads_while_appending(mount, bucket, proxy):
    content = large_object(bucket)
    mounted = mount()
    path = mounted / "runs/log.bin"
    proxy.reset()

    fd = mounted.call(os.open, path, os.O_WRONLY | os.O_APPEND)
    mounted.call(os.write, fd, b"first\n")
    mounted.call(os.fsync, fd)
    mounted.call(os.write, fd, b"second\n")
    reader = mounted.call(os.open, path, os.O_RDONLY)
    assert mounted.call(os.pread, reader, 100, SIZE - 50) == content[-50:] + b"first\nsecond\n"
    assert mounted.call(os.pread, reader, 4096, 0) == content[:4096]
    mounted.call(os.close, reader)
    mounted.call(os.close, fd)

    assert bucket.blob("runs/log.bin").download_as_bytes() == content + b"first\nsecond\n"
    downloaded = sum(request.response_bytes for request in proxy.requests if request.kind == "media")
    assert downloaded <= 3 * MiB, f"{downloaded} bytes downloaded to read 3 chunks of a {SIZE} byte object"
    assert temporary_parts(bucket) == []


def test_writes_and_truncates_into_the_object_bytes_copy_them_in_first(mount, bucket):
    content = bytearray(large_object(bucket))
    mounted = mount()
    path = mounted / "runs/log.bin"

    fd = mounted.call(os.open, path, os.O_RDWR)
    mounted.call(os.pwrite, fd, b"appended", SIZE)
    mounted.call(os.pwrite, fd, b"PATCHED", 5 * MiB + 3)
    mounted.call(os.close, fd)
    content[5 * MiB + 3 : 5 * MiB + 10] = b"PATCHED"
    content += b"appended"
    assert bucket.blob("runs/log.bin").download_as_bytes() == bytes(content)

    fd = mounted.call(os.open, path, os.O_WRONLY | os.O_APPEND)
    mounted.call(os.write, fd, b"more")
    mounted.call(os.ftruncate, fd, 3 * MiB + 1)
    mounted.call(os.close, fd)
    assert bucket.blob("runs/log.bin").download_as_bytes() == bytes(content[: 3 * MiB + 1])
    assert temporary_parts(bucket) == []


def test_an_append_pending_when_the_daemon_is_killed_is_joined_on_at_the_next_mount(mount, bucket):
    content = large_object(bucket)
    first = mount()
    fd = first.call(os.open, first / "runs/log.bin", os.O_WRONLY | os.O_APPEND)
    first.call(os.write, fd, b"pending\n")

    os.kill(first.pid, signal.SIGKILL)
    assert wait_gone(first.pid, 10)
    assert run("fusermount3", "-u", "-z", first.path, timeout=10).returncode == 0
    assert not is_mount(first.path)
    record = json.loads(next((first.cache_dir / "staging").glob("*.json")).read_text())
    assert record["base_size"] == SIZE

    second = mount(cache_dir=first.cache_dir)

    blob = bucket.get_blob("runs/log.bin")
    assert blob.download_as_bytes() == content + b"pending\n"
    assert_identity_kept(blob, content_type="application/octet-stream")
    assert f"recovery: uploaded {SIZE + 8} bytes to gs://{bucket.name}/runs/log.bin" in second.log
    assert temporary_parts(bucket) == []


def test_an_append_over_another_writers_newer_object_fails_the_close_and_keeps_the_bytes(mount, bucket, proxy):
    large_object(bucket)
    mounted = mount()
    fd = mounted.call(os.open, mounted / "runs/log.bin", os.O_WRONLY | os.O_APPEND)
    mounted.call(os.write, fd, b"ours\n")
    bucket.blob("runs/log.bin").upload_from_string(b"theirs")

    with pytest.raises(OSError) as raised:
        mounted.call(os.close, fd)

    assert raised.value.errno == errno.EIO
    deadline = time.monotonic() + 20
    while mounted.log.count("runs/log.bin: upload failed") < 2:  # close's FLUSH, then the RELEASE after it
        assert time.monotonic() < deadline, mounted.log
        time.sleep(0.05)
    assert proxy.preconditions.refused >= 2
    assert bucket.blob("runs/log.bin").download_as_bytes() == b"theirs"
    assert temporary_parts(bucket) == []
    kept = [path for path in (mounted.cache_dir / "staging").glob("*.data") if path.stat().st_size == SIZE + 5]
    assert len(kept) == 1 and kept[0].read_bytes()[SIZE:] == b"ours\n"
    assert f"the written bytes are kept at {kept[0]}" in mounted.log


def test_cached_chunks_of_the_object_are_not_served_after_an_append(mount, bucket):
    """A joined append makes a new generation, so chunks cached before it are never taken for its bytes
    (the bundled server keeps the generation on compose; octuefs must still give the result a new one)."""
    content = large_object(bucket)
    mounted = mount()
    assert mounted.read_bytes("runs/log.bin") == content  # every chunk, the last one short, now cached
    generation = bucket.get_blob("runs/log.bin").generation

    mounted.sh("sh", "-c", f"printf 'after\\n' >> {mounted / 'runs/log.bin'}")

    assert bucket.get_blob("runs/log.bin").generation != generation
    assert mounted.read_bytes("runs/log.bin") == content + b"after\n"


def test_an_append_the_server_will_not_compose_goes_up_whole(mount, bucket, proxy):
    """Compose needs what a plain upload does not (one storage class, rights at the bucket's root):
    refused, the hole is copied in and the file sent whole, instead of failing every close."""
    content = large_object(bucket)
    mounted = mount()
    proxy.inject("POST", r"/compose", 403, 10)

    mounted.sh("sh", "-c", f"printf 'tail\\n' >> {mounted / 'runs/log.bin'}")

    blob = bucket.get_blob("runs/log.bin")
    assert blob.download_as_bytes() == content + b"tail\n"
    assert_identity_kept(blob, content_type="application/octet-stream")
    assert "joining the appended bytes on failed" in mounted.log
    assert temporary_parts(bucket) == []


def test_a_compose_whose_reply_was_lost_is_not_taken_for_a_conflict(mount, bucket, proxy):
    content = large_object(bucket)
    mounted = mount()
    proxy.add(Fault("reset", "POST", r"/compose", remaining=1, after_server=True))

    mounted.sh("sh", "-c", f"printf 'tail\\n' >> {mounted / 'runs/log.bin'}")

    assert bucket.blob("runs/log.bin").download_as_bytes() == content + b"tail\n"
    assert "upload failed" not in mounted.log
