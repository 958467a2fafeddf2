"""WriteTracker's tables, changed by worker threads (opens staging files) while the trio loop reads them.

Races too narrow to provoke through a mount: here the tracker runs on a real staging directory, its
storage a stand-in (new files never reach it), with thread switches forced as often as possible.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterator
from types import SimpleNamespace

import pytest

from octuefs.datafile import Datafile
from octuefs.fs.writes import KeyedLocks, WriteTracker
from octuefs.staging import StagingArea

FILES = 400


@pytest.fixture
def tracker(tmp_path) -> Iterator[WriteTracker]:
    storage = SimpleNamespace(settings=SimpleNamespace(upload_chunk_size=8 * 1024 * 1024))
    writes = WriteTracker(StagingArea(tmp_path / "staging"), None, storage, 1024 * 1024)  # type: ignore[arg-type]
    try:
        yield writes
    finally:
        for ino in list(writes.by_ino):
            writes.finish(ino)


@pytest.fixture
def frequent_switches() -> Iterator[None]:
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        yield
    finally:
        sys.setswitchinterval(interval)


def begin_new_files(writes: WriteTracker, first: int) -> None:
    for ino in range(first, first + FILES):
        writes.begin(ino, Datafile.for_new_object("bucket", f"file-{ino}"), True)


def test_named_files_are_listed_while_opens_add_to_them(tracker, frequent_switches):
    """The loop lists files being written (readdir, rmdir, rename) while opens add theirs in threads."""
    opener = threading.Thread(target=begin_new_files, args=(tracker, 1000))
    opener.start()
    seen = 0
    while opener.is_alive():
        seen = max(seen, len(tracker.named()))
    opener.join()
    assert sorted(tracker.named()) == list(range(1000, 1000 + FILES))
    assert seen > 0


def test_begin_keeps_no_lock_for_files_no_longer_opening(tracker):
    begin_new_files(tracker, 1)
    for ino in range(1, 1 + FILES):
        tracker.finish(ino)
    assert len(tracker.begin_locks) == 0


def test_keyed_locks_exclude_holders_of_one_key_and_are_dropped_after_the_last(frequent_switches):
    locks = KeyedLocks()
    inside: dict[int, int] = {1: 0, 2: 0}
    overlaps: list[int] = []

    def hold(key: int) -> None:
        for _ in range(200):
            with locks.holding(key):
                inside[key] += 1
                if inside[key] > 1:
                    overlaps.append(key)
                inside[key] -= 1

    threads = [threading.Thread(target=hold, args=(key,)) for key in (1, 1, 2, 2, 1)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert overlaps == []
    assert len(locks) == 0
