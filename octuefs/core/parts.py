"""What every part of the core works with: the mount's settings, storage, tables and worker threads."""

from __future__ import annotations

from dataclasses import dataclass

from octuefs.core.inodes import InodeTable
from octuefs.core.stale import StaleKnowledge
from octuefs.core.workers import Workers
from octuefs.errors import ReadOnlyFilesystem
from octuefs.fs.config import MountConfig
from octuefs.fs.dirs import DirectoryCache
from octuefs.storage.interface import Storage


@dataclass
class CoreParts:
    config: MountConfig
    storage: Storage
    inodes: InodeTable
    dirs: DirectoryCache
    workers: Workers
    stale: StaleKnowledge

    def location_of(self, path: str) -> str:
        """The cloud path of a mount path, for log lines and errors."""
        return f"gs://{self.config.bucket}/{self.dirs.object_name(path)}"

    def require_writable(self, path: str) -> None:
        if self.config.read_only:
            raise ReadOnlyFilesystem(f"{self.location_of(path)}: the mount is read-only.")
