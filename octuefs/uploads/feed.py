"""A new file written front to back goes up in parts while it is written, not whole after close.

`cp big.bin /mnt/bucket/` would otherwise take the time of the copy plus the time of the upload;
feeding the upload as the file grows overlaps the two, so close only sends the last part (as
gcsfuse's streaming writes do). The staged file stays the source of truth: the first write or
truncate into bytes already sent ends the feed, and the file is then sent whole at flush, as is
a file whose metadata changed after its upload session was opened (the session carries it), or
whose parts failed to send.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

from octuefs.datafile import UploadRequest
from octuefs.errors import OctuefsError, PreconditionConflict
from octuefs.storage.gcs import ObjectStat
from octuefs.storage.interface import Storage
from octuefs.storage.streaming import StreamingUpload
from octuefs.uploads import sending

logger = logging.getLogger(__name__)


class Feed:
    def __init__(
        self,
        storage: Storage,
        path: Path,
        part_size: int,
        request_for: Callable[[], UploadRequest],
        executor: ThreadPoolExecutor,
    ) -> None:
        self.storage = storage
        self.path = path
        self.part_size = part_size
        self._request_for = request_for
        self._executor = executor
        self.request: UploadRequest | None = None
        self.upload: StreamingUpload | None = None
        # False once the session no longer matches the file (bytes it holds were rewritten, or a part
        # failed): it is then cancelled and the file sent whole.
        self.usable = True
        self._floor = 0  # bytes sent or being sent
        self._stopped = False
        self._job: Future[None] | None = None
        self._lock = threading.Lock()

    def written(self, position: int, size: int) -> None:
        """After each write at `position` (or truncate to it) leaving the file `size` bytes long."""
        with self._lock:
            if position < self._floor:
                self.usable = False
                self._stopped = True
            if self._stopped or self._job is not None or size - self._floor < self.part_size:
                return
            self._job = self._executor.submit(self._send_parts)

    def _send_parts(self) -> None:
        """Send whole parts until none is left (a later write starts this again)."""
        try:
            with open(self.path, "rb") as file:
                while (end := self._claim(os.fstat(file.fileno()).st_size)) is not None:
                    if self.upload is None:
                        self.request = self._request_for()
                        self.upload = sending.stream(self.storage, self.request)
                    self.upload.send(file.fileno(), end)
        except (OctuefsError, OSError) as error:
            logger.warning("%s: sending it while it is written failed (%s); it will go up whole", self.path, error)
            with self._lock:
                self.usable = False
                self._stopped = True
                self._job = None
        # `_job` is cleared by `_claim` (or above) under the lock, never here: a later write may already
        # have started the next job, which `finish` must wait for.
        with self._lock:
            abandoned = not self.usable
        if abandoned:
            self._cancel()

    def _claim(self, size: int) -> int | None:
        with self._lock:
            end = self._floor + (size - self._floor) // self.part_size * self.part_size
            if self._stopped or end == self._floor:
                self._job = None
                return None
            self._floor = end
            return end

    def finish(self, request: UploadRequest) -> ObjectStat | None:
        """At flush: the rest of the file, making the object; None when it must be sent whole instead
        (nothing was sent yet, the feed ended, or `request` differs from the one the session carries)."""
        with self._lock:
            self._stopped = True
            job = self._job
        if job is not None:
            job.result()
        if self.upload is None:
            return None
        if not self.usable or self.request != request:
            self._cancel()
            return None
        size = self.path.stat().st_size
        try:
            with open(self.path, "rb") as file:
                return self.upload.finish(file.fileno(), size)
        except PreconditionConflict:
            raise
        except (OctuefsError, OSError) as error:
            made = self.upload.made(size)
            if made is not None:
                return made
            logger.warning("%s: finishing its upload failed (%s); sending it whole", request.location, error)
            self._cancel()
            return None

    def abandon(self) -> None:
        """The file is gone (unlinked) or its bytes will never be uploaded from here."""
        with self._lock:
            self.usable = False
            self._stopped = True
            running = self._job is not None
        if not running:
            self._cancel()

    def _cancel(self) -> None:
        if self.upload is not None:
            self.upload.cancel()
