"""The benchmarks run end to end at smoke sizes and measure every row.

Only that it runs: performance targets belong to the benchmark's report, not to the test suite,
so a missed target (MISS) passes here and only an unmeasurable row fails.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import unavailable

REPOSITORY = Path(__file__).resolve().parents[2]
RUN_TIMEOUT = 85
# A table row: number, workload, measured, baseline, ratio (optionally in %), target, PASS or MISS.
TABLE_ROW = re.compile(r"^(\d+)  .+?  (\d+\.\d+)( %)?  +[<>]= .+  (PASS|MISS)$", re.MULTILINE)


def require_fuse_and_server() -> None:
    if not os.path.exists("/dev/fuse"):
        unavailable("/dev/fuse does not exist")
    if shutil.which("fusermount3") is None:
        unavailable("fusermount3 is not installed (apt-get install fuse3)")
    try:
        import pyfuse3  # noqa: F401

        from octuefs.local_server import binary_path

        binary_path()
    except ImportError as error:
        unavailable(f"the benchmark needs pyfuse3 and the bundled server: {error}")


def run_bench(script: str, *arguments: str) -> subprocess.CompletedProcess[str]:
    """Run a benchmark; past the timeout, SIGTERM lets it unmount and stop its server before it is killed."""
    command = [sys.executable, str(REPOSITORY / "bench" / script), *arguments]
    process = subprocess.Popen(command, cwd=REPOSITORY, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        stdout, stderr = process.communicate(timeout=RUN_TIMEOUT)
    except subprocess.TimeoutExpired:
        process.send_signal(signal.SIGTERM)
        try:
            stdout, stderr = process.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            stdout, stderr = process.communicate()
        pytest.fail(f"bench/{script} --quick took over {RUN_TIMEOUT} s\n{stdout}\n{stderr[-3000:]}")
    return subprocess.CompletedProcess(command, process.returncode, stdout, stderr)


@pytest.mark.mount
@pytest.mark.timeout(RUN_TIMEOUT + 45)
@pytest.mark.parametrize(("script", "numbers"), [("read_bench.py", [1, 2, 3, 4, 5]), ("write_bench.py", [6, 7])])
def test_quick_bench_prints_every_row_with_a_ratio(script: str, numbers: list[int]) -> None:
    require_fuse_and_server()
    result = run_bench(script, "--quick")
    assert result.returncode == 0, f"{result.stdout}\n{result.stderr[-3000:]}"
    rows = {int(number): float(ratio) for number, ratio, _, _ in TABLE_ROW.findall(result.stdout)}
    assert sorted(rows) == numbers, result.stdout
    assert all(ratio > 0 for ratio in rows.values()), result.stdout
