"""Write workloads (rows 11-12): a large file and many small ones, on octuefs, rclone and the client.

A write counts as done when the object is in the bucket. octuefs uploads before close returns;
rclone uploads after it, so its times run until the bucket shows every object.
"""

from __future__ import annotations

import os
import shutil

from google.cloud import storage

from bench.harness import (
    BenchEnvironment,
    MiB,
    Quantity,
    Row,
    describe,
    format_rate,
    format_seconds,
    repeat,
    timed,
    values_of,
    wait_for,
)
from bench.plan import TARGETS, Sizes
from bench.reads import large_object


def has_object(bucket: storage.Bucket, name: str, size: int) -> bool:
    blob = bucket.get_blob(name)
    return blob is not None and blob.size == size


def large_write(env: BenchEnvironment, sizes: Sizes) -> list[Row]:
    """Row 11: from starting a copy onto the mount to the object being in the bucket, against a direct upload."""
    source, size = large_object(env, sizes).source, sizes.large
    bucket = env.bucket("write")
    names = (f"direct-{attempt}.bin" for attempt in range(sizes.repeats))
    direct = repeat(sizes.repeats, lambda: timed(lambda: bucket.blob(next(names)).upload_from_filename(str(source))))

    def measure(filesystem: str) -> list[float]:
        seconds = []
        with env.mounted(filesystem, bucket.name) as mount:
            for attempt in range(sizes.repeats):
                name = f"{filesystem}-{attempt}.bin"

                def write(name: str = name) -> None:
                    shutil.copyfile(source, mount.mountpoint / name)
                    wait_for(lambda: has_object(bucket, name, size), f"{name} in the bucket")

                seconds.append(timed(write))
        return seconds

    results = env.on_each_filesystem(measure)
    bucket.delete(force=True)  # frees the server's memory
    return [
        Row(
            11,
            f"sequential write, {size // MiB} MiB",
            TARGETS[11],
            **values_of(results, lambda seconds: Quantity(min(seconds), format_seconds)),
            direct=Quantity(direct.best, format_seconds, "upload_from_filename"),
            notes=[
                *describe(
                    results,
                    lambda seconds: (
                        "cp until the object is in the bucket: "
                        + ", ".join(f"{format_seconds(each)} ({format_rate(size / each)})" for each in seconds)
                    ),
                ),
                "direct: "
                + ", ".join(f"{format_seconds(each)} ({format_rate(size / each)})" for each in direct.values),
            ],
        )
    ]


def small_files(env: BenchEnvironment, sizes: Sizes) -> list[Row]:
    """Row 12: creating N small files one after another, until all of them are objects in the bucket."""
    payload = os.urandom(sizes.small_size)
    count = sizes.small_files
    bucket = env.bucket("small")

    def direct_uploads() -> None:
        for index in range(count):
            bucket.blob(f"direct/f{index:05d}.dat").upload_from_string(payload)

    direct = timed(direct_uploads)

    def uploaded(prefix: str) -> bool:
        return sum(1 for blob in bucket.list_blobs(prefix=prefix) if blob.name.endswith(".dat")) == count

    def measure(filesystem: str) -> float:
        with env.mounted(filesystem, bucket.name) as mount:
            target = mount.mountpoint / filesystem
            target.mkdir()

            def create_all() -> None:
                for index in range(count):
                    (target / f"f{index:05d}.dat").write_bytes(payload)
                wait_for(lambda: uploaded(f"{filesystem}/"), f"{count} objects in the bucket", interval=0.1)

            return timed(create_all)

    results = env.on_each_filesystem(measure)
    return [
        Row(
            12,
            f"create {count:,} files of {sizes.small_size} B",
            TARGETS[12],
            **values_of(results, lambda seconds: Quantity(seconds, format_seconds)),
            direct=Quantity(direct, format_seconds, "one upload each"),
            notes=[
                *describe(results, lambda seconds: f"{count / seconds:.0f} files/s until all are in the bucket"),
                f"direct: {count / direct:.0f} files/s (upload_from_string, one after another)",
            ],
        )
    ]
