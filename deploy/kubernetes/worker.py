"""One worker of the indexed Job (job.yaml): its share of a Dataset, read through the octuefs mount,
and a result per file written back through the mount with Octue metadata.

The share is fixed by the file's place in the Dataset's sorted listing (`index::count`), so the N
workers split the files without talking to each other, and a retried index redoes the same files.
Metadata is set as `user.octue.*` attributes on the mount: the mount stores it on the object with
the same generation precondition as its bytes, so a result never carries another writer's tags.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path

from octuefs.resources import Datafile, Dataset


def share(files: list[Datafile], index: int, count: int) -> list[Datafile]:
    return sorted(files, key=lambda datafile: datafile.name)[index::count]


def summary(datafile: Datafile) -> dict[str, object]:
    with datafile.open("rb") as file:
        content = file.read()
    return {"name": datafile.name, "bytes": len(content), "lines": content.count(b"\n"),
            "sha256": hashlib.sha256(content).hexdigest()}  # fmt: skip


def write_result(results: Path, datafile: Datafile, index: int) -> Path:
    """Bytes first, then metadata: the file is uploaded at close (close-to-open), its tags after that."""
    target = results / f"{datafile.name}.json"
    target.write_text(json.dumps(summary(datafile)) + "\n")
    os.setxattr(target, "user.octue.tags", json.dumps({"source": datafile.name, "worker": index}).encode())
    os.setxattr(target, "user.octue.labels", b"result")
    return target


def main() -> int:
    mountpoint = Path(os.environ.get("OCTUEFS_MOUNTPOINT", "/mnt/bucket"))
    dataset = Dataset(mountpoint / os.environ["DATASET"], recursive=False)
    results = mountpoint / os.environ.get("RESULTS", "results")
    index, count = int(os.environ["JOB_COMPLETION_INDEX"]), int(os.environ["JOB_COMPLETIONS"])
    results.mkdir(parents=True, exist_ok=True)
    for datafile in share(list(dataset.files), index, count):
        print(f"worker {index}/{count}: {datafile.name} -> {write_result(results, datafile, index)}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
