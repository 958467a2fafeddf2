"""Many programs on one mount at once, for a minute: every byte and tag right, memory and descriptors bounded.

8 reader, 4 writer and 2 xattr-setter processes (tests/support/stress_workers.py) run for
OCTUEFS_STRESS_SECONDS (default 60) against one daemon, while this process samples the daemon's
resident memory every second. Readers and writers each have their own files; the setters tag both
kinds, so metadata PATCHes race with reads and with uploads of the same file. Workers are processes
rather than threads here: the counting proxy the daemon talks to lives in this process, and a busy
thread of ours would slow the very requests it waits on. The short metadata TTL makes attributes
expire and be fetched again throughout the run.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from octuefs import Datafile
from octuefs.cache import DEFAULT_CHUNK_SIZE, DEFAULT_MEMORY_BYTES
from octuefs.fs.config import MountConfig
from octuefs.fs.handles import SPAN_CHUNKS
from octuefs.fs.xattrs import STATS
from octuefs.uploads.uploader import JOIN_MIN_BYTES
from tests.mount.conftest import alive
from tests.support import stress_workers
from tests.support.stress_workers import object_content

SECONDS = float(os.environ.get("OCTUEFS_STRESS_SECONDS", "60"))
# Workers finish the operation in hand after the deadline: a whole read or an upload of a few MiB.
FINISH_GRACE = 90.0
pytestmark = pytest.mark.timeout(SECONDS + FINISH_GRACE + 180)

MiB = 1024 * 1024
READERS, WRITERS, SETTERS = 8, 4, 2
# More than the daemon's 64 MiB memory layer together, so chunks are evicted and come back from disk;
# odd sizes, so the last chunk of each is partial.
READ_FILES = {f"read/object-{index}.bin": (6 + index) * MiB + 1000 * index + 17 for index in range(8)}
WRITE_FILES = [f"write/file-{index}.bin" for index in range(WRITERS)]
# Rewrite sizes and the size past which a writer rewrites: the last writer's file stays large enough for
# its appends to be joined on in the cloud instead of uploaded whole.
WRITE_SIZES = [(0, 3 * MiB, 4 * MiB)] * (WRITERS - 1) + [(JOIN_MIN_BYTES, JOIN_MIN_BYTES + 2 * MiB, 14 * MiB)]
WARM_TAGGED = "read/object-0.bin"
# What the daemon may hold beyond what it held after the warm-up (the interpreter and its libraries,
# ~50 MiB): the memory layer of the chunk cache, and bytes in flight: each storage thread may hold a
# readahead span twice over (the response and its chunk slices) until it is cached. That is 368 MiB
# in all with the defaults; a leak of the chunks read (GiBs in a minute) or of staged files passes it.
STORAGE_THREADS = MountConfig.storage_threads
RSS_ALLOWANCE = DEFAULT_MEMORY_BYTES + STORAGE_THREADS * 2 * SPAN_CHUNKS * DEFAULT_CHUNK_SIZE
# The daemon's connection pool keeps this many idle connections at most (see octuefs.fs.daemon.serve).
CONNECTION_POOL = STORAGE_THREADS + 8
# Descriptors other than sockets may differ by this much once everything is closed.
FD_SLACK = 2


@dataclass
class Worker:
    role: str
    name: str
    process: subprocess.Popen
    output: Path

    def result(self) -> dict[str, Any]:
        text = self.output.read_text(errors="replace")
        lines = [line for line in text.splitlines() if line.startswith("{")]
        assert self.process.returncode == 0 and lines, f"{self.name} exited {self.process.returncode}:\n{text[-4000:]}"
        return json.loads(lines[-1])


def status_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise AssertionError(f"no {field} in /proc/{pid}/status")


def descriptors(pid: int) -> dict[str, int]:
    """The daemon's open descriptors, sockets (the connection pool) counted apart from everything else."""
    counts = {"sockets": 0, "others": 0}
    for entry in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(entry)
        except FileNotFoundError:
            continue
        counts["sockets" if target.startswith("socket:") else "others"] += 1
    return counts


def start(role: str, config: dict[str, Any], tmp_path: Path, number: int) -> Worker:
    name = f"{role}-{number}"
    output = tmp_path / f"{name}.out"
    with output.open("w") as sink:
        process = subprocess.Popen(
            [sys.executable, stress_workers.__file__, role, json.dumps(config)], stdout=sink, stderr=subprocess.STDOUT
        )
    return Worker(role, name, process, output)


def warm_up(mounted, bucket) -> None:
    """Everything the workload will do, once: what the daemon opens lazily is then open for the baseline."""
    names = mounted.call(os.listdir, mounted / "read")
    assert sorted(names) == sorted(name.split("/")[1] for name in READ_FILES)
    with mounted.call(open, mounted / WARM_TAGGED, "rb") as file:
        assert mounted.call(file.read, 4096) == object_content(WARM_TAGGED, 4096)
    mounted.call(os.makedirs, mounted / "write", exist_ok=True)
    mounted.call((mounted / "write/warm-up.bin").write_bytes, b"warm")
    mounted.call(os.truncate, mounted / "write/warm-up.bin", 2)
    mounted.call(os.setxattr, mounted / WARM_TAGGED, "user.octue.tag.warm", b"1")
    assert bucket.blob("write/warm-up.bin").download_as_bytes() == b"wa"


def run_workload(mounted, tmp_path: Path) -> tuple[list[Worker], int]:
    """Start every worker, sample the daemon's RSS each second until all have exited; the peak in bytes."""
    deadline = time.time() + SECONDS
    common = {"mount": str(mounted.path), "deadline": deadline}
    workers = [
        start("reader", {**common, "seed": index, "files": READ_FILES}, tmp_path, index) for index in range(READERS)
    ]
    workers += [
        start(
            "writer",
            {**common, "seed": 100 + index, "name": name, "rewrite_sizes": sizes[:2], "max_size": sizes[2]},
            tmp_path,
            index,
        )
        for index, (name, sizes) in enumerate(zip(WRITE_FILES, WRITE_SIZES, strict=True))
    ]
    workers += [
        start(
            "xattr_setter",
            {**common, "seed": 200 + index, "index": index, "files": [*READ_FILES, *WRITE_FILES]},
            tmp_path,
            index,
        )
        for index in range(SETTERS)
    ]
    peak = 0
    try:
        while any(worker.process.poll() is None for worker in workers):
            assert alive(mounted.pid), f"the daemon died under load\n--- daemon log ---\n{mounted.log[-4000:]}"
            assert time.time() < deadline + FINISH_GRACE, f"workers still running {FINISH_GRACE} s after the deadline"
            peak = max(peak, status_kib(mounted.pid, "VmRSS") * 1024)
            time.sleep(1)
    finally:
        for worker in workers:
            if worker.process.poll() is None:
                worker.process.send_signal(signal.SIGKILL)
                worker.process.wait(10)
    return workers, max(peak, status_kib(mounted.pid, "VmHWM") * 1024)


def settled_descriptors(pid: int, baseline: dict[str, int]) -> dict[str, int]:
    """The kernel sends RELEASE after close() has returned, so give the last ones a moment to arrive."""
    deadline = time.monotonic() + 10
    while True:
        counts = descriptors(pid)
        if counts["others"] <= baseline["others"] + FD_SLACK or time.monotonic() > deadline:
            return counts
        time.sleep(0.2)


def test_readers_writers_and_xattr_setters_together(mount, bucket, tmp_path, record_property):
    generations = {}
    for name, size in READ_FILES.items():
        blob = bucket.blob(name)
        blob.upload_from_string(object_content(name, size))
        generations[name] = blob.generation
    for name in WRITE_FILES:
        bucket.blob(name).upload_from_string(b"before\n")
    mounted = mount("", metadata_ttl=2)
    warm_up(mounted, bucket)
    baseline = descriptors(mounted.pid)
    rss_before = status_kib(mounted.pid, "VmRSS") * 1024

    workers, peak_rss = run_workload(mounted, tmp_path)

    results = {worker.name: worker.result() for worker in workers}
    after = settled_descriptors(mounted.pid, baseline)
    statistics = json.loads(mounted.call(os.getxattr, mounted.path, STATS))
    operations = {name: result["operations"] for name, result in results.items()}
    rss_bound = rss_before + RSS_ALLOWANCE
    summary = (
        f"{SECONDS:.0f} s: {sum(operations.values())} operations {operations}; daemon RSS {rss_before / MiB:.0f} "
        f"MiB after warm-up, peak {peak_rss / MiB:.0f} MiB (bound {rss_bound / MiB:.0f}); descriptors {baseline} "
        f"after warm-up, {after} at the end; requests {statistics['requests']}"
    )
    print(summary)
    record_property("daemon_peak_rss_mib", round(peak_rss / MiB, 1))
    record_property("daemon_descriptors", f"{baseline} -> {after}")
    record_property("operations", json.dumps(operations))

    errors = [f"{name}: {message}" for name, result in results.items() for message in result["errors"]]
    assert sum(result["error_count"] for result in results.values()) == 0, "\n".join([summary, *errors])
    # A tenth of what a loaded two-core machine does, so only a stalled or serialised mount fails this.
    for name, count in operations.items():
        assert count >= max(3, SECONDS / 2), f"{name} did too little\n{summary}"
    assert statistics["errors"] == {}, statistics
    assert statistics["open_files"] == 0 and statistics["pending_uploads"] == 0, statistics
    assert peak_rss < rss_bound, summary
    assert after["others"] <= baseline["others"] + FD_SLACK, summary
    assert after["sockets"] <= CONNECTION_POOL + FD_SLACK, summary
    assert " ERROR " not in mounted.log, mounted.log[-4000:]

    for index, name in enumerate(WRITE_FILES):
        content, written = bucket.blob(name).download_as_bytes(), results[f"writer-{index}"]
        assert (len(content), hashlib.sha256(content).hexdigest()) == (written["size"], written["sha256"]), name
    expected_tags: dict[str, dict[str, Any]] = {name: {} for name in [*READ_FILES, *WRITE_FILES]}
    expected_tags[WARM_TAGGED]["warm"] = 1
    for index in range(SETTERS):
        for name, tags in results[f"xattr_setter-{index}"]["tags"].items():
            expected_tags[name].update(tags)
    for name, tags in expected_tags.items():
        assert dict(Datafile(f"gs://{bucket.name}/{name}").tags) == tags, name
    for name, generation in generations.items():
        assert bucket.get_blob(name).generation == generation, f"{name} was re-uploaded"
