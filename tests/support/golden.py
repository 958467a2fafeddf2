"""What the real Octue SDK 0.69.1 wrote, kept in the repository so a lone clone runs every golden test.

`tests/data/octue-golden.json` is a copy of objects and `.octue` files the Octue SDK 0.69.1
(`octue.resources.Datafile`) wrote to a GCS-compatible server, as captured for this project.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

GOLDEN_PATH = Path(__file__).parents[1] / "data" / "octue-golden.json"
GOLDEN: dict[str, Any] = json.loads(GOLDEN_PATH.read_text())
GOLDEN_OBJECTS: list[dict[str, Any]] = GOLDEN["objects"]
