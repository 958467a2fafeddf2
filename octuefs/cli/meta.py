"""`octuefs meta get|set PATH` and `octuefs ls`: Octue metadata from the shell, without a mount.

PATH may be `gs://bucket/name` (one metadata GET, one guarded PATCH), a local file (its `.octue`
entry) or a file on an octuefs mount (through its `user.octue.*` attributes, so the mount's own
view stays current).
"""

from __future__ import annotations

import argparse
import errno
import json
import os
from typing import Any

from octuefs.cli.info import describe, existing_datafile, render_text
from octuefs.cli.table import render_table
from octuefs.dataset import Dataset
from octuefs.errors import InvalidInputException
from octuefs.fs import xattrs
from octuefs.metadata.labels import LabelSet
from octuefs.metadata.model import OctueMetadata, parse_timestamp
from octuefs.metadata.tags import TagDict, validate_tag_key
from octuefs.metadata.values import dumps, loads, to_jsonable
from octuefs.storage.paths import is_cloud_path


def add_parsers(subparsers: argparse._SubParsersAction) -> None:
    meta = subparsers.add_parser("meta", help="read or change a datafile's Octue metadata")
    actions = meta.add_subparsers(dest="action", required=True)
    get = actions.add_parser("get", help="print the metadata")
    get.add_argument("path", help="gs://bucket/name, a local file, or a file on an octuefs mount")
    get.add_argument("--json", action="store_true", help="print JSON")
    get.set_defaults(handler=run_get)
    change = actions.add_parser("set", help="change the metadata (one write)")
    change.add_argument("path", help="gs://bucket/name, a local file, or a file on an octuefs mount")
    change.add_argument("--tag", action="append", default=[], metavar="KEY=VALUE", help="value as JSON, else text")
    change.add_argument("--remove-tag", action="append", default=[], metavar="KEY")
    change.add_argument("--label", action="append", default=[], metavar="LABEL")
    change.add_argument("--remove-label", action="append", default=[], metavar="LABEL")
    change.add_argument("--timestamp", help="ISO 8601 or epoch seconds")
    change.add_argument("--clear-timestamp", action="store_true")
    change.set_defaults(handler=run_set)

    listing = subparsers.add_parser("ls", help="list the datafiles under gs://bucket[/prefix] with their metadata")
    listing.add_argument("path", help="gs://bucket[/prefix] or a local folder")
    listing.add_argument("--recursive", "-r", action="store_true")
    listing.add_argument("--labels", default="", help="only datafiles with all these labels (comma-separated)")
    listing.add_argument("--tag", action="append", default=[], metavar="KEY=VALUE", help="only this tag value")
    listing.add_argument("--json", action="store_true", help="print JSON")
    listing.set_defaults(handler=run_ls)


def parse_tag(text: str) -> tuple[str, Any]:
    key, separator, value = text.partition("=")
    if not separator:
        raise InvalidInputException(f"tag {text!r} must be KEY=VALUE.")
    return validate_tag_key(key), loads(value)


def changed(metadata: OctueMetadata, arguments: argparse.Namespace) -> OctueMetadata:
    """The metadata after the requested changes; invalid input raises before anything is written."""
    result = metadata.copy()
    result.tags.update(dict(parse_tag(text) for text in arguments.tag))
    for key in arguments.remove_tag:
        result.tags.pop(key, None)
    result.labels = LabelSet((result.labels | LabelSet(arguments.label)) - LabelSet(arguments.remove_label))
    if arguments.clear_timestamp:
        result.timestamp = None
    elif arguments.timestamp is not None:
        result.timestamp = parse_timestamp(arguments.timestamp)
    return result


def mounted_cloud_path(path: str) -> str | None:
    """The object behind a file on an octuefs mount, or None for any other path."""
    if is_cloud_path(path):
        return None
    try:
        return os.getxattr(path, xattrs.CLOUD_PATH).decode()
    except OSError as error:
        if error.errno in (errno.ENODATA, errno.ENOTSUP, errno.EOPNOTSUPP):
            return None
        raise


def _mounted_metadata(path: str) -> OctueMetadata:
    def attribute(name: str) -> str | None:
        try:
            return os.getxattr(path, name).decode()
        except OSError as error:
            if error.errno == errno.ENODATA:
                return None
            raise

    return OctueMetadata(
        id=attribute(xattrs.ID) or "",
        timestamp=parse_timestamp(attribute(xattrs.TIMESTAMP)),
        tags=TagDict(loads(attribute(xattrs.TAGS) or "{}")),
        labels=LabelSet(attribute(xattrs.LABELS) or ""),
    )


def _write_mounted(path: str, before: OctueMetadata, after: OctueMetadata) -> None:
    """Only the attributes that changed, each one metadata write by the mount."""
    if after.tags != before.tags:
        os.setxattr(path, xattrs.TAGS, dumps(after.tags).encode())
    if after.labels != before.labels:
        if after.labels:
            os.setxattr(path, xattrs.LABELS, " ".join(sorted(after.labels)).encode())
        else:
            os.removexattr(path, xattrs.LABELS)
    if after.timestamp != before.timestamp:
        if after.timestamp is None:
            os.removexattr(path, xattrs.TIMESTAMP)
        else:
            os.setxattr(path, xattrs.TIMESTAMP, after.timestamp.isoformat().encode())


def _mounted_description(path: str, cloud_path: str) -> dict[str, Any]:
    metadata = _mounted_metadata(path)
    return {
        "path": cloud_path,
        "id": metadata.id,
        "hash": os.getxattr(path, xattrs.HASH).decode(),
        "size": os.stat(path).st_size,
        "timestamp": metadata.timestamp.isoformat() if metadata.timestamp else None,
        "tags": to_jsonable(metadata.tags),
        "labels": sorted(metadata.labels),
    }


def _print(description: dict[str, Any], as_json: bool) -> None:
    print(json.dumps(description, indent=2) if as_json else render_text(description))


def run_get(arguments: argparse.Namespace) -> int:
    cloud_path = mounted_cloud_path(arguments.path)
    if cloud_path is not None:
        _print(_mounted_description(arguments.path, cloud_path), arguments.json)
    else:
        _print(describe(existing_datafile(arguments.path)), arguments.json)
    return 0


def run_set(arguments: argparse.Namespace) -> int:
    cloud_path = mounted_cloud_path(arguments.path)
    if cloud_path is not None:
        before = _mounted_metadata(arguments.path)
        _write_mounted(arguments.path, before, changed(before, arguments))
        _print(_mounted_description(arguments.path, cloud_path), False)
        return 0
    datafile = existing_datafile(arguments.path)
    datafile.save_metadata(changed(datafile.octue_metadata, arguments))
    _print(describe(datafile), False)
    return 0


def run_ls(arguments: argparse.Namespace) -> int:
    dataset = Dataset(arguments.path, recursive=arguments.recursive)
    labels = [label for label in arguments.labels.split(",") if label.strip()]
    datafiles = dataset.filter(labels=labels, tags=dict(parse_tag(text) for text in arguments.tag))
    if arguments.json:
        print(json.dumps([describe(datafile) for datafile in datafiles], indent=2))
    else:
        print(render_table(datafiles))
    return 0
