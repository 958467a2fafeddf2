"""Whether the storage server answers, for the whole process: the circuit breaker in front of it.

Without it every operation on a mount with the server away waits out its own retry deadline, so a
program walking a directory tree waits that long for each file. Once the server is known lost,
requests fail at once (`ServerLost`, naming since when and why) and a background probe asks the
server every few seconds with one cheap request; the first success anywhere (the probe, or any
request sent anyway) finds it again.

When it opens. Only transient failures count (5xx, 429, refused or dropped connections,
timeouts: what `ServerUnavailable` stands for); any other answer (404, 412, 403, 400) shows the
server is there. The breaker is suspected after either
- an operation gave up after retrying through its whole deadline with nothing but such failures, or
- failed attempts, with no success between them, have gone on for `trip_after` seconds (attempts
  that are not retried, such as the parts of a streaming upload, trip it this way);
and opens only if one probe, sent at once by the thread that suspected it, fails too. That check
keeps a failure of one kind of request (a storm of 503s on uploads alone) from failing every other
request and from logging an outage that was not one; while it runs, requests go out as usual.

Lost and found are logged once each (with the cause, and with how long the server was away); the
`on_recovered` callbacks tell the rest of the daemon (pending uploads) that the server is back.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

from octuefs.errors import ServerLost

logger = logging.getLogger(__name__)

UP, CHECKING, DOWN = "up", "checking", "down"
# Failed attempts with no success between them for this long suspect the server (see the module doc).
# Longer than a short outage ridden out by retries (three 503s or two resets sleep at most 7 s).
TRIP_AFTER = 10.0
# How often the probe asks the server while it is lost: recovery is noticed within this (plus the
# probe's own time), at the cost of one tiny request per interval while the server is away.
PROBE_INTERVAL = 2.0
# A failure this long after the previous one starts a new run instead of extending an old one (the
# longest backoff DEFAULT_RETRY sleeps is 60 s).
FORGET_AFTER = 60.0


def _iso(moment: float | None) -> str | None:
    return datetime.fromtimestamp(moment, UTC).isoformat(timespec="seconds") if moment is not None else None


class ServerHealth:
    """The breaker's state, thread-safe; `probe` is one cheap request that raises when it fails.

    `clock` (seconds, wall time) and `autoprobe` (False: nothing runs in the background, a test calls
    `probe_step`) exist for unit tests.
    """

    def __init__(
        self,
        probe: Callable[[], Any],
        trip_after: float = TRIP_AFTER,
        probe_interval: float = PROBE_INTERVAL,
        clock: Callable[[], float] = time.time,
        autoprobe: bool = True,
    ) -> None:
        self._probe = probe
        self.trip_after = trip_after
        self.probe_interval = probe_interval
        self._clock = clock
        self._autoprobe = autoprobe
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._local = threading.local()
        self._callbacks: list[Callable[[], None]] = []
        self._recovered_pending = False
        self._probing = False
        self._closed = False
        self.state = UP
        self.cause: str | None = None
        # The first failure of the current run (no success since): when the server was lost, if it was.
        self._failing_since: float | None = None
        self._last_failure = 0.0
        self.lost_at: float | None = None
        self.found_at: float | None = None
        self.outages = 0

    # Told by every request ------------------------------------------------------------------

    def check(self) -> None:
        """Raise `ServerLost` instead of sending, while the server is lost (not in `bypassing` blocks)."""
        if self.state == DOWN and not getattr(self._local, "bypass", False):
            raise ServerLost(
                f"the storage server has been unreachable since {_iso(self.lost_at)} ({self.cause}); "
                f"not sent: a probe checks every {self.probe_interval:g} s and requests resume once it answers"
            )

    @contextlib.contextmanager
    def bypassing(self) -> Iterator[None]:
        """Requests made by this thread in the block are sent even while the server is lost: the probe's,
        and a check the user asked for (the mount's start-up check of the bucket)."""
        previous = getattr(self._local, "bypass", False)
        self._local.bypass = True
        try:
            yield
        finally:
            self._local.bypass = previous

    def succeeded(self) -> None:
        """The server answered (anything but a transient failure)."""
        if self.state == UP and self._failing_since is None:
            return  # the common case, without taking the lock
        with self._lock:
            self._failing_since = None
            if self.state == UP:
                return
            was = self.state
            self.state = UP
            if was == CHECKING:
                logger.debug("storage server answered: not lost (%s)", self.cause)
                return
            self.found_at = self._clock()
            away = self.found_at - (self.lost_at or self.found_at)
            self._recovered_pending = True
        logger.info("storage server found again after %.1f s away", away, extra={"away_s": round(away, 3)})
        self._wake.set()

    def failed(self, cause: str) -> None:
        """One attempt failed transiently; a run of them lasting `trip_after` seconds suspects the server.
        Failures of requests in `bypassing` blocks (the probe, the mount's start-up check) do not count."""
        if getattr(self._local, "bypass", False):
            return
        with self._lock:
            now = self._clock()
            if self._failing_since is None or now - self._last_failure > FORGET_AFTER:
                self._failing_since = now
            self._last_failure = now
            suspect = now - self._failing_since >= self.trip_after and self._suspect(cause)
        if suspect:
            self._confirm()

    def gave_up(self, cause: str) -> None:
        """An operation retried transient failures until its deadline: suspect the server."""
        if getattr(self._local, "bypass", False):
            return
        with self._lock:
            if self._failing_since is None:
                self._failing_since = self._clock()
            suspect = self._suspect(cause)
        if suspect:
            self._confirm()

    def _suspect(self, cause: str) -> bool:
        """Whether this thread is the one to check the server (the lock is held)."""
        if self.state != UP:
            return False
        self.state = CHECKING
        self.cause = cause
        return True

    def _confirm(self) -> None:
        """Probe once, from the thread that suspected the server, before its failure is reported (so the
        verdict is in before anyone hears of the failure); if the probe fails too, the server is lost."""
        if self._probe_once():
            return
        with self._lock:
            if self.state != CHECKING:
                return  # another request got an answer meanwhile
            self.state = DOWN
            self.lost_at = self._failing_since or self._clock()
            self.found_at = None
            self.outages += 1
            away = self._clock() - self.lost_at
            start_probing = not self._probing
            self._probing = True
            self._wake.clear()
        logger.warning(
            "storage server lost: unreachable since %s (%.1f s ago): %s; failing requests at once until a probe "
            "(every %g s) reaches it",
            _iso(self.lost_at),
            away,
            self.cause,
            self.probe_interval,
            extra={"cause": self.cause},
        )
        if start_probing and self._autoprobe:
            threading.Thread(target=self._probe_loop, name="octuefs-probe", daemon=True).start()

    # The probe ------------------------------------------------------------------------------

    def _probe_once(self) -> bool:
        """Whether the server answered the probe (an answer finds it again)."""
        try:
            with self.bypassing():
                self._probe()
        except Exception:  # any failure of the probe means: still not answering
            return False
        self.succeeded()
        return True

    def _probe_loop(self) -> None:
        """Started once the confirming probe failed: the next probe is one interval later."""
        while not self._closed:
            self._wake.wait(self.probe_interval)
            self._wake.clear()
            if not self.probe_step():
                return

    def close(self) -> None:
        """Stop probing (the client this health belongs to is being replaced)."""
        self._closed = True
        self._wake.set()

    def probe_step(self) -> bool:
        """What the background probe does each interval while the server is lost: one probe, then, once
        the server is found, the recovery callbacks. Whether to go on probing."""
        if self.state == DOWN:
            self._probe_once()
        with self._lock:
            if self.state != UP:
                return True
            self._probing = False
            callbacks = list(self._callbacks) if self._recovered_pending else []
            self._recovered_pending = False
        for callback in callbacks:
            try:
                callback()
            except Exception:
                logger.exception("a callback told of the storage server's recovery failed")
        return False

    # For the rest of the daemon -------------------------------------------------------------

    def on_recovered(self, callback: Callable[[], None]) -> None:
        """Call `callback()` each time the server is found again after being lost.

        It runs on the probe thread after the "found again" log line, one callback after another: it
        must return quickly and be thread-safe (to reach trio, use `trio.from_thread.run_sync` with a
        token, or set a flag the trio side polls). An exception it raises is logged and ignored.
        """
        with self._lock:
            self._callbacks.append(callback)

    def snapshot(self) -> dict[str, Any]:
        """What `octuefs stats` shows of the server."""
        with self._lock:
            return {
                "state": self.state,
                "lost_at": _iso(self.lost_at),
                "found_at": _iso(self.found_at),
                "outages": self.outages,
                "cause": self.cause if self.state == DOWN else None,
            }
