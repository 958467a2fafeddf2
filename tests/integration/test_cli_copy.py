"""`octuefs cp` between a local folder and the real server: bytes and Octue metadata both cross."""

from __future__ import annotations

import fcntl
import json
import os
import pty
import struct
import subprocess
import sys
import termios

import pytest

from octuefs import Datafile
from octuefs.cli.main import main

MiB = 1024 * 1024


def test_upload_carries_the_local_octue_metadata(tmp_path, bucket, capsys):
    local = tmp_path / "readings.csv"
    local.write_bytes(b"t,v\n0,1\n")
    Datafile(local, tags={"site": "a"}, labels=["raw"]).update_metadata()
    identity = Datafile(local).id

    assert main(["cp", str(local), f"gs://{bucket.name}/in/"]) == 0

    blob = bucket.get_blob("in/readings.csv")
    assert blob.download_as_bytes() == b"t,v\n0,1\n"
    assert json.loads(blob.metadata["octue__id"]) == identity
    assert json.loads(blob.metadata["octue__tags"]) == {"site": "a"}
    output = capsys.readouterr()
    assert f"copied {local} to gs://{bucket.name}/in/readings.csv" in output.out
    assert output.err == ""  # no progress bar when stderr is not a terminal


def test_download_writes_the_objects_metadata_into_the_local_octue_file(tmp_path, bucket):
    cloud = Datafile(f"gs://{bucket.name}/a/b.bin", mode="w", tags={"run": 3}, labels=["final"])
    with cloud.open("wb") as file:
        file.write(os.urandom(3 * MiB))

    assert main(["cp", f"gs://{bucket.name}/a/b.bin", str(tmp_path)]) == 0

    local = Datafile(tmp_path / "b.bin")
    assert local.hash_value == Datafile(f"gs://{bucket.name}/a/b.bin").hash_value
    assert (local.id, local.tags, local.labels) == (cloud.id, {"run": 3}, {"final"})


def test_copy_needs_exactly_one_cloud_side(tmp_path, capsys):
    (tmp_path / "x").write_text("x")
    assert main(["cp", str(tmp_path / "x"), str(tmp_path / "y")]) != 0
    assert "exactly one of the two must be a gs:// path" in capsys.readouterr().err


@pytest.mark.timeout(60)
def test_a_terminal_sees_a_progress_bar(tmp_path, bucket, proxy):
    local = tmp_path / "big.bin"
    local.write_bytes(os.urandom(40 * MiB))
    controller, terminal = pty.openpty()
    fcntl.ioctl(terminal, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))  # a real terminal's size
    environment = {**os.environ, "STORAGE_EMULATOR_HOST": proxy.url}
    command = [sys.executable, "-m", "octuefs.cli.main", "cp", str(local), f"gs://{bucket.name}/big.bin"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=terminal, env=environment)
    os.close(terminal)
    shown = b""
    while chunk := _read(controller):
        shown += chunk
    assert process.wait(timeout=50) == 0
    assert b"100%" in shown and b"big.bin" in shown, shown
    assert bucket.get_blob("big.bin").size == 40 * MiB


def _read(fd: int) -> bytes:
    try:
        return os.read(fd, 65536)
    except OSError:  # the terminal's other end closed when the command exited
        return b""
