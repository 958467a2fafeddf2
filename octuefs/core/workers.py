"""Worker threads for blocking work, under a capacity limiter per kind of work.

Uploads, work on staged files and everything else (reads, lookups, listings, metadata) each have a
limiter of their own, so slow uploads filling theirs cannot keep a getattr or a read waiting.

Cancelling a call abandons its thread (it runs on; its result is dropped): only a stopping daemon
cancels them, once its stop timeout has passed, so that an upload the server keeps refusing cannot hold
the exit for the whole retry deadline. What such an upload was sending stays staged (see `octuefs.uploads`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import trio

Result = TypeVar("Result")


class Workers:
    def __init__(self, threads: int) -> None:
        self.limiter = trio.CapacityLimiter(threads)
        self.upload_limiter = trio.CapacityLimiter(threads)
        self.disk_limiter = trio.CapacityLimiter(threads)

    async def blocking(self, function: Callable[..., Result], *args: Any) -> Result:
        """Requests to storage other than uploads (stat, list, read, copy, delete, patch)."""
        return await trio.to_thread.run_sync(function, *args, limiter=self.limiter, abandon_on_cancel=True)

    async def uploading(self, function: Callable[..., Result], *args: Any) -> Result:
        return await trio.to_thread.run_sync(function, *args, limiter=self.upload_limiter, abandon_on_cancel=True)

    async def on_disk(self, function: Callable[..., Result], *args: Any) -> Result:
        """Work on staged files (which may also fetch what a staged copy needs of its object)."""
        return await trio.to_thread.run_sync(function, *args, limiter=self.disk_limiter, abandon_on_cancel=True)
