"""The octuefs benchmark: every workload on octuefs, on `rclone mount` and with the direct client, in one run.

    python -m bench [--quick] [--json FILE] [--markdown] [--update-doc [FILE]]

Each row is octuefs against the google-cloud-storage client (the target) and against rclone
(`--vfs-cache-mode full`, which octuefs must not fall behind), all measured on one private
fake-gcs-server started by this run. It reports; it is not a test: it exits 0 when a target is
missed, non-zero only when an octuefs number could not be measured at all.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `python bench/run.py` finds `bench`

from bench import listings, reads, writes
from bench.harness import Workload, run_benchmark
from bench.plan import FULL, QUICK, TARGETS

WORKLOADS: list[tuple[list[int], str, Workload]] = [
    ([1, 2], "sequential read", reads.sequential_reads),
    ([3], "random reads", reads.random_reads),
    ([4], "time to first byte", reads.first_byte),
    ([5], "HDF5 slice bytes", reads.hdf5_bytes),
    ([6], "HDF5 slice time", reads.hdf5_time),
    ([7], "ls -l", listings.listing),
    ([8], "stat by name", listings.stat_by_name),
    ([9, 10], "xattrs", listings.xattrs),
    ([11], "large write", writes.large_write),
    ([12], "small files", writes.small_files),
]


def main(argv: list[str] | None = None) -> int:
    return run_benchmark(__doc__, WORKLOADS, TARGETS, FULL, QUICK, argv)


if __name__ == "__main__":
    sys.exit(main())
