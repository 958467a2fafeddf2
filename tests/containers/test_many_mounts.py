"""Four containers mounting one bucket of the session's server at once, each with its own cache, as four
pods on four nodes would: nothing joins them but the bucket and its generation preconditions."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import re
import subprocess
import time
from pathlib import Path

import pytest

from tests.containers.conftest import COMMAND_TIMEOUT, MOUNTPOINT, Container, Containers

pytestmark = pytest.mark.timeout(900)  # the first container test of a session may build the image

MOUNTS = 4
TTL = 1.0
KEPT_AT = re.compile(r"(gs://\S+): upload failed \(.*\); the written bytes are kept at (\S+\.data)$", re.MULTILINE)
# Opens, writes, says so, and closes only once the host says go: every writer opens from the same state.
RACING_WRITER = """
import json, os, sys, time
path, content, flags = sys.argv[1], sys.argv[2].encode(), sys.argv[3]
descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
os.write(descriptor, content)
open(os.path.join(flags, "opened-" + content.decode()), "w").close()
deadline = time.monotonic() + 60
while not os.path.exists(os.path.join(flags, "go")) and time.monotonic() < deadline:
    time.sleep(0.005)
try:
    os.close(descriptor)
    print(json.dumps({"errno": 0}))
except OSError as error:
    print(json.dumps({"errno": error.errno}))
"""
WRITE_AND_CLOSE = """
import os, sys
descriptor = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
os.write(descriptor, sys.argv[2].encode())
os.close(descriptor)
"""


@pytest.fixture
def fleet(containers: Containers, bucket, tmp_path: Path) -> list[Container]:
    flags = tmp_path / "flags"
    flags.mkdir()
    return [
        containers.mount(bucket.name, "--volume", f"{flags}:/flags", arguments=("--metadata-ttl", str(TTL)))
        for _ in range(MOUNTS)
    ]


def all_at_once(processes: list[subprocess.Popen]) -> list[bytes]:
    """Each process's stdout; every one must succeed."""
    outputs = []
    for process in processes:
        stdout, stderr = process.communicate(timeout=COMMAND_TIMEOUT)
        assert process.returncode == 0, stderr.decode(errors="replace")
        outputs.append(stdout)
    return outputs


def eventually(check, seconds: float = 10.0) -> None:
    """Poll `check` (True when met) until the deadline: what other mounts see waits on their TTL."""
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, f"{check.__doc__ or check} not met within {seconds} s"
        time.sleep(0.2)


def test_concurrent_readers_see_the_same_bytes(fleet, bucket):
    content = os.urandom(8 * 2**20)
    bucket.blob("data/big.bin").upload_from_string(content)
    outputs = all_at_once([mounted.popen("sha256sum", f"{MOUNTPOINT}/data/big.bin") for mounted in fleet])
    assert {output.split()[0].decode() for output in outputs} == {hashlib.sha256(content).hexdigest()}


def test_writers_to_distinct_names_all_land_and_every_mount_sees_them(fleet, bucket):
    bucket.blob("out/.keep").upload_from_string(b"")
    all_at_once(
        [
            mounted.popen("sh", "-c", f"head -c 100000 /dev/urandom > {MOUNTPOINT}/out/part-{index}.bin")
            for index, mounted in enumerate(fleet)
        ]
    )
    names = {f"out/part-{index}.bin" for index in range(MOUNTS)}
    assert {blob.name for blob in bucket.list_blobs(prefix="out/part-")} == names
    assert all(bucket.get_blob(name).size == 100000 for name in names)
    expected = sorted(f"part-{index}.bin" for index in range(MOUNTS))
    for mounted in fleet:

        def sees_all(mounted: Container = mounted) -> bool:
            listing = mounted.exec("ls", f"{MOUNTPOINT}/out").stdout.decode().split()
            return listing == expected

        eventually(sees_all)


@pytest.mark.parametrize("existing", [False, True], ids=["new-file", "existing-file"])
def test_writers_racing_on_one_name_one_wins_and_every_loser_keeps_its_bytes(fleet, bucket, tmp_path, existing):
    if existing:
        bucket.blob("race/result.txt").upload_from_string(b"original\n")
    else:
        bucket.blob("race/.keep").upload_from_string(b"")
    flags = tmp_path / "flags"
    contents = [f"writer-{index}" for index in range(MOUNTS)]
    writers = [
        mounted.popen("python3", "-c", RACING_WRITER, f"{MOUNTPOINT}/race/result.txt", content, "/flags")
        for mounted, content in zip(fleet, contents, strict=True)
    ]
    eventually(lambda: all((flags / f"opened-{content}").exists() for content in contents), seconds=30)
    (flags / "go").touch()
    outcomes = [json.loads(output)["errno"] for output in all_at_once(writers)]

    winners = [index for index, number in enumerate(outcomes) if number == 0]
    assert len(winners) == 1, outcomes
    assert sorted(number for number in outcomes if number) == [errno.EIO] * (MOUNTS - 1)
    assert bucket.blob("race/result.txt").download_as_bytes() == contents[winners[0]].encode()
    for index, mounted in enumerate(fleet):
        if index in winners:
            continue
        kept = {match.group(1): Path(match.group(2)) for match in KEPT_AT.finditer(mounted.log)}
        staged = kept[f"gs://{bucket.name}/race/result.txt"]
        on_host = mounted.cache / staged.relative_to("/var/cache/octuefs")
        assert on_host.read_bytes() == contents[index].encode()


def test_setfattr_from_every_mount_keeps_every_tag(fleet, bucket, proxy):
    bucket.blob("meta/readings.csv").upload_from_string(b"t,v\n0,1\n")
    rounds = 3
    for number in range(rounds):
        all_at_once(
            [
                mounted.popen("setfattr", "-n", f"user.octue.tag.m{index}_{number}", "-v", str(number),
                              f"{MOUNTPOINT}/meta/readings.csv")
                for index, mounted in enumerate(fleet)
            ]
        )  # fmt: skip
    assert proxy.preconditions.refused > 0, "no PATCH ever lost the race: the test raced nothing"
    expected = {f"m{index}_{number}": number for index in range(MOUNTS) for number in range(rounds)}
    assert json.loads(bucket.get_blob("meta/readings.csv").metadata["octue__tags"]) == expected
    for mounted in fleet:

        def sees_every_tag(mounted: Container = mounted) -> bool:
            path = f"{MOUNTPOINT}/meta/readings.csv"
            shown = mounted.exec("getfattr", "--only-values", "-n", "user.octue.tags", path)
            return shown.returncode == 0 and json.loads(shown.stdout) == expected

        eventually(sees_every_tag)


def test_sigterm_to_one_container_unmounts_it_cleanly_and_the_others_go_on(fleet, bucket):
    stopped, *others = fleet
    stopped.sh(f"echo last words > {MOUNTPOINT}/last.txt")
    started = time.monotonic()
    stopped.stop()
    assert time.monotonic() - started < 25, "the stop waited for SIGKILL"
    assert stopped.state()["ExitCode"] == 0
    messages = stopped.log
    assert "received SIGTERM" in messages and f"unmounted {MOUNTPOINT}" in messages
    assert bucket.blob("last.txt").download_as_bytes() == b"last words\n"
    for mounted in others:
        eventually(lambda mounted=mounted: mounted.exec("cat", f"{MOUNTPOINT}/last.txt").stdout == b"last words\n")


def test_sigterm_while_the_server_is_away_keeps_the_staged_write_for_the_next_container(containers, bucket, proxy):
    """The pod-restart story: a container stopped with a file not yet uploaded leaves it staged in its
    cache volume; the next container on that volume sends it once the server answers."""
    bucket.blob("keep/.keep").upload_from_string(b"")
    first = containers.mount(bucket.name, arguments=("--retry-deadline", "2", "--stop-timeout", "3"))
    first.sh(f"ls {MOUNTPOINT}/keep")  # known before the server goes: a create needs its folder looked up
    proxy.down(lasting=120)
    try:
        # Python, not a shell redirection: shells do not report a failed close().
        closed = first.exec("python3", "-c", WRITE_AND_CLOSE, f"{MOUNTPOINT}/keep/offline.txt", "written offline\n")
        assert closed.returncode != 0 and b"Input/output error" in closed.stderr, "close() reports the failed upload"
        first.stop()
    finally:
        proxy.up()
    assert first.state()["ExitCode"] == 0 and f"unmounted {MOUNTPOINT}" in first.log
    assert bucket.get_blob("keep/offline.txt") is None
    assert list((first.cache / "staging").glob("*.data")), "the staged bytes stayed in the cache volume"

    containers.mount(bucket.name, cache=first.cache)
    eventually(lambda: bucket.get_blob("keep/offline.txt") is not None, seconds=30)
    assert bucket.blob("keep/offline.txt").download_as_bytes() == b"written offline\n"
