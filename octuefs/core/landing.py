"""Files closed while their upload failed, landed later by the mount itself (the "lander").

A close whose upload fails answers EIO and keeps the bytes staged with their record (see
`octuefs.uploads`). Once no handle holds the file, the lander, a task on the daemon's trio loop,
sends it again, under the inode's lock as every upload is, with the request a close would send:
`ifGenerationMatch=0` for a new name, the generation the file was opened at otherwise. So a program
that saved its work while the server was away needs no fsync, reopen or remount. What happens next
depends on why the upload failed:

- the server was away (`ServerUnavailable`): tried again after 1, 2, 4 ... seconds, at most
  `landing_interval` apart, and at once when `wake()` says the server is back;
- another writer changed the object (a generation conflict): the bytes go to lost+found with a log
  line naming both, as at recovery (`octuefs.uploads.staging.set_aside`); the other object stays;
- refused for another reason (403, 400, the staging disk): kept staged, tried again every
  `REFUSED_RETRY` seconds (permissions get fixed), shown by `octuefs stats`, and still recovered at
  the next mount: never retried in a tight loop, never dropped.

A file that is open again, renamed or unlinked is not the lander's: its handles upload it as
before (a rename sends it under its new name; an unlinked file is never sent).
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path

import trio

from octuefs.core.files import Files
from octuefs.core.inodes import Inode
from octuefs.errors import OctuefsError, PreconditionConflict, ServerUnavailable
from octuefs.uploads.session import WriteSession, WriteStatus

logger = logging.getLogger(__name__)

# The first wait after a failure while the server is away; each further failure doubles it.
FIRST_RETRY = 1.0
# How long an upload refused for another reason than the server being away waits before the next attempt.
REFUSED_RETRY = 600.0
# New failures are noticed at most this late (a close whose upload failed does not call the lander).
TICK = 1.0


@dataclass
class Waiting:
    """One file the lander will send: the session it found (a new one is another file's business)."""

    inode: Inode
    session: WriteSession
    failures: int
    due: float
    error: Exception | None

    @property
    def server_away(self) -> bool:
        return self.error is None or isinstance(self.error, ServerUnavailable)


def _idle(session: WriteSession | None) -> bool:
    """Holds bytes to send and no handle that would send them."""
    return session is not None and session.holders <= 0 and session.status in (WriteStatus.DIRTY, WriteStatus.FAILED)


class Lander:
    def __init__(self, files: Files, lost_and_found: Path, longest_wait: float) -> None:
        self.files = files
        self.lost_and_found = lost_and_found
        self.longest_wait = longest_wait
        self._waiting: dict[int, Waiting] = {}
        self._woken = trio.Event()
        self._token: trio.lowlevel.TrioToken | None = None

    async def run(self) -> None:
        """Land what is due, then sleep until the next file is due, a tick passes or `wake()`; forever."""
        self._token = trio.lowlevel.current_trio_token()
        while True:
            await self.land_due()
            with trio.move_on_after(self._sleep()):
                await self._woken.wait()
            self._woken = trio.Event()

    def wake(self) -> None:
        """The server is back: every file waiting for it is tried at once. Safe from any thread; the
        circuit breaker's "server found again" hook calls this."""
        if self._token is not None:
            with contextlib.suppress(trio.RunFinishedError):
                self._token.run_sync_soon(self._wake_now)

    def _wake_now(self) -> None:
        for waiting in self._waiting.values():
            if waiting.server_away:
                waiting.due = 0.0  # its failures stay counted: the log says how many attempts it took
        self._woken.set()

    def _sleep(self) -> float:
        now = time.monotonic()
        return max(0.0, min([TICK, *(waiting.due - now for waiting in self._waiting.values())]))

    async def land_due(self) -> None:
        """One round: send every file that is due, the longest due first. A file the server could not take
        ends the round: the others would fail the same way, so they wait as long as it does."""
        now = time.monotonic()
        self._track(now)
        due = sorted((waiting for waiting in self._waiting.values() if waiting.due <= now), key=lambda w: w.due)
        for position, waiting in enumerate(due):
            if not await self._attempt(waiting):
                for later in due[position + 1 :]:
                    later.due = max(later.due, waiting.due)
                return

    def _track(self, now: float) -> None:
        """Follow the files being written: take on those nothing holds, drop those taken over or gone."""
        idle = {inode.ino: inode for inode in self.files.inodes.writing() if _idle(inode.write)}
        for ino, waiting in list(self._waiting.items()):
            if ino not in idle or idle[ino].write is not waiting.session:
                del self._waiting[ino]
        for ino, inode in idle.items():
            session = inode.write
            if ino in self._waiting or session is None:
                continue
            failed = session.status is WriteStatus.FAILED
            waiting = Waiting(inode, session, int(failed), now, session.error)
            if failed:
                waiting.due = now + self._wait_after(waiting)
            self._waiting[ino] = waiting

    def _wait_after(self, waiting: Waiting) -> float:
        if not waiting.server_away:
            return REFUSED_RETRY
        return min(self.longest_wait, FIRST_RETRY * 2 ** max(0, waiting.failures - 1))

    async def _attempt(self, waiting: Waiting) -> bool:
        """Send one file under its lock; False when the server could not be reached."""
        inode, session = waiting.inode, waiting.session
        async with inode.lock:
            if inode.write is not session or not _idle(session):
                return True  # a handle, rename or unlink took it over while this waited for the lock
            location = self.files.location(inode)
            try:
                # Shielded: cancelled (at unmount) between its upload and its clean-up, a landed file's
                # staged copy and record would stay behind, and the next mount would take our own object
                # for another writer's and set the bytes aside. The upload's thread is waited for anyway.
                with trio.CancelScope(shield=True):
                    level, line = await self._land(inode, waiting)
            except ServerUnavailable as error:
                self._failed(waiting, error)
                logger.info("landing: %s waits for the server (attempt %d)", location, waiting.failures)
                return False
            except Exception as error:
                # Also what no upload should raise (a bug): one file's trouble must not end the lander
                # (nor, through the nursery, the mount).
                self._failed(waiting, error)
                logger.warning(
                    "landing: %s refused (%s); kept at %s, tried again in %.0f s",
                    location,
                    error,
                    session.staged.data_path,
                    REFUSED_RETRY,
                    exc_info=not isinstance(error, (OctuefsError, OSError)),
                )
                return True
        logger.log(level, "landing: %s", line)
        self._waiting.pop(inode.ino, None)
        return True

    async def _land(self, inode: Inode, waiting: Waiting) -> tuple[int, str]:
        """Upload the file, or set it aside if another writer changed its object; the log line saying
        which. The caller holds `inode.lock`."""
        location = self.files.location(inode)
        try:
            await self.files.upload(inode)
        except PreconditionConflict:
            return logging.WARNING, await self.files.set_aside(inode, self.lost_and_found)
        return logging.INFO, f"{location} uploaded after {waiting.failures} failed attempts"

    def _failed(self, waiting: Waiting, error: Exception) -> None:
        waiting.failures += 1
        waiting.error = error
        waiting.due = time.monotonic() + self._wait_after(waiting)

    def states(self) -> dict[str, str]:
        """Every file with bytes not uploaded yet, by cloud path, with where it stands."""
        return {self.files.location(inode): self.describe(inode) for inode in self.files.unsent_inodes()}

    def describe(self, inode: Inode) -> str:
        """Where an unsent file's upload stands, in words (`octuefs stats`)."""
        session = inode.write
        assert session is not None, "only files being written are unsent"
        now = time.monotonic()
        uploading = session.status is WriteStatus.UPLOADING
        if session.holders > 0:
            return "uploading" if uploading else "open for writing"
        waiting = self._waiting.get(inode.ino)
        if waiting is None or waiting.session is not session:  # failed since the lander last looked
            if uploading:
                return "uploading"  # a last close sending it
            waiting = Waiting(inode, session, int(session.error is not None), now, session.error)
        if uploading:
            due = "trying again now"
        else:
            due = "next attempt now" if waiting.due <= now else f"next attempt in {math.ceil(waiting.due - now)} s"
        if waiting.server_away:
            return f"waiting for the server ({waiting.failures} failed attempts; {due})"
        return f"refused ({waiting.error}); {due}"
