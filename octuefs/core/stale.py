"""Stale-if-error: what was last known of a file or directory, served when refreshing it fails because
the server cannot be reached (`ServerUnavailable`), so that `ls`, `stat`, `cat` and `getfattr` of
cached things keep working on a train or a flaky link.

Only unavailability falls back: a missing object or a refused request is an answer, and is reported
as one. Nothing served stale is marked fresh, so the first access after the server is back refreshes
it; and what was known longer ago than the TTL plus `stale_if_error` is not served at all.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

from octuefs.errors import ServerUnavailable

logger = logging.getLogger(__name__)


@dataclass
class StaleKnowledge:
    ttl: float
    # Seconds past the TTL that knowledge may still be served (see `MountConfig.stale_if_error`).
    limit: float
    # Served stale since the server last answered: each is logged once per outage, not per request.
    served: set[str] = field(default_factory=set)

    def usable(self, seen_at: float) -> bool:
        """Whether knowledge from `seen_at` (monotonic) may stand in for an answer the server cannot give."""
        return time.monotonic() - seen_at - self.ttl <= self.limit

    def serve(self, location: str, seen_at: float, error: ServerUnavailable) -> None:
        """Record that `location` is answered from what was known at `seen_at`; the first time in an outage,
        say so in the log."""
        if location in self.served:
            return
        self.served.add(location)
        logger.warning(
            "%s: served stale (as known %.1f s ago) while the server is unavailable: %s",
            location,
            time.monotonic() - seen_at,
            error,
        )

    def refreshed(self) -> None:
        """The server answered: the outage is over, and the next one is logged afresh."""
        if self.served:
            count = len(self.served)
            logger.info("the server answers again: %d files and directories served stale refresh at next use", count)
            self.served.clear()
