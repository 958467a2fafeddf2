"""Reading through the mount: bytes equal to what the client wrote, nothing fetched before a read,
only the touched chunks fetched for a seek-and-read, h5py on a mounted file, and a failed fetch
answered with EIO without harming the daemon."""

from __future__ import annotations

import base64
import errno
import hashlib
import os
import sys

import h5py
import numpy as np
import pytest

from tests.mount.conftest import alive, run

pytestmark = pytest.mark.timeout(60)

MiB = 1024 * 1024
SMALL = b"t,speed\n0,3.5\n1,4.25\n2,5.0\n"


def md5_hex(blob) -> str:
    return base64.b64decode(blob.md5_hash).hex()


def media_bytes(proxy) -> int:
    return sum(request.response_bytes for request in proxy.requests if request.kind == "media")


def test_content_is_byte_equal_for_small_empty_and_large_objects(mount, bucket, tmp_path):
    large = os.urandom(10 * MiB + 12345)
    objects = {"small.csv": SMALL, "empty.bin": b"", "dir/large.bin": large}
    for name, content in objects.items():
        bucket.blob(name).upload_from_string(content)
    mounted = mount()

    for name, content in objects.items():
        assert mounted.sh("cat", mounted / name).stdout == content, name
        copy = tmp_path / f"copy-of-{name.replace('/', '-')}"
        mounted.sh("cp", mounted / name, copy)
        assert copy.read_bytes() == content, name
        digest = mounted.sh("md5sum", mounted / name).stdout.split()[0].decode()
        assert digest == hashlib.md5(content).hexdigest() == md5_hex(bucket.get_blob(name)), name
        assert mounted.read_bytes(name) == content, name


def test_browsing_and_attributes_download_nothing(mount, bucket, proxy):
    bucket.blob("data/big.bin").upload_from_string(os.urandom(3 * MiB))
    bucket.blob("data/small.csv").upload_from_string(SMALL)
    mounted = mount()
    proxy.reset()

    mounted.sh("ls", "-lR", mounted.path)
    mounted.sh("stat", mounted / "data/big.bin", mounted / "data/small.csv")
    mounted.sh("getfattr", "-d", mounted / "data/big.bin")
    mounted.sh("find", mounted.path, "-size", "+1M")

    assert proxy.requests, "the listing itself must have reached the server"
    assert "media" not in proxy.kinds(), proxy.kinds()


def test_dd_with_skip_fetches_only_a_small_part(mount, bucket, proxy):
    content = os.urandom(16 * MiB)
    bucket.blob("big.bin").upload_from_string(content)
    mounted = mount()
    mounted.sh("stat", mounted / "big.bin")
    proxy.reset()

    block = 2000  # 4 KiB blocks: an offset near the middle, inside chunk 7
    result = mounted.sh(
        "dd", f"if={mounted / 'big.bin'}", "of=/dev/stdout", "bs=4096", f"skip={block}", "count=1", "status=none"
    )

    assert result.stdout == content[block * 4096 : (block + 1) * 4096]
    ranges = [request.range for request in proxy.requests if request.kind == "media"]
    assert ranges, "the read must have fetched its chunk"
    assert all(ranges), "every fetch must be a ranged GET"
    assert 0 < media_bytes(proxy) < 4 * MiB, (media_bytes(proxy), ranges)


def test_h5py_reads_a_dataset_from_the_mount(mount, bucket, tmp_path):
    speed = np.linspace(0.0, 25.0, 200_000)
    direction = np.arange(200_000, dtype=np.int32) % 360
    local = tmp_path / "measurements.hdf5"
    with h5py.File(local, "w") as file:
        file.create_dataset("wind/speed", data=speed, chunks=(10_000,))
        file.create_dataset("wind/direction", data=direction)
        file["wind"].attrs["site"] = "met-mast-1"
    bucket.blob("arrays/measurements.hdf5").upload_from_filename(local)
    mounted = mount()
    copied = tmp_path / "copied.npz"
    # In a child process: h5py holds the GIL inside HDF5's syscalls, which would stop this process's
    # proxy from answering the daemon, so reading the mount from a thread here would deadlock.
    script = (
        "import sys, h5py, numpy as np\n"
        "with h5py.File(sys.argv[1], 'r') as file:\n"
        "    np.savez(sys.argv[2], speed=file['wind/speed'][:], direction=file['wind/direction'][1000:2000],\n"
        "             site=np.array(file['wind'].attrs['site']))\n"
    )

    mounted.sh(sys.executable, "-c", script, mounted / "arrays/measurements.hdf5", copied)

    with np.load(copied) as read:
        np.testing.assert_array_equal(read["speed"], speed)
        np.testing.assert_array_equal(read["direction"], direction[1000:2000])
        site = str(read["site"])
    assert site == "met-mast-1"


def test_failed_fetch_is_eio_and_later_reads_work(mount, bucket, proxy):
    bucket.blob("flaky.csv").upload_from_string(SMALL)
    mounted = mount()
    mounted.sh("stat", mounted / "flaky.csv")
    proxy.inject("GET", "alt=media", 403, 5)

    failed = run("cat", mounted / "flaky.csv")

    assert failed.returncode != 0
    assert b"Input/output error" in failed.stderr, failed.stderr
    assert "media" in proxy.kinds()
    with pytest.raises(OSError) as raised:
        mounted.read_bytes("flaky.csv")
    assert raised.value.errno == errno.EIO
    proxy.reset()  # the faults not used up by the failed reads

    assert mounted.sh("cat", mounted / "flaky.csv").stdout == SMALL
    assert mounted.read_bytes("flaky.csv") == SMALL
    assert alive(mounted.pid)
