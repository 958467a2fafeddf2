"""What the benchmark needs: a private GCS server, mounts it owns, timing, and a table of ratios.

A benchmark is only honest against baselines measured on the same machine in the same run, so
each run starts its own fake-gcs-server, measures the direct client, octuefs and rclone side by
side, and prints octuefs / direct against a target and octuefs / rclone. Everything started here (server, proxies, mount
daemons, temp directories) is recorded when started and undone by pid or path on exit, also
after an error or SIGTERM; nothing is ever stopped by name.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.metadata
import json
import math
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
from typing import Any, TypeVar

import requests
from google.auth.credentials import AnonymousCredentials
from google.cloud import storage

from octuefs.local_server import GCSServer, binary_path, start_server
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
        runs = "1 run" if len(self.values) == 1 else f"best of {len(self.values)}"
        return f"{runs}: " + ", ".join(unit_format(value) for value in self.values)


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


def wait_for(condition: Callable[[], bool], what: str, interval: float = 0.02, timeout: float = 300.0) -> None:
    """Poll until `condition` holds: rclone uploads after close returns, so its writes end when the bucket says.

    A costly condition wants a longer `interval`, or polling steals the CPU the uploads need.
    """
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise RuntimeError(f"gave up after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


def wait_until_quiet(count: Callable[[], int], quiet: float = 0.5, limit: float = 10.0) -> None:
    """Let requests started by the last operation (readahead, uploads) finish, so they are counted too."""
    deadline = time.monotonic() + limit
    seen, since = count(), time.monotonic()
    while time.monotonic() < deadline and time.monotonic() - since < quiet:
        time.sleep(0.05)
        if count() != seen:
            seen, since = count(), time.monotonic()


def format_seconds(seconds: float) -> str:
    if seconds < 1:
        return f"{seconds * 1000:.1f} ms"
    return f"{seconds:.2f} s"


def format_bytes(count: float) -> str:
    for unit, size in (("GiB", GiB), ("MiB", MiB), ("KiB", 1024)):
        if count >= size:
            return f"{count / size:.1f} {unit}"
    return f"{count:.0f} B"


def format_requests(count: float) -> str:
    return f"{count:.0f} request" + ("" if count == 1 else "s")


def format_rate(bytes_per_second: float) -> str:
    return f"{bytes_per_second / 1e6:.0f} MB/s"


# Reporting ---------------------------------------------------------------------------------------

FILESYSTEMS = ("octuefs", "rclone")
COLUMNS = ("octuefs", "rclone", "direct")


@dataclass(frozen=True)
class Target:
    """The bound on octuefs / direct for one row; octuefs must also be ahead of (or level with) rclone."""

    bound: float
    higher_is_better: bool
    percent: bool = False

    def met(self, ratio: float) -> bool:
        return ratio >= self.bound if self.higher_is_better else ratio <= self.bound

    def ahead(self, ratio: float) -> bool:
        return ratio >= 1.0 if self.higher_is_better else ratio <= 1.0

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


@dataclass(frozen=True)
class Unmeasured:
    """Why a cell has no number: not applicable, not installed, or its measurement failed (`detail` says how)."""

    reason: str
    detail: str = ""

    def __str__(self) -> str:
        return self.reason


Value = Quantity | Unmeasured
T = TypeVar("T")


def values_of(results: dict[str, T | Unmeasured], quantity: Callable[[T], Quantity]) -> dict[str, Value]:
    """Each filesystem's quantity from its result, or the reason it has none passed through."""
    return {name: result if isinstance(result, Unmeasured) else quantity(result) for name, result in results.items()}


def describe(results: dict[str, T | Unmeasured], describe_one: Callable[[T], str]) -> list[str]:
    """A note for each filesystem that was measured."""
    return [f"{name}: {describe_one(result)}" for name, result in results.items() if not isinstance(result, Unmeasured)]


@dataclass
class Row:
    """One workload: octuefs against the direct client (the target) and against rclone (must not be behind)."""

    number: int
    workload: str
    target: Target
    octuefs: Value | None = None
    rclone: Value | None = None
    direct: Value | None = None
    notes: list[str] = field(default_factory=list)
    error: str | None = None

    def ratio(self, baseline: str) -> float | None:
        """octuefs / baseline; equal counts (0 requests each) compare as equal."""
        measured, base = self.octuefs, getattr(self, baseline)
        if not isinstance(measured, Quantity) or not isinstance(base, Quantity):
            return None
        if base.value == 0:
            return 1.0 if measured.value == 0 else math.inf
        return measured.value / base.value

    @property
    def result(self) -> str:
        versus_direct, versus_rclone = self.ratio("direct"), self.ratio("rclone")
        if self.error or versus_direct is None:
            return "ERROR"
        missed = [] if self.target.met(versus_direct) else ["direct"]
        if versus_rclone is not None and not self.target.ahead(versus_rclone):
            missed.append("rclone")
        return f"MISS ({', '.join(missed)})" if missed else "PASS"

    def cells(self) -> list[str]:
        versus_direct, versus_rclone = self.ratio("direct"), self.ratio("rclone")
        return [
            str(self.number),
            self.workload,
            *(str(getattr(self, column) or "-") for column in COLUMNS),
            self.target.format_ratio(versus_direct) if versus_direct is not None else "-",
            f"{versus_rclone:.2f}" if versus_rclone is not None else "-",
            str(self.target),
            self.result,
        ]

    def all_notes(self) -> list[str]:
        failures = [
            f"{column} failed: {value.detail}"
            for column in COLUMNS
            if isinstance(value := getattr(self, column), Unmeasured) and value.detail
        ]
        return ([f"error: {self.error}"] if self.error else []) + failures + self.notes

    def to_dict(self) -> dict[str, Any]:
        def column(value: Value | None) -> dict[str, Any] | None:
            if isinstance(value, Quantity):
                return {"value": value.value, "text": str(value)}
            return {"value": None, "text": str(value) if value else None}

        return {
            "number": self.number,
            "workload": self.workload,
            **{name: column(getattr(self, name)) for name in COLUMNS},
            "ratio_direct": self.ratio("direct"),
            "ratio_rclone": self.ratio("rclone"),
            "target": str(self.target),
            "result": self.result,
            "notes": self.all_notes(),
        }


def best_time_row(
    number: int,
    workload: str,
    target: Target,
    results: dict[str, Samples | Unmeasured],
    direct: Samples,
    direct_label: str,
    how: str,
) -> Row:
    """A row of best-of-N seconds on each filesystem against the client's best-of-N (`direct_label` says doing what)."""
    return Row(
        number,
        workload,
        target,
        **values_of(results, lambda runs: Quantity(runs.best, format_seconds)),
        direct=Quantity(direct.best, format_seconds, direct_label),
        notes=[
            *describe(results, lambda runs: f"{how}: {runs.describe(format_seconds)}"),
            f"direct {direct_label}: {direct.describe(format_seconds)}",
        ],
    )


TABLE_HEADER = ["#", "workload", *COLUMNS, "/ direct", "/ rclone", "target", "result"]
RESULT_RULE = (
    "octuefs / direct must meet the target; octuefs must also be ahead of (or level with) rclone: "
    "/ rclone >= 1 for rates, <= 1 for times, bytes and requests. MISS names the comparison missed."
)


def text_table(rows: list[Row]) -> str:
    table = [TABLE_HEADER, *(row.cells() for row in rows)]
    widths = [max(len(line[column]) for line in table) for column in range(len(TABLE_HEADER))]

    def line(cells: list[str]) -> str:
        return "  ".join(cell.ljust(width) for cell, width in zip(cells, widths, strict=True)).rstrip()

    notes = [f"  {row.number}: {note}" for row in rows for note in row.all_notes()]
    return "\n".join(
        [line(TABLE_HEADER), "  ".join("-" * width for width in widths), *map(line, table[1:]), "", *notes]
    )


def markdown_table(rows: list[Row]) -> str:
    def line(cells: list[str]) -> str:
        return "| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |"

    notes = [f"- {row.number}: {note}" for row in rows for note in row.all_notes()]
    table = [
        line(TABLE_HEADER),
        "|" + "|".join("---" for _ in TABLE_HEADER) + "|",
        *(line(row.cells()) for row in rows),
    ]
    return "\n".join([*table, "", *notes])


@dataclass
class Report:
    title: str
    machine: dict[str, str]
    seconds: float
    rows: list[Row]

    def text(self) -> str:
        return "\n".join(
            [
                self.title,
                "machine: " + "; ".join(f"{key} {value}" for key, value in self.machine.items()),
                f"whole run {self.seconds:.0f} s. {RESULT_RULE}",
                "",
                text_table(self.rows),
            ]
        )

    def markdown(self) -> str:
        return "\n".join(
            [
                f"{self.title}, whole run {self.seconds:.0f} s:",
                "",
                *(f"- {key}: {value}" for key, value in self.machine.items()),
                "",
                RESULT_RULE,
                "",
                markdown_table(self.rows),
            ]
        )

    def write_json(self, path: Path) -> None:
        document = {"title": self.title, "machine": self.machine, "seconds": self.seconds}
        path.write_text(json.dumps({**document, "rows": [row.to_dict() for row in self.rows]}, indent=2))

    def update_document(self, path: Path) -> None:
        """Replace the results between the document's markers, so regenerating it is one command."""
        text = path.read_text()
        begin, end = text.index(RESULTS_BEGIN) + len(RESULTS_BEGIN), text.index(RESULTS_END)
        path.write_text(f"{text[:begin]}\n{self.markdown()}\n{text[end:]}")


RESULTS_BEGIN = "<!-- begin bench results: python -m bench --update-doc -->"
RESULTS_END = "<!-- end bench results -->"


def command_version(command: list[str]) -> str:
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=30)
    except OSError:
        return "not installed"
    return result.stdout.splitlines()[0].strip() if result.stdout else "unknown"


def fake_gcs_server_version() -> str:
    """The bundled binary has no version flag, but its Go build information names the module version."""
    with contextlib.suppress(ImportError, OSError):
        pattern = rb"mod\tgithub.com/fsouza/fake-gcs-server\tv([^\t\n]+)"
        if match := re.search(pattern, Path(binary_path()).read_bytes()):
            return f"{match.group(1).decode()} (memory backend, on 127.0.0.1, started by this run)"
    return "unknown"


def machine_description() -> dict[str, str]:
    """What the numbers depend on: CPUs, memory, kernel, versions of everything measured, other load."""
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
    changed = subprocess.run(
        ["git", "-C", str(REPOSITORY), "status", "--porcelain", "--", "octuefs"], capture_output=True, text=True
    ).stdout.strip()
    if revision and changed:
        revision += " with uncommitted changes in octuefs/"  # the mounts run the working tree
    return {
        "cpus": f"{os.cpu_count()} online, {len(os.sched_getaffinity(0))} usable ({cpu_model})",
        "memory": memory,
        "kernel": f"{platform.system()} {platform.release()}",
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "octuefs": revision or "unknown revision",
        "fake-gcs-server": fake_gcs_server_version(),
        "google-cloud-storage": importlib.metadata.version("google-cloud-storage"),
        "rclone": f"{command_version(['rclone', 'version'])}, mount {' '.join(RCLONE_MOUNT_OPTIONS)}",
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


def upload_many(bucket: storage.Bucket, objects: Iterable[tuple[str, bytes, dict[str, str] | None]]) -> int:
    """Upload small objects, each with its custom metadata, in parallel (one simple upload each); returns how many."""

    def upload(name: str, data: bytes, metadata: dict[str, str] | None) -> None:
        blob = bucket.blob(name)
        blob.metadata = metadata
        blob.upload_from_string(data)

    with ThreadPoolExecutor(16) as pool:
        futures = [pool.submit(upload, *each) for each in objects]
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


def peak_rss(pid: int | None) -> int:
    """The process's peak resident memory so far (VmHWM), in bytes; 0 when it cannot be read."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except (OSError, TypeError):
        return 0
    match = re.search(r"^VmHWM:\s+(\d+) kB", status, re.MULTILINE)
    return int(match.group(1)) * 1024 if match else 0


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

    Any FUSE filesystem fits (octuefs, rclone): what differs is how it is started (a function that
    fills in `daemon_pid`, and `process` when this run is the daemon's parent) and its unmount command.
    """

    mountpoint: Path
    cache_dir: Path
    unmount_command: list[str]
    daemon_pid: int | None = None
    process: subprocess.Popen[bytes] | None = None

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
        if self.process is not None:
            self.process.poll()  # reaps our own child, which would otherwise linger as a zombie


def start_octuefs(mount: Mount, bucket: str, endpoint: str) -> None:
    """`octuefs mount`, which returns once the mount is ready and prints the daemon's pid."""
    mount.mountpoint.mkdir(parents=True, exist_ok=True)
    command = [
        sys.executable, "-m", "octuefs.cli.main", "mount", bucket, str(mount.mountpoint),
        "--endpoint", endpoint, "--cache-dir", str(mount.cache_dir),
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


# rclone's recommended mode for applications that seek and write; no write-back delay, so that an upload
# starts at close as octuefs's does (rclone's default waits 5 s first).
RCLONE_MOUNT_OPTIONS = ("--vfs-cache-mode", "full", "--vfs-write-back", "0s")


def rclone_remote(endpoint: str, bucket: str) -> str:
    """rclone's GCS backend pointed at any server: the JSON API lives under /storage/v1/, and the emulator
    takes anonymous requests (uniform bucket-level access, so rclone sends no object ACLs)."""
    return f":gcs,endpoint='{endpoint}/storage/v1/',anonymous=true,bucket_policy_only=true:{bucket}"


def start_rclone(mount: Mount, bucket: str, endpoint: str, config: Path) -> None:
    """`rclone mount` as this run's child, ready once the mount table shows it; its output goes to a log file."""
    mount.mountpoint.mkdir(parents=True, exist_ok=True)
    log_path = mount.cache_dir.parent / "rclone.log"
    command = [
        "rclone", "mount", rclone_remote(endpoint, bucket), str(mount.mountpoint),
        "--config", str(config), "--cache-dir", str(mount.cache_dir), *RCLONE_MOUNT_OPTIONS,
    ]  # fmt: skip
    with open(log_path, "wb") as output:
        mount.process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=output, stderr=output)
    mount.daemon_pid = mount.process.pid
    try:
        deadline = time.monotonic() + MOUNT_TIMEOUT
        while not is_mounted(mount.mountpoint):
            if mount.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"rclone mount failed ({mount.process.returncode}): {log_path.read_text()[-2000:]}")
            time.sleep(0.02)
    except BaseException:
        mount.unmount()
        raise


def storage_client(endpoint: str, pool_size: int = 32) -> storage.Client:
    """The plain google-cloud-storage client, as a user would make it, with room for parallel requests."""
    client = storage.Client(
        project="bench", credentials=AnonymousCredentials(), client_options={"api_endpoint": endpoint}
    )
    adapter = requests.adapters.HTTPAdapter(pool_connections=4, pool_maxsize=pool_size)
    client._http.mount("http://", adapter)
    return client


class BenchEnvironment:
    """One run's server, client, temp directory, proxies, mounts and shared data, all cleaned up on exit."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._stack = contextlib.ExitStack()
        self._previous_handlers: dict[int, Any] = {}
        self._fixtures: dict[str, Any] = {}
        self.mounts: list[Mount] = []
        self.rclone_missing = shutil.which("rclone") is None

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
            self.rclone_config = self.root / "rclone.conf"  # empty: rclone reads and writes no user config
            self.rclone_config.touch()
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

    def fixture(self, key: str, make: Callable[[], T]) -> T:
        """Data that several rows share (a large object, a bucket of many objects), made by the first to ask."""
        if key not in self._fixtures:
            self._fixtures[key] = make()
        return self._fixtures[key]

    def proxy(self) -> CountingProxy:
        """A counting proxy in front of the server, for rows that count requests or bytes."""
        counting = CountingProxy(self.server.url)
        counting.start()
        self._stack.callback(counting.stop)
        return counting

    def mount(self, filesystem: str, bucket: str, endpoint: str | None = None) -> Mount:
        """A fresh mount of `filesystem` (octuefs or rclone) with an empty cache directory of its own."""
        place = self.directory(f"{filesystem}-mount")
        mountpoint = place / "mnt"
        if filesystem == "octuefs":
            unmount = [sys.executable, "-m", "octuefs.cli.main", "unmount", str(mountpoint)]
        else:
            unmount = ["fusermount3", "-u", str(mountpoint)]
        mount = Mount(mountpoint, place / "cache", unmount)
        self.mounts.append(mount)  # recorded first, so that cleanup on exit covers an interrupted mount too
        if filesystem == "octuefs":
            start_octuefs(mount, bucket, endpoint or self.server.url)
        else:
            start_rclone(mount, bucket, endpoint or self.server.url, self.rclone_config)
        return mount

    @contextlib.contextmanager
    def mounted(self, filesystem: str, bucket: str, endpoint: str | None = None) -> Iterator[Mount]:
        mount = self.mount(filesystem, bucket, endpoint)
        try:
            yield mount
        finally:
            mount.unmount()

    def on_each_filesystem(
        self, measure: Callable[[str], T], filesystems: tuple[str, ...] = FILESYSTEMS
    ) -> dict[str, T | Unmeasured]:
        """`measure(filesystem)` for each filesystem; one failing (or rclone missing) leaves the others' numbers."""
        results: dict[str, T | Unmeasured] = {}
        for filesystem in filesystems:
            if filesystem == "rclone" and self.rclone_missing:
                results[filesystem] = Unmeasured("not measured (no rclone)")
                continue
            try:
                results[filesystem] = measure(filesystem)
            except Exception as error:
                traceback.print_exc()
                results[filesystem] = Unmeasured("error", f"{type(error).__name__}: {error}")
        return results


Workload = Callable[[BenchEnvironment, Any], list[Row]]


def run_benchmark(
    doc: str | None,
    workloads: list[tuple[list[int], str, Workload]],
    targets: dict[int, Target],
    full: Any,
    quick: Any,
    argv: list[str] | None = None,
) -> int:
    """Run every workload in one environment and report; 1 only if an octuefs number could not be measured."""
    parser = argparse.ArgumentParser(description=(doc or "octuefs benchmark").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    parser.add_argument("--json", type=Path, help="also write the rows as JSON to this file")
    parser.add_argument("--markdown", action="store_true", help="print the report as markdown")
    parser.add_argument(
        "--update-doc", nargs="?", const=REPOSITORY / "docs" / "performance.md", type=Path, metavar="FILE",
        help="also replace the results section of FILE (default docs/performance.md) with this run's",
    )  # fmt: skip
    parser.add_argument(
        "--rows", type=lambda text: {int(number) for number in text.split(",")}, metavar="N,N",
        help="run only the workloads that measure these rows (to repeat a row; --update-doc wants them all)",
    )  # fmt: skip
    arguments = parser.parse_args(argv)
    sizes = quick if arguments.quick else full
    if arguments.rows and arguments.update_doc:
        parser.error("--update-doc replaces every row's results: run all rows (no --rows)")
    if arguments.rows:
        workloads = [workload for workload in workloads if arguments.rows & set(workload[0])]
    title = f"octuefs benchmark ({'quick' if arguments.quick else 'full'} sizes, {time.strftime('%Y-%m-%d')})"
    machine = machine_description()
    started = time.monotonic()
    rows: list[Row] = []
    try:
        with BenchEnvironment("bench") as env:
            log(f"server at {env.server.url}; temp directory {env.root}")
            if env.rclone_missing:
                log("rclone is not installed (apt-get install rclone): its column is not measured")
            for numbers, workload_name, workload in workloads:
                log(f"rows {numbers}: {workload_name}")
                try:
                    rows.extend(workload(env, sizes))
                except Exception as error:
                    traceback.print_exc()
                    message = f"{type(error).__name__}: {error}"
                    rows.extend(Row(number, workload_name, targets[number], error=message) for number in numbers)
    except Interrupted as interruption:
        log(f"interrupted by {interruption}; cleaned up")
        return 130
    report = Report(title, machine, time.monotonic() - started, rows)
    print(report.markdown() if arguments.markdown else report.text())
    if arguments.json:
        report.write_json(arguments.json)
    if arguments.update_doc:
        report.update_document(arguments.update_doc)
    return 1 if any(row.result == "ERROR" for row in rows) else 0
