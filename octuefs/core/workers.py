"""Worker threads for blocking work, under a capacity limiter per kind of work.

Uploads, work on staged files and everything else (reads, lookups, listings, metadata) each have a
limiter of their own, so slow uploads filling theirs cannot keep a getattr or a read waiting.
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
        return await trio.to_thread.run_sync(function, *args, limiter=self.limiter)

    async def uploading(self, function: Callable[..., Result], *args: Any) -> Result:
        return await trio.to_thread.run_sync(function, *args, limiter=self.upload_limiter)

    async def on_disk(self, function: Callable[..., Result], *args: Any) -> Result:
        """Work on staged files (which may also fetch what a staged copy needs of its object)."""
        return await trio.to_thread.run_sync(function, *args, limiter=self.disk_limiter)
