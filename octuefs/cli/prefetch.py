"""`octuefs prefetch PATH...`: warm a mount's cache for files or whole directories, with progress on a tty."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from tqdm import tqdm

BLOCK = 8 * 1024 * 1024


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("prefetch", help="read files (or directories) on a mount so later reads are local")
    parser.add_argument("paths", nargs="+", type=Path)
    parser.set_defaults(handler=run)


def files_under(paths: list[Path]) -> list[Path]:
    found = []
    for path in paths:
        if path.is_dir():
            found.extend(sorted(Path(root) / name for root, _, names in os.walk(path) for name in names))
        elif path.is_file():
            found.append(path)
        else:
            raise FileNotFoundError(f"{path}: no such file or directory to prefetch.")
    return found


def run(arguments: argparse.Namespace) -> int:
    files = files_under(arguments.paths)
    total = sum(path.stat().st_size for path in files)
    # Reading through the mount is what fills its chunk cache; the bar only shows on a terminal.
    with tqdm(total=total, unit="B", unit_scale=True, disable=not sys.stderr.isatty(), desc="prefetch") as bar:
        for path in files:
            with open(path, "rb") as file:
                while block := file.read(BLOCK):
                    bar.update(len(block))
    print(f"prefetched {len(files)} files, {total} bytes")
    return 0
