"""The image on its own: octuefs is PID 1, logs JSON lines, answers its health check from `octuefs
stats`, serves metrics, takes options from the environment, and says what it lacks without /dev/fuse."""

from __future__ import annotations

import json
import os
import signal
import time
import urllib.request

import pytest

from tests.containers.conftest import ACCESS, MOUNTPOINT, checked, podman

pytestmark = pytest.mark.timeout(900)  # the first container test of a session may build the image


def test_octuefs_is_pid_1_healthy_with_metrics_and_json_logs(containers, bucket):
    bucket.blob("a.txt").upload_from_string(b"abc")
    mounted = containers.mount(bucket.name, "--env", "OCTUEFS_OPTIONS=read_only,metadata_ttl=5")

    assert mounted.sh(f"cat {MOUNTPOINT}/a.txt") == b"abc"
    assert mounted.sh("cat /proc/1/cmdline").split(b"\0")[:3] == [
        b"/opt/octuefs/bin/python3",
        b"/opt/octuefs/bin/octuefs",
        b"mount",
    ]
    assert json.loads(mounted.sh(f"octuefs stats --json {MOUNTPOINT}"))["server"]["state"] == "up"
    assert checked(podman("healthcheck", "run", mounted.name)).returncode == 0
    with urllib.request.urlopen(f"http://127.0.0.1:{mounted.metrics_port}/metrics", timeout=10) as response:
        assert "octuefs_bytes_down_total 3" in response.read().decode()
    (record,) = (json.loads(line) for line in mounted.output.splitlines() if "mounted gs://" in line)
    assert record["pid"] == 1 and record["level"] == "INFO"
    # OCTUEFS_OPTIONS reached the daemon: the mount is read-only.
    refused = mounted.exec("sh", "-c", f"echo x > {MOUNTPOINT}/b.txt")
    assert refused.returncode != 0 and b"Read-only file system" in refused.stderr


def test_the_health_check_fails_while_the_daemon_does_not_answer(containers, bucket):
    """A stopped (hung) daemon keeps its mount in place but answers nothing: the check's own timeout
    (10 s, in the Containerfile) turns that into a failure, and an answer again into success."""
    mounted = containers.mount(bucket.name)
    daemon = mounted.state()["Pid"]  # PID 1 of the container, as the host numbers it
    os.kill(daemon, signal.SIGSTOP)
    try:
        started = time.monotonic()
        assert podman("healthcheck", "run", mounted.name).returncode != 0
        assert time.monotonic() - started < 40
    finally:
        os.kill(daemon, signal.SIGCONT)
    assert checked(podman("healthcheck", "run", mounted.name)).returncode == 0


def test_without_dev_fuse_the_container_says_so(containers, bucket):
    lacking = containers.run("--network", "host", "--cap-add", "SYS_ADMIN", arguments=(bucket.name,))
    assert checked(podman("wait", lacking.name, timeout=60)).stdout.strip() != b"0"
    assert "/dev/fuse does not exist" in lacking.output


def test_without_a_bucket_the_entrypoint_says_how_to_give_one(containers):
    lacking = containers.run(*ACCESS)
    assert checked(podman("wait", lacking.name, timeout=60)).stdout.strip() == b"2"
    assert "set OCTUEFS_BUCKET or give it as the first argument" in lacking.output
