"""`octuefs prefetch` warms the cache so later reads fetch nothing; progress only on a terminal."""

from __future__ import annotations

import os
import sys

import pytest

from tests.mount.conftest import run

pytestmark = pytest.mark.timeout(60)


def test_prefetch_a_directory_then_reads_fetch_nothing(mount, bucket, proxy):
    contents = {"data/a.bin": os.urandom(3 * 1024 * 1024), "data/sub/b.bin": os.urandom(1000)}
    for name, content in contents.items():
        bucket.blob(name).upload_from_string(content)
    mounted = mount()

    result = run(sys.executable, "-m", "octuefs.cli.main", "prefetch", mounted / "data")
    assert result.returncode == 0, result.stderr
    assert result.stdout.decode().strip() == f"prefetched 2 files, {sum(map(len, contents.values()))} bytes"
    assert b"\r" not in result.stderr  # no progress bar when not on a terminal
    proxy.reset()

    for name, content in contents.items():
        assert mounted.read_bytes(name) == content
    assert "read" not in proxy.kinds() and "media" not in proxy.kinds()


def test_prefetch_of_a_missing_path_fails_naming_it(tmp_path):
    result = run(sys.executable, "-m", "octuefs.cli.main", "prefetch", tmp_path / "missing")
    assert result.returncode == 1 and b"missing" in result.stderr
