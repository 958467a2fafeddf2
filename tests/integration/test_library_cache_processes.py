"""Several processes reading one object through the library's ranged reader, sharing one cache
directory (OCTUEFS_CACHE_DIR), as parallel h5py jobs on one machine do.

Processes do not share fetches in flight (each may fetch a chunk the others are fetching), but they
share what is on disk: every byte each one reads is right, the directory ends up holding each chunk
once, whole and with a valid checksum, no temp file is left behind, and a later process reads the
object from the directory without a single request for its bytes.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import google_crc32c
import pytest

from octuefs.cache import DEFAULT_CHUNK_SIZE, TRAILER_BYTES, ChunkKey
from octuefs.storage.gcs import get_storage
from tests.support.http_proxy import Fault

pytestmark = pytest.mark.timeout(120)

MiB = 1024 * 1024
PROCESSES = 4
READ_WHOLE_OBJECT = """
import hashlib, sys
import octuefs
from octuefs.reader import library_reader
from octuefs.storage.gcs import get_storage

octuefs.configure(endpoint=sys.argv[1])
stat = get_storage().stat(sys.argv[2], sys.argv[3])
reader = library_reader(stat)
data = b"".join(reader.read(offset, 300_000) for offset in range(0, stat.size, 300_000))
reader.cache.close()  # the chunk writes still waiting
sys.stdout.write(hashlib.md5(data).hexdigest())
"""


def read_in_processes(count: int, endpoint: str, bucket: str, name: str, cache_dir: Path) -> list[str]:
    """The md5 of the object as each of `count` processes, started together, read it."""
    environment = {**os.environ, "OCTUEFS_CACHE_DIR": str(cache_dir)}
    command = [sys.executable, "-c", READ_WHOLE_OBJECT, endpoint, bucket, name]
    processes = [
        subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=environment) for _ in range(count)
    ]
    digests = []
    try:
        for process in processes:
            stdout, stderr = process.communicate(timeout=60)
            assert process.returncode == 0, stderr.decode(errors="replace")
            digests.append(stdout.decode())
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait(10)
    return digests


def test_processes_sharing_a_cache_directory_read_right_and_store_each_chunk_once(bucket, proxy, tmp_path):
    content = os.urandom(6 * MiB + 4321)
    bucket.blob("arrays/shared.h5").upload_from_string(content)
    stat = get_storage().stat(bucket.name, "arrays/shared.h5")
    assert stat is not None
    # Slow replies, so that the processes certainly fetch and store the same chunks at the same time.
    proxy.add(Fault("delay", "GET", "alt=media", remaining=None, lasting=60, seconds=0.3))

    digests = read_in_processes(PROCESSES, proxy.url, bucket.name, stat.name, tmp_path)

    assert digests == [hashlib.md5(content).hexdigest()] * PROCESSES
    chunks = tmp_path / "library" / "chunks"
    assert not list(chunks.glob("*/*.tmp"))
    digest = ChunkKey.of(stat, DEFAULT_CHUNK_SIZE).digest
    stored = sorted(chunks.glob(f"*/{digest}.*"), key=lambda path: int(path.name.rpartition(".")[2]))
    assert len(stored) == (len(content) + DEFAULT_CHUNK_SIZE - 1) // DEFAULT_CHUNK_SIZE
    for index, path in enumerate(stored):
        data = path.read_bytes()
        expected = content[index * DEFAULT_CHUNK_SIZE : (index + 1) * DEFAULT_CHUNK_SIZE]
        assert data[:-TRAILER_BYTES] == expected, path.name
        assert data[-TRAILER_BYTES:] == google_crc32c.Checksum(expected).digest(), path.name
    proxy.reset()

    assert read_in_processes(1, proxy.url, bucket.name, stat.name, tmp_path) == digests[:1]
    assert "media" not in proxy.kinds(), proxy.kinds()
