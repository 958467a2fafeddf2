"""The processes a command starts (`octuefs demo`: a server, `octuefs mount`, the mount's daemon) and the
signals that stop it, so that whatever moment a signal comes, everything started is stopped by pid.

Python's defaults do not allow that: SIGTERM and SIGHUP kill the process without running a `finally`,
and a signal arriving while `subprocess.Popen` is starting a child leaves that child running, unknown.
Here each stop signal raises `Stopped` in the main thread, except while a child is being started or
while clean-up runs: then it is remembered (and raised once the child is recorded). Children start in
sessions of their own, so a terminal's Ctrl-C or hang-up reaches only the command, which stops them in
the order they need (the mount before its server). The command is made the subreaper of what it starts:
a daemon whose `octuefs mount` was stopped mid-way becomes its child, found and stopped like the others.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from types import FrameType
from typing import Any

from octuefs.fs.runtime import running

logger = logging.getLogger(__name__)

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
# prctl(2): orphaned descendants are reparented to this process instead of to init.
PR_SET_CHILD_SUBREAPER = 36
# How long a child gets to end after SIGTERM before SIGKILL: a daemon stopped mid-start may be finishing
# its stop (see `octuefs.fs.daemon`), whose own bound is shorter by default.
TERMINATE_GRACE = 30.0


class Stopped(BaseException):
    """A stop signal arrived; a BaseException, like KeyboardInterrupt, so only clean-up code sees it."""

    def __init__(self, number: int) -> None:
        super().__init__(f"stopped by {signal.Signals(number).name}")
        self.number = number


class Supervisor:
    def __init__(self) -> None:
        self.children: list[subprocess.Popen[Any]] = []
        self._deferring = 0
        self._pending: int | None = None
        for number in STOP_SIGNALS:
            signal.signal(number, self._on_signal)
        with contextlib.suppress(OSError, AttributeError):  # not Linux: orphans go to init as usual
            ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)

    def _on_signal(self, number: int, frame: FrameType | None) -> None:
        if self._deferring:
            self._pending = self._pending or number
            return
        raise Stopped(number)

    @contextlib.contextmanager
    def deferred(self) -> Iterator[None]:
        """Signals wait until the block ends (then `Stopped` is raised, if none is on its way already)."""
        self._deferring += 1
        try:
            yield
        finally:
            self._deferring -= 1
        if not self._deferring and self._pending is not None:
            number, self._pending = self._pending, None
            raise Stopped(number)

    def spawn(self, command: list[str], **options: Any) -> subprocess.Popen[Any]:
        with self.deferred():
            child = subprocess.Popen(command, start_new_session=True, **options)
            self.children.append(child)
        return child

    def run(self, command: list[str], timeout: float) -> subprocess.CompletedProcess[str]:
        """Run a command to its end, its output captured; stopped if a signal or the timeout comes first."""
        child = self.spawn(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            output, errors = child.communicate(timeout=timeout)
        except BaseException:
            terminate([child.pid])
            child.wait()
            raise
        return subprocess.CompletedProcess(command, child.returncode, output, errors)

    def begin_clean_up(self) -> None:
        """From now on signals are remembered and dropped: clean-up is not cut short by another one."""
        self._deferring += 1

    def stop_children(self, keep: subprocess.Popen[Any] | None = None) -> None:
        """SIGTERM (then SIGKILL) every child still running, the adopted ones too, except `keep`."""
        terminate(sorted(self._running_children() - {keep.pid if keep else -1}))
        self._reap()

    @staticmethod
    def _running_children() -> set[int]:
        found = set()
        for task in Path("/proc/self/task").iterdir():
            with contextlib.suppress(OSError):
                found.update(int(pid) for pid in (task / "children").read_text().split())
        return {pid for pid in found if running(pid)}

    def _reap(self) -> None:
        """Collect exited children, so none stays a zombie in the process table."""
        for child in self.children:
            child.poll()
        with contextlib.suppress(ChildProcessError):
            while os.waitpid(-1, os.WNOHANG)[0]:
                pass


def terminate(pids: list[int], grace: float = TERMINATE_GRACE) -> None:
    """SIGTERM, and SIGKILL to those not ended within `grace` seconds. Only for our own children."""
    for number in (signal.SIGTERM, signal.SIGKILL):
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, number)
        deadline = time.monotonic() + grace
        while any(map(running, pids)) and time.monotonic() < deadline:
            time.sleep(0.02)
        pids = [pid for pid in pids if running(pid)]
        if not pids:
            return
    logger.warning("processes %s survived SIGKILL", pids)
