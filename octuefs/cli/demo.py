"""`octuefs demo`: the bundled GCS server with a sample bucket, mounted, with what to try next.

The mount is made by the real `octuefs mount` command, so the demo shows exactly what a user
gets; on Ctrl-C, SIGTERM or SIGHUP (or after showing, with `--no-wait`) it unmounts and stops the
server. A signal at any other moment (while the server starts, while seeding, while mounting) stops
it the same way: every process it started is recorded by its `Supervisor` and stopped by pid.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tqdm import tqdm

from octuefs.cli.mountpoints import is_mounted, resolve_mountpoint
from octuefs.cli.supervisor import Stopped, Supervisor
from octuefs.cli.table import render_table
from octuefs.dataset import Dataset
from octuefs.local_server import GCSServer, start_server
from octuefs.samples import seed_bucket, seed_bucket_from
from octuefs.storage.gcs import configure
from octuefs.storage.objects import reporting_progress

DEMO_BUCKET = "octuefs-demo"
DEFAULT_MOUNTPOINT = Path(tempfile.gettempdir()) / "octuefs-demo"
# Seconds the demo's unmount waits for uploads of files written on the mount before leaving them staged.
UNMOUNT_WAIT = 10


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("demo", help="run a local GCS server with sample datafiles, mounted")
    parser.add_argument("--mountpoint", type=Path, default=DEFAULT_MOUNTPOINT, help="where to mount the demo bucket")
    parser.add_argument("--data", type=Path, help="seed the demo bucket from this folder instead of the samples")
    parser.add_argument("--no-mount", action="store_true", help="only start the server and list the samples")
    parser.add_argument("--no-wait", action="store_true", help="stop everything after showing the samples")
    parser.set_defaults(handler=run)


def _octuefs(supervisor: Supervisor, *arguments: str) -> subprocess.CompletedProcess[str]:
    return supervisor.run([sys.executable, "-m", "octuefs.cli.main", *arguments], timeout=60)


def _show(supervisor: Supervisor, command: list[str]) -> None:
    print(f"$ {' '.join(command)}", flush=True)
    if shutil.which(command[0]) is None:
        print(f"({command[0]} is not installed)")
        return
    result = supervisor.run(command, timeout=30)
    print((result.stdout + result.stderr).rstrip())


def _mount(supervisor: Supervisor, server: GCSServer, mountpoint: Path, cache: Path) -> bool:
    if not os.path.exists("/dev/fuse"):
        print("\n(/dev/fuse is missing here, so the bucket is not mounted.)")
        return False
    mountpoint.mkdir(parents=True, exist_ok=True)
    result = _octuefs(
        supervisor, "mount", DEMO_BUCKET, str(mountpoint), "--endpoint", server.url, "--cache-dir", str(cache)
    )
    if result.returncode != 0:
        print(f"\n(mounting failed: {result.stderr.strip()})")
        return False
    print(f"\nMounted gs://{DEMO_BUCKET} at {mountpoint}:\n")
    _show(supervisor, ["ls", "-l", str(mountpoint / "tables")])
    _show(supervisor, ["getfattr", "-d", "--absolute-names", str(mountpoint / "tables" / "readings.csv")])
    return True


def _instructions(server: GCSServer, mountpoint: Path, mounted: bool) -> str:
    lines = ["\nTry, in another shell:"]
    if mounted:
        csv = mountpoint / "tables" / "readings.csv"
        lines += [
            f"  cat {csv}",
            f"  getfattr -d {csv}",
            f"  setfattr -n user.octue.tag.quality -v '\"good\"' {csv}",
            f"  setfattr -n user.octue.labels -v 'checked, met-mast' {csv}",
            f"  .venv/bin/python -c \"import h5py; f = h5py.File('{mountpoint}/arrays/measurements.hdf5'); "
            "print(f['wind_speed'][:2, :4])\"",
            f"  .venv/bin/octuefs unmount {mountpoint}   # ends the demo",
        ]
    lines += [
        f"  STORAGE_EMULATOR_HOST={server.url} .venv/bin/octuefs info gs://{DEMO_BUCKET}/tables/readings.csv",
    ]
    return "\n".join(lines)


def _seed(data: Path | None) -> None:
    """Fill the demo bucket, with a progress bar of the bytes uploaded on a terminal."""
    if data is not None and not data.is_dir():
        raise FileNotFoundError(f"{data}: no such folder to seed the demo bucket from.")
    total = sum(path.stat().st_size for path in data.rglob("*") if path.is_file()) if data else None
    with (
        tqdm(
            total=total, unit="B", unit_scale=True, disable=not sys.stderr.isatty(), desc=f"seeding gs://{DEMO_BUCKET}"
        ) as bar,
        reporting_progress(bar.update),
    ):
        if data is not None:
            seed_bucket_from(DEMO_BUCKET, data)
        else:
            seed_bucket(DEMO_BUCKET)


def run(arguments: argparse.Namespace) -> int:
    """Exits 0 when stopped while waiting (the way to end the demo), 128 + the signal's number when
    stopped earlier; whenever it stops, the mount is gone and every process it started has ended."""
    supervisor = Supervisor()
    server: GCSServer | None = None
    cache: tempfile.TemporaryDirectory[str] | None = None
    waiting = False
    # Resolved: `ismount` of a symlink to the mount is false, so the demo would stop watching at once
    # and leave its daemon behind. Something already mounted there is not ours to unmount.
    mountpoint = resolve_mountpoint(arguments.mountpoint)
    ours = not is_mounted(mountpoint)
    try:
        # Removed when the demo stops (after the unmount below, which waits for the daemon to exit).
        cache = tempfile.TemporaryDirectory(prefix="octuefs-demo-cache-", ignore_cleanup_errors=True)
        server = start_server(
            spawn=lambda command: supervisor.spawn(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        )
        configure(endpoint=server.url)
        _seed(arguments.data)
        print(f"octuefs demo: a GCS-compatible server is running at {server.url} with bucket gs://{DEMO_BUCKET}\n")
        print(render_table(Dataset(f"gs://{DEMO_BUCKET}", recursive=True)))
        mounted = not arguments.no_mount and _mount(supervisor, server, mountpoint, Path(cache.name))
        print(_instructions(server, mountpoint, mounted))
        if not arguments.no_wait:
            print("\nPress Ctrl-C to stop.", flush=True)
            waiting = True
            while server.process.poll() is None and (not mounted or is_mounted(mountpoint)):
                time.sleep(0.5)
        code = 0
    except Stopped as stop:
        print(f"\noctuefs demo: {stop}", flush=True)
        code = 0 if waiting else 128 + stop.number
    finally:
        supervisor.begin_clean_up()
        if ours and is_mounted(mountpoint):
            # Bounded within its timeout; whatever is left, the daemon too, is stopped below.
            with contextlib.suppress(subprocess.TimeoutExpired):
                _octuefs(supervisor, "unmount", "--wait", str(UNMOUNT_WAIT), str(mountpoint))
        # A daemon still starting (its `octuefs mount` was stopped) goes before the server it talks to.
        supervisor.stop_children(keep=server.process if server else None)
        if server is not None:
            server.stop()
        if cache is not None:
            cache.cleanup()
        print("octuefs demo: stopped.", flush=True)
    return code
