"""The sidecar pattern with real containers: the octuefs container mounts the bucket inside a directory
shared with an application container, and the mount reaches the app through mount propagation
(rshared on the octuefs side, rslave on the app's: Kubernetes' Bidirectional and HostToContainer).
The app container has neither /dev/fuse nor any added capability."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.containers.conftest import Containers

pytestmark = pytest.mark.timeout(900)  # the first container test of a session may build the image


@pytest.fixture
def shared(containers: Containers, tmp_path: Path) -> Iterator[Path]:
    """A host directory that is its own shared mount, as a pod's emptyDir volume is to its containers."""
    path = tmp_path / "shared"
    path.mkdir()
    for command in (["mount", "--bind", path, path], ["mount", "--make-rshared", path]):
        result = subprocess.run(command, capture_output=True, timeout=10)
        assert result.returncode == 0, result.stderr.decode()
    containers.host_mounts.append(path)
    yield path


def test_app_container_reads_and_getfattrs_what_its_sidecar_mounted(containers, shared, bucket):
    bucket.blob("inputs/readings.csv").upload_from_string(b"t,speed\n0,3.5\n1,4.0\n")
    blob = bucket.blob("inputs/readings.csv")
    blob.metadata = {"octue__tags": json.dumps({"site": "north"}), "octue__labels": json.dumps(["raw"])}
    blob.patch()

    sidecar = containers.mount(bucket.name, "--volume", f"{shared}:/shared:rshared", mountpoint="/shared/bucket")
    app = containers.run("--volume", f"{shared}:/shared:rslave", entrypoint="sleep", arguments=("600",))

    assert app.sh("cat /shared/bucket/inputs/readings.csv") == b"t,speed\n0,3.5\n1,4.0\n"
    tags = app.sh("getfattr --only-values -n user.octue.tags /shared/bucket/inputs/readings.csv")
    assert json.loads(tags) == {"site": "north"}
    assert app.sh("getfattr --only-values -n user.octue.labels /shared/bucket/inputs/readings.csv") == b"raw"

    app.sh(
        "mkdir -p /shared/bucket/results && echo done > /shared/bucket/results/out.txt"
        " && setfattr -n user.octue.tag.by -v '\"app\"' /shared/bucket/results/out.txt"
    )
    written = bucket.get_blob("results/out.txt")
    assert written.download_as_bytes() == b"done\n"
    assert json.loads(written.metadata["octue__tags"]) == {"by": "app"}
    mounts = app.sh("cat /proc/self/mountinfo").decode()
    assert any(line.split()[4] == "/shared/bucket" and "fuse.octuefs" in line for line in mounts.splitlines())

    # The sidecar's SIGTERM unmounts, and the propagation takes the mount away from the app too.
    sidecar.stop()
    assert sidecar.state()["ExitCode"] == 0
    assert "unmounted /shared/bucket" in sidecar.log
    assert "fuse.octuefs" not in app.sh("cat /proc/self/mountinfo").decode()
