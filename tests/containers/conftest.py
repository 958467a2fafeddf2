"""Fixtures for tests with real containers: the image scripts/build-image.sh makes, run by podman.

The image is built once per session, and not at all when one built from the same inputs exists (the
script tags it by their hash). Every container runs with /dev/fuse and CAP_SYS_ADMIN only, on the
host's network (`--network host`) so that it reaches the session's storage server (through the
suite's counting proxy) on 127.0.0.1, and
is removed by its unique name at teardown; mounts that propagated to the host are detached too.
Without podman these tests skip, or fail under OCTUEFS_REQUIRE_ALL=1.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from octuefs.local_server import free_port
from tests.conftest import unavailable
from tests.mount.conftest import require_fuse
from tests.support.http_proxy import CountingProxy

REPOSITORY = Path(__file__).parents[2]
BUILD_TIMEOUT = 900.0
COMMAND_TIMEOUT = 60.0
MOUNTPOINT = "/mnt/bucket"
# Containers need the project's podman settings (runc, no default ulimits), not the user's.
PODMAN_ENVIRONMENT = {**os.environ, "CONTAINERS_CONF": str(REPOSITORY / "deploy" / "podman" / "containers.conf")}
ACCESS = ("--device", "/dev/fuse", "--cap-add", "SYS_ADMIN")


def podman(*arguments: str | os.PathLike[str], timeout: float = COMMAND_TIMEOUT) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["podman", *map(os.fspath, arguments)], capture_output=True, timeout=timeout, env=PODMAN_ENVIRONMENT
    )


def checked(result: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert result.returncode == 0, f"{result.args} exited {result.returncode}: {result.stderr.decode(errors='replace')}"
    return result


@pytest.fixture(scope="session")
def image() -> str:
    """The image's name, as the last line of the build script's output."""
    if shutil.which("podman") is None:
        unavailable("podman is not installed (as root: bash scripts/install.sh)")
    require_fuse()
    started = time.monotonic()
    result = subprocess.run(
        ["bash", REPOSITORY / "scripts" / "build-image.sh"],
        capture_output=True,
        timeout=BUILD_TIMEOUT,
        env={**os.environ, "PYTHON": sys.executable},
    )
    assert result.returncode == 0, f"building the image failed:\n{result.stderr.decode(errors='replace')[-6000:]}"
    name = result.stdout.decode().strip().splitlines()[-1]
    print(f"image {name} ready in {time.monotonic() - started:.1f} s")
    return name


@dataclass
class Container:
    name: str
    cache: Path | None = None  # the host directory holding its cache, when it has one
    metrics_port: int | None = None  # on the host's loopback (the container shares the host's network)

    def exec(self, *command: str, timeout: float = COMMAND_TIMEOUT) -> subprocess.CompletedProcess:
        return podman("exec", self.name, *command, timeout=timeout)

    def sh(self, script: str, timeout: float = COMMAND_TIMEOUT) -> bytes:
        """A shell command that must succeed; its stdout."""
        return checked(self.exec("sh", "-c", script, timeout=timeout)).stdout

    def popen(self, *command: str) -> subprocess.Popen:
        return subprocess.Popen(
            ["podman", "exec", self.name, *command],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=PODMAN_ENVIRONMENT,
        )

    @property
    def output(self) -> str:
        """All the container wrote (a traceback too, should the daemon die)."""
        result = podman("logs", self.name)
        return (result.stdout + result.stderr).decode(errors="replace")

    @property
    def log(self) -> str:
        """The messages of the daemon's log lines (--log-format json: one JSON object a line)."""
        lines = self.output.splitlines()
        return "\n".join(json.loads(line)["message"] for line in lines if line.startswith("{"))

    def state(self) -> dict:
        return json.loads(checked(podman("inspect", "--format", "{{json .State}}", self.name)).stdout)

    def stop(self, seconds: float = 30.0) -> None:
        """SIGTERM (the image's STOPSIGNAL), and SIGKILL only after `seconds`."""
        checked(podman("stop", "--time", str(int(seconds)), self.name, timeout=seconds + COMMAND_TIMEOUT))

    def wait_mounted(self, mountpoint: str = MOUNTPOINT, seconds: float = 60.0) -> None:
        """Until `octuefs stats` answers from the mount (what the image's health check asks)."""
        deadline = time.monotonic() + seconds
        while self.exec("octuefs", "stats", "--json", mountpoint).returncode != 0:
            if not self.state()["Running"] or time.monotonic() > deadline:
                pytest.fail(f"{self.name} did not mount within {seconds} s:\n{self.output[-4000:]}")
            time.sleep(0.2)


@dataclass
class Containers:
    """Starts containers of the image; all of them are removed (by name) at teardown."""

    image: str
    endpoint: str
    base: Path
    started: list[Container] = field(default_factory=list)
    host_mounts: list[Path] = field(default_factory=list)

    def run(self, *options: str, arguments: tuple[str, ...] = (), entrypoint: str | None = None) -> Container:
        container = Container(f"octuefs-test-{uuid.uuid4().hex[:12]}")
        self.started.append(container)
        override = ("--entrypoint", entrypoint) if entrypoint else ()
        checked(podman("run", "--detach", "--name", container.name, *options, *override, self.image, *arguments))
        return container

    def mount(
        self,
        bucket: str,
        *options: str,
        mountpoint: str = MOUNTPOINT,
        arguments: tuple[str, ...] = (),
        cache: Path | None = None,
    ) -> Container:
        """An octuefs container mounting `bucket` at `mountpoint`, its cache in a host directory: a new one,
        or `cache` (another container's, as a restarted pod keeps its volume)."""
        if cache is None:
            cache = self.base / f"cache-{len(self.started)}"
            cache.mkdir(mode=0o700)
        port = free_port()  # containers on the host's network cannot all have the image's default port
        container = self.run(
            "--network", "host", *ACCESS, "--volume", f"{cache}:/var/cache/octuefs",
            "--env", f"OCTUEFS_MOUNTPOINT={mountpoint}", "--env", f"OCTUEFS_METRICS_PORT={port}", *options,
            arguments=(bucket, "--endpoint", self.endpoint, *arguments),
        )  # fmt: skip
        container.cache, container.metrics_port = cache, port
        container.wait_mounted(mountpoint)
        return container

    def cleanup(self) -> None:
        for container in self.started:
            print(f"--- output of {container.name} ---\n{container.output[-3000:]}")
            podman("rm", "--force", "--time", "5", container.name)
        for path in reversed(self.host_mounts):
            subprocess.run(["fusermount3", "-u", "-z", path / "bucket"], capture_output=True, timeout=10)
            subprocess.run(["umount", "-l", path], capture_output=True, timeout=10)


@pytest.fixture
def containers(image: str, proxy: CountingProxy, bucket, tmp_path: Path) -> Iterator[Containers]:
    """Through the suite's proxy, as every mount test: it enforces the preconditions the emulator ignores."""
    started = Containers(image, proxy.url, tmp_path)
    try:
        yield started
    finally:
        started.cleanup()
