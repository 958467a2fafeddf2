"""A model-based test of writing through the mount: a seeded random sequence of create, write at
offsets, append, truncate, ftruncate, rename (of files, and of their directory while they are open),
unlink and close runs on the mount and on a local
reference directory; after every step both show the same names and the same bytes (and each
operation fails the same way on both), and after the unmount the bucket holds exactly the
reference directory's files, each with Octue metadata, with nothing left staged.

A seeded sequence rather than hypothesis' shrinking: each example costs a mount, and a failure
message carrying the seed and the steps taken is enough to replay it.

Then concurrency: several processes writing different files, or the same file, at once; reads of
a file being written on the same mount; an open racing the previous close's upload.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.timeout(90)

MiB = 1024 * 1024
NAMES = ("a.txt", "b.bin", "c.csv", "d/e.txt", "d/f.dat", "g/e.txt", "g/f.dat")
DIRECTORIES = ("", "d", "g")  # d and g are one directory, renamed back and forth
STEPS = 45
OPEN_FLAGS = (
    os.O_WRONLY,
    os.O_RDWR,
    os.O_WRONLY | os.O_APPEND,
    os.O_RDWR | os.O_APPEND,
    os.O_WRONLY | os.O_TRUNC,
    os.O_RDWR | os.O_TRUNC,
)


def outcome(function: Callable[..., Any], *args: Any) -> tuple[str, Any]:
    """What a call did, comparable between the mount and the reference: its result or its errno."""
    try:
        return ("ok", function(*args))
    except OSError as error:
        return ("error", error.errno)


def sorted_listing(directory: Path) -> list[str]:
    return sorted(os.listdir(directory))


def read_tree(root: Path, read: Callable[[Path], bytes]) -> dict[str, bytes]:
    return {name: read(root / name) for name in NAMES if (root / name).is_file()}


@dataclass
class Twin:
    """One open file: its descriptor on the mount and on the reference, and whether it may be read."""

    name: str
    mounted_fd: int
    reference_fd: int
    readable: bool


@dataclass
class WriteModel:
    mounted: Any  # tests.mount.conftest.Mount
    reference: Path
    rng: random.Random
    twins: list[Twin] = field(default_factory=list)
    history: list[str] = field(default_factory=list)

    # Running one operation on both sides ------------------------------------------------------

    def both(
        self,
        label: str,
        function: Callable[..., Any],
        mounted_args: tuple,
        reference_args: tuple,
        descriptor: bool = False,
    ) -> tuple[tuple[str, Any], tuple[str, Any]]:
        self.history.append(label)
        got = self.mounted.call(outcome, function, *mounted_args)
        expected = outcome(function, *reference_args)
        # Descriptors differ between the sides: for them only success (or the errno) must match.
        same = got == expected or (descriptor and got[0] == expected[0] == "ok")
        assert same, self.failure(f"{label}: mount gave {got!r}, reference {expected!r}")
        return got, expected

    def on_paths(
        self, label: str, function: Callable[..., Any], *names: str, extra: tuple = (), descriptor: bool = False
    ) -> Any:
        mounted = tuple(self.mounted / name for name in names)
        reference = tuple(self.reference / name for name in names)
        return self.both(label, function, mounted + extra, reference + extra, descriptor)

    def on_twin(self, label: str, function: Callable[..., Any], twin: Twin, extra: tuple = ()) -> Any:
        return self.both(label, function, (twin.mounted_fd, *extra), (twin.reference_fd, *extra))

    def failure(self, message: str) -> str:
        steps = "\n".join(f"  {number}: {step}" for number, step in enumerate(self.history))
        return f"{message}\nsteps:\n{steps}\n--- daemon log ---\n{self.mounted.log[-3000:]}"

    # The random choices ----------------------------------------------------------------------

    def existing(self) -> list[str]:
        return [name for name in NAMES if (self.reference / name).is_file()]

    def data(self) -> bytes:
        """Mostly a few KiB; now and then 1-2 MiB, so staged files cross the 1 MiB chunk boundary."""
        size = self.rng.randint(MiB, 2 * MiB) if self.rng.random() < 0.08 else self.rng.randint(1, 4096)
        return self.rng.randbytes(size)

    def size(self) -> int:
        return self.rng.choice((0, self.rng.randint(1, 3000), self.rng.randint(MiB - 10, MiB + 10)))

    def step(self) -> None:
        existing = self.existing()
        choices: list[Callable[[], None]] = [self.create, self.rename_directory]
        if existing:
            choices += [self.open_existing, self.truncate, self.rename, self.unlink]
        if self.twins:
            choices += [self.write, self.write, self.write, self.append, self.ftruncate, self.close, self.close]
        if any(twin.readable for twin in self.twins):
            choices.append(self.pread)
        self.rng.choice(choices)()

    def open_twin(self, name: str, flags: int) -> None:
        got, expected = self.on_paths(f"open {name} {flags:#o}", os.open, name, extra=(flags, 0o644), descriptor=True)
        if got[0] == expected[0] == "ok":
            self.twins.append(Twin(name, got[1], expected[1], bool(flags & os.O_RDWR)))

    def create(self) -> None:
        name = self.rng.choice(NAMES)
        self.open_twin(name, self.rng.choice((os.O_WRONLY, os.O_RDWR)) | os.O_CREAT | os.O_TRUNC)

    def open_existing(self) -> None:
        self.open_twin(self.rng.choice(self.existing()), self.rng.choice(OPEN_FLAGS))

    def write(self) -> None:
        twin = self.rng.choice(self.twins)
        data = self.data()
        if self.rng.random() < 0.5:
            end = os.fstat(twin.reference_fd).st_size
            offset = self.rng.randint(0, end + 100)
            self.on_twin(f"pwrite {twin.name} {len(data)} bytes at {offset}", os.pwrite, twin, (data, offset))
        else:
            self.on_twin(f"write {twin.name} {len(data)} bytes at the position", os.write, twin, (data,))

    def append(self) -> None:
        """Seek to the end and write, as `>>` does without O_APPEND."""
        twin = self.rng.choice(self.twins)
        self.on_twin(f"seek end of {twin.name}", os.lseek, twin, (0, os.SEEK_END))
        data = self.data()
        self.on_twin(f"append {len(data)} bytes to {twin.name}", os.write, twin, (data,))

    def ftruncate(self) -> None:
        twin = self.rng.choice(self.twins)
        size = self.size()
        self.on_twin(f"ftruncate {twin.name} to {size}", os.ftruncate, twin, (size,))

    def truncate(self) -> None:
        name, size = self.rng.choice(self.existing()), self.size()
        self.on_paths(f"truncate {name} to {size}", os.truncate, name, extra=(size,))

    def rename(self) -> None:
        source = self.rng.choice(self.existing())
        target = self.rng.choice([name for name in NAMES if name != source])
        self.on_paths(f"rename {source} -> {target}", os.rename, source, target)
        for twin in self.twins:
            if twin.name == source:
                twin.name = target

    def rename_directory(self) -> None:
        source, target = ("d", "g") if (self.reference / "d").is_dir() else ("g", "d")
        self.on_paths(f"rename {source} -> {target}", os.rename, source, target)
        for twin in self.twins:
            if twin.name.startswith(source + "/"):
                twin.name = target + twin.name[len(source) :]

    def unlink(self) -> None:
        name = self.rng.choice(self.existing())
        self.on_paths(f"unlink {name}", os.unlink, name)

    def close(self) -> None:
        twin = self.twins.pop(self.rng.randrange(len(self.twins)))
        self.on_twin(f"close {twin.name}", os.close, twin)

    def pread(self) -> None:
        twin = self.rng.choice([twin for twin in self.twins if twin.readable])
        end = os.fstat(twin.reference_fd).st_size
        offset, size = self.rng.randint(0, end + 10), self.rng.randint(1, 300_000)
        self.on_twin(f"pread {twin.name} {size} bytes at {offset}", os.pread, twin, (size, offset))

    # Comparing the whole tree ----------------------------------------------------------------

    def check(self) -> None:
        for directory in DIRECTORIES:
            got = self.mounted.call(outcome, sorted_listing, self.mounted / directory)
            expected = outcome(sorted_listing, self.reference / directory)
            assert got == expected, self.failure(f"listing of {directory or '/'}: {got} != {expected}")
        expected_tree = read_tree(self.reference, Path.read_bytes)
        got_tree = read_tree(self.mounted.path, lambda path: self.mounted.call(path.read_bytes))
        assert got_tree.keys() == expected_tree.keys(), self.failure(f"files {sorted(got_tree)}")
        for name, content in expected_tree.items():
            assert got_tree[name] == content, self.failure(
                f"{name}: {len(got_tree[name])} bytes on the mount, {len(content)} in the reference"
            )

    def close_all(self) -> None:
        while self.twins:
            twin = self.twins.pop()
            self.on_twin(f"close {twin.name}", os.close, twin)


def run_model(mounted: Any, reference: Path, seed: int) -> WriteModel:
    model = WriteModel(mounted, reference, random.Random(seed))
    model.history.append(f"seed {seed}")
    model.on_paths("mkdir d", os.mkdir, "d")
    model.check()
    for _ in range(STEPS):
        model.step()
        model.check()
    model.close_all()
    model.check()
    return model


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_random_writes_match_a_local_directory_and_reach_the_bucket(mount, bucket, tmp_path, seed):
    reference = tmp_path / "reference"
    reference.mkdir()
    mounted = mount()

    model = run_model(mounted, reference, seed)
    unmounted = mounted.unmount()

    assert unmounted.returncode == 0, unmounted.stderr
    objects = {blob.name: blob for blob in bucket.list_blobs() if not blob.name.endswith("/")}
    expected = read_tree(reference, Path.read_bytes)
    assert sorted(objects) == sorted(expected), model.failure("objects in the bucket after unmount")
    for name, content in expected.items():
        blob = objects[name]
        assert blob.download_as_bytes() == content, model.failure(f"{name} in the bucket")
        assert blob.metadata and "octue__id" in blob.metadata, f"{name} lost its Octue metadata: {blob.metadata}"
    assert list((mounted.cache_dir / "staging").glob("*.data")) == [], "staged data left after a clean unmount"


# Concurrency -------------------------------------------------------------------------------

WRITER = "import shutil, sys; shutil.copyfileobj(open(sys.argv[1], 'rb'), open(sys.argv[2], 'wb'), 65536)"


def run_at_once(mounted, commands: list[list[str]]) -> None:
    """Start every command, then wait for each: all must succeed (their stderr and the daemon log say
    why not); any still running when the test fails is killed."""
    processes = [subprocess.Popen(command, stderr=subprocess.PIPE) for command in commands]
    try:
        for command, process in zip(commands, processes, strict=True):
            _, stderr = process.communicate(timeout=60)
            assert process.returncode == 0, f"{command}: {stderr.decode(errors='replace')}\n{mounted.log[-3000:]}"
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()


def test_eight_files_written_at_once_by_separate_processes_all_arrive(mount, bucket, tmp_path):
    mounted = mount()
    mounted.call(os.mkdir, mounted / "out")
    sources = {}
    for number in range(8):
        source = tmp_path / f"source-{number}"
        source.write_bytes(random.Random(number).randbytes((number + 1) * 300_000))
        sources[f"out/file-{number}.bin"] = source
    commands = []
    for number, (name, source) in enumerate(sources.items()):
        if number % 2:
            commands.append(["dd", f"if={source}", f"of={mounted / name}", "bs=64k", "status=none"])
        else:
            commands.append([sys.executable, "-c", WRITER, str(source), str(mounted / name)])

    run_at_once(mounted, commands)

    assert sorted(mounted.call(os.listdir, mounted / "out")) == sorted(name.split("/")[1] for name in sources)
    for name, source in sources.items():
        blob = bucket.get_blob(name)
        assert blob is not None, f"{name} was not uploaded"
        assert blob.download_as_bytes() == source.read_bytes(), name
        assert "octue__id" in blob.metadata, name
        assert mounted.call(os.stat, mounted / name).st_size == source.stat().st_size


def test_reads_of_a_file_being_written_see_the_new_bytes(mount, bucket):
    bucket.blob("log.txt").upload_from_string(b"line 1\n")
    mounted = mount()

    writer = mounted.call(os.open, mounted / "new.txt", os.O_WRONLY | os.O_CREAT, 0o644)
    mounted.call(os.write, writer, b"first")
    reader = mounted.call(os.open, mounted / "new.txt", os.O_RDONLY)
    assert mounted.call(os.read, reader, 100) == b"first"
    mounted.call(os.write, writer, b" second")
    assert mounted.call(os.pread, reader, 100, 0) == b"first second"
    assert mounted.sh("cat", mounted / "new.txt").stdout == b"first second"
    mounted.call(os.close, reader)
    mounted.call(os.close, writer)
    assert bucket.blob("new.txt").download_as_bytes() == b"first second"

    appender = mounted.call(os.open, mounted / "log.txt", os.O_WRONLY | os.O_APPEND)
    mounted.call(os.write, appender, b"line 2\n")
    assert mounted.sh("cat", mounted / "log.txt").stdout == b"line 1\nline 2\n"
    assert mounted.call(os.stat, mounted / "log.txt").st_size == 14
    mounted.call(os.write, appender, b"line 3\n")
    assert mounted.read_bytes("log.txt") == b"line 1\nline 2\nline 3\n"
    mounted.call(os.close, appender)
    assert bucket.blob("log.txt").download_as_bytes() == b"line 1\nline 2\nline 3\n"


APPENDER = """
import os, sys
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
for number in range(200):
    os.write(fd, f"{sys.argv[2]} line {number:03d}\\n".encode())
    if number % 10 == 0:
        os.fsync(fd)
os.close(fd)
"""


WRITERS = ("alpha", "beta", "gamma")


def test_processes_appending_to_one_file_lose_no_line(mount, bucket):
    """Their fsyncs and closes upload the shared staged file while the others keep writing to it."""
    mounted = mount()
    run_at_once(mounted, [[sys.executable, "-c", APPENDER, str(mounted / "shared.log"), writer] for writer in WRITERS])

    expected = sorted(f"{writer} line {number:03d}" for writer in WRITERS for number in range(200))
    assert sorted(mounted.read_bytes("shared.log").decode().splitlines()) == expected
    assert sorted(bucket.blob("shared.log").download_as_bytes().decode().splitlines()) == expected


def test_reopening_while_the_last_close_is_still_uploading_keeps_the_new_handle_working(mount, bucket):
    """close() returns after FLUSH; RELEASE uploads again (or finds nothing to send) and then drops the
    staged file. An open arriving meanwhile shares that staged file, which must stay for its handle."""
    mounted = mount()
    content = random.Random(7).randbytes(3 * MiB)
    for round_number in range(8):
        writer = mounted.call(os.open, mounted / "busy.bin", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        mounted.call(os.write, writer, content)
        mounted.call(os.close, writer)
        appender = mounted.call(os.open, mounted / "busy.bin", os.O_WRONLY | os.O_APPEND)
        mounted.call(os.write, appender, b"tail %d" % round_number)
        mounted.call(os.close, appender)
        expected = content + b"tail %d" % round_number
        assert bucket.blob("busy.bin").download_as_bytes() == expected, f"round {round_number}"
        assert mounted.read_bytes("busy.bin") == expected, f"round {round_number}"


OPENER = """
import os, sys, time
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_APPEND)
time.sleep(0.3)
os.write(fd, sys.argv[2].encode() + b"\\n")
os.close(fd)
"""


def test_processes_opening_one_existing_file_at_once_share_one_staged_copy(mount, bucket):
    """Each open stages the object (a ranged download) in a worker thread; opens arriving together
    must wait for the first one's copy instead of each staging (and orphaning) their own."""
    base = random.Random(11).randbytes(4 * MiB)
    bucket.blob("shared.bin").upload_from_string(base)
    mounted = mount()
    names = [f"writer-{number}" for number in range(4)]
    run_at_once(mounted, [[sys.executable, "-c", OPENER, str(mounted / "shared.bin"), name] for name in names])

    content = bucket.blob("shared.bin").download_as_bytes()
    assert content[: len(base)] == base
    assert sorted(content[len(base) :].decode().split()) == names
    deadline = time.monotonic() + 10  # the last RELEASE, which drops the staged copy, comes after close()
    while list((mounted.cache_dir / "staging").glob("*.data")) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert list((mounted.cache_dir / "staging").glob("*.data")) == [], "staged copies were orphaned"
