"""Workloads on a directory of many objects (rows 7-10): `ls -l`, stat by name, getfattr and setfattr.

Every object carries Octue metadata (tags, labels, timestamp, id), as a datafile written by Octue
does, so the xattr rows read and change real metadata.
"""

from __future__ import annotations

import os
import subprocess
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from google.cloud import storage

from bench.harness import (
    BenchEnvironment,
    Quantity,
    Row,
    Unmeasured,
    best_time_row,
    describe,
    format_requests,
    format_seconds,
    log,
    repeat,
    storage_client,
    timed,
    upload_many,
    values_of,
    wait_until_quiet,
)
from bench.plan import TARGETS, Sizes
from octuefs.metadata.codec import decode_cloud, encode_cloud
from octuefs.metadata.model import OctueMetadata
from tests.support.http_proxy import CountingProxy

DIRECTORY = "many"
NO_XATTRS = Unmeasured("n/a (no xattrs)")


def octue_metadata(index: int, **tags: object) -> dict[str, str]:
    """The custom metadata Octue writes for a datafile, with a stable id per object."""
    metadata = OctueMetadata.build(
        id=str(uuid.UUID(int=index + 1)),
        timestamp=datetime(2024, 5, 6, 7, 8, 9, tzinfo=UTC),
        tags={"site": "whitelee", "index": index, **tags},
        labels={"met-mast", "checked"},
    )
    return encode_cloud(metadata)


@dataclass(frozen=True)
class ManyObjects:
    bucket: storage.Bucket
    sizes: dict[str, int]  # file name in DIRECTORY -> size

    def list_directly(self, client: storage.Client) -> list[storage.Blob]:
        """What the client does to learn what a directory holds: one listing with a delimiter, fully iterated."""
        found = list(client.list_blobs(self.bucket.name, prefix=f"{DIRECTORY}/", delimiter="/"))
        if len(found) != len(self.sizes):
            raise RuntimeError(f"list_blobs found {len(found)} of {len(self.sizes)} objects")
        return found


def many_objects(env: BenchEnvironment, sizes: Sizes) -> ManyObjects:
    def make() -> ManyObjects:
        bucket = env.bucket("listing")
        contents = {f"{index:05d}.txt": b"%d\n" % index for index in range(sizes.listing)}
        objects = (
            (f"{DIRECTORY}/{name}", data, octue_metadata(index)) for index, (name, data) in enumerate(contents.items())
        )
        upload_many(bucket, objects)
        log(f"uploaded {sizes.listing:,} objects with Octue metadata")
        return ManyObjects(bucket, {name: len(data) for name, data in contents.items()})

    return env.fixture("many objects", make)


def against_listing(
    env: BenchEnvironment, sizes: Sizes, number: int, workload: str, operation: Callable[[str, Path], None]
) -> list[Row]:
    """`operation(filesystem, directory)` timed on fresh mounts, against the client's listing of the directory."""
    many = many_objects(env, sizes)
    direct = repeat(sizes.repeats, lambda: timed(lambda: many.list_directly(env.client)))

    def measure(filesystem: str) -> float:
        with env.mounted(filesystem, many.bucket.name) as mount:
            return timed(lambda: operation(filesystem, mount.mountpoint / DIRECTORY))

    results = env.on_each_filesystem(lambda filesystem: repeat(sizes.repeats, lambda: measure(filesystem)))
    workload = f"{workload.format(len(many.sizes))}, fresh mount"
    return [best_time_row(number, workload, TARGETS[number], results, direct, "list_blobs", "fresh mount each")]


def listing(env: BenchEnvironment, sizes: Sizes) -> list[Row]:
    """Row 7: `ls -l` of the directory (a listing, then a stat of every entry)."""

    def list_long(filesystem: str, directory: Path) -> None:
        result = subprocess.run(["ls", "-l", directory], capture_output=True, check=True)
        if len(result.stdout.splitlines()) - 1 != sizes.listing:  # minus the "total" line
            raise RuntimeError(f"ls -l through {filesystem} did not show every object")

    return against_listing(env, sizes, 7, "ls -l of {:,} objects", list_long)


def stat_by_name(env: BenchEnvironment, sizes: Sizes) -> list[Row]:
    """Row 8: stat of every file by its name with no listing first (as a program with a manifest of paths
    does), against the one listing that gives the client the same sizes and times."""
    expected = many_objects(env, sizes).sizes

    def stat_each(filesystem: str, directory: Path) -> None:
        if {name: os.stat(directory / name).st_size for name in expected} != expected:
            raise RuntimeError(f"stat through {filesystem} gave other sizes")

    return against_listing(env, sizes, 8, "stat of {:,} files by name", stat_each)


@dataclass(frozen=True)
class Requests:
    """Requests on the wire, by kind, that one action sent, and the seconds it took."""

    kinds: Counter[str]
    seconds: float

    @classmethod
    def during(cls, proxy: CountingProxy, action: Callable[[], object]) -> Requests:
        proxy.reset()
        seconds = timed(action)
        wait_until_quiet(lambda: len(proxy.requests))
        return cls(Counter(proxy.kinds()), seconds)

    def quantity(self, label: str = "") -> Quantity:
        return Quantity(self.kinds.total(), format_requests, label or format_seconds(self.seconds))

    def __str__(self) -> str:
        kinds = ", ".join(f"{count} {kind}" for kind, count in sorted(self.kinds.items())) or "none"
        return f"{kinds} in {format_seconds(self.seconds)}"


def xattrs(env: BenchEnvironment, sizes: Sizes) -> list[Row]:
    """Rows 9 and 10: requests that `getfattr -R -d` after `ls -l`, then one `setfattr`, send to the server.

    The client gets every object's metadata with the listing and changes one with one PATCH: that
    is the baseline. rclone has no Octue xattrs, so it has no numbers here.
    """
    many = many_objects(env, sizes)
    proxy = env.proxy()
    names = sorted(many.sizes)

    listed = many.list_directly(storage_client(proxy.url))
    direct_get = Requests.during(proxy, lambda: [decode_cloud(blob.metadata, blob.name) for blob in listed])
    blob = next(blob for blob in listed if blob.name == f"{DIRECTORY}/{names[1]}")
    blob.metadata = octue_metadata(1, height=350)
    direct_set = Requests.during(proxy, blob.patch)

    def run(command: list[str]) -> str:
        return subprocess.run(command, capture_output=True, text=True, check=True).stdout

    def measure(filesystem: str) -> tuple[Requests, Requests]:
        with env.mounted(filesystem, many.bucket.name, endpoint=proxy.url) as mount:
            directory = mount.mountpoint / DIRECTORY
            run(["ls", "-l", str(directory)])
            wait_until_quiet(lambda: len(proxy.requests))
            shown: list[str] = []
            get = Requests.during(proxy, lambda: shown.append(run(["getfattr", "-R", "-d", str(directory)])))
            if shown[0].count("user.octue.tags=") != len(names):
                raise RuntimeError("getfattr -R -d did not show the tags of every file")
            command = ["setfattr", "-n", "user.octue.tag.height", "-v", "350", str(directory / names[0])]
            change = Requests.during(proxy, lambda: run(command))
        stored = decode_cloud(many.bucket.get_blob(f"{DIRECTORY}/{names[0]}").metadata, names[0])
        if stored["tags"].get("height") != 350:
            raise RuntimeError(f"setfattr through {filesystem} did not reach the object's metadata")
        return get, change

    results = env.on_each_filesystem(measure, filesystems=("octuefs",))
    return [
        Row(
            9,
            f"getfattr -R -d of {len(names):,} files after ls -l, requests",
            TARGETS[9],
            **values_of(results, lambda found: found[0].quantity()),
            rclone=NO_XATTRS,
            direct=direct_get.quantity("metadata in the listing"),
            notes=[
                *describe(results, lambda found: f"requests after the listing: {found[0]}"),
                f"direct: decoding every listed object's metadata: {direct_get}",
            ],
        ),
        Row(
            10,
            "one setfattr of a tag, requests",
            TARGETS[10],
            **values_of(results, lambda found: found[1].quantity()),
            rclone=NO_XATTRS,
            direct=direct_set.quantity(f"blob.patch(), {format_seconds(direct_set.seconds)}"),
            notes=[
                *describe(results, lambda found: f"requests: {found[1]}"),
                f"direct blob.patch(): {direct_set}",
                "counted on the wire through a counting proxy, after a listing, for both",
            ],
        ),
    ]
