"""The issue's whole story on one mount with the DEFAULT retry settings (no --retry-deadline): a user
works on a train. What was listed and read keeps answering once the server is gone (the first request
waits for the breaker to open, later ones fail at once and are served stale), a file written offline is
accepted (its close reports EIO) and lands by itself when the server is back, with no program doing
anything. Each step's time is measured and bounded with margins, never slept for.

The other test modules cover each point alone: test_outage.py (fail fast), test_stale_if_error.py,
test_landing.py and test_signals.py.
"""

from __future__ import annotations

import errno
import os
import subprocess
import time

import pytest

from tests.mount.conftest import run

pytestmark = pytest.mark.timeout(150)

FIRST_FAILURE_BOUND = 30.0  # the retry deadline (20 s) and the breaker's confirming probe, with margin
LATER_BOUND = 2.0
LANDING_BOUND = 15.0  # one probe interval and timeout, one upload, generous margin
TTL = 1.0


def timed(function, *args):
    started = time.monotonic()
    result = function(*args)
    return time.monotonic() - started, result


def shell(*command: str | os.PathLike[str]) -> subprocess.CompletedProcess:
    result = run(*command)
    assert result.returncode == 0, result.stderr
    return result


def test_a_day_offline_reads_what_is_known_and_lands_what_was_written(mount, bucket, proxy):
    content = os.urandom(300_000)
    bucket.blob("work/readings.csv").upload_from_string(content)
    mounted = mount("", metadata_ttl=TTL, retry_deadline=None)
    listed = shell("ls", "-l", mounted / "work").stdout
    assert mounted.read_bytes("work/readings.csv") == content
    tags = shell("getfattr", "-d", "--absolute-names", mounted / "work/readings.csv").stdout
    time.sleep(TTL + 0.5)  # what was learnt is past its TTL: every access below first asks the server

    proxy.down(300)
    try:
        first, result = timed(run, "ls", "-l", mounted / "work")
        assert result.returncode == 0 and result.stdout == listed, result.stderr
        assert first < FIRST_FAILURE_BOUND, f"the first listing offline took {first:.1f} s"
        for command in (
            ("cat", mounted / "work/readings.csv"),
            ("stat", mounted / "work/readings.csv"),
            ("getfattr", "-d", "--absolute-names", mounted / "work/readings.csv"),
        ):
            elapsed, result = timed(run, *command)
            assert result.returncode == 0, (command, result.stderr)
            assert elapsed < LATER_BOUND, f"{command[0]} offline took {elapsed:.1f} s"
        assert run("cat", mounted / "work/readings.csv").stdout == content
        assert run("getfattr", "-d", "--absolute-names", mounted / "work/readings.csv").stdout == tags

        written = b"notes made on the train\n" * 100
        started = time.monotonic()
        descriptor = mounted.call(os.open, mounted / "work/notes.txt", os.O_WRONLY | os.O_CREAT, 0o644)
        mounted.call(os.write, descriptor, written)
        with pytest.raises(OSError) as closing:
            mounted.call(os.close, descriptor)
        assert closing.value.errno == errno.EIO
        assert time.monotonic() - started < LATER_BOUND
        assert mounted.read_bytes("work/notes.txt") == written
        assert mounted.statistics()["pending"][f"gs://{bucket.name}/work/notes.txt"]["status"].startswith(
            "waiting for the server"
        )
        assert "served stale" in mounted.log
        assert bucket.get_blob("work/notes.txt") is None
    finally:
        proxy.up()
    back = time.monotonic()

    while bucket.get_blob("work/notes.txt") is None:
        assert time.monotonic() - back < LANDING_BOUND, "the file written offline did not land by itself"
        time.sleep(0.1)
    print(f"landed {time.monotonic() - back:.2f} s after the server came back; first offline answer {first:.1f} s")
    blob = bucket.get_blob("work/notes.txt")
    assert blob.download_as_bytes() == written
    assert "octue__id" in blob.metadata
    assert "storage server found again" in mounted.log
    assert mounted.statistics()["pending"] == {}
