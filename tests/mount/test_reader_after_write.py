"""Handles opened for reading before a writer on the same mount see its bytes, during and after."""

from __future__ import annotations

import os

import pytest

pytestmark = pytest.mark.timeout(60)


def test_a_reader_opened_before_a_write_sees_the_new_bytes_after_it(mount, bucket):
    bucket.blob("shared.txt").upload_from_string(b"old content\n")
    mounted = mount()
    path = mounted / "shared.txt"
    reader = mounted.call(os.open, path, os.O_RDONLY)
    assert mounted.call(os.pread, reader, 100, 0) == b"old content\n"

    writer = mounted.call(os.open, path, os.O_WRONLY | os.O_TRUNC)
    mounted.call(os.write, writer, b"new content, longer\n")
    assert mounted.call(os.pread, reader, 100, 0) == b"new content, longer\n"
    mounted.call(os.close, writer)
    mounted.call(os.posix_fadvise, reader, 0, 0, os.POSIX_FADV_DONTNEED)  # the next read reaches the daemon

    assert mounted.call(os.pread, reader, 100, 0) == b"new content, longer\n"
    mounted.call(os.close, reader)
