"""`octuefs cp SOURCE DEST`: copy one datafile between a local path and `gs://`, metadata included.

What `gsutil cp` does for the bytes, plus the Octue metadata: an upload carries the local `.octue`
entry (id, tags, labels, timestamp) into the object's metadata, a download writes the object's
into the local `.octue`, so the copy is the same datafile on the other side. Large transfers
show a progress bar on a terminal.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tqdm import tqdm

from octuefs.cli.info import existing_datafile
from octuefs.datafile import Datafile
from octuefs.errors import InvalidInputException
from octuefs.storage.objects import reporting_progress
from octuefs.storage.paths import CloudLocation, is_cloud_path


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("cp", help="copy a datafile to or from gs:// with its Octue metadata")
    parser.add_argument("source", help="a local file or gs://bucket/name")
    parser.add_argument("destination", help="gs://bucket/name (or gs://bucket/prefix/), or a local file or directory")
    parser.set_defaults(handler=run)


def run(arguments: argparse.Namespace) -> int:
    source, destination = arguments.source, arguments.destination
    if is_cloud_path(source) == is_cloud_path(destination):
        raise InvalidInputException(f"cp {source} {destination}: exactly one of the two must be a gs:// path.")
    datafile = existing_datafile(source)
    with (
        tqdm(
            total=datafile.size_bytes, unit="B", unit_scale=True, disable=not sys.stderr.isatty(), desc=datafile.name
        ) as bar,
        reporting_progress(bar.update),
    ):
        copied = download(datafile, Path(destination)) if is_cloud_path(source) else upload(datafile, destination)
    print(f"copied {source} to {copied} ({datafile.size_bytes} bytes, id {datafile.id})")
    return 0


def upload(datafile: Datafile, destination: str) -> str:
    location = CloudLocation.parse(destination)
    if not location.name or location.name.endswith("/"):
        location = CloudLocation(location.bucket, location.name + datafile.name)
    return datafile.upload(location.path)


def download(datafile: Datafile, destination: Path) -> str:
    target = destination / datafile.name if destination.is_dir() else destination
    datafile.download(target)
    Datafile(target).save_metadata(datafile.octue_metadata)
    return str(target)
