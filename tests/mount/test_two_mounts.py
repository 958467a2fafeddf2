"""Two daemons mounting one bucket, each with its own cache directory, as two machines would.

Nothing is shared between them but the bucket: what one writes reaches the other only through the
server, after the other's metadata TTL; a lost write race fails the loser's close and keeps its
bytes; metadata changes from both sides are merged by the metageneration retry, never dropped.
"""

from __future__ import annotations

import errno
import json
import os
import re
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.mount.conftest import CALL_TIMEOUT, Mount, Mounter, alive

pytestmark = pytest.mark.timeout(120)

TTL = 1.0
PAST_TTL = 1.5
RACE_ROUNDS = 6
KEPT_AT = re.compile(r"(gs://\S+): upload failed \(.*\); the written bytes are kept at (\S+\.data)$", re.MULTILINE)


@pytest.fixture
def pair(mount: Mounter) -> tuple[Mount, Mount]:
    first, second = mount(metadata_ttl=TTL), mount(metadata_ttl=TTL)
    assert first.cache_dir != second.cache_dir
    return first, second


def simultaneously(*calls: Callable[[], Any]) -> list[Any]:
    """Run the calls in threads released together; each result is the call's value or the exception it raised.

    A barrier lines the calls up so their requests reach the server as close together as threads allow,
    and the joins are bounded so a hung mount fails the test instead of stalling it.
    """
    barrier = threading.Barrier(len(calls))
    outcomes: list[Any] = [None] * len(calls)

    def run_one(index: int, call: Callable[[], Any]) -> None:
        barrier.wait()
        try:
            outcomes[index] = call()
        except Exception as error:
            outcomes[index] = error

    threads = [threading.Thread(target=run_one, args=indexed, daemon=True) for indexed in enumerate(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(CALL_TIMEOUT)
        if thread.is_alive():
            pytest.fail(f"a concurrent call did not return within {CALL_TIMEOUT} s")
    return outcomes


def both_alive(*mounts: Mount) -> bool:
    return all(alive(mounted.pid) for mounted in mounts)


def test_a_write_on_one_mount_is_seen_on_the_other_after_the_ttl(pair, bucket):
    first, second = pair
    bucket.blob("shared/existing.txt").upload_from_string(b"version 1\n")
    assert second.sh("ls", second / "shared").stdout.decode().split() == ["existing.txt"]
    assert second.read_bytes("shared/existing.txt") == b"version 1\n"

    first.call((first / "shared/new.txt").write_bytes, b"written on the first mount\n")
    first.call((first / "shared/existing.txt").write_bytes, b"version 2, longer\n")
    first.sh("mkdir", first / "shared/made")
    time.sleep(PAST_TTL)

    assert second.sh("ls", second / "shared").stdout.decode().split() == ["existing.txt", "made", "new.txt"]
    assert second.sh("cat", second / "shared/new.txt").stdout == b"written on the first mount\n"
    assert second.read_bytes("shared/existing.txt") == b"version 2, longer\n"
    assert second.call(os.stat, second / "shared/existing.txt").st_size == len(b"version 2, longer\n")

    second.call(os.unlink, second / "shared/new.txt")
    time.sleep(PAST_TTL)
    assert first.sh("ls", first / "shared").stdout.decode().split() == ["existing.txt", "made"]
    assert both_alive(first, second)


@pytest.mark.parametrize("existing", [False, True], ids=["new-file", "existing-file"])
def test_concurrent_writes_of_one_file_one_wins_and_the_loser_keeps_its_bytes(pair, bucket, existing):
    """Both mounts write the file from the same starting point and close at once: the server's generation
    precondition lets exactly one upload through; the other close is EIO with its bytes staged on disk."""
    first, second = pair
    names = [f"race/file-{number}.txt" for number in range(RACE_ROUNDS)]
    if existing:
        for name in names:
            bucket.blob(name).upload_from_string(b"original\n")
    else:
        bucket.blob("race/.keep").upload_from_string(b"")
    mounts = (first, second)
    for name in names:
        contents = [f"{side} wrote {name}\n".encode() for side in ("first", "second")]
        descriptors = [
            mounted.call(os.open, mounted / name, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644) for mounted in mounts
        ]
        for mounted, descriptor, content in zip(mounts, descriptors, contents, strict=True):
            mounted.call(os.write, descriptor, content)

        outcomes = simultaneously(*(lambda descriptor=descriptor: os.close(descriptor) for descriptor in descriptors))

        winners = [index for index, outcome in enumerate(outcomes) if outcome is None]
        losers = [index for index, outcome in enumerate(outcomes) if isinstance(outcome, OSError)]
        assert len(winners) == 1 and len(losers) == 1, (name, outcomes)
        (winner,), (loser,) = winners, losers
        assert outcomes[loser].errno == errno.EIO
        assert bucket.blob(name).download_as_bytes() == contents[winner]
        kept = {match.group(1): Path(match.group(2)) for match in KEPT_AT.finditer(mounts[loser].log)}
        staged = kept[f"gs://{bucket.name}/{name}"]
        assert staged.is_relative_to(mounts[loser].cache_dir)
        assert staged.read_bytes() == contents[loser]
    assert both_alive(first, second)


def tags_of(bucket, name: str) -> dict[str, Any]:
    return json.loads(bucket.get_blob(name).metadata["octue__tags"])


def test_concurrent_setfattr_of_different_tags_on_two_mounts_keeps_both(pair, bucket, proxy):
    """Each round starts one setfattr process per mount at once, so their PATCHes race on the same
    metageneration: the loser's retry re-reads the object and re-applies its own tag on top."""
    first, second = pair
    bucket.blob("meta/readings.csv").upload_from_string(b"t,v\n0,1\n")
    for mounted in (first, second):
        assert mounted.call(os.getxattr, mounted / "meta/readings.csv", "user.octue.tags") == b"{}"
    for number in range(RACE_ROUNDS):
        processes = [
            subprocess.Popen(
                ["setfattr", "-n", f"user.octue.tag.{side}_{number}", "-v", str(number), mounted / "meta/readings.csv"],
                stderr=subprocess.PIPE,
            )
            for side, mounted in (("first", first), ("second", second))
        ]
        for process in processes:
            _, stderr = process.communicate(timeout=CALL_TIMEOUT)
            assert process.returncode == 0, stderr.decode()

    assert proxy.preconditions.refused > 0, "no PATCH ever lost the race: the test raced nothing"
    expected = {f"{side}_{number}": number for number in range(RACE_ROUNDS) for side in ("first", "second")}
    assert tags_of(bucket, "meta/readings.csv") == expected
    time.sleep(PAST_TTL)
    for mounted in (first, second):
        assert json.loads(mounted.call(os.getxattr, mounted / "meta/readings.csv", "user.octue.tags")) == expected
    assert both_alive(first, second)


def test_setfattr_from_a_stale_view_merges_instead_of_overwriting(mount, bucket, proxy):
    """The second mount trusts its view for a minute, so its PATCH is certain to carry an old
    metageneration after the first mount's change: the test proxy refuses it (as GCS would) and the retry merges."""
    blob = bucket.blob("meta/stale.csv")
    blob.metadata = {"owner": "alice", "octue__tags": json.dumps({"kept": "yes"})}
    blob.upload_from_string(b"t,v\n0,1\n")
    first, stale = mount(metadata_ttl=TTL), mount(metadata_ttl=60)
    assert json.loads(stale.call(os.getxattr, stale / "meta/stale.csv", "user.octue.tags")) == {"kept": "yes"}

    first.sh("setfattr", "-n", "user.octue.tag.height", "-v", "350", first / "meta/stale.csv")
    first.sh("setfattr", "-n", "user.octue.labels", "-v", "met-mast", first / "meta/stale.csv")
    stale.sh("setfattr", "-n", "user.octue.tag.site", "-v", "whitelee", stale / "meta/stale.csv")
    stale.sh("setfattr", "-x", "user.octue.tag.kept", stale / "meta/stale.csv")
    # The stale mount's first PATCH; its merged retry adopted the fresh metageneration.
    assert proxy.preconditions.refused == 1

    assert tags_of(bucket, "meta/stale.csv") == {"height": 350, "site": "whitelee"}
    stored = bucket.get_blob("meta/stale.csv")
    assert json.loads(stored.metadata["octue__labels"])["items"] == ["met-mast"]
    assert stored.metadata["owner"] == "alice"
    # The stale mount adopted the merged metadata its retry wrote, not just its own change.
    assert json.loads(stale.call(os.getxattr, stale / "meta/stale.csv", "user.octue.tags")) == {
        "height": 350,
        "site": "whitelee",
    }
    assert stale.call(os.getxattr, stale / "meta/stale.csv", "user.octue.labels") == b"met-mast"
    assert both_alive(first, stale)
