"""What every benchmark needs: a private GCS server, mounts it owns, timing, and a table of ratios.

A benchmark is only honest against a baseline measured on the same machine in the same run, so
each run starts its own fake-gcs-server, measures the direct client and the mount side by side,
and prints measured / baseline against a target. Everything started here (server, proxies, mount
daemons, temp directories) is recorded when started and undone by pid or path on exit, also
after an error or SIGTERM; nothing is ever stopped by name.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
import uuid
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any, TextIO

import requests
from google.auth.credentials import AnonymousCredentials
from google.cloud import storage

from octuefs.local_server import GCSServer, start_server
from tests.support.http_proxy import CountingProxy

MiB = 1024**2
GiB = 1024**3
REPOSITORY = Path(__file__).resolve().parents[1]
MOUNT_TIMEOUT = 60.0
UNMOUNT_TIMEOUT = 30.0


class Interrupted(BaseException):
    """SIGTERM or SIGHUP arrived: unwind so that everything started gets cleaned up."""


# Measuring ---------------------------------------------------------------------------------------


def timed(action: Callable[[], object]) -> float:
    """Seconds that `action` took, on the monotonic high-resolution clock."""
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


@dataclass(frozen=True)
class Samples:
    """Repeated timings of one action; the shortest is reported (the one least disturbed by noise)."""

    values: list[float]

    @property
    def best(self) -> float:
        return min(self.values)

    def describe(self, unit_format: Callable[[float], str]) -> str:
        if len(self.values) == 1:
            return "1 run"
        return f"best of {len(self.values)}: " + ", ".join(unit_format(value) for value in self.values)


def repeat(times: int, measure: Callable[[], float]) -> Samples:
    return Samples([measure() for _ in range(times)])


def read_file(path: Path, block_size: int = MiB) -> int:
    """Read a whole file in `block_size` blocks into one reused buffer (no copy beyond the kernel's)."""
    buffer = bytearray(block_size)
    total = 0
    with open(path, "rb", buffering=0) as file:
        while count := file.readinto(buffer):
            total += count
    return total


def format_seconds(seconds: float) -> str:
    if seconds < 1:
        return f"{seconds * 1000:.1f} ms"
    return f"{seconds:.2f} s"


def format_bytes(count: float) -> str:
    for unit, size in (("GiB", GiB), ("MiB", MiB), ("KiB", 1024)):
        if count >= size:
            return f"{count / size:.1f} {unit}"
    return f"{count:.0f} B"


def format_rate(bytes_per_second: float) -> str:
    return f"{bytes_per_second / 1e6:.0f} MB/s"


# Reporting ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    bound: float
    higher_is_better: bool
    percent: bool = False

    def met(self, ratio: float) -> bool:
        return ratio >= self.bound if self.higher_is_better else ratio <= self.bound

    def format_ratio(self, ratio: float) -> str:
        return f"{ratio * 100:.2f} %" if self.percent else f"{ratio:.2f}"

    def __str__(self) -> str:
        return (">= " if self.higher_is_better else "<= ") + self.format_ratio(self.bound)


@dataclass(frozen=True)
class Quantity:
    value: float
    format: Callable[[float], str]
    label: str = ""

    def __str__(self) -> str:
        text = self.format(self.value)
        return f"{text} ({self.label})" if self.label else text


@dataclass
class Row:
    """One workload: measured / baseline against a target."""

    number: int
    workload: str
    measured: Quantity | None
    baseline: Quantity | None
    target: Target
    notes: list[str] = field(default_factory=list)
    error: str | None = None

    @property
    def ratio(self) -> float | None:
        if self.measured is None or self.baseline is None or self.baseline.value == 0:
            return None
        return self.measured.value / self.baseline.value

    @property
    def result(self) -> str:
        if self.ratio is None:
            return "ERROR"
        return "PASS" if self.target.met(self.ratio) else "MISS"

    def cells(self) -> list[str]:
        ratio = self.ratio
        return [
            str(self.number),
            self.workload,
            str(self.measured) if self.measured else "-",
            str(self.baseline) if self.baseline else "-",
            self.target.format_ratio(ratio) if ratio is not None else "-",
            str(self.target),
            self.result,
        ]

    def to_dict(self) -> dict[str, Any]:
        return {
            "number": self.number,
            "workload": self.workload,
            "measured": self.measured.value if self.measured else None,
            "measured_text": str(self.measured) if self.measured else None,
            "baseline": self.baseline.value if self.baseline else None,
            "baseline_text": str(self.baseline) if self.baseline else None,
            "ratio": self.ratio,
            "target": str(self.target),
            "result": self.result,
            "notes": self.notes,
            "error": self.error,
        }


TABLE_HEADER = ["#", "workload", "octuefs", "baseline", "ratio", "target", "result"]


def print_table(rows: list[Row], file: TextIO = sys.stdout) -> None:
    table = [TABLE_HEADER, *(row.cells() for row in rows)]
    widths = [max(len(line[column]) for line in table) for column in range(len(TABLE_HEADER))]

    def line(cells: list[str]) -> str:
        return "  ".join(cell.ljust(width) for cell, width in zip(cells, widths, strict=True)).rstrip()

    print(line(TABLE_HEADER), file=file)
    print("  ".join("-" * width for width in widths), file=file)
    for row in rows:
        print(line(row.cells()), file=file)
    print(file=file)
    for row in rows:
        for note in ([f"error: {row.error}"] if row.error else []) + row.notes:
            print(f"  {row.number}: {note}", file=file)


def write_json(path: Path, title: str, machine: dict[str, str], rows: list[Row]) -> None:
    path.write_text(json.dumps({"title": title, "machine": machine, "rows": [row.to_dict() for row in rows]}, indent=2))


def machine_description() -> dict[str, str]:
    """What the numbers depend on: CPUs, memory, kernel, Python, the octuefs revision, other load."""
    cpu_model = "unknown CPU"
    with contextlib.suppress(OSError):
        match = re.search(r"^model name\s*:\s*(.+)$", Path("/proc/cpuinfo").read_text(), re.MULTILINE)
        cpu_model = match.group(1).strip() if match else cpu_model
    memory = "unknown"
    with contextlib.suppress(OSError):
        match = re.search(r"^MemTotal:\s*(\d+) kB", Path("/proc/meminfo").read_text(), re.MULTILINE)
        memory = format_bytes(int(match.group(1)) * 1024) if match else memory
    revision = subprocess.run(
        ["git", "-C", str(REPOSITORY), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    return {
        "cpus": f"{len(os.sched_getaffinity(0))} ({cpu_model})",
        "memory": memory,
        "kernel": f"{platform.system()} {platform.release()}",
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "octuefs": revision or "unknown revision",
        "load average at start": " ".join(f"{load:.2f}" for load in os.getloadavg()),
    }


def log(message: str) -> None:
    """Progress goes to stderr, so stdout holds only the report."""
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# Data --------------------------------------------------------------------------------------------


def write_random_file(path: Path, size: int, block_size: int = 64 * MiB) -> Path:
    """Incompressible content, written in blocks so memory stays at one block."""
    with open(path, "wb") as file:
        remaining = size
        while remaining:
            block = os.urandom(min(block_size, remaining))
            file.write(block)
            remaining -= len(block)
    return path


def upload_many(bucket: storage.Bucket, objects: Iterable[tuple[str, bytes]], threads: int = 16) -> int:
    """Upload small objects in parallel (one simple upload each); returns how many."""
    with ThreadPoolExecutor(threads) as pool:
        futures = [pool.submit(bucket.blob(name).upload_from_string, data) for name, data in objects]
        for future in futures:
            future.result()
    return len(futures)


# Processes and mounts ----------------------------------------------------------------------------


def is_mounted(path: Path) -> bool:
    """From the mount table, so a hung or dead FUSE daemon cannot block the check."""
    target = os.path.abspath(path)
    with open("/proc/self/mountinfo") as mounts:
        for entry in mounts:
            fields = entry.split()
            if len(fields) > 4 and fields[4].encode().decode("unicode_escape") == target:
                return True
    return False


def process_alive(pid: int) -> bool:
    """True while `pid` runs; a zombie (exited, not yet reaped by its new parent) counts as gone."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


def wait_for_exit(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not process_alive(pid):
            return True
        time.sleep(0.02)
    return not process_alive(pid)


def stop_process(pid: int) -> None:
    """SIGTERM, then SIGKILL, for one process this run started (identified by the pid it reported)."""
    for signal_number, grace in ((signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)):
        if not process_alive(pid):
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal_number)
        if wait_for_exit(pid, grace):
            return
    log(f"warning: process {pid} is still alive after SIGKILL")


@dataclass
class Mount:
    """A FUSE mount this run made (or was making); `unmount` leaves no mount and no daemon, and may be repeated.

    Any FUSE filesystem fits (octuefs now, rclone for comparisons): what differs is how it is
    started (a function that fills in `daemon_pid`) and its own unmount command.
    """

    mountpoint: Path
    cache_dir: Path
    unmount_command: list[str]
    daemon_pid: int | None = None

    def unmount(self) -> None:
        if is_mounted(self.mountpoint):
            try:
                subprocess.run(self.unmount_command, capture_output=True, timeout=UNMOUNT_TIMEOUT)
            except subprocess.TimeoutExpired:
                log(f"warning: {' '.join(self.unmount_command)} timed out")
        if is_mounted(self.mountpoint):
            subprocess.run(["fusermount3", "-u", "-z", str(self.mountpoint)], capture_output=True)
        if self.daemon_pid is not None and not wait_for_exit(self.daemon_pid, 10.0):
            stop_process(self.daemon_pid)


def octuefs_mount(mountpoint: Path, cache_dir: Path) -> Mount:
    command = [sys.executable, "-m", "octuefs.cli.main", "unmount", str(mountpoint)]
    return Mount(mountpoint, cache_dir, command)


def start_octuefs(mount: Mount, bucket: str, endpoint: str, *options: str) -> None:
    """`octuefs mount`, which returns once the mount is ready and prints the daemon's pid."""
    mount.mountpoint.mkdir(parents=True, exist_ok=True)
    command = [
        sys.executable, "-m", "octuefs.cli.main", "mount", bucket, str(mount.mountpoint),
        "--endpoint", endpoint, "--cache-dir", str(mount.cache_dir), *options,
    ]  # fmt: skip
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=MOUNT_TIMEOUT, cwd=REPOSITORY)
    except BaseException:
        mount.unmount()  # interrupted or timed out: the daemon may have mounted all the same
        raise
    match = re.search(r"daemon pid (\d+)", result.stdout)
    mount.daemon_pid = int(match.group(1)) if match else None
    if result.returncode != 0 or match is None:
        mount.unmount()
        raise RuntimeError(f"octuefs mount failed ({result.returncode}): {result.stderr.strip() or result.stdout}")


def storage_client(endpoint: str, pool_size: int = 32) -> storage.Client:
    """The plain google-cloud-storage client, as a user would make it, with room for parallel requests."""
    client = storage.Client(
        project="bench", credentials=AnonymousCredentials(), client_options={"api_endpoint": endpoint}
    )
    adapter = requests.adapters.HTTPAdapter(pool_connections=4, pool_maxsize=pool_size)
    client._http.mount("http://", adapter)
    return client


class BenchEnvironment:
    """One run's server, client, temp directory, proxies and mounts, all cleaned up on exit."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._stack = contextlib.ExitStack()
        self._previous_handlers: dict[int, Any] = {}
        self.mounts: list[Mount] = []

    def __enter__(self) -> BenchEnvironment:
        for number in (signal.SIGTERM, signal.SIGHUP):
            self._previous_handlers[number] = signal.signal(number, self._interrupt)
        try:
            self.root = Path(tempfile.mkdtemp(prefix=f"octuefs-{self.name}-"))
            self._stack.callback(self._remove_root)
            self.server: GCSServer = start_server()
            self._stack.callback(self.server.stop)
            self.client = storage_client(self.server.url)
            self._stack.callback(self._unmount_all)
        except BaseException:
            self.__exit__(*sys.exc_info())
            raise
        return self

    def __exit__(self, *exc_info: object) -> None:
        try:
            self._stack.close()
        finally:
            for number, handler in self._previous_handlers.items():
                signal.signal(number, handler)

    @staticmethod
    def _interrupt(number: int, frame: FrameType | None) -> None:
        signal.signal(number, signal.SIG_IGN)  # a second signal must not cut the cleanup short
        raise Interrupted(f"signal {number}")

    def _unmount_all(self) -> None:
        for mount in self.mounts:
            mount.unmount()

    def _remove_root(self) -> None:
        """Remove the temp tree, unless something is still mounted inside it (never delete through a mount)."""
        if any(is_mounted(mount.mountpoint) for mount in self.mounts):
            log(f"warning: leaving {self.root}: a mount inside it could not be removed")
            return
        shutil.rmtree(self.root, ignore_errors=True)

    def directory(self, hint: str) -> Path:
        return Path(tempfile.mkdtemp(prefix=f"{hint}-", dir=self.root))

    def bucket(self, hint: str) -> storage.Bucket:
        return self.client.create_bucket(f"{hint}-{uuid.uuid4().hex[:12]}")

    def proxy(self) -> CountingProxy:
        """A counting proxy in front of the server, for rows that count requests or bytes."""
        counting = CountingProxy(self.server.url)
        counting.start()
        self._stack.callback(counting.stop)
        return counting

    def mount(self, bucket: str, *options: str, endpoint: str | None = None) -> Mount:
        """A fresh octuefs mount with an empty cache directory of its own."""
        place = self.directory("mount")
        mount = octuefs_mount(place / "mnt", place / "cache")
        self.mounts.append(mount)  # recorded first, so that cleanup on exit covers an interrupted mount too
        start_octuefs(mount, bucket, endpoint or self.server.url, *options)
        return mount

    @contextlib.contextmanager
    def mounted(self, bucket: str, *options: str, endpoint: str | None = None) -> Iterator[Mount]:
        mount = self.mount(bucket, *options, endpoint=endpoint)
        try:
            yield mount
        finally:
            mount.unmount()


Workload = Callable[[BenchEnvironment, Any], list[Row]]


def run_benchmark(
    name: str,
    doc: str | None,
    workloads: list[tuple[list[int], str, Workload]],
    targets: dict[int, Target],
    full: Any,
    quick: Any,
    argv: list[str] | None = None,
) -> int:
    """Run every workload in one environment and print the table; 1 only if a row could not be measured."""
    parser = argparse.ArgumentParser(description=(doc or name).splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    parser.add_argument("--json", type=Path, help="also write the rows as JSON to this file")
    arguments = parser.parse_args(argv)
    sizes = quick if arguments.quick else full
    title = f"octuefs {name} benchmark ({'quick' if arguments.quick else 'full'} sizes)"
    machine = machine_description()
    started = time.monotonic()
    rows: list[Row] = []
    try:
        with BenchEnvironment(f"{name}-bench") as env:
            log(f"server at {env.server.url}; temp directory {env.root}")
            for numbers, workload_name, workload in workloads:
                log(f"rows {numbers}: {workload_name}")
                try:
                    rows.extend(workload(env, sizes))
                except Exception as error:
                    traceback.print_exc()
                    rows.extend(
                        Row(
                            number, workload_name, None, None, targets[number], error=f"{type(error).__name__}: {error}"
                        )
                        for number in numbers
                    )
    except Interrupted as interruption:
        log(f"interrupted by {interruption}; cleaned up")
        return 130
    print(title)
    print("machine: " + "; ".join(f"{key} {value}" for key, value in machine.items()))
    took = time.monotonic() - started
    print(f"server: fake-gcs-server (memory backend) on 127.0.0.1, started by this run; whole run {took:.0f} s")
    print()
    print_table(rows)
    if arguments.json:
        write_json(arguments.json, title, machine, rows)
    return 1 if any(row.error for row in rows) else 0
