"""`octuefs demo`: start the bundled GCS server, fill a sample bucket, and show its datafiles."""

from __future__ import annotations

import argparse
import contextlib
import time

from octuefs.dataset import Dataset
from octuefs.local_server import start_server
from octuefs.samples import seed_bucket
from octuefs.storage.gcs import configure

DEMO_BUCKET = "octuefs-demo"


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("demo", help="run a local GCS server with sample datafiles and show them")
    parser.add_argument("--no-wait", action="store_true", help="stop the server after showing the samples")
    parser.set_defaults(handler=run)


def render_table(dataset: Dataset) -> str:
    rows = [("NAME", "SIZE", "CRC32C", "TIMESTAMP", "LABELS", "TAGS")]
    for datafile in dataset:
        rows.append(
            (
                datafile.path_in_bucket or datafile.name,
                str(datafile.size_bytes),
                datafile.hash_value,
                datafile.timestamp.date().isoformat() if datafile.timestamp else "-",
                " ".join(sorted(datafile.labels)) or "-",
                ", ".join(f"{key}={value}" for key, value in datafile.tags.items()) or "-",
            )
        )
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]) - 1)]
    lines = [
        "  ".join([*(cell.ljust(width) for cell, width in zip(row, widths, strict=False)), row[-1]]) for row in rows
    ]
    return "\n".join(lines)


def run(arguments: argparse.Namespace) -> int:
    server = start_server()
    try:
        configure(endpoint=server.url)
        seed_bucket(DEMO_BUCKET)
        dataset = Dataset(f"gs://{DEMO_BUCKET}", recursive=True)
        print(f"octuefs demo: a GCS-compatible server is running at {server.url} with bucket gs://{DEMO_BUCKET}\n")
        print(render_table(dataset))
        print(
            "\nTry, in another shell:\n"
            f"  export STORAGE_EMULATOR_HOST={server.url}\n"
            f"  .venv/bin/octuefs info gs://{DEMO_BUCKET}/tables/readings.csv\n"
            f'  .venv/bin/python -c "from octuefs import Datafile; '
            f"print(Datafile('gs://{DEMO_BUCKET}/tables/readings.csv').tags)\""
        )
        if not arguments.no_wait:
            print("\nPress Ctrl-C to stop the server.")
            with contextlib.suppress(KeyboardInterrupt):
                while server.process.poll() is None:
                    time.sleep(0.5)
    finally:
        server.stop()
    return 0
