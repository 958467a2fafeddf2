"""The benchmark runs end to end at smoke sizes and measures every row on every filesystem.

Only that it runs: performance targets belong to the benchmark's report, not to the test suite,
so a missed target (MISS) passes here and only an unmeasured number fails.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REQUIRE_ALL, unavailable

REPOSITORY = Path(__file__).resolve().parents[2]
RUN_TIMEOUT = 60
ROWS = list(range(1, 13))
XATTR_ROWS = {9, 10}  # rclone has no Octue xattrs
# A line of the printed table: its number first, its result last.
TABLE_ROW = re.compile(r"^(\d+)  .*  (?:PASS|MISS \((?:direct|rclone|direct, rclone)\))$", re.MULTILINE)


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


def run_bench(*arguments: str) -> subprocess.CompletedProcess[str]:
    """Run the benchmark; past the timeout, SIGTERM lets it unmount and stop its server before it is killed."""
    command = [sys.executable, "-m", "bench", *arguments]
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
        pytest.fail(f"python -m bench --quick took over {RUN_TIMEOUT} s\n{stdout}\n{stderr[-3000:]}")
    return subprocess.CompletedProcess(command, process.returncode, stdout, stderr)


@pytest.mark.mount
@pytest.mark.timeout(RUN_TIMEOUT + 45)
def test_quick_bench_measures_every_row_on_every_filesystem(tmp_path: Path) -> None:
    require_fuse_and_server()
    has_rclone = shutil.which("rclone") is not None
    if not has_rclone and REQUIRE_ALL:
        pytest.fail("rclone is not installed (apt-get install rclone; OCTUEFS_REQUIRE_ALL=1 forbids skipping it)")
    results = tmp_path / "bench.json"
    result = run_bench("--quick", "--json", str(results))
    output = f"{result.stdout}\n{result.stderr[-3000:]}"
    assert result.returncode == 0, output
    rows = json.loads(results.read_text())["rows"]
    assert [row["number"] for row in rows] == ROWS, output
    for row in rows:
        assert row["result"].startswith(("PASS", "MISS")), output
        assert row["octuefs"]["value"] is not None and row["direct"]["value"] is not None, output
        assert row["ratio_direct"] >= 0, output
        if row["number"] in XATTR_ROWS:
            assert row["rclone"]["text"] == "n/a (no xattrs)", output
        elif has_rclone:
            assert row["rclone"]["value"] is not None and row["ratio_rclone"] >= 0, output
        else:
            assert row["rclone"]["text"] == "not measured (no rclone)", output
    assert [int(number) for number in TABLE_ROW.findall(result.stdout)] == ROWS, output
