"""The systemd units shipped in systemd/ pass `systemd-analyze verify`."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import unavailable

UNITS = Path(__file__).parents[2] / "systemd"
OCTUEFS = str(Path(sys.executable).parent / "octuefs")


def verify(unit: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize(("name", "instance"), [("octuefs@.service", "octuefs@data.service"), ("mnt-data.mount", None)])
def test_unit_verifies(name: str, instance: str | None, tmp_path: Path) -> None:
    if shutil.which("systemd-analyze") is None:
        unavailable("systemd-analyze is not installed")
    text = (UNITS / name).read_text()
    assert "/usr/local/bin/octuefs" in text or "fuse.octuefs" in text
    unit = tmp_path / (instance or name)
    # The installed unit runs /usr/local/bin/octuefs (scripts/install-systemd.sh links it); verify
    # checks that the executable exists, so point it at this checkout's.
    unit.write_text(text.replace("/usr/local/bin/octuefs", OCTUEFS))
    result = verify(unit)
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip() == "", result.stderr


def test_service_is_a_notify_foreground_daemon() -> None:
    text = (UNITS / "octuefs@.service").read_text()
    assert "Type=notify" in text and "--foreground" in text
    assert "Restart=on-failure" in text and "ExecStop=/usr/local/bin/octuefs unmount" in text
