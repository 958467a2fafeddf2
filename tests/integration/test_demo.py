"""`octuefs demo` starts the bundled server, seeds the samples, shows them and stops cleanly."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest

from octuefs import Datafile
from tests.conftest import unavailable
from tests.mount.conftest import is_mount, processes_mentioning


def run_demo(*arguments: str, timeout: float = 100, **environment: str) -> subprocess.CompletedProcess[str]:
    """`octuefs demo --no-wait ARGUMENTS`, with its own server (not the suite's), and `environment` added."""
    variables = {key: value for key, value in os.environ.items() if key != "STORAGE_EMULATOR_HOST"}
    return subprocess.run(
        [sys.executable, "-m", "octuefs.cli.main", "demo", "--no-wait", *arguments],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**variables, **environment},
    )


@pytest.mark.timeout(120)
def test_demo_mounts_samples_with_metadata_and_stops(gcs_server, tmp_path) -> None:
    if not os.path.exists("/dev/fuse"):
        unavailable("/dev/fuse does not exist")
    temporary = tmp_path / "tmp"  # where the demo makes its cache folder, to see that it goes
    temporary.mkdir()
    mountpoint = tmp_path / "demo"
    result = run_demo("--mountpoint", str(mountpoint), TMPDIR=str(temporary))
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
    assert not list(temporary.glob("octuefs-demo-cache-*")), "the demo left its cache folder behind"
    server_url = next(line for line in lines if "server is running at" in line).split(" at ")[1].split()[0]
    port = int(server_url.rsplit(":", 1)[1])
    with pytest.raises(ConnectionRefusedError), socket.create_connection(("127.0.0.1", port), timeout=2):
        pass


@pytest.mark.timeout(120)
def test_demo_seeds_from_a_folder_with_its_octue_metadata(gcs_server, tmp_path) -> None:
    data = tmp_path / "data"
    (data / "runs").mkdir(parents=True)
    (data / "runs" / "a.csv").write_text("x\n1\n")
    (data / "notes.txt").write_text("hello\n")
    Datafile(data / "runs" / "a.csv", tags={"run": 7}, labels={"Field"}).update_metadata()
    result = run_demo("--no-mount", "--data", str(data))
    assert result.returncode == 0, result.stderr
    assert "seeding" not in result.stderr  # the progress bar is for terminals only
    rows = {line.split()[0]: line for line in result.stdout.splitlines() if line.startswith(("runs/", "notes"))}
    assert sorted(rows) == ["notes.txt", "runs/a.csv"]
    assert "field" in rows["runs/a.csv"] and "run=7" in rows["runs/a.csv"]
    assert not any(".octue" in line for line in result.stdout.splitlines() if line.startswith("runs/"))

    missing = run_demo("--data", str(tmp_path / "nowhere"), timeout=60)
    assert missing.returncode == 1 and "nowhere" in missing.stderr


@pytest.mark.timeout(120)
def test_demo_over_a_symlinked_mountpoint_leaves_no_daemon(gcs_server, tmp_path) -> None:
    if not os.path.exists("/dev/fuse"):
        unavailable("/dev/fuse does not exist")
    real, link = tmp_path / "real", tmp_path / "link"
    real.mkdir()
    link.symlink_to(real)
    try:
        result = run_demo("--mountpoint", str(link))
        assert result.returncode == 0, result.stderr
        assert f"Mounted gs://octuefs-demo at {real}" in result.stdout
        assert not is_mount(real)
        assert processes_mentioning(str(real)) == processes_mentioning(str(link)) == []
    finally:
        subprocess.run(["fusermount3", "-u", "-z", str(real)], capture_output=True, timeout=10)
