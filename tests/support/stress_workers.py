"""The processes of the mount stress test: readers, writers and xattr setters doing real syscalls.

Each runs as its own process (`python stress_workers.py ROLE CONFIG_JSON`), never as a thread of
pytest: the counting proxy the daemon talks to lives in the pytest process, and many programs at
once is the load a mount really meets. Only the standard library is imported, so fourteen of them
start quickly and leave the CPU to the daemon. Each checks every byte and attribute it reads
against what it knows must be there, counts operations and errors, and prints one JSON line.

Readers check against `object_content`, which the test also uses to create the objects: a
pseudo-random block of prime length repeated, so any range is cheap to produce and a chunk served
at the wrong offset or from another file never matches.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import sys
import time
from collections import deque
from collections.abc import Callable
from typing import Any

PERIOD = 1_000_003  # prime, so no multiple of the 1 MiB chunk size lands on the same bytes
REPORTED_ERRORS = 20
TAG_KEYS_PER_SETTER = 5


def pattern(name: str) -> bytes:
    return random.Random(name).randbytes(PERIOD)


def pattern_bytes(block: bytes, offset: int, length: int) -> bytes:
    """Bytes [offset, offset + length) of `block` repeated without end."""
    pieces = []
    position, remaining = offset % PERIOD, length
    while remaining > 0:
        take = min(PERIOD - position, remaining)
        pieces.append(block[position : position + take])
        remaining -= take
        position = 0
    return b"".join(pieces)


def object_content(name: str, size: int) -> bytes:
    return pattern_bytes(pattern(name), 0, size)


def first_difference(got: bytes, wanted: bytes) -> int:
    return next(
        (index for index, (a, b) in enumerate(zip(got, wanted, strict=False)) if a != b), min(len(got), len(wanted))
    )


class Tally:
    """Operations done and errors met; an error never stops the worker, so one run shows them all."""

    def __init__(self) -> None:
        self.operations = 0
        self.error_count = 0
        self.errors: list[str] = []

    def error(self, message: str) -> None:
        self.error_count += 1
        if len(self.errors) < REPORTED_ERRORS:
            self.errors.append(message)

    def attempt(self, description: str, operation: Callable[[], None]) -> None:
        try:
            operation()
        except (OSError, ValueError) as error:  # ValueError: an attribute that is not the JSON it must be
            self.error(f"{description}: {error!r}")
        else:
            self.operations += 1

    def report(self, **results: Any) -> dict[str, Any]:
        return {"operations": self.operations, "error_count": self.error_count, "errors": self.errors, **results}


def uncached(descriptor: int) -> None:
    """Drop the kernel's page cache of the file, so the bytes come from the daemon every time."""
    os.posix_fadvise(descriptor, 0, 0, os.POSIX_FADV_DONTNEED)


def read_all(descriptor: int, piece: int) -> bytes:
    pieces = []
    while block := os.read(descriptor, piece):
        pieces.append(block)
    return b"".join(pieces)


def reader(config: dict[str, Any], tally: Tally) -> dict[str, Any]:
    """Whole files, random ranges (some past the end), and listings of the preloaded objects."""
    rng = random.Random(config["seed"])
    sizes: dict[str, int] = config["files"]
    blocks = {name: pattern(name) for name in sizes}
    names = sorted(sizes)

    def check(name: str, offset: int, got: bytes, length: int) -> None:
        wanted = pattern_bytes(blocks[name], offset, max(0, min(length, sizes[name] - offset)))
        if got != wanted:
            at = offset + first_difference(got, wanted)
            tally.error(f"{name}: read of {length} at {offset} gave {len(got)} bytes, wrong from byte {at}")

    def whole(name: str) -> None:
        descriptor = os.open(os.path.join(config["mount"], name), os.O_RDONLY)
        try:
            uncached(descriptor)
            check(name, 0, read_all(descriptor, rng.choice((128 * 1024, 1024 * 1024))), sizes[name])
        finally:
            os.close(descriptor)

    def ranges(name: str) -> None:
        descriptor = os.open(os.path.join(config["mount"], name), os.O_RDONLY)
        try:
            uncached(descriptor)
            for _ in range(rng.randint(1, 8)):
                offset = rng.randrange(sizes[name] + 4096)
                length = rng.randint(1, 2 * 1024 * 1024)
                check(name, offset, os.pread(descriptor, length, offset), length)
        finally:
            os.close(descriptor)

    def listing() -> None:
        directory = os.path.join(config["mount"], os.path.dirname(names[0]))
        shown = {entry.name: entry.stat().st_size for entry in os.scandir(directory)}
        for name in names:
            if shown.get(os.path.basename(name)) != sizes[name]:
                tally.error(f"{name}: listed as {shown.get(os.path.basename(name))} bytes, not {sizes[name]}")

    while time.time() < config["deadline"]:
        name, choice = rng.choice(names), rng.random()
        if choice < 0.3:
            tally.attempt(f"whole read of {name}", lambda name=name: whole(name))
        elif choice < 0.95:
            tally.attempt(f"ranged reads of {name}", lambda name=name: ranges(name))
        else:
            tally.attempt("listing", listing)
    return tally.report()


def writer(config: dict[str, Any], tally: Tally) -> dict[str, Any]:
    """Rewrites, appends, writes in the middle and truncates of one file, each ended by a close, and
    after each close the whole file read back; the last content's hash goes to the test.

    Rewrites are `rewrite_sizes` (low, high) bytes, and a file grown past `max_size` is rewritten.
    """
    rng = random.Random(config["seed"])
    low, high = config["rewrite_sizes"]
    path = os.path.join(config["mount"], config["name"])
    model = bytearray()
    # The last changes made, so a wrong read-back names what led to it.
    history: deque[str] = deque(maxlen=6)

    def write_pieces(descriptor: int, data: bytes) -> None:
        position = 0
        while position < len(data):
            piece = rng.randint(4096, 512 * 1024)
            position += os.write(descriptor, data[position : position + piece])

    def rewrite() -> None:
        data = rng.randbytes(rng.randint(low, high))
        history.append(f"rewrite with {len(data)} bytes")
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            write_pieces(descriptor, data)
        finally:
            os.close(descriptor)
        model[:] = data

    def append() -> None:
        data = rng.randbytes(rng.randint(1, 256 * 1024))
        history.append(f"append {len(data)} bytes to {len(model)}")
        descriptor = os.open(path, os.O_WRONLY | os.O_APPEND)
        try:
            write_pieces(descriptor, data)
        finally:
            os.close(descriptor)
        model.extend(data)

    def write_inside() -> None:
        offset, data = rng.randint(0, len(model)), rng.randbytes(rng.randint(1, 256 * 1024))
        history.append(f"write {len(data)} bytes at {offset} of {len(model)}")
        descriptor = os.open(path, os.O_RDWR)
        try:
            os.pwrite(descriptor, data, offset)
        finally:
            os.close(descriptor)
        model[offset : offset + len(data)] = data

    def truncate_open() -> None:
        size = rng.randint(0, len(model) + 64 * 1024)
        history.append(f"ftruncate {len(model)} to {size}")
        descriptor = os.open(path, os.O_RDWR)
        try:
            os.ftruncate(descriptor, size)
        finally:
            os.close(descriptor)
        resize(size)

    def truncate_path() -> None:
        size = rng.randint(0, len(model))
        history.append(f"truncate {len(model)} to {size} by path")
        os.truncate(path, size)
        resize(size)

    def resize(size: int) -> None:
        del model[size:]
        model.extend(bytes(size - len(model)))

    def read_back() -> None:
        descriptor = os.open(path, os.O_RDONLY)
        try:
            uncached(descriptor)
            got = read_all(descriptor, 1024 * 1024)
        finally:
            os.close(descriptor)
        if got != model:
            at = first_difference(got, bytes(model))
            tally.error(
                f"{config['name']}: read back {len(got)} bytes, wrote {len(model)}, wrong from byte {at}, "
                f"after {list(history)}"
            )

    changes = [rewrite, append, write_inside, truncate_open, truncate_path]
    tally.attempt(f"create {config['name']}", rewrite)
    while time.time() < config["deadline"]:
        change = rewrite if len(model) > config["max_size"] else rng.choice(changes)
        tally.attempt(f"{change.__name__} of {config['name']}", change)
        tally.attempt(f"read back of {config['name']}", read_back)
    return tally.report(sha256=hashlib.sha256(model).hexdigest(), size=len(model))


def xattr_setter(config: dict[str, Any], tally: Tally) -> dict[str, Any]:
    """Sets its own tag keys (the other setter's keys never collide) and checks that every tag it set
    is still there with its latest value: a lost update between two concurrent setters shows here."""
    rng = random.Random(config["seed"])
    keys = [f"setter{config['index']}_{number}" for number in range(TAG_KEYS_PER_SETTER)]
    latest: dict[str, dict[str, str]] = {name: {} for name in config["files"]}
    count = 0

    def set_tag(name: str, key: str, value: str) -> None:
        path = os.path.join(config["mount"], name)
        attribute = f"user.octue.tag.{key}"
        os.setxattr(path, attribute, json.dumps(value).encode())
        latest[name][key] = value
        shown = json.loads(os.getxattr(path, attribute))
        if shown != value:
            tally.error(f"{name}: {attribute} read back as {shown!r} right after setting {value!r}")

    def check_all(name: str) -> None:
        path = os.path.join(config["mount"], name)
        tags = json.loads(os.getxattr(path, "user.octue.tags"))
        listed = set(os.listxattr(path))
        for key, value in latest[name].items():
            if tags.get(key) != value:
                tally.error(f"{name}: tag {key} is {tags.get(key)!r}, last set to {value!r}")
            if f"user.octue.tag.{key}" not in listed:
                tally.error(f"{name}: user.octue.tag.{key} missing from listxattr")

    while time.time() < config["deadline"]:
        name, key = rng.choice(config["files"]), rng.choice(keys)
        count += 1
        value = f"{key}-{count}"
        tally.attempt(f"setxattr {key} on {name}", lambda name=name, key=key, value=value: set_tag(name, key, value))
        if count % 5 == 0:
            tally.attempt(f"tags of {name}", lambda name=name: check_all(name))
    return tally.report(tags=latest)


ROLES = {"reader": reader, "writer": writer, "xattr_setter": xattr_setter}


def main() -> None:
    role, config = sys.argv[1], json.loads(sys.argv[2])
    tally = Tally()
    print(json.dumps({"role": role, **ROLES[role](config, tally)}), flush=True)


if __name__ == "__main__":
    main()
