"""What the real Octue SDK 0.69.1 wrote, kept in the repository so a lone clone runs every golden test.

`tests/data/octue-golden.json` is a copy of objects and `.octue` files the Octue SDK 0.69.1
(`octue.resources.Datafile`) wrote to a GCS-compatible server, as captured for this project.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

DATA = Path(__file__).parents[1] / "data"
GOLDEN_PATH = DATA / "octue-golden.json"
GOLDEN: dict[str, Any] = json.loads(GOLDEN_PATH.read_text())
GOLDEN_OBJECTS: list[dict[str, Any]] = GOLDEN["objects"]
# Also written by the Octue SDK 0.69.1 itself, each file's "about" saying how: set and datetime
# encodings in `.octue` files and custom metadata, and a serialised datafile.
GOLDEN_ENCODINGS: dict[str, Any] = json.loads((DATA / "octue-golden-encodings.json").read_text())
GOLDEN_SERIALISED: dict[str, Any] = json.loads((DATA / "octue-golden-serialised.json").read_text())
