"""Write-path benchmark: octuefs through a real FUSE mount against the direct client, in one run.

    python bench/write_bench.py [--quick] [--json FILE]

Rows (issue 5), each measured / baseline from this same run on the bundled server:
6. writing a large file through the mount (cp, then close uploads it) / `blob.upload_from_filename` (<= 1.3)
7. creating many small files through the mount / uploading them one by one with the client (<= 1.5)

It reports; it is not a test: it exits 0 when a target is missed, non-zero only when a row
could not be measured at all.
"""

from __future__ import annotations

import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `python bench/write_bench.py` finds `bench`

from bench.harness import (
    BenchEnvironment,
    MiB,
    Quantity,
    Row,
    Target,
    format_rate,
    format_seconds,
    repeat,
    run_benchmark,
    timed,
    write_random_file,
)


@dataclass(frozen=True)
class Sizes:
    large: int
    small_files: int
    small_size: int
    repeats: int


FULL = Sizes(large=256 * MiB, small_files=1000, small_size=1024, repeats=3)
QUICK = Sizes(large=32 * MiB, small_files=100, small_size=1024, repeats=1)
TARGETS = {6: Target(1.3, higher_is_better=False), 7: Target(1.5, higher_is_better=False)}


def large_write(env: BenchEnvironment, sizes: Sizes) -> list[Row]:
    """Row 6: the time from starting `cp` to the object being in the bucket, against a direct upload."""
    source = write_random_file(env.directory("source") / "large.bin", sizes.large)
    bucket = env.bucket("write")
    with env.mounted(bucket.name) as mount:
        counter = iter(range(sizes.repeats))
        through_mount = repeat(
            sizes.repeats, lambda: timed(lambda: shutil.copyfile(source, mount.mountpoint / f"m{next(counter)}.bin"))
        )
    direct_counter = iter(range(sizes.repeats))
    direct = repeat(
        sizes.repeats,
        lambda: timed(lambda: bucket.blob(f"d{next(direct_counter)}.bin").upload_from_filename(str(source))),
    )
    uploaded = bucket.get_blob("m0.bin")
    assert uploaded is not None and uploaded.size == sizes.large, "the mount's copy did not reach the bucket"
    return [
        Row(
            6,
            f"write {sizes.large // MiB} MiB through the mount / upload_from_filename",
            Quantity(through_mount.best, format_seconds),
            Quantity(direct.best, format_seconds),
            TARGETS[6],
            notes=[
                "mount (cp; close returns after the upload): " + through_mount.describe(format_seconds),
                "direct: " + direct.describe(format_seconds),
                f"mount throughput {format_rate(sizes.large / through_mount.best)}, "
                f"direct {format_rate(sizes.large / direct.best)}",
            ],
        )
    ]


def small_files(env: BenchEnvironment, sizes: Sizes) -> list[Row]:
    """Row 7: creating N small files one after another, each closed (so uploaded) before the next."""
    payload = os.urandom(sizes.small_size)
    bucket = env.bucket("small")
    with env.mounted(bucket.name) as mount:
        target = mount.mountpoint / "many"
        target.mkdir()

        def create_all() -> None:
            for index in range(sizes.small_files):
                (target / f"f{index:05d}.dat").write_bytes(payload)

        through_mount = timed(create_all)
    direct = timed(
        lambda: [
            bucket.blob(f"direct/f{index:05d}.dat").upload_from_string(payload) for index in range(sizes.small_files)
        ]
    )
    rate_direct = sizes.small_files / direct
    created = sum(1 for blob in bucket.list_blobs(prefix="many/") if blob.name != "many/")
    assert created == sizes.small_files, f"{created} of {sizes.small_files} files reached the bucket"
    return [
        Row(
            7,
            f"create {sizes.small_files} files of {sizes.small_size} B through the mount / direct uploads",
            Quantity(through_mount, format_seconds),
            Quantity(direct, format_seconds),
            TARGETS[7],
            notes=[f"{sizes.small_files / through_mount:.0f} files/s through the mount, {rate_direct:.0f} direct"],
        )
    ]


WORKLOADS = [([6], "large write", large_write), ([7], "small files", small_files)]


def main(argv: list[str] | None = None) -> int:
    return run_benchmark("write", __doc__, WORKLOADS, TARGETS, FULL, QUICK, argv)


if __name__ == "__main__":
    sys.exit(main())
