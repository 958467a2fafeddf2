"""Entry point of the `octuefs` command: parse, dispatch, and turn errors into one clear line."""

from __future__ import annotations

import argparse
import logging
import sys

from octuefs import __version__
from octuefs.cli import copy, demo, info, meta, mount, prefetch, stats
from octuefs.errors import OctuefsError
from octuefs.storage.gcs import configure


def build_parser() -> tuple[argparse.ArgumentParser, frozenset[str]]:
    """The parser, and the names of its commands (to recognise the mount-helper form)."""
    parser = argparse.ArgumentParser(prog="octuefs", description="Cloud Storage buckets as files, with Octue metadata.")
    parser.add_argument("--version", action="version", version=f"octuefs {__version__}")
    parser.add_argument("--endpoint", help="GCS-compatible endpoint URL (default: STORAGE_EMULATOR_HOST, else GCS)")
    parser.add_argument("--debug", action="store_true", help="log every storage request")
    subparsers = parser.add_subparsers(dest="command", required=True)
    info.add_parser(subparsers)
    demo.add_parser(subparsers)
    mount.add_parsers(subparsers)
    meta.add_parsers(subparsers)
    stats.add_parser(subparsers)
    prefetch.add_parser(subparsers)
    copy.add_parser(subparsers)
    return parser, frozenset(subparsers.choices)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser, commands = build_parser()
    if len(argv) >= 2 and not argv[0].startswith("-") and argv[0] not in commands:
        # mount.fuse3 and fstab call `octuefs SOURCE MOUNTPOINT -o OPTIONS`.
        argv = ["mount", *argv]
    arguments = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if arguments.debug else logging.WARNING, format="%(levelname)s %(message)s")
    if arguments.endpoint:
        configure(endpoint=arguments.endpoint)
    try:
        return arguments.handler(arguments)
    except (OctuefsError, OSError) as error:
        print(f"octuefs: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
