"""Read workloads (rows 1-6): sequential, random, first byte and an HDF5 slice, on octuefs, rclone and the client.

Cold rows use a fresh mount with an empty cache for every sample, so nothing read earlier helps.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import google_crc32c
import h5py
import numpy
from google.cloud import storage

from bench.harness import (
    BenchEnvironment,
    Quantity,
    Row,
    best_time_row,
    describe,
    format_bytes,
    format_rate,
    format_seconds,
    log,
    peak_rss,
    read_file,
    repeat,
    timed,
    values_of,
    wait_until_quiet,
    write_random_file,
)
from bench.plan import TARGETS, Sizes

FIRST_BYTES = 4096
RANDOM_READ = 4096
# Run as `python -c READ_SLICE FILE OUT ROW0 ROW1 COL0 COL1`: open, read one slice, print the seconds taken.
READ_SLICE = """
import sys, time, h5py, numpy
path, out, r0, r1, c0, c1 = sys.argv[1], sys.argv[2], *map(int, sys.argv[3:])
start = time.perf_counter()
with h5py.File(path, "r") as file:
    data = file["data"][r0:r1, c0:c1]
print(time.perf_counter() - start)
numpy.save(out, data)
"""


def crc32c_of(path: Path) -> bytes:
    checksum = google_crc32c.Checksum()
    with open(path, "rb") as file:
        while block := file.read(8 * 1024**2):
            checksum.update(block)
    return checksum.digest()


def check_size(count: int, expected: int) -> None:
    if count != expected:
        raise RuntimeError(f"read {count} bytes, expected {expected}")


def timed_read(path: Path, size: int) -> float:
    return timed(lambda: check_size(read_file(path), size))


def rates(size: int, seconds: list[float]) -> list[float]:
    return [size / each for each in seconds]


@dataclass(frozen=True)
class LargeObject:
    """A large random object in the bucket, with its local source kept for comparisons and the write row."""

    bucket: storage.Bucket
    name: str
    source: Path
    crc32c: bytes

    @property
    def blob(self) -> storage.Blob:
        return self.bucket.blob(self.name)


def large_object(env: BenchEnvironment, sizes: Sizes) -> LargeObject:
    def make() -> LargeObject:
        source = write_random_file(env.directory("large") / "object.bin", sizes.large)
        bucket = env.bucket("large")
        bucket.blob("object.bin").upload_from_filename(str(source))
        log(f"uploaded a {format_bytes(sizes.large)} object")
        return LargeObject(bucket, "object.bin", source, crc32c_of(source))

    return env.fixture("large object", make)


def sequential_reads(env: BenchEnvironment, sizes: Sizes) -> list[Row]:
    """Rows 1 and 2: the object read cold on fresh mounts, then warm again on the last of them."""
    large, size = large_object(env, sizes), sizes.large
    download = env.directory("download") / large.name
    direct = repeat(sizes.repeats, lambda: timed(lambda: large.blob.download_to_filename(download)))
    download.unlink()
    read_file(large.source)  # the local baseline reads from the page cache, as a warm mount read may
    local = repeat(sizes.repeats, lambda: timed_read(large.source, size))

    def measure(filesystem: str) -> tuple[list[float], list[float], int]:
        cold: list[float] = []
        peak = 0
        for attempt in range(sizes.repeats):
            with env.mounted(filesystem, large.bucket.name) as mount:
                path = mount.mountpoint / large.name
                cold.append(timed_read(path, size))
                log(f"{filesystem} cold read: {format_rate(size / cold[-1])}")
                if attempt == sizes.repeats - 1:
                    warm = [timed_read(path, size) for _ in range(sizes.repeats)]
                    if crc32c_of(path) != large.crc32c:
                        raise RuntimeError(f"the bytes read through {filesystem} differ from the object's")
                peak = max(peak, peak_rss(mount.daemon_pid))
        return cold, warm, peak

    results = env.on_each_filesystem(measure)

    def rate_row(number: int, workload: str, which: int, baseline: list[float], label: str, how: str) -> Row:
        """Best rates: cold (`which` 0) or warm (1) through each mount, against the baseline's."""

        def samples(seconds: list[float]) -> str:
            return ", ".join(map(format_rate, rates(size, seconds)))

        return Row(
            number,
            f"{workload}, {format_bytes(size)}",
            TARGETS[number],
            **values_of(results, lambda result: Quantity(max(rates(size, result[which])), format_rate)),
            direct=Quantity(max(rates(size, baseline)), format_rate, label),
            notes=[
                *describe(results, lambda result: f"{how}: {samples(result[which])}"),
                f"direct: {samples(baseline)}",
            ],
        )

    fresh = "fresh mount and cache each"
    cold_row = rate_row(1, "cold sequential read", 0, direct.values, "download_to_filename", fresh)
    cold_row.notes += describe(results, lambda result: f"daemon's peak RSS over rows 1-2: {format_bytes(result[2])}")
    return [cold_row, rate_row(2, "warm re-read", 1, local.values, "local file", "same mount after a full read")]


def random_reads(env: BenchEnvironment, sizes: Sizes) -> list[Row]:
    """Row 3: 4 KiB reads at random aligned offsets of the large object, cold, against one ranged GET each."""
    large = large_object(env, sizes)
    offsets = random.Random(3).sample(range(0, sizes.large - RANDOM_READ, RANDOM_READ), sizes.random_reads)
    with open(large.source, "rb") as file:
        expected = [os.pread(file.fileno(), RANDOM_READ, offset) for offset in offsets]

    def direct_reads() -> None:
        blob = large.blob
        for offset, data in zip(offsets, expected, strict=True):
            if blob.download_as_bytes(start=offset, end=offset + RANDOM_READ - 1) != data:
                raise RuntimeError(f"ranged GET at {offset} returned other bytes")

    direct = timed(direct_reads)

    def measure(filesystem: str) -> float:
        with env.mounted(filesystem, large.bucket.name) as mount:
            descriptor = os.open(mount.mountpoint / large.name, os.O_RDONLY)
            try:
                start = time.perf_counter()
                found = [os.pread(descriptor, RANDOM_READ, offset) for offset in offsets]
                elapsed = time.perf_counter() - start
            finally:
                os.close(descriptor)
        if found != expected:
            raise RuntimeError(f"random reads through {filesystem} returned other bytes")
        return elapsed

    results = env.on_each_filesystem(measure)
    count = len(offsets)

    def per_read(seconds: float) -> Quantity:
        return Quantity(seconds / count, format_seconds, "per read")

    return [
        Row(
            3,
            f"{count} random 4 KiB reads of {format_bytes(sizes.large)}, cold",
            TARGETS[3],
            **values_of(results, per_read),
            direct=Quantity(direct / count, format_seconds, "ranged GET"),
            notes=[
                *describe(results, lambda seconds: f"{count / seconds:.0f} reads/s (pread on a fresh mount)"),
                f"direct: {count / direct:.0f} reads/s (download_as_bytes(start, end), one after another)",
            ],
        )
    ]


def first_byte(env: BenchEnvironment, sizes: Sizes) -> list[Row]:
    """Row 4: the first 4 KiB of a large object on a fresh mount, against downloading all of it."""
    size = sizes.first_byte
    source = write_random_file(env.directory("first-byte") / "large.bin", size)
    with open(source, "rb") as file:
        head = file.read(FIRST_BYTES)
    bucket = env.bucket("first-byte")
    bucket.blob("large.bin").upload_from_filename(str(source))
    source.unlink()
    log(f"uploaded {format_bytes(size)}; direct downloads")

    download = env.directory("download") / "large.bin"
    direct = repeat(sizes.repeats, lambda: timed(lambda: bucket.blob("large.bin").download_to_filename(download)))
    download.unlink()

    def first_read(filesystem: str) -> float:
        with env.mounted(filesystem, bucket.name) as mount:
            start = time.perf_counter()
            descriptor = os.open(mount.mountpoint / "large.bin", os.O_RDONLY)
            data = os.read(descriptor, FIRST_BYTES)
            elapsed = time.perf_counter() - start
            os.close(descriptor)
        if data != head:
            raise RuntimeError(f"the first bytes read through {filesystem} differ from the object's")
        return elapsed

    results = env.on_each_filesystem(lambda filesystem: repeat(sizes.repeats, lambda: first_read(filesystem)))
    bucket.delete(force=True)  # frees the server's memory before the next rows
    workload = f"time to first 4 KiB of {format_bytes(size)}"
    how = "open + read, fresh mount each"
    return [best_time_row(4, workload, TARGETS[4], results, direct, "full download", how)]


@dataclass(frozen=True)
class HDF5Object:
    bucket: storage.Bucket
    name: str
    size: int
    needed: int  # stored bytes of the HDF5 chunks the slice touches: what an ideal ranged reader fetches
    expected: numpy.ndarray


def hdf5_object(env: BenchEnvironment, sizes: Sizes) -> HDF5Object:
    def make() -> HDF5Object:
        rows, columns = sizes.hdf5_slice
        values = numpy.random.default_rng(4).random(sizes.hdf5_shape)
        source = env.directory("hdf5") / "chunked.h5"
        with h5py.File(source, "w") as file:
            dataset = file.create_dataset("data", data=values, chunks=sizes.hdf5_chunks)
            needed = slice_chunk_bytes(dataset, rows, columns)
        bucket = env.bucket("hdf5")
        bucket.blob("chunked.h5").upload_from_filename(str(source))
        size = source.stat().st_size
        source.unlink()
        log(f"uploaded a {format_bytes(size)} HDF5 file")
        return HDF5Object(bucket, "chunked.h5", size, needed, values[rows, columns])

    return env.fixture("hdf5", make)


def slice_chunk_bytes(dataset: h5py.Dataset, rows: slice, columns: slice) -> int:
    chunk_rows, chunk_columns = dataset.chunks
    total = 0
    for row in range(rows.start // chunk_rows * chunk_rows, rows.stop, chunk_rows):
        for column in range(columns.start // chunk_columns * chunk_columns, columns.stop, chunk_columns):
            total += dataset.id.get_chunk_info_by_coord((row, column)).size
    return total


def read_slice(env: BenchEnvironment, path: Path, sizes: Sizes, expected: numpy.ndarray) -> float:
    """Seconds h5py takes to open `path` and read the slice, in a child process.

    A child, because h5py holds the GIL inside HDF5's syscalls: a read from this process would stop
    this process's counting proxy from answering the daemon (a deadlock until a timeout).
    """
    rows, columns = sizes.hdf5_slice
    result_file = env.directory("hdf5-slice") / "slice.npy"
    command = [sys.executable, "-c", READ_SLICE, str(path), str(result_file)]
    command += [str(bound) for bound in (rows.start, rows.stop, columns.start, columns.stop)]
    elapsed = float(subprocess.run(command, capture_output=True, text=True, check=True, timeout=120).stdout)
    if not numpy.array_equal(numpy.load(result_file), expected):
        raise RuntimeError(f"the slice read from {path} differs from the data written")
    return elapsed


def allocated_bytes(directory: Path, name: str) -> int:
    """Bytes rclone has stored for `name` in its sparse VFS cache files: what it downloaded."""
    return sum(path.stat().st_blocks * 512 for path in directory.rglob(name) if path.is_file())


def hdf5_bytes(env: BenchEnvironment, sizes: Sizes) -> list[Row]:
    """Row 5: bytes one h5py slice pulls from the server, against the file's size (what a download costs)."""
    hdf5 = hdf5_object(env, sizes)
    proxy = env.proxy()

    def octuefs_fetch() -> int:
        """On the wire, through the counting proxy: octuefs reads every response it asks for in full."""
        with env.mounted("octuefs", hdf5.bucket.name, endpoint=proxy.url) as mount:
            proxy.reset()
            read_slice(env, mount.mountpoint / hdf5.name, sizes, hdf5.expected)
            wait_until_quiet(lambda: len(proxy.requests))
            return sum(request.response_bytes for request in proxy.requests if request.kind == "media")

    def rclone_fetch() -> int:
        """From rclone's cache: the proxy would count whole ranged responses that rclone stops reading early."""
        with env.mounted("rclone", hdf5.bucket.name) as mount:
            read_slice(env, mount.mountpoint / hdf5.name, sizes, hdf5.expected)
            wait_until_quiet(lambda: allocated_bytes(mount.cache_dir, hdf5.name))
            return allocated_bytes(mount.cache_dir, hdf5.name)

    # Readahead depends on how the kernel's reads interleave, so the bytes vary: the worst run is reported.
    fetch = {"octuefs": octuefs_fetch, "rclone": rclone_fetch}
    results = env.on_each_filesystem(lambda filesystem: [fetch[filesystem]() for _ in range(sizes.repeats)])
    rows, columns = sizes.hdf5_slice
    shape = f"{sizes.hdf5_shape[0]}x{sizes.hdf5_shape[1]}"
    return [
        Row(
            5,
            f"h5py slice [{rows.start}:{rows.stop}, {columns.start}:{columns.stop}], bytes fetched",
            TARGETS[5],
            **values_of(results, lambda runs: Quantity(max(runs), format_bytes)),
            direct=Quantity(hdf5.size, format_bytes, "whole file"),
            notes=[
                f"float64 {shape} chunked {sizes.hdf5_chunks}, uncompressed; the HDF5 chunks the slice touches "
                f"hold {format_bytes(hdf5.needed)}",
                *describe(results, lambda runs: "worst of fresh mounts: " + ", ".join(map(format_bytes, runs))),
                "octuefs counted on the wire (media responses through a counting proxy); rclone by the blocks its "
                "sparse cache file holds (the proxy buffers whole ranged responses, overcounting a streaming reader)",
            ],
        )
    ]


def hdf5_time(env: BenchEnvironment, sizes: Sizes) -> list[Row]:
    """Row 6: seconds to open the file and read one slice, against downloading the file and reading it locally."""
    hdf5 = hdf5_object(env, sizes)
    download = env.directory("hdf5-download") / hdf5.name

    def direct_read() -> float:
        elapsed = timed(lambda: hdf5.bucket.blob(hdf5.name).download_to_filename(download))
        return elapsed + read_slice(env, download, sizes, hdf5.expected)

    direct = repeat(sizes.repeats, direct_read)
    download.unlink()

    def measure(filesystem: str) -> float:
        with env.mounted(filesystem, hdf5.bucket.name) as mount:
            return read_slice(env, mount.mountpoint / hdf5.name, sizes, hdf5.expected)

    results = env.on_each_filesystem(lambda filesystem: repeat(sizes.repeats, lambda: measure(filesystem)))
    workload = "h5py slice, time (open + read)"
    return [best_time_row(6, workload, TARGETS[6], results, direct, "download + read", "fresh mount each")]
