"""`octuefs info PATH`: a datafile's identity, hash, size and Octue metadata."""

from __future__ import annotations

import argparse
import json
from typing import Any

from octuefs.datafile import Datafile
from octuefs.metadata.values import to_jsonable


def describe(datafile: Datafile) -> dict[str, Any]:
    return {
        "path": datafile.path,
        "id": datafile.id,
        "hash": datafile.hash_value,
        "size": datafile.size_bytes,
        "timestamp": datafile.timestamp.isoformat() if datafile.timestamp else None,
        "tags": to_jsonable(datafile.tags),
        "labels": sorted(datafile.labels),
    }


def render_text(description: dict[str, Any]) -> str:
    lines = [f"{key + ':':<11}{value}" for key, value in description.items() if key not in ("tags", "labels")]
    lines.append(f"{'labels:':<11}{' '.join(description['labels'])}")
    lines.append(f"{'tags:':<11}{json.dumps(description['tags'], ensure_ascii=False)}")
    return "\n".join(lines)


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("info", help="show a datafile's id, hash, size, timestamp, tags and labels")
    parser.add_argument("path", help="a local file or gs://bucket/name")
    parser.add_argument("--json", action="store_true", help="print JSON")
    parser.set_defaults(handler=run)


def existing_datafile(path: str) -> Datafile:
    """The datafile at `path`, which must exist locally or in the cloud (one metadata request for gs://)."""
    datafile = Datafile(path)
    if datafile.size_bytes is None:
        raise FileNotFoundError(f"{path}: no such file or object.")
    return datafile


def run(arguments: argparse.Namespace) -> int:
    description = describe(existing_datafile(arguments.path))
    print(json.dumps(description, indent=2) if arguments.json else render_text(description))
    return 0
