"""A mount with the DEFAULT retry settings (no --retry-deadline) while the server is away: the first
operation that needs it fails with EIO within 30 s, later ones within 2 s (the circuit breaker), and
`octuefs stats`, the Prometheus metrics and the log say when the server was lost and found again; a
read whose GET stalls is retried and completes in seconds.

"The server away" is the proxy's `down()` switch (every connection reset), as in test_faults.py.
"""

from __future__ import annotations

import json
import os
import sys
import time
import urllib.request

import pytest

from octuefs.local_server import free_port
from tests.mount.conftest import run
from tests.support.http_proxy import Fault

pytestmark = pytest.mark.timeout(150)

CLI = (sys.executable, "-m", "octuefs.cli.main")
FIRST_FAILURE_BOUND = 30.0
LATER_FAILURE_BOUND = 2.0


def statistics(mountpoint) -> dict:
    result = run(*CLI, "stats", mountpoint, "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def metrics(port: int) -> dict[str, float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        lines = response.read().decode().splitlines()
    return {line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1]) for line in lines if not line.startswith("#")}


def timed_failure(*command, timeout: float = 60) -> tuple[float, bytes]:
    """Run a command that must fail with EIO; its duration and stderr."""
    started = time.monotonic()
    result = run(*command, timeout=timeout)
    elapsed = time.monotonic() - started
    assert result.returncode != 0, f"{command} succeeded with the server away"
    assert b"Input/output error" in result.stderr, result.stderr
    return elapsed, result.stderr


def test_with_the_server_away_ls_fails_within_30_s_then_at_once_and_stats_show_it_lost_and_found(mount, bucket, proxy):
    for name in ("data/a.csv", "other/b.csv", "third/c.csv"):
        bucket.blob(name).upload_from_string(b"t,v\n1,2\n")
    port = free_port()
    mounted = mount("", "--metrics-port", str(port), retry_deadline=None)
    before = statistics(mounted.path)
    assert before["server"] == {"state": "up", "lost_at": None, "found_at": None, "outages": 0, "cause": None}
    assert metrics(port)["octuefs_server_up"] == 1

    proxy.down(300)
    try:
        first, _ = timed_failure("ls", mounted / "data")
        assert first < FIRST_FAILURE_BOUND, f"the first failure took {first:.1f} s"
        later, _ = timed_failure("ls", mounted / "other")
        assert later < LATER_FAILURE_BOUND, f"the second uncached operation took {later:.1f} s"
        third, _ = timed_failure("stat", mounted / "third")
        assert third < LATER_FAILURE_BOUND

        down = statistics(mounted.path)
        assert down["server"]["state"] == "down" and down["server"]["outages"] == 1
        assert down["server"]["lost_at"] and down["server"]["found_at"] is None
        assert "Connection reset by peer" in down["server"]["cause"]
        text = run(*CLI, "stats", mounted.path).stdout.decode()
        assert "server.state: down" in text and "server.outages: 1" in text
        samples = metrics(port)
        assert samples["octuefs_server_up"] == 0 and samples["octuefs_server_outages_total"] == 1
        assert samples["octuefs_server_lost_at_seconds"] > 0
    finally:
        proxy.up()

    noticed = mounted.wait_until_server_found()
    up = statistics(mounted.path)["server"]
    assert up["found_at"] and up["lost_at"] == down["server"]["lost_at"] and up["outages"] == 1
    assert metrics(port)["octuefs_server_up"] == 1
    assert mounted.sh("ls", mounted / "data").stdout == b"a.csv\n"

    log = mounted.log
    lost_lines = [line for line in log.splitlines() if "storage server lost" in line]
    found_lines = [line for line in log.splitlines() if "storage server found again after" in line]
    assert len(lost_lines) == 1 and "Connection reset by peer" in lost_lines[0]
    assert len(found_lines) == 1
    print(
        f"\nmeasured on a mount: first EIO {first:.1f} s, then {later:.2f} s and {third:.2f} s; "
        f"return noticed {noticed:.1f} s after the server came back"
    )


def test_a_read_whose_get_stalls_is_retried_and_counted_in_stats(mount, bucket, proxy):
    contents = {f"warm/{index}.bin": os.urandom(64 * 1024) for index in range(10)}
    for name, content in contents.items():
        bucket.blob(name).upload_from_string(content)
    stuck = os.urandom(512 * 1024)
    bucket.blob("stuck.bin").upload_from_string(stuck)
    mounted = mount("", retry_deadline=None)
    for name, content in contents.items():  # recent reads, for the stall timeout to follow
        assert mounted.read_bytes(name) == content
    mounted.sh("stat", mounted / "stuck.bin")
    held = proxy.add(Fault("delay", "GET", r"/o/stuck\.bin\?.*alt=media", remaining=1, seconds=40))

    started = time.monotonic()
    assert mounted.read_bytes("stuck.bin") == stuck
    elapsed = time.monotonic() - started

    assert held.remaining == 0
    assert elapsed < 10, f"the stalled read took {elapsed:.1f} s"
    assert statistics(mounted.path)["stalled_reads_retried"] == 1
    assert "stuck.bin: read of bytes" in mounted.log and "stalled" in mounted.log
    print(f"\nmeasured on a mount: a read whose GET stalled completed in {elapsed:.1f} s")
