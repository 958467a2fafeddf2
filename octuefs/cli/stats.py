"""`octuefs stats MOUNTPOINT`: what a running mount has done (read from its root's stats attribute)."""

from __future__ import annotations

import argparse
import json
import os
from typing import Any

from octuefs.fs import xattrs


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "stats", help="server state, requests, bytes, cache use, errors and pending uploads of a mount"
    )
    parser.add_argument("mountpoint")
    parser.add_argument("--json", action="store_true", help="print JSON")
    parser.set_defaults(handler=run)


def _lines(values: dict[str, Any], prefix: str = "") -> list[str]:
    lines = []
    for key, value in values.items():
        if isinstance(value, dict):
            lines.extend(_lines(value, f"{prefix}{key}.") or [f"{prefix}{key}: -"])
        else:
            lines.append(f"{prefix}{key}: {value}")
    return lines


def run(arguments: argparse.Namespace) -> int:
    try:
        statistics = json.loads(os.getxattr(arguments.mountpoint, xattrs.STATS))
    except OSError as error:
        raise OSError(error.errno, f"{arguments.mountpoint}: not an octuefs mount ({error.strerror})") from None
    print(json.dumps(statistics, indent=2) if arguments.json else "\n".join(_lines(statistics)))
    return 0
