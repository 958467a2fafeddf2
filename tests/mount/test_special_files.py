"""FIFOs, sockets and device nodes on a real mount: made by mkfifo, mknod and bind, kept in the bucket
as objects carrying their type, and working locally as the kernel defines them. Device nodes open
nothing: the mount is always `nodev`, whoever wrote the bucket.
"""

from __future__ import annotations

import os
import socket
import stat
import subprocess
import sys
import textwrap

import pytest

from tests.mount.conftest import COMMAND_TIMEOUT

pytestmark = pytest.mark.timeout(90)


def test_mkfifo_carries_bytes_between_a_writer_and_a_reader_process(mount, bucket):
    mounted = mount()
    mounted.sh("mkfifo", "-m", "600", mounted / "pipe")
    assert stat.S_ISFIFO(mounted.call(os.lstat, mounted / "pipe").st_mode)

    reader = subprocess.Popen(["cat", mounted / "pipe"], stdout=subprocess.PIPE)
    writer = subprocess.Popen(["sh", "-c", 'seq 1 20000 > "$1"', "sh", mounted / "pipe"])
    out, _ = reader.communicate(timeout=COMMAND_TIMEOUT)
    assert writer.wait(timeout=COMMAND_TIMEOUT) == 0
    assert out == "".join(f"{number}\n" for number in range(1, 20001)).encode()

    blob = bucket.get_blob("pipe")
    assert (blob.size, blob.metadata["goog-reserved-posix-mode"]) == (0, "10600")
    again = mount()
    assert again.sh("stat", "-c", "%F %a", again / "pipe").stdout == b"fifo 600\n"


def test_a_socket_is_bound_and_connected_to_on_the_mount(mount, bucket):
    mounted = mount()
    path = mounted / "service.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as server:
        mounted.call(server.bind, str(path))
        server.listen(1)
        client = subprocess.Popen(
            [sys.executable, "-c", textwrap.dedent("""
                import socket, sys
                with socket.socket(socket.AF_UNIX) as client:
                    client.connect(sys.argv[1])
                    client.sendall(b"hello over the mount")
            """), str(path)]
        )  # fmt: skip
        server.settimeout(COMMAND_TIMEOUT)
        connection, _ = server.accept()
        with connection:
            assert connection.recv(100) == b"hello over the mount"
        assert client.wait(timeout=COMMAND_TIMEOUT) == 0
    assert stat.S_ISSOCK(mounted.call(os.lstat, path).st_mode)
    assert stat.S_IFMT(int(bucket.get_blob("service.sock").metadata["goog-reserved-posix-mode"], 8)) == stat.S_IFSOCK
    mounted.sh("rm", path)
    assert bucket.get_blob("service.sock") is None


def test_a_device_node_keeps_its_number_but_opens_nothing(mount, bucket):
    mounted = mount()
    mounted.sh("mknod", "-m", "666", mounted / "null", "c", "1", "3")

    assert mounted.sh("stat", "-c", "%F %t %T", mounted / "null").stdout == b"character special file 1 3\n"
    opened = subprocess.run(["cat", mounted / "null"], capture_output=True, timeout=COMMAND_TIMEOUT)
    assert opened.returncode != 0 and b"Permission denied" in opened.stderr
    assert "nodev" in mounted.sh("findmnt", "-n", "-o", "OPTIONS", mounted.path).stdout.decode().split(",")
    assert bucket.get_blob("null").metadata["octuefs-posix-rdev"] == str(os.makedev(1, 3))


def test_a_device_node_from_the_bucket_is_shown_but_opens_nothing(mount, bucket):
    """Anyone who can write the bucket can store a device node pointing at a disk: it must grant nothing."""
    blob = bucket.blob("disk")
    blob.metadata = {"goog-reserved-posix-mode": "60666", "octuefs-posix-rdev": str(os.makedev(8, 0))}
    blob.upload_from_string(b"")
    mounted = mount("", "--trust-stored-owners")

    assert mounted.sh("stat", "-c", "%F %t %T", mounted / "disk").stdout == b"block special file 8 0\n"
    opened = subprocess.run(["head", "-c", "1", mounted / "disk"], capture_output=True, timeout=COMMAND_TIMEOUT)
    assert opened.returncode != 0 and b"Permission denied" in opened.stderr


def test_chmod_keeps_a_fifo_a_fifo_and_tar_keeps_special_files(mount, bucket, tmp_path):
    mounted = mount()
    mounted.sh("mkfifo", mounted / "pipe")
    mounted.sh("chmod", "640", mounted / "pipe")
    assert mounted.sh("stat", "-c", "%F %a", mounted / "pipe").stdout == b"fifo 640\n"
    assert bucket.get_blob("pipe").metadata["goog-reserved-posix-mode"] == "10640"

    mounted.sh("mknod", mounted / "tty", "c", "4", "1")
    mounted.sh("tar", "-C", mounted.path, "-cf", tmp_path / "special.tar", "pipe", "tty")
    out = tmp_path / "out"
    out.mkdir()
    subprocess.run(["tar", "-C", out, "-xpf", tmp_path / "special.tar"], check=True, timeout=COMMAND_TIMEOUT)
    assert stat.S_ISFIFO(os.lstat(out / "pipe").st_mode)
    assert os.lstat(out / "tty").st_rdev == os.makedev(4, 1)
