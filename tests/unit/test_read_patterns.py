"""How an open file tells random reads from a stream (octuefs/fs/handles.py), on a fake reader."""

from __future__ import annotations

from types import SimpleNamespace

from octuefs.fs.handles import ReadHandle

MiB = 1024 * 1024
PAGE = 4096


def handle() -> ReadHandle:
    reader = SimpleNamespace(chunk_size=MiB, chunk_count=256)
    return ReadHandle(inode=None, reader=reader, max_readahead=32 * MiB)  # type: ignore[arg-type]


def read(open_file: ReadHandle, offset: int, size: int) -> tuple[bool, list[tuple[int, int]]]:
    """What the mount does for each read: decide how to fetch it, then plan readahead after it."""
    scattered = open_file.looks_random(offset, size)
    return scattered, open_file.plan_readahead(offset, size)


def test_the_second_small_jump_in_a_row_is_random_and_prefetches_nothing():
    open_file = handle()
    assert read(open_file, 100 * MiB, PAGE) == (False, [])  # a first jump fetches its whole chunk
    assert read(open_file, 20 * MiB, PAGE) == (True, [])
    assert read(open_file, 70 * MiB + PAGE, PAGE) == (True, [])


def test_a_jump_followed_by_reads_in_sequence_is_not_random():
    open_file = handle()
    read(open_file, 0, 16 * 1024)
    assert read(open_file, 40 * MiB, PAGE) == (False, [])  # pages another reader brought in were skipped
    assert read(open_file, 40 * MiB + PAGE, 128 * 1024) == (False, [])


def test_large_reads_are_never_random():
    open_file = handle()
    read(open_file, 100 * MiB, MiB)
    assert read(open_file, 10 * MiB, MiB)[0] is False


def test_readahead_starts_only_past_two_chunks_in_sequence():
    open_file = handle()
    assert read(open_file, 30 * MiB, 516 * 1024)[1] == []  # h5py: two neighbouring 512 KiB HDF5 chunks
    assert read(open_file, 30 * MiB + 516 * 1024, MiB)[1] == []
    spans = read(open_file, 30 * MiB + 1540 * 1024, MiB)[1]
    assert spans and spans[0][0] == 32  # the chunk after the one this read ends in
