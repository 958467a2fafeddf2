"""The in-memory storage's faults, what it keeps of GCS that the emulator does not, and the engine
tested against it without a server (its GCS semantics are checked by test_storage_contract.py)."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from octuefs.cloud_metadata import MAX_CONFLICT_RETRIES
from octuefs.datafile import Datafile
from octuefs.errors import PreconditionConflict, StorageError
from octuefs.storage.gcs import get_storage, serving
from octuefs.storage.memory import SESSION_GRANULE, MemoryStorage
from octuefs.storage.paths import CloudLocation
from octuefs.uploads.feed import Feed

BUCKET = "memory-bucket"


@pytest.fixture
def memory() -> Iterator[MemoryStorage]:
    storage = MemoryStorage()
    storage.create_bucket(BUCKET)
    with serving(storage):
        yield storage


def put(storage: MemoryStorage, tmp_path: Path, name: str, data: bytes, metadata: dict[str, str] | None = None):
    source = tmp_path / "source"
    source.write_bytes(data)
    return storage.upload(BUCKET, name, source, "text/plain", metadata or {}, 0)


def test_serving_makes_it_the_process_storage(memory) -> None:
    assert get_storage() is memory


def test_a_null_in_a_metadata_patch_removes_the_key(memory, tmp_path) -> None:
    """As GCS does; fake-gcs-server stores an empty string instead, so the contract tests cannot check it."""
    stat = put(memory, tmp_path, "f.txt", b"x", {"keep": "1", "drop": "2"})
    assert memory.patch_metadata(stat, {"drop": None}).metadata == {"keep": "1"}


def test_a_failure_injected_for_n_calls_changes_nothing_then_stops(memory, tmp_path) -> None:
    fault = memory.fail("upload", StorageError("gs://memory-bucket/f.txt: server refused to upload it: 503"), count=2)

    for _ in range(2):
        with pytest.raises(StorageError, match="503"):
            put(memory, tmp_path, "f.txt", b"x")
        assert memory.stat(BUCKET, "f.txt") is None
    stored = put(memory, tmp_path, "f.txt", b"x")

    assert stored.size == 1 and fault.remaining == 0
    assert memory.stats.snapshot()["failed_requests"] == {"upload": 2}
    assert memory.calls == ["create_bucket", "upload", "stat", "upload", "stat", "upload"]


def test_a_lost_reply_is_raised_after_the_call_acted(memory, tmp_path) -> None:
    memory.lose_reply("upload")

    with pytest.raises(StorageError, match="lost"):
        put(memory, tmp_path, "f.txt", b"mine", {"k": "v"})

    stored = memory.require_stat(BUCKET, "f.txt")
    assert memory.own_lost_upload(BUCKET, "f.txt", stored.crc32c, 4, {"k": "v"}) == stored


def test_a_slow_call_is_held_before_it_acts(memory, tmp_path) -> None:
    memory.slow("stat", 0.3, count=1)
    started = time.monotonic()
    assert memory.stat(BUCKET, "nothing") is None
    assert time.monotonic() - started >= 0.3
    started = time.monotonic()
    memory.stat(BUCKET, "nothing")
    assert time.monotonic() - started < 0.3


def test_faults_can_be_cleared(memory) -> None:
    memory.fail("stat", StorageError("down"), count=None)
    with pytest.raises(StorageError):
        memory.stat(BUCKET, "x")
    memory.clear_faults()
    assert memory.stat(BUCKET, "x") is None


def test_session_parts_must_be_whole_granules_in_order(memory, tmp_path) -> None:
    source = tmp_path / "source"
    source.write_bytes(os.urandom(2 * SESSION_GRANULE))
    upload = memory.start_upload(CloudLocation(BUCKET, "f.bin"), "application/octet-stream", {}, 0)
    with open(source, "rb") as file:
        with pytest.raises(StorageError, match="no multiple"):
            upload.send(file.fileno(), 1000)
        upload.sent = SESSION_GRANULE
        with pytest.raises(StorageError, match="out of order"):
            upload.send(file.fileno(), 2 * SESSION_GRANULE)


def test_a_metadata_race_is_merged_and_retried_by_the_engine(memory, tmp_path) -> None:
    local = tmp_path / "f.csv"
    local.write_text("a\n")
    Datafile(local, tags={"first": 1}).upload(f"gs://{BUCKET}/f.csv")
    ours, theirs = Datafile(f"gs://{BUCKET}/f.csv"), Datafile(f"gs://{BUCKET}/f.csv")
    theirs.add_tags(theirs=2)
    theirs.update_metadata()

    ours.add_tags(ours=3)
    ours.update_metadata()

    assert dict(Datafile(f"gs://{BUCKET}/f.csv").tags) == {"first": 1, "theirs": 2, "ours": 3}
    assert memory.stats.snapshot()["failed_requests"] == {"patch_metadata": 1}


def test_the_engine_gives_up_after_its_retries_of_a_metadata_race(memory, tmp_path) -> None:
    local = tmp_path / "f.csv"
    local.write_text("a\n")
    Datafile(local).upload(f"gs://{BUCKET}/f.csv")
    datafile = Datafile(f"gs://{BUCKET}/f.csv")
    memory.fail("patch_metadata", PreconditionConflict("gs://memory-bucket/f.csv: changed"), count=None)

    datafile.add_tags(k=1)
    with pytest.raises(PreconditionConflict, match=r"f\.csv"):
        datafile.update_metadata()

    assert memory.calls.count("patch_metadata") == MAX_CONFLICT_RETRIES + 1


def fed(path: Path, data: bytes, executor: ThreadPoolExecutor) -> tuple[Feed, Datafile]:
    """A new file's feed, with its bytes written and its whole parts sent by the executor's one thread."""
    path.write_bytes(data)
    datafile = Datafile.for_new_object(BUCKET, "big.bin")
    request = datafile.content_upload_request()
    feed = Feed(get_storage(), path, SESSION_GRANULE, lambda: request, executor)
    feed.written(0, len(data))
    executor.submit(lambda: None).result()  # after the feed's job: finish stops a feed not yet begun
    return feed, datafile


def test_a_feed_whose_last_reply_is_lost_returns_the_object_it_made(memory, tmp_path) -> None:
    data = os.urandom(2 * SESSION_GRANULE + 5)
    memory.lose_reply("finish_session")
    with ThreadPoolExecutor(1) as executor:
        feed, datafile = fed(tmp_path / "staged", data, executor)
        made = feed.finish(datafile.content_upload_request())

    # One part of two granules while written, the rest at finish, then the stat that found it made.
    assert memory.calls == ["create_bucket", "start_upload", "send_part", "finish_session", "stat"]
    assert made == memory.require_stat(BUCKET, "big.bin")
    assert memory.read_range(made, 0, made.size) == data


def test_a_feed_whose_part_failed_is_cancelled_and_left_to_a_whole_upload(memory, tmp_path) -> None:
    memory.fail("send_part", StorageError("gs://memory-bucket/big.bin: server refused to upload a part: 503"))
    with ThreadPoolExecutor(1) as executor:
        feed, datafile = fed(tmp_path / "staged", os.urandom(SESSION_GRANULE + 5), executor)
        assert feed.finish(datafile.content_upload_request()) is None

    assert memory.calls[-1] == "cancel_session"
    assert memory.stat(BUCKET, "big.bin") is None
