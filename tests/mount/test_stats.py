"""`octuefs stats MOUNTPOINT`: the daemon's counters move as known operations happen."""

from __future__ import annotations

import json
import os
import sys

import pytest

from tests.mount.conftest import run

pytestmark = pytest.mark.timeout(60)

CLI = (sys.executable, "-m", "octuefs.cli.main")


def statistics(mountpoint) -> dict:
    result = run(*CLI, "stats", mountpoint, "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_counters_follow_reads_metadata_writes_and_errors(mount, bucket, tmp_path):
    content = os.urandom(3 * 1024 * 1024)
    bucket.blob("data/big.bin").upload_from_string(content)
    mounted = mount()
    before = statistics(mounted.path)

    mounted.sh("ls", "-l", mounted / "data")
    assert mounted.sh("cat", mounted / "data/big.bin").stdout == content
    mounted.sh("setfattr", "-n", "user.octue.tag.k", "-v", "1", mounted / "data/big.bin")
    assert run("setfattr", "-n", "user.octue.labels", "-v", "Not Valid!", mounted / "data/big.bin").returncode != 0
    mounted.call((mounted / "data/new.txt").write_bytes, b"new\n")
    after = statistics(mounted.path)

    assert after["source"] == f"gs://{bucket.name}"
    assert after["requests"].get("list", 0) > before["requests"].get("list", 0)
    assert after["requests"]["read"] >= 1 and after["bytes_down"] >= len(content)
    assert after["requests"]["patch"] == before["requests"].get("patch", 0) + 1
    assert after["requests"]["upload"] == 1 and after["bytes_up"] == len(b"new\n")
    assert after["cache"]["misses"] >= 1 and 0 < after["cache"]["size_bytes"] <= after["cache"]["max_bytes"]
    assert after["errors"].get("EINVAL", 0) == before["errors"].get("EINVAL", 0) + 1
    assert after["pending_uploads"] == 0

    text = run(*CLI, "stats", mounted.path)
    assert text.returncode == 0 and b"requests.read: " in text.stdout and b"cache.hits: " in text.stdout


def test_stats_of_a_directory_that_is_not_a_mount_fails_clearly(tmp_path):
    result = run(*CLI, "stats", tmp_path)
    assert result.returncode == 1
    assert b"not an octuefs mount" in result.stderr and str(tmp_path).encode() in result.stderr
