"""`octuefs demo` starts the bundled server, seeds the samples, shows them and stops cleanly."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest

from tests.conftest import unavailable


@pytest.mark.timeout(120)
def test_demo_mounts_samples_with_metadata_and_stops(gcs_server, tmp_path) -> None:
    if not os.path.exists("/dev/fuse"):
        unavailable("/dev/fuse does not exist")
    environment = {key: value for key, value in os.environ.items() if key != "STORAGE_EMULATOR_HOST"}
    mountpoint = tmp_path / "demo"
    result = subprocess.run(
        [sys.executable, "-m", "octuefs.cli.main", "demo", "--no-wait", "--mountpoint", str(mountpoint)],
        capture_output=True,
        text=True,
        timeout=100,
        env=environment,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    readings = next(line for line in lines if line.startswith("tables/readings.csv"))
    assert readings.split()[1:4] == ["24", "Ba+0Wg==", "2024-05-06"]
    assert "met-mast wind-turbine" in readings and "manufacturer=Vestas" in readings
    untagged = next(line for line in lines if line.startswith("notes/README.txt"))
    assert untagged.split()[3:5] == ["-", "-"]
    assert any(line.startswith("arrays/measurements.hdf5") and "simulated" in line for line in lines)
    assert f"Mounted gs://octuefs-demo at {mountpoint}" in result.stdout
    assert any(line.startswith("-rw-r--r--") and line.endswith("readings.csv") for line in lines)
    assert 'user.octue.labels="met-mast wind-turbine"' in lines
    assert 'user.octue.hash="Ba+0Wg=="' in lines
    assert not os.path.ismount(mountpoint)
    server_url = next(line for line in lines if "server is running at" in line).split(" at ")[1].split()[0]
    port = int(server_url.rsplit(":", 1)[1])
    with pytest.raises(ConnectionRefusedError), socket.create_connection(("127.0.0.1", port), timeout=2):
        pass
