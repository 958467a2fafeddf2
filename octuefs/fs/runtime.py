"""The runtime directory and the pid files in it, by which `octuefs unmount` waits for a daemon.

Kept apart from the daemon (no pyfuse3) because the unmount command and the checks made before
forking read it too.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from octuefs.errors import UnsafePath
from octuefs.private_files import open_private, private_directory


def _runtime_base() -> tuple[Path, bool]:
    """The directory holding ours, and whether we make it ourselves (then anyone could have made it
    first: `/tmp/octuefs-$UID` is predictable, unlike root's /run and the session's XDG_RUNTIME_DIR)."""
    if os.geteuid() == 0:
        return Path("/run"), False
    configured = os.environ.get("XDG_RUNTIME_DIR")
    if configured:
        return Path(configured), False
    return Path(f"/tmp/octuefs-{os.getuid()}"), True


def runtime_directory() -> Path:
    return _runtime_base()[0] / "octuefs"


def prepare_runtime_directory() -> Path:
    """Create the runtime directory 0700, refusing one (or a `/tmp/octuefs-$UID`) another user made or
    planted as a symlink: its pid files decide which process `octuefs unmount` waits for."""
    base, ours = _runtime_base()
    if ours:
        private_directory(base)
    return private_directory(base / "octuefs")


def read_pid_file(record: Path) -> int | None:
    """The daemon pid recorded for a mountpoint, None when there is none; a record that is planted,
    unsafe or not a pid raises `UnsafePath` naming it."""
    if not os.path.lexists(runtime_directory()):
        return None
    prepare_runtime_directory()
    try:
        handle = open_private(record, os.O_RDONLY)
    except FileNotFoundError:
        return None
    with os.fdopen(handle) as file:
        text = file.read(64)
    try:
        return int(text)
    except ValueError:
        raise UnsafePath(f"{record}: does not hold a daemon's pid ({text.strip()[:20]!r}); remove it.") from None


def write_pid_file(record: Path) -> None:
    handle = open_private(record, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    with os.fdopen(handle, "w") as file:
        file.write(f"{os.getpid()}\n")


def pid_file(mountpoint: Path) -> Path:
    """Where the daemon serving `mountpoint` records its pid, so `octuefs unmount` can wait for it.

    The path is made absolute without resolving symlinks: resolving would stat the mountpoint,
    which deadlocks once the mount exists and this very process is the one that must answer. The
    commands pass what `resolve_mountpoint` gave, so mount and unmount through a symlink agree.
    """
    digest = hashlib.sha256(os.path.abspath(mountpoint).encode()).hexdigest()[:16]
    return runtime_directory() / f"{digest}.pid"


def running(pid: int) -> bool:
    """Whether the process exists and has not exited. A daemon is nobody's child once `mount` returns,
    so after it exits it stays a zombie until PID 1 reaps it, which in containers can be late or never;
    a zombie has already exited (its mount and files are released), so it counts as gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except (OSError, IndexError):
        return False
