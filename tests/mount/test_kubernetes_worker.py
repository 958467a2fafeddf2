"""deploy/kubernetes/worker.py, the indexed Job's worker, run as the Job runs it (one process per
JOB_COMPLETION_INDEX) against a real mount: together the workers cover the Dataset exactly once and
every result lands with its metadata."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from octuefs.resources import Datafile
from tests.mount.conftest import COMMAND_TIMEOUT

pytestmark = pytest.mark.timeout(120)

WORKER = Path(__file__).parents[2] / "deploy" / "kubernetes" / "worker.py"
WORKERS = 3


def test_indexed_workers_share_the_dataset_and_write_tagged_results(mount, bucket):
    inputs = {f"reading-{number:02d}.csv": f"t,v\n{number},{number * 2}\n".encode() for number in range(7)}
    for name, content in inputs.items():
        bucket.blob(f"inputs/{name}").upload_from_string(content)
    mounted = mount()

    for index in range(WORKERS):
        environment = {
            **os.environ,
            "OCTUEFS_MOUNTPOINT": str(mounted.path),
            "DATASET": "inputs",
            "RESULTS": "results",
            "JOB_COMPLETION_INDEX": str(index),
            "JOB_COMPLETIONS": str(WORKERS),
        }
        result = subprocess.run([sys.executable, WORKER], capture_output=True, env=environment, timeout=COMMAND_TIMEOUT)
        assert result.returncode == 0, result.stderr.decode()

    # The first worker's mkdir made the folder's placeholder object, results/.
    results = {blob.name: blob for blob in bucket.list_blobs(prefix="results/") if blob.name != "results/"}
    assert set(results) == {f"results/{name}.json" for name in inputs}
    workers = {}
    for name, content in inputs.items():
        blob = results[f"results/{name}.json"]
        summary = json.loads(blob.download_as_bytes())
        assert summary == {
            "name": name,
            "bytes": len(content),
            "lines": 2,
            "sha256": hashlib.sha256(content).hexdigest(),
        }
        stored = Datafile(f"gs://{bucket.name}/{blob.name}")
        assert stored.tags["source"] == name and stored.labels == {"result"}
        workers[name] = stored.tags["worker"]
    assert workers == {name: position % WORKERS for position, name in enumerate(sorted(inputs))}
