"""One local process holding many files open for writing must not break the mount for anyone else.

The daemon starts with a low soft limit (as under systemd's default 1024) and raises it to the hard
limit; then its hard limit is lowered to 256 while it runs, and a second process opens 1,500 files
for writing. Staged files are opened only while they are worked on, so the other users' stat, cat
and create keep working, and every file lands once closed.
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys

import pytest

from tests.mount.conftest import COMMAND_TIMEOUT

pytestmark = pytest.mark.timeout(300)

FILES = 1500
LOW_LIMIT = 256

# Opens FILES files for writing on the mount, writes each its own bytes, says "open" and keeps them
# open until told to close them (a line on stdin).
HOLDER = """
import os, resource, sys
directory, count = sys.argv[1], int(sys.argv[2])
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
descriptors = []
for index in range(count):
    descriptor = os.open(os.path.join(directory, f"f{index}.txt"), os.O_WRONLY | os.O_CREAT, 0o644)
    os.write(descriptor, f"{index}\\n".encode())
    descriptors.append(descriptor)
print("open", flush=True)
sys.stdin.readline()
for descriptor in descriptors:
    os.close(descriptor)
print("closed", flush=True)
"""


def test_a_process_holding_many_files_open_leaves_the_mount_working_for_others(mount, bucket):
    bucket.blob("existing.txt").upload_from_string(b"existing\n")
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (LOW_LIMIT, hard))
    try:
        mounted = mount()
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    assert resource.prlimit(mounted.pid, resource.RLIMIT_NOFILE) == (hard, hard), "the soft limit was not raised"
    resource.prlimit(mounted.pid, resource.RLIMIT_NOFILE, (LOW_LIMIT, LOW_LIMIT))
    (mounted / "many").mkdir()

    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(mounted / "many"), str(FILES)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline() == "open\n", holder.stderr.read() if holder.poll() is not None else ""
        assert len(os.listdir(f"/proc/{mounted.pid}/fd")) < LOW_LIMIT // 2, "the daemon holds a descriptor per file"
        # Everyone else meanwhile: stat, cat, create.
        assert mounted.call(os.stat, mounted / "existing.txt").st_size == 9
        assert mounted.sh("cat", mounted / "existing.txt").stdout == b"existing\n"
        mounted.sh("sh", "-c", f"echo other > {mounted / 'other.txt'}")
        assert bucket.blob("other.txt").download_as_bytes() == b"other\n"
        holder.stdin.write("close\n")
        holder.stdin.flush()
        assert holder.stdout.readline() == "closed\n", holder.stderr.read()
        assert holder.wait(COMMAND_TIMEOUT) == 0
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait()

    landed = {blob.name: blob for blob in bucket.client.list_blobs(bucket, prefix="many/f")}
    assert sorted(landed) == sorted(f"many/f{index}.txt" for index in range(FILES))
    for index in range(0, FILES, 97):
        assert landed[f"many/f{index}.txt"].download_as_bytes() == f"{index}\n".encode()
    assert "Traceback" not in mounted.log and "unexpected error" not in mounted.log, mounted.log[-3000:]
