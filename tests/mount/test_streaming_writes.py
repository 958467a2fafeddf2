"""A new file written front to back is uploaded in parts while it is written.

The wire shows the parts going up before `close()`; the bucket shows the exact bytes with Octue
metadata. Whatever makes the session's content or metadata wrong (a rewrite of bytes already
sent, an xattr set meanwhile) must end in the file being sent whole, never in a wrong object;
another writer creating the name meanwhile must fail the close, as a whole upload would.
"""

from __future__ import annotations

import errno
import json
import os
import time

import pytest

from octuefs.storage.gcs import StorageSettings
from tests.support.http_proxy import Fault

pytestmark = pytest.mark.timeout(120)

MiB = 1024 * 1024
PART = StorageSettings().upload_chunk_size
SIZE = 2 * PART + 3 * MiB + 17


def part_puts(proxy) -> int:
    return sum(1 for request in list(proxy.requests) if request.method == "PUT" and request.kind == "upload")


def write_and_wait_for_parts(mounted, name: str, content: bytes, proxy, parts: int = 2) -> int:
    """Open, write everything, and wait until `parts` parts are on the wire; the file stays open."""
    fd = mounted.call(os.open, mounted / name, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    for offset in range(0, len(content), MiB):
        mounted.call(os.write, fd, content[offset : offset + MiB])
    deadline = time.monotonic() + 30
    while part_puts(proxy) < parts:
        assert time.monotonic() < deadline, f"parts not sent while the file is open: {proxy.kinds()}"
        time.sleep(0.05)
    return fd


def test_parts_go_up_before_close_and_the_object_is_exact(mount, bucket, proxy):
    content = os.urandom(SIZE)
    mounted = mount()
    proxy.reset()

    fd = write_and_wait_for_parts(mounted, "big.bin", content, proxy)
    mounted.call(os.close, fd)

    blob = bucket.get_blob("big.bin")
    assert blob.download_as_bytes() == content
    assert json.loads(blob.metadata["octue__tags"]) == {} and json.loads(blob.metadata["octue__id"])
    assert part_puts(proxy) == 3, proxy.kinds()  # two parts while writing, the rest at close
    assert proxy.count("media") == 0


def test_rewriting_bytes_already_sent_sends_the_file_whole(mount, bucket, proxy):
    content = bytearray(os.urandom(SIZE))
    mounted = mount()
    proxy.reset()

    fd = write_and_wait_for_parts(mounted, "big.bin", bytes(content), proxy, parts=1)
    mounted.call(os.pwrite, fd, b"REWRITTEN", 1000)
    mounted.call(os.close, fd)
    content[1000:1009] = b"REWRITTEN"

    assert bucket.blob("big.bin").download_as_bytes() == bytes(content)
    assert any(request.method == "DELETE" and "upload_id" in request.path for request in proxy.requests)


def test_metadata_set_while_writing_reaches_the_object(mount, bucket, proxy):
    content = os.urandom(SIZE)
    mounted = mount()
    proxy.reset()

    fd = write_and_wait_for_parts(mounted, "big.bin", content, proxy, parts=1)
    mounted.call(os.setxattr, mounted / "big.bin", "user.octue.tag.run", b"7")
    mounted.call(os.close, fd)

    blob = bucket.get_blob("big.bin")
    assert blob.download_as_bytes() == content
    assert json.loads(blob.metadata["octue__tags"]) == {"run": 7}


def test_another_writer_creating_the_name_meanwhile_fails_the_close(mount, bucket, proxy):
    content = os.urandom(SIZE)
    mounted = mount()
    proxy.reset()

    fd = write_and_wait_for_parts(mounted, "big.bin", content, proxy, parts=1)
    bucket.blob("big.bin").upload_from_string(b"theirs")
    with pytest.raises(OSError) as raised:
        mounted.call(os.close, fd)

    assert raised.value.errno == errno.EIO
    assert bucket.blob("big.bin").download_as_bytes() == b"theirs"
    assert "the written bytes are kept at" in mounted.log


def test_a_last_part_whose_reply_was_lost_is_not_sent_again(mount, bucket, proxy):
    content = os.urandom(SIZE)
    mounted = mount()
    proxy.reset()

    fd = write_and_wait_for_parts(mounted, "big.bin", content, proxy, parts=2)
    proxy.add(Fault("reset", "PUT", r"upload_id=", remaining=1, after_server=True))
    mounted.call(os.close, fd)

    assert bucket.blob("big.bin").download_as_bytes() == content
    assert "upload failed" not in mounted.log
