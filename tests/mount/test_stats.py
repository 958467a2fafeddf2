"""`octuefs stats MOUNTPOINT`: the daemon's counters move as known operations happen."""

from __future__ import annotations

import json
import os
import re
import sys
import urllib.error
import urllib.request

import pytest

from octuefs.local_server import free_port
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


def test_prometheus_endpoint_serves_the_same_counters(mount, bucket):
    bucket.blob("a.txt").upload_from_string(b"abc")
    port = free_port()
    mounted = mount("", "--metrics-port", str(port))
    assert mounted.sh("cat", mounted / "a.txt").stdout == b"abc"

    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        assert response.headers["Content-Type"].startswith("text/plain")
        text = response.read().decode()

    samples = {}
    for line in text.splitlines():
        if line.startswith("#"):
            assert line.startswith(("# HELP octuefs_", "# TYPE octuefs_"))
            continue
        name, value = line.rsplit(" ", 1)
        assert re.fullmatch(r'octuefs_[a-z_]+(\{[a-z]+="[A-Za-z0-9_]+"\})?', name), line
        samples[name] = float(value)
    assert samples['octuefs_requests_total{kind="read"}'] >= 1
    assert samples["octuefs_bytes_down_total"] >= 3
    assert samples["octuefs_pending_uploads"] == 0
    assert "octuefs_cache_size_bytes" in samples


def test_debug_logs_every_fuse_operation_and_storage_request_with_timing(mount, bucket):
    bucket.blob("data/a.txt").upload_from_string(b"abc")
    mounted = mount("", "--debug")
    assert mounted.sh("cat", mounted / "data/a.txt").stdout == b"abc"
    assert run("cat", mounted / "data/missing.txt").returncode != 0

    log = mounted.log
    assert re.search(rf"fuse read gs://{bucket.name}/data/a.txt: ok, [0-9.]+ ms", log)
    assert re.search(r"fuse lookup .*: ok, [0-9.]+ ms", log)
    assert re.search(rf"read gs://{bucket.name}/data/a.txt: read bytes 0-2, [0-9.]+ ms", log)
    assert "Authorization" not in log and "Bearer" not in log


def test_json_log_lines_carry_each_operation_as_fields(mount, bucket):
    bucket.blob("data/a.txt").upload_from_string(b"abc")
    mounted = mount("", "--debug", "--log-format", "json")
    assert mounted.sh("cat", mounted / "data/a.txt").stdout == b"abc"
    mounted.sh("sh", "-c", f"echo new > {mounted / 'data/b.txt'}")

    records = [json.loads(line) for line in mounted.log.splitlines()]  # every line is one JSON object
    assert {"time", "level", "logger", "pid", "message"} <= set(records[0])
    reads = [record for record in records if record.get("op") == "read"]
    assert reads and reads[0]["object"] == f"gs://{bucket.name}/data/a.txt" and reads[0]["outcome"] == "ok"
    assert isinstance(reads[0]["ms"], float)
    requests = {record["request"] for record in records if "request" in record}
    assert {"read", "upload"} <= requests, requests
    assert not any("upload_id" in line or "Bearer" in line for line in mounted.log.splitlines())


def test_an_unknown_log_format_is_refused_before_mounting(mount, tmp_path):
    result = run(*CLI, "mount", "some-bucket", tmp_path, "--log-format", "xml")
    assert result.returncode != 0 and b"log format 'xml'" in result.stderr


def test_metrics_are_served_on_the_address_asked_for_and_only_there(mount, bucket):
    """A pod's Prometheus reaches the pod's address, not its loopback: --metrics-address moves the port
    (127.0.0.2 stands for that address here; Linux answers all of 127/8 on loopback)."""
    port = free_port()
    mount("", "--metrics-port", str(port), "--metrics-address", "127.0.0.2")

    with urllib.request.urlopen(f"http://127.0.0.2:{port}/metrics", timeout=10) as response:
        assert "octuefs_pending_uploads 0" in response.read().decode()
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10)
