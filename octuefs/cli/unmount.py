"""`octuefs unmount MOUNTPOINT`: wait (bounded) for the mount's pending uploads, unmount, and see the
daemon exit.

Pending uploads are read from the daemon's statistics (the root's stats attribute, as `octuefs stats`
reads them). Once they are done, or `--wait` seconds have passed, the mount is unmounted as umount(8)
does it: a mount still in use (a program holds a file open on it) is not unmounted unless `--lazy`;
this is what users of gcsfuse and rclone meet with `fusermount -u`. Bytes still pending then are not
lost: they stay staged in the cache directory and go up at the next mount with it, which the command
says, naming each file. A daemon still finishing an operation after the unmount (an upload retried
at its last release) gets SIGTERM, so its `--stop-timeout` bounds the rest (see `octuefs.fs.daemon`).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from octuefs.cli.mountpoints import resolve_mountpoint
from octuefs.errors import UnsafePath
from octuefs.fs import xattrs
from octuefs.fs.runtime import pid_file, read_pid_file, running

DEFAULT_WAIT = 30.0
POLL_INTERVAL = 0.1
# A daemon with nothing in flight exits this soon after the unmount; one still busy then gets SIGTERM.
QUICK_EXIT = 2.0
# How long the command waits for a daemon to end after SIGTERM (longer than the default --stop-timeout).
DAEMON_EXIT_WAIT = 60.0
# Reading the statistics is a request to the daemon: a hung one must not hang the command.
STATS_TIMEOUT = 5.0

Pending = dict[str, dict[str, Any]]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("mountpoint", type=Path)
    parser.add_argument("--lazy", "-z", action="store_true", help="detach now even if the mount is busy")
    parser.add_argument(
        "--wait",
        type=float,
        default=DEFAULT_WAIT,
        metavar="SECONDS",
        help=f"how long to wait for pending uploads before unmounting anyway (default {DEFAULT_WAIT:g}); "
        "what is still pending then stays staged and goes up at the next mount",
    )


def run_unmount(arguments: argparse.Namespace) -> int:
    mountpoint = resolve_mountpoint(arguments.mountpoint)
    try:
        daemon = read_pid_file(pid_file(mountpoint))
    except UnsafePath as error:
        print(f"octuefs: not waiting for the daemon: {error}", file=sys.stderr)
        daemon = None
    deadline = time.monotonic() + max(arguments.wait, 0.0)
    pending = _wait_for_uploads(mountpoint, deadline)
    result = _unmount(mountpoint, arguments.lazy, deadline)
    if result.returncode != 0:
        print(f"octuefs: cannot unmount {mountpoint}: {result.stderr.strip()}", file=sys.stderr)
        if "busy" in result.stderr:
            print("octuefs: programs hold files open on it: end them, or detach it with --lazy", file=sys.stderr)
        if pending:
            print(f"octuefs: still pending after {arguments.wait:g} s:\n{_describe(pending)}", file=sys.stderr)
        return 1
    if pending:
        print(
            f"octuefs: unmounted {mountpoint} with uploads still pending after {arguments.wait:g} s; their bytes "
            f"are kept and go up at the next mount with the same cache directory:\n{_describe(pending)}",
            file=sys.stderr,
        )
    if daemon is not None:
        _see_daemon_exit(daemon)
    return 0


def _wait_for_uploads(mountpoint: Path, deadline: float) -> Pending:
    """The uploads still pending when none is left or `deadline` passes (said once, when there are any)."""
    pending = _pending(mountpoint)
    if pending:
        print(
            f"octuefs: waiting up to {max(deadline - time.monotonic(), 0):.0f} s for {len(pending)} pending "
            f"upload(s):\n{_describe(pending)}",
            file=sys.stderr,
            flush=True,
        )
    while pending and time.monotonic() < deadline:
        time.sleep(POLL_INTERVAL)
        pending = _pending(mountpoint)
    return pending


def _pending(mountpoint: Path) -> Pending:
    """Files whose uploads the daemon has not finished; none when it cannot say (not an octuefs mount,
    a daemon gone or not answering)."""
    answer: dict[str, Any] = {}

    def read() -> None:
        with contextlib.suppress(OSError, ValueError):
            answer.update(json.loads(os.getxattr(mountpoint, xattrs.STATS)))

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    reader.join(STATS_TIMEOUT)
    pending = answer.get("pending")
    return pending if isinstance(pending, dict) else {}


def _describe(pending: Pending) -> str:
    lines = []
    for location, state in sorted(pending.items()):
        held = f", {state.get('open')} open handle(s)" if state.get("open") else ""
        lines.append(f"  {location} ({state.get('status')}{held}): bytes kept at {state.get('staged')}")
    return "\n".join(lines)


def _unmount(mountpoint: Path, lazy: bool, deadline: float) -> subprocess.CompletedProcess[str]:
    """fusermount3 -u; a busy mount is tried again until `deadline` (a close finishing its upload holds
    the file open until its reply reaches the program)."""
    command = ["fusermount3", "-u", *(["-z"] if lazy else []), str(mountpoint)]
    while True:
        result = subprocess.run(command, capture_output=True, text=True)
        if result.returncode == 0 or "busy" not in result.stderr or time.monotonic() >= deadline:
            return result
        time.sleep(POLL_INTERVAL)


def _see_daemon_exit(pid: int) -> None:
    """Wait for the daemon to exit; one still finishing operations after the unmount gets SIGTERM."""
    if _exited_within(pid, QUICK_EXIT):
        return
    if _is_fuse_daemon(pid):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGTERM)
    if not _exited_within(pid, DAEMON_EXIT_WAIT):
        print(f"octuefs: the daemon (pid {pid}) is still running", file=sys.stderr)


def _exited_within(pid: int, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while running(pid):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)
    return True


def _is_fuse_daemon(pid: int) -> bool:
    """Signalled only if it still holds /dev/fuse open: a pid file left by a killed daemon may name a
    pid the system has since given to another process."""
    with contextlib.suppress(OSError):
        for descriptor in os.scandir(f"/proc/{pid}/fd"):
            with contextlib.suppress(OSError):
                if os.readlink(descriptor.path) == "/dev/fuse":
                    return True
    return False
