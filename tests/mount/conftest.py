"""Fixtures for tests through a real FUSE mount made by the real `octuefs mount` command.

The daemon is its own process (forked by the CLI), so a crash or hang fails one test instead of
freezing pytest: every command runs with a timeout, Python calls on the mount run in a watched
thread (`within`), and teardown always detaches the mount (`fusermount3 -u -z`) and then ends the
daemon by its pid, never by name. A lazily detached mount with a dead daemon answers ENOTCONN,
which also releases any thread still stuck in a syscall on it.
"""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import pytest

from octuefs.fs import xattrs
from octuefs.fs.runtime import pid_file
from octuefs.storage.gcs import PROBE_TIMEOUT
from octuefs.storage.health import PROBE_INTERVAL
from tests.conftest import unavailable

CLI = (sys.executable, "-m", "octuefs.cli.main")
COMMAND_TIMEOUT = 30.0
CALL_TIMEOUT = 20.0
# Short, so a retried failure gives EIO within a test's time; long enough for a server slowed by load.
RETRY_DEADLINE = 5
PID_LINE = re.compile(r"\(daemon pid (\d+)\)")

Result = TypeVar("Result")


def require_fuse() -> None:
    if not os.path.exists("/dev/fuse"):
        unavailable("/dev/fuse does not exist")
    if shutil.which("fusermount3") is None:
        unavailable("fusermount3 is not installed (apt-get install fuse3)")


def run(*command: str | os.PathLike[str], timeout: float = COMMAND_TIMEOUT) -> subprocess.CompletedProcess:
    """A command with a deadline: a mount that stopped answering fails the test instead of stalling it."""
    return subprocess.run([os.fspath(part) for part in command], capture_output=True, timeout=timeout)


def within(seconds: float, function: Callable[..., Result], *args: Any, **kwargs: Any) -> Result:
    """Call `function` in a thread and wait at most `seconds`: a syscall on a hung FUSE mount cannot be
    interrupted by pytest-timeout's alarm, but a waiting main thread can give up.

    Only for calls that release the GIL during their syscalls (os.*, open/read). Libraries that keep it
    (h5py) must run in a child process: the counting proxy the daemon talks to lives in this process
    and could not answer, so the call would wait for a reply that can never come.
    """
    outcome: dict[str, Any] = {}

    def target() -> None:
        try:
            outcome["value"] = function(*args, **kwargs)
        except BaseException as error:
            outcome["error"] = error

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(seconds)
    if thread.is_alive():
        pytest.fail(f"{getattr(function, '__name__', function)}{args} did not return within {seconds} s")
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


def alive(pid: int) -> bool:
    """True while the process exists and has not exited (a zombie has exited; PID 1 here reaps late)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, IndexError, ProcessLookupError):
        return False
    return state not in ("Z", "X")


def wait_gone(pid: int, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def is_mount(path: Path) -> bool:
    """From /proc/self/mountinfo, so asking never touches (and never waits on) the mount itself."""
    target = os.path.abspath(path)
    with open("/proc/self/mountinfo") as mountinfo:
        return any(line.split()[4] == target for line in mountinfo)


def processes_mentioning(text: str) -> list[int]:
    """Pids whose command line contains `text` (a unique temp path): to prove nothing was left behind."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            command_line = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if text in command_line and alive(int(entry.name)):
            found.append(int(entry.name))
    return found


def stop_daemon(pid: int) -> None:
    """End a daemon by pid: it exits by itself once unmounted; otherwise SIGTERM, then SIGKILL."""
    if wait_gone(pid, 2):
        return
    for number, grace in ((signal.SIGTERM, 3), (signal.SIGKILL, 3)):
        try:
            os.kill(pid, number)
        except ProcessLookupError:
            return
        if wait_gone(pid, grace):
            return


@dataclass
class Mount:
    path: Path
    cache_dir: Path
    pid: int
    source: str
    output: str

    def __truediv__(self, relative: str) -> Path:
        return self.path / relative

    @property
    def log(self) -> str:
        log_file = self.cache_dir / "octuefs.log"
        return log_file.read_text(errors="replace") if log_file.exists() else "(no daemon log)"

    def sh(self, *command: str | os.PathLike[str], timeout: float = COMMAND_TIMEOUT) -> subprocess.CompletedProcess:
        """Run a tool that must succeed; on failure the message carries its stderr and the daemon log."""
        result = run(*command, timeout=timeout)
        if result.returncode != 0:
            pytest.fail(
                f"{[os.fspath(part) for part in command]} exited {result.returncode}: "
                f"{result.stderr.decode(errors='replace')}\n--- daemon log ---\n{self.log[-4000:]}"
            )
        return result

    def call(self, function: Callable[..., Result], *args: Any, **kwargs: Any) -> Result:
        return within(CALL_TIMEOUT, function, *args, **kwargs)

    def read_bytes(self, relative: str) -> bytes:
        return self.call((self.path / relative).read_bytes)

    def unmount(self) -> subprocess.CompletedProcess:
        return run(*CLI, "unmount", self.path)

    def statistics(self) -> dict[str, Any]:
        """The daemon's counters, as `octuefs stats --json` prints them."""
        return json.loads(self.call(os.getxattr, self.path, xattrs.STATS))

    def wait_until_server_found(self) -> float:
        """After `proxy.up()`, requests fail at once until the daemon's probe finds the server again (the
        circuit breaker, octuefs/storage/health.py): wait for that, at most one probe interval and one
        probe's timeout (plus margin); the seconds it took."""
        started = time.monotonic()
        while self.statistics()["server"]["state"] != "up":
            assert time.monotonic() - started < PROBE_INTERVAL + PROBE_TIMEOUT + 5, "the server's return went unnoticed"
            time.sleep(0.05)
        return time.monotonic() - started


@dataclass
class Mounter:
    """`mount()` mounts the test's bucket; everything it (or `attempt`) touched is cleaned up."""

    bucket: str
    endpoint: str
    base: Path
    mountpoints: list[Path] = field(default_factory=list)
    pids: list[int] = field(default_factory=list)
    mounts: list[Mount] = field(default_factory=list)

    def new_dir(self, name: str) -> Path:
        path = self.base / f"{name}-{len(self.mountpoints)}"
        path.mkdir(parents=True)
        return path

    def attempt(self, *arguments: str | os.PathLike[str], mountpoint: Path) -> subprocess.CompletedProcess:
        """Run `octuefs ARGUMENTS` that may mount at `mountpoint` (which is then always cleaned up)."""
        self.mountpoints.append(mountpoint)
        try:
            result = run(*CLI, *arguments, timeout=COMMAND_TIMEOUT)
        finally:
            self._remember_daemon(mountpoint)
        match = PID_LINE.search(result.stdout.decode(errors="replace"))
        if match:
            self.pids.append(int(match.group(1)))
        return result

    def _remember_daemon(self, mountpoint: Path) -> None:
        """The pid file is the fallback when the command timed out before printing the pid."""
        record = pid_file(mountpoint)
        if record.exists():
            with contextlib.suppress(ValueError):
                self.pids.append(int(record.read_text()))

    def __call__(
        self,
        prefix: str = "",
        *options: str,
        cache_dir: Path | None = None,
        metadata_ttl: float | None = None,
        retry_deadline: float | None = RETRY_DEADLINE,
    ) -> Mount:
        """`retry_deadline=None` mounts with the default retry settings (no --retry-deadline)."""
        mountpoint = self.new_dir("mnt")
        cache_dir = cache_dir or self.new_dir("cache")
        source = f"{self.bucket}/{prefix}" if prefix else self.bucket
        ttl = ["--metadata-ttl", str(metadata_ttl)] if metadata_ttl is not None else []
        retry = ["--retry-deadline", str(retry_deadline)] if retry_deadline is not None else []
        result = self.attempt(
            "mount",
            source,
            mountpoint,
            "--endpoint",
            self.endpoint,
            "--cache-dir",
            cache_dir,
            *retry,
            *ttl,
            *options,
            mountpoint=mountpoint,
        )
        stdout, stderr = result.stdout.decode(errors="replace"), result.stderr.decode(errors="replace")
        match = PID_LINE.search(stdout)
        if result.returncode != 0 or match is None:
            log_file = cache_dir / "octuefs.log"
            log = log_file.read_text(errors="replace") if log_file.exists() else ""
            pytest.fail(f"mount failed ({result.returncode}): {stdout} {stderr}\n--- daemon log ---\n{log[-4000:]}")
        mount = Mount(mountpoint, cache_dir, int(match.group(1)), source, stdout)
        self.mounts.append(mount)
        return mount

    def cleanup(self) -> None:
        for mount in self.mounts:
            print(f"--- daemon log of {mount.source} at {mount.path} ---\n{mount.log[-4000:]}")
        for mountpoint in reversed(self.mountpoints):
            run("fusermount3", "-u", "-z", mountpoint, timeout=10)
        for pid in self.pids:
            stop_daemon(pid)


@pytest.fixture
def mount(bucket, proxy, tmp_path) -> Iterator[Mounter]:
    """Mount the test's bucket (or a prefix of it) through the CLI: `mount("prefix", "--read-only", ...)`."""
    require_fuse()
    mounter = Mounter(bucket.name, proxy.url, tmp_path)
    try:
        yield mounter
    finally:
        mounter.cleanup()


@dataclass(frozen=True)
class LocalUser:
    """A second local user, for the findings about what other users can do to a mount."""

    name: str
    uid: int
    gid: int

    def run(self, *command: str | os.PathLike[str]) -> subprocess.CompletedProcess:
        return run("runuser", "-u", self.name, "--", *command)

    def octuefs(self, *arguments: str | os.PathLike[str]) -> subprocess.CompletedProcess:
        """`octuefs ARGUMENTS` as this user, without XDG_RUNTIME_DIR (as from cron or ssh without a
        session). The interpreter lives under /root (0700), which the user cannot read, so it is
        started as root, loads octuefs, then drops to the user's ids before running the command."""
        program = (
            "import os, sys; import octuefs.cli.main as cli, octuefs.fs.daemon; "
            f"os.setgroups([]); os.setgid({self.gid}); os.setuid({self.uid}); "
            "sys.exit(cli.main(sys.argv[1:]))"
        )
        environment = {key: value for key, value in os.environ.items() if key != "XDG_RUNTIME_DIR"}
        return subprocess.run(
            [sys.executable, "-c", program, *map(os.fspath, arguments)],
            capture_output=True,
            timeout=COMMAND_TIMEOUT,
            env=environment,
        )


@pytest.fixture(scope="session")
def other_user() -> Iterator[LocalUser]:
    """Made for this run (a unique name) and removed after it; needs root, useradd and runuser."""
    if os.geteuid() != 0 or not all(shutil.which(tool) for tool in ("useradd", "userdel", "runuser")):
        unavailable("a second local user needs root, useradd, userdel and runuser")
    name = f"octuefs-test-{os.getpid()}"
    created = run("useradd", "--no-create-home", "--shell", "/usr/sbin/nologin", "--user-group", name)
    if created.returncode != 0:
        unavailable(f"useradd {name} failed: {created.stderr.decode(errors='replace').strip()}")
    entry = pwd.getpwnam(name)
    try:
        yield LocalUser(name, entry.pw_uid, entry.pw_gid)
    finally:
        run("userdel", name)


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A directory every user can enter (as /var/cache is): pytest's own tmp_path is 0700."""
    path = Path(tempfile.mkdtemp(prefix="octuefs-shared-"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)
