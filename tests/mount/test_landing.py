"""Writes made while the server is away land by themselves once it is back (issue 14, point 3).

The server goes away through the fault proxy's `down()` (every request has its connection reset, as
when the server is killed) and comes back with `up()`. Through real syscalls on a real mount: a new
file created, written and closed offline in a directory listed before fails close() with EIO, reads
back its bytes, shows in `octuefs stats` as waiting for the server, and is in the bucket, with its
metadata, a bounded time after `up()` without any program doing anything; an existing file
overwritten offline lands with the generation precondition of when it was opened; a name another
client took meanwhile keeps that client's object and ours goes to lost+found with a log line naming
both; a setfattr offline fails with EIO and changes nothing; a file unlinked before landing is
never uploaded.

Until the circuit breaker (branch `breaker`) makes requests fail fast while the server is away,
every request waits for the retry deadline first: these mounts use `--retry-deadline 2` so that
each offline close fails within seconds. The lander then retries by its own backoff (1, 2, 4 ...
seconds, at most `--landing-interval` apart; 30 s by default, 2 s where the test is not measuring).
"""

from __future__ import annotations

import errno
import json
import os
import re
import time
from pathlib import Path

import pytest

from tests.integration.datafile_objects import CSV, FOREIGN, GOLDEN_CSV_METADATA, put_golden_csv
from tests.mount.conftest import CLI, run
from tests.mount.test_write_failures import close_fails_with_eio, wait_for_failed_uploads

pytestmark = pytest.mark.timeout(150)

OFFLINE = ("--retry-deadline", "2")
QUICK_LANDING = (*OFFLINE, "--landing-interval", "2")
# How long the proxy stays down unless a test brings it back sooner: past any test's offline part.
AWAY = 120.0
# Generous bound on landing after up(): a whole landing interval (30 s) plus an attempt, on a shared machine.
LANDING_BOUND = 60.0
SET_ASIDE = re.compile(r"landing: (gs://\S+) changed since these bytes were staged .*; not uploaded, kept at (.+)$")


def pending(mounted) -> dict[str, str]:
    """Each pending file's state, as `octuefs stats --json` says it."""
    result = run(*CLI, "stats", mounted.path, "--json")
    assert result.returncode == 0, result.stderr
    return {location: entry["status"] for location, entry in json.loads(result.stdout)["pending"].items()}


def wait_for(condition, seconds: float = LANDING_BOUND) -> float:
    """Seconds until `condition()` held; fails past `seconds`."""
    started = time.monotonic()
    while not condition():
        assert time.monotonic() - started < seconds, "condition not reached in time"
        time.sleep(0.05)
    return time.monotonic() - started


def save_offline(mounted, relative: str, content: bytes, flags: int = os.O_CREAT | os.O_EXCL) -> None:
    """Open, write and close as a program saving its work: close() reports the failed upload."""
    fd = mounted.call(os.open, mounted / relative, os.O_WRONLY | flags, 0o640)
    mounted.call(os.write, fd, content)
    close_fails_with_eio(mounted, fd)


def test_a_file_saved_while_the_server_is_away_lands_by_itself_once_it_is_back(mount, bucket, proxy):
    content = os.urandom(100_000)
    bucket.blob("work/existing.txt").upload_from_string(b"listed before\n")
    mounted = mount("", *OFFLINE)
    location = f"gs://{bucket.name}/work/new.bin"
    assert mounted.call(os.listdir, mounted / "work") == ["existing.txt"]

    proxy.down(AWAY)
    try:
        save_offline(mounted, "work/new.bin", content)
        assert mounted.read_bytes("work/new.bin") == content
        assert sorted(mounted.call(os.listdir, mounted / "work")) == ["existing.txt", "new.bin"]
        identity = mounted.call(os.getxattr, mounted / "work/new.bin", "user.octue.id")
        state = pending(mounted)
        assert list(state) == [location] and state[location].startswith("waiting for the server"), state
        shown = run(*CLI, "stats", mounted.path).stdout.decode()
        assert f"pending_uploads: 1\npending.{location}.status: waiting for the server (" in shown, shown
        assert bucket.get_blob("work/new.bin") is None
    finally:
        proxy.up()
    landed_after = wait_for(lambda: bucket.get_blob("work/new.bin") is not None)
    print(f"landed {landed_after:.2f} s after the server came back")

    blob = bucket.get_blob("work/new.bin")
    assert blob.download_as_bytes() == content
    assert json.loads(blob.metadata["octue__id"]) == identity.decode()
    assert json.loads(blob.metadata["octue__tags"]) == {}
    assert blob.metadata["goog-reserved-posix-mode"] == "640"
    wait_for(lambda: pending(mounted) == {}, 10)
    assert sorted((mounted.cache_dir / "staging").glob("*.data")) == []
    assert f"landing: {location} uploaded after" in mounted.log


def test_an_existing_file_overwritten_offline_lands_over_the_generation_it_was_opened_at(mount, bucket, proxy):
    before = put_golden_csv(bucket, "readings.csv")
    mounted = mount("", *QUICK_LANDING)
    assert mounted.read_bytes("readings.csv") == CSV

    proxy.down(AWAY)
    try:
        save_offline(mounted, "readings.csv", b"a,b\n1,2\n", os.O_TRUNC)
        assert mounted.read_bytes("readings.csv") == b"a,b\n1,2\n"
    finally:
        proxy.up()
    wait_for(lambda: bucket.get_blob("readings.csv").download_as_bytes() == b"a,b\n1,2\n")

    landed = [request for request in proxy.requests if request.kind == "upload" and request.status == 200]
    assert len(landed) == 1 and f"ifGenerationMatch={before.generation}" in landed[0].path, landed
    blob = bucket.get_blob("readings.csv")
    for key in ("octue__id", "octue__tags", "octue__labels", "octue__timestamp"):
        assert json.loads(blob.metadata[key]) == json.loads(GOLDEN_CSV_METADATA[key]), key
    assert blob.metadata["owner"] == FOREIGN["owner"]


def test_a_name_another_client_took_meanwhile_keeps_theirs_and_ours_goes_to_lost_and_found(mount, bucket, proxy):
    mounted = mount("", *QUICK_LANDING)
    location = f"gs://{bucket.name}/clash.txt"
    assert mounted.call(os.listdir, mounted.path) == []

    proxy.down(AWAY)
    try:
        save_offline(mounted, "clash.txt", b"ours\n")
        # The close's FLUSH, then its RELEASE, have failed: the lander is the one to find the conflict (a
        # close finding one keeps the bytes staged, see docs: retried, and so set aside, 10 min later).
        wait_for_failed_uploads(mounted, location, 2)
        bucket.blob("clash.txt").upload_from_string(b"theirs\n")  # straight to the server
        theirs = bucket.get_blob("clash.txt").generation
    finally:
        proxy.up()
    wait_for(lambda: SET_ASIDE.search(mounted.log) is not None)

    line = SET_ASIDE.search(mounted.log)
    assert line.group(1) == location and f"(generation 0 → {theirs})" in line.group(0), line.group(0)
    kept = Path(line.group(2))
    assert kept.parent == mounted.cache_dir / "lost+found" and kept.read_bytes() == b"ours\n"
    assert bucket.get_blob("clash.txt").download_as_bytes() == b"theirs\n"
    assert bucket.get_blob("clash.txt").generation == theirs
    assert pending(mounted) == {}


def test_setfattr_while_the_server_is_away_fails_and_changes_nothing(mount, bucket, proxy):
    before = put_golden_csv(bucket, "readings.csv")
    mounted = mount("", *OFFLINE)
    path = mounted / "readings.csv"
    tags = mounted.call(os.getxattr, path, "user.octue.tags")

    proxy.down(AWAY)
    try:
        refused = run("setfattr", "-n", "user.octue.tags", "-v", '{"changed": true}', path)
        assert refused.returncode != 0 and b"Input/output error" in refused.stderr, refused.stderr
        with pytest.raises(OSError) as raised:
            mounted.call(os.setxattr, path, "user.octue.tag.changed", b"true")
        assert raised.value.errno == errno.EIO
    finally:
        proxy.up()

    assert mounted.call(os.getxattr, path, "user.octue.tags") == tags
    after = bucket.get_blob("readings.csv")
    assert (after.metadata, after.metageneration, after.generation) == (
        before.metadata,
        before.metageneration,
        before.generation,
    )
    assert pending(mounted) == {}


def test_a_file_unlinked_before_it_landed_is_never_uploaded(mount, bucket, proxy):
    mounted = mount("", *QUICK_LANDING)
    assert mounted.call(os.listdir, mounted.path) == []

    proxy.down(AWAY)
    try:
        save_offline(mounted, "gone.txt", b"never\n")
        save_offline(mounted, "kept.txt", b"landed\n")
        mounted.call(os.unlink, mounted / "gone.txt")
        assert list(pending(mounted)) == [f"gs://{bucket.name}/kept.txt"]
    finally:
        proxy.up()
    wait_for(lambda: bucket.get_blob("kept.txt") is not None)

    assert bucket.get_blob("gone.txt") is None
    assert [request.status for request in proxy.requests if request.kind == "upload" and request.status] == [200]
    assert sorted((mounted.cache_dir / "staging").glob("*.data")) == []
    assert mounted.call(os.listdir, mounted.path) == ["kept.txt"]


def test_an_upload_the_server_refuses_stays_staged_and_is_not_retried_in_a_loop(mount, bucket, proxy):
    """A 403 is not the server being away: the file waits (10 min) for its next attempt, shown in stats."""
    mounted = mount("", *QUICK_LANDING)
    location = f"gs://{bucket.name}/denied.txt"
    proxy.inject("POST", r"/upload/", 403, 1000)

    save_offline(mounted, "denied.txt", b"kept\n")
    wait_for_failed_uploads(mounted, location, 2)  # the close's FLUSH and RELEASE
    time.sleep(3)  # longer than the lander's waits for a server that is away (1, 2 s here)

    assert sum(1 for request in proxy.requests if request.kind == "upload") == 2, proxy.kinds()
    state = pending(mounted)[location]
    assert state.startswith("refused (") and "403" in state and "next attempt in" in state, state
    staged = sorted((mounted.cache_dir / "staging").glob("*.data"))
    assert [path.read_bytes() for path in staged] == [b"kept\n"]
    assert bucket.get_blob("denied.txt") is None
