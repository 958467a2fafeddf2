"""The core's pieces for one mount, wired together (by the FUSE adapter, or a test driving it without FUSE)."""

from __future__ import annotations

from octuefs.cache import ChunkCache
from octuefs.core.directories import Directories
from octuefs.core.files import Files
from octuefs.core.inodes import InodeTable
from octuefs.core.landing import Lander
from octuefs.core.links import Links
from octuefs.core.namespace import Namespace
from octuefs.core.stale import StaleKnowledge
from octuefs.core.workers import Workers
from octuefs.fs.config import MountConfig
from octuefs.fs.dirs import DirectoryCache
from octuefs.storage.interface import Storage
from octuefs.uploads.uploader import Uploader


class MountCore:
    def __init__(self, config: MountConfig, storage: Storage, cache: ChunkCache, uploader: Uploader) -> None:
        self.config = config
        self.storage = storage
        self.cache = cache
        self.inodes = InodeTable()
        self.dirs = DirectoryCache(storage, config.bucket, config.prefix, config.metadata_ttl)
        self.workers = Workers(config.storage_threads)
        self.stale = StaleKnowledge(config.metadata_ttl, config.stale_if_error)
        parts = (config, storage, self.inodes, self.dirs, self.workers, self.stale)
        self.files = Files(*parts, cache, uploader)
        self.directories = Directories(*parts, self.files)
        self.namespace = Namespace(*parts, self.files)
        self.links = Links(*parts, self.files)
        # Run by the daemon on its loop (octuefs.fs.daemon); tests without FUSE drive it themselves.
        self.lander = Lander(self.files, config.lost_and_found, config.landing_interval)
        # Files closed while the server was away go up as soon as its probe finds it again.
        storage.health.on_recovered(self.lander.wake)
