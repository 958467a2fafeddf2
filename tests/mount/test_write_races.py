"""Races between a file being written here and other activity must never let our upload clobber."""

from __future__ import annotations

import errno
import os
import time

import pytest

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
