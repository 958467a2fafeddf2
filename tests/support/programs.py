"""Run a small Python program in its own interpreter against the test server, as a user's script would run.

The documentation programs run in octuefs's interpreter; the live cross-check runs programs in the real
Octue SDK's (`.venv-octue`). Inputs go in on stdin and the result comes back on stdout, both as JSON with
Octue's tagged datetimes and sets, which both SDKs decode.
"""

from __future__ import annotations

import os
import subprocess
import textwrap
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from octuefs.metadata.values import dumps, loads

REPOSITORY = Path(__file__).parents[2]


def run_program(
    python: str | os.PathLike[str],
    program: str,
    cwd: Path,
    env: Mapping[str, str],
    inputs: Any = None,
) -> Any:
    """The JSON value the program printed last (None if it printed nothing); its stderr if it failed."""
    done = subprocess.run(
        [os.fspath(python), "-c", textwrap.dedent(program)],
        input=dumps(inputs),
        cwd=cwd,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    output = done.stdout.strip()
    return loads(output.splitlines()[-1]) if output else None
