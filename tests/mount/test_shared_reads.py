"""Several programs reading one uncached object at once through one mount: every chunk is fetched
from the server exactly once however many handles want it (their reads and their readahead share the
fetch in flight), the bytes are right, and a shared fetch that fails fails every program waiting for
it with EIO while leaving nothing behind that would fail the next read.

The readers are processes started together; the proxy delays media replies so that all of them are
certainly waiting on fetches in flight, not on finished chunks (and also runs without delay).
"""

from __future__ import annotations

import os
import re
import subprocess
from collections import Counter
from pathlib import Path

import pytest

from octuefs.cache import DEFAULT_CHUNK_SIZE
from tests.mount.conftest import COMMAND_TIMEOUT, alive
from tests.support.http_proxy import Fault

pytestmark = pytest.mark.timeout(120)

MiB = 1024 * 1024
MEDIA = "alt=media"
READERS = 4
SIZE = 20 * MiB + 12345  # the last chunk is partial
RANGE = re.compile(r"bytes=(\d+)-(\d+)")


def run_at_once(command: list[str | Path], count: int, out_dir: Path) -> list[tuple[int, bytes, bytes]]:
    """Start `count` processes of `command` together; their exit codes, stdouts and stderrs once all
    are done."""
    processes = []
    try:
        for number in range(count):
            output = (out_dir / f"reader-{number}.out").open("wb")
            processes.append((subprocess.Popen(command, stdout=output, stderr=subprocess.PIPE), output))
        results = []
        for number, (process, output) in enumerate(processes):
            _, stderr = process.communicate(timeout=COMMAND_TIMEOUT)
            output.close()
            results.append((process.returncode, (out_dir / f"reader-{number}.out").read_bytes(), stderr))
        return results
    finally:
        for process, output in processes:
            output.close()
            if process.poll() is None:
                process.kill()
                process.wait(COMMAND_TIMEOUT)


def chunk_fetches(proxy, size: int) -> Counter[int]:
    """How many successful media GETs covered each chunk of the object (every GET must be ranged)."""
    covered: Counter[int] = Counter()
    for request in proxy.requests:
        if request.kind != "media" or request.status not in (200, 206):
            continue
        match = RANGE.fullmatch(request.range or "")
        assert match, f"an unranged media GET: {request.path} {request.range}"
        start, last = int(match.group(1)), min(int(match.group(2)), size - 1)
        covered.update(range(start // DEFAULT_CHUNK_SIZE, last // DEFAULT_CHUNK_SIZE + 1))
    return covered


@pytest.mark.parametrize("delay", [0.0, 0.3], ids=["as-fast-as-it-goes", "replies-delayed"])
def test_concurrent_cats_of_one_object_fetch_each_chunk_once(mount, bucket, proxy, tmp_path, delay):
    content = os.urandom(SIZE)
    bucket.blob("shared.bin").upload_from_string(content)
    mounted = mount()
    mounted.sh("stat", mounted / "shared.bin")
    proxy.reset()
    if delay:
        proxy.add(Fault("delay", "GET", MEDIA, remaining=None, lasting=COMMAND_TIMEOUT, seconds=delay))

    results = run_at_once(["cat", mounted / "shared.bin"], READERS, tmp_path)

    for code, data, stderr in results:
        assert code == 0, stderr
        assert data == content
    chunks = (SIZE + DEFAULT_CHUNK_SIZE - 1) // DEFAULT_CHUNK_SIZE
    fetches = chunk_fetches(proxy, SIZE)
    assert sorted(fetches) == list(range(chunks)), sorted(fetches)
    repeated = {index: count for index, count in fetches.items() if count != 1}
    assert not repeated, f"{sum(fetches.values())} fetches for {chunks} chunks; more than once: {repeated}"


def test_a_failed_shared_fetch_fails_every_reader_with_eio_and_the_next_read_fetches_afresh(
    mount, bucket, proxy, tmp_path
):
    content = os.urandom(4 * MiB + 999)
    bucket.blob("flaky.bin").upload_from_string(content)
    mounted = mount()
    mounted.sh("stat", mounted / "flaky.bin")
    proxy.reset()
    # Refused (a 403 is not retried), and late enough that every reader asks while the fetch is in flight.
    proxy.add(Fault("status", "GET", MEDIA, remaining=None, lasting=COMMAND_TIMEOUT, status=403, seconds=2.0))
    # Direct I/O: each reader's read reaches the daemon itself instead of waiting in the kernel for the
    # page another reader's read is filling (and then asking again once that one failed).
    read_first_chunk = ["dd", f"if={mounted / 'flaky.bin'}", "of=/dev/null", "bs=1M", "count=1", "iflag=direct"]

    results = run_at_once(read_first_chunk, READERS, tmp_path)

    for code, _, stderr in results:
        assert code != 0
        assert b"Input/output error" in stderr, stderr
    assert proxy.count("media") == 1, [request.range for request in proxy.requests]
    assert alive(mounted.pid)
    proxy.reset()

    assert mounted.sh("cat", mounted / "flaky.bin").stdout == content
    assert set(chunk_fetches(proxy, len(content)).values()) == {1}
